//! The inbox: received messages, stored durably with their raw bytes before they are deleted on
//! the server.
//!
//! The retrieval loop is: list the mailbox, and for each message [`Inbox::store_if_new`] (keyed
//! by the mailbox and the message's POP3 UIDL), and only once that returned, delete it on the
//! server and [`Inbox::mark_deleted_on_server`]. A crash between the two leaves the message on
//! the server and in the inbox: the next run sees [`StoreOutcome::AlreadyHad`] and just deletes
//! it, so nothing is lost and nothing is stored twice.

use rusqlite::{MAIN_DB, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::db::{CacheSize, Store};
use crate::{StoreError, from_ms, now_ms, sql};

/// Row id of an inbox message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InboxId(pub i64);

/// What [`Inbox::store_if_new`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreOutcome {
    /// Newly stored (durable when returned).
    Stored(InboxId),
    /// This `(source, uidl)` was stored before; nothing written.
    AlreadyHad(InboxId),
}

impl StoreOutcome {
    /// The row id either way.
    pub fn id(self) -> InboxId {
        match self {
            StoreOutcome::Stored(id) | StoreOutcome::AlreadyHad(id) => id,
        }
    }
}

/// Where a received message stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InboxState {
    /// Stored, not yet handled.
    New,
    /// Handled (shown, imported, relayed).
    Processed,
    /// Set aside with a reason (unparseable, unexpected profile, failed decryption...).
    Quarantined,
}

impl InboxState {
    fn as_str(self) -> &'static str {
        match self {
            InboxState::New => "new",
            InboxState::Processed => "processed",
            InboxState::Quarantined => "quarantined",
        }
    }
    fn parse(s: &str) -> Option<InboxState> {
        Some(match s {
            "new" => InboxState::New,
            "processed" => InboxState::Processed,
            "quarantined" => InboxState::Quarantined,
            _ => return None,
        })
    }
}

/// A stored received message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxMessage {
    pub id: InboxId,
    /// The mailbox it came from (account name, Maildir path...): UIDLs are unique per mailbox.
    pub source: String,
    pub uidl: String,
    /// The message exactly as retrieved.
    #[serde(skip)]
    pub raw: Vec<u8>,
    pub size: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// What the message was recognised as (`ARL`, `RSP`, `ART`...), once classified.
    pub classification: Option<String>,
    pub state: InboxState,
    /// Why it was quarantined.
    pub reason: Option<String>,
    /// Whether it was deleted on the server after being stored.
    pub deleted_on_server: bool,
}

/// The inbox view of a [`Store`].
#[derive(Debug, Clone, Copy)]
pub struct Inbox<'a> {
    store: &'a Store,
}

impl Store {
    /// The received-messages inbox.
    pub fn inbox(&self) -> Inbox<'_> {
        Inbox { store: self }
    }
}

/// The columns of an inbox row. `inbox.raw` is always empty since schema step 8: the bytes are
/// in `inbox_raw` (see `migrations/ps/0008_inbox_raw.sql`) and are read by [`Inbox::get`].
const COLUMNS: &str =
    "id, source, uidl, raw, size, received_ms, classification, state, reason, deleted_on_server";

type RawRow = (
    i64,
    String,
    String,
    Vec<u8>,
    i64,
    i64,
    Option<String>,
    String,
    Option<String>,
    bool,
);

fn raw_row(r: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
    ))
}

fn decode(r: RawRow) -> Result<InboxMessage, StoreError> {
    let (id, source, uidl, raw, size, received_ms, classification, state, reason, deleted) = r;
    let state = InboxState::parse(&state).ok_or_else(|| StoreError::Corrupt {
        table: "inbox",
        column: "state",
        row: id,
        value: state.clone(),
    })?;
    Ok(InboxMessage {
        id: InboxId(id),
        source,
        uidl,
        raw,
        size: u64::try_from(size).unwrap_or(0),
        received_at: from_ms(received_ms),
        classification,
        state,
        reason,
        deleted_on_server: deleted,
    })
}

impl Inbox<'_> {
    /// Stores `raw` under `(source, uidl)` unless that key is already there. Durable when it
    /// returns `Stored` (`synchronous=FULL`), so the caller may then delete it on the server.
    ///
    /// The bytes go in through incremental blob I/O (a `zeroblob` filled in place, in the same
    /// transaction): binding them as a parameter would make SQLite copy a large message twice
    /// more (the bound value, then the record) before writing it.
    pub fn store_if_new(&self, source: &str, uidl: &str, raw: &[u8]) -> Result<StoreOutcome, StoreError> {
        self.with_small_cache(|| self.store_new(source, uidl, raw))
    }

    fn store_new(&self, source: &str, uidl: &str, raw: &[u8]) -> Result<StoreOutcome, StoreError> {
        let size = i64::try_from(raw.len()).unwrap_or(i64::MAX);
        let tx = self
            .store
            .conn
            .unchecked_transaction()
            .map_err(sql("begin store received message"))?;
        let n = tx
            .execute(
                "INSERT INTO inbox (source, uidl, raw, size, received_ms, state)
                 VALUES (?1, ?2, X'', ?3, ?4, 'new')
                 ON CONFLICT (source, uidl) DO NOTHING",
                params![source, uidl, size, now_ms()],
            )
            .map_err(sql("store received message"))?;
        if n == 1 {
            let id = tx.last_insert_rowid();
            tx.execute(
                "INSERT INTO inbox_raw (id, raw) VALUES (?1, zeroblob(?2))",
                params![id, size],
            )
            .map_err(sql("store received message bytes"))?;
            let mut blob = tx
                .blob_open(MAIN_DB, c"inbox_raw", c"raw", id, false)
                .map_err(sql("open received message blob"))?;
            blob.write_at(raw, 0).map_err(sql("write received message"))?;
            blob.close().map_err(sql("close received message blob"))?;
            tx.commit().map_err(sql("commit received message"))?;
            return Ok(StoreOutcome::Stored(InboxId(id)));
        }
        drop(tx);
        let id = self.id_of(source, uidl)?.ok_or(StoreError::NotFound {
            table: "inbox",
            id: -1,
        })?;
        Ok(StoreOutcome::AlreadyHad(id))
    }

    /// Whether `(source, uidl)` is stored.
    pub fn contains(&self, source: &str, uidl: &str) -> Result<bool, StoreError> {
        Ok(self.id_of(source, uidl)?.is_some())
    }

    fn id_of(&self, source: &str, uidl: &str) -> Result<Option<InboxId>, StoreError> {
        self.store
            .conn
            .query_row(
                "SELECT id FROM inbox WHERE source = ?1 AND uidl = ?2",
                params![source, uidl],
                |r| r.get(0).map(InboxId),
            )
            .optional()
            .map_err(sql("look up received message"))
    }

    /// Records that `(source, uidl)` was deleted on the server.
    pub fn mark_deleted_on_server(&self, source: &str, uidl: &str) -> Result<(), StoreError> {
        self.store
            .conn
            .execute(
                "UPDATE inbox SET deleted_on_server = 1 WHERE source = ?1 AND uidl = ?2",
                params![source, uidl],
            )
            .map_err(sql("mark message deleted on server"))?;
        Ok(())
    }

    /// UIDLs stored from `source` but not yet known deleted there (to delete on the next run).
    pub fn not_deleted_on_server(&self, source: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .store
            .conn
            .prepare("SELECT uidl FROM inbox WHERE source = ?1 AND deleted_on_server = 0 ORDER BY id")
            .map_err(sql("prepare inbox query"))?;
        stmt.query_map([source], |r| r.get(0))
            .map_err(sql("query inbox"))?
            .collect::<Result<Vec<String>, _>>()
            .map_err(sql("read inbox rows"))
    }

    /// Records what the message was recognised as.
    pub fn classify(&self, id: InboxId, classification: &str) -> Result<(), StoreError> {
        self.update(
            id,
            "UPDATE inbox SET classification = ?2 WHERE id = ?1",
            classification,
        )
    }

    /// Sets the message aside with a reason.
    pub fn quarantine(&self, id: InboxId, reason: &str) -> Result<(), StoreError> {
        self.update(
            id,
            "UPDATE inbox SET state = 'quarantined', reason = ?2 WHERE id = ?1",
            reason,
        )
    }

    /// Marks the message handled.
    pub fn mark_processed(&self, id: InboxId) -> Result<(), StoreError> {
        let n = self
            .store
            .conn
            .execute("UPDATE inbox SET state = 'processed' WHERE id = ?1", [id.0])
            .map_err(sql("update received message"))?;
        if n == 0 {
            return Err(StoreError::NotFound {
                table: "inbox",
                id: id.0,
            });
        }
        Ok(())
    }

    fn update(&self, id: InboxId, q: &str, arg: &str) -> Result<(), StoreError> {
        let n = self
            .store
            .conn
            .execute(q, params![id.0, arg])
            .map_err(sql("update received message"))?;
        if n == 0 {
            return Err(StoreError::NotFound {
                table: "inbox",
                id: id.0,
            });
        }
        Ok(())
    }

    /// One message by id, with its raw bytes, read straight into one buffer of its size
    /// (incremental blob I/O: a large message is not first materialised by SQLite, then copied).
    pub fn get(&self, id: InboxId) -> Result<Option<InboxMessage>, StoreError> {
        let columns = COLUMNS.replacen("raw", "X'' AS raw", 1);
        let row = self
            .store
            .conn
            .query_row(
                &format!("SELECT {columns} FROM inbox WHERE id = ?1"),
                [id.0],
                raw_row,
            )
            .optional()
            .map_err(sql("read received message"))?;
        let Some(mut m) = row.map(decode).transpose()? else {
            return Ok(None);
        };
        m.raw = self.with_small_cache(|| {
            let blob = self
                .store
                .conn
                .blob_open(MAIN_DB, c"inbox_raw", c"raw", id.0, true)
                .map_err(sql("open received message blob"))?;
            let mut raw = vec![0u8; blob.len()];
            blob.read_at_exact(&mut raw, 0)
                .map_err(sql("read received message blob"))?;
            Ok(raw)
        })?;
        Ok(Some(m))
    }

    /// Runs `f` with a 2 MiB page cache, then gives the connection its cache size back. A
    /// message's pages pass through the cache once and are not worth keeping; with the
    /// connection's 64 MiB (sized for reconciliation) a 48 MB message filled it, on top of the
    /// message itself in memory.
    fn with_small_cache<T>(&self, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        let cache = CacheSize::set(&self.store.conn, -2048)?;
        let out = f();
        cache.restore()?;
        out
    }

    /// Messages in a state, oldest first, with their raw bytes.
    pub fn with_state(&self, state: InboxState) -> Result<Vec<InboxMessage>, StoreError> {
        let mut out = Vec::new();
        for m in self.list_state(state)? {
            if let Some(m) = self.get(m.id)? {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// Messages in a state, oldest first, **without** their raw bytes (`raw` is empty): what a
    /// listing needs (reason, classification, size), in memory bounded by the row count.
    pub fn list_state(&self, state: InboxState) -> Result<Vec<InboxMessage>, StoreError> {
        let columns = COLUMNS.replacen("raw", "X'' AS raw", 1);
        let mut stmt = self
            .store
            .conn
            .prepare(&format!(
                "SELECT {columns} FROM inbox WHERE state = ?1 ORDER BY id"
            ))
            .map_err(sql("prepare inbox query"))?;
        let rows = stmt
            .query_map([state.as_str()], raw_row)
            .map_err(sql("query inbox"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql("read inbox rows"))?;
        rows.into_iter().map(decode).collect()
    }

    /// The number of stored messages from `source`.
    pub fn count(&self, source: &str) -> Result<u64, StoreError> {
        let n: i64 = self
            .store
            .conn
            .query_row("SELECT COUNT(*) FROM inbox WHERE source = ?1", [source], |r| {
                r.get(0)
            })
            .map_err(sql("count inbox"))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_size(store: &Store) -> i64 {
        store
            .conn
            .pragma_query_value(None, "cache_size", |r| r.get(0))
            .unwrap()
    }

    /// Storing and reading a message shrink the page cache only while they run.
    #[test]
    fn the_page_cache_comes_back_after_a_message() {
        let store = Store::open_in_memory().unwrap();
        store.conn.pragma_update(None, "cache_size", -4096).unwrap();
        let inbox = store.inbox();
        let id = inbox.store_if_new("m", "1", &[7u8; 100_000]).unwrap().id();
        assert_eq!(cache_size(&store), -4096, "after store_if_new");
        assert_eq!(inbox.get(id).unwrap().unwrap().raw, vec![7u8; 100_000]);
        assert_eq!(cache_size(&store), -4096, "after get");
        inbox.store_if_new("m", "1", b"again").unwrap();
        assert_eq!(cache_size(&store), -4096, "after a message already stored");
    }

    #[test]
    fn a_listing_has_everything_but_the_raw_bytes() {
        let store = Store::open_in_memory().unwrap();
        let inbox = store.inbox();
        let a = inbox.store_if_new("m", "1", b"raw message one").unwrap().id();
        inbox.store_if_new("m", "2", b"raw message two").unwrap();
        inbox
            .quarantine(a, "sender x is not one this PS takes returns from")
            .unwrap();
        let listed = inbox.list_state(InboxState::Quarantined).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, a);
        assert!(listed[0].raw.is_empty());
        assert_eq!(listed[0].size, 15);
        assert_eq!(
            listed[0].reason.as_deref(),
            Some("sender x is not one this PS takes returns from")
        );
        let full = inbox.with_state(InboxState::Quarantined).unwrap();
        assert_eq!(full[0].raw, b"raw message one");
    }
}
