//! The sans-IO POP3 client (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS).
//!
//! [`Client::send`] turns a [`Command`] into the bytes to write and remembers that a reply is due;
//! [`Client::feed`] takes whatever bytes arrived (any chunking) and [`Client::next_event`] yields
//! the decoded replies in order. No sockets, no clocks: the same core runs under the blocking
//! shell, an async one, or a test feeding bytes split at every possible point.
//!
//! Bounds: every line (status or message content) is at most [`Limits::max_line`] bytes, a
//! retrieved message at most [`Limits::max_message`] bytes, a listing at most
//! [`Limits::max_listing`] entries. Any violation is a [`ProtocolError`] naming the stream offset,
//! after which the client refuses to continue (the connection must be dropped).

use std::collections::VecDeque;
use std::fmt;

use crate::secret::Secret;

/// Size bounds on what the server may send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest line, terminator included (status lines and message lines).
    pub max_line: usize,
    /// Largest message (after dot-unstuffing) that RETR may return.
    pub max_message: u64,
    /// Most entries in a LIST, UIDL or CAPA answer.
    pub max_listing: usize,
}

impl Default for Limits {
    /// 64 KiB lines, 64 MiB messages, 100 000 messages in a mailbox.
    fn default() -> Self {
        Limits {
            max_line: 64 * 1024,
            max_message: 64 * 1024 * 1024,
            max_listing: 100_000,
        }
    }
}

/// Largest header block `TOP n 0` may return: real headers are a few KiB, and a server that
/// answers more is not giving headers.
pub const MAX_TOP_BYTES: u64 = 1024 * 1024;

/// A command to send. Message numbers are the session's (1-based).
#[derive(Debug)]
pub enum Command {
    User(String),
    Pass(Secret<String>),
    /// `APOP user digest`, see [`apop_digest`].
    Apop {
        user: String,
        digest: String,
    },
    Stat,
    /// `LIST` (all messages).
    List,
    /// `UIDL` (all messages).
    Uidl,
    Retr(u32),
    /// `TOP n 0`: the message's header block only (RFC 1939 optional command), so a message
    /// can be recognised without being retrieved (which some servers count as "read").
    Top(u32),
    Dele(u32),
    Noop,
    Rset,
    Quit,
    Capa,
    Stls,
}

/// Which command a reply answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Greeting,
    User,
    Pass,
    Apop,
    Stat,
    List,
    Uidl,
    Retr,
    Top,
    Dele,
    Noop,
    Rset,
    Quit,
    Capa,
    Stls,
}

impl Verb {
    fn multi_line(self) -> bool {
        matches!(
            self,
            Verb::List | Verb::Uidl | Verb::Retr | Verb::Top | Verb::Capa
        )
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A decoded reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The server's `+OK` greeting, with the APOP timestamp (`<...>`) if it offered one.
    Greeting {
        text: String,
        apop_timestamp: Option<String>,
    },
    /// `+OK` to a single-line command (USER, PASS, APOP, DELE, NOOP, RSET, QUIT, STLS).
    Ok { verb: Verb, text: String },
    /// `-ERR` to any command (or as greeting).
    Err { verb: Verb, text: String },
    /// `STAT`: message count and total size.
    Stat { count: u32, size: u64 },
    /// `LIST`: `(number, size in octets)`.
    Listing(Vec<(u32, u64)>),
    /// `UIDL`: `(number, unique id)`.
    Uidls(Vec<(u32, String)>),
    /// `RETR`: the message, dot-unstuffed, line ends as sent (CRLF).
    Message { number: u32, raw: Vec<u8> },
    /// `TOP n 0`: the header block and the blank line after it, dot-unstuffed.
    Headers { number: u32, raw: Vec<u8> },
    /// `CAPA`: capability lines.
    Capabilities(Vec<String>),
}

/// Why the byte stream cannot be a valid POP3 conversation (or breaks our bounds).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("POP3 line at byte {offset} is longer than {limit} bytes")]
    LineTooLong { offset: u64, limit: usize },
    #[error("POP3 reply to {verb} at byte {offset} is neither +OK nor -ERR: {line:?}")]
    NotStatus { verb: Verb, offset: u64, line: String },
    #[error("POP3 {verb} listing line at byte {offset} is malformed: {line:?}")]
    BadListing { verb: Verb, offset: u64, line: String },
    #[error("POP3 STAT reply at byte {offset} is malformed: {line:?}")]
    BadStat { offset: u64, line: String },
    #[error("POP3 {verb} listing has more than {limit} entries")]
    ListingTooLong { verb: Verb, limit: usize },
    #[error("POP3 message {number} is larger than the {limit}-byte limit")]
    MessageTooLarge { number: u32, limit: u64 },
    #[error("POP3 server sent data at byte {offset} while no reply was due")]
    Unsolicited { offset: u64 },
    #[error("POP3 {what} contains CR, LF or NUL, or is empty")]
    InvalidArgument { what: &'static str },
    #[error("POP3 client already failed; drop the connection")]
    Poisoned,
}

/// How long a quoted bad line may be in an error.
const QUOTE: usize = 80;

fn quote(line: &[u8]) -> String {
    let end = line.len().min(QUOTE);
    String::from_utf8_lossy(line.get(..end).unwrap_or_default()).into_owned()
}

/// Strips one trailing `\n` and one `\r` before it.
fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The APOP digest: lowercase hex MD5 of the greeting's timestamp followed by the password.
pub fn apop_digest(timestamp: &str, password: &str) -> String {
    let mut data = Vec::with_capacity(timestamp.len() + password.len());
    data.extend_from_slice(timestamp.as_bytes());
    data.extend_from_slice(password.as_bytes());
    match openssl::hash::hash(openssl::hash::MessageDigest::md5(), &data) {
        Ok(d) => d.iter().map(|b| format!("{b:02x}")).collect(),
        // MD5 missing from OpenSSL (FIPS build): the server will refuse the digest.
        Err(_) => String::new(),
    }
}

#[derive(Debug)]
enum Body {
    Lines(Vec<String>),
    Listing(Vec<(u32, u64)>),
    Uidls(Vec<(u32, String)>),
    Message(Vec<u8>),
}

#[derive(Debug)]
struct Pending {
    verb: Verb,
    number: u32,
}

/// The POP3 client state machine. See the module documentation.
#[derive(Debug)]
pub struct Client {
    limits: Limits,
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    base: u64,
    pending: VecDeque<Pending>,
    /// Inside a multi-line reply to the front of `pending`.
    body: Option<Body>,
    events: VecDeque<Event>,
    failed: bool,
}

fn check_arg(s: &str, what: &'static str) -> Result<(), ProtocolError> {
    if s.is_empty() || s.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err(ProtocolError::InvalidArgument { what });
    }
    Ok(())
}

impl Client {
    /// A client waiting for the server's greeting.
    pub fn new(limits: Limits) -> Client {
        let mut pending = VecDeque::new();
        pending.push_back(Pending {
            verb: Verb::Greeting,
            number: 0,
        });
        Client {
            limits,
            buf: Vec::new(),
            base: 0,
            pending,
            body: None,
            events: VecDeque::new(),
            failed: false,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Whether replies are still due.
    pub fn awaiting_reply(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Encodes `cmd` and records that its reply is due. Write the returned bytes to the server.
    pub fn send(&mut self, cmd: Command) -> Result<Vec<u8>, ProtocolError> {
        if self.failed {
            return Err(ProtocolError::Poisoned);
        }
        let (verb, number, line) = match cmd {
            Command::User(u) => {
                check_arg(&u, "user name")?;
                (Verb::User, 0, format!("USER {u}"))
            }
            Command::Pass(p) => {
                check_arg(p.expose(), "password")?;
                (Verb::Pass, 0, format!("PASS {}", p.expose()))
            }
            Command::Apop { user, digest } => {
                check_arg(&user, "user name")?;
                check_arg(&digest, "APOP digest")?;
                (Verb::Apop, 0, format!("APOP {user} {digest}"))
            }
            Command::Stat => (Verb::Stat, 0, "STAT".into()),
            Command::List => (Verb::List, 0, "LIST".into()),
            Command::Uidl => (Verb::Uidl, 0, "UIDL".into()),
            Command::Retr(n) => (Verb::Retr, n, format!("RETR {n}")),
            Command::Top(n) => (Verb::Top, n, format!("TOP {n} 0")),
            Command::Dele(n) => (Verb::Dele, n, format!("DELE {n}")),
            Command::Noop => (Verb::Noop, 0, "NOOP".into()),
            Command::Rset => (Verb::Rset, 0, "RSET".into()),
            Command::Quit => (Verb::Quit, 0, "QUIT".into()),
            Command::Capa => (Verb::Capa, 0, "CAPA".into()),
            Command::Stls => (Verb::Stls, 0, "STLS".into()),
        };
        self.pending.push_back(Pending { verb, number });
        let mut bytes = line.into_bytes();
        bytes.extend_from_slice(b"\r\n");
        Ok(bytes)
    }

    /// The next decoded reply, in the order the commands were sent.
    pub fn next_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Takes bytes read from the server, in chunks of any size.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), ProtocolError> {
        if self.failed {
            return Err(ProtocolError::Poisoned);
        }
        self.buf.extend_from_slice(data);
        let r = self.process();
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn process(&mut self) -> Result<(), ProtocolError> {
        // Work on the buffer taken out of `self`, so lines are handled without copying them.
        let buf = std::mem::take(&mut self.buf);
        let mut pos = 0usize;
        let result = loop {
            let rest = buf.get(pos..).unwrap_or_default();
            let Some(nl) = memchr_nl(rest) else {
                if rest.len() > self.limits.max_line {
                    break Err(ProtocolError::LineTooLong {
                        offset: self.base + pos as u64,
                        limit: self.limits.max_line,
                    });
                }
                break Ok(());
            };
            let end = pos + nl + 1;
            let offset = self.base + pos as u64;
            if end - pos > self.limits.max_line {
                break Err(ProtocolError::LineTooLong {
                    offset,
                    limit: self.limits.max_line,
                });
            }
            let line = buf.get(pos..end).unwrap_or_default();
            pos = end;
            if let Err(e) = self.handle_line(line, offset) {
                break Err(e);
            }
        };
        self.buf = buf;
        self.buf.drain(..pos.min(self.buf.len()));
        self.base += pos as u64;
        result
    }

    fn handle_line(&mut self, line: &[u8], offset: u64) -> Result<(), ProtocolError> {
        let Some(front) = self.pending.front() else {
            return Err(ProtocolError::Unsolicited { offset });
        };
        let (verb, number) = (front.verb, front.number);
        if self.body.is_some() {
            return self.body_line(line, verb, number, offset);
        }
        let content = trim_eol(line);
        let (ok, text) = if let Some(t) = content.strip_prefix(b"+OK") {
            (true, t)
        } else if let Some(t) = content.strip_prefix(b"-ERR") {
            (false, t)
        } else {
            return Err(ProtocolError::NotStatus {
                verb,
                offset,
                line: quote(content),
            });
        };
        let text = String::from_utf8_lossy(text).trim().to_owned();
        if !ok {
            self.pending.pop_front();
            self.events.push_back(Event::Err { verb, text });
            return Ok(());
        }
        if verb.multi_line() {
            self.body = Some(match verb {
                Verb::List => Body::Listing(Vec::new()),
                Verb::Uidl => Body::Uidls(Vec::new()),
                Verb::Retr | Verb::Top => Body::Message(Vec::new()),
                _ => Body::Lines(Vec::new()),
            });
            return Ok(());
        }
        self.pending.pop_front();
        let event = match verb {
            Verb::Greeting => {
                let apop_timestamp = text.find('<').and_then(|a| {
                    let tail = text.get(a..)?;
                    let b = tail.find('>')?;
                    tail.get(..=b).map(str::to_owned)
                });
                Event::Greeting { text, apop_timestamp }
            }
            Verb::Stat => {
                let mut it = text.split_ascii_whitespace();
                let count = it.next().and_then(|s| s.parse().ok());
                let size = it.next().and_then(|s| s.parse().ok());
                match (count, size) {
                    (Some(count), Some(size)) => Event::Stat { count, size },
                    _ => {
                        return Err(ProtocolError::BadStat {
                            offset,
                            line: quote(content),
                        });
                    }
                }
            }
            _ => Event::Ok { verb, text },
        };
        self.events.push_back(event);
        Ok(())
    }

    fn body_line(&mut self, line: &[u8], verb: Verb, number: u32, offset: u64) -> Result<(), ProtocolError> {
        let content = trim_eol(line);
        if content == b"." {
            let body = self.body.take();
            self.pending.pop_front();
            let event = match body {
                Some(Body::Listing(l)) => Event::Listing(l),
                Some(Body::Uidls(u)) => Event::Uidls(u),
                Some(Body::Message(raw)) if verb == Verb::Top => Event::Headers { number, raw },
                Some(Body::Message(raw)) => Event::Message { number, raw },
                Some(Body::Lines(l)) => Event::Capabilities(l),
                None => return Ok(()),
            };
            self.events.push_back(event);
            return Ok(());
        }
        // Dot-unstuffing: a line starting with '.' had one added by the server.
        let unstuffed = line.strip_prefix(b".").unwrap_or(line);
        let max_listing = self.limits.max_listing;
        let bad = || ProtocolError::BadListing {
            verb,
            offset,
            line: quote(content),
        };
        match &mut self.body {
            Some(Body::Message(raw)) => {
                let new_len = raw.len() as u64 + unstuffed.len() as u64;
                let limit = if verb == Verb::Top {
                    self.limits.max_message.min(MAX_TOP_BYTES)
                } else {
                    self.limits.max_message
                };
                if new_len > limit {
                    return Err(ProtocolError::MessageTooLarge { number, limit });
                }
                raw.extend_from_slice(unstuffed);
            }
            Some(Body::Listing(l)) => {
                if l.len() >= max_listing {
                    return Err(ProtocolError::ListingTooLong {
                        verb,
                        limit: max_listing,
                    });
                }
                let s = std::str::from_utf8(trim_eol(unstuffed)).map_err(|_| bad())?;
                let mut it = s.split_ascii_whitespace();
                let n = it.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
                let size = it.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
                l.push((n, size));
            }
            Some(Body::Uidls(u)) => {
                if u.len() >= max_listing {
                    return Err(ProtocolError::ListingTooLong {
                        verb,
                        limit: max_listing,
                    });
                }
                let s = std::str::from_utf8(trim_eol(unstuffed)).map_err(|_| bad())?;
                let mut it = s.split_ascii_whitespace();
                let n = it.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
                let uid = it.next().ok_or_else(bad)?;
                // RFC 1939: 1 to 70 characters in 0x21..=0x7E.
                if uid.len() > 70 || !uid.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
                    return Err(bad());
                }
                u.push((n, uid.to_owned()));
            }
            Some(Body::Lines(l)) => {
                if l.len() >= max_listing {
                    return Err(ProtocolError::ListingTooLong {
                        verb,
                        limit: max_listing,
                    });
                }
                l.push(String::from_utf8_lossy(trim_eol(unstuffed)).into_owned());
            }
            None => {}
        }
        Ok(())
    }
}

fn memchr_nl(s: &[u8]) -> Option<usize> {
    s.iter().position(|&b| b == b'\n')
}

/// Dot-stuffs a message the way a POP3 server sends it after `+OK` (each line starting with `.`
/// gets another), and appends the terminator: what fake servers and tests need.
pub fn dot_stuff(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 8);
    let mut at_line_start = true;
    for &b in raw {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(chunks: &[&[u8]], cmds: Vec<Command>, limits: Limits) -> Result<Vec<Event>, ProtocolError> {
        let mut c = Client::new(limits);
        for cmd in cmds {
            c.send(cmd)?;
        }
        let mut out = Vec::new();
        for ch in chunks {
            c.feed(ch)?;
            while let Some(e) = c.next_event() {
                out.push(e);
            }
        }
        Ok(out)
    }

    #[test]
    fn rfc1939_session() {
        let server = b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n\
+OK\r\n+OK maildrop has 2 messages (320 octets)\r\n+OK 2 320\r\n\
+OK 2 messages (320 octets)\r\n1 120\r\n2 200\r\n.\r\n\
+OK\r\n1 whqtswO00WBw418f9t5JxYwZ\r\n2 QhdPYR:00WBw1Ph7x7\r\n.\r\n\
+OK 120 octets\r\nSubject: x\r\n\r\n..dot\r\n...\r\n.\r\n\
-ERR no such message\r\n+OK dewey POP3 server signing off\r\n";
        let events = run(
            &[server],
            vec![
                Command::User("mrose".into()),
                Command::Pass(Secret::new("tanstaaf".into())),
                Command::Stat,
                Command::List,
                Command::Uidl,
                Command::Retr(1),
                Command::Dele(9),
                Command::Quit,
            ],
            Limits::default(),
        )
        .unwrap();
        assert_eq!(
            events[0],
            Event::Greeting {
                text: "POP3 server ready <1896.697170952@dbc.mtview.ca.us>".into(),
                apop_timestamp: Some("<1896.697170952@dbc.mtview.ca.us>".into()),
            }
        );
        assert_eq!(events[3], Event::Stat { count: 2, size: 320 });
        assert_eq!(events[4], Event::Listing(vec![(1, 120), (2, 200)]));
        assert_eq!(
            events[5],
            Event::Uidls(vec![
                (1, "whqtswO00WBw418f9t5JxYwZ".into()),
                (2, "QhdPYR:00WBw1Ph7x7".into())
            ])
        );
        assert_eq!(
            events[6],
            Event::Message {
                number: 1,
                raw: b"Subject: x\r\n\r\n.dot\r\n..\r\n".to_vec()
            }
        );
        assert_eq!(
            events[7],
            Event::Err {
                verb: Verb::Dele,
                text: "no such message".into()
            }
        );
        assert_eq!(events.len(), 9);
    }

    /// RFC 1939 section 9: `TOP msg 0` answers the headers and the blank line; a `-ERR` (TOP
    /// is optional) is an ordinary error event.
    #[test]
    fn top_gives_the_header_block() {
        let server = b"+OK ready\r\n\
+OK top of message follows\r\nSubject: RSP/000123456/202611260930\r\n..X: y\r\n\r\n.\r\n\
-ERR TOP not supported\r\n";
        let events = run(
            &[server],
            vec![Command::Top(3), Command::Top(4)],
            Limits::default(),
        )
        .unwrap();
        assert_eq!(
            events[1],
            Event::Headers {
                number: 3,
                raw: b"Subject: RSP/000123456/202611260930\r\n.X: y\r\n\r\n".to_vec()
            }
        );
        assert_eq!(
            events[2],
            Event::Err {
                verb: Verb::Top,
                text: "TOP not supported".into()
            }
        );
        let mut c = Client::new(Limits::default());
        assert_eq!(c.send(Command::Top(12)).unwrap(), b"TOP 12 0\r\n");
    }

    #[test]
    fn rfc1939_apop_digest() {
        // The example of RFC 1939 section 7.
        assert_eq!(
            apop_digest("<1896.697170952@dbc.mtview.ca.us>", "tanstaaf"),
            "c4c9334bac560ecc979e58001b3e22fb"
        );
    }

    #[test]
    fn bounds_are_enforced_with_offsets() {
        let limits = Limits {
            max_line: 20,
            max_message: 10,
            max_listing: 1,
        };
        let e = run(&[b"+OK this greeting is far too long\r\n"], vec![], limits).unwrap_err();
        assert_eq!(e, ProtocolError::LineTooLong { offset: 0, limit: 20 });
        // A line that never ends is refused as soon as it passes the limit.
        let e = run(
            &[b"+OK hi\r\n", b"+OK xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"],
            vec![Command::Noop],
            limits,
        )
        .unwrap_err();
        assert_eq!(e, ProtocolError::LineTooLong { offset: 8, limit: 20 });
        let e = run(
            &[b"+OK\r\n+OK\r\n0123456789\r\n.\r\n"],
            vec![Command::Retr(3)],
            limits,
        )
        .unwrap_err();
        assert_eq!(e, ProtocolError::MessageTooLarge { number: 3, limit: 10 });
        let e = run(
            &[b"+OK\r\n+OK\r\n1 1\r\n2 2\r\n.\r\n"],
            vec![Command::List],
            limits,
        )
        .unwrap_err();
        assert_eq!(
            e,
            ProtocolError::ListingTooLong {
                verb: Verb::List,
                limit: 1
            }
        );
        let e = run(&[b"+OK\r\n+OK\r\n"], vec![], limits).unwrap_err();
        assert_eq!(e, ProtocolError::Unsolicited { offset: 5 });
        let e = run(&[b"* OK imap\r\n"], vec![], limits).unwrap_err();
        assert!(matches!(e, ProtocolError::NotStatus { offset: 0, .. }));
        let e = run(
            &[b"+OK\r\n+OK\r\nx 1\r\n.\r\n"],
            vec![Command::List],
            Limits::default(),
        )
        .unwrap_err();
        assert!(matches!(e, ProtocolError::BadListing { offset: 10, .. }));
    }

    #[test]
    fn poisoned_after_error_and_arguments_checked() {
        let mut c = Client::new(Limits::default());
        assert!(c.feed(b"garbage\r\n").is_err());
        assert_eq!(c.feed(b"+OK\r\n"), Err(ProtocolError::Poisoned));
        let mut c = Client::new(Limits::default());
        assert!(matches!(
            c.send(Command::User("a\r\nDELE 1".into())),
            Err(ProtocolError::InvalidArgument { .. })
        ));
        assert_eq!(c.send(Command::Retr(7)).unwrap(), b"RETR 7\r\n");
    }

    fn message_strategy() -> impl Strategy<Value = Vec<u8>> {
        // Lines made of dots, letters and spaces, CRLF-terminated: the cases that matter.
        proptest::collection::vec("[.a-z ]{0,12}", 0..20).prop_map(|lines| {
            let mut m = Vec::new();
            for l in lines {
                m.extend_from_slice(l.as_bytes());
                m.extend_from_slice(b"\r\n");
            }
            m
        })
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_same_events(
            msg in message_strategy(),
            cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..12),
        ) {
            let mut server = b"+OK ready <1.2@h>\r\n+OK\r\n1 whatever\r\n.\r\n+OK\r\n".to_vec();
            server.extend_from_slice(&dot_stuff(&msg));
            server.extend_from_slice(b"+OK bye\r\n");
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(server.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut prev = 0;
            for p in points {
                chunks.push(&server[prev..p]);
                prev = p;
            }
            chunks.push(&server[prev..]);
            let cmds = || vec![Command::Uidl, Command::Retr(1), Command::Quit];
            let split = run(&chunks, cmds(), Limits::default()).unwrap();
            let whole = run(&[&server], cmds(), Limits::default()).unwrap();
            prop_assert_eq!(&split, &whole);
            prop_assert_eq!(split.len(), 4);
            prop_assert_eq!(&split[2], &Event::Message { number: 1, raw: msg.clone() });
        }

        #[test]
        fn arbitrary_server_bytes_never_panic(
            data in proptest::collection::vec(any::<u8>(), 0..2000),
            cut in 0usize..2000,
        ) {
            let mut c = Client::new(Limits { max_line: 256, max_message: 1000, max_listing: 10 });
            for cmd in [Command::Uidl, Command::List, Command::Retr(1), Command::Top(1), Command::Stat, Command::Capa] {
                c.send(cmd).unwrap();
            }
            // Start inside the UIDL listing, so that the random bytes reach the body parsers.
            c.feed(b"+OK hi\r\n+OK\r\n").unwrap();
            let cut = cut.min(data.len());
            let _ = c.feed(&data[..cut]).and_then(|_| c.feed(&data[cut..]));
            while c.next_event().is_some() {}
        }
    }
}
