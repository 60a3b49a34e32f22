//! Memory-zone decode and encode throughput (MB/s), on a zone shaped like a lot formatting
//! result: one file group, 50 lot groups each carrying a 20 KiB lot, a message group, and
//! 500 small AMC-data groups.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use svoct_formats::zone::{AMC_DATA_FIELDS, GroupBuf, Zone, ZoneBuf};

fn sample() -> Vec<u8> {
    let mut z = ZoneBuf::new();
    let mut file = GroupBuf::new(12);
    for v in [
        "TP",
        "F00042",
        "202611260830",
        "00000012345678",
        "TO",
        "OT",
        "00000000000777",
    ] {
        file.push(v);
    }
    z.push(file);
    for lot in 0..50u32 {
        let mut g = GroupBuf::new(13);
        g.push(format!("{lot:03}"))
            .push("202611260830")
            .push("011")
            .push("40")
            .push("SV140700")
            .push("cpam011@example.invalid")
            .push("140700")
            .push("")
            .push(vec![b'2'; 20 * 1024]);
        z.push(g);
    }
    z.push(GroupBuf::new(14).with("SV140700").with("").with("MESSAGE"));
    for i in 0..500u32 {
        let mut g = GroupBuf::new(1321);
        for (n, _) in AMC_DATA_FIELDS.iter().enumerate() {
            g.push(format!("{i}-{n}"));
        }
        z.push(g);
    }
    z.encode().expect("sample encodes")
}

fn bench(c: &mut Criterion) {
    let bytes = sample();
    let mut group = c.benchmark_group("zone");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("decode", |b| {
        b.iter(|| Zone::decode(black_box(&bytes)).map(|z| z.groups().len()))
    });
    let model = Zone::decode(&bytes).expect("sample decodes").to_buf();
    group.bench_function("encode", |b| {
        b.iter(|| black_box(&model).encode().map(|v| v.len()))
    });
    group.finish();

    // Many tiny groups: the per-group cost dominates.
    let mut small = ZoneBuf::new();
    for i in 0..20_000u32 {
        small.push(GroupBuf::new(101).with("T").with(format!("{i:08}")).with(""));
    }
    let small = small.encode().expect("small encodes");
    let mut group = c.benchmark_group("zone_small_groups");
    group.throughput(Throughput::Bytes(small.len() as u64));
    group.bench_function("decode", |b| {
        b.iter(|| Zone::decode(black_box(&small)).map(|z| z.groups().len()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
