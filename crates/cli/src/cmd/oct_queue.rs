//! `svoct oct queue`: the operator's hand on the OCT's outbox, the queue of what the OCT sends
//! (forwards to insurers, ARTs and returns to PSs). The `mailq` / `postqueue -f` /
//! `postsuper -h -H -d` of a Postfix operator:
//!
//! - `list [--json]`: every row still waiting, with its age, destination, attempts, next
//!   attempt, last error, and the sender and subject of the message it came from;
//! - `show ID [--json]`: one row, whatever its state;
//! - `flush [ID]`: due now (after an insurer outage, instead of waiting out the backoff);
//! - `hold ID` / `release ID`: a held row is never claimed by the senders until released;
//! - `delete ID --reason TEXT`: abandoned, never sent; a forward's PS gets an ART.
//!
//! These commands only change the state database: a running service acts on it at its next
//! poll, as `quarantine retry` does.

use std::process::ExitCode;

use clap::Subcommand;
use svoct_oct::config::Config;
use svoct_oct::operate::{self, age};
use svoct_oct::state::{OctStore, QueueRow, State, now_secs};

use crate::CmdResult;

#[derive(Subcommand)]
pub(super) enum QueueCommand {
    /// Every outgoing message not yet delivered (pending, being sent, failed, held), oldest first.
    List {
        /// Print JSON (docs/json.md, schema oct-queue-list).
        #[arg(long)]
        json: bool,
    },
    /// One outgoing message: destination, state, attempts, last error, where it comes from.
    Show {
        /// Print JSON (docs/json.md, schema oct-queue-show).
        #[arg(long)]
        json: bool,
        /// The row's `#` number in `queue list`.
        id: i64,
    },
    /// Make one pending message (or all of them) due now, instead of waiting out its backoff.
    Flush { id: Option<i64> },
    /// Hold a pending or failed message: no sender takes it until `queue release`.
    Hold { id: i64 },
    /// Give a held message back to the senders (due now).
    Release { id: i64 },
    /// Abandon a message for good: it is never sent; a forward's PS is sent an ART saying so.
    Delete {
        id: i64,
        /// Why (kept with the row, shown by `queue show`, logged, quoted in the ART).
        #[arg(long)]
        reason: String,
    },
}

pub(super) fn run(config: &Config, command: QueueCommand) -> CmdResult {
    let state = State::open(&config.paths.state)?;
    let poll = config.pipeline.poll_interval_ms.max(1);
    match command {
        QueueCommand::List { json } => list(config, &state, json)?,
        QueueCommand::Show { id, json } => show(config, &state, id, json)?,
        QueueCommand::Flush { id } => {
            let n = state.queue_flush(id, now_secs())?;
            println!(
                "{n} pending message(s) due now; this command does not send them. A running \
                 `svoct oct serve` sends them at its next poll (within {poll} ms), otherwise at \
                 its next start."
            );
        }
        QueueCommand::Hold { id } => {
            state.queue_hold(id)?;
            println!("#{id} held: no sender takes it until `svoct oct queue release {id}`");
        }
        QueueCommand::Release { id } => {
            state.queue_release(id, now_secs())?;
            println!(
                "#{id} released and due now: a running `svoct oct serve` sends it at its next \
                 poll (within {poll} ms), otherwise at its next start"
            );
        }
        QueueCommand::Delete { id, reason } => delete(config, &state, id, &reason)?,
    }
    Ok(ExitCode::SUCCESS)
}

type Error = Box<dyn std::error::Error + Send + Sync>;

fn list(config: &Config, state: &State, json: bool) -> Result<(), Error> {
    let rows = operate::queue_list(config, state)?;
    if json {
        crate::json::print(&rows)?;
        return Ok(());
    }
    if rows.is_empty() {
        println!("queue: empty");
        return Ok(());
    }
    let now = now_secs();
    for r in &rows {
        println!(
            "#{} [{}] {} to {}: age {}, {} attempt(s), next attempt {}",
            r.row.id,
            r.row.state,
            r.row.kind,
            r.row.rcpt,
            age(now - r.created_at),
            r.row.attempts,
            next_attempt(r, now)
        );
        println!("    {}", origin(r));
        if let Some(e) = &r.row.last_error {
            println!("    last error: {}", super::oct::one_line(e));
        }
    }
    println!("{} message(s) in the queue", rows.len());
    Ok(())
}

fn show(config: &Config, state: &State, id: i64, json: bool) -> Result<(), Error> {
    let r = operate::queue_get(config, state, id)?;
    if json {
        crate::json::print(&r)?;
        return Ok(());
    }
    let now = now_secs();
    println!("#{} [{}] {}", r.row.id, r.row.state, r.row.kind);
    println!("to: {}", r.row.rcpt);
    println!("message-id: {}", r.row.message_id);
    println!("{}", origin(&r));
    println!(
        "queued: {} (age {})",
        local_time(r.created_at),
        age(now - r.created_at)
    );
    println!("attempts: {}", r.row.attempts);
    println!("next attempt: {}", next_attempt(&r, now));
    println!("bytes: {}", r.bytes);
    if let Some(e) = &r.row.last_error {
        println!("last error: {}", super::oct::one_line(e));
    }
    if let (Some(reason), Some(at)) = (&r.abandoned_reason, r.abandoned_at) {
        println!("abandoned: {} ({})", super::oct::one_line(reason), local_time(at));
    }
    Ok(())
}

fn delete(config: &Config, state: &State, id: i64, reason: &str) -> Result<(), Error> {
    let (row, done, reason) = operate::queue_delete(config, state, id, reason)?;
    println!("#{id} deleted: it will never be sent; its row is kept with the reason \"{reason}\"");
    match done.art {
        Some(art) => println!("the PS is sent an ART saying the forward was abandoned ({art})"),
        None if row.row.kind == svoct_oct::state::OutKind::Forward.as_str() => {
            println!("WARNING: no ART could be built for the PS (see the log): tell the practice yourself")
        }
        None => {}
    }
    Ok(())
}

/// Where a row comes from: the spooled message, its sender and subject.
fn origin(r: &QueueRow) -> String {
    match (&r.origin_from, &r.origin_subject) {
        (Some(from), Some(subject)) => {
            format!("from {from} subject {subject:?} (spool id {})", r.row.spool_id)
        }
        _ => format!("spool id {} (no processed message recorded)", r.row.spool_id),
    }
}

/// The next attempt in words: only pending rows have one.
fn next_attempt(r: &QueueRow, now: i64) -> String {
    operate::next_attempt(r, now, local_time)
}

/// `secs` (epoch) in the machine's local time, `YYYY-MM-DD HH:MM:SS +HH:MM`.
pub(super) fn local_time(secs: i64) -> String {
    let utc = time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let t = local_offset(secs).map_or(utc, |o| utc.to_offset(o));
    let format = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second] [offset_hour sign:mandatory]:[offset_minute]"
    );
    t.format(format).unwrap_or_else(|_| secs.to_string())
}

/// The local UTC offset at `secs` (the `TZ` variable, else `/etc/localtime`), from the C
/// library: the `time` crate refuses to read it in a process that may have threads.
fn local_offset(secs: i64) -> Option<time::UtcOffset> {
    let t = libc::time_t::try_from(secs).ok()?;
    // SAFETY: `localtime_r` is the re-entrant form: it writes only into `tm`, which lives on
    // this stack frame and is fully initialised (zeroed) before the call.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if !ok {
        return None;
    }
    time::UtcOffset::from_whole_seconds(i32::try_from(tm.tm_gmtoff).ok()?).ok()
}
