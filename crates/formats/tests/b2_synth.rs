//! The synthetic generator produces lots that parse and validate clean, deterministically.

use svoct_formats::b2::synth::{SynthParams, generate_bytes, generate_single_file};
use svoct_formats::b2::{LotKind, SingleFileParams, parse, split_by_destination, validate};

fn single() -> SingleFileParams {
    SingleFileParams {
        sender_type: "TP".into(),
        oct_id: "123456789".into(),
        file_id: "F00001".into(),
        date: "261126".into(),
        message: "SYNTHETIC".into(),
    }
}

#[test]
fn default_lots_validate_clean() {
    let bytes = generate_bytes(&SynthParams::default()).unwrap();
    let input = parse(&bytes).unwrap();
    assert_eq!(input.lots().len(), 1);
    assert_eq!(input.invoice_count(), 10);
    let findings = validate(&input);
    assert!(findings.is_empty(), "{findings:#?}");
}

#[test]
fn mixed_enriched_file_validates_clean() {
    let p = SynthParams {
        seed: 7,
        invoices: 2500,
        fse: true,
        dre: true,
        destinations: 3,
        enriched: true,
        lot_size: 400,
        ..SynthParams::default()
    };
    let file = generate_single_file(&p, &single()).unwrap();
    let input = parse(&file).unwrap();
    assert!(input.is_framed());
    assert_eq!(input.invoice_count(), 2500);
    let findings = validate(&input);
    assert!(findings.is_empty(), "{:#?}", &findings[..findings.len().min(20)]);
    let groups = split_by_destination(&input);
    assert_eq!(groups.len(), 6);
    assert_eq!(groups.iter().filter(|g| g.kind == LotKind::Dre).count(), 3);
    assert_eq!(groups.iter().map(|g| g.invoices).sum::<usize>(), 2500);
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let p = SynthParams {
        invoices: 50,
        ..SynthParams::default()
    };
    let a = generate_bytes(&p).unwrap();
    assert_eq!(a, generate_bytes(&p).unwrap());
    let b = generate_bytes(&SynthParams { seed: 2, ..p }).unwrap();
    assert_ne!(a, b);
    assert_eq!(a.len() % 128, 0);
}

#[test]
fn many_acts_per_invoice_still_fit_the_lot_trailer() {
    let p = SynthParams {
        invoices: 300,
        max_acts: 99,
        lot_size: 999,
        ..SynthParams::default()
    };
    let bytes = generate_bytes(&p).unwrap();
    let input = parse(&bytes).unwrap();
    assert!(input.lots().iter().all(|l| l.invoice_count() <= 101));
    assert!(validate(&input).is_empty());
}

#[test]
fn oversized_requests_are_refused_before_allocating() {
    let p = SynthParams {
        invoices: usize::MAX,
        ..SynthParams::default()
    };
    assert!(matches!(
        generate_bytes(&p),
        Err(svoct_formats::b2::B2Error::TooMany { .. })
    ));
}
