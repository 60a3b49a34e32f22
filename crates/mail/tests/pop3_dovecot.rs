//! The POP3 shell and the Maildir reader against real Exim + Dovecot (testkit) and Python.
// The tests marked `#[cfg(feature = "server-tests")]` need the Exim, Dovecot or swaks packages
// (scripts/setup.sh); without the feature their helpers are unused, and that is expected.
#![cfg_attr(not(feature = "server-tests"), allow(dead_code, unused_imports))]

use std::process::Command as Process;
use std::time::Duration;

use svoct_mail::maildir::Maildir;
use svoct_mail::pop3::{
    Limits, Mailbox, MessageSink, Pop3Auth, Pop3Config, Pop3Error, Pop3Session, RetrievePolicy, retrieve,
};
use svoct_mail::secret::Secret;
use svoct_mail::transport::{SmtpConfig, SmtpEnvelope, SmtpTransport, Transport};
use svoct_testkit::{Dovecot, Exim, EximConfig};

const WAIT: Duration = Duration::from_secs(20);

fn message(i: usize, filler: usize) -> Vec<u8> {
    let mut m = format!(
        "From: oct@oct.test\r\nTo: ps1@ps.test\r\nSubject: ART/000000111/20261126060{i}\r\n\
Message-ID: <m{i}@oct.test>\r\n\r\nbody {i}\r\n.\r\n..\r\n.x\r\n"
    )
    .into_bytes();
    for _ in 0..filler {
        m.extend_from_slice(b"0123456789012345678901234567890123456789012345678901234567890123456789\r\n");
    }
    m.extend_from_slice(b"end\r\n");
    m
}

struct Servers {
    mx: Exim,
    pop: Dovecot,
}

fn servers() -> Servers {
    let mx = Exim::start(&EximConfig {
        mailboxes: &["ps1"],
        ..Default::default()
    })
    .unwrap();
    let pop = Dovecot::start(&[("ps1", "pw-ps1", mx.maildir("ps1").unwrap())]).unwrap();
    Servers { mx, pop }
}

fn deliver(s: &Servers, msgs: &[Vec<u8>]) {
    let t = SmtpTransport::new(&SmtpConfig::plain("127.0.0.1", s.mx.port())).unwrap();
    let before = s.mx.messages("ps1").len();
    for m in msgs {
        t.send(&SmtpEnvelope::new("oct@oct.test", "ps1@ps.test"), m)
            .unwrap();
    }
    s.mx.wait_for_messages("ps1", before + msgs.len(), WAIT).unwrap();
}

fn config(s: &Servers, password: &str) -> Pop3Config {
    let mut c = Pop3Config::plain("127.0.0.1", s.pop.port(), "ps1", Secret::new(password.to_owned()));
    c.timeout = Duration::from_secs(10);
    // The harness's Dovecot on loopback, without TLS: clear-text login allowed explicitly.
    c.allow_plaintext_auth = true;
    c
}

/// The message as Python's poplib retrieves it (lines joined with CRLF).
fn python_retr(port: u16, n: usize) -> Vec<u8> {
    let script = r#"
import poplib, sys
p = poplib.POP3('127.0.0.1', int(sys.argv[1]))
p.user('ps1'); p.pass_('pw-ps1')
lines = p.retr(int(sys.argv[2]))[1]
sys.stdout.buffer.write(b''.join(l + b'\r\n' for l in lines))
p.quit()
"#;
    let out = Process::new("python3")
        .args(["-c", script, &port.to_string(), &n.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

#[cfg(feature = "server-tests")]
#[test]
fn pop3_matches_python_poplib_and_the_maildir_reader() {
    let s = servers();
    let msgs: Vec<_> = (0..3).map(|i| message(i, i * 50)).collect();
    deliver(&s, &msgs);

    let mut pop = Pop3Session::connect(&config(&s, "pw-ps1")).unwrap();
    assert_eq!(pop.stat().unwrap().0, 3);
    let list = pop.list().unwrap();
    assert_eq!(list.len(), 3);
    let mut md = Maildir::open(s.mx.maildir("ps1").unwrap(), 1 << 20).unwrap();
    let md_list = md.list().unwrap();
    for (n, (uidl, size)) in list.iter().enumerate() {
        let raw = pop.fetch(uidl).unwrap();
        assert_eq!(raw.len() as u64, *size, "LIST size is the CRLF size");
        assert_eq!(raw, python_retr(s.pop.port(), n + 1), "same bytes as poplib");
        // The body we sent is there, dot lines included.
        let sent = msgs
            .iter()
            .find(|m| raw.ends_with(m))
            .expect("a sent message is a suffix");
        assert!(raw.len() > sent.len());
        // The Maildir reader sees the same message, CRLF-normalised: identical bytes.
        let same: Vec<_> = md_list
            .iter()
            .map(|(u, _)| md.fetch(u).unwrap())
            .filter(|m| *m == raw)
            .collect();
        assert_eq!(same.len(), 1);
    }
    pop.quit().unwrap();
}

#[cfg(feature = "server-tests")]
#[test]
fn wrong_password_is_a_clear_auth_error() {
    let s = servers();
    let err = Pop3Session::connect(&config(&s, "wrong")).unwrap_err();
    match &err {
        Pop3Error::AuthFailed { user, .. } => assert_eq!(user, "ps1"),
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("authentication refused for user \"ps1\""), "{text}");
    assert!(!text.contains("wrong"), "the password is not echoed: {text}");
}

#[cfg(feature = "server-tests")]
#[test]
fn apop_login_works_and_wrong_apop_is_refused() {
    let s = servers();
    deliver(&s, &[message(0, 0)]);
    let mut c = config(&s, "pw-ps1");
    c.auth = Pop3Auth::Apop;
    let mut pop = Pop3Session::connect(&c).unwrap();
    assert_eq!(pop.stat().unwrap().0, 1);
    pop.quit().unwrap();
    let mut c = config(&s, "nope");
    c.auth = Pop3Auth::Apop;
    assert!(matches!(
        Pop3Session::connect(&c),
        Err(Pop3Error::AuthFailed { .. })
    ));
}

#[derive(Default)]
struct VecSink(Vec<(String, Vec<u8>)>);

impl MessageSink for VecSink {
    type Error = std::io::Error;
    fn has(&mut self, uidl: &str) -> Result<bool, Self::Error> {
        Ok(self.0.iter().any(|(u, _)| u == uidl))
    }
    fn store(&mut self, uidl: &str, raw: &[u8]) -> Result<(), Self::Error> {
        self.0.push((uidl.to_owned(), raw.to_vec()));
        Ok(())
    }
}

#[cfg(feature = "server-tests")]
#[test]
fn oversized_messages_stay_on_the_server() {
    let s = servers();
    deliver(&s, &[message(0, 0), message(1, 200)]);
    let mut c = config(&s, "pw-ps1");
    c.limits = Limits {
        max_message: 4000,
        ..Limits::default()
    };
    let mut pop = Pop3Session::connect(&c).unwrap();
    let list = pop.list().unwrap();
    let big = list.iter().find(|(_, size)| *size > 4000).unwrap().clone();
    assert!(matches!(pop.fetch(&big.0), Err(Pop3Error::TooLarge { size, limit: 4000, .. }) if size == big.1));
    let mut sink = VecSink::default();
    let report = retrieve(
        &mut pop,
        &mut sink,
        RetrievePolicy {
            max_size: 4000,
            delete: true,
        },
    )
    .unwrap();
    assert_eq!(report.stored.len(), 1);
    assert_eq!(report.too_large, vec![big]);
    // The small one was deleted at QUIT, the big one is still there.
    let mut pop = Pop3Session::connect(&c).unwrap();
    assert_eq!(pop.stat().unwrap().0, 1);
    pop.quit().unwrap();
}

#[test]
fn maildir_retrieval_deletes_only_at_finish() {
    let d = tempfile::tempdir().unwrap();
    let mut md = Maildir::create(d.path().join("box"), 1 << 20).unwrap();
    let a = md.deliver(b"Subject: a\n\nA\n").unwrap();
    let b = md.deliver(b"Subject: b\r\n\r\nB\r\n").unwrap();
    let list = md.list().unwrap();
    assert_eq!(list.iter().map(|(u, _)| u.clone()).collect::<Vec<_>>().len(), 2);
    assert_eq!(md.fetch(&a).unwrap(), b"Subject: a\r\n\r\nA\r\n");
    assert_eq!(md.fetch(&b).unwrap(), b"Subject: b\r\n\r\nB\r\n");
    md.delete(&a).unwrap();
    assert_eq!(md.list().unwrap().len(), 2, "not deleted before finish");
    md.delete(&a).unwrap();
    md.finish().unwrap();
    let left: Vec<_> = md.list().unwrap().into_iter().map(|(u, _)| u).collect();
    assert_eq!(left, vec![b]);
    assert!(matches!(
        md.fetch("../../etc/passwd"),
        Err(svoct_mail::maildir::MaildirError::UnknownUidl { .. })
    ));
}

#[cfg(feature = "server-tests")]
#[test]
fn stls_and_pop3s_with_a_trusted_certificate() {
    use svoct_mail::pop3::Pop3Security;
    let d = tempfile::tempdir().unwrap();
    let id = svoct_testkit::certs::TestIdentity::new("localhost");
    let (key, cert) = id.write_pem(d.path(), "pop");
    let mx = Exim::start(&EximConfig {
        mailboxes: &["ps1"],
        ..Default::default()
    })
    .unwrap();
    let pop = Dovecot::start_with_tls(
        &[("ps1", "pw-ps1", mx.maildir("ps1").unwrap())],
        &svoct_testkit::TlsFiles { cert, key },
    )
    .unwrap();
    let s = Servers { mx, pop };
    deliver(&s, &[message(0, 10)]);
    for (security, port) in [
        (Pop3Security::StartTls, s.pop.port()),
        (Pop3Security::Implicit, s.pop.tls_port().unwrap()),
    ] {
        let mut c = config(&s, "pw-ps1");
        c.port = port;
        c.security = security;
        // Over TLS the login needs no clear-text permission.
        c.allow_plaintext_auth = false;
        c.tls_domain = Some("localhost".into());
        c.extra_roots_pem = vec![id.cert_pem()];
        let mut pop =
            Pop3Session::connect(&c).unwrap_or_else(|e| panic!("{security:?}: {e}\n{}", s.pop.log()));
        let list = pop.list().unwrap();
        assert_eq!(list.len(), 1);
        assert!(pop.fetch(&list[0].0).unwrap().ends_with(&message(0, 10)));
        pop.quit().unwrap();
        // Without trusting the certificate, the handshake is refused.
        c.extra_roots_pem.clear();
        assert!(
            matches!(Pop3Session::connect(&c), Err(Pop3Error::Tls { .. })),
            "{security:?}"
        );
    }
    assert!(s.pop.log().contains("TLS"), "{}", s.pop.log());
}
