//! `svoct demo`: the whole exchange on one machine, with no setup.
//!
//! It starts a concentrator (OCT) and a simulated insurer (AM) on loopback ports, with
//! throw-away certificates, SQLite files and Maildirs under one directory; then a PS generates
//! lots and sends them in each of the three options of the annex (split at source, single file,
//! enriched FSE in both its forms: one single file, one file per destination), the OCT opens, splits and forwards them, the AM answers with ARL and NOEMIE
//! returns, the OCT relays them with its own ART receipts, and the PS fetches and reconciles
//! everything. What happens at each step is written to `out`.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use svoct_formats::b2::synth::{SynthParams, generate_bytes};
use svoct_mail::cms::PrivateKeyAndCert;
use svoct_mail::fsx;
use svoct_mail::selfsigned::SelfSigned;
use svoct_oct::config::Config as OctConfig;
use svoct_oct::service::Running;
use svoct_ps::config::{Config as PsConfig, ConfigFile, EnrichedFiles, Mode, OctChanges, SendOption};
use svoct_ps::{LotFile, Ps};

use crate::amsim::{AmIdentity, AmSim, AmSimConfig, Rules};

/// What the demo needs to know.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Where everything is written; kept afterwards so it can be inspected.
    pub dir: PathBuf,
    /// Seed of the generated lots.
    pub seed: u64,
    /// Invoices per sending.
    pub invoices: usize,
    /// How long to wait for the returns.
    pub timeout: Duration,
}

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo: {0}")]
    Setup(String),
    #[error("demo: {step}: {message}")]
    Step { step: &'static str, message: String },
    #[error("demo: writing the report: {0}")]
    Output(#[from] std::io::Error),
}

fn step<E: std::fmt::Display>(step: &'static str) -> impl FnOnce(E) -> DemoError {
    move |e| DemoError::Step {
        step,
        message: e.to_string(),
    }
}

/// What the demo ended with, for tests and the final table.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct DemoSummary {
    pub messages_sent: usize,
    pub invoices_sent: usize,
    pub lots_sent: usize,
    pub returns_fetched: usize,
    pub art: usize,
    pub arl: usize,
    pub rsp: usize,
    pub quarantined_at_ps: usize,
    pub oct_quarantined: u64,
    pub am_files: u64,
    /// From the PS's reconciliation, after the returns.
    pub lots_positive: usize,
    pub lots_negative: usize,
    pub invoices_paid: usize,
    pub invoices_rejected: usize,
    pub invoices_deferred: usize,
    pub unmatched_returns: usize,
    /// Whether every expected return arrived before the timeout.
    pub complete: bool,
    pub dir: PathBuf,
}

/// A port free right now on loopback (the demo's servers bind it a moment later).
fn free_port() -> Result<u16, DemoError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(step("finding a free port"))?;
    Ok(l.local_addr().map_err(step("finding a free port"))?.port())
}

/// Generates a throw-away identity and writes it as `<dir>/<stem>.{key,crt}`.
fn write_key_pair(common_name: &str, dir: &Path, stem: &str) -> Result<(PathBuf, PathBuf), DemoError> {
    let id = SelfSigned::generate(common_name).map_err(step("generating a certificate"))?;
    fsx::create_data_dir_all(dir).map_err(step("creating directories"))?;
    let (key, cert) = id.write_pem(dir, stem).map_err(step("writing a key pair"))?;
    // A certificate is public, but the demo directory is a data directory: owner only.
    fsx::restrict_file(&cert).map_err(step("restricting the certificate"))?;
    Ok((key, cert))
}

/// Writes a file of the demo directory, owner only like every data file.
fn write_data(path: &Path, bytes: impl AsRef<[u8]>) -> std::io::Result<()> {
    fsx::create_data_file(path)?.write_all(bytes.as_ref())
}

struct Scenario {
    title: &'static str,
    option: SendOption,
    /// With option `enriched`: the annex's two transmission forms (R3.3).
    enriched_files: EnrichedFiles,
    params: SynthParams,
}

/// Runs the whole exchange. Must be called inside a multi-threaded tokio runtime.
pub async fn run(options: &DemoOptions, out: &mut dyn Write) -> Result<DemoSummary, DemoError> {
    let dir = &options.dir;
    fsx::create_data_dir_all(dir).map_err(step("creating the demo directory"))?;
    writeln!(out, "svoct demo — everything lives under {}", dir.display())?;

    // 1. Throw-away identities.
    let keys = DemoKeys::generate(dir)?;
    writeln!(
        out,
        "[1] generated throw-away RSA certificates for the OCT and the AM simulator"
    )?;

    // The lots of the five sendings, generated first so that the OCT can be given their routes.
    let scenarios = scenarios(options);
    let generated = generate(&scenarios)?;

    // 2. The concentrator and the simulated insurer, on loopback.
    let ps_maildir = dir.join("ps").join("Maildir");
    let (oct, am, oct_port) = start_servers(dir, &keys, &generated, &ps_maildir, out).await?;

    // 3. The PS: its configuration, switched to OCT mode with the `svoct ps` edits.
    let ps_config_path = configure_ps(dir, oct_port, &ps_maildir, &keys.oct_cert, out)?;

    // 4. Four sendings, one per option and both forms of the enriched one, plus an old lot that
    // the AM will refuse.
    let mut summary = DemoSummary {
        dir: dir.clone(),
        ..Default::default()
    };
    for (n, (sc, lots)) in scenarios.iter().zip(&generated.lots).enumerate() {
        send_scenario(n, sc, lots, &ps_config_path, &mut summary, out)?;
    }

    // 5. Wait for the returns: an ART per message, an ARL per lot, RSP for accepted FSE lots.
    writeln!(
        out,
        "[5] waiting for the OCT's receipts and the AM's returns (fetching the PS Maildir)"
    )?;
    let config = PsConfig::load(&ps_config_path).map_err(step("loading the PS configuration"))?;
    let ps = Ps::open(config).map_err(step("opening the PS journal"))?;
    await_returns(&ps, options.timeout, &mut summary, out).await?;

    summary.am_files = am.stats().files.load(std::sync::atomic::Ordering::Relaxed);
    summary.oct_quarantined = oct.stats().quarantined.load(std::sync::atomic::Ordering::Relaxed);
    // Let the last relays finish before stopping.
    tokio::time::sleep(Duration::from_millis(200)).await;
    am.shutdown().await;
    oct.shutdown().await;

    // 6. The final state of every lot and invoice, as the PS sees it.
    report_final_state(&ps, &mut summary, out)?;
    Ok(summary)
}

/// The throw-away key pairs of the OCT and the AM simulator, as PEM files.
struct DemoKeys {
    oct_key: PathBuf,
    oct_cert: PathBuf,
    am_key: PathBuf,
    am_cert: PathBuf,
}

impl DemoKeys {
    fn generate(dir: &Path) -> Result<Self, DemoError> {
        let (oct_key, oct_cert) = write_key_pair("svoct demo OCT", &dir.join("oct"), "oct")?;
        let (am_key, am_cert) = write_key_pair("svoct demo AM", &dir.join("am"), "am")?;
        Ok(Self {
            oct_key,
            oct_cert,
            am_key,
            am_cert,
        })
    }
}

/// The five sendings of the demo: each option of the annex, both forms of the enriched one, and
/// an old lot the AM refuses. Each has its own seed and creation date so their lots differ.
fn scenarios(options: &DemoOptions) -> [Scenario; 5] {
    let today = time::OffsetDateTime::now_utc().date();
    let aammjj = |days_ago: i64| {
        let d = today - time::Duration::days(days_ago);
        format!("{:02}{:02}{:02}", d.year() % 100, d.month() as u8, d.day())
    };
    let base = SynthParams {
        seed: options.seed,
        invoices: options.invoices,
        ps_number: "123456789".into(),
        lot_size: 20,
        ..Default::default()
    };
    [
        Scenario {
            title: "split at the source (R3.1): one file per destination, addressed and encrypted for the OCT",
            option: SendOption::Split,
            enriched_files: EnrichedFiles::Single,
            params: SynthParams {
                destinations: 2,
                date: aammjj(0),
                ..base.clone()
            },
        },
        Scenario {
            title: "single file (R3.2): FSE and DRE lots of several destinations under one OCT header",
            option: SendOption::Single,
            enriched_files: EnrichedFiles::Single,
            params: SynthParams {
                seed: options.seed + 1,
                destinations: 3,
                dre: true,
                date: aammjj(1),
                ..base.clone()
            },
        },
        Scenario {
            title: "enriched FSE (R3.3): contract type 99, the OCT creates the complementary flow",
            option: SendOption::Enriched,
            enriched_files: EnrichedFiles::Single,
            params: SynthParams {
                seed: options.seed + 2,
                enriched: true,
                destinations: 1,
                date: aammjj(2),
                ..base.clone()
            },
        },
        Scenario {
            title: "enriched FSE, second form (R3.3): one file per destination caisse, to the OCT",
            option: SendOption::Enriched,
            enriched_files: EnrichedFiles::PerDestination,
            params: SynthParams {
                seed: options.seed + 4,
                enriched: true,
                destinations: 2,
                date: aammjj(3),
                ..base.clone()
            },
        },
        Scenario {
            title: "a lot created 120 days ago (single file): the AM answers with a negative ARL",
            option: SendOption::Single,
            enriched_files: EnrichedFiles::Single,
            params: SynthParams {
                seed: options.seed + 3,
                invoices: 3,
                date: aammjj(120),
                ..base.clone()
            },
        },
    ]
}

/// The lots of every scenario, and what the OCT must route: the destination organisations and
/// the AMC numbers found in them.
struct Generated {
    /// Per scenario: its lot count and its B2 bytes.
    lots: Vec<(usize, Vec<u8>)>,
    organisations: BTreeSet<String>,
    amc: BTreeSet<String>,
}

fn generate(scenarios: &[Scenario]) -> Result<Generated, DemoError> {
    let mut generated = Generated {
        lots: Vec::new(),
        organisations: BTreeSet::new(),
        amc: BTreeSet::new(),
    };
    for sc in scenarios {
        let lots = generate_bytes(&sc.params).map_err(step("generating lots"))?;
        let input = svoct_formats::b2::parse(&lots).map_err(step("reading generated lots"))?;
        for lot in input.lots() {
            generated.organisations.insert(lot.destination().organisme);
            for inv in lot.invoices() {
                let number = inv.amc_number().trim();
                if !number.is_empty() {
                    generated.amc.insert(number.to_owned());
                }
            }
        }
        generated.lots.push((input.lots().len(), lots));
    }
    Ok(generated)
}

/// Starts the OCT (with a configuration written for it) and the AM simulator on free loopback
/// ports; returns both and the OCT's port, which the PS sends to.
async fn start_servers(
    dir: &Path,
    keys: &DemoKeys,
    generated: &Generated,
    ps_maildir: &Path,
    out: &mut dyn Write,
) -> Result<(Running, AmSim, u16), DemoError> {
    let oct_port = free_port()?;
    let am_port = free_port()?;
    let oct_config_path = dir.join("oct").join("oct.toml");
    write_data(
        &oct_config_path,
        oct_config_text(&OctSetup {
            dir,
            oct_port,
            am_port,
            key: &keys.oct_key,
            cert: &keys.oct_cert,
            am_cert: &keys.am_cert,
            ps_maildir,
            organisations: &generated.organisations,
            amc: &generated.amc,
        }),
    )
    .map_err(step("writing the OCT configuration"))?;
    let oct_config = OctConfig::load(&oct_config_path).map_err(step("loading the OCT configuration"))?;
    let oct = Running::start(oct_config)
        .await
        .map_err(step("starting the OCT"))?;
    writeln!(
        out,
        "[2] OCT listening on 127.0.0.1:{oct_port} (config {})",
        oct_config_path.display()
    )?;

    let am_key =
        PrivateKeyAndCert::from_files(&keys.am_key, &keys.am_cert).map_err(step("loading the AM key"))?;
    let am = AmSim::start(AmSimConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], am_port)),
        spool_dir: dir.join("am").join("spool"),
        key: Some(am_key),
        oct_smtp: ("127.0.0.1".into(), oct_port),
        oct_address: "retours@oct.demo".into(),
        identity: AmIdentity::default(),
        rules: Rules::default(),
    })
    .await
    .map_err(step("starting the AM simulator"))?;
    writeln!(
        out,
        "    AM simulator listening on 127.0.0.1:{am_port} (negative ARL for lots older than 90 days, \
         every 7th invoice rejected, every 11th deferred)"
    )?;
    Ok((oct, am, oct_port))
}

/// Writes the PS configuration in direct mode, then switches it to OCT mode through the same
/// edits as `svoct ps oct set` and `svoct ps mode`; returns its path.
fn configure_ps(
    dir: &Path,
    oct_port: u16,
    ps_maildir: &Path,
    oct_cert: &Path,
    out: &mut dyn Write,
) -> Result<PathBuf, DemoError> {
    let ps_config_path = dir.join("ps").join("svoct-ps.toml");
    fsx::create_data_dir_all(ps_maildir).map_err(step("creating the PS Maildir"))?;
    write_data(&ps_config_path, ps_config_text(oct_port, ps_maildir))
        .map_err(step("writing the PS configuration"))?;
    let mut f = ConfigFile::open(&ps_config_path).map_err(step("editing the PS configuration"))?;
    f.set_oct(&OctChanges {
        address: Some("factures@oct.demo".into()),
        certificate: Some(oct_cert.to_path_buf()),
        identifier: Some("12345678900017".into()),
        option: Some(SendOption::Single),
        // Unset: the option decides (split is the direct message, uncompressed; the single
        // file is compressed).
        compress: None,
        enriched_files: None,
    });
    f.set_mode(Mode::Oct);
    f.save().map_err(step("saving the PS configuration"))?;
    writeln!(
        out,
        "[3] PS configured in OCT mode (config {})",
        ps_config_path.display()
    )?;
    Ok(ps_config_path)
}

/// Sends the lots of scenario `n` (0-based) in its option, and counts what was sent.
fn send_scenario(
    n: usize,
    sc: &Scenario,
    (lot_count, lots): &(usize, Vec<u8>),
    ps_config_path: &Path,
    summary: &mut DemoSummary,
    out: &mut dyn Write,
) -> Result<(), DemoError> {
    let mut f = ConfigFile::open(ps_config_path).map_err(step("editing the PS configuration"))?;
    f.set_oct(&OctChanges {
        option: Some(sc.option),
        enriched_files: Some(sc.enriched_files),
        ..Default::default()
    });
    let config = f.save().map_err(step("saving the PS configuration"))?;
    let ps_dir = ps_config_path.parent().unwrap_or(Path::new("."));
    let lot_path = ps_dir.join(format!("lots-{}.b2", n + 1));
    write_data(&lot_path, lots).map_err(step("writing lots"))?;
    let ps = Ps::open(config).map_err(step("opening the PS journal"))?;
    let transport = ps.smtp_transport().map_err(step("preparing SMTP"))?;
    let file = LotFile {
        name: lot_path.display().to_string(),
        bytes: lots.clone(),
    };
    let sent =
        tokio::task::block_in_place(|| ps.send(&transport, &[file], &mut |_| {})).map_err(step("sending"))?;
    writeln!(out, "[4.{}] {}", n + 1, sc.title)?;
    summary.lots_sent += lot_count;
    for s in &sent {
        writeln!(
            out,
            "      sent {:<45} to {:<20} {:>4} invoices  {}",
            s.subject,
            s.to,
            s.invoices,
            s.status.as_str()
        )?;
        summary.messages_sent += 1;
        summary.invoices_sent += s.invoices;
    }
    Ok(())
}

/// Fetches the PS Maildir until every expected return has arrived (an ART per message, an ARL
/// per lot, at least one RSP) or `timeout` has passed; `summary.complete` says which.
async fn await_returns(
    ps: &Ps,
    timeout: Duration,
    summary: &mut DemoSummary,
    out: &mut dyn Write,
) -> Result<(), DemoError> {
    let deadline = Instant::now() + timeout;
    loop {
        let report = tokio::task::block_in_place(|| ps.fetch()).map_err(step("fetching"))?;
        summary.returns_fetched += report.stored;
        for h in report.classified.iter() {
            match h.what.as_str() {
                "ART" => summary.art += 1,
                "ARL" => summary.arl += 1,
                "RSP" => summary.rsp += 1,
                _ => {}
            }
            writeln!(out, "      received {:<4} {}", h.what, h.subject)?;
        }
        summary.quarantined_at_ps += report.quarantined.len();
        for h in &report.quarantined {
            writeln!(out, "      QUARANTINED {} ({})", h.subject, h.what)?;
        }
        let complete =
            summary.art >= summary.messages_sent && summary.arl >= summary.lots_sent && summary.rsp >= 1;
        if complete {
            summary.complete = true;
            return Ok(());
        }
        if Instant::now() > deadline {
            writeln!(
                out,
                "      timed out after {:?}: {} ART / {} messages, {} ARL / {} lots, {} RSP",
                timeout, summary.art, summary.messages_sent, summary.arl, summary.lots_sent, summary.rsp
            )?;
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Writes the final state of every lot and invoice as the PS sees it, copies its totals into
/// `summary`, and ends with the one-line account of the run.
fn report_final_state(ps: &Ps, summary: &mut DemoSummary, out: &mut dyn Write) -> Result<(), DemoError> {
    writeln!(out, "[6] final state at the PS")?;
    let view = crate::report::final_state(ps, out).map_err(step("reading the final state"))?;
    summary.invoices_paid = view.totals.invoices_paid;
    summary.invoices_rejected = view.totals.invoices_rejected;
    summary.invoices_deferred = view.totals.invoices_deferred;
    summary.lots_positive = view.totals.lots_positive;
    summary.lots_negative = view.totals.lots_negative;
    summary.unmatched_returns = view.totals.unmatched_returns;
    writeln!(
        out,
        "done: {} messages ({} lots, {} invoices) sent; {} returns fetched ({} ART, {} ARL, {} RSP); \
         {} quarantined at the PS. Files kept under {}",
        summary.messages_sent,
        summary.lots_sent,
        summary.invoices_sent,
        summary.returns_fetched,
        summary.art,
        summary.arl,
        summary.rsp,
        summary.quarantined_at_ps,
        summary.dir.display()
    )?;
    Ok(())
}

fn path(p: &Path) -> String {
    p.display().to_string().replace('\\', "\\\\").replace('"', "\\\"")
}

/// What the generated OCT configuration is made of.
struct OctSetup<'a> {
    dir: &'a Path,
    oct_port: u16,
    am_port: u16,
    key: &'a Path,
    cert: &'a Path,
    am_cert: &'a Path,
    ps_maildir: &'a Path,
    organisations: &'a BTreeSet<String>,
    amc: &'a BTreeSet<String>,
}

fn oct_config_text(o: &OctSetup<'_>) -> String {
    let OctSetup {
        dir,
        oct_port,
        am_port,
        key,
        cert,
        am_cert,
        ps_maildir,
        organisations,
        amc,
    } = *o;
    let mut routes = String::new();
    for org in organisations {
        routes.push_str(&format!(
            "[[route]]\norganisation = \"{org}\"\nmailbox = \"fse.{org}@am.demo\"\ncertificate = \"{}\"\n\n",
            path(am_cert)
        ));
    }
    // The AM simulator also plays the AMC: their lots carry names and social security numbers
    // too, so they are encrypted for its certificate like the AMO ones, never sent in clear.
    for number in amc {
        routes.push_str(&format!(
            "[[amc]]\norganisation = \"{number}\"\nmailbox = \"amc.{number}@amc.demo\"\ncertificate = \"{}\"\n\n",
            path(am_cert)
        ));
    }
    format!(
        r#"# Generated by `svoct demo`.
[oct]
identifier = "12345678900017"
sender_type = "OT"
sender_number = "98765432100000"
address = "factures@oct.demo"
name = "OCT DE DEMONSTRATION"
spec_version = "140700"

[ingress]
listen = "127.0.0.1:{oct_port}"
# The AM simulator sends its returns here; any other recipient is refused (relay denied).
addresses = ["retours@oct.demo"]

[paths]
spool = "{spool}"
state = "{state}"

[keys]
private_key = "{key}"
certificate = "{cert}"

[[sender]]
address = "cabinet@ps.demo"
sender_number = "00000123456789"
ps_number = "123456789"
category = "IF"
mailbox = "cabinet@ps.demo"

{routes}
[delivery.smtp]
host = "127.0.0.1"
port = {am_port}
tls = "none"
timeout_secs = 10

[[delivery.local]]
address = "cabinet@ps.demo"
maildir = "{maildir}"

[retry]
initial_backoff_secs = 1
max_backoff_secs = 5
max_attempts = 20

[pipeline]
workers = 2
poll_interval_ms = 50
"#,
        spool = path(&dir.join("oct").join("spool")),
        state = path(&dir.join("oct").join("oct.sqlite")),
        key = path(key),
        cert = path(cert),
        maildir = path(ps_maildir),
        routes = routes,
    )
}

fn ps_config_text(oct_port: u16, maildir: &Path) -> String {
    format!(
        r#"# Generated by `svoct demo`.
mode = "direct"
store = "svoct-ps.sqlite"

[identity]
sender_type = "TP"
sender_number = "00000123456789"
ps_number = "123456789"
category = "IF"
from = "cabinet@ps.demo"

[network.smtp]
host = "127.0.0.1"
port = {oct_port}
tls = "none"

[network.mailbox]
maildir = "{maildir}"

[direct]
spec_version = "140700"

[direct.routes."011"]
mailbox = "cpam011@am.demo"
"#,
        maildir = path(maildir)
    )
}
