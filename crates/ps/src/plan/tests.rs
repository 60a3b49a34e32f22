use svoct_formats::b2::synth::{SynthParams, generate_bytes};

use super::*;
use crate::config::{Config, Direct};
use svoct_testkit::ps_config;

/// The test kit's PS configuration, with two direct routes.
fn base(mode: &str) -> String {
    ps_config::base(mode, "x.sqlite", 25) + ROUTES
}

const ROUTES: &str = r#"[direct.routes."100"]
mailbox = "cpam100@am.invalid"
certificate = "cpam100.pem"
[direct.routes."101"]
mailbox = "cpam101@am.invalid"
"#;

fn config(mode: &str, option: Option<&str>) -> Config {
    let mut text = base(mode);
    if let Some(o) = option {
        text.push_str(&ps_config::oct_section("oct.pem", o));
        text.push_str("message_zone = \"HELLO OCT\"\n");
    }
    Config::parse(&text).unwrap()
}

fn params() -> PlanParams {
    PlanParams {
        date: "261126".into(),
        first_file_number: 41,
    }
}

fn lots(seed: u64, invoices: usize, destinations: usize, fse: bool, dre: bool) -> LotFile {
    let p = SynthParams {
        seed,
        invoices,
        destinations,
        fse,
        dre,
        lot_size: 7,
        ..SynthParams::default()
    };
    LotFile {
        name: format!("lots-{seed}.b2"),
        bytes: generate_bytes(&p).unwrap(),
    }
}

fn enriched(seed: u64, invoices: usize) -> LotFile {
    let p = SynthParams {
        seed,
        invoices,
        enriched: true,
        lot_size: 5,
        ..SynthParams::default()
    };
    LotFile {
        name: "enriched.b2".into(),
        bytes: generate_bytes(&p).unwrap(),
    }
}

/// Bytes `from..=to` (1-based, inclusive, as the layout pages write positions) of a record.
fn pos(record: &[u8], from: usize, to: usize) -> &str {
    std::str::from_utf8(&record[from - 1..to]).unwrap()
}

fn lot_bytes(files: &[LotFile]) -> Vec<Vec<u8>> {
    files
        .iter()
        .flat_map(|f| {
            b2::parse(&f.bytes)
                .unwrap()
                .lots()
                .iter()
                .map(|l| l.bytes().to_vec())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn direct_mode_one_file_per_destination_to_the_route() {
    let input = [lots(1, 30, 2, true, false)];
    let files = plan(&config("direct", None), &input, &params()).unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0].to, "cpam100@am.invalid");
    assert_eq!(files[0].certificate, Some(PathBuf::from("cpam100.pem")));
    assert_eq!(files[1].to, "cpam101@am.invalid");
    assert_eq!(files[1].certificate, None, "no certificate: sent in clear");
    assert!(files.iter().all(|f| !f.compress && f.kind == FileKind::Fse));
    assert_eq!(files[0].file_id, "000041");
    assert_eq!(files[1].file_id, "000042");
    let total: u32 = files.iter().map(PlannedFile::invoice_count).sum();
    assert_eq!(total, 30);

    // Each file is framed: 000, the lots byte for byte, 999; every input lot is in exactly one.
    let mut carried = Vec::new();
    for f in &files {
        assert_eq!(f.bytes.len() % 128, 0);
        assert_eq!(pos(&f.bytes[..128], 1, 3), "000");
        assert_eq!(pos(&f.bytes[f.bytes.len() - 128..], 1, 3), "999");
        assert_eq!(pos(&f.bytes[..128], 50, 55), f.file_id);
        let parsed = b2::parse(&f.bytes).unwrap();
        assert!(parsed.is_framed());
        assert!(b2::validate(&parsed).is_empty());
        assert_eq!(parsed.invoice_count(), f.invoices.len());
        assert_eq!(parsed.lots().len(), f.lots.len());
        carried.extend(parsed.lots().iter().map(|l| l.bytes().to_vec()));
    }
    let mut expected = lot_bytes(&input);
    expected.sort();
    carried.sort();
    assert_eq!(carried, expected);
}

#[test]
fn direct_mode_without_a_route_names_the_destination() {
    let input = [lots(2, 10, 3, true, false)];
    let e = plan(&config("direct", None), &input, &params()).unwrap_err();
    assert!(
        matches!(&e, PsError::NoRoute { organisme, .. } if organisme == "102"),
        "{e}"
    );
    assert!(e.to_string().contains("direct.routes.\"102\""), "{e}");
}

#[test]
fn oct_split_sends_the_direct_files_to_the_oct() {
    let input = [lots(3, 20, 2, true, true)];
    let direct = plan(&config("direct", None), &input, &params()).unwrap();
    let split = plan(&config("oct", Some("split")), &input, &params()).unwrap();
    assert_eq!(split.len(), direct.len());
    assert_eq!(split.len(), 4, "2 destinations x FSE/DRE");
    for (s, d) in split.iter().zip(&direct) {
        assert_eq!(s.bytes, d.bytes, "R3.1: the files are the direct-mode files");
        assert_eq!(s.kind, d.kind);
        assert_eq!(s.to, "oct@oct.invalid");
        assert_eq!(s.certificate, Some(PathBuf::from("oct.pem")));
        assert!(
            !s.compress,
            "annex 4.1.2: option 1 is the direct message, which is not compressed"
        );
    }
    assert!(split.iter().any(|f| f.kind == FileKind::Dre));
}

#[test]
fn oct_single_is_one_file_under_the_oct_header() {
    let input = [lots(4, 25, 3, true, false), lots(5, 6, 1, false, true)];
    let files = plan(&config("oct", Some("single")), &input, &params()).unwrap();
    assert_eq!(files.len(), 1);
    let f = &files[0];
    assert_eq!(f.to, "oct@oct.invalid");
    assert_eq!(f.kind, FileKind::Fse, "a mixed FSE/DRE file uses SV (R5.3)");
    assert_eq!(f.invoice_count(), 31);
    let h = &f.bytes[..128];
    let t = &f.bytes[f.bytes.len() - 128..];
    // formats.md §2: the OCT single-file header on the B2 000 record.
    assert_eq!(pos(h, 4, 5), "TP");
    assert_eq!(pos(h, 6, 19).trim_start_matches('0'), "123456789");
    assert_eq!(pos(h, 26, 27), "OT");
    assert_eq!(pos(h, 28, 41), "12345678900014");
    assert_eq!(pos(h, 48, 49), "TO");
    assert_eq!(pos(h, 50, 55), "000041");
    assert_eq!(pos(h, 56, 61), "261126");
    assert_eq!(pos(h, 92, 128).trim_end(), "HELLO OCT");
    let lot_count = lot_bytes(&input).len();
    assert_eq!(pos(t, 83, 85).parse::<usize>().unwrap(), lot_count);
    // The lots, in input order, byte for byte.
    let body: Vec<u8> = lot_bytes(&input).concat();
    assert_eq!(&f.bytes[128..f.bytes.len() - 128], &body[..]);

    let dre_only = plan(
        &config("oct", Some("single")),
        &[lots(6, 4, 1, false, true)],
        &params(),
    )
    .unwrap();
    // R5: the single file's envelope is `SV` / `FACTURE/SV` even with DRE lots only (its header
    // is the OCT's, not a direct-mode DRE file's).
    assert_eq!(dre_only.len(), 1);
    assert_eq!(dre_only[0].kind, FileKind::Fse);
    assert_eq!(pos(&dre_only[0].bytes[..128], 48, 49), "TO");
}

#[test]
fn with_option_enriched_dre_lots_travel_in_their_own_single_file() {
    let input = [enriched(7, 12), lots(8, 6, 1, false, true)];
    let files = plan(&config("oct", Some("enriched")), &input, &params()).unwrap();
    assert_eq!(files.len(), 2, "the enriched file, then the DRE single file");
    let kinds = |f: &PlannedFile| -> Vec<LotKind> {
        b2::parse(&f.bytes)
            .unwrap()
            .lots()
            .iter()
            .map(|l| l.kind())
            .collect()
    };
    assert!(
        kinds(&files[0]).iter().all(|k| *k == LotKind::Fse),
        "{:?}",
        kinds(&files[0])
    );
    assert_eq!(files[0].invoice_count(), 12);
    assert!(
        kinds(&files[1]).iter().all(|k| *k == LotKind::Dre),
        "{:?}",
        kinds(&files[1])
    );
    assert_eq!(files[1].invoice_count(), 6);
    for (f, id) in files.iter().zip(["000041", "000042"]) {
        let h = &f.bytes[..128];
        assert_eq!(pos(h, 48, 49), "TO");
        assert_eq!(pos(h, 26, 27), "OT");
        assert_eq!(pos(h, 50, 55), id);
        assert_eq!(f.kind, FileKind::Fse, "single files travel under FACTURE/SV");
    }
    // Option `single` keeps FSE and DRE together in one file (R3.2).
    let input = [lots(9, 6, 1, true, false), lots(8, 6, 1, false, true)];
    let files = plan(&config("oct", Some("single")), &input, &params()).unwrap();
    assert_eq!(files.len(), 1);
}

#[test]
fn enriched_fse_go_in_one_file_with_the_enriched_option_only() {
    let input = [enriched(7, 12)];
    let files = plan(&config("oct", Some("enriched")), &input, &params()).unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].invoice_count(), 12);
    assert_eq!(pos(&files[0].bytes[..128], 48, 49), "TO");

    for (mode, option) in [("oct", Some("single")), ("oct", Some("split")), ("direct", None)] {
        let e = plan(&config(mode, option), &input, &params()).unwrap_err();
        assert!(
            matches!(e, PsError::Rule { rule: "R3.3", .. }),
            "{mode} {option:?}: {e}"
        );
        assert!(e.to_string().contains("--option enriched"), "{e}");
    }
}

/// The first invoice header (type 2) of the first lot, as a byte offset into `bytes`.
fn first_invoice_offset(bytes: &[u8]) -> usize {
    b2::parse(bytes).unwrap().lots()[0].invoices()[0].offset()
}

#[test]
fn contract_99_with_third_party_payment_on_the_amc_part_is_refused() {
    let mut input = enriched(8, 3);
    let at = first_invoice_offset(&input.bytes);
    input.bytes[at + 114..at + 116].copy_from_slice(b"15");
    let e = plan(&config("oct", Some("enriched")), &[input], &params()).unwrap_err();
    match &e {
        PsError::Rule {
            rule, offset, reason, ..
        } => {
            assert_eq!(*rule, "R3.3");
            assert_eq!(*offset, at);
            assert!(reason.contains("\"15\""), "{reason}");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn contract_99_with_a_source_split_flag_is_refused() {
    let mut input = enriched(9, 3);
    let at = first_invoice_offset(&input.bytes);
    input.bytes[at + 45] = b'E';
    let e = plan(&config("oct", Some("enriched")), &[input], &params()).unwrap_err();
    assert!(matches!(e, PsError::Rule { rule: "R3.4", .. }), "{e}");
    assert!(e.to_string().contains("'E'"), "{e}");
}

#[test]
fn contract_99_with_a_dre_for_the_same_invoice_is_refused() {
    let fse = enriched(10, 3);
    let mut dre = lots(11, 2, 1, false, true);
    // Give the DRE's first invoice the number of the FSE's first (type 2 positions 27-35).
    let f = first_invoice_offset(&fse.bytes);
    let d = first_invoice_offset(&dre.bytes);
    let number = fse.bytes[f + 26..f + 35].to_vec();
    dre.bytes[d + 26..d + 35].copy_from_slice(&number);
    let e = plan(&config("oct", Some("enriched")), &[fse, dre], &params()).unwrap_err();
    assert!(matches!(e, PsError::Rule { rule: "R3.4", .. }), "{e}");
    assert!(e.to_string().contains("DRE for the same invoice"), "{e}");
}

#[test]
fn lots_of_another_ps_are_refused() {
    let p = SynthParams {
        ps_number: "987654321".into(),
        ..SynthParams::default()
    };
    let input = LotFile {
        name: "other.b2".into(),
        bytes: generate_bytes(&p).unwrap(),
    };
    let e = plan(&config("direct", None), &[input], &params()).unwrap_err();
    assert!(
        matches!(&e, PsError::WrongSender { found, expected, .. } if found == "987654321" && expected == "123456789"),
        "{e}"
    );
}

#[test]
fn broken_input_names_the_file_and_offset() {
    let mut input = lots(12, 3, 1, true, false);
    input.bytes.truncate(input.bytes.len() - 5);
    let e = plan(&config("direct", None), &[input], &params()).unwrap_err();
    let s = e.to_string();
    assert!(s.starts_with("lots-12.b2: "), "{s}");
    assert!(s.contains("byte offset"), "{s}");

    let mut input = lots(13, 3, 1, true, false);
    // Break an amount digit in the first invoice total: a validation finding.
    let inv = b2::parse(&input.bytes).unwrap().lots()[0].invoices()[0]
        .total()
        .as_ptr() as usize
        - input.bytes.as_ptr() as usize;
    input.bytes[inv + 60] = b'X';
    let e = plan(&config("direct", None), &[input], &params()).unwrap_err();
    assert!(matches!(e, PsError::Invalid { .. }), "{e}");

    assert!(matches!(
        plan(&config("direct", None), &[], &params()),
        Err(PsError::NoLots)
    ));
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Whatever the lots, in every mode and option: each input lot travels exactly once,
        /// byte for byte, every file is a valid framed B2 file, and the invoice counts add up.
        #[test]
        fn every_lot_travels_exactly_once(
            seed in 0u64..1000,
            invoices in 1usize..120,
            destinations in 1usize..3,
            dre in any::<bool>(),
            lot_size in 1usize..40,
            mode in 0usize..4,
        ) {
            let (m, o) = [("direct", None), ("oct", Some("split")), ("oct", Some("single")),
                ("oct", Some("enriched"))][mode];
            let input = [LotFile {
                name: "p.b2".into(),
                bytes: generate_bytes(&SynthParams {
                    seed,
                    invoices,
                    destinations,
                    fse: true,
                    dre,
                    lot_size,
                    ..SynthParams::default()
                })
                .unwrap(),
            }];
            let files = plan(&config(m, o), &input, &params()).unwrap();
            let mut carried = Vec::new();
            let mut total = 0usize;
            for f in &files {
                let parsed = b2::parse(&f.bytes).unwrap();
                prop_assert!(parsed.is_framed());
                prop_assert!(b2::validate(&parsed).is_empty());
                prop_assert_eq!(parsed.invoice_count(), f.invoices.len());
                total += f.invoices.len();
                carried.extend(parsed.lots().iter().map(|l| l.bytes().to_vec()));
            }
            let mut expected = lot_bytes(&input);
            prop_assert_eq!(total, invoices);
            if o == Some("single") {
                prop_assert_eq!(files.len(), 1);
                prop_assert_eq!(&carried, &expected, "input order kept");
            }
            if o == Some("enriched") {
                // FSE lots in the enriched file, DRE lots in a second single file, each in
                // input order.
                let input_lots = b2::parse(&input[0].bytes).unwrap();
                let has_dre = input_lots.lots().iter().any(|l| l.kind() == b2::LotKind::Dre);
                prop_assert_eq!(files.len(), 1 + usize::from(has_dre));
                let by_kind: Vec<Vec<u8>> = [b2::LotKind::Fse, b2::LotKind::Dre]
                    .iter()
                    .flat_map(|k| input_lots.lots().iter().filter(move |l| l.kind() == *k))
                    .map(|l| l.bytes().to_vec())
                    .collect();
                prop_assert_eq!(&carried, &by_kind);
            }
            expected.sort();
            carried.sort();
            prop_assert_eq!(carried, expected);
        }
    }
}

#[test]
fn the_same_lots_twice_in_one_sending_are_refused() {
    let a = lots(20, 3, 1, true, false);
    let mut b = a.clone();
    b.name = "copy.b2".into();
    let e = plan(&config("direct", None), &[a, b], &params()).unwrap_err();
    let s = e.to_string();
    assert!(
        s.starts_with("copy.b2: ") && s.contains("also in lots-20.b2"),
        "{s}"
    );
}

fn enriched_over(seed: u64, invoices: usize, destinations: usize) -> LotFile {
    let p = SynthParams {
        seed,
        invoices,
        destinations,
        enriched: true,
        lot_size: 5,
        ..SynthParams::default()
    };
    LotFile {
        name: format!("enriched-{seed}.b2"),
        bytes: generate_bytes(&p).unwrap(),
    }
}

/// Annex 4.3.2, second form: "regroupement de lot et mise en fichier par caisse destinataire".
#[test]
fn enriched_fse_per_destination_are_direct_files_addressed_to_the_oct() {
    let text = base("oct")
        + &ps_config::oct_section("oct.pem", "enriched")
        + "enriched_files = \"per-destination\"\n";
    let cfg = Config::parse(&text).unwrap();
    let input = [enriched_over(21, 24, 3)];
    let files = plan(&cfg, &input, &params()).unwrap();
    assert_eq!(files.len(), 3, "one file per destination");
    let mut carried = Vec::new();
    let mut organismes = Vec::new();
    for f in &files {
        assert_eq!(f.to, "oct@oct.invalid");
        assert_eq!(f.certificate, Some(PathBuf::from("oct.pem")));
        assert!(f.compress, "the OCT-bound default for enriched files");
        let h = &f.bytes[..128];
        // Framed as in direct mode (b2.md "Direct files"), not as the OCT single file.
        assert_eq!(pos(h, 26, 27), "CA");
        assert_eq!(pos(h, 48, 49), "SV");
        assert_eq!(pos(h, 50, 55), f.file_id);
        let parsed = b2::parse(&f.bytes).unwrap();
        assert!(b2::validate(&parsed).is_empty());
        // Every lot of a file goes to the organisme its header names (positions 39-41 of 28-41).
        for lot in parsed.lots() {
            assert_eq!(lot.destination().organisme, pos(h, 39, 41));
            assert!(lot.invoices().iter().all(|i| i.contract_type() == "99"));
            carried.push(lot.bytes().to_vec());
        }
        organismes.push(pos(h, 39, 41).to_owned());
    }
    organismes.sort();
    organismes.dedup();
    assert_eq!(organismes.len(), 3, "{organismes:?}");
    let mut expected = lot_bytes(&input);
    expected.sort();
    carried.sort();
    assert_eq!(carried, expected, "every lot exactly once, byte for byte");
}

/// Annex 7.1.1 / 4.2.2.1: the subject's exercice is the file's sender number, in every mode.
#[test]
fn the_exercice_is_the_sender_number_of_each_file() {
    let cases = [
        (config("direct", None), [lots(31, 12, 2, true, true)]),
        (config("oct", Some("split")), [lots(32, 12, 2, true, true)]),
        (config("oct", Some("single")), [lots(33, 12, 2, true, true)]),
        (config("oct", Some("enriched")), [enriched(34, 6)]),
    ];
    for (cfg, input) in &cases {
        let routed = Config {
            direct: Direct {
                routes: (100..102)
                    .map(|o| {
                        (
                            o.to_string(),
                            crate::config::DirectRoute {
                                mailbox: format!("cpam{o}@am.invalid"),
                                certificate: None,
                            },
                        )
                    })
                    .collect(),
                ..cfg.direct.clone()
            },
            ..cfg.clone()
        };
        for f in plan(&routed, input, &params()).unwrap() {
            assert_eq!(f.exercice, pos(&f.bytes[..128], 6, 19));
            assert_eq!(f.exercice, "00000123456789");
        }
    }
}
