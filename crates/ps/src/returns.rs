//! The returns hook: what happens to a received message once it is stored, recognised and opened.
//!
//! [`crate::fetch`] calls [`handle`] for every message of a return profile (ART, ARL, RSP, dLOI
//! increments), after it is durably in the inbox. The returns work (issue 5: ARL and RSP
//! reconciliation, ART display, LOI increments) fills this one function; the retrieval does not
//! change. Until then every return is kept, classified, and listed by `svoct ps inbox`.
//!
//! Contract of [`handle`]:
//! - it may be called again for the same message after a crash (the message stays `new` until a
//!   call returns), so it must be idempotent;
//! - `Ok(Disposition::Kept)` leaves the message `new` and classified; `Ok(Disposition::Processed)`
//!   marks it processed; `Err(reason)` quarantines it with that reason (nothing is deleted).

use svoct_mail::subject::Subject;
use svoct_store::{InboxId, Store};

use crate::config::Config;

/// Which return a message carries (R4.1, R6, R7.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReturnKind {
    /// The OCT's text acknowledgement (R6.2).
    Art,
    /// Per-lot logical acknowledgement.
    Arl,
    /// NOEMIE payment / reject return.
    Rsp,
    /// dLOI increment file (R7.3).
    Dloi,
}

impl ReturnKind {
    /// The name stored as the inbox classification.
    pub fn name(self) -> &'static str {
        match self {
            ReturnKind::Art => "ART",
            ReturnKind::Arl => "ARL",
            ReturnKind::Rsp => "RSP",
            ReturnKind::Dloi => "DLOI",
        }
    }
}

/// A received message, recognised and opened.
#[derive(Clone, Debug)]
pub struct ClassifiedMessage {
    /// Its row in the inbox (the raw message is kept there).
    pub inbox_id: InboxId,
    pub kind: ReturnKind,
    pub subject: Subject,
    /// The Content-Description, e.g. `RSP/K`.
    pub profile: String,
    pub message_id: Option<String>,
    pub file_name: Option<String>,
    /// The attachment, decrypted and decompressed.
    pub file: Vec<u8>,
}

/// What [`handle`] did with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Kept for later processing or display.
    Kept,
    /// Fully processed.
    Processed,
}

/// Processes one classified return. See the module documentation for the contract.
pub fn handle(_store: &Store, _config: &Config, msg: &ClassifiedMessage) -> Result<Disposition, String> {
    if msg.file.is_empty() {
        return Err(format!("{} return with an empty file", msg.kind.name()));
    }
    Ok(Disposition::Kept)
}
