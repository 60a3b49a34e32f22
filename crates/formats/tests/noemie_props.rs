//! Property tests: builder -> reader round trips, and no panic on random or mutated bytes.

use proptest::prelude::*;
use svoct_formats::noemie::{
    self, Invoice, InvoiceOutcome, Packaging, PartOutcome, PartState, RejectLine, RejectPart, RspParams,
    ViewItem, Want, Ymd,
};

fn params() -> RspParams {
    RspParams {
        sender_type: "CP".into(),
        sender_number: "751".into(),
        sender_program: "SIMAM".into(),
        recipient_type: "TP".into(),
        recipient_number: "10987654321".into(),
        file_id: "R00042".into(),
        created: Ymd::new(2026, 11, 26),
        flow_type: 'T',
        settlement_recipient: "10987654321".into(),
        accounting_date: Ymd::new(2026, 11, 26),
        transfer_label: "VIREMENT".into(),
        payer: "CPAM 75".into(),
    }
}

fn date() -> impl Strategy<Value = Ymd> {
    (2000u16..=2026, 1u8..=12, 1u8..=28).prop_map(|(y, m, d)| Ymd::new(y, m, d))
}

fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[A-Z0-9][A-Z0-9 .,'-]{{0,{}}}", max - 1))
        .unwrap()
        .prop_map(|s| s.trim_end().to_string())
}

fn part(amc: bool) -> impl Strategy<Value = PartOutcome> {
    (
        prop_oneof![
            Just(PartState::Paid),
            Just(PartState::Rejected),
            Just(PartState::Deferred),
            Just(PartState::NotProcessed)
        ],
        0u64..=99_999_999,
        -99_999_999i64..=99_999_999,
        "[0-9]{10}",
    )
        .prop_map(move |(state, requested_cents, paid_cents, n)| PartOutcome {
            state,
            requested_cents,
            paid_cents,
            amc_number: if amc { n } else { String::new() },
        })
}

fn outcome() -> impl Strategy<Value = InvoiceOutcome> {
    (
        "[0-9]{3}",
        date(),
        "[0-9A-Z]{1,9}",
        prop_oneof![Just('F'), Just('D')],
        proptest::option::of(date()),
        proptest::option::of(part(false)),
        proptest::option::of(part(true)),
        proptest::collection::vec(
            (
                "[A-Z0-9]{4}",
                text(86),
                prop_oneof![Just(RejectPart::Amo), Just(RejectPart::Amc)],
            ),
            0..3,
        ),
        proptest::collection::vec(text(128), 0..2),
    )
        .prop_map(
            |(
                lot_number,
                lot_date,
                invoice_number,
                invoice_type,
                billing_date,
                amo,
                amc,
                rejects,
                comments,
            )| {
                InvoiceOutcome {
                    lot_number,
                    lot_date,
                    invoice_number,
                    invoice_type,
                    billing_date,
                    amo,
                    amc,
                    rejects: rejects
                        .into_iter()
                        .map(|(code, label, part)| RejectLine { code, label, part })
                        .collect(),
                    comments,
                }
            },
        )
}

/// Read an invoice of the report back into the builder's terms.
fn back(i: &Invoice) -> InvoiceOutcome {
    let part = |p: &Option<noemie::Part>| {
        p.as_ref().map(|p| PartOutcome {
            state: p.state,
            requested_cents: p.requested_cents,
            paid_cents: p.paid_cents,
            amc_number: p.amc_number.clone().unwrap_or_default(),
        })
    };
    InvoiceOutcome {
        lot_number: i.lot_number.clone(),
        lot_date: i.lot_date.ymd().unwrap(),
        invoice_number: i.invoice_number.clone(),
        invoice_type: i.invoice_type.chars().next().unwrap(),
        billing_date: i.billing_date.ymd(),
        amo: part(&i.amo),
        amc: part(&i.amc),
        rejects: i
            .rejects
            .iter()
            .map(|r| RejectLine {
                code: r.code.clone(),
                label: r.label.clone(),
                part: if r.part.as_deref() == Some("C") {
                    RejectPart::Amc
                } else {
                    RejectPart::Amo
                },
            })
            .collect(),
        comments: i.comments.clone(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn build_then_read_gives_back_the_outcomes(outcomes in proptest::collection::vec(outcome(), 0..40)) {
        for packaging in [Packaging::Lines, Packaging::Blocks] {
            let bytes = noemie::build_580_packaged(&params(), &outcomes, packaging).unwrap();
            let n = noemie::parse(&bytes).unwrap();
            prop_assert!(n.findings.is_empty(), "{:#?}", n.findings);
            prop_assert_eq!(n.packaging, packaging);
            let r = n.report();
            prop_assert_eq!(r.reference.as_str(), "580");
            let got: Vec<InvoiceOutcome> = r.invoices.iter().map(back).collect();
            prop_assert_eq!(&got, &outcomes);
            let paid: i64 = outcomes
                .iter()
                .flat_map(|o| [&o.amo, &o.amc])
                .flatten()
                .map(|p| p.paid_cents)
                .sum();
            prop_assert_eq!(r.payments[0].amount_cents, paid);
            prop_assert_eq!(r.file_summaries[0].amount_cents, paid);
        }
    }

    /// The views `svoct inspect` writes (text borrowed from the input) serialise exactly as the
    /// owned views, on built files and on the same files with bytes changed (Latin-1 letters,
    /// NULs, spaces and digits), for every combination of wanted items.
    #[test]
    fn borrowed_views_serialise_as_the_owned_ones(
        outcomes in proptest::collection::vec(outcome(), 1..8),
        blocks in any::<bool>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(),
            prop_oneof![Just(0u8), Just(0xC9u8), Just(0xE9u8), Just(b' '), Just(b'7'), any::<u8>()]), 0..6),
    ) {
        let packaging = if blocks { Packaging::Blocks } else { Packaging::Lines };
        let mut bytes = noemie::build_580_packaged(&params(), &outcomes, packaging).unwrap();
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        let Ok(n) = noemie::parse(&bytes) else { return Ok(()) };
        for (invoices, payments) in [(true, true), (true, false), (false, true)] {
            let want = Want { invoices, payments };
            let mut owned = Vec::new();
            n.walk_view(want, |i| owned.push(match i {
                ViewItem::Payment(p) => serde_json::to_value(p).unwrap(),
                ViewItem::Invoice(i) => serde_json::to_value(i).unwrap(),
            }));
            let mut borrowed = Vec::new();
            n.walk_view_ref(want, |i| borrowed.push(match i {
                ViewItem::Payment(p) => serde_json::to_value(p).unwrap(),
                ViewItem::Invoice(i) => serde_json::to_value(i).unwrap(),
            }));
            prop_assert_eq!(owned, borrowed);
        }
    }

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        noemie::fuzz_noemie(&data);
    }

    #[test]
    fn random_bytes_after_a_header_never_panic(tail in proptest::collection::vec(
        prop_oneof![Just(b'@'), Just(b'0'), Just(b'9'), Just(b'\r'), Just(b'\n'), Just(0u8), any::<u8>()], 0..800)) {
        let mut data = b"0128000".to_vec();
        data.extend(std::iter::repeat_n(b' ', 125));
        data.extend_from_slice(b"\r\n");
        data.extend_from_slice(&tail);
        noemie::fuzz_noemie(&data);
        let mut blocks = b"000".to_vec();
        blocks.extend(std::iter::repeat_n(b' ', 125));
        blocks.extend_from_slice(&tail);
        noemie::fuzz_noemie(&blocks);
    }

    #[test]
    fn mutated_files_never_panic(
        outcomes in proptest::collection::vec(outcome(), 1..6),
        blocks in any::<bool>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let packaging = if blocks { Packaging::Blocks } else { Packaging::Lines };
        let mut bytes = noemie::build_580_packaged(&params(), &outcomes, packaging).unwrap();
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        if let Some(c) = cut {
            bytes.truncate(c.index(bytes.len()));
        }
        noemie::fuzz_noemie(&bytes);
    }
}
