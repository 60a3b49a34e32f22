//! `svoct am-sim` through the real binary: its flags, a forwarded file answered to a real Exim,
//! a graceful stop on SIGTERM, and refusals of bad arguments.
// The tests marked `#[cfg(feature = "server-tests")]` need the Exim, Dovecot or swaks packages
// (scripts/setup.sh); without the feature their helpers are unused, and that is expected.
#![cfg_attr(not(feature = "server-tests"), allow(dead_code, unused_imports))]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use svoct_formats::arl::{Arl, ArlStatus};
use svoct_formats::b2::{self, synth::SynthParams, synth::generate_bytes};
use svoct_formats::noemie::{self, InvoiceState};
use svoct_mail::cms::{CmsCipher, RecipientCert};
use svoct_mail::profile::{self, Mailbox, MessageHeaders, ParseLimits, Profile, Protect};
use svoct_mail::subject::{FileKind, Subject};
use svoct_mail::transport::{self, SmtpConfig, SmtpTransport, Transport};
use svoct_testkit::certs::TestIdentity;
use svoct_testkit::{Exim, EximConfig};

fn svoct() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_svoct"));
    c.env_remove("SVOCT_LOG");
    c
}

#[test]
fn help_lists_every_flag() {
    let out = svoct().args(["am-sim", "--help"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen",
        "--spool",
        "--key",
        "--cert",
        "--oct ",
        "--oct-address",
        "--negative-after-days",
        "--reject-every",
        "--defer-every",
        "--sender-number",
        "--address",
    ] {
        assert!(text.contains(flag), "{flag} missing from:\n{text}");
    }
}

#[test]
fn bad_arguments_are_refused_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let base = |extra: &[&str]| {
        let mut args = vec![
            "am-sim",
            "--listen",
            "127.0.0.1:0",
            "--spool",
            spool.to_str().unwrap(),
            "--oct-address",
            "retours@oct.test",
        ];
        args.extend_from_slice(extra);
        svoct().args(&args).output().unwrap()
    };
    let out = base(&["--oct", "127.0.0.1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HOST:PORT"));
    let out = base(&["--oct", "127.0.0.1:25", "--sender-number", "12AB"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--sender-number"));
    // --key without --cert: clap refuses it (usage error, code 2).
    let out = base(&["--oct", "127.0.0.1:25", "--key", "/nonexistent.key"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--cert"));
}

/// Kills the child if the test fails before it is stopped properly.
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn today_aammjj() -> String {
    let out = Command::new("date").args(["-u", "+%y%m%d"]).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[cfg(feature = "server-tests")]
#[test]
fn answers_a_forwarded_file_then_stops_on_sigterm() {
    let exim = Exim::start(&EximConfig {
        mailboxes: &["retours"],
        ..Default::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let am = TestIdentity::new("AM cli test");
    let (key, cert) = am.write_pem(dir.path(), "am");
    let spool = dir.path().join("spool");
    let child = svoct()
        .args([
            "--log",
            "info",
            "--log-json",
            "am-sim",
            "--listen",
            "127.0.0.1:0",
            "--spool",
        ])
        .arg(&spool)
        .arg("--key")
        .arg(&key)
        .arg("--cert")
        .arg(&cert)
        .args(["--oct", &format!("127.0.0.1:{}", exim.port())])
        .args(["--oct-address", "retours@oct.test"])
        .args([
            "--reject-every",
            "2",
            "--defer-every",
            "0",
            "--sender-number",
            "42",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = Guard(Some(child));
    let child = guard.0.as_mut().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: std::net::SocketAddr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();

    let file = generate_bytes(&SynthParams {
        seed: 5,
        invoices: 6,
        date: today_aammjj(),
        ..Default::default()
    })
    .unwrap();
    let input = b2::parse(&file).unwrap();
    let envelope = MessageHeaders {
        from: Mailbox::new("factures@oct.test").unwrap(),
        to: Mailbox::new("cpam@am.test").unwrap(),
        subject: "SV140700/123456789/2026112607050900042/00006"
            .parse::<Subject>()
            .unwrap(),
        profile: Profile::Invoice(FileKind::Fse),
        file_name: "F00001.B2".into(),
        date: time_now(),
        message_id: None,
    };
    let recipient = RecipientCert::from_bytes(&am.cert_pem()).unwrap();
    let message = profile::build_message(
        &envelope,
        &file,
        Protect::Encrypt {
            recipients: std::slice::from_ref(&recipient),
            cipher: CmsCipher::Aes256Cbc,
            compress: false,
        },
    )
    .unwrap();
    SmtpTransport::new(&SmtpConfig::plain("127.0.0.1", addr.port()))
        .unwrap()
        .send(
            &transport::SmtpEnvelope::new("factures@oct.test", "cpam@am.test"),
            &message,
        )
        .unwrap();

    // One lot: one ARL, and one RSP.
    let returns = exim
        .wait_for_messages("retours", 2, Duration::from_secs(60))
        .unwrap();
    let limits = ParseLimits::default();
    let mut seen_arl = false;
    let mut seen_rsp = false;
    for raw in &returns {
        let parsed = profile::parse_message(raw, &limits).unwrap();
        match parsed.description.profile {
            Profile::Arl => {
                let arl = Arl::parse(&parsed.attachment).unwrap();
                assert_eq!(arl.sender_number, "00000000000042", "--sender-number, padded");
                assert_eq!(arl.status, ArlStatus::Positive);
                seen_arl = true;
            }
            Profile::Rsp => {
                let report = noemie::report(&parsed.attachment).unwrap();
                assert!(report.findings.is_empty(), "{:?}", report.findings);
                let invoices: Vec<_> = input.lots().iter().flat_map(|l| l.invoices()).collect();
                assert_eq!(report.invoices.len(), invoices.len());
                for inv in invoices {
                    let n = inv.number().unwrap();
                    let got = report
                        .invoices
                        .iter()
                        .find(|r| r.invoice_number.parse::<u64>().ok() == Some(n))
                        .unwrap();
                    // --reject-every 2, --defer-every 0: even numbers rejected, others paid.
                    let want = if n.is_multiple_of(2) {
                        InvoiceState::Rejected
                    } else {
                        InvoiceState::Paid
                    };
                    assert_eq!(got.state, want, "invoice {n}");
                }
                seen_rsp = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(seen_arl && seen_rsp);

    // SIGTERM: a clean exit, and the log names the file answered without its content.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let start = Instant::now();
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "am-sim did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(25));
    };
    let mut log = String::new();
    child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    guard.0 = None;
    assert!(exit.success(), "exit {exit:?}, log:\n{log}");
    assert!(log.contains("answered a forwarded file"), "{log}");
    assert!(log.contains(r#""arl":1"#) && log.contains(r#""rsp":1"#), "{log}");
    assert!(log.contains("am-sim: stopped"), "{log}");
    assert!(!log.contains("DOCTEUR"), "file content in the log:\n{log}");
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}
