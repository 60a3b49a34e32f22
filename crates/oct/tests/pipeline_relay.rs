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
