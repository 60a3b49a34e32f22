//! Encrypts and decrypts one 10 MiB attachment with the project and with the `openssl cms`
//! command, on the same file in the same run, and prints the ratio.
//!
//! Both sides read the input file and write the output file, so the comparison includes the same
//! I/O; the `openssl` side also pays a process start (a few milliseconds), as a caller of the
//! command would. Run with `scripts/bench/cms.sh` or
//! `cargo bench -p svoct-mail --bench cms_vs_openssl`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use svoct_mail::cms::{self, CmsCipher, PrivateKeyAndCert, RecipientCert};
use svoct_testkit::certs::TestIdentity;

const SIZE: usize = 10 * 1024 * 1024;
const RUNS: usize = 7;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time<F: FnMut()>(mut f: F) -> Duration {
    let mut all = Vec::with_capacity(RUNS);
    f(); // warm-up
    for _ in 0..RUNS {
        let t = Instant::now();
        f();
        all.push(t.elapsed());
    }
    median(all)
}

fn openssl(args: &[&str]) {
    let st = Command::new("openssl").args(args).status().expect("openssl");
    assert!(st.success(), "openssl {args:?}");
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument that does not match skips the run.
    if let Some(filter) = std::env::args().skip(1).find(|a| !a.starts_with('-'))
        && !"cms_vs_openssl".contains(filter.as_str())
    {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let id = TestIdentity::new("bench.example");
    let (key_path, cert_path) = id.write_pem(dir.path(), "bench");
    let input = dir.path().join("file.bin");
    let mut data = vec![0u8; SIZE];
    openssl::rand::rand_bytes(&mut data).expect("rand");
    std::fs::write(&input, &data).expect("write input");
    let recipient = RecipientCert::from_file(&cert_path).expect("cert");
    let key = PrivateKeyAndCert::from_files(&key_path, &cert_path).expect("key");

    let ours_env = dir.path().join("ours.der");
    let ours_out = dir.path().join("ours.out");
    let theirs_env = dir.path().join("theirs.der");
    let theirs_out = dir.path().join("theirs.out");

    let enc_ours = time(|| {
        let plain = std::fs::read(&input).expect("read");
        let env =
            cms::encrypt(&plain, std::slice::from_ref(&recipient), CmsCipher::Aes256Cbc).expect("encrypt");
        std::fs::write(&ours_env, env).expect("write");
    });
    let dec_ours = time(|| {
        let env = std::fs::read(&ours_env).expect("read");
        let clear = cms::decrypt(&env, &key).expect("decrypt");
        std::fs::write(&ours_out, clear).expect("write");
    });
    let enc_theirs = time(|| {
        openssl(&[
            "cms",
            "-encrypt",
            "-aes256",
            "-binary",
            "-outform",
            "DER",
            "-in",
            s(&input),
            "-out",
            s(&theirs_env),
            s(&cert_path),
        ])
    });
    let dec_theirs = time(|| {
        openssl(&[
            "cms",
            "-decrypt",
            "-binary",
            "-inform",
            "DER",
            "-in",
            s(&ours_env),
            "-inkey",
            s(&key_path),
            "-recip",
            s(&cert_path),
            "-out",
            s(&theirs_out),
        ])
    });
    // Cross-check: each side decrypted the other's output to the same bytes.
    let theirs_by_ours =
        cms::decrypt(&std::fs::read(&theirs_env).expect("read"), &key).expect("decrypt openssl's");
    assert!(
        theirs_by_ours == data,
        "project decryption of openssl output differs"
    );
    assert!(
        std::fs::read(&theirs_out).expect("read") == data,
        "openssl decryption differs"
    );
    assert!(
        std::fs::read(&ours_out).expect("read") == data,
        "project round trip differs"
    );

    let mib = SIZE as f64 / (1024.0 * 1024.0);
    let rate = |d: Duration| mib / d.as_secs_f64();
    println!("CMS AES-256-CBC, {mib:.0} MiB attachment, median of {RUNS} runs (file to file)");
    println!(
        "encrypt  project {:>8.1} ms ({:>6.0} MiB/s)   openssl cms {:>8.1} ms ({:>6.0} MiB/s)   ratio openssl/project {:.2}",
        enc_ours.as_secs_f64() * 1e3,
        rate(enc_ours),
        enc_theirs.as_secs_f64() * 1e3,
        rate(enc_theirs),
        enc_theirs.as_secs_f64() / enc_ours.as_secs_f64()
    );
    println!(
        "decrypt  project {:>8.1} ms ({:>6.0} MiB/s)   openssl cms {:>8.1} ms ({:>6.0} MiB/s)   ratio openssl/project {:.2}",
        dec_ours.as_secs_f64() * 1e3,
        rate(dec_ours),
        dec_theirs.as_secs_f64() * 1e3,
        rate(dec_theirs),
        dec_theirs.as_secs_f64() / dec_ours.as_secs_f64()
    );
    println!("(ratio >= 1.00 means the project is at least as fast)");
}
