//! Alerts held until the record of their device is fetched, and the
//! devices `getDevice` did not find.
//!
//! An alert whose device has no fresh record waits in `held_alert`
//! instead of the outbox. It leaves in one transaction with the device
//! record that enriches it, or un-enriched once its wait is over or its
//! device turned out missing. The dedup key is checked when the alert is
//! held and again when it is released, so an alert listed again while
//! held, or held across a restart, is delivered exactly once.

use rusqlite::{Connection, OptionalExtension, params};

use super::{StateError, Store, Stored, bump, device::upsert_device, insert_event};
use crate::api::{Alert, Device};
use crate::event::{AlertEvent, Event, alert_dedup_key};

/// An alert waiting for its device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldAlert {
    pub alert_id: String,
    pub device_id: String,
    /// When the alert was held, epoch milliseconds.
    pub held_ms: i64,
}

/// The outcome of [`Store::commit_device`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceCommit {
    /// The outcome for the inventory event, when one was given.
    pub inventory: Option<Stored>,
    /// Held alerts released to the outbox with the device.
    pub released: usize,
}

/// A fetched device record and what goes with it into one transaction.
#[derive(Clone, Copy, Debug)]
pub struct FetchedDevice<'a> {
    pub device: &'a Device,
    /// The inventory event the record gave rise to, if any.
    pub inventory: Option<&'a Event>,
    /// The pending id `(source, id)` the record was fetched for, if any.
    pub pending: Option<(&'a str, &'a str)>,
}

impl Store {
    /// Holds `alert` until the record of `device_id` is fetched, and
    /// removes `id` from the pending ids of `source`, in one transaction.
    /// Returns [`Stored::Duplicate`] when the modification was delivered
    /// before or is already held.
    pub fn hold_alert(
        &self,
        source: &str,
        id: &str,
        alert: &Alert,
        device_id: &str,
        now_ms: i64,
    ) -> Result<Stored, StateError> {
        let body = serde_json::to_string(alert)
            .map_err(|error| rusqlite::Error::ToSqlConversionFailure(Box::new(error)))?;
        let key = alert_dedup_key(alert);
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let delivered: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM dedup WHERE key = ?1)",
            [&key],
            |row| row.get(0),
        )?;
        let held = !delivered
            && tx.execute(
                "INSERT OR IGNORE INTO held_alert (dedup_key, alert_id, device_id, body, held_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![key, alert.alert_id, device_id, body, now_ms],
            )? == 1;
        if !held {
            bump(&tx, "duplicates_dropped", 1)?;
        }
        tx.execute(
            "DELETE FROM pending WHERE source = ?1 AND id = ?2",
            params![source, id],
        )?;
        tx.commit()?;
        Ok(if held { Stored::New } else { Stored::Duplicate })
    }

    pub fn held_count(&self) -> Result<i64, StateError> {
        Ok(self
            .conn()
            .query_row("SELECT COUNT(*) FROM held_alert", [], |row| row.get(0))?)
    }

    /// Returns the alert held longest, or `None` when none is held.
    pub fn oldest_held(&self) -> Result<Option<HeldAlert>, StateError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT alert_id, device_id, held_ms FROM held_alert
                 ORDER BY held_ms, dedup_key LIMIT 1",
                [],
                |row| {
                    Ok(HeldAlert {
                        alert_id: row.get(0)?,
                        device_id: row.get(1)?,
                        held_ms: row.get(2)?,
                    })
                },
            )
            .optional()?)
    }

    /// Stores a fetched device record in one transaction: upserts it,
    /// stores its inventory event unless the dedup key is known, releases
    /// every alert held for the device enriched with it, deletes an
    /// earlier miss, and removes the pending id.
    pub fn commit_device(
        &self,
        fetched: FetchedDevice<'_>,
        now_ms: i64,
        dedup_expires_ms: i64,
    ) -> Result<DeviceCommit, StateError> {
        let device = fetched.device;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        upsert_device(&tx, device, now_ms)?;
        let inventory = match fetched.inventory {
            Some(event) => Some(insert_event(&tx, event, now_ms, dedup_expires_ms)?),
            None => None,
        };
        let released = release(
            &tx,
            Selection::Device(&device.device_id),
            Some(device),
            now_ms,
            dedup_expires_ms,
        )?;
        tx.execute(
            "DELETE FROM device_miss WHERE device_id = ?1",
            [&device.device_id],
        )?;
        if let Some((source, id)) = fetched.pending {
            tx.execute(
                "DELETE FROM pending WHERE source = ?1 AND id = ?2",
                params![source, id],
            )?;
        }
        tx.commit()?;
        Ok(DeviceCommit {
            inventory,
            released,
        })
    }

    /// Records that `getDevice` did not return `device_id`, so its alerts
    /// go out un-enriched until `until_ms` without a request each, and
    /// releases its held alerts un-enriched, in one transaction. With
    /// `pending`, the device also leaves that source's pending ids.
    pub fn commit_device_miss(
        &self,
        device_id: &str,
        until_ms: i64,
        now_ms: i64,
        dedup_expires_ms: i64,
        pending: Option<&str>,
    ) -> Result<usize, StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO device_miss (device_id, until_ms) VALUES (?1, ?2)
             ON CONFLICT (device_id) DO UPDATE SET until_ms = excluded.until_ms",
            params![device_id, until_ms],
        )?;
        if let Some(source) = pending {
            tx.execute(
                "DELETE FROM pending WHERE source = ?1 AND id = ?2",
                params![source, device_id],
            )?;
        }
        let selection = Selection::Device(device_id);
        let released = release(&tx, selection, None, now_ms, dedup_expires_ms)?;
        tx.commit()?;
        Ok(released)
    }

    /// Returns whether `getDevice` reported `device_id` missing less
    /// than the enrichment TTL before `now_ms`.
    pub fn device_missing(&self, device_id: &str, now_ms: i64) -> Result<bool, StateError> {
        Ok(self.conn().query_row(
            "SELECT EXISTS (SELECT 1 FROM device_miss WHERE device_id = ?1 AND until_ms > ?2)",
            params![device_id, now_ms],
            |row| row.get(0),
        )?)
    }

    /// Releases un-enriched every alert held at or before `held_until_ms`,
    /// and returns how many reached the outbox. With `queue_devices`, the
    /// devices of those alerts become pending ids of that source in the
    /// same transaction, ahead of the listed ones, so that the next
    /// alerts on them find a record.
    pub fn release_held_before(
        &self,
        held_until_ms: i64,
        now_ms: i64,
        dedup_expires_ms: i64,
        queue_devices: Option<&str>,
    ) -> Result<usize, StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if let Some(source) = queue_devices {
            // An `added_ms` of 0 sorts these before every listed id.
            tx.execute(
                "INSERT OR IGNORE INTO pending (source, id, added_ms)
                 SELECT DISTINCT ?1, device_id, 0 FROM held_alert WHERE held_ms <= ?2",
                params![source, held_until_ms],
            )?;
        }
        let selection = Selection::HeldUntil(held_until_ms);
        let released = release(&tx, selection, None, now_ms, dedup_expires_ms)?;
        tx.commit()?;
        Ok(released)
    }
}

/// The held alerts to release: those of one device, or those held at
/// or before a time.
#[derive(Clone, Copy)]
enum Selection<'a> {
    Device(&'a str),
    HeldUntil(i64),
}

/// Moves the selected held alerts to the outbox with `device` attached,
/// and returns how many were new there; for use inside a transaction.
fn release(
    conn: &Connection,
    selection: Selection<'_>,
    device: Option<&Device>,
    now_ms: i64,
    dedup_expires_ms: i64,
) -> Result<usize, StateError> {
    let rows: Vec<(String, String)> = {
        let mut statement = match selection {
            Selection::Device(_) => conn.prepare_cached(
                "SELECT dedup_key, body FROM held_alert WHERE device_id = ?1
                 ORDER BY held_ms, dedup_key",
            )?,
            Selection::HeldUntil(_) => conn.prepare_cached(
                "SELECT dedup_key, body FROM held_alert WHERE held_ms <= ?1
                 ORDER BY held_ms, dedup_key",
            )?,
        };
        let read = |row: &rusqlite::Row<'_>| Ok((row.get(0)?, row.get(1)?));
        let rows = match selection {
            Selection::Device(device_id) => statement.query_map([device_id], read)?,
            Selection::HeldUntil(until) => statement.query_map([until], read)?,
        };
        rows.collect::<Result<_, _>>()?
    };
    let mut released = 0;
    for (key, body) in rows {
        conn.execute("DELETE FROM held_alert WHERE dedup_key = ?1", [&key])?;
        let alert: Alert = match serde_json::from_str(&body) {
            Ok(alert) => alert,
            Err(error) => {
                // Only a database edited by hand gets here: the row was
                // written from an `Alert` by this module.
                tracing::error!(dedup_key = %key, %error,
                    "held alert does not read; it is dropped");
                continue;
            }
        };
        let event = Event::Alert(AlertEvent {
            alert,
            device: device.cloned(),
        });
        if insert_event(conn, &event, now_ms, dedup_expires_ms)? == Stored::New {
            released += 1;
        }
    }
    Ok(released)
}
