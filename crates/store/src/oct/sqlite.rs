//! The SQLite implementation of [`OctStore`]: the default backend, one file `state.sqlite`
//! whose schema is `migrations/oct/` (applied by [`crate::migrate`]).

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::model::*;
use super::practices::{
    ImportOutcome, PracticeAudit, PracticeFields, PracticeMessage, PracticeRecord, PracticeState,
    PracticeStore,
};
use super::trace::MessageTrace;
use super::{OctStore, now_secs};
use crate::compostage::{CompostageAllocator, CompostageBlock};
use crate::{StoreError, sql};

mod console;
mod practices;
mod quarantine;
mod queue;
#[cfg(test)]
mod tests;
mod trace;

/// An outbox row from columns 0 to 9: `id, message_id, spool_id, kind, rcpt, state, attempts,
/// next_attempt, last_error, login_refused` (`status` and `queue` read the same row).
fn outbox_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxRow> {
    Ok(OutboxRow {
        id: r.get(0)?,
        message_id: r.get(1)?,
        spool_id: r.get(2)?,
        kind: r.get(3)?,
        rcpt: r.get(4)?,
        state: outbox_state(r, 5)?,
        attempts: r.get(6)?,
        next_attempt: r.get(7)?,
        last_error: r.get(8)?,
        login_refused: r.get(9)?,
    })
}

/// Column `i` of `r` as an outbox state; another value is a corrupt row.
fn outbox_state(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<OutboxState> {
    let name: String = r.get(i)?;
    OutboxState::parse(&name).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("unknown outbox state {name:?}").into(),
        )
    })
}

/// Runs `f` inside `BEGIN IMMEDIATE` … `COMMIT` on `conn` (rolled back when it fails).
fn immediate<T>(
    conn: &Connection,
    what: &'static str,
    f: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(sql(what))?;
    match f() {
        Ok(v) => {
            conn.execute_batch("COMMIT").map_err(sql(what))?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Records the claims of one message; `false` when one is held by another message.
fn insert_claims(tx: &Connection, p: &Processed, now: i64) -> Result<bool, StoreError> {
    if let Some(c) = &p.claims.compostage {
        let inserted = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO compostages (sender_number, compostage, file_hash, spool_id, at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    c.sender_number,
                    c.compostage,
                    c.file_hash,
                    p.spool_id,
                    now
                ])
            })
            .map_err(sql("insert compostage"))?;
        if inserted == 0 && c.first_use {
            return Ok(false);
        }
        // Already there with the same file: a duplicate message, which may reuse it.
        let held: String = tx
            .prepare_cached("SELECT file_hash FROM compostages WHERE sender_number = ?1 AND compostage = ?2")
            .and_then(|mut st| st.query_row(params![c.sender_number, c.compostage], |r| r.get(0)))
            .map_err(sql("read compostage"))?;
        if held != c.file_hash {
            return Ok(false);
        }
    }
    for l in &p.claims.lots {
        let inserted = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO forwarded_lots (lot_hash, ps_number, lot_number, lot_date,
                 file_id, destination, message_id, spool_id, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    l.lot_hash,
                    l.ps_number,
                    l.lot_number,
                    l.lot_date,
                    l.file_id,
                    l.destination,
                    l.message_id,
                    p.spool_id,
                    now
                ])
            })
            .map_err(sql("insert forwarded lot"))?;
        if inserted == 0 {
            return Ok(false);
        }
    }
    insert_invoice_claims(tx, p, now)
}

/// The R3.4 part of [`insert_claims`]: `false` when the other nature of one of the invoices is
/// already recorded for that PS (committed by another message meanwhile).
fn insert_invoice_claims(tx: &Connection, p: &Processed, now: i64) -> Result<bool, StoreError> {
    for c in &p.claims.invoices {
        let number = c.invoice_number.to_string();
        let excluded = tx
            .prepare_cached(
                "SELECT 1 FROM forwarded_invoices
                 WHERE ps_number = ?1 AND invoice_number = ?2 AND nature = ?3 LIMIT 1",
            )
            .and_then(|mut st| {
                st.query_row(
                    params![c.ps_number, number, c.nature.other().as_str()],
                    |_| Ok(()),
                )
                .optional()
            })
            .map_err(sql("read forwarded invoice"))?;
        if excluded.is_some() {
            return Ok(false);
        }
        tx.prepare_cached(
            "INSERT OR IGNORE INTO forwarded_invoices
             (ps_number, invoice_number, nature, lot_hash, destination, spool_id, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .and_then(|mut st| {
            st.execute(params![
                c.ps_number,
                number,
                c.nature.as_str(),
                c.lot_hash,
                c.destination,
                p.spool_id,
                now
            ])
        })
        .map_err(sql("insert forwarded invoice"))?;
    }
    Ok(true)
}

/// The outbox rows of spooled message `spool_id` (a Message-ID already queued is not queued
/// again).
fn insert_outgoing(
    tx: &Connection,
    spool_id: &str,
    outgoing: &[Outgoing],
    now: i64,
) -> Result<(), StoreError> {
    for o in outgoing {
        let id = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO outbox
                 (message_id, spool_id, kind, mail_from, rcpt, next_attempt, created)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) RETURNING id",
            )
            .and_then(|mut st| {
                st.query_row(
                    params![o.message_id, spool_id, o.kind.as_str(), o.mail_from, o.rcpt, now],
                    |r| r.get::<_, i64>(0),
                )
                .optional()
            })
            .map_err(sql("insert outbox"))?;
        // None: the Message-ID is already queued (its body with it).
        if let Some(id) = id {
            tx.prepare_cached("INSERT INTO outbox_body (id, raw) VALUES (?1, ?2)")
                .and_then(|mut st| st.execute(params![id, o.raw]))
                .map_err(sql("insert outbox body"))?;
        }
    }
    Ok(())
}

/// The lots one processed message built (R4.2) and the ARLs it brought for earlier ones.
fn insert_own_lots(tx: &Connection, p: &Processed, now: i64) -> Result<(), StoreError> {
    for l in &p.own_lots {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO own_lots
             (lot_number, lot_date, file_id, organisation, message_id, spool_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .and_then(|mut st| {
            st.execute(params![
                l.lot_number,
                l.lot_date,
                l.file_id,
                l.organisation,
                l.message_id,
                p.spool_id
            ])
        })
        .map_err(sql("insert own lot"))?;
    }
    for a in &p.own_arls {
        tx.prepare_cached(
            "UPDATE own_lots SET arl_status = ?3, arl_detail = ?4, arl_at = ?5
             WHERE lot_number = ?1 AND lot_date = ?2 AND (?6 = '' OR file_id = ?6)",
        )
        .and_then(|mut st| {
            st.execute(params![
                a.lot_number,
                a.lot_date,
                a.status,
                a.detail,
                now,
                a.file_id
            ])
        })
        .map_err(sql("record ARL"))?;
    }
    Ok(())
}

/// The rows of one processed message, inside the caller's transaction (a savepoint of it: on
/// [`Commit::Conflict`] the caller rolls back what was written).
fn insert_processed(tx: &Connection, p: &Processed, now: i64) -> Result<Commit, StoreError> {
    let outcome = if p.quarantine.is_some() {
        "quarantined"
    } else {
        "processed"
    };
    let inserted = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO processed
             (spool_id, digest, kind, outcome, reason, mail_from, subject, summary, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .and_then(|mut st| {
            st.execute(params![
                p.spool_id,
                p.digest,
                p.kind.as_str(),
                outcome,
                p.quarantine.as_ref().map(|q| q.reason.as_str()),
                p.mail_from,
                p.subject,
                p.summary.to_string(),
                now
            ])
        })
        .map_err(sql("insert processed"))?;
    if inserted == 0 {
        return Ok(Commit::AlreadyProcessed);
    }
    if !insert_claims(tx, p, now)? {
        return Ok(Commit::Conflict);
    }
    insert_outgoing(tx, &p.spool_id, &p.outgoing, now)?;
    insert_own_lots(tx, p, now)?;
    if let Some(id) = p.retried_quarantine {
        tx.execute("UPDATE quarantine SET state = 'retried' WHERE id = ?1", [id])
            .map_err(sql("mark retried"))?;
    }
    if let Some(q) = &p.quarantine {
        tx.execute(
            "INSERT OR REPLACE INTO quarantine
             (spool_id, code, reason, mail_from, rcpt, subject, raw, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                p.spool_id,
                q.code,
                q.reason,
                p.mail_from,
                serde_json::to_string(&q.rcpt).unwrap_or_default(),
                p.subject,
                q.raw,
                now
            ],
        )
        .map_err(sql("insert quarantine"))?;
    }
    Ok(Commit::Recorded)
}

/// The OCT state in SQLite: one connection to `state.sqlite`.
pub struct SqliteOctStore {
    pub(crate) conn: Connection,
    gate: WriteGate,
    instance: std::cell::OnceCell<String>,
}

/// Serialises the write transactions of the connections one process holds on the state
/// database. SQLite lets one writer in at a time and makes the others poll with growing sleeps
/// (up to 100 ms) in its busy handler; queuing on a mutex instead wakes the next writer as soon
/// as the previous commit ends. Other processes (the CLI) still meet SQLite's own lock and busy
/// timeout.
#[derive(Clone, Debug, Default)]
pub struct WriteGate(std::sync::Arc<std::sync::Mutex<()>>);

impl WriteGate {
    fn enter(&self) -> std::sync::MutexGuard<'_, ()> {
        // A panic in another holder poisons the mutex, not the database: carry on.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl std::fmt::Debug for SqliteOctStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteOctStore").finish_non_exhaustive()
    }
}

impl SqliteOctStore {
    /// SQLite's online snapshot of the state at `path` into the new file `to`: `VACUUM INTO`
    /// reads the database in one read transaction (the service keeps writing: WAL readers do not
    /// block writers) and writes a self-contained copy (`svoct oct backup`).
    pub fn snapshot(path: &Path, to: &Path) -> Result<(), StoreError> {
        use rusqlite::OpenFlags;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| StoreError::Open {
            path: path.to_owned(),
            source,
        })?;
        conn.busy_timeout(crate::db::BUSY_TIMEOUT)
            .map_err(sql("busy timeout"))?;
        conn.execute("VACUUM INTO ?1", [to.to_string_lossy()])
            .map_err(sql("snapshot (VACUUM INTO)"))?;
        Ok(())
    }

    /// Opens (creating when missing) the database: WAL, `synchronous=FULL` (a commit survives a
    /// power cut), busy timeout so that the CLI and the service can share it.
    pub fn open(path: &Path) -> Result<SqliteOctStore, StoreError> {
        SqliteOctStore::open_gated(path, WriteGate::default())
    }

    /// Like [`SqliteOctStore::open`], with write transactions queued behind `gate`: give the
    /// same gate to every connection of one process.
    pub fn open_gated(path: &Path, gate: WriteGate) -> Result<SqliteOctStore, StoreError> {
        // No `foreign_keys` here: the state never enabled it, and its deletes are ordered.
        let mut conn = crate::db::connect(path, "")?;
        crate::migrate::migrate(&mut conn, &crate::migrate::OCT)?;
        Ok(SqliteOctStore {
            conn,
            gate,
            instance: std::cell::OnceCell::new(),
        })
    }

    fn due_rows(&self, now: i64, limit: usize) -> Result<Vec<Due>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT o.id, o.message_id, o.kind, o.mail_from, o.rcpt, b.raw, o.attempts, o.created,
                 o.spool_id
                 FROM outbox o JOIN outbox_body b ON b.id = o.id
                 WHERE o.state = 'pending' AND o.next_attempt <= ?1
                 ORDER BY o.next_attempt, o.id LIMIT ?2",
            )
            .map_err(sql("next due"))?;
        let rows = stmt
            .query_map(params![now, i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                Ok(Due {
                    id: r.get(0)?,
                    message_id: r.get(1)?,
                    kind: r.get(2)?,
                    mail_from: r.get(3)?,
                    rcpt: r.get(4)?,
                    raw: r.get(5)?,
                    attempts: r.get(6)?,
                    created: r.get(7)?,
                    spool_id: r.get(8)?,
                })
            })
            .map_err(sql("next due"))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql("next due"))
    }

    fn apply_delivery(&self, id: i64, outcome: &DeliveryOutcome) -> Result<(), StoreError> {
        let (what, changed) = match outcome {
            DeliveryOutcome::Abandoned { reason } => return queue::abandon(self, id, reason, now_secs()),
            DeliveryOutcome::Sent => (
                "mark sent",
                self.conn
                    .prepare_cached(
                        "UPDATE outbox SET state = 'sent', sent = ?2, attempts = attempts + 1,
                         last_error = NULL, login_refused = 0 WHERE id = ?1",
                    )
                    .and_then(|mut st| st.execute(params![id, now_secs()])),
            ),
            DeliveryOutcome::Retry { at, error } => ("mark retry", self.mark_pending(id, *at, error, false)),
            DeliveryOutcome::LoginRefused { at, error } => {
                ("mark login refused", self.mark_pending(id, *at, error, true))
            }
            DeliveryOutcome::Failed { error } => (
                "mark failed",
                self.conn
                    .prepare_cached(
                        "UPDATE outbox SET state = 'failed', attempts = attempts + 1,
                         last_error = ?2, login_refused = 0 WHERE id = ?1",
                    )
                    .and_then(|mut st| st.execute(params![id, error])),
            ),
        };
        changed.map_err(sql(what))?;
        Ok(())
    }

    /// A failed attempt to retry from `at`.
    fn mark_pending(&self, id: i64, at: i64, error: &str, login_refused: bool) -> rusqlite::Result<usize> {
        self.conn
            .prepare_cached(
                "UPDATE outbox SET state = 'pending', attempts = attempts + 1,
                 next_attempt = ?2, last_error = ?3, login_refused = ?4 WHERE id = ?1",
            )
            .and_then(|mut st| st.execute(params![id, at, error, login_refused]))
    }

    /// [`immediate`] behind this process's write gate.
    fn in_immediate<T>(
        &self,
        what: &'static str,
        f: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _gate = self.gate.enter();
        immediate(&self.conn, what, f)
    }

    /// Reads and replaces a named text value under the write lock: `f` gets the current value
    /// and returns the new one (the named counters, the instance id).
    pub(crate) fn update_value<T>(
        &self,
        name: &str,
        f: impl FnOnce(Option<&str>) -> (String, T),
    ) -> Result<T, StoreError> {
        self.in_immediate("update value", || {
            let current: Option<String> = self
                .conn
                .prepare_cached("SELECT value FROM sequence WHERE name = ?1")
                .and_then(|mut st| st.query_row([name], |r| r.get(0)).optional())
                .map_err(sql("read value"))?;
            let (new, out) = f(current.as_deref());
            self.conn
                .prepare_cached("INSERT OR REPLACE INTO sequence (name, value) VALUES (?1, ?2)")
                .and_then(|mut st| st.execute(params![name, new]))
                .map_err(sql("write value"))?;
            Ok(out)
        })
    }

    fn quarantine_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<QuarantineRow> {
        let rcpt: String = r.get(5)?;
        let bytes: i64 = r.get(9)?;
        Ok(QuarantineRow {
            id: r.get(0)?,
            spool_id: r.get(1)?,
            code: r.get(2)?,
            reason: r.get(3)?,
            mail_from: r.get(4)?,
            rcpt: serde_json::from_str(&rcpt).unwrap_or_default(),
            subject: r.get(6)?,
            state: r.get(7)?,
            at: r.get(8)?,
            bytes: usize::try_from(bytes).unwrap_or(0),
        })
    }
}

impl OctStore for SqliteOctStore {
    fn is_processed(&self, spool_id: &str) -> Result<bool, StoreError> {
        self.conn
            .query_row("SELECT 1 FROM processed WHERE spool_id = ?1", [spool_id], |_| {
                Ok(())
            })
            .optional()
            .map(|o| o.is_some())
            .map_err(sql("processed lookup"))
    }

    fn outcome(&self, spool_id: &str) -> Result<Option<ProcessedOutcome>, StoreError> {
        self.conn
            .prepare_cached("SELECT outcome, reason FROM processed WHERE spool_id = ?1")
            .and_then(|mut st| {
                st.query_row([spool_id], |r| {
                    Ok(ProcessedOutcome {
                        outcome: r.get(0)?,
                        reason: r.get(1)?,
                    })
                })
                .optional()
            })
            .map_err(sql("processed outcome"))
    }

    fn quarantine_request_retry(&self, id: i64) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute(
                "UPDATE quarantine SET state = 'retry' WHERE id = ?1 AND state = 'held'",
                [id],
            )
            .map_err(sql("request retry"))?;
        Ok(n > 0)
    }

    fn take_retry(&self) -> Result<Option<RetryItem>, StoreError> {
        self.conn
            .query_row(
                "SELECT id, spool_id, mail_from, rcpt, raw FROM quarantine
                 WHERE state = 'retry' ORDER BY id LIMIT 1",
                [],
                |r| {
                    let rcpt: String = r.get(3)?;
                    Ok(RetryItem {
                        id: r.get(0)?,
                        spool_id: r.get(1)?,
                        mail_from: r.get(2)?,
                        rcpt: serde_json::from_str(&rcpt).unwrap_or_default(),
                        raw: r.get(4)?,
                    })
                },
            )
            .optional()
            .map_err(sql("take retry"))
    }

    fn commit_batch(&mut self, batch: &[Processed]) -> Result<Vec<Commit>, StoreError> {
        let now = now_secs();
        let _gate = self.gate.enter();
        let mut tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("begin"))?;
        let mut done = Vec::with_capacity(batch.len());
        for p in batch {
            let sp = tx.savepoint().map_err(sql("savepoint"))?;
            let outcome = insert_processed(&sp, p, now)?;
            if outcome == Commit::Recorded {
                sp.commit().map_err(sql("release savepoint"))?;
            } else {
                // Rolls back what this message wrote (its `processed` row, a claim).
                sp.finish().map_err(sql("roll back savepoint"))?;
            }
            done.push(outcome);
        }
        tx.commit().map_err(sql("commit"))?;
        Ok(done)
    }

    fn forwarded_lot(&self, lot_hash: &str) -> Result<Option<SeenLot>, StoreError> {
        self.conn
            .prepare_cached("SELECT destination, at, message_id FROM forwarded_lots WHERE lot_hash = ?1")
            .and_then(|mut st| {
                st.query_row([lot_hash], |r| {
                    Ok(SeenLot {
                        destination: r.get(0)?,
                        at: r.get(1)?,
                        message_id: r.get(2)?,
                    })
                })
                .optional()
            })
            .map_err(sql("forwarded lot lookup"))
    }

    fn compostage_file(&self, sender_number: &str, compostage: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .prepare_cached("SELECT file_hash FROM compostages WHERE sender_number = ?1 AND compostage = ?2")
            .and_then(|mut st| {
                st.query_row(params![sender_number, compostage], |r| r.get(0))
                    .optional()
            })
            .map_err(sql("compostage lookup"))
    }

    fn forwarded_invoice(
        &self,
        ps_number: &str,
        invoice_number: u64,
        nature: InvoiceNature,
    ) -> Result<Option<SeenInvoice>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT destination, at FROM forwarded_invoices
                 WHERE ps_number = ?1 AND invoice_number = ?2 AND nature = ?3 ORDER BY at LIMIT 1",
            )
            .and_then(|mut st| {
                st.query_row(
                    params![ps_number, invoice_number.to_string(), nature.as_str()],
                    |r| {
                        Ok(SeenInvoice {
                            destination: r.get(0)?,
                            at: r.get(1)?,
                        })
                    },
                )
                .optional()
            })
            .map_err(sql("forwarded invoice lookup"))
    }

    fn next_due(&self, now: i64) -> Result<Option<Due>, StoreError> {
        Ok(self.due_rows(now, 1)?.into_iter().next())
    }

    fn claim_due_batch(&self, now: i64, limit: usize) -> Result<Vec<Due>, StoreError> {
        self.in_immediate("claim", || {
            let due = self.due_rows(now, limit)?;
            let mut claim = self
                .conn
                .prepare_cached("UPDATE outbox SET state = 'sending' WHERE id = ?1")
                .map_err(sql("claim"))?;
            for d in &due {
                claim.execute([d.id]).map_err(sql("claim"))?;
            }
            Ok(due)
        })
    }

    fn record_deliveries(&self, outcomes: &[(i64, DeliveryOutcome)]) -> Result<(), StoreError> {
        self.record_deliveries_with_notices(outcomes, &[])
    }

    fn record_deliveries_with_notices(
        &self,
        outcomes: &[(i64, DeliveryOutcome)],
        notices: &[(String, Outgoing)],
    ) -> Result<(), StoreError> {
        self.in_immediate("record deliveries", || {
            for (id, outcome) in outcomes {
                self.apply_delivery(*id, outcome)?;
            }
            let now = now_secs();
            for (spool_id, notice) in notices {
                insert_outgoing(&self.conn, spool_id, std::slice::from_ref(notice), now)?;
            }
            Ok(())
        })
    }

    fn forward_origin(&self, outbox_id: i64) -> Result<Option<ForwardOrigin>, StoreError> {
        let head = self
            .conn
            .query_row(
                "SELECT o.message_id, o.spool_id, p.mail_from, p.summary
                 FROM outbox o JOIN processed p ON p.spool_id = o.spool_id
                 WHERE o.id = ?1 AND o.kind = 'forward'",
                [outbox_id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                },
            )
            .optional()
            .map_err(sql("forward origin"))?;
        let Some((message_id, spool_id, mail_from, summary)) = head else {
            return Ok(None);
        };
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT lot_number, lot_date, destination FROM forwarded_lots WHERE message_id = ?1 ORDER BY rowid",
            )
            .map_err(sql("forward origin lots"))?;
        let rows = st
            .query_map([&message_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(sql("forward origin lots"))?;
        let destination = rows.first().map(|r| r.2.clone()).unwrap_or_default();
        let lots = rows.into_iter().map(|(n, d, _)| (n, d)).collect();
        Ok(Some(ForwardOrigin {
            message_id,
            spool_id,
            mail_from,
            // A summary that does not parse (written by hand, a future version) still lets the
            // caller tell the PS what it knows: the lots and the answer.
            summary: serde_json::from_str(&summary).unwrap_or(serde_json::Value::Null),
            lots,
            destination,
        }))
    }

    fn instance_id(&self) -> Result<String, StoreError> {
        if let Some(id) = self.instance.get() {
            return Ok(id.clone());
        }
        // Drawn before looking: kept only when the database has none yet.
        let mut bytes = [0u8; 8];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
            .map_err(|source| StoreError::Random { source })?;
        let drawn: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let id = self.update_value("instance", |current| {
            let id = match current {
                Some(id) if !id.is_empty() => id.to_owned(),
                _ => drawn,
            };
            (id.clone(), id)
        })?;
        Ok(self.instance.get_or_init(|| id).clone())
    }

    fn unclaim(&self, ids: &[i64]) -> Result<(), StoreError> {
        let mut st = self
            .conn
            .prepare_cached("UPDATE outbox SET state = 'pending' WHERE id = ?1 AND state = 'sending'")
            .map_err(sql("unclaim"))?;
        for id in ids {
            st.execute([*id]).map_err(sql("unclaim"))?;
        }
        Ok(())
    }

    fn reset_sending(&self) -> Result<usize, StoreError> {
        self.conn
            .execute("UPDATE outbox SET state = 'pending' WHERE state = 'sending'", [])
            .map_err(sql("reset sending"))
    }

    fn next_due_at(&self) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row(
                "SELECT MIN(next_attempt) FROM outbox WHERE state = 'pending'",
                [],
                |r| r.get(0),
            )
            .map_err(sql("next due time"))
    }

    fn requeue_failed(&self) -> Result<usize, StoreError> {
        self.conn
            .execute(
                "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt = ?1
                 WHERE state = 'failed'",
                [now_secs()],
            )
            .map_err(sql("requeue failed"))
    }

    fn record_own_arl(
        &self,
        lot_number: &str,
        lot_date: &str,
        status: &str,
        detail: &str,
    ) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute(
                "UPDATE own_lots SET arl_status = ?3, arl_detail = ?4, arl_at = ?5
                 WHERE lot_number = ?1 AND lot_date = ?2",
                params![lot_number, lot_date, status, detail, now_secs()],
            )
            .map_err(sql("record ARL"))?;
        Ok(n > 0)
    }

    fn is_own_lot(&self, lot_number: &str, lot_date: &str, file_id: &str) -> Result<bool, StoreError> {
        self.conn
            .query_row(
                "SELECT 1 FROM own_lots WHERE lot_number = ?1 AND lot_date = ?2
                 AND (?3 = '' OR file_id = ?3)",
                [lot_number, lot_date, file_id],
                |_| Ok(()),
            )
            .optional()
            .map(|o| o.is_some())
            .map_err(sql("own lot lookup"))
    }

    fn own_lot_arl(&self, lot_number: &str, lot_date: &str) -> Result<Option<OwnLotArl>, StoreError> {
        self.conn
            .query_row(
                "SELECT arl_status, arl_detail FROM own_lots WHERE lot_number = ?1 AND lot_date = ?2",
                [lot_number, lot_date],
                |r| {
                    Ok(OwnLotArl {
                        status: r.get(0)?,
                        detail: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(sql("own lot ARL"))
    }

    fn reserve_sequence(&self, name: &str, count: u64, max: u64) -> Result<u64, StoreError> {
        let count = count.clamp(1, max.max(1));
        self.update_value(name, |cur| {
            let current: u64 = cur.and_then(|v| v.parse().ok()).unwrap_or(0);
            let first = if current.saturating_add(count) > max {
                1
            } else {
                current + 1
            };
            let last = first + count - 1;
            (last.to_string(), first)
        })
    }

    fn reserve_compostage(&self, count: u32, now: i64) -> Result<CompostageBlock, StoreError> {
        let _gate = self.gate.enter();
        CompostageAllocator::on(&self.conn).reserve_block_at(now, count.clamp(1, 1000))
    }

    fn relax_durability(&self) -> Result<(), StoreError> {
        self.conn
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql("synchronous"))
    }

    fn counters(&self) -> Result<Counters, StoreError> {
        let mut c = Counters::default();
        let group = |q: &str, what: &'static str| -> Result<Vec<(String, u64)>, StoreError> {
            let mut stmt = self.conn.prepare(q).map_err(sql(what))?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .map_err(sql(what))?;
            let mut out = Vec::new();
            for row in rows {
                let (k, v) = row.map_err(sql(what))?;
                out.push((k, u64::try_from(v).unwrap_or(0)));
            }
            Ok(out)
        };
        c.processed = group(
            "SELECT kind || '/' || outcome, COUNT(*) FROM processed GROUP BY 1",
            "count processed",
        )?
        .into_iter()
        .collect();
        c.outbox = group("SELECT state, COUNT(*) FROM outbox GROUP BY 1", "count outbox")?
            .into_iter()
            .collect();
        c.outbox_by_kind = group(
            "SELECT kind, COUNT(*) FROM outbox GROUP BY 1",
            "count outbox kinds",
        )?
        .into_iter()
        .collect();
        c.quarantine = group(
            "SELECT state, COUNT(*) FROM quarantine GROUP BY 1",
            "count quarantine",
        )?
        .into_iter()
        .collect();
        let (n, acked): (i64, i64) = self
            .conn
            .query_row("SELECT COUNT(*), COUNT(arl_status) FROM own_lots", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(sql("count own lots"))?;
        c.quarantine_bytes = self.quarantine_bytes()?;
        c.own_lots = u64::try_from(n).unwrap_or(0);
        c.own_lots_acknowledged = u64::try_from(acked).unwrap_or(0);
        Ok(c)
    }

    fn undelivered(&self, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, message_id, spool_id, kind, rcpt, state, attempts, next_attempt,
                 last_error, login_refused FROM outbox WHERE state NOT IN ('sent', 'deleted')
                 ORDER BY id LIMIT ?1",
            )
            .map_err(sql("list outbox"))?;
        let rows = stmt
            .query_map([i64::try_from(limit).unwrap_or(i64::MAX)], outbox_row)
            .map_err(sql("list outbox"))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql("list outbox"))
    }

    fn outbox_ids(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT message_id, kind, rcpt, state FROM outbox ORDER BY id")
            .map_err(sql("outbox ids"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(OutboxEntry {
                    message_id: r.get(0)?,
                    kind: r.get(1)?,
                    rcpt: r.get(2)?,
                    state: outbox_state(r, 3)?,
                })
            })
            .map_err(sql("outbox ids"))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql("outbox ids"))
    }

    fn outbox_raw(&self, message_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn
            .query_row(
                "SELECT b.raw FROM outbox o JOIN outbox_body b ON b.id = o.id
                 WHERE o.message_id = ?1",
                [message_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql("outbox raw"))
    }

    fn quarantine_list(&self, all: bool) -> Result<Vec<QuarantineRow>, StoreError> {
        let q = if all {
            "SELECT id, spool_id, code, reason, mail_from, rcpt, subject, state, at, length(raw)
             FROM quarantine ORDER BY id DESC"
        } else {
            "SELECT id, spool_id, code, reason, mail_from, rcpt, subject, state, at, length(raw)
             FROM quarantine WHERE state = 'held' ORDER BY id DESC"
        };
        let mut stmt = self.conn.prepare(q).map_err(sql("list quarantine"))?;
        let rows = stmt
            .query_map([], SqliteOctStore::quarantine_row)
            .map_err(sql("list quarantine"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(sql("list quarantine"))
    }

    fn quarantine_get(&self, id: i64) -> Result<Option<QuarantinedMessage>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT id, spool_id, code, reason, mail_from, rcpt, subject, state, at,
                 length(raw), raw FROM quarantine WHERE id = ?1",
                [id],
                |r| Ok((SqliteOctStore::quarantine_row(r)?, r.get::<_, Vec<u8>>(10)?)),
            )
            .optional()
            .map_err(sql("get quarantine"))?;
        let Some((row, raw)) = row else {
            return Ok(None);
        };
        let summary: Option<String> = self
            .conn
            .query_row(
                "SELECT summary FROM processed WHERE spool_id = ?1",
                [&row.spool_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql("get summary"))?;
        let summary = summary
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(serde_json::Value::Null);
        Ok(Some(QuarantinedMessage { row, raw, summary }))
    }

    fn quarantine_mark_retried(&self, id: i64) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute(
                "UPDATE quarantine SET state = 'retried' WHERE id = ?1 AND state = 'held'",
                [id],
            )
            .map_err(sql("mark retried"))?;
        Ok(n > 0)
    }

    fn has_quarantine_row(&self, spool_id: &str) -> Result<bool, StoreError> {
        quarantine::has_row(self, spool_id)
    }

    fn quarantine_bytes(&self) -> Result<u64, StoreError> {
        quarantine::bytes_held(self)
    }

    fn enforce_quarantine_bound(&self, bound: &QuarantineBound, now: i64) -> Result<Vec<Purged>, StoreError> {
        quarantine::enforce_bound(self, bound, now)
    }

    fn trim_purged_rows(&self, max_rows: u64) -> Result<usize, StoreError> {
        quarantine::trim_purged_rows(self, max_rows)
    }

    fn purge_quarantine_before(&self, cutoff: i64, now: i64) -> Result<Vec<Purged>, StoreError> {
        quarantine::purge_before(self, cutoff, now)
    }

    fn quarantine_purge_record(&self, id: i64) -> Result<Option<PurgeRecord>, StoreError> {
        quarantine::purge_record(self, id)
    }

    fn quarantine_drop(&self, id: i64, reason: &str, now: i64) -> Result<Option<Purged>, StoreError> {
        quarantine::drop_one(self, id, reason, now)
    }

    fn queue_list(&self) -> Result<Vec<QueueRow>, StoreError> {
        queue::list(self)
    }

    fn queue_get(&self, id: i64) -> Result<Option<QueueRow>, StoreError> {
        queue::get(self, id)
    }

    fn queue_flush(&self, id: Option<i64>, now: i64) -> Result<usize, StoreError> {
        queue::flush(self, id, now)
    }

    fn queue_hold(&self, id: i64) -> Result<(), StoreError> {
        queue::hold(self, id)
    }

    fn queue_release(&self, id: i64, now: i64) -> Result<(), StoreError> {
        queue::release(self, id, now)
    }

    fn trace_find(&self, query: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        self.find_traces(query, limit)
    }

    fn trace(&self, spool_id: &str) -> Result<Option<MessageTrace>, StoreError> {
        self.read_trace(spool_id)
    }
}

impl PracticeStore for SqliteOctStore {
    fn practice_generation(&self) -> Result<i64, StoreError> {
        practices::generation(self)
    }

    fn practice_list(&self) -> Result<Vec<PracticeRecord>, StoreError> {
        practices::list(self)
    }

    fn practice_find(&self, key: &str) -> Result<Option<PracticeRecord>, StoreError> {
        practices::find(self, key)
    }

    fn practice_add(
        &self,
        fields: &PracticeFields,
        actor: &str,
        now: i64,
    ) -> Result<PracticeRecord, StoreError> {
        practices::add(self, fields, actor, now)
    }

    fn practice_set_state(
        &self,
        id: i64,
        state: PracticeState,
        reason: Option<&str>,
        actor: &str,
        now: i64,
    ) -> Result<PracticeRecord, StoreError> {
        practices::set_state(self, id, state, reason, (actor, now))
    }

    fn practice_remove(
        &self,
        id: i64,
        reason: &str,
        actor: &str,
        now: i64,
    ) -> Result<PracticeRecord, StoreError> {
        practices::remove(self, id, reason, (actor, now))
    }

    fn practice_import(
        &self,
        rows: &[PracticeFields],
        update: bool,
        actor: &str,
        now: i64,
    ) -> Result<ImportOutcome, StoreError> {
        practices::import(self, rows, update, (actor, now))
    }

    fn practice_audit(&self, id: Option<i64>) -> Result<Vec<PracticeAudit>, StoreError> {
        practices::audit_trail(self, id)
    }

    fn practice_messages(&self, address: &str, limit: usize) -> Result<Vec<PracticeMessage>, StoreError> {
        practices::messages(self, address, limit)
    }
}
