//! `svoct oct trace`: finding a message by any of its keys and reading its story.

use rusqlite::{OptionalExtension, params};

use super::SqliteOctStore;
use crate::oct::model::LotClaim;
use crate::oct::trace::*;
use crate::{StoreError, sql};

/// Every table that names a spool id, searched at once. `?1` is the query as typed, `?2` the
/// same without leading zeros (PS and sender numbers are stored so). A subject names the PS
/// number and the compostage between slashes (`SV.../exercice/compostage/n`): searching it finds
/// refused messages too, which took no compostage.
const FIND: &str = "SELECT s.spool_id FROM (
        SELECT spool_id FROM processed WHERE spool_id = ?1
        UNION SELECT spool_id FROM quarantine WHERE spool_id = ?1
        UNION SELECT spool_id FROM outbox WHERE message_id = ?1
        UNION SELECT spool_id FROM compostages WHERE compostage = ?1 OR sender_number = ?2
        UNION SELECT spool_id FROM forwarded_lots
            WHERE lot_number = ?1 OR ps_number = ?2 OR message_id = ?1
        UNION SELECT spool_id FROM processed
            WHERE instr(subject, '/' || ?1 || '/') > 0 OR instr(subject, '/' || ?2 || '/') > 0
    ) s LEFT JOIN processed p ON p.spool_id = s.spool_id
    ORDER BY p.at, s.spool_id LIMIT ?3";

impl SqliteOctStore {
    pub(super) fn find_traces(&self, query: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        let trimmed = query.trim_start_matches('0');
        let unpadded = if trimmed.is_empty() { query } else { trimmed };
        let mut stmt = self.conn.prepare(FIND).map_err(sql("trace find"))?;
        let rows = stmt
            .query_map(
                params![query, unpadded, i64::try_from(limit).unwrap_or(i64::MAX)],
                |r| r.get(0),
            )
            .map_err(sql("trace find"))?;
        rows.collect::<Result<Vec<String>, _>>()
            .map_err(sql("trace find"))
    }

    pub(super) fn read_trace(&self, spool_id: &str) -> Result<Option<MessageTrace>, StoreError> {
        let trace = MessageTrace {
            spool_id: spool_id.to_owned(),
            processed: self.trace_processed(spool_id)?,
            compostage: self
                .conn
                .query_row(
                    "SELECT sender_number, compostage FROM compostages WHERE spool_id = ?1",
                    [spool_id],
                    |r| {
                        Ok(TraceCompostage {
                            sender_number: r.get(0)?,
                            compostage: r.get(1)?,
                        })
                    },
                )
                .optional()
                .map_err(sql("trace compostage"))?,
            lots: self.trace_lots(spool_id)?,
            quarantine: self
                .conn
                .query_row(
                    "SELECT id, code, reason, state, at FROM quarantine WHERE spool_id = ?1",
                    [spool_id],
                    |r| {
                        Ok(TraceQuarantine {
                            id: r.get(0)?,
                            code: r.get(1)?,
                            reason: r.get(2)?,
                            state: r.get(3)?,
                            at: r.get(4)?,
                        })
                    },
                )
                .optional()
                .map_err(sql("trace quarantine"))?,
            outbox: self.trace_outbox(spool_id)?,
        };
        let found = trace.processed.is_some() || trace.quarantine.is_some() || !trace.outbox.is_empty();
        Ok(found.then_some(trace))
    }

    fn trace_processed(&self, spool_id: &str) -> Result<Option<TraceProcessed>, StoreError> {
        self.conn
            .query_row(
                "SELECT at, kind, outcome, reason, mail_from, subject, summary
                 FROM processed WHERE spool_id = ?1",
                [spool_id],
                |r| {
                    let summary: String = r.get(6)?;
                    Ok(TraceProcessed {
                        at: r.get(0)?,
                        kind: r.get(1)?,
                        outcome: r.get(2)?,
                        reason: r.get(3)?,
                        mail_from: r.get(4)?,
                        subject: r.get(5)?,
                        // A summary that does not parse is shown as the text it is.
                        summary: serde_json::from_str(&summary).unwrap_or(serde_json::Value::String(summary)),
                    })
                },
            )
            .optional()
            .map_err(sql("trace processed"))
    }

    fn trace_lots(&self, spool_id: &str) -> Result<Vec<LotClaim>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT ps_number, lot_number, lot_date, file_id, destination, message_id, lot_hash
                 FROM forwarded_lots WHERE spool_id = ?1 ORDER BY lot_number, lot_date",
            )
            .map_err(sql("trace lots"))?;
        let rows = stmt
            .query_map([spool_id], |r| {
                Ok(LotClaim {
                    lot_hash: r.get(6)?,
                    ps_number: r.get(0)?,
                    lot_number: r.get(1)?,
                    lot_date: r.get(2)?,
                    file_id: r.get(3)?,
                    destination: r.get(4)?,
                    message_id: r.get(5)?,
                })
            })
            .map_err(sql("trace lots"))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql("trace lots"))
    }

    fn trace_outbox(&self, spool_id: &str) -> Result<Vec<TraceOutbox>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, message_id, kind, rcpt, state, attempts, next_attempt, last_error,
                 created, sent FROM outbox WHERE spool_id = ?1 ORDER BY id",
            )
            .map_err(sql("trace outbox"))?;
        let rows = stmt
            .query_map([spool_id], |r| {
                Ok(TraceOutbox {
                    id: r.get(0)?,
                    message_id: r.get(1)?,
                    kind: r.get(2)?,
                    rcpt: r.get(3)?,
                    state: r.get(4)?,
                    attempts: r.get(5)?,
                    next_attempt: r.get(6)?,
                    last_error: r.get(7)?,
                    created: r.get(8)?,
                    sent: r.get(9)?,
                })
            })
            .map_err(sql("trace outbox"))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql("trace outbox"))
    }
}
