//! Databases written by earlier programs open and upgrade with the numbered migration files.
//! The fixtures are the schemas as those programs wrote them, copied: they must not follow the
//! new files.

use svoct_store::{InboxState, Store};

const PS_V8: &str = include_str!("fixtures/ps_schema_v8.sql");

#[test]
fn a_ps_store_of_schema_8_opens_and_keeps_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("svoct.db");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(PS_V8).unwrap();
        c.execute_batch(
            "INSERT INTO compostage_state (id, second, counter) VALUES (1, 4102444800, 7);
             INSERT INTO inbox (id, source, uidl, raw, size, received_ms, state)
                VALUES (1, 'pop', 'u1', X'', 4, 0, 'new');
             INSERT INTO inbox_raw (id, raw) VALUES (1, CAST('body' AS BLOB));",
        )
        .unwrap();
    }
    let s = Store::open(&path).unwrap();
    assert_eq!(s.schema_version().unwrap(), svoct_store::db::SCHEMA_VERSION);
    // The allocator goes on after the last stamp the old program handed out (2100-01-01).
    assert_eq!(
        s.compostage().last().unwrap().as_deref(),
        Some("2100010100000000007")
    );
    assert_eq!(s.compostage().next_at(0).unwrap(), "2100010100000000008");
    let new = s.inbox().with_state(InboxState::New).unwrap();
    assert_eq!(new.len(), 1);
    assert_eq!(new[0].raw, b"body");
    drop(s);
    // A second opening has nothing to do.
    let s = Store::open(&path).unwrap();
    assert_eq!(s.schema_version().unwrap(), svoct_store::db::SCHEMA_VERSION);
}

#[test]
fn a_ps_store_of_schema_1_is_brought_to_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("svoct.db");
    {
        // Version 1 as the first programs wrote it: the tables of step 1 only.
        let c = rusqlite::Connection::open(&path).unwrap();
        let v1: String = PS_V8.split("CREATE TABLE rec_entry").next().unwrap().to_owned();
        c.execute_batch(&v1).unwrap();
        c.execute_batch(
            "CREATE TABLE schema_version (version INTEGER NOT NULL);
             INSERT INTO schema_version (version) VALUES (1);
             INSERT INTO inbox (id, source, uidl, raw, size, received_ms, state)
                VALUES (1, 'pop', 'u1', CAST('old' AS BLOB), 3, 0, 'new');",
        )
        .unwrap();
    }
    let s = Store::open(&path).unwrap();
    assert_eq!(s.schema_version().unwrap(), svoct_store::db::SCHEMA_VERSION);
    assert_eq!(s.inbox().with_state(InboxState::New).unwrap()[0].raw, b"old");
}
