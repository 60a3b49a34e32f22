//! Business views of a parsed NOEMIE input: payments and invoices with their states and amounts,
//! gathered in the [`NoemieReport`] that `svoct inspect --json` prints.

use std::borrow::Cow;

use serde::Serialize;

use super::reader::{DateValue, EntityRef, Finding, Noemie, NoemieFile, Packaging};
use crate::Severity;

/// A calendar date (year with century), as the builder takes it and the views give it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Ymd {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

impl Ymd {
    pub const fn new(year: u16, month: u8, day: u8) -> Ymd {
        Ymd { year, month, day }
    }

    /// A real calendar date (Gregorian leap years).
    pub fn is_valid(&self) -> bool {
        let y = self.year;
        let leap = (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
        let max = match self.month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return false,
        };
        (1..=max).contains(&self.day)
    }

    /// `AAMMJJ`, the processing-date format of NOEMIE.
    pub fn yymmdd(&self) -> String {
        format!("{:02}{:02}{:02}", self.year % 100, self.month, self.day)
    }
}

impl DateValue {
    /// The decoded date as [`Ymd`], if valid.
    pub fn ymd(&self) -> Option<Ymd> {
        let iso = self.iso.as_deref()?;
        let y = iso.get(0..4)?.parse().ok()?;
        let m = iso.get(5..7)?.parse().ok()?;
        let d = iso.get(8..10)?.parse().ok()?;
        Some(Ymd::new(y, m, d))
    }
}

/// Payment state of an AMO or AMC part (`198`/`199` position 14).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PartState {
    /// `P`
    Paid,
    /// `R`
    Rejected,
    /// `D`
    Deferred,
    /// blank: this part was not processed.
    NotProcessed,
    /// anything else.
    Unknown,
}

impl PartState {
    pub fn from_code(c: &str) -> PartState {
        match c {
            "P" => PartState::Paid,
            "R" => PartState::Rejected,
            "D" => PartState::Deferred,
            "" => PartState::NotProcessed,
            _ => PartState::Unknown,
        }
    }

    /// The one-character code written in the entity.
    pub fn code(&self) -> &'static str {
        match self {
            PartState::Paid => "P",
            PartState::Rejected => "R",
            PartState::Deferred => "D",
            PartState::NotProcessed | PartState::Unknown => " ",
        }
    }
}

/// Overall state of an invoice, from its parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceState {
    Paid,
    Rejected,
    Deferred,
    /// Parts in different states (e.g. AMO paid, AMC rejected).
    Partial,
    /// No processed part and no reject line.
    NotProcessed,
}

/// One part (`198` AMO, `199` AMC) of an invoice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Part<S = String> {
    pub state: PartState,
    pub requested_cents: u64,
    /// Signed paid amount.
    pub paid_cents: i64,
    /// `199` only: the AMC organisation number.
    pub amc_number: Option<S>,
    pub amc_member_id: Option<S>,
}

/// A reject, signalement (`290`, `294`) line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Notice<S = String> {
    /// `290` or `294`.
    pub entity: S,
    pub code: S,
    pub label: S,
    /// `294`: `F` invoice, `L` line, `A` refined code.
    pub reject_level: Option<S>,
    /// `294`: `O` mandatory part, `C` complementary part.
    pub part: Option<S>,
    pub line: Option<u64>,
}

/// A deduction (`250`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Deduction<S = String> {
    pub line: Option<u64>,
    pub debt_reference: S,
    pub debt_date: DateValue<S>,
    pub debt_nature: S,
    pub recovery_nature: S,
    pub amount_cents: i64,
    pub balance_cents: Option<u64>,
}

/// A one-off or flat-rate payment (`261`) and its details (`262`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FlatPayment<S = String> {
    pub code: S,
    pub amount_cents: u64,
    pub details: Vec<FlatDetail<S>>,
}

/// A `262` detail line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FlatDetail<S = String> {
    pub code: S,
    pub label: S,
    pub period: S,
    pub period_start: DateValue<S>,
    pub period_end: DateValue<S>,
    pub amount_cents: u64,
}

/// One payment: a settlement recipient (`040`) with its accounting date (`070`/`071`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Payment<S = String> {
    pub file: usize,
    /// `020` mandataire, if any.
    pub agent: Option<S>,
    /// `040` settlement recipient.
    pub settlement_recipient: Option<S>,
    pub accounting_date: Option<DateValue<S>>,
    /// `071` transfer label lines (non-blank ones).
    pub transfer_label: Vec<S>,
    pub payer: Option<S>,
    /// `081` return type codes (`01`..`05`).
    pub return_types: Vec<S>,
    pub deductions: Vec<Deduction<S>>,
    pub flat_payments: Vec<FlatPayment<S>>,
    /// Reject and comment lines not attached to an invoice.
    pub notices: Vec<Notice<S>>,
    pub comments: Vec<S>,
    /// Indexes into [`NoemieReport::invoices`].
    pub invoices: Vec<usize>,
    /// Signed sum of the controlled amounts of this payment (parts, deductions, flat payments).
    pub amount_cents: i64,
}

/// One invoice (`100`/`102`) and what the insurer did with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Invoice<S = String> {
    pub file: usize,
    /// Index into [`NoemieReport::payments`].
    pub payment: Option<usize>,
    pub invoice_number: S,
    pub invoice_number_complement: S,
    /// From `102` (falls back to the enclosing `080`).
    pub lot_number: S,
    pub lot_date: DateValue<S>,
    /// `F` FSE, `D` DRE, ...
    pub invoice_type: S,
    pub billing_date: DateValue<S>,
    pub amc_processing: S,
    pub insurance_nature: S,
    /// Insured identification (`103`/`110` NIR), if given.
    pub insured: Option<S>,
    pub state: InvoiceState,
    pub amo: Option<Part<S>>,
    pub amc: Option<Part<S>>,
    /// Sum of the paid parts.
    pub paid_cents: i64,
    /// Number of `210` act lines and their signed reimbursed total.
    pub acts: usize,
    pub acts_reimbursed_cents: i64,
    pub rejects: Vec<Notice<S>>,
    pub comments: Vec<S>,
}

/// Summary of one file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileSummary {
    pub index: usize,
    pub offset: usize,
    pub reference: String,
    pub sender_type: String,
    pub sender_number: String,
    pub sender_program: String,
    pub recipient_type: String,
    pub recipient_number: String,
    pub file_id: String,
    pub created: DateValue,
    pub flow_type: String,
    /// `payments` (580, 576, 900) or `entity_tree` (any other reference).
    pub view: ViewKind,
    pub entities: u64,
    /// Physical records, header and trailer included.
    pub records: u64,
    pub lots: u64,
    pub controls_checked: u64,
    pub amount_cents: i64,
}

/// Everything a user (or `svoct inspect --json`) needs to know about a NOEMIE input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NoemieReport {
    /// Always `"noemie"`.
    pub format: &'static str,
    /// The reference of the files (`580`, `576`, `900`...); several distinct ones are joined
    /// with `,`.
    pub reference: String,
    pub packaging: Packaging,
    /// Number of `000`..`999` files.
    pub files: usize,
    pub file_summaries: Vec<FileSummary>,
    /// Payments of the files with a payment view, in index order.
    pub payments: Vec<Payment>,
    pub invoices: Vec<Invoice>,
    /// Entity trees of the files with no payment view (references other than 580/576/900).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<EntityNode>,
    pub findings: Vec<Finding>,
    pub findings_suppressed: usize,
}

/// The text type of the views: `String` in the owned views (what the PS side keeps), or
/// `Cow<str>` borrowing from the input (what `svoct inspect` writes out, without one
/// allocation per field: [`Noemie::walk_view_ref`]). Both serialise the same.
pub trait ViewText<'a>: Clone + Serialize {
    fn from_text(t: Cow<'a, str>) -> Self;
    fn as_text(&self) -> &str;
}

impl<'a> ViewText<'a> for String {
    fn from_text(t: Cow<'a, str>) -> Self {
        t.into_owned()
    }
    fn as_text(&self) -> &str {
        self
    }
}

impl<'a> ViewText<'a> for Cow<'a, str> {
    fn from_text(t: Cow<'a, str>) -> Self {
        t
    }
    fn as_text(&self) -> &str {
        self
    }
}

fn text<'a, S: ViewText<'a>>(e: &EntityRef<'a>, name: &str) -> S {
    S::from_text(e.text_ref(name))
}

fn date<'a, S: ViewText<'a>>(e: &EntityRef<'a>, name: &str) -> DateValue<S> {
    let d = e.date_ref(name);
    DateValue {
        raw: S::from_text(d.raw),
        iso: d.iso.map(S::from_text),
    }
}

fn opt<'a, S: ViewText<'a>>(s: S) -> Option<S> {
    if s.as_text().is_empty() { None } else { Some(s) }
}

fn part<'a, S: ViewText<'a>>(e: &EntityRef<'a>) -> Part<S> {
    let paid = e.controlled_amount().and_then(Result::ok).unwrap_or(0);
    let amc = e.entity.code == Some(199);
    Part {
        state: PartState::from_code(e.text_ref("state").trim()),
        requested_cents: e.number("requested").unwrap_or(0),
        paid_cents: paid,
        amc_number: if amc { opt(text(e, "amc_number")) } else { None },
        amc_member_id: if amc { opt(text(e, "amc_member_id")) } else { None },
    }
}

fn notice<'a, S: ViewText<'a>>(e: &EntityRef<'a>) -> Notice<S> {
    let is294 = e.entity.code == Some(294);
    Notice {
        entity: S::from_text(e.code_text()),
        code: text(e, "code"),
        label: text(e, "label"),
        reject_level: if is294 { opt(text(e, "reject_level")) } else { None },
        part: if is294 { opt(text(e, "part")) } else { None },
        line: e.number("line_number"),
    }
}

fn state_of<S>(inv: &Invoice<S>) -> InvoiceState {
    let states: Vec<PartState> = [&inv.amo, &inv.amc]
        .into_iter()
        .flatten()
        .map(|p| p.state)
        .filter(|s| *s != PartState::NotProcessed)
        .collect();
    let Some(first) = states.first() else {
        return if inv.rejects.is_empty() {
            InvoiceState::NotProcessed
        } else {
            InvoiceState::Rejected
        };
    };
    if states.iter().any(|s| s != first) {
        return InvoiceState::Partial;
    }
    match first {
        PartState::Paid => InvoiceState::Paid,
        PartState::Rejected => InvoiceState::Rejected,
        PartState::Deferred => InvoiceState::Deferred,
        PartState::NotProcessed | PartState::Unknown => InvoiceState::Partial,
    }
}

fn empty_payment<S>(file: usize) -> Payment<S> {
    Payment {
        file,
        agent: None,
        settlement_recipient: None,
        accounting_date: None,
        transfer_label: Vec::new(),
        payer: None,
        return_types: Vec::new(),
        deductions: Vec::new(),
        flat_payments: Vec::new(),
        notices: Vec::new(),
        comments: Vec::new(),
        invoices: Vec::new(),
        amount_cents: 0,
    }
}

/// What the views of a file are: payments and invoices for the references whose structure is
/// known (580, 576, 900), a plain entity tree for every other reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViewKind {
    Payments,
    EntityTree,
}

impl ViewKind {
    pub fn of(reference: &str) -> ViewKind {
        match reference {
            "580" | "576" | "900" => ViewKind::Payments,
            _ => ViewKind::EntityTree,
        }
    }
}

/// One finished item of the payment view, handed out as soon as it is complete so that a
/// large return can be written out without holding all of it ([`Noemie::walk_payments`]).
#[derive(Clone, Debug)]
// Each item is built once and moved once to the consumer: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum ViewItem<S = String> {
    Payment(Payment<S>),
    Invoice(Invoice<S>),
}

struct Walk<S, F: FnMut(ViewItem<S>)> {
    emit: F,
    file: usize,
    /// Indexes the next payment / invoice will get (counted over the whole input).
    next_payment: usize,
    next_invoice: usize,
    /// The payment being filled, opened by `020`/`040`/`070`/`071`, and its index.
    payment: Option<(usize, Payment<S>)>,
    /// Whether the current payment already has its settlement recipient (a new `040` opens a
    /// new payment).
    payment_has_recipient: bool,
    payment_has_date: bool,
    lot: Option<(S, DateValue<S>)>,
    invoice: Option<Invoice<S>>,
    /// An invoice is open (`invoice` is `None` while open when invoices are not wanted: its
    /// detail entities are then dropped, not given to the payment).
    invoice_open: bool,
    /// Build and hand out invoices / payments.
    want: Want,
    /// Read only what the one-line summaries show ([`Noemie::walk_summaries`]).
    summary: bool,
    pending_agent: Option<S>,
}

/// A date left unread (summary walks).
fn no_date<'a, S: ViewText<'a>>() -> DateValue<S> {
    DateValue {
        raw: S::from_text(Cow::Borrowed("")),
        iso: None,
    }
}

/// Which items of the payment view a walk hands out ([`Noemie::walk_view`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Want {
    pub invoices: bool,
    pub payments: bool,
}

impl<'a, S: ViewText<'a>, F: FnMut(ViewItem<S>)> Walk<S, F> {
    fn payment_mut(&mut self) -> &mut Payment<S> {
        if self.payment.is_none() {
            self.payment_has_recipient = false;
            self.payment_has_date = false;
            self.payment = Some((self.next_payment, empty_payment(self.file)));
            self.next_payment += 1;
        }
        let (_, p) = self.payment.get_or_insert_with(|| (0, empty_payment(0)));
        p
    }

    fn close_invoice(&mut self) {
        self.invoice_open = false;
        if let Some(mut inv) = self.invoice.take() {
            inv.state = state_of(&inv);
            inv.paid_cents = [&inv.amo, &inv.amc]
                .into_iter()
                .flatten()
                .fold(0i64, |a, p| a.saturating_add(p.paid_cents));
            (self.emit)(ViewItem::Invoice(inv));
        }
    }

    fn close_payment(&mut self) {
        self.close_invoice();
        if let Some((_, p)) = self.payment.take()
            && self.want.payments
        {
            (self.emit)(ViewItem::Payment(p));
        }
    }

    fn new_payment(&mut self) {
        self.close_payment();
        self.lot = None;
        let agent = self.pending_agent.take();
        self.payment_mut().agent = agent;
    }

    /// Reads an entity into the views. When payments are not wanted, a payment is still
    /// opened and closed where it would be (invoice indexes and payment links depend on it),
    /// but its fields are not read: an invoices-only walk reads only what the invoices show.
    fn entity(&mut self, e: &EntityRef<'a>) {
        let Some(code) = e.entity.code else { return };
        let fill = self.want.payments;
        // What a payment's summary line does not show is read only in a full walk.
        let full = fill && !self.summary;
        match code {
            20 => {
                self.close_payment();
                self.pending_agent = if full {
                    opt(text(e, "settlement_recipient"))
                } else {
                    None
                };
            }
            40 => {
                if self.payment.is_none() || self.payment_has_recipient {
                    self.new_payment();
                }
                self.payment_has_recipient = true;
                let p = self.payment_mut();
                if fill {
                    p.settlement_recipient = opt(text(e, "settlement_recipient"));
                }
            }
            70 | 71 => {
                if self.payment.is_none() || self.payment_has_date {
                    self.new_payment();
                }
                self.payment_has_date = true;
                let p = self.payment_mut();
                if full {
                    p.accounting_date = Some(date(e, "accounting_date"));
                }
                if full && code == 71 {
                    p.transfer_label = ["transfer_label_1", "transfer_label_2"]
                        .iter()
                        .map(|n| text::<S>(e, n))
                        .filter(|s| !s.as_text().trim().is_empty())
                        .collect();
                    p.payer = opt(text(e, "payer"));
                }
            }
            81 => {
                let p = self.payment_mut();
                if full {
                    p.return_types.push(text(e, "return_type"));
                }
            }
            80 => {
                self.close_invoice();
                // The lot is read for the invoices it holds only.
                if self.want.invoices {
                    let lot_date = if self.summary {
                        no_date()
                    } else {
                        date(e, "lot_date")
                    };
                    self.lot = Some((text(e, "lot_number"), lot_date));
                }
            }
            100 | 102 => self.open_invoice(code, e),
            _ => self.detail(code, e),
        }
        if let Some(Ok(a)) = e.controlled_amount()
            && let Some((_, p)) = self.payment.as_mut()
        {
            p.amount_cents = p.amount_cents.saturating_add(a);
        }
    }

    fn open_invoice(&mut self, code: u16, e: &EntityRef<'a>) {
        self.close_invoice();
        let index = self.next_invoice;
        self.next_invoice += 1;
        self.payment_mut().invoices.push(index);
        self.invoice_open = true;
        if !self.want.invoices {
            // Only the invoice's index counts in a payments-only walk: its lot is not read.
            return;
        }
        let (lot_number, lot_date) = match (&self.lot, code) {
            (Some((n, d)), 100) => (n.clone(), d.clone()),
            (lot, _) => {
                let n: S = text(e, "lot_number");
                let d = if self.summary {
                    no_date()
                } else {
                    date(e, "lot_date")
                };
                match lot {
                    Some((ln, ld)) if n.as_text().trim().is_empty() => (ln.clone(), ld.clone()),
                    _ => (n, d),
                }
            }
        };
        let payment = self.payment.as_ref().map(|(i, _)| *i);
        let full = !self.summary;
        let read = |name: &str| {
            if full {
                text(e, name)
            } else {
                S::from_text(Cow::Borrowed(""))
            }
        };
        self.invoice = Some(Invoice {
            file: self.file,
            payment,
            invoice_number: text(e, "invoice_number"),
            invoice_number_complement: read("invoice_number_complement"),
            lot_number,
            lot_date,
            invoice_type: read("invoice_type"),
            billing_date: if full { date(e, "billing_date") } else { no_date() },
            amc_processing: read("amc_processing"),
            insurance_nature: read("insurance_nature"),
            insured: None,
            state: InvoiceState::NotProcessed,
            amo: None,
            amc: None,
            paid_cents: 0,
            acts: 0,
            acts_reimbursed_cents: 0,
            rejects: Vec::new(),
            comments: Vec::new(),
        });
    }

    /// Entities that detail the current invoice or payment. An entity is read only when what
    /// it details is being built (an open invoice, or a payment when payments are wanted).
    fn detail(&mut self, code: u16, e: &EntityRef<'a>) {
        if matches!(code, 250 | 261 | 262) {
            // A payment-level entity opens a payment where there is none, wanted or not.
            let full = self.want.payments && !self.summary;
            let p = self.payment_mut();
            if full {
                payment_detail(p, code, e);
            }
            return;
        }
        if let Some(inv) = self.invoice.as_mut() {
            if self.summary {
                summary_detail(inv, code, e);
            } else {
                invoice_detail(inv, code, e);
            }
            return;
        }
        if self.invoice_open || !matches!(code, 290 | 294 | 295) {
            // The detail of an invoice that is not wanted, or an invoice entity out of place.
            return;
        }
        let fill = self.want.payments && !self.summary;
        let p = self.payment_mut();
        if fill && code == 295 {
            p.comments.push(text(e, "comment"));
        } else if fill {
            p.notices.push(notice(e));
        }
    }
}

/// An entity that details an invoice (`103`/`110`, `150`, `198`/`199`, `210`, `290`/`294`,
/// `295`).
fn invoice_detail<'a, S: ViewText<'a>>(inv: &mut Invoice<S>, code: u16, e: &EntityRef<'a>) {
    match code {
        103 | 110 => inv.insured = opt(text(e, "nir")),
        150 => inv.insurance_nature = text(e, "insurance_nature"),
        198 => inv.amo = Some(part(e)),
        199 => inv.amc = Some(part(e)),
        210 => {
            let v = e.number("reimbursed").unwrap_or(0) as i64;
            let v = if e.text_ref("sign") == "N" { -v } else { v };
            inv.acts += 1;
            inv.acts_reimbursed_cents = inv.acts_reimbursed_cents.saturating_add(v);
        }
        290 | 294 => inv.rejects.push(notice(e)),
        295 => inv.comments.push(text(e, "comment")),
        _ => {}
    }
}

/// [`invoice_detail`] for a summary: the parts' state and amounts, and one blank notice per
/// reject line (the summary counts them; an invoice with rejects and no part is rejected).
fn summary_detail<'a, S: ViewText<'a>>(inv: &mut Invoice<S>, code: u16, e: &EntityRef<'a>) {
    let part = |e: &EntityRef<'a>| Part {
        state: PartState::from_code(e.text_ref("state").trim()),
        requested_cents: e.number("requested").unwrap_or(0),
        paid_cents: e.controlled_amount().and_then(Result::ok).unwrap_or(0),
        amc_number: None,
        amc_member_id: None,
    };
    let blank = || S::from_text(Cow::Borrowed(""));
    match code {
        198 => inv.amo = Some(part(e)),
        199 => inv.amc = Some(part(e)),
        290 | 294 => inv.rejects.push(Notice {
            entity: blank(),
            code: blank(),
            label: blank(),
            reject_level: None,
            part: None,
            line: None,
        }),
        _ => {}
    }
}

/// An entity that details a payment (`250`, `261`, `262`).
fn payment_detail<'a, S: ViewText<'a>>(p: &mut Payment<S>, code: u16, e: &EntityRef<'a>) {
    match code {
        250 => {
            let amount = e.controlled_amount().and_then(Result::ok).unwrap_or(0);
            let d = Deduction {
                line: e.number("line_number"),
                debt_reference: text(e, "debt_reference"),
                debt_date: date(e, "debt_date"),
                debt_nature: text(e, "debt_nature"),
                recovery_nature: text(e, "recovery_nature"),
                amount_cents: amount,
                balance_cents: e.number("balance"),
            };
            p.deductions.push(d);
        }
        261 => {
            let f = FlatPayment {
                code: text(e, "code"),
                amount_cents: e.number("amount").unwrap_or(0),
                details: Vec::new(),
            };
            p.flat_payments.push(f);
        }
        262 => {
            let d = FlatDetail {
                code: text(e, "code"),
                label: text(e, "label"),
                period: text(e, "period"),
                period_start: date(e, "period_start"),
                period_end: date(e, "period_end"),
                amount_cents: e.number("amount").unwrap_or(0),
            };
            if let Some(f) = p.flat_payments.last_mut() {
                f.details.push(d);
            }
        }
        _ => {}
    }
}

impl FileSummary {
    /// The summary of one file.
    pub fn of(f: &NoemieFile) -> FileSummary {
        summary(f)
    }
}

fn summary(f: &NoemieFile) -> FileSummary {
    let created = {
        let raw = f.header_text("created");
        let bytes = f.header.get(55..61).unwrap_or(&[]);
        DateValue {
            iso: super::reader::decode_date(bytes, super::layouts::DateFormat::Yymmdd, f.year()),
            raw,
        }
    };
    FileSummary {
        index: f.index,
        offset: f.offset,
        reference: f.reference(),
        sender_type: f.header_text("sender_type"),
        sender_number: f.header_text("sender_number"),
        sender_program: f.header_text("sender_program"),
        recipient_type: f.header_text("recipient_type"),
        recipient_number: f.header_text("recipient_number"),
        file_id: f.header_text("file_id"),
        created,
        flow_type: f.header_text("flow_type"),
        view: ViewKind::of(&f.reference()),
        entities: f.totals.entities,
        records: f.totals.records,
        lots: f.totals.lots,
        controls_checked: f.totals.controls_checked,
        amount_cents: f.totals.amount,
    }
}

impl Noemie {
    /// Walk the payment view of every file whose reference has one (580, 576, 900), handing
    /// out each payment and invoice as soon as it is complete. An invoice comes out before the
    /// payment that holds it; indexes count over the whole input.
    pub fn walk_payments(&self, emit: impl FnMut(ViewItem)) {
        let want = Want {
            invoices: true,
            payments: true,
        };
        self.walk_view(want, emit);
    }

    /// [`Noemie::walk_payments`] handing out only what is wanted: a writer that puts all
    /// invoices before all payments walks twice rather than holding either list.
    pub fn walk_view(&self, want: Want, emit: impl FnMut(ViewItem)) {
        self.walk_generic(want, false, emit);
    }

    /// [`Noemie::walk_view`] with views that borrow their text from the input (`Cow<str>`,
    /// owned only for a field that is not ASCII or holds a NUL, and for decoded dates): what
    /// `svoct inspect` writes out. The items serialise exactly as the owned ones.
    pub fn walk_view_ref<'a>(&'a self, want: Want, emit: impl FnMut(ViewItem<Cow<'a, str>>)) {
        self.walk_generic(want, false, emit);
    }

    /// [`Noemie::walk_view_ref`] of invoices and payments reading only what a one-line summary
    /// of each shows (what `svoct inspect` prints): an invoice's number, lot number, state,
    /// parts (state, requested and paid amounts, without the AMC numbers), paid amount and
    /// one blank notice per reject line; a payment's settlement recipient, invoices and
    /// amount. Every other field is blank (`""`, `None`, empty lists). Indexes, states and
    /// amounts are those of the full walk.
    pub fn walk_summaries<'a>(&'a self, emit: impl FnMut(ViewItem<Cow<'a, str>>)) {
        let want = Want {
            invoices: true,
            payments: true,
        };
        self.walk_generic(want, true, emit);
    }

    fn walk_generic<'a, S: ViewText<'a>>(&'a self, want: Want, summary: bool, emit: impl FnMut(ViewItem<S>)) {
        let mut w = Walk {
            emit,
            file: 0,
            next_payment: 0,
            next_invoice: 0,
            payment: None,
            payment_has_recipient: false,
            payment_has_date: false,
            lot: None,
            invoice: None,
            invoice_open: false,
            want,
            summary,
            pending_agent: None,
        };
        for f in &self.files {
            if ViewKind::of(&f.reference()) != ViewKind::Payments {
                continue;
            }
            w.file = f.index;
            w.lot = None;
            w.pending_agent = None;
            for e in f.iter() {
                w.entity(&e);
            }
            w.close_payment();
        }
    }

    /// Build the views of every file: payments and invoices, entity trees.
    pub fn report(&self) -> NoemieReport {
        let mut payments = Vec::new();
        let mut invoices = Vec::new();
        self.walk_payments(|item| match item {
            ViewItem::Payment(p) => payments.push(p),
            ViewItem::Invoice(i) => invoices.push(i),
        });
        let mut entities = Vec::new();
        for f in &self.files {
            if ViewKind::of(&f.reference()) == ViewKind::EntityTree {
                entities.extend(tree_of(f));
            }
        }
        NoemieReport {
            format: "noemie",
            reference: self.references(),
            packaging: self.packaging,
            files: self.files.len(),
            file_summaries: self.files.iter().map(summary).collect(),
            payments,
            invoices,
            entities,
            findings: self.findings.clone(),
            findings_suppressed: self.findings_suppressed,
        }
    }

    /// The distinct references of the files, joined with `,`.
    pub fn references(&self) -> String {
        let mut refs: Vec<String> = Vec::new();
        for f in &self.files {
            let r = f.reference();
            if !refs.contains(&r) {
                refs.push(r);
            }
        }
        refs.join(",")
    }

    /// Whether any finding is an error (what makes the input invalid).
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }
}

/// One step of the entity tree of a file ([`entity_tree`]).
#[derive(Clone, Copy, Debug)]
pub enum TreeEvent<'a> {
    /// An entity that may have children (the entities of greater level that follow it).
    Open(EntityRef<'a>),
    /// The last opened entity has no more children.
    Close,
    /// A `990` control: the last child of the entity whose level it closes.
    Control(EntityRef<'a>),
}

/// The entities of a file as a tree by break level: an entity's children are the entities of a
/// greater level that follow it, until one of its level or less; a `990` of level *L* is the
/// last child of the open entity of level *L*. Entities without a readable level are leaves
/// at the current depth.
pub fn entity_tree<'a>(f: &'a NoemieFile, mut on: impl FnMut(TreeEvent<'a>)) {
    let mut open: Vec<u8> = Vec::new();
    for e in f.iter() {
        let level = e.entity.level.unwrap_or(u8::MAX);
        if e.entity.code == Some(990) {
            while open.last().is_some_and(|&l| l > level) {
                open.pop();
                on(TreeEvent::Close);
            }
            on(TreeEvent::Control(e));
            continue;
        }
        while open.last().is_some_and(|&l| l >= level) {
            open.pop();
            on(TreeEvent::Close);
        }
        on(TreeEvent::Open(e));
        open.push(level);
    }
    for _ in open {
        on(TreeEvent::Close);
    }
}

/// One node of the entity tree, for references with no payment view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EntityNode {
    pub file: usize,
    pub index: usize,
    /// Byte offset in the input.
    pub offset: usize,
    pub code: String,
    pub level: Option<u8>,
    /// The layout title; `None` for an entity type with no published layout.
    pub title: Option<&'static str>,
    /// The entity as found (Latin-1, `@` included) when it has no layout.
    pub raw: Option<String>,
    pub fields: Vec<super::reader::FieldValue>,
    pub children: Vec<EntityNode>,
}

impl EntityNode {
    /// The node of one entity, without children.
    pub fn of(f: &NoemieFile, e: &EntityRef<'_>) -> EntityNode {
        EntityNode {
            file: f.index,
            index: e.index,
            offset: f.input_offset(e.entity.start as usize),
            code: e.code_str(),
            level: e.entity.level,
            title: e.layout.map(|l| l.title),
            raw: e
                .layout
                .is_none()
                .then(|| e.raw.iter().map(|&b| char::from(b)).collect()),
            fields: e.fields(),
            children: Vec::new(),
        }
    }
}

fn tree_of(f: &NoemieFile) -> Vec<EntityNode> {
    let mut roots: Vec<EntityNode> = Vec::new();
    let mut stack: Vec<EntityNode> = Vec::new();
    let place =
        |node: EntityNode, stack: &mut Vec<EntityNode>, roots: &mut Vec<EntityNode>| match stack.last_mut() {
            Some(parent) => parent.children.push(node),
            None => roots.push(node),
        };
    entity_tree(f, |ev| match ev {
        TreeEvent::Open(e) => stack.push(EntityNode::of(f, &e)),
        TreeEvent::Close => {
            if let Some(node) = stack.pop() {
                place(node, &mut stack, &mut roots);
            }
        }
        TreeEvent::Control(e) => place(EntityNode::of(f, &e), &mut stack, &mut roots),
    });
    roots
}

/// One entity as found, for a detailed dump (`svoct inspect --json --entities`): position, raw
/// text and every field raw and decoded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EntityDump {
    pub file: usize,
    pub index: usize,
    /// Byte offset in the input.
    pub offset: usize,
    /// The type as found (`102`).
    pub code: String,
    pub level: Option<u8>,
    /// The layout title, `None` for an unknown entity.
    pub title: Option<&'static str>,
    /// The entity bytes (Latin-1), `@` included.
    pub raw: String,
    pub fields: Vec<super::reader::FieldValue>,
}

impl Noemie {
    /// Every entity of every file, raw and decoded field by field.
    pub fn dump(&self) -> Vec<EntityDump> {
        self.files
            .iter()
            .flat_map(|f| {
                f.iter().map(move |e| EntityDump {
                    file: f.index,
                    index: e.index,
                    offset: f.input_offset(e.entity.start as usize),
                    code: e.code_str(),
                    level: e.entity.level,
                    title: e.layout.map(|l| l.title),
                    raw: e.raw.iter().map(|&b| char::from(b)).collect(),
                    fields: e.fields(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::builder::{InvoiceOutcome, PartOutcome, RejectLine, RejectPart, RspParams, build_580};
    use super::*;

    fn outcome(number: &str, amo: Option<PartState>, amc: PartState, rejects: usize) -> InvoiceOutcome {
        let part = |state, amc_number: &str| PartOutcome {
            state,
            requested_cents: 1234,
            paid_cents: if state == PartState::Paid { 999 } else { 0 },
            amc_number: amc_number.into(),
        };
        InvoiceOutcome {
            lot_number: "007".into(),
            lot_date: Ymd::new(2026, 11, 25),
            invoice_number: number.into(),
            invoice_type: 'F',
            billing_date: Some(Ymd::new(2026, 11, 20)),
            amo: amo.map(|s| part(s, "")),
            amc: Some(part(amc, "12345678")),
            rejects: (0..rejects)
                .map(|i| RejectLine {
                    code: format!("A{i}"),
                    label: "REJET".into(),
                    part: RejectPart::Amc,
                })
                .collect(),
            comments: vec!["COMMENTAIRE".into()],
        }
    }

    /// What a summary line shows of an item.
    fn shown(item: &ViewItem<Cow<'_, str>>) -> String {
        match item {
            ViewItem::Invoice(i) => {
                let parts: Vec<_> = [&i.amo, &i.amc]
                    .into_iter()
                    .map(|p| p.as_ref().map(|p| (p.state, p.requested_cents, p.paid_cents)))
                    .collect();
                format!(
                    "{} {} {:?} {parts:?} {} {} {:?}",
                    i.invoice_number,
                    i.lot_number,
                    i.state,
                    i.paid_cents,
                    i.rejects.len(),
                    i.payment
                )
            }
            ViewItem::Payment(p) => {
                format!("{:?} {:?} {}", p.settlement_recipient, p.invoices, p.amount_cents)
            }
        }
    }

    #[test]
    fn summaries_show_what_the_full_walk_shows() {
        let params = RspParams {
            sender_type: "CP".into(),
            sender_number: "751".into(),
            sender_program: "SIMU".into(),
            recipient_type: "TP".into(),
            recipient_number: "123456789".into(),
            file_id: "R00001".into(),
            created: Ymd::new(2026, 11, 26),
            flow_type: 'T',
            settlement_recipient: "123456789".into(),
            accounting_date: Ymd::new(2026, 11, 26),
            transfer_label: "VIREMENT".into(),
            payer: "CPAM".into(),
        };
        let outcomes = [
            outcome("000000001", Some(PartState::Paid), PartState::Rejected, 2),
            outcome("000000002", None, PartState::Paid, 0),
            outcome("000000003", Some(PartState::Deferred), PartState::Deferred, 1),
        ];
        let bytes = build_580(&params, &outcomes).unwrap();
        let n = super::super::parse(&bytes).unwrap();
        let (mut full, mut summary) = (Vec::new(), Vec::new());
        let want = Want {
            invoices: true,
            payments: true,
        };
        n.walk_view_ref(want, |i| full.push(shown(&i)));
        n.walk_summaries(|i| summary.push(shown(&i)));
        assert_eq!(full.len(), 4, "{full:?}");
        assert_eq!(full, summary);
    }
}
