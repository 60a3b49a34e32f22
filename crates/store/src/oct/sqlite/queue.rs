//! Queue control (`svoct oct queue`, the `mailq` / `postqueue -f` / `postsuper -h -H -d` of the
//! OCT): listing what waits, making rows due now, holding and releasing them, abandoning one.
//!
//! A hold is the outbox state `held`: the senders claim only `pending` rows
//! ([`SqliteOctStore::due_rows`]), so a held row is out of their reach without any change to
//! the claim. Abandoning (`deleted`) goes through
//! [`OctStore::record_deliveries_with_notices`](crate::oct::OctStore::record_deliveries_with_notices)
//! like a permanent failure, so the ART to the PS is queued in the same transaction.

use rusqlite::{OptionalExtension, params};

use super::{SqliteOctStore, outbox_row};
use crate::oct::model::QueueRow;
use crate::{StoreError, sql};

/// The states of a row still waiting in the queue (what `queue list` shows).
pub(super) const WAITING: &str = "o.state IN ('pending', 'sending', 'failed', 'held')";

/// The columns of [`outbox_row`] first, then what the queue adds.
const SELECT: &str = "SELECT o.id, o.message_id, o.spool_id, o.kind, o.rcpt, o.state, o.attempts,
        o.next_attempt, o.last_error, o.login_refused, o.created, p.mail_from, p.subject,
        length(b.raw), o.abandoned_reason, o.abandoned_at
     FROM outbox o
     LEFT JOIN outbox_body b ON b.id = o.id
     LEFT JOIN processed p ON p.spool_id = o.spool_id";

fn queue_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<QueueRow> {
    Ok(QueueRow {
        row: outbox_row(r)?,
        created_at: r.get(10)?,
        origin_from: r.get(11)?,
        origin_subject: r.get(12)?,
        bytes: r
            .get::<_, Option<i64>>(13)?
            .map_or(0, |n| u64::try_from(n).unwrap_or(0)),
        abandoned_reason: r.get(14)?,
        abandoned_at: r.get(15)?,
    })
}

/// Every row still waiting, oldest first.
pub(super) fn list(s: &SqliteOctStore) -> Result<Vec<QueueRow>, StoreError> {
    let mut st = s
        .conn
        .prepare(&format!("{SELECT} WHERE {WAITING} ORDER BY o.id"))
        .map_err(sql("queue list"))?;
    let rows = st.query_map([], queue_row).map_err(sql("queue list"))?;
    rows.collect::<Result<Vec<_>, _>>().map_err(sql("queue list"))
}

/// One row, whatever its state.
pub(super) fn get(s: &SqliteOctStore, id: i64) -> Result<Option<QueueRow>, StoreError> {
    s.conn
        .query_row(&format!("{SELECT} WHERE o.id = ?1"), [id], queue_row)
        .optional()
        .map_err(sql("queue show"))
}

/// The state of row `id`, to say why an action did not apply.
fn state_of(s: &SqliteOctStore, id: i64) -> Result<String, StoreError> {
    s.conn
        .query_row("SELECT state FROM outbox WHERE id = ?1", [id], |r| r.get(0))
        .optional()
        .map_err(sql("queue state"))?
        .ok_or(StoreError::NotFound { table: "outbox", id })
}

/// Runs `update` on row `id` (its parameters: `args`) and maps "no row changed" to a typed
/// error: unknown row, or a row not in a state the action applies to.
fn change_one(
    s: &SqliteOctStore,
    id: i64,
    what: &'static str,
    update: &str,
    args: &[&dyn rusqlite::ToSql],
) -> Result<(), StoreError> {
    let changed = s.in_immediate(what, || s.conn.execute(update, args).map_err(sql(what)))?;
    if changed == 1 {
        return Ok(());
    }
    Err(StoreError::NotQueued {
        id,
        state: state_of(s, id)?,
    })
}

/// Makes pending rows due at `now` (one, or all when `id` is `None`); returns how many.
pub(super) fn flush(s: &SqliteOctStore, id: Option<i64>, now: i64) -> Result<usize, StoreError> {
    if let Some(id) = id {
        let update =
            "UPDATE outbox SET next_attempt = MIN(next_attempt, ?2) WHERE id = ?1 AND state = 'pending'";
        return change_one(s, id, "queue flush", update, params![id, now]).map(|()| 1);
    }
    s.in_immediate("queue flush", || {
        s.conn
            .execute(
                "UPDATE outbox SET next_attempt = ?1 WHERE state = 'pending' AND next_attempt > ?1",
                [now],
            )
            .map_err(sql("queue flush"))
    })
}

/// Holds a pending or failed row: no sender claims it until [`release`].
pub(super) fn hold(s: &SqliteOctStore, id: i64) -> Result<(), StoreError> {
    let update = "UPDATE outbox SET state = 'held' WHERE id = ?1 AND state IN ('pending', 'failed')";
    change_one(s, id, "queue hold", update, params![id])
}

/// Gives a held row back to the senders, due at `now` at the latest.
pub(super) fn release(s: &SqliteOctStore, id: i64, now: i64) -> Result<(), StoreError> {
    let update = "UPDATE outbox SET state = 'pending', next_attempt = MIN(next_attempt, ?2)
                  WHERE id = ?1 AND state = 'held'";
    change_one(s, id, "queue release", update, params![id, now])
}

/// Marks row `id` abandoned (inside the caller's transaction); a row not waiting is an error,
/// which rolls back the notices queued with it.
pub(super) fn abandon(s: &SqliteOctStore, id: i64, reason: &str, now: i64) -> Result<(), StoreError> {
    let changed = s
        .conn
        .prepare_cached(
            "UPDATE outbox SET state = 'deleted', abandoned_reason = ?2, abandoned_at = ?3,
             login_refused = 0 WHERE id = ?1 AND state IN ('pending', 'failed', 'held')",
        )
        .and_then(|mut st| st.execute(params![id, reason, now]))
        .map_err(sql("queue delete"))?;
    if changed == 1 {
        return Ok(());
    }
    Err(StoreError::NotQueued {
        id,
        state: state_of(s, id)?,
    })
}
