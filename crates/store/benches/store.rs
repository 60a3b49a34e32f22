//! Store throughput on a real file (WAL, synchronous=FULL: every commit is an fsync).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use svoct_store::{Direction, NewEntry, Status, Store};

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("bench.db")).unwrap();

    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Elements(1));
    g.bench_function("compostage_next", |b| {
        b.iter(|| store.compostage().next().unwrap())
    });
    g.throughput(Throughput::Elements(100));
    g.bench_function("compostage_next_many_100", |b| {
        b.iter(|| store.compostage().next_many(100).unwrap())
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("journal_insert_then_outcome", |b| {
        b.iter(|| {
            let id = store
                .journal()
                .insert(&NewEntry {
                    direction: Direction::Out,
                    profile: "FACTURE/SV".into(),
                    subject: "SV140700/123456789/2026112605432700000/00025".into(),
                    compostage: Some("2026112605432700000".into()),
                    message_id: None,
                    file_name: Some("F0001".into()),
                    lots: Vec::new(),
                    invoices: (0..25).map(|i| format!("{i:09}")).collect(),
                    status: Status::Pending,
                })
                .unwrap();
            store
                .journal()
                .set_outcome(id, Status::Sent, Some("250 OK"))
                .unwrap();
        })
    });
    let raw = vec![b'x'; 64 * 1024];
    let mut n = 0u64;
    g.throughput(Throughput::Bytes(raw.len() as u64));
    g.bench_function("inbox_store_if_new_64KiB", |b| {
        b.iter(|| {
            n += 1;
            store.inbox().store_if_new("bench", &n.to_string(), &raw).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
