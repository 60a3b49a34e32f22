//! The one migrator: every database of the project is brought to its newest schema by the
//! numbered SQL files of `crates/store/migrations/<database>/`, applied in order.
//!
//! Never edit a released file: append a new one. File `NNNN_*.sql` brings a database to version
//! `NNNN`. Each step runs in its own IMMEDIATE transaction that re-reads the version first, so
//! that two processes opening a fresh or old file at once apply every step exactly once.
//!
//! Each database keeps the version marker it always had, so that files written by earlier
//! programs open and upgrade: the PS store a one-row `schema_version` table, the OCT state
//! SQLite's `PRAGMA user_version`. The numbering is the one those programs used (the PS store's
//! steps 1-8 and the OCT state's 1-4 are the same schema changes as before, now as files).

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::{StoreError, sql};

/// Where a database records its schema version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Marker {
    /// A `schema_version (version)` table of one row.
    Table,
    /// SQLite's `PRAGMA user_version` in the file header.
    UserVersion,
}

/// The migrations of one database.
#[derive(Debug)]
pub(crate) struct Schema {
    pub(crate) marker: Marker,
    /// Step `i` brings the database to version `i + 1`.
    pub(crate) steps: &'static [&'static str],
}

impl Schema {
    /// The newest version these migrations reach.
    pub(crate) const fn version(&self) -> i64 {
        self.steps.len() as i64
    }
}

/// The PS store (`svoct ps`): journal, inbox, returns, LOI, statements.
pub(crate) const PS: Schema = Schema {
    marker: Marker::Table,
    steps: &[
        include_str!("../migrations/ps/0001_journal_compostage_inbox.sql"),
        include_str!("../migrations/ps/0002_returns_and_loi.sql"),
        include_str!("../migrations/ps/0003_journal_invoice_index.sql"),
        include_str!("../migrations/ps/0004_return_messages.sql"),
        include_str!("../migrations/ps/0005_invoice_key_covers_match.sql"),
        include_str!("../migrations/ps/0006_payment_lines.sql"),
        include_str!("../migrations/ps/0007_journal_links.sql"),
        include_str!("../migrations/ps/0008_inbox_raw.sql"),
    ],
};

/// The OCT state (`svoct oct`): processed index, outbox, quarantine, own lots, counters.
pub(crate) const OCT: Schema = Schema {
    marker: Marker::UserVersion,
    steps: &[
        include_str!("../migrations/oct/0001_state.sql"),
        include_str!("../migrations/oct/0002_outbox_body.sql"),
        include_str!("../migrations/oct/0003_processed_index.sql"),
        include_str!("../migrations/oct/0004_forwarded_invoices.sql"),
        include_str!("../migrations/oct/0005_compostage_state.sql"),
        include_str!("../migrations/oct/0006_outbox_login_refused.sql"),
        include_str!("../migrations/oct/0007_outbox_hold.sql"),
        include_str!("../migrations/oct/0008_practices.sql"),
    ],
};

/// The version `conn` is at (0 for a fresh database).
pub(crate) fn version(conn: &Connection, marker: Marker) -> Result<i64, StoreError> {
    match marker {
        Marker::UserVersion => conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(sql("read schema version")),
        Marker::Table => {
            let exists = conn
                .query_row(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
                    [],
                    |_| Ok(()),
                )
                .optional()
                .map_err(sql("read schema version"))?
                .is_some();
            if !exists {
                return Ok(0);
            }
            let v: Option<i64> = conn
                .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
                .optional()
                .map_err(sql("read schema version"))?;
            Ok(v.unwrap_or(0))
        }
    }
}

fn set_version(conn: &Connection, marker: Marker, version: i64) -> Result<(), StoreError> {
    match marker {
        Marker::UserVersion => conn
            .pragma_update(None, "user_version", version)
            .map_err(sql("bump schema version")),
        Marker::Table => {
            conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                .map_err(sql("create schema_version"))?;
            let updated = conn
                .execute("UPDATE schema_version SET version = ?1", [version])
                .map_err(sql("bump schema version"))?;
            if updated == 0 {
                conn.execute("INSERT INTO schema_version (version) VALUES (?1)", [version])
                    .map_err(sql("init schema version"))?;
            }
            Ok(())
        }
    }
}

/// Applies the steps of `schema` that `conn` lacks. Fails, changing nothing, on a database newer
/// than this program.
pub(crate) fn migrate(conn: &mut Connection, schema: &Schema) -> Result<(), StoreError> {
    loop {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("begin migration"))?;
        let current = version(&tx, schema.marker)?;
        if current > schema.version() {
            return Err(StoreError::SchemaTooNew {
                found: current,
                supported: schema.version(),
            });
        }
        let Some(step) = usize::try_from(current).ok().and_then(|i| schema.steps.get(i)) else {
            tx.commit().map_err(sql("commit migration"))?;
            return Ok(());
        };
        tx.execute_batch(step).map_err(sql("apply migration"))?;
        set_version(&tx, schema.marker, current + 1)?;
        tx.commit().map_err(sql("commit migration"))?;
    }
}
