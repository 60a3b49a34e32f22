//! Issue 14 point 7 in a real browser: headless Chromium driven over WebDriver (chromedriver,
//! through `fantoccini`) against a running `svoct oct serve` with the console and an operator
//! added by `svoct oct console-user add`. A wrong password is refused; each page shows what it
//! must (a queued forward, a quarantined message with its reason, a trace, a PS's messages);
//! **hold** and **release** on a queue item, **retry** on a quarantined message, **suspend** and
//! **resume** on a practice's page change the state database, as `svoct oct queue show --json`,
//! `quarantine show --json` and `ps show --json` say; on the practices page, **add** (a refusal
//! first), a CSV **import** (refused for a bad line, then done) and **remove** on a practice's
//! page are in `ps show --json` / `ps audit --json` with the console user as actor.
//!
//! With `SVOCT_SCREENSHOTS=1`, a PNG of each page is written to `docs/console/NAME.png`.
//! chromedriver and Chromium (its child, same process group) and the service are killed at
//! the end, failure or not, by [`Processes`]'s `Drop`.

mod http_common;
mod pipeline_common;

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use http_common::wait_until;
use pipeline_common::*;
use svoct_mail::transport::{SmtpConfig, SmtpEnvelope, SmtpTransport, Transport};

/// What the test started; killed when dropped, whatever happened.
struct Processes {
    serve: Option<Child>,
    chromedriver: Option<Child>,
}

impl Drop for Processes {
    fn drop(&mut self) {
        if let Some(mut c) = self.chromedriver.take() {
            // Chromium is chromedriver's child in its process group: the whole group goes.
            if let Some(pid) = rustix::process::Pid::from_raw(c.id() as i32) {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(mut c) = self.serve.take() {
            if let Some(pid) = rustix::process::Pid::from_raw(c.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let _ = c.wait();
        }
    }
}

fn json(bin: &Path, world: &World, args: &[&str]) -> serde_json::Value {
    let (ok, out, err) = svoct(bin, world, args);
    assert!(ok, "{args:?}: {err}");
    serde_json::from_str(&out).expect("JSON")
}

async fn screenshot(c: &Client, name: &str) {
    if std::env::var_os("SVOCT_SCREENSHOTS").is_none_or(|v| v != "1") {
        return;
    }
    let png = c.screenshot().await.expect("screenshot");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/console");
    std::fs::create_dir_all(&dir).expect("docs/console");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write PNG");
}

async fn page(c: &Client) -> String {
    c.source().await.expect("page source")
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

/// Waits until the page shows `css` (the click before it navigates).
async fn shows(c: &Client, css: &str) {
    c.wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("the page never showed {css}: {e}"));
}

async fn fill(c: &Client, css: &str, text: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .send_keys(text)
        .await
        .unwrap_or_else(|e| panic!("type into {css}: {e}"));
}

/// Starts `svoct oct serve`; returns the child and its SMTP port (the line it prints).
fn start_serve(bin: &Path, world: &World) -> (Child, u16) {
    let mut child = Command::new(bin)
        .args(["oct", "--config"])
        .arg(&world.config_path)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("svoct oct serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read");
    let port = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no 'listening on' line: {line:?}"));
    (child, port)
}

fn start_chromedriver() -> (Child, u16) {
    use std::os::unix::process::CommandExt;
    let port = svoct_testkit::free_port().expect("port");
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (Debian's chromium-driver; scripts/setup.sh installs it)");
    wait_until("chromedriver", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (child, port)
}

async fn browser(driver_port: u16, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-quic", "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .expect("a WebDriver session")
}

/// Demo-like traffic over SMTP: three PS messages (forwards stuck: the insurer is down) and
/// one from a stranger (quarantined).
async fn traffic(world: &World, smtp: u16) {
    let mut sends = Vec::new();
    for n in 1..=3u32 {
        let file = single_file(&synth(4 + n as usize, 3, false, u64::from(n)));
        sends.push((
            PS_ADDRESS,
            ps_message(world, PS_ADDRESS, &file, PS_NUMBER, 4 + n, n, false),
        ));
    }
    let file = single_file(&synth(2, 1, false, 9));
    let stranger = "dr.unknown@ps.example";
    sends.push((
        stranger,
        ps_message(world, stranger, &file, "987654321", 2, 9, false),
    ));
    for (from, raw) in sends {
        let c = SmtpTransport::new(&SmtpConfig::plain("127.0.0.1", smtp)).expect("client");
        tokio::task::spawn_blocking(move || c.send(&SmtpEnvelope::new(from, OCT_ADDRESS), &raw))
            .await
            .expect("join")
            .expect("ingress accepts");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_chromium() {
    let bin = svoct_binary();
    let down = svoct_testkit::free_port().expect("port");
    let http = svoct_testkit::free_port().expect("port");
    let boxes = tempfile::tempdir().expect("tempdir");
    let extra = format!(
        "[[delivery.local]]\naddress = \"{PS_ADDRESS}\"\nmaildir = \"{}\"\n\n\
         [http]\nlisten = \"127.0.0.1:{http}\"\nusers_file = \"console-users\"\n",
        boxes.path().join("ps").display()
    );
    let world = World::new(down, &extra);
    // The forwards must still be pending when the test holds one, however slow the machine.
    world.keep_forwards_queued();
    // The operator, through the CLI, the password on standard input.
    let mut add = Command::new(&bin)
        .args(["oct", "--config"])
        .arg(&world.config_path)
        .args(["console-user", "add", "alice"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("console-user add");
    add.stdin
        .take()
        .expect("stdin")
        .write_all(b"correct horse\n")
        .expect("write");
    assert!(add.wait().expect("wait").success());

    let mut procs = Processes {
        serve: None,
        chromedriver: None,
    };
    let (serve, smtp) = start_serve(&bin, &world);
    procs.serve = Some(serve);
    traffic(&world, smtp).await;
    let world = std::sync::Arc::new(world);
    let w = world.clone();
    let bin2 = bin.clone();
    tokio::task::spawn_blocking(move || {
        wait_until("4 processed, the forwards tried once", || {
            let q = json(&bin2, &w, &["queue", "list", "--json"]);
            let rows = q.as_array().cloned().unwrap_or_default();
            rows.iter()
                .filter(|r| r["kind"] == "forward" && r["attempts"].as_u64() >= Some(1))
                .count()
                >= 3
                && json(&bin2, &w, &["quarantine", "list", "--json"])
                    .as_array()
                    .is_some_and(|a| !a.is_empty())
        })
    })
    .await
    .expect("join");

    let (driver, driver_port) = start_chromedriver();
    procs.chromedriver = Some(driver);
    let profile = tempfile::tempdir().expect("profile dir");
    let c = browser(driver_port, profile.path()).await;
    // A failed assertion in `walk` unwinds through `procs`, whose Drop kills everything.
    walk(&c, &bin, &world, http).await;
    let _ = c.close().await;
    drop(procs);
}

/// The pages and actions, in the browser.
async fn walk(c: &Client, bin: &Path, world: &World, http: u16) {
    let base = format!("http://127.0.0.1:{http}");
    c.goto(&format!("{base}/queue")).await.expect("goto");
    assert!(
        c.current_url().await.expect("url").path().ends_with("/login"),
        "sent to the login"
    );
    fill(c, "#user", "alice").await;
    fill(c, "#password", "wrong").await;
    click(c, "#login").await;
    shows(c, "#refused").await;
    screenshot(c, "login").await;
    fill(c, "#user", "alice").await;
    fill(c, "#password", "correct horse").await;
    click(c, "#login").await;
    shows(c, "#flow").await;

    let overview = page(c).await;
    assert!(overview.contains("Messages per hour"), "{overview}");
    assert!(
        overview.contains("route 100"),
        "queue per destination: {overview}"
    );
    assert!(
        overview.contains("unknown_sender"),
        "quarantine by reason: {overview}"
    );
    screenshot(c, "overview").await;

    c.goto(&format!("{base}/queue")).await.expect("goto");
    shows(c, "#queue").await;
    let queue = page(c).await;
    // The insurer is down: the forwards wait (pending with an hour's backoff), with the refused
    // connection as their last error.
    assert!(
        queue.contains("cpam100@am.example") && queue.contains(">forward<"),
        "{queue}"
    );
    screenshot(c, "queue").await;
    let rows = json(bin, world, &["queue", "list", "--json"]);
    let id = rows
        .as_array()
        .and_then(|a| a.iter().find(|r| r["kind"] == "forward"))
        .and_then(|r| r["id"].as_i64())
        .expect("a queued forward");
    click(c, &format!("#row-{id} a")).await;
    shows(c, "#hold").await;
    click(c, "#hold").await;
    shows(c, "#done").await;
    let shown = json(bin, world, &["queue", "show", &id.to_string(), "--json"]);
    assert_eq!(shown["state"], "held", "{shown}");
    screenshot(c, "queue-item").await;
    click(c, "#release").await;
    shows(c, "#hold").await;
    let shown = json(bin, world, &["queue", "show", &id.to_string(), "--json"]);
    assert_ne!(shown["state"], "held", "{shown}");

    c.goto(&format!("{base}/quarantine")).await.expect("goto");
    shows(c, "#quarantine").await;
    let quarantine = page(c).await;
    assert!(
        quarantine.contains("unknown_sender") && quarantine.contains("dr.unknown@ps.example"),
        "{quarantine}"
    );
    screenshot(c, "quarantine").await;
    let q = json(bin, world, &["quarantine", "list", "--json"]);
    let qid = q
        .as_array()
        .and_then(|a| a.first())
        .and_then(|r| r["id"].as_i64())
        .expect("a quarantined message");
    click(c, &format!("#q-{qid} a")).await;
    shows(c, "#retry").await;
    screenshot(c, "quarantine-item").await;
    click(c, "#retry").await;
    shows(c, "#done").await;
    let shown = json(bin, world, &["quarantine", "show", &qid.to_string(), "--json"]);
    let state = shown["message"]["state"].as_str().unwrap_or_default().to_owned();
    assert!(
        state == "retry" || state == "retried",
        "marked for retry: {shown}"
    );

    c.goto(&format!("{base}/trace")).await.expect("goto");
    let spool_id = rows
        .as_array()
        .and_then(|a| a.iter().find(|r| r["id"] == id))
        .and_then(|r| r["spool_id"].as_str())
        .expect("spool id")
        .to_owned();
    fill(c, "#q", &spool_id).await;
    click(c, "#search").await;
    shows(c, ".trace").await;
    let trace = page(c).await;
    assert!(
        trace.contains(&spool_id) && trace.contains("cpam100@am.example") && trace.contains(PS_NUMBER),
        "{trace}"
    );
    screenshot(c, "trace").await;

    c.goto(&format!("{base}/ps/{PS_NUMBER}")).await.expect("goto");
    shows(c, "#messages").await;
    let ps = page(c).await;
    assert!(ps.contains(&spool_id) && ps.contains("processed"), "{ps}");
    assert!(
        ps.contains(PS_ADDRESS) && ps.contains("id=\"ps-state\">active"),
        "{ps}"
    );
    screenshot(c, "ps").await;
    // Suspend the practice's account, then resume it: the state database says so each time.
    fill(c, "#suspend-reason", "cotisation impayee").await;
    click(c, "#suspend").await;
    shows(c, "#done").await;
    let shown = json(bin, world, &["ps", "show", PS_NUMBER, "--json"]);
    assert_eq!(shown["practice"]["state"], "suspended", "{shown}");
    assert!(
        page(c).await.contains("cotisation impayee"),
        "the reason is shown"
    );
    click(c, "#resume").await;
    shows(c, "#suspend").await;
    let shown = json(bin, world, &["ps", "show", PS_NUMBER, "--json"]);
    assert_eq!(shown["practice"]["state"], "active", "{shown}");

    practices(c, bin, world, &base).await;

    click(c, "#logout").await;
    shows(c, "#login").await;
    c.goto(&format!("{base}/queue")).await.expect("goto");
    assert!(
        c.current_url().await.expect("url").path().ends_with("/login"),
        "logged out"
    );
}

/// The practices page and its forms: add (a refusal keeps what was typed), the list, a CSV
/// import refused for a bad line then a good one, a removal with its reason; the state database
/// has each change with the console user as actor.
async fn practices(c: &Client, bin: &Path, world: &World, base: &str) {
    // An unregistered PS's page says so and links to the add form, PS number filled in.
    c.goto(&format!("{base}/ps/555000001")).await.expect("goto");
    shows(c, "#unregistered").await;
    click(c, "#register").await;
    shows(c, "#add-address").await;
    fill(c, "#add-address", "dr.neuf@ps.example").await;
    fill(c, "#add-sender_number", "55500X").await;
    click(c, "#add-practice").await;
    shows(c, "#add-problems").await;
    let refused = page(c).await;
    assert!(refused.contains("sender_number"), "the field is named: {refused}");
    let kept = c
        .find(Locator::Css("#add-address"))
        .await
        .expect("field")
        .prop("value")
        .await
        .expect("value");
    assert_eq!(
        kept.as_deref(),
        Some("dr.neuf@ps.example"),
        "what was typed is kept"
    );
    c.find(Locator::Css("#add-sender_number"))
        .await
        .expect("field")
        .clear()
        .await
        .expect("clear");
    fill(c, "#add-sender_number", "555000001").await;
    click(c, "#add-practice").await;
    shows(c, "#done").await;
    assert!(page(c).await.contains("id=\"ps-state\">active"));

    c.goto(&format!("{base}/ps")).await.expect("goto");
    shows(c, "#practices").await;
    let list = page(c).await;
    assert!(
        list.contains("dr.neuf@ps.example") && list.contains(PS_ADDRESS),
        "{list}"
    );

    // One bad line: nothing imported, the line named.
    let header = "address,sender_number,ps_number,category,mailbox,certificate";
    let good = "dr.csv@ps.example,555000002,555000002,XX,,";
    fill(
        c,
        "#csv",
        &format!("{header}\n{good}\nbad.example,12x,555000003,XX,,\n"),
    )
    .await;
    click(c, "#import-csv").await;
    shows(c, "#import-problems").await;
    let refused = page(c).await;
    assert!(refused.contains("line 3"), "{refused}");
    let (found, _, _) = svoct(bin, world, &["ps", "show", "dr.csv@ps.example", "--json"]);
    assert!(!found, "all or nothing: the good line was not imported");
    c.find(Locator::Css("#csv"))
        .await
        .expect("textarea")
        .clear()
        .await
        .expect("clear");
    fill(c, "#csv", &format!("{header}\n{good}\n")).await;
    click(c, "#import-csv").await;
    shows(c, "#imported").await;
    assert!(page(c).await.contains("1 added"));
    screenshot(c, "practices").await;
    let shown = json(bin, world, &["ps", "show", "dr.csv@ps.example", "--json"]);
    assert_eq!(shown["practice"]["ps_number"], "555000002", "{shown}");
    assert_eq!(shown["audit"][0]["actor"], "alice", "{shown}");

    // The same import from a file, chosen in the file input (a spreadsheet's export: CRLF).
    let file = world.dir.path().join("practices.csv");
    std::fs::write(
        &file,
        format!("{header}\r\ndr.file@ps.example,555000004,555000004,XX,,\r\n"),
    )
    .expect("csv file");
    fill(c, "#csv-file", &file.display().to_string()).await;
    click(c, "#upload-csv").await;
    shows(c, "#imported").await;
    assert!(page(c).await.contains("1 added"));
    let shown = json(bin, world, &["ps", "show", "dr.file@ps.example", "--json"]);
    assert_eq!(shown["practice"]["ps_number"], "555000004", "{shown}");
    assert_eq!(shown["audit"][0]["actor"], "alice", "{shown}");

    // Removal, with its reason.
    c.goto(&format!("{base}/ps/555000001")).await.expect("goto");
    fill(c, "#remove-reason", "cabinet ferme").await;
    click(c, "#remove").await;
    shows(c, "#unregistered").await;
    let (found, _, _) = svoct(bin, world, &["ps", "show", "555000001", "--json"]);
    assert!(!found, "removed");
    let trail = json(bin, world, &["ps", "audit", "dr.neuf@ps.example", "--json"]);
    let actions: Vec<(String, String)> = trail
        .as_array()
        .expect("rows")
        .iter()
        .map(|a| {
            (
                a["action"].as_str().unwrap_or_default().to_owned(),
                a["actor"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("add".to_owned(), "alice".to_owned()),
            ("remove".to_owned(), "alice".to_owned())
        ],
        "{trail}"
    );
    assert!(trail.to_string().contains("cabinet ferme"), "{trail}");
}
