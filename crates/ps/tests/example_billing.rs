//! The library example (`examples/billing.rs`), run as a product would run it, against real
//! servers: Exim takes the messages, Dovecot serves the returns over POP3. It must send each file
//! once (never resend on its own), refuse the same invoices on a second run, retry nothing that
//! was sent, and pick up returns.

mod common;

#[allow(dead_code)]
#[path = "../examples/billing.rs"]
mod billing;

use std::path::Path;
use std::time::Duration;

use svoct_formats::b2::synth::{SynthParams, generate_bytes};
use svoct_mail::subject::ReturnKind;
use svoct_mail::transport::{SmtpEnvelope, Transport};
use svoct_store::{Direction, Status};
use svoct_testkit::{Dovecot, Exim, EximConfig};

const WAIT: Duration = Duration::from_secs(20);

fn write_config(dir: &Path, smtp: u16, pop3: u16, oct_cert: &Path) -> std::path::PathBuf {
    let text = format!(
        r#"mode = "oct"
store = "ps.sqlite"

[identity]
sender_number = "123456789"
ps_number = "123456789"
from = "ps@ps.invalid"

[network.smtp]
host = "127.0.0.1"
port = {smtp}
tls = "none"

[network.mailbox]
host = "127.0.0.1"
port = {pop3}
tls = "none"
username = "ps"
password = "pop-pw"
allow_plaintext_auth = true

[direct]
spec_version = "140700"

[oct]
address = "oct@oct.invalid"
certificate = {cert:?}
identifier = "12345678900014"
option = "single"
compress = true
"#,
        cert = oct_cert.display().to_string()
    );
    let path = dir.join("svoct-ps.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn sent_entries(config: &Path) -> usize {
    let ps = svoct_ps::Ps::open(svoct_ps::config::Config::load(config).unwrap()).unwrap();
    ps.journal(None)
        .unwrap()
        .iter()
        .filter(|e| e.direction == Direction::Out)
        .count()
}

#[test]
fn the_example_sends_once_refuses_duplicates_and_fetches_returns() {
    let dir = tempfile::tempdir().unwrap();
    let keys = common::keys(dir.path());
    let exim = Exim::start(&EximConfig {
        mailboxes: &["oct", "ps"],
        ..EximConfig::default()
    })
    .unwrap();
    let dovecot = Dovecot::start(&[("ps", "pop-pw", exim.maildir("ps").unwrap())]).unwrap();
    let config = write_config(dir.path(), exim.port(), dovecot.port(), &keys.oct_cert);
    let lots = dir.path().join("lots.b2");
    let bytes = generate_bytes(&SynthParams {
        invoices: 12,
        lot_size: 5,
        ..SynthParams::default()
    })
    .unwrap();
    std::fs::write(&lots, bytes).unwrap();

    let first = billing::run(&config, std::slice::from_ref(&lots), None).unwrap();
    assert!(first.retried.is_empty());
    assert_eq!(first.sent.len(), 1, "option single: one file");
    assert_eq!(first.sent[0].status, Status::Sent, "{}", first.sent[0].answer);
    assert_eq!(sent_entries(&config), 1, "sent once, not resent by the example");
    let delivered = exim.wait_for_messages("oct", 1, WAIT).unwrap();
    assert!(
        String::from_utf8_lossy(&delivered[0]).contains(&first.sent[0].subject),
        "the OCT got the journaled message"
    );

    // The button pressed again with the same lots: refused, nothing leaves.
    let again = billing::run(&config, std::slice::from_ref(&lots), None).unwrap_err();
    assert!(again.to_string().contains("already in journal entry"), "{again}");
    assert_eq!(sent_entries(&config), 1);

    // A return from the OCT arrives; the next run (no new lots) picks it up and retries nothing.
    let t = svoct_mail::transport::SmtpTransport::new(&svoct_mail::transport::SmtpConfig::plain(
        "127.0.0.1",
        exim.port(),
    ))
    .unwrap();
    let art = common::return_message(ReturnKind::Art, b"Lot 001 recu.\r\n", None);
    t.send(&SmtpEnvelope::new("oct@oct.invalid", "ps@ps.invalid"), &art)
        .unwrap();
    exim.wait_for_messages("ps", 1, WAIT).unwrap();
    let third = billing::run(&config, &[], None).unwrap();
    assert!(third.retried.is_empty() && third.sent.is_empty());
    assert_eq!(third.fetched, 1);
    assert_eq!(third.quarantined, 0);
    assert_eq!(sent_entries(&config), 1);
}

#[test]
fn the_example_writes_eml_files_with_out_and_needs_a_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let keys = common::keys(dir.path());
    // No server at all: --out writes the messages; the mailbox is not configured here.
    let config = write_config(dir.path(), 9, 9, &keys.oct_cert);
    let text = std::fs::read_to_string(&config).unwrap();
    let start = text.find("[network.mailbox]").unwrap();
    let end = text.find("[direct]").unwrap();
    std::fs::write(&config, format!("{}{}", &text[..start], &text[end..])).unwrap();
    let lots = dir.path().join("lots.b2");
    std::fs::write(&lots, generate_bytes(&SynthParams::default()).unwrap()).unwrap();
    let out = dir.path().join("outbox");
    let s = billing::run(&config, std::slice::from_ref(&lots), Some(&out)).unwrap();
    assert_eq!(s.sent.len(), 1);
    let emls = std::fs::read_dir(&out)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "eml"))
        .count();
    assert_eq!(emls, 1);
    let missing = billing::run(&dir.path().join("nope.toml"), &[], None).unwrap_err();
    assert!(missing.to_string().contains("nope.toml"), "{missing}");
}
