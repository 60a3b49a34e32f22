//! Reconciliation when the sent file is gone: lots and invoices come from the journal entry
//! (inserted through the journal API), kinds and lot membership unknown; returns still match.

use svoct_formats::arl::{Arl, ArlStatus, Stamp};
use svoct_formats::noemie::{self, InvoiceOutcome, PartOutcome, PartState, RspParams, Ymd};
use svoct_mail::subject::{MinuteStamp, PartyNumber, ReturnKind as SubjectKind, ReturnSubject, Subject};
use svoct_ps::config::{Config, EXAMPLE};
use svoct_ps::reconcile::{ClassifiedMessage, Disposition, ReturnKind, handle};
use svoct_store::{ArlState, Direction, InboxId, Lot, NewEntry, PaymentState, Status, Store};

fn msg(id: i64, kind: ReturnKind, file: Vec<u8>) -> ClassifiedMessage {
    let now = time::OffsetDateTime::now_utc();
    ClassifiedMessage {
        inbox_id: InboxId(id),
        kind,
        subject: Subject::Return(ReturnSubject {
            kind: SubjectKind::Rsp,
            ps_number: PartyNumber::new("123456789").unwrap(),
            timestamp: MinuteStamp::new(time::PrimitiveDateTime::new(now.date(), now.time())).unwrap(),
        }),
        profile: kind.name().into(),
        message_id: None,
        file_name: None,
        file,
    }
}

#[test]
fn journal_only_sendings_are_reconciled_by_invoice_number() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::parse(EXAMPLE).unwrap();
    config.store = dir.path().join("ps.sqlite");
    let store = Store::open(&config.store).unwrap();
    store
        .journal()
        .insert(&NewEntry {
            direction: Direction::Out,
            profile: "FACTURE/SV/ZK".into(),
            subject: "SV140700/123456789/20261126073000123/00002".into(),
            compostage: Some("20261126073000123".into()),
            message_id: None,
            file_name: Some("F00001.b2".into()),
            lots: vec![Lot {
                number: "012".into(),
                date: "261126".into(),
            }],
            invoices: vec!["000000042".into(), "000000043".into()],
            status: Status::Sent,
        })
        .unwrap();
    let arl = Arl {
        sender_type: "CP".into(),
        sender_number: "123456789".into(),
        ps_number: "123456789".into(),
        file_id: String::new(),
        lot_number: 12,
        lot_date: Ymd::new(2026, 11, 26),
        issued: Stamp {
            date: Ymd::new(2026, 11, 26),
            hour: 10,
            minute: 0,
        },
        status: ArlStatus::Positive,
        invoice_count: Some(2),
        lot_kind: "FSE".into(),
        reasons: Vec::new(),
    }
    .build()
    .unwrap();
    assert_eq!(
        handle(&store, &config, &mut msg(1, ReturnKind::Arl, arl)).unwrap(),
        Disposition::Processed
    );
    let rsp = noemie::build_580(
        &RspParams {
            sender_type: "CP".into(),
            sender_number: "123456789".into(),
            sender_program: "AMSIM".into(),
            recipient_type: "TP".into(),
            recipient_number: "123456789".into(),
            file_id: "R00002".into(),
            created: Ymd::new(2026, 11, 28),
            flow_type: ' ',
            settlement_recipient: "123456789".into(),
            accounting_date: Ymd::new(2026, 11, 28),
            transfer_label: "VIREMENT".into(),
            payer: "CPAM".into(),
        },
        &[InvoiceOutcome {
            lot_number: "012".into(),
            lot_date: Ymd::new(2026, 11, 26),
            invoice_number: "000000043".into(),
            invoice_type: 'F',
            billing_date: None,
            amo: Some(PartOutcome {
                state: PartState::Paid,
                requested_cents: 3000,
                paid_cents: 2100,
                amc_number: String::new(),
            }),
            amc: None,
            rejects: Vec::new(),
            comments: Vec::new(),
        }],
    )
    .unwrap();
    assert_eq!(
        handle(&store, &config, &mut msg(2, ReturnKind::Rsp, rsp)).unwrap(),
        Disposition::Processed
    );
    let r = store.returns();
    let lots = r.lots().unwrap();
    assert_eq!(lots.len(), 1);
    assert_eq!(
        (lots[0].number.as_str(), lots[0].arl, lots[0].kind),
        ("012", ArlState::Positive, None)
    );
    let inv = r.invoices().unwrap();
    assert_eq!(inv.len(), 2);
    assert_eq!(inv[0].state, PaymentState::Awaiting);
    assert_eq!(
        (
            inv[1].number.as_str(),
            inv[1].state,
            inv[1].paid_cents,
            inv[1].paid_date.as_deref()
        ),
        ("000000043", PaymentState::Paid, 2100, Some("2026-11-28"))
    );
    // An empty file is refused (quarantined by the caller), never silently dropped.
    assert!(handle(&store, &config, &mut msg(3, ReturnKind::Rsp, Vec::new())).is_err());
}
