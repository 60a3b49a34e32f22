//! The compostage allocator: unique and increasing across threads, processes, clock jumps.

use std::collections::HashSet;
use std::process::Command;

use proptest::prelude::*;
use svoct_store::Store;

/// 2026-11-26 05:43:27 UTC.
const T0: i64 = 1_795_671_807;

fn assert_strictly_increasing(stamps: &[String]) {
    for w in stamps.windows(2) {
        assert!(w[0] < w[1], "{} then {}", w[0], w[1]);
    }
}

#[test]
fn sequence_with_hand_computed_values() {
    let s = Store::open_in_memory().unwrap();
    let c = s.compostage();
    assert_eq!(c.last().unwrap(), None);
    assert_eq!(c.next_at(T0).unwrap(), "2026112605432700000");
    assert_eq!(c.next_at(T0).unwrap(), "2026112605432700001");
    assert_eq!(c.next_at(T0 + 1).unwrap(), "2026112605432800000");
    // The clock goes back an hour: the stamp does not.
    assert_eq!(c.next_at(T0 - 3600).unwrap(), "2026112605432800001");
    assert_eq!(c.last().unwrap().as_deref(), Some("2026112605432800001"));
}

#[test]
fn counter_overflow_moves_to_the_next_second() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let s = Store::open(&path).unwrap();
    s.compostage().next_at(T0).unwrap();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("UPDATE compostage_state SET counter = 99998", [])
        .unwrap();
    assert_eq!(s.compostage().next_at(T0).unwrap(), "2026112605432799999");
    assert_eq!(s.compostage().next_at(T0).unwrap(), "2026112605432800000");
    assert_eq!(s.compostage().next_at(T0).unwrap(), "2026112605432800001");
}

#[test]
fn batch_allocation_continues_the_sequence() {
    let s = Store::open_in_memory().unwrap();
    let c = s.compostage();
    assert_eq!(c.next_at(T0).unwrap(), "2026112605432700000");
    assert_eq!(
        c.next_many_at(T0, 3).unwrap(),
        vec![
            "2026112605432700001",
            "2026112605432700002",
            "2026112605432700003"
        ]
    );
    assert_eq!(c.next_at(T0).unwrap(), "2026112605432700004");
    assert!(c.next_many_at(T0, 0).unwrap().is_empty());
    assert_eq!(c.next_at(T0).unwrap(), "2026112605432700005");
    // A batch crossing the counter's end moves to the next second.
    let batch = c.next_many_at(T0, 100_000).unwrap();
    assert_eq!(batch.last().unwrap(), "2026112605432800005");
}

#[test]
fn state_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let a = Store::open(&path).unwrap().compostage().next_at(T0).unwrap();
    let b = Store::open(&path).unwrap().compostage().next_at(T0).unwrap();
    assert_eq!(a, "2026112605432700000");
    assert_eq!(b, "2026112605432700001");
}

#[test]
fn threads_with_their_own_connections_never_collide() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    drop(Store::open(&path).unwrap());
    // Start near the counter's end so that the threads also race through an overflow.
    {
        let s = Store::open(&path).unwrap();
        s.compostage().next_at(T0).unwrap();
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute("UPDATE compostage_state SET counter = 99900", [])
            .unwrap();
    }
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || {
                let s = Store::open(&path).unwrap();
                (0..150)
                    .map(|_| s.compostage().next_at(T0).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all = HashSet::new();
    for h in handles {
        let stamps = h.join().unwrap();
        assert_strictly_increasing(&stamps);
        for st in stamps {
            assert_eq!(st.len(), 19);
            assert!(all.insert(st.clone()), "duplicate {st}");
        }
    }
    assert_eq!(all.len(), 600);
    // 99901..=99999 in T0 (99 stamps), then 501 in T0+1.
    assert!(all.contains("2026112605432799999"));
    assert!(all.contains("2026112605432800500"));
    assert!(!all.contains("2026112605432800501"));
}

/// The child half of `processes_sharing_the_database_never_collide`: allocates `n` stamps from
/// the store at `db` and prints them.
fn child_process_allocates(db: &str, n: &str) {
    let s = Store::open(db).unwrap();
    for _ in 0..n.parse::<usize>().unwrap() {
        println!("STAMP {}", s.compostage().next().unwrap());
    }
}

/// The children are this same test, re-executed by name with `SVOCT_COMPOSTAGE_DB` and
/// `SVOCT_COMPOSTAGE_N` set: a test binary can only run its own tests, and making the child the
/// parent test itself means no test returns without doing anything in a normal run.
#[test]
fn processes_sharing_the_database_never_collide() {
    if let (Ok(db), Ok(n)) = (
        std::env::var("SVOCT_COMPOSTAGE_DB"),
        std::env::var("SVOCT_COMPOSTAGE_N"),
    ) {
        return child_process_allocates(&db, &n);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    drop(Store::open(&path).unwrap());
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "processes_sharing_the_database_never_collide",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("SVOCT_COMPOSTAGE_DB", &path)
                .env("SVOCT_COMPOSTAGE_N", "100")
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut all = HashSet::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let stamps: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once("STAMP ").map(|(_, st)| st.to_owned()))
            .collect();
        assert_eq!(stamps.len(), 100);
        assert_strictly_increasing(&stamps);
        for st in stamps {
            assert!(all.insert(st.clone()), "duplicate {st}");
        }
    }
    assert_eq!(all.len(), 400);
}

proptest! {
    #[test]
    fn any_clock_sequence_gives_strictly_increasing_stamps(
        steps in proptest::collection::vec(-5i64..5, 1..200)
    ) {
        let s = Store::open_in_memory().unwrap();
        let mut clock = T0;
        let mut out = Vec::new();
        for d in steps {
            clock += d;
            let st = s.compostage().next_at(clock).unwrap();
            prop_assert_eq!(st.len(), 19);
            prop_assert!(st.bytes().all(|b| b.is_ascii_digit()));
            out.push(st);
        }
        for w in out.windows(2) {
            prop_assert!(w[0] < w[1]);
        }
    }
}
