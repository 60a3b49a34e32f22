//! The journal, the compostage allocator, the inbox and the spool, in SQLite.
//!
//! One crate holds all the SQL of the project so that another backend can follow behind the same
//! types. Open one [`Store`] per thread or process (a SQLite connection is not shared across
//! threads); WAL mode and IMMEDIATE transactions make concurrent processes safe.
//!
//! - [`db`]: opening, pragmas.
//! - `migrate`: the one migrator, over the numbered SQL files of `migrations/<database>/`.
//! - [`journal`]: every message sent or received, with its outcome.
//! - [`compostage`]: the unique 19-character stamp of every sent message.
//! - [`inbox`]: received messages stored durably before they are deleted on the server.
//! - [`spool`]: the concentrator's SMTP ingress spool.
//! - [`oct`]: the concentrator's state (processed index, outbox, quarantine, counters) behind
//!   the [`oct::OctStore`] boundary, in SQLite by default.
//! - [`returns`]: reconciliation of ARL and RSP returns with sent lots and invoices.
//! - [`loi`]: the local opposition list and its dLOI increments.
//! - [`dump`]: every row out and back in (portable history: `svoct ps export` / `import`).
#![forbid(unsafe_code)]

pub mod compostage;
pub mod db;
pub mod dump;
pub mod inbox;
pub mod journal;
pub(crate) mod migrate;
pub mod oct;
pub mod opposition_list;
pub mod reconciliation;
pub mod spool;
pub mod statement;

pub use compostage::{COMPOSTAGE_LEN, CompostageAllocator, CompostageBlock};
pub use db::Store;
pub use inbox::{Inbox, InboxId, InboxMessage, InboxState, StoreOutcome};
pub use journal::{Direction, Entry, EntryId, Journal, Lot, NewEntry, Status};
pub use opposition_list::{Loi, LoiOutcome, LoiReport};
pub use reconciliation::{ArlState, InvoiceKind, PaymentState, Returns};

/// What can go wrong in the store. Each variant says which operation or which table/column.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or configured.
    #[error("opening the store {path}: {source}")]
    Open {
        path: std::path::PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// The database file could not be created or restricted to its owner (`0600`).
    #[error("preparing the store file {path}: {source}")]
    File {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A statement failed.
    #[error("store: {op}: {source}")]
    Sql {
        op: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    /// The database was written by a newer version of the program.
    #[error("store schema version {found} is newer than the {supported} this program knows")]
    SchemaTooNew { found: i64, supported: i64 },
    /// A value read back does not decode (a hand-edited or corrupt database).
    #[error("store: corrupt value in {table}.{column} of row {row}: {value:?}")]
    Corrupt {
        table: &'static str,
        column: &'static str,
        row: i64,
        value: String,
    },
    /// A row the caller named does not exist.
    #[error("store: no row {id} in {table}")]
    NotFound { table: &'static str, id: i64 },
    /// An outbox row the caller named exists but is not waiting in the queue (being sent, sent,
    /// already abandoned): the operator's action does not apply to it.
    #[error("store: outbox row {id} is {state}, not waiting in the queue")]
    NotQueued { id: i64, state: String },
    /// No random bytes for an identifier (the OCT's instance id).
    #[error("store: reading random bytes: {source}")]
    Random {
        #[source]
        source: std::io::Error,
    },
    /// The clock (or the allocator's state) is outside what a compostage can express.
    #[error("compostage: time {unix_seconds} is outside years 0000-9999")]
    ClockOutOfRange { unix_seconds: i64 },
    /// A practice's address, sender number or PS number is already another practice's.
    #[error("{what} {value} is already registered")]
    Duplicate { what: &'static str, value: String },
}

pub(crate) fn sql(op: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sql { op, source }
}

/// Now, in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Unix milliseconds to a date-time (clamped to the representable range).
pub(crate) fn from_ms(ms: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}
