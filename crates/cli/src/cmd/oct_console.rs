//! `svoct oct console-user add NAME`: an operator of the web console, in `[http] users_file`
//! (PBKDF2-HMAC-SHA256, salted; the file is written 0600). The password is read from standard
//! input, never from an argument (arguments show in `ps` and shell histories).

use std::io::BufRead;
use std::process::ExitCode;

use clap::Subcommand;
use svoct_mail::secret::Secret;
use svoct_oct::config::Config;
use svoct_oct::http::auth;

use crate::CmdResult;

#[derive(Subcommand)]
pub(super) enum ConsoleUserCommand {
    /// Add an operator, or set a new password for one: the password is the first line of
    /// standard input.
    Add {
        /// Letters, digits, '.', '_' or '-'.
        name: String,
    },
}

pub(super) fn run(config: &Config, command: ConsoleUserCommand) -> CmdResult {
    let ConsoleUserCommand::Add { name } = command;
    let Some(path) = config.http.as_ref().and_then(|h| h.users_file.clone()) else {
        return Err("set [http] users_file in the configuration first (see docs/oct.md)".into());
    };
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprintln!("password for {name} (one line; it is echoed: pipe it in to hide it):");
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    while line.ends_with(['\n', '\r']) {
        line.pop();
    }
    // Moved, not copied, into the wrapper that wipes it.
    let password = Secret::new(line.into_bytes());
    let replaced = auth::add_user(&path, &name, &password)?;
    println!(
        "{} {name} in {}; a running `svoct oct serve` reads the file at its start",
        if replaced { "new password for" } else { "added" },
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}
