//! Sending built messages: one small [`Transport`] trait and its backends.
//!
//! The profiles module builds the exact bytes of a message; sending must not touch them. So the
//! trait takes the raw bytes plus an SMTP [`Envelope`], and the backends are:
//!
//! - [`SmtpTransport`]: a real SMTP server through lettre (`send_raw`: lettre only dot-stuffs),
//!   without TLS, with STARTTLS or with implicit TLS, optionally authenticated.
//! - [`DirTransport`]: a directory of `.eml` files (the CLI's `--out`), for dry runs and for
//!   handing messages to another mailer.
//! - [`MemoryTransport`]: in memory, with scripted failures, for unit tests.
//!
//! Errors are one opaque [`SendError`] that says what the caller must decide: retry later
//! ([`SendError::is_transient`]: 4xx, server unreachable, network cut) or give up
//! ([`SendError::is_permanent`]: 5xx, invalid address, TLS refused), with the server's answer to
//! journal. A refused login (`535`, `534`) is its own outcome, [`SendError::is_auth_rejected`]:
//! transient (the operator fixes the credentials, the queue waits), never a failure of the message.
//!
//! Every server answer kept in a [`SendOk`] or a [`SendError`] has been through
//! [`crate::secret::scrub_reply`]: a server that echoes the `AUTH` line leaks nothing. Credentials
//! are refused over a connection without TLS unless [`SmtpConfig::allow_plaintext_auth`] is set.
//!
//! The calls block; the concentrator's async code calls them from `spawn_blocking`.

use std::fmt;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lettre::Transport as _;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use serde::{Deserialize, Serialize};

use crate::cms::Secret;
use crate::secret::scrub_reply;

/// The SMTP envelope: the reverse path and the recipients (not the headers).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// `MAIL FROM`; `None` for the null reverse path `<>`.
    pub from: Option<String>,
    /// `RCPT TO`, at least one.
    pub to: Vec<String>,
}

impl Envelope {
    /// An envelope from one sender to one recipient.
    pub fn new(from: impl Into<String>, to: impl Into<String>) -> Envelope {
        Envelope {
            from: Some(from.into()),
            to: vec![to.into()],
        }
    }
}

/// A successful hand-over: the server's final answer, to journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendOk {
    /// Reply code (250 for SMTP; 0 for backends that are not SMTP).
    pub code: u16,
    /// The answer text (e.g. `250 OK id=1xWSHV-0003WJ-16`, or the `.eml` path written).
    pub answer: String,
}

/// Whether a failure is worth retrying.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Class {
    Transient,
    Permanent,
}

/// Why a message was not handed over. Opaque: ask [`is_transient`](Self::is_transient),
/// [`is_permanent`](Self::is_permanent), [`code`](Self::code) and
/// [`server_answer`](Self::server_answer).
pub struct SendError {
    class: Class,
    auth_rejected: bool,
    code: Option<u16>,
    answer: Option<String>,
    context: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl SendError {
    /// A failure to retry later (4xx, connection refused...). `answer` is the server's text, if it
    /// gave one.
    pub fn transient(context: impl Into<String>, code: Option<u16>, answer: Option<String>) -> SendError {
        SendError {
            class: Class::Transient,
            auth_rejected: false,
            code,
            answer,
            context: context.into(),
            source: None,
        }
    }

    /// A failure that retrying will not fix (5xx, bad address...).
    pub fn permanent(context: impl Into<String>, code: Option<u16>, answer: Option<String>) -> SendError {
        SendError {
            class: Class::Permanent,
            auth_rejected: false,
            code,
            answer,
            context: context.into(),
            source: None,
        }
    }

    /// The server refused the login (`535`, `534`): retry later, once the operator has fixed
    /// the credentials; the message itself is not at fault. Counts as transient.
    pub fn auth_rejected(context: impl Into<String>, code: Option<u16>, answer: Option<String>) -> SendError {
        SendError {
            auth_rejected: true,
            ..SendError::transient(context, code, answer)
        }
    }

    fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> SendError {
        self.source = Some(Box::new(source));
        self
    }

    /// Retry later: the server said 4xx, or could not be reached, or the connection broke.
    pub fn is_transient(&self) -> bool {
        self.class == Class::Transient
    }

    /// The server refused the credentials (see [`SendError::auth_rejected`]).
    pub fn is_auth_rejected(&self) -> bool {
        self.auth_rejected
    }

    /// Do not retry as is: the server said 5xx, or the envelope or TLS setup is wrong.
    pub fn is_permanent(&self) -> bool {
        self.class == Class::Permanent
    }

    /// The SMTP reply code, when the server answered.
    pub fn code(&self) -> Option<u16> {
        self.code
    }

    /// The server's answer (`550 unknown mailbox`), when it answered.
    pub fn server_answer(&self) -> Option<&str> {
        self.answer.as_deref()
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let class = match self.class {
            _ if self.auth_rejected => "login refused, transient",
            Class::Transient => "transient",
            Class::Permanent => "permanent",
        };
        write!(f, "{} ({class} failure)", self.context)?;
        if let Some(a) = &self.answer {
            write!(f, ": server answered {a:?}")?;
        } else if let Some(s) = &self.source {
            write!(f, ": {s}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendError")
            .field("class", &self.class)
            .field("auth_rejected", &self.auth_rejected)
            .field("code", &self.code)
            .field("answer", &self.answer)
            .field("context", &self.context)
            .field("source", &self.source.as_ref().map(|s| s.to_string()))
            .finish()
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

/// Something that hands a built message over.
pub trait Transport: Send + Sync {
    /// Sends `raw` (a complete RFC 5322 message, CRLF line ends) to `envelope.to`. Returns once
    /// the server took responsibility for it.
    fn send(&self, envelope: &Envelope, raw: &[u8]) -> Result<SendOk, SendError>;
}

impl<T: Transport + ?Sized> Transport for &T {
    fn send(&self, envelope: &Envelope, raw: &[u8]) -> Result<SendOk, SendError> {
        (**self).send(envelope, raw)
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn send(&self, envelope: &Envelope, raw: &[u8]) -> Result<SendOk, SendError> {
        (**self).send(envelope, raw)
    }
}

/// How the SMTP connection is secured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain SMTP (a provider's private network, loopback tests).
    None,
    /// Plain connection upgraded with STARTTLS, which must be offered (port 587 or 25).
    #[default]
    StartTls,
    /// TLS from the first byte (SMTPS, port 465).
    Implicit,
}

/// SMTP login. The password is a [`Secret`]: `Debug` never shows it.
#[derive(Debug)]
pub struct SmtpCredentials {
    pub user: String,
    pub password: Secret<String>,
}

/// Where and how to reach the SMTP server.
#[derive(Debug)]
pub struct SmtpConfig {
    /// Host name or IP address to connect to.
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// Name the server certificate must carry (defaults to `host`).
    pub tls_domain: Option<String>,
    /// Extra trusted root certificates (PEM), e.g. a provider's private CA.
    pub extra_roots_pem: Vec<Vec<u8>>,
    pub credentials: Option<SmtpCredentials>,
    /// Name sent in EHLO (defaults to the machine's host name).
    pub hello_name: Option<String>,
    /// Per-command timeout.
    pub timeout: Duration,
    /// Send the credentials even when `security` is [`Security::None`] (a loopback test server,
    /// a local hop). Off by default: [`SmtpTransport::new`] refuses credentials in clear.
    pub allow_plaintext_auth: bool,
}

impl SmtpConfig {
    /// Plain SMTP to `host:port`, 60 s timeout, no login.
    pub fn plain(host: impl Into<String>, port: u16) -> SmtpConfig {
        SmtpConfig {
            host: host.into(),
            port,
            security: Security::None,
            tls_domain: None,
            extra_roots_pem: Vec::new(),
            credentials: None,
            hello_name: None,
            timeout: Duration::from_secs(60),
            allow_plaintext_auth: false,
        }
    }
}

/// A real SMTP server, through lettre. One connection per message.
pub struct SmtpTransport {
    inner: lettre::SmtpTransport,
    endpoint: String,
    /// The per-command timeout, to say it in a timeout error.
    timeout: Duration,
    /// The login, kept to scrub it out of server answers.
    login: Option<(String, Secret<String>)>,
    /// With implicit TLS: where and how to try the handshake under the timeout first (see
    /// [`SmtpTransport::probe_handshake`]).
    wrapper: Option<HandshakeProbe>,
}

impl fmt::Debug for SmtpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpTransport")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl SmtpTransport {
    /// Prepares the transport (no connection yet). Fails permanently on a bad TLS setup, and on
    /// credentials without TLS unless `allow_plaintext_auth` says so.
    pub fn new(cfg: &SmtpConfig) -> Result<SmtpTransport, SendError> {
        let endpoint = format!("{}:{}", cfg.host, cfg.port);
        if cfg.credentials.is_some() && cfg.security == Security::None && !cfg.allow_plaintext_auth {
            return Err(SendError::permanent(
                format!(
                    "SMTP {endpoint}: refusing to send the password over a connection without TLS \
                     (use STARTTLS or implicit TLS, or allow_plaintext_auth = true for a local hop)"
                ),
                None,
                None,
            ));
        }
        let mut b = lettre::SmtpTransport::builder_dangerous(cfg.host.as_str())
            .port(cfg.port)
            .timeout(Some(cfg.timeout));
        let tls_params = || -> Result<TlsParameters, SendError> {
            let domain = cfg.tls_domain.clone().unwrap_or_else(|| cfg.host.clone());
            let mut tb = TlsParameters::builder(domain);
            for pem in &cfg.extra_roots_pem {
                let cert = Certificate::from_pem(pem).map_err(|e| {
                    SendError::permanent(format!("SMTP {endpoint}: extra root certificate"), None, None)
                        .with_source(e)
                })?;
                tb = tb.add_root_certificate(cert);
            }
            tb.build().map_err(|e| {
                SendError::permanent(format!("SMTP {endpoint}: TLS setup"), None, None).with_source(e)
            })
        };
        let mut wrapper = None;
        b = match cfg.security {
            Security::None => b.tls(Tls::None),
            Security::StartTls => b.tls(Tls::Required(tls_params()?)),
            Security::Implicit => {
                wrapper = Some(HandshakeProbe::new(cfg, &endpoint)?);
                b.tls(Tls::Wrapper(tls_params()?))
            }
        };
        if let Some(c) = &cfg.credentials {
            b = b.credentials(Credentials::new(c.user.clone(), c.password.expose().clone()));
        }
        if let Some(h) = &cfg.hello_name {
            b = b.hello_name(lettre::transport::smtp::extension::ClientId::Domain(h.clone()));
        }
        Ok(SmtpTransport {
            inner: b.build(),
            endpoint,
            timeout: cfg.timeout,
            login: cfg
                .credentials
                .as_ref()
                .map(|c| (c.user.clone(), c.password.clone())),
            wrapper,
        })
    }

    /// With implicit TLS, lettre sets the socket timeouts only once the TLS handshake is done,
    /// so a server that accepts the connection and never answers would block the handshake
    /// forever. So the handshake is first tried on a connection of our own whose timeouts are
    /// set before it starts, with the same TLS parameters; only a server that completes it
    /// within the timeout is handed to lettre. The probe connection is closed right after the
    /// handshake, before any SMTP command, so nothing is sent twice. (A server that completes the
    /// probe and then stalls the very next handshake is not bounded: lettre offers no hook.)
    fn probe_handshake(&self) -> Result<(), SendError> {
        match &self.wrapper {
            Some(probe) if probe.times_out(self.timeout) => Err(self.timeout_error(" (TLS handshake)")),
            _ => Ok(()),
        }
    }

    /// "timeout talking to HOST:PORT after N s", transient: a silent server may come back.
    fn timeout_error(&self, during: &str) -> SendError {
        SendError::transient(
            format!(
                "SMTP: timeout talking to {} after {} s{during}: the server does not answer; check \
                 the host and port, or raise the timeout",
                self.endpoint,
                self.timeout.as_secs()
            ),
            None,
            None,
        )
    }

    /// A server's text with any authentication material removed (see [`scrub_reply`]).
    fn scrub(&self, text: &str) -> String {
        match &self.login {
            Some((user, pw)) => scrub_reply(text, Some(user), &[pw]),
            None => scrub_reply(text, None, &[]),
        }
    }
}

fn address(s: &str, role: &str) -> Result<lettre::Address, SendError> {
    s.parse::<lettre::Address>()
        .map_err(|e| SendError::permanent(format!("invalid {role} address {s:?}"), None, None).with_source(e))
}

/// The offset of the first CR or LF that is not part of a CRLF pair.
///
/// lettre dot-stuffs only after CRLF, while servers such as Exim also end lines at a bare LF: a
/// bare `\n.\n` would end the DATA early and the rest would be read as commands. Such a message
/// is not valid RFC 5322 anyway, so it is refused before connecting.
fn bare_line_end(raw: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        match b {
            b'\r' if raw.get(i + 1) == Some(&b'\n') => i += 2,
            b'\r' | b'\n' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

impl Transport for SmtpTransport {
    /// Refuses (permanently) a message with a bare CR or LF (see `bare_line_end`).
    fn send(&self, envelope: &Envelope, raw: &[u8]) -> Result<SendOk, SendError> {
        if let Some(offset) = bare_line_end(raw) {
            return Err(SendError::permanent(
                format!("message has a bare CR or LF at byte {offset}; lines must end with CRLF"),
                None,
                None,
            ));
        }
        let from = envelope
            .from
            .as_deref()
            .map(|f| address(f, "sender"))
            .transpose()?;
        let to = envelope
            .to
            .iter()
            .map(|t| address(t, "recipient"))
            .collect::<Result<Vec<_>, _>>()?;
        let env = lettre::address::Envelope::new(from, to)
            .map_err(|e| SendError::permanent("invalid SMTP envelope", None, None).with_source(e))?;
        // lettre always ends DATA with "\r\n.\r\n"; RFC 5321 counts that first CRLF as the end
        // of the last line, so give lettre the message without its final line end, or the
        // server would store one extra empty line.
        let body = raw
            .strip_suffix(b"\r\n")
            .or_else(|| raw.strip_suffix(b"\n"))
            .unwrap_or(raw);
        self.probe_handshake()?;
        match self.inner.send_raw(&env, body) {
            Ok(resp) => {
                let code = u16::from(resp.code());
                let text = resp.message().collect::<Vec<_>>().join(" ");
                Ok(SendOk {
                    code,
                    answer: self.scrub(&format!("{code} {text}")),
                })
            }
            Err(e) if is_timeout(&e) => Err(self.timeout_error("")),
            Err(e) => Err(classify(&self.endpoint, e, |t| self.scrub(t))),
        }
    }
}

/// Maps lettre's error kinds to transient/permanent/login refused. Every text that may come from
/// the server goes through `scrub` (lettre quotes a garbled reply in its error), so the error
/// keeps the scrubbed text, not lettre's error itself.
fn classify(endpoint: &str, e: lettre::transport::smtp::Error, scrub: impl Fn(&str) -> String) -> SendError {
    let context = format!("SMTP {endpoint}");
    if let Some(code) = e.status() {
        let code = u16::from(code);
        let text = std::error::Error::source(&e)
            .map(|s| s.to_string())
            .unwrap_or_default();
        let answer = Some(scrub(format!("{code} {text}").trim_end()));
        return if matches!(code, 534 | 535) {
            SendError::auth_rejected(context, Some(code), answer)
        } else if e.is_permanent() {
            SendError::permanent(context, Some(code), answer)
        } else {
            SendError::transient(context, Some(code), answer)
        };
    }
    let permanent = e.is_tls() || e.is_client() || tls_handshake_failed(&e);
    let cause = std::io::Error::other(scrub(&error_chain(&e)));
    if permanent {
        // A certificate that does not verify or a server without STARTTLS does not heal by
        // itself; neither does a message lettre refuses to send.
        return SendError::permanent(context, None, None).with_source(cause);
    }
    // Connection refused, DNS, timeouts, a connection cut mid-transaction, garbled replies.
    SendError::transient(context, None, None).with_source(cause)
}

/// Whether the failure is the socket timeout expiring: a server that accepted the connection and
/// never answered (the OS says `WouldBlock`, "Resource temporarily unavailable", or `TimedOut`).
fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            )
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// The TLS handshake of implicit TLS, tried under the timeout before lettre connects (see
/// [`SmtpTransport::probe_handshake`]). The same trust as lettre's native-tls (OpenSSL, the
/// system roots plus the configured extra roots, the host name checked), so a server lettre
/// would accept passes; anything but a timeout is left for lettre to report as it does.
struct HandshakeProbe {
    host: String,
    port: u16,
    domain: String,
    connector: openssl::ssl::SslConnector,
}

impl HandshakeProbe {
    fn new(cfg: &SmtpConfig, endpoint: &str) -> Result<HandshakeProbe, SendError> {
        let setup = |e: &dyn fmt::Display| {
            SendError::permanent(format!("SMTP {endpoint}: TLS setup: {e}"), None, None)
        };
        let mut b = openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls_client())
            .map_err(|e| setup(&e))?;
        for pem in &cfg.extra_roots_pem {
            let cert = openssl::x509::X509::from_pem(pem).map_err(|e| setup(&e))?;
            b.cert_store_mut().add_cert(cert).map_err(|e| setup(&e))?;
        }
        Ok(HandshakeProbe {
            host: cfg.host.clone(),
            port: cfg.port,
            domain: cfg.tls_domain.clone().unwrap_or_else(|| cfg.host.clone()),
            connector: b.build(),
        })
    }

    /// Whether connecting or the handshake runs past `timeout`. The connection is closed right
    /// after the handshake, before any SMTP command.
    fn times_out(&self, timeout: Duration) -> bool {
        use std::net::ToSocketAddrs as _;
        let Ok(addrs) = (self.host.as_str(), self.port).to_socket_addrs() else {
            return false;
        };
        let mut timed_out = false;
        for addr in addrs {
            let tcp = match std::net::TcpStream::connect_timeout(&addr, timeout) {
                Ok(tcp) => tcp,
                Err(e) => {
                    timed_out |= is_timeout(&e);
                    continue;
                }
            };
            if tcp.set_read_timeout(Some(timeout)).is_err() || tcp.set_write_timeout(Some(timeout)).is_err() {
                return false;
            }
            return match self.connector.connect(&self.domain, tcp) {
                Ok(mut tls) => {
                    let _ = tls.shutdown();
                    false
                }
                Err(openssl::ssl::HandshakeError::WouldBlock(_)) => true,
                Err(openssl::ssl::HandshakeError::Failure(m)) => {
                    m.error().io_error().is_some_and(|io| is_timeout(io))
                }
                Err(openssl::ssl::HandshakeError::SetupFailure(_)) => false,
            };
        }
        timed_out
    }
}

/// An error and its causes on one line (`a: b: c`), skipping a cause its parent already quotes.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        let s = err.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = err.source();
    }
    out
}

/// Whether an OpenSSL error is in the cause chain (lettre reports a failed handshake, such as
/// an untrusted certificate, as a connection error).
fn tls_handshake_failed(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<openssl::ssl::Error>() || err.is::<openssl::error::ErrorStack>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Writes each message as a `.eml` file in a directory (and its envelope next to it as
/// `.envelope.json`), never overwriting. Each file is written under a temporary name, synced and
/// renamed, so a reader never sees half a message; the envelope is placed first, so a reader
/// that sees a `.eml` also sees its envelope; the directory is synced before `send` returns, so
/// a message reported written survives a power cut. What a killed writer left (hidden `.tmp`
/// files, an envelope without its message) is removed when the next transport opens the
/// directory.
#[derive(Debug)]
pub struct DirTransport {
    dir: PathBuf,
    seq: AtomicU64,
}

impl DirTransport {
    /// Writes into `dir`, created if missing, after removing what killed writers left there.
    pub fn new(dir: impl Into<PathBuf>) -> Result<DirTransport, SendError> {
        let dir = dir.into();
        crate::fsx::create_data_dir_all(&dir).map_err(|e| {
            SendError::permanent(format!("create output directory {}", dir.display()), None, None)
                .with_source(e)
        })?;
        let removed = remove_leftovers(&dir).map_err(|e| {
            SendError::permanent(format!("clean output directory {}", dir.display()), None, None)
                .with_source(e)
        })?;
        if removed > 0 {
            tracing::warn!(dir = %dir.display(), removed, "removed files left by a killed writer");
        }
        Ok(DirTransport {
            dir,
            seq: AtomicU64::new(0),
        })
    }

    /// The output directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `bytes` as `<stem>.<ext>`: a hidden temporary name, synced, then renamed into
    /// place without replacing anything (`RENAME_NOREPLACE`; a hard link where the file system
    /// lacks it). The directory itself is synced by the caller once both files are in place.
    fn write_new(&self, stem: &str, ext: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
        let tmp = self.dir.join(format!(".{stem}.{ext}.tmp"));
        let path = self.dir.join(format!("{stem}.{ext}"));
        let mut f = crate::fsx::create_new_data_file(&tmp)?;
        let written = f.write_all(bytes).and_then(|()| f.sync_all());
        drop(f);
        let placed = written.and_then(|()| crate::fsx::place_no_replace(&tmp, &path));
        if placed.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        placed.map(|()| path)
    }
}

impl Transport for DirTransport {
    fn send(&self, envelope: &Envelope, raw: &[u8]) -> Result<SendOk, SendError> {
        let now = time::OffsetDateTime::now_utc();
        let stamp = format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        );
        let pid = std::process::id();
        let mut last_err = None;
        for _ in 0..1000 {
            let n = self.seq.fetch_add(1, Ordering::Relaxed);
            let stem = format!("{stamp}-{pid}-{n:06}");
            // The envelope first: a `.eml` in place always has its envelope next to it. A kill
            // between the two leaves an envelope alone, removed by the next `new`.
            let env = serde_json::to_vec_pretty(envelope).unwrap_or_default();
            match self.write_new(&stem, "envelope.json", &env) {
                Ok(env_path) => {
                    let path = self.write_new(&stem, "eml", raw).map_err(|e| {
                        let _ = fs::remove_file(&env_path);
                        SendError::transient(
                            format!("write message next to {}", env_path.display()),
                            None,
                            None,
                        )
                        .with_source(e)
                    })?;
                    crate::fsx::sync_dir(&self.dir).map_err(|e| {
                        SendError::transient(format!("sync {}", self.dir.display()), None, None)
                            .with_source(e)
                    })?;
                    return Ok(SendOk {
                        code: 0,
                        answer: format!("written to {}", path.display()),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last_err = Some(e),
                Err(e) => {
                    return Err(SendError::transient(
                        format!("write into {}", self.dir.display()),
                        None,
                        None,
                    )
                    .with_source(e));
                }
            }
        }
        Err(
            SendError::transient(format!("no free file name in {}", self.dir.display()), None, None)
                .with_source(last_err.unwrap_or_else(|| std::io::Error::other("name collision"))),
        )
    }
}

/// The writer's process id in a `DirTransport` file name (`[.]<stamp>-<pid>-<seq>.<ext>[.tmp]`).
fn writer_pid(name: &str) -> Option<u32> {
    let stem = name.trim_start_matches('.').split('.').next()?;
    let mut parts = stem.split('-');
    let (_stamp, pid, _seq) = (parts.next()?, parts.next()?, parts.next()?);
    pid.parse().ok()
}

/// Whether process `pid` is running (Linux: its `/proc` entry exists).
fn process_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Removes, among the files of writers no longer running, hidden temporaries and `.eml` /
/// `.envelope.json` files missing their other half (never reported written). Files of running
/// writers, this process included, are left alone. Returns how many files were removed.
fn remove_leftovers(dir: &Path) -> std::io::Result<usize> {
    let names: std::collections::HashSet<String> = fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    let me = std::process::id();
    let mut removed = 0;
    for name in &names {
        let Some(pid) = writer_pid(name) else { continue };
        if pid == me || process_alive(pid) {
            continue;
        }
        let orphan = if name.starts_with('.') {
            name.ends_with(".tmp")
        } else if let Some(stem) = name.strip_suffix(".envelope.json") {
            !names.contains(&format!("{stem}.eml"))
        } else if let Some(stem) = name.strip_suffix(".eml") {
            !names.contains(&format!("{stem}.envelope.json"))
        } else {
            false
        };
        if orphan {
            fs::remove_file(dir.join(name))?;
            removed += 1;
        }
    }
    if removed > 0 {
        crate::fsx::sync_dir(dir)?;
    }
    Ok(removed)
}

/// One message captured by a [`MemoryTransport`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Captured {
    pub envelope: Envelope,
    pub raw: Vec<u8>,
}

/// Keeps sent messages in memory; failures can be scripted. For unit tests.
#[derive(Debug, Default)]
pub struct MemoryTransport {
    sent: Mutex<Vec<Captured>>,
    script: Mutex<std::collections::VecDeque<SendError>>,
}

impl MemoryTransport {
    pub fn new() -> MemoryTransport {
        MemoryTransport::default()
    }

    /// Makes the next `send` fail with `err` (queued: several calls fail in order).
    pub fn fail_next(&self, err: SendError) {
        if let Ok(mut s) = self.script.lock() {
            s.push_back(err);
        }
    }

    /// The messages sent so far, in order.
    pub fn sent(&self) -> Vec<Captured> {
        self.sent.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Transport for MemoryTransport {
    fn send(&self, envelope: &Envelope, raw: &[u8]) -> Result<SendOk, SendError> {
        if let Some(err) = self.script.lock().ok().and_then(|mut s| s.pop_front()) {
            return Err(err);
        }
        if envelope.to.is_empty() {
            return Err(SendError::permanent("envelope without recipient", None, None));
        }
        let mut sent = self
            .sent
            .lock()
            .map_err(|_| SendError::transient("memory transport poisoned", None, None))?;
        sent.push(Captured {
            envelope: envelope.clone(),
            raw: raw.to_vec(),
        });
        Ok(SendOk {
            code: 250,
            answer: format!("250 OK memory #{}", sent.len()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_transport_captures_and_scripts_failures() {
        let t = MemoryTransport::new();
        t.fail_next(SendError::transient("x", Some(451), Some("451 try later".into())));
        let env = Envelope::new("ps@ps.test", "oct@oct.test");
        let e = t.send(&env, b"m").unwrap_err();
        assert!(e.is_transient() && !e.is_permanent());
        assert_eq!(e.code(), Some(451));
        assert_eq!(e.server_answer(), Some("451 try later"));
        let ok = t.send(&env, b"m").unwrap();
        assert_eq!(ok.code, 250);
        assert_eq!(
            t.sent(),
            vec![Captured {
                envelope: env,
                raw: b"m".to_vec()
            }]
        );
    }

    #[test]
    fn a_server_that_accepts_and_never_answers_is_a_timeout_naming_endpoint_and_delay() {
        // The kernel completes the connection (backlog); nobody ever writes a greeting.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mut cfg = SmtpConfig::plain("127.0.0.1", port);
        cfg.timeout = Duration::from_secs(1);
        let t = SmtpTransport::new(&cfg).unwrap();
        let env = Envelope::new("ps@ps.test", "oct@oct.test");
        let e = t.send(&env, b"Subject: x\r\n\r\nbody\r\n").unwrap_err();
        assert!(e.is_transient(), "a silent server may come back: {e}");
        let text = e.to_string();
        assert!(
            text.contains(&format!("timeout talking to 127.0.0.1:{port} after 1 s")),
            "{text}"
        );
        assert!(!text.contains("os error"), "{text}");
        drop(l);
    }

    /// Implicit TLS (SMTPS): lettre sets the socket timeouts only after the handshake, so the
    /// handshake is tried first under the timeout; a silent server is a timeout, not a hang.
    #[test]
    fn an_smtps_server_that_accepts_and_never_answers_the_handshake_is_a_timeout() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mut cfg = SmtpConfig::plain("127.0.0.1", port);
        cfg.security = Security::Implicit;
        cfg.timeout = Duration::from_secs(1);
        let t = SmtpTransport::new(&cfg).unwrap();
        let env = Envelope::new("ps@ps.test", "oct@oct.test");
        let e = t.send(&env, b"Subject: x\r\n\r\nbody\r\n").unwrap_err();
        assert!(e.is_transient(), "a silent server may come back: {e}");
        let text = e.to_string();
        assert!(
            text.contains(&format!("timeout talking to 127.0.0.1:{port} after 1 s")),
            "{text}"
        );
        assert!(text.contains("TLS handshake"), "{text}");
        drop(l);
    }

    #[test]
    fn bare_line_ends_are_found() {
        assert_eq!(bare_line_end(b"a\r\nb\r\n"), None);
        assert_eq!(bare_line_end(b""), None);
        assert_eq!(bare_line_end(b"a\n.\nb"), Some(1));
        assert_eq!(bare_line_end(b"ab\r\ncd\r"), Some(6));
        assert_eq!(bare_line_end(b"ab\rcd"), Some(2));
        let t = SmtpTransport::new(&SmtpConfig::plain("127.0.0.1", 1)).unwrap();
        let e = t
            .send(
                &Envelope::new("a@b.test", "c@d.test"),
                b"Subject: x\r\n\r\na\n.\nRSET\r\n",
            )
            .unwrap_err();
        assert!(e.is_permanent());
        assert!(e.to_string().contains("byte 15"), "{e}");
    }

    #[test]
    fn credentials_never_show_in_debug() {
        let mut cfg = SmtpConfig::plain("127.0.0.1", 25);
        cfg.credentials = Some(SmtpCredentials {
            user: "ps1".into(),
            password: Secret::new("hunter2-very-secret".into()),
        });
        let dbg = format!("{cfg:?}");
        assert!(dbg.contains("ps1"));
        assert!(!dbg.contains("hunter2"), "{dbg}");
    }

    #[test]
    fn dir_transport_writes_exact_bytes_and_never_overwrites() {
        let d = tempfile::tempdir().unwrap();
        let t = DirTransport::new(d.path().join("out")).unwrap();
        let env = Envelope::new("ps@ps.test", "oct@oct.test");
        let raw = b"Subject: a\r\n\r\nline\r\n.\r\n".to_vec();
        t.send(&env, &raw).unwrap();
        t.send(&env, &raw).unwrap();
        let mut emls: Vec<_> = fs::read_dir(t.dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        emls.sort();
        assert_eq!(emls.len(), 2);
        for p in &emls {
            assert_eq!(fs::read(p).unwrap(), raw);
            let env_path = p.with_extension("envelope.json");
            let back: Envelope = serde_json::from_slice(&fs::read(env_path).unwrap()).unwrap();
            assert_eq!(back, env);
        }
        // No temporary file left behind.
        assert_eq!(fs::read_dir(t.dir()).unwrap().count(), 4);
        // Owner only, whatever the umask: the messages hold claims.
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(t.dir()), 0o700);
        for e in fs::read_dir(t.dir()).unwrap() {
            assert_eq!(mode(&e.unwrap().path()), 0o600);
        }
    }

    #[test]
    fn leftovers_of_a_killed_writer_are_removed_at_start() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        fs::create_dir_all(&out).unwrap();
        // pid 999999999 is above any pid_max: that writer is not running.
        let dead = "20261202T101010-999999999";
        let me = format!("20261202T101010-{}", std::process::id());
        let leftovers = [
            format!(".{dead}-000001.eml.tmp"),
            format!(".{dead}-000002.envelope.json.tmp"),
            format!("{dead}-000003.envelope.json"),
            format!("{dead}-000004.eml"),
        ];
        let kept = [
            format!("{dead}-000005.eml"),
            format!("{dead}-000005.envelope.json"),
            format!(".{me}-000006.eml.tmp"),
            format!("{me}-000007.envelope.json"),
            "notes.txt".to_owned(),
        ];
        for name in leftovers.iter().chain(kept.iter()) {
            fs::write(out.join(name), b"x").unwrap();
        }
        let t = DirTransport::new(&out).unwrap();
        let mut left: Vec<String> = fs::read_dir(t.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        let mut want = kept.to_vec();
        want.sort();
        assert_eq!(left, want);
    }
}
