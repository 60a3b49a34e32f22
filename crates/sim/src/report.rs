//! The demo's closing table: every lot with its ARL and every invoice with its payment state,
//! read from the returns the PS fetched.

use std::io::Write;

use svoct_formats::arl::{Arl, ArlStatus};
use svoct_formats::noemie::InvoiceState;
use svoct_mail::profile::{self, ParseLimits, Profile};
use svoct_ps::Ps;
use svoct_store::InboxState;

/// Writes the lots and invoices the returns speak of.
pub fn final_state(ps: &Ps, out: &mut dyn Write) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let limits = ParseLimits::default();
    let mut arls = Vec::new();
    let mut invoices = Vec::new();
    let mut arts = Vec::new();
    for state in [InboxState::New, InboxState::Processed] {
        for msg in ps.inbox(state)? {
            let Ok(parsed) = profile::parse_message(&msg.raw, &limits) else {
                continue;
            };
            let Ok(opened) = parsed.open(None, &limits) else {
                continue;
            };
            match parsed.description.profile {
                Profile::Arl => {
                    if let Ok(arl) = Arl::parse(&opened.bytes) {
                        arls.push(arl);
                    }
                }
                Profile::Rsp => {
                    if let Ok(report) = svoct_formats::noemie::report(&opened.bytes) {
                        invoices.extend(report.invoices);
                    }
                }
                Profile::Art(_) => arts.push((parsed.subject.to_string(), opened.bytes)),
                _ => {}
            }
        }
    }
    arls.sort_by_key(|a| (a.lot_date.yymmdd(), a.lot_number));
    writeln!(out, "    lots ({}):", arls.len())?;
    writeln!(
        out,
        "      {:<4} {:<8} {:<4} {:>8}  {:<9} reason",
        "lot", "date", "kind", "invoices", "ARL"
    )?;
    for a in &arls {
        let status = match a.status {
            ArlStatus::Positive => "positive",
            ArlStatus::Negative => "NEGATIVE",
        };
        let reason = a
            .reasons
            .first()
            .map(|r| format!("{} {}", r.code, r.label))
            .unwrap_or_default();
        writeln!(
            out,
            "      {:03}  {:<8} {:<4} {:>8}  {:<9} {}",
            a.lot_number,
            a.lot_date.yymmdd(),
            a.lot_kind,
            a.invoice_count.map(|c| c.to_string()).unwrap_or_default(),
            status,
            reason
        )?;
    }
    let count = |s: InvoiceState| invoices.iter().filter(|i| i.state == s).count();
    let paid: i64 = invoices.iter().map(|i| i.paid_cents).sum();
    writeln!(
        out,
        "    invoices with a payment return: {} ({} paid, {} rejected, {} deferred), {}.{:02} EUR paid",
        invoices.len(),
        count(InvoiceState::Paid),
        count(InvoiceState::Rejected),
        count(InvoiceState::Deferred),
        paid / 100,
        paid % 100
    )?;
    for inv in invoices.iter().filter(|i| i.state != InvoiceState::Paid) {
        let why = inv
            .rejects
            .first()
            .map(|r| format!("{} {}", r.code, r.label))
            .unwrap_or_default();
        writeln!(
            out,
            "      invoice {:>9} (lot {}): {:<8} {}",
            inv.invoice_number.trim_start_matches('0'),
            inv.lot_number,
            format!("{:?}", inv.state).to_lowercase(),
            why
        )?;
    }
    writeln!(out, "    OCT receipts (ART): {}", arts.len())?;
    for (subject, text) in arts.iter().take(2) {
        writeln!(out, "      {subject}:")?;
        for line in String::from_utf8_lossy(text).lines().take(6) {
            writeln!(out, "        | {line}")?;
        }
    }
    Ok(())
}
