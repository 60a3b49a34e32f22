//! `svoct ps export | import`: the whole store in one tar of plain files, and back.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use svoct_ps::archive;
use svoct_ps::config::Config;

use crate::CmdResult;

#[derive(clap::Args)]
pub struct ExportArgs {
    /// The archive to write (a new file, mode 0600; an existing file is never overwritten).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

#[derive(clap::Args)]
pub struct ImportArgs {
    /// An archive written by `svoct ps export`.
    #[arg(value_name = "FILE")]
    archive: PathBuf,
}

fn print(verb: &str, file: &Path, report: &archive::Report) {
    let rows: u64 = report.tables.iter().map(|(_, n)| n).sum();
    println!(
        "{verb} {}: {} tables, {rows} rows, {} saved files",
        file.display(),
        report.tables.len(),
        report.payloads
    );
    for (table, n) in &report.tables {
        if *n > 0 {
            println!("  {table}: {n}");
        }
    }
}

pub fn export(path: &Path, args: ExportArgs) -> CmdResult {
    let config = Config::load(path)?;
    let report = archive::export(&config.store, &args.out)?;
    print("wrote", &args.out, &report);
    Ok(ExitCode::SUCCESS)
}

pub fn import(path: &Path, args: ImportArgs) -> CmdResult {
    let config = Config::load(path)?;
    let report = archive::import(&args.archive, &config.store)?;
    print("restored", &args.archive, &report);
    println!("into {}", config.store.display());
    Ok(ExitCode::SUCCESS)
}
