//! The demo's closing table: every lot with its ARL state and every invoice with its payment
//! state, as the PS's reconciliation (`svoct ps returns`, `svoct ps status`) sees them.

use std::io::Write;

use svoct_ps::Ps;
use svoct_ps::status::{ReturnsView, returns_view, status_now};

fn label<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}

fn euros(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02} EUR", cents.abs() / 100, cents.abs() % 100)
}

/// Writes the lots and invoices with their states, and the worklists.
pub fn final_state(
    ps: &Ps,
    out: &mut dyn Write,
) -> Result<ReturnsView, Box<dyn std::error::Error + Send + Sync>> {
    let view = returns_view(ps)?;
    let t = &view.totals;
    writeln!(
        out,
        "    lots ({}): {} positive ARL, {} negative ARL, {} awaiting ARL",
        t.lots, t.lots_positive, t.lots_negative, t.lots_awaiting_arl
    )?;
    writeln!(
        out,
        "      {:<4} {:<7} {:<4} {:>8}  {:<9} reason",
        "lot", "date", "kind", "invoices", "ARL"
    )?;
    for lot in &view.lots {
        writeln!(
            out,
            "      {:<4} {:<7} {:<4} {:>8}  {:<9} {}",
            lot.number,
            lot.date,
            lot.kind.map(|k| k.as_str()).unwrap_or("?"),
            lot.invoices,
            label(&lot.arl),
            lot.arl_reasons.join("; ")
        )?;
    }
    writeln!(
        out,
        "    invoices ({}): {} paid, {} rejected, {} deferred, {} partly paid, {} awaiting a payment return; {} paid",
        t.invoices,
        t.invoices_paid,
        t.invoices_rejected,
        t.invoices_deferred,
        t.invoices_partial,
        t.invoices_awaiting,
        euros(t.paid_cents)
    )?;
    writeln!(
        out,
        "      (DRE invoices are paid by the AMC outside SESAM-Vitale, and a refused lot gets no payment \
         return: they stay awaiting)"
    )?;
    let status = status_now(ps)?;
    // What `svoct ps status` opens with: what needs a human now, most urgent first.
    writeln!(
        out,
        "    needs a human now (svoct ps status): {}",
        status.needs_attention.len()
    )?;
    for a in status.needs_attention.iter().take(4) {
        writeln!(out, "      {}: {} ({})", label(&a.kind), a.what, a.reason)?;
    }
    writeln!(
        out,
        "    worklists (svoct ps status): {} lot(s) to resend, {} invoice(s) to correct, {} return(s) matching nothing",
        status.lots_to_resend.len(),
        status.invoices_to_correct.len(),
        status.unmatched.len()
    )?;
    for inv in status.invoices_to_correct.iter().take(8) {
        writeln!(
            out,
            "      invoice {:>9} (lot {}): {:<8} {}",
            svoct_formats::PaddedNumber::new(&inv.number),
            inv.lot_number.as_deref().unwrap_or("?"),
            label(&inv.state),
            inv.reasons.join("; ")
        )?;
    }
    if status.invoices_to_correct.len() > 8 {
        writeln!(
            out,
            "      ... and {} more (svoct ps status)",
            status.invoices_to_correct.len() - 8
        )?;
    }
    for lot in &status.lots_to_resend {
        writeln!(
            out,
            "      lot {} of {}: resend ({})",
            lot.number,
            lot.date,
            lot.arl_reasons.join("; ")
        )?;
    }
    // The PS is shown every ART's text (R4.5); the demo prints the start of the first one.
    writeln!(out, "    OCT receipts (ART): {}", view.arts.len())?;
    if let Some(first) = view.arts.first() {
        for line in first.text.lines().filter(|l| !l.trim().is_empty()).take(6) {
            writeln!(out, "      {line}")?;
        }
    }
    Ok(view)
}
