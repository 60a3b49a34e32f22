//! Payment-level lines of NOEMIE returns and insurer notices, for display and totals (annex
//! R4.3: the software processes *and displays* references 580, 576 and 900).
//!
//! Why a table of its own: a 576 statement pays or withholds money that belongs to no invoice
//! (a per-patient flat fee `261`/`262`, a deduction `250`), and a 900 carries rejects and
//! notices with no payment. Neither fits the invoice rows; both must be shown and the money must
//! count in the totals. The format choice is written down in `docs/formats/ps-returns-display.md`.
//!
//! Idempotence: every line has a content key (the NOEMIE file it comes from, its fields, and its
//! rank among identical lines of that file); recording the same message again, or the same file
//! relayed in another message, adds nothing, as the invoice states of [`crate::reconciliation`] are set
//! once. Two files with identical lines (two patients' flat fees on one day) stay two.

use rusqlite::params;
use serde::Serialize;

use crate::reconciliation::Returns;
use crate::{InboxId, StoreError, now_ms, sql};

/// What a line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    /// A one-off or flat-rate payment (`261` with its `262` details).
    FlatPayment,
    /// A deduction from a payment (`250`).
    Deduction,
    /// A reject or notice (`290`/`294`/`295`), from a 900 or attached to no invoice.
    Notice,
}

impl LineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LineKind::FlatPayment => "flat_payment",
            LineKind::Deduction => "deduction",
            LineKind::Notice => "notice",
        }
    }

    fn parse(s: &str) -> Option<LineKind> {
        Some(match s {
            "flat_payment" => LineKind::FlatPayment,
            "deduction" => LineKind::Deduction,
            "notice" => LineKind::Notice,
            _ => return None,
        })
    }
}

/// One line as the returns processing reads it from a NOEMIE report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PaymentLine {
    /// The NOEMIE reference of the file (`576`, `900`, `580`...).
    pub reference: String,
    /// Which NOEMIE file: its header's sender, file id and creation date
    /// (`CP/000000000123/RSP002/261126`), so the same file relayed twice is recognised.
    pub file: String,
    pub kind: LineKind,
    /// The payment's accounting date (`070`/`071`), `YYYY-MM-DD`.
    pub accounting_date: Option<String>,
    /// Payment code (`261`), debt nature / recovery nature (`250`), notice code (`290`).
    pub code: String,
    /// What it is for: the `262` labels, the debt reference, the notice label and comments.
    pub label: String,
    /// The period paid (`262`): `M 2026-11-01..2026-11-30`.
    pub period: Option<String>,
    /// The invoice a notice is about.
    pub invoice_number: Option<String>,
    pub lot_number: Option<String>,
    /// Signed effect on the payment, in cents: a flat payment is positive, a deduction as the
    /// file signs it (a withholding is written `N`: negative), a notice 0.
    pub amount_cents: i64,
    /// Everything else of the line (JSON of the NOEMIE view).
    pub detail: serde_json::Value,
}

/// A recorded line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PaymentLineRow {
    pub id: i64,
    pub inbox: InboxId,
    pub received_ms: i64,
    #[serde(flatten)]
    pub line: PaymentLine,
}

fn content_key(l: &PaymentLine) -> String {
    format!(
        "{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
        l.file,
        l.reference,
        l.kind.as_str(),
        l.accounting_date.as_deref().unwrap_or(""),
        l.code,
        l.label,
        l.period.as_deref().unwrap_or(""),
        l.invoice_number.as_deref().unwrap_or(""),
        l.lot_number.as_deref().unwrap_or(""),
        l.amount_cents
    )
}

impl Returns<'_> {
    /// Records the payment lines and notices of one return message; returns how many were new.
    /// One transaction; idempotent (see the module documentation).
    pub fn record_payment_lines(&self, inbox: InboxId, lines: &[PaymentLine]) -> Result<usize, StoreError> {
        let tx = self
            .store
            .conn
            .unchecked_transaction()
            .map_err(sql("begin payment lines"))?;
        let at = now_ms();
        let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        let mut added = 0;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO rec_payment_line (content_key, inbox, reference, kind, accounting_date,
                         code, label, period, invoice_number, lot_number, amount_cents, detail, received_ms, file)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                )
                .map_err(sql("prepare payment line insert"))?;
            for l in lines {
                let base = content_key(l);
                let rank = seen.entry(base.clone()).or_insert(0);
                *rank += 1;
                added += stmt
                    .execute(params![
                        format!("{base}#{rank}"),
                        inbox.0,
                        l.reference,
                        l.kind.as_str(),
                        l.accounting_date,
                        l.code,
                        l.label,
                        l.period,
                        l.invoice_number,
                        l.lot_number,
                        l.amount_cents,
                        l.detail.to_string(),
                        at,
                        l.file
                    ])
                    .map_err(sql("insert payment line"))?;
            }
        }
        tx.commit().map_err(sql("commit payment lines"))?;
        Ok(added)
    }

    /// Every recorded line of `kinds`, oldest first.
    pub fn payment_lines(&self, kinds: &[LineKind]) -> Result<Vec<PaymentLineRow>, StoreError> {
        let mut stmt = self
            .store
            .conn
            .prepare(
                "SELECT id, inbox, received_ms, kind, reference, file, accounting_date, code, label, period,
                        invoice_number, lot_number, amount_cents, detail
                 FROM rec_payment_line ORDER BY id",
            )
            .map_err(sql("prepare payment line query"))?;
        let rows = stmt
            .query_map([], |r| {
                let detail: String = r.get(13)?;
                let row = PaymentLineRow {
                    id: r.get(0)?,
                    inbox: InboxId(r.get(1)?),
                    received_ms: r.get(2)?,
                    line: PaymentLine {
                        reference: r.get(4)?,
                        file: r.get(5)?,
                        // Set from column 3 below, where a bad value can be reported.
                        kind: LineKind::Notice,
                        accounting_date: r.get(6)?,
                        code: r.get(7)?,
                        label: r.get(8)?,
                        period: r.get(9)?,
                        invoice_number: r.get(10)?,
                        lot_number: r.get(11)?,
                        amount_cents: r.get(12)?,
                        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
                    },
                };
                Ok((row, r.get::<_, String>(3)?))
            })
            .map_err(sql("query payment lines"))?;
        let mut out = Vec::new();
        for row in rows {
            let (mut row, kind) = row.map_err(sql("read payment line"))?;
            row.line.kind = LineKind::parse(&kind).ok_or_else(|| StoreError::Corrupt {
                table: "rec_payment_line",
                column: "kind",
                row: row.id,
                value: kind.clone(),
            })?;
            if kinds.contains(&row.line.kind) {
                out.push(row);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    fn line(kind: LineKind, code: &str, amount: i64) -> PaymentLine {
        PaymentLine {
            reference: "576".into(),
            file: "CP/000000000123/RSP002/261126".into(),
            kind,
            accounting_date: Some("2026-11-25".into()),
            code: code.into(),
            label: "FORFAIT STRUCTURE".into(),
            period: None,
            invoice_number: None,
            lot_number: None,
            amount_cents: amount,
            detail: serde_json::Value::Null,
        }
    }

    #[test]
    fn lines_are_recorded_once_and_listed_by_kind() {
        let s = Store::open_in_memory().unwrap();
        let r = s.returns();
        let lines = [
            line(LineKind::FlatPayment, "00042", 15000),
            // Two identical lines in one message are two lines.
            line(LineKind::FlatPayment, "00042", 15000),
            line(LineKind::Deduction, "IND/RPR", -2500),
            line(LineKind::Notice, "R123", 0),
        ];
        assert_eq!(r.record_payment_lines(InboxId(1), &lines).unwrap(), 4);
        // Again, and the same content relayed in another message: nothing new.
        assert_eq!(r.record_payment_lines(InboxId(1), &lines).unwrap(), 0);
        assert_eq!(r.record_payment_lines(InboxId(2), &lines).unwrap(), 0);
        // The same lines in another file are other lines.
        let other: Vec<PaymentLine> = lines
            .iter()
            .map(|l| PaymentLine {
                file: "CP/000000000123/RSP003/261126".into(),
                ..l.clone()
            })
            .collect();
        assert_eq!(r.record_payment_lines(InboxId(3), &other[..1]).unwrap(), 1);
        r.store
            .conn
            .execute("DELETE FROM rec_payment_line WHERE inbox = 3", [])
            .unwrap();
        let money = r
            .payment_lines(&[LineKind::FlatPayment, LineKind::Deduction])
            .unwrap();
        assert_eq!(
            money.iter().map(|l| l.line.amount_cents).collect::<Vec<_>>(),
            [15000, 15000, -2500]
        );
        assert!(money.iter().all(|l| l.inbox == InboxId(1)));
        let notices = r.payment_lines(&[LineKind::Notice]).unwrap();
        assert_eq!(notices.len(), 1);
        assert_eq!(notices[0].line.code, "R123");
    }
}
