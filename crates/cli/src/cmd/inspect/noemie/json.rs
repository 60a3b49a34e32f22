//! The invoices and payments of `svoct inspect --json`, written by hand, byte for byte what
//! `serde_json` writes for the same items (the tests below compare both).
//!
//! Why not serde: a large return has hundreds of thousands of items, each with some thirty
//! keys, and serde_json writes every key through its string escaper; here keys are constant
//! bytes and a value goes through the escaper (serde_json's own) only when it holds a byte
//! that needs escaping. When a field is added to the views, add it here too: the tests fail
//! until both agree.

use std::borrow::Cow;

use svoct_formats::noemie::{
    DateValue, Deduction, FlatDetail, FlatPayment, Invoice, InvoiceState, Notice, Part, PartState, Payment,
};

use super::{push_i64, push_u64};

type Text<'a> = Cow<'a, str>;

/// A JSON string: as is when nothing in it needs escaping (nearly always), otherwise through
/// serde_json's escaper.
fn string(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else if serde_json::to_writer(&mut *out, s).is_err() {
        // Writing a string into a Vec cannot fail; should it, the document stays valid.
        out.extend_from_slice(b"null");
    }
}

/// `,"key":` (`first` leaves the comma out).
fn key(out: &mut Vec<u8>, k: &str, first: bool) {
    if !first {
        out.push(b',');
    }
    out.push(b'"');
    out.extend_from_slice(k.as_bytes());
    out.extend_from_slice(b"\":");
}

fn opt_string(out: &mut Vec<u8>, s: &Option<Text<'_>>) {
    match s {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

fn opt_u64(out: &mut Vec<u8>, v: Option<u64>) {
    match v {
        Some(v) => push_u64(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

/// A JSON array of `items`, each written by `one`.
fn array<T>(out: &mut Vec<u8>, items: &[T], mut one: impl FnMut(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        one(out, item);
    }
    out.push(b']');
}

fn strings(out: &mut Vec<u8>, items: &[Text<'_>]) {
    array(out, items, |out, s| string(out, s));
}

fn date(out: &mut Vec<u8>, d: &DateValue<Text<'_>>) {
    out.extend_from_slice(b"{\"raw\":");
    string(out, &d.raw);
    out.extend_from_slice(b",\"iso\":");
    opt_string(out, &d.iso);
    out.push(b'}');
}

fn part_state(s: PartState) -> &'static str {
    match s {
        PartState::Paid => "\"paid\"",
        PartState::Rejected => "\"rejected\"",
        PartState::Deferred => "\"deferred\"",
        PartState::NotProcessed => "\"not_processed\"",
        PartState::Unknown => "\"unknown\"",
    }
}

fn invoice_state(s: InvoiceState) -> &'static str {
    match s {
        InvoiceState::Paid => "\"paid\"",
        InvoiceState::Rejected => "\"rejected\"",
        InvoiceState::Deferred => "\"deferred\"",
        InvoiceState::Partial => "\"partial\"",
        InvoiceState::NotProcessed => "\"not_processed\"",
    }
}

fn part(out: &mut Vec<u8>, p: &Option<Part<Text<'_>>>) {
    let Some(p) = p else {
        out.extend_from_slice(b"null");
        return;
    };
    out.push(b'{');
    key(out, "state", true);
    out.extend_from_slice(part_state(p.state).as_bytes());
    key(out, "requested_cents", false);
    push_u64(out, p.requested_cents);
    key(out, "paid_cents", false);
    push_i64(out, p.paid_cents);
    key(out, "amc_number", false);
    opt_string(out, &p.amc_number);
    key(out, "amc_member_id", false);
    opt_string(out, &p.amc_member_id);
    out.push(b'}');
}

fn notice(out: &mut Vec<u8>, n: &Notice<Text<'_>>) {
    out.push(b'{');
    key(out, "entity", true);
    string(out, &n.entity);
    key(out, "code", false);
    string(out, &n.code);
    key(out, "label", false);
    string(out, &n.label);
    key(out, "reject_level", false);
    opt_string(out, &n.reject_level);
    key(out, "part", false);
    opt_string(out, &n.part);
    key(out, "line", false);
    opt_u64(out, n.line);
    out.push(b'}');
}

/// One invoice, as `serde_json::to_writer` writes it.
pub(super) fn invoice(out: &mut Vec<u8>, inv: &Invoice<Text<'_>>) {
    out.push(b'{');
    key(out, "file", true);
    push_u64(out, inv.file as u64);
    key(out, "payment", false);
    opt_u64(out, inv.payment.map(|p| p as u64));
    key(out, "invoice_number", false);
    string(out, &inv.invoice_number);
    key(out, "invoice_number_complement", false);
    string(out, &inv.invoice_number_complement);
    key(out, "lot_number", false);
    string(out, &inv.lot_number);
    key(out, "lot_date", false);
    date(out, &inv.lot_date);
    key(out, "invoice_type", false);
    string(out, &inv.invoice_type);
    key(out, "billing_date", false);
    date(out, &inv.billing_date);
    key(out, "amc_processing", false);
    string(out, &inv.amc_processing);
    key(out, "insurance_nature", false);
    string(out, &inv.insurance_nature);
    key(out, "insured", false);
    opt_string(out, &inv.insured);
    key(out, "state", false);
    out.extend_from_slice(invoice_state(inv.state).as_bytes());
    key(out, "amo", false);
    part(out, &inv.amo);
    key(out, "amc", false);
    part(out, &inv.amc);
    key(out, "paid_cents", false);
    push_i64(out, inv.paid_cents);
    key(out, "acts", false);
    push_u64(out, inv.acts as u64);
    key(out, "acts_reimbursed_cents", false);
    push_i64(out, inv.acts_reimbursed_cents);
    key(out, "rejects", false);
    array(out, &inv.rejects, notice);
    key(out, "comments", false);
    strings(out, &inv.comments);
    out.push(b'}');
}

fn deduction(out: &mut Vec<u8>, d: &Deduction<Text<'_>>) {
    out.push(b'{');
    key(out, "line", true);
    opt_u64(out, d.line);
    key(out, "debt_reference", false);
    string(out, &d.debt_reference);
    key(out, "debt_date", false);
    date(out, &d.debt_date);
    key(out, "debt_nature", false);
    string(out, &d.debt_nature);
    key(out, "recovery_nature", false);
    string(out, &d.recovery_nature);
    key(out, "amount_cents", false);
    push_i64(out, d.amount_cents);
    key(out, "balance_cents", false);
    opt_u64(out, d.balance_cents);
    out.push(b'}');
}

fn flat_detail(out: &mut Vec<u8>, d: &FlatDetail<Text<'_>>) {
    out.push(b'{');
    key(out, "code", true);
    string(out, &d.code);
    key(out, "label", false);
    string(out, &d.label);
    key(out, "period", false);
    string(out, &d.period);
    key(out, "period_start", false);
    date(out, &d.period_start);
    key(out, "period_end", false);
    date(out, &d.period_end);
    key(out, "amount_cents", false);
    push_u64(out, d.amount_cents);
    out.push(b'}');
}

fn flat_payment(out: &mut Vec<u8>, f: &FlatPayment<Text<'_>>) {
    out.push(b'{');
    key(out, "code", true);
    string(out, &f.code);
    key(out, "amount_cents", false);
    push_u64(out, f.amount_cents);
    key(out, "details", false);
    array(out, &f.details, flat_detail);
    out.push(b'}');
}

/// One payment, as `serde_json::to_writer` writes it.
pub(super) fn payment(out: &mut Vec<u8>, p: &Payment<Text<'_>>) {
    out.push(b'{');
    key(out, "file", true);
    push_u64(out, p.file as u64);
    key(out, "agent", false);
    opt_string(out, &p.agent);
    key(out, "settlement_recipient", false);
    opt_string(out, &p.settlement_recipient);
    key(out, "accounting_date", false);
    match &p.accounting_date {
        Some(d) => date(out, d),
        None => out.extend_from_slice(b"null"),
    }
    key(out, "transfer_label", false);
    strings(out, &p.transfer_label);
    key(out, "payer", false);
    opt_string(out, &p.payer);
    key(out, "return_types", false);
    strings(out, &p.return_types);
    key(out, "deductions", false);
    array(out, &p.deductions, deduction);
    key(out, "flat_payments", false);
    array(out, &p.flat_payments, flat_payment);
    key(out, "notices", false);
    array(out, &p.notices, notice);
    key(out, "comments", false);
    strings(out, &p.comments);
    key(out, "invoices", false);
    array(out, &p.invoices, |out, &i| push_u64(out, i as u64));
    key(out, "amount_cents", false);
    push_i64(out, p.amount_cents);
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use svoct_formats::noemie::{
        InvoiceOutcome, PartOutcome, PartState as PS, RspParams, ViewItem, Want, Ymd, build_580, parse,
    };

    fn same_as_serde_inv(inv: &Invoice<Text<'_>>) {
        let mut ours = Vec::new();
        invoice(&mut ours, inv);
        let theirs = serde_json::to_vec(inv).unwrap();
        assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&theirs));
    }

    fn same_as_serde_pay(p: &Payment<Text<'_>>) {
        let mut ours = Vec::new();
        payment(&mut ours, p);
        let theirs = serde_json::to_vec(p).unwrap();
        assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&theirs));
    }

    fn t(s: &str) -> Text<'static> {
        Cow::Owned(s.to_string())
    }

    /// Text that needs escaping, and text that does not.
    const ODD: &str = "a\"b\\c\nd\u{1}e\u{1f}f\tg\u{7f}h é ü";

    fn dv(raw: &str, iso: Option<&str>) -> DateValue<Text<'static>> {
        DateValue {
            raw: t(raw),
            iso: iso.map(t),
        }
    }

    fn notice_of(s: &str, some: bool) -> Notice<Text<'static>> {
        Notice {
            entity: t("294"),
            code: t(s),
            label: t(ODD),
            reject_level: some.then(|| t(s)),
            part: some.then(|| t("C")),
            line: some.then_some(u64::MAX),
        }
    }

    #[test]
    fn hand_made_items_are_written_as_serde_writes_them() {
        for (k, s) in ["", "plain", ODD].into_iter().enumerate() {
            let some = k % 2 == 0;
            for state in [
                PS::Paid,
                PS::Rejected,
                PS::Deferred,
                PS::NotProcessed,
                PS::Unknown,
            ] {
                let part = Part {
                    state,
                    requested_cents: u64::MAX,
                    paid_cents: i64::MIN,
                    amc_number: some.then(|| t(s)),
                    amc_member_id: (!some).then(|| t(s)),
                };
                for inv_state in [
                    InvoiceState::Paid,
                    InvoiceState::Rejected,
                    InvoiceState::Deferred,
                    InvoiceState::Partial,
                    InvoiceState::NotProcessed,
                ] {
                    same_as_serde_inv(&Invoice {
                        file: k,
                        payment: some.then_some(7),
                        invoice_number: t(s),
                        invoice_number_complement: t(ODD),
                        lot_number: t(s),
                        lot_date: dv(s, Some("2026-11-20")),
                        invoice_type: t("F"),
                        billing_date: dv(ODD, None),
                        amc_processing: t(s),
                        insurance_nature: t(s),
                        insured: some.then(|| t(s)),
                        state: inv_state,
                        amo: Some(part.clone()),
                        amc: some.then(|| part.clone()),
                        paid_cents: -5,
                        acts: 3,
                        acts_reimbursed_cents: i64::MAX,
                        rejects: vec![notice_of(s, some); k],
                        comments: vec![t(s), t(ODD)],
                    });
                }
            }
            let detail = FlatDetail {
                code: t(s),
                label: t(ODD),
                period: t(s),
                period_start: dv(s, Some("2026-01-01")),
                period_end: dv(ODD, None),
                amount_cents: 12,
            };
            same_as_serde_pay(&Payment {
                file: 2,
                agent: some.then(|| t(s)),
                settlement_recipient: (!some).then(|| t(ODD)),
                accounting_date: some.then(|| dv(s, None)),
                transfer_label: vec![t(s); k],
                payer: some.then(|| t(ODD)),
                return_types: vec![t("01"), t(s)],
                deductions: vec![
                    Deduction {
                        line: some.then_some(1),
                        debt_reference: t(ODD),
                        debt_date: dv(s, Some("2025-12-31")),
                        debt_nature: t(s),
                        recovery_nature: t(s),
                        amount_cents: -250,
                        balance_cents: (!some).then_some(0),
                    };
                    k
                ],
                flat_payments: vec![
                    FlatPayment {
                        code: t(s),
                        amount_cents: 0,
                        details: vec![detail.clone(); k],
                    };
                    k + 1
                ],
                notices: vec![notice_of(s, !some); k],
                comments: vec![t(ODD); k],
                invoices: (0..k).collect(),
                amount_cents: i64::MIN,
            });
        }
    }

    #[test]
    fn items_of_a_built_return_are_written_as_serde_writes_them() {
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
            transfer_label: "VIREMENT \"CPAM\"".into(),
            payer: "CPAM".into(),
        };
        let outcome = |n: &str, paid: i64| InvoiceOutcome {
            lot_number: "001".into(),
            lot_date: Ymd::new(2026, 11, 25),
            invoice_number: n.into(),
            invoice_type: 'F',
            billing_date: Some(Ymd::new(2026, 11, 20)),
            amo: Some(PartOutcome {
                state: PS::Paid,
                requested_cents: 100,
                paid_cents: paid,
                amc_number: String::new(),
            }),
            amc: Some(PartOutcome {
                state: PS::Rejected,
                requested_cents: 50,
                paid_cents: 0,
                amc_number: "12345678".into(),
            }),
            rejects: Vec::new(),
            comments: vec!["COMMENTAIRE \\ \"".into()],
        };
        let bytes = build_580(&params, &[outcome("000000001", 70), outcome("000000002", -3)]).unwrap();
        let n = parse(&bytes).unwrap();
        let mut seen = 0;
        let want = Want {
            invoices: true,
            payments: true,
        };
        n.walk_view_ref(want, |item| {
            seen += 1;
            match item {
                ViewItem::Invoice(inv) => same_as_serde_inv(&inv),
                ViewItem::Payment(p) => same_as_serde_pay(&p),
            }
        });
        assert_eq!(seen, 3);
    }
}
