//! `svoct inspect` through the real binary: every finding of every format has a `severity`,
//! only errors make an input invalid, and a NOEMIE return of a reference with no payment view
//! (929-like, written here by hand from `docs/formats/noemie.md`) is read as an entity tree.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn svoct(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_svoct"))
        .args(args)
        .env_remove("SVOCT_LOG")
        .output()
        .expect("run svoct")
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn inspect_json(path: &Path) -> (Output, Value) {
    let out = svoct(&["inspect", path.to_str().unwrap(), "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e}): stdout {} stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, v)
}

fn sp(n: usize) -> String {
    " ".repeat(n)
}

/// Header or trailer of a 929-like file: sender number left-padded with spaces, blank currency.
fn record(kind: &str, tail: &str) -> String {
    let r = format!(
        "{kind}OC      12345678AMCSYSTP00000123456789{}F92901{tail}",
        sp(8)
    );
    assert_eq!(r.len(), 128, "{r:?}");
    r
}

fn file_929(top_count: u32) -> Vec<u8> {
    let header = record(
        "000",
        &format!("261120929 {}U{}000{}", sp(4), sp(12), sp(43)).replace('U', " "),
    );
    let trailer = record(
        "999",
        &format!("00000012{}00000000000000P00000000000{}", sp(19), sp(20)),
    );
    let insured = |nir: &str, name: &str| format!("11002{nir}12P{name:<25}{}{:<15}@", sp(26), "JEAN");
    let notice = |code: &str, label: &str| format!("2900301{code:<10}{label:<80}@");
    let control = |level: &str, count: u32| format!("990{level}{}{count:08}00000000000P@", sp(17));
    let entities = [
        "01001AMC TIERS PAYANT 929@".to_string(),
        insured("1850375123456", "MARTIN"),
        notice("R001", "DROITS AMC FERMES"),
        notice("S014", "PIECE A FOURNIR"),
        control("02", 2),
        insured("2900175654321", "DURAND"),
        notice("R007", "ACTE NON PRIS EN CHARGE"),
        "14003XYZ 0042@".to_string(),
        control("02", 2),
        control("01", top_count),
    ];
    // 10 entity lines + header + trailer = the 12 physical records the trailer states.
    let mut out = format!("0128{header}\r\n");
    for e in &entities {
        out.push_str(&format!("{:04}{e}\r\n", e.len()));
    }
    out.push_str(&format!("0128{trailer}\r\n"));
    out.into_bytes()
}

fn severities(v: &Value) -> Vec<(String, String)> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let code = f["code"].as_str().unwrap_or_default().to_string();
            (f["severity"].as_str().expect("severity").to_string(), code)
        })
        .collect()
}

#[test]
fn a_929_return_is_valid_and_shown_as_an_entity_tree() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "r929", &file_929(2));
    let (out, v) = inspect_json(&path);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(v["valid"], true);
    assert_eq!(v["reference"], "929");
    assert_eq!(
        severities(&v),
        [
            ("info".to_string(), "010".to_string()),
            ("info".to_string(), "140".to_string()),
            ("warning".to_string(), "000".to_string()),
        ]
    );
    assert_eq!(v["file_summaries"][0]["view"], "entity_tree");
    assert_eq!(v["file_summaries"][0]["records"], 12);
    assert_eq!(v["payments"], Value::Array(vec![]));
    assert_eq!(v["invoices"], Value::Array(vec![]));
    let root = &v["entities"][0];
    assert_eq!(root["code"], "010");
    let kids: Vec<&str> = root["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    assert_eq!(kids, ["110", "110", "990"]);
    let durand: Vec<&str> = root["children"][1]["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    assert_eq!(durand, ["290", "140", "990"]);
    // The human report says the same, and also exits 0.
    let out = svoct(&["inspect", path.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("EntityTree view") && text.contains("Info:") && text.contains("Warning:"),
        "{text}"
    );
    // The tree, indented by depth: each 290 under the 110 it follows.
    let tree: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.contains("entity tree:"))
        .skip(1)
        .take(11)
        .collect();
    assert_eq!(tree[0], "    010 (no layout) (entity 0)", "{text}");
    assert_eq!(tree[1], "      110 Assuré (entity 1)", "{text}");
    assert_eq!(tree[2], "        290 Rejet ou signalement (entity 2)", "{text}");
    assert_eq!(tree[5], "      110 Assuré (entity 5)", "{text}");
    assert_eq!(tree[7], "        140 (no layout) (entity 7)", "{text}");
    assert_eq!(tree[9], "      990 Entité de contrôle (entity 9)", "{text}");
}

#[test]
fn an_error_finding_makes_the_return_invalid() {
    let dir = tempfile::tempdir().unwrap();
    // The 010's 990 counting all 7 descendants instead of its 2 insured.
    let path = write(dir.path(), "r929", &file_929(7));
    let (out, v) = inspect_json(&path);
    assert!(!out.status.success());
    assert_eq!(v["valid"], false);
    let errors: Vec<_> = severities(&v).into_iter().filter(|(s, _)| s == "error").collect();
    assert_eq!(errors, [("error".to_string(), "990".to_string())]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("invalid noemie") && err.contains("counts 7"),
        "{err}"
    );
}

#[test]
fn every_format_gives_every_finding_a_severity() {
    let dir = tempfile::tempdir().unwrap();
    let b2 = dir.path().join("f.b2");
    let made = svoct(&[
        "gen",
        "--format",
        "single-file",
        "--invoices",
        "3",
        "--out",
        b2.to_str().unwrap(),
    ]);
    assert!(made.status.success());
    let mut bad_b2 = std::fs::read(&b2).unwrap();
    bad_b2[2 * 128 + 30] = b'X';
    let zone = dir.path().join("z");
    let made = svoct(&[
        "gen",
        "--format",
        "zone",
        "--invoices",
        "2",
        "--out",
        zone.to_str().unwrap(),
    ]);
    assert!(made.status.success());
    let mut bad_zone = std::fs::read(&zone).unwrap();
    bad_zone[2] = 0x84;
    let cut_noemie = file_929(2)[..300].to_vec();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("b2-file", bad_b2),
        ("ssv-zone", bad_zone),
        ("arl", b"ARL this is not an ARL".to_vec()),
        ("art", b"ACCUSE DE RECEPTION TECHNIQUE\nnothing else\n".to_vec()),
        ("dloi-increment", b"LOI;not;an;increment\n".to_vec()),
        ("dloi-request", b"DLOI;x\n".to_vec()),
        ("noemie", cut_noemie),
    ];
    for (format, bytes) in cases {
        let path = write(dir.path(), "input", &bytes);
        let (out, v) = inspect_json(&path);
        assert_eq!(v["format"], format, "{v}");
        let sev = severities(&v);
        assert!(!sev.is_empty(), "{format}: {v}");
        for (s, _) in &sev {
            assert!(
                ["error", "warning", "info"].contains(&s.as_str()),
                "{format}: {v}"
            );
        }
        let has_error = sev.iter().any(|(s, _)| s == "error");
        assert_eq!(v["valid"], !has_error, "{format}: {v}");
        assert_eq!(out.status.success(), !has_error, "{format}");
    }
}
