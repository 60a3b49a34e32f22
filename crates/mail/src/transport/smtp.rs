//! The SMTP backend: a real server through lettre, one connection per message.

use std::fmt;
use std::time::Duration;

use lettre::Transport as _;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use serde::{Deserialize, Serialize};

use super::{SendError, SendOk, SmtpEnvelope, Transport};
use crate::secret::{Secret, scrub_reply};

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
    fn send(&self, envelope: &SmtpEnvelope, raw: &[u8]) -> Result<SendOk, SendError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_that_accepts_and_never_answers_is_a_timeout_naming_endpoint_and_delay() {
        // The kernel completes the connection (backlog); nobody ever writes a greeting.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mut cfg = SmtpConfig::plain("127.0.0.1", port);
        cfg.timeout = Duration::from_secs(1);
        let t = SmtpTransport::new(&cfg).unwrap();
        let env = SmtpEnvelope::new("ps@ps.test", "oct@oct.test");
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
        let env = SmtpEnvelope::new("ps@ps.test", "oct@oct.test");
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
                &SmtpEnvelope::new("a@b.test", "c@d.test"),
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
}
