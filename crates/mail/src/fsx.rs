//! File-system steps shared by every writer of the project's data (spool, state databases,
//! Maildirs, `.eml` directories, payload files).
//!
//! **Modes.** Data files hold claims with social security numbers: every data file is created
//! `0600` ([`DATA_FILE_MODE`]) and every data directory `0700` ([`DATA_DIR_MODE`]), whatever the
//! process umask (a umask only removes bits, so these modes survive the usual `022`). A writer
//! never relies on the umask: it goes through [`create_data_dir_all`], [`create_new_data_file`],
//! [`create_data_file`] or, for SQLite, [`prepare_db_file`].

use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of every data file: read and write by the owner only.
pub const DATA_FILE_MODE: u32 = 0o600;
/// Mode of every data directory: the owner only.
pub const DATA_DIR_MODE: u32 = 0o700;

/// Creates `dir` and its missing parents with mode `0700`. Directories that already exist keep
/// their mode (a parent such as `/var/lib` is not ours to change); see [`restrict_dir`].
pub fn create_data_dir_all(dir: &Path) -> std::io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DATA_DIR_MODE)
        .create(dir)
}

/// Removes the group and other bits of a directory the program owns entirely (a spool, a
/// Maildir), so that one created by an older version, under the default umask, is closed too.
pub fn restrict_dir(dir: &Path) -> std::io::Result<()> {
    restrict(dir, DATA_DIR_MODE)
}

/// Removes the group and other bits of an existing file (created by an older version).
pub fn restrict_file(path: &Path) -> std::io::Result<()> {
    restrict(path, DATA_FILE_MODE)
}

fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    let current = fs::metadata(path)?.permissions().mode() & 0o777;
    if current & 0o077 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(current & mode))?;
    }
    Ok(())
}

/// Creates a new data file (`0600`), failing with `AlreadyExists` if `path` exists.
pub fn create_new_data_file(path: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(DATA_FILE_MODE)
        .open(path)
}

/// Creates or truncates a data file; a new file gets `0600`, an existing one is restricted to it.
pub fn create_data_file(path: &Path) -> std::io::Result<fs::File> {
    let f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(DATA_FILE_MODE)
        .open(path)?;
    restrict_file(path)?;
    Ok(f)
}

/// Opens (creating it `0600` if missing) a file only used as an OS lock; never truncated.
pub fn open_lock_file(path: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(DATA_FILE_MODE)
        .open(path)
}

/// Makes a SQLite database file `0600` before SQLite opens it: its parent directory is created
/// `0700` when missing, the file is created empty `0600` when missing (SQLite then gives its
/// `-wal`, `-shm` and `-journal` files the same mode), and an existing database or side file
/// created by an older version with group or other bits is restricted.
pub fn prepare_db_file(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        create_data_dir_all(dir)?;
    }
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(DATA_FILE_MODE)
        .open(path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => restrict_file(path)?,
        Err(e) => return Err(e),
    }
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        match restrict_file(Path::new(&side)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Moves `from` to `to` unless `to` exists (then `AlreadyExists`, and `from` stays).
pub fn place_no_replace(from: &Path, to: &Path) -> std::io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    use rustix::io::Errno;
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(e) if e == Errno::INVAL || e == Errno::NOSYS || e == Errno::NOTSUP => {
            // The file system lacks RENAME_NOREPLACE; a hard link also refuses an existing target.
            fs::hard_link(from, to)?;
            fs::remove_file(from)
        }
        Err(e) => Err(e.into()),
    }
}

/// Makes the entries of `dir` durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_files_and_dirs_are_private_and_old_ones_are_restricted() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("a/b");
        create_data_dir_all(&dir).unwrap();
        assert_eq!(mode(&d.path().join("a")), 0o700);
        assert_eq!(mode(&dir), 0o700);
        let f = dir.join("f");
        create_new_data_file(&f).unwrap();
        assert_eq!(mode(&f), 0o600);
        let old = dir.join("old");
        fs::write(&old, b"x").unwrap();
        fs::set_permissions(&old, fs::Permissions::from_mode(0o644)).unwrap();
        create_data_file(&old).unwrap();
        assert_eq!(mode(&old), 0o600);
        let db = d.path().join("c/db.sqlite");
        prepare_db_file(&db).unwrap();
        assert_eq!((mode(&db), mode(&d.path().join("c"))), (0o600, 0o700));
        let wal = d.path().join("c/db.sqlite-wal");
        fs::write(&wal, b"").unwrap();
        fs::set_permissions(&wal, fs::Permissions::from_mode(0o664)).unwrap();
        prepare_db_file(&db).unwrap();
        assert_eq!(mode(&wal), 0o600);
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        restrict_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
    }
}
