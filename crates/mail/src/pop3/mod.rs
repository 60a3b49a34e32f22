//! Mailbox retrieval: a sans-IO POP3 client core, a thin blocking shell, and the retrieval loop.
//!
//! - [`core`]: the POP3 state machine (bytes in, events out), bounded, chunking-agnostic.
//! - [`shell`]: [`Pop3Session`], blocking over TCP, optional TLS (STLS or implicit) via OpenSSL.
//! - [`mailbox`]: the [`Mailbox`] trait (POP3 and [`crate::maildir::Maildir`] implement it) and
//!   [`retrieve`], the loop that stores each message durably before deleting it on the server.
//!
//! POP3 with UIDL is what the annex's mailbox retrieval needs (`shared/spec/formats.md` §3): the
//! UIDL is stable across sessions, so a message is never stored twice nor lost.

pub mod core;
pub mod mailbox;
pub mod shell;

pub use core::{Client, Command, Event, Limits, ProtocolError, Verb};
pub use mailbox::{
    Mailbox, MessageSink, RetrieveError, RetrievePolicy, RetrieveReport, retrieve, retrieve_selected,
};
pub use shell::{Pop3Auth, Pop3Config, Pop3Error, Pop3Security, Pop3Session};
