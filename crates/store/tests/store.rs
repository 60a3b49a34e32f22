//! The store against its promises: durability settings, migrations, journal, inbox.

use svoct_store::{Direction, InboxState, Lot, NewEntry, Status, Store, StoreError, StoreOutcome};

fn entry(subject: &str, compostage: &str) -> NewEntry {
    NewEntry {
        direction: Direction::Out,
        profile: "FACTURE/SV".into(),
        subject: subject.into(),
        compostage: Some(compostage.into()),
        message_id: Some("<1@ps.test>".into()),
        file_name: Some("F0001".into()),
        lots: vec![
            Lot {
                number: "001".into(),
                date: "20261126".into(),
            },
            Lot {
                number: "002".into(),
                date: "20261126".into(),
            },
        ],
        invoices: vec!["000000001".into(), "000000002".into()],
        status: Status::Pending,
    }
}

#[test]
fn file_store_is_wal_full_sync_and_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("svoct.db");
    let s = Store::open(&path).unwrap();
    assert_eq!(s.journal_mode().unwrap(), "wal");
    assert_eq!(s.schema_version().unwrap(), svoct_store::db::SCHEMA_VERSION);
    drop(s);
    // Reopening does not re-apply migrations (they would fail on existing tables).
    let s = Store::open(&path).unwrap();
    assert_eq!(s.schema_version().unwrap(), svoct_store::db::SCHEMA_VERSION);
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("svoct.db");
    drop(Store::open(&path).unwrap());
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute("UPDATE schema_version SET version = 999", []).unwrap();
    drop(c);
    match Store::open(&path) {
        Err(StoreError::SchemaTooNew { found: 999, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn journal_insert_before_send_then_outcome() {
    let s = Store::open_in_memory().unwrap();
    let j = s.journal();
    let a = j
        .insert(&entry(
            "SV140700/123456789/2026112605432700000/00002",
            "2026112605432700000",
        ))
        .unwrap();
    let b = j
        .insert(&entry(
            "SV140700/123456789/2026112605432800000/00002",
            "2026112605432800000",
        ))
        .unwrap();
    assert_eq!(j.with_status(Status::Pending).unwrap().len(), 2);
    j.set_outcome(a, Status::Sent, Some("250 OK id=1xW")).unwrap();
    j.set_outcome(b, Status::Failed, Some("550 unknown mailbox"))
        .unwrap();
    let got = j.get(a).unwrap().unwrap();
    assert_eq!(got.status, Status::Sent);
    assert_eq!(got.server_answer.as_deref(), Some("250 OK id=1xW"));
    assert_eq!(got.lots[1].number, "002");
    assert_eq!(got.invoices, vec!["000000001", "000000002"]);
    assert!(j.with_status(Status::Pending).unwrap().is_empty());
    assert_eq!(j.by_compostage("2026112605432800000").unwrap().unwrap().id, b);
    assert!(matches!(
        j.set_outcome(svoct_store::EntryId(77), Status::Sent, None),
        Err(StoreError::NotFound {
            table: "journal",
            id: 77
        })
    ));
    // JSON shape, for the CLI.
    let v: serde_json::Value = serde_json::to_value(&got).unwrap();
    assert_eq!(v["status"], "sent");
    assert_eq!(v["direction"], "out");
    assert_eq!(v["lots"][0]["date"], "20261126");
}

#[test]
fn journal_search_by_subject_glob() {
    let s = Store::open_in_memory().unwrap();
    let j = s.journal();
    j.insert(&entry(
        "SV140700/111111111/2026112605432700000/00002",
        "2026112605432700000",
    ))
    .unwrap();
    j.insert(&entry(
        "SV140700/222222222/2026112605432700001/00002",
        "2026112605432700001",
    ))
    .unwrap();
    j.insert(&entry("ART/000000111/202611260543", "x")).unwrap();
    assert_eq!(j.search_subject("SV*").unwrap().len(), 2);
    let one = j.search_subject("*/222222222/*").unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].subject, "SV140700/222222222/2026112605432700001/00002");
    assert_eq!(j.search_subject("ART/*").unwrap().len(), 1);
    assert!(j.search_subject("sv*").unwrap().is_empty(), "case-sensitive");
    assert_eq!(j.recent(2).unwrap()[0].subject, "ART/000000111/202611260543");
}

#[test]
fn journal_finds_messages_by_invoice_and_lot() {
    let s = Store::open_in_memory().unwrap();
    let j = s.journal();
    let a = j.insert(&entry("A", "1")).unwrap();
    let mut other = entry("B", "2");
    other.invoices = vec!["000000009".into()];
    other.lots = vec![Lot {
        number: "007".into(),
        date: "20261125".into(),
    }];
    let b = j.insert(&other).unwrap();
    let ids = |v: Vec<svoct_store::Entry>| v.into_iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(ids(j.by_invoice("000000002").unwrap()), vec![a]);
    assert_eq!(ids(j.by_invoice("000000009").unwrap()), vec![b]);
    assert!(j.by_invoice("00000000").unwrap().is_empty(), "exact match only");
    assert_eq!(ids(j.by_lot("001").unwrap()), vec![a]);
    assert_eq!(ids(j.by_lot("007").unwrap()), vec![b]);
    assert!(
        j.by_lot("20261126").unwrap().is_empty(),
        "dates are not lot numbers"
    );
}

#[test]
fn journal_reports_corrupt_rows_with_table_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("svoct.db");
    let s = Store::open(&path).unwrap();
    let id = s.journal().insert(&entry("S", "C")).unwrap();
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute("UPDATE journal SET status = 'bogus'", []).unwrap();
    match s.journal().get(id) {
        Err(StoreError::Corrupt {
            table: "journal",
            column: "status",
            value,
            ..
        }) => assert_eq!(value, "bogus"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn inbox_stores_once_per_source_and_uidl() {
    let s = Store::open_in_memory().unwrap();
    let i = s.inbox();
    let raw = b"Subject: x\r\n\r\nbody\r\n.\r\n".to_vec();
    let first = i.store_if_new("pop:ps1", "UID1", &raw).unwrap();
    assert!(matches!(first, StoreOutcome::Stored(_)));
    let again = i.store_if_new("pop:ps1", "UID1", b"different").unwrap();
    assert_eq!(again, StoreOutcome::AlreadyHad(first.id()));
    // Same UIDL in another mailbox is another message.
    assert!(matches!(
        i.store_if_new("pop:ps2", "UID1", b"other").unwrap(),
        StoreOutcome::Stored(_)
    ));
    let m = i.get(first.id()).unwrap().unwrap();
    assert_eq!(m.raw, raw, "the first bytes are kept");
    assert_eq!(m.size, raw.len() as u64);
    assert_eq!(m.state, InboxState::New);
    assert_eq!(i.not_deleted_on_server("pop:ps1").unwrap(), vec!["UID1"]);
    i.mark_deleted_on_server("pop:ps1", "UID1").unwrap();
    assert!(i.not_deleted_on_server("pop:ps1").unwrap().is_empty());

    i.classify(first.id(), "ARL").unwrap();
    i.quarantine(first.id(), "attachment does not decrypt").unwrap();
    let q = i.with_state(InboxState::Quarantined).unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].classification.as_deref(), Some("ARL"));
    assert_eq!(q[0].reason.as_deref(), Some("attachment does not decrypt"));
    i.mark_processed(first.id()).unwrap();
    assert!(i.with_state(InboxState::Quarantined).unwrap().is_empty());
    assert_eq!(i.count("pop:ps1").unwrap(), 1);
}

#[test]
fn inbox_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("svoct.db");
    {
        let s = Store::open(&path).unwrap();
        s.inbox().store_if_new("m", "u", b"raw bytes").unwrap();
    }
    let s = Store::open(&path).unwrap();
    assert!(matches!(
        s.inbox().store_if_new("m", "u", b"raw bytes").unwrap(),
        StoreOutcome::AlreadyHad(_)
    ));
}

/// A message of many pages (written and read through incremental blob I/O) comes back byte
/// for byte after a reopen, in `get` as in `with_state`; an empty one too.
#[test]
fn inbox_keeps_a_large_message_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("svoct.db");
    // 3 MiB + 7 bytes of every byte value, in an order no page boundary lines up with.
    let raw: Vec<u8> = (0..3 * 1024 * 1024 + 7u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (big, empty) = {
        let s = Store::open(&path).unwrap();
        let big = s.inbox().store_if_new("m", "big", &raw).unwrap().id();
        let empty = s.inbox().store_if_new("m", "empty", b"").unwrap().id();
        (big, empty)
    };
    let s = Store::open(&path).unwrap();
    let m = s.inbox().get(big).unwrap().unwrap();
    assert_eq!(m.size, raw.len() as u64);
    assert!(m.raw == raw, "the large message differs after a reopen");
    assert!(s.inbox().get(empty).unwrap().unwrap().raw.is_empty());
    let all = s.inbox().with_state(InboxState::New).unwrap();
    assert!(all.iter().any(|m| m.id == big && m.raw == raw));
}

/// Schema step 8 moves a stored message's bytes out of `inbox` into `inbox_raw`: a store written
/// before it (bytes in `inbox.raw`, version 7) gives the same bytes back once migrated.
#[test]
fn inbox_bytes_move_to_their_own_table_on_migration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("svoct.db");
    let id = {
        let s = Store::open(&path).unwrap();
        s.inbox().store_if_new("m", "u", b"placeholder").unwrap().id()
    };
    // Back to the layout of version 7, by hand.
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch(
        "DROP TABLE inbox_raw;
         UPDATE inbox SET raw = CAST('Subject: old\r\n\r\nbody' AS BLOB);
         UPDATE schema_version SET version = 7;",
    )
    .unwrap();
    drop(c);
    let s = Store::open(&path).unwrap();
    assert_eq!(s.schema_version().unwrap(), svoct_store::db::SCHEMA_VERSION);
    assert_eq!(
        s.inbox().get(id).unwrap().unwrap().raw,
        b"Subject: old\r\n\r\nbody"
    );
    let c = rusqlite::Connection::open(&path).unwrap();
    let left: i64 = c
        .query_row("SELECT length(raw) FROM inbox WHERE id = ?1", [id.0], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(left, 0, "the bytes are kept once, in inbox_raw");
}

#[test]
fn processes_opening_a_new_store_at_the_same_instant_all_succeed() {
    // Switching a fresh file to WAL takes an exclusive lock that SQLite refuses at once (no busy
    // handler) to a second connection trying at the same time: `Store::open` retries.
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ps.sqlite");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
        let openers: Vec<_> = (0..6)
            .map(|_| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    Store::open(&path).map(|s| s.journal_mode().unwrap())
                })
            })
            .collect();
        for o in openers {
            assert_eq!(o.join().unwrap().unwrap(), "wal");
        }
    }
}
