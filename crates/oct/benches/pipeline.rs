//! Pipeline throughput: messages per second from the spool to forwarded files.
//!
//! Fills a spool with `SVOCT_BENCH_N` (default 2000) PS messages, each an OCT single file of
//! about 50 invoices over 3 destinations, encrypted for the OCT (CMS, AES-256) like real ones,
//! then starts the service (ingress idle, `pipeline.workers` workers, every outgoing message
//! delivered into a local Maildir per mailbox) and measures the time until every message is
//! processed (committed to the outbox) and until every outgoing message (3 forwards, one of them
//! encrypted for the AM, and 1 ART per input) is in its Maildir. Not a timed assertion: it
//! prints the figures. Run it with `scripts/bench/pipeline.sh`, which also starts an Exim on
//! loopback and sets `SVOCT_BENCH_EXIM=host:port` and `SVOCT_BENCH_EXIM_MAILDIR`: the same N
//! messages are then first sent to that Exim (`SVOCT_BENCH_CONC` connections, default 4), timed
//! until accepted (250 after DATA) and until all are delivered into its Maildir, and the ratios
//! printed. `SVOCT_BENCH_ROUNDS` repeats the whole measurement (medians printed), pausing
//! `SVOCT_BENCH_PAUSE_SECS` (default 60) between rounds; `SVOCT_BENCH_SENDERS` overrides
//! `delivery.senders`.

#[path = "../tests/pipeline_common/mod.rs"]
mod pipeline_common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use pipeline_common::*;
use svoct_oct::service::Running;
use svoct_oct::state::{OctStore, State};
use svoct_store::spool::{ReceivedEnvelope, Spool};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one round measured, in messages per second.
struct Round {
    exim_accepted: Option<f64>,
    exim_delivered: Option<f64>,
    committed: f64,
    delivered: f64,
}

fn main() {
    let n: usize = env_or("SVOCT_BENCH_N", 2000);
    let workers: usize = env_or("SVOCT_BENCH_WORKERS", 2);
    // 0: the service's default.
    let senders: usize = env_or("SVOCT_BENCH_SENDERS", 0);
    let rounds: usize = env_or("SVOCT_BENCH_ROUNDS", 1);
    let pause: u64 = env_or("SVOCT_BENCH_PAUSE_SECS", 60);
    let exim: Option<SocketAddr> = std::env::var("SVOCT_BENCH_EXIM")
        .ok()
        .and_then(|s| s.parse().ok());
    let conc: usize = env_or("SVOCT_BENCH_CONC", 4);
    let exim_maildir = std::env::var_os("SVOCT_BENCH_EXIM_MAILDIR").map(std::path::PathBuf::from);

    let mut results = Vec::new();
    for r in 0..rounds.max(1) {
        if r > 0 {
            // Flush what the previous round wrote and let its deletions age: ext4 without a
            // journal (this machine's) skips inodes freed in the last 60 s when it allocates
            // new ones, which slows every file creation after a round deleted thousands.
            let _ = std::process::Command::new("sync").status();
            std::thread::sleep(Duration::from_secs(pause));
        }
        println!("== round {} of {}", r + 1, rounds.max(1));
        results.push(round(
            r % 2 == 0,
            n,
            workers,
            senders,
            exim.map(|a| (a, conc, exim_maildir.as_deref())),
        ));
    }
    if results.len() > 1 {
        let median = |f: &dyn Fn(&Round) -> Option<f64>| {
            let mut v: Vec<f64> = results.iter().filter_map(f).collect();
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied()
        };
        println!("== medians over {} rounds", results.len());
        let show = |name: &str, v: Option<f64>| {
            if let Some(v) = v {
                println!("  {name}: {v:.0} msg/s");
            }
        };
        show("exim acceptance", median(&|r| r.exim_accepted));
        show("exim accepted and delivered", median(&|r| r.exim_delivered));
        show(
            "pipeline spool -> outbox committed",
            median(&|r| Some(r.committed)),
        );
        show(
            "pipeline spool -> forwarded files in Maildirs",
            median(&|r| Some(r.delivered)),
        );
        let ratios = |num: &dyn Fn(&Round) -> Option<f64>| {
            let mut v: Vec<f64> = results
                .iter()
                .filter_map(|r| Some(r.delivered / num(r)?))
                .collect();
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied()
        };
        if let Some(x) = ratios(&|r| r.exim_accepted) {
            println!("  ratio to exim acceptance (median of the rounds' ratios): {x:.2} (target >= 0.50)");
        }
        if let Some(x) = ratios(&|r| r.exim_delivered) {
            println!("  ratio to exim accepted and delivered: {x:.2}");
        }
    }
}

fn round(
    exim_first: bool,
    n: usize,
    workers: usize,
    senders: usize,
    exim: Option<(SocketAddr, usize, Option<&std::path::Path>)>,
) -> Round {
    let out = tempfile::tempdir().expect("tempdir");
    let extra = format!("[pipeline]\nworkers = {workers}\npoll_interval_ms = 5\n",);
    let world = World::new(1, &extra);
    // Deliver into Maildirs instead of SMTP.
    let text = std::fs::read_to_string(&world.config_path).expect("config");
    let text = text.replace(
        "[delivery.smtp]\nhost = \"127.0.0.1\"\nport = 1\n",
        &delivery_to_maildirs(out.path(), senders),
    );
    std::fs::write(&world.config_path, text).expect("config");
    let config = world.config();
    let senders = config.delivery.senders;

    // Distinct files (different seeds), ~50 invoices over 3 destinations each. Every spooled
    // message is a different file under its own compostage: the OCT forwards a lot once, so
    // repeating files would measure its duplicate answers instead (Exim gets the first 16,
    // repeated: it does not look inside).
    let message = |i: u32| {
        let file = single_file(&synth(50, 3, false, u64::from(i) + 1));
        ps_message(&world, PS_ADDRESS, &file, PS_NUMBER, 50, i % 99_999 + 1, false)
    };
    let variants: Vec<Vec<u8>> = (0..16u32).map(message).collect();
    let avg = variants.iter().map(Vec::len).sum::<usize>() / variants.len();
    let fill = Instant::now();
    {
        let spool = Spool::open(&config.paths.spool).expect("spool");
        let envelope = ReceivedEnvelope {
            helo: "bench".into(),
            mail_from: PS_ADDRESS.into(),
            rcpt_to: vec![OCT_ADDRESS.into()],
            peer: "127.0.0.1:1".into(),
            received_at: 0,
        };
        for i in 0..n {
            let raw = match variants.get(i) {
                Some(v) => v.clone(),
                None => message(u32::try_from(i).expect("message count")),
            };
            spool.put(&envelope, &raw).expect("spool put");
        }
    }
    eprintln!(
        "spooled {n} messages of ~{avg} bytes in {:.1} s",
        fill.elapsed().as_secs_f64()
    );

    let run_exim = || {
        let mut exim_delivered = None;
        let exim_accepted = exim.map(|(addr, conc, maildir)| {
            let new = maildir.map(|d| d.join("new"));
            let count = |dir: &std::path::Path| std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
            let before = new.as_deref().map_or(0, count);
            let start = Instant::now();
            let t = send_all(addr, n, conc, &variants);
            let rate = n as f64 / t.as_secs_f64();
            println!(
                "exim (durable acceptance, 250 after DATA): {n} messages in {:.2} s = {rate:.0} msg/s ({conc} connections)",
                t.as_secs_f64()
            );
            if let Some(new) = &new {
                loop {
                    let delivered = count(new).saturating_sub(before);
                    if delivered >= n {
                        break;
                    }
                    assert!(
                        start.elapsed() < Duration::from_secs(3600),
                        "exim did not deliver everything ({delivered} of {n})"
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
                let d = start.elapsed();
                let delivered = n as f64 / d.as_secs_f64();
                println!(
                    "exim (accepted and delivered into its Maildir): {:.2} s = {delivered:.0} msg/s",
                    d.as_secs_f64()
                );
                exim_delivered = Some(delivered);
            }
            rate
        });
        (exim_accepted, exim_delivered)
    };
    let run_ours = || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let state = State::open(&config.paths.state).expect("state");
        let start = Instant::now();
        let running = rt.block_on(Running::start(config.clone())).expect("service");
        let mut processed_at = None;
        loop {
            let c = state.counters().expect("counters");
            let processed: u64 = c.processed.values().sum();
            if processed_at.is_none() && processed >= n as u64 {
                processed_at = Some(start.elapsed());
            }
            let sent = c.outbox.get("sent").copied().unwrap_or(0);
            if processed >= n as u64 && sent >= 4 * n as u64 {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(3600),
                "bench did not finish"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let done = start.elapsed();
        rt.block_on(running.shutdown());
        let c = state.counters().expect("counters");
        assert_eq!(c.processed.get("invoice/processed"), Some(&(n as u64)));
        let files: usize = MAILBOXES
            .iter()
            .map(|m| {
                std::fs::read_dir(out.path().join(m).join("new"))
                    .map(|d| d.count())
                    .unwrap_or(0)
            })
            .sum();
        assert_eq!(files, 4 * n, "3 forwarded files and 1 ART per message");
        (processed_at.unwrap_or(done), done, files)
    };
    // Alternate who goes first: the file system is slower right after a run deleted thousands
    // of files, and neither side should always get the fresh one.
    let ((exim_accepted, exim_delivered), (processed_at, done, files)) = if exim_first {
        let e = run_exim();
        (e, run_ours())
    } else {
        let o = run_ours();
        (run_exim(), o)
    };
    let committed = n as f64 / processed_at.as_secs_f64();
    let delivered = n as f64 / done.as_secs_f64();
    println!(
        "pipeline: {n} messages (~{avg} B, 50 invoices, 3 destinations, CMS) with {workers} workers, {senders} senders"
    );
    println!(
        "  spool -> outbox committed: {:.2} s, {committed:.0} messages/s",
        processed_at.as_secs_f64()
    );
    println!(
        "  spool -> forwarded files delivered into Maildirs: {:.2} s, {delivered:.0} messages/s ({files} outgoing files)",
        done.as_secs_f64()
    );
    if let Some(rate) = exim_accepted {
        println!(
            "ratio pipeline (spool -> forwarded files) / exim acceptance: {:.2} (target >= 0.50)",
            delivered / rate
        );
    }
    if let Some(rate) = exim_delivered {
        println!(
            "ratio pipeline (spool -> forwarded files) / exim accepted and delivered: {:.2}",
            delivered / rate
        );
    }
    Round {
        exim_accepted,
        exim_delivered,
        committed,
        delivered,
    }
}

/// The mailboxes the concentrator writes to: the three AM destinations (forwarded files) and
/// the PS (ARTs).
const MAILBOXES: [&str; 4] = [
    "cpam100@am.example",
    "cpam101@am.example",
    "caisse102@am.example",
    PS_ADDRESS,
];

/// Delivery settings that write every outgoing message into a Maildir per mailbox, as Exim
/// does in the same run: forwarded files end where the reference's messages end.
fn delivery_to_maildirs(root: &std::path::Path, senders: usize) -> String {
    let mut out = if senders == 0 {
        "[delivery]\n".to_owned()
    } else {
        format!("[delivery]\nsenders = {senders}\n")
    };
    let batch: usize = env_or("SVOCT_BENCH_DELIVERY_BATCH", 0);
    if batch > 0 {
        out.push_str(&format!("batch = {batch}\n"));
    }
    for m in MAILBOXES {
        out.push_str(&format!(
            "[[delivery.local]]\naddress = \"{m}\"\nmaildir = \"{}\"\n",
            root.join(m).display()
        ));
    }
    out
}

/// Reads one (possibly multi-line) SMTP reply and returns its code.
fn reply(r: &mut BufReader<TcpStream>) -> u16 {
    let mut line = String::new();
    loop {
        line.clear();
        let got = r.read_line(&mut line).expect("smtp read");
        assert!(got > 0, "smtp connection closed");
        if line.as_bytes().get(3) != Some(&b'-') {
            return line.get(..3).and_then(|c| c.parse().ok()).expect("smtp code");
        }
    }
}

/// Sends `n` messages (cycling through `variants`) over `conc` connections, one transaction at
/// a time per connection, and returns the wall time until the last `250` after DATA.
fn send_all(addr: SocketAddr, n: usize, conc: usize, variants: &[Vec<u8>]) -> Duration {
    // Dot-stuffed, CRLF-terminated DATA payloads, prepared before the clock starts.
    let payloads: Vec<Vec<u8>> = variants
        .iter()
        .map(|m| {
            let mut out = Vec::with_capacity(m.len() + 64);
            for line in m.split(|&b| b == b'\n') {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.first() == Some(&b'.') {
                    out.push(b'.');
                }
                out.extend_from_slice(line);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b".\r\n");
            out
        })
        .collect();
    let start = Instant::now();
    std::thread::scope(|s| {
        for c in 0..conc.max(1) {
            let payloads = &payloads;
            s.spawn(move || {
                let stream = TcpStream::connect(addr).expect("connect exim");
                let mut w = stream.try_clone().expect("clone");
                let mut r = BufReader::new(stream);
                assert_eq!(reply(&mut r), 220);
                w.write_all(b"EHLO bench.test\r\n").expect("write");
                assert_eq!(reply(&mut r), 250);
                let mut i = c;
                while i < n {
                    let cmd = format!("MAIL FROM:<{PS_ADDRESS}>\r\nRCPT TO:<{OCT_ADDRESS}>\r\nDATA\r\n");
                    // Exim advertises PIPELINING: the three commands go in one write.
                    w.write_all(cmd.as_bytes()).expect("write");
                    assert_eq!(reply(&mut r), 250, "MAIL");
                    assert_eq!(reply(&mut r), 250, "RCPT");
                    assert_eq!(reply(&mut r), 354, "DATA");
                    w.write_all(&payloads[i % payloads.len()]).expect("write");
                    assert_eq!(reply(&mut r), 250, "end of data");
                    i += conc.max(1);
                }
                let _ = w.write_all(b"QUIT\r\n");
            });
        }
    });
    start.elapsed()
}
