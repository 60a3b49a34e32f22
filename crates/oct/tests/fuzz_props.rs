//! "Random and mutated input never panics", a few thousand cases, on stable Rust, for the sans-IO
//! SMTP server session (`inbound::session::fuzz_session`, the body of the cargo-fuzz target `smtp`).
//!
//! The owners' tests (src/inbound/session/tests.rs) run 256 cases of byte flips on one dialogue;
//! these run 3000 cases with structural edits (insert, delete, duplicate, truncate) over several
//! transcripts (plain, STARTTLS, pipelined, dot-stuffed, refused BDAT, RSET). Inputs committed
//! under fuzz/regressions/smtp/ are replayed. With `SVOCT_FUZZ_SEEDS=<dir>`,
//! `valid_transcripts_deliver` writes the transcripts to `<dir>/smtp/` (fuzz/make-seeds.sh).
//!
//! `fuzz_session` reads its STARTTLS switch and chunk size from bytes 0 and 1, which are also
//! client bytes: transcripts starting `EHLO` get STARTTLS (`E` is odd) and 72-byte chunks.

use proptest::prelude::*;
use std::path::Path;
use svoct_oct::inbound::session::{Action, PersistOutcome, Recipients, Session, SessionConfig, fuzz_session};
use svoct_testkit::fuzz::{self, Edit, mutate, replay};

const CASES: u32 = 3000;

/// The message as sent on the wire (dot-stuffed) ...
const MESSAGE: &[u8] = b"Subject: SV140700/123456789/2026112606550000042/00003\r\n\
Content-Description: FACTURE/SV\r\n\r\n..leading dot\r\nAAAA\r\n";

/// ... and as delivered, unstuffed (hand-written, not computed by the code under test).
const DELIVERED: &[u8] = b"Subject: SV140700/123456789/2026112606550000042/00003\r\n\
Content-Description: FACTURE/SV\r\n\r\n.leading dot\r\nAAAA\r\n";

/// Named client transcripts; each one delivers [`DELIVERED`] exactly once.
fn transcripts() -> Vec<(&'static str, Vec<u8>)> {
    let data = [b"DATA\r\n".as_slice(), MESSAGE, b".\r\n"].concat();
    vec![
        (
            "plain.smtp",
            [
                b"EHLO ps.example\r\nMAIL FROM:<ps@fuzz.example> SIZE=90 BODY=8BITMIME\r\n\
RCPT TO:<oct@fuzz.example>\r\n"
                    .as_slice(),
                &data,
                b"QUIT\r\n",
            ]
            .concat(),
        ),
        (
            "starttls.smtp",
            [
                b"EHLO ps.example\r\nSTARTTLS\r\nEHLO ps.example\r\nMAIL FROM:<>\r\n\
RCPT TO:<oct@fuzz.example>\r\n"
                    .as_slice(),
                &data,
                b"QUIT\r\n",
            ]
            .concat(),
        ),
        (
            "pipelined-rset-bdat.smtp",
            [
                b"HELO ps\r\nMAIL FROM:<a@b>\r\nRSET\r\nNOOP\r\nBDAT 4 LAST\r\nxxxx\
MAIL FROM:<ps@fuzz.example>\r\nRCPT TO:<nobody>\r\nRCPT TO:<oct@fuzz.example>\r\n"
                    .as_slice(),
                &data,
                b"VRFY x\r\nQUIT\r\n",
            ]
            .concat(),
        ),
    ]
}

/// Runs a transcript whole and returns the delivered messages' contents.
fn deliveries(transcript: &[u8]) -> Vec<Vec<u8>> {
    let mut s = Session::new(SessionConfig {
        starttls: true,
        recipients: Recipients::Only(vec!["oct@fuzz.example".into()]),
        ..SessionConfig::default()
    });
    let mut out = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    let mut pos = 0;
    while pos < transcript.len() && !s.is_closed() {
        let used = s.feed(transcript.get(pos..).unwrap_or_default());
        pos += used;
        let mut acted = false;
        while let Some(a) = s.next_action() {
            acted = true;
            match a {
                Action::BeginMessage(_) => current = Some(Vec::new()),
                Action::MessageData(chunk) => {
                    current
                        .as_mut()
                        .expect("content outside a message")
                        .extend(chunk.0);
                }
                Action::AbortMessage => current = None,
                Action::Persist => {
                    out.push(current.take().expect("persist outside a message"));
                    s.persisted(PersistOutcome::Stored { id: "1".into() });
                }
                Action::StartTls => s.tls_started(),
                Action::Close => {}
            }
        }
        if used == 0 && !acted {
            break;
        }
    }
    out
}

#[test]
fn valid_transcripts_deliver() {
    for (name, t) in transcripts() {
        assert_eq!(deliveries(&t), vec![DELIVERED.to_vec()], "{name}");
        fuzz_session(&t);
    }
    if let Some(dir) = std::env::var_os("SVOCT_FUZZ_SEEDS") {
        let d = Path::new(&dir).join("smtp");
        std::fs::create_dir_all(&d).expect("seed dir");
        for (name, t) in transcripts() {
            std::fs::write(d.join(name), t).expect("seed file");
        }
    }
}

/// Inserted bytes favour SMTP's separators.
fn edit() -> impl Strategy<Value = Edit> {
    fuzz::edit(b"\r\n.:<> ", 100)
}

#[test]
fn committed_regressions_never_panic() {
    let n = replay("smtp", fuzz_session);
    eprintln!("{n} committed regression inputs replayed");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn smtp_random_and_mutated_never_panic(
        random in prop::collection::vec(any::<u8>(), 0..1500),
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        fuzz_session(&random);
        let all = transcripts();
        let (_, base) = &all[which.index(all.len())];
        fuzz_session(&mutate(base, &edits));
    }
}
