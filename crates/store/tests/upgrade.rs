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

const OCT_V4: &str = include_str!("fixtures/oct_schema_v4.sql");

/// An OCT state of schema 4: its rows stay, and its compostage sequence (then a `sequence` row
/// `'<second>:<last counter>'`) goes on in the one allocator.
#[test]
fn an_oct_state_of_schema_4_opens_and_its_compostages_go_on() {
    use svoct_store::oct::{OctStore, SqliteOctStore};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.sqlite");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(OCT_V4).unwrap();
        c.execute_batch(
            "INSERT INTO processed (spool_id, digest, kind, outcome, mail_from, subject, summary, at)
                VALUES ('old', 'd', 'invoice', 'processed', 'ps@x', 's', '{}', 0);
             INSERT INTO outbox (id, message_id, spool_id, kind, mail_from, rcpt, next_attempt, created)
                VALUES (1, '<old@oct>', 'old', 'forward', 'oct@oct', 'am@am', 0, 0);
             INSERT INTO outbox_body (id, raw) VALUES (1, CAST('old' AS BLOB));
             INSERT INTO outbox (id, message_id, spool_id, kind, mail_from, rcpt, next_attempt,
                created, attempts, last_error)
                VALUES (2, '<refused@oct>', 'old', 'art', 'oct@oct', 'ps@x', 0, 0, 3,
                'relay refused the OCT''s SMTP login: 535 no');
             INSERT INTO outbox_body (id, raw) VALUES (2, CAST('art' AS BLOB));
             INSERT INTO sequence (name, value) VALUES ('compostage', '4102444800:41');
             INSERT INTO sequence (name, value) VALUES ('file_id', '64');",
        )
        .unwrap();
        let v: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(v, 4, "the fixture is a version 4 database");
    }
    let s = SqliteOctStore::open(&path).unwrap();
    assert!(s.is_processed("old").unwrap());
    assert_eq!(s.outbox_raw("<old@oct>").unwrap(), Some(b"old".to_vec()));
    // A row the relay's login refused, told then by its error text, is marked as such.
    let refused: Vec<bool> = s
        .undelivered(10)
        .unwrap()
        .iter()
        .map(|r| r.login_refused)
        .collect();
    assert_eq!(refused, [false, true]);
    let block = s.reserve_compostage(10, 0).unwrap();
    assert_eq!((block.second, block.first), (4_102_444_800, 42));
    assert_eq!(s.reserve_sequence("file_id", 1, 999_999).unwrap(), 65);
    drop(s);
    let c = rusqlite::Connection::open(&path).unwrap();
    let left: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM sequence WHERE name = 'compostage'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0, "the old compostage row is gone");
    drop(c);
    // A second opening has nothing to do.
    let s = SqliteOctStore::open(&path).unwrap();
    assert_eq!(s.reserve_compostage(1, 0).unwrap().first, 52);
}
