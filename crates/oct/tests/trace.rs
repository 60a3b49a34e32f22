//! Issue 14 point 1: the real `svoct oct serve` logs, one event per line keyed by the spool id,
//! the reception and the processing of a message with its PS number and compostage, so that an
//! operator can grep them.

mod pipeline_common;

use std::time::Duration;

use pipeline_common::*;
use svoct_mail::transport::{SmtpConfig, SmtpEnvelope, SmtpTransport, Transport};

/// The value of `key=` in a log line (fields are `key=value`, separated by spaces).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    line[start..].split(' ').next()
}

#[test]
fn processing_a_message_logs_its_spool_id_and_compostage() {
    // Nothing listens on port 9: forwards are deferred, which does not matter here.
    let world = World::new(9, "");
    let service = ServeChild::start(&svoct_binary(), &world);
    let (addr, rx) = (service.addr, &service.log);

    let file = single_file(&synth(15, 3, false, 7));
    let raw = ps_message(&world, PS_ADDRESS, &file, PS_NUMBER, 15, 3, false);
    let answer = SmtpTransport::new(&SmtpConfig::plain("127.0.0.1", addr.port()))
        .expect("client")
        .send(&SmtpEnvelope::new(PS_ADDRESS, OCT_ADDRESS), &raw)
        .expect("accepted");
    let compostage = compostage(3).to_string();

    let mut lines = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    // Nothing listens on the relay's port: the first delivery attempt is deferred at once.
    while !lines.iter().any(|l: &String| l.contains("delivery deferred")) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(_) => break,
        }
    }
    drop(service);
    let all = lines.join("\n");
    let received = lines
        .iter()
        .find(|l| l.contains("message received"))
        .unwrap_or_else(|| panic!("no received line:\n{all}"));
    let spool_id = field(received, "spool_id").expect("spool id").to_owned();
    // The spool id the PS journal shows in the 250 answer is the one in the logs.
    assert!(answer.answer.contains(&spool_id), "{answer:?} vs {spool_id}");
    assert_eq!(field(received, "compostage"), Some(compostage.as_str()), "{all}");
    assert_eq!(field(received, "ps_number"), Some(PS_NUMBER), "{all}");
    assert!(
        field(received, "client").is_some_and(|c| c.starts_with("127.0.0.1:")),
        "{all}"
    );
    let processed = lines
        .iter()
        .find(|l| l.contains("message processed"))
        .unwrap_or_else(|| panic!("no processed line:\n{all}"));
    assert_eq!(field(processed, "spool_id"), Some(spool_id.as_str()), "{all}");
    assert_eq!(field(processed, "compostage"), Some(compostage.as_str()), "{all}");
    assert_eq!(field(processed, "outcome"), Some("processed"), "{all}");
    let art = lines.iter().find(|l| l.contains("ART queued")).expect("art line");
    assert_eq!(field(art, "spool_id"), Some(spool_id.as_str()), "{all}");
    assert_eq!(field(art, "compostage"), Some(compostage.as_str()), "{all}");
    let deferred = lines
        .iter()
        .find(|l| l.contains("delivery deferred"))
        .unwrap_or_else(|| panic!("no delivery line:\n{all}"));
    assert_eq!(field(deferred, "spool_id"), Some(spool_id.as_str()), "{all}");
    assert!(field(deferred, "delay_secs").is_some(), "{all}");
    // Content (health data) never reaches the logs: no line carries the file's first record.
    let record = String::from_utf8_lossy(&file[..40]).into_owned();
    assert!(!all.contains(&record), "{all}");
}

// --- `svoct oct trace`, through the real binary against a real state database.

/// One accepted invoice message processed into the state (its forwards and ART queued, not
/// delivered): returns its spool id.
fn process_one(world: &World) -> String {
    let file = single_file(&synth(15, 3, false, 5));
    let raw = ps_message(world, PS_ADDRESS, &file, PS_NUMBER, 15, 5, false);
    spool_and_process(world, &raw)
}

#[test]
fn trace_finds_a_message_by_spool_id_compostage_and_ps_number() {
    let world = World::new(9, "");
    let spool_id = process_one(&world);
    let bin = svoct_binary();
    let compostage = compostage(5).to_string();
    for query in [spool_id.as_str(), compostage.as_str(), PS_NUMBER] {
        let (ok, out, err) = svoct(&bin, &world, &["trace", query]);
        assert!(ok, "{query}: {err}");
        assert!(out.contains(&format!("spool id: {spool_id}")), "{query}: {out}");
        assert!(out.contains(&compostage), "{query}: {out}");
        assert!(out.contains("forward #"), "{query}: {out}");
        assert!(out.contains("art #"), "{query}: {out}");
        assert!(out.contains("pending"), "{query}: {out}");
    }
    let (ok, out, err) = svoct(&bin, &world, &["trace", &compostage, "--json"]);
    assert!(ok, "{err}");
    assert_schema("oct-trace", &out);
    let doc: serde_json::Value = serde_json::from_str(&out).expect("json");
    let message = &doc["messages"][0];
    assert_eq!(message["spool_id"], spool_id.as_str());
    assert_eq!(message["compostage"]["compostage"], compostage.as_str());
    assert_eq!(message["processed"]["outcome"], "processed");
    let kinds: Vec<&str> = message["outbox"]
        .as_array()
        .expect("outbox")
        .iter()
        .filter_map(|o| o["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"forward") && kinds.contains(&"art"), "{kinds:?}");
    assert!(!message["lots"].as_array().expect("lots").is_empty());
}

#[test]
fn trace_of_an_unknown_key_says_nothing_found_and_fails() {
    let world = World::new(9, "");
    process_one(&world);
    let bin = svoct_binary();
    let (ok, out, err) = svoct(&bin, &world, &["trace", "nosuchkey"]);
    assert!(!ok, "{out}");
    assert!(err.contains("nothing found"), "{err}");
    let (ok, out, _) = svoct(&bin, &world, &["trace", "nosuchkey", "--json"]);
    assert!(!ok);
    let doc: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(doc["messages"], serde_json::json!([]));
}
