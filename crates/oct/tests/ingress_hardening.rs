//! The ingress under hostile senders (issue 10, items 3, 4, 5 and the limits of 9), over real
//! TCP on loopback:
//! - a relay attempt to the real `svoct oct serve` gets `550`;
//! - slow senders holding every slot of the real `svoct oct serve` are cut, and a good client
//!   gets through while they try;
//! - many connections streaming large messages into the ingress (in a child process, so that
//!   its peak resident memory, `VmHWM`, is the ingress's alone) keep memory flat;
//! - the limits the documentation states are the defaults the code applies.
//!
//! The memory test sizes itself from `SVOCT_MEM_CONNS` (default 8) and `SVOCT_MEM_MB` (default
//! 24): `scripts/bench/ingress_memory.sh` runs it with 64 connections × 60 MB.

mod pipeline_common;

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pipeline_common::{OCT_ADDRESS, PS_ADDRESS, World, svoct_binary};
use svoct_oct::config::IngressSettings;
use svoct_oct::inbound::listener::Ingress;
use svoct_store::spool::Spool;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as TokioBufReader};
use tokio::net::{TcpSocket, TcpStream};

/// A running `svoct oct serve`, killed when dropped.
struct Server {
    child: Child,
}

impl Server {
    fn start(config: &Path) -> (Server, u16) {
        let mut child = Command::new(svoct_binary())
            .args(["--log", "warn", "oct", "serve", "--config"])
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn svoct oct serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        (Server { child }, port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on: the service's outgoing relay (unused by these tests).
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Connects to the ingress on 127.0.0.1 from the loopback address `src` (all of 127/8 is
/// local on Linux): the per-address connection cap applies per source address.
async fn connect_from(src: Ipv4Addr, port: u16) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(src), 0))?;
    socket.connect(SocketAddr::from(([127, 0, 0, 1], port))).await
}

type Reader = TokioBufReader<tokio::net::tcp::OwnedReadHalf>;

/// Reads one complete reply (its last line); `None` when the server closed.
async fn reply(r: &mut Reader) -> Option<String> {
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            return Some(line.trim_end().to_owned());
        }
    }
}

async fn expect(r: &mut Reader, code: &str, what: &str) {
    let got = reply(r).await;
    assert!(
        got.as_deref().is_some_and(|l| l.starts_with(code)),
        "{what}: expected {code}, got {got:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_attempt_to_the_real_service_gets_550() {
    let world = World::new(dead_port(), "");
    let (_server, port) = Server::start(&world.config_path);
    let (r, mut w) = connect_from(Ipv4Addr::LOCALHOST, port)
        .await
        .unwrap()
        .into_split();
    let mut r = TokioBufReader::new(r);
    expect(&mut r, "220", "greeting").await;
    w.write_all(format!("EHLO ps.example\r\nMAIL FROM:<{PS_ADDRESS}>\r\n").as_bytes())
        .await
        .unwrap();
    expect(&mut r, "250", "EHLO").await;
    expect(&mut r, "250", "MAIL").await;
    for victim in [
        "victim@gmail.com",
        "oct@oct.example.evil.com",
        "oct%oct.example@gmail.com",
    ] {
        w.write_all(format!("RCPT TO:<{victim}>\r\n").as_bytes())
            .await
            .unwrap();
        expect(&mut r, "550 5.7.1", victim).await;
    }
    // The OCT's own address, in any case, is served.
    let own = OCT_ADDRESS.to_ascii_uppercase();
    w.write_all(format!("RCPT TO:<{own}>\r\nQUIT\r\n").as_bytes())
        .await
        .unwrap();
    expect(&mut r, "250", "own address").await;
    expect(&mut r, "221", "QUIT").await;
}

/// How a slow client's connection ended.
#[derive(Debug, PartialEq)]
enum SlowEnd {
    /// The server answered this (a `421`) and closed.
    Cut(String),
    /// The server refused the connection at once (all slots taken).
    Refused(String),
    /// Still open when the client gave up.
    StillHeld,
}

/// Takes a slot and holds it by sending one byte every 2 s: inside a command line, or inside
/// DATA when `in_data`. `ready` is signalled once the slot is held (after `220`, or `354`).
async fn slow_client(
    src: Ipv4Addr,
    port: u16,
    in_data: bool,
    ready: tokio::sync::mpsc::Sender<()>,
) -> SlowEnd {
    let (r, mut w) = connect_from(src, port).await.expect("connect").into_split();
    let mut r = TokioBufReader::new(r);
    let greeting = reply(&mut r).await.unwrap_or_default();
    if !greeting.starts_with("220") {
        return SlowEnd::Refused(greeting);
    }
    if in_data {
        let cmds = format!("EHLO slow\r\nMAIL FROM:<{PS_ADDRESS}>\r\nRCPT TO:<{OCT_ADDRESS}>\r\nDATA\r\n");
        w.write_all(cmds.as_bytes()).await.expect("commands");
        for code in ["250", "250", "250", "354"] {
            expect(&mut r, code, "slow client set-up").await;
        }
    }
    let _ = ready.send(()).await;
    let give_up = Instant::now() + Duration::from_secs(60);
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            got = reply(&mut r) => return SlowEnd::Cut(got.unwrap_or_default()),
            _ = tick.tick() => {
                if Instant::now() > give_up {
                    return SlowEnd::StillHeld;
                }
                // A write error means the server closed: the next read says how.
                let _ = w.write_all(b"x").await;
            }
        }
    }
}

/// Connects from `src`; if greeted with `220`, sends one small message and returns the reply
/// to its end of DATA; otherwise returns the greeting (a `421`).
async fn good_client(src: Ipv4Addr, port: u16) -> String {
    let Ok(stream) = connect_from(src, port).await else {
        return "connect failed".to_owned();
    };
    let (r, mut w) = stream.into_split();
    let mut r = TokioBufReader::new(r);
    let greeting = reply(&mut r).await.unwrap_or_default();
    if !greeting.starts_with("220") {
        return greeting;
    }
    let tx = format!(
        "EHLO good\r\nMAIL FROM:<{PS_ADDRESS}>\r\nRCPT TO:<{OCT_ADDRESS}>\r\nDATA\r\n\
Subject: good\r\n\r\nhello\r\n.\r\nQUIT\r\n"
    );
    w.write_all(tx.as_bytes()).await.expect("transaction");
    for code in ["250", "250", "250", "354"] {
        expect(&mut r, code, "good client").await;
    }
    reply(&mut r).await.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_senders_holding_every_slot_do_not_lock_out_a_good_client() {
    let defaults = IngressSettings::default();
    let world = World::new(dead_port(), "");
    let (_server, port) = Server::start(&world.config_path);
    // Every slot, taken from as many addresses as the per-address cap requires; half trickle
    // a command line, half trickle DATA.
    let per_ip = defaults.max_connections_per_ip;
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(defaults.max_connections);
    let mut slow = Vec::new();
    for i in 0..defaults.max_connections {
        let src = Ipv4Addr::new(127, 0, 1, u8::try_from(10 + i / per_ip).unwrap());
        slow.push(tokio::spawn(slow_client(src, port, i % 2 == 1, ready_tx.clone())));
    }
    drop(ready_tx);
    for _ in 0..defaults.max_connections {
        ready_rx.recv().await.expect("every slow client holds its slot");
    }
    let good_src = Ipv4Addr::new(127, 0, 2, 1);
    let first = good_client(good_src, port).await;
    assert!(first.starts_with("421 4.7.0"), "all slots are held: {first}");
    // The good client retries as a real one would, and gives up after 30 s.
    let start = Instant::now();
    let served = loop {
        let got = good_client(good_src, port).await;
        if got.starts_with("250") || start.elapsed() > Duration::from_secs(30) {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!(
        "good client served after {:.1} s: {served}",
        start.elapsed().as_secs_f64()
    );
    assert!(
        served.starts_with("250 2.0.0"),
        "good client not served within 30 s: {served}"
    );
    for s in slow {
        let end = s.await.unwrap();
        assert!(
            matches!(&end, SlowEnd::Cut(l) if l.starts_with("421 4.4.2")),
            "a slow client must be cut with a timeout: {end:?}"
        );
    }
    // The cut-off DATA phases left nothing behind.
    let tmp = world.dir.path().join("spool").join("tmp");
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "partial messages left in {tmp:?}"
    );
}

const MEM_CHILD_ENV: &str = "SVOCT_MEM_CHILD_DIR";

/// In a child process: serves the ingress configured exactly as `oct serve` does by default
/// on the spool in `$SVOCT_MEM_CHILD_DIR`, until killed. In a normal test run: does nothing.
#[test]
fn child_ingress() {
    let Ok(dir) = std::env::var(MEM_CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let spool = Arc::new(Spool::open(dir.join("spool")).unwrap());
        let config = IngressSettings::default().ingress_config("oct.test", vec!["oct@oct.test".into()]);
        let handle = Ingress::bind("127.0.0.1:0".parse().unwrap(), config, spool)
            .await
            .unwrap();
        std::fs::write(dir.join("port.tmp"), handle.local_addr().port().to_string()).unwrap();
        std::fs::rename(dir.join("port.tmp"), dir.join("port")).unwrap();
        loop {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    });
}

fn spawn_child(dir: &Path) -> (Child, u16) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_ingress", "--nocapture", "--test-threads=1"])
        .env(MEM_CHILD_ENV, dir)
        .stdout(Stdio::null())
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
    panic!("child ingress did not start");
}

/// `VmHWM` (peak resident set) of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc status")
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One MiB of base64-like lines (76 characters and CRLF), none starting with a dot.
fn block() -> Vec<u8> {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b = Vec::with_capacity(1 << 20);
    let mut x: u32 = 0x9e37_79b9;
    while b.len() + 78 <= 1 << 20 {
        for _ in 0..76 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            b.push(B64[(x % 64) as usize]);
        }
        b.extend_from_slice(b"\r\n");
    }
    b
}

/// Sends one message of `blocks` copies of `block` after a header; returns the final reply.
async fn send_large(src: Ipv4Addr, port: u16, n: usize, blocks: usize, block: Arc<Vec<u8>>) -> String {
    let (r, mut w) = connect_from(src, port).await.expect("connect").into_split();
    let mut r = TokioBufReader::new(r);
    expect(&mut r, "220", "greeting").await;
    let cmds = "EHLO big\r\nMAIL FROM:<ps@example.org>\r\nRCPT TO:<oct@oct.test>\r\nDATA\r\n";
    w.write_all(cmds.as_bytes()).await.unwrap();
    for code in ["250", "250", "250", "354"] {
        expect(&mut r, code, "large message set-up").await;
    }
    w.write_all(format!("Subject: big {n}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    for _ in 0..blocks {
        w.write_all(&block).await.unwrap();
    }
    w.write_all(b".\r\nQUIT\r\n").await.unwrap();
    let end = reply(&mut r).await.unwrap_or_default();
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest).await;
    end
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_flat_while_many_large_messages_stream_in() {
    let conns = env_or("SVOCT_MEM_CONNS", 8);
    let mb = env_or("SVOCT_MEM_MB", 24);
    let dir = tempfile::tempdir().unwrap();
    let (mut child, port) = spawn_child(dir.path());
    let block = Arc::new(block());
    let per_ip = IngressSettings::default().max_connections_per_ip;
    let started = Instant::now();
    let senders: Vec<_> = (0..conns)
        .map(|i| {
            let src = Ipv4Addr::new(127, 0, 3, u8::try_from(10 + i / per_ip).unwrap());
            tokio::spawn(send_large(src, port, i, mb, block.clone()))
        })
        .collect();
    for s in senders {
        let end = s.await.unwrap();
        assert!(end.starts_with("250 2.0.0"), "large message not stored: {end}");
    }
    let elapsed = started.elapsed();
    let peak_mib = peak_rss_kib(child.id()) / 1024;
    let _ = child.kill();
    let _ = child.wait();
    let total_mb = (conns * mb * block.len()) as f64 / 1e6;
    println!(
        "ingress peak RSS (VmHWM): {peak_mib} MiB with {conns} connections x {mb} MiB \
({total_mb:.0} MB in {:.1} s, {:.0} MB/s)",
        elapsed.as_secs_f64(),
        total_mb / elapsed.as_secs_f64()
    );
    // Every message is in the spool, whole: header plus exactly the content sent.
    let spool = Spool::open(dir.path().join("spool")).unwrap();
    let listing = spool.list().unwrap();
    assert_eq!(listing.len(), conns);
    for l in &listing {
        let content = (mb * block.len()) as u64;
        assert!(
            l.file_size > content && l.file_size < content + 1024,
            "entry {} has {} bytes for {content} of content",
            l.id,
            l.file_size
        );
    }
    // Held in memory, the messages alone would take conns x mb MiB.
    assert!(peak_mib < 100, "ingress peak RSS {peak_mib} MiB");
}

/// The limits table of `docs/oct-ingress.md` and the attacker's view in `docs/security.md`
/// state the defaults the code applies.
#[test]
fn documented_limits_are_the_defaults_applied() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let ingress_doc = std::fs::read_to_string(root.join("docs/oct-ingress.md")).unwrap();
    let config_doc = std::fs::read_to_string(root.join("docs/oct.md")).unwrap();
    // Prose is wrapped: compare with single spaces.
    let security_doc = std::fs::read_to_string(root.join("docs/security.md"))
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let d = IngressSettings::default();
    let table = serde_json::to_value(&d).unwrap();
    for (key, value) in table.as_object().unwrap() {
        if key == "listen" {
            continue;
        }
        let row = format!("| `{key}` | {value} |");
        assert!(
            ingress_doc.contains(&row),
            "docs/oct-ingress.md lacks the row {row:?}"
        );
        assert!(config_doc.contains(&row), "docs/oct.md lacks the row {row:?}");
    }
    for phrase in [
        format!("{} MiB per message", d.max_message_bytes >> 20),
        format!("{} connections at once", d.max_connections),
        format!("{} per address", d.max_connections_per_ip),
        format!("{} recipients", d.max_recipients),
        format!("{} s per command line", d.command_timeout_secs),
        format!(
            "{} s from the connection or the last message",
            d.transaction_timeout_secs
        ),
        format!("{} s of grace", d.data_grace_secs),
        format!("{} KiB/s", d.min_data_rate / 1024),
    ] {
        assert!(
            security_doc.contains(&phrase),
            "docs/security.md lacks {phrase:?}"
        );
    }
}
