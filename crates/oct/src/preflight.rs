//! Everything `svoct oct serve` needs, checked before it starts (`svoct oct check`).
//!
//! [`check_file`] reads the configuration with [`Config::load_unchecked`], then lists every
//! problem at once instead of stopping at the first: the consistency checks of
//! [`Config::problems`] (the ones [`Config::load`] applies), then what the service would meet on
//! the machine: the OCT key (mode 0600, readable, matching its certificate), the ingress's
//! STARTTLS pair when set (the same checks), every certificate
//! (readable, within its validity period, with a warning [`EXPIRY_WARNING_DAYS`] days before it
//! ends), the directories and files of the state, spool, Maildirs and dLOI source, and the
//! listen port. `serve` runs the same function first and refuses to start on an error, so the
//! two cannot disagree. Nothing is created or modified.

use std::fmt;
use std::path::{Path, PathBuf};

use openssl::asn1::{Asn1Time, Asn1TimeRef};
use openssl::x509::X509Ref;
use svoct_mail::cms::{PrivateKeyAndCert, RecipientCert, check_key_permissions};

use crate::config::{Config, ConfigError};

/// A certificate ending within this many days is reported as a warning.
pub const EXPIRY_WARNING_DAYS: u32 = 30;

/// Largest key or certificate file read (a wrong path to a device or a log fails fast).
const MAX_KEY_FILE_BYTES: u64 = 1024 * 1024;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// `serve` would refuse to start, or would fail at its first use.
    Error,
    /// `serve` starts, but the operator must act soon (a certificate ends within 30 days).
    Warning,
}

/// One problem, naming the configuration key it comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// The configuration key (`keys.private_key`, `route[1].certificate`), or `file`.
    pub key: String,
    pub message: String,
}

/// Every finding about one configuration file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub file: PathBuf,
    pub findings: Vec<Finding>,
}

impl Report {
    /// Number of findings of a severity.
    pub fn count(&self, severity: Severity) -> usize {
        self.findings.iter().filter(|f| f.severity == severity).count()
    }

    /// Whether `serve` may start: no error (and, when `strict`, no warning either).
    pub fn passes(&self, strict: bool) -> bool {
        self.count(Severity::Error) == 0 && (!strict || self.count(Severity::Warning) == 0)
    }
}

impl fmt::Display for Report {
    /// One line a finding: `FILE: error: KEY: MESSAGE`, greppable.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for x in &self.findings {
            let level = match x.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            writeln!(f, "{}: {level}: {}: {}", self.file.display(), x.key, x.message)?;
        }
        Ok(())
    }
}

/// Checks the configuration file at `path` and what it names; the configuration is returned
/// when it could be read at all (even with problems).
pub fn check_file(path: &Path) -> (Option<Config>, Report) {
    let mut report = Report {
        file: path.to_owned(),
        findings: Vec::new(),
    };
    let config = match Config::load_unchecked(path) {
        Ok(c) => c,
        Err(e) => {
            report.findings.push(error("file", e.to_string()));
            return (None, report);
        }
    };
    for e in config.problems() {
        let finding = match e {
            ConfigError::Invalid { key, reason, .. } => error(key, reason),
            other => error("file", other.to_string()),
        };
        report.findings.push(finding);
    }
    report.findings.extend(check_environment(&config));
    (Some(config), report)
}

fn error(key: impl Into<String>, message: impl Into<String>) -> Finding {
    Finding {
        severity: Severity::Error,
        key: key.into(),
        message: message.into(),
    }
}

fn warning(key: impl Into<String>, message: impl Into<String>) -> Finding {
    Finding {
        severity: Severity::Warning,
        key: key.into(),
        message: message.into(),
    }
}

/// What the service would meet on this machine: keys, certificates, directories, the port.
pub fn check_environment(config: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    check_oct_key_pair(config, &mut out);
    if let Some(files) = config.ingress.tls_files() {
        check_tls_pair(&files, ("ingress.tls_certificate", "ingress.tls_key"), &mut out);
    }
    check_http(config, &mut out);
    for (key, path) in certificate_settings(config) {
        match RecipientCert::from_file(&path) {
            Ok(cert) => check_dates(&key, &path, cert.x509(), &mut out),
            Err(e) => out.push(error(key, format!("{}: {e}", path.display()))),
        }
    }
    check_place(&mut out, "paths.spool", &config.paths.spool, Kind::Dir);
    check_place(&mut out, "paths.state", &config.paths.state, Kind::File);
    for (i, l) in config.delivery.local.iter().enumerate() {
        check_place(
            &mut out,
            &format!("delivery.local[{i}].maildir"),
            &l.maildir,
            Kind::Dir,
        );
    }
    if let Some(d) = &config.delivery.directory {
        check_place(&mut out, "delivery.directory", d, Kind::Dir);
    }
    if let Some(src) = &config.loi.source
        && !src.is_dir()
    {
        out.push(error(
            "loi.source",
            format!(
                "{} is not a directory: dLOI requests could not be answered",
                src.display()
            ),
        ));
    }
    check_listen(config, &mut out);
    if config.delivery.smtp.is_none() && config.delivery.directory.is_none() {
        out.push(warning(
            "delivery",
            "neither [delivery.smtp] nor delivery.directory: only hosted mailboxes \
             ([[delivery.local]]) receive; every other message waits in the outbox",
        ));
    }
    out
}

/// The OCT's key (permissions, parse) and certificate (parse, dates), and that they match.
fn check_oct_key_pair(config: &Config, out: &mut Vec<Finding>) {
    let (key_path, cert_path) = (&config.keys.private_key, &config.keys.certificate);
    let key_exists = key_path.exists();
    if !key_exists {
        out.push(error(
            "keys.private_key",
            format!("{}: no such file", key_path.display()),
        ));
    } else if let Err(e) = check_key_permissions(key_path) {
        out.push(error("keys.private_key", e.to_string()));
    }
    let cert = match read_small(cert_path) {
        Ok(bytes) => match RecipientCert::from_bytes(&bytes) {
            Ok(c) => {
                check_dates("keys.certificate", cert_path, c.x509(), out);
                Some(bytes)
            }
            Err(e) => {
                out.push(error("keys.certificate", format!("{}: {e}", cert_path.display())));
                None
            }
        },
        Err(e) => {
            out.push(error("keys.certificate", format!("{}: {e}", cert_path.display())));
            None
        }
    };
    // The key is read even when its mode is wrong, so that every problem shows at once.
    if !key_exists {
        return;
    }
    let key = match read_small(key_path) {
        Ok(k) => svoct_mail::secret::Secret::new(k),
        Err(e) => {
            out.push(error("keys.private_key", format!("{}: {e}", key_path.display())));
            return;
        }
    };
    if let Some(cert) = cert
        && let Err(e) = PrivateKeyAndCert::from_bytes(key.expose(), &cert)
    {
        out.push(error("keys.private_key", format!("{}: {e}", key_path.display())));
    }
}

/// A TLS pair (the ingress's STARTTLS, the HTTP listener's): the key (mode, parse), the
/// chain's first certificate (parse, dates) and that they match; what `serve` would fail on, or
/// warn about, at start. `keys` are the settings' names.
fn check_tls_pair(
    files: &crate::inbound::listener::TlsFiles,
    (cert_key, key_key): (&str, &str),
    out: &mut Vec<Finding>,
) {
    use openssl::pkey::PKey;
    use openssl::x509::X509;
    let (cert_path, key_path) = (&files.cert_chain, &files.private_key);
    let cert = match read_small(cert_path)
        .map_err(|e| e.to_string())
        .and_then(|b| X509::from_pem(&b).map_err(|e| format!("not a PEM certificate: {e}")))
    {
        Ok(c) => {
            check_dates(cert_key, cert_path, &c, out);
            Some(c)
        }
        Err(e) => {
            out.push(error(cert_key, format!("{}: {e}", cert_path.display())));
            None
        }
    };
    if !key_path.exists() {
        out.push(error(key_key, format!("{}: no such file", key_path.display())));
        return;
    }
    if let Err(e) = check_key_permissions(key_path) {
        out.push(error(key_key, e.to_string()));
    }
    let key = match read_small(key_path).map(svoct_mail::secret::Secret::new) {
        Ok(k) => k,
        Err(e) => {
            out.push(error(key_key, format!("{}: {e}", key_path.display())));
            return;
        }
    };
    // The parser's error names no key material; only the path is shown.
    let Ok(key) = PKey::private_key_from_pem(key.expose()) else {
        out.push(error(
            key_key,
            format!("{}: not a PEM private key", key_path.display()),
        ));
        return;
    };
    if let Some(cert) = cert
        && !cert.public_key().is_ok_and(|p| p.public_eq(&key))
    {
        out.push(error(
            key_key,
            format!("{}: does not match {}", key_path.display(), cert_path.display()),
        ));
    }
}

/// `[http]`: the users file (present, the owner's alone, parses) and the TLS pair.
fn check_http(config: &Config, out: &mut Vec<Finding>) {
    let Some(http) = &config.http else { return };
    if let Some(users) = &http.users_file {
        match crate::http::auth::Users::load(users) {
            Ok(u) if u.is_empty() => out.push(warning(
                "http.users_file",
                format!(
                    "{}: no operator: add one with `svoct oct console-user add NAME`",
                    users.display()
                ),
            )),
            Ok(_) => {}
            Err(e) => out.push(error("http.users_file", e.to_string())),
        }
    }
    if let (Some(cert), Some(key)) = (&http.tls_certificate, &http.tls_key) {
        let files = crate::inbound::listener::TlsFiles {
            cert_chain: cert.clone(),
            private_key: key.clone(),
        };
        check_tls_pair(&files, ("http.tls_certificate", "http.tls_key"), out);
    }
}

fn read_small(path: &Path) -> std::io::Result<Vec<u8>> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() || meta.len() > MAX_KEY_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "not a regular file of at most {MAX_KEY_FILE_BYTES} bytes"
        )));
    }
    std::fs::read(path)
}

/// Every certificate the service loads besides its own, with its configuration key.
fn certificate_settings(config: &Config) -> Vec<(String, PathBuf)> {
    let routes = config.routes.iter().enumerate().filter_map(|(i, r)| {
        r.certificate
            .clone()
            .map(|c| (format!("route[{i}].certificate"), c))
    });
    let amc = config.amc.iter().enumerate().filter_map(|(i, a)| {
        a.certificate
            .clone()
            .map(|c| (format!("amc[{i}].certificate"), c))
    });
    let senders = config.senders.iter().enumerate().filter_map(|(i, s)| {
        s.certificate
            .clone()
            .map(|c| (format!("sender[{i}].certificate"), c))
    });
    routes.chain(amc).chain(senders).collect()
}

/// Expired or not yet valid: an error (the service refuses to encrypt for it, and a PS cannot
/// encrypt for an expired OCT certificate); ending within [`EXPIRY_WARNING_DAYS`]: a warning.
fn check_dates(key: &str, path: &Path, cert: &X509Ref, out: &mut Vec<Finding>) {
    let (Ok(now), Ok(soon)) = (
        Asn1Time::days_from_now(0),
        Asn1Time::days_from_now(EXPIRY_WARNING_DAYS),
    ) else {
        out.push(error(
            key,
            "cannot read the clock to check the certificate's dates",
        ));
        return;
    };
    let (not_before, not_after) = (cert.not_before(), cert.not_after());
    let shown = path.display();
    if not_after < now {
        out.push(error(key, format!("{shown}: certificate expired on {not_after}")));
    } else if not_before > now {
        out.push(error(
            key,
            format!("{shown}: certificate not valid before {not_before}"),
        ));
    } else if not_after < soon {
        out.push(warning(
            key,
            format!(
                "{shown}: certificate expires on {not_after}, in {} day(s): renew it",
                days_left(&now, not_after)
            ),
        ));
    }
}

fn days_left(now: &Asn1Time, not_after: &Asn1TimeRef) -> i32 {
    now.diff(not_after).map(|d| d.days).unwrap_or(0)
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Dir,
    File,
}

/// A directory or file the service creates or opens: when it exists, of the right kind;
/// otherwise its nearest existing ancestor must be a directory we may write in.
fn check_place(out: &mut Vec<Finding>, key: &str, path: &Path, kind: Kind) {
    let shown = path.display();
    match std::fs::metadata(path) {
        Ok(meta) => {
            if kind == Kind::Dir && !meta.is_dir() {
                out.push(error(key, format!("{shown} exists and is not a directory")));
            } else if kind == Kind::File && !meta.is_file() {
                out.push(error(key, format!("{shown} exists and is not a regular file")));
            } else if !writable(path) {
                out.push(error(key, format!("{shown} is not writable by this user")));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A relative path's last ancestor is "": the working directory.
            let ancestor = path
                .ancestors()
                .skip(1)
                .map(|a| {
                    if a.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        a
                    }
                })
                .find(|a| a.exists());
            match ancestor {
                Some(a) if a.is_dir() && writable(a) => {}
                Some(a) => out.push(error(
                    key,
                    format!(
                        "{shown} does not exist and cannot be created: {} is not a writable directory",
                        a.display()
                    ),
                )),
                None => out.push(error(key, format!("{shown} has no existing parent"))),
            }
        }
        Err(e) => out.push(error(key, format!("{shown}: {e}"))),
    }
}

/// Whether this process may write in `path` (access(2), as the service's user).
fn writable(path: &Path) -> bool {
    rustix::fs::access(path, rustix::fs::Access::WRITE_OK).is_ok()
}

/// A port below 1024 needs root or CAP_NET_BIND_SERVICE (the shipped systemd unit grants
/// neither unless told to: docs/oct.md).
fn check_listen(config: &Config, out: &mut Vec<Finding>) {
    let port = config.ingress.listen.port();
    let root = rustix::process::geteuid().is_root();
    if port != 0 && port < 1024 && !root {
        out.push(warning(
            "ingress.listen",
            format!(
                "port {port} needs root or CAP_NET_BIND_SERVICE (AmbientCapabilities in the systemd unit)"
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(d: &Path, delivery: &str) -> Config {
        let text = format!(
            "[oct]\nidentifier = \"1\"\nsender_number = \"1\"\naddress = \"oct@oct.example\"\n\
             [paths]\nspool = \"{d}/spool\"\nstate = \"{d}/state\"\n\
             [keys]\nprivate_key = \"{d}/none.key\"\ncertificate = \"{d}/none.crt\"\n{delivery}",
            d = d.display()
        );
        Config::parse(&text).expect("consistent")
    }

    fn keys_of(findings: &[Finding], severity: Severity) -> Vec<&str> {
        findings
            .iter()
            .filter(|f| f.severity == severity)
            .map(|f| f.key.as_str())
            .collect()
    }

    #[test]
    fn places_of_the_wrong_kind_and_missing_keys_are_each_reported() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("spool"), b"a file where a directory goes").unwrap();
        std::fs::create_dir(d.join("state")).unwrap();
        let found = check_environment(&config(
            d,
            &format!("[delivery]\ndirectory = \"{}/out\"\n", d.display()),
        ));
        assert_eq!(
            keys_of(&found, Severity::Error),
            [
                "keys.private_key",
                "keys.certificate",
                "paths.spool",
                "paths.state"
            ],
            "{found:#?}"
        );
        let spool = found.iter().find(|f| f.key == "paths.spool").unwrap();
        assert!(spool.message.ends_with("is not a directory"), "{spool:?}");
        let state = found.iter().find(|f| f.key == "paths.state").unwrap();
        assert!(state.message.ends_with("is not a regular file"), "{state:?}");
        assert!(keys_of(&found, Severity::Warning).is_empty(), "{found:#?}");
    }

    #[test]
    fn nowhere_to_send_is_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let found = check_environment(&config(dir.path(), ""));
        assert_eq!(keys_of(&found, Severity::Warning), ["delivery"], "{found:#?}");
    }
}
