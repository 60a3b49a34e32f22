//! Errors early, and saying what to do (issue 13 point 3), through the real binary: a certificate
//! is checked when it is set; a server that accepts and never answers gives "timeout talking to
//! HOST:PORT after N s" with the configured timeout; a memory zone from the SESAM-Vitale API is
//! read as the lots it carries.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use svoct_testkit::certs::TestIdentity;

fn svoct(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_svoct"))
        .arg("ps")
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("SVOCT_PS_CONFIG")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A starting configuration whose SMTP and POP3 servers are `port` with a 1 s timeout, and
/// whose direct route matches the synthetic lots (organisme 100).
fn setup(dir: &Path, port: u16) -> PathBuf {
    let cfg = dir.join("ps.toml");
    assert!(svoct(&cfg, &["init"]).status.success());
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("[direct.routes.\"011\"]", "[direct.routes.\"100\"]")
        .replace("port = 25\n", &format!("port = {port}\ntimeout_secs = 1\n"))
        .replace(
            "port = 110\n",
            &format!(
                "port = {port}\ntimeout_secs = 1\nusername = \"ps\"\npassword = \"pw\"\n\
                 allow_plaintext_auth = true\n"
            ),
        );
    std::fs::write(&cfg, text).unwrap();
    cfg
}

fn generate(dir: &Path, args: &[&str], name: &str) -> PathBuf {
    let path = dir.join(name);
    let out = Command::new(env!("CARGO_BIN_EXE_svoct"))
        .arg("gen")
        .args(args)
        .arg("--out")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    path
}

#[test]
fn oct_set_checks_the_certificate_file_and_changes_nothing_when_it_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path(), 25);
    let before = std::fs::read(&cfg).unwrap();
    let set = |cert: &Path| {
        svoct(
            &cfg,
            &[
                "oct",
                "set",
                "--address",
                "oct@oct.invalid",
                "--identifier",
                "12345678900014",
                "--certificate",
                cert.to_str().unwrap(),
            ],
        )
    };
    let (key, good) = TestIdentity::new("oct.test").write_pem(dir.path(), "oct");
    let (_, expired) = TestIdentity::expired("old.test").write_pem(dir.path(), "old");
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "the OCT sent us this").unwrap();
    for (cert, says) in [
        (dir.path().join("missing.crt"), "no such file"),
        (notes, "not a certificate"),
        (key, "PRIVATE KEY"),
        (expired, "expired on"),
    ] {
        let out = set(&cert);
        let shown = text(&out);
        assert!(!out.status.success(), "{shown}");
        let name = cert.file_name().unwrap().to_str().unwrap();
        assert!(shown.contains(name) && shown.contains(says), "{shown}");
        assert!(!shown.contains("error:"), "no OpenSSL error stack: {shown}");
        assert_eq!(shown.trim().lines().count(), 1, "one line: {shown}");
        assert_eq!(
            std::fs::read(&cfg).unwrap(),
            before,
            "the configuration is unchanged"
        );
    }
    let out = set(&good);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("valid until"), "{}", text(&out));
}

#[test]
fn a_server_that_accepts_and_never_answers_gives_a_timeout_naming_host_port_and_delay() {
    let dir = tempfile::tempdir().unwrap();
    // Connections complete in the kernel's backlog; nothing is ever written back.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let cfg = setup(dir.path(), port);
    let lots = generate(dir.path(), &["--invoices", "4"], "lots.b2");
    let want = format!("timeout talking to 127.0.0.1:{port} after 1 s");

    let send = svoct(&cfg, &["send", lots.to_str().unwrap()]);
    let shown = text(&send);
    assert!(shown.contains(&want), "{shown}");
    assert!(shown.contains("deferred"), "kept for a retry: {shown}");
    assert!(!shown.contains("os error"), "{shown}");

    let fetch = svoct(&cfg, &["fetch"]);
    assert!(!fetch.status.success());
    let shown = text(&fetch);
    assert!(shown.contains(&want), "{shown}");
    assert!(!shown.contains("os error"), "{shown}");
    drop(silent);
}

/// Implicit TLS (SMTPS): lettre bounds the socket only after the TLS handshake, so a server
/// that accepts and never answers used to block `ps send` for ever; the handshake is now tried
/// under `timeout_secs` first. The binary runs under a watchdog of the test's own so that a
/// regression fails instead of hanging (the watchdog is no timed assertion: it only turns a hang
/// into a failure).
#[test]
fn an_smtps_server_that_never_answers_the_handshake_gives_a_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let cfg = setup(dir.path(), port);
    let text_cfg = std::fs::read_to_string(&cfg).unwrap();
    let smtp = text_cfg.find("[network.smtp]").unwrap();
    let tls = smtp + text_cfg[smtp..].find("tls = \"none\"").unwrap();
    let mut edited = text_cfg.clone();
    edited.replace_range(tls..tls + "tls = \"none\"".len(), "tls = \"implicit\"");
    std::fs::write(&cfg, edited).unwrap();
    let shown = svoct(&cfg, &["config", "show"]);
    assert!(
        text(&shown).contains("network.smtp.tls = \"implicit\""),
        "{}",
        text(&shown)
    );
    let lots = generate(dir.path(), &["--invoices", "4"], "lots.b2");

    let child = Command::new(env!("CARGO_BIN_EXE_svoct"))
        .args(["ps", "--config"])
        .arg(&cfg)
        .arg("send")
        .arg(&lots)
        .env_remove("SVOCT_PS_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(std::time::Duration::from_secs(120)).is_err() {
            // SAFETY: kill(2) on the pid of the child this test spawned and has not reaped yet.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = done_tx.send(());
    watchdog.join().unwrap();
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "deferred, not killed: {shown}");
    assert!(
        shown.contains(&format!(
            "timeout talking to 127.0.0.1:{port} after 1 s (TLS handshake)"
        )),
        "{shown}"
    );
    assert!(shown.contains("deferred"), "kept for a retry: {shown}");
    drop(silent);
}

#[test]
fn a_memory_zone_is_sent_as_the_lots_it_carries() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path(), 25);
    let args = ["--invoices", "6", "--seed", "5"];
    let zone = generate(
        dir.path(),
        &[&args[..], &["--format", "zone"]].concat(),
        "zone.bin",
    );
    let lots = generate(dir.path(), &args, "lots.b2");
    // Independent check that the zone is not B2 as it is: its length is not a multiple of 128.
    assert_ne!(std::fs::metadata(&zone).unwrap().len() % 128, 0);
    let out = dir.path().join("out");
    let sent = svoct(
        &cfg,
        &[
            "send",
            zone.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(sent.status.success(), "{}", text(&sent));
    let v: serde_json::Value = serde_json::from_slice(&sent.stdout).unwrap();
    let invoices: u64 = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["invoices"].as_array().unwrap().len() as u64)
        .sum();
    assert_eq!(invoices, 6, "{v}");
    // The same invoices as the bare lots of the same seed: these are now duplicates.
    let again = svoct(
        &cfg,
        &["send", lots.to_str().unwrap(), "--out", out.to_str().unwrap()],
    );
    assert!(!again.status.success());
    assert!(
        text(&again).contains("already in journal entry"),
        "{}",
        text(&again)
    );
}

#[test]
fn a_zone_without_lots_says_it_is_a_zone() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path(), 25);
    let zone = generate(dir.path(), &["--invoices", "0", "--format", "zone"], "empty.bin");
    let sent = svoct(&cfg, &["send", zone.to_str().unwrap(), "--out", "out"]);
    assert!(!sent.status.success());
    let shown = text(&sent);
    assert!(
        shown.contains("memory zone") && shown.contains("no lot"),
        "{shown}"
    );
    assert!(!shown.contains("multiple of 128"), "{shown}");
}

#[test]
fn a_malformed_certificate_at_send_time_names_the_file_without_the_openssl_stack() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path(), 25);
    // Set up with a good certificate, then the file is damaged (cut short) behind our back.
    let (_, cert) = TestIdentity::new("oct.test").write_pem(dir.path(), "oct");
    let set = svoct(
        &cfg,
        &[
            "oct",
            "set",
            "--address",
            "oct@oct.invalid",
            "--identifier",
            "12345678900014",
            "--certificate",
            cert.to_str().unwrap(),
        ],
    );
    assert!(set.status.success(), "{}", text(&set));
    assert!(svoct(&cfg, &["mode", "oct"]).status.success());
    let pem = std::fs::read(&cert).unwrap();
    std::fs::write(&cert, &pem[..pem.len() / 2]).unwrap();
    let lots = generate(dir.path(), &["--invoices", "3"], "lots.b2");
    let out = svoct(&cfg, &["send", lots.to_str().unwrap(), "--out", "out"]);
    assert!(!out.status.success());
    let shown = text(&out);
    assert!(
        shown.contains("oct.crt") && shown.contains("not a certificate"),
        "{shown}"
    );
    assert!(shown.contains("cut short"), "{shown}");
    assert!(!shown.contains("error:0"), "no OpenSSL error codes: {shown}");
    assert_eq!(shown.trim().lines().count(), 1, "{shown}");
}
