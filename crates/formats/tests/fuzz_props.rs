//! "Random and mutated input never panics", a few thousand cases per parser, on stable Rust.
//!
//! The owners' property tests (noemie_props, arl_format, art_text, loi_files) run 128 to 256
//! cases; these run 3000, with structural mutations (insert, delete, duplicate, truncate) of
//! valid files on top of byte flips, so they reach deeper into the record loops. They call the
//! same `fuzz_*` entry points as the cargo-fuzz targets (fuzz/fuzz_targets/), and also replay
//! every input committed under fuzz/regressions/<target>/.
//!
//! With `SVOCT_FUZZ_SEEDS=<dir>` set, `valid_samples_parse` also writes the valid samples to
//! `<dir>/<target>/` (what fuzz/make-seeds.sh uses).

use proptest::prelude::*;
use std::path::Path;
use svoct_formats::arl::{Arl, ArlReason, ArlStatus, Stamp};
use svoct_formats::art::{Art, ArtAmc, ArtLot, FileStatus, LotStatus};
use svoct_formats::loi::{DateTime, DloiRequest, Increment};
use svoct_formats::noemie::{
    self, InvoiceOutcome, PartOutcome, PartState, RejectLine, RejectPart, RspParams, Ymd,
};
use svoct_formats::{arl, art, loi};
use svoct_testkit::fuzz::{self, Edit, mutate, replay};

const CASES: u32 = 3000;

fn stamp() -> Stamp {
    Stamp {
        date: Ymd::new(2026, 11, 26),
        hour: 6,
        minute: 55,
    }
}

fn noemie_580() -> Vec<u8> {
    let params = RspParams {
        sender_type: "CP".into(),
        sender_number: "931".into(),
        sender_program: "FUZZ".into(),
        recipient_type: "TP".into(),
        recipient_number: "20000000001".into(),
        file_id: "R00777".into(),
        created: Ymd::new(2026, 11, 26),
        flow_type: 'T',
        settlement_recipient: "20000000001".into(),
        accounting_date: Ymd::new(2026, 11, 27),
        transfer_label: "VIREMENT FUZZ".into(),
        payer: "CPAM 93".into(),
    };
    let part = |state, requested_cents, paid_cents, amc: &str| PartOutcome {
        state,
        requested_cents,
        paid_cents,
        amc_number: amc.into(),
    };
    let invoices = vec![
        InvoiceOutcome {
            lot_number: "001".into(),
            lot_date: Ymd::new(2026, 11, 20),
            invoice_number: "000000001".into(),
            invoice_type: 'F',
            billing_date: Some(Ymd::new(2026, 11, 19)),
            amo: Some(part(PartState::Paid, 2500, 1750, "")),
            amc: Some(part(PartState::Rejected, 750, 0, "0123456789")),
            rejects: vec![RejectLine {
                code: "R042".into(),
                label: "DROITS AMC FERMES".into(),
                part: RejectPart::Amc,
            }],
            comments: vec!["COMMENTAIRE LIBRE".into()],
        },
        InvoiceOutcome {
            lot_number: "002".into(),
            lot_date: Ymd::new(2026, 11, 21),
            invoice_number: "000000002".into(),
            invoice_type: 'D',
            billing_date: None,
            amo: Some(part(PartState::Deferred, 9900, -120, "")),
            amc: None,
            rejects: vec![],
            comments: vec![],
        },
    ];
    match noemie::build_580(&params, &invoices) {
        Ok(b) => b,
        Err(e) => panic!("build_580 refused the seed: {e}"),
    }
}

fn arl_negative() -> Arl {
    Arl {
        sender_type: "CP".into(),
        sender_number: "00000000000931".into(),
        ps_number: "20000000001".into(),
        file_id: "F00777".into(),
        lot_number: 12,
        lot_date: Ymd::new(2026, 11, 20),
        issued: stamp(),
        status: ArlStatus::Negative,
        invoice_count: Some(3),
        lot_kind: "DRE".into(),
        reasons: vec![ArlReason {
            code: "E007".into(),
            label: "NORME DU LOT NON RECONNUE".into(),
        }],
    }
}

fn art_sample() -> Art {
    Art {
        oct_id: "OCT000000001".into(),
        ps_number: "20000000001".into(),
        received: stamp(),
        compostage: "2026112606550000007".into(),
        file_name: "F00777".into(),
        subject: "SV140700/20000000001/2026112606550000007/00003".into(),
        profile: "FACTURE/SV/K".into(),
        invoices: 3,
        file_status: FileStatus::Accepted,
        file_detail: String::new(),
        lots: vec![ArtLot {
            number: "012".into(),
            date: Some(Ymd::new(2026, 11, 20)),
            kind: "DRE".into(),
            invoices: 3,
            status: LotStatus::Refused,
            detail: "norme; inconnue: 100%".into(),
        }],
        amc: vec![ArtAmc {
            organisation: "0123456789".into(),
            invoices: 1,
            mailbox: "amc@fuzz.invalid".into(),
        }],
    }
}

fn at() -> DateTime {
    DateTime {
        year: 2026,
        month: 11,
        day: 26,
        hour: 6,
        minute: 55,
        second: 0,
    }
}

fn loi_request() -> DloiRequest {
    DloiRequest {
        ps_number: "20000000001".into(),
        version: 7,
        at: at(),
    }
}

fn loi_increment() -> Increment {
    Increment {
        from: 7,
        to: 8,
        at: at(),
        additions: vec!["1000000001".into(), "X2".into()],
        removals: vec!["1000000000".into()],
    }
}

/// Valid inputs per fuzz target name: the mutation bases and the cargo-fuzz seeds.
fn samples() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let build = |r: Result<Vec<u8>, String>| match r {
        Ok(b) => b,
        Err(e) => panic!("a builder refused its own sample: {e}"),
    };
    vec![
        ("noemie", "580.rsp", noemie_580()),
        (
            "arl",
            "negative.arl",
            build(arl_negative().build().map_err(|e| e.to_string())),
        ),
        (
            "arl",
            "positive.arl",
            build(
                Arl {
                    status: ArlStatus::Positive,
                    reasons: vec![],
                    lot_kind: "FSE".into(),
                    ..arl_negative()
                }
                .build()
                .map_err(|e| e.to_string()),
            ),
        ),
        (
            "art",
            "refused-lot.txt",
            build(
                art_sample()
                    .build()
                    .map(String::into_bytes)
                    .map_err(|e| e.to_string()),
            ),
        ),
        (
            "loi",
            "request.dloi",
            build(loi_request().build().map_err(|e| e.to_string())),
        ),
        (
            "loi",
            "increment.loi",
            build(loi_increment().build().map_err(|e| e.to_string())),
        ),
    ]
}

fn sample(target: &str) -> Vec<Vec<u8>> {
    samples()
        .into_iter()
        .filter(|(t, ..)| *t == target)
        .map(|(.., b)| b)
        .collect()
}

#[test]
fn valid_samples_parse() {
    let n = noemie::parse(&noemie_580()).expect("580 sample parses");
    assert_eq!(n.report().invoices.len(), 2);
    assert_eq!(Arl::parse(&sample("arl")[0]).expect("ARL parses"), arl_negative());
    assert_eq!(Art::parse(&sample("art")[0]).expect("ART parses"), art_sample());
    assert_eq!(
        DloiRequest::parse(&sample("loi")[0]).expect("dLOI parses"),
        loi_request()
    );
    assert_eq!(
        Increment::parse(&sample("loi")[1]).expect("LOI parses"),
        loi_increment()
    );
    if let Some(dir) = std::env::var_os("SVOCT_FUZZ_SEEDS") {
        for (target, name, bytes) in samples() {
            let d = Path::new(&dir).join(target);
            std::fs::create_dir_all(&d).expect("seed dir");
            std::fs::write(d.join(name), bytes).expect("seed file");
        }
    }
}

/// Inserted bytes favour the formats' separators.
fn edit() -> impl Strategy<Value = Edit> {
    fuzz::edit(b"\r\n;09 ", 300)
}

fn bases(target: &'static str) -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(sample(target))
}

#[test]
fn committed_regressions_never_panic() {
    let mut n = 0;
    n += replay("noemie", noemie::fuzz_noemie);
    n += replay("arl", arl::fuzz_arl);
    n += replay("art", art::fuzz_art);
    n += replay("loi", loi::fuzz_loi);
    n += replay("zone", |d| {
        svoct_formats::zone::fuzz_decode(d);
    });
    n += replay("b2", svoct_formats::b2::fuzz_parse);
    eprintln!("{n} committed regression inputs replayed");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn noemie_random_and_mutated_never_panic(
        random in prop::collection::vec(any::<u8>(), 0..800),
        base in bases("noemie"),
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        noemie::fuzz_noemie(&random);
        noemie::fuzz_noemie(&mutate(&base, &edits));
    }

    #[test]
    fn arl_random_and_mutated_never_panic(
        random in prop::collection::vec(any::<u8>(), 0..800),
        base in bases("arl"),
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        arl::fuzz_arl(&random);
        arl::fuzz_arl(&mutate(&base, &edits));
    }

    #[test]
    fn art_random_and_mutated_never_panic(
        random in prop::collection::vec(any::<u8>(), 0..800),
        base in bases("art"),
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        art::fuzz_art(&random);
        art::fuzz_art(&mutate(&base, &edits));
    }

    #[test]
    fn loi_random_and_mutated_never_panic(
        random in prop::collection::vec(any::<u8>(), 0..400),
        base in bases("loi"),
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        loi::fuzz_loi(&random);
        loi::fuzz_loi(&mutate(&base, &edits));
    }
}
