//! Interop with Python's standard `email` package, an independent MIME implementation: it reads
//! the messages the project builds, and builds messages the project reads.

use std::io::Write;
use std::process::{Command, Stdio};

use svoct_mail::cms::{self, CmsCipher, PrivateKeyAndCert, RecipientCert};
use svoct_mail::profile::{
    Mailbox, MessageHeaders, ParseLimits, Profile, Protect, build_message, parse_message,
};
use svoct_mail::subject::FileKind;
use svoct_testkit::certs::TestIdentity;
use time::macros::datetime;

fn python(script: &str, stdin: &[u8], args: &[&str]) -> Vec<u8> {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

const READ: &str = r#"
import sys, json, base64, email
msg = email.message_from_bytes(sys.stdin.buffer.read())
out = {k: msg[k] for k in ["From", "To", "Subject", "Content-Type", "Content-Transfer-Encoding",
                           "Content-Description", "MIME-Version"]}
out["content_type_lower"] = msg.get_content_type()
out["filename"] = msg.get_filename()
out["param_name"] = msg.get_param("name")
out["multipart"] = msg.is_multipart()
out["defects"] = [type(d).__name__ for d in msg.defects]
out["payload"] = base64.b64encode(msg.get_payload(decode=True)).decode()
print(json.dumps(out))
"#;

fn file_bytes() -> Vec<u8> {
    let mut v = b"000TO\r\n".to_vec();
    v.extend((0..=255u8).cycle().take(3000));
    v
}

fn envelope() -> MessageHeaders {
    MessageHeaders {
        from: Mailbox::with_name(Some("Cabinet Dupont"), "ps@provider.example").unwrap(),
        to: Mailbox::new("factures@oct.example").unwrap(),
        subject: "SV140700/123456789/2026112607050900042/00003".parse().unwrap(),
        profile: Profile::Invoice(FileKind::Fse),
        file_name: "F00042.B2".to_owned(),
        date: datetime!(2026-11-26 07:05:09 UTC),
        message_id: None,
    }
}

fn b64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[test]
fn python_reads_what_the_project_builds() {
    let id = TestIdentity::new("oct.example");
    let cert = RecipientCert::from_bytes(&id.cert_pem()).unwrap();
    let key = PrivateKeyAndCert::from_bytes(&id.key_pem(), &id.cert_pem()).unwrap();
    for compress in [None, Some(false), Some(true)] {
        let protect = match compress {
            None => Protect::None,
            Some(compress) => Protect::Encrypt {
                recipients: std::slice::from_ref(&cert),
                cipher: CmsCipher::Aes256Cbc,
                compress,
            },
        };
        let msg = build_message(&envelope(), &file_bytes(), protect).unwrap();
        let out: serde_json::Value = serde_json::from_slice(&python(READ, &msg, &[])).unwrap();
        let cd = match compress {
            None => "FACTURE/SV",
            Some(false) => "FACTURE/SV/K",
            Some(true) => "FACTURE/SV/ZK",
        };
        assert_eq!(out["From"], "\"Cabinet Dupont\" <ps@provider.example>");
        assert_eq!(out["To"], "factures@oct.example");
        assert_eq!(out["Subject"], "SV140700/123456789/2026112607050900042/00003");
        assert_eq!(out["Content-Type"], "Application/EDI-consent; name=\"F00042.B2\"");
        assert_eq!(out["Content-Transfer-Encoding"], "BASE64");
        assert_eq!(out["Content-Description"], cd);
        assert_eq!(out["content_type_lower"], "application/edi-consent");
        assert_eq!(out["filename"], "F00042.B2");
        assert_eq!(out["param_name"], "F00042.B2");
        assert_eq!(out["multipart"], false);
        assert_eq!(out["defects"], serde_json::json!([]));
        let payload = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(out["payload"].as_str().unwrap())
                .unwrap()
        };
        match compress {
            None => assert_eq!(payload, file_bytes()),
            Some(z) => {
                // What Python extracted is the envelope itself: it opens to the file.
                let clear = cms::decrypt(&payload, &key).unwrap();
                let file = if z {
                    svoct_mail::compress::decompress(&clear, 1 << 20).unwrap().1
                } else {
                    clear
                };
                assert_eq!(file, file_bytes());
            }
        }
    }
}

const BUILD: &str = r#"
import sys, base64
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.mime.application import MIMEApplication
from email import encoders
data = sys.stdin.buffer.read()
mode, cd = sys.argv[1], sys.argv[2]
subject = "SV140700/123456789/2026112607050900042/00003"
if mode == "single":
    msg = EmailMessage()
    msg["From"] = "ps@provider.example"
    msg["To"] = "factures@oct.example"
    msg["Subject"] = subject
    msg.set_content(data, maintype="application", subtype="EDI-consent", cte="base64",
                    filename="F00042.B2", disposition="attachment")
    msg["Content-Description"] = cd
else:
    msg = MIMEMultipart("mixed")
    msg["From"] = "ps@provider.example"
    msg["To"] = "factures@oct.example"
    msg["Subject"] = subject
    msg.attach(MIMEText("Fichier de factures ci-joint.", "plain", "utf-8"))
    part = MIMEApplication(data, "EDI-consent", name="F00042.B2")
    part["Content-Description"] = cd
    msg.attach(part)
sys.stdout.buffer.write(msg.as_bytes())
"#;

#[test]
fn project_reads_what_python_builds() {
    let id = TestIdentity::new("oct.example");
    let cert = RecipientCert::from_bytes(&id.cert_pem()).unwrap();
    let key = PrivateKeyAndCert::from_bytes(&id.key_pem(), &id.cert_pem()).unwrap();
    let envelope_bytes = cms::encrypt(&file_bytes(), &[cert], CmsCipher::Aes256Cbc).unwrap();
    for mode in ["single", "multipart"] {
        for (cd, payload) in [
            ("FACTURE/SV", file_bytes()),
            ("FACTURE/SV/K", envelope_bytes.clone()),
        ] {
            let msg = python(BUILD, &payload, &[mode, cd]);
            let parsed =
                parse_message(&msg, &ParseLimits::default()).unwrap_or_else(|e| panic!("{mode} {cd}: {e}"));
            assert_eq!(parsed.profile_name(), cd);
            assert_eq!(parsed.multipart, mode == "multipart");
            assert_eq!(parsed.headers.file_name.as_deref(), Some("F00042.B2"));
            assert_eq!(parsed.attachment, payload, "{mode} {cd}");
            let opened = parsed.open(Some(&key), &ParseLimits::default()).unwrap();
            assert_eq!(opened.bytes, file_bytes(), "{mode} {cd}");
        }
    }
    let _ = b64(b"");
}

const COMPRESS: &str = r#"
import sys, zlib, gzip, zipfile, io
data = sys.stdin.buffer.read()
fmt = sys.argv[1]
if fmt == "zlib":
    out = zlib.compress(data, 9)
elif fmt == "gzip":
    out = gzip.compress(data)
else:
    buf = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if fmt == "zip-deflated" else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", compression=method) as z:
        z.writestr("F00042.B2", data)
    out = buf.getvalue()
sys.stdout.buffer.write(out)
"#;

const DECOMPRESS: &str = r#"
import sys, gzip
sys.stdout.buffer.write(gzip.decompress(sys.stdin.buffer.read()))
"#;

#[test]
fn compression_interop_with_python() {
    use svoct_mail::compress::{self, Compression};
    let data = file_bytes().repeat(20);
    for (fmt, expected) in [
        ("zlib", Compression::Zlib),
        ("gzip", Compression::Gzip),
        ("zip-deflated", Compression::Zip),
        ("zip-stored", Compression::Zip),
    ] {
        let packed = python(COMPRESS, &data, &[fmt]);
        let (found, out) = compress::decompress(&packed, 1 << 24).unwrap_or_else(|e| panic!("{fmt}: {e}"));
        assert_eq!(found, expected, "{fmt}");
        assert_eq!(out, data, "{fmt}");
    }
    // What the project emits, Python's gzip reads.
    let ours = compress::compress(&data).unwrap();
    assert_eq!(python(DECOMPRESS, &ours, &[]), data);
}
