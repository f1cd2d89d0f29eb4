//! The daily request budget: a ledger of requests per UTC day, kept in
//! the state database so no restart resets it, and a transport wrapper
//! that counts each request before it is sent (the server counts
//! attempts, failed ones included) and refuses it when the day is spent.

use std::sync::Arc;

use chrono::{Duration as ChronoDuration, NaiveTime};

use crate::api::{ApiError, Call, Reply, Transport, failure_of};
use crate::clock::Clock;
use crate::config::QuotaSettings;
use crate::state::{LedgerDay, StateError, Store};

/// The ledger and its limits.
pub struct Budget {
    store: Arc<Store>,
    clock: Clock,
    quota: QuotaSettings,
}

impl Budget {
    pub fn new(store: Arc<Store>, clock: Clock, quota: QuotaSettings) -> Self {
        Budget {
            store,
            clock,
            quota,
        }
    }

    pub fn quota(&self) -> &QuotaSettings {
        &self.quota
    }

    /// Today's UTC date as the ledger keys it, `YYYY-MM-DD`.
    pub fn today(&self) -> String {
        day_of(self.clock.now_ms())
    }

    /// Counts one request for `action`, or refuses it when today's
    /// ledger has no room under `daily_limit - reserve` or the day was
    /// closed by a "limit reached" reply.
    pub fn take(&self, action: &'static str) -> Result<i64, ApiError> {
        let today = self.today();
        let spent = |used| ApiError::BudgetSpent {
            action,
            used,
            allowed: self.quota.allowed(),
        };
        let day = self
            .store
            .ledger_day(&today)
            .map_err(|e| ledger_error(action, &e))?;
        if day
            .closed_until_ms
            .is_some_and(|until| until > self.clock.now_ms())
        {
            return Err(spent(day.used.max(day.org_used.unwrap_or(0))));
        }
        match self.store.ledger_take(&today, self.quota.allowed()) {
            Ok(Some(used)) => Ok(used),
            Ok(None) => Err(spent(day.used.max(day.org_used.unwrap_or(0)))),
            Err(error) => Err(ledger_error(action, &error)),
        }
    }

    /// Closes today until the next 00:00 UTC, after the server said the
    /// organization's limit is reached.
    pub fn close_day(&self) -> Result<i64, StateError> {
        let until = next_day_start_ms(self.clock.now_ms());
        self.store.ledger_close(&self.today(), until)?;
        Ok(until)
    }

    pub fn ledger(&self) -> Result<LedgerDay, StateError> {
        self.store.ledger_day(&self.today())
    }
}

fn ledger_error(action: &'static str, error: &StateError) -> ApiError {
    ApiError::Connection {
        action,
        message: format!("not sent, the request ledger is unavailable: {error}"),
    }
}

/// The UTC date of `ms`, `YYYY-MM-DD`.
pub fn day_of(ms: i64) -> String {
    crate::clock::datetime_from_ms(ms)
        .format("%Y-%m-%d")
        .to_string()
}

/// Epoch milliseconds of the 00:00 UTC that follows `ms`.
pub fn next_day_start_ms(ms: i64) -> i64 {
    let date = crate::clock::datetime_from_ms(ms).date_naive() + ChronoDuration::days(1);
    date.and_time(NaiveTime::MIN).and_utc().timestamp_millis()
}

/// A transport that asks the [`Budget`] before every request.
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
        if says_limit_reached(call.action, &reply) {
            match self.budget.close_day() {
                Ok(until) => tracing::warn!(
                    action = call.action,
                    resumes_at = %crate::clock::datetime_from_ms(until),
                    "the API says the daily limit is reached; polling stops until the next UTC day"
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
        assert_eq!(day_of(next_day_start_ms(ms)), "2026-12-05");
    }
}
