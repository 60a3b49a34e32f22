//! The compostage allocator: a unique `AAAAMMJJHHMMSSxxxxx` for every message an installation
//! sends (annex R5.3: "a retransmission of the same file must carry a different compostage").
//!
//! State is one row `(second, counter)` updated in an IMMEDIATE transaction, so every process and
//! thread that opens the same database file draws from one sequence, across restarts.
//!
//! Rules (the annex fixes only the format; these are ours, see `docs/formats/compostage.md`):
//! - The date-time part is **UTC** (local time goes back an hour every autumn).
//! - The stamp never goes backwards: the second used is `max(clock, last second used)`; when the
//!   clock is behind, stamps keep counting in the last second used.
//! - Within one second the 5-digit counter runs `00000..=99999`; when it would overflow, the
//!   allocator moves on to the next second (counter `00000`), running ahead of the clock for as
//!   long as the burst lasts.
//!
//! Stamps are therefore strictly increasing, both as numbers and as strings.

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};
use time::OffsetDateTime;

use crate::db::Store;
use crate::{StoreError, sql};

/// Length of a compostage: 14 digits of date-time, 5 of counter.
pub const COMPOSTAGE_LEN: usize = 19;
/// The largest counter value within one second.
pub const COUNTER_MAX: i64 = 99_999;

/// Allocates compostages from a database's `compostage_state` row; see the module documentation
/// for the rules. The PS store ([`Store::compostage`]) and the OCT state
/// ([`crate::oct::OctStore::reserve_compostage`]) both draw from this one allocator.
#[derive(Debug, Clone, Copy)]
pub struct CompostageAllocator<'a> {
    conn: &'a Connection,
}

/// `count` consecutive compostages within one second: counters `first..first + count` of
/// `second` (Unix seconds, UTC), reserved by [`CompostageAllocator::reserve_block_at`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompostageBlock {
    pub second: i64,
    pub first: u32,
    pub count: u32,
}

impl Store {
    /// The compostage allocator of this installation.
    pub fn compostage(&self) -> CompostageAllocator<'_> {
        CompostageAllocator::on(&self.conn)
    }
}

/// The last `(second, counter)` handed out, and its replacement.
type Last = Option<(i64, i64)>;

impl<'a> CompostageAllocator<'a> {
    /// The allocator over the `compostage_state` table of `conn` (any store of this crate).
    pub(crate) fn on(conn: &'a Connection) -> Self {
        CompostageAllocator { conn }
    }

    /// The next compostage, by the system clock (UTC).
    pub fn next(&self) -> Result<String, StoreError> {
        self.next_at(OffsetDateTime::now_utc().unix_timestamp())
    }

    /// The next compostage as if the clock read `unix_seconds` (tests, replay).
    pub fn next_at(&self, unix_seconds: i64) -> Result<String, StoreError> {
        self.update(|last| {
            let (second, counter) = next_value(last, unix_seconds, 1);
            Ok((Some((second, counter)), format_stamp(second, counter)?))
        })
    }

    /// `count` consecutive compostages in one transaction (one fsync instead of `count`), by the
    /// system clock. For a concentrator forwarding many files at once.
    pub fn next_many(&self, count: usize) -> Result<Vec<String>, StoreError> {
        self.next_many_at(OffsetDateTime::now_utc().unix_timestamp(), count)
    }

    /// [`next_many`](Self::next_many) as if the clock read `unix_seconds`.
    pub fn next_many_at(&self, unix_seconds: i64, count: usize) -> Result<Vec<String>, StoreError> {
        self.update(|mut last| {
            let mut out = Vec::with_capacity(count.min(100_000));
            for _ in 0..count {
                let (second, counter) = next_value(last, unix_seconds, 1);
                out.push(format_stamp(second, counter)?);
                last = Some((second, counter));
            }
            Ok((last, out))
        })
    }

    /// Reserves `count` (at least 1, at most 100 000) consecutive counters within one second, as
    /// if the clock read `unix_seconds`: the block starts a new second when the current one
    /// cannot hold it. For callers that hand stamps out of a block, off the durable path.
    pub fn reserve_block_at(&self, unix_seconds: i64, count: u32) -> Result<CompostageBlock, StoreError> {
        let count = count.clamp(1, COUNTER_MAX as u32 + 1);
        self.update(|last| {
            let (second, first) = next_value(last, unix_seconds, i64::from(count));
            // Checks the second is expressible as a stamp before it is stored.
            format_stamp(second, first)?;
            let block = CompostageBlock {
                second,
                first: u32::try_from(first).unwrap_or(0),
                count,
            };
            Ok((Some((second, first + i64::from(count) - 1)), block))
        })
    }

    /// The last compostage handed out, if any.
    pub fn last(&self) -> Result<Option<String>, StoreError> {
        read_state(self.conn)?
            .map(|(s, c)| format_stamp(s, c))
            .transpose()
    }

    /// Reads the state, lets `f` compute the new one, writes it: one IMMEDIATE transaction, so
    /// that every connection and process draws from one sequence.
    fn update<T>(&self, f: impl FnOnce(Last) -> Result<(Last, T), StoreError>) -> Result<T, StoreError> {
        let tx = Transaction::new_unchecked(self.conn, TransactionBehavior::Immediate)
            .map_err(sql("begin compostage transaction"))?;
        let (last, out) = f(read_state(&tx)?)?;
        if let Some((second, counter)) = last {
            tx.execute(
                "INSERT INTO compostage_state (id, second, counter) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET second = excluded.second, counter = excluded.counter",
                [second, counter],
            )
            .map_err(sql("write compostage state"))?;
        }
        tx.commit().map_err(sql("commit compostage"))?;
        Ok(out)
    }
}

fn read_state(conn: &Connection) -> Result<Last, StoreError> {
    conn.query_row(
        "SELECT second, counter FROM compostage_state WHERE id = 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
    .map_err(sql("read compostage state"))
}

/// The pure step of the allocator: the first `(second, counter)` of the next `count` stamps, from
/// the last `(second, counter)` handed out and the clock.
fn next_value(last: Last, clock: i64, count: i64) -> (i64, i64) {
    match last {
        None => (clock, 0),
        Some((second, _)) if clock > second => (clock, 0),
        Some((second, counter)) if counter.saturating_add(count) > COUNTER_MAX => {
            (second.saturating_add(1), 0)
        }
        Some((second, counter)) => (second, counter.max(-1) + 1),
    }
}

/// `AAAAMMJJHHMMSS` (UTC) followed by the 5-digit counter.
fn format_stamp(second: i64, counter: i64) -> Result<String, StoreError> {
    let out_of_range = StoreError::ClockOutOfRange { unix_seconds: second };
    let t = OffsetDateTime::from_unix_timestamp(second)
        .map_err(|_| StoreError::ClockOutOfRange { unix_seconds: second })?;
    if !(0..=9999).contains(&t.year()) || !(0..=COUNTER_MAX).contains(&counter) {
        return Err(out_of_range);
    }
    Ok(format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}{:05}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        counter
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_stamps() {
        // 2026-11-26 05:43:27 UTC = 1795671807 (days since epoch 20418 * 86400 + 20607).
        assert_eq!(format_stamp(1_795_671_807, 0).unwrap(), "2026112605432700000");
        assert_eq!(format_stamp(0, 42).unwrap(), "1970010100000000042");
        assert_eq!(format_stamp(951_782_400, 99_999).unwrap(), "2000022900000099999");
        assert!(format_stamp(253_402_300_800, 0).is_err()); // year 10000
        assert!(format_stamp(0, 100_000).is_err());
    }

    #[test]
    fn step_rules() {
        assert_eq!(next_value(None, 10, 1), (10, 0));
        assert_eq!(next_value(Some((10, 0)), 10, 1), (10, 1));
        assert_eq!(next_value(Some((10, 5)), 11, 1), (11, 0));
        // Clock went back: keep counting in the last second.
        assert_eq!(next_value(Some((10, 5)), 3, 1), (10, 6));
        // Overflow moves to the next second.
        assert_eq!(next_value(Some((10, COUNTER_MAX)), 10, 1), (11, 0));
        assert_eq!(next_value(Some((10, COUNTER_MAX)), 2, 1), (11, 0));
        // A block that does not fit in the second starts the next one.
        assert_eq!(next_value(Some((10, 99_990)), 10, 10), (11, 0));
        assert_eq!(next_value(Some((10, 99_989)), 10, 10), (10, 99_990));
    }
}
