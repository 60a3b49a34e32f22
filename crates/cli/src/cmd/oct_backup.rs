//! `svoct oct backup` and `svoct oct restore`: move the concentrator's state to another machine
//! without stopping the service.
//!
//! The archive is a tar file (created 0600, never overwriting) holding:
//!
//! ```text
//! MANIFEST                       "svoct-oct-backup 1" and what the archive holds
//! spool/new/<id>                 every committed spool entry (immutable once in new/)
//! spool/quarantine/<id>[.reason] entries the spool could not read back, with their reason
//! state.sqlite                   a consistent snapshot of the state database (VACUUM INTO)
//! ```
//!
//! **Why this order is consistent.** The spool is copied *before* the database snapshot. The
//! pipeline commits "spool entry S processed" (with everything S produced) in one transaction,
//! and only then removes S from `new/`. So for every entry S:
//!
//! - S is in the copied spool and the snapshot has no row for S: it is processed after restore;
//! - S is in the copied spool and the snapshot says processed: after restore the worker sees
//!   `is_processed(S)` and only completes it (processing is keyed by the spool id: exactly once);
//! - S vanished from `new/` before or while the spool was copied: it was completed, so its commit
//!   came earlier still, and the snapshot, taken later, holds it and all it produced.
//!
//! The reverse order would lose a message processed between the snapshot and the copy (gone
//! from `new/`, unknown to the snapshot). A message accepted after its directory was listed is
//! not in the backup: the backup is the state at that point, like any backup. `tmp/` is never
//! copied: its files were never acknowledged to a client, which sends them again.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use svoct_mail::fsx;
use svoct_oct::config::Config;

use crate::CmdResult;

/// First line of the archive's MANIFEST; the version of this layout.
const MANIFEST_MAGIC: &str = "svoct-oct-backup 1";
/// The spool sub-directories copied, in this order.
const SPOOL_DIRS: [&str; 2] = ["new", "quarantine"];
/// The database's name inside the archive.
const STATE_NAME: &str = "state.sqlite";

type Error = Box<dyn std::error::Error + Send + Sync>;

fn at(op: &str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let what = format!("{op} {}", path.display());
    move |e| format!("{what}: {e}").into()
}

/// Writes the backup archive of the state and spool named by `config` to `out`.
pub fn backup(config: &Config, out: &Path) -> CmdResult {
    if !config.paths.state.exists() {
        return Err(format!(
            "no state database at {}: nothing to back up",
            config.paths.state.display()
        )
        .into());
    }
    let file = fsx::create_new_data_file(out).map_err(at("create", out))?;
    let result = write_archive(config, file, out);
    if result.is_err() {
        // A partial archive must not pass for a backup.
        let _ = fs::remove_file(out);
    }
    let (entries, db_bytes) = result?;
    println!(
        "backup written to {}: {entries} spool file(s), state database {db_bytes} bytes",
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn write_archive(config: &Config, file: fs::File, out: &Path) -> Result<(usize, u64), Error> {
    let mut tar = tar::Builder::new(file);
    let mut entries = 0;
    // Spool first, database second: see the module comment.
    for sub in SPOOL_DIRS {
        entries += append_spool_dir(&mut tar, &config.paths.spool.join(sub), sub)?;
    }
    let staging = staging_dir(out)?;
    let snapshot = staging.join(STATE_NAME);
    let db_bytes = snapshot_db(&config.paths.state, &snapshot).and_then(|()| {
        let file = fs::File::open(&snapshot).map_err(at("open", &snapshot))?;
        append(&mut tar, STATE_NAME, file)
    });
    let _ = fs::remove_dir_all(&staging);
    let db_bytes = db_bytes?;
    let manifest = format!("{MANIFEST_MAGIC}\nspool_files {entries}\nstate_bytes {db_bytes}\n");
    append_bytes(&mut tar, "MANIFEST", manifest.as_bytes())?;
    let file = tar.into_inner().map_err(at("write", out))?;
    file.sync_all().map_err(at("fsync", out))?;
    Ok((entries, db_bytes))
}

/// A 0700 directory next to the archive for the database snapshot, removed afterwards.
fn staging_dir(out: &Path) -> Result<PathBuf, Error> {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".staging-{}", std::process::id()));
    let dir = out.with_file_name(name);
    fs::create_dir(&dir).map_err(at("create directory", &dir))?;
    fsx::restrict_dir(&dir).map_err(at("restrict mode of", &dir))?;
    Ok(dir)
}

/// An online snapshot of the state database, made by the store (see
/// `svoct_store::oct::SqliteOctStore::snapshot`), restricted to its owner.
fn snapshot_db(state: &Path, to: &Path) -> Result<(), Error> {
    svoct_oct::state::State::snapshot(state, to)
        .map_err(|e| format!("snapshot of {}: {e}", state.display()))?;
    fsx::restrict_file(to).map_err(at("restrict mode of", to))?;
    Ok(())
}

/// Appends every entry file of a spool sub-directory; an entry completed while the directory is
/// read (gone) is skipped: the database snapshot, taken later, holds its outcome.
fn append_spool_dir(tar: &mut tar::Builder<fs::File>, dir: &Path, sub: &str) -> Result<usize, Error> {
    let listing = match fs::read_dir(dir) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(at("read directory", dir)(e)),
    };
    let mut names: Vec<String> = Vec::new();
    for entry in listing {
        let entry = entry.map_err(at("read directory", dir))?;
        match entry.file_name().to_str() {
            Some(n) if spool_name_ok(sub, n) => names.push(n.to_owned()),
            _ => tracing::warn!(file = ?entry.path(), "backup: skipping a foreign file"),
        }
    }
    names.sort();
    let mut copied = 0;
    for name in names {
        let path = dir.join(&name);
        match fs::File::open(&path) {
            Ok(file) => {
                append(tar, &format!("spool/{sub}/{name}"), file)?;
                copied += 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(at("read", &path)(e)),
        }
    }
    Ok(copied)
}

/// A spool entry name: 16 lower-case hex digits, plus `.reason` in `quarantine/`.
fn spool_name_ok(sub: &str, name: &str) -> bool {
    let id = match (sub, name.strip_suffix(".reason")) {
        ("quarantine", Some(id)) => id,
        _ => name,
    };
    id.len() == 16 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Appends a file, streamed (a database of gigabytes is never held in memory); its size is
/// fixed: spool entries are immutable and the snapshot is ours. Returns the bytes written.
fn append(tar: &mut tar::Builder<fs::File>, name: &str, file: fs::File) -> Result<u64, Error> {
    let len = file
        .metadata()
        .map_err(|e| format!("read archive entry {name}: {e}"))?
        .len();
    let mut header = tar::Header::new_gnu();
    header.set_size(len);
    header.set_mode(0o600);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mtime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    );
    // `take` keeps the entry at its declared size even if the file grew meanwhile.
    tar.append_data(&mut header, name, file.take(len))
        .map_err(|e| format!("write archive entry {name}: {e}"))?;
    Ok(len)
}

fn append_bytes(tar: &mut tar::Builder<fs::File>, name: &str, bytes: &[u8]) -> Result<(), Error> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o600);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, name, bytes)
        .map_err(|e| format!("write archive entry {name}: {e}"))?;
    Ok(())
}

/// Where a spool entry of the archive goes under the configured spool; `None` for a name this
/// version never writes (the archive is refused: it is not ours or was altered).
fn destination(config: &Config, name: &str) -> Option<PathBuf> {
    let rest = name.strip_prefix("spool/")?;
    let (sub, file) = rest.split_once('/')?;
    (SPOOL_DIRS.contains(&sub) && spool_name_ok(sub, file)).then(|| config.paths.spool.join(sub).join(file))
}

/// Restores an archive written by [`backup`] into the paths of `config`, which must not hold a
/// state database or a non-empty spool.
pub fn restore(config: &Config, archive: &Path) -> CmdResult {
    refuse_non_empty(config)?;
    let mut tar = tar::Archive::new(fs::File::open(archive).map_err(at("open", archive))?);
    for sub in SPOOL_DIRS.iter().chain(&["tmp"]) {
        let d = config.paths.spool.join(sub);
        fsx::create_data_dir_all(&d).map_err(at("create directory", &d))?;
        fsx::restrict_dir(&d).map_err(at("restrict mode of", &d))?;
    }
    fsx::restrict_dir(&config.paths.spool).map_err(at("restrict mode of", &config.paths.spool))?;
    let parent = config.paths.state.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent.filter(|p| !p.exists()) {
        fsx::create_data_dir_all(parent).map_err(at("create directory", parent))?;
    }
    // The database is staged beside its place and put there last, so a restore cut short
    // leaves no database: `serve` and `status` do not take a half-restored directory for a
    // working one.
    let mut staged = config.paths.state.clone().into_os_string();
    staged.push(".restoring");
    let staged = PathBuf::from(staged);
    let files = match extract(config, archive, &mut tar, &staged) {
        Ok(files) => files,
        Err(e) => {
            let _ = fs::remove_file(&staged);
            return Err(e);
        }
    };
    fsx::place_no_replace(&staged, &config.paths.state).map_err(at("place", &config.paths.state))?;
    for sub in SPOOL_DIRS {
        let d = config.paths.spool.join(sub);
        fsx::sync_dir(&d).map_err(at("fsync", &d))?;
    }
    println!(
        "restored {files} spool file(s) and the state database into {} and {}",
        config.paths.spool.display(),
        config.paths.state.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes the archive's spool entries in place and its database to `staged`, after checking
/// every name and type against the layout; the number of spool files.
fn extract(
    config: &Config,
    archive: &Path,
    tar: &mut tar::Archive<fs::File>,
    staged: &Path,
) -> Result<usize, Error> {
    let mut manifest = None;
    let mut has_state = false;
    let mut files = 0;
    for entry in tar.entries().map_err(at("read", archive))? {
        let mut entry = entry.map_err(at("read", archive))?;
        let name = entry
            .path()
            .map_err(at("read", archive))?
            .to_string_lossy()
            .into_owned();
        let foreign = |why: &str| -> Error {
            format!("{}: {why} {name:?}: not an svoct oct backup", archive.display()).into()
        };
        // Links and devices are never written by `backup`: refused, not followed.
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(foreign("entry of an unexpected type"));
        }
        if name == "MANIFEST" {
            let mut text = String::new();
            entry
                .by_ref()
                .take(4096)
                .read_to_string(&mut text)
                .map_err(at("read MANIFEST of", archive))?;
            manifest = Some(text);
        } else if name == STATE_NAME {
            write_new(&mut entry, staged)?;
            has_state = true;
        } else {
            let to = destination(config, &name).ok_or_else(|| foreign("unexpected entry"))?;
            write_new(&mut entry, &to)?;
            files += 1;
        }
    }
    check_manifest(manifest.as_deref(), files, archive)?;
    if !has_state {
        return Err(format!("{}: no state database in the archive", archive.display()).into());
    }
    Ok(files)
}

/// A restore never mixes two states: the database must be absent and the spool empty.
fn refuse_non_empty(config: &Config) -> Result<(), Error> {
    let state = &config.paths.state;
    if state.exists() {
        return Err(format!(
            "a state database already exists at {}: restore only into a fresh directory",
            state.display()
        )
        .into());
    }
    for sub in SPOOL_DIRS {
        let d = config.paths.spool.join(sub);
        if fs::read_dir(&d).map(|mut l| l.next().is_some()).unwrap_or(false) {
            return Err(format!(
                "the spool directory {} is not empty: restore only into a fresh directory",
                d.display()
            )
            .into());
        }
    }
    Ok(())
}

fn check_manifest(manifest: Option<&str>, files: usize, archive: &Path) -> Result<(), Error> {
    let text = manifest.unwrap_or_default();
    let mut lines = text.lines();
    if lines.next() != Some(MANIFEST_MAGIC) {
        return Err(format!(
            "{}: missing or unknown MANIFEST (expected {MANIFEST_MAGIC:?})",
            archive.display()
        )
        .into());
    }
    let declared = lines
        .find_map(|l| l.strip_prefix("spool_files "))
        .and_then(|n| n.parse::<usize>().ok());
    if declared != Some(files) {
        return Err(format!(
            "{}: the MANIFEST declares {declared:?} spool files, the archive holds {files}: \
             truncated or altered",
            archive.display()
        )
        .into());
    }
    Ok(())
}

/// Copies an archive entry into a new 0600 file, fsynced; an existing file is never replaced.
fn write_new(entry: &mut impl Read, to: &Path) -> Result<(), Error> {
    let mut file = fsx::create_new_data_file(to).map_err(at("create", to))?;
    std::io::copy(entry, &mut file).map_err(at("write", to))?;
    file.flush().map_err(at("write", to))?;
    file.sync_all().map_err(at("fsync", to))?;
    Ok(())
}
