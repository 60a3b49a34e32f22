//! What the relay needs to read inside returns (ARL, RSP, dLOI), over the return-format codecs of
//! `svoct_formats` (ARL, NOEMIE, LOI: provisional formats owned by those modules).
//!
//! Kept in one module so that the relay logic in [`crate::pipeline`] does not depend on the
//! details of formats that may be replaced by official ones.

use std::path::Path;

use serde::Serialize;
use svoct_mail::profile::Profile;

/// The facts of an ARL the OCT needs to recognise the lots it built (R4.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ArlFacts {
    /// *N° de lot* (3 digits).
    pub lot_number: String,
    /// *Date de création du lot* (AAMMJJ).
    pub lot_date: String,
    /// `positive` or `negative`.
    pub status: String,
    /// Reasons, joined.
    pub detail: String,
}

/// Reads the lot an ARL acknowledges; `None` when the file is not a readable ARL.
pub fn arl_facts(_bytes: &[u8]) -> Option<ArlFacts> {
    None
}

/// The PS number a return file names as its recipient, when the format says it: the NOEMIE
/// `000` header's *Numéro de destinataire* (positions 28-41) of an RSP (every file of the
/// attachment must name the same one; otherwise the first is returned and the relay's
/// cross-check with the subject refuses the message). `None` when the file cannot be read or
/// the format has no recipient.
pub fn recipient_in_file(profile: Profile, bytes: &[u8]) -> Option<String> {
    match profile {
        Profile::Rsp => {
            let parsed = svoct_formats::noemie::parse(bytes).ok()?;
            let field = svoct_formats::noemie::layouts::H000.field("recipient_number")?;
            let mut numbers = parsed
                .files
                .iter()
                .filter_map(|f| field.str(&f.header).map(|s| s.trim().to_owned()));
            let first = numbers.next()?;
            Some(first).filter(|f| !f.is_empty())
        }
        _ => None,
    }
}

/// The answer to a dLOI request.
#[derive(Clone, Debug)]
pub struct LoiAnswer {
    /// The increment file sent to the PS.
    pub bytes: Vec<u8>,
    /// What it holds, for the processing summary.
    pub summary: serde_json::Value,
}

/// Answers a dLOI request from the LOI source directory.
pub fn loi_answer(_request: &[u8], source: &Path) -> Result<LoiAnswer, String> {
    Err(format!(
        "dLOI requests cannot be answered yet from {}",
        source.display()
    ))
}
