//! The device timeline source: `getDeviceTimeline` for each device the
//! policy selects, one request per device, least recently polled first.
//!
//! `hours` reaches back to the start of the device's last stored poll:
//! the time since then in hours, rounded up, at least 1 and at most
//! `max_hours`. The first poll of a device requests `max_hours`. The
//! window is counted on the server's clock, and both ends of the span
//! are measured on the local clock, so a constant offset between the
//! clocks cancels out. Rounding up makes consecutive windows overlap,
//! and the dedup key `(device_id, created, status)` drops the events
//! seen twice.
//!
//! The events of a reply, their dedup keys and the device's new poll
//! time are stored in one transaction. After a crash before the commit,
//! the next poll requests the same window again. A crash after it loses
//! nothing, because the outbox keeps the events until every output has
//! them.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::api::{ApiError, Client, ErrorKind, TimelineEvent, Transport};
use crate::budget::next_day_start_ms;
use crate::clock::Clock;
use crate::config::{TimelinePolicy, TimelineSettings};
use crate::event::{Event, TimelineRecord};
use crate::state::{PollTimes, Store};

use super::{CycleReport, SourceError};

/// The name of this source in logs and the state database.
pub const SOURCE: &str = "timeline";

/// Devices polled at most by one [`TimelineSource::cycle`], so `once`
/// ends in bounded time whatever the size of the fleet.
pub const MAX_POLLS_PER_CYCLE: usize = 100;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

pub struct TimelineSource<T> {
    client: Arc<Client<T>>,
    store: Arc<Store>,
    clock: Clock,
    settings: TimelineSettings,
    dedup_retention_ms: i64,
    /// `(device_id, shape)` pairs already logged as not understood, so
    /// each is logged once per source, not on every poll.
    logged_shapes: Mutex<HashSet<(String, String)>>,
}

impl<T: Transport> TimelineSource<T> {
    pub fn new(
        client: Arc<Client<T>>,
        store: Arc<Store>,
        clock: Clock,
        settings: TimelineSettings,
        dedup_retention: Duration,
    ) -> Self {
        TimelineSource {
            client,
            store,
            clock,
            settings,
            dedup_retention_ms: millis(dedup_retention),
            logged_shapes: Mutex::new(HashSet::new()),
        }
    }

    /// Returns the ids of the devices the policy selects now, in id
    /// order. `threat` and `all` read the device inventory, so they
    /// select nothing until the inventory source has stored devices.
    pub fn selected_devices(&self) -> Result<Vec<String>, SourceError> {
        let ids = match &self.settings.policy {
            TimelinePolicy::Alerted => {
                let days = i64::from(self.settings.alerted_days);
                let since_ms = self.clock.now_ms() - days * DAY_MS;
                self.store.alerted_device_ids(since_ms)?
            }
            TimelinePolicy::Threat => self.store.device_ids(true)?,
            TimelinePolicy::All => self.store.device_ids(false)?,
            TimelinePolicy::List(ids) => ids.clone(),
        };
        Ok(ids)
    }

    pub fn selected_count(&self) -> Result<usize, SourceError> {
        Ok(self.selected_devices()?.len())
    }

    /// Counts the devices whose last stored poll began in the current
    /// UTC day, whether or not the policy still selects them.
    pub fn polled_today(&self) -> Result<i64, SourceError> {
        let now_ms = self.clock.now_ms();
        let day_start_ms = next_day_start_ms(now_ms) - DAY_MS;
        Ok(self.store.timeline_polled_since(day_start_ms)?)
    }

    /// Returns the due selected device that was polled longest ago, or
    /// `None` when no device is due. A device is due when it was never
    /// polled or last polled at least `min_interval` ago. Polling the
    /// returned device moves it to the back, so devices take turns.
    pub fn next_device(&self) -> Result<Option<String>, SourceError> {
        let now_ms = self.clock.now_ms();
        let (device, due_ms) = match self.least_recent()? {
            Some(found) => found,
            None => return Ok(None),
        };
        Ok((due_ms <= now_ms).then_some(device))
    }

    /// Returns when the next selected device becomes due, in epoch
    /// milliseconds (in the past when one is due now), or `None` when
    /// the policy selects no device.
    pub fn next_due_ms(&self) -> Result<Option<i64>, SourceError> {
        Ok(self.least_recent()?.map(|(_, due_ms)| due_ms))
    }

    /// Finds the selected device attempted longest ago (never attempted
    /// first, then by id), with the time it becomes due.
    fn least_recent(&self) -> Result<Option<(String, i64)>, SourceError> {
        let selected = self.selected_devices()?;
        let polls: HashMap<String, PollTimes> = self.store.timeline_polls()?;
        let interval_ms = millis(self.settings.min_interval);
        let mut best: Option<(String, Option<i64>)> = None;
        for device in selected {
            let attempted = polls.get(&device).map(|times| times.attempted_ms);
            let earlier = match &best {
                None => true,
                Some((_, best_attempted)) => attempted < *best_attempted,
            };
            if earlier {
                best = Some((device, attempted));
            }
        }
        Ok(best.map(|(device, attempted)| {
            let due_ms = attempted.map_or(i64::MIN, |ms| ms.saturating_add(interval_ms));
            (device, due_ms)
        }))
    }

    /// Returns the `hours` for the next poll of a device whose last
    /// stored poll began at `polled_ms`.
    fn hours_since(&self, polled_ms: Option<i64>, now_ms: i64) -> u32 {
        let max_hours = self.settings.max_hours.max(1);
        let Some(polled_ms) = polled_ms else {
            return max_hours;
        };
        let elapsed_ms = now_ms.saturating_sub(polled_ms).max(0);
        let hours = elapsed_ms.div_euclid(HOUR_MS) + i64::from(elapsed_ms % HOUR_MS != 0);
        u32::try_from(hours).unwrap_or(u32::MAX).clamp(1, max_hours)
    }

    /// Polls one device's timeline with exactly one `getDeviceTimeline`
    /// request and stores its events with the new poll time.
    ///
    /// A failed request stores nothing and returns the error. It still
    /// moves the device to the back of the round robin, so one failing
    /// device does not hold up the others. The device's next `hours`
    /// window still reaches back to its last stored poll.
    pub async fn poll_device(
        &self,
        device_id: &str,
        report: &mut CycleReport,
    ) -> Result<(), SourceError> {
        let started_ms = self.clock.now_ms();
        let last = self.store.timeline_poll(device_id)?;
        let hours = self.hours_since(last.and_then(|times| times.polled_ms), started_ms);
        report.requests += 1;
        let reply = match self.client.get_device_timeline(device_id, hours).await {
            Ok(reply) => reply,
            Err(error) => return Err(self.note_failure(device_id, started_ms, error)?),
        };
        for shape in &reply.not_understood {
            self.log_shape(device_id, shape)?;
        }
        let events: Vec<Event> = reply
            .events
            .into_iter()
            .map(|event| self.record(device_id, event))
            .collect::<Result<_, _>>()?;
        report.listed += events.len();
        let now_ms = self.clock.now_ms();
        let expires_ms = now_ms.saturating_add(self.dedup_retention_ms);
        // NOTE: a reply with nothing understood still moves the poll time
        // on. Polling the same window again would return the same
        // unreadable reply and spend a request each time.
        let commit = self
            .store
            .commit_timeline(device_id, &events, started_ms, now_ms, expires_ms)?;
        report.stored += commit.stored;
        report.duplicates += commit.duplicates;
        tracing::debug!(
            device_id,
            hours,
            events = events.len(),
            stored = commit.stored,
            duplicates = commit.duplicates,
            "polled device timeline"
        );
        Ok(())
    }

    /// Polls the devices that are due, at most [`MAX_POLLS_PER_CYCLE`],
    /// for `once`. A device the API rejects (a permanent error) is
    /// logged and skipped; any other error ends the cycle.
    pub async fn cycle(&self) -> Result<CycleReport, SourceError> {
        let mut report = CycleReport::default();
        for _ in 0..MAX_POLLS_PER_CYCLE {
            let Some(device_id) = self.next_device()? else {
                break;
            };
            match self.poll_device(&device_id, &mut report).await {
                Ok(()) => {}
                Err(SourceError::Api(error)) if error.kind() == ErrorKind::Permanent => {
                    report.dropped += 1;
                }
                Err(error) => return Err(error),
            }
        }
        Ok(report)
    }

    /// Builds the event of one timeline entry, with the device's
    /// inventory record when it is known. An entry without `device_id`
    /// belongs to the device that was asked for.
    fn record(&self, device_id: &str, event: TimelineEvent) -> Result<Event, SourceError> {
        let id = event.device_id.unwrap_or_else(|| device_id.to_owned());
        let device = self.store.device(&id)?.map(|known| known.device);
        Ok(Event::Timeline(TimelineRecord {
            device_id: id,
            created: event.created.unwrap_or_default(),
            status: event.status.unwrap_or_default(),
            ip_address: event.ip_address,
            device,
        }))
    }

    /// Logs a shape not understood the first time this source finds it
    /// for this device, and counts it in `timeline_shapes_not_understood`.
    fn log_shape(&self, device_id: &str, shape: &str) -> Result<(), SourceError> {
        let first = self
            .logged_shapes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert((device_id.to_owned(), shape.to_owned()));
        if first {
            tracing::warn!(
                device_id,
                shape,
                "device timeline reply has a part that is not understood; \
                 that part is skipped, logged once per device and shape"
            );
            self.store
                .add_counter("timeline_shapes_not_understood", 1)?;
        }
        Ok(())
    }

    /// Records a failed poll and returns the error for the caller.
    fn note_failure(
        &self,
        device_id: &str,
        started_ms: i64,
        error: ApiError,
    ) -> Result<SourceError, SourceError> {
        match error.kind() {
            // No fault of this device: it keeps its place.
            ErrorKind::DayClosed | ErrorKind::InvalidKey => {}
            ErrorKind::Permanent | ErrorKind::Transient => {
                self.store.timeline_attempted(device_id, started_ms)?;
                tracing::warn!(%error, device_id, "device timeline poll failed");
            }
        }
        Ok(error.into())
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
