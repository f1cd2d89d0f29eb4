//! The alert source: `listAlerts` with `modified` from the cursor, then
//! `getAlert` for each listed id.
//!
//! Listed ids are stored as pending together with the new cursor before
//! any detail call, so a run that stops midway resumes with the detail
//! calls instead of listing again. An alert modified again is listed
//! again and yields a new event; the dedup key `(alert_id, modified)`
//! drops a modification that was already delivered.
//!
//! The cursor comes from the server's clock, the HTTP `Date` of the list
//! reply, so the two clocks need not agree. It is set `overlap` seconds
//! before that time, because the API does not document whether
//! `modified=T` means after T or at-or-after T. An alert modified in the
//! same second as the reply, but after it, must still be listed next
//! time. Alerts modified within the overlap are fetched twice; the
//! second fetch is counted (`overlap_refetches`) and dropped by dedup.
//!
//! Enrichment: each alert carries the stored record of its device when
//! the record is younger than the enrichment TTL. Otherwise the alert is
//! held (see `super::devices`) until the device source fetches the
//! device or the enrichment `wait` ends. With `wait = 0` nothing is
//! held, and an alert carries whatever record is stored, however old.

use std::sync::Arc;

use crate::api::{Alert, ApiError, Client, Device, ErrorKind, TimeFilter, Transport};
use crate::clock::Clock;
use crate::config::{AlertSettings, EnrichmentSettings};
use crate::event::{AlertEvent, Event};
use crate::state::{Store, Stored};

use super::{CursorRule, CycleReport, SourceError};

/// The name of this source in the state database.
pub const SOURCE: &str = "alerts";

/// Permanent failures of one pending id before it is dropped.
const MAX_ATTEMPTS: i64 = 5;

pub struct AlertSource<T> {
    client: Arc<Client<T>>,
    store: Arc<Store>,
    clock: Clock,
    settings: AlertSettings,
    enrichment: EnrichmentSettings,
    /// Whether the device inventory refetches every device whose record
    /// changes, so a stored record is current whatever its age.
    inventory_current: bool,
    dedup_retention_ms: i64,
}

/// The outcome of the device lookup for one alert.
enum Enrichment {
    Attach(Box<Device>),
    Hold(String),
    Without,
}

impl<T: Transport> AlertSource<T> {
    pub fn new(
        client: Arc<Client<T>>,
        store: Arc<Store>,
        clock: Clock,
        settings: AlertSettings,
        dedup_retention: std::time::Duration,
    ) -> Self {
        AlertSource {
            client,
            store,
            clock,
            settings,
            enrichment: EnrichmentSettings::disabled(),
            inventory_current: false,
            dedup_retention_ms: i64::try_from(dedup_retention.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// Sets how alerts get their device's record; off by default.
    pub fn with_enrichment(mut self, enrichment: EnrichmentSettings) -> Self {
        self.enrichment = enrichment;
        self
    }

    /// Tells the source that the device inventory runs unfiltered, so
    /// stored device records are kept current and the TTL does not
    /// apply: a record is fetched for an alert only when it is missing.
    pub fn with_current_inventory(mut self, current: bool) -> Self {
        self.inventory_current = current;
        self
    }

    /// Runs one poll cycle: releases held alerts whose wait is over,
    /// fetches ids left pending by an earlier run, lists what changed
    /// since the cursor, and fetches those.
    pub async fn cycle(&self) -> Result<CycleReport, SourceError> {
        let mut report = CycleReport {
            released: self.release_expired()?,
            ..CycleReport::default()
        };
        let budget = self.settings.max_details_per_cycle as usize;
        let fetched = self.fetch_pending(budget, &mut report).await?;
        if self.store.pending_count(SOURCE)? > 0 {
            // Backlog left: list again only once it is fetched, so the
            // pending ids never grow faster than they drain.
            return Ok(report);
        }
        self.list(&mut report).await?;
        self.fetch_pending(budget - fetched, &mut report).await?;
        Ok(report)
    }

    /// Lists alerts modified since the cursor and stores their ids as
    /// pending, with the new cursor.
    pub async fn list(&self, report: &mut CycleReport) -> Result<(), SourceError> {
        let rule = CursorRule {
            start_from: self.settings.start_from,
            overlap: self.settings.overlap,
            clock_skew: self.settings.clock_skew,
        };
        let since = rule.since(&self.store, SOURCE, &self.clock)?;
        let filter = TimeFilter {
            created: None,
            modified: Some(since),
        };
        report.requests += 1;
        let listed = self.client.list_alerts(filter).await?;
        rule.commit(&self.store, SOURCE, &self.clock, since, &listed)?;
        report.listed = listed.ids.len();
        Ok(())
    }

    /// Fetches up to `limit` pending alerts and returns how many it
    /// asked for.
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
            let fetched = self.client.get_alert(id).await.and_then(|alert| {
                if alert.alert_id == id {
                    Ok(alert)
                } else {
                    Err(ApiError::Decode {
                        action: "getAlert",
                        detail: format!("reply is for alert {:?}", alert.alert_id),
                    })
                }
            });
            match fetched {
                Ok(alert) => self.store_alert(id, alert, report)?,
                Err(error) => match error.kind() {
                    ErrorKind::Permanent => self.note_failure(id, &error, report)?,
                    // A timeout or a 5xx on one alert: count it, so the
                    // next cycle starts with another id, and stop this
                    // cycle, since the API is in trouble.
                    ErrorKind::Transient => {
                        self.store.pending_failed(SOURCE, id)?;
                        tracing::warn!(%error, alert_id = id, "alert fetch failed; kept pending");
                        return Err(error.into());
                    }
                    ErrorKind::DayClosed | ErrorKind::InvalidKey => return Err(error.into()),
                },
            }
        }
        Ok(ids.len())
    }

    fn store_alert(
        &self,
        id: &str,
        alert: crate::api::Alert,
        report: &mut CycleReport,
    ) -> Result<(), SourceError> {
        let now = self.clock.now_ms();
        let device = match self.enrichment_of(&alert, now)? {
            Enrichment::Attach(device) => Some(*device),
            Enrichment::Without => None,
            Enrichment::Hold(device_id) => {
                match self.store.hold_alert(SOURCE, id, &alert, &device_id, now)? {
                    Stored::New => report.held += 1,
                    Stored::Duplicate => report.duplicates += 1,
                }
                tracing::trace!(alert_id = id, %device_id, "alert held for its device");
                return Ok(());
            }
        };
        let event = Event::Alert(AlertEvent { alert, device });
        let expires = now.saturating_add(self.dedup_retention_ms);
        match self.store.commit_event(SOURCE, id, &event, now, expires)? {
            Stored::New => report.stored += 1,
            Stored::Duplicate => {
                report.duplicates += 1;
                self.store.add_counter("overlap_refetches", 1)?;
                tracing::trace!(alert_id = id, "modification already delivered");
            }
        }
        Ok(())
    }

    /// Sends alerts held longer than the enrichment `wait` without their
    /// device, so they leave even when nothing fetches devices. The
    /// device source's `release_expired` does the same.
    fn release_expired(&self) -> Result<usize, SourceError> {
        let now = self.clock.now_ms();
        let wait_ms = i64::try_from(self.enrichment.wait.as_millis()).unwrap_or(i64::MAX);
        let cutoff = if self.enrichment.holds_alerts() {
            now.saturating_sub(wait_ms)
        } else {
            now
        };
        let expires = now.saturating_add(self.dedup_retention_ms);
        let released = self.store.release_held_before(cutoff, now, expires, None)?;
        if released > 0 {
            tracing::info!(
                released,
                "held alerts sent without device fields after their wait"
            );
        }
        Ok(released)
    }

    /// Decides whether `alert` goes out with its stored device record,
    /// waits for a fresh one, or goes out without one.
    fn enrichment_of(&self, alert: &Alert, now_ms: i64) -> Result<Enrichment, SourceError> {
        let device_id = alert.device_id.as_deref().map(str::trim);
        let Some(device_id) = device_id.filter(|id| self.enrichment.enabled && !id.is_empty())
        else {
            return Ok(Enrichment::Without);
        };
        // A device `getDevice` did not find within the TTL would cost a
        // request per alert and still not be found.
        if self.store.device_missing(device_id, now_ms)? {
            return Ok(Enrichment::Without);
        }
        let known = self.store.device(device_id)?;
        let ttl_ms = i64::try_from(self.enrichment.ttl.as_millis()).unwrap_or(i64::MAX);
        let holds = self.enrichment.holds_alerts();
        Ok(match known {
            Some(known)
                if self.inventory_current || now_ms.saturating_sub(known.fetched_ms) < ttl_ms =>
            {
                Enrichment::Attach(Box::new(known.device))
            }
            _ if holds => Enrichment::Hold(device_id.to_owned()),
            Some(stale) => Enrichment::Attach(Box::new(stale.device)),
            None => Enrichment::Without,
        })
    }

    fn note_failure(
        &self,
        id: &str,
        error: &ApiError,
        report: &mut CycleReport,
    ) -> Result<(), SourceError> {
        self.store.pending_failed(SOURCE, id)?;
        let attempts = self.store.pending_attempts(SOURCE, id)?;
        if attempts >= MAX_ATTEMPTS {
            // Each attempt costs a request of the daily quota, so a
            // record the API keeps returning wrongly cannot stay forever.
            tracing::error!(%error, alert_id = id, attempts,
                "alert dropped after repeated failures; it is not delivered");
            self.store.drop_pending(SOURCE, id)?;
            report.dropped += 1;
        } else {
            tracing::warn!(%error, alert_id = id, attempts, "alert fetch failed; kept pending");
        }
        Ok(())
    }
}
