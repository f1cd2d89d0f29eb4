//! The daily request budget.
//!
//! The ledger counts requests per UTC day in the state database, before
//! each request is sent (the server counts attempts, failed ones too),
//! so no restart resets it. [`Budgeted`] wraps a transport and refuses a
//! request when the day has no room under `daily_limit - reserve`, or
//! was closed by a "limit reached" reply. [`Pacer`] spreads what is left
//! over what is left of the day.
//!
//! Days follow the server's clock: every reply's `Date` header updates
//! the estimated offset between the two clocks, so a forwarder whose
//! clock is a few minutes off still turns the day when the API does.

mod pacer;
mod shares;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{Duration as ChronoDuration, NaiveTime};

use crate::api::{ApiError, ApiKeyInfo, Call, Reply, Transport, failure_of};
use crate::clock::Clock;
use crate::config::QuotaSettings;
use crate::state::{LedgerDay, StateError, Store};

pub use pacer::{ListHold, Pacer, Permit, TAIL_MS, can_spare, planned_period_ms, tail_share};
pub use shares::{Shares, SourceKind, reserved_for_background, within_share};

/// Maximum random delay added after 00:00 UTC before a closed day
/// reopens, so that tools sharing a key do not all call at once.
const REOPEN_JITTER_MS: i64 = 120_000;

/// The ledger and its limits.
pub struct Budget {
    store: Arc<Store>,
    clock: Clock,
    /// Replaced when a reloaded config changes the `[quota]` table.
    quota: RwLock<QuotaSettings>,
    /// Server time minus local time, from the last `Date` header. Kept
    /// in the state database, so a new process counts its first
    /// requests on the server's day too.
    server_offset_ms: AtomicI64,
    /// `request_limit` from the last sync, 0 when unknown. Kept in the
    /// state database, so it lasts across day turns and restarts.
    server_limit: AtomicI64,
}

/// Names of the values the budget keeps in the state database.
/// Counter holding the server clock's lead over the local clock, in ms,
/// as the `Date` of the last reply showed it.
pub const OFFSET_KEY: &str = "server_offset_ms";
const LIMIT_KEY: &str = "server_limit";

impl Budget {
    pub fn new(store: Arc<Store>, clock: Clock, quota: QuotaSettings) -> Self {
        let offset = store.counter(OFFSET_KEY).unwrap_or(0);
        let limit = store.counter(LIMIT_KEY).unwrap_or(0);
        Budget {
            store,
            clock,
            quota: RwLock::new(quota),
            server_offset_ms: AtomicI64::new(offset),
            server_limit: AtomicI64::new(limit),
        }
    }

    pub fn quota(&self) -> QuotaSettings {
        self.quota_guard().clone()
    }

    /// Applies the `[quota]` table of a reloaded config to the next
    /// request. The ledger keeps today's count.
    pub fn set_quota(&self, quota: QuotaSettings) {
        let mut current = self
            .quota
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *current = quota;
    }

    fn quota_guard(&self) -> std::sync::RwLockReadGuard<'_, QuotaSettings> {
        // The lock guards a plain value that a panicking writer cannot
        // leave half-written, so a poisoned lock is still usable.
        self.quota
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Returns the current time on the server's clock, as far as it is
    /// known.
    pub fn server_now_ms(&self) -> i64 {
        self.clock.now_ms() + self.server_offset_ms.load(Ordering::Relaxed)
    }

    /// Today's UTC date on the server's clock, `YYYY-MM-DD`.
    pub fn today(&self) -> String {
        day_of(self.server_now_ms())
    }

    /// Requests per day this forwarder may spend: the smaller of the
    /// configured and the server's limit, less the reserve.
    pub fn allowed(&self, day: &LedgerDay) -> i64 {
        (self.limit(day) - self.quota_guard().reserve).max(0)
    }

    /// Requests per day left for other tools (`quota.reserve`).
    pub fn reserve(&self) -> i64 {
        self.quota_guard().reserve
    }

    /// Returns the organization's daily limit: the smaller of the
    /// configured one and the server's, when a sync reported it.
    pub fn limit(&self, day: &LedgerDay) -> i64 {
        let known = self.server_limit.load(Ordering::Relaxed);
        let daily_limit = self.quota_guard().daily_limit;
        let server = day.server_limit.unwrap_or(known);
        if server > 0 {
            server.min(daily_limit)
        } else {
            daily_limit
        }
    }

    pub fn ledger(&self) -> Result<LedgerDay, StateError> {
        self.store.ledger_day(&self.today())
    }

    /// Counts one request for `action`, or refuses it when today's
    /// ledger has no room or the day was closed.
    pub fn take(&self, action: &'static str) -> Result<LedgerDay, ApiError> {
        let today = self.today();
        let day = self
            .store
            .ledger_day(&today)
            .map_err(|e| ledger_error(action, &e))?;
        let allowed = self.allowed(&day);
        let (limit, reserve) = (self.limit(&day), self.reserve());
        if limit <= reserve {
            return Err(ApiError::ReserveTakesAll {
                action,
                limit,
                reserve,
            });
        }
        let spent = ApiError::BudgetSpent {
            action,
            used: day.effective_used(),
            allowed,
        };
        if self.is_closed(&day) {
            let until = day
                .closed_until_ms
                .map(|until| {
                    crate::clock::datetime_from_ms(until)
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                })
                .unwrap_or_default();
            return Err(ApiError::LimitReached {
                action,
                detail: format!(
                    "not sent, because an earlier reply today reported it; the day is closed until {until}"
                ),
            });
        }
        match self
            .store
            .ledger_take(&today, allowed, self.server_now_ms())
        {
            Ok(Some(day)) => Ok(day),
            Ok(None) => Err(spent),
            Err(error) => Err(ledger_error(action, &error)),
        }
    }

    /// Checks whether `day` was closed by a "limit reached" reply and has not
    /// reopened yet.
    pub fn is_closed(&self, day: &LedgerDay) -> bool {
        day.closed_until_ms
            .is_some_and(|until| until > self.server_now_ms())
    }

    /// Closes today until the next 00:00 UTC plus a little jitter, after
    /// the server replied that the organization's limit is reached. Returns when
    /// polling resumes, on the local clock.
    pub fn close_day(&self) -> Result<i64, StateError> {
        let jitter = rand::random_range(0..REOPEN_JITTER_MS);
        let until = next_day_start_ms(self.server_now_ms()) + jitter;
        self.store.ledger_close(&self.today(), until)?;
        Ok(until - self.server_offset_ms.load(Ordering::Relaxed))
    }

    /// Records what `getAPIKey` returned: the organization's count today,
    /// which includes other tools, and its limit.
    pub fn record_sync(&self, info: &ApiKeyInfo) -> Result<(), StateError> {
        let Some(requests) = info.requests else {
            return Ok(());
        };
        if let Some(limit) = info.request_limit.filter(|limit| *limit > 0) {
            self.server_limit.store(limit, Ordering::Relaxed);
            self.store.set_counter(LIMIT_KEY, limit)?;
        }
        let now = self.clock.now_ms();
        self.store
            .ledger_sync(&self.today(), requests, info.request_limit, now)
    }

    fn note_server_time(&self, reply: &Reply) {
        let Some(time) = reply.server_time else {
            return;
        };
        let offset = time.timestamp_millis() - self.clock.now_ms();
        let previous = self.server_offset_ms.swap(offset, Ordering::Relaxed);
        // The Date header has whole seconds: store only real changes.
        if (offset - previous).abs() >= 2_000
            && let Err(error) = self.store.set_counter(OFFSET_KEY, offset)
        {
            tracing::warn!(%error, "cannot store the server clock offset");
        }
    }
}

fn ledger_error(action: &'static str, error: &StateError) -> ApiError {
    ApiError::Connection {
        action,
        message: format!("not sent, the request ledger is unavailable: {error}"),
    }
}

/// Formats the UTC date of `ms` as `YYYY-MM-DD`.
pub fn day_of(ms: i64) -> String {
    crate::clock::datetime_from_ms(ms)
        .format("%Y-%m-%d")
        .to_string()
}

/// Epoch milliseconds of the 00:00 UTC at or before `ms`.
pub fn day_start_ms(ms: i64) -> i64 {
    let date = crate::clock::datetime_from_ms(ms).date_naive();
    date.and_time(NaiveTime::MIN).and_utc().timestamp_millis()
}

/// Epoch milliseconds of the 00:00 UTC that follows `ms`.
pub fn next_day_start_ms(ms: i64) -> i64 {
    let date = crate::clock::datetime_from_ms(ms).date_naive() + ChronoDuration::days(1);
    date.and_time(NaiveTime::MIN).and_utc().timestamp_millis()
}

/// A transport that takes a request from the [`Budget`] before sending.
pub struct Budgeted<T> {
    inner: T,
    budget: Arc<Budget>,
}

impl<T> Budgeted<T> {
    pub fn new(inner: T, budget: Arc<Budget>) -> Self {
        Budgeted { inner, budget }
    }

    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }
}

impl<T: Transport> Transport for Budgeted<T> {
    async fn send(&self, call: &Call) -> Result<Reply, ApiError> {
        self.budget.take(call.action)?;
        let reply = self.inner.send(call).await?;
        self.budget.note_server_time(&reply);
        if says_limit_reached(call.action, &reply) {
            match self.budget.close_day() {
                Ok(until) => tracing::warn!(
                    action = call.action,
                    resumes_at = %crate::clock::datetime_from_ms(until),
                    "the API says the organization's daily limit is reached; \
                     polling stops until then and pending work is kept"
                ),
                Err(error) => tracing::error!(%error, "cannot record the closed day"),
            }
        }
        Ok(reply)
    }
}

fn says_limit_reached(action: &'static str, reply: &Reply) -> bool {
    // Failure bodies are small; skip parsing the large success bodies.
    if reply.body.len() > 4096 {
        return false;
    }
    serde_json::from_slice(&reply.body)
        .ok()
        .and_then(|body| failure_of(action, &body))
        .is_some_and(|error| matches!(error, ApiError::LimitReached { .. }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_day_starts_at_midnight_utc() {
        // 2026-12-04T15:30:00Z
        let ms = 1_796_398_200_000;
        assert_eq!(day_of(ms), "2026-12-04");
        assert_eq!(next_day_start_ms(ms), 1_796_428_800_000);
        assert_eq!(day_start_ms(ms), 1_796_342_400_000);
        assert_eq!(day_of(next_day_start_ms(ms)), "2026-12-05");
    }
}
