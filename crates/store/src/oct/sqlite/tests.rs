//! The SQLite state: commits, claims, the outbox flow, migrations of old databases.

use rusqlite::Connection;

use super::*;
use crate::oct::{OctStore, now_secs};

type State = SqliteOctStore;

/// The schema version 4 text as the programs before the migration files wrote it.
const SCHEMA: &str = include_str!("../../../tests/fixtures/oct_schema_v4.sql");
const SCHEMA_VERSION: i64 = crate::migrate::OCT.version();

/// A processed message of one ART, not quarantined (the practices' tests).
pub(super) fn processed_for_tests(id: &str) -> Processed {
    processed(id, 1, false)
}

fn processed(id: &str, n: usize, quarantine: bool) -> Processed {
    Processed {
        spool_id: id.into(),
        digest: "d".into(),
        kind: MessageKind::Invoice,
        mail_from: "ps@x".into(),
        subject: "s".into(),
        summary: serde_json::json!({"lots": n}),
        outgoing: (0..n)
            .map(|i| Outgoing {
                message_id: format!("<{id}.{i}@oct>"),
                kind: if i == 0 { OutKind::Art } else { OutKind::Forward },
                mail_from: "oct@oct".into(),
                rcpt: "am@am".into(),
                raw: vec![b'x'; i + 1],
            })
            .collect(),
        own_lots: vec![],
        own_arls: vec![],
        retried_quarantine: None,
        claims: Claims::default(),
        quarantine: quarantine.then(|| QuarantineEntry {
            code: "unknown_sender".into(),
            reason: "nobody".into(),
            rcpt: vec!["oct@oct".into()],
            raw: b"raw".to_vec(),
        }),
    }
}

#[test]
fn commit_is_once_and_outbox_flows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = State::open(&dir.path().join("s.db")).expect("open");
    assert!(!s.is_processed("a").expect("lookup"));
    assert_eq!(
        s.commit(&processed("a", 3, false)).expect("commit"),
        Commit::Recorded
    );
    assert!(s.is_processed("a").expect("lookup"));
    // A second commit of the same spooled message changes nothing.
    assert_eq!(
        s.commit(&processed("a", 5, false)).expect("commit"),
        Commit::AlreadyProcessed
    );
    assert_eq!(s.outbox_ids().expect("ids").len(), 3);

    let now = now_secs();
    let record = |id: i64, outcome: DeliveryOutcome| s.record_deliveries(&[(id, outcome)]);
    let claim_one = || s.claim_due_batch(now, 1).expect("due").into_iter().next();
    let d = claim_one().expect("one due");
    assert_eq!(d.message_id, "<a.0@oct>");
    // Claimed: another sender does not get it; a crash puts it back.
    assert_eq!(claim_one().map(|d| d.message_id), Some("<a.1@oct>".into()));
    assert_eq!(s.reset_sending().expect("reset"), 2);
    record(
        d.id,
        DeliveryOutcome::Retry {
            at: now + 100,
            error: "451 try later".into(),
        },
    )
    .expect("retry");
    let d2 = s.next_due(now).expect("due").expect("next");
    assert_eq!(d2.message_id, "<a.1@oct>");
    record(d2.id, DeliveryOutcome::Sent).expect("sent");
    let d3 = s.next_due(now).expect("due").expect("next");
    record(
        d3.id,
        DeliveryOutcome::Failed {
            error: "550 no".into(),
        },
    )
    .expect("failed");
    assert!(s.next_due(now).expect("due").is_none());
    assert_eq!(s.next_due_at().expect("at"), Some(now + 100));
    assert!(s.next_due(now + 100).expect("due").is_some());

    let c = s.counters().expect("counters");
    assert_eq!(c.outbox.get("pending"), Some(&1));
    assert_eq!(c.outbox.get("sent"), Some(&1));
    assert_eq!(c.outbox.get("failed"), Some(&1));
    assert_eq!(c.processed.get("invoice/processed"), Some(&1));
    assert_eq!(s.requeue_failed().expect("requeue"), 1);
}

#[test]
fn a_batch_commits_all_or_nothing_and_skips_what_was_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = State::open(&dir.path().join("s.db")).expect("open");
    assert_eq!(
        s.commit(&processed("b", 2, false)).expect("commit"),
        Commit::Recorded
    );
    let done = s
        .commit_batch(&[
            processed("a", 3, false),
            processed("b", 4, false),
            processed("c", 1, true),
        ])
        .expect("batch");
    assert_eq!(
        done,
        vec![Commit::Recorded, Commit::AlreadyProcessed, Commit::Recorded]
    );
    // b keeps its first two rows; a brings 3 and c 1.
    assert_eq!(s.outbox_ids().expect("ids").len(), 6);
    assert_eq!(s.outbox_raw("<a.2@oct>").expect("raw"), Some(b"xxx".to_vec()));
    assert_eq!(s.quarantine_list(true).expect("list").len(), 1);

    // A failure on the second message of a batch leaves nothing of the first behind.
    s.conn
        .execute_batch(
            "CREATE TEMP TRIGGER fail_e BEFORE INSERT ON processed WHEN NEW.spool_id = 'e'
             BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;",
        )
        .expect("trigger");
    assert!(
        s.commit_batch(&[processed("d", 1, false), processed("e", 1, false)])
            .is_err()
    );
    assert!(!s.is_processed("d").expect("lookup"));
    assert!(!s.is_processed("e").expect("lookup"));
}

#[test]
fn senders_claim_disjoint_batches_and_record_each_outcome() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.db");
    let mut s = State::open(&path).expect("open");
    s.commit(&processed("a", 5, false)).expect("commit");
    let other = State::open(&path).expect("second connection");
    let now = now_secs();
    let first = s.claim_due_batch(now, 3).expect("claim");
    let second = other.claim_due_batch(now, 3).expect("claim");
    let ids = |v: &[Due]| v.iter().map(|d| d.message_id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&first), ["<a.0@oct>", "<a.1@oct>", "<a.2@oct>"]);
    assert_eq!(ids(&second), ["<a.3@oct>", "<a.4@oct>"]);
    assert_eq!(first[2].raw, b"xxx");
    assert!(s.claim_due_batch(now, 3).expect("claim").is_empty());

    s.record_deliveries(&[
        (first[0].id, DeliveryOutcome::Sent),
        (
            first[1].id,
            DeliveryOutcome::Retry {
                at: now + 60,
                error: "451 later".into(),
            },
        ),
        (
            first[2].id,
            DeliveryOutcome::Failed {
                error: "550 no".into(),
            },
        ),
    ])
    .expect("record");
    // The second sender stops before delivering: its rows go back.
    other
        .unclaim(&second.iter().map(|d| d.id).collect::<Vec<_>>())
        .expect("unclaim");
    let c = s.counters().expect("counters");
    assert_eq!(c.outbox.get("sent"), Some(&1));
    assert_eq!(c.outbox.get("failed"), Some(&1));
    assert_eq!(c.outbox.get("pending"), Some(&3));
    assert_eq!(c.outbox.get("sending"), None);
    let again = s.claim_due_batch(now, 10).expect("claim");
    assert_eq!(ids(&again), ["<a.3@oct>", "<a.4@oct>"]);
    let later = s.claim_due_batch(now + 60, 10).expect("claim");
    assert_eq!(ids(&later), ["<a.1@oct>"]);
    assert_eq!(later[0].attempts, 1);
}

#[test]
fn a_version_1_database_keeps_its_outbox_bodies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.db");
    {
        // The version 1 outbox, bodies inline, as earlier releases wrote it, beside the other
        // tables of version 1 (which every version 1 database has: the migrations from it only
        // add to them).
        let conn = Connection::open(&path).expect("open");
        let others: String = SCHEMA
            .split("CREATE TABLE IF NOT EXISTS ")
            .filter(|t| {
                ["processed (", "quarantine (", "own_lots (", "sequence ("]
                    .iter()
                    .any(|name| t.starts_with(name))
            })
            .map(|t| format!("CREATE TABLE IF NOT EXISTS {t}"))
            .collect();
        conn.execute_batch(&others).expect("v1 tables");
        conn.execute_batch(
            "CREATE TABLE outbox (
                id INTEGER PRIMARY KEY, message_id TEXT NOT NULL UNIQUE,
                spool_id TEXT NOT NULL, kind TEXT NOT NULL, mail_from TEXT NOT NULL,
                rcpt TEXT NOT NULL, raw BLOB NOT NULL,
                state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt INTEGER NOT NULL, last_error TEXT, created INTEGER NOT NULL,
                sent INTEGER);
             INSERT INTO outbox (message_id, spool_id, kind, mail_from, rcpt, raw,
                next_attempt, created)
             VALUES ('<old@oct>', '7', 'forward', 'oct@oct', 'am@am', x'6f6c64', 0, 0);
             PRAGMA user_version = 1;",
        )
        .expect("v1 schema");
    }
    let s = State::open(&path).expect("migrate");
    assert_eq!(s.outbox_raw("<old@oct>").expect("raw"), Some(b"old".to_vec()));
    let due = s.claim_due_batch(now_secs(), 5).expect("claim");
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].raw, b"old");
    let columns: i64 = s
        .conn
        .query_row(
            "SELECT COUNT(*) FROM pragma_table_info('outbox') WHERE name = 'raw'",
            [],
            |r| r.get(0),
        )
        .expect("columns");
    assert_eq!(columns, 0);
    let version: i64 = s
        .conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("version");
    assert_eq!(version, SCHEMA_VERSION);
    drop(s);
    // Opening again is a no-op.
    let s = State::open(&path).expect("reopen");
    assert_eq!(s.outbox_raw("<old@oct>").expect("raw"), Some(b"old".to_vec()));
}

fn claiming(id: &str, lots: &[&str], compostage: Option<(&str, &str)>) -> Processed {
    let mut p = processed(id, 2, false);
    p.claims = Claims {
        compostage: compostage.map(|(c, h)| CompostageClaim {
            sender_number: "1234".into(),
            compostage: c.into(),
            file_hash: h.into(),
            first_use: false,
        }),
        lots: lots
            .iter()
            .map(|h| LotClaim {
                lot_hash: (*h).into(),
                ps_number: "10987654321".into(),
                lot_number: "001".into(),
                lot_date: "261125".into(),
                file_id: "F00001".into(),
                destination: "CPAM 751".into(),
                message_id: format!("{h}.forward@oct"),
            })
            .collect(),
        invoices: Vec::new(),
    };
    p
}

/// A message forwarding lot `lot` that carries invoice 42 of PS 10987654321 as `nature`.
fn claiming_invoice(id: &str, lot: &str, nature: InvoiceNature) -> Processed {
    let mut p = claiming(id, &[lot], None);
    p.claims.invoices.push(InvoiceClaim {
        ps_number: "10987654321".into(),
        invoice_number: 42,
        nature,
        lot_hash: lot.into(),
        destination: "CPAM 751".into(),
    });
    p
}

#[test]
fn an_invoice_is_dre_or_contract_99_never_both() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = State::open(&dir.path().join("s.db")).expect("open");
    assert_eq!(
        s.commit(&claiming_invoice("a", "h1", InvoiceNature::Dre))
            .expect("commit"),
        Commit::Recorded
    );
    let seen = s
        .forwarded_invoice("10987654321", 42, InvoiceNature::Dre)
        .expect("lookup")
        .expect("recorded");
    assert_eq!(seen.destination, "CPAM 751");
    assert_eq!(
        s.forwarded_invoice("10987654321", 42, InvoiceNature::Contract99)
            .expect("lookup"),
        None
    );
    assert_eq!(
        s.forwarded_invoice("10987654321", 43, InvoiceNature::Dre)
            .expect("lookup"),
        None
    );
    // The same number as contract 99 in another lot: held by the DRE, nothing recorded.
    assert_eq!(
        s.commit(&claiming_invoice("b", "h2", InvoiceNature::Contract99))
            .expect("commit"),
        Commit::Conflict
    );
    assert!(!s.is_processed("b").expect("lookup"));
    assert!(s.forwarded_lot("h2").expect("lookup").is_none());
    // The same nature again in another lot (a DRE resent after a negative ARL) is not R3.4.
    assert_eq!(
        s.commit(&claiming_invoice("c", "h3", InvoiceNature::Dre))
            .expect("commit"),
        Commit::Recorded
    );
}

#[test]
fn a_version_3_database_gains_the_invoice_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.db");
    {
        let conn = Connection::open(&path).expect("open");
        let v3: String = SCHEMA
            .split("CREATE TABLE IF NOT EXISTS forwarded_invoices")
            .next()
            .expect("v3 part")
            .to_owned();
        conn.execute_batch(&v3).expect("v3 schema");
        conn.execute_batch(
            "INSERT INTO forwarded_lots (lot_hash, ps_number, lot_number, lot_date, file_id,
                destination, message_id, spool_id, at)
             VALUES ('old', '10987654321', '001', '261125', 'F1', 'CPAM 751', 'm', 's', 0);
             PRAGMA user_version = 3;",
        )
        .expect("v3 rows");
        let tables: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'forwarded_invoices'",
                [],
                |r| r.get(0),
            )
            .expect("tables");
        assert_eq!(tables, 0, "the fixture is a version 3 database");
    }
    let mut s = State::open(&path).expect("migrate");
    let version: i64 = s
        .conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("version");
    assert_eq!(version, SCHEMA_VERSION);
    assert!(s.forwarded_lot("old").expect("old row kept").is_some());
    assert_eq!(
        s.commit(&claiming_invoice("a", "h1", InvoiceNature::Contract99))
            .expect("commit"),
        Commit::Recorded
    );
    drop(s);
    let mut s = State::open(&path).expect("reopen");
    assert_eq!(
        s.commit(&claiming_invoice("b", "h2", InvoiceNature::Dre))
            .expect("commit"),
        Commit::Conflict
    );
}

#[test]
fn a_lot_or_a_compostage_is_claimed_once_and_a_conflict_leaves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = State::open(&dir.path().join("s.db")).expect("open");
    // Two copies in one batch: the first is recorded, the second conflicts over lot h2.
    let done = s
        .commit_batch(&[
            claiming("a", &["h1", "h2"], Some(("C1", "f1"))),
            claiming("b", &["h2", "h3"], Some(("C2", "f2"))),
            claiming("c", &["h4"], Some(("C3", "f3"))),
        ])
        .expect("batch");
    assert_eq!(done, vec![Commit::Recorded, Commit::Conflict, Commit::Recorded]);
    // Nothing of b: no processed row, no outbox row, neither its own lot h3 nor its
    // compostage.
    assert!(!s.is_processed("b").expect("lookup"));
    assert!(s.outbox_ids().expect("ids").iter().all(|r| r.kind != "b"));
    assert_eq!(s.outbox_ids().expect("ids").len(), 4);
    assert!(s.forwarded_lot("h3").expect("lookup").is_none());
    assert!(s.compostage_file("1234", "C2").expect("lookup").is_none());
    let seen = s.forwarded_lot("h2").expect("lookup").expect("h2 forwarded");
    assert_eq!(seen.message_id, "h2.forward@oct");
    assert_eq!(seen.destination, "CPAM 751");
    assert_eq!(
        s.compostage_file("1234", "C1").expect("lookup"),
        Some("f1".into())
    );
    // Processed again it claims nothing of a's lots: recorded. The same file under the same
    // compostage (a duplicate message) may reuse it; another file may not.
    assert_eq!(
        s.commit(&claiming("b", &["h3"], Some(("C1", "f1"))))
            .expect("commit"),
        Commit::Recorded
    );
    assert_eq!(
        s.commit(&claiming("d", &[], Some(("C1", "other file"))))
            .expect("commit"),
        Commit::Conflict
    );
    assert!(!s.is_processed("d").expect("lookup"));
    // The same file, processed as the first use of C1 while another copy was committed
    // meanwhile: processed again, to be answered as the duplicate it is.
    let mut racing = claiming("r", &[], Some(("C1", "f1")));
    if let Some(c) = racing.claims.compostage.as_mut() {
        c.first_use = true;
    }
    assert_eq!(s.commit(&racing).expect("commit"), Commit::Conflict);
    // Another sender number has its own compostages.
    let mut e = claiming("e", &[], Some(("C1", "other file")));
    if let Some(c) = e.claims.compostage.as_mut() {
        c.sender_number = "999".into();
    }
    assert_eq!(s.commit(&e).expect("commit"), Commit::Recorded);
}

#[test]
fn two_connections_committing_the_same_lot_record_it_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.db");
    drop(State::open(&path).expect("create"));
    // Separate gates: the two commits meet SQLite's own lock, as two processes would.
    let results: Vec<Commit> = std::thread::scope(|scope| {
        let handles: Vec<_> = ["x", "y"]
            .iter()
            .map(|id| {
                let path = path.clone();
                scope.spawn(move || {
                    let mut s = State::open(&path).expect("open");
                    s.commit(&claiming(id, &["same lot"], None)).expect("commit")
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("join")).collect()
    });
    let mut sorted = results.clone();
    sorted.sort_by_key(|c| *c == Commit::Conflict);
    assert_eq!(sorted, vec![Commit::Recorded, Commit::Conflict], "{results:?}");
    let s = State::open(&path).expect("open");
    let processed: i64 = s
        .conn
        .query_row("SELECT COUNT(*) FROM processed", [], |r| r.get(0))
        .expect("count");
    assert_eq!(processed, 1);
}

#[test]
fn a_version_2_database_gains_the_processed_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.db");
    {
        // The version 2 schema: everything but the processed index.
        let conn = Connection::open(&path).expect("open");
        let v2: String = SCHEMA
            .split("CREATE TABLE IF NOT EXISTS forwarded_lots")
            .next()
            .expect("v2 part")
            .to_owned();
        conn.execute_batch(&v2).expect("v2 schema");
        conn.execute_batch(
            "INSERT INTO processed (spool_id, digest, kind, outcome, mail_from, subject,
                summary, at) VALUES ('old', 'd', 'invoice', 'processed', 'ps@x', 's', '{}', 0);
             PRAGMA user_version = 2;",
        )
        .expect("v2 rows");
        let tables: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('forwarded_lots', 'compostages')",
                [],
                |r| r.get(0),
            )
            .expect("tables");
        assert_eq!(tables, 0, "the fixture is a version 2 database");
    }
    let mut s = State::open(&path).expect("migrate");
    let version: i64 = s
        .conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("version");
    assert_eq!(version, SCHEMA_VERSION);
    assert!(s.is_processed("old").expect("old row kept"));
    assert_eq!(
        s.commit(&claiming("new", &["h"], Some(("C", "f"))))
            .expect("commit"),
        Commit::Recorded
    );
    assert!(s.forwarded_lot("h").expect("lookup").is_some());
    drop(s);
    let mut s = State::open(&path).expect("reopen");
    assert_eq!(
        s.commit(&claiming("again", &["h"], None)).expect("commit"),
        Commit::Conflict
    );
}

#[test]
fn quarantine_round_trip_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.db");
    {
        let mut s = State::open(&path).expect("open");
        s.commit(&processed("q", 1, true)).expect("commit");
    }
    let s = State::open(&path).expect("reopen");
    let list = s.quarantine_list(false).expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].code, "unknown_sender");
    assert_eq!(list[0].bytes, 3);
    let QuarantinedMessage { row, raw, summary } =
        s.quarantine_get(list[0].id).expect("get").expect("exists");
    assert_eq!(row.rcpt, vec!["oct@oct".to_string()]);
    assert_eq!(raw, b"raw");
    assert_eq!(summary["lots"], 1);
    assert!(s.quarantine_mark_retried(row.id).expect("mark"));
    assert!(!s.quarantine_mark_retried(row.id).expect("mark twice"));
    assert!(s.quarantine_list(false).expect("list").is_empty());
    assert_eq!(s.quarantine_list(true).expect("list").len(), 1);
}

/// An operator's drop removes the content, keeps the row with the reason, and the message can
/// then be neither retried nor dropped again; a message being retried is not dropped.
#[test]
fn quarantine_drop_keeps_the_reason_and_ends_the_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = State::open(&dir.path().join("s.db")).expect("open");
    s.commit(&processed("q", 1, true)).expect("commit");
    s.commit(&processed("r", 1, true)).expect("commit");
    let list = s.quarantine_list(false).expect("list");
    let (first, second) = (list[0].id, list[1].id);
    let dropped = s
        .quarantine_drop(first, "junk from a test host", 1_000)
        .expect("drop")
        .expect("held");
    assert_eq!(
        (dropped.id, dropped.bytes, dropped.cause),
        (first, 3, PurgeCause::Dropped)
    );
    let record = s.quarantine_purge_record(first).expect("record").expect("kept");
    assert_eq!(record.cause, "dropped: junk from a test host");
    assert_eq!((record.bytes, record.at), (3, 1_000));
    let QuarantinedMessage { row, raw, .. } = s.quarantine_get(first).expect("get").expect("row kept");
    assert_eq!((row.state.as_str(), raw.len()), ("purged", 0));
    assert!(s.quarantine_drop(first, "again", 1_001).expect("drop").is_none());
    assert!(!s.quarantine_request_retry(first).expect("retry"));
    assert!(s.quarantine_request_retry(second).expect("retry"));
    assert!(
        s.quarantine_drop(second, "while retried", 1_002)
            .expect("drop")
            .is_none()
    );
    assert!(s.quarantine_drop(999, "unknown", 1_003).expect("drop").is_none());
}

#[test]
fn sequences_cycle_and_own_lots() {
    let block = |b: CompostageBlock| (b.second, b.first);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = State::open(&dir.path().join("s.db")).expect("open");
    assert_eq!(s.next_sequence("lot", 2).expect("seq"), 1);
    assert_eq!(s.next_sequence("lot", 2).expect("seq"), 2);
    assert_eq!(s.next_sequence("lot", 2).expect("seq"), 1);
    assert_eq!(s.reserve_sequence("f", 10, 25).expect("block"), 1);
    assert_eq!(s.reserve_sequence("f", 10, 25).expect("block"), 11);
    // A block never wraps: 21..30 would pass 25, so it starts again at 1.
    assert_eq!(s.reserve_sequence("f", 10, 25).expect("block"), 1);
    assert_eq!(block(s.reserve_compostage(10, 1000).expect("c")), (1000, 0));
    assert_eq!(block(s.reserve_compostage(10, 1000).expect("c")), (1000, 10));
    // The clock went back: stay on the last second, keep counting.
    assert_eq!(block(s.reserve_compostage(5, 900).expect("c")), (1000, 20));
    assert_eq!(block(s.reserve_compostage(5, 1001).expect("c")), (1001, 0));
    // Counter exhausted within a second: next second.
    s.conn
        .execute("UPDATE compostage_state SET counter = 99995 WHERE id = 1", [])
        .expect("set");
    assert_eq!(block(s.reserve_compostage(10, 1001).expect("c")), (1002, 0));
    let mut p = processed("o", 0, false);
    p.own_lots.push(OwnLot {
        lot_number: "001".into(),
        lot_date: "261126".into(),
        file_id: "000042".into(),
        organisation: "0123456789".into(),
        message_id: "<m@oct>".into(),
    });
    s.commit(&p).expect("commit");
    assert!(s.is_own_lot("001", "261126", "000042").expect("lookup"));
    assert!(s.is_own_lot("001", "261126", "").expect("lookup"));
    assert!(!s.is_own_lot("001", "261126", "000041").expect("other file"));
    assert!(!s.is_own_lot("002", "261126", "000042").expect("lookup"));
    assert!(s.record_own_arl("001", "261126", "positive", "").expect("arl"));
    assert!(!s.record_own_arl("009", "261126", "positive", "").expect("arl"));
    assert_eq!(
        s.own_lot_arl("001", "261126").expect("arl"),
        Some(OwnLotArl {
            status: Some("positive".into()),
            detail: Some(String::new())
        })
    );
    let c = s.counters().expect("counters");
    assert_eq!((c.own_lots, c.own_lots_acknowledged), (1, 1));
    let v = s
        .update_value("c", |cur| {
            assert!(cur.is_none());
            ("7".into(), 7)
        })
        .expect("update");
    assert_eq!(v, 7);
    s.update_value("c", |cur| {
        assert_eq!(cur, Some("7"));
        ("8".into(), ())
    })
    .expect("update");
}

#[test]
fn a_refused_login_keeps_the_row_pending_and_marked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = State::open(&dir.path().join("s.db")).expect("open");
    s.commit(&processed("a", 1, false)).expect("commit");
    let now = now_secs();
    let id = s.claim_due_batch(now, 1).expect("claim")[0].id;
    let row = |s: &State| {
        let r = s.undelivered(10).expect("undelivered").remove(0);
        (r.state, r.login_refused)
    };
    s.record_deliveries(&[(
        id,
        DeliveryOutcome::LoginRefused {
            at: now + 60,
            error: "relay refused the OCT's SMTP login: 535".into(),
        },
    )])
    .expect("record");
    assert_eq!(row(&s), (OutboxState::Pending, true));
    // Any other outcome clears the mark.
    s.record_deliveries(&[(
        id,
        DeliveryOutcome::Retry {
            at: now + 60,
            error: "451 later".into(),
        },
    )])
    .expect("record");
    assert_eq!(row(&s), (OutboxState::Pending, false));
}

/// Issue 14 point 4: a forward's origin is found from its outbox row, and the notice queued with
/// its failure is queued once however often the row fails (requeued by the operator).
#[test]
fn a_failed_forward_has_an_origin_and_its_notice_is_queued_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = State::open(&dir.path().join("s.db")).expect("open");
    let mut p = processed("a", 2, false);
    p.claims.lots.push(LotClaim {
        lot_hash: "h1".into(),
        ps_number: "123".into(),
        lot_number: "001".into(),
        lot_date: "260630".into(),
        file_id: "F1".into(),
        destination: "CPAM 751".into(),
        message_id: "<a.1@oct>".into(),
    });
    assert_eq!(s.commit(&p).expect("commit"), Commit::Recorded);
    let rows = s.claim_due_batch(now_secs(), 10).expect("due");
    let (art, forward) = (&rows[0], &rows[1]);
    assert_eq!(
        s.forward_origin(art.id).expect("origin"),
        None,
        "an ART is no forward"
    );
    let origin = s.forward_origin(forward.id).expect("origin").expect("a forward");
    assert_eq!(
        (
            origin.spool_id.as_str(),
            origin.mail_from.as_str(),
            origin.destination.as_str()
        ),
        ("a", "ps@x", "CPAM 751")
    );
    assert_eq!(origin.lots, vec![("001".to_owned(), "260630".to_owned())]);
    assert_eq!(origin.summary, serde_json::json!({"lots": 2}));
    let notice = Outgoing {
        message_id: "<a.1.failed@oct>".into(),
        kind: OutKind::Art,
        mail_from: "oct@oct".into(),
        rcpt: "ps@x".into(),
        raw: b"notice".to_vec(),
    };
    let failed = DeliveryOutcome::Failed {
        error: "550 no".into(),
    };
    for _ in 0..2 {
        s.record_deliveries_with_notices(&[(forward.id, failed.clone())], &[("a".into(), notice.clone())])
            .expect("record");
        s.requeue_failed().expect("requeue");
    }
    let arts: Vec<_> = s
        .outbox_ids()
        .expect("ids")
        .into_iter()
        .filter(|r| r.message_id == "<a.1.failed@oct>")
        .collect();
    assert_eq!(arts.len(), 1);
    assert_eq!(
        s.outbox_raw("<a.1.failed@oct>").expect("raw"),
        Some(b"notice".to_vec())
    );
}

/// Issue 14 point 2: queue actions apply only to rows in the states they name, and say why
/// otherwise (typed); an abandoned row that is not waiting rolls back the notices queued with it.
#[test]
fn queue_actions_are_typed_and_a_refused_abandon_records_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = State::open(&dir.path().join("s.db")).expect("open");
    s.commit(&processed("a", 1, false)).expect("commit");
    let id = s.queue_list().expect("list")[0].row.id;
    assert!(matches!(
        s.queue_hold(9999),
        Err(StoreError::NotFound { id: 9999, .. })
    ));
    s.queue_hold(id).expect("hold");
    assert!(
        s.claim_due_batch(now_secs() + 86_400, 10)
            .expect("claim")
            .is_empty()
    );
    assert!(matches!(
        s.queue_flush(Some(id), now_secs()),
        Err(StoreError::NotQueued { state, .. }) if state == "held"
    ));
    s.queue_release(id, now_secs()).expect("release");
    let claimed = s.claim_due_batch(now_secs(), 10).expect("claim");
    assert_eq!(claimed.len(), 1);
    // Being sent: neither held nor abandoned, and the notice with the abandon is not queued.
    assert!(matches!(s.queue_hold(id), Err(StoreError::NotQueued { .. })));
    let before = s.outbox_ids().expect("ids").len();
    let notice = processed("b", 1, false).outgoing.remove(0);
    let abandon = DeliveryOutcome::Abandoned { reason: "r".into() };
    assert!(matches!(
        s.record_deliveries_with_notices(&[(id, abandon.clone())], &[("a".into(), notice)]),
        Err(StoreError::NotQueued { state, .. }) if state == "sending"
    ));
    assert_eq!(s.outbox_ids().expect("ids").len(), before);
    s.unclaim(&[id]).expect("unclaim");
    s.record_deliveries(&[(id, abandon)]).expect("abandon");
    let row = s.queue_get(id).expect("get").expect("kept");
    assert_eq!(
        (row.row.state, row.abandoned_reason.as_deref()),
        (OutboxState::Deleted, Some("r"))
    );
    assert!(s.queue_list().expect("list").is_empty());
    assert!(s.undelivered(10).expect("undelivered").is_empty());
}
