//! Reconciliation speed: returns for 1,000,000 sent invoices (target under 10 s, issue 5).
//!
//! Setup (not measured): a file store with 10,000 sent lots of 100 invoices each, registered
//! in one transaction per message of 100 lots. Measured: recording and applying one NOEMIE
//! return item per invoice (1,000,000 items, one transaction per return file of 10,000 items),
//! each matched through the index on the invoice key.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use svoct_store::reconciliation::{InvoiceKind, PaymentState, RspReturn, SentLot};
use svoct_store::{EntryId, InboxId, Store};

/// Lots of 100 invoices; `SVOCT_BENCH_LOTS` overrides (default 10,000 = 1,000,000 invoices).
fn lots_count() -> usize {
    std::env::var("SVOCT_BENCH_LOTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}
const PER_LOT: usize = 100;
const LOTS_PER_MESSAGE: usize = 100;
const ITEMS_PER_RETURN: usize = 10_000;

fn lot(i: usize) -> SentLot {
    SentLot {
        number: format!("{:03}", i % 1000),
        date: format!("26{:02}{:02}", 1 + (i / 1000) % 12, 1 + i % 28),
        kind: Some(InvoiceKind::Fse),
        invoices: (0..PER_LOT).map(|k| format!("{:09}", i * PER_LOT + k)).collect(),
    }
}

fn setup() -> (tempfile::TempDir, Store, Vec<RspReturn>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path().join("bench.sqlite")).expect("store");
    let lots: Vec<SentLot> = (0..lots_count()).map(lot).collect();
    for (m, chunk) in lots.chunks(LOTS_PER_MESSAGE).enumerate() {
        store
            .returns()
            .register_sent(EntryId(m as i64 + 1), 0, chunk, &[])
            .expect("register");
    }
    let items = lots
        .iter()
        .flat_map(|l| {
            l.invoices.iter().map(|n| RspReturn {
                lot_number: l.number.clone(),
                lot_date: l.date.clone(),
                invoice_number: n.clone(),
                kind: Some(InvoiceKind::Fse),
                state: PaymentState::Paid,
                paid_cents: 1234,
                paid_date: Some("2026-11-26".into()),
                reasons: Vec::new(),
            })
        })
        .collect();
    (dir, store, items)
}

fn reconcile(c: &mut Criterion) {
    let mut g = c.benchmark_group("reconcile");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(1));
    g.warm_up_time(Duration::from_millis(1));
    g.bench_function("rsp_1m_invoices", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (_dir, store, items) = setup();
                let start = Instant::now();
                let mut matched = 0;
                for (k, chunk) in items.chunks(ITEMS_PER_RETURN).enumerate() {
                    matched += store
                        .returns()
                        .record_rsp(InboxId(k as i64 + 1), chunk)
                        .expect("record")
                        .matched;
                }
                total += start.elapsed();
                assert_eq!(matched, lots_count() * PER_LOT);
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, reconcile);
criterion_main!(benches);
