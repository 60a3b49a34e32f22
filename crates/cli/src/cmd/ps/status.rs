//! `svoct ps status`: the worklists (what to chase, what to redo, what was paid).

use std::path::Path;
use std::process::ExitCode;

use svoct_ps::Ps;
use svoct_ps::config::Config;
use svoct_ps::status::ArtView;
use svoct_store::reconciliation::{InvoiceRow, LotRow};
use svoct_store::statement::{LineKind, PaymentLineRow};

use super::output::table;
use crate::CmdResult;

#[derive(clap::Args)]
pub struct StatusArgs {
    /// JSON instead of tables.
    #[arg(long)]
    json: bool,
}

/// Euros from signed cents: `-12.05`.
pub fn euros(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}{}.{:02}", c / 100, c % 100)
}

pub fn date_of(ms: i64) -> String {
    svoct_ps::status::rfc3339_ms(ms)
}

pub fn kind(k: Option<svoct_store::InvoiceKind>) -> String {
    k.map(|k| k.as_str().to_owned()).unwrap_or_else(|| "?".into())
}

fn lot_rows(lots: &[LotRow]) -> Vec<Vec<String>> {
    lots.iter()
        .map(|l| {
            vec![
                l.number.clone(),
                l.date.clone(),
                kind(l.kind),
                l.invoices.to_string(),
                l.entry.0.to_string(),
                date_of(l.sent_ms),
                l.arl_reasons.join("; "),
            ]
        })
        .collect()
}

fn invoice_rows(invoices: &[InvoiceRow]) -> Vec<Vec<String>> {
    invoices
        .iter()
        .map(|i| {
            vec![
                i.number.clone(),
                kind(i.kind),
                i.lot_number.clone().unwrap_or_default(),
                i.lot_date.clone().unwrap_or_default(),
                i.state.as_str().to_owned(),
                i.reasons.join("; "),
            ]
        })
        .collect()
}

pub fn status(path: &Path, args: StatusArgs) -> CmdResult {
    let ps = Ps::open(Config::load(path)?)?;
    let s = svoct_ps::status::status_now(&ps)?;
    if args.json {
        crate::json::print(&s)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("Needs a human now: {}", s.needs_attention.len());
    if !s.needs_attention.is_empty() {
        print!("{}", attention_table(&s.needs_attention));
    }
    println!();
    let lot_header = ["lot", "date", "kind", "invoices", "entry", "sent", "reasons"];
    let inv_header = ["invoice", "kind", "lot", "lot date", "state", "reasons"];
    println!(
        "Lots without ARL after {} day(s): {}",
        s.arl_days,
        s.lots_without_arl.len()
    );
    if !s.lots_without_arl.is_empty() {
        print!("{}", table(&lot_header, &lot_rows(&s.lots_without_arl)));
    }
    println!(
        "\nInvoices without RSP {} day(s) after a positive ARL: {}",
        s.rsp_days,
        s.invoices_without_rsp.len()
    );
    if !s.invoices_without_rsp.is_empty() {
        print!("{}", table(&inv_header, &invoice_rows(&s.invoices_without_rsp)));
    }
    println!(
        "\nLots with a negative ARL, to resend: {}",
        s.lots_to_resend.len()
    );
    if !s.lots_to_resend.is_empty() {
        print!("{}", table(&lot_header, &lot_rows(&s.lots_to_resend)));
    }
    println!(
        "\nRejected invoices, to correct and resend: {}",
        s.invoices_to_correct.len()
    );
    if !s.invoices_to_correct.is_empty() {
        print!("{}", table(&inv_header, &invoice_rows(&s.invoices_to_correct)));
    }
    println!("\nReturns for nothing sent (kept): {}", s.unmatched.len());
    if !s.unmatched.is_empty() {
        print!("{}", unmatched_table(&s.unmatched));
    }
    println!("\nPaid per day (invoices, flat payments, deductions):");
    let rows: Vec<Vec<String>> = s
        .paid_per_day
        .iter()
        .map(|d| {
            vec![
                d.date.clone(),
                d.invoices.to_string(),
                euros(d.invoice_cents),
                euros(d.flat_cents),
                euros(d.deduction_cents),
                euros(d.paid_cents),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "date",
                "invoices",
                "invoices (EUR)",
                "flat (EUR)",
                "deductions (EUR)",
                "total (EUR)"
            ],
            &rows
        )
    );
    println!(
        "\nPayments and deductions outside invoices (576): {}",
        s.payment_lines.len()
    );
    if !s.payment_lines.is_empty() {
        print!("{}", payment_lines_table(&s.payment_lines));
    }
    println!("\nInsurer rejects and notices (900): {}", s.insurer_notices.len());
    if !s.insurer_notices.is_empty() {
        print!("{}", notices_table(&s.insurer_notices));
    }
    println!("\nOCT receipts (ART): {}", s.arts.len());
    print_arts(&s.arts);
    Ok(ExitCode::SUCCESS)
}

/// What needs a human now, most urgent first (`id` is the journal entry, or the inbox id of a
/// message set aside).
fn attention_table(items: &[svoct_ps::status::Attention]) -> String {
    use svoct_ps::status::AttentionKind as K;
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|a| {
            vec![
                match a.kind {
                    K::RefusedByOct => "REFUSED by the OCT",
                    K::NegativeArl => "negative ARL",
                    K::RejectedInvoice => "rejected invoice",
                    K::NotSent => "not sent",
                    K::SetAside => "set aside",
                }
                .to_owned(),
                a.entry.map(|e| e.to_string()).unwrap_or_default(),
                a.what.clone(),
                a.reason.clone(),
            ]
        })
        .collect();
    table(&["what happened", "id", "what", "reason"], &rows)
}

/// The 576 payments and deductions, as `svoct ps status` and `svoct ps returns` show them.
pub(super) fn payment_lines_table(lines: &[PaymentLineRow]) -> String {
    let rows: Vec<Vec<String>> = lines
        .iter()
        .map(|l| {
            let l = &l.line;
            vec![
                l.accounting_date.clone().unwrap_or_default(),
                match l.kind {
                    LineKind::FlatPayment => "payment".into(),
                    LineKind::Deduction => "deduction".into(),
                    LineKind::Notice => "notice".into(),
                },
                l.reference.clone(),
                l.code.clone(),
                euros(l.amount_cents),
                l.period.clone().unwrap_or_default(),
                l.label.clone(),
            ]
        })
        .collect();
    table(
        &[
            "paid on",
            "line",
            "ref",
            "code",
            "amount (EUR)",
            "period",
            "reason",
        ],
        &rows,
    )
}

/// The insurers' rejects and notices (900).
pub(super) fn notices_table(lines: &[PaymentLineRow]) -> String {
    let rows: Vec<Vec<String>> = lines
        .iter()
        .map(|l| {
            let l = &l.line;
            vec![
                l.reference.clone(),
                l.invoice_number.clone().unwrap_or_default(),
                l.lot_number.clone().unwrap_or_default(),
                l.code.clone(),
                l.label.clone(),
            ]
        })
        .collect();
    table(&["ref", "invoice", "lot", "code", "notice"], &rows)
}

/// Every ART with its text, indented under one line that says what it is.
pub(super) fn print_arts(arts: &[ArtView]) {
    for a in arts {
        println!(
            "--- ART (inbox {}, received {}{}): {}",
            a.inbox.0,
            date_of(a.received_ms),
            a.compostage
                .as_deref()
                .map(|c| format!(", compostage {c}"))
                .unwrap_or_default(),
            a.summary
        );
        for line in a.text.lines() {
            println!("    {line}");
        }
    }
}

/// The returns that name nothing sent, as `svoct ps status` and `svoct ps returns` show them.
pub(super) fn unmatched_table(unmatched: &[svoct_store::reconciliation::UnmatchedReturn]) -> String {
    let rows: Vec<Vec<String>> = unmatched
        .iter()
        .map(|u| {
            vec![
                u.kind.clone(),
                u.lot_number.clone(),
                u.lot_date.clone(),
                u.invoice_number.clone().unwrap_or_default(),
                u.inbox.0.to_string(),
            ]
        })
        .collect();
    table(&["return", "lot", "lot date", "invoice", "inbox id"], &rows)
}

#[cfg(test)]
mod tests {
    use super::euros;

    #[test]
    fn euros_from_cents() {
        assert_eq!(euros(0), "0.00");
        assert_eq!(euros(5600), "56.00");
        assert_eq!(euros(-1205), "-12.05");
        assert_eq!(euros(7), "0.07");
    }
}
