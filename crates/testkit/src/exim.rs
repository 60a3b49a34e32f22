//! A private Exim instance: SMTP on loopback, delivering to Maildirs, optionally relaying.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::process::{self, ServerProcess};
use crate::{HarnessError, io_err};

const EXIM: &str = "/usr/sbin/exim4";
const EXIM_PACKAGES: &str = "exim4-daemon-light";

/// Certificate and key (PEM files) for a server's TLS.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// Server certificate (chain), PEM.
    pub cert: PathBuf,
    /// Private key, PEM, unencrypted.
    pub key: PathBuf,
}

/// Exim's TLS files (the same type as Dovecot's).
pub type EximTls = TlsFiles;

/// What the test's Exim does with the mail it accepts.
#[derive(Clone, Debug, Default)]
pub struct EximConfig<'a> {
    /// Local parts delivered to a Maildir each (any domain): `oct@anything` lands in the `oct`
    /// Maildir. Names are `[A-Za-z0-9._-]+`. Without a smarthost, other recipients are refused
    /// at RCPT with `550`.
    pub mailboxes: &'a [&'a str],
    /// Relay every recipient that is not one of `mailboxes` to this SMTP server (plain SMTP, no
    /// TLS, no auth), retrying every second while it is down.
    pub smarthost: Option<SocketAddr>,
    /// Local parts answered `451` (temporary failure) at RCPT, to test retry paths.
    pub defer_local_parts: &'a [&'a str],
    /// Require SMTP AUTH (PLAIN or LOGIN) with this user and password before any recipient.
    /// Both must be `[A-Za-z0-9._-]+`.
    pub auth: Option<(&'a str, &'a str)>,
    /// `message_size_limit` in bytes (Exim's default, 50 MB, when `None`).
    pub message_size_limit: Option<u64>,
    /// Offer STARTTLS on the main port and implicit TLS on a second port ([`Exim::tls_port`]).
    pub tls: Option<EximTls>,
}

/// A running Exim; killed and its directory removed on drop.
pub struct Exim {
    // Field order matters: the process is stopped before the directory is removed.
    process: ServerProcess,
    port: u16,
    tls_port: Option<u16>,
    maildirs: BTreeMap<String, PathBuf>,
    config: PathBuf,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for Exim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exim")
            .field("port", &self.port)
            .field("tls_port", &self.tls_port)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

fn valid_mailbox(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl Exim {
    /// Starts Exim on a free loopback port and waits until it accepts connections.
    pub fn start(cfg: &EximConfig<'_>) -> Result<Exim, HarnessError> {
        process::require_binary(Path::new(EXIM), EXIM_PACKAGES)?;
        for name in cfg.mailboxes.iter().chain(cfg.defer_local_parts) {
            if !valid_mailbox(name) {
                return Err(HarnessError::Config(format!(
                    "mailbox name {name:?} is not [A-Za-z0-9._-]+"
                )));
            }
        }
        if let Some((user, password)) = cfg.auth
            && !(valid_mailbox(user) && valid_mailbox(password))
        {
            return Err(HarnessError::Config(
                "auth user and password must be [A-Za-z0-9._-]+".into(),
            ));
        }
        if let Some(sh) = cfg.smarthost
            && !matches!(sh.ip(), IpAddr::V4(_))
        {
            return Err(HarnessError::Config(format!("smarthost {sh} must be IPv4")));
        }
        let mut last = None;
        for _attempt in 0..5 {
            match Self::start_once(cfg) {
                Ok(exim) => return Ok(exim),
                Err(HarnessError::NotReady { log, .. }) if process::port_taken(&log) => {
                    last = Some(log);
                }
                Err(e) => return Err(e),
            }
        }
        Err(HarnessError::NotReady {
            server: "exim",
            port: 0,
            reason: "every port tried was taken".into(),
            log: last.unwrap_or_default(),
        })
    }

    fn start_once(cfg: &EximConfig<'_>) -> Result<Exim, HarnessError> {
        let (uid, gid) = process::delivery_user()?;
        let dir = tempfile::Builder::new()
            .prefix("svoct-exim-")
            .tempdir()
            .map_err(io_err("create a temporary directory"))?;
        let root = dir.path().to_owned();
        // The delivery user must traverse the directory to reach the Maildirs.
        process::mkdir_owned(&root, 0o755, 0, 0)?;
        for sub in ["spool", "log"] {
            process::mkdir_owned(&root.join(sub), 0o750, 0, 0)?;
        }
        let mut maildirs = BTreeMap::new();
        for name in cfg.mailboxes {
            let md = root.join("maildirs").join(name).join("Maildir");
            process::mkdir_owned(&root.join("maildirs"), 0o755, 0, 0)?;
            process::mkdir_owned(&root.join("maildirs").join(name), 0o755, uid, gid)?;
            for sub in ["", "new", "cur", "tmp"] {
                process::mkdir_owned(&md.join(sub), 0o755, uid, gid)?;
            }
            maildirs.insert((*name).to_owned(), md);
        }
        let port = process::free_port()?;
        let tls_port = match cfg.tls {
            Some(_) => Some(process::free_port()?),
            None => None,
        };
        let config = root.join("exim.conf");
        fs::write(&config, render_config(cfg, &root, port, tls_port, uid, gid))
            .map_err(io_err("write exim.conf"))?;

        let mut cmd = Command::new(EXIM);
        cmd.arg("-C").arg(&config).arg("-bdf");
        if cfg.smarthost.is_some() {
            // Retry queued relays every second (local deliveries are immediate, no queue).
            cmd.arg("-q1s");
        }
        let out = root.join("exim.out");
        let mut process = ServerProcess::spawn(cmd, &out)?;
        let logs = [
            out,
            root.join("log/mainlog"),
            root.join("log/paniclog"),
            root.join("log/rejectlog"),
        ];
        process.wait_ready("exim", port, &|| process::read_logs(&logs))?;
        Ok(Exim {
            process,
            port,
            tls_port,
            maildirs,
            config,
            dir,
        })
    }

    /// The SMTP port on 127.0.0.1 (STARTTLS offered there when TLS is configured).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The SMTP address, `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The implicit-TLS (SMTPS) port, when TLS is configured.
    pub fn tls_port(&self) -> Option<u16> {
        self.tls_port
    }

    /// The Maildir (the directory holding `new/ cur/ tmp/`) of one configured mailbox.
    pub fn maildir(&self, mailbox: &str) -> Option<&Path> {
        self.maildirs.get(mailbox).map(PathBuf::as_path)
    }

    /// The instance's directory (configuration, spool, logs, Maildirs).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The files currently delivered to `mailbox` (`new/` and `cur/`), sorted by name.
    pub fn messages(&self, mailbox: &str) -> Vec<PathBuf> {
        let Some(md) = self.maildir(mailbox) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(rd) = fs::read_dir(md.join(sub)) {
                out.extend(rd.filter_map(Result::ok).map(|e| e.path()));
            }
        }
        out.sort();
        out
    }

    /// Waits until `mailbox` holds at least `count` messages and returns their raw bytes
    /// (as delivered, with the trace headers Exim prepends).
    pub fn wait_for_messages(
        &self,
        mailbox: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<Vec<u8>>, HarnessError> {
        let start = Instant::now();
        loop {
            let files = self.messages(mailbox);
            if files.len() >= count {
                return files
                    .iter()
                    .map(|p| fs::read(p).map_err(io_err(format!("read {}", p.display()))))
                    .collect();
            }
            if start.elapsed() > timeout {
                return Err(HarnessError::DeliveryTimeout {
                    mailbox: mailbox.to_owned(),
                    wanted: count,
                    found: files.len(),
                    log: self.log(),
                });
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The number of messages waiting in Exim's queue (e.g. for a smarthost that is down).
    pub fn queue_len(&self) -> Result<usize, HarnessError> {
        let out = Command::new(EXIM)
            .arg("-C")
            .arg(&self.config)
            .arg("-bpc")
            .output()
            .map_err(io_err("run exim -bpc"))?;
        String::from_utf8_lossy(&out.stdout).trim().parse().map_err(|_| {
            HarnessError::Config(format!(
                "exim -bpc printed {:?}",
                String::from_utf8_lossy(&out.stdout)
            ))
        })
    }

    /// Exim's output and logs (main, panic, reject), for assertions and error messages.
    pub fn log(&self) -> String {
        let root = self.dir.path();
        process::read_logs(&[
            root.join("exim.out"),
            root.join("log/mainlog"),
            root.join("log/paniclog"),
            root.join("log/rejectlog"),
        ])
    }

    /// Stops the server now (the directory stays until drop), e.g. to test "server down".
    pub fn stop(&mut self) {
        self.process.stop();
    }
}

/// The whole `-C` configuration: one Exim section after the other.
fn render_config(
    cfg: &EximConfig<'_>,
    root: &Path,
    port: u16,
    tls_port: Option<u16>,
    uid: u32,
    gid: u32,
) -> String {
    let mut c = main_section(cfg, root, port, tls_port);
    acl_section(&mut c, cfg);
    routers_section(&mut c, cfg);
    transports_section(&mut c, cfg, root, uid, gid);
    c.push_str("\nbegin retry\n* * F,1h,1s\n");
    if let Some((user, password)) = cfg.auth {
        let template = "
begin authenticators
plain_server:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = ${if and {{eq{$auth2}{@USER@}}{eq{$auth3}{@PASS@}}}}
  server_set_id = $auth2
login_server:
  driver = plaintext
  public_name = LOGIN
  server_prompts = Username:: : Password::
  server_condition = ${if and {{eq{$auth1}{@USER@}}{eq{$auth2}{@PASS@}}}}
  server_set_id = $auth1
";
        c.push_str(&template.replace("@USER@", user).replace("@PASS@", password));
    }
    c
}

/// The main section: paths under `root`, ports, size limit, TLS.
fn main_section(cfg: &EximConfig<'_>, root: &Path, port: u16, tls_port: Option<u16>) -> String {
    let root = root.display();
    let mut c = String::new();
    let ports = match tls_port {
        Some(t) => format!("{port} : {t}"),
        None => port.to_string(),
    };
    let _ = write!(
        c,
        "\
primary_hostname = mx.test
qualify_domain = mx.test
# The test runs as root; staying root lets Exim re-exec itself with this -C file.
exim_user = root
exim_group = root
spool_directory = {root}/spool
log_file_path = {root}/log/%slog
pid_file_path = {root}/exim.pid
local_interfaces = <; 127.0.0.1
daemon_smtp_ports = {ports}
host_lookup =
rfc1413_hosts =
rfc1413_query_timeout = 0s
keep_environment =
smtp_accept_max = 100
timeout_frozen_after = 1h
ignore_bounce_errors_after = 0s
acl_smtp_rcpt = acl_rcpt
"
    );
    if let Some(limit) = cfg.message_size_limit {
        let _ = writeln!(c, "message_size_limit = {limit}");
    }
    match (&cfg.tls, tls_port) {
        (Some(tls), Some(tp)) => {
            let _ = write!(
                c,
                "tls_advertise_hosts = *\ntls_certificate = {}\ntls_privatekey = {}\ntls_on_connect_ports = {tp}\n",
                tls.cert.display(),
                tls.key.display()
            );
        }
        _ => c.push_str("tls_advertise_hosts =\n"),
    }
    c
}

/// `acl_rcpt`: authentication when asked, deferred and accepted local parts, relay or refuse.
fn acl_section(c: &mut String, cfg: &EximConfig<'_>) {
    let locals = cfg.mailboxes.join(" : ");
    c.push_str("\nbegin acl\nacl_rcpt:\n");
    if cfg.auth.is_some() {
        c.push_str("  deny !authenticated = *\n       message = authentication required\n");
    }
    if !cfg.defer_local_parts.is_empty() {
        let _ = writeln!(
            c,
            "  defer local_parts = {}\n        message = try again later",
            cfg.defer_local_parts.join(" : ")
        );
    }
    if !cfg.mailboxes.is_empty() {
        let _ = writeln!(c, "  accept local_parts = {locals}");
    }
    if cfg.smarthost.is_some() {
        c.push_str("  accept\n");
    } else {
        c.push_str("  deny message = unknown mailbox\n");
    }
}

/// Local Maildir delivery of the test mailboxes, and the smarthost when there is one.
fn routers_section(c: &mut String, cfg: &EximConfig<'_>) {
    let locals = cfg.mailboxes.join(" : ");
    c.push_str("\nbegin routers\n");
    if !cfg.mailboxes.is_empty() {
        let _ = write!(
            c,
            "maildir:\n  driver = accept\n  local_parts = {locals}\n  transport = maildir_delivery\n"
        );
    }
    if cfg.smarthost.is_some() {
        c.push_str(
            "smarthost:\n  driver = manualroute\n  route_list = * 127.0.0.1\n  transport = relay_smtp\n  self = send\n  no_more\n",
        );
    }
}

/// Maildir delivery under `root` as `uid:gid`, and the relay to the smarthost when there is one.
fn transports_section(c: &mut String, cfg: &EximConfig<'_>, root: &Path, uid: u32, gid: u32) {
    let root = root.display();
    c.push_str("\nbegin transports\n");
    let _ = write!(
        c,
        "\
maildir_delivery:
  driver = appendfile
  directory = {root}/maildirs/${{local_part_data}}/Maildir
  maildir_format
  create_directory
  directory_mode = 0755
  mode = 0644
  user = {uid}
  group = {gid}
  return_path_add
"
    );
    if let Some(sh) = cfg.smarthost {
        let _ = write!(
            c,
            "relay_smtp:\n  driver = smtp\n  port = {}\n  allow_localhost\n  hosts_avoid_tls = *\n  hosts_override\n  hosts = {}\n  user = {uid}\n  group = {gid}\n",
            sh.port(),
            sh.ip()
        );
    }
}
