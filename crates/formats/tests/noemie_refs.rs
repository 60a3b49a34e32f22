//! References 576 and 900, written by hand from the published positions, controls computed by
//! hand (see `docs/formats/noemie.md`: a 990 counts the level directly below it, the 999 the
//! physical records).

use svoct_formats::noemie::{self, FindingKind, InvoiceState, Want};

fn sp(n: usize) -> String {
    " ".repeat(n)
}

fn header(reference: &str) -> String {
    let h = format!(
        "000CP00000000000123NOEMIETP12345678901234{}RSP002261126{reference:<4}{}U{}000{}",
        sp(8),
        sp(4),
        sp(12),
        sp(43)
    );
    assert_eq!(h.len(), 128);
    h
}

fn trailer(count: &str, lots: &str, amount: &str, sign: &str) -> String {
    let t = format!(
        "999CP00000000000123NOEMIETP12345678901234{}RSP002{count}{}{lots}{amount}{sign}00000000000{}",
        sp(8),
        sp(19),
        sp(20)
    );
    assert_eq!(t.len(), 128);
    t
}

fn lines(h: &str, entities: &[String], t: &str) -> Vec<u8> {
    let stream = entities.concat();
    format!("0128{h}\r\n{:04}{stream}\r\n0128{t}\r\n", stream.len()).into_bytes()
}

fn r576() -> Vec<String> {
    vec![
        "02001000000123456789@".into(),
        "04002000000123456789@".into(),
        format!("07102261125{:<32}{}CPAM75    @", "VIREMENT FORFAITS", sp(32)),
        format!("0810203{}@", sp(14)),
        // 261: code 00042, 150.00
        "261030004200015000@".into(),
        // 262: detail, monthly, 2026-11-01..2026-11-30, 150.00 (not counted: detail of the 261)
        format!(
            "26204FORF1{:<80}{}000000000M26110126113000015000@",
            "FORFAIT STRUCTURE",
            sp(13)
        ),
        format!("0810205{}@", sp(14)),
        // 250: deduction of 25.00 (negative), balance 75.00
        "2500301DETTE00001261015INDRPR00002500N00007500@".into(),
        // Closes level 02: the entities of level 03 directly below are the 261 and the 250 (the
        // 262 is level 04): 2 entities; amounts of everything below: 150.00 - 25.00.
        format!("99002{}0000000200000012500P@", sp(17)),
        // Closes level 01: the entities of level 02 after the 020 are the 040, 071 and the two
        // 081: 4 entities.
        format!("99001{}0000000400000012500P@", sp(17)),
    ]
}

#[test]
fn entity_lengths_are_the_published_ones() {
    let l: Vec<usize> = r576().iter().map(String::len).collect();
    assert_eq!(l, vec![21, 21, 86, 22, 19, 134, 22, 47, 43, 43]);
    let l: Vec<usize> = r900().iter().map(String::len).collect();
    assert_eq!(l, vec![21, 15, 40, 98, 135, 43, 43]);
}

#[test]
fn reference_576_payments_deductions_flat_payments() {
    let input = lines(
        &header("576"),
        &r576(),
        // 3 physical records: header, one data line, trailer.
        &trailer("00000003", "000", "00000012500", "P"),
    );
    let n = noemie::parse(&input).unwrap();
    assert!(n.findings.is_empty(), "{:#?}", n.findings);
    let r = n.report();
    assert_eq!(r.reference, "576");
    assert!(r.invoices.is_empty());
    assert_eq!(r.payments.len(), 1);
    let p = &r.payments[0];
    assert_eq!(p.agent.as_deref(), Some("000000123456789"));
    assert_eq!(p.return_types, vec!["03".to_string(), "05".to_string()]);
    assert_eq!(p.amount_cents, 12500);
    let f = &p.flat_payments[0];
    assert_eq!((f.code.as_str(), f.amount_cents), ("00042", 15000));
    let d = &f.details[0];
    assert_eq!(
        (d.code.as_str(), d.label.as_str(), d.period.as_str()),
        ("FORF1", "FORFAIT STRUCTURE", "M")
    );
    assert_eq!(d.period_start.iso.as_deref(), Some("2026-11-01"));
    assert_eq!(d.period_end.iso.as_deref(), Some("2026-11-30"));
    assert_eq!(d.amount_cents, 15000);
    let ded = &p.deductions[0];
    assert_eq!(ded.debt_reference, "DETTE00001");
    assert_eq!(ded.debt_date.iso.as_deref(), Some("2026-10-15"));
    assert_eq!(
        (ded.debt_nature.as_str(), ded.recovery_nature.as_str()),
        ("IND", "RPR")
    );
    assert_eq!(ded.amount_cents, -2500);
    assert_eq!(ded.balance_cents, Some(7500));
}

#[test]
fn reference_576_counting_the_detail_would_be_wrong() {
    let mut e = r576();
    e[8] = format!("99002{}0000000200000027500P@", sp(17));
    let input = lines(
        &header("576"),
        &e,
        // 3 physical records: header, one data line, trailer.
        &trailer("00000003", "000", "00000012500", "P"),
    );
    let n = noemie::parse(&input).unwrap();
    assert_eq!(n.findings.len(), 1);
    assert_eq!(n.findings[0].kind, FindingKind::ControlSum);
}

fn r900() -> Vec<String> {
    vec![
        "04002000000123456789@".into(),
        "08003261120042@".into(),
        format!("10204000001234{}042261120F261119   @", sp(6)),
        format!("2900501R123      {:<80}@", "ASSURE INCONNU DE LA CAISSE"),
        format!("29505A{:<128}@", "MERCI DE VERIFIER LE NIR"),
        // Closes the lot: its one 102 (level 04).
        format!("99003{}0000000100000000000P@", sp(17)),
        // Closes the payment: its one 080 (level 03).
        format!("99002{}0000000100000000000P@", sp(17)),
    ]
}

#[test]
fn reference_900_reject_notice() {
    let input = lines(
        &header("900"),
        &r900(),
        &trailer("00000003", "001", "00000000000", "P"),
    );
    let n = noemie::parse(&input).unwrap();
    assert!(n.findings.is_empty(), "{:#?}", n.findings);
    let r = n.report();
    assert_eq!(r.reference, "900");
    let i = &r.invoices[0];
    assert_eq!(i.state, InvoiceState::Rejected);
    assert!(i.amo.is_none() && i.amc.is_none());
    assert_eq!(i.rejects[0].entity, "290");
    assert_eq!(i.rejects[0].code, "R123");
    assert_eq!(i.rejects[0].label, "ASSURE INCONNU DE LA CAISSE");
    assert_eq!(i.rejects[0].line, Some(1));
    assert_eq!(i.comments, vec!["MERCI DE VERIFIER LE NIR".to_string()]);
}

#[test]
fn mixed_references_in_one_input() {
    let mut input = lines(
        &header("576"),
        &r576(),
        // 3 physical records: header, one data line, trailer.
        &trailer("00000003", "000", "00000012500", "P"),
    );
    input.extend(lines(
        &header("900"),
        &r900(),
        &trailer("00000003", "001", "00000000000", "P"),
    ));
    let r = noemie::report(&input).unwrap();
    assert_eq!((r.files, r.reference.as_str()), (2, "576,900"));
    assert_eq!(r.invoices[0].file, 1);
    assert_eq!(r.invoices[0].payment, Some(1));
}

/// The payment view items of `n` as JSON values, owned (`walk_view`) and borrowed
/// (`walk_view_ref`), for one `want`.
fn both_views(n: &noemie::Noemie, want: Want) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let value = |item: &dyn erased::Item| item.value();
    let mut owned = Vec::new();
    n.walk_view(want, |i| owned.push(value(&i)));
    let mut borrowed = Vec::new();
    n.walk_view_ref(want, |i| borrowed.push(value(&i)));
    (owned, borrowed)
}

mod erased {
    use svoct_formats::noemie::{ViewItem, ViewText};

    pub trait Item {
        fn value(&self) -> serde_json::Value;
    }

    impl<'a, S: ViewText<'a>> Item for ViewItem<S> {
        fn value(&self) -> serde_json::Value {
            match self {
                ViewItem::Payment(p) => serde_json::to_value(p).unwrap(),
                ViewItem::Invoice(i) => serde_json::to_value(i).unwrap(),
            }
        }
    }
}

const WANTS: [Want; 3] = [
    Want {
        invoices: true,
        payments: true,
    },
    Want {
        invoices: true,
        payments: false,
    },
    Want {
        invoices: false,
        payments: true,
    },
];

#[test]
fn borrowed_views_are_the_owned_views_for_every_reference() {
    let input576 = lines(
        &header("576"),
        &r576(),
        &trailer("00000003", "000", "00000012500", "P"),
    );
    let n = noemie::parse(&input576).unwrap();
    for want in WANTS {
        let (owned, borrowed) = both_views(&n, want);
        // A 576 has payments and no invoice.
        assert_eq!(owned.is_empty(), !want.payments, "{want:?}");
        assert_eq!(owned, borrowed, "{want:?}");
    }
    // The deduction and flat payments are in the borrowed payment, with their dates decoded.
    let (_, borrowed) = both_views(&n, WANTS[2]);
    let p = &borrowed[0];
    assert_eq!(p["deductions"][0]["debt_date"]["iso"], "2026-10-15");
    assert_eq!(
        p["flat_payments"][0]["details"][0]["period_start"]["iso"],
        "2026-11-01"
    );
}

#[test]
fn borrowed_views_of_latin1_and_nul_bytes_are_the_owned_ones() {
    // A 576 whose transfer label holds an `É` (0xC9 in Latin-1) and a NUL: the borrowed view
    // must convert those fields (not borrow them) exactly as the owned one does.
    let mut input = lines(
        &header("576"),
        &r576(),
        &trailer("00000003", "000", "00000012500", "P"),
    );
    let at = input
        .windows(8)
        .position(|w| w == b"VIREMENT")
        .expect("a transfer label");
    input[at] = 0xC9;
    input[at + 3] = 0;
    let n = noemie::parse(&input).unwrap();
    for want in WANTS {
        let (owned, borrowed) = both_views(&n, want);
        assert_eq!(owned, borrowed, "{want:?}");
    }
    let (_, borrowed) = both_views(&n, WANTS[2]);
    let label = borrowed[0]["transfer_label"][0].as_str().unwrap();
    assert!(label.starts_with("\u{c9}IR MENT FORFAITS"), "{label:?}");
}
