//! `svoct ps returns`: every sent lot and invoice with its state, what a support team reads.

use std::path::Path;
use std::process::ExitCode;

use svoct_ps::Ps;
use svoct_ps::config::Config;

use super::output::table;
use super::status::{date_of, euros, kind, notices_table, payment_lines_table, print_arts, unmatched_table};
use crate::CmdResult;

#[derive(clap::Args)]
pub struct ReturnsArgs {
    /// JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// Only lots and invoices in this state (repeatable): awaiting, positive, negative (ARL);
    /// paid, rejected, deferred, partial, not_processed (payment).
    #[arg(long = "state", value_name = "STATE")]
    states: Vec<String>,
    /// Only what was sent on or after this day (YYYY-MM-DD, UTC).
    #[arg(long, value_parser = parse_day)]
    since: Option<time::Date>,
    /// Only what was sent on or before this day (YYYY-MM-DD, UTC).
    #[arg(long, value_parser = parse_day)]
    until: Option<time::Date>,
    /// Only this lot number.
    #[arg(long)]
    lot: Option<String>,
    /// Only this invoice number (and its lot).
    #[arg(long)]
    invoice: Option<String>,
    /// Skip this many rows of each list.
    #[arg(long, default_value_t = 0)]
    offset: usize,
    /// At most this many rows of each list (0: all). Default: 200 in tables, all in JSON.
    #[arg(long)]
    limit: Option<usize>,
}

/// Rows of each list shown in tables when `--limit` is not given.
const DEFAULT_TABLE_LIMIT: usize = 200;

fn parse_day(s: &str) -> Result<time::Date, String> {
    let bad = || format!("{s:?} is not a day as YYYY-MM-DD");
    let mut parts = s.splitn(3, '-');
    let mut next = || parts.next().ok_or_else(bad);
    let (y, m, d) = (next()?, next()?, next()?);
    let year: i32 = y.parse().map_err(|_| bad())?;
    let month: u8 = m.parse().map_err(|_| bad())?;
    let day: u8 = d.parse().map_err(|_| bad())?;
    let month = time::Month::try_from(month).map_err(|_| bad())?;
    time::Date::from_calendar_date(year, month, day).map_err(|_| bad())
}

pub fn returns(path: &Path, args: ReturnsArgs) -> CmdResult {
    let ps = Ps::open(Config::load(path)?)?;
    let limit = match args.limit {
        Some(0) => None,
        Some(n) => Some(n),
        None if args.json => None,
        None => Some(DEFAULT_TABLE_LIMIT),
    };
    let filter = svoct_ps::status::ReturnsFilter {
        states: args.states,
        since: args.since,
        until: args.until,
        lot: args.lot,
        invoice: args.invoice,
        offset: args.offset,
        limit,
    };
    filter.check()?;
    let mut v = svoct_ps::status::returns_view(&ps)?;
    filter.apply(&mut v);
    if args.json {
        crate::json::print(&v)?;
        return Ok(ExitCode::SUCCESS);
    }
    print_lots(&v, &filter);
    print_invoices(&v, &filter);
    if !v.unmatched.is_empty() {
        println!("\n{} return item(s) for nothing sent (kept):", v.unmatched.len());
        print!("{}", unmatched_table(&v.unmatched));
    }
    print_outside_invoices(&v);
    Ok(ExitCode::SUCCESS)
}

/// The lots with their ARL state, after a line of totals.
fn print_lots(v: &svoct_ps::status::ReturnsView, filter: &svoct_ps::status::ReturnsFilter) {
    let t = &v.totals;
    println!(
        "{} lot(s): {} awaiting ARL, {} positive, {} negative",
        t.lots, t.lots_awaiting_arl, t.lots_positive, t.lots_negative
    );
    println!("{}", shown("lot", v.lots.len(), v.page.lots_matching, filter));
    let rows: Vec<Vec<String>> = v
        .lots
        .iter()
        .map(|l| {
            vec![
                l.number.clone(),
                l.date.clone(),
                kind(l.kind),
                l.invoices.to_string(),
                date_of(l.sent_ms),
                format!(
                    "{}{}",
                    l.arl.as_str(),
                    if l.superseded { " (sent again)" } else { "" }
                ),
                l.arl_issued.clone().unwrap_or_default(),
                l.arl_reasons.join("; "),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "lot",
                "date",
                "kind",
                "invoices",
                "sent",
                "ARL",
                "ARL issued",
                "reasons"
            ],
            &rows
        )
    );
}

/// The invoices with their payment state, after a line of totals.
fn print_invoices(v: &svoct_ps::status::ReturnsView, filter: &svoct_ps::status::ReturnsFilter) {
    let t = &v.totals;
    println!(
        "\n{} invoice(s): {} awaiting, {} paid, {} rejected, {} deferred, {} partial, {} not processed; paid {} EUR",
        t.invoices,
        t.invoices_awaiting,
        t.invoices_paid,
        t.invoices_rejected,
        t.invoices_deferred,
        t.invoices_partial,
        t.invoices_not_processed,
        euros(t.paid_cents)
    );
    println!(
        "{}",
        shown("invoice", v.invoices.len(), v.page.invoices_matching, filter)
    );
    let rows: Vec<Vec<String>> = v
        .invoices
        .iter()
        .map(|i| {
            vec![
                i.number.clone(),
                kind(i.kind),
                i.lot_number.clone().unwrap_or_default(),
                i.lot_date.clone().unwrap_or_default(),
                format!(
                    "{}{}",
                    i.state.as_str(),
                    if i.superseded { " (sent again)" } else { "" }
                ),
                euros(i.paid_cents),
                i.paid_date.clone().unwrap_or_default(),
                i.reasons.join("; "),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "invoice", "kind", "lot", "lot date", "state", "paid", "paid on", "reasons"
            ],
            &rows
        )
    );
}

/// `showing 1-200 of 20075 matching invoice(s); --offset 200 for the next page`.
fn shown(what: &str, count: usize, matching: usize, f: &svoct_ps::status::ReturnsFilter) -> String {
    if count == 0 {
        let past = if matching > 0 {
            format!(" (--offset {} is past the end)", f.offset)
        } else {
            String::new()
        };
        return format!("showing none of {matching} matching {what}(s){past}");
    }
    let last = f.offset + count;
    let mut line = format!("showing {}-{last} of {matching} matching {what}(s)", f.offset + 1);
    if last < matching {
        line.push_str(&format!("; --offset {last} for the next page, --limit 0 for all"));
    }
    line
}

/// What the returns said outside the lots and invoices: 576 payment lines, 900 notices, every
/// ART with its text, and the other notes.
fn print_outside_invoices(v: &svoct_ps::status::ReturnsView) {
    let t = &v.totals;
    if !v.payment_lines.is_empty() {
        println!(
            "\n{} payment(s) and {} deduction(s) outside invoices (576): {} EUR paid, {} EUR deducted; \
             in all (invoices included) {} EUR",
            t.flat_payments,
            t.deductions,
            euros(t.flat_paid_cents),
            euros(t.deducted_cents),
            euros(t.net_paid_cents)
        );
        print!("{}", payment_lines_table(&v.payment_lines));
    }
    if !v.insurer_notices.is_empty() {
        println!("\n{} insurer reject(s) and notice(s) (900):", t.insurer_notices);
        print!("{}", notices_table(&v.insurer_notices));
    }
    if !v.arts.is_empty() {
        println!("\nOCT receipts (ART): {}", v.arts.len());
        print_arts(&v.arts);
    }
    let other_notes: Vec<_> = v.notes.iter().filter(|n| n.kind != "ART").collect();
    if !other_notes.is_empty() {
        println!("\nNotes (NOEMIE findings, unreadable returns):");
        let rows: Vec<Vec<String>> = other_notes
            .iter()
            .map(|n| {
                vec![
                    n.inbox.0.to_string(),
                    n.kind.clone(),
                    n.compostage.clone().unwrap_or_default(),
                    n.summary.clone(),
                ]
            })
            .collect();
        print!("{}", table(&["inbox id", "kind", "compostage", "summary"], &rows));
    }
}
