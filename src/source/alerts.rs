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

use std::sync::Arc;

use crate::api::{ApiError, Client, ErrorKind, TimeFilter, Transport};
use crate::clock::Clock;
use crate::config::AlertSettings;
use crate::event::{AlertEvent, Event};
use crate::state::{Store, Stored};

use super::{CycleReport, SourceError};

/// The name of this source in the state database.
pub const SOURCE: &str = "alerts";

/// Permanent failures of one pending id before it is dropped.
const MAX_ATTEMPTS: i64 = 5;

pub struct AlertSource<T> {
    client: Arc<Client<T>>,
    store: Arc<Store>,
    clock: Clock,
    settings: AlertSettings,
    dedup_retention_ms: i64,
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
            dedup_retention_ms: i64::try_from(dedup_retention.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// Runs one poll cycle: fetches ids left pending by an earlier run,
    /// lists what changed since the cursor, and fetches those.
    pub async fn cycle(&self) -> Result<CycleReport, SourceError> {
        let mut report = CycleReport::default();
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
        let since = match self.store.cursor(SOURCE)? {
            Some(cursor) => cursor,
            None => self.clock.now_secs() - secs(self.settings.start_from),
        };
        let filter = TimeFilter {
            created: None,
            modified: Some(since),
        };
        report.requests += 1;
        let listed = self.client.list_alerts(filter).await?;
        let next = match listed.server_time {
            Some(time) => time.timestamp() - secs(self.settings.overlap),
            None => self.clock.now_secs() - secs(self.settings.clock_skew),
        };
        // A cursor never moves back past where it was, which would only
        // list the same alerts again.
        let next = next.max(since);
        let added = self
            .store
            .commit_listing(SOURCE, &listed.ids, next, self.clock.now_ms())?;
        report.listed = listed.ids.len();
        tracing::debug!(
            since,
            next,
            listed = listed.ids.len(),
            added,
            "listed alerts"
        );
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
        let event = Event::Alert(AlertEvent {
            alert,
            device: None,
        });
        let now = self.clock.now_ms();
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

fn secs(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX / 2)
}
