//! Issue 14, point 2: queue control through the real `svoct` binary on a real state database:
//! `oct queue list|show` (content and schemas), `flush` makes a row due, `hold` keeps a row from
//! the senders (`claim_due_batch`) and `release` gives it back, and `delete` of a forward queues
//! exactly one ART to the PS and the row is never sent.

mod pipeline_common;

use pipeline_common::*;
use svoct_formats::art::{Art, FileStatus};
use svoct_mail::profile::{self, ParseLimits};
use svoct_oct::pipeline::Pipeline;
use svoct_oct::service::{Blocks, ServiceStats, work_once};
use svoct_oct::state::{DeliveryOutcome, OctStore, OutboxState, State, now_secs};
use svoct_store::spool::{ReceivedEnvelope, Spool};

/// Far enough ahead that every pending row is due, whatever its backoff.
const LATER: i64 = 10 * 24 * 3600;

/// A PS's single file for three destinations processed once: forwards and the PS's first ART
/// are queued (no sender runs). Returns the state.
fn processed_world(world: &World) -> State {
    let config = world.config();
    let spool = Spool::open(&config.paths.spool).expect("spool");
    let file = single_file(&synth(9, 3, false, 21));
    let raw = ps_message(world, PS_ADDRESS, &file, PS_NUMBER, 9, 1, false);
    let envelope = ReceivedEnvelope {
        mail_from: PS_ADDRESS.into(),
        rcpt_to: vec![OCT_ADDRESS.into()],
        ..ReceivedEnvelope::default()
    };
    spool.put(&envelope, &raw).expect("put");
    let keys = world.keys();
    let pipeline = Pipeline::new(&config, &keys);
    let mut state = State::open(&config.paths.state).expect("state");
    // The practices as `serve` seeds them at start (the senders look the PS up there).
    svoct_oct::practices::seed(&state, &config).expect("seed practices");
    let stats = ServiceStats::default();
    assert!(work_once(&spool, &mut state, &mut Blocks::default(), &pipeline, &stats).expect("step"));
    state
}

/// The id of the first queued row of `kind`.
fn first_of(state: &State, kind: &str) -> i64 {
    state
        .queue_list()
        .expect("queue")
        .into_iter()
        .find(|r| r.row.kind == kind)
        .unwrap_or_else(|| panic!("a {kind} row"))
        .row
        .id
}

fn claimable(state: &State, id: i64) -> bool {
    let due = state.claim_due_batch(now_secs() + LATER, 1000).expect("claim");
    let ids: Vec<i64> = due.iter().map(|d| d.id).collect();
    state.unclaim(&ids).expect("unclaim");
    ids.contains(&id)
}

#[test]
fn list_and_show_say_what_waits_where_it_comes_from_and_why() {
    let bin = svoct_binary();
    let world = World::new(2525, "");
    let state = processed_world(&world);
    let forward = first_of(&state, "forward");
    // A failed attempt, as the sender records it: the next attempt is in an hour.
    state.claim_due_batch(now_secs(), 1000).expect("claim");
    let at = now_secs() + 3600;
    let error = "451 4.3.0 insurer busy".to_owned();
    state
        .record_deliveries(&[(forward, DeliveryOutcome::Retry { at, error })])
        .expect("retry");
    state.reset_sending().expect("reset");

    let (ok, out, err) = svoct(&bin, &world, &["queue", "list"]);
    assert!(ok, "{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("#{forward} ")))
        .unwrap_or_else(|| panic!("row #{forward} listed:\n{out}"));
    assert!(line.contains("[pending] forward to "), "{line}");
    assert!(line.contains("1 attempt(s)") && line.contains("age "), "{line}");
    assert!(line.contains("next attempt ") && line.contains("(in "), "{line}");
    assert!(out.contains(&format!("from {PS_ADDRESS} subject ")), "{out}");
    assert!(out.contains("last error: 451 4.3.0 insurer busy"), "{out}");

    let (ok, out, err) = svoct(&bin, &world, &["queue", "list", "--json"]);
    assert!(ok, "{err}");
    assert_schema("oct-queue-list", &out);
    let rows: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let row = rows
        .as_array()
        .and_then(|a| a.iter().find(|r| r["id"] == forward))
        .expect("the row");
    assert_eq!(row["origin_from"], PS_ADDRESS);
    assert_eq!(row["attempts"], 1);
    assert_eq!(row["last_error"], "451 4.3.0 insurer busy");

    let (ok, out, err) = svoct(&bin, &world, &["queue", "show", &forward.to_string(), "--json"]);
    assert!(ok, "{err}");
    assert_schema("oct-queue-show", &out);
    let shown: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(&shown, row, "show and list give the same row");
    let (ok, out, _) = svoct(&bin, &world, &["queue", "show", &forward.to_string()]);
    assert!(ok && out.contains(&format!("from {PS_ADDRESS}")), "{out}");
    let (ok, _, err) = svoct(&bin, &world, &["queue", "show", "9999"]);
    assert!(!ok && err.contains("no outgoing message #9999"), "{err}");
}

#[test]
fn flush_makes_a_row_due_now() {
    let bin = svoct_binary();
    let world = World::new(2525, "");
    let state = processed_world(&world);
    let forward = first_of(&state, "forward");
    state.claim_due_batch(now_secs(), 1000).expect("claim");
    let (at, error) = (now_secs() + 3600, "421 try later".to_owned());
    state
        .record_deliveries(&[(forward, DeliveryOutcome::Retry { at, error })])
        .expect("retry");
    state.reset_sending().expect("reset");
    let due_now = |s: &State| {
        let due = s.claim_due_batch(now_secs(), 1000).expect("claim");
        let ids: Vec<i64> = due.iter().map(|d| d.id).collect();
        s.unclaim(&ids).expect("unclaim");
        ids.contains(&forward)
    };
    assert!(!due_now(&state), "waits out its backoff");

    let (ok, out, err) = svoct(&bin, &world, &["queue", "flush", &forward.to_string()]);
    assert!(ok, "{err}");
    assert!(
        out.contains("1 pending message(s) due now") && out.contains("next poll"),
        "{out}"
    );
    assert!(due_now(&state), "due once flushed");
    let (ok, out, err) = svoct(&bin, &world, &["queue", "flush"]);
    assert!(ok && out.contains("due now"), "{out}{err}");
}

#[test]
fn a_held_row_is_never_claimed_until_released() {
    let bin = svoct_binary();
    let world = World::new(2525, "");
    let state = processed_world(&world);
    let forward = first_of(&state, "forward");
    assert!(claimable(&state, forward));

    let (ok, out, err) = svoct(&bin, &world, &["queue", "hold", &forward.to_string()]);
    assert!(ok && out.contains("held"), "{out}{err}");
    assert!(!claimable(&state, forward), "a held row is not claimed");
    let (ok, out, _) = svoct(&bin, &world, &["queue", "list"]);
    assert!(ok && out.contains(&format!("#{forward} [held]")), "{out}");
    assert!(out.contains("next attempt none (held)"), "{out}");
    let (ok, out, _) = svoct(&bin, &world, &["status"]);
    assert!(ok && out.contains(" failed, 1 held, 0 deleted"), "{out}");
    let (ok, _, err) = svoct(&bin, &world, &["queue", "hold", &forward.to_string()]);
    assert!(!ok && err.contains("is held, not waiting"), "held twice: {err}");

    let (ok, out, err) = svoct(&bin, &world, &["queue", "release", &forward.to_string()]);
    assert!(ok && out.contains("released"), "{out}{err}");
    assert!(claimable(&state, forward), "released: claimed again");
    let (ok, _, err) = svoct(&bin, &world, &["queue", "release", &forward.to_string()]);
    assert!(!ok && err.contains("is pending"), "{err}");
}

/// The ART rows queued to the PS, parsed.
fn arts_to_ps(state: &State) -> Vec<Art> {
    state
        .outbox_ids()
        .expect("outbox")
        .into_iter()
        .filter(|r| r.kind == "art" && r.rcpt == PS_ADDRESS)
        .map(|r| {
            let raw = state.outbox_raw(&r.message_id).expect("raw").expect("body");
            let parsed = profile::parse_message(&raw, &ParseLimits::default()).expect("ART parses");
            Art::parse(&parsed.attachment).expect("ART body")
        })
        .collect()
}

#[test]
fn deleting_a_forward_sends_the_ps_one_art_and_never_the_forward() {
    let bin = svoct_binary();
    let world = World::new(2525, "");
    let state = processed_world(&world);
    let forward = first_of(&state, "forward");
    let before = arts_to_ps(&state);
    assert_eq!(before.len(), 1, "the PS's first ART");

    let (ok, _, err) = svoct(
        &bin,
        &world,
        &["queue", "delete", &forward.to_string(), "--reason", " "],
    );
    assert!(!ok && err.contains("--reason"), "{err}");
    let id = forward.to_string();
    let (ok, out, err) = svoct(
        &bin,
        &world,
        &["queue", "delete", &id, "--reason", "insurer closed"],
    );
    assert!(ok, "{err}");
    assert!(out.contains("never be sent") && out.contains("ART"), "{out}");

    let arts = arts_to_ps(&state);
    assert_eq!(arts.len(), 2, "exactly one more ART to the PS");
    let notice = arts
        .iter()
        .find(|a| a.file_status == FileStatus::Refused)
        .expect("the abandon ART");
    assert_eq!(
        notice.compostage, before[0].compostage,
        "the PS matches it to its message"
    );
    // The operator's abandon, in its own words: not the server's refusal.
    assert!(
        notice.file_detail.starts_with("transmission a ")
            && notice
                .file_detail
                .contains(" abandonnee par l'OCT : insurer closed ; 1 lot(s) annonce(s)")
            && !notice.file_detail.contains("refus definitif"),
        "{}",
        notice.file_detail
    );
    assert!(!notice.lots.is_empty(), "the lots of the forward are named");
    for lot in &notice.lots {
        assert_eq!(lot.status, svoct_formats::art::LotStatus::Refused);
        assert!(
            lot.detail.ends_with(" abandonnee par l'OCT : insurer closed"),
            "{}",
            lot.detail
        );
    }
    assert!(!claimable(&state, forward), "a deleted row is never sent");

    let row = state.queue_get(forward).expect("get").expect("kept");
    assert_eq!(row.row.state, OutboxState::Deleted);
    assert_eq!(row.abandoned_reason.as_deref(), Some("insurer closed"));
    assert!(
        state
            .queue_list()
            .expect("list")
            .iter()
            .all(|r| r.row.id != forward)
    );
    let (ok, out, err) = svoct(&bin, &world, &["queue", "show", &id, "--json"]);
    assert!(ok, "{err}");
    assert_schema("oct-queue-show", &out);
    // Deleting again changes nothing and queues no second ART.
    let (ok, _, err) = svoct(&bin, &world, &["queue", "delete", &id, "--reason", "again"]);
    assert!(!ok && err.contains("is deleted"), "{err}");
    assert_eq!(arts_to_ps(&state).len(), 2);
}
