//! What the concentrator builds from a PS's lots (moved here from `svoct-oct`): the forwarded
//! file under the OCT's sender number, the complementary-flow lot (R8.3), and a file's sender
//! number.

use svoct_formats::b2::synth::{SynthParams, generate_bytes};
use svoct_formats::b2::{
    FileHeaderParams, LotKind, OCT_LOT_ORIGIN, build_amc_lot, build_file_as, file_sender_number, parse,
    validate,
};

fn s(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap()
}

fn params() -> FileHeaderParams {
    FileHeaderParams {
        sender_type: "OT".into(),
        recipient_type: "CP".into(),
        recipient_number: "751".into(),
        application: "SV".into(),
        file_id: "000042".into(),
        date: "261126".into(),
        norme: "SV14".into(),
        message: String::new(),
    }
}

#[test]
fn a_forwarded_file_names_the_oct_as_sender_and_keeps_the_lots_byte_for_byte() {
    let lots = generate_bytes(&SynthParams {
        invoices: 6,
        lot_size: 3,
        ..SynthParams::default()
    })
    .unwrap();
    let input = parse(&lots).unwrap();
    let bytes: Vec<&[u8]> = input.lots().iter().map(|l| l.bytes()).collect();
    assert_eq!(file_sender_number(&lots), Some(input.lots()[0].sender()));

    let file = build_file_as(&bytes, &params(), "99887766554433").unwrap();
    let (h, t) = (&file[..128], &file[file.len() - 128..]);
    assert_eq!(s(&h[5..19]), "99887766554433");
    assert_eq!(file_sender_number(&file), Some("99887766554433"));
    assert_eq!(parse(&file).unwrap().sender_number(), "99887766554433");
    assert_eq!(&file[128..file.len() - 128], &lots[..]);
    assert_eq!(s(&t[0..3]), "999");
    assert!(s(t).contains("99887766554433"));
    assert!(file_sender_number(b"not a record").is_none());
}

#[test]
fn an_amc_lot_carries_the_chosen_invoices_under_the_oct_origin_with_a_blank_seal() {
    let lots = generate_bytes(&SynthParams {
        invoices: 4,
        lot_size: 4,
        enriched: true,
        ..SynthParams::default()
    })
    .unwrap();
    let input = parse(&lots).unwrap();
    let lot = &input.lots()[0];
    assert_eq!(lot.kind(), LotKind::Fse);
    let picked = [1, 3, 99];
    let built = build_amc_lot(lot, &picked, 7, "261126").unwrap();
    let amc = parse(&built).unwrap();
    let out = &amc.lots()[0];
    assert_eq!(out.invoices().len(), 2, "an index out of range is skipped");
    assert_eq!(out.invoices()[0].bytes(), lot.invoices()[1].bytes());
    assert_eq!(out.invoices()[1].bytes(), lot.invoices()[3].bytes());
    assert_eq!(out.lot_number(), Some(7));
    assert_eq!(out.date(), "261126");
    assert_eq!(s(&out.header()[10..16]).trim(), OCT_LOT_ORIGIN);
    assert!(out.trailer()[96..].iter().all(|&b| b == b' '), "seal zone blank");
    // The recomputed trailer agrees with its invoices: nothing to find but the missing seal.
    let findings: Vec<_> = validate(&amc)
        .into_iter()
        .filter(|f| f.field != Some("seal"))
        .collect();
    assert!(findings.is_empty(), "{findings:?}");
}
