//! Attachment encryption `K`: CMS (PKCS#7) EnvelopedData for the recipient's X.509 certificate,
//! with OpenSSL.
//!
//! **Provisional** (formats.md §3): RSA key transport to the recipient certificate, content
//! encrypted with AES-256-CBC by default (AES-128-CBC and 3DES-CBC selectable), DER output. On
//! input the algorithm the envelope names is used, whatever it is, as long as OpenSSL knows it;
//! DER, PEM (`-----BEGIN CMS/PKCS7-----`) and S/MIME (`openssl smime -encrypt` default output)
//! are accepted.
//!
//! Private keys are read from files that only their owner can read (like ssh), and are held in a
//! [`Secret`] that never prints its content.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use openssl::asn1::{Asn1Object, Asn1Time};
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::error::ErrorStack;
use openssl::pkey::{PKey, Private};
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::X509;

/// Largest certificate or key file read (they are a few KiB).
pub const MAX_KEY_FILE_BYTES: u64 = 1024 * 1024;

/// Why encryption, decryption or key loading failed.
#[derive(Debug, thiserror::Error)]
pub enum CmsError {
    #[error("recipient certificate {subject} expired on {not_after}")]
    CertificateExpired { subject: String, not_after: String },
    #[error("recipient certificate {subject} is not valid before {not_before}")]
    CertificateNotYetValid { subject: String, not_before: String },
    /// Not an X.509 certificate; the text says what the file looks like instead (a private key,
    /// a damaged PEM block, something else), without OpenSSL's error stack.
    #[error("not a certificate: {0}")]
    BadCertificate(String),
    #[error("private key is neither PEM nor DER: {0}")]
    BadPrivateKey(ErrorStack),
    #[error("private key file {path} has mode {mode:03o}: {}; run chmod 600", loose_bits(*mode))]
    KeyFilePermissions { path: PathBuf, mode: u32 },
    #[error("{what} file {path} is larger than {max} bytes")]
    FileTooLarge {
        what: &'static str,
        path: PathBuf,
        max: u64,
    },
    #[error("{what} file {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("private key does not match the certificate {subject}")]
    KeyCertMismatch { subject: String },
    #[error("no recipient certificate given")]
    NoRecipient,
    #[error("CMS encryption failed: {0}")]
    Encrypt(ErrorStack),
    #[error("not a CMS EnvelopedData: {reason} (at byte {offset})")]
    NotEnveloped { offset: usize, reason: &'static str },
    #[error("CMS envelope could not be read by OpenSSL: {0}")]
    Malformed(ErrorStack),
    #[error("content encryption algorithm {oid} is not supported")]
    UnsupportedAlgorithm { oid: String },
    #[error("the envelope is not addressed to certificate {subject} (wrong key)")]
    NotForThisKey { subject: String },
    #[error("CMS decryption failed (wrong key, or corrupted envelope): {0}")]
    Decrypt(ErrorStack),
}

use crate::secret::Secret;

/// Symmetric content-encryption algorithms offered on output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CmsCipher {
    #[default]
    Aes256Cbc,
    Aes128Cbc,
    DesEde3Cbc,
}

impl CmsCipher {
    fn cipher(self) -> Cipher {
        match self {
            CmsCipher::Aes256Cbc => Cipher::aes_256_cbc(),
            CmsCipher::Aes128Cbc => Cipher::aes_128_cbc(),
            CmsCipher::DesEde3Cbc => Cipher::des_ede3_cbc(),
        }
    }
}

/// Renders a certificate's subject for messages (`CN=..., O=...`).
fn subject_of(cert: &X509) -> String {
    let parts: Vec<String> = cert
        .subject_name()
        .entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?");
            let val = e.data().to_string().unwrap_or_default();
            format!("{key}={val}")
        })
        .collect();
    format!("\"{}\"", parts.join(", "))
}

/// Reads a certificate in PEM or DER form.
pub fn parse_certificate(bytes: &[u8]) -> Result<X509, CmsError> {
    if bytes.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
        return X509::from_pem(bytes).map_err(|e| {
            CmsError::BadCertificate(format!(
                "its PEM CERTIFICATE block does not decode ({}): damaged or cut short?",
                first_reason(&e)
            ))
        });
    }
    if let Some(label) = pem_label(bytes) {
        return Err(CmsError::BadCertificate(format!(
            "a PEM file holding a {label}, not a CERTIFICATE: the wrong file?"
        )));
    }
    X509::from_der(bytes).map_err(|_| {
        CmsError::BadCertificate(if bytes.is_empty() {
            "the file is empty".into()
        } else {
            "neither PEM (no -----BEGIN CERTIFICATE----- line) nor DER X.509".into()
        })
    })
}

/// The label of the first PEM block (`PRIVATE KEY` in `-----BEGIN PRIVATE KEY-----`).
fn pem_label(bytes: &[u8]) -> Option<String> {
    let start = bytes.windows(11).position(|w| w == b"-----BEGIN ")? + 11;
    let rest = bytes.get(start..)?;
    let end = rest.windows(5).position(|w| w == b"-----")?;
    let label = String::from_utf8_lossy(rest.get(..end.min(64))?).into_owned();
    Some(label)
}

/// OpenSSL's first reason, without the stack's codes and file names.
fn first_reason(e: &ErrorStack) -> String {
    e.errors()
        .first()
        .and_then(|x| x.reason())
        .unwrap_or("unreadable")
        .to_owned()
}

fn read_limited(path: &Path, what: &'static str) -> Result<Vec<u8>, CmsError> {
    let io = |source| CmsError::Io {
        what,
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut out = Vec::new();
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(io)?;
    if out.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(CmsError::FileTooLarge {
            what,
            path: path.to_owned(),
            max: MAX_KEY_FILE_BYTES,
        });
    }
    Ok(out)
}

/// A recipient's encryption certificate (the OCT's, R2.2).
#[derive(Clone)]
pub struct RecipientCert {
    cert: X509,
}

impl fmt::Debug for RecipientCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecipientCert")
            .field("subject", &subject_of(&self.cert))
            .finish()
    }
}

impl RecipientCert {
    /// From PEM or DER bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CmsError> {
        Ok(Self {
            cert: parse_certificate(bytes)?,
        })
    }

    /// From a PEM or DER file.
    pub fn from_file(path: &Path) -> Result<Self, CmsError> {
        Self::from_bytes(&read_limited(path, "certificate")?)
    }

    /// The certificate.
    pub fn x509(&self) -> &X509 {
        &self.cert
    }

    /// Refuses a certificate outside its validity period, now.
    pub fn check_validity(&self) -> Result<(), CmsError> {
        let now = Asn1Time::days_from_now(0).map_err(CmsError::Encrypt)?;
        if self.cert.not_after() < now {
            return Err(CmsError::CertificateExpired {
                subject: subject_of(&self.cert),
                not_after: self.cert.not_after().to_string(),
            });
        }
        if self.cert.not_before() > now {
            return Err(CmsError::CertificateNotYetValid {
                subject: subject_of(&self.cert),
                not_before: self.cert.not_before().to_string(),
            });
        }
        Ok(())
    }
}

/// Encrypts `data` for every recipient certificate (CMS EnvelopedData, DER).
///
/// Certificates outside their validity period are refused. `CMS_BINARY` keeps bytes as they are
/// (no MIME canonicalisation of line ends).
pub fn encrypt(data: &[u8], recipients: &[RecipientCert], cipher: CmsCipher) -> Result<Vec<u8>, CmsError> {
    if recipients.is_empty() {
        return Err(CmsError::NoRecipient);
    }
    let mut stack = Stack::new().map_err(CmsError::Encrypt)?;
    for r in recipients {
        r.check_validity()?;
        stack.push(r.cert.clone()).map_err(CmsError::Encrypt)?;
    }
    let cms = CmsContentInfo::encrypt(&stack, data, cipher.cipher(), CMSOptions::BINARY)
        .map_err(CmsError::Encrypt)?;
    cms.to_der().map_err(CmsError::Encrypt)
}

/// The private key and certificate that decrypt attachments addressed to us.
pub struct PrivateKeyAndCert {
    key: Secret<PKey<Private>>,
    cert: X509,
}

impl fmt::Debug for PrivateKeyAndCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKeyAndCert")
            .field("key", &self.key)
            .field("cert", &subject_of(&self.cert))
            .finish()
    }
}

impl PrivateKeyAndCert {
    /// From in-memory PEM or DER (the caller vouches for where the key came from).
    pub fn from_bytes(key: &[u8], cert: &[u8]) -> Result<Self, CmsError> {
        let pkey = if key.windows(11).any(|w| w == b"-----BEGIN ") {
            PKey::private_key_from_pem(key)
        } else {
            PKey::private_key_from_der(key)
        }
        .map_err(CmsError::BadPrivateKey)?;
        let cert = parse_certificate(cert)?;
        let matches = cert.public_key().map(|pk| pk.public_eq(&pkey)).unwrap_or(false);
        if !matches {
            return Err(CmsError::KeyCertMismatch {
                subject: subject_of(&cert),
            });
        }
        Ok(Self {
            key: Secret::new(pkey),
            cert,
        })
    }

    /// From files. The key file must not be readable by group or others (mode `0600` or
    /// stricter), as ssh demands.
    pub fn from_files(key_path: &Path, cert_path: &Path) -> Result<Self, CmsError> {
        check_key_permissions(key_path)?;
        let key = Secret::new(read_limited(key_path, "private key")?);
        let cert = read_limited(cert_path, "certificate")?;
        Self::from_bytes(key.expose(), &cert)
    }

    /// The certificate that goes with the key.
    pub fn certificate(&self) -> &X509 {
        &self.cert
    }
}

/// Says which of the group and other bits of `mode` are set ("group may write, others may
/// read"), so that the error names exactly what is wrong.
pub fn loose_bits(mode: u32) -> String {
    let mut parts = Vec::new();
    for (who, shift) in [("group", 3), ("others", 0)] {
        let bits = (mode >> shift) & 0o7;
        let rights: Vec<&str> = [(4, "read"), (2, "write"), (1, "execute")]
            .iter()
            .filter(|(bit, _)| bits & bit != 0)
            .map(|(_, name)| *name)
            .collect();
        if !rights.is_empty() {
            parts.push(format!("{who} may {}", rights.join(" and ")));
        }
    }
    parts.join(", ")
}

/// Refuses a key file that group or others may read, write or execute.
pub fn check_key_permissions(path: &Path) -> Result<(), CmsError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| CmsError::Io {
        what: "private key",
        path: path.to_owned(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(CmsError::KeyFilePermissions {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

/// What the envelope says about itself, read without decrypting.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EnvelopeInfo {
    /// Dotted OID of the content-encryption algorithm.
    pub algorithm_oid: String,
    /// Its OpenSSL short name (`AES-256-CBC`), when OpenSSL knows it.
    pub algorithm: Option<String>,
    /// Number of recipients.
    pub recipients: usize,
    /// Who each recipient is, as the envelope identifies them.
    #[serde(skip)]
    pub recipient_ids: Vec<RecipientId>,
}

/// How a recipient is identified in the envelope (RFC 5652 `RecipientIdentifier`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientId {
    /// Issuer name (DER) and serial number (big-endian magnitude, no leading zeros).
    IssuerSerial { issuer: Vec<u8>, serial: Vec<u8> },
    /// Subject key identifier.
    KeyId(Vec<u8>),
    /// Another kind of recipient (key agreement, password, ...).
    Other,
}

impl RecipientId {
    /// Whether this identifier names `cert`.
    pub fn names(&self, cert: &X509) -> bool {
        match self {
            RecipientId::IssuerSerial { issuer, serial } => {
                let cert_issuer = cert.issuer_name().to_der().unwrap_or_default();
                let cert_serial = cert
                    .serial_number()
                    .to_bn()
                    .map(|b| b.to_vec())
                    .unwrap_or_default();
                *issuer == cert_issuer && strip_zeros(serial) == strip_zeros(&cert_serial)
            }
            RecipientId::KeyId(id) => cert
                .subject_key_id()
                .is_some_and(|k| k.as_slice() == id.as_slice()),
            RecipientId::Other => false,
        }
    }
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|x| **x == 0).count();
    b.get(n..).unwrap_or(&[])
}

/// Reads a KeyTransRecipientInfo's identifier; other recipient kinds give `Other`.
fn recipient_id(ri: &Tlv<'_>) -> Result<RecipientId, CmsError> {
    if ri.tag != 0x30 {
        return Ok(RecipientId::Other);
    }
    let version = ri.body.tlv(0)?;
    let rid = ri.body.tlv(version.end)?;
    match rid.tag {
        0x30 => {
            let issuer = rid.body.tlv(0)?;
            let serial = rid.body.tlv(issuer.end)?;
            let issuer_der = rid.body.data.get(..issuer.end).unwrap_or(&[]).to_vec();
            Ok(RecipientId::IssuerSerial {
                issuer: issuer_der,
                serial: strip_zeros(serial.body.data).to_vec(),
            })
        }
        0x80 => Ok(RecipientId::KeyId(rid.body.data.to_vec())),
        _ => Ok(RecipientId::Other),
    }
}

/// A minimal DER reader over a bounded slice: enough to find the content-encryption algorithm.
struct Der<'a> {
    data: &'a [u8],
    base: usize,
}

struct Tlv<'a> {
    tag: u8,
    body: Der<'a>,
    end: usize,
}

impl<'a> Der<'a> {
    fn err(&self, at: usize, reason: &'static str) -> CmsError {
        CmsError::NotEnveloped {
            offset: self.base.saturating_add(at),
            reason,
        }
    }

    /// Reads the TLV at `at` (relative), returning it and the relative end offset.
    fn tlv(&self, at: usize) -> Result<Tlv<'a>, CmsError> {
        let tag = *self.data.get(at).ok_or_else(|| self.err(at, "truncated tag"))?;
        let first = *self
            .data
            .get(at + 1)
            .ok_or_else(|| self.err(at + 1, "truncated length"))?;
        let (len, hdr) = if first < 0x80 {
            (usize::from(first), 2usize)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 {
                return Err(self.err(at + 1, "unsupported length form"));
            }
            let mut len = 0usize;
            for i in 0..n {
                let b = *self
                    .data
                    .get(at + 2 + i)
                    .ok_or_else(|| self.err(at + 2 + i, "truncated length"))?;
                len = (len << 8) | usize::from(b);
            }
            (len, 2 + n)
        };
        let start = at + hdr;
        let end = start
            .checked_add(len)
            .ok_or_else(|| self.err(at, "length overflow"))?;
        let body = self
            .data
            .get(start..end)
            .ok_or_else(|| self.err(at, "truncated: length runs past the end"))?;
        Ok(Tlv {
            tag,
            body: Der {
                data: body,
                base: self.base + start,
            },
            end,
        })
    }
}

fn oid_to_string(bytes: &[u8]) -> Option<String> {
    let (first, rest) = bytes.split_first()?;
    let mut parts = vec![u64::from(*first / 40).min(2), 0];
    parts[1] = u64::from(*first) - parts[0] * 40;
    let mut v: u64 = 0;
    for b in rest {
        v = v.checked_mul(128)? | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            parts.push(v);
            v = 0;
        }
    }
    let s: Vec<String> = parts.iter().map(u64::to_string).collect();
    Some(s.join("."))
}

/// DER of OID 1.2.840.113549.1.7.3 (envelopedData).
const ENVELOPED_DATA_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03];

/// Reads the outer structure of a DER ContentInfo holding an EnvelopedData.
pub fn envelope_info(der: &[u8]) -> Result<EnvelopeInfo, CmsError> {
    let top = Der { data: der, base: 0 };
    let ci = top.tlv(0)?;
    if ci.tag != 0x30 {
        return Err(top.err(0, "not a SEQUENCE"));
    }
    let oid = ci.body.tlv(0)?;
    if oid.tag != 0x06 || oid.body.data != ENVELOPED_DATA_OID {
        return Err(ci.body.err(0, "content type is not envelopedData"));
    }
    let explicit = ci.body.tlv(oid.end)?;
    if explicit.tag != 0xa0 {
        return Err(ci.body.err(oid.end, "missing [0] content"));
    }
    let env = explicit.body.tlv(0)?;
    if env.tag != 0x30 {
        return Err(explicit.body.err(0, "EnvelopedData is not a SEQUENCE"));
    }
    let version = env.body.tlv(0)?;
    let mut next = env.body.tlv(version.end)?;
    if next.tag == 0xa0 {
        // originatorInfo
        next = env.body.tlv(next.end)?;
    }
    if next.tag != 0x31 {
        return Err(env.body.err(version.end, "recipientInfos is not a SET"));
    }
    let mut recipient_ids = Vec::new();
    let mut at = 0usize;
    while at < next.body.data.len() {
        let ri = next.body.tlv(at)?;
        recipient_ids.push(recipient_id(&ri)?);
        at = ri.end;
    }
    let eci = env.body.tlv(next.end)?;
    if eci.tag != 0x30 {
        return Err(env.body.err(next.end, "encryptedContentInfo is not a SEQUENCE"));
    }
    let ctype = eci.body.tlv(0)?;
    let alg = eci.body.tlv(ctype.end)?;
    let alg_oid = alg.body.tlv(0)?;
    if alg.tag != 0x30 || alg_oid.tag != 0x06 {
        return Err(eci
            .body
            .err(ctype.end, "bad content-encryption AlgorithmIdentifier"));
    }
    let algorithm_oid =
        oid_to_string(alg_oid.body.data).ok_or_else(|| eci.body.err(ctype.end, "bad algorithm OID"))?;
    let algorithm = Asn1Object::from_str(&algorithm_oid)
        .ok()
        .and_then(|o| Cipher::from_nid(o.nid()).and(o.nid().short_name().ok().map(str::to_owned)));
    Ok(EnvelopeInfo {
        algorithm_oid,
        algorithm,
        recipients: recipient_ids.len(),
        recipient_ids,
    })
}

/// Whether `bytes` has the shape of a DER CMS EnvelopedData (a plain B2 file also starts with
/// `0x30`, the digit `0`, so the first byte alone proves nothing).
pub fn is_enveloped(bytes: &[u8]) -> bool {
    envelope_info(bytes).is_ok()
}

/// Turns PEM or S/MIME input into DER; DER is returned as it is.
fn to_der(input: &[u8]) -> Result<Vec<u8>, CmsError> {
    let head = input.get(..input.len().min(64)).unwrap_or(input);
    let text_head = String::from_utf8_lossy(head).to_ascii_lowercase();
    let cms = if text_head.starts_with("-----begin ") {
        CmsContentInfo::from_pem(input).map_err(CmsError::Malformed)?
    } else if text_head.starts_with("mime-version:") || text_head.starts_with("content-") {
        CmsContentInfo::smime_read_cms(input).map_err(CmsError::Malformed)?
    } else {
        return Ok(input.to_vec());
    };
    cms.to_der().map_err(CmsError::Malformed)
}

/// Decrypts an envelope (DER, PEM or S/MIME) with our key, whatever symmetric algorithm it
/// names.
pub fn decrypt(envelope: &[u8], key: &PrivateKeyAndCert) -> Result<Vec<u8>, CmsError> {
    let der = to_der(envelope)?;
    let info = envelope_info(&der)?;
    if info.algorithm.is_none() {
        return Err(CmsError::UnsupportedAlgorithm {
            oid: info.algorithm_oid,
        });
    }
    let addressed = info.recipient_ids.iter().any(|r| r.names(&key.cert));
    let only_others = info.recipient_ids.iter().all(|r| *r == RecipientId::Other);
    if !addressed && !only_others {
        return Err(CmsError::NotForThisKey {
            subject: subject_of(&key.cert),
        });
    }
    let cms = CmsContentInfo::from_der(&der).map_err(CmsError::Malformed)?;
    cms.decrypt(key.key.expose(), &key.cert)
        .map_err(CmsError::Decrypt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oid_text() {
        assert_eq!(
            oid_to_string(&[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a]).as_deref(),
            Some("2.16.840.1.101.3.4.1.42")
        );
        assert_eq!(
            oid_to_string(ENVELOPED_DATA_OID).as_deref(),
            Some("1.2.840.113549.1.7.3")
        );
    }

    #[test]
    fn plain_b2_is_not_enveloped() {
        assert!(!is_enveloped(b"000TO01234567890123OT"));
        assert!(!is_enveloped(&[0x30, 0x82, 0xff]));
        assert!(!is_enveloped(&[]));
    }

    #[test]
    fn secret_is_redacted() {
        let s = Secret::new("hunter2".to_owned());
        assert_eq!(format!("{s:?}"), "[redacted]");
    }
}
