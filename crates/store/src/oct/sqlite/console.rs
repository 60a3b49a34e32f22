//! The console's aggregates (see `oct/console.rs`).

use super::SqliteOctStore;
use crate::oct::console::{ConsoleQueries, HourFlow};
use crate::{StoreError, sql};

impl ConsoleQueries for SqliteOctStore {
    fn flow_per_hour(&self, since: i64) -> Result<Vec<HourFlow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT (at / 3600) * 3600 AS hour,
                        SUM(outcome <> 'quarantined'), SUM(outcome = 'quarantined')
                 FROM processed WHERE at >= ?1 GROUP BY hour ORDER BY hour",
            )
            .map_err(sql("flow per hour"))?;
        let rows = stmt
            .query_map([since], |r| {
                Ok(HourFlow {
                    hour: r.get(0)?,
                    processed: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                    quarantined: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                })
            })
            .map_err(sql("flow per hour"))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql("flow per hour"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oct::now_secs;

    #[test]
    fn flow_counts_processed_and_quarantined_per_hour_since_the_bound() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = SqliteOctStore::open(&dir.path().join("s.db")).expect("open");
        let now = now_secs();
        for (id, outcome, at) in [
            ("a", "processed", now),
            ("b", "quarantined", now),
            ("c", "processed", now - 2 * 86_400),
        ] {
            s.conn
                .execute(
                    "INSERT INTO processed (spool_id, digest, kind, outcome, mail_from, subject, summary, at)
                     VALUES (?1, 'd', 'invoice', ?2, 'ps@x', 's', '{}', ?3)",
                    rusqlite::params![id, outcome, at],
                )
                .expect("insert");
        }
        let flow = s.flow_per_hour(now - 86_400).expect("flow");
        assert_eq!(
            flow,
            [HourFlow {
                hour: now / 3600 * 3600,
                processed: 1,
                quarantined: 1
            }]
        );
    }
}
