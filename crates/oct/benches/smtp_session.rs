//! Throughput of the sans-IO SMTP session: one pipelined transaction carrying a ~100 KB
//! base64 message, fed in 64 KiB reads as the shell does (no sockets, no spool).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use svoct_oct::inbound::session::{Action, PersistOutcome, Recipients, Session, SessionConfig};

fn transaction(size: usize) -> Vec<u8> {
    let mut t = b"EHLO bench\r\nMAIL FROM:<ps@bench.test>\r\nRCPT TO:<oct@bench.test>\r\nDATA\r\n".to_vec();
    let line = [
        b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0".as_slice(),
        b"\r\n",
    ]
    .concat();
    while t.len() < size {
        t.extend_from_slice(&line);
    }
    t.extend_from_slice(b".\r\nQUIT\r\n");
    t
}

fn bench(c: &mut Criterion) {
    let input = transaction(100_000);
    let mut g = c.benchmark_group("smtp_session");
    g.throughput(Throughput::Bytes(input.len() as u64));
    g.bench_function("transaction_100k", |b| {
        b.iter(|| {
            let mut s = Session::new(SessionConfig {
                recipients: Recipients::Any,
                ..SessionConfig::default()
            });
            let mut stored = 0usize;
            for chunk in input.chunks(64 * 1024) {
                let mut rest = chunk;
                loop {
                    let used = s.feed(rest);
                    rest = &rest[used..];
                    let _ = s.take_replies();
                    match s.next_action() {
                        Some(Action::MessageData(chunk)) => stored += chunk.0.len(),
                        Some(Action::Persist) => {
                            s.persisted(PersistOutcome::Stored { id: "1".into() });
                        }
                        Some(_) | None if rest.is_empty() => break,
                        _ => {}
                    }
                }
            }
            assert!(stored > 90_000);
            stored
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
