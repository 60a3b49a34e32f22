//! Every bad input named in the issue yields a typed error or a finding that names the record
//! index, the byte offset and the field.

use svoct_formats::b2::synth::{SynthParams, generate_single_file};
use svoct_formats::b2::{B2Error, Finding, SingleFileParams, parse, validate};

/// A framed file: 000, one lot of 2 invoices of exactly one act each, 999.
/// Records: 0 = 000, 1 = lot header, 2..=4 = invoice 1 (2,4,5), 5..=7 = invoice 2, 8 = type 6,
/// 9 = 999.
fn file() -> Vec<u8> {
    let p = SynthParams {
        invoices: 2,
        max_acts: 1,
        ..SynthParams::default()
    };
    let f = SingleFileParams {
        sender_type: "TP".into(),
        oct_id: "12345678900017".into(),
        file_id: "ABC123".into(),
        date: "261126".into(),
        message: "HELLO".into(),
    };
    generate_single_file(&p, &f).unwrap()
}

fn rec(bytes: &mut [u8], index: usize) -> &mut [u8] {
    &mut bytes[index * 128..(index + 1) * 128]
}

fn codes(f: &[Finding]) -> Vec<(&'static str, usize, usize, Option<&'static str>)> {
    f.iter()
        .map(|f| (f.code, f.record_index, f.offset, f.field))
        .collect()
}

#[test]
fn baseline_is_clean_and_has_the_expected_shape() {
    let b = file();
    assert_eq!(b.len(), 10 * 128);
    let input = parse(&b).unwrap();
    assert!(validate(&input).is_empty());
    // 000, 1, (2,4,5), (2,4,5), 6, 999
    let types: Vec<u8> = b.chunks(128).map(|r| r[0]).collect();
    assert_eq!(types, b"0124524569");
}

#[test]
fn empty_input() {
    assert_eq!(parse(b"").unwrap_err(), B2Error::Empty);
}

#[test]
fn length_not_a_multiple_of_128() {
    let mut b = file();
    b.truncate(b.len() - 5);
    let e = parse(&b).unwrap_err();
    assert_eq!(
        e,
        B2Error::Truncated {
            len: 1275,
            record: 9,
            offset: 1152,
            tail: 123
        }
    );
    assert_eq!((e.record(), e.offset()), (Some(9), Some(1152)));
    let msg = e.to_string();
    assert!(msg.contains("record 9") && msg.contains("offset 1152"), "{msg}");
}

#[test]
fn a_truncated_record_in_the_middle_shifts_the_rest() {
    // Dropping 10 bytes of record 3 leaves a length that is not a multiple of 128.
    let mut b = file();
    b.drain(3 * 128..3 * 128 + 10);
    assert!(matches!(
        parse(&b).unwrap_err(),
        B2Error::Truncated { record: 9, .. }
    ));
}

#[test]
fn unknown_record_type_inside_an_invoice() {
    let mut b = file();
    rec(&mut b, 3)[0] = b'7';
    let e = parse(&b).unwrap_err();
    match &e {
        B2Error::UnknownRecordType {
            record,
            offset,
            found,
            ..
        } => {
            assert_eq!((*record, *offset), (3, 384));
            assert!(found.starts_with('7'));
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("record_type"));
}

#[test]
fn unknown_record_type_between_invoices_and_between_lots() {
    let mut b = file();
    rec(&mut b, 5)[..3].copy_from_slice(b"001");
    assert!(matches!(
        parse(&b).unwrap_err(),
        B2Error::UnknownRecordType {
            record: 5,
            offset: 640,
            ..
        }
    ));
}

#[test]
fn invoice_without_its_type_5() {
    let mut b = file();
    b.drain(4 * 128..5 * 128); // the first invoice's type 5
    // Keep the trailer count aside: the structure error comes first.
    let e = parse(&b).unwrap_err();
    assert_eq!(
        e,
        B2Error::InvoiceWithoutTotal {
            record: 2,
            offset: 256,
            at: 4,
            found: "invoice header (type 2)"
        }
    );
}

#[test]
fn last_invoice_without_type_5_before_the_lot_trailer() {
    let mut b = file();
    b.drain(7 * 128..8 * 128);
    assert!(matches!(
        parse(&b).unwrap_err(),
        B2Error::InvoiceWithoutTotal {
            record: 5,
            at: 7,
            found: "lot trailer (type 6)",
            ..
        }
    ));
}

#[test]
fn lot_without_trailer_and_file_without_trailer() {
    let mut b = file();
    b.drain(8 * 128..9 * 128); // type 6
    assert!(matches!(
        parse(&b).unwrap_err(),
        B2Error::LotWithoutTrailer {
            record: 1,
            offset: 128,
            at: 8,
            ..
        }
    ));
    let mut b = file();
    b.truncate(9 * 128); // no 999
    assert!(matches!(
        parse(&b).unwrap_err(),
        B2Error::FileWithoutTrailer {
            record: 8,
            offset: 1024,
            ..
        }
    ));
    assert!(matches!(
        parse(&file()[..128]).unwrap_err(),
        B2Error::FileWithoutTrailer { record: 0, .. }
    ));
}

#[test]
fn records_out_of_place() {
    let b = file();
    // A bare act record.
    assert!(matches!(
        parse(&b[3 * 128..4 * 128]).unwrap_err(),
        B2Error::Unexpected { record: 0, .. }
    ));
    // A continuation record where an invoice should start.
    let mut c = file();
    rec(&mut c, 2)[35] = b'S';
    assert!(matches!(
        parse(&c).unwrap_err(),
        B2Error::Unexpected {
            record: 2,
            offset: 256,
            ..
        }
    ));
}

#[test]
fn wrong_invoice_and_lot_totals() {
    let mut b = file();
    // Type 5 of invoice 1 (record 4): act count 39-41 from 1 to 2, billed 58-65 + 1.
    rec(&mut b, 4)[38..41].copy_from_slice(b"002");
    let billed: u64 = std::str::from_utf8(&rec(&mut b, 4)[57..65])
        .unwrap()
        .parse()
        .unwrap();
    rec(&mut b, 4)[57..65].copy_from_slice(format!("{:08}", billed + 1).as_bytes());
    let input = parse(&b).unwrap();
    let f = validate(&input);
    assert_eq!(
        codes(&f),
        vec![
            ("invoice.act_count", 4, 4 * 128 + 38, Some("act_count")),
            ("invoice.total_billed", 4, 4 * 128 + 57, Some("total_billed")),
            // The lot total no longer matches the (changed) invoice total.
            ("lot.total_billed", 8, 8 * 128 + 24, Some("total_billed")),
        ],
        "{f:#?}"
    );
    assert!(
        f[0].message.contains("says 2") && f[0].message.contains("gives 1"),
        "{}",
        f[0].message
    );
}

#[test]
fn wrong_lot_counts() {
    let mut b = file();
    rec(&mut b, 8)[10..13].copy_from_slice(b"003"); // invoice count
    rec(&mut b, 8)[13..17].copy_from_slice(b"0009"); // act lines
    rec(&mut b, 8)[51..54].copy_from_slice(b"999"); // lot number
    let f = validate(&parse(&b).unwrap());
    assert_eq!(
        codes(&f),
        vec![
            ("lot.number_mismatch", 8, 8 * 128 + 51, Some("lot_number")),
            ("lot.invoice_count", 8, 8 * 128 + 10, Some("invoice_count")),
            ("lot.act_count", 8, 8 * 128 + 13, Some("act_count")),
        ]
    );
}

#[test]
fn trailer_counts_that_disagree() {
    let mut b = file();
    rec(&mut b, 9)[55..63].copy_from_slice(b"00000011"); // 10 records really
    rec(&mut b, 9)[82..85].copy_from_slice(b"002");
    rec(&mut b, 9)[49..55].copy_from_slice(b"ZZZ999");
    let f = validate(&parse(&b).unwrap());
    assert_eq!(
        codes(&f),
        vec![
            ("file.record_count", 9, 9 * 128 + 55, Some("record_count")),
            ("file.lot_count", 9, 9 * 128 + 82, Some("lot_count")),
            ("file.trailer_mismatch", 9, 9 * 128 + 49, Some("file_id")),
        ]
    );
}

#[test]
fn non_digits_in_numeric_fields() {
    let mut b = file();
    rec(&mut b, 1)[19] = b'X'; // lot number 20-22
    rec(&mut b, 3)[112] = b' '; // type 4 amount billed 113-119
    let f = validate(&parse(&b).unwrap());
    let c = codes(&f);
    assert!(
        c.contains(&("field.not_digits", 1, 128 + 19, Some("lot_number"))),
        "{f:#?}"
    );
    assert!(
        c.contains(&("field.not_digits", 3, 3 * 128 + 112, Some("amount_billed"))),
        "{f:#?}"
    );
    // The lot number then differs between type 1 and type 6.
    assert!(c.iter().any(|x| x.0 == "lot.number_mismatch"));
    assert!(f[0].message.contains("not digits"));
}

#[test]
fn non_ascii_bytes_name_the_exact_offset() {
    let mut b = file();
    rec(&mut b, 1)[31] = 0xE9; // inside the PS name 30-69
    rec(&mut b, 9)[100] = 0x00; // trailer filler
    let f = validate(&parse(&b).unwrap());
    assert_eq!(
        codes(&f),
        vec![
            ("field.not_ascii", 1, 128 + 31, Some("ps_name")),
            ("field.not_ascii", 9, 9 * 128 + 100, Some("filler_86_128")),
        ]
    );
}

#[test]
fn mandatory_field_blank() {
    let mut b = file();
    rec(&mut b, 1)[29..69].fill(b' '); // PS name
    let f = validate(&parse(&b).unwrap());
    assert_eq!(codes(&f), vec![("field.missing", 1, 128 + 29, Some("ps_name"))]);
}

#[test]
fn same_sender_in_every_lot() {
    let p = SynthParams {
        invoices: 4,
        destinations: 2,
        ..SynthParams::default()
    };
    let a = svoct_formats::b2::synth::generate_bytes(&p).unwrap();
    let mut b = a.clone();
    // Second lot: records after the first lot. Rewrite the PS number in all of its records.
    let input = parse(&a).unwrap();
    let second = input.lots()[1].offset();
    for r in b[second..].chunks_mut(128) {
        r[1..10].copy_from_slice(b"987654321");
    }
    let f = validate(&parse(&b).unwrap());
    assert_eq!(
        codes(&f),
        vec![("lot.mixed_senders", second / 128, second + 1, Some("ps_number"))]
    );
    // And the single-file builder refuses them.
    let input = parse(&b).unwrap();
    let e = svoct_formats::b2::build_single_file(
        input.lots(),
        &SingleFileParams {
            sender_type: "TP".into(),
            oct_id: "1".into(),
            file_id: "X".into(),
            date: "261126".into(),
            message: String::new(),
        },
    )
    .unwrap_err();
    assert!(matches!(e, B2Error::MixedSenders { lot: 1, .. }), "{e:?}");
}

#[test]
fn records_of_an_invoice_that_disagree_on_ps_or_invoice_number() {
    let mut b = file();
    rec(&mut b, 3)[34] = b'0' + (rec(&mut b, 3)[34] - b'0' + 1) % 10; // act invoice number
    rec(&mut b, 4)[1] = if rec(&mut b, 4)[1] == b'9' { b'8' } else { b'9' }; // type 5 PS
    let f = validate(&parse(&b).unwrap());
    assert_eq!(
        codes(&f),
        vec![
            ("invoice.number_mismatch", 3, 3 * 128 + 26, Some("invoice_number")),
            ("invoice.ps_mismatch", 4, 4 * 128 + 1, Some("ps_number")),
        ]
    );
}

#[test]
fn findings_serialize_to_json_with_every_locating_field() {
    let mut b = file();
    rec(&mut b, 1)[19] = b'X';
    let f = validate(&parse(&b).unwrap());
    let v = serde_json::to_value(&f[0]).unwrap();
    assert_eq!(v["record_index"], 1);
    assert_eq!(v["offset"], 147);
    assert_eq!(v["field"], "lot_number");
    assert_eq!(v["code"], "field.not_digits");
    assert!(v["message"].is_string());
}

#[test]
fn continuation_after_acts_and_empty_lot() {
    let b = file();
    // Invoice 1 is records 2 (type 2), 3 (type 4), 4 (type 5): add a 2S after the act.
    let mut c = b[..4 * 128].to_vec();
    let mut cont = b[2 * 128..3 * 128].to_vec();
    cont[35] = b'S';
    cont[36..].fill(b' ');
    c.extend(cont);
    c.extend_from_slice(&b[4 * 128..]);
    let f = validate(&parse(&c).unwrap());
    let got = codes(&f);
    assert!(got.contains(&("invoice.order", 4, 4 * 128, None)), "{f:#?}");
    // An empty lot: type 1 immediately followed by type 6.
    let mut e = b[..2 * 128].to_vec();
    e.extend_from_slice(&b[8 * 128..]);
    let f = validate(&parse(&e).unwrap());
    assert_eq!(f[0].code, "lot.empty");
    assert_eq!((f[0].record_index, f[0].offset), (1, 128));
}
