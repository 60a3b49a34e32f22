//! Processing one spooled message: the pure part of the concentrator.
//!
//! [`Pipeline::process`] takes the bytes the ingress accepted and returns a [`Processed`]: every
//! message to send (forwarded files, the complementary AMC flow, the ART, relayed returns) as
//! final bytes with deterministic Message-IDs, or a quarantine decision with its reason (and an
//! explanatory ART when the sender is known). It does no I/O besides what [`Env`] gives it
//! (sequence numbers, the OCT-built lots, the files of the LOI source), so the worker can commit
//! its result in one transaction and every path is testable without servers.
//!
//! Invoice messages (R8.1-R8.3): parse the profile; look the `From` address up among the
//! registered senders; decrypt with the OCT key; parse the B2 file; check the subject against the
//! file (sender number, invoice count); authorise (the file's sender number must be the one
//! registered for that address, and every lot must be that PS's); validate and refuse the lots
//! with findings; split enriched FSE with contract type 99 (the AMO lot marked `A` at type 5
//! position 90, the invoices grouped per AMC); route every lot (refusing the whole message when a
//! destination has no route, so that fixing the table and retrying forwards everything once);
//! build per-destination files with the OCT as sender; encrypt when the route has a certificate;
//! and write the ART. No double billing: a lot already forwarded (the processed index, through
//! [`Env::forwarded_lot`]) is reported `DEJA_TRANSMIS`, not forwarded; another file under a
//! compostage already used by the sender is refused; what the message forwards is returned as
//! its [`Claims`](crate::state::Claims), which the commit checks against the index.
//!
//! Returns from AM (ARL, RSP, dLOI increments) are relayed to the PS named by the message (R8.4),
//! except ARL addressed to the OCT itself, which acknowledge lots it built (R4.2). dLOI requests
//! are answered from the LOI source.
//!
//! One file per group of steps: `invoice` (open the B2, authorise the sender, the compostage),
//! `lots` (triage the findings, plan every lot), `forward` (forward per route, build the AMC
//! flow), `relay` (the open step, returns from AM, dLOI requests), `out` (what the OCT writes:
//! messages, ART, subjects, files), `refusal` (the refusal codes). A step returns
//! `Result<_, Refusal>` (or `Halt`, when it also asks [`Env`] and may fail with it);
//! [`Pipeline::process`] turns a refusal into the quarantine decision.

use std::path::{Path, PathBuf};

use serde_json::json;
use svoct_mail::profile::{self, ParseLimits, ParsedMessage, Profile};
use svoct_mail::subject::Compostage;
use time::{OffsetDateTime, PrimitiveDateTime};

use crate::config::{Config, Sender};
use crate::practices::{CertSlot, Practice, Practices};
use crate::relay_formats::LoiSourceError;
use crate::state::{InvoiceNature, MessageKind, OutKind, Processed, QuarantineEntry, SeenInvoice, SeenLot};

mod forward;
mod invoice;
mod keys;
mod lots;
mod out;
mod refusal;
mod relay;

pub use keys::Keys;
pub use out::{ForwardFailure, forward_failure_art};
pub use refusal::{Refusal, RefusalCode};
pub use svoct_formats::b2::OCT_LOT_ORIGIN;

use out::{Echo, Out};
pub(crate) use refusal::Halt;

/// *Norme* of the `000` records the OCT writes (provisional, same value as the B2 builders).
pub const OCT_FILE_NORME: &str = "SV14";

/// *Application* of the files the OCT forwards to AM (provisional: the direct-mode value).
pub const OCT_FILE_APPLICATION: &str = "SV";

/// Infrastructure failures: the message is released and processed again later.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A sequence or lookup in the state database failed.
    #[error("state: {0}")]
    State(#[from] crate::state::StateError),
    /// A key or certificate could not be loaded.
    #[error("{what} {path}: {source}")]
    Key {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: svoct_mail::cms::CmsError,
    },
    /// A value the OCT itself writes was refused (configuration problem).
    #[error("building an outgoing message: {0}")]
    Build(String),
}

/// What the pipeline asks of its surroundings.
pub trait Env {
    /// A fresh compostage for a subject the OCT writes.
    fn compostage(&mut self) -> Result<Compostage, PipelineError>;
    /// A fresh 6-character file name for a file the OCT builds.
    fn file_id(&mut self) -> Result<String, PipelineError>;
    /// A fresh lot number (1..=999) for a lot the OCT builds.
    fn lot_number(&mut self) -> Result<u32, PipelineError>;
    /// Whether (lot number, lot date, file name) is a lot the OCT built (an empty file name
    /// matches any file).
    fn is_own_lot(&mut self, number: &str, date: &str, file_id: &str) -> Result<bool, PipelineError>;
    /// The lot whose sealed bytes hash to `lot_hash`, if the OCT already forwarded it.
    fn forwarded_lot(&mut self, lot_hash: &str) -> Result<Option<SeenLot>, PipelineError>;
    /// The first invoice `invoice_number` of PS `ps_number` (leading zeros removed) the OCT
    /// forwarded as `nature`, if any (R3.4, the processed index).
    fn forwarded_invoice(
        &mut self,
        ps_number: &str,
        invoice_number: u64,
        nature: InvoiceNature,
    ) -> Result<Option<SeenInvoice>, PipelineError>;
    /// The hash of the file an accepted message of `sender_number` carried under `compostage`.
    fn compostage_file(
        &mut self,
        sender_number: &str,
        compostage: &str,
    ) -> Result<Option<String>, PipelineError>;
    /// The files of the LOI source `source` (`loi.source`), for answering a dLOI request: the
    /// pipeline reads no directory itself.
    fn loi_files(&mut self, source: &Path) -> Result<Vec<Vec<u8>>, LoiSourceError>;
    /// The current time.
    fn now(&self) -> OffsetDateTime;
}

/// A spooled message handed to the pipeline.
#[derive(Clone, Copy)]
pub struct Incoming<'a> {
    /// The spool's identifier (stable across restarts).
    pub spool_id: &'a str,
    /// `MAIL FROM`.
    pub mail_from: &'a str,
    /// `RCPT TO`.
    pub rcpt_to: &'a [String],
    /// The message octets.
    pub raw: &'a [u8],
}

impl std::fmt::Debug for Incoming<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming")
            .field("spool_id", &self.spool_id)
            .field("mail_from", &self.mail_from)
            .field("bytes", &self.raw.len())
            .finish()
    }
}

/// The first 16 hex digits of the SHA-256 of the message: part of every Message-ID the OCT
/// derives from it.
pub fn digest(raw: &[u8]) -> String {
    openssl::sha::sha256(raw)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The Message-ID (without brackets) of the `n`-th message produced from a spooled message
/// (ARTs, relayed returns, dLOI answers; forwarded files use [`lots_message_id`]):
/// deterministic, so a resend after a crash carries the same one and receivers can de-duplicate.
pub fn message_id(digest: &str, spool_id: &str, n: usize, kind: OutKind, domain: &str) -> String {
    format!("{digest}.{spool_id}.{n}.{}@{domain}", kind.as_str())
}

/// SHA-256 of `bytes`, hex: the identity of a lot (its sealed bytes) or of a decrypted file.
pub fn content_hash(bytes: &[u8]) -> String {
    openssl::sha::sha256(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The Message-ID (without brackets) of a file the OCT forwards: derived from the lots it
/// carries (their hashes) and its recipient, never from the spooled message, so that the same
/// lots forwarded again (should a duplicate slip through) carry the same Message-ID and are
/// dropped by the outbox and by receivers that de-duplicate.
pub fn lots_message_id(kind: OutKind, to: &str, lot_hashes: &[&str], domain: &str) -> String {
    let mut h = openssl::sha::Sha256::new();
    h.update(kind.as_str().as_bytes());
    h.update(b"\n");
    h.update(to.to_ascii_lowercase().as_bytes());
    for l in lot_hashes {
        h.update(b"\n");
        h.update(l.as_bytes());
    }
    let digest: String = h.finish().iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{digest}.{}@{domain}", kind.as_str())
}

/// Extracts the address from a `From` header value (`"Name" <a@b>` or `a@b`).
fn address_of(header: &str) -> &str {
    match (header.rfind('<'), header.rfind('>')) {
        (Some(a), Some(b)) if a < b => header.get(a + 1..b).unwrap_or("").trim(),
        _ => header.trim(),
    }
}

fn yymmdd(now: OffsetDateTime) -> String {
    format!(
        "{:02}{:02}{:02}",
        now.year().rem_euclid(100),
        u8::from(now.month()),
        now.day()
    )
}

fn primitive(now: OffsetDateTime) -> PrimitiveDateTime {
    PrimitiveDateTime::new(now.date(), now.time())
}

/// The concentrator's processing of one message.
pub struct Pipeline<'a> {
    pub config: &'a Config,
    pub keys: &'a Keys,
    pub limits: ParseLimits,
    /// Where senders are looked up: the practices as the worker's directory last read them.
    pub practices: std::sync::Arc<Practices>,
}

impl std::fmt::Debug for Pipeline<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").finish_non_exhaustive()
    }
}

impl<'a> Pipeline<'a> {
    /// A pipeline with default parse limits bounded by the configuration, whose practices are
    /// the configuration's `[[sender]]` blocks (no state database: tests, embedding).
    pub fn new(config: &'a Config, keys: &'a Keys) -> Pipeline<'a> {
        Pipeline::with_practices(config, keys, std::sync::Arc::new(Practices::from_config(config)))
    }

    /// A pipeline looking senders up in `practices` (the service's, from the state database).
    pub fn with_practices(
        config: &'a Config,
        keys: &'a Keys,
        practices: std::sync::Arc<Practices>,
    ) -> Pipeline<'a> {
        let limits = ParseLimits {
            max_message_bytes: config.ingress.max_message_bytes.saturating_add(64 * 1024),
            max_decompressed: config.pipeline.max_attachment_bytes,
        };
        Pipeline {
            config,
            keys,
            limits,
            practices,
        }
    }

    /// The certificate returns for practice `p` are encrypted for (`None`: in clear), or the
    /// refusal `ps_certificate` when the one registered cannot be used.
    fn practice_cert(p: &Practice) -> Result<Option<&svoct_mail::cms::RecipientCert>, Refusal> {
        match &p.cert {
            CertSlot::None => Ok(None),
            CertSlot::Loaded(c) => Ok(Some(c)),
            CertSlot::Unusable(why) => Err(Refusal::new(
                RefusalCode::PsCertificate,
                format!(
                    "the certificate of PS {} cannot be used: {why}",
                    p.sender.ps_number
                ),
            )),
        }
    }

    /// Processes one spooled message. Never fails on its content: anything wrong with the
    /// message becomes a quarantine decision in the result. `Err` means the surroundings failed
    /// (state database): the caller releases the message and tries again later.
    pub fn process(&self, msg: Incoming<'_>, env: &mut dyn Env) -> Result<Processed, PipelineError> {
        let digest = digest(msg.raw);
        let mut out = Out {
            config: self.config,
            digest: digest.clone(),
            spool_id: msg.spool_id.to_owned(),
            list: Vec::new(),
        };
        let parsed = profile::parse_message(msg.raw, &self.limits);
        let (from_header, subject_text) = match &parsed {
            Ok(p) => (p.headers.from.clone(), p.subject.to_string()),
            Err(_) => (None, String::new()),
        };
        let from = from_header
            .as_deref()
            .map(address_of)
            .filter(|a| !a.is_empty())
            .unwrap_or(msg.mail_from)
            .to_owned();
        let mut result = Processed {
            spool_id: msg.spool_id.to_owned(),
            digest,
            kind: MessageKind::Unknown,
            mail_from: from.clone(),
            subject: subject_text,
            summary: serde_json::Value::Null,
            outgoing: Vec::new(),
            own_lots: Vec::new(),
            own_arls: Vec::new(),
            quarantine: None,
            retried_quarantine: None,
            claims: Default::default(),
        };
        let sender = self.practices.by_address(&from);
        let outcome = match parsed {
            Ok(parsed) => {
                let work = Work {
                    parsed: &parsed,
                    sender,
                    result: &mut result,
                    out: &mut out,
                };
                self.dispatch(work, env)
            }
            Err(e) => self.unreadable(&mut out, msg.raw, sender.map(|p| &p.sender), &e, env),
        };
        match outcome {
            Ok(()) => {}
            Err(Halt::Refused(r)) => Self::quarantine(&mut result, msg, r),
            Err(Halt::Failed(e)) => return Err(e),
        }
        result.outgoing = out.list;
        Ok(result)
    }

    /// Hands a readable message to the processing of its profile.
    fn dispatch(&self, work: Work<'_, '_>, env: &mut dyn Env) -> Result<(), Halt> {
        match work.parsed.description.profile {
            Profile::Invoice(_) => {
                work.result.kind = MessageKind::Invoice;
                self.invoice(work, env)
            }
            Profile::Arl | Profile::Rsp | Profile::DloiIncrement => {
                work.result.kind = MessageKind::Relay;
                self.relay(work, env)
            }
            Profile::DloiRequest => {
                work.result.kind = MessageKind::LoiRequest;
                self.loi_request(work, env)
            }
            Profile::Art(_) => Err(Refusal::new(
                RefusalCode::UnexpectedProfile,
                "an ART is sent by an OCT, never received by one",
            )
            .into()),
        }
    }

    /// A message that cannot be parsed: refused, with an ART echoing what it said about itself
    /// when its sender is known.
    fn unreadable(
        &self,
        out: &mut Out<'_>,
        raw: &[u8],
        sender: Option<&Sender>,
        error: &profile::ProfileError,
        env: &mut dyn Env,
    ) -> Result<(), Halt> {
        let r = Refusal::new(
            RefusalCode::UnreadableMessage,
            format!("message illisible (en-tetes ou profil non conformes a l'annexe OCT) : {error}"),
        );
        if let Some(s) = sender {
            let subject = crate::fidelity::raw_header(raw, "Subject").unwrap_or_default();
            let echo = Echo {
                compostage: crate::fidelity::compostage_in(&subject).unwrap_or_default(),
                file_name: String::new(),
                subject,
                profile: crate::fidelity::raw_header(raw, "Content-Description").unwrap_or_default(),
            };
            let mut receipt = self.receipt(s, echo, env);
            receipt.reason = Some(r.reason.clone());
            self.push_art(out, s, &receipt, env)?;
        }
        Err(r.into())
    }

    /// Records the quarantine decision (and, when no step wrote one, the summary).
    fn quarantine(result: &mut Processed, msg: Incoming<'_>, r: Refusal) {
        if result.summary.is_null() {
            result.summary = json!({ "refused": r.code, "reason": r.reason });
        }
        result.quarantine = Some(QuarantineEntry {
            code: r.code.as_str().to_owned(),
            reason: r.reason,
            rcpt: msg.rcpt_to.to_vec(),
            raw: msg.raw.to_vec(),
        });
    }
}

/// A readable message being processed: what it says, who sent it (when registered), and what
/// its processing fills.
struct Work<'r, 'c> {
    parsed: &'r ParsedMessage,
    sender: Option<&'c Practice>,
    result: &'r mut Processed,
    out: &'r mut Out<'c>,
}

impl<'c> Work<'_, 'c> {
    /// The registered sender of the message, or the refusal `unknown_sender` (`<prefix><From
    /// address> is not registered with this OCT`).
    fn registered_sender(&self, prefix: &str) -> Result<&'c Sender, Refusal> {
        self.sender.map(|p| &p.sender).ok_or_else(|| {
            Refusal::new(
                RefusalCode::UnknownSender,
                format!(
                    "{prefix}{} is not registered with this OCT",
                    self.result.mail_from
                ),
            )
        })
    }

    /// The refusal `suspended_sender` when the sender's account is suspended.
    fn suspension(&self) -> Result<(), Refusal> {
        match self.sender {
            Some(p) if p.suspended => Err(Refusal::new(
                RefusalCode::SuspendedSender,
                format!(
                    "compte PS suspendu aupres de cet OCT : {} ne peut pas lui envoyer de factures ; contactez votre OCT",
                    p.sender.address
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// Whether the number `written` (from a file or a subject) is the registered `registered`:
/// blanks and leading zeros aside, and never when `written` is blank.
fn same_number(written: &str, registered: &str) -> bool {
    svoct_formats::PaddedNumber::same_given(written, registered)
}

/// Path helper for tests and the CLI: whether a path is set and exists.
pub fn exists(p: Option<&Path>) -> bool {
    p.is_some_and(Path::exists)
}
