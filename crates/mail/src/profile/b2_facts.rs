//! [`FileFacts`] of a parsed B2 input, so a message's subject can be checked against the file it
//! carries (invoice count and `exercice`, R5.5) without the caller reading B2 fields itself.

use svoct_formats::b2::B2Input;
use svoct_formats::b2::layouts::F0_SENDER_NUMBER;

use super::FileFacts;

/// The facts of one B2 input (a framed file or bare lots).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct B2Facts {
    /// Type 2 records of every lot; saturates at `u32::MAX` (a 1 GiB file holds far fewer).
    pub invoice_count: u32,
    /// The `000` sender number (positions 6-19) of a framed file, else the first lot's sender.
    pub sender_number: String,
}

impl B2Facts {
    /// Reads the facts from a parsed input. A file without lots and without a readable header
    /// has an empty sender number, which no subject matches.
    pub fn of(input: &B2Input<'_>) -> B2Facts {
        let from_header = input
            .file_header()
            .and_then(|h| F0_SENDER_NUMBER.raw(h))
            .map(|raw| String::from_utf8_lossy(raw).into_owned());
        let sender_number = from_header
            .or_else(|| input.lots().first().map(|l| l.sender().to_owned()))
            .unwrap_or_default();
        B2Facts {
            invoice_count: u32::try_from(input.invoice_count()).unwrap_or(u32::MAX),
            sender_number,
        }
    }
}

impl FileFacts for B2Facts {
    fn invoice_count(&self) -> u32 {
        self.invoice_count
    }
    fn sender_number(&self) -> &str {
        &self.sender_number
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use svoct_formats::b2::synth::{SynthParams, generate_bytes, generate_single_file};
    use svoct_formats::b2::{SingleFileParams, parse};

    fn params(invoices: usize) -> SynthParams {
        SynthParams {
            invoices,
            ps_number: "987654321".into(),
            ..SynthParams::default()
        }
    }

    #[test]
    fn facts_of_a_single_file_and_of_bare_lots() {
        let file = generate_single_file(
            &params(7),
            &SingleFileParams {
                sender_type: "TP".into(),
                oct_id: "12345678901234".into(),
                file_id: "F00001".into(),
                date: "261126".into(),
                message: String::new(),
            },
        )
        .unwrap();
        let facts = B2Facts::of(&parse(&file).unwrap());
        assert_eq!(facts.invoice_count(), 7);
        assert_eq!(facts.sender_number().trim_start_matches('0'), "987654321");

        let lots = generate_bytes(&params(3)).unwrap();
        let facts = B2Facts::of(&parse(&lots).unwrap());
        assert_eq!(facts.invoice_count(), 3);
        assert!(facts.sender_number().contains("987654321"));
    }

    #[test]
    fn subject_check_uses_the_facts() {
        let lots = generate_bytes(&params(3)).unwrap();
        let facts = B2Facts::of(&parse(&lots).unwrap());
        let ok: crate::subject::Subject = "SV140700/987654321/2026112607050900042/00003".parse().unwrap();
        assert!(super::super::check_subject_against(&ok, &facts).is_ok());
        let count: crate::subject::Subject = "SV140700/987654321/2026112607050900042/00004".parse().unwrap();
        assert!(super::super::check_subject_against(&count, &facts).is_err());
        let other: crate::subject::Subject = "SV140700/123456789/2026112607050900042/00003".parse().unwrap();
        assert!(super::super::check_subject_against(&other, &facts).is_err());
    }
}
