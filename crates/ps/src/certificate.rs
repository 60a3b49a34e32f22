//! Checking a recipient certificate when it is configured, not when the first message is
//! encrypted for it: the file exists, holds an X.509 certificate (PEM or DER), and is valid
//! today. `svoct ps oct set --certificate` calls it before saving.

use std::path::Path;

use svoct_mail::cms::{CmsError, RecipientCert};

use crate::error::PsError;

/// What a good certificate says about itself, to show when it is set.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CertificateInfo {
    /// Subject, `CN=...`.
    pub subject: String,
    /// End of validity, as OpenSSL prints it (`Nov 26 12:00:00 2027 GMT`).
    pub not_after: String,
}

fn reason(e: &CmsError) -> String {
    match e {
        CmsError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => "no such file".into(),
        CmsError::Io { source, .. } => format!("cannot be read: {source}"),
        CmsError::FileTooLarge { max, .. } => {
            format!("larger than {max} bytes: not a certificate")
        }
        other => other.to_string(),
    }
}

/// Checks the certificate file at `path` (see the module doc). The error names the file and
/// says what is wrong in one line, without OpenSSL's error stack.
pub fn check_file(path: &Path) -> Result<CertificateInfo, PsError> {
    let err = |e: CmsError| PsError::Certificate {
        path: path.to_owned(),
        reason: reason(&e),
    };
    let cert = RecipientCert::from_file(path).map_err(err)?;
    cert.check_validity().map_err(err)?;
    let subject = cert
        .x509()
        .subject_name()
        .entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?");
            let value = e.data().to_string().unwrap_or_default();
            format!("{key}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ");
    Ok(CertificateInfo {
        subject,
        not_after: cert.x509().not_after().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_and_not_a_certificate_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.crt");
        let e = check_file(&missing).unwrap_err().to_string();
        assert!(e.contains("missing.crt") && e.contains("no such file"), "{e}");
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "hello").unwrap();
        let e = check_file(&text).unwrap_err().to_string();
        assert!(e.contains("notes.txt") && e.contains("not a certificate"), "{e}");
        assert!(!e.contains("error:"), "no OpenSSL stack: {e}");
    }

    #[test]
    fn a_key_given_for_a_certificate_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let (key, cert) = svoct_testkit::certs::TestIdentity::new("oct.test").write_pem(dir.path(), "oct");
        let e = check_file(&key).unwrap_err().to_string();
        assert!(e.contains("PRIVATE KEY"), "{e}");
        let ok = check_file(&cert).unwrap();
        assert!(ok.subject.contains("oct.test"), "{ok:?}");
    }

    #[test]
    fn an_expired_or_not_yet_valid_certificate_is_refused_with_its_date() {
        let dir = tempfile::tempdir().unwrap();
        let (_, old) = svoct_testkit::certs::TestIdentity::expired("old.test").write_pem(dir.path(), "old");
        let e = check_file(&old).unwrap_err().to_string();
        assert!(e.contains("old.crt") && e.contains("expired on"), "{e}");
        let (_, soon) =
            svoct_testkit::certs::TestIdentity::not_yet_valid("soon.test").write_pem(dir.path(), "soon");
        let e = check_file(&soon).unwrap_err().to_string();
        assert!(e.contains("soon.crt") && e.contains("not valid before"), "{e}");
    }
}
