//! Portable history through the real binary: a demo run (real SMTP ingress, OCT, AM simulator,
//! Maildir returns) fills a PS store; `ps export` writes it to a tar, `ps import` restores it into
//! a fresh store, and every listing is the same and every duplicate-send protection holds.
//! Python's `tarfile` and `json` read the archive independently.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn svoct(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_svoct"))
        .arg("ps")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(config: &Path, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(svoct(config, args))).unwrap()
}

/// Runs the demo into `dir` and returns its PS configuration file.
fn demo(dir: &Path) -> std::path::PathBuf {
    let out = Command::new(env!("CARGO_BIN_EXE_svoct"))
        .args(["demo", "--invoices", "6", "--timeout", "120", "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    ok(out);
    dir.join("ps/svoct-ps.toml")
}

/// A copy of `config` whose store is `store` (everything else, mailbox included, unchanged).
fn config_with_store(config: &Path, store: &Path, to: &Path) {
    let text = std::fs::read_to_string(config).unwrap();
    let line = format!("store = {:?}", store.display().to_string());
    let mut replaced = 0;
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with("store =") {
                replaced += 1;
                line.clone()
            } else {
                l.to_owned()
            }
        })
        .collect();
    assert_eq!(
        replaced, 1,
        "the demo configuration names its store once:\n{text}"
    );
    std::fs::write(to, lines.join("\n")).unwrap();
}

#[test]
fn export_then_import_keeps_every_state_and_refuses_duplicates() {
    let tmp = tempfile::tempdir().unwrap();
    let old = demo(&tmp.path().join("demo"));
    let archive = tmp.path().join("history.tar");
    let out = ok(svoct(&old, &["export", "--out", archive.to_str().unwrap()]));
    assert!(out.contains("journal:"), "{out}");
    let mode = std::fs::metadata(&archive).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the archive holds health data");

    let new = tmp.path().join("new.toml");
    config_with_store(&old, &tmp.path().join("moved/ps.sqlite"), &new);
    // The store's directory does not exist yet: import makes it (0700).
    ok(svoct(&new, &["import", archive.to_str().unwrap()]));
    let store_mode = std::fs::metadata(tmp.path().join("moved/ps.sqlite"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(store_mode, 0o600, "the restored store holds health data");
    let dir_mode = std::fs::metadata(tmp.path().join("moved"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty(), "no scratch file left: {leftovers:?}");

    for listing in [
        &["returns", "--json"][..],
        &["journal", "--json"],
        &["status", "--json"],
    ] {
        let before = json(&old, listing);
        let after = json(&new, listing);
        assert_eq!(before, after, "{listing:?} differs after the round trip");
    }
    // Not empty listings compared: the demo sent, received and reconciled.
    let journal = json(&new, &["journal", "--json"]);
    assert!(journal.as_array().unwrap().len() >= 10, "{journal}");
    let returns = json(&new, &["returns", "--json"]).to_string();
    assert!(returns.contains("rejected"), "{returns}");

    // The same invoices again: refused as duplicates by the imported journal.
    let lots = tmp.path().join("demo/ps/lots-1.b2");
    let sent = svoct(
        &new,
        &[
            "send",
            "--out",
            tmp.path().join("eml").to_str().unwrap(),
            lots.to_str().unwrap(),
        ],
    );
    assert!(!sent.status.success());
    let err = String::from_utf8_lossy(&sent.stderr);
    assert!(err.contains("is already in journal entry"), "{err}");

    // A second import into the now non-empty store is refused and changes nothing.
    let again = svoct(&new, &["import", archive.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds data"));
    assert_eq!(json(&new, &["journal", "--json"]), journal);

    // An existing file is never overwritten by an export.
    let twice = svoct(&old, &["export", "--out", archive.to_str().unwrap()]);
    assert!(!twice.status.success());
}

#[test]
fn python_tarfile_reads_the_archive_and_every_json_line() {
    let tmp = tempfile::tempdir().unwrap();
    let old = demo(&tmp.path().join("demo"));
    let archive = tmp.path().join("history.tar");
    ok(svoct(&old, &["export", "--out", archive.to_str().unwrap()]));
    let script = r#"
import json, sys, tarfile
t = tarfile.open(sys.argv[1])
names = t.getnames()
m = json.load(t.extractfile("manifest.json"))
assert m["format"] == "svoct-ps-archive" and m["version"] == 1, m
rows = 0
for table in m["tables"]:
    lines = t.extractfile(table["file"]).read().decode().splitlines()
    assert len(lines) == table["rows"], table
    for line in lines:
        obj = json.loads(line)
        assert sorted(obj) == sorted(table["columns"]), (obj, table)
        for v in obj.values():
            if isinstance(v, dict):
                assert v["file"] in names, v
    rows += len(lines)
emls = [n for n in names if n.startswith("messages/") and n.endswith(".eml")]
payloads = [n for n in names if n.startswith("payloads/")]
assert len(payloads) == m["payloads"], (payloads, m["payloads"])
for name in emls:
    head = t.extractfile(name).read(4096).decode("latin-1")
    assert "subject:" in head.lower(), (name, head)
print(rows, len(emls), len(payloads))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&archive)
        .output()
        .unwrap();
    let stdout = ok(out);
    let counts: Vec<u64> = stdout.split_whitespace().map(|n| n.parse().unwrap()).collect();
    // Independent of the exporter: the journal (SQLite, read by python's sqlite3) has as many
    // rows as the archive's journal member, and every received message is there as .eml.
    let check = r#"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
print(c.execute("select count(*) from inbox").fetchone()[0])
"#;
    let inbox = ok(Command::new("python3")
        .arg("-c")
        .arg(check)
        .arg(tmp.path().join("demo/ps/svoct-ps.sqlite"))
        .output()
        .unwrap());
    assert_eq!(
        counts[1],
        inbox.trim().parse::<u64>().unwrap(),
        "one .eml per received message"
    );
    assert!(counts[1] > 0 && counts[2] > 0, "{stdout}");
}
