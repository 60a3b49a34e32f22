//! `svoct ps journal show ID [--payload FILE]` and `svoct ps quarantine show ID [--raw FILE]` through the
//! real binary: what support staff use instead of SQLite tools and editing saved files. The
//! bytes written are checked against independent readers: `openssl cms -decrypt` of the `.eml`
//! that left, Python's `email` and Python's `sqlite3` reading the store.

use std::os::unix::fs::PermissionsExt;
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

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn setup(dir: &Path) -> PathBuf {
    let cfg = dir.join("ps.toml");
    stdout(&svoct(&cfg, &["init"]), 0);
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("[direct.routes.\"011\"]", "[direct.routes.\"100\"]")
        .replace("# maildir = \"/var/mail/ps\"", "maildir = \"Maildir\"");
    std::fs::write(&cfg, text).unwrap();
    cfg
}

fn python(script: &str, args: &[&Path]) -> String {
    let out = Command::new("python3")
        .args(["-c", script])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The file written by `--payload FILE` is the one the message carried: the attachment of the `.eml`
/// that left (read by Python's `email`, decrypted by `openssl cms` with the OCT's key), the lots
/// byte for byte inside its frame; `svoct inspect` reads it as it is.
#[test]
fn journal_show_payload_writes_the_file_the_message_carried() {
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
        "--no-compress",
    ];
    stdout(&svoct(&cfg, &set), 0);
    stdout(&svoct(&cfg, &["mode", "oct"]), 0);
    let lots_path = dir.path().join("lots.b2");
    let lots = generate_bytes(&SynthParams {
        seed: 11,
        invoices: 7,
        lot_size: 4,
        ..SynthParams::default()
    })
    .unwrap();
    std::fs::write(&lots_path, &lots).unwrap();
    let outbox = dir.path().join("out");
    let send = [
        "send",
        lots_path.to_str().unwrap(),
        "--out",
        outbox.to_str().unwrap(),
    ];
    stdout(&svoct(&cfg, &send), 0);
    let journal: serde_json::Value =
        serde_json::from_str(&stdout(&svoct(&cfg, &["journal", "--json"]), 0)).unwrap();
    let id = journal[0]["id"].as_i64().unwrap().to_string();

    let text = stdout(&svoct(&cfg, &["journal", "show", &id]), 0);
    assert!(text.contains("to:          oct@oct.invalid"), "{text}");
    assert!(text.contains("status:      sent"), "{text}");
    assert!(text.contains(cert.to_str().unwrap()), "{text}");

    let sent = dir.path().join("sent.b2");
    let out = svoct(
        &cfg,
        &["journal", "show", &id, "--payload", sent.to_str().unwrap()],
    );
    let described = stdout(&out, 0);
    assert!(
        described.contains("file:        000"),
        "described too: {described}"
    );
    assert_eq!(mode_of(&sent), 0o600, "health data: owner only");
    let written = std::fs::read(&sent).unwrap();

    // Independently: the attachment of the .eml that left, decrypted with the OCT's key.
    let eml = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "eml"))
        .unwrap();
    let der = dir.path().join("attachment.der");
    python(
        "import email, email.policy, sys\n\
         msg = email.message_from_bytes(open(sys.argv[1], 'rb').read(), policy=email.policy.default)\n\
         assert msg['Content-Description'] == 'FACTURE/SV/K', msg['Content-Description']\n\
         open(sys.argv[2], 'wb').write(msg.get_payload(decode=True))\n",
        &[&eml, &der],
    );
    let clear = dir.path().join("clear.b2");
    let ossl = Command::new("openssl")
        .args(["cms", "-decrypt", "-binary", "-inform", "DER", "-in"])
        .arg(&der)
        .arg("-inkey")
        .arg(&key)
        .arg("-recip")
        .arg(&cert)
        .arg("-out")
        .arg(&clear)
        .output()
        .unwrap();
    assert!(ossl.status.success(), "{}", String::from_utf8_lossy(&ossl.stderr));
    assert_eq!(
        written,
        std::fs::read(&clear).unwrap(),
        "the file that left, byte for byte"
    );
    assert_eq!(
        written.get(128..written.len() - 128),
        Some(&lots[..]),
        "the lots inside the frame"
    );

    // `-`: standard output gives the same bytes; an existing file is never overwritten.
    let piped = svoct(&cfg, &["journal", "show", &id, "--payload", "-"]);
    assert_eq!(piped.status.code(), Some(0));
    assert_eq!(piped.stdout, written);
    let again = svoct(
        &cfg,
        &["journal", "show", &id, "--payload", sent.to_str().unwrap()],
    );
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    assert_eq!(std::fs::read(&sent).unwrap(), written);

    let inspect = Command::new(env!("CARGO_BIN_EXE_svoct"))
        .arg("inspect")
        .arg(&sent)
        .output()
        .unwrap();
    let report = stdout(&inspect, 0);
    assert!(
        report.contains("b2-file") && report.contains("7 invoices"),
        "{report}"
    );

    // The payload file as saved on disk (a line of JSON, then the file) is inspected directly.
    let compostage = journal[0]["compostage"].as_str().unwrap();
    let saved = dir
        .path()
        .join(format!("svoct-ps.sqlite.payloads/{compostage}.payload"));
    let inspect = Command::new(env!("CARGO_BIN_EXE_svoct"))
        .args(["inspect", "--json"])
        .arg(&saved)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_str(&stdout(&inspect, 0)).unwrap();
    assert_eq!(report["format"], "ps-payload");
    assert_eq!(report["meta"]["to"], "oct@oct.invalid");
    assert_eq!(report["file"]["format"], "b2-file");
    assert_eq!(report["file"]["valid"], true);
    let from_disk = std::fs::read(&saved).unwrap();
    let nl = from_disk.iter().position(|&b| b == b'\n').unwrap();
    assert_eq!(&from_disk[nl + 1..], &written[..], "the file after the JSON line");

    let missing = svoct(&cfg, &["journal", "show", "99", "--payload", "-"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("journal entry 99 does not exist"));
}

/// `--raw FILE` writes the quarantined message exactly as stored: the same bytes as the store's
/// `inbox.raw` read with Python's `sqlite3` and as the file that was in the Maildir, and it
/// parses with Python's `email`.
#[test]
fn quarantine_show_raw_writes_the_message_as_retrieved() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path());
    let md = dir.path().join("Maildir");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(md.join(sub)).unwrap();
    }
    let claimed: &[u8] =
        b"From: x@y.invalid\r\nSubject: ARL du jour\r\nContent-Description: ARL\r\n\r\nhello\r\n";
    std::fs::write(md.join("new/1.claimed"), claimed).unwrap();
    stdout(&svoct(&cfg, &["fetch"]), 1);
    let list: serde_json::Value =
        serde_json::from_str(&stdout(&svoct(&cfg, &["quarantine", "--json"]), 0)).unwrap();
    let id = list[0]["id"].as_i64().unwrap().to_string();

    let text = stdout(&svoct(&cfg, &["quarantine", "show", &id]), 0);
    assert!(text.contains("state:    quarantined"), "{text}");
    assert!(text.contains("subject:  ARL du jour"), "{text}");
    assert!(text.contains("reason:   not a known message profile"), "{text}");

    let eml = dir.path().join("q.eml");
    stdout(
        &svoct(&cfg, &["quarantine", "show", &id, "--raw", eml.to_str().unwrap()]),
        0,
    );
    assert_eq!(mode_of(&eml), 0o600, "health data: owner only");
    let written = std::fs::read(&eml).unwrap();
    assert_eq!(written, claimed, "the message as it was in the Maildir");
    let store = dir.path().join("svoct-ps.sqlite");
    let stored = dir.path().join("stored.eml");
    let said = python(
        "import email, sqlite3, sys\n\
         raw = sqlite3.connect(sys.argv[1]).execute('SELECT raw FROM inbox_raw WHERE id = ?', (int(sys.argv[3]),)).fetchone()[0]\n\
         open(sys.argv[2], 'wb').write(raw)\n\
         msg = email.message_from_bytes(open(sys.argv[4], 'rb').read())\n\
         print(msg['Subject'], '|', msg['Content-Description'])\n",
        &[&store, &stored, Path::new(&id), &eml],
    );
    assert_eq!(said.trim(), "ARL du jour | ARL");
    assert_eq!(written, std::fs::read(&stored).unwrap(), "the bytes in the store");

    let piped = svoct(&cfg, &["quarantine", "show", &id, "--raw", "-"]);
    assert_eq!(piped.status.code(), Some(0));
    assert_eq!(piped.stdout, written);
    // A received journal entry has no saved file: said, with the command that does write it.
    let journal: serde_json::Value =
        serde_json::from_str(&stdout(&svoct(&cfg, &["journal", "--json"]), 0)).unwrap();
    let received = journal[0]["id"].as_i64().unwrap().to_string();
    assert_eq!(journal[0]["direction"], "in");
    let none = svoct(&cfg, &["journal", "show", &received, "--payload", "-"]);
    assert_eq!(none.status.code(), Some(2));
    assert!(none.stdout.is_empty());
    let said = String::from_utf8_lossy(&none.stderr);
    assert!(
        said.contains("has no saved file") && said.contains("quarantine show ID --raw FILE"),
        "{said}"
    );

    let missing = svoct(&cfg, &["quarantine", "show", "99"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("received message 99 does not exist"));
}
