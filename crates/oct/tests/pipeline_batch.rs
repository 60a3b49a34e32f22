//! A worker step over several spooled messages: all are processed and committed together, a
//! message committed before a crash (still in the spool) is only completed, an unknown sender
//! is quarantined, and nothing is queued twice.

mod pipeline_common;

use pipeline_common::*;
use svoct_oct::pipeline::{Incoming, Pipeline};
use svoct_oct::service::{Blocks, ServiceStats, work_batch};
use svoct_oct::state::State;
use svoct_store::spool::{EntryState, Envelope, Spool};

fn envelope(from: &str) -> Envelope {
    Envelope {
        mail_from: from.into(),
        rcpt_to: vec![OCT_ADDRESS.into()],
        ..Envelope::default()
    }
}

#[test]
fn one_step_commits_a_batch_and_completes_what_a_crash_left_committed() {
    let world = World::new(2525, "");
    let config = world.config();
    let keys = world.keys();
    let pipeline = Pipeline::new(&config, &keys);
    let spool = Spool::open(&config.paths.spool).expect("spool");
    let mut state = State::open(&config.paths.state).expect("state");
    let mut blocks = Blocks::default();
    let stats = ServiceStats::default();

    // A message committed just before a crash: processed and committed, never completed.
    let file = single_file(&synth(10, 3, false, 1));
    let first = spool
        .put(
            &envelope(PS_ADDRESS),
            &ps_message(&world, PS_ADDRESS, &file, PS_NUMBER, 10, 1, false),
        )
        .expect("put");
    {
        let entry = spool.claim_next().expect("claim").expect("entry");
        let key = entry.id.to_string();
        let mut env = svoct_oct::service::StateEnv::new(&state, &mut blocks);
        let processed = pipeline
            .process(
                Incoming {
                    spool_id: &key,
                    mail_from: &entry.envelope.mail_from,
                    rcpt_to: &entry.envelope.rcpt_to,
                    raw: &entry.data,
                },
                &mut env,
            )
            .expect("process");
        assert_eq!(
            state.commit(&processed).expect("commit"),
            svoct_oct::state::Commit::Recorded
        );
        spool.release(first).expect("release as a restart would find it");
    }
    let queued_before = state.outbox_ids().expect("outbox").len();
    assert_eq!(queued_before, 4, "3 forwards and the ART");

    // Three more invoice files and one from a stranger.
    for i in 0..3u32 {
        let file = single_file(&synth(10, 3, false, u64::from(i) + 2));
        spool
            .put(
                &envelope(PS_ADDRESS),
                &ps_message(&world, PS_ADDRESS, &file, PS_NUMBER, 10, i + 2, false),
            )
            .expect("put");
    }
    let stranger = "stranger@elsewhere.example";
    let file = single_file(&synth(10, 3, false, 9));
    spool
        .put(
            &envelope(stranger),
            &ps_message(&world, stranger, &file, PS_NUMBER, 10, 9, false),
        )
        .expect("put");

    assert!(work_batch(&spool, &mut state, &mut blocks, &pipeline, &stats, 16).expect("step"));

    // Everything left the spool in that one step; the stranger's message is set aside.
    let left = spool.list().expect("list");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].state, EntryState::Quarantined);
    let c = state.counters().expect("counters");
    assert_eq!(c.processed.get("invoice/processed"), Some(&4));
    assert_eq!(c.processed.values().sum::<u64>(), 5);
    // The first message's rows were not queued again: 4 per invoice file, nothing for the
    // stranger (no ART to an address the OCT does not know).
    let ids = state.outbox_ids().expect("outbox");
    assert_eq!(ids.len(), 4 * 4);
    let mut unique: Vec<_> = ids.iter().map(|r| r.0.clone()).collect();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "no Message-ID twice");
    // Counted: the 3 new invoice files and the stranger; the leftover was only completed.
    assert_eq!(stats.processed.load(std::sync::atomic::Ordering::Relaxed), 4);
    assert_eq!(stats.quarantined.load(std::sync::atomic::Ordering::Relaxed), 1);

    assert!(!work_batch(&spool, &mut state, &mut blocks, &pipeline, &stats, 16).expect("idle"));
}

/// The ART bodies in the outbox, oldest first.
fn arts(state: &State) -> Vec<svoct_formats::art::Art> {
    use svoct_mail::profile::{self, ParseLimits};
    state
        .outbox_ids()
        .expect("outbox")
        .iter()
        .filter(|r| r.1 == "art")
        .map(|r| {
            let raw = state.outbox_raw(&r.0).expect("raw").expect("body");
            let parsed = profile::parse_message(&raw, &ParseLimits::default()).expect("ART parses");
            svoct_formats::art::Art::parse(&parsed.attachment).expect("ART body")
        })
        .collect()
}

#[test]
fn two_copies_in_one_batch_forward_once_and_the_second_is_answered_as_a_duplicate() {
    use svoct_formats::art::LotStatus;
    let world = World::new(2525, "");
    let config = world.config();
    let keys = world.keys();
    let pipeline = Pipeline::new(&config, &keys);
    let spool = Spool::open(&config.paths.spool).expect("spool");
    let mut state = State::open(&config.paths.state).expect("state");
    let mut blocks = Blocks::default();
    let stats = ServiceStats::default();

    // The same .eml spooled twice (a client that retried after a cut connection).
    let file = single_file(&synth(10, 3, false, 1));
    let raw = ps_message(&world, PS_ADDRESS, &file, PS_NUMBER, 10, 1, false);
    spool.put(&envelope(PS_ADDRESS), &raw).expect("put");
    spool.put(&envelope(PS_ADDRESS), &raw).expect("put");

    // One batch holds both: the second conflicts with the first in the same transaction, is
    // given back to the spool, and the next step answers it from what was committed.
    assert!(work_batch(&spool, &mut state, &mut blocks, &pipeline, &stats, 16).expect("step"));
    let ids = state.outbox_ids().expect("outbox");
    assert_eq!(ids.len(), 4, "3 forwards and one ART: {ids:?}");
    assert_eq!(
        spool.list().expect("list").len(),
        1,
        "the copy waits in the spool"
    );
    assert!(work_batch(&spool, &mut state, &mut blocks, &pipeline, &stats, 16).expect("step"));
    assert!(spool.list().expect("list").is_empty());

    let ids = state.outbox_ids().expect("outbox");
    assert_eq!(ids.iter().filter(|r| r.1 == "forward").count(), 3, "{ids:?}");
    let arts = arts(&state);
    assert_eq!(arts.len(), 2);
    assert!(arts[0].lots.iter().all(|l| l.status == LotStatus::Forwarded));
    assert!(
        arts[1]
            .lots
            .iter()
            .all(|l| l.status == LotStatus::AlreadyForwarded)
    );
    assert!(arts[1].file_detail.contains("doublon"));
    let c = state.counters().expect("counters");
    assert_eq!(c.processed.get("invoice/processed"), Some(&2));
}
