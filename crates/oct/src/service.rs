//! The running concentrator: ingress, pipeline workers over the spool, and the outbox sender.
//!
//! - The ingress (the SMTP shell of [`crate::ingress`]) acknowledges a message only once it is
//!   durably in the spool.
//! - Each worker thread loops `claim_next` → [`Pipeline::process`] → [`OctStore::commit`] (one
//!   transaction: processed row + outbox + quarantine) → `complete` / `quarantine` on the spool.
//!   A message already committed (crash between commit and `complete`) is only completed.
//! - Sender threads (`delivery.senders`) deliver the outbox, each claiming a row first: local Maildirs for mailboxes the operator hosts, an
//!   `.eml` directory when configured, SMTP otherwise; transient failures are retried with
//!   exponential backoff, permanent ones (or exhausted retries) mark the row failed.
//! - Shutdown stops the ingress (in-flight SMTP sessions finish), then lets every worker finish
//!   the message in hand and the sender finish the delivery in hand. Nothing else is needed:
//!   everything not finished is durable and resumes at the next start.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use svoct_mail::smtp::{
    DirTransport, Envelope as SmtpEnvelope, Security, SmtpConfig, SmtpCredentials, SmtpTransport, Transport,
};
use svoct_mail::subject::Compostage;
use svoct_store::spool::{Spool, SpoolEntry, SpoolId};
use time::OffsetDateTime;

use crate::config::{Config, SmtpTls};
use crate::ingress::{Ingress, IngressHandle};
use crate::pipeline::{Env, Incoming, Keys, Pipeline, PipelineError};
use crate::state::{
    Commit, DeliveryOutcome, Due, OctStore, QuarantineBound, SeenLot, State, StateError, WriteGate, now_secs,
};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    Keys(#[from] PipelineError),
    #[error("{0}")]
    State(#[from] StateError),
    #[error("{0}")]
    Spool(#[from] svoct_store::spool::SpoolError),
    #[error("{0}")]
    Ingress(#[from] crate::ingress::IngressError),
    #[error("downstream SMTP: {0}")]
    Smtp(String),
    #[error("thread: {0}")]
    Thread(String),
}

/// Live counters of a running service.
#[derive(Debug, Default)]
pub struct ServiceStats {
    /// Spooled messages committed by the workers.
    pub processed: AtomicU64,
    /// Of which quarantined.
    pub quarantined: AtomicU64,
    /// Outbox messages delivered.
    pub delivered: AtomicU64,
    /// Delivery attempts that failed (transient or permanent).
    pub delivery_failures: AtomicU64,
}

/// Per-worker blocks of file names and compostages reserved in the state database, so that the
/// per-message path does not pay one durable transaction per allocation.
#[derive(Debug, Default)]
pub struct Blocks {
    file_next: u64,
    file_end: u64,
    compostage: Option<(i64, u32, u32, std::time::Instant)>,
}

/// File names reserved per block.
const FILE_BLOCK: u64 = 64;
/// Compostages reserved per block; a block older than [`COMPOSTAGE_BLOCK_AGE`] is dropped so
/// the stamp stays close to the real sending time.
const COMPOSTAGE_BLOCK: u32 = 32;
const COMPOSTAGE_BLOCK_AGE: Duration = Duration::from_secs(2);

/// The pipeline's [`Env`] over the state database: what the workers hand to
/// [`Pipeline::process`]. Public so that tests can process a message without committing it.
pub struct StateEnv<'s> {
    state: &'s dyn OctStore,
    blocks: &'s mut Blocks,
}

impl<'s> StateEnv<'s> {
    /// Allocates file names and compostages from `state`, in blocks kept in `blocks`.
    pub fn new(state: &'s dyn OctStore, blocks: &'s mut Blocks) -> Self {
        StateEnv { state, blocks }
    }
}

impl Env for StateEnv<'_> {
    fn compostage(&mut self) -> Result<Compostage, PipelineError> {
        let fresh = matches!(self.blocks.compostage, Some((_, next, end, at))
            if next < end && at.elapsed() < COMPOSTAGE_BLOCK_AGE);
        if !fresh {
            let block = self.state.reserve_compostage(COMPOSTAGE_BLOCK, now_secs())?;
            self.blocks.compostage = Some((
                block.second,
                block.first,
                block.first + block.count,
                std::time::Instant::now(),
            ));
        }
        let Some((secs, next, _, _)) = self.blocks.compostage.as_mut() else {
            return Err(PipelineError::Build("no compostage block".into()));
        };
        let counter = *next;
        *next += 1;
        let at = OffsetDateTime::from_unix_timestamp(*secs)
            .map_err(|e| PipelineError::Build(format!("compostage time: {e}")))?;
        Compostage::new(time::PrimitiveDateTime::new(at.date(), at.time()), counter)
            .map_err(|e| PipelineError::Build(format!("compostage: {e}")))
    }
    fn file_id(&mut self) -> Result<String, PipelineError> {
        if self.blocks.file_next >= self.blocks.file_end {
            let first = self.state.reserve_sequence("file_id", FILE_BLOCK, 999_999)?;
            self.blocks.file_next = first;
            self.blocks.file_end = first + FILE_BLOCK;
        }
        let n = self.blocks.file_next;
        self.blocks.file_next += 1;
        Ok(format!("{n:06}"))
    }
    fn lot_number(&mut self) -> Result<u32, PipelineError> {
        let n = self.state.next_sequence("oct_lot", 999)?;
        Ok(u32::try_from(n).unwrap_or(1))
    }
    fn is_own_lot(&mut self, number: &str, date: &str, file_id: &str) -> Result<bool, PipelineError> {
        Ok(self.state.is_own_lot(number, date, file_id)?)
    }
    fn forwarded_lot(&mut self, lot_hash: &str) -> Result<Option<SeenLot>, PipelineError> {
        Ok(self.state.forwarded_lot(lot_hash)?)
    }
    fn compostage_file(
        &mut self,
        sender_number: &str,
        compostage: &str,
    ) -> Result<Option<String>, PipelineError> {
        Ok(self.state.compostage_file(sender_number, compostage)?)
    }
    fn forwarded_invoice(
        &mut self,
        ps_number: &str,
        invoice_number: u64,
        nature: crate::state::InvoiceNature,
    ) -> Result<Option<crate::state::SeenInvoice>, PipelineError> {
        Ok(self.state.forwarded_invoice(ps_number, invoice_number, nature)?)
    }
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// One worker step: processes one spooled message. Returns `false` when the spool was empty.
///
/// Public so that tests and benchmarks can drive the pipeline without threads.
pub fn work_once(
    spool: &Spool,
    state: &mut dyn OctStore,
    blocks: &mut Blocks,
    pipeline: &Pipeline<'_>,
    stats: &ServiceStats,
) -> Result<bool, ServiceError> {
    work_batch(spool, state, blocks, pipeline, stats, 1)
}

/// One worker step over up to `max` spooled messages (those already waiting; it never waits
/// for more): each is processed, all are committed in one transaction, then removed from the
/// spool. Returns `false` when the spool was empty and no quarantined message awaited a retry.
pub fn work_batch(
    spool: &Spool,
    state: &mut dyn OctStore,
    blocks: &mut Blocks,
    pipeline: &Pipeline<'_>,
    stats: &ServiceStats,
    max: usize,
) -> Result<bool, ServiceError> {
    work_batch_with(spool, state, blocks, pipeline, stats, max, Completion::Inline)
}

/// How a worker removes the spool entries it committed.
#[derive(Clone, Copy)]
enum Completion<'a> {
    /// Right away, in the worker.
    Inline,
    /// Handed to the reaper thread: removing a file can wait on the disk (discard, metadata
    /// writes) and the outcome is already committed, so the worker goes on with the next batch.
    /// An entry a crash leaves behind is recognised as done and only completed.
    Reaper(&'a std::sync::mpsc::Sender<SpoolId>),
}

fn work_batch_with(
    spool: &Spool,
    state: &mut dyn OctStore,
    blocks: &mut Blocks,
    pipeline: &Pipeline<'_>,
    stats: &ServiceStats,
    max: usize,
    completion: Completion<'_>,
) -> Result<bool, ServiceError> {
    let mut entries = Vec::new();
    while entries.len() < max.max(1) {
        match spool.claim_next() {
            Ok(Some(entry)) => entries.push(entry),
            Ok(None) => break,
            Err(e) => {
                release_all(spool, entries.iter().map(|e| e.id));
                return Err(e.into());
            }
        }
    }
    if !entries.is_empty() {
        handle_entries(spool, state, blocks, pipeline, stats, entries, completion)?;
        return Ok(true);
    }
    // Quarantined messages an operator asked to retry (`svoct oct quarantine retry`).
    if let Some(retry) = state.take_retry()? {
        let spool_id = format!("{}-retry{}", retry.spool_id, retry.id);
        let mut env = StateEnv { state, blocks };
        let mut processed = pipeline.process(
            Incoming {
                spool_id: &spool_id,
                mail_from: &retry.mail_from,
                rcpt_to: &retry.rcpt,
                raw: &retry.raw,
            },
            &mut env,
        )?;
        processed.retried_quarantine = Some(retry.id);
        let quarantined = processed.quarantine.is_some();
        if state.commit(&processed)? == Commit::Conflict {
            // Another message took one of its lots or its compostage meanwhile: the row stays
            // marked for retry and the next poll processes it against what is now committed.
            tracing::info!(
                quarantine_id = retry.id,
                "retry raced a duplicate; processing it again"
            );
            return Ok(true);
        }
        if quarantined {
            state
                .enforce_quarantine_bound(&QuarantineBound::from(&pipeline.config.quarantine), now_secs())?;
        }
        tracing::info!(
            quarantine_id = retry.id,
            quarantined,
            "quarantined message retried"
        );
        stats.processed.fetch_add(1, Ordering::Relaxed);
        return Ok(true);
    }
    Ok(false)
}

/// Gives claimed entries back to the spool (best effort: they are claimed again later).
fn release_all(spool: &Spool, ids: impl IntoIterator<Item = SpoolId>) {
    for id in ids {
        let _ = spool.release(id);
    }
}

fn handle_entries(
    spool: &Spool,
    state: &mut dyn OctStore,
    blocks: &mut Blocks,
    pipeline: &Pipeline<'_>,
    stats: &ServiceStats,
    entries: Vec<SpoolEntry>,
    completion: Completion<'_>,
) -> Result<(), ServiceError> {
    let mut ids: Vec<SpoolId> = entries.iter().map(|e| e.id).collect();
    let mut batch_ids = Vec::with_capacity(entries.len());
    let mut processed = Vec::with_capacity(entries.len());
    for entry in &entries {
        let id = entry.id;
        let key = id.to_string();
        let step = state
            .outcome(&key)
            .map_err(ServiceError::from)
            .and_then(|done| match done {
                Some(done) => {
                    // Committed before a crash, not yet completed in the spool: only complete it.
                    tracing::info!(spool_id = %key, outcome = %done.outcome, "already processed; completing");
                    tracing::debug!(spool_id = %key, reason = ?done.reason, "outcome already recorded");
                    finish(spool, id, completion)?;
                    Ok(None)
                }
                None => {
                    let mut env = StateEnv { state, blocks };
                    let incoming = Incoming {
                        spool_id: &key,
                        mail_from: &entry.envelope.mail_from,
                        rcpt_to: &entry.envelope.rcpt_to,
                        raw: &entry.data,
                    };
                    Ok(Some(pipeline.process(incoming, &mut env)?))
                }
            });
        match step {
            Ok(Some(p)) => {
                batch_ids.push(id);
                processed.push(p);
            }
            Ok(None) => ids.retain(|&x| x != id),
            Err(e) => {
                release_all(spool, ids);
                return Err(e);
            }
        }
    }
    drop(entries);
    if processed.is_empty() {
        return Ok(());
    }
    let commits = match state.commit_batch(&processed) {
        Ok(c) => c,
        Err(e) => {
            release_all(spool, ids);
            return Err(e.into());
        }
    };
    for ((&id, p), commit) in batch_ids.iter().zip(&processed).zip(commits) {
        if commit == Commit::Conflict {
            // A copy of it (earlier in this batch, or in another worker's) holds one of its
            // lots or its compostage: nothing of it was recorded. Given back to the spool, it is
            // processed again against what is now committed, and answered as a duplicate.
            tracing::info!(spool_id = %p.spool_id, "duplicate content committed meanwhile; processing it again");
            if let Err(e) = spool.release(id) {
                // Still in the spool: handed out again at the next start.
                tracing::warn!(spool_id = %p.spool_id, error = %e, "could not give a message back to the spool");
            }
            continue;
        }
        let outcome = if p.quarantine.is_some() {
            "quarantined"
        } else {
            "processed"
        };
        tracing::info!(
            spool_id = %p.spool_id,
            kind = ?p.kind,
            outcome,
            reason = p.quarantine.as_ref().map(|q| q.code.as_str()),
            outgoing = p.outgoing.len(),
            "message processed"
        );
        stats.processed.fetch_add(1, Ordering::Relaxed);
        if p.quarantine.is_some() {
            stats.quarantined.fetch_add(1, Ordering::Relaxed);
        }
        finish(spool, id, completion)?;
    }
    if processed.iter().any(|p| p.quarantine.is_some()) {
        state.enforce_quarantine_bound(&QuarantineBound::from(&pipeline.config.quarantine), now_secs())?;
    }
    Ok(())
}

/// Removes a committed entry from the spool. The state database already holds its outcome
/// and, for a quarantined message, its only copy (the quarantine has its own bound, see
/// `svoct_store::oct`), so the entry is removed without a directory sync (see
/// [`Spool::complete_recorded`]).
fn finish(spool: &Spool, id: SpoolId, completion: Completion<'_>) -> Result<(), ServiceError> {
    match completion {
        Completion::Reaper(reaper) if reaper.send(id).is_ok() => {}
        // No reaper (tests, or it is gone): remove it here.
        _ => spool.complete_recorded(id)?,
    }
    Ok(())
}

/// Where outgoing messages go.
pub struct Delivery {
    config: Arc<Config>,
    smtp: Option<SmtpTransport>,
    directory: Option<DirTransport>,
    /// Local Maildirs opened (and their folders created) once, by directory.
    maildirs:
        std::sync::Mutex<std::collections::HashMap<std::path::PathBuf, Arc<svoct_mail::maildir::Maildir>>>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery").finish_non_exhaustive()
    }
}

/// The outcome of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    Ok(String),
    Transient(String),
    Permanent(String),
    /// The relay refused the OCT's own credentials (`535`): the operator must fix
    /// `[delivery.smtp]`; the message is retried with backoff and never failed for it.
    AuthRejected(String),
}

/// How the stored error of an outbox row refused by the relay's login starts, so that
/// `svoct oct status` can single those rows out.
pub const AUTH_REJECTED: &str = "relay refused the OCT's SMTP login";

impl Delivery {
    /// Prepares the transports named by the configuration (no connection yet).
    pub fn new(config: Arc<Config>) -> Result<Delivery, ServiceError> {
        let smtp = match &config.delivery.smtp {
            None => None,
            Some(s) => {
                let mut c = SmtpConfig::plain(s.host.clone(), s.port);
                c.security = match s.tls {
                    SmtpTls::None => Security::None,
                    SmtpTls::Starttls => Security::StartTls,
                    SmtpTls::Implicit => Security::Implicit,
                };
                c.timeout = Duration::from_secs(s.timeout_secs.max(1));
                c.hello_name = Some(config.domain().to_owned());
                c.allow_plaintext_auth = s.allow_plaintext_auth;
                if let (Some(user), Some(pw)) = (&s.username, &s.password) {
                    c.credentials = Some(SmtpCredentials {
                        user: user.clone(),
                        password: pw.clone(),
                    });
                }
                Some(SmtpTransport::new(&c).map_err(|e| ServiceError::Smtp(e.to_string()))?)
            }
        };
        let directory = match &config.delivery.directory {
            None => None,
            Some(d) => Some(DirTransport::new(d.clone()).map_err(|e| ServiceError::Smtp(e.to_string()))?),
        };
        Ok(Delivery {
            config,
            smtp,
            directory,
            maildirs: std::sync::Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// The Maildir at `dir`, created on first use (a failure is retried at the next delivery).
    fn maildir(
        &self,
        dir: &std::path::Path,
    ) -> Result<Arc<svoct_mail::maildir::Maildir>, svoct_mail::maildir::MaildirError> {
        let mut open = self
            .maildirs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(md) = open.get(dir) {
            return Ok(md.clone());
        }
        // Delivery only writes; the size bound matters to readers.
        let md = Arc::new(svoct_mail::maildir::Maildir::create(dir, 1 << 30)?);
        open.insert(dir.to_path_buf(), md.clone());
        Ok(md)
    }

    /// Delivers rows for local mailboxes as one group (see [`send_once`]): one outcome per
    /// row, in order. `instance` ([`OctStore::instance_id`]) keeps the file names of two OCTs
    /// sharing a Maildir apart.
    pub fn deliver_local_group(&self, rows: &[&Due], instance: &str) -> Vec<Delivered> {
        use svoct_mail::maildir::{Maildir, Staged};
        let transient = |dir: &std::path::Path, e: &dyn std::fmt::Display| {
            Delivered::Transient(format!("Maildir {}: {e}", dir.display()))
        };
        let host = svoct_mail::maildir::name_host(self.config.domain());
        let mut results: Vec<Option<Delivered>> = vec![None; rows.len()];
        // 1. Every file written into tmp/, 2. all synced (a journalled file system commits
        // them together), 3. each moved into new/, 4. each new/ synced once.
        let mut staged: Vec<(usize, Arc<Maildir>, Staged, String)> = Vec::with_capacity(rows.len());
        for (i, d) in rows.iter().enumerate() {
            let Some(dir) = self.config.local_maildir(&d.rcpt) else {
                results[i] = Some(Delivered::Permanent(format!("{} is not a local mailbox", d.rcpt)));
                continue;
            };
            let md = match self.maildir(dir) {
                Ok(m) => m,
                Err(e) => {
                    results[i] = Some(transient(dir, &e));
                    continue;
                }
            };
            // Maildir-style: time first, so that readers sorting by name see queue order.
            let name = format!("{}.O{instance}Q{}.{host}", d.created, d.id);
            match md.stage(&name, &d.raw) {
                Ok(s) => staged.push((i, md, s, name)),
                Err(e) => {
                    self.forget_maildir(dir);
                    results[i] = Some(transient(dir, &e));
                }
            }
        }
        let mut placed: Vec<(usize, Arc<Maildir>, String)> = Vec::with_capacity(staged.len());
        let synced: Vec<_> = staged
            .into_iter()
            .filter_map(|(i, md, s, name)| match s.sync() {
                Ok(()) => Some((i, md, s, name)),
                Err(e) => {
                    results[i] = Some(transient(md.root(), &e));
                    None
                }
            })
            .collect();
        for (i, md, s, name) in synced {
            match s.place() {
                Ok(fresh) => {
                    placed.push((
                        i,
                        md,
                        if fresh {
                            format!("maildir {name}")
                        } else {
                            format!("maildir {name} (already there: written before a restart)")
                        },
                    ));
                }
                Err(e) => results[i] = Some(transient(md.root(), &e)),
            }
        }
        let mut synced_dirs: Vec<(Arc<Maildir>, Result<(), String>)> = Vec::new();
        for (i, md, answer) in placed {
            let outcome = match synced_dirs.iter().find(|(m, _)| Arc::ptr_eq(m, &md)) {
                Some((_, r)) => r.clone(),
                None => {
                    let r = md.sync_new().map_err(|e| e.to_string());
                    synced_dirs.push((md.clone(), r.clone()));
                    r
                }
            };
            results[i] = Some(match outcome {
                Ok(()) => Delivered::Ok(answer),
                Err(e) => transient(md.root(), &e),
            });
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Delivered::Transient("not attempted".into())))
            .collect()
    }

    fn forget_maildir(&self, dir: &std::path::Path) {
        self.maildirs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(dir);
    }

    /// Delivers one message for a mailbox the operator does not host: into the `.eml`
    /// directory when one is configured, by SMTP otherwise. Hosted mailboxes
    /// (`[[delivery.local]]`) go through [`Delivery::deliver_local_group`].
    pub fn deliver_remote(&self, from: &str, rcpt: &str, raw: &[u8]) -> Delivered {
        let envelope = SmtpEnvelope::new(from, rcpt);
        let transport: &dyn Transport = match (&self.directory, &self.smtp) {
            (Some(d), _) => d,
            (None, Some(s)) => s,
            (None, None) => {
                return Delivered::Permanent(format!(
                    "no delivery for {rcpt}: not a local mailbox and no [delivery.smtp] configured"
                ));
            }
        };
        match transport.send(&envelope, raw) {
            Ok(ok) => Delivered::Ok(ok.answer),
            Err(e) if e.is_auth_rejected() => Delivered::AuthRejected(e.to_string()),
            Err(e) if e.is_permanent() => Delivered::Permanent(e.to_string()),
            Err(e) => Delivered::Transient(e.to_string()),
        }
    }
}

/// One sender step: claims up to `delivery.batch` due outbox rows (oldest first, one
/// transaction) and delivers them.
///
/// - Rows for mailboxes the operator hosts (`[[delivery.local]]`) are delivered as a group:
///   each file is written and synced under a name derived from its outbox row, each Maildir's
///   `new/` is synced once, then all outcomes are recorded in one transaction. The names make a
///   redelivery after a crash find the file already there and write nothing.
/// - Other rows (SMTP, `.eml` directory) go one at a time, each outcome recorded as soon as it
///   is known, so that a crash re-sends at most the one message in flight.
///
/// When `stop` is raised the rows not yet attempted go back in the queue. Returns `false` when
/// none was due.
pub fn send_once(
    state: &dyn OctStore,
    delivery: &Delivery,
    config: &Config,
    stats: &ServiceStats,
    stop: &AtomicBool,
) -> Result<bool, ServiceError> {
    let due = state.claim_due_batch(now_secs(), config.delivery.batch.max(1))?;
    if due.is_empty() {
        return Ok(false);
    }
    let (local, remote): (Vec<&Due>, Vec<&Due>) =
        due.iter().partition(|d| config.local_maildir(&d.rcpt).is_some());
    let mut rest: std::collections::VecDeque<i64> = local.iter().chain(&remote).map(|d| d.id).collect();
    if !local.is_empty() {
        if stop.load(Ordering::Relaxed) {
            state.unclaim(rest.make_contiguous())?;
            return Ok(true);
        }
        let instance = match state.instance_id() {
            Ok(i) => i,
            Err(e) => {
                let _ = state.unclaim(rest.make_contiguous());
                return Err(e.into());
            }
        };
        let outcomes: Vec<(i64, DeliveryOutcome)> = local
            .iter()
            .zip(delivery.deliver_local_group(&local, &instance))
            .map(|(d, delivered)| (d.id, delivery_outcome(d, delivered, config, stats)))
            .collect();
        if let Err(e) = state.record_deliveries(&outcomes) {
            // Delivered files stay; their redelivery finds them and writes nothing.
            let _ = state.unclaim(rest.make_contiguous());
            return Err(e.into());
        }
        rest.drain(..local.len());
    }
    for d in remote {
        if stop.load(Ordering::Relaxed) {
            state.unclaim(rest.make_contiguous())?;
            break;
        }
        let outcome = delivery_outcome(
            d,
            delivery.deliver_remote(&d.mail_from, &d.rcpt, &d.raw),
            config,
            stats,
        );
        if let Err(e) = state.record_deliveries(&[(d.id, outcome)]) {
            // Rows still claimed go back in the queue; the one just delivered may be sent again
            // (the SMTP hop is at-least-once, Message-IDs are stable).
            let _ = state.unclaim(rest.make_contiguous());
            return Err(e.into());
        }
        rest.pop_front();
    }
    Ok(true)
}

fn delivery_outcome(
    due: &Due,
    delivered: Delivered,
    config: &Config,
    stats: &ServiceStats,
) -> DeliveryOutcome {
    match delivered {
        Delivered::Ok(answer) => {
            stats.delivered.fetch_add(1, Ordering::Relaxed);
            tracing::info!(message_id = %due.message_id, kind = %due.kind, rcpt = %due.rcpt, %answer, "delivered");
            DeliveryOutcome::Sent
        }
        Delivered::Transient(error) => {
            stats.delivery_failures.fetch_add(1, Ordering::Relaxed);
            let attempts = due.attempts.saturating_add(1);
            if attempts >= config.retry.max_attempts {
                tracing::warn!(message_id = %due.message_id, rcpt = %due.rcpt, attempts, %error, "delivery failed: retries exhausted");
                DeliveryOutcome::Failed { error }
            } else {
                let delay = config.retry.backoff(attempts);
                let at = now_secs().saturating_add(i64::try_from(delay.as_secs()).unwrap_or(i64::MAX));
                tracing::warn!(message_id = %due.message_id, rcpt = %due.rcpt, attempts, retry_in_secs = delay.as_secs(), %error, "delivery deferred");
                DeliveryOutcome::Retry { at, error }
            }
        }
        Delivered::Permanent(error) => {
            stats.delivery_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(message_id = %due.message_id, rcpt = %due.rcpt, %error, "delivery failed permanently");
            DeliveryOutcome::Failed { error }
        }
        Delivered::AuthRejected(error) => {
            stats.delivery_failures.fetch_add(1, Ordering::Relaxed);
            // Not the message's fault: retried with backoff however many times it takes (the
            // attempt count still grows the delay), never marked failed.
            let attempts = due.attempts.saturating_add(1);
            let delay = config.retry.backoff(attempts);
            let at = now_secs().saturating_add(i64::try_from(delay.as_secs()).unwrap_or(i64::MAX));
            tracing::warn!(
                message_id = %due.message_id, rcpt = %due.rcpt, attempts, retry_in_secs = delay.as_secs(), %error,
                "the relay refused the OCT's SMTP login: fix [delivery.smtp] username/password; delivery deferred"
            );
            DeliveryOutcome::Retry {
                at,
                error: format!("{AUTH_REJECTED}: {error}"),
            }
        }
    }
}

/// Wakes idle senders as soon as a worker has queued outgoing messages, instead of letting
/// them poll the outbox.
#[derive(Debug, Default)]
struct OutboxSignal {
    generation: std::sync::Mutex<u64>,
    queued: std::sync::Condvar,
}

impl OutboxSignal {
    fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
        self.generation
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn notify(&self) {
        *self.lock() += 1;
        self.queued.notify_all();
    }

    fn generation(&self) -> u64 {
        *self.lock()
    }

    /// Waits until something was queued after `seen` was read, or `timeout`.
    fn wait(&self, seen: u64, timeout: Duration) {
        let guard = self.lock();
        let _ = self.queued.wait_timeout_while(guard, timeout, |g| *g == seen);
    }
}

/// How long an idle sender waits before looking at the outbox again without being woken
/// (retries that became due, rows queued by another process).
const SENDER_IDLE: Duration = Duration::from_millis(200);

/// A running concentrator.
pub struct Running {
    ingress: Option<IngressHandle>,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
    senders: Vec<JoinHandle<()>>,
    stats: Arc<ServiceStats>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("ingress", &self.ingress.as_ref().map(IngressHandle::local_addr))
            .finish_non_exhaustive()
    }
}

fn sleep_unless_stopped(stop: &AtomicBool, total: Duration) {
    let step = Duration::from_millis(20);
    let mut left = total;
    while !stop.load(Ordering::Relaxed) && !left.is_zero() {
        let d = left.min(step);
        std::thread::sleep(d);
        left = left.saturating_sub(d);
    }
}

/// Deletes the spool's copies of quarantined messages that the state database holds: versions
/// before the quarantine kept one copy in each. Entries the spool set aside because it could
/// not read them (no quarantine row) stay. Returns how many were deleted.
pub fn remove_second_copies(spool: &Spool, state: &dyn OctStore) -> Result<usize, ServiceError> {
    let mut removed = 0;
    for entry in spool.list()? {
        if entry.state == svoct_store::spool::EntryState::Quarantined
            && state.has_quarantine_row(&entry.id.to_string())?
        {
            spool.remove_quarantined(entry.id)?;
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(
            removed,
            "spool copies of quarantined messages deleted (the state database keeps each one)"
        );
    }
    Ok(removed)
}

impl Running {
    /// Loads keys, opens the spool and the state, binds the ingress and starts the workers and
    /// the sender. Must be called inside a tokio runtime (the ingress runs on it).
    pub async fn start(config: Config) -> Result<Running, ServiceError> {
        let config = Arc::new(config);
        for route in config.plaintext_routes() {
            tracing::warn!(%route, "this route forwards claims in clear (plaintext = true)");
        }
        let keys = Arc::new(Keys::load(&config)?);
        let spool = Arc::new(Spool::open(&config.paths.spool)?);
        // Open once here so that schema problems stop the start, not a thread; rows a crash left
        // in delivery go back in the queue.
        let state = State::open(&config.paths.state)?;
        remove_second_copies(&spool, &state)?;
        let reset = state.reset_sending()?;
        drop(state);
        if reset > 0 {
            tracing::warn!(
                messages = reset,
                "messages claimed for delivery when the service stopped are queued again (at most one per sender may already have been delivered: same Message-ID)"
            );
        }
        let delivery = Delivery::new(config.clone())?;
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(ServiceStats::default());
        let gate = WriteGate::default();
        let signal = Arc::new(OutboxSignal::default());

        // Removes the spool entries the workers committed; ends when every worker is gone.
        let (reap, reaped) = std::sync::mpsc::channel::<SpoolId>();
        let reaper = {
            let spool = spool.clone();
            std::thread::Builder::new()
                .name("oct-reaper".into())
                .spawn(move || {
                    for id in reaped {
                        if let Err(e) = spool.complete_recorded(id) {
                            // Left in the spool: the next start completes it (outcome known).
                            tracing::warn!(spool_id = %id, error = %e, "could not remove a processed spool entry");
                        }
                    }
                })
                .map_err(|e| ServiceError::Thread(e.to_string()))?
        };
        let mut workers = Vec::new();
        for n in 0..config.pipeline.workers {
            let (config, keys, spool, stop, stats, gate, signal, reap) = (
                config.clone(),
                keys.clone(),
                spool.clone(),
                stop.clone(),
                stats.clone(),
                gate.clone(),
                signal.clone(),
                reap.clone(),
            );
            let handle = std::thread::Builder::new()
                .name(format!("oct-worker-{n}"))
                .spawn(move || {
                    let shared = Shared {
                        stop: &stop,
                        stats: &stats,
                        gate: &gate,
                        signal: &signal,
                    };
                    worker_loop(&config, &keys, &spool, &shared, &reap);
                })
                .map_err(|e| ServiceError::Thread(e.to_string()))?;
            workers.push(handle);
        }
        drop(reap);
        let delivery = Arc::new(delivery);
        // Joined after the workers (shutdown joins workers first), once it has drained.
        let mut senders = vec![reaper];
        for n in 0..config.delivery.senders.max(1) {
            let (config, stop, stats, delivery, gate, signal) = (
                config.clone(),
                stop.clone(),
                stats.clone(),
                delivery.clone(),
                gate.clone(),
                signal.clone(),
            );
            let handle = std::thread::Builder::new()
                .name(format!("oct-sender-{n}"))
                .spawn(move || {
                    let shared = Shared {
                        stop: &stop,
                        stats: &stats,
                        gate: &gate,
                        signal: &signal,
                    };
                    sender_loop(&config, &delivery, &shared);
                })
                .map_err(|e| ServiceError::Thread(e.to_string()))?;
            senders.push(handle);
        }
        // The ingress takes mail for the OCT's own addresses only: never an open relay.
        let ic = config
            .ingress
            .ingress_config(config.domain(), config.own_addresses());
        let ingress = match Ingress::bind(config.ingress.listen, ic, spool.clone()).await {
            Ok(h) => h,
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                for w in workers.into_iter().chain(senders) {
                    let _ = w.join();
                }
                return Err(e.into());
            }
        };
        tracing::info!(listen = %ingress.local_addr(), workers = config.pipeline.workers, "concentrator started");
        Ok(Running {
            ingress: Some(ingress),
            stop,
            workers,
            senders,
            stats,
        })
    }

    /// The address the ingress listens on.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.ingress.as_ref().map(IngressHandle::local_addr)
    }

    /// Live counters.
    pub fn stats(&self) -> &ServiceStats {
        &self.stats
    }

    /// Graceful shutdown: the ingress stops accepting and finishes its sessions, then workers
    /// finish the message in hand and the sender the delivery in hand.
    pub async fn shutdown(mut self) {
        if let Some(ingress) = self.ingress.take() {
            ingress.shutdown().await;
        }
        self.stop.store(true, Ordering::Relaxed);
        let workers = std::mem::take(&mut self.workers);
        let senders = std::mem::take(&mut self.senders);
        let _ = tokio::task::spawn_blocking(move || {
            for w in workers.into_iter().chain(senders) {
                let _ = w.join();
            }
        })
        .await;
        tracing::info!("concentrator stopped");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What the worker and sender threads share.
struct Shared<'a> {
    stop: &'a AtomicBool,
    stats: &'a ServiceStats,
    gate: &'a WriteGate,
    signal: &'a OutboxSignal,
}

/// How often a worker removes quarantined content past its retention (also at start).
const RETENTION_CHECK: Duration = Duration::from_secs(600);

fn worker_loop(
    config: &Config,
    keys: &Keys,
    spool: &Spool,
    shared: &Shared<'_>,
    reaper: &std::sync::mpsc::Sender<SpoolId>,
) {
    let pipeline = Pipeline::new(config, keys);
    let poll = Duration::from_millis(config.pipeline.poll_interval_ms.max(1));
    let mut opened = None;
    let mut blocks = Blocks::default();
    let mut retention_checked: Option<std::time::Instant> = None;
    while !shared.stop.load(Ordering::Relaxed) {
        if opened.is_none() {
            match State::open_gated(&config.paths.state, shared.gate.clone()) {
                Ok(s) => opened = Some(s),
                Err(e) => tracing::error!(error = %e, "worker cannot open the state database"),
            }
        }
        let Some(state) = opened.as_mut() else {
            sleep_unless_stopped(shared.stop, Duration::from_secs(1));
            continue;
        };
        if retention_checked.is_none_or(|at| at.elapsed() >= RETENTION_CHECK) {
            retention_checked = Some(std::time::Instant::now());
            let now = now_secs();
            let cutoff = now.saturating_sub(config.quarantine.retention_secs());
            let step = state
                .purge_quarantine_before(cutoff, now)
                .and_then(|_| state.trim_purged_rows(config.quarantine.max_purged_rows));
            if let Err(e) = step {
                tracing::error!(error = %e, "quarantine retention step failed; retrying later");
            }
        }
        match work_batch_with(
            spool,
            state,
            &mut blocks,
            &pipeline,
            shared.stats,
            config.pipeline.batch,
            Completion::Reaper(reaper),
        ) {
            Ok(true) => shared.signal.notify(),
            // Woken by the ingress as soon as a message is spooled; the timeout also picks up
            // quarantined messages an operator asked to retry.
            Ok(false) => {
                spool.wait_pending(poll);
            }
            Err(e) => {
                tracing::error!(error = %e, "worker step failed; retrying");
                sleep_unless_stopped(shared.stop, Duration::from_secs(1));
            }
        }
    }
}

fn sender_loop(config: &Config, delivery: &Delivery, shared: &Shared<'_>) {
    let mut state = None;
    while !shared.stop.load(Ordering::Relaxed) {
        if state.is_none() {
            match State::open_gated(&config.paths.state, shared.gate.clone())
                .and_then(|s| s.relax_durability().map(|()| s))
            {
                Ok(s) => state = Some(s),
                Err(e) => tracing::error!(error = %e, "sender cannot open the state database"),
            }
        }
        let Some(s) = state.as_ref() else {
            sleep_unless_stopped(shared.stop, Duration::from_secs(1));
            continue;
        };
        let seen = shared.signal.generation();
        match send_once(s, delivery, config, shared.stats, shared.stop) {
            Ok(true) => {}
            Ok(false) => shared.signal.wait(seen, SENDER_IDLE),
            Err(e) => {
                tracing::error!(error = %e, "sender step failed; retrying");
                sleep_unless_stopped(shared.stop, Duration::from_secs(1));
            }
        }
    }
}
