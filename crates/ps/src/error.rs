//! The one error type of the PS module. Every variant names what it is about (file, lot, invoice,
//! byte offset, journal entry) so that the CLI can print it on one line and a support team can act
//! on it.

use std::path::PathBuf;

use svoct_formats::b2::B2Error;

use crate::config::ConfigError;

/// What went wrong in the PS module.
#[derive(Debug, thiserror::Error)]
pub enum PsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A lot file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A lot file is larger than [`crate::plan::MAX_LOT_FILE`].
    #[error("{path}: {size} bytes exceeds the {max} bytes accepted for one lot file")]
    TooLarge { path: String, size: u64, max: u64 },
    /// A lot file is not a B2 lot or file.
    #[error("{path}: {source}")]
    B2 {
        path: String,
        #[source]
        source: B2Error,
    },
    /// A lot file holds B2 records that the validator refuses.
    #[error(
        "{path}: record {record} (byte offset {offset}){field}: {message} ({count} problem(s) in this file)"
    )]
    Invalid {
        path: String,
        record: usize,
        offset: usize,
        /// ` field NAME` or empty.
        field: String,
        message: String,
        count: usize,
    },
    /// A lot of another PS than the configured one (one sender per sending).
    #[error(
        "{path}: lot {lot} (byte offset {offset}) belongs to PS {found}, but this configuration \
         sends for PS {expected} (identity.ps_number)"
    )]
    WrongSender {
        path: String,
        lot: String,
        offset: usize,
        expected: String,
        found: String,
    },
    /// An invoice that breaks a rule of the annex (R3.3, R3.4).
    #[error("{path}: invoice {invoice} (byte offset {offset}): {rule}: {reason}")]
    Rule {
        path: String,
        invoice: String,
        offset: usize,
        rule: &'static str,
        reason: String,
    },
    /// R3.4 across sendings: an FSE with contract type 99 and a DRE for one invoice.
    #[error("invoice {invoice}: R3.4: {reason}")]
    SplitTwice { invoice: String, reason: String },
    /// Direct mode and no route for a lot's destination.
    #[error(
        "no direct route for destination organisme {organisme} (lot {lot} of {path}): add \
         [direct.routes.\"{organisme}\"] to the configuration"
    )]
    NoRoute {
        organisme: String,
        lot: String,
        path: String,
    },
    /// Nothing to send.
    #[error("no lot to send")]
    NoLots,
    #[error(transparent)]
    Store(#[from] svoct_store::StoreError),
    #[error("building the message: {0}")]
    Profile(#[from] svoct_mail::profile::ProfileError),
    #[error("subject: {0}")]
    Subject(#[from] svoct_mail::subject::SubjectError),
    /// A certificate or key could not be loaded.
    #[error("{what} {path}: {source}")]
    Crypto {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: svoct_mail::cms::CmsError,
    },
    /// A saved file (for retry and resend) could not be written or read.
    #[error("saved file {path}: {reason}")]
    Payload { path: PathBuf, reason: String },
    /// The store's sending lock could not be taken.
    #[error("sending lock {path}: {source}")]
    SendLock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A journal entry that does not exist.
    #[error("journal entry {0} does not exist")]
    NoEntry(i64),
    /// A journal entry without a saved file.
    #[error("journal entry {id} has no saved file: {reason}")]
    NoPayload { id: i64, reason: String },
    /// A journal entry that cannot be sent again.
    #[error("journal entry {id} cannot be sent again: {reason}")]
    NotResendable { id: i64, reason: String },
    /// The mailbox could not be read; what was stored before the error stays stored.
    #[error("mailbox {source_name}: {message}")]
    Mailbox { source_name: String, message: String },
    /// A certificate file that cannot be used: missing, not a certificate, outside its dates.
    #[error("certificate {path}: {reason}")]
    Certificate { path: PathBuf, reason: String },
    /// A memory zone (SESAM-Vitale API form) given as lots whose lots cannot be taken out.
    #[error("{path}: a memory zone (SESAM-Vitale API), not B2 lots: {reason}")]
    Zone { path: String, reason: String },
    /// A building block refused (file framing, dLOI request).
    #[error("{0}")]
    Other(String),
}
