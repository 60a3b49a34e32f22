//! What the OCT tells the PS about one received message: the content of the ART (R6.2).
//!
//! The pipeline fills a [`Receipt`] (what was received, and what became of every lot); this
//! module is the only place that turns it into the ART text file, so the text format (the
//! returns engineer's `svoct_formats::art`, provisional) can change without touching the
//! pipeline.

use serde::Serialize;

/// What became of one lot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum LotFate {
    /// Forwarded to an AMO destination.
    Forwarded {
        /// Mailbox it was sent to.
        to: String,
        /// Label of the route (organisation or régime + caisse).
        destination: String,
        /// Invoices marked as split by the OCT (R8.3), 0 when none.
        split_invoices: usize,
    },
    /// Refused: not forwarded.
    Refused { reason: String },
    /// Nothing was forwarded because the whole message was refused.
    NotForwarded { reason: String },
}

/// One lot line of the receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LotLine {
    /// *N° de lot* (3 digits) as read, empty when unreadable.
    pub number: String,
    /// *Date de création du lot* (AAMMJJ) as read.
    pub date: String,
    /// `FSE` or `DRE`.
    pub kind: String,
    /// Invoices in the lot.
    pub invoices: usize,
    #[serde(flatten)]
    pub fate: LotFate,
}

/// The complementary flow built for one AMC (R8.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AmcLine {
    /// AMC organisation number.
    pub organisation: String,
    /// Mailbox the complementary flow went to.
    pub to: String,
    /// Invoices in it.
    pub invoices: usize,
}

/// Everything the ART says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Receipt {
    /// The subject of the message received (the PS's key to find it, R5.6).
    pub subject: String,
    /// `FACTURE/SV/ZK`, ...
    pub profile: String,
    /// Sender number of the file, when read.
    pub sender_number: String,
    /// Invoices in the file, when read.
    pub invoices: usize,
    /// Accepted (everything processed) or refused (quarantined: nothing forwarded).
    pub accepted: bool,
    /// Why the message was refused, when it was.
    pub reason: Option<String>,
    pub lots: Vec<LotLine>,
    pub amc: Vec<AmcLine>,
}

impl Receipt {
    /// The ART text file. **Provisional** format (`docs/oct.md`): human-readable lines, then one
    /// machine-readable line per lot `LOT;<number>;<date>;<kind>;<invoices>;<status>;<detail>`
    /// and per AMC flow `AMC;<organisation>;<invoices>;<mailbox>`, CRLF line ends, ASCII only.
    pub fn render(&self) -> Vec<u8> {
        let mut out = String::new();
        let clean = |s: &str| -> String {
            s.chars()
                .map(|c| {
                    if c.is_ascii() && !c.is_ascii_control() && c != ';' {
                        c
                    } else {
                        ' '
                    }
                })
                .collect()
        };
        let mut line = |s: String| {
            out.push_str(&s);
            out.push_str("\r\n");
        };
        line("ACCUSE DE RECEPTION TECHNIQUE".into());
        line(format!("MESSAGE;{}", clean(&self.subject)));
        line(format!("PROFIL;{}", clean(&self.profile)));
        if !self.sender_number.is_empty() {
            line(format!("EMETTEUR;{}", clean(&self.sender_number)));
        }
        line(format!("FACTURES;{}", self.invoices));
        match (&self.accepted, &self.reason) {
            (true, _) => line("STATUT;ACCEPTE".into()),
            (false, Some(r)) => line(format!("STATUT;REFUSE;{}", clean(r))),
            (false, None) => line("STATUT;REFUSE".into()),
        }
        for l in &self.lots {
            let (status, detail) = match &l.fate {
                LotFate::Forwarded {
                    to,
                    destination,
                    split_invoices,
                } => (
                    "TRANSMIS",
                    if *split_invoices > 0 {
                        format!("{destination} {to} ({split_invoices} factures eclatees)")
                    } else {
                        format!("{destination} {to}")
                    },
                ),
                LotFate::Refused { reason } => ("REFUSE", reason.clone()),
                LotFate::NotForwarded { reason } => ("NON TRANSMIS", reason.clone()),
            };
            line(format!(
                "LOT;{};{};{};{};{};{}",
                clean(&l.number),
                clean(&l.date),
                clean(&l.kind),
                l.invoices,
                status,
                clean(&detail)
            ));
        }
        for a in &self.amc {
            line(format!(
                "AMC;{};{};{}",
                clean(&a.organisation),
                a.invoices,
                clean(&a.to)
            ));
        }
        out.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_lot_with_its_fate() {
        let r = Receipt {
            subject: "SV140700/123/20261126101010000001/00003".into(),
            profile: "FACTURE/SV/K".into(),
            sender_number: "123".into(),
            invoices: 3,
            accepted: true,
            reason: None,
            lots: vec![
                LotLine {
                    number: "001".into(),
                    date: "261126".into(),
                    kind: "FSE".into(),
                    invoices: 2,
                    fate: LotFate::Forwarded {
                        to: "cpam@am".into(),
                        destination: "organisation 011".into(),
                        split_invoices: 0,
                    },
                },
                LotLine {
                    number: "002".into(),
                    date: "261126".into(),
                    kind: "FSE".into(),
                    invoices: 1,
                    fate: LotFate::Refused {
                        reason: "totals; wrong\r\nline".into(),
                    },
                },
            ],
            amc: vec![],
        };
        let text = String::from_utf8(r.render()).expect("ascii");
        assert!(text.contains("STATUT;ACCEPTE\r\n"));
        assert!(text.contains("LOT;001;261126;FSE;2;TRANSMIS;organisation 011 cpam@am\r\n"));
        // Separators and line breaks inside a reason cannot break the line structure.
        assert!(
            text.contains("LOT;002;261126;FSE;1;REFUSE;totals  wrong  line\r\n"),
            "{text}"
        );
    }
}
