//! `svoct oct init --dir DIR`: a starting configuration that `svoct oct check` passes and
//! `svoct oct serve` runs, with a throw-away key pair to replace before production.
//!
//! Writes `DIR/oct.toml` (relative paths, so the directory can move), creates `DIR/keys`,
//! `DIR/spool` and `DIR/state` with mode 0700, and a self-signed RSA key (0600) and certificate
//! valid for a year in `DIR/keys`. Nothing existing is overwritten.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use svoct_mail::fsx;
use svoct_mail::selfsigned::SelfSigned;

type InitResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// What `init` was asked for.
pub struct InitOptions {
    pub dir: PathBuf,
    pub listen: SocketAddr,
    pub address: String,
    /// Where `[http]` (metrics, health, console) listens.
    pub http_listen: SocketAddr,
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

# Metrics (/metrics), health (/healthz) and the web console, on loopback (any other address
# needs tls_certificate and tls_key). The console needs its operators' file: run
# `svoct oct console-user add NAME --config THIS_FILE` after uncommenting users_file.
[http]
listen = "{http_listen}"
# users_file = "console-users"
"#,
        address = o.address,
        listen = o.listen,
        http_listen = o.http_listen,
    )
}

/// A self-signed RSA 2048 key and certificate valid for a year (`keys/oct.key`, `keys/oct.crt`),
/// made by the same code as the demo's (`svoct_mail::selfsigned`).
fn write_throwaway_pair(dir: &Path, address: &str) -> InitResult<()> {
    let pair = SelfSigned::generate(&format!("svoct throw-away {address}"))?;
    let key_path = dir.join("oct.key");
    let mut f = fsx::create_new_data_file(&key_path).map_err(|e| format!("{}: {e}", key_path.display()))?;
    f.write_all(&pair.key_pem()?)?;
    f.sync_all()?;
    let cert_path = dir.join("oct.crt");
    let mut f = fsx::create_new_data_file(&cert_path).map_err(|e| format!("{}: {e}", cert_path.display()))?;
    f.write_all(&pair.cert_pem()?)?;
    f.sync_all()?;
    Ok(())
}
