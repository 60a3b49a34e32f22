//! The harness against independent peers: swaks and Python's smtplib/poplib.

use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use svoct_testkit::{Dovecot, Exim, EximConfig};

const WAIT: Duration = Duration::from_secs(20);

fn swaks(port: u16, to: &str, body: &str) -> std::process::Output {
    Command::new("swaks")
        .args([
            "--server",
            &format!("127.0.0.1:{port}"),
            "--to",
            to,
            "--from",
            "sender@ps.test",
        ])
        .args(["--body", body, "--suppress-data"])
        .output()
        .expect("run swaks")
}

#[test]
fn exim_delivers_to_maildir_and_dovecot_serves_it_by_pop3() {
    let mx = Exim::start(&EximConfig {
        mailboxes: &["oct", "ps1"],
        ..Default::default()
    })
    .unwrap();
    let out = swaks(mx.port(), "ps1@ps.test", "hello from swaks");
    assert!(
        out.status.success(),
        "swaks: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let msgs = mx.wait_for_messages("ps1", 1, WAIT).unwrap();
    assert_eq!(msgs.len(), 1);
    assert!(String::from_utf8_lossy(&msgs[0]).contains("hello from swaks"));
    assert!(mx.messages("oct").is_empty());

    let pop = Dovecot::start(&[("ps1", "pw-ps1", mx.maildir("ps1").unwrap())]).unwrap();
    let script = r#"
import poplib, sys
p = poplib.POP3('127.0.0.1', int(sys.argv[1]))
p.user('ps1'); p.pass_('pw-ps1')
count, size = p.stat()
lines = p.retr(1)[1]
print(count)
print(b'hello from swaks' in lines)
p.dele(1); p.quit()
"#;
    let out = Command::new("python3")
        .args(["-c", script, &pop.port().to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\nTrue\n");
    // DELE + QUIT removed the file from the Maildir Exim delivered to.
    assert!(mx.messages("ps1").is_empty());
}

#[test]
fn unknown_recipient_is_refused_with_550() {
    let mx = Exim::start(&EximConfig {
        mailboxes: &["oct"],
        ..Default::default()
    })
    .unwrap();
    let out = swaks(mx.port(), "nobody-here@ps.test", "x");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("<** 550"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn python_smtplib_message_arrives_byte_for_byte_in_body() {
    let mx = Exim::start(&EximConfig {
        mailboxes: &["oct"],
        ..Default::default()
    })
    .unwrap();
    let script = r#"
import smtplib, sys
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]))
s.sendmail('a@ps.test', ['oct@oct.test'], b'Subject: t\r\n\r\nline\r\n.\r\n..x\r\n')
s.quit()
"#;
    let out = Command::new("python3")
        .args(["-c", script, &mx.port().to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let msgs = mx.wait_for_messages("oct", 1, WAIT).unwrap();
    // Exim stores messages with LF line ends; the dot lines survive unstuffed.
    assert!(
        msgs[0].ends_with(b"\n\nline\n.\n..x\n"),
        "{}",
        String::from_utf8_lossy(&msgs[0])
    );
}

#[test]
fn smarthost_mode_relays_to_another_server_and_queues_while_it_is_down() {
    let downstream = Exim::start(&EximConfig {
        mailboxes: &["am"],
        ..Default::default()
    })
    .unwrap();
    let relay = Exim::start(&EximConfig {
        mailboxes: &["oct"],
        smarthost: Some(downstream.addr()),
        ..Default::default()
    })
    .unwrap();
    let out = swaks(relay.port(), "am@caisse.test", "relayed body");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let msgs = downstream
        .wait_for_messages("am", 1, WAIT)
        .unwrap_or_else(|e| panic!("{e}\n--- relay ---\n{}", relay.log()));
    assert!(String::from_utf8_lossy(&msgs[0]).contains("relayed body"));
    // Local mailboxes of the relay stay local.
    let out = swaks(relay.port(), "oct@oct.test", "local body");
    assert!(out.status.success());
    relay.wait_for_messages("oct", 1, WAIT).unwrap();

    // Downstream gone: the relay accepts and keeps the message queued.
    let port = downstream.port();
    drop(downstream);
    let out = swaks(relay.port(), "am@caisse.test", "queued body");
    assert!(out.status.success());
    let mut queued = 0;
    for _ in 0..100 {
        queued = relay.queue_len().unwrap();
        if queued == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(queued, 1, "{}", relay.log());
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn drop_kills_the_servers_and_removes_their_directories() {
    let mx = Exim::start(&EximConfig {
        mailboxes: &["oct"],
        ..Default::default()
    })
    .unwrap();
    let (port, root) = (mx.port(), mx.root().to_owned());
    let pop = Dovecot::start(&[("oct", "pw", mx.maildir("oct").unwrap())]).unwrap();
    let pop_port = pop.port();
    drop(pop);
    drop(mx);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    assert!(TcpStream::connect(("127.0.0.1", pop_port)).is_err());
    assert!(!root.exists());
}

#[test]
fn bad_mailbox_name_is_a_configuration_error() {
    let err = Exim::start(&EximConfig {
        mailboxes: &["a:b"],
        ..Default::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("a:b"));
}
