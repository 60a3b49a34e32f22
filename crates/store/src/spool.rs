//! The concentrator's durable spool: where the SMTP ingress puts each accepted message before it
//! answers `250`, and where the pipeline workers take their work from.
//!
//! **Why files and not SQLite.** Both were measured (see `docs/oct-ingress.md`): one file per
//! message, written to `tmp/`, fsynced, renamed into `new/` and the directory fsynced, lets
//! concurrent connections overlap their fsyncs, while a single SQLite writer serialises them.
//!
//! Layout under the spool directory (one process owns it, enforced by an OS lock on `lock`):
//!
//! ```text
//! lock                      exclusive lock of the owning process
//! tmp/<id>                  being written (Spool::begin/SpoolWriter); removed at open (never acknowledged)
//! new/<id>                  durable, waiting or being processed
//! quarantine/<id>           unreadable entry set aside, with quarantine/<id>.reason
//! ```
//!
//! `<id>` is the [`SpoolId`] in 16 lower-case hex digits. Each entry file holds a small
//! header then the message octets, see [`ENTRY_MAGIC`] (**provisional** format, documented in
//! `docs/oct-ingress.md`).
//!
//! **Crash safety.** A claim lives only in memory: after a crash or a kill every entry still in
//! `new/` is claimable again, so a message is never lost; [`Spool::complete`] removes the file
//! and fsyncs the directory before it returns, so a completed message is not handed out again.
//! A worker killed between its own commit and `complete` sees the message again: its commit
//! must be keyed by the [`SpoolId`] (idempotent) for processing to be exactly once.

use std::collections::{BTreeSet, HashSet};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

use serde::{Deserialize, Serialize};
use svoct_mail::fsx;

/// First line of every entry file; the format version is in it.
pub const ENTRY_MAGIC: &[u8] = b"SVOCT-SPOOL-1\n";

/// Longest envelope header line accepted when reading an entry.
const MAX_HEADER_LEN: usize = 256 * 1024;

/// Identifier of a spooled message: unique in the spool, increasing in arrival order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SpoolId(pub u64);

impl std::fmt::Display for SpoolId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl SpoolId {
    /// Parses the 16-hex-digit file name form.
    pub fn parse(name: &str) -> Option<Self> {
        if name.len() != 16 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(name, 16).ok().map(SpoolId)
    }
}

/// SMTP envelope and reception facts stored with each message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ReceivedEnvelope {
    /// Name the client gave in EHLO/HELO.
    pub helo: String,
    /// Reverse path (`MAIL FROM`), empty for `<>`.
    pub mail_from: String,
    /// Forward paths (`RCPT TO`).
    pub rcpt_to: Vec<String>,
    /// Client address as `ip:port`.
    pub peer: String,
    /// Reception time, seconds since the Unix epoch.
    pub received_at: i64,
}

/// Where an entry is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryState {
    /// Durable, not claimed.
    Pending,
    /// Handed to a worker by [`Spool::claim_next`], not yet completed.
    Claimed,
    /// Set aside by [`Spool::quarantine`].
    Quarantined,
}

/// One line of [`Spool::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// Identifier.
    pub id: SpoolId,
    /// State.
    pub state: EntryState,
    /// Size of the entry file in octets (header included).
    pub file_size: u64,
}

/// A spooled message, read back.
#[derive(Clone, PartialEq, Eq)]
pub struct SpoolEntry {
    /// Identifier.
    pub id: SpoolId,
    /// ReceivedEnvelope stored with it.
    pub envelope: ReceivedEnvelope,
    /// Message octets exactly as accepted.
    pub data: Vec<u8>,
}

impl std::fmt::Debug for SpoolEntry {
    // Message content is health data: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpoolEntry")
            .field("id", &self.id)
            .field("envelope", &self.envelope)
            .field("data_len", &self.data.len())
            .finish()
    }
}

/// Errors of the spool; each names the entry or the path involved.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A file system operation failed.
    #[error("spool: {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Another process holds the spool.
    #[error("spool {0} is locked by another process")]
    Locked(PathBuf),
    /// An entry file is not in the expected format.
    #[error("spool entry {id}: corrupt at byte {offset}: {reason}")]
    Corrupt {
        /// Entry.
        id: SpoolId,
        /// Byte offset in the entry file.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// An entry file is larger than the configured bound.
    #[error("spool entry {id}: {size} bytes exceeds the bound of {max}")]
    TooLarge {
        /// Entry.
        id: SpoolId,
        /// Its size.
        size: u64,
        /// The bound.
        max: u64,
    },
    /// No such pending entry.
    #[error("spool entry {0} not found")]
    NotFound(SpoolId),
    /// The entry is not claimed, so it cannot be completed or quarantined.
    #[error("spool entry {0} is not claimed")]
    NotClaimed(SpoolId),
    /// The envelope could not be encoded.
    #[error("spool: envelope encoding: {0}")]
    ReceivedEnvelope(#[from] serde_json::Error),
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SpoolError + 'a {
    move |source| SpoolError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Options of [`Spool::open_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolOptions {
    /// Largest entry file read back (header included); larger ones are quarantined.
    pub max_entry_size: u64,
    /// Whether writes are fsynced. Only tests of non-durability paths turn this off.
    pub fsync: bool,
}

impl Default for SpoolOptions {
    fn default() -> Self {
        Self {
            max_entry_size: 64 * 1024 * 1024,
            fsync: true,
        }
    }
}

#[derive(Debug, Default)]
struct Index {
    pending: BTreeSet<SpoolId>,
    claimed: HashSet<SpoolId>,
    last_id: u64,
}

/// Group commit of the `new/` directory fsync: one fsync covers every rename done before it
/// started, so concurrent puts share it instead of queueing one fsync each.
#[derive(Debug, Default)]
struct DirSync {
    /// Renames announced (a sequence number each).
    requested: u64,
    /// Every rename up to this number is durable.
    synced: u64,
    /// An fsync is running.
    running: bool,
}

/// The durable spool. `Sync`: share it with an `Arc` between connections and workers.
#[derive(Debug)]
pub struct Spool {
    dir_sync: Mutex<DirSync>,
    dir_synced: Condvar,
    root: PathBuf,
    tmp: PathBuf,
    new: PathBuf,
    quarantine: PathBuf,
    options: SpoolOptions,
    index: Mutex<Index>,
    /// Signalled when an entry becomes pending (put or released).
    pending_ready: Condvar,
    _lock: File,
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A message being written into the spool by [`Spool::begin`]; see [`Spool::commit`].
/// Dropping it without commit removes its file.
#[derive(Debug)]
pub struct SpoolWriter {
    id: SpoolId,
    /// `tmp/<id>`; empty once committed (nothing to remove).
    tmp_path: PathBuf,
    content_len: u64,
    /// `None` only while being committed or after a failed header write.
    file: Option<File>,
}

impl SpoolWriter {
    /// The identifier the message will have once committed.
    pub fn id(&self) -> SpoolId {
        self.id
    }

    /// Octets of content appended so far (header excluded).
    pub fn content_len(&self) -> u64 {
        self.content_len
    }

    /// Appends content. After an error the writer is unusable: drop it (its file goes).
    pub fn append(&mut self, bytes: &[u8]) -> Result<(), SpoolError> {
        let Some(file) = self.file.as_mut() else {
            return Err(io("write", &self.tmp_path)(
                std::io::ErrorKind::NotConnected.into(),
            ));
        };
        if let Err(e) = file.write_all(bytes) {
            self.file = None;
            return Err(io("write", &self.tmp_path)(e));
        }
        self.content_len = self
            .content_len
            .saturating_add(u64::try_from(bytes.len()).unwrap_or(u64::MAX));
        Ok(())
    }
}

impl Drop for SpoolWriter {
    fn drop(&mut self) {
        if !self.tmp_path.as_os_str().is_empty() {
            // Never acknowledged: removing it is the whole of an abort. A failure leaves a
            // file in tmp/, which the next open removes.
            let _ = fs::remove_file(&self.tmp_path);
        }
    }
}

fn sync_dir(path: &Path) -> Result<(), SpoolError> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync directory", path))
}

impl Spool {
    /// Opens (creating it if needed) the spool in `dir` with default options.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, SpoolError> {
        Self::open_with(dir, SpoolOptions::default())
    }

    /// Opens the spool: takes the lock, removes unacknowledged `tmp/` files and indexes `new/`.
    pub fn open_with(dir: impl AsRef<Path>, options: SpoolOptions) -> Result<Self, SpoolError> {
        let root = dir.as_ref().to_owned();
        let tmp = root.join("tmp");
        let new = root.join("new");
        let quarantine = root.join("quarantine");
        // The spool is ours entirely: its directories are 0700, even when an older version
        // created them under the default umask.
        for d in [&root, &tmp, &new, &quarantine] {
            fsx::create_data_dir_all(d).map_err(io("create directory", d))?;
            fsx::restrict_dir(d).map_err(io("restrict mode of", d))?;
        }
        let lock_path = root.join("lock");
        let lock = fsx::open_lock_file(&lock_path).map_err(io("open", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(SpoolError::Locked(root)),
            Err(fs::TryLockError::Error(e)) => return Err(io("lock", &lock_path)(e)),
        }
        // Files in tmp/ were never acknowledged to a client: the client will retry.
        for entry in fs::read_dir(&tmp).map_err(io("read directory", &tmp))? {
            let entry = entry.map_err(io("read directory", &tmp))?;
            let p = entry.path();
            fs::remove_file(&p).map_err(io("remove", &p))?;
        }
        let mut index = Index::default();
        for entry in fs::read_dir(&new).map_err(io("read directory", &new))? {
            let entry = entry.map_err(io("read directory", &new))?;
            match entry.file_name().to_str().and_then(SpoolId::parse) {
                Some(id) => {
                    index.pending.insert(id);
                    index.last_id = index.last_id.max(id.0);
                }
                None => tracing::warn!(file = ?entry.path(), "spool: ignoring foreign file"),
            }
        }
        for entry in fs::read_dir(&quarantine).map_err(io("read directory", &quarantine))? {
            let entry = entry.map_err(io("read directory", &quarantine))?;
            if let Some(id) = entry.file_name().to_str().and_then(SpoolId::parse) {
                index.last_id = index.last_id.max(id.0);
            }
        }
        tracing::info!(dir = ?root, pending = index.pending.len(), "spool opened");
        Ok(Self {
            root,
            tmp,
            new,
            quarantine,
            options,
            dir_sync: Mutex::new(DirSync::default()),
            dir_synced: Condvar::new(),
            index: Mutex::new(index),
            pending_ready: Condvar::new(),
            _lock: lock,
        })
    }

    /// The spool directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn lock_index(&self) -> std::sync::MutexGuard<'_, Index> {
        // A panic while holding the lock cannot leave the index half-updated (each update is
        // one set operation), so a poisoned lock is still usable.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_dir_sync(&self) -> std::sync::MutexGuard<'_, DirSync> {
        self.dir_sync.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn next_id(&self) -> SpoolId {
        let mut index = self.lock_index();
        let id = now_nanos().max(index.last_id.saturating_add(1));
        index.last_id = id;
        SpoolId(id)
    }

    /// Stores a message; returns only once it is durably on disk (file and directory fsynced).
    pub fn put(&self, envelope: &ReceivedEnvelope, data: &[u8]) -> Result<SpoolId, SpoolError> {
        let mut writer = self.begin(envelope)?;
        writer.append(data)?;
        self.commit(writer)
    }

    /// Starts storing a message whose content arrives in pieces: creates `tmp/<id>` with the
    /// header. Append the content with [`SpoolWriter::append`], then [`Spool::commit`]; a
    /// writer dropped without commit removes its file (a refused or cut-off message leaves
    /// nothing), and a crash leaves it in `tmp/`, which [`Spool::open`] empties.
    pub fn begin(&self, envelope: &ReceivedEnvelope) -> Result<SpoolWriter, SpoolError> {
        let header = serde_json::to_vec(envelope)?;
        let id = self.next_id();
        let tmp_path = self.tmp.join(id.to_string());
        let mut file = fsx::create_new_data_file(&tmp_path).map_err(io("create", &tmp_path))?;
        let mut writer = SpoolWriter {
            id,
            tmp_path,
            content_len: 0,
            file: None,
        };
        let mut head = Vec::with_capacity(ENTRY_MAGIC.len() + header.len() + 1);
        head.extend_from_slice(ENTRY_MAGIC);
        head.extend_from_slice(&header);
        head.push(b'\n');
        // From here on the writer owns the file: an error drops it, which removes the file.
        let written = file.write_all(&head);
        writer.file = Some(file);
        written.map_err(io("write", &writer.tmp_path))?;
        Ok(writer)
    }

    /// Makes a streamed message durable (file fsynced, renamed into `new/`, directory
    /// fsynced) and pending; returns its identifier. On error nothing is left in `tmp/`.
    pub fn commit(&self, mut writer: SpoolWriter) -> Result<SpoolId, SpoolError> {
        let id = writer.id;
        let file = writer.file.take();
        if self.options.fsync
            && let Some(f) = &file
        {
            f.sync_data().map_err(io("fsync", &writer.tmp_path))?;
        }
        drop(file);
        let new_path = self.new.join(id.to_string());
        fs::rename(&writer.tmp_path, &new_path).map_err(io("rename", &writer.tmp_path))?;
        // Renamed: the writer must no longer remove anything.
        writer.tmp_path = PathBuf::new();
        if self.options.fsync {
            self.sync_new_dir_grouped()?;
        }
        self.lock_index().pending.insert(id);
        self.pending_ready.notify_one();
        Ok(id)
    }

    /// Makes every rename into `new/` done so far durable, sharing the fsync with concurrent
    /// callers: a caller returns once an fsync that started after its rename has succeeded.
    fn sync_new_dir_grouped(&self) -> Result<(), SpoolError> {
        let mut st = self.lock_dir_sync();
        st.requested = st.requested.saturating_add(1);
        let mine = st.requested;
        loop {
            if st.synced >= mine {
                return Ok(());
            }
            if st.running {
                st = self.dir_synced.wait(st).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            // Become the leader: this fsync covers every rename announced up to `target`.
            st.running = true;
            let target = st.requested;
            drop(st);
            let result = sync_dir(&self.new);
            st = self.lock_dir_sync();
            st.running = false;
            if result.is_ok() {
                st.synced = st.synced.max(target);
            }
            self.dir_synced.notify_all();
            result?;
        }
    }

    /// Claims the oldest pending message for processing; `None` when there is none.
    ///
    /// An entry that cannot be read back (corrupt, too large) is quarantined with the reason
    /// and the next one is tried.
    pub fn claim_next(&self) -> Result<Option<SpoolEntry>, SpoolError> {
        loop {
            let id = {
                let mut index = self.lock_index();
                let Some(id) = index.pending.pop_first() else {
                    return Ok(None);
                };
                index.claimed.insert(id);
                id
            };
            match self.read_entry(&self.new.join(id.to_string()), id) {
                Ok(entry) => return Ok(Some(entry)),
                Err(e @ (SpoolError::Corrupt { .. } | SpoolError::TooLarge { .. })) => {
                    tracing::warn!(%id, error = %e, "spool: quarantining unreadable entry");
                    self.quarantine(id, &e.to_string())?;
                }
                Err(e) => {
                    let mut index = self.lock_index();
                    index.claimed.remove(&id);
                    index.pending.insert(id);
                    return Err(e);
                }
            }
        }
    }

    /// Waits until an entry is pending or `timeout` passed; returns whether one is pending.
    /// Workers call it instead of polling, so that a message is picked up as soon as
    /// [`Spool::put`] made it durable.
    pub fn wait_pending(&self, timeout: std::time::Duration) -> bool {
        let index = self.lock_index();
        let (index, _) = self
            .pending_ready
            .wait_timeout_while(index, timeout, |i| i.pending.is_empty())
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        !index.pending.is_empty()
    }

    /// Gives a claimed message back without completing it (it will be claimed again).
    pub fn release(&self, id: SpoolId) -> Result<(), SpoolError> {
        let mut index = self.lock_index();
        if !index.claimed.remove(&id) {
            return Err(SpoolError::NotClaimed(id));
        }
        index.pending.insert(id);
        drop(index);
        self.pending_ready.notify_one();
        Ok(())
    }

    /// Marks a claimed message as processed: removes it durably.
    pub fn complete(&self, id: SpoolId) -> Result<(), SpoolError> {
        self.remove_claimed(id, self.options.fsync)
    }

    /// Marks a claimed message as processed when its outcome is already durably recorded
    /// elsewhere (the concentrator's state database): removes it without syncing the
    /// directory. After a power cut the entry may come back; the caller must recognise it as
    /// done (the concentrator looks its id up before processing) — in exchange, completing
    /// costs no disk flush.
    pub fn complete_recorded(&self, id: SpoolId) -> Result<(), SpoolError> {
        self.remove_claimed(id, false)
    }

    fn remove_claimed(&self, id: SpoolId, sync: bool) -> Result<(), SpoolError> {
        if !self.lock_index().claimed.contains(&id) {
            return Err(SpoolError::NotClaimed(id));
        }
        let path = self.new.join(id.to_string());
        fs::remove_file(&path).map_err(io("remove", &path))?;
        if sync {
            sync_dir(&self.new)?;
        }
        self.lock_index().claimed.remove(&id);
        Ok(())
    }

    /// Sets a claimed message aside with a reason (kept in `quarantine/<id>.reason`).
    pub fn quarantine(&self, id: SpoolId, reason: &str) -> Result<(), SpoolError> {
        if !self.lock_index().claimed.contains(&id) {
            return Err(SpoolError::NotClaimed(id));
        }
        let name = id.to_string();
        let reason_path = self.quarantine.join(format!("{name}.reason"));
        let write_reason = || -> std::io::Result<()> {
            let mut f = fsx::create_data_file(&reason_path)?;
            f.write_all(reason.as_bytes())?;
            f.write_all(b"\n")?;
            if self.options.fsync {
                f.sync_data()?;
            }
            Ok(())
        };
        write_reason().map_err(io("write", &reason_path))?;
        let from = self.new.join(&name);
        let to = self.quarantine.join(&name);
        fs::rename(&from, &to).map_err(io("rename", &from))?;
        if self.options.fsync {
            sync_dir(&self.quarantine)?;
            sync_dir(&self.new)?;
        }
        self.lock_index().claimed.remove(&id);
        Ok(())
    }

    /// Deletes an entry set aside in `quarantine/` and its reason: for a caller that keeps the
    /// message elsewhere (the concentrator's state database, since it keeps one copy).
    pub fn remove_quarantined(&self, id: SpoolId) -> Result<(), SpoolError> {
        let name = id.to_string();
        let entry = self.quarantine.join(&name);
        fs::remove_file(&entry).map_err(io("remove", &entry))?;
        let reason = self.quarantine.join(format!("{name}.reason"));
        match fs::remove_file(&reason) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io("remove", &reason)(e)),
            _ => {}
        }
        if self.options.fsync {
            sync_dir(&self.quarantine)?;
        }
        Ok(())
    }

    /// The reason a quarantined message was set aside.
    pub fn quarantine_reason(&self, id: SpoolId) -> Result<String, SpoolError> {
        let path = self.quarantine.join(format!("{id}.reason"));
        let mut s = String::new();
        File::open(&path)
            .and_then(|f| f.take(64 * 1024).read_to_string(&mut s))
            .map_err(io("read", &path))?;
        Ok(s.trim_end().to_owned())
    }

    /// Reads a pending or claimed message without changing its state.
    pub fn get(&self, id: SpoolId) -> Result<SpoolEntry, SpoolError> {
        {
            let index = self.lock_index();
            if !index.pending.contains(&id) && !index.claimed.contains(&id) {
                return Err(SpoolError::NotFound(id));
            }
        }
        self.read_entry(&self.new.join(id.to_string()), id)
    }

    /// Every entry: pending, claimed and quarantined, by identifier.
    pub fn list(&self) -> Result<Vec<Listing>, SpoolError> {
        let (pending, claimed) = {
            let index = self.lock_index();
            (index.pending.clone(), index.claimed.clone())
        };
        let mut out = Vec::new();
        let size = |p: &Path| fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        for id in pending.iter().chain(claimed.iter()) {
            out.push(Listing {
                id: *id,
                state: if claimed.contains(id) {
                    EntryState::Claimed
                } else {
                    EntryState::Pending
                },
                file_size: size(&self.new.join(id.to_string())),
            });
        }
        for entry in fs::read_dir(&self.quarantine).map_err(io("read directory", &self.quarantine))? {
            let entry = entry.map_err(io("read directory", &self.quarantine))?;
            if let Some(id) = entry.file_name().to_str().and_then(SpoolId::parse) {
                out.push(Listing {
                    id,
                    state: EntryState::Quarantined,
                    file_size: size(&entry.path()),
                });
            }
        }
        out.sort_by_key(|l| l.id);
        Ok(out)
    }

    fn read_entry(&self, path: &Path, id: SpoolId) -> Result<SpoolEntry, SpoolError> {
        let file = File::open(path).map_err(io("open", path))?;
        let size = file.metadata().map_err(io("stat", path))?.len();
        let max = self.options.max_entry_size;
        if size > max {
            return Err(SpoolError::TooLarge { id, size, max });
        }
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        file.take(max.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(io("read", path))?;
        if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > max {
            return Err(SpoolError::TooLarge {
                id,
                size: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
                max,
            });
        }
        decode_entry(id, bytes)
    }
}

/// Decodes an entry file: magic line, one JSON envelope line, then the message octets.
pub fn decode_entry(id: SpoolId, mut bytes: Vec<u8>) -> Result<SpoolEntry, SpoolError> {
    let corrupt = |offset: usize, reason: &str| SpoolError::Corrupt {
        id,
        offset: u64::try_from(offset).unwrap_or(u64::MAX),
        reason: reason.to_owned(),
    };
    if !bytes.starts_with(ENTRY_MAGIC) {
        return Err(corrupt(0, "missing SVOCT-SPOOL-1 magic line"));
    }
    let start = ENTRY_MAGIC.len();
    let rest = bytes.get(start..).unwrap_or_default();
    let window = rest.get(..rest.len().min(MAX_HEADER_LEN)).unwrap_or(rest);
    let Some(nl) = memchr_nl(window) else {
        return Err(corrupt(start, "envelope line missing or too long"));
    };
    let header = window.get(..nl).unwrap_or_default();
    let envelope: ReceivedEnvelope = serde_json::from_slice(header)
        .map_err(|e| corrupt(start.saturating_add(e.column()), &format!("envelope: {e}")))?;
    let data_start = start.saturating_add(nl).saturating_add(1);
    let data = bytes.split_off(data_start.min(bytes.len()));
    Ok(SpoolEntry { id, envelope, data })
}

fn memchr_nl(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(n: usize) -> ReceivedEnvelope {
        ReceivedEnvelope {
            helo: "ps.example".into(),
            mail_from: format!("ps{n}@example.org"),
            rcpt_to: vec!["oct@example.net".into()],
            peer: "127.0.0.1:4000".into(),
            received_at: 1_795_000_000,
        }
    }

    #[test]
    fn put_claim_complete_round_trip_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let a = spool.put(&env(1), b"first\r\n").unwrap();
        let b = spool.put(&env(2), b"").unwrap();
        assert!(a < b);
        assert!(dir.path().join("new").join(a.to_string()).exists());
        let first = spool.claim_next().unwrap().unwrap();
        assert_eq!(first.id, a);
        assert_eq!(first.envelope, env(1));
        assert_eq!(first.data, b"first\r\n");
        let second = spool.claim_next().unwrap().unwrap();
        assert_eq!((second.id, second.data.as_slice()), (b, &b""[..]));
        assert!(spool.claim_next().unwrap().is_none());
        spool.complete(a).unwrap();
        assert!(!dir.path().join("new").join(a.to_string()).exists());
        assert!(matches!(spool.complete(a), Err(SpoolError::NotClaimed(x)) if x == a));
        let l = spool.list().unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].state, EntryState::Claimed);
    }

    fn tmp_files(dir: &Path) -> Vec<PathBuf> {
        fs::read_dir(dir.join("tmp"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    }

    #[test]
    fn streamed_message_is_invisible_until_committed_then_byte_exact() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let mut w = spool.begin(&env(1)).unwrap();
        let mut expected = Vec::new();
        for i in 0..100u32 {
            let chunk = format!("line {i}\r\n").repeat(usize::try_from(i).unwrap());
            w.append(chunk.as_bytes()).unwrap();
            expected.extend_from_slice(chunk.as_bytes());
        }
        assert_eq!(w.content_len(), u64::try_from(expected.len()).unwrap());
        // Written but not committed: in tmp/, not claimable.
        assert_eq!(
            tmp_files(dir.path()),
            [dir.path().join("tmp").join(w.id().to_string())]
        );
        assert!(spool.claim_next().unwrap().is_none());
        let id = spool.commit(w).unwrap();
        assert!(tmp_files(dir.path()).is_empty());
        let e = spool.claim_next().unwrap().unwrap();
        assert_eq!((e.id, e.envelope, e.data), (id, env(1), expected));
    }

    #[test]
    fn dropped_writer_leaves_nothing_and_a_crash_leftover_goes_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let spool = Spool::open(dir.path()).unwrap();
            let mut w = spool.begin(&env(1)).unwrap();
            w.append(b"refused message").unwrap();
            drop(w);
            assert!(tmp_files(dir.path()).is_empty());
            assert!(spool.list().unwrap().is_empty());
            // A writer lost without its destructor (the process killed mid-DATA).
            let mut w = spool.begin(&env(2)).unwrap();
            w.append(b"cut off").unwrap();
            std::mem::forget(w);
            assert_eq!(tmp_files(dir.path()).len(), 1);
        }
        let spool = Spool::open(dir.path()).unwrap();
        assert!(tmp_files(dir.path()).is_empty());
        assert!(spool.claim_next().unwrap().is_none());
    }

    #[cfg(unix)]
    #[test]
    fn entry_files_are_private_to_the_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let w = spool.begin(&env(1)).unwrap();
        let tmp = dir.path().join("tmp").join(w.id().to_string());
        assert_eq!(fs::metadata(&tmp).unwrap().permissions().mode() & 0o777, 0o600);
        let id = spool.commit(w).unwrap();
        let new = dir.path().join("new").join(id.to_string());
        assert_eq!(fs::metadata(&new).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn entry_file_bytes_are_the_documented_format() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let id = spool
            .put(
                &ReceivedEnvelope {
                    helo: "h".into(),
                    mail_from: "".into(),
                    rcpt_to: vec!["a@b".into()],
                    peer: "p".into(),
                    received_at: 7,
                },
                b"X\r\n",
            )
            .unwrap();
        let bytes = fs::read(dir.path().join("new").join(id.to_string())).unwrap();
        assert_eq!(
            bytes,
            b"SVOCT-SPOOL-1\n{\"helo\":\"h\",\"mail_from\":\"\",\"rcpt_to\":[\"a@b\"],\"peer\":\"p\",\"received_at\":7}\nX\r\n"
        );
    }

    #[test]
    fn claimed_but_not_completed_is_claimed_again_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b);
        {
            let spool = Spool::open(dir.path()).unwrap();
            a = spool.put(&env(1), b"one").unwrap();
            b = spool.put(&env(2), b"two").unwrap();
            let c = spool.put(&env(3), b"three").unwrap();
            assert_eq!(spool.claim_next().unwrap().unwrap().id, a);
            assert_eq!(spool.claim_next().unwrap().unwrap().id, b);
            spool.complete(b).unwrap();
            assert_eq!(spool.claim_next().unwrap().unwrap().id, c);
            spool.quarantine(c, "bad lot").unwrap();
            // A put that died between write and rename leaves a tmp file.
            fs::write(dir.path().join("tmp").join("00000000000000ff"), b"half").unwrap();
            // Simulated crash: the Spool is dropped without completing `a`.
        }
        let spool = Spool::open(dir.path()).unwrap();
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        let again = spool.claim_next().unwrap().unwrap();
        assert_eq!((again.id, again.data.as_slice()), (a, &b"one"[..]));
        assert!(
            spool.claim_next().unwrap().is_none(),
            "b completed, c quarantined"
        );
        let states: Vec<_> = spool.list().unwrap().into_iter().map(|l| l.state).collect();
        assert_eq!(states, [EntryState::Claimed, EntryState::Quarantined]);
        let q = spool.list().unwrap()[1].id;
        assert_eq!(spool.quarantine_reason(q).unwrap(), "bad lot");
        // New ids stay above every id seen before the crash.
        assert!(spool.put(&env(4), b"4").unwrap() > q);
    }

    #[test]
    fn concurrent_puts_share_directory_fsyncs_and_all_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let spool = std::sync::Arc::new(Spool::open(dir.path()).unwrap());
        let ids: Vec<(SpoolId, Vec<u8>)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|t| {
                    let spool = spool.clone();
                    s.spawn(move || {
                        (0..10)
                            .map(|i| {
                                let body = format!("t{t} m{i}").into_bytes();
                                (spool.put(&env(t), &body).unwrap(), body)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        {
            let st = spool.dir_sync.lock().unwrap();
            assert_eq!(st.requested, 80);
            assert_eq!(st.synced, 80);
            assert!(!st.running);
        }
        drop(spool);
        let spool = Spool::open(dir.path()).unwrap();
        assert_eq!(spool.list().unwrap().len(), 80);
        for (id, body) in ids {
            assert_eq!(spool.get(id).unwrap().data, body);
        }
    }

    #[test]
    fn second_open_is_refused_while_locked() {
        let dir = tempfile::tempdir().unwrap();
        let _spool = Spool::open(dir.path()).unwrap();
        assert!(matches!(Spool::open(dir.path()), Err(SpoolError::Locked(_))));
    }

    #[test]
    fn corrupt_and_oversized_entries_are_quarantined_with_reason() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("new")).unwrap();
        fs::write(dir.path().join("new").join("0000000000000001"), b"garbage").unwrap();
        fs::write(
            dir.path().join("new").join("0000000000000002"),
            b"SVOCT-SPOOL-1\n{\"helo\":1}\nx",
        )
        .unwrap();
        fs::write(dir.path().join("new").join("0000000000000003"), vec![b'a'; 200]).unwrap();
        let spool = Spool::open_with(
            dir.path(),
            SpoolOptions {
                max_entry_size: 190,
                fsync: true,
            },
        )
        .unwrap();
        let good = spool.put(&env(1), b"ok").unwrap();
        assert_eq!(spool.claim_next().unwrap().unwrap().id, good);
        let reason = spool.quarantine_reason(SpoolId(1)).unwrap();
        assert!(reason.contains("corrupt at byte 0"), "{reason}");
        let reason = spool.quarantine_reason(SpoolId(2)).unwrap();
        assert!(reason.contains("envelope"), "{reason}");
        let reason = spool.quarantine_reason(SpoolId(3)).unwrap();
        assert!(reason.contains("200 bytes exceeds the bound of 190"), "{reason}");
    }

    #[test]
    fn release_gives_the_entry_back() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let a = spool.put(&env(1), b"x").unwrap();
        assert_eq!(spool.claim_next().unwrap().unwrap().id, a);
        spool.release(a).unwrap();
        assert_eq!(spool.get(a).unwrap().data, b"x");
        assert_eq!(spool.claim_next().unwrap().unwrap().id, a);
    }

    #[test]
    fn complete_recorded_removes_the_entry_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let a;
        {
            let spool = Spool::open(dir.path()).unwrap();
            a = spool.put(&env(1), b"x").unwrap();
            let b = spool.put(&env(2), b"y").unwrap();
            assert!(matches!(spool.complete_recorded(a), Err(SpoolError::NotClaimed(x)) if x == a));
            assert_eq!(spool.claim_next().unwrap().unwrap().id, a);
            spool.complete_recorded(a).unwrap();
            assert!(!dir.path().join("new").join(a.to_string()).exists());
            assert!(matches!(spool.complete_recorded(a), Err(SpoolError::NotClaimed(x)) if x == a));
            assert_eq!(spool.list().unwrap().len(), 1);
            assert_eq!(spool.claim_next().unwrap().unwrap().id, b);
        }
        // Reopened: only b is left, pending again.
        let spool = Spool::open(dir.path()).unwrap();
        let left: Vec<_> = spool.list().unwrap().into_iter().map(|l| l.id).collect();
        assert_eq!(left.len(), 1);
        assert_ne!(left[0], a);
    }

    #[test]
    fn wait_pending_reports_puts_and_releases_and_times_out_when_idle() {
        let dir = tempfile::tempdir().unwrap();
        let spool = std::sync::Arc::new(Spool::open(dir.path()).unwrap());
        assert!(!spool.wait_pending(std::time::Duration::from_millis(20)));
        let writer = {
            let spool = spool.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(50));
                spool.put(&env(1), b"x").unwrap()
            })
        };
        // Returns with the entry pending (normally as soon as it lands; not timed here).
        assert!(spool.wait_pending(std::time::Duration::from_secs(60)));
        let id = writer.join().unwrap();
        assert_eq!(spool.claim_next().unwrap().unwrap().id, id);
        assert!(!spool.wait_pending(std::time::Duration::from_millis(10)));
        spool.release(id).unwrap();
        assert!(spool.wait_pending(std::time::Duration::from_millis(10)));
    }

    #[test]
    fn decode_never_panics_on_garbage() {
        use proptest::prelude::*;
        proptest!(|(tail in prop::collection::vec(any::<u8>(), 0..300), magic in any::<bool>())| {
            let mut b = if magic { ENTRY_MAGIC.to_vec() } else { Vec::new() };
            b.extend_from_slice(&tail);
            let _ = decode_entry(SpoolId(1), b);
        });
    }

    #[test]
    fn id_display_and_parse_round_trip() {
        use proptest::prelude::*;
        proptest!(|(n in any::<u64>())| {
            prop_assert_eq!(SpoolId::parse(&SpoolId(n).to_string()), Some(SpoolId(n)));
        });
        assert_eq!(SpoolId::parse("xyz"), None);
        assert_eq!(SpoolId::parse("+000000000000001"), None);
    }
}
