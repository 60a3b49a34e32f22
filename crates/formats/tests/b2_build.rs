//! The OCT single file (R3.2), direct files (R3.1) and the R8.3 split, checked field by field
//! against the spec positions, and by an independent reader written in Python.

use std::process::Command;

use svoct_formats::b2::synth::{SynthParams, generate_bytes, generate_single_file};
use svoct_formats::b2::{
    B2Error, DirectFileParams, LotKind, SingleFileParams, build_direct_files, build_single_file, parse,
    split_enriched, validate,
};

fn single() -> SingleFileParams {
    SingleFileParams {
        sender_type: "TP".into(),
        oct_id: "12345678900017".into(),
        file_id: "ABC123".into(),
        date: "261125".into(),
        message: "MESSAGE DU LOGICIEL".into(),
    }
}

fn s(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap()
}

#[test]
fn single_file_header_and_trailer_follow_r3_2() {
    let p = SynthParams {
        invoices: 30,
        fse: true,
        dre: true,
        destinations: 2,
        lot_size: 4,
        ..SynthParams::default()
    };
    let file = generate_single_file(&p, &single()).unwrap();
    let h = &file[..128];
    let t = &file[file.len() - 128..];
    // 000 by hand from formats.md §2 / b2-records.md.
    assert_eq!(s(&h[0..3]), "000");
    assert_eq!(s(&h[3..5]), "TP");
    assert_eq!(
        s(&h[5..19]),
        "00000123456789",
        "sender = the lots' PS number, zero-filled"
    );
    assert_eq!(s(&h[19..25]), "      ");
    assert_eq!(s(&h[25..27]), "OT");
    assert_eq!(s(&h[27..41]), "12345678900017");
    assert_eq!(s(&h[47..49]), "TO");
    assert_eq!(s(&h[49..55]), "ABC123");
    assert_eq!(s(&h[55..61]), "261125");
    assert_eq!(s(&h[61..65]), "SV14");
    assert_eq!(s(&h[65..67]), "B2");
    assert_eq!(s(&h[82..85]), "128");
    assert_eq!(s(&h[91..128]), format!("{:<37}", "MESSAGE DU LOGICIEL"));
    // 999.
    let records = file.len() / 128;
    // 30 invoices over FSE/DRE x 2 destinations = 4 groups of 7 or 8, lots of 4: 2 lots each.
    assert_eq!(s(&t[0..3]), "999");
    assert_eq!(s(&t[3..5]), "TP");
    assert_eq!(s(&t[5..19]), "00000123456789");
    assert_eq!(s(&t[25..27]), "OT");
    assert_eq!(s(&t[27..41]), "12345678900017");
    assert_eq!(s(&t[47..49]), "TO");
    assert_eq!(s(&t[49..55]), "ABC123");
    assert_eq!(
        s(&t[55..63]),
        format!("{records:08}"),
        "volume includes 000 and 999"
    );
    assert_eq!(s(&t[82..85]), "008");
    assert!(t[85..].iter().all(|&b| b == b' '));
    let input = parse(&file).unwrap();
    assert_eq!(input.lots().len(), 8);
    assert!(validate(&input).is_empty());
}

#[test]
fn builder_refuses_bad_parameters_naming_the_field() {
    let lots = generate_bytes(&SynthParams::default()).unwrap();
    let input = parse(&lots).unwrap();
    let mut p = single();
    p.file_id = "TOOLONG".into();
    let e = build_single_file(input.lots(), &p).unwrap_err();
    assert!(
        matches!(&e, B2Error::Field { source, .. } if source.field == "file_id"),
        "{e:?}"
    );
    let mut p = single();
    p.oct_id = "SIREN-ABC".into();
    let e = build_single_file(input.lots(), &p).unwrap_err();
    assert!(matches!(&e, B2Error::BadRecipient { .. }), "{e:?}");
    assert!(e.to_string().contains("recipient_number"), "{e}");
    assert_eq!(build_single_file(&[], &single()).unwrap_err(), B2Error::NoLots);
}

#[test]
fn too_many_lots_for_one_file() {
    let p = SynthParams {
        invoices: 1000,
        lot_size: 1,
        max_acts: 1,
        ..SynthParams::default()
    };
    let lots = generate_bytes(&p).unwrap();
    let input = parse(&lots).unwrap();
    assert_eq!(input.lots().len(), 1000);
    assert_eq!(
        build_single_file(input.lots(), &single()).unwrap_err(),
        B2Error::TooMany {
            what: "lots in one file",
            count: 1000,
            max: 999
        }
    );
    assert!(build_single_file(&input.lots()[..999], &single()).is_ok());
}

#[test]
fn direct_files_group_by_destination_and_kind() {
    let p = SynthParams {
        invoices: 12,
        fse: true,
        dre: true,
        destinations: 3,
        lot_size: 1,
        ..SynthParams::default()
    };
    let lots = generate_bytes(&p).unwrap();
    let input = parse(&lots).unwrap();
    let files = build_direct_files(
        input.lots(),
        &DirectFileParams {
            sender_type: "TP".into(),
            recipient_type: "CA".into(),
            application: "SV".into(),
            first_file_number: 41,
            date: "261126".into(),
            message: String::new(),
        },
    )
    .unwrap();
    assert_eq!(files.len(), 6);
    assert_eq!(files.iter().map(|f| f.lots).sum::<usize>(), 12);
    assert_eq!(files[0].file_id, "000041");
    assert_eq!(files[5].file_id, "000046");
    assert_eq!(files.iter().filter(|f| f.kind == LotKind::Dre).count(), 3);
    for f in &files {
        let h = &f.bytes[..128];
        assert_eq!(s(&h[49..55]), f.file_id);
        assert_eq!(s(&h[25..27]), "CA");
        let d = &f.destination;
        // Recipient = pivot régime + caisse + organisme, zero-filled to 14.
        assert_eq!(
            s(&h[27..41]),
            format!("000000{}{}{}", d.regime, d.caisse, d.organisme)
        );
        let parsed = parse(&f.bytes).unwrap();
        assert!(validate(&parsed).is_empty());
        assert!(
            parsed
                .lots()
                .iter()
                .all(|l| l.destination() == *d && l.kind() == f.kind)
        );
    }
}

#[test]
fn r8_3_marks_only_position_90_of_split_invoices_and_groups_amc_data() {
    let p = SynthParams {
        invoices: 40,
        enriched: true,
        ..SynthParams::default()
    };
    let bytes = generate_bytes(&p).unwrap();
    let input = parse(&bytes).unwrap();
    let lot = &input.lots()[0];
    let split = split_enriched(lot).unwrap();
    assert_eq!(split.marked, 40);
    assert_eq!(split.amo_lot.len(), lot.bytes().len());
    // Exactly one byte differs per invoice: type 5, position 90, now `A`.
    let diffs: Vec<usize> = lot
        .bytes()
        .iter()
        .zip(&split.amo_lot)
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, _)| i)
        .collect();
    let expected: Vec<usize> = lot
        .invoices()
        .iter()
        .map(|inv| inv.offset() + inv.bytes().len() - 128 + 89)
        .collect();
    assert_eq!(diffs, expected);
    assert!(expected.iter().all(|&i| split.amo_lot[i] == b'A'));
    // Seal zones untouched (they are among the unchanged bytes), and the AMO lot still validates.
    let amo = parse(&split.amo_lot).unwrap();
    assert!(validate(&amo).is_empty());
    assert!(amo.lots()[0].invoices().iter().all(|i| i.split_by_oct()));
    // AMC data: grouped by AMC number, amounts carried over.
    let n: usize = split.amc.iter().map(|g| g.invoices.len()).sum();
    assert_eq!(n, 40);
    for g in &split.amc {
        for i in &g.invoices {
            let inv = lot.invoices().iter().find(|x| x.offset() == i.offset).unwrap();
            assert_eq!(inv.amc_number(), g.amc_number);
            assert_eq!(i.total_amc, inv.total_amc().unwrap());
            assert!(i.total_amc > 0);
            assert_eq!(i.bytes, inv.bytes());
            let m = i.amc_record.expect("2M record");
            assert_eq!(m[35], b'M');
            assert_eq!(&m[36..46], g.amc_number.as_bytes());
        }
    }
    // Splitting twice is refused, naming the record and field.
    let again = split_enriched(&amo.lots()[0]).unwrap_err();
    assert!(
        matches!(
            again,
            B2Error::NotEnrichable {
                field: "oct_split",
                ..
            }
        ),
        "{again:?}"
    );
}

#[test]
fn r8_3_leaves_plain_fse_alone_and_refuses_dre_and_bad_settlement() {
    let bytes = generate_bytes(&SynthParams {
        invoices: 5,
        ..SynthParams::default()
    })
    .unwrap();
    let input = parse(&bytes).unwrap();
    let split = split_enriched(&input.lots()[0]).unwrap();
    assert_eq!((split.marked, split.amc.len()), (0, 0));
    assert_eq!(split.amo_lot, input.lots()[0].bytes());

    let bytes = generate_bytes(&SynthParams {
        invoices: 5,
        fse: false,
        dre: true,
        ..SynthParams::default()
    })
    .unwrap();
    let input = parse(&bytes).unwrap();
    assert!(matches!(
        split_enriched(&input.lots()[0]),
        Err(B2Error::NotEnrichable {
            record: 0,
            field: "norm_version",
            ..
        })
    ));

    let mut bytes = generate_bytes(&SynthParams {
        invoices: 2,
        enriched: true,
        ..SynthParams::default()
    })
    .unwrap();
    let second = parse(&bytes).unwrap().lots()[0].invoices()[1].offset();
    bytes[second + 114..second + 116].copy_from_slice(b"15");
    let input = parse(&bytes).unwrap();
    let e = split_enriched(&input.lots()[0]).unwrap_err();
    assert_eq!(e.record(), Some(second / 128));
    assert!(matches!(
        e,
        B2Error::NotEnrichable {
            field: "settlement",
            ..
        }
    ));
    let f = validate(&input);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(
        (f[0].code, f[0].offset),
        ("invoice.enriched_settlement", second + 114)
    );
}

/// An independent reader: Python, positions typed in from b2-records.md, recomputes the file
/// trailer, lot trailers and invoice totals of a generated single file.
#[test]
fn python_reader_agrees_with_the_generated_file() {
    let p = SynthParams {
        seed: 99,
        invoices: 700,
        fse: true,
        dre: true,
        destinations: 4,
        enriched: true,
        lot_size: 150,
        ..SynthParams::default()
    };
    let file = generate_single_file(&p, &single()).unwrap();
    let path = std::env::temp_dir().join(format!("svoct-b2-{}.b2", std::process::id()));
    std::fs::write(&path, &file).unwrap();
    let script = r#"
import sys
data = open(sys.argv[1], 'rb').read()
assert len(data) % 128 == 0
recs = [data[i:i+128] for i in range(0, len(data), 128)]
f = lambda r, a, b: r[a-1:b].decode('ascii')
n = lambda r, a, b: int(f(r, a, b))
assert f(recs[0], 1, 3) == '000' and f(recs[-1], 1, 3) == '999'
assert f(recs[0], 48, 49) == 'TO' and f(recs[0], 26, 27) == 'OT'
assert n(recs[-1], 56, 63) == len(recs), (n(recs[-1], 56, 63), len(recs))
lots = 0; invoices = 0
lot = None
for r in recs[1:-1]:
    t = r[0:1]
    assert len(r) == 128
    if t == b'1':
        lot = dict(inv=0, acts=0, t2=0, billed=0, amo=0, amc=0, num=f(r, 20, 22)); lots += 1
    elif t == b'2':
        lot['t2'] += 1
        if r[35:36] == b' ':
            lot['inv'] += 1; inv = dict(acts=0, billed=0, amo=0, amc=0)
    elif t == b'4':
        lot['acts'] += 1; inv['acts'] += 1
        inv['billed'] += n(r, 113, 119); inv['amo'] += n(r, 106, 112); inv['amc'] += n(r, 122, 128)
    elif t == b'5':
        assert n(r, 39, 41) == inv['acts']
        assert n(r, 58, 65) == inv['billed'] and n(r, 66, 73) == inv['amo'] and n(r, 82, 89) == inv['amc']
        assert n(r, 74, 81) == inv['billed'] - inv['amo']
        assert f(r, 97, 104) == 'FAKESEAL'
        lot['billed'] += inv['billed']; lot['amo'] += inv['amo']; lot['amc'] += inv['amc']
        invoices += 1
    elif t == b'6':
        assert n(r, 11, 13) == lot['inv'] and n(r, 22, 24) == lot['inv']
        assert n(r, 14, 17) == lot['acts'] and n(r, 18, 21) == lot['t2']
        assert n(r, 25, 33) == lot['billed'] and n(r, 34, 42) == lot['amo'] and n(r, 43, 51) == lot['amc']
        assert f(r, 52, 54) == lot['num']
        assert f(r, 97, 104) == 'FAKESEAL'
    else:
        raise AssertionError('unexpected record type %r' % t)
assert n(recs[-1], 83, 85) == lots
print(lots, invoices)
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_file(&path).ok();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let input = parse(&file).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{} {}", input.lots().len(), 700)
    );
}

/// R3.2: the OCT identifier may be an association number. The header carries it as text, the
/// digits-only trailer its digits (provisional, `docs/formats/b2.md`), and the file validates.
#[test]
fn single_file_to_an_association_number_keeps_its_letter_in_the_header() {
    let lots = generate_bytes(&SynthParams::default()).unwrap();
    let input = parse(&lots).unwrap();
    let mut p = single();
    p.oct_id = "W751234567".into();
    let file = build_single_file(input.lots(), &p).unwrap();
    let (h, t) = (&file[..128], &file[file.len() - 128..]);
    assert_eq!(s(&h[27..41]), "W751234567    ", "000 28-41, text");
    assert_eq!(s(&t[27..41]), "00000751234567", "999 28-41, digits");
    assert_eq!(s(&h[25..27]), "OT");
    let back = parse(&file).unwrap();
    let findings = validate(&back);
    assert!(findings.is_empty(), "{findings:?}");

    // A trailer whose digits differ is caught.
    let mut bad = file.clone();
    let n = bad.len();
    bad[n - 128 + 40] = b'8';
    let findings = validate(&parse(&bad).unwrap());
    assert!(
        findings.iter().any(|f| f.code == "file.trailer_mismatch"),
        "{findings:?}"
    );
}
