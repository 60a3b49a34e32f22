//! Issue 14 point 1: the real `svoct oct serve` logs, one event per line keyed by the spool id,
//! the reception and the processing of a message with its PS number and compostage, so that an
//! operator can grep them.

mod pipeline_common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
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
    let mut child = Command::new(svoct_binary())
        .args(["oct", "--config"])
        .arg(&world.config_path)
        .arg("serve")
        .env("SVOCT_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("read");
    let addr: std::net::SocketAddr = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("serve did not start: {first:?}"))
        .parse()
        .expect("address");
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });

    let file = single_file(&synth(15, 3, false, 7));
    let raw = ps_message(&world, PS_ADDRESS, &file, PS_NUMBER, 15, 3, false);
    let answer = SmtpTransport::new(&SmtpConfig::plain("127.0.0.1", addr.port()))
        .expect("client")
        .send(&SmtpEnvelope::new(PS_ADDRESS, OCT_ADDRESS), &raw)
        .expect("accepted");
    let compostage = compostage(3).to_string();

    let mut lines = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !lines.iter().any(|l: &String| l.contains("ART queued")) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
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
    // Content (health data) never reaches the logs: no line carries the file's first record.
    let record = String::from_utf8_lossy(&file[..40]).into_owned();
    assert!(!all.contains(&record), "{all}");
}
