//! `svoct inspect` on returns (NOEMIE, ARL, ART, dLOI) and on messages, through the real binary.
//! Inputs come from the library builders; expected counts are what the test asked the builders
//! for, not what a reader says.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

mod schema;
use svoct_formats::arl::{Arl, ArlReason, ArlStatus, Stamp};
use svoct_formats::art::{Art, ArtLot, FileStatus, LotStatus};
use svoct_formats::b2::SingleFileParams;
use svoct_formats::b2::synth::{SynthParams, generate_single_file};
use svoct_formats::loi::{DateTime, DloiRequest, Increment};
use svoct_formats::noemie::{
    InvoiceOutcome, Packaging, PartOutcome, PartState, RejectLine, RejectPart, RspParams, Ymd, build_580,
    build_580_packaged,
};
use svoct_mail::cms::{CmsCipher, RecipientCert};
use svoct_mail::profile::{Mailbox, MessageHeaders, Profile, Protect, build_message};
use svoct_mail::subject::{Compostage, FileKind, Subject};
use svoct_testkit::certs::TestIdentity;

fn svoct(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_svoct"))
        .args(args)
        .env_remove("SVOCT_LOG")
        .output()
        .expect("run svoct")
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn inspect_json(path: &Path, extra: &[&str]) -> (Output, Value) {
    let mut args = vec!["inspect", path.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let out = svoct(&args);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e}): stdout {} stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    // Every report here also follows the `inspect` JSON Schema (docs/json.md), the streamed
    // NOEMIE one included.
    let errors = schema::violations("inspect", &String::from_utf8_lossy(&out.stdout));
    assert!(errors.is_empty(), "inspect schema: {errors}");
    (out, v)
}

/// stderr is exactly one line starting with `svoct: `.
fn one_line_error(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    let err = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(err.lines().count(), 1, "one line on stderr: {err:?}");
    assert!(err.starts_with("svoct: "), "{err}");
    err
}

// ---------------------------------------------------------------------------------------------
// NOEMIE
// ---------------------------------------------------------------------------------------------

fn rsp_params() -> RspParams {
    RspParams {
        sender_type: "CP".into(),
        sender_number: "751".into(),
        sender_program: "SIMU".into(),
        recipient_type: "TP".into(),
        recipient_number: "123456789".into(),
        file_id: "R00001".into(),
        created: Ymd::new(2026, 11, 26),
        flow_type: 'T',
        settlement_recipient: "123456789".into(),
        accounting_date: Ymd::new(2026, 11, 26),
        transfer_label: "VIREMENT TEST".into(),
        payer: "CPAM 751".into(),
    }
}

fn outcome(number: &str, state: PartState, requested: u64, paid: i64, reject: bool) -> InvoiceOutcome {
    InvoiceOutcome {
        lot_number: "001".into(),
        lot_date: Ymd::new(2026, 11, 25),
        invoice_number: number.into(),
        invoice_type: 'F',
        billing_date: Some(Ymd::new(2026, 11, 25)),
        amo: Some(PartOutcome {
            state,
            requested_cents: requested,
            paid_cents: paid,
            amc_number: String::new(),
        }),
        amc: None,
        rejects: if reject {
            vec![RejectLine {
                code: "E012".into(),
                label: "ACTE NON REMBOURSABLE".into(),
                part: RejectPart::Amo,
            }]
        } else {
            Vec::new()
        },
        comments: Vec::new(),
    }
}

fn outcomes() -> Vec<InvoiceOutcome> {
    vec![
        outcome("000000001", PartState::Paid, 2500, 1750, false),
        outcome("000000002", PartState::Paid, 3000, 2100, false),
        outcome("000000003", PartState::Rejected, 4000, 0, true),
    ]
}

#[test]
fn noemie_580_lines_is_detected_with_states_and_amounts() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "rsp.580",
        &build_580(&rsp_params(), &outcomes()).unwrap(),
    );
    let (out, v) = inspect_json(&p, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(v["format"], "noemie");
    assert_eq!(v["valid"], true);
    assert_eq!(v["reference"], "580");
    assert_eq!(v["file_count"], 1);
    let invoices = v["invoices"].as_array().unwrap();
    assert_eq!(invoices.len(), 3);
    let states: Vec<&str> = invoices.iter().map(|i| i["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["paid", "paid", "rejected"]);
    let paid: Vec<i64> = invoices
        .iter()
        .map(|i| i["paid_cents"].as_i64().unwrap())
        .collect();
    assert_eq!(paid, [1750, 2100, 0]);
    assert_eq!(invoices[0]["amo"]["requested_cents"], 2500);
    assert_eq!(invoices[2]["rejects"][0]["code"], "E012");
    // 1750 + 2100, the file's controlled amount.
    assert_eq!(v["file_summaries"][0]["amount_cents"], 3850);
    assert_eq!(v["findings"].as_array().unwrap().len(), 0);

    // Human output names entities and fields from the layout tables.
    let text = svoct(&["inspect", p.to_str().unwrap()]);
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("noemie: reference 580"), "{text}");
    assert!(text.contains("invoice 000000003"), "{text}");
    assert!(text.contains("sender_number"), "{text}");
}

#[test]
fn noemie_blocks_packaging_is_not_taken_for_b2() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = build_580_packaged(&rsp_params(), &outcomes(), Packaging::Blocks).unwrap();
    assert!(
        bytes.starts_with(b"000"),
        "blocks packaging starts like a B2 file"
    );
    let p = write(dir.path(), "rsp.blocks", &bytes);
    let (out, v) = inspect_json(&p, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(v["format"], "noemie");
    assert_eq!(v["packaging"], "blocks");
    assert_eq!(v["invoices"].as_array().unwrap().len(), 3);
}

#[test]
fn corrupted_noemie_gives_findings_and_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = build_580(&rsp_params(), &outcomes()).unwrap();
    // Change the paid amount of the first 198 entity (positions 15-22) without fixing the 990s.
    let at = bytes.windows(3).position(|w| w == b"198").unwrap();
    let digit = at + 21;
    bytes[digit] = if bytes[digit] == b'9' {
        b'8'
    } else {
        bytes[digit] + 1
    };
    let p = write(dir.path(), "bad.580", &bytes);
    let (out, v) = inspect_json(&p, &[]);
    assert_eq!(v["format"], "noemie");
    assert_eq!(v["valid"], false);
    let kinds: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"control_sum"), "{kinds:?}");
    let err = one_line_error(&out);
    assert!(err.contains("invalid noemie"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// ARL, ART, dLOI
// ---------------------------------------------------------------------------------------------

fn arl() -> Arl {
    Arl {
        sender_type: "CP".into(),
        sender_number: "751".into(),
        ps_number: "123456789".into(),
        file_id: "F00042".into(),
        lot_number: 7,
        lot_date: Ymd::new(2026, 11, 25),
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
                label: "TOTAL DU LOT DIFFERENT".into(),
            },
        ],
    }
}

#[test]
fn arl_is_detected_and_a_wrong_reason_count_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = arl().build().unwrap();
    let p = write(dir.path(), "lot.arl", &bytes);
    let (out, v) = inspect_json(&p, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(v["format"], "arl");
    assert_eq!(v["status"], "negative");
    assert_eq!(v["reason_count"], 2);
    assert_eq!(v["record_count"], 3);
    assert_eq!(v["lot_number"], 7);
    assert_eq!(v["invoice_count"], 25);

    // Drop the last MOT record: the ARL record still announces two.
    let cut = &bytes[..bytes.len() - 130];
    let p = write(dir.path(), "cut.arl", cut);
    let (out, v) = inspect_json(&p, &[]);
    assert_eq!(v["format"], "arl");
    assert_eq!(v["valid"], false);
    assert_eq!(v["findings"].as_array().unwrap().len(), 1);
    one_line_error(&out);
}

#[test]
fn art_body_is_detected() {
    let art = Art {
        oct_id: "OCT123456789".into(),
        ps_number: "123456789".into(),
        received: Stamp {
            date: Ymd::new(2026, 11, 26),
            hour: 9,
            minute: 5,
        },
        compostage: "2026112609050000042".into(),
        file_name: "F00042".into(),
        subject: "SV140700/123456789/2026112609050000042/00015".into(),
        profile: "FACTURE/SV/ZK".into(),
        invoices: 15,
        file_status: FileStatus::Accepted,
        file_detail: String::new(),
        lots: vec![
            ArtLot {
                number: "001".into(),
                date: Some(Ymd::new(2026, 11, 25)),
                kind: "FSE".into(),
                invoices: 12,
                status: LotStatus::Forwarded,
                detail: "CPAM 751".into(),
            },
            ArtLot {
                number: "002".into(),
                date: Some(Ymd::new(2026, 11, 25)),
                kind: "FSE".into(),
                invoices: 3,
                status: LotStatus::Refused,
                detail: "destination inconnue".into(),
            },
        ],
        amc: Vec::new(),
    };
    let dir = tempfile::tempdir().unwrap();
    let body = art.build().unwrap();
    let p = write(dir.path(), "art.txt", body.as_bytes());
    let (out, v) = inspect_json(&p, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(v["format"], "art");
    assert_eq!(v["lot_count"], 2);
    assert_eq!(v["invoice_count"], 15);
    assert_eq!(v["lots"][1]["status"], "refused");

    // The FIN line's count no longer matches: unreadable receipt.
    let bad = body.replace("FIN;2;0", "FIN;3;0");
    assert_ne!(bad, body);
    let p = write(dir.path(), "bad.txt", bad.as_bytes());
    let (out, v) = inspect_json(&p, &[]);
    assert_eq!(v["format"], "art");
    assert_eq!(v["valid"], false);
    one_line_error(&out);
}

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

#[test]
fn dloi_request_and_increment_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    let req = DloiRequest {
        ps_number: "123456789".into(),
        version: 41,
        at: at(),
    };
    let p = write(dir.path(), "dloi.txt", &req.build().unwrap());
    let (out, v) = inspect_json(&p, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(v["format"], "dloi-request");
    assert_eq!(v["version"], 41);
    assert_eq!(v["ps_number"], "123456789");

    let inc = Increment {
        from: 41,
        to: 43,
        at: at(),
        additions: vec!["1234567890".into(), "ABC123".into(), "777".into()],
        removals: vec!["999".into()],
    };
    let bytes = inc.build().unwrap();
    let p = write(dir.path(), "loi.txt", &bytes);
    let (out, v) = inspect_json(&p, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(v["format"], "dloi-increment");
    assert_eq!(v["addition_count"], 3);
    assert_eq!(v["removal_count"], 1);
    assert_eq!(v["from"], 41);
    assert_eq!(v["to"], 43);

    let bad = String::from_utf8(bytes).unwrap().replace("FIN;3;1", "FIN;2;1");
    let p = write(dir.path(), "bad-loi.txt", bad.as_bytes());
    let (out, v) = inspect_json(&p, &[]);
    assert_eq!(v["format"], "dloi-increment");
    assert_eq!(v["valid"], false);
    one_line_error(&out);
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

const PS: &str = "987654321";
const COMPOSTAGE: &str = "2026112607050900042";

/// A single file of `invoices` invoices from PS [`PS`].
fn b2_file(invoices: usize) -> Vec<u8> {
    generate_single_file(
        &SynthParams {
            seed: 11,
            invoices,
            ps_number: PS.into(),
            ..SynthParams::default()
        },
        &SingleFileParams {
            sender_type: "TP".into(),
            oct_id: "12345678901234".into(),
            file_id: "F00042".into(),
            date: "261126".into(),
            message: String::new(),
        },
    )
    .unwrap()
}

fn message(subject_count: u32, file: &[u8], protect: Protect<'_>) -> Vec<u8> {
    let subject: Subject = format!("SV140700/{PS}/{COMPOSTAGE}/{subject_count:05}")
        .parse()
        .unwrap();
    let date = COMPOSTAGE.parse::<Compostage>().unwrap().datetime().assume_utc();
    let envelope = MessageHeaders {
        from: Mailbox::new("ps@provider.example").unwrap(),
        to: Mailbox::new("factures@oct.example").unwrap(),
        subject,
        profile: Profile::Invoice(FileKind::Fse),
        file_name: "F00042.B2".into(),
        date,
        message_id: Some("t.1@provider.example".into()),
    };
    build_message(&envelope, file, protect).unwrap()
}

#[test]
fn encrypted_message_is_opened_and_its_b2_attachment_inspected() {
    let dir = tempfile::tempdir().unwrap();
    let id = TestIdentity::new("oct.example");
    let (key, cert) = id.write_pem(dir.path(), "oct");
    let recipients = [RecipientCert::from_bytes(&id.cert_pem()).unwrap()];
    let protect = Protect::Encrypt {
        recipients: &recipients,
        cipher: CmsCipher::Aes256Cbc,
        compress: true,
    };
    let msg = message(4, &b2_file(4), protect);
    let p = write(dir.path(), "m.eml", &msg);

    // Without the key: profile and subject, no attachment, still valid.
    let (out, v) = inspect_json(&p, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(v["format"], "message");
    assert_eq!(v["profile"], "FACTURE/SV/ZK");
    assert_eq!(v["subject"]["compostage"], COMPOSTAGE);
    assert_eq!(v["subject"]["invoice_count"], 4);
    assert_eq!(v["subject"]["exercice"], PS);
    assert!(v.get("attachment").is_none());
    assert_eq!(v["encryption"]["recipients"], 1);

    // With the key: the B2 file inside.
    let (out, v) = inspect_json(
        &p,
        &["--key", key.to_str().unwrap(), "--cert", cert.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(v["valid"], true);
    assert_eq!(v["compression"], "gzip");
    assert_eq!(v["attachment"]["format"], "b2-file");
    assert_eq!(v["attachment"]["valid"], true);
    assert_eq!(v["attachment"]["invoice_count"], 4);
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["severity"] != "error"),
        "{v}"
    );

    // Human output nests the attachment's report.
    let out = svoct(&[
        "inspect",
        p.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--cert",
        cert.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("message: profile FACTURE/SV/ZK"), "{text}");
    assert!(text.contains("attachment content:"), "{text}");
    assert!(text.contains("b2-file:"), "{text}");
}

#[test]
fn subject_count_disagreeing_with_the_file_is_a_finding() {
    let dir = tempfile::tempdir().unwrap();
    let msg = message(5, &b2_file(4), Protect::None);
    let p = write(dir.path(), "m.eml", &msg);
    let (out, v) = inspect_json(&p, &[]);
    assert_eq!(v["format"], "message");
    assert_eq!(v["profile"], "FACTURE/SV");
    assert_eq!(v["valid"], false);
    assert_eq!(v["attachment"]["invoice_count"], 4);
    let codes: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"subject_file"), "{codes:?}");
    let err = one_line_error(&out);
    assert!(err.contains("invalid message"), "{err}");
}

#[test]
fn invalid_message_exits_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let msg = message(4, &b2_file(4), Protect::None);
    let text = String::from_utf8(msg).unwrap();
    let broken = text.replace("Content-Description: FACTURE/SV\r\n", "");
    assert_ne!(broken, text);
    let p = write(dir.path(), "m.eml", broken.as_bytes());
    let (out, v) = inspect_json(&p, &[]);
    assert_eq!(v["format"], "message");
    assert_eq!(v["valid"], false);
    let err = one_line_error(&out);
    assert!(err.contains("content_description"), "{err}");

    // A key without its certificate is refused by the argument parser.
    let out = svoct(&["inspect", p.to_str().unwrap(), "--key", "/nonexistent"]);
    assert!(!out.status.success());
}

#[test]
fn wrong_key_and_loose_key_file_are_reported() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let oct = TestIdentity::new("oct.example");
    let other = TestIdentity::new("someone.example");
    let (other_key, other_cert) = other.write_pem(dir.path(), "other");
    let recipients = [RecipientCert::from_bytes(&oct.cert_pem()).unwrap()];
    let protect = Protect::Encrypt {
        recipients: &recipients,
        cipher: CmsCipher::Aes256Cbc,
        compress: false,
    };
    let p = write(dir.path(), "m.eml", &message(4, &b2_file(4), protect));

    // A key the envelope was not made for: a decrypt finding, no attachment, exit non-zero.
    let (out, v) = inspect_json(
        &p,
        &[
            "--key",
            other_key.to_str().unwrap(),
            "--cert",
            other_cert.to_str().unwrap(),
        ],
    );
    assert_eq!(v["profile"], "FACTURE/SV/K");
    assert_eq!(v["valid"], false);
    assert!(v.get("attachment").is_none());
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "decrypt" && f["severity"] == "error"),
        "{v}"
    );
    one_line_error(&out);

    // A key file readable by others is refused before anything is read; its content never shows.
    std::fs::set_permissions(&other_key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = svoct(&[
        "inspect",
        p.to_str().unwrap(),
        "--key",
        other_key.to_str().unwrap(),
        "--cert",
        other_cert.to_str().unwrap(),
    ]);
    let err = one_line_error(&out);
    assert!(err.contains("cannot load key"), "{err}");
    assert!(!err.contains("PRIVATE KEY"), "{err}");
    assert!(out.stdout.is_empty());
}
