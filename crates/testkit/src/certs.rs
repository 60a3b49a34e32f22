//! Throw-away keys and self-signed certificates for tests (never committed: generated per run).
//!
//! The generation is `svoct_mail::selfsigned` (the demo uses it too: one implementation); this
//! wrapper only adds the test windows (expired, not yet valid) and panics on OpenSSL failure,
//! which is what test support should do.

use std::path::{Path, PathBuf};

use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use svoct_mail::selfsigned::{DAY, SelfSigned, now_unix};

/// A generated key with its certificate.
pub struct TestIdentity {
    pub key: PKey<Private>,
    pub cert: X509,
}

impl TestIdentity {
    /// A key and a certificate for `common_name`, valid from yesterday to a year from now.
    pub fn new(common_name: &str) -> Self {
        let now = now_unix();
        Self::with_validity(common_name, now - DAY, now + 365 * DAY)
    }

    /// A certificate that expired yesterday.
    pub fn expired(common_name: &str) -> Self {
        let now = now_unix();
        Self::with_validity(common_name, now - 30 * DAY, now - DAY)
    }

    /// A certificate that becomes valid tomorrow.
    pub fn not_yet_valid(common_name: &str) -> Self {
        let now = now_unix();
        Self::with_validity(common_name, now + DAY, now + 30 * DAY)
    }

    /// A key and a self-signed certificate valid between two Unix times.
    pub fn with_validity(common_name: &str, not_before: i64, not_after: i64) -> Self {
        let SelfSigned { key, cert } =
            SelfSigned::with_validity(common_name, not_before, not_after).expect("self-signed identity");
        Self { key, cert }
    }

    fn as_self_signed(&self) -> SelfSigned {
        SelfSigned {
            key: self.key.clone(),
            cert: self.cert.clone(),
        }
    }

    /// The private key, PKCS#8 PEM.
    pub fn key_pem(&self) -> Vec<u8> {
        self.as_self_signed().key_pem().expect("key pem")
    }

    /// The certificate, PEM.
    pub fn cert_pem(&self) -> Vec<u8> {
        self.as_self_signed().cert_pem().expect("cert pem")
    }

    /// The certificate, DER.
    pub fn cert_der(&self) -> Vec<u8> {
        self.as_self_signed().cert_der().expect("cert der")
    }

    /// Writes `<stem>.key` (mode 0600) and `<stem>.crt` (PEM) into `dir`; returns both paths.
    pub fn write_pem(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        self.as_self_signed()
            .write_pem(dir, stem)
            .expect("writing the test identity")
    }
}
