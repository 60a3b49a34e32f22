//! docs/oct.md "Move the OCT to a new machine": `svoct oct backup` while the real `svoct oct
//! serve` runs with messages waiting in its outbox (relay down), then `svoct oct restore` into a
//! fresh directory and a service started there finishes the queue: every message delivered once.
//! The real binary, real files, real SQLite, Python's smtplib as the PS's client.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use svoct_mail::profile::{self, ParseLimits};
use svoct_store::spool::{ReceivedEnvelope, Spool};

fn svoct() -> Command {
    Command::new(env!("CARGO_BIN_EXE_svoct"))
}

fn oct(cfg: &Path, args: &[&str]) -> Output {
    svoct()
        .args(["oct", "--config"])
        .arg(cfg)
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

const PS: &str = "ps1@ps.example";
const OCT: &str = "oct@oct.example";
const MESSAGES: usize = 5;
/// Messages sent while the backup runs.
const LATE: usize = 100;

/// A running `svoct oct serve` (logs to a file), killed when dropped unless stopped.
struct Serve {
    child: Option<Child>,
    port: u16,
}

impl Serve {
    fn start(cfg: &Path, log: &Path) -> Serve {
        let mut child = svoct()
            .args(["oct", "--config"])
            .arg(cfg)
            .arg("serve")
            .env("SVOCT_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "serve did not start: {line:?}\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        };
        let port = addr.parse::<std::net::SocketAddr>().unwrap().port();
        Serve {
            child: Some(child),
            port,
        }
    }

    /// SIGTERM and wait: a graceful stop, as an operator would do it.
    fn stop(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        // SAFETY: kill(2) on the id of a child we spawned and have not reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait().unwrap()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn openssl_pair(key: &Path, cert: &Path) {
    let o = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365"])
        .args(["-subj", "/CN=svoct test", "-keyout"])
        .arg(key)
        .arg("-out")
        .arg(cert)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A configuration in `d` with one PS; `delivery` is its `[delivery]` part.
fn write_config(d: &Path, delivery: &str) -> PathBuf {
    std::fs::create_dir_all(d).unwrap();
    openssl_pair(&d.join("oct.key"), &d.join("oct.crt"));
    let cfg = d.join("oct.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[oct]
identifier = "12345678900000"
sender_number = "98765432100000"
address = "{OCT}"

[ingress]
listen = "127.0.0.1:0"

[paths]
spool = "spool"
state = "state/oct.sqlite"

[keys]
private_key = "oct.key"
certificate = "oct.crt"

[[sender]]
address = "{PS}"
sender_number = "11111111100000"
ps_number = "111111111"

[retry]
initial_backoff_secs = 1
max_backoff_secs = 1

{delivery}"#
        ),
    )
    .unwrap();
    std::fs::create_dir_all(d.join("state")).unwrap();
    std::fs::set_permissions(d.join("state"), std::fs::Permissions::from_mode(0o700)).unwrap();
    cfg
}

/// Sends one message per subject through Python's smtplib (a client independent of svoct).
fn send(port: u16, subjects: &[String]) {
    let mut script = format!("import smtplib\ns=smtplib.SMTP('127.0.0.1',{port})\n");
    for subject in subjects {
        script.push_str(&format!(
            "s.sendmail('{PS}',['{OCT}'],b'From: {PS}\\r\\nTo: {OCT}\\r\\nSubject: {subject}\\r\\n\\r\\nnot a B2 file\\r\\n')\n"
        ));
    }
    script.push_str("s.quit()\n");
    let out = Command::new("python3").arg("-c").arg(&script).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// The `outbox: N pending, M sent, F failed` numbers of `oct status`.
fn outbox(cfg: &Path) -> (u64, u64, u64) {
    let out = oct(cfg, &["status"]);
    let s = text(&out.stdout);
    let line = s
        .lines()
        .find_map(|l| l.strip_prefix("outbox: "))
        .unwrap_or_else(|| panic!("no outbox line: {s}{}", text(&out.stderr)));
    let n: Vec<u64> = line
        .split(", ")
        .map(|p| p.split(' ').next().unwrap().parse().unwrap())
        .collect();
    (n[0], n[1], n[2])
}

/// `oct status --json`: the spool entries waiting and the outbox rows by state (`pending`,
/// `sending`: claimed by a sender right now, `sent`, `failed`).
fn queue(cfg: &Path) -> (u64, std::collections::BTreeMap<String, u64>) {
    let out = oct(cfg, &["status", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", text(&out.stdout), text(&out.stderr)));
    let waiting = json["spool_waiting"].as_u64().unwrap();
    let outbox = serde_json::from_value(json["counters"]["outbox"].clone()).unwrap();
    (waiting, outbox)
}

/// Outbox rows not delivered yet (pending or being sent).
fn undelivered(outbox: &std::collections::BTreeMap<String, u64>) -> u64 {
    ["pending", "sending"].iter().filter_map(|k| outbox.get(*k)).sum()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every regular file under `dir` (recursively).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_backup_taken_while_serving_restores_on_a_fresh_directory_that_finishes_the_queue() {
    let tmp = tempfile::tempdir().unwrap();
    // The relay is down: a port nobody listens on.
    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down_port = down.local_addr().unwrap().port();
    drop(down);
    let old = tmp.path().join("old");
    let old_cfg = write_config(
        &old,
        &format!("[delivery.smtp]\nhost = \"127.0.0.1\"\nport = {down_port}\n"),
    );
    let serve = Serve::start(&old_cfg, &old.join("serve.log"));
    let subjects: Vec<String> = (0..MESSAGES).map(|n| format!("claims-{n}-x7q")).collect();
    send(serve.port, &subjects);
    // Each message is refused (not a B2 file) and answered with an ART to the PS: MESSAGES
    // outgoing messages waiting for the relay.
    wait_until("the ARTs to wait in the outbox", || {
        outbox(&old_cfg) == (MESSAGES as u64, 0, 0)
    });

    let archive = tmp.path().join("oct-backup.tar");
    // More PS messages arrive while the backup runs: each is, at the point of the backup,
    // waiting in the spool, processed with its ART in the outbox, or not yet accepted.
    let late: Vec<String> = (0..LATE).map(|n| format!("late-{n:03}-x7q")).collect();
    let port = serve.port;
    let traffic = {
        let late = late.clone();
        std::thread::spawn(move || send(port, &late))
    };
    wait_until("the late messages to start arriving", || {
        outbox(&old_cfg).0 > MESSAGES as u64
    });
    let b = oct(&old_cfg, &["backup", "--out", archive.to_str().unwrap()]);
    traffic.join().unwrap();
    assert!(b.status.success(), "{}", text(&b.stderr));
    print!("{}", text(&b.stdout));
    assert_eq!(mode(&archive), 0o600);
    // Never overwritten.
    let again = oct(&old_cfg, &["backup", "--out", archive.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("oct-backup.tar"),
        "{}",
        text(&again.stderr)
    );
    // The service kept running through the backup and answered every late message.
    wait_until("the late ARTs", || {
        let (waiting, outbox) = queue(&old_cfg);
        waiting == 0 && undelivered(&outbox) == (MESSAGES + LATE) as u64
    });
    assert!(serve.stop().success());

    // A new machine: only the configuration (paths pointing there), with a working delivery.
    let new = tmp.path().join("new");
    let new_cfg = write_config(&new, "[delivery]\ndirectory = \"out\"\n");
    std::fs::create_dir(new.join("out")).unwrap();
    std::fs::set_permissions(new.join("out"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let r = oct(&new_cfg, &["restore", archive.to_str().unwrap()]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    for d in ["spool", "spool/new", "spool/tmp", "spool/quarantine"] {
        assert_eq!(mode(&new.join(d)), 0o700, "{d}");
    }
    for f in files_under(&new.join("spool")) {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
    assert_eq!(mode(&new.join("state/oct.sqlite")), 0o600);
    // A restore never mixes two states.
    let twice = oct(&new_cfg, &["restore", archive.to_str().unwrap()]);
    assert!(!twice.status.success());
    assert!(
        text(&twice.stderr).contains("already exists"),
        "{}",
        text(&twice.stderr)
    );
    let (restored, _, _) = outbox(&new_cfg);
    assert!(restored >= MESSAGES as u64, "{restored}");

    let serve = Serve::start(&new_cfg, &new.join("serve.log"));
    wait_until("the restored spool and queue to drain", || {
        let (waiting, outbox) = queue(&new_cfg);
        waiting == 0 && undelivered(&outbox) == 0
    });
    assert!(serve.stop().success());
    // Independent check, from the files written: every message pending at the backup is
    // delivered, no message is answered twice (a late one copied from the spool and also
    // recorded as processed in the snapshot is not processed again), and nothing failed.
    let answered = art_subjects(&new.join("out"));
    let (pending, sent, failed) = outbox(&new_cfg);
    assert_eq!((pending, failed), (0, 0));
    assert_eq!(answered.len() as u64, sent, "{answered:?}");
    let unique: std::collections::BTreeSet<&String> = answered.iter().collect();
    assert_eq!(unique.len(), answered.len(), "answered twice: {answered:?}");
    for s in &subjects {
        assert!(answered.contains(s), "{s} not delivered: {answered:?}");
    }
    assert!(
        answered.iter().all(|a| subjects.contains(a) || late.contains(a)),
        "{answered:?}"
    );
    println!(
        "late messages in the backup (pending or in the spool): {} of {LATE}",
        answered.len() - MESSAGES
    );
}

/// The subject each delivered ART answers (read from its attachment), sorted; a message
/// delivered twice appears twice.
fn art_subjects(out: &Path) -> Vec<String> {
    let mut answered = Vec::new();
    for f in emails_under(out) {
        let raw = std::fs::read(&f).unwrap();
        let parsed = profile::parse_message(&raw, &ParseLimits::default()).expect("ART parses");
        assert!(parsed.profile_name().starts_with("ART/"), "{}", f.display());
        let body = text(&parsed.attachment);
        let subject = body
            .lines()
            .find_map(|l| l.strip_prefix("MESSAGE;"))
            .and_then(|l| l.split(';').next())
            .unwrap_or_else(|| panic!("no MESSAGE line: {body}"));
        answered.push(subject.to_owned());
    }
    answered.sort();
    answered
}

#[test]
fn entries_waiting_in_the_spool_are_restored_and_processed_once() {
    let tmp = tempfile::tempdir().unwrap();
    let old = tmp.path().join("old");
    let old_cfg = write_config(&old, "[delivery]\ndirectory = \"out\"\n");
    std::fs::create_dir(old.join("out")).unwrap();
    // The old service ran once (its database exists) and answered one message.
    let serve = Serve::start(&old_cfg, &old.join("serve.log"));
    send(serve.port, &["done-before-x7q".to_owned()]);
    wait_until("the first ART", || outbox(&old_cfg) == (0, 1, 0));
    assert!(serve.stop().success());
    // Two messages accepted but not processed yet: in spool/new, unknown to the database.
    let waiting = ["waiting-1-x7q", "waiting-2-x7q"];
    {
        let spool = Spool::open(old.join("spool")).unwrap();
        for subject in waiting {
            let data = format!("From: {PS}\r\nTo: {OCT}\r\nSubject: {subject}\r\n\r\nnot B2\r\n");
            let envelope = ReceivedEnvelope {
                helo: "ps.example".into(),
                mail_from: PS.into(),
                rcpt_to: vec![OCT.into()],
                peer: "127.0.0.1:1".into(),
                received_at: 1_700_000_000,
            };
            spool.put(&envelope, data.as_bytes()).unwrap();
        }
    }
    let archive = tmp.path().join("b.tar");
    let b = oct(&old_cfg, &["backup", "--out", archive.to_str().unwrap()]);
    assert!(b.status.success(), "{}", text(&b.stderr));
    assert!(text(&b.stdout).contains("2 spool file(s)"), "{}", text(&b.stdout));

    let new = tmp.path().join("new");
    let new_cfg = write_config(&new, "[delivery]\ndirectory = \"out\"\n");
    std::fs::create_dir(new.join("out")).unwrap();
    let r = oct(&new_cfg, &["restore", archive.to_str().unwrap()]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    assert_eq!(emails_under(&new.join("spool/new")).len(), 0);
    assert_eq!(files_under(&new.join("spool/new")).len(), 2);
    let serve = Serve::start(&new_cfg, &new.join("serve.log"));
    wait_until("the restored spool to be processed", || {
        outbox(&new_cfg) == (0, 3, 0)
    });
    assert!(serve.stop().success());
    // Only the two waiting messages are answered on the new machine; the first was answered
    // on the old one and is not answered again.
    assert_eq!(art_subjects(&new.join("out")), waiting);
    assert!(files_under(&new.join("spool/new")).is_empty());
}

/// The messages a `directory` delivery wrote (each `.eml` has an `.envelope.json` beside it).
fn emails_under(dir: &Path) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect()
}

#[test]
fn restore_refuses_a_foreign_archive_and_a_non_empty_spool() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("oct");
    let cfg = write_config(&d, "[delivery]\ndirectory = \"out\"\n");
    // A tar with a path outside the layout (an attempt to write elsewhere).
    let foreign = tmp.path().join("foreign.tar");
    let src = tmp.path().join("evil");
    std::fs::write(&src, b"x").unwrap();
    let o = Command::new("tar")
        .arg("-cf")
        .arg(&foreign)
        .arg("-C")
        .arg(tmp.path())
        .arg("evil")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let r = oct(&cfg, &["restore", foreign.to_str().unwrap()]);
    assert!(!r.status.success());
    assert!(
        text(&r.stderr).contains("unexpected entry \"evil\""),
        "{}",
        text(&r.stderr)
    );
    assert!(!d.join("state/oct.sqlite").exists());
    // A link where a spool entry would be (it could point anywhere): refused, not followed.
    let linked = tmp.path().join("linked");
    std::fs::create_dir_all(linked.join("spool/new")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", linked.join("spool/new/0000000000000001")).unwrap();
    let link_tar = tmp.path().join("link.tar");
    let o = Command::new("tar")
        .arg("-cf")
        .arg(&link_tar)
        .arg("-C")
        .arg(&linked)
        .arg("spool/new/0000000000000001")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let r = oct(&cfg, &["restore", link_tar.to_str().unwrap()]);
    assert!(!r.status.success());
    assert!(text(&r.stderr).contains("unexpected type"), "{}", text(&r.stderr));
    assert!(std::fs::symlink_metadata(d.join("spool/new/0000000000000001")).is_err());
    assert!(!d.join("state/oct.sqlite").exists());
    assert!(!d.join("state/oct.sqlite.restoring").exists());
    // A spool holding an entry: refused before anything is written.
    std::fs::write(d.join("spool/new/0000000000000001"), b"x").unwrap();
    let r = oct(&cfg, &["restore", foreign.to_str().unwrap()]);
    assert!(!r.status.success());
    assert!(text(&r.stderr).contains("not empty"), "{}", text(&r.stderr));
}
