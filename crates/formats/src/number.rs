//! PS, sender and other identifying numbers as records and subjects write them.
//!
//! The same number travels zero-filled in one place (B2 `000` positions 6-19, return subjects),
//! space-filled or bare in another (the 9-digit PS number of a lot header, a configuration
//! file), so comparing the text would tell one practice from itself. [`PaddedNumber`] is the one
//! comparison every crate uses: blanks around the number and leading zeros do not count.

use std::fmt;

/// A number compared by its significant part: surrounding blanks and leading zeros removed.
///
/// `"00000123456789"`, `"123456789"` and `" 123456789 "` are the same number. The significant
/// part of a number written only with zeros (or blank) is empty, which is also what the OCT's
/// processed index stores as its key, so the key of a number never changes with its padding.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PaddedNumber(String);

impl PaddedNumber {
    /// The number written as `written` (any padding).
    pub fn new(written: &str) -> PaddedNumber {
        PaddedNumber(written.trim().trim_start_matches('0').to_owned())
    }

    /// The digits that count: no blanks, no leading zeros (empty for zero).
    pub fn significant(&self) -> &str {
        &self.0
    }

    /// Whether `written` is this number, whatever its padding.
    pub fn is(&self, written: &str) -> bool {
        self.0 == significant(written)
    }

    /// Whether `a` and `b` write the same number and `a` is not blank: what an authorisation
    /// check needs, where a missing number must never match a registered one.
    pub fn same_given(a: &str, b: &str) -> bool {
        !a.trim().is_empty() && significant(a) == significant(b)
    }
}

/// The significant part of `written`, borrowed: comparisons in loops allocate nothing.
fn significant(written: &str) -> &str {
    written.trim().trim_start_matches('0')
}

impl From<&str> for PaddedNumber {
    fn from(written: &str) -> PaddedNumber {
        PaddedNumber::new(written)
    }
}

/// The significant part; width and alignment are honoured (`{:>9}` lines numbers up).
impl fmt::Display for PaddedNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_zeros_and_blanks_do_not_count() {
        let n = PaddedNumber::new("123456789");
        assert_eq!(n, PaddedNumber::new("00000123456789"));
        assert_eq!(n, PaddedNumber::new(" 123456789  "));
        assert_eq!(n, PaddedNumber::new("  000123456789\t"));
        assert_eq!(n.significant(), "123456789");
        assert!(n.is("00000123456789"));
        assert!(n.is("123456789     "));
        assert_eq!(n.to_string(), "123456789");
        assert_eq!(format!("[{:>6}]", PaddedNumber::new("000042")), "[    42]");
    }

    #[test]
    fn different_numbers_differ() {
        let n = PaddedNumber::new("00000123456789");
        assert_ne!(n, PaddedNumber::new("123456788"));
        // Trailing zeros count: only leading ones are padding.
        assert_ne!(n, PaddedNumber::new("1234567890"));
        assert_ne!(n, PaddedNumber::new("0"));
        assert!(!n.is("12345678"));
        assert!(!n.is(""));
        // Inner blanks are not padding.
        assert_ne!(PaddedNumber::new("12 34"), PaddedNumber::new("1234"));
    }

    #[test]
    fn zero_and_blank_have_an_empty_key() {
        assert_eq!(PaddedNumber::new("0000").significant(), "");
        assert_eq!(PaddedNumber::new("   ").significant(), "");
        assert_eq!(PaddedNumber::new("0"), PaddedNumber::new(""));
    }

    #[test]
    fn a_blank_number_is_never_the_same_as_a_given_one() {
        assert!(PaddedNumber::same_given("000123", "123"));
        assert!(PaddedNumber::same_given("123 ", " 0123"));
        assert!(!PaddedNumber::same_given("", "000"));
        assert!(!PaddedNumber::same_given("  ", ""));
        assert!(!PaddedNumber::same_given("124", "123"));
        // Zero written with zeros is a number, not a blank.
        assert!(PaddedNumber::same_given("000", "0"));
    }
}
