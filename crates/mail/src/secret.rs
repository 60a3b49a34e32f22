//! [`Secret`]: the one redacting wrapper for passwords and key material in the whole project.
//!
//! Why one type: the PS configuration, the OCT configuration, the POP3/SMTP credentials and the
//! CMS private key all hold values that must never reach a log line, a `Debug` dump, an error
//! message or a JSON status. One wrapper means one place to audit (docs/security.md).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroize;

/// What a [`Secret`] does with its content when it is dropped.
///
/// Strings and byte buffers are overwritten (`zeroize`); an OpenSSL private key is freed by
/// OpenSSL, which clears the key material itself (`BN_clear_free`).
pub trait Wipe {
    /// Overwrites the value's memory before it is released.
    fn wipe(&mut self);
}

impl Wipe for String {
    fn wipe(&mut self) {
        self.zeroize();
    }
}

impl Wipe for Vec<u8> {
    fn wipe(&mut self) {
        self.zeroize();
    }
}

impl Wipe for openssl::pkey::PKey<openssl::pkey::Private> {
    fn wipe(&mut self) {}
}

/// A value that must never be printed: `Debug`, `Display` and serialisation show `[redacted]`;
/// deserialisation reads the plain value (a password in a TOML file); the memory is wiped on drop.
/// [`Secret::expose`] is the one, greppable, way to read it.
pub struct Secret<T: Wipe = String>(T);

impl<T: Wipe> Secret<T> {
    /// Wraps a secret.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret itself, for the code that really needs it (an authentication exchange, a
    /// decryption).
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T: Wipe> Drop for Secret<T> {
    fn drop(&mut self) {
        self.0.wipe();
    }
}

impl<T: Wipe> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T: Wipe> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T: Wipe + Clone> Clone for Secret<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T: Wipe + Default> Default for Secret<T> {
    fn default() -> Self {
        Self(T::default())
    }
}

impl<T: Wipe + PartialEq> PartialEq for Secret<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<T: Wipe + Eq> Eq for Secret<T> {}

impl<T: Wipe> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

impl<'de, T: Wipe + Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    struct Conf {
        user: String,
        password: Secret,
    }

    #[test]
    fn never_printed_nor_serialised() {
        let c: Conf = serde_json::from_str(r#"{"user":"ps1","password":"hunter2"}"#).unwrap();
        assert_eq!(c.password.expose(), "hunter2");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("[redacted]"), "{dbg}");
        assert_eq!(c.password.to_string(), "[redacted]");
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, r#"{"user":"ps1","password":"[redacted]"}"#);
    }

    #[test]
    fn bytes_and_equality() {
        let a = Secret::new(b"key".to_vec());
        let b = a.clone();
        assert_eq!(a, b);
        assert_eq!(b.expose().as_slice(), b"key");
        assert_eq!(format!("{a:?}"), "[redacted]");
        assert_ne!(Secret::new("x".to_owned()), Secret::default());
    }

    #[test]
    fn wipe_clears_a_string() {
        let mut s = String::from("hunter2");
        s.wipe();
        assert!(s.is_empty());
    }
}
