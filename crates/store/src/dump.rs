//! Every row of every table, out and back in: the store side of `svoct ps export` / `import`.
//!
//! The dump is generic over the schema (tables and columns come from SQLite itself), so a new
//! table is carried without touching this module, and a restore writes back exactly the stored
//! values (ids, states, counters, the compostage allocator and the journal that refuses a
//! duplicate sending). A restore only goes into an empty store of the same schema version: the
//! rows are written as they are, with no migration in between.

use rusqlite::types::{Value, ValueRef};
use rusqlite::{Transaction, TransactionBehavior};

use crate::{Store, StoreError, sql};

/// One stored value.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Cell {
    fn from_ref(v: ValueRef<'_>) -> Cell {
        match v {
            ValueRef::Null => Cell::Null,
            ValueRef::Integer(i) => Cell::Integer(i),
            ValueRef::Real(f) => Cell::Real(f),
            ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => Cell::Blob(b.to_vec()),
        }
    }

    fn into_value(self) -> Value {
        match self {
            Cell::Null => Value::Null,
            Cell::Integer(i) => Value::Integer(i),
            Cell::Real(f) => Value::Real(f),
            Cell::Text(t) => Value::Text(t),
            Cell::Blob(b) => Value::Blob(b),
        }
    }
}

/// Tables that hold seed rows in a fresh store (written by a migration or on first use): a
/// restore replaces them, and they do not make a store "non-empty".
const SEED_TABLES: &[&str] = &["loi_meta", "compostage_state", "file_number_state"];

/// Identifiers come from `sqlite_master` or are checked against it; quoting keeps any name inert.
/// The columns of `table` on `conn`, in order (empty when there is no such table).
fn table_columns(conn: &rusqlite::Connection, table: &str) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn
        .prepare(&format!("PRAGMA table_info({})", quote(table)))
        .map_err(sql("read columns"))?;
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(1))
        .map_err(sql("read columns"))?;
    rows.collect::<Result<_, _>>().map_err(sql("read columns"))
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Store {
    /// The tables a dump carries, by name: every table but SQLite's own and `schema_version`.
    pub fn dump_tables(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = 'table'
                 AND name NOT LIKE 'sqlite_%' AND name != 'schema_version' ORDER BY name",
            )
            .map_err(sql("list tables"))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(sql("list tables"))?;
        rows.collect::<Result<_, _>>().map_err(sql("list tables"))
    }

    /// The columns of `table`, in order (empty when there is no such table).
    pub fn dump_columns(&self, table: &str) -> Result<Vec<String>, StoreError> {
        table_columns(&self.conn, table)
    }

    /// Calls `each` with every row of `table` (columns in [`dump_columns`](Self::dump_columns)
    /// order), in primary-key order. Run inside [`snapshot`](Self::snapshot) for a consistent
    /// dump of several tables.
    pub fn dump_rows<E>(
        &self,
        table: &str,
        mut each: impl FnMut(Vec<Cell>) -> Result<(), E>,
    ) -> Result<Result<(), E>, StoreError> {
        let columns = self.dump_columns(table)?;
        let list: Vec<String> = columns.iter().map(|c| quote(c)).collect();
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {} FROM {}", list.join(", "), quote(table)))
            .map_err(sql("dump table"))?;
        let mut rows = stmt.query([]).map_err(sql("dump table"))?;
        while let Some(row) = rows.next().map_err(sql("dump table"))? {
            let mut cells = Vec::with_capacity(columns.len());
            for i in 0..columns.len() {
                cells.push(Cell::from_ref(row.get_ref(i).map_err(sql("dump table"))?));
            }
            if let Err(e) = each(cells) {
                return Ok(Err(e));
            }
        }
        Ok(Ok(()))
    }

    /// Runs `f` inside one read transaction, so that every table it dumps comes from the same
    /// moment even while another process sends or fetches.
    pub fn snapshot<T>(&mut self, f: impl FnOnce(&Store) -> T) -> Result<T, StoreError> {
        self.conn
            .execute_batch("BEGIN DEFERRED")
            .map_err(sql("begin snapshot"))?;
        let out = f(self);
        self.conn.execute_batch("COMMIT").map_err(sql("end snapshot"))?;
        Ok(out)
    }

    /// True when the store holds nothing but the seed rows of a fresh store: no journal entry,
    /// no received message, no reconciled lot, no opposition-list card or version.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        for table in self.dump_tables()? {
            if SEED_TABLES.contains(&table.as_str()) {
                continue;
            }
            let any: bool = self
                .conn
                .query_row(
                    &format!("SELECT EXISTS (SELECT 1 FROM {})", quote(&table)),
                    [],
                    |r| r.get(0),
                )
                .map_err(sql("check empty"))?;
            if any {
                return Ok(false);
            }
        }
        let loi_version: i64 = self
            .conn
            .query_row("SELECT COALESCE(MAX(version), 0) FROM loi_meta", [], |r| r.get(0))
            .map_err(sql("check empty"))?;
        Ok(loi_version == 0)
    }

    /// Starts a restore: one IMMEDIATE transaction that nothing sees until
    /// [`Restore::commit`]; dropped without commit, it leaves the store as it was.
    pub fn restore(&mut self) -> Result<Restore<'_>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("begin restore"))?;
        Ok(Restore { tx })
    }
}

/// An open restore (see [`Store::restore`]).
pub struct Restore<'a> {
    tx: Transaction<'a>,
}

/// Why a restored row was refused.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("table {0:?} does not exist in this store")]
    NoTable(String),
    #[error("table {table}: no column {column:?}")]
    NoColumn { table: String, column: String },
    #[error("table {table}: {columns} columns but {cells} values")]
    Width {
        table: String,
        columns: usize,
        cells: usize,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Restore<'_> {
    /// The columns of `table` in the target store.
    pub fn columns(&self, table: &str) -> Result<Vec<String>, StoreError> {
        table_columns(&self.tx, table)
    }

    /// Checks that `table` and every one of `columns` exist here, so that a name from an
    /// archive reaches SQL only once it is known to be one of ours.
    pub fn check(&self, table: &str, columns: &[String]) -> Result<(), RestoreError> {
        let known = self.columns(table)?;
        if known.is_empty() || table == "schema_version" || table.starts_with("sqlite_") {
            return Err(RestoreError::NoTable(table.to_owned()));
        }
        if let Some(c) = columns.iter().find(|c| !known.contains(c)) {
            return Err(RestoreError::NoColumn {
                table: table.to_owned(),
                column: c.clone(),
            });
        }
        Ok(())
    }

    /// Writes one row. Replaces a row with the same key: the seed rows of a fresh store, and
    /// the journal's invoice index that the journal's own trigger already filled.
    /// Call [`check`](Self::check) for the table and columns first.
    pub fn insert(&self, table: &str, columns: &[String], cells: Vec<Cell>) -> Result<(), RestoreError> {
        if columns.len() != cells.len() {
            return Err(RestoreError::Width {
                table: table.to_owned(),
                columns: columns.len(),
                cells: cells.len(),
            });
        }
        let names: Vec<String> = columns.iter().map(|c| quote(c)).collect();
        let marks: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
        let text = format!(
            "INSERT OR REPLACE INTO {} ({}) VALUES ({})",
            quote(table),
            names.join(", "),
            marks.join(", ")
        );
        let mut stmt = self.tx.prepare_cached(&text).map_err(sql("restore row"))?;
        let values: Vec<Value> = cells.into_iter().map(Cell::into_value).collect();
        stmt.execute(rusqlite::params_from_iter(values))
            .map_err(sql("restore row"))?;
        Ok(())
    }

    /// Makes the restored rows visible, all at once.
    pub fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().map_err(sql("commit restore"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Direction, NewEntry, Status};

    fn entry(invoice: &str) -> NewEntry {
        NewEntry {
            direction: Direction::Out,
            profile: "FACTURE/SV/K".into(),
            subject: format!("SV140700/123456789/2026112600000000001/{invoice}"),
            compostage: Some("2026112600000000001".into()),
            message_id: None,
            file_name: None,
            lots: vec![],
            invoices: vec![invoice.into()],
            status: Status::Sent,
        }
    }

    fn copy(from: &mut Store, to: &mut Store) {
        let tables = from.dump_tables().unwrap();
        let mut dumped = Vec::new();
        from.snapshot(|s| {
            for t in &tables {
                let mut rows = Vec::new();
                s.dump_rows::<()>(t, |r| {
                    rows.push(r);
                    Ok(())
                })
                .unwrap()
                .unwrap();
                dumped.push((t.clone(), s.dump_columns(t).unwrap(), rows));
            }
        })
        .unwrap();
        let r = to.restore().unwrap();
        for (t, cols, rows) in dumped {
            r.check(&t, &cols).unwrap();
            for row in rows {
                r.insert(&t, &cols, row).unwrap();
            }
        }
        r.commit().unwrap();
    }

    #[test]
    fn a_fresh_store_is_empty_and_one_entry_makes_it_not() {
        let s = Store::open_in_memory().unwrap();
        assert!(s.is_empty().unwrap());
        s.journal().insert(&entry("000000042")).unwrap();
        assert!(!s.is_empty().unwrap());
    }

    #[test]
    fn a_copy_keeps_ids_states_and_the_invoice_index() {
        let mut a = Store::open_in_memory().unwrap();
        let id = a.journal().insert(&entry("000000042")).unwrap();
        let mut b = Store::open_in_memory().unwrap();
        copy(&mut a, &mut b);
        let got = b.journal().get(id).unwrap().unwrap();
        assert_eq!(got.invoices, vec!["000000042".to_owned()]);
        assert_eq!(got.status, Status::Sent);
        let by_invoice = b.journal().by_invoice("000000042").unwrap();
        assert_eq!(by_invoice.iter().map(|e| e.id).collect::<Vec<_>>(), vec![id]);
    }

    #[test]
    fn unknown_tables_and_columns_are_refused_before_any_sql() {
        let mut s = Store::open_in_memory().unwrap();
        let r = s.restore().unwrap();
        assert!(matches!(
            r.check("nope\"; DROP TABLE journal; --", &[]),
            Err(RestoreError::NoTable(_))
        ));
        assert!(matches!(
            r.check("schema_version", &[]),
            Err(RestoreError::NoTable(_))
        ));
        let err = r.check("journal", &["id".into(), "evil".into()]).unwrap_err();
        assert!(matches!(err, RestoreError::NoColumn { ref column, .. } if column == "evil"));
        drop(r);
        assert!(s.journal().recent(10).unwrap().is_empty());
    }
}
