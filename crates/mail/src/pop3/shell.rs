//! A thin blocking POP3 session over TCP (optionally TLS via OpenSSL) driving the sans-IO core.

use std::collections::HashMap;
use std::fmt;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use openssl::ssl::{HandshakeError, SslConnector, SslMethod, SslStream};
use openssl::x509::X509;
use serde::{Deserialize, Serialize};

use super::core::{Client, Command, Event, Limits, ProtocolError, Verb, apop_digest};
use super::mailbox::Mailbox;
use crate::secret::Secret;
use crate::secret::scrub_reply;

/// How the POP3 connection is secured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pop3Security {
    /// Plain POP3 (loopback, private networks).
    None,
    /// Plain connection upgraded with STLS (port 110).
    #[default]
    StartTls,
    /// TLS from the first byte (POP3S, port 995).
    Implicit,
}

/// How to log in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pop3Auth {
    /// `USER` / `PASS`.
    #[default]
    UserPass,
    /// `APOP` (the password never crosses the wire; needs the greeting's timestamp).
    Apop,
}

/// Where and how to reach the mailbox.
#[derive(Debug)]
pub struct Pop3Config {
    pub host: String,
    pub port: u16,
    pub security: Pop3Security,
    /// Name the server certificate must carry (defaults to `host`).
    pub tls_domain: Option<String>,
    /// Extra trusted root certificates (PEM).
    pub extra_roots_pem: Vec<Vec<u8>>,
    pub user: String,
    pub password: Secret<String>,
    pub auth: Pop3Auth,
    pub limits: Limits,
    /// Connect, read and write timeout.
    pub timeout: Duration,
    /// Send `USER`/`PASS` even when `security` is [`Pop3Security::None`] (a loopback test server,
    /// a local hop). Off by default: [`Pop3Session::connect`] refuses to send the password in
    /// clear. `APOP` never sends the password and is not affected.
    pub allow_plaintext_auth: bool,
}

impl Pop3Config {
    /// Plain POP3 with USER/PASS, default limits, 60 s timeout.
    pub fn plain(
        host: impl Into<String>,
        port: u16,
        user: impl Into<String>,
        password: Secret<String>,
    ) -> Self {
        Pop3Config {
            host: host.into(),
            port,
            security: Pop3Security::None,
            tls_domain: None,
            extra_roots_pem: Vec::new(),
            user: user.into(),
            password,
            auth: Pop3Auth::UserPass,
            limits: Limits::default(),
            timeout: Duration::from_secs(60),
            allow_plaintext_auth: false,
        }
    }
}

/// Why a POP3 session failed.
#[derive(Debug, thiserror::Error)]
pub enum Pop3Error {
    #[error("POP3 {endpoint}: {what}: {source}")]
    Io {
        endpoint: String,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The server did not answer (or accept the connection) within the configured timeout:
    /// a firewall that swallows packets, a server that accepts and hangs.
    #[error(
        "POP3: timeout talking to {endpoint} after {secs} s ({what}): the server does not answer; \
         check the host and port, or raise the timeout"
    )]
    Timeout {
        endpoint: String,
        what: &'static str,
        secs: u64,
    },
    #[error("POP3 {endpoint}: TLS: {reason}")]
    Tls { endpoint: String, reason: String },
    #[error("POP3 {endpoint}: {source}")]
    Protocol {
        endpoint: String,
        #[source]
        source: ProtocolError,
    },
    /// The server refused the login: wrong user or password, or the method.
    #[error("POP3 {endpoint}: authentication refused for user {user:?}: -ERR {text}")]
    AuthFailed {
        endpoint: String,
        user: String,
        text: String,
    },
    /// `USER`/`PASS` over a connection without TLS, and the configuration did not allow it.
    #[error(
        "POP3 {endpoint}: refusing to send the password over a connection without TLS \
         (use STARTTLS or implicit TLS, or allow_plaintext_auth = true for a local hop)"
    )]
    PlaintextAuth { endpoint: String },
    #[error("POP3 {endpoint}: the server greeting has no APOP timestamp")]
    NoApop { endpoint: String },
    #[error("POP3 {endpoint}: {verb} refused: -ERR {text}")]
    Refused {
        endpoint: String,
        verb: Verb,
        text: String,
    },
    #[error("POP3 {endpoint}: connection closed while waiting for the reply to {verb}")]
    Closed { endpoint: String, verb: Verb },
    #[error("POP3 {endpoint}: unexpected reply to {verb}: {event}")]
    Unexpected {
        endpoint: String,
        verb: Verb,
        event: String,
    },
    #[error("POP3 {endpoint}: no message with UIDL {uidl:?} in this session")]
    UnknownUidl { endpoint: String, uidl: String },
    #[error("POP3 {endpoint}: message {uidl:?} is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        endpoint: String,
        uidl: String,
        size: u64,
        limit: u64,
    },
    #[error("POP3 {endpoint}: the session is closed")]
    Finished { endpoint: String },
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<SslStream<TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// A logged-in POP3 session. Implements [`Mailbox`].
pub struct Pop3Session {
    stream: Option<Stream>,
    client: Client,
    endpoint: String,
    /// From the last `list`: uidl -> (message number, size).
    index: HashMap<String, (u32, u64)>,
    read_buf: Vec<u8>,
    /// The configured timeout, to say it in a timeout error.
    timeout: Duration,
}

/// An I/O failure, as [`Pop3Error::Timeout`] when it is the socket timeout expiring (reported by
/// the OS as `WouldBlock` or `TimedOut`, "Resource temporarily unavailable" on Linux).
fn io_failure(endpoint: &str, what: &'static str, source: std::io::Error, timeout: Duration) -> Pop3Error {
    match source.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => Pop3Error::Timeout {
            endpoint: endpoint.to_owned(),
            what,
            secs: timeout.as_secs(),
        },
        _ => Pop3Error::Io {
            endpoint: endpoint.to_owned(),
            what,
            source,
        },
    }
}

impl fmt::Debug for Pop3Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pop3Session")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl Pop3Session {
    /// Connects, reads the greeting, secures the connection as configured and logs in.
    pub fn connect(cfg: &Pop3Config) -> Result<Pop3Session, Pop3Error> {
        let endpoint = format!("{}:{}", cfg.host, cfg.port);
        if cfg.security == Pop3Security::None && cfg.auth == Pop3Auth::UserPass && !cfg.allow_plaintext_auth {
            return Err(Pop3Error::PlaintextAuth { endpoint });
        }
        let io = |what| {
            let endpoint = endpoint.clone();
            move |source| io_failure(&endpoint, what, source, cfg.timeout)
        };
        let addrs: Vec<_> = (cfg.host.as_str(), cfg.port)
            .to_socket_addrs()
            .map_err(io("resolve"))?
            .collect();
        let mut last = None;
        let mut tcp = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, cfg.timeout) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let tcp = tcp.ok_or_else(|| {
            let source = last.unwrap_or_else(|| std::io::Error::other("no address"));
            io_failure(&endpoint, "connect", source, cfg.timeout)
        })?;
        tcp.set_read_timeout(Some(cfg.timeout))
            .map_err(io("set timeout"))?;
        tcp.set_write_timeout(Some(cfg.timeout))
            .map_err(io("set timeout"))?;
        let mut session = Pop3Session {
            stream: None,
            client: Client::new(cfg.limits),
            endpoint: endpoint.clone(),
            index: HashMap::new(),
            read_buf: vec![0; 64 * 1024],
            timeout: cfg.timeout,
        };
        let tcp = if cfg.security == Pop3Security::Implicit {
            Stream::Tls(Box::new(session.tls(cfg, tcp)?))
        } else {
            Stream::Plain(tcp)
        };
        session.stream = Some(tcp);
        let greeting = session.reply(Verb::Greeting)?;
        let apop_timestamp = match greeting {
            Event::Greeting { apop_timestamp, .. } => apop_timestamp,
            Event::Err { text, .. } => {
                return Err(Pop3Error::Refused {
                    endpoint,
                    verb: Verb::Greeting,
                    text,
                });
            }
            other => return Err(session.unexpected(Verb::Greeting, &other)),
        };
        if cfg.security == Pop3Security::StartTls {
            session.simple(Command::Stls, Verb::Stls)?;
            let Some(Stream::Plain(tcp)) = session.stream.take() else {
                return Err(Pop3Error::Tls {
                    endpoint,
                    reason: "STLS on a connection that is not plain".into(),
                });
            };
            session.stream = Some(Stream::Tls(Box::new(session.tls(cfg, tcp)?)));
        }
        let auth_result = match cfg.auth {
            Pop3Auth::UserPass => session
                .simple(Command::User(cfg.user.clone()), Verb::User)
                .and_then(|_| {
                    session.simple(
                        Command::Pass(Secret::new(cfg.password.expose().clone())),
                        Verb::Pass,
                    )
                }),
            Pop3Auth::Apop => {
                let ts = apop_timestamp.ok_or_else(|| Pop3Error::NoApop {
                    endpoint: endpoint.clone(),
                })?;
                let digest = apop_digest(&ts, cfg.password.expose());
                session.simple(
                    Command::Apop {
                        user: cfg.user.clone(),
                        digest,
                    },
                    Verb::Apop,
                )
            }
        };
        match auth_result {
            Ok(_) => Ok(session),
            Err(Pop3Error::Refused { text, .. }) => Err(Pop3Error::AuthFailed {
                endpoint,
                user: cfg.user.clone(),
                text: scrub_reply(&text, Some(&cfg.user), &[&cfg.password]),
            }),
            Err(e) => Err(e),
        }
    }

    fn tls(&self, cfg: &Pop3Config, tcp: TcpStream) -> Result<SslStream<TcpStream>, Pop3Error> {
        let tls_err = |reason: String| Pop3Error::Tls {
            endpoint: self.endpoint.clone(),
            reason,
        };
        let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(|e| tls_err(e.to_string()))?;
        for pem in &cfg.extra_roots_pem {
            let cert = X509::from_pem(pem).map_err(|e| tls_err(format!("extra root certificate: {e}")))?;
            b.cert_store_mut()
                .add_cert(cert)
                .map_err(|e| tls_err(format!("extra root certificate: {e}")))?;
        }
        let domain = cfg.tls_domain.as_deref().unwrap_or(&cfg.host);
        b.build().connect(domain, tcp).map_err(|e| {
            // A server that accepts and never answers stalls the handshake until the socket
            // timeout: say so, not "the operation would block".
            let timed_out = match &e {
                HandshakeError::WouldBlock(_) => true,
                HandshakeError::Failure(m) => m.error().io_error().is_some_and(|io| {
                    matches!(
                        io.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    )
                }),
                HandshakeError::SetupFailure(_) => false,
            };
            if timed_out {
                Pop3Error::Timeout {
                    endpoint: self.endpoint.clone(),
                    what: "TLS handshake",
                    secs: self.timeout.as_secs(),
                }
            } else {
                tls_err(e.to_string())
            }
        })
    }

    fn unexpected(&self, verb: Verb, event: &Event) -> Pop3Error {
        let mut s = format!("{event:?}");
        s.truncate(120);
        Pop3Error::Unexpected {
            endpoint: self.endpoint.clone(),
            verb,
            event: scrub_reply(&s, None, &[]),
        }
    }

    fn write(&mut self, cmd: Command) -> Result<(), Pop3Error> {
        let bytes = self.client.send(cmd).map_err(|source| Pop3Error::Protocol {
            endpoint: self.endpoint.clone(),
            source,
        })?;
        let Some(stream) = self.stream.as_mut() else {
            return Err(Pop3Error::Finished {
                endpoint: self.endpoint.clone(),
            });
        };
        stream
            .write_all(&bytes)
            .and_then(|_| stream.flush())
            .map_err(|source| io_failure(&self.endpoint, "write", source, self.timeout))
    }

    /// Reads until the core yields the next event.
    fn reply(&mut self, verb: Verb) -> Result<Event, Pop3Error> {
        loop {
            if let Some(e) = self.client.next_event() {
                return Ok(e);
            }
            let Some(stream) = self.stream.as_mut() else {
                return Err(Pop3Error::Finished {
                    endpoint: self.endpoint.clone(),
                });
            };
            let timeout = self.timeout;
            let n = stream
                .read(&mut self.read_buf)
                .map_err(|source| io_failure(&self.endpoint, "read", source, timeout))?;
            if n == 0 {
                return Err(Pop3Error::Closed {
                    endpoint: self.endpoint.clone(),
                    verb,
                });
            }
            let chunk = self.read_buf.get(..n).unwrap_or_default();
            self.client.feed(chunk).map_err(|source| Pop3Error::Protocol {
                endpoint: self.endpoint.clone(),
                source,
            })?;
        }
    }

    /// Sends a command and returns its reply, turning `-ERR` into [`Pop3Error::Refused`].
    fn command(&mut self, cmd: Command, verb: Verb) -> Result<Event, Pop3Error> {
        self.write(cmd)?;
        match self.reply(verb)? {
            Event::Err { text, .. } => Err(Pop3Error::Refused {
                endpoint: self.endpoint.clone(),
                verb,
                text: scrub_reply(&text, None, &[]),
            }),
            e => Ok(e),
        }
    }

    fn simple(&mut self, cmd: Command, verb: Verb) -> Result<String, Pop3Error> {
        match self.command(cmd, verb)? {
            Event::Ok { text, .. } => Ok(text),
            other => Err(self.unexpected(verb, &other)),
        }
    }

    /// `STAT`: message count and total size.
    pub fn stat(&mut self) -> Result<(u32, u64), Pop3Error> {
        match self.command(Command::Stat, Verb::Stat)? {
            Event::Stat { count, size } => Ok((count, size)),
            other => Err(self.unexpected(Verb::Stat, &other)),
        }
    }

    /// `UIDL`: `(number, uid)` of every message.
    pub fn uidl(&mut self) -> Result<Vec<(u32, String)>, Pop3Error> {
        match self.command(Command::Uidl, Verb::Uidl)? {
            Event::Uidls(u) => Ok(u),
            other => Err(self.unexpected(Verb::Uidl, &other)),
        }
    }

    /// `LIST`: `(number, size)` of every message.
    pub fn list_sizes(&mut self) -> Result<Vec<(u32, u64)>, Pop3Error> {
        match self.command(Command::List, Verb::List)? {
            Event::Listing(l) => Ok(l),
            other => Err(self.unexpected(Verb::List, &other)),
        }
    }

    /// `RETR n`: the message, bounded by [`Limits::max_message`].
    pub fn retr(&mut self, number: u32) -> Result<Vec<u8>, Pop3Error> {
        match self.command(Command::Retr(number), Verb::Retr)? {
            Event::Message { raw, .. } => Ok(raw),
            other => Err(self.unexpected(Verb::Retr, &other)),
        }
    }

    /// `TOP n 0`: the header block only (bounded like a message). The server does not count
    /// this as reading the message, so a message left after a look stays as it was.
    pub fn top(&mut self, number: u32) -> Result<Vec<u8>, Pop3Error> {
        match self.command(Command::Top(number), Verb::Top)? {
            Event::Headers { raw, .. } => Ok(raw),
            other => Err(self.unexpected(Verb::Top, &other)),
        }
    }

    /// `DELE n` (applied by the server at QUIT).
    pub fn dele(&mut self, number: u32) -> Result<(), Pop3Error> {
        self.simple(Command::Dele(number), Verb::Dele).map(drop)
    }

    /// `QUIT`: commits deletions and closes.
    pub fn quit(&mut self) -> Result<(), Pop3Error> {
        self.simple(Command::Quit, Verb::Quit)?;
        self.stream = None;
        Ok(())
    }

    fn number_of(&self, uidl: &str) -> Result<(u32, u64), Pop3Error> {
        self.index
            .get(uidl)
            .copied()
            .ok_or_else(|| Pop3Error::UnknownUidl {
                endpoint: self.endpoint.clone(),
                uidl: uidl.to_owned(),
            })
    }
}

impl Mailbox for Pop3Session {
    type Error = Pop3Error;

    /// `UIDL` joined with `LIST`, in message-number order.
    fn list(&mut self) -> Result<Vec<(String, u64)>, Pop3Error> {
        let uidls = self.uidl()?;
        let sizes: HashMap<u32, u64> = self.list_sizes()?.into_iter().collect();
        self.index.clear();
        let mut out = Vec::with_capacity(uidls.len());
        for (n, uid) in uidls {
            let size = sizes.get(&n).copied().unwrap_or(0);
            self.index.insert(uid.clone(), (n, size));
            out.push((uid, size));
        }
        Ok(out)
    }

    /// Refuses, before `RETR`, a message whose `LIST` size is over the limit.
    fn fetch(&mut self, uidl: &str) -> Result<Vec<u8>, Pop3Error> {
        let (n, size) = self.number_of(uidl)?;
        let limit = self.client.limits().max_message;
        if size > limit {
            return Err(Pop3Error::TooLarge {
                endpoint: self.endpoint.clone(),
                uidl: uidl.to_owned(),
                size,
                limit,
            });
        }
        self.retr(n)
    }

    /// `TOP n 0`; a server without TOP is an error (nothing is retrieved blindly).
    fn headers(&mut self, uidl: &str) -> Result<Vec<u8>, Pop3Error> {
        let (n, _) = self.number_of(uidl)?;
        self.top(n)
    }

    fn delete(&mut self, uidl: &str) -> Result<(), Pop3Error> {
        let (n, _) = self.number_of(uidl)?;
        self.dele(n)
    }

    fn finish(&mut self) -> Result<(), Pop3Error> {
        self.quit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_never_shows_in_debug() {
        let cfg = Pop3Config::plain("127.0.0.1", 110, "ps1", Secret::new("s3cret-pop-password".into()));
        let dbg = format!("{cfg:?}");
        assert!(dbg.contains("ps1"));
        assert!(!dbg.contains("s3cret"), "{dbg}");
        let cmd = format!("{:?}", Command::Pass(Secret::new("s3cret-pop-password".into())));
        assert!(!cmd.contains("s3cret"), "{cmd}");
    }

    #[test]
    fn connection_refused_names_the_endpoint() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let mut cfg = Pop3Config::plain("127.0.0.1", port, "ps1", Secret::new("pw".into()));
        cfg.timeout = Duration::from_secs(5);
        cfg.allow_plaintext_auth = true;
        let e = Pop3Session::connect(&cfg).unwrap_err();
        assert!(matches!(e, Pop3Error::Io { what: "connect", .. }), "{e:?}");
        assert!(e.to_string().contains(&format!("127.0.0.1:{port}")));
    }

    #[test]
    fn a_server_that_accepts_and_never_answers_is_a_timeout_naming_endpoint_and_delay() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        // Accepts (the kernel's backlog does) and never writes a greeting.
        let mut cfg = Pop3Config::plain("127.0.0.1", port, "ps1", Secret::new("pw".into()));
        cfg.timeout = Duration::from_secs(1);
        cfg.allow_plaintext_auth = true;
        let e = Pop3Session::connect(&cfg).unwrap_err();
        assert!(
            matches!(
                e,
                Pop3Error::Timeout {
                    what: "read",
                    secs: 1,
                    ..
                }
            ),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(
            text.contains(&format!("timeout talking to 127.0.0.1:{port} after 1 s")),
            "{text}"
        );
        assert!(!text.contains("os error"), "{text}");
        drop(l);
    }

    #[test]
    fn a_silent_server_under_implicit_tls_is_a_timeout_too() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mut cfg = Pop3Config::plain("127.0.0.1", port, "ps1", Secret::new("pw".into()));
        cfg.security = Pop3Security::Implicit;
        cfg.timeout = Duration::from_secs(1);
        let e = Pop3Session::connect(&cfg).unwrap_err();
        assert!(
            matches!(
                e,
                Pop3Error::Timeout {
                    what: "TLS handshake",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(
            e.to_string().contains(&format!("127.0.0.1:{port} after 1 s")),
            "{e}"
        );
        drop(l);
    }

    #[test]
    fn user_pass_without_tls_is_refused_before_connecting() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let cfg = Pop3Config::plain("127.0.0.1", port, "ps1", Secret::new("pw".into()));
        let e = Pop3Session::connect(&cfg).unwrap_err();
        assert!(matches!(e, Pop3Error::PlaintextAuth { .. }), "{e:?}");
        assert!(e.to_string().contains("allow_plaintext_auth"), "{e}");
        assert!(l.accept().is_err(), "no connection was even opened");
    }

    #[test]
    fn a_refusal_that_echoes_the_password_is_scrubbed() {
        use std::io::{BufRead as _, BufReader};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut w = s.try_clone().unwrap();
            w.write_all(b"+OK ready\r\n").unwrap();
            let mut r = BufReader::new(s);
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            w.write_all(b"+OK\r\n").unwrap();
            line.clear();
            r.read_line(&mut line).unwrap();
            let echo = format!("-ERR [AUTH] bad login: {}\r\n", line.trim_end());
            w.write_all(echo.as_bytes()).unwrap();
        });
        let mut cfg = Pop3Config::plain(
            "127.0.0.1",
            port,
            "ps1",
            Secret::new("s3cret-pop-password".into()),
        );
        cfg.allow_plaintext_auth = true;
        cfg.timeout = Duration::from_secs(10);
        let e = Pop3Session::connect(&cfg).unwrap_err();
        let Pop3Error::AuthFailed { text, .. } = &e else {
            panic!("{e:?}")
        };
        assert!(text.starts_with("[AUTH] bad login: PASS"), "{text}");
        for shown in [e.to_string(), format!("{e:?}")] {
            assert!(!shown.contains("s3cret"), "{shown}");
        }
    }
}
