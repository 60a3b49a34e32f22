//! `svoct`: the command-line face of the library.
//!
//! Every subcommand lives in its own module under `cmd/` and exposes `Args` and `run`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod json;

/// The result of a subcommand: an exit code, or an error printed as one line on stderr.
pub type CmdResult = Result<ExitCode, Box<dyn std::error::Error + Send + Sync>>;

#[derive(Parser)]
#[command(
    name = "svoct",
    version,
    about = "SESAM-Vitale exchanges through an OCT: inspect, generate, send, concentrate"
)]
struct Cli {
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `svoct_oct=debug`.
    #[arg(long, global = true, env = "SVOCT_LOG", default_value = "warn")]
    log: String,
    /// Emit logs as JSON lines instead of human text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show any supported file (memory zone, B2, NOEMIE, ARL, ART, dLOI, message) field by field.
    Inspect(cmd::inspect::Args),
    /// Generate deterministic synthetic lots and files.
    Gen(cmd::generate::Args),
    /// The billing-software side: configuration, sending, journal, retrieval, returns.
    Ps(cmd::ps::Args),
    /// The concentrator service.
    Oct(cmd::oct::Args),
    /// A simulated insurer (AM) that answers forwarded files with ARL and NOEMIE returns.
    AmSim(cmd::am_sim::Args),
    /// Run the whole exchange on this machine with embedded defaults.
    Demo(cmd::demo::Args),
}

fn main() -> ExitCode {
    restore_sigpipe();
    let cli = Cli::parse();
    init_logging(&cli.log, cli.log_json);
    let result = match cli.command {
        Command::Inspect(a) => cmd::inspect::run(a),
        Command::Gen(a) => cmd::generate::run(a),
        Command::Ps(a) => cmd::ps::run(a),
        Command::Oct(a) => cmd::oct::run(a),
        Command::AmSim(a) => cmd::am_sim::run(a),
        Command::Demo(a) => cmd::demo::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("svoct: {}", one_line(&e.to_string()));
            ExitCode::from(2)
        }
    }
}

/// Errors are printed on one line so that support teams can grep logs.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn init_logging(filter: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colour codes only for a person at a terminal: journald, files and pipes get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// `svoct ps returns --json | head` must end quietly like any Unix tool, not panic on the closed
/// pipe: Rust ignores SIGPIPE by default, so put the default action back.
#[cfg(unix)]
fn restore_sigpipe() {
    // SAFETY: called first thing in main, before any thread exists; resetting a signal to its
    // default action has no other effect on the program's state.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn restore_sigpipe() {}
