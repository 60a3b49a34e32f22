//! Sending built messages: one small [`Transport`] trait and its backends, one file each.
//!
//! The profiles module builds the exact bytes of a message; sending must not touch them. So the
//! trait takes the raw bytes plus an [`SmtpEnvelope`], and the backends are:
//!
//! - [`smtp`] ([`SmtpTransport`]): a real SMTP server through lettre (`send_raw`: lettre only
//!   dot-stuffs), without TLS, with STARTTLS or with implicit TLS, optionally authenticated.
//! - [`dir`] ([`DirTransport`]): a directory of `.eml` files (the CLI's `--out`), for dry runs and
//!   for handing messages to another mailer.
//! - [`memory`] ([`MemoryTransport`]): in memory, with scripted failures, for unit tests.
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
//!
//! (This is the SMTP *client* side. The concentrator's SMTP *server* is `svoct_oct::inbound`.)

pub mod dir;
pub mod memory;
pub mod smtp;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use dir::DirTransport;
pub use memory::{Captured, MemoryTransport};
pub use smtp::{Security, SmtpConfig, SmtpCredentials, SmtpTransport};

/// The SMTP envelope: the reverse path and the recipients (not the headers).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmtpEnvelope {
    /// `MAIL FROM`; `None` for the null reverse path `<>`.
    pub from: Option<String>,
    /// `RCPT TO`, at least one.
    pub to: Vec<String>,
}

impl SmtpEnvelope {
    /// An envelope from one sender to one recipient.
    pub fn new(from: impl Into<String>, to: impl Into<String>) -> SmtpEnvelope {
        SmtpEnvelope {
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

    pub(crate) fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> SendError {
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
    fn send(&self, envelope: &SmtpEnvelope, raw: &[u8]) -> Result<SendOk, SendError>;
}

impl<T: Transport + ?Sized> Transport for &T {
    fn send(&self, envelope: &SmtpEnvelope, raw: &[u8]) -> Result<SendOk, SendError> {
        (**self).send(envelope, raw)
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn send(&self, envelope: &SmtpEnvelope, raw: &[u8]) -> Result<SendOk, SendError> {
        (**self).send(envelope, raw)
    }
}
