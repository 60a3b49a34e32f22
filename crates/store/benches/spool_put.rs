//! Durable spool write of a ~100 KB message: the file spool (`Spool::put`: write, fsync,
//! rename, fsync directory) against a SQLite table in WAL mode with `synchronous=FULL`,
//! one writer at a time and four writers at once. Both are durable when they return; this
//! bench is how the spool's backend was chosen (see docs/oct-ingress.md).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use svoct_store::spool::{ReceivedEnvelope, Spool};

const SIZE: usize = 100_000;

fn envelope() -> ReceivedEnvelope {
    ReceivedEnvelope {
        helo: "bench".into(),
        mail_from: "ps@bench.test".into(),
        rcpt_to: vec!["oct@bench.test".into()],
        peer: "127.0.0.1:1".into(),
        received_at: 0,
    }
}

fn sqlite(dir: &std::path::Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(dir.join("spool.db")).unwrap();
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    c.pragma_update(None, "synchronous", "FULL").unwrap();
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS spool (id INTEGER PRIMARY KEY, envelope TEXT NOT NULL, data BLOB NOT NULL, state INTEGER NOT NULL DEFAULT 0)",
    )
    .unwrap();
    c
}

fn sqlite_put(c: &rusqlite::Connection, env: &str, data: &[u8]) {
    c.execute(
        "INSERT INTO spool (envelope, data) VALUES (?1, ?2)",
        rusqlite::params![env, data],
    )
    .unwrap();
}

/// Runs `iters` puts split over `threads` threads; returns the wall time.
fn parallel(threads: u64, iters: u64, put: Arc<dyn Fn() + Send + Sync>) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let put = put.clone();
            let mine = iters / threads + u64::from(t < iters % threads);
            s.spawn(move || {
                for _ in 0..mine {
                    put();
                }
            });
        }
    });
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let data = vec![b'Q'; SIZE];
    let env = envelope();
    let env_json = serde_json::to_string(&env).unwrap();
    let parent = std::env::var("SVOCT_BENCH_SPOOL_PARENT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    let mut g = c.benchmark_group("spool_put_100k");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    for threads in [1u64, 4] {
        let dir = tempfile::tempdir_in(&parent).unwrap();
        let spool = Arc::new(Spool::open(dir.path()).unwrap());
        let (d, e) = (data.clone(), env.clone());
        let put: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
            spool.put(&e, &d).unwrap();
        });
        g.bench_function(format!("files_fsync_{threads}_writers"), |b| {
            b.iter_custom(|iters| parallel(threads, iters, put.clone()))
        });

        let dir = tempfile::tempdir_in(&parent).unwrap();
        let conn = Arc::new(Mutex::new(sqlite(dir.path())));
        let (d, e) = (data.clone(), env_json.clone());
        let put: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
            // One connection, one writer at a time: SQLite allows a single writer.
            let c = conn.lock().unwrap();
            sqlite_put(&c, &e, &d);
        });
        g.bench_function(format!("sqlite_wal_full_{threads}_writers"), |b| {
            b.iter_custom(|iters| parallel(threads, iters, put.clone()))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
