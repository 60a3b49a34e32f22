//! Retrieval-side parsing speed: the sans-IO POP3 core on a large RETR, fed in network-sized
//! chunks (dot-unstuffing and end detection included), and the Maildir reader.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use svoct_mail::maildir::Maildir;
use svoct_mail::pop3::core::dot_stuff;
use svoct_mail::pop3::{Client, Command, Event, Limits, Mailbox};

fn message(size: usize) -> Vec<u8> {
    let mut m = b"Subject: bench\r\n\r\n".to_vec();
    while m.len() < size {
        // base64-like lines, and some dot lines to unstuff
        m.extend_from_slice(b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAx\r\n");
        m.extend_from_slice(b".leading dot\r\n");
    }
    m
}

fn bench(c: &mut Criterion) {
    let msg = message(8 * 1024 * 1024);
    let mut wire = b"+OK ready\r\n+OK 1 octets\r\n".to_vec();
    wire.extend_from_slice(&dot_stuff(&msg));

    let mut g = c.benchmark_group("retrieval");
    g.throughput(Throughput::Bytes(msg.len() as u64));
    g.sample_size(20);
    g.bench_function("pop3_core_retr_8MiB_16KiB_chunks", |b| {
        b.iter(|| {
            let mut client = Client::new(Limits::default());
            client.send(Command::Retr(1)).unwrap();
            for chunk in wire.chunks(16 * 1024) {
                client.feed(chunk).unwrap();
            }
            let _greeting = client.next_event();
            match client.next_event() {
                Some(Event::Message { raw, .. }) => assert_eq!(raw.len(), msg.len()),
                other => panic!("{other:?}"),
            }
        })
    });

    let dir = tempfile::tempdir().unwrap();
    let mut md = Maildir::create(dir.path().join("md"), 64 * 1024 * 1024).unwrap();
    let lf: Vec<u8> = String::from_utf8(msg.clone())
        .unwrap()
        .replace("\r\n", "\n")
        .into_bytes();
    let uid = md.deliver(&lf).unwrap();
    md.list().unwrap();
    g.bench_function("maildir_fetch_8MiB_lf_to_crlf", |b| {
        b.iter(|| assert_eq!(md.fetch(&uid).unwrap().len(), msg.len()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
