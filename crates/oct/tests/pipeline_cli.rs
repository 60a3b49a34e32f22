//! The operator commands through the real `svoct` binary: `oct status --json`, `oct quarantine
//! list|show|retry`, and a quarantined message (no route) forwarded once after the route is added
//! and the message retried.

mod pipeline_common;

use pipeline_common::*;
use svoct_oct::pipeline::Pipeline;
use svoct_oct::service::{Blocks, ServiceStats, work_once};
use svoct_oct::state::{OctStore, State};
use svoct_store::spool::Spool;

/// A single file for five destinations, two of which (103, 104) have no route, processed once:
/// quarantined (`no_route`) with an explanatory ART. Returns the raw message.
fn quarantine_one(world: &World) -> Vec<u8> {
    let file = single_file(&synth(25, 5, false, 11));
    let raw = ps_message(world, PS_ADDRESS, &file, PS_NUMBER, 25, 1, false);
    // Kept once, in the state database: nothing stays in the spool.
    spool_and_process(world, &raw);
    raw
}

#[test]
fn status_quarantine_and_retry_after_adding_a_route() {
    let bin = svoct_binary();
    let world = World::new(2525, "");
    let raw = quarantine_one(&world);

    let (ok, out, err) = svoct(&bin, &world, &["status", "--json"]);
    assert!(ok, "{err}");
    assert_schema("oct-status", &out);
    let status: serde_json::Value = serde_json::from_str(&out).expect("status JSON");
    assert_eq!(status["spool_waiting"], 0);
    assert_eq!(status["spool_quarantined"], 0);
    assert_eq!(status["counters"]["processed"]["invoice/quarantined"], 1);
    assert_eq!(status["counters"]["outbox"]["pending"], 1, "the explanatory ART");
    assert_eq!(status["quarantined"][0]["code"], "no_route");
    let id = status["quarantined"][0]["id"].as_i64().expect("id");

    let (ok, out, _) = svoct(&bin, &world, &["status"]);
    assert!(ok);
    assert!(out.contains("no_route"), "{out}");

    let (ok, out, _) = svoct(&bin, &world, &["quarantine", "list", "--json"]);
    assert!(ok);
    assert_schema("oct-quarantine-list", &out);
    let (ok, out, _) = svoct(&bin, &world, &["quarantine", "show", &id.to_string(), "--json"]);
    assert!(ok);
    assert_schema("oct-quarantine-show", &out);
    let shown: serde_json::Value = serde_json::from_str(&out).expect("show JSON");
    assert_eq!(shown["message"]["mail_from"], PS_ADDRESS);
    assert!(
        shown["summary"]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("aucune route")
    );
    let dump = world.dir.path().join("q.eml");
    let (ok, _, _) = svoct(
        &bin,
        &world,
        &[
            "quarantine",
            "show",
            &id.to_string(),
            "--raw",
            dump.to_str().expect("utf8"),
        ],
    );
    assert!(ok);
    assert_eq!(std::fs::read(&dump).expect("raw"), raw);

    // Fix the routing table, then retry.
    let mut text = std::fs::read_to_string(&world.config_path).expect("config");
    text.push_str(
        "\n[[route]]\norganisation = \"103\"\nmailbox = \"cpam103@am.example\"\nplaintext = true\n\n[[route]]\norganisation = \"104\"\nmailbox = \"cpam104@am.example\"\nplaintext = true\n",
    );
    std::fs::write(&world.config_path, text).expect("config");
    let (ok, out, err) = svoct(&bin, &world, &["quarantine", "retry", &id.to_string()]);
    assert!(ok, "{err}");
    assert!(out.contains("marked for retry"), "{out}");
    assert!(
        out.contains("svoct oct serve"),
        "the command says who processes it: {out}"
    );
    let (ok, _, err) = svoct(&bin, &world, &["quarantine", "retry", &id.to_string()]);
    assert!(!ok, "a second retry request is refused");
    assert!(err.contains("no quarantined message"), "{err}");

    // The running service picks the retry up (here: one worker step with the new config).
    let config = world.config();
    let keys = world.keys();
    let pipeline = Pipeline::new(&config, &keys);
    let spool = Spool::open(&config.paths.spool).expect("spool");
    let mut state = State::open(&config.paths.state).expect("state");
    let stats = ServiceStats::default();
    let mut blocks = Blocks::default();
    assert!(work_once(&spool, &mut state, &mut blocks, &pipeline, &stats).expect("retry step"));
    assert!(!work_once(&spool, &mut state, &mut blocks, &pipeline, &stats).expect("idle"));
    let c = state.counters().expect("counters");
    assert_eq!(
        c.outbox_by_kind.get("forward"),
        Some(&5),
        "five destinations, once each"
    );
    assert_eq!(
        c.outbox_by_kind.get("art"),
        Some(&2),
        "the refusal, then the acceptance"
    );
    assert_eq!(c.quarantine.get("retried"), Some(&1));
    let (ok, out, _) = svoct(&bin, &world, &["quarantine", "list", "--json"]);
    assert!(ok);
    assert_eq!(out.trim(), "[]");

    // Past its retention the content goes; `show` says so and has nothing to dump.
    let now = svoct_oct::state::now_secs();
    assert_eq!(
        state
            .purge_quarantine_before(now + 1, now)
            .expect("retention")
            .len(),
        1
    );
    let (ok, out, err) = svoct(&bin, &world, &["quarantine", "show", &id.to_string(), "--json"]);
    assert!(ok, "{err}");
    assert_schema("oct-quarantine-show", &out);
    let shown: serde_json::Value = serde_json::from_str(&out).expect("show JSON");
    assert_eq!(shown["message"]["state"], "purged");
    assert!(shown["purged"]["removed_at"].is_string(), "{shown}");
    assert_eq!(shown["message"]["code"], "no_route", "the reason stays");
    assert_eq!(shown["purged"]["cause"], "retention");
    assert_eq!(shown["purged"]["bytes"], raw.len());
    let dump = world.dir.path().join("q2.eml");
    let (ok, _, err) = svoct(
        &bin,
        &world,
        &[
            "quarantine",
            "show",
            &id.to_string(),
            "--raw",
            dump.to_str().expect("utf8"),
        ],
    );
    assert!(!ok && err.contains("was removed (retention)"), "{err}");
    assert!(!dump.exists());
}

/// `quarantine drop` ends a quarantined message for good: content removed, row kept with the
/// operator's reason, no retry afterwards, a second drop refused.
#[test]
fn quarantine_drop_removes_the_content_and_keeps_the_reason() {
    let bin = svoct_binary();
    let world = World::new(2525, "");
    quarantine_one(&world);
    let (ok, out, err) = svoct(&bin, &world, &["quarantine", "list", "--json"]);
    assert!(ok, "{err}");
    let list: serde_json::Value = serde_json::from_str(&out).expect("list JSON");
    let id = list[0]["id"].as_i64().expect("id").to_string();
    let (ok, _, err) = svoct(&bin, &world, &["quarantine", "drop", &id]);
    assert!(!ok, "a drop without a reason is refused");
    assert!(err.contains("--reason"), "{err}");
    let (ok, out, err) = svoct(
        &bin,
        &world,
        &["quarantine", "drop", &id, "--reason", "sent twice by the PS"],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("dropped") && out.contains("sent twice by the PS"),
        "{out}"
    );
    let (ok, out, _) = svoct(&bin, &world, &["quarantine", "show", &id]);
    assert!(ok);
    assert!(out.contains("dropped: sent twice by the PS"), "{out}");
    let (ok, _, err) = svoct(&bin, &world, &["quarantine", "retry", &id]);
    assert!(!ok, "a dropped message is not retried");
    assert!(err.contains("no quarantined message"), "{err}");
    let (ok, _, err) = svoct(&bin, &world, &["quarantine", "drop", &id, "--reason", "again"]);
    assert!(!ok, "a second drop is refused");
    assert!(err.contains("no quarantined message"), "{err}");
    let (ok, out, _) = svoct(&bin, &world, &["quarantine", "list", "--json"]);
    assert!(ok);
    let list: serde_json::Value = serde_json::from_str(&out).expect("list JSON");
    assert_eq!(list.as_array().map(Vec::len), Some(0), "no longer waiting: {out}");
}

/// `status` lists the 50 oldest undelivered messages and says how many more there are; the JSON
/// gives the count of all of them.
#[test]
fn status_says_how_many_undelivered_it_does_not_list() {
    use svoct_oct::state::{Claims, MessageKind, OutKind, Outgoing, Processed};
    let bin = svoct_binary();
    let world = World::new(2525, "");
    let config = world.config();
    let mut state = State::open(&config.paths.state).expect("state");
    state
        .commit(&Processed {
            spool_id: "many".into(),
            digest: "d".into(),
            kind: MessageKind::Invoice,
            mail_from: PS_ADDRESS.into(),
            subject: "s".into(),
            summary: serde_json::json!({}),
            outgoing: (0..53)
                .map(|i| Outgoing {
                    message_id: format!("<many.{i}@oct>"),
                    kind: OutKind::Forward,
                    mail_from: OCT_ADDRESS.into(),
                    rcpt: "cpam@am.example".into(),
                    raw: b"x".to_vec(),
                })
                .collect(),
            own_lots: vec![],
            own_arls: vec![],
            retried_quarantine: None,
            claims: Claims::default(),
            quarantine: None,
        })
        .expect("commit");
    drop(state);
    let (ok, out, err) = svoct(&bin, &world, &["status"]);
    assert!(ok, "{err}");
    assert!(out.contains("...and 3 more undelivered"), "{out}");
    let (ok, out, _) = svoct(&bin, &world, &["status", "--json"]);
    assert!(ok);
    assert_schema("oct-status", &out);
    let status: serde_json::Value = serde_json::from_str(&out).expect("status JSON");
    assert_eq!(status["undelivered_count"], 53);
    assert_eq!(status["undelivered"].as_array().map(Vec::len), Some(50));
}
