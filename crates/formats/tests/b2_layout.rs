//! Every B2 table is consistent and matches hand-written records built from the spec positions.

use svoct_formats::b2::layouts::{self, ALL};
use svoct_formats::b2::{LotKind, RECORD_LEN, layout_of, parse};
use svoct_formats::layout::Kind;

/// Pad `parts` (each placed at its 1-based start position) into one 128-byte record; gaps stay
/// spaces. Independent of the layout tables.
fn record(parts: &[(usize, &str)]) -> Vec<u8> {
    let mut r = vec![b' '; RECORD_LEN];
    for (pos, text) in parts {
        r[pos - 1..pos - 1 + text.len()].copy_from_slice(text.as_bytes());
    }
    r
}

#[test]
fn every_table_passes_self_check_and_covers_128_bytes() {
    for l in ALL {
        l.self_check().unwrap();
        assert_eq!(l.len, 128, "{}", l.code);
        // Contiguous from 1 to 128: the published layouts leave no gap.
        let mut next = 1;
        for f in l.fields {
            assert_eq!(f.from, next, "{}: gap or overlap before {}", l.code, f.name);
            next = f.to + 1;
        }
        assert_eq!(next, 129, "{} does not end at 128", l.code);
        // Field names are unique inside a table.
        for (i, f) in l.fields.iter().enumerate() {
            assert!(
                l.fields[i + 1..].iter().all(|g| g.name != f.name),
                "{}: duplicate field {}",
                l.code,
                f.name
            );
        }
    }
}

#[test]
fn blank_records_of_header_like_tables_carry_their_fixed_values() {
    assert_eq!(&layouts::FILE_HEADER.blank()[..3], b"000");
    assert_eq!(&layouts::FILE_HEADER.blank()[65..67], b"B2");
    assert_eq!(&layouts::FILE_HEADER.blank()[82..85], b"128");
    assert_eq!(&layouts::FILE_TRAILER.blank()[..3], b"999");
    assert_eq!(layouts::INVOICE_2M.blank()[35], b'M');
}

#[test]
fn routing_fields_sit_where_formats_md_says() {
    // formats.md §2: type 1 17-19 and 89-93; type 2 46, 47, 49-57, 115-116, 117-118, 119-128;
    // type 5 position 90; 000 50-55, 48-49, 26-27, 28-41, 4-5, 6-19, 56-61, 92-128; 999 56-63, 83-85.
    let spans = [
        (&layouts::F1_DEST_ORG, 17, 19),
        (&layouts::F1_PIVOT_REGIME, 89, 90),
        (&layouts::F1_PIVOT_CAISSE, 91, 93),
        (&layouts::F2_PS_SPLIT, 46, 46),
        (&layouts::F2_INVOICE_KIND, 47, 47),
        (&layouts::F2_REGIME, 49, 50),
        (&layouts::F2_CENTRE, 54, 57),
        (&layouts::F2_SETTLEMENT, 115, 116),
        (&layouts::F2_CONTRACT, 117, 118),
        (&layouts::F2_AMC, 119, 128),
        (&layouts::F5_OCT_SPLIT, 90, 90),
        (&layouts::F5_SEAL, 97, 128),
        (&layouts::F6_SEAL, 97, 128),
        (&layouts::F0_FILE_ID, 50, 55),
        (&layouts::F0_APPLICATION, 48, 49),
        (&layouts::F0_RECIPIENT_TYPE, 26, 27),
        (&layouts::F0_RECIPIENT_NUMBER, 28, 41),
        (&layouts::F0_SENDER_TYPE, 4, 5),
        (&layouts::F0_SENDER_NUMBER, 6, 19),
        (&layouts::F0_CREATION_DATE, 56, 61),
        (&layouts::F0_MESSAGE, 92, 128),
        (&layouts::F9_RECORDS, 56, 63),
        (&layouts::F9_LOTS, 83, 85),
    ];
    for (f, from, to) in spans {
        assert_eq!((f.from, f.to), (from, to), "{}", f.name);
    }
    assert_eq!(layouts::F9_RECIPIENT_NUMBER.kind, Kind::Digits);
    assert_eq!(layouts::F0_RECIPIENT_NUMBER.kind, Kind::Text);
}

#[test]
fn layout_of_tells_types_and_continuations_apart() {
    let code = |r: &[u8]| layout_of(r).map(|l| l.code);
    assert_eq!(code(&record(&[(1, "000")])), Some("000"));
    assert_eq!(code(&record(&[(1, "999")])), Some("999"));
    assert_eq!(code(&record(&[(1, "1")])), Some("1"));
    assert_eq!(code(&record(&[(1, "2")])), Some("2"));
    for (c, expect) in [("S", "2S"), ("M", "2M"), ("P", "2P"), ("B", "2B"), ("C", "2C")] {
        assert_eq!(code(&record(&[(1, "2"), (36, c)])), Some(expect));
    }
    assert_eq!(code(&record(&[(1, "3"), (30, "000000001")])), Some("3"));
    assert_eq!(code(&record(&[(1, "3"), (39, "S")])), None, "3S is opaque");
    assert_eq!(code(&record(&[(1, "4")])), Some("4"));
    assert_eq!(code(&record(&[(1, "4"), (36, "M")])), None, "4M is opaque");
    assert_eq!(code(&record(&[(1, "5")])), Some("5"));
    assert_eq!(code(&record(&[(1, "6")])), Some("6"));
    assert_eq!(code(&record(&[(1, "001")])), None);
    assert_eq!(code(&record(&[(1, "998")])), None);
    assert_eq!(code(&record(&[(1, "7")])), None);
    assert_eq!(code(b""), None);
}

/// A minimal lot written by hand from the spec positions, one invoice with one act.
fn hand_lot(norm_version: &str) -> Vec<u8> {
    let ps = "123456789";
    let nir = "1800175123456";
    let mut lot = Vec::new();
    lot.extend(record(&[
        (1, "1"),
        (2, ps),
        (17, "601"),
        (20, "042"),
        (30, "DR TEST"),
        (70, "SV"),
        (72, "261126"),
        (79, "B2"),
        (81, "S"),
        (82, norm_version),
        (88, "U"),
        (89, "01"),
        (91, "751"),
    ]));
    lot.extend(record(&[
        (1, "2"),
        (2, ps),
        (12, nir),
        (25, "42"),
        (27, "000000777"),
        (39, "0"),
        (40, "261126"),
        (47, "F"),
        (49, "01"),
        (51, "751"),
        (54, "0001"),
        (58, "1"),
        (59, "000000000"),
        (68, "000000"),
        (77, "10"),
        (79, "0"),
        (80, "000000"),
        (86, "000000000"),
        (95, "0"),
        (96, "800101"),
        (102, "0"),
        (113, "00"),
        (115, "05"),
        (117, "99"),
        (119, "0123456789"),
    ]));
    lot.extend(record(&[
        (1, "4"),
        (2, ps),
        (12, nir),
        (25, "42"),
        (27, "000000777"),
        (37, "01"),
        (39, "00"),
        (41, "000"),
        (44, "000000"),
        (50, "9"),
        (55, ps),
        (64, "00"),
        (66, "00"),
        (68, "261126"),
        (74, "C"),
        (79, "01"),
        (81, "000100"),
        (87, "01"),
        (89, "0002650"),
        (96, "0002650"),
        (103, "070"),
        (106, "0001855"),
        (113, "0002650"),
        (120, "N"),
        (121, "0"),
        (122, "0000795"),
    ]));
    lot.extend(record(&[
        (1, "5"),
        (2, ps),
        (12, nir),
        (25, "42"),
        (27, "000000777"),
        (39, "001"),
        (58, "00002650"),
        (66, "00001855"),
        (74, "00000795"),
        (82, "00000795"),
        (97, "FAKESEAL0000000000000000000000AA"),
    ]));
    lot.extend(record(&[
        (1, "6"),
        (2, ps),
        (11, "001"),
        (14, "0001"),
        (18, "0001"),
        (22, "001"),
        (25, "000002650"),
        (34, "000001855"),
        (43, "000000795"),
        (52, "042"),
        (55, "T"),
        (56, "F"),
        (88, "000000000"),
        (97, "FAKESEAL0000000000000000000000BB"),
    ]));
    lot
}

#[test]
fn hand_written_lot_parses_validates_and_reads_back() {
    let lot = hand_lot("062005");
    let input = parse(&lot).unwrap();
    let findings = svoct_formats::b2::validate(&input);
    assert!(findings.is_empty(), "{findings:#?}");
    let l = &input.lots()[0];
    assert_eq!(l.sender(), "123456789");
    assert_eq!(l.lot_number(), Some(42));
    assert_eq!(l.date(), "261126");
    assert_eq!(l.kind(), LotKind::Fse);
    let d = l.destination();
    assert_eq!(
        (d.organisme.as_str(), d.regime.as_str(), d.caisse.as_str()),
        ("601", "01", "751")
    );
    assert_eq!(d.to_string(), "601/01/751");
    let inv = &l.invoices()[0];
    assert_eq!(inv.number(), Some(777));
    assert_eq!(inv.settlement(), "05");
    assert_eq!(inv.contract_type(), "99");
    assert_eq!(inv.amc_number(), "0123456789");
    assert_eq!(inv.ps_split(), None);
    assert_eq!(inv.insured_fund(), ("01", "751", "0001"));
    assert_eq!(inv.act_records(), 1);
    assert_eq!(inv.total_billed(), Some(2650));
    assert_eq!(inv.total_amo(), Some(1855));
    assert_eq!(inv.total_amc(), Some(795));
    assert!(!inv.split_by_oct());
    assert_eq!(inv.first_record(), 1);
    assert_eq!(inv.offset(), 128);
}

#[test]
fn dre_is_told_by_norm_version_200506() {
    let lot = hand_lot("200506");
    let input = parse(&lot).unwrap();
    assert_eq!(input.lots()[0].kind(), LotKind::Dre);
    let lot = hand_lot("140700");
    let input = parse(&lot).unwrap();
    assert_eq!(input.lots()[0].kind(), LotKind::Fse);
    assert!(svoct_formats::b2::validate(&input).is_empty());
    // An unknown version reads as FSE but is reported.
    let lot = hand_lot("123456");
    let input = parse(&lot).unwrap();
    let f = svoct_formats::b2::validate(&input);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].code, "lot.norm_version");
    assert_eq!(f[0].offset, 81);
}

#[test]
fn continuations_and_opaque_act_variants_are_kept_and_counted() {
    let base = hand_lot("062005");
    let ps = "123456789";
    let nir = "1800175123456";
    let mut lot = Vec::new();
    lot.extend_from_slice(&base[..256]); // type 1, type 2
    // A 2S continuation.
    lot.extend(record(&[
        (1, "2"),
        (2, ps),
        (12, nir),
        (25, "42"),
        (27, "000000777"),
        (36, "S"),
        (65, "000000"),
    ]));
    lot.extend_from_slice(&base[256..384]); // type 4
    // A 4M (CCAM) record: no table here, kept opaque; counts as a type 4 record.
    let opaque = record(&[
        (1, "4"),
        (2, ps),
        (12, nir),
        (25, "42"),
        (27, "000000777"),
        (36, "M"),
        (37, "01"),
        (43, "YYYY0010"),
    ]);
    assert!(layout_of(&opaque).is_none());
    lot.extend(opaque.clone());
    let mut total = base[384..512].to_vec();
    total[38..41].copy_from_slice(b"002");
    lot.extend(total);
    let mut trailer = base[512..640].to_vec();
    trailer[13..17].copy_from_slice(b"0002");
    trailer[17..21].copy_from_slice(b"0002");
    lot.extend(trailer);

    let input = parse(&lot).unwrap();
    let inv = &input.lots()[0].invoices()[0];
    assert_eq!(
        (inv.type2_records(), inv.act_records(), inv.line_records()),
        (2, 2, 0)
    );
    assert_eq!(
        &inv.bytes()[4 * 128 - 128..4 * 128],
        &opaque[..],
        "kept byte for byte"
    );
    assert_eq!(input.lots()[0].bytes(), &lot[..]);
    let f = svoct_formats::b2::validate(&input);
    assert!(f.is_empty(), "{f:#?}");

    // A non-ASCII byte in the opaque record is still reported, at its exact offset.
    let mut bad = lot.clone();
    bad[4 * 128 + 100] = 0xC3;
    let f = svoct_formats::b2::validate(&parse(&bad).unwrap());
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(
        (f[0].code, f[0].record_index, f[0].offset, f[0].field),
        ("record.not_ascii", 4, 4 * 128 + 100, None)
    );
}
