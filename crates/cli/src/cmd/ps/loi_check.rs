//! `svoct ps loi check CARD`: is this card on the local opposition list (R7.1)?

use std::path::Path;
use std::process::ExitCode;

use svoct_ps::Ps;
use svoct_ps::config::Config;

use crate::CmdResult;

#[derive(clap::Args)]
pub struct CheckArgs {
    /// The card identifier (1 to 24 characters among 0-9 and A-Z).
    card: String,
    /// JSON instead of a sentence.
    #[arg(long)]
    json: bool,
}

/// Exit code 0: not opposed; 1: opposed (so scripts can branch on it).
pub fn check(path: &Path, args: CheckArgs) -> CmdResult {
    if !svoct_formats::loi::valid_card(&args.card) {
        return Err(format!(
            "card {:?}: expected 1 to 24 characters among 0-9 and A-Z",
            args.card
        )
        .into());
    }
    let ps = Ps::open(Config::load(path)?)?;
    let a = svoct_ps::status::loi_check(&ps, &args.card)?;
    if args.json {
        crate::json::print(&a)?;
    } else {
        let state = if a.opposed { "OPPOSED" } else { "not opposed" };
        println!(
            "card {}: {state} (list version {}, {} card(s){})",
            a.card,
            a.version,
            a.cards,
            if a.held.is_empty() {
                String::new()
            } else {
                format!(", {} increment(s) waiting for a missing one", a.held.len())
            }
        );
        if a.version == 0 {
            println!("warning: no dLOI increment received yet; `svoct ps loi request` asks for the list");
        }
    }
    Ok(if a.opposed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
