//! A Maildir directory (`new/ cur/ tmp/`) as a [`Mailbox`], and an atomic writer.
//!
//! Where the PS's mail is delivered locally (or for the concentrator's own mailboxes), reading the
//! Maildir replaces POP3 with the same retrieval loop. Messages are identified by their unique
//! file name (without the `:2,flags` suffix), stable across sessions like a POP3 UIDL.
//!
//! Messages are returned with CRLF line ends, whatever the file holds (MTAs such as Exim store
//! LF), so the bytes equal what a POP3 server serves for the same file.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::pop3::Mailbox;

/// Why a Maildir operation failed.
#[derive(Debug, thiserror::Error)]
pub enum MaildirError {
    #[error("maildir {path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a Maildir (missing new/, cur/ or tmp/)")]
    NotAMaildir { path: PathBuf },
    #[error("maildir {path}: no message {uidl:?} in the last listing")]
    UnknownUidl { path: PathBuf, uidl: String },
    #[error("maildir message {uidl:?} is {size} bytes, over the {limit}-byte limit")]
    TooLarge { uidl: String, size: u64, limit: u64 },
}

/// An open Maildir.
#[derive(Debug)]
pub struct Maildir {
    root: PathBuf,
    max_message: u64,
    /// From the last `list`: uidl -> file.
    index: HashMap<String, PathBuf>,
    /// Files to remove at `finish`: (uidl, path at listing time).
    doomed: Vec<(String, PathBuf)>,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

fn io(path: &Path, what: &'static str) -> impl FnOnce(std::io::Error) -> MaildirError {
    let path = path.to_owned();
    move |source| MaildirError::Io { path, what, source }
}

/// `host` made fit for the host part of a Maildir name (no `/`, no `:`).
pub fn name_host(host: &str) -> String {
    host.chars()
        .map(|c| if c == '/' || c == ':' { '_' } else { c })
        .collect()
}

/// The host part of Maildir names, read once per process.
fn hostname() -> &'static str {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        let h = name_host(fs::read_to_string("/etc/hostname").unwrap_or_default().trim());
        if h.is_empty() { "localhost".into() } else { h }
    })
}

/// The unique part of a Maildir file name: everything before the `:2,` info.
fn uidl_of(file_name: &str) -> &str {
    file_name.split_once(':').map_or(file_name, |(u, _)| u)
}

/// Bare LF to CRLF; CRLF kept as is. A message that has no bare LF (the usual case: written by
/// an MTA in CRLF) is returned as it is, not copied.
fn to_crlf(raw: Vec<u8>) -> Vec<u8> {
    let bare = raw
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' && raw.get(i.wrapping_sub(1)) != Some(&b'\r'))
        .count();
    if bare == 0 {
        return raw;
    }
    let mut out = Vec::with_capacity(raw.len() + bare);
    let mut prev = 0u8;
    for b in raw {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

impl Maildir {
    /// Opens an existing Maildir. `max_message` bounds what [`Mailbox::fetch`] reads.
    pub fn open(root: impl Into<PathBuf>, max_message: u64) -> Result<Maildir, MaildirError> {
        let root = root.into();
        for sub in ["new", "cur", "tmp"] {
            if !root.join(sub).is_dir() {
                return Err(MaildirError::NotAMaildir { path: root });
            }
        }
        Ok(Maildir {
            root,
            max_message,
            index: HashMap::new(),
            doomed: Vec::new(),
        })
    }

    /// Creates the Maildir (and parents) if needed, then opens it.
    pub fn create(root: impl Into<PathBuf>, max_message: u64) -> Result<Maildir, MaildirError> {
        let root = root.into();
        for sub in ["new", "cur", "tmp"] {
            let d = root.join(sub);
            crate::fsx::create_data_dir_all(&d).map_err(io(&d, "create directory"))?;
        }
        Maildir::open(root, max_message)
    }

    /// The Maildir's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The current file of `uidl` in `new/` or `cur/`, whatever its flags.
    fn find(&self, uidl: &str) -> Option<PathBuf> {
        ["new", "cur"].iter().find_map(|sub| {
            fs::read_dir(self.root.join(sub))
                .ok()?
                .filter_map(Result::ok)
                .find_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    (uidl_of(&name) == uidl).then(|| e.path())
                })
        })
    }

    /// Delivers a message the Maildir way: written and synced in `tmp/`, then renamed into
    /// `new/` (atomic: readers never see a partial file), then `new/` synced. Returns the uidl.
    pub fn deliver(&self, raw: &[u8]) -> Result<String, MaildirError> {
        let now = time::OffsetDateTime::now_utc();
        let name = format!(
            "{}.M{}P{}Q{}.{}",
            now.unix_timestamp(),
            now.microsecond(),
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            hostname()
        );
        let tmp = self.root.join("tmp").join(&name);
        let dest = self.root.join("new").join(&name);
        let mut f = crate::fsx::create_new_data_file(&tmp).map_err(io(&tmp, "create"))?;
        f.write_all(raw).map_err(io(&tmp, "write"))?;
        f.sync_all().map_err(io(&tmp, "sync"))?;
        drop(f);
        fs::rename(&tmp, &dest).map_err(io(&dest, "rename into new/"))?;
        let new_dir = self.root.join("new");
        fs::File::open(&new_dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&new_dir, "sync directory"))?;
        Ok(name)
    }
}

impl Maildir {
    /// First step of a delivery under a name the caller chose (the unique part: no `/`, no
    /// `:`, not starting with `.`): writes the file into `tmp/`, not yet synced. Then
    /// [`Staged::sync`], [`Staged::place`] and, once for a group, [`Maildir::sync_new`]. Staging
    /// a group of messages, then syncing them, then placing them lets the file system write them
    /// together (one journal commit on a journalled file system instead of one per file). The
    /// name makes delivery idempotent: placing finds a message of that name already in `new/`
    /// (delivered before a crash, say) and writes nothing.
    pub fn stage(&self, unique: &str, raw: &[u8]) -> Result<Staged, MaildirError> {
        if unique.is_empty() || unique.starts_with('.') || unique.contains(['/', ':', '\0']) {
            return Err(MaildirError::Io {
                path: self.root.clone(),
                what: "deliver",
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("{unique:?} is not a Maildir unique name"),
                ),
            });
        }
        let tmp = self.root.join("tmp").join(unique);
        let dest = self.root.join("new").join(unique);
        // A file of this name left in tmp/ by a crash is ours: overwrite it.
        let mut file = crate::fsx::create_data_file(&tmp).map_err(io(&tmp, "create"))?;
        if let Err(e) = file.write_all(raw) {
            drop(file);
            let _ = fs::remove_file(&tmp);
            return Err(MaildirError::Io {
                path: tmp,
                what: "write",
                source: e,
            });
        }
        Ok(Staged { file, tmp, dest })
    }

    /// Makes the deliveries into `new/` durable.
    pub fn sync_new(&self) -> Result<(), MaildirError> {
        let new_dir = self.root.join("new");
        crate::fsx::sync_dir(&new_dir).map_err(io(&new_dir, "sync directory"))
    }
}

/// A message written into `tmp/` by [`Maildir::stage`], not yet in `new/`. Dropped without
/// [`Staged::place`], it stays in `tmp/` (Maildir readers ignore `tmp/`; the next delivery
/// under the same name overwrites it).
#[derive(Debug)]
pub struct Staged {
    file: fs::File,
    tmp: PathBuf,
    dest: PathBuf,
}

impl Staged {
    /// Makes the file's content durable.
    pub fn sync(&self) -> Result<(), MaildirError> {
        self.file.sync_all().map_err(io(&self.tmp, "sync"))
    }

    /// Moves the (synced) file into `new/`. `Ok(false)`: a message of that name was already
    /// there; it is kept and this copy removed.
    pub fn place(self) -> Result<bool, MaildirError> {
        let Staged { file, tmp, dest } = self;
        drop(file);
        match crate::fsx::place_no_replace(&tmp, &dest) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let _ = fs::remove_file(&tmp);
                Ok(false)
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(MaildirError::Io {
                    path: dest,
                    what: "rename into new/",
                    source: e,
                })
            }
        }
    }
}

/// The end of the header block (just after its blank line, CRLF or LF), searching from `from`.
fn header_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(p) = buf.get(i..)?.iter().position(|&b| b == b'\n') {
        let nl = i + p;
        match buf.get(nl + 1..nl + 3) {
            _ if buf.get(nl + 1) == Some(&b'\n') => return Some(nl + 2),
            Some(b"\r\n") => return Some(nl + 3),
            _ => i = nl + 1,
        }
    }
    None
}

/// Most bytes [`Mailbox::headers`] reads of a Maildir file.
pub const MAX_HEADER_BYTES: u64 = 1024 * 1024;

impl Maildir {
    /// Opens the file of a listed message. Another agent (a POP3 server setting flags) may
    /// have renamed it since `list`: then it is found again by its unique part.
    fn open_listed(&self, uidl: &str) -> Result<(fs::File, PathBuf), MaildirError> {
        let path = self.index.get(uidl).ok_or_else(|| MaildirError::UnknownUidl {
            path: self.root.clone(),
            uidl: uidl.to_owned(),
        })?;
        match fs::File::open(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match self.find(uidl) {
                Some(p) => Ok((fs::File::open(&p).map_err(io(&p, "open"))?, p)),
                None => Err(io(path, "open")(e)),
            },
            other => Ok((other.map_err(io(path, "open"))?, path.clone())),
        }
    }
}

impl Mailbox for Maildir {
    type Error = MaildirError;

    /// Messages of `new/` then `cur/`, each sorted by name (delivery time for standard names);
    /// sizes are the on-disk sizes.
    fn list(&mut self) -> Result<Vec<(String, u64)>, MaildirError> {
        self.index.clear();
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let dir = self.root.join(sub);
            let mut names = Vec::new();
            for entry in fs::read_dir(&dir).map_err(io(&dir, "list"))? {
                let entry = entry.map_err(io(&dir, "list"))?;
                let Ok(name) = entry.file_name().into_string() else {
                    continue; // not a Maildir name
                };
                if name.starts_with('.') {
                    continue;
                }
                let meta = entry.metadata().map_err(io(&entry.path(), "stat"))?;
                if meta.is_file() {
                    names.push((name, meta.len(), entry.path()));
                }
            }
            names.sort();
            for (name, size, path) in names {
                let uidl = uidl_of(&name).to_owned();
                if self.index.insert(uidl.clone(), path).is_none() {
                    out.push((uidl, size));
                }
            }
        }
        Ok(out)
    }

    fn fetch(&mut self, uidl: &str) -> Result<Vec<u8>, MaildirError> {
        let (f, path) = self.open_listed(uidl)?;
        let path = &path;
        // Sized from the file, so that a 48 MB message is not read into a 64 MiB buffer grown
        // by doubling; a file that grows meanwhile still reads whole.
        let size = f.metadata().map_or(0, |m| m.len()).min(self.max_message);
        let mut raw = Vec::with_capacity(usize::try_from(size).unwrap_or(0).saturating_add(1));
        // Read at most one byte past the limit to detect an oversized (or growing) file.
        f.take(self.max_message.saturating_add(1))
            .read_to_end(&mut raw)
            .map_err(io(path, "read"))?;
        let too_large = |size: u64| MaildirError::TooLarge {
            uidl: uidl.to_owned(),
            size,
            limit: self.max_message,
        };
        if raw.len() as u64 > self.max_message {
            return Err(too_large(raw.len() as u64));
        }
        let raw = to_crlf(raw);
        if raw.len() as u64 > self.max_message {
            return Err(too_large(raw.len() as u64));
        }
        Ok(raw)
    }

    /// The header block (up to and including the blank line), read from the file without
    /// renaming it: the message stays unread, in `new/` or `cur/` with its flags. At most
    /// [`MAX_HEADER_BYTES`] are read; a file with no blank line in them gives what was read.
    fn headers(&mut self, uidl: &str) -> Result<Vec<u8>, MaildirError> {
        let (f, path) = self.open_listed(uidl)?;
        let mut f = f.take(MAX_HEADER_BYTES);
        let mut head = Vec::new();
        let mut chunk = [0u8; 8192];
        // Read until the blank line: a message's body is not read at all.
        loop {
            let n = f.read(&mut chunk).map_err(io(&path, "read"))?;
            if n == 0 {
                break;
            }
            // The blank line may straddle two chunks: look again from 3 bytes back.
            let from = head.len().saturating_sub(3);
            head.extend_from_slice(chunk.get(..n).unwrap_or_default());
            if let Some(end) = header_end(&head, from) {
                head.truncate(end);
                break;
            }
        }
        Ok(to_crlf(head))
    }

    /// Marks for deletion; the file is removed at [`Mailbox::finish`].
    fn delete(&mut self, uidl: &str) -> Result<(), MaildirError> {
        let path = self.index.get(uidl).ok_or_else(|| MaildirError::UnknownUidl {
            path: self.root.clone(),
            uidl: uidl.to_owned(),
        })?;
        self.doomed.push((uidl.to_owned(), path.clone()));
        Ok(())
    }

    /// Removes the files marked for deletion and syncs the directories.
    fn finish(&mut self) -> Result<(), MaildirError> {
        for (uidl, path) in std::mem::take(&mut self.doomed) {
            match fs::remove_file(&path) {
                Ok(()) => {}
                // Renamed since `list` (flags changed): remove it under its new name.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if let Some(p) = self.find(&uidl) {
                        fs::remove_file(&p).map_err(io(&p, "remove"))?;
                    }
                }
                Err(e) => return Err(io(&path, "remove")(e)),
            }
        }
        for sub in ["new", "cur"] {
            let d = self.root.join(sub);
            fs::File::open(&d)
                .and_then(|f| f.sync_all())
                .map_err(io(&d, "sync directory"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_normalisation() {
        assert_eq!(to_crlf(b"a\nb\r\nc\n".to_vec()), b"a\r\nb\r\nc\r\n");
        assert_eq!(to_crlf(b"no newline".to_vec()), b"no newline");
        assert_eq!(to_crlf(b"\n\n".to_vec()), b"\r\n\r\n");
        assert_eq!(to_crlf(b"\r\nx\r\n".to_vec()), b"\r\nx\r\n");
        assert_eq!(to_crlf(b"\r\n\n".to_vec()), b"\r\n\r\n");
    }

    #[test]
    fn headers_are_read_without_touching_the_file() {
        let d = tempfile::tempdir().unwrap();
        let mut m = Maildir::create(d.path().join("box"), 1 << 20).unwrap();
        let name = "1795000000.M1P1.host";
        fs::write(
            d.path().join("box/new").join(name),
            b"Subject: a\nX: b\n\nbody\n\nmore\n",
        )
        .unwrap();
        let seen = "1795000001.M2P2.host:2,S";
        fs::write(d.path().join("box/cur").join(seen), b"Subject: c\r\n").unwrap();
        let listed = m.list().unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(m.headers(name).unwrap(), b"Subject: a\r\nX: b\r\n\r\n");
        // No blank line: the whole (bounded) file is the header block.
        assert_eq!(m.headers("1795000001.M2P2.host").unwrap(), b"Subject: c\r\n");
        assert!(d.path().join("box/new").join(name).exists());
        assert!(d.path().join("box/cur").join(seen).exists());
        assert!(m.headers("nope").is_err());
    }

    #[test]
    fn header_end_finds_the_blank_line_across_chunks() {
        assert_eq!(header_end(b"A: 1\r\n\r\nbody", 0), Some(8));
        assert_eq!(header_end(b"A: 1\n\nbody", 0), Some(6));
        assert_eq!(header_end(b"A: 1\r\nB: 2\r\n", 0), None);
        assert_eq!(header_end(b"", 0), None);
        // A header block longer than one read chunk, its blank line across the boundary.
        let d = tempfile::tempdir().unwrap();
        let mut m = Maildir::create(d.path().join("box"), 1 << 20).unwrap();
        let mut raw = format!("X: {}\r\n", "y".repeat(8192 - 6)).into_bytes();
        assert_eq!(raw.len(), 8191);
        raw.extend_from_slice(b"\r\nbody\r\n");
        fs::write(d.path().join("box/new/1.x"), &raw).unwrap();
        m.list().unwrap();
        assert_eq!(m.headers("1.x").unwrap(), raw[..8193].to_vec());
    }

    #[test]
    fn uidl_is_the_name_without_info() {
        assert_eq!(
            uidl_of("1795671869.M346380P13537.mx.test:2,S"),
            "1795671869.M346380P13537.mx.test"
        );
        assert_eq!(uidl_of("plain"), "plain");
    }

    #[test]
    fn delivery_under_a_chosen_name_is_idempotent() {
        let d = tempfile::tempdir().unwrap();
        let mut m = Maildir::create(d.path().join("box"), 1 << 20).unwrap();
        // A crash left a half-written file of that name in tmp/: it is ours, overwritten.
        fs::write(d.path().join("box/tmp/1795000000.Oab12Q7.oct.example"), b"half").unwrap();
        let deliver = |m: &Maildir, name: &str, raw: &[u8]| -> Result<bool, MaildirError> {
            let staged = m.stage(name, raw)?;
            staged.sync()?;
            staged.place()
        };
        assert!(deliver(&m, "1795000000.Oab12Q7.oct.example", b"first\r\n").unwrap());
        m.sync_new().unwrap();
        // The same name again (redelivery after a crash): nothing written, the first kept.
        assert!(!deliver(&m, "1795000000.Oab12Q7.oct.example", b"second\r\n").unwrap());
        assert_eq!(fs::read_dir(d.path().join("box/tmp")).unwrap().count(), 0);
        let listed = m.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(m.fetch(&listed[0].0).unwrap(), b"first\r\n");
        for bad in ["", ".hidden", "a/b", "a:2,S", "nul\0"] {
            assert!(deliver(&m, bad, b"x").is_err(), "{bad:?} accepted");
        }
        assert_eq!(m.list().unwrap().len(), 1);
    }

    #[test]
    fn a_message_over_the_limit_is_refused_not_read() {
        let d = tempfile::tempdir().unwrap();
        let mut m = Maildir::create(d.path().join("box"), 10).unwrap();
        let small = m.deliver(b"ok\n").unwrap();
        let big = m.deliver(&[b'x'; 11]).unwrap();
        let grows = m.deliver(&[b'\n'; 9]).unwrap();
        assert_eq!(m.list().unwrap().len(), 3);
        assert_eq!(m.fetch(&small).unwrap(), b"ok\r\n");
        match m.fetch(&big) {
            Err(MaildirError::TooLarge { size, limit, .. }) => {
                assert_eq!(limit, 10);
                assert_eq!(size, 11);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        // A message that grows past the limit by CRLF normalisation is refused too (9 LF -> 18).
        assert!(matches!(
            m.fetch(&grows),
            Err(MaildirError::TooLarge { size: 18, .. })
        ));
    }
}
