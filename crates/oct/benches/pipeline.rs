//! Pipeline throughput: messages per second from the spool to forwarded files.
//!
//! Fills a spool with `SVOCT_BENCH_N` (default 2000) PS messages, each an OCT single file of
//! about 50 invoices over 3 destinations, encrypted for the OCT (CMS, AES-256) like real ones,
//! then starts the service (ingress idle, `pipeline.workers` workers, delivery as `.eml` files)
//! and measures the time until every message is processed (committed to the outbox) and until
//! every outgoing message (3 forwards, one of them encrypted for the AM, and 1 ART per input) is
//! written. Not a timed assertion: it prints the figures. Run it with
//! `scripts/bench/pipeline.sh`.

#[path = "../tests/pipeline_common/mod.rs"]
mod pipeline_common;

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
}
