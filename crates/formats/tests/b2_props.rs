//! Property tests: generated lots validate clean; single file then éclatement gives the lots back
//! byte for byte; no input makes parse/validate panic.

use proptest::prelude::*;
use svoct_formats::b2::synth::{SynthParams, generate_bytes};
use svoct_formats::b2::{
    DirectFileParams, SingleFileParams, build_direct_files, build_single_file, fuzz_parse, parse,
    split_by_destination, split_enriched, validate,
};

fn params() -> impl Strategy<Value = SynthParams> {
    (
        any::<u64>(),
        0usize..120,
        any::<bool>(),
        any::<bool>(),
        1usize..5,
        any::<bool>(),
        1usize..6,
        1usize..40,
    )
        .prop_map(
            |(seed, invoices, fse, dre, destinations, enriched, max_acts, lot_size)| SynthParams {
                seed,
                invoices,
                fse: fse || !dre,
                dre,
                destinations,
                enriched,
                max_acts,
                lot_size,
                ..SynthParams::default()
            },
        )
}

fn single(file_id: &str) -> SingleFileParams {
    SingleFileParams {
        sender_type: "TP".into(),
        oct_id: "12345678900017".into(),
        file_id: file_id.into(),
        date: "261126".into(),
        message: "PROPTEST".into(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn generated_lots_validate_clean(p in params()) {
        let bytes = generate_bytes(&p).unwrap();
        if p.invoices == 0 {
            prop_assert!(bytes.is_empty());
            return Ok(());
        }
        let input = parse(&bytes).unwrap();
        prop_assert_eq!(input.invoice_count(), p.invoices);
        prop_assert!(input.lots().iter().all(|l| l.invoice_count() <= p.lot_size));
        let findings = validate(&input);
        prop_assert!(findings.is_empty(), "{:?}", findings);
    }

    #[test]
    fn single_file_then_split_gives_the_lots_back(p in params()) {
        prop_assume!(p.invoices > 0);
        let bytes = generate_bytes(&p).unwrap();
        let lots = parse(&bytes).unwrap();
        let file = build_single_file(lots.lots(), &single("PT0001")).unwrap();
        prop_assert_eq!(file.len(), bytes.len() + 256);
        let input = parse(&file).unwrap();
        prop_assert!(validate(&input).is_empty());
        let groups = split_by_destination(&input);
        // Every lot lands in exactly one group, byte-identical, with its own destination.
        let mut seen = vec![false; lots.lots().len()];
        for g in &groups {
            for (i, bytes) in g.lot_indices.iter().zip(&g.lots) {
                prop_assert!(!seen[*i]);
                seen[*i] = true;
                prop_assert_eq!(*bytes, lots.lots()[*i].bytes());
                prop_assert_eq!(&lots.lots()[*i].destination(), &g.destination);
                prop_assert_eq!(lots.lots()[*i].kind(), g.kind);
            }
            // Lots inside a group keep input order.
            prop_assert!(g.lot_indices.windows(2).all(|w| w[0] < w[1]));
        }
        prop_assert!(seen.iter().all(|s| *s));
        // The slices point into the file itself (zero copy).
        let range = file.as_ptr_range();
        for g in &groups {
            for l in &g.lots {
                prop_assert!(range.contains(&l.as_ptr()));
            }
        }
        // Direct files: one per group, each a valid framed file holding that group's lots.
        let direct = build_direct_files(input.lots(), &DirectFileParams {
            sender_type: "TP".into(),
            recipient_type: "CA".into(),
            application: "SV".into(),
            first_file_number: 1,
            date: "261126".into(),
            message: String::new(),
        }).unwrap();
        prop_assert_eq!(direct.len(), groups.len());
        for (d, g) in direct.iter().zip(&groups) {
            let parsed = parse(&d.bytes).unwrap();
            prop_assert!(validate(&parsed).is_empty());
            let inner: Vec<&[u8]> = parsed.lots().iter().map(|l| l.bytes()).collect();
            prop_assert_eq!(&inner, &g.lots);
        }
    }

    #[test]
    fn any_byte_mutation_never_panics(p in params(), edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>()) {
        prop_assume!(p.invoices > 0);
        let mut bytes = build_single_file(parse(&generate_bytes(&p).unwrap()).unwrap().lots(), &single("MUT001")).unwrap();
        for (at, b) in edits {
            let i = at % bytes.len();
            bytes[i] = b;
        }
        fuzz_parse(&bytes);
        // Truncations and odd lengths too.
        let n = cut % (bytes.len() + 1);
        fuzz_parse(&bytes[..n]);
        // Structure-preserving mutations that keep the records' types: validate must report,
        // not panic, and split_enriched must not panic either.
        if let Ok(input) = parse(&bytes) {
            let _ = validate(&input);
            for lot in input.lots() {
                let _ = split_enriched(lot);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..1024)) {
        fuzz_parse(&data);
    }

    #[test]
    fn arbitrary_records_of_known_types_never_panic(
        types in prop::collection::vec(prop::sample::select(vec![b'1', b'2', b'3', b'4', b'5', b'6', b'0', b'9', b'7']), 1..30),
        fill in any::<u8>(),
    ) {
        let mut data = Vec::new();
        for t in types {
            let mut r = vec![fill; 128];
            r[0] = t;
            if t == b'0' { r[..3].copy_from_slice(b"000"); }
            if t == b'9' { r[..3].copy_from_slice(b"999"); }
            data.extend(r);
        }
        fuzz_parse(&data);
    }
}
