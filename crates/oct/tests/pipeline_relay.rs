//! Relay of returns from AM to the PS (R8.4): routed by the recipient the message names, checked
//! against the file header, refused from senders that are not AM.

mod pipeline_common;

use pipeline_common::*;
use svoct_mail::profile::{self, ParseLimits, Profile};
use svoct_oct::pipeline::{Incoming, Pipeline};
use svoct_oct::state::{MessageKind, OutKind, Processed};

fn run(world: &World, from: &str, raw: &[u8]) -> Processed {
    let config = world.config();
    let keys = world.keys();
    let rcpt = vec![OCT_ADDRESS.to_string()];
    Pipeline::new(&config, &keys)
        .process(
            Incoming {
                spool_id: "00000000000000aa",
                mail_from: from,
                rcpt_to: &rcpt,
                raw,
            },
            &mut TestEnv::new(),
        )
        .expect("no infrastructure error")
}

#[test]
fn rsp_from_am_is_relayed_to_the_ps_it_names() {
    let world = World::new(2525, "");
    let file = rsp_580(PS_NUMBER);
    let raw = am_return(
        &world,
        "cpam100@am.example",
        Profile::Rsp,
        PS_NUMBER,
        &file,
        false,
    );
    let p = run(&world, "cpam100@am.example", &raw);
    assert!(p.quarantine.is_none(), "{:?}", p.summary);
    assert_eq!(p.kind, MessageKind::Relay);
    assert_eq!(p.outgoing.len(), 1);
    let out = &p.outgoing[0];
    assert_eq!(out.kind, OutKind::Relay);
    assert_eq!(out.rcpt, PS_ADDRESS);
    let parsed = profile::parse_message(&out.raw, &ParseLimits::default()).expect("parses");
    assert_eq!(
        parsed.profile_name(),
        "RSP",
        "plain: no certificate registered for the PS"
    );
    assert_eq!(
        parsed.attachment, file,
        "the NOEMIE file is relayed byte for byte"
    );
    assert_eq!(parsed.subject.fields().ps_number.as_deref(), Some(PS_NUMBER));
}

#[test]
fn returns_from_strangers_or_for_unknown_ps_are_quarantined() {
    let world = World::new(2525, "");
    let file = rsp_580(PS_NUMBER);
    let raw = am_return(
        &world,
        "mallory@evil.example",
        Profile::Rsp,
        PS_NUMBER,
        &file,
        false,
    );
    let p = run(&world, "mallory@evil.example", &raw);
    assert_eq!(
        p.quarantine.as_ref().map(|q| q.code.as_str()),
        Some("unknown_sender")
    );
    assert!(p.outgoing.is_empty());

    let other = rsp_580("111111111");
    let raw = am_return(
        &world,
        "cpam100@am.example",
        Profile::Rsp,
        "111111111",
        &other,
        true,
    );
    let p = run(&world, "cpam100@am.example", &raw);
    assert_eq!(p.quarantine.as_ref().map(|q| q.code.as_str()), Some("no_route"));

    // The subject names our PS, the file another: refused rather than misdelivered.
    let raw = am_return(
        &world,
        "cpam100@am.example",
        Profile::Rsp,
        PS_NUMBER,
        &other,
        true,
    );
    let p = run(&world, "cpam100@am.example", &raw);
    assert_eq!(
        p.quarantine.as_ref().map(|q| q.code.as_str()),
        Some("profile_mismatch")
    );
    assert!(p.outgoing.is_empty());
}

fn arl(ps_number: &str, lot: u16) -> Vec<u8> {
    use svoct_formats::arl::{Arl, ArlStatus, Stamp};
    use svoct_formats::noemie::Ymd;
    Arl {
        sender_type: "CP".into(),
        sender_number: "100".into(),
        ps_number: ps_number.into(),
        file_id: "000001".into(),
        lot_number: lot,
        lot_date: Ymd::new(2026, 11, 26),
        issued: Stamp {
            date: Ymd::new(2026, 11, 26),
            hour: 12,
            minute: 0,
        },
        status: ArlStatus::Positive,
        invoice_count: Some(3),
        lot_kind: "FSE".into(),
        reasons: Vec::new(),
    }
    .build()
    .expect("ARL")
}

#[test]
fn arl_for_a_ps_lot_is_relayed_and_arl_for_an_oct_lot_is_recorded() {
    let world = World::new(2525, "");
    let file = arl(PS_NUMBER, 1);
    let raw = am_return(
        &world,
        "cpam101@am.example",
        Profile::Arl,
        PS_NUMBER,
        &file,
        false,
    );
    let p = run(&world, "cpam101@am.example", &raw);
    assert!(p.quarantine.is_none(), "{:?}", p.summary);
    assert_eq!(p.outgoing.len(), 1);
    assert_eq!(p.outgoing[0].rcpt, PS_ADDRESS);

    // From the AMC: a lot the OCT built (R4.2), recorded and not relayed.
    let config = world.config();
    let keys = world.keys();
    let own = arl(PS_NUMBER, 7);
    let raw = am_return(
        &world,
        "mutuelle@amc.example",
        Profile::Arl,
        PS_NUMBER,
        &own,
        false,
    );
    let rcpt = vec![OCT_ADDRESS.to_string()];
    let mut env = TestEnv::new();
    env.own.push(("007".into(), "261126".into(), "000001".into()));
    let incoming = Incoming {
        spool_id: "00000000000000bb",
        mail_from: "mutuelle@amc.example",
        rcpt_to: &rcpt,
        raw: &raw,
    };
    let p = Pipeline::new(&config, &keys)
        .process(incoming, &mut env)
        .expect("processed");
    assert_eq!(p.kind, MessageKind::OwnArl);
    assert!(p.quarantine.is_none());
    assert!(p.outgoing.is_empty(), "not relayed");
    assert_eq!(p.own_arls.len(), 1);
    assert_eq!(
        (
            p.own_arls[0].lot_number.as_str(),
            p.own_arls[0].lot_date.as_str(),
            p.own_arls[0].file_id.as_str()
        ),
        ("007", "261126", "000001")
    );
    assert_eq!(p.own_arls[0].status, "positive");
    // An ARL from the AMC for a lot the OCT never built is set aside.
    let p = Pipeline::new(&config, &keys)
        .process(incoming, &mut TestEnv::new())
        .expect("processed");
    assert_eq!(
        p.quarantine.as_ref().map(|q| q.code.as_str()),
        Some("unknown_lot")
    );
}

fn loi_request(world: &World, version: u64) -> Vec<u8> {
    use svoct_formats::loi::{DateTime, DloiRequest};
    use svoct_mail::cms::CmsCipher;
    use svoct_mail::profile::{Mailbox, MessageHeaders, Protect};
    use svoct_mail::subject::{DloiRequestSubject, PartyNumber, Subject};
    let at = DateTime {
        year: 2026,
        month: 11,
        day: 26,
        hour: 9,
        minute: 0,
        second: 0,
    };
    let file = DloiRequest {
        ps_number: PS_NUMBER.into(),
        version,
        at,
    }
    .build()
    .expect("request");
    let envelope = MessageHeaders {
        from: Mailbox::new(PS_ADDRESS).expect("from"),
        to: Mailbox::new(OCT_ADDRESS).expect("to"),
        subject: Subject::DloiRequest(DloiRequestSubject {
            exercice: PartyNumber::new(PS_NUMBER).expect("n"),
            compostage: compostage(42),
        }),
        profile: Profile::DloiRequest,
        file_name: "DLOI.DAT".into(),
        date: time::OffsetDateTime::now_utc(),
        message_id: None,
    };
    let certs = [world.oct_cert()];
    profile::build_message(
        &envelope,
        &file,
        Protect::Encrypt {
            recipients: &certs,
            cipher: CmsCipher::Aes128Cbc,
            compress: false,
        },
    )
    .expect("message")
}

fn write_increment(dir: &std::path::Path, from: u64, to: u64, card: &str) {
    use svoct_formats::loi::{DateTime, Increment};
    let inc = Increment {
        from,
        to,
        at: DateTime {
            year: 2026,
            month: 11,
            day: 20,
            hour: 0,
            minute: 0,
            second: 0,
        },
        additions: vec![card.into()],
        removals: Vec::new(),
    };
    std::fs::write(
        dir.join(format!("inc-{from}-{to}.loi")),
        inc.build().expect("increment"),
    )
    .expect("write");
}

#[test]
fn dloi_requests_are_answered_from_the_loi_source() {
    let loi = tempfile::tempdir().expect("tempdir");
    let world = World::new(2525, &format!("[loi]\nsource = \"{}\"\n", loi.path().display()));
    let cards: Vec<String> = (0..3).map(|i| format!("{:0>16}", 1000 + i)).collect();
    let valid = |c: &String| svoct_formats::loi::valid_card(c);
    assert!(cards.iter().all(valid), "test cards are valid identifiers");
    write_increment(loi.path(), 0, 1, &cards[0]);
    write_increment(loi.path(), 1, 2, &cards[1]);
    write_increment(loi.path(), 2, 5, &cards[2]);
    std::fs::write(loi.path().join("README"), "not an increment").expect("write");

    let p = run(&world, PS_ADDRESS, &loi_request(&world, 1));
    assert!(p.quarantine.is_none(), "{:?}", p.summary);
    assert_eq!(p.kind, MessageKind::LoiRequest);
    let got: Vec<svoct_formats::loi::Increment> = p
        .outgoing
        .iter()
        .map(|o| {
            assert_eq!(o.kind, OutKind::Loi);
            assert_eq!(o.rcpt, PS_ADDRESS);
            let parsed = profile::parse_message(&o.raw, &ParseLimits::default()).expect("parses");
            assert_eq!(parsed.profile_name(), "LOI/INCREMENT");
            svoct_formats::loi::Increment::parse(&parsed.attachment).expect("increment")
        })
        .collect();
    assert_eq!(
        got.iter().map(|i| (i.from, i.to)).collect::<Vec<_>>(),
        [(1, 2), (2, 5)]
    );
    // Up to date: nothing to send.
    let p = run(&world, PS_ADDRESS, &loi_request(&world, 5));
    assert!(p.quarantine.is_none());
    assert!(p.outgoing.is_empty());
    // A hole in the chain is refused, not answered with a partial list.
    std::fs::remove_file(loi.path().join("inc-1-2.loi")).expect("rm");
    let p = run(&world, PS_ADDRESS, &loi_request(&world, 1));
    assert_eq!(
        p.quarantine.as_ref().map(|q| q.code.as_str()),
        Some("invalid_loi_request")
    );
}

#[test]
fn dloi_request_without_loi_source_is_quarantined() {
    let world = World::new(2525, "");
    let p = run(&world, PS_ADDRESS, &loi_request(&world, 0));
    assert_eq!(
        p.quarantine.as_ref().map(|q| q.code.as_str()),
        Some("no_loi_source")
    );
}
