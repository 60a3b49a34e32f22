//! A worker step over several spooled messages: all are processed and committed together, a
//! message committed before a crash (still in the spool) is only completed, an unknown sender
//! is quarantined, and nothing is queued twice.

mod pipeline_common;

use pipeline_common::*;
use svoct_oct::pipeline::{Incoming, Pipeline};
use svoct_oct::service::{Blocks, ServiceStats, work_batch};
use svoct_oct::state::{OctStore, State};
use svoct_store::spool::{ReceivedEnvelope, Spool};

fn envelope(from: &str) -> ReceivedEnvelope {
    ReceivedEnvelope {
        mail_from: from.into(),
        rcpt_to: vec![OCT_ADDRESS.into()],
        ..ReceivedEnvelope::default()
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

    // Everything left the spool in that one step; the stranger's message is set aside once, in
    // the state database (nothing stays in spool/quarantine/).
    assert_eq!(spool.list().expect("list"), vec![]);
    let held = state.quarantine_list(false).expect("quarantine");
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].mail_from, stranger);
    assert!(held[0].bytes > 0, "the content is kept in the state database");
    let c = state.counters().expect("counters");
    assert_eq!(c.processed.get("invoice/processed"), Some(&4));
    assert_eq!(c.processed.values().sum::<u64>(), 5);
    // The first message's rows were not queued again: 4 per invoice file, nothing for the
    // stranger (no ART to an address the OCT does not know).
    let ids = state.outbox_ids().expect("outbox");
    assert_eq!(ids.len(), 4 * 4);
    let mut unique: Vec<_> = ids.iter().map(|r| r.message_id.clone()).collect();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "no Message-ID twice");
    // Counted: the 3 new invoice files and the stranger; the leftover was only completed.
    assert_eq!(stats.processed.load(std::sync::atomic::Ordering::Relaxed), 4);
    assert_eq!(stats.quarantined.load(std::sync::atomic::Ordering::Relaxed), 1);

    assert!(!work_batch(&spool, &mut state, &mut blocks, &pipeline, &stats, 16).expect("idle"));
}

/// The quarantine has its own bound: beyond `quarantine.max_bytes` the oldest contents are
/// removed (reason and metadata kept, the removal recorded), the newest stay; past the
/// retention the rest goes too; purged rows beyond `max_purged_rows` are deleted, oldest first.
/// Nothing of it is kept in the spool.
#[test]
fn quarantine_keeps_one_copy_within_its_bound_and_retention() {
    let probe = World::new(2525, "");
    let stranger = "stranger@elsewhere.example";
    let file = single_file(&synth(10, 3, false, 9));
    let size = ps_message(&probe, stranger, &file, PS_NUMBER, 10, 1, false).len() as u64;
    // Room for two messages of about `size` bytes, not three.
    let bound = size * 5 / 2;
    let world = World::new(
        2525,
        &format!("[quarantine]\nmax_bytes = {bound}\nretention_days = 7\nmax_purged_rows = 2\n"),
    );
    let config = world.config();
    assert_eq!(config.quarantine.max_bytes, bound);
    let keys = world.keys();
    let pipeline = Pipeline::new(&config, &keys);
    let spool = Spool::open(&config.paths.spool).expect("spool");
    let mut state = State::open(&config.paths.state).expect("state");
    let mut blocks = Blocks::default();
    let stats = ServiceStats::default();
    // Odd counters: the attachment is not compressed, so the three are about `size` each.
    for n in [1u32, 3, 5] {
        let raw = ps_message(&world, stranger, &file, PS_NUMBER, 10, n, false);
        spool.put(&envelope(stranger), &raw).expect("put");
        // One message per step: they are quarantined in arrival order.
        assert!(work_batch(&spool, &mut state, &mut blocks, &pipeline, &stats, 1).expect("step"));
    }
    assert_eq!(spool.list().expect("list"), vec![], "no copy in the spool");
    assert_eq!(
        std::fs::read_dir(config.paths.spool.join("quarantine"))
            .expect("dir")
            .count(),
        0
    );

    let all = state.quarantine_list(true).expect("list"); // newest first
    assert_eq!(all.len(), 3, "every row kept");
    let states: Vec<&str> = all.iter().map(|r| r.state.as_str()).collect();
    assert_eq!(states, ["held", "held", "purged"]);
    let oldest = &all[2];
    assert_eq!(oldest.bytes, 0, "the oldest content is gone");
    assert_eq!(oldest.mail_from, stranger);
    assert!(!oldest.reason.is_empty(), "its reason stays");
    let svoct_oct::state::PurgeRecord { cause, bytes, .. } = state
        .quarantine_purge_record(oldest.id)
        .expect("record")
        .expect("the removal is recorded");
    assert_eq!(cause, "bound");
    assert!(bytes > size / 2, "the removed size is recorded: {bytes}");
    let held = state.quarantine_bytes().expect("size");
    assert!(held <= bound && held > 0, "{held} within {bound}");
    // A purged message cannot be retried (its content is gone).
    assert!(!state.quarantine_request_retry(oldest.id).expect("retry"));

    // Retention: everything received before the cutoff loses its content.
    let now = svoct_oct::state::now_secs();
    let purged = state.purge_quarantine_before(now + 1, now).expect("retention");
    assert_eq!(purged.len(), 2);
    assert!(
        purged
            .iter()
            .all(|p| p.cause == svoct_oct::state::PurgeCause::Retention)
    );
    assert_eq!(state.quarantine_bytes().expect("size"), 0);
    assert_eq!(state.quarantine_list(true).expect("list").len(), 3);

    // Three purged rows, two allowed: the oldest goes, with its purge record.
    assert_eq!(
        state
            .trim_purged_rows(config.quarantine.max_purged_rows)
            .expect("trim"),
        1
    );
    let left = state.quarantine_list(true).expect("list");
    assert_eq!(
        left.iter().map(|r| r.id).collect::<Vec<_>>(),
        [all[0].id, all[1].id]
    );
    assert_eq!(state.quarantine_purge_record(oldest.id).expect("record"), None);
    assert!(
        state
            .quarantine_purge_record(all[1].id)
            .expect("record")
            .is_some()
    );
}

/// A spool left by a version that kept quarantined messages twice: the start deletes the spool
/// copies the state database holds, and keeps what the spool set aside on its own.
#[test]
fn second_copies_left_by_an_older_version_are_deleted_at_start() {
    let world = World::new(2525, "");
    let config = world.config();
    let keys = world.keys();
    let pipeline = Pipeline::new(&config, &keys);
    let spool = Spool::open(&config.paths.spool).expect("spool");
    let mut state = State::open(&config.paths.state).expect("state");
    let mut blocks = Blocks::default();
    let stranger = "stranger@elsewhere.example";
    let file = single_file(&synth(10, 3, false, 9));
    let raw = ps_message(&world, stranger, &file, PS_NUMBER, 10, 1, false);
    // Processed and committed as a quarantine, then moved aside as the older version did.
    let id = spool.put(&envelope(stranger), &raw).expect("put");
    let entry = spool.claim_next().expect("claim").expect("entry");
    let key = entry.id.to_string();
    let processed = pipeline
        .process(
            Incoming {
                spool_id: &key,
                mail_from: &entry.envelope.mail_from,
                rcpt_to: &entry.envelope.rcpt_to,
                raw: &entry.data,
            },
            &mut svoct_oct::service::StateEnv::new(&state, &mut blocks),
        )
        .expect("process");
    assert!(processed.quarantine.is_some());
    assert_eq!(
        state.commit(&processed).expect("commit"),
        svoct_oct::state::Commit::Recorded
    );
    spool.quarantine(id, "unknown sender").expect("old second copy");
    // And an entry the spool itself could not read: no quarantine row, it stays.
    let other = spool.put(&envelope(stranger), b"x").expect("put");
    spool.claim_next().expect("claim").expect("entry");
    spool.quarantine(other, "unreadable").expect("set aside");
    assert_eq!(spool.list().expect("list").len(), 2);

    assert_eq!(
        svoct_oct::service::remove_second_copies(&spool, &state).expect("clean"),
        1
    );
    let left = spool.list().expect("list");
    assert_eq!(left.iter().map(|l| l.id).collect::<Vec<_>>(), [other]);
    assert_eq!(spool.quarantine_reason(other).expect("reason"), "unreadable");
    assert!(
        !config
            .paths
            .spool
            .join(format!("quarantine/{id}.reason"))
            .exists()
    );
    assert_eq!(
        state.quarantine_list(false).expect("rows").len(),
        1,
        "the one copy stays"
    );
}

/// The ART bodies in the outbox, oldest first.
fn arts(state: &State) -> Vec<svoct_formats::art::Art> {
    use svoct_mail::profile::{self, ParseLimits};
    state
        .outbox_ids()
        .expect("outbox")
        .iter()
        .filter(|r| r.kind == "art")
        .map(|r| {
            let raw = state.outbox_raw(&r.message_id).expect("raw").expect("body");
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
    assert_eq!(ids.iter().filter(|r| r.kind == "forward").count(), 3, "{ids:?}");
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
