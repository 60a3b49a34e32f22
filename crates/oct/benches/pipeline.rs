//! Pipeline throughput: messages per second from the spool to forwarded files.
//!
//! Fills a spool with `SVOCT_BENCH_N` (default 2000) PS messages, each an OCT single file of
//! about 50 invoices over 3 destinations, encrypted for the OCT (CMS, AES-256) like real ones,
//! then starts the service (ingress idle, `pipeline.workers` workers, delivery as `.eml` files)
//! and measures the time until every message is processed (committed to the outbox) and until
//! every outgoing message (3 forwards, one of them encrypted for the AM, and 1 ART per input) is
//! written. Not a timed assertion: it prints the figures. Run it with
//! `scripts/bench/pipeline.sh`, which also starts an Exim on loopback and sets
//! `SVOCT_BENCH_EXIM=host:port`: the same N messages are then first sent to that Exim (durable
//! acceptance, `SVOCT_BENCH_CONC` connections, default 4) and both rates and their ratio printed.

#[path = "../tests/pipeline_common/mod.rs"]
mod pipeline_common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use pipeline_common::*;
use svoct_oct::service::Running;
use svoct_oct::state::State;
use svoct_store::spool::{Envelope, Spool};

fn main() {
    let n: usize = std::env::var("SVOCT_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let workers: usize = std::env::var("SVOCT_BENCH_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let out = tempfile::tempdir().expect("tempdir");
    let extra = format!("[pipeline]\nworkers = {workers}\npoll_interval_ms = 5\n",);
    let world = World::new(1, &extra);
    // Deliver to a directory instead of SMTP.
    let text = std::fs::read_to_string(&world.config_path).expect("config");
    let text = text.replace(
        "[delivery.smtp]\nhost = \"127.0.0.1\"\nport = 1\n",
        &format!("[delivery]\ndirectory = \"{}\"\n", out.path().display()),
    );
    std::fs::write(&world.config_path, text).expect("config");
    let config = world.config();

    // Distinct files (different seeds), ~50 invoices over 3 destinations each.
    let variants: Vec<Vec<u8>> = (0..16u32)
        .map(|i| {
            let file = single_file(&synth(50, 3, false, u64::from(i) + 1));
            ps_message(&world, PS_ADDRESS, &file, PS_NUMBER, 50, i * 2 + 1, false)
        })
        .collect();
    let avg = variants.iter().map(Vec::len).sum::<usize>() / variants.len();
    let fill = Instant::now();
    {
        let spool = Spool::open(&config.paths.spool).expect("spool");
        let envelope = Envelope {
            helo: "bench".into(),
            mail_from: PS_ADDRESS.into(),
            rcpt_to: vec![OCT_ADDRESS.into()],
            peer: "127.0.0.1:1".into(),
            received_at: 0,
        };
        for i in 0..n {
            spool
                .put(&envelope, &variants[i % variants.len()])
                .expect("spool put");
        }
    }
    eprintln!(
        "spooled {n} messages of ~{avg} bytes in {:.1} s",
        fill.elapsed().as_secs_f64()
    );

    let exim: Option<SocketAddr> = std::env::var("SVOCT_BENCH_EXIM")
        .ok()
        .and_then(|s| s.parse().ok());
    let conc: usize = std::env::var("SVOCT_BENCH_CONC")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let exim_rate = exim.map(|addr| {
        let t = send_all(addr, n, conc, &variants);
        let rate = n as f64 / t.as_secs_f64();
        println!(
            "exim (durable acceptance, 250 after DATA): {n} messages in {:.2} s = {rate:.0} msg/s ({conc} connections)",
            t.as_secs_f64()
        );
        rate
    });

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
        std::thread::sleep(Duration::from_millis(20));
    }
    let done = start.elapsed();
    rt.block_on(running.shutdown());
    let c = state.counters().expect("counters");
    assert_eq!(c.processed.get("invoice/processed"), Some(&(n as u64)));
    let files = std::fs::read_dir(out.path()).expect("out").count();
    let processed_at = processed_at.unwrap_or(done);
    println!("pipeline: {n} messages (~{avg} B, 50 invoices, 3 destinations, CMS) with {workers} workers");
    println!(
        "  spool -> outbox committed: {:.2} s, {:.0} messages/s",
        processed_at.as_secs_f64(),
        n as f64 / processed_at.as_secs_f64()
    );
    println!(
        "  spool -> forwarded files written: {:.2} s, {:.0} messages/s ({} outgoing files)",
        done.as_secs_f64(),
        n as f64 / done.as_secs_f64(),
        files
    );
    if let Some(rate) = exim_rate {
        let ours = n as f64 / done.as_secs_f64();
        println!(
            "ratio pipeline (spool -> forwarded files) / exim acceptance: {:.2} (target >= 0.50)",
            ours / rate
        );
    }
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
