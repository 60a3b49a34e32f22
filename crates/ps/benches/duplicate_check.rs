//! The duplicate-invoice check of a sending of 10 000 invoices against a journal holding
//! 1 000 000 sent invoices (10 000 entries of 100), through the journal's invoice index; and, for
//! comparison, reading the whole journal, which is what the check did before the index.

#[path = "../tests/common/mod.rs"]
mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use svoct_formats::b2::synth::{SynthParams, generate_bytes};
use svoct_ps::Ps;
use svoct_ps::config::Config;
use svoct_ps::plan::LotFile;
use svoct_testkit::ps_config;

const ENTRIES: u32 = 10_000;
const INVOICES_PER_ENTRY: u32 = 100;
const SENDING: usize = 10_000;

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let keys = common::keys(dir.path());
    let text =
        ps_config::base("oct", "ps.sqlite", 25) + &ps_config::oct_section(keys.oct_cert.display(), "single");
    let ps = Ps::open(Config::load(&ps_config::write(dir.path(), &text)).unwrap()).unwrap();

    // 1 000 000 sent invoices, numbered 500 000 000 and up (the sending's are below 400 000 000
    // plus 10 000), written in one transaction through the same table and triggers.
    {
        let mut conn = rusqlite::Connection::open(dir.path().join("ps.sqlite")).unwrap();
        let tx = conn.transaction().unwrap();
        {
            let mut insert = tx
                .prepare(
                    "INSERT INTO journal (direction, profile, subject, compostage, file_name, lots,
                                          invoices, status, created_ms, updated_ms)
                     VALUES ('out', 'FACTURE/SV/K', ?1, ?2, ?3, '[]', ?4, 'sent', 0, 0)",
                )
                .unwrap();
            for e in 0..ENTRIES {
                let invoices: Vec<String> = (0..INVOICES_PER_ENTRY)
                    .map(|i| format!("{:09}", 500_000_000 + e * INVOICES_PER_ENTRY + i))
                    .collect();
                let compostage = format!("20260101000000{e:05}");
                insert
                    .execute(rusqlite::params![
                        format!("SV140700/123456789/{compostage}/00100"),
                        compostage,
                        format!("{:06}.b2", e + 1),
                        serde_json::to_string(&invoices).unwrap(),
                    ])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
    }

    let input = [LotFile {
        name: "lots.b2".into(),
        bytes: generate_bytes(&SynthParams {
            seed: 42,
            invoices: SENDING,
            ..SynthParams::default()
        })
        .unwrap(),
    }];
    let planned = ps.plan(&input).unwrap();
    assert_eq!(planned.iter().map(|p| p.invoices.len()).sum::<usize>(), SENDING);

    let mut g = c.benchmark_group("duplicate_check");
    g.sample_size(10);
    g.bench_function("refuse_already_sent 10k invoices vs 1M journal (index)", |b| {
        b.iter(|| ps.refuse_already_sent(&planned).unwrap())
    });
    let numbers: Vec<String> = planned.iter().flat_map(|p| p.invoices.clone()).collect();
    g.bench_function("carrying_any 10k invoice probes", |b| {
        b.iter(|| {
            ps.store()
                .journal()
                .carrying_any(numbers.iter().map(String::as_str))
                .unwrap()
        })
    });
    g.bench_function("read whole journal (the check before the index)", |b| {
        b.iter(|| ps.store().journal().recent(u32::MAX).unwrap().len())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
