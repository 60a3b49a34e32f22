//! The returns hook: what happens to a received message once it is stored, recognised and opened.
//!
//! [`crate::fetch`] calls [`handle`] for every message of a return profile (ART, ARL, RSP, dLOI
//! increments), after it is durably in the inbox. The returns work (issue 5: ARL and RSP
//! reconciliation, ART display, LOI increments) fills this one function; the retrieval does not
//! change. Until then every return is kept, classified, and listed by `svoct ps inbox`.
//!
//! Contract of [`handle`]:
//! - it may be called again for the same message after a crash (the message stays `new` until a
//!   call returns), so it must be idempotent;
//! - `Ok(Disposition::Kept)` leaves the message `new` and classified; `Ok(Disposition::Processed)`
//!   marks it processed; `Err(reason)` quarantines it with that reason (nothing is deleted).
//!
//! What [`handle`] does (issue 5, `docs/returns.md`):
//! - first, [`sync_sent`] registers the lots and invoices of every sent message not yet known to
//!   the reconciliation tables (read back from the saved payload: lot number, date, kind and
//!   invoices of each lot; from the journal when the payload is gone);
//! - ARL: the lot's ARL state (`Processed`; `Kept` when it names no sent lot yet);
//! - RSP: every invoice of the NOEMIE file gets its payment state; the payment lines that belong
//!   to no invoice (576 flat payments and deductions) and the notices of a 900 are recorded for
//!   display and totals ([`payment_lines`]); findings (a wrong `990`...) are recorded as a note
//!   and the message is `Kept` for a human look, as is a return naming an invoice never sent;
//! - ART: its text is recorded for display, always (R4.5: the software shows at least the
//!   text); the machine-readable block, when there is one, is parsed as an extra;
//! - dLOI: the increment is applied to the opposition list in version order; an early one is
//!   held (`Kept`), a stale or conflicting one quarantined.

use svoct_formats::arl::{Arl, ArlStatus};
use svoct_formats::art::Art;
use svoct_formats::b2::LotKind;
use svoct_formats::loi::Increment;
use svoct_formats::noemie::{
    self, Deduction, FileSummary, FlatPayment, Invoice, InvoiceState, Noemie, Notice, Payment, ViewItem,
};
use svoct_mail::subject::Subject;
use svoct_store::reconciliation::{ArlReturn, InvoiceKind, PaymentState, RspReturn, SentLot};
use svoct_store::statement::{LineKind, PaymentLine};
use svoct_store::{EntryId, InboxId, LoiOutcome, Store, StoreError};

use crate::config::Config;
use crate::payload::Payloads;

/// Which return a message carries (R4.1, R6, R7.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReturnKind {
    /// The OCT's text acknowledgement (R6.2).
    Art,
    /// Per-lot logical acknowledgement.
    Arl,
    /// NOEMIE payment / reject return.
    Rsp,
    /// dLOI increment file (R7.3).
    Dloi,
}

impl ReturnKind {
    /// The name stored as the inbox classification.
    pub fn name(self) -> &'static str {
        match self {
            ReturnKind::Art => "ART",
            ReturnKind::Arl => "ARL",
            ReturnKind::Rsp => "RSP",
            ReturnKind::Dloi => "DLOI",
        }
    }
}

/// A received message, recognised and opened.
#[derive(Clone, Debug)]
pub struct ClassifiedMessage {
    /// Its row in the inbox (the raw message is kept there).
    pub inbox_id: InboxId,
    pub kind: ReturnKind,
    pub subject: Subject,
    /// The Content-Description, e.g. `RSP/K`.
    pub profile: String,
    pub message_id: Option<String>,
    pub file_name: Option<String>,
    /// The attachment, decrypted and decompressed. [`handle`] parses an RSP file in place: after
    /// it, only the file's first 512 bytes are left here.
    pub file: Vec<u8>,
}

/// What [`handle`] did with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Kept for later processing or display.
    Kept,
    /// Fully processed.
    Processed,
}

/// Processes one classified return. See the module documentation for the contract.
pub fn handle(store: &Store, config: &Config, msg: &mut ClassifiedMessage) -> Result<Disposition, String> {
    if msg.file.is_empty() {
        return Err(format!("{} return with an empty file", msg.kind.name()));
    }
    let store_err = |e: StoreError| format!("store: {e}");
    match msg.kind {
        ReturnKind::Arl => {
            sync_sent(store, config).map_err(store_err)?;
            let arl = match Arl::parse(&msg.file) {
                Ok(a) => a,
                Err(e) => return unreadable(store, msg, &format!("unreadable ARL: {e}")),
            };
            let r = store
                .returns()
                .record_arl(msg.inbox_id, &arl_return(&arl))
                .map_err(store_err)?;
            Ok(if r.unmatched > 0 {
                Disposition::Kept
            } else {
                Disposition::Processed
            })
        }
        ReturnKind::Rsp => {
            sync_sent(store, config).map_err(store_err)?;
            handle_rsp(store, msg).map_err(store_err)
        }
        ReturnKind::Art => {
            let (compostage, summary, detail) = art_note(&msg.file);
            store
                .returns()
                .record_note(msg.inbox_id, "ART", compostage.as_deref(), &summary, &detail)
                .map_err(store_err)?;
            if let Some(c) = &compostage
                && art_refuses_the_file(&detail)
            {
                mark_refused(store, msg.inbox_id, c, &summary).map_err(store_err)?;
            }
            Ok(Disposition::Processed)
        }
        ReturnKind::Dloi => {
            let inc = match Increment::parse(&msg.file) {
                Ok(i) => i,
                Err(e) => return unreadable(store, msg, &format!("unreadable dLOI increment: {e}")),
            };
            let r = store
                .loi()
                .apply(&inc, &msg.file, Some(msg.inbox_id))
                .map_err(store_err)?;
            match r.outcome {
                LoiOutcome::Done { .. } => Ok(Disposition::Processed),
                LoiOutcome::Held { .. } => Ok(Disposition::Kept),
                LoiOutcome::Refused { reason } => {
                    Err(format!("dLOI increment {} -> {}: {reason}", inc.from, inc.to))
                }
            }
        }
    }
}

/// An RSP: reconciliation of each invoice, the lines that belong to no invoice, a note of the
/// file's findings. The file is parsed in place (its entity streams compacted inside it, no
/// copy) and its views are walked, never built whole; the message keeps the file's first 512
/// bytes for the note of an unreadable file.
fn handle_rsp(store: &Store, msg: &mut ClassifiedMessage) -> Result<Disposition, StoreError> {
    let file = std::mem::take(&mut msg.file);
    msg.file = file.get(..file.len().min(512)).unwrap_or_default().to_vec();
    let parsed = match noemie::parse_owned(file) {
        Ok(n) => n,
        Err(e) => return unreadable_file(store, msg, &format!("unreadable NOEMIE file: {e}")),
    };
    let mut rec = store.returns().begin_rsp(msg.inbox_id)?;
    let mut failed = None;
    let RspRecord { lines } = rsp_record(&parsed, |r| {
        if failed.is_none() {
            failed = rec.add(r).err();
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    let r = rec.commit()?;
    store.returns().record_payment_lines(msg.inbox_id, &lines)?;
    if !parsed.findings.is_empty() {
        let summary = format!(
            "NOEMIE {} with {} finding(s): {}",
            parsed.references(),
            parsed.findings.len() + parsed.findings_suppressed,
            parsed.findings.first().map(|f| f.message.as_str()).unwrap_or("")
        );
        let detail = serde_json::to_value(&parsed.findings).unwrap_or_default();
        store
            .returns()
            .record_note(msg.inbox_id, "RSP", None, &summary, &detail)?;
    }
    // Warnings and information (an entity without a published layout, a blank currency) are
    // noted for the support team; only errors keep the return for a human.
    Ok(if !parsed.has_errors() && r.unmatched == 0 {
        Disposition::Processed
    } else {
        Disposition::Kept
    })
}

/// A return whose file does not read: kept in the inbox (`Kept`) with a note naming the error,
/// shown by `svoct ps returns`; the raw message stays in the inbox for a human look.
fn unreadable(store: &Store, msg: &ClassifiedMessage, why: &str) -> Result<Disposition, String> {
    unreadable_file(store, msg, why).map_err(|e| format!("store: {e}"))
}

fn unreadable_file(store: &Store, msg: &ClassifiedMessage, why: &str) -> Result<Disposition, StoreError> {
    let head: String =
        String::from_utf8_lossy(msg.file.get(..msg.file.len().min(512)).unwrap_or_default()).into_owned();
    store.returns().record_note(
        msg.inbox_id,
        msg.kind.name(),
        None,
        why,
        &serde_json::Value::String(head),
    )?;
    Ok(Disposition::Kept)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Longest ART text kept for display (a real receipt is a few KiB).
pub const MAX_ART_TEXT: usize = 256 * 1024;

/// The note of an ART: (compostage, summary, detail). The detail is always
/// `{"text": <the text as received>, "structured": <the machine block as JSON, or null>}`: the
/// text is what the PS is shown (R4.5, 7.2 "édite au minimum le message texte"); the block is an
/// optional extra that, when present, gives the compostage and a summary. Without it, the
/// compostage is the first 19-digit run of the text that reads as one (real receipts quote the
/// received subject), and the summary is the first line of the text.
pub fn art_note(file: &[u8]) -> (Option<String>, String, serde_json::Value) {
    let cut = file.get(..file.len().min(MAX_ART_TEXT)).unwrap_or_default();
    let mut text = String::from_utf8_lossy(cut).into_owned();
    if file.len() > MAX_ART_TEXT {
        text.push_str("\n[... text cut at 256 KiB]");
    }
    let first_line = text
        .lines()
        .map(one_line)
        .find(|l| !l.is_empty())
        .unwrap_or_default();
    let (compostage, summary, structured) = match Art::parse(file) {
        Ok(art) => {
            let file_detail = one_line(&art.file_detail);
            let mut summary = format!("{:?} {} lot(s)", art.file_status, art.lots.len());
            if !file_detail.is_empty() {
                summary.push_str(": ");
                summary.push_str(&file_detail);
            }
            let c = (!art.compostage.is_empty()).then(|| art.compostage.clone());
            (c, summary, serde_json::to_value(&art).unwrap_or_default())
        }
        Err(_) => (compostage_in(&text), first_line, serde_json::Value::Null),
    };
    let detail = serde_json::json!({ "text": text, "structured": structured });
    (compostage, summary, detail)
}

/// Whether an ART note's machine block says the whole message was refused (`REFUSE`).
pub fn art_refuses_the_file(detail: &serde_json::Value) -> bool {
    detail
        .get("structured")
        .and_then(|s| s.get("file_status"))
        .and_then(|s| s.as_str())
        == Some("refused")
}

/// The OCT refused the message of `compostage`: its journal entry, if `sent`, becomes `failed`
/// with the ART's reason. The refusal is then what `svoct ps status` shows first, the no-ARL
/// worklist no longer waits for it, and its invoices may be sent again (`ps send` or
/// `ps resend`, which builds the message anew with the current settings).
fn mark_refused(store: &Store, inbox: InboxId, compostage: &str, summary: &str) -> Result<(), StoreError> {
    let journal = store.journal();
    let Some(entry) = journal.by_compostage(compostage)? else {
        return Ok(());
    };
    if entry.direction != svoct_store::Direction::Out || entry.status != svoct_store::Status::Sent {
        return Ok(());
    }
    journal.set_outcome(
        entry.id,
        svoct_store::Status::Failed,
        Some(&format!(
            "{} (ART, inbox {}): {summary}",
            crate::status::REFUSED_BY_OCT,
            inbox.0
        )),
    )
}

/// The first run of exactly 19 digits that reads as a compostage.
fn compostage_in(text: &str) -> Option<String> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|run| run.len() == 19)
        .find(|run| run.parse::<svoct_mail::subject::Compostage>().is_ok())
        .map(str::to_owned)
}

/// The lines of a NOEMIE file that belong to no invoice (576 flat payments and deductions) with
/// the notices of a 900, as the store keeps them for display and totals
/// (`docs/formats/ps-returns-display.md`). The invoices themselves go to the sink given to
/// [`rsp_record`] as they come out.
pub struct RspRecord {
    pub lines: Vec<PaymentLine>,
}

/// Walks the payment view of a parsed file once ([`Noemie::walk_payments`]) and hands each
/// invoice's reconciliation to `invoice` as soon as its payment's accounting date is known;
/// returns the lines that belong to no invoice. Each payment and invoice is turned into what the
/// store keeps and then dropped: neither the whole report nor the list of invoices ever exists
/// at once. An invoice comes out before the payment that holds it, so the invoices of the
/// payment being read wait (a handful) until that payment comes out.
pub fn rsp_record(n: &Noemie, mut invoice: impl FnMut(RspReturn)) -> RspRecord {
    let files: Vec<(String, String)> = n
        .files
        .iter()
        .map(|f| file_identity(&FileSummary::of(f)))
        .collect();
    let ident = |file: usize| files.get(file).cloned().unwrap_or_default();
    let mut dates: Vec<Option<String>> = Vec::new();
    let mut waiting: Vec<(Option<usize>, RspReturn)> = Vec::new();
    let mut lines = Vec::new();
    // 900 notices, each with its invoice's payment: after the payment lines, as before.
    let mut notices_900: Vec<(Option<usize>, Vec<PaymentLine>)> = Vec::new();
    n.walk_payments(|item| match item {
        ViewItem::Payment(p) => {
            let date = p.accounting_date.as_ref().and_then(|d| d.iso.clone());
            let (reference, file) = ident(p.file);
            let o = Origin {
                reference,
                file,
                date,
            };
            payment_only_lines(&mut lines, &o, &p);
            let index = dates.len();
            dates.push(o.date);
            release(&mut waiting, &dates, Some(index), &mut invoice);
        }
        ViewItem::Invoice(i) => {
            let (reference, file) = ident(i.file);
            if reference == "900" {
                let o = Origin {
                    reference,
                    file,
                    date: None,
                };
                let mut out = Vec::new();
                notices(&mut out, &o, &i.rejects, &i.comments, Some(&i));
                notices_900.push((i.payment, out));
            }
            waiting.push((i.payment, rsp_return(&i)));
            // An invoice outside any payment has no date to wait for.
            release(&mut waiting, &dates, None, &mut invoice);
        }
    });
    // Whatever still waits names a payment that never came: handed over in order, undated.
    for (p, mut r) in waiting {
        r.paid_date = p.and_then(|p| dates.get(p).cloned().flatten());
        invoice(r);
    }
    let date_of = |p: Option<usize>| p.and_then(|p| dates.get(p).cloned().flatten());
    for (p, mut out) in notices_900 {
        let date = date_of(p);
        for l in &mut out {
            l.accounting_date = date.clone();
        }
        lines.extend(out);
    }
    RspRecord { lines }
}

/// Hands over, in order, the waiting invoices at the front of the queue that belong to payment
/// `done` (just read, so its date is known) or to no payment.
fn release(
    waiting: &mut Vec<(Option<usize>, RspReturn)>,
    dates: &[Option<String>],
    done: Option<usize>,
    invoice: &mut impl FnMut(RspReturn),
) {
    let ready = waiting
        .iter()
        .take_while(|(p, _)| p.is_none() || *p == done)
        .count();
    for (p, mut r) in waiting.drain(..ready) {
        r.paid_date = p.and_then(|p| dates.get(p).cloned().flatten());
        invoice(r);
    }
}

/// A file's reference, and its identity: the same file relayed twice is recorded once.
fn file_identity(f: &FileSummary) -> (String, String) {
    let identity = format!(
        "{}/{}/{}/{}",
        f.sender_type.trim(),
        f.sender_number.trim(),
        f.file_id.trim(),
        f.created.raw.trim()
    );
    (f.reference.trim().to_owned(), identity)
}

/// The lines of one payment that belong to no invoice: flat payments, deductions, notices.
fn payment_only_lines(out: &mut Vec<PaymentLine>, o: &Origin, p: &Payment) {
    for f in &p.flat_payments {
        out.push(flat_line(o, f));
    }
    for d in &p.deductions {
        out.push(PaymentLine {
            reference: o.reference.clone(),
            file: o.file.clone(),
            kind: LineKind::Deduction,
            accounting_date: o.date.clone(),
            code: format!("{}/{}", d.debt_nature.trim(), d.recovery_nature.trim()),
            label: deduction_label(d),
            period: None,
            invoice_number: None,
            lot_number: None,
            amount_cents: d.amount_cents,
            detail: serde_json::to_value(d).unwrap_or_default(),
        });
    }
    notices(out, o, &p.notices, &p.comments, None);
}

/// Where a line comes from: its file's reference and identity, its payment's accounting date.
struct Origin {
    reference: String,
    file: String,
    date: Option<String>,
}

/// One line per notice; the comments (`295`) go with the first one, or make a line of their
/// own when there is no notice.
fn notices(
    out: &mut Vec<PaymentLine>,
    o: &Origin,
    notices: &[Notice],
    comments: &[String],
    invoice: Option<&Invoice>,
) {
    let comment_only = Notice {
        entity: "295".into(),
        code: String::new(),
        label: String::new(),
        reject_level: None,
        part: None,
        line: None,
    };
    let has_comments = comments.iter().any(|c| !c.trim().is_empty());
    if notices.is_empty() && has_comments {
        out.push(notice_line(o, &comment_only, comments, invoice));
        return;
    }
    for (k, n) in notices.iter().enumerate() {
        let c = if k == 0 { comments } else { &[] };
        out.push(notice_line(o, n, c, invoice));
    }
}

fn flat_line(o: &Origin, f: &FlatPayment) -> PaymentLine {
    let labels: Vec<String> = f
        .details
        .iter()
        .map(|d| one_line(&d.label))
        .filter(|l| !l.is_empty())
        .collect();
    let periods: Vec<String> = f
        .details
        .iter()
        .filter_map(|d| {
            let start = d.period_start.iso.as_deref()?;
            let end = d.period_end.iso.as_deref().unwrap_or(start);
            Some(format!("{} {start}..{end}", d.period.trim()).trim().to_owned())
        })
        .collect();
    PaymentLine {
        reference: o.reference.clone(),
        file: o.file.clone(),
        kind: LineKind::FlatPayment,
        accounting_date: o.date.clone(),
        code: f.code.trim().to_owned(),
        label: labels.join("; "),
        period: (!periods.is_empty()).then(|| periods.join("; ")),
        invoice_number: None,
        lot_number: None,
        amount_cents: i64::try_from(f.amount_cents).unwrap_or(i64::MAX),
        detail: serde_json::to_value(f).unwrap_or_default(),
    }
}

fn deduction_label(d: &Deduction) -> String {
    let mut s = format!("debt {}", d.debt_reference.trim());
    if let Some(date) = &d.debt_date.iso {
        s.push_str(&format!(" of {date}"));
    }
    if let Some(b) = d.balance_cents {
        s.push_str(&format!(", balance {}.{:02}", b / 100, b % 100));
    }
    s
}

fn notice_line(o: &Origin, n: &Notice, comments: &[String], invoice: Option<&Invoice>) -> PaymentLine {
    let mut label = one_line(&n.label);
    for c in comments.iter().map(|c| one_line(c)).filter(|c| !c.is_empty()) {
        if !label.is_empty() {
            label.push_str("; ");
        }
        label.push_str(&c);
    }
    PaymentLine {
        reference: o.reference.clone(),
        file: o.file.clone(),
        kind: LineKind::Notice,
        accounting_date: o.date.clone(),
        code: n.code.trim().to_owned(),
        label,
        period: None,
        invoice_number: invoice.map(|i| i.invoice_number.trim().to_owned()),
        lot_number: invoice.map(|i| i.lot_number.trim().to_owned()),
        amount_cents: 0,
        detail: serde_json::json!({ "notice": n, "comments": comments }),
    }
}

/// Registers the lots and invoices of every sent invoice message not yet known to the
/// reconciliation tables. Idempotent; returns the number of invoices registered.
pub fn sync_sent(store: &Store, config: &Config) -> Result<usize, StoreError> {
    let pending = store.returns().unregistered_sent()?;
    if pending.is_empty() {
        return Ok(0);
    }
    let payloads = Payloads::beside(&config.store).ok();
    let mut n = 0;
    for id in pending {
        n += register_entry(store, payloads.as_ref(), id)?;
    }
    Ok(n)
}

fn register_entry(store: &Store, payloads: Option<&Payloads>, id: EntryId) -> Result<usize, StoreError> {
    let Some(e) = store.journal().get(id)? else {
        return Ok(0);
    };
    let sent_ms = i64::try_from(e.updated_at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    let from_payload = e
        .compostage
        .as_deref()
        .and_then(|c| payloads.and_then(|p| p.load(c).ok()))
        .and_then(|(_, bytes)| lots_of(&bytes));
    match from_payload {
        Some(lots) => store.returns().register_sent(id, sent_ms, &lots, &[]),
        None => {
            // The file is gone: lots and invoices from the journal, kinds and lot membership
            // unknown (matching then uses the invoice number alone).
            let lots: Vec<SentLot> = e
                .lots
                .iter()
                .map(|l| SentLot {
                    number: l.number.clone(),
                    date: l.date.clone(),
                    kind: None,
                    invoices: Vec::new(),
                })
                .collect();
            store.returns().register_sent(id, sent_ms, &lots, &e.invoices)
        }
    }
}

/// The lots of a sent B2 file with their kinds and invoice numbers; `None` if it does not parse.
pub fn lots_of(bytes: &[u8]) -> Option<Vec<SentLot>> {
    let input = svoct_formats::b2::parse(bytes).ok()?;
    Some(
        input
            .lots()
            .iter()
            .map(|l| SentLot {
                number: l
                    .lot_number()
                    .map(|n| format!("{n:03}"))
                    .unwrap_or_else(|| "(unnumbered)".into()),
                date: l.date().to_owned(),
                kind: Some(match l.kind() {
                    LotKind::Fse => InvoiceKind::Fse,
                    LotKind::Dre => InvoiceKind::Dre,
                }),
                invoices: l
                    .invoices()
                    .iter()
                    .filter_map(|i| i.number().map(|n| format!("{n:09}")))
                    .collect(),
            })
            .collect(),
    )
}

fn kind_of(s: &str) -> Option<InvoiceKind> {
    match s.trim() {
        "FSE" | "F" => Some(InvoiceKind::Fse),
        "DRE" | "D" => Some(InvoiceKind::Dre),
        _ => None,
    }
}

/// What reconciliation needs of an ARL.
pub fn arl_return(a: &Arl) -> ArlReturn {
    ArlReturn {
        lot_number: format!("{:03}", a.lot_number),
        lot_date: a.lot_date.yymmdd(),
        kind: kind_of(&a.lot_kind),
        positive: a.status == ArlStatus::Positive,
        reasons: a
            .reasons
            .iter()
            .map(|r| format!("{} {}", r.code, r.label).trim().to_owned())
            .collect(),
        issued: format!(
            "{:04}-{:02}-{:02} {:02}:{:02}",
            a.issued.date.year, a.issued.date.month, a.issued.date.day, a.issued.hour, a.issued.minute
        ),
    }
}

/// What reconciliation needs of one invoice of a NOEMIE file; `paid_date` is left to the
/// caller, who knows the invoice's payment ([`rsp_record`]).
fn rsp_return(i: &Invoice) -> RspReturn {
    let mut reasons: Vec<String> = i
        .rejects
        .iter()
        .map(|n| format!("{} {}", n.code, n.label).trim().to_owned())
        .collect();
    reasons.extend(
        i.comments
            .iter()
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty()),
    );
    RspReturn {
        lot_number: i.lot_number.clone(),
        lot_date: i.lot_date.ymd().map(|d| d.yymmdd()).unwrap_or_default(),
        invoice_number: i.invoice_number.clone(),
        kind: kind_of(&i.invoice_type),
        state: match i.state {
            InvoiceState::Paid => PaymentState::Paid,
            InvoiceState::Rejected => PaymentState::Rejected,
            InvoiceState::Deferred => PaymentState::Deferred,
            InvoiceState::Partial => PaymentState::Partial,
            InvoiceState::NotProcessed => PaymentState::NotProcessed,
        },
        paid_cents: i.paid_cents,
        paid_date: None,
        reasons,
    }
}
