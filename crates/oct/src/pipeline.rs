//! Processing one spooled message: the pure part of the concentrator.
//!
//! [`Pipeline::process`] takes the bytes the ingress accepted and returns a [`Processed`]: every
//! message to send (forwarded files, the complementary AMC flow, the ART, relayed returns) as
//! final bytes with deterministic Message-IDs, or a quarantine decision with its reason (and an
//! explanatory ART when the sender is known). It does no I/O besides what [`Env`] gives it
//! (sequence numbers, the OCT-built lots, the LOI source), so the worker can commit its result
//! in one transaction and every path is testable without servers.
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
//! its [`Claims`], which the commit checks against the index.
//!
//! Returns from AM (ARL, RSP, dLOI increments) are relayed to the PS named by the message (R8.4),
//! except ARL addressed to the OCT itself, which acknowledge lots it built (R4.2). dLOI requests
//! are answered from the LOI source.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::json;
use svoct_formats::b2::{
    self, B2Input, Lot, LotKind,
    layouts::{
        F0_FILE_ID, F0_SENDER_NUMBER, F1_DATE, F1_LOT_NUMBER, F1_ORIGIN, F6_ACTS, F6_AMC, F6_AMO, F6_BILLED,
        F6_INVOICES, F6_LOT_NUMBER, F6_SEAL, F6_TYPE2, F6_TYPE5, F9_SENDER_NUMBER,
    },
};
use svoct_mail::cms::{CmsCipher, PrivateKeyAndCert, RecipientCert};
use svoct_mail::profile::{
    self, Mailbox, MessageHeaders, ParseLimits, ParsedMessage, PlainFileFacts, Profile, Protect,
};
use svoct_mail::subject::{
    Compostage, FileKind, InvoiceSubject, MinuteStamp, PartyNumber, ReturnKind, ReturnSubject, SpecVersion,
    Subject,
};
use time::{OffsetDateTime, PrimitiveDateTime};

use crate::config::{Config, Route, Sender};
use crate::receipt::{AmcLine, LotFate, LotLine, Receipt};
use crate::state::{
    Claims, CompostageClaim, InvoiceNature, LotClaim, MessageKind, OutKind, Outgoing, OwnLot, Processed,
    QuarantineEntry, SeenInvoice, SeenLot,
};

/// *Norme* of the `000` records the OCT writes (provisional, same value as the B2 builders).
pub const OCT_FILE_NORME: &str = "SV14";

/// *Application* of the files the OCT forwards to AM (provisional: the direct-mode value).
pub const OCT_FILE_APPLICATION: &str = "SV";

/// *Origine du fichier* (type 1 positions 11-16) of the lots the OCT builds itself (the AMC
/// complementary flow), so they can be told from the PS's (provisional).
pub const OCT_LOT_ORIGIN: &str = "OCT";

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

/// The keys and certificates the pipeline uses, loaded once at start.
pub struct Keys {
    oct: PrivateKeyAndCert,
    certs: HashMap<PathBuf, RecipientCert>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("oct", &self.oct)
            .field("certificates", &self.certs.len())
            .finish()
    }
}

impl Keys {
    /// Loads the OCT key pair (the key file's permissions are checked) and every route, AMC and
    /// PS certificate named by the configuration; an expired certificate is refused here.
    pub fn load(config: &Config) -> Result<Keys, PipelineError> {
        let oct = PrivateKeyAndCert::from_files(&config.keys.private_key, &config.keys.certificate).map_err(
            |source| PipelineError::Key {
                what: "OCT key pair",
                path: config.keys.private_key.clone(),
                source,
            },
        )?;
        let mut certs = HashMap::new();
        let paths = config
            .routes
            .iter()
            .filter_map(|r| r.certificate.as_ref())
            .chain(config.amc.iter().filter_map(|a| a.certificate.as_ref()))
            .chain(config.senders.iter().filter_map(|s| s.certificate.as_ref()));
        for path in paths {
            if certs.contains_key(path) {
                continue;
            }
            let cert = RecipientCert::from_file(path).map_err(|source| PipelineError::Key {
                what: "certificate",
                path: path.clone(),
                source,
            })?;
            cert.check_validity().map_err(|source| PipelineError::Key {
                what: "certificate",
                path: path.clone(),
                source,
            })?;
            certs.insert(path.clone(), cert);
        }
        Ok(Keys { oct, certs })
    }

    /// Keys from already loaded parts (tests, embedding).
    pub fn from_parts(oct: PrivateKeyAndCert, certs: Vec<(PathBuf, RecipientCert)>) -> Keys {
        Keys {
            oct,
            certs: certs.into_iter().collect(),
        }
    }

    fn cert(&self, path: Option<&PathBuf>) -> Option<&RecipientCert> {
        path.and_then(|p| self.certs.get(p))
    }
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

/// Why a message is refused: a stable code and an explanation for the operator and the PS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub reason: String,
}

fn refuse(code: &'static str, reason: impl Into<String>) -> Refusal {
    Refusal {
        code,
        reason: reason.into(),
    }
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

/// A lot on its way out: its bytes (borrowed from the input, or the marked copy of R8.3).
struct PlannedLot<'a> {
    line: LotLine,
    /// [`content_hash`] of the lot as the PS sealed it (before any R8.3 mark).
    hash: String,
    kind: LotKind,
    route: Option<&'a Route>,
    bytes: Cow<'a, [u8]>,
    /// Contract-99 invoices of this lot, per AMC organisation number (indices into the lot's
    /// invoices).
    amc: Vec<(String, Vec<usize>)>,
    lot_index: usize,
}

/// The complementary flow to one AMC being built (R8.3).
struct AmcFlow<'a> {
    organisation: String,
    /// The OCT-built lots.
    lots: Vec<Vec<u8>>,
    invoices: usize,
    /// Hashes of the PS lots they come from: the flow's Message-ID derives from them.
    source_hashes: Vec<&'a str>,
}

/// The concentrator's processing of one message.
pub struct Pipeline<'a> {
    pub config: &'a Config,
    pub keys: &'a Keys,
    pub limits: ParseLimits,
}

impl std::fmt::Debug for Pipeline<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").finish_non_exhaustive()
    }
}

/// Accumulates outgoing messages with their deterministic Message-IDs.
struct Out<'c> {
    config: &'c Config,
    digest: String,
    spool_id: String,
    list: Vec<Outgoing>,
}

impl Out<'_> {
    fn next_id(&self, kind: OutKind) -> String {
        message_id(
            &self.digest,
            &self.spool_id,
            self.list.len(),
            kind,
            self.config.domain(),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        kind: OutKind,
        to: &str,
        subject: Subject,
        profile: Profile,
        file_name: String,
        file: &[u8],
        cert: Option<&RecipientCert>,
        now: OffsetDateTime,
    ) -> Result<String, PipelineError> {
        let id = self.next_id(kind);
        self.push_as(id, kind, to, subject, profile, file_name, file, cert, now)
    }

    /// Like [`Out::push`], under the Message-ID `id`.
    #[allow(clippy::too_many_arguments)]
    fn push_as(
        &mut self,
        id: String,
        kind: OutKind,
        to: &str,
        subject: Subject,
        profile: Profile,
        file_name: String,
        file: &[u8],
        cert: Option<&RecipientCert>,
        now: OffsetDateTime,
    ) -> Result<String, PipelineError> {
        let build = |e: profile::ProfileError| PipelineError::Build(e.to_string());
        let envelope = MessageHeaders {
            from: Mailbox::new(&self.config.oct.address).map_err(build)?,
            to: Mailbox::new(to).map_err(build)?,
            subject,
            profile,
            file_name,
            date: now,
            message_id: Some(id.clone()),
        };
        let certs: Vec<RecipientCert>;
        let protect = match cert {
            Some(c) if profile.allows_protection() => {
                certs = vec![c.clone()];
                Protect::Encrypt {
                    recipients: &certs,
                    cipher: CmsCipher::default(),
                    compress: false,
                }
            }
            _ => Protect::None,
        };
        let raw = profile::build_message(&envelope, file, protect).map_err(build)?;
        self.list.push(Outgoing {
            message_id: id.clone(),
            kind,
            mail_from: self.config.oct.address.clone(),
            rcpt: to.to_owned(),
            raw,
        });
        Ok(id)
    }
}

impl<'a> Pipeline<'a> {
    /// A pipeline with default parse limits bounded by the configuration.
    pub fn new(config: &'a Config, keys: &'a Keys) -> Pipeline<'a> {
        let limits = ParseLimits {
            max_message_bytes: config.ingress.max_message_bytes.saturating_add(64 * 1024),
            max_decompressed: config.pipeline.max_attachment_bytes,
        };
        Pipeline { config, keys, limits }
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
            claims: Claims::default(),
        };
        let sender = self.config.sender_by_address(&from);
        let parsed = match parsed {
            Ok(p) => p,
            Err(e) => {
                let r = refuse(
                    "unreadable_message",
                    format!("message illisible (en-tetes ou profil non conformes a l'annexe OCT) : {e}"),
                );
                if let Some(s) = sender {
                    // Echo what was received (R5.6): the PS finds its message by this subject.
                    let subject = crate::fidelity::raw_header(msg.raw, "Subject").unwrap_or_default();
                    let receipt = Receipt {
                        oct_id: self.config.oct.identifier.clone(),
                        ps_number: s.ps_number.clone(),
                        received: Some(env.now()),
                        compostage: crate::fidelity::compostage_in(&subject).unwrap_or_default(),
                        file_name: String::new(),
                        subject,
                        profile: crate::fidelity::raw_header(msg.raw, "Content-Description")
                            .unwrap_or_default(),
                        sender_number: String::new(),
                        invoices: 0,
                        accepted: false,
                        reason: Some(r.reason.clone()),
                        lots: Vec::new(),
                        amc: Vec::new(),
                    };
                    self.push_art(&mut out, s, &receipt, env)?;
                }
                Self::quarantine(&mut result, msg, r);
                result.outgoing = out.list;
                return Ok(result);
            }
        };
        match parsed.description.profile {
            Profile::Invoice(_) => {
                result.kind = MessageKind::Invoice;
                self.invoice(&mut result, &mut out, msg, &parsed, sender, env)?;
            }
            Profile::Arl | Profile::Rsp | Profile::DloiIncrement => {
                result.kind = MessageKind::Relay;
                self.relay(&mut result, &mut out, msg, &parsed, &from, env)?;
            }
            Profile::DloiRequest => {
                result.kind = MessageKind::LoiRequest;
                self.loi_request(&mut result, &mut out, msg, &parsed, sender, env)?;
            }
            Profile::Art(_) => {
                let r = refuse(
                    "unexpected_profile",
                    "an ART is sent by an OCT, never received by one",
                );
                Self::quarantine(&mut result, msg, r);
            }
        }
        result.outgoing = out.list;
        Ok(result)
    }

    fn quarantine(result: &mut Processed, msg: Incoming<'_>, r: Refusal) {
        if result.summary.is_null() {
            result.summary = json!({ "refused": r.code, "reason": r.reason });
        }
        result.quarantine = Some(QuarantineEntry {
            code: r.code.to_owned(),
            reason: r.reason,
            rcpt: msg.rcpt_to.to_vec(),
            raw: msg.raw.to_vec(),
        });
    }

    fn push_art(
        &self,
        out: &mut Out<'_>,
        sender: &Sender,
        receipt: &Receipt,
        env: &mut dyn Env,
    ) -> Result<(), PipelineError> {
        let now = env.now();
        let build = |e: String| PipelineError::Build(e);
        let ps_number = PartyNumber::new(&sender.ps_number).map_err(|e| build(e.to_string()))?;
        let timestamp = MinuteStamp::new(primitive(now))
            .ok_or_else(|| build("the clock is out of the 4-digit year range".into()))?;
        let subject = Subject::Return(ReturnSubject {
            kind: ReturnKind::Art,
            ps_number,
            timestamp,
        });
        let category = profile::PsCategory::from_code(&sender.category).unwrap_or(profile::PsCategory::Xx);
        let file_name = format!("ART{}.txt", out.spool_id);
        out.push(
            OutKind::Art,
            sender.return_mailbox(),
            subject,
            Profile::Art(category),
            file_name,
            &receipt.render(),
            None,
            now,
        )?;
        Ok(())
    }

    #[allow(clippy::too_many_lines)]
    fn invoice(
        &self,
        result: &mut Processed,
        out: &mut Out<'_>,
        msg: Incoming<'_>,
        parsed: &ParsedMessage,
        sender: Option<&Sender>,
        env: &mut dyn Env,
    ) -> Result<(), PipelineError> {
        let mut receipt = Receipt {
            oct_id: self.config.oct.identifier.clone(),
            ps_number: sender.map(|s| s.ps_number.clone()).unwrap_or_default(),
            received: Some(env.now()),
            compostage: parsed.subject.fields().compostage.unwrap_or_default(),
            file_name: parsed.headers.file_name.clone().unwrap_or_default(),
            subject: parsed.subject.to_string(),
            profile: parsed.profile_name(),
            sender_number: String::new(),
            invoices: 0,
            accepted: false,
            reason: None,
            lots: Vec::new(),
            amc: Vec::new(),
        };
        // Refuse the whole message: quarantine, and an ART when the sender is known.
        macro_rules! refuse_all {
            ($r:expr) => {{
                let r: Refusal = $r;
                receipt.reason = Some(r.reason.clone());
                for l in &mut receipt.lots {
                    if !matches!(l.fate, LotFate::Refused { .. }) {
                        l.fate = LotFate::NotForwarded {
                            reason: r.reason.clone(),
                        };
                    }
                }
                if let Some(s) = sender {
                    self.push_art(out, s, &receipt, env)?;
                }
                result.summary = json!({ "refused": r.code, "reason": r.reason, "receipt": receipt });
                Self::quarantine(result, msg, r);
                return Ok(());
            }};
        }

        let Some(sender) = sender else {
            // Unknown sender: no ART (the address is not trusted), quarantined for the operator.
            let r = refuse(
                "unknown_sender",
                format!(
                    "the From address {} is not registered with this OCT",
                    result.mail_from
                ),
            );
            Self::quarantine(result, msg, r);
            return Ok(());
        };

        // R8.1: decrypt (and decompress) with the OCT's key.
        let opened = match parsed.open(Some(&self.keys.oct), &self.limits) {
            Ok(o) => o,
            Err(e) => refuse_all!(refuse(
                "undecryptable",
                format!("la piece jointe n'a pas pu etre ouverte avec la cle de cet OCT : {e}")
            )),
        };
        let input = match b2::parse(&opened.bytes) {
            Ok(i) => i,
            Err(e) => refuse_all!(refuse(
                "corrupt_file",
                format!("le fichier B2 est inexploitable : {e}")
            )),
        };
        let file_sender = file_sender_number(&input);
        receipt.sender_number = file_sender.clone();
        receipt.invoices = input.invoice_count();
        for lot in input.lots() {
            receipt.lots.push(LotLine {
                number: lot.lot_number().map(|n| format!("{n:03}")).unwrap_or_default(),
                date: lot.date().to_owned(),
                kind: lot.kind().to_string(),
                invoices: lot.invoice_count(),
                fate: LotFate::NotForwarded {
                    reason: String::new(),
                },
            });
        }
        // Profile check: the subject against the file (R5.3).
        let facts = PlainFileFacts {
            invoice_count: u32::try_from(input.invoice_count()).unwrap_or(u32::MAX),
            sender_number: file_sender.clone(),
        };
        if let Err(e) = parsed.check_file(&facts) {
            refuse_all!(refuse(
                "profile_mismatch",
                format!("l'objet du message ne correspond pas au fichier : {e}")
            ));
        }
        // Authorisation: this address may send files of this sender number only, and lots of
        // this PS only.
        if !same_number(&file_sender, &sender.sender_number) {
            refuse_all!(refuse(
                "not_authorised",
                format!(
                    "{} est enregistre pour le numero d'emetteur {}, pas {}",
                    sender.address, sender.sender_number, file_sender
                )
            ));
        }
        if let Some(lot) = input
            .lots()
            .iter()
            .find(|l| !same_number(l.sender(), &sender.ps_number))
        {
            refuse_all!(refuse(
                "not_authorised",
                format!(
                    "le lot a l'octet {} est celui du PS {}, pas du PS enregistre {}",
                    lot.offset(),
                    lot.sender(),
                    sender.ps_number
                )
            ));
        }
        // R3.2: a single file names its OCT; R3.4: DRE and contract 99 exclude each other.
        if let Some(reason) = crate::fidelity::other_oct(&input, &self.config.oct.identifier) {
            refuse_all!(refuse("other_oct", reason));
        }
        if let Some(reason) = crate::fidelity::exclusivity_in_file(&input) {
            refuse_all!(refuse("exclusivity", reason));
        }
        // One compostage, one file (R5.3): the same file again is a duplicate (its lots already
        // forwarded are reported, not forwarded again); another file under a compostage already
        // used is refused, so the PS sends it again with a new one (two workstations of one
        // practice can draw the same).
        let file_hash = content_hash(&opened.bytes);
        let sender_key = normalised_number(&sender.sender_number);
        let duplicate_message = match receipt.compostage.as_str() {
            "" => false,
            c => match env.compostage_file(&sender_key, c)? {
                Some(h) if h != file_hash => refuse_all!(refuse(
                    "compostage_reused",
                    format!(
                        "le compostage {c} a deja ete utilise pour un autre fichier de ce PS : \
                         renvoyez ce fichier avec un nouveau compostage"
                    )
                )),
                Some(_) => true,
                None => false,
            },
        };
        if duplicate_message {
            receipt.reason = Some(
                "doublon : ce message (meme compostage, meme fichier) a deja ete recu ; \
                 rien n'est transmis une seconde fois"
                    .into(),
            );
        }
        let ps_file_id = input
            .file_header()
            .and_then(|h| F0_FILE_ID.str(h))
            .unwrap_or("")
            .trim()
            .to_owned();

        // Content validation: file-level findings refuse the file, lot-level ones the lot.
        let findings = b2::validate(&input);
        let in_lot = |offset: usize| {
            input
                .lots()
                .iter()
                .position(|l| offset >= l.offset() && offset < l.offset() + l.bytes().len())
        };
        let mut lot_problems: Vec<Vec<String>> = vec![Vec::new(); input.lots().len()];
        let mut file_problems = Vec::new();
        for f in &findings {
            let text = format!(
                "enregistrement {} octet {}{} : {}",
                f.record_index,
                f.offset,
                f.field.map(|x| format!(" champ {x}")).unwrap_or_default(),
                f.message
            );
            match in_lot(f.offset).and_then(|i| lot_problems.get_mut(i)) {
                Some(p) => p.push(text),
                None => file_problems.push(text),
            }
        }
        if let Some(first) = file_problems.first() {
            refuse_all!(refuse(
                "invalid_file",
                format!(
                    "{} probleme(s) dans le cadre du fichier (000/999), le premier : {first}",
                    file_problems.len()
                )
            ));
        }

        // Plan every lot: refused, or its bytes (marked for R8.3) and its route.
        let mut marked_lots: Vec<Option<Vec<u8>>> = vec![None; input.lots().len()];
        let mut planned: Vec<PlannedLot<'_>> = Vec::new();
        let mut no_route = Vec::new();
        let mut hashes_in_file = std::collections::HashSet::new();
        for (i, lot) in input.lots().iter().enumerate() {
            let line = receipt.lots.get(i).cloned().unwrap_or_else(|| LotLine {
                number: String::new(),
                date: String::new(),
                kind: String::new(),
                invoices: 0,
                fate: LotFate::NotForwarded {
                    reason: String::new(),
                },
            });
            // No double billing: a lot already forwarded (in any file) is reported, not sent.
            let hash = content_hash(lot.bytes());
            if !hashes_in_file.insert(hash.clone()) {
                if let Some(l) = receipt.lots.get_mut(i) {
                    l.fate = LotFate::Refused {
                        reason: "lot en double dans le fichier : transmis une seule fois".into(),
                    };
                }
                continue;
            }
            if let Some(seen) = env.forwarded_lot(&hash)? {
                if let Some(l) = receipt.lots.get_mut(i) {
                    l.fate = LotFate::AlreadyForwarded {
                        destination: seen.destination,
                        at: seen.at,
                    };
                }
                continue;
            }
            if let Some(p) = lot_problems.get(i).filter(|p| !p.is_empty()) {
                let reason = format!(
                    "{} probleme(s), le premier : {}",
                    p.len(),
                    p.first().map(String::as_str).unwrap_or("")
                );
                if let Some(l) = receipt.lots.get_mut(i) {
                    l.fate = LotFate::Refused { reason };
                }
                continue;
            }
            if let Some(reason) =
                crate::fidelity::excluded_by_forwarded(lot, &normalised_number(&sender.ps_number), env)?
            {
                if let Some(l) = receipt.lots.get_mut(i) {
                    l.fate = LotFate::Refused { reason };
                }
                continue;
            }
            let enriched =
                lot.kind() == LotKind::Fse && lot.invoices().iter().any(|inv| inv.contract_type() == "99");
            let mut amc: Vec<(String, Vec<usize>)> = Vec::new();
            if enriched {
                match b2::split_enriched(lot) {
                    Ok(split) => {
                        for (k, inv) in lot.invoices().iter().enumerate() {
                            if inv.contract_type() != "99" {
                                continue;
                            }
                            let org = inv.amc_number().to_owned();
                            match amc.iter_mut().find(|(o, _)| *o == org) {
                                Some((_, v)) => v.push(k),
                                None => amc.push((org, vec![k])),
                            }
                        }
                        if let Some(slot) = marked_lots.get_mut(i) {
                            *slot = Some(split.amo_lot);
                        }
                    }
                    Err(e) => {
                        if let Some(l) = receipt.lots.get_mut(i) {
                            l.fate = LotFate::Refused {
                                reason: format!("FSE enrichie que l'OCT ne peut pas eclater : {e}"),
                            };
                        }
                        continue;
                    }
                }
            }
            let d = lot.destination();
            let route = self.config.route_for(&d.organisme, &d.regime, &d.caisse);
            if route.is_none() {
                no_route.push(format!("lot {} destinataire {}", line.number, d));
            }
            for (org, _) in &amc {
                if self.config.amc_for(org).is_none() {
                    no_route.push(format!("lot {} AMC {}", line.number, org));
                }
            }
            planned.push(PlannedLot {
                line,
                hash,
                kind: lot.kind(),
                route,
                bytes: Cow::Borrowed(lot.bytes()),
                amc,
                lot_index: i,
            });
        }
        if let Some(first) = no_route.first() {
            refuse_all!(refuse(
                "no_route",
                format!(
                    "aucune route pour {} destination(s), la premiere : {first} ; rien n'est transmis",
                    no_route.len()
                )
            ));
        }
        for p in &mut planned {
            if let Some(Some(marked)) = marked_lots.get_mut(p.lot_index) {
                p.bytes = Cow::Owned(std::mem::take(marked));
            }
        }

        // Forward: one file per (route, FSE/DRE), lots byte-identical (or marked, R8.3).
        let now = env.now();
        let mut groups: Vec<(usize, LotKind, Vec<usize>)> = Vec::new();
        for (k, p) in planned.iter().enumerate() {
            let Some(route) = p.route else { continue };
            let r = self
                .config
                .routes
                .iter()
                .position(|x| std::ptr::eq(x, route))
                .unwrap_or(usize::MAX);
            match groups.iter_mut().find(|(gr, gk, _)| *gr == r && *gk == p.kind) {
                Some((_, _, v)) => v.push(k),
                None => groups.push((r, p.kind, vec![k])),
            }
        }
        let mut forwarded = Vec::new();
        for (r, kind, members) in &groups {
            let Some(route) = self.config.routes.get(*r) else {
                continue;
            };
            let lots_bytes: Vec<&[u8]> = members
                .iter()
                .filter_map(|&k| planned.get(k).map(|p| p.bytes.as_ref()))
                .collect();
            let file_id = env.file_id()?;
            let file = self.build_oct_file(&lots_bytes, route, &file_id, now)?;
            let invoices: usize = members
                .iter()
                .filter_map(|&k| planned.get(k).map(|p| p.line.invoices))
                .sum();
            let subject = self.invoice_subject(*kind, invoices, env)?;
            let profile = Profile::Invoice(file_kind(*kind));
            let hashes: Vec<&str> = members
                .iter()
                .filter_map(|&k| planned.get(k).map(|p| p.hash.as_str()))
                .collect();
            let id = lots_message_id(OutKind::Forward, &route.mailbox, &hashes, self.config.domain());
            let id = out.push_as(
                id,
                OutKind::Forward,
                &route.mailbox,
                subject,
                profile,
                format!("{file_id}.B2"),
                &file,
                self.keys.cert(route.certificate.as_ref()),
                now,
            )?;
            forwarded.push(json!({
                "message_id": id, "to": route.mailbox, "file_id": file_id,
                "lots": members.len(), "invoices": invoices, "kind": kind.to_string(),
            }));
            for &k in members {
                if let Some(p) = planned.get(k) {
                    result.claims.lots.push(LotClaim {
                        lot_hash: p.hash.clone(),
                        ps_number: normalised_number(&sender.ps_number),
                        lot_number: p.line.number.clone(),
                        lot_date: p.line.date.clone(),
                        file_id: ps_file_id.clone(),
                        destination: route.label(),
                        message_id: id.clone(),
                    });
                    if let Some(lot) = input.lots().get(p.lot_index) {
                        result.claims.invoices.extend(crate::fidelity::invoice_claims(
                            lot,
                            &normalised_number(&sender.ps_number),
                            &p.hash,
                            &route.label(),
                        ));
                    }
                }
                if let Some(p) = planned.get(k)
                    && let Some(l) = receipt.lots.get_mut(p.lot_index)
                {
                    l.fate = LotFate::Forwarded {
                        to: route.mailbox.clone(),
                        destination: route.label(),
                        split_invoices: p.amc.iter().map(|(_, v)| v.len()).sum(),
                    };
                }
            }
        }

        // R8.3: the complementary flow, one OCT-built lot per (source lot, AMC), one file per AMC.
        let mut per_amc: Vec<AmcFlow<'_>> = Vec::new();
        for p in &planned {
            let Some(lot) = input.lots().get(p.lot_index) else {
                continue;
            };
            for (org, invs) in &p.amc {
                let number = env.lot_number()?;
                let date = yymmdd(now);
                let bytes = build_amc_lot(lot, invs, number, &date)?;
                result.own_lots.push(OwnLot {
                    lot_number: format!("{number:03}"),
                    lot_date: date,
                    file_id: String::new(),
                    organisation: org.clone(),
                    message_id: String::new(),
                });
                match per_amc.iter_mut().find(|f| &f.organisation == org) {
                    Some(f) => {
                        f.lots.push(bytes);
                        f.invoices += invs.len();
                        f.source_hashes.push(&p.hash);
                    }
                    None => per_amc.push(AmcFlow {
                        organisation: org.clone(),
                        lots: vec![bytes],
                        invoices: invs.len(),
                        source_hashes: vec![&p.hash],
                    }),
                }
            }
        }
        for AmcFlow {
            organisation: org,
            lots,
            invoices,
            source_hashes: hashes,
        } in &per_amc
        {
            let Some(amc) = self.config.amc_for(org) else {
                continue;
            };
            let refs: Vec<&[u8]> = lots.iter().map(Vec::as_slice).collect();
            let file_id = env.file_id()?;
            let pseudo_route = Route {
                organisation: None,
                regime: None,
                caisse: None,
                mailbox: amc.mailbox.clone(),
                recipient_type: "AC".into(),
                recipient_number: Some(digits_only(org)),
                certificate: amc.certificate.clone(),
                plaintext: amc.plaintext,
            };
            let file = self.build_oct_file(&refs, &pseudo_route, &file_id, now)?;
            let subject = self.invoice_subject(LotKind::Fse, *invoices, env)?;
            let id = lots_message_id(OutKind::Amc, &amc.mailbox, hashes, self.config.domain());
            let id = out.push_as(
                id,
                OutKind::Amc,
                &amc.mailbox,
                subject,
                Profile::Invoice(FileKind::Fse),
                format!("{file_id}.B2"),
                &file,
                self.keys.cert(amc.certificate.as_ref()),
                now,
            )?;
            for own in result.own_lots.iter_mut().filter(|l| &l.organisation == org) {
                own.message_id = id.clone();
                own.file_id = file_id.clone();
            }
            receipt.amc.push(AmcLine {
                organisation: org.clone(),
                to: amc.mailbox.clone(),
                invoices: *invoices,
            });
        }
        receipt.accepted = true;
        self.push_art(out, sender, &receipt, env)?;
        if !receipt.compostage.is_empty() {
            result.claims.compostage = Some(CompostageClaim {
                sender_number: sender_key,
                compostage: receipt.compostage.clone(),
                file_hash,
                first_use: !duplicate_message,
            });
        }
        let already = receipt
            .lots
            .iter()
            .filter(|l| matches!(l.fate, LotFate::AlreadyForwarded { .. }))
            .count();
        result.summary = json!({
            "forwarded": forwarded, "already_forwarded_lots": already,
            "duplicate_message": duplicate_message, "receipt": receipt,
        });
        Ok(())
    }

    fn invoice_subject(
        &self,
        kind: LotKind,
        invoices: usize,
        env: &mut dyn Env,
    ) -> Result<Subject, PipelineError> {
        let build = |e: String| PipelineError::Build(e);
        let version = SpecVersion::new(&self.config.oct.spec_version).map_err(|e| build(e.to_string()))?;
        let exercice = PartyNumber::new(&self.config.oct.sender_number).map_err(|e| build(e.to_string()))?;
        let count = u32::try_from(invoices).unwrap_or(u32::MAX);
        let s = InvoiceSubject::new(file_kind(kind), version, exercice, env.compostage()?, count)
            .map_err(|e| build(e.to_string()))?;
        Ok(Subject::Invoice(s))
    }

    /// Frames lots into a file with the OCT as sender (`OT` + the OCT's sender number).
    fn build_oct_file(
        &self,
        lots: &[&[u8]],
        route: &Route,
        file_id: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<u8>, PipelineError> {
        let build = |e: b2::B2Error| PipelineError::Build(e.to_string());
        let mut joined = Vec::with_capacity(lots.iter().map(|l| l.len()).sum());
        for l in lots {
            joined.extend_from_slice(l);
        }
        let input = b2::parse(&joined).map_err(build)?;
        let refs: Vec<&Lot<'_>> = input.lots().iter().collect();
        let params = b2::FileHeaderParams {
            sender_type: self.config.oct.sender_type.clone(),
            recipient_type: route.recipient_type.clone(),
            recipient_number: digits_only(&route.recipient()),
            application: OCT_FILE_APPLICATION.into(),
            file_id: file_id.to_owned(),
            date: yymmdd(now),
            norme: OCT_FILE_NORME.into(),
            message: String::new(),
        };
        let mut file = b2::build_file(&refs, &params).map_err(build)?;
        // The builder takes the lots' sender; the OCT is the sender of what it forwards.
        let n = file.len();
        let sender = &self.config.oct.sender_number;
        let head = file.get_mut(..b2::RECORD_LEN).unwrap_or(&mut []);
        F0_SENDER_NUMBER
            .put(head, sender)
            .map_err(|e| PipelineError::Build(e.to_string()))?;
        let tail = file
            .get_mut(n.saturating_sub(b2::RECORD_LEN)..)
            .unwrap_or(&mut []);
        F9_SENDER_NUMBER
            .put(tail, sender)
            .map_err(|e| PipelineError::Build(e.to_string()))?;
        Ok(file)
    }

    fn relay(
        &self,
        result: &mut Processed,
        out: &mut Out<'_>,
        msg: Incoming<'_>,
        parsed: &ParsedMessage,
        from: &str,
        env: &mut dyn Env,
    ) -> Result<(), PipelineError> {
        let from_am = self
            .config
            .routes
            .iter()
            .map(|r| r.mailbox.as_str())
            .chain(self.config.amc.iter().map(|a| a.mailbox.as_str()))
            .any(|m| m.eq_ignore_ascii_case(from));
        let quarantine = |result: &mut Processed, _out: &mut Out<'_>, r: Refusal| {
            Self::quarantine(result, msg, r);
        };
        if !from_am {
            quarantine(
                result,
                out,
                refuse(
                    "unknown_sender",
                    format!(
                        "{from} is not an AM mailbox of the routing table: returns are relayed from AM only"
                    ),
                ),
            );
            return Ok(());
        }
        let Subject::Return(subject) = &parsed.subject else {
            quarantine(
                result,
                out,
                refuse("profile_mismatch", "a return without a return subject"),
            );
            return Ok(());
        };
        let opened = match parsed.open(Some(&self.keys.oct), &self.limits) {
            Ok(o) => o,
            Err(e) => {
                quarantine(
                    result,
                    out,
                    refuse("undecryptable", format!("the return could not be opened: {e}")),
                );
                return Ok(());
            }
        };
        let recipient = subject.ps_number.as_str();
        // R4.2: an ARL for a lot the OCT built (matched by lot number, date and the OCT file
        // that carried it) is handled here, never relayed. An ARL addressed to the OCT, or from
        // an AMC that is not also an AMO route (the OCT sends AMCs only its own lots), for a lot
        // the OCT did not build is set aside.
        if parsed.description.profile == Profile::Arl {
            let from_amc = self
                .config
                .amc
                .iter()
                .any(|a| a.mailbox.eq_ignore_ascii_case(from));
            let from_amo = self
                .config
                .routes
                .iter()
                .any(|r| r.mailbox.eq_ignore_ascii_case(from));
            let addressed_to_oct = same_number(recipient, &self.config.oct.sender_number);
            let facts = crate::relay_formats::arl_facts(&opened.bytes);
            let own = match &facts {
                Some(f) => env.is_own_lot(&f.lot_number, &f.lot_date, &f.file_id)?,
                None => false,
            };
            if own && let Some(f) = &facts {
                result.kind = MessageKind::OwnArl;
                result.own_arls.push(crate::state::OwnArl {
                    lot_number: f.lot_number.clone(),
                    lot_date: f.lot_date.clone(),
                    file_id: f.file_id.clone(),
                    status: f.status.clone(),
                    detail: f.detail.clone(),
                });
                result.summary = json!({ "own_arl": facts });
                return Ok(());
            }
            if addressed_to_oct || (from_amc && !from_amo) {
                result.kind = MessageKind::OwnArl;
                quarantine(
                    result,
                    out,
                    refuse(
                        "unknown_lot",
                        "an ARL for the OCT's own flows names a lot the OCT did not build",
                    ),
                );
                return Ok(());
            }
        }
        if let Some(header_ps) =
            crate::relay_formats::recipient_in_file(parsed.description.profile, &opened.bytes)
            && !same_number(&header_ps, recipient)
        {
            quarantine(
                result,
                out,
                refuse(
                    "profile_mismatch",
                    format!("the subject names PS {recipient} but the file names {header_ps}"),
                ),
            );
            return Ok(());
        }
        let Some(ps) = self.config.sender_by_ps_number(recipient) else {
            quarantine(
                result,
                out,
                refuse("no_route", format!("no registered PS with number {recipient}")),
            );
            return Ok(());
        };
        let name = parsed
            .headers
            .file_name
            .clone()
            .filter(|n| {
                !n.is_empty()
                    && n.bytes()
                        .all(|b| (0x21..0x7f).contains(&b) && b != b'"' && b != b'\\')
            })
            .unwrap_or_else(|| format!("{}{}.dat", subject.kind.keyword(), out.spool_id));
        let id = out.push(
            OutKind::Relay,
            ps.return_mailbox(),
            parsed.subject.clone(),
            parsed.description.profile,
            name,
            &opened.bytes,
            self.keys.cert(ps.certificate.as_ref()),
            env.now(),
        )?;
        result.summary =
            json!({ "relayed": parsed.profile_name(), "to": ps.return_mailbox(), "message_id": id });
        Ok(())
    }

    fn loi_request(
        &self,
        result: &mut Processed,
        out: &mut Out<'_>,
        msg: Incoming<'_>,
        parsed: &ParsedMessage,
        sender: Option<&Sender>,
        env: &mut dyn Env,
    ) -> Result<(), PipelineError> {
        let quarantine = |result: &mut Processed, _out: &mut Out<'_>, r: Refusal| {
            Self::quarantine(result, msg, r);
        };
        let Some(sender) = sender else {
            quarantine(
                result,
                out,
                refuse(
                    "unknown_sender",
                    format!("{} is not registered with this OCT", result.mail_from),
                ),
            );
            return Ok(());
        };
        if let Subject::DloiRequest(s) = &parsed.subject
            && !same_number(s.exercice.as_str(), &sender.sender_number)
        {
            quarantine(
                result,
                out,
                refuse(
                    "not_authorised",
                    format!(
                        "{} is registered for sender number {}, not {}",
                        sender.address, sender.sender_number, s.exercice
                    ),
                ),
            );
            return Ok(());
        }
        let opened = match parsed.open(Some(&self.keys.oct), &self.limits) {
            Ok(o) => o,
            Err(e) => {
                quarantine(
                    result,
                    out,
                    refuse("undecryptable", format!("the request could not be opened: {e}")),
                );
                return Ok(());
            }
        };
        let Some(source) = &self.config.loi.source else {
            quarantine(
                result,
                out,
                refuse("no_loi_source", "this OCT has no LOI source configured"),
            );
            return Ok(());
        };
        let answer = match crate::relay_formats::loi_answer(&opened.bytes, source) {
            Ok(a) => a,
            Err(reason) => {
                quarantine(result, out, refuse("invalid_loi_request", reason));
                return Ok(());
            }
        };
        let now = env.now();
        let ps_number =
            PartyNumber::new(&sender.ps_number).map_err(|e| PipelineError::Build(e.to_string()))?;
        let timestamp = MinuteStamp::new(primitive(now))
            .ok_or_else(|| PipelineError::Build("clock out of range".into()))?;
        let mut id = Vec::new();
        for (k, inc) in answer.increments.iter().enumerate() {
            let subject = Subject::Return(ReturnSubject {
                kind: ReturnKind::LoiIncrement,
                ps_number: ps_number.clone(),
                timestamp,
            });
            id.push(out.push(
                OutKind::Loi,
                sender.return_mailbox(),
                subject,
                Profile::DloiIncrement,
                format!("LOI{}-{k}.dat", out.spool_id),
                inc,
                self.keys.cert(sender.certificate.as_ref()),
                now,
            )?);
        }
        result.summary = json!({ "loi": answer.summary, "to": sender.return_mailbox(), "message_ids": id });
        Ok(())
    }
}

fn file_kind(kind: LotKind) -> FileKind {
    match kind {
        LotKind::Fse => FileKind::Fse,
        LotKind::Dre => FileKind::Dre,
    }
}

fn digits_only(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// A sender or PS number as compared and as the processed index keys it: blanks and leading
/// zeros removed.
fn normalised_number(s: &str) -> String {
    s.trim().trim_start_matches('0').to_owned()
}

/// Two numbers are the same when equal after removing blanks and leading zeros.
fn same_number(a: &str, b: &str) -> bool {
    !a.trim().is_empty() && normalised_number(a) == normalised_number(b)
}

/// The sender number of a file: the `000` field, or the lots' PS number for bare lots.
fn file_sender_number(input: &B2Input<'_>) -> String {
    match input.file_header() {
        Some(h) => F0_SENDER_NUMBER.str(h).unwrap_or("").to_owned(),
        None => input
            .lots()
            .first()
            .map(|l| l.sender().to_owned())
            .unwrap_or_default(),
    }
}

/// Builds an OCT lot of the complementary flow (R8.3, **provisional**): the PS's lot header with
/// a new lot number, the OCT origin and the build date (the lot is the OCT's: its ARL is matched
/// by this number and date, R4.2); the selected
/// invoices' records exactly as sealed; a lot trailer recomputed over them whose seal zone is
/// blank (the OCT cannot seal, and never re-signs the PS's seals, R3.5).
fn build_amc_lot(
    lot: &Lot<'_>,
    invoice_indices: &[usize],
    number: u32,
    date: &str,
) -> Result<Vec<u8>, PipelineError> {
    let bad = |e: svoct_formats::layout::FieldError| PipelineError::Build(e.to_string());
    let mut header = lot.header().to_vec();
    F1_LOT_NUMBER
        .put_number(&mut header, u64::from(number))
        .map_err(bad)?;
    F1_ORIGIN.put(&mut header, OCT_LOT_ORIGIN).map_err(bad)?;
    F1_DATE.put(&mut header, date).map_err(bad)?;
    let mut trailer = lot.trailer().to_vec();
    let (mut n, mut acts, mut type2, mut billed, mut amo, mut amc) = (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let mut body = Vec::new();
    for &k in invoice_indices {
        let Some(inv) = lot.invoices().get(k) else {
            continue;
        };
        body.extend_from_slice(inv.bytes());
        n += 1;
        acts += u64::from(inv.act_records());
        type2 += u64::from(inv.type2_records());
        billed = billed.saturating_add(inv.total_billed().unwrap_or(0));
        amo = amo.saturating_add(inv.total_amo().unwrap_or(0));
        amc = amc.saturating_add(inv.total_amc().unwrap_or(0));
    }
    F6_INVOICES.put_number(&mut trailer, n).map_err(bad)?;
    F6_ACTS.put_number(&mut trailer, acts).map_err(bad)?;
    F6_TYPE2.put_number(&mut trailer, type2).map_err(bad)?;
    F6_TYPE5.put_number(&mut trailer, n).map_err(bad)?;
    F6_BILLED.put_number(&mut trailer, billed).map_err(bad)?;
    F6_AMO.put_number(&mut trailer, amo).map_err(bad)?;
    F6_AMC.put_number(&mut trailer, amc).map_err(bad)?;
    F6_LOT_NUMBER
        .put_number(&mut trailer, u64::from(number))
        .map_err(bad)?;
    if let Some(seal) = trailer.get_mut(F6_SEAL.range()) {
        seal.fill(b' ');
    }
    let mut out = header;
    out.extend_from_slice(&body);
    out.extend_from_slice(&trailer);
    Ok(out)
}

/// Path helper for tests and the CLI: whether a path is set and exists.
pub fn exists(p: Option<&Path>) -> bool {
    p.is_some_and(Path::exists)
}
