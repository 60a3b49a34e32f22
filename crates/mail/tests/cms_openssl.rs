//! CMS interop with the `openssl` command (a real, independent peer), and bad-input handling.

use std::path::Path;
use std::process::Command;

use svoct_mail::cms::{self, CmsCipher, CmsError, PrivateKeyAndCert, RecipientCert};
use svoct_testkit::certs::TestIdentity;

/// Binary content with CR, LF, CRLF and NUL bytes: any canonicalisation would alter it.
fn sample() -> Vec<u8> {
    let mut v = b"000TO line one\r\nline two\nline three\r".to_vec();
    v.extend((0..=255u8).cycle().take(5000));
    v.extend_from_slice(b"\r\n\r\n\0end");
    v
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

fn keypair(dir: &Path, id: &TestIdentity) -> (std::path::PathBuf, std::path::PathBuf, PrivateKeyAndCert) {
    let (k, c) = id.write_pem(dir, "oct");
    let key = PrivateKeyAndCert::from_files(&k, &c).expect("load key");
    (k, c, key)
}

#[test]
fn project_envelope_decrypts_with_openssl_cms() {
    let dir = tempfile::tempdir().unwrap();
    let id = TestIdentity::new("oct.example");
    let (k, c, _) = keypair(dir.path(), &id);
    let recipient = RecipientCert::from_bytes(&id.cert_der()).unwrap();
    for (cipher, name) in [
        (CmsCipher::Aes256Cbc, "AES-256-CBC"),
        (CmsCipher::Aes128Cbc, "AES-128-CBC"),
        (CmsCipher::DesEde3Cbc, "DES-EDE3-CBC"),
    ] {
        let env = cms::encrypt(&sample(), std::slice::from_ref(&recipient), cipher).unwrap();
        assert_eq!(env.first(), Some(&0x30));
        let info = cms::envelope_info(&env).unwrap();
        assert_eq!(info.algorithm.as_deref(), Some(name));
        assert_eq!(info.recipients, 1);
        let env_path = dir.path().join("env.der");
        let out_path = dir.path().join("out.bin");
        std::fs::write(&env_path, &env).unwrap();
        openssl(&[
            "cms",
            "-decrypt",
            "-binary",
            "-inform",
            "DER",
            "-in",
            p(&env_path),
            "-inkey",
            p(&k),
            "-recip",
            p(&c),
            "-out",
            p(&out_path),
        ]);
        assert_eq!(std::fs::read(&out_path).unwrap(), sample(), "{name}");
    }
}

#[test]
fn project_decrypts_openssl_cms_and_smime_output() {
    let dir = tempfile::tempdir().unwrap();
    let id = TestIdentity::new("ps.example");
    let (_, c, key) = keypair(dir.path(), &id);
    let plain = dir.path().join("plain.bin");
    std::fs::write(&plain, sample()).unwrap();
    let cases: [(&str, &[&str], &str); 4] = [
        (
            "cms-aes256-der",
            &["cms", "-encrypt", "-aes256", "-binary", "-outform", "DER"],
            "AES-256-CBC",
        ),
        (
            "cms-aes256-smime",
            &["cms", "-encrypt", "-aes256", "-binary"],
            "AES-256-CBC",
        ),
        (
            "smime-des3-der",
            &["smime", "-encrypt", "-des3", "-binary", "-outform", "DER"],
            "DES-EDE3-CBC",
        ),
        (
            "smime-des3-pem",
            &["smime", "-encrypt", "-des3", "-binary", "-outform", "PEM"],
            "DES-EDE3-CBC",
        ),
    ];
    for (label, args, alg) in cases {
        let env_path = dir.path().join(label);
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["-in", p(&plain), "-out", p(&env_path), p(&c)]);
        openssl(&all);
        let env = std::fs::read(&env_path).unwrap();
        let clear = cms::decrypt(&env, &key).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(clear, sample(), "{label}");
        if label.ends_with("der") {
            assert_eq!(cms::envelope_info(&env).unwrap().algorithm.as_deref(), Some(alg));
        }
    }
}

#[test]
fn wrong_key_corruption_truncation_unknown_algorithm() {
    let oct = TestIdentity::new("oct.example");
    let other = TestIdentity::new("intruder.example");
    let key_oct = PrivateKeyAndCert::from_bytes(&oct.key_pem(), &oct.cert_pem()).unwrap();
    let key_other = PrivateKeyAndCert::from_bytes(&other.key_pem(), &other.cert_pem()).unwrap();
    let r = RecipientCert::from_bytes(&oct.cert_pem()).unwrap();
    let env = cms::encrypt(&sample(), &[r], CmsCipher::Aes256Cbc).unwrap();
    assert_eq!(cms::decrypt(&env, &key_oct).unwrap(), sample());

    let err = cms::decrypt(&env, &key_other).unwrap_err();
    assert!(matches!(err, CmsError::NotForThisKey { .. }), "{err}");
    assert!(err.to_string().contains("intruder.example"), "{err}");

    for cut in [0, 1, 10, env.len() / 2, env.len() - 1] {
        let e = cms::decrypt(&env[..cut], &key_oct).unwrap_err();
        assert!(
            matches!(e, CmsError::NotEnveloped { .. } | CmsError::Malformed(_)),
            "cut {cut}: {e}"
        );
    }
    // Flip a byte in the last ciphertext block: the content no longer decrypts to the file.
    let mut bad = env.clone();
    let last = bad.len() - 5;
    bad[last] ^= 0x55;
    match cms::decrypt(&bad, &key_oct) {
        Err(CmsError::Decrypt(_)) => {}
        Ok(out) => assert_ne!(out, sample()),
        Err(e) => panic!("unexpected error {e}"),
    }
    // Replace the AES-256-CBC OID (2.16.840.1.101.3.4.1.42) by an unassigned sibling.
    let oid = [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];
    let at = env
        .windows(oid.len())
        .position(|w| w == oid)
        .expect("AES OID present");
    let mut unknown = env.clone();
    unknown[at + oid.len() - 1] = 0x7e;
    let e = cms::decrypt(&unknown, &key_oct).unwrap_err();
    match e {
        CmsError::UnsupportedAlgorithm { oid } => assert_eq!(oid, "2.16.840.1.101.3.4.1.126"),
        other => panic!("{other}"),
    }
}

#[test]
fn expired_and_future_certificates_are_refused() {
    let expired = RecipientCert::from_bytes(&TestIdentity::expired("old.example").cert_pem()).unwrap();
    let e = cms::encrypt(b"x", &[expired], CmsCipher::default()).unwrap_err();
    assert!(matches!(e, CmsError::CertificateExpired { .. }));
    assert!(
        e.to_string().contains("old.example") && e.to_string().contains("expired"),
        "{e}"
    );
    let future = RecipientCert::from_bytes(&TestIdentity::not_yet_valid("new.example").cert_der()).unwrap();
    let e = cms::encrypt(b"x", &[future], CmsCipher::default()).unwrap_err();
    assert!(matches!(e, CmsError::CertificateNotYetValid { .. }), "{e}");
    assert!(matches!(
        cms::encrypt(b"x", &[], CmsCipher::default()),
        Err(CmsError::NoRecipient)
    ));
    assert!(matches!(
        RecipientCert::from_bytes(b"garbage"),
        Err(CmsError::BadCertificate(_))
    ));
}

#[test]
fn key_file_permissions_and_redaction() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let id = TestIdentity::new("oct.example");
    let (k, c) = id.write_pem(dir.path(), "oct");
    let key = PrivateKeyAndCert::from_files(&k, &c).unwrap();
    let debug = format!("{key:?}");
    assert!(debug.contains("[redacted]"), "{debug}");
    assert!(!debug.contains("BEGIN") && !debug.contains("PRIVATE"), "{debug}");
    let pem = String::from_utf8(id.key_pem()).unwrap();
    let body_line = pem.lines().nth(1).unwrap();
    assert!(!debug.contains(body_line));

    for mode in [0o640, 0o604, 0o644] {
        std::fs::set_permissions(&k, std::fs::Permissions::from_mode(mode)).unwrap();
        let e = PrivateKeyAndCert::from_files(&k, &c).unwrap_err();
        assert!(
            matches!(e, CmsError::KeyFilePermissions { mode: m, .. } if m == mode),
            "{e}"
        );
        assert!(e.to_string().contains("chmod 600"));
    }
    // The error says exactly which bits are wrong (a writable key is not "readable").
    for (mode, says) in [
        (0o620, "mode 620: group may write;"),
        (0o610, "mode 610: group may execute;"),
        (0o604, "mode 604: others may read;"),
        (
            0o672,
            "mode 672: group may read and write and execute, others may write;",
        ),
    ] {
        std::fs::set_permissions(&k, std::fs::Permissions::from_mode(mode)).unwrap();
        let e = PrivateKeyAndCert::from_files(&k, &c).unwrap_err().to_string();
        assert!(e.contains(says), "{e}");
        assert!(!e.contains("readable"), "{e}");
    }
    std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o400)).unwrap();
    assert!(PrivateKeyAndCert::from_files(&k, &c).is_ok());

    // A key that does not belong to the certificate.
    let other = TestIdentity::new("other.example");
    let e = PrivateKeyAndCert::from_bytes(&other.key_pem(), &id.cert_pem()).unwrap_err();
    assert!(matches!(e, CmsError::KeyCertMismatch { .. }));
}

mod mutation {
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    fn fixture() -> &'static (Vec<u8>, PrivateKeyAndCert) {
        static F: OnceLock<(Vec<u8>, PrivateKeyAndCert)> = OnceLock::new();
        F.get_or_init(|| {
            let id = TestIdentity::new("oct.example");
            let key = PrivateKeyAndCert::from_bytes(&id.key_pem(), &id.cert_pem()).unwrap();
            let r = RecipientCert::from_bytes(&id.cert_pem()).unwrap();
            (
                cms::encrypt(b"000 small file", &[r], CmsCipher::Aes256Cbc).unwrap(),
                key,
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Mutated or truncated envelopes give an error or (rarely) other bytes, never a panic.
        #[test]
        fn mutated_envelopes_never_panic(
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
            cut in any::<usize>(),
        ) {
            let (env, key) = fixture();
            let mut bad = env.clone();
            for (at, b) in flips {
                let i = at % bad.len();
                bad[i] = b;
            }
            bad.truncate(cut % (bad.len() + 1));
            let _ = cms::envelope_info(&bad);
            let _ = cms::decrypt(&bad, key);
        }
    }
}
