//! The recipient number of a B2 file (`000` and `999` positions 28-41), **provisional**.
//!
//! Why a type of its own: the annex lets the OCT identifier of the single file be "a unique
//! identifier based on the SIREN, or an association number" (R3.2), and an association number
//! (`W751234567`, the RNA form) has a letter. The `000` field is text, but the `999` field is
//! digits. How a real peer writes a lettered identifier in the digits-only trailer is not public,
//! so the choice is made here, once, and written down in `docs/formats/b2.md`:
//!
//! - digits only (SIREN-based, or a direct-mode organisation number): zero-filled to 14 in both
//!   records, as before;
//! - with letters (association number): `000` carries it as text, left-aligned and space-filled
//!   (the field's `X` form); `999` carries its digits, in order, zero-filled to 14.
//!
//! Both records therefore always carry the same digits, which is what [`trailer_matches`] checks.

use std::fmt;

use super::B2Error;
use crate::number::PaddedNumber;

/// Width of the recipient number fields.
pub const RECIPIENT_WIDTH: usize = 14;

/// A checked recipient number: 1 to 14 digits or capital letters (at least one digit), no other
/// character.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RecipientNumber(String);

impl RecipientNumber {
    /// Checks `value` (surrounding spaces removed). Lower-case letters are refused rather than
    /// changed: B2 text is upper case, and silently rewriting an identifier agreed with an OCT
    /// would hide a typo.
    pub fn new(value: &str) -> Result<RecipientNumber, B2Error> {
        let v = value.trim_matches(' ');
        let bad = |reason: &'static str| B2Error::BadRecipient {
            value: v.chars().take(40).collect(),
            reason,
        };
        if v.is_empty() || v.len() > RECIPIENT_WIDTH {
            return Err(bad("must be 1 to 14 characters"));
        }
        if !v.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()) {
            return Err(bad(
                "must hold only digits (SIREN-based identifier) or digits and capital letters \
                 (association number, e.g. W751234567)",
            ));
        }
        if !v.bytes().any(|b| b.is_ascii_digit()) {
            return Err(bad("must hold at least one digit"));
        }
        Ok(RecipientNumber(v.to_owned()))
    }

    /// The number as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether it is digits only (a SIREN-based identifier, or an organisation number).
    pub fn is_digits(&self) -> bool {
        self.0.bytes().all(|b| b.is_ascii_digit())
    }

    /// The value for `000` positions 28-41 (text, 14 characters).
    pub fn header_text(&self) -> String {
        if self.is_digits() {
            format!("{:0>RECIPIENT_WIDTH$}", self.0)
        } else {
            format!("{:<RECIPIENT_WIDTH$}", self.0)
        }
    }

    /// The value for `999` positions 28-41 (digits, 14 characters).
    pub fn trailer_digits(&self) -> String {
        let digits: String = self.0.chars().filter(char::is_ascii_digit).collect();
        format!("{digits:0>RECIPIENT_WIDTH$}")
    }

    /// Whether a received `000` recipient field designates this number: digits compare as
    /// numbers (leading zeros ignored), lettered numbers compare as trimmed text.
    pub fn designates(&self, header_field: &str) -> bool {
        let h = header_field.trim_matches(' ');
        if self.is_digits() {
            h.bytes().all(|b| b.is_ascii_digit()) && PaddedNumber::new(&self.0).is(h)
        } else {
            h == self.0
        }
    }
}

impl fmt::Display for RecipientNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether the `999` recipient digits agree with the `000` recipient text under the mapping of
/// this module: the header's digits, leading zeros ignored, equal the trailer's.
pub fn trailer_matches(header_field: &str, trailer_field: &str) -> bool {
    let digits: String = header_field
        .trim_matches(' ')
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    PaddedNumber::new(&digits).is(trailer_field.trim_matches(' '))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siren_based_identifiers_are_zero_filled_in_both_records() {
        let r = RecipientNumber::new("12345678900017").unwrap();
        assert_eq!(r.header_text(), "12345678900017");
        assert_eq!(r.trailer_digits(), "12345678900017");
        let r = RecipientNumber::new("751").unwrap();
        assert_eq!(r.header_text(), "00000000000751");
        assert_eq!(r.trailer_digits(), "00000000000751");
        assert!(r.designates("00000000000751"));
        assert!(r.designates("751           "));
        assert!(!r.designates("00000000000752"));
    }

    #[test]
    fn association_numbers_are_text_in_the_header_and_digits_in_the_trailer() {
        let r = RecipientNumber::new("W751234567").unwrap();
        assert!(!r.is_digits());
        assert_eq!(r.header_text(), "W751234567    ");
        assert_eq!(r.trailer_digits(), "00000751234567");
        assert!(r.designates("W751234567    "));
        assert!(
            !r.designates("00000751234567"),
            "the letter is part of the number"
        );
        assert!(trailer_matches(&r.header_text(), &r.trailer_digits()));
        assert!(!trailer_matches(&r.header_text(), "00000751234568"));
    }

    #[test]
    fn refused_forms_say_why() {
        for bad in [
            "",
            "123456789012345",
            "w751234567",
            "SIREN-123",
            "ABCDEF",
            "12 34",
        ] {
            let e = RecipientNumber::new(bad).unwrap_err();
            assert!(
                matches!(&e, B2Error::BadRecipient { reason, .. } if !reason.is_empty()),
                "{bad:?}: {e:?}"
            );
            assert!(e.to_string().contains("recipient_number"), "{e}");
        }
    }
}
