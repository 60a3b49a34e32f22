//! B2 throughput on a ~100 MB synthetic OCT single file.
//!
//! - `parse+validate`: structural parse and every check of `validate` (target ≥ 500 MB/s);
//! - `parse+split`: parse and éclatement by destination (target ≥ 1 GB/s);
//! - `parse`: structural parse alone, for reference.
//!
//! The file is generated once, in memory. The `cat FILE > /dev/null` ceiling is measured by
//! `scripts/bench/b2.sh`, which writes the same file with `B2_BENCH_WRITE=path`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use svoct_formats::b2::synth::{SynthParams, generate_single_file};
use svoct_formats::b2::{SingleFileParams, parse, split_by_destination, validate};

fn file() -> Vec<u8> {
    let mb: usize = std::env::var("B2_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    // About 5.3 records (680 bytes) per invoice with 1-5 acts; 999 lots per file at most.
    let invoices = mb * 1_000_000 / 680;
    let p = SynthParams {
        seed: 2026,
        invoices,
        fse: true,
        dre: true,
        destinations: 40,
        enriched: true,
        max_acts: 5,
        lot_size: 999,
        ..SynthParams::default()
    };
    let f = SingleFileParams {
        sender_type: "TP".into(),
        oct_id: "12345678900017".into(),
        file_id: "BENCH1".into(),
        date: "261126".into(),
        message: "BENCH".into(),
    };
    generate_single_file(&p, &f).expect("synthetic file")
}

fn bench(c: &mut Criterion) {
    let data = file();
    if let Ok(path) = std::env::var("B2_BENCH_WRITE") {
        std::fs::write(&path, &data).expect("write bench file");
    }
    let input = parse(&data).expect("parse");
    assert!(validate(&input).is_empty());
    eprintln!(
        "b2 bench file: {} bytes, {} lots, {} invoices, {} destination groups",
        data.len(),
        input.lots().len(),
        input.invoice_count(),
        split_by_destination(&input).len()
    );
    drop(input);

    let mut g = c.benchmark_group("b2");
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("parse", |b| {
        b.iter(|| parse(black_box(&data)).map(|i| i.lots().len()))
    });
    g.bench_function("parse+validate", |b| {
        b.iter(|| {
            let input = parse(black_box(&data)).expect("parse");
            validate(&input).len()
        })
    });
    g.bench_function("parse+split", |b| {
        b.iter(|| {
            let input = parse(black_box(&data)).expect("parse");
            split_by_destination(&input).len()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
