//! Retrieval from a Maildir: store before delete, classification, decryption, quarantine.

mod common;

use svoct_mail::maildir::Maildir;
use svoct_mail::subject::ReturnKind;
use svoct_ps::Ps;
use svoct_ps::config::Config;
use svoct_store::{Direction, InboxState, Status};
use svoct_testkit::ps_config;

fn config(dir: &std::path::Path, keys: &common::Keys, decryption: bool) -> Config {
    let mut text = ps_config::base("direct", "ps.sqlite", 25)
        + &format!(
            "[network.mailbox]\nmaildir = \"{}\"\n[returns]\nsenders = [\"oct@oct.invalid\"]\n",
            dir.join("Maildir").display()
        );
    if decryption {
        text.push_str(&format!(
            "[decryption]\nkey = \"{}\"\ncertificate = \"{}\"\n",
            keys.ps_key.display(),
            keys.ps_cert.display()
        ));
    }
    Config::load(&ps_config::write(dir, &text)).unwrap()
}

/// A message whose profile says RSP but whose subject is not a return subject.
fn claimed_return() -> Vec<u8> {
    b"From: oct@oct.invalid\r\nTo: ps@ps.invalid\r\nSubject: RSP du jour\r\n\
      Content-Description: RSP/K\r\nContent-Type: text/plain\r\n\r\nnot a return\r\n"
        .to_vec()
}

/// The files of a Maildir (`new/` and `cur/`), by relative name, with their bytes.
fn maildir_files(root: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    for sub in ["new", "cur"] {
        for e in std::fs::read_dir(root.join(sub)).unwrap() {
            let e = e.unwrap();
            v.push((
                format!("{sub}/{}", e.file_name().to_string_lossy()),
                std::fs::read(e.path()).unwrap(),
            ));
        }
    }
    v.sort();
    v
}

/// Issue 11 point 10: a practice's other mail (a patient's e-mail, the ISP's invoice, a return
/// for another PS of a shared mailbox) is left in the Maildir exactly as it was: same file
/// names (so same flags, still unread in `new/`), same bytes; only our return is taken.
#[test]
fn other_mail_is_left_in_the_maildir_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let keys = common::keys(dir.path());
    let root = dir.path().join("Maildir");
    let md = Maildir::create(&root, 1 << 20).unwrap();
    let patient = b"From: patient@example.org\r\nTo: ps@ps.invalid\r\nSubject: Rendez-vous mardi\r\n\
      Content-Type: text/plain\r\n\r\nBonjour docteur, je confirme mardi 10h.\r\n";
    let invoice = b"From: factures@isp.example\r\nTo: ps@ps.invalid\r\nSubject: Votre facture\r\n\
      Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/pdf\r\n\r\n%PDF\r\n--b--\r\n";
    let other_ps = common::return_message(ReturnKind::Art, b"Fichier recu.\r\n", None);
    let other_ps = String::from_utf8(other_ps)
        .unwrap()
        .replace("ART/123456789/", "ART/987654321/")
        .into_bytes();
    md.deliver(patient).unwrap();
    md.deliver(invoice).unwrap();
    md.deliver(&other_ps).unwrap();
    // One already seen by the practice's mail client: in cur/ with the Seen flag.
    let seen = b"From: a@b.example\r\nSubject: Lu\r\n\r\nx\r\n";
    std::fs::write(root.join("cur/1700000000.M1P1.host:2,S"), seen).unwrap();
    let before = maildir_files(&root);
    assert_eq!(before.len(), 4);
    md.deliver(&common::return_message(
        ReturnKind::Art,
        b"Fichier recu, 3 lots.\r\n",
        None,
    ))
    .unwrap();

    let ps = Ps::open(config(dir.path(), &keys, true)).unwrap();
    let report = ps.fetch().unwrap();
    assert_eq!(report.stored, 1);
    assert_eq!(report.left, 4);
    assert_eq!(report.classified.len(), 1);
    assert!(report.quarantined.is_empty(), "{:?}", report.quarantined);
    assert_eq!(maildir_files(&root), before, "the other mail is untouched");
    assert!(ps.inbox(InboxState::Quarantined).unwrap().is_empty());

    // A second run leaves them again and stores nothing.
    let again = ps.fetch().unwrap();
    assert_eq!((again.stored, again.left), (0, 4));
    assert_eq!(maildir_files(&root), before);
}

#[test]
fn returns_are_stored_classified_and_unreadable_ones_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let keys = common::keys(dir.path());
    let md = Maildir::create(dir.path().join("Maildir"), 1 << 20).unwrap();
    let art = common::return_message(ReturnKind::Art, b"Fichier recu, 3 lots.\r\n", None);
    let rsp = common::return_message(
        ReturnKind::Rsp,
        &common::rsp_580("000000001"),
        Some(&keys.ps_cert),
    );
    // Encrypted for someone else: cannot be opened with the PS key.
    let arl = common::return_message(ReturnKind::Arl, b"ARL", Some(&keys.oct_cert));
    md.deliver(&art).unwrap();
    md.deliver(&rsp).unwrap();
    md.deliver(&arl).unwrap();
    // Claims to be a return (its profile) but its subject does not read: taken, quarantined.
    md.deliver(&claimed_return()).unwrap();

    let ps = Ps::open(config(dir.path(), &keys, true)).unwrap();
    let report = ps.fetch().unwrap();
    assert_eq!(report.stored, 4);
    assert_eq!(report.left, 0);
    let mut kinds: Vec<&str> = report.classified.iter().map(|h| h.what.as_str()).collect();
    kinds.sort();
    assert_eq!(kinds, ["ART", "RSP"]);
    assert_eq!(report.quarantined.len(), 2);
    assert!(
        report
            .quarantined
            .iter()
            .any(|h| h.subject == "RSP du jour" && h.what.contains("not a known message profile")),
        "{:?}",
        report.quarantined
    );
    assert!(
        report
            .quarantined
            .iter()
            .any(|h| h.subject.starts_with("ARL/") && h.what.contains("cannot open")),
        "{:?}",
        report.quarantined
    );

    // Everything is in the store, nothing is left in the mailbox.
    let new_dir = std::fs::read_dir(dir.path().join("Maildir/new")).unwrap().count();
    let cur_dir = std::fs::read_dir(dir.path().join("Maildir/cur")).unwrap().count();
    assert_eq!(new_dir + cur_dir, 0);
    // The RSP names an invoice never sent: kept; the ART, shown, is processed.
    let kept = ps.inbox(InboxState::New).unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].classification.as_deref(), Some("RSP"));
    let processed = ps.inbox(InboxState::Processed).unwrap();
    assert_eq!(processed.len(), 1);
    assert!(kept.iter().chain(&processed).all(|m| m.deleted_on_server));
    let q = ps.inbox(InboxState::Quarantined).unwrap();
    assert_eq!(q.len(), 2);
    assert!(
        q.iter().any(|m| m.raw == claimed_return()),
        "raw kept as received"
    );

    // Every received message is journaled.
    let journal = ps.journal(None).unwrap();
    assert_eq!(journal.len(), 4);
    assert!(journal.iter().all(|e| e.direction == Direction::In));
    assert_eq!(
        journal.iter().filter(|e| e.status == Status::Quarantined).count(),
        2
    );

    // A second run finds nothing and changes nothing.
    let again = ps.fetch().unwrap();
    assert_eq!(again.stored, 0);
    assert!(again.classified.is_empty() && again.quarantined.is_empty());
    assert_eq!(ps.journal(None).unwrap().len(), 4);
}

#[test]
fn encrypted_return_without_a_key_is_quarantined_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let keys = common::keys(dir.path());
    let md = Maildir::create(dir.path().join("Maildir"), 1 << 20).unwrap();
    md.deliver(&common::return_message(
        ReturnKind::Rsp,
        b"NOEMIE",
        Some(&keys.ps_cert),
    ))
    .unwrap();
    let ps = Ps::open(config(dir.path(), &keys, false)).unwrap();
    let report = ps.fetch().unwrap();
    assert_eq!(report.quarantined.len(), 1);
    assert!(
        report.quarantined[0].what.contains("no [decryption] key"),
        "{:?}",
        report.quarantined
    );
    assert_eq!(ps.inbox(InboxState::Quarantined).unwrap().len(), 1);
}

#[test]
fn a_message_too_large_stays_on_the_server_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let keys = common::keys(dir.path());
    let md = Maildir::create(dir.path().join("Maildir"), 1 << 20).unwrap();
    md.deliver(&common::return_message(ReturnKind::Art, &vec![b'A'; 5000], None))
        .unwrap();
    let cfg = config(dir.path(), &keys, false);
    let path = dir.path().join("ps.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "[network.mailbox]\n",
        "[network.mailbox]\nmax_message_bytes = 1000\n",
    );
    std::fs::write(&path, text).unwrap();
    drop(cfg);
    let ps = Ps::open(Config::load(&path).unwrap()).unwrap();
    let report = ps.fetch().unwrap();
    assert_eq!(report.stored, 0);
    assert_eq!(report.too_large.len(), 1);
    assert!(report.too_large[0].1 > 1000);
    let left = std::fs::read_dir(dir.path().join("Maildir/new")).unwrap().count()
        + std::fs::read_dir(dir.path().join("Maildir/cur")).unwrap().count();
    assert_eq!(left, 1, "left on the server");
}

#[test]
fn a_return_decompressing_past_the_setting_is_quarantined_with_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let keys = common::keys(dir.path());
    let md = Maildir::create(dir.path().join("Maildir"), 1 << 20).unwrap();
    // 2 MiB of zeros, compressed then encrypted for the PS: a few KB in the mailbox.
    let bomb = common::return_message(ReturnKind::Rsp, &vec![0u8; 2 << 20], Some(&keys.ps_cert));
    assert!(bomb.len() < 64 * 1024);
    md.deliver(&bomb).unwrap();
    drop(config(dir.path(), &keys, true));
    let path = dir.path().join("ps.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "[network.mailbox]\n",
        "[network.mailbox]\nmax_decompressed_bytes = 1048576\n",
    );
    std::fs::write(&path, text).unwrap();
    let ps = Ps::open(Config::load(&path).unwrap()).unwrap();
    let report = ps.fetch().unwrap();
    assert_eq!(report.stored, 1);
    let quarantined = ps.inbox(InboxState::Quarantined).unwrap();
    assert_eq!(quarantined.len(), 1);
    let reason = quarantined[0].reason.clone().unwrap_or_default();
    assert!(reason.contains("more than the 1048576-byte limit"), "{reason}");
}

/// Issue 13 point 9: a return from an address this PS does not take returns from (a forged
/// "paid" RSP) is stored, set aside with the reason, applies nothing, and shows in `status`;
/// the same return from the configured sender is applied.
#[test]
fn a_return_from_an_unknown_sender_is_set_aside_and_shown() {
    let dir = tempfile::tempdir().unwrap();
    let keys = common::keys(dir.path());
    let md = Maildir::create(dir.path().join("Maildir"), 1 << 20).unwrap();
    let genuine = common::return_message(
        ReturnKind::Rsp,
        &common::rsp_580("000000001"),
        Some(&keys.ps_cert),
    );
    let forged = String::from_utf8(genuine.clone())
        .unwrap()
        .replacen(
            "From: oct@oct.invalid",
            "From: \"OCT\" <retours@forged.example>",
            1,
        )
        .into_bytes();
    assert_ne!(forged, genuine, "the From header was replaced");
    md.deliver(&forged).unwrap();

    let ps = Ps::open(config(dir.path(), &keys, true)).unwrap();
    let report = ps.fetch().unwrap();
    assert_eq!(report.stored, 1);
    assert!(report.classified.is_empty(), "{:?}", report.classified);
    assert_eq!(report.quarantined.len(), 1);
    let reason = &report.quarantined[0].what;
    assert!(reason.contains("retours@forged.example"), "{reason}");
    assert!(reason.contains("oct@oct.invalid"), "names who may: {reason}");
    assert!(
        ps.store()
            .returns()
            .invoices()
            .unwrap()
            .iter()
            .all(|i| i.state != svoct_store::PaymentState::Paid)
    );
    let status = svoct_ps::status::status_now(&ps).unwrap();
    let set_aside: Vec<_> = status
        .needs_attention
        .iter()
        .filter(|a| a.kind == svoct_ps::status::AttentionKind::SetAside)
        .collect();
    assert_eq!(set_aside.len(), 1, "{:?}", status.needs_attention);
    assert!(set_aside[0].reason.contains("retours@forged.example"));

    // The genuine one, from the configured sender, is applied.
    md.deliver(&genuine).unwrap();
    let report = ps.fetch().unwrap();
    assert_eq!(report.classified.len(), 1, "{:?}", report.quarantined);
}
