//! Issue 14, point 4: a forward the insurer's server refuses for good (`550`) after the PS was
//! told "forwarded" is reported to the PS by a second ART, delivered into its mailbox, echoing
//! its compostage, naming the lots and the server's answer; and never twice for the same row.

mod pipeline_common;

use std::sync::atomic::AtomicBool;

use pipeline_common::*;
use svoct_formats::art::{Art, FileStatus, LotStatus};
use svoct_oct::pipeline::Pipeline;
use svoct_oct::service::{Blocks, Delivery, ServiceStats, send_once, work_batch};
use svoct_oct::state::{OctStore, OutboxState, State};
use svoct_store::spool::{ReceivedEnvelope, Spool};

/// Delivers until nothing is due (the refusals are permanent: no retry waits).
fn drain(state: &State, delivery: &Delivery, config: &svoct_oct::config::Config) {
    let stats = ServiceStats::default();
    let stop = AtomicBool::new(false);
    for _ in 0..20 {
        if !send_once(state, delivery, config, &stats, &stop).expect("send") {
            return;
        }
    }
    panic!("the outbox never emptied");
}

/// A world whose insurer refuses everything (`550`) and whose PS's mailbox is a local Maildir,
/// with one message of the PS processed: its forwards and first ART queued.
fn processed(insurer: &svoct_testkit::fake_smtp::RefusingServer) -> (World, State) {
    let world = World::new(
        insurer.port(),
        &format!("[[delivery.local]]\naddress = \"{PS_ADDRESS}\"\nmaildir = \"ps-maildir\"\n"),
    );
    let config = world.config();
    let keys = world.keys();
    let pipeline = Pipeline::new(&config, &keys);
    let spool = Spool::open(&config.paths.spool).expect("spool");
    let mut state = State::open(&config.paths.state).expect("state");
    // The practices as `serve` seeds them at start (the senders look the PS up there).
    svoct_oct::practices::seed(&state, &config).expect("seed practices");
    let mut blocks = Blocks::default();
    let stats = ServiceStats::default();

    let file = single_file(&synth(10, 3, false, 4));
    let envelope = ReceivedEnvelope {
        mail_from: PS_ADDRESS.into(),
        rcpt_to: vec![OCT_ADDRESS.into()],
        ..ReceivedEnvelope::default()
    };
    spool
        .put(
            &envelope,
            &ps_message(&world, PS_ADDRESS, &file, PS_NUMBER, 10, 1, false),
        )
        .expect("put");
    assert!(work_batch(&spool, &mut state, &mut blocks, &pipeline, &stats, 4).expect("step"));
    (world, state)
}

#[test]
fn a_550_from_the_insurer_sends_the_ps_an_art_once() {
    let insurer = svoct_testkit::fake_smtp::RefusingServer::start().expect("insurer");
    let (world, state) = processed(&insurer);
    let config = world.config();
    let delivery = Delivery::new(std::sync::Arc::new(config.clone())).expect("delivery");
    drain(&state, &delivery, &config);

    let maildir = world.dir.path().join("ps-maildir");
    let arts = arts_in_maildir(&maildir);
    assert!(insurer.refused() >= 3, "the insurer refused the forwards");
    let first = arts
        .iter()
        .find(|a| a.file_status == FileStatus::Accepted)
        .expect("the first ART");
    assert!(first.lots.iter().all(|l| l.status == LotStatus::Forwarded));
    let failed: Vec<&Art> = arts
        .iter()
        .filter(|a| a.file_status == FileStatus::Refused)
        .collect();
    let forwards = state
        .outbox_ids()
        .expect("outbox")
        .into_iter()
        .filter(|r| r.kind == "forward")
        .collect::<Vec<_>>();
    assert!(forwards.iter().all(|r| r.state == OutboxState::Failed));
    assert_eq!(failed.len(), forwards.len(), "one ART per failed forward");
    let mut reported = 0;
    for a in &failed {
        assert_eq!(a.compostage, first.compostage, "the PS matches it to its message");
        assert_eq!(a.subject, first.subject);
        assert_eq!(a.ps_number, PS_NUMBER);
        assert!(a.file_detail.contains("550 5.1.1"), "{}", a.file_detail);
        for l in &a.lots {
            assert_eq!(l.status, LotStatus::Refused);
            assert!(
                l.detail.contains("transmission a ") && l.detail.contains("550"),
                "{}",
                l.detail
            );
            assert!(
                first
                    .lots
                    .iter()
                    .any(|f| f.number == l.number && f.kind == l.kind)
            );
        }
        reported += a.lots.len();
    }
    assert_eq!(
        reported,
        first.lots.len(),
        "every lot the first ART said forwarded"
    );

    // Never twice: the operator requeues the failed forwards, they fail again; no new ART.
    let outbox_before = state.outbox_ids().expect("outbox").len();
    assert_eq!(state.requeue_failed().expect("requeue"), forwards.len());
    drain(&state, &delivery, &config);
    assert_eq!(state.outbox_ids().expect("outbox").len(), outbox_before);
    assert_eq!(arts_in_maildir(&maildir).len(), arts.len());
}

#[test]
fn a_practice_removed_meanwhile_is_not_told_and_the_failure_is_recorded() {
    let insurer = svoct_testkit::fake_smtp::RefusingServer::start().expect("insurer");
    let (world, state) = processed(&insurer);
    let config = world.config();
    let remove = svoct_oct::practices::AccountChange::Remove { reason: "left" };
    svoct_oct::practices::apply(&state, PS_ADDRESS, remove, "alice").expect("remove");
    let delivery = Delivery::new(std::sync::Arc::new(config.clone())).expect("delivery");
    drain(&state, &delivery, &config);
    let forwards: Vec<_> = state
        .outbox_ids()
        .expect("outbox")
        .into_iter()
        .filter(|r| r.kind == "forward")
        .collect();
    assert!(!forwards.is_empty());
    assert!(forwards.iter().all(|r| r.state == OutboxState::Failed));
    let arts = arts_in_maildir(&world.dir.path().join("ps-maildir"));
    let statuses: Vec<FileStatus> = arts.iter().map(|a| a.file_status).collect();
    assert_eq!(
        statuses,
        [FileStatus::Accepted],
        "only the first ART, queued before the removal"
    );
}
