//! Every `--json` output of the binary against its JSON Schema (docs/json.md,
//! docs/json-schema/), on a real store: the demo's PS store and OCT state, and a message sent
//! to a directory. The schemas are written by hand from docs/json.md, not from the program;
//! the old shapes (issue 13) are checked to fail them, so the schemas can fail.
//!
//! Validation is Python's `jsonschema` (draft 2020-12), installed by scripts/setup.sh
//! (Debian `python3-jsonschema`).

use std::path::PathBuf;
use std::process::Command;

mod schema;
use schema::violations;

/// Run the binary, which must succeed; its stdout.
fn svoct(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_svoct"))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "svoct {args:?} failed\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Run the binary; its JSON document is the last line of stdout (one line per document).
fn json_of(args: &[&str]) -> String {
    let stdout = svoct(args);
    let last = stdout.lines().last().unwrap_or_default().to_owned();
    assert!(
        serde_json::from_str::<serde_json::Value>(&last).is_ok(),
        "svoct {args:?}: the JSON is one document on one line:\n{stdout}"
    );
    last
}

fn assert_valid(name: &str, args: &[&str]) {
    let doc = json_of(args);
    let errors = violations(name, &doc);
    assert!(
        errors.is_empty(),
        "svoct {args:?} against {name}:\n{errors}\n{doc}"
    );
}

#[test]
fn every_command_output_follows_its_schema() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    let demo_s = demo.to_str().unwrap();
    assert_valid(
        "demo",
        &[
            "demo",
            "--invoices",
            "3",
            "--timeout",
            "120",
            "--json",
            "--dir",
            demo_s,
        ],
    );
    let ps = format!("{demo_s}/ps/svoct-ps.toml");
    let oct = format!("{demo_s}/oct/oct.toml");
    let out = dir.path().join("out");
    let out_s = out.to_str().unwrap();
    let lot = dir.path().join("new.b2");
    svoct(&[
        "gen",
        "--seed",
        "4242",
        "--invoices",
        "2",
        "--out",
        lot.to_str().unwrap(),
    ]);
    let p = ["--config", ps.as_str()];
    let o = ["--config", oct.as_str()];
    let cases: Vec<(&str, Vec<&str>)> = vec![
        (
            "ps-send",
            [
                &["ps", "send", lot.to_str().unwrap(), "--out", out_s, "--json"][..],
                &p,
            ]
            .concat(),
        ),
        (
            "ps-send",
            [
                &["ps", "resend", "1", "--force", "--out", out_s, "--json"][..],
                &p,
            ]
            .concat(),
        ),
        (
            "ps-send",
            [&["ps", "retry", "--out", out_s, "--json"][..], &p].concat(),
        ),
        (
            "ps-send",
            [&["ps", "loi", "request", "--out", out_s, "--json"][..], &p].concat(),
        ),
        ("ps-journal", [&["ps", "journal", "--json"][..], &p].concat()),
        (
            "ps-journal-show",
            [&["ps", "journal", "show", "1", "--json"][..], &p].concat(),
        ),
        (
            "ps-quarantine-show",
            [&["ps", "quarantine", "show", "1", "--json"][..], &p].concat(),
        ),
        ("ps-status", [&["ps", "status", "--json"][..], &p].concat()),
        ("ps-returns", [&["ps", "returns", "--json"][..], &p].concat()),
        ("ps-inbox", [&["ps", "inbox", "--json"][..], &p].concat()),
        ("ps-inbox", [&["ps", "quarantine", "--json"][..], &p].concat()),
        ("ps-fetch", [&["ps", "fetch", "--json"][..], &p].concat()),
        (
            "ps-loi-check",
            [&["ps", "loi", "check", "1234", "--json"][..], &p].concat(),
        ),
        (
            "ps-config-show",
            [&["ps", "config", "show", "--json"][..], &p].concat(),
        ),
        ("oct-check", [&["oct", "check", "--json"][..], &o].concat()),
        ("oct-status", [&["oct", "status", "--json"][..], &o].concat()),
        (
            "oct-quarantine-list",
            [&["oct", "quarantine", "list", "--all", "--json"][..], &o].concat(),
        ),
        (
            "oct-queue-list",
            [&["oct", "queue", "list", "--json"][..], &o].concat(),
        ),
        (
            "oct-queue-show",
            [&["oct", "queue", "show", "1", "--json"][..], &o].concat(),
        ),
        // The demo's practice, seeded from its `[[sender]]` block when its OCT started.
        ("oct-ps-list", [&["oct", "ps", "list", "--json"][..], &o].concat()),
        (
            "oct-ps-show",
            [&["oct", "ps", "show", "1", "--json"][..], &o].concat(),
        ),
        (
            "oct-ps-audit",
            [&["oct", "ps", "audit", "--json"][..], &o].concat(),
        ),
    ];
    for (name, args) in &cases {
        assert_valid(name, args);
    }
    // `inspect` of each kind of file this store has: the lots, the single file and the memory
    // zone `gen` writes, the messages `ps send --out` wrote.
    let mut inspected: Vec<PathBuf> = vec![lot.clone()];
    for format in ["single-file", "zone"] {
        let file = dir.path().join(format!("new.{format}"));
        svoct(&[
            "gen",
            "--seed",
            "4242",
            "--invoices",
            "2",
            "--format",
            format,
            "--out",
            file.to_str().unwrap(),
        ]);
        inspected.push(file);
    }
    let mut emls: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    emls.sort();
    assert!(
        emls.len() >= 3,
        "send, resend and loi request wrote messages: {emls:?}"
    );
    inspected.extend(emls);
    for file in &inspected {
        assert_valid("inspect", &["inspect", "--json", file.to_str().unwrap()]);
    }
    // The schemas were checked on objects, not only on empty arrays: the demo leaves a refused
    // lot and a rejected invoice to lead `ps status`, and every lot in `ps returns`.
    let status: serde_json::Value =
        serde_json::from_str(&json_of(&[&["ps", "status", "--json"][..], &p].concat())).unwrap();
    for list in [
        "needs_attention",
        "lots_to_resend",
        "invoices_to_correct",
        "arts",
        "paid_per_day",
    ] {
        assert!(!status[list].as_array().unwrap().is_empty(), "{list}: {status}");
    }
    // The send above is in the journal with the same shape (less `to`, which it does not keep).
    let journal: serde_json::Value =
        serde_json::from_str(&json_of(&[&["ps", "journal", "--json"][..], &p].concat())).unwrap();
    let last = journal.as_array().unwrap().last().unwrap();
    assert!(last["created_at"].as_str().unwrap().ends_with('Z'), "{last}");
}

/// The shapes issue 13 found, one per schema family: each must fail, or the schema checks nothing.
#[test]
fn the_old_shapes_fail_their_schema() {
    let old = [
        // `ps send --json`: `entry`, `answer`, a count under `invoices`.
        (
            "ps-send",
            r#"[{"entry":1,"subject":"S","compostage":"1","to":"a@b","status":"sent","answer":"250","invoices":5}]"#,
        ),
        // A journal entry with an epoch-millisecond time.
        (
            "ps-journal",
            r#"[{"id":1,"direction":"out","profile":"P","subject":"S","compostage":null,"message_id":null,"file_name":null,"lots":[],"invoices":[],"status":"sent","server_answer":null,"created_at":1796198266818,"updated_at":"2026-12-02T07:57:46.818Z"}]"#,
        ),
        // `ps returns`: `sent_ms` and a count under `invoices` in a lot.
        (
            "ps-returns",
            r#"{"lots":[{"id":1,"entry":1,"number":"001","date":"261202","kind":"FSE","invoices":2,"sent_ms":1796198266818,"arl":"positive","arl_ms":null,"arl_issued":null,"arl_reasons":[],"superseded":false}],"invoices":[],"notes":[],"arts":[],"unmatched":[],"payment_lines":[],"insurer_notices":[],"totals":{},"page":{"offset":0,"limit":null,"lots_matching":1,"invoices_matching":0}}"#,
        ),
        // A time without offset.
        (
            "ps-inbox",
            r#"[{"id":1,"source":"m","uidl":"u","size":1,"received_at":"2026-12-02 07:57:46","classification":null,"state":"new","reason":null,"deleted_on_server":false}]"#,
        ),
        // `oct check`: counts under `errors` / `warnings`.
        (
            "oct-check",
            r#"{"file":"f","ok":true,"errors":0,"warnings":0,"findings":[]}"#,
        ),
        // `inspect` of a NOEMIE return: a count under `files`.
        (
            "inspect",
            r#"{"format":"noemie","valid":true,"files":1,"findings":[]}"#,
        ),
        // Deep inside a body no schema describes key by key: an epoch time, a time without
        // offset, a count under a list's name.
        (
            "inspect",
            r#"{"format":"message","findings":[],"parts":[{"inner":{"received_ms":1}}]}"#,
        ),
        (
            "inspect",
            r#"{"format":"message","findings":[],"parts":[{"signed_at":"2026-12-02 07:57"}]}"#,
        ),
        (
            "ps-status",
            r#"{"arl_days":2,"rsp_days":15,"needs_attention":[],"lots_without_arl":[],"invoices_without_rsp":[],"lots_to_resend":[],"invoices_to_correct":[],"unmatched":[],"paid_per_day":[],"payment_lines":[{"lot":{"invoices":3}}],"insurer_notices":[],"arts":[]}"#,
        ),
    ];
    for (name, doc) in old {
        assert!(
            !violations(name, doc).is_empty(),
            "{name} accepts an old shape: {doc}"
        );
    }
}
