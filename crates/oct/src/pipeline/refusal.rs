//! Why a message is refused: a stable code and an explanation for the operator and the PS.
//!
//! The codes' text is written to the quarantine rows, the processing summary and the logs, and
//! read back by operators' tools: [`RefusalCode::as_str`] is the one place that spells it.

use std::fmt;

use serde::Serialize;

use super::PipelineError;

/// The reason class of a refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefusalCode {
    /// The message's headers or profile do not follow the OCT annex.
    UnreadableMessage,
    /// A profile the OCT never receives (an ART).
    UnexpectedProfile,
    /// The sender's address is not registered (invoices, dLOI) or not an AM mailbox (returns).
    UnknownSender,
    /// The attachment could not be decrypted or decompressed with the OCT's key.
    Undecryptable,
    /// The B2 file cannot be parsed.
    CorruptFile,
    /// The subject does not agree with the file (or a return's file names another PS).
    ProfileMismatch,
    /// The sender may not send this file (sender number, PS of a lot).
    NotAuthorised,
    /// A single file addressed to another OCT (R3.2).
    OtherOct,
    /// DRE and contract 99 for the same invoice within the file (R3.4).
    Exclusivity,
    /// Another file under a compostage the sender already used (R5.3).
    CompostageReused,
    /// Findings in the file's own framing (`000` / `999`).
    InvalidFile,
    /// A destination without a route, or a return for a PS not registered.
    NoRoute,
    /// An ARL for the OCT's own flows naming a lot it did not build (R4.2).
    UnknownLot,
    /// A dLOI request to an OCT without a LOI source.
    NoLoiSource,
    /// A dLOI request that cannot be answered.
    InvalidLoiRequest,
    /// The sender's PS account is suspended (`svoct oct ps suspend`): invoices and dLOI
    /// requests are refused, returns for it are still relayed.
    SuspendedSender,
    /// The certificate registered for the PS cannot be used (missing, unreadable, expired): a
    /// return for it waits in quarantine until it is fixed.
    PsCertificate,
}

impl RefusalCode {
    /// Every code, for tests and documentation.
    pub const ALL: [RefusalCode; 17] = [
        RefusalCode::UnreadableMessage,
        RefusalCode::UnexpectedProfile,
        RefusalCode::UnknownSender,
        RefusalCode::Undecryptable,
        RefusalCode::CorruptFile,
        RefusalCode::ProfileMismatch,
        RefusalCode::NotAuthorised,
        RefusalCode::OtherOct,
        RefusalCode::Exclusivity,
        RefusalCode::CompostageReused,
        RefusalCode::InvalidFile,
        RefusalCode::NoRoute,
        RefusalCode::UnknownLot,
        RefusalCode::NoLoiSource,
        RefusalCode::InvalidLoiRequest,
        RefusalCode::SuspendedSender,
        RefusalCode::PsCertificate,
    ];

    /// The code as stored, logged and shown (`snake_case`, stable).
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalCode::UnreadableMessage => "unreadable_message",
            RefusalCode::UnexpectedProfile => "unexpected_profile",
            RefusalCode::UnknownSender => "unknown_sender",
            RefusalCode::Undecryptable => "undecryptable",
            RefusalCode::CorruptFile => "corrupt_file",
            RefusalCode::ProfileMismatch => "profile_mismatch",
            RefusalCode::NotAuthorised => "not_authorised",
            RefusalCode::OtherOct => "other_oct",
            RefusalCode::Exclusivity => "exclusivity",
            RefusalCode::CompostageReused => "compostage_reused",
            RefusalCode::InvalidFile => "invalid_file",
            RefusalCode::NoRoute => "no_route",
            RefusalCode::UnknownLot => "unknown_lot",
            RefusalCode::NoLoiSource => "no_loi_source",
            RefusalCode::InvalidLoiRequest => "invalid_loi_request",
            RefusalCode::SuspendedSender => "suspended_sender",
            RefusalCode::PsCertificate => "ps_certificate",
        }
    }
}

impl fmt::Display for RefusalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RefusalCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Why a message is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: RefusalCode,
    /// For the operator, and for the PS in the ART of an invoice message.
    pub reason: String,
}

impl Refusal {
    /// A refusal of class `code` for `reason`.
    pub fn new(code: RefusalCode, reason: impl Into<String>) -> Refusal {
        Refusal {
            code,
            reason: reason.into(),
        }
    }
}

/// Why a processing step stops: the message is refused (quarantined, with an ART when the
/// sender is known), or the surroundings failed (the message is released and tried again).
#[derive(Debug)]
pub(crate) enum Halt {
    Refused(Refusal),
    Failed(PipelineError),
}

impl From<Refusal> for Halt {
    fn from(r: Refusal) -> Halt {
        Halt::Refused(r)
    }
}

impl From<PipelineError> for Halt {
    fn from(e: PipelineError) -> Halt {
        Halt::Failed(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_snake_case_words() {
        let mut seen = std::collections::HashSet::new();
        for code in RefusalCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{s}");
            assert_eq!(serde_json::to_value(code).unwrap(), serde_json::json!(s));
        }
    }
}
