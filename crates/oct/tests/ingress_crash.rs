//! Durable before acknowledged: the ingress process is killed (SIGKILL) while clients are
//! sending; every message that got its `250` must be in the spool, byte for byte, after restart.
//!
//! The ingress (and the worker of the second test) runs in a child process: each test re-executes
//! this test binary, asking for itself by name (`--exact`) with a role variable set
//! (`SVOCT_CRASH_CHILD_DIR`, `SVOCT_CRASH_WORKER_DIR`); seeing the variable, the test plays the
//! child instead of the parent. A test binary can only run its own tests, so the child has to be
//! a test; making it the parent test itself means no test does nothing in a normal run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use svoct_oct::inbound::listener::{Ingress, IngressConfig};
use svoct_oct::inbound::session::Recipients;
use svoct_store::spool::{Spool, SpoolId};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const CHILD_ENV: &str = "SVOCT_CRASH_CHILD_DIR";

/// The child half of `sigkill_during_ingest_loses_no_acknowledged_message`: serves the ingress
/// on the spool in `dir` and writes its port to `dir/port`, until killed.
async fn child_server(dir: PathBuf) {
    let spool = Arc::new(Spool::open(dir.join("spool")).unwrap());
    let mut config = IngressConfig::default();
    config.session.recipients = Recipients::Only(vec!["oct@example.net".into()]);
    let handle = Ingress::bind("127.0.0.1:0".parse().unwrap(), config, spool)
        .await
        .unwrap();
    let port_file = dir.join("port");
    std::fs::write(dir.join("port.tmp"), handle.local_addr().port().to_string()).unwrap();
    std::fs::rename(dir.join("port.tmp"), &port_file).unwrap();
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

fn spawn_child(dir: &Path) -> (Child, u16) {
    let _ = std::fs::remove_file(dir.join("port"));
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigkill_during_ingest_loses_no_acknowledged_message",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir)
        .spawn()
        .unwrap();
    for _ in 0..1000 {
        if let Ok(p) = std::fs::read_to_string(dir.join("port")) {
            return (child, p.trim().parse().unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("child server did not start");
}

type Acks = Arc<Mutex<Vec<(SpoolId, Vec<u8>)>>>;

/// Sends messages until the connection breaks; records each acknowledged one.
async fn client(port: u16, client_no: usize, acks: Acks) {
    let Ok(stream) = TcpStream::connect(("127.0.0.1", port)).await else {
        return;
    };
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut line = String::new();
    let reply = async |r: &mut BufReader<_>, line: &mut String| -> Option<String> {
        loop {
            line.clear();
            if r.read_line(line).await.ok()? == 0 {
                return None;
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return Some(line.clone());
            }
        }
    };
    if reply(&mut r, &mut line).await.is_none() || w.write_all(b"EHLO crash\r\n").await.is_err() {
        return;
    }
    if reply(&mut r, &mut line).await.is_none() {
        return;
    }
    for seq in 0.. {
        // Distinct bodies of varied sizes (up to ~300 KB) so that kills land mid-write too.
        let mut body = format!("Subject: c{client_no} m{seq}\r\n\r\n").into_bytes();
        let lines = (seq * 7919 + client_no * 104_729) % 4000;
        for i in 0..lines {
            body.extend_from_slice(format!("{client_no}-{seq}-{i:08} payload line\r\n").as_bytes());
        }
        let cmds = b"MAIL FROM:<ps@example.org>\r\nRCPT TO:<oct@example.net>\r\nDATA\r\n";
        if w.write_all(cmds).await.is_err() {
            return;
        }
        for _ in 0..3 {
            if reply(&mut r, &mut line).await.is_none() {
                return;
            }
        }
        if w.write_all(&body).await.is_err() || w.write_all(b".\r\n").await.is_err() {
            return;
        }
        let Some(done) = reply(&mut r, &mut line).await else {
            return;
        };
        let Some(id) = done.trim_end().strip_prefix("250 2.0.0 OK queued as ") else {
            panic!("unexpected reply {done:?}");
        };
        acks.lock()
            .unwrap()
            .push((SpoolId::parse(id).expect("spool id in reply"), body));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_ingest_loses_no_acknowledged_message() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        return child_server(dir.into()).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let acks: Acks = Arc::new(Mutex::new(Vec::new()));
    for round in 0..3usize {
        let (mut child, port) = spawn_child(dir.path());
        let before = acks.lock().unwrap().len();
        let clients: Vec<_> = (0..3)
            .map(|c| tokio::spawn(client(port, round * 10 + c, acks.clone())))
            .collect();
        // Kill once some messages of this round were acknowledged (clients are mid-stream).
        let target = before + 5 + round * 7;
        while acks.lock().unwrap().len() < target {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        for c in clients {
            c.await.unwrap();
        }
        // After the kill: every acknowledged message is there, exactly.
        let spool = Spool::open(dir.path().join("spool")).unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path().join("spool/tmp")).unwrap().count(),
            0,
            "unacknowledged partial writes are removed at open"
        );
        let acked = acks.lock().unwrap().clone();
        for (id, body) in &acked {
            let entry = spool
                .get(*id)
                .unwrap_or_else(|e| panic!("round {round}: {id} lost: {e}"));
            assert_eq!(&entry.data, body, "round {round}: {id} differs");
        }
        // Nothing in the spool is unreadable (no torn entry reached new/).
        for l in spool.list().unwrap() {
            spool.get(l.id).unwrap();
        }
        assert!(spool.list().unwrap().len() >= acked.len());
        drop(spool);
    }
}

const WORKER_ENV: &str = "SVOCT_CRASH_WORKER_DIR";

/// The child half of `sigkill_during_processing_processes_each_message_exactly_once`: a
/// pipeline-like worker over the spool in `dir`. Its commit is keyed by the spool id
/// (`ledger/<id>` created with `create_new`), which is what makes re-delivery after a kill
/// harmless. Returns when the spool is empty.
fn worker_child(dir: PathBuf) {
    let spool = Spool::open(dir.join("spool")).unwrap();
    let ledger = dir.join("ledger");
    while let Some(entry) = spool.claim_next().unwrap() {
        use std::io::Write;
        // Every delivery attempt is logged, to show that re-delivery does happen.
        let mut attempts = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(dir.join("attempts"))
            .unwrap();
        writeln!(attempts, "{}", entry.id).unwrap();
        attempts.sync_data().unwrap();
        // The commit must be atomic: a kill between creating the ledger file and writing it
        // would otherwise leave an empty entry that the next run takes as committed. Write a
        // private temporary file, then link it into place (fails if the entry exists).
        let tmp = dir.join(format!("ledger-tmp-{}", entry.id));
        let mut f = std::fs::File::create(&tmp).unwrap();
        f.write_all(&entry.data).unwrap();
        f.sync_data().unwrap();
        match std::fs::hard_link(&tmp, ledger.join(entry.id.to_string())) {
            Ok(()) => std::fs::File::open(&ledger).unwrap().sync_all().unwrap(),
            // Already committed by a run that was killed before `complete`.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => panic!("ledger: {e}"),
        }
        let _ = std::fs::remove_file(&tmp);
        spool.complete(entry.id).unwrap();
    }
}

#[test]
fn sigkill_during_processing_processes_each_message_exactly_once() {
    if let Some(dir) = std::env::var_os(WORKER_ENV) {
        return worker_child(dir.into());
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("ledger")).unwrap();
    let mut expected = std::collections::BTreeMap::new();
    {
        let spool = Spool::open(dir.path().join("spool")).unwrap();
        for i in 0..150u32 {
            let body = format!("message {i}\r\n").repeat(1 + (i as usize * 37) % 200);
            let id = spool
                .put(&svoct_store::spool::ReceivedEnvelope::default(), body.as_bytes())
                .unwrap();
            expected.insert(id, body.into_bytes());
        }
    }
    let mut kills = 0;
    let mut finished = false;
    for round in 0..300u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "sigkill_during_processing_processes_each_message_exactly_once",
                "--test-threads=1",
                "-q",
            ])
            .env(WORKER_ENV, dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Kill after a varying delay; every few rounds let it run to the end.
        std::thread::sleep(Duration::from_millis(15 + (round * 37) % 90));
        if round % 10 != 9 && child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        let status = child.wait().unwrap();
        if status.success() && round % 10 == 9 {
            let spool = Spool::open(dir.path().join("spool")).unwrap();
            if spool.list().unwrap().is_empty() {
                finished = true;
                break;
            }
        }
    }
    assert!(finished, "worker never drained the spool");
    assert!(kills > 0);
    // Exactly once: one ledger entry per spooled message, with its exact content.
    let ledger: Vec<_> = std::fs::read_dir(dir.path().join("ledger"))
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    assert_eq!(ledger.len(), expected.len());
    for e in ledger {
        let id = SpoolId::parse(e.file_name().to_str().unwrap()).unwrap();
        assert_eq!(&std::fs::read(e.path()).unwrap(), &expected[&id], "{id}");
    }
    let attempts = std::fs::read_to_string(dir.path().join("attempts")).unwrap();
    eprintln!(
        "kills {kills}, attempts {}, messages {}",
        attempts.lines().count(),
        expected.len()
    );
    assert!(attempts.lines().count() >= expected.len());
}
