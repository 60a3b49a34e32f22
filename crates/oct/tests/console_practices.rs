//! The console's practices forms over plain HTTP, against a running service (issue 14 point 8,
//! "the same in the console"): what the browser test does not reach. A forged CSRF token adds
//! nothing; a refused add shows every field's problem and what was typed; a removal needs its
//! reason; an import larger than the bound is refused with a clear message; the list caps its rows and counts the others; the filter finds
//! by number; each change is in the audit trail with the console user as actor.

mod http_common;
mod pipeline_common;

use std::net::SocketAddr;

use http_common::*;
use pipeline_common::*;
use svoct_mail::secret::Secret;
use svoct_oct::service::Running;
use svoct_oct::state::{PracticeStore, State};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_practices_forms_check_bound_and_audit() {
    let down = svoct_testkit::free_port().expect("port");
    let dir = tempfile::tempdir().expect("tempdir");
    let users = dir.path().join("users");
    svoct_oct::http::auth::add_user(&users, "alice", &Secret::new(b"s3cret pw".to_vec())).expect("user");
    let extra = format!(
        "[http]\nlisten = \"127.0.0.1:0\"\nusers_file = \"{}\"\n",
        users.display()
    );
    let world = World::new(down, &extra);
    let running = Running::start(world.config()).await.expect("starts");
    let http = running.http_addr().expect("http");
    let state = world.config().paths.state.clone();
    let checked = tokio::task::spawn_blocking(move || checks(http, &state)).await;
    running.shutdown().await;
    checked.expect("checks");
}

fn login(http: SocketAddr) -> (String, String) {
    let login = request(
        http,
        "POST",
        "/login",
        None,
        Some("user=alice&password=s3cret+pw"),
    );
    assert_eq!(login.status, 303, "{login:?}");
    let cookie = session_cookie(&login).expect("cookie");
    let page = request(http, "GET", "/ps", Some(&cookie), None);
    assert_eq!(page.status, 200, "{page:?}");
    (cookie.clone(), csrf(&page.body))
}

fn checks(http: SocketAddr, state: &std::path::Path) {
    let db = State::open(state).expect("state");
    let (cookie, token) = login(http);
    let post = |path: &str, form: &str| request(http, "POST", path, Some(&cookie), Some(form));

    let page = request(http, "GET", "/ps", Some(&cookie), None);
    assert!(page.body.contains(PS_ADDRESS), "the seeded practice is listed");
    assert!(
        page.body.contains("href=\"/ps\""),
        "the navigation links the page"
    );

    let good = "address=dr.form%40ps.example&sender_number=700000001&ps_number=700000001&category=XX";
    let forged = post("/ps/add", &format!("csrf=forged&{good}"));
    assert_eq!(forged.status, 403);
    assert!(db.practice_find("dr.form@ps.example").expect("find").is_none());

    let bad = post(
        "/ps/add",
        &format!("csrf={token}&address=not-an-address&sender_number=12ab&ps_number=700000001&category=ZZ"),
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    for field in ["address", "sender_number", "category"] {
        assert!(
            bad.body.contains(&format!("<li>{field}:")),
            "{field} named: {}",
            bad.body
        );
    }
    assert!(bad.body.contains("value=\"12ab\""), "what was typed is kept");
    assert!(bad.body.contains("value=\"not-an-address\""));

    let added = post("/ps/add", &format!("csrf={token}&{good}"));
    assert_eq!(
        (added.status, added.header("location")),
        (303, Some("/ps/700000001?done=added"))
    );
    let p = db.practice_find("700000001").expect("find").expect("added");
    let audit = db.practice_audit(Some(p.id)).expect("audit");
    assert_eq!(
        (audit[0].action.as_str(), audit[0].actor.as_str()),
        ("add", "alice")
    );

    // A removal without a reason is refused (the browser's `required` is no check).
    let no_reason = post("/ps/700000001/remove", &format!("csrf={token}&reason=+"));
    assert_eq!(no_reason.status, 400);
    assert!(db.practice_find("700000001").expect("find").is_some());
    let removed = post("/ps/700000001/remove", &format!("csrf={token}&reason=closed"));
    assert_eq!(removed.status, 303);
    assert!(db.practice_find("700000001").expect("find").is_none());
    let page = request(http, "GET", "/ps/700000001", Some(&cookie), None);
    assert!(page.body.contains("id=\"unregistered\""), "{}", page.body);
    assert!(page.body.contains("href=\"/ps?ps_number=700000001#add\""));

    bounds(http, &cookie, &token);
    many(http, &cookie, &token);
    upload(http, &cookie, &token, &db);
}

/// The same import from an uploaded file (`multipart/form-data`): CSRF-checked, a file that
/// is not UTF-8 refused (as the CLI does), a spreadsheet export (BOM, `;`, CRLF) imported with
/// the console user in the audit trail.
fn upload(http: SocketAddr, cookie: &str, token: &str, db: &State) {
    let good: &[u8] = b"\xEF\xBB\xBFaddress;sender_number;ps_number;category;mailbox;certificate\r\n\
        dr.file@ps.example;700000777;700000777;ER;;\r\n";
    let forged = post_multipart(
        http,
        "/ps/upload",
        Some(cookie),
        &[("csrf", None, b"forged"), ("file", Some("ps.csv"), good)],
    );
    assert_eq!(forged.status, 403);
    assert!(db.practice_find("dr.file@ps.example").expect("find").is_none());

    // "Médecin" in Latin-1, as an old spreadsheet writes it.
    let latin1: &[u8] = b"address,sender_number,ps_number,category,mailbox,certificate\n\
        m\xE9decin@ps.example,700000778,700000778,XX,,\n";
    let refused = post_multipart(
        http,
        "/ps/upload",
        Some(cookie),
        &[("csrf", None, token.as_bytes()), ("file", Some("ps.csv"), latin1)],
    );
    assert_eq!(refused.status, 400);
    assert!(refused.body.contains("not UTF-8"), "{}", refused.body);

    let done = post_multipart(
        http,
        "/ps/upload",
        Some(cookie),
        &[("csrf", None, token.as_bytes()), ("file", Some("ps.csv"), good)],
    );
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("1 added, 0 updated"), "{}", done.body);
    let p = db
        .practice_find("dr.file@ps.example")
        .expect("find")
        .expect("imported");
    assert_eq!(p.fields.category, "ER");
    let audit = db.practice_audit(Some(p.id)).expect("audit");
    assert_eq!(audit[0].actor, "alice");
}

/// The import's size bound, with its message. (The route's body limit, three times the bound
/// for the URL-encoding, answers 413 too, through the same message.)
fn bounds(http: SocketAddr, cookie: &str, token: &str) {
    let csv = "a".repeat((8 << 20) + 1);
    let big = request(
        http,
        "POST",
        "/ps/import",
        Some(cookie),
        Some(&format!("csrf={token}&csv={csv}")),
    );
    assert_eq!(big.status, 413);
    assert!(big.body.contains("larger than 8 MiB"), "{}", big.body);
}

/// An import of many practices (with `update`), the cap of the list and its count, the filter.
fn many(http: SocketAddr, cookie: &str, token: &str) {
    let mut csv = String::from("address,sender_number,ps_number,category,mailbox,certificate\n");
    for i in 0..250 {
        csv.push_str(&format!("ps{i}@many.example,8{i:08},8{i:08},XX,,\n"));
    }
    let form = format!(
        "csrf={token}&update=1&csv={}",
        csv.replace('@', "%40").replace(',', "%2C").replace('\n', "%0A")
    );
    let imported = request(http, "POST", "/ps/import", Some(cookie), Some(&form));
    assert_eq!(imported.status, 200, "{}", imported.body);
    assert!(
        imported.body.contains("250 added, 0 updated"),
        "{}",
        imported.body
    );

    let page = request(http, "GET", "/ps", Some(cookie), None);
    // 251 practices (the seeded one too), 200 shown.
    assert_eq!(page.body.matches("<tr id=\"p-").count(), 200);
    assert!(page.body.contains("…and 51 more"), "never truncated silently");

    let found = request(http, "GET", "/ps?state=all&q=800000249", Some(cookie), None);
    assert_eq!(found.body.matches("<tr id=\"p-").count(), 1, "{}", found.body);
    assert!(found.body.contains("ps249@many.example"));
    let suspended = request(http, "GET", "/ps?state=suspended", Some(cookie), None);
    assert!(suspended.body.contains("id=\"practices-none\""));
}
