//! Scripted SMTP servers for what Exim cannot be told to do:
//!
//! - [`AuthEchoServer`] refuses every login by echoing it (`535 5.7.8 <the AUTH line>`): some
//!   real servers quote the client's command in their error text, and the tests that check that
//!   no password leaks from a server reply (log, state database, status) use it;
//! - [`RefusingServer`] refuses every recipient for good (`550 5.1.1`): an insurer's server
//!   rejecting a forward, for the tests of what the PS is then told.

use std::io::{BufRead, BufReader, Read as _, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// A listener on `127.0.0.1:<free port>` that offers `AUTH PLAIN LOGIN` without TLS and answers
/// every `AUTH` line with `535 5.7.8 Authentication failed: <the line>`. Serves any number of
/// connections, one thread each, until dropped.
#[derive(Debug)]
pub struct AuthEchoServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    counted: Arc<AtomicUsize>,
}

impl AuthEchoServer {
    /// Starts listening.
    pub fn start() -> std::io::Result<AuthEchoServer> {
        listen(serve)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// How many `AUTH` lines it has refused so far.
    pub fn auth_attempts(&self) -> usize {
        self.counted.load(Ordering::Relaxed)
    }
}

/// A listener on `127.0.0.1:<free port>` that answers every `RCPT TO` with
/// `550 5.1.1 <address>: mailbox unavailable` (no login offered). Serves any number of
/// connections, one thread each, until dropped.
#[derive(Debug)]
pub struct RefusingServer(AuthEchoServer);

impl RefusingServer {
    /// Starts listening.
    pub fn start() -> std::io::Result<RefusingServer> {
        listen(serve_refusing).map(RefusingServer)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.0.port()
    }

    /// How many recipients it has refused so far.
    pub fn refused(&self) -> usize {
        self.0.counted.load(Ordering::Relaxed)
    }
}

/// Accepts connections on a free loopback port, each served by `script` on its own thread
/// (given a counter the script bumps for what its server counts).
fn listen(script: fn(TcpStream, &AtomicUsize) -> std::io::Result<()>) -> std::io::Result<AuthEchoServer> {
    {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let counted = Arc::new(AtomicUsize::new(0));
        let (s, n) = (stop.clone(), counted.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let n = n.clone();
                        std::thread::spawn(move || {
                            let _ = script(conn, &n);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Ok(AuthEchoServer { addr, stop, counted })
    }
}

impl Drop for AuthEchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Greets with `greeting`, then answers each command line with `answer(verb, line)` until the
/// client leaves; a `None` answer sends `221 bye` and closes (`QUIT`).
fn converse(
    conn: TcpStream,
    greeting: &str,
    mut answer: impl FnMut(&str, &str) -> Option<String>,
) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut w = conn.try_clone()?;
    let mut r = BufReader::new(conn).take(1 << 20);
    w.write_all(format!("220 {greeting}\r\n").as_bytes())?;
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end();
        let verb = cmd.split([' ', ':']).next().unwrap_or("").to_ascii_uppercase();
        match answer(&verb, cmd) {
            Some(reply) => w.write_all(reply.as_bytes())?,
            None => {
                w.write_all(b"221 bye\r\n")?;
                return Ok(());
            }
        }
    }
}

fn serve(conn: TcpStream, counted: &AtomicUsize) -> std::io::Result<()> {
    converse(conn, "fake.test ESMTP", |verb, cmd| {
        Some(match verb {
            "EHLO" => "250-fake.test\r\n250 AUTH PLAIN LOGIN\r\n".into(),
            "HELO" => "250 fake.test\r\n".into(),
            "AUTH" => {
                counted.fetch_add(1, Ordering::Relaxed);
                format!("535 5.7.8 Authentication failed: {cmd}\r\n")
            }
            "QUIT" => return None,
            "RSET" | "NOOP" => "250 OK\r\n".into(),
            _ => "530 5.7.0 authentication required\r\n".into(),
        })
    })
}

fn serve_refusing(conn: TcpStream, refused: &AtomicUsize) -> std::io::Result<()> {
    converse(conn, "insurer.test ESMTP", |verb, cmd| {
        Some(match verb {
            "EHLO" | "HELO" => "250 insurer.test\r\n".into(),
            "RCPT" => {
                refused.fetch_add(1, Ordering::Relaxed);
                let rcpt = cmd.split_once(':').map_or("", |(_, a)| a.trim());
                format!("550 5.1.1 {rcpt}: mailbox unavailable\r\n")
            }
            "QUIT" => return None,
            "MAIL" | "RSET" | "NOOP" => "250 OK\r\n".into(),
            _ => "503 5.5.1 bad sequence of commands\r\n".into(),
        })
    })
}
