//! The PS transmission module's configuration.
//!
//! One TOML file (default `svoct-ps.toml`, path overridable). Reading goes through serde; every
//! change the commands make (`svoct ps mode`, `svoct ps oct set`) goes through `toml_edit`, which
//! rewrites only the keys it is told to, so that switching to OCT mode and back leaves the
//! direct-mode settings byte-identical (R1.2) and changing OCT touches only the `[oct]` table
//! (R2).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use svoct_formats::PaddedNumber;
use svoct_mail::secret::Secret;

/// The exchange mode (R1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// PS -> AM directly, per destination mailbox.
    #[default]
    Direct,
    /// PS -> OCT -> AM.
    Oct,
}

impl std::str::FromStr for Mode {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Mode, ConfigError> {
        match s {
            "direct" => Ok(Mode::Direct),
            "oct" => Ok(Mode::Oct),
            other => Err(ConfigError::Invalid(format!(
                "mode must be `direct` or `oct`, not `{other}`"
            ))),
        }
    }
}

/// How lots travel to the OCT (R3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SendOption {
    /// R3.1: files per grouping key as in direct mode, addressed and encrypted for the OCT.
    Split,
    /// R3.2: one file for all lots under the OCT header and trailer.
    #[default]
    Single,
    /// R3.3: enriched FSE (contract type 99 allowed), in one OCT file.
    Enriched,
}

impl std::str::FromStr for SendOption {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<SendOption, ConfigError> {
        match s {
            "split" => Ok(SendOption::Split),
            "single" => Ok(SendOption::Single),
            "enriched" => Ok(SendOption::Enriched),
            other => Err(ConfigError::Invalid(format!(
                "sending option must be `split`, `single` or `enriched`, not `{other}`"
            ))),
        }
    }
}

/// Transport security of a mail connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tls {
    #[default]
    None,
    Starttls,
    Implicit,
}

/// The PS's identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// Sender type of the B2 file header (`TP`, `TE`, `SI`).
    #[serde(default = "default_sender_type")]
    pub sender_type: String,
    /// Sender number (B2 000 positions 6-19; the subject's `exercice`). Optional: the file's
    /// sender number is always the lots' PS number (R3.2), so a value given here must designate
    /// that number (leading zeros ignored); see [`Identity::file_sender_number`].
    #[serde(default)]
    pub sender_number: Option<String>,
    /// The PS number with its key (9 digits, B2 type 1 positions 2-10).
    pub ps_number: String,
    /// ART category code (R6.2: `IF`, `MK`, ... or `XX`).
    #[serde(default = "default_category")]
    pub category: String,
    /// The PS's mail address given by its network provider (R5.2).
    pub from: String,
}

impl Identity {
    /// The sender number of every file this PS sends, as the B2 builder writes it in `000`
    /// positions 6-19: the PS number zero-filled to 14. It is also the `exercice` of every
    /// subject the PS sends (R5.3, dLOI request), so that the subject and the file agree.
    pub fn file_sender_number(&self) -> String {
        format!("{:0>14}", self.ps_number)
    }
}

fn default_sender_type() -> String {
    "TP".into()
}

fn default_category() -> String {
    "XX".into()
}

/// An SMTP submission server of the network provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    #[serde(default)]
    pub tls: Tls,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    /// Log in even when `tls = "none"` (a server on loopback). Without it, a username with
    /// `tls = "none"` is refused when the configuration loads.
    #[serde(default)]
    pub allow_plaintext_auth: bool,
    /// Seconds to wait for the server at each step (connect, each command) before giving up
    /// with "timeout talking to HOST:PORT after N s"; at least 1.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

/// Where returns are picked up: a POP3 mailbox, or a Maildir directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxSettings {
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: Tls,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    /// Send `USER`/`PASS` even when `tls = "none"` (a server on loopback). Without it, POP3
    /// credentials with `tls = "none"` are refused when the configuration loads.
    #[serde(default)]
    pub allow_plaintext_auth: bool,
    /// A Maildir directory used instead of POP3 (embedded and offline use).
    #[serde(default)]
    pub maildir: Option<PathBuf>,
    /// Largest message accepted from the mailbox, in bytes.
    #[serde(default = "default_max_message")]
    pub max_message_bytes: u64,
    /// Largest decompressed return attachment, in bytes: a compression bomb in the mailbox
    /// costs at most this much memory and is quarantined with the reason.
    #[serde(default = "default_max_decompressed")]
    pub max_decompressed_bytes: u64,
    /// Seconds to wait for the POP3 server at each step (connect, each read or write); at least 1.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_max_decompressed() -> u64 {
    svoct_mail::compress::DEFAULT_MAX_DECOMPRESSED
}

fn default_timeout_secs() -> u64 {
    60
}

fn default_max_message() -> u64 {
    64 * 1024 * 1024
}

/// The network provider: how mail leaves and arrives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    pub smtp: SmtpSettings,
    #[serde(default)]
    pub mailbox: Option<MailboxSettings>,
}

/// One direct-mode destination (an AM organisation's mailbox).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectRoute {
    pub mailbox: String,
    /// The destination's encryption certificate; without it the attachment is sent in clear.
    #[serde(default)]
    pub certificate: Option<PathBuf>,
}

/// Direct-mode settings: untouched by everything that belongs to the OCT mode (R1.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Direct {
    /// Specification version for the subject prefix (`SVvvvvvv`), e.g. `140700`.
    #[serde(default = "default_spec_version")]
    pub spec_version: String,
    /// Destination organisation (B2 type 1 positions 17-19, 3 digits) -> route.
    #[serde(default)]
    pub routes: BTreeMap<String, DirectRoute>,
}

impl Default for Direct {
    /// What a file without a `[direct]` table means: version 140700, no routes.
    fn default() -> Direct {
        Direct {
            spec_version: default_spec_version(),
            routes: BTreeMap::new(),
        }
    }
}

fn default_spec_version() -> String {
    "140700".into()
}

/// The OCT the PS works with (R2: free configuration).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OctSettings {
    /// The OCT's mail address.
    pub address: String,
    /// The OCT's attachment-encryption certificate (PEM or DER).
    pub certificate: PathBuf,
    /// The recipient number of the single-file header (R3.2): digits based on the OCT's SIREN,
    /// or its association number (`W751234567`); at most 14 characters.
    pub identifier: String,
    #[serde(default)]
    pub option: SendOption,
    /// With option `enriched`, how the lots are put in files (R3.3 "Transmission").
    #[serde(default)]
    pub enriched_files: EnrichedFiles,
    /// Compress before encrypting (`FACTURE/SV/ZK`). Unset: [`OctSettings::compresses`] decides
    /// from the option.
    #[serde(default)]
    pub compress: Option<bool>,
    /// Free text for the single file's message zone (37 characters at most).
    #[serde(default)]
    pub message_zone: String,
}

impl OctSettings {
    /// Whether files are compressed before encryption. An explicit `compress` wins; otherwise
    /// option `split` does not compress, because R3.1 (annex 4.1.2) makes it the direct-mode
    /// message with only the recipient and the certificate changed, and direct mode never
    /// compresses; `single` and `enriched` compress.
    pub fn compresses(&self) -> bool {
        self.compress.unwrap_or(!matches!(self.option, SendOption::Split))
    }
}

/// The two transmission forms of enriched FSE (R3.3, annex 4.3.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnrichedFiles {
    /// "Soit concaténation": every lot in one OCT single file (`TO`, `OT`), as option `single`.
    #[default]
    Single,
    /// "Soit regroupement de lot et mise en fichier par caisse destinataire": one file per
    /// destination (and FSE/DRE), framed as in direct mode, addressed and encrypted to the OCT.
    PerDestination,
}

impl std::str::FromStr for EnrichedFiles {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<EnrichedFiles, ConfigError> {
        match s {
            "single" => Ok(EnrichedFiles::Single),
            "per-destination" => Ok(EnrichedFiles::PerDestination),
            other => Err(ConfigError::Invalid(format!(
                "enriched_files must be `single` or `per-destination`, not `{other}`"
            ))),
        }
    }
}

impl EnrichedFiles {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EnrichedFiles::Single => "single",
            EnrichedFiles::PerDestination => "per-destination",
        }
    }
}

/// Return processing thresholds (worklists).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Returns {
    /// A lot with no ARL after this many days is listed.
    #[serde(default = "default_arl_days")]
    pub arl_days: u32,
    /// An invoice with a positive ARL but no RSP after this many days is listed.
    #[serde(default = "default_rsp_days")]
    pub rsp_days: u32,
    /// Addresses whose returns are applied besides the defaults: the OCT's address in OCT mode,
    /// the route mailboxes in direct mode (an OCT or insurer that answers from another address).
    /// A return from anyone else is set aside with the reason (`svoct ps status`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub senders: Vec<String>,
}

impl Config {
    /// Who may send this PS its returns: the OCT's address in OCT mode, the route mailboxes in
    /// direct mode, and `[returns] senders`; lower case.
    pub fn return_senders(&self) -> Vec<String> {
        let mut out: Vec<String> = match (&self.mode, &self.oct) {
            (Mode::Oct, Some(oct)) => vec![oct.address.clone()],
            (Mode::Oct, None) => Vec::new(),
            (Mode::Direct, _) => self.direct.routes.values().map(|r| r.mailbox.clone()).collect(),
        };
        out.extend(self.returns.senders.iter().cloned());
        out.iter_mut().for_each(|a| *a = a.trim().to_ascii_lowercase());
        out.sort();
        out.dedup();
        out
    }
}

impl Default for Returns {
    fn default() -> Returns {
        Returns {
            arl_days: default_arl_days(),
            rsp_days: default_rsp_days(),
            senders: Vec::new(),
        }
    }
}

fn default_arl_days() -> u32 {
    2
}

fn default_rsp_days() -> u32 {
    15
}

/// The whole configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub mode: Mode,
    pub identity: Identity,
    pub network: Network,
    #[serde(default)]
    pub direct: Direct,
    #[serde(default)]
    pub oct: Option<OctSettings>,
    /// The SQLite journal; relative paths are relative to the configuration file.
    #[serde(default = "default_store")]
    pub store: PathBuf,
    #[serde(default)]
    pub returns: Returns,
    /// The PS's own key and certificate, to open encrypted returns (`K`, `ZK`).
    #[serde(default)]
    pub decryption: Option<Decryption>,
}

/// The PS's private key and certificate: returns addressed to the PS may be encrypted for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decryption {
    /// PEM or DER private key; the file must be mode 0600 or stricter. Its path is shown, never
    /// its content.
    pub key: PathBuf,
    /// The matching certificate.
    pub certificate: PathBuf,
}

fn default_store() -> PathBuf {
    PathBuf::from("svoct-ps.sqlite")
}

/// Configuration problems, each naming the file and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Read and check a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Config::parse(&text).map_err(|e| match e {
            ConfigError::Invalid(message) => ConfigError::Syntax {
                path: path.to_owned(),
                message,
            },
            other => other,
        })?;
        if let Some(dir) = path.parent() {
            config.resolve_paths(dir);
        }
        Ok(config)
    }

    /// Makes every relative path (store, certificates, key) relative to `dir`, the directory of
    /// the configuration file, so that a command works from any working directory.
    pub fn resolve_paths(&mut self, dir: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        fix(&mut self.store);
        for route in self.direct.routes.values_mut() {
            if let Some(c) = route.certificate.as_mut() {
                fix(c);
            }
        }
        if let Some(oct) = self.oct.as_mut() {
            fix(&mut oct.certificate);
        }
        if let Some(d) = self.decryption.as_mut() {
            fix(&mut d.key);
            fix(&mut d.certificate);
        }
        if let Some(m) = self.network.mailbox.as_mut()
            && let Some(md) = m.maildir.as_mut()
        {
            fix(md);
        }
    }

    /// Parse and check configuration text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        // The parser's own message quotes the offending line, which may be the password's.
        let config: Config = toml::from_str(text).map_err(|e| {
            ConfigError::Invalid(svoct_mail::secret::config_error_text(text, e.span(), e.message()))
        })?;
        config.check()?;
        Ok(config)
    }

    /// Cross-field checks that serde cannot express.
    pub fn check(&self) -> Result<(), ConfigError> {
        let id = &self.identity;
        if !matches!(id.sender_type.as_str(), "TP" | "TE" | "SI") {
            return Err(ConfigError::Invalid(format!(
                "identity.sender_type must be TP, TE or SI, not `{}`",
                id.sender_type
            )));
        }
        digits("identity.ps_number", &id.ps_number, 9, 9)?;
        if let Some(n) = &id.sender_number {
            digits("identity.sender_number", n, 1, 14)?;
            if !PaddedNumber::new(n).is(&id.ps_number) {
                return Err(ConfigError::Invalid(format!(
                    "identity.sender_number `{n}` is not the PS number `{}`: the file's sender \
                     number is the lots' PS number (R3.2), and the subject's exercice is the \
                     file's sender number (R5.3); write `{}` or leave the key out",
                    id.ps_number,
                    id.file_sender_number()
                )));
            }
        }
        if id.category.len() != 2 || !id.category.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ConfigError::Invalid(format!(
                "identity.category must be two capital letters (IF, MK, ..., XX), not `{}`",
                id.category
            )));
        }
        header_value("identity.from", &id.from)?;
        let smtp = &self.network.smtp;
        check_login_tls(
            "network.smtp",
            smtp.username.is_some() && smtp.password.is_some(),
            smtp.tls,
            smtp.allow_plaintext_auth,
        )?;
        if let Some(m) = &self.network.mailbox
            && m.maildir.is_none()
        {
            check_login_tls(
                "network.mailbox",
                m.username.is_some() && m.password.is_some(),
                m.tls,
                m.allow_plaintext_auth,
            )?;
        }
        digits("direct.spec_version", &self.direct.spec_version, 6, 6)?;
        for (dest, route) in &self.direct.routes {
            digits("a direct.routes key", dest, 3, 3)?;
            header_value(&format!("direct.routes.{dest}.mailbox"), &route.mailbox)?;
        }
        if let Some(oct) = &self.oct {
            header_value("oct.address", &oct.address)?;
            if let Err(e) = svoct_formats::b2::RecipientNumber::new(&oct.identifier) {
                let why = match e {
                    svoct_formats::b2::B2Error::BadRecipient { reason, .. } => reason.to_owned(),
                    other => other.to_string(),
                };
                return Err(ConfigError::Invalid(format!(
                    "oct.identifier `{}` {why}",
                    oct.identifier.escape_debug()
                )));
            }
            if oct.message_zone.len() > 37 || !oct.message_zone.is_ascii() {
                return Err(ConfigError::Invalid(
                    "oct.message_zone must be at most 37 ASCII characters".into(),
                ));
            }
        }
        if self.mode == Mode::Oct && self.oct.is_none() {
            return Err(ConfigError::Invalid(
                "mode is `oct` but there is no [oct] table: run `svoct ps oct set` first".into(),
            ));
        }
        Ok(())
    }

    /// The configuration as JSON with every secret replaced, for display.
    pub fn redacted(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// Credentials go over TLS, or in clear only where the configuration says so explicitly.
fn check_login_tls(table: &str, has_login: bool, tls: Tls, allowed: bool) -> Result<(), ConfigError> {
    if has_login && tls == Tls::None && !allowed {
        return Err(ConfigError::Invalid(format!(
            "{table}: the username and password would be sent without TLS: set tls = \"starttls\" \
             or \"implicit\", or {table}.allow_plaintext_auth = true for a server on loopback"
        )));
    }
    Ok(())
}

fn digits(name: &str, value: &str, min: usize, max: usize) -> Result<(), ConfigError> {
    if value.len() < min || value.len() > max || !value.bytes().all(|b| b.is_ascii_digit()) {
        let want = if min == max {
            format!("{min}")
        } else {
            format!("{min} to {max}")
        };
        return Err(ConfigError::Invalid(format!(
            "{name} must be {want} digits, not `{value}`"
        )));
    }
    Ok(())
}

/// A value that ends up in a mail header: no CR or LF (header injection), ASCII only.
fn header_value(name: &str, value: &str) -> Result<(), ConfigError> {
    if value.is_empty()
        || value
            .bytes()
            .any(|b| b == b'\r' || b == b'\n' || !b.is_ascii() || b == 0)
    {
        return Err(ConfigError::Invalid(format!(
            "{name} must be a non-empty ASCII value without line breaks"
        )));
    }
    Ok(())
}

/// Edits to the configuration file that preserve everything they do not touch.
pub struct ConfigFile {
    path: PathBuf,
    doc: toml_edit::DocumentMut,
}

impl ConfigFile {
    pub fn open(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let doc = text
            .parse::<toml_edit::DocumentMut>()
            .map_err(|e| ConfigError::Syntax {
                path: path.to_owned(),
                message: svoct_mail::secret::config_error_text(&text, e.span(), e.message()),
            })?;
        Ok(ConfigFile {
            path: path.to_owned(),
            doc,
        })
    }

    /// R1: switch between direct and OCT exchange. Only the top-level `mode` key changes.
    pub fn set_mode(&mut self, mode: Mode) {
        let value = match mode {
            Mode::Direct => "direct",
            Mode::Oct => "oct",
        };
        set_keeping_comments(&mut self.doc["mode"], value.into());
    }

    /// R2: set or change the OCT. Only keys of the `[oct]` table change; unnamed keys keep their
    /// values.
    pub fn set_oct(&mut self, changes: &OctChanges) {
        if !self.doc.contains_table("oct") {
            self.doc["oct"] = toml_edit::table();
        }
        let oct = &mut self.doc["oct"];
        if let Some(v) = &changes.address {
            set_keeping_comments(&mut oct["address"], v.as_str().into());
        }
        if let Some(v) = &changes.certificate {
            set_keeping_comments(&mut oct["certificate"], v.to_string_lossy().as_ref().into());
        }
        if let Some(v) = &changes.identifier {
            set_keeping_comments(&mut oct["identifier"], v.as_str().into());
        }
        if let Some(v) = changes.option {
            let s = match v {
                SendOption::Split => "split",
                SendOption::Single => "single",
                SendOption::Enriched => "enriched",
            };
            set_keeping_comments(&mut oct["option"], s.into());
        }
        if let Some(v) = changes.compress {
            set_keeping_comments(&mut oct["compress"], v.into());
        }
        if let Some(v) = changes.enriched_files {
            set_keeping_comments(&mut oct["enriched_files"], v.as_str().into());
        }
    }

    /// Remove everything that belongs to the OCT mode (R1.2: direct mode keeps working as is).
    pub fn remove_oct(&mut self) {
        self.doc.remove("oct");
        self.set_mode(Mode::Direct);
    }

    /// Check the edited document, then write it atomically (temporary file + rename).
    pub fn save(&self) -> Result<Config, ConfigError> {
        let text = self.doc.to_string();
        let mut config = Config::parse(&text)?;
        // The same paths as `Config::load` gives: relative to the file, not to the process.
        if let Some(dir) = self.path.parent() {
            config.resolve_paths(dir);
        }
        let tmp = self.path.with_extension("toml.tmp");
        let write = |p: &Path| -> std::io::Result<()> {
            use std::io::Write;
            // The configuration may hold passwords: owner only.
            let mut f = svoct_mail::fsx::create_data_file(p)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()
        };
        write(&tmp).map_err(|source| ConfigError::Write {
            path: tmp.clone(),
            source,
        })?;
        std::fs::rename(&tmp, &self.path).map_err(|source| ConfigError::Write {
            path: self.path.clone(),
            source,
        })?;
        Ok(config)
    }
}

/// Replace a value but keep the comment and spacing around it, so an edit changes one token.
fn set_keeping_comments(item: &mut toml_edit::Item, mut new: toml_edit::Value) {
    if let Some(old) = item.as_value() {
        *new.decor_mut() = old.decor().clone();
    }
    *item = toml_edit::Item::Value(new);
}

/// What `svoct ps oct set` changes; `None` leaves a key as it is.
#[derive(Clone, Debug, Default)]
pub struct OctChanges {
    pub address: Option<String>,
    pub certificate: Option<PathBuf>,
    pub identifier: Option<String>,
    pub option: Option<SendOption>,
    pub compress: Option<bool>,
    pub enriched_files: Option<EnrichedFiles>,
}

/// A starting configuration, written by `svoct ps init`.
pub const EXAMPLE: &str = r#"# svoct PS configuration. Every setting is documented in docs/ps-config.md.
mode = "direct"          # "direct" or "oct" (svoct ps mode ...)
store = "svoct-ps.sqlite"

[identity]
sender_type = "TP"
ps_number = "123456789"
category = "IF"
from = "cabinet@ps.invalid"

[network.smtp]
host = "127.0.0.1"
port = 25
# timeout_secs = 60      # wait at most this long for each server answer
tls = "none"             # "none", "starttls" or "implicit"
# username = "..."
# password = "..."

[network.mailbox]
host = "127.0.0.1"
port = 110
tls = "none"
# username = "..."
# password = "..."
# maildir = "/var/mail/ps"   # instead of POP3

[direct]
spec_version = "140700"

[direct.routes."011"]
mailbox = "cpam011@am.invalid"
# certificate = "certs/cpam011.pem"

[returns]
arl_days = 2
rsp_days = 15
# senders = ["retours@oct.example"]   # returns also accepted from these addresses
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn write_example(dir: &Path) -> PathBuf {
        let p = dir.join("svoct-ps.toml");
        std::fs::write(&p, EXAMPLE).unwrap();
        p
    }

    fn section<'a>(text: &'a str, header: &str) -> &'a str {
        let start = text.find(header).unwrap();
        let rest = &text[start..];
        let end = rest[header.len()..]
            .find("\n[")
            .map(|i| i + header.len())
            .unwrap_or(rest.len());
        &rest[..end]
    }

    #[test]
    fn a_file_without_direct_table_gets_the_default_version() {
        let text = EXAMPLE.replace("[direct]\nspec_version = \"140700\"\n", "");
        assert!(!text.contains("spec_version"));
        let c = Config::parse(&text).unwrap();
        assert_eq!(c.direct.spec_version, "140700");
    }

    #[test]
    fn example_parses() {
        let c = Config::parse(EXAMPLE).unwrap();
        assert_eq!(c.mode, Mode::Direct);
        assert_eq!(c.direct.routes["011"].mailbox, "cpam011@am.invalid");
        assert!(c.oct.is_none());
    }

    #[test]
    fn switching_to_oct_and_back_keeps_direct_settings_byte_identical() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_example(dir.path());
        let before = std::fs::read_to_string(&path).unwrap();

        let mut f = ConfigFile::open(&path).unwrap();
        f.set_oct(&OctChanges {
            address: Some("oct@oct.invalid".into()),
            certificate: Some("oct.pem".into()),
            identifier: Some("12345678900014".into()),
            option: Some(SendOption::Single),
            compress: None,
            enriched_files: None,
        });
        f.set_mode(Mode::Oct);
        let c = f.save().unwrap();
        assert_eq!(c.mode, Mode::Oct);
        let during = std::fs::read_to_string(&path).unwrap();
        assert_eq!(section(&before, "[direct]"), section(&during, "[direct]"));
        assert_eq!(
            section(&before, "[network.smtp]"),
            section(&during, "[network.smtp]")
        );

        let mut f = ConfigFile::open(&path).unwrap();
        f.set_mode(Mode::Direct);
        f.save().unwrap();
        let mut f = ConfigFile::open(&path).unwrap();
        f.remove_oct();
        f.save().unwrap();
        let after = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            before, after,
            "OCT mode added and removed leaves the file as it was"
        );
    }

    #[test]
    fn changing_oct_touches_only_named_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_example(dir.path());
        let mut f = ConfigFile::open(&path).unwrap();
        f.set_oct(&OctChanges {
            address: Some("a@oct1.invalid".into()),
            certificate: Some("oct1.pem".into()),
            identifier: Some("11111111100011".into()),
            option: Some(SendOption::Enriched),
            compress: Some(false),
            enriched_files: Some(EnrichedFiles::PerDestination),
        });
        f.save().unwrap();
        let mut f = ConfigFile::open(&path).unwrap();
        f.set_oct(&OctChanges {
            address: Some("b@oct2.invalid".into()),
            ..Default::default()
        });
        let c = f.save().unwrap();
        let oct = c.oct.unwrap();
        assert_eq!(oct.address, "b@oct2.invalid");
        assert_eq!(oct.identifier, "11111111100011");
        assert_eq!(oct.option, SendOption::Enriched);
        assert_eq!(oct.compress, Some(false));
        assert_eq!(oct.enriched_files, EnrichedFiles::PerDestination);
    }

    fn with_oct(identifier: &str, option: &str, compress: Option<bool>) -> Result<Config, ConfigError> {
        let mut text = format!(
            "{EXAMPLE}\n[oct]\naddress = \"oct@oct.invalid\"\ncertificate = \"oct.pem\"\n\
             identifier = \"{identifier}\"\noption = \"{option}\"\n"
        );
        if let Some(c) = compress {
            text.push_str(&format!("compress = {c}\n"));
        }
        Config::parse(&text)
    }

    /// Annex 4.2.2.2: "N° d'identifiant unique basé sur le SIREN, ou N° d'association".
    #[test]
    fn the_oct_identifier_may_be_siren_based_or_an_association_number() {
        assert!(with_oct("12345678900017", "single", None).is_ok());
        assert!(with_oct("W751234567", "single", None).is_ok());
        for bad in ["w751234567", "W75-1234567", "123456789012345", "ABCDEF"] {
            let e = with_oct(bad, "single", None).unwrap_err().to_string();
            assert!(e.contains("oct.identifier"), "{bad}: {e}");
        }
    }

    /// Annex 4.1.2: option 1 is the direct message, which is never compressed.
    #[test]
    fn split_does_not_compress_unless_told_and_the_others_do() {
        let oct = |option, compress| with_oct("12345678900017", option, compress).unwrap().oct.unwrap();
        assert!(!oct("split", None).compresses());
        assert!(oct("split", Some(true)).compresses());
        assert!(oct("single", None).compresses());
        assert!(oct("enriched", None).compresses());
        assert!(!oct("single", Some(false)).compresses());
    }

    /// One sender number: the lots' PS number (R3.2), which is the subject's exercice (R5.3).
    #[test]
    fn a_sender_number_other_than_the_ps_number_is_refused() {
        let c = Config::parse(EXAMPLE).unwrap();
        assert_eq!(c.identity.sender_number, None);
        assert_eq!(c.identity.file_sender_number(), "00000123456789");
        let with = |n: &str| {
            Config::parse(&EXAMPLE.replace("ps_number =", &format!("sender_number = \"{n}\"\nps_number =")))
        };
        assert!(with("00000123456789").is_ok());
        assert!(with("123456789").is_ok());
        let e = with("98765432100000").unwrap_err().to_string();
        assert!(
            e.contains("identity.sender_number") && e.contains("00000123456789"),
            "{e}"
        );
    }

    #[test]
    fn oct_mode_without_oct_table_is_refused() {
        let text = EXAMPLE.replace("mode = \"direct\"", "mode = \"oct\"");
        let e = Config::parse(&text).unwrap_err().to_string();
        assert!(e.contains("svoct ps oct set"), "{e}");
    }

    #[test]
    fn header_injection_in_configured_values_is_refused() {
        let text = EXAMPLE.replace("cabinet@ps.invalid", "a@b.invalid\\r\\nBcc: x@y.invalid");
        let e = Config::parse(&text).unwrap_err().to_string();
        assert!(e.contains("identity.from"), "{e}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = Config::parse(&EXAMPLE.replace("\"123456789\"", "\"12345\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("identity.ps_number"), "{e}");
        let e = Config::parse(&EXAMPLE.replace("[returns]", "[returns]\nbogus = 1"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn secrets_are_redacted_in_debug_and_json() {
        let text = EXAMPLE.replace(
            "# password = \"...\"\n\n[network.mailbox]",
            "password = \"hunter2\"\n\n[network.mailbox]",
        );
        let c = Config::parse(&text).unwrap();
        assert_eq!(c.network.smtp.password.as_ref().unwrap().expose(), "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!c.redacted().to_string().contains("hunter2"));
    }

    fn with_logins(smtp_tls: &str, pop_tls: &str, allow: &str) -> String {
        EXAMPLE
            .replacen(
                "tls = \"none\"             # \"none\", \"starttls\" or \"implicit\"\n# username = \"...\"\n# password = \"...\"",
                &format!("tls = \"{smtp_tls}\"\nusername = \"ps\"\npassword = \"hunter2\"\n{allow}"),
                1,
            )
            .replacen(
                "tls = \"none\"\n# username = \"...\"\n# password = \"...\"",
                &format!("tls = \"{pop_tls}\"\nusername = \"ps\"\npassword = \"hunter2\"\n{allow}"),
                1,
            )
    }

    #[test]
    fn credentials_without_tls_need_allow_plaintext_auth() {
        let e = Config::parse(&with_logins("none", "starttls", ""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("network.smtp.allow_plaintext_auth"), "{e}");
        let e = Config::parse(&with_logins("starttls", "none", ""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("network.mailbox.allow_plaintext_auth"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        Config::parse(&with_logins("starttls", "implicit", "")).expect("TLS needs no permission");
        let c =
            Config::parse(&with_logins("none", "none", "allow_plaintext_auth = true\n")).expect("allowed");
        assert!(c.network.smtp.allow_plaintext_auth);
    }

    #[test]
    fn a_syntax_error_on_the_password_line_does_not_show_it() {
        let text = with_logins("starttls", "starttls", "").replacen(
            "password = \"hunter2\"",
            "password = \"hunter2",
            1,
        );
        let e = Config::parse(&text).unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("line "), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("svoct-ps.toml");
        std::fs::write(&path, &text).unwrap();
        let e = ConfigFile::open(&path).err().expect("syntax error").to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }
}
