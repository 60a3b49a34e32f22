//! The journal's invoice index and the file-number counter: the duplicate check agrees with a
//! plain scan of the journal, and two senders working at once on one store never share a file
//! name or a compostage. (The upgrade of an existing journal is tested in `svoct_store::journal`.)

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Barrier};

use proptest::prelude::*;
use svoct_formats::b2::synth::{SynthParams, generate_bytes};
use svoct_mail::transport::MemoryTransport;
use svoct_ps::Ps;
use svoct_ps::config::Config;
use svoct_ps::plan::LotFile;
use svoct_store::{Direction, NewEntry, Status, Store};
use svoct_testkit::ps_config;

fn oct_config(dir: &Path, keys: &common::Keys, option: &str) -> Config {
    let text =
        ps_config::base("oct", "ps.sqlite", 25) + &ps_config::oct_section(keys.oct_cert.display(), option);
    Config::load(&ps_config::write(dir, &text)).unwrap()
}

fn lots(seed: u64, invoices: usize, destinations: usize) -> LotFile {
    LotFile {
        name: format!("lots-{seed}.b2"),
        bytes: generate_bytes(&SynthParams {
            seed,
            invoices,
            lot_size: 4,
            destinations,
            ..SynthParams::default()
        })
        .unwrap(),
    }
}

fn entry(invoices: &[String]) -> NewEntry {
    NewEntry {
        direction: Direction::Out,
        profile: "FACTURE/SV/K".into(),
        subject: "SV140700/123456789/20261126000000000001/00001".into(),
        compostage: None,
        message_id: None,
        file_name: None,
        lots: Vec::new(),
        invoices: invoices.to_vec(),
        status: Status::Sent,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// The index answers what a scan of every entry answers, for numbers present and absent.
    #[test]
    fn invoice_index_agrees_with_a_scan(
        entries in prop::collection::vec(prop::collection::vec(0u8..40, 0..6), 0..20),
        probe in prop::collection::vec(0u8..50, 0..8),
    ) {
        let store = Store::open_in_memory().unwrap();
        let name = |n: u8| format!("{n:09}");
        for e in &entries {
            let invoices: Vec<String> = e.iter().map(|&n| name(n)).collect();
            store.journal().insert(&entry(&invoices)).unwrap();
        }
        let all = store.journal().recent(u32::MAX).unwrap();
        for &n in &probe {
            let mut expected: Vec<i64> = all
                .iter()
                .filter(|e| e.invoices.contains(&name(n)))
                .map(|e| e.id.0)
                .collect();
            expected.sort_unstable();
            let got: Vec<i64> = store.journal().by_invoice(&name(n)).unwrap().iter().map(|e| e.id.0).collect();
            prop_assert_eq!(got, expected);
        }
        let wanted: HashSet<String> = probe.iter().map(|&n| name(n)).collect();
        let mut expected: Vec<i64> = all
            .iter()
            .filter(|e| e.invoices.iter().any(|i| wanted.contains(i)))
            .map(|e| e.id.0)
            .collect();
        expected.sort_unstable();
        let got: Vec<i64> = store
            .journal()
            .carrying_any(wanted.iter().map(String::as_str))
            .unwrap()
            .iter()
            .map(|e| e.id.0)
            .collect();
        prop_assert_eq!(got, expected);
    }
}

#[test]
fn a_sending_is_refused_when_one_invoice_is_already_sent_and_accepted_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let keys = common::keys(dir.path());
    let ps = Ps::open(oct_config(dir.path(), &keys, "single")).unwrap();
    let t = MemoryTransport::new();
    let first = ps.send(&t, &[lots(7, 12, 1)], &mut |_| {}).unwrap();
    assert_eq!(first.len(), 1);
    // The same lots again: refused, naming the entry.
    let err = ps
        .send(&t, &[lots(7, 12, 1)], &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("journal entry {}", first[0].entry.0)),
        "{err}"
    );
    // Other invoices: accepted.
    assert_eq!(ps.send(&t, &[lots(8, 12, 1)], &mut |_| {}).unwrap().len(), 1);
    assert_eq!(t.sent().len(), 2);
}

/// Two senders (threads with their own `Ps` and store connection) plan and send at the same time,
/// round after round: every file name and every compostage differs.
#[test]
fn two_concurrent_senders_never_share_a_file_name_or_a_compostage() {
    const ROUNDS: u64 = 6;
    let dir = tempfile::tempdir().unwrap();
    let keys = common::keys(dir.path());
    let config = oct_config(dir.path(), &keys, "split");
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2u64)
        .map(|worker| {
            let config = config.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let ps = Ps::open(config).unwrap();
                let t = MemoryTransport::new();
                let mut out = Vec::new();
                for round in 0..ROUNDS {
                    let input = [lots(1000 + worker * 100 + round, 9, 3)];
                    barrier.wait();
                    let planned = ps.plan(&input).unwrap();
                    let names: Vec<String> = planned.iter().map(|p| p.file_id.clone()).collect();
                    barrier.wait();
                    let sent = ps.send_planned(&t, planned, &mut |_| {}).unwrap();
                    assert!(sent.iter().all(|s| s.status == Status::Sent));
                    out.extend(names.into_iter().zip(sent.into_iter().map(|s| s.compostage)));
                }
                out
            })
        })
        .collect();
    let all: Vec<(String, String)> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    // 3 destinations per sending: 3 files each.
    assert_eq!(all.len(), (2 * ROUNDS * 3) as usize);
    let names: HashSet<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    let compostages: HashSet<&str> = all.iter().map(|(_, c)| c.as_str()).collect();
    assert_eq!(names.len(), all.len(), "file names collide: {all:?}");
    assert_eq!(compostages.len(), all.len(), "compostages collide: {all:?}");

    // The journal agrees: one entry per file, each under its own file name.
    let store = Store::open(dir.path().join("ps.sqlite")).unwrap();
    let journal = store.journal().recent(u32::MAX).unwrap();
    assert_eq!(journal.len(), all.len());
    let journal_names: HashSet<String> = journal.iter().filter_map(|e| e.file_name.clone()).collect();
    let expected: HashSet<String> = names.iter().map(|n| format!("{n}.b2")).collect();
    assert_eq!(journal_names, expected);
}

/// Two processes' worth of senders (threads with their own `Ps`) send the *same* invoices at the
/// same instant, round after round: each round, one sends and the other is refused as a
/// duplicate (the store's sending lock keeps check and journaling of one sending together).
#[test]
fn the_same_invoices_sent_twice_at_the_same_instant_leave_once() {
    const ROUNDS: u64 = 12;
    let dir = tempfile::tempdir().unwrap();
    let keys = common::keys(dir.path());
    let config = oct_config(dir.path(), &keys, "single");
    let barrier = Arc::new(Barrier::new(2));
    // Opened here, so that a thread cannot fail before the barrier and leave the other waiting.
    let senders: Vec<Ps> = (0..2).map(|_| Ps::open(config.clone()).unwrap()).collect();
    let handles: Vec<_> = senders
        .into_iter()
        .map(|ps| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let t = MemoryTransport::new();
                let mut outcomes = Vec::new();
                for round in 0..ROUNDS {
                    let files = [lots(100 + round, 12, 1)];
                    barrier.wait();
                    outcomes.push(match ps.send(&t, &files, &mut |_| {}) {
                        Ok(sent) => Ok(sent.len()),
                        Err(e) => Err(e.to_string()),
                    });
                }
                (outcomes, t.sent().len())
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for round in 0..ROUNDS as usize {
        let sent: Vec<_> = results.iter().filter(|(o, _)| o[round].is_ok()).collect();
        assert_eq!(
            sent.len(),
            1,
            "round {round}: {:?}",
            results.iter().map(|(o, _)| &o[round]).collect::<Vec<_>>()
        );
        let refused = results.iter().find_map(|(o, _)| o[round].as_ref().err()).unwrap();
        assert!(refused.contains("already in journal entry"), "{refused}");
    }
    assert_eq!(results.iter().map(|(_, n)| n).sum::<usize>(), ROUNDS as usize);
}
