//! Opening the database: pragmas for durability, busy timeout, schema migrations.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use crate::{StoreError, sql};

/// How long a writer waits for another process's lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Puts the database in WAL mode (persistent in the file), retrying while another connection
/// holds the lock for up to `timeout`. Switching a fresh file to WAL needs an exclusive lock and
/// SQLite answers `SQLITE_BUSY` at once, without its busy handler, when two connections try at
/// the same time: two processes opening a new store together would otherwise see one fail.
pub fn enable_wal(conn: &Connection, timeout: Duration) -> Result<(), rusqlite::Error> {
    let start = std::time::Instant::now();
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)) {
            Ok(_) => return Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && start.elapsed() < timeout =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    }
}

/// The schema, one step per version. Never edit a released step: append a new one.
/// (Step `i` brings the database to version `i + 1`.) Other modules of this crate (the spool)
/// add their tables by appending steps here.
const MIGRATIONS: &[&str] = &[
    // 1: journal, compostage allocator, inbox.
    "CREATE TABLE journal (
        id INTEGER PRIMARY KEY,
        direction TEXT NOT NULL,
        profile TEXT NOT NULL,
        subject TEXT NOT NULL,
        compostage TEXT,
        message_id TEXT,
        file_name TEXT,
        lots TEXT NOT NULL DEFAULT '[]',
        invoices TEXT NOT NULL DEFAULT '[]',
        status TEXT NOT NULL,
        server_answer TEXT,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL
     );
     CREATE INDEX journal_subject ON journal(subject);
     CREATE INDEX journal_compostage ON journal(compostage);
     CREATE INDEX journal_status ON journal(status);
     CREATE TABLE compostage_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        second INTEGER NOT NULL,
        counter INTEGER NOT NULL
     );
     CREATE TABLE inbox (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        uidl TEXT NOT NULL,
        raw BLOB NOT NULL,
        size INTEGER NOT NULL,
        received_ms INTEGER NOT NULL,
        classification TEXT,
        state TEXT NOT NULL,
        reason TEXT,
        deleted_on_server INTEGER NOT NULL DEFAULT 0,
        UNIQUE (source, uidl)
     );
     CREATE INDEX inbox_state ON inbox(state);",
    // 2: reconciliation of returns and the local opposition list.
    crate::returns::MIGRATION,
    // 3: the journal's invoice index and the PS file-number counter.
    crate::journal::MIGRATION,
    // 4: one row per recorded return message; no index on the payment state.
    crate::returns::MIGRATION_4,
    // 5: covering index for matching RSP items.
    crate::returns::MIGRATION_5,
    // 6: payment lines (576 flat payments and deductions) and insurer notices (900).
    crate::statement::MIGRATION,
    // 7: links between a message sent again and the entry it replaces.
    crate::journal::MIGRATION_7,
    // 8: received messages' bytes in a table of their own, written once and never updated.
    crate::inbox::MIGRATION_8,
];

/// The newest schema version this program knows.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// An open store: one SQLite connection.
///
/// Not `Sync`: open one per thread. Several processes may open the same file.
pub struct Store {
    pub(crate) conn: Connection,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path`, in WAL mode with `synchronous=FULL`
    /// (a committed row survives a power cut) and a busy timeout, and migrates its schema.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref().to_owned();
        let open_err = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        // Created 0600 before SQLite opens it, so that its -wal and -shm files are 0600 too.
        svoct_mail::fsx::prepare_db_file(&path).map_err(|source| StoreError::File {
            path: path.clone(),
            source,
        })?;
        let conn = Connection::open(&path).map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        enable_wal(&conn, BUSY_TIMEOUT).map_err(open_err)?;
        // cache_size: up to 64 MiB of pages per connection (allocated only as used); matching
        // returns against a million sent invoices is 30% faster than with the 2 MiB default.
        conn.execute_batch(
            "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -65536;",
        )
        .map_err(open_err)?;
        let mut store = Store {
            conn,
            path: Some(path),
        };
        store.migrate()?;
        Ok(store)
    }

    /// A private in-memory store (tests, dry runs).
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Open {
            path: PathBuf::from(":memory:"),
            source,
        })?;
        let mut store = Store { conn, path: None };
        store.migrate()?;
        Ok(store)
    }

    /// The file this store was opened from (`None` in memory).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The schema version of the database.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .map_err(sql("read schema version"))
    }

    /// The SQLite journal mode in force (`wal` for a file store).
    pub fn journal_mode(&self) -> Result<String, StoreError> {
        self.conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(sql("read journal mode"))
    }

    /// Applies the missing migration steps, each in its own IMMEDIATE transaction, so that two
    /// processes opening a fresh file at once do not both apply a step.
    fn migrate(&mut self) -> Result<(), StoreError> {
        self.conn
            .execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            .map_err(sql("create schema_version"))?;
        loop {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql("begin migration"))?;
            let current: Option<i64> = tx
                .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
                .map(Some)
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    e => Err(e),
                })
                .map_err(sql("read schema version"))?;
            let current = match current {
                Some(v) => v,
                None => {
                    tx.execute("INSERT INTO schema_version (version) VALUES (0)", [])
                        .map_err(sql("init schema version"))?;
                    0
                }
            };
            if current > SCHEMA_VERSION {
                return Err(StoreError::SchemaTooNew {
                    found: current,
                    supported: SCHEMA_VERSION,
                });
            }
            let Some(step) = usize::try_from(current).ok().and_then(|i| MIGRATIONS.get(i)) else {
                tx.commit().map_err(sql("commit migration"))?;
                return Ok(());
            };
            tx.execute_batch(step).map_err(sql("apply migration"))?;
            tx.execute("UPDATE schema_version SET version = ?1", [current + 1])
                .map_err(sql("bump schema version"))?;
            tx.commit().map_err(sql("commit migration"))?;
        }
    }
}
