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

use rusqlite::params;

use super::{State, StateError, sql};
use crate::config::QuarantineSettings;

/// The table that remembers what was removed (created with the schema, idempotently).
pub(super) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS quarantine_purged (
    id    INTEGER PRIMARY KEY REFERENCES quarantine(id),
    bytes INTEGER NOT NULL,
    why   TEXT NOT NULL,
    at    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS quarantine_by_state ON quarantine(state, id);
"#;

/// The states of a row that still holds its content (`purged` rows do not). Listed rather than
/// `!= 'purged'` so that the index on `state` serves: a flood of junk leaves many purged rows,
/// and the bound check must not scan them all at each quarantined message.
const HOLDING: &str = "state IN ('held', 'retry', 'retried')";

/// Why a quarantined message's content was removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PurgeCause {
    /// The quarantine held more than its bound.
    Bound,
    /// Older than the retention period.
    Retention,
}

impl PurgeCause {
    fn as_str(self) -> &'static str {
        match self {
            PurgeCause::Bound => "bound",
            PurgeCause::Retention => "retention",
        }
    }
}

/// A quarantined message whose content was removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Purged {
    pub id: i64,
    pub spool_id: String,
    pub code: String,
    pub reason: String,
    pub mail_from: String,
    pub bytes: u64,
    pub cause: PurgeCause,
}

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

impl State {
    /// Bytes of quarantined content still held (what the bound applies to).
    pub fn quarantine_bytes(&self) -> Result<u64, StateError> {
        self.conn
            .query_row(
                &format!("SELECT COALESCE(SUM(length(raw)), 0) FROM quarantine WHERE {HOLDING}"),
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(sql("quarantine size"))
    }

    /// Removes the content of the oldest quarantined messages until what is held fits in
    /// `settings.max_bytes`, then the oldest purged rows beyond `settings.max_purged_rows`.
    /// Returns the contents removed (each one is also logged).
    pub fn enforce_quarantine_bound(
        &self,
        settings: &QuarantineSettings,
        now: i64,
    ) -> Result<Vec<Purged>, StateError> {
        let max_bytes = settings.max_bytes;
        let purged = self.in_immediate("quarantine bound", || {
            let rows = self.held_newest_first()?;
            let mut total: u64 = 0;
            let mut doomed = Vec::new();
            for held in rows {
                total = total.saturating_add(held.bytes);
                if total > max_bytes {
                    doomed.push(held.purged(PurgeCause::Bound));
                }
            }
            self.purge(&doomed, now)?;
            Ok(doomed)
        })?;
        self.trim_purged_rows(settings.max_purged_rows)?;
        Ok(purged)
    }

    /// Deletes the oldest purged rows (and their purge records) beyond `max_rows`. Returns how
    /// many were deleted.
    pub fn trim_purged_rows(&self, max_rows: u64) -> Result<usize, StateError> {
        let keep = i64::try_from(max_rows).unwrap_or(i64::MAX);
        let deleted = self.in_immediate("trim purged quarantine", || {
            let doomed = "SELECT id FROM quarantine WHERE state = 'purged'
                          ORDER BY id DESC LIMIT -1 OFFSET ?1";
            self.conn
                .execute(
                    &format!("DELETE FROM quarantine_purged WHERE id IN ({doomed})"),
                    [keep],
                )
                .map_err(sql("trim purge records"))?;
            self.conn
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

    /// Removes the content of quarantined messages received before `cutoff` (seconds since the
    /// epoch). Returns what was removed (each one is also logged).
    pub fn purge_quarantine_before(&self, cutoff: i64, now: i64) -> Result<Vec<Purged>, StateError> {
        self.in_immediate("quarantine retention", || {
            let doomed: Vec<Purged> = self
                .held_newest_first()?
                .into_iter()
                .filter(|h| h.at < cutoff)
                .map(|h| h.purged(PurgeCause::Retention))
                .collect();
            self.purge(&doomed, now)?;
            Ok(doomed)
        })
    }

    /// Every row still holding its content, newest first.
    fn held_newest_first(&self) -> Result<Vec<Held>, StateError> {
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT id, spool_id, code, length(raw), at, mail_from, reason FROM quarantine
                 WHERE {HOLDING} ORDER BY id DESC"
            ))
            .map_err(sql("list held quarantine"))?;
        let rows = st
            .query_map([], |r| {
                Ok(Held {
                    id: r.get(0)?,
                    spool_id: r.get(1)?,
                    code: r.get(2)?,
                    bytes: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                    at: r.get(4)?,
                    mail_from: r.get(5)?,
                    reason: r.get(6)?,
                })
            })
            .map_err(sql("list held quarantine"))?;
        rows.collect::<Result<_, _>>()
            .map_err(sql("list held quarantine"))
    }

    fn purge(&self, doomed: &[Purged], now: i64) -> Result<(), StateError> {
        for p in doomed {
            self.conn
                .execute(
                    "UPDATE quarantine SET raw = x'', state = 'purged' WHERE id = ?1",
                    [p.id],
                )
                .map_err(sql("purge quarantine"))?;
            self.conn
                .execute(
                    "INSERT OR REPLACE INTO quarantine_purged (id, bytes, why, at) VALUES (?1, ?2, ?3, ?4)",
                    params![
                        p.id,
                        i64::try_from(p.bytes).unwrap_or(i64::MAX),
                        p.cause.as_str(),
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
                cause = p.cause.as_str(),
                "quarantined message content removed; its reason and metadata are kept"
            );
        }
        Ok(())
    }

    /// Whether spooled message `spool_id` has a quarantine row (held or purged).
    pub fn has_quarantine_row(&self, spool_id: &str) -> Result<bool, StateError> {
        use rusqlite::OptionalExtension;
        self.conn
            .query_row("SELECT 1 FROM quarantine WHERE spool_id = ?1", [spool_id], |_| {
                Ok(())
            })
            .optional()
            .map(|o| o.is_some())
            .map_err(sql("quarantine lookup"))
    }

    /// Why and when the content of quarantined message `id` was removed: (cause, bytes, at).
    pub fn quarantine_purge_record(&self, id: i64) -> Result<Option<(String, u64, i64)>, StateError> {
        use rusqlite::OptionalExtension;
        self.conn
            .query_row(
                "SELECT why, bytes, at FROM quarantine_purged WHERE id = ?1",
                [id],
                |r| {
                    Ok((
                        r.get(0)?,
                        u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                        r.get(2)?,
                    ))
                },
            )
            .optional()
            .map_err(sql("purge record"))
    }
}
