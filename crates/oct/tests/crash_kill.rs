//! Exactly-once across crashes: N messages go into a running `svoct oct serve`, the process is
//! killed with SIGKILL while it processes and delivers them, it is started again, and every
//! forwarded file and every ART must exist exactly once.
//!
//! The SMTP hop to the downstream MTA is at-least-once: a kill between the MTA's `250` and the
//! outbox update makes the restarted service send that message again with the same Message-ID.
//! So the test checks by Message-ID (each expected one delivered, none unexpected, every lot of
//! every input in exactly one distinct forwarded file) and bounds the raw count: at most one
//! duplicate per sender thread per kill (each sender delivers one message at a time).

mod pipeline_common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use pipeline_common::*;
use svoct_formats::art::LotStatus;
use svoct_formats::b2;
use svoct_mail::profile::{self, ParseLimits};
use svoct_mail::transport::{SmtpConfig, SmtpEnvelope, SmtpTransport, Transport};
use svoct_oct::state::{OctStore, State};
use svoct_testkit::{Exim, EximConfig};

const N: u32 = 24;
const FORWARD_BOXES: &[&str] = &["cpam100", "cpam101", "caisse102"];

struct Server {
    child: Child,
}

impl Server {
    fn start(bin: &PathBuf, config: &std::path::Path) -> (Server, u16) {
        let mut child = Command::new(bin)
            .args(["--log", "info", "oct", "serve", "--config"])
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn svoct oct serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        (Server { child }, port)
    }

    /// SIGTERM, then wait for the graceful shutdown to finish.
    fn terminate(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let exit = self.child.wait().expect("wait");
        assert!(exit.success(), "graceful shutdown exits 0, got {exit:?}");
    }

    fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn delivered(exim: &Exim, mailbox: &str) -> Vec<Vec<u8>> {
    exim.messages(mailbox)
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .collect()
}

fn message_id(raw: &[u8]) -> String {
    profile::parse_message(raw, &ParseLimits::default())
        .expect("delivered message parses")
        .headers
        .message_id
        .expect("Message-ID")
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn kill_9_mid_way_then_restart_forwards_everything_exactly_once() {
    let bin = pipeline_common::svoct_binary();
    let mut boxes = FORWARD_BOXES.to_vec();
    boxes.extend(["mutuelle", "ps1"]);
    let exim = Exim::start(&EximConfig {
        mailboxes: &boxes,
        ..EximConfig::default()
    })
    .expect("exim");
    let world = World::new(exim.port(), "");
    let config = world.config();

    let (server, port) = Server::start(&bin, &world.config_path);
    let mut inputs = Vec::new();
    for n in 1..=N {
        let file = single_file(&synth(30, 3, false, u64::from(n)));
        let raw = ps_message(&world, PS_ADDRESS, &file, PS_NUMBER, 30, n, false);
        SmtpTransport::new(&SmtpConfig::plain("127.0.0.1", port))
            .expect("client")
            .send(&SmtpEnvelope::new(PS_ADDRESS, OCT_ADDRESS), &raw)
            .expect("the ingress acknowledges (durably spooled)");
        inputs.push(file);
    }
    // First kill: while the pipeline and the sender are busy.
    wait_until("the first deliveries", Duration::from_secs(120), || {
        exim.messages("cpam100").len() >= 2
    });
    let at_kill: usize = boxes.iter().map(|b| exim.messages(b).len()).sum();
    server.kill9();
    eprintln!("first kill after {at_kill} deliveries of {}", N * 4);
    assert!(
        at_kill < (N as usize) * 4,
        "the kill came too late to test anything ({at_kill} delivered)"
    );

    // Second run, killed again mid-way, then a third that finishes.
    let (server, _) = Server::start(&bin, &world.config_path);
    wait_until("progress after the restart", Duration::from_secs(120), || {
        boxes.iter().map(|b| exim.messages(b).len()).sum::<usize>() > at_kill + 3
    });
    server.kill9();
    let (server, _) = Server::start(&bin, &world.config_path);
    let want = N as usize;
    wait_until("every forward and ART", Duration::from_secs(180), || {
        boxes.iter().filter(|b| **b != "mutuelle").all(|b| {
            delivered(&exim, b)
                .iter()
                .map(|r| message_id(r))
                .collect::<BTreeSet<_>>()
                .len()
                >= want
        })
    });
    let state = State::open(&config.paths.state).expect("state");
    wait_until("the outbox to drain", Duration::from_secs(60), || {
        state
            .counters()
            .map(|c| c.outbox.get("sent") == Some(&(4 * N as u64)))
            .unwrap_or(false)
    });
    server.terminate();

    let counters = state.counters().expect("counters");
    assert_eq!(counters.processed.get("invoice/processed"), Some(&(N as u64)));
    assert_eq!(counters.outbox.get("sent"), Some(&(4 * N as u64)));
    let expected: BTreeMap<String, String> = state
        .outbox_ids()
        .expect("ids")
        .into_iter()
        .map(|r| (r.message_id, r.rcpt))
        .collect();
    assert_eq!(expected.len(), 4 * N as usize);

    let mut seen_lots: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    let mut duplicates = 0;
    for b in boxes.iter().filter(|b| **b != "mutuelle") {
        let msgs = delivered(&exim, b);
        let mut ids = BTreeSet::new();
        for raw in &msgs {
            let id = message_id(raw);
            let rcpt = expected
                .get(&id)
                .unwrap_or_else(|| panic!("unexpected Message-ID {id}"));
            assert!(
                rcpt.starts_with(&format!("{b}@")),
                "{id} went to {b}, queued for {rcpt}"
            );
            if !ids.insert(id) {
                duplicates += 1;
                continue;
            }
            if *b == "ps1" {
                continue;
            }
            let parsed = profile::parse_message(raw, &ParseLimits::default()).expect("parses");
            let body = if parsed.profile_name().ends_with("/K") {
                parsed
                    .open(Some(&world.am_key), &ParseLimits::default())
                    .expect("opens")
                    .bytes
            } else {
                parsed.attachment.clone()
            };
            for lot in b2::parse(&body).expect("B2").lots() {
                *seen_lots.entry(lot.bytes().to_vec()).or_default() += 1;
            }
        }
        assert_eq!(ids.len(), want, "{b}: one distinct message per input");
    }
    for input in &inputs {
        for lot in b2::parse(input).expect("input").lots() {
            assert_eq!(
                seen_lots.get(lot.bytes()),
                Some(&1),
                "every lot forwarded exactly once"
            );
        }
    }
    let lot_total: usize = inputs
        .iter()
        .map(|i| b2::parse(i).expect("input").lots().len())
        .sum();
    assert_eq!(seen_lots.len(), lot_total);
    eprintln!("duplicates by SMTP redelivery (same Message-ID): {duplicates}");
    // Two kills, each interrupting at most one delivery per sender thread.
    let bound = 2 * config.delivery.senders;
    assert!(
        duplicates <= bound,
        "at most one redelivery per sender per kill ({bound}), saw {duplicates}"
    );
}

/// Sends `raw` over a plain SMTP dialogue and hangs up right after the final `.`, without
/// reading the reply: a client whose connection was cut before it saw `250`. Whether the
/// message was spooled is up to the server (it usually was). Errors are ignored (the server
/// may be down).
fn send_and_hang_up(port: u16, raw: &[u8]) {
    let attempt = || -> std::io::Result<()> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let reply = |s: &mut std::net::TcpStream| -> std::io::Result<()> {
            // Reads one (possibly multi-line) reply: its last line has a space after the code.
            let mut line = Vec::new();
            loop {
                let mut b = [0u8];
                if s.read(&mut b)? == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                line.push(b[0]);
                if b[0] == b'\n' {
                    if line.get(3) == Some(&b' ') {
                        return Ok(());
                    }
                    line.clear();
                }
            }
        };
        reply(&mut s)?;
        for cmd in [
            "EHLO ps.example\r\n".to_string(),
            format!("MAIL FROM:<{PS_ADDRESS}>\r\n"),
            format!("RCPT TO:<{OCT_ADDRESS}>\r\n"),
            "DATA\r\n".to_string(),
        ] {
            s.write_all(cmd.as_bytes())?;
            reply(&mut s)?;
        }
        // Dot-stuffed body, then the end of data, then gone.
        let mut data = Vec::with_capacity(raw.len() + 64);
        for line in raw.split_inclusive(|b| *b == b'\n') {
            if line.first() == Some(&b'.') {
                data.push(b'.');
            }
            data.extend_from_slice(line);
        }
        if !data.ends_with(b"\r\n") {
            data.extend_from_slice(b"\r\n");
        }
        data.extend_from_slice(b".\r\n");
        s.write_all(&data)?;
        s.shutdown(std::net::Shutdown::Both)
    };
    let _ = attempt();
}

/// Sends `raw` until the ingress answers `250` (the server may be down or restarting).
fn send_until_accepted(port: &AtomicU16, raw: &[u8]) {
    let start = Instant::now();
    loop {
        let p = port.load(Ordering::SeqCst);
        let sent = SmtpTransport::new(&SmtpConfig::plain("127.0.0.1", p))
            .expect("client")
            .send(&SmtpEnvelope::new(PS_ADDRESS, OCT_ADDRESS), raw);
        if sent.is_ok() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "never accepted: {sent:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Clients that retry what was cut before `250`, while the service is killed twice: the same
/// message spooled twice must still be forwarded once. Checked in what the downstream Exim
/// delivered (lots, Message-IDs) and in the ARTs the PS received, not in the OCT's counters.
#[test]
fn clients_retrying_across_kill_9_get_every_lot_forwarded_exactly_once() {
    let bin = pipeline_common::svoct_binary();
    let mut boxes = FORWARD_BOXES.to_vec();
    boxes.extend(["mutuelle", "ps1"]);
    let exim = Exim::start(&EximConfig {
        mailboxes: &boxes,
        ..EximConfig::default()
    })
    .expect("exim");
    let world = World::new(exim.port(), "");
    let config = world.config();

    let inputs: Vec<Vec<u8>> = (1..=N)
        .map(|n| single_file(&synth(30, 3, false, 1000 + u64::from(n))))
        .collect();
    let raws: Vec<Vec<u8>> = inputs
        .iter()
        .zip(1..=N)
        .map(|(file, n)| ps_message(&world, PS_ADDRESS, file, PS_NUMBER, 30, n, false))
        .collect();
    let (server, first_port) = Server::start(&bin, &world.config_path);
    let port = Arc::new(AtomicU16::new(first_port));
    let sent = Arc::new(AtomicU32::new(0));
    // Every other message is first sent by a client that hangs up before the reply, then sent
    // again until acknowledged: most of those are spooled twice.
    let client = {
        let (port, sent) = (port.clone(), sent.clone());
        let raws = raws.clone();
        std::thread::spawn(move || {
            for (i, raw) in raws.iter().enumerate() {
                if i % 2 == 0 {
                    send_and_hang_up(port.load(Ordering::SeqCst), raw);
                }
                send_until_accepted(&port, raw);
                sent.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let mut server = Some(server);
    for threshold in [N / 3, 2 * N / 3] {
        wait_until("the client to progress", Duration::from_secs(120), || {
            sent.load(Ordering::SeqCst) >= threshold
        });
        if let Some(s) = server.take() {
            s.kill9();
        }
        // Clients meet a closed port for a moment, and retry.
        std::thread::sleep(Duration::from_millis(300));
        let (s, p) = Server::start(&bin, &world.config_path);
        port.store(p, Ordering::SeqCst);
        server = Some(s);
    }
    client.join().expect("client thread");

    let want = N as usize;
    wait_until("every forward", Duration::from_secs(180), || {
        FORWARD_BOXES.iter().all(|b| {
            delivered(&exim, b)
                .iter()
                .map(|r| message_id(r))
                .collect::<BTreeSet<_>>()
                .len()
                >= want
        })
    });
    let state = State::open(&config.paths.state).expect("state");
    wait_until("the outbox to drain", Duration::from_secs(60), || {
        state
            .counters()
            .map(|c| !c.outbox.contains_key("pending") && !c.outbox.contains_key("sending"))
            .unwrap_or(false)
    });
    if let Some(s) = server.take() {
        s.terminate();
    }

    // Downstream: every lot of every input in exactly one distinct forwarded message.
    let (lots, repeats) = lots_delivered(&world, &exim, FORWARD_BOXES);
    let mut total = 0;
    for input in &inputs {
        for lot in b2::parse(input).expect("input").lots() {
            assert_eq!(
                lots.get(lot.bytes()),
                Some(&1),
                "every lot forwarded exactly once"
            );
            total += 1;
        }
    }
    assert_eq!(lots.len(), total, "nothing else forwarded");
    for b in FORWARD_BOXES {
        let ids: BTreeSet<String> = delivered(&exim, b).iter().map(|r| message_id(r)).collect();
        assert_eq!(ids.len(), want, "{b}: one forwarded file per input");
    }
    eprintln!("raw SMTP redeliveries (same Message-ID): {repeats}");
    let bound = 2 * config.delivery.senders;
    assert!(repeats <= bound, "at most one redelivery per sender per kill");

    // The PS: per compostage exactly one ART that forwarded; every other copy answered as a
    // duplicate, none forwarded twice.
    let arts = arts_delivered(&exim, "ps1");
    let mut per_compostage: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for a in &arts {
        let e = per_compostage.entry(a.compostage.clone()).or_default();
        if a.lots.iter().all(|l| l.status == LotStatus::Forwarded) {
            e.0 += 1;
        } else {
            assert!(
                a.lots.iter().all(|l| l.status == LotStatus::AlreadyForwarded),
                "{a:#?}"
            );
            e.1 += 1;
        }
    }
    assert_eq!(per_compostage.len(), want, "an ART for every input");
    assert!(
        per_compostage.values().all(|(fwd, _)| *fwd == 1),
        "{per_compostage:?}"
    );
    let duplicates: usize = per_compostage.values().map(|(_, d)| d).sum();
    eprintln!("copies spooled twice and answered as duplicates: {duplicates}");
    assert!(
        duplicates >= want / 4,
        "the test must have made clients retry accepted messages ({duplicates})"
    );
}
