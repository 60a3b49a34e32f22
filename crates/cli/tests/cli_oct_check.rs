//! docs/oct.md "Before starting": `svoct oct init` writes a configuration that `svoct oct check`
//! passes and `svoct oct serve` runs; `check` lists every problem at once, naming the key and the
//! file, and `serve` refuses the same problems (the same code); `status` refuses a missing state
//! database and says whether the service runs; the shipped `docs/oct.example.toml` runs with
//! only its paths changed; logs carry no colour codes when not on a terminal. The real binary,
//! real files, real OpenSSL, a real TCP connection on loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use svoct_testkit::certs::TestIdentity;

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

/// A running `svoct oct serve`, stopped (SIGTERM) when dropped.
struct Serve {
    child: Option<Child>,
    addr: SocketAddr,
}

impl Serve {
    fn start(cfg: &Path) -> Serve {
        let mut child = svoct()
            .args(["oct", "--config"])
            .arg(cfg)
            .arg("serve")
            .env("SVOCT_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("serve did not start: {line:?}\n{}", text(&out.stderr));
        };
        Serve {
            addr: addr.parse().unwrap(),
            child: Some(child),
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGTERM, then the exit status and everything written on stderr.
    fn stop(mut self) -> (std::process::ExitStatus, String) {
        let mut child = self.child.take().unwrap();
        // SAFETY: kill(2) on the id of a child we spawned and have not reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait().unwrap();
        let mut stderr = String::new();
        child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        (status, stderr)
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

/// The greeting and the EHLO answer of the ingress, as an SMTP client sees them.
fn ehlo(addr: SocketAddr) -> (String, String) {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut greeting = String::new();
    r.read_line(&mut greeting).unwrap();
    (&s).write_all(b"EHLO client.test\r\n").unwrap();
    let mut reply = String::new();
    loop {
        let mut l = String::new();
        if r.read_line(&mut l).unwrap() == 0 {
            break;
        }
        reply.push_str(&l);
        if l.as_bytes().get(3) == Some(&b' ') {
            break;
        }
    }
    (&s).write_all(b"QUIT\r\n").unwrap();
    (greeting, reply)
}

#[test]
fn init_writes_what_check_passes_and_serve_runs_and_status_sees_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("oct");
    let out = svoct()
        .args([
            "oct",
            "init",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--dir",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cfg = dir.join("oct.toml");
    for d in ["keys", "spool", "state"] {
        assert_eq!(mode(&dir.join(d)), 0o700, "{d}");
    }
    assert_eq!(mode(&dir.join("keys/oct.key")), 0o600);
    assert_eq!(mode(&cfg), 0o600);
    // OpenSSL itself vouches for the pair: the certificate is valid a day from now and holds
    // the key's public half.
    let openssl = |args: &[&str]| {
        let o = Command::new("openssl").args(args).output().unwrap();
        assert!(o.status.success(), "openssl {args:?}: {}", text(&o.stderr));
        o.stdout
    };
    let crt = dir.join("keys/oct.crt");
    let key = dir.join("keys/oct.key");
    openssl(&[
        "x509",
        "-in",
        crt.to_str().unwrap(),
        "-noout",
        "-checkend",
        "86400",
    ]);
    assert_eq!(
        openssl(&["x509", "-in", crt.to_str().unwrap(), "-noout", "-pubkey"]),
        openssl(&["pkey", "-in", key.to_str().unwrap(), "-pubout"])
    );
    // init never overwrites.
    let again = svoct().args(["oct", "init", "--dir"]).arg(&dir).output().unwrap();
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("already exists"),
        "{}",
        text(&again.stderr)
    );

    let check = oct(&cfg, &["check"]);
    assert!(check.status.success(), "{}", text(&check.stdout));
    assert!(
        text(&check.stdout).contains("0 error(s), 0 warning(s)"),
        "{}",
        text(&check.stdout)
    );

    // No database yet: status says so, fails, and creates nothing.
    let state = dir.join("state/oct.sqlite");
    let status = oct(&cfg, &["status"]);
    assert!(!status.status.success());
    assert!(
        text(&status.stderr).contains("no state database"),
        "{}",
        text(&status.stderr)
    );
    assert!(
        text(&status.stderr).contains("oct.toml"),
        "{}",
        text(&status.stderr)
    );
    assert!(!state.exists(), "status created the database");
    let list = oct(&cfg, &["quarantine", "list"]);
    assert!(!list.status.success());
    assert!(!state.exists(), "quarantine list created the database");

    let serve = Serve::start(&cfg);
    let (greeting, reply) = ehlo(serve.addr);
    assert!(greeting.starts_with("220 "), "{greeting}");
    assert!(reply.starts_with("250"), "{reply}");
    let status = oct(&cfg, &["status"]);
    assert!(status.status.success(), "{}", text(&status.stderr));
    let shown = format!("service: running (pid {})", serve.pid());
    assert!(text(&status.stdout).contains(&shown), "{}", text(&status.stdout));
    let json: serde_json::Value = serde_json::from_slice(&oct(&cfg, &["status", "--json"]).stdout).unwrap();
    assert_eq!(json["service"]["service"], "running");
    assert_eq!(json["service"]["pid"], serve.pid());
    // A second service on the same state is refused, naming the first.
    let second = oct(&cfg, &["serve"]);
    assert!(!second.status.success());
    let e = text(&second.stderr);
    assert!(
        e.contains("already running") && e.contains(&serve.pid().to_string()),
        "{e}"
    );

    let (exit, stderr) = serve.stop();
    assert!(exit.success(), "{stderr}");
    // Logs went to a pipe: plain text, no colour codes, yet the log lines are there.
    assert!(stderr.contains("concentrator started"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "ANSI escape in piped logs: {stderr:?}"
    );
    let status = oct(&cfg, &["status"]);
    assert!(
        text(&status.stdout).contains("service: not running"),
        "{}",
        text(&status.stdout)
    );
}

fn write_config(d: &Path, extra: &str) -> PathBuf {
    let cfg = d.join("oct.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[oct]
identifier = "12345678900000"
sender_number = "98765432100000"
address = "oct@oct.example"

[ingress]
listen = "127.0.0.1:0"

[paths]
spool = "spool"
state = "state.sqlite"

[keys]
private_key = "oct.key"
certificate = "oct.crt"

[delivery.smtp]
host = "127.0.0.1"
{extra}"#
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn check_lists_every_problem_naming_key_and_file_and_serve_refuses_them() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    TestIdentity::new("oct.example").write_pem(d, "oct");
    std::fs::set_permissions(d.join("oct.key"), std::fs::Permissions::from_mode(0o640)).unwrap();
    TestIdentity::expired("cpam").write_pem(d, "expired");
    TestIdentity::not_yet_valid("mutuelle").write_pem(d, "future");
    let cfg = write_config(
        d,
        r#"
[[sender]]
address = "not-an-address"
sender_number = "1"
ps_number = "1"

[[route]]
organisation = "011"
mailbox = "cpam011@am.example"
certificate = "missing.crt"

[[route]]
organisation = "012"
mailbox = "cpam012@am.example"
certificate = "expired.crt"

[[amc]]
organisation = "0123456789"
mailbox = "dre@amc.example"
certificate = "future.crt"

[loi]
source = "no-such-dir"
"#,
    );
    let out = oct(&cfg, &["check"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let file = cfg.display().to_string();
    for (key, says) in [
        ("sender[0].address", "'@'"),
        ("keys.private_key", "chmod 600"),
        ("route[0].certificate", "missing.crt"),
        ("route[1].certificate", "expired on"),
        ("amc[0].certificate", "not valid before"),
        ("loi.source", "not a directory"),
    ] {
        let line = stdout
            .lines()
            .find(|l| l.contains(&format!(": error: {key}: ")))
            .unwrap_or_else(|| panic!("no error for {key}:\n{stdout}"));
        assert!(line.starts_with(&file), "{line}");
        assert!(line.contains(says), "{line}");
    }
    assert!(stdout.contains("6 error(s)"), "{stdout}");

    // serve runs the same checks and refuses to start on them, creating no database.
    let serve = oct(&cfg, &["serve"]);
    assert_eq!(serve.status.code(), Some(1));
    let stderr = text(&serve.stderr);
    assert!(
        stderr.contains("route[1].certificate") && stderr.contains("not starting"),
        "{stderr}"
    );
    assert!(!d.join("state.sqlite").exists());

    let json: serde_json::Value = serde_json::from_slice(&oct(&cfg, &["check", "--json"]).stdout).unwrap();
    assert_eq!(json["ok"], false);
    assert_eq!(json["error_count"], 6);
}

#[test]
fn a_certificate_ending_within_30_days_warns_and_strict_refuses_it() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    TestIdentity::with_validity("oct.example", now - 86_400, now + 10 * 86_400).write_pem(d, "oct");
    let cfg = write_config(d, "");
    let out = oct(&cfg, &["check"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains(": warning: keys.certificate: "), "{stdout}");
    assert!(
        stdout.contains("in 9 day(s)") || stdout.contains("in 10 day(s)"),
        "{stdout}"
    );
    let strict = oct(&cfg, &["check", "--strict"]);
    assert_eq!(strict.status.code(), Some(1), "{}", text(&strict.stdout));
    let json: serde_json::Value = serde_json::from_slice(&oct(&cfg, &["check", "--json"]).stdout).unwrap();
    assert_eq!(json["findings"][0]["severity"], "warning");
    assert_eq!(json["findings"][0]["key"], "keys.certificate");
}

/// Rewrites every absolute path value of `docs/oct.example.toml` under `root`, and nothing else
/// but the listen address (port 0 on loopback: tests never take a fixed port or a public one).
fn example_with_paths_under(root: &Path) -> (String, Vec<PathBuf>) {
    let shipped = include_str!("../../../docs/oct.example.toml");
    let mut paths = Vec::new();
    let mut out = String::new();
    for line in shipped.lines() {
        let rewritten = match line.split_once(" = \"/") {
            Some((key, rest)) if !line.trim_start().starts_with('#') => {
                let value = rest.trim_end_matches('"');
                let path = root.join(value);
                paths.push(path.clone());
                format!("{key} = \"{}\"", path.display())
            }
            _ if line.starts_with("listen = ") => "listen = \"127.0.0.1:0\"".to_owned(),
            _ => line.to_owned(),
        };
        out.push_str(&rewritten);
        out.push('\n');
    }
    (out, paths)
}

#[test]
fn the_shipped_example_runs_with_only_its_paths_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (config, paths) = example_with_paths_under(root);
    assert!(paths.len() >= 9, "{paths:?}");
    // Place what an operator would: keys and certificates made with the openssl command (not
    // with svoct), the dLOI directory; the rest is created by the service.
    for p in &paths {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let name = p.file_name().unwrap().to_string_lossy();
        if name.ends_with(".crt") && name != "oct.crt" {
            let key = p.with_extension("key");
            openssl_pair(&key, p);
        }
    }
    let etc = root.join("etc/svoct");
    openssl_pair(&etc.join("oct.key"), &etc.join("oct.crt"));
    std::fs::create_dir_all(root.join("var/lib/svoct/loi")).unwrap();
    let cfg = etc.join("oct.toml");
    std::fs::write(&cfg, config).unwrap();

    let out = oct(&cfg, &["check"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("0 error(s)"), "{}", text(&out.stdout));
    let serve = Serve::start(&cfg);
    let (greeting, reply) = ehlo(serve.addr);
    assert!(greeting.starts_with("220 "), "{greeting}");
    assert!(reply.contains("250"), "{reply}");
    let (exit, stderr) = serve.stop();
    assert!(exit.success(), "{stderr}");
    assert!(
        !stderr.contains("change-me"),
        "the relay password leaked: {stderr}"
    );
}

fn openssl_pair(key: &Path, cert: &Path) {
    let o = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "365",
            "-subj",
            "/CN=svoct test",
        ])
        .arg("-keyout")
        .arg(key)
        .arg("-out")
        .arg(cert)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn check_of_a_device_or_a_missing_file_ends_with_the_reason() {
    // /dev/zero claims 0 bytes and never ends: the bound on what is read stops it.
    let out = oct(Path::new("/dev/zero"), &["check"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("/dev/zero: error: file: ") && stdout.contains("bytes accepted"),
        "{stdout}"
    );
    let out = oct(Path::new("/nonexistent/oct.toml"), &["check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("cannot read configuration /nonexistent/oct.toml"),
        "{}",
        text(&out.stdout)
    );
}
