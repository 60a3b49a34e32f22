//! The lettre backend against a real Exim (testkit): dot-stuffing, 5xx, server down, TLS.
// The tests marked `#[cfg(feature = "server-tests")]` need the Exim, Dovecot or swaks packages
// (scripts/setup.sh); without the feature their helpers are unused, and that is expected.
#![cfg_attr(not(feature = "server-tests"), allow(dead_code, unused_imports))]

use std::time::Duration;

use svoct_mail::secret::Secret;
use svoct_mail::transport::{Security, SmtpConfig, SmtpCredentials, SmtpEnvelope, SmtpTransport, Transport};
use svoct_testkit::certs::TestIdentity;
use svoct_testkit::{Exim, EximConfig, EximTls, free_port};

const WAIT: Duration = Duration::from_secs(20);

/// A message whose body has a lone dot line, lines starting with dots, and an empty last line.
fn tricky_message() -> Vec<u8> {
    b"From: ps1@ps.test\r\nTo: oct@oct.test\r\nSubject: SV140700/123456789/2026112605432700000/00001\r\n\
Message-ID: <dots@ps.test>\r\n\r\nfirst\r\n.\r\n..two dots\r\n.leading dot\r\n\r\n.\r\nlast\r\n"
        .to_vec()
}

/// What Exim's Maildir holds of a CRLF message: the same lines with LF ends.
fn as_stored(raw: &[u8]) -> Vec<u8> {
    String::from_utf8(raw.to_vec())
        .unwrap()
        .replace("\r\n", "\n")
        .into_bytes()
}

fn exim() -> Exim {
    Exim::start(&EximConfig {
        mailboxes: &["oct"],
        message_size_limit: Some(20_000),
        ..Default::default()
    })
    .unwrap()
}

#[cfg(feature = "server-tests")]
#[test]
fn dot_lines_arrive_intact() {
    let mx = exim();
    let t = SmtpTransport::new(&SmtpConfig::plain("127.0.0.1", mx.port())).unwrap();
    let raw = tricky_message();
    let ok = t
        .send(&SmtpEnvelope::new("ps1@ps.test", "oct@oct.test"), &raw)
        .unwrap();
    assert_eq!(ok.code, 250);
    assert!(ok.answer.starts_with("250 OK id="), "{}", ok.answer);
    let got = mx.wait_for_messages("oct", 1, WAIT).unwrap();
    assert!(
        got[0].ends_with(&as_stored(&raw)),
        "{}",
        String::from_utf8_lossy(&got[0])
    );
}

#[cfg(feature = "server-tests")]
#[test]
fn unknown_recipient_is_permanent_with_the_server_answer() {
    let mx = exim();
    let t = SmtpTransport::new(&SmtpConfig::plain("127.0.0.1", mx.port())).unwrap();
    let e = t
        .send(
            &SmtpEnvelope::new("ps1@ps.test", "nobody@oct.test"),
            &tricky_message(),
        )
        .unwrap_err();
    assert!(e.is_permanent() && !e.is_transient(), "{e:?}");
    assert_eq!(e.code(), Some(550));
    assert!(e.server_answer().unwrap().contains("unknown mailbox"), "{e:?}");
    assert!(mx.messages("oct").is_empty());
}

#[cfg(feature = "server-tests")]
#[test]
fn temporary_refusal_is_transient() {
    let mx = Exim::start(&EximConfig {
        mailboxes: &["oct"],
        defer_local_parts: &["busy"],
        ..Default::default()
    })
    .unwrap();
    let t = SmtpTransport::new(&SmtpConfig::plain("127.0.0.1", mx.port())).unwrap();
    let e = t
        .send(
            &SmtpEnvelope::new("ps1@ps.test", "busy@oct.test"),
            &tricky_message(),
        )
        .unwrap_err();
    assert!(e.is_transient() && !e.is_permanent(), "{e:?}");
    assert_eq!(e.code(), Some(451));
    assert!(e.server_answer().unwrap().contains("try again later"), "{e:?}");
}

#[cfg(feature = "server-tests")]
#[test]
fn oversized_message_is_permanent() {
    let mx = exim();
    let t = SmtpTransport::new(&SmtpConfig::plain("127.0.0.1", mx.port())).unwrap();
    let mut raw = b"Subject: big\r\n\r\n".to_vec();
    for _ in 0..1000 {
        raw.extend_from_slice(b"0123456789012345678901234567890123456789\r\n");
    }
    let e = t
        .send(&SmtpEnvelope::new("ps1@ps.test", "oct@oct.test"), &raw)
        .unwrap_err();
    assert!(e.is_permanent(), "{e:?}");
    assert_eq!(e.code(), Some(552), "{e:?}");
}

#[test]
fn server_down_is_transient() {
    let port = free_port().unwrap();
    let mut cfg = SmtpConfig::plain("127.0.0.1", port);
    cfg.timeout = Duration::from_secs(5);
    let t = SmtpTransport::new(&cfg).unwrap();
    let e = t
        .send(
            &SmtpEnvelope::new("ps1@ps.test", "oct@oct.test"),
            &tricky_message(),
        )
        .unwrap_err();
    assert!(e.is_transient() && !e.is_permanent(), "{e:?}");
    assert_eq!(e.code(), None);
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
}

#[cfg(feature = "server-tests")]
#[test]
fn invalid_address_is_permanent() {
    let t = SmtpTransport::new(&SmtpConfig::plain("127.0.0.1", 1)).unwrap();
    let e = t
        .send(&SmtpEnvelope::new("ps1@ps.test", "not an address"), b"x")
        .unwrap_err();
    assert!(e.is_permanent());
}

fn tls_exim(dir: &std::path::Path) -> (Exim, Vec<u8>) {
    let id = TestIdentity::new("localhost");
    let (key, cert) = id.write_pem(dir, "mx");
    let mx = Exim::start(&EximConfig {
        mailboxes: &["oct"],
        tls: Some(EximTls { cert, key }),
        ..Default::default()
    })
    .unwrap();
    (mx, id.cert_pem())
}

#[cfg(feature = "server-tests")]
#[test]
fn starttls_and_implicit_tls_deliver() {
    let d = tempfile::tempdir().unwrap();
    let (mx, root) = tls_exim(d.path());
    for (security, port) in [
        (Security::StartTls, mx.port()),
        (Security::Implicit, mx.tls_port().unwrap()),
    ] {
        let mut cfg = SmtpConfig::plain("127.0.0.1", port);
        cfg.security = security;
        cfg.tls_domain = Some("localhost".into());
        cfg.extra_roots_pem = vec![root.clone()];
        let t = SmtpTransport::new(&cfg).unwrap();
        t.send(
            &SmtpEnvelope::new("ps1@ps.test", "oct@oct.test"),
            &tricky_message(),
        )
        .unwrap_or_else(|e| panic!("{security:?}: {e}\n{}", mx.log()));
    }
    mx.wait_for_messages("oct", 2, WAIT).unwrap();
    let log = mx.log();
    assert_eq!(
        log.matches(" X=TLS").count(),
        2,
        "both deliveries were encrypted:\n{log}"
    );
}

#[cfg(feature = "server-tests")]
#[test]
fn untrusted_certificate_is_permanent() {
    let d = tempfile::tempdir().unwrap();
    let (mx, _root) = tls_exim(d.path());
    // Implicit TLS too: the handshake tried first under the timeout (lettre bounds it only
    // afterwards) fails on trust, not on time, and lettre's own verdict stands.
    for (security, port) in [
        (Security::StartTls, mx.port()),
        (Security::Implicit, mx.tls_port().unwrap()),
    ] {
        let mut cfg = SmtpConfig::plain("127.0.0.1", port);
        cfg.security = security;
        cfg.tls_domain = Some("localhost".into());
        let t = SmtpTransport::new(&cfg).unwrap();
        let e = t
            .send(
                &SmtpEnvelope::new("ps1@ps.test", "oct@oct.test"),
                &tricky_message(),
            )
            .unwrap_err();
        assert!(e.is_permanent(), "{security:?}: {e:?}");
        assert!(!e.to_string().contains("timeout"), "{security:?}: {e}");
    }
    assert!(mx.messages("oct").is_empty());
}

#[cfg(feature = "server-tests")]
#[test]
fn smtp_auth_with_credentials() {
    let mx = Exim::start(&EximConfig {
        mailboxes: &["oct"],
        auth: Some(("ps1", "s3cret")),
        ..Default::default()
    })
    .unwrap();
    let env = SmtpEnvelope::new("ps1@ps.test", "oct@oct.test");
    let with = |password: Option<&str>| {
        let mut cfg = SmtpConfig::plain("127.0.0.1", mx.port());
        // The harness's Exim authenticates without TLS on loopback: say so explicitly.
        cfg.allow_plaintext_auth = true;
        cfg.credentials = password.map(|p| SmtpCredentials {
            user: "ps1".into(),
            password: Secret::new(p.to_owned()),
        });
        SmtpTransport::new(&cfg).unwrap()
    };
    with(Some("s3cret"))
        .send(&env, &tricky_message())
        .unwrap_or_else(|e| panic!("{e}\n{}", mx.log()));
    mx.wait_for_messages("oct", 1, WAIT).unwrap();
    let e = with(Some("wrong")).send(&env, &tricky_message()).unwrap_err();
    // A refused login is the operator's to fix: transient, never a failure of the message.
    assert!(e.is_auth_rejected() && e.is_transient(), "{e:?}");
    assert_eq!(e.code(), Some(535), "{e:?}");
    let e = with(None).send(&env, &tricky_message()).unwrap_err();
    assert!(e.is_permanent(), "{e:?}");
    assert!(
        e.server_answer().unwrap().contains("authentication required"),
        "{e:?}"
    );
    assert_eq!(mx.messages("oct").len(), 1);
}
