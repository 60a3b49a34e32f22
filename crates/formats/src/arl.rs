//! ARL (*Accusé de Réception Logique*): the per-lot acknowledgement from AM. **Provisional**
//! format (`docs/formats/arl.md`): the official layout is not public, so the project defines a
//! small fixed-record text file, read and written only through [`Arl`], so that the official
//! format can replace it without touching callers.
//!
//! A file is one 128-byte `ARL` record followed by one 128-byte `MOT` record per reason; each
//! record ends with CRLF (LF alone, or nothing, is accepted on input).

use serde::Serialize;

use crate::layout::{Field, FieldError, Layout, Req, parse_digits};
use crate::noemie::Ymd;

use Req::{Mandatory as M, Optional as O};

/// Record length, without the line end.
pub const RECORD_LEN: usize = 128;
/// Most reasons in one ARL (the count field has 3 digits).
pub const MAX_REASONS: usize = 999;

/// The `ARL` header record (provisional).
pub const ARL_RECORD: Layout = Layout {
    code: "ARL",
    title: "Accusé de réception logique (provisoire)",
    len: RECORD_LEN,
    fields: &[
        Field::text("type", "Type d'enregistrement", 1, 3, M).fixed("ARL"),
        Field::digits("version", "Version du format", 4, 5, M).fixed("01"),
        Field::text("sender_type", "Type d'émetteur (organisme AM)", 6, 7, M),
        Field::digits("sender_number", "Numéro d'émetteur", 8, 21, M),
        Field::text("ps_number", "Numéro du PS émetteur du lot", 22, 35, M),
        Field::text(
            "file_id",
            "Identification du fichier qui portait le lot",
            36,
            41,
            O,
        ),
        Field::digits("lot_number", "Numéro de lot", 42, 44, M),
        Field::digits("lot_date", "Date de constitution du lot (AAMMJJ)", 45, 50, M),
        Field::digits("issued", "Date et heure de l'ARL (AAAAMMJJhhmm)", 51, 62, M),
        Field::text("status", "Statut: P positif, N négatif", 63, 63, M),
        Field::digits("invoice_count", "Nombre de factures du lot", 64, 67, O),
        Field::digits("reason_count", "Nombre de motifs", 68, 70, M),
        Field::text("lot_kind", "Type de lot: FSE, DRE", 71, 73, O),
        Field::text("filler", "Blanc", 74, 128, O),
    ],
};

/// The `MOT` reason record (provisional).
pub const MOT_RECORD: Layout = Layout {
    code: "MOT",
    title: "Motif (provisoire)",
    len: RECORD_LEN,
    fields: &[
        Field::text("type", "Type d'enregistrement", 1, 3, M).fixed("MOT"),
        Field::digits("sequence", "Numéro d'ordre du motif", 4, 6, M),
        Field::text("code", "Code motif", 7, 10, M),
        Field::text("label", "Libellé du motif", 11, 128, M),
    ],
};

/// Positive (the lot is conform; it does not mean the invoices will be paid) or negative (the
/// lot must be sent again).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ArlStatus {
    Positive,
    Negative,
}

/// A reason (reject or signalement) attached to an ARL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ArlReason {
    /// Up to 4 characters.
    pub code: String,
    /// Up to 118 characters.
    pub label: String,
}

/// Date and minute an ARL was issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Stamp {
    pub date: Ymd,
    pub hour: u8,
    pub minute: u8,
}

/// One ARL: who acknowledges which lot, and how.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Arl {
    /// AM organisation type (`CP`, `CT`...).
    pub sender_type: String,
    /// AM organisation number (up to 14 digits).
    pub sender_number: String,
    /// The PS that built and sent the lot (up to 14 characters).
    pub ps_number: String,
    /// Identification of the file that carried the lot (up to 6 characters, may be empty).
    pub file_id: String,
    /// Lot number, 0..=999.
    pub lot_number: u16,
    /// Lot creation date.
    pub lot_date: Ymd,
    pub issued: Stamp,
    pub status: ArlStatus,
    /// Number of invoices in the lot, if given (0..=9999).
    pub invoice_count: Option<u16>,
    /// `FSE`, `DRE` or empty.
    pub lot_kind: String,
    pub reasons: Vec<ArlReason>,
}

/// Why bytes are not an ARL, or an ARL cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArlError {
    #[error("empty ARL")]
    Empty,
    #[error("record {record} at offset {offset}: {len} bytes, expected {RECORD_LEN}")]
    Truncated {
        record: usize,
        offset: usize,
        len: usize,
    },
    #[error("record {record} at offset {offset}: expected a {expected} record, found {found:?}")]
    UnexpectedRecord {
        record: usize,
        offset: usize,
        expected: &'static str,
        found: String,
    },
    #[error("record {record} at offset {offset}: {source}")]
    Field {
        record: usize,
        offset: usize,
        #[source]
        source: FieldError,
    },
    #[error("record {record} at offset {offset}: field {field}: {problem}")]
    Value {
        record: usize,
        offset: usize,
        field: &'static str,
        problem: &'static str,
    },
    #[error("the ARL announces {stated} reasons, {found} follow")]
    ReasonCount { stated: usize, found: usize },
    #[error("a negative ARL must give at least one reason")]
    NegativeWithoutReason,
    #[error("more than {MAX_REASONS} reasons")]
    TooManyReasons,
}

fn field(l: &Layout, name: &str) -> &'static Field {
    // Every name used below exists in the tables above (checked by `tables_are_consistent`).
    match l.field(name) {
        Some(f) => f,
        None => &ARL_RECORD.fields[0],
    }
}

fn text(l: &Layout, rec: &[u8], name: &str) -> String {
    field(l, name).str(rec).unwrap_or("").to_string()
}

fn valid_date(y: u16, m: u8, d: u8) -> bool {
    Ymd::new(y, m, d).is_valid()
}

/// Split the input into records of 128 bytes, each optionally followed by CRLF or LF.
fn records(input: &[u8]) -> Result<Vec<(usize, &[u8])>, ArlError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < input.len() {
        let rest = input.get(pos..).unwrap_or(&[]);
        if rest.iter().all(|b| matches!(b, b'\r' | b'\n' | b' ' | 0)) {
            break;
        }
        if out.len() > MAX_REASONS {
            return Err(ArlError::TooManyReasons);
        }
        let rec = input.get(pos..pos + RECORD_LEN).ok_or(ArlError::Truncated {
            record: out.len(),
            offset: pos,
            len: rest.len(),
        })?;
        if let Some(i) = rec.iter().position(|&b| b == b'\r' || b == b'\n') {
            return Err(ArlError::Truncated {
                record: out.len(),
                offset: pos,
                len: i,
            });
        }
        out.push((pos, rec));
        pos += RECORD_LEN;
        if input.get(pos) == Some(&b'\r') {
            pos += 1;
        }
        if input.get(pos) == Some(&b'\n') {
            pos += 1;
        }
    }
    Ok(out)
}

fn check(l: &Layout, record: usize, offset: usize, rec: &[u8]) -> Result<(), ArlError> {
    match l.check(rec).into_iter().next() {
        Some(source) => Err(ArlError::Field {
            record,
            offset: offset + usize::from(source.from) - 1,
            source,
        }),
        None => Ok(()),
    }
}

impl Arl {
    /// Parse an ARL file.
    pub fn parse(input: &[u8]) -> Result<Arl, ArlError> {
        let recs = records(input)?;
        let (&(off, head), reasons) = recs.split_first().ok_or(ArlError::Empty)?;
        let mut arl = parse_head(off, head)?;
        let h = &ARL_RECORD;
        let stated = field(h, "reason_count").number(head).unwrap_or(0) as usize;
        if stated != reasons.len() {
            return Err(ArlError::ReasonCount {
                stated,
                found: reasons.len(),
            });
        }
        arl.reasons = Vec::with_capacity(reasons.len());
        for (i, &(roff, rec)) in reasons.iter().enumerate() {
            arl.reasons.push(parse_reason(i + 1, roff, rec)?);
        }
        if arl.status == ArlStatus::Negative && arl.reasons.is_empty() {
            return Err(ArlError::NegativeWithoutReason);
        }
        Ok(arl)
    }

    /// Write the ARL file (records ended by CRLF).
    pub fn build(&self) -> Result<Vec<u8>, ArlError> {
        if self.reasons.len() > MAX_REASONS {
            return Err(ArlError::TooManyReasons);
        }
        if self.status == ArlStatus::Negative && self.reasons.is_empty() {
            return Err(ArlError::NegativeWithoutReason);
        }
        let rec = self.head_record()?;
        let mut out = Vec::with_capacity((self.reasons.len() + 1) * (RECORD_LEN + 2));
        out.extend_from_slice(&rec);
        out.extend_from_slice(b"\r\n");
        for (n, r) in self.reasons.iter().enumerate() {
            out.extend_from_slice(&reason_record(n + 1, r)?);
            out.extend_from_slice(b"\r\n");
        }
        // What we write must read back: refuse values the reader would refuse (e.g. a text
        // field with trailing spaces would not round-trip, a blank mandatory field).
        Arl::parse(&out)?;
        Ok(out)
    }

    /// The `ARL` record; the reasons are only counted.
    fn head_record(&self) -> Result<Vec<u8>, ArlError> {
        let h = &ARL_RECORD;
        let mut rec = h.blank();
        let put = |rec: &mut Vec<u8>, name: &str, v: &str| {
            field(h, name).put(rec, v).map_err(|source| ArlError::Field {
                record: 0,
                offset: usize::from(source.from) - 1,
                source,
            })
        };
        let d = self.lot_date;
        let i = self.issued;
        if !valid_date(d.year, d.month, d.day) || !(2000..=2099).contains(&d.year) {
            return Err(ArlError::Value {
                record: 0,
                offset: 44,
                field: "lot_date",
                problem: "not a valid date of years 2000-2099",
            });
        }
        if !valid_date(i.date.year, i.date.month, i.date.day) || i.hour > 23 || i.minute > 59 {
            return Err(ArlError::Value {
                record: 0,
                offset: 50,
                field: "issued",
                problem: "not a valid time",
            });
        }
        put(&mut rec, "sender_type", &self.sender_type)?;
        put(&mut rec, "sender_number", &self.sender_number)?;
        put(&mut rec, "ps_number", &self.ps_number)?;
        put(&mut rec, "file_id", &self.file_id)?;
        put(&mut rec, "lot_number", &format!("{:03}", self.lot_number))?;
        put(&mut rec, "lot_date", &d.yymmdd())?;
        put(
            &mut rec,
            "issued",
            &format!(
                "{:04}{:02}{:02}{:02}{:02}",
                i.date.year, i.date.month, i.date.day, i.hour, i.minute
            ),
        )?;
        put(
            &mut rec,
            "status",
            match self.status {
                ArlStatus::Positive => "P",
                ArlStatus::Negative => "N",
            },
        )?;
        match self.invoice_count {
            Some(n) => put(&mut rec, "invoice_count", &n.to_string())?,
            // Blank (not zeros) so that "not given" and 0 stay distinct.
            None => {
                if let Some(r) = rec.get_mut(field(h, "invoice_count").range()) {
                    r.fill(b' ');
                }
            }
        }
        put(&mut rec, "reason_count", &self.reasons.len().to_string())?;
        put(&mut rec, "lot_kind", &self.lot_kind)?;
        Ok(rec)
    }
}

/// Reads the `ARL` record at `off` (every field but the reasons, left empty).
fn parse_head(off: usize, head: &[u8]) -> Result<Arl, ArlError> {
    if !head.starts_with(b"ARL") {
        return Err(ArlError::UnexpectedRecord {
            record: 0,
            offset: off,
            expected: "ARL",
            found: String::from_utf8_lossy(head.get(..3).unwrap_or(head)).into_owned(),
        });
    }
    check(&ARL_RECORD, 0, off, head)?;
    let h = &ARL_RECORD;
    let value = |name: &'static str, problem: &'static str| ArlError::Value {
        record: 0,
        offset: off + usize::from(field(h, name).from) - 1,
        field: name,
        problem,
    };
    let num = |name: &str| field(h, name).number(head).unwrap_or(0);
    let status = match text(h, head, "status").as_str() {
        "P" => ArlStatus::Positive,
        "N" => ArlStatus::Negative,
        _ => return Err(value("status", "expected P or N")),
    };
    let ld = num("lot_date");
    let lot_date = Ymd::new(
        2000 + (ld / 10000) as u16,
        (ld / 100 % 100) as u8,
        (ld % 100) as u8,
    );
    if !valid_date(lot_date.year, lot_date.month, lot_date.day) {
        return Err(value("lot_date", "not a valid AAMMJJ date"));
    }
    let is = num("issued");
    let issued = Stamp {
        date: Ymd::new(
            (is / 100_000_000) as u16,
            (is / 1_000_000 % 100) as u8,
            (is / 10_000 % 100) as u8,
        ),
        hour: (is / 100 % 100) as u8,
        minute: (is % 100) as u8,
    };
    if !valid_date(issued.date.year, issued.date.month, issued.date.day)
        || issued.hour > 23
        || issued.minute > 59
    {
        return Err(value("issued", "not a valid AAAAMMJJhhmm time"));
    }
    let invoice_raw = field(h, "invoice_count").raw(head).unwrap_or(b"");
    let invoice_count = if invoice_raw.iter().all(|&b| b == b' ') {
        None
    } else {
        parse_digits(invoice_raw).map(|v| v as u16)
    };
    Ok(Arl {
        sender_type: text(h, head, "sender_type"),
        sender_number: text(h, head, "sender_number"),
        ps_number: text(h, head, "ps_number"),
        file_id: text(h, head, "file_id"),
        lot_number: num("lot_number") as u16,
        lot_date,
        issued,
        status,
        invoice_count,
        lot_kind: text(h, head, "lot_kind"),
        reasons: Vec::new(),
    })
}

/// Reads `MOT` record number `record` (1-based), at `offset`.
fn parse_reason(record: usize, offset: usize, rec: &[u8]) -> Result<ArlReason, ArlError> {
    if !rec.starts_with(b"MOT") {
        return Err(ArlError::UnexpectedRecord {
            record,
            offset,
            expected: "MOT",
            found: String::from_utf8_lossy(rec.get(..3).unwrap_or(rec)).into_owned(),
        });
    }
    check(&MOT_RECORD, record, offset, rec)?;
    if field(&MOT_RECORD, "sequence").number(rec).ok() != Some(record as u64) {
        return Err(ArlError::Value {
            record,
            offset: offset + 3,
            field: "sequence",
            problem: "reasons must be numbered 1, 2, 3... in order",
        });
    }
    Ok(ArlReason {
        code: text(&MOT_RECORD, rec, "code"),
        label: text(&MOT_RECORD, rec, "label"),
    })
}

/// The `MOT` record of reason number `record` (1-based).
fn reason_record(record: usize, r: &ArlReason) -> Result<Vec<u8>, ArlError> {
    let m = &MOT_RECORD;
    let mut rec = m.blank();
    let put = |rec: &mut Vec<u8>, name: &str, v: &str| {
        field(m, name).put(rec, v).map_err(|source| ArlError::Field {
            record,
            offset: record * (RECORD_LEN + 2) + usize::from(source.from) - 1,
            source,
        })
    };
    put(&mut rec, "sequence", &record.to_string())?;
    put(&mut rec, "code", &r.code)?;
    put(&mut rec, "label", &r.label)?;
    for (name, v) in [("code", &r.code), ("label", &r.label)] {
        if v.trim().is_empty() {
            return Err(ArlError::Value {
                record,
                offset: record * (RECORD_LEN + 2),
                field: name,
                problem: "mandatory but blank",
            });
        }
    }
    Ok(rec)
}

/// Fuzz entry point: parse arbitrary bytes, rebuild what parses; must never panic.
pub fn fuzz_arl(data: &[u8]) {
    if let Ok(a) = Arl::parse(data) {
        let _ = a.build();
        let _ = serde_json::to_string(&a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_consistent() {
        for l in [&ARL_RECORD, &MOT_RECORD] {
            l.self_check().unwrap();
            assert_eq!(l.fields.iter().map(|f| f.len()).sum::<usize>(), RECORD_LEN);
        }
        for n in [
            "sender_type",
            "sender_number",
            "ps_number",
            "file_id",
            "lot_number",
            "lot_date",
            "issued",
            "status",
            "invoice_count",
            "reason_count",
            "lot_kind",
        ] {
            assert!(ARL_RECORD.field(n).is_some(), "{n}");
        }
        for n in ["sequence", "code", "label"] {
            assert!(MOT_RECORD.field(n).is_some(), "{n}");
        }
    }
}
