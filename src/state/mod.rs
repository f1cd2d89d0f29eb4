//! The SQLite store: cursors, pending ids, dedup keys, the outbox, one
//! delivery position per output, and the daily request ledger.
//!
//! Every method runs in one transaction, so a crash leaves either the
//! whole step or none of it. The database runs in WAL mode with
//! `synchronous=FULL`: a committed step survives power loss, and
//! `status` can read while the daemon writes.

mod device;
mod held;
mod ledger;
mod schema;
mod timeline;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::event::Event;

pub use device::KnownDevice;
pub use held::{DeviceCommit, FetchedDevice, HeldAlert};
pub use ledger::LedgerDay;
pub use schema::VERSION as SCHEMA_VERSION;
pub use timeline::{PollTimes, TimelineCommit};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "state database has schema version {found}, newer than this build's {supported}: run the newer version, or move the file away to start afresh"
    )]
    TooNew { found: i64, supported: i64 },
    #[error(
        "state database {path} is in use by another iotsecure-forwarder run, once or demo (it holds {path}.lock): stop it, or give this config its own state.path"
    )]
    InUse { path: String },
    #[error("state database: cannot open the lock file {path}.lock: {source}")]
    Lock {
        path: String,
        source: std::io::Error,
    },
    #[error("state database: cannot create the folder {path}: {source}")]
    Folder {
        path: String,
        source: std::io::Error,
    },
}

/// One row of the outbox.
#[derive(Clone, Debug)]
pub struct OutboxRow {
    pub seq: i64,
    /// When the event was stored, in epoch milliseconds.
    pub stored_ms: i64,
    /// The event, or why its stored JSON could not be read back.
    pub event: Result<Event, String>,
}

/// The outcome of [`Store::commit_event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    New,
    /// Its dedup key was already known: delivered before.
    Duplicate,
}

pub struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens or creates the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Store, StateError> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StateError::Folder {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // 16 MiB of page cache (negative means KiB): the outbox and the
        // pending ids of a backlog stay in memory.
        conn.pragma_update(None, "cache_size", -16_384)?;
        schema::migrate(&mut conn)?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    /// Opens an existing database for reading only, for `status`. WAL
    /// lets it read while the daemon writes.
    pub fn open_read_only(path: &Path) -> Result<Store, StateError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent: any
        // open transaction rolls back when it is dropped.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn schema_version(&self) -> Result<i64, StateError> {
        Ok(self
            .conn()
            .query_row("PRAGMA user_version", [], |row| row.get(0))?)
    }

    pub fn cursor(&self, source: &str) -> Result<Option<i64>, StateError> {
        let conn = self.conn();
        let value = conn
            .query_row(
                "SELECT value FROM cursor WHERE source = ?1",
                [source],
                |row| row.get(0),
            )
            .optional()?;
        Ok(value)
    }

    /// Returns all cursors, for `status`.
    pub fn cursors(&self) -> Result<Vec<(String, i64)>, StateError> {
        let conn = self.conn();
        let mut statement = conn.prepare("SELECT source, value FROM cursor ORDER BY source")?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Stores the ids a list call returned as pending and moves the
    /// cursor, in one transaction: a crash after it resumes with the
    /// detail calls instead of listing again.
    pub fn commit_listing(
        &self,
        source: &str,
        ids: &[String],
        cursor: i64,
        now_ms: i64,
    ) -> Result<usize, StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut added = 0;
        {
            let mut insert = tx.prepare(
                "INSERT OR IGNORE INTO pending (source, id, added_ms) VALUES (?1, ?2, ?3)",
            )?;
            for id in ids {
                added += insert.execute(params![source, id, now_ms])?;
            }
        }
        tx.execute(
            "INSERT INTO cursor (source, value, listed_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (source) DO UPDATE
             SET value = excluded.value, listed_ms = excluded.listed_ms",
            params![source, cursor, now_ms],
        )?;
        tx.commit()?;
        Ok(added)
    }

    /// Sets the cursor of a source that has none, without marking a
    /// list call: where the first list call starts from.
    pub fn init_cursor(&self, source: &str, cursor: i64) -> Result<(), StateError> {
        self.conn().execute(
            "INSERT OR IGNORE INTO cursor (source, value) VALUES (?1, ?2)",
            params![source, cursor],
        )?;
        Ok(())
    }

    /// Pending ids of `source`, oldest first, at most `limit`.
    pub fn pending(&self, source: &str, limit: usize) -> Result<Vec<String>, StateError> {
        let conn = self.conn();
        let mut statement = conn.prepare(
            "SELECT id FROM pending WHERE source = ?1
             ORDER BY attempts, added_ms, id LIMIT ?2",
        )?;
        let rows = statement.query_map(params![source, limit as i64], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn has_pending(&self, source: &str) -> Result<bool, StateError> {
        Ok(self.conn().query_row(
            "SELECT EXISTS (SELECT 1 FROM pending WHERE source = ?1)",
            [source],
            |row| row.get(0),
        )?)
    }

    pub fn pending_count(&self, source: &str) -> Result<i64, StateError> {
        Ok(self.conn().query_row(
            "SELECT COUNT(*) FROM pending WHERE source = ?1",
            [source],
            |row| row.get(0),
        )?)
    }

    /// Counts a failed detail call on a pending id, so ids that keep
    /// failing sort after the others.
    pub fn pending_failed(&self, source: &str, id: &str) -> Result<(), StateError> {
        self.conn().execute(
            "UPDATE pending SET attempts = attempts + 1 WHERE source = ?1 AND id = ?2",
            params![source, id],
        )?;
        Ok(())
    }

    /// Permanent failures counted on a pending id so far.
    pub fn pending_attempts(&self, source: &str, id: &str) -> Result<i64, StateError> {
        let value = self
            .conn()
            .query_row(
                "SELECT attempts FROM pending WHERE source = ?1 AND id = ?2",
                params![source, id],
                |row| row.get(0),
            )
            .optional()?;
        Ok(value.unwrap_or(0))
    }

    /// Removes a pending id without storing an event, such as an alert
    /// the API no longer has.
    pub fn drop_pending(&self, source: &str, id: &str) -> Result<(), StateError> {
        self.conn().execute(
            "DELETE FROM pending WHERE source = ?1 AND id = ?2",
            params![source, id],
        )?;
        Ok(())
    }

    /// Stores `event` in the outbox unless its dedup key is known, and
    /// removes `id` from the pending ids, in one transaction. An alert
    /// that names a device also marks that device as alerted, for the
    /// timeline's `alerted` policy.
    pub fn commit_event(
        &self,
        source: &str,
        id: &str,
        event: &Event,
        now_ms: i64,
        dedup_expires_ms: i64,
    ) -> Result<Stored, StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let stored = insert_event(&tx, event, now_ms, dedup_expires_ms)?;
        tx.execute(
            "DELETE FROM pending WHERE source = ?1 AND id = ?2",
            params![source, id],
        )?;
        tx.commit()?;
        Ok(stored)
    }

    /// Deletes dedup keys whose retention ended.
    pub fn expire_dedup(&self, now_ms: i64) -> Result<usize, StateError> {
        Ok(self
            .conn()
            .execute("DELETE FROM dedup WHERE expires_ms < ?1", [now_ms])?)
    }

    /// Outbox rows after `seq`, oldest first, at most `limit`.
    pub fn outbox_after(&self, seq: i64, limit: usize) -> Result<Vec<OutboxRow>, StateError> {
        let conn = self.conn();
        let mut statement = conn.prepare(
            "SELECT seq, body, stored_ms FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = statement.query_map(params![seq, limit as i64], |row| {
            let seq: i64 = row.get(0)?;
            let body: String = row.get(1)?;
            Ok(OutboxRow {
                seq,
                stored_ms: row.get(2)?,
                event: serde_json::from_str(&body).map_err(|error| error.to_string()),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Events ever stored in the outbox: the AUTOINCREMENT high-water
    /// mark in `sqlite_sequence`, which deleting delivered rows does not
    /// lower.
    pub fn stored_total(&self) -> Result<i64, StateError> {
        let value = self
            .conn()
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'",
                [],
                |row| row.get(0),
            )
            .optional()?;
        Ok(value.unwrap_or(0))
    }

    /// Rows in the outbox. Rows leave only as a prefix (every output
    /// delivered them), so the span of sequence numbers is the count,
    /// read from the ends of the rowid index instead of a full scan.
    pub fn outbox_len(&self) -> Result<i64, StateError> {
        Ok(self.conn().query_row(
            "SELECT COALESCE((SELECT MAX(seq) FROM outbox)
                           - (SELECT MIN(seq) FROM outbox) + 1, 0)",
            [],
            |row| row.get(0),
        )?)
    }

    /// Rows of the outbox an output has not delivered yet.
    pub fn outbox_depth(&self, output: &str) -> Result<i64, StateError> {
        let position = self.position(output)?;
        Ok(self.conn().query_row(
            "SELECT COUNT(*) FROM outbox WHERE seq > ?1",
            [position],
            |row| row.get(0),
        )?)
    }

    /// Returns when the oldest row `output` has not delivered yet was
    /// stored (epoch milliseconds), or `None` when it has caught up.
    pub fn oldest_undelivered_ms(&self, output: &str) -> Result<Option<i64>, StateError> {
        let position = self.position(output)?;
        let stored = self
            .conn()
            .query_row(
                "SELECT stored_ms FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT 1",
                [position],
                |row| row.get(0),
            )
            .optional()?;
        Ok(stored)
    }

    /// Returns the last outbox row `output` delivered, or 0 for a new
    /// output, which then receives everything still in the outbox.
    pub fn position(&self, output: &str) -> Result<i64, StateError> {
        let value = self
            .conn()
            .query_row(
                "SELECT seq FROM position WHERE output = ?1",
                [output],
                |row| row.get(0),
            )
            .optional()?;
        Ok(value.unwrap_or(0))
    }

    /// Records that `output` delivered every row up to `seq`, and deletes
    /// the rows every output in `outputs` has delivered.
    pub fn advance(&self, output: &str, seq: i64, outputs: &[String]) -> Result<(), StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO position (output, seq) VALUES (?1, ?2)
             ON CONFLICT (output) DO UPDATE SET seq = MAX(seq, excluded.seq)",
            params![output, seq],
        )?;
        prune(&tx, outputs)?;
        tx.commit()?;
        Ok(())
    }

    /// Forgets positions of outputs no longer configured, so they do not
    /// hold rows in the outbox, and prunes what the others delivered.
    pub fn retain_outputs(&self, outputs: &[String]) -> Result<(), StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let known: Vec<String> = {
            let mut statement = tx.prepare("SELECT output FROM position")?;
            let rows = statement.query_map([], |row| row.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        for output in known.iter().filter(|name| !outputs.contains(name)) {
            tx.execute("DELETE FROM position WHERE output = ?1", [output])?;
        }
        prune(&tx, outputs)?;
        tx.commit()?;
        Ok(())
    }

    /// Adds `delta` to a named counter, such as `overlap_refetches`.
    pub fn add_counter(&self, name: &str, delta: i64) -> Result<(), StateError> {
        bump(&self.conn(), name, delta)
    }

    /// Sets a named value, such as the last known server clock offset.
    pub fn set_counter(&self, name: &str, value: i64) -> Result<(), StateError> {
        self.conn().execute(
            "INSERT INTO counter (name, value) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            params![name, value],
        )?;
        Ok(())
    }

    pub fn counter(&self, name: &str) -> Result<i64, StateError> {
        let value = self
            .conn()
            .query_row("SELECT value FROM counter WHERE name = ?1", [name], |row| {
                row.get(0)
            })
            .optional()?;
        Ok(value.unwrap_or(0))
    }
}

/// Inserts `event` into the outbox unless its dedup key is known; for
/// use inside the caller's transaction. An alert that names a device
/// also marks that device as alerted, for the timeline's `alerted`
/// policy.
fn insert_event(
    conn: &Connection,
    event: &Event,
    now_ms: i64,
    dedup_expires_ms: i64,
) -> Result<Stored, StateError> {
    let body = serde_json::to_string(event)
        .map_err(|error| rusqlite::Error::ToSqlConversionFailure(Box::new(error)))?;
    let key = event.dedup_key();
    if let Event::Alert(alert_event) = event
        && let Some(device_id) = &alert_event.alert.device_id
    {
        // A time in the future (a corrupt record) would keep the
        // device selected forever, so it counts as now.
        let alerted_ms = event.time_ms().map_or(now_ms, |ms| ms.min(now_ms));
        timeline::mark_alerted(conn, device_id, alerted_ms)?;
    }
    let fresh = conn.execute(
        "INSERT OR IGNORE INTO dedup (key, expires_ms) VALUES (?1, ?2)",
        params![key, dedup_expires_ms],
    )? == 1;
    if !fresh {
        bump(conn, "duplicates_dropped", 1)?;
        return Ok(Stored::Duplicate);
    }
    conn.execute(
        "INSERT INTO outbox (kind, dedup_key, body, stored_ms) VALUES (?1, ?2, ?3, ?4)",
        params![event.kind_name(), key, body, now_ms],
    )?;
    Ok(Stored::New)
}

fn bump(conn: &Connection, name: &str, delta: i64) -> Result<(), StateError> {
    conn.execute(
        "INSERT INTO counter (name, value) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
        params![name, delta],
    )?;
    Ok(())
}

fn prune(conn: &Connection, outputs: &[String]) -> Result<(), StateError> {
    let mut lowest: Option<i64> = None;
    for output in outputs {
        let seq: i64 = conn
            .query_row(
                "SELECT seq FROM position WHERE output = ?1",
                [output],
                |row| row.get(0),
            )
            .optional()?
            .unwrap_or(0);
        lowest = Some(lowest.map_or(seq, |low: i64| low.min(seq)));
    }
    if let Some(lowest) = lowest {
        conn.execute("DELETE FROM outbox WHERE seq <= ?1", [lowest])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
