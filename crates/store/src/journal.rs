//! The journal: every message sent or received, what it carried and what became of it.
//!
//! Sending follows "insert before send, update after": [`Journal::insert`] with
//! [`Status::Pending`] before the SMTP transaction, then [`Journal::set_outcome`] with the
//! server's answer. A crash in between leaves a `pending` row to reconcile, never a message sent
//! without a trace. The subject is kept and searchable because operators and the PS use it to
//! find lost or faulty messages (annex R5.6).

use rusqlite::{OptionalExtension, Row, Transaction, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::db::Store;
use crate::{StoreError, from_ms, now_ms, sql};

/// Which way a message went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// We sent it.
    Out,
    /// We received it.
    In,
}

/// Where a journalled message stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Recorded, not yet handed to the server (or the outcome was lost in a crash).
    Pending,
    /// The server accepted it.
    Sent,
    /// The server refused it for good (5xx) or sending gave up.
    Failed,
    /// A transient failure (4xx, server down); to be sent again.
    Deferred,
    /// Received and stored.
    Received,
    /// Received but set aside (unreadable, unexpected); see the server answer / reason.
    Quarantined,
    /// Received and fully handled.
    Processed,
}

impl Status {
    /// The text stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Sent => "sent",
            Status::Failed => "failed",
            Status::Deferred => "deferred",
            Status::Received => "received",
            Status::Quarantined => "quarantined",
            Status::Processed => "processed",
        }
    }

    fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "pending" => Status::Pending,
            "sent" => Status::Sent,
            "failed" => Status::Failed,
            "deferred" => Status::Deferred,
            "received" => Status::Received,
            "quarantined" => Status::Quarantined,
            "processed" => Status::Processed,
            _ => return None,
        })
    }
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::Out => "out",
            Direction::In => "in",
        }
    }
}

/// One lot carried by a message: its number and its date, as written in the B2 lot header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lot {
    /// Lot number (3 digits in B2).
    pub number: String,
    /// Lot date, `AAAAMMJJ` or as the B2 record has it.
    pub date: String,
}

/// A message to record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEntry {
    pub direction: Direction,
    /// Message profile name (e.g. `FACTURE/SV`, `ART`).
    pub profile: String,
    pub subject: String,
    /// The 19-character compostage, for sent messages.
    pub compostage: Option<String>,
    /// The `Message-ID` header.
    pub message_id: Option<String>,
    /// Name of the attached file.
    pub file_name: Option<String>,
    pub lots: Vec<Lot>,
    /// Invoice (FSE/DRE) numbers carried.
    pub invoices: Vec<String>,
    pub status: Status,
}

/// Row id of a journal entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EntryId(pub i64);

/// A journal entry as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub id: EntryId,
    pub direction: Direction,
    pub profile: String,
    pub subject: String,
    pub compostage: Option<String>,
    pub message_id: Option<String>,
    pub file_name: Option<String>,
    pub lots: Vec<Lot>,
    pub invoices: Vec<String>,
    pub status: Status,
    /// The server's answer (SMTP reply text) or the reason for the status.
    pub server_answer: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// The journal view of a [`Store`].
#[derive(Debug, Clone, Copy)]
pub struct Journal<'a> {
    store: &'a Store,
}

impl Store {
    /// The message journal.
    pub fn journal(&self) -> Journal<'_> {
        Journal { store: self }
    }
}

const COLUMNS: &str = "id, direction, profile, subject, compostage, message_id, file_name, lots, invoices, \
                       status, server_answer, created_ms, updated_ms";

fn corrupt(column: &'static str, row: i64, value: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        table: "journal",
        column,
        row,
        value: value.into(),
    }
}

/// Raw column values, decoded into an [`Entry`] outside rusqlite's closure so that decoding
/// errors keep their own type.
struct RawRow {
    id: i64,
    direction: String,
    profile: String,
    subject: String,
    compostage: Option<String>,
    message_id: Option<String>,
    file_name: Option<String>,
    lots: String,
    invoices: String,
    status: String,
    server_answer: Option<String>,
    created_ms: i64,
    updated_ms: i64,
}

fn raw_row(r: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        id: r.get(0)?,
        direction: r.get(1)?,
        profile: r.get(2)?,
        subject: r.get(3)?,
        compostage: r.get(4)?,
        message_id: r.get(5)?,
        file_name: r.get(6)?,
        lots: r.get(7)?,
        invoices: r.get(8)?,
        status: r.get(9)?,
        server_answer: r.get(10)?,
        created_ms: r.get(11)?,
        updated_ms: r.get(12)?,
    })
}

impl RawRow {
    fn decode(self) -> Result<Entry, StoreError> {
        let id = self.id;
        let direction = match self.direction.as_str() {
            "out" => Direction::Out,
            "in" => Direction::In,
            other => return Err(corrupt("direction", id, other)),
        };
        let status = Status::parse(&self.status).ok_or_else(|| corrupt("status", id, self.status.clone()))?;
        let lots = serde_json::from_str(&self.lots).map_err(|_| corrupt("lots", id, self.lots.clone()))?;
        let invoices = serde_json::from_str(&self.invoices)
            .map_err(|_| corrupt("invoices", id, self.invoices.clone()))?;
        Ok(Entry {
            id: EntryId(id),
            direction,
            profile: self.profile,
            subject: self.subject,
            compostage: self.compostage,
            message_id: self.message_id,
            file_name: self.file_name,
            lots,
            invoices,
            status,
            server_answer: self.server_answer,
            created_at: from_ms(self.created_ms),
            updated_at: from_ms(self.updated_ms),
        })
    }
}

impl Journal<'_> {
    /// Records a message; returns its id. Durable when this returns (`synchronous=FULL`).
    pub fn insert(&self, e: &NewEntry) -> Result<EntryId, StoreError> {
        let lots = serde_json::to_string(&e.lots).unwrap_or_else(|_| "[]".into());
        let invoices = serde_json::to_string(&e.invoices).unwrap_or_else(|_| "[]".into());
        let now = now_ms();
        self.store
            .conn
            .execute(
                "INSERT INTO journal (direction, profile, subject, compostage, message_id, file_name, lots,
                                      invoices, status, server_answer, created_ms, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL, ?10, ?10)",
                params![
                    e.direction.as_str(),
                    e.profile,
                    e.subject,
                    e.compostage,
                    e.message_id,
                    e.file_name,
                    lots,
                    invoices,
                    e.status.as_str(),
                    now
                ],
            )
            .map_err(sql("insert journal entry"))?;
        Ok(EntryId(self.store.conn.last_insert_rowid()))
    }

    /// Records what became of a message: its new status and the server's answer.
    pub fn set_outcome(
        &self,
        id: EntryId,
        status: Status,
        server_answer: Option<&str>,
    ) -> Result<(), StoreError> {
        let n = self
            .store
            .conn
            .execute(
                "UPDATE journal SET status = ?2, server_answer = ?3, updated_ms = ?4 WHERE id = ?1",
                params![id.0, status.as_str(), server_answer, now_ms()],
            )
            .map_err(sql("update journal outcome"))?;
        if n == 0 {
            return Err(StoreError::NotFound {
                table: "journal",
                id: id.0,
            });
        }
        Ok(())
    }

    /// One entry by id.
    pub fn get(&self, id: EntryId) -> Result<Option<Entry>, StoreError> {
        let raw = self
            .store
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM journal WHERE id = ?1"),
                [id.0],
                raw_row,
            )
            .optional()
            .map_err(sql("read journal entry"))?;
        raw.map(RawRow::decode).transpose()
    }

    /// Entries whose subject matches `pattern`, oldest first. The pattern is a case-sensitive
    /// glob: `*` any run of characters, `?` one character, `[...]` a set; e.g.
    /// `SV140700/*/20261126*` finds the day's single-file sends.
    pub fn search_subject(&self, pattern: &str) -> Result<Vec<Entry>, StoreError> {
        self.query(
            &format!("SELECT {COLUMNS} FROM journal WHERE subject GLOB ?1 ORDER BY id"),
            pattern,
        )
    }

    /// Entries with this status, oldest first (e.g. `Pending` after a crash).
    pub fn with_status(&self, status: Status) -> Result<Vec<Entry>, StoreError> {
        self.query(
            &format!("SELECT {COLUMNS} FROM journal WHERE status = ?1 ORDER BY id"),
            status.as_str(),
        )
    }

    /// The entry carrying this compostage, if any.
    pub fn by_compostage(&self, compostage: &str) -> Result<Option<Entry>, StoreError> {
        Ok(self
            .query(
                &format!("SELECT {COLUMNS} FROM journal WHERE compostage = ?1 ORDER BY id LIMIT 1"),
                compostage,
            )?
            .into_iter()
            .next())
    }

    /// Entries that carried this invoice number, oldest first (an invoice sent twice shows twice).
    /// One probe of the invoice index (`journal_invoice`), whatever the size of the journal.
    pub fn by_invoice(&self, invoice: &str) -> Result<Vec<Entry>, StoreError> {
        self.query(
            &format!(
                "SELECT {COLUMNS} FROM journal WHERE id IN
                   (SELECT entry FROM journal_invoice WHERE invoice = ?1) ORDER BY id"
            ),
            invoice,
        )
    }

    /// The entries that carried at least one of these invoice numbers, each once, oldest first.
    /// One index probe per number, then one read per entry found: the duplicate check of a
    /// sending costs what the sending carries, not what the journal holds.
    pub fn carrying_any<'s>(
        &self,
        invoices: impl IntoIterator<Item = &'s str>,
    ) -> Result<Vec<Entry>, StoreError> {
        let mut ids = std::collections::BTreeSet::new();
        {
            let mut probe = self
                .store
                .conn
                .prepare_cached("SELECT entry FROM journal_invoice WHERE invoice = ?1")
                .map_err(sql("prepare invoice probe"))?;
            for invoice in invoices {
                let rows = probe
                    .query_map([invoice], |r| r.get::<_, i64>(0))
                    .map_err(sql("probe invoice index"))?;
                for id in rows {
                    ids.insert(id.map_err(sql("read invoice index"))?);
                }
            }
        }
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(e) = self.get(EntryId(id))? {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Reserves `count` consecutive file numbers for the files of one sending and returns the
    /// first. The counter lives in the store and moves in an IMMEDIATE transaction, so two
    /// processes (or threads with their own [`Store`]) sending at once never get the same
    /// numbers. A fresh counter starts after the highest journal id, the numbering used before
    /// the counter existed, so an upgraded installation does not reuse a recent file name.
    pub fn reserve_file_numbers(&self, count: u32) -> Result<u64, StoreError> {
        let tx = Transaction::new_unchecked(&self.store.conn, TransactionBehavior::Immediate)
            .map_err(sql("begin file number transaction"))?;
        let next: i64 = tx
            .query_row(
                "SELECT COALESCE((SELECT next FROM file_number_state WHERE id = 1),
                                 (SELECT COALESCE(MAX(id), 0) + 1 FROM journal))",
                [],
                |r| r.get(0),
            )
            .map_err(sql("read file number counter"))?;
        let after = next
            .checked_add(i64::from(count))
            .ok_or_else(|| corrupt("file_number_state.next", 1, next.to_string()))?;
        tx.execute(
            "INSERT INTO file_number_state (id, next) VALUES (1, ?1)
             ON CONFLICT (id) DO UPDATE SET next = excluded.next",
            [after],
        )
        .map_err(sql("write file number counter"))?;
        tx.commit().map_err(sql("commit file numbers"))?;
        u64::try_from(next).map_err(|_| corrupt("file_number_state.next", 1, next.to_string()))
    }

    /// Entries that carried a lot with this number, oldest first.
    pub fn by_lot(&self, lot_number: &str) -> Result<Vec<Entry>, StoreError> {
        self.query(
            &format!(
                "SELECT {COLUMNS} FROM journal WHERE EXISTS
                   (SELECT 1 FROM json_each(journal.lots) WHERE json_extract(json_each.value, '$.number') = ?1)
                 ORDER BY id"
            ),
            lot_number,
        )
    }

    /// The `limit` most recent entries, newest first.
    pub fn recent(&self, limit: u32) -> Result<Vec<Entry>, StoreError> {
        let mut stmt = self
            .store
            .conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM journal ORDER BY id DESC LIMIT ?1"
            ))
            .map_err(sql("prepare journal query"))?;
        let raws = stmt
            .query_map([limit], raw_row)
            .map_err(sql("query journal"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql("read journal rows"))?;
        raws.into_iter().map(RawRow::decode).collect()
    }

    fn query(&self, q: &str, arg: &str) -> Result<Vec<Entry>, StoreError> {
        let mut stmt = self.store.conn.prepare(q).map_err(sql("prepare journal query"))?;
        let raws = stmt
            .query_map([arg], raw_row)
            .map_err(sql("query journal"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql("read journal rows"))?;
        raws.into_iter().map(RawRow::decode).collect()
    }
}

/// A journal entry sent again: `entry` replaces `replaces` (`why`: `retry` or `resend`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub entry: EntryId,
    pub replaces: EntryId,
    pub why: String,
}

impl Journal<'_> {
    /// Records that `entry` sends again what `replaces` carried.
    pub fn link(&self, entry: EntryId, replaces: EntryId, why: &str) -> Result<(), StoreError> {
        self.store
            .conn
            .execute(
                "INSERT OR REPLACE INTO journal_link (entry, replaces, why) VALUES (?1, ?2, ?3)",
                params![entry.0, replaces.0, why],
            )
            .map_err(sql("insert journal link"))?;
        Ok(())
    }

    /// The entry that `entry` replaces, if it was sent again from one.
    pub fn replaces(&self, entry: EntryId) -> Result<Option<Link>, StoreError> {
        self.links("entry", entry).map(|mut l| l.pop())
    }

    /// The entries that send `entry` again, oldest first.
    pub fn replaced_by(&self, entry: EntryId) -> Result<Vec<Link>, StoreError> {
        self.links("replaces", entry)
    }

    fn links(&self, column: &str, id: EntryId) -> Result<Vec<Link>, StoreError> {
        let q = format!("SELECT entry, replaces, why FROM journal_link WHERE {column} = ?1 ORDER BY entry");
        let mut stmt = self.store.conn.prepare(&q).map_err(sql("query journal links"))?;
        stmt.query_map([id.0], |r| {
            Ok(Link {
                entry: EntryId(r.get(0)?),
                replaces: EntryId(r.get(1)?),
                why: r.get(2)?,
            })
        })
        .map_err(sql("query journal links"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql("read journal links"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_is_found_from_both_ends() {
        let store = Store::open_in_memory().unwrap();
        let j = store.journal();
        let a = j.insert(&out(&["000000001"])).unwrap();
        let b = j.insert(&out(&["000000001"])).unwrap();
        assert_eq!(j.replaces(b).unwrap(), None);
        j.link(b, a, "resend").unwrap();
        let l = j.replaces(b).unwrap().unwrap();
        assert_eq!((l.entry, l.replaces, l.why.as_str()), (b, a, "resend"));
        assert_eq!(j.replaced_by(a).unwrap(), vec![l]);
        assert!(j.replaced_by(b).unwrap().is_empty());
    }

    fn out(invoices: &[&str]) -> NewEntry {
        NewEntry {
            direction: Direction::Out,
            profile: "FACTURE/SV/K".into(),
            subject: "SV140700/123456789/2026112600000000001/00001".into(),
            compostage: None,
            message_id: None,
            file_name: None,
            lots: Vec::new(),
            invoices: invoices.iter().map(|s| (*s).to_owned()).collect(),
            status: Status::Sent,
        }
    }

    /// Step 3 applied to a journal written before it: every invoice of every entry is indexed.
    #[test]
    fn the_invoice_index_migration_indexes_existing_entries() {
        let store = Store::open_in_memory().unwrap();
        // Back to the state before step 3: no index, no triggers, no counter.
        store
            .conn
            .execute_batch(
                "DROP TRIGGER journal_invoice_insert; DROP TRIGGER journal_invoice_update;
                 DROP TRIGGER journal_invoice_delete; DROP TABLE journal_invoice;
                 DROP TABLE file_number_state;",
            )
            .unwrap();
        for inv in [&["000000001", "000000002"][..], &["000000002"], &[]] {
            store.journal().insert(&out(inv)).unwrap();
        }
        // A row whose invoices column is not JSON must not stop the migration.
        store
            .conn
            .execute("UPDATE journal SET invoices = 'garbage' WHERE id = 3", [])
            .unwrap();
        store.conn.execute_batch(crate::migrate::PS.steps[2]).unwrap();
        let ids = |n: &str| -> Vec<i64> {
            store
                .journal()
                .by_invoice(n)
                .unwrap()
                .iter()
                .map(|e| e.id.0)
                .collect()
        };
        assert_eq!(ids("000000001"), vec![1]);
        assert_eq!(ids("000000002"), vec![1, 2]);
        assert_eq!(ids("000000003"), Vec::<i64>::new());
        // New entries are indexed by the trigger; a changed invoice list is re-indexed.
        let id = store.journal().insert(&out(&["000000003"])).unwrap();
        assert_eq!(ids("000000003"), vec![id.0]);
        store
            .conn
            .execute(
                "UPDATE journal SET invoices = '[\"000000004\"]' WHERE id = ?1",
                [id.0],
            )
            .unwrap();
        assert_eq!(ids("000000003"), Vec::<i64>::new());
        assert_eq!(ids("000000004"), vec![id.0]);
    }

    #[test]
    fn file_numbers_start_after_the_journal_and_never_overlap() {
        let store = Store::open_in_memory().unwrap();
        for _ in 0..3 {
            store.journal().insert(&out(&[])).unwrap();
        }
        let j = store.journal();
        assert_eq!(j.reserve_file_numbers(2).unwrap(), 4);
        assert_eq!(j.reserve_file_numbers(0).unwrap(), 6);
        assert_eq!(j.reserve_file_numbers(5).unwrap(), 6);
        assert_eq!(j.reserve_file_numbers(1).unwrap(), 11);
    }
}
