//! How a billing software drives the PS module from Rust: configuration, sending, journal,
//! retrieval. Runs on its own (`cargo run -p svoct-ps --example billing`): it sends to a
//! directory of `.eml` files instead of an SMTP server and reads returns from a Maildir; swap in
//! `ps.smtp_transport()?` and a `[network.mailbox]` POP3 account for production.

use std::error::Error;

use svoct_formats::b2::synth::{SynthParams, generate_bytes};
use svoct_mail::selfsigned::SelfSigned;
use svoct_mail::smtp::DirTransport;
use svoct_ps::config::{Config, ConfigFile, Mode, OctChanges, SendOption};
use svoct_ps::{LotFile, Ps, Sent};
use svoct_store::{InboxState, Status};

fn main() -> Result<(), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;

    // 1. Configuration: start from the example file, then switch to an OCT (R1, R2). The edits
    //    touch only `mode` and `[oct]`; the direct-mode settings stay byte for byte.
    let path = dir.path().join("svoct-ps.toml");
    std::fs::write(
        &path,
        svoct_ps::config::EXAMPLE.replace("# maildir = \"/var/mail/ps\"", "maildir = \"Maildir\""),
    )?;
    // A throw-away certificate stands for the OCT's (a real one comes from the OCT operator).
    let oct_cert = dir.path().join("oct.crt");
    std::fs::write(&oct_cert, SelfSigned::generate("oct")?.cert_pem()?)?;
    let mut file = ConfigFile::open(&path)?;
    file.set_oct(&OctChanges {
        address: Some("oct@oct.invalid".into()),
        certificate: Some(oct_cert),
        identifier: Some("12345678900014".into()),
        option: Some(SendOption::Single),
        compress: Some(true),
        ..Default::default()
    });
    file.set_mode(Mode::Oct);
    file.save()?;

    // 2. Open the module: the configuration and its SQLite store (journal, inbox).
    let ps = Ps::open(Config::load(&path)?)?;

    // 3. Lots as the SESAM-Vitale API built and sealed them (here: synthetic ones).
    let lots = LotFile {
        name: "lots-of-the-day.b2".into(),
        bytes: generate_bytes(&SynthParams {
            invoices: 25,
            ..SynthParams::default()
        })?,
    };

    // 4. Plan (checks one sender, R3.3/R3.4, builds the files), then send. Every message is
    //    journaled before it leaves; the callback is the place for a progress bar.
    let planned = ps.plan(&[lots])?;
    println!("{} file(s) to send", planned.len());
    let transport = DirTransport::new(dir.path().join("outbox"))?;
    let sent = ps.send_planned(&transport, planned, &mut |s: &Sent| {
        println!("  {} {} -> {}", s.status.as_str(), s.subject, s.to);
    })?;
    if sent.iter().any(|s| s.status == Status::Deferred) {
        // Transient failure (server down, 4xx): later, `ps.retry(&transport, ...)` sends them
        // again with a new compostage.
        ps.retry(&transport, &mut |_| {})?;
    }

    // 5. The journal (R5.6): find a message by its subject.
    for e in ps.journal(Some("SV140700/*"))? {
        println!(
            "journal #{}: {} {} ({} invoices)",
            e.id.0,
            e.status.as_str(),
            e.subject,
            e.invoices.len()
        );
    }
    // A file the caisse asks for again: same bytes, new compostage (R5.3).
    let again = ps.resend(&transport, sent[0].entry, false)?;
    println!("resent as {}", again.subject);

    // 6. Returns: fetch stores each message before deleting it on the server, classifies it
    //    (ART, ARL, RSP, dLOI), opens it, and hands it to `svoct_ps::returns::handle`.
    svoct_mail::maildir::Maildir::create(dir.path().join("Maildir"), 1 << 20)?;
    let report = ps.fetch()?;
    println!(
        "fetched {} message(s), {} quarantined",
        report.stored,
        report.quarantined.len()
    );
    for m in ps.inbox(InboxState::New)? {
        println!("inbox #{}: {:?}", m.id.0, m.classification);
    }
    Ok(())
}
