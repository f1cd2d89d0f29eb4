//! The timeline source's state: which devices alerts named and when,
//! and when each device's timeline was last polled.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use super::{StateError, Store, Stored, insert_event};
use crate::event::Event;

/// When a device's timeline was last polled, in epoch milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollTimes {
    /// Start of the last poll whose reply was stored; the next `hours`
    /// window reaches back to it. `None` before the first such poll.
    pub polled_ms: Option<i64>,
    /// Start of the last poll, failed ones included.
    pub attempted_ms: i64,
}

/// The outcome of [`Store::commit_timeline`]: events stored, and events
/// dropped because their dedup key was known.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimelineCommit {
    pub stored: usize,
    pub duplicates: usize,
}

impl Store {
    /// Returns the devices an alert named at or after `since_ms`, in id
    /// order.
    pub fn alerted_device_ids(&self, since_ms: i64) -> Result<Vec<String>, StateError> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(
            "SELECT device_id FROM alerted_device WHERE alerted_ms >= ?1 ORDER BY device_id",
        )?;
        let ids = statement
            .query_map([since_ms], |row| row.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(ids)
    }

    /// Returns the poll times of every device polled at least once.
    pub fn timeline_polls(&self) -> Result<HashMap<String, PollTimes>, StateError> {
        let conn = self.conn();
        let mut statement =
            conn.prepare_cached("SELECT device_id, polled_ms, attempted_ms FROM timeline_poll")?;
        let rows = statement.query_map([], |row| {
            let times = PollTimes {
                polled_ms: row.get(1)?,
                attempted_ms: row.get(2)?,
            };
            Ok((row.get(0)?, times))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Returns the poll times of one device, `None` if never polled.
    pub fn timeline_poll(&self, device_id: &str) -> Result<Option<PollTimes>, StateError> {
        let times = self
            .conn()
            .query_row(
                "SELECT polled_ms, attempted_ms FROM timeline_poll WHERE device_id = ?1",
                [device_id],
                |row| {
                    Ok(PollTimes {
                        polled_ms: row.get(0)?,
                        attempted_ms: row.get(1)?,
                    })
                },
            )
            .optional()?;
        Ok(times)
    }

    /// Records a poll of `device_id` that started at `attempted_ms` and
    /// stored nothing, so the round robin moves on to other devices
    /// while the next `hours` window still reaches back to the last
    /// stored poll.
    pub fn timeline_attempted(&self, device_id: &str, attempted_ms: i64) -> Result<(), StateError> {
        self.conn().execute(
            "INSERT INTO timeline_poll (device_id, attempted_ms) VALUES (?1, ?2)
             ON CONFLICT (device_id) DO UPDATE SET attempted_ms = excluded.attempted_ms",
            params![device_id, attempted_ms],
        )?;
        Ok(())
    }

    /// Stores the events of one timeline reply (each unless its dedup key
    /// is known) and sets the device's poll times to `polled_ms`, in one
    /// transaction. A crash before the commit polls the same window
    /// again, and a crash after it loses nothing.
    pub fn commit_timeline(
        &self,
        device_id: &str,
        events: &[Event],
        polled_ms: i64,
        now_ms: i64,
        dedup_expires_ms: i64,
    ) -> Result<TimelineCommit, StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut commit = TimelineCommit::default();
        for event in events {
            match insert_event(&tx, event, now_ms, dedup_expires_ms)? {
                Stored::New => commit.stored += 1,
                Stored::Duplicate => commit.duplicates += 1,
            }
        }
        tx.execute(
            "INSERT INTO timeline_poll (device_id, polled_ms, attempted_ms) VALUES (?1, ?2, ?2)
             ON CONFLICT (device_id) DO UPDATE
             SET polled_ms = excluded.polled_ms, attempted_ms = excluded.attempted_ms",
            params![device_id, polled_ms],
        )?;
        tx.commit()?;
        Ok(commit)
    }

    /// Counts the devices whose last stored poll started at or after
    /// `since_ms`.
    pub fn timeline_polled_since(&self, since_ms: i64) -> Result<i64, StateError> {
        Ok(self.conn().query_row(
            "SELECT COUNT(*) FROM timeline_poll WHERE polled_ms >= ?1",
            [since_ms],
            |row| row.get(0),
        )?)
    }
}

/// Records that an alert named `device_id` at `alerted_ms`, keeping the
/// latest time; for use inside the transaction that stores the alert.
pub(super) fn mark_alerted(
    conn: &Connection,
    device_id: &str,
    alerted_ms: i64,
) -> Result<(), StateError> {
    conn.execute(
        "INSERT INTO alerted_device (device_id, alerted_ms) VALUES (?1, ?2)
         ON CONFLICT (device_id) DO UPDATE
         SET alerted_ms = MAX(alerted_ms, excluded.alerted_ms)",
        params![device_id, alerted_ms],
    )?;
    Ok(())
}
