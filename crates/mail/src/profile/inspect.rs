//! Inspecting a message: everything that can be said about it, without stopping at the first
//! problem. The CLI's `svoct inspect` prints the report as JSON and inspects
//! [`MessageReport::attachment_bytes`] as its own format.

use super::{
    ContentDescription, FileFacts, ParseLimits, Protection, check_state, check_subject_against, extract,
    open_attachment,
};
use crate::cms::{self, PrivateKeyAndCert};
use crate::compress::{self, Compression};
use crate::subject::{Subject, SubjectFields};

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The message breaks its profile; a receiver refuses it.
    Error,
    /// Suspicious but acceptable.
    Warning,
    /// For information.
    Info,
}

/// One observation about a message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// Stable machine code, e.g. `subject`, `content_description`, `decrypt`.
    pub code: &'static str,
    pub message: String,
}

/// What [`inspect_message`] found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MessageReport {
    /// Always `"message"`.
    pub format: &'static str,
    /// The profile, e.g. `FACTURE/SV/ZK`, when the Content-Description is known.
    pub profile: Option<String>,
    /// The subject's fields, when it parses.
    pub subject: Option<SubjectFields>,
    /// The headers that matter, as found.
    pub headers: super::RawHeaders,
    /// Whether the message was `multipart/mixed`.
    pub multipart: bool,
    /// Size of the attachment as transported (after base64).
    pub transported_bytes: Option<usize>,
    /// The envelope's algorithm and recipient count, for `K`/`ZK`.
    pub encryption: Option<cms::EnvelopeInfo>,
    /// The compression found inside (`ZK`).
    pub compression: Option<Compression>,
    /// Size of the opened attachment.
    pub attachment_len: Option<usize>,
    /// The attachment decrypted and decompressed (when possible), for the caller to inspect as
    /// its own format. Not serialized.
    #[serde(skip)]
    pub attachment_bytes: Option<Vec<u8>>,
    pub findings: Vec<Finding>,
}

impl MessageReport {
    /// Whether any finding is an error.
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }

    fn push(&mut self, severity: Severity, code: &'static str, message: impl Into<String>) {
        self.findings.push(Finding {
            severity,
            code,
            message: message.into(),
        });
    }

    /// Adds the subject-against-file checks (invoice count, exercice) once the caller has parsed
    /// the attachment as a B2 file.
    pub fn check_file(&mut self, subject: &Subject, facts: &dyn FileFacts) {
        if let Err(e) = check_subject_against(subject, facts) {
            self.push(Severity::Error, "subject_file", e.to_string());
        }
    }
}

/// Inspects a raw message: profile, subject fields, headers, attachment state; decrypts with
/// `key` when given and the attachment is encrypted, and decompresses. Never fails and never
/// panics: every problem becomes a finding.
pub fn inspect_message(bytes: &[u8], key: Option<&PrivateKeyAndCert>) -> MessageReport {
    let limits = ParseLimits::default();
    let mut r = MessageReport {
        format: "message",
        profile: None,
        subject: None,
        headers: super::RawHeaders::default(),
        multipart: false,
        transported_bytes: None,
        encryption: None,
        compression: None,
        attachment_len: None,
        attachment_bytes: None,
        findings: Vec::new(),
    };
    let ex = match extract(bytes, &limits) {
        Ok(ex) => ex,
        Err(e) => {
            r.push(Severity::Error, "mime", e.to_string());
            return r;
        }
    };
    r.headers = ex.headers.clone();
    r.multipart = ex.multipart;
    r.check_headers(ex.content_type_ok);
    let description: Option<ContentDescription> = r.read_header(
        r.headers.content_description.clone(),
        "Content-Description",
        "content_description",
    );
    r.profile = description.as_ref().map(ToString::to_string);
    let subject: Option<Subject> = r.read_header(r.headers.subject.clone(), "Subject", "subject");
    r.subject = subject.as_ref().map(Subject::fields);
    if let (Some(d), Some(s)) = (&description, &subject)
        && !d.profile.subject_matches(s)
    {
        r.push(
            Severity::Error,
            "subject",
            format!("subject {s} does not fit profile {d}"),
        );
    }
    let attachment = match ex.body {
        Ok(a) => a,
        Err(e) => {
            r.push(Severity::Error, "body", e.to_string());
            return r;
        }
    };
    r.transported_bytes = Some(attachment.len());
    if attachment.is_empty() {
        r.push(Severity::Error, "body", "attachment is empty");
        return r;
    }
    let Some(description) = description else {
        // Unknown profile: still say what the attachment looks like.
        if let Ok(info) = cms::envelope_info(&attachment) {
            r.encryption = Some(info);
        }
        return r;
    };
    if let Err(e) = check_state(&description, &attachment) {
        r.push(Severity::Error, "attachment_state", e.to_string());
        return r;
    }
    if r.check_protection(&description, &attachment, key.is_some()) {
        r.open(&description, &attachment, key, &limits);
    }
    r
}

impl MessageReport {
    /// The header findings: a multipart body, a missing From / To / Date, the Content-Type
    /// (`content_type_ok` is the profile's verdict on it).
    fn check_headers(&mut self, content_type_ok: bool) {
        if self.multipart {
            self.push(
                Severity::Info,
                "mime",
                "multipart/mixed message; the project emits single-part messages",
            );
        }
        let missing: Vec<&str> = [
            ("From", &self.headers.from),
            ("To", &self.headers.to),
            ("Date", &self.headers.date),
        ]
        .into_iter()
        .filter(|(_, value)| value.is_none())
        .map(|(name, _)| name)
        .collect();
        for name in missing {
            self.push(Severity::Warning, "header", format!("missing header {name}"));
        }
        if !content_type_ok {
            let value = self
                .headers
                .content_type
                .clone()
                .unwrap_or_else(|| "(none)".to_owned());
            self.push(
                Severity::Error,
                "content_type",
                format!("Content-Type is {value:?}, expected Application/EDI-consent"),
            );
        } else if let Some(ct) = self.headers.content_type.clone()
            && !ct.starts_with(super::CONTENT_TYPE)
        {
            self.push(
                Severity::Info,
                "content_type",
                format!("Content-Type {ct:?} differs in case from the annex's Application/EDI-consent"),
            );
        }
    }

    /// The value of header `name` (`value`), parsed; a finding with `code` when it is missing or
    /// does not parse.
    fn read_header<T>(&mut self, value: Option<String>, name: &str, code: &'static str) -> Option<T>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        let Some(text) = value else {
            self.push(Severity::Error, code, format!("missing header {name}"));
            return None;
        };
        text.parse::<T>()
            .map_err(|e| self.push(Severity::Error, code, e.to_string()))
            .ok()
    }

    /// Checks the attachment against its announced protection: a plain one that looks
    /// compressed, an encrypted one's envelope. Returns whether it can be opened (false for an
    /// encrypted attachment without a key).
    fn check_protection(
        &mut self,
        description: &ContentDescription,
        attachment: &[u8],
        has_key: bool,
    ) -> bool {
        if description.protection == Protection::Plain {
            if let Some(c) = compress::detect(attachment) {
                self.push(
                    Severity::Warning,
                    "attachment_state",
                    format!("attachment starts like {} data but is announced plain", c.name()),
                );
            }
            return true;
        }
        match cms::envelope_info(attachment) {
            Ok(info) => {
                if info.algorithm.is_none() {
                    self.push(
                        Severity::Error,
                        "encryption",
                        format!(
                            "content encryption algorithm {} is not supported",
                            info.algorithm_oid
                        ),
                    );
                }
                self.encryption = Some(info);
            }
            Err(e) => self.push(Severity::Error, "encryption", e.to_string()),
        }
        if !has_key {
            self.push(
                Severity::Info,
                "decrypt",
                "attachment is encrypted; give the private key to inspect its content",
            );
        }
        has_key
    }

    /// Decrypts and decompresses the attachment, keeping its bytes for the caller.
    fn open(
        &mut self,
        description: &ContentDescription,
        attachment: &[u8],
        key: Option<&PrivateKeyAndCert>,
        limits: &ParseLimits,
    ) {
        match open_attachment(description, attachment, key, limits) {
            Ok(opened) => {
                if description.protection == Protection::Encrypted
                    && let Some(c) = compress::detect(&opened.bytes)
                {
                    self.push(
                        Severity::Warning,
                        "attachment_state",
                        format!(
                            "decrypted content starts like {} data but is announced K, not ZK",
                            c.name()
                        ),
                    );
                }
                self.compression = opened.compression;
                self.attachment_len = Some(opened.bytes.len());
                self.attachment_bytes = Some(opened.bytes);
            }
            Err(e) => self.push(Severity::Error, "decrypt", e.to_string()),
        }
    }
}

/// Entry point for the fuzz target: runs every parser of this crate on arbitrary bytes. Must
/// never panic.
pub fn fuzz_message(data: &[u8]) {
    let report = inspect_message(data, None);
    let _ = serde_json::to_string(&report);
    let _ = super::parse_message(data, &ParseLimits::default());
    let _ = compress::decompress(data, 1 << 20);
    let _ = cms::envelope_info(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = text.parse::<Subject>();
        let _ = text.parse::<crate::subject::Compostage>();
        let _ = text.parse::<ContentDescription>();
    }
}
