//! `svoct ps journal show ID` and `svoct ps quarantine show ID`: one message, and the exact bytes
//! it carried, for support staff (no SQLite tool, no editing of saved files).
//!
//! Bytes go to the file named by `--payload FILE` / `--raw FILE` (as `svoct oct quarantine show
//! --raw FILE`), created `0600` and never over an existing file (they are health data, and a
//! support session must not clobber an earlier copy), or with `-` to standard output so that
//! they can be piped into `svoct inspect -`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use svoct_ps::Ps;
use svoct_ps::config::Config;
use svoct_store::{EntryId, InboxId};

use crate::CmdResult;

#[derive(clap::Args)]
pub struct JournalShowArgs {
    /// The journal entry (the `ID` column of `svoct ps journal`).
    id: i64,
    /// Also write the file the message carried (the B2 file, or the dLOI request), exactly as it
    /// was sent, to this new file (mode 0600); `-` writes it to standard output instead of the
    /// description, e.g. to pipe it into `svoct inspect -`.
    #[arg(long, value_name = "FILE")]
    payload: Option<PathBuf>,
    /// JSON instead of text (the entry and what its saved file says).
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct QuarantineShowArgs {
    /// The received message (the `ID` column of `svoct ps quarantine` or `svoct ps inbox`).
    id: i64,
    /// Also write the message exactly as it was retrieved (an `.eml`) to this new file (mode
    /// 0600); `-` writes it to standard output instead of the description.
    #[arg(long, value_name = "FILE")]
    raw: Option<PathBuf>,
    /// JSON instead of text (without the raw bytes).
    #[arg(long)]
    json: bool,
}

/// Writes `bytes` to `out`, a new `0600` file, or standard output for `-`. Returns whether the
/// bytes went to standard output (then nothing else may be printed there).
fn emit(out: &Path, bytes: &[u8], what: &str) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
    if out.as_os_str() == "-" {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(bytes)?;
        stdout.flush()?;
        return Ok(true);
    }
    let mut f = svoct_mail::fsx::create_new_data_file(out).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            format!("{} already exists; name a new file", out.display())
        } else {
            format!("cannot write {}: {e}", out.display())
        }
    })?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    eprintln!("wrote {} ({} bytes, {what})", out.display(), bytes.len());
    Ok(false)
}

pub fn journal_show(path: &Path, args: JournalShowArgs) -> CmdResult {
    let ps = Ps::open(Config::load(path)?)?;
    let id = EntryId(args.id);
    let entry = ps
        .store()
        .journal()
        .get(id)?
        .ok_or(svoct_ps::PsError::NoEntry(args.id))?;
    if let Some(out) = &args.payload
        && emit(out, &ps.payload(id)?.1, "the file sent")?
    {
        return Ok(ExitCode::SUCCESS);
    }
    // A received entry has no saved file; describing it still works.
    let saved = match entry.direction {
        svoct_store::Direction::Out => Some(ps.payload(id)?.0),
        svoct_store::Direction::In => None,
    };
    if args.json {
        let value = serde_json::json!({ "entry": entry, "payload": saved });
        crate::json::print(&value)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("entry:       {}", entry.id.0);
    println!("status:      {}", entry.status.as_str());
    println!("created:     {}", svoct_ps::rfc3339(&entry.created_at));
    println!("profile:     {}", entry.profile);
    println!("subject:     {}", entry.subject);
    println!("answer:      {}", entry.server_answer.clone().unwrap_or_default());
    if let Some(meta) = saved {
        let cert = meta.certificate.as_ref().map(|c| c.display().to_string());
        println!("to:          {}", meta.to);
        println!("certificate: {}", cert.unwrap_or_else(|| "(none)".into()));
        println!("file:        {}", meta.file_name);
        let lots: Vec<String> = meta
            .lots
            .iter()
            .map(|l| format!("{} of {}", l.number, l.date))
            .collect();
        println!("lots:        {}", lots.join(", "));
        println!("invoices:    {}", meta.invoices.len());
        println!(
            "the file sent: `svoct ps journal show {} --payload FILE`, then `svoct inspect FILE`",
            entry.id.0
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn quarantine_show(path: &Path, args: QuarantineShowArgs) -> CmdResult {
    let ps = Ps::open(Config::load(path)?)?;
    let message = ps
        .store()
        .inbox()
        .get(InboxId(args.id))?
        .ok_or_else(|| format!("received message {} does not exist", args.id))?;
    if let Some(out) = &args.raw
        && emit(out, &message.raw, "the message as retrieved")?
    {
        return Ok(ExitCode::SUCCESS);
    }
    let state = format!("{:?}", message.state).to_lowercase();
    let subject = super::fetch::subject_of(&message.raw);
    if args.json {
        let value = serde_json::json!({
            "id": message.id.0,
            "source": message.source,
            "received_at": svoct_ps::rfc3339(&message.received_at),
            "state": state,
            "kind": message.classification,
            "size": message.size,
            "subject": subject,
            "reason": message.reason,
        });
        crate::json::print(&value)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("message:  {}", message.id.0);
    println!("mailbox:  {}", message.source);
    println!("received: {}", svoct_ps::rfc3339(&message.received_at));
    println!("state:    {state}");
    println!("kind:     {}", message.classification.clone().unwrap_or_default());
    println!("size:     {}", message.size);
    println!("subject:  {subject}");
    println!("reason:   {}", message.reason.clone().unwrap_or_default());
    println!(
        "the message: `svoct ps quarantine show {} --raw FILE.eml`, then `svoct inspect FILE.eml --key KEY --cert CERT`",
        message.id.0
    );
    Ok(ExitCode::SUCCESS)
}
