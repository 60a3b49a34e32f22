//! Load generator for the SMTP ingress, run by `scripts/bench/ingest.sh`.
//!
//! Sends N messages of about 100 KB over a few concurrent pipelining SMTP connections, first
//! to our ingress (started in this process, durable spool in a temporary directory on the
//! same file system as the working tree), then, when `SVOCT_BENCH_EXIM=host:port` is set, to
//! that server. Prints messages/s for each and the ratio. Environment:
//! `SVOCT_BENCH_N` (default 1000), `SVOCT_BENCH_CONC` (4), `SVOCT_BENCH_SIZE` (100000),
//! `SVOCT_BENCH_SPOOL_PARENT` (directory for the spool; default the system temp dir),
//! `SVOCT_BENCH_EXIM_MAILDIR` (Exim's Maildir `new/`, to also time end-to-end delivery).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use svoct_oct::inbound::listener::{Ingress, IngressConfig, RateLimit};
use svoct_oct::inbound::session::{Recipients, SessionConfig};
use svoct_store::spool::Spool;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A MIME message with one base64 attachment of about `size` octets, like a single file of
/// ~50 invoices once encrypted and encoded.
fn message(size: usize) -> Vec<u8> {
    let mut m = b"From: ps@bench.test\r\nTo: oct@bench.test\r\nSubject: IRIS/123456789/1\r\n\
MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n\
Content-Transfer-Encoding: base64\r\n\r\n"
        .to_vec();
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x: u32 = 0x1234_5678;
    while m.len() < size {
        for _ in 0..76 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            m.push(B64[(x % 64) as usize]);
        }
        m.extend_from_slice(b"\r\n");
    }
    m
}

async fn read_reply(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> std::io::Result<u16> {
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0));
        }
    }
}

fn expect(code: u16, want: u16, what: &str) -> std::io::Result<()> {
    if code == want {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("{what}: got {code}, want {want}")))
    }
}

/// One client connection sending messages while the shared counter allows.
async fn client(addr: SocketAddr, body: Arc<Vec<u8>>, left: Arc<AtomicUsize>) -> std::io::Result<usize> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::with_capacity(16 * 1024, r);
    expect(read_reply(&mut r).await?, 220, "greeting")?;
    w.write_all(b"EHLO loadgen.bench.test\r\n").await?;
    expect(read_reply(&mut r).await?, 250, "EHLO")?;
    let mut sent = 0;
    let mut data = body.as_ref().clone();
    data.extend_from_slice(b".\r\n");
    while left
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
    {
        // PIPELINING (RFC 2920): MAIL, RCPT and DATA in one write.
        w.write_all(b"MAIL FROM:<ps@bench.test>\r\nRCPT TO:<oct@bench.test>\r\nDATA\r\n")
            .await?;
        expect(read_reply(&mut r).await?, 250, "MAIL")?;
        expect(read_reply(&mut r).await?, 250, "RCPT")?;
        expect(read_reply(&mut r).await?, 354, "DATA")?;
        w.write_all(&data).await?;
        expect(read_reply(&mut r).await?, 250, "end of data")?;
        sent += 1;
    }
    w.write_all(b"QUIT\r\n").await?;
    let _ = read_reply(&mut r).await;
    Ok(sent)
}

/// Sends `n` messages over `conc` connections; returns the elapsed time.
async fn run(addr: SocketAddr, n: usize, conc: usize, body: Arc<Vec<u8>>) -> Duration {
    let left = Arc::new(AtomicUsize::new(n));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        tasks.push(tokio::spawn(client(addr, body.clone(), left.clone())));
    }
    let mut total = 0;
    for t in tasks {
        match t.await {
            Ok(Ok(k)) => total += k,
            Ok(Err(e)) => panic!("client failed against {addr}: {e}"),
            Err(e) => panic!("client task: {e}"),
        }
    }
    assert_eq!(total, n, "not every message was accepted by {addr}");
    start.elapsed()
}

fn count_files(dir: &PathBuf) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

fn main() {
    // `cargo bench` passes `--bench`; this program has no criterion harness.
    let n: usize = env("SVOCT_BENCH_N", 1000);
    let conc: usize = env("SVOCT_BENCH_CONC", 4);
    let size: usize = env("SVOCT_BENCH_SIZE", 100_000);
    let exim: Option<SocketAddr> = std::env::var("SVOCT_BENCH_EXIM")
        .ok()
        .and_then(|s| s.parse().ok());
    let exim_maildir: Option<PathBuf> = std::env::var("SVOCT_BENCH_EXIM_MAILDIR").ok().map(PathBuf::from);
    let parent: PathBuf = std::env::var("SVOCT_BENCH_SPOOL_PARENT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    let wait_secs: u64 = env("SVOCT_BENCH_EXIM_WAIT", 300);
    let body = Arc::new(message(size));
    println!(
        "ingest: {n} messages of {} bytes over {conc} connections",
        body.len()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let dir = tempfile::Builder::new()
            .prefix("svoct-bench-spool-")
            .tempdir_in(&parent)
            .expect("spool dir");
        let spool = Arc::new(Spool::open(dir.path()).expect("spool"));
        let config = IngressConfig {
            session: SessionConfig {
                max_message_size: 10 * 1024 * 1024,
                recipients: Recipients::Only(vec!["oct@bench.test".into()]),
                ..SessionConfig::default()
            },
            rate: RateLimit {
                burst: 10_000,
                per_second: 10_000.0,
            },
            ..IngressConfig::default()
        };
        let handle = Ingress::bind("127.0.0.1:0".parse().expect("addr"), config, spool.clone())
            .await
            .expect("bind");
        let ours = run(handle.local_addr(), n, conc, body.clone()).await;
        let stored = spool.list().expect("list").len();
        handle.shutdown().await;
        assert_eq!(stored, n, "spool does not hold every message");
        let ours_rate = n as f64 / ours.as_secs_f64();
        println!(
            "svoct ingress (fsync spool): {n} messages in {:.2} s = {ours_rate:.0} msg/s ({:.1} MB/s)",
            ours.as_secs_f64(),
            ours_rate * body.len() as f64 / 1e6
        );
        if let Some(addr) = exim {
            let before = exim_maildir.as_ref().map(count_files).unwrap_or(0);
            let t = run(addr, n, conc, body.clone()).await;
            let rate = n as f64 / t.as_secs_f64();
            println!(
                "exim (accepted, 250 received): {n} messages in {:.2} s = {rate:.0} msg/s",
                t.as_secs_f64()
            );
            if let Some(md) = &exim_maildir {
                let start = Instant::now();
                loop {
                    let delivered = count_files(md).saturating_sub(before);
                    if delivered >= n || start.elapsed() > Duration::from_secs(wait_secs) {
                        let total = t + start.elapsed();
                        println!(
                            "exim (delivered to Maildir): {delivered}/{n} in {:.2} s = {:.0} msg/s",
                            total.as_secs_f64(),
                            delivered as f64 / total.as_secs_f64()
                        );
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            println!("ratio svoct/exim (acceptance): {:.2}", ours_rate / rate);
        }
    });
}
