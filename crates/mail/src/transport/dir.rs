//! The directory backend: each message an `.eml` file next to its `.envelope.json`.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{SendError, SendOk, SmtpEnvelope, Transport};

/// Writes each message as a `.eml` file in a directory (and its envelope next to it as
/// `.envelope.json`), never overwriting. Each file is written under a temporary name, synced and
/// renamed, so a reader never sees half a message; the envelope is placed first, so a reader
/// that sees a `.eml` also sees its envelope; the directory is synced before `send` returns, so
/// a message reported written survives a power cut. What a killed writer left (hidden `.tmp`
/// files, an envelope without its message) is removed when the next transport opens the
/// directory.
#[derive(Debug)]
pub struct DirTransport {
    dir: PathBuf,
    seq: AtomicU64,
}

impl DirTransport {
    /// Writes into `dir`, created if missing, after removing what killed writers left there.
    pub fn new(dir: impl Into<PathBuf>) -> Result<DirTransport, SendError> {
        let dir = dir.into();
        crate::fsx::create_data_dir_all(&dir).map_err(|e| {
            SendError::permanent(format!("create output directory {}", dir.display()), None, None)
                .with_source(e)
        })?;
        let removed = remove_leftovers(&dir).map_err(|e| {
            SendError::permanent(format!("clean output directory {}", dir.display()), None, None)
                .with_source(e)
        })?;
        if removed > 0 {
            tracing::warn!(dir = %dir.display(), removed, "removed files left by a killed writer");
        }
        Ok(DirTransport {
            dir,
            seq: AtomicU64::new(0),
        })
    }

    /// The output directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `bytes` as `<stem>.<ext>`: a hidden temporary name, synced, then renamed into
    /// place without replacing anything (`RENAME_NOREPLACE`; a hard link where the file system
    /// lacks it). The directory itself is synced by the caller once both files are in place.
    fn write_new(&self, stem: &str, ext: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
        let tmp = self.dir.join(format!(".{stem}.{ext}.tmp"));
        let path = self.dir.join(format!("{stem}.{ext}"));
        let mut f = crate::fsx::create_new_data_file(&tmp)?;
        let written = f.write_all(bytes).and_then(|()| f.sync_all());
        drop(f);
        let placed = written.and_then(|()| crate::fsx::place_no_replace(&tmp, &path));
        if placed.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        placed.map(|()| path)
    }
}

impl Transport for DirTransport {
    fn send(&self, envelope: &SmtpEnvelope, raw: &[u8]) -> Result<SendOk, SendError> {
        let now = time::OffsetDateTime::now_utc();
        let stamp = format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        );
        let pid = std::process::id();
        let mut last_err = None;
        for _ in 0..1000 {
            let n = self.seq.fetch_add(1, Ordering::Relaxed);
            let stem = format!("{stamp}-{pid}-{n:06}");
            // The envelope first: a `.eml` in place always has its envelope next to it. A kill
            // between the two leaves an envelope alone, removed by the next `new`.
            let env = serde_json::to_vec_pretty(envelope).unwrap_or_default();
            match self.write_new(&stem, "envelope.json", &env) {
                Ok(env_path) => {
                    let path = self.write_new(&stem, "eml", raw).map_err(|e| {
                        let _ = fs::remove_file(&env_path);
                        SendError::transient(
                            format!("write message next to {}", env_path.display()),
                            None,
                            None,
                        )
                        .with_source(e)
                    })?;
                    crate::fsx::sync_dir(&self.dir).map_err(|e| {
                        SendError::transient(format!("sync {}", self.dir.display()), None, None)
                            .with_source(e)
                    })?;
                    return Ok(SendOk {
                        code: 0,
                        answer: format!("written to {}", path.display()),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last_err = Some(e),
                Err(e) => {
                    return Err(SendError::transient(
                        format!("write into {}", self.dir.display()),
                        None,
                        None,
                    )
                    .with_source(e));
                }
            }
        }
        Err(
            SendError::transient(format!("no free file name in {}", self.dir.display()), None, None)
                .with_source(last_err.unwrap_or_else(|| std::io::Error::other("name collision"))),
        )
    }
}

/// The writer's process id in a `DirTransport` file name (`[.]<stamp>-<pid>-<seq>.<ext>[.tmp]`).
fn writer_pid(name: &str) -> Option<u32> {
    let stem = name.trim_start_matches('.').split('.').next()?;
    let mut parts = stem.split('-');
    let (_stamp, pid, _seq) = (parts.next()?, parts.next()?, parts.next()?);
    pid.parse().ok()
}

/// Whether process `pid` is running (Linux: its `/proc` entry exists).
fn process_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Removes, among the files of writers no longer running, hidden temporaries and `.eml` /
/// `.envelope.json` files missing their other half (never reported written). Files of running
/// writers, this process included, are left alone. Returns how many files were removed.
fn remove_leftovers(dir: &Path) -> std::io::Result<usize> {
    let names: std::collections::HashSet<String> = fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    let me = std::process::id();
    let mut removed = 0;
    for name in &names {
        let Some(pid) = writer_pid(name) else { continue };
        if pid == me || process_alive(pid) {
            continue;
        }
        let orphan = if name.starts_with('.') {
            name.ends_with(".tmp")
        } else if let Some(stem) = name.strip_suffix(".envelope.json") {
            !names.contains(&format!("{stem}.eml"))
        } else if let Some(stem) = name.strip_suffix(".eml") {
            !names.contains(&format!("{stem}.envelope.json"))
        } else {
            false
        };
        if orphan {
            fs::remove_file(dir.join(name))?;
            removed += 1;
        }
    }
    if removed > 0 {
        crate::fsx::sync_dir(dir)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_transport_writes_exact_bytes_and_never_overwrites() {
        let d = tempfile::tempdir().unwrap();
        let t = DirTransport::new(d.path().join("out")).unwrap();
        let env = SmtpEnvelope::new("ps@ps.test", "oct@oct.test");
        let raw = b"Subject: a\r\n\r\nline\r\n.\r\n".to_vec();
        t.send(&env, &raw).unwrap();
        t.send(&env, &raw).unwrap();
        let mut emls: Vec<_> = fs::read_dir(t.dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        emls.sort();
        assert_eq!(emls.len(), 2);
        for p in &emls {
            assert_eq!(fs::read(p).unwrap(), raw);
            let env_path = p.with_extension("envelope.json");
            let back: SmtpEnvelope = serde_json::from_slice(&fs::read(env_path).unwrap()).unwrap();
            assert_eq!(back, env);
        }
        // No temporary file left behind.
        assert_eq!(fs::read_dir(t.dir()).unwrap().count(), 4);
        // Owner only, whatever the umask: the messages hold claims.
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(t.dir()), 0o700);
        for e in fs::read_dir(t.dir()).unwrap() {
            assert_eq!(mode(&e.unwrap().path()), 0o600);
        }
    }

    #[test]
    fn leftovers_of_a_killed_writer_are_removed_at_start() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        fs::create_dir_all(&out).unwrap();
        // pid 999999999 is above any pid_max: that writer is not running.
        let dead = "20261202T101010-999999999";
        let me = format!("20261202T101010-{}", std::process::id());
        let leftovers = [
            format!(".{dead}-000001.eml.tmp"),
            format!(".{dead}-000002.envelope.json.tmp"),
            format!("{dead}-000003.envelope.json"),
            format!("{dead}-000004.eml"),
        ];
        let kept = [
            format!("{dead}-000005.eml"),
            format!("{dead}-000005.envelope.json"),
            format!(".{me}-000006.eml.tmp"),
            format!("{me}-000007.envelope.json"),
            "notes.txt".to_owned(),
        ];
        for name in leftovers.iter().chain(kept.iter()) {
            fs::write(out.join(name), b"x").unwrap();
        }
        let t = DirTransport::new(&out).unwrap();
        let mut left: Vec<String> = fs::read_dir(t.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        let mut want = kept.to_vec();
        want.sort();
        assert_eq!(left, want);
    }
}
