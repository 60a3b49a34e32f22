//! `svoct ps fetch | inbox | quarantine`.

use std::path::Path;
use std::process::ExitCode;

use svoct_ps::Ps;
use svoct_ps::config::Config;
use svoct_store::InboxState;

use super::output::table;
use crate::CmdResult;

#[derive(clap::Args)]
pub struct FetchArgs {
    /// JSON instead of a summary.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct ListArgs {
    /// JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn fetch(path: &Path, args: FetchArgs) -> CmdResult {
    let ps = Ps::open(Config::load(path)?)?;
    let r = ps.fetch()?;
    if args.json {
        crate::json::print(&r)?;
    } else {
        println!(
            "{}: {} new, {} already stored, {} classified, {} quarantined, {} too large (left on the server), \
             {} other message(s) left untouched (not returns for this PS)",
            r.source,
            r.stored,
            r.already_had,
            r.classified.len(),
            r.quarantined.len(),
            r.too_large.len(),
            r.left
        );
        for h in &r.classified {
            println!("  {}  {}  {}", h.inbox_id.0, h.what, h.subject);
        }
        for h in &r.quarantined {
            println!("  {}  QUARANTINED  {}  ({})", h.inbox_id.0, h.subject, h.what);
        }
        for (uidl, size) in &r.too_large {
            println!("  TOO LARGE  {uidl}  {size} bytes");
        }
    }
    if r.quarantined.is_empty() && r.too_large.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(1))
    }
}

pub fn list(path: &Path, args: ListArgs, quarantine: bool) -> CmdResult {
    let ps = Ps::open(Config::load(path)?)?;
    let messages = if quarantine {
        ps.inbox(InboxState::Quarantined)?
    } else {
        let mut all = ps.inbox(InboxState::New)?;
        all.extend(ps.inbox(InboxState::Processed)?);
        all.sort_by_key(|m| m.id);
        all
    };
    if args.json {
        crate::json::print(&messages)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = messages
        .iter()
        .map(|m| {
            let subject = subject_of(&m.raw);
            vec![
                m.id.0.to_string(),
                svoct_ps::rfc3339(&m.received_at),
                m.classification.clone().unwrap_or_default(),
                format!("{:?}", m.state).to_lowercase(),
                m.size.to_string(),
                subject,
                m.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &["ID", "RECEIVED", "KIND", "STATE", "SIZE", "SUBJECT", "REASON"],
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}

/// The Subject header of a stored message, for display (bounded, one line).
pub(super) fn subject_of(raw: &[u8]) -> String {
    let head = raw.get(..raw.len().min(16 * 1024)).unwrap_or_default();
    let text = String::from_utf8_lossy(head);
    let end = text.find("\r\n\r\n").unwrap_or(text.len());
    text.get(..end)
        .unwrap_or_default()
        .split("\r\n")
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("subject").then(|| v.trim().to_owned())
        })
        .unwrap_or_default()
}
