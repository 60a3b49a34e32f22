//! `svoct oct console-user add NAME`: an operator of the web console, in `[http] users_file`
//! (PBKDF2-HMAC-SHA256, salted; the file is written 0600). The password is read from standard
//! input, never from an argument (arguments show in `ps` and shell histories): on a terminal
//! without echo and twice (a typo nobody saw would lock the operator out), from a pipe one
//! line.

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
    let password = if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        let first = prompt_hidden(&format!("password for {name}: "))?;
        let second = prompt_hidden("the same password again: ")?;
        same_twice(first, second)?
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        one_line(line)
    };
    let replaced = auth::add_user(&path, &name, &password)?;
    println!(
        "{} {name} in {}; a running `svoct oct serve` reads the file at its start",
        if replaced { "new password for" } else { "added" },
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Why a password typed on a terminal was not taken.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
enum PasswordError {
    #[error("the two passwords differ: nothing changed")]
    Differ,
}

/// The password a line holds: without its line end, moved (not copied) into the wrapper that
/// wipes it.
fn one_line(mut line: String) -> Secret<Vec<u8>> {
    while line.ends_with(['\n', '\r']) {
        line.pop();
    }
    Secret::new(line.into_bytes())
}

/// The password typed twice on a terminal, when both are the same.
fn same_twice(first: Secret<Vec<u8>>, second: Secret<Vec<u8>>) -> Result<Secret<Vec<u8>>, PasswordError> {
    if first.expose() == second.expose() {
        Ok(first)
    } else {
        Err(PasswordError::Differ)
    }
}

/// Writes `prompt` to standard error and reads one line from the terminal on standard input
/// without echoing it; the terminal's settings are restored afterwards, also when reading
/// fails or the operator presses Ctrl-C ([`tty::NoEcho`]).
fn prompt_hidden(prompt: &str) -> std::io::Result<Secret<Vec<u8>>> {
    use std::io::Write;
    let mut err = std::io::stderr();
    let mut line = String::new();
    {
        // Echo off before the prompt: whatever is typed once it shows is not echoed.
        let _quiet = tty::NoEcho::new(libc::STDIN_FILENO)?;
        err.write_all(prompt.as_bytes())?;
        err.flush()?;
        std::io::stdin().lock().read_line(&mut line)?;
    }
    // The Enter the terminal did not echo.
    let _ = writeln!(err);
    Ok(one_line(line))
}

/// Echo off on a terminal, with `libc`'s termios (the CLI's only other system calls are
/// `libc`'s too).
mod tty {
    use std::os::fd::RawFd;
    use std::sync::OnceLock;

    /// The settings to restore from a signal handler: the one thing it reads, set before the
    /// handler is installed.
    static SAVED: OnceLock<(RawFd, libc::termios)> = OnceLock::new();

    /// The signals that would end the process while echo is off: their handler restores the
    /// terminal first, then ends the process as the signal would have (exit status 128 + N).
    const SIGNALS: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

    extern "C" fn restore_and_exit(signal: libc::c_int) {
        if let Some((fd, saved)) = SAVED.get() {
            // SAFETY: tcsetattr, write and _exit are async-signal-safe; `saved` is a valid
            // termios that was set before this handler was installed.
            unsafe {
                libc::tcsetattr(*fd, libc::TCSANOW, saved);
                libc::write(libc::STDERR_FILENO, b"\n".as_ptr().cast(), 1);
            }
        }
        // SAFETY: ends the process at once, as the signal would have.
        unsafe { libc::_exit(128 + signal) }
    }

    /// Echo is off on `fd` while this lives; dropping it puts the terminal back as it was and
    /// the signal handlers it replaced.
    pub(super) struct NoEcho {
        fd: RawFd,
        saved: libc::termios,
        handlers: Vec<(libc::c_int, libc::sighandler_t)>,
    }

    impl NoEcho {
        pub(super) fn new(fd: RawFd) -> std::io::Result<NoEcho> {
            // SAFETY: a zeroed termios is a valid value for tcgetattr to fill in.
            let mut saved: libc::termios = unsafe { std::mem::zeroed() };
            // SAFETY: `saved` is a valid, writable termios.
            if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let _ = SAVED.set((fd, saved));
            let handler = restore_and_exit as extern "C" fn(libc::c_int) as libc::sighandler_t;
            // SAFETY: installs a handler that only makes async-signal-safe calls.
            let handlers = SIGNALS
                .iter()
                .map(|&s| (s, unsafe { libc::signal(s, handler) }))
                .collect();
            let quiet = NoEcho { fd, saved, handlers };
            let mut off = saved;
            // Lines are still edited by the terminal (ICANON stays); only the echo goes.
            off.c_lflag &= !(libc::ECHO | libc::ECHOE | libc::ECHOK | libc::ECHONL);
            // SAFETY: `off` is a valid termios derived from the terminal's own.
            if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &off) } != 0 {
                // Dropping `quiet` puts the handlers back.
                return Err(std::io::Error::last_os_error());
            }
            Ok(quiet)
        }
    }

    impl Drop for NoEcho {
        fn drop(&mut self) {
            // SAFETY: `saved` is the termios read from this terminal; the handlers are the ones
            // `signal` returned.
            unsafe {
                libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved);
                for &(s, h) in &self.handlers {
                    libc::signal(s, h);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_loses_its_line_end_only() {
        assert_eq!(one_line("correct horse\r\n".into()).expose(), b"correct horse");
        assert_eq!(one_line(" spaced \n".into()).expose(), b" spaced ");
        assert_eq!(one_line("no end".into()).expose(), b"no end");
        assert!(one_line("\n".into()).expose().is_empty());
    }

    #[test]
    fn the_password_is_taken_only_when_typed_the_same_twice() {
        let twice = same_twice(one_line("s3cret\n".into()), one_line("s3cret\n".into()));
        assert_eq!(twice.expect("same").expose(), b"s3cret");
        let differ = same_twice(one_line("s3cret\n".into()), one_line("s3creT\n".into()));
        assert_eq!(differ.err(), Some(PasswordError::Differ));
    }

    #[test]
    fn echo_off_on_something_that_is_not_a_terminal_is_an_error_and_changes_nothing() {
        let file = tempfile::tempfile().expect("file");
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        assert!(tty::NoEcho::new(fd).is_err());
    }
}
