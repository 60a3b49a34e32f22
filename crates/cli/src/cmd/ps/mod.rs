//! `svoct ps ...`: the billing-software side from the command line.
//!
//! Every subcommand is a thin shell over `svoct_ps`: it loads the configuration, calls the
//! library, and prints a human table or JSON (`--json`) for integration.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use svoct_ps::config::{self, Config, ConfigFile, EnrichedFiles, Mode, OctChanges, SendOption};

use crate::CmdResult;

mod archive;
mod fetch;
mod loi_check;
mod output;
mod returns;
mod send;
mod show;
mod status;

#[derive(clap::Args)]
pub struct Args {
    /// The PS configuration file (TOML; every setting is described in docs/ps-config.md).
    #[arg(long, global = true, env = "SVOCT_PS_CONFIG", default_value = "svoct-ps.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a starting configuration file (refuses to overwrite one unless --force).
    Init {
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Show the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Switch the exchange mode (R1): `direct` (PS -> AM) or `oct` (PS -> OCT -> AM). Only the
    /// `mode` key of the file changes.
    Mode {
        #[arg(value_enum)]
        mode: ModeArg,
    },
    /// Set, change or remove the OCT (R2). Direct-mode settings are never touched.
    #[command(subcommand)]
    Oct(OctCommand),
    /// Send lot files (B2 bare lots or framed files) in the configured mode and option.
    Send(send::SendArgs),
    /// Send again every deferred message (transient failure), each with a new compostage.
    Retry(send::RetryArgs),
    /// Send the file of a journal entry again, with a new compostage (R5.3).
    Resend(send::ResendArgs),
    /// List the journal: every message sent or received; `journal show ID` shows one, and
    /// `--payload FILE` writes the file it carried.
    Journal(JournalCommand),
    /// Retrieve returns from the mailbox (POP3 or Maildir), store, classify, quarantine.
    Fetch(fetch::FetchArgs),
    /// List received messages kept for processing.
    Inbox(fetch::ListArgs),
    /// List received messages set aside, with the reason; `quarantine show ID` shows one, and
    /// `--raw FILE` writes the message as retrieved.
    Quarantine(QuarantineCommand),
    /// Worklists: lots without ARL, invoices without RSP, lots to resend, invoices to correct,
    /// returns for nothing sent, totals paid per day.
    Status(status::StatusArgs),
    /// Every sent lot and invoice with its state (ARL, payment), and the ART/NOEMIE notes.
    Returns(returns::ReturnsArgs),
    /// Opposition list (LOI) exchanges.
    #[command(subcommand)]
    Loi(LoiCommand),
    /// Write the whole store (journal, saved files, returns, states, LOI) to one tar archive of
    /// plain files (docs/formats/ps-archive.md), to move a practice's history elsewhere.
    Export(archive::ExportArgs),
    /// Restore an archive written by `export` into the configured store, which must be new.
    Import(archive::ImportArgs),
}

/// `ps journal [filters]` lists; `ps journal show ID` shows one entry.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
struct JournalCommand {
    #[command(subcommand)]
    show: Option<JournalShow>,
    #[command(flatten)]
    list: send::JournalArgs,
}

#[derive(Subcommand)]
enum JournalShow {
    /// One journal entry: its outcome, recipient, certificate, lots; `--payload FILE` writes the file
    /// it carried, exactly as sent.
    Show(show::JournalShowArgs),
}

/// `ps quarantine` lists; `ps quarantine show ID` shows one received message.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
struct QuarantineCommand {
    #[command(subcommand)]
    show: Option<QuarantineShow>,
    #[command(flatten)]
    list: fetch::ListArgs,
}

#[derive(Subcommand)]
enum QuarantineShow {
    /// One received message (quarantined or not): its state and reason; `--raw FILE` writes it as
    /// retrieved.
    Show(show::QuarantineShowArgs),
}

#[derive(Subcommand)]
enum LoiCommand {
    /// Send the dLOI request to the OCT (R7.2).
    Request(send::LoiRequestArgs),
    /// Whether a card is on the local opposition list (exit code 1 when opposed).
    Check(loi_check::CheckArgs),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the configuration in effect, credentials redacted.
    Show {
        /// JSON instead of `key = value` lines.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum OctCommand {
    /// Set the OCT's settings; keys not given keep their value. The first time, --address,
    /// --certificate and --identifier are required.
    Set {
        /// The OCT's mail address (R2.2).
        #[arg(long)]
        address: Option<String>,
        /// The OCT's attachment-encryption certificate, PEM or DER (R2.2).
        #[arg(long)]
        certificate: Option<PathBuf>,
        /// The recipient number of the OCT single-file header: at most 14 digits from the OCT's
        /// SIREN, or its association number (`W751234567`).
        #[arg(long)]
        identifier: Option<String>,
        /// How lots travel to the OCT (R3.1 split, R3.2 single, R3.3 enriched).
        #[arg(long, value_enum)]
        option: Option<OptionArg>,
        /// With option `enriched`: one single file (`single`, the default) or one file per
        /// destination as in direct mode (`per-destination`) (R3.3).
        #[arg(long, value_enum)]
        enriched_files: Option<EnrichedFilesArg>,
        /// Compress before encrypting (`FACTURE/SV/ZK`). Without --compress or --no-compress,
        /// `split` does not compress (it is the direct message) and the single file does.
        #[arg(long, overrides_with = "no_compress")]
        compress: bool,
        /// Encrypt without compressing (`FACTURE/SV/K`).
        #[arg(long)]
        no_compress: bool,
    },
    /// Remove the OCT settings and go back to direct mode (R1.2: direct settings untouched).
    Remove,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    Direct,
    Oct,
}

#[derive(Clone, Copy, ValueEnum)]
enum EnrichedFilesArg {
    Single,
    PerDestination,
}

#[derive(Clone, Copy, ValueEnum)]
enum OptionArg {
    Split,
    Single,
    Enriched,
}

pub fn run(args: Args) -> CmdResult {
    let path = args.config.as_path();
    match args.command {
        Command::Init { force } => init(path, force),
        Command::Config(ConfigCommand::Show { json }) => show(path, json),
        Command::Mode { mode } => set_mode(path, mode),
        Command::Oct(OctCommand::Set {
            address,
            certificate,
            identifier,
            option,
            enriched_files,
            compress,
            no_compress,
        }) => {
            let compress = match (compress, no_compress) {
                (true, _) => Some(true),
                (false, true) => Some(false),
                (false, false) => None,
            };
            let option = option.map(|o| match o {
                OptionArg::Split => SendOption::Split,
                OptionArg::Single => SendOption::Single,
                OptionArg::Enriched => SendOption::Enriched,
            });
            oct_set(
                path,
                OctChanges {
                    address,
                    certificate,
                    identifier,
                    option,
                    compress,
                    enriched_files: enriched_files.map(|e| match e {
                        EnrichedFilesArg::Single => EnrichedFiles::Single,
                        EnrichedFilesArg::PerDestination => EnrichedFiles::PerDestination,
                    }),
                },
            )
        }
        Command::Oct(OctCommand::Remove) => oct_remove(path),
        Command::Send(a) => send::send(path, a),
        Command::Retry(a) => send::retry(path, a),
        Command::Resend(a) => send::resend(path, a),
        Command::Journal(JournalCommand {
            show: Some(JournalShow::Show(a)),
            ..
        }) => show::journal_show(path, a),
        Command::Journal(JournalCommand { list, .. }) => send::journal(path, list),
        Command::Fetch(a) => fetch::fetch(path, a),
        Command::Inbox(a) => fetch::list(path, a, false),
        Command::Quarantine(QuarantineCommand {
            show: Some(QuarantineShow::Show(a)),
            ..
        }) => show::quarantine_show(path, a),
        Command::Quarantine(QuarantineCommand { list, .. }) => fetch::list(path, list, true),
        Command::Loi(LoiCommand::Request(a)) => send::loi_request(path, a),
        Command::Loi(LoiCommand::Check(a)) => loi_check::check(path, a),
        Command::Status(a) => status::status(path, a),
        Command::Returns(a) => returns::returns(path, a),
        Command::Export(a) => archive::export(path, a),
        Command::Import(a) => archive::import(path, a),
    }
}

fn init(path: &Path, force: bool) -> CmdResult {
    if path.exists() && !force {
        return Err(format!("{} already exists; use --force to overwrite it", path.display()).into());
    }
    // Owner only: the configuration will hold passwords.
    svoct_mail::fsx::create_data_file(path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, config::EXAMPLE.as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!(
        "wrote {}; edit [identity], [network] and [direct.routes] before sending",
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn show(path: &Path, json: bool) -> CmdResult {
    let config = Config::load(path)?;
    let value = config.redacted();
    if json {
        crate::json::print(&value)?;
    } else {
        for (key, value) in output::flatten(&value) {
            println!("{key} = {value}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn set_mode(path: &Path, mode: ModeArg) -> CmdResult {
    let mode = match mode {
        ModeArg::Direct => Mode::Direct,
        ModeArg::Oct => Mode::Oct,
    };
    let mut file = ConfigFile::open(path)?;
    file.set_mode(mode);
    let config = file.save()?;
    match config.mode {
        Mode::Direct => println!("mode: direct"),
        Mode::Oct => {
            let address = config.oct.as_ref().map(|o| o.address.as_str()).unwrap_or("");
            println!("mode: oct ({address})");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn oct_set(path: &Path, changes: OctChanges) -> CmdResult {
    let mut file = ConfigFile::open(path)?;
    let before = Config::load(path)?;
    if before.oct.is_none() {
        let mut missing = Vec::new();
        if changes.address.is_none() {
            missing.push("--address");
        }
        if changes.certificate.is_none() {
            missing.push("--certificate");
        }
        if changes.identifier.is_none() {
            missing.push("--identifier");
        }
        if !missing.is_empty() {
            return Err(format!(
                "no OCT is configured yet: {} required the first time",
                missing.join(", ")
            )
            .into());
        }
    }
    // The certificate is checked now, not at the first sending: the path as the configuration
    // will read it (relative to the configuration file), a certificate, valid today.
    let checked = match &changes.certificate {
        Some(cert) => {
            let dir = path.parent().unwrap_or(Path::new(""));
            let resolved = if cert.is_relative() {
                dir.join(cert)
            } else {
                cert.clone()
            };
            let info = svoct_ps::certificate::check_file(&resolved).map_err(|e| {
                let hint = if cert.is_relative() && !dir.as_os_str().is_empty() {
                    " (a relative path is relative to the configuration file's directory)"
                } else {
                    ""
                };
                format!("{e}{hint}; the OCT settings are unchanged")
            })?;
            Some(info)
        }
        None => None,
    };
    file.set_oct(&changes);
    let config = file.save()?;
    if let Some(info) = checked {
        println!("certificate: {} (valid until {})", info.subject, info.not_after);
    }
    if let Some(oct) = &config.oct {
        println!(
            "oct: {} (identifier {}, option {}, {}); mode is {}",
            oct.address,
            oct.identifier,
            output::option_name(oct.option, oct.enriched_files),
            if oct.compresses() {
                "compressed"
            } else {
                "not compressed"
            },
            output::mode_name(config.mode)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn oct_remove(path: &Path) -> CmdResult {
    let mut file = ConfigFile::open(path)?;
    file.remove_oct();
    file.save()?;
    println!("oct settings removed; mode: direct");
    Ok(ExitCode::SUCCESS)
}
