//! docs/oct.md `[ingress]` "STARTTLS": with `tls_certificate` and `tls_key` the real `svoct oct
//! serve` offers STARTTLS and Python's smtplib (an independent client, checking the certificate
//! against the configured one as its CA) sends a message over it; without them it is not
//! offered; `oct check` names a missing certificate, an expired one, a key readable by others
//! and a key that is not the certificate's.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::{X509, X509NameBuilder};

fn svoct() -> Command {
    Command::new(env!("CARGO_BIN_EXE_svoct"))
}

fn oct(cfg: &Path, args: &[&str]) -> Output {
    svoct()
        .args(["oct", "--config"])
        .arg(cfg)
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const PS: &str = "ps1@ps.example";
const OCT: &str = "oct@oct.example";

/// A self-signed certificate for `localhost` valid from `from` to `to` (Unix seconds), written
/// as PEM with its key (0600).
fn write_pair(cert: &Path, key: &Path, from: i64, to: i64) {
    let pkey = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "localhost").unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&pkey).unwrap();
    b.set_not_before(&Asn1Time::from_unix(from).unwrap()).unwrap();
    b.set_not_after(&Asn1Time::from_unix(to).unwrap()).unwrap();
    let san = openssl::x509::extension::SubjectAlternativeName::new()
        .dns("localhost")
        .build(&b.x509v3_context(None, None))
        .unwrap();
    b.append_extension(san).unwrap();
    b.sign(&pkey, MessageDigest::sha256()).unwrap();
    std::fs::write(cert, b.build().to_pem().unwrap()).unwrap();
    std::fs::write(key, pkey.private_key_to_pem_pkcs8().unwrap()).unwrap();
    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

const DAY: i64 = 86_400;

/// A configuration in `d` (OCT keys, one PS, delivery into `d/out`) plus `ingress_tls` lines.
fn write_config(d: &Path, ingress_tls: &str) -> PathBuf {
    write_pair(
        &d.join("oct.crt"),
        &d.join("oct.key"),
        now() - DAY,
        now() + 365 * DAY,
    );
    std::fs::create_dir_all(d.join("out")).unwrap();
    let cfg = d.join("oct.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[oct]
identifier = "12345678900000"
sender_number = "98765432100000"
address = "{OCT}"

[ingress]
listen = "127.0.0.1:0"
{ingress_tls}

[paths]
spool = "spool"
state = "state.sqlite"

[keys]
private_key = "oct.key"
certificate = "oct.crt"

[[sender]]
address = "{PS}"
sender_number = "11111111100000"
ps_number = "111111111"

[delivery]
directory = "out"
"#
        ),
    )
    .unwrap();
    cfg
}

/// A running `svoct oct serve`, killed when dropped.
struct Serve {
    child: Child,
    port: u16,
}

impl Serve {
    fn start(cfg: &Path) -> Serve {
        let mut child = svoct()
            .args(["oct", "--config"])
            .arg(cfg)
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let mut e = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut e);
            panic!("serve did not start: {line:?}\n{e}");
        };
        let port = addr.parse::<std::net::SocketAddr>().unwrap().port();
        Serve { child, port }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a Python smtplib script; its stdout.
fn python(script: &str) -> String {
    let out = Command::new("python3").arg("-c").arg(script).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn the_ingress_offers_starttls_with_its_configured_certificate_and_receives_over_it() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_pair(
        &d.join("mx.crt"),
        &d.join("mx.key"),
        now() - DAY,
        now() + 365 * DAY,
    );
    let cfg = write_config(d, "tls_certificate = \"mx.crt\"\ntls_key = \"mx.key\"");
    let check = oct(&cfg, &["check"]);
    assert!(check.status.success(), "{}", text(&check.stdout));
    let serve = Serve::start(&cfg);
    // The client trusts only the configured certificate: the handshake succeeds only if the
    // ingress presents it.
    let script = format!(
        "import smtplib, ssl\n\
         ctx = ssl.create_default_context(cafile='{ca}')\n\
         s = smtplib.SMTP('localhost', {port})\n\
         s.ehlo()\n\
         print('offered', s.has_extn('starttls'))\n\
         s.starttls(context=ctx)\n\
         s.ehlo()\n\
         print('after', s.has_extn('starttls'))\n\
         print('cipher', s.sock.version())\n\
         s.sendmail('{PS}', ['{OCT}'], b'From: {PS}\\r\\nTo: {OCT}\\r\\nSubject: over-tls-x7q\\r\\n\\r\\nnot B2\\r\\n')\n\
         s.quit()\n",
        ca = d.join("mx.crt").display(),
        port = serve.port
    );
    let out = python(&script);
    assert!(out.contains("offered True"), "{out}");
    // RFC 3207: not offered again once TLS is on.
    assert!(out.contains("after False"), "{out}");
    assert!(out.contains("cipher TLSv1."), "{out}");
    // Received and processed: the refusal ART for it (not a B2 file) was written.
    let start = Instant::now();
    loop {
        let n = std::fs::read_dir(d.join("out"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "eml"))
            })
            .count();
        if n == 1 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no ART written");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn without_tls_settings_starttls_is_not_offered() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), "");
    let serve = Serve::start(&cfg);
    let out = python(&format!(
        "import smtplib\ns = smtplib.SMTP('127.0.0.1', {})\ns.ehlo()\nprint('offered', s.has_extn('starttls'))\ns.quit()\n",
        serve.port
    ));
    assert!(out.contains("offered False"), "{out}");
}

/// `oct check` output (stdout) and whether it passed.
fn check_with(d: &Path, ingress_tls: &str) -> (bool, String) {
    let cfg = write_config(d, ingress_tls);
    let o = oct(&cfg, &["check"]);
    (o.status.success(), text(&o.stdout))
}

#[test]
fn check_reports_a_missing_an_expired_or_a_mismatched_certificate_and_an_open_key() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // Missing certificate file.
    write_pair(
        &d.join("mx.crt"),
        &d.join("mx.key"),
        now() - DAY,
        now() + 365 * DAY,
    );
    let (ok, out) = check_with(d, "tls_certificate = \"gone.crt\"\ntls_key = \"mx.key\"");
    assert!(!ok);
    assert!(
        out.contains("ingress.tls_certificate") && out.contains("gone.crt"),
        "{out}"
    );
    // Only one of the two.
    let (ok, out) = check_with(d, "tls_certificate = \"mx.crt\"");
    assert!(!ok);
    assert!(out.contains("ingress.tls_key"), "{out}");
    // Expired.
    write_pair(
        &d.join("old.crt"),
        &d.join("old.key"),
        now() - 30 * DAY,
        now() - DAY,
    );
    let (ok, out) = check_with(d, "tls_certificate = \"old.crt\"\ntls_key = \"old.key\"");
    assert!(!ok);
    assert!(
        out.contains("ingress.tls_certificate") && out.contains("expired"),
        "{out}"
    );
    // Ending within 30 days: a warning, `--strict` refuses.
    write_pair(
        &d.join("soon.crt"),
        &d.join("soon.key"),
        now() - DAY,
        now() + 7 * DAY,
    );
    let (ok, out) = check_with(d, "tls_certificate = \"soon.crt\"\ntls_key = \"soon.key\"");
    assert!(ok, "{out}");
    assert!(
        out.contains("ingress.tls_certificate") && out.contains("renew"),
        "{out}"
    );
    // A key readable by others.
    std::fs::set_permissions(d.join("mx.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, out) = check_with(d, "tls_certificate = \"mx.crt\"\ntls_key = \"mx.key\"");
    assert!(!ok);
    assert!(out.contains("ingress.tls_key"), "{out}");
    std::fs::set_permissions(d.join("mx.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    // A key that is not the certificate's.
    let (ok, out) = check_with(d, "tls_certificate = \"mx.crt\"\ntls_key = \"old.key\"");
    assert!(!ok);
    assert!(out.contains("does not match"), "{out}");
    // And serve refuses what check refuses.
    let cfg = write_config(d, "tls_certificate = \"old.crt\"\ntls_key = \"old.key\"");
    let serve = oct(&cfg, &["serve"]);
    assert!(!serve.status.success());
    assert!(text(&serve.stderr).contains("expired"), "{}", text(&serve.stderr));
}
