//! The concentrator's configuration: one TOML file (`svoct oct serve --config oct.toml`).
//!
//! Every setting is documented in `docs/oct.md`; `docs/oct.example.toml` is a complete example. The
//! file is read once at start; nothing here opens a socket or a key file: [`Config::load`] parses
//! and checks consistency (unique senders, addresses without CR/LF, routes that name either an
//! organisation or a régime + caisse), and the service loads keys and certificates afterwards so
//! that a bad key file is reported with its path. [`Config::problems`] lists every consistency
//! problem instead of the first; `crate::preflight` adds what is on the machine (keys,
//! certificates, directories) for `svoct oct check` and the start of `serve`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use svoct_mail::secret::Secret;

/// Largest configuration file read, so a wrong path (a device, a huge log) fails fast.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_CONFIG_BYTES`] (`len`: what was read before stopping).
    #[error("configuration {path} is more than the {max} bytes accepted (read {len})")]
    TooLarge { path: PathBuf, len: u64, max: u64 },
    /// The TOML is malformed or a setting has the wrong type (the message names the key and line).
    #[error("configuration {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    /// A setting is inconsistent with another or out of range (`path` is the file, once known).
    #[error("configuration {}setting {key}: {reason}", file_prefix(.path))]
    Invalid {
        path: Option<PathBuf>,
        key: String,
        reason: String,
    },
}

fn file_prefix(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| format!("{}: ", p.display()))
        .unwrap_or_default()
}

impl ConfigError {
    /// The same error, naming the file it is about (an operator may have several).
    pub fn in_file(self, file: &Path) -> ConfigError {
        match self {
            ConfigError::Syntax { message, .. } => ConfigError::Syntax {
                path: file.to_owned(),
                message,
            },
            ConfigError::Invalid { key, reason, .. } => ConfigError::Invalid {
                path: Some(file.to_owned()),
                key,
                reason,
            },
            other => other,
        }
    }
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        path: None,
        key: key.into(),
        reason: reason.into(),
    }
}

/// The whole configuration.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Who the OCT is.
    pub oct: Identity,
    /// The SMTP ingress the PS and AM send to.
    #[serde(default)]
    pub ingress: IngressSettings,
    /// Where the spool and the state database live.
    pub paths: Paths,
    /// The OCT's own private key and certificate (attachments to the OCT are encrypted for it).
    pub keys: Keys,
    /// Registered PS senders.
    #[serde(default, rename = "sender")]
    pub senders: Vec<Sender>,
    /// AMO routing table.
    #[serde(default, rename = "route")]
    pub routes: Vec<Route>,
    /// AMC routing table for the complementary flow (R8.3).
    #[serde(default, rename = "amc")]
    pub amc: Vec<AmcRoute>,
    /// How outgoing messages leave the OCT.
    #[serde(default)]
    pub delivery: Delivery,
    /// Where dLOI increments come from.
    #[serde(default)]
    pub loi: LoiSettings,
    /// Retries of outgoing messages.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Pipeline workers.
    #[serde(default)]
    pub pipeline: PipelineSettings,
    /// How much quarantined content is kept, and how long.
    #[serde(default)]
    pub quarantine: QuarantineSettings,
    /// `/metrics`, `/healthz` and the web console; absent, no HTTP listener.
    #[serde(default)]
    pub http: Option<crate::http::HttpSettings>,
}

/// The OCT's identity, written in the files it builds and the messages it sends.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// The OCT identifier PS software puts as recipient number in single files (R3.2, B2 `000`
    /// positions 28-41, 14 characters): SIREN-based or association number.
    pub identifier: String,
    /// Sender type of the files the OCT builds (B2 `000` positions 4-5); `OT` per the norm.
    #[serde(default = "default_sender_type")]
    pub sender_type: String,
    /// Sender number of the files the OCT builds (B2 `000` positions 6-19, digits).
    pub sender_number: String,
    /// The OCT's mail address: `From` of every message it sends, and the address PS write to.
    pub address: String,
    /// Name of the OCT (B2 lot header `Nom ou raison sociale`, for the AMC lots it builds).
    #[serde(default = "default_name")]
    pub name: String,
    /// Specification version of the subjects the OCT writes (`SVvvvvvv`).
    #[serde(default = "default_spec_version")]
    pub spec_version: String,
}

fn default_sender_type() -> String {
    "OT".into()
}
fn default_name() -> String {
    "OCT".into()
}
fn default_spec_version() -> String {
    "140700".into()
}

/// Ingress settings, handed to the SMTP ingress. Every default is the ingress's own
/// (`IngressConfig::default()`): one source of truth, listed in `docs/oct-ingress.md`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IngressSettings {
    /// Listen address (`127.0.0.1:2525`).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Largest message accepted (SIZE), bytes.
    #[serde(default = "default_max_message")]
    pub max_message_bytes: usize,
    /// Addresses the OCT also receives at, besides `oct.address` (e.g. a separate address
    /// for insurer returns). Every other recipient gets `550` (relay denied).
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Simultaneous connections beyond which new ones get `421`.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Simultaneous connections from one IP address beyond which new ones get `421`.
    #[serde(default = "default_max_connections_per_ip")]
    pub max_connections_per_ip: usize,
    /// Recipients per message.
    #[serde(default = "default_max_recipients")]
    pub max_recipients: usize,
    /// Longest time a whole command line may take, idle wait included, seconds.
    #[serde(default = "default_command_timeout")]
    pub command_timeout_secs: u64,
    /// Longest time from the connection, or the end of a message, to the next DATA, seconds.
    #[serde(default = "default_transaction_timeout")]
    pub transaction_timeout_secs: u64,
    /// Time DATA may take beyond what the minimum rate pays for, seconds.
    #[serde(default = "default_data_grace")]
    pub data_grace_secs: u64,
    /// Minimum DATA rate, octets per second, averaged over the DATA phase.
    #[serde(default = "default_min_data_rate")]
    pub min_data_rate: u64,
    /// Certificate chain (PEM) the ingress presents after STARTTLS; with `tls_key`, STARTTLS
    /// is offered, without both it is not.
    #[serde(default)]
    pub tls_certificate: Option<PathBuf>,
    /// Private key (PEM) of `tls_certificate`: mode 0600 or stricter, like the OCT's key.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 2525))
}
fn default_max_message() -> usize {
    crate::inbound::session::DEFAULT_MAX_MESSAGE_SIZE
}
fn default_max_connections() -> usize {
    crate::inbound::listener::DEFAULT_MAX_CONNECTIONS
}
fn default_max_connections_per_ip() -> usize {
    crate::inbound::listener::DEFAULT_MAX_CONNECTIONS_PER_IP
}
fn default_max_recipients() -> usize {
    crate::inbound::session::DEFAULT_MAX_RECIPIENTS
}
fn default_command_timeout() -> u64 {
    crate::inbound::listener::DEFAULT_COMMAND_TIMEOUT_SECS
}
fn default_transaction_timeout() -> u64 {
    crate::inbound::listener::DEFAULT_TRANSACTION_TIMEOUT_SECS
}
fn default_data_grace() -> u64 {
    crate::inbound::listener::DEFAULT_DATA_GRACE_SECS
}
fn default_min_data_rate() -> u64 {
    crate::inbound::listener::DEFAULT_MIN_DATA_RATE
}

impl Default for IngressSettings {
    fn default() -> Self {
        IngressSettings {
            listen: default_listen(),
            max_message_bytes: default_max_message(),
            addresses: Vec::new(),
            max_connections: default_max_connections(),
            max_connections_per_ip: default_max_connections_per_ip(),
            max_recipients: default_max_recipients(),
            command_timeout_secs: default_command_timeout(),
            transaction_timeout_secs: default_transaction_timeout(),
            data_grace_secs: default_data_grace(),
            min_data_rate: default_min_data_rate(),
            tls_certificate: None,
            tls_key: None,
        }
    }
}

impl IngressSettings {
    /// The STARTTLS files, when both are set (one without the other is a configuration error,
    /// see [`Config::problems`]).
    pub fn tls_files(&self) -> Option<crate::inbound::listener::TlsFiles> {
        match (&self.tls_certificate, &self.tls_key) {
            (Some(cert), Some(key)) => Some(crate::inbound::listener::TlsFiles {
                cert_chain: cert.clone(),
                private_key: key.clone(),
            }),
            _ => None,
        }
    }

    /// The ingress configuration these settings give, for a concentrator whose host name is
    /// `hostname` and which accepts mail for `addresses` only (every other recipient: `550`).
    pub fn ingress_config(
        &self,
        hostname: &str,
        addresses: Vec<String>,
    ) -> crate::inbound::listener::IngressConfig {
        let mut ic = crate::inbound::listener::IngressConfig::default();
        ic.session.hostname = hostname.to_owned();
        ic.session.max_message_size = self.max_message_bytes;
        ic.session.max_recipients = self.max_recipients;
        ic.session.recipients = crate::inbound::session::Recipients::Only(addresses);
        ic.max_connections = self.max_connections;
        ic.max_connections_per_ip = self.max_connections_per_ip.max(1);
        ic.command_timeout = std::time::Duration::from_secs(self.command_timeout_secs.max(1));
        ic.transaction_timeout = std::time::Duration::from_secs(self.transaction_timeout_secs.max(1));
        ic.data_grace = std::time::Duration::from_secs(self.data_grace_secs.max(1));
        ic.min_data_rate = self.min_data_rate;
        ic.tls = self.tls_files();
        ic
    }
}

/// Paths of the durable state.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Paths {
    /// The ingress spool directory.
    pub spool: PathBuf,
    /// The pipeline's SQLite database (processed messages, outbox, quarantine, OCT-built lots).
    pub state: PathBuf,
}

/// The OCT's key pair.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Keys {
    /// PEM private key; the file must not be readable by group or others.
    pub private_key: PathBuf,
    /// PEM or DER certificate matching the key.
    pub certificate: PathBuf,
}

/// ART category codes of R6.2 (`XX` is the default for any category).
pub const ART_CATEGORIES: &[&str] = &[
    "IF", "MK", "OO", "OY", "PE", "LB", "PH", "FR", "ER", "CP", "CS", "CT", "XX",
];

/// A PS registered with the OCT.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Sender {
    /// The `From` address the PS's messages carry (compared case-insensitively).
    pub address: String,
    /// The sender number of the PS's files (B2 `000` positions 6-19 / subject `exercice`).
    pub sender_number: String,
    /// The PS number (B2 lot header positions 2-10), for ART subjects and return routing.
    pub ps_number: String,
    /// ART category code (R6.2).
    #[serde(default = "default_category")]
    pub category: String,
    /// Where ART, relayed returns and dLOI increments go; defaults to `address`.
    #[serde(default)]
    pub mailbox: Option<String>,
    /// Certificate to encrypt relayed returns for this PS; plain when absent.
    #[serde(default)]
    pub certificate: Option<PathBuf>,
}

fn default_category() -> String {
    "XX".into()
}

impl Sender {
    /// The mailbox returns go to.
    pub fn return_mailbox(&self) -> &str {
        self.mailbox.as_deref().unwrap_or(&self.address)
    }

    /// The problems of the block's own fields, under keys `<prefix>.<field>`: the rules of a
    /// `[[sender]]` block and of a practice added with `svoct oct ps` (one set of rules).
    pub fn field_problems(&self, prefix: &str, note: &mut impl FnMut(Result<(), ConfigError>)) {
        let key = |f: &str| format!("{prefix}.{f}");
        note(check_address(&key("address"), &self.address));
        note(check_digits(&key("sender_number"), &self.sender_number, 14));
        note(check_digits(&key("ps_number"), &self.ps_number, 14));
        if !ART_CATEGORIES.contains(&self.category.as_str()) {
            note(Err(invalid(
                key("category"),
                format!(
                    "{:?} is not an ART category ({})",
                    self.category,
                    ART_CATEGORIES.join(" ")
                ),
            )));
        }
        if let Some(m) = &self.mailbox {
            note(check_address(&key("mailbox"), m));
        }
    }
}

/// One AMO destination.
///
/// A lot matches the first route whose `organisation` equals the lot's destination organisation
/// (B2 lot header 17-19), else the first whose `regime` + `caisse` equal the lot's pivot régime and
/// caisse (89-93).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Destination organisation (3 digits).
    #[serde(default)]
    pub organisation: Option<String>,
    /// Pivot grand régime (2 characters).
    #[serde(default)]
    pub regime: Option<String>,
    /// Pivot caisse (3 characters).
    #[serde(default)]
    pub caisse: Option<String>,
    /// Mailbox of the destination.
    pub mailbox: String,
    /// Recipient type written in the forwarded file header (B2 `000` 26-27).
    #[serde(default = "default_recipient_type")]
    pub recipient_type: String,
    /// Recipient number written in the forwarded file header (B2 `000` 28-41); defaults to the
    /// organisation, or régime + caisse.
    #[serde(default)]
    pub recipient_number: Option<String>,
    /// Encrypt forwarded attachments for this certificate. Required unless `plaintext = true`.
    #[serde(default)]
    pub certificate: Option<PathBuf>,
    /// Forward claims in clear (no certificate): only for tests or a local hop. Without a
    /// certificate and without this, the configuration is refused.
    #[serde(default)]
    pub plaintext: bool,
}

fn default_recipient_type() -> String {
    "AM".into()
}

impl Route {
    /// A short label for logs and ART lines.
    pub fn label(&self) -> String {
        match (&self.organisation, &self.regime, &self.caisse) {
            (Some(o), _, _) => format!("organisation {o}"),
            (None, Some(r), Some(c)) => format!("regime {r} caisse {c}"),
            _ => "route".into(),
        }
    }

    /// Recipient number for the forwarded file header.
    pub fn recipient(&self) -> String {
        if let Some(n) = &self.recipient_number {
            return n.clone();
        }
        match (&self.organisation, &self.regime, &self.caisse) {
            (Some(o), _, _) => o.clone(),
            (None, Some(r), Some(c)) => format!("{r}{c}"),
            _ => String::new(),
        }
    }
}

/// One AMC destination of the complementary flow (R8.3).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AmcRoute {
    /// AMC organisation number (B2 type 2 positions 119-128), compared without trailing spaces.
    pub organisation: String,
    /// Mailbox of the AMC.
    pub mailbox: String,
    /// Encrypt for this certificate. Required unless `plaintext = true`.
    #[serde(default)]
    pub certificate: Option<PathBuf>,
    /// Forward the AMC lots in clear (no certificate): only for tests or a local hop.
    #[serde(default)]
    pub plaintext: bool,
}

/// TLS mode of the downstream SMTP connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain SMTP (loopback or a trusted relay only).
    #[default]
    None,
    /// STARTTLS required.
    Starttls,
    /// Implicit TLS (port 465).
    Implicit,
}

/// The downstream SMTP relay every outgoing message goes through (unless delivered locally).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    #[serde(default)]
    pub tls: SmtpTls,
    #[serde(default)]
    pub username: Option<String>,
    /// Redacted everywhere it could be printed.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Send the username and password even when `tls = "none"` (a relay on loopback). Without
    /// it, credentials without TLS are refused at start.
    #[serde(default)]
    pub allow_plaintext_auth: bool,
    /// Seconds before a connection or command times out.
    #[serde(default = "default_smtp_timeout")]
    pub timeout_secs: u64,
}

fn default_smtp_port() -> u16 {
    25
}
fn default_smtp_timeout() -> u64 {
    60
}

/// A mailbox hosted by the operator, delivered by writing into its Maildir.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LocalMailbox {
    /// The address (compared case-insensitively).
    pub address: String,
    /// The Maildir (`new/`, `cur/`, `tmp/` are created when missing).
    pub maildir: PathBuf,
}

/// How outgoing messages leave: local Maildirs first (exact address match), SMTP otherwise.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    #[serde(default)]
    pub smtp: Option<SmtpSettings>,
    #[serde(default, rename = "local")]
    pub local: Vec<LocalMailbox>,
    /// Write every message that is not for a local mailbox as an `.eml` file in this directory
    /// instead of sending it by SMTP (dry runs, benchmarks).
    #[serde(default)]
    pub directory: Option<PathBuf>,
    /// Parallel sender threads (each delivers one message at a time).
    #[serde(default = "default_senders")]
    pub senders: usize,
    /// Due messages a sender claims at once (one transaction): those for hosted mailboxes are
    /// delivered and recorded as one group, the others one at a time, each outcome recorded as
    /// soon as it is known.
    #[serde(default = "default_delivery_batch")]
    pub batch: usize,
}

fn default_delivery_batch() -> usize {
    32
}

fn default_senders() -> usize {
    8
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            smtp: None,
            local: Vec::new(),
            directory: None,
            senders: default_senders(),
            batch: default_delivery_batch(),
        }
    }
}

/// Where dLOI requests are answered from.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LoiSettings {
    /// A directory of increment files (any name); a request for version `v` is answered with
    /// every increment whose starting version is at least `v`, in version order.
    #[serde(default)]
    pub source: Option<PathBuf>,
}

/// Retries of outgoing messages after transient failures: exponential backoff.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// First delay, seconds.
    #[serde(default = "default_initial_backoff")]
    pub initial_backoff_secs: u64,
    /// Largest delay, seconds.
    #[serde(default = "default_max_backoff")]
    pub max_backoff_secs: u64,
    /// Attempts before the message is marked failed (and shown in `svoct oct status`).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
}

fn default_initial_backoff() -> u64 {
    5
}
fn default_max_backoff() -> u64 {
    3600
}
fn default_max_attempts() -> u32 {
    20
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_backoff_secs: default_initial_backoff(),
            max_backoff_secs: default_max_backoff(),
            max_attempts: default_max_attempts(),
        }
    }
}

impl RetryPolicy {
    /// Delay before attempt number `attempts + 1`, given `attempts` failed ones (≥ 1):
    /// `initial * 2^(attempts-1)`, capped at `max`.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let shift = attempts.saturating_sub(1).min(30);
        let secs = self
            .initial_backoff_secs
            .saturating_mul(1u64 << shift)
            .min(self.max_backoff_secs.max(self.initial_backoff_secs));
        Duration::from_secs(secs)
    }
}

/// Pipeline settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSettings {
    /// Worker threads over the spool.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Seconds a worker sleeps when the spool is empty (it is also woken by the ingress).
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    /// Largest decompressed attachment, bytes (16 MiB by default): a compression bomb costs a
    /// worker at most this much memory, and is quarantined with the reason.
    #[serde(default = "default_max_attachment")]
    pub max_attachment_bytes: u64,
    /// Spooled messages a worker takes at once (only those already waiting) and commits in one
    /// transaction: one durable write for the batch instead of one per message.
    #[serde(default = "default_pipeline_batch")]
    pub batch: usize,
}

fn default_pipeline_batch() -> usize {
    16
}

fn default_workers() -> usize {
    2
}
fn default_poll_ms() -> u64 {
    200
}
fn default_max_attachment() -> u64 {
    svoct_mail::compress::DEFAULT_MAX_DECOMPRESSED
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            workers: default_workers(),
            poll_interval_ms: default_poll_ms(),
            max_attachment_bytes: default_max_attachment(),
            batch: default_pipeline_batch(),
        }
    }
}

/// Quarantine settings: the content of quarantined messages (kept once, in the state database)
/// has its own bound, apart from the ingress spool, and a retention period. See
/// `docs/oct.md` (quarantine).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QuarantineSettings {
    /// Bytes of quarantined content kept; beyond, the oldest contents are removed (their reason
    /// and metadata stay).
    #[serde(default = "default_quarantine_bytes")]
    pub max_bytes: u64,
    /// Days a quarantined message's content is kept.
    #[serde(default = "default_quarantine_days")]
    pub retention_days: u32,
    /// Rows of purged messages (reason and metadata, content removed) kept; beyond, the oldest
    /// are deleted (each was logged when its content was removed).
    #[serde(default = "default_purged_rows")]
    pub max_purged_rows: u64,
}

fn default_purged_rows() -> u64 {
    100_000
}

fn default_quarantine_bytes() -> u64 {
    1024 * 1024 * 1024
}
fn default_quarantine_days() -> u32 {
    30
}

impl Default for QuarantineSettings {
    fn default() -> Self {
        QuarantineSettings {
            max_bytes: default_quarantine_bytes(),
            retention_days: default_quarantine_days(),
            max_purged_rows: default_purged_rows(),
        }
    }
}

impl QuarantineSettings {
    /// The retention period in seconds.
    pub fn retention_secs(&self) -> i64 {
        i64::from(self.retention_days) * 86_400
    }
}

fn check_address(key: &str, value: &str) -> Result<(), ConfigError> {
    if value.is_empty() || value.len() > 254 {
        return Err(invalid(key, "an address must be 1 to 254 characters"));
    }
    if value
        .bytes()
        .any(|b| b.is_ascii_control() || b == b' ' || !b.is_ascii())
    {
        return Err(invalid(
            key,
            "an address may not contain spaces, control or non-ASCII characters",
        ));
    }
    let at = value
        .find('@')
        .ok_or_else(|| invalid(key, "an address needs an '@'"))?;
    if at == 0 || at + 1 == value.len() || value[at + 1..].contains('@') {
        return Err(invalid(key, format!("{value:?} is not a mail address")));
    }
    Ok(())
}

/// A route forwards claims (names, social security numbers): encrypted for its certificate, or
/// in clear only when the operator wrote so.
fn check_encryption(key: &str, has_certificate: bool, plaintext: bool) -> Result<(), ConfigError> {
    match (has_certificate, plaintext) {
        (false, false) => Err(invalid(
            format!("{key}.certificate"),
            "a route without certificate would forward claims in clear: give it a certificate, \
             or write plaintext = true (tests, a local hop)",
        )),
        (true, true) => Err(invalid(
            format!("{key}.plaintext"),
            "plaintext = true and a certificate contradict each other",
        )),
        _ => Ok(()),
    }
}

fn check_digits(key: &str, value: &str, max: usize) -> Result<(), ConfigError> {
    if value.is_empty() || value.len() > max || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(key, format!("must be 1 to {max} digits, got {value:?}")));
    }
    Ok(())
}

fn check_text(key: &str, value: &str, max: usize) -> Result<(), ConfigError> {
    if value.is_empty() || value.len() > max || value.bytes().any(|b| !b.is_ascii() || b.is_ascii_control()) {
        return Err(invalid(
            key,
            format!("must be 1 to {max} ASCII characters, got {value:?}"),
        ));
    }
    Ok(())
}

impl Config {
    /// Reads and checks a configuration file; the error names the file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let config = Config::load_unchecked(path)?;
        config.check().map_err(|e| e.in_file(path))?;
        Ok(config)
    }

    /// Reads a configuration file without the consistency checks ([`Config::problems`] lists
    /// them): `svoct oct check` reports every problem at once, not only the first.
    pub fn load_unchecked(path: &Path) -> Result<Config, ConfigError> {
        let read = |source| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        // Read through a bound, not by the size the file claims: a device (`/dev/zero`) or a
        // file growing meanwhile claims a size it does not keep.
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut std::io::Read::take(std::fs::File::open(path).map_err(read)?, MAX_CONFIG_BYTES + 1),
            &mut text,
        )
        .map_err(read)?;
        let len = text.len() as u64;
        if len > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge {
                path: path.to_owned(),
                len,
                max: MAX_CONFIG_BYTES,
            });
        }
        let mut config = Config::parse_unchecked(&text).map_err(|e| e.in_file(path))?;
        // Relative paths are relative to the configuration file, so a config directory can move.
        if let Some(base) = path.parent() {
            config.resolve_relative(base);
        }
        Ok(config)
    }

    /// Parses and checks configuration text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let config = Config::parse_unchecked(text)?;
        config.check()?;
        Ok(config)
    }

    fn parse_unchecked(text: &str) -> Result<Config, ConfigError> {
        // The parser's own message quotes the offending line, which may be the password's.
        toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: PathBuf::new(),
            message: svoct_mail::secret::config_error_text(text, e.span(), e.message()),
        })
    }

    fn resolve_relative(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.paths.spool);
        fix(&mut self.paths.state);
        fix(&mut self.keys.private_key);
        fix(&mut self.keys.certificate);
        for p in [&mut self.ingress.tls_certificate, &mut self.ingress.tls_key]
            .into_iter()
            .flatten()
        {
            fix(p);
        }
        if let Some(h) = &mut self.http {
            h.resolve_relative(base);
        }
        for s in &mut self.senders {
            if let Some(c) = &mut s.certificate {
                fix(c);
            }
        }
        for r in &mut self.routes {
            if let Some(c) = &mut r.certificate {
                fix(c);
            }
        }
        for a in &mut self.amc {
            if let Some(c) = &mut a.certificate {
                fix(c);
            }
        }
        for l in &mut self.delivery.local {
            fix(&mut l.maildir);
        }
        if let Some(d) = &mut self.delivery.directory {
            fix(d);
        }
        if let Some(s) = &mut self.loi.source {
            fix(s);
        }
    }

    /// Consistency checks that serde cannot express: the first problem found.
    pub fn check(&self) -> Result<(), ConfigError> {
        match self.problems().into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Every consistency problem, in file order (`svoct oct check` reports them all at once).
    pub fn problems(&self) -> Vec<ConfigError> {
        let mut errs = Vec::new();
        let mut note = |r: Result<(), ConfigError>| {
            if let Err(e) = r {
                errs.push(e);
            }
        };
        self.identity_problems(&mut note);
        self.sender_problems(&mut note);
        self.route_problems(&mut note);
        self.delivery_problems(&mut note);
        self.limit_problems(&mut note);
        for (key, reason) in self.http.iter().flat_map(crate::http::HttpSettings::problems) {
            note(Err(invalid(key, reason)));
        }
        errs
    }

    /// `[oct]` and `[ingress]`.
    fn identity_problems(&self, note: &mut impl FnMut(Result<(), ConfigError>)) {
        note(check_text("oct.identifier", &self.oct.identifier, 14));
        note(check_text("oct.sender_type", &self.oct.sender_type, 2));
        note(check_digits("oct.sender_number", &self.oct.sender_number, 14));
        note(check_address("oct.address", &self.oct.address));
        for (i, a) in self.ingress.addresses.iter().enumerate() {
            note(check_address(&format!("ingress.addresses[{i}]"), a));
        }
        match (&self.ingress.tls_certificate, &self.ingress.tls_key) {
            (Some(_), None) => note(Err(invalid(
                "ingress.tls_key",
                "missing: ingress.tls_certificate is set, STARTTLS needs its key",
            ))),
            (None, Some(_)) => note(Err(invalid(
                "ingress.tls_certificate",
                "missing: ingress.tls_key is set, STARTTLS needs its certificate",
            ))),
            _ => {}
        }
        note(check_text("oct.name", &self.oct.name, 40));
        note(check_digits("oct.spec_version", &self.oct.spec_version, 6));
    }

    /// `[[sender]]`: each address registered once.
    fn sender_problems(&self, note: &mut impl FnMut(Result<(), ConfigError>)) {
        let mut by_address = BTreeMap::new();
        for (i, s) in self.senders.iter().enumerate() {
            let key = |f: &str| format!("sender[{i}].{f}");
            s.field_problems(&format!("sender[{i}]"), note);
            if by_address
                .insert(s.address.to_ascii_lowercase(), s.sender_number.clone())
                .is_some()
            {
                note(Err(invalid(
                    key("address"),
                    format!("{} is registered twice", s.address),
                )));
            }
        }
    }

    /// `[[route]]` and `[[amc]]`: where lots go, and how they are protected.
    fn route_problems(&self, note: &mut impl FnMut(Result<(), ConfigError>)) {
        for (i, r) in self.routes.iter().enumerate() {
            let key = |f: &str| format!("route[{i}].{f}");
            note(check_address(&key("mailbox"), &r.mailbox));
            note(check_text(&key("recipient_type"), &r.recipient_type, 2));
            match (&r.organisation, &r.regime, &r.caisse) {
                (Some(o), None, None) => note(check_digits(&key("organisation"), o, 3)),
                (None, Some(g), Some(c)) => {
                    note(check_text(&key("regime"), g, 2));
                    note(check_text(&key("caisse"), c, 3));
                }
                _ => {
                    note(Err(invalid(
                        format!("route[{i}]"),
                        "a route names either `organisation`, or `regime` and `caisse`",
                    )));
                }
            }
            if let Some(n) = &r.recipient_number {
                note(check_text(&key("recipient_number"), n, 14));
            }
            note(check_encryption(
                &format!("route[{i}]"),
                r.certificate.is_some(),
                r.plaintext,
            ));
        }
        for (i, a) in self.amc.iter().enumerate() {
            note(check_text(
                &format!("amc[{i}].organisation"),
                a.organisation.trim_end(),
                10,
            ));
            note(check_address(&format!("amc[{i}].mailbox"), &a.mailbox));
            note(check_encryption(
                &format!("amc[{i}]"),
                a.certificate.is_some(),
                a.plaintext,
            ));
        }
    }

    /// `[[delivery.local]]` and `[delivery.smtp]`.
    fn delivery_problems(&self, note: &mut impl FnMut(Result<(), ConfigError>)) {
        for (i, l) in self.delivery.local.iter().enumerate() {
            note(check_address(&format!("delivery.local[{i}].address"), &l.address));
        }
        if let Some(smtp) = &self.delivery.smtp {
            note(check_text("delivery.smtp.host", &smtp.host, 253));
            if smtp.password.is_some() && smtp.username.is_none() {
                note(Err(invalid(
                    "delivery.smtp.password",
                    "a password needs a username",
                )));
            }
            if smtp.username.is_some() && smtp.tls == SmtpTls::None && !smtp.allow_plaintext_auth {
                note(Err(invalid(
                    "delivery.smtp.tls",
                    "credentials would be sent without TLS: set tls = \"starttls\" or \"implicit\", \
                     or allow_plaintext_auth = true for a relay on loopback",
                )));
            }
        }
    }

    /// Worker counts, batches, retention and retries.
    fn limit_problems(&self, note: &mut impl FnMut(Result<(), ConfigError>)) {
        if self.pipeline.workers == 0 || self.pipeline.workers > 64 {
            note(Err(invalid("pipeline.workers", "must be 1 to 64")));
        }
        if self.delivery.senders == 0 || self.delivery.senders > 64 {
            note(Err(invalid("delivery.senders", "must be 1 to 64")));
        }
        if self.pipeline.batch == 0 || self.pipeline.batch > 1024 {
            note(Err(invalid("pipeline.batch", "must be 1 to 1024")));
        }
        if self.delivery.batch == 0 || self.delivery.batch > 1024 {
            note(Err(invalid("delivery.batch", "must be 1 to 1024")));
        }
        if self.quarantine.retention_days == 0 {
            note(Err(invalid("quarantine.retention_days", "must be at least 1")));
        }
        if self.retry.max_attempts == 0 {
            note(Err(invalid("retry.max_attempts", "must be at least 1")));
        }
        if self.retry.initial_backoff_secs == 0 {
            note(Err(invalid("retry.initial_backoff_secs", "must be at least 1")));
        }
    }

    /// The AMO route for a lot's destination organisation and pivot régime + caisse.
    pub fn route_for(&self, organisation: &str, regime: &str, caisse: &str) -> Option<&Route> {
        let org = organisation.trim();
        self.routes
            .iter()
            .find(|r| r.organisation.as_deref() == Some(org))
            .or_else(|| {
                self.routes.iter().find(|r| {
                    r.organisation.is_none()
                        && r.regime.as_deref() == Some(regime.trim())
                        && r.caisse.as_deref() == Some(caisse.trim())
                })
            })
    }

    /// Every route that forwards claims in clear (`plaintext = true`), as `route[i] <label> ->
    /// <mailbox>` / `amc[i] <organisation> -> <mailbox>`, for `svoct oct status` and the start log.
    pub fn plaintext_routes(&self) -> Vec<String> {
        let amo = self
            .routes
            .iter()
            .enumerate()
            .filter(|(_, r)| r.plaintext)
            .map(|(i, r)| format!("route[{i}] {} -> {}", r.label(), r.mailbox));
        let amc = self
            .amc
            .iter()
            .enumerate()
            .filter(|(_, a)| a.plaintext)
            .map(|(i, a)| {
                format!(
                    "amc[{i}] organisation {} -> {}",
                    a.organisation.trim_end(),
                    a.mailbox
                )
            });
        amo.chain(amc).collect()
    }

    /// The AMC route for an AMC organisation number.
    pub fn amc_for(&self, organisation: &str) -> Option<&AmcRoute> {
        let org = organisation.trim();
        self.amc.iter().find(|a| a.organisation.trim_end() == org)
    }

    /// The Maildir of an operator-hosted mailbox, if `address` is one.
    pub fn local_maildir(&self, address: &str) -> Option<&Path> {
        self.delivery
            .local
            .iter()
            .find(|l| l.address.eq_ignore_ascii_case(address))
            .map(|l| l.maildir.as_path())
    }

    /// Every address the ingress accepts mail for: `oct.address` and `ingress.addresses`.
    pub fn own_addresses(&self) -> Vec<String> {
        std::iter::once(&self.oct.address)
            .chain(&self.ingress.addresses)
            .cloned()
            .collect()
    }

    /// The domain of the OCT's address, used in the Message-IDs it generates.
    pub fn domain(&self) -> &str {
        self.oct
            .address
            .rsplit_once('@')
            .map(|(_, d)| d)
            .unwrap_or("oct.invalid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const EXAMPLE: &str = r#"
[oct]
identifier = "OCT12345678901"
sender_number = "12345678901234"
address = "oct@oct.example"

[paths]
spool = "spool"
state = "state.sqlite"

[keys]
private_key = "oct.key"
certificate = "oct.crt"

[[sender]]
address = "Ps1@ps.example"
sender_number = "00000123456789"
ps_number = "123456789"
category = "ER"

[[route]]
organisation = "011"
mailbox = "cpam@am.example"
plaintext = true

[[route]]
regime = "01"
caisse = "751"
mailbox = "cpam75@am.example"
recipient_number = "01751"
certificate = "am.crt"

[[amc]]
organisation = "0123456789"
mailbox = "mutuelle@amc.example"
plaintext = true

[delivery.smtp]
host = "127.0.0.1"
port = 2526
username = "oct"
password = "hunter2"
allow_plaintext_auth = true

[[delivery.local]]
address = "ps1@ps.example"
maildir = "maildirs/ps1"
"#;

    #[test]
    fn the_ingress_accepts_the_oct_address_and_the_listed_ones_only() {
        let with = |addresses: &str| {
            let text = EXAMPLE.replace(
                "[paths]",
                &format!("[ingress]\naddresses = {addresses}\n\n[paths]"),
            );
            Config::parse(&text)
        };
        let c = with(r#"["Retours@oct.example"]"#).unwrap();
        assert_eq!(c.own_addresses(), ["oct@oct.example", "Retours@oct.example"]);
        let ic = c.ingress.ingress_config(c.domain(), c.own_addresses());
        assert!(ic.session.recipients.accepts("retours@OCT.example"));
        assert!(ic.session.recipients.accepts("oct@oct.example"));
        assert!(!ic.session.recipients.accepts("victim@gmail.com"));
        assert!(
            !Config::parse(EXAMPLE)
                .unwrap()
                .ingress
                .ingress_config("x", vec![])
                .session
                .recipients
                .accepts("oct@oct.example")
        );
        let err = with(r#"["not an address"]"#).unwrap_err().to_string();
        assert!(err.contains("ingress.addresses[0]"), "{err}");
    }

    #[test]
    fn the_documented_example_parses() {
        let c = Config::parse(include_str!("../../../docs/oct.example.toml"))
            .expect("docs/oct.example.toml is valid");
        assert_eq!(c.delivery.smtp.as_ref().map(|s| s.tls), Some(SmtpTls::Starttls));
        assert_eq!(c.routes.len(), 2);
        assert!(!format!("{c:?}").contains("change-me"));
        assert_eq!(c.pipeline.max_attachment_bytes, 16 * 1024 * 1024);
        assert_eq!(
            (c.quarantine.max_bytes, c.quarantine.retention_days),
            (1 << 30, 30)
        );
    }

    #[test]
    fn quarantine_settings_default_and_are_checked() {
        let c = Config::parse(EXAMPLE).expect("example parses");
        assert_eq!(c.quarantine.max_bytes, 1 << 30);
        assert_eq!(c.quarantine.retention_secs(), 30 * 86_400);
        assert_eq!(c.pipeline.max_attachment_bytes, 16 * 1024 * 1024);
        let set = Config::parse(&format!(
            "{EXAMPLE}\n[quarantine]\nmax_bytes = 5000\nretention_days = 2\n"
        ))
        .expect("settings parse");
        assert_eq!(
            (set.quarantine.max_bytes, set.quarantine.retention_secs()),
            (5000, 172_800)
        );
        let e = Config::parse(&format!("{EXAMPLE}\n[quarantine]\nretention_days = 0\n"))
            .expect_err("no retention");
        assert!(e.to_string().contains("quarantine.retention_days"), "{e}");
    }

    #[test]
    fn parses_example_and_looks_up() {
        let c = Config::parse(EXAMPLE).expect("example parses");
        assert_eq!(c.oct.sender_type, "OT");
        assert_eq!(c.domain(), "oct.example");
        // The `[[sender]]` blocks, looked up as the pipeline does (through its directory).
        let practices = crate::practices::Practices::from_config(&c);
        let s = &practices
            .by_address("ps1@PS.example")
            .expect("case-insensitive")
            .sender;
        assert_eq!(s.return_mailbox(), "Ps1@ps.example");
        assert!(practices.by_sender_number("123456789").is_some());
        assert!(practices.by_ps_number("000123456789").is_some());
        assert_eq!(
            c.route_for("011", "", "").map(|r| r.mailbox.as_str()),
            Some("cpam@am.example")
        );
        let r = c.route_for("999", "01", "751").expect("by regime and caisse");
        assert_eq!(r.recipient(), "01751");
        assert!(c.route_for("999", "02", "751").is_none());
        assert!(c.amc_for("0123456789").is_some());
        assert!(c.local_maildir("PS1@ps.example").is_some());
        assert_eq!(c.retry.backoff(1), Duration::from_secs(5));
        assert_eq!(c.retry.backoff(3), Duration::from_secs(20));
        assert_eq!(c.retry.backoff(40), Duration::from_secs(3600));
    }

    #[test]
    fn password_is_redacted() {
        let c = Config::parse(EXAMPLE).expect("example parses");
        let debug = format!("{c:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        let json = serde_json::to_string(&c).expect("serialises");
        assert!(!json.contains("hunter2"), "{json}");
        assert!(json.contains("[redacted]"));
    }

    #[test]
    fn refuses_inconsistencies() {
        let dup = EXAMPLE.replace(
            "[[route]]\norganisation = \"011\"",
            "[[sender]]\naddress = \"ps1@ps.example\"\nsender_number = \"1\"\nps_number = \"1\"\n\n[[route]]\norganisation = \"011\"",
        );
        let e = Config::parse(&dup).expect_err("duplicate sender");
        assert!(e.to_string().contains("registered twice"), "{e}");

        let bad_route = EXAMPLE.replace("regime = \"01\"\n", "");
        let e = Config::parse(&bad_route).expect_err("caisse without regime");
        assert!(e.to_string().contains("route[1]"), "{e}");

        let crlf = EXAMPLE.replace("oct@oct.example", "oct@oct.example\\r\\nBcc: x@y");
        let e = Config::parse(&crlf).expect_err("header injection");
        assert!(e.to_string().contains("oct.address"), "{e}");

        let cat = EXAMPLE.replace("\"ER\"", "\"ZZ\"");
        assert!(Config::parse(&cat).is_err());

        let unknown = format!("{EXAMPLE}\n[bogus]\nx = 1\n");
        let e = Config::parse(&unknown).expect_err("unknown table");
        assert!(e.to_string().contains("bogus"), "{e}");
    }

    #[test]
    fn problems_lists_every_inconsistency_and_load_names_the_file() {
        let bad = EXAMPLE
            .replace("oct@oct.example", "no-at-sign")
            .replace("\"ER\"", "\"ZZ\"")
            .replace(
                "[[route]]\norganisation = \"011\"",
                "[[route]]\norganisation = \"1A\"",
            );
        let c = Config::parse_unchecked(&bad).expect("syntax is fine");
        let keys: Vec<String> = c
            .problems()
            .into_iter()
            .map(|e| match e {
                ConfigError::Invalid { key, .. } => key,
                other => panic!("{other}"),
            })
            .collect();
        assert_eq!(
            keys,
            ["oct.address", "sender[0].category", "route[0].organisation"]
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("oct.toml");
        std::fs::write(&path, &bad).expect("write");
        let e = Config::load(&path).expect_err("inconsistent").to_string();
        assert!(
            e.contains(&format!("{}: setting oct.address", path.display())),
            "{e}"
        );
    }

    #[test]
    fn a_route_without_certificate_needs_plaintext() {
        let c = Config::parse(EXAMPLE).expect("example parses");
        assert_eq!(
            c.plaintext_routes(),
            vec![
                "route[0] organisation 011 -> cpam@am.example",
                "amc[0] organisation 0123456789 -> mutuelle@amc.example"
            ]
        );
        let amo = EXAMPLE.replacen("plaintext = true\n", "", 1);
        let e = Config::parse(&amo).expect_err("route in clear without saying so");
        assert!(e.to_string().contains("route[0].certificate"), "{e}");
        let amc = EXAMPLE.replace(
            "mutuelle@amc.example\"\nplaintext = true\n",
            "mutuelle@amc.example\"\n",
        );
        let e = Config::parse(&amc).expect_err("amc in clear without saying so");
        assert!(e.to_string().contains("amc[0].certificate"), "{e}");
        let both = EXAMPLE.replace(
            "certificate = \"am.crt\"\n",
            "certificate = \"am.crt\"\nplaintext = true\n",
        );
        let e = Config::parse(&both).expect_err("contradiction");
        assert!(e.to_string().contains("route[1].plaintext"), "{e}");
    }

    #[test]
    fn credentials_without_tls_need_allow_plaintext_auth() {
        let no_allow = EXAMPLE.replace("allow_plaintext_auth = true\n", "");
        let e = Config::parse(&no_allow).expect_err("password in clear");
        assert!(e.to_string().contains("allow_plaintext_auth"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let tls = no_allow.replace("port = 2526\n", "port = 2526\ntls = \"starttls\"\n");
        Config::parse(&tls).expect("STARTTLS needs no permission");
    }

    #[test]
    fn a_syntax_error_on_the_password_line_does_not_show_it() {
        let broken = EXAMPLE.replace("password = \"hunter2\"", "password = \"hunter2");
        let e = Config::parse(&broken).expect_err("unterminated string");
        let shown = e.to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("line "), "{shown}");
        let typed = EXAMPLE.replace("password = \"hunter2\"", "password = 4242424242");
        let e = Config::parse(&typed).expect_err("wrong type");
        assert!(!e.to_string().contains("4242424242"), "{e}");
    }

    #[test]
    fn relative_paths_follow_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("oct.toml");
        std::fs::write(&path, EXAMPLE).expect("write");
        let c = Config::load(&path).expect("loads");
        assert_eq!(c.paths.state, dir.path().join("state.sqlite"));
        assert_eq!(c.delivery.local[0].maildir, dir.path().join("maildirs/ps1"));
    }
}
