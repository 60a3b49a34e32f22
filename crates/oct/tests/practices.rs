//! Issue 14 point 8: the PS accounts are data in the state database, changed by
//! `svoct oct ps` while `svoct oct serve` runs (a real child process, its ingress reached over
//! SMTP) and effective for the next message, without restart or signal: a practice added after
//! the start is taken, a suspended one is refused with `suspended_sender` and an ART, a resumed
//! one is taken again, and the audit trail names who did each change. The CSV import is all
//! or nothing and names the bad line. Returns from AM still reach a suspended practice, and
//! wait in quarantine while its certificate cannot be used.

mod pipeline_common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pipeline_common::*;
use svoct_formats::art::{Art, FileStatus};
use svoct_mail::profile::{self, ParseLimits, Profile};
use svoct_mail::transport::{SmtpConfig, SmtpEnvelope, SmtpTransport, Transport};
use svoct_oct::pipeline::{Incoming, Pipeline};
use svoct_oct::practices::{self, AccountChange, Directory, Practices};
use svoct_oct::state::{MessageTrace, OctStore, OutKind, PracticeStore, Processed, State};

const PS2: &str = "ps2@ps.example";
const PS2_NUMBER: &str = "223456789";

/// `svoct oct ARGS` as operator `user`: (success, stdout, stderr).
fn svoct_as(world: &World, user: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(svoct_binary())
        .arg("oct")
        .arg("--config")
        .arg(&world.config_path)
        .args(args)
        .env("USER", user)
        .env_remove("SUDO_USER")
        .output()
        .expect("run svoct");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts `svoct oct serve`; returns the child (killed by the caller) and the ingress port.
fn serve(world: &World) -> (Child, u16) {
    let mut child = Command::new(svoct_binary())
        .args(["oct", "--config"])
        .arg(&world.config_path)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("read");
    let addr: std::net::SocketAddr = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("serve did not start: {first:?}"))
        .parse()
        .expect("address");
    (child, addr.port())
}

/// Sends PS2's invoice message number `n` (its own lots and compostage) to the ingress and
/// waits until the service committed it: its trace.
fn send_and_wait(world: &World, port: u16, n: u32) -> MessageTrace {
    let params = svoct_formats::b2::synth::SynthParams {
        ps_number: PS2_NUMBER.into(),
        ..synth(4, 1, false, 40 + u64::from(n))
    };
    let raw = ps_message(world, PS2, &single_file(&params), PS2_NUMBER, 4, n, false);
    SmtpTransport::new(&SmtpConfig::plain("127.0.0.1", port))
        .expect("client")
        .send(&SmtpEnvelope::new(PS2, OCT_ADDRESS), &raw)
        .expect("accepted");
    let state = State::open(&world.config().paths.state).expect("state");
    // A deadline, not a timed assertion: the worker is woken by the ingress at once.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = state.practice_messages(PS2, 100).expect("messages");
        if seen.len() == n as usize {
            let spool_id = &seen[0].spool_id;
            return state.trace(spool_id).expect("trace").expect("a trace");
        }
        assert!(Instant::now() < deadline, "message {n} never processed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kinds(t: &MessageTrace) -> Vec<&str> {
    t.outbox.iter().map(|o| o.kind.as_str()).collect()
}

#[test]
fn ps_changes_apply_to_a_running_service_at_once_and_are_audited() {
    // Nothing listens on port 9: forwards stay queued, which is all this test looks at.
    let world = World::new(9, "");
    let (mut child, port) = serve(&world);
    let result = std::panic::catch_unwind(|| {
        let (ok, out, err) = svoct_as(
            &world,
            "alice",
            &[
                "ps",
                "add",
                "--address",
                PS2,
                "--sender-number",
                PS2_NUMBER,
                "--ps-number",
                PS2_NUMBER,
                "--category",
                "ER",
            ],
        );
        assert!(ok, "{out}{err}");

        let accepted = send_and_wait(&world, port, 1);
        let p = accepted.processed.as_ref().expect("processed");
        assert_eq!(p.outcome, "processed", "{p:?}");
        assert!(kinds(&accepted).contains(&"forward"), "{:?}", kinds(&accepted));

        let (ok, _, err) = svoct_as(
            &world,
            "bob",
            &["ps", "suspend", PS2_NUMBER, "--reason", "fees unpaid"],
        );
        assert!(ok, "{err}");
        let refused = send_and_wait(&world, port, 2);
        let p = refused.processed.as_ref().expect("processed");
        assert_eq!(p.outcome, "quarantined", "{p:?}");
        let q = refused.quarantine.as_ref().expect("quarantine row");
        assert_eq!(q.code, "suspended_sender", "{q:?}");
        assert_eq!(kinds(&refused), ["art"], "nothing forwarded, an ART to the PS");
        let state = State::open(&world.config().paths.state).expect("state");
        let raw = state
            .outbox_raw(&refused.outbox[0].message_id)
            .expect("raw")
            .expect("ART bytes");
        let parsed = profile::parse_message(&raw, &ParseLimits::default()).expect("ART parses");
        let art = Art::parse(&parsed.attachment).expect("ART body");
        assert_eq!(art.file_status, FileStatus::Refused);
        assert_eq!(refused.outbox[0].rcpt, PS2);
        let text = String::from_utf8_lossy(&parsed.attachment);
        assert!(text.contains("compte PS suspendu"), "{text}");

        let (ok, _, err) = svoct_as(&world, "carol", &["ps", "resume", PS2]);
        assert!(ok, "{err}");
        let again = send_and_wait(&world, port, 3);
        assert_eq!(again.processed.as_ref().expect("processed").outcome, "processed");
        assert!(kinds(&again).contains(&"forward"));

        let (ok, out, err) = svoct_as(&world, "dave", &["ps", "audit", PS2, "--json"]);
        assert!(ok, "{err}");
        assert_schema("oct-ps-audit", out.trim());
        let trail: serde_json::Value = serde_json::from_str(&out).expect("json");
        let who: Vec<(&str, &str)> = trail
            .as_array()
            .expect("array")
            .iter()
            .map(|a| {
                (
                    a["actor"].as_str().unwrap_or(""),
                    a["action"].as_str().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(who, [("alice", "add"), ("bob", "suspend"), ("carol", "resume")]);

        let (ok, out, err) = svoct_as(&world, "dave", &["ps", "show", PS2, "--json"]);
        assert!(ok, "{err}");
        assert_schema("oct-ps-show", out.trim());
        let view: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(view["practice"]["state"], "active");
        assert_eq!(view["messages"].as_array().map(Vec::len), Some(3));
        assert_eq!(view["messages"][1]["code"], "suspended_sender");
    });
    let _ = child.kill();
    let _ = child.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn a_csv_import_with_a_bad_line_imports_nothing_and_names_the_line() {
    let world = World::new(9, "");
    let csv = world.dir.path().join("practices.csv");
    // A spreadsheet's export: BOM, CRLF, `;`, quotes; line 3 has a PS number with letters.
    std::fs::write(
        &csv,
        "\u{feff}address;sender_number;ps_number;category;mailbox;certificate\r\n\
         \"a@ps.example\";300000001;300000001;ER;;\r\n\
         b@ps.example;300000002;30000000B;XX;;\r\n\
         c@ps.example;300000003;300000003;;retours@ps.example;\r\n",
    )
    .expect("csv");
    let csv_s = csv.to_str().expect("path");
    // `add` checks with the rules of a `[[sender]]` block, and says which field is wrong.
    let add = [
        "ps",
        "add",
        "--address",
        "no-at-sign",
        "--sender-number",
        "1",
        "--ps-number",
        "1x",
    ];
    let (ok, _, err) = svoct_as(&world, "alice", &add);
    assert!(
        !ok && err.contains("address:") && err.contains("ps_number:"),
        "{err}"
    );
    let (ok, out, err) = svoct_as(&world, "alice", &["ps", "import", csv_s]);
    assert!(!ok, "a bad line refuses the import: {out}");
    assert!(err.contains("line 3: ps_number: must be 1 to 14 digits"), "{err}");
    assert!(err.contains("nothing imported"), "{err}");
    let (ok, out, err) = svoct_as(&world, "alice", &["ps", "list", "--json"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "[]", "nothing was written");

    let fixed = std::fs::read_to_string(&csv)
        .expect("read")
        .replace("30000000B", "300000002");
    std::fs::write(&csv, fixed).expect("csv");
    let (ok, out, err) = svoct_as(&world, "alice", &["ps", "import", csv_s]);
    assert!(ok, "{err}");
    assert!(out.contains("3 added"), "{out}");
    let (ok, out, err) = svoct_as(&world, "alice", &["ps", "list", "--json"]);
    assert!(ok, "{err}");
    assert_schema("oct-ps-list", out.trim());
    let list: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(list[2]["mailbox"], "retours@ps.example");
    assert_eq!(list[1]["category"], "XX");

    // Imported again with a changed mailbox: kept without --update, changed with it.
    let changed = std::fs::read_to_string(&csv)
        .expect("read")
        .replace("retours@", "other@");
    std::fs::write(&csv, changed).expect("csv");
    let (ok, out, _) = svoct_as(&world, "alice", &["ps", "import", csv_s]);
    assert!(ok && out.contains("2 unchanged, 1 kept"), "{out}");
    let (ok, out, _) = svoct_as(&world, "alice", &["ps", "import", csv_s, "--update"]);
    assert!(ok && out.contains("1 updated"), "{out}");
    let (_, out, _) = svoct_as(&world, "alice", &["ps", "show", "c@ps.example"]);
    assert!(out.contains("mailbox other@ps.example"), "{out}");
    assert!(out.contains("alice update"), "{out}");
}

/// Processes `raw` from `from` with the practices the directory holds now.
fn process(world: &World, practices: std::sync::Arc<Practices>, from: &str, raw: &[u8]) -> Processed {
    let config = world.config();
    let keys = world.keys();
    let rcpt = vec![OCT_ADDRESS.to_string()];
    Pipeline::with_practices(&config, &keys, practices)
        .process(
            Incoming {
                spool_id: "00000000000000ab",
                mail_from: from,
                rcpt_to: &rcpt,
                raw,
            },
            &mut TestEnv::new(),
        )
        .expect("no infrastructure error")
}

#[test]
fn returns_reach_a_suspended_practice_and_wait_for_an_unusable_certificate() {
    let world = World::new(2525, "");
    let config = world.config();
    let state = State::open(&config.paths.state).expect("state");
    assert_eq!(practices::seed(&state, &config).expect("seed"), 1);
    assert_eq!(practices::seed(&state, &config).expect("seed"), 0, "seeded once");
    // The database is the truth once seeded: a block saying otherwise changes nothing.
    let mut edited = config.clone();
    edited.senders[0].mailbox = Some("elsewhere@ps.example".into());
    assert_eq!(practices::seed(&state, &edited).expect("seed"), 0);
    let row = practices::find(&state, PS_ADDRESS).expect("seeded");
    assert_eq!(row.fields.mailbox, None);
    assert_eq!(
        state.practice_audit(Some(row.id)).expect("audit")[0].actor,
        "config"
    );
    let mut directory = Directory::default();
    let first = directory.refresh(&state).expect("refresh");
    let same = directory.refresh(&state).expect("refresh");
    assert!(
        std::sync::Arc::ptr_eq(&first, &same),
        "no change: the same snapshot, no reload"
    );
    let rsp = am_return(
        &world,
        "cpam100@am.example",
        Profile::Rsp,
        PS_NUMBER,
        &rsp_580(PS_NUMBER),
        false,
    );

    let suspend = AccountChange::Suspend {
        reason: "fees unpaid",
    };
    practices::apply(&state, PS_ADDRESS, suspend, "bob").expect("suspend");
    let now = directory.refresh(&state).expect("refresh");
    assert!(
        now.by_ps_number(&format!("00000{PS_NUMBER}"))
            .expect("registered")
            .suspended
    );
    let p = process(&world, now, "cpam100@am.example", &rsp);
    assert!(p.quarantine.is_none(), "{:?}", p.summary);
    assert_eq!(p.outgoing.len(), 1);
    assert_eq!(
        (p.outgoing[0].kind, p.outgoing[0].rcpt.as_str()),
        (OutKind::Relay, PS_ADDRESS),
        "what AM says about its claims still reaches a suspended practice"
    );

    // A certificate registered for the practice, then gone: its returns wait in quarantine.
    let cert = world.dir.path().join("ps.crt");
    std::fs::copy(world.dir.path().join("am.crt"), &cert).expect("copy");
    let csv = format!(
        "address,sender_number,ps_number,category,certificate\n{PS_ADDRESS},{PS_NUMBER},{PS_NUMBER},ER,{}\n",
        cert.display()
    );
    let imported = practices::import(&state, &csv, world.dir.path(), true, "carol").expect("import");
    assert_eq!(imported.updated, 1);
    let now = directory.refresh(&state).expect("refresh");
    let p = process(&world, now, "cpam100@am.example", &rsp);
    assert!(p.quarantine.is_none(), "{:?}", p.summary);
    let relayed = profile::parse_message(&p.outgoing[0].raw, &ParseLimits::default()).expect("parses");
    assert_eq!(
        relayed.profile_name(),
        "RSP/K",
        "encrypted for the practice's certificate"
    );
    std::fs::remove_file(&cert).expect("remove");
    practices::apply(&state, PS_ADDRESS, AccountChange::Resume, "carol").expect("resume");
    let now = directory.refresh(&state).expect("refresh");
    let p = process(&world, now, "cpam100@am.example", &rsp);
    let q = p
        .quarantine
        .as_ref()
        .expect("quarantined, never relayed in clear");
    assert_eq!(q.code, "ps_certificate");
    assert!(p.outgoing.is_empty());

    // Removed: unknown.
    let remove = AccountChange::Remove { reason: "left" };
    practices::apply(&state, PS_NUMBER, remove, "dave").expect("remove");
    let now = directory.refresh(&state).expect("refresh");
    assert!(now.by_address(PS_ADDRESS).is_none());
    let p = process(&world, now, "cpam100@am.example", &rsp);
    assert_eq!(p.quarantine.as_ref().map(|q| q.code.as_str()), Some("no_route"));
}
