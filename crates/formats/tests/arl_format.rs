//! ARL provisional format: hand-written records from `docs/formats/arl.md`, round trips, errors.

use proptest::prelude::*;
use svoct_formats::arl::{Arl, ArlError, ArlReason, ArlStatus, Stamp, fuzz_arl};
use svoct_formats::noemie::Ymd;

fn sp(n: usize) -> String {
    " ".repeat(n)
}

/// Header record written position by position.
fn head(status: &str, count: &str) -> String {
    let r = [
        "ARL",            // 1-3
        "01",             // 4-5 version
        "CP",             // 6-7 sender type
        "00000000000751", // 8-21 sender number
        "10987654321   ", // 22-35 PS number
        "F00042",         // 36-41 file id
        "007",            // 42-44 lot number
        "261120",         // 45-50 lot date AAMMJJ
        "202611261030",   // 51-62 issued
        status,           // 63
        "0025",           // 64-67 invoices
        count,            // 68-70 reasons
        "FSE",            // 71-73
        &sp(55),          // 74-128
    ]
    .concat();
    assert_eq!(r.len(), 128);
    r
}

fn mot(seq: &str, code: &str, label: &str) -> String {
    let r = format!("MOT{seq}{code:<4}{label:<118}");
    assert_eq!(r.len(), 128);
    r
}

fn negative() -> Arl {
    Arl {
        sender_type: "CP".into(),
        sender_number: "00000000000751".into(),
        ps_number: "10987654321".into(),
        file_id: "F00042".into(),
        lot_number: 7,
        lot_date: Ymd::new(2026, 11, 20),
        issued: Stamp {
            date: Ymd::new(2026, 11, 26),
            hour: 10,
            minute: 30,
        },
        status: ArlStatus::Negative,
        invoice_count: Some(25),
        lot_kind: "FSE".into(),
        reasons: vec![
            ArlReason {
                code: "E012".into(),
                label: "CERTIFICAT DU LOT INVALIDE".into(),
            },
            ArlReason {
                code: "E100".into(),
                label: "TOTAL DU LOT DIFFERENT DE LA SOMME DES FACTURES".into(),
            },
        ],
    }
}

fn hand_negative() -> String {
    format!(
        "{}\r\n{}\r\n{}\r\n",
        head("N", "002"),
        mot("001", "E012", "CERTIFICAT DU LOT INVALIDE"),
        mot("002", "E100", "TOTAL DU LOT DIFFERENT DE LA SOMME DES FACTURES")
    )
}

#[test]
fn hand_written_negative_arl_parses() {
    assert_eq!(Arl::parse(hand_negative().as_bytes()).unwrap(), negative());
}

#[test]
fn build_writes_the_hand_written_bytes() {
    assert_eq!(
        String::from_utf8(negative().build().unwrap()).unwrap(),
        hand_negative()
    );
}

#[test]
fn positive_arl_without_reasons_and_without_line_ends() {
    let a = Arl::parse(head("P", "000").as_bytes()).unwrap();
    assert_eq!(a.status, ArlStatus::Positive);
    assert!(a.reasons.is_empty());
    assert_eq!(a.lot_number, 7);
    // LF-only line ends are accepted too.
    let lf = hand_negative().replace("\r\n", "\n");
    assert_eq!(Arl::parse(lf.as_bytes()).unwrap(), negative());
}

#[test]
fn errors_name_record_offset_and_field() {
    assert_eq!(Arl::parse(b"").unwrap_err(), ArlError::Empty);
    let s = hand_negative();
    let e = Arl::parse(&s.as_bytes()[..200]).unwrap_err();
    assert_eq!(
        e,
        ArlError::Truncated {
            record: 1,
            offset: 130,
            len: 70
        }
    );
    let e = Arl::parse(format!("{}\r\n", head("N", "000")).as_bytes()).unwrap_err();
    assert_eq!(e, ArlError::NegativeWithoutReason);
    let e = Arl::parse(format!("{}\r\n", head("X", "000")).as_bytes()).unwrap_err();
    assert!(
        matches!(
            e,
            ArlError::Value {
                record: 0,
                offset: 62,
                field: "status",
                ..
            }
        ),
        "{e:?}"
    );
    let e = Arl::parse(format!("{}\r\n", head("N", "003")).as_bytes()).unwrap_err();
    assert_eq!(e, ArlError::ReasonCount { stated: 3, found: 0 });
    let bad_date = head("P", "000").replace("261120", "261340");
    let e = Arl::parse(bad_date.as_bytes()).unwrap_err();
    assert!(
        matches!(
            e,
            ArlError::Value {
                field: "lot_date",
                offset: 44,
                ..
            }
        ),
        "{e:?}"
    );
    let mut bad_digits = head("P", "000").into_bytes();
    bad_digits[42] = b'A'; // inside the lot number, positions 42-44
    match Arl::parse(&bad_digits).unwrap_err() {
        ArlError::Field {
            record,
            offset,
            source,
        } => {
            assert_eq!((record, offset, source.field), (0, 41, "lot_number"));
        }
        e => panic!("{e:?}"),
    }
    let wrong_order = format!(
        "{}\r\n{}\r\n",
        head("N", "001"),
        mot("002", "E012", "CERTIFICAT DU LOT INVALIDE")
    );
    assert!(matches!(
        Arl::parse(wrong_order.as_bytes()).unwrap_err(),
        ArlError::Value {
            record: 1,
            field: "sequence",
            ..
        }
    ));
    let not_mot = format!("{}\r\n{}\r\n", head("N", "001"), head("N", "001"));
    assert!(matches!(
        Arl::parse(not_mot.as_bytes()).unwrap_err(),
        ArlError::UnexpectedRecord {
            record: 1,
            expected: "MOT",
            ..
        }
    ));
}

#[test]
fn build_refuses_what_does_not_fit() {
    let mut a = negative();
    a.reasons[0].code = "TOOLONG".into();
    assert!(matches!(
        a.build().unwrap_err(),
        ArlError::Field { record: 1, .. }
    ));
    let mut a = negative();
    a.reasons.clear();
    assert_eq!(a.build().unwrap_err(), ArlError::NegativeWithoutReason);
    let mut a = negative();
    a.ps_number = "".into();
    assert!(a.build().is_err());
}

fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[A-Z0-9][A-Z0-9 .,'-]{{0,{}}}", max - 1))
        .unwrap()
        .prop_map(|s| s.trim_end().to_string())
}

fn arl() -> impl Strategy<Value = Arl> {
    (
        ("[A-Z]{2}", "[0-9]{14}", "[0-9A-Z]{1,14}", "[0-9A-Z]{0,6}"),
        (0u16..=999, 2000u16..=2099, 1u8..=12, 1u8..=28),
        (2000u16..=2099, 1u8..=12, 1u8..=28, 0u8..24, 0u8..60),
        any::<bool>(),
        proptest::option::of(0u16..=9999),
        prop_oneof![
            Just(String::new()),
            Just("FSE".to_string()),
            Just("DRE".to_string())
        ],
        proptest::collection::vec(("[A-Z0-9]{1,4}", text(118)), 0..5),
    )
        .prop_filter("negative needs a reason", |(.., neg, _, _, r)| {
            !*neg || !r.is_empty()
        })
        .prop_map(
            |((st, sn, ps, fid), (lot, ly, lm, ld), (iy, im, id, h, mi), neg, ic, kind, reasons)| Arl {
                sender_type: st,
                sender_number: sn,
                ps_number: ps,
                file_id: fid,
                lot_number: lot,
                lot_date: Ymd::new(ly, lm, ld),
                issued: Stamp {
                    date: Ymd::new(iy, im, id),
                    hour: h,
                    minute: mi,
                },
                status: if neg {
                    ArlStatus::Negative
                } else {
                    ArlStatus::Positive
                },
                invoice_count: ic,
                lot_kind: kind,
                reasons: reasons
                    .into_iter()
                    .map(|(code, label)| ArlReason { code, label })
                    .collect(),
            },
        )
}

proptest! {
    #[test]
    fn round_trip(a in arl()) {
        let bytes = a.build().unwrap();
        prop_assert_eq!(bytes.len(), (a.reasons.len() + 1) * 130);
        prop_assert_eq!(Arl::parse(&bytes).unwrap(), a);
    }

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..700)) {
        fuzz_arl(&data);
    }

    #[test]
    fn mutated_arl_never_panics(a in arl(), edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6), cut in any::<prop::sample::Index>()) {
        let mut bytes = a.build().unwrap();
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        fuzz_arl(&bytes);
        bytes.truncate(cut.index(bytes.len()));
        fuzz_arl(&bytes);
    }
}
