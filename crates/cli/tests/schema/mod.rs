//! Validation of a JSON document against docs/json-schema/NAME.schema.json (docs/json.md) with
//! Python's `jsonschema`, draft 2020-12 (Debian `python3-jsonschema`, installed by
//! scripts/setup.sh). Shared by the CLI tests that read `--json` outputs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn schema(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/json-schema")
        .join(format!("{name}.schema.json"))
}

/// The validation errors of `doc` against the schema `name` (empty when valid).
pub fn violations(name: &str, doc: &str) -> String {
    const CHECK: &str = "import json, sys, jsonschema\n\
        schema = json.load(open(sys.argv[1]))\n\
        jsonschema.Draft202012Validator.check_schema(schema)\n\
        v = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)\n\
        for e in v.iter_errors(json.load(sys.stdin)):\n    print(list(e.absolute_path), e.message[:300])\n";
    let mut child = Command::new("python3")
        .args(["-c", CHECK])
        .arg(schema(name))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (scripts/setup.sh installs it with python3-jsonschema)");
    child.stdin.take().unwrap().write_all(doc.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the validator itself failed (is python3-jsonschema installed?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
