//! The local opposition list (LOI, annex R7.1) and the dLOI increments that make it.
//!
//! Why in the store: the billing software asks "is this card opposed?" while the patient is at
//! the desk, offline; the list must survive restarts and be updated exactly once per increment.
//! The decision (apply, already applied, gap, stale, conflict) is [`LoiState::check`] of
//! `svoct_formats::loi`, fed with the stored version and history, so the in-memory and the stored
//! list follow one rule. The list changes in one transaction per increment.
//!
//! An increment that arrives early (a gap: the list is at 3, it starts at 5) is held in
//! `loi_pending` and applied as soon as the missing ones arrive; a stale or conflicting one is
//! refused and the list left unchanged.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, Transaction, params};
use serde::Serialize;
use svoct_formats::loi::{Applied, ApplyError, Increment, LoiState};

use crate::db::Store;
use crate::{InboxId, StoreError, now_ms, sql};

/// What became of an increment handed to [`Loi::apply`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "result")]
pub enum LoiOutcome {
    /// Applied now, or recognised as applied before (see [`Applied`]).
    Done { applied: Applied },
    /// A gap: kept in the store, applied once the list reaches `from`.
    Held { current: u64, from: u64 },
    /// Stale or conflicting: refused, the list is unchanged.
    Refused { reason: String },
}

/// The report of [`Loi::apply`]: the outcome for the increment given, and the held increments
/// that could follow it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LoiReport {
    pub outcome: LoiOutcome,
    /// Held increments applied after this one, in version order.
    pub then_applied: Vec<Applied>,
    /// The list version now.
    pub version: u64,
}

/// One applied increment, as kept in the history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LoiHistory {
    pub from: u64,
    pub to: u64,
    pub added: u64,
    pub removed: u64,
    pub applied_ms: i64,
}

/// The LOI view of a [`Store`].
#[derive(Debug, Clone, Copy)]
pub struct Loi<'a> {
    store: &'a Store,
}

impl Store {
    /// The local opposition list.
    pub fn loi(&self) -> Loi<'_> {
        Loi { store: self }
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn corrupt(column: &'static str, value: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        table: "loi",
        column,
        row: 1,
        value: value.into(),
    }
}

/// The version and history (no cards: [`LoiState::check`] does not need them).
fn load_state(tx: &Transaction<'_>) -> Result<LoiState, StoreError> {
    let version: i64 = tx
        .query_row("SELECT version FROM loi_meta WHERE id = 1", [], |r| r.get(0))
        .map_err(sql("read LOI version"))?;
    let mut applied = BTreeMap::new();
    let mut stmt = tx
        .prepare("SELECT from_version, to_version, digest FROM loi_increment")
        .map_err(sql("prepare LOI history"))?;
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
        })
        .map_err(sql("query LOI history"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql("read LOI history"))?;
    for (from, to, digest) in rows {
        let digest = u64::from_str_radix(&digest, 16).map_err(|_| corrupt("digest", digest.clone()))?;
        let from = u64::try_from(from).map_err(|_| corrupt("from_version", from.to_string()))?;
        let to = u64::try_from(to).map_err(|_| corrupt("to_version", to.to_string()))?;
        applied.insert(from, (to, digest));
    }
    Ok(LoiState {
        version: u64::try_from(version).map_err(|_| corrupt("version", version.to_string()))?,
        cards: Default::default(),
        applied,
    })
}

/// Applies `inc` (already checked) to the stored list.
fn write(
    tx: &Transaction<'_>,
    state: &LoiState,
    inc: &Increment,
    inbox: Option<InboxId>,
) -> Result<Applied, StoreError> {
    let (mut added, mut removed, mut already_listed, mut not_listed) = (0usize, 0usize, 0usize, 0usize);
    {
        let mut ins = tx
            .prepare_cached("INSERT OR IGNORE INTO loi_card (card) VALUES (?1)")
            .map_err(sql("prepare LOI insert"))?;
        for c in &inc.additions {
            if ins.execute([c]).map_err(sql("add LOI card"))? == 1 {
                added += 1;
            } else {
                already_listed += 1;
            }
        }
        let mut del = tx
            .prepare_cached("DELETE FROM loi_card WHERE card = ?1")
            .map_err(sql("prepare LOI delete"))?;
        for c in &inc.removals {
            if del.execute([c]).map_err(sql("remove LOI card"))? == 1 {
                removed += 1;
            } else {
                not_listed += 1;
            }
        }
    }
    tx.execute(
        "INSERT INTO loi_increment (from_version, to_version, digest, added, removed, applied_ms, inbox)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            to_i64(inc.from),
            to_i64(inc.to),
            format!("{:016x}", inc.digest()),
            to_i64(added as u64),
            to_i64(removed as u64),
            now_ms(),
            inbox.map(|i| i.0)
        ],
    )
    .map_err(sql("record LOI increment"))?;
    tx.execute("UPDATE loi_meta SET version = ?1 WHERE id = 1", [to_i64(inc.to)])
        .map_err(sql("update LOI version"))?;
    tx.execute(
        "DELETE FROM loi_pending WHERE from_version = ?1",
        [to_i64(inc.from)],
    )
    .map_err(sql("drop held LOI increment"))?;
    Ok(Applied::Applied {
        from: state.version,
        to: inc.to,
        added,
        removed,
        already_listed,
        not_listed,
    })
}

impl Loi<'_> {
    /// Applies a parsed increment (`file` is its raw bytes, kept if it must wait for a missing
    /// one), then any held increments that can now follow, all in one transaction.
    pub fn apply(
        &self,
        inc: &Increment,
        file: &[u8],
        inbox: Option<InboxId>,
    ) -> Result<LoiReport, StoreError> {
        let tx = self
            .store
            .conn
            .unchecked_transaction()
            .map_err(sql("begin LOI apply"))?;
        let state = load_state(&tx)?;
        let outcome =
            match state.check(inc) {
                Ok(Some(noop)) => LoiOutcome::Done { applied: noop },
                Ok(None) => LoiOutcome::Done {
                    applied: write(&tx, &state, inc, inbox)?,
                },
                Err(ApplyError::Gap { current, from }) => {
                    tx.execute(
                    "INSERT OR REPLACE INTO loi_pending (from_version, to_version, file, inbox, received_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![to_i64(inc.from), to_i64(inc.to), file, inbox.map(|i| i.0), now_ms()],
                )
                .map_err(sql("hold LOI increment"))?;
                    LoiOutcome::Held { current, from }
                }
                Err(e) => LoiOutcome::Refused {
                    reason: e.to_string(),
                },
            };
        let mut then_applied = Vec::new();
        if matches!(outcome, LoiOutcome::Done { .. }) {
            loop {
                let state = load_state(&tx)?;
                let next: Option<(Vec<u8>, Option<i64>)> = tx
                    .query_row(
                        "SELECT file, inbox FROM loi_pending WHERE from_version = ?1",
                        [to_i64(state.version)],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .map_err(sql("read held LOI increment"))?;
                let Some((bytes, held_inbox)) = next else { break };
                let Ok(held) = Increment::parse(&bytes) else {
                    tx.execute(
                        "DELETE FROM loi_pending WHERE from_version = ?1",
                        [to_i64(state.version)],
                    )
                    .map_err(sql("drop held LOI increment"))?;
                    break;
                };
                match state.check(&held) {
                    Ok(None) => then_applied.push(write(&tx, &state, &held, held_inbox.map(InboxId))?),
                    _ => {
                        tx.execute(
                            "DELETE FROM loi_pending WHERE from_version = ?1",
                            [to_i64(state.version)],
                        )
                        .map_err(sql("drop held LOI increment"))?;
                        break;
                    }
                }
            }
        }
        let version = load_state(&tx)?.version;
        tx.commit().map_err(sql("commit LOI apply"))?;
        Ok(LoiReport {
            outcome,
            then_applied,
            version,
        })
    }

    /// Whether `card` is on the opposition list.
    pub fn is_opposed(&self, card: &str) -> Result<bool, StoreError> {
        self.store
            .conn
            .query_row("SELECT 1 FROM loi_card WHERE card = ?1", [card], |_| Ok(()))
            .optional()
            .map(|o| o.is_some())
            .map_err(sql("read LOI card"))
    }

    /// The list version held (0: none yet); what the dLOI request asks increments after.
    pub fn version(&self) -> Result<u64, StoreError> {
        let v: i64 = self
            .store
            .conn
            .query_row("SELECT version FROM loi_meta WHERE id = 1", [], |r| r.get(0))
            .map_err(sql("read LOI version"))?;
        u64::try_from(v).map_err(|_| corrupt("version", v.to_string()))
    }

    /// Number of opposed cards.
    pub fn len(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .store
            .conn
            .query_row("SELECT COUNT(*) FROM loi_card", [], |r| r.get(0))
            .map_err(sql("count LOI cards"))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }

    /// `(from, to)` of the increments held for a missing predecessor.
    pub fn held(&self) -> Result<Vec<(u64, u64)>, StoreError> {
        let mut stmt = self
            .store
            .conn
            .prepare("SELECT from_version, to_version FROM loi_pending ORDER BY from_version")
            .map_err(sql("prepare held LOI query"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
            .map_err(sql("query held LOI"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql("read held LOI"))?;
        Ok(rows
            .into_iter()
            .map(|(a, b)| (u64::try_from(a).unwrap_or(0), u64::try_from(b).unwrap_or(0)))
            .collect())
    }

    /// The increments applied, in version order.
    pub fn history(&self) -> Result<Vec<LoiHistory>, StoreError> {
        let mut stmt = self
            .store
            .conn
            .prepare("SELECT from_version, to_version, added, removed, applied_ms FROM loi_increment ORDER BY from_version")
            .map_err(sql("prepare LOI history"))?;
        stmt.query_map([], |r| {
            Ok(LoiHistory {
                from: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                to: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                added: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                removed: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                applied_ms: r.get(4)?,
            })
        })
        .map_err(sql("query LOI history"))?
        .collect::<Result<_, _>>()
        .map_err(sql("read LOI history"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use svoct_formats::loi::DateTime;

    fn inc(from: u64, to: u64, add: &[&str], del: &[&str]) -> Increment {
        Increment {
            from,
            to,
            at: DateTime {
                year: 2026,
                month: 11,
                day: 26,
                hour: 7,
                minute: 0,
                second: 0,
            },
            additions: add.iter().map(|s| s.to_string()).collect(),
            removals: del.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn apply(s: &Store, i: &Increment) -> LoiReport {
        let bytes = i.build().unwrap();
        s.loi().apply(i, &bytes, None).unwrap()
    }

    #[test]
    fn in_order_replay_gap_and_conflict() {
        let s = Store::open_in_memory().unwrap();
        let i1 = inc(0, 1, &["A1", "B2"], &[]);
        let r = apply(&s, &i1);
        assert!(matches!(
            r.outcome,
            LoiOutcome::Done {
                applied: Applied::Applied { added: 2, .. }
            }
        ));
        assert!(s.loi().is_opposed("A1").unwrap());
        // Replay: a reported no-op.
        let r = apply(&s, &i1);
        assert!(matches!(
            r.outcome,
            LoiOutcome::Done {
                applied: Applied::AlreadyApplied { from: 0, to: 1 }
            }
        ));
        assert_eq!(s.loi().len().unwrap(), 2);
        // Gap: 2 -> 3 before 1 -> 2 is held, then applied after it.
        let i3 = inc(2, 3, &["C3"], &["A1"]);
        let r = apply(&s, &i3);
        assert_eq!(r.outcome, LoiOutcome::Held { current: 1, from: 2 });
        assert_eq!(s.loi().version().unwrap(), 1);
        assert!(!s.loi().is_opposed("C3").unwrap());
        assert_eq!(s.loi().held().unwrap(), vec![(2, 3)]);
        let r = apply(&s, &inc(1, 2, &["D4"], &[]));
        assert_eq!(r.then_applied.len(), 1);
        assert_eq!(r.version, 3);
        assert!(s.loi().is_opposed("C3").unwrap());
        assert!(!s.loi().is_opposed("A1").unwrap());
        assert!(s.loi().is_opposed("D4").unwrap());
        assert!(s.loi().held().unwrap().is_empty());
        // Conflict: different content for 0 -> 1.
        let r = apply(&s, &inc(0, 1, &["ZZ"], &[]));
        assert!(matches!(r.outcome, LoiOutcome::Refused { ref reason } if reason.contains("conflict")));
        assert!(!s.loi().is_opposed("ZZ").unwrap());
        // Stale: an unknown increment starting below the version.
        let r = apply(&s, &inc(1, 5, &["YY"], &[]));
        assert!(matches!(r.outcome, LoiOutcome::Refused { ref reason } if reason.contains("stale")));
        assert_eq!(s.loi().version().unwrap(), 3);
        assert_eq!(s.loi().history().unwrap().len(), 3);
    }
}
