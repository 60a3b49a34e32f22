//! NOEMIE reader: physical packagings, entity stream, `990`/`999` controls.

use serde::Serialize;

use std::borrow::Cow;
use std::sync::Arc;

use super::layouts::{self, DateFormat, E990, H000, T999};
use crate::Severity;
use crate::layout::{Field, Kind, Layout, Req, parse_digits};

/// Most files accepted back to back in one input.
pub const MAX_FILES: usize = 10_000;
/// Longest entity accepted (the longest published layout is 153 bytes).
pub const MAX_ENTITY_LEN: usize = 1024;
/// Largest entity stream of one file (4 GiB - 1): offsets are kept as `u32`.
pub const MAX_STREAM: usize = u32::MAX as usize;
/// Most findings kept; further ones are only counted.
pub const MAX_FINDINGS: usize = 1000;

/// The physical packaging of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Packaging {
    /// (a) lines each prefixed by a 4-digit length and ended by CRLF.
    Lines,
    /// (b) 128-byte blocks; data blocks start with a flag byte (`1` = last).
    Blocks,
}

/// A fatal problem: the input cannot be cut into files and entities.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoemieError {
    #[error("empty input")]
    Empty,
    #[error("offset {offset}: neither a length-prefixed line nor a 000 header (unknown packaging)")]
    UnknownPackaging { offset: usize },
    #[error("file {file}, offset {offset}: expected a 4-digit line length")]
    BadLineLength { file: usize, offset: usize },
    #[error(
        "file {file}, offset {offset}: line declares {declared} bytes, only {available} left (truncated)"
    )]
    LineTruncated {
        file: usize,
        offset: usize,
        declared: usize,
        available: usize,
    },
    #[error("file {file}, offset {offset}: expected a 128-byte 000 header")]
    MissingHeader { file: usize, offset: usize },
    #[error("file {file}, offset {offset}: input ends before the 999 trailer (truncated)")]
    MissingTrailer { file: usize, offset: usize },
    /// The physical records are not where the packaging puts them although the file goes on
    /// (an editor reflowed the lines): `detail` says what was found where.
    #[error("file {file}, offset {offset}: {detail}")]
    Reflowed {
        file: usize,
        offset: usize,
        detail: String,
    },
    #[error("file {file}, entity {entity}, offset {offset}: no `@` delimiter within {MAX_ENTITY_LEN} bytes")]
    Unterminated {
        file: usize,
        entity: usize,
        offset: usize,
    },
    #[error("file {file}: entity stream of {len} bytes exceeds {MAX_STREAM}")]
    TooLarge { file: usize, len: usize },
    #[error("more than {MAX_FILES} files in one input")]
    TooManyFiles,
}

/// What a finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// An entity type with no published layout; kept raw.
    UnknownEntity,
    /// An entity shorter or longer than its layout.
    EntityLength,
    /// A field that does not match its layout (digits, fixed value, mandatory).
    Field,
    /// A `990` count differs from the entities of the level directly below it.
    ControlCount,
    /// A `990` amount differs from the entities it closes.
    ControlSum,
    /// The `999` record count differs from the file's physical records.
    TrailerCount,
    /// The `999` lot count differs from the number of `080` entities.
    TrailerLots,
    /// The `999` amount differs from the file's amounts.
    TrailerSum,
    /// The `999` trailer does not repeat the header's identification.
    TrailerHeader,
    /// A problem with the `000` header.
    Header,
    /// An entity type not expected in this reference (informational).
    UnexpectedForReference,
    /// Bytes outside any file, or a packaging irregularity that could be read through.
    Packaging,
}

impl FindingKind {
    /// The usual severity of this kind. Header and trailer-count findings set theirs where
    /// nothing is lost (a blank currency, a trailer that counts entities): warnings.
    pub fn severity(self) -> Severity {
        match self {
            FindingKind::UnknownEntity | FindingKind::UnexpectedForReference => Severity::Info,
            FindingKind::Packaging => Severity::Warning,
            _ => Severity::Error,
        }
    }
}

/// A non-fatal problem, located as precisely as possible.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Only [`Severity::Error`] makes the input invalid.
    pub severity: Severity,
    /// 0-based index of the file in the input.
    pub file: usize,
    /// 0-based index of the entity in its file, when the finding is about one.
    pub entity: Option<usize>,
    /// Byte offset in the input.
    pub offset: usize,
    /// Entity type (`102`, `990`, `000`, `999`), when known.
    pub code: Option<String>,
    /// Machine name of the field, when the finding is about one.
    pub field: Option<&'static str>,
    pub kind: FindingKind,
    pub message: String,
}

/// One entity of the stream: where it is, its type and level. Bytes are in [`NoemieFile::raw`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entity {
    /// The type as a number (`102`), `None` when the first 3 bytes are not digits.
    pub code: Option<u16>,
    /// The break level (positions 4-5), `None` when not 2 digits.
    pub level: Option<u8>,
    /// Start in the file's entity stream (streams are bounded by [`MAX_STREAM`]).
    pub start: u32,
    /// Length including the `@` (bounded by [`MAX_ENTITY_LEN`]).
    pub len: u16,
}

/// Totals computed from the entities of one file, as the `999` trailer should state them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FileTotals {
    /// Entities between header and trailer, `990` included.
    pub entities: u64,
    /// Physical records of the file, header and trailer included: lines in packaging (a),
    /// 128-byte blocks in packaging (b). What the `999` record count states.
    pub records: u64,
    /// `080` entities.
    pub lots: u64,
    /// Signed sum of controlled amounts, in cents.
    pub amount: i64,
    /// `990` entities checked.
    pub controls_checked: u64,
}

/// One NOEMIE file (`000` .. `999`). Its `Debug` output redacts the header's password field
/// (*mot de passe*, positions 86-91).
#[derive(Clone)]
pub struct NoemieFile {
    pub index: usize,
    /// Offset of the header in the input.
    pub offset: usize,
    pub header: Vec<u8>,
    pub trailer: Vec<u8>,
    /// Offset of the trailer in the input.
    pub trailer_offset: usize,
    /// The entity streams of all files of the input, packaging removed; this file's is `span`.
    /// Shared, so that reading an owned input needs no second copy ([`parse_owned`]).
    buf: Arc<Vec<u8>>,
    span: std::ops::Range<usize>,
    /// (stream offset, input offset) at the start of each physical segment.
    segments: Vec<(usize, usize)>,
    pub entities: Vec<Entity>,
    pub totals: FileTotals,
}

/// A parsed input: one or more files and everything noticed on the way.
#[derive(Clone, Debug)]
pub struct Noemie {
    pub packaging: Packaging,
    pub files: Vec<NoemieFile>,
    pub findings: Vec<Finding>,
    /// Findings beyond [`MAX_FINDINGS`], counted only.
    pub findings_suppressed: usize,
}

/// A field value with its raw text and its decoded form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldValue {
    pub name: &'static str,
    /// The bytes as found (Latin-1), NUL bytes included.
    pub raw: String,
    pub value: Decoded,
}

/// A decoded field value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decoded {
    Blank,
    Text(String),
    Number(u64),
    /// ISO `YYYY-MM-DD`, with the format it was read with.
    Date {
        iso: String,
        format: DateFormat,
    },
    /// Does not decode (not digits, impossible date).
    Invalid,
}

/// A date field: raw text plus its ISO reading when valid. `S` is the text type: `String` in
/// the owned views, `Cow<str>` borrowing from the input in the views `svoct inspect` writes
/// out ([`Noemie::walk_view_ref`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DateValue<S = String> {
    pub raw: S,
    pub iso: Option<S>,
}

/// A borrowed view of one entity with field access by name.
#[derive(Clone, Copy, Debug)]
pub struct EntityRef<'a> {
    pub index: usize,
    pub entity: Entity,
    pub layout: Option<&'static Layout>,
    /// The entity bytes including the `@`.
    pub raw: &'a [u8],
    /// Year of the file's creation, used to choose the century of 2-digit years.
    pub file_year: u16,
}

fn latin1(bytes: &[u8]) -> String {
    // Nearly every field is ASCII: one check and one copy instead of a char at a time.
    if bytes.is_ascii() {
        return String::from_utf8(bytes.to_vec()).unwrap_or_default();
    }
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// Bytes without their trailing spaces.
fn trim_end(b: &[u8]) -> &[u8] {
    let end = b.iter().rposition(|&c| c != b' ').map_or(0, |i| i + 1);
    b.get(..end).unwrap_or(&[])
}

/// Latin-1 bytes as text: borrowed when they are ASCII (the same bytes in UTF-8), converted
/// a character at a time otherwise.
fn latin1_cow(bytes: Cow<'_, [u8]>) -> Cow<'_, str> {
    match bytes {
        Cow::Borrowed(b) if b.is_ascii() => match std::str::from_utf8(b) {
            Ok(t) => Cow::Borrowed(t),
            Err(_) => Cow::Owned(latin1(b)),
        },
        b => Cow::Owned(latin1(&b)),
    }
}

impl<'a> EntityRef<'a> {
    /// The entity without its `@`.
    pub fn body(&self) -> &'a [u8] {
        self.raw.strip_suffix(b"@").unwrap_or(self.raw)
    }

    /// The type as 3 characters (`"102"`), or the first bytes as found.
    pub fn code_str(&self) -> String {
        latin1(self.raw.get(..3).unwrap_or(self.raw))
    }

    /// [`EntityRef::code_str`], borrowed from the input when it is ASCII.
    pub fn code_text(&self) -> Cow<'a, str> {
        latin1_cow(Cow::Borrowed(self.raw.get(..3).unwrap_or(self.raw)))
    }

    /// Bytes of a field, NUL read as space, padded with spaces when the entity is short.
    pub fn field_bytes(&self, f: &Field) -> std::borrow::Cow<'a, [u8]> {
        let body = self.body();
        let r = f.range();
        if let Some(b) = body.get(r.clone())
            && !b.contains(&0)
        {
            return std::borrow::Cow::Borrowed(b);
        }
        let mut out = Vec::with_capacity(f.len());
        for i in r {
            let b = body.get(i).copied().unwrap_or(b' ');
            out.push(if b == 0 { b' ' } else { b });
        }
        std::borrow::Cow::Owned(out)
    }

    /// The layout's field of that name. Names are compared by length and first byte before
    /// their bytes: the views look fields up by name for every entity of a large return, and
    /// most candidates differ there (cheaper than a `memcmp` call per field).
    fn field(&self, name: &str) -> Option<&'static Field> {
        let n = name.as_bytes();
        self.layout?.fields.iter().find(|f| {
            let b = f.name.as_bytes();
            b.len() == n.len() && b.first() == n.first() && b == n
        })
    }

    /// A text field, trailing spaces (and NULs) removed; empty when absent.
    pub fn text(&self, name: &str) -> String {
        self.text_ref(name).into_owned()
    }

    /// [`EntityRef::text`] borrowed from the input when the field is ASCII without NUL (nearly
    /// always): no allocation.
    pub fn text_ref(&self, name: &str) -> Cow<'a, str> {
        match self.field(name) {
            Some(f) => {
                // Nearly always: the field is inside the entity, ASCII without NUL once its
                // trailing spaces are off (one pass over its bytes, no copy).
                if let Some(t) = self.body().get(f.range()).map(trim_end)
                    && t.iter().all(|&b| b != 0 && b.is_ascii())
                    && let Ok(t) = std::str::from_utf8(t)
                {
                    return Cow::Borrowed(t);
                }
                let trimmed = match self.field_bytes(f) {
                    Cow::Borrowed(b) => Cow::Borrowed(trim_end(b)),
                    Cow::Owned(b) => Cow::Owned(trim_end(&b).to_vec()),
                };
                latin1_cow(trimmed)
            }
            None => Cow::Borrowed(""),
        }
    }

    /// A digits field as a number; `None` when blank, not digits or absent.
    pub fn number(&self, name: &str) -> Option<u64> {
        let f = self.field(name)?;
        parse_digits(&self.field_bytes(f))
    }

    /// A date field, raw and decoded.
    pub fn date(&self, name: &str) -> DateValue {
        let Some(f) = self.field(name) else {
            return DateValue {
                raw: String::new(),
                iso: None,
            };
        };
        let bytes = self.field_bytes(f);
        let code = self.layout.map(|l| l.code).unwrap_or("");
        let fmt = layouts::date_format(code, name).unwrap_or(DateFormat::Yymmdd);
        DateValue {
            raw: latin1(&bytes),
            iso: decode_date(&bytes, fmt, self.file_year),
        }
    }

    /// [`EntityRef::date`] with the raw text borrowed from the input when it is ASCII.
    pub fn date_ref(&self, name: &str) -> DateValue<Cow<'a, str>> {
        let Some(f) = self.field(name) else {
            return DateValue {
                raw: Cow::Borrowed(""),
                iso: None,
            };
        };
        let bytes = self.field_bytes(f);
        let code = self.layout.map(|l| l.code).unwrap_or("");
        let fmt = layouts::date_format(code, name).unwrap_or(DateFormat::Yymmdd);
        let iso = decode_date(&bytes, fmt, self.file_year).map(Cow::Owned);
        DateValue {
            raw: latin1_cow(bytes),
            iso,
        }
    }

    /// Every field of the layout, raw and decoded (empty for an unknown entity).
    pub fn fields(&self) -> Vec<FieldValue> {
        let Some(layout) = self.layout else {
            return Vec::new();
        };
        layout
            .fields
            .iter()
            .map(|f| {
                let raw_bytes: Vec<u8> = f.range().filter_map(|i| self.body().get(i).copied()).collect();
                let bytes = self.field_bytes(f);
                let blank = bytes.iter().all(|&b| b == b' ');
                let value = if f.name == "end" {
                    Decoded::Text(latin1(self.raw.last().map(std::slice::from_ref).unwrap_or(&[])))
                } else if blank {
                    Decoded::Blank
                } else if let Some(fmt) = layouts::date_format(layout.code, f.name) {
                    match decode_date(&bytes, fmt, self.file_year) {
                        Some(iso) => Decoded::Date { iso, format: fmt },
                        None => Decoded::Invalid,
                    }
                } else {
                    match f.kind {
                        Kind::Digits => parse_digits(&bytes)
                            .map(Decoded::Number)
                            .unwrap_or(Decoded::Invalid),
                        Kind::Text => Decoded::Text(latin1(&bytes).trim_end().to_string()),
                    }
                };
                FieldValue {
                    name: f.name,
                    raw: latin1(&raw_bytes),
                    value,
                }
            })
            .collect()
    }

    /// The signed amount this entity contributes to the controls (cents), if any.
    pub fn controlled_amount(&self) -> Option<Result<i64, &'static Field>> {
        let (amount, sign) = layouts::controlled_amount(self.entity.code?)?;
        Some(signed_amount(self.body(), amount, sign))
    }
}

/// Read an amount field and its optional sign field. Blank optional amount reads 0; blank
/// sign reads positive.
fn signed_amount(
    body: &[u8],
    amount: &'static Field,
    sign: Option<&'static Field>,
) -> Result<i64, &'static Field> {
    let raw = body.get(amount.range());
    let value = match raw {
        Some(r) if r.iter().all(|&b| b == b' ' || b == 0) => 0,
        Some(r) => parse_digits(r).ok_or(amount)?,
        None => 0,
    };
    let negative = match sign {
        Some(s) => match body.get(s.range()) {
            Some(b"N") => true,
            Some(b"P") | Some(b" ") | Some(b"\0") | None => false,
            Some(_) => return Err(s),
        },
        None => false,
    };
    // Amount fields have at most 11 digits: always within i64.
    let value = i64::try_from(value).unwrap_or(i64::MAX);
    Ok(if negative { -value } else { value })
}

/// Decode a 6- or 8-digit date to ISO `YYYY-MM-DD`. Two-digit years take the century that puts
/// the date at or before `ref_year` (for birth dates) — processing dates use the same rule, as
/// they are never in the future of the file either.
pub fn decode_date(bytes: &[u8], fmt: DateFormat, ref_year: u16) -> Option<String> {
    let d = |r: std::ops::Range<usize>| bytes.get(r).and_then(parse_digits);
    let (y, m, day) = match fmt {
        DateFormat::Yymmdd if bytes.len() == 6 => (expand_year(d(0..2)?, ref_year), d(2..4)?, d(4..6)?),
        DateFormat::Ddmmyy if bytes.len() == 6 => (expand_year(d(4..6)?, ref_year), d(2..4)?, d(0..2)?),
        DateFormat::Yyyymmdd if bytes.len() == 8 => (d(0..4)?, d(4..6)?, d(6..8)?),
        _ => return None,
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let max = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day == 0 || day > max {
        return None;
    }
    Some(iso_date(y, m, day))
}

/// `YYYY-MM-DD` without the formatting machinery (dates are decoded for every entity of a
/// large return). `y` < 10 000, `m` and `d` < 100: what [`decode_date`] passes.
fn iso_date(y: u64, m: u64, d: u64) -> String {
    let digit = |v: u64| char::from(b'0' + (v % 10) as u8);
    let mut s = String::with_capacity(10);
    for v in [y / 1000, y / 100, y / 10, y] {
        s.push(digit(v));
    }
    s.push('-');
    s.push(digit(m / 10));
    s.push(digit(m));
    s.push('-');
    s.push(digit(d / 10));
    s.push(digit(d));
    s
}

fn expand_year(yy: u64, ref_year: u16) -> u64 {
    let ref_year = u64::from(ref_year.max(1900));
    let century = ref_year / 100 * 100;
    if century + yy <= ref_year + 1 {
        century + yy
    } else {
        century.saturating_sub(100) + yy
    }
}

/// The header as text with the password field (positions 86-91) masked.
fn redacted_header(header: &[u8]) -> String {
    header
        .iter()
        .enumerate()
        .map(|(i, &b)| if (85..91).contains(&i) { '*' } else { char::from(b) })
        .collect()
}

impl std::fmt::Debug for NoemieFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoemieFile")
            .field("index", &self.index)
            .field("offset", &self.offset)
            .field("header", &redacted_header(&self.header))
            .field("trailer", &latin1(&self.trailer))
            .field("trailer_offset", &self.trailer_offset)
            .field("stream_len", &self.span.len())
            .field("entities", &self.entities.len())
            .field("totals", &self.totals)
            .finish()
    }
}

impl NoemieFile {
    /// The entity stream (everything between header and trailer, packaging removed).
    pub fn stream(&self) -> &[u8] {
        self.buf.get(self.span.clone()).unwrap_or(&[])
    }

    /// The bytes of one entity (including `@`).
    pub fn raw(&self, e: &Entity) -> &[u8] {
        let start = e.start as usize;
        self.stream()
            .get(start..start + usize::from(e.len))
            .unwrap_or(&[])
    }

    /// Year of the header's creation date (2000 + AA), used to expand 2-digit years.
    pub fn year(&self) -> u16 {
        let yy = self.header.get(55..57).and_then(parse_digits).unwrap_or(0);
        2000 + yy as u16
    }

    /// A header field, trailing spaces removed.
    pub fn header_text(&self, name: &str) -> String {
        H000.field(name)
            .and_then(|f| f.raw(&self.header))
            .map(|b| latin1(b).trim_end().to_string())
            .unwrap_or_default()
    }

    /// A trailer field, trailing spaces removed.
    pub fn trailer_text(&self, name: &str) -> String {
        T999.field(name)
            .and_then(|f| f.raw(&self.trailer))
            .map(|b| latin1(b).trim_end().to_string())
            .unwrap_or_default()
    }

    /// The exchange reference of the header (positions 62-65), trimmed: `580`, `576`, `900`...
    pub fn reference(&self) -> String {
        self.header_text("reference").trim().to_string()
    }

    /// Entity `i` with field access.
    pub fn entity(&self, i: usize) -> Option<EntityRef<'_>> {
        let e = *self.entities.get(i)?;
        Some(EntityRef {
            index: i,
            entity: e,
            layout: e.code.and_then(layouts::entity_layout),
            raw: self.raw(&e),
            file_year: self.year(),
        })
    }

    /// All entities with field access.
    pub fn iter(&self) -> impl Iterator<Item = EntityRef<'_>> + '_ {
        let file_year = self.year();
        self.entities.iter().enumerate().map(move |(i, &e)| EntityRef {
            index: i,
            entity: e,
            layout: e.code.and_then(layouts::entity_layout),
            raw: self.raw(&e),
            file_year,
        })
    }

    /// The input offset of a stream offset.
    pub fn input_offset(&self, stream_offset: usize) -> usize {
        let i = self.segments.partition_point(|&(s, _)| s <= stream_offset);
        match i.checked_sub(1).and_then(|i| self.segments.get(i)) {
            Some(&(s, inp)) => inp + (stream_offset - s),
            None => self.offset,
        }
    }
}

struct Sink {
    findings: Vec<Finding>,
    suppressed: usize,
}

impl Sink {
    fn push(&mut self, f: Finding) {
        if self.findings.len() < MAX_FINDINGS {
            self.findings.push(f);
        } else {
            self.suppressed += 1;
        }
    }
}

fn is_pad(b: u8) -> bool {
    matches!(b, b' ' | 0 | b'\r' | b'\n')
}

fn skip_pad(input: &[u8], mut pos: usize) -> usize {
    while input.get(pos).is_some_and(|&b| is_pad(b)) {
        pos += 1;
    }
    pos
}

/// Where one file lies in the input: header, trailer, data segments, physical record count.
struct Framing {
    index: usize,
    offset: usize,
    header: Vec<u8>,
    trailer: Vec<u8>,
    trailer_offset: usize,
    /// (input offset, length) of each data line / block payload, in order.
    segments: Vec<(usize, usize)>,
    records: u64,
}

/// Parse an input holding one or more NOEMIE files in either packaging. The entity streams are
/// copied out of `input` (once); [`parse_owned`] avoids that copy.
pub fn parse(input: &[u8]) -> Result<Noemie, NoemieError> {
    let (packaging, framings, sink) = frame_all(input)?;
    let total = framings.iter().flat_map(|f| f.segments.iter().map(|s| s.1)).sum();
    let mut buf = Vec::with_capacity(total);
    let mut spans = Vec::with_capacity(framings.len());
    for f in &framings {
        let start = buf.len();
        for &(off, len) in &f.segments {
            buf.extend_from_slice(input.get(off..off + len).unwrap_or(&[]));
        }
        spans.push(start..buf.len());
    }
    finish(packaging, framings, spans, buf, sink)
}

/// Like [`parse`], but the entity streams are compacted inside `input` itself (each data
/// segment moves towards the start, over the packaging bytes already read), so a large
/// return costs its own size in memory, not twice.
pub fn parse_owned(mut input: Vec<u8>) -> Result<Noemie, NoemieError> {
    let (packaging, framings, sink) = frame_all(&input)?;
    let mut spans = Vec::with_capacity(framings.len());
    let mut w = 0usize;
    for f in &framings {
        let start = w;
        for &(off, len) in &f.segments {
            // Segments are in input order and every one is preceded by packaging bytes that
            // are not kept, so `w <= off`: the move never overwrites what is still to be read.
            input.copy_within(off..off + len, w);
            w += len;
        }
        spans.push(start..w);
    }
    input.truncate(w);
    finish(packaging, framings, spans, input, sink)
}

fn finish(
    packaging: Packaging,
    framings: Vec<Framing>,
    spans: Vec<std::ops::Range<usize>>,
    buf: Vec<u8>,
    mut sink: Sink,
) -> Result<Noemie, NoemieError> {
    let buf = Arc::new(buf);
    let mut files = Vec::with_capacity(framings.len());
    for (f, span) in framings.into_iter().zip(spans) {
        let mut segments = Vec::with_capacity(f.segments.len());
        let mut at = 0usize;
        for &(off, len) in &f.segments {
            segments.push((at, off));
            at += len;
        }
        let mut file = NoemieFile {
            index: f.index,
            offset: f.offset,
            header: f.header,
            trailer: f.trailer,
            trailer_offset: f.trailer_offset,
            buf: Arc::clone(&buf),
            span,
            segments,
            entities: Vec::new(),
            totals: FileTotals {
                records: f.records,
                ..FileTotals::default()
            },
        };
        scan_entities(&mut file, &mut sink)?;
        check_file(&file, &mut sink);
        files.push(file);
    }
    Ok(Noemie {
        packaging,
        files,
        findings: sink.findings,
        findings_suppressed: sink.suppressed,
    })
}

/// Cut the input into files: packaging, then each file's framing.
fn frame_all(input: &[u8]) -> Result<(Packaging, Vec<Framing>, Sink), NoemieError> {
    let start = skip_pad(input, 0);
    let head = input.get(start..).unwrap_or(&[]);
    if head.is_empty() {
        return Err(NoemieError::Empty);
    }
    let prefixed = head.get(..4).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let packaging = if prefixed && head.get(4..7) == Some(b"000".as_slice()) {
        Packaging::Lines
    } else if head.starts_with(b"000") {
        Packaging::Blocks
    } else {
        return Err(NoemieError::UnknownPackaging { offset: start });
    };
    let mut sink = Sink {
        findings: Vec::new(),
        suppressed: 0,
    };
    let mut files = Vec::new();
    let mut total = 0usize;
    let mut pos = start;
    loop {
        pos = skip_pad(input, pos);
        if pos >= input.len() {
            break;
        }
        if files.len() >= MAX_FILES {
            return Err(NoemieError::TooManyFiles);
        }
        let index = files.len();
        let rest = input.get(pos..).unwrap_or(&[]);
        let starts_file = match packaging {
            Packaging::Lines => rest.get(4..7) == Some(b"000".as_slice()),
            Packaging::Blocks => rest.starts_with(b"000"),
        };
        if index > 0 && !starts_file {
            sink.push(Finding {
                severity: Severity::Warning,
                file: index - 1,
                entity: None,
                offset: pos,
                code: None,
                field: None,
                kind: FindingKind::Packaging,
                message: format!("{} bytes after the last file ignored", rest.len()),
            });
            break;
        }
        let (file, next) = match packaging {
            Packaging::Lines => split_lines(input, pos, index)?,
            Packaging::Blocks => split_blocks(input, pos, index, &mut sink)?,
        };
        let len: usize = file.segments.iter().map(|s| s.1).sum();
        total = total.saturating_add(len);
        if len > MAX_STREAM || total > MAX_STREAM {
            return Err(NoemieError::TooLarge { file: index, len });
        }
        files.push(file);
        pos = next;
    }
    Ok((packaging, files, sink))
}

/// One length-prefixed line at `pos`: (payload, payload offset, next line offset).
fn read_line(input: &[u8], pos: usize, file: usize) -> Result<(&[u8], usize, usize), NoemieError> {
    let declared = input
        .get(pos..pos.saturating_add(4))
        .and_then(parse_digits)
        .ok_or(NoemieError::BadLineLength { file, offset: pos })? as usize;
    let from = pos + 4;
    let payload = input
        .get(from..from + declared)
        .ok_or(NoemieError::LineTruncated {
            file,
            offset: pos,
            declared,
            available: input.len().saturating_sub(from),
        })?;
    let mut next = from + declared;
    if input.get(next) == Some(&b'\r') {
        next += 1;
    }
    if input.get(next) == Some(&b'\n') {
        next += 1;
    }
    Ok((payload, from, next))
}

/// Offset of the first `999` followed by the header's sender type and number: the trailer,
/// wherever it ended up.
fn find_trailer(input: &[u8], from: usize, header: &[u8]) -> Option<usize> {
    let mut needle = b"999".to_vec();
    needle.extend_from_slice(header.get(3..19)?);
    let hay = input.get(from..)?;
    hay.windows(needle.len())
        .position(|w| w == needle.as_slice())
        .map(|i| from + i)
}

/// Why a file in packaging (a) could not be cut, when a trailer does follow: the first line
/// whose declared length runs over a line break (an editor rewrapped or trimmed the lines).
/// `None` when nothing points to a reflow; the caller keeps its own error then.
fn reflowed_lines(input: &[u8], pos: usize, index: usize) -> Option<NoemieError> {
    let header = input.get(pos + 4..pos + 4 + 128)?;
    let trailer = find_trailer(input, pos + 4, header)?;
    let mut at = pos;
    while at < trailer {
        let declared = input.get(at..at + 4).and_then(parse_digits)? as usize;
        let from = at + 4;
        let end = input.len().min(from + declared);
        let payload = input.get(from..end)?;
        if let Some(k) = payload.iter().position(|&b| b == b'\n' || b == b'\r') {
            return Some(NoemieError::Reflowed {
                file: index,
                offset: at,
                detail: format!(
                    "line declares {declared} bytes but a line break comes after {k} (offset {}), \
                     and the 999 trailer is at offset {trailer}: the line lengths do not match \
                     the lines (file reflowed by an editor?)",
                    from + k
                ),
            });
        }
        at = skip_newline(input, end);
    }
    None
}

fn split_lines(input: &[u8], pos: usize, index: usize) -> Result<(Framing, usize), NoemieError> {
    cut_lines(input, pos, index).map_err(|e| reflowed_lines(input, pos, index).unwrap_or(e))
}

fn cut_lines(input: &[u8], pos: usize, index: usize) -> Result<(Framing, usize), NoemieError> {
    let (header, hoff, mut next) = read_line(input, pos, index)?;
    if header.len() != 128 || !header.starts_with(b"000") {
        return Err(NoemieError::MissingHeader {
            file: index,
            offset: hoff,
        });
    }
    let mut segments = Vec::new();
    loop {
        if next >= input.len() {
            return Err(NoemieError::MissingTrailer {
                file: index,
                offset: input.len(),
            });
        }
        let (payload, poff, n2) = read_line(input, next, index)?;
        next = n2;
        if payload.len() == 128 && payload.starts_with(b"999") {
            let records = segments.len() as u64 + 2;
            return Ok((
                Framing {
                    index,
                    offset: hoff,
                    header: header.to_vec(),
                    trailer: payload.to_vec(),
                    trailer_offset: poff,
                    segments,
                    records,
                },
                next,
            ));
        }
        segments.push((poff, payload.len()));
    }
}

fn skip_newline(input: &[u8], mut pos: usize) -> usize {
    if input.get(pos) == Some(&b'\r') {
        pos += 1;
    }
    if input.get(pos) == Some(&b'\n') {
        pos += 1;
    }
    pos
}

/// No `999` where the blocks put it: if one is elsewhere, the blocks are not 128 bytes (an
/// editor reflowed them); say where the first line break inside a block and the trailer are.
fn misaligned_blocks(input: &[u8], start: usize, index: usize, otherwise: NoemieError) -> NoemieError {
    let header = input.get(start..start + 128).unwrap_or(&[]);
    let Some(trailer) = find_trailer(input, start + 128, header) else {
        return otherwise;
    };
    let mut pos = start;
    let mut inner_break = None;
    while let Some(block) = input.get(pos..pos + 128) {
        if let Some(k) = block.iter().position(|&b| b == b'\n' || b == b'\r') {
            inner_break = Some(pos + k);
            break;
        }
        pos = skip_newline(input, pos + 128);
    }
    let why = match inner_break {
        Some(b) => format!("a line break at offset {b} falls inside a 128-byte block"),
        None => "the blocks do not end on it".to_string(),
    };
    NoemieError::Reflowed {
        file: index,
        offset: start,
        detail: format!(
            "the 999 trailer at offset {trailer} is not on a 128-byte block boundary ({why}): \
             the file is not in 128-byte records (reflowed by an editor?)"
        ),
    }
}

fn split_blocks(
    input: &[u8],
    pos: usize,
    index: usize,
    sink: &mut Sink,
) -> Result<(Framing, usize), NoemieError> {
    let header = input
        .get(pos..pos + 128)
        .filter(|h| h.starts_with(b"000"))
        .ok_or(NoemieError::MissingHeader {
            file: index,
            offset: pos,
        })?;
    let mut f = Framing {
        index,
        offset: pos,
        header: header.to_vec(),
        trailer: Vec::new(),
        trailer_offset: 0,
        segments: Vec::new(),
        records: 0,
    };
    let mut pos = skip_newline(input, pos + 128);
    // The last byte of the data read so far that is not padding, to know whether a `999`
    // block can be the trailer (it cannot in the middle of an entity).
    let mut last_solid: Option<u8> = None;
    loop {
        let Some(block) = input.get(pos..pos + 128) else {
            let missing = NoemieError::MissingTrailer {
                file: index,
                offset: pos.min(input.len()),
            };
            return Err(misaligned_blocks(input, f.offset, index, missing));
        };
        if block.starts_with(b"999") && matches!(last_solid, None | Some(b'@')) {
            if !f.segments.is_empty() {
                sink.push(Finding {
                    severity: Severity::Warning,
                    file: index,
                    entity: None,
                    offset: pos,
                    code: Some("999".into()),
                    field: None,
                    kind: FindingKind::Packaging,
                    message: "no data block carries the last-block flag `1`".into(),
                });
            }
            return Ok(close_blocks(f, input, pos));
        }
        let flag = block.first().copied().unwrap_or(b'1');
        let data = block.get(1..).unwrap_or(&[]);
        if let Some(&b) = data.iter().rev().find(|&&b| !is_pad(b)) {
            last_solid = Some(b);
        }
        f.segments.push((pos + 1, 127));
        pos = skip_newline(input, pos + 128);
        if flag == b'1' {
            break;
        }
    }
    if input.get(pos..pos + 128).is_none_or(|t| !t.starts_with(b"999")) {
        let missing = NoemieError::MissingTrailer {
            file: index,
            offset: pos.min(input.len()),
        };
        return Err(misaligned_blocks(input, f.offset, index, missing));
    }
    Ok(close_blocks(f, input, pos))
}

fn close_blocks(mut f: Framing, input: &[u8], pos: usize) -> (Framing, usize) {
    f.trailer = input.get(pos..pos + 128).unwrap_or(&[]).to_vec();
    f.trailer_offset = pos;
    f.records = f.segments.len() as u64 + 2;
    (f, skip_newline(input, pos + 128))
}

fn looks_like_entity_start(s: &[u8], at: usize) -> bool {
    match s.get(at..) {
        None | Some([]) => true,
        Some(rest) => {
            let rest_trim = skip_pad(rest, 0);
            if rest_trim >= rest.len() {
                return true;
            }
            rest.get(rest_trim..rest_trim + 5)
                .is_some_and(|h| h.iter().all(u8::is_ascii_digit))
        }
    }
}

/// Which entity types each public reference is expected to hold (the project's reading,
/// `docs/formats/noemie.md`). `None` for references with no expectation.
pub fn expected_entities(reference: &str) -> Option<&'static [u16]> {
    const R580: &[u16] = &[
        20, 40, 70, 71, 80, 81, 100, 102, 103, 110, 120, 150, 160, 198, 199, 210, 250, 290, 294, 295, 990,
    ];
    const R576: &[u16] = &[
        20, 40, 70, 71, 81, 100, 102, 103, 110, 120, 250, 261, 262, 290, 295, 990,
    ];
    const R900: &[u16] = &[
        20, 40, 80, 81, 100, 102, 103, 110, 120, 150, 160, 290, 294, 295, 990,
    ];
    match reference {
        "580" => Some(R580),
        "576" => Some(R576),
        "900" => Some(R900),
        _ => None,
    }
}

/// Per entity type, whether it is unexpected in `reference` (computed once per reference).
fn unexpected_mask(reference: &str) -> Option<&'static [bool]> {
    type Masks = [Vec<bool>; 3];
    static MASKS: std::sync::OnceLock<Masks> = std::sync::OnceLock::new();
    let masks = MASKS.get_or_init(|| {
        ["580", "576", "900"].map(|r| {
            let exp = expected_entities(r).unwrap_or(&[]);
            (0..1000u16).map(|c| !exp.contains(&c)).collect()
        })
    });
    let i = ["580", "576", "900"].iter().position(|r| *r == reference)?;
    masks.get(i).map(Vec::as_slice)
}

/// A finding noticed while scanning, located in the stream until [`flush`] maps its offset.
struct Pending {
    at: usize,
    entity: Option<usize>,
    code: Option<u16>,
    field: Option<&'static str>,
    kind: FindingKind,
    severity: Severity,
    message: String,
}

/// The scan of one file's entity stream: entities, totals, `990` controls, findings.
struct Scan {
    ctl: Controls,
    totals: FileTotals,
    entities: Vec<Entity>,
    pending: Vec<Pending>,
    unexpected: Option<&'static [bool]>,
    reported: Vec<u16>,
    reference: String,
}

impl Scan {
    fn push(
        &mut self,
        at: usize,
        idx: usize,
        code: Option<u16>,
        field: Option<&'static str>,
        kind: FindingKind,
        message: String,
    ) {
        self.pending.push(Pending {
            at,
            entity: Some(idx),
            code,
            field,
            kind,
            severity: kind.severity(),
            message,
        });
    }
}

/// Where the entity starting at `p` ends (its length, `@` included), or `None` when there is
/// no `@` within [`MAX_ENTITY_LEN`].
fn entity_len(s: &[u8], p: usize, layout: Option<&'static Layout>) -> Option<usize> {
    let window = s.get(p..s.len().min(p + MAX_ENTITY_LEN)).unwrap_or(&[]);
    // Fast path: the `@` where the layout puts it and none before (`contains` on bytes is a
    // word-at-a-time memchr).
    let exact = layout.and_then(|l| {
        let head = window.get(..l.len.checked_sub(1)?)?;
        (window.get(l.len - 1) == Some(&b'@') && !head.contains(&b'@')).then_some(l.len)
    });
    if exact.is_some() {
        return exact;
    }
    let q = window.iter().position(|&b| b == b'@')?;
    Some(match layout {
        Some(l) if q + 1 < l.len && window.get(l.len - 1) == Some(&b'@') => {
            // An `@` inside the entity: take the layout's end unless what follows the early
            // `@` looks like the next entity.
            if looks_like_entity_start(s, p + q + 1) && !looks_like_entity_start(s, p + l.len) {
                q + 1
            } else {
                l.len
            }
        }
        _ => q + 1,
    })
}

fn scan_entities(file: &mut NoemieFile, sink: &mut Sink) -> Result<(), NoemieError> {
    let reference = file.reference();
    let mut scan = Scan {
        ctl: Controls::new(),
        totals: file.totals,
        entities: Vec::with_capacity(file.span.len() / 40),
        pending: Vec::new(),
        unexpected: unexpected_mask(&reference),
        reported: Vec::new(),
        reference,
    };
    let s = file.stream();
    let mut p = 0usize;
    while let Some(&b) = s.get(p) {
        if is_pad(b) {
            p += 1;
            continue;
        }
        let idx = scan.entities.len();
        let code = s.get(p..p + 3).and_then(parse_digits).map(|c| c as u16);
        let level = s.get(p + 3..p + 5).and_then(parse_digits).map(|l| l as u8);
        let layout = code.and_then(layouts::entity_layout);
        let len = entity_len(s, p, layout).ok_or(NoemieError::Unterminated {
            file: file.index,
            entity: idx,
            offset: p,
        })?;
        scan.entities.push(Entity {
            code,
            level,
            start: p as u32,
            len: len as u16,
        });
        scan.totals.entities += 1;
        let body = s.get(p..p + len - 1).unwrap_or(&[]);
        check_entity(&mut scan, p, idx, code, level, layout, body);
        p += len;
        if scan.pending.len() > 64 {
            flush(file.index, &file.segments, file.offset, &mut scan.pending, sink);
        }
    }
    flush(file.index, &file.segments, file.offset, &mut scan.pending, sink);
    file.entities = scan.entities;
    file.totals = scan.totals;
    Ok(())
}

/// Fields, length, expectation and control checks of one entity; its amount into the totals.
fn check_entity(
    scan: &mut Scan,
    p: usize,
    idx: usize,
    code: Option<u16>,
    level: Option<u8>,
    layout: Option<&'static Layout>,
    body: &[u8],
) {
    match (code, layout) {
        (None, _) => scan.push(
            p,
            idx,
            None,
            None,
            FindingKind::Field,
            "entity type is not 3 digits".into(),
        ),
        (Some(c), None) => scan.push(
            p,
            idx,
            Some(c),
            None,
            FindingKind::UnknownEntity,
            format!("entity type {c:03} has no published layout; kept raw"),
        ),
        (Some(c), Some(l)) => check_layout(scan, p, idx, c, l, body),
    }
    if code.is_some() && level.is_none() {
        scan.push(
            p + 3,
            idx,
            code,
            Some("level"),
            FindingKind::Field,
            "break level is not 2 digits".into(),
        );
    }
    if code == Some(990) {
        if let Some(level) = level {
            check_control(scan, p, idx, level, body);
        }
        return;
    }
    add_to_totals(scan, code, level, body);
}

/// An entity of a known layout: its length, its fields, whether its reference expects it.
fn check_layout(scan: &mut Scan, p: usize, idx: usize, c: u16, l: &'static Layout, body: &[u8]) {
    let len = body.len() + 1;
    if len != l.len {
        // Blank bytes past the layout's end are padding some writers leave: not an error.
        let extra_blank = len > l.len
            && body
                .get(l.len - 1..)
                .is_some_and(|x| x.iter().all(|&b| b == b' ' || b == 0));
        if !extra_blank {
            scan.push(
                p,
                idx,
                Some(c),
                None,
                FindingKind::EntityLength,
                format!("entity is {len} bytes, layout {} says {}", l.code, l.len),
            );
        }
    }
    // The precise (slower) field checks run only when the fast whole-entity check fails.
    if !fast_valid(c, body) {
        let mut found = Vec::new();
        validate_fields(l, body, |f, msg| found.push((f, msg)));
        for (f, msg) in found {
            scan.push(
                p + f.range().start,
                idx,
                Some(c),
                Some(f.name),
                FindingKind::Field,
                msg,
            );
        }
    }
    // Said once per entity type and file: one unexpected type is one piece of information.
    if let Some(mask) = scan.unexpected
        && mask.get(usize::from(c)) == Some(&true)
        && !scan.reported.contains(&c)
    {
        scan.reported.push(c);
        let msg = format!("entity {c:03} is not expected in reference {}", scan.reference);
        scan.push(p, idx, Some(c), None, FindingKind::UnexpectedForReference, msg);
    }
}

/// A `990` of `level`: its count and amount against the group it closes.
fn check_control(scan: &mut Scan, p: usize, idx: usize, level: u8, body: &[u8]) {
    scan.totals.controls_checked += 1;
    let (count, sum) = scan.ctl.close(level as usize);
    let mut found = Vec::new();
    check_990(count, sum, level, body, |field, kind, msg| {
        found.push((field, kind, msg))
    });
    for (field, kind, msg) in found {
        scan.push(p, idx, Some(990), Some(field), kind, msg);
    }
}

/// A data entity (not a `990`): its lot and amount into the file's totals and the open groups.
fn add_to_totals(scan: &mut Scan, code: Option<u16>, level: Option<u8>, body: &[u8]) {
    if code == Some(80) {
        scan.totals.lots += 1;
    }
    let amount = match code.and_then(layouts::controlled_amount) {
        // A bad amount is reported by validate_fields.
        Some((a, sign)) => signed_amount(body, a, sign).unwrap_or_default(),
        None => 0,
    };
    scan.totals.amount = scan.totals.amount.saturating_add(amount);
    if let Some(level) = level {
        scan.ctl.data(level as usize, amount);
    }
}

fn flush(file: usize, segments: &[(usize, usize)], base: usize, pending: &mut Vec<Pending>, sink: &mut Sink) {
    for f in pending.drain(..) {
        let i = segments.partition_point(|&(s, _)| s <= f.at);
        let offset = match i.checked_sub(1).and_then(|i| segments.get(i)) {
            Some(&(s, inp)) => inp + (f.at - s),
            None => base,
        };
        sink.push(Finding {
            severity: f.severity,
            file,
            entity: f.entity,
            offset,
            code: f.code.map(|c| format!("{c:03}")),
            field: f.field,
            kind: f.kind,
            message: f.message,
        });
    }
}

/// One open group per level: the smallest level seen below it with how many entities of that
/// level, and the signed sum of every controlled amount below it.
#[derive(Clone, Copy, Default)]
struct Group {
    /// Level of the entities directly below (the smallest level greater than the group's).
    below: u8,
    count: u64,
    amount: i64,
}

/// Running accumulators of the `990` controls, one [`Group`] per level (index 0 = the file,
/// closed by a `990` of level `00` or `99`).
struct Controls {
    groups: [Group; 100],
    deepest: usize,
}

impl Controls {
    fn new() -> Controls {
        Controls {
            groups: [Group::default(); 100],
            deepest: 0,
        }
    }

    /// A data entity at `level`: it is below every group of a smaller level number, and it
    /// restarts every group of a greater one.
    fn data(&mut self, level: usize, amount: i64) {
        let level = level.min(99);
        for g in self.groups.iter_mut().take(level) {
            g.amount = g.amount.saturating_add(amount);
            let l = level as u8;
            if g.count == 0 || l < g.below {
                g.below = l;
                g.count = 1;
            } else if l == g.below {
                g.count += 1;
            }
        }
        if self.deepest > level {
            for g in self.groups.iter_mut().take(self.deepest + 1).skip(level + 1) {
                *g = Group::default();
            }
        }
        self.deepest = self.deepest.max(level);
    }

    /// Close group `level` (`99` closes the file-level group 0): (entities of the level
    /// directly below, amount of everything below).
    fn close(&mut self, level: usize) -> (u64, i64) {
        let k = if level == 99 { 0 } else { level.min(99) };
        let got = self.groups.get(k).map_or((0, 0), |g| (g.count, g.amount));
        for g in self.groups.iter_mut().take(self.deepest.max(k) + 1).skip(k) {
            *g = Group::default();
        }
        got
    }
}

fn check_990(
    count: u64,
    sum: i64,
    level: u8,
    body: &[u8],
    mut report: impl FnMut(&'static str, FindingKind, String),
) {
    let fields = E990.fields;
    let (Some(fc), Some(fa), Some(fs)) = (fields.get(3), fields.get(4), fields.get(5)) else {
        return;
    };
    match body.get(fc.range()).and_then(parse_digits) {
        Some(stated) if stated != count => report(
            "count",
            FindingKind::ControlCount,
            format!(
                "990 closing level {level:02} counts {stated} entities of the level directly below, found {count}"
            ),
        ),
        _ => {}
    }
    if let Ok(stated) = signed_amount(body, fa, Some(fs))
        && stated != sum
    {
        report(
            "amount_total",
            FindingKind::ControlSum,
            format!("990 closing level {level:02} sums {stated} cents, found {sum}"),
        );
    }
}

/// A validation plan precomputed from a layout: the byte ranges that must be digits (merged),
/// the fixed values to compare (level), the sign positions.
struct Plan {
    digits: Vec<std::ops::Range<usize>>,
    fixed: Vec<(std::ops::Range<usize>, &'static [u8])>,
    signs: Vec<usize>,
    len: usize,
}

fn plan(l: &Layout) -> Plan {
    let mut digits: Vec<std::ops::Range<usize>> = Vec::new();
    let mut fixed = Vec::new();
    let mut signs = Vec::new();
    for f in l.fields {
        if f.name == "end" || f.name == "type" {
            continue;
        }
        if let Some(v) = f.fixed {
            fixed.push((f.range(), v.as_bytes()));
        } else if f.kind == Kind::Digits {
            let r = f.range();
            match digits.last_mut() {
                Some(last) if last.end == r.start => last.end = r.end,
                _ => digits.push(r),
            }
        } else if f.name.ends_with("sign") {
            signs.push(f.range().start);
        }
    }
    Plan {
        digits,
        fixed,
        signs,
        len: l.len - 1,
    }
}

fn plans() -> &'static [Option<Plan>] {
    static PLANS: std::sync::OnceLock<Vec<Option<Plan>>> = std::sync::OnceLock::new();
    PLANS.get_or_init(|| {
        (0u16..1000)
            .map(|c| layouts::entity_layout(c).map(plan))
            .collect()
    })
}

/// All bytes are ASCII digits; 8 bytes at a time (SWAR) for the long runs of amounts.
fn all_digits(b: &[u8]) -> bool {
    const HI: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const ZERO: u64 = 0x3030_3030_3030_3030;
    const SIX: u64 = 0x0606_0606_0606_0606;
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let x = u64::from_le_bytes(w);
        // High nibble 3 for every byte, and adding 6 does not carry into it (low nibble <= 9).
        if x & HI != ZERO || (x.wrapping_add(SIX)) & HI != ZERO {
            return false;
        }
    }
    chunks.remainder().iter().all(u8::is_ascii_digit)
}

/// True when the entity is certainly valid (full length, all digits where digits go, fixed
/// values and signs right); false sends it to [`validate_fields`] for precise findings.
fn fast_valid(code: u16, body: &[u8]) -> bool {
    let Some(Some(p)) = plans().get(usize::from(code)) else {
        return false;
    };
    if body.len() != p.len {
        return false;
    }
    p.digits
        .iter()
        .all(|r| body.get(r.clone()).is_some_and(all_digits))
        && p.fixed.iter().all(|(r, v)| body.get(r.clone()) == Some(v))
        && p.signs
            .iter()
            .all(|&i| matches!(body.get(i), Some(b'P' | b'N' | b' ')))
}

/// Check digits, fixed values and mandatory digits of one entity (text is free, NUL tolerated).
fn validate_fields(l: &Layout, body: &[u8], mut report: impl FnMut(&'static Field, String)) {
    for f in l.fields {
        if f.name == "end" {
            continue;
        }
        let r = f.range();
        let Some(raw) = body.get(r) else {
            if f.req == Req::Mandatory {
                report(f, "missing: the entity ends before this field".into());
            }
            continue;
        };
        if let Some(fixed) = f.fixed {
            if raw != fixed.as_bytes() {
                report(f, format!("expected {fixed:?}, found {:?}", latin1(raw)));
            }
            continue;
        }
        if f.kind == Kind::Digits && !raw.iter().all(u8::is_ascii_digit) {
            let blank = raw.iter().all(|&b| b == b' ' || b == 0);
            if !blank {
                report(f, format!("not digits: {:?}", latin1(raw)));
            } else if f.req == Req::Mandatory {
                report(f, "mandatory but blank".into());
            }
        }
        if f.name.ends_with("sign") && !matches!(raw, b"P" | b"N" | b" " | b"\0") {
            report(f, format!("sign is {:?}, expected P or N", latin1(raw)));
        }
    }
}

/// A sender or recipient number: digits, left-padded with zeros or spaces (both are found in
/// real files). `None` when blank or not digits.
fn padded_number(raw: &[u8]) -> Option<u64> {
    let start = raw.iter().position(|&b| b != b' ')?;
    raw.get(start..).and_then(parse_digits)
}

/// Header and trailer checks of one file, and the `999` totals against the entities.
fn check_file(file: &NoemieFile, sink: &mut Sink) {
    let mut push = |severity: Severity,
                    offset: usize,
                    code: &str,
                    field: Option<&'static str>,
                    kind: FindingKind,
                    message: String| {
        sink.push(Finding {
            severity,
            file: file.index,
            entity: None,
            offset,
            code: Some(code.into()),
            field,
            kind,
            message,
        })
    };
    check_header(file, &mut push);
    check_trailer(file, &mut push);
    check_totals(file, &mut push);
}

/// How the checks of a file's header and trailer report: severity, input offset, record
/// (`000` / `999`), field, kind, message.
trait Report: FnMut(Severity, usize, &str, Option<&'static str>, FindingKind, String) {}
impl<F: FnMut(Severity, usize, &str, Option<&'static str>, FindingKind, String)> Report for F {}

/// A sender number field that fails the layout's digits check only because it is left-padded
/// with spaces, which real files do: not a finding.
fn padded_sender(rec: &[u8], e: &crate::layout::FieldError) -> bool {
    e.field == "sender_number" && rec.get(5..19).and_then(padded_number).is_some()
}

/// The `000` header field by field, and its currency unit.
fn check_header(file: &NoemieFile, push: &mut impl Report) {
    for e in H000.check(&file.header) {
        // The currency has its own single check below.
        if e.field == "currency" || padded_sender(&file.header, &e) {
            continue;
        }
        let at = file.offset + e.from as usize - 1;
        push(
            Severity::Error,
            at,
            "000",
            Some(e.field),
            FindingKind::Header,
            e.to_string(),
        );
    }
    let at = file.offset + 69;
    match file.header.get(69) {
        Some(b'U') => {}
        Some(b' ') | None => push(
            Severity::Warning,
            at,
            "000",
            Some("currency"),
            FindingKind::Header,
            "currency unit is blank; amounts are read as euro cents".into(),
        ),
        Some(&c) => push(
            Severity::Error,
            at,
            "000",
            Some("currency"),
            FindingKind::Header,
            format!("currency unit is {:?}, not `U` (euro)", char::from(c)),
        ),
    }
}

/// The `999` trailer field by field, and the identification it must repeat from the header
/// (numbers compared as numbers: zero- or space-padded are the same).
fn check_trailer(file: &NoemieFile, push: &mut impl Report) {
    let toff = file.trailer_offset;
    for e in T999.check(&file.trailer) {
        if padded_sender(&file.trailer, &e) {
            continue;
        }
        let at = toff + e.from as usize - 1;
        push(
            Severity::Error,
            at,
            "999",
            Some(e.field),
            FindingKind::TrailerHeader,
            e.to_string(),
        );
    }
    for name in [
        "sender_type",
        "sender_number",
        "recipient_type",
        "recipient_number",
        "file_id",
    ] {
        let (Some(hf), Some(tf)) = (H000.field(name), T999.field(name)) else {
            continue;
        };
        let (h, t) = (hf.raw(&file.header), tf.raw(&file.trailer));
        let same = h == t
            || name.ends_with("_number")
                && h.and_then(padded_number).is_some()
                && h.and_then(padded_number) == t.and_then(padded_number);
        if !same {
            let at = toff + tf.from as usize - 1;
            let msg = format!("trailer {name} differs from the header's");
            push(
                Severity::Error,
                at,
                "999",
                Some(tf.name),
                FindingKind::TrailerHeader,
                msg,
            );
        }
    }
}

/// The `999` record count, lot count and amount against what the file holds.
fn check_totals(file: &NoemieFile, push: &mut impl Report) {
    let t = &file.totals;
    let toff = file.trailer_offset;
    let num = |name: &str| {
        T999.field(name)
            .and_then(|f| f.raw(&file.trailer))
            .and_then(parse_digits)
    };
    if let Some(stated) = num("record_count")
        && stated != t.records
    {
        let (severity, message) = if stated == t.entities {
            (
                Severity::Warning,
                format!(
                    "trailer counts the {stated} entities, not the {} physical records (header, data, trailer)",
                    t.records
                ),
            )
        } else {
            (
                Severity::Error,
                format!(
                    "trailer counts {stated} records, the file has {} physical records (header, data, trailer)",
                    t.records
                ),
            )
        };
        push(
            severity,
            toff + 55,
            "999",
            Some("record_count"),
            FindingKind::TrailerCount,
            message,
        );
    }
    if let Some(stated) = num("lot_count")
        && stated != t.lots
    {
        let msg = format!(
            "trailer counts {stated} lots, the file holds {} 080 entities",
            t.lots
        );
        push(
            Severity::Error,
            toff + 82,
            "999",
            Some("lot_count"),
            FindingKind::TrailerLots,
            msg,
        );
    }
    if let (Some(a), Some(s)) = (T999.field("amount_total"), T999.field("amount_sign"))
        && let Ok(stated) = signed_amount(&file.trailer, a, Some(s))
        && stated != t.amount
    {
        let msg = format!("trailer sums {stated} cents, the entities sum {}", t.amount);
        push(
            Severity::Error,
            toff + 85,
            "999",
            Some("amount_total"),
            FindingKind::TrailerSum,
            msg,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_digits_matches_the_naive_check() {
        for len in [0usize, 1, 7, 8, 9, 16, 17] {
            for pos in 0..len {
                for b in 0..=255u8 {
                    let mut v = vec![b'5'; len];
                    v[pos] = b;
                    assert_eq!(
                        all_digits(&v),
                        v.iter().all(u8::is_ascii_digit),
                        "{len} {pos} {b}"
                    );
                }
            }
        }
        assert!(all_digits(b"0123456789012345678"));
    }

    #[test]
    fn iso_dates_match_the_formatter() {
        for (y, m, d) in [
            (2026, 11, 20),
            (1928, 1, 1),
            (2000, 2, 29),
            (999, 12, 31),
            (9999, 9, 9),
        ] {
            assert_eq!(iso_date(y, m, d), format!("{y:04}-{m:02}-{d:02}"));
        }
    }

    #[test]
    fn two_digit_years_take_the_century_before_the_file() {
        assert_eq!(
            decode_date(b"261120", DateFormat::Yymmdd, 2026).as_deref(),
            Some("2026-11-20")
        );
        assert_eq!(
            decode_date(b"270101", DateFormat::Yymmdd, 2026).as_deref(),
            Some("2027-01-01")
        );
        assert_eq!(
            decode_date(b"280101", DateFormat::Yymmdd, 2026).as_deref(),
            Some("1928-01-01")
        );
        assert_eq!(
            decode_date(b"150385", DateFormat::Ddmmyy, 2026).as_deref(),
            Some("1985-03-15")
        );
        assert_eq!(
            decode_date(b"290224", DateFormat::Ddmmyy, 2026).as_deref(),
            Some("2024-02-29")
        );
        assert_eq!(decode_date(b"290223", DateFormat::Ddmmyy, 2026), None);
        assert_eq!(
            decode_date(b"20261120", DateFormat::Yyyymmdd, 2026).as_deref(),
            Some("2026-11-20")
        );
        assert_eq!(decode_date(b"2611", DateFormat::Yymmdd, 2026), None);
        assert_eq!(decode_date(b"26 120", DateFormat::Yymmdd, 2026), None);
    }
}
