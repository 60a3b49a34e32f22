//! `svoct oct console-user add NAME` (docs/oct.md, "The web console"): from a pipe the password
//! is one line; on a terminal (a pseudo-terminal driven by Python's `pty` module,
//! `tests/pty/console_user.py`) it is asked twice without echo, refused when the two differ,
//! and the terminal echoes again afterwards, also after Ctrl-C. The real binary, real files.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn svoct() -> Command {
    Command::new(env!("CARGO_BIN_EXE_svoct"))
}

/// A configuration from `svoct oct init` with its `users_file` on.
fn config(dir: &Path) -> PathBuf {
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
        .arg(dir.join("oct"))
        .output()
        .expect("init");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cfg = dir.join("oct/oct.toml");
    let text = std::fs::read_to_string(&cfg).expect("config");
    assert!(text.contains("# users_file = \"console-users\""), "{text}");
    std::fs::write(&cfg, text.replace("# users_file", "users_file")).expect("config");
    cfg
}

fn users(cfg: &Path) -> String {
    std::fs::read_to_string(cfg.with_file_name("console-users")).unwrap_or_default()
}

/// Runs the pty driver: what the terminal showed (its last line says `echo=... exit=N`).
fn on_a_terminal(cfg: &Path, name: &str, first: &str, second: &str) -> String {
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pty/console_user.py");
    let out = Command::new("python3")
        .arg(driver)
        .arg(env!("CARGO_BIN_EXE_svoct"))
        .arg(cfg)
        .args([name, first, second])
        .output()
        .expect("python3 runs the pty driver");
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{shown}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    shown
}

#[test]
fn from_a_pipe_the_password_is_one_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = config(tmp.path());
    let mut add = svoct()
        .args(["oct", "--config"])
        .arg(&cfg)
        .args(["console-user", "add", "alice"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("console-user add");
    add.stdin
        .take()
        .expect("stdin")
        .write_all(b"piped secret\n")
        .expect("write");
    let out = add.wait_with_output().expect("wait");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(said.contains("added alice"), "{said}");
    assert!(!said.contains("again"), "asked once from a pipe: {said}");
    let file = cfg.with_file_name("console-users");
    assert_eq!(
        std::fs::metadata(&file).expect("file").permissions().mode() & 0o777,
        0o600
    );
    assert!(users(&cfg).starts_with("alice:") && !users(&cfg).contains("piped secret"));
}

#[test]
fn on_a_terminal_it_is_asked_twice_without_echo_and_the_terminal_is_restored() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = config(tmp.path());

    let shown = on_a_terminal(&cfg, "bob", "typed unseen", "typed unseen");
    assert!(
        shown.contains("password for bob: ") && shown.contains("again: "),
        "{shown}"
    );
    assert!(
        !shown.contains("typed unseen"),
        "the password is not echoed: {shown}"
    );
    assert!(shown.contains("added bob"), "{shown}");
    assert!(shown.trim_end().ends_with("echo=on exit=0"), "{shown}");
    assert!(users(&cfg).contains("bob:"));

    // Two different passwords: nothing changed (exit 2, as any refused command).
    let shown = on_a_terminal(&cfg, "carol", "one password", "another one");
    assert!(shown.contains("differ"), "{shown}");
    assert!(
        !shown.contains("one password") && !shown.contains("another one"),
        "{shown}"
    );
    assert!(shown.trim_end().ends_with("echo=on exit=2"), "{shown}");
    assert!(!users(&cfg).contains("carol:"));

    // Ctrl-C at the prompt: the process ends, the terminal echoes again.
    let shown = on_a_terminal(&cfg, "dave", "^C", "");
    assert!(shown.trim_end().ends_with("echo=on exit=130"), "{shown}");
    assert!(!users(&cfg).contains("dave:"));
}
