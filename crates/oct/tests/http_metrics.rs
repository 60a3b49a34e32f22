//! Issue 14 point 6 on a running service: `/metrics` scraped and parsed moves after messages
//! are sent over SMTP (received, processed, quarantined by reason, processing latency, queue
//! per destination, delivery outcomes); `/healthz` is 200 while everything runs; the console
//! refuses a wrong password, sends strangers to the login, and refuses a POST without its CSRF
//! token.

mod http_common;
mod pipeline_common;

use http_common::*;
use pipeline_common::*;
use svoct_mail::secret::Secret;
use svoct_mail::transport::{SmtpConfig, SmtpEnvelope, SmtpTransport, Transport};
use svoct_oct::service::Running;

async fn send(port: u16, from: &str, raw: Vec<u8>) {
    let from = from.to_owned();
    let c = SmtpTransport::new(&SmtpConfig::plain("127.0.0.1", port)).expect("client");
    tokio::task::spawn_blocking(move || c.send(&SmtpEnvelope::new(&from, OCT_ADDRESS), &raw))
        .await
        .expect("join")
        .expect("ingress accepts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_the_traffic_and_health_is_ok() {
    // Nothing listens on the downstream port: every forward is deferred, and stays queued.
    let down = svoct_testkit::free_port().expect("port");
    let dir = tempfile::tempdir().expect("tempdir");
    let users = dir.path().join("users");
    svoct_oct::http::auth::add_user(&users, "alice", &Secret::new(b"s3cret pw".to_vec())).expect("user");
    let extra = format!(
        "[http]\nlisten = \"127.0.0.1:0\"\nusers_file = \"{}\"\n",
        users.display()
    );
    let world = World::new(down, &extra);
    // The forwards must still be queued when the test scrapes, however slow the machine.
    world.keep_forwards_queued();
    let running = Running::start(world.config()).await.expect("starts");
    let smtp = running.local_addr().expect("ingress").port();
    let http = running.http_addr().expect("http");

    let health = tokio::task::spawn_blocking(move || request(http, "GET", "/healthz", None, None))
        .await
        .expect("join");
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));

    let before = parse_metrics(&request(http, "GET", "/metrics", None, None).body);
    assert_eq!(before["svoct_messages_received_total"], 0.0);

    let file = single_file(&synth(6, 2, false, 7));
    send(
        smtp,
        PS_ADDRESS,
        ps_message(&world, PS_ADDRESS, &file, PS_NUMBER, 6, 1, false),
    )
    .await;
    let stranger = ps_message(&world, "stranger@ps.example", &file, PS_NUMBER, 6, 2, false);
    send(smtp, "stranger@ps.example", stranger).await;

    let scrape = move || {
        let r = request(http, "GET", "/metrics", None, None);
        assert_eq!(r.status, 200);
        assert!(
            r.header("content-type")
                .is_some_and(|c| c.starts_with("text/plain; version=0.0.4"))
        );
        parse_metrics(&r.body)
    };
    let m = tokio::task::spawn_blocking(move || {
        let mut m = scrape();
        wait_until("two messages processed and a deferred delivery", || {
            m = scrape();
            m["svoct_messages_processed_total"] == 2.0
                && m.get("svoct_deliveries_total{outcome=\"deferred\"}")
                    .is_some_and(|v| *v >= 1.0)
        });
        m
    })
    .await
    .expect("join");
    assert_eq!(m["svoct_messages_received_total"], 2.0);
    assert!(m["svoct_received_bytes_total"] > 1000.0);
    assert_eq!(
        m["svoct_messages_quarantined_total{reason=\"unknown_sender\"}"],
        1.0
    );
    assert_eq!(m["svoct_processing_seconds_count"], 2.0);
    assert_eq!(m["svoct_processing_seconds_bucket{le=\"+Inf\"}"], 2.0);
    assert!(m["svoct_queue_depth{destination=\"route 100\"}"] >= 1.0, "{m:?}");
    assert!(m.contains_key("svoct_queue_oldest_age_seconds{destination=\"route 100\"}"));
    assert!(m.contains_key("svoct_spool_bytes"));
    // The PS's ARTs wait too: labelled `ps`, never with the practice's address.
    assert!(m.keys().all(|k| !k.contains('@')), "{m:?}");

    let console = tokio::task::spawn_blocking(move || console_checks(http, &users)).await;
    running.shutdown().await;
    console.expect("console checks");
}

/// The login and CSRF rules, over plain HTTP; an operator added while the service runs logs in.
fn console_checks(http: std::net::SocketAddr, users: &std::path::Path) {
    let anonymous = request(http, "GET", "/queue", None, None);
    assert_eq!(
        (anonymous.status, anonymous.header("location")),
        (303, Some("/login"))
    );
    let wrong = request(http, "POST", "/login", None, Some("user=alice&password=nope"));
    assert_eq!(wrong.status, 401);
    assert!(session_cookie(&wrong).is_none());
    let unknown = request(http, "POST", "/login", None, Some("user=bob&password=s3cret+pw"));
    assert_eq!(unknown.status, 401);
    svoct_oct::http::auth::add_user(users, "bob", &Secret::new(b"b0b pw".to_vec())).expect("bob");
    let bob = request(http, "POST", "/login", None, Some("user=bob&password=b0b+pw"));
    assert_eq!(bob.status, 303, "a new operator needs no restart: {bob:?}");

    let login = request(
        http,
        "POST",
        "/login",
        None,
        Some("user=alice&password=s3cret+pw"),
    );
    assert_eq!(login.status, 303, "{login:?}");
    let set = login.header("set-cookie").expect("a cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = session_cookie(&login).expect("cookie");

    let queue = request(http, "GET", "/queue", Some(&cookie), None);
    assert_eq!(queue.status, 200);
    assert!(
        queue.body.contains("cpam100@am.example"),
        "a queued forward is listed"
    );
    let id = queue
        .body
        .split("<a href=\"/queue/")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a row link")
        .to_owned();
    let forged = request(
        http,
        "POST",
        &format!("/queue/{id}/hold"),
        Some(&cookie),
        Some("csrf=forged"),
    );
    assert_eq!(forged.status, 403);
    let item = request(http, "GET", &format!("/queue/{id}"), Some(&cookie), None);
    assert!(
        item.body.contains("id=\"state\">pending<"),
        "not held by the forged POST"
    );
    let token = csrf(&item.body);
    let held = request(
        http,
        "POST",
        &format!("/queue/{id}/hold"),
        Some(&cookie),
        Some(&format!("csrf={token}")),
    );
    assert_eq!(held.status, 303);
    let item = request(http, "GET", &format!("/queue/{id}"), Some(&cookie), None);
    assert!(item.body.contains("id=\"state\">held<"), "{}", item.body);

    let out = request(
        http,
        "POST",
        "/logout",
        Some(&cookie),
        Some(&format!("csrf={token}")),
    );
    assert_eq!(out.status, 303);
    let after = request(http, "GET", "/queue", Some(&cookie), None);
    assert_eq!(after.status, 303, "the session is gone");
}

/// Fetches `url` with Python's urllib over TLS (the test's self-signed certificate is not
/// verified: what is tested is that the listener speaks TLS); returns status, Set-Cookie, body.
fn python_fetch(url: &str, form: Option<&str>) -> (u16, String, String) {
    let script = format!(
        "import ssl, urllib.request, urllib.error\n\
         ctx = ssl._create_unverified_context()\n\
         class NoRedirect(urllib.request.HTTPRedirectHandler):\n    def redirect_request(self, *a): return None\n\
         o = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx), NoRedirect)\n\
         data = {data}\n\
         try:\n    r = o.open('{url}', data)\nexcept urllib.error.HTTPError as e:\n    r = e\n\
         print(r.status)\nprint(r.headers.get('Set-Cookie', ''))\nprint(r.read().decode(), end='')\n",
        data = form.map_or("None".to_owned(), |f| format!("b'{f}'")),
    );
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.splitn(3, '\n');
    let status = lines.next().and_then(|s| s.parse().ok()).expect("status");
    let cookie = lines.next().unwrap_or_default().to_owned();
    (status, cookie, lines.next().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_file_must_be_private_and_tls_is_served_with_a_secure_cookie() {
    use std::os::unix::fs::PermissionsExt;
    let down = svoct_testkit::free_port().expect("port");
    let dir = tempfile::tempdir().expect("tempdir");
    let users = dir.path().join("users");
    svoct_oct::http::auth::add_user(&users, "alice", &Secret::new(b"pw".to_vec())).expect("user");
    std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let world = World::new(down, "");
    let extra = format!(
        "[http]\nlisten = \"127.0.0.1:0\"\nusers_file = \"{}\"\ntls_certificate = \"{d}/oct.crt\"\ntls_key = \"{d}/oct.key\"\n",
        users.display(),
        d = world.dir.path().display()
    );
    std::fs::write(&world.config_path, config_text(world.dir.path(), down, &extra)).expect("config");

    let err = Running::start(world.config())
        .await
        .expect_err("a readable users file");
    assert!(err.to_string().contains("mode 644"), "{err}");
    let (ok, out, _) = svoct(&svoct_binary(), &world, &["check"]);
    assert!(
        !ok && out.contains("http.users_file") && out.contains("mode 644"),
        "{out}"
    );

    std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let running = Running::start(world.config()).await.expect("starts");
    let base = format!("https://{}", running.http_addr().expect("http"));
    let fetched = tokio::task::spawn_blocking(move || {
        (
            python_fetch(&format!("{base}/healthz"), None),
            python_fetch(&format!("{base}/login"), Some("user=alice&password=pw")),
        )
    })
    .await;
    running.shutdown().await;
    let (health, login) = fetched.expect("join");
    assert_eq!((health.0, health.2.as_str()), (200, "ok\n"));
    assert_eq!(login.0, 303, "{login:?}");
    assert!(
        login.1.contains("; Secure") && login.1.contains("HttpOnly"),
        "{}",
        login.1
    );
}
