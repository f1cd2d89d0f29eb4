//! Schema migrations, applied in order inside one transaction each. The
//! database's `user_version` is the number of migrations applied.

use rusqlite::Connection;

use super::StateError;

const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE cursor (
        source TEXT PRIMARY KEY,
        value INTEGER NOT NULL,
        listed_ms INTEGER
    );
    CREATE TABLE pending (
        source TEXT NOT NULL,
        id TEXT NOT NULL,
        added_ms INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (source, id)
    );
    CREATE INDEX pending_order ON pending (source, attempts, added_ms, id);
    CREATE TABLE dedup (
        key TEXT PRIMARY KEY,
        expires_ms INTEGER NOT NULL
    );
    CREATE INDEX dedup_expiry ON dedup (expires_ms);
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        dedup_key TEXT NOT NULL,
        body TEXT NOT NULL,
        stored_ms INTEGER NOT NULL
    );
    CREATE TABLE position (
        output TEXT PRIMARY KEY,
        seq INTEGER NOT NULL
    );
    CREATE TABLE ledger (
        day TEXT PRIMARY KEY,
        used INTEGER NOT NULL DEFAULT 0,
        org_used INTEGER,
        used_at_sync INTEGER NOT NULL DEFAULT 0,
        server_limit INTEGER,
        synced_ms INTEGER,
        closed_until_ms INTEGER,
        last_request_ms INTEGER
    );
    CREATE TABLE counter (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );",
    // 2: the device inventory, which enriches alerts and selects the
    // devices whose timeline is polled. `body` is the `Device` as JSON;
    // `threat` is copied out of it so the timeline can select on it.
    "CREATE TABLE device (
        device_id TEXT PRIMARY KEY,
        body TEXT NOT NULL,
        modified INTEGER,
        threat INTEGER NOT NULL DEFAULT 0,
        fetched_ms INTEGER NOT NULL
    );
    CREATE INDEX device_threat ON device (threat, device_id);",
    // 3: the timeline source's state. `alerted_device` contains each device
    // an alert named, with the alert's time (epoch ms), for the
    // `alerted` policy. `timeline_poll` contains per device the start of
    // the last poll whose reply was stored (`polled_ms`, where the next
    // `hours` window begins) and of the last attempt, failed ones
    // included (`attempted_ms`, which orders the round robin).
    "CREATE TABLE alerted_device (
        device_id TEXT PRIMARY KEY,
        alerted_ms INTEGER NOT NULL
    );
    CREATE INDEX alerted_device_time ON alerted_device (alerted_ms);
    CREATE TABLE timeline_poll (
        device_id TEXT PRIMARY KEY,
        polled_ms INTEGER,
        attempted_ms INTEGER NOT NULL
    );",
    // 4: alerts held until their device is fetched, and devices that
    // `getDevice` did not find, so their alerts go out un-enriched
    // without a request each. `body` is the `Alert` as JSON; `dedup_key`
    // is its key, so two modifications of one alert are held apart.
    "CREATE TABLE held_alert (
        dedup_key TEXT PRIMARY KEY,
        alert_id TEXT NOT NULL,
        device_id TEXT NOT NULL,
        body TEXT NOT NULL,
        held_ms INTEGER NOT NULL
    );
    CREATE INDEX held_alert_order ON held_alert (held_ms, dedup_key);
    CREATE INDEX held_alert_device ON held_alert (device_id);
    CREATE TABLE device_miss (
        device_id TEXT PRIMARY KEY,
        until_ms INTEGER NOT NULL
    );",
];

/// The schema version this build writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// Applies the migrations the database has not seen yet.
pub fn migrate(conn: &mut Connection) -> Result<(), StateError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if current > VERSION {
        return Err(StateError::TooNew {
            found: current,
            supported: VERSION,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}
