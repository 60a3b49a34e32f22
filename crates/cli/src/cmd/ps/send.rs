//! `svoct ps send | retry | resend | journal | loi request`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use svoct_mail::transport::{DirTransport, Transport};
use svoct_ps::config::Config;
use svoct_ps::{LotFile, Ps, Sent};
use svoct_store::{EntryId, Status};

use super::output::table;
use crate::CmdResult;

#[derive(clap::Args)]
pub struct OutArgs {
    /// Write the messages as .eml files in this directory instead of sending them (still
    /// journaled).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct SendArgs {
    /// Lot files: B2 bare lots or framed files (000 ... 999).
    #[arg(value_name = "LOTS", required_unless_present = "retry")]
    lots: Vec<PathBuf>,
    /// Send again the deferred messages instead (same as `svoct ps retry`).
    #[arg(long, conflicts_with = "lots")]
    retry: bool,
    #[command(flatten)]
    out: OutArgs,
}

#[derive(clap::Args)]
pub struct RetryArgs {
    #[command(flatten)]
    out: OutArgs,
}

#[derive(clap::Args)]
pub struct ResendArgs {
    /// The journal entry (first column of `svoct ps journal`).
    id: i64,
    /// Send it even if some of its lots had a positive ARL (a duplicate claim at the insurer).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    out: OutArgs,
}

#[derive(clap::Args)]
pub struct JournalArgs {
    /// Only entries whose subject matches this glob (`*`, `?`, `[...]`), e.g. `SV140700/*`.
    #[arg(long, conflicts_with_all = ["compostage", "invoice"])]
    subject: Option<String>,
    /// Only the entry that carried this compostage (19 digits, the third part of the subject).
    #[arg(long, conflicts_with = "invoice")]
    compostage: Option<String>,
    /// Only the entries that carried this invoice (FSE/DRE) number, 9 digits.
    #[arg(long)]
    invoice: Option<String>,
    /// Only the entries with this status (combines with the other filters).
    #[arg(long, value_enum)]
    status: Option<StatusArg>,
    /// JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Journal statuses, as `svoct ps journal` prints them.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum StatusArg {
    Pending,
    Sent,
    Deferred,
    Failed,
    Received,
    Quarantined,
    Processed,
}

impl From<StatusArg> for Status {
    fn from(s: StatusArg) -> Status {
        match s {
            StatusArg::Pending => Status::Pending,
            StatusArg::Sent => Status::Sent,
            StatusArg::Deferred => Status::Deferred,
            StatusArg::Failed => Status::Failed,
            StatusArg::Received => Status::Received,
            StatusArg::Quarantined => Status::Quarantined,
            StatusArg::Processed => Status::Processed,
        }
    }
}

fn open(path: &Path) -> Result<Ps, Box<dyn std::error::Error + Send + Sync>> {
    Ok(Ps::open(Config::load(path)?)?)
}

fn transport(
    ps: &Ps,
    out: &Option<PathBuf>,
) -> Result<Box<dyn Transport>, Box<dyn std::error::Error + Send + Sync>> {
    Ok(match out {
        Some(dir) => Box::new(DirTransport::new(dir).map_err(|e| e.to_string())?),
        None => Box::new(ps.smtp_transport()?),
    })
}

/// A progress bar on a terminal for batches; nothing otherwise.
fn progress(len: usize) -> indicatif::ProgressBar {
    if len > 1 && std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(len as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} messages {msg}") {
            bar.set_style(style);
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    }
}

/// What was sent. In JSON, the journal entries themselves, as `ps journal --json` shows them
/// (one shape for one object in every command, docs/json.md), each with `to`: the address
/// of this sending, which the journal does not keep.
fn report(ps: &Ps, sent: &[Sent], json: bool) -> CmdResult {
    if json {
        let mut entries = Vec::with_capacity(sent.len());
        for s in sent {
            let entry = ps
                .store()
                .journal()
                .get(s.entry)?
                .ok_or_else(|| format!("journal entry {} vanished", s.entry.0))?;
            let mut value = serde_json::to_value(entry)?;
            if let Some(fields) = value.as_object_mut() {
                fields.insert("to".into(), s.to.clone().into());
            }
            entries.push(value);
        }
        crate::json::print(&entries)?;
    } else if sent.is_empty() {
        println!("nothing to send");
    } else {
        let rows: Vec<Vec<String>> = sent
            .iter()
            .map(|s| {
                vec![
                    s.entry.0.to_string(),
                    s.status.as_str().to_owned(),
                    s.invoices.to_string(),
                    s.to.clone(),
                    s.subject.clone(),
                    s.answer.clone(),
                ]
            })
            .collect();
        print!(
            "{}",
            table(&["ID", "STATUS", "INVOICES", "TO", "SUBJECT", "ANSWER"], &rows)
        );
    }
    // Anything not handed over is worth a non-zero exit for scripts.
    if sent.iter().any(|s| s.status != Status::Sent) {
        Ok(ExitCode::from(1))
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

pub fn send(path: &Path, args: SendArgs) -> CmdResult {
    if args.retry {
        return retry(path, RetryArgs { out: args.out });
    }
    let ps = open(path)?;
    let files = args
        .lots
        .iter()
        .map(|p| LotFile::read(p))
        .collect::<Result<Vec<_>, _>>()?;
    let planned = ps.plan(&files)?;
    let t = transport(&ps, &args.out.out)?;
    let bar = progress(planned.len());
    let sent = ps.send_planned(&*t, planned, &mut |s| {
        bar.inc(1);
        bar.set_message(s.status.as_str());
    })?;
    bar.finish_and_clear();
    report(&ps, &sent, args.out.json)
}

pub fn retry(path: &Path, args: RetryArgs) -> CmdResult {
    let ps = open(path)?;
    let t = transport(&ps, &args.out.out)?;
    let bar = progress(2);
    let sent = ps.retry(&*t, &mut |_| bar.inc(1))?;
    bar.finish_and_clear();
    report(&ps, &sent, args.out.json)
}

pub fn resend(path: &Path, args: ResendArgs) -> CmdResult {
    let ps = open(path)?;
    let t = transport(&ps, &args.out.out)?;
    let sent = ps.resend(&*t, EntryId(args.id), args.force)?;
    report(&ps, &[sent], args.out.json)
}

#[derive(clap::Args)]
pub struct LoiRequestArgs {
    /// Ask from this opposition-list version instead of the one the store holds (0 asks for
    /// the whole list). By default: the version the last applied increment brought.
    #[arg(long)]
    version: Option<u64>,
    #[command(flatten)]
    out: OutArgs,
}

pub fn loi_request(path: &Path, args: LoiRequestArgs) -> CmdResult {
    let ps = open(path)?;
    let t = transport(&ps, &args.out.out)?;
    let sent = match args.version {
        Some(v) => ps.request_loi(&*t, v)?,
        None => ps.request_loi_after_held(&*t)?,
    };
    report(&ps, &[sent], args.out.json)
}

pub fn journal(path: &Path, args: JournalArgs) -> CmdResult {
    let ps = open(path)?;
    let entries = match (&args.compostage, &args.invoice) {
        (Some(c), _) => ps.store().journal().by_compostage(c)?.into_iter().collect(),
        (None, Some(i)) => ps.store().journal().by_invoice(&format!("{i:0>9}"))?,
        (None, None) => ps.journal(args.subject.as_deref())?,
    };
    let entries: Vec<_> = match args.status {
        Some(wanted) => {
            let wanted = Status::from(wanted);
            entries.into_iter().filter(|e| e.status == wanted).collect()
        }
        None => entries,
    };
    if args.json {
        crate::json::print(&entries)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let when = svoct_ps::rfc3339(&e.created_at);
            vec![
                e.id.0.to_string(),
                match e.direction {
                    svoct_store::Direction::Out => "out".into(),
                    svoct_store::Direction::In => "in".into(),
                },
                e.status.as_str().to_owned(),
                when,
                e.profile.clone(),
                e.subject.clone(),
                e.file_name.clone().unwrap_or_default(),
                e.lots.len().to_string(),
                e.invoices.len().to_string(),
                e.server_answer.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "ID", "DIR", "STATUS", "CREATED", "PROFILE", "SUBJECT", "FILE", "LOTS", "INVOICES", "ANSWER"
            ],
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}
