//! Issue 11, OCT side: a single file for another OCT is refused (R3.2), contract 99 and DRE
//! exclude each other within a file and across what was forwarded (R3.4), the ART echoes what
//! was received even when it cannot be parsed (R5.6) and gives Paris local time. Every ART is
//! read independently of the code under test: Python's `email` package decodes the message, and
//! the machine block lines are checked as text.

mod pipeline_common;

use pipeline_common::*;
use svoct_formats::b2::{self, SingleFileParams, synth};
use svoct_oct::pipeline::{Incoming, Pipeline};
use svoct_oct::state::{OutKind, Processed};

fn run(world: &World, raw: &[u8], env: &mut TestEnv) -> Processed {
    let config = world.config();
    let keys = world.keys();
    let rcpt = vec![OCT_ADDRESS.to_string()];
    Pipeline::new(&config, &keys)
        .process(
            Incoming {
                spool_id: "0000000000000007",
                mail_from: PS_ADDRESS,
                rcpt_to: &rcpt,
                raw,
            },
            env,
        )
        .expect("no infrastructure error")
}

/// What Python's `email` reads in an ART message: its subject, its `Content-Description`, and
/// the decoded text of its attachment.
struct PyArt {
    subject: String,
    description: String,
    body: String,
}

const PY_READ_ART: &str = r#"
import sys, email, json
from email import policy
msg = email.message_from_bytes(sys.stdin.buffer.read(), policy=policy.compat32)
body = None
for part in msg.walk():
    if part.get_content_maintype() == "multipart":
        continue
    data = part.get_payload(decode=True)
    if data:
        body = data.decode("utf-8")
print(json.dumps({"subject": msg["Subject"], "description": msg["Content-Description"], "body": body}))
"#;

fn python_art(raw: &[u8]) -> PyArt {
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .args(["-c", PY_READ_ART])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().expect("stdin").write_all(raw).expect("write");
    let out = child.wait_with_output().expect("python3 runs");
    assert!(out.status.success(), "python3 failed");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
    PyArt {
        subject: s("subject"),
        description: s("description"),
        body: s("body"),
    }
}

/// The one ART of `p`, read by Python.
fn the_art(p: &Processed) -> PyArt {
    let arts: Vec<_> = p.outgoing.iter().filter(|o| o.kind == OutKind::Art).collect();
    assert_eq!(arts.len(), 1, "{:?}", p.summary);
    assert_eq!(arts[0].rcpt, PS_ADDRESS);
    let art = python_art(&arts[0].raw);
    assert!(art.subject.starts_with("ART/123456789/"), "{}", art.subject);
    assert_eq!(art.description, "ART/ER");
    art
}

/// The machine-block line starting with `prefix` (e.g. `FICHIER;`).
fn line<'a>(art: &'a PyArt, prefix: &str) -> &'a str {
    art.body
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} line in\n{}", art.body))
}

fn forwards(p: &Processed) -> usize {
    p.outgoing
        .iter()
        .filter(|o| matches!(o.kind, OutKind::Forward | OutKind::Amc))
        .count()
}

fn single_file_for(oct_id: &str, lots: &[u8]) -> Vec<u8> {
    let input = b2::parse(lots).expect("lots");
    b2::build_single_file(
        input.lots(),
        &SingleFileParams {
            sender_type: "TP".into(),
            oct_id: oct_id.into(),
            file_id: "F00001".into(),
            date: "261126".into(),
            message: String::new(),
        },
    )
    .expect("single file")
}

#[test]
fn a_single_file_for_another_oct_is_refused_and_the_art_says_why() {
    let world = World::new(2525, "");
    let lots = synth::generate_bytes(&synth(5, 1, false, 3)).expect("lots");
    let file = single_file_for("99999999999999", &lots);
    let raw = ps_message(&world, PS_ADDRESS, &file, PS_NUMBER, 5, 1, false);
    let p = run(&world, &raw, &mut TestEnv::new());
    let q = p.quarantine.as_ref().expect("quarantined");
    assert_eq!(q.code, "other_oct");
    assert_eq!(q.raw, raw, "kept as received");
    assert_eq!(forwards(&p), 0, "nothing forwarded");
    let art = the_art(&p);
    let fichier = line(&art, "FICHIER;");
    assert!(
        fichier.starts_with("FICHIER;REFUSE;fichier adresse a un autre OCT"),
        "{fichier}"
    );
    assert!(
        fichier.contains("99999999999999") && fichier.contains(OCT_ID),
        "{fichier}"
    );
    assert!(line(&art, "LOT;").ends_with(&format!("NON_TRANSMIS;{}", &fichier["FICHIER;REFUSE;".len()..])));
    // The human part says it too.
    assert!(
        art.body
            .contains("Message REFUSE : fichier adresse a un autre OCT"),
        "{}",
        art.body
    );

    // The same lots addressed to this OCT, its identifier written with leading zeros removed
    // and re-padded as the PS does, are forwarded.
    let ours = single_file_for(OCT_ID, &lots);
    let raw = ps_message(&world, PS_ADDRESS, &ours, PS_NUMBER, 5, 2, false);
    let p = run(&world, &raw, &mut TestEnv::new());
    assert!(p.quarantine.is_none(), "{:?}", p.summary);
    assert_eq!(forwards(&p), 1);
}

/// Replaces the first occurrence of `from` by `to` in the message's headers.
fn mangle(raw: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(raw.to_vec()).expect("ascii message");
    let (head, body) = text.split_once("\r\n\r\n").expect("header section");
    assert!(head.contains(from), "{from} not in\n{head}");
    format!("{}\r\n\r\n{body}", head.replacen(from, to, 1)).into_bytes()
}

#[test]
fn an_unparseable_subject_is_echoed_in_the_art_with_a_french_reason() {
    let world = World::new(2525, "");
    let file = single_file(&synth(5, 1, false, 1));
    let good = ps_message(&world, PS_ADDRESS, &file, PS_NUMBER, 5, 1, false);
    let compostage = compostage(1).to_string();
    let sent = format!("SV140700/{PS_NUMBER}/{compostage}/5 factures");
    let raw = mangle(&good, &format!("SV140700/{PS_NUMBER}/{compostage}/00005"), &sent);
    let p = run(&world, &raw, &mut TestEnv::new());
    assert_eq!(
        p.quarantine.as_ref().expect("quarantined").code,
        "unreadable_message"
    );
    let art = the_art(&p);
    // Today's main sent `MESSAGE;;;0`: the PS could not tell which message was refused.
    assert_eq!(line(&art, "MESSAGE;"), format!("MESSAGE;{sent};FACTURE/SV/K;0"));
    assert!(
        line(&art, "RECU;").contains(&format!(";{compostage};")),
        "{}",
        art.body
    );
    assert!(art.body.contains(&sent), "the human part shows it too");
    let fichier = line(&art, "FICHIER;");
    assert!(
        fichier.starts_with("FICHIER;REFUSE;message illisible"),
        "{fichier}"
    );

    // An unknown Content-Description: echoed as received.
    let raw = mangle(
        &good,
        "Content-Description: FACTURE/SV/K",
        "Content-Description: FACTURE/XX/K",
    );
    let p = run(&world, &raw, &mut TestEnv::new());
    let art = the_art(&p);
    let message = line(&art, "MESSAGE;");
    assert!(
        message.starts_with(&format!(
            "MESSAGE;SV140700/{PS_NUMBER}/{compostage}/00005;FACTURE/XX/K;"
        )),
        "{message}"
    );
}

const PY_PARIS_NOW: &str = r#"
import datetime, zoneinfo
now = datetime.datetime.now(zoneinfo.ZoneInfo("Europe/Paris"))
print(now.strftime("%Y%m%d%H%M"))
"#;

/// Minutes since the epoch of a local `AAAAMMJJhhmm` (the calendar arithmetic only: both sides
/// are Paris time).
fn minutes(stamp: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| stamp[r].parse::<i64>().expect("digits");
    let date = time::Date::from_calendar_date(
        i32::try_from(n(0..4)).expect("year"),
        time::Month::try_from(u8::try_from(n(4..6)).expect("month")).expect("month"),
        u8::try_from(n(6..8)).expect("day"),
    )
    .expect("date");
    i64::from(date.to_julian_day()) * 1440 + n(8..10) * 60 + n(10..12)
}

#[test]
fn the_art_gives_paris_local_time() {
    let world = World::new(2525, "");
    let file = single_file(&synth(5, 1, false, 1));
    let raw = ps_message(&world, PS_ADDRESS, &file, PS_NUMBER, 5, 1, false);
    let before = std::process::Command::new("python3")
        .args(["-c", PY_PARIS_NOW])
        .output()
        .expect("python3");
    let p = run(&world, &raw, &mut TestEnv::new());
    let after = std::process::Command::new("python3")
        .args(["-c", PY_PARIS_NOW])
        .output()
        .expect("python3");
    let art = the_art(&p);
    let recu = line(&art, "RECU;");
    let stamp = &recu[5..17];
    let bounds = |o: &std::process::Output| minutes(String::from_utf8_lossy(&o.stdout).trim());
    // Python's zoneinfo (the system tz database) is the reference: the stamp lies between
    // Paris time read just before and just after the processing.
    assert!(
        (bounds(&before)..=bounds(&after)).contains(&minutes(stamp)),
        "{recu} not between {:?} and {:?}",
        String::from_utf8_lossy(&before.stdout),
        String::from_utf8_lossy(&after.stdout)
    );
}

/// Lots of PS `PS_NUMBER` whose first invoice numbers are the same (same seed): a DRE lot dated
/// 25/11 and an enriched FSE lot (contract 99) dated 26/11.
fn dre_and_contract_99_lots() -> (Vec<u8>, Vec<u8>) {
    let dre = synth::SynthParams {
        fse: false,
        dre: true,
        date: "261125".into(),
        ..synth(3, 1, false, 11)
    };
    let enriched = synth(3, 1, true, 11);
    let dre = synth::generate_bytes(&dre).expect("DRE lot");
    let enriched = synth::generate_bytes(&enriched).expect("enriched lot");
    // The fixture itself: invoice numbers shared, natures DRE and contract 99.
    let numbers = |bytes: &[u8], kind: b2::LotKind| -> Vec<u64> {
        let input = b2::parse(bytes).expect("lots");
        input
            .lots()
            .iter()
            .inspect(|l| assert_eq!(l.kind(), kind))
            .flat_map(|l| l.invoices().iter().filter_map(|i| i.number()).collect::<Vec<_>>())
            .collect()
    };
    assert_eq!(
        numbers(&dre, b2::LotKind::Dre),
        numbers(&enriched, b2::LotKind::Fse)
    );
    let input = b2::parse(&enriched).expect("lots");
    assert!(
        input
            .lots()
            .iter()
            .flat_map(|l| l.invoices())
            .all(|i| i.contract_type() == "99")
    );
    (dre, enriched)
}

/// A world whose AMC table routes every AMC number of `lots` (the generator draws them).
fn world_routing_amc_of(lots: &[u8]) -> World {
    let input = b2::parse(lots).expect("lots");
    let amcs: std::collections::BTreeSet<String> = input
        .lots()
        .iter()
        .flat_map(|l| l.invoices().iter().map(|i| i.amc_number().to_string()))
        .filter(|a| a != "AMC0000001")
        .collect();
    let extra: String = amcs
        .iter()
        .map(|a| {
            format!("[[amc]]\norganisation = \"{a}\"\nmailbox = \"mutuelle@amc.example\"\nplaintext = true\n")
        })
        .collect();
    World::new(2525, &extra)
}

#[test]
fn dre_and_contract_99_for_one_invoice_in_one_file_are_refused() {
    let (dre, enriched) = dre_and_contract_99_lots();
    let world = world_routing_amc_of(&enriched);
    let file = single_file_for(OCT_ID, &[dre, enriched].concat());
    let raw = ps_message(&world, PS_ADDRESS, &file, PS_NUMBER, 6, 1, false);
    let p = run(&world, &raw, &mut TestEnv::new());
    assert_eq!(p.quarantine.as_ref().expect("quarantined").code, "exclusivity");
    assert_eq!(forwards(&p), 0, "neither the DRE nor the FSE goes out");
    let art = the_art(&p);
    let fichier = line(&art, "FICHIER;");
    assert!(fichier.starts_with("FICHIER;REFUSE;la facture "), "{fichier}");
    assert!(
        fichier.contains("a la fois une DRE et une FSE de type de contrat 99"),
        "{fichier}"
    );
}

#[test]
fn contract_99_after_a_forwarded_dre_of_the_same_invoice_is_refused_and_the_reverse() {
    let (dre, enriched) = dre_and_contract_99_lots();
    let world = world_routing_amc_of(&enriched);
    for (first, second, first_label) in [
        (&dre, &enriched, "DRE"),
        (&enriched, &dre, "FSE de type de contrat 99"),
    ] {
        let mut env = TestEnv::new();
        let raw = ps_message(
            &world,
            PS_ADDRESS,
            &single_file_for(OCT_ID, first),
            PS_NUMBER,
            3,
            1,
            false,
        );
        let p = run(&world, &raw, &mut env);
        assert!(p.quarantine.is_none(), "{:?}", p.summary);
        assert!(forwards(&p) >= 1);
        env.record(&p);

        let raw = ps_message(
            &world,
            PS_ADDRESS,
            &single_file_for(OCT_ID, second),
            PS_NUMBER,
            3,
            2,
            false,
        );
        let p = run(&world, &raw, &mut env);
        assert_eq!(
            forwards(&p),
            0,
            "the second nature of the invoices is not forwarded"
        );
        assert!(p.claims.invoices.is_empty() && p.claims.lots.is_empty());
        let art = the_art(&p);
        let lot = line(&art, "LOT;");
        assert!(lot.contains(";REFUSE;la facture "), "{lot}");
        assert!(
            lot.contains(&format!(
                "a deja ete transmise comme {first_label} a organisation 100"
            )),
            "{lot}"
        );
        assert!(lot.contains("(heure de Paris)"), "{lot}");
    }
}

/// Sends `raw` from the PS to the running OCT with Python's smtplib (an independent client).
fn smtplib_send(world: &World, port: u16, raw: &[u8], name: &str) {
    let path = world.dir.path().join(name);
    std::fs::write(&path, raw).expect("write");
    let script = format!(
        "import smtplib\ns=smtplib.SMTP('127.0.0.1',{port})\ns.sendmail('{PS_ADDRESS}',['{OCT_ADDRESS}'],open('{}','rb').read())\ns.quit()\n",
        path.display()
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The ART delivered to the PS mailbox after the `seen` ones, read by Python.
fn next_art(exim: &svoct_testkit::Exim, seen: &mut std::collections::BTreeSet<std::path::PathBuf>) -> PyArt {
    let wait = std::time::Duration::from_secs(60);
    exim.wait_for_messages("ps1", seen.len() + 1, wait)
        .expect("an ART");
    let new: Vec<_> = exim
        .messages("ps1")
        .into_iter()
        .filter(|p| !seen.contains(p))
        .collect();
    assert_eq!(new.len(), 1, "one ART per message");
    seen.extend(new.iter().cloned());
    let art = python_art(&std::fs::read(&new[0]).expect("read ART"));
    assert!(art.subject.starts_with("ART/123456789/"), "{}", art.subject);
    art
}

/// Through the running service, over SMTP and a real Exim, with its SQLite state: a DRE file is
/// forwarded; the same invoices as contract-99 FSE in a later message are refused (R3.4 across
/// messages, from the committed index); a single file for another OCT is refused (R3.2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_oct_refuses_contract_99_after_dre_and_files_for_another_oct() {
    let exim = svoct_testkit::Exim::start(&svoct_testkit::EximConfig {
        mailboxes: &["cpam100", "cpam101", "caisse102", "mutuelle", "ps1"],
        ..svoct_testkit::EximConfig::default()
    })
    .expect("exim");
    let (dre, enriched) = dre_and_contract_99_lots();
    let input = b2::parse(&enriched).expect("lots");
    let extra: String = input
        .lots()
        .iter()
        .flat_map(|l| l.invoices().iter().map(|i| i.amc_number().to_string()))
        .collect::<std::collections::BTreeSet<_>>()
        .iter()
        .map(|a| {
            format!("[[amc]]\norganisation = \"{a}\"\nmailbox = \"mutuelle@amc.example\"\nplaintext = true\n")
        })
        .collect();
    let world = World::new(exim.port(), &extra);
    let running = svoct_oct::service::Running::start(world.config())
        .await
        .expect("service starts");
    let port = running.local_addr().expect("listening").port();
    let mut seen = std::collections::BTreeSet::new();

    let first = ps_message(
        &world,
        PS_ADDRESS,
        &single_file_for(OCT_ID, &dre),
        PS_NUMBER,
        3,
        1,
        false,
    );
    smtplib_send(&world, port, &first, "dre.eml");
    let art = next_art(&exim, &mut seen);
    assert!(line(&art, "LOT;").contains(";DRE;3;TRANSMIS;"), "{}", art.body);

    let second = ps_message(
        &world,
        PS_ADDRESS,
        &single_file_for(OCT_ID, &enriched),
        PS_NUMBER,
        3,
        2,
        false,
    );
    smtplib_send(&world, port, &second, "fse99.eml");
    let art = next_art(&exim, &mut seen);
    let lot = line(&art, "LOT;");
    assert!(lot.contains(";FSE;3;REFUSE;la facture "), "{lot}");
    assert!(lot.contains("a deja ete transmise comme DRE"), "{lot}");

    let lots = synth::generate_bytes(&synth(4, 1, false, 21)).expect("lots");
    let third = ps_message(
        &world,
        PS_ADDRESS,
        &single_file_for("99999999999999", &lots),
        PS_NUMBER,
        4,
        3,
        false,
    );
    smtplib_send(&world, port, &third, "other-oct.eml");
    let art = next_art(&exim, &mut seen);
    assert!(
        line(&art, "FICHIER;").starts_with("FICHIER;REFUSE;fichier adresse a un autre OCT"),
        "{}",
        art.body
    );

    exim.wait_for_messages("cpam100", 1, std::time::Duration::from_secs(60))
        .expect("the DRE file forwarded");
    running.shutdown().await;
    // What reached the AM: the DRE lot only (one file to cpam100), nothing for the AMC.
    assert_eq!(exim.messages("cpam100").len(), 1);
    assert!(exim.messages("mutuelle").is_empty());
    assert!(exim.messages("cpam101").is_empty() && exim.messages("caisse102").is_empty());
}

/// Point 13: a DRE-only single file travels under `SV…` / `FACTURE/SV` (R5, what the PS now
/// sends); the `DR…` / `FACTURE/DR` envelope earlier PS software put on it is still accepted
/// (tolerance: the header, not the envelope, says it is a single file). Either way the DRE lots
/// leave in a DRE file under the direct-mode DRE profile.
#[test]
fn a_dre_only_single_file_is_accepted_under_either_envelope() {
    let world = World::new(2525, "");
    let (dre, _) = dre_and_contract_99_lots();
    let file = single_file_for(OCT_ID, &dre);
    let sv = ps_message(&world, PS_ADDRESS, &file, PS_NUMBER, 3, 1, false);
    let compostage = compostage(1).to_string();
    let dr = mangle(
        &mangle(
            &sv,
            &format!("SV140700/{PS_NUMBER}/{compostage}"),
            &format!("DR140700/{PS_NUMBER}/{compostage}"),
        ),
        "Content-Description: FACTURE/SV/K",
        "Content-Description: FACTURE/DR/K",
    );
    for raw in [sv, dr] {
        let p = run(&world, &raw, &mut TestEnv::new());
        assert!(p.quarantine.is_none(), "{:?}", p.summary);
        let fwd: Vec<_> = p.outgoing.iter().filter(|o| o.kind == OutKind::Forward).collect();
        assert_eq!(fwd.len(), 1);
        let head = String::from_utf8_lossy(&fwd[0].raw);
        assert!(head.contains("Content-Description: FACTURE/DR"), "{head:.600}");
        assert!(line(&the_art(&p), "FICHIER;").starts_with("FICHIER;ACCEPTE;"));
    }
}
