//! `svoct oct trace QUERY [--json]` (issue 14 point 1): the whole story of a message, found by
//! the key support staff have. The PS journal shows the spool id in the OCT's `250` answer;
//! the compostage, the PS number and a lot number find it too.

use std::process::ExitCode;

use serde::Serialize;
use svoct_oct::config::Config;
use svoct_oct::state::{MessageTrace, State};

use crate::CmdResult;

/// More matches than this (a PS number over months) are cut, and the output says so.
const TRACES_SHOWN: usize = 20;

/// What the state database does not keep, said in every output rather than left to guess.
const NOT_STORED: &str = "reception (client address, size, time of arrival) and the PS \
    Message-ID are not kept in the state database: grep the service log for the spool id \
    (line \"message received\")";

#[derive(Serialize)]
struct TraceReport<'a> {
    query: &'a str,
    messages: Vec<MessageTrace>,
    /// Matches beyond the ones listed.
    truncated: bool,
    not_stored: &'static str,
}

/// Runs `oct trace`: exit 1 when nothing matches.
pub fn trace(config: &Config, query: &str, json: bool) -> CmdResult {
    let query = query.trim();
    if query.is_empty() {
        return Err("oct trace: give a spool id, compostage, PS number, lot number or Message-ID".into());
    }
    let state = State::open(&config.paths.state)?;
    let svoct_oct::operate::TraceFound { messages, truncated } =
        svoct_oct::operate::trace(config, &state, query, TRACES_SHOWN)?;
    let found = !messages.is_empty();
    let report = TraceReport {
        query,
        messages,
        truncated,
        not_stored: NOT_STORED,
    };
    if json {
        crate::json::print(&report)?;
    } else if !found {
        eprintln!(
            "nothing found for {query:?} (searched: spool id, compostage, PS number, lot number, outgoing Message-ID)"
        );
        eprintln!("note: {NOT_STORED}");
    } else {
        print_report(&report);
    }
    Ok(if found {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Removes the relay login and password from a stored SMTP answer: errors are scrubbed before
/// they are stored, and again here for rows a version without scrubbing stored.
pub(super) use svoct_oct::operate::scrub;

fn when(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs).map_or_else(|_| secs.to_string(), crate::json::time)
}

fn print_report(report: &TraceReport<'_>) {
    for t in &report.messages {
        print_trace(t);
        println!();
    }
    if report.truncated {
        println!("...more messages match: give a narrower key (the spool id)");
    }
    println!("note: {}", report.not_stored);
}

fn print_trace(t: &MessageTrace) {
    println!("spool id: {}", t.spool_id);
    match &t.processed {
        Some(p) => {
            println!("  processed: {} {} ({})", when(p.at), p.outcome, p.kind);
            if let Some(r) = &p.reason {
                println!("  reason: {r}");
            }
            println!("  from: {}", p.mail_from);
            println!("  subject: {}", p.subject);
        }
        None => println!("  processed: no record"),
    }
    if let Some(c) = &t.compostage {
        println!("  compostage: {} (sender {})", c.compostage, c.sender_number);
    }
    for l in &t.lots {
        println!(
            "  lot {} of {} (PS {}, file {}) -> {} in {}",
            l.lot_number, l.lot_date, l.ps_number, l.file_id, l.destination, l.message_id
        );
    }
    if let Some(q) = &t.quarantine {
        println!(
            "  quarantine #{}: {} ({}), {} since {}",
            q.id,
            q.code,
            q.reason,
            q.state,
            when(q.at)
        );
    }
    if t.outbox.is_empty() {
        println!("  outbox: nothing produced");
    }
    for o in &t.outbox {
        let sent = o.sent.map_or_else(String::new, |s| format!(", sent {}", when(s)));
        println!(
            "  {} #{} to {}: {}, {} attempt(s), queued {}{sent}  [{}]",
            o.kind,
            o.id,
            o.rcpt,
            o.state,
            o.attempts,
            when(o.created),
            o.message_id
        );
        if let Some(e) = &o.last_error {
            println!(
                "    last error: {}",
                e.split_whitespace().collect::<Vec<_>>().join(" ")
            );
        }
    }
}
