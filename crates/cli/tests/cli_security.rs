//! docs/security.md: `svoct oct status` (human and `--json`) never prints the configured SMTP
//! password, run as an operator would (the real binary, a real configuration file).

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
"#,
            d = d.display()
        ),
    )
    .unwrap();
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
