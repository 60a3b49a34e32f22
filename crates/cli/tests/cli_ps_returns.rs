//! `svoct ps returns | status` through the real binary: what a PS is shown of a 576 statement,
//! a 900 notice and a free-text ART (issue 11 points 1 and 2). The returns are plain messages
//! delivered to the configured Maildir and fetched with `svoct ps fetch`; the expected amounts,
//! dates and texts are written by hand from the files built here.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use svoct_mail::profile::{Mailbox, MessageHeaders, Profile, Protect, PsCategory, build_message};
use svoct_mail::subject::{MinuteStamp, PartyNumber, ReturnKind, ReturnSubject, Subject};

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

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn setup(dir: &Path) -> PathBuf {
    let cfg = dir.join("ps.toml");
    stdout(&svoct(&cfg, &["init"]));
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("# maildir = \"/var/mail/ps\"", "maildir = \"Maildir\"")
        // The returns built here come from the OCT's address, the example is in direct mode.
        .replace(
            "# senders = [\"retours@oct.example\"]",
            "senders = [\"oct@oct.invalid\"]",
        );
    std::fs::write(&cfg, text).unwrap();
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(dir.join("Maildir").join(sub)).unwrap();
    }
    cfg
}

/// A plain (unencrypted) return message for PS 123456789, dropped in the Maildir.
fn deliver(dir: &Path, n: usize, kind: ReturnKind, file: &[u8]) {
    let profile = match kind {
        ReturnKind::Art => Profile::Art(PsCategory::If),
        _ => Profile::Rsp,
    };
    let at = time::macros::datetime!(2026-11-27 09:30);
    let envelope = MessageHeaders {
        from: Mailbox::new("oct@oct.invalid").unwrap(),
        to: Mailbox::new("ps@ps.invalid").unwrap(),
        subject: Subject::Return(ReturnSubject {
            kind,
            ps_number: PartyNumber::new("123456789").unwrap(),
            timestamp: MinuteStamp::new(at).unwrap(),
        }),
        profile,
        file_name: format!("{}.txt", kind.keyword()),
        date: at.assume_utc(),
        message_id: None,
    };
    let raw = build_message(&envelope, file, Protect::None).unwrap();
    std::fs::write(dir.join(format!("Maildir/new/{n}.test")), raw).unwrap();
}

fn sp(n: usize) -> String {
    " ".repeat(n)
}

/// NOEMIE packaging (b) around `entities` (positions as in `crates/formats/tests/noemie_refs.rs`).
fn noemie(reference: &str, entities: &[String], count: &str, lots: &str, amount: &str) -> Vec<u8> {
    let h = format!(
        "000CP00000000000123NOEMIETP12345678901234{}RSP002261126{reference:<4}{}U{}000{}",
        sp(8),
        sp(4),
        sp(12),
        sp(43)
    );
    let t = format!(
        "999CP00000000000123NOEMIETP12345678901234{}RSP002{count}{}{lots}{amount}P00000000000{}",
        sp(8),
        sp(19),
        sp(20)
    );
    let stream = entities.concat();
    format!("0128{h}\r\n{:04}{stream}\r\n0128{t}\r\n", stream.len()).into_bytes()
}

#[test]
fn returns_and_status_show_576_lines_900_notices_and_the_art_text() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path());
    // 576 paid on 2026-11-25: flat payment 00042 of 150.00 for November, deduction of 25.00.
    let r576 = noemie(
        "576",
        &[
            "02001000000123456789@".to_string(),
            "04002000000123456789@".into(),
            format!("07102261125{:<32}{}CPAM75    @", "VIREMENT FORFAITS", sp(32)),
            format!("0810203{}@", sp(14)),
            "261030004200015000@".into(),
            format!(
                "26204FORF1{:<80}{}000000000M26110126113000015000@",
                "FORFAIT STRUCTURE",
                sp(13)
            ),
            format!("0810205{}@", sp(14)),
            "2500301DETTE00001261015INDRPR00002500N00007500@".into(),
            format!("99002{}0000000300000012500P@", sp(17)),
            format!("99001{}0000000700000012500P@", sp(17)),
        ],
        "00000010",
        "000",
        "00000012500",
    );
    let r900 = noemie(
        "900",
        &[
            "04002000000123456789@".to_string(),
            "08003261120042@".into(),
            format!("10204000001234{}042261120F261119   @", sp(6)),
            format!("2900501R123      {:<80}@", "ASSURE INCONNU DE LA CAISSE"),
            format!("99003{}0000000200000000000P@", sp(17)),
            format!("99002{}0000000300000000000P@", sp(17)),
        ],
        "00000006",
        "001",
        "00000000000",
    );
    let art = "ACCUSE DE RECEPTION TECHNIQUE\r\nMessage recu le 26/11/2026 a 09h05.\r\n\
               Lot 001 : transmis a la CPAM 751.\r\n";
    deliver(dir.path(), 1, ReturnKind::Rsp, &r576);
    deliver(dir.path(), 2, ReturnKind::Rsp, &r900);
    deliver(dir.path(), 3, ReturnKind::Art, art.as_bytes());
    let fetched = svoct(&cfg, &["fetch"]);
    assert!(
        String::from_utf8_lossy(&fetched.stdout).contains("3 new"),
        "{}",
        String::from_utf8_lossy(&fetched.stdout)
    );

    let returns = stdout(&svoct(&cfg, &["returns"]));
    for want in [
        "1 payment(s) and 1 deduction(s) outside invoices (576): 150.00 EUR paid, -25.00 EUR deducted; in all (invoices included) 125.00 EUR",
        "2026-11-25",
        "00042",
        "FORFAIT STRUCTURE",
        "M 2026-11-01..2026-11-30",
        "IND/RPR",
        "debt DETTE00001 of 2026-10-15, balance 75.00",
        "1 insurer reject(s) and notice(s) (900)",
        "000001234",
        "ASSURE INCONNU DE LA CAISSE",
        "    ACCUSE DE RECEPTION TECHNIQUE",
        "    Message recu le 26/11/2026 a 09h05.",
        "    Lot 001 : transmis a la CPAM 751.",
    ] {
        assert!(returns.contains(want), "missing {want:?} in:\n{returns}");
    }
    assert!(!returns.contains("not in the structured form"), "{returns}");

    let status = stdout(&svoct(&cfg, &["status"]));
    let day = status
        .lines()
        .find(|l| l.starts_with("2026-11-25"))
        .unwrap_or_else(|| panic!("no paid day in:\n{status}"));
    let cells: Vec<&str> = day.split_whitespace().collect();
    assert_eq!(cells, ["2026-11-25", "0", "0.00", "150.00", "-25.00", "125.00"]);
    for want in [
        "Payments and deductions outside invoices (576): 2",
        "Insurer rejects and notices (900): 1",
        "OCT receipts (ART): 1",
        "    Lot 001 : transmis a la CPAM 751.",
    ] {
        assert!(status.contains(want), "missing {want:?} in:\n{status}");
    }

    let json: serde_json::Value = serde_json::from_str(&stdout(&svoct(&cfg, &["status", "--json"]))).unwrap();
    assert_eq!(json["paid_per_day"][0]["paid_cents"], 12500);
    assert_eq!(json["payment_lines"][1]["amount_cents"], -2500);
    assert_eq!(json["arts"][0]["text"], art);
}
