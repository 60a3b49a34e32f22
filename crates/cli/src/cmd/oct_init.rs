//! `svoct oct init --dir DIR`: a starting configuration that `svoct oct check` passes and
//! `svoct oct serve` runs, with a throw-away key pair to replace before production.
//!
//! Writes `DIR/oct.toml` (relative paths, so the directory can move), creates `DIR/keys`,
//! `DIR/spool` and `DIR/state` with mode 0700, and a self-signed RSA key (0600) and certificate
//! valid for a year in `DIR/keys`. Nothing existing is overwritten.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, KeyUsage};
use openssl::x509::{X509, X509NameBuilder};
use svoct_mail::fsx;

type InitResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// What `init` was asked for.
pub struct InitOptions {
    pub dir: PathBuf,
    pub listen: SocketAddr,
    pub address: String,
}

/// Writes the starting configuration; returns the configuration file's path.
pub fn init(o: &InitOptions) -> InitResult<PathBuf> {
    let config = o.dir.join("oct.toml");
    if config.exists() {
        return Err(format!(
            "{} already exists: init never overwrites a configuration",
            config.display()
        )
        .into());
    }
    for sub in ["keys", "spool", "state"] {
        let d = o.dir.join(sub);
        fsx::create_data_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        fsx::restrict_dir(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    write_throwaway_pair(&o.dir.join("keys"), &o.address)?;
    let text = starting_config(o);
    // Not health data, but it may later hold the relay password: owner only from the start.
    let mut f = fsx::create_new_data_file(&config).map_err(|e| format!("{}: {e}", config.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(config)
}

fn starting_config(o: &InitOptions) -> String {
    format!(
        r#"# svoct concentrator: starting configuration written by `svoct oct init`.
# Every setting is described in docs/oct.md; docs/oct.example.toml shows them all.
# Relative paths are relative to this file. Run `svoct oct check --config THIS_FILE` after
# every change.

[oct]
# CHANGE: your SIREN + NIC (14 digits) or association number, and your sender number.
identifier = "00000000000000"
sender_number = "00000000000000"
address = "{address}"
name = "OCT"

[ingress]
listen = "{listen}"

[paths]
spool = "spool"
state = "state/oct.sqlite"

[keys]
# THROW-AWAY self-signed pair written by `svoct oct init`: replace both files with the OCT's
# real key and certificate before any PS encrypts for it (the key must stay mode 0600).
private_key = "keys/oct.key"
certificate = "keys/oct.crt"

# Register each practice and each insurer route (see docs/oct.example.toml):
# [[sender]]
# address = "dr.martin@ps-provider.example"
# sender_number = "00000123456789"
# ps_number = "123456789"
#
# [[route]]
# organisation = "011"
# mailbox = "fse.cpam011@am.example"
# certificate = "am/cpam011.crt"

# Outgoing mail goes through the machine's own MTA (Postfix, Exim) on loopback.
[delivery.smtp]
host = "127.0.0.1"
port = 25
"#,
        address = o.address,
        listen = o.listen,
    )
}

/// A self-signed RSA 2048 key and certificate valid for a year (`keys/oct.key`, `keys/oct.crt`).
fn write_throwaway_pair(dir: &Path, address: &str) -> InitResult<()> {
    let key = PKey::from_rsa(Rsa::generate(2048)?)?;
    let cert = self_signed(&key, &format!("svoct throw-away {address}"))?;
    let key_path = dir.join("oct.key");
    let mut f = fsx::create_new_data_file(&key_path).map_err(|e| format!("{}: {e}", key_path.display()))?;
    f.write_all(&key.private_key_to_pem_pkcs8()?)?;
    f.sync_all()?;
    let cert_path = dir.join("oct.crt");
    let mut f = fsx::create_new_data_file(&cert_path).map_err(|e| format!("{}: {e}", cert_path.display()))?;
    f.write_all(&cert.to_pem()?)?;
    f.sync_all()?;
    Ok(())
}

fn self_signed(key: &PKey<Private>, common_name: &str) -> InitResult<X509> {
    const DAY: i64 = 86_400;
    let mut name = X509NameBuilder::new()?;
    // A common name is at most 64 characters (RFC 5280 ub-common-name).
    let cn: String = common_name.chars().take(64).collect();
    name.append_entry_by_text("CN", &cn)?;
    let name = name.build();
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(64, MsbOption::MAYBE_ZERO, false)?;
    let serial = Asn1Integer::from_bn(&serial)?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    b.set_pubkey(key)?;
    // From an hour ago, so a clock a little behind does not see it as not yet valid.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let (not_before, not_after) = (
        Asn1Time::from_unix(now - 3600)?,
        Asn1Time::from_unix(now + 365 * DAY)?,
    );
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
    b.sign(key, MessageDigest::sha256())?;
    Ok(b.build())
}
