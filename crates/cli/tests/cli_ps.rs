//! `svoct ps` configuration commands, run as a user would: the real binary, real files.

use std::path::Path;
use std::process::{Command, Output};

mod schema;

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

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn err(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    let e = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(e.trim_end().lines().count(), 1, "one-line error: {e}");
    assert!(e.starts_with("svoct: "), "{e}");
    e
}

#[test]
fn init_then_show_redacts_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ps.toml");
    ok(&svoct(&cfg, &["init"]));
    let e = err(&svoct(&cfg, &["init"]));
    assert!(e.contains("--force"), "{e}");

    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "# password = \"...\"\n\n[network.mailbox]",
        "password = \"s3cr3t-smtp\"\n\n[network.mailbox]",
    );
    std::fs::write(&cfg, text).unwrap();
    let human = ok(&svoct(&cfg, &["config", "show"]));
    assert!(human.contains("identity.ps_number = \"123456789\""), "{human}");
    assert!(
        human.contains("network.smtp.password = \"[redacted]\""),
        "{human}"
    );
    assert!(!human.contains("s3cr3t"));
    let json = ok(&svoct(&cfg, &["config", "show", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["network"]["smtp"]["password"], "[redacted]");
    assert_eq!(v["mode"], "direct");
    // A set password is `[redacted]` by the schema too (docs/json.md).
    let errors = schema::violations("ps-config-show", &json);
    assert!(errors.is_empty(), "{errors}");
}

#[test]
fn mode_and_oct_switching_round_trip_leaves_the_file_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ps.toml");
    ok(&svoct(&cfg, &["init"]));
    let before = std::fs::read(&cfg).unwrap();

    // OCT mode needs an OCT first.
    let e = err(&svoct(&cfg, &["mode", "oct"]));
    assert!(e.contains("svoct ps oct set"), "{e}");
    let e = err(&svoct(&cfg, &["oct", "set", "--address", "oct@oct.invalid"]));
    assert!(e.contains("--certificate") && e.contains("--identifier"), "{e}");
    assert_eq!(
        std::fs::read(&cfg).unwrap(),
        before,
        "failed commands change nothing"
    );

    // `oct set` checks the certificate (relative to the configuration file): a real one.
    std::fs::write(
        dir.path().join("oct.pem"),
        svoct_testkit::certs::TestIdentity::new("oct.test").cert_pem(),
    )
    .unwrap();
    let out = ok(&svoct(
        &cfg,
        &[
            "oct",
            "set",
            "--address",
            "oct@oct.invalid",
            "--certificate",
            "oct.pem",
            "--identifier",
            "12345678900014",
            "--option",
            "enriched",
            "--no-compress",
        ],
    ));
    assert!(
        out.contains("option enriched") && out.contains("not compressed"),
        "{out}"
    );
    ok(&svoct(&cfg, &["mode", "oct"]));
    let v: serde_json::Value =
        serde_json::from_str(&ok(&svoct(&cfg, &["config", "show", "--json"]))).unwrap();
    assert_eq!(v["mode"], "oct");
    assert_eq!(v["oct"]["option"], "enriched");
    assert_eq!(v["oct"]["compress"], false);

    // Change OCT: only the named key moves.
    ok(&svoct(
        &cfg,
        &["oct", "set", "--address", "other@oct2.invalid", "--compress"],
    ));
    let v: serde_json::Value =
        serde_json::from_str(&ok(&svoct(&cfg, &["config", "show", "--json"]))).unwrap();
    assert_eq!(v["oct"]["address"], "other@oct2.invalid");
    assert_eq!(v["oct"]["identifier"], "12345678900014");
    assert_eq!(v["oct"]["compress"], true);

    // Annex 4.3.2, second form of the enriched option: one file per destination.
    let out = ok(&svoct(
        &cfg,
        &["oct", "set", "--enriched-files", "per-destination"],
    ));
    assert!(out.contains("one file per destination"), "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&ok(&svoct(&cfg, &["config", "show", "--json"]))).unwrap();
    assert_eq!(v["oct"]["enriched_files"], "per-destination");
    assert_eq!(v["oct"]["address"], "other@oct2.invalid");

    ok(&svoct(&cfg, &["mode", "direct"]));
    ok(&svoct(&cfg, &["oct", "remove"]));
    assert_eq!(
        std::fs::read(&cfg).unwrap(),
        before,
        "OCT added, used, changed and removed: the file is as it was"
    );
}

#[test]
fn errors_are_one_line_and_help_exists_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let e = err(&svoct(&missing, &["config", "show"]));
    assert!(e.contains("nope.toml"), "{e}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "mode = \"sideways\"\n").unwrap();
    let e = err(&svoct(&bad, &["config", "show"]));
    assert!(e.contains("bad.toml"), "{e}");

    for args in [
        &["--help"][..],
        &["init", "--help"],
        &["config", "show", "--help"],
        &["mode", "--help"],
        &["oct", "set", "--help"],
        &["oct", "remove", "--help"],
    ] {
        let out = ok(&svoct(&bad, args));
        assert!(out.contains("Usage:"), "{args:?}: {out}");
    }
}

#[test]
fn config_path_comes_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("env.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_svoct"))
        .args(["ps", "init"])
        .env("SVOCT_PS_CONFIG", &cfg)
        .output()
        .unwrap();
    ok(&out);
    assert!(cfg.exists());
}
