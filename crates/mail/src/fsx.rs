//! File-system steps shared by the writers of this crate (Maildir, `.eml` directory).

use std::fs;
use std::path::Path;

/// Moves `from` to `to` unless `to` exists (then `AlreadyExists`, and `from` stays).
pub(crate) fn place_no_replace(from: &Path, to: &Path) -> std::io::Result<()> {
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
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}
