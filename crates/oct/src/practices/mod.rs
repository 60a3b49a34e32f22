//! The PS accounts (practices) as data in the state database (issue 14 point 8): the
//! operations `svoct oct ps` runs ([`add`], [`apply`], [`import`], [`show`]), as library
//! functions taking the `actor` who asks (the CLI's
//! operator, the web console's user), so that every front end goes through the same checks and
//! writes the same audit trail; the seeding from the configuration's `[[sender]]` blocks; and
//! the [`Directory`] the pipeline looks senders up in.
//!
//! Once seeded, the database is the truth: a `[[sender]]` block whose address is registered
//! never overwrites the row (the difference is logged at start).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::{Config, ConfigError, Sender};
use crate::state::{
    ImportOutcome, PracticeAudit, PracticeFields, PracticeMessage, PracticeRecord, PracticeState,
    PracticeStore, StateError, now_secs,
};

mod csv;
mod directory;

pub use csv::{CsvProblem, parse_csv};
pub use directory::{CertSlot, Directory, Practice, Practices};

/// The actor of changes made by the seeding from the configuration.
pub const CONFIG_ACTOR: &str = "config";

/// Why an operation on practices did not apply.
#[derive(Debug, thiserror::Error)]
pub enum PracticeError {
    /// No practice has this id, address or PS number.
    #[error("no practice {0} (give its id, address or PS number)")]
    NotFound(String),
    /// The practice's fields break the rules of a `[[sender]]` block.
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    /// Lines of an import file are wrong: nothing was imported.
    #[error("{} bad line(s), nothing imported:\n{}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Csv(Vec<CsvProblem>),
    #[error("{0}")]
    State(#[from] StateError),
}

/// The operator the CLI acts as: `$SUDO_USER` (the person behind `sudo`), else `$USER`, else
/// `$LOGNAME`.
pub fn operator() -> String {
    ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// The configuration's view of a stored practice.
pub fn sender_of(f: &PracticeFields) -> Sender {
    Sender {
        address: f.address.clone(),
        sender_number: f.sender_number.clone(),
        ps_number: f.ps_number.clone(),
        category: f.category.clone(),
        mailbox: f.mailbox.clone(),
        certificate: f.certificate.as_ref().map(PathBuf::from),
    }
}

/// What the store keeps of a `[[sender]]`-shaped practice.
pub fn fields_of(s: &Sender) -> PracticeFields {
    PracticeFields {
        address: s.address.trim().to_owned(),
        sender_number: s.sender_number.trim().to_owned(),
        ps_number: s.ps_number.trim().to_owned(),
        category: s.category.trim().to_owned(),
        mailbox: s
            .mailbox
            .as_ref()
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty()),
        certificate: s.certificate.as_ref().map(|c| c.to_string_lossy().into_owned()),
    }
}

/// The problems of `s`, each `field: reason`: the rules of a `[[sender]]` block
/// ([`Sender::field_problems`], one set of rules), and a certificate that must load and be
/// valid now.
pub fn problems(s: &Sender) -> Vec<String> {
    const PREFIX: &str = "practice";
    let mut out = Vec::new();
    s.field_problems(PREFIX, &mut |r: Result<(), ConfigError>| match r {
        Ok(()) => {}
        Err(ConfigError::Invalid { key, reason, .. }) => {
            let field = key.strip_prefix(PREFIX).unwrap_or(&key).trim_start_matches('.');
            out.push(format!("{field}: {reason}"));
        }
        Err(e) => out.push(e.to_string()),
    });
    if let Some(path) = &s.certificate {
        let cert = svoct_mail::cms::RecipientCert::from_file(path).and_then(|c| c.check_validity());
        if let Err(e) = cert {
            out.push(format!("certificate: {}: {e}", path.display()));
        }
    }
    out
}

/// `s` with its certificate path made absolute against `base` (the service may run elsewhere).
fn anchored(s: &Sender, base: &Path) -> Sender {
    let mut s = s.clone();
    if let Some(c) = &mut s.certificate
        && c.is_relative()
    {
        *c = base.join(&*c);
    }
    s
}

/// The practice `key` names (id, address or PS number).
pub fn find(store: &dyn PracticeStore, key: &str) -> Result<PracticeRecord, PracticeError> {
    store
        .practice_find(key)?
        .ok_or_else(|| PracticeError::NotFound(key.to_owned()))
}

/// Registers a practice after checking it (`svoct oct ps add`). A relative certificate path is
/// taken from the current directory.
pub fn add(store: &dyn PracticeStore, sender: &Sender, actor: &str) -> Result<PracticeRecord, PracticeError> {
    let base = std::env::current_dir().unwrap_or_default();
    let sender = anchored(sender, &base);
    let problems = problems(&sender);
    if !problems.is_empty() {
        return Err(PracticeError::Invalid(problems));
    }
    let record = store.practice_add(&fields_of(&sender), actor, now_secs())?;
    tracing::info!(id = record.id, address = %record.fields.address, %actor, "practice added");
    Ok(record)
}

/// A change of a practice's account (`svoct oct ps suspend|resume|remove`).
#[derive(Clone, Copy, Debug)]
pub enum AccountChange<'a> {
    /// Its invoices and dLOI requests are refused (`suspended_sender`); returns for it are still
    /// relayed.
    Suspend { reason: &'a str },
    /// Its messages are taken again.
    Resume,
    /// The account is deleted: its messages are then from an unknown sender; its audit trail
    /// stays.
    Remove { reason: &'a str },
}

/// Applies `change` to the practice `key` names, as `actor` (written to the audit trail).
pub fn apply(
    store: &dyn PracticeStore,
    key: &str,
    change: AccountChange<'_>,
    actor: &str,
) -> Result<PracticeRecord, PracticeError> {
    let p = find(store, key)?;
    let now = now_secs();
    let r = match change {
        AccountChange::Suspend { reason } => {
            store.practice_set_state(p.id, PracticeState::Suspended, Some(reason), actor, now)?
        }
        AccountChange::Resume => store.practice_set_state(p.id, PracticeState::Active, None, actor, now)?,
        AccountChange::Remove { reason } => store.practice_remove(p.id, reason, actor, now)?,
    };
    tracing::warn!(id = r.id, address = %r.fields.address, %actor, change = ?change, state = r.state.as_str(), "practice account changed");
    Ok(r)
}

/// Imports the practices of a CSV text (`svoct oct ps import`): every line is checked first
/// and every bad one reported (nothing imported then), then all are written in one transaction.
/// Relative certificate paths are taken from `base` (the file's directory). An address already
/// registered is changed only with `update`.
pub fn import(
    store: &dyn PracticeStore,
    text: &str,
    base: &Path,
    update: bool,
    actor: &str,
) -> Result<ImportOutcome, PracticeError> {
    let rows = parse_csv(text).map_err(PracticeError::Csv)?;
    let mut bad = Vec::new();
    let mut fields = Vec::with_capacity(rows.len());
    for (line, sender) in &rows {
        let sender = anchored(sender, base);
        for message in problems(&sender) {
            bad.push(CsvProblem { line: *line, message });
        }
        fields.push(fields_of(&sender));
    }
    bad.extend(csv::duplicates(&rows));
    if !bad.is_empty() {
        bad.sort_by_key(|p| p.line);
        return Err(PracticeError::Csv(bad));
    }
    let outcome = store.practice_import(&fields, update, actor, now_secs())?;
    tracing::info!(%actor, added = outcome.added, updated = outcome.updated, unchanged = outcome.unchanged, kept = outcome.kept, "practices imported");
    Ok(outcome)
}

/// Everything `svoct oct ps show` (and the console's PS page) shows of one practice.
#[derive(Clone, Debug, Serialize)]
pub struct PracticeView {
    pub practice: PracticeRecord,
    pub audit: Vec<PracticeAudit>,
    /// Its latest messages, newest first (the processed index).
    pub messages: Vec<PracticeMessage>,
}

/// The practice `key` names, its audit trail and its latest `limit` messages.
pub fn show(store: &dyn PracticeStore, key: &str, limit: usize) -> Result<PracticeView, PracticeError> {
    let practice = find(store, key)?;
    Ok(PracticeView {
        audit: store.practice_audit(Some(practice.id))?,
        messages: store.practice_messages(&practice.fields.address, limit)?,
        practice,
    })
}

/// Seeds the table from the configuration's `[[sender]]` blocks (at service start): a block
/// whose address is not registered is added (actor `config`); one that is registered with other
/// values does not change the row, the database being the truth once seeded: the difference is
/// logged. Returns how many were added.
pub fn seed(store: &dyn PracticeStore, config: &Config) -> Result<usize, StateError> {
    let mut added = 0;
    for s in &config.senders {
        let fields = fields_of(s);
        match store.practice_find(&fields.address)? {
            Some(row) => {
                let diff = row.fields.differences(&fields);
                if !diff.is_empty() {
                    let diff: Vec<String> = diff
                        .iter()
                        .map(|(name, db, file)| {
                            format!("{name}: {db:?} in the database, {file:?} in the file")
                        })
                        .collect();
                    tracing::warn!(address = %fields.address, differences = %diff.join("; "), "a [[sender]] block differs from the practice in the database, which is kept (change it with svoct oct ps)");
                }
            }
            None => match store.practice_add(&fields, CONFIG_ACTOR, now_secs()) {
                Ok(_) => added += 1,
                Err(StateError::Duplicate { what, value }) => {
                    tracing::warn!(address = %fields.address, "[[sender]] block not seeded: its {what} {value} is another practice's");
                }
                Err(e) => return Err(e),
            },
        }
    }
    if added > 0 {
        tracing::info!(
            added,
            "practices seeded from the configuration's [[sender]] blocks"
        );
    }
    Ok(added)
}
