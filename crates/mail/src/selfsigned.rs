//! Throw-away keys and self-signed certificates: the demo's identities and the tests' (one
//! implementation for both, so `svoct demo` does not link the test kit).
//!
//! An RSA 2048 key and an X.509 v3 certificate, valid from yesterday for a year by default, or
//! over any window (the tests use it to check refusal of expired and not-yet-valid certificates).
//! Never for production: a real OCT or PS uses the certificates of its PKI.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, KeyUsage};
use openssl::x509::{X509, X509NameBuilder};

use crate::fsx;

/// A generated key with its self-signed certificate.
pub struct SelfSigned {
    pub key: PKey<Private>,
    pub cert: X509,
}

/// One day, in seconds.
pub const DAY: i64 = 86_400;

/// Seconds since the Unix epoch, now (0 if the clock is before 1970).
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl SelfSigned {
    /// A key and a certificate for `common_name`, valid from yesterday to a year from now.
    pub fn generate(common_name: &str) -> Result<Self, ErrorStack> {
        let now = now_unix();
        Self::with_validity(common_name, now - DAY, now + 365 * DAY)
    }

    /// A key and a self-signed certificate valid between two Unix times.
    pub fn with_validity(common_name: &str, not_before: i64, not_after: i64) -> Result<Self, ErrorStack> {
        let key = PKey::from_rsa(Rsa::generate(2048)?)?;
        let mut name = X509NameBuilder::new()?;
        // A common name is at most 64 characters (RFC 5280 ub-common-name).
        let common_name: String = common_name.chars().take(64).collect();
        name.append_entry_by_text("CN", &common_name)?;
        name.append_entry_by_text("O", "svoct throw-away")?;
        let name = name.build();
        let mut b = X509::builder()?;
        b.set_version(2)?;
        let mut serial = BigNum::new()?;
        serial.rand(64, MsbOption::MAYBE_ZERO, false)?;
        let serial = Asn1Integer::from_bn(&serial)?;
        b.set_serial_number(&serial)?;
        b.set_subject_name(&name)?;
        b.set_issuer_name(&name)?;
        b.set_pubkey(&key)?;
        let (not_before, not_after) = (Asn1Time::from_unix(not_before)?, Asn1Time::from_unix(not_after)?);
        b.set_not_before(&not_before)?;
        b.set_not_after(&not_after)?;
        b.append_extension(BasicConstraints::new().build()?)?;
        b.append_extension(
            KeyUsage::new()
                .digital_signature()
                .key_encipherment()
                .data_encipherment()
                .build()?,
        )?;
        b.sign(&key, MessageDigest::sha256())?;
        Ok(Self { key, cert: b.build() })
    }

    /// The private key, PKCS#8 PEM.
    pub fn key_pem(&self) -> Result<Vec<u8>, ErrorStack> {
        self.key.private_key_to_pem_pkcs8()
    }

    /// The certificate, PEM.
    pub fn cert_pem(&self) -> Result<Vec<u8>, ErrorStack> {
        self.cert.to_pem()
    }

    /// The certificate, DER.
    pub fn cert_der(&self) -> Result<Vec<u8>, ErrorStack> {
        self.cert.to_der()
    }

    /// Writes `<stem>.key` (a data file, `0600`) and `<stem>.crt` (PEM, public: default mode)
    /// into `dir`; returns both paths.
    pub fn write_pem(&self, dir: &Path, stem: &str) -> std::io::Result<(PathBuf, PathBuf)> {
        let key_path = dir.join(format!("{stem}.key"));
        let cert_path = dir.join(format!("{stem}.crt"));
        fsx::create_data_file(&key_path)?.write_all(&self.key_pem().map_err(std::io::Error::other)?)?;
        fs::write(&cert_path, self.cert_pem().map_err(std::io::Error::other)?)?;
        Ok((key_path, cert_path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn validity_window_and_subject_are_the_ones_asked() {
        let id = SelfSigned::with_validity("demo.example", 1_000_000_000, 1_000_086_400).unwrap();
        assert_eq!(
            id.cert.not_before(),
            &*Asn1Time::from_unix(1_000_000_000).unwrap()
        );
        assert_eq!(id.cert.not_after(), &*Asn1Time::from_unix(1_000_086_400).unwrap());
        let cn = id
            .cert
            .subject_name()
            .entries_by_nid(openssl::nid::Nid::COMMONNAME)
            .next()
            .unwrap();
        assert_eq!(cn.data().as_slice(), b"demo.example");
        // Self-signed: the certificate verifies under its own public key, which is the key's.
        assert!(id.cert.verify(&id.key).unwrap());
        assert!(id.cert.public_key().unwrap().public_eq(&id.key));
    }

    #[test]
    fn key_file_is_owner_only_and_both_files_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let id = SelfSigned::generate("demo.example").unwrap();
        let (key, cert) = id.write_pem(dir.path(), "demo").unwrap();
        assert_eq!(fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        let key_back = PKey::private_key_from_pem(&fs::read(&key).unwrap()).unwrap();
        assert!(key_back.public_eq(&id.key));
        let cert_back = X509::from_pem(&fs::read(&cert).unwrap()).unwrap();
        assert_eq!(cert_back.to_der().unwrap(), id.cert_der().unwrap());
    }
}
