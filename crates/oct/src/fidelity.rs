//! Annex rules the pipeline checks on an invoice file besides its own framing and routing
//! (issue 11, OCT side), kept apart from [`crate::pipeline`] so that each rule reads on its own:
//!
//! - a single file addressed to another OCT is refused (R3.2: its recipient number is the OCT
//!   identifier the PS agreed with *its* OCT) — [`other_oct`];
//! - contract type 99 and a DRE for the same invoice exclude each other (R3.4): within one file —
//!   [`exclusivity_in_file`] — and against what the OCT already forwarded for that PS, through the
//!   processed index — [`invoice_natures`] gives what a lot claims;
//! - what a message that cannot be parsed said about itself (its `Subject` and
//!   `Content-Description`, as received) so that the ART echoes it (R5.6: the PS must be able to
//!   trace the message) — [`raw_header`].
//!
//! Reasons are French, like the rest of the ART (`docs/formats/art.md`), without accents.

use std::collections::HashMap;

use svoct_formats::b2::{
    B2Input, Lot, LotKind, RecipientNumber,
    layouts::{F0_APPLICATION, F0_RECIPIENT_NUMBER, F0_RECIPIENT_TYPE},
};

use crate::pipeline::{Env, PipelineError};
use crate::receipt::paris_text;
use crate::state::{InvoiceClaim, InvoiceNature};

/// Why a single file is not for this OCT, or `None` when it is (or when it is not a single file
/// at all: a direct-mode file of R3.1 is addressed to its AM destination, which routing checks).
///
/// A file is a single file of R3.2 when its `000` says recipient type `OT` or application `TO`;
/// its recipient number (positions 28-41) must then designate `identifier`, digits compared as
/// numbers, an association number as text ([`RecipientNumber::designates`]).
pub fn other_oct(input: &B2Input<'_>, identifier: &str) -> Option<String> {
    let header = input.file_header()?;
    let recipient_type = F0_RECIPIENT_TYPE.str(header).unwrap_or("").trim();
    let application = F0_APPLICATION.str(header).unwrap_or("").trim();
    if recipient_type != "OT" && application != "TO" {
        return None;
    }
    let field = F0_RECIPIENT_NUMBER.str(header).unwrap_or("");
    let ours = match RecipientNumber::new(identifier) {
        Ok(n) => n.designates(field),
        // An identifier the B2 form cannot hold is compared as trimmed text.
        Err(_) => field.trim() == identifier.trim(),
    };
    if ours {
        return None;
    }
    let shown: String = field
        .trim()
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect();
    Some(format!(
        "fichier adresse a un autre OCT : son destinataire (enregistrement 000, positions 28-41) \
         est {shown:?}, l'identifiant de cet OCT est {identifier} ; rien n'est transmis, \
         envoyez ce fichier a l'OCT qu'il designe ou refaites-le avec l'identifiant de cet OCT"
    ))
}

/// The invoices of `lot` that R3.4 concerns, with their nature: every invoice of a DRE lot, and
/// the contract-99 invoices of an FSE lot (the ones the OCT splits for the AMC). Invoices whose
/// number is not digits are left out (validation refuses their lot).
pub fn invoice_natures(lot: &Lot<'_>) -> Vec<(u64, InvoiceNature)> {
    lot.invoices()
        .iter()
        .filter_map(|inv| match lot.kind() {
            LotKind::Dre => inv.number().map(|n| (n, InvoiceNature::Dre)),
            LotKind::Fse if inv.contract_type() == "99" => {
                inv.number().map(|n| (n, InvoiceNature::Contract99))
            }
            LotKind::Fse => None,
        })
        .collect()
}

/// Why `lot` cannot be forwarded under R3.4: one of its invoices was already forwarded for PS
/// `ps_number` with the other nature (a DRE for a contract-99 invoice, or the reverse). `None`
/// when no invoice of the lot is excluded.
pub fn excluded_by_forwarded(
    lot: &Lot<'_>,
    ps_number: &str,
    env: &mut dyn Env,
) -> Result<Option<String>, PipelineError> {
    for (number, nature) in invoice_natures(lot) {
        if let Some(seen) = env.forwarded_invoice(ps_number, number, nature.other())? {
            return Ok(Some(format!(
                "la facture {number} a deja ete transmise comme {} a {} {} : le contrat 99 interdit \
                 de creer une FSE et une DRE pour la meme facture (annexe OCT 4.4), la \
                 complementaire serait facturee deux fois ; lot non transmis",
                nature.other().label(),
                seen.destination,
                paris_text(seen.at)
            )));
        }
    }
    Ok(None)
}

/// What forwarding `lot` (hash `lot_hash`, to `destination`) records for R3.4.
pub fn invoice_claims(
    lot: &Lot<'_>,
    ps_number: &str,
    lot_hash: &str,
    destination: &str,
) -> Vec<InvoiceClaim> {
    invoice_natures(lot)
        .into_iter()
        .map(|(invoice_number, nature)| InvoiceClaim {
            ps_number: ps_number.to_owned(),
            invoice_number,
            nature,
            lot_hash: lot_hash.to_owned(),
            destination: destination.to_owned(),
        })
        .collect()
}

/// The first invoice number that one file carries both as a DRE and as a contract-99 FSE
/// (R3.4), as a French reason naming the number and both lots.
pub fn exclusivity_in_file(input: &B2Input<'_>) -> Option<String> {
    let mut seen: HashMap<u64, (InvoiceNature, String)> = HashMap::new();
    for lot in input.lots() {
        let label = lot
            .lot_number()
            .map(|n| format!("{n:03}"))
            .unwrap_or_else(|| "?".into());
        for (number, nature) in invoice_natures(lot) {
            match seen.get(&number) {
                Some((other, other_lot)) if *other != nature => {
                    return Some(format!(
                        "la facture {number} est a la fois une DRE et une FSE de type de contrat 99 \
                         (lots {other_lot} et {label}) : le contrat 99 interdit de creer une FSE et \
                         une DRE pour la meme facture (annexe OCT 4.4), la complementaire serait \
                         facturee deux fois ; rien n'est transmis"
                    ));
                }
                Some(_) => {}
                None => {
                    seen.insert(number, (nature, label.clone()));
                }
            }
        }
    }
    None
}

/// The value of header `name` in the header section of `raw` (before the first empty line),
/// unfolded, as received: what the ART echoes when the message could not be parsed. Bounded:
/// only the first 64 KiB are looked at and at most 998 characters are returned; bytes that are
/// not printable ASCII become `?`.
pub fn raw_header(raw: &[u8], name: &str) -> Option<String> {
    const LOOK: usize = 64 * 1024;
    const KEEP: usize = 998;
    let head = raw.get(..raw.len().min(LOOK)).unwrap_or(raw);
    let mut value: Option<String> = None;
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let folded = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        match (&mut value, folded) {
            (Some(v), true) => {
                v.push(' ');
                v.push_str(printable(line).trim_start());
            }
            (Some(_), false) => break,
            (None, false) => {
                let Some(colon) = line.iter().position(|&b| b == b':') else {
                    continue;
                };
                let (key, rest) = line.split_at(colon);
                if key.eq_ignore_ascii_case(name.as_bytes()) {
                    value = Some(printable(rest.get(1..).unwrap_or(&[])).trim().to_owned());
                }
            }
            (None, true) => {}
        }
    }
    value.map(|v| v.chars().take(KEEP).collect())
}

fn printable(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if (0x20..0x7f).contains(&b) || b == b'\t' {
                char::from(b)
            } else {
                '?'
            }
        })
        .collect()
}

/// The compostage of an invoice subject received as text (`SVvvvvvv/exercice/compostage/n`),
/// when its third field has the compostage's form (19 digits): echoed in the ART of a message
/// whose subject could not be parsed as a whole.
pub fn compostage_in(subject: &str) -> Option<String> {
    let third = subject.split('/').nth(2)?.trim();
    (third.len() == 19 && third.bytes().all(|b| b.is_ascii_digit())).then(|| third.to_owned())
}

/// The PS number of an invoice subject received as text (its second field, the *exercice*),
/// when it is all digits: for log lines, before the subject is parsed as a whole.
pub fn ps_number_in(subject: &str) -> Option<String> {
    let second = subject.split('/').nth(1)?.trim();
    (!second.is_empty() && second.len() <= 12 && second.bytes().all(|b| b.is_ascii_digit()))
        .then(|| second.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_header_unfolds_and_stops_at_the_body() {
        let raw = b"From: a@b\r\nSubject: SV140700/123/\r\n 2026/00001\r\nX: y\r\n\r\nSubject: body\r\n";
        assert_eq!(
            raw_header(raw, "subject").as_deref(),
            Some("SV140700/123/ 2026/00001")
        );
        assert_eq!(raw_header(raw, "X").as_deref(), Some("y"));
        assert_eq!(raw_header(raw, "Content-Description"), None);
        assert_eq!(
            raw_header(b"Subject: caf\xc3\xa9\n\n", "Subject").as_deref(),
            Some("caf??")
        );
        assert_eq!(raw_header(b"", "Subject"), None);
    }

    #[test]
    fn compostage_only_from_a_third_field_of_19_digits() {
        assert_eq!(
            compostage_in("SV14070/123/2026112610101000001/00003").as_deref(),
            Some("2026112610101000001")
        );
        assert_eq!(compostage_in("SV140700/123/20261126/00003"), None);
        assert_eq!(compostage_in("garbage"), None);
    }
}
