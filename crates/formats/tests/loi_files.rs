//! dLOI request and LOI increment files (provisional formats) and the in-memory list.

use proptest::prelude::*;
use std::collections::BTreeSet;
use svoct_formats::loi::{
    Applied, ApplyError, DateTime, DloiRequest, Increment, LoiError, LoiState, fuzz_loi,
};

fn at() -> DateTime {
    DateTime {
        year: 2026,
        month: 11,
        day: 26,
        hour: 7,
        minute: 30,
        second: 5,
    }
}

const REQUEST: &str = "DLOI;1\r\nPS;10987654321\r\nVERSION;41\r\nDATE;20261126073005\r\nFIN\r\n";

const INCREMENT: &str = "LOI;1\r\nDE;41\r\nA;42\r\nDATE;20261126073005\r\n\
AJOUT;1234567890\r\nAJOUT;ABC123\r\nRETRAIT;999\r\nFIN;2;1\r\n";

fn inc(from: u64, to: u64, add: &[&str], del: &[&str]) -> Increment {
    Increment {
        from,
        to,
        at: at(),
        additions: add.iter().map(|s| s.to_string()).collect(),
        removals: del.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn request_hand_written_parses_and_builds() {
    let r = DloiRequest {
        ps_number: "10987654321".into(),
        version: 41,
        at: at(),
    };
    assert_eq!(DloiRequest::parse(REQUEST.as_bytes()).unwrap(), r);
    assert_eq!(String::from_utf8(r.build().unwrap()).unwrap(), REQUEST);
    assert_eq!(
        DloiRequest::parse(REQUEST.replace("\r\n", "\n").as_bytes()).unwrap(),
        r
    );
}

#[test]
fn increment_hand_written_parses_and_builds() {
    let i = inc(41, 42, &["1234567890", "ABC123"], &["999"]);
    assert_eq!(Increment::parse(INCREMENT.as_bytes()).unwrap(), i);
    assert_eq!(String::from_utf8(i.build().unwrap()).unwrap(), INCREMENT);
}

#[test]
fn parse_errors_name_line_and_field() {
    let e = Increment::parse(INCREMENT.replace("FIN;2;1", "FIN;2;2").as_bytes()).unwrap_err();
    assert_eq!(
        e,
        LoiError::Count {
            stated_add: 2,
            stated_del: 2,
            add: 2,
            del: 1
        }
    );
    let e = Increment::parse(INCREMENT.replace("RETRAIT;999", "RETRAIT;ABC123").as_bytes()).unwrap_err();
    assert_eq!(
        e,
        LoiError::Duplicate {
            line: 7,
            card: "ABC123".into()
        }
    );
    let e = Increment::parse(INCREMENT.replace("A;42", "A;41").as_bytes()).unwrap_err();
    assert!(
        matches!(
            e,
            LoiError::Field {
                line: 3,
                field: "to",
                ..
            }
        ),
        "{e:?}"
    );
    let e = Increment::parse(INCREMENT.replace("AJOUT;ABC123", "AJOUT;abc").as_bytes()).unwrap_err();
    assert!(
        matches!(
            e,
            LoiError::Field {
                line: 6,
                field: "card",
                ..
            }
        ),
        "{e:?}"
    );
    let e = Increment::parse(INCREMENT.replace("FIN;2;1\r\n", "").as_bytes()).unwrap_err();
    assert_eq!(e, LoiError::Truncated);
    let e = Increment::parse(
        INCREMENT
            .replace("DATE;20261126073005", "DATE;20261326073005")
            .as_bytes(),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            LoiError::Field {
                line: 4,
                field: "date",
                ..
            }
        ),
        "{e:?}"
    );
    let e = Increment::parse(b"LOI;1\r\nDE;1\xe9\r\n").unwrap_err();
    assert_eq!(e, LoiError::NotText { offset: 11 });
    let e = Increment::parse(format!("{INCREMENT}extra\r\n").as_bytes()).unwrap_err();
    assert!(matches!(e, LoiError::Unexpected { line: 9, .. }), "{e:?}");
    let e = DloiRequest::parse(REQUEST.replace("VERSION;41", "VERSION;-1").as_bytes()).unwrap_err();
    assert!(
        matches!(
            e,
            LoiError::Field {
                line: 3,
                field: "version",
                ..
            }
        ),
        "{e:?}"
    );
    let e = DloiRequest::parse(b"DLOI;2\r\n").unwrap_err();
    assert!(
        matches!(
            e,
            LoiError::Field {
                line: 1,
                field: "format",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn apply_in_order_replay_gap_conflict() {
    let mut s = LoiState::new();
    let i1 = inc(0, 1, &["A1", "B2"], &[]);
    let i2 = inc(1, 2, &["C3"], &["A1", "ZZ"]);
    assert_eq!(
        s.apply(&i1).unwrap(),
        Applied::Applied {
            from: 0,
            to: 1,
            added: 2,
            removed: 0,
            already_listed: 0,
            not_listed: 0
        }
    );
    assert_eq!(
        s.apply(&i2).unwrap(),
        Applied::Applied {
            from: 1,
            to: 2,
            added: 1,
            removed: 1,
            already_listed: 0,
            not_listed: 1
        }
    );
    assert_eq!(s.version, 2);
    assert!(s.is_opposed("B2") && s.is_opposed("C3") && !s.is_opposed("A1"));
    let before = s.clone();
    // Re-applying either increment is a reported no-op.
    assert_eq!(s.apply(&i2).unwrap(), Applied::AlreadyApplied { from: 1, to: 2 });
    assert_eq!(s.apply(&i1).unwrap(), Applied::AlreadyApplied { from: 0, to: 1 });
    assert_eq!(s, before);
    // A gap is refused.
    assert_eq!(
        s.apply(&inc(3, 4, &["D4"], &[])).unwrap_err(),
        ApplyError::Gap { current: 2, from: 3 }
    );
    // Another increment for an applied range is a conflict; one spanning it is stale.
    assert_eq!(
        s.apply(&inc(1, 2, &["X"], &[])).unwrap_err(),
        ApplyError::Conflict { from: 1, to: 2 }
    );
    assert_eq!(
        s.apply(&inc(0, 2, &[], &[])).unwrap_err(),
        ApplyError::Stale {
            current: 2,
            from: 0,
            to: 2
        }
    );
    assert_eq!(s, before, "refused increments leave the list unchanged");
    // The next one applies; a multi-version increment is fine.
    assert!(matches!(
        s.apply(&inc(2, 5, &["A1"], &[])).unwrap(),
        Applied::Applied { to: 5, .. }
    ));
    assert_eq!(s.version, 5);
}

#[test]
fn digest_ignores_line_ends_but_not_content() {
    let a = Increment::parse(INCREMENT.as_bytes()).unwrap();
    let b = Increment::parse(INCREMENT.replace("\r\n", "\n").as_bytes()).unwrap();
    assert_eq!(a.digest(), b.digest());
    let c = Increment::parse(INCREMENT.replace("ABC123", "ABC124").as_bytes()).unwrap();
    assert_ne!(a.digest(), c.digest());
}

fn card() -> impl Strategy<Value = String> {
    "[0-9A-Z]{1,24}"
}

proptest! {
    #[test]
    fn increment_round_trip(
        from in 0u64..1_000_000,
        span in 1u64..10,
        cards in proptest::collection::btree_set(card(), 0..30),
        split in any::<prop::sample::Index>(),
    ) {
        let cards: Vec<String> = cards.into_iter().collect();
        let k = if cards.is_empty() { 0 } else { split.index(cards.len() + 1) };
        let i = Increment {
            from,
            to: from + span,
            at: at(),
            additions: cards[..k].to_vec(),
            removals: cards[k..].to_vec(),
        };
        prop_assert_eq!(Increment::parse(&i.build().unwrap()).unwrap(), i);
    }

    #[test]
    fn request_round_trip(ps in "[0-9A-Za-z]{1,14}", version in 0u64..=999_999_999_999) {
        let r = DloiRequest { ps_number: ps, version, at: at() };
        prop_assert_eq!(DloiRequest::parse(&r.build().unwrap()).unwrap(), r);
    }

    /// The list equals a simple set model after any in-order sequence of increments.
    #[test]
    fn state_matches_a_set_model(steps in proptest::collection::vec(
        (proptest::collection::btree_set("[A-E][0-9]", 0..5), proptest::collection::btree_set("[A-E][0-9]", 0..5)), 1..12)) {
        let mut s = LoiState::new();
        let mut model = BTreeSet::new();
        for (v, (add, del)) in steps.iter().enumerate() {
            let del: Vec<String> = del.difference(add).cloned().collect();
            let i = Increment {
                from: v as u64,
                to: v as u64 + 1,
                at: at(),
                additions: add.iter().cloned().collect(),
                removals: del.clone(),
            };
            s.apply(&i).unwrap();
            model.extend(add.iter().cloned());
            for d in &del {
                model.remove(d);
            }
            prop_assert_eq!(s.apply(&i).unwrap(), Applied::AlreadyApplied { from: v as u64, to: v as u64 + 1 });
        }
        prop_assert_eq!(&s.cards, &model);
        prop_assert_eq!(s.version, steps.len() as u64);
    }

    #[test]
    fn random_and_mutated_files_never_panic(
        data in proptest::collection::vec(any::<u8>(), 0..300),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..5),
    ) {
        fuzz_loi(&data);
        for base in [INCREMENT, REQUEST] {
            let mut b = base.as_bytes().to_vec();
            for (at, v) in &edits {
                let i = at.index(b.len());
                b[i] = *v;
            }
            fuzz_loi(&b);
        }
    }
}
