//! The sources that run in the alert source's gaps: the device
//! inventory (`listDevices`, then `getDevice` per changed id) and the
//! device timeline (`getDeviceTimeline` per selected device).
//!
//! Each is held to its share of the day so far (`[quota.shares]`,
//! [`within_share`]). When both are within their share, the one that has
//! spent the smaller part of its share goes first. A source past its
//! share still goes when the scheduler finds the token would otherwise
//! go unused, which is how an unused share flows to the others.
//!
//! The requests each source spends are counted per UTC day in the
//! state's counters (`spent.<source>`, with `spent.day`), so a restart
//! keeps the division of the day.

use std::time::Duration;

use super::Forwarder;
use crate::api::Transport;
use crate::budget::{Budgeted, SourceKind, day_start_ms, within_share};
use crate::source::{CycleReport, DeviceSource, SourceError, TimelineSource};
use crate::state::StateError;

const DAY_MS: i64 = 86_400_000;

/// How long the timeline's next due time is trusted before it is read
/// again: finding it reads every selected device's last poll.
const TIMELINE_RECHECK_MS: i64 = 60_000;

/// A request of a background source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum BackgroundJob {
    DeviceList,
    DeviceDetail,
    Timeline(String),
}

impl BackgroundJob {
    pub(super) fn source(&self) -> SourceKind {
        match self {
            BackgroundJob::DeviceList | BackgroundJob::DeviceDetail => SourceKind::Devices,
            BackgroundJob::Timeline(_) => SourceKind::Timeline,
        }
    }
}

/// The outcome of [`Background::next`].
pub(super) struct Pick {
    pub job: Option<BackgroundJob>,
    /// When a background source next has work, if it has none now.
    pub next_due_ms: Option<i64>,
    /// A source has work now but is past its share.
    pub held_by_share: bool,
}

pub(super) struct Background<'a, T> {
    forwarder: &'a Forwarder<T>,
    pub(super) devices: DeviceSource<Budgeted<T>>,
    timeline: TimelineSource<Budgeted<T>>,
    /// When the timeline's due time was read, and that time.
    timeline_due: Option<(i64, Option<i64>)>,
}

impl<'a, T: Transport> Background<'a, T> {
    pub(super) fn new(forwarder: &'a Forwarder<T>) -> Self {
        Background {
            forwarder,
            devices: forwarder.device_source(),
            timeline: forwarder.timeline_source(),
            timeline_due: None,
        }
    }

    fn devices_enabled(&self) -> bool {
        self.forwarder.settings().devices.enabled
    }

    fn timeline_enabled(&self) -> bool {
        self.forwarder.settings().timeline.enabled
    }

    /// Returns the requests each background source expects to spend in
    /// the `left_ms` left of the day. For the inventory that is its list
    /// interval plus the pending ids. While enrichment holds alerts back,
    /// the held alerts' devices and the device share's pace so far today
    /// are added. The timeline expects one poll per selected device per
    /// interval.
    pub(super) fn demand(&self, left_ms: f64) -> Result<Vec<(SourceKind, f64)>, SourceError> {
        let settings = self.forwarder.settings();
        let mut demand = Vec::with_capacity(2);
        let mut devices = 0.0;
        if self.devices_enabled() {
            let interval = settings.devices.min_poll_interval.as_millis().max(1) as f64;
            let pending = self.devices.pending_count()? as f64;
            devices += left_ms / interval + pending;
        }
        if settings.enrichment.holds_alerts() {
            let (_, fraction) = self.day_position()?;
            let elapsed_ms = (fraction * DAY_MS as f64).max(3_600_000.0);
            let pace = self.spent(SourceKind::Devices)? as f64 / elapsed_ms;
            devices += self.devices.held_count()? as f64 + pace * left_ms;
        }
        if self.devices_enabled() || settings.enrichment.holds_alerts() {
            demand.push((SourceKind::Devices, devices));
        }
        if self.timeline_enabled() {
            let interval = settings.timeline.min_interval.as_millis().max(1) as f64;
            let selected = self.timeline.selected_count()? as f64;
            demand.push((SourceKind::Timeline, selected * (left_ms / interval).ceil()));
        }
        Ok(demand)
    }

    /// Picks the next background request. A source past its share goes
    /// only with `flow`, when no other source would use the token.
    pub(super) fn next(&mut self, flow: bool) -> Result<Pick, SourceError> {
        let now = self.forwarder.clock.now_ms();
        let mut ready: Vec<(SourceKind, f64)> = Vec::with_capacity(2);
        let mut next_due_ms: Option<i64> = None;
        let mut note_due = |at: i64| next_due_ms = Some(next_due_ms.map_or(at, |due| due.min(at)));

        let device_job = if self.devices_enabled() {
            self.device_job(now, &mut note_due)?
        } else {
            None
        };
        if device_job.is_some() {
            ready.push((SourceKind::Devices, self.used_part(SourceKind::Devices)?));
        }
        let timeline_ready = if self.timeline_enabled() {
            match self.timeline_due(now)? {
                Some(due) if due <= now => true,
                Some(due) => {
                    note_due(due);
                    false
                }
                None => false,
            }
        } else {
            false
        };
        if timeline_ready {
            ready.push((SourceKind::Timeline, self.used_part(SourceKind::Timeline)?));
        }

        let mut within = Vec::with_capacity(2);
        for (source, part) in &ready {
            if self.within_own_share(*source, true)? {
                within.push((*source, *part));
            }
        }
        let candidates = if within.is_empty() && flow {
            ready.clone()
        } else {
            within
        };
        let chosen = candidates
            .iter()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(source, _)| *source);
        let job = match chosen {
            Some(SourceKind::Devices) => device_job,
            Some(SourceKind::Timeline) => match self.timeline.next_device()? {
                Some(device) => Some(BackgroundJob::Timeline(device)),
                None => {
                    // Another look found no device due after all.
                    self.timeline_due = None;
                    None
                }
            },
            Some(SourceKind::Alerts) | None => None,
        };
        Ok(Pick {
            held_by_share: job.is_none() && !ready.is_empty(),
            job,
            next_due_ms,
        })
    }

    /// Sends one background request.
    pub(super) async fn run(
        &mut self,
        job: &BackgroundJob,
        report: &mut CycleReport,
    ) -> Result<(), SourceError> {
        match job {
            BackgroundJob::DeviceList => self.devices.list(report).await,
            BackgroundJob::DeviceDetail => self.devices.fetch_pending(1, report).await.map(|_| ()),
            BackgroundJob::Timeline(device) => {
                // Whatever the outcome, the due times have moved.
                self.timeline_due = None;
                self.timeline.poll_device(device, report).await
            }
        }
    }

    fn device_job(
        &self,
        now: i64,
        note_due: &mut impl FnMut(i64),
    ) -> Result<Option<BackgroundJob>, SourceError> {
        if self.devices.pending_count()? > 0 {
            return Ok(Some(BackgroundJob::DeviceDetail));
        }
        let interval = millis(self.forwarder.settings().devices.min_poll_interval);
        let listed = self
            .forwarder
            .store
            .listed_ms(crate::source::devices::SOURCE)?;
        let due = listed.map_or(now, |at| at.saturating_add(interval));
        if due <= now {
            return Ok(Some(BackgroundJob::DeviceList));
        }
        note_due(due);
        Ok(None)
    }

    fn timeline_due(&mut self, now: i64) -> Result<Option<i64>, SourceError> {
        if let Some((read_at, due)) = self.timeline_due
            && now - read_at < TIMELINE_RECHECK_MS
        {
            return Ok(due);
        }
        let due = self.timeline.next_due_ms()?;
        self.timeline_due = Some((now, due));
        Ok(due)
    }

    /// Today's allowed requests and how far the server's day has gone,
    /// from 0 to 1.
    fn day_position(&self) -> Result<(i64, f64), StateError> {
        let budget = &self.forwarder.budget;
        let day = budget.ledger()?;
        let now = budget.server_now_ms();
        let fraction = (now - day_start_ms(now)) as f64 / DAY_MS as f64;
        Ok((budget.allowed(&day), fraction))
    }

    /// Checks whether a `getDevice` for held alerts may go now: within
    /// the device share, including the hour ahead that the inventory
    /// leaves to it, or past it with `flow`.
    pub(super) fn enrichment_has_room(&self, flow: bool) -> Result<bool, StateError> {
        Ok(flow || self.within_own_share(SourceKind::Devices, false)?)
    }

    /// Checks whether `source` may spend one more request within its
    /// share now. With `leave_hour_ahead`, the inventory keeps to the even
    /// pace of the device share while enrichment holds alerts back, so the
    /// hour ahead stays free for their devices.
    fn within_own_share(
        &self,
        source: SourceKind,
        leave_hour_ahead: bool,
    ) -> Result<bool, StateError> {
        let (allowed, fraction) = self.day_position()?;
        let settings = self.forwarder.settings();
        let shares = &settings.quota.shares;
        let mut used = self.spent(source)?;
        if leave_hour_ahead && source == SourceKind::Devices && settings.enrichment.holds_alerts() {
            let per_day = shares.of(source) * allowed as f64;
            used += (per_day / 24.0).ceil() as i64;
        }
        Ok(within_share(shares, source, used, allowed, fraction))
    }

    /// Returns the part of its share of the whole day a source has spent.
    fn used_part(&self, source: SourceKind) -> Result<f64, StateError> {
        let (allowed, _) = self.day_position()?;
        let share = self.forwarder.settings().quota.shares.of(source) * allowed as f64;
        Ok(self.spent(source)? as f64 / share.max(f64::MIN_POSITIVE))
    }

    /// Requests `source` spent today.
    pub(super) fn spent(&self, source: SourceKind) -> Result<i64, StateError> {
        spent_today(self.forwarder, source)
    }
}

/// Requests `source` spent in the server's current UTC day.
pub(super) fn spent_today<T>(
    forwarder: &Forwarder<T>,
    source: SourceKind,
) -> Result<i64, StateError> {
    let store = &forwarder.store;
    let today = day_start_ms(forwarder.budget.server_now_ms());
    if store.counter("spent.day")? != today {
        return Ok(0);
    }
    store.counter(&spent_counter(source))
}

/// Counts `requests` of `source`, starting the counts afresh when the
/// day has turned.
pub(super) fn record_spent<T>(
    forwarder: &Forwarder<T>,
    source: SourceKind,
    requests: i64,
) -> Result<(), StateError> {
    let store = &forwarder.store;
    let today = day_start_ms(forwarder.budget.server_now_ms());
    if store.counter("spent.day")? != today {
        for each in SourceKind::ALL {
            store.set_counter(&spent_counter(each), 0)?;
        }
        store.set_counter("spent.day", today)?;
    }
    store.add_counter(&spent_counter(source), requests)
}

fn spent_counter(source: SourceKind) -> String {
    format!("spent.{}", source.name())
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
