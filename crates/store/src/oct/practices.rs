//! The PS accounts (practices) the OCT serves, kept in the state database (issue 14 point 8):
//! their rows, the append-only audit trail of every change, and the generation counter the
//! running workers poll to reload their directory.
//!
//! A separate trait from the rest of [`OctStore`](super::OctStore) (which requires it), so
//! that the accounts read as one small boundary. Numbers are unique by their significant
//! digits ([`svoct_formats::PaddedNumber`]), addresses case-insensitively.

use serde::Serialize;

use crate::StoreError;

/// Whether a practice's messages are taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PracticeState {
    /// Its invoices and requests are processed.
    Active,
    /// Its invoices and dLOI requests are refused; returns for it are still relayed.
    Suspended,
}

impl PracticeState {
    /// Stable name, stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            PracticeState::Active => "active",
            PracticeState::Suspended => "suspended",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<PracticeState> {
        match s {
            "active" => Some(PracticeState::Active),
            "suspended" => Some(PracticeState::Suspended),
            _ => None,
        }
    }
}

/// What an operator says of a practice: the fields of a `[[sender]]` block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PracticeFields {
    /// The `From` address of its messages (unique, case-insensitive).
    pub address: String,
    /// The sender number of its files (B2 `000` positions 6-19).
    pub sender_number: String,
    /// The PS number (lot headers, return subjects).
    pub ps_number: String,
    /// ART category code (R6.2).
    pub category: String,
    /// Where ART and returns go; `None`: the address.
    pub mailbox: Option<String>,
    /// The certificate file returns are encrypted for; `None`: plain.
    pub certificate: Option<String>,
}

impl PracticeFields {
    /// The fields that differ from `other`, as `(name, self's value, other's value)`; numbers
    /// compare by their significant digits, addresses case-insensitively.
    pub fn differences(&self, other: &PracticeFields) -> Vec<(&'static str, String, String)> {
        use svoct_formats::PaddedNumber;
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        let mut out = Vec::new();
        let mut field = |name, same: bool, a: String, b: String| {
            if !same {
                out.push((name, a, b));
            }
        };
        field(
            "address",
            self.address.eq_ignore_ascii_case(&other.address),
            self.address.clone(),
            other.address.clone(),
        );
        field(
            "sender_number",
            PaddedNumber::new(&self.sender_number) == PaddedNumber::new(&other.sender_number),
            self.sender_number.clone(),
            other.sender_number.clone(),
        );
        field(
            "ps_number",
            PaddedNumber::new(&self.ps_number) == PaddedNumber::new(&other.ps_number),
            self.ps_number.clone(),
            other.ps_number.clone(),
        );
        field(
            "category",
            self.category == other.category,
            self.category.clone(),
            other.category.clone(),
        );
        field(
            "mailbox",
            self.mailbox == other.mailbox,
            opt(&self.mailbox),
            opt(&other.mailbox),
        );
        field(
            "certificate",
            self.certificate == other.certificate,
            opt(&self.certificate),
            opt(&other.certificate),
        );
        out
    }

    /// `name=value` pairs of every field, for the audit trail of an addition or a removal.
    pub(crate) fn describe(&self) -> String {
        format!(
            "address={} sender_number={} ps_number={} category={} mailbox={} certificate={}",
            self.address,
            self.sender_number,
            self.ps_number,
            self.category,
            self.mailbox.as_deref().unwrap_or("-"),
            self.certificate.as_deref().unwrap_or("-"),
        )
    }
}

/// A practice as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PracticeRecord {
    pub id: i64,
    #[serde(flatten)]
    pub fields: PracticeFields,
    pub state: PracticeState,
    /// Why it was suspended (the operator's words).
    pub state_reason: Option<String>,
    /// Seconds since the epoch.
    pub created_at: i64,
    pub updated_at: i64,
}

/// One line of the audit trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PracticeAudit {
    pub id: i64,
    /// Seconds since the epoch.
    pub at: i64,
    /// Who: the operator's login, `config` for the seeding.
    pub actor: String,
    /// `add`, `update`, `suspend`, `resume`, `remove`.
    pub action: String,
    pub practice_id: i64,
    /// The practice's address when the change was made.
    pub address: String,
    /// What changed, `field: before -> after; ...` (or every field, for `add` and `remove`).
    pub change: String,
}

/// A message of a practice, from the processed index (`svoct oct ps show`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PracticeMessage {
    pub spool_id: String,
    /// When it was processed (seconds since the epoch).
    pub at: i64,
    pub kind: String,
    /// `processed` or `quarantined`.
    pub outcome: String,
    /// The refusal code of a quarantined message (`unknown_sender`, `suspended_sender`...).
    pub code: Option<String>,
    pub reason: Option<String>,
    pub subject: String,
}

/// What an import did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ImportOutcome {
    /// New practices.
    pub added: usize,
    /// Existing practices changed (only with `update`).
    pub updated: usize,
    /// Existing practices the file describes as they are.
    pub unchanged: usize,
    /// Existing practices the file describes otherwise, left as they are (no `update`).
    pub kept: usize,
}

/// The practices of the OCT and their audit trail.
pub trait PracticeStore {
    /// A number that changes with every change of the practices (to reload a directory only
    /// when it moved: one small read).
    fn practice_generation(&self) -> Result<i64, StoreError>;

    /// Every practice, by id.
    fn practice_list(&self) -> Result<Vec<PracticeRecord>, StoreError>;

    /// The practice `key` names: an address (with `@`), else a PS number (any padding), else an
    /// id.
    fn practice_find(&self, key: &str) -> Result<Option<PracticeRecord>, StoreError>;

    /// Registers a practice. [`StoreError::Duplicate`] when its address, sender number or PS
    /// number is already registered.
    fn practice_add(
        &self,
        fields: &PracticeFields,
        actor: &str,
        now: i64,
    ) -> Result<PracticeRecord, StoreError>;

    /// Suspends or resumes practice `id` (`reason`: why, kept with a suspension). Unchanged
    /// (and not audited) when it already is in `state`.
    fn practice_set_state(
        &self,
        id: i64,
        state: PracticeState,
        reason: Option<&str>,
        actor: &str,
        now: i64,
    ) -> Result<PracticeRecord, StoreError>;

    /// Removes practice `id` (its audit trail stays): its messages are then from an unknown
    /// sender.
    fn practice_remove(
        &self,
        id: i64,
        reason: &str,
        actor: &str,
        now: i64,
    ) -> Result<PracticeRecord, StoreError>;

    /// Adds `rows` in one transaction (all or nothing). A row whose address is registered is
    /// changed to what it says with `update`, else kept as it is.
    fn practice_import(
        &self,
        rows: &[PracticeFields],
        update: bool,
        actor: &str,
        now: i64,
    ) -> Result<ImportOutcome, StoreError>;

    /// The audit trail, oldest first: of practice `id`, or of every practice.
    fn practice_audit(&self, id: Option<i64>) -> Result<Vec<PracticeAudit>, StoreError>;

    /// The latest `limit` messages processed from `address`, newest first.
    fn practice_messages(&self, address: &str, limit: usize) -> Result<Vec<PracticeMessage>, StoreError>;
}
