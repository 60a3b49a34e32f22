//! Issue 14 points 3 and 9: a running `svoct oct serve` reloads its configuration on SIGHUP.
//! Real service process, real signals, real SMTP and TLS sessions:
//!
//! - a message quarantined for want of a route is forwarded by `quarantine retry` once the
//!   route is in the file, and the PS gets exactly one "refused" ART in all;
//! - a broken file and a SIGHUP leave the running configuration in force (it still forwards)
//!   and the log says why, naming the file and the finding;
//! - a renewed STARTTLS certificate is the one a new session sees after `svoct oct reload`,
//!   while a session opened before keeps the old one;
//! - new accepted addresses apply to the next session, a changed `pipeline.workers` is kept and
//!   logged as needing a restart, and `reload` with no service running fails;
//! - reloads back to back while messages flow lose and duplicate nothing;
//! - the web console's Retry does what `quarantine retry` does (the service reloads its file
//!   in-process first; a broken file refuses the retry with the finding shown, nothing
//!   marked), and its "Reload configuration" button reloads or shows the findings.
//!
//! Deliveries need no mail server: forwards go to an `.eml` directory, the PS's ARTs to a
//! Maildir the OCT hosts for it.

mod http_common;
mod pipeline_common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pipeline_common::*;
use svoct_formats::art::{Art, FileStatus};
use svoct_mail::transport::{SmtpConfig, SmtpEnvelope, SmtpTransport, Transport};

/// Long enough for any step of the service on a loaded machine; only a bound for waiting on a
/// condition, never a measured time.
const PATIENCE: Duration = Duration::from_secs(60);

/// The PS's ARTs land in `ps-mail`, forwards in `out` (paths relative to the configuration
/// file, i.e. in the world's directory).
fn delivery_extra() -> String {
    format!(
        "[delivery]\ndirectory = \"out\"\n\n[[delivery.local]]\naddress = \"{PS_ADDRESS}\"\nmaildir = \"ps-mail\"\n"
    )
}

/// A running `svoct oct serve` and the log lines read so far.
struct Service {
    serve: ServeChild,
    seen: Vec<String>,
}

impl Service {
    fn start(bin: &Path, world: &World) -> Service {
        Service {
            serve: ServeChild::start(bin, world),
            seen: Vec::new(),
        }
    }

    fn pid(&self) -> u32 {
        self.serve.child.id()
    }

    fn addr(&self) -> SocketAddr {
        self.serve.addr
    }

    /// Waits for a log line containing `needle` (and returns it).
    fn wait_log(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.serve.log.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => panic!("no log line {needle:?}:\n{}", self.seen.join("\n")),
            }
        }
    }

    fn send(&self, raw: &[u8]) {
        SmtpTransport::new(&SmtpConfig::plain("127.0.0.1", self.addr().port()))
            .expect("client")
            .send(&SmtpEnvelope::new(PS_ADDRESS, OCT_ADDRESS), raw)
            .expect("accepted");
    }
}

/// Polls `f` until it gives `Some`, at most [`PATIENCE`].
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// The messages written to the `.eml` directory (each also has its envelope file).
fn forwards(world: &World) -> usize {
    files_in(&world.dir.path().join("out"))
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .count()
}

/// The ARTs delivered to the PS's Maildir.
fn arts(world: &World) -> Vec<Art> {
    arts_in_maildir(&world.dir.path().join("ps-mail"))
}

fn refused(arts: &[Art]) -> usize {
    arts.iter()
        .filter(|a| a.file_status == FileStatus::Refused)
        .count()
}

/// `oct status --json` of the world.
fn status(bin: &Path, world: &World) -> serde_json::Value {
    let (ok, out, err) = svoct(bin, world, &["status", "--json"]);
    assert!(ok, "{err}");
    serde_json::from_str(&out).expect("status JSON")
}

fn add_to_config(world: &World, text: &str) {
    let mut config = std::fs::read_to_string(&world.config_path).expect("config");
    config.push_str(text);
    std::fs::write(&world.config_path, config).expect("config");
}

const ROUTES_103_104: &str = "\n[[route]]\norganisation = \"103\"\nmailbox = \"cpam103@am.example\"\nplaintext = true\n\n[[route]]\norganisation = \"104\"\nmailbox = \"cpam104@am.example\"\nplaintext = true\n";

#[test]
fn retry_after_adding_a_route_forwards_with_one_refusal_in_all() {
    let bin = svoct_binary();
    let world = World::new(9, &delivery_extra());
    let mut service = Service::start(&bin, &world);
    // Five destinations; 103 and 104 have no route: the whole message is quarantined.
    let file = single_file(&synth(25, 5, false, 11));
    service.send(&ps_message(&world, PS_ADDRESS, &file, PS_NUMBER, 25, 1, false));
    let id = wait_for("the quarantine", || {
        let s = status(&bin, &world);
        s["quarantined"][0]["id"].as_i64()
    });
    wait_for("the refusal ART", || (arts(&world).len() == 1).then_some(()));
    assert_eq!(refused(&arts(&world)), 1);

    // A broken file: the retry is refused with the finding, nothing is marked.
    let good = std::fs::read_to_string(&world.config_path).expect("config");
    add_to_config(
        &world,
        "\n[[route]]\norganisation = \"103\"\nmailbox = \"\"\nplaintext = true\n",
    );
    let (ok, _, err) = svoct(&bin, &world, &["quarantine", "retry", &id.to_string()]);
    assert!(!ok, "refused");
    assert!(err.contains("route[3].mailbox"), "{err}");
    std::fs::write(&world.config_path, good).expect("config");
    assert_eq!(status(&bin, &world)["quarantined"][0]["state"], "held");

    add_to_config(&world, ROUTES_103_104);
    let (ok, out, err) = svoct(&bin, &world, &["quarantine", "retry", &id.to_string()]);
    assert!(ok, "{out}{err}");
    let pid = service.pid();
    assert!(
        out.contains(&format!("pid {pid}")),
        "says which service reloaded: {out}"
    );
    service.wait_log("configuration reloaded");

    // Forwarded: one file per destination, then nothing left to deliver.
    wait_for("the forwards", || {
        let s = status(&bin, &world);
        (s["counters"]["quarantine"]["retried"] == 1 && s["undelivered_count"] == 0).then_some(())
    });
    assert_eq!(forwards(&world), 5, "five destinations, once each");
    let all = arts(&world);
    assert_eq!(all.len(), 2, "the refusal, then the acceptance");
    assert_eq!(refused(&all), 1, "exactly one refused ART in all");
}

#[test]
fn a_broken_file_keeps_the_running_configuration_and_says_why() {
    let bin = svoct_binary();
    let world = World::new(9, &delivery_extra());
    let mut service = Service::start(&bin, &world);
    let good = std::fs::read_to_string(&world.config_path).expect("config");

    // A route without a mailbox: `svoct oct check` finds it.
    add_to_config(
        &world,
        "\n[[route]]\norganisation = \"105\"\nmailbox = \"\"\nplaintext = true\n",
    );
    let (ok, _, err) = svoct(&bin, &world, &["reload"]);
    assert!(!ok, "reload refuses an invalid file before signalling");
    assert!(err.contains("route["), "names the finding: {err}");
    // Signalled anyway (a plain `kill -HUP`): the service checks by itself.
    svoct_oct::instance::request_reload(service.pid()).expect("SIGHUP");
    let refused_line = service.wait_log("configuration reload refused");
    assert!(
        refused_line.contains(&world.config_path.display().to_string()),
        "names the file: {refused_line}"
    );
    let finding = service.wait_log("configuration reload: error");
    assert!(finding.contains("route["), "names the finding: {finding}");

    // Still the old configuration, still working: a message for routed destinations goes.
    let file = single_file(&synth(9, 3, false, 21));
    service.send(&ps_message(&world, PS_ADDRESS, &file, PS_NUMBER, 9, 1, false));
    // (`oct status` would refuse the broken file: the deliveries are read where they land.)
    wait_for("the forwards and the ART", || {
        (forwards(&world) == 3 && arts(&world).len() == 1).then_some(())
    });
    assert_eq!(
        refused(&arts(&world)),
        0,
        "accepted under the running configuration"
    );

    // Mended, the file reloads: `reload` waits for the service's answer.
    std::fs::write(&world.config_path, good).expect("config");
    let (ok, out, err) = svoct(&bin, &world, &["reload"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("configuration reloaded"), "{out}");
    assert!(out.contains("3 route(s)"), "{out}");
    let file = world.config_path.display().to_string();
    assert!(out.contains(&file), "names the file the service read: {out}");
}

/// Reads one SMTP reply (all its lines) from `stream`.
fn reply(stream: &mut impl Read) -> String {
    let mut text = String::new();
    let mut byte = [0u8; 1];
    loop {
        stream.read_exact(&mut byte).expect("reply");
        text.push(char::from(byte[0]));
        if text.ends_with("\r\n") {
            let last = text.trim_end().rsplit("\r\n").next().unwrap_or("").to_owned();
            if last.len() >= 4 && last.as_bytes()[3] == b' ' {
                return text;
            }
        }
    }
}

/// Opens a session up to the point where STARTTLS would be sent.
fn session_before_starttls(addr: SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).expect("connect");
    assert!(reply(&mut tcp).starts_with("220"));
    tcp.write_all(b"EHLO client.example\r\n").expect("ehlo");
    let ehlo = reply(&mut tcp);
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    tcp
}

/// Sends STARTTLS on `tcp` and returns the certificate the server presents (DER).
fn served_certificate(mut tcp: TcpStream) -> Vec<u8> {
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
    tcp.write_all(b"STARTTLS\r\n").expect("starttls");
    assert!(reply(&mut tcp).starts_with("220"));
    let mut connector = SslConnector::builder(SslMethod::tls_client()).expect("connector");
    // Throw-away certificates: what matters is which one is served.
    connector.set_verify(SslVerifyMode::NONE);
    let tls = connector.build().connect("oct.example", tcp).expect("handshake");
    tls.ssl()
        .peer_certificate()
        .expect("a certificate")
        .to_der()
        .expect("DER")
}

#[test]
fn a_renewed_starttls_certificate_is_served_to_new_sessions_after_reload() {
    use svoct_testkit::certs::TestIdentity;
    let bin = svoct_binary();
    let world = World::new(9, "");
    let old = TestIdentity::new("oct.example");
    old.write_pem(world.dir.path(), "smtp");
    let text = std::fs::read_to_string(&world.config_path).expect("config");
    let text = text.replacen(
        "listen = \"127.0.0.1:0\"\n",
        "listen = \"127.0.0.1:0\"\ntls_certificate = \"smtp.crt\"\ntls_key = \"smtp.key\"\n",
        1,
    );
    std::fs::write(&world.config_path, text).expect("config");
    let service = Service::start(&bin, &world);

    assert_eq!(
        served_certificate(session_before_starttls(service.addr())),
        old.cert_der()
    );
    // Opened before the renewal, upgraded after: the session keeps the settings it began with.
    let in_progress = session_before_starttls(service.addr());

    let renewed = TestIdentity::new("oct.example");
    renewed.write_pem(world.dir.path(), "smtp");
    let (ok, out, err) = svoct(&bin, &world, &["reload"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("STARTTLS on"), "{out}");

    assert_eq!(
        served_certificate(session_before_starttls(service.addr())),
        renewed.cert_der(),
        "a new session sees the renewed certificate"
    );
    assert_eq!(served_certificate(in_progress), old.cert_der());
}

/// The reply to `RCPT TO:<rcpt>` in a new session.
fn rcpt_reply(addr: SocketAddr, rcpt: &str) -> String {
    let mut tcp = TcpStream::connect(addr).expect("connect");
    assert!(reply(&mut tcp).starts_with("220"));
    tcp.write_all(b"EHLO client.example\r\n").expect("ehlo");
    assert!(reply(&mut tcp).starts_with("250"));
    tcp.write_all(format!("MAIL FROM:<{PS_ADDRESS}>\r\n").as_bytes())
        .expect("mail");
    assert!(reply(&mut tcp).starts_with("250"));
    tcp.write_all(format!("RCPT TO:<{rcpt}>\r\n").as_bytes())
        .expect("rcpt");
    reply(&mut tcp)
}

#[test]
fn new_accepted_addresses_apply_at_once_and_restart_settings_wait() {
    let bin = svoct_binary();
    let world = World::new(9, "");
    let mut service = Service::start(&bin, &world);
    let returns = "retours@oct.example";
    assert!(
        rcpt_reply(service.addr(), returns).starts_with("550"),
        "not an OCT address yet"
    );

    let text = std::fs::read_to_string(&world.config_path).expect("config");
    let text = text.replacen(
        "listen = \"127.0.0.1:0\"\n",
        &format!("listen = \"127.0.0.1:0\"\naddresses = [\"{returns}\"]\n"),
        1,
    );
    std::fs::write(&world.config_path, text).expect("config");
    // A setting read once at start: kept, and said so.
    add_to_config(&world, "\n[pipeline]\nworkers = 3\n");
    let (ok, out, err) = svoct(&bin, &world, &["reload"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("2 accepted address(es)"), "{out}");
    let warning = service.wait_log("need a restart");
    assert!(warning.contains("pipeline.workers"), "{warning}");

    assert!(
        rcpt_reply(service.addr(), returns).starts_with("250"),
        "accepted after the reload"
    );

    drop(service);
    let (ok, _, err) = svoct(&bin, &world, &["reload"]);
    assert!(!ok, "nothing to reload");
    assert!(err.contains("no service runs"), "{err}");
}

#[test]
fn reloads_while_messages_flow_lose_and_duplicate_nothing() {
    let bin = svoct_binary();
    let world = World::new(9, &delivery_extra());
    let service = Service::start(&bin, &world);
    const MESSAGES: u32 = 12;
    let raws: Vec<Vec<u8>> = (1..=MESSAGES)
        .map(|n| {
            let file = single_file(&synth(9, 3, false, 100 + u64::from(n)));
            ps_message(&world, PS_ADDRESS, &file, PS_NUMBER, 9, n, false)
        })
        .collect();
    let pid = service.pid();
    let world_dir = world.config_path.clone();
    // Reloads back to back while the messages go in: each swaps every snapshot.
    let reloader = std::thread::spawn(move || {
        let mut acknowledged = 0;
        for _ in 0..MESSAGES {
            let state = world_dir.with_file_name("state.sqlite");
            let before = svoct_oct::instance::read_reload_ack(&state);
            svoct_oct::instance::request_reload(pid).expect("SIGHUP");
            let ack = svoct_oct::instance::wait_reload_ack(&state, pid, before.as_ref(), PATIENCE)
                .expect("acknowledged");
            assert!(ack.ok, "{}", ack.message);
            acknowledged += 1;
        }
        acknowledged
    });
    for raw in &raws {
        service.send(raw);
    }
    assert_eq!(reloader.join().expect("reloader"), MESSAGES);
    wait_for("every message delivered", || {
        (arts(&world).len() == raws.len() && forwards(&world) == 3 * raws.len()).then_some(())
    });
    let all = arts(&world);
    assert_eq!(refused(&all), 0);
    let mut compostages: Vec<&str> = all.iter().map(|a| a.compostage.as_str()).collect();
    compostages.sort_unstable();
    compostages.dedup();
    assert_eq!(compostages.len(), raws.len(), "one ART per message, none twice");
    // The state agrees: every outgoing message of every message queued once and sent.
    let s = status(&bin, &world);
    assert_eq!(s["undelivered_count"], 0, "{s}");
    assert_eq!(s["counters"]["outbox"]["sent"], 4 * MESSAGES, "{s}");
}

/// The console of a world: `[http]` on a free port, operator `alice` added by
/// `svoct oct console-user add` (password on a pipe).
fn console_world(bin: &Path) -> (World, SocketAddr) {
    let port = svoct_testkit::free_port().expect("port");
    let extra = format!(
        "{}\n[http]\nlisten = \"127.0.0.1:{port}\"\nusers_file = \"console-users\"\n",
        delivery_extra()
    );
    let world = World::new(9, &extra);
    let mut add = std::process::Command::new(bin)
        .args(["oct", "--config"])
        .arg(&world.config_path)
        .args(["console-user", "add", "alice"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("console-user add");
    add.stdin
        .take()
        .expect("stdin")
        .write_all(b"correct horse\n")
        .expect("write");
    assert!(add.wait().expect("wait").success());
    (world, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Logs in as alice: the session cookie.
fn console_login(http: SocketAddr) -> String {
    http_common::wait_until("the console", || TcpStream::connect(http).is_ok());
    let r = http_common::request(
        http,
        "POST",
        "/login",
        None,
        Some("user=alice&password=correct+horse"),
    );
    http_common::session_cookie(&r).unwrap_or_else(|| panic!("logged in: {r:?}"))
}

/// POSTs the form of `page` (its CSRF token) to `action`.
fn console_post(http: SocketAddr, cookie: &str, page: &str, action: &str) -> http_common::Response {
    let form = http_common::request(http, "GET", page, Some(cookie), None);
    assert_eq!(form.status, 200, "{}", form.body);
    let csrf = http_common::csrf(&form.body);
    http_common::request(http, "POST", action, Some(cookie), Some(&format!("csrf={csrf}")))
}

#[test]
fn console_retry_reloads_the_file_first_and_a_broken_file_refuses_it() {
    let bin = svoct_binary();
    let (world, http) = console_world(&bin);
    let mut service = Service::start(&bin, &world);
    let cookie = console_login(http);
    // Five destinations; 103 and 104 have no route: the whole message is quarantined.
    let file = single_file(&synth(25, 5, false, 11));
    service.send(&ps_message(&world, PS_ADDRESS, &file, PS_NUMBER, 25, 1, false));
    let id = wait_for("the quarantine", || {
        status(&bin, &world)["quarantined"][0]["id"].as_i64()
    });
    wait_for("the refusal ART", || (arts(&world).len() == 1).then_some(()));
    let item = format!("/quarantine/{id}");
    let retry = format!("{item}/retry");

    // A broken file: the retry is refused with the finding on the page, nothing is marked.
    let good = std::fs::read_to_string(&world.config_path).expect("config");
    add_to_config(
        &world,
        "\n[[route]]\norganisation = \"103\"\nmailbox = \"\"\nplaintext = true\n",
    );
    let refused_retry = console_post(http, &cookie, &item, &retry);
    assert_eq!(refused_retry.status, 422, "{}", refused_retry.body);
    assert!(
        refused_retry.body.contains("route[3].mailbox") && refused_retry.body.contains("not marked"),
        "{}",
        refused_retry.body
    );
    service.wait_log("configuration reload refused");
    // The overview's button says the same.
    let refused_reload = console_post(http, &cookie, "/", "/reload");
    assert_eq!(refused_reload.status, 422, "{}", refused_reload.body);
    assert!(
        refused_reload.body.contains("route[3].mailbox"),
        "{}",
        refused_reload.body
    );
    std::fs::write(&world.config_path, &good).expect("config");
    assert_eq!(status(&bin, &world)["quarantined"][0]["state"], "held");

    // The route added to the file, Retry in the console: reloaded, then marked, forwarded.
    add_to_config(&world, ROUTES_103_104);
    let marked = console_post(http, &cookie, &item, &retry);
    assert_eq!(marked.status, 303, "{}", marked.body);
    assert_eq!(
        marked.header("location"),
        Some(format!("{item}?done=retry").as_str())
    );
    let reloaded = service.wait_log("configuration reloaded");
    assert!(
        reloaded.contains("5 route(s)"),
        "the routes of the file: {reloaded}"
    );
    let action = service.wait_log("console action");
    assert!(
        action.contains("user=alice") && action.contains("retry"),
        "logged with who: {action}"
    );
    wait_for("the forwards", || {
        let s = status(&bin, &world);
        (s["counters"]["quarantine"]["retried"] == 1 && s["undelivered_count"] == 0).then_some(())
    });
    assert_eq!(forwards(&world), 5, "five destinations, once each");
    let all = arts(&world);
    assert_eq!(all.len(), 2, "the refusal, then the acceptance");
    assert_eq!(refused(&all), 1, "exactly one refused ART in all");

    // The overview's button on a good file: what is in force.
    let ok = console_post(http, &cookie, "/", "/reload");
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(
        ok.body.contains("id=\"reloaded\"") && ok.body.contains("5 route(s)"),
        "{}",
        ok.body
    );
}
