//! `svoct am-sim`: a simulated insurer (AM) to run next to `svoct oct serve`.
//!
//! It listens where the OCT forwards files, answers each lot with an ARL and each PS of an
//! accepted FSE lot with a NOEMIE 580, and sends the returns to the OCT by SMTP. The decision
//! rules are flags so that a test or a demo can predict every answer (see `docs/am-sim.md`).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use svoct_mail::cms::PrivateKeyAndCert;
use svoct_sim::amsim::{AmIdentity, AmSim, AmSimConfig, Rules};

use crate::CmdResult;

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on for the files the OCT forwards (port 0: any free port; the chosen
    /// address is printed as `listening on ADDR`).
    #[arg(long)]
    listen: SocketAddr,
    /// Spool directory of received messages (created if missing; quarantined messages stay in
    /// `DIR/quarantine` with a `.reason` file).
    #[arg(long)]
    spool: PathBuf,
    /// The AM private key (PEM, mode 0600) to decrypt `/K` and `/ZK` files; needs --cert.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// The AM certificate (PEM) that goes with --key.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// The OCT's SMTP ingress, HOST:PORT, where returns (ARL, RSP) are sent.
    #[arg(long, value_name = "HOST:PORT")]
    oct: String,
    /// The OCT's mail address for returns from AM (the `To` of every return).
    #[arg(long, value_name = "ADDR")]
    oct_address: String,
    /// Lots created more than N days before today get a negative ARL (and no RSP).
    #[arg(long, value_name = "N", default_value_t = Rules::default().negative_arl_after_days)]
    negative_after_days: i64,
    /// Invoices whose number is a multiple of N are rejected (0: none).
    #[arg(long, value_name = "N", default_value_t = Rules::default().reject_every)]
    reject_every: u64,
    /// Invoices whose number is a multiple of N (and not rejected) are deferred (0: none).
    #[arg(long, value_name = "N", default_value_t = Rules::default().defer_every)]
    defer_every: u64,
    /// The insurer's number in ARL and NOEMIE headers (1 to 14 digits, zero-padded to 14).
    #[arg(long, value_name = "N", default_value_t = AmIdentity::default().sender_number)]
    sender_number: String,
    /// The simulator's own address, used as `From` when a message has no recipient to answer
    /// from (returns are otherwise sent from the mailbox the OCT forwarded to).
    #[arg(long, value_name = "ADDR", default_value_t = AmIdentity::default().address)]
    address: String,
}

/// Splits `HOST:PORT` (the host may be a bracketed IPv6 literal).
fn host_port(text: &str) -> Result<(String, u16), String> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("--oct {text:?}: expected HOST:PORT"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("--oct {text:?}: the host is empty"));
    }
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("--oct {text:?}: the port must be 1 to 65535"))?;
    Ok((host.to_owned(), port))
}

/// 1 to 14 digits, zero-padded on the left to the 14 positions of the headers.
fn sender_number(text: &str) -> Result<String, String> {
    if text.is_empty() || text.len() > 14 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("--sender-number {text:?}: expected 1 to 14 digits"));
    }
    Ok(format!("{text:0>14}"))
}

pub fn run(args: Args) -> CmdResult {
    if args.negative_after_days < 0 {
        return Err("--negative-after-days must be 0 or more".into());
    }
    let oct_smtp = host_port(&args.oct)?;
    let key = match (&args.key, &args.cert) {
        (Some(k), Some(c)) => Some(PrivateKeyAndCert::from_files(k, c)?),
        _ => None,
    };
    let config = AmSimConfig {
        listen: args.listen,
        spool_dir: args.spool,
        key,
        oct_smtp,
        oct_address: args.oct_address,
        identity: AmIdentity {
            sender_number: sender_number(&args.sender_number)?,
            address: args.address,
            ..AmIdentity::default()
        },
        rules: Rules {
            negative_arl_after_days: args.negative_after_days,
            reject_every: args.reject_every,
            defer_every: args.defer_every,
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let sim = AmSim::start(config).await?;
        // Tests and scripts read this line to find the port when listening on port 0.
        println!("listening on {}", sim.local_addr());
        let _ = std::io::stdout().flush();
        super::wait_for_signal().await;
        tracing::info!("am-sim: shutdown requested");
        let totals = sim.shutdown().await;
        tracing::info!(
            files = totals.files,
            lots = totals.lots,
            arl = totals.arl_sent,
            rsp = totals.rsp_sent,
            quarantined = totals.quarantined,
            "am-sim: stopped"
        );
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oct_address_is_host_and_port() {
        assert_eq!(host_port("127.0.0.1:2525"), Ok(("127.0.0.1".into(), 2525)));
        assert_eq!(host_port("[::1]:25"), Ok(("::1".into(), 25)));
        assert_eq!(
            host_port("mx.oct.example:587"),
            Ok(("mx.oct.example".into(), 587))
        );
        assert!(host_port("127.0.0.1").is_err());
        assert!(host_port(":25").is_err());
        assert!(host_port("h:0").is_err());
        assert!(host_port("h:70000").is_err());
    }

    #[test]
    fn sender_number_is_padded_to_14_digits() {
        assert_eq!(sender_number("11"), Ok("00000000000011".into()));
        assert_eq!(sender_number("12345678901234"), Ok("12345678901234".into()));
        assert!(sender_number("").is_err());
        assert!(sender_number("123456789012345").is_err());
        assert!(sender_number("12a").is_err());
    }
}
