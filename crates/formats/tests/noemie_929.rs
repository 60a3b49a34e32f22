//! NOEMIE rules that hold for any reference, on a return shaped like the public reference-929
//! AMC return: 4-digit length-prefixed physical records with CRLF, sender numbers left-padded
//! with spaces, a blank currency unit, entity types with no published layout (`010`, `140`),
//! `990` counts per level, `999` counting physical records. Every file here is written by hand
//! from the rules in `docs/formats/noemie.md`, and every expected value is counted by hand.

use svoct_formats::noemie::{self, FindingKind, NoemieError, Severity, ViewKind};

fn sp(n: usize) -> String {
    " ".repeat(n)
}

/// Sender number as found in the real file: 14 characters, left-padded with spaces.
const SENDER: &str = "      12345678";

fn header() -> String {
    let h = [
        "000",
        "OC",             // 4-5 sender type
        SENDER,           // 6-19 sender number, space-padded
        "AMCSYS",         // 20-25 sender program
        "TP",             // 26-27 recipient type
        "00000123456789", // 28-41 recipient number
        &sp(6),
        &sp(2),
        "F92901", // 50-55 file id
        "261120", // 56-61 created
        "929 ",   // 62-65 reference
        &sp(2),
        " ",
        " ",
        " ", // 70 currency unit: blank
        " ",
        &sp(11),
        "000",
        &sp(6),
        &sp(37),
    ]
    .concat();
    assert_eq!(h.len(), 128);
    h
}

fn trailer(records: &str) -> String {
    let t = [
        "999",
        "OC",
        SENDER,
        "AMCSYS",
        "TP",
        "00000123456789",
        &sp(6),
        &sp(2),
        "F92901",
        records, // 56-63 physical records
        " ",
        &sp(18),
        "000",         // 83-85 lots: no 080
        "00000000000", // 86-96 amount: no controlled amount
        "P",
        "00000000000",
        &sp(20),
    ]
    .concat();
    assert_eq!(t.len(), 128);
    t
}

fn insured(nir: &str, name: &str) -> String {
    let e = format!("11002{nir}12P{:<25}{}{:<15}@", name, sp(26), "JEAN");
    assert_eq!(e.len(), 88);
    e
}

fn notice(line: &str, code: &str, label: &str) -> String {
    let e = format!("29003{line}{code:<10}{label:<80}@");
    assert_eq!(e.len(), 98);
    e
}

fn control(level: &str, count: u32) -> String {
    let e = format!("990{level}{}{count:08}00000000000P@", sp(17));
    assert_eq!(e.len(), 43);
    e
}

/// The entities, one per physical line, with the `990` counts of the level directly below.
fn entities(top_count: u32) -> Vec<String> {
    vec![
        "01001AMC TIERS PAYANT 929@".to_string(),  // 0: no published layout
        insured("1850375123456", "MARTIN"),        // 1
        notice("01", "R001", "DROITS AMC FERMES"), // 2
        notice("02", "S014", "PIECE JUSTIFICATIVE A FOURNIR"), // 3
        control("02", 2),                          // 4: closes MARTIN: 2 entities of level 03
        insured("2900175654321", "DURAND"),        // 5
        notice("01", "R007", "ACTE NON PRIS EN CHARGE"), // 6
        "14003XYZ 0042@".to_string(),              // 7: no published layout, level 03
        control("02", 2),                          // 8: closes DURAND: the 290 and the 140
        control("01", top_count),                  // 9: closes the 010: its two 110
    ]
}

fn file_with(entities: &[String], records: &str) -> Vec<u8> {
    let mut out = format!("0128{}\r\n", header());
    for e in entities {
        out.push_str(&format!("{:04}{e}\r\n", e.len()));
    }
    out.push_str(&format!("0128{}\r\n", trailer(records)));
    out.into_bytes()
}

/// 10 entity lines + header + trailer = 12 physical records.
fn file_929() -> Vec<u8> {
    file_with(&entities(2), "00000012")
}

#[test]
fn a_929_like_return_is_valid_with_information_only() {
    let n = noemie::parse(&file_929()).unwrap();
    let summary: Vec<_> = n
        .findings
        .iter()
        .map(|f| (f.severity, f.kind, f.code.as_deref(), f.field))
        .collect();
    assert_eq!(
        summary,
        vec![
            (Severity::Info, FindingKind::UnknownEntity, Some("010"), None),
            (Severity::Info, FindingKind::UnknownEntity, Some("140"), None),
            // One finding for the one blank currency byte, and only a warning.
            (
                Severity::Warning,
                FindingKind::Header,
                Some("000"),
                Some("currency")
            ),
        ],
        "{:#?}",
        n.findings
    );
    assert!(!n.has_errors());
    let t = &n.files[0].totals;
    assert_eq!((t.entities, t.records, t.controls_checked), (10, 12, 3));
}

#[test]
fn a_929_has_an_entity_tree_and_no_invented_payment() {
    let r = noemie::report(&file_929()).unwrap();
    assert_eq!(r.reference, "929");
    assert_eq!(r.file_summaries[0].view, ViewKind::EntityTree);
    assert_eq!(r.file_summaries[0].sender_number, SENDER.trim_end());
    assert!(r.payments.is_empty(), "{:#?}", r.payments);
    assert!(r.invoices.is_empty());
    // 010 -> [110 MARTIN -> [290, 290, 990], 110 DURAND -> [290, 140, 990], 990]
    assert_eq!(r.entities.len(), 1);
    let root = &r.entities[0];
    assert_eq!(
        (root.code.as_str(), root.level, root.title),
        ("010", Some(1), None)
    );
    assert_eq!(root.raw.as_deref(), Some("01001AMC TIERS PAYANT 929@"));
    let kids: Vec<&str> = root.children.iter().map(|c| c.code.as_str()).collect();
    assert_eq!(kids, ["110", "110", "990"]);
    let martin = &root.children[0];
    let codes: Vec<(&str, usize)> = martin
        .children
        .iter()
        .map(|c| (c.code.as_str(), c.index))
        .collect();
    assert_eq!(codes, [("290", 2), ("290", 3), ("990", 4)]);
    let name = martin.fields.iter().find(|f| f.name == "name").unwrap();
    assert_eq!(name.raw.trim_end(), "MARTIN");
    let durand = &root.children[1];
    let codes: Vec<(&str, usize)> = durand
        .children
        .iter()
        .map(|c| (c.code.as_str(), c.index))
        .collect();
    assert_eq!(codes, [("290", 6), ("140", 7), ("990", 8)]);
    // Offsets are input offsets: entity 5 is on the 7th line.
    let line_starts: usize = 4 + 128 + 2 + entities(2)[..5].iter().map(|e| 4 + e.len() + 2).sum::<usize>();
    assert_eq!(durand.offset, line_starts + 4);
}

#[test]
fn a_990_counts_only_the_level_directly_below() {
    // Counting every descendant of the 010 (2 insured + 5 below them) is the old, wrong rule.
    let n = noemie::parse(&file_with(&entities(7), "00000012")).unwrap();
    let errors: Vec<_> = n
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].kind, FindingKind::ControlCount);
    assert_eq!(errors[0].entity, Some(9));
    assert!(errors[0].message.contains("counts 7") && errors[0].message.contains("found 2"));
}

#[test]
fn the_999_counts_physical_records() {
    // Counting the 10 entities: readable, a warning.
    let n = noemie::parse(&file_with(&entities(2), "00000010")).unwrap();
    let f = n
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::TrailerCount)
        .unwrap();
    assert_eq!(f.severity, Severity::Warning);
    assert!(!n.has_errors());
    // Any other number is an error.
    let n = noemie::parse(&file_with(&entities(2), "00000011")).unwrap();
    let f = n
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::TrailerCount)
        .unwrap();
    assert_eq!(f.severity, Severity::Error);
    assert!(f.message.contains("12 physical records"), "{}", f.message);
}

#[test]
fn sender_numbers_padded_with_spaces_or_zeros_are_the_same_number() {
    let input = String::from_utf8(file_929()).unwrap();
    // Trailer zero-padded, header space-padded: same sender.
    let last = input.rfind(SENDER).unwrap();
    let mut mixed = input.clone();
    mixed.replace_range(last..last + 14, "00000012345678");
    let n = noemie::parse(mixed.as_bytes()).unwrap();
    assert!(!n.has_errors(), "{:#?}", n.findings);
    // A different number is an error naming the trailer field.
    let mut other = input.clone();
    other.replace_range(last..last + 14, "      12345679");
    let n = noemie::parse(other.as_bytes()).unwrap();
    let f = n.findings.iter().find(|f| f.severity == Severity::Error).unwrap();
    assert_eq!(
        (f.kind, f.field),
        (FindingKind::TrailerHeader, Some("sender_number"))
    );
    // Letters in the number are an error in the header.
    let first = input.find(SENDER).unwrap();
    let mut letters = input;
    letters.replace_range(first..first + 14, "      1234567X");
    let n = noemie::parse(letters.as_bytes()).unwrap();
    assert!(
        n.findings.iter().any(|f| f.severity == Severity::Error
            && f.code.as_deref() == Some("000")
            && f.field == Some("sender_number")),
        "{:#?}",
        n.findings
    );
}

#[test]
fn a_currency_other_than_euro_is_one_error() {
    let mut input = file_929();
    input[4 + 69] = b'F';
    let n = noemie::parse(&input).unwrap();
    let cur: Vec<_> = n
        .findings
        .iter()
        .filter(|f| f.field == Some("currency"))
        .collect();
    assert_eq!(cur.len(), 1);
    assert_eq!(cur[0].severity, Severity::Error);
}

#[test]
fn parse_owned_reads_like_parse() {
    for input in [file_929(), file_with(&entities(7), "00000011")] {
        let a = noemie::parse(&input).unwrap();
        let b = noemie::parse_owned(input.clone()).unwrap();
        assert_eq!(a.report(), b.report());
        assert_eq!(a.files[0].stream(), b.files[0].stream());
    }
}

/// Rewrap `s` at `width` columns with CRLF, as an editor does.
fn rewrap(s: &[u8], width: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for line in s.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        for chunk in line.chunks(width) {
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

fn trailer_offset(input: &[u8]) -> usize {
    let needle = format!("999OC{SENDER}");
    input
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .unwrap()
}

#[test]
fn a_reflowed_line_file_says_what_is_wrong() {
    let input = rewrap(&file_929(), 80);
    let err = noemie::parse(&input).unwrap_err();
    assert!(
        matches!(
            err,
            NoemieError::Reflowed {
                file: 0,
                offset: 0,
                ..
            }
        ),
        "{err}"
    );
    // The header line (4 + 128 bytes) was cut after 80 columns: 76 bytes of its payload.
    let msg = err.to_string();
    assert!(
        msg.contains("declares 128 bytes but a line break comes after 76 (offset 80)"),
        "{msg}"
    );
    let at = format!("999 trailer is at offset {}", trailer_offset(&input));
    assert!(msg.contains(&at), "{msg}");
}

/// Packaging (b): header block, data blocks (flag 1 on the last), trailer block.
fn blocks_file() -> Vec<u8> {
    let stream: String = entities(2)[4..].concat(); // 6 entities, 270 bytes: 3 blocks
    let chunks: Vec<&[u8]> = stream.as_bytes().chunks(127).collect();
    assert_eq!(chunks.len(), 3);
    let mut input = header().into_bytes();
    for (i, c) in chunks.iter().enumerate() {
        input.push(if i + 1 == chunks.len() { b'1' } else { b'0' });
        input.extend_from_slice(c);
        input.extend(std::iter::repeat_n(b' ', 127 - c.len()));
    }
    input.extend_from_slice(trailer("00000005").as_bytes());
    input
}

#[test]
fn a_reflowed_block_file_says_what_is_wrong() {
    let input = blocks_file();
    assert!(noemie::parse(&input).is_ok());
    // An editor breaks it into 100-column lines: the 999 is no longer on a block boundary.
    let reflowed = rewrap(&input, 100);
    let err = noemie::parse(&reflowed).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, NoemieError::Reflowed { .. }), "{msg}");
    let at = format!("999 trailer at offset {}", trailer_offset(&reflowed));
    assert!(msg.contains(&at), "{msg}");
    assert!(msg.contains("line break at offset 100"), "{msg}");
    assert!(!msg.contains("truncated"), "{msg}");
}

#[test]
fn blocks_with_trailing_spaces_trimmed_say_what_is_wrong() {
    // One block per line (tolerated), then an editor trims the trailing spaces of each line.
    let mut lines = Vec::new();
    for block in blocks_file().chunks(128) {
        let end = block.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
        lines.extend_from_slice(&block[..end]);
        lines.extend_from_slice(b"\r\n");
    }
    let err = noemie::parse(&lines).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, NoemieError::Reflowed { .. }), "{msg}");
    let at = format!("999 trailer at offset {}", trailer_offset(&lines));
    assert!(msg.contains(&at), "{msg}");
    assert!(msg.contains("inside a 128-byte block"), "{msg}");
}
