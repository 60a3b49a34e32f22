//! What a billing software does with the PS module, safe to copy into a product.
//!
//! ```text
//! cargo run -p svoct-ps --example billing -- CONFIG LOTS... [--out DIR]
//! ```
//!
//! `CONFIG` is the practice's `svoct-ps.toml`, set up once (`svoct ps init`, then
//! `svoct ps oct set --address ... --certificate OCT.crt --identifier ...` with the certificate
//! the OCT published, or the vendor's own screens calling `ConfigFile::set_oct`); `LOTS` are the
//! B2 lot files the SESAM-Vitale API built and sealed. With `--out DIR` the messages are written
//! as `.eml` files instead of being handed to `[network.smtp]`.
//!
//! One run is what a "send my invoices" button does: send again what an earlier run could not
//! (a transient failure: `deferred`), send today's lots (each invoice at most once: the journal
//! refuses one already sent), pick up returns, and say what needs a human. It never re-sends a
//! sent file by itself: `Ps::resend` is for when the caisse or the OCT asks for it, on purpose.

use std::error::Error;
use std::path::{Path, PathBuf};

use svoct_mail::transport::{DirTransport, Transport};
use svoct_ps::config::Config;
use svoct_ps::{LotFile, Ps, Sent};
use svoct_store::Status;

/// What one run did, for the caller's screen (and for the test that runs this example).
#[derive(Debug, Default)]
pub struct Summary {
    /// Messages of earlier runs sent again after a transient failure.
    pub retried: Vec<Sent>,
    /// Today's messages, one per file of the mode and option.
    pub sent: Vec<Sent>,
    /// Returns picked up (0 when no `[network.mailbox]` is configured).
    pub fetched: usize,
    /// Returns set aside (unreadable, not for this PS), with their reason in `svoct ps quarantine`.
    pub quarantined: usize,
    /// Lots with a negative ARL and invoices rejected: to correct and send again.
    pub to_correct: usize,
}

fn show(s: &Sent) {
    match s.status {
        Status::Sent => println!("  sent {} to {} ({} invoices)", s.subject, s.to, s.invoices),
        // 4xx, server down: kept, and the next run's `retry` sends it with a new compostage.
        Status::Deferred => println!("  not sent yet ({}): will go at the next run", s.answer),
        // 5xx: the server refused it; a human reads the answer (address? certificate?).
        _ => println!("  REFUSED {}: {}", s.subject, s.answer),
    }
}

/// One run: retry, send, fetch, worklists.
pub fn run(config: &Path, lots: &[PathBuf], out: Option<&Path>) -> Result<Summary, Box<dyn Error>> {
    // The practice's configuration and its store (journal, saved files, returns).
    let ps = Ps::open(Config::load(config)?)?;
    let transport: Box<dyn Transport> = match out {
        Some(dir) => Box::new(DirTransport::new(dir)?),
        None => Box::new(ps.smtp_transport()?),
    };
    let mut summary = Summary::default();

    // 1. What an earlier run left `deferred` goes first. Only deferred entries: never a sent one.
    ps.retry(transport.as_ref(), &mut |s: &Sent| {
        show(s);
        summary.retried.push(s.clone());
    })?;

    // 2. Today's lots. Errors (a lot that breaks a rule, an invoice already sent) are one line
    //    naming the file, record, offset or journal entry: show it to the user as it is.
    if !lots.is_empty() {
        let files = lots
            .iter()
            .map(|p| LotFile::read(p))
            .collect::<Result<Vec<_>, _>>()?;
        let planned = ps.plan(&files)?;
        println!("{} file(s) to send", planned.len());
        summary.sent = ps.send_planned(transport.as_ref(), planned, &mut show)?;
    }

    // 3. Returns (ART, ARL, NOEMIE, dLOI): stored before deletion on the server, then reconciled
    //    with what was sent; `svoct ps returns` / `status_now` show the states.
    if ps.config().network.mailbox.is_some() {
        let report = ps.fetch()?;
        summary.fetched = report.stored;
        summary.quarantined = report.quarantined.len();
        println!(
            "{} return(s) picked up, {} set aside",
            report.stored,
            report.quarantined.len()
        );
    }

    // 4. What needs a human: the worklists of `svoct ps status`.
    let status = svoct_ps::status::status_now(&ps)?;
    summary.to_correct = status.lots_to_resend.len() + status.invoices_to_correct.len();
    println!(
        "to correct: {} lot(s) refused, {} invoice(s) rejected; waiting: {} lot(s) without ARL",
        status.lots_to_resend.len(),
        status.invoices_to_correct.len(),
        status.lots_without_arl.len()
    );
    Ok(summary)
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args_os().skip(1);
    let mut config = None;
    let mut lots = Vec::new();
    let mut out = None;
    while let Some(arg) = args.next() {
        if arg == "--out" {
            out = Some(PathBuf::from(args.next().ok_or("--out needs a directory")?));
        } else if config.is_none() {
            config = Some(PathBuf::from(arg));
        } else {
            lots.push(PathBuf::from(arg));
        }
    }
    let config = config.ok_or("usage: billing CONFIG LOTS... [--out DIR] (see docs/library.md)")?;
    run(&config, &lots, out.as_deref())?;
    Ok(())
}
