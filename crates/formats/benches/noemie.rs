//! NOEMIE parse + 990/999 control checks on a large 580 return built with the builder.

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Instant;
use svoct_formats::noemie::{
    self, InvoiceOutcome, Packaging, PartOutcome, PartState, RejectLine, RejectPart, RspParams, Ymd,
};

/// Invoices in the generated file (about 64 MB).
const INVOICES: usize = 400_000;

fn big_580(packaging: Packaging) -> Vec<u8> {
    let params = RspParams {
        sender_type: "CP".into(),
        sender_number: "751".into(),
        sender_program: "BENCH".into(),
        recipient_type: "TP".into(),
        recipient_number: "10987654321".into(),
        file_id: "B00001".into(),
        created: Ymd::new(2026, 11, 26),
        flow_type: 'T',
        settlement_recipient: "10987654321".into(),
        accounting_date: Ymd::new(2026, 11, 26),
        transfer_label: "VIREMENT BENCH".into(),
        payer: "CPAM 75".into(),
    };
    let invoices: Vec<InvoiceOutcome> = (0..INVOICES)
        .map(|i| {
            let rejected = i % 10 == 0;
            InvoiceOutcome {
                lot_number: format!("{:03}", i / 500 % 1000),
                lot_date: Ymd::new(2026, 11, 20),
                invoice_number: format!("{:09}", i),
                invoice_type: 'F',
                billing_date: Some(Ymd::new(2026, 11, 19)),
                amo: Some(PartOutcome {
                    state: PartState::Paid,
                    requested_cents: 2500,
                    paid_cents: 1750 + (i % 100) as i64,
                    amc_number: String::new(),
                }),
                amc: Some(PartOutcome {
                    state: if rejected {
                        PartState::Rejected
                    } else {
                        PartState::Paid
                    },
                    requested_cents: 750,
                    paid_cents: if rejected { 0 } else { 750 },
                    amc_number: "0123456789".into(),
                }),
                rejects: if rejected {
                    vec![RejectLine {
                        code: "A123".into(),
                        label: "ORGANISME COMPLEMENTAIRE INCONNU".into(),
                        part: RejectPart::Amc,
                    }]
                } else {
                    Vec::new()
                },
                comments: Vec::new(),
            }
        })
        .collect();
    noemie::build_580_packaged(&params, &invoices, packaging).expect("bench input builds")
}

/// CPU time of the benchmarking thread (`/proc/thread-self/schedstat`, nanoseconds on CPU), so
/// that the throughput of one core is measured even when the shared machine is loaded. Falls
/// back to wall time where the file is missing.
struct CpuTime;

fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

impl Measurement for CpuTime {
    type Intermediate = (Option<u64>, Instant);
    type Value = u64;

    fn start(&self) -> Self::Intermediate {
        (thread_cpu_ns(), Instant::now())
    }

    fn end(&self, (cpu, wall): Self::Intermediate) -> u64 {
        match (cpu, thread_cpu_ns()) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => wall.elapsed().as_nanos() as u64,
        }
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        self
    }
}

impl ValueFormatter for CpuTime {
    fn scale_values(&self, _typical: f64, values: &mut [f64]) -> &'static str {
        values.iter_mut().for_each(|v| *v /= 1e6);
        "ms (cpu)"
    }

    fn scale_throughputs(&self, _typical: f64, t: &Throughput, values: &mut [f64]) -> &'static str {
        let bytes = match t {
            Throughput::Bytes(b) | Throughput::BytesDecimal(b) => *b as f64,
            _ => 1.0,
        };
        values
            .iter_mut()
            .for_each(|v| *v = bytes / (*v / 1e9) / (1024.0 * 1024.0));
        "MiB/s (cpu)"
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

fn bench_cpu(c: &mut Criterion<CpuTime>) {
    let mut g = c.benchmark_group("noemie_cpu");
    g.sample_size(10);
    let input = big_580(Packaging::Lines);
    g.throughput(Throughput::Bytes(input.len() as u64));
    g.bench_function(format!("parse_and_check_lines_{}MB", input.len() >> 20), |b| {
        b.iter(|| noemie::parse(black_box(&input)).map(|n| n.files.len()))
    });
    g.bench_function(format!("parse_and_report_lines_{}MB", input.len() >> 20), |b| {
        b.iter(|| noemie::report(black_box(&input)).map(|r| r.invoices.len()))
    });
    g.finish();
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("noemie");
    g.sample_size(10);
    for (name, packaging) in [("lines", Packaging::Lines), ("blocks", Packaging::Blocks)] {
        let input = big_580(packaging);
        let check = noemie::parse(&input).expect("bench input parses");
        assert!(check.findings.is_empty());
        g.throughput(Throughput::Bytes(input.len() as u64));
        g.bench_function(format!("parse_and_check_{name}_{}MB", input.len() >> 20), |b| {
            b.iter(|| noemie::parse(black_box(&input)).map(|n| n.files.len()))
        });
        if packaging == Packaging::Lines {
            g.bench_function(format!("parse_and_report_{}MB", input.len() >> 20), |b| {
                b.iter(|| noemie::report(black_box(&input)).map(|r| r.invoices.len()))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(CpuTime);
    targets = bench_cpu
}
criterion_main!(benches, cpu);
