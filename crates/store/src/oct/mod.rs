//! The concentrator's durable state: processed messages, the outbox, the quarantine, the lots the
//! OCT built itself and its counters, behind one boundary, [`OctStore`].
//!
//! The service, the pipeline's environment and the CLI reach the state only through the trait:
//! no SQL and no SQLite type in its signatures, rows come back as the named structs of
//! [`model`]. [`SqliteOctStore`] is the implementation (the default, one file `state.sqlite`);
//! another backend (PostgreSQL for several nodes) implements the same trait.
//!
//! # Exactly-once
//!
//! The spool (the ingress's) and this database are two stores, so "processed" is recorded here:
//! a worker commits, in **one transaction**, the row saying spooled message `S` was processed,
//! every outgoing message it produced (forwarded files, ART, relayed returns) and, when refused,
//! its quarantine row (the only copy of a quarantined message: its bound and retention are in
//! `oct/sqlite/quarantine.rs`). Only then does it tell the spool `complete(S)`. After a crash:
//!
//! - before the commit: nothing of `S` exists here; the spool hands `S` out again; it is processed
//!   from scratch (its outputs were never visible);
//! - after the commit, before `complete`: the spool hands `S` out again; [`OctStore::is_processed`]
//!   says so and the worker only completes it.
//!
//! Outgoing messages carry deterministic Message-IDs (forwarded files: from their lots, see
//! `svoct_oct::pipeline::lots_message_id`; the others: from the spooled message, see
//! `svoct_oct::pipeline::message_id`) and are stored as final bytes, so a resend after a crash
//! between "sent" and "marked sent" carries the same Message-ID: the SMTP hop is at-least-once,
//! and receivers can de-duplicate on Message-ID (local Maildir delivery de-duplicates itself).
//!
//! # No double billing
//!
//! A spooled message is processed once, but the same content can arrive in several spooled
//! messages (a replay, a client retry after a cut connection). The processed index
//! (`forwarded_lots`, `compostages`) holds what accepted invoice messages forwarded; a
//! message's [`Claims`] are inserted with its outbox rows, and the tables' unique keys decide
//! between two copies committed by two workers or side by side in one batch: the loser is a
//! [`Commit::Conflict`], recorded not at all, and processed again.

use std::time::{SystemTime, UNIX_EPOCH};

pub mod console;
pub mod model;
pub mod practices;
mod sqlite;
pub mod trace;

pub use crate::compostage::CompostageBlock;
pub use console::{ConsoleQueries, HourFlow};
pub use model::*;
pub use practices::*;
pub use sqlite::{SqliteOctStore, WriteGate};
pub use trace::*;

use crate::StoreError;

/// Seconds since the epoch, for timestamps stored in the database.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The boundary of the concentrator's state. One value is one connection: not `Sync`, open one
/// per thread (they share the database, and a [`WriteGate`] within one process).
pub trait OctStore: PracticeStore + Send {
    // --- Processing: what the workers commit and look up.

    /// Whether spooled message `spool_id` was already committed.
    fn is_processed(&self, spool_id: &str) -> Result<bool, StoreError>;

    /// The outcome (`processed` or `quarantined`) and reason of a committed message.
    fn outcome(&self, spool_id: &str) -> Result<Option<ProcessedOutcome>, StoreError>;

    /// Records everything one spooled message produced, in one transaction (see
    /// [`OctStore::commit_batch`]). Outgoing messages whose Message-ID is already in the outbox
    /// are not queued twice.
    fn commit(&mut self, p: &Processed) -> Result<Commit, StoreError> {
        let done = self.commit_batch(std::slice::from_ref(p))?;
        Ok(done.first().copied().unwrap_or(Commit::AlreadyProcessed))
    }

    /// Records several processed messages in one transaction (one durable write for all).
    /// Returns, per message, what was done: nothing of a message already committed or in
    /// conflict over a claim changes, the others are recorded. All or nothing on error: then
    /// none of them is recorded.
    fn commit_batch(&mut self, batch: &[Processed]) -> Result<Vec<Commit>, StoreError>;

    /// The lot with this hash in the processed index, if it was forwarded.
    fn forwarded_lot(&self, lot_hash: &str) -> Result<Option<SeenLot>, StoreError>;

    /// The hash of the file an accepted message of `sender_number` carried under `compostage`.
    fn compostage_file(&self, sender_number: &str, compostage: &str) -> Result<Option<String>, StoreError>;

    /// The first forwarded invoice of PS `ps_number` (leading zeros removed) with this number and
    /// nature, if any (R3.4).
    fn forwarded_invoice(
        &self,
        ps_number: &str,
        invoice_number: u64,
        nature: InvoiceNature,
    ) -> Result<Option<SeenInvoice>, StoreError>;

    // --- Counters: names, numbers and compostages of what the OCT builds.

    /// A random identifier of this state, drawn at first use and kept: it makes the names of
    /// files the OCT writes unique across OCT instances sharing a Maildir.
    fn instance_id(&self) -> Result<String, StoreError>;

    /// Allocates the next value of a named counter, cycling in `1..=max` (the lot numbers of
    /// what the OCT builds).
    fn next_sequence(&self, name: &str, max: u64) -> Result<u64, StoreError> {
        self.reserve_sequence(name, 1, max)
    }

    /// Reserves `count` consecutive values of a named counter cycling in `1..=max` and returns
    /// the first: the caller owns `first..first + count` (a block never wraps; values skipped by
    /// a crash are simply never used). One transaction per block keeps allocation off the
    /// per-message path.
    fn reserve_sequence(&self, name: &str, count: u64, max: u64) -> Result<u64, StoreError>;

    /// Reserves `count` (1 to 1000) compostage counters within one second, as if the clock read
    /// `now`, from the one compostage allocator ([`crate::CompostageAllocator`]): compostages
    /// never repeat and never go backwards.
    fn reserve_compostage(&self, count: u32, now: i64) -> Result<CompostageBlock, StoreError>;

    // --- Own lots: the lots the OCT built itself and their ARL (R4.2).

    /// Records an ARL for a lot the OCT built. Returns `false` when the lot is not one of the
    /// OCT's own.
    fn record_own_arl(
        &self,
        lot_number: &str,
        lot_date: &str,
        status: &str,
        detail: &str,
    ) -> Result<bool, StoreError>;

    /// Whether (lot number, lot date, file) is a lot the OCT built; an empty `file_id` matches
    /// any file.
    fn is_own_lot(&self, lot_number: &str, lot_date: &str, file_id: &str) -> Result<bool, StoreError>;

    /// The own lot's ARL, if the lot exists.
    fn own_lot_arl(&self, lot_number: &str, lot_date: &str) -> Result<Option<OwnLotArl>, StoreError>;

    // --- Outbox: what the senders deliver.

    /// The next outbox row due at `now` (oldest first), if any.
    fn next_due(&self, now: i64) -> Result<Option<Due>, StoreError>;

    /// Takes up to `limit` due rows for delivery (oldest first, one transaction): marks them
    /// `sending` so that parallel senders never deliver the same row. A crash leaves them
    /// `sending`; [`OctStore::reset_sending`] at start puts them back (the SMTP hop is
    /// at-least-once).
    fn claim_due_batch(&self, now: i64, limit: usize) -> Result<Vec<Due>, StoreError>;

    /// Records the outcomes of several delivery attempts in one transaction.
    fn record_deliveries(&self, outcomes: &[(i64, DeliveryOutcome)]) -> Result<(), StoreError>;

    /// Like [`OctStore::record_deliveries`], and queues in the same transaction the messages
    /// those outcomes call for, each under the spooled message it answers (the ART telling a PS
    /// that a forward failed: recorded with the failure or not at all). A Message-ID already in
    /// the outbox is not queued again, so a notice derived from the failed row's Message-ID goes
    /// out once however often that row fails.
    fn record_deliveries_with_notices(
        &self,
        outcomes: &[(i64, DeliveryOutcome)],
        notices: &[(String, Outgoing)],
    ) -> Result<(), StoreError>;

    /// Where outbox row `outbox_id` comes from, when it forwards a PS's lots: the processed
    /// message and the lots it carries. `None` for another kind of row or an unknown id.
    fn forward_origin(&self, outbox_id: i64) -> Result<Option<ForwardOrigin>, StoreError>;

    /// Puts claimed rows back in the queue (a sender that could not finish its batch).
    fn unclaim(&self, ids: &[i64]) -> Result<(), StoreError>;

    /// Puts rows left `sending` by a crash back in the queue; returns how many.
    fn reset_sending(&self) -> Result<usize, StoreError>;

    /// When the next pending row becomes due (to sleep until then).
    fn next_due_at(&self) -> Result<Option<i64>, StoreError>;

    /// Puts failed outbox rows back in the queue (operator action after fixing the cause).
    fn requeue_failed(&self) -> Result<usize, StoreError>;

    /// Relaxes durability for this connection: commits survive a process crash but may be lost
    /// on power loss. Used by the sender for "sent" marks only: losing one means a resend with
    /// the same Message-ID, which the at-least-once SMTP hop allows anyway.
    fn relax_durability(&self) -> Result<(), StoreError>;

    /// Outbox rows not yet delivered (pending and failed), oldest first, at most `limit`.
    fn undelivered(&self, limit: usize) -> Result<Vec<OutboxRow>, StoreError>;

    /// Every outbox row, oldest first, for tests and audits.
    fn outbox_ids(&self) -> Result<Vec<OutboxEntry>, StoreError>;

    /// The raw bytes of an outbox row by Message-ID.
    fn outbox_raw(&self, message_id: &str) -> Result<Option<Vec<u8>>, StoreError>;

    // --- Quarantine: refused messages, their retry, bound and retention.

    /// Asks for a quarantined message to be processed again (by the running service, or at its
    /// next start). Returns `false` when there is no such message still held.
    fn quarantine_request_retry(&self, id: i64) -> Result<bool, StoreError>;

    /// The oldest quarantined message waiting for a retry.
    fn take_retry(&self) -> Result<Option<RetryItem>, StoreError>;

    /// Quarantined messages, newest first (`all` includes the ones already retried).
    fn quarantine_list(&self, all: bool) -> Result<Vec<QuarantineRow>, StoreError>;

    /// One quarantined message with its raw bytes and the processing summary.
    fn quarantine_get(&self, id: i64) -> Result<Option<QuarantinedMessage>, StoreError>;

    /// Marks a quarantined message as handed back to the pipeline.
    fn quarantine_mark_retried(&self, id: i64) -> Result<bool, StoreError>;

    /// Whether spooled message `spool_id` has a quarantine row (held or purged).
    fn has_quarantine_row(&self, spool_id: &str) -> Result<bool, StoreError>;

    /// Bytes of quarantined content still held (what the bound applies to).
    fn quarantine_bytes(&self) -> Result<u64, StoreError>;

    /// Removes the content of the oldest quarantined messages until what is held fits in
    /// `bound.max_bytes`, then the oldest purged rows beyond `bound.max_purged_rows`. Returns the
    /// contents removed (each one is also logged).
    fn enforce_quarantine_bound(&self, bound: &QuarantineBound, now: i64) -> Result<Vec<Purged>, StoreError>;

    /// Deletes the oldest purged rows (and their purge records) beyond `max_rows`. Returns how
    /// many were deleted.
    fn trim_purged_rows(&self, max_rows: u64) -> Result<usize, StoreError>;

    /// Removes the content of quarantined messages received before `cutoff` (seconds since the
    /// epoch). Returns what was removed (each one is also logged).
    fn purge_quarantine_before(&self, cutoff: i64, now: i64) -> Result<Vec<Purged>, StoreError>;

    /// Why and when the content of quarantined message `id` was removed.
    fn quarantine_purge_record(&self, id: i64) -> Result<Option<PurgeRecord>, StoreError>;

    /// Drops quarantined message `id` on an operator's word (`svoct oct quarantine drop`): its
    /// content is removed as by the bound or the retention, the row is kept with `reason` as the
    /// cause (`dropped: <reason>`), and it can no longer be retried. `None` when no message
    /// `id` holds its content (unknown, already removed, or being retried).
    fn quarantine_drop(&self, id: i64, reason: &str, now: i64) -> Result<Option<Purged>, StoreError>;

    // --- Status.

    /// Counters and queue depths.
    fn counters(&self) -> Result<Counters, StoreError>;

    // --- Queue control (`svoct oct queue`): the operator's hand on the outbox.

    /// Outbox rows still waiting (pending, being sent, failed, held), oldest first, with the
    /// sender and subject of the message each came from. Not cut: an operator sees all of it.
    fn queue_list(&self) -> Result<Vec<QueueRow>, StoreError>;

    /// One outbox row, whatever its state (`None` when unknown).
    fn queue_get(&self, id: i64) -> Result<Option<QueueRow>, StoreError>;

    /// Makes pending row `id`, or every pending row when `None`, due at `now` (the senders take
    /// them at their next poll). Returns how many rows changed; a row `id` that is not pending
    /// is [`StoreError::NotQueued`] (unknown: [`StoreError::NotFound`]).
    fn queue_flush(&self, id: Option<i64>, now: i64) -> Result<usize, StoreError>;

    /// Holds a pending or failed row: no sender claims it ([`OctStore::claim_due_batch`]) until
    /// [`OctStore::queue_release`]. Errors as [`OctStore::queue_flush`].
    fn queue_hold(&self, id: i64) -> Result<(), StoreError>;

    /// Gives a held row back to the senders, due at `now` at the latest.
    fn queue_release(&self, id: i64, now: i64) -> Result<(), StoreError>;

    // --- Trace (issue 14 point 1): `svoct oct trace`.

    /// The spool ids of the messages `query` names (spool id, compostage, PS number, lot number,
    /// Message-ID of an outgoing message), oldest first, at most `limit`.
    fn trace_find(&self, query: &str, limit: usize) -> Result<Vec<String>, StoreError>;

    /// Everything the state keeps of spooled message `spool_id`; `None` when nothing.
    fn trace(&self, spool_id: &str) -> Result<Option<MessageTrace>, StoreError>;
}
