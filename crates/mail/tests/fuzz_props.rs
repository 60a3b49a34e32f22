//! "Random and mutated input never panics", a few thousand cases, on stable Rust, for the
//! message inspector (`profile::fuzz_message`, the body of the cargo-fuzz target `message`) and
//! the POP3 client core (driven by fuzz/drivers/pop3.rs, the body of the target `pop3`).
//!
//! The owners' tests run 256 cases of byte flips on one plain message; these run 3000 cases with
//! structural edits (insert, delete, duplicate, truncate) over plain, ARL and `/ZK` encrypted
//! messages, and a POP3 server stream built from valid replies then mutated. Inputs committed
//! under fuzz/regressions/{message,pop3}/ are replayed. With `SVOCT_FUZZ_SEEDS=<dir>`,
//! `valid_samples_parse` writes the seeds to `<dir>/{message,pop3}/` (fuzz/make-seeds.sh).

#[path = "../../../fuzz/drivers/pop3.rs"]
mod pop3_driver;

use proptest::prelude::*;
use std::path::Path;
use std::sync::OnceLock;
use svoct_mail::cms::{CmsCipher, RecipientCert};
use svoct_mail::pop3::{Client, Command, Event};
use svoct_mail::profile::{
    Mailbox, MessageHeaders, ParseLimits, Profile, Protect, build_message, fuzz_message, parse_message,
};
use svoct_mail::subject::FileKind;
use svoct_testkit::certs::TestIdentity;
use svoct_testkit::fuzz::{self, Edit, mutate, replay};
use time::macros::datetime;

const CASES: u32 = 3000;

fn b2_file() -> Vec<u8> {
    let mut v = b"000".to_vec();
    v.extend(std::iter::repeat_n(b' ', 125));
    v.extend(b"2".repeat(256));
    v.extend(b"999".iter().chain(std::iter::repeat_n(&b' ', 125)));
    v
}

fn envelope(profile: Profile, subject: &str, file_name: &str) -> MessageHeaders {
    MessageHeaders {
        from: Mailbox::new("ps@fuzz.example").expect("mailbox"),
        to: Mailbox::new("oct@fuzz.example").expect("mailbox"),
        subject: subject.parse().expect("subject"),
        profile,
        file_name: file_name.to_owned(),
        date: datetime!(2026-11-26 06:55:00 +01:00),
        message_id: Some("seed.1@fuzz.example".to_owned()),
    }
}

/// Plain invoice, ARL return, and a compressed + encrypted invoice.
fn messages() -> &'static [(&'static str, Vec<u8>)] {
    static M: OnceLock<Vec<(&'static str, Vec<u8>)>> = OnceLock::new();
    M.get_or_init(|| {
        let invoice = envelope(
            Profile::Invoice(FileKind::Fse),
            "SV140700/123456789/2026112606550000042/00003",
            "F00042.B2",
        );
        let id = TestIdentity::new("oct.fuzz.example");
        let cert = RecipientCert::from_bytes(&id.cert_pem()).expect("test certificate");
        let recipients = [cert];
        let zk = Protect::Encrypt {
            recipients: &recipients,
            cipher: CmsCipher::Aes128Cbc,
            compress: true,
        };
        let plain = build_message(&invoice, &b2_file(), Protect::None).expect("plain message");
        let encrypted = build_message(&invoice, &b2_file(), zk).expect("ZK message");
        vec![("facture-sv.eml", plain), ("facture-sv-zk.eml", encrypted)]
    })
}

/// A POP3 server stream for the driver (fuzz/drivers/pop3.rs): plan byte, chunk byte, then the
/// greeting and the replies to UIDL, LIST, RETR and STAT.
fn pop3_streams() -> Vec<(&'static str, Vec<u8>)> {
    let mut retr = b"+OK ready <1.2@fuzz>\r\n".to_vec();
    retr.extend_from_slice(b"+OK\r\n1 uid-a\r\n2 uid-b\r\n.\r\n");
    retr.extend_from_slice(b"+OK 2 messages\r\n1 120\r\n2 80\r\n.\r\n");
    retr.extend_from_slice(b"+OK message follows\r\nSubject: x\r\n\r\n..dot\r\nbody\r\n.\r\n");
    retr.extend_from_slice(b"+OK 2 200\r\n");
    // Plan 0x04: four pipelined verbs from index 0 (UIDL, LIST, RETR 2, STAT); chunks of 17 bytes.
    vec![("session.pop3", [&[0x04, 0x11][..], &retr].concat())]
}

fn write_seeds(dir: &Path) {
    for (target, items) in [("message", messages().to_vec()), ("pop3", pop3_streams())] {
        let d = dir.join(target);
        std::fs::create_dir_all(&d).expect("seed dir");
        for (name, bytes) in items {
            std::fs::write(d.join(name), bytes).expect("seed file");
        }
    }
}

#[test]
fn valid_samples_parse() {
    for (name, msg) in messages() {
        let parsed = parse_message(msg, &ParseLimits::default());
        assert!(parsed.is_ok(), "{name}: {parsed:?}");
    }
    // The POP3 seed is a valid session: the driver's plan 0x04 gives these five events.
    for (_, s) in pop3_streams() {
        let mut c = Client::new(pop3_driver::LIMITS);
        for cmd in [Command::Uidl, Command::List, Command::Retr(2), Command::Stat] {
            c.send(cmd).expect("command");
        }
        c.feed(s.get(2..).unwrap_or_default()).expect("valid stream");
        let events: Vec<Event> = std::iter::from_fn(|| c.next_event()).collect();
        assert_eq!(events.len(), 5, "{events:?}");
        assert_eq!(
            events[1],
            Event::Uidls(vec![(1, "uid-a".into()), (2, "uid-b".into())])
        );
        assert_eq!(events[2], Event::Listing(vec![(1, 120), (2, 80)]));
        assert_eq!(
            events[3],
            Event::Message {
                number: 2,
                raw: b"Subject: x\r\n\r\n.dot\r\nbody\r\n".to_vec()
            }
        );
        assert_eq!(events[4], Event::Stat { count: 2, size: 200 });
        pop3_driver::fuzz_pop3(&s);
    }
    if let Some(dir) = std::env::var_os("SVOCT_FUZZ_SEEDS") {
        write_seeds(Path::new(&dir));
    }
}

/// Inserted bytes favour MIME's separators.
fn edit() -> impl Strategy<Value = Edit> {
    fuzz::edit(b"\r\n.:=- ", 200)
}

#[test]
fn committed_regressions_never_panic() {
    let n = replay("message", fuzz_message) + replay("pop3", pop3_driver::fuzz_pop3);
    eprintln!("{n} committed regression inputs replayed");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn message_random_and_mutated_never_panic(
        random in prop::collection::vec(any::<u8>(), 0..1500),
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        fuzz_message(&random);
        let (_, base) = &messages()[which.index(messages().len())];
        fuzz_message(&mutate(base, &edits));
    }

    #[test]
    fn pop3_random_and_mutated_server_bytes_never_panic(
        random in prop::collection::vec(any::<u8>(), 0..1500),
        plan in any::<u8>(),
        chunk in 1u8..=255,
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        pop3_driver::fuzz_pop3(&random);
        let (_, stream) = &pop3_streams()[0];
        let mut s = mutate(stream.get(2..).unwrap_or_default(), &edits);
        s.splice(0..0, [plan, chunk]);
        pop3_driver::fuzz_pop3(&s);
    }
}
