//! Positional record layouts as data.
//!
//! The B2 records and the NOEMIE entities are fixed-position text records. Instead of hand-written
//! slice offsets, each record type is described once as a [`Layout`]: a table of [`Field`]s with
//! 1-based inclusive positions copied from the published layouts (`shared/spec/*.md`). Readers,
//! writers, validators and the inspector all go through these tables.

use std::fmt;
use std::ops::Range;

/// How a field is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `9`: ASCII digits, right-aligned, zero-filled.
    Digits,
    /// `X`: text, left-aligned, space-filled.
    Text,
}

/// Whether a field must carry a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Req {
    /// `M`: mandatory.
    Mandatory,
    /// `o`: optional (zeros for digits, spaces for text when absent).
    Optional,
}

/// One field of a record layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// Stable machine name (snake case, English), used in JSON and error messages.
    pub name: &'static str,
    /// The French label of the published layout.
    pub label: &'static str,
    /// First position, 1-based inclusive.
    pub from: u16,
    /// Last position, 1-based inclusive.
    pub to: u16,
    pub kind: Kind,
    pub req: Req,
    /// A value the field always holds (e.g. the record type), if any.
    pub fixed: Option<&'static str>,
}

impl Field {
    /// A digits field.
    pub const fn digits(name: &'static str, label: &'static str, from: u16, to: u16, req: Req) -> Field {
        Field {
            name,
            label,
            from,
            to,
            kind: Kind::Digits,
            req,
            fixed: None,
        }
    }

    /// A text field.
    pub const fn text(name: &'static str, label: &'static str, from: u16, to: u16, req: Req) -> Field {
        Field {
            name,
            label,
            from,
            to,
            kind: Kind::Text,
            req,
            fixed: None,
        }
    }

    /// The same field, constrained to always hold `value`.
    pub const fn fixed(self, value: &'static str) -> Field {
        Field {
            fixed: Some(value),
            ..self
        }
    }

    /// Width in bytes.
    pub const fn len(&self) -> usize {
        (self.to - self.from + 1) as usize
    }

    /// Never true for a well-formed table; present for API symmetry with `len`.
    pub const fn is_empty(&self) -> bool {
        self.to < self.from
    }

    /// 0-based byte range inside the record.
    pub const fn range(&self) -> Range<usize> {
        (self.from as usize - 1)..(self.to as usize)
    }

    /// The raw bytes of this field, or `None` if the record is too short to hold it.
    pub fn raw<'a>(&self, record: &'a [u8]) -> Option<&'a [u8]> {
        record.get(self.range())
    }

    /// The field as text with trailing spaces removed (and leading spaces for digits).
    /// Returns `None` if the record is too short or the bytes are not ASCII.
    pub fn str<'a>(&self, record: &'a [u8]) -> Option<&'a str> {
        let raw = self.raw(record)?;
        if !raw.is_ascii() {
            return None;
        }
        let s = std::str::from_utf8(raw).ok()?;
        Some(match self.kind {
            Kind::Digits => s.trim(),
            Kind::Text => s.trim_end(),
        })
    }

    /// The field as an unsigned number. Blank optional fields read as 0.
    pub fn number(&self, record: &[u8]) -> Result<u64, FieldError> {
        let raw = self
            .raw(record)
            .ok_or(FieldError::new(self, FieldProblem::Truncated))?;
        parse_digits(raw)
            .ok_or_else(|| {
                if raw.iter().all(|&b| b == b' ') && self.req == Req::Optional {
                    FieldError::new(self, FieldProblem::Blank)
                } else {
                    FieldError::new(self, FieldProblem::NotDigits)
                }
            })
            .or_else(|e| {
                if e.problem == FieldProblem::Blank {
                    Ok(0)
                } else {
                    Err(e)
                }
            })
    }

    /// Check one field of a record against its definition.
    pub fn check(&self, record: &[u8]) -> Result<(), FieldError> {
        let raw = self
            .raw(record)
            .ok_or(FieldError::new(self, FieldProblem::Truncated))?;
        if let Some(pos) = raw.iter().position(|b| !b.is_ascii() || b.is_ascii_control()) {
            return Err(FieldError::new(
                self,
                FieldProblem::NotAscii {
                    at: self.range().start + pos,
                },
            ));
        }
        if let Some(fixed) = self.fixed {
            if raw != fixed.as_bytes() {
                return Err(FieldError::new(self, FieldProblem::NotFixed { expected: fixed }));
            }
            return Ok(());
        }
        let blank = raw.iter().all(|&b| b == b' ');
        match self.kind {
            Kind::Digits => {
                if blank && self.req == Req::Optional {
                    return Ok(());
                }
                if !raw.iter().all(u8::is_ascii_digit) {
                    return Err(FieldError::new(self, FieldProblem::NotDigits));
                }
            }
            Kind::Text => {
                if blank && self.req == Req::Mandatory && !self.name.starts_with("filler") {
                    return Err(FieldError::new(self, FieldProblem::Missing));
                }
            }
        }
        Ok(())
    }

    /// Write `value` into the field: digits are right-aligned and zero-filled, text is
    /// left-aligned and space-filled. A value that does not fit, or digits that are not
    /// digits, are refused rather than silently cut.
    pub fn put(&self, record: &mut [u8], value: &str) -> Result<(), FieldError> {
        let width = self.len();
        if value.len() > width {
            return Err(FieldError::new(self, FieldProblem::TooLong { len: value.len() }));
        }
        if !value.is_ascii() || value.bytes().any(|b| b.is_ascii_control()) {
            return Err(FieldError::new(
                self,
                FieldProblem::NotAscii {
                    at: self.range().start,
                },
            ));
        }
        let range = self.range();
        let dst = record
            .get_mut(range)
            .ok_or(FieldError::new(self, FieldProblem::Truncated))?;
        match self.kind {
            Kind::Digits => {
                if !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(FieldError::new(self, FieldProblem::NotDigits));
                }
                let pad = width - value.len();
                dst[..pad].fill(b'0');
                dst[pad..].copy_from_slice(value.as_bytes());
            }
            Kind::Text => {
                dst[..value.len()].copy_from_slice(value.as_bytes());
                dst[value.len()..].fill(b' ');
            }
        }
        Ok(())
    }

    /// Write a number into a digits field, zero-filled.
    pub fn put_number(&self, record: &mut [u8], value: u64) -> Result<(), FieldError> {
        let buf = itoa_buf(value);
        let s = buf.as_str();
        if s.len() > self.len() {
            return Err(FieldError::new(self, FieldProblem::Overflow { value }));
        }
        self.put(record, s)
    }
}

/// A small stack buffer for formatting numbers without allocating.
struct NumBuf {
    bytes: [u8; 20],
    start: usize,
}

impl NumBuf {
    fn as_str(&self) -> &str {
        // Only ASCII digits are ever written.
        std::str::from_utf8(&self.bytes[self.start..]).unwrap_or("0")
    }
}

fn itoa_buf(mut v: u64) -> NumBuf {
    let mut bytes = [0u8; 20];
    let mut i = 20;
    loop {
        i -= 1;
        bytes[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    NumBuf { bytes, start: i }
}

/// Parse a run of ASCII digits (no sign, no spaces). `None` if empty, not digits, or > u64.
pub fn parse_digits(raw: &[u8]) -> Option<u64> {
    if raw.is_empty() || raw.len() > 19 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in raw {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + d as u64;
    }
    Some(v)
}

/// A record type described as a table of fields.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    /// Short code, e.g. `000`, `2`, `2M`, `102`.
    pub code: &'static str,
    /// The published title, e.g. `Début de lot`.
    pub title: &'static str,
    /// Exact length in bytes of the record (B2: 128), or of the entity including its `@`.
    pub len: usize,
    pub fields: &'static [Field],
}

impl Layout {
    /// Look a field up by its machine name.
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Check every field; returns all problems found (empty when the record is valid).
    pub fn check(&self, record: &[u8]) -> Vec<FieldError> {
        self.fields.iter().filter_map(|f| f.check(record).err()).collect()
    }

    /// Check the table itself: fields in order, contiguous or gapped but never overlapping,
    /// inside the record. Used by tests of every table.
    pub fn self_check(&self) -> Result<(), String> {
        let mut next = 1u16;
        for f in self.fields {
            if f.from < next {
                return Err(format!(
                    "{}: field {} starts at {} before {}",
                    self.code, f.name, f.from, next
                ));
            }
            if f.to < f.from || f.to as usize > self.len {
                return Err(format!(
                    "{}: field {} spans {}-{} outside 1-{}",
                    self.code, f.name, f.from, f.to, self.len
                ));
            }
            if let Some(fixed) = f.fixed
                && fixed.len() != f.len()
            {
                return Err(format!(
                    "{}: field {} fixed value has the wrong width",
                    self.code, f.name
                ));
            }
            next = f.to + 1;
        }
        Ok(())
    }

    /// A blank record of this layout: digits fields zero, text fields spaces, fixed values set.
    pub fn blank(&self) -> Vec<u8> {
        let mut rec = vec![b' '; self.len];
        for f in self.fields {
            let r = f.range();
            match (f.fixed, f.kind) {
                (Some(v), _) => rec[r].copy_from_slice(v.as_bytes()),
                (None, Kind::Digits) => rec[r].fill(b'0'),
                (None, Kind::Text) => {}
            }
        }
        rec
    }
}

/// What is wrong with a field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldProblem {
    /// The record ends before the field does.
    Truncated,
    /// A digits field holds something else.
    NotDigits,
    /// An optional digits field is blank (reported only internally by `number`).
    Blank,
    /// A mandatory field is blank.
    Missing,
    /// A byte outside printable ASCII, at this 0-based offset in the record.
    NotAscii { at: usize },
    /// A field that always holds one value holds another.
    NotFixed { expected: &'static str },
    /// A value to write is longer than the field.
    TooLong { len: usize },
    /// A number to write has more digits than the field.
    Overflow { value: u64 },
}

/// A problem with one field, naming the field and its position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub label: &'static str,
    /// 1-based inclusive positions of the field, as in the published layout.
    pub from: u16,
    pub to: u16,
    pub problem: FieldProblem,
}

impl FieldError {
    fn new(field: &Field, problem: FieldProblem) -> FieldError {
        FieldError {
            field: field.name,
            label: field.label,
            from: field.from,
            to: field.to,
            problem,
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "field {} ({}, positions {}-{}): ",
            self.field, self.label, self.from, self.to
        )?;
        match &self.problem {
            FieldProblem::Truncated => write!(f, "record too short"),
            FieldProblem::NotDigits => write!(f, "not digits"),
            FieldProblem::Blank => write!(f, "blank"),
            FieldProblem::Missing => write!(f, "mandatory but blank"),
            FieldProblem::NotAscii { at } => write!(f, "byte at offset {at} is not printable ASCII"),
            FieldProblem::NotFixed { expected } => write!(f, "expected {expected:?}"),
            FieldProblem::TooLong { len } => write!(f, "value of {len} characters does not fit"),
            FieldProblem::Overflow { value } => write!(f, "number {value} does not fit"),
        }
    }
}

impl std::error::Error for FieldError {}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Layout = Layout {
        code: "T",
        title: "test",
        len: 10,
        fields: &[
            Field::digits("kind", "Type", 1, 1, Req::Mandatory).fixed("7"),
            Field::digits("amount", "Montant", 2, 5, Req::Mandatory),
            Field::text("name", "Nom", 6, 9, Req::Mandatory),
            Field::digits("opt", "Opt", 10, 10, Req::Optional),
        ],
    };

    #[test]
    fn table_is_consistent() {
        T.self_check().unwrap();
    }

    #[test]
    fn put_pads_and_reads_back() {
        let mut r = T.blank();
        assert_eq!(&r, b"70000    0");
        T.fields[1].put_number(&mut r, 42).unwrap();
        T.fields[2].put(&mut r, "AB").unwrap();
        assert_eq!(&r, b"70042AB  0");
        assert_eq!(T.fields[1].number(&r).unwrap(), 42);
        assert_eq!(T.fields[2].str(&r), Some("AB"));
        assert!(T.check(&r).is_empty());
    }

    #[test]
    fn put_refuses_what_does_not_fit() {
        let mut r = T.blank();
        assert_eq!(
            T.fields[1].put_number(&mut r, 12345).unwrap_err().problem,
            FieldProblem::Overflow { value: 12345 }
        );
        assert_eq!(
            T.fields[2].put(&mut r, "ABCDE").unwrap_err().problem,
            FieldProblem::TooLong { len: 5 }
        );
        assert_eq!(
            T.fields[1].put(&mut r, "1a").unwrap_err().problem,
            FieldProblem::NotDigits
        );
        assert_eq!(r, T.blank(), "a refused write leaves the record untouched");
    }

    #[test]
    fn check_names_field_and_problem() {
        let errs = T.check(b"8004X    Z");
        let names: Vec<_> = errs.iter().map(|e| (e.field, e.problem.clone())).collect();
        assert_eq!(
            names,
            vec![
                ("kind", FieldProblem::NotFixed { expected: "7" }),
                ("amount", FieldProblem::NotDigits),
                ("name", FieldProblem::Missing),
                ("opt", FieldProblem::NotDigits),
            ]
        );
        let errs = T.check(b"70000\xe9   0");
        assert_eq!(errs[0].problem, FieldProblem::NotAscii { at: 5 });
        assert_eq!(T.check(b"700")[0].problem, FieldProblem::Truncated);
    }

    #[test]
    fn optional_blank_digits_read_as_zero() {
        assert_eq!(T.fields[3].number(b"70000AB   ").unwrap(), 0);
        assert!(T.fields[3].check(b"70000AB   ").is_ok());
    }

    #[test]
    fn parse_digits_bounds() {
        assert_eq!(parse_digits(b"0007"), Some(7));
        assert_eq!(parse_digits(b""), None);
        assert_eq!(parse_digits(b"1 2"), None);
        assert_eq!(parse_digits(b"99999999999999999999"), None);
    }
}
