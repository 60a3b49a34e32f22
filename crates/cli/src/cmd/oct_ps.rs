//! `svoct oct ps`: the PS accounts (practices) the OCT serves, kept in the state database:
//!
//! - `add --address A --sender-number N --ps-number P [--category XX] [--mailbox M]
//!   [--certificate FILE]`: checked with the rules of a `[[sender]]` block;
//! - `list [--suspended] [--json]`, `show ID|ADDRESS|PS_NUMBER [--json]` (the account, its
//!   audit trail, its latest messages), `audit [X] [--json]`;
//! - `suspend X --reason TEXT`, `resume X`, `remove X --reason TEXT`;
//! - `import FILE.csv [--update]`: all or nothing.
//!
//! Every change is written with who made it (`$SUDO_USER`, else `$USER`) and applies to the
//! next message a running `svoct oct serve` processes: its workers read the practices' generation
//! once per batch. The operations are `svoct_oct::practices`' (the web console calls the same).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use svoct_oct::config::{Config, Sender};
use svoct_oct::practices::{self, AccountChange, PracticeView};
use svoct_oct::state::{PracticeAudit, PracticeRecord, PracticeState, PracticeStore, State};

use crate::CmdResult;

#[derive(Subcommand)]
pub(super) enum PsCommand {
    /// Register a practice (its messages are taken at once by a running service).
    Add(AddArgs),
    /// Every practice.
    List {
        /// Only the suspended ones.
        #[arg(long)]
        suspended: bool,
        /// Print JSON (docs/json.md, schema oct-ps-list).
        #[arg(long)]
        json: bool,
    },
    /// One practice (by id, address or PS number): the account, its audit trail and its latest
    /// messages.
    Show {
        key: String,
        /// Print JSON (docs/json.md, schema oct-ps-show).
        #[arg(long)]
        json: bool,
    },
    /// Refuse the practice's invoices and dLOI requests (returns for it are still relayed).
    Suspend {
        key: String,
        /// Why (kept in the audit trail, shown by `ps show`).
        #[arg(long)]
        reason: String,
    },
    /// Take the practice's messages again.
    Resume { key: String },
    /// Remove the practice: its messages are then from an unknown sender (audit trail kept).
    Remove {
        key: String,
        /// Why (kept in the audit trail).
        #[arg(long)]
        reason: String,
    },
    /// Import practices from a CSV file (header
    /// `address,sender_number,ps_number,category,mailbox,certificate`): every line is checked
    /// first; one bad line and nothing is imported.
    Import {
        file: PathBuf,
        /// Change the practices whose address is already registered to what the file says
        /// (without it they are kept as they are).
        #[arg(long)]
        update: bool,
    },
    /// The audit trail: who changed what, of one practice or of all.
    Audit {
        key: Option<String>,
        /// Print JSON (docs/json.md, schema oct-ps-audit).
        #[arg(long)]
        json: bool,
    },
}

/// What `ps add` is given: the fields of a `[[sender]]` block.
#[derive(clap::Args)]
pub(super) struct AddArgs {
    /// The `From` address of its messages.
    #[arg(long)]
    address: String,
    /// The sender number of its files (B2 `000` positions 6-19, up to 14 digits).
    #[arg(long)]
    sender_number: String,
    /// The PS number (lot headers, return subjects; up to 14 digits).
    #[arg(long)]
    ps_number: String,
    /// ART category code (R6.2).
    #[arg(long, default_value = "XX")]
    category: String,
    /// Where ARTs and returns go (default: the address).
    #[arg(long)]
    mailbox: Option<String>,
    /// Certificate to encrypt returns for the practice (default: returns in clear).
    #[arg(long)]
    certificate: Option<PathBuf>,
}

/// Messages `ps show` lists.
const RECENT: usize = 20;

/// `with_state`: whether the state database must already exist (read commands, changes of a
/// practice that must be there); `add` and `import` may create it before the first start.
pub(super) fn needs_state(command: &PsCommand) -> bool {
    !matches!(command, PsCommand::Add(_) | PsCommand::Import { .. })
}

pub(super) fn run(config: &Config, command: PsCommand) -> CmdResult {
    let state = State::open(&config.paths.state)?;
    let actor = practices::operator();
    let poll = config.pipeline.poll_interval_ms.max(1);
    let applies = format!("a running `svoct oct serve` applies it to its next message (within {poll} ms)");
    match command {
        PsCommand::Add(a) => {
            let sender = Sender {
                address: a.address,
                sender_number: a.sender_number,
                ps_number: a.ps_number,
                category: a.category,
                mailbox: a.mailbox,
                certificate: a.certificate,
            };
            let p = practices::add(&state, &sender, &actor)?;
            println!("practice #{} {} added; {applies}", p.id, p.fields.address);
        }
        PsCommand::List { suspended, json } => list(&state, suspended, json)?,
        PsCommand::Show { key, json } => show(&practices::show(&state, &key, RECENT)?, json)?,
        PsCommand::Suspend { key, reason } => {
            let p = practices::apply(&state, &key, AccountChange::Suspend { reason: &reason }, &actor)?;
            println!("practice #{} {} suspended; {applies}", p.id, p.fields.address);
        }
        PsCommand::Resume { key } => {
            let p = practices::apply(&state, &key, AccountChange::Resume, &actor)?;
            println!("practice #{} {} active; {applies}", p.id, p.fields.address);
        }
        PsCommand::Remove { key, reason } => {
            let p = practices::apply(&state, &key, AccountChange::Remove { reason: &reason }, &actor)?;
            println!("practice #{} {} removed; {applies}", p.id, p.fields.address);
        }
        PsCommand::Import { file, update } => {
            let text = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let text = String::from_utf8(text).map_err(|_| format!("{}: not UTF-8 text", file.display()))?;
            let base = std::path::absolute(&file)?
                .parent()
                .map(PathBuf::from)
                .unwrap_or_default();
            let o = practices::import(&state, &text, &base, update, &actor)
                .map_err(|e| format!("{}: {e}", file.display()))?;
            println!(
                "{}: {} added, {} updated, {} unchanged, {} kept as they are (registered, differ: --update to change them); {applies}",
                file.display(),
                o.added,
                o.updated,
                o.unchanged,
                o.kept
            );
        }
        PsCommand::Audit { key, json } => audit(&state, key.as_deref(), json)?,
    }
    Ok(ExitCode::SUCCESS)
}

type Error = Box<dyn std::error::Error + Send + Sync>;

fn list(state: &State, suspended: bool, json: bool) -> Result<(), Error> {
    let rows: Vec<PracticeRecord> = state
        .practice_list()?
        .into_iter()
        .filter(|p| !suspended || p.state == PracticeState::Suspended)
        .collect();
    if json {
        crate::json::print(&rows)?;
        return Ok(());
    }
    if rows.is_empty() {
        println!("practices: none");
        return Ok(());
    }
    for p in &rows {
        println!("{}", line(p));
    }
    Ok(())
}

/// One practice on one line.
fn line(p: &PracticeRecord) -> String {
    let f = &p.fields;
    let mut s = format!(
        "#{} [{}] {} sender {} PS {} category {}",
        p.id,
        p.state.as_str(),
        f.address,
        f.sender_number,
        f.ps_number,
        f.category
    );
    if let Some(m) = &f.mailbox {
        s.push_str(&format!(" mailbox {m}"));
    }
    if let Some(c) = &f.certificate {
        s.push_str(&format!(" certificate {c}"));
    }
    if let Some(r) = &p.state_reason {
        s.push_str(&format!(" ({r})"));
    }
    s
}

fn show(view: &PracticeView, json: bool) -> Result<(), Error> {
    if json {
        crate::json::print(view)?;
        return Ok(());
    }
    let p = &view.practice;
    println!("{}", line(p));
    println!(
        "  created {}, changed {}",
        super::oct_queue::local_time(p.created_at),
        super::oct_queue::local_time(p.updated_at)
    );
    println!("audit:");
    print_audit(&view.audit);
    if view.messages.is_empty() {
        println!("messages: none processed");
    } else {
        println!("latest messages (newest first; `svoct oct trace SPOOL_ID` tells one's story):");
        for m in &view.messages {
            println!(
                "  {} {} {} {}{} {:?}",
                super::oct_queue::local_time(m.at),
                m.spool_id,
                m.kind,
                m.outcome,
                m.code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default(),
                m.subject
            );
        }
    }
    Ok(())
}

fn print_audit(rows: &[PracticeAudit]) {
    if rows.is_empty() {
        println!("  none");
    }
    for a in rows {
        println!(
            "  {} {} {} #{} {}: {}",
            super::oct_queue::local_time(a.at),
            a.actor,
            a.action,
            a.practice_id,
            a.address,
            a.change
        );
    }
}

fn audit(state: &State, key: Option<&str>, json: bool) -> Result<(), Error> {
    let id = match key {
        Some(k) => Some(practice_id(state, k)?),
        None => None,
    };
    let rows = state.practice_audit(id)?;
    if json {
        crate::json::print(&rows)?;
    } else {
        print_audit(&rows);
    }
    Ok(())
}

/// The id `key` names: a registered practice, or the id of a removed one whose trail is kept.
fn practice_id(state: &State, key: &str) -> Result<i64, Error> {
    if let Some(p) = state.practice_find(key)? {
        return Ok(p.id);
    }
    // A removed practice: its address (or id) is still in the trail.
    let trail = state.practice_audit(None)?;
    trail
        .iter()
        .rev()
        .find(|a| a.address.eq_ignore_ascii_case(key) || a.practice_id.to_string() == key)
        .map(|a| a.practice_id)
        .ok_or_else(|| practices::PracticeError::NotFound(key.to_owned()).into())
}
