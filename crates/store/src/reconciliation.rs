//! Reconciliation of returns with what was sent: the ARL state of every sent lot and the payment
//! state of every sent invoice.
//!
//! Why a table of its own: the journal records messages; a nurse's support team needs lots and
//! invoices. [`Returns::register_sent`] copies the lots and invoices of a sent message (once per
//! journal entry); [`Returns::record_arl`] and [`Returns::record_rsp`] record each return item
//! durably and apply it to the lot or invoice it names.
//!
//! Matching keys (all normalised by the caller, see [`lot_key`] and [`invoice_key`]):
//! - lot: number (3 digits), date (`AAMMJJ`), kind when both sides know it;
//! - invoice: number (9 digits), kind (FSE/DRE) when both sides know it, lot number and date when
//!   the sent side knows which lot carried it.
//!
//! Tolerance:
//! - a return that names nothing sent yet is kept (`matched` empty) and applied when
//!   [`Returns::register_sent`] brings the lot or invoice it names;
//! - a return message recorded twice (same inbox message) is applied once; the same content in
//!   another message is applied again with the same result;
//! - when several returns concern one row, the message stored last (highest inbox id) wins,
//!   whatever the order in which they were matched (each row keeps the inbox id that set it);
//! - when a lot or invoice was sent several times, a return applies to the most recent sending.

use rusqlite::{OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use crate::db::{CacheSize, Store};
use crate::{EntryId, InboxId, StoreError, now_ms, sql};

/// FSE or DRE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum InvoiceKind {
    Fse,
    Dre,
}

impl InvoiceKind {
    /// `FSE` or `DRE`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            InvoiceKind::Fse => "FSE",
            InvoiceKind::Dre => "DRE",
        }
    }

    fn parse(s: &str) -> Option<InvoiceKind> {
        match s {
            "FSE" => Some(InvoiceKind::Fse),
            "DRE" => Some(InvoiceKind::Dre),
            _ => None,
        }
    }
}

/// Where a sent lot stands with its logical acknowledgement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArlState {
    /// No ARL yet.
    Awaiting,
    /// The lot is conform (its invoices are not paid yet).
    Positive,
    /// The lot was refused: to resend.
    Negative,
}

impl ArlState {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            ArlState::Awaiting => "awaiting",
            ArlState::Positive => "positive",
            ArlState::Negative => "negative",
        }
    }
    fn parse(s: &str) -> Option<ArlState> {
        Some(match s {
            "awaiting" => ArlState::Awaiting,
            "positive" => ArlState::Positive,
            "negative" => ArlState::Negative,
            _ => return None,
        })
    }
}

/// Where a sent invoice stands with its payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentState {
    /// No RSP yet.
    Awaiting,
    Paid,
    /// To correct and resend.
    Rejected,
    Deferred,
    /// Parts in different states (e.g. AMO paid, AMC rejected).
    Partial,
    /// The insurer returned it without processing any part.
    NotProcessed,
}

impl PaymentState {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentState::Awaiting => "awaiting",
            PaymentState::Paid => "paid",
            PaymentState::Rejected => "rejected",
            PaymentState::Deferred => "deferred",
            PaymentState::Partial => "partial",
            PaymentState::NotProcessed => "not_processed",
        }
    }
    fn parse(s: &str) -> Option<PaymentState> {
        Some(match s {
            "awaiting" => PaymentState::Awaiting,
            "paid" => PaymentState::Paid,
            "rejected" => PaymentState::Rejected,
            "deferred" => PaymentState::Deferred,
            "partial" => PaymentState::Partial,
            "not_processed" => PaymentState::NotProcessed,
            _ => return None,
        })
    }
}

/// Normalises a lot number: digits become 3 digits (`7` -> `007`), anything else is trimmed.
pub fn lot_key(number: &str) -> String {
    digits_key(number, 3)
}

/// Normalises an invoice number: digits become 9 digits, anything else is trimmed.
pub fn invoice_key(number: &str) -> String {
    digits_key(number, 9)
}

fn digits_key(s: &str, width: usize) -> String {
    let t = s.trim();
    match t.parse::<u64>() {
        Ok(n) if t.bytes().all(|b| b.is_ascii_digit()) => format!("{n:0width$}"),
        _ => t.to_owned(),
    }
}

/// A lot of a sent message, with its invoices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentLot {
    /// Lot number (normalised with [`lot_key`] on insert).
    pub number: String,
    /// Lot date, `AAMMJJ`.
    pub date: String,
    /// Unknown when the sent file could not be read back.
    pub kind: Option<InvoiceKind>,
    /// Invoice numbers (normalised with [`invoice_key`] on insert).
    pub invoices: Vec<String>,
}

/// One ARL, reduced to what reconciliation needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArlReturn {
    pub lot_number: String,
    /// `AAMMJJ`.
    pub lot_date: String,
    pub kind: Option<InvoiceKind>,
    pub positive: bool,
    /// `code label` of each reason.
    pub reasons: Vec<String>,
    /// When the AM issued it (`YYYY-MM-DD HH:MM`), for display.
    pub issued: String,
}

/// What a NOEMIE return says of one invoice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RspReturn {
    pub lot_number: String,
    /// `AAMMJJ` (empty when the return does not say).
    pub lot_date: String,
    pub invoice_number: String,
    pub kind: Option<InvoiceKind>,
    pub state: PaymentState,
    /// Signed paid amount (AMO + AMC parts).
    pub paid_cents: i64,
    /// Accounting date of the payment, `YYYY-MM-DD`.
    pub paid_date: Option<String>,
    /// `code label` of each reject line, and comments.
    pub reasons: Vec<String>,
}

/// The outcome of recording return items.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Recorded {
    /// Items applied to a sent lot or invoice.
    pub matched: usize,
    /// Items that name nothing sent (kept, matched later if it appears).
    pub unmatched: usize,
    /// Items of this message recorded before (a second call for the same message).
    pub already_recorded: usize,
}

/// A sent lot and its ARL state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LotRow {
    pub id: i64,
    pub entry: EntryId,
    pub number: String,
    pub date: String,
    pub kind: Option<InvoiceKind>,
    pub invoices: usize,
    /// Unix milliseconds when the message was sent.
    pub sent_ms: i64,
    pub arl: ArlState,
    /// Unix milliseconds when the ARL was recorded.
    pub arl_ms: Option<i64>,
    pub arl_issued: Option<String>,
    pub arl_reasons: Vec<String>,
    /// A later sending of the same lot exists (a negative lot already resent).
    pub superseded: bool,
}

/// A sent invoice and its payment state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InvoiceRow {
    pub id: i64,
    pub entry: EntryId,
    pub number: String,
    pub kind: Option<InvoiceKind>,
    pub lot_number: Option<String>,
    pub lot_date: Option<String>,
    pub sent_ms: i64,
    pub state: PaymentState,
    pub paid_cents: i64,
    pub paid_date: Option<String>,
    pub reasons: Vec<String>,
    /// Unix milliseconds when the RSP was recorded.
    pub rsp_ms: Option<i64>,
    /// A later sending of the same invoice exists.
    pub superseded: bool,
}

/// A return item that names nothing sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UnmatchedReturn {
    pub id: i64,
    pub inbox: InboxId,
    /// `ARL` or `RSP`.
    pub kind: String,
    pub lot_number: String,
    pub lot_date: String,
    pub invoice_number: Option<String>,
    /// The item as recorded (JSON of [`ArlReturn`] or [`RspReturn`]).
    pub detail: serde_json::Value,
    pub received_ms: i64,
}

/// A recorded note about a return message: an ART, or findings of a NOEMIE file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReturnNote {
    pub inbox: InboxId,
    /// `ART` or `RSP`.
    pub kind: String,
    /// The compostage the note is about, when known (ART).
    pub compostage: Option<String>,
    /// A one-line summary.
    pub summary: String,
    /// The parsed content (ART as JSON), the findings, or the raw text.
    pub detail: serde_json::Value,
    pub received_ms: i64,
}

/// Paid total of one accounting day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DayTotal {
    /// `YYYY-MM-DD` (empty when the return gave no date).
    pub date: String,
    /// Paid or partly paid invoices.
    pub invoices: usize,
    /// What the day brings: invoices, plus flat payments, plus deductions (negative).
    pub paid_cents: i64,
    /// Of which: paid invoices.
    pub invoice_cents: i64,
    /// Of which: flat and one-off payments (576 `261`).
    pub flat_cents: i64,
    /// Of which: deductions (576 `250`), negative when withheld.
    pub deduction_cents: i64,
}

/// The reconciliation view of a [`Store`].
#[derive(Debug, Clone, Copy)]
pub struct Returns<'a> {
    pub(crate) store: &'a Store,
}

impl Store {
    /// Reconciliation of returns with sent lots and invoices.
    pub fn returns(&self) -> Returns<'_> {
        Returns { store: self }
    }
}

fn corrupt(table: &'static str, column: &'static str, row: i64, value: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        table,
        column,
        row,
        value: value.into(),
    }
}

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn parse_list(
    table: &'static str,
    column: &'static str,
    row: i64,
    s: &str,
) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(s).map_err(|_| corrupt(table, column, row, s))
}

fn kind_opt(table: &'static str, row: i64, s: Option<String>) -> Result<Option<InvoiceKind>, StoreError> {
    match s {
        None => Ok(None),
        Some(k) => InvoiceKind::parse(&k)
            .map(Some)
            .ok_or_else(|| corrupt(table, "kind", row, k)),
    }
}

/// Finds the lot row an ARL names (most recent sending first).
fn match_lot(tx: &Transaction<'_>, a: &ArlReturn) -> Result<Option<i64>, StoreError> {
    tx.query_row(
        // MAX(id), not ORDER BY id DESC LIMIT 1: the latter lets SQLite walk the table by rowid.
        "SELECT MAX(id) FROM rec_lot WHERE number = ?1 AND date = ?2 AND (?3 IS NULL OR kind IS NULL OR kind = ?3)",
        params![a.lot_number, a.lot_date, a.kind.map(InvoiceKind::as_str)],
        |r| r.get::<_, Option<i64>>(0),
    )
    .map_err(sql("match ARL to lot"))
}

/// Finds the invoice row an RSP item names (most recent sending first). The SQL names the
/// invoice number only and the other keys are compared here: with a parameter in an `OR`,
/// SQLite re-plans the statement at every call (5x slower).
fn match_invoice(tx: &Transaction<'_>, r: &RspReturn) -> Result<Option<i64>, StoreError> {
    let mut stmt = tx
        .prepare_cached("SELECT id, kind, lot_number, lot_date FROM rec_invoice WHERE number = ?1")
        .map_err(sql("prepare invoice match"))?;
    let mut rows = stmt
        .query([&r.invoice_number])
        .map_err(sql("match RSP to invoice"))?;
    let want_kind = r.kind.map(InvoiceKind::as_str);
    let mut best: Option<i64> = None;
    while let Some(row) = rows.next().map_err(sql("match RSP to invoice"))? {
        let g = |e| StoreError::Sql {
            op: "read invoice match",
            source: e,
        };
        let id: i64 = row.get(0).map_err(g)?;
        let kind: Option<String> = row.get(1).map_err(g)?;
        let lot_number: Option<String> = row.get(2).map_err(g)?;
        let lot_date: Option<String> = row.get(3).map_err(g)?;
        let kind_ok = match (want_kind, kind.as_deref()) {
            (Some(w), Some(k)) => w == k,
            _ => true,
        };
        let lot_ok = lot_number
            .as_deref()
            .is_none_or(|n| r.lot_number.is_empty() || n == r.lot_number);
        let date_ok = lot_date
            .as_deref()
            .is_none_or(|d| r.lot_date.is_empty() || d == r.lot_date);
        if kind_ok && lot_ok && date_ok && best.is_none_or(|b| id > b) {
            best = Some(id);
        }
    }
    Ok(best)
}

/// Sets a lot's ARL state, unless a later message (higher inbox id, `order`) already did.
fn apply_arl(tx: &Transaction<'_>, order: i64, lot: i64, a: &ArlReturn, at: i64) -> Result<(), StoreError> {
    let state = if a.positive {
        ArlState::Positive
    } else {
        ArlState::Negative
    };
    tx.execute(
        "UPDATE rec_lot SET arl = ?2, arl_ms = ?3, arl_issued = ?4, arl_reasons = ?5, arl_return = ?6
         WHERE id = ?1 AND (arl_return IS NULL OR arl_return <= ?6)",
        params![lot, state.as_str(), at, a.issued, json_list(&a.reasons), order],
    )
    .map_err(sql("apply ARL"))?;
    Ok(())
}

/// Sets an invoice's payment state, unless a later message (higher inbox id, `order`) already
/// did.
fn apply_rsp(tx: &Transaction<'_>, order: i64, inv: i64, r: &RspReturn, at: i64) -> Result<(), StoreError> {
    let mut upd = tx
        .prepare_cached(
            "UPDATE rec_invoice SET state = ?2, paid_cents = ?3, paid_date = ?4, reasons = ?5, rsp_ms = ?6,
                    rsp_return = ?7
             WHERE id = ?1 AND (rsp_return IS NULL OR rsp_return <= ?7)",
        )
        .map_err(sql("prepare RSP apply"))?;
    upd.execute(params![
        inv,
        r.state.as_str(),
        r.paid_cents,
        r.paid_date,
        json_list(&r.reasons),
        at,
        order
    ])
    .map_err(sql("apply RSP"))?;
    Ok(())
}

/// Marks message `inbox` as recorded for `kind`; `false` if it was before (the whole message is
/// recorded in one transaction, so this makes a second call a no-op).
fn first_time(tx: &Transaction<'_>, inbox: InboxId, kind: &str) -> Result<bool, StoreError> {
    let n = tx
        .execute(
            "INSERT OR IGNORE INTO rec_message (inbox, kind) VALUES (?1, ?2)",
            params![inbox.0, kind],
        )
        .map_err(sql("insert rec_message"))?;
    Ok(n == 1)
}

/// An RSP being recorded, in one transaction (see [`Returns::begin_rsp`]).
pub struct RspRecorder<'a> {
    tx: Transaction<'a>,
    /// The connection's cache size, given back when the recorder goes (after the
    /// transaction: fields drop in order).
    cache: CacheSize<'a>,
    inbox: InboxId,
    at: i64,
    /// False when this message was recorded before: items are then only counted.
    first: bool,
    next: usize,
    out: Recorded,
}

impl RspRecorder<'_> {
    /// Applies one invoice outcome to the invoice it names, or keeps it for later.
    pub fn add(&mut self, r: RspReturn) -> Result<(), StoreError> {
        let i = self.next;
        self.next += 1;
        if !self.first {
            self.out.already_recorded += 1;
            return Ok(());
        }
        let r = RspReturn {
            lot_number: lot_key(&r.lot_number),
            invoice_number: invoice_key(&r.invoice_number),
            ..r
        };
        match match_invoice(&self.tx, &r)? {
            Some(inv) => {
                apply_rsp(&self.tx, self.inbox.0, inv, &r, self.at)?;
                self.out.matched += 1;
            }
            None => {
                let detail = serde_json::to_string(&r).unwrap_or_default();
                let key = (
                    r.lot_number.as_str(),
                    r.lot_date.as_str(),
                    Some(r.invoice_number.as_str()),
                );
                keep_unmatched(&self.tx, self.inbox, "RSP", i, key, &detail, self.at)?;
                self.out.unmatched += 1;
            }
        }
        Ok(())
    }

    /// Commits what was added.
    pub fn commit(self) -> Result<Recorded, StoreError> {
        let RspRecorder {
            tx,
            first,
            out,
            cache,
            ..
        } = self;
        if first {
            tx.commit().map_err(sql("commit RSP"))?;
        }
        drop(cache);
        Ok(out)
    }
}

/// Cache size of the connection while an RSP is recorded (KiB, as `PRAGMA cache_size` takes
/// it when negative).
const RSP_CACHE_KIB: i64 = -8 * 1024;

/// Keeps a return item that names nothing sent yet.
fn keep_unmatched(
    tx: &Transaction<'_>,
    inbox: InboxId,
    kind: &str,
    item: usize,
    key: (&str, &str, Option<&str>),
    detail: &str,
    at: i64,
) -> Result<(), StoreError> {
    let item = i64::try_from(item).unwrap_or(i64::MAX);
    let mut stmt = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO rec_return (inbox, kind, item, lot_number, lot_date, invoice_number, detail,
                                               received_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .map_err(sql("prepare return insert"))?;
    stmt.execute(params![inbox.0, kind, item, key.0, key.1, key.2, detail, at])
        .map_err(sql("insert return"))?;
    Ok(())
}

impl<'a> Returns<'a> {
    /// Whether the lots and invoices of journal entry `entry` are registered.
    pub fn is_registered(&self, entry: EntryId) -> Result<bool, StoreError> {
        self.store
            .conn
            .query_row("SELECT 1 FROM rec_entry WHERE entry = ?1", [entry.0], |_| Ok(()))
            .optional()
            .map(|o| o.is_some())
            .map_err(sql("read rec_entry"))
    }

    /// Sent (`out`, status `sent`) journal entries whose lots are not registered yet, oldest first.
    pub fn unregistered_sent(&self) -> Result<Vec<EntryId>, StoreError> {
        let mut stmt = self
            .store
            .conn
            .prepare(
                "SELECT id FROM journal WHERE direction = 'out' AND status = 'sent' AND profile LIKE 'FACTURE%'
                   AND id NOT IN (SELECT entry FROM rec_entry) ORDER BY id",
            )
            .map_err(sql("prepare unregistered query"))?;
        let ids = stmt
            .query_map([], |r| r.get::<_, i64>(0))
            .map_err(sql("query unregistered"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql("read unregistered"))?;
        Ok(ids.into_iter().map(EntryId).collect())
    }

    /// Registers the lots and invoices of sent journal entry `entry` (sent at `sent_ms`), in one
    /// transaction, then applies the kept returns that name them. `loose_invoices` are invoices
    /// whose lot is unknown (the sent file could not be read back). Idempotent: a second call
    /// for the same entry does nothing and returns 0. Returns the number of invoices registered.
    pub fn register_sent(
        &self,
        entry: EntryId,
        sent_ms: i64,
        lots: &[SentLot],
        loose_invoices: &[String],
    ) -> Result<usize, StoreError> {
        let tx = self
            .store
            .conn
            .unchecked_transaction()
            .map_err(sql("begin register"))?;
        let fresh = tx
            .execute("INSERT OR IGNORE INTO rec_entry (entry) VALUES (?1)", [entry.0])
            .map_err(sql("insert rec_entry"))?;
        if fresh == 0 {
            return Ok(0);
        }
        let mut count = 0usize;
        {
            let mut lot_stmt = tx
                .prepare_cached(
                    "INSERT INTO rec_lot (entry, number, date, kind, invoices, sent_ms, arl)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'awaiting')",
                )
                .map_err(sql("prepare lot insert"))?;
            let mut inv_stmt = tx
                .prepare_cached(
                    "INSERT INTO rec_invoice (entry, lot, number, kind, lot_number, lot_date, sent_ms, state)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'awaiting')",
                )
                .map_err(sql("prepare invoice insert"))?;
            for l in lots {
                let number = lot_key(&l.number);
                let kind = l.kind.map(InvoiceKind::as_str);
                lot_stmt
                    .execute(params![
                        entry.0,
                        number,
                        l.date,
                        kind,
                        i64::try_from(l.invoices.len()).unwrap_or(i64::MAX),
                        sent_ms
                    ])
                    .map_err(sql("insert lot"))?;
                let lot_id = tx.last_insert_rowid();
                for i in &l.invoices {
                    inv_stmt
                        .execute(params![
                            entry.0,
                            lot_id,
                            invoice_key(i),
                            kind,
                            number,
                            l.date,
                            sent_ms
                        ])
                        .map_err(sql("insert invoice"))?;
                    count += 1;
                }
            }
            for i in loose_invoices {
                inv_stmt
                    .execute(params![
                        entry.0,
                        Option::<i64>::None,
                        invoice_key(i),
                        Option::<&str>::None,
                        Option::<&str>::None,
                        Option::<&str>::None,
                        sent_ms
                    ])
                    .map_err(sql("insert invoice"))?;
                count += 1;
            }
        }
        rematch(&tx)?;
        tx.commit().map_err(sql("commit register"))?;
        Ok(count)
    }

    /// Records an ARL received in inbox message `inbox` and applies it to the lot it names
    /// (kept for later if none). A second call for the same message does nothing.
    pub fn record_arl(&self, inbox: InboxId, a: &ArlReturn) -> Result<Recorded, StoreError> {
        let tx = self
            .store
            .conn
            .unchecked_transaction()
            .map_err(sql("begin ARL"))?;
        let a = ArlReturn {
            lot_number: lot_key(&a.lot_number),
            ..a.clone()
        };
        let at = now_ms();
        let mut out = Recorded::default();
        if !first_time(&tx, inbox, "ARL")? {
            out.already_recorded = 1;
        } else if let Some(lot) = match_lot(&tx, &a)? {
            apply_arl(&tx, inbox.0, lot, &a, at)?;
            out.matched = 1;
        } else {
            let detail = serde_json::to_string(&a).unwrap_or_default();
            keep_unmatched(
                &tx,
                inbox,
                "ARL",
                0,
                (&a.lot_number, &a.lot_date, None),
                &detail,
                at,
            )?;
            out.unmatched = 1;
        }
        tx.commit().map_err(sql("commit ARL"))?;
        Ok(out)
    }

    /// Records the invoice outcomes of a NOEMIE return received in inbox message `inbox`, in one
    /// transaction, and applies each to the invoice it names (kept for later if none). A second
    /// call for the same message does nothing.
    pub fn record_rsp(&self, inbox: InboxId, items: &[RspReturn]) -> Result<Recorded, StoreError> {
        let mut rec = self.begin_rsp(inbox)?;
        for r in items {
            rec.add(r.clone())?;
        }
        rec.commit()
    }

    /// [`Returns::record_rsp`] one item at a time: the caller hands each invoice outcome over as
    /// it reads it, so a return of 80,000 invoices is never held as one list. Nothing is
    /// recorded unless [`RspRecorder::commit`] is called.
    pub fn begin_rsp(&self, inbox: InboxId) -> Result<RspRecorder<'a>, StoreError> {
        // The pages an RSP writes stay in the cache until the commit: 80,000 unmatched invoices
        // fill 25 MiB of the connection's 64 MiB, beside the file itself. Above this size
        // SQLite writes them to the WAL as it goes.
        let cache = CacheSize::set(&self.store.conn, RSP_CACHE_KIB)?;
        let tx = self
            .store
            .conn
            .unchecked_transaction()
            .map_err(sql("begin RSP"))?;
        let first = first_time(&tx, inbox, "RSP")?;
        Ok(RspRecorder {
            tx,
            cache,
            inbox,
            at: now_ms(),
            first,
            next: 0,
            out: Recorded::default(),
        })
    }

    /// Records a note about a return message (an ART, findings of a NOEMIE file). One note per
    /// (message, kind): a second call replaces nothing.
    pub fn record_note(
        &self,
        inbox: InboxId,
        kind: &str,
        compostage: Option<&str>,
        summary: &str,
        detail: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.store
            .conn
            .execute(
                "INSERT OR IGNORE INTO rec_note (inbox, kind, compostage, summary, detail, received_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![inbox.0, kind, compostage, summary, detail.to_string(), now_ms()],
            )
            .map_err(sql("insert return note"))?;
        Ok(())
    }

    /// Every sent lot, oldest first.
    pub fn lots(&self) -> Result<Vec<LotRow>, StoreError> {
        self.lots_where("1", &[])
    }

    /// The sendings of lot (`number`, `date`) that have a positive ARL, oldest first. `kind`
    /// narrows to FSE or DRE when both sides know it. Why: sending such a lot again is a
    /// duplicate claim at the insurer (the PS side refuses a resend of it unless forced).
    pub fn positively_acknowledged(
        &self,
        number: &str,
        date: &str,
        kind: Option<InvoiceKind>,
    ) -> Result<Vec<LotRow>, StoreError> {
        let number = lot_key(number);
        let kind = kind.map(InvoiceKind::as_str);
        self.lots_where(
            "l.arl = 'positive' AND l.number = ?1 AND l.date = ?2 AND (?3 IS NULL OR l.kind IS NULL OR l.kind = ?3)",
            &[&number, &date, &kind],
        )
    }

    /// Lots still awaiting their ARL, sent before `sent_before_ms`.
    pub fn lots_awaiting_arl(&self, sent_before_ms: i64) -> Result<Vec<LotRow>, StoreError> {
        self.lots_where(
            // A message the OCT refused (its entry no longer `sent`) gets no ARL: it is listed
            // as refused, not as silence.
            &format!(
                "l.arl = 'awaiting' AND l.sent_ms < {sent_before_ms} \
                 AND l.entry NOT IN (SELECT id FROM journal WHERE status <> 'sent')"
            ),
            &[],
        )
    }

    /// Lots with a negative ARL not sent again since: to resend.
    pub fn lots_to_resend(&self) -> Result<Vec<LotRow>, StoreError> {
        self.lots_where(&format!("l.arl = 'negative' AND NOT ({LOT_SUPERSEDED})"), &[])
    }

    fn lots_where(&self, cond: &str, params: &[&dyn rusqlite::ToSql]) -> Result<Vec<LotRow>, StoreError> {
        let q = format!(
            "SELECT l.id, l.entry, l.number, l.date, l.kind, l.invoices, l.sent_ms, l.arl, l.arl_ms, l.arl_issued,
                    l.arl_reasons, ({LOT_SUPERSEDED})
             FROM rec_lot l WHERE {cond} ORDER BY l.id"
        );
        let mut stmt = self.store.conn.prepare(&q).map_err(sql("prepare lot query"))?;
        #[allow(clippy::type_complexity)]
        let raws: Vec<(
            i64,
            i64,
            String,
            String,
            Option<String>,
            i64,
            i64,
            String,
            Option<i64>,
            Option<String>,
            String,
            bool,
        )> = stmt
            .query_map(params, |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                    r.get(10)?,
                    r.get(11)?,
                ))
            })
            .map_err(sql("query lots"))?
            .collect::<Result<_, _>>()
            .map_err(sql("read lots"))?;
        raws.into_iter()
            .map(
                |(
                    id,
                    entry,
                    number,
                    date,
                    kind,
                    invoices,
                    sent_ms,
                    arl,
                    arl_ms,
                    arl_issued,
                    reasons,
                    sup,
                )| {
                    Ok(LotRow {
                        id,
                        entry: EntryId(entry),
                        number,
                        date,
                        kind: kind_opt("rec_lot", id, kind)?,
                        invoices: usize::try_from(invoices).unwrap_or(0),
                        sent_ms,
                        arl: ArlState::parse(&arl)
                            .ok_or_else(|| corrupt("rec_lot", "arl", id, arl.clone()))?,
                        arl_ms,
                        arl_issued,
                        arl_reasons: parse_list("rec_lot", "arl_reasons", id, &reasons)?,
                        superseded: sup,
                    })
                },
            )
            .collect()
    }

    /// Every sent invoice, oldest first.
    pub fn invoices(&self) -> Result<Vec<InvoiceRow>, StoreError> {
        self.invoices_where("1")
    }

    /// Invoices without RSP whose lot had a positive ARL recorded before `arl_before_ms`.
    pub fn invoices_awaiting_rsp(&self, arl_before_ms: i64) -> Result<Vec<InvoiceRow>, StoreError> {
        self.invoices_where(&format!(
            "i.state = 'awaiting' AND EXISTS (SELECT 1 FROM rec_lot l WHERE l.id = i.lot AND l.arl = 'positive'
               AND l.arl_ms < {arl_before_ms})"
        ))
    }

    /// Rejected (or partly rejected) invoices not sent again since: to correct and resend.
    pub fn invoices_to_correct(&self) -> Result<Vec<InvoiceRow>, StoreError> {
        self.invoices_where(&format!(
            "i.state IN ('rejected', 'partial') AND NOT ({INVOICE_SUPERSEDED})"
        ))
    }

    fn invoices_where(&self, cond: &str) -> Result<Vec<InvoiceRow>, StoreError> {
        let q = format!(
            "SELECT i.id, i.entry, i.number, i.kind, i.lot_number, i.lot_date, i.sent_ms, i.state, i.paid_cents,
                    i.paid_date, i.reasons, i.rsp_ms, ({INVOICE_SUPERSEDED})
             FROM rec_invoice i WHERE {cond} ORDER BY i.id"
        );
        let mut stmt = self
            .store
            .conn
            .prepare(&q)
            .map_err(sql("prepare invoice query"))?;
        let mut rows = stmt.query([]).map_err(sql("query invoices"))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(sql("read invoices"))? {
            let g = |e| StoreError::Sql {
                op: "read invoice column",
                source: e,
            };
            let id: i64 = r.get(0).map_err(g)?;
            let state: String = r.get(7).map_err(g)?;
            let reasons: String = r.get(10).map_err(g)?;
            out.push(InvoiceRow {
                id,
                entry: EntryId(r.get(1).map_err(g)?),
                number: r.get(2).map_err(g)?,
                kind: kind_opt("rec_invoice", id, r.get(3).map_err(g)?)?,
                lot_number: r.get(4).map_err(g)?,
                lot_date: r.get(5).map_err(g)?,
                sent_ms: r.get(6).map_err(g)?,
                state: PaymentState::parse(&state)
                    .ok_or_else(|| corrupt("rec_invoice", "state", id, state.clone()))?,
                paid_cents: r.get(8).map_err(g)?,
                paid_date: r.get(9).map_err(g)?,
                reasons: parse_list("rec_invoice", "reasons", id, &reasons)?,
                rsp_ms: r.get(11).map_err(g)?,
                superseded: r.get(12).map_err(g)?,
            });
        }
        Ok(out)
    }

    /// Paid totals per accounting day (paid and partly paid invoices, flat payments and
    /// deductions of [`crate::statement`]), oldest day first.
    pub fn paid_per_day(&self) -> Result<Vec<DayTotal>, StoreError> {
        let mut stmt = self
            .store
            .conn
            .prepare(
                "SELECT day, SUM(invoices), SUM(inv), SUM(flat), SUM(ded) FROM (
                     SELECT COALESCE(paid_date, '') AS day, 1 AS invoices, paid_cents AS inv, 0 AS flat, 0 AS ded
                     FROM rec_invoice WHERE state IN ('paid', 'partial')
                     UNION ALL
                     SELECT COALESCE(accounting_date, ''), 0, 0,
                            CASE kind WHEN 'flat_payment' THEN amount_cents ELSE 0 END,
                            CASE kind WHEN 'deduction' THEN amount_cents ELSE 0 END
                     FROM rec_payment_line WHERE kind IN ('flat_payment', 'deduction')
                 ) GROUP BY day ORDER BY day",
            )
            .map_err(sql("prepare day totals"))?;
        stmt.query_map([], |r| {
            let (invoice_cents, flat_cents, deduction_cents): (i64, i64, i64) =
                (r.get(2)?, r.get(3)?, r.get(4)?);
            Ok(DayTotal {
                date: r.get(0)?,
                invoices: usize::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                paid_cents: invoice_cents
                    .saturating_add(flat_cents)
                    .saturating_add(deduction_cents),
                invoice_cents,
                flat_cents,
                deduction_cents,
            })
        })
        .map_err(sql("query day totals"))?
        .collect::<Result<_, _>>()
        .map_err(sql("read day totals"))
    }

    /// Return items that name nothing sent, oldest first.
    pub fn unmatched(&self) -> Result<Vec<UnmatchedReturn>, StoreError> {
        let mut stmt = self
            .store
            .conn
            .prepare(
                "SELECT id, inbox, kind, lot_number, lot_date, invoice_number, detail, received_ms FROM rec_return
                 WHERE matched IS NULL ORDER BY id",
            )
            .map_err(sql("prepare unmatched query"))?;
        stmt.query_map([], |r| {
            let detail: String = r.get(6)?;
            Ok(UnmatchedReturn {
                id: r.get(0)?,
                inbox: InboxId(r.get(1)?),
                kind: r.get(2)?,
                lot_number: r.get(3)?,
                lot_date: r.get(4)?,
                invoice_number: r.get(5)?,
                detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
                received_ms: r.get(7)?,
            })
        })
        .map_err(sql("query unmatched"))?
        .collect::<Result<_, _>>()
        .map_err(sql("read unmatched"))
    }

    /// Every recorded note (ARTs, NOEMIE findings), oldest first.
    pub fn notes(&self) -> Result<Vec<ReturnNote>, StoreError> {
        let mut stmt = self
            .store
            .conn
            .prepare("SELECT inbox, kind, compostage, summary, detail, received_ms FROM rec_note ORDER BY id")
            .map_err(sql("prepare note query"))?;
        stmt.query_map([], |r| {
            let detail: String = r.get(4)?;
            Ok(ReturnNote {
                inbox: InboxId(r.get(0)?),
                kind: r.get(1)?,
                compostage: r.get(2)?,
                summary: r.get(3)?,
                detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
                received_ms: r.get(5)?,
            })
        })
        .map_err(sql("query notes"))?
        .collect::<Result<_, _>>()
        .map_err(sql("read notes"))
    }
}

const LOT_SUPERSEDED: &str =
    "EXISTS (SELECT 1 FROM rec_lot l2 WHERE l2.number = l.number AND l2.date = l.date
                                 AND l2.id > l.id AND (l2.kind IS l.kind))";
const INVOICE_SUPERSEDED: &str =
    "EXISTS (SELECT 1 FROM rec_invoice i2 WHERE i2.number = i.number AND i2.id > i.id
                                     AND (i2.kind IS NULL OR i.kind IS NULL OR i2.kind = i.kind))";

/// Applies the kept (unmatched) returns that now find their lot or invoice, in message order.
fn rematch(tx: &Transaction<'_>) -> Result<(), StoreError> {
    #[allow(clippy::type_complexity)]
    let pending: Vec<(i64, i64, String, String, i64)> = {
        let mut stmt = tx
            .prepare(
                "SELECT id, inbox, kind, detail, received_ms FROM rec_return WHERE matched IS NULL ORDER BY inbox, id",
            )
            .map_err(sql("prepare rematch"))?;
        stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .map_err(sql("query rematch"))?
        .collect::<Result<_, _>>()
        .map_err(sql("read rematch"))?
    };
    for (id, inbox, kind, detail, at) in pending {
        let found = match kind.as_str() {
            "ARL" => {
                let a: ArlReturn = serde_json::from_str(&detail)
                    .map_err(|_| corrupt("rec_return", "detail", id, detail.clone()))?;
                match match_lot(tx, &a)? {
                    Some(lot) => {
                        apply_arl(tx, inbox, lot, &a, at)?;
                        Some(lot)
                    }
                    None => None,
                }
            }
            "RSP" => {
                let r: RspReturn = serde_json::from_str(&detail)
                    .map_err(|_| corrupt("rec_return", "detail", id, detail.clone()))?;
                match match_invoice(tx, &r)? {
                    Some(inv) => {
                        apply_rsp(tx, inbox, inv, &r, at)?;
                        Some(inv)
                    }
                    None => None,
                }
            }
            other => return Err(corrupt("rec_return", "kind", id, other)),
        };
        if let Some(row) = found {
            tx.execute(
                "UPDATE rec_return SET matched = ?2 WHERE id = ?1",
                params![id, row],
            )
            .map_err(sql("mark return matched"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lot() -> SentLot {
        SentLot {
            number: "7".into(),
            date: "261126".into(),
            kind: Some(InvoiceKind::Fse),
            invoices: vec!["42".into(), "43".into()],
        }
    }

    fn rsp(invoice: &str, state: PaymentState, paid: i64) -> RspReturn {
        RspReturn {
            lot_number: "007".into(),
            lot_date: "261126".into(),
            invoice_number: invoice.into(),
            kind: Some(InvoiceKind::Fse),
            state,
            paid_cents: paid,
            paid_date: Some("2026-11-27".into()),
            reasons: Vec::new(),
        }
    }

    #[test]
    fn keys_are_normalised() {
        assert_eq!(lot_key("7"), "007");
        assert_eq!(invoice_key(" 42"), "000000042");
        assert_eq!(invoice_key("A42"), "A42");
    }

    #[test]
    fn later_message_wins_whatever_the_matching_order() {
        let s = Store::open_in_memory().unwrap();
        let r = s.returns();
        // Message 9 (paid) arrives before the send is registered; message 5 (rejected) after.
        assert_eq!(
            r.record_rsp(InboxId(9), &[rsp("42", PaymentState::Paid, 900)])
                .unwrap()
                .unmatched,
            1
        );
        assert_eq!(r.register_sent(EntryId(1), 0, &[lot()], &[]).unwrap(), 2);
        assert_eq!(
            r.register_sent(EntryId(1), 0, &[lot()], &[]).unwrap(),
            0,
            "idempotent"
        );
        assert_eq!(
            r.record_rsp(InboxId(5), &[rsp("42", PaymentState::Rejected, 0)])
                .unwrap()
                .matched,
            1
        );
        let inv = r.invoices().unwrap();
        assert_eq!(inv.len(), 2);
        assert_eq!(
            (inv[0].number.as_str(), inv[0].state, inv[0].paid_cents),
            ("000000042", PaymentState::Paid, 900)
        );
        assert!(r.unmatched().unwrap().is_empty());
        // The same message again: nothing recorded.
        let again = r
            .record_rsp(InboxId(5), &[rsp("43", PaymentState::Paid, 100)])
            .unwrap();
        assert_eq!(again.already_recorded, 1);
        assert_eq!(r.invoices().unwrap()[1].state, PaymentState::Awaiting);
    }

    /// An RSP recorded item by item: nothing stays without the commit, the connection gets its
    /// cache size back either way, and a message recorded once is only counted the second time.
    #[test]
    fn rsp_recorder_commits_or_leaves_nothing() {
        let s = Store::open_in_memory().unwrap();
        s.conn.pragma_update(None, "cache_size", -4096).unwrap();
        let cache = || -> i64 {
            s.conn
                .pragma_query_value(None, "cache_size", |r| r.get(0))
                .unwrap()
        };
        let r = s.returns();
        r.register_sent(EntryId(1), 0, &[lot()], &[]).unwrap();
        let mut rec = r.begin_rsp(InboxId(3)).unwrap();
        assert_eq!(cache(), RSP_CACHE_KIB, "the smaller cache while recording");
        rec.add(rsp("42", PaymentState::Paid, 900)).unwrap();
        drop(rec);
        assert_eq!(cache(), -4096);
        assert_eq!(
            r.invoices().unwrap()[0].state,
            PaymentState::Awaiting,
            "dropped, not committed"
        );
        let mut rec = r.begin_rsp(InboxId(3)).unwrap();
        rec.add(rsp("42", PaymentState::Paid, 900)).unwrap();
        rec.add(rsp("99", PaymentState::Paid, 100)).unwrap();
        let done = rec.commit().unwrap();
        assert_eq!((done.matched, done.unmatched, done.already_recorded), (1, 1, 0));
        assert_eq!(cache(), -4096);
        assert_eq!(r.invoices().unwrap()[0].state, PaymentState::Paid);
        let mut rec = r.begin_rsp(InboxId(3)).unwrap();
        rec.add(rsp("43", PaymentState::Paid, 100)).unwrap();
        assert_eq!(rec.commit().unwrap().already_recorded, 1);
        assert_eq!(r.invoices().unwrap()[1].state, PaymentState::Awaiting);
    }

    #[test]
    fn arl_matches_lot_by_number_date_and_kind() {
        let s = Store::open_in_memory().unwrap();
        let r = s.returns();
        r.register_sent(EntryId(1), 0, &[lot()], &[]).unwrap();
        let arl = |kind, date: &str, positive| ArlReturn {
            lot_number: "7".into(),
            lot_date: date.into(),
            kind,
            positive,
            reasons: Vec::new(),
            issued: String::new(),
        };
        // A DRE lot 007, or lot 007 of another day, is not ours.
        assert_eq!(
            r.record_arl(InboxId(1), &arl(Some(InvoiceKind::Dre), "261126", true))
                .unwrap()
                .unmatched,
            1
        );
        assert_eq!(
            r.record_arl(InboxId(2), &arl(None, "261125", true))
                .unwrap()
                .unmatched,
            1
        );
        assert_eq!(r.lots().unwrap()[0].arl, ArlState::Awaiting);
        assert_eq!(
            r.record_arl(InboxId(3), &arl(None, "261126", false))
                .unwrap()
                .matched,
            1
        );
        assert_eq!(r.lots_to_resend().unwrap().len(), 1);
        // Sent again: the new sending awaits its ARL, the old one is no longer to resend.
        r.register_sent(EntryId(2), 10, &[lot()], &[]).unwrap();
        assert!(r.lots_to_resend().unwrap().is_empty());
        assert_eq!(r.lots_awaiting_arl(11).unwrap().len(), 1);
        assert_eq!(r.unmatched().unwrap().len(), 2);
    }
}
