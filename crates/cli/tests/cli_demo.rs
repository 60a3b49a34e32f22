//! The README's first command, through the real binary: `svoct demo` runs the whole exchange and
//! exits 0 only when every expected return came back.

use std::process::Command;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Every file and directory under `dir` whose mode lets group or others in.
fn open_to_others(dir: &Path, found: &mut Vec<String>, counted: &mut usize) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        let mode = meta.permissions().mode() & 0o777;
        let (want, is_dir) = if meta.is_dir() {
            (0o700, true)
        } else {
            (0o600, false)
        };
        *counted += 1;
        if mode != want {
            found.push(format!("{} {mode:o}", entry.path().display()));
        }
        if is_dir {
            open_to_others(&entry.path(), found, counted);
        }
    }
}

/// Runs the demo under the usual umask 022 (through `sh`, so that the umask is the child's),
/// and then checks that every file it left is 0600 and every directory 0700: the spools, the
/// state database and its -wal/-shm, the PS store and payloads, the Maildir, the lots.
#[test]
fn demo_runs_the_whole_exchange_and_reports_every_lot() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("sh")
        .args([
            "-c",
            "umask 022 && exec \"$0\" \"$@\"",
            env!("CARGO_BIN_EXE_svoct"),
        ])
        .args(["demo", "--invoices", "12", "--timeout", "120", "--json", "--dir"])
        .arg(dir.path().join("demo"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for step in [
        "[1]", "[2]", "[3]", "[4.1]", "[4.2]", "[4.3]", "[4.4]", "[4.5]", "[5]", "[6]", "done:",
    ] {
        assert!(stdout.contains(step), "step {step} missing:\n{stdout}");
    }
    let json_start = stdout.find("\n{").expect("summary JSON after the report");
    let summary: serde_json::Value = serde_json::from_str(&stdout[json_start..]).unwrap();
    assert_eq!(summary["complete"], true);
    assert_eq!(summary["art"], summary["messages_sent"]);
    assert_eq!(summary["arl"], summary["lots_sent"]);
    // 12 invoices in each of split, single, enriched (one file), enriched (per destination);
    // 3 in the old lot.
    assert_eq!(summary["invoices_sent"], 51);
    // The old lot is refused by the AM: its negative ARL reaches the PS's reconciliation.
    assert_eq!(summary["lots_negative"], 1, "{stdout}");

    let (mut loose, mut counted) = (Vec::new(), 0);
    open_to_others(&dir.path().join("demo"), &mut loose, &mut counted);
    assert!(
        loose.is_empty(),
        "not 0600/0700 under umask 022:\n{}",
        loose.join("\n")
    );
    // The walk saw the data: the state database and its WAL, spool and Maildir entries.
    assert!(counted > 30, "only {counted} entries under the demo directory");

    // `ps status` on the demo's PS store opens with that refusal and its reason (issue 13).
    let status = Command::new(env!("CARGO_BIN_EXE_svoct"))
        .args(["ps", "status", "--config"])
        .arg(dir.path().join("demo/ps/svoct-ps.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{text}");
    let mut lines = text.lines();
    assert!(
        lines.next().unwrap_or("").starts_with("Needs a human now: "),
        "{text}"
    );
    let first = lines.find(|l| l.contains("negative ARL")).unwrap_or("");
    let before = &text[..text.find(first).unwrap_or(0)];
    assert!(
        !before.contains("Lots without ARL"),
        "the refusal comes before the waiting worklists:\n{text}"
    );
    assert!(first.contains("lot "), "{text}");
    let json = Command::new(env!("CARGO_BIN_EXE_svoct"))
        .args(["ps", "status", "--json", "--config"])
        .arg(dir.path().join("demo/ps/svoct-ps.toml"))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let lead = &v["needs_attention"][0];
    assert_eq!(lead["kind"], "negative_arl", "{v}");
    assert!(
        !lead["reason"].as_str().unwrap_or("").trim().is_empty(),
        "the ARL's reason is shown: {lead}"
    );
}

#[test]
fn demo_refuses_a_directory_that_is_not_empty() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep.txt"), b"x").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_svoct"))
        .args(["demo", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not empty"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one-line error: {stderr}");
    assert!(
        dir.path().join("keep.txt").exists(),
        "nothing of the user's is touched"
    );
}
