//! The PS engine: plan, build, journal, send, retry, resend (R3, R5).
//!
//! Every message follows one state machine, so that nothing is ever sent twice by accident and
//! nothing is lost:
//!
//! 1. a fresh compostage is drawn from the store (unique, never reused);
//! 2. the message is built (subject, profile, encryption for the recipient's certificate,
//!    compression when configured);
//! 3. the file is saved in the payload directory and the journal entry is inserted as
//!    `pending`, both durably, **before** the message is handed to the transport;
//! 4. the outcome is recorded: `sent`; `deferred` for a transient failure (4xx, server down),
//!    re-sent by [`Ps::retry`] with a new compostage; `failed` with the server's answer for a
//!    permanent one (5xx).
//!
//! A crash between 3 and 4 leaves a `pending` entry: it is never re-sent automatically (the
//! server may have taken it); `svoct ps resend ID` does it on purpose. A retried or resent
//! `deferred` entry is marked `failed` with "superseded by entry N" before the new message leaves,
//! so it is not retried again.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use svoct_formats::b2::LotKind;
use svoct_mail::cms::{CmsCipher, RecipientCert};
use svoct_mail::profile::{
    ContentDescription, Mailbox, MessageHeaders, Profile, Protect, Protection, build_message,
};
use svoct_mail::subject::{
    Compostage, DloiRequestSubject, FileKind, InvoiceSubject, PartyNumber, SpecVersion, Subject,
};
use svoct_mail::transport::{SmtpEnvelope, Transport, smtp};
use svoct_store::{Direction, Entry, EntryId, NewEntry, Status, Store};
use time::OffsetDateTime;

use crate::config::{Config, Mode, Tls};
use crate::error::PsError;
use crate::payload::{PayloadMeta, Payloads};
use crate::plan::{self, LotFile, PlannedFile};

/// What became of one message.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Sent {
    /// The journal entry.
    pub entry: EntryId,
    pub subject: String,
    pub compostage: String,
    pub to: String,
    /// `sent`, `deferred` (to retry) or `failed`.
    pub status: Status,
    /// The server's answer, or where the `.eml` was written.
    pub answer: String,
    pub invoices: usize,
}

/// The PS module: a configuration and its store.
pub struct Ps {
    config: Config,
    store: Store,
    payloads: Payloads,
}

impl std::fmt::Debug for Ps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ps")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn today_aammjj(now: OffsetDateTime) -> String {
    format!(
        "{:02}{:02}{:02}",
        now.year().rem_euclid(100),
        u8::from(now.month()),
        now.day()
    )
}

/// What is saved of a planned file (the payload's description) and the bytes it carries: one
/// shape for a first sending and for a message built again.
fn payload_of(p: PlannedFile) -> (PayloadMeta, Vec<u8>) {
    let meta = PayloadMeta {
        kind: p.kind.letters().to_owned(),
        to: p.to,
        certificate: p.certificate,
        compress: p.compress,
        file_name: format!("{}.b2", p.file_id),
        exercice: p.exercice,
        lots: p.lots,
        invoices: p.invoices,
    };
    (meta, p.bytes)
}

impl Ps {
    /// Opens (creating if needed) the store named by the configuration.
    pub fn open(config: Config) -> Result<Ps, PsError> {
        if let Some(dir) = config.store.parent()
            && !dir.as_os_str().is_empty()
        {
            svoct_mail::fsx::create_data_dir_all(dir).map_err(|e| PsError::Payload {
                path: dir.to_owned(),
                reason: e.to_string(),
            })?;
        }
        let store = Store::open(&config.store)?;
        let payloads = Payloads::beside(&config.store)?;
        Ok(Ps {
            config,
            store,
            payloads,
        })
    }

    /// The configuration in effect.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The store (journal, inbox).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Plans the files of a sending (see [`plan::plan_numbered`]), dated today. File numbers are
    /// reserved in the store's counter, so two processes planning at once never share one; a
    /// plan that is never sent leaves a gap, which is harmless (names must differ, not follow).
    pub fn plan(&self, files: &[LotFile]) -> Result<Vec<PlannedFile>, PsError> {
        let journal = self.store.journal();
        plan::plan_numbered(
            &self.config,
            files,
            &today_aammjj(OffsetDateTime::now_utc()),
            &mut |count| Ok(journal.reserve_file_numbers(count)?),
        )
    }

    /// Plans and sends lot files; see [`Ps::send_planned`].
    pub fn send(
        &self,
        transport: &dyn Transport,
        files: &[LotFile],
        progress: &mut dyn FnMut(&Sent),
    ) -> Result<Vec<Sent>, PsError> {
        let planned = self.plan(files)?;
        self.send_planned(transport, planned, progress)
    }

    /// Sends planned files, one message each. Refuses invoices already sent, queued or in doubt
    /// (use [`Ps::resend`] to send a file again on purpose). Certificates are all loaded first,
    /// so a bad one stops the batch before anything leaves.
    pub fn send_planned(
        &self,
        transport: &dyn Transport,
        planned: Vec<PlannedFile>,
        progress: &mut dyn FnMut(&Sent),
    ) -> Result<Vec<Sent>, PsError> {
        let _sending = self.lock_sending()?;
        self.refuse_already_sent(&planned)?;
        self.refuse_split_twice(&planned)?;
        let mut certs = CertCache::default();
        for p in &planned {
            if let Some(c) = &p.certificate {
                certs.get(c)?;
            }
        }
        let mut out = Vec::with_capacity(planned.len());
        for p in planned {
            let (meta, bytes) = payload_of(p);
            let sent = self.transmit(transport, &mut certs, &meta, &bytes, |_| Ok(()))?;
            progress(&sent);
            out.push(sent);
        }
        Ok(out)
    }

    /// Takes the store's sending lock (`<store>.send.lock`, an OS file lock released when the
    /// returned file is dropped, or when the process dies). Sendings and retries of one store
    /// run one after the other, so that the duplicate check and the journal entries it protects
    /// cannot interleave with another process's: two `svoct ps send` of the same invoices at the
    /// same instant send them once. A second sending waits for the first.
    fn lock_sending(&self) -> Result<std::fs::File, PsError> {
        let mut name = self.config.store.as_os_str().to_owned();
        name.push(".send.lock");
        let path = std::path::PathBuf::from(name);
        let file = svoct_mail::fsx::open_lock_file(&path);
        let file = match file {
            Ok(f) => f,
            Err(source) => return Err(PsError::SendLock { path, source }),
        };
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => {
                tracing::info!(lock = %path.display(), "another sending of this store is running; waiting for it to finish");
            }
            Err(std::fs::TryLockError::Error(source)) => return Err(PsError::SendLock { path, source }),
        }
        if let Err(source) = file.lock() {
            return Err(PsError::SendLock { path, source });
        }
        Ok(file)
    }

    /// Refuses invoices that are already in a `sent`, `pending` or `deferred` entry. An invoice
    /// is its number *and* its kind: the FSE and the DRE of one invoice (split at the source) are
    /// two invoices. The journal keeps numbers only, so an entry that shares a number is checked
    /// against the kinds of the file it carried (its saved payload).
    ///
    /// The lookup goes through the journal's invoice index: its cost grows with the invoices of
    /// the sending, not with the size of the journal.
    pub fn refuse_already_sent(&self, planned: &[PlannedFile]) -> Result<(), PsError> {
        let mut wanted: HashSet<(LotKind, String)> = HashSet::new();
        for p in planned {
            wanted.extend(invoice_keys(&p.bytes));
        }
        let numbers: HashSet<&str> = wanted.iter().map(|(_, n)| n.as_str()).collect();
        for e in self.store.journal().carrying_any(numbers.iter().copied())? {
            if e.direction != Direction::Out
                || !matches!(e.status, Status::Sent | Status::Pending | Status::Deferred)
                || !e.invoices.iter().any(|i| numbers.contains(i.as_str()))
            {
                continue;
            }
            // Shares a number: compare kinds too. Without its payload, assume the worst.
            let carried: HashSet<(LotKind, String)> = e
                .compostage
                .as_deref()
                .and_then(|c| self.payloads.load(c).ok())
                .map(|(_, bytes)| invoice_keys(&bytes))
                .unwrap_or_else(|| {
                    e.invoices
                        .iter()
                        .flat_map(|n| [(LotKind::Fse, n.clone()), (LotKind::Dre, n.clone())])
                        .collect()
                });
            if let Some((kind, inv)) = carried.iter().find(|k| wanted.contains(*k)) {
                let hint = match e.status {
                    Status::Deferred => "`svoct ps retry` sends it again",
                    _ => "`svoct ps resend ID` sends it again on purpose",
                };
                return Err(PsError::NotResendable {
                    id: e.id.0,
                    reason: format!(
                        "{kind} invoice {inv} is already in journal entry {} ({}, subject {}); {hint}",
                        e.id.0,
                        e.status.as_str(),
                        e.subject
                    ),
                });
            }
        }
        Ok(())
    }

    /// R3.4 across sendings: contract type 99 forbids an FSE and a DRE for one invoice, and the
    /// journal knows what already left. Refuses a contract-99 FSE whose invoice number went out
    /// as a DRE (in a `sent`, `pending` or `deferred` entry), and a DRE whose invoice number went
    /// out as a contract-99 FSE. The check within one sending is in [`plan`].
    pub fn refuse_split_twice(&self, planned: &[PlannedFile]) -> Result<(), PsError> {
        let mut wanted = Exclusive::default();
        for p in planned {
            wanted.extend(Exclusive::of(&p.bytes).unwrap_or_default());
        }
        if wanted.dre.is_empty() && wanted.fse99.is_empty() {
            return Ok(());
        }
        let numbers: HashSet<&str> = wanted
            .dre
            .iter()
            .chain(&wanted.fse99)
            .map(String::as_str)
            .collect();
        for e in self.store.journal().carrying_any(numbers.iter().copied())? {
            if e.direction != Direction::Out
                || !matches!(e.status, Status::Sent | Status::Pending | Status::Deferred)
            {
                continue;
            }
            // Without its payload, assume the entry carried both forms of each of its invoices.
            let carried = e
                .compostage
                .as_deref()
                .and_then(|c| self.payloads.load(c).ok())
                .and_then(|(_, bytes)| Exclusive::of(&bytes))
                .unwrap_or_else(|| Exclusive {
                    dre: e.invoices.iter().cloned().collect(),
                    fse99: e.invoices.iter().cloned().collect(),
                });
            const FSE99: &str = "an FSE with contract type 99";
            let clash = wanted
                .fse99
                .iter()
                .find(|n| carried.dre.contains(*n))
                .map(|n| (n, FSE99, "a DRE"))
                .or_else(|| {
                    wanted
                        .dre
                        .iter()
                        .find(|n| carried.fse99.contains(*n))
                        .map(|n| (n, "a DRE", FSE99))
                });
            if let Some((invoice, now, before)) = clash {
                return Err(PsError::SplitTwice {
                    invoice: invoice.clone(),
                    reason: format!(
                        "{now} cannot be sent: {before} for the same invoice is in journal entry {} \
                         ({}, subject {}); contract type 99 forbids creating both an FSE and a DRE \
                         for one invoice",
                        e.id.0,
                        e.status.as_str(),
                        e.subject
                    ),
                });
            }
        }
        Ok(())
    }

    /// Re-sends every `deferred` message, each with a new compostage (R5.3).
    pub fn retry(
        &self,
        transport: &dyn Transport,
        progress: &mut dyn FnMut(&Sent),
    ) -> Result<Vec<Sent>, PsError> {
        let _sending = self.lock_sending()?;
        let deferred = self.store.journal().with_status(Status::Deferred)?;
        let mut certs = CertCache::default();
        let mut out = Vec::new();
        for old in deferred {
            if old.direction != Direction::Out {
                continue;
            }
            let sent = self.again(transport, &mut certs, &old, "retry")?;
            progress(&sent);
            out.push(sent);
        }
        Ok(out)
    }

    /// Sends the file of journal entry `id` again, with a new compostage (R5.3). Refused, unless
    /// `force`, when a lot of the file has a positive ARL: the insurer has it, and a second
    /// copy is a duplicate claim.
    pub fn resend(&self, transport: &dyn Transport, id: EntryId, force: bool) -> Result<Sent, PsError> {
        let old = self.store.journal().get(id)?.ok_or(PsError::NoEntry(id.0))?;
        if old.direction != Direction::Out {
            return Err(PsError::NotResendable {
                id: id.0,
                reason: "it is a received message".into(),
            });
        }
        if !force {
            let acknowledged = self.acknowledged_lots(&old)?;
            if !acknowledged.is_empty() {
                return Err(PsError::NotResendable {
                    id: id.0,
                    reason: format!(
                        "{} of its {} lot(s) had a positive ARL ({}): the insurer accepted them, so \
                         sending them again is a duplicate claim; `svoct ps resend {} --force` sends \
                         the file anyway",
                        acknowledged.len(),
                        old.lots.len().max(acknowledged.len()),
                        acknowledged.join("; "),
                        id.0
                    ),
                });
            }
        }
        self.again(transport, &mut CertCache::default(), &old, "resend")
    }

    /// The lots of `entry` that have a positive ARL in any of their sendings, as
    /// `lot NNN of AAMMJJ (ARL of <when>, journal entry N)`. Sent entries are registered first,
    /// so that an ARL received before the registration counts.
    fn acknowledged_lots(&self, entry: &Entry) -> Result<Vec<String>, PsError> {
        crate::reconcile::sync_sent(&self.store, &self.config)?;
        let lots: Vec<svoct_store::reconciliation::SentLot> = entry
            .compostage
            .as_deref()
            .and_then(|c| self.payloads.load(c).ok())
            .and_then(|(_, bytes)| crate::reconcile::lots_of(&bytes))
            .unwrap_or_else(|| {
                entry
                    .lots
                    .iter()
                    .map(|l| svoct_store::reconciliation::SentLot {
                        number: l.number.clone(),
                        date: l.date.clone(),
                        kind: None,
                        invoices: Vec::new(),
                    })
                    .collect()
            });
        let mut out = Vec::new();
        for lot in &lots {
            let rows = self
                .store
                .returns()
                .positively_acknowledged(&lot.number, &lot.date, lot.kind)?;
            if let Some(row) = rows.last() {
                let kind = lot.kind.map(|k| format!("{} ", k.as_str())).unwrap_or_default();
                out.push(format!(
                    "{kind}lot {} of {} (ARL of {}, journal entry {})",
                    row.number,
                    row.date,
                    row.arl_issued.as_deref().unwrap_or("unknown date"),
                    row.entry.0
                ));
            }
        }
        Ok(out)
    }

    /// Sends what `old` carried again, built anew with the settings in effect now: the lots of
    /// its saved file are planned again (current `[oct]` or `[direct]` settings, today's date, a
    /// new file number), then sent with a new compostage and encrypted for the certificate
    /// configured now. A certificate or address fixed after a refusal is thus used; the saved
    /// one never is. The new entry is linked to `old` (`journal_link`); a `deferred` `old` is
    /// marked `failed` ("superseded") before the new message leaves, so it is not retried again.
    fn again(
        &self,
        transport: &dyn Transport,
        certs: &mut CertCache,
        old: &Entry,
        why: &str,
    ) -> Result<Sent, PsError> {
        let compostage = old.compostage.as_deref().ok_or(PsError::NotResendable {
            id: old.id.0,
            reason: "it has no compostage".into(),
        })?;
        let (saved, bytes) = self.payloads.load(compostage)?;
        let (meta, bytes) = if saved.kind == "DLOI" {
            (self.loi_meta()?, bytes)
        } else {
            self.replanned(old, bytes)?
        };
        let journal = self.store.journal();
        let previous = old.server_answer.clone().unwrap_or_default();
        let supersede = old.status == Status::Deferred;
        self.transmit(transport, certs, &meta, &bytes, |new| {
            journal.link(new, old.id, why)?;
            if supersede {
                journal.set_outcome(
                    old.id,
                    Status::Failed,
                    Some(&format!(
                        "superseded by entry {} ({why}); was deferred: {previous}",
                        new.0
                    )),
                )?;
            }
            Ok(())
        })
    }

    /// The lots of a saved invoice file planned again with the current settings: exactly one
    /// file, since one journal entry is replaced by one.
    fn replanned(&self, old: &Entry, bytes: Vec<u8>) -> Result<(PayloadMeta, Vec<u8>), PsError> {
        let file = LotFile {
            name: format!("the file of journal entry {}", old.id.0),
            bytes,
        };
        let mut planned = self.plan(std::slice::from_ref(&file))?;
        if planned.len() != 1 {
            return Err(PsError::NotResendable {
                id: old.id.0,
                reason: format!(
                    "with the current settings its lots make {} messages, not one (the mode or option changed): send the lot file again with `svoct ps send`",
                    planned.len()
                ),
            });
        }
        Ok(payload_of(planned.remove(0)))
    }

    /// Sends the dLOI request to the OCT (R7.2): `DLOI/<exercice>/<compostage>`, encrypted for
    /// the OCT, asking for the increments after list `version` (0 when the PS holds none).
    pub fn request_loi(&self, transport: &dyn Transport, version: u64) -> Result<Sent, PsError> {
        let body = crate::dloi_request::request_file(&self.config, version, OffsetDateTime::now_utc())?;
        let meta = self.loi_meta()?;
        self.transmit(transport, &mut CertCache::default(), &meta, &body, |_| Ok(()))
    }

    /// Where a dLOI request goes now: the OCT configured, encrypted for its certificate.
    fn loi_meta(&self) -> Result<PayloadMeta, PsError> {
        let oct = match (&self.config.mode, &self.config.oct) {
            (Mode::Oct, Some(oct)) => oct,
            _ => {
                return Err(PsError::Other(
                    "the dLOI request goes to the OCT: configure one (`svoct ps oct set`) and \
                     switch to OCT mode (`svoct ps mode oct`)"
                        .into(),
                ));
            }
        };
        let meta = PayloadMeta {
            kind: "DLOI".into(),
            to: oct.address.clone(),
            certificate: Some(oct.certificate.clone()),
            compress: false,
            file_name: "DLOI.txt".into(),
            exercice: self.config.identity.file_sender_number(),
            lots: Vec::new(),
            invoices: Vec::new(),
        };
        Ok(meta)
    }

    /// The SMTP transport of `[network.smtp]` (no connection yet).
    pub fn smtp_transport(&self) -> Result<smtp::SmtpTransport, PsError> {
        let s = &self.config.network.smtp;
        let mut cfg = smtp::SmtpConfig::plain(s.host.clone(), s.port);
        cfg.security = match s.tls {
            Tls::None => smtp::Security::None,
            Tls::Starttls => smtp::Security::StartTls,
            Tls::Implicit => smtp::Security::Implicit,
        };
        cfg.allow_plaintext_auth = s.allow_plaintext_auth;
        cfg.timeout = std::time::Duration::from_secs(s.timeout_secs.max(1));
        if let (Some(user), Some(password)) = (&s.username, &s.password) {
            cfg.credentials = Some(smtp::SmtpCredentials {
                user: user.clone(),
                password: password.clone(),
            });
        }
        smtp::SmtpTransport::new(&cfg).map_err(|e| {
            PsError::Other(format!(
                "SMTP {}:{}: {}",
                s.host,
                s.port,
                one_line(&e.to_string())
            ))
        })
    }

    /// Journal entries, oldest first; with a pattern, those whose subject matches the glob.
    pub fn journal(&self, subject: Option<&str>) -> Result<Vec<Entry>, PsError> {
        let j = self.store.journal();
        Ok(match subject {
            Some(p) => j.search_subject(p)?,
            None => {
                let mut all = j.recent(u32::MAX)?;
                all.reverse();
                all
            }
        })
    }

    /// What a sent journal entry carried: the saved metadata and the exact file bytes sent (the
    /// B2 file, or the dLOI request), for support to look at or hand to `svoct inspect`.
    pub fn payload(&self, id: EntryId) -> Result<(PayloadMeta, Vec<u8>), PsError> {
        let entry = self.store.journal().get(id)?.ok_or(PsError::NoEntry(id.0))?;
        let compostage = entry
            .compostage
            .as_deref()
            .filter(|_| entry.direction == Direction::Out);
        let compostage = compostage.ok_or_else(|| PsError::NoPayload {
            id: id.0,
            reason: "it is a received message: `svoct ps quarantine show ID --raw FILE` (ID from \
                     `svoct ps quarantine` or `svoct ps inbox`) writes a received message"
                .into(),
        })?;
        self.payloads.load(compostage)
    }

    /// Steps 1 to 4 of the module documentation for one file. `before_send` runs once the new
    /// entry is durable and before the transport is called.
    fn transmit(
        &self,
        transport: &dyn Transport,
        certs: &mut CertCache,
        meta: &PayloadMeta,
        bytes: &[u8],
        before_send: impl FnOnce(EntryId) -> Result<(), PsError>,
    ) -> Result<Sent, PsError> {
        let stamp = self.store.compostage().next()?;
        let message = self.prepare(certs, meta, bytes, &stamp)?;

        self.payloads.save(&stamp, meta, bytes)?;
        let journal = self.store.journal();
        let subject_text = message.subject.to_string();
        let id = journal.insert(&NewEntry {
            direction: Direction::Out,
            profile: message.description.to_string(),
            subject: subject_text.clone(),
            compostage: Some(stamp.clone()),
            message_id: Some(message.message_id),
            file_name: Some(meta.file_name.clone()),
            lots: meta.lots.clone(),
            invoices: meta.invoices.clone(),
            status: Status::Pending,
        })?;
        tracing::debug!(
            entry = id.0,
            compostage = %stamp,
            subject = %subject_text,
            to = %meta.to,
            file = %meta.file_name,
            invoices = meta.invoices.len(),
            "journaled as pending, handing to the transport"
        );
        before_send(id)?;

        let (status, answer) = self.deliver(transport, meta, &message.raw);
        journal.set_outcome(id, status, Some(&answer))?;
        // What is logged: ids, subject, compostage, addresses, the server's answer. Never the
        // file, the message, keys or passwords.
        match status {
            Status::Sent => tracing::info!(
                entry = id.0, compostage = %stamp, subject = %subject_text, to = %meta.to,
                status = status.as_str(), answer = %answer, "message sent"
            ),
            _ => tracing::warn!(
                entry = id.0, compostage = %stamp, subject = %subject_text, to = %meta.to,
                status = status.as_str(), answer = %answer, "message not delivered"
            ),
        }
        Ok(Sent {
            entry: id,
            subject: subject_text,
            compostage: stamp,
            to: meta.to.clone(),
            status,
            answer,
            invoices: meta.invoices.len(),
        })
    }

    /// The subject and profile of the message carrying `meta`'s file under `compostage`.
    fn subject_for(&self, meta: &PayloadMeta, compostage: Compostage) -> Result<(Subject, Profile), PsError> {
        let exercice = PartyNumber::new(&meta.exercice)?;
        Ok(match meta.kind.as_str() {
            "DLOI" => (
                Subject::DloiRequest(DloiRequestSubject { exercice, compostage }),
                Profile::DloiRequest,
            ),
            kind => {
                let kind = if kind == "DR" {
                    FileKind::Dre
                } else {
                    FileKind::Fse
                };
                let count = u32::try_from(meta.invoices.len()).unwrap_or(u32::MAX);
                (
                    Subject::Invoice(InvoiceSubject::new(
                        kind,
                        SpecVersion::new(&self.config.direct.spec_version)?,
                        exercice,
                        compostage,
                        count,
                    )?),
                    Profile::Invoice(kind),
                )
            }
        })
    }

    /// Step 2: the message of one file, compostage `stamp`, encrypted for `meta.certificate`
    /// (and compressed first when `meta.compress`) or plain without one.
    fn prepare(
        &self,
        certs: &mut CertCache,
        meta: &PayloadMeta,
        bytes: &[u8],
        stamp: &str,
    ) -> Result<PreparedMessage, PsError> {
        let compostage: Compostage = stamp
            .parse()
            .map_err(|e| PsError::Other(format!("compostage {stamp}: {e}")))?;
        let (subject, profile) = self.subject_for(meta, compostage)?;
        let from = Mailbox::new(&self.config.identity.from)?;
        let to = Mailbox::new(&meta.to)?;
        let domain = from.address().rsplit('@').next().unwrap_or("svoct.invalid");
        let message_id = format!("{stamp}.{}@{domain}", meta.exercice);
        let envelope = MessageHeaders {
            from,
            to,
            subject: subject.clone(),
            profile,
            file_name: meta.file_name.clone(),
            date: OffsetDateTime::now_utc(),
            message_id: Some(message_id.clone()),
        };
        let recipients;
        let (protect, protection) = match &meta.certificate {
            Some(path) => {
                recipients = [certs.get(path)?.clone()];
                (
                    Protect::Encrypt {
                        recipients: &recipients,
                        cipher: CmsCipher::default(),
                        compress: meta.compress,
                    },
                    if meta.compress {
                        Protection::CompressedEncrypted
                    } else {
                        Protection::Encrypted
                    },
                )
            }
            None => (Protect::None, Protection::Plain),
        };
        let raw = build_message(&envelope, bytes, protect)?;
        Ok(PreparedMessage {
            subject,
            description: ContentDescription { profile, protection },
            message_id,
            raw,
        })
    }

    /// Hands the message to the transport; returns the journal status (step 4) and the
    /// server's answer (or the error, on one line). A transient error defers, any other fails.
    fn deliver(&self, transport: &dyn Transport, meta: &PayloadMeta, raw: &[u8]) -> (Status, String) {
        let smtp_envelope = SmtpEnvelope::new(self.config.identity.from.clone(), meta.to.clone());
        match transport.send(&smtp_envelope, raw) {
            Ok(ok) => (Status::Sent, ok.answer),
            Err(e) => {
                let answer = one_line(&e.to_string());
                if e.is_transient() {
                    (Status::Deferred, answer)
                } else {
                    (Status::Failed, answer)
                }
            }
        }
    }
}

/// A message built and not yet journaled.
struct PreparedMessage {
    subject: Subject,
    description: ContentDescription,
    message_id: String,
    /// The whole message, as handed to the transport.
    raw: Vec<u8>,
}

/// What the contract-99 exclusivity (R3.4) needs of a B2 file: the invoice numbers (9 digits)
/// of its DRE, and of its FSE with contract type 99.
#[derive(Default)]
struct Exclusive {
    dre: HashSet<String>,
    fse99: HashSet<String>,
}

impl Exclusive {
    /// `None` if the file does not parse.
    fn of(bytes: &[u8]) -> Option<Exclusive> {
        let input = svoct_formats::b2::parse(bytes).ok()?;
        let mut out = Exclusive::default();
        for lot in input.lots() {
            for inv in lot.invoices() {
                let Some(n) = inv.number() else { continue };
                match lot.kind() {
                    LotKind::Dre => out.dre.insert(format!("{n:09}")),
                    LotKind::Fse if inv.contract_type() == "99" => out.fse99.insert(format!("{n:09}")),
                    LotKind::Fse => false,
                };
            }
        }
        Some(out)
    }

    fn extend(&mut self, other: Exclusive) {
        self.dre.extend(other.dre);
        self.fse99.extend(other.fse99);
    }
}

/// (kind, invoice number) of every invoice of a B2 file; empty if it does not parse.
fn invoice_keys(bytes: &[u8]) -> HashSet<(LotKind, String)> {
    let Ok(input) = svoct_formats::b2::parse(bytes) else {
        return HashSet::new();
    };
    input
        .lots()
        .iter()
        .flat_map(|l| {
            l.invoices()
                .iter()
                .filter_map(move |i| i.number().map(|n| (l.kind(), format!("{n:09}"))))
        })
        .collect()
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Certificates loaded once per batch, checked for validity.
#[derive(Default)]
struct CertCache(HashMap<PathBuf, RecipientCert>);

impl CertCache {
    fn get(&mut self, path: &Path) -> Result<&RecipientCert, PsError> {
        if !self.0.contains_key(path) {
            let crypto = |source| PsError::Crypto {
                what: "encryption certificate",
                path: path.to_owned(),
                source,
            };
            let cert = RecipientCert::from_file(path).map_err(crypto)?;
            cert.check_validity().map_err(crypto)?;
            self.0.insert(path.to_owned(), cert);
        }
        self.0.get(path).ok_or_else(|| PsError::Crypto {
            what: "encryption certificate",
            path: path.to_owned(),
            source: svoct_mail::cms::CmsError::NoRecipient,
        })
    }
}

#[cfg(test)]
mod tests;
