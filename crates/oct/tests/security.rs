//! Security guarantees of the OCT (docs/security.md): the key file's permissions are checked
//! when the keys load, a configured SMTP password never reaches Debug output or JSON, and a
//! relay that refuses the login by echoing it (`535 5.7.8 AUTH PLAIN <base64>`) leaks the
//! password nowhere (log, state database, `oct status`) and fails no message.

mod pipeline_common;

use std::os::unix::fs::PermissionsExt;

use pipeline_common::{World, config_text};
use svoct_oct::config::Config;
use svoct_oct::pipeline::{Keys, PipelineError};

#[test]
fn oct_refuses_a_world_readable_key_file() {
    let w = World::new(2525, "");
    let key = w.dir.path().join("oct.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = match Keys::load(&w.config()) {
        Ok(_) => panic!("a 0644 key must be refused"),
        Err(e) => e,
    };
    assert!(matches!(err, PipelineError::Key { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("oct.key"), "{text}");
    // And 0600 is accepted.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(Keys::load(&w.config()).is_ok());
}

#[test]
fn smtp_password_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(dir.path(), 2525, "").replace(
        "port = 2525\n",
        "port = 2525\nusername = \"oct\"\npassword = \"pa55-very-secret\"\nallow_plaintext_auth = true\n",
    );
    let config = Config::parse(&text).expect("config parses");
    let smtp = config.delivery.smtp.as_ref().expect("smtp settings");
    assert_eq!(
        smtp.password.as_ref().expect("password").expose(),
        "pa55-very-secret"
    );
    let debug = format!("{config:?}");
    assert!(!debug.contains("pa55-very-secret"), "{debug}");
    let json = serde_json::to_string(&config).unwrap();
    assert!(!json.contains("pa55-very-secret"), "{json}");
    assert!(json.contains("[redacted]"), "{json}");
}

/// The password and every form an echoed login can show it in.
fn password_forms() -> Vec<Vec<u8>> {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s).into_bytes();
    let plain = b64("\0oct\0pa55-very-secret");
    vec![
        b"pa55-very-secret".to_vec(),
        b64("pa55-very-secret"),
        plain.clone(),
        // Any 16-byte stretch of the PLAIN response (it is what the server echoes).
        plain[..16].to_vec(),
        plain[8..24].to_vec(),
    ]
}

fn assert_no_password(what: &str, bytes: &[u8]) {
    for form in password_forms() {
        assert!(
            !bytes.windows(form.len()).any(|w| w == form.as_slice()),
            "{what} holds {:?}:\n{}",
            String::from_utf8_lossy(&form),
            String::from_utf8_lossy(bytes)
        );
    }
}

struct Serve(std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn status(bin: &std::path::Path, config: &std::path::Path, json: bool) -> String {
    let mut c = std::process::Command::new(bin);
    c.args(["oct", "--config"]).arg(config).arg("status");
    if json {
        c.arg("--json");
    }
    let out = c.output().expect("run svoct oct status");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_no_password("status stderr", &out.stderr);
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn a_535_echoing_the_login_leaks_nothing_and_fails_no_message() {
    use std::io::BufRead as _;
    use std::time::{Duration, Instant};
    use svoct_mail::transport::{SmtpConfig, SmtpEnvelope, SmtpTransport, Transport};

    let relay = svoct_testkit::fake_smtp::AuthEchoServer::start().expect("fake relay");
    let world = World::new(relay.port(), "");
    let text = std::fs::read_to_string(&world.config_path).unwrap().replace(
        &format!("port = {}\n", relay.port()),
        &format!(
            "port = {}\nusername = \"oct\"\npassword = \"pa55-very-secret\"\nallow_plaintext_auth = true\n",
            relay.port()
        ),
    );
    std::fs::write(&world.config_path, text).unwrap();
    let bin = pipeline_common::svoct_binary();
    let log_path = world.dir.path().join("serve.log");
    let mut child = std::process::Command::new(&bin)
        .args(["--log", "debug", "oct", "--config"])
        .arg(&world.config_path)
        .arg("serve")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("svoct oct serve");
    let stdout = child.stdout.take().unwrap();
    let serve = Serve(child);
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr: std::net::SocketAddr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line: {line:?}"))
        .parse()
        .unwrap();

    let p = pipeline_common::synth(3, 2, true, 7);
    let file = pipeline_common::single_file(&p);
    let raw = pipeline_common::ps_message(
        &world,
        pipeline_common::PS_ADDRESS,
        &file,
        pipeline_common::PS_NUMBER,
        3,
        1,
        false,
    );
    SmtpTransport::new(&SmtpConfig::plain("127.0.0.1", addr.port()))
        .unwrap()
        .send(
            &SmtpEnvelope::new(pipeline_common::PS_ADDRESS, pipeline_common::OCT_ADDRESS),
            &raw,
        )
        .expect("the OCT accepts the message");

    // max_attempts is 3: wait until every queued message has been refused more often than
    // that; before the fix the first 535 failed each of them for good.
    let start = Instant::now();
    let rows = loop {
        let report: serde_json::Value =
            serde_json::from_str(&status(&bin, &world.config_path, true)).unwrap();
        let rows = report["undelivered"].as_array().cloned().unwrap_or_default();
        if !rows.is_empty() && rows.iter().all(|r| r["attempts"].as_u64() > Some(3)) {
            break rows;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no retries: {report:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        relay.auth_attempts() >= 4 * rows.len(),
        "{}",
        relay.auth_attempts()
    );
    for r in &rows {
        assert_eq!(r["state"], "pending", "a refused login fails no message: {r:#}");
        let error = r["last_error"].as_str().unwrap_or_default();
        assert!(error.starts_with(svoct_oct::service::AUTH_REJECTED), "{error}");
        assert!(error.contains("AUTH PLAIN [redacted]"), "{error}");
    }
    let json = status(&bin, &world.config_path, true);
    assert_no_password("status --json", json.as_bytes());
    let human = status(&bin, &world.config_path, false);
    assert_no_password("status", human.as_bytes());
    assert!(
        human.contains("ALERT: the relay refused the OCT's SMTP login"),
        "{human}"
    );
    drop(serve);

    let log = std::fs::read(&log_path).unwrap();
    assert!(
        String::from_utf8_lossy(&log).contains("the relay refused the OCT's SMTP login"),
        "the operator is warned:\n{}",
        String::from_utf8_lossy(&log)
    );
    assert_no_password("the service log", &log);
    for entry in std::fs::read_dir(world.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("state.sqlite") {
            assert_no_password(&name, &std::fs::read(&path).unwrap());
        }
    }
    // The same rows read through the state store itself (the file's bytes are checked above).
    let state = svoct_oct::state::State::open(&world.dir.path().join("state.sqlite")).unwrap();
    let errors: Vec<String> = svoct_oct::state::OctStore::undelivered(&state, usize::MAX)
        .unwrap()
        .into_iter()
        .filter_map(|r| r.last_error)
        .collect();
    assert_eq!(errors.len(), rows.len());
    for e in &errors {
        assert_no_password("outbox.last_error", e.as_bytes());
    }
}
