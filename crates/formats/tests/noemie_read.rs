//! NOEMIE reader and builder against files written by hand from the published positions
//! (`shared/spec/noemie-entities.md`), not from the builder.

use svoct_formats::noemie::{
    self, DateValue, Decoded, FindingKind, InvoiceOutcome, InvoiceState, NoemieError, Packaging, PartOutcome,
    PartState, RejectLine, RejectPart, RspParams, Ymd,
};

fn sp(n: usize) -> String {
    " ".repeat(n)
}

/// The `000` header, field by field (positions in comments).
fn header() -> String {
    let h = [
        "000",            // 1-3 type
        "CP",             // 4-5 sender type
        "00000000000123", // 6-19 sender number
        "NOEMIE",         // 20-25 sender program
        "TP",             // 26-27 recipient type
        "12345678901234", // 28-41 recipient number
        &sp(6),           // 42-47 recipient program
        &sp(2),           // 48-49 application
        "RSP001",         // 50-55 file id
        "261120",         // 56-61 created AAMMJJ
        "580 ",           // 62-65 reference
        &sp(2),           // 66-67 version
        " ",              // 68 compression
        " ",              // 69 encryption
        "U",              // 70 currency
        " ",              // 71 flow type
        &sp(11),          // 72-82 blank
        "000",            // 83-85 record length
        &sp(6),           // 86-91 password
        &sp(37),          // 92-128 message
    ]
    .concat();
    assert_eq!(h.len(), 128);
    h
}

fn trailer(count: &str, lots: &str, amount: &str, sign: &str) -> String {
    let t = [
        "999",
        "CP",
        "00000000000123",
        "NOEMIE",
        "TP",
        "12345678901234",
        &sp(6),
        &sp(2),
        "RSP001",
        count, // 56-63 record count
        " ",   // 64 flow type
        &sp(18),
        lots,          // 83-85
        amount,        // 86-96
        sign,          // 97
        "00000000000", // 98-108 optional amount in the other currency: zeros
        &sp(20),
    ]
    .concat();
    assert_eq!(t.len(), 128);
    t
}

/// The entity stream of a 580: one payment, one lot, two invoices; controls computed by hand.
fn entities() -> Vec<String> {
    let label1 = format!("{:<32}", "VIREMENT CPAM 75 REF 0001");
    let reject_label = format!("{:<86}", "ORGANISME COMPLEMENTAIRE INCONNU");
    vec![
        "04002000000123456789@".to_string(),
        format!("07102261125{label1}{}CPAM75    @", sp(32)),
        format!("0810201{}@", sp(14)),
        "08003261120042@".to_string(),
        // 102: invoice 000001234, lot 042 of 2026-11-20, FSE, billed 2026-11-19
        format!("10204000001234{}042261120F261119   @", sp(6)),
        "1980500002500P00001750P@".to_string(),
        format!("1990500000750R00000000P0123456789{}@", sp(15)),
        format!("29405A123{reject_label}FC{}{}{}@", sp(5), "0".repeat(20), sp(30)),
        format!("99004{}0000000300000001750P@", sp(17)),
        format!("10204000001235{}042261120F261119   @", sp(6)),
        "1980500002000P00002000P@".to_string(),
        format!("99004{}0000000100000002000P@", sp(17)),
        format!("99003{}0000000600000003750P@", sp(17)),
        format!("99002{}0000000700000003750P@", sp(17)),
    ]
}

fn lines(header: &str, stream: &str, trailer: &str) -> Vec<u8> {
    format!("0128{header}\r\n{:04}{stream}\r\n0128{trailer}\r\n", stream.len()).into_bytes()
}

fn hand_file() -> Vec<u8> {
    lines(
        &header(),
        &entities().concat(),
        &trailer("00000014", "001", "00000003750", "P"),
    )
}

fn outcomes() -> Vec<InvoiceOutcome> {
    vec![
        InvoiceOutcome {
            lot_number: "042".into(),
            lot_date: Ymd::new(2026, 11, 20),
            invoice_number: "000001234".into(),
            invoice_type: 'F',
            billing_date: Some(Ymd::new(2026, 11, 19)),
            amo: Some(PartOutcome {
                state: PartState::Paid,
                requested_cents: 2500,
                paid_cents: 1750,
                amc_number: String::new(),
            }),
            amc: Some(PartOutcome {
                state: PartState::Rejected,
                requested_cents: 750,
                paid_cents: 0,
                amc_number: "0123456789".into(),
            }),
            rejects: vec![RejectLine {
                code: "A123".into(),
                label: "ORGANISME COMPLEMENTAIRE INCONNU".into(),
                part: RejectPart::Amc,
            }],
            comments: vec![],
        },
        InvoiceOutcome {
            lot_number: "042".into(),
            lot_date: Ymd::new(2026, 11, 20),
            invoice_number: "000001235".into(),
            invoice_type: 'F',
            billing_date: Some(Ymd::new(2026, 11, 19)),
            amo: Some(PartOutcome {
                state: PartState::Paid,
                requested_cents: 2000,
                paid_cents: 2000,
                amc_number: String::new(),
            }),
            amc: None,
            rejects: vec![],
            comments: vec![],
        },
    ]
}

fn params() -> RspParams {
    RspParams {
        sender_type: "CP".into(),
        sender_number: "123".into(),
        sender_program: "NOEMIE".into(),
        recipient_type: "TP".into(),
        recipient_number: "12345678901234".into(),
        file_id: "RSP001".into(),
        created: Ymd::new(2026, 11, 20),
        flow_type: ' ',
        settlement_recipient: "123456789".into(),
        accounting_date: Ymd::new(2026, 11, 25),
        transfer_label: "VIREMENT CPAM 75 REF 0001".into(),
        payer: "CPAM75".into(),
    }
}

#[test]
fn hand_written_entities_have_published_lengths() {
    let lens: Vec<usize> = entities().iter().map(String::len).collect();
    assert_eq!(
        lens,
        vec![21, 86, 22, 15, 40, 24, 49, 153, 43, 40, 24, 43, 43, 43]
    );
}

#[test]
fn hand_written_580_reads_with_no_finding() {
    let n = noemie::parse(&hand_file()).unwrap();
    assert_eq!(n.packaging, Packaging::Lines);
    assert_eq!(n.files.len(), 1);
    assert!(n.findings.is_empty(), "{:#?}", n.findings);
    let f = &n.files[0];
    assert_eq!(f.reference(), "580");
    assert_eq!(f.entities.len(), 14);
    assert_eq!(f.totals.controls_checked, 4);
    assert_eq!(f.totals.amount, 3750);
    // Entity fields by name, raw and decoded.
    let e = f.entity(4).unwrap();
    assert_eq!(e.entity.code, Some(102));
    assert_eq!(e.entity.level, Some(4));
    assert_eq!(e.text("invoice_number"), "000001234");
    assert_eq!(e.text("lot_number"), "042");
    assert_eq!(e.text("invoice_type"), "F");
    assert_eq!(
        e.date("lot_date"),
        DateValue {
            raw: "261120".into(),
            iso: Some("2026-11-20".into())
        }
    );
    let fields = e.fields();
    let billing = fields.iter().find(|v| v.name == "billing_date").unwrap();
    assert_eq!(billing.raw, "261119");
    assert!(matches!(&billing.value, Decoded::Date { iso, .. } if iso == "2026-11-19"));
    let amc = f.entity(6).unwrap();
    assert_eq!(amc.text("state"), "R");
    assert_eq!(amc.number("requested"), Some(750));
    assert_eq!(amc.text("amc_number"), "0123456789");
}

#[test]
fn hand_written_580_report() {
    let r = noemie::report(&hand_file()).unwrap();
    assert_eq!(r.format, "noemie");
    assert_eq!(r.reference, "580");
    assert_eq!(r.files, 1);
    assert_eq!(r.payments.len(), 1);
    let p = &r.payments[0];
    assert_eq!(p.settlement_recipient.as_deref(), Some("000000123456789"));
    assert_eq!(
        p.accounting_date.as_ref().unwrap().iso.as_deref(),
        Some("2026-11-25")
    );
    assert_eq!(p.transfer_label, vec!["VIREMENT CPAM 75 REF 0001".to_string()]);
    assert_eq!(p.payer.as_deref(), Some("CPAM75"));
    assert_eq!(p.return_types, vec!["01".to_string()]);
    assert_eq!(p.invoices, vec![0, 1]);
    assert_eq!(p.amount_cents, 3750);
    let i0 = &r.invoices[0];
    assert_eq!(i0.invoice_number, "000001234");
    assert_eq!(i0.lot_number, "042");
    assert_eq!(i0.state, InvoiceState::Partial);
    assert_eq!(i0.amo.as_ref().unwrap().state, PartState::Paid);
    assert_eq!(i0.amo.as_ref().unwrap().paid_cents, 1750);
    assert_eq!(i0.amc.as_ref().unwrap().state, PartState::Rejected);
    assert_eq!(i0.paid_cents, 1750);
    assert_eq!(i0.rejects.len(), 1);
    assert_eq!(i0.rejects[0].code, "A123");
    assert_eq!(i0.rejects[0].label, "ORGANISME COMPLEMENTAIRE INCONNU");
    assert_eq!(i0.rejects[0].part.as_deref(), Some("C"));
    assert_eq!(r.invoices[1].state, InvoiceState::Paid);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["format"], "noemie");
    assert_eq!(json["files"], 1);
    assert_eq!(json["invoices"][0]["state"], "partial");
    assert_eq!(json["invoices"][0]["amc"]["state"], "rejected");
}

#[test]
fn builder_writes_the_hand_written_bytes() {
    let built = noemie::build_580(&params(), &outcomes()).unwrap();
    let hand = hand_file();
    assert_eq!(String::from_utf8_lossy(&built), String::from_utf8_lossy(&hand));
}
