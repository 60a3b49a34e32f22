//! Shared fixtures of the pipeline tests: a configured OCT in a temporary directory with
//! throw-away keys, and builders for the messages a PS and an AM send it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use svoct_formats::b2::{self, SingleFileParams, synth::SynthParams};
use svoct_mail::cms::{CmsCipher, PrivateKeyAndCert, RecipientCert};
use svoct_mail::profile::{self, Mailbox, MessageHeaders, Profile, Protect};
use svoct_mail::subject::{Compostage, FileKind, InvoiceSubject, PartyNumber, SpecVersion, Subject};
use svoct_oct::config::Config;
use svoct_oct::pipeline::{Env, Keys, PipelineError};
use svoct_oct::state::{InvoiceNature, Processed, SeenInvoice, SeenLot};
use svoct_testkit::certs::TestIdentity;
use time::{OffsetDateTime, PrimitiveDateTime};

pub const PS_ADDRESS: &str = "ps1@ps.example";
pub const PS_NUMBER: &str = "123456789";
pub const OCT_ADDRESS: &str = "oct@oct.example";
pub const OCT_ID: &str = "12345678900000";

pub struct World {
    pub dir: tempfile::TempDir,
    pub oct: TestIdentity,
    pub am: TestIdentity,
    pub config_path: PathBuf,
    pub am_key: PrivateKeyAndCert,
}

/// The configuration text: three AMO routes (the synthetic destinations 100, 101 by
/// organisation, 102 by régime + caisse), one AMC, one PS.
pub fn config_text(dir: &Path, smtp_port: u16, extra: &str) -> String {
    // The synthetic generator puts destination 2 under pivot caisse 100 + (2 * 37 + 651) % 900.
    let caisse_102 = "825";
    format!(
        r#"
[oct]
identifier = "{OCT_ID}"
sender_number = "98765432100000"
address = "{OCT_ADDRESS}"

[ingress]
listen = "127.0.0.1:0"

[paths]
spool = "{d}/spool"
state = "{d}/state.sqlite"

[keys]
private_key = "{d}/oct.key"
certificate = "{d}/oct.crt"

[[sender]]
address = "{PS_ADDRESS}"
sender_number = "{PS_NUMBER}"
ps_number = "{PS_NUMBER}"
category = "ER"

[[route]]
organisation = "100"
mailbox = "cpam100@am.example"
certificate = "{d}/am.crt"

[[route]]
organisation = "101"
mailbox = "cpam101@am.example"
plaintext = true

[[route]]
regime = "01"
caisse = "{caisse_102}"
mailbox = "caisse102@am.example"
plaintext = true

[[amc]]
organisation = "AMC0000001"
mailbox = "mutuelle@amc.example"
plaintext = true

[delivery.smtp]
host = "127.0.0.1"
port = {smtp_port}

[retry]
initial_backoff_secs = 1
max_backoff_secs = 2
max_attempts = 3

{extra}
"#,
        d = dir.display()
    )
}

impl World {
    pub fn new(smtp_port: u16, extra: &str) -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let oct = TestIdentity::new("oct.example");
        let am = TestIdentity::new("am.example");
        oct.write_pem(dir.path(), "oct");
        am.write_pem(dir.path(), "am");
        let config_path = dir.path().join("oct.toml");
        std::fs::write(&config_path, config_text(dir.path(), smtp_port, extra)).expect("config");
        let am_key = PrivateKeyAndCert::from_bytes(&am.key_pem(), &am.cert_pem()).expect("am key");
        World {
            dir,
            oct,
            am,
            config_path,
            am_key,
        }
    }

    /// Rewrites the configuration so that a failed forward stays queued (pending, an hour's
    /// backoff) instead of being given up after the 3 quick attempts of the shared test
    /// configuration: for tests that look at a waiting forward on a machine of any speed.
    pub fn keep_forwards_queued(&self) {
        let text = std::fs::read_to_string(&self.config_path).expect("config");
        let quick = "initial_backoff_secs = 1\nmax_backoff_secs = 2\nmax_attempts = 3\n";
        assert!(text.contains(quick), "the shared [retry] block");
        let slow = "initial_backoff_secs = 3600\nmax_backoff_secs = 3600\nmax_attempts = 100\n";
        std::fs::write(&self.config_path, text.replace(quick, slow)).expect("config");
    }

    pub fn config(&self) -> Config {
        Config::load(&self.config_path).expect("config loads")
    }

    pub fn keys(&self) -> Keys {
        Keys::load(&self.config()).expect("keys load")
    }

    pub fn oct_cert(&self) -> RecipientCert {
        RecipientCert::from_bytes(&self.oct.cert_pem()).expect("oct cert")
    }
}

pub fn synth(invoices: usize, destinations: usize, enriched: bool, seed: u64) -> SynthParams {
    SynthParams {
        seed,
        invoices,
        destinations,
        enriched,
        ps_number: PS_NUMBER.into(),
        lot_size: 20,
        ..SynthParams::default()
    }
}

/// An OCT single file (R3.2) of synthetic lots.
pub fn single_file(p: &SynthParams) -> Vec<u8> {
    b2::synth::generate_single_file(
        p,
        &SingleFileParams {
            sender_type: "TP".into(),
            oct_id: OCT_ID.into(),
            file_id: "F00001".into(),
            date: "261126".into(),
            message: String::new(),
        },
    )
    .expect("single file")
}

pub fn compostage(counter: u32) -> Compostage {
    let at = PrimitiveDateTime::new(
        time::Date::from_calendar_date(2026, time::Month::November, 26).expect("date"),
        time::Time::from_hms(10, 0, 0).expect("time"),
    );
    Compostage::new(at, counter).expect("compostage")
}

/// The PS → OCT message of R5 carrying `file`, encrypted for the OCT unless `plain`.
pub fn ps_message(
    world: &World,
    from: &str,
    file: &[u8],
    exercice: &str,
    invoices: u32,
    counter: u32,
    plain: bool,
) -> Vec<u8> {
    let subject = Subject::Invoice(
        InvoiceSubject::new(
            FileKind::Fse,
            SpecVersion::v140700(),
            PartyNumber::new(exercice).expect("exercice"),
            compostage(counter),
            invoices,
        )
        .expect("subject"),
    );
    let envelope = MessageHeaders {
        from: Mailbox::new(from).expect("from"),
        to: Mailbox::new(OCT_ADDRESS).expect("to"),
        subject,
        profile: Profile::Invoice(FileKind::Fse),
        file_name: "F00001.B2".into(),
        date: OffsetDateTime::now_utc(),
        message_id: Some(format!("ps.{counter}@ps.example")),
    };
    let certs = [world.oct_cert()];
    let protect = if plain {
        Protect::None
    } else {
        Protect::Encrypt {
            recipients: &certs,
            cipher: CmsCipher::Aes256Cbc,
            compress: counter.is_multiple_of(2),
        }
    };
    profile::build_message(&envelope, file, protect).expect("message")
}

/// An [`Env`] with in-memory counters.
pub struct TestEnv {
    pub counter: u32,
    pub file: u32,
    pub lot: u32,
    pub own: Vec<(String, String, String)>,
    /// The processed index, in memory: lot hash → where it went.
    pub forwarded: std::collections::HashMap<String, SeenLot>,
    /// (sender number, compostage) → file hash.
    pub compostages: std::collections::HashMap<(String, String), String>,
    /// (PS number, invoice number, nature) → where its lot went (R3.4).
    pub invoices: std::collections::HashMap<(String, u64, InvoiceNature), String>,
}

impl TestEnv {
    pub fn new() -> TestEnv {
        TestEnv {
            counter: 0,
            file: 0,
            lot: 0,
            own: Vec::new(),
            forwarded: Default::default(),
            compostages: Default::default(),
            invoices: Default::default(),
        }
    }

    /// What committing `p` does to the processed index (without SQLite).
    pub fn record(&mut self, p: &Processed) {
        for l in &p.claims.lots {
            self.forwarded.insert(
                l.lot_hash.clone(),
                SeenLot {
                    destination: l.destination.clone(),
                    at: 1_764_657_600,
                    message_id: l.message_id.clone(),
                },
            );
        }
        for i in &p.claims.invoices {
            self.invoices
                .entry((i.ps_number.clone(), i.invoice_number, i.nature))
                .or_insert_with(|| i.destination.clone());
        }
        if let Some(c) = &p.claims.compostage {
            self.compostages.insert(
                (c.sender_number.clone(), c.compostage.clone()),
                c.file_hash.clone(),
            );
        }
    }
}

impl Env for TestEnv {
    fn compostage(&mut self) -> Result<Compostage, PipelineError> {
        self.counter += 1;
        Ok(compostage(self.counter))
    }
    fn file_id(&mut self) -> Result<String, PipelineError> {
        self.file += 1;
        Ok(format!("{:06}", self.file))
    }
    fn lot_number(&mut self) -> Result<u32, PipelineError> {
        self.lot += 1;
        Ok(self.lot)
    }
    fn is_own_lot(&mut self, number: &str, date: &str, file_id: &str) -> Result<bool, PipelineError> {
        Ok(self
            .own
            .iter()
            .any(|(n, d, f)| n == number && d == date && (file_id.is_empty() || f == file_id)))
    }
    fn forwarded_lot(&mut self, lot_hash: &str) -> Result<Option<SeenLot>, PipelineError> {
        Ok(self.forwarded.get(lot_hash).cloned())
    }
    fn compostage_file(
        &mut self,
        sender_number: &str,
        compostage: &str,
    ) -> Result<Option<String>, PipelineError> {
        Ok(self
            .compostages
            .get(&(sender_number.to_owned(), compostage.to_owned()))
            .cloned())
    }
    fn forwarded_invoice(
        &mut self,
        ps_number: &str,
        invoice_number: u64,
        nature: InvoiceNature,
    ) -> Result<Option<SeenInvoice>, PipelineError> {
        Ok(self
            .invoices
            .get(&(ps_number.to_owned(), invoice_number, nature))
            .map(|d| SeenInvoice {
                destination: d.clone(),
                at: 1_764_657_600,
            }))
    }
    fn loi_files(
        &mut self,
        source: &std::path::Path,
    ) -> Result<Vec<Vec<u8>>, svoct_oct::relay_formats::LoiSourceError> {
        svoct_oct::relay_formats::read_loi_source(source)
    }
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A return message from AM (profile `ARL`, `RSP` or `LOI`) for `ps_number`, encrypted for the OCT
/// unless `plain`.
pub fn am_return(
    world: &World,
    from: &str,
    profile: Profile,
    ps_number: &str,
    file: &[u8],
    plain: bool,
) -> Vec<u8> {
    use svoct_mail::subject::{MinuteStamp, ReturnKind, ReturnSubject};
    let kind = match profile {
        Profile::Arl => ReturnKind::Arl,
        Profile::Rsp => ReturnKind::Rsp,
        _ => ReturnKind::LoiIncrement,
    };
    let at = PrimitiveDateTime::new(
        time::Date::from_calendar_date(2026, time::Month::November, 26).expect("date"),
        time::Time::from_hms(11, 0, 0).expect("time"),
    );
    let subject = Subject::Return(ReturnSubject {
        kind,
        ps_number: PartyNumber::new(ps_number).expect("ps number"),
        timestamp: MinuteStamp::new(at).expect("stamp"),
    });
    let envelope = MessageHeaders {
        from: Mailbox::new(from).expect("from"),
        to: Mailbox::new(OCT_ADDRESS).expect("to"),
        subject,
        profile,
        file_name: "RETOUR.DAT".into(),
        date: OffsetDateTime::now_utc(),
        message_id: None,
    };
    let certs = [world.oct_cert()];
    let protect = if plain {
        Protect::None
    } else {
        Protect::Encrypt {
            recipients: &certs,
            cipher: CmsCipher::Aes256Cbc,
            compress: false,
        }
    };
    profile::build_message(&envelope, file, protect).expect("return message")
}

/// A NOEMIE 580 return for `ps_number` paying one invoice.
pub fn rsp_580(ps_number: &str) -> Vec<u8> {
    use svoct_formats::noemie::{InvoiceOutcome, PartOutcome, PartState, RspParams, Ymd, build_580};
    let params = RspParams {
        sender_type: "CP".into(),
        sender_number: "100".into(),
        sender_program: "SIMAM".into(),
        recipient_type: "TP".into(),
        recipient_number: ps_number.into(),
        file_id: "R00001".into(),
        created: Ymd::new(2026, 11, 26),
        flow_type: 'T',
        settlement_recipient: ps_number.into(),
        accounting_date: Ymd::new(2026, 11, 26),
        transfer_label: "VIREMENT".into(),
        payer: "CPAM100".into(),
    };
    let invoice = InvoiceOutcome {
        lot_number: "001".into(),
        lot_date: Ymd::new(2026, 11, 26),
        invoice_number: "000000001".into(),
        invoice_type: 'F',
        billing_date: Some(Ymd::new(2026, 11, 26)),
        amo: Some(PartOutcome {
            state: PartState::Paid,
            requested_cents: 2500,
            paid_cents: 2500,
            amc_number: String::new(),
        }),
        amc: None,
        rejects: Vec::new(),
        comments: Vec::new(),
    };
    build_580(&params, &[invoice]).expect("580")
}

/// Builds the `svoct` binary (the CLI crate) with the cargo running the tests, and returns its
/// path: the crash and CLI tests drive the real `svoct oct` commands.
pub fn svoct_binary() -> PathBuf {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["build", "-p", "svoct", "--bin", "svoct", "--message-format=json"])
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run cargo build");
    assert!(out.status.success(), "cargo build -p svoct failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("executable").and_then(|e| e.as_str()).map(PathBuf::from))
        .next_back()
        .expect("cargo reports the svoct executable")
}

/// What the downstream MTA delivered into `mailboxes` (AM mailboxes), read independently of the
/// OCT's own records: per lot (its bytes), in how many *distinct* forwarded messages it was;
/// and how many raw copies repeated a Message-ID already seen (the at-least-once SMTP hop).
pub fn lots_delivered(
    world: &World,
    exim: &svoct_testkit::Exim,
    mailboxes: &[&str],
) -> (std::collections::BTreeMap<Vec<u8>, usize>, usize) {
    use svoct_mail::profile::ParseLimits;
    let mut lots = std::collections::BTreeMap::new();
    let mut repeats = 0;
    for mb in mailboxes {
        let mut ids = std::collections::BTreeSet::new();
        for path in exim.messages(mb) {
            let raw = std::fs::read(&path).expect("read delivered message");
            let parsed =
                profile::parse_message(&raw, &ParseLimits::default()).expect("delivered message parses");
            let id = parsed.headers.message_id.clone().expect("Message-ID");
            if !ids.insert(id) {
                repeats += 1;
                continue;
            }
            let body = if parsed.profile_name().ends_with("/K") {
                parsed
                    .open(Some(&world.am_key), &ParseLimits::default())
                    .expect("the AM opens it")
                    .bytes
            } else {
                parsed.attachment.clone()
            };
            for lot in b2::parse(&body).expect("forwarded B2 file").lots() {
                *lots.entry(lot.bytes().to_vec()).or_default() += 1;
            }
        }
    }
    (lots, repeats)
}

/// The ARTs delivered into `mailbox`, parsed (distinct Message-IDs only).
pub fn arts_delivered(exim: &svoct_testkit::Exim, mailbox: &str) -> Vec<svoct_formats::art::Art> {
    use svoct_mail::profile::ParseLimits;
    let mut ids = std::collections::BTreeSet::new();
    let mut arts = Vec::new();
    for path in exim.messages(mailbox) {
        let raw = std::fs::read(&path).expect("read ART");
        let parsed = profile::parse_message(&raw, &ParseLimits::default()).expect("ART parses");
        if ids.insert(parsed.headers.message_id.clone().expect("Message-ID")) {
            arts.push(svoct_formats::art::Art::parse(&parsed.attachment).expect("ART body"));
        }
    }
    arts
}

/// Runs `svoct oct --config <world's> ARGS`: (success, stdout, stderr).
pub fn svoct(bin: &std::path::Path, world: &World, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(bin)
        .arg("oct")
        .arg("--config")
        .arg(&world.config_path)
        .args(args)
        .output()
        .expect("run svoct");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `doc` against docs/json-schema/NAME.schema.json (docs/json.md), with Python's `jsonschema`
/// (scripts/setup.sh installs `python3-jsonschema`): here the OCT has quarantined messages and
/// queued rows in states the demo's state (`crates/cli/tests/cli_json_schema.rs`) has not.
pub fn assert_schema(name: &str, doc: &str) {
    use std::io::Write;
    const CHECK: &str = "import json, sys, jsonschema\n\
        schema = json.load(open(sys.argv[1]))\n\
        v = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)\n\
        for e in v.iter_errors(json.load(sys.stdin)):\n    print(list(e.absolute_path), e.message[:300])\n";
    let schema = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../../docs/json-schema/{name}.schema.json"));
    let mut child = std::process::Command::new("python3")
        .args(["-c", CHECK])
        .arg(schema)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(doc.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("python3");
    let errors = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && errors.is_empty(),
        "{name}: {errors}\n{doc}"
    );
}

/// Spools `raw` as sent by the PS and runs one worker step over it, asserting that the step
/// did something and that nothing stays in the spool (a message is kept once, in the state
/// database): returns its spool id.
pub fn spool_and_process(world: &World, raw: &[u8]) -> String {
    use svoct_oct::pipeline::Pipeline;
    use svoct_oct::service::{Blocks, ServiceStats, work_once};
    use svoct_oct::state::State;
    use svoct_store::spool::{ReceivedEnvelope, Spool};
    let config = world.config();
    let spool = Spool::open(&config.paths.spool).expect("spool");
    let id = spool
        .put(
            &ReceivedEnvelope {
                mail_from: PS_ADDRESS.into(),
                rcpt_to: vec![OCT_ADDRESS.into()],
                ..ReceivedEnvelope::default()
            },
            raw,
        )
        .expect("put");
    let keys = world.keys();
    let pipeline = Pipeline::new(&config, &keys);
    let mut state = State::open(&config.paths.state).expect("state");
    // The practices as `serve` seeds them at start (the senders look the PS up there).
    svoct_oct::practices::seed(&state, &config).expect("seed practices");
    let stats = ServiceStats::default();
    assert!(work_once(&spool, &mut state, &mut Blocks::default(), &pipeline, &stats).expect("step"));
    assert_eq!(spool.list().expect("list"), vec![]);
    id.to_string()
}

/// The ARTs in a Maildir the OCT delivers into (`new/`), parsed, in delivery order.
pub fn arts_in_maildir(maildir: &Path) -> Vec<svoct_formats::art::Art> {
    use svoct_mail::profile::ParseLimits;
    let mut paths: Vec<_> = std::fs::read_dir(maildir.join("new"))
        .map(|d| d.map(|e| e.expect("entry").path()).collect())
        .unwrap_or_default();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let raw = std::fs::read(p).expect("read ART");
            let parsed = profile::parse_message(&raw, &ParseLimits::default()).expect("ART parses");
            svoct_formats::art::Art::parse(&parsed.attachment).expect("ART body")
        })
        .collect()
}

/// A real `svoct oct serve` of a world, as a child process: the address its ingress listens on
/// (from its `listening on ADDR` line) and its log lines (stderr, `SVOCT_LOG=info`). Killed
/// when dropped.
pub struct ServeChild {
    pub child: std::process::Child,
    pub addr: std::net::SocketAddr,
    pub log: std::sync::mpsc::Receiver<String>,
}

impl ServeChild {
    pub fn start(bin: &Path, world: &World) -> ServeChild {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};
        let mut child = Command::new(bin)
            .args(["oct", "--config"])
            .arg(&world.config_path)
            .arg("serve")
            .env("SVOCT_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("serve");
        let (tx, log) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut first)
            .expect("read");
        let addr = first
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("serve did not start: {first:?}"))
            .parse()
            .expect("address");
        ServeChild { child, addr, log }
    }
}

impl Drop for ServeChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
