//! The running concentrator against real peers: messages sent over TCP to the ingress (lettre's
//! SMTP client and Python's smtplib), forwarded through a real Exim delivering to AM Maildirs,
//! ART delivered to the PS mailbox, downstream failures retried with backoff.
// The tests marked `#[cfg(feature = "server-tests")]` need the Exim, Dovecot or swaks packages
// (scripts/setup.sh); without the feature their helpers are unused, and that is expected.
#![cfg_attr(not(feature = "server-tests"), allow(dead_code, unused_imports))]

mod pipeline_common;

use std::collections::BTreeSet;
use std::time::Duration;

use pipeline_common::*;
use svoct_formats::b2;
use svoct_mail::profile::{self, ParseLimits};
use svoct_mail::transport::{SmtpConfig, SmtpEnvelope, SmtpTransport, Transport};
use svoct_oct::config::Config;
use svoct_oct::service::{Delivered, Delivery, Running};
use svoct_oct::state::{OctStore, State};
use svoct_testkit::{Exim, EximConfig};

const MAILBOXES: &[&str] = &["cpam100", "cpam101", "caisse102", "mutuelle", "ps1"];

fn message_id(raw: &[u8]) -> String {
    profile::parse_message(raw, &ParseLimits::default())
        .expect("delivered message parses")
        .headers
        .message_id
        .expect("has a Message-ID")
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(feature = "server-tests")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_through_exim_and_answers_with_art() {
    let exim = Exim::start(&EximConfig {
        mailboxes: MAILBOXES,
        ..EximConfig::default()
    })
    .expect("exim");
    let world = World::new(exim.port(), "");
    let config: Config = world.config();
    let running = Running::start(config.clone()).await.expect("service starts");
    let addr = running.local_addr().expect("listening");

    // Three single files from the PS, over real SMTP to the ingress.
    let mut inputs = Vec::new();
    for n in 1..=3u32 {
        let file = single_file(&synth(15, 3, false, u64::from(n)));
        let raw = ps_message(&world, PS_ADDRESS, &file, PS_NUMBER, 15, n, false);
        let c = SmtpTransport::new(&SmtpConfig::plain("127.0.0.1", addr.port())).expect("client");
        tokio::task::spawn_blocking(move || c.send(&SmtpEnvelope::new(PS_ADDRESS, OCT_ADDRESS), &raw))
            .await
            .expect("join")
            .expect("ingress accepts");
        inputs.push(file);
    }
    // And one from a stranger, through Python's smtplib as an independent client.
    let stranger = ps_message(&world, "stranger@ps.example", &inputs[0], PS_NUMBER, 15, 9, false);
    let path = world.dir.path().join("stranger.eml");
    std::fs::write(&path, &stranger).expect("write");
    let script = format!(
        "import smtplib\ns=smtplib.SMTP('127.0.0.1',{})\ns.sendmail('stranger@ps.example',['{}'],open('{}','rb').read())\ns.quit()\n",
        addr.port(),
        OCT_ADDRESS,
        path.display()
    );
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let wait = Duration::from_secs(60);
    let mut forwarded_lots = 0;
    let mut ids = BTreeSet::new();
    for mb in ["cpam100", "cpam101", "caisse102"] {
        let msgs = exim.wait_for_messages(mb, 3, wait).expect("forwarded files");
        for raw in &msgs {
            assert!(ids.insert(message_id(raw)), "unique Message-IDs");
            let parsed = profile::parse_message(raw, &ParseLimits::default()).expect("parses");
            let body = parsed
                .open(Some(&world.am_key), &ParseLimits::default())
                .expect("opens")
                .bytes;
            let f = b2::parse(&body).expect("B2");
            for lot in f.lots() {
                assert!(inputs.iter().any(|i| {
                    b2::parse(i)
                        .expect("input")
                        .lots()
                        .iter()
                        .any(|l| l.bytes() == lot.bytes())
                }));
                forwarded_lots += 1;
            }
        }
    }
    let total_lots: usize = inputs
        .iter()
        .map(|i| b2::parse(i).expect("input").lots().len())
        .sum();
    assert_eq!(forwarded_lots, total_lots);
    let arts = exim.wait_for_messages("ps1", 3, wait).expect("ARTs");
    for raw in &arts {
        let parsed = profile::parse_message(raw, &ParseLimits::default()).expect("ART parses");
        assert!(parsed.profile_name().starts_with("ART/ER"));
        let art = svoct_formats::art::Art::parse(&parsed.attachment).expect("shared ART format");
        assert_eq!(art.file_status, svoct_formats::art::FileStatus::Accepted);
    }
    // The stranger is quarantined, not answered.
    let state = State::open(&config.paths.state).expect("state");
    wait_until("the quarantine", wait, || {
        state
            .quarantine_list(false)
            .map(|l| l.len() == 1)
            .unwrap_or(false)
    });
    let q = state.quarantine_list(false).expect("list");
    assert_eq!(q[0].code, "unknown_sender");
    wait_until("the outbox to drain", wait, || {
        state
            .counters()
            .map(|c| !c.outbox.contains_key("pending"))
            .unwrap_or(false)
    });
    running.shutdown().await;
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(exim.messages("ps1").len(), 3, "no ART for the stranger");
    let c = state.counters().expect("counters");
    assert_eq!(c.processed.get("invoice/processed"), Some(&3));
    assert_eq!(c.processed.get("invoice/quarantined"), Some(&1));
    assert_eq!(c.outbox.get("sent"), Some(&12));
}

#[cfg(feature = "server-tests")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downstream_refusals_are_retried_with_backoff_then_failed() {
    let exim = Exim::start(&EximConfig {
        mailboxes: MAILBOXES,
        defer_local_parts: &["cpam101"],
        ..EximConfig::default()
    })
    .expect("exim");
    let world = World::new(exim.port(), "");
    let config = world.config();
    let running = Running::start(config.clone()).await.expect("service starts");
    let addr = running.local_addr().expect("listening");
    let client = SmtpTransport::new(&SmtpConfig::plain("127.0.0.1", addr.port())).expect("client");
    let file = single_file(&synth(15, 3, false, 5));
    let raw = ps_message(&world, PS_ADDRESS, &file, PS_NUMBER, 15, 1, false);
    tokio::task::spawn_blocking(move || client.send(&SmtpEnvelope::new(PS_ADDRESS, OCT_ADDRESS), &raw))
        .await
        .expect("join")
        .expect("ingress accepts");
    exim.wait_for_messages("cpam100", 1, Duration::from_secs(60))
        .expect("cpam100");
    let state = State::open(&config.paths.state).expect("state");
    // max_attempts = 3 with 1 s then 2 s of backoff: failed after the third 451.
    wait_until("the deferred message to fail", Duration::from_secs(60), || {
        state
            .counters()
            .map(|c| c.outbox.get("failed") == Some(&1))
            .unwrap_or(false)
    });
    // The failure queued an ART for the PS (issue 14, point 4): let it go out, so that what is
    // left undelivered is the failed forward alone.
    let arts = exim
        .wait_for_messages("ps1", 2, Duration::from_secs(60))
        .expect("the two ARTs");
    let refused: Vec<_> = arts
        .iter()
        .map(|raw| {
            let parsed = profile::parse_message(raw, &ParseLimits::default()).expect("ART parses");
            svoct_formats::art::Art::parse(&parsed.attachment).expect("shared ART format")
        })
        .filter(|a| a.file_status == svoct_formats::art::FileStatus::Refused)
        .collect();
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0].file_detail.contains("cpam101@am.example"),
        "{}",
        refused[0].file_detail
    );
    wait_until("the ART to be marked sent", Duration::from_secs(60), || {
        state
            .counters()
            .map(|c| !c.outbox.contains_key("pending") && !c.outbox.contains_key("sending"))
            .unwrap_or(false)
    });
    let failed = state.undelivered(10).expect("undelivered");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].rcpt, "cpam101@am.example");
    assert_eq!(failed[0].attempts, 3);
    assert!(
        failed[0].last_error.as_deref().unwrap_or("").contains("451"),
        "{:?}",
        failed[0].last_error
    );
    running.shutdown().await;
    assert!(exim.messages("cpam101").is_empty());
}

#[test]
fn a_server_down_is_transient_and_no_route_is_permanent() {
    let port = svoct_testkit::free_port().expect("free port");
    let world = World::new(port, "");
    let config = std::sync::Arc::new(world.config());
    let d = Delivery::new(config.clone()).expect("delivery");
    match d.deliver_remote(OCT_ADDRESS, "cpam100@am.example", b"Subject: x\r\n\r\nx\r\n") {
        Delivered::Transient(_) => {}
        other => panic!("expected transient, got {other:?}"),
    }
    let mut no_smtp: Config = (*config).clone();
    no_smtp.delivery.smtp = None;
    let d = Delivery::new(std::sync::Arc::new(no_smtp)).expect("delivery");
    assert!(matches!(
        d.deliver_remote(OCT_ADDRESS, "x@y.z", b"x"),
        Delivered::Permanent(_)
    ));
}

#[test]
fn local_deliveries_are_grouped_and_a_redelivery_writes_nothing() {
    let port = svoct_testkit::free_port().expect("free port");
    let boxes = tempfile::tempdir().expect("tempdir");
    let extra = format!(
        "[[delivery.local]]\naddress = \"{PS_ADDRESS}\"\nmaildir = \"{}\"\n\
         [[delivery.local]]\naddress = \"cpam100@am.example\"\nmaildir = \"{}\"\n",
        boxes.path().join("ps").display(),
        boxes.path().join("am").display()
    );
    let world = World::new(port, &extra);
    let config = std::sync::Arc::new(world.config());
    let d = Delivery::new(config).expect("delivery");
    let row = |id: i64, rcpt: &str, body: &str| svoct_oct::state::Due {
        id,
        message_id: format!("<{id}@oct.example>"),
        kind: "forward".into(),
        mail_from: OCT_ADDRESS.into(),
        rcpt: rcpt.into(),
        raw: format!("Subject: {body}\r\n\r\n{body}\r\n").into_bytes(),
        attempts: 0,
        created: 1_795_000_000,
        spool_id: format!("s{id}"),
    };
    let rows = [
        row(1, PS_ADDRESS, "one"),
        row(2, "cpam100@am.example", "two"),
        row(3, PS_ADDRESS, "three"),
        row(4, "stranger@elsewhere.example", "four"),
    ];
    let refs: Vec<_> = rows.iter().collect();
    let count = |b: &str| {
        std::fs::read_dir(boxes.path().join(b).join("new"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let first = d.deliver_local_group(&refs, "ab12");
    assert!(
        matches!(&first[0], Delivered::Ok(a) if !a.contains("already")),
        "{first:?}"
    );
    assert!(matches!(first[1], Delivered::Ok(_)), "{first:?}");
    assert!(matches!(first[2], Delivered::Ok(_)), "{first:?}");
    assert!(
        matches!(first[3], Delivered::Permanent(_)),
        "not a local mailbox: {first:?}"
    );
    assert_eq!((count("ps"), count("am")), (2, 1));

    // As after a crash between the delivery and its record: the same rows again.
    let again = d.deliver_local_group(&refs[..3], "ab12");
    assert!(
        again
            .iter()
            .all(|r| matches!(r, Delivered::Ok(a) if a.contains("already there"))),
        "{again:?}"
    );
    assert_eq!((count("ps"), count("am")), (2, 1));
    // Another OCT instance sharing the Maildir does not collide.
    d.deliver_local_group(&refs[..1], "cd34");
    assert_eq!(count("ps"), 3);
    // Readers see the bytes as queued (Python's mailbox module as the independent reader).
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import mailbox,sys; print(sorted(m['Subject'] for m in mailbox.Maildir(sys.argv[1], create=False)))",
        ])
        .arg(boxes.path().join("ps"))
        .output()
        .expect("python3");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "['one', 'one', 'three']",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
