//! The SMTP ingress over real TCP on 127.0.0.1, against independent clients (Python's smtplib,
//! swaks) and raw sockets; each test then checks what the spool holds, byte for byte.
// The test marked `#[cfg(feature = "server-tests")]` needs swaks (scripts/setup.sh).

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use svoct_oct::inbound::listener::{Ingress, IngressConfig, IngressHandle, RateLimit, TlsFiles};
use svoct_oct::inbound::session::{Recipients, SessionConfig};
use svoct_store::spool::{Spool, SpoolEntry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Fixture {
    _dir: tempfile::TempDir,
    spool: Arc<Spool>,
    handle: IngressHandle,
}

fn config() -> IngressConfig {
    IngressConfig {
        session: SessionConfig {
            hostname: "oct.test".into(),
            max_message_size: 200_000,
            recipients: Recipients::Any,
            ..SessionConfig::default()
        },
        ..IngressConfig::default()
    }
}

async fn start(cfg: IngressConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path().join("spool")).unwrap());
    let handle = Ingress::bind("127.0.0.1:0".parse().unwrap(), cfg, spool.clone())
        .await
        .unwrap();
    Fixture {
        _dir: dir,
        spool,
        handle,
    }
}

fn drain(spool: &Spool) -> Vec<SpoolEntry> {
    let mut out = Vec::new();
    while let Some(e) = spool.claim_next().unwrap() {
        spool.complete(e.id).unwrap();
        out.push(e);
    }
    out
}

/// Runs a Python script (argv after it) off the runtime; returns its stdout.
async fn python(script: &'static str, args: Vec<String>) -> String {
    tokio::task::spawn_blocking(move || {
        let out = Command::new("python3")
            .arg("-c")
            .arg(script)
            .args(&args)
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "python failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    })
    .await
    .unwrap()
}

/// Connects, sends `input` in one write, reads until the server closes; returns all replies.
async fn raw(addr: SocketAddr, input: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(input).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out))
        .await
        .expect("server did not close")
        .unwrap();
    String::from_utf8(out).unwrap()
}

fn reply_codes(replies: &str) -> Vec<&str> {
    replies
        .split("\r\n")
        .filter(|l| !l.is_empty() && l.as_bytes().get(3) == Some(&b' '))
        .map(|l| &l[..3])
        .collect()
}

const SMTPLIB_SEND: &str = r#"
import smtplib, sys, json
port = int(sys.argv[1])
body = bytes.fromhex(sys.argv[2])
s = smtplib.SMTP("127.0.0.1", port, timeout=20)
code, _ = s.ehlo("ps.example")
features = sorted(s.esmtp_features.keys())
size = s.esmtp_features.get("size")
# As str, smtplib turns bare LF into CRLF before sending (RFC 5321 2.3.8).
refused = s.sendmail("ps@example.org", ["oct@example.net", "copy@example.net"], body.decode("ascii"))
# As bytes, it sends the bare LF as is: the ingress must refuse the message.
try:
    s.sendmail("ps@example.org", ["oct@example.net"], body)
    bare = None
except smtplib.SMTPDataError as e:
    bare = [e.smtp_code, e.smtp_error.decode()]
last = s.noop()
s.quit()
print(json.dumps({"ehlo": code, "features": features, "size": size, "refused": refused, "bare": bare, "noop": last[0]}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtplib_message_with_dot_lines_and_bare_lf_is_spooled_exactly() {
    let f = start(config()).await;
    let body: &[u8] = b"From: ps@example.org\r\nTo: oct@example.net\r\nSubject: IRIS/1/2\r\n\r\n\
first line\r\n.\r\n.\r\n..two dots\r\n.starts with dot\r\nbare LF line\nlast line\r\n";
    let out = python(
        SMTPLIB_SEND,
        vec![f.handle.local_addr().port().to_string(), hex(body)],
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ehlo"], 250);
    assert_eq!(
        v["features"],
        serde_json::json!(["8bitmime", "enhancedstatuscodes", "pipelining", "size"])
    );
    assert_eq!(v["size"], "200000");
    assert_eq!(v["refused"], serde_json::json!({}));
    assert_eq!(v["noop"], 250);
    assert_eq!(
        v["bare"],
        serde_json::json!([
            554,
            "5.6.0 Message refused: bare CR or LF, lines must end with CRLF"
        ])
    );
    // smtplib turned the bare LF into CRLF and dot-stuffed; the spool holds the unstuffed text,
    // and only the first message.
    let expected: &[u8] = b"From: ps@example.org\r\nTo: oct@example.net\r\nSubject: IRIS/1/2\r\n\r\n\
first line\r\n.\r\n.\r\n..two dots\r\n.starts with dot\r\nbare LF line\r\nlast line\r\n";
    let got = drain(&f.spool);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, expected);
    assert_eq!(got[0].envelope.mail_from, "ps@example.org");
    assert_eq!(got[0].envelope.rcpt_to, ["oct@example.net", "copy@example.net"]);
    assert_eq!(got[0].envelope.helo, "ps.example");
    assert!(got[0].envelope.peer.starts_with("127.0.0.1:"));
    assert_eq!(
        f.handle
            .stats()
            .messages
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    f.handle.shutdown().await;
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtplib_oversized_message_gets_552_and_nothing_is_spooled() {
    let mut cfg = config();
    cfg.session.max_message_size = 1000;
    let f = start(cfg).await;
    const SCRIPT: &str = r#"
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20)
s.ehlo("ps.example")
s.mail("ps@example.org")
s.rcpt("oct@example.net")
code, msg = s.data(b"x" * 998 + b"\r\n" + b"y" * 10 + b"\r\n")
print(code, msg.decode())
print(s.noop()[0])
s.quit()
"#;
    let out = python(SCRIPT, vec![f.handle.local_addr().port().to_string()]).await;
    assert_eq!(out, "552 5.3.4 Message size exceeds fixed maximum\n250\n");
    assert!(drain(&f.spool).is_empty());
    f.handle.shutdown().await;
}

#[cfg(feature = "server-tests")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaks_with_pipelining_is_spooled_exactly() {
    let f = start(config()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("msg.eml");
    // No swaks tokens (%...%) and no backslashes: swaks would expand them.
    std::fs::write(
        &file,
        b"Subject: lot 42\nX-Test: swaks\n\nline one\n.\n..x\nbare LF next\nend",
    )
    .unwrap();
    let port = f.handle.local_addr().port().to_string();
    let file_arg = file.to_str().unwrap().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("swaks")
            .args([
                "--server",
                "127.0.0.1",
                "--port",
                &port,
                "--from",
                "ps@example.org",
                "--to",
                "oct@example.net",
                "--helo",
                "swaks.example",
                "--pipeline",
                "--data",
                &file_arg,
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let transcript = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "swaks failed:\n{transcript}");
    assert!(
        transcript.contains("<** 250 2.0.0 OK queued as")
            || transcript.contains("<~  250 2.0.0 OK queued as")
            || transcript.contains("250 2.0.0 OK queued as"),
        "{transcript}"
    );
    let got = drain(&f.spool);
    assert_eq!(got.len(), 1, "{transcript}");
    assert_eq!(
        String::from_utf8_lossy(&got[0].data),
        "Subject: lot 42\r\nX-Test: swaks\r\n\r\nline one\r\n.\r\n..x\r\nbare LF next\r\nend\r\n"
    );
    assert_eq!(got[0].envelope.helo, "swaks.example");
    f.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_transactions_in_one_write() {
    let f = start(config()).await;
    let input = b"EHLO raw.example\r\n\
MAIL FROM:<a@example.org>\r\nRCPT TO:<oct@example.net>\r\nDATA\r\nfirst\r\n.\r\n\
MAIL FROM:<b@example.org>\r\nRCPT TO:<oct@example.net>\r\nDATA\r\nsecond\r\n..\r\n.\r\n\
QUIT\r\n";
    let replies = raw(f.handle.local_addr(), input).await;
    assert_eq!(
        reply_codes(&replies),
        [
            "220", "250", "250", "250", "354", "250", "250", "250", "354", "250", "221"
        ]
    );
    let got = drain(&f.spool);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].data, b"first\r\n");
    assert_eq!(got[0].envelope.mail_from, "a@example.org");
    assert_eq!(got[1].data, b"second\r\n.\r\n");
    // The 250 of each message quotes the spool id.
    assert!(replies.contains(&format!("250 2.0.0 OK queued as {}\r\n", got[0].id)));
    assert!(replies.contains(&format!("250 2.0.0 OK queued as {}\r\n", got[1].id)));
    f.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_commands_garbage_and_bare_lf_are_answered() {
    let f = start(config()).await;
    let input = b"RCPT TO:<x@y>\r\nDATA\r\nEHLO g\r\n\x00\xff\xfegarbage\r\nDATA\r\nMAIL FROM:<a@b>\r\n\
MAIL FROM:<a@b>\r\nNOOP\nRCPT TO:<c@d>\r\nDATA\r\nbare\nLF\r\n.\r\nQUIT\r\n";
    let replies = raw(f.handle.local_addr(), input).await;
    assert_eq!(
        reply_codes(&replies),
        [
            "220", "503", "503", "250", "500", "503", "250", "503", "500", "250", "354", "554", "221"
        ]
    );
    assert!(replies.contains("554 5.6.0 "));
    assert!(drain(&f.spool).is_empty());
    f.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_garbage_gets_421_and_the_connection_closes() {
    let f = start(config()).await;
    let garbage: Vec<u8> = (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect();
    let replies = raw(f.handle.local_addr(), &garbage).await;
    assert!(
        replies.ends_with("421 4.7.0 oct.test Too many errors, closing connection\r\n"),
        "{replies}"
    );
    f.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_per_ip_and_rate_limit_say_421() {
    let mut cfg = config();
    cfg.max_connections_per_ip = 1;
    let f = start(cfg).await;
    let mut first = TcpStream::connect(f.handle.local_addr()).await.unwrap();
    let mut greeting = [0u8; 64];
    let n = first.read(&mut greeting).await.unwrap();
    assert!(greeting[..n].starts_with(b"220 "));
    let second = raw(f.handle.local_addr(), b"").await;
    assert_eq!(
        second,
        "421 4.7.0 oct.test Service not available: too many connections from this address, try again later\r\n"
    );
    drop(first);
    f.handle.shutdown().await;

    let mut cfg = config();
    cfg.rate = RateLimit {
        burst: 2,
        per_second: 0.001,
    };
    let f = start(cfg).await;
    assert!(raw(f.handle.local_addr(), b"QUIT\r\n").await.starts_with("220 "));
    assert!(raw(f.handle.local_addr(), b"QUIT\r\n").await.starts_with("220 "));
    let third = raw(f.handle.local_addr(), b"QUIT\r\n").await;
    assert!(third.starts_with("421 4.7.0 oct.test Service not available: connection rate exceeded"));
    assert_eq!(
        f.handle
            .stats()
            .refused
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    f.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_client_gets_421_timeout() {
    let mut cfg = config();
    cfg.command_timeout = Duration::from_millis(300);
    let f = start(cfg).await;
    let replies = raw(f.handle.local_addr(), b"EHLO a\r\nMAIL FROM:<a@b>\r\n").await;
    assert!(
        replies.ends_with("421 4.4.2 oct.test Timeout, closing connection\r\n"),
        "{replies}"
    );
    f.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_client_is_closed_at_the_session_lifetime() {
    let mut cfg = config();
    cfg.session_lifetime = Duration::from_millis(300);
    let f = start(cfg).await;
    let mut s = TcpStream::connect(f.handle.local_addr()).await.unwrap();
    let mut out = Vec::new();
    // Keep sending NOOPs, each well within the command timeout, until the server closes.
    let mut closed = false;
    for _ in 0..500 {
        if s.write_all(b"NOOP\r\n").await.is_err() {
            closed = true;
            break;
        }
        let mut b = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(20), s.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => out.extend_from_slice(&b[..n]),
            Err(_) => {}
        }
    }
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    out.extend_from_slice(&rest);
    let out = String::from_utf8_lossy(&out);
    assert!(closed || out.contains("421 4.4.2"), "connection never closed");
    assert!(
        out.contains("421 4.4.2 oct.test Timeout, closing connection\r\n"),
        "{out}"
    );
    f.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_failure_gets_451_and_the_client_may_retry() {
    let f = start(config()).await;
    // Take the spool's tmp/ away: the write fails, the client must not get a 250.
    let tmp = f.spool.root().join("tmp");
    std::fs::remove_dir(&tmp).unwrap();
    let input = b"HELO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n";
    let replies = raw(f.handle.local_addr(), input).await;
    assert!(replies.contains("451 4.3.0 Local error storing the message, try again later\r\n"));
    std::fs::create_dir(&tmp).unwrap();
    let replies = raw(f.handle.local_addr(), input).await;
    assert!(replies.contains("250 2.0.0 OK queued as"));
    assert_eq!(drain(&f.spool).len(), 1);
    f.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_transaction_in_flight_then_says_421() {
    let f = start(config()).await;
    let addr = f.handle.local_addr();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\npart one\r\n")
        .await
        .unwrap();
    // Wait for the 354 so the session is inside DATA.
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("354 ") {
        let mut b = [0u8; 512];
        let n = s.read(&mut b).await.unwrap();
        assert!(n > 0);
        seen.extend_from_slice(&b[..n]);
    }
    let spool = f.spool.clone();
    let stopping = tokio::spawn(f.handle.shutdown());
    // The listener closes; the session in DATA goes on.
    let mut refused = false;
    for _ in 0..200 {
        if TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "listener still accepting after shutdown");
    s.write_all(b"part two\r\n.\r\n").await.unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await.unwrap();
    let rest = String::from_utf8(rest).unwrap();
    assert_eq!(reply_codes(&rest), ["250", "421"], "{rest}");
    stopping.await.unwrap();
    let got = drain(&spool);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, b"part one\r\npart two\r\n");
    drop(f._dir);
}

const SMTPLIB_STARTTLS: &str = r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
ctx.check_hostname = False
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20)
s.ehlo("ps.example")
assert s.has_extn("starttls")
code, _ = s.starttls(context=ctx)
s.ehlo("ps.example")
assert not s.has_extn("starttls")
s.sendmail("ps@example.org", ["oct@example.net"], b"Subject: tls\r\n\r\nsecret body\r\n")
print(code, s.sock.version())
s.quit()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_with_smtplib() {
    let certs = tempfile::tempdir().unwrap();
    let id = svoct_testkit::certs::TestIdentity::new("oct.test");
    let (key, cert) = id.write_pem(certs.path(), "oct");
    let mut cfg = config();
    cfg.tls = Some(TlsFiles {
        cert_chain: cert.clone(),
        private_key: key,
    });
    let f = start(cfg).await;
    let out = python(
        SMTPLIB_STARTTLS,
        vec![
            f.handle.local_addr().port().to_string(),
            cert.to_str().unwrap().to_owned(),
        ],
    )
    .await;
    assert!(out.starts_with("220 TLSv1."), "{out}");
    let got = drain(&f.spool);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, b"Subject: tls\r\n\r\nsecret body\r\n");
    f.handle.shutdown().await;
}

/// Sends `prefix`, then `piece` every `every`, until the server closes (or 20 s); returns
/// every reply the server sent.
async fn trickle(addr: SocketAddr, prefix: &[u8], piece: &[u8], every: Duration) -> String {
    let s = TcpStream::connect(addr).await.unwrap();
    let (mut r, mut w) = s.into_split();
    let reader = tokio::spawn(async move {
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(20), r.read_to_end(&mut out)).await;
        out
    });
    w.write_all(prefix).await.unwrap();
    let give_up = std::time::Instant::now() + Duration::from_secs(20);
    while !reader.is_finished() && std::time::Instant::now() < give_up {
        tokio::time::sleep(every).await;
        if w.write_all(piece).await.is_err() {
            break;
        }
    }
    String::from_utf8_lossy(&reader.await.unwrap()).into_owned()
}

const TIMEOUT_421: &str = "421 4.4.2 oct.test Timeout, closing connection\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_line_trickled_byte_by_byte_is_cut_at_the_command_timeout() {
    let mut cfg = config();
    // Each byte comes well within the timeout: only a bound on the whole line cuts it.
    cfg.command_timeout = Duration::from_millis(600);
    let f = start(cfg).await;
    let replies = trickle(
        f.handle.local_addr(),
        b"EHLO a\r\nNOOP",
        b"P",
        Duration::from_millis(50),
    )
    .await;
    assert!(replies.ends_with(TIMEOUT_421), "{replies}");
    f.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_commands_without_a_message_are_cut_at_the_transaction_timeout() {
    let mut cfg = config();
    cfg.transaction_timeout = Duration::from_millis(600);
    let f = start(cfg).await;
    let replies = trickle(
        f.handle.local_addr(),
        b"EHLO a\r\n",
        b"NOOP\r\n",
        Duration::from_millis(50),
    )
    .await;
    assert!(replies.contains("250 2.0.0 OK\r\n"), "{replies}");
    assert!(replies.ends_with(TIMEOUT_421), "{replies}");
    f.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_below_the_minimum_rate_is_cut_and_its_spool_file_removed() {
    let mut cfg = config();
    cfg.session.max_message_size = 4 << 20;
    cfg.data_grace = Duration::from_secs(2);
    cfg.min_data_rate = 1_000_000;
    let f = start(cfg).await;
    // More than the in-memory threshold at once, so that the content is in a spool file,
    // then one byte every 50 ms.
    let mut prefix = b"EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n".to_vec();
    prefix
        .extend(b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n".repeat(5000));
    let addr = f.handle.local_addr();
    let client = tokio::spawn(async move { trickle(addr, &prefix, b"x", Duration::from_millis(50)).await });
    let tmp = f.spool.root().join("tmp");
    let mut seen_file = false;
    for _ in 0..100 {
        if std::fs::read_dir(&tmp).unwrap().count() == 1 {
            seen_file = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let replies = client.await.unwrap();
    assert!(seen_file, "the message content was streamed to tmp/");
    assert!(replies.contains("354 "), "{replies}");
    assert!(replies.ends_with(TIMEOUT_421), "{replies}");
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "the partial message is removed"
    );
    assert!(drain(&f.spool).is_empty());
    f.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_above_the_minimum_rate_is_not_cut() {
    let mut cfg = config();
    cfg.data_grace = Duration::from_secs(1);
    cfg.min_data_rate = 1000;
    let f = start(cfg).await;
    let s = TcpStream::connect(f.handle.local_addr()).await.unwrap();
    let (mut r, mut w) = s.into_split();
    w.write_all(b"EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
        .await
        .unwrap();
    // 400 octets every 100 ms (4,000 octets/s, four times the minimum) for 2 s: longer than
    // the grace, so only the rate keeps it going.
    let line = [b"y".repeat(398), b"\r\n".to_vec()].concat();
    for _ in 0..20 {
        w.write_all(&line).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    w.write_all(b".\r\nQUIT\r\n").await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), r.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("250 2.0.0 OK queued as"), "{out}");
    let got = drain(&f.spool);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, line.repeat(20));
    f.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_failure_while_streaming_a_large_message_gets_451_at_its_end() {
    let mut cfg = config();
    cfg.session.max_message_size = 4 << 20;
    let f = start(cfg).await;
    // Larger than what the ingress keeps in memory: the content must go to tmp/, which fails.
    let tmp = f.spool.root().join("tmp");
    std::fs::remove_dir(&tmp).unwrap();
    let mut input = b"HELO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n".to_vec();
    input.extend(b"0123456789abcdefghijklmnopqrstuvwxyz\r\n".repeat(20_000));
    input.extend(b".\r\nNOOP\r\nQUIT\r\n");
    let replies = raw(f.handle.local_addr(), &input).await;
    // The rest of DATA is read and dropped, the reply comes after the final dot, and the
    // session goes on.
    assert_eq!(
        reply_codes(&replies),
        ["220", "250", "250", "250", "354", "451", "250", "221"],
        "{replies}"
    );
    std::fs::create_dir(&tmp).unwrap();
    assert!(drain(&f.spool).is_empty());
    assert_eq!(
        f.handle
            .stats()
            .persist_failures
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    f.handle.shutdown().await;
}
