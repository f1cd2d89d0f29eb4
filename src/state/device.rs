//! The device table: the latest record of each device, as `getDevice`
//! returned it, and when it was fetched.

use rusqlite::{Connection, OptionalExtension, params};

use super::{StateError, Store};
use crate::api::Device;

/// A device record with the time it was fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownDevice {
    pub device: Device,
    pub fetched_ms: i64,
}

impl Store {
    /// Returns the stored record of `device_id`, or `None` when the
    /// device was never fetched or its stored JSON no longer reads.
    pub fn device(&self, device_id: &str) -> Result<Option<KnownDevice>, StateError> {
        let row: Option<(String, i64)> = self
            .conn()
            .query_row(
                "SELECT body, fetched_ms FROM device WHERE device_id = ?1",
                [device_id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        Ok(row.and_then(
            |(body, fetched_ms)| match serde_json::from_str::<Device>(&body) {
                Ok(device) => Some(KnownDevice { device, fetched_ms }),
                Err(error) => {
                    tracing::warn!(device_id, %error,
                        "stored device record does not read; it will be fetched again");
                    None
                }
            },
        ))
    }

    /// Stores `device` as the latest record of its id.
    pub fn put_device(&self, device: &Device, fetched_ms: i64) -> Result<(), StateError> {
        upsert_device(&self.conn(), device, fetched_ms)
    }

    /// Returns the ids of every stored device, in id order; with
    /// `threat_only`, only those whose last record has `threat = true`.
    pub fn device_ids(&self, threat_only: bool) -> Result<Vec<String>, StateError> {
        let conn = self.conn();
        let mut statement = conn
            .prepare_cached("SELECT device_id FROM device WHERE threat >= ?1 ORDER BY device_id")?;
        let ids = statement
            .query_map([i64::from(threat_only)], |row| row.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(ids)
    }

    pub fn device_count(&self) -> Result<i64, StateError> {
        Ok(self
            .conn()
            .query_row("SELECT count(*) FROM device", [], |row| row.get(0))?)
    }
}

/// Inserts or replaces a device record; for use inside a transaction
/// that also stores the events the record gave rise to.
pub(crate) fn upsert_device(
    conn: &Connection,
    device: &Device,
    fetched_ms: i64,
) -> Result<(), StateError> {
    let body = serde_json::to_string(device)
        .map_err(|error| rusqlite::Error::ToSqlConversionFailure(Box::new(error)))?;
    conn.execute(
        "INSERT INTO device (device_id, body, modified, threat, fetched_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (device_id) DO UPDATE SET body = excluded.body,
             modified = excluded.modified, threat = excluded.threat,
             fetched_ms = excluded.fetched_ms",
        params![
            device.device_id,
            body,
            device.modified,
            i64::from(device.threat == Some(true)),
            fetched_ms
        ],
    )?;
    Ok(())
}
