//! The simulator on loopback, with the OCT side played by a real Exim: a forwarded file goes in
//! by SMTP (encrypted for the AM's throw-away certificate), the ARL and RSP messages come out in
//! Exim's `retours` Maildir, and every answer is checked against the rules, computed here from
//! the lots that were sent.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use svoct_formats::arl::{Arl, ArlStatus};
use svoct_formats::b2::synth::{SynthParams, generate_bytes};
use svoct_formats::b2::{self, LotKind};
use svoct_formats::noemie::{self, InvoiceState};
use svoct_mail::cms::{CmsCipher, PrivateKeyAndCert, RecipientCert};
use svoct_mail::profile::{self, Mailbox, MessageHeaders, ParseLimits, Profile, Protect};
use svoct_mail::subject::{FileKind, Subject};
use svoct_mail::transport::{self, SmtpConfig, SmtpTransport, Transport};
use svoct_sim::amsim::{AmIdentity, AmSim, AmSimConfig, Rules};
use svoct_testkit::certs::TestIdentity;
use svoct_testkit::{Exim, EximConfig};
use time::{Date, OffsetDateTime};

const RULES: Rules = Rules {
    negative_arl_after_days: 30,
    reject_every: 3,
    defer_every: 4,
};
const AM_MAILBOX: &str = "cpam@am.test";
const OCT_RETURNS: &str = "retours@oct.test";

fn aammjj(d: Date) -> String {
    format!("{:02}{:02}{:02}", d.year() % 100, d.month() as u8, d.day())
}

/// The forwarded message, as the OCT builds it: `/K`, encrypted for `recipient`.
fn forwarded(file: &[u8], invoices: usize, recipient: &RecipientCert) -> Vec<u8> {
    let subject: Subject = format!("SV140700/123456789/2026112607050900042/{invoices:05}")
        .parse()
        .unwrap();
    let envelope = MessageHeaders {
        from: Mailbox::new("factures@oct.test").unwrap(),
        to: Mailbox::new(AM_MAILBOX).unwrap(),
        subject,
        profile: Profile::Invoice(FileKind::Fse),
        file_name: "F00042.B2".into(),
        date: OffsetDateTime::now_utc(),
        message_id: None,
    };
    let protect = Protect::Encrypt {
        recipients: std::slice::from_ref(recipient),
        cipher: CmsCipher::Aes256Cbc,
        compress: true,
    };
    profile::build_message(&envelope, file, protect).unwrap()
}

fn send(to: SocketAddr, message: &[u8]) {
    let transport = SmtpTransport::new(&SmtpConfig::plain("127.0.0.1", to.port())).unwrap();
    transport
        .send(
            &transport::SmtpEnvelope::new("factures@oct.test", AM_MAILBOX),
            message,
        )
        .unwrap();
}

/// Polls a condition with a generous bound (this is a wait, not a timing assertion).
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "gave up waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Expected state of invoice `n` under [`RULES`], straight from the rules' text.
fn expected_state(n: u64) -> InvoiceState {
    if n.is_multiple_of(3) {
        InvoiceState::Rejected
    } else if n.is_multiple_of(4) {
        InvoiceState::Deferred
    } else {
        InvoiceState::Paid
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returns_follow_the_rules_and_bad_messages_are_kept() {
    let exim = Exim::start(&EximConfig {
        mailboxes: &["retours"],
        ..Default::default()
    })
    .unwrap();
    let am = TestIdentity::new("AM simulator test");
    let other = TestIdentity::new("Someone else");
    let key = PrivateKeyAndCert::from_bytes(&am.key_pem(), &am.cert_pem()).unwrap();
    let am_cert = RecipientCert::from_bytes(&am.cert_pem()).unwrap();
    let other_cert = RecipientCert::from_bytes(&other.cert_pem()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().join("spool");

    let sim = AmSim::start(AmSimConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        spool_dir: spool_dir.clone(),
        key: Some(key),
        oct_smtp: ("127.0.0.1".into(), exim.port()),
        oct_address: OCT_RETURNS.into(),
        identity: AmIdentity::default(),
        rules: RULES,
    })
    .await
    .unwrap();
    let addr = sim.local_addr();

    let today = OffsetDateTime::now_utc().date();
    let recent = today - time::Duration::days(2);
    let old = today - time::Duration::days(45);
    // A recent file with FSE and DRE lots (several lots: 5 invoices per lot), and an old one.
    let recent_file = generate_bytes(&SynthParams {
        seed: 11,
        invoices: 26,
        fse: true,
        dre: true,
        date: aammjj(recent),
        lot_size: 5,
        ..Default::default()
    })
    .unwrap();
    let old_file = generate_bytes(&SynthParams {
        seed: 12,
        invoices: 4,
        date: aammjj(old),
        ..Default::default()
    })
    .unwrap();
    let recent_b2 = b2::parse(&recent_file).unwrap();
    let old_b2 = b2::parse(&old_file).unwrap();
    assert!(recent_b2.lots().iter().any(|l| l.kind() == LotKind::Dre));
    assert!(
        recent_b2
            .lots()
            .iter()
            .filter(|l| l.kind() == LotKind::Fse)
            .count()
            >= 2
    );

    // First a message the AM cannot decrypt (encrypted for someone else), then the two files.
    let bad = forwarded(&recent_file, 26, &other_cert);
    let good_recent = forwarded(&recent_file, 26, &am_cert);
    let good_old = forwarded(&old_file, 4, &am_cert);
    tokio::task::spawn_blocking(move || {
        send(addr, &bad);
        send(addr, &good_recent);
        send(addr, &good_old);
    })
    .await
    .unwrap();

    // One ARL per lot of both files, one RSP (the one PS, the accepted FSE lots).
    let expected_messages = recent_b2.lots().len() + old_b2.lots().len() + 1;
    let messages = tokio::task::block_in_place(|| {
        exim.wait_for_messages("retours", expected_messages, Duration::from_secs(60))
    })
    .unwrap();
    until("the quarantine count", || {
        sim.stats().quarantined.load(Ordering::SeqCst) == 1
    })
    .await;

    let limits = ParseLimits::default();
    let mut arls = Vec::new();
    let mut rsps = Vec::new();
    let mut ids = std::collections::BTreeSet::new();
    for raw in &messages {
        let text = String::from_utf8_lossy(raw);
        let id = text
            .lines()
            .find_map(|l| l.strip_prefix("Message-ID: <"))
            .unwrap_or_else(|| panic!("no Message-ID in {text}"));
        assert!(id.starts_with("amsim.") && id.ends_with("@am.test>"), "{id}");
        assert!(ids.insert(id.to_owned()), "Message-ID {id} used twice");
        let parsed = profile::parse_message(raw, &limits).unwrap();
        assert!(text.contains(&format!("To: {OCT_RETURNS}")), "{text}");
        assert!(
            text.contains(&format!("From: {AM_MAILBOX}")),
            "answers from the mailbox forwarded to"
        );
        let Subject::Return(subject) = &parsed.subject else {
            panic!("not a return subject: {}", parsed.subject)
        };
        assert_eq!(subject.ps_number.to_string(), "123456789");
        match parsed.description.profile {
            Profile::Arl => arls.push(Arl::parse(&parsed.attachment).unwrap()),
            Profile::Rsp => rsps.push(noemie::report(&parsed.attachment).unwrap()),
            other => panic!("unexpected profile {other:?}"),
        }
    }

    // ARLs: positive for the recent lots, negative (with the age in the reason) for the old.
    assert_eq!(arls.len(), recent_b2.lots().len() + old_b2.lots().len());
    for (lots, date, positive) in [(&recent_b2, recent, true), (&old_b2, old, false)] {
        for lot in lots.lots() {
            let number = lot.lot_number().unwrap();
            let arl = arls
                .iter()
                .find(|a| {
                    u32::from(a.lot_number) == number
                        && (i32::from(a.lot_date.year), a.lot_date.month, a.lot_date.day)
                            == (date.year(), date.month() as u8, date.day())
                })
                .unwrap_or_else(|| panic!("no ARL for lot {number} of {date}"));
            assert_eq!(arl.ps_number, "123456789");
            assert_eq!(arl.sender_number, "00000000000011");
            assert_eq!(arl.lot_kind, lot.kind().to_string());
            assert_eq!(arl.invoice_count, Some(lot.invoice_count() as u16));
            if positive {
                assert_eq!(arl.status, ArlStatus::Positive);
                assert!(arl.reasons.is_empty());
            } else {
                assert_eq!(arl.status, ArlStatus::Negative);
                assert_eq!(arl.reasons.len(), 1);
                assert!(
                    arl.reasons[0].label.contains("45 JOURS"),
                    "{}",
                    arl.reasons[0].label
                );
            }
        }
    }

    // The RSP: exactly the invoices of the recent FSE lots, each by the rules.
    assert_eq!(rsps.len(), 1);
    let rsp = &rsps[0];
    assert!(rsp.findings.is_empty(), "{:?}", rsp.findings);
    assert_eq!(rsp.reference, "580");
    let fse: Vec<_> = recent_b2
        .lots()
        .iter()
        .filter(|l| l.kind() == LotKind::Fse)
        .flat_map(|l| l.invoices().iter().map(move |i| (l, i)))
        .collect();
    assert_eq!(rsp.invoices.len(), fse.len());
    let (mut paid, mut rejected, mut deferred) = (0, 0, 0);
    for (lot, invoice) in fse {
        let n = invoice.number().unwrap();
        let got = rsp
            .invoices
            .iter()
            .find(|r| r.invoice_number.parse::<u64>().ok() == Some(n))
            .unwrap_or_else(|| panic!("invoice {n} missing from the RSP"));
        assert_eq!(got.lot_number.parse::<u32>().unwrap(), lot.lot_number().unwrap());
        let state = expected_state(n);
        assert_eq!(got.state, state, "invoice {n}");
        match state {
            InvoiceState::Paid => {
                paid += 1;
                assert_eq!(got.paid_cents as u64, invoice.total_amo().unwrap(), "invoice {n}");
            }
            InvoiceState::Rejected => {
                rejected += 1;
                assert_eq!(got.paid_cents, 0);
                assert_eq!(got.rejects.len(), 1, "invoice {n}");
            }
            _ => {
                deferred += 1;
                assert_eq!(got.paid_cents, 0);
            }
        }
    }
    assert!(
        paid > 0 && rejected > 0 && deferred > 0,
        "{paid} {rejected} {deferred}"
    );

    // The undecryptable message: kept in the spool with its reason, and answered with nothing.
    let quarantined = sim.quarantined().unwrap();
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    let reason = &quarantined[0].reason;
    assert!(reason.contains("wrong key"), "{reason}");
    assert!(
        spool_dir
            .join("quarantine")
            .join(quarantined[0].id.to_string())
            .is_file(),
        "the message itself stays in the spool"
    );
    // Counted once the last return of a file is sent, which may trail its delivery.
    until("two files answered", || {
        sim.stats().files.load(Ordering::SeqCst) == 2
    })
    .await;
    assert_eq!(exim.messages("retours").len(), expected_messages);
    sim.shutdown().await;
}

/// The OCT answers `451` to the returns: the message stays in the spool and is tried again,
/// never quarantined, never counted as answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_oct_is_retried_not_quarantined() {
    let exim = Exim::start(&EximConfig {
        mailboxes: &["retours"],
        defer_local_parts: &["later"],
        ..Default::default()
    })
    .unwrap();
    let am = TestIdentity::new("AM retry test");
    let key = PrivateKeyAndCert::from_bytes(&am.key_pem(), &am.cert_pem()).unwrap();
    let am_cert = RecipientCert::from_bytes(&am.cert_pem()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sim = AmSim::start(AmSimConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        spool_dir: dir.path().join("spool"),
        key: Some(key),
        oct_smtp: ("127.0.0.1".into(), exim.port()),
        oct_address: "later@oct.test".into(),
        identity: AmIdentity::default(),
        rules: RULES,
    })
    .await
    .unwrap();
    let addr = sim.local_addr();
    let today = OffsetDateTime::now_utc().date();
    let file = generate_bytes(&SynthParams {
        seed: 3,
        invoices: 2,
        date: aammjj(today),
        ..Default::default()
    })
    .unwrap();
    let message = forwarded(&file, 2, &am_cert);
    tokio::task::spawn_blocking(move || send(addr, &message))
        .await
        .unwrap();

    until("two send attempts", || {
        sim.stats().send_retries.load(Ordering::SeqCst) >= 2
    })
    .await;
    assert!(sim.quarantined().unwrap().is_empty());
    assert_eq!(sim.waiting().unwrap(), 1, "the message is still in the spool");
    let totals = sim.shutdown().await;
    assert_eq!(totals.files, 0, "{totals:?}");
    assert_eq!(totals.quarantined, 0, "{totals:?}");
    assert!(exim.messages("retours").is_empty());
}
