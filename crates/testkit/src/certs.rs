//! Throw-away keys and self-signed certificates for tests (never committed: generated per run).
//!
//! An RSA 2048 key and an X.509 v3 certificate, valid from yesterday for a year by default, or
//! over any window (to test refusal of expired and not-yet-valid certificates).

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, KeyUsage};
use openssl::x509::{X509, X509NameBuilder};

/// A generated key with its certificate.
pub struct TestIdentity {
    pub key: PKey<Private>,
    pub cert: X509,
}

const DAY: i64 = 86_400;

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
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
    ///
    /// Panics on OpenSSL failure: this is test support.
    pub fn with_validity(common_name: &str, not_before: i64, not_after: i64) -> Self {
        let key = PKey::from_rsa(Rsa::generate(2048).expect("rsa")).expect("pkey");
        let mut name = X509NameBuilder::new().expect("name");
        name.append_entry_by_text("CN", common_name).expect("cn");
        name.append_entry_by_text("O", "svoct tests").expect("o");
        let name = name.build();
        let mut b = X509::builder().expect("builder");
        b.set_version(2).expect("version");
        let mut serial = BigNum::new().expect("bn");
        serial.rand(64, MsbOption::MAYBE_ZERO, false).expect("rand");
        b.set_serial_number(&Asn1Integer::from_bn(&serial).expect("serial"))
            .expect("serial");
        b.set_subject_name(&name).expect("subject");
        b.set_issuer_name(&name).expect("issuer");
        b.set_pubkey(&key).expect("pubkey");
        b.set_not_before(&Asn1Time::from_unix(not_before).expect("time"))
            .expect("nb");
        b.set_not_after(&Asn1Time::from_unix(not_after).expect("time"))
            .expect("na");
        b.append_extension(BasicConstraints::new().build().expect("bc"))
            .expect("ext");
        b.append_extension(
            KeyUsage::new()
                .digital_signature()
                .key_encipherment()
                .data_encipherment()
                .build()
                .expect("ku"),
        )
        .expect("ext");
        b.sign(&key, MessageDigest::sha256()).expect("sign");
        Self { key, cert: b.build() }
    }

    /// The private key, PKCS#8 PEM.
    pub fn key_pem(&self) -> Vec<u8> {
        self.key.private_key_to_pem_pkcs8().expect("key pem")
    }

    /// The certificate, PEM.
    pub fn cert_pem(&self) -> Vec<u8> {
        self.cert.to_pem().expect("cert pem")
    }

    /// The certificate, DER.
    pub fn cert_der(&self) -> Vec<u8> {
        self.cert.to_der().expect("cert der")
    }

    /// Writes `<stem>.key` (mode 0600) and `<stem>.crt` (PEM) into `dir`; returns both paths.
    pub fn write_pem(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        let key_path = dir.join(format!("{stem}.key"));
        let cert_path = dir.join(format!("{stem}.crt"));
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&key_path)
            .expect("key file");
        f.write_all(&self.key_pem()).expect("write key");
        fs::write(&cert_path, self.cert_pem()).expect("write cert");
        (key_path, cert_path)
    }
}
