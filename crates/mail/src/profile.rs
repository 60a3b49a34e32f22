//! Message profiles: which headers a message of each flow carries, how to build it, and how to
//! parse and check one.
//!
//! Two profiles are public: the PS → OCT invoice file (R5: `FACTURE/SV`, `/K`, `/ZK`) and the
//! OCT → PS text receipt (R6.2: `ART/XX`). The others (DRE file, ARL, RSP, dLOI request, dLOI
//! increments) are **provisional** and live in one table, [`Profile`], documented in
//! `docs/formats/messages.md`.
//!
//! Shape (provisional, formats.md §3): one single-part message whose body *is* the file,
//! `Content-Type: Application/EDI-consent; name="..."`, base64. The parser accepts both a
//! single-part message and a `multipart/mixed` one whose file part carries the headers.
//!
//! The parser tells which profile a message is and checks it: subject shape against the
//! Content-Description, attachment state (CMS envelope or not, compressed or not) against the
//! `K`/`ZK` sub-field, and, through [`FileFacts`], the subject's invoice count and `exercice`
//! against the file itself.

mod b2_facts;
mod inspect;

pub use b2_facts::B2Facts;
pub use inspect::{Finding, MessageReport, Severity, fuzz_message, inspect_message};

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use mail_parser::{HeaderName, MessageParser, MimeHeaders};
use time::OffsetDateTime;

use crate::cms::{self, CmsCipher, CmsError, PrivateKeyAndCert, RecipientCert};
use crate::compress::{self, CompressError, Compression};
use crate::subject::{FileKind, PartyNumber, ReturnKind, Subject, SubjectError};

/// The Content-Type of every profile, in the annex's case (R5.4, R6.2).
pub const CONTENT_TYPE: &str = "Application/EDI-consent";

/// The Content-Transfer-Encoding written, in the annex's case (R6.2).
pub const TRANSFER_ENCODING: &str = "BASE64";

/// Longest header value accepted in configuration (addresses, names, file names).
pub const MAX_HEADER_VALUE: usize = 256;

/// PS categories of the ART Content-Description (R6.2 table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
pub enum PsCategory {
    /// `IF`: nurses.
    If,
    /// `MK`: physiotherapists.
    Mk,
    /// `OO`: speech therapists.
    Oo,
    /// `OY`: orthoptists.
    Oy,
    /// `PE`: chiropodists.
    Pe,
    /// `LB`: biology laboratories.
    Lb,
    /// `PH`: pharmacists.
    Ph,
    /// `FR`: LPP products delivered by an approved professional.
    Fr,
    /// `ER`: general practitioners and specialists, dentists, midwives.
    Er,
    /// `CP`: private clinics and hospitals.
    Cp,
    /// `CS`: health centres.
    Cs,
    /// `CT`: spa centres.
    Ct,
    /// `XX`: the default, valid for any category.
    #[default]
    Xx,
}

impl PsCategory {
    /// Every category with its code, in the annex's order.
    pub const ALL: [(PsCategory, &'static str); 13] = [
        (PsCategory::If, "IF"),
        (PsCategory::Mk, "MK"),
        (PsCategory::Oo, "OO"),
        (PsCategory::Oy, "OY"),
        (PsCategory::Pe, "PE"),
        (PsCategory::Lb, "LB"),
        (PsCategory::Ph, "PH"),
        (PsCategory::Fr, "FR"),
        (PsCategory::Er, "ER"),
        (PsCategory::Cp, "CP"),
        (PsCategory::Cs, "CS"),
        (PsCategory::Ct, "CT"),
        (PsCategory::Xx, "XX"),
    ];

    /// The two-letter code.
    pub fn code(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(c, _)| *c == self)
            .map(|(_, s)| *s)
            .unwrap_or("XX")
    }

    /// From the two-letter code (exact upper case).
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.iter().find(|(_, s)| *s == code).map(|(c, _)| *c)
    }
}

/// Which flow a message carries. The Content-Description and subject of each are in
/// [`Profile::description_base`] and [`Profile::subject_matches`]: that is the one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// PS → OCT invoice file: `FACTURE/SV` (public, R5) or `FACTURE/DR` (DRE only, provisional).
    Invoice(FileKind),
    /// OCT → PS text receipt `ART/XX` (public, R6.2).
    Art(PsCategory),
    /// OCT → PS ARL file (provisional).
    Arl,
    /// OCT → PS RSP (NOEMIE) file (provisional).
    Rsp,
    /// PS → OCT dLOI request (provisional).
    DloiRequest,
    /// OCT → PS dLOI increment file (provisional).
    DloiIncrement,
}

impl Profile {
    /// The Content-Description without the `K`/`ZK` sub-field.
    pub fn description_base(self) -> String {
        match self {
            Profile::Invoice(FileKind::Fse) => "FACTURE/SV".to_owned(),
            Profile::Invoice(FileKind::Dre) => "FACTURE/DR".to_owned(),
            Profile::Art(c) => format!("ART/{}", c.code()),
            Profile::Arl => "ARL".to_owned(),
            Profile::Rsp => "RSP".to_owned(),
            Profile::DloiRequest => "LOI/DEMANDE".to_owned(),
            Profile::DloiIncrement => "LOI/INCREMENT".to_owned(),
        }
    }

    /// Whether the attachment may be encrypted (`/K`, `/ZK`). The ART envelope is fixed by the
    /// annex with no such sub-field.
    pub fn allows_protection(self) -> bool {
        !matches!(self, Profile::Art(_))
    }

    /// Whether `subject` has the shape this profile uses.
    pub fn subject_matches(self, subject: &Subject) -> bool {
        match (self, subject) {
            (Profile::Invoice(k), Subject::Invoice(s)) => s.kind == k,
            (Profile::Art(_), Subject::Return(r)) => r.kind == ReturnKind::Art,
            (Profile::Arl, Subject::Return(r)) => r.kind == ReturnKind::Arl,
            (Profile::Rsp, Subject::Return(r)) => r.kind == ReturnKind::Rsp,
            (Profile::DloiIncrement, Subject::Return(r)) => r.kind == ReturnKind::LoiIncrement,
            (Profile::DloiRequest, Subject::DloiRequest(_)) => true,
            _ => false,
        }
    }
}

/// The state of the attachment that the Content-Description's third sub-field announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
pub enum Protection {
    /// No sub-field: the file as it is.
    #[default]
    Plain,
    /// `K`: CMS EnvelopedData.
    Encrypted,
    /// `ZK`: compressed, then CMS EnvelopedData.
    CompressedEncrypted,
}

impl Protection {
    fn suffix(self) -> &'static str {
        match self {
            Protection::Plain => "",
            Protection::Encrypted => "/K",
            Protection::CompressedEncrypted => "/ZK",
        }
    }
}

/// A Content-Description: profile plus protection, e.g. `FACTURE/SV/ZK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentDescription {
    pub profile: Profile,
    pub protection: Protection,
}

impl fmt::Display for ContentDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}",
            self.profile.description_base(),
            self.protection.suffix()
        )
    }
}

impl FromStr for ContentDescription {
    type Err = ProfileError;

    /// Exact match against the table (surrounding blanks ignored, case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let up = s.trim().to_ascii_uppercase();
        let (base, protection) = if let Some(b) = up.strip_suffix("/ZK") {
            (b, Protection::CompressedEncrypted)
        } else if let Some(b) = up.strip_suffix("/K") {
            (b, Protection::Encrypted)
        } else {
            (up.as_str(), Protection::Plain)
        };
        let profile = match base {
            "FACTURE/SV" => Profile::Invoice(FileKind::Fse),
            "FACTURE/DR" => Profile::Invoice(FileKind::Dre),
            "ARL" => Profile::Arl,
            "RSP" => Profile::Rsp,
            "LOI/DEMANDE" => Profile::DloiRequest,
            "LOI/INCREMENT" => Profile::DloiIncrement,
            other => match other.strip_prefix("ART/").and_then(PsCategory::from_code) {
                Some(c) => Profile::Art(c),
                None => return Err(ProfileError::UnknownContentDescription { value: shown(s) }),
            },
        };
        if protection != Protection::Plain && !profile.allows_protection() {
            return Err(ProfileError::UnknownContentDescription { value: shown(s) });
        }
        Ok(Self { profile, protection })
    }
}

/// Why a message could not be built, parsed or opened.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("configured {header} value is refused: {reason}")]
    HeaderValue { header: &'static str, reason: String },
    #[error("subject {subject:?} does not fit profile {profile}")]
    SubjectProfileMismatch { subject: String, profile: String },
    #[error("message is {len} bytes, more than the {max} accepted")]
    MessageTooLarge { len: usize, max: usize },
    #[error("not a MIME message (no header section)")]
    NotAMessage,
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("unknown Content-Description {value:?}")]
    UnknownContentDescription { value: String },
    #[error("Content-Type is {value:?}, expected Application/EDI-consent")]
    WrongContentType { value: String },
    #[error("multipart message holds no file part (Application/EDI-consent or Content-Description)")]
    NoFilePart,
    #[error("multipart message holds {count} file parts, expected one")]
    SeveralFileParts { count: usize },
    #[error("Content-Transfer-Encoding {value:?} is not supported (expected base64)")]
    TransferEncoding { value: String },
    #[error("body is not base64: byte {byte:#04x} at offset {offset} of the body")]
    NotBase64 { offset: usize, byte: u8 },
    #[error("body is not valid base64: {reason}")]
    BadBase64 { reason: String },
    #[error("attachment is empty")]
    EmptyAttachment,
    #[error("subject: {0}")]
    Subject(#[from] SubjectError),
    #[error("Content-Description {description} announces {expected}, but the attachment {found}")]
    AttachmentState {
        description: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("subject says {subject} invoices, the file holds {file}")]
    InvoiceCountMismatch { subject: u32, file: u32 },
    #[error("subject exercice {subject:?} is not the file's sender number {file:?}")]
    ExerciceMismatch { subject: String, file: String },
    #[error("the attachment is encrypted and no private key was given")]
    KeyRequired,
    #[error("attachment encryption: {0}")]
    Cms(#[from] CmsError),
    #[error("attachment compression: {0}")]
    Compress(#[from] CompressError),
}

fn shown(value: &str) -> String {
    let mut out: String = value.chars().take(60).collect();
    if out.len() < value.len() {
        out.push_str("...");
    }
    out
}

/// Refuses header values that could inject headers or break the line (CR, LF, other controls).
fn check_header_value(header: &'static str, value: &str) -> Result<(), ProfileError> {
    if value.len() > MAX_HEADER_VALUE {
        return Err(ProfileError::HeaderValue {
            header,
            reason: format!("longer than {MAX_HEADER_VALUE} bytes"),
        });
    }
    if let Some(pos) = value.chars().position(char::is_control) {
        return Err(ProfileError::HeaderValue {
            header,
            reason: format!("control character (CR, LF, ...) at character {pos}"),
        });
    }
    Ok(())
}

/// A configured mailbox (`From`, `To`), checked against header injection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    name: Option<String>,
    address: String,
}

impl Mailbox {
    /// An address `local@domain`: printable ASCII, no blanks, no `<>()",;:\[]`, one `@`.
    pub fn new(address: &str) -> Result<Self, ProfileError> {
        Self::with_name(None, address)
    }

    /// An address with a display name (any printable Unicode; non-ASCII is RFC 2047 encoded).
    pub fn with_name(name: Option<&str>, address: &str) -> Result<Self, ProfileError> {
        check_header_value("address", address)?;
        let bad = |reason: &str| ProfileError::HeaderValue {
            header: "address",
            reason: format!("{:?}: {reason}", shown(address)),
        };
        if !address
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"<>()\",;:\\[]".contains(&b))
        {
            return Err(bad(
                "only printable ASCII without blanks or <>()\",;:\\[] is allowed",
            ));
        }
        let mut halves = address.split('@');
        let (local, domain) = (halves.next().unwrap_or(""), halves.next().unwrap_or(""));
        if local.is_empty() || domain.is_empty() || halves.next().is_some() {
            return Err(bad("expected exactly one @ between a local part and a domain"));
        }
        if let Some(n) = name {
            check_header_value("display name", n)?;
        }
        Ok(Self {
            name: name.filter(|n| !n.is_empty()).map(str::to_owned),
            address: address.to_owned(),
        })
    }

    /// The bare address.
    pub fn address(&self) -> &str {
        &self.address
    }

    fn domain(&self) -> &str {
        self.address.rsplit('@').next().unwrap_or("svoct.invalid")
    }

    fn header_value(&self) -> String {
        match &self.name {
            None => self.address.clone(),
            Some(n) if n.is_ascii() => {
                let escaped = n.replace('\\', "\\\\").replace('"', "\\\"");
                format!("\"{escaped}\" <{}>", self.address)
            }
            Some(n) => format!(
                "=?UTF-8?B?{}?= <{}>",
                base64::engine::general_purpose::STANDARD.encode(n.as_bytes()),
                self.address
            ),
        }
    }
}

/// Everything a message needs besides the file: what [`build_message`] writes as its headers
/// (From, To, Subject, Date, Message-ID, and the profile and file name of the Content-* ones).
/// Not the SMTP envelope, which is [`crate::transport::SmtpEnvelope`].
#[derive(Debug, Clone)]
pub struct MessageHeaders {
    pub from: Mailbox,
    pub to: Mailbox,
    pub subject: Subject,
    pub profile: Profile,
    /// The attachment's name (`name=` parameter); printable ASCII, no quotes or backslashes.
    pub file_name: String,
    pub date: OffsetDateTime,
    /// Without angle brackets; generated (random, at the sender's domain) when `None`.
    pub message_id: Option<String>,
}

/// How to protect the attachment on output.
#[derive(Debug, Clone, Copy, Default)]
pub enum Protect<'a> {
    /// Send the file as it is (`FACTURE/SV`).
    #[default]
    None,
    /// Encrypt for these certificates (`/K`), or compress then encrypt (`/ZK`).
    Encrypt {
        recipients: &'a [RecipientCert],
        cipher: CmsCipher,
        compress: bool,
    },
}

fn check_file_name(name: &str) -> Result<(), ProfileError> {
    check_header_value("file name", name)?;
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        return Err(ProfileError::HeaderValue {
            header: "file name",
            reason: "must be non-empty printable ASCII without quotes or backslashes".to_owned(),
        });
    }
    Ok(())
}

fn random_id(domain: &str) -> String {
    let mut buf = [0u8; 12];
    let hex: String = match openssl::rand::rand_bytes(&mut buf) {
        Ok(()) => buf.iter().map(|b| format!("{b:02x}")).collect(),
        Err(_) => format!("{:x}", OffsetDateTime::now_utc().unix_timestamp_nanos()),
    };
    format!("{hex}.svoct@{domain}")
}

/// Base64 with 76-character CRLF lines (RFC 2045), encoded straight into `out`.
fn base64_lines(data: &[u8], out: &mut Vec<u8>) {
    let engine = &base64::engine::general_purpose::STANDARD;
    let lines = data.len().div_ceil(57);
    let start = out.len();
    out.resize(start + lines * 78, 0);
    let mut at = start;
    for chunk in data.chunks(57) {
        let line = out.get_mut(at..at + 76).unwrap_or_default();
        let n = engine.encode_slice(chunk, line).unwrap_or(0);
        at += n;
        if let Some(end) = out.get_mut(at..at + 2) {
            end.copy_from_slice(b"\r\n");
        }
        at += 2;
    }
    out.truncate(at);
}

/// Builds a complete message (CRLF line ends, ready for SMTP `DATA`) carrying `file`, protected
/// as asked; the Content-Description follows from the profile and the protection.
pub fn build_message(
    headers: &MessageHeaders,
    file: &[u8],
    protect: Protect<'_>,
) -> Result<Vec<u8>, ProfileError> {
    let profile = headers.profile;
    if !profile.subject_matches(&headers.subject) {
        return Err(ProfileError::SubjectProfileMismatch {
            subject: headers.subject.to_string(),
            profile: profile.description_base(),
        });
    }
    check_file_name(&headers.file_name)?;
    if matches!(profile, Profile::Art(_)) && !headers.file_name.to_ascii_lowercase().ends_with(".txt") {
        return Err(ProfileError::HeaderValue {
            header: "file name",
            reason: "the ART text file is named <file name>.txt (R6.2)".to_owned(),
        });
    }
    if let Some(id) = &headers.message_id {
        check_header_value("Message-ID", id)?;
        if id.contains(['<', '>', ' ']) || !id.contains('@') {
            return Err(ProfileError::HeaderValue {
                header: "Message-ID",
                reason: "expected left@right without brackets or blanks".to_owned(),
            });
        }
    }
    let (protection, body) = match protect {
        Protect::None => (Protection::Plain, file.to_vec()),
        Protect::Encrypt {
            recipients,
            cipher,
            compress,
        } => {
            if !profile.allows_protection() {
                return Err(ProfileError::HeaderValue {
                    header: "Content-Description",
                    reason: format!("profile {} is never encrypted", profile.description_base()),
                });
            }
            if compress {
                let z = compress::compress(file)?;
                (
                    Protection::CompressedEncrypted,
                    cms::encrypt(&z, recipients, cipher)?,
                )
            } else {
                (Protection::Encrypted, cms::encrypt(file, recipients, cipher)?)
            }
        }
    };
    let description = ContentDescription { profile, protection };
    let date = headers
        .date
        .format(&time::format_description::well_known::Rfc2822)
        .map_err(|e| ProfileError::HeaderValue {
            header: "Date",
            reason: e.to_string(),
        })?;
    let message_id = headers
        .message_id
        .clone()
        .unwrap_or_else(|| random_id(headers.from.domain()));
    let mut out = Vec::with_capacity(body.len() * 4 / 3 + body.len() / 38 + 1024);
    let lines = [
        ("From", headers.from.header_value()),
        ("To", headers.to.header_value()),
        ("Subject", headers.subject.to_string()),
        ("Date", date),
        ("Message-ID", format!("<{message_id}>")),
        ("MIME-Version", "1.0".to_owned()),
        (
            "Content-Type",
            format!("{CONTENT_TYPE}; name=\"{}\"", headers.file_name),
        ),
        ("Content-Transfer-Encoding", TRANSFER_ENCODING.to_owned()),
        ("Content-Description", description.to_string()),
        (
            "Content-Disposition",
            format!("attachment; filename=\"{}\"", headers.file_name),
        ),
    ];
    for (name, value) in lines {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    base64_lines(&body, &mut out);
    Ok(out)
}

/// Bounds applied when parsing and opening messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseLimits {
    /// Largest raw message accepted.
    pub max_message_bytes: usize,
    /// Largest decompressed attachment.
    pub max_decompressed: u64,
}

impl Default for ParseLimits {
    fn default() -> Self {
        Self {
            max_message_bytes: 96 * 1024 * 1024,
            max_decompressed: compress::DEFAULT_MAX_DECOMPRESSED,
        }
    }
}

/// The facts of the attached file that the subject must agree with (from the B2 parser, or
/// given by hand): kept as a trait so this crate does not depend on the B2 internals.
pub trait FileFacts {
    /// Number of invoices in the file (type 2 records).
    fn invoice_count(&self) -> u32;
    /// The file's sender number (B2 `000` positions 6-19), spaces allowed around it.
    fn sender_number(&self) -> &str;
}

/// [`FileFacts`] as plain values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainFileFacts {
    pub invoice_count: u32,
    pub sender_number: String,
}

impl FileFacts for PlainFileFacts {
    fn invoice_count(&self) -> u32 {
        self.invoice_count
    }
    fn sender_number(&self) -> &str {
        &self.sender_number
    }
}

/// Header values as found, before validation (also what the inspector reports).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RawHeaders {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_transfer_encoding: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
}

/// The file part found in a message, with its body decoded from the transfer encoding.
struct Extracted {
    headers: RawHeaders,
    multipart: bool,
    /// `Err` when the body is not valid base64.
    body: Result<Vec<u8>, ProfileError>,
    content_type_ok: bool,
}

/// The file part's body as found in the message, before it is decoded.
enum FoundBody {
    /// Base64 at this range of the message.
    Base64(std::ops::Range<usize>),
    /// 7bit, 8bit or binary: the file is this range of the message.
    Plain(std::ops::Range<usize>),
    /// Quoted-printable, decoded by mail-parser.
    Decoded(Vec<u8>),
    Bad(ProfileError),
}

impl FoundBody {
    /// The body decoded into a new buffer (the message is borrowed).
    fn decode(self, raw: &[u8]) -> Result<Vec<u8>, ProfileError> {
        match self {
            FoundBody::Base64(r) => decode_base64(raw.get(r).unwrap_or_default()),
            FoundBody::Plain(r) => Ok(raw.get(r).unwrap_or_default().to_vec()),
            FoundBody::Decoded(v) => Ok(v),
            FoundBody::Bad(e) => Err(e),
        }
    }

    /// The body decoded inside the message's own buffer, which becomes the file.
    fn decode_owned(self, mut raw: Vec<u8>) -> Result<Vec<u8>, ProfileError> {
        match self {
            FoundBody::Base64(r) => decode_base64_in_place(&mut raw, r, BASE64_CHUNK).map(|()| raw),
            FoundBody::Plain(r) => {
                raw.truncate(r.end.min(raw.len()));
                raw.drain(..r.start.min(raw.len()));
                Ok(raw)
            }
            FoundBody::Decoded(v) => Ok(v),
            FoundBody::Bad(e) => Err(e),
        }
    }
}

fn raw_header_text(raw: &[u8], h: &mail_parser::Header<'_>) -> Option<String> {
    let from = usize::try_from(h.offset_start).ok()?;
    let to = usize::try_from(h.offset_end).ok()?;
    let bytes = raw.get(from..to)?;
    let text = String::from_utf8_lossy(bytes);
    // Unfold and trim.
    let unfolded: String = text.replace("\r\n", "").replace('\n', "");
    Some(unfolded.trim().to_owned())
}

/// Strict base64 decoding of a body: whitespace is skipped, anything else outside the alphabet
/// is an error that names its offset.
fn decode_base64(body: &[u8]) -> Result<Vec<u8>, ProfileError> {
    decode_base64_chunked(body, BASE64_CHUNK)
}

/// Characters of base64 decoded at a time (a multiple of 4).
const BASE64_CHUNK: usize = 64 * 1024;

/// [`decode_base64`], a chunk of `chunk` characters at a time: the body without its line
/// breaks never exists whole beside the output (for a 48 MB return, 48 MB less at the peak of
/// `ps fetch`). Padding ends the data: base64 after a padded chunk is an error, as it is inside
/// one.
fn decode_base64_chunked(body: &[u8], chunk: usize) -> Result<Vec<u8>, ProfileError> {
    let mut dec = Base64Chunks::new(chunk);
    let mut out = Vec::with_capacity(body.len() / 4 * 3);
    let mut at = 0;
    while at < body.len() {
        at += dec.fill(body.get(at..).unwrap_or_default(), at)?;
        dec.flush_if_full(&mut out)?;
    }
    dec.flush(&mut out)?;
    Ok(out)
}

/// Decodes the base64 body at `body` of `buf` inside `buf` itself: the decoded bytes are
/// written from the start of `buf` (over the headers, then over the base64 already read, which
/// is always ahead: 4 characters give at most 3 bytes), and `buf` is cut to them. A received
/// message thus becomes its file without a second buffer of the file's size.
fn decode_base64_in_place(
    buf: &mut Vec<u8>,
    body: std::ops::Range<usize>,
    chunk: usize,
) -> Result<(), ProfileError> {
    let mut dec = Base64Chunks::new(chunk);
    let mut decoded = Vec::with_capacity(chunk / 4 * 3);
    let (mut read, end, mut written) = (body.start, body.end.min(buf.len()), 0usize);
    while read < end {
        read += dec.fill(buf.get(read..end).unwrap_or_default(), read - body.start)?;
        decoded.clear();
        if read == end {
            dec.flush(&mut decoded)?;
        } else {
            dec.flush_if_full(&mut decoded)?;
        }
        // `written + decoded.len() <= read`: never over base64 still to be read.
        if let Some(dst) = buf.get_mut(written..written + decoded.len()) {
            dst.copy_from_slice(&decoded);
        }
        written += decoded.len();
    }
    buf.truncate(written);
    buf.shrink_to_fit();
    Ok(())
}

/// Strict base64, gathered a chunk of clean characters (line breaks and blanks left out) at a
/// time: what [`decode_base64_chunked`] and [`decode_base64_in_place`] share.
struct Base64Chunks {
    engine: base64::engine::GeneralPurpose,
    clean: Vec<u8>,
    chunk: usize,
    padded: bool,
}

impl Base64Chunks {
    fn new(chunk: usize) -> Base64Chunks {
        let chunk = (chunk.max(4) / 4) * 4;
        Base64Chunks {
            engine: base64::engine::GeneralPurpose::new(
                &base64::alphabet::STANDARD,
                base64::engine::GeneralPurposeConfig::new()
                    .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
            ),
            clean: Vec::with_capacity(chunk),
            chunk,
            padded: false,
        }
    }

    /// Takes characters of `input` (at body offset `offset`) until the chunk is full or the
    /// input ends; returns how many bytes of `input` were read.
    fn fill(&mut self, input: &[u8], offset: usize) -> Result<usize, ProfileError> {
        for (i, &b) in input.iter().enumerate() {
            if self.clean.len() == self.chunk {
                return Ok(i);
            }
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' | b'=' => {
                    if self.padded {
                        return Err(ProfileError::BadBase64 {
                            reason: format!("data after the padding, at offset {}", offset + i),
                        });
                    }
                    self.clean.push(b);
                }
                b' ' | b'\t' | b'\r' | b'\n' => {}
                byte => {
                    return Err(ProfileError::NotBase64 {
                        offset: offset + i,
                        byte,
                    });
                }
            }
        }
        Ok(input.len())
    }

    fn flush_if_full(&mut self, out: &mut Vec<u8>) -> Result<(), ProfileError> {
        if self.clean.len() == self.chunk {
            self.padded = self.clean.contains(&b'=');
            self.flush(out)?;
        }
        Ok(())
    }

    /// Decodes the characters gathered so far, appending the bytes to `out`.
    fn flush(&mut self, out: &mut Vec<u8>) -> Result<(), ProfileError> {
        if !self.clean.is_empty() {
            self.engine
                .decode_vec(&self.clean, out)
                .map_err(|e| ProfileError::BadBase64 {
                    reason: e.to_string(),
                })?;
            self.clean.clear();
        }
        Ok(())
    }
}

/// Offset of the body: just after the first empty line at or after `from`.
fn body_start(raw: &[u8], from: usize) -> Option<usize> {
    let tail = raw.get(from..)?;
    let mut i = 0usize;
    while let Some(nl) = tail.get(i..)?.iter().position(|b| *b == b'\n') {
        let at = i + nl + 1;
        match tail.get(at..at.saturating_add(2)) {
            Some([b'\n', _]) => return Some(from + at + 1),
            Some([b'\r', b'\n']) => return Some(from + at + 2),
            _ => {}
        }
        if tail.get(at) == Some(&b'\n') {
            return Some(from + at + 1);
        }
        i = at;
    }
    None
}

fn extract(bytes: &[u8], limits: &ParseLimits) -> Result<Extracted, ProfileError> {
    find_part(bytes, limits).map(|f| f.decoded(|body| body.decode(bytes)))
}

/// The file part of a message, its body not yet decoded.
struct Found {
    headers: RawHeaders,
    multipart: bool,
    body: FoundBody,
    content_type_ok: bool,
}

impl Found {
    fn decoded(self, decode: impl FnOnce(FoundBody) -> Result<Vec<u8>, ProfileError>) -> Extracted {
        Extracted {
            headers: self.headers,
            multipart: self.multipart,
            body: decode(self.body),
            content_type_ok: self.content_type_ok,
        }
    }
}

/// The part that holds the file and where its body lies in the message: the one
/// `Application/EDI-consent` (or described) part of a multipart message, or the message itself.
fn file_part<'m>(
    msg: &'m mail_parser::Message<'m>,
    multipart: bool,
) -> Result<(&'m mail_parser::MessagePart<'m>, std::ops::Range<usize>), ProfileError> {
    let raw = msg.raw_message();
    if !multipart {
        let after_headers = msg
            .headers()
            .iter()
            .map(|h| usize::try_from(h.offset_end).unwrap_or(0))
            .max()
            .unwrap_or(0);
        let start = body_start(raw, after_headers.saturating_sub(2)).unwrap_or(raw.len());
        return Ok((msg.root_part(), start..raw.len()));
    }
    let candidates: Vec<&mail_parser::MessagePart<'_>> = msg
        .parts
        .iter()
        .skip(1)
        .filter(|p| !p.is_multipart())
        .filter(|p| p.is_content_type("application", "edi-consent") || p.content_description().is_some())
        .collect();
    let part = match candidates.as_slice() {
        [] => return Err(ProfileError::NoFilePart),
        [one] => *one,
        many => return Err(ProfileError::SeveralFileParts { count: many.len() }),
    };
    let start = usize::try_from(part.offset_body).unwrap_or(usize::MAX);
    let end = usize::try_from(part.offset_end).unwrap_or(0);
    Ok((part, start..end))
}

/// Finds the file part of a message (single-part or `multipart/mixed`) and reads its headers.
fn find_part(bytes: &[u8], limits: &ParseLimits) -> Result<Found, ProfileError> {
    if bytes.len() > limits.max_message_bytes {
        return Err(ProfileError::MessageTooLarge {
            len: bytes.len(),
            max: limits.max_message_bytes,
        });
    }
    // Headers first: a single-part message (the emitted shape) needs no body parsing by
    // mail-parser, whose own decoding of a large base64 body would be wasted work.
    let parser = MessageParser::default();
    let head = parser.parse_headers(bytes).ok_or(ProfileError::NotAMessage)?;
    if head.headers().is_empty() {
        return Err(ProfileError::NotAMessage);
    }
    let multipart = head
        .root_part()
        .content_type()
        .is_some_and(|c| c.ctype().eq_ignore_ascii_case("multipart"));
    let full;
    let msg = if multipart {
        full = parser.parse(bytes).ok_or(ProfileError::NotAMessage)?;
        &full
    } else {
        &head
    };
    let raw = msg.raw_message();
    let (part, body_range) = file_part(msg, multipart)?;
    let top_text = |name: HeaderName<'_>| {
        msg.headers()
            .iter()
            .find(|h| h.name == name)
            .and_then(|h| raw_header_text(raw, h))
    };
    let part_text = |name: HeaderName<'_>| {
        part.headers
            .iter()
            .find(|h| h.name == name)
            .and_then(|h| raw_header_text(raw, h))
    };
    let headers = RawHeaders {
        from: top_text(HeaderName::From),
        to: top_text(HeaderName::To),
        subject: msg
            .subject()
            .map(str::to_owned)
            .or_else(|| top_text(HeaderName::Subject)),
        date: top_text(HeaderName::Date),
        message_id: msg.message_id().map(str::to_owned),
        content_type: part_text(HeaderName::ContentType),
        content_transfer_encoding: part_text(HeaderName::ContentTransferEncoding),
        content_description: part
            .content_description()
            .or_else(|| msg.content_description())
            .map(|s| s.trim().to_owned()),
        file_name: part.attachment_name().map(str::to_owned),
    };
    let content_type_ok = part.is_content_type("application", "edi-consent");
    let cte = headers
        .content_transfer_encoding
        .as_deref()
        .map(|s| s.trim().to_ascii_lowercase());
    let body = match cte.as_deref() {
        Some("base64") => FoundBody::Base64(body_range),
        None | Some("7bit") | Some("8bit") | Some("binary") => FoundBody::Plain(body_range),
        Some("quoted-printable") if multipart => FoundBody::Decoded(part.contents().to_vec()),
        Some("quoted-printable") => FoundBody::Decoded(
            parser
                .parse(bytes)
                .map(|m| m.root_part().contents().to_vec())
                .unwrap_or_default(),
        ),
        Some(other) => FoundBody::Bad(ProfileError::TransferEncoding { value: shown(other) }),
    };
    Ok(Found {
        headers,
        multipart,
        body,
        content_type_ok,
    })
}

/// A parsed and checked message; the attachment is still as transported (encrypted if `K`).
#[derive(Debug, Clone)]
pub struct ParsedMessage {
    pub description: ContentDescription,
    pub subject: Subject,
    pub headers: RawHeaders,
    pub multipart: bool,
    /// The attachment after transfer decoding (a CMS envelope for `K`/`ZK`).
    pub attachment: Vec<u8>,
}

/// The attachment once decrypted and decompressed.
#[derive(Debug, Clone)]
pub struct OpenedAttachment {
    pub bytes: Vec<u8>,
    /// The content-encryption algorithm the envelope named.
    pub encryption: Option<cms::EnvelopeInfo>,
    pub compression: Option<Compression>,
}

/// Checks that the transported attachment's state agrees with the Content-Description.
fn check_state(description: &ContentDescription, attachment: &[u8]) -> Result<(), ProfileError> {
    let enveloped = cms::is_enveloped(attachment);
    let mismatch = |expected, found| ProfileError::AttachmentState {
        description: description.to_string(),
        expected,
        found,
    };
    match description.protection {
        Protection::Plain if enveloped => Err(mismatch("a plain file", "is a CMS envelope")),
        Protection::Encrypted | Protection::CompressedEncrypted if !enveloped => {
            Err(mismatch("a CMS EnvelopedData", "is not a DER CMS EnvelopedData"))
        }
        _ => Ok(()),
    }
}

/// Parses a message (single-part or `multipart/mixed`), tells its profile and checks it:
/// known Content-Description, Content-Type, subject shape for that profile, base64 body,
/// attachment state against `K`/`ZK`.
pub fn parse_message(bytes: &[u8], limits: &ParseLimits) -> Result<ParsedMessage, ProfileError> {
    checked(extract(bytes, limits)?)
}

/// [`parse_message`] taking the message: its attachment is decoded inside the message's own
/// buffer, which becomes the attachment (a 48 MB return is not held twice, as message and as
/// file).
pub fn parse_message_owned(raw: Vec<u8>, limits: &ParseLimits) -> Result<ParsedMessage, ProfileError> {
    let found = find_part(&raw, limits)?;
    checked(found.decoded(|body| body.decode_owned(raw)))
}

/// The checks of [`parse_message`] on an extracted file part.
fn checked(ex: Extracted) -> Result<ParsedMessage, ProfileError> {
    let cd_text = ex
        .headers
        .content_description
        .as_deref()
        .ok_or(ProfileError::MissingHeader("Content-Description"))?;
    let description: ContentDescription = cd_text.parse()?;
    if !ex.content_type_ok {
        return Err(ProfileError::WrongContentType {
            value: ex.headers.content_type.clone().unwrap_or_default(),
        });
    }
    let subject: Subject = ex
        .headers
        .subject
        .as_deref()
        .ok_or(ProfileError::MissingHeader("Subject"))?
        .parse()?;
    if !description.profile.subject_matches(&subject) {
        return Err(ProfileError::SubjectProfileMismatch {
            subject: subject.to_string(),
            profile: description.to_string(),
        });
    }
    let attachment = ex.body?;
    if attachment.is_empty() {
        return Err(ProfileError::EmptyAttachment);
    }
    check_state(&description, &attachment)?;
    Ok(ParsedMessage {
        description,
        subject,
        headers: ex.headers,
        multipart: ex.multipart,
        attachment,
    })
}

impl ParsedMessage {
    /// The profile name, e.g. `FACTURE/SV/ZK`.
    pub fn profile_name(&self) -> String {
        self.description.to_string()
    }

    /// Decrypts (`K`, `ZK`) and decompresses (`ZK`) the attachment; `key` is needed only when
    /// the attachment is encrypted.
    pub fn open(
        &self,
        key: Option<&PrivateKeyAndCert>,
        limits: &ParseLimits,
    ) -> Result<OpenedAttachment, ProfileError> {
        open_attachment(&self.description, &self.attachment, key, limits)
    }

    /// [`ParsedMessage::open`] consuming the message: a plain attachment is handed over as is
    /// (no copy), an envelope is dropped as soon as it is decrypted. What a large return needs
    /// to hold one copy of its file at a time.
    pub fn into_opened(
        self,
        key: Option<&PrivateKeyAndCert>,
        limits: &ParseLimits,
    ) -> Result<OpenedAttachment, ProfileError> {
        if self.description.protection != Protection::Plain {
            return self.open(key, limits);
        }
        check_state(&self.description, &self.attachment)?;
        Ok(OpenedAttachment {
            bytes: self.attachment,
            encryption: None,
            compression: None,
        })
    }

    /// Checks the subject against the file: invoice count (`nnnnn`) and `exercice` (sender
    /// number, leading zeros and blanks ignored). Only invoice and dLOI subjects carry these.
    pub fn check_file(&self, facts: &dyn FileFacts) -> Result<(), ProfileError> {
        check_subject_against(&self.subject, facts)
    }
}

/// The checks of [`ParsedMessage::check_file`], on a subject alone.
pub fn check_subject_against(subject: &Subject, facts: &dyn FileFacts) -> Result<(), ProfileError> {
    let exercice = match subject {
        Subject::Invoice(s) => {
            if s.invoice_count != facts.invoice_count() {
                return Err(ProfileError::InvoiceCountMismatch {
                    subject: s.invoice_count,
                    file: facts.invoice_count(),
                });
            }
            &s.exercice
        }
        Subject::DloiRequest(s) => &s.exercice,
        Subject::Return(_) => return Ok(()),
    };
    let same = PartyNumber::new(facts.sender_number()).is_ok_and(|n| n.same_as(exercice));
    if !same {
        return Err(ProfileError::ExerciceMismatch {
            subject: exercice.to_string(),
            file: shown(facts.sender_number().trim()),
        });
    }
    Ok(())
}

fn open_attachment(
    description: &ContentDescription,
    attachment: &[u8],
    key: Option<&PrivateKeyAndCert>,
    limits: &ParseLimits,
) -> Result<OpenedAttachment, ProfileError> {
    check_state(description, attachment)?;
    match description.protection {
        Protection::Plain => Ok(OpenedAttachment {
            bytes: attachment.to_vec(),
            encryption: None,
            compression: None,
        }),
        Protection::Encrypted | Protection::CompressedEncrypted => {
            let key = key.ok_or(ProfileError::KeyRequired)?;
            let info = cms::envelope_info(attachment)?;
            let clear = cms::decrypt(attachment, key)?;
            if description.protection == Protection::Encrypted {
                return Ok(OpenedAttachment {
                    bytes: clear,
                    encryption: Some(info),
                    compression: None,
                });
            }
            let (format, bytes) = match compress::decompress(&clear, limits.max_decompressed) {
                Err(CompressError::NotCompressed) => {
                    return Err(ProfileError::AttachmentState {
                        description: description.to_string(),
                        expected: "compressed content inside the envelope",
                        found: "decrypts to uncompressed data",
                    });
                }
                other => other?,
            };
            Ok(OpenedAttachment {
                bytes,
                encryption: Some(info),
                compression: Some(format),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn description_table_round_trips() {
        let mut all = vec![
            Profile::Invoice(FileKind::Fse),
            Profile::Invoice(FileKind::Dre),
            Profile::Arl,
            Profile::Rsp,
            Profile::DloiRequest,
            Profile::DloiIncrement,
        ];
        all.extend(PsCategory::ALL.iter().map(|(c, _)| Profile::Art(*c)));
        for p in all {
            for prot in [
                Protection::Plain,
                Protection::Encrypted,
                Protection::CompressedEncrypted,
            ] {
                let cd = ContentDescription {
                    profile: p,
                    protection: prot,
                };
                let text = cd.to_string();
                if p.allows_protection() || prot == Protection::Plain {
                    assert_eq!(text.parse::<ContentDescription>().unwrap(), cd, "{text}");
                } else {
                    assert!(text.parse::<ContentDescription>().is_err(), "{text}");
                }
            }
        }
        assert_eq!(
            ContentDescription {
                profile: Profile::Invoice(FileKind::Fse),
                protection: Protection::CompressedEncrypted
            }
            .to_string(),
            "FACTURE/SV/ZK"
        );
        assert!("FACTURE/SV/Z".parse::<ContentDescription>().is_err());
        assert!("ART/ZZ".parse::<ContentDescription>().is_err());
        assert!("".parse::<ContentDescription>().is_err());
    }

    #[test]
    fn mailbox_refuses_injection() {
        assert!(Mailbox::new("ps@example.org").is_ok());
        for bad in [
            "ps@example.org\r\nBcc: x@y.z",
            "ps@example.org\n",
            "ps example@org",
            "ps",
            "a@b@c",
            "<ps@example.org>",
        ] {
            assert!(
                matches!(Mailbox::new(bad), Err(ProfileError::HeaderValue { .. })),
                "{bad:?}"
            );
        }
        assert!(Mailbox::with_name(Some("Dr X\r\nBcc: y@z"), "ps@example.org").is_err());
        assert_eq!(
            Mailbox::with_name(Some("Dr \"X\""), "a@b")
                .unwrap()
                .header_value(),
            "\"Dr \\\"X\\\"\" <a@b>"
        );
    }

    #[test]
    fn base64_strict() {
        assert_eq!(decode_base64(b"QUJD\r\nREVG\r\n").unwrap(), b"ABCDEF");
        assert!(matches!(
            decode_base64(b"QUJD\r\n*EVG"),
            Err(ProfileError::NotBase64 {
                offset: 6,
                byte: b'*'
            })
        ));
        assert!(
            matches!(decode_base64(b"QUJ"), Err(ProfileError::BadBase64 { .. }))
                || decode_base64(b"QUJ").is_ok()
        );
        assert!(matches!(decode_base64(b"Q"), Err(ProfileError::BadBase64 { .. })));
    }

    /// Decoding a chunk at a time gives what decoding the whole body at once gives (checked
    /// against the `base64` crate on the cleaned text), for chunk sizes that cut everywhere.
    #[test]
    fn base64_in_chunks_is_base64_whole() {
        use base64::Engine as _;
        let whole = |body: &[u8]| {
            let clean: Vec<u8> = body.iter().copied().filter(|b| !b" \t\r\n".contains(b)).collect();
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(clean.iter().copied().filter(|&b| b != b'=').collect::<Vec<u8>>())
                .ok()
        };
        let cases: [&[u8]; 7] = [
            b"QUJD\r\nREVG\r\nR0g=",
            b"QUJDREVGR0hJ\r\nSktM",
            b"QUJDREVGR0hJSktMTU4=",
            b"QUJDREVGR0hJSktMTU5PUA==",
            b"QUJD\r\n",
            b"QUJD====QUJD",
            b"QU==QUJD",
        ];
        for body in cases {
            for chunk in [4, 8, 12, 64, BASE64_CHUNK] {
                let got = decode_base64_chunked(body, chunk).ok();
                let padding_inside = body
                    .iter()
                    .rposition(|&b| b == b'=')
                    .is_some_and(|p| body[p..].iter().any(|b| b.is_ascii_alphanumeric()));
                let want = if padding_inside { None } else { whole(body) };
                assert_eq!(
                    got,
                    want,
                    "{} in chunks of {chunk}",
                    String::from_utf8_lossy(body)
                );
            }
        }
    }

    /// In place, a body gives the bytes that an independent decoder (the `base64` crate's
    /// MIME-style decoding of the same characters) gives, whatever lies before the body and
    /// whatever the chunk size; a damaged body gives the error the borrowed decoder gives.
    #[test]
    fn base64_in_place_is_base64_whole() {
        use base64::Engine as _;
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let mut b64 = base64::engine::general_purpose::STANDARD
            .encode(&data)
            .into_bytes();
        // Lines of 76 characters with CRLF, as a mail body.
        let mut body = Vec::new();
        for line in b64.chunks(76) {
            body.extend_from_slice(line);
            body.extend_from_slice(b"\r\n");
        }
        let head = b"Subject: x\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
        for chunk in [4, 8, 76, 4096, BASE64_CHUNK] {
            let mut buf = [head.clone(), body.clone()].concat();
            decode_base64_in_place(&mut buf, head.len()..head.len() + body.len(), chunk).unwrap();
            assert_eq!(buf, data, "chunk {chunk}");
        }
        // Damage: a character outside the alphabet, data after padding.
        b64.truncate(400);
        let mut bad = b64.clone();
        bad[123] = b'*';
        let padded = [b"QUJD\r\nQQ==\r\n".as_slice(), b"QUJD"].concat();
        for body in [bad, padded] {
            for chunk in [4, 8, BASE64_CHUNK] {
                let mut buf = [head.clone(), body.clone()].concat();
                let got = decode_base64_in_place(&mut buf, head.len()..head.len() + body.len(), chunk);
                let want = decode_base64_chunked(&body, chunk);
                assert_eq!(
                    format!("{got:?}"),
                    format!("{:?}", want.map(|_| ())),
                    "chunk {chunk}"
                );
                assert!(got.is_err());
            }
        }
    }

    /// The owned parse gives the parsed message the borrowed one gives, base64 or plain.
    #[test]
    fn owned_parse_is_the_borrowed_parse() {
        use base64::Engine as _;
        let file = b"000CP00000000000751SIMU  TP00000123456789        R00001".repeat(40);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&file);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(76)
            .map(|l| std::str::from_utf8(l).unwrap())
            .collect();
        let head = "From: oct@oct.invalid\r\nTo: ps@ps.invalid\r\nSubject: RSP/123456789/202611270930\r\n\
            MIME-Version: 1.0\r\nContent-Type: Application/EDI-consent; name=\"RSP.txt\"\r\n\
            Content-Description: RSP\r\n";
        let base64_msg = format!(
            "{head}Content-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            lines.join("\r\n")
        );
        let plain_msg = format!(
            "{head}Content-Transfer-Encoding: 8bit\r\n\r\n{}",
            String::from_utf8_lossy(&file)
        );
        for msg in [base64_msg, plain_msg] {
            let limits = ParseLimits::default();
            let borrowed = parse_message(msg.as_bytes(), &limits).unwrap();
            let owned = parse_message_owned(msg.clone().into_bytes(), &limits).unwrap();
            assert_eq!(owned.attachment, file);
            assert_eq!(owned.attachment, borrowed.attachment);
            assert_eq!(format!("{:?}", owned.headers), format!("{:?}", borrowed.headers));
        }
    }
}
