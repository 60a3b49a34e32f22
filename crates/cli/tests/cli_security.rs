//! docs/security.md: `svoct oct status` (human and `--json`) never prints the configured SMTP
//! password, a configuration error never prints the password line (`oct.toml` and
//! `svoct-ps.toml`), and `oct status` lists the routes that forward claims in clear; run as an
//! operator would (the real binary, real configuration files).

use std::process::Command;

use svoct_testkit::certs::TestIdentity;

#[test]
fn oct_status_never_prints_the_smtp_password() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    TestIdentity::new("oct.example").write_pem(d, "oct");
    let cfg = d.join("oct.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[oct]
identifier = "12345678900000"
sender_number = "98765432100000"
address = "oct@oct.example"

[paths]
spool = "{d}/spool"
state = "{d}/state.sqlite"

[keys]
private_key = "{d}/oct.key"
certificate = "{d}/oct.crt"

[delivery.smtp]
host = "127.0.0.1"
port = 2525
username = "oct"
password = "pa55-very-secret"
allow_plaintext_auth = true
"#,
            d = d.display()
        ),
    )
    .unwrap();
    // `status` reads an existing state database (it refuses a missing one).
    svoct_oct::state::State::open(&d.join("state.sqlite")).unwrap();
    for json in [false, true] {
        let mut c = Command::new(env!("CARGO_BIN_EXE_svoct"));
        c.args(["oct", "--config"]).arg(&cfg).arg("status");
        if json {
            c.arg("--json");
        }
        let out = c.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "json={json}\nstdout: {stdout}\nstderr: {stderr}"
        );
        assert!(!stdout.contains("pa55"), "{stdout}");
        assert!(!stderr.contains("pa55"), "{stderr}");
        if json {
            let _: serde_json::Value = serde_json::from_str(&stdout).expect("status --json is JSON");
        }
    }
}

fn oct_config(d: &std::path::Path, smtp: &str, routes: &str) -> std::path::PathBuf {
    TestIdentity::new("oct.example").write_pem(d, "oct");
    let cfg = d.join("oct.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[oct]
identifier = "12345678900000"
sender_number = "98765432100000"
address = "oct@oct.example"

[paths]
spool = "{d}/spool"
state = "{d}/state.sqlite"

[keys]
private_key = "{d}/oct.key"
certificate = "{d}/oct.crt"
{routes}
[delivery.smtp]
{smtp}
"#,
            d = d.display()
        ),
    )
    .unwrap();
    // `status` reads an existing state database (it refuses a missing one).
    svoct_oct::state::State::open(&d.join("state.sqlite")).unwrap();
    cfg
}

fn oct_status(cfg: &std::path::Path, json: bool) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_svoct"));
    c.args(["oct", "--config"]).arg(cfg).arg("status");
    if json {
        c.arg("--json");
    }
    c.output().unwrap()
}

#[test]
fn a_syntax_error_on_the_password_line_is_printed_without_it() {
    let dir = tempfile::tempdir().unwrap();
    // An unterminated string: the TOML parser's own message quotes this very line.
    let cfg = oct_config(
        dir.path(),
        "host = \"127.0.0.1\"\ntls = \"starttls\"\nusername = \"oct\"\npassword = \"pa55-very-secret\n",
        "",
    );
    let out = oct_status(&cfg, false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("oct.toml") && stderr.contains("line 19"),
        "{stderr}"
    );
    assert!(!stderr.contains("pa55"), "{stderr}");

    // The same for the PS configuration, through every command that reads it.
    let ps = dir.path().join("svoct-ps.toml");
    let init = Command::new(env!("CARGO_BIN_EXE_svoct"))
        .args(["ps", "--config"])
        .arg(&ps)
        .arg("init")
        .env_remove("SVOCT_PS_CONFIG")
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    let text = std::fs::read_to_string(&ps).unwrap();
    let broken = text.replacen("# password = \"...\"", "password = 'pop-s3cret-value", 1);
    assert_ne!(text, broken, "the example file changed");
    std::fs::write(&ps, broken).unwrap();
    for args in [&["config", "show"][..], &["mode", "oct"][..]] {
        let out = Command::new(env!("CARGO_BIN_EXE_svoct"))
            .args(["ps", "--config"])
            .arg(&ps)
            .args(args)
            .env_remove("SVOCT_PS_CONFIG")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains("line "), "{args:?}: {stderr}");
        assert!(!stderr.contains("s3cret"), "{args:?}: {stderr}");
    }
}

#[test]
fn credentials_without_tls_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = oct_config(
        dir.path(),
        "host = \"127.0.0.1\"\nusername = \"oct\"\npassword = \"pa55-very-secret\"\n",
        "",
    );
    let out = oct_status(&cfg, false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("allow_plaintext_auth"), "{stderr}");
    assert!(!stderr.contains("pa55"), "{stderr}");
}

#[test]
fn plaintext_routes_are_refused_unless_explicit_and_then_listed() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = "host = \"127.0.0.1\"\n";
    let routes = "\n[[route]]\norganisation = \"011\"\nmailbox = \"cpam@am.example\"\n\n[[amc]]\norganisation = \"0123456789\"\nmailbox = \"mutuelle@amc.example\"\nplaintext = true\n";
    let cfg = oct_config(dir.path(), smtp, routes);
    let out = oct_status(&cfg, false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("route[0].certificate"), "{stderr}");

    let cfg = oct_config(
        dir.path(),
        smtp,
        &routes.replacen("cpam@am.example\"\n", "cpam@am.example\"\nplaintext = true\n", 1),
    );
    let out = oct_status(&cfg, false);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("routes forwarding claims in clear"), "{stdout}");
    assert!(
        stdout.contains("route[0] organisation 011 -> cpam@am.example"),
        "{stdout}"
    );
    assert!(
        stdout.contains("amc[0] organisation 0123456789 -> mutuelle@amc.example"),
        "{stdout}"
    );
    let out = oct_status(&cfg, true);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["plaintext_routes"],
        serde_json::json!([
            "route[0] organisation 011 -> cpam@am.example",
            "amc[0] organisation 0123456789 -> mutuelle@amc.example"
        ])
    );
}
