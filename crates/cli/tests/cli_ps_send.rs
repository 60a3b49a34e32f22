//! `svoct ps send | resend | retry | journal | fetch | inbox | quarantine | loi request` through
//! the real binary, writing .eml files (`--out`) and reading a Maildir.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use svoct_formats::b2::synth::{SynthParams, generate_bytes};

fn svoct(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_svoct"))
        .arg("ps")
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("SVOCT_PS_CONFIG")
        .output()
        .unwrap()
}

fn stdout(out: &Output, want: i32) -> String {
    assert_eq!(
        out.status.code(),
        Some(want),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn setup(dir: &Path) -> PathBuf {
    let cfg = dir.join("ps.toml");
    stdout(&svoct(&cfg, &["init"]), 0);
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("[direct.routes.\"011\"]", "[direct.routes.\"100\"]")
        .replace("# maildir = \"/var/mail/ps\"", "maildir = \"Maildir\"");
    std::fs::write(&cfg, text).unwrap();
    let lots = generate_bytes(&SynthParams {
        seed: 7,
        invoices: 12,
        lot_size: 5,
        ..SynthParams::default()
    })
    .unwrap();
    std::fs::write(dir.join("lots.b2"), lots).unwrap();
    cfg
}

fn emls(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "eml"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn send_to_out_dir_journal_and_resend() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path());
    let out = dir.path().join("out");
    let lots = dir.path().join("lots.b2");
    let json = stdout(
        &svoct(
            &cfg,
            &[
                "send",
                lots.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--json",
            ],
        ),
        0,
    );
    let sent: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(sent.as_array().unwrap().len(), 1);
    assert_eq!(sent[0]["status"], "sent");
    assert_eq!(sent[0]["invoices"].as_array().unwrap().len(), 12);
    assert_eq!(sent[0]["to"], "cpam011@am.invalid", "the route of organisme 100");
    let subject = sent[0]["subject"].as_str().unwrap().to_owned();
    // Annex 7.1.1: the exercice is the file's sender number (000 6-19), 14 digits.
    assert!(subject.starts_with("SV140700/00000123456789/"), "{subject}");
    assert!(subject.ends_with("/00012"), "{subject}");
    let files = emls(&out);
    assert_eq!(files.len(), 1);
    let eml = std::fs::read_to_string(&files[0]).unwrap();
    assert!(eml.contains(&format!("Subject: {subject}\r\n")));
    assert!(eml.contains("Content-Description: FACTURE/SV\r\n"));

    // The same lots again: refused, one line, nothing written.
    let again = svoct(
        &cfg,
        &["send", lots.to_str().unwrap(), "--out", out.to_str().unwrap()],
    );
    assert_eq!(again.status.code(), Some(2));
    let e = String::from_utf8_lossy(&again.stderr).into_owned();
    assert_eq!(e.trim_end().lines().count(), 1, "{e}");
    assert!(e.contains("resend"), "{e}");
    assert_eq!(emls(&out).len(), 1);

    // On purpose: a new compostage.
    let json = stdout(
        &svoct(&cfg, &["resend", "1", "--out", out.to_str().unwrap(), "--json"]),
        0,
    );
    let resent: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_ne!(resent[0]["compostage"], sent[0]["compostage"]);
    assert_eq!(emls(&out).len(), 2);

    let journal: serde_json::Value =
        serde_json::from_str(&stdout(&svoct(&cfg, &["journal", "--json"]), 0)).unwrap();
    let entries = journal.as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["invoices"].as_array().unwrap().len(), 12);
    assert_eq!(entries[0]["lots"].as_array().unwrap().len(), 3);
    assert_eq!(entries[0]["file_name"], "000001.b2");
    let table = stdout(&svoct(&cfg, &["journal", "--subject", &subject]), 0);
    assert_eq!(table.lines().count(), 2, "header and one entry: {table}");
    assert!(table.contains(&subject));

    // Nothing deferred: retry has nothing to do.
    let r = stdout(&svoct(&cfg, &["retry", "--out", out.to_str().unwrap()]), 0);
    assert!(r.contains("nothing to send"), "{r}");
}

#[test]
fn fetch_from_maildir_lists_inbox_and_quarantine() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path());
    let md = dir.path().join("Maildir");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(md.join(sub)).unwrap();
    }
    // A practice's own mail: left in the Maildir as it is (issue 11 point 10).
    let mail = b"From: x@y.invalid\r\nSubject: not a return\r\nContent-Type: text/plain\r\n\r\nhello\r\n";
    std::fs::write(md.join("new/1.unknown"), mail).unwrap();
    // Claims to be a return (ARL profile) but does not read: stored and quarantined.
    std::fs::write(
        md.join("new/2.claimed"),
        b"From: x@y.invalid\r\nSubject: ARL du jour\r\nContent-Description: ARL\r\n\r\nhello\r\n",
    )
    .unwrap();
    let out = svoct(&cfg, &["fetch"]);
    let text = stdout(&out, 1);
    assert!(
        text.contains("1 new") && text.contains("1 quarantined") && text.contains("1 other message(s) left"),
        "{text}"
    );
    assert_eq!(std::fs::read(md.join("new/1.unknown")).unwrap(), mail);
    assert!(!md.join("new/2.claimed").exists());
    // Only the practice's own mail left: nothing to report, exit 0, the mail still there.
    let again = stdout(&svoct(&cfg, &["fetch"]), 0);
    assert!(
        again.contains("0 new") && again.contains("1 other message(s) left"),
        "{again}"
    );
    assert_eq!(std::fs::read(md.join("new/1.unknown")).unwrap(), mail);
    let q = stdout(&svoct(&cfg, &["quarantine"]), 0);
    assert!(q.contains("ARL du jour"), "{q}");
    assert!(q.contains("not a known message profile"), "{q}");
    let inbox: serde_json::Value =
        serde_json::from_str(&stdout(&svoct(&cfg, &["inbox", "--json"]), 0)).unwrap();
    assert_eq!(inbox.as_array().unwrap().len(), 0);
}

#[test]
fn loi_request_needs_oct_mode_and_help_exists() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path());
    let out = svoct(&cfg, &["loi", "request", "--out", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("svoct ps mode oct"));
    for args in [
        &["send", "--help"][..],
        &["retry", "--help"],
        &["resend", "--help"],
        &["journal", "--help"],
        &["fetch", "--help"],
        &["inbox", "--help"],
        &["quarantine", "--help"],
        &["loi", "request", "--help"],
    ] {
        assert!(stdout(&svoct(&cfg, args), 0).contains("Usage:"), "{args:?}");
    }
    let missing = svoct(&cfg, &["send", "nope.b2"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope.b2"));
}

/// Independent peers: Python's `email` reads the .eml, `openssl cms -decrypt` opens the
/// attachment, Python's `zlib` inflates it (gzip); the result is the OCT single file around our lots.
#[test]
fn single_file_eml_opens_with_python_email_openssl_cms_and_zlib() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path());
    let (key, cert) = svoct_testkit::certs::TestIdentity::new("oct.test").write_pem(dir.path(), "oct");
    stdout(
        &svoct(
            &cfg,
            &[
                "oct",
                "set",
                "--address",
                "oct@oct.invalid",
                "--certificate",
                cert.to_str().unwrap(),
                "--identifier",
                "12345678900014",
                "--option",
                "single",
                "--compress",
            ],
        ),
        0,
    );
    stdout(&svoct(&cfg, &["mode", "oct"]), 0);
    let out = dir.path().join("out");
    let lots = dir.path().join("lots.b2");
    stdout(
        &svoct(
            &cfg,
            &["send", lots.to_str().unwrap(), "--out", out.to_str().unwrap()],
        ),
        0,
    );
    let eml = emls(&out).pop().unwrap();
    let der = dir.path().join("attachment.der");
    let script = r#"
import email, email.policy, sys
msg = email.message_from_bytes(open(sys.argv[1], 'rb').read(), policy=email.policy.default)
assert msg['Content-Description'] == 'FACTURE/SV/ZK', msg['Content-Description']
assert msg.get_content_type() == 'application/edi-consent', msg.get_content_type()
subject = str(msg['Subject'])
parts = subject.split('/')
assert parts[0] == 'SV140700' and parts[1] == '00000123456789' and len(parts[2]) == 19 and parts[3] == '00012', subject
open(sys.argv[2], 'wb').write(msg.get_payload(decode=True))
"#;
    let py = Command::new("python3")
        .args(["-c", script])
        .arg(&eml)
        .arg(&der)
        .output()
        .unwrap();
    assert!(py.status.success(), "{}", String::from_utf8_lossy(&py.stderr));
    let z = dir.path().join("attachment.z");
    let ossl = Command::new("openssl")
        .args(["cms", "-decrypt", "-binary", "-inform", "DER", "-in"])
        .arg(&der)
        .arg("-inkey")
        .arg(&key)
        .arg("-recip")
        .arg(&cert)
        .arg("-out")
        .arg(&z)
        .output()
        .unwrap();
    assert!(ossl.status.success(), "{}", String::from_utf8_lossy(&ossl.stderr));
    let file = dir.path().join("file.b2");
    let inflate = Command::new("python3")
        .args([
            "-c",
            "import sys, zlib; open(sys.argv[2], 'wb').write(zlib.decompress(open(sys.argv[1], 'rb').read(), 47))",
        ])
        .arg(&z)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        inflate.status.success(),
        "{}",
        String::from_utf8_lossy(&inflate.stderr)
    );
    let file = std::fs::read(&file).unwrap();
    let lots = std::fs::read(&lots).unwrap();
    assert_eq!(file.len(), lots.len() + 256);
    assert_eq!(&file[128..file.len() - 128], &lots[..], "the lots, byte for byte");
    assert_eq!(&file[..3], b"000");
    assert_eq!(&file[47..49], b"TO");
    assert_eq!(
        &file[5..19],
        b"00000123456789",
        "the subject's exercice, checked above"
    );
    assert_eq!(&file[file.len() - 128..file.len() - 125], b"999");
}

#[test]
fn journal_finds_an_entry_by_compostage_invoice_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path());
    let out = dir.path().join("out");
    let lots = dir.path().join("lots.b2");
    let sent: serde_json::Value = serde_json::from_str(&stdout(
        &svoct(
            &cfg,
            &[
                "send",
                lots.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--json",
            ],
        ),
        0,
    ))
    .unwrap();
    let compostage = sent[0]["compostage"].as_str().unwrap().to_owned();
    let all: serde_json::Value =
        serde_json::from_str(&stdout(&svoct(&cfg, &["journal", "--json"]), 0)).unwrap();
    let invoice = all[0]["invoices"][0].as_str().unwrap().to_owned();

    let by = |args: &[&str]| -> Vec<i64> {
        let mut a = vec!["journal", "--json"];
        a.extend_from_slice(args);
        let v: serde_json::Value = serde_json::from_str(&stdout(&svoct(&cfg, &a), 0)).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(by(&["--compostage", &compostage]), vec![1]);
    assert_eq!(by(&["--compostage", "2000010100000000000"]), Vec::<i64>::new());
    assert_eq!(by(&["--invoice", &invoice]), vec![1]);
    // Leading zeros may be left out.
    assert_eq!(by(&["--invoice", invoice.trim_start_matches('0')]), vec![1]);
    assert_eq!(by(&["--status", "sent"]), vec![1]);
    assert_eq!(by(&["--status", "deferred"]), Vec::<i64>::new());
    // The same lots again are refused, naming the entry that carried them.
    let again = svoct(
        &cfg,
        &["send", lots.to_str().unwrap(), "--out", out.to_str().unwrap()],
    );
    assert_eq!(again.status.code(), Some(2));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("already in journal entry 1"), "{err}");
}

/// Issue 11 point 7 (annex 4.2.2.2): the OCT identifier may be an association number. It is
/// accepted by `ps oct set`, the file goes out, and the decrypted attachment (Python's `email`,
/// `openssl cms`) carries it in the `000` header and its digits in the `999` trailer; `svoct gen
/// --oct-id` takes it too and `svoct inspect` finds the file valid.
#[test]
fn an_association_number_identifier_is_accepted_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path());
    let (key, cert) = svoct_testkit::certs::TestIdentity::new("oct.test").write_pem(dir.path(), "oct");
    let set = |identifier: &str| {
        svoct(
            &cfg,
            &[
                "oct",
                "set",
                "--address",
                "oct@oct.invalid",
                "--certificate",
                cert.to_str().unwrap(),
                "--identifier",
                identifier,
                "--option",
                "single",
                "--no-compress",
            ],
        )
    };
    let refused = set("w751234567");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("oct.identifier"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    stdout(&set("W751234567"), 0);
    stdout(&svoct(&cfg, &["mode", "oct"]), 0);
    let out = dir.path().join("out");
    let lots = dir.path().join("lots.b2");
    stdout(
        &svoct(
            &cfg,
            &["send", lots.to_str().unwrap(), "--out", out.to_str().unwrap()],
        ),
        0,
    );
    let eml = emls(&out).pop().unwrap();
    let der = dir.path().join("attachment.der");
    let script = r#"
import email, email.policy, sys
msg = email.message_from_bytes(open(sys.argv[1], 'rb').read(), policy=email.policy.default)
assert msg['Content-Description'] == 'FACTURE/SV/K', msg['Content-Description']
open(sys.argv[2], 'wb').write(msg.get_payload(decode=True))
"#;
    let py = Command::new("python3")
        .args(["-c", script])
        .arg(&eml)
        .arg(&der)
        .output()
        .unwrap();
    assert!(py.status.success(), "{}", String::from_utf8_lossy(&py.stderr));
    let file = dir.path().join("file.b2");
    let ossl = Command::new("openssl")
        .args(["cms", "-decrypt", "-binary", "-inform", "DER", "-in"])
        .arg(&der)
        .arg("-inkey")
        .arg(&key)
        .arg("-recip")
        .arg(&cert)
        .arg("-out")
        .arg(&file)
        .output()
        .unwrap();
    assert!(ossl.status.success(), "{}", String::from_utf8_lossy(&ossl.stderr));
    let file = std::fs::read(&file).unwrap();
    let trailer = &file[file.len() - 128..];
    assert_eq!(&file[25..27], b"OT");
    assert_eq!(&file[27..41], b"W751234567    ", "000 28-41");
    assert_eq!(&trailer[27..41], b"00000751234567", "999 28-41");

    let generated = dir.path().join("gen.b2");
    let gen_out = Command::new(env!("CARGO_BIN_EXE_svoct"))
        .args([
            "gen",
            "--format",
            "single-file",
            "--invoices",
            "3",
            "--oct-id",
            "W751234567",
            "--out",
        ])
        .arg(&generated)
        .output()
        .unwrap();
    assert!(
        gen_out.status.success(),
        "{}",
        String::from_utf8_lossy(&gen_out.stderr)
    );
    assert_eq!(&std::fs::read(&generated).unwrap()[27..41], b"W751234567    ");
    let inspect = Command::new(env!("CARGO_BIN_EXE_svoct"))
        .arg("inspect")
        .arg(&generated)
        .output()
        .unwrap();
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stdout)
    );
}

/// R7.2: after two increments (0 -> 1 -> 2), `ps loi request` asks from version 2, the version
/// the store holds; `--version` still overrides it.
#[test]
fn loi_request_asks_from_the_version_held() {
    use svoct_formats::loi::{DateTime, DloiRequest, Increment};
    use svoct_mail::cms::PrivateKeyAndCert;
    use svoct_mail::profile::{ParseLimits, parse_message};

    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path());
    let (key, cert) = svoct_testkit::certs::TestIdentity::new("oct.test").write_pem(dir.path(), "oct");
    let set = [
        "oct",
        "set",
        "--address",
        "oct@oct.invalid",
        "--certificate",
        cert.to_str().unwrap(),
        "--identifier",
        "12345678900014",
        "--option",
        "single",
    ];
    stdout(&svoct(&cfg, &set), 0);
    stdout(&svoct(&cfg, &["mode", "oct"]), 0);
    {
        let ps = svoct_ps::Ps::open(svoct_ps::config::Config::load(&cfg).unwrap()).unwrap();
        let at = DateTime {
            year: 2026,
            month: 11,
            day: 26,
            hour: 6,
            minute: 0,
            second: 0,
        };
        for (from, card) in [(0, "1234567890"), (1, "1234567891")] {
            let inc = Increment {
                from,
                to: from + 1,
                at,
                additions: vec![card.into()],
                removals: Vec::new(),
            };
            let bytes = inc.build().unwrap();
            ps.store().loi().apply(&inc, &bytes, None).unwrap();
        }
        assert_eq!(ps.store().loi().version().unwrap(), 2);
    }
    let oct = PrivateKeyAndCert::from_files(&key, &cert).unwrap();
    let asked = |extra: &[&str], out: &str| -> u64 {
        let out = dir.path().join(out);
        let mut args = vec!["loi", "request", "--out", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        stdout(&svoct(&cfg, &args), 0);
        let raw = std::fs::read(emls(&out).pop().unwrap()).unwrap();
        let msg = parse_message(&raw, &ParseLimits::default()).unwrap();
        let opened = msg.open(Some(&oct), &ParseLimits::default()).unwrap();
        DloiRequest::parse(&opened.bytes).unwrap().version
    };
    assert_eq!(asked(&[], "held"), 2);
    assert_eq!(asked(&["--version", "0"], "whole"), 0);
}

/// Issue 13 point 6: `ps returns` through the binary: a table page says what it shows and how to
/// get the next; filters narrow the lists; an unknown state is a one-line error.
#[test]
fn returns_filters_and_pages_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path());
    let out = dir.path().join("out");
    let lots = dir.path().join("lots.b2");
    stdout(
        &svoct(
            &cfg,
            &["send", lots.to_str().unwrap(), "--out", out.to_str().unwrap()],
        ),
        0,
    );
    // 12 invoices in lots of 5: lots 001 (5), 002 (5), 003 (2).
    let page = stdout(&svoct(&cfg, &["returns", "--limit", "5", "--offset", "5"]), 0);
    assert!(
        page.contains("showing 6-10 of 12 matching invoice(s); --offset 10 for the next page"),
        "{page}"
    );
    assert!(
        page.contains("showing none of 3 matching lot(s) (--offset 5 is past the end)"),
        "{page}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&svoct(&cfg, &["returns", "--json", "--lot", "3"]), 0)).unwrap();
    assert_eq!(json["invoices"].as_array().unwrap().len(), 2, "{json}");
    assert_eq!(json["lots"].as_array().unwrap().len(), 1);
    assert_eq!(json["page"]["invoices_matching"], 2);
    assert_eq!(
        json["totals"]["invoice_count"], 12,
        "totals count the whole store"
    );
    let all: serde_json::Value =
        serde_json::from_str(&stdout(&svoct(&cfg, &["returns", "--json"]), 0)).unwrap();
    assert_eq!(
        all["invoices"].as_array().unwrap().len(),
        12,
        "JSON is not paged by default"
    );
    let bad = svoct(&cfg, &["returns", "--state", "lost"]);
    assert_eq!(bad.status.code(), Some(2));
    let e = String::from_utf8_lossy(&bad.stderr).into_owned();
    assert!(e.contains("unknown state \"lost\""), "{e}");
    let bad = svoct(&cfg, &["returns", "--since", "2026-13-01"]);
    assert_ne!(bad.status.code(), Some(0));
}

/// Issue 13 points 1 and 2 through the binary and a real Maildir: a message encrypted for
/// certificate A is refused by the OCT (its ART, fetched from the Maildir); `ps status` opens
/// with the refusal and its reason; the PS sets certificate B; `ps resend` writes a new message
/// with a new compostage that `openssl cms -decrypt` opens with B's key, linked to the first.
#[test]
fn refused_by_the_oct_then_resent_for_the_renewed_certificate() {
    use svoct_formats::arl::Stamp;
    use svoct_formats::art::{Art, FileStatus};
    use svoct_formats::noemie::Ymd;
    use svoct_mail::profile::{Mailbox, MessageHeaders, Profile, Protect, PsCategory, build_message};
    use svoct_mail::subject::{MinuteStamp, PartyNumber, ReturnKind, ReturnSubject, Subject};

    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path());
    let md = dir.path().join("Maildir");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(md.join(sub)).unwrap();
    }
    let (_a_key, a_cert) = svoct_testkit::certs::TestIdentity::new("oct.test").write_pem(dir.path(), "oct-a");
    let set_cert = |cert: &Path| {
        stdout(
            &svoct(
                &cfg,
                &[
                    "oct",
                    "set",
                    "--address",
                    "oct@oct.invalid",
                    "--certificate",
                    cert.to_str().unwrap(),
                    "--identifier",
                    "12345678900014",
                    "--option",
                    "single",
                    "--no-compress",
                ],
            ),
            0,
        )
    };
    set_cert(&a_cert);
    stdout(&svoct(&cfg, &["mode", "oct"]), 0);
    let out = dir.path().join("out");
    let lots = dir.path().join("lots.b2");
    let sent: serde_json::Value = serde_json::from_str(&stdout(
        &svoct(
            &cfg,
            &[
                "send",
                lots.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--json",
            ],
        ),
        0,
    ))
    .unwrap();
    let first_compostage = sent[0]["compostage"].as_str().unwrap().to_owned();
    let first_entry = sent[0]["id"].as_i64().unwrap();

    // The OCT's ART: refused, it cannot decrypt.
    let art = Art {
        oct_id: "12345678900014".into(),
        ps_number: "123456789".into(),
        received: Stamp {
            date: Ymd::new(2026, 12, 2),
            hour: 7,
            minute: 30,
        },
        compostage: first_compostage.clone(),
        file_name: "000001.b2".into(),
        subject: String::new(),
        profile: "FACTURE/SV/K".into(),
        invoices: 12,
        file_status: FileStatus::Refused,
        file_detail: "dechiffrement impossible: certificat perime".into(),
        lots: vec![],
        amc: vec![],
    }
    .build()
    .unwrap();
    let at = time::macros::datetime!(2026-12-02 07:31);
    let envelope = MessageHeaders {
        from: Mailbox::new("oct@oct.invalid").unwrap(),
        to: Mailbox::new("ps@ps.invalid").unwrap(),
        subject: Subject::Return(ReturnSubject {
            kind: ReturnKind::Art,
            ps_number: PartyNumber::new("123456789").unwrap(),
            timestamp: MinuteStamp::new(at).unwrap(),
        }),
        profile: Profile::Art(PsCategory::If),
        file_name: "ART.txt".into(),
        date: at.assume_utc(),
        message_id: None,
    };
    let raw = build_message(&envelope, art.as_bytes(), Protect::None).unwrap();
    std::fs::write(md.join("new/1.art"), raw).unwrap();
    stdout(&svoct(&cfg, &["fetch"]), 0);

    let status = stdout(&svoct(&cfg, &["status"]), 0);
    let mut lines = status.lines();
    assert_eq!(lines.next(), Some("Needs a human now: 1"), "{status}");
    let row = lines.nth(1).unwrap_or("");
    assert!(row.starts_with("REFUSED by the OCT"), "{status}");
    assert!(row.contains("certificat perime"), "the ART's reason: {status}");

    let (b_key, b_cert) =
        svoct_testkit::certs::TestIdentity::new("oct-renewed.test").write_pem(dir.path(), "oct-b");
    set_cert(&b_cert);
    let resent: serde_json::Value = serde_json::from_str(&stdout(
        &svoct(
            &cfg,
            &[
                "resend",
                &first_entry.to_string(),
                "--out",
                out.to_str().unwrap(),
                "--json",
            ],
        ),
        0,
    ))
    .unwrap();
    assert_ne!(resent[0]["compostage"].as_str().unwrap(), first_compostage);
    let eml = emls(&out).pop().unwrap();
    let text = std::fs::read_to_string(&eml).unwrap();
    assert!(text.contains(resent[0]["compostage"].as_str().unwrap()));
    let der = dir.path().join("resent.der");
    let script = r#"
import email, email.policy, sys
msg = email.message_from_bytes(open(sys.argv[1], 'rb').read(), policy=email.policy.default)
open(sys.argv[2], 'wb').write(msg.get_payload(decode=True))
"#;
    let py = Command::new("python3")
        .args(["-c", script])
        .arg(&eml)
        .arg(&der)
        .output()
        .unwrap();
    assert!(py.status.success(), "{}", String::from_utf8_lossy(&py.stderr));
    let ossl = Command::new("openssl")
        .args(["cms", "-decrypt", "-binary", "-inform", "DER", "-in"])
        .arg(&der)
        .arg("-inkey")
        .arg(&b_key)
        .arg("-recip")
        .arg(&b_cert)
        .output()
        .unwrap();
    assert!(ossl.status.success(), "{}", String::from_utf8_lossy(&ossl.stderr));
    assert!(ossl.stdout.starts_with(b"000"), "a B2 file opens with B's key");

    // Nothing needs a human any more: the new entry replaces the refused one.
    let status = stdout(&svoct(&cfg, &["status"]), 0);
    assert!(status.starts_with("Needs a human now: 0"), "{status}");
}
