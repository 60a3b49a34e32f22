//! `svoct oct reload` and `svoct oct quarantine retry`: what makes a running concentrator use
//! the configuration file as it is now (issue 14 point 3).
//!
//! Both validate the file first (the checks of `svoct oct check`: a broken file would be
//! refused by the service anyway, and a retry under it would refuse the message again), then
//! send SIGHUP to the service named by the instance lock and wait for its acknowledgement
//! (`svoct_oct::instance::ReloadAck`, written once the new configuration is in force or was
//! refused).
//!
//! Ordering of a retry: the entry is marked only AFTER the service acknowledged the reload,
//! and a worker reads the configuration in force after it took a marked entry, never before
//! (`Rules::Live` in the service's worker). So the retry cannot be processed under the
//! configuration of before the reload, and no second "refused" ART is sent for a cause the
//! operator fixed.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use svoct_oct::config::Config;
use svoct_oct::instance::{self, Liveness, ReloadAck};
use svoct_oct::preflight::{self, Severity};
use svoct_oct::state::{OctStore, State};

use crate::CmdResult;

/// How long to wait for the service to acknowledge a reload: it reads a few files, so far
/// longer than it needs, short enough for `systemctl reload` (whose own timeout is longer).
const ACK_WAIT: Duration = Duration::from_secs(60);

/// The configuration in `file` when `svoct oct check` finds no error in it; otherwise the
/// findings are printed and `Err` says why nothing was done.
fn validated(file: &Path, what: &str) -> Result<Config, String> {
    let (config, report) = preflight::check_file(file);
    eprint!("{report}");
    match config {
        Some(c) if report.passes(false) => Ok(c),
        _ => Err(format!(
            "{} has {} error(s): {what} (see `svoct oct check`)",
            file.display(),
            report.count(Severity::Error).max(1)
        )),
    }
}

/// What asking the running service to reload gave.
enum Asked {
    /// No service holds the lock.
    NotRunning,
    /// The service `pid` acknowledged.
    Acknowledged { pid: u32, ack: ReloadAck },
}

/// Sends SIGHUP to the service using `config`'s state, when one runs, and waits for its
/// acknowledgement.
fn ask_reload(config: &Config) -> Result<Asked, Box<dyn std::error::Error + Send + Sync>> {
    let state = &config.paths.state;
    let pid = match instance::probe(state)? {
        Liveness::Stopped => return Ok(Asked::NotRunning),
        Liveness::Running { pid: None } => {
            return Err(format!(
                "a service runs on {} but its lock file holds no process id: send it SIGHUP by hand",
                state.display()
            )
            .into());
        }
        Liveness::Running { pid: Some(pid) } => pid,
    };
    let before = instance::read_reload_ack(state);
    instance::request_reload(pid).map_err(|e| format!("cannot signal the service (pid {pid}): {e}"))?;
    match instance::wait_reload_ack(state, pid, before.as_ref(), ACK_WAIT) {
        Some(ack) => Ok(Asked::Acknowledged { pid, ack }),
        // It may have stopped meanwhile: then the next start reads the file.
        None if instance::probe(state)? == Liveness::Stopped => Ok(Asked::NotRunning),
        None => Err(format!(
            "the service (pid {pid}) did not acknowledge the reload within {} s: see its log",
            ACK_WAIT.as_secs()
        )
        .into()),
    }
}

/// `svoct oct reload`: validate the file, signal the running service, report what it did.
/// Exits 1 when the file is invalid, no service runs, or the service refused the reload.
pub fn reload(file: &Path) -> CmdResult {
    let config = match validated(file, "the running service keeps its configuration") {
        Ok(c) => c,
        Err(why) => {
            eprintln!("svoct: {why}");
            return Ok(ExitCode::from(1));
        }
    };
    match ask_reload(&config)? {
        Asked::NotRunning => {
            eprintln!(
                "svoct: no service runs on {} (paths.state in {}): nothing to reload; `svoct oct serve` reads the file when it starts",
                config.paths.state.display(),
                file.display()
            );
            Ok(ExitCode::from(1))
        }
        Asked::Acknowledged { pid, ack } if ack.ok => {
            println!(
                "configuration reloaded by the service (pid {pid}): {}",
                ack.message
            );
            Ok(ExitCode::SUCCESS)
        }
        Asked::Acknowledged { pid, ack } => {
            eprintln!(
                "svoct: the service (pid {pid}) refused the reload and keeps its configuration: {} (see its log)",
                ack.message
            );
            Ok(ExitCode::from(1))
        }
    }
}

/// `svoct oct quarantine retry ID`: validate the file, have the running service reload it,
/// then mark the entry (see the module for why in this order).
pub fn retry(file: &Path, id: i64) -> CmdResult {
    let config = match validated(file, "not retried: it would be refused again") {
        Ok(c) => c,
        Err(why) => {
            eprintln!("svoct: {why}");
            return Ok(ExitCode::from(1));
        }
    };
    let state = State::open(&super::oct::with_state(file)?.paths.state)?;
    let held = state.quarantine_get(id)?.is_some_and(|q| q.row.state == "held");
    if !held {
        return Err(format!("no quarantined message #{id} waiting (see `svoct oct quarantine list`)").into());
    }
    let asked = ask_reload(&config)?;
    if let Asked::Acknowledged { pid, ack } = &asked
        && !ack.ok
    {
        eprintln!(
            "svoct: the service (pid {pid}) refused the reload: {}; #{id} not marked (it would be refused again)",
            ack.message
        );
        return Ok(ExitCode::from(1));
    }
    if !state.quarantine_request_retry(id)? {
        return Err(
            format!("quarantined message #{id} is no longer waiting (retried or dropped meanwhile)").into(),
        );
    }
    match asked {
        Asked::Acknowledged { pid, .. } => println!(
            "#{id} marked for retry after the service (pid {pid}) reloaded {}: it processes it at its next poll (every {} ms); \
             `svoct oct quarantine show {id}` says `retried` once it is done.",
            file.display(),
            config.pipeline.poll_interval_ms.max(1)
        ),
        Asked::NotRunning => println!(
            "#{id} marked for retry; the service is not running: `svoct oct serve` processes it at its start, with the file as it is then."
        ),
    }
    Ok(ExitCode::SUCCESS)
}
