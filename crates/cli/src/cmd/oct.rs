//! `svoct oct`: run and operate the concentrator.
//!
//! - `init --dir DIR`: a starting configuration, directories and a throw-away key pair.
//! - `check [--strict] [--json]`: every problem `serve` would meet, all at once.
//! - `serve`: the service (ingress, pipeline workers, outbox sender) until SIGINT/SIGTERM, then a
//!   graceful shutdown. It runs `check` first and refuses to start on an error, and holds the
//!   instance lock (`<paths.state>.lock`) while it runs. SIGHUP reloads the configuration file
//!   (validated first; see `svoct_oct::service::Running::reload_file`).
//! - `reload`: validate the file, SIGHUP the running service, wait for its answer (see
//!   `oct_reload`).
//! - `status [--json]`: whether the service runs, queue depths, counters, undelivered and
//!   quarantined messages; an error when there is no state database.
//! - `quarantine list|show|retry|drop`: what was refused and why; hand a message back to the
//!   pipeline after fixing the cause (a route, a registration): `retry` has the running service
//!   reload the file first (see `oct_reload`).
//! - `outbox requeue`: put failed deliveries back in the queue.
//! - `queue list|show|flush|hold|release|delete`: queue control (see `oct_queue`).
//! - `trace QUERY [--json]`: the whole story of one message (see `oct_trace`).
//! - `backup --out FILE` / `restore FILE`: a consistent copy of the state and spool taken while
//!   the service runs, and its restoration into a fresh directory (see `oct_backup`).
//! - `ps add|list|show|suspend|resume|remove|import|audit`: the PS accounts (see `oct_ps`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use serde::Serialize;
use svoct_oct::config::Config;
use svoct_oct::instance::{InstanceLock, Liveness};
use svoct_oct::preflight::{self, Severity};
use svoct_oct::state::{OctStore, State};

use crate::CmdResult;

#[derive(clap::Args)]
pub struct Args {
    /// The concentrator configuration (see docs/oct.md).
    #[arg(
        long,
        global = true,
        env = "SVOCT_OCT_CONFIG",
        default_value = "svoct-oct.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a starting configuration (DIR/oct.toml), its 0700 directories and a throw-away
    /// self-signed key pair to replace before production.
    Init {
        /// Directory to write into (created when missing); an existing oct.toml is never
        /// overwritten.
        #[arg(long)]
        dir: PathBuf,
        /// Address the ingress listens on.
        #[arg(long, default_value = "127.0.0.1:2525")]
        listen: std::net::SocketAddr,
        /// The OCT's mail address.
        #[arg(long, default_value = "oct@localhost.localdomain")]
        address: String,
        /// Address `[http]` (metrics, health, web console) listens on: loopback.
        #[arg(long, default_value = "127.0.0.1:9425")]
        http_listen: std::net::SocketAddr,
    },
    /// Check everything `serve` needs (settings, files, permissions, certificates and their
    /// dates, directories) and list every problem; exit 1 on an error.
    Check {
        /// Also exit 1 on warnings (a certificate ending within 30 days).
        #[arg(long)]
        strict: bool,
        #[arg(long)]
        json: bool,
    },
    /// Run the concentrator until SIGINT or SIGTERM (graceful: in-flight work is finished).
    Serve,
    /// Queue depths, counters, undelivered and quarantined messages.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Quarantined messages.
    Quarantine {
        #[command(subcommand)]
        command: QuarantineCommand,
    },
    /// The outbox of outgoing messages.
    Outbox {
        #[command(subcommand)]
        command: OutboxCommand,
    },
    /// Queue control (mailq, postqueue -f, postsuper -h -H -d): list, show, flush, hold,
    /// release and delete outgoing messages.
    Queue {
        #[command(subcommand)]
        command: super::oct_queue::QueueCommand,
    },
    /// Write a consistent copy of the state database and the spool to a new 0600 archive, while
    /// the service runs.
    Backup {
        /// The archive to create (never overwritten; it holds health data).
        #[arg(long)]
        out: PathBuf,
    },
    /// Restore an archive from `backup` into the paths of this configuration, which must hold no
    /// state database and an empty spool (a new machine, a fresh directory).
    Restore {
        /// The archive written by `svoct oct backup`.
        archive: PathBuf,
    },
    /// The whole story of a message (ingress, processing, lots, quarantine, every outgoing
    /// message and its delivery), found by spool id (the PS journal's `250` answer),
    /// compostage, PS number, lot number or outgoing Message-ID; exit 1 when nothing matches.
    Trace {
        query: String,
        #[arg(long)]
        json: bool,
    },
    /// Validate the configuration file, then have the running service reload it (SIGHUP) and
    /// wait for its answer; exit 1 when the file is invalid, no service runs or it refused.
    /// What `systemctl reload` runs.
    Reload,
    /// The PS accounts (practices) the OCT serves: add, list, show, suspend, resume, remove,
    /// import from CSV, audit trail. Effective at once, whether or not the service runs.
    Ps {
        #[command(subcommand)]
        command: super::oct_ps::PsCommand,
    },
    /// The web console's operators (`[http] users_file`).
    ConsoleUser {
        #[command(subcommand)]
        command: super::oct_console::ConsoleUserCommand,
    },
}

#[derive(Subcommand)]
enum QuarantineCommand {
    /// List quarantined messages with their reasons.
    List {
        /// Include messages already handed back to the pipeline.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Show one quarantined message: reason, envelope, processing summary.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
        /// Write the raw message to this file (it holds health data: mode 0600).
        #[arg(long)]
        raw: Option<PathBuf>,
    },
    /// Process a quarantined message again, with the configuration file as it is now: the file
    /// is validated (refused on errors), the running service reloads it, then the message is
    /// marked; the service processes it at its next poll, or at its next start.
    Retry { id: i64 },
    /// Drop a quarantined message for good (`postsuper -d`): its content is removed, its row is
    /// kept with your reason, and it can no longer be retried. A message marked for retry is
    /// not dropped.
    Drop {
        id: i64,
        /// Why (kept with the row, shown by `quarantine show`, logged).
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
enum OutboxCommand {
    /// Put every failed delivery back in the queue.
    Requeue,
}

pub fn run(args: Args) -> CmdResult {
    let file = &args.config;
    match args.command {
        Command::Init {
            dir,
            listen,
            address,
            http_listen,
        } => init(super::oct_init::InitOptions {
            dir,
            listen,
            address,
            http_listen,
        }),
        Command::Check { strict, json } => check(file, strict, json),
        Command::Serve => serve(file),
        Command::Status { json } => status(&with_state(file)?, json),
        Command::Quarantine { command } => quarantine(file, command),
        Command::Reload => super::oct_reload::reload(file),
        Command::Backup { out } => super::oct_backup::backup(&with_state(file)?, &out),
        Command::Restore { archive } => super::oct_backup::restore(&Config::load(file)?, &archive),
        Command::Queue { command } => super::oct_queue::run(&with_state(file)?, command),
        Command::Trace { query, json } => super::oct_trace::trace(&with_state(file)?, &query, json),
        Command::Ps { command } if super::oct_ps::needs_state(&command) => {
            super::oct_ps::run(&with_state(file)?, command)
        }
        Command::Ps { command } => super::oct_ps::run(&Config::load(file)?, command),
        Command::ConsoleUser { command } => super::oct_console::run(&Config::load(file)?, command),
        Command::Outbox {
            command: OutboxCommand::Requeue,
        } => {
            let state = State::open(&with_state(file)?.paths.state)?;
            let n = state.requeue_failed()?;
            println!("{n} failed message(s) queued again");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The configuration of a command that reads the state database, refused when the database is
/// missing: opening it would create it empty and report an idle service instead of a wrong path.
pub(super) fn with_state(file: &Path) -> Result<Config, Box<dyn std::error::Error + Send + Sync>> {
    let config = Config::load(file)?;
    let state = &config.paths.state;
    if !state.exists() {
        return Err(format!(
            "no state database at {} (paths.state in {}): the service has not run with this \
             configuration, or the path is wrong; nothing was created",
            state.display(),
            file.display()
        )
        .into());
    }
    Ok(config)
}

fn init(options: super::oct_init::InitOptions) -> CmdResult {
    let config = super::oct_init::init(&options)?;
    println!("wrote {}", config.display());
    println!(
        "the key pair in {} is a THROW-AWAY self-signed one: replace it with the OCT's own",
        options.dir.join("keys").display()
    );
    println!(
        "next: edit it, then `svoct oct check --config {}`",
        config.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn check(file: &Path, strict: bool, json: bool) -> CmdResult {
    let (_, report) = preflight::check_file(file);
    let ok = report.passes(strict);
    if json {
        crate::json::print(&serde_json::json!({
            "file": report.file,
            "ok": ok,
            "error_count": report.count(Severity::Error),
            "warning_count": report.count(Severity::Warning),
            "findings": report.findings,
        }))?;
    } else {
        print!("{report}");
        println!(
            "{}: {} error(s), {} warning(s){}",
            file.display(),
            report.count(Severity::Error),
            report.count(Severity::Warning),
            if ok { "" } else { ": serve would not start" }
        );
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn serve(file: &Path) -> CmdResult {
    // The same checks as `svoct oct check`: one source of truth for "can it start".
    let (config, report) = preflight::check_file(file);
    eprint!("{report}");
    let config = match config {
        Some(c) if report.passes(false) => c,
        _ => {
            eprintln!(
                "svoct: {} has {} error(s): not starting (see `svoct oct check`)",
                file.display(),
                report.count(Severity::Error)
            );
            return Ok(ExitCode::from(1));
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    // SIGHUP's default action ends the process: its handler is in place before the instance
    // lock publishes our pid, which `svoct oct reload` signals. One arriving before the service
    // is up waits in the stream and is handled once it is.
    let mut hangup = {
        let _in_runtime = runtime.enter();
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?
    };
    // Held until the process ends; `svoct oct status` probes it.
    let _lock = InstanceLock::acquire(&config.paths.state)?;
    runtime.block_on(async move {
        // From the file: the console reloads it (its Reload and Retry), as SIGHUP does.
        let running = svoct_oct::service::Running::start_from_file(config, file.to_path_buf()).await?;
        if let Some(addr) = running.local_addr() {
            // Tests and scripts read this line to find the port when listening on port 0.
            println!("listening on {addr}");
            let _ = std::io::stdout().flush();
        }
        let stop = super::wait_for_signal();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => break,
                Some(()) = hangup.recv() => {
                    // Reading files blocks: off the async workers, the ingress keeps serving.
                    // The outcome is logged and acknowledged by `reload_file` itself.
                    let _ = tokio::task::block_in_place(|| running.reload_file(file));
                }
            }
        }
        tracing::info!("shutdown requested");
        running.shutdown().await;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Counts the entries of a spool sub-directory (`new`, `quarantine`) without opening the spool,
/// which the running service holds locked.
fn spool_count(spool: &Path, sub: &str) -> u64 {
    std::fs::read_dir(spool.join(sub))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    let n = e.file_name();
                    let n = n.to_string_lossy();
                    n.len() == 16 && n.bytes().all(|b| b.is_ascii_hexdigit())
                })
                .count() as u64
        })
        .unwrap_or(0)
}

#[derive(Serialize)]
struct StatusReport {
    /// Whether a `svoct oct serve` holds the instance lock of this state database.
    service: Liveness,
    spool_waiting: u64,
    spool_quarantined: u64,
    counters: svoct_oct::state::Counters,
    /// The first [`UNDELIVERED_SHOWN`] undelivered messages, oldest first.
    undelivered: Vec<svoct_oct::state::OutboxRow>,
    /// All undelivered messages (pending, being sent, failed): more than listed when the list
    /// is cut, which the text output says.
    undelivered_count: u64,
    quarantined: Vec<svoct_oct::state::QuarantineRow>,
    /// Routes configured with `plaintext = true`: claims leave them in clear.
    plaintext_routes: Vec<String>,
    /// Undelivered messages (among those listed) waiting because the relay refused the OCT's
    /// SMTP login: the operator must fix `[delivery.smtp]`.
    login_refused: usize,
}

/// Undelivered messages listed by `status` (the count of all of them is always given).
const UNDELIVERED_SHOWN: usize = 50;

fn status(config: &Config, json: bool) -> CmdResult {
    let state = State::open(&config.paths.state)?;
    let mut undelivered = state.undelivered(UNDELIVERED_SHOWN)?;
    for r in &mut undelivered {
        super::oct_trace::scrub(config, &mut r.last_error);
    }
    let login_refused = undelivered
        .iter()
        .filter(|r| r.state != svoct_oct::state::OutboxState::Failed)
        .filter(|r| r.login_refused)
        .count();
    let counters = state.counters()?;
    let undelivered_count = counters
        .outbox
        .iter()
        .filter(|(state, _)| !matches!(state.as_str(), "sent" | "deleted"))
        .map(|(_, n)| n)
        .sum();
    let report = StatusReport {
        service: svoct_oct::instance::probe(&config.paths.state)?,
        spool_waiting: spool_count(&config.paths.spool, "new"),
        spool_quarantined: spool_count(&config.paths.spool, "quarantine"),
        counters,
        undelivered,
        undelivered_count,
        quarantined: state.quarantine_list(false)?,
        plaintext_routes: config.plaintext_routes(),
        login_refused,
    };
    if json {
        crate::json::print(&report)?;
    } else {
        print_status(config, &report);
    }
    Ok(ExitCode::SUCCESS)
}

/// The text of `oct status`.
fn print_status(config: &Config, report: &StatusReport) {
    print_service(report.service);
    if report.login_refused > 0 {
        println!(
            "ALERT: the relay refused the OCT's SMTP login; {} message(s) wait for [delivery.smtp] username/password to be fixed",
            report.login_refused
        );
    }
    if !report.plaintext_routes.is_empty() {
        println!("routes forwarding claims in clear (plaintext = true):");
        for r in &report.plaintext_routes {
            println!("  {r}");
        }
    }
    let c = &report.counters;
    let get = |m: &std::collections::BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
    println!(
        "spool: {} waiting, {} unreadable set aside",
        report.spool_waiting, report.spool_quarantined
    );
    println!(
        "quarantine: {} held, {} purged (content removed), {} bytes of content (bound {})",
        get(&c.quarantine, "held"),
        get(&c.quarantine, "purged"),
        c.quarantine_bytes,
        config.quarantine.max_bytes
    );
    println!(
        "outbox: {} pending, {} sent, {} failed, {} held, {} deleted (see `svoct oct queue list`)",
        get(&c.outbox, "pending"),
        get(&c.outbox, "sent"),
        get(&c.outbox, "failed"),
        get(&c.outbox, "held"),
        get(&c.outbox, "deleted")
    );
    for (k, v) in &c.outbox_by_kind {
        println!("  {k}: {v}");
    }
    println!("processed:");
    for (k, v) in &c.processed {
        println!("  {k}: {v}");
    }
    println!(
        "lots built by the OCT: {} ({} acknowledged by ARL)",
        c.own_lots, c.own_lots_acknowledged
    );
    if !report.undelivered.is_empty() {
        println!("undelivered:");
        for r in &report.undelivered {
            println!(
                "  #{} {} {} to {} attempts {}{}",
                r.id,
                r.state,
                r.kind,
                r.rcpt,
                r.attempts,
                r.last_error
                    .as_deref()
                    .map(|e| format!(": {}", one_line(e)))
                    .unwrap_or_default()
            );
        }
        let more = report
            .undelivered_count
            .saturating_sub(report.undelivered.len() as u64);
        if more > 0 {
            println!("  ...and {more} more undelivered (the {UNDELIVERED_SHOWN} oldest are listed)");
        }
    }
    print_quarantine(&report.quarantined);
}

fn print_service(service: Liveness) {
    match service {
        Liveness::Running { pid: Some(pid) } => println!("service: running (pid {pid})"),
        Liveness::Running { pid: None } => println!("service: running"),
        Liveness::Stopped => println!("service: not running"),
    }
}

/// A delivery error as shown to the operator. Errors are scrubbed before they are stored;
/// scrubbing again with the configured login also cleans rows a version without scrubbing
/// stored.
pub(super) use svoct_oct::operate::one_line;

fn print_quarantine(rows: &[svoct_oct::state::QuarantineRow]) {
    if rows.is_empty() {
        println!("quarantine: empty");
        return;
    }
    println!("quarantine:");
    for q in rows {
        println!(
            "  #{} [{}] {} from {} subject {:?}: {}",
            q.id,
            q.state,
            q.code,
            q.mail_from,
            q.subject,
            one_line(&q.reason)
        );
    }
}

/// `oct quarantine show ID [--json] [--raw FILE]`.
fn quarantine_show(
    state: &State,
    id: i64,
    json: bool,
    raw: Option<PathBuf>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let Some(svoct_oct::state::QuarantinedMessage {
        row,
        raw: bytes,
        summary,
    }) = state.quarantine_get(id)?
    else {
        return Err(format!("no quarantined message #{id}").into());
    };
    // When the content was removed by the bound or the retention.
    let purged = state.quarantine_purge_record(id)?;
    if let (Some(_), Some(p)) = (&raw, &purged) {
        let (size, cause) = (p.bytes, &p.cause);
        return Err(format!(
            "the content of quarantined message #{id} ({size} bytes) was removed ({cause}); \
             its reason and metadata are all that is kept"
        )
        .into());
    }
    if let Some(path) = raw {
        let mut f =
            svoct_mail::fsx::create_new_data_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        f.write_all(&bytes)?;
    }
    if json {
        // `removed_at` is epoch seconds here; the JSON writer makes it RFC 3339.
        crate::json::print(&serde_json::json!({
            "message": row,
            "summary": summary,
            "purged": purged.as_ref().map(|p| {
                serde_json::json!({ "cause": p.cause, "bytes": p.bytes, "removed_at": p.at })
            }),
        }))?;
    } else {
        println!("#{} [{}] {}", row.id, row.state, row.code);
        println!("reason: {}", one_line(&row.reason));
        println!("from: {}", row.mail_from);
        println!("to: {}", row.rcpt.join(", "));
        println!("subject: {}", row.subject);
        println!("spool id: {}", row.spool_id);
        println!("bytes: {}", row.bytes);
        if let Some(p) = &purged {
            println!(
                "content removed ({}) at {} (unix time): {} bytes",
                p.cause, p.at, p.bytes
            );
        }
        if !summary.is_null() {
            println!("summary: {}", serde_json::to_string_pretty(&summary)?);
        }
    }

    Ok(())
}

fn quarantine(file: &Path, command: QuarantineCommand) -> CmdResult {
    let open = || -> Result<State, Box<dyn std::error::Error + Send + Sync>> {
        Ok(State::open(&with_state(file)?.paths.state)?)
    };
    match command {
        QuarantineCommand::List { all, json } => {
            let rows = open()?.quarantine_list(all)?;
            if json {
                crate::json::print(&rows)?;
            } else {
                print_quarantine(&rows);
            }
        }
        QuarantineCommand::Show { id, json, raw } => quarantine_show(&open()?, id, json, raw)?,
        QuarantineCommand::Drop { id, reason } => {
            let (dropped, reason) = svoct_oct::operate::quarantine_drop(&open()?, id, &reason)?;
            println!(
                "#{id} dropped: {} bytes removed; its row is kept with the reason \"{reason}\"",
                dropped.bytes
            );
        }
        // Validates the file and has the running service reload it before marking.
        QuarantineCommand::Retry { id } => return super::oct_reload::retry(file, id),
    }
    Ok(ExitCode::SUCCESS)
}
