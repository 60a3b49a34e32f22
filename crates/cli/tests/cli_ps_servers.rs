//! `svoct ps` through the real binary against a real Exim (SMTP) and Dovecot (POP3) on loopback.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use svoct_formats::b2::synth::{SynthParams, generate_bytes};
use svoct_mail::transport::{SmtpConfig, SmtpEnvelope, SmtpTransport, Transport};
use svoct_testkit::{Dovecot, Exim, EximConfig};

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

fn code(out: &Output, want: i32) -> String {
    assert_eq!(
        out.status.code(),
        Some(want),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn send_to_the_oct_then_fetch_returns_through_dovecot() {
    let dir = tempfile::tempdir().unwrap();
    let exim = Exim::start(&EximConfig {
        mailboxes: &["oct", "ps"],
        ..EximConfig::default()
    })
    .unwrap();
    let dovecot = Dovecot::start(&[("ps", "pop-secret", exim.maildir("ps").unwrap())]).unwrap();
    let (_key, cert) = svoct_testkit::certs::TestIdentity::new("oct.test").write_pem(dir.path(), "oct");

    let cfg = dir.path().join("ps.toml");
    code(&svoct(&cfg, &["init"]), 0);
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("port = 25", &format!("port = {}", exim.port()))
        .replace(
            "port = 110\ntls = \"none\"\n# username = \"...\"\n# password = \"...\"",
            &format!(
                "port = {}\ntls = \"none\"\nusername = \"ps\"\npassword = \"pop-secret\"\nallow_plaintext_auth = true",
                dovecot.port()
            ),
        );
    assert!(text.contains("pop-secret"), "the example file changed: {text}");
    std::fs::write(&cfg, text).unwrap();
    code(
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
            ],
        ),
        0,
    );
    code(&svoct(&cfg, &["mode", "oct"]), 0);

    let lots = dir.path().join("lots.b2");
    std::fs::write(
        &lots,
        generate_bytes(&SynthParams {
            invoices: 8,
            ..SynthParams::default()
        })
        .unwrap(),
    )
    .unwrap();
    let out = code(&svoct(&cfg, &["send", lots.to_str().unwrap()]), 0);
    assert!(out.contains("sent") && out.contains("oct@oct.invalid"), "{out}");
    let got = exim.wait_for_messages("oct", 1, Duration::from_secs(20)).unwrap();
    assert!(
        String::from_utf8_lossy(&got[0]).contains("Content-Description: FACTURE/SV/ZK"),
        "delivered to the OCT mailbox"
    );

    // Two messages for the PS: one that claims to be an RSP but is not in the annex form, and
    // the practice's ordinary mail.
    let smtp = SmtpTransport::new(&SmtpConfig::plain("127.0.0.1", exim.port())).unwrap();
    let to_ps = SmtpEnvelope::new("oct@oct.invalid", "ps@ps.invalid");
    smtp.send(
        &to_ps,
        b"From: oct@oct.invalid\r\nTo: ps@ps.invalid\r\nSubject: hello there\r\n\
          Content-Description: RSP/K\r\n\r\nhi\r\n",
    )
    .unwrap();
    smtp.send(
        &SmtpEnvelope::new("patient@example.org", "ps@ps.invalid"),
        b"From: patient@example.org\r\nTo: ps@ps.invalid\r\nSubject: Rendez-vous\r\n\r\nmardi\r\n",
    )
    .unwrap();
    exim.wait_for_messages("ps", 2, Duration::from_secs(20)).unwrap();

    // Wrong password: a clear one-line error, nothing deleted.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("pop-secret", "not-it"),
    )
    .unwrap();
    let out = svoct(&bad, &["fetch"]);
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(e.trim_end().lines().count(), 1, "{e}");
    assert!(e.contains("authentication refused"), "{e}");
    assert!(!e.contains("not-it"), "{e}");
    assert_eq!(exim.messages("ps").len(), 2);

    let json = code(&svoct(&cfg, &["fetch", "--json"]), 1);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["stored"], 1);
    assert_eq!(report["left"], 1);
    assert_eq!(report["quarantined"].as_array().unwrap().len(), 1);
    let left = exim.messages("ps");
    assert_eq!(left.len(), 1, "the ordinary mail stays");
    assert!(String::from_utf8_lossy(&std::fs::read(&left[0]).unwrap()).contains("Subject: Rendez-vous"));
    let q = code(&svoct(&cfg, &["quarantine"]), 0);
    assert!(q.contains("hello there"), "{q}");

    let journal: serde_json::Value =
        serde_json::from_str(&code(&svoct(&cfg, &["journal", "--json"]), 0)).unwrap();
    let dirs: Vec<&str> = journal
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["direction"].as_str().unwrap())
        .collect();
    assert_eq!(dirs, ["out", "in"]);
}
