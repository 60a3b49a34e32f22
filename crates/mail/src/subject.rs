//! Subject lines of the OCT messages, and the compostage stamp.
//!
//! Two subjects are public (annex R5.3 and R6.2): the invoice file subject
//! `SVvvvvvv/exercice/compostage/nnnnn` and the text receipt subject
//! `ART/<PS number>/<aaaammjjhhmm>`. The others (DRE file, ARL, RSP, dLOI request, dLOI
//! increments) are **provisional** project choices, documented in `docs/formats/messages.md` and
//! kept in this module only (see [`ReturnKind`] and [`DloiRequestSubject`]).
//!
//! Parsing is strict: every field is checked (length, alphabet, real calendar date), and every
//! error names the field and the offending value, so an operator can find a faulty message from
//! its subject alone (R5.6).

use std::fmt;
use std::str::FromStr;

use svoct_formats::PaddedNumber;
use time::{Date, Month, PrimitiveDateTime, Time};

/// Longest subject accepted by the parser; real subjects are under 60 characters.
pub const MAX_SUBJECT_LEN: usize = 256;

/// Width of the zero-padded PS number in return subjects (`ART/000123456/...`).
///
/// **Provisional**: the annex says "right-aligned, left-padded with zeros" without a width; the
/// project pads to 9, the length of a PS identification number (8 digits and a key). Longer
/// numbers are written as they are.
pub const PS_NUMBER_WIDTH: usize = 9;

/// Longest sender / PS number: the B2 file header holds the sender number in 14 positions.
pub const MAX_NUMBER_LEN: usize = 14;

/// Largest invoice count the 5-digit `nnnnn` field can carry.
pub const MAX_INVOICE_COUNT: u32 = 99_999;

/// Largest compostage counter (5 digits).
pub const MAX_COMPOSTAGE_COUNTER: u32 = 99_999;

/// Why a subject or one of its fields was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    #[error("subject is empty")]
    Empty,
    #[error("subject is {len} bytes long, more than the {max} accepted")]
    TooLong { len: usize, max: usize },
    #[error("subject contains a control or non-ASCII character at byte {offset}")]
    BadCharacter { offset: usize },
    #[error("subject {subject:?}: unknown prefix (expected SVvvvvvv, DRvvvvvv, ART, ARL, RSP, LOI or DLOI)")]
    UnknownPrefix { subject: String },
    #[error("subject {subject:?}: {found} fields separated by '/', expected {expected}")]
    FieldCount {
        subject: String,
        expected: usize,
        found: usize,
    },
    #[error("subject field {field} (field {index}) {value:?}: {reason}")]
    Field {
        field: &'static str,
        index: usize,
        value: String,
        reason: String,
    },
}

/// Why a compostage was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompostageError {
    #[error("compostage must be 19 characters AAAAMMJJHHMMSSxxxxx, got {len}")]
    Length { len: usize },
    #[error("compostage character at offset {offset} is not a digit")]
    NotDigit { offset: usize },
    #[error("compostage date/time {value:?} is not a real calendar date and time: {reason}")]
    DateTime { value: String, reason: String },
    #[error("compostage year {year} does not fit in 4 digits")]
    Year { year: i32 },
    #[error("compostage counter {counter} exceeds 99999")]
    Counter { counter: u32 },
}

/// Truncates an input value so that error messages stay bounded.
fn shown(value: &str) -> String {
    const MAX: usize = 40;
    if value.len() <= MAX {
        value.to_owned()
    } else {
        let mut end = MAX;
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &value[..end])
    }
}

fn field_err(field: &'static str, index: usize, value: &str, reason: impl Into<String>) -> SubjectError {
    SubjectError::Field {
        field,
        index,
        value: shown(value),
        reason: reason.into(),
    }
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Parses a run of ASCII digits (already checked) into a number.
fn digits_value(s: &str) -> u32 {
    s.bytes().fold(0u32, |acc, b| {
        acc.saturating_mul(10)
            .saturating_add(u32::from(b.saturating_sub(b'0')))
    })
}

/// Parses `AAAAMMJJHHMM[SS]` (12 or 14 digits, checked by the caller) into a date-time.
fn parse_stamp(s: &str) -> Result<PrimitiveDateTime, String> {
    let num = |from: usize, to: usize| s.get(from..to).map(digits_value).ok_or("too short");
    let year = i32::try_from(num(0, 4)?).map_err(|_| "year out of range")?;
    let month = u8::try_from(num(4, 6)?).map_err(|_| "month out of range")?;
    let month = Month::try_from(month).map_err(|e| e.to_string())?;
    let day = u8::try_from(num(6, 8)?).map_err(|_| "day out of range")?;
    let hour = u8::try_from(num(8, 10)?).map_err(|_| "hour out of range")?;
    let minute = u8::try_from(num(10, 12)?).map_err(|_| "minute out of range")?;
    let second = if s.len() >= 14 {
        u8::try_from(num(12, 14)?).map_err(|_| "second out of range")?
    } else {
        0
    };
    let date = Date::from_calendar_date(year, month, day).map_err(|e| e.to_string())?;
    let time = Time::from_hms(hour, minute, second).map_err(|e| e.to_string())?;
    Ok(PrimitiveDateTime::new(date, time))
}

fn write_stamp(f: &mut fmt::Formatter<'_>, dt: &PrimitiveDateTime, seconds: bool) -> fmt::Result {
    write!(
        f,
        "{:04}{:02}{:02}{:02}{:02}",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute()
    )?;
    if seconds {
        write!(f, "{:02}", dt.second())?;
    }
    Ok(())
}

/// The compostage (R5.3): a 19-character stamp `AAAAMMJJHHMMSSxxxxx` (date and time to the
/// second, then a 5-digit counter) that makes every sent message unique; a retransmission of the
/// same file carries a new one.
///
/// The persistent allocator lives in the store; this type only guarantees the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Compostage {
    at: PrimitiveDateTime,
    counter: u32,
}

impl Compostage {
    /// Builds a compostage from a date-time (sub-second part dropped) and a counter `0..=99999`.
    pub fn new(at: PrimitiveDateTime, counter: u32) -> Result<Self, CompostageError> {
        if counter > MAX_COMPOSTAGE_COUNTER {
            return Err(CompostageError::Counter { counter });
        }
        if !(0..=9999).contains(&at.year()) {
            return Err(CompostageError::Year { year: at.year() });
        }
        let at = at.replace_nanosecond(0).unwrap_or(at);
        Ok(Self { at, counter })
    }

    /// The date and time part.
    pub fn datetime(&self) -> PrimitiveDateTime {
        self.at
    }

    /// The 5-digit counter part.
    pub fn counter(&self) -> u32 {
        self.counter
    }
}

impl fmt::Display for Compostage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_stamp(f, &self.at, true)?;
        write!(f, "{:05}", self.counter)
    }
}

impl FromStr for Compostage {
    type Err = CompostageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 19 {
            return Err(CompostageError::Length { len: s.len() });
        }
        if let Some(offset) = s.bytes().position(|b| !b.is_ascii_digit()) {
            return Err(CompostageError::NotDigit { offset });
        }
        let (stamp, counter) = s.split_at(14);
        let at = parse_stamp(stamp).map_err(|reason| CompostageError::DateTime {
            value: stamp.to_owned(),
            reason,
        })?;
        Compostage::new(at, digits_value(counter))
    }
}

impl serde::Serialize for Compostage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A date-time to the minute, `aaaammjjhhmm` (ART and other return subjects, R6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MinuteStamp(PrimitiveDateTime);

impl MinuteStamp {
    /// Truncates `at` to the minute. Years outside `0..=9999` are refused (4-digit field).
    pub fn new(at: PrimitiveDateTime) -> Option<Self> {
        if !(0..=9999).contains(&at.year()) {
            return None;
        }
        let t = Time::from_hms(at.hour(), at.minute(), 0).ok()?;
        Some(Self(PrimitiveDateTime::new(at.date(), t)))
    }

    /// The date-time (seconds are zero).
    pub fn datetime(&self) -> PrimitiveDateTime {
        self.0
    }
}

impl fmt::Display for MinuteStamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_stamp(f, &self.0, false)
    }
}

/// Which family an invoice file subject belongs to: the prefix letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum FileKind {
    /// `SV`: FSE file, or the mixed FSE/DRE single file of R3.2 (public, R5.3).
    Fse,
    /// `DR`: DRE-only file (**provisional**: the direct-mode DRE prefix seen in public API data).
    Dre,
}

impl FileKind {
    /// The two prefix letters.
    pub fn letters(self) -> &'static str {
        match self {
            FileKind::Fse => "SV",
            FileKind::Dre => "DR",
        }
    }
}

/// A specification version: 6 digits (`140700` for SESAM-Vitale 1.40 addendum 7), as returned by
/// lot formatting.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpecVersion(String);

impl SpecVersion {
    /// The version of SESAM-Vitale 1.40 addendum 7.
    pub fn v140700() -> Self {
        Self("140700".to_owned())
    }

    /// Checks the 6-digit form.
    pub fn new(value: &str) -> Result<Self, SubjectError> {
        if value.len() == 6 && all_digits(value) {
            Ok(Self(value.to_owned()))
        } else {
            Err(field_err("version", 1, value, "must be 6 digits (e.g. 140700)"))
        }
    }

    /// The 6 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A sender or PS number as it appears in subjects: 1 to 14 ASCII letters or digits.
///
/// The subject's `exercice` is the invoice file's sender number (R5.3); return subjects carry the
/// PS number, left-padded with zeros to [`PS_NUMBER_WIDTH`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartyNumber(String);

impl PartyNumber {
    /// Checks the alphabet and length. Surrounding spaces (B2 fields are space-filled) are
    /// removed first.
    pub fn new(value: &str) -> Result<Self, SubjectError> {
        Self::checked(value.trim_matches(' '), "number", 0)
    }

    fn checked(value: &str, field: &'static str, index: usize) -> Result<Self, SubjectError> {
        if value.is_empty() || value.len() > MAX_NUMBER_LEN {
            return Err(field_err(field, index, value, "must be 1 to 14 characters"));
        }
        if !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(field_err(
                field,
                index,
                value,
                "must hold only ASCII letters and digits",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The number as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number without leading zeros ("0" for zero), used to compare a padded subject field
    /// with a file's sender number.
    pub fn significant(&self) -> &str {
        // The field is digits only: its significant part is its last `digits` characters.
        let digits = PaddedNumber::new(&self.0).significant().len().max(1);
        self.0.get(self.0.len().saturating_sub(digits)..).unwrap_or("0")
    }

    /// Whether two numbers are the same once leading zeros are ignored.
    pub fn same_as(&self, other: &PartyNumber) -> bool {
        PaddedNumber::new(&self.0) == PaddedNumber::new(&other.0)
    }
}

impl fmt::Display for PartyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The invoice file subject `SVvvvvvv/exercice/compostage/nnnnn` (R5.3), also used with the `DR`
/// prefix for DRE-only files (provisional).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceSubject {
    pub kind: FileKind,
    pub version: SpecVersion,
    /// `exercice`: the invoice file's sender number.
    pub exercice: PartyNumber,
    pub compostage: Compostage,
    /// `nnnnn`: the number of invoices in the file, at most 99999.
    pub invoice_count: u32,
}

/// The return messages whose subject is `KIND/<PS number>/<aaaammjjhhmm>`.
///
/// `ART` is public (R6.2); `ARL`, `RSP` and `LOI` (dLOI increments) reuse the same shape
/// (**provisional**).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum ReturnKind {
    Art,
    Arl,
    Rsp,
    LoiIncrement,
}

impl ReturnKind {
    /// The subject's first field.
    pub fn keyword(self) -> &'static str {
        match self {
            ReturnKind::Art => "ART",
            ReturnKind::Arl => "ARL",
            ReturnKind::Rsp => "RSP",
            ReturnKind::LoiIncrement => "LOI",
        }
    }

    fn from_keyword(s: &str) -> Option<Self> {
        Some(match s {
            "ART" => ReturnKind::Art,
            "ARL" => ReturnKind::Arl,
            "RSP" => ReturnKind::Rsp,
            "LOI" => ReturnKind::LoiIncrement,
            _ => return None,
        })
    }
}

/// A return subject `KIND/<PS number, zero-padded>/<aaaammjjhhmm>` (R6.2 for `ART`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnSubject {
    pub kind: ReturnKind,
    pub ps_number: PartyNumber,
    pub timestamp: MinuteStamp,
}

/// The dLOI request subject `DLOI/<exercice>/<compostage>` (**provisional**): the PS's sender
/// number and a fresh compostage, like an invoice message, so the request is traceable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DloiRequestSubject {
    pub exercice: PartyNumber,
    pub compostage: Compostage,
}

/// Any subject the project emits or accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Invoice(InvoiceSubject),
    Return(ReturnSubject),
    DloiRequest(DloiRequestSubject),
}

impl fmt::Display for InvoiceSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}/{}/{}/{:05}",
            self.kind.letters(),
            self.version.as_str(),
            self.exercice,
            self.compostage,
            self.invoice_count
        )
    }
}

impl fmt::Display for ReturnSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{:0>width$}/{}",
            self.kind.keyword(),
            self.ps_number.as_str(),
            self.timestamp,
            width = PS_NUMBER_WIDTH
        )
    }
}

impl fmt::Display for DloiRequestSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DLOI/{}/{}", self.exercice, self.compostage)
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Invoice(s) => s.fmt(f),
            Subject::Return(s) => s.fmt(f),
            Subject::DloiRequest(s) => s.fmt(f),
        }
    }
}

impl InvoiceSubject {
    /// Builds a subject, checking the count fits the 5-digit field.
    pub fn new(
        kind: FileKind,
        version: SpecVersion,
        exercice: PartyNumber,
        compostage: Compostage,
        invoice_count: u32,
    ) -> Result<Self, SubjectError> {
        if invoice_count > MAX_INVOICE_COUNT {
            return Err(field_err(
                "invoice_count",
                4,
                &invoice_count.to_string(),
                "more than 99999 invoices",
            ));
        }
        Ok(Self {
            kind,
            version,
            exercice,
            compostage,
            invoice_count,
        })
    }
}

fn split_fields(s: &str, expected: usize) -> Result<Vec<&str>, SubjectError> {
    let fields: Vec<&str> = s.splitn(expected + 1, '/').collect();
    if fields.len() != expected {
        let found = s.split('/').count();
        return Err(SubjectError::FieldCount {
            subject: shown(s),
            expected,
            found,
        });
    }
    Ok(fields)
}

fn field<'a>(fields: &[&'a str], i: usize) -> &'a str {
    fields.get(i).copied().unwrap_or("")
}

fn parse_compostage(value: &str, index: usize) -> Result<Compostage, SubjectError> {
    value
        .parse::<Compostage>()
        .map_err(|e| field_err("compostage", index, value, e.to_string()))
}

impl FromStr for Subject {
    type Err = SubjectError;

    /// Strict parsing: exact field count, exact widths, real dates.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(SubjectError::Empty);
        }
        if s.len() > MAX_SUBJECT_LEN {
            return Err(SubjectError::TooLong {
                len: s.len(),
                max: MAX_SUBJECT_LEN,
            });
        }
        if let Some(offset) = s.bytes().position(|b| !(0x20..0x7f).contains(&b)) {
            return Err(SubjectError::BadCharacter { offset });
        }
        let first = s.split('/').next().unwrap_or("");
        let kind = match first.get(..2) {
            Some("SV") => Some(FileKind::Fse),
            Some("DR") => Some(FileKind::Dre),
            _ => None,
        };
        if let Some(kind) = kind {
            let f = split_fields(s, 4)?;
            let version = SpecVersion::new(first.get(2..).unwrap_or(""))?;
            let exercice = PartyNumber::checked(field(&f, 1), "exercice", 2)?;
            let compostage = parse_compostage(field(&f, 2), 3)?;
            let count = field(&f, 3);
            if count.len() != 5 || !all_digits(count) {
                return Err(field_err(
                    "invoice_count",
                    4,
                    count,
                    "must be 5 digits, zero-padded",
                ));
            }
            return InvoiceSubject::new(kind, version, exercice, compostage, digits_value(count))
                .map(Subject::Invoice);
        }
        if first == "DLOI" {
            let f = split_fields(s, 3)?;
            let exercice = PartyNumber::checked(field(&f, 1), "exercice", 2)?;
            let compostage = parse_compostage(field(&f, 2), 3)?;
            return Ok(Subject::DloiRequest(DloiRequestSubject { exercice, compostage }));
        }
        if let Some(kind) = ReturnKind::from_keyword(first) {
            let f = split_fields(s, 3)?;
            let number = field(&f, 1);
            if !all_digits(number) && !number.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(field_err(
                    "ps_number",
                    2,
                    number,
                    "must hold only ASCII letters and digits",
                ));
            }
            let ps_number = PartyNumber::checked(number, "ps_number", 2)?;
            let stamp = field(&f, 2);
            if stamp.len() != 12 || !all_digits(stamp) {
                return Err(field_err("timestamp", 3, stamp, "must be 12 digits aaaammjjhhmm"));
            }
            let at = parse_stamp(stamp).map_err(|r| field_err("timestamp", 3, stamp, r))?;
            let timestamp =
                MinuteStamp::new(at).ok_or_else(|| field_err("timestamp", 3, stamp, "year out of range"))?;
            return Ok(Subject::Return(ReturnSubject {
                kind,
                ps_number,
                timestamp,
            }));
        }
        Err(SubjectError::UnknownPrefix { subject: shown(s) })
    }
}

/// The subject's fields, for reports and JSON output.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SubjectFields {
    /// The subject as written.
    pub text: String,
    /// `invoice`, `return` or `dloi_request`.
    pub shape: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exercice: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compostage: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invoice_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ps_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

impl Subject {
    /// The fields, named, for reports.
    pub fn fields(&self) -> SubjectFields {
        let mut out = SubjectFields {
            text: self.to_string(),
            shape: "",
            prefix: None,
            version: None,
            exercice: None,
            compostage: None,
            invoice_count: None,
            ps_number: None,
            timestamp: None,
        };
        match self {
            Subject::Invoice(s) => {
                out.shape = "invoice";
                out.prefix = Some(s.kind.letters().to_owned());
                out.version = Some(s.version.as_str().to_owned());
                out.exercice = Some(s.exercice.to_string());
                out.compostage = Some(s.compostage.to_string());
                out.invoice_count = Some(s.invoice_count);
            }
            Subject::Return(s) => {
                out.shape = "return";
                out.prefix = Some(s.kind.keyword().to_owned());
                out.ps_number = Some(s.ps_number.to_string());
                out.timestamp = Some(s.timestamp.to_string());
            }
            Subject::DloiRequest(s) => {
                out.shape = "dloi_request";
                out.prefix = Some("DLOI".to_owned());
                out.exercice = Some(s.exercice.to_string());
                out.compostage = Some(s.compostage.to_string());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn compostage_formats_hand_computed() {
        let c = Compostage::new(datetime!(2026-11-26 07:05:09), 42).unwrap();
        assert_eq!(c.to_string(), "2026112607050900042");
        assert_eq!("2026112607050900042".parse::<Compostage>().unwrap(), c);
    }

    #[test]
    fn compostage_rejects() {
        assert_eq!(
            "202611260705090004".parse::<Compostage>(),
            Err(CompostageError::Length { len: 18 })
        );
        assert_eq!(
            "20261126070509000a2".parse::<Compostage>(),
            Err(CompostageError::NotDigit { offset: 17 })
        );
        // 30 February, 25 o'clock, 61 seconds.
        assert!(matches!(
            "2026023007050900042".parse::<Compostage>(),
            Err(CompostageError::DateTime { .. })
        ));
        assert!(matches!(
            "2026112625050900042".parse::<Compostage>(),
            Err(CompostageError::DateTime { .. })
        ));
        assert!(matches!(
            "2026112607056100042".parse::<Compostage>(),
            Err(CompostageError::DateTime { .. })
        ));
        assert_eq!(
            Compostage::new(datetime!(2026-11-26 07:05:09), 100_000),
            Err(CompostageError::Counter { counter: 100_000 })
        );
        // 29 February exists in 2028 only.
        assert!("2028022900000000000".parse::<Compostage>().is_ok());
        assert!("2027022900000000000".parse::<Compostage>().is_err());
    }

    #[test]
    fn invoice_subject_round_trip() {
        let text = "SV140700/123456789/2026112607050900042/00025";
        let s: Subject = text.parse().unwrap();
        let Subject::Invoice(inv) = &s else {
            panic!("{s:?}")
        };
        assert_eq!(inv.kind, FileKind::Fse);
        assert_eq!(inv.version.as_str(), "140700");
        assert_eq!(inv.exercice.as_str(), "123456789");
        assert_eq!(inv.invoice_count, 25);
        assert_eq!(inv.compostage.counter(), 42);
        assert_eq!(s.to_string(), text);
        let d: Subject = "DR140700/123456789/2026112607050900042/00001".parse().unwrap();
        assert!(matches!(
            d,
            Subject::Invoice(InvoiceSubject {
                kind: FileKind::Dre,
                ..
            })
        ));
    }

    #[test]
    fn invoice_subject_rejects() {
        let bad = [
            ("SV14070/1/2026112607050900042/00025", "version"),
            ("SV140700//2026112607050900042/00025", "exercice"),
            ("SV140700/12-4/2026112607050900042/00025", "exercice"),
            ("SV140700/1/202611260705090004/00025", "compostage"),
            ("SV140700/1/2026112607050900042/0025", "invoice_count"),
            ("SV140700/1/2026112607050900042/000025", "invoice_count"),
            ("SV140700/1/2026112607050900042/0002a", "invoice_count"),
        ];
        for (text, which) in bad {
            match text.parse::<Subject>() {
                Err(SubjectError::Field { field, .. }) => assert_eq!(field, which, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(matches!(
            "SV140700/1/2026112607050900042".parse::<Subject>(),
            Err(SubjectError::FieldCount {
                expected: 4,
                found: 3,
                ..
            })
        ));
        assert!(matches!(
            "SV140700/1/2026112607050900042/00001/x".parse::<Subject>(),
            Err(SubjectError::FieldCount {
                expected: 4,
                found: 5,
                ..
            })
        ));
        assert!(matches!(
            "XX/1/2".parse::<Subject>(),
            Err(SubjectError::UnknownPrefix { .. })
        ));
        assert!(matches!(
            "SV140700/1/2026112607050900042/0001\r\n".parse::<Subject>(),
            Err(SubjectError::BadCharacter { offset: 35 })
        ));
    }

    #[test]
    fn return_subject_pads_and_parses() {
        let s = Subject::Return(ReturnSubject {
            kind: ReturnKind::Art,
            ps_number: PartyNumber::new("12345").unwrap(),
            timestamp: MinuteStamp::new(datetime!(2026-11-26 07:05:59)).unwrap(),
        });
        assert_eq!(s.to_string(), "ART/000012345/202611260705");
        let back: Subject = "ART/000012345/202611260705".parse().unwrap();
        let Subject::Return(r) = back else { panic!() };
        assert_eq!(r.ps_number.significant(), "12345");
        assert!(r.ps_number.same_as(&PartyNumber::new("12345").unwrap()));
        assert!(!r.ps_number.same_as(&PartyNumber::new("123450").unwrap()));
        let zero = PartyNumber::new("000").unwrap();
        assert_eq!(zero.significant(), "0");
        assert!(zero.same_as(&PartyNumber::new("0").unwrap()));
        assert!("ART/000012345/202611263705".parse::<Subject>().is_err());
        assert!("ART/000012345/20261126070".parse::<Subject>().is_err());
        assert!("RSP/1/202611260705".parse::<Subject>().is_ok());
        let d: Subject = "DLOI/123456789/2026112607050900042".parse().unwrap();
        assert_eq!(d.to_string(), "DLOI/123456789/2026112607050900042");
    }
}
