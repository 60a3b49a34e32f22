//! Returns reconciliation end to end: a batch sent through the PS engine, then ARL, RSP, ART and
//! dLOI returns delivered to a Maildir and fetched; lots and invoices end in the states the
//! returns say. Expected values are written by hand from the returns built here.

mod common;

use svoct_formats::arl::{Arl, ArlReason, ArlStatus, Stamp};
use svoct_formats::b2::synth::{SynthParams, generate_bytes};
use svoct_formats::loi::{DateTime, Increment};
use svoct_formats::noemie::{
    self, InvoiceOutcome, PartOutcome, PartState, RejectLine, RejectPart, RspParams, Ymd,
};
use svoct_mail::maildir::Maildir;
use svoct_mail::subject::ReturnKind;
use svoct_mail::transport::MemoryTransport;
use svoct_ps::config::Config;
use svoct_ps::reconcile::lots_of;
use svoct_ps::status::{loi_check, returns_view, status};
use svoct_ps::{LotFile, Ps};
use svoct_store::reconciliation::SentLot;
use svoct_store::{ArlState, InboxState, PaymentState};
use svoct_testkit::ps_config;

struct Env {
    dir: tempfile::TempDir,
    keys: common::Keys,
    md: Maildir,
    ps: Ps,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let keys = common::keys(dir.path());
    let md = Maildir::create(dir.path().join("Maildir"), 1 << 22).unwrap();
    let text = ps_config::base("oct", "ps.sqlite", 25)
        + &format!(
            "[network.mailbox]\nmaildir = \"{}\"\n",
            dir.path().join("Maildir").display()
        )
        + &ps_config::oct_section(keys.oct_cert.display(), "single")
        + &format!(
            "[returns]\narl_days = 2\nrsp_days = 15\n[decryption]\nkey = \"{}\"\ncertificate = \"{}\"\n",
            keys.ps_key.display(),
            keys.ps_cert.display()
        );
    let ps = Ps::open(Config::load(&ps_config::write(dir.path(), &text)).unwrap()).unwrap();
    Env { dir, keys, md, ps }
}

/// 10 FSE invoices in lots of 4: three lots (4, 4, 2 invoices).
fn batch() -> Vec<LotFile> {
    vec![LotFile {
        name: "lots.b2".into(),
        bytes: generate_bytes(&SynthParams {
            seed: 7,
            invoices: 10,
            lot_size: 4,
            ..SynthParams::default()
        })
        .unwrap(),
    }]
}

/// Plans the batch; returns the planned files and their lots as the returns will name them.
fn plan(ps: &Ps) -> (Vec<svoct_ps::PlannedFile>, Vec<SentLot>) {
    let planned = ps.plan(&batch()).unwrap();
    assert_eq!(planned.len(), 1);
    let lots = lots_of(&planned[0].bytes).unwrap();
    assert_eq!(
        lots.iter().map(|l| l.invoices.len()).collect::<Vec<_>>(),
        [4, 4, 2]
    );
    (planned, lots)
}

fn send(ps: &Ps, planned: Vec<svoct_ps::PlannedFile>) {
    let sent = ps
        .send_planned(&MemoryTransport::new(), planned, &mut |_| {})
        .unwrap();
    assert_eq!(sent[0].status, svoct_store::Status::Sent);
}

fn ymd(aammjj: &str) -> Ymd {
    let n = |r: std::ops::Range<usize>| aammjj[r].parse::<u8>().unwrap();
    Ymd::new(2000 + u16::from(n(0..2)), n(2..4), n(4..6))
}

fn arl(lot: &SentLot, positive: bool) -> Vec<u8> {
    Arl {
        sender_type: "CP".into(),
        sender_number: "123456789".into(),
        ps_number: "123456789".into(),
        file_id: String::new(),
        lot_number: lot.number.parse().unwrap(),
        lot_date: ymd(&lot.date),
        issued: Stamp {
            date: Ymd::new(2026, 11, 26),
            hour: 9,
            minute: 30,
        },
        status: if positive {
            ArlStatus::Positive
        } else {
            ArlStatus::Negative
        },
        invoice_count: Some(lot.invoices.len() as u16),
        lot_kind: "FSE".into(),
        reasons: if positive {
            Vec::new()
        } else {
            vec![ArlReason {
                code: "L017".into(),
                label: "Nombre de factures incoherent".into(),
            }]
        },
    }
    .build()
    .unwrap()
}

fn part(state: PartState, paid: i64) -> Option<PartOutcome> {
    Some(PartOutcome {
        state,
        requested_cents: 2000,
        paid_cents: paid,
        amc_number: String::new(),
    })
}

fn outcome(lot: &SentLot, invoice: &str, state: PartState, paid: i64) -> InvoiceOutcome {
    InvoiceOutcome {
        lot_number: lot.number.clone(),
        lot_date: ymd(&lot.date),
        invoice_number: invoice.into(),
        invoice_type: 'F',
        billing_date: None,
        amo: part(state, paid),
        amc: None,
        rejects: if state == PartState::Rejected {
            vec![RejectLine {
                code: "A123".into(),
                label: "Assure inconnu".into(),
                part: RejectPart::Amo,
            }]
        } else {
            Vec::new()
        },
        comments: Vec::new(),
    }
}

fn rsp(outcomes: &[InvoiceOutcome]) -> Vec<u8> {
    let params = RspParams {
        sender_type: "CP".into(),
        sender_number: "123456789".into(),
        sender_program: "AMSIM".into(),
        recipient_type: "TP".into(),
        recipient_number: "123456789".into(),
        file_id: "R00001".into(),
        created: Ymd::new(2026, 11, 27),
        flow_type: ' ',
        settlement_recipient: "123456789".into(),
        accounting_date: Ymd::new(2026, 11, 27),
        transfer_label: "VIREMENT CPAM".into(),
        payer: "CPAM100".into(),
    };
    noemie::build_580(&params, outcomes).unwrap()
}

/// The RSP of the standard scenario: lot 0 paid (4 x 14.00), lot 1: first rejected, second
/// deferred, two without answer yet.
fn standard_rsp(lots: &[SentLot]) -> Vec<u8> {
    let mut o: Vec<InvoiceOutcome> = lots[0]
        .invoices
        .iter()
        .map(|i| outcome(&lots[0], i, PartState::Paid, 1400))
        .collect();
    o.push(outcome(&lots[1], &lots[1].invoices[0], PartState::Rejected, 0));
    o.push(outcome(&lots[1], &lots[1].invoices[1], PartState::Deferred, 0));
    rsp(&o)
}

fn deliver(e: &Env, kind: ReturnKind, file: &[u8]) {
    let enc = match kind {
        ReturnKind::Art => None,
        _ => Some(e.keys.ps_cert.as_path()),
    };
    e.md.deliver(&common::return_message(kind, file, enc)).unwrap();
}

fn fetch(e: &Env) -> svoct_ps::FetchReport {
    let r = e.ps.fetch().unwrap();
    assert!(r.quarantined.is_empty(), "{:?}", r.quarantined);
    r
}

fn assert_standard_states(e: &Env, lots: &[SentLot]) {
    let v = returns_view(&e.ps).unwrap();
    assert_eq!(v.lots.len(), 3);
    let arl: Vec<ArlState> = v.lots.iter().map(|l| l.arl).collect();
    assert_eq!(arl, [ArlState::Positive, ArlState::Positive, ArlState::Negative]);
    assert_eq!(v.lots[2].arl_reasons, ["L017 Nombre de factures incoherent"]);
    assert_eq!(v.invoices.len(), 10);
    for (i, inv) in v.invoices.iter().enumerate() {
        let (lot, k) = if i < 4 {
            (0, i)
        } else if i < 8 {
            (1, i - 4)
        } else {
            (2, i - 8)
        };
        assert_eq!(inv.number, lots[lot].invoices[k]);
        assert_eq!(inv.lot_number.as_deref(), Some(lots[lot].number.as_str()));
        let expected = match (lot, k) {
            (0, _) => PaymentState::Paid,
            (1, 0) => PaymentState::Rejected,
            (1, 1) => PaymentState::Deferred,
            _ => PaymentState::Awaiting,
        };
        assert_eq!(inv.state, expected, "invoice {i}");
        if lot == 0 {
            assert_eq!(inv.paid_cents, 1400);
            assert_eq!(inv.paid_date.as_deref(), Some("2026-11-27"));
        }
    }
    assert_eq!(v.invoices[4].reasons, ["A123 Assure inconnu"]);
    assert_eq!(v.totals.paid_cents, 5600);
    assert_eq!(v.totals.invoices_paid, 4);
    assert!(v.unmatched.is_empty(), "{:?}", v.unmatched);

    // Worklists, a month after the sending.
    let later = time::OffsetDateTime::now_utc() + time::Duration::days(30);
    let s = status(&e.ps, later).unwrap();
    assert!(s.lots_without_arl.is_empty());
    assert_eq!(s.lots_to_resend.len(), 1);
    assert_eq!(s.lots_to_resend[0].number, lots[2].number);
    assert_eq!(s.invoices_to_correct.len(), 1);
    assert_eq!(s.invoices_to_correct[0].number, lots[1].invoices[0]);
    // Positive lot 1: two invoices still without RSP (lot 2 is negative, not awaited).
    let no_rsp: Vec<&str> = s.invoices_without_rsp.iter().map(|i| i.number.as_str()).collect();
    assert_eq!(
        no_rsp,
        [lots[1].invoices[2].as_str(), lots[1].invoices[3].as_str()]
    );
    assert_eq!(s.paid_per_day.len(), 1);
    assert_eq!(s.paid_per_day[0].date, "2026-11-27");
    assert_eq!(
        (s.paid_per_day[0].invoices, s.paid_per_day[0].paid_cents),
        (4, 5600)
    );
    // Right now nothing is overdue.
    let now = status(&e.ps, time::OffsetDateTime::now_utc()).unwrap();
    assert!(now.invoices_without_rsp.is_empty());
}

#[test]
fn sent_batch_then_arl_rsp_art_ends_in_the_right_states() {
    let e = env();
    let (planned, lots) = plan(&e.ps);
    send(&e.ps, planned);

    // Before any return: every lot awaits its ARL, overdue after arl_days.
    let v = returns_view(&e.ps).unwrap();
    assert_eq!(v.totals.lots_awaiting_arl, 3);
    assert_eq!(v.totals.invoices_awaiting, 10);
    let later = time::OffsetDateTime::now_utc() + time::Duration::days(3);
    assert_eq!(status(&e.ps, later).unwrap().lots_without_arl.len(), 3);
    assert!(
        status(&e.ps, time::OffsetDateTime::now_utc())
            .unwrap()
            .lots_without_arl
            .is_empty()
    );

    deliver(&e, ReturnKind::Arl, &arl(&lots[0], true));
    deliver(&e, ReturnKind::Arl, &arl(&lots[1], true));
    deliver(&e, ReturnKind::Arl, &arl(&lots[2], false));
    deliver(&e, ReturnKind::Rsp, &standard_rsp(&lots));
    deliver(&e, ReturnKind::Art, b"Fichier recu: 3 lots transmis.\r\n");
    let r = fetch(&e);
    assert_eq!(r.classified.len(), 5);
    assert_standard_states(&e, &lots);

    let v = returns_view(&e.ps).unwrap();
    // The free-text ART is shown as it came (R4.5), without a structured block.
    assert_eq!(v.arts.len(), 1);
    assert_eq!(v.arts[0].text, "Fichier recu: 3 lots transmis.\r\n");
    assert_eq!(v.arts[0].summary, "Fichier recu: 3 lots transmis.");
    assert!(v.arts[0].structured.is_none());
    // Raw returns stay in the inbox; fully reconciled ones (and the ART, shown) are processed.
    let processed = e.ps.inbox(InboxState::Processed).unwrap();
    assert_eq!(processed.len(), 5);
    assert!(processed.iter().all(|m| !m.raw.is_empty()));
}

#[test]
fn returns_before_the_send_are_kept_and_matched_when_it_is_recorded() {
    let e = env();
    let (planned, lots) = plan(&e.ps);
    deliver(&e, ReturnKind::Arl, &arl(&lots[0], true));
    deliver(&e, ReturnKind::Arl, &arl(&lots[1], true));
    deliver(&e, ReturnKind::Arl, &arl(&lots[2], false));
    deliver(&e, ReturnKind::Rsp, &standard_rsp(&lots));
    fetch(&e);
    let v = returns_view(&e.ps).unwrap();
    assert!(v.lots.is_empty());
    // 3 ARL + 6 RSP items, none lost.
    assert_eq!(v.unmatched.len(), 9);
    assert_eq!(e.ps.inbox(InboxState::New).unwrap().len(), 4);

    send(&e.ps, planned);
    assert_standard_states(&e, &lots);
}

#[test]
fn the_same_returns_twice_change_nothing() {
    let e = env();
    let (planned, lots) = plan(&e.ps);
    send(&e.ps, planned);
    let arl_msg = common::return_message(ReturnKind::Arl, &arl(&lots[2], false), Some(&e.keys.ps_cert));
    let rsp_msg = common::return_message(ReturnKind::Rsp, &standard_rsp(&lots), Some(&e.keys.ps_cert));
    for _ in 0..2 {
        e.md.deliver(&arl_msg).unwrap();
        e.md.deliver(&rsp_msg).unwrap();
    }
    deliver(&e, ReturnKind::Arl, &arl(&lots[0], true));
    deliver(&e, ReturnKind::Arl, &arl(&lots[1], true));
    fetch(&e);
    let once = returns_view(&e.ps).unwrap();
    assert_standard_states(&e, &lots);

    // The hook called again for an already handled message (a crash before its state was saved).
    let m = e.ps.inbox(InboxState::Processed).unwrap();
    let cfg = e.ps.config().clone();
    let now = time::OffsetDateTime::now_utc();
    let mut again = svoct_ps::reconcile::ClassifiedMessage {
        inbox_id: m
            .iter()
            .find(|x| x.classification.as_deref() == Some("RSP"))
            .unwrap()
            .id,
        kind: svoct_ps::reconcile::ReturnKind::Rsp,
        subject: svoct_mail::subject::Subject::Return(svoct_mail::subject::ReturnSubject {
            kind: ReturnKind::Rsp,
            ps_number: svoct_mail::subject::PartyNumber::new("123456789").unwrap(),
            timestamp: svoct_mail::subject::MinuteStamp::new(time::PrimitiveDateTime::new(
                now.date(),
                now.time(),
            ))
            .unwrap(),
        }),
        profile: "RSP/K".into(),
        message_id: None,
        file_name: None,
        file: standard_rsp(&lots),
    };
    svoct_ps::reconcile::handle(e.ps.store(), &cfg, &mut again).unwrap();
    let twice = returns_view(&e.ps).unwrap();
    assert_eq!(
        serde_json::to_value(&once.invoices).unwrap(),
        serde_json::to_value(&twice.invoices).unwrap()
    );
    assert_eq!(once.totals, twice.totals);
}

#[test]
fn a_return_for_an_invoice_never_sent_is_kept_and_reported() {
    let e = env();
    let (planned, lots) = plan(&e.ps);
    send(&e.ps, planned);
    let stranger = SentLot {
        number: "999".into(),
        date: "261120".into(),
        kind: None,
        invoices: vec!["987654321".into()],
    };
    deliver(
        &e,
        ReturnKind::Rsp,
        &rsp(&[
            outcome(&lots[0], &lots[0].invoices[0], PartState::Paid, 1400),
            outcome(&stranger, "987654321", PartState::Paid, 2500),
        ]),
    );
    fetch(&e);
    let v = returns_view(&e.ps).unwrap();
    assert_eq!(v.invoices[0].state, PaymentState::Paid);
    assert_eq!(v.unmatched.len(), 1);
    assert_eq!(v.unmatched[0].invoice_number.as_deref(), Some("987654321"));
    assert_eq!(v.unmatched[0].detail["paid_cents"], 2500);
    assert_eq!(v.totals.paid_cents, 1400, "a stranger's payment is not counted");
    let s = status(&e.ps, time::OffsetDateTime::now_utc()).unwrap();
    assert_eq!(s.unmatched.len(), 1);
    // The message stays in the inbox, kept (not processed, not quarantined).
    let kept = e.ps.inbox(InboxState::New).unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].classification.as_deref(), Some("RSP"));
}

#[test]
fn a_noemie_file_with_a_wrong_990_is_kept_with_findings() {
    let e = env();
    let (planned, lots) = plan(&e.ps);
    send(&e.ps, planned);
    let good = standard_rsp(&lots);
    let n = noemie::parse(&good).unwrap();
    assert!(n.findings.is_empty());
    let f = &n.files[0];
    let e990 = f.entities.iter().find(|x| x.code == Some(990)).unwrap();
    let mut bad = good.clone();
    let at = f.input_offset(e990.start as usize) + 29; // last digit of the count (23-30)
    bad[at] = if bad[at] == b'9' { b'0' } else { bad[at] + 1 };
    deliver(&e, ReturnKind::Rsp, &bad);
    fetch(&e);
    let v = returns_view(&e.ps).unwrap();
    let note = v
        .notes
        .iter()
        .find(|n| n.kind == "RSP")
        .expect("findings recorded");
    assert!(note.summary.contains("finding"), "{}", note.summary);
    assert!(
        note.detail
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "control_count"),
        "{}",
        note.detail
    );
    // Kept for a human look, its raw bytes untouched; the invoices it names are still updated.
    let kept = e.ps.inbox(InboxState::New).unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(v.totals.invoices_paid, 4);
}

fn increment(from: u64, to: u64, add: &[&str], del: &[&str]) -> Vec<u8> {
    Increment {
        from,
        to,
        at: DateTime {
            year: 2026,
            month: 11,
            day: 26,
            hour: 6,
            minute: 0,
            second: 0,
        },
        additions: add.iter().map(|s| s.to_string()).collect(),
        removals: del.iter().map(|s| s.to_string()).collect(),
    }
    .build()
    .unwrap()
}

#[test]
fn dloi_increments_apply_in_version_order() {
    let e = env();
    deliver(
        &e,
        ReturnKind::LoiIncrement,
        &increment(0, 1, &["CARD1", "CARD2"], &[]),
    );
    fetch(&e);
    assert!(loi_check(&e.ps, "CARD1").unwrap().opposed);
    assert!(!loi_check(&e.ps, "CARD3").unwrap().opposed);
    // 2 -> 3 before 1 -> 2: held, then applied.
    deliver(
        &e,
        ReturnKind::LoiIncrement,
        &increment(2, 3, &["CARD4"], &["CARD1"]),
    );
    fetch(&e);
    let a = loi_check(&e.ps, "CARD4").unwrap();
    assert!(!a.opposed);
    assert_eq!((a.version, a.held.clone()), (1, vec![(2, 3)]));
    deliver(&e, ReturnKind::LoiIncrement, &increment(1, 2, &["CARD3"], &[]));
    fetch(&e);
    let a = loi_check(&e.ps, "CARD1").unwrap();
    assert!(!a.opposed);
    assert_eq!((a.version, a.cards), (3, 3));
    assert!(loi_check(&e.ps, "CARD4").unwrap().opposed);
    // Replay: a no-op. Conflict: quarantined, list unchanged.
    deliver(
        &e,
        ReturnKind::LoiIncrement,
        &increment(0, 1, &["CARD1", "CARD2"], &[]),
    );
    fetch(&e);
    deliver(&e, ReturnKind::LoiIncrement, &increment(2, 3, &["EVIL"], &[]));
    let r = e.ps.fetch().unwrap();
    assert_eq!(r.quarantined.len(), 1);
    assert!(r.quarantined[0].what.contains("conflict"), "{:?}", r.quarantined);
    let a = loi_check(&e.ps, "EVIL").unwrap();
    assert!(!a.opposed);
    assert_eq!(a.version, 3);
    let _ = &e.dir;
}

#[test]
fn a_structured_art_is_summarised_without_an_empty_detail() {
    use svoct_formats::art::{Art, ArtLot, FileStatus, LotStatus};
    let e = env();
    let art = Art {
        oct_id: "OCT123456789".into(),
        ps_number: "123456789".into(),
        received: Stamp {
            date: ymd("261126"),
            hour: 9,
            minute: 5,
        },
        compostage: "2026112609050000042".into(),
        file_name: "F00042".into(),
        subject: "SV140700/123456789/2026112609050000042/00012".into(),
        profile: "FACTURE/SV/ZK".into(),
        invoices: 12,
        file_status: FileStatus::Accepted,
        file_detail: String::new(),
        lots: vec![ArtLot {
            number: "001".into(),
            date: Some(ymd("261125")),
            kind: "FSE".into(),
            invoices: 12,
            status: LotStatus::Forwarded,
            detail: "CPAM 751".into(),
        }],
        amc: Vec::new(),
    };
    deliver(&e, ReturnKind::Art, art.build().unwrap().as_bytes());
    fetch(&e);
    let v = returns_view(&e.ps).unwrap();
    let note = v.notes.iter().find(|n| n.kind == "ART").unwrap();
    assert_eq!(note.summary, "Accepted 1 lot(s)");
    // The text is shown too, the block being an extra.
    assert_eq!(v.arts.len(), 1);
    assert_eq!(v.arts[0].text, art.build().unwrap());
    assert_eq!(v.arts[0].compostage.as_deref(), Some("2026112609050000042"));
    assert_eq!(v.arts[0].structured.as_ref().unwrap()["file_name"], "F00042");
}

/// Issue 11 point 2: what a real OCT sends is free text; the PS is shown every ART's text in
/// `ps returns` and `ps status` (and their JSON), and the compostage it quotes is picked up.
#[test]
fn a_free_text_art_is_shown_in_full_in_returns_and_status() {
    let e = env();
    let text = "ACCUSE DE RECEPTION TECHNIQUE\r\n\r\nMessage recu le 26/11/2026 a 09h05 :\r\n\
                SV140700/123456789/2026112609050000042/00012\r\n\
                Lot 001 du 25/11/2026 : 12 facture(s) transmises a la CPAM 751.\r\n";
    deliver(&e, ReturnKind::Art, text.as_bytes());
    fetch(&e);
    let v = returns_view(&e.ps).unwrap();
    assert_eq!(v.arts.len(), 1);
    let a = &v.arts[0];
    assert_eq!(a.text, text);
    assert_eq!(a.summary, "ACCUSE DE RECEPTION TECHNIQUE");
    assert_eq!(a.compostage.as_deref(), Some("2026112609050000042"));
    assert!(a.structured.is_none());
    let s = status(&e.ps, time::OffsetDateTime::now_utc()).unwrap();
    assert_eq!(s.arts, v.arts);
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["arts"][0]["text"], text);
    // Shown, so processed (it stayed `new` before).
    assert_eq!(e.ps.inbox(InboxState::Processed).unwrap().len(), 1);
}

fn sp(n: usize) -> String {
    " ".repeat(n)
}

/// A NOEMIE file in packaging (b): 4-digit lengths, CRLF; header and trailer written by hand
/// from the published positions (as in `crates/formats/tests/noemie_refs.rs`).
fn noemie_file(reference: &str, entities: &[String], count: &str, lots: &str, amount: &str) -> Vec<u8> {
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
    assert_eq!((h.len(), t.len()), (128, 128));
    let stream = entities.concat();
    format!("0128{h}\r\n{:04}{stream}\r\n0128{t}\r\n", stream.len()).into_bytes()
}

/// A 576 paid on 2026-11-27 (the day of the standard 580): a flat payment `00042` of 150.00
/// for November (per-patient flat fee), and a deduction of 25.00 (debt DETTE00001 of
/// 2026-10-15, 75.00 left).
fn rsp_576() -> Vec<u8> {
    let e = vec![
        "02001000000123456789@".to_string(),
        "04002000000123456789@".into(),
        format!("07102261127{:<32}{}CPAM75    @", "VIREMENT FORFAITS", sp(32)),
        format!("0810203{}@", sp(14)),
        "261030004200015000@".into(),
        format!(
            "26204FORF1{:<80}{}000000000M26110126113000015000@",
            "FORFAIT PATIENTELE MEDECIN TRAITANT",
            sp(13)
        ),
        format!("0810205{}@", sp(14)),
        "2500301DETTE00001261015INDRPR00002500N00007500@".into(),
        format!("99002{}0000000300000012500P@", sp(17)),
        format!("99001{}0000000700000012500P@", sp(17)),
    ];
    noemie_file("576", &e, "00000010", "000", "00000012500")
}

/// A 900 about invoice 000001234 of lot 042: a reject with a comment.
fn rsp_900() -> Vec<u8> {
    let e = vec![
        "04002000000123456789@".to_string(),
        "08003261120042@".into(),
        format!("10204000001234{}042261120F261119   @", sp(6)),
        format!("2900501R123      {:<80}@", "ASSURE INCONNU DE LA CAISSE"),
        format!("29505A{:<128}@", "MERCI DE VERIFIER LE NIR"),
        format!("99003{}0000000300000000000P@", sp(17)),
        format!("99002{}0000000400000000000P@", sp(17)),
    ];
    noemie_file("900", &e, "00000007", "001", "00000000000")
}

/// Issue 11 point 1: a 576's flat payment and deduction are shown (amounts, dates, reasons,
/// period) and counted in the totals and the paid-per-day list; a 900 has its own view.
#[test]
fn rsp_576_payments_and_deductions_and_900_notices_are_shown_and_counted() {
    let e = env();
    let (planned, lots) = plan(&e.ps);
    send(&e.ps, planned);
    deliver(&e, ReturnKind::Arl, &arl(&lots[0], true));
    deliver(&e, ReturnKind::Rsp, &standard_rsp(&lots));
    deliver(&e, ReturnKind::Rsp, &rsp_576());
    deliver(&e, ReturnKind::Rsp, &rsp_900());
    fetch(&e);
    // Fetching again (or the same 576 relayed twice) counts nothing twice.
    deliver(&e, ReturnKind::Rsp, &rsp_576());
    fetch(&e);

    let v = returns_view(&e.ps).unwrap();
    assert_eq!(v.payment_lines.len(), 2, "{:#?}", v.payment_lines);
    let flat = &v.payment_lines[0].line;
    assert_eq!(flat.reference, "576");
    assert_eq!(flat.kind, svoct_store::statement::LineKind::FlatPayment);
    assert_eq!(flat.accounting_date.as_deref(), Some("2026-11-27"));
    assert_eq!(flat.code, "00042");
    assert_eq!(flat.amount_cents, 15000);
    assert_eq!(flat.label, "FORFAIT PATIENTELE MEDECIN TRAITANT");
    assert_eq!(flat.period.as_deref(), Some("M 2026-11-01..2026-11-30"));
    let ded = &v.payment_lines[1].line;
    assert_eq!(ded.kind, svoct_store::statement::LineKind::Deduction);
    assert_eq!(ded.accounting_date.as_deref(), Some("2026-11-27"));
    assert_eq!(ded.code, "IND/RPR");
    assert_eq!(ded.amount_cents, -2500);
    assert_eq!(ded.label, "debt DETTE00001 of 2026-10-15, balance 75.00");

    let t = &v.totals;
    assert_eq!((t.flat_payments, t.flat_paid_cents), (1, 15000));
    assert_eq!((t.deductions, t.deducted_cents), (1, -2500));
    assert_eq!(t.paid_cents, 5600, "4 invoices x 14.00");
    assert_eq!(t.net_paid_cents, 5600 + 15000 - 2500);

    assert_eq!(v.insurer_notices.len(), 1);
    let n = &v.insurer_notices[0].line;
    assert_eq!(n.reference, "900");
    assert_eq!(n.invoice_number.as_deref(), Some("000001234"));
    assert_eq!(n.lot_number.as_deref(), Some("042"));
    assert_eq!(n.code, "R123");
    assert_eq!(n.label, "ASSURE INCONNU DE LA CAISSE; MERCI DE VERIFIER LE NIR");
    assert_eq!(t.insurer_notices, 1);

    let s = status(&e.ps, time::OffsetDateTime::now_utc()).unwrap();
    assert_eq!(s.paid_per_day.len(), 1);
    let d = &s.paid_per_day[0];
    assert_eq!(d.date, "2026-11-27");
    assert_eq!(
        (
            d.invoices,
            d.invoice_cents,
            d.flat_cents,
            d.deduction_cents,
            d.paid_cents
        ),
        (4, 5600, 15000, -2500, 18100)
    );
    assert_eq!(s.payment_lines, v.payment_lines);
    assert_eq!(s.insurer_notices, v.insurer_notices);
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["payment_lines"][0]["amount_cents"], 15000);
    assert_eq!(json["payment_lines"][1]["kind"], "deduction");
    assert_eq!(json["insurer_notices"][0]["code"], "R123");
    assert_eq!(json["totals"]["net_paid_cents"], 18100);
}

/// Issue 11 point 9: a file whose lots have a positive ARL is not sent again without `force`
/// (it would be a duplicate claim at the insurer); the refusal names the acknowledged lots.
#[test]
fn resending_a_file_with_positive_arls_is_refused_unless_forced() {
    let e = env();
    let (planned, lots) = plan(&e.ps);
    let t = MemoryTransport::new();
    let sent = e.ps.send_planned(&t, planned, &mut |_| {}).unwrap();
    let entry = sent[0].entry;

    // No ARL yet: a resend goes (the OCT or the AM may never have had it).
    let again = e.ps.resend(&t, entry, false).unwrap();
    assert_eq!(again.status, svoct_store::Status::Sent);
    assert_eq!(t.sent().len(), 2);

    // Two of the three lots acknowledged positively, one negatively.
    deliver(&e, ReturnKind::Arl, &arl(&lots[0], true));
    deliver(&e, ReturnKind::Arl, &arl(&lots[1], true));
    deliver(&e, ReturnKind::Arl, &arl(&lots[2], false));
    fetch(&e);
    for id in [entry, again.entry] {
        let err = e.ps.resend(&t, id, false).unwrap_err().to_string();
        assert!(err.contains("2 of its 3 lot(s) had a positive ARL"), "{err}");
        for l in &lots[..2] {
            assert!(err.contains(&format!("lot {} of {}", l.number, l.date)), "{err}");
        }
        assert!(!err.contains(&format!("lot {} of", lots[2].number)), "{err}");
        assert!(err.contains("--force"), "{err}");
    }
    assert_eq!(t.sent().len(), 2, "nothing left");

    // Forced: it goes, under a new compostage.
    let forced = e.ps.resend(&t, entry, true).unwrap();
    assert_eq!(forced.status, svoct_store::Status::Sent);
    assert_eq!(t.sent().len(), 3);
}

/// Issue 14 point 4: after an accepting ART, the OCT's second ART saying a forward failed for
/// good (`FICHIER;REFUSE`, the lots `REFUSE` with the insurer's answer, the same compostage,
/// `docs/formats/art.md` "Forward failed") marks the sent message failed: `ps status` lists it
/// as refused by the OCT, with the answer, so its invoices can be sent again.
#[test]
fn a_forward_failed_art_after_an_accepting_one_puts_the_message_in_needs_attention() {
    use svoct_formats::art::{Art, ArtLot, FileStatus, LotStatus};
    use svoct_ps::status::AttentionKind;
    let e = env();
    let (planned, _lots) = plan(&e.ps);
    send(&e.ps, planned);
    let journal = e.ps.store().journal();
    let entry = journal.with_status(svoct_store::Status::Sent).unwrap().remove(0);
    let compostage = entry.compostage.clone().expect("a sent message has a compostage");
    let art = |status: FileStatus, detail: &str, lot: LotStatus| {
        Art {
        oct_id: "OCT123456789".into(),
        ps_number: "123456789".into(),
        received: Stamp {
            date: ymd("261126"),
            hour: 9,
            minute: 5,
        },
        compostage: compostage.clone(),
        file_name: "F00042".into(),
        subject: entry.subject.clone(),
        profile: "FACTURE/SV/ZK".into(),
        invoices: 10,
        file_status: status,
        file_detail: detail.into(),
        lots: vec![ArtLot {
            number: "001".into(),
            date: Some(ymd("261125")),
            kind: "FSE".into(),
            invoices: 4,
            status: lot,
            detail: "transmission a CPAM 751 cpam@am.example echouee, refus definitif du serveur : 550 5.1.1 unknown".into(),
        }],
        amc: Vec::new(),
    }
    };
    deliver(
        &e,
        ReturnKind::Art,
        art(FileStatus::Accepted, "", LotStatus::Forwarded)
            .build()
            .unwrap()
            .as_bytes(),
    );
    fetch(&e);
    assert_eq!(
        journal.by_compostage(&compostage).unwrap().unwrap().status,
        svoct_store::Status::Sent
    );
    let failed = "transmission a CPAM 751 cpam@am.example echouee, refus definitif du serveur : 550 5.1.1 \
                  unknown ; 1 lot(s) annonce(s) transmis ne l'ont pas ete : contactez votre OCT avant tout renvoi";
    deliver(
        &e,
        ReturnKind::Art,
        art(FileStatus::Refused, failed, LotStatus::Refused)
            .build()
            .unwrap()
            .as_bytes(),
    );
    fetch(&e);
    assert_eq!(
        journal.by_compostage(&compostage).unwrap().unwrap().status,
        svoct_store::Status::Failed
    );
    let s = status(&e.ps, time::OffsetDateTime::now_utc()).unwrap();
    let a = s
        .needs_attention
        .iter()
        .find(|a| a.entry == Some(entry.id.0))
        .expect("the message needs attention");
    assert_eq!(a.kind, AttentionKind::RefusedByOct);
    assert!(a.reason.contains("550 5.1.1"), "{}", a.reason);
}
