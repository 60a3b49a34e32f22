//! Portable history: the whole PS store in one tar of plain files, and back
//! (`svoct ps export` / `svoct ps import`), for a practice that changes computer, software or OCT.
//!
//! The layout is a provisional format, documented in `docs/formats/ps-archive.md`:
//! `manifest.json` (format name, version, schema version, tables with their columns and row
//! counts), `tables/<table>.jsonl` (one JSON object per row), `messages/inbox-<id>.eml` (every
//! received message as it came), `files/<table>-<row>-<column>.bin` (other binary values) and
//! `payloads/<compostage>.payload` (the saved sent files, as in the payload directory).
//! Any tar reader opens it; `python3 -m tarfile -l` lists it.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use svoct_store::Store;
use svoct_store::dump::{Cell, RestoreError};

/// The `format` field of the manifest.
pub const FORMAT: &str = "svoct-ps-archive";
/// The `version` field this program writes and reads.
pub const VERSION: u32 = 1;
/// The manifest's member name.
pub const MANIFEST: &str = "manifest.json";

/// Bounds on what an archive may make an import hold or do.
const MAX_MEMBERS: usize = 10_000_000;
const MAX_LINE: u64 = 64 * 1024 * 1024;
const MAX_BLOB: u64 = 256 * 1024 * 1024;
const MAX_MANIFEST: u64 = 16 * 1024 * 1024;

/// What the archive says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    /// The store schema version the rows were written with.
    pub schema_version: i64,
    /// When the archive was written (RFC 3339).
    pub created: String,
    pub tables: Vec<TableInfo>,
    /// Number of `payloads/` members.
    pub payloads: u64,
}

/// One table of the archive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableInfo {
    pub name: String,
    pub columns: Vec<String>,
    pub rows: u64,
    /// The member holding its rows (`tables/<name>.jsonl`).
    pub file: String,
}

/// What went wrong writing or reading an archive; each variant names the file or member.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] svoct_store::StoreError),
    #[error("archive {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("archive {path}: member {member}, line {line}: {reason}")]
    Row {
        path: PathBuf,
        member: String,
        line: u64,
        reason: String,
    },
    #[error(
        "the store {path} already holds data: import only into a new store (set `store` in the \
         configuration to a new file)"
    )]
    NotEmpty { path: PathBuf },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.to_owned(),
        source,
    }
}

fn invalid(path: &Path, reason: impl Into<String>) -> ArchiveError {
    ArchiveError::Invalid {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// The payload directory of a store (same rule as [`crate::payload::Payloads::beside`]).
fn payload_dir(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(".payloads");
    PathBuf::from(name)
}

/// The saved payload files of a store, sorted: `<digits>.payload` only (not half-written `.tmp`).
fn payload_files(store: &Path) -> Result<Vec<PathBuf>, ArchiveError> {
    let dir = payload_dir(store);
    let read = match fs::read_dir(&dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(&dir)(e)),
    };
    let mut out = Vec::new();
    for entry in read {
        let path = entry.map_err(io_err(&dir))?.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(is_payload_name)
        {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn is_payload_name(name: &str) -> bool {
    name.strip_suffix(".payload")
        .is_some_and(|stem| !stem.is_empty() && stem.bytes().all(|b| b.is_ascii_digit()))
}

/// What an export or import carried.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub tables: Vec<(String, u64)>,
    pub payloads: u64,
}

/// Writes the store at `store` (and its payload directory) to a new archive `out`, mode 0600.
/// Refuses to overwrite an existing file. On error the partial file is removed.
pub fn export(store: &Path, out: &Path) -> Result<Report, ArchiveError> {
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(io_err(out))?;
    let result = write_archive(store, out, file);
    if result.is_err() {
        let _ = fs::remove_file(out);
    }
    result
}

fn member_header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o600);
    h.set_entry_type(tar::EntryType::Regular);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    h.set_mtime(now);
    h
}

fn append(b: &mut tar::Builder<impl Write>, out: &Path, name: &str, data: &[u8]) -> Result<(), ArchiveError> {
    let mut h = member_header(data.len() as u64);
    b.append_data(&mut h, name, data).map_err(io_err(out))
}

fn write_archive(store_path: &Path, out: &Path, file: fs::File) -> Result<Report, ArchiveError> {
    let mut store = Store::open(store_path)?;
    let mut builder = tar::Builder::new(BufWriter::new(file));
    let tables = store.dump_tables()?;
    let mut infos = Vec::new();
    // One read transaction: every table from the same moment.
    store.snapshot(|s| -> Result<(), ArchiveError> {
        for table in &tables {
            infos.push(write_table(s, table, out, &mut builder)?);
        }
        Ok(())
    })??;
    let mut payloads = 0;
    for path in payload_files(store_path)? {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        append(&mut builder, out, &format!("payloads/{name}"), &bytes)?;
        payloads += 1;
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        version: VERSION,
        schema_version: store.schema_version()?,
        created: crate::rfc3339(&time::OffsetDateTime::now_utc()),
        tables: infos,
        payloads,
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| invalid(out, e.to_string()))?;
    append(&mut builder, out, MANIFEST, &json)?;
    let inner = builder.into_inner().map_err(io_err(out))?;
    let file = inner.into_inner().map_err(|e| io_err(out)(e.into_error()))?;
    file.sync_all().map_err(io_err(out))?;
    Ok(Report {
        tables: manifest.tables.iter().map(|t| (t.name.clone(), t.rows)).collect(),
        payloads,
    })
}

/// The member name of a binary value: received messages by their inbox id, as `.eml` (their
/// bytes live in `inbox_raw` since store schema step 8; `inbox.raw` is kept empty).
fn blob_name(table: &str, column: &str, row: u64, cells: &[Cell], columns: &[String]) -> String {
    let id = columns
        .iter()
        .position(|c| c == "id")
        .and_then(|i| match cells.get(i) {
            Some(Cell::Integer(id)) => Some(*id),
            _ => None,
        });
    match (table, column, id) {
        ("inbox_raw", "raw", Some(id)) => format!("messages/inbox-{id}.eml"),
        _ => format!("files/{table}-{row}-{column}.bin"),
    }
}

/// A scratch file next to the archive (0600, removed when dropped), so that a table of a million
/// rows is staged on disk rather than in memory before it becomes a member.
struct Scratch {
    path: PathBuf,
    file: fs::File,
}

impl Scratch {
    fn create(out: &Path) -> Result<Scratch, ArchiveError> {
        let mut name = out.as_os_str().to_owned();
        name.push(format!(".{}.part", std::process::id()));
        let path = PathBuf::from(name);
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err(&path))?;
        Ok(Scratch { path, file })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Dumps one table: its binary values as members first, then its JSON lines.
fn write_table(
    s: &Store,
    table: &str,
    out: &Path,
    builder: &mut tar::Builder<impl Write>,
) -> Result<TableInfo, ArchiveError> {
    let columns = s.dump_columns(table)?;
    let scratch = Scratch::create(out)?;
    let mut lines = BufWriter::new(&scratch.file);
    let mut rows = 0u64;
    s.dump_rows(table, |cells| -> Result<(), ArchiveError> {
        let mut object = Map::new();
        for (column, cell) in columns.iter().zip(&cells) {
            let value = match cell {
                Cell::Null => Value::Null,
                Cell::Integer(n) => Value::from(*n),
                Cell::Real(f) => Value::from(*f),
                Cell::Text(t) => Value::from(t.as_str()),
                Cell::Blob(b) => {
                    let name = blob_name(table, column, rows, &cells, &columns);
                    append(builder, out, &name, b)?;
                    serde_json::json!({ "file": name })
                }
            };
            object.insert(column.clone(), value);
        }
        serde_json::to_writer(&mut lines, &object).map_err(|e| invalid(out, e.to_string()))?;
        lines.write_all(b"\n").map_err(io_err(&scratch.path))?;
        rows += 1;
        Ok(())
    })??;
    lines.flush().map_err(io_err(&scratch.path))?;
    drop(lines);
    let mut staged = &scratch.file;
    let size = staged.seek(SeekFrom::End(0)).map_err(io_err(&scratch.path))?;
    staged.seek(SeekFrom::Start(0)).map_err(io_err(&scratch.path))?;
    let file = format!("tables/{table}.jsonl");
    let mut h = member_header(size);
    builder.append_data(&mut h, &file, staged).map_err(io_err(out))?;
    Ok(TableInfo {
        name: table.to_owned(),
        columns,
        rows,
        file,
    })
}

/// Where each member's bytes are in the archive file.
struct Index {
    path: PathBuf,
    file: fs::File,
    members: HashMap<String, (u64, u64)>,
}

impl Index {
    fn open(path: &Path) -> Result<Index, ArchiveError> {
        let file = fs::File::open(path).map_err(io_err(path))?;
        let mut members = HashMap::new();
        let mut archive = tar::Archive::new(BufReader::new(file.try_clone().map_err(io_err(path))?));
        for entry in archive.entries().map_err(io_err(path))? {
            let entry = entry.map_err(|e| invalid(path, format!("not a tar archive: {e}")))?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let place = (entry.raw_file_position(), entry.size());
            if members.insert(name.clone(), place).is_some() {
                return Err(invalid(path, format!("member {name} appears twice")));
            }
            if members.len() > MAX_MEMBERS {
                return Err(invalid(path, format!("more than {MAX_MEMBERS} members")));
            }
        }
        Ok(Index {
            path: path.to_owned(),
            file,
            members,
        })
    }

    /// A reader over one member, refusing members larger than `max`.
    fn member(&self, name: &str, max: u64) -> Result<impl Read + '_, ArchiveError> {
        let (offset, size) = *self
            .members
            .get(name)
            .ok_or_else(|| invalid(&self.path, format!("member {name} is missing")))?;
        if size > max {
            return Err(invalid(
                &self.path,
                format!("member {name}: {size} bytes, more than {max}"),
            ));
        }
        let mut f = &self.file;
        f.seek(SeekFrom::Start(offset)).map_err(io_err(&self.path))?;
        Ok(f.take(size))
    }

    fn read(&self, name: &str, max: u64) -> Result<Vec<u8>, ArchiveError> {
        let mut out = Vec::new();
        self.member(name, max)?
            .read_to_end(&mut out)
            .map_err(io_err(&self.path))?;
        Ok(out)
    }
}

/// Reads and checks the manifest of an archive.
pub fn read_manifest(archive: &Path) -> Result<Manifest, ArchiveError> {
    let index = Index::open(archive)?;
    manifest_of(&index)
}

fn manifest_of(index: &Index) -> Result<Manifest, ArchiveError> {
    let bytes = index.read(MANIFEST, MAX_MANIFEST)?;
    let m: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| invalid(&index.path, format!("{MANIFEST}: {e}")))?;
    if m.format != FORMAT || m.version != VERSION {
        return Err(invalid(
            &index.path,
            format!(
                "{MANIFEST}: format {:?} version {}; this program reads {FORMAT:?} version {VERSION}",
                m.format, m.version
            ),
        ));
    }
    Ok(m)
}

/// Restores an archive into the store at `store`, which must be new or empty (no journal entry,
/// no received message, no payload). Either everything is restored or the store stays empty.
pub fn import(archive: &Path, store_path: &Path) -> Result<Report, ArchiveError> {
    let index = Index::open(archive)?;
    let manifest = manifest_of(&index)?;
    if let Some(dir) = store_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err(dir))?;
    }
    let mut store = Store::open(store_path)?;
    if !store.is_empty()? || !payload_files(store_path)?.is_empty() {
        return Err(ArchiveError::NotEmpty {
            path: store_path.to_owned(),
        });
    }
    // The restored history is health data: the store file readable by its owner only.
    fs::set_permissions(store_path, fs::Permissions::from_mode(0o600)).map_err(io_err(store_path))?;
    let ours = store.schema_version()?;
    if manifest.schema_version != ours {
        return Err(invalid(
            archive,
            format!(
                "written with store schema {}, this program's store is schema {ours}: import it \
                 with the same svoct version that exported it",
                manifest.schema_version
            ),
        ));
    }
    let restore = store.restore()?;
    let mut tables = Vec::new();
    for t in &manifest.tables {
        let rows = restore_table(&index, &restore, t)?;
        tables.push((t.name.clone(), rows));
    }
    let written = restore_payloads(&index, store_path, manifest.payloads)?;
    if let Err(e) = restore.commit() {
        for p in &written {
            let _ = fs::remove_file(p);
        }
        return Err(e.into());
    }
    Ok(Report {
        tables,
        payloads: written.len() as u64,
    })
}

fn restore_table(
    index: &Index,
    restore: &svoct_store::dump::Restore<'_>,
    t: &TableInfo,
) -> Result<u64, ArchiveError> {
    let row_err = |line: u64, reason: String| ArchiveError::Row {
        path: index.path.clone(),
        member: t.file.clone(),
        line,
        reason,
    };
    restore
        .check(&t.name, &t.columns)
        .map_err(|e| row_err(0, e.to_string()))?;
    let mut reader = BufReader::new(index.member(&t.file, u64::MAX)?);
    let mut line = Vec::new();
    let mut n = 0u64;
    loop {
        line.clear();
        let read = (&mut reader)
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut line)
            .map_err(io_err(&index.path))?;
        if read == 0 {
            break;
        }
        n += 1;
        if read as u64 > MAX_LINE {
            return Err(row_err(n, format!("line longer than {MAX_LINE} bytes")));
        }
        let object: Map<String, Value> =
            serde_json::from_slice(&line).map_err(|e| row_err(n, e.to_string()))?;
        let mut cells = Vec::with_capacity(t.columns.len());
        for column in &t.columns {
            let v = object
                .get(column)
                .ok_or_else(|| row_err(n, format!("no value for column {column}")))?;
            cells.push(cell_of(index, v).map_err(|reason| row_err(n, format!("column {column}: {reason}")))?);
        }
        restore.insert(&t.name, &t.columns, cells).map_err(|e| match e {
            RestoreError::Store(s) => ArchiveError::Store(s),
            e => row_err(n, e.to_string()),
        })?;
    }
    if n != t.rows {
        return Err(row_err(n, format!("{n} rows, the manifest says {}", t.rows)));
    }
    Ok(n)
}

fn cell_of(index: &Index, v: &Value) -> Result<Cell, String> {
    Ok(match v {
        Value::Null => Cell::Null,
        Value::Number(n) => match n.as_i64() {
            Some(i) => Cell::Integer(i),
            None => Cell::Real(n.as_f64().ok_or("number out of range")?),
        },
        Value::String(s) => Cell::Text(s.clone()),
        Value::Object(o) => {
            let name = o
                .get("file")
                .and_then(Value::as_str)
                .ok_or("an object must be {\"file\": MEMBER}")?;
            Cell::Blob(index.read(name, MAX_BLOB).map_err(|e| e.to_string())?)
        }
        Value::Bool(_) | Value::Array(_) => return Err("not a stored value".into()),
    })
}

/// Writes the `payloads/` members into the store's payload directory (0700, files 0600).
/// Returns the files written, so that a failed import can take them back.
fn restore_payloads(index: &Index, store_path: &Path, expected: u64) -> Result<Vec<PathBuf>, ArchiveError> {
    let dir = payload_dir(store_path);
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(io_err(&dir))?;
    let mut names: Vec<&String> = index
        .members
        .keys()
        .filter(|n| n.starts_with("payloads/"))
        .collect();
    names.sort();
    if names.len() as u64 != expected {
        return Err(invalid(
            &index.path,
            format!("{} payload members, the manifest says {expected}", names.len()),
        ));
    }
    let mut written = Vec::new();
    for name in names {
        let file = name.trim_start_matches("payloads/");
        if !is_payload_name(file) {
            return Err(invalid(
                &index.path,
                format!("member {name}: not a payload file name"),
            ));
        }
        let bytes = index.read(name, MAX_BLOB)?;
        let path = dir.join(file);
        let done = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()));
        if let Err(e) = done {
            for p in &written {
                let _ = fs::remove_file(p);
            }
            return Err(io_err(&path)(e));
        }
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(members: &[(&str, &[u8])], path: &Path) {
        let mut b = tar::Builder::new(fs::File::create(path).unwrap());
        for (name, data) in members {
            append(&mut b, path, name, data).unwrap();
        }
        b.finish().unwrap();
    }

    fn manifest(tables: &str, payloads: u64) -> Vec<u8> {
        format!(
            r#"{{"format":"svoct-ps-archive","version":1,"schema_version":{},"created":"x","tables":{tables},"payloads":{payloads}}}"#,
            Store::open_in_memory().unwrap().schema_version().unwrap()
        )
        .into_bytes()
    }

    fn journal_is_empty(store: &Path) -> bool {
        Store::open(store).unwrap().is_empty().unwrap()
    }

    #[test]
    fn garbage_is_a_typed_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.tar");
        fs::write(&bad, vec![0x5a; 3000]).unwrap();
        let err = import(&bad, &dir.path().join("s.sqlite"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad.tar"), "{err}");
    }

    #[test]
    fn an_archive_without_manifest_or_of_another_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.tar");
        tar_of(&[("tables/journal.jsonl", b"")], &a);
        let err = import(&a, &dir.path().join("s.sqlite")).unwrap_err().to_string();
        assert!(err.contains("manifest.json is missing"), "{err}");
        let m = String::from_utf8(manifest("[]", 0))
            .unwrap()
            .replace("\"version\":1", "\"version\":9");
        tar_of(&[(MANIFEST, m.as_bytes())], &a);
        let err = import(&a, &dir.path().join("s.sqlite")).unwrap_err().to_string();
        assert!(err.contains("version 9"), "{err}");
    }

    #[test]
    fn a_bad_row_names_member_and_line_and_restores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.tar");
        let tables = r#"[{"name":"journal","columns":["id","direction","profile","subject","status","created_ms","updated_ms"],"rows":2,"file":"tables/journal.jsonl"}]"#;
        let good = r#"{"id":1,"direction":"out","profile":"P","subject":"S","status":"sent","created_ms":1,"updated_ms":1}"#;
        let rows = format!("{good}\n{{\"id\":2,\"direction\":true}}\n");
        tar_of(
            &[
                (MANIFEST, &manifest(tables, 0)),
                ("tables/journal.jsonl", rows.as_bytes()),
            ],
            &a,
        );
        let store = dir.path().join("s.sqlite");
        let err = import(&a, &store).unwrap_err().to_string();
        assert!(err.contains("tables/journal.jsonl, line 2"), "{err}");
        assert!(journal_is_empty(&store), "all or nothing");
    }

    #[test]
    fn a_table_or_column_not_in_this_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.tar");
        let tables = r#"[{"name":"journal","columns":["id","x; DROP TABLE journal"],"rows":0,"file":"tables/journal.jsonl"}]"#;
        tar_of(
            &[(MANIFEST, &manifest(tables, 0)), ("tables/journal.jsonl", b"")],
            &a,
        );
        let err = import(&a, &dir.path().join("s.sqlite")).unwrap_err().to_string();
        assert!(err.contains("no column"), "{err}");
    }

    #[test]
    fn a_payload_member_with_a_path_in_its_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.tar");
        tar_of(
            &[(MANIFEST, &manifest("[]", 1)), ("payloads/sub/12.payload", b"x")],
            &a,
        );
        let store = dir.path().join("s.sqlite");
        let err = import(&a, &store).unwrap_err().to_string();
        assert!(err.contains("not a payload file name"), "{err}");
        assert!(!payload_dir(&store).join("sub").exists());
    }
}
