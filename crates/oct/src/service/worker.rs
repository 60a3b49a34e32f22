//! The worker: claims spooled messages, runs the pipeline, commits what each produced in one
//! transaction, then removes them from the spool (through the reaper thread).

use std::sync::atomic::Ordering;
use std::time::Duration;

use svoct_mail::subject::Compostage;
use svoct_store::spool::{Spool, SpoolEntry, SpoolId};
use time::OffsetDateTime;

use super::{ServiceError, ServiceStats, Shared, sleep_unless_stopped};
use crate::pipeline::{Env, Incoming, Pipeline, PipelineError};
use crate::state::{
    Commit, CompostageBlock, OctStore, OutKind, Processed, QuarantineBound, SeenLot, State, now_secs,
};

/// Per-worker blocks of file names and compostages reserved in the state database, so that the
/// per-message path does not pay one durable transaction per allocation.
#[derive(Debug, Default)]
pub struct Blocks {
    file_next: u64,
    file_end: u64,
    compostage: Option<CompostageHand>,
}

/// The compostage block a worker hands stamps out of.
#[derive(Debug)]
struct CompostageHand {
    block: CompostageBlock,
    /// The counter handed out next, in `block.first..block.first + block.count`.
    next: u32,
    reserved_at: std::time::Instant,
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
        let fresh = self.blocks.compostage.as_ref().is_some_and(|h| {
            h.next < h.block.first + h.block.count && h.reserved_at.elapsed() < COMPOSTAGE_BLOCK_AGE
        });
        if !fresh {
            let block = self.state.reserve_compostage(COMPOSTAGE_BLOCK, now_secs())?;
            self.blocks.compostage = Some(CompostageHand {
                block,
                next: block.first,
                reserved_at: std::time::Instant::now(),
            });
        }
        let Some(hand) = self.blocks.compostage.as_mut() else {
            return Err(PipelineError::Build("no compostage block".into()));
        };
        let counter = hand.next;
        hand.next += 1;
        let at = OffsetDateTime::from_unix_timestamp(hand.block.second)
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
    fn loi_files(
        &mut self,
        source: &std::path::Path,
    ) -> Result<Vec<Vec<u8>>, crate::relay_formats::LoiSourceError> {
        crate::relay_formats::read_loi_source(source)
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
    work_batch_with(
        spool,
        state,
        blocks,
        Rules::Fixed(pipeline),
        stats,
        max,
        Completion::Inline,
    )
}

/// Where a worker step gets its pipeline, i.e. the configuration and keys it applies.
#[derive(Clone, Copy)]
enum Rules<'a> {
    /// One given pipeline ([`work_batch`]: tests, benchmarks).
    Fixed(&'a Pipeline<'a>),
    /// The service's configuration in force when the work was taken: read after the spool
    /// entries are claimed, and after a quarantine retry is taken, never before. `svoct oct
    /// quarantine retry` marks an entry only once the service acknowledged its reload, and the
    /// console's Retry only once its in-process reload swapped the new configuration in, so a
    /// retry taken after its mark is processed with the reloaded configuration (see
    /// `reload.rs`). The practices are the worker's, as of this batch.
    Live(&'a Shared, &'a std::sync::Arc<crate::practices::Practices>),
}

impl Rules<'_> {
    fn with<R>(self, f: impl FnOnce(&Pipeline<'_>) -> R) -> R {
        match self {
            Rules::Fixed(pipeline) => f(pipeline),
            Rules::Live(shared, practices) => {
                let live = shared.live();
                f(&Pipeline::with_practices(
                    &live.config,
                    &live.keys,
                    practices.clone(),
                ))
            }
        }
    }
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
    rules: Rules<'_>,
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
        rules.with(|pipeline| handle_entries(spool, state, blocks, pipeline, stats, entries, completion))?;
        return Ok(true);
    }
    // Quarantined messages an operator asked to retry (`svoct oct quarantine retry`).
    match state.take_retry()? {
        Some(retry) => rules.with(|pipeline| process_retry(state, blocks, pipeline, stats, retry)),
        None => Ok(false),
    }
}

/// Processes a quarantined message an operator asked to retry, under a spool id of its own.
fn process_retry(
    state: &mut dyn OctStore,
    blocks: &mut Blocks,
    pipeline: &Pipeline<'_>,
    stats: &ServiceStats,
    retry: crate::state::RetryItem,
) -> Result<bool, ServiceError> {
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
        state.enforce_quarantine_bound(&QuarantineBound::from(&pipeline.config.quarantine), now_secs())?;
    }
    log_processed(&processed);
    tracing::info!(
        quarantine_id = retry.id,
        quarantined,
        "quarantined message retried"
    );
    stats.processed.fetch_add(1, Ordering::Relaxed);
    if let Some(q) = &processed.quarantine {
        // Quarantined again (the cause is still there): counted under its reason.
        stats.metrics.quarantined(&q.code);
    }
    Ok(true)
}

/// The Postfix-style "processed" line of a committed message, then one line per ART it queued:
/// keyed by the spool id, with what the annex puts in subjects (PS number, compostage) and the
/// lots' numbers, never the content. The compostage is read from the subject when the message
/// was refused before its claims were known, so that a refused message is found by it too.
fn log_processed(p: &Processed) {
    let outcome = if p.quarantine.is_some() {
        "quarantined"
    } else {
        "processed"
    };
    let compostage = p
        .claims
        .compostage
        .as_ref()
        .map(|c| c.compostage.clone())
        .or_else(|| crate::fidelity::compostage_in(&p.subject))
        .unwrap_or_default();
    let lots: Vec<&str> = p.claims.lots.iter().map(|l| l.lot_number.as_str()).collect();
    let mut destinations: Vec<&str> = p.claims.lots.iter().map(|l| l.destination.as_str()).collect();
    destinations.sort_unstable();
    destinations.dedup();
    tracing::info!(
        spool_id = %p.spool_id,
        kind = ?p.kind,
        outcome = %outcome,
        reason = p.quarantine.as_ref().map(|q| q.code.as_str()),
        subject = ?p.subject,
        compostage = %compostage,
        lots = %lots.join(","),
        invoices = p.claims.invoices.len(),
        destinations = ?destinations,
        outgoing = p.outgoing.len(),
        "message processed"
    );
    for art in p.outgoing.iter().filter(|o| o.kind == OutKind::Art) {
        tracing::info!(
            spool_id = %p.spool_id,
            message_id = %art.message_id,
            rcpt = %art.rcpt,
            compostage = %compostage,
            "ART queued"
        );
    }
}

/// When a spooled message was received, epoch seconds. The envelope keeps whole seconds; the
/// spool id is the nanosecond clock when its entry was begun (`Spool::next_id`, pushed past the
/// previous id under load), so it is used when it agrees with the envelope to the second.
fn receipt_time(id: SpoolId, received_at: i64) -> f64 {
    let from_id = id.0 as f64 / 1e9;
    if (from_id - received_at as f64).abs() < 2.0 {
        from_id
    } else {
        received_at as f64
    }
}

/// Seconds from `at` (epoch seconds) to now.
fn seconds_since(at: f64) -> f64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    now - at
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
    // When the ingress spooled each one, for the processing latency metric.
    let received: std::collections::HashMap<SpoolId, f64> = entries
        .iter()
        .map(|e| (e.id, receipt_time(e.id, e.envelope.received_at)))
        .collect();
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
        log_processed(p);
        stats.processed.fetch_add(1, Ordering::Relaxed);
        if let Some(q) = &p.quarantine {
            stats.quarantined.fetch_add(1, Ordering::Relaxed);
            stats.metrics.quarantined(&q.code);
        }
        if let Some(at) = received.get(&id) {
            stats.metrics.processing_latency(seconds_since(*at));
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

/// How often a worker removes quarantined content past its retention (also at start).
const RETENTION_CHECK: Duration = Duration::from_secs(600);

/// A worker thread: processes spooled messages (and quarantine retries) until `stop`.
pub(super) fn run(shared: &Shared, reaper: &std::sync::mpsc::Sender<SpoolId>) {
    // The practices as of the last batch: reloaded when `svoct oct ps` changed them.
    let mut practices = crate::practices::Directory::default();
    let mut opened = None;
    let mut blocks = Blocks::default();
    let mut retention_checked: Option<std::time::Instant> = None;
    while !shared.stop.load(Ordering::Relaxed) {
        // Settings of this turn (batch size, poll, retention); the pipeline takes its own
        // snapshot when it has work (see `Rules::Live`). `paths.state` needs a restart to
        // change, so the database opened once stays the right one.
        let live = shared.live();
        let config = &*live.config;
        if opened.is_none() {
            match State::open_gated(&config.paths.state, shared.gate.clone()) {
                Ok(s) => opened = Some(s),
                Err(e) => tracing::error!(error = %e, "worker cannot open the state database"),
            }
        }
        let Some(state) = opened.as_mut() else {
            sleep_unless_stopped(&shared.stop, Duration::from_secs(1));
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
        let poll = Duration::from_millis(config.pipeline.poll_interval_ms.max(1));
        let practices = match practices.refresh(state) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "worker cannot read the practices; retrying");
                sleep_unless_stopped(&shared.stop, Duration::from_secs(1));
                continue;
            }
        };
        match work_batch_with(
            &shared.spool,
            state,
            &mut blocks,
            Rules::Live(shared, &practices),
            &shared.stats,
            config.pipeline.batch,
            Completion::Reaper(reaper),
        ) {
            Ok(true) => shared.signal.notify(),
            // Woken by the ingress as soon as a message is spooled; the timeout also picks up
            // quarantined messages an operator asked to retry.
            Ok(false) => {
                shared.spool.wait_pending(poll);
            }
            Err(e) => {
                tracing::error!(error = %e, "worker step failed; retrying");
                sleep_unless_stopped(&shared.stop, Duration::from_secs(1));
            }
        }
    }
}
