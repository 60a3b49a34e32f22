//! Whether a concentrator is running on a state database: a lock file the service holds.
//!
//! `svoct oct serve` takes an exclusive `flock` on `<paths.state>.lock` (mode 0600, holding its
//! process id) for as long as it runs; the kernel drops the lock when the process ends, however
//! it ends, so a crash leaves no stale "running" state. `svoct oct status` probes the lock
//! without blocking. A second `serve` on the same state database is refused.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why the instance lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    /// Another process holds the lock.
    #[error("a concentrator is already running on this state database{} (lock {path})", pid_text(*.pid))]
    AlreadyRunning { path: PathBuf, pid: Option<u32> },
    /// The lock file could not be created, read or written.
    #[error("instance lock {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn pid_text(pid: Option<u32>) -> String {
    pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
}

/// The lock file of the service using the state database `state`: `<state>.lock`.
pub fn lock_path(state: &Path) -> PathBuf {
    let mut name = state.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Held by a running service; dropping it (or the process ending) releases the lock. The file
/// stays: removing it could let a second service lock a new file while a first still holds the
/// old one.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    path: PathBuf,
}

impl InstanceLock {
    /// Takes the lock of the service using `state`, and writes our process id in it.
    pub fn acquire(state: &Path) -> Result<InstanceLock, InstanceError> {
        let path = lock_path(state);
        let io = |source| InstanceError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            svoct_mail::fsx::create_data_dir_all(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(svoct_mail::fsx::DATA_FILE_MODE)
            .open(&path)
            .map_err(io)?;
        // A lock file left by hand with group or other bits is closed too.
        svoct_mail::fsx::restrict_file(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(InstanceError::AlreadyRunning {
                    pid: read_pid(&mut file),
                    path,
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(InstanceLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What the lock says about the service using a state database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "service", rename_all = "lowercase")]
pub enum Liveness {
    /// A process holds the lock (its id, when the file could be read).
    Running { pid: Option<u32> },
    /// Nobody holds it (or there is no lock file: the service never ran here).
    Stopped,
}

/// Probes the lock of the service using `state` without blocking and without creating anything.
pub fn probe(state: &Path) -> Result<Liveness, InstanceError> {
    let path = lock_path(state);
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Liveness::Stopped),
        Err(source) => return Err(InstanceError::Io { path, source }),
    };
    // A shared lock is granted unless a service holds the exclusive one; it is released when
    // `file` is dropped, at once.
    match file.try_lock_shared() {
        Ok(()) => Ok(Liveness::Stopped),
        Err(TryLockError::WouldBlock) => Ok(Liveness::Running {
            pid: read_pid(&mut file),
        }),
        Err(TryLockError::Error(source)) => Err(InstanceError::Io { path, source }),
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

// --- Reload: the signal to a running service and its acknowledgement (issue 14 point 3).

/// The file in which a running service acknowledges each reload: `<state>.reload`, 0600,
/// replaced whole (written aside, then renamed) so a reader never sees half of it.
pub fn reload_ack_path(state: &Path) -> PathBuf {
    let mut name = state.as_os_str().to_owned();
    name.push(".reload");
    PathBuf::from(name)
}

/// What a service wrote after its last reload attempt.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReloadAck {
    /// The service's process id: an acknowledgement left by an earlier run is not taken for
    /// this one's.
    pub pid: u32,
    /// Reload attempts of this process so far (1 for the first).
    pub generation: u64,
    /// Whether the new configuration is in force.
    pub ok: bool,
    /// One line: the summary, or why the running configuration was kept.
    pub message: String,
}

/// Writes the acknowledgement of a reload (done by the service).
pub fn write_reload_ack(state: &Path, ack: &ReloadAck) -> Result<(), InstanceError> {
    let path = reload_ack_path(state);
    let mut aside = path.as_os_str().to_owned();
    aside.push(".tmp");
    let aside = PathBuf::from(aside);
    let io = |source| InstanceError::Io {
        path: path.clone(),
        source,
    };
    let text = serde_json::to_vec(ack).map_err(|e| io(std::io::Error::other(e)))?;
    let mut file = svoct_mail::fsx::create_data_file(&aside).map_err(io)?;
    file.write_all(&text).map_err(io)?;
    // No fsync: the file only matters to a command waiting now, not after a crash.
    std::fs::rename(&aside, &path).map_err(io)
}

/// The last acknowledgement written for the service using `state`, if any and readable.
pub fn read_reload_ack(state: &Path) -> Option<ReloadAck> {
    let text = std::fs::read(reload_ack_path(state)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Sends SIGHUP to the service process `pid`: it reads its configuration file again.
pub fn request_reload(pid: u32) -> Result<(), std::io::Error> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| std::io::Error::other(format!("invalid process id {pid}")))?;
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).map_err(std::io::Error::from)
}

/// Waits until the service `pid` acknowledges a reload newer than `before` (what
/// [`read_reload_ack`] returned before the signal), polling every few milliseconds, at most
/// `limit`; `None` when it did not answer in time.
pub fn wait_reload_ack(
    state: &Path,
    pid: u32,
    before: Option<&ReloadAck>,
    limit: std::time::Duration,
) -> Option<ReloadAck> {
    let since = std::time::Instant::now();
    loop {
        if let Some(ack) = read_reload_ack(state) {
            let newer =
                ack.pid == pid && before.is_none_or(|b| b.pid != pid || ack.generation > b.generation);
            if newer {
                return Some(ack);
            }
        }
        if since.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_seen_and_refuses_a_second_holder() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("oct.sqlite");
        assert_eq!(probe(&state).unwrap(), Liveness::Stopped);
        assert!(!lock_path(&state).exists(), "probing creates nothing");
        let held = InstanceLock::acquire(&state).unwrap();
        let me = Some(std::process::id());
        assert_eq!(probe(&state).unwrap(), Liveness::Running { pid: me });
        match InstanceLock::acquire(&state) {
            Err(InstanceError::AlreadyRunning { pid, .. }) => assert_eq!(pid, me),
            other => panic!("second holder: {other:?}"),
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(held.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        drop(held);
        assert_eq!(probe(&state).unwrap(), Liveness::Stopped);
        InstanceLock::acquire(&state).expect("free again once released");
    }

    #[test]
    fn a_reload_is_acknowledged_only_by_a_newer_answer_of_the_same_process() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("oct.sqlite");
        let quick = std::time::Duration::ZERO;
        assert_eq!(read_reload_ack(&state), None);
        assert_eq!(wait_reload_ack(&state, 7, None, quick), None);
        let ack = |pid, generation| ReloadAck {
            pid,
            generation,
            ok: true,
            message: "summary".into(),
        };
        // Left by an earlier run (another pid): not this service's answer.
        write_reload_ack(&state, &ack(6, 9)).unwrap();
        assert_eq!(wait_reload_ack(&state, 7, None, quick), None);
        let before = read_reload_ack(&state);
        assert_eq!(before, Some(ack(6, 9)));
        write_reload_ack(&state, &ack(7, 1)).unwrap();
        assert_eq!(
            wait_reload_ack(&state, 7, before.as_ref(), quick),
            Some(ack(7, 1))
        );
        // Already seen: waiting for the next one.
        assert_eq!(wait_reload_ack(&state, 7, Some(&ack(7, 1)), quick), None);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(reload_ack_path(&state))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
}
