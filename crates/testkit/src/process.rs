//! Spawning a server in its own process group, waiting for its port, killing it.

use std::fs;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{HarnessError, io_err};

/// How long a server gets to start listening.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A free TCP port on 127.0.0.1, as picked by the kernel.
///
/// The port is released before it is returned, so another process could take it in between; the
/// servers' start-up retries with a new port when that happens.
pub fn free_port() -> Result<u16, HarnessError> {
    let l = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .map_err(io_err("bind an ephemeral port"))?;
    let port = l.local_addr().map_err(io_err("read an ephemeral port"))?.port();
    Ok(port)
}

/// The uid and gid of a non-root user to deliver mail as.
pub(crate) fn delivery_user() -> Result<(u32, u32), HarnessError> {
    const USER: &str = "nobody";
    let passwd = fs::read_to_string("/etc/passwd").map_err(io_err("read /etc/passwd"))?;
    for line in passwd.lines() {
        let mut f = line.split(':');
        if f.next() == Some(USER) {
            let _pw = f.next();
            let uid = f.next().and_then(|s| s.parse().ok());
            let gid = f.next().and_then(|s| s.parse().ok());
            if let (Some(uid), Some(gid)) = (uid, gid) {
                return Ok((uid, gid));
            }
        }
    }
    Err(HarnessError::MissingUser(USER))
}

pub(crate) fn require_binary(path: &Path, packages: &'static str) -> Result<(), HarnessError> {
    if path.is_file() {
        Ok(())
    } else {
        Err(HarnessError::MissingBinary {
            binary: path.to_owned(),
            packages,
        })
    }
}

/// A running server process (leader of its own process group).
pub(crate) struct ServerProcess {
    child: Child,
}

impl ServerProcess {
    /// Spawns `cmd` in a new process group, stdout and stderr to `out`.
    pub(crate) fn spawn(mut cmd: Command, out: &Path) -> Result<ServerProcess, HarnessError> {
        let f = fs::File::create(out).map_err(io_err(format!("create {}", out.display())))?;
        let f2 = f.try_clone().map_err(io_err("dup output file"))?;
        cmd.stdin(Stdio::null()).stdout(f).stderr(f2).process_group(0);
        let child = cmd
            .spawn()
            .map_err(io_err(format!("spawn {:?}", cmd.get_program())))?;
        Ok(ServerProcess { child })
    }

    /// Polls `127.0.0.1:port` until it accepts a connection; fails early if the process exits.
    /// `log` reads the server's logs for the error message.
    pub(crate) fn wait_ready(
        &mut self,
        server: &'static str,
        port: u16,
        log: &dyn Fn() -> String,
    ) -> Result<(), HarnessError> {
        let start = Instant::now();
        let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(HarnessError::NotReady {
                    server,
                    port,
                    reason: format!("process exited with {status}"),
                    log: log(),
                });
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if start.elapsed() > READY_TIMEOUT {
                return Err(HarnessError::NotReady {
                    server,
                    port,
                    reason: format!("no connection accepted within {READY_TIMEOUT:?}"),
                    log: log(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the whole process group (the server and every child it forked) and reaps the leader.
    pub(crate) fn stop(&mut self) {
        let pgid = self.child.id();
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-s", "TERM", "--", &format!("-{pgid}")])
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Children may outlive the leader; KILL whatever is left of the group.
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{pgid}")])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads every file named in `paths` that exists, each under a header line.
pub(crate) fn read_logs(paths: &[PathBuf]) -> String {
    let mut out = String::new();
    for p in paths {
        if let Ok(s) = fs::read(p) {
            out.push_str(&format!("== {}\n", p.display()));
            out.push_str(&String::from_utf8_lossy(&s));
        }
    }
    out
}

/// Creates `dir` (and parents) with `mode`, owned by `uid:gid`.
pub(crate) fn mkdir_owned(dir: &Path, mode: u32, uid: u32, gid: u32) -> Result<(), HarnessError> {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(dir).map_err(io_err(format!("create {}", dir.display())))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
        .map_err(io_err(format!("chmod {}", dir.display())))?;
    std::os::unix::fs::chown(dir, Some(uid), Some(gid))
        .map_err(io_err(format!("chown {}", dir.display())))?;
    Ok(())
}

/// Whether a server's log says its port was taken by someone else (start again on another port).
pub(crate) fn port_taken(log: &str) -> bool {
    log.contains("Address already in use") || log.contains("address already in use")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_names_the_debian_packages() {
        let e = require_binary(Path::new("/nonexistent/exim4"), "exim4-daemon-light").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("/nonexistent/exim4"), "{msg}");
        assert!(msg.contains("exim4-daemon-light"), "{msg}");
        assert!(msg.contains("scripts/setup.sh"), "{msg}");
    }

    #[test]
    fn port_conflicts_are_recognised_in_logs() {
        assert!(port_taken("bind failed: Address already in use"));
        assert!(!port_taken("daemon started"));
    }
}
