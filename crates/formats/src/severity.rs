//! How much a finding matters, shared by every format's findings.

use serde::Serialize;

/// Severity of a finding. Only [`Severity::Error`] makes an input invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The input breaks a rule its reader relies on (wrong control total, damaged field).
    Error,
    /// Irregular but readable, and nothing is lost (a blank currency unit, bytes after the
    /// last file).
    Warning,
    /// Worth knowing, not wrong (an entity type with no published layout, kept raw).
    Info,
}

impl Severity {
    /// The lower-case name used in JSON (`error`, `warning`, `info`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}
