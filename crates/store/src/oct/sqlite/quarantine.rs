//! The quarantine's own bound and retention.
//!
//! A quarantined message is kept **once**, in the `quarantine` table of the state database (the
//! spool only keeps, in `spool/quarantine/`, entries it cannot read back itself). Its content
//! (`raw`) is the only large part; it is removed when either
//!
//! - the content of all quarantined messages still holding one exceeds `max_bytes`: the
//!   **oldest** contents go first, so the newest junk never pushes out nothing and the space
//!   stays bounded whoever sends; or
//! - it is older than the retention period.
//!
//! Removing keeps the row (code, reason, sender, recipients, subject, date) with `state =
//! 'purged'` and an empty `raw`, and records why and how many bytes in `quarantine_purged`; each
//! removal is logged with the reason code, reason and sender. A purged message can no longer be
//! retried. The purged rows are bounded too (`max_purged_rows`, oldest deleted first, one log
//! line per deletion batch): a flood of junk must not grow the database by its metadata either;
//! the log keeps what each of them was. SQLite reuses the freed pages, so the database file stops
//! growing at about the bound (it does not shrink without `VACUUM`).

use rusqlite::{OptionalExtension, params};

use super::SqliteOctStore;
use crate::oct::model::{PurgeCause, PurgeRecord, Purged, QuarantineBound};
use crate::{StoreError, sql};

/// The states of a row that still holds its content (`purged` rows do not). Listed rather than
/// `!= 'purged'` so that the index on `state` serves: a flood of junk leaves many purged rows,
/// and the bound check must not scan them all at each quarantined message.
const HOLDING: &str = "state IN ('held', 'retry', 'retried')";

/// A quarantine row still holding its content.
struct Held {
    id: i64,
    spool_id: String,
    code: String,
    reason: String,
    mail_from: String,
    bytes: u64,
    at: i64,
}

impl Held {
    fn purged(self, cause: PurgeCause) -> Purged {
        Purged {
            id: self.id,
            spool_id: self.spool_id,
            code: self.code,
            reason: self.reason,
            mail_from: self.mail_from,
            bytes: self.bytes,
            cause,
        }
    }
}

/// Bytes of quarantined content still held (what the bound applies to).
pub(super) fn bytes_held(st: &SqliteOctStore) -> Result<u64, StoreError> {
    st.conn
        .query_row(
            &format!("SELECT COALESCE(SUM(length(raw)), 0) FROM quarantine WHERE {HOLDING}"),
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| u64::try_from(n).unwrap_or(0))
        .map_err(sql("quarantine size"))
}

/// See [`crate::oct::OctStore::enforce_quarantine_bound`].
pub(super) fn enforce_bound(
    st: &SqliteOctStore,
    bound: &QuarantineBound,
    now: i64,
) -> Result<Vec<Purged>, StoreError> {
    let max_bytes = bound.max_bytes;
    let purged = st.in_immediate("quarantine bound", || {
        let rows = held_newest_first(st)?;
        let mut total: u64 = 0;
        let mut doomed = Vec::new();
        for held in rows {
            total = total.saturating_add(held.bytes);
            if total > max_bytes {
                doomed.push(held.purged(PurgeCause::Bound));
            }
        }
        purge(st, &doomed, "", now)?;
        Ok(doomed)
    })?;
    trim_purged_rows(st, bound.max_purged_rows)?;
    Ok(purged)
}

/// See [`crate::oct::OctStore::trim_purged_rows`].
pub(super) fn trim_purged_rows(st: &SqliteOctStore, max_rows: u64) -> Result<usize, StoreError> {
    let keep = i64::try_from(max_rows).unwrap_or(i64::MAX);
    let deleted = st.in_immediate("trim purged quarantine", || {
        let doomed = "SELECT id FROM quarantine WHERE state = 'purged'
                      ORDER BY id DESC LIMIT -1 OFFSET ?1";
        st.conn
            .execute(
                &format!("DELETE FROM quarantine_purged WHERE id IN ({doomed})"),
                [keep],
            )
            .map_err(sql("trim purge records"))?;
        st.conn
            .execute(&format!("DELETE FROM quarantine WHERE id IN ({doomed})"), [keep])
            .map_err(sql("trim purged rows"))
    })?;
    if deleted > 0 {
        tracing::warn!(
            deleted,
            kept = max_rows,
            "oldest purged quarantine rows deleted (each was logged when its content was removed)"
        );
    }
    Ok(deleted)
}

/// See [`crate::oct::OctStore::purge_quarantine_before`].
pub(super) fn purge_before(st: &SqliteOctStore, cutoff: i64, now: i64) -> Result<Vec<Purged>, StoreError> {
    st.in_immediate("quarantine retention", || {
        let doomed: Vec<Purged> = held_newest_first(st)?
            .into_iter()
            .filter(|h| h.at < cutoff)
            .map(|h| h.purged(PurgeCause::Retention))
            .collect();
        purge(st, &doomed, "", now)?;
        Ok(doomed)
    })
}

/// Every row still holding its content, newest first.
fn held_newest_first(st: &SqliteOctStore) -> Result<Vec<Held>, StoreError> {
    let mut stmt = st
        .conn
        .prepare_cached(&format!(
            "SELECT id, spool_id, code, length(raw), at, mail_from, reason FROM quarantine
             WHERE {HOLDING} ORDER BY id DESC"
        ))
        .map_err(sql("list held quarantine"))?;
    let rows = stmt
        .query_map([], held_row)
        .map_err(sql("list held quarantine"))?;
    rows.collect::<Result<_, _>>()
        .map_err(sql("list held quarantine"))
}

/// A row of `SELECT id, spool_id, code, length(raw), at, mail_from, reason FROM quarantine`.
fn held_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Held> {
    Ok(Held {
        id: r.get(0)?,
        spool_id: r.get(1)?,
        code: r.get(2)?,
        bytes: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
        at: r.get(4)?,
        mail_from: r.get(5)?,
        reason: r.get(6)?,
    })
}

/// Removes the content of the `doomed` rows and records why: the cause's name, followed by
/// `: note` when there is one (an operator's reason).
fn purge(st: &SqliteOctStore, doomed: &[Purged], note: &str, now: i64) -> Result<(), StoreError> {
    for p in doomed {
        st.conn
            .execute(
                "UPDATE quarantine SET raw = x'', state = 'purged' WHERE id = ?1",
                [p.id],
            )
            .map_err(sql("purge quarantine"))?;
        st.conn
            .execute(
                "INSERT OR REPLACE INTO quarantine_purged (id, bytes, why, at) VALUES (?1, ?2, ?3, ?4)",
                params![
                    p.id,
                    i64::try_from(p.bytes).unwrap_or(i64::MAX),
                    why(p.cause, note),
                    now
                ],
            )
            .map_err(sql("record purge"))?;
        tracing::warn!(
            quarantine_id = p.id,
            spool_id = %p.spool_id,
            code = %p.code,
            reason = %p.reason,
            from = %p.mail_from,
            bytes = p.bytes,
            cause = %why(p.cause, note),
            "quarantined message content removed; its reason and metadata are kept"
        );
    }
    Ok(())
}

fn why(cause: PurgeCause, note: &str) -> String {
    if note.is_empty() {
        cause.as_str().to_owned()
    } else {
        format!("{}: {note}", cause.as_str())
    }
}

/// Drops one held message (see `OctStore::quarantine_drop`). A message marked for retry is not
/// dropped: the worker may be processing it.
pub(super) fn drop_one(
    st: &SqliteOctStore,
    id: i64,
    reason: &str,
    now: i64,
) -> Result<Option<Purged>, StoreError> {
    st.in_immediate("quarantine drop", || {
        let held = st
            .conn
            .query_row(
                "SELECT id, spool_id, code, length(raw), at, mail_from, reason FROM quarantine
                 WHERE id = ?1 AND state IN ('held', 'retried')",
                [id],
                held_row,
            )
            .optional()
            .map_err(sql("quarantine drop"))?;
        let Some(held) = held else { return Ok(None) };
        let dropped = held.purged(PurgeCause::Dropped);
        purge(st, std::slice::from_ref(&dropped), reason, now)?;
        Ok(Some(dropped))
    })
}

/// Whether spooled message `spool_id` has a quarantine row (held or purged).
pub(super) fn has_row(st: &SqliteOctStore, spool_id: &str) -> Result<bool, StoreError> {
    st.conn
        .query_row("SELECT 1 FROM quarantine WHERE spool_id = ?1", [spool_id], |_| {
            Ok(())
        })
        .optional()
        .map(|o| o.is_some())
        .map_err(sql("quarantine lookup"))
}

/// Why and when the content of quarantined message `id` was removed.
pub(super) fn purge_record(st: &SqliteOctStore, id: i64) -> Result<Option<PurgeRecord>, StoreError> {
    st.conn
        .query_row(
            "SELECT why, bytes, at FROM quarantine_purged WHERE id = ?1",
            [id],
            |r| {
                Ok(PurgeRecord {
                    cause: r.get(0)?,
                    bytes: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                    at: r.get(2)?,
                })
            },
        )
        .optional()
        .map_err(sql("purge record"))
}
