//! Selective retrieval (annex R6.2, issue 11 point 10): which messages of the mailbox are
//! returns for this PS, decided from the header block alone ([`svoct_mail::pop3::Mailbox::headers`]:
//! POP3 `TOP n 0`, a Maildir file's head). Everything else (a patient's e-mail, the ISP's
//! invoice, another PS's returns in a shared mailbox) is left on the server as it was.
//!
//! The rule (`docs/returns.md`, "Selective retrieval"):
//! - a message *claims to be a return* when its subject's first field is a return keyword
//!   (`ART`, `ARL`, `RSP`, `LOI`) or its `Content-Description` is a return profile (`ART/..`,
//!   `ARL..`, `RSP..`, `LOI/INCREMENT..`);
//! - a claiming message whose subject reads as a return subject is taken only when the subject's
//!   PS number is this PS's (`identity.ps_number` or `identity.sender_number`, leading zeros
//!   ignored);
//! - a claiming message whose subject does not read is taken: it may be ours, and what cannot be
//!   read is stored and quarantined with its reason, never ignored.

use std::str::FromStr;

use svoct_mail::subject::{PartyNumber, Subject};

use crate::config::Config;

/// Subject keywords of the messages an OCT sends to a PS.
const RETURN_KEYWORDS: [&str; 4] = ["ART", "ARL", "RSP", "LOI"];

/// The numbers that name this PS in a return subject.
#[derive(Clone, Debug)]
pub struct ReturnFilter {
    numbers: Vec<PartyNumber>,
}

/// Why a message is taken or left, for the log and the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A return subject naming this PS.
    Ours,
    /// Claims to be a return but its subject does not read: taken, to be quarantined.
    Unreadable,
    /// Not a return.
    NotAReturn,
    /// A return for another PS.
    OtherPs,
}

impl Verdict {
    pub fn take(self) -> bool {
        matches!(self, Verdict::Ours | Verdict::Unreadable)
    }
}

impl ReturnFilter {
    pub fn for_config(config: &Config) -> ReturnFilter {
        let id = &config.identity;
        ReturnFilter {
            numbers: std::iter::once(id.ps_number.as_str())
                .chain(id.sender_number.as_deref())
                .filter_map(|n| PartyNumber::new(n).ok())
                .collect(),
        }
    }

    /// The verdict on a message from its header block (CRLF or LF line ends).
    pub fn verdict(&self, head: &[u8]) -> Verdict {
        let subject = header(head, "Subject").unwrap_or_default();
        let description = header(head, "Content-Description").unwrap_or_default();
        let keyword = subject.split('/').next().unwrap_or("").trim();
        let claims = RETURN_KEYWORDS.iter().any(|k| keyword.eq_ignore_ascii_case(k))
            || is_return_profile(&description);
        if !claims {
            return Verdict::NotAReturn;
        }
        match Subject::from_str(subject.trim()) {
            Ok(Subject::Return(r)) if self.numbers.iter().any(|n| n.same_as(&r.ps_number)) => Verdict::Ours,
            Ok(Subject::Return(_)) => Verdict::OtherPs,
            // An invoice or dLOI-request subject is sent by a PS, never to one.
            Ok(_) if !is_return_profile(&description) => Verdict::NotAReturn,
            _ => Verdict::Unreadable,
        }
    }
}

fn is_return_profile(description: &str) -> bool {
    let d = description.trim().to_ascii_uppercase();
    let first = d.split('/').next().unwrap_or("");
    matches!(first, "ART" | "ARL" | "RSP") || d.starts_with("LOI/INCREMENT")
}

/// The first `name:` header of a header block, unfolded (RFC 5322 2.2.3), trimmed; `None`
/// when absent. Stops at the blank line ending the block.
pub fn header(head: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(head);
    let mut found: Option<String> = None;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let folded = line.starts_with(' ') || line.starts_with('\t');
        match (&mut found, folded) {
            (Some(v), true) => v.push_str(line),
            (Some(_), false) => break,
            (None, false) => {
                if let Some((n, v)) = line.split_once(':')
                    && n.trim_end().eq_ignore_ascii_case(name)
                {
                    found = Some(v.to_owned());
                }
            }
            (None, true) => {}
        }
    }
    found.map(|v| v.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter() -> ReturnFilter {
        ReturnFilter {
            numbers: vec![PartyNumber::new("123456789").unwrap()],
        }
    }

    fn verdict(head: &str) -> Verdict {
        filter().verdict(head.as_bytes())
    }

    #[test]
    fn returns_for_this_ps_are_taken_the_rest_left() {
        let ours = "From: oct@oct.invalid\r\nSubject: RSP/123456789/202611260930\r\n\
                    Content-Description: RSP/K\r\n\r\n";
        assert_eq!(verdict(ours), Verdict::Ours);
        // Zero-padded to 14 (the file's sender number) is the same PS.
        assert_eq!(
            verdict("Subject: ART/00000123456789/202611260930\r\n\r\n"),
            Verdict::Ours
        );
        assert_eq!(
            verdict("Subject: ARL/987654321/202611260930\r\nContent-Description: ARL\r\n\r\n"),
            Verdict::OtherPs
        );
        assert_eq!(
            verdict("Subject: Rendez-vous mardi 10h\r\nFrom: patient@example.org\r\n\r\n"),
            Verdict::NotAReturn
        );
        assert_eq!(
            verdict("Subject: Votre facture\r\nContent-Type: application/pdf\r\n\r\n"),
            Verdict::NotAReturn
        );
        // Claims to be a return (profile) with a subject that does not read: taken.
        assert_eq!(
            verdict("Subject: RSP du jour\r\nContent-Description: RSP/K\r\n\r\n"),
            Verdict::Unreadable
        );
        assert_eq!(verdict("Subject: ART/garbage\r\n\r\n"), Verdict::Unreadable);
        // An invoice subject is sent by a PS.
        assert_eq!(
            verdict("Subject: SV140700/123456789/2026112609050000042/00012\r\n\r\n"),
            Verdict::NotAReturn
        );
    }

    #[test]
    fn headers_are_unfolded_case_insensitive_and_end_at_the_blank_line() {
        let head = b"X-A: 1\r\nsubject: RSP/123456789/\r\n 202611260930\r\nX-B: 2\r\n\r\nSubject: no\r\n";
        assert_eq!(
            header(head, "Subject").as_deref(),
            Some("RSP/123456789/ 202611260930")
        );
        assert_eq!(header(b"A: 1\n\nSubject: body\n", "Subject"), None);
        assert_eq!(header(b"\xff\xfe: x\r\n", "Subject"), None);
    }
}
