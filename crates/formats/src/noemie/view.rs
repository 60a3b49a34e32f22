//! Business views of a parsed NOEMIE input: payments and invoices with their states and amounts,
//! gathered in the [`NoemieReport`] that `svoct inspect --json` prints.

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
pub struct Part {
    pub state: PartState,
    pub requested_cents: u64,
    /// Signed paid amount.
    pub paid_cents: i64,
    /// `199` only: the AMC organisation number.
    pub amc_number: Option<String>,
    pub amc_member_id: Option<String>,
}

/// A reject, signalement (`290`, `294`) line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Notice {
    /// `290` or `294`.
    pub entity: String,
    pub code: String,
    pub label: String,
    /// `294`: `F` invoice, `L` line, `A` refined code.
    pub reject_level: Option<String>,
    /// `294`: `O` mandatory part, `C` complementary part.
    pub part: Option<String>,
    pub line: Option<u64>,
}

/// A deduction (`250`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Deduction {
    pub line: Option<u64>,
    pub debt_reference: String,
    pub debt_date: DateValue,
    pub debt_nature: String,
    pub recovery_nature: String,
    pub amount_cents: i64,
    pub balance_cents: Option<u64>,
}

/// A one-off or flat-rate payment (`261`) and its details (`262`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FlatPayment {
    pub code: String,
    pub amount_cents: u64,
    pub details: Vec<FlatDetail>,
}

/// A `262` detail line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FlatDetail {
    pub code: String,
    pub label: String,
    pub period: String,
    pub period_start: DateValue,
    pub period_end: DateValue,
    pub amount_cents: u64,
}

/// One payment: a settlement recipient (`040`) with its accounting date (`070`/`071`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Payment {
    pub file: usize,
    /// `020` mandataire, if any.
    pub agent: Option<String>,
    /// `040` settlement recipient.
    pub settlement_recipient: Option<String>,
    pub accounting_date: Option<DateValue>,
    /// `071` transfer label lines (non-blank ones).
    pub transfer_label: Vec<String>,
    pub payer: Option<String>,
    /// `081` return type codes (`01`..`05`).
    pub return_types: Vec<String>,
    pub deductions: Vec<Deduction>,
    pub flat_payments: Vec<FlatPayment>,
    /// Reject and comment lines not attached to an invoice.
    pub notices: Vec<Notice>,
    pub comments: Vec<String>,
    /// Indexes into [`NoemieReport::invoices`].
    pub invoices: Vec<usize>,
    /// Signed sum of the controlled amounts of this payment (parts, deductions, flat payments).
    pub amount_cents: i64,
}

/// One invoice (`100`/`102`) and what the insurer did with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Invoice {
    pub file: usize,
    /// Index into [`NoemieReport::payments`].
    pub payment: Option<usize>,
    pub invoice_number: String,
    pub invoice_number_complement: String,
    /// From `102` (falls back to the enclosing `080`).
    pub lot_number: String,
    pub lot_date: DateValue,
    /// `F` FSE, `D` DRE, ...
    pub invoice_type: String,
    pub billing_date: DateValue,
    pub amc_processing: String,
    pub insurance_nature: String,
    /// Insured identification (`103`/`110` NIR), if given.
    pub insured: Option<String>,
    pub state: InvoiceState,
    pub amo: Option<Part>,
    pub amc: Option<Part>,
    /// Sum of the paid parts.
    pub paid_cents: i64,
    /// Number of `210` act lines and their signed reimbursed total.
    pub acts: usize,
    pub acts_reimbursed_cents: i64,
    pub rejects: Vec<Notice>,
    pub comments: Vec<String>,
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

fn opt(s: String) -> Option<String> {
    if s.is_empty() { None } else { Some(s) }
}

fn part(e: &EntityRef<'_>) -> Part {
    let paid = e.controlled_amount().and_then(Result::ok).unwrap_or(0);
    let amc = e.entity.code == Some(199);
    Part {
        state: PartState::from_code(e.text("state").trim()),
        requested_cents: e.number("requested").unwrap_or(0),
        paid_cents: paid,
        amc_number: if amc { opt(e.text("amc_number")) } else { None },
        amc_member_id: if amc { opt(e.text("amc_member_id")) } else { None },
    }
}

fn notice(e: &EntityRef<'_>) -> Notice {
    let is294 = e.entity.code == Some(294);
    Notice {
        entity: e.code_str(),
        code: e.text("code"),
        label: e.text("label"),
        reject_level: if is294 { opt(e.text("reject_level")) } else { None },
        part: if is294 { opt(e.text("part")) } else { None },
        line: e.number("line_number"),
    }
}

fn state_of(inv: &Invoice) -> InvoiceState {
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

fn empty_payment(file: usize) -> Payment {
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
pub enum ViewItem {
    Payment(Payment),
    Invoice(Invoice),
}

struct Walk<F: FnMut(ViewItem)> {
    emit: F,
    file: usize,
    /// Indexes the next payment / invoice will get (counted over the whole input).
    next_payment: usize,
    next_invoice: usize,
    /// The payment being filled, opened by `020`/`040`/`070`/`071`, and its index.
    payment: Option<(usize, Payment)>,
    /// Whether the current payment already has its settlement recipient (a new `040` opens a
    /// new payment).
    payment_has_recipient: bool,
    payment_has_date: bool,
    lot: Option<(String, DateValue)>,
    invoice: Option<Invoice>,
    /// An invoice is open (`invoice` is `None` while open when invoices are not wanted: its
    /// detail entities are then dropped, not given to the payment).
    invoice_open: bool,
    /// Build and hand out invoices / payments.
    want: Want,
    pending_agent: Option<String>,
}

/// Which items of the payment view a walk hands out ([`Noemie::walk_view`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Want {
    pub invoices: bool,
    pub payments: bool,
}

impl<F: FnMut(ViewItem)> Walk<F> {
    fn payment_mut(&mut self) -> &mut Payment {
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

    fn entity(&mut self, e: &EntityRef<'_>) {
        let Some(code) = e.entity.code else { return };
        match code {
            20 => {
                self.close_payment();
                self.pending_agent = opt(e.text("settlement_recipient"));
            }
            40 => {
                if self.payment.is_none() || self.payment_has_recipient {
                    self.new_payment();
                }
                self.payment_has_recipient = true;
                self.payment_mut().settlement_recipient = opt(e.text("settlement_recipient"));
            }
            70 | 71 => {
                if self.payment.is_none() || self.payment_has_date {
                    self.new_payment();
                }
                self.payment_has_date = true;
                let p = self.payment_mut();
                p.accounting_date = Some(e.date("accounting_date"));
                if code == 71 {
                    p.transfer_label = ["transfer_label_1", "transfer_label_2"]
                        .iter()
                        .map(|n| e.text(n))
                        .filter(|s| !s.trim().is_empty())
                        .collect();
                    p.payer = opt(e.text("payer"));
                }
            }
            81 => {
                let t = e.text("return_type");
                self.payment_mut().return_types.push(t);
            }
            80 => {
                self.close_invoice();
                self.lot = Some((e.text("lot_number"), e.date("lot_date")));
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

    fn open_invoice(&mut self, code: u16, e: &EntityRef<'_>) {
        self.close_invoice();
        let (lot_number, lot_date) = match (&self.lot, code) {
            (Some((n, d)), 100) => (n.clone(), d.clone()),
            (lot, _) => {
                let n = e.text("lot_number");
                let d = e.date("lot_date");
                match lot {
                    Some((ln, ld)) if n.trim().is_empty() => (ln.clone(), ld.clone()),
                    _ => (n, d),
                }
            }
        };
        let index = self.next_invoice;
        self.next_invoice += 1;
        self.payment_mut().invoices.push(index);
        self.invoice_open = true;
        if !self.want.invoices {
            return;
        }
        let payment = self.payment.as_ref().map(|(i, _)| *i);
        self.invoice = Some(Invoice {
            file: self.file,
            payment,
            invoice_number: e.text("invoice_number"),
            invoice_number_complement: e.text("invoice_number_complement"),
            lot_number,
            lot_date,
            invoice_type: e.text("invoice_type"),
            billing_date: e.date("billing_date"),
            amc_processing: e.text("amc_processing"),
            insurance_nature: e.text("insurance_nature"),
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

    /// Entities that detail the current invoice or payment.
    fn detail(&mut self, code: u16, e: &EntityRef<'_>) {
        match code {
            103 | 110 => {
                let nir = opt(e.text("nir"));
                if let Some(inv) = self.invoice.as_mut() {
                    inv.insured = nir;
                }
            }
            150 => {
                let n = e.text("insurance_nature");
                if let Some(inv) = self.invoice.as_mut() {
                    inv.insurance_nature = n;
                }
            }
            198 | 199 => {
                let p = part(e);
                if let Some(inv) = self.invoice.as_mut() {
                    if code == 198 {
                        inv.amo = Some(p);
                    } else {
                        inv.amc = Some(p);
                    }
                }
            }
            210 => {
                let v = e.number("reimbursed").unwrap_or(0) as i64;
                let v = if e.text("sign") == "N" { -v } else { v };
                if let Some(inv) = self.invoice.as_mut() {
                    inv.acts += 1;
                    inv.acts_reimbursed_cents = inv.acts_reimbursed_cents.saturating_add(v);
                }
            }
            250 => {
                let amount = e.controlled_amount().and_then(Result::ok).unwrap_or(0);
                let d = Deduction {
                    line: e.number("line_number"),
                    debt_reference: e.text("debt_reference"),
                    debt_date: e.date("debt_date"),
                    debt_nature: e.text("debt_nature"),
                    recovery_nature: e.text("recovery_nature"),
                    amount_cents: amount,
                    balance_cents: e.number("balance"),
                };
                self.payment_mut().deductions.push(d);
            }
            261 => {
                let f = FlatPayment {
                    code: e.text("code"),
                    amount_cents: e.number("amount").unwrap_or(0),
                    details: Vec::new(),
                };
                self.payment_mut().flat_payments.push(f);
            }
            262 => {
                let d = FlatDetail {
                    code: e.text("code"),
                    label: e.text("label"),
                    period: e.text("period"),
                    period_start: e.date("period_start"),
                    period_end: e.date("period_end"),
                    amount_cents: e.number("amount").unwrap_or(0),
                };
                if let Some(f) = self.payment_mut().flat_payments.last_mut() {
                    f.details.push(d);
                }
            }
            290 | 294 => {
                let n = notice(e);
                match self.invoice.as_mut() {
                    Some(inv) => inv.rejects.push(n),
                    None if self.invoice_open => {}
                    None => self.payment_mut().notices.push(n),
                }
            }
            295 => {
                let c = e.text("comment");
                match self.invoice.as_mut() {
                    Some(inv) => inv.comments.push(c),
                    None if self.invoice_open => {}
                    None => self.payment_mut().comments.push(c),
                }
            }
            _ => {}
        }
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
