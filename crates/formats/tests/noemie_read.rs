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
        // The lot's 990 counts its two 102 (level 04), not their parts (level 05).
        format!("99003{}0000000200000003750P@", sp(17)),
        // The payment's 990 counts its one 080 (level 03).
        format!("99002{}0000000100000003750P@", sp(17)),
    ]
}

fn lines(header: &str, stream: &str, trailer: &str) -> Vec<u8> {
    format!("0128{header}\r\n{:04}{stream}\r\n0128{trailer}\r\n", stream.len()).into_bytes()
}

fn hand_file() -> Vec<u8> {
    lines(
        &header(),
        &entities().concat(),
        // 3 physical records: header line, one data line, trailer line.
        &trailer("00000003", "001", "00000003750", "P"),
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

/// Offset in `hand_file()` of entity `i` (after `0128` + header + CRLF + stream length prefix).
fn entity_offset(i: usize) -> usize {
    4 + 128 + 2 + 4 + entities().iter().take(i).map(String::len).sum::<usize>()
}

fn with_entity(i: usize, new: &str) -> Vec<u8> {
    let mut e = entities();
    e[i] = new.to_string();
    lines(
        &header(),
        &e.concat(),
        // 3 physical records: header line, one data line, trailer line.
        &trailer("00000003", "001", "00000003750", "P"),
    )
}

#[test]
fn blocks_packaging_reads_like_lines() {
    let stream = entities().concat();
    let mut input = header().into_bytes();
    let chunks: Vec<&[u8]> = stream.as_bytes().chunks(127).collect();
    for (i, c) in chunks.iter().enumerate() {
        input.push(if i + 1 == chunks.len() { b'1' } else { b'0' });
        input.extend_from_slice(c);
        input.extend(std::iter::repeat_n(b' ', 127 - c.len()));
    }
    // Physical records: header, the data blocks, trailer.
    let records = format!("{:08}", chunks.len() + 2);
    input.extend_from_slice(trailer(&records, "001", "00000003750", "P").as_bytes());
    assert_eq!(input.len() % 128, 0);
    let n = noemie::parse(&input).unwrap();
    assert_eq!(n.packaging, Packaging::Blocks);
    assert!(n.findings.is_empty(), "{:#?}", n.findings);
    let mut from_blocks = n.report();
    let from_lines = noemie::report(&hand_file()).unwrap();
    assert_eq!(from_blocks.invoices, from_lines.invoices);
    assert_eq!(from_blocks.payments, from_lines.payments);
    // Offsets map back to the input: entity 4 (the 102) starts at 128 + 1 + 208 in block 1.
    let f = &n.files[0];
    let start = entities().iter().take(4).map(String::len).sum::<usize>();
    assert_eq!(start, 144);
    assert_eq!(
        f.input_offset(f.entities[4].start as usize),
        128 + 128 + 1 + (144 - 127)
    );
    from_blocks.packaging = Packaging::Lines;
    assert_eq!(from_blocks.file_summaries[0].entities, 14);
    // The builder's blocks packaging is read back the same.
    let built = noemie::build_580_packaged(&params(), &outcomes(), Packaging::Blocks).unwrap();
    assert_eq!(built, input);
}

#[test]
fn several_files_back_to_back() {
    let mut input = hand_file();
    input.extend_from_slice(&hand_file());
    let r = noemie::report(&input).unwrap();
    assert_eq!(r.files, 2);
    assert_eq!(r.invoices.len(), 4);
    assert_eq!(r.invoices[2].file, 1);
    assert_eq!(r.file_summaries[1].offset, hand_file().len() + 4);
    assert!(r.findings.is_empty());
}

#[test]
fn wrong_990_count_and_sum_are_findings_naming_the_entity() {
    let bad = with_entity(8, &format!("99004{}0000000400000001751P@", sp(17)));
    let n = noemie::parse(&bad).unwrap();
    let kinds: Vec<_> = n.findings.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, vec![FindingKind::ControlCount, FindingKind::ControlSum]);
    let f = &n.findings[0];
    assert_eq!((f.file, f.entity, f.offset), (0, Some(8), entity_offset(8)));
    assert_eq!(f.code.as_deref(), Some("990"));
    assert_eq!(f.field, Some("count"));
    assert!(
        f.message.contains("counts 4") && f.message.contains("found 3"),
        "{}",
        f.message
    );
    assert_eq!(n.findings[1].field, Some("amount_total"));
    // The invoice view is still produced.
    assert_eq!(n.report().invoices.len(), 2);
}

#[test]
fn wrong_sign_in_990_is_a_sum_finding() {
    let bad = with_entity(13, &format!("99002{}0000000100000003750N@", sp(17)));
    let n = noemie::parse(&bad).unwrap();
    assert_eq!(n.findings.len(), 1);
    assert_eq!(n.findings[0].kind, FindingKind::ControlSum);
    assert_eq!(n.findings[0].entity, Some(13));
}

#[test]
fn wrong_999_counts_and_sum_are_findings() {
    for (t, kind, field) in [
        (
            trailer("00000002", "001", "00000003750", "P"),
            FindingKind::TrailerCount,
            "record_count",
        ),
        (
            trailer("00000003", "002", "00000003750", "P"),
            FindingKind::TrailerLots,
            "lot_count",
        ),
        (
            trailer("00000003", "001", "00000003751", "P"),
            FindingKind::TrailerSum,
            "amount_total",
        ),
        (
            trailer("00000003", "001", "00000003750", "N"),
            FindingKind::TrailerSum,
            "amount_total",
        ),
    ] {
        let input = lines(&header(), &entities().concat(), &t);
        let n = noemie::parse(&input).unwrap();
        assert_eq!(n.findings.len(), 1, "{:#?}", n.findings);
        let f = &n.findings[0];
        assert_eq!(
            (f.kind, f.field, f.code.as_deref()),
            (kind, Some(field), Some("999"))
        );
        let trailer_at = hand_file().len() - 130;
        assert!(f.offset > trailer_at && f.offset < trailer_at + 128);
    }
    // Counting the 14 entities instead of the 3 physical records: a warning, not an error.
    let input = lines(
        &header(),
        &entities().concat(),
        &trailer("00000014", "001", "00000003750", "P"),
    );
    let n = noemie::parse(&input).unwrap();
    assert_eq!(n.findings.len(), 1, "{:#?}", n.findings);
    assert_eq!(n.findings[0].kind, FindingKind::TrailerCount);
    assert_eq!(n.findings[0].severity, noemie::Severity::Warning);
    assert!(!n.has_errors());
}

#[test]
fn unknown_entity_is_kept_raw_and_reported() {
    let mut e = entities();
    e.insert(3, "77703ABC DEF@".into());
    let input = lines(
        &header(),
        &e.concat(),
        &trailer("00000003", "001", "00000003750", "P"),
    );
    let n = noemie::parse(&input).unwrap();
    let kinds: Vec<_> = n.findings.iter().map(|f| f.kind).collect();
    // The unknown entity is level 03 inside the payment: not counted by the lot's 990 (it
    // precedes the lot) but by the payment's, which now finds 2 entities of level 03.
    assert_eq!(kinds, vec![FindingKind::UnknownEntity, FindingKind::ControlCount]);
    let f = &n.findings[0];
    assert_eq!(
        (f.kind, f.entity, f.code.as_deref()),
        (FindingKind::UnknownEntity, Some(3), Some("777"))
    );
    assert_eq!(n.findings[1].entity, Some(14));
    let file = &n.files[0];
    assert_eq!(file.raw(&file.entities[3]), b"77703ABC DEF@");
    let mut e = entities();
    e.insert(3, "77703ABC DEF@".into());
    e[14] = format!("99002{}0000000200000003750P@", sp(17));
    let input = lines(
        &header(),
        &e.concat(),
        &trailer("00000003", "001", "00000003750", "P"),
    );
    let n = noemie::parse(&input).unwrap();
    assert_eq!(n.findings.len(), 1);
    // Kept raw, for information: the file is valid.
    assert_eq!(n.findings[0].severity, noemie::Severity::Info);
    assert!(!n.has_errors());
}

#[test]
fn nul_bytes_and_trailing_spaces_are_tolerated() {
    let mut e = entities();
    // NULs in the transfer label's padding, spaces before the `@` of the 040.
    e[1] = e[1].replacen(
        "                                CPAM75",
        &"\0".repeat(32).to_string(),
        1,
    );
    e[1] = e[1].replace(&"\0".repeat(32), &format!("{}CPAM75", "\0".repeat(32)));
    e[0] = "04002000000123456789   @".into();
    let input = lines(
        &header(),
        &e.concat(),
        // 3 physical records: header line, one data line, trailer line.
        &trailer("00000003", "001", "00000003750", "P"),
    );
    let n = noemie::parse(&input).unwrap();
    assert!(n.findings.is_empty(), "{:#?}", n.findings);
    let r = n.report();
    assert_eq!(r.payments[0].payer.as_deref(), Some("CPAM75"));
    assert_eq!(
        r.payments[0].settlement_recipient.as_deref(),
        Some("000000123456789")
    );
    assert_eq!(r.invoices, noemie::report(&hand_file()).unwrap().invoices);
}

#[test]
fn short_or_long_entities_are_findings() {
    // 080 missing its last digit: 14 bytes instead of 15.
    let n = noemie::parse(&with_entity(3, "0800326112004@")).unwrap();
    let f = n
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::EntityLength)
        .unwrap();
    assert_eq!((f.entity, f.offset), (Some(3), entity_offset(3)));
    assert!(
        n.findings
            .iter()
            .any(|f| f.kind == FindingKind::Field && f.field == Some("lot_number"))
    );
    // 080 with garbage before the `@`.
    let n = noemie::parse(&with_entity(3, "08003261120042XY@")).unwrap();
    assert_eq!(n.findings.len(), 1);
    assert_eq!(n.findings[0].kind, FindingKind::EntityLength);
}

#[test]
fn bad_field_values_are_findings_naming_the_field() {
    let n = noemie::parse(&with_entity(5, "1980500002500P0000175XP@")).unwrap();
    let f = &n.findings[0];
    assert_eq!(
        (f.kind, f.field, f.entity),
        (FindingKind::Field, Some("paid"), Some(5))
    );
    assert_eq!(f.offset, entity_offset(5) + 14);
}

#[test]
fn truncated_inputs_are_typed_errors() {
    let full = hand_file();
    // Cut inside the trailer line: the declared length no longer fits.
    let cut = &full[..full.len() - 10];
    assert!(matches!(
        noemie::parse(cut),
        Err(NoemieError::LineTruncated { file: 0, .. })
    ));
    // Cut right before the trailer line.
    let cut = &full[..full.len() - 134];
    assert_eq!(
        noemie::parse(cut).unwrap_err(),
        NoemieError::MissingTrailer {
            file: 0,
            offset: cut.len()
        }
    );
    // A second file that is cut names file 1.
    let mut two = full.clone();
    two.extend_from_slice(&full[..200]);
    assert!(matches!(
        noemie::parse(&two),
        Err(NoemieError::LineTruncated { file: 1, .. })
    ));
    // Every prefix either parses or fails with an error: never a panic.
    for n in 0..full.len() {
        let _ = noemie::parse(&full[..n]);
    }
    assert_eq!(noemie::parse(b"").unwrap_err(), NoemieError::Empty);
    assert_eq!(
        noemie::parse(b"hello").unwrap_err(),
        NoemieError::UnknownPackaging { offset: 0 }
    );
}

#[test]
fn unterminated_entity_is_an_error_naming_entity_and_offset() {
    let mut e = entities();
    e.truncate(3);
    e.push(format!("08003{}", "1".repeat(2000)));
    let input = lines(
        &header(),
        &e.concat(),
        // 3 physical records: header line, one data line, trailer line.
        &trailer("00000003", "001", "00000003750", "P"),
    );
    assert_eq!(
        noemie::parse(&input).unwrap_err(),
        NoemieError::Unterminated {
            file: 0,
            entity: 3,
            offset: entities().iter().take(3).map(String::len).sum()
        }
    );
}

#[test]
fn blocks_without_last_flag_are_read_with_a_finding() {
    let stream = entities().concat();
    let mut input = header().into_bytes();
    for c in stream.as_bytes().chunks(127) {
        input.push(b'0');
        input.extend_from_slice(c);
        input.extend(std::iter::repeat_n(b' ', 127 - c.len()));
    }
    let records = format!("{:08}", stream.len().div_ceil(127) + 2);
    input.extend_from_slice(trailer(&records, "001", "00000003750", "P").as_bytes());
    let n = noemie::parse(&input).unwrap();
    assert_eq!(n.findings.len(), 1);
    assert_eq!(n.findings[0].severity, noemie::Severity::Warning);
    assert_eq!(n.findings[0].kind, FindingKind::Packaging);
}

#[test]
fn entity_spanning_two_lines_is_joined() {
    let stream = entities().concat();
    let (a, b) = stream.split_at(100);
    let input = format!(
        "0128{}\r\n{:04}{a}\r\n{:04}{b}\r\n0128{}\r\n",
        header(),
        a.len(),
        b.len(),
        // Header, two data lines, trailer.
        trailer("00000004", "001", "00000003750", "P")
    );
    let n = noemie::parse(input.as_bytes()).unwrap();
    assert!(n.findings.is_empty());
    assert_eq!(
        n.report().invoices,
        noemie::report(&hand_file()).unwrap().invoices
    );
}

#[test]
fn other_references_and_unexpected_entities() {
    let h = header().replace("580 ", "900 ");
    let mut e = entities();
    e.insert(3, "261030004200001500@".into());
    let input = lines(&h, &e.concat(), &trailer("00000003", "001", "00000005250", "P"));
    let n = noemie::parse(&input).unwrap();
    let r = n.report();
    assert_eq!(r.reference, "900");
    // 261 is not expected in a 900; its amount (15.00) makes the payment's 990 sum wrong.
    let kinds: Vec<_> = r.findings.iter().map(|f| (f.kind, f.code.clone())).collect();
    assert!(
        kinds.contains(&(FindingKind::UnexpectedForReference, Some("261".into()))),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(FindingKind::ControlSum, Some("990".into()))),
        "{kinds:?}"
    );
    assert_eq!(r.payments[0].flat_payments[0].amount_cents, 1500);
}

#[test]
fn builder_refuses_values_that_do_not_fit() {
    let mut o = outcomes();
    o[0].invoice_number = "1234567890".into();
    let err = noemie::build_580(&params(), &o).unwrap_err();
    assert!(err.to_string().contains("102"), "{err}");
    let mut o = outcomes();
    o[0].rejects[0].label = "A@B".into();
    assert!(noemie::build_580(&params(), &o).is_err());
}

#[test]
fn trailing_bytes_after_the_last_file_are_a_finding() {
    let mut input = hand_file();
    let end = input.len();
    input.extend_from_slice(b"-- \r\nsignature\r\n");
    let n = noemie::parse(&input).unwrap();
    assert_eq!(n.files.len(), 1);
    assert_eq!(n.findings.len(), 1);
    assert_eq!(
        (n.findings[0].kind, n.findings[0].offset),
        (FindingKind::Packaging, end)
    );
}

#[test]
fn debug_output_redacts_the_header_password() {
    let h = header();
    let with_pw = format!("{}S3CR3T{}", &h[..85], &h[91..]);
    let input = lines(
        &with_pw,
        &entities().concat(),
        // 3 physical records: header line, one data line, trailer line.
        &trailer("00000003", "001", "00000003750", "P"),
    );
    let n = noemie::parse(&input).unwrap();
    let dbg = format!("{n:?}");
    assert!(!dbg.contains("S3CR3T"), "{dbg}");
    assert!(dbg.contains("******"));
    let json = serde_json::to_string(&n.report()).unwrap();
    assert!(!json.contains("S3CR3T"));
}

#[test]
fn dump_gives_every_entity_raw_and_decoded() {
    let n = noemie::parse(&hand_file()).unwrap();
    let d = n.dump();
    assert_eq!(d.len(), 14);
    let e = &d[3];
    assert_eq!(
        (e.code.as_str(), e.level, e.offset),
        ("080", Some(3), entity_offset(3))
    );
    assert_eq!(e.raw, "08003261120042@");
    assert_eq!(e.title, Some("Lot"));
    let names: Vec<_> = e.fields.iter().map(|f| f.name).collect();
    assert_eq!(names, vec!["type", "level", "lot_date", "lot_number", "end"]);
    assert_eq!(e.fields[2].raw, "261120");
    assert!(matches!(&e.fields[2].value, Decoded::Date { iso, .. } if iso == "2026-11-20"));
    assert_eq!(e.fields[3].value, Decoded::Number(42));
}
