//! No double billing, against the running service over real SMTP and a real Exim downstream:
//! the same message sent three times, two copies sent at the same time, and another file under
//! a compostage already used. What the AM mailboxes received is read back independently of the
//! OCT's counters: every lot is in exactly one forwarded message, and the PS is told, by ART,
//! what was a duplicate and what must be sent again with a new compostage.

mod pipeline_common;

use std::time::Duration;

use pipeline_common::*;
use svoct_formats::art::{FileStatus, LotStatus};
use svoct_formats::b2;
use svoct_mail::transport::{SmtpConfig, SmtpEnvelope, SmtpTransport, Transport};
use svoct_oct::service::Running;
use svoct_oct::state::{OctStore, State};
use svoct_testkit::{Exim, EximConfig};

const AM_BOXES: &[&str] = &["cpam100", "cpam101", "caisse102"];

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn send(port: u16, raw: Vec<u8>) {
    let c = SmtpTransport::new(&SmtpConfig::plain("127.0.0.1", port)).expect("client");
    tokio::task::spawn_blocking(move || c.send(&SmtpEnvelope::new(PS_ADDRESS, OCT_ADDRESS), &raw))
        .await
        .expect("join")
        .expect("the ingress accepts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_messages_are_forwarded_once_and_answered_as_duplicates() {
    let mut boxes = AM_BOXES.to_vec();
    boxes.extend(["mutuelle", "ps1"]);
    let exim = Exim::start(&EximConfig {
        mailboxes: &boxes,
        ..EximConfig::default()
    })
    .expect("exim");
    let world = World::new(exim.port(), "");
    let config = world.config();
    let running = Running::start(config.clone()).await.expect("service starts");
    let port = running.local_addr().expect("listening").port();

    // The same .eml three times, one after the other.
    let first = single_file(&synth(30, 3, false, 21));
    let first_raw = ps_message(&world, PS_ADDRESS, &first, PS_NUMBER, 30, 1, false);
    for _ in 0..3 {
        send(port, first_raw.clone()).await;
    }
    // Two copies of another at the same instant, on two connections.
    let second = single_file(&synth(30, 3, false, 22));
    let second_raw = ps_message(&world, PS_ADDRESS, &second, PS_NUMBER, 30, 2, false);
    tokio::join!(send(port, second_raw.clone()), send(port, second_raw.clone()));
    let wait = Duration::from_secs(90);
    wait_until("five ARTs", wait, || exim.messages("ps1").len() >= 5);
    // Another file under the first message's compostage (a second workstation), once the first
    // is committed: whichever of two files under one compostage is committed first is the one
    // forwarded.
    let clash = single_file(&synth(30, 3, false, 23));
    send(
        port,
        ps_message(&world, PS_ADDRESS, &clash, PS_NUMBER, 30, 1, false),
    )
    .await;

    wait_until("six ARTs", wait, || exim.messages("ps1").len() >= 6);
    let state = State::open(&config.paths.state).expect("state");
    wait_until("the outbox to drain", wait, || {
        state
            .counters()
            .map(|c| !c.outbox.contains_key("pending") && !c.outbox.contains_key("sending"))
            .unwrap_or(false)
    });
    running.shutdown().await;

    // Downstream: every lot of the two files exactly once, nothing of the clashing one.
    let (lots, repeats) = lots_delivered(&world, &exim, AM_BOXES);
    assert_eq!(repeats, 0, "no crash, so no redelivery");
    let mut expected = 0;
    for input in [&first, &second] {
        for lot in b2::parse(input).expect("input").lots() {
            assert_eq!(
                lots.get(lot.bytes()),
                Some(&1),
                "every lot forwarded exactly once"
            );
            expected += 1;
        }
    }
    assert_eq!(lots.len(), expected, "nothing else forwarded");
    let forwards: usize = AM_BOXES.iter().map(|b| exim.messages(b).len()).sum();
    assert_eq!(forwards, 6, "one file per destination per distinct input");

    // The PS: per input one ART that forwarded, the copies answered as duplicates, the clash
    // refused with a request for a new compostage.
    let arts = arts_delivered(&exim, "ps1");
    assert_eq!(arts.len(), 6);
    let all = |a: &svoct_formats::art::Art, s: LotStatus| {
        !a.lots.is_empty() && a.lots.iter().all(|l| l.status == s)
    };
    let forwarded = arts.iter().filter(|a| all(a, LotStatus::Forwarded)).count();
    let duplicates: Vec<_> = arts
        .iter()
        .filter(|a| all(a, LotStatus::AlreadyForwarded))
        .collect();
    assert_eq!(forwarded, 2, "{arts:#?}");
    assert_eq!(duplicates.len(), 3, "{arts:#?}");
    for d in &duplicates {
        assert_eq!(d.file_status, FileStatus::Accepted);
        assert!(d.file_detail.contains("doublon"), "{}", d.file_detail);
    }
    let refused: Vec<_> = arts
        .iter()
        .filter(|a| a.file_status == FileStatus::Refused)
        .collect();
    assert_eq!(refused.len(), 1, "{arts:#?}");
    assert!(
        refused[0].file_detail.contains("nouveau compostage"),
        "{}",
        refused[0].file_detail
    );
    assert!(all(refused[0], LotStatus::NotForwarded));

    // The clashing file is kept, with its reason, for the operator.
    let q = state.quarantine_list(false).expect("quarantine");
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].code, "compostage_reused");
}
