//! A private Dovecot instance: POP3 on loopback over given Maildirs.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;

use crate::process::{self, ServerProcess};
use crate::{HarnessError, TlsFiles, io_err};

const DOVECOT: &str = "/usr/sbin/dovecot";
const DOVECOT_PACKAGES: &str = "dovecot-core dovecot-pop3d";
const POP3_BINARY: &str = "/usr/lib/dovecot/pop3";

/// A running Dovecot (POP3 only); killed and its directory removed on drop.
pub struct Dovecot {
    process: ServerProcess,
    port: u16,
    tls_port: Option<u16>,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for Dovecot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dovecot")
            .field("port", &self.port)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

fn valid_field(s: &str) -> bool {
    !s.is_empty() && !s.bytes().any(|b| b == b':' || b == b'\n' || b == b'\r' || b == 0)
}

impl Dovecot {
    /// Starts Dovecot serving POP3 on a free loopback port, one user per `(user, password,
    /// maildir)`; `maildir` is the directory holding `new/ cur/ tmp/` (e.g. [`crate::Exim::maildir`]).
    ///
    /// Authentication: USER/PASS, AUTH PLAIN and APOP, without TLS (loopback only).
    pub fn start(users: &[(&str, &str, &Path)]) -> Result<Dovecot, HarnessError> {
        Self::start_inner(users, None)
    }

    /// Like [`Dovecot::start`], with TLS: STLS offered on [`Dovecot::port`] and implicit TLS
    /// (POP3S) on [`Dovecot::tls_port`].
    pub fn start_with_tls(users: &[(&str, &str, &Path)], tls: &TlsFiles) -> Result<Dovecot, HarnessError> {
        Self::start_inner(users, Some(tls))
    }

    fn start_inner(users: &[(&str, &str, &Path)], tls: Option<&TlsFiles>) -> Result<Dovecot, HarnessError> {
        process::require_binary(Path::new(DOVECOT), DOVECOT_PACKAGES)?;
        process::require_binary(Path::new(POP3_BINARY), DOVECOT_PACKAGES)?;
        for (user, password, maildir) in users {
            if !valid_field(user) || !valid_field(password) || !valid_field(&maildir.display().to_string()) {
                return Err(HarnessError::Config(format!(
                    "POP3 user {user:?}: user, password and maildir must be non-empty without ':' or newlines"
                )));
            }
        }
        let mut last = None;
        for _attempt in 0..5 {
            match Self::start_once(users, tls) {
                Ok(d) => return Ok(d),
                Err(HarnessError::NotReady { log, .. }) if process::port_taken(&log) => last = Some(log),
                Err(e) => return Err(e),
            }
        }
        Err(HarnessError::NotReady {
            server: "dovecot",
            port: 0,
            reason: "every port tried was taken".into(),
            log: last.unwrap_or_default(),
        })
    }

    fn start_once(users: &[(&str, &str, &Path)], tls: Option<&TlsFiles>) -> Result<Dovecot, HarnessError> {
        let (uid, gid) = process::delivery_user()?;
        let dir = tempfile::Builder::new()
            .prefix("svoct-dovecot-")
            .tempdir()
            .map_err(io_err("create a temporary directory"))?;
        let root = dir.path().to_owned();
        process::mkdir_owned(&root, 0o755, 0, 0)?;
        let mut passwd = String::new();
        for (user, password, maildir) in users {
            let home = maildir.parent().unwrap_or(maildir);
            let _ = writeln!(
                passwd,
                "{user}:{{PLAIN}}{password}:{uid}:{gid}::{}::userdb_mail=maildir:{}",
                home.display(),
                maildir.display()
            );
        }
        let passwd_path = root.join("passwd");
        fs::write(&passwd_path, passwd).map_err(io_err("write the passwd file"))?;
        let port = process::free_port()?;
        let tls_port = match tls {
            Some(_) => Some(process::free_port()?),
            None => None,
        };
        let (ssl, pop3s) = match (tls, tls_port) {
            (Some(t), Some(tp)) => (
                format!(
                    "ssl = yes\nssl_cert = <{}\nssl_key = <{}\n",
                    t.cert.display(),
                    t.key.display()
                ),
                format!(
                    "  inet_listener pop3s {{\n    address = 127.0.0.1\n    port = {tp}\n    ssl = yes\n  }}\n"
                ),
            ),
            _ => ("ssl = no\n".to_owned(), String::new()),
        };
        let r = root.display();
        let conf = format!(
            "\
base_dir = {r}/run
state_dir = {r}/state
log_path = {r}/dovecot.log
listen = 127.0.0.1
protocols = pop3
{ssl}disable_plaintext_auth = no
auth_mechanisms = plain apop
# Tests assert refusals; do not wait the default 2 s before answering them.
auth_failure_delay = 0
default_internal_user = nobody
default_login_user = nobody
first_valid_uid = 1
mail_location = maildir:~/Maildir
pop3_uidl_format = %08Xu%08Xv
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {r}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {r}/passwd
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {port}
  }}
{pop3s}}}
"
        );
        let conf_path = root.join("dovecot.conf");
        fs::write(&conf_path, conf).map_err(io_err("write dovecot.conf"))?;
        let mut cmd = Command::new(DOVECOT);
        cmd.arg("-F").arg("-c").arg(&conf_path);
        let out = root.join("dovecot.out");
        let mut process = ServerProcess::spawn(cmd, &out)?;
        let logs = [out, root.join("dovecot.log")];
        process.wait_ready("dovecot", port, &|| process::read_logs(&logs))?;
        Ok(Dovecot {
            process,
            port,
            tls_port,
            dir,
        })
    }

    /// The POP3 port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The POP3S (implicit TLS) port, when started with TLS.
    pub fn tls_port(&self) -> Option<u16> {
        self.tls_port
    }

    /// The POP3 address, `127.0.0.1:port`.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Dovecot's output and log, for assertions and error messages.
    pub fn log(&self) -> String {
        let root = self.dir.path();
        process::read_logs(&[root.join("dovecot.out"), root.join("dovecot.log")])
    }

    /// Stops the server now (the directory stays until drop), e.g. to test "server down".
    pub fn stop(&mut self) {
        self.process.stop();
    }
}
