//! The practices in SQLite (`migrations/oct/0008_practices.sql`): every change runs in one
//! IMMEDIATE transaction (behind the process's write gate) that writes the row, its audit line
//! and the new generation together.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use svoct_formats::PaddedNumber;

use super::SqliteOctStore;
use crate::oct::practices::*;
use crate::{StoreError, sql};

const SELECT: &str = "SELECT id, address, sender_number, ps_number, category, mailbox, certificate,
        state, state_reason, created_at, updated_at FROM practice";

fn record(r: &rusqlite::Row<'_>) -> rusqlite::Result<PracticeRecord> {
    let state: String = r.get(7)?;
    Ok(PracticeRecord {
        id: r.get(0)?,
        fields: PracticeFields {
            address: r.get(1)?,
            sender_number: r.get(2)?,
            ps_number: r.get(3)?,
            category: r.get(4)?,
            mailbox: r.get(5)?,
            certificate: r.get(6)?,
        },
        state: PracticeState::parse(&state).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                7,
                rusqlite::types::Type::Text,
                format!("unknown practice state {state:?}").into(),
            )
        })?,
        state_reason: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
    })
}

fn by_id(conn: &Connection, id: i64) -> Result<Option<PracticeRecord>, StoreError> {
    conn.query_row(&format!("{SELECT} WHERE id = ?1"), [id], record)
        .optional()
        .map_err(sql("read practice"))
}

fn by_address(conn: &Connection, address: &str) -> Result<Option<PracticeRecord>, StoreError> {
    conn.query_row(&format!("{SELECT} WHERE address = ?1"), [address], record)
        .optional()
        .map_err(sql("read practice"))
}

/// A unique-key violation told as which value is taken; other failures as they are.
fn insert_error(f: &PracticeFields) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
    move |source| {
        let text = source.to_string();
        if text.contains("UNIQUE") {
            let (what, value) = if text.contains("practice.address") {
                ("address", &f.address)
            } else if text.contains("practice.sender_key") {
                ("sender number", &f.sender_number)
            } else {
                ("PS number", &f.ps_number)
            };
            return StoreError::Duplicate {
                what,
                value: value.clone(),
            };
        }
        StoreError::Sql {
            op: "write practice",
            source,
        }
    }
}

fn audit(
    conn: &Connection,
    (actor, now): (&str, i64),
    action: &str,
    id: i64,
    address: &str,
    change: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO practice_audit (at, actor, action, practice_id, address, change)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![now, actor, action, id, address, change],
    )
    .map_err(sql("write practice audit"))?;
    conn.execute(
        "UPDATE practice_generation SET generation = generation + 1 WHERE id = 1",
        [],
    )
    .map_err(sql("bump practice generation"))?;
    Ok(())
}

/// The values of columns `?1` to `?9` of [`insert`] and [`update`]: the fields with their
/// keys (significant digits), then the time.
fn values(f: &PracticeFields, now: i64) -> [Value; 9] {
    [
        f.address.clone().into(),
        f.sender_number.clone().into(),
        PaddedNumber::new(&f.sender_number)
            .significant()
            .to_owned()
            .into(),
        f.ps_number.clone().into(),
        PaddedNumber::new(&f.ps_number).significant().to_owned().into(),
        f.category.clone().into(),
        f.mailbox.clone().into(),
        f.certificate.clone().into(),
        now.into(),
    ]
}

fn insert(conn: &Connection, f: &PracticeFields, who: (&str, i64)) -> Result<i64, StoreError> {
    let id: i64 = conn
        .query_row(
            "INSERT INTO practice (address, sender_number, sender_key, ps_number, ps_key, category,
             mailbox, certificate, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9) RETURNING id",
            params_from_iter(values(f, who.1)),
            |r| r.get(0),
        )
        .map_err(insert_error(f))?;
    audit(conn, who, "add", id, &f.address, &f.describe())?;
    Ok(id)
}

/// Rewrites practice `old` with `f`, audited with the differences; `false` when nothing differs.
fn update(
    conn: &Connection,
    old: &PracticeRecord,
    f: &PracticeFields,
    who: (&str, i64),
) -> Result<bool, StoreError> {
    let diff = old.fields.differences(f);
    if diff.is_empty() {
        return Ok(false);
    }
    let id = Value::from(old.id);
    conn.execute(
        "UPDATE practice SET address = ?1, sender_number = ?2, sender_key = ?3, ps_number = ?4,
         ps_key = ?5, category = ?6, mailbox = ?7, certificate = ?8, updated_at = ?9 WHERE id = ?10",
        params_from_iter(values(f, who.1).iter().chain([&id])),
    )
    .map_err(insert_error(f))?;
    let change: Vec<String> = diff
        .iter()
        .map(|(name, before, after)| format!("{name}: {before} -> {after}"))
        .collect();
    audit(conn, who, "update", old.id, &f.address, &change.join("; "))?;
    Ok(true)
}

fn found(conn: &Connection, id: i64) -> Result<PracticeRecord, StoreError> {
    by_id(conn, id)?.ok_or(StoreError::NotFound {
        table: "practice",
        id,
    })
}

pub(super) fn generation(s: &SqliteOctStore) -> Result<i64, StoreError> {
    s.conn
        .prepare_cached("SELECT generation FROM practice_generation WHERE id = 1")
        .and_then(|mut st| st.query_row([], |r| r.get(0)))
        .map_err(sql("read practice generation"))
}

/// Every row `query` returns with `args`, each read by `row`.
fn rows<T>(
    s: &SqliteOctStore,
    what: &'static str,
    query: &str,
    args: impl rusqlite::Params,
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let mut st = s.conn.prepare(query).map_err(sql(what))?;
    let rows = st.query_map(args, row).map_err(sql(what))?;
    rows.collect::<Result<Vec<_>, _>>().map_err(sql(what))
}

pub(super) fn list(s: &SqliteOctStore) -> Result<Vec<PracticeRecord>, StoreError> {
    rows(s, "list practices", &format!("{SELECT} ORDER BY id"), [], record)
}

pub(super) fn find(s: &SqliteOctStore, key: &str) -> Result<Option<PracticeRecord>, StoreError> {
    let key = key.trim();
    if key.contains('@') {
        return by_address(&s.conn, key);
    }
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let by_ps = s
        .conn
        .query_row(
            &format!("{SELECT} WHERE ps_key = ?1"),
            [PaddedNumber::new(key).significant()],
            record,
        )
        .optional()
        .map_err(sql("read practice"))?;
    match by_ps {
        Some(p) => Ok(Some(p)),
        None => key.parse::<i64>().map_or(Ok(None), |id| by_id(&s.conn, id)),
    }
}

pub(super) fn add(
    s: &SqliteOctStore,
    f: &PracticeFields,
    actor: &str,
    now: i64,
) -> Result<PracticeRecord, StoreError> {
    s.in_immediate("add practice", || {
        let id = insert(&s.conn, f, (actor, now))?;
        found(&s.conn, id)
    })
}

pub(super) fn set_state(
    s: &SqliteOctStore,
    id: i64,
    state: PracticeState,
    reason: Option<&str>,
    (actor, now): (&str, i64),
) -> Result<PracticeRecord, StoreError> {
    s.in_immediate("change practice state", || {
        let old = found(&s.conn, id)?;
        if old.state == state {
            return Ok(old);
        }
        s.conn
            .execute(
                "UPDATE practice SET state = ?2, state_reason = ?3, updated_at = ?4 WHERE id = ?1",
                params![id, state.as_str(), reason, now],
            )
            .map_err(sql("change practice state"))?;
        let mut change = format!("state: {} -> {}", old.state.as_str(), state.as_str());
        if let Some(r) = reason {
            change.push_str("; reason: ");
            change.push_str(r);
        }
        let action = match state {
            PracticeState::Active => "resume",
            PracticeState::Suspended => "suspend",
        };
        audit(&s.conn, (actor, now), action, id, &old.fields.address, &change)?;
        found(&s.conn, id)
    })
}

pub(super) fn remove(
    s: &SqliteOctStore,
    id: i64,
    reason: &str,
    (actor, now): (&str, i64),
) -> Result<PracticeRecord, StoreError> {
    s.in_immediate("remove practice", || {
        let old = found(&s.conn, id)?;
        s.conn
            .execute("DELETE FROM practice WHERE id = ?1", [id])
            .map_err(sql("remove practice"))?;
        let change = format!("reason: {reason}; was: {}", old.fields.describe());
        audit(&s.conn, (actor, now), "remove", id, &old.fields.address, &change)?;
        Ok(old)
    })
}

pub(super) fn import(
    s: &SqliteOctStore,
    rows: &[PracticeFields],
    update_existing: bool,
    who: (&str, i64),
) -> Result<ImportOutcome, StoreError> {
    s.in_immediate("import practices", || {
        let mut outcome = ImportOutcome::default();
        for f in rows {
            match by_address(&s.conn, &f.address)? {
                None => {
                    insert(&s.conn, f, who)?;
                    outcome.added += 1;
                }
                Some(old) if old.fields.differences(f).is_empty() => outcome.unchanged += 1,
                Some(old) if update_existing => {
                    update(&s.conn, &old, f, who)?;
                    outcome.updated += 1;
                }
                Some(_) => outcome.kept += 1,
            }
        }
        Ok(outcome)
    })
}

pub(super) fn audit_trail(s: &SqliteOctStore, id: Option<i64>) -> Result<Vec<PracticeAudit>, StoreError> {
    let query = "SELECT id, at, actor, action, practice_id, address, change FROM practice_audit
         WHERE ?1 IS NULL OR practice_id = ?1 ORDER BY id";
    rows(s, "read practice audit", query, [id], |r| {
        Ok(PracticeAudit {
            id: r.get(0)?,
            at: r.get(1)?,
            actor: r.get(2)?,
            action: r.get(3)?,
            practice_id: r.get(4)?,
            address: r.get(5)?,
            change: r.get(6)?,
        })
    })
}

pub(super) fn messages(
    s: &SqliteOctStore,
    address: &str,
    limit: usize,
) -> Result<Vec<PracticeMessage>, StoreError> {
    let query = "SELECT p.spool_id, p.at, p.kind, p.outcome, p.reason, p.subject, q.code
         FROM processed p LEFT JOIN quarantine q ON q.spool_id = p.spool_id
         WHERE p.mail_from = ?1 COLLATE NOCASE ORDER BY p.at DESC, p.rowid DESC LIMIT ?2";
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    rows(s, "read practice messages", query, params![address, limit], |r| {
        Ok(PracticeMessage {
            spool_id: r.get(0)?,
            at: r.get(1)?,
            kind: r.get(2)?,
            outcome: r.get(3)?,
            reason: r.get(4)?,
            subject: r.get(5)?,
            code: r.get(6)?,
        })
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::oct::OctStore;

    fn fields(address: &str, sender: &str, ps: &str) -> PracticeFields {
        PracticeFields {
            address: address.into(),
            sender_number: sender.into(),
            ps_number: ps.into(),
            category: "XX".into(),
            mailbox: None,
            certificate: None,
        }
    }

    fn open() -> (tempfile::TempDir, SqliteOctStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteOctStore::open(&dir.path().join("state.sqlite")).unwrap();
        (dir, s)
    }

    #[test]
    fn add_find_and_uniqueness() {
        let (dir, s) = open();
        let g0 = s.practice_generation().unwrap();
        let p = s
            .practice_add(
                &fields("Dr.Martin@ps.example", "00000123456789", "123456789"),
                "alice",
                10,
            )
            .unwrap();
        assert_eq!(p.state, PracticeState::Active);
        assert_eq!((p.created_at, p.updated_at), (10, 10));
        assert!(s.practice_generation().unwrap() > g0);
        // Found by address (any case), PS number (any padding) and id.
        for key in ["dr.martin@PS.example", "000123456789", &p.id.to_string()] {
            assert_eq!(s.practice_find(key).unwrap().map(|r| r.id), Some(p.id), "{key}");
        }
        assert_eq!(s.practice_find("nobody@x").unwrap(), None);
        assert_eq!(s.practice_find("not a key").unwrap(), None);
        // The same address in another case, or a number with other padding, is taken.
        let taken = [
            (fields("DR.MARTIN@ps.example", "2", "2"), "address"),
            (fields("b@ps.example", "123456789", "3"), "sender number"),
            (fields("c@ps.example", "4", "0000123456789"), "PS number"),
        ];
        for (f, what) in taken {
            match s.practice_add(&f, "alice", 11) {
                Err(StoreError::Duplicate { what: w, .. }) => assert_eq!(w, what),
                other => panic!("{what}: {other:?}"),
            }
        }
        assert_eq!(s.practice_list().unwrap().len(), 1);
        let mode = std::fs::metadata(dir.path().join("state.sqlite"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn state_changes_and_removal_are_audited_with_who() {
        let (_dir, s) = open();
        let p = s.practice_add(&fields("a@ps", "1", "11"), "config", 1).unwrap();
        let g = s.practice_generation().unwrap();
        let susp = s
            .practice_set_state(p.id, PracticeState::Suspended, Some("unpaid fees"), "bob", 2)
            .unwrap();
        assert_eq!(susp.state, PracticeState::Suspended);
        assert_eq!(susp.state_reason.as_deref(), Some("unpaid fees"));
        // Suspending again changes nothing and writes no audit line.
        s.practice_set_state(p.id, PracticeState::Suspended, Some("again"), "bob", 3)
            .unwrap();
        s.practice_set_state(p.id, PracticeState::Active, None, "carol", 4)
            .unwrap();
        s.practice_remove(p.id, "left the OCT", "dave", 5).unwrap();
        assert!(s.practice_generation().unwrap() >= g + 3);
        assert_eq!(s.practice_find("a@ps").unwrap(), None);
        let trail = s.practice_audit(Some(p.id)).unwrap();
        let seen: Vec<(&str, &str)> = trail
            .iter()
            .map(|a| (a.actor.as_str(), a.action.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("config", "add"),
                ("bob", "suspend"),
                ("carol", "resume"),
                ("dave", "remove")
            ]
        );
        assert_eq!(trail[1].change, "state: active -> suspended; reason: unpaid fees");
        assert!(trail[3].change.contains("left the OCT"), "{}", trail[3].change);
        assert!(trail.iter().all(|a| a.address == "a@ps"));
        assert!(matches!(
            s.practice_set_state(p.id, PracticeState::Active, None, "x", 6),
            Err(StoreError::NotFound { .. })
        ));
        assert!(matches!(
            s.practice_remove(p.id, "again", "x", 6),
            Err(StoreError::NotFound { .. })
        ));
    }

    #[test]
    fn import_is_all_or_nothing_and_updates_only_when_asked() {
        let (_dir, s) = open();
        s.practice_add(&fields("a@ps", "1", "11"), "alice", 1).unwrap();
        let mut changed = fields("a@ps", "1", "11");
        changed.mailbox = Some("box@ps".into());
        let rows = [changed.clone(), fields("b@ps", "2", "22")];
        let out = s.practice_import(&rows, false, "alice", 2).unwrap();
        assert_eq!(
            out,
            ImportOutcome {
                added: 1,
                kept: 1,
                ..Default::default()
            }
        );
        assert_eq!(s.practice_find("a@ps").unwrap().unwrap().fields.mailbox, None);
        let out = s.practice_import(&rows, true, "alice", 3).unwrap();
        assert_eq!((out.updated, out.unchanged), (1, 1));
        assert_eq!(
            s.practice_find("a@ps")
                .unwrap()
                .unwrap()
                .fields
                .mailbox
                .as_deref(),
            Some("box@ps")
        );
        let update = s.practice_audit(None).unwrap().pop().unwrap();
        assert_eq!(
            (update.action.as_str(), update.change.as_str()),
            ("update", "mailbox:  -> box@ps")
        );
        // A row taking another practice's PS number fails the whole import.
        let before = s.practice_list().unwrap();
        let bad = [fields("c@ps", "3", "33"), fields("d@ps", "4", "0022")];
        assert!(matches!(
            s.practice_import(&bad, false, "alice", 4),
            Err(StoreError::Duplicate {
                what: "PS number",
                ..
            })
        ));
        assert_eq!(s.practice_list().unwrap(), before);
    }

    #[test]
    fn recent_messages_of_a_practice() {
        let (_dir, mut s) = open();
        let mut p = crate::oct::sqlite::tests::processed_for_tests("s1");
        p.mail_from = "A@PS".into();
        s.commit(&p).unwrap();
        let m = s.practice_messages("a@ps", 10).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].spool_id, "s1");
        assert!(s.practice_messages("b@ps", 10).unwrap().is_empty());
    }
}
