//! The files sent, kept so that a retry or a resend (R5.3) rebuilds the message with a new
//! compostage from the very same bytes.
//!
//! The journal (in `svoct-store`) records *that* a message was sent; this directory keeps *what*
//! it carried: one file `<compostage>.payload` per message, a line of JSON ([`PayloadMeta`]:
//! recipient, certificate, compression, lots, invoices), a line feed, then the file bytes. It is
//! written to a temporary name, synced and renamed before the journal entry is inserted, so a
//! journal entry always has its payload (one fsync per message: sending speed is bound by
//! fsyncs).

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use svoct_mail::fsx;

use crate::error::PsError;
use crate::plan::MAX_LOT_FILE;

/// Largest metadata file read back.
const MAX_META: u64 = 16 * 1024 * 1024;

/// What a sent message carried besides the file bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadMeta {
    /// `SV`, `DR` (invoice files) or `DLOI` (dLOI request).
    pub kind: String,
    pub to: String,
    pub certificate: Option<PathBuf>,
    pub compress: bool,
    pub file_name: String,
    pub exercice: String,
    pub lots: Vec<svoct_store::Lot>,
    pub invoices: Vec<String>,
}

/// The payload directory next to the store.
#[derive(Clone, Debug)]
pub struct Payloads {
    dir: PathBuf,
}

fn payload_err(path: &Path, e: impl std::fmt::Display) -> PsError {
    PsError::Payload {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), PsError> {
    let tmp = path.with_extension("tmp");
    let mut f = fsx::create_data_file(&tmp).map_err(|e| payload_err(&tmp, e))?;
    f.write_all(bytes).map_err(|e| payload_err(&tmp, e))?;
    f.sync_all().map_err(|e| payload_err(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| payload_err(path, e))
}

fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, PsError> {
    let f = fs::File::open(path).map_err(|e| payload_err(path, e))?;
    let mut out = Vec::new();
    f.take(max + 1)
        .read_to_end(&mut out)
        .map_err(|e| payload_err(path, e))?;
    if out.len() as u64 > max {
        return Err(payload_err(path, format!("larger than {max} bytes")));
    }
    Ok(out)
}

impl Payloads {
    /// The payload directory of a store file: `<store>.payloads/`, created if missing.
    pub fn beside(store: &Path) -> Result<Payloads, PsError> {
        let mut name = store.as_os_str().to_owned();
        name.push(".payloads");
        let dir = PathBuf::from(name);
        fsx::create_data_dir_all(&dir).map_err(|e| payload_err(&dir, e))?;
        fsx::restrict_dir(&dir).map_err(|e| payload_err(&dir, e))?;
        Ok(Payloads { dir })
    }

    fn path(&self, compostage: &str) -> Result<PathBuf, PsError> {
        if compostage.is_empty() || !compostage.bytes().all(|b| b.is_ascii_digit()) {
            return Err(payload_err(&self.dir, format!("bad key {compostage:?}")));
        }
        Ok(self.dir.join(format!("{compostage}.payload")))
    }

    /// Saves durably (the file, then the directory entry).
    pub fn save(&self, compostage: &str, meta: &PayloadMeta, bytes: &[u8]) -> Result<(), PsError> {
        let path = self.path(compostage)?;
        let mut out = serde_json::to_vec(meta).map_err(|e| payload_err(&path, e))?;
        out.push(b'\n');
        out.extend_from_slice(bytes);
        write_synced(&path, &out)?;
        if let Ok(d) = fs::File::open(&self.dir) {
            // Best effort: directory fsync is not supported everywhere.
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Reads back what [`save`](Self::save) wrote.
    pub fn load(&self, compostage: &str) -> Result<(PayloadMeta, Vec<u8>), PsError> {
        let path = self.path(compostage)?;
        let mut all = read_bounded(&path, MAX_META + MAX_LOT_FILE * 2)?;
        let nl = all
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| payload_err(&path, "no metadata line"))?;
        let meta: PayloadMeta =
            serde_json::from_slice(all.get(..nl).unwrap_or_default()).map_err(|e| payload_err(&path, e))?;
        let bytes = all.split_off(nl + 1);
        Ok((meta, bytes))
    }
}
