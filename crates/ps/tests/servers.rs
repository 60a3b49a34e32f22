//! The PS module against real servers: Exim (SMTP, delivering to Maildirs) and Dovecot (POP3
//! over those Maildirs), both started on loopback by `svoct-testkit`.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use svoct_formats::b2::synth::{SynthParams, generate_bytes};
use svoct_mail::cms::PrivateKeyAndCert;
use svoct_mail::profile::{ParseLimits, parse_message};
use svoct_mail::subject::ReturnKind;
use svoct_mail::transport::{SmtpEnvelope, Transport};
use svoct_ps::config::{Config, ConfigFile, Mode, OctChanges, SendOption};
use svoct_ps::{LotFile, Ps, Sent};
use svoct_store::{InboxState, Status};
use svoct_testkit::{Dovecot, Exim, EximConfig, free_port, ps_config};

const WAIT: Duration = Duration::from_secs(20);

fn no_progress(_: &Sent) {}

fn exim() -> Exim {
    Exim::start(&EximConfig {
        mailboxes: &["oct", "ps", "cpam100"],
        ..EximConfig::default()
    })
    .unwrap()
}

/// Writes a direct-mode configuration (route 100 to `cpam100`), returns its path.
fn write_config(dir: &Path, smtp_port: u16, pop3: Option<(u16, &str)>) -> PathBuf {
    // Comments and blank lines on purpose: the R1.2 test checks that `ConfigFile` edits keep them.
    let mut text = "# PS configuration for the integration tests\n".to_owned()
        + &ps_config::base("direct", "ps.sqlite", smtp_port);
    text.push_str(
        r#"tls = "none"

[direct]
spec_version = "140700"

[direct.routes."100"]
mailbox = "cpam100@am.invalid"   # the caisse's mailbox

[decryption]
key = "ps.key"
certificate = "ps.crt"

[returns]
senders = ["oct@oct.invalid"]   # the test kit's returns come from the OCT's address
"#,
    );
    if let Some((port, password)) = pop3 {
        text.push_str(&format!(
            "\n[network.mailbox]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n\
             username = \"ps\"\npassword = \"{password}\"\nallow_plaintext_auth = true\n"
        ));
    }
    ps_config::write(dir, &text)
}

fn switch_to_oct(path: &Path, option: SendOption) {
    let mut f = ConfigFile::open(path).unwrap();
    f.set_oct(&OctChanges {
        address: Some("oct@oct.invalid".into()),
        certificate: Some("oct.crt".into()),
        identifier: Some("12345678900014".into()),
        option: Some(option),
        compress: Some(true),
        enriched_files: None,
    });
    f.set_mode(Mode::Oct);
    f.save().unwrap();
}

fn lots(seed: u64, invoices: usize) -> LotFile {
    LotFile {
        name: format!("lots-{seed}.b2"),
        bytes: generate_bytes(&SynthParams {
            seed,
            invoices,
            lot_size: 5,
            ..SynthParams::default()
        })
        .unwrap(),
    }
}

fn open(path: &Path) -> Ps {
    Ps::open(Config::load(path).unwrap()).unwrap()
}

#[test]
fn oct_single_file_reaches_the_oct_mailbox_and_decrypts_to_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let keys = common::keys(dir.path());
    let exim = exim();
    let path = write_config(dir.path(), exim.port(), None);
    switch_to_oct(&path, SendOption::Single);
    let ps = open(&path);
    let planned = ps.plan(&[lots(1, 12)]).unwrap();
    let file = planned[0].bytes.clone();
    let t = ps.smtp_transport().unwrap();
    let sent = ps.send_planned(&t, planned, &mut no_progress).unwrap();
    assert_eq!(sent[0].status, Status::Sent, "{}", sent[0].answer);
    assert!(sent[0].answer.starts_with("250"), "{}", sent[0].answer);

    let delivered = exim.wait_for_messages("oct", 1, WAIT).unwrap();
    let msg = parse_message(&delivered[0], &ParseLimits::default()).unwrap();
    assert_eq!(msg.subject.to_string(), sent[0].subject);
    assert_eq!(msg.profile_name(), "FACTURE/SV/ZK");
    let key = PrivateKeyAndCert::from_files(&keys.oct_key, &keys.oct_cert).unwrap();
    let opened = msg.open(Some(&key), &ParseLimits::default()).unwrap();
    assert_eq!(opened.bytes, file, "the OCT gets the single file byte for byte");

    // R7.2: the dLOI request goes to the same OCT, encrypted for it.
    let loi = ps.request_loi(&t, 7).unwrap();
    assert_eq!(loi.status, Status::Sent, "{}", loi.answer);
    let delivered = exim.wait_for_messages("oct", 2, WAIT).unwrap();
    let request = delivered
        .iter()
        .map(|raw| parse_message(raw, &ParseLimits::default()).unwrap())
        .find(|m| m.profile_name() == "LOI/DEMANDE/K")
        .unwrap();
    assert_eq!(request.subject.to_string(), loi.subject);
    let opened = request.open(Some(&key), &ParseLimits::default()).unwrap();
    let parsed = svoct_formats::loi::DloiRequest::parse(&opened.bytes).unwrap();
    assert_eq!(parsed.version, 7);
}

#[test]
fn oct_and_back_leaves_direct_settings_byte_identical_and_direct_still_works() {
    let dir = tempfile::tempdir().unwrap();
    common::keys(dir.path());
    let exim = exim();
    let path = write_config(dir.path(), exim.port(), None);
    let before = std::fs::read(&path).unwrap();

    switch_to_oct(&path, SendOption::Split);
    let ps = open(&path);
    let t = ps.smtp_transport().unwrap();
    let sent = ps.send(&t, &[lots(2, 4)], &mut no_progress).unwrap();
    assert_eq!(sent[0].status, Status::Sent);
    assert_eq!(sent[0].to, "oct@oct.invalid");
    exim.wait_for_messages("oct", 1, WAIT).unwrap();
    drop(ps);

    let mut f = ConfigFile::open(&path).unwrap();
    f.set_mode(Mode::Direct);
    f.remove_oct();
    f.save().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), before, "R1.2");

    let ps = open(&path);
    let sent = ps.send(&t, &[lots(3, 4)], &mut no_progress).unwrap();
    assert_eq!(sent[0].status, Status::Sent, "{}", sent[0].answer);
    let got = exim.wait_for_messages("cpam100", 1, WAIT).unwrap();
    let msg = parse_message(&got[0], &ParseLimits::default()).unwrap();
    assert_eq!(
        msg.profile_name(),
        "FACTURE/SV",
        "direct route without certificate"
    );
    assert_eq!(msg.subject.to_string(), sent[0].subject);
}

#[test]
fn smtp_server_down_defers_and_retry_delivers_with_a_new_compostage() {
    let dir = tempfile::tempdir().unwrap();
    common::keys(dir.path());
    let exim = exim();
    let dead = free_port().unwrap();
    let path = write_config(dir.path(), dead, None);
    switch_to_oct(&path, SendOption::Single);
    let ps = open(&path);
    let sent = ps
        .send(&ps.smtp_transport().unwrap(), &[lots(4, 3)], &mut no_progress)
        .unwrap();
    assert_eq!(sent[0].status, Status::Deferred, "{}", sent[0].answer);
    drop(ps);

    // The provider's server is back (here: the configuration points at the running Exim).
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(&format!("port = {dead}"), &format!("port = {}", exim.port()));
    std::fs::write(&path, text).unwrap();
    let ps = open(&path);
    let retried = ps.retry(&ps.smtp_transport().unwrap(), &mut no_progress).unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].status, Status::Sent, "{}", retried[0].answer);
    assert_ne!(retried[0].compostage, sent[0].compostage);
    let got = exim.wait_for_messages("oct", 1, WAIT).unwrap();
    let msg = parse_message(&got[0], &ParseLimits::default()).unwrap();
    assert_eq!(msg.subject.to_string(), retried[0].subject);
    // Nothing more to retry, nothing sent twice.
    assert!(
        ps.retry(&ps.smtp_transport().unwrap(), &mut no_progress)
            .unwrap()
            .is_empty()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(exim.messages("oct").len(), 1);
}

#[test]
fn a_5xx_refusal_marks_the_message_failed_with_the_server_answer() {
    let dir = tempfile::tempdir().unwrap();
    common::keys(dir.path());
    let exim = exim();
    let path = write_config(dir.path(), exim.port(), None);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("cpam100@am.invalid", "unknown-caisse@am.invalid");
    std::fs::write(&path, text).unwrap();
    let ps = open(&path);
    let sent = ps
        .send(&ps.smtp_transport().unwrap(), &[lots(5, 2)], &mut no_progress)
        .unwrap();
    assert_eq!(sent[0].status, Status::Failed);
    assert!(sent[0].answer.contains("550"), "{}", sent[0].answer);
    let entry = &ps.journal(None).unwrap()[0];
    assert_eq!(entry.status, Status::Failed);
    assert!(entry.server_answer.as_deref().unwrap_or("").contains("550"));
}

#[test]
fn fetch_through_dovecot_keeps_every_message_and_dot_lines_intact() {
    let dir = tempfile::tempdir().unwrap();
    let keys = common::keys(dir.path());
    let exim = exim();
    let dovecot = Dovecot::start(&[("ps", "pop-pw", exim.maildir("ps").unwrap())]).unwrap();
    let path = write_config(dir.path(), exim.port(), Some((dovecot.port(), "pop-pw")));
    let ps = open(&path);
    let t = ps.smtp_transport().unwrap();
    let to_ps = SmtpEnvelope::new("oct@oct.invalid", "ps@ps.invalid");

    // An ART whose text holds a line with a single dot, an encrypted RSP, and a message of no
    // known profile whose raw body holds "\r\n.\r\n" (dot-stuffed by SMTP and POP3).
    let art_text = b"Lot 001 recu.\r\n.\r\nFin du message.\r\n".to_vec();
    t.send(&to_ps, &common::return_message(ReturnKind::Art, &art_text, None))
        .unwrap();
    let rsp_file = common::rsp_580("000000001");
    t.send(
        &to_ps,
        &common::return_message(ReturnKind::Rsp, &rsp_file, Some(&keys.ps_cert)),
    )
    .unwrap();
    // (Its profile claims a return, so it is taken; an ordinary message would be left.)
    let mut unknown = String::from_utf8(common::unknown_message())
        .unwrap()
        .replace("Subject: hello", "Subject: hello\r\nContent-Description: RSP/K")
        .into_bytes();
    unknown.extend_from_slice(b".\r\n..\r\n.hidden line\r\nend\r\n");
    t.send(&to_ps, &unknown).unwrap();
    exim.wait_for_messages("ps", 3, WAIT).unwrap();

    let report = ps.fetch().unwrap();
    assert_eq!(report.stored, 3, "{:?}", report);
    assert_eq!(report.classified.len(), 2, "{:?}", report);
    assert_eq!(report.quarantined.len(), 1, "{:?}", report);
    assert!(
        exim.messages("ps").is_empty(),
        "deleted on the server once stored"
    );

    // The ART, shown, is processed; the RSP names an invoice never sent: kept.
    let mut kept = ps.inbox(InboxState::New).unwrap();
    kept.extend(ps.inbox(InboxState::Processed).unwrap());
    let art = kept
        .iter()
        .find(|m| m.classification.as_deref() == Some("ART"))
        .unwrap();
    let msg = parse_message(&art.raw, &ParseLimits::default()).unwrap();
    assert_eq!(msg.open(None, &ParseLimits::default()).unwrap().bytes, art_text);
    let rsp = kept
        .iter()
        .find(|m| m.classification.as_deref() == Some("RSP"))
        .unwrap();
    let key = PrivateKeyAndCert::from_files(&keys.ps_key, &keys.ps_cert).unwrap();
    let msg = parse_message(&rsp.raw, &ParseLimits::default()).unwrap();
    assert_eq!(
        msg.open(Some(&key), &ParseLimits::default()).unwrap().bytes,
        rsp_file
    );
    let q = ps.inbox(InboxState::Quarantined).unwrap();
    assert_eq!(q.len(), 1);
    assert!(
        q[0].raw.windows(unknown.len()).any(|w| w == unknown.as_slice()),
        "the raw message, dot lines included, arrives intact"
    );

    // A second fetch: nothing new, nothing lost.
    let again = ps.fetch().unwrap();
    assert_eq!(again.stored, 0);
    assert_eq!(ps.inbox(InboxState::New).unwrap().len(), 1);
    assert_eq!(ps.inbox(InboxState::Processed).unwrap().len(), 1);
    assert_eq!(ps.inbox(InboxState::Quarantined).unwrap().len(), 1);
}

/// What Python's poplib sees in the mailbox: one `Subject` per message, through `TOP n 0`
/// (which marks nothing read), sorted.
fn subjects_seen_by_poplib(port: u16, password: &str) -> Vec<String> {
    let script = r#"
import poplib, sys
p = poplib.POP3('127.0.0.1', int(sys.argv[1]), timeout=20)
p.user('ps')
p.pass_(sys.argv[2])
count, _ = p.stat()
for n in range(1, count + 1):
    _, lines, _ = p.top(n, 0)
    subject = [l.decode() for l in lines if l.lower().startswith(b'subject:')]
    print(subject[0][8:].strip() if subject else '')
p.quit()
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, &port.to_string(), password])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut v: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    v.sort();
    v
}

/// Issue 11 point 10 over POP3: a patient's e-mail, the ISP's invoice and another PS's return
/// share the mailbox with our returns. Only ours are retrieved and deleted; the others stay on
/// the server unread (checked with Python's poplib and on the Maildir Dovecot serves: no `S`
/// flag, same bytes).
#[test]
fn pop3_fetch_takes_only_our_returns_and_leaves_other_mail_unread() {
    let dir = tempfile::tempdir().unwrap();
    let keys = common::keys(dir.path());
    let exim = exim();
    let maildir = exim.maildir("ps").unwrap().to_path_buf();
    let dovecot = Dovecot::start(&[("ps", "pop-pw", &maildir)]).unwrap();
    let path = write_config(dir.path(), exim.port(), Some((dovecot.port(), "pop-pw")));
    let ps = open(&path);
    let t = ps.smtp_transport().unwrap();
    let to_ps = SmtpEnvelope::new("someone@example.org", "ps@ps.invalid");
    let patient = b"From: patient@example.org\r\nTo: ps@ps.invalid\r\nSubject: Rendez-vous mardi\r\n\
        Content-Type: text/plain\r\n\r\nBonjour docteur, je confirme mardi 10h.\r\n";
    let isp = b"From: factures@isp.example\r\nTo: ps@ps.invalid\r\nSubject: Votre facture\r\n\
        Content-Type: text/plain\r\n\r\nMontant: 29,99 EUR\r\n";
    let other_ps = String::from_utf8(common::return_message(ReturnKind::Art, b"Recu.\r\n", None))
        .unwrap()
        .replace("ART/123456789/", "ART/987654321/")
        .into_bytes();
    for m in [&patient[..], &isp[..], &other_ps] {
        t.send(&to_ps, m).unwrap();
    }
    t.send(
        &to_ps,
        &common::return_message(
            ReturnKind::Rsp,
            &common::rsp_580("000000001"),
            Some(&keys.ps_cert),
        ),
    )
    .unwrap();
    t.send(
        &to_ps,
        &common::return_message(ReturnKind::Art, b"Fichier recu.\r\n", None),
    )
    .unwrap();
    exim.wait_for_messages("ps", 5, WAIT).unwrap();
    let mut before = subjects_seen_by_poplib(dovecot.port(), "pop-pw");
    assert_eq!(before.len(), 5, "{before:?}");
    before.retain(|s| !s.contains("/123456789/"));

    let report = ps.fetch().unwrap();
    assert_eq!((report.stored, report.left), (2, 3), "{report:?}");
    assert_eq!(report.classified.len(), 2, "{report:?}");
    assert!(report.quarantined.is_empty(), "{report:?}");

    // The server, seen by an independent client: exactly the three other messages remain.
    let after = subjects_seen_by_poplib(dovecot.port(), "pop-pw");
    assert_eq!(after, before);
    assert_eq!(
        after,
        [
            "ART/987654321/".to_owned() + &after[0][14..],
            "Rendez-vous mardi".to_owned(),
            "Votre facture".to_owned()
        ]
    );
    // On disk: three files, none flagged Seen (Dovecot adds `S` to what RETR read).
    let files = exim.messages("ps");
    assert_eq!(files.len(), 3, "{files:?}");
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let flags = name.split_once(":2,").map(|(_, fl)| fl).unwrap_or("");
        assert!(!flags.contains('S'), "{name} was marked read");
        // Exim writes Maildir files with LF line ends.
        let lf = |b: &[u8]| String::from_utf8_lossy(b).replace("\r\n", "\n");
        let raw = lf(&std::fs::read(f).unwrap());
        assert!(
            [&patient[..], &isp[..], &other_ps[..]]
                .iter()
                .any(|m| raw.contains(&lf(m))),
            "{name}: the message is intact"
        );
    }

    // A second fetch leaves them again.
    let again = ps.fetch().unwrap();
    assert_eq!((again.stored, again.left), (0, 3));
    assert_eq!(subjects_seen_by_poplib(dovecot.port(), "pop-pw"), before);
}

#[test]
fn pop3_authentication_failure_is_a_clear_error_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    common::keys(dir.path());
    let exim = exim();
    let dovecot = Dovecot::start(&[("ps", "right-pw", exim.maildir("ps").unwrap())]).unwrap();
    let path = write_config(dir.path(), exim.port(), Some((dovecot.port(), "wrong-pw")));
    let ps = open(&path);
    ps.smtp_transport()
        .unwrap()
        .send(
            &SmtpEnvelope::new("oct@oct.invalid", "ps@ps.invalid"),
            &common::return_message(ReturnKind::Art, b"texte", None),
        )
        .unwrap();
    exim.wait_for_messages("ps", 1, WAIT).unwrap();
    let e = ps.fetch().unwrap_err().to_string();
    assert!(e.contains("authentication refused"), "{e}");
    assert!(!e.contains("wrong-pw"), "the password is never printed: {e}");
    assert_eq!(exim.messages("ps").len(), 1, "still on the server");
}
