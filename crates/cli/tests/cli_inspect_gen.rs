//! `svoct gen` and `svoct inspect`, through the real binary.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn svoct(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_svoct"))
        .args(args)
        .env_remove("SVOCT_LOG")
        .output()
        .expect("run svoct")
}

fn gen_to(dir: &Path, name: &str, args: &[&str]) -> std::path::PathBuf {
    let path = dir.join(name);
    let mut all = vec!["gen", "--out", path.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = svoct(&all);
    assert!(
        out.status.success(),
        "gen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

fn inspect_json(path: &Path) -> (Output, Value) {
    let out = svoct(&["inspect", path.to_str().unwrap(), "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "inspect --json printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (out, v)
}

/// stderr is exactly one line starting with `svoct: `.
fn one_line_error(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    let err = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(err.lines().count(), 1, "one line on stderr: {err:?}");
    assert!(err.starts_with("svoct: "), "{err}");
    err
}

#[test]
fn gen_lots_then_inspect_counts_match() {
    let dir = tempfile::tempdir().unwrap();
    let path = gen_to(
        dir.path(),
        "lots.b2",
        &[
            "--seed",
            "7",
            "--invoices",
            "23",
            "--dre",
            "4",
            "--destinations",
            "3",
        ],
    );
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len() % 128, 0);
    assert_eq!(bytes[0], b'1', "bare lots start with a lot header");
    let (out, v) = inspect_json(&path);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(v["format"], "b2-lots");
    assert_eq!(v["valid"], true);
    assert_eq!(v["invoice_count"], 23);
    // 19 FSE invoices over 3 destinations (7, 6, 6) and 4 DRE (2, 1, 1): one lot each.
    assert_eq!(v["lot_count"], 6);
    assert_eq!(v["findings"], Value::Array(vec![]));
    let lots = v["lots"].as_array().unwrap();
    let dre: u64 = lots
        .iter()
        .filter(|l| l["kind"] == "DRE")
        .map(|l| l["invoice_count"].as_u64().unwrap())
        .sum();
    assert_eq!(dre, 4);
    let mut dests: Vec<&str> = lots
        .iter()
        .map(|l| l["destination"]["organisme"].as_str().unwrap())
        .collect();
    dests.sort();
    dests.dedup();
    assert_eq!(dests.len(), 3);
}

#[test]
fn gen_single_file_then_inspect() {
    let dir = tempfile::tempdir().unwrap();
    let path = gen_to(
        dir.path(),
        "file.b2",
        &[
            "--format",
            "single-file",
            "--invoices",
            "12",
            "--lot-size",
            "5",
            "--oct-id",
            "98765432100011",
            "--ps",
            "111111118",
            "--file-id",
            "ABC123",
        ],
    );
    let bytes = std::fs::read(&path).unwrap();
    // The 000 record, positions from b2-records.md (1-based inclusive).
    assert_eq!(&bytes[0..3], b"000");
    assert_eq!(&bytes[25..27], b"OT", "recipient type 26-27");
    assert_eq!(&bytes[27..41], b"98765432100011", "recipient number 28-41");
    assert_eq!(&bytes[47..49], b"TO", "application 48-49");
    assert_eq!(&bytes[49..55], b"ABC123", "file identification 50-55");
    assert_eq!(&bytes[bytes.len() - 128..][..3], b"999");
    let (out, v) = inspect_json(&path);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(v["format"], "b2-file");
    assert_eq!(v["invoice_count"], 12);
    assert_eq!(v["lot_count"], 3, "12 invoices in lots of at most 5");
    assert_eq!(v["findings"], Value::Array(vec![]));
    assert_eq!(v["file_header"]["fields"]["application"], "TO");
    assert_eq!(
        v["lots"][0]["destination"]["organisme"].as_str().unwrap().len(),
        3
    );
    for lot in v["lots"].as_array().unwrap() {
        assert_eq!(lot["kind"], "FSE");
    }
}

#[test]
fn gen_is_deterministic_and_stdout_equals_out_file() {
    let dir = tempfile::tempdir().unwrap();
    // Deterministic once the date and the first lot number are given (not the clock's).
    let fixed = ["--date", "261126", "--first-lot", "7"];
    let mut flags = vec!["--seed", "42", "--invoices", "9", "--enriched"];
    flags.extend(fixed);
    let a = gen_to(dir.path(), "a", &flags);
    let b = svoct(&[&["gen"][..], &flags].concat());
    assert!(b.status.success());
    assert_eq!(std::fs::read(&a).unwrap(), b.stdout);
    flags[1] = "43";
    let c = svoct(&[&["gen"][..], &flags].concat());
    assert_ne!(c.stdout, b.stdout, "another seed gives other bytes");
}

/// Issue 13 point 6: lots are numbered from `--first-lot` and dated `--date`; without them, from
/// the clock: today's date, and a first number that is not always 001.
#[test]
fn gen_numbers_and_dates_lots_from_the_options_and_the_clock() {
    let lots_of = |bytes: &[u8]| -> Vec<(String, String)> {
        let input = svoct_formats::b2::parse(bytes).unwrap();
        input
            .lots()
            .iter()
            .map(|l| (format!("{:03}", l.lot_number().unwrap()), l.date().to_owned()))
            .collect()
    };
    let out = svoct(&[
        "gen",
        "--invoices",
        "6",
        "--lot-size",
        "2",
        "--first-lot",
        "998",
        "--date",
        "250301",
    ]);
    assert!(out.status.success());
    let got = lots_of(&out.stdout);
    let expected: Vec<(String, String)> = ["998", "999", "001"]
        .iter()
        .map(|n| ((*n).to_owned(), "250301".to_owned()))
        .collect();
    assert_eq!(got, expected, "numbered from --first-lot, wrapping after 999");

    let now = time::OffsetDateTime::now_utc();
    let before = now.hour() as u64 * 60 + now.minute() as u64;
    let out = svoct(&["gen", "--invoices", "2"]);
    let after = {
        let t = time::OffsetDateTime::now_utc();
        t.hour() as u64 * 60 + t.minute() as u64
    };
    assert!(out.status.success());
    let got = lots_of(&out.stdout);
    let today = format!(
        "{:02}{:02}{:02}",
        now.year() % 100,
        u8::from(now.month()),
        now.day()
    );
    assert_eq!(got[0].1, today, "dated today by default");
    let number: u64 = got[0].0.parse().unwrap();
    assert!(
        [before, after].iter().any(|m| number == 1 + m % 999),
        "first lot {number} from the minute of the day ({before} or {after})"
    );
    let bad = svoct(&["gen", "--first-lot", "1000"]);
    assert!(one_line_error(&bad).contains("--first-lot"));
}

#[test]
fn gen_refuses_bad_flags_with_one_line() {
    let out = svoct(&["gen", "--invoices", "3", "--dre", "4"]);
    let err = one_line_error(&out);
    assert!(err.contains("--dre 4"), "{err}");
    let out = svoct(&["gen", "--ps", "12ab"]);
    let err = one_line_error(&out);
    assert!(err.contains("--ps"), "{err}");
    let out = svoct(&["gen", "--invoices", "0"]);
    let err = one_line_error(&out);
    assert!(err.contains("--invoices"), "{err}");
}

#[test]
fn gen_zone_is_detected_and_counts_match() {
    let dir = tempfile::tempdir().unwrap();
    let path = gen_to(
        dir.path(),
        "lots.zone",
        &[
            "--format",
            "zone",
            "--invoices",
            "11",
            "--dre",
            "3",
            "--destinations",
            "2",
        ],
    );
    let (out, v) = inspect_json(&path);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(v["format"], "ssv-zone");
    assert_eq!(v["lot_count"], 4, "8 FSE over 2 destinations, 3 DRE over 2");
    assert_eq!(v["invoice_count"], 11);
    assert_eq!(v["findings"], Value::Array(vec![]));
    let ids: Vec<u64> = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![12, 13, 13, 92, 93, 93, 14]);

    // An independent decoder of the grammar of formats.md section 1, in Python.
    let script = r#"
import sys
data = open(sys.argv[1], 'rb').read()
def length(buf, i):
    b = buf[i]
    if b < 0x80:
        return b, i + 1
    n = b - 0x80
    assert 1 <= n <= 4
    return int.from_bytes(buf[i + 1:i + 1 + n], 'big'), i + 1 + n
i = 0
out = []
while i < len(data):
    gid = int.from_bytes(data[i:i + 2], 'big')
    glen, i = length(data, i + 2)
    end = i + glen
    fields = []
    while i < end:
        flen, i = length(data, i)
        fields.append(data[i:i + flen])
        i += flen
    assert i == end
    out.append((gid, fields))
lots = [f for gid, f in out if gid in (13, 93)]
print(len(lots), sum(int(f[3]) for f in lots), out[0][1][4].decode(), out[0][1][5].decode(),
      lots[0][6].decode(), sum(len(f[8]) % 128 for f in lots))
"#;
    let py = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
        .expect("python3");
    assert!(py.status.success(), "{}", String::from_utf8_lossy(&py.stderr));
    assert_eq!(
        String::from_utf8(py.stdout).unwrap().trim(),
        "4 11 TO OT 140700 0"
    );
}

#[test]
fn corrupted_b2_fails_with_record_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = gen_to(
        dir.path(),
        "f.b2",
        &["--format", "single-file", "--invoices", "4"],
    );
    let good = std::fs::read(&path).unwrap();

    // A letter inside the invoice number (type 2, positions 27-35) of record 2.
    let mut bad = good.clone();
    assert_eq!(bad[2 * 128], b'2');
    bad[2 * 128 + 30] = b'X';
    std::fs::write(&path, &bad).unwrap();
    let (out, v) = inspect_json(&path);
    let err = one_line_error(&out);
    assert!(err.contains("record 2"), "{err}");
    assert!(err.contains(&format!("offset {}", 2 * 128 + 26)), "{err}");
    assert_eq!(v["valid"], false);
    assert!(!v["findings"].as_array().unwrap().is_empty());

    // A record type that does not exist.
    let mut bad = good.clone();
    bad[3 * 128] = b'8';
    std::fs::write(&path, &bad).unwrap();
    let out = svoct(&["inspect", path.to_str().unwrap()]);
    let err = one_line_error(&out);
    assert!(err.contains("record 3"), "{err}");
    assert!(err.contains("offset 384"), "{err}");

    // Truncated.
    std::fs::write(&path, &good[..good.len() - 10]).unwrap();
    let out = svoct(&["inspect", path.to_str().unwrap()]);
    let err = one_line_error(&out);
    assert!(err.contains("not a multiple of 128"), "{err}");
    assert!(err.contains("offset"), "{err}");
}

#[test]
fn corrupted_zone_fails_with_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = gen_to(dir.path(), "z", &["--format", "zone", "--invoices", "2"]);
    let good = std::fs::read(&path).unwrap();
    // Group 12 comes first: id 00 0C, then a short length; make the length overrun.
    assert_eq!(&good[..2], &[0x00, 0x0C]);
    let mut bad = good.clone();
    bad[2] = 0x84;
    std::fs::write(&path, &bad).unwrap();
    let (out, v) = inspect_json(&path);
    assert_eq!(v["format"], "ssv-zone");
    let err = one_line_error(&out);
    assert!(err.contains("offset 0") && err.contains("group 12"), "{err}");
    // Cut inside the last group.
    std::fs::write(&path, &good[..good.len() - 1]).unwrap();
    let out = svoct(&["inspect", path.to_str().unwrap()]);
    let err = one_line_error(&out);
    assert!(err.contains("group 14"), "{err}");
    // Invoice count of the lot group disagreeing with the embedded lot: findings, non-zero.
    let zone = svoct_formats::zone::Zone::decode(&good).unwrap();
    let mut model = zone.to_buf();
    let lot = model.groups.iter_mut().find(|g| g.id == 13).unwrap();
    lot.set(4, "9");
    std::fs::write(&path, model.encode().unwrap()).unwrap();
    let (out, v) = inspect_json(&path);
    let err = one_line_error(&out);
    assert!(err.contains("invoice_count"), "{err}");
    assert_eq!(v["valid"], false);
}

#[test]
fn unknown_and_missing_files_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.txt");
    std::fs::write(&path, b"hello, this is not a B2 file").unwrap();
    let out = svoct(&["inspect", path.to_str().unwrap()]);
    let err = one_line_error(&out);
    assert!(err.contains("unrecognised format"), "{err}");
    let out = svoct(&["inspect", dir.path().join("absent").to_str().unwrap()]);
    let err = one_line_error(&out);
    assert!(err.contains("cannot open"), "{err}");
}

#[test]
fn text_report_names_fields() {
    let dir = tempfile::tempdir().unwrap();
    let path = gen_to(
        dir.path(),
        "f",
        &["--format", "single-file", "--invoices", "1", "--first-lot", "1"],
    );
    let out = svoct(&["inspect", path.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("b2-file: "), "{text}");
    assert!(text.contains("file_id"), "{text}");
    assert!(text.contains("Identification du fichier"), "{text}");
    assert!(text.contains("lot 0: number 1, FSE"), "{text}");
}

/// SplitMix64, for reproducible mutations without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Flip, insert, delete bytes or truncate, 1 to 4 times.
fn mutate(rng: &mut Rng, good: &[u8]) -> Vec<u8> {
    let mut b = good.to_vec();
    for _ in 0..1 + rng.below(4) {
        let n = b.len();
        match rng.below(4) {
            0 if n > 0 => {
                let i = rng.below(n);
                b[i] = rng.next() as u8;
            }
            1 => {
                let i = rng.below(n + 1);
                b.insert(i, rng.next() as u8);
            }
            2 if n > 0 => {
                let i = rng.below(n);
                b.remove(i);
            }
            _ => b.truncate(rng.below(n + 1)),
        }
    }
    b
}

#[test]
fn inspect_never_panics_on_mutated_files() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = [
        gen_to(
            dir.path(),
            "f",
            &["--format", "single-file", "--invoices", "3", "--enriched"],
        ),
        gen_to(dir.path(), "l", &["--invoices", "2", "--dre", "1"]),
        gen_to(
            dir.path(),
            "z",
            &["--format", "zone", "--invoices", "2", "--dre", "1"],
        ),
    ];
    let mut rng = Rng(2026);
    let path = dir.path().join("mutant");
    for good in &inputs {
        let good = std::fs::read(good).unwrap();
        for _ in 0..80 {
            let bad = mutate(&mut rng, &good);
            std::fs::write(&path, &bad).unwrap();
            let out = svoct(&["inspect", path.to_str().unwrap(), "--json"]);
            let code = out.status.code();
            assert!(
                matches!(code, Some(0) | Some(2)),
                "exit {code:?} (panic?) on a mutant: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.stderr
                    .split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .count()
                    <= 1
            );
            if !out.stdout.is_empty() {
                let v: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
                assert_eq!(v["valid"], code == Some(0));
            }
        }
    }
}

#[test]
fn parsers_never_panic_on_random_and_mutated_bytes() {
    let lots = svoct(&["gen", "--invoices", "4", "--enriched", "--dre", "1"]).stdout;
    let file = svoct(&["gen", "--format", "single-file", "--invoices", "3"]).stdout;
    let zone = svoct(&["gen", "--format", "zone", "--invoices", "2"]).stdout;
    let mut rng = Rng(7);
    for i in 0..3000 {
        let data = match i % 4 {
            0 => mutate(&mut rng, &lots),
            1 => mutate(&mut rng, &file),
            2 => mutate(&mut rng, &zone),
            _ => (0..rng.below(600)).map(|_| rng.next() as u8).collect(),
        };
        svoct_formats::b2::fuzz_parse(&data);
        svoct_formats::zone::fuzz_decode(&data);
    }
}

#[test]
fn files_over_one_gib_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge");
    // Sparse: no disk space used, nothing read.
    let f = std::fs::File::create(&path).unwrap();
    f.set_len((1 << 30) + 1).unwrap();
    drop(f);
    let out = svoct(&["inspect", path.to_str().unwrap()]);
    let err = one_line_error(&out);
    assert!(err.contains("exceeds the limit of 1073741824 bytes"), "{err}");
}

#[test]
fn inspect_reads_stdin() {
    let zone = svoct(&["gen", "--format", "zone", "--invoices", "1"]).stdout;
    let mut child = Command::new(env!("CARGO_BIN_EXE_svoct"))
        .args(["inspect", "-", "--json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&zone).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["format"], "ssv-zone");
    assert_eq!(v["invoice_count"], 1);
}
