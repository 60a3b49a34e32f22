//! POP3 client fuzz driver, shared by the cargo-fuzz target `pop3` (fuzz/fuzz_targets/pop3.rs)
//! and the stable property test crates/mail/tests/fuzz_props.rs (included there with `#[path]`).
//!
//! The POP3 core (`svoct_mail::pop3::Client`) has no fuzz entry point of its own, so this drives
//! it with arbitrary server bytes: byte 0 picks which commands are pipelined before the server
//! speaks, byte 1 the chunk size the rest is fed in, and between chunks more commands are sent
//! when byte 0 says so. The bounds the client promises are checked on every event.

use svoct_mail::pop3::{Client, Command, Event, Limits};

/// Limits small enough that random input reaches every bound.
pub const LIMITS: Limits = Limits {
    max_line: 256,
    max_message: 1000,
    max_listing: 10,
};

fn command(i: u8) -> Command {
    match i % 12 {
        0 => Command::Uidl,
        1 => Command::List,
        2 => Command::Retr(u32::from(i)),
        3 => Command::Stat,
        4 => Command::Capa,
        5 => Command::Dele(1),
        6 => Command::User("ps".into()),
        7 => Command::Apop {
            user: "ps".into(),
            digest: "0123456789abcdef0123456789abcdef".into(),
        },
        8 => Command::Noop,
        9 => Command::Rset,
        10 => Command::Stls,
        _ => Command::Quit,
    }
}

fn check(event: &Event) {
    match event {
        Event::Message { raw, .. } => assert!(raw.len() as u64 <= LIMITS.max_message),
        Event::Listing(l) => assert!(l.len() <= LIMITS.max_listing),
        Event::Uidls(l) => assert!(l.len() <= LIMITS.max_listing),
        Event::Capabilities(l) => assert!(l.len() <= LIMITS.max_listing),
        _ => {}
    }
}

/// Feeds `data` as the server side of a session; must never panic.
pub fn fuzz_pop3(data: &[u8]) {
    let plan = data.first().copied().unwrap_or(0);
    let chunk = usize::from(data.get(1).copied().unwrap_or(64)).max(1);
    let body = data.get(2..).unwrap_or_default();
    let mut client = Client::new(LIMITS);
    // Pipeline up to 7 consecutive verbs: count = plan % 8, first verb = plan / 8 (mod 12).
    for k in 0..(plan % 8) {
        let _ = client.send(command((plan >> 3).wrapping_add(k)));
    }
    for (n, piece) in body.chunks(chunk).enumerate() {
        let fed = client.feed(piece);
        while let Some(event) = client.next_event() {
            check(&event);
        }
        if fed.is_err() {
            // A failed client must stay failed.
            assert!(client.feed(b"+OK\r\n").is_err());
            return;
        }
        if plan & 0x80 != 0 {
            let _ = client.send(command(piece.first().copied().unwrap_or(0) ^ n as u8));
        }
    }
}
