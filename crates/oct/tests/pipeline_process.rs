//! The pipeline on its own (no servers): what it forwards, to whom, with which bytes, and what it
//! refuses and says in the ART.

mod pipeline_common;

use pipeline_common::*;
use svoct_formats::art::{Art, FileStatus, LotStatus};
use svoct_formats::b2;
use svoct_mail::profile::{self, ParseLimits, Profile};
use svoct_oct::pipeline::{Incoming, Pipeline};
use svoct_oct::state::{OutKind, Processed};

/// Findings of a file the OCT built: R3.2 (file sender = the lots' PS) does not apply to files
/// whose sender type is `OT` (the validator skips it), so a forwarded file has no findings at all.
fn oct_file_findings(f: &b2::B2Input<'_>) -> Vec<b2::Finding> {
    b2::validate(f)
}

fn run(world: &World, raw: &[u8], env: &mut TestEnv) -> Processed {
    let config = world.config();
    let keys = world.keys();
    let pipeline = Pipeline::new(&config, &keys);
    let rcpt = vec![OCT_ADDRESS.to_string()];
    pipeline
        .process(
            Incoming {
                spool_id: "0000000000000001",
                mail_from: PS_ADDRESS,
                rcpt_to: &rcpt,
                raw,
            },
            env,
        )
        .expect("no infrastructure error")
}

fn opened(world: &World, raw: &[u8]) -> (profile::ParsedMessage, Vec<u8>) {
    let parsed = profile::parse_message(raw, &ParseLimits::default()).expect("outgoing parses");
    let bytes = parsed
        .open(Some(&world.am_key), &ParseLimits::default())
        .expect("opens")
        .bytes;
    (parsed, bytes)
}

fn art_of(world: &World, p: &Processed) -> Art {
    let art = p
        .outgoing
        .iter()
        .find(|o| o.kind == OutKind::Art)
        .expect("an ART");
    assert_eq!(art.rcpt, PS_ADDRESS);
    let (parsed, body) = opened(world, &art.raw);
    assert!(matches!(parsed.description.profile, Profile::Art(_)));
    assert_eq!(parsed.subject.to_string().get(..14), Some("ART/123456789/"));
    Art::parse(&body).expect("the ART parses back in the shared format")
}

fn count(art: &Art, status: LotStatus) -> usize {
    art.lots.iter().filter(|l| l.status == status).count()
}

#[test]
fn single_file_is_split_per_destination_with_lots_byte_identical() {
    let world = World::new(2525, "");
    let params = synth(45, 3, false, 7);
    let file = single_file(&params);
    let raw = ps_message(&world, PS_ADDRESS, &file, PS_NUMBER, 45, 1, false);
    let p = run(&world, &raw, &mut TestEnv::new());
    assert!(p.quarantine.is_none(), "{:?}", p.summary);
    let forwards: Vec<_> = p.outgoing.iter().filter(|o| o.kind == OutKind::Forward).collect();
    assert_eq!(forwards.len(), 3);
    let mut rcpts: Vec<&str> = forwards.iter().map(|o| o.rcpt.as_str()).collect();
    rcpts.sort_unstable();
    assert_eq!(
        rcpts,
        ["caisse102@am.example", "cpam100@am.example", "cpam101@am.example"]
    );

    // Every lot of the input appears exactly once, byte for byte, in the forwarded files.
    let input = b2::parse(&file).expect("input");
    let mut seen = 0;
    for f in &forwards {
        let parsed = profile::parse_message(&f.raw, &ParseLimits::default()).expect("parses");
        let encrypted = f.rcpt == "cpam100@am.example";
        assert_eq!(
            parsed.profile_name(),
            if encrypted { "FACTURE/SV/K" } else { "FACTURE/SV" }
        );
        let body = if encrypted {
            parsed
                .open(Some(&world.am_key), &ParseLimits::default())
                .expect("am decrypts")
                .bytes
        } else {
            parsed.attachment.clone()
        };
        let out = b2::parse(&body).expect("forwarded file parses");
        assert!(
            oct_file_findings(&out).is_empty(),
            "{:?}",
            oct_file_findings(&out)
        );
        // The OCT is the sender (type OT, its number), positions 4-5 and 6-19.
        assert_eq!(&body[3..5], b"OT");
        assert_eq!(&body[5..19], b"98765432100000");
        // The subject's exercice is the OCT's sender number and the count is the file's.
        let s = parsed.subject.fields();
        assert_eq!(s.exercice.as_deref(), Some("98765432100000"));
        assert_eq!(
            s.invoice_count,
            Some(u32::try_from(out.invoice_count()).expect("count"))
        );
        for lot in out.lots() {
            assert!(input.lots().iter().any(|l| l.bytes() == lot.bytes()));
            seen += 1;
        }
    }
    assert_eq!(seen, input.lots().len());

    let art = art_of(&world, &p);
    assert_eq!(art.file_status, FileStatus::Accepted);
    assert_eq!(art.ps_number, PS_NUMBER);
    assert_eq!(count(&art, LotStatus::Forwarded), input.lots().len(), "{art:?}");

    // Deterministic: the same spooled message gives the same Message-IDs.
    let again = run(&world, &raw, &mut TestEnv::new());
    let ids = |p: &Processed| {
        p.outgoing
            .iter()
            .map(|o| o.message_id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&p), ids(&again));
    let unique: std::collections::BTreeSet<_> = ids(&p).into_iter().collect();
    assert_eq!(unique.len(), p.outgoing.len());
}

#[test]
fn enriched_fse_is_marked_and_the_amc_flow_is_built() {
    let world = World::new(2525, "");
    let mut params = synth(12, 1, true, 3);
    params.destinations = 1;
    let lots = b2::synth::generate_bytes(&params).expect("lots");
    let input = b2::parse(&lots).expect("parse");
    // Route every AMC number the generator used to our single AMC.
    let amcs: std::collections::BTreeSet<String> = input
        .lots()
        .iter()
        .flat_map(|l| l.invoices().iter().map(|i| i.amc_number().to_string()))
        .collect();
    let extra: String = amcs
        .iter()
        .filter(|a| a.as_str() != "AMC0000001")
        .map(|a| {
            format!("[[amc]]\norganisation = \"{a}\"\nmailbox = \"mutuelle@amc.example\"\nplaintext = true\n")
        })
        .collect();
    let world = if extra.is_empty() {
        world
    } else {
        World::new(2525, &extra)
    };
    let file = single_file(&params);
    let raw = ps_message(&world, PS_ADDRESS, &file, PS_NUMBER, 12, 3, false);
    let mut env = TestEnv::new();
    let p = run(&world, &raw, &mut env);
    assert!(p.quarantine.is_none(), "{:?}", p.summary);

    let fwd = p
        .outgoing
        .iter()
        .find(|o| o.kind == OutKind::Forward)
        .expect("AMO forward");
    let (_, body) = opened(&world, &fwd.raw);
    let out = b2::parse(&body).expect("AMO file");
    let split = out
        .lots()
        .iter()
        .flat_map(|l| l.invoices())
        .filter(|i| i.split_by_oct())
        .count();
    assert_eq!(
        split, 12,
        "every contract-99 invoice is marked A at type 5 position 90"
    );
    // Only position 90 of each type 5 changed.
    let orig = b2::parse(&file).expect("orig");
    let (a, b) = (orig.lots()[0].bytes(), out.lots()[0].bytes());
    let diffs: Vec<usize> = a
        .iter()
        .zip(b)
        .enumerate()
        .filter(|(_, (x, y))| x != y)
        .map(|(i, _)| i % 128)
        .collect();
    assert!(!diffs.is_empty() && diffs.iter().all(|&d| d == 89), "{diffs:?}");

    let amc: Vec<_> = p.outgoing.iter().filter(|o| o.kind == OutKind::Amc).collect();
    assert!(!amc.is_empty());
    let mut amc_invoices = 0;
    for m in &amc {
        assert_eq!(m.rcpt, "mutuelle@amc.example");
        let parsed = profile::parse_message(&m.raw, &ParseLimits::default()).expect("parses");
        let f = b2::parse(&parsed.attachment).expect("AMC file");
        let f_id = String::from_utf8_lossy(&parsed.attachment[49..55]).into_owned();
        let findings = oct_file_findings(&f);
        assert!(findings.is_empty(), "{findings:?}");
        for lot in f.lots() {
            assert_eq!(&lot.header()[10..13], b"OCT", "origin marks an OCT-built lot");
            // Recorded with the number and date its ARL will carry (R4.2).
            let number = format!("{:03}", lot.lot_number().expect("number"));
            assert!(
                p.own_lots
                    .iter()
                    .any(|o| o.lot_number == number && o.lot_date == lot.date() && o.file_id == f_id),
                "{number} {} not in {:?}",
                lot.date(),
                p.own_lots
            );
            amc_invoices += lot.invoice_count();
        }
    }
    assert_eq!(amc_invoices, 12);
    assert_eq!(
        p.own_lots.len(),
        amc.iter().map(|_| 1).sum::<usize>().max(p.own_lots.len())
    );
    assert!(!p.own_lots.is_empty());
    let art = art_of(&world, &p);
    assert!(!art.amc.is_empty(), "{art:?}");
    assert_eq!(art.amc.iter().map(|a| a.invoices).sum::<u32>(), 12);
}

fn refused(world: &World, raw: &[u8], code: &str, art: bool) -> Processed {
    let p = run(world, raw, &mut TestEnv::new());
    let q = p
        .quarantine
        .as_ref()
        .unwrap_or_else(|| panic!("quarantined: {:?}", p.summary));
    assert_eq!(q.code, code, "{}", q.reason);
    assert_eq!(q.raw, raw, "the quarantine keeps the message");
    assert!(
        p.outgoing.iter().all(|o| o.kind == OutKind::Art),
        "nothing forwarded"
    );
    assert_eq!(p.outgoing.len(), usize::from(art));
    if art {
        let art = art_of(world, &p);
        assert_eq!(art.file_status, FileStatus::Refused);
        assert!(!art.file_detail.is_empty());
    }
    p
}

#[test]
fn unknown_sender_is_quarantined_without_art() {
    let world = World::new(2525, "");
    let file = single_file(&synth(5, 1, false, 1));
    let raw = ps_message(&world, "stranger@ps.example", &file, PS_NUMBER, 5, 1, false);
    refused(&world, &raw, "unknown_sender", false);
}

#[test]
fn undecryptable_attachment_is_quarantined_and_explained() {
    let world = World::new(2525, "");
    let file = single_file(&synth(5, 1, false, 1));
    // Encrypted for someone else (the AM), not the OCT.
    let other = World::new(2525, "");
    let mut raw = ps_message(&other, PS_ADDRESS, &file, PS_NUMBER, 5, 1, false);
    // `other`'s OCT certificate is not ours.
    let p = refused(&world, &raw, "undecryptable", true);
    assert!(art_of(&world, &p).file_detail.contains("OCT"));
    // A truncated envelope as well.
    let text = String::from_utf8(raw.clone()).expect("ascii");
    let cut = text.rfind("\r\n\r\n").map(|i| i + 4).expect("body") + 200;
    raw.truncate(cut);
    raw.extend_from_slice(b"\r\n");
    let p = run(&world, &raw, &mut TestEnv::new());
    assert!(p.quarantine.is_some());
}

#[test]
fn corrupt_file_is_quarantined_and_explained() {
    let world = World::new(2525, "");
    let mut file = single_file(&synth(5, 1, false, 1));
    file.truncate(file.len() - 7);
    let raw = ps_message(&world, PS_ADDRESS, &file, PS_NUMBER, 5, 1, false);
    let p = refused(&world, &raw, "corrupt_file", true);
    assert!(art_of(&world, &p).file_detail.contains("not a multiple of 128"));
}

#[test]
fn subject_count_disagreeing_with_file_is_quarantined() {
    let world = World::new(2525, "");
    let file = single_file(&synth(5, 1, false, 1));
    let raw = ps_message(&world, PS_ADDRESS, &file, PS_NUMBER, 6, 1, false);
    refused(&world, &raw, "profile_mismatch", true);
}

#[test]
fn sender_number_of_another_ps_is_not_authorised() {
    let world = World::new(2525, "");
    let mut p = synth(5, 1, false, 1);
    p.ps_number = "987654321".into();
    let file = single_file(&p);
    let raw = ps_message(&world, PS_ADDRESS, &file, "987654321", 5, 1, false);
    refused(&world, &raw, "not_authorised", true);
}

#[test]
fn destination_without_route_refuses_the_whole_message() {
    let world = World::new(2525, "");
    let file = single_file(&synth(20, 5, false, 1));
    let raw = ps_message(&world, PS_ADDRESS, &file, PS_NUMBER, 20, 1, false);
    let p = refused(&world, &raw, "no_route", true);
    let art = art_of(&world, &p);
    assert!(count(&art, LotStatus::NotForwarded) > 0, "{art:?}");
    assert_eq!(count(&art, LotStatus::Forwarded), 0, "{art:?}");
}

#[test]
fn invalid_lot_is_refused_and_the_others_forwarded() {
    let world = World::new(2525, "");
    let mut file = single_file(&synth(30, 2, false, 1));
    // Break the invoice count of the first lot's trailer (type 6, positions 11-13).
    let input = b2::parse(&file).expect("parse");
    let first = &input.lots()[0];
    let trailer_at = first.offset() + first.bytes().len() - 128;
    drop(input);
    file[trailer_at + 10..trailer_at + 13].copy_from_slice(b"999");
    let raw = ps_message(&world, PS_ADDRESS, &file, PS_NUMBER, 30, 1, false);
    let p = run(&world, &raw, &mut TestEnv::new());
    assert!(p.quarantine.is_none());
    let art = art_of(&world, &p);
    assert_eq!(count(&art, LotStatus::Refused), 1, "{art:?}");
    assert!(count(&art, LotStatus::Forwarded) >= 1, "{art:?}");
}

#[test]
fn garbage_is_quarantined() {
    let world = World::new(2525, "");
    let p = run(&world, b"this is not a message at all", &mut TestEnv::new());
    assert_eq!(
        p.quarantine.as_ref().map(|q| q.code.as_str()),
        Some("unreadable_message")
    );
    let p = run(&world, &[0xff; 300], &mut TestEnv::new());
    assert!(p.quarantine.is_some());
}

#[test]
fn file_framing_that_disagrees_with_its_lots_is_quarantined() {
    let world = World::new(2525, "");
    let mut file = single_file(&synth(5, 1, false, 1));
    // The 999 trailer's lot count (positions 83-85) no longer matches the lots.
    let n = file.len();
    file[n - 128 + 82..n - 128 + 85].copy_from_slice(b"007");
    let raw = ps_message(&world, PS_ADDRESS, &file, PS_NUMBER, 5, 1, false);
    let p = refused(&world, &raw, "invalid_file", true);
    assert_eq!(count(&art_of(&world, &p), LotStatus::NotForwarded), 1);
}

#[test]
fn an_art_sent_to_the_oct_is_quarantined() {
    use svoct_mail::profile::{Mailbox, MessageHeaders, Protect, PsCategory};
    use svoct_mail::subject::{MinuteStamp, PartyNumber, ReturnKind, ReturnSubject, Subject};
    let world = World::new(2525, "");
    let at = time::PrimitiveDateTime::new(
        time::Date::from_calendar_date(2026, time::Month::November, 26).expect("date"),
        time::Time::from_hms(8, 0, 0).expect("time"),
    );
    let envelope = MessageHeaders {
        from: Mailbox::new(PS_ADDRESS).expect("from"),
        to: Mailbox::new(OCT_ADDRESS).expect("to"),
        subject: Subject::Return(ReturnSubject {
            kind: ReturnKind::Art,
            ps_number: PartyNumber::new(PS_NUMBER).expect("n"),
            timestamp: MinuteStamp::new(at).expect("stamp"),
        }),
        profile: Profile::Art(PsCategory::Xx),
        file_name: "ART.txt".into(),
        date: time::OffsetDateTime::now_utc(),
        message_id: None,
    };
    let raw = profile::build_message(&envelope, b"hello", Protect::None).expect("message");
    refused(&world, &raw, "unexpected_profile", false);
}

/// Lots of a file as the PS sealed them.
fn lot_bytes(file: &[u8]) -> Vec<Vec<u8>> {
    b2::parse(file)
        .expect("file")
        .lots()
        .iter()
        .map(|l| l.bytes().to_vec())
        .collect()
}

/// The lots inside the forwards of `p`, as forwarded.
fn forwarded_lots(world: &World, p: &Processed) -> Vec<Vec<u8>> {
    let mut lots = Vec::new();
    for f in p.outgoing.iter().filter(|o| o.kind == OutKind::Forward) {
        let parsed = profile::parse_message(&f.raw, &ParseLimits::default()).expect("parses");
        let body = if parsed.profile_name().ends_with("/K") {
            opened(world, &f.raw).1
        } else {
            parsed.attachment.clone()
        };
        lots.extend(lot_bytes(&body));
    }
    lots
}

#[test]
fn the_same_message_again_forwards_nothing_and_the_art_says_duplicate() {
    let world = World::new(2525, "");
    let file = single_file(&synth(45, 3, false, 7));
    let raw = ps_message(&world, PS_ADDRESS, &file, PS_NUMBER, 45, 1, false);
    let mut env = TestEnv::new();
    let first = run(&world, &raw, &mut env);
    assert_eq!(forwarded_lots(&world, &first).len(), 3);
    assert_eq!(first.claims.lots.len(), 3);
    env.record(&first);

    for _ in 0..2 {
        let again = run(&world, &raw, &mut env);
        assert!(
            again.quarantine.is_none(),
            "a duplicate is answered, not quarantined"
        );
        assert!(
            again.outgoing.iter().all(|o| o.kind == OutKind::Art),
            "nothing forwarded again"
        );
        assert!(again.claims.lots.is_empty());
        let art = art_of(&world, &again);
        assert_eq!(art.file_status, FileStatus::Accepted);
        assert!(art.file_detail.contains("doublon"), "{}", art.file_detail);
        assert_eq!(count(&art, LotStatus::AlreadyForwarded), 3, "{art:?}");
        for l in &art.lots {
            assert!(l.detail.starts_with("deja transmis a "), "{}", l.detail);
        }
        let text = String::from_utf8(opened(&world, &again.outgoing[0].raw).1).expect("text");
        assert!(text.contains("doublon, non retransmis"), "{text}");
    }
}

#[test]
fn the_same_file_under_a_new_compostage_forwards_nothing_again() {
    let world = World::new(2525, "");
    let file = single_file(&synth(45, 3, false, 7));
    let mut env = TestEnv::new();
    let first = run(
        &world,
        &ps_message(&world, PS_ADDRESS, &file, PS_NUMBER, 45, 1, false),
        &mut env,
    );
    env.record(&first);
    // A retransmission as R5.3 wants it (new compostage, new encryption): same lots.
    let again = run(
        &world,
        &ps_message(&world, PS_ADDRESS, &file, PS_NUMBER, 45, 2, false),
        &mut env,
    );
    assert!(again.outgoing.iter().all(|o| o.kind == OutKind::Art));
    let art = art_of(&world, &again);
    assert_eq!(count(&art, LotStatus::AlreadyForwarded), 3);
    assert!(
        art.file_detail.is_empty(),
        "not the same message: {}",
        art.file_detail
    );
}

#[test]
fn a_file_mixing_forwarded_and_new_lots_forwards_only_the_new_ones() {
    let world = World::new(2525, "");
    let a = single_file(&synth(45, 3, false, 7));
    let b = single_file(&synth(45, 3, false, 8));
    let mut env = TestEnv::new();
    let first = run(
        &world,
        &ps_message(&world, PS_ADDRESS, &a, PS_NUMBER, 45, 1, false),
        &mut env,
    );
    env.record(&first);
    // Lot 001 of the first file, lots 002 and 003 of another.
    let (ia, ib) = (b2::parse(&a).expect("a"), b2::parse(&b).expect("b"));
    let mixed_lots = vec![ia.lots()[0].clone(), ib.lots()[1].clone(), ib.lots()[2].clone()];
    let mixed = b2::build_single_file(
        &mixed_lots,
        &b2::SingleFileParams {
            sender_type: "TP".into(),
            oct_id: OCT_ID.into(),
            file_id: "F00002".into(),
            date: "261126".into(),
            message: String::new(),
        },
    )
    .expect("mixed file");
    let invoices = u32::try_from(b2::parse(&mixed).expect("mixed").invoice_count()).expect("count");
    let p = run(
        &world,
        &ps_message(&world, PS_ADDRESS, &mixed, PS_NUMBER, invoices, 2, false),
        &mut env,
    );
    assert!(p.quarantine.is_none(), "{:?}", p.summary);
    let mut got = forwarded_lots(&world, &p);
    got.sort();
    let mut want = vec![ib.lots()[1].bytes().to_vec(), ib.lots()[2].bytes().to_vec()];
    want.sort();
    assert_eq!(got, want, "only the two new lots are forwarded");
    let art = art_of(&world, &p);
    assert_eq!(art.file_status, FileStatus::Accepted);
    let statuses: Vec<(String, LotStatus)> = art.lots.iter().map(|l| (l.number.clone(), l.status)).collect();
    assert_eq!(
        statuses,
        [
            ("001".to_string(), LotStatus::AlreadyForwarded),
            ("002".to_string(), LotStatus::Forwarded),
            ("003".to_string(), LotStatus::Forwarded)
        ]
    );
}

#[test]
fn another_file_under_a_used_compostage_is_refused_with_a_request_for_a_new_one() {
    let world = World::new(2525, "");
    let a = single_file(&synth(45, 3, false, 7));
    let b = single_file(&synth(45, 3, false, 8));
    let mut env = TestEnv::new();
    let first = run(
        &world,
        &ps_message(&world, PS_ADDRESS, &a, PS_NUMBER, 45, 1, false),
        &mut env,
    );
    env.record(&first);
    // A second workstation drew the same compostage for another file.
    let clash = ps_message(&world, PS_ADDRESS, &b, PS_NUMBER, 45, 1, false);
    let p = run(&world, &clash, &mut env);
    let q = p.quarantine.as_ref().expect("quarantined, never dropped");
    assert_eq!(q.code, "compostage_reused");
    assert!(
        p.outgoing.iter().all(|o| o.kind == OutKind::Art),
        "nothing forwarded"
    );
    assert!(p.claims == Default::default(), "a refused message claims nothing");
    let art = art_of(&world, &p);
    assert_eq!(art.file_status, FileStatus::Refused);
    assert!(
        art.file_detail.contains("nouveau compostage"),
        "{}",
        art.file_detail
    );
    assert_eq!(count(&art, LotStatus::NotForwarded), 3);
    // Sent again with a new compostage, it goes through.
    let p = run(
        &world,
        &ps_message(&world, PS_ADDRESS, &b, PS_NUMBER, 45, 2, false),
        &mut env,
    );
    assert!(p.quarantine.is_none());
    assert_eq!(forwarded_lots(&world, &p).len(), 3);
}

#[test]
fn forward_message_ids_come_from_the_lots_not_from_the_spooled_message() {
    let world = World::new(2525, "");
    let file = single_file(&synth(45, 3, false, 7));
    let forward_ids = |p: &Processed| {
        let mut ids: Vec<String> = p
            .outgoing
            .iter()
            .filter(|o| o.kind == OutKind::Forward)
            .map(|o| o.message_id.clone())
            .collect();
        ids.sort();
        ids
    };
    // Two copies that no index could tell apart (fresh environments): the forwards carry the
    // same Message-IDs, the ART does not.
    let one = run(
        &world,
        &ps_message(&world, PS_ADDRESS, &file, PS_NUMBER, 45, 1, false),
        &mut TestEnv::new(),
    );
    let config = world.config();
    let keys = world.keys();
    let rcpt = vec![OCT_ADDRESS.to_string()];
    let two = Pipeline::new(&config, &keys)
        .process(
            Incoming {
                spool_id: "0000000000000099",
                mail_from: PS_ADDRESS,
                rcpt_to: &rcpt,
                raw: &ps_message(&world, PS_ADDRESS, &file, PS_NUMBER, 45, 2, false),
            },
            &mut TestEnv::new(),
        )
        .expect("process");
    assert_eq!(forward_ids(&one).len(), 3);
    assert_eq!(forward_ids(&one), forward_ids(&two));
    let art_id = |p: &Processed| {
        p.outgoing
            .iter()
            .find(|o| o.kind == OutKind::Art)
            .map(|o| o.message_id.clone())
    };
    assert_ne!(art_id(&one), art_id(&two));
    // Other lots, other Message-IDs.
    let other = run(
        &world,
        &ps_message(
            &world,
            PS_ADDRESS,
            &single_file(&synth(45, 3, false, 8)),
            PS_NUMBER,
            45,
            3,
            false,
        ),
        &mut TestEnv::new(),
    );
    assert!(
        forward_ids(&other)
            .iter()
            .all(|id| !forward_ids(&one).contains(id))
    );
}

#[test]
fn a_lot_twice_in_one_file_is_forwarded_once() {
    let world = World::new(2525, "");
    let a = single_file(&synth(45, 3, false, 7));
    let ia = b2::parse(&a).expect("a");
    let lots = vec![ia.lots()[0].clone(), ia.lots()[1].clone(), ia.lots()[0].clone()];
    let file = b2::build_single_file(
        &lots,
        &b2::SingleFileParams {
            sender_type: "TP".into(),
            oct_id: OCT_ID.into(),
            file_id: "F00003".into(),
            date: "261126".into(),
            message: String::new(),
        },
    )
    .expect("file");
    let invoices = u32::try_from(b2::parse(&file).expect("file").invoice_count()).expect("count");
    let p = run(
        &world,
        &ps_message(&world, PS_ADDRESS, &file, PS_NUMBER, invoices, 1, false),
        &mut TestEnv::new(),
    );
    assert!(p.quarantine.is_none(), "{:?}", p.summary);
    assert_eq!(forwarded_lots(&world, &p).len(), 2);
    assert_eq!(p.claims.lots.len(), 2);
    let art = art_of(&world, &p);
    assert_eq!(art.lots[2].status, LotStatus::Refused);
    assert!(art.lots[2].detail.contains("en double"), "{}", art.lots[2].detail);
}
