//! The pipeline's durable state (SQLite): processed messages, the outbox, the quarantine and the
//! lots the OCT built itself.
//!
//! # Exactly-once
//!
//! The spool (the ingress's) and this database are two stores, so "processed" is recorded here:
//! a worker commits, in **one transaction**, the row saying spooled message `S` was processed,
//! every outgoing message it produced (forwarded files, ART, relayed returns) and, when refused,
//! its quarantine row (the only copy of a quarantined message: its bound and retention are in
//! `state/quarantine.rs`). Only then does it tell the spool `complete(S)`. After a crash:
//!
//! - before the commit: nothing of `S` exists here; the spool hands `S` out again; it is processed
//!   from scratch (its outputs were never visible);
//! - after the commit, before `complete`: the spool hands `S` out again; [`State::is_processed`]
//!   says so and the worker only completes it.
//!
//! Outgoing messages carry deterministic Message-IDs (forwarded files: from their lots, see
//! [`crate::pipeline::lots_message_id`]; the others: from the spooled message, see
//! [`crate::pipeline::message_id`]) and are stored as final bytes, so a resend after a crash
//! between "sent" and "marked sent" carries the same Message-ID: the SMTP hop is at-least-once,
//! and receivers can de-duplicate on Message-ID (local Maildir delivery de-duplicates itself).
//!
//! # No double billing
//!
//! A spooled message is processed once, but the same content can arrive in several spooled
//! messages (a replay, a client retry after a cut connection). The processed index
//! (`forwarded_lots`, `compostages`) holds what accepted invoice messages forwarded; a
//! message's [`Claims`] are inserted with its outbox rows, and the tables' unique keys decide
//! between two copies committed by two workers or side by side in one batch: the loser is a
//! [`Commit::Conflict`], recorded not at all, and processed again.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod quarantine;
pub use quarantine::{PurgeCause, Purged};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

/// Why the state database failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state database {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("state database, {what}: {source}")]
    Sql {
        what: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("state database: {0}")]
    Invalid(String),
}

fn sql(what: &'static str) -> impl FnOnce(rusqlite::Error) -> StateError {
    move |source| StateError::Sql { what, source }
}

/// Seconds since the epoch, for timestamps stored in the database.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Version 2 moved outgoing message bodies out of `outbox` into `outbox_body`, so that the
/// state changes of a delivery rewrite a small row instead of the whole message. Version 3 added
/// the processed index (`forwarded_lots`, `compostages`) that keeps a replayed or retried
/// invoice file from being forwarded twice. Version 4 added `forwarded_invoices`: the invoice
/// numbers each PS had forwarded as DRE or as contract-99 FSE, for the exclusivity of R3.4
/// (created empty: lots forwarded before it are not in it, their bytes are not kept).
const SCHEMA_VERSION: i64 = 4;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS processed (
    spool_id   TEXT PRIMARY KEY,
    digest     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    reason     TEXT,
    mail_from  TEXT NOT NULL,
    subject    TEXT NOT NULL,
    summary    TEXT NOT NULL,
    at         INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id           INTEGER PRIMARY KEY,
    message_id   TEXT NOT NULL UNIQUE,
    spool_id     TEXT NOT NULL,
    kind         TEXT NOT NULL,
    mail_from    TEXT NOT NULL,
    rcpt         TEXT NOT NULL,
    state        TEXT NOT NULL DEFAULT 'pending',
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL,
    last_error   TEXT,
    created      INTEGER NOT NULL,
    sent         INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(state, next_attempt);
CREATE TABLE IF NOT EXISTS outbox_body (
    id  INTEGER PRIMARY KEY REFERENCES outbox(id),
    raw BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    id         INTEGER PRIMARY KEY,
    spool_id   TEXT NOT NULL UNIQUE,
    code       TEXT NOT NULL,
    reason     TEXT NOT NULL,
    mail_from  TEXT NOT NULL,
    rcpt       TEXT NOT NULL,
    subject    TEXT NOT NULL,
    raw        BLOB NOT NULL,
    state      TEXT NOT NULL DEFAULT 'held',
    at         INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS own_lots (
    lot_number   TEXT NOT NULL,
    lot_date     TEXT NOT NULL,
    file_id      TEXT NOT NULL,
    organisation TEXT NOT NULL,
    message_id   TEXT NOT NULL,
    spool_id     TEXT NOT NULL,
    arl_status   TEXT,
    arl_detail   TEXT,
    arl_at       INTEGER,
    PRIMARY KEY (lot_number, lot_date, file_id)
);
CREATE TABLE IF NOT EXISTS sequence (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS forwarded_lots (
    lot_hash    TEXT PRIMARY KEY,
    ps_number   TEXT NOT NULL,
    lot_number  TEXT NOT NULL,
    lot_date    TEXT NOT NULL,
    file_id     TEXT NOT NULL,
    destination TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    spool_id    TEXT NOT NULL,
    at          INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS compostages (
    sender_number TEXT NOT NULL,
    compostage    TEXT NOT NULL,
    file_hash     TEXT NOT NULL,
    spool_id      TEXT NOT NULL,
    at            INTEGER NOT NULL,
    PRIMARY KEY (sender_number, compostage)
);
CREATE TABLE IF NOT EXISTS forwarded_invoices (
    ps_number      TEXT NOT NULL,
    invoice_number TEXT NOT NULL,
    nature         TEXT NOT NULL,
    lot_hash       TEXT NOT NULL,
    destination    TEXT NOT NULL,
    spool_id       TEXT NOT NULL,
    at             INTEGER NOT NULL,
    PRIMARY KEY (ps_number, invoice_number, nature, lot_hash)
);
"#;

/// What a processed message was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// An invoice file from a PS (forwarded per destination).
    Invoice,
    /// A return from AM relayed to a PS (ARL, RSP, dLOI increments).
    Relay,
    /// An ARL for a lot the OCT built itself (recorded, R4.2).
    OwnArl,
    /// A dLOI request from a PS (answered from the LOI source).
    LoiRequest,
    /// Could not even be classified.
    Unknown,
}

impl MessageKind {
    fn as_str(self) -> &'static str {
        match self {
            MessageKind::Invoice => "invoice",
            MessageKind::Relay => "relay",
            MessageKind::OwnArl => "own_arl",
            MessageKind::LoiRequest => "loi_request",
            MessageKind::Unknown => "unknown",
        }
    }
}

/// What kind of message an outbox row carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutKind {
    /// A file forwarded to an AMO destination.
    Forward,
    /// The complementary flow to an AMC (R8.3).
    Amc,
    /// The OCT's text receipt to the PS.
    Art,
    /// A return relayed to a PS.
    Relay,
    /// dLOI increments answering a request.
    Loi,
}

impl OutKind {
    /// Stable name, stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            OutKind::Forward => "forward",
            OutKind::Amc => "amc",
            OutKind::Art => "art",
            OutKind::Relay => "relay",
            OutKind::Loi => "loi",
        }
    }
}

/// One message to send.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub message_id: String,
    pub kind: OutKind,
    pub mail_from: String,
    pub rcpt: String,
    pub raw: Vec<u8>,
}

/// A lot the OCT built itself, whose ARL the OCT handles (R4.2).
#[derive(Clone, Debug, Serialize)]
pub struct OwnLot {
    pub lot_number: String,
    pub lot_date: String,
    /// The file that carried it (an ARL names it), so that a PS lot with the same number and
    /// date, forwarded in another OCT file, is never taken for it.
    pub file_id: String,
    pub organisation: String,
    pub message_id: String,
}

/// An ARL for a lot the OCT built.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OwnArl {
    pub lot_number: String,
    pub lot_date: String,
    /// The file the ARL names; empty when it names none (then number and date decide).
    pub file_id: String,
    /// `positive` or `negative`.
    pub status: String,
    pub detail: String,
}

/// The ARL status of an own lot: (status, detail), both `None` until an ARL arrived.
pub type ArlStatus = (Option<String>, Option<String>);

/// A quarantine decision.
#[derive(Clone, Debug)]
pub struct QuarantineEntry {
    /// Stable reason code (`undecryptable`, `unknown_sender`, ...).
    pub code: String,
    /// Human explanation.
    pub reason: String,
    pub rcpt: Vec<String>,
    pub raw: Vec<u8>,
}

/// A lot an invoice message forwards, recorded in the processed index so that the same lot is
/// never forwarded again (see [`Claims`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LotClaim {
    /// SHA-256 (hex) of the lot's bytes as the PS sealed them: the lot's identity. They carry
    /// the PS number, the lot number and the lot date, so equal bytes are the same lot whatever
    /// file carries it.
    pub lot_hash: String,
    pub ps_number: String,
    pub lot_number: String,
    pub lot_date: String,
    /// The PS file that carried it (`000` *identification du fichier*), for the operator.
    pub file_id: String,
    /// Where it went (route label), told to the PS if the lot comes again.
    pub destination: String,
    /// The forwarded message that carries it.
    pub message_id: String,
}

/// The compostage of an accepted invoice message and the hash of its decrypted file: the annex
/// makes the compostage unique per message (R5.3), so one (sender, compostage) carries one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompostageClaim {
    /// The sender number (`exercice`), leading zeros removed.
    pub sender_number: String,
    pub compostage: String,
    /// SHA-256 (hex) of the decrypted, decompressed file.
    pub file_hash: String,
    /// The pipeline found no message under this compostage: if one was committed meanwhile,
    /// this message is processed again (and answered as the duplicate it is). `false`: it was
    /// found with this very file, and this message is that duplicate.
    pub first_use: bool,
}

/// What an invoice message takes in the processed index. Committed with its outbox rows; a
/// claim another message already holds (a lot already forwarded, a compostage already used for
/// another file) makes the whole message a [`Commit::Conflict`]: nothing of it is recorded and
/// the worker processes it again, now seeing the other message's rows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Claims {
    pub compostage: Option<CompostageClaim>,
    pub lots: Vec<LotClaim>,
    /// DRE and contract-99 invoices of the forwarded lots (R3.4).
    pub invoices: Vec<InvoiceClaim>,
}

/// What an invoice is for R3.4: a DRE, or an FSE with contract type 99 (the OCT splits it and
/// claims the complementary part itself). One invoice number of one PS may be one or the other,
/// never both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceNature {
    Dre,
    Contract99,
}

impl InvoiceNature {
    /// Stable name, stored.
    pub fn as_str(self) -> &'static str {
        match self {
            InvoiceNature::Dre => "dre",
            InvoiceNature::Contract99 => "contract99",
        }
    }

    /// The nature that excludes this one.
    pub fn other(self) -> InvoiceNature {
        match self {
            InvoiceNature::Dre => InvoiceNature::Contract99,
            InvoiceNature::Contract99 => InvoiceNature::Dre,
        }
    }

    /// How the ART names it (French).
    pub fn label(self) -> &'static str {
        match self {
            InvoiceNature::Dre => "DRE",
            InvoiceNature::Contract99 => "FSE de type de contrat 99",
        }
    }
}

/// An invoice a forwarded lot carries as DRE or contract-99 FSE, recorded so that the other
/// nature of the same invoice is refused later (R3.4). Committed with the lot's [`LotClaim`];
/// the other nature already recorded for the same PS and number makes the message a
/// [`Commit::Conflict`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvoiceClaim {
    /// PS number, leading zeros removed.
    pub ps_number: String,
    /// *N° facture* as a number (type 2 positions 27-35).
    pub invoice_number: u64,
    pub nature: InvoiceNature,
    /// The lot that carries it ([`LotClaim::lot_hash`]).
    pub lot_hash: String,
    /// Where the lot went (route label), told to the PS.
    pub destination: String,
}

/// An invoice found in the index of R3.4.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenInvoice {
    /// Route label its lot was forwarded to.
    pub destination: String,
    /// When it was committed (seconds since the epoch).
    pub at: i64,
}

/// A lot found in the processed index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenLot {
    /// Route label it was forwarded to.
    pub destination: String,
    /// When it was committed (seconds since the epoch).
    pub at: i64,
    pub message_id: String,
}

/// What [`State::commit_batch`] did with one processed message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Commit {
    /// Recorded with everything it produced.
    Recorded,
    /// The spooled message was already committed: nothing changed.
    AlreadyProcessed,
    /// One of its [`Claims`] is held by another message (committed earlier, or earlier in the
    /// same batch): nothing of it was recorded; process it again.
    Conflict,
}

/// Everything one spooled message produced, committed atomically by [`State::commit`].
#[derive(Clone, Debug)]
pub struct Processed {
    pub spool_id: String,
    pub digest: String,
    pub kind: MessageKind,
    pub mail_from: String,
    pub subject: String,
    /// JSON summary (lots and their fate), shown by `status` and `quarantine show`.
    pub summary: serde_json::Value,
    pub outgoing: Vec<Outgoing>,
    pub own_lots: Vec<OwnLot>,
    /// ARL received for lots the OCT built (R4.2).
    pub own_arls: Vec<OwnArl>,
    pub quarantine: Option<QuarantineEntry>,
    /// When this is the retry of a quarantined message: its quarantine id, marked `retried` in
    /// the same transaction.
    pub retried_quarantine: Option<i64>,
    /// The lots it forwards and the compostage it uses (accepted invoice messages only).
    pub claims: Claims,
}

/// A quarantined message an operator asked to retry.
#[derive(Clone, Debug)]
pub struct RetryItem {
    pub id: i64,
    pub spool_id: String,
    pub mail_from: String,
    pub rcpt: Vec<String>,
    pub raw: Vec<u8>,
}

/// An outbox row due for delivery.
#[derive(Clone, Debug)]
pub struct Due {
    pub id: i64,
    pub message_id: String,
    pub kind: String,
    pub mail_from: String,
    pub rcpt: String,
    pub raw: Vec<u8>,
    pub attempts: u32,
    /// When the row was queued (seconds since the epoch).
    pub created: i64,
}

/// What became of one delivery attempt, recorded by [`State::record_deliveries`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Delivered: the row is `sent`.
    Sent,
    /// Transient failure: pending again from `at` (seconds since the epoch).
    Retry { at: i64, error: String },
    /// Permanent failure, or retries exhausted: the row is `failed`.
    Failed { error: String },
}

/// A quarantined message, as listed.
#[derive(Clone, Debug, Serialize)]
pub struct QuarantineRow {
    pub id: i64,
    pub spool_id: String,
    pub code: String,
    pub reason: String,
    pub mail_from: String,
    pub rcpt: Vec<String>,
    pub subject: String,
    pub state: String,
    pub at: i64,
    pub bytes: usize,
}

/// An outbox row as shown by `status`.
#[derive(Clone, Debug, Serialize)]
pub struct OutboxRow {
    pub id: i64,
    pub message_id: String,
    pub spool_id: String,
    pub kind: String,
    pub rcpt: String,
    pub state: String,
    pub attempts: u32,
    pub next_attempt: i64,
    pub last_error: Option<String>,
}

/// Counters and queue depths for `svoct oct status`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counters {
    /// Processed messages by kind and outcome (`invoice/processed`, `relay/quarantined`...).
    pub processed: std::collections::BTreeMap<String, u64>,
    /// Outbox rows by state (`pending`, `sent`, `failed`).
    pub outbox: std::collections::BTreeMap<String, u64>,
    /// Outbox rows by kind (`forward`, `art`, ...).
    pub outbox_by_kind: std::collections::BTreeMap<String, u64>,
    /// Quarantine rows by state (`held`, `retry`, `retried`, `purged`: content removed).
    pub quarantine: std::collections::BTreeMap<String, u64>,
    /// Bytes of quarantined content held (bounded by `quarantine.max_bytes`).
    pub quarantine_bytes: u64,
    /// Lots the OCT built, and how many have an ARL.
    pub own_lots: u64,
    pub own_lots_acknowledged: u64,
}

/// Version 1 → 2: bodies move from `outbox.raw` to `outbox_body`. In one immediate
/// transaction that re-checks the column, so that two processes opening an old database at the
/// same time migrate it once.
fn migrate_outbox_body(conn: &Connection) -> Result<(), StateError> {
    immediate(conn, "migrate outbox bodies", || {
        let has_raw: bool = conn
            .query_row(
                "SELECT COUNT(*) FROM pragma_table_info('outbox') WHERE name = 'raw'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(sql("inspect outbox"))?
            > 0;
        if has_raw {
            conn.execute_batch(
                "INSERT OR IGNORE INTO outbox_body (id, raw) SELECT id, raw FROM outbox;
                 ALTER TABLE outbox DROP COLUMN raw;",
            )
            .map_err(sql("move outbox bodies"))?;
        }
        Ok(())
    })
}

/// Runs `f` inside `BEGIN IMMEDIATE` … `COMMIT` on `conn` (rolled back when it fails).
fn immediate<T>(
    conn: &Connection,
    what: &'static str,
    f: impl FnOnce() -> Result<T, StateError>,
) -> Result<T, StateError> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(sql(what))?;
    match f() {
        Ok(v) => {
            conn.execute_batch("COMMIT").map_err(sql(what))?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Records the claims of one message; `false` when one is held by another message.
fn insert_claims(tx: &Connection, p: &Processed, now: i64) -> Result<bool, StateError> {
    if let Some(c) = &p.claims.compostage {
        let inserted = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO compostages (sender_number, compostage, file_hash, spool_id, at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    c.sender_number,
                    c.compostage,
                    c.file_hash,
                    p.spool_id,
                    now
                ])
            })
            .map_err(sql("insert compostage"))?;
        if inserted == 0 && c.first_use {
            return Ok(false);
        }
        // Already there with the same file: a duplicate message, which may reuse it.
        let held: String = tx
            .prepare_cached("SELECT file_hash FROM compostages WHERE sender_number = ?1 AND compostage = ?2")
            .and_then(|mut st| st.query_row(params![c.sender_number, c.compostage], |r| r.get(0)))
            .map_err(sql("read compostage"))?;
        if held != c.file_hash {
            return Ok(false);
        }
    }
    for l in &p.claims.lots {
        let inserted = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO forwarded_lots (lot_hash, ps_number, lot_number, lot_date,
                 file_id, destination, message_id, spool_id, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    l.lot_hash,
                    l.ps_number,
                    l.lot_number,
                    l.lot_date,
                    l.file_id,
                    l.destination,
                    l.message_id,
                    p.spool_id,
                    now
                ])
            })
            .map_err(sql("insert forwarded lot"))?;
        if inserted == 0 {
            return Ok(false);
        }
    }
    insert_invoice_claims(tx, p, now)
}

/// The R3.4 part of [`insert_claims`]: `false` when the other nature of one of the invoices is
/// already recorded for that PS (committed by another message meanwhile).
fn insert_invoice_claims(tx: &Connection, p: &Processed, now: i64) -> Result<bool, StateError> {
    for c in &p.claims.invoices {
        let number = c.invoice_number.to_string();
        let excluded = tx
            .prepare_cached(
                "SELECT 1 FROM forwarded_invoices
                 WHERE ps_number = ?1 AND invoice_number = ?2 AND nature = ?3 LIMIT 1",
            )
            .and_then(|mut st| {
                st.query_row(
                    params![c.ps_number, number, c.nature.other().as_str()],
                    |_| Ok(()),
                )
                .optional()
            })
            .map_err(sql("read forwarded invoice"))?;
        if excluded.is_some() {
            return Ok(false);
        }
        tx.prepare_cached(
            "INSERT OR IGNORE INTO forwarded_invoices
             (ps_number, invoice_number, nature, lot_hash, destination, spool_id, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .and_then(|mut st| {
            st.execute(params![
                c.ps_number,
                number,
                c.nature.as_str(),
                c.lot_hash,
                c.destination,
                p.spool_id,
                now
            ])
        })
        .map_err(sql("insert forwarded invoice"))?;
    }
    Ok(true)
}

/// The rows of one processed message, inside the caller's transaction (a savepoint of it: on
/// [`Commit::Conflict`] the caller rolls back what was written).
fn insert_processed(tx: &Connection, p: &Processed, now: i64) -> Result<Commit, StateError> {
    let outcome = if p.quarantine.is_some() {
        "quarantined"
    } else {
        "processed"
    };
    let inserted = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO processed
             (spool_id, digest, kind, outcome, reason, mail_from, subject, summary, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .and_then(|mut st| {
            st.execute(params![
                p.spool_id,
                p.digest,
                p.kind.as_str(),
                outcome,
                p.quarantine.as_ref().map(|q| q.reason.as_str()),
                p.mail_from,
                p.subject,
                p.summary.to_string(),
                now
            ])
        })
        .map_err(sql("insert processed"))?;
    if inserted == 0 {
        return Ok(Commit::AlreadyProcessed);
    }
    if !insert_claims(tx, p, now)? {
        return Ok(Commit::Conflict);
    }
    for o in &p.outgoing {
        let id = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO outbox
                 (message_id, spool_id, kind, mail_from, rcpt, next_attempt, created)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) RETURNING id",
            )
            .and_then(|mut st| {
                st.query_row(
                    params![
                        o.message_id,
                        p.spool_id,
                        o.kind.as_str(),
                        o.mail_from,
                        o.rcpt,
                        now
                    ],
                    |r| r.get::<_, i64>(0),
                )
                .optional()
            })
            .map_err(sql("insert outbox"))?;
        // None: the Message-ID is already queued (its body with it).
        if let Some(id) = id {
            tx.prepare_cached("INSERT INTO outbox_body (id, raw) VALUES (?1, ?2)")
                .and_then(|mut st| st.execute(params![id, o.raw]))
                .map_err(sql("insert outbox body"))?;
        }
    }
    for l in &p.own_lots {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO own_lots
             (lot_number, lot_date, file_id, organisation, message_id, spool_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .and_then(|mut st| {
            st.execute(params![
                l.lot_number,
                l.lot_date,
                l.file_id,
                l.organisation,
                l.message_id,
                p.spool_id
            ])
        })
        .map_err(sql("insert own lot"))?;
    }
    for a in &p.own_arls {
        tx.prepare_cached(
            "UPDATE own_lots SET arl_status = ?3, arl_detail = ?4, arl_at = ?5
             WHERE lot_number = ?1 AND lot_date = ?2 AND (?6 = '' OR file_id = ?6)",
        )
        .and_then(|mut st| {
            st.execute(params![
                a.lot_number,
                a.lot_date,
                a.status,
                a.detail,
                now,
                a.file_id
            ])
        })
        .map_err(sql("record ARL"))?;
    }
    if let Some(id) = p.retried_quarantine {
        tx.execute("UPDATE quarantine SET state = 'retried' WHERE id = ?1", [id])
            .map_err(sql("mark retried"))?;
    }
    if let Some(q) = &p.quarantine {
        tx.execute(
            "INSERT OR REPLACE INTO quarantine
             (spool_id, code, reason, mail_from, rcpt, subject, raw, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                p.spool_id,
                q.code,
                q.reason,
                p.mail_from,
                serde_json::to_string(&q.rcpt).unwrap_or_default(),
                p.subject,
                q.raw,
                now
            ],
        )
        .map_err(sql("insert quarantine"))?;
    }
    Ok(Commit::Recorded)
}

/// The state database.
pub struct State {
    conn: Connection,
    gate: WriteGate,
    instance: std::cell::OnceCell<String>,
}

/// Serialises the write transactions of the connections one process holds on the state
/// database. SQLite lets one writer in at a time and makes the others poll with growing sleeps
/// (up to 100 ms) in its busy handler; queuing on a mutex instead wakes the next writer as soon
/// as the previous commit ends. Other processes (the CLI) still meet SQLite's own lock and busy
/// timeout.
#[derive(Clone, Debug, Default)]
pub struct WriteGate(std::sync::Arc<std::sync::Mutex<()>>);

impl WriteGate {
    fn enter(&self) -> std::sync::MutexGuard<'_, ()> {
        // A panic in another holder poisons the mutex, not the database: carry on.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").finish_non_exhaustive()
    }
}

impl State {
    /// Opens (creating when missing) the database: WAL, `synchronous=FULL` (a commit survives a
    /// power cut), busy timeout so that the CLI and the service can share it.
    pub fn open(path: &Path) -> Result<State, StateError> {
        State::open_gated(path, WriteGate::default())
    }

    /// Like [`State::open`], with write transactions queued behind `gate`: give the same gate
    /// to every connection of one process.
    pub fn open_gated(path: &Path, gate: WriteGate) -> Result<State, StateError> {
        // Created 0600 (its directory 0700 when missing) before SQLite opens it, so that the
        // -wal and -shm files SQLite creates get the same mode.
        svoct_mail::fsx::prepare_db_file(path)
            .map_err(|e| StateError::Invalid(format!("cannot prepare {}: {e}", path.display())))?;
        let conn = Connection::open(path).map_err(|source| StateError::Open {
            path: path.display().to_string(),
            source,
        })?;
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(sql("busy timeout"))?;
        svoct_store::db::enable_wal(&conn, Duration::from_secs(30)).map_err(sql("WAL mode"))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sql("synchronous"))?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(sql("schema version"))?;
        if version > SCHEMA_VERSION {
            return Err(StateError::Invalid(format!(
                "schema version {version} is newer than this program's {SCHEMA_VERSION}"
            )));
        }
        conn.execute_batch(SCHEMA).map_err(sql("schema"))?;
        conn.execute_batch(quarantine::SCHEMA).map_err(sql("schema"))?;
        if version == 1 {
            migrate_outbox_body(&conn)?;
        }
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(sql("schema version"))?;
        Ok(State {
            conn,
            gate,
            instance: std::cell::OnceCell::new(),
        })
    }

    /// Whether spooled message `spool_id` was already committed.
    pub fn is_processed(&self, spool_id: &str) -> Result<bool, StateError> {
        self.conn
            .query_row("SELECT 1 FROM processed WHERE spool_id = ?1", [spool_id], |_| {
                Ok(())
            })
            .optional()
            .map(|o| o.is_some())
            .map_err(sql("processed lookup"))
    }

    /// The outcome (`processed` or `quarantined`) and reason of a committed message.
    pub fn outcome(&self, spool_id: &str) -> Result<Option<(String, Option<String>)>, StateError> {
        self.conn
            .prepare_cached("SELECT outcome, reason FROM processed WHERE spool_id = ?1")
            .and_then(|mut st| {
                st.query_row([spool_id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(sql("processed outcome"))
    }

    /// Asks for a quarantined message to be processed again (by the running service, or at its
    /// next start). Returns `false` when there is no such message still held.
    pub fn quarantine_request_retry(&self, id: i64) -> Result<bool, StateError> {
        let n = self
            .conn
            .execute(
                "UPDATE quarantine SET state = 'retry' WHERE id = ?1 AND state = 'held'",
                [id],
            )
            .map_err(sql("request retry"))?;
        Ok(n > 0)
    }

    /// The oldest quarantined message waiting for a retry.
    pub fn take_retry(&self) -> Result<Option<RetryItem>, StateError> {
        self.conn
            .query_row(
                "SELECT id, spool_id, mail_from, rcpt, raw FROM quarantine
                 WHERE state = 'retry' ORDER BY id LIMIT 1",
                [],
                |r| {
                    let rcpt: String = r.get(3)?;
                    Ok(RetryItem {
                        id: r.get(0)?,
                        spool_id: r.get(1)?,
                        mail_from: r.get(2)?,
                        rcpt: serde_json::from_str(&rcpt).unwrap_or_default(),
                        raw: r.get(4)?,
                    })
                },
            )
            .optional()
            .map_err(sql("take retry"))
    }

    /// Records everything one spooled message produced, in one transaction (see
    /// [`State::commit_batch`]). Outgoing messages whose Message-ID is already in the outbox are
    /// not queued twice.
    pub fn commit(&mut self, p: &Processed) -> Result<Commit, StateError> {
        let done = self.commit_batch(std::slice::from_ref(p))?;
        Ok(done.first().copied().unwrap_or(Commit::AlreadyProcessed))
    }

    /// Records several processed messages in one transaction (one durable write for all).
    /// Returns, per message, what was done: nothing of a message already committed or in
    /// conflict over a claim changes (each message is written in its own savepoint), the others
    /// are recorded. All or nothing on error: then none of them is recorded.
    pub fn commit_batch(&mut self, batch: &[Processed]) -> Result<Vec<Commit>, StateError> {
        let now = now_secs();
        let _gate = self.gate.enter();
        let mut tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("begin"))?;
        let mut done = Vec::with_capacity(batch.len());
        for p in batch {
            let sp = tx.savepoint().map_err(sql("savepoint"))?;
            let outcome = insert_processed(&sp, p, now)?;
            if outcome == Commit::Recorded {
                sp.commit().map_err(sql("release savepoint"))?;
            } else {
                // Rolls back what this message wrote (its `processed` row, a claim).
                sp.finish().map_err(sql("roll back savepoint"))?;
            }
            done.push(outcome);
        }
        tx.commit().map_err(sql("commit"))?;
        Ok(done)
    }

    /// The lot with this hash in the processed index, if it was forwarded.
    pub fn forwarded_lot(&self, lot_hash: &str) -> Result<Option<SeenLot>, StateError> {
        self.conn
            .prepare_cached("SELECT destination, at, message_id FROM forwarded_lots WHERE lot_hash = ?1")
            .and_then(|mut st| {
                st.query_row([lot_hash], |r| {
                    Ok(SeenLot {
                        destination: r.get(0)?,
                        at: r.get(1)?,
                        message_id: r.get(2)?,
                    })
                })
                .optional()
            })
            .map_err(sql("forwarded lot lookup"))
    }

    /// The hash of the file an accepted message of `sender_number` carried under `compostage`.
    pub fn compostage_file(
        &self,
        sender_number: &str,
        compostage: &str,
    ) -> Result<Option<String>, StateError> {
        self.conn
            .prepare_cached("SELECT file_hash FROM compostages WHERE sender_number = ?1 AND compostage = ?2")
            .and_then(|mut st| {
                st.query_row(params![sender_number, compostage], |r| r.get(0))
                    .optional()
            })
            .map_err(sql("compostage lookup"))
    }

    /// The first forwarded invoice of PS `ps_number` (leading zeros removed) with this number and
    /// nature, if any (R3.4).
    pub fn forwarded_invoice(
        &self,
        ps_number: &str,
        invoice_number: u64,
        nature: InvoiceNature,
    ) -> Result<Option<SeenInvoice>, StateError> {
        self.conn
            .prepare_cached(
                "SELECT destination, at FROM forwarded_invoices
                 WHERE ps_number = ?1 AND invoice_number = ?2 AND nature = ?3 ORDER BY at LIMIT 1",
            )
            .and_then(|mut st| {
                st.query_row(
                    params![ps_number, invoice_number.to_string(), nature.as_str()],
                    |r| {
                        Ok(SeenInvoice {
                            destination: r.get(0)?,
                            at: r.get(1)?,
                        })
                    },
                )
                .optional()
            })
            .map_err(sql("forwarded invoice lookup"))
    }

    /// The next outbox row due at `now` (oldest first), if any.
    pub fn next_due(&self, now: i64) -> Result<Option<Due>, StateError> {
        Ok(self.due_rows(now, 1)?.into_iter().next())
    }

    fn due_rows(&self, now: i64, limit: usize) -> Result<Vec<Due>, StateError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT o.id, o.message_id, o.kind, o.mail_from, o.rcpt, b.raw, o.attempts, o.created
                 FROM outbox o JOIN outbox_body b ON b.id = o.id
                 WHERE o.state = 'pending' AND o.next_attempt <= ?1
                 ORDER BY o.next_attempt, o.id LIMIT ?2",
            )
            .map_err(sql("next due"))?;
        let rows = stmt
            .query_map(params![now, i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                Ok(Due {
                    id: r.get(0)?,
                    message_id: r.get(1)?,
                    kind: r.get(2)?,
                    mail_from: r.get(3)?,
                    rcpt: r.get(4)?,
                    raw: r.get(5)?,
                    attempts: r.get(6)?,
                    created: r.get(7)?,
                })
            })
            .map_err(sql("next due"))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql("next due"))
    }

    /// Takes up to `limit` due rows for delivery (oldest first, one transaction): marks them
    /// `sending` so that parallel senders never deliver the same row. A crash leaves them
    /// `sending`; [`State::reset_sending`] at start puts them back (the SMTP hop is
    /// at-least-once).
    pub fn claim_due_batch(&self, now: i64, limit: usize) -> Result<Vec<Due>, StateError> {
        self.in_immediate("claim", || {
            let due = self.due_rows(now, limit)?;
            let mut claim = self
                .conn
                .prepare_cached("UPDATE outbox SET state = 'sending' WHERE id = ?1")
                .map_err(sql("claim"))?;
            for d in &due {
                claim.execute([d.id]).map_err(sql("claim"))?;
            }
            Ok(due)
        })
    }

    /// Records the outcomes of several delivery attempts in one transaction.
    pub fn record_deliveries(&self, outcomes: &[(i64, DeliveryOutcome)]) -> Result<(), StateError> {
        self.in_immediate("record deliveries", || {
            for (id, outcome) in outcomes {
                self.apply_delivery(*id, outcome)?;
            }
            Ok(())
        })
    }

    fn apply_delivery(&self, id: i64, outcome: &DeliveryOutcome) -> Result<(), StateError> {
        let (what, changed) = match outcome {
            DeliveryOutcome::Sent => (
                "mark sent",
                self.conn
                    .prepare_cached(
                        "UPDATE outbox SET state = 'sent', sent = ?2, attempts = attempts + 1,
                         last_error = NULL WHERE id = ?1",
                    )
                    .and_then(|mut st| st.execute(params![id, now_secs()])),
            ),
            DeliveryOutcome::Retry { at, error } => (
                "mark retry",
                self.conn
                    .prepare_cached(
                        "UPDATE outbox SET state = 'pending', attempts = attempts + 1,
                         next_attempt = ?2, last_error = ?3 WHERE id = ?1",
                    )
                    .and_then(|mut st| st.execute(params![id, at, error])),
            ),
            DeliveryOutcome::Failed { error } => (
                "mark failed",
                self.conn
                    .prepare_cached(
                        "UPDATE outbox SET state = 'failed', attempts = attempts + 1,
                         last_error = ?2 WHERE id = ?1",
                    )
                    .and_then(|mut st| st.execute(params![id, error])),
            ),
        };
        changed.map_err(sql(what))?;
        Ok(())
    }

    /// A random identifier of this state database, drawn at first use and kept: it makes the
    /// names of files the OCT writes unique across OCT instances sharing a Maildir.
    pub fn instance_id(&self) -> Result<String, StateError> {
        if let Some(id) = self.instance.get() {
            return Ok(id.clone());
        }
        // Drawn before looking: kept only when the database has none yet.
        let mut bytes = [0u8; 8];
        openssl::rand::rand_bytes(&mut bytes)
            .map_err(|e| StateError::Invalid(format!("no random instance id: {e}")))?;
        let drawn: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let id = self.update_value("instance", |current| {
            let id = match current {
                Some(id) if !id.is_empty() => id.to_owned(),
                _ => drawn,
            };
            (id.clone(), id)
        })?;
        Ok(self.instance.get_or_init(|| id).clone())
    }

    /// [`immediate`] behind this process's write gate.
    fn in_immediate<T>(
        &self,
        what: &'static str,
        f: impl FnOnce() -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        let _gate = self.gate.enter();
        immediate(&self.conn, what, f)
    }

    /// Puts claimed rows back in the queue (a sender that could not finish its batch).
    pub fn unclaim(&self, ids: impl IntoIterator<Item = i64>) -> Result<(), StateError> {
        let mut st = self
            .conn
            .prepare_cached("UPDATE outbox SET state = 'pending' WHERE id = ?1 AND state = 'sending'")
            .map_err(sql("unclaim"))?;
        for id in ids {
            st.execute([id]).map_err(sql("unclaim"))?;
        }
        Ok(())
    }

    /// Puts rows left `sending` by a crash back in the queue; returns how many.
    pub fn reset_sending(&self) -> Result<usize, StateError> {
        self.conn
            .execute("UPDATE outbox SET state = 'pending' WHERE state = 'sending'", [])
            .map_err(sql("reset sending"))
    }

    /// When the next pending row becomes due (to sleep until then).
    pub fn next_due_at(&self) -> Result<Option<i64>, StateError> {
        self.conn
            .query_row(
                "SELECT MIN(next_attempt) FROM outbox WHERE state = 'pending'",
                [],
                |r| r.get(0),
            )
            .map_err(sql("next due time"))
    }

    /// Puts failed outbox rows back in the queue (operator action after fixing the cause).
    pub fn requeue_failed(&self) -> Result<usize, StateError> {
        self.conn
            .execute(
                "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt = ?1
                 WHERE state = 'failed'",
                [now_secs()],
            )
            .map_err(sql("requeue failed"))
    }

    /// Records an ARL for a lot the OCT built. Returns `false` when the lot is not one of the
    /// OCT's own.
    pub fn record_own_arl(
        &self,
        lot_number: &str,
        lot_date: &str,
        status: &str,
        detail: &str,
    ) -> Result<bool, StateError> {
        let n = self
            .conn
            .execute(
                "UPDATE own_lots SET arl_status = ?3, arl_detail = ?4, arl_at = ?5
                 WHERE lot_number = ?1 AND lot_date = ?2",
                params![lot_number, lot_date, status, detail, now_secs()],
            )
            .map_err(sql("record ARL"))?;
        Ok(n > 0)
    }

    /// Whether (lot number, lot date, file) is a lot the OCT built; an empty `file_id` matches
    /// any file.
    pub fn is_own_lot(&self, lot_number: &str, lot_date: &str, file_id: &str) -> Result<bool, StateError> {
        self.conn
            .query_row(
                "SELECT 1 FROM own_lots WHERE lot_number = ?1 AND lot_date = ?2
                 AND (?3 = '' OR file_id = ?3)",
                [lot_number, lot_date, file_id],
                |_| Ok(()),
            )
            .optional()
            .map(|o| o.is_some())
            .map_err(sql("own lot lookup"))
    }

    /// The own-lot ARL status, if recorded.
    pub fn own_lot_arl(&self, lot_number: &str, lot_date: &str) -> Result<Option<ArlStatus>, StateError> {
        self.conn
            .query_row(
                "SELECT arl_status, arl_detail FROM own_lots WHERE lot_number = ?1 AND lot_date = ?2",
                [lot_number, lot_date],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(sql("own lot ARL"))
    }

    /// Allocates the next value of a named counter, cycling in `1..=max`, under the write lock
    /// (used for the lot numbers of what the OCT builds).
    pub fn next_sequence(&self, name: &str, max: u64) -> Result<u64, StateError> {
        self.reserve_sequence(name, 1, max)
    }

    /// Reserves `count` consecutive values of a named counter cycling in `1..=max` and returns
    /// the first: the caller owns `first..first + count` (a block never wraps; values skipped by
    /// a crash are simply never used). One transaction per block keeps allocation off the
    /// per-message path.
    pub fn reserve_sequence(&self, name: &str, count: u64, max: u64) -> Result<u64, StateError> {
        let count = count.clamp(1, max.max(1));
        self.update_value(name, |cur| {
            let current: u64 = cur.and_then(|v| v.parse().ok()).unwrap_or(0);
            let first = if current.saturating_add(count) > max {
                1
            } else {
                current + 1
            };
            let last = first + count - 1;
            (last.to_string(), first)
        })
    }

    /// Reserves `count` compostage counters within one second: returns `(unix second, first
    /// counter)`. The second is the current one, or the last one used when the clock went back,
    /// or the next one when the 5-digit counter is exhausted, so compostages never repeat and
    /// never go backwards.
    pub fn reserve_compostage(&self, count: u32, now: i64) -> Result<(i64, u32), StateError> {
        let count = count.clamp(1, 1000);
        self.update_value("compostage", |cur| {
            let (last_secs, last_counter) = cur
                .and_then(|v| v.split_once(':'))
                .and_then(|(s, c)| Some((s.parse::<i64>().ok()?, c.parse::<u32>().ok()?)))
                .unwrap_or((i64::MIN, 0));
            let (secs, first) = if now > last_secs {
                (now, 0)
            } else if last_counter.saturating_add(count) <= 99_999 {
                (last_secs, last_counter + 1)
            } else {
                (last_secs.saturating_add(1), 0)
            };
            let last = first + count - 1;
            (format!("{secs}:{last}"), (secs, first))
        })
    }

    /// Relaxes durability for this connection to `synchronous=NORMAL`: commits survive a
    /// process crash but may be lost on power loss. Used by the sender for "sent" marks only:
    /// losing one means a resend with the same Message-ID, which the at-least-once SMTP hop
    /// allows anyway.
    pub fn relax_durability(&self) -> Result<(), StateError> {
        self.conn
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql("synchronous"))
    }

    /// Reads and replaces a named text value under the write lock: `f` gets the current value
    /// and returns the new one (used by the compostage allocator).
    pub fn update_value<T>(
        &self,
        name: &str,
        f: impl FnOnce(Option<&str>) -> (String, T),
    ) -> Result<T, StateError> {
        self.in_immediate("update value", || {
            let current: Option<String> = self
                .conn
                .prepare_cached("SELECT value FROM sequence WHERE name = ?1")
                .and_then(|mut st| st.query_row([name], |r| r.get(0)).optional())
                .map_err(sql("read value"))?;
            let (new, out) = f(current.as_deref());
            self.conn
                .prepare_cached("INSERT OR REPLACE INTO sequence (name, value) VALUES (?1, ?2)")
                .and_then(|mut st| st.execute(params![name, new]))
                .map_err(sql("write value"))?;
            Ok(out)
        })
    }

    /// Counters and queue depths.
    pub fn counters(&self) -> Result<Counters, StateError> {
        let mut c = Counters::default();
        let group = |q: &str, what: &'static str| -> Result<Vec<(String, u64)>, StateError> {
            let mut stmt = self.conn.prepare(q).map_err(sql(what))?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .map_err(sql(what))?;
            let mut out = Vec::new();
            for row in rows {
                let (k, v) = row.map_err(sql(what))?;
                out.push((k, u64::try_from(v).unwrap_or(0)));
            }
            Ok(out)
        };
        c.processed = group(
            "SELECT kind || '/' || outcome, COUNT(*) FROM processed GROUP BY 1",
            "count processed",
        )?
        .into_iter()
        .collect();
        c.outbox = group("SELECT state, COUNT(*) FROM outbox GROUP BY 1", "count outbox")?
            .into_iter()
            .collect();
        c.outbox_by_kind = group(
            "SELECT kind, COUNT(*) FROM outbox GROUP BY 1",
            "count outbox kinds",
        )?
        .into_iter()
        .collect();
        c.quarantine = group(
            "SELECT state, COUNT(*) FROM quarantine GROUP BY 1",
            "count quarantine",
        )?
        .into_iter()
        .collect();
        let (n, acked): (i64, i64) = self
            .conn
            .query_row("SELECT COUNT(*), COUNT(arl_status) FROM own_lots", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(sql("count own lots"))?;
        c.quarantine_bytes = self.quarantine_bytes()?;
        c.own_lots = u64::try_from(n).unwrap_or(0);
        c.own_lots_acknowledged = u64::try_from(acked).unwrap_or(0);
        Ok(c)
    }

    /// Outbox rows not yet delivered (pending and failed), oldest first, at most `limit`.
    pub fn undelivered(&self, limit: usize) -> Result<Vec<OutboxRow>, StateError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, message_id, spool_id, kind, rcpt, state, attempts, next_attempt,
                 last_error FROM outbox WHERE state != 'sent' ORDER BY id LIMIT ?1",
            )
            .map_err(sql("list outbox"))?;
        let rows = stmt
            .query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                Ok(OutboxRow {
                    id: r.get(0)?,
                    message_id: r.get(1)?,
                    spool_id: r.get(2)?,
                    kind: r.get(3)?,
                    rcpt: r.get(4)?,
                    state: r.get(5)?,
                    attempts: r.get(6)?,
                    next_attempt: r.get(7)?,
                    last_error: r.get(8)?,
                })
            })
            .map_err(sql("list outbox"))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql("list outbox"))
    }

    /// Every outbox row's (Message-ID, kind, recipient, state), for tests and audits.
    pub fn outbox_ids(&self) -> Result<Vec<(String, String, String, String)>, StateError> {
        let mut stmt = self
            .conn
            .prepare("SELECT message_id, kind, rcpt, state FROM outbox ORDER BY id")
            .map_err(sql("outbox ids"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .map_err(sql("outbox ids"))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql("outbox ids"))
    }

    /// The raw bytes of an outbox row by Message-ID.
    pub fn outbox_raw(&self, message_id: &str) -> Result<Option<Vec<u8>>, StateError> {
        self.conn
            .query_row(
                "SELECT b.raw FROM outbox o JOIN outbox_body b ON b.id = o.id
                 WHERE o.message_id = ?1",
                [message_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql("outbox raw"))
    }

    fn quarantine_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<QuarantineRow> {
        let rcpt: String = r.get(5)?;
        let bytes: i64 = r.get(9)?;
        Ok(QuarantineRow {
            id: r.get(0)?,
            spool_id: r.get(1)?,
            code: r.get(2)?,
            reason: r.get(3)?,
            mail_from: r.get(4)?,
            rcpt: serde_json::from_str(&rcpt).unwrap_or_default(),
            subject: r.get(6)?,
            state: r.get(7)?,
            at: r.get(8)?,
            bytes: usize::try_from(bytes).unwrap_or(0),
        })
    }

    /// Quarantined messages, newest first (`all` includes the ones already retried).
    pub fn quarantine_list(&self, all: bool) -> Result<Vec<QuarantineRow>, StateError> {
        let q = if all {
            "SELECT id, spool_id, code, reason, mail_from, rcpt, subject, state, at, length(raw)
             FROM quarantine ORDER BY id DESC"
        } else {
            "SELECT id, spool_id, code, reason, mail_from, rcpt, subject, state, at, length(raw)
             FROM quarantine WHERE state = 'held' ORDER BY id DESC"
        };
        let mut stmt = self.conn.prepare(q).map_err(sql("list quarantine"))?;
        let rows = stmt
            .query_map([], Self::quarantine_row)
            .map_err(sql("list quarantine"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(sql("list quarantine"))
    }

    /// One quarantined message with its raw bytes and the processing summary.
    pub fn quarantine_get(
        &self,
        id: i64,
    ) -> Result<Option<(QuarantineRow, Vec<u8>, serde_json::Value)>, StateError> {
        let row = self
            .conn
            .query_row(
                "SELECT id, spool_id, code, reason, mail_from, rcpt, subject, state, at,
                 length(raw), raw FROM quarantine WHERE id = ?1",
                [id],
                |r| Ok((Self::quarantine_row(r)?, r.get::<_, Vec<u8>>(10)?)),
            )
            .optional()
            .map_err(sql("get quarantine"))?;
        let Some((row, raw)) = row else {
            return Ok(None);
        };
        let summary: Option<String> = self
            .conn
            .query_row(
                "SELECT summary FROM processed WHERE spool_id = ?1",
                [&row.spool_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql("get summary"))?;
        let summary = summary
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(serde_json::Value::Null);
        Ok(Some((row, raw, summary)))
    }

    /// Marks a quarantined message as handed back to the pipeline.
    pub fn quarantine_mark_retried(&self, id: i64) -> Result<bool, StateError> {
        let n = self
            .conn
            .execute(
                "UPDATE quarantine SET state = 'retried' WHERE id = ?1 AND state = 'held'",
                [id],
            )
            .map_err(sql("mark retried"))?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn processed(id: &str, n: usize, quarantine: bool) -> Processed {
        Processed {
            spool_id: id.into(),
            digest: "d".into(),
            kind: MessageKind::Invoice,
            mail_from: "ps@x".into(),
            subject: "s".into(),
            summary: serde_json::json!({"lots": n}),
            outgoing: (0..n)
                .map(|i| Outgoing {
                    message_id: format!("<{id}.{i}@oct>"),
                    kind: if i == 0 { OutKind::Art } else { OutKind::Forward },
                    mail_from: "oct@oct".into(),
                    rcpt: "am@am".into(),
                    raw: vec![b'x'; i + 1],
                })
                .collect(),
            own_lots: vec![],
            own_arls: vec![],
            retried_quarantine: None,
            claims: Claims::default(),
            quarantine: quarantine.then(|| QuarantineEntry {
                code: "unknown_sender".into(),
                reason: "nobody".into(),
                rcpt: vec!["oct@oct".into()],
                raw: b"raw".to_vec(),
            }),
        }
    }

    #[test]
    fn commit_is_once_and_outbox_flows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = State::open(&dir.path().join("s.db")).expect("open");
        assert!(!s.is_processed("a").expect("lookup"));
        assert_eq!(
            s.commit(&processed("a", 3, false)).expect("commit"),
            Commit::Recorded
        );
        assert!(s.is_processed("a").expect("lookup"));
        // A second commit of the same spooled message changes nothing.
        assert_eq!(
            s.commit(&processed("a", 5, false)).expect("commit"),
            Commit::AlreadyProcessed
        );
        assert_eq!(s.outbox_ids().expect("ids").len(), 3);

        let now = now_secs();
        let record = |id: i64, outcome: DeliveryOutcome| s.record_deliveries(&[(id, outcome)]);
        let claim_one = || s.claim_due_batch(now, 1).expect("due").into_iter().next();
        let d = claim_one().expect("one due");
        assert_eq!(d.message_id, "<a.0@oct>");
        // Claimed: another sender does not get it; a crash puts it back.
        assert_eq!(claim_one().map(|d| d.message_id), Some("<a.1@oct>".into()));
        assert_eq!(s.reset_sending().expect("reset"), 2);
        record(
            d.id,
            DeliveryOutcome::Retry {
                at: now + 100,
                error: "451 try later".into(),
            },
        )
        .expect("retry");
        let d2 = s.next_due(now).expect("due").expect("next");
        assert_eq!(d2.message_id, "<a.1@oct>");
        record(d2.id, DeliveryOutcome::Sent).expect("sent");
        let d3 = s.next_due(now).expect("due").expect("next");
        record(
            d3.id,
            DeliveryOutcome::Failed {
                error: "550 no".into(),
            },
        )
        .expect("failed");
        assert!(s.next_due(now).expect("due").is_none());
        assert_eq!(s.next_due_at().expect("at"), Some(now + 100));
        assert!(s.next_due(now + 100).expect("due").is_some());

        let c = s.counters().expect("counters");
        assert_eq!(c.outbox.get("pending"), Some(&1));
        assert_eq!(c.outbox.get("sent"), Some(&1));
        assert_eq!(c.outbox.get("failed"), Some(&1));
        assert_eq!(c.processed.get("invoice/processed"), Some(&1));
        assert_eq!(s.requeue_failed().expect("requeue"), 1);
    }

    #[test]
    fn a_batch_commits_all_or_nothing_and_skips_what_was_committed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = State::open(&dir.path().join("s.db")).expect("open");
        assert_eq!(
            s.commit(&processed("b", 2, false)).expect("commit"),
            Commit::Recorded
        );
        let done = s
            .commit_batch(&[
                processed("a", 3, false),
                processed("b", 4, false),
                processed("c", 1, true),
            ])
            .expect("batch");
        assert_eq!(
            done,
            vec![Commit::Recorded, Commit::AlreadyProcessed, Commit::Recorded]
        );
        // b keeps its first two rows; a brings 3 and c 1.
        assert_eq!(s.outbox_ids().expect("ids").len(), 6);
        assert_eq!(s.outbox_raw("<a.2@oct>").expect("raw"), Some(b"xxx".to_vec()));
        assert_eq!(s.quarantine_list(true).expect("list").len(), 1);

        // A failure on the second message of a batch leaves nothing of the first behind.
        s.conn
            .execute_batch(
                "CREATE TEMP TRIGGER fail_e BEFORE INSERT ON processed WHEN NEW.spool_id = 'e'
                 BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;",
            )
            .expect("trigger");
        assert!(
            s.commit_batch(&[processed("d", 1, false), processed("e", 1, false)])
                .is_err()
        );
        assert!(!s.is_processed("d").expect("lookup"));
        assert!(!s.is_processed("e").expect("lookup"));
    }

    #[test]
    fn senders_claim_disjoint_batches_and_record_each_outcome() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.db");
        let mut s = State::open(&path).expect("open");
        s.commit(&processed("a", 5, false)).expect("commit");
        let other = State::open(&path).expect("second connection");
        let now = now_secs();
        let first = s.claim_due_batch(now, 3).expect("claim");
        let second = other.claim_due_batch(now, 3).expect("claim");
        let ids = |v: &[Due]| v.iter().map(|d| d.message_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&first), ["<a.0@oct>", "<a.1@oct>", "<a.2@oct>"]);
        assert_eq!(ids(&second), ["<a.3@oct>", "<a.4@oct>"]);
        assert_eq!(first[2].raw, b"xxx");
        assert!(s.claim_due_batch(now, 3).expect("claim").is_empty());

        s.record_deliveries(&[
            (first[0].id, DeliveryOutcome::Sent),
            (
                first[1].id,
                DeliveryOutcome::Retry {
                    at: now + 60,
                    error: "451 later".into(),
                },
            ),
            (
                first[2].id,
                DeliveryOutcome::Failed {
                    error: "550 no".into(),
                },
            ),
        ])
        .expect("record");
        // The second sender stops before delivering: its rows go back.
        other.unclaim(second.iter().map(|d| d.id)).expect("unclaim");
        let c = s.counters().expect("counters");
        assert_eq!(c.outbox.get("sent"), Some(&1));
        assert_eq!(c.outbox.get("failed"), Some(&1));
        assert_eq!(c.outbox.get("pending"), Some(&3));
        assert_eq!(c.outbox.get("sending"), None);
        let again = s.claim_due_batch(now, 10).expect("claim");
        assert_eq!(ids(&again), ["<a.3@oct>", "<a.4@oct>"]);
        let later = s.claim_due_batch(now + 60, 10).expect("claim");
        assert_eq!(ids(&later), ["<a.1@oct>"]);
        assert_eq!(later[0].attempts, 1);
    }

    #[test]
    fn a_version_1_database_keeps_its_outbox_bodies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.db");
        {
            // The version 1 outbox, bodies inline, as earlier releases wrote it.
            let conn = Connection::open(&path).expect("open");
            conn.execute_batch(
                "CREATE TABLE outbox (
                    id INTEGER PRIMARY KEY, message_id TEXT NOT NULL UNIQUE,
                    spool_id TEXT NOT NULL, kind TEXT NOT NULL, mail_from TEXT NOT NULL,
                    rcpt TEXT NOT NULL, raw BLOB NOT NULL,
                    state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
                    next_attempt INTEGER NOT NULL, last_error TEXT, created INTEGER NOT NULL,
                    sent INTEGER);
                 INSERT INTO outbox (message_id, spool_id, kind, mail_from, rcpt, raw,
                    next_attempt, created)
                 VALUES ('<old@oct>', '7', 'forward', 'oct@oct', 'am@am', x'6f6c64', 0, 0);
                 PRAGMA user_version = 1;",
            )
            .expect("v1 schema");
        }
        let s = State::open(&path).expect("migrate");
        assert_eq!(s.outbox_raw("<old@oct>").expect("raw"), Some(b"old".to_vec()));
        let due = s.claim_due_batch(now_secs(), 5).expect("claim");
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].raw, b"old");
        let columns: i64 = s
            .conn
            .query_row(
                "SELECT COUNT(*) FROM pragma_table_info('outbox') WHERE name = 'raw'",
                [],
                |r| r.get(0),
            )
            .expect("columns");
        assert_eq!(columns, 0);
        let version: i64 = s
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("version");
        assert_eq!(version, SCHEMA_VERSION);
        drop(s);
        // Opening again is a no-op.
        let s = State::open(&path).expect("reopen");
        assert_eq!(s.outbox_raw("<old@oct>").expect("raw"), Some(b"old".to_vec()));
    }

    fn claiming(id: &str, lots: &[&str], compostage: Option<(&str, &str)>) -> Processed {
        let mut p = processed(id, 2, false);
        p.claims = Claims {
            compostage: compostage.map(|(c, h)| CompostageClaim {
                sender_number: "1234".into(),
                compostage: c.into(),
                file_hash: h.into(),
                first_use: false,
            }),
            lots: lots
                .iter()
                .map(|h| LotClaim {
                    lot_hash: (*h).into(),
                    ps_number: "10987654321".into(),
                    lot_number: "001".into(),
                    lot_date: "261125".into(),
                    file_id: "F00001".into(),
                    destination: "CPAM 751".into(),
                    message_id: format!("{h}.forward@oct"),
                })
                .collect(),
            invoices: Vec::new(),
        };
        p
    }

    /// A message forwarding lot `lot` that carries invoice 42 of PS 10987654321 as `nature`.
    fn claiming_invoice(id: &str, lot: &str, nature: InvoiceNature) -> Processed {
        let mut p = claiming(id, &[lot], None);
        p.claims.invoices.push(InvoiceClaim {
            ps_number: "10987654321".into(),
            invoice_number: 42,
            nature,
            lot_hash: lot.into(),
            destination: "CPAM 751".into(),
        });
        p
    }

    #[test]
    fn an_invoice_is_dre_or_contract_99_never_both() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = State::open(&dir.path().join("s.db")).expect("open");
        assert_eq!(
            s.commit(&claiming_invoice("a", "h1", InvoiceNature::Dre))
                .expect("commit"),
            Commit::Recorded
        );
        let seen = s
            .forwarded_invoice("10987654321", 42, InvoiceNature::Dre)
            .expect("lookup")
            .expect("recorded");
        assert_eq!(seen.destination, "CPAM 751");
        assert_eq!(
            s.forwarded_invoice("10987654321", 42, InvoiceNature::Contract99)
                .expect("lookup"),
            None
        );
        assert_eq!(
            s.forwarded_invoice("10987654321", 43, InvoiceNature::Dre)
                .expect("lookup"),
            None
        );
        // The same number as contract 99 in another lot: held by the DRE, nothing recorded.
        assert_eq!(
            s.commit(&claiming_invoice("b", "h2", InvoiceNature::Contract99))
                .expect("commit"),
            Commit::Conflict
        );
        assert!(!s.is_processed("b").expect("lookup"));
        assert!(s.forwarded_lot("h2").expect("lookup").is_none());
        // The same nature again in another lot (a DRE resent after a negative ARL) is not R3.4.
        assert_eq!(
            s.commit(&claiming_invoice("c", "h3", InvoiceNature::Dre))
                .expect("commit"),
            Commit::Recorded
        );
    }

    #[test]
    fn a_version_3_database_gains_the_invoice_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.db");
        {
            let conn = Connection::open(&path).expect("open");
            let v3: String = SCHEMA
                .split("CREATE TABLE IF NOT EXISTS forwarded_invoices")
                .next()
                .expect("v3 part")
                .to_owned();
            conn.execute_batch(&v3).expect("v3 schema");
            conn.execute_batch(
                "INSERT INTO forwarded_lots (lot_hash, ps_number, lot_number, lot_date, file_id,
                    destination, message_id, spool_id, at)
                 VALUES ('old', '10987654321', '001', '261125', 'F1', 'CPAM 751', 'm', 's', 0);
                 PRAGMA user_version = 3;",
            )
            .expect("v3 rows");
            let tables: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM sqlite_master WHERE name = 'forwarded_invoices'",
                    [],
                    |r| r.get(0),
                )
                .expect("tables");
            assert_eq!(tables, 0, "the fixture is a version 3 database");
        }
        let mut s = State::open(&path).expect("migrate");
        let version: i64 = s
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("version");
        assert_eq!(version, 4);
        assert!(s.forwarded_lot("old").expect("old row kept").is_some());
        assert_eq!(
            s.commit(&claiming_invoice("a", "h1", InvoiceNature::Contract99))
                .expect("commit"),
            Commit::Recorded
        );
        drop(s);
        let mut s = State::open(&path).expect("reopen");
        assert_eq!(
            s.commit(&claiming_invoice("b", "h2", InvoiceNature::Dre))
                .expect("commit"),
            Commit::Conflict
        );
    }

    #[test]
    fn a_lot_or_a_compostage_is_claimed_once_and_a_conflict_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = State::open(&dir.path().join("s.db")).expect("open");
        // Two copies in one batch: the first is recorded, the second conflicts over lot h2.
        let done = s
            .commit_batch(&[
                claiming("a", &["h1", "h2"], Some(("C1", "f1"))),
                claiming("b", &["h2", "h3"], Some(("C2", "f2"))),
                claiming("c", &["h4"], Some(("C3", "f3"))),
            ])
            .expect("batch");
        assert_eq!(done, vec![Commit::Recorded, Commit::Conflict, Commit::Recorded]);
        // Nothing of b: no processed row, no outbox row, neither its own lot h3 nor its
        // compostage.
        assert!(!s.is_processed("b").expect("lookup"));
        assert!(s.outbox_ids().expect("ids").iter().all(|r| r.1 != "b"));
        assert_eq!(s.outbox_ids().expect("ids").len(), 4);
        assert!(s.forwarded_lot("h3").expect("lookup").is_none());
        assert!(s.compostage_file("1234", "C2").expect("lookup").is_none());
        let seen = s.forwarded_lot("h2").expect("lookup").expect("h2 forwarded");
        assert_eq!(seen.message_id, "h2.forward@oct");
        assert_eq!(seen.destination, "CPAM 751");
        assert_eq!(
            s.compostage_file("1234", "C1").expect("lookup"),
            Some("f1".into())
        );
        // Processed again it claims nothing of a's lots: recorded. The same file under the same
        // compostage (a duplicate message) may reuse it; another file may not.
        assert_eq!(
            s.commit(&claiming("b", &["h3"], Some(("C1", "f1"))))
                .expect("commit"),
            Commit::Recorded
        );
        assert_eq!(
            s.commit(&claiming("d", &[], Some(("C1", "other file"))))
                .expect("commit"),
            Commit::Conflict
        );
        assert!(!s.is_processed("d").expect("lookup"));
        // The same file, processed as the first use of C1 while another copy was committed
        // meanwhile: processed again, to be answered as the duplicate it is.
        let mut racing = claiming("r", &[], Some(("C1", "f1")));
        if let Some(c) = racing.claims.compostage.as_mut() {
            c.first_use = true;
        }
        assert_eq!(s.commit(&racing).expect("commit"), Commit::Conflict);
        // Another sender number has its own compostages.
        let mut e = claiming("e", &[], Some(("C1", "other file")));
        if let Some(c) = e.claims.compostage.as_mut() {
            c.sender_number = "999".into();
        }
        assert_eq!(s.commit(&e).expect("commit"), Commit::Recorded);
    }

    #[test]
    fn two_connections_committing_the_same_lot_record_it_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.db");
        drop(State::open(&path).expect("create"));
        // Separate gates: the two commits meet SQLite's own lock, as two processes would.
        let results: Vec<Commit> = std::thread::scope(|scope| {
            let handles: Vec<_> = ["x", "y"]
                .iter()
                .map(|id| {
                    let path = path.clone();
                    scope.spawn(move || {
                        let mut s = State::open(&path).expect("open");
                        s.commit(&claiming(id, &["same lot"], None)).expect("commit")
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("join")).collect()
        });
        let mut sorted = results.clone();
        sorted.sort_by_key(|c| *c == Commit::Conflict);
        assert_eq!(sorted, vec![Commit::Recorded, Commit::Conflict], "{results:?}");
        let s = State::open(&path).expect("open");
        let processed: i64 = s
            .conn
            .query_row("SELECT COUNT(*) FROM processed", [], |r| r.get(0))
            .expect("count");
        assert_eq!(processed, 1);
    }

    #[test]
    fn a_version_2_database_gains_the_processed_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.db");
        {
            // The version 2 schema: everything but the processed index.
            let conn = Connection::open(&path).expect("open");
            let v2: String = SCHEMA
                .split("CREATE TABLE IF NOT EXISTS forwarded_lots")
                .next()
                .expect("v2 part")
                .to_owned();
            conn.execute_batch(&v2).expect("v2 schema");
            conn.execute_batch(
                "INSERT INTO processed (spool_id, digest, kind, outcome, mail_from, subject,
                    summary, at) VALUES ('old', 'd', 'invoice', 'processed', 'ps@x', 's', '{}', 0);
                 PRAGMA user_version = 2;",
            )
            .expect("v2 rows");
            let tables: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('forwarded_lots', 'compostages')",
                    [],
                    |r| r.get(0),
                )
                .expect("tables");
            assert_eq!(tables, 0, "the fixture is a version 2 database");
        }
        let mut s = State::open(&path).expect("migrate");
        let version: i64 = s
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("version");
        assert_eq!(version, SCHEMA_VERSION);
        assert!(s.is_processed("old").expect("old row kept"));
        assert_eq!(
            s.commit(&claiming("new", &["h"], Some(("C", "f"))))
                .expect("commit"),
            Commit::Recorded
        );
        assert!(s.forwarded_lot("h").expect("lookup").is_some());
        drop(s);
        let mut s = State::open(&path).expect("reopen");
        assert_eq!(
            s.commit(&claiming("again", &["h"], None)).expect("commit"),
            Commit::Conflict
        );
    }

    #[test]
    fn quarantine_round_trip_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.db");
        {
            let mut s = State::open(&path).expect("open");
            s.commit(&processed("q", 1, true)).expect("commit");
        }
        let s = State::open(&path).expect("reopen");
        let list = s.quarantine_list(false).expect("list");
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].code, "unknown_sender");
        assert_eq!(list[0].bytes, 3);
        let (row, raw, summary) = s.quarantine_get(list[0].id).expect("get").expect("exists");
        assert_eq!(row.rcpt, vec!["oct@oct".to_string()]);
        assert_eq!(raw, b"raw");
        assert_eq!(summary["lots"], 1);
        assert!(s.quarantine_mark_retried(row.id).expect("mark"));
        assert!(!s.quarantine_mark_retried(row.id).expect("mark twice"));
        assert!(s.quarantine_list(false).expect("list").is_empty());
        assert_eq!(s.quarantine_list(true).expect("list").len(), 1);
    }

    #[test]
    fn sequences_cycle_and_own_lots() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = State::open(&dir.path().join("s.db")).expect("open");
        assert_eq!(s.next_sequence("lot", 2).expect("seq"), 1);
        assert_eq!(s.next_sequence("lot", 2).expect("seq"), 2);
        assert_eq!(s.next_sequence("lot", 2).expect("seq"), 1);
        assert_eq!(s.reserve_sequence("f", 10, 25).expect("block"), 1);
        assert_eq!(s.reserve_sequence("f", 10, 25).expect("block"), 11);
        // A block never wraps: 21..30 would pass 25, so it starts again at 1.
        assert_eq!(s.reserve_sequence("f", 10, 25).expect("block"), 1);
        assert_eq!(s.reserve_compostage(10, 1000).expect("c"), (1000, 0));
        assert_eq!(s.reserve_compostage(10, 1000).expect("c"), (1000, 10));
        // The clock went back: stay on the last second, keep counting.
        assert_eq!(s.reserve_compostage(5, 900).expect("c"), (1000, 20));
        assert_eq!(s.reserve_compostage(5, 1001).expect("c"), (1001, 0));
        // Counter exhausted within a second: next second.
        s.update_value("compostage", |_| ("1001:99995".into(), ()))
            .expect("set");
        assert_eq!(s.reserve_compostage(10, 1001).expect("c"), (1002, 0));
        let mut p = processed("o", 0, false);
        p.own_lots.push(OwnLot {
            lot_number: "001".into(),
            lot_date: "261126".into(),
            file_id: "000042".into(),
            organisation: "0123456789".into(),
            message_id: "<m@oct>".into(),
        });
        s.commit(&p).expect("commit");
        assert!(s.is_own_lot("001", "261126", "000042").expect("lookup"));
        assert!(s.is_own_lot("001", "261126", "").expect("lookup"));
        assert!(!s.is_own_lot("001", "261126", "000041").expect("other file"));
        assert!(!s.is_own_lot("002", "261126", "000042").expect("lookup"));
        assert!(s.record_own_arl("001", "261126", "positive", "").expect("arl"));
        assert!(!s.record_own_arl("009", "261126", "positive", "").expect("arl"));
        assert_eq!(
            s.own_lot_arl("001", "261126").expect("arl"),
            Some((Some("positive".into()), Some(String::new())))
        );
        let c = s.counters().expect("counters");
        assert_eq!((c.own_lots, c.own_lots_acknowledged), (1, 1));
        let v = s
            .update_value("c", |cur| {
                assert!(cur.is_none());
                ("7".into(), 7)
            })
            .expect("update");
        assert_eq!(v, 7);
        s.update_value("c", |cur| {
            assert_eq!(cur, Some("7"));
            ("8".into(), ())
        })
        .expect("update");
    }
}
