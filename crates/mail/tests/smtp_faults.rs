//! The lettre backend against scripted misbehaving servers (a socket in a thread): greeting
//! refusals and connections cut mid-transaction must be transient.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::Duration;

use svoct_mail::transport::{SmtpConfig, SmtpEnvelope, SmtpTransport, Transport};

/// Serves one connection: sends `greeting`, then answers each client line with the next
/// scripted reply; `None` closes the connection.
fn fake_server(greeting: &'static str, replies: Vec<Option<&'static str>>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut w = s.try_clone().unwrap();
        w.write_all(greeting.as_bytes()).unwrap();
        let mut r = BufReader::new(s);
        for reply in replies {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            match reply {
                Some(text) => w.write_all(text.as_bytes()).unwrap(),
                None => return,
            }
        }
    });
    port
}

fn send(port: u16) -> svoct_mail::transport::SendError {
    let mut cfg = SmtpConfig::plain("127.0.0.1", port);
    cfg.timeout = Duration::from_secs(10);
    let t = SmtpTransport::new(&cfg).unwrap();
    t.send(
        &SmtpEnvelope::new("ps1@ps.test", "oct@oct.test"),
        b"Subject: x\r\n\r\nbody\r\n",
    )
    .unwrap_err()
}

#[test]
fn greeting_421_is_transient() {
    let port = fake_server("421 mx.test too busy\r\n", vec![]);
    let e = send(port);
    assert!(e.is_transient(), "{e:?}");
}

#[test]
fn greeting_554_is_permanent() {
    let port = fake_server("554 mx.test no service for you\r\n", vec![]);
    let e = send(port);
    assert!(e.is_permanent(), "{e:?}");
}

#[test]
fn connection_cut_during_the_transaction_is_transient() {
    let port = fake_server(
        "220 mx.test ESMTP\r\n",
        vec![Some("250 mx.test\r\n"), Some("250 OK\r\n"), None],
    );
    let e = send(port);
    assert!(e.is_transient() && !e.is_permanent(), "{e:?}");
    assert_eq!(e.code(), None);
}

#[test]
fn rejection_after_data_is_permanent_with_answer() {
    let port = fake_server(
        "220 mx.test ESMTP\r\n",
        vec![
            Some("250 mx.test\r\n"),
            Some("250 OK\r\n"),
            Some("250 OK\r\n"),
            Some("354 go ahead\r\n"),
            // Lines of the message, then the final dot.
            Some(""),
            Some(""),
            Some(""),
            Some("554 5.7.1 attachment refused\r\n"),
        ],
    );
    let e = send(port);
    assert!(e.is_permanent(), "{e:?}");
    assert_eq!(e.code(), Some(554));
    assert!(e.server_answer().unwrap().contains("attachment refused"), "{e:?}");
}

fn with_login(
    port: u16,
    allow_plaintext_auth: bool,
) -> Result<SmtpTransport, svoct_mail::transport::SendError> {
    let mut cfg = SmtpConfig::plain("127.0.0.1", port);
    cfg.timeout = Duration::from_secs(10);
    cfg.allow_plaintext_auth = allow_plaintext_auth;
    cfg.credentials = Some(svoct_mail::transport::SmtpCredentials {
        user: "oct".into(),
        password: svoct_mail::secret::Secret::new("pa55-very-secret".into()),
    });
    SmtpTransport::new(&cfg)
}

#[test]
fn an_echoed_auth_line_is_a_scrubbed_transient_login_refusal() {
    use base64::Engine as _;
    let server = svoct_testkit::fake_smtp::AuthEchoServer::start().unwrap();
    let t = with_login(server.port(), true).unwrap();
    let e = t
        .send(
            &SmtpEnvelope::new("oct@oct.test", "amc@amc.test"),
            b"Subject: x\r\n\r\nbody\r\n",
        )
        .unwrap_err();
    assert_eq!(server.auth_attempts(), 1, "the fake server saw the AUTH line");
    assert!(
        e.is_auth_rejected() && e.is_transient() && !e.is_permanent(),
        "{e:?}"
    );
    assert_eq!(e.code(), Some(535));
    let plain = base64::engine::general_purpose::STANDARD.encode("\0oct\0pa55-very-secret");
    for shown in [
        e.to_string(),
        format!("{e:?}"),
        e.server_answer().unwrap_or("").to_owned(),
    ] {
        assert!(!shown.contains("pa55"), "{shown}");
        assert!(!shown.contains(&plain), "{shown}");
        assert!(!shown.contains(&plain[..16]), "{shown}");
    }
    assert!(
        e.server_answer()
            .unwrap()
            .starts_with("535 5.7.8 Authentication failed: AUTH PLAIN")
    );
}

#[test]
fn credentials_without_tls_are_refused_unless_allowed() {
    let server = svoct_testkit::fake_smtp::AuthEchoServer::start().unwrap();
    let e = with_login(server.port(), false).unwrap_err();
    assert!(e.is_permanent(), "{e:?}");
    assert!(e.to_string().contains("allow_plaintext_auth"), "{e}");
    assert_eq!(server.auth_attempts(), 0);
}
