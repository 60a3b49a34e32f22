//! Criterion benches: building and parsing messages, CMS and compression on a 1 MiB attachment.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use svoct_mail::cms::{self, CmsCipher, PrivateKeyAndCert, RecipientCert};
use svoct_mail::compress;
use svoct_mail::profile::{
    Mailbox, MessageHeaders, ParseLimits, Profile, Protect, build_message, parse_message,
};
use svoct_mail::subject::{FileKind, Subject};
use svoct_testkit::certs::TestIdentity;

const SIZE: usize = 1024 * 1024;

/// A B2-like file: 128-byte text records (compresses like a real one would).
fn file() -> Vec<u8> {
    let mut v = Vec::with_capacity(SIZE);
    let mut i = 0u64;
    while v.len() < SIZE {
        let rec = format!("2{:09}0100{:0>40}{:<74}", i, i * 7919, "ACTE");
        v.extend_from_slice(rec.as_bytes());
        i += 1;
    }
    v.truncate(SIZE);
    v
}

fn envelope() -> MessageHeaders {
    MessageHeaders {
        from: Mailbox::new("ps@provider.example").expect("from"),
        to: Mailbox::new("oct@oct.example").expect("to"),
        subject: "SV140700/123456789/2026112607050900042/00025"
            .parse()
            .expect("subject"),
        profile: Profile::Invoice(FileKind::Fse),
        file_name: "F00042.B2".to_owned(),
        date: time::OffsetDateTime::UNIX_EPOCH,
        message_id: Some("bench@provider.example".to_owned()),
    }
}

fn benches(c: &mut Criterion) {
    let id = TestIdentity::new("bench.example");
    let cert = RecipientCert::from_bytes(&id.cert_pem()).expect("cert");
    let key = PrivateKeyAndCert::from_bytes(&id.key_pem(), &id.cert_pem()).expect("key");
    let data = file();
    let limits = ParseLimits::default();

    let mut g = c.benchmark_group("1MiB");
    g.throughput(Throughput::Bytes(SIZE as u64));
    g.sample_size(20);
    g.bench_function("build_plain", |b| {
        b.iter(|| build_message(&envelope(), &data, Protect::None).expect("build"))
    });
    let plain = build_message(&envelope(), &data, Protect::None).expect("build");
    g.bench_function("parse_plain", |b| {
        b.iter(|| parse_message(&plain, &limits).expect("parse"))
    });
    let zk = Protect::Encrypt {
        recipients: std::slice::from_ref(&cert),
        cipher: CmsCipher::Aes256Cbc,
        compress: true,
    };
    g.bench_function("build_zk", |b| {
        b.iter(|| build_message(&envelope(), &data, zk).expect("build"))
    });
    let zk_msg = build_message(&envelope(), &data, zk).expect("build");
    g.bench_function("parse_open_zk", |b| {
        b.iter(|| {
            parse_message(&zk_msg, &limits)
                .expect("parse")
                .open(Some(&key), &limits)
                .expect("open")
        })
    });
    g.bench_function("cms_encrypt_aes256", |b| {
        b.iter(|| cms::encrypt(&data, std::slice::from_ref(&cert), CmsCipher::Aes256Cbc).expect("enc"))
    });
    let env = cms::encrypt(&data, std::slice::from_ref(&cert), CmsCipher::Aes256Cbc).expect("enc");
    g.bench_function("cms_decrypt_aes256", |b| {
        b.iter(|| cms::decrypt(&env, &key).expect("dec"))
    });
    g.bench_function("gzip_compress", |b| {
        b.iter(|| compress::compress(&data).expect("z"))
    });
    let z = compress::compress(&data).expect("z");
    g.bench_function("gzip_decompress", |b| {
        b.iter(|| compress::decompress(&z, compress::DEFAULT_MAX_DECOMPRESSED).expect("unz"))
    });
    g.finish();

    c.bench_function("subject_parse", |b| {
        b.iter(|| {
            "SV140700/123456789/2026112607050900042/00025"
                .parse::<Subject>()
                .expect("subject")
        })
    });
}

criterion_group!(group, benches);
criterion_main!(group);
