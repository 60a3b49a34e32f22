//! Test harness: real mail servers on loopback, for any crate's tests.
//!
//! Interoperability claims are only worth something against real peers, so the integration tests
//! start their own instances of the Debian Exim and Dovecot binaries instead of mocks:
//!
//! - [`Exim`]: an SMTP server on `127.0.0.1:<free port>` that delivers to Maildirs (one per
//!   mailbox name, any domain), and optionally relays everything else to a smarthost.
//! - [`fake_smtp::AuthEchoServer`]: the one scripted server, a relay that refuses every login
//!   by echoing the `AUTH` line (no real server can be told to).
//! - [`Dovecot`]: a POP3 server on `127.0.0.1:<free port>` serving given Maildirs (typically the
//!   ones Exim delivers to) with plaintext passwords.
//!
//! Also one copy of what several crates' tests share: [`certs`] (throw-away identities),
//! [`fuzz`] (structural mutations, regression replay), [`ps_config`] (the PS configuration
//! fixture).
//!
//! Each instance lives in its own temporary directory with a generated configuration, listens on
//! loopback only, and is killed (whole process group) and removed on `Drop`, so tests can run in
//! parallel. The binaries come from the Debian packages `exim4-daemon-light`, `dovecot-core` and
//! `dovecot-pop3d` (`scripts/setup.sh` installs them).
#![forbid(unsafe_code)]

pub mod certs;
mod dovecot;
mod exim;
pub mod fake_smtp;
pub mod fuzz;
mod process;
pub mod ps_config;

pub use dovecot::Dovecot;
pub use exim::{Exim, EximConfig, EximTls, TlsFiles};
pub use process::free_port;

use std::path::PathBuf;

/// Why a test server could not be started or used.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The server binary is not installed.
    #[error("{binary} not found: install the Debian package(s) {packages} (scripts/setup.sh does it)")]
    MissingBinary { binary: PathBuf, packages: &'static str },
    /// The configuration asked for something the harness cannot express.
    #[error("invalid harness configuration: {0}")]
    Config(String),
    /// The delivery user (`nobody`) is missing from /etc/passwd.
    #[error("user {0:?} not found in /etc/passwd; the harness delivers mail as this non-root user")]
    MissingUser(&'static str),
    /// A filesystem or process operation failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The server did not accept connections in time, or exited; the log says why.
    #[error("{server} did not become ready on 127.0.0.1:{port}: {reason}\n--- server log ---\n{log}")]
    NotReady {
        server: &'static str,
        port: u16,
        reason: String,
        log: String,
    },
    /// Waiting for a delivery timed out.
    #[error(
        "timed out waiting for {wanted} message(s) in {mailbox:?} (found {found})\n--- server log ---\n{log}"
    )]
    DeliveryTimeout {
        mailbox: String,
        wanted: usize,
        found: usize,
        log: String,
    },
}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
    let what = what.into();
    move |source| HarnessError::Io { what, source }
}
