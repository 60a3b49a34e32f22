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
    /// The file that carried the lot, as the ARL names it (may be empty).
    pub file_id: String,
    /// `positive` or `negative`.
    pub status: String,
    /// Reasons, joined.
    pub detail: String,
}

/// Reads the lot an ARL acknowledges ([`svoct_formats::arl`], provisional); `None` when the
/// file is not a readable ARL.
pub fn arl_facts(bytes: &[u8]) -> Option<ArlFacts> {
    let arl = svoct_formats::arl::Arl::parse(bytes).ok()?;
    Some(ArlFacts {
        lot_number: format!("{:03}", arl.lot_number),
        lot_date: arl.lot_date.yymmdd(),
        file_id: arl.file_id.trim().to_owned(),
        status: match arl.status {
            svoct_formats::arl::ArlStatus::Positive => "positive".into(),
            svoct_formats::arl::ArlStatus::Negative => "negative".into(),
        },
        detail: arl
            .reasons
            .iter()
            .map(|r| format!("{} {}", r.code, r.label))
            .collect::<Vec<_>>()
            .join("; "),
    })
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
        Profile::Arl => {
            let arl = svoct_formats::arl::Arl::parse(bytes).ok()?;
            Some(arl.ps_number).filter(|p| !p.trim().is_empty())
        }
        _ => None,
    }
}

/// The answer to a dLOI request.
#[derive(Clone, Debug)]
pub struct LoiAnswer {
    /// The increment files to send, in version order (empty when the PS is up to date).
    pub increments: Vec<Vec<u8>>,
    /// What they hold, for the processing summary.
    pub summary: serde_json::Value,
}

/// Most files read from the LOI source directory, and the largest one.
const MAX_LOI_FILES: usize = 10_000;
const MAX_LOI_FILE: u64 = 64 * 1024 * 1024;

/// Why the LOI source could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoiSourceError {
    /// The directory could not be listed.
    #[error("LOI source {}: {source}", path.display())]
    Unreadable {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// More files than the 10,000 read at most: a wrong path cannot exhaust memory.
    #[error("LOI source {} holds more than {MAX_LOI_FILES} files", path.display())]
    TooManyFiles { path: std::path::PathBuf },
}

/// The files of the LOI source directory `source`: every regular file up to 64 MiB
/// (unreadable entries are skipped). What the service hands the pipeline through
/// [`crate::pipeline::Env::loi_files`].
pub fn read_loi_source(source: &Path) -> Result<Vec<Vec<u8>>, LoiSourceError> {
    let dir = std::fs::read_dir(source).map_err(|e| LoiSourceError::Unreadable {
        path: source.to_owned(),
        source: e,
    })?;
    let mut files = Vec::new();
    for (n, entry) in dir.enumerate() {
        if n >= MAX_LOI_FILES {
            return Err(LoiSourceError::TooManyFiles {
                path: source.to_owned(),
            });
        }
        let Ok(entry) = entry else { continue };
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() || meta.len() > MAX_LOI_FILE {
            continue;
        }
        if let Ok(bytes) = std::fs::read(entry.path()) {
            files.push(bytes);
        }
    }
    Ok(files)
}

/// Answers a dLOI request ([`svoct_formats::loi`], provisional) from the files of the LOI
/// source, which `source_files` reads once the request is understood: the chain of increments
/// starting at the version the PS holds (`from == version`, then `from == previous to`, ...).
/// Files that are not increments are ignored; an `Err` is a reason to refuse the request
/// (unreadable request, unreadable source, no increment continues the PS's version while newer
/// ones exist).
pub fn loi_answer(
    request: &[u8],
    source_files: impl FnOnce() -> Result<Vec<Vec<u8>>, LoiSourceError>,
) -> Result<LoiAnswer, String> {
    use svoct_formats::loi::{DloiRequest, Increment};
    let req = DloiRequest::parse(request).map_err(|e| format!("unreadable dLOI request: {e}"))?;
    let mut all: Vec<(Increment, Vec<u8>)> = source_files()
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter_map(|bytes| Increment::parse(&bytes).ok().map(|inc| (inc, bytes)))
        .collect();
    all.sort_by_key(|(i, _)| (i.from, i.to));
    let mut chain = Vec::new();
    let mut at = req.version;
    while let Some((inc, bytes)) = all.iter().find(|(i, _)| i.from == at) {
        chain.push(bytes.clone());
        at = inc.to;
    }
    let latest = all.iter().map(|(i, _)| i.to).max().unwrap_or(req.version);
    if at < latest {
        return Err(format!(
            "no increment chain from version {} to the latest version {latest} (stopped at {at})",
            req.version
        ));
    }
    Ok(LoiAnswer {
        summary: serde_json::json!({
            "requested_from": req.version, "answered_to": at, "increments": chain.len(),
        }),
        increments: chain,
    })
}
