//! The device inventory source: `listDevices` with `modified` from the
//! cursor and the configured filters, then `getDevice` for each listed
//! id. It keeps the device table current, emits an inventory event when
//! a device appears or one of its security fields changes, and fetches
//! the devices that held alerts wait for.
//!
//! Listing follows the alert source: the ids are stored as pending with
//! the new cursor in one transaction, the cursor being the server's
//! `Date` minus `overlap`. Each fetched record is compared with the
//! stored one, and the inventory event, the new record, the release of
//! the alerts held for the device and the removal of the pending id
//! share one transaction.
//!
//! Held alerts: the alert source keeps back an alert whose device has no
//! record fresher than the enrichment TTL. [`DeviceSource::fetch_held`]
//! spends one `getDevice` on the device of the oldest held alert and
//! releases every alert held for it, enriched. That request counts
//! against the device share. When the share has no room,
//! [`DeviceSource::release_unaffordable`] sends the held alerts at once
//! without their device. When a fetch fails, they go out without it as
//! well, and the device is not asked for again for a while. When the
//! day's budget has no room, [`DeviceSource::release_expired`] sends
//! those held past the enrichment `wait`. Neither sends a request.
//! The devices of alerts sent that way go first among the inventory's
//! pending ids, so the next alerts on them are enriched.

use std::sync::Arc;

use crate::api::{ApiError, Client, Device, DeviceFilter, ErrorKind, TimeFilter, Transport};
use crate::clock::Clock;
use crate::config::{DeviceSettings, EnrichmentSettings};
use crate::event::{Event, InventoryEvent};
use crate::state::{FetchedDevice, Store, Stored};

use super::changes::{initial_values, security_changes};
use super::{CursorRule, CycleReport, SourceError};

/// The name of this source in the state database.
pub const SOURCE: &str = "devices";

/// How long a device whose `getDevice` failed transiently is not asked
/// for again; its alerts meanwhile go out without device fields.
const RETRY_AFTER_FAILURE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

pub struct DeviceSource<T> {
    client: Arc<Client<T>>,
    store: Arc<Store>,
    clock: Clock,
    settings: DeviceSettings,
    enrichment: EnrichmentSettings,
    dedup_retention_ms: i64,
}

impl<T: Transport> DeviceSource<T> {
    /// Builds the source with enrichment off; see
    /// [`DeviceSource::with_enrichment`].
    pub fn new(
        client: Arc<Client<T>>,
        store: Arc<Store>,
        clock: Clock,
        settings: DeviceSettings,
        dedup_retention: std::time::Duration,
    ) -> Self {
        DeviceSource {
            client,
            store,
            clock,
            settings,
            enrichment: EnrichmentSettings::disabled(),
            dedup_retention_ms: millis(dedup_retention),
        }
    }

    /// Sets the TTL of device misses and the wait of held alerts.
    pub fn with_enrichment(mut self, enrichment: EnrichmentSettings) -> Self {
        self.enrichment = enrichment;
        self
    }

    /// Runs one poll cycle: fetches ids left pending by an earlier run,
    /// lists what changed since the cursor, and fetches every listed id.
    pub async fn cycle(&self) -> Result<CycleReport, SourceError> {
        let mut report = CycleReport::default();
        self.fetch_pending(self.pending_count()?, &mut report)
            .await?;
        self.list(&mut report).await?;
        self.fetch_pending(self.pending_count()?, &mut report)
            .await?;
        Ok(report)
    }

    pub fn pending_count(&self) -> Result<usize, SourceError> {
        let count = self.store.pending_count(SOURCE)?;
        Ok(usize::try_from(count).unwrap_or(0))
    }

    /// Sends exactly one `listDevices` and stores the listed ids as
    /// pending, with the new cursor, in one transaction.
    pub async fn list(&self, report: &mut CycleReport) -> Result<(), SourceError> {
        let rule = CursorRule {
            start_from: self.settings.start_from,
            overlap: self.settings.overlap,
            clock_skew: self.settings.clock_skew,
        };
        let since = rule.since(&self.store, SOURCE, &self.clock)?;
        let filter = DeviceFilter {
            time: TimeFilter {
                created: None,
                modified: Some(since),
            },
            ..self.settings.filter.clone()
        };
        report.requests += 1;
        let listed = self.client.list_devices(&filter).await?;
        rule.commit(&self.store, SOURCE, &self.clock, since, &listed)?;
        report.listed += listed.ids.len();
        Ok(())
    }

    /// Fetches up to `limit` pending devices, one `getDevice` each, and
    /// returns how many ids it requested.
    pub async fn fetch_pending(
        &self,
        limit: usize,
        report: &mut CycleReport,
    ) -> Result<usize, SourceError> {
        if limit == 0 {
            return Ok(0);
        }
        let ids = self.store.pending(SOURCE, limit)?;
        for id in ids.iter().map(String::as_str) {
            report.requests += 1;
            match self.fetch_device(id).await {
                Ok(device) => self.store_device(&device, Some(id), report)?,
                Err(error) => match error.kind() {
                    ErrorKind::Permanent => {
                        // The same call fails the same way: the device
                        // leaves the queue and is not asked for again
                        // within the TTL, for the inventory or an alert.
                        report.released += self.note_miss(id, self.enrichment.ttl, true)?;
                        report.dropped += 1;
                        tracing::warn!(%error, device_id = id,
                            "device not fetched; it is not asked for again within the enrichment TTL");
                    }
                    ErrorKind::Transient => {
                        self.store.pending_failed(SOURCE, id)?;
                        tracing::warn!(%error, device_id = id, "device fetch failed; kept pending");
                        return Err(error.into());
                    }
                    ErrorKind::DayClosed | ErrorKind::InvalidKey => return Err(error.into()),
                },
            }
        }
        Ok(ids.len())
    }

    /// Alerts held for their device.
    pub fn held_count(&self) -> Result<usize, SourceError> {
        Ok(usize::try_from(self.store.held_count()?).unwrap_or(0))
    }

    /// Returns when the oldest held alert goes out un-enriched, in epoch
    /// milliseconds, or `None` when no alert is held.
    pub fn next_release_ms(&self) -> Result<Option<i64>, SourceError> {
        let oldest = self.store.oldest_held()?;
        Ok(oldest.map(|held| held.held_ms.saturating_add(self.wait_ms())))
    }

    /// Spends one `getDevice` on the device of the oldest held alert and
    /// releases every alert held for that device: enriched when the
    /// device is found, un-enriched when the fetch fails. A device the
    /// API does not know is not requested again within the TTL. After a
    /// transient failure the wait is [`RETRY_AFTER_FAILURE`].
    /// Returns `false`, without a request, when no alert is held.
    pub async fn fetch_held(&self, report: &mut CycleReport) -> Result<bool, SourceError> {
        let Some(held) = self.store.oldest_held()? else {
            return Ok(false);
        };
        let device_id = held.device_id.as_str();
        report.requests += 1;
        match self.fetch_device(device_id).await {
            // The record also serves the inventory, which may have the
            // device queued.
            Ok(device) => self.store_device(&device, Some(device_id), report)?,
            Err(error) if error.kind() == ErrorKind::Permanent => {
                let released = self.note_miss(device_id, self.enrichment.ttl, true)?;
                report.released += released;
                tracing::warn!(%error, device_id, released,
                    "device of held alerts not fetched; they go out without device fields");
            }
            Err(error) if error.kind() == ErrorKind::Transient => {
                // Its alerts go now and other held alerts get their turn:
                // retrying the oldest held alert's device first would let
                // one failing device spend the whole device share.
                let released = self.note_miss(device_id, RETRY_AFTER_FAILURE, false)?;
                report.released += released;
                tracing::warn!(%error, device_id, released,
                    retry_after_s = RETRY_AFTER_FAILURE.as_secs(),
                    "device of held alerts not fetched; they go out without device fields, and the device is tried again later");
                return Err(error.into());
            }
            Err(error) => return Err(error.into()),
        }
        Ok(true)
    }

    /// Sends alerts held longer than the enrichment `wait` without their
    /// device, and every held alert when enrichment no longer waits for
    /// devices. Sends no request. Returns how many reached the outbox.
    pub fn release_expired(&self) -> Result<usize, SourceError> {
        let now = self.clock.now_ms();
        let cutoff = if self.enrichment.holds_alerts() {
            now.saturating_sub(self.wait_ms())
        } else {
            now
        };
        let released = self.release_held_before(cutoff, now)?;
        if released > 0 {
            tracing::info!(
                released,
                "held alerts sent without device fields: their device was not fetched in time"
            );
        }
        Ok(released)
    }

    /// Sends every held alert without its device, because the device
    /// share has no room for a `getDevice` now. Sends no request; returns
    /// how many reached the outbox.
    pub fn release_unaffordable(&self) -> Result<usize, SourceError> {
        let now = self.clock.now_ms();
        let released = self.release_held_before(now, now)?;
        if released > 0 {
            tracing::debug!(
                released,
                "held alerts sent without device fields: the device share has no room now"
            );
        }
        Ok(released)
    }

    /// Releases un-enriched the alerts held at or before `cutoff`. While
    /// the inventory runs, their devices become its first pending ids.
    fn release_held_before(&self, cutoff: i64, now: i64) -> Result<usize, SourceError> {
        let queue = self.settings.enabled.then_some(SOURCE);
        Ok(self
            .store
            .release_held_before(cutoff, now, self.dedup_expires(now), queue)?)
    }

    async fn fetch_device(&self, id: &str) -> Result<Device, ApiError> {
        let device = self.client.get_device(id).await?;
        if device.device_id == crate::api::lenient::normalize_mac(id) {
            Ok(device)
        } else {
            Err(ApiError::Decode {
                action: "getDevice",
                detail: format!("reply is for device {:?}", device.device_id),
            })
        }
    }

    /// Compares `device` with its stored record and commits the record,
    /// its inventory event, the release of its held alerts and the
    /// removal of pending `id`, in one transaction.
    fn store_device(
        &self,
        device: &Device,
        pending: Option<&str>,
        report: &mut CycleReport,
    ) -> Result<(), SourceError> {
        let inventory = self.inventory_event(device)?.map(Event::Inventory);
        let now = self.clock.now_ms();
        let fetched = FetchedDevice {
            device,
            inventory: inventory.as_ref(),
            pending: pending.map(|id| (SOURCE, id)),
        };
        let commit = self
            .store
            .commit_device(fetched, now, self.dedup_expires(now))?;
        match commit.inventory {
            Some(Stored::New) => report.stored += 1,
            Some(Stored::Duplicate) => report.duplicates += 1,
            None => {}
        }
        report.released += commit.released;
        tracing::trace!(device_id = %device.device_id, released = commit.released,
            "device stored");
        Ok(())
    }

    /// Returns the inventory event of a fetched record: the device is
    /// new, or a security field differs from the stored record. `None`
    /// when nothing changed, when the inventory is disabled, or when the
    /// device is outside the configured filters (fetched for an alert).
    fn inventory_event(&self, device: &Device) -> Result<Option<InventoryEvent>, SourceError> {
        if !self.settings.enabled || !matches_filter(device, &self.settings.filter) {
            return Ok(None);
        }
        let event = match self.store.device(&device.device_id)? {
            None => Some(InventoryEvent {
                device: device.clone(),
                added: true,
                changes: initial_values(device),
            }),
            Some(known) => {
                let changes = security_changes(&known.device, device);
                (!changes.is_empty()).then(|| InventoryEvent {
                    device: device.clone(),
                    added: false,
                    changes,
                })
            }
        };
        Ok(event)
    }

    /// Records a failed `getDevice` for `device_id`: no request for it
    /// until `retry_after` has passed, and its held alerts go out without
    /// device fields. With `leave_queue`, it also leaves the pending ids.
    fn note_miss(
        &self,
        device_id: &str,
        retry_after: std::time::Duration,
        leave_queue: bool,
    ) -> Result<usize, SourceError> {
        let now = self.clock.now_ms();
        let until = now.saturating_add(millis(retry_after));
        let pending = leave_queue.then_some(SOURCE);
        Ok(self.store.commit_device_miss(
            device_id,
            until,
            now,
            self.dedup_expires(now),
            pending,
        )?)
    }

    fn wait_ms(&self) -> i64 {
        millis(self.enrichment.wait)
    }

    fn dedup_expires(&self, now_ms: i64) -> i64 {
        now_ms.saturating_add(self.dedup_retention_ms)
    }
}

/// Returns whether `device` passes the `listDevices` filters, text
/// compared ignoring case and surrounding spaces as the simulator does.
/// NOTE: the API document does not say how the API compares filters, so
/// a device fetched for an alert may be judged differently here.
fn matches_filter(device: &Device, filter: &DeviceFilter) -> bool {
    let text_matches = |field: &Option<String>, wanted: &Option<String>| match wanted {
        None => true,
        Some(wanted) => field
            .as_deref()
            .is_some_and(|value| value.trim().eq_ignore_ascii_case(wanted.trim())),
    };
    let threat_matches = filter
        .threat
        .is_none_or(|wanted| device.threat.unwrap_or(false) == wanted);
    text_matches(&device.category, &filter.category)
        && text_matches(&device.device_type, &filter.device_type)
        && threat_matches
}

fn millis(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 2)
}
