//! `svoct demo`: the whole exchange on this machine, no setup.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use svoct_sim::demo::{self, DemoOptions};

use crate::CmdResult;

#[derive(clap::Args)]
pub struct Args {
    /// Directory for everything the demo writes (kept afterwards); a new one under the system's
    /// temporary directory by default.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Seed of the generated lots.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Invoices per sending.
    #[arg(long, default_value_t = 40)]
    invoices: usize,
    /// Seconds to wait for all returns.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Print the summary as JSON after the report.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> CmdResult {
    let dir = match args.dir {
        Some(d) => d,
        None => {
            let base = std::env::temp_dir();
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            base.join(format!("svoct-demo-{stamp}-{}", std::process::id()))
        }
    };
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        return Err(format!("{} is not empty: give a new or empty --dir", dir.display()).into());
    }
    let options = DemoOptions {
        dir,
        seed: args.seed,
        invoices: args.invoices,
        timeout: Duration::from_secs(args.timeout),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut stdout = std::io::stdout();
    let result = runtime.block_on(demo::run(&options, &mut stdout));
    // Whatever happened, do not wait forever for background work to notice.
    runtime.shutdown_timeout(Duration::from_secs(5));
    let summary = result?;
    if args.json {
        crate::json::print(&summary)?;
    }
    Ok(if summary.complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
