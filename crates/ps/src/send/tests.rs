use svoct_formats::b2::synth::{SynthParams, generate_bytes};
use svoct_mail::cms::PrivateKeyAndCert;
use svoct_mail::profile::{ParseLimits, parse_message};
use svoct_mail::transport::{MemoryTransport, SendError};
use svoct_testkit::certs::TestIdentity;
use svoct_testkit::ps_config;

use super::*;

struct Setup {
    dir: tempfile::TempDir,
    oct_key: PrivateKeyAndCert,
}

fn setup(mode: &str, option: &str) -> (Setup, Ps) {
    let dir = tempfile::tempdir().unwrap();
    let id = TestIdentity::new("oct.test");
    let (key, cert) = id.write_pem(dir.path(), "oct");
    let oct_key = PrivateKeyAndCert::from_files(&key, &cert).unwrap();
    let text = ps_config::base(mode, "ps.sqlite", 25)
        + "[direct.routes.\"100\"]\nmailbox = \"cpam100@am.invalid\"\n"
        + &ps_config::oct_section("oct.crt", option);
    let path = ps_config::write(dir.path(), &text);
    let ps = Ps::open(Config::load(&path).unwrap()).unwrap();
    (Setup { dir, oct_key }, ps)
}

fn lots(seed: u64, invoices: usize) -> LotFile {
    LotFile {
        name: format!("lots-{seed}.b2"),
        bytes: generate_bytes(&SynthParams {
            seed,
            invoices,
            lot_size: 4,
            ..SynthParams::default()
        })
        .unwrap(),
    }
}

fn no_progress(_: &Sent) {}

#[test]
fn single_file_message_is_journaled_encrypted_and_opens_to_the_planned_file() {
    let (s, ps) = setup("oct", "single");
    let t = MemoryTransport::new();
    let input = [lots(1, 10)];
    let planned = ps.plan(&input).unwrap();
    let file = planned[0].bytes.clone();
    let mut seen = 0;
    let sent = ps.send_planned(&t, planned, &mut |_| seen += 1).unwrap();
    assert_eq!(seen, 1);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].status, Status::Sent);
    assert_eq!(sent[0].to, "oct@oct.invalid");

    let captured = t.sent();
    assert_eq!(captured.len(), 1);
    assert_eq!(captured[0].envelope.to, vec!["oct@oct.invalid".to_owned()]);
    let msg = parse_message(&captured[0].raw, &ParseLimits::default()).unwrap();
    assert_eq!(msg.profile_name(), "FACTURE/SV/ZK");
    let subject = msg.subject.to_string();
    // R5.3: SVvvvvvv/exercice/compostage/nnnnn
    let fields: Vec<&str> = subject.split('/').collect();
    assert_eq!(fields[0], "SV140700");
    assert_eq!(fields[2].len(), 19);
    assert_eq!(fields[3], "00010");
    let opened = msg.open(Some(&s.oct_key), &ParseLimits::default()).unwrap();
    assert_eq!(opened.bytes, file);
    // Annex 7.1.1: the exercice is the sender number of the file that travels (000 6-19).
    assert_eq!(fields[1].as_bytes(), &opened.bytes[5..19]);
    assert_eq!(fields[1], "00000123456789");

    let entry = ps.store().journal().get(sent[0].entry).unwrap().unwrap();
    assert_eq!(entry.status, Status::Sent);
    assert_eq!(entry.subject, subject);
    assert_eq!(entry.compostage.as_deref(), Some(fields[2]));
    assert_eq!(entry.profile, "FACTURE/SV/ZK");
    assert_eq!(entry.invoices.len(), 10);
    assert_eq!(entry.lots.len(), 3, "10 invoices in lots of 4");
    assert!(entry.message_id.unwrap().starts_with(fields[2]));
    drop(s);
}

#[test]
fn transient_failure_defers_and_retry_sends_with_a_new_compostage() {
    let (_s, ps) = setup("oct", "single");
    let t = MemoryTransport::new();
    t.fail_next(SendError::transient(
        "SMTP",
        Some(451),
        Some("451 try later".into()),
    ));
    let first = ps.send(&t, &[lots(2, 3)], &mut no_progress).unwrap();
    assert_eq!(first[0].status, Status::Deferred);
    assert!(first[0].answer.contains("451"), "{}", first[0].answer);
    assert!(t.sent().is_empty());

    // The same invoices cannot be sent again by accident while they wait for a retry.
    let e = ps.send(&t, &[lots(2, 3)], &mut no_progress).unwrap_err();
    assert!(e.to_string().contains("svoct ps retry"), "{e}");

    let retried = ps.retry(&t, &mut no_progress).unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].status, Status::Sent);
    assert_ne!(retried[0].compostage, first[0].compostage);
    assert_eq!(t.sent().len(), 1);
    let old = ps.store().journal().get(first[0].entry).unwrap().unwrap();
    assert_eq!(old.status, Status::Failed);
    assert!(
        old.server_answer
            .unwrap()
            .contains(&format!("superseded by entry {}", retried[0].entry.0))
    );
    // Nothing left to retry: never twice.
    assert!(ps.retry(&t, &mut no_progress).unwrap().is_empty());
    assert_eq!(t.sent().len(), 1);
}

#[test]
fn permanent_failure_is_failed_with_the_server_answer_and_not_retried() {
    let (_s, ps) = setup("oct", "single");
    let t = MemoryTransport::new();
    t.fail_next(SendError::permanent(
        "SMTP",
        Some(550),
        Some("550 no such mailbox".into()),
    ));
    let sent = ps.send(&t, &[lots(3, 2)], &mut no_progress).unwrap();
    assert_eq!(sent[0].status, Status::Failed);
    let entry = ps.store().journal().get(sent[0].entry).unwrap().unwrap();
    assert!(entry.server_answer.unwrap().contains("550 no such mailbox"));
    assert!(ps.retry(&t, &mut no_progress).unwrap().is_empty());
    // After a permanent failure the invoices may be sent again.
    let again = ps.send(&t, &[lots(3, 2)], &mut no_progress).unwrap();
    assert_eq!(again[0].status, Status::Sent);
}

#[test]
fn resend_carries_the_same_lots_under_a_new_compostage() {
    let (s, ps) = setup("direct", "single");
    let t = MemoryTransport::new();
    let sent = ps.send(&t, &[lots(4, 5)], &mut no_progress).unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, "cpam100@am.invalid");
    let e = ps.send(&t, &[lots(4, 5)], &mut no_progress).unwrap_err();
    assert!(e.to_string().contains("resend"), "{e}");

    let again = ps.resend(&t, sent[0].entry, false).unwrap();
    assert_ne!(again.compostage, sent[0].compostage);
    assert_ne!(again.entry, sent[0].entry);
    let raws = t.sent();
    assert_eq!(raws.len(), 2);
    let a = parse_message(&raws[0].raw, &ParseLimits::default()).unwrap();
    let b = parse_message(&raws[1].raw, &ParseLimits::default()).unwrap();
    assert_eq!(
        a.profile_name(),
        "FACTURE/SV",
        "no certificate on the route: clear"
    );
    // The file is built again (new file number in the 000 header): the lots are the same bytes.
    let lots_of = |bytes: &[u8]| -> Vec<Vec<u8>> {
        svoct_formats::b2::parse(bytes)
            .unwrap()
            .lots()
            .iter()
            .map(|l| l.bytes().to_vec())
            .collect()
    };
    assert_ne!(a.attachment, b.attachment, "a new file number");
    assert_eq!(lots_of(&a.attachment), lots_of(&b.attachment));
    let link = ps.store().journal().replaces(again.entry).unwrap().unwrap();
    assert_eq!((link.replaces, link.why.as_str()), (sent[0].entry, "resend"));
    assert!(matches!(
        ps.resend(&t, EntryId(999), false),
        Err(PsError::NoEntry(999))
    ));
    drop(s);
}

#[test]
fn a_bad_certificate_stops_the_batch_before_anything_is_journaled() {
    let (s, ps) = setup("oct", "split");
    std::fs::write(s.dir.path().join("oct.crt"), b"not a certificate").unwrap();
    let t = MemoryTransport::new();
    let e = ps.send(&t, &[lots(5, 3)], &mut no_progress).unwrap_err();
    assert!(e.to_string().contains("oct.crt"), "{e}");
    assert!(t.sent().is_empty());
    assert!(ps.journal(None).unwrap().is_empty());
}

#[test]
fn loi_request_goes_to_the_oct_only() {
    let (s, ps) = setup("oct", "single");
    let t = MemoryTransport::new();
    let sent = ps.request_loi(&t, 0).unwrap();
    // The same exercice as the invoice files: the PS's sender number, 14 digits.
    assert!(
        sent.subject.starts_with("DLOI/00000123456789/"),
        "{}",
        sent.subject
    );
    let msg = parse_message(&t.sent()[0].raw, &ParseLimits::default()).unwrap();
    assert_eq!(msg.profile_name(), "LOI/DEMANDE/K");
    let opened = msg.open(Some(&s.oct_key), &ParseLimits::default()).unwrap();
    let request = svoct_formats::loi::DloiRequest::parse(&opened.bytes).unwrap();
    assert_eq!(request.ps_number, "123456789");
    assert_eq!(request.version, 0);

    let (_s2, direct) = setup("direct", "single");
    let e = direct.request_loi(&t, 0).unwrap_err();
    assert!(e.to_string().contains("svoct ps mode oct"), "{e}");
}

#[test]
fn journal_finds_by_subject_glob() {
    let (_s, ps) = setup("oct", "split");
    let t = MemoryTransport::new();
    ps.send(&t, &[lots(6, 3)], &mut no_progress).unwrap();
    ps.request_loi(&t, 0).unwrap();
    assert_eq!(ps.journal(None).unwrap().len(), 2);
    let sv = ps.journal(Some("SV140700/*")).unwrap();
    assert_eq!(sv.len(), 1);
    assert_eq!(sv[0].invoices.len(), 3);
    assert_eq!(ps.journal(Some("DLOI/*")).unwrap().len(), 1);
}

#[test]
fn a_pending_entry_after_a_crash_is_never_resent_automatically() {
    let (_s, ps) = setup("oct", "single");
    let t = MemoryTransport::new();
    let planned = ps.plan(&[lots(7, 3)]).unwrap();
    // What a crash between "journaled" and "outcome recorded" leaves behind.
    let id = ps
        .store()
        .journal()
        .insert(&svoct_store::NewEntry {
            direction: Direction::Out,
            profile: "FACTURE/SV/ZK".into(),
            subject: "SV140700/123456789/2026112606000000000/00003".into(),
            compostage: Some("2026112606000000000".into()),
            message_id: None,
            file_name: Some("000001.b2".into()),
            lots: planned[0].lots.clone(),
            invoices: planned[0].invoices.clone(),
            status: Status::Pending,
        })
        .unwrap();
    assert!(ps.retry(&t, &mut no_progress).unwrap().is_empty());
    let e = ps.send_planned(&t, planned, &mut no_progress).unwrap_err();
    assert!(e.to_string().contains(&format!("journal entry {}", id.0)), "{e}");
    assert!(t.sent().is_empty(), "in doubt: nothing leaves without `resend`");
}

#[test]
fn the_dre_of_an_invoice_already_sent_as_fse_is_not_a_duplicate() {
    let (_s, ps) = setup("direct", "single");
    let t = MemoryTransport::new();
    let fse = lots(8, 2);
    let mut dre = LotFile {
        name: "dre.b2".into(),
        bytes: generate_bytes(&SynthParams {
            seed: 9,
            invoices: 1,
            fse: false,
            dre: true,
            ..SynthParams::default()
        })
        .unwrap(),
    };
    // The DRE of the FSE's first invoice (split at the source): same number, other kind.
    let f = svoct_formats::b2::parse(&fse.bytes).unwrap().lots()[0].invoices()[0].offset();
    let d = svoct_formats::b2::parse(&dre.bytes).unwrap().lots()[0].invoices()[0].offset();
    let number = fse.bytes[f + 26..f + 35].to_vec();
    for inv in svoct_formats::b2::parse(&dre.bytes.clone()).unwrap().lots()[0].invoices() {
        for (i, _) in inv.records().enumerate() {
            let at = d + i * 128;
            dre.bytes[at + 26..at + 35].copy_from_slice(&number);
        }
    }
    ps.send(&t, std::slice::from_ref(&fse), &mut no_progress).unwrap();
    let sent = ps.send(&t, std::slice::from_ref(&dre), &mut no_progress).unwrap();
    assert_eq!(sent.len(), 1);
    // The same DRE again is a duplicate.
    let e = ps.send(&t, &[dre], &mut no_progress).unwrap_err();
    assert!(e.to_string().contains("DRE invoice"), "{e}");
    let e = ps.send(&t, &[fse], &mut no_progress).unwrap_err();
    assert!(e.to_string().contains("FSE invoice"), "{e}");
}

/// The header fields of a raw message, unfolded, in order (an independent reading: no code of
/// the project).
fn raw_headers(raw: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap();
    let mut out: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            out.last_mut().unwrap().1.push_str(line);
        } else {
            let (name, value) = line.split_once(':').unwrap();
            out.push((name.to_owned(), value.trim().to_owned()));
        }
    }
    out
}

/// Annex 4.1.2: option 1 is the direct message, "la seule différence est au niveau du champ
/// destinataire ... et du certificat". Same lots, same numbering: every header and the opened
/// file are equal, but the recipient, and what a fresh message always changes (date, compostage,
/// Message-ID).
#[test]
fn option_1_is_the_direct_message_with_only_recipient_and_certificate_changed() {
    let dir = tempfile::tempdir().unwrap();
    let am = TestIdentity::new("cpam100.test");
    let (am_key, am_cert) = am.write_pem(dir.path(), "am");
    let am_key = PrivateKeyAndCert::from_files(&am_key, &am_cert).unwrap();
    let oct = TestIdentity::new("oct.test");
    let (oct_key, oct_cert) = oct.write_pem(dir.path(), "oct");
    let oct_key = PrivateKeyAndCert::from_files(&oct_key, &oct_cert).unwrap();
    let send_in = |mode: &str, store: &str| {
        let text = ps_config::base(mode, store, 25)
            + "[direct.routes.\"100\"]\nmailbox = \"cpam100@am.invalid\"\ncertificate = \"am.crt\"\n"
            + &ps_config::oct_section("oct.crt", "split");
        let path = dir.path().join(format!("{store}.toml"));
        std::fs::write(&path, text).unwrap();
        let ps = Ps::open(Config::load(&path).unwrap()).unwrap();
        let t = MemoryTransport::new();
        ps.send(&t, &[lots(40, 6)], &mut no_progress).unwrap();
        let sent = t.sent();
        assert_eq!(sent.len(), 1);
        sent[0].raw.clone()
    };
    let direct = send_in("direct", "direct.sqlite");
    let split = send_in("oct", "split.sqlite");
    let (dh, sh) = (raw_headers(&direct), raw_headers(&split));
    let names = |h: &[(String, String)]| h.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&dh),
        names(&sh),
        "the same header fields, in the same order"
    );
    for ((name, d), (_, s)) in dh.iter().zip(&sh) {
        match name.as_str() {
            "To" => {
                assert_eq!(d, "cpam100@am.invalid");
                assert_eq!(s, "oct@oct.invalid");
            }
            "Date" | "Message-ID" => {}
            "Subject" => {
                let (d, s): (Vec<&str>, Vec<&str>) = (d.split('/').collect(), s.split('/').collect());
                assert_eq!((d[0], d[1], d[3]), (s[0], s[1], s[3]), "all but the compostage");
            }
            _ => assert_eq!(d, s, "header {name}"),
        }
    }
    let description = dh.iter().find(|(n, _)| n == "Content-Description").unwrap();
    assert_eq!(description.1, "FACTURE/SV/K", "encrypted, never compressed");
    let limits = ParseLimits::default();
    let d = parse_message(&direct, &limits)
        .unwrap()
        .open(Some(&am_key), &limits)
        .unwrap();
    let s = parse_message(&split, &limits)
        .unwrap()
        .open(Some(&oct_key), &limits)
        .unwrap();
    assert_eq!(d.bytes, s.bytes, "the same file, byte for byte");
    // Each is encrypted for its own recipient only: the certificate is the other difference.
    assert!(
        parse_message(&split, &limits)
            .unwrap()
            .open(Some(&am_key), &limits)
            .is_err()
    );
}

/// The number of the first invoice of `file`'s first lot, written into every record of every
/// invoice of `dre` (a DRE file of one invoice): the DRE of that invoice.
fn dre_of_first_invoice(file: &LotFile, seed: u64) -> LotFile {
    let mut dre = LotFile {
        name: format!("dre-{seed}.b2"),
        bytes: generate_bytes(&SynthParams {
            seed,
            invoices: 1,
            fse: false,
            dre: true,
            ..SynthParams::default()
        })
        .unwrap(),
    };
    let f = svoct_formats::b2::parse(&file.bytes).unwrap().lots()[0].invoices()[0].offset();
    let number = file.bytes[f + 26..f + 35].to_vec();
    let parsed = svoct_formats::b2::parse(&dre.bytes).unwrap();
    let inv = &parsed.lots()[0].invoices()[0];
    let (d, records) = (inv.offset(), inv.records().count());
    drop(parsed);
    for i in 0..records {
        let at = d + i * 128;
        dre.bytes[at + 26..at + 35].copy_from_slice(&number);
    }
    dre
}

fn enriched_lots(seed: u64, invoices: usize) -> LotFile {
    LotFile {
        name: format!("enriched-{seed}.b2"),
        bytes: generate_bytes(&SynthParams {
            seed,
            invoices,
            enriched: true,
            lot_size: 4,
            ..SynthParams::default()
        })
        .unwrap(),
    }
}

/// Issue 11 point 3 (R3.4 across sendings): a DRE sent, then the contract-99 FSE of the same
/// invoice is refused; and the reverse.
#[test]
fn contract_99_and_a_dre_for_one_invoice_are_refused_across_sendings() {
    let (_s, ps) = setup("oct", "enriched");
    let t = MemoryTransport::new();
    let fse = enriched_lots(50, 3);
    let dre = dre_of_first_invoice(&fse, 51);
    ps.send(&t, std::slice::from_ref(&dre), &mut no_progress).unwrap();
    let e = ps
        .send(&t, std::slice::from_ref(&fse), &mut no_progress)
        .unwrap_err();
    assert!(matches!(e, PsError::SplitTwice { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("R3.4") && text.contains("a DRE for the same invoice"),
        "{text}"
    );
    assert_eq!(t.sent().len(), 1, "the FSE did not leave");

    let (_s2, ps) = setup("oct", "enriched");
    let t = MemoryTransport::new();
    let fse = enriched_lots(52, 3);
    let dre = dre_of_first_invoice(&fse, 53);
    ps.send(&t, std::slice::from_ref(&fse), &mut no_progress).unwrap();
    let e = ps.send(&t, &[dre], &mut no_progress).unwrap_err();
    assert!(e.to_string().contains("an FSE with contract type 99"), "{e}");
    assert_eq!(t.sent().len(), 1, "the DRE did not leave");

    // Another invoice's DRE goes.
    let other = LotFile {
        name: "other-dre.b2".into(),
        bytes: generate_bytes(&SynthParams {
            seed: 54,
            invoices: 1,
            fse: false,
            dre: true,
            ..SynthParams::default()
        })
        .unwrap(),
    };
    ps.send(&t, &[other], &mut no_progress).unwrap();
    assert_eq!(t.sent().len(), 2);
}

/// A plain FSE (no contract 99) and its DRE split at the source stay allowed across sendings.
#[test]
fn a_plain_fse_and_its_dre_across_sendings_are_not_refused() {
    let (_s, ps) = setup("oct", "single");
    let t = MemoryTransport::new();
    let fse = lots(55, 2);
    let dre = dre_of_first_invoice(&fse, 56);
    ps.send(&t, std::slice::from_ref(&dre), &mut no_progress).unwrap();
    ps.send(&t, &[fse], &mut no_progress).unwrap();
    assert_eq!(t.sent().len(), 2);
}

/// An ART of the OCT refusing the message of `compostage` as a whole.
fn refusing_art(compostage: &str) -> Vec<u8> {
    use svoct_formats::arl::Stamp;
    use svoct_formats::art::{Art, FileStatus};
    use svoct_formats::noemie::Ymd;
    Art {
        oct_id: "12345678900014".into(),
        ps_number: "123456789".into(),
        received: Stamp {
            date: Ymd::new(2026, 11, 26),
            hour: 9,
            minute: 5,
        },
        compostage: compostage.into(),
        file_name: "000001.b2".into(),
        subject: String::new(),
        profile: "FACTURE/SV/K".into(),
        invoices: 0,
        file_status: FileStatus::Refused,
        file_detail: "dechiffrement impossible: certificat inconnu".into(),
        lots: vec![],
        amc: vec![],
    }
    .build()
    .unwrap()
    .into_bytes()
}

/// Issue 13 point 1 and 2: the OCT refuses a message encrypted for a certificate it no longer
/// uses; the refusal leads `status`; after the PS fixes the certificate, `resend` builds a new
/// message with a new compostage, encrypted for the new certificate (checked with
/// `openssl cms -decrypt`), linked to the refused entry.
#[test]
fn a_message_refused_by_the_oct_is_resent_with_the_certificate_fixed_since() {
    let (s, ps) = setup("oct", "single");
    let t = MemoryTransport::new();
    let first = ps.send(&t, &[lots(21, 6)], &mut no_progress).unwrap();
    let first = &first[0];

    // The ART comes back: refused.
    let inbox = ps
        .store()
        .inbox()
        .store_if_new("test", "art-1", b"raw")
        .unwrap()
        .id();
    let mut msg = crate::reconcile::ClassifiedMessage {
        inbox_id: inbox,
        kind: crate::reconcile::ReturnKind::Art,
        subject: "ART/123456789/202611260905".parse().unwrap(),
        profile: "ART".into(),
        message_id: None,
        file_name: None,
        file: refusing_art(&first.compostage),
    };
    crate::reconcile::handle(ps.store(), ps.config(), &mut msg).unwrap();
    let old = ps.store().journal().get(first.entry).unwrap().unwrap();
    assert_eq!(old.status, Status::Failed);
    let status = crate::status::status_now(&ps).unwrap();
    let lead = status.needs_attention.first().expect("the refusal leads");
    assert_eq!(lead.kind, crate::status::AttentionKind::RefusedByOct);
    assert_eq!(lead.entry, Some(first.entry.0));
    assert!(lead.reason.contains("certificat inconnu"), "{}", lead.reason);
    assert!(status.lots_without_arl.is_empty());

    // The PS fixes the certificate: a new one, B.
    let b = TestIdentity::new("oct-renewed.test");
    let (b_key, b_cert) = b.write_pem(s.dir.path(), "oct-b");
    let path = s.dir.path().join("ps.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("certificate = \"oct.crt\"", "certificate = \"oct-b.crt\"");
    std::fs::write(&path, text).unwrap();
    drop(ps);
    let ps = Ps::open(Config::load(&path).unwrap()).unwrap();
    let again = ps.resend(&t, first.entry, false).unwrap();
    assert_eq!(again.status, Status::Sent);
    assert_ne!(again.compostage, first.compostage);
    let link = ps.store().journal().replaces(again.entry).unwrap().unwrap();
    assert_eq!(link.replaces, first.entry);
    // No longer needs a human: the new entry speaks for it.
    let status = crate::status::status_now(&ps).unwrap();
    assert!(status.needs_attention.is_empty(), "{:?}", status.needs_attention);

    // Decryptable with B's key by OpenSSL, not with A's.
    let msg = parse_message(&t.sent()[1].raw, &ParseLimits::default()).unwrap();
    assert_eq!(
        msg.profile_name(),
        "FACTURE/SV/ZK",
        "single: compressed, then encrypted"
    );
    let der = s.dir.path().join("resent.der");
    std::fs::write(&der, &msg.attachment).unwrap();
    let decrypt = |key: &std::path::Path, cert: &std::path::Path| {
        std::process::Command::new("openssl")
            .args(["cms", "-decrypt", "-inform", "DER", "-in"])
            .arg(&der)
            .arg("-recip")
            .arg(cert)
            .arg("-inkey")
            .arg(key)
            .output()
            .unwrap()
    };
    let with_b = decrypt(&b_key, &b_cert);
    assert!(
        with_b.status.success(),
        "{}",
        String::from_utf8_lossy(&with_b.stderr)
    );
    let planned_lots = svoct_formats::b2::parse(&lots(21, 6).bytes)
        .unwrap()
        .lots()
        .iter()
        .map(|l| l.bytes().to_vec())
        .collect::<Vec<_>>();
    // The provisional compression is gzip (docs/formats): opened by gzip itself.
    let compressed = s.dir.path().join("resent.gz");
    std::fs::write(&compressed, &with_b.stdout).unwrap();
    let plain = std::process::Command::new("gzip")
        .arg("-dc")
        .arg(&compressed)
        .output()
        .unwrap();
    assert!(
        plain.status.success(),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
    let opened = svoct_formats::b2::parse(&plain.stdout)
        .unwrap()
        .lots()
        .iter()
        .map(|l| l.bytes().to_vec())
        .collect::<Vec<_>>();
    assert_eq!(opened, planned_lots);
    let a_key = s.dir.path().join("oct.key");
    let with_a = decrypt(&a_key, &s.dir.path().join("oct.crt"));
    assert!(!with_a.status.success(), "the old certificate cannot open it");
    drop(s.oct_key);
}

/// Issue 13 point 2: a deferred message is in `status` as not sent, with the server's answer,
/// until a retry sends it (the retried entry then speaks for it).
#[test]
fn a_deferred_message_needs_a_human_until_it_is_retried() {
    let (_s, ps) = setup("oct", "single");
    let t = MemoryTransport::new();
    t.fail_next(SendError::transient(
        "SMTP",
        Some(451),
        Some("451 try again later".into()),
    ));
    let sent = ps.send(&t, &[lots(31, 3)], &mut no_progress).unwrap();
    assert_eq!(sent[0].status, Status::Deferred);
    let status = crate::status::status_now(&ps).unwrap();
    assert_eq!(status.needs_attention.len(), 1, "{:?}", status.needs_attention);
    let a = &status.needs_attention[0];
    assert_eq!(a.kind, crate::status::AttentionKind::NotSent);
    assert_eq!(a.entry, Some(sent[0].entry.0));
    assert!(a.reason.contains("451 try again later"), "{}", a.reason);

    let retried = ps.retry(&t, &mut no_progress).unwrap();
    assert_eq!(retried[0].status, Status::Sent);
    let link = ps.store().journal().replaces(retried[0].entry).unwrap().unwrap();
    assert_eq!((link.replaces, link.why.as_str()), (sent[0].entry, "retry"));
    let status = crate::status::status_now(&ps).unwrap();
    assert!(status.needs_attention.is_empty(), "{:?}", status.needs_attention);
}

/// Issue 13 point 6: `ps returns` filters by state, sent date, lot and invoice, and pages.
#[test]
fn returns_view_filters_and_pages() {
    use crate::status::{ReturnsFilter, returns_view};
    let (_s, ps) = setup("oct", "single");
    let t = MemoryTransport::new();
    // 10 invoices in lots of 4: lots 001, 002, 003 (4 + 4 + 2 invoices).
    ps.send(&t, &[lots(51, 10)], &mut no_progress).unwrap();
    let all = returns_view(&ps).unwrap();
    assert_eq!((all.lots.len(), all.invoices.len()), (3, 10));
    let view = |f: ReturnsFilter| {
        let mut v = returns_view(&ps).unwrap();
        f.apply(&mut v);
        v
    };

    let v = view(ReturnsFilter {
        lot: Some("2".into()),
        ..ReturnsFilter::default()
    });
    assert_eq!(v.lots.len(), 1);
    assert_eq!(v.lots[0].number.trim_start_matches('0'), "2");
    assert_eq!(v.invoices.len(), 4);
    assert!(
        v.invoices
            .iter()
            .all(|i| i.lot_number.as_deref().map(|n| n.trim_start_matches('0')) == Some("2"))
    );

    let one = all.invoices[9].number.clone();
    let v = view(ReturnsFilter {
        invoice: Some(one.trim_start_matches('0').to_owned()),
        ..ReturnsFilter::default()
    });
    assert_eq!(v.invoices.len(), 1);
    assert_eq!(v.invoices[0].number, one);
    assert_eq!(v.lots.len(), 1, "the invoice's lot");
    assert_eq!(Some(v.lots[0].number.clone()), v.invoices[0].lot_number);

    let v = view(ReturnsFilter {
        states: vec!["paid".into()],
        ..ReturnsFilter::default()
    });
    assert!(v.lots.is_empty() && v.invoices.is_empty(), "nothing is paid yet");
    let v = view(ReturnsFilter {
        states: vec!["awaiting".into()],
        ..ReturnsFilter::default()
    });
    assert_eq!((v.lots.len(), v.invoices.len()), (3, 10));
    assert!(
        ReturnsFilter {
            states: vec!["lost".into()],
            ..ReturnsFilter::default()
        }
        .check()
        .is_err()
    );

    let today = time::OffsetDateTime::now_utc().date();
    let v = view(ReturnsFilter {
        since: today.next_day(),
        ..ReturnsFilter::default()
    });
    assert!(v.invoices.is_empty(), "nothing sent tomorrow");
    let v = view(ReturnsFilter {
        since: Some(today),
        until: Some(today),
        ..ReturnsFilter::default()
    });
    assert_eq!(v.invoices.len(), 10);

    let v = view(ReturnsFilter {
        offset: 8,
        limit: Some(5),
        ..ReturnsFilter::default()
    });
    assert_eq!(v.invoices.len(), 2, "the last page");
    assert_eq!(v.invoices[0].number, all.invoices[8].number);
    assert_eq!((v.page.invoices_matching, v.page.lots_matching), (10, 3));
    assert!(v.lots.is_empty(), "3 lots, offset 8");
    assert_eq!(v.totals, all.totals, "totals count the whole store");
}
