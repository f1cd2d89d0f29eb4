//! Reconnect policy shared by the transports: jittered exponential
//! backoff, and log lines for connection state changes that stay quiet
//! while a receiver is down for hours.

use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Cancelled, OutputSettings, TransportError};
use crate::metrics::OutputMetrics;

/// A failure is logged the first time and then every this many attempts.
const LOG_EVERY_ATTEMPTS: u32 = 10;

/// Exponential backoff with decorrelated jitter: each delay is drawn from
/// `initial ..= 3 × previous delay`, capped at `max`. Jitter spreads out
/// the reconnects of many forwarders after a receiver restarts.
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    previous: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        let max = max.max(initial);
        Backoff {
            initial,
            max,
            previous: initial,
        }
    }

    /// Draws the next delay, between `initial` and `max`.
    pub fn next_delay(&mut self) -> Duration {
        let low = millis(self.initial);
        let high = millis(self.previous.saturating_mul(3).min(self.max));
        let drawn = rand::rng().random_range(low..=high.max(low));
        self.previous = Duration::from_millis(drawn);
        self.previous
    }

    /// Starts over from `initial`, after a success.
    pub fn reset(&mut self) {
        self.previous = self.initial;
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Sleeps for `delay` unless `cancel` fires first.
pub async fn sleep_or_cancel(delay: Duration, cancel: &CancellationToken) -> Result<(), Cancelled> {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(Cancelled),
        _ = tokio::time::sleep(delay) => Ok(()),
    }
}

/// The connection state of one output, and the backoff between attempts.
#[derive(Debug)]
pub struct Reconnect {
    backoff: Backoff,
    ever_connected: bool,
    /// Failures since the last success.
    failures: u32,
    /// When the current run of failures began.
    outage_start: Option<Instant>,
    /// Counts each failed attempt, when set.
    metrics: Option<OutputMetrics>,
}

impl Reconnect {
    pub fn new(settings: &OutputSettings) -> Self {
        Reconnect {
            backoff: Backoff::new(settings.backoff_initial, settings.backoff_max),
            ever_connected: false,
            failures: 0,
            outage_start: None,
            metrics: None,
        }
    }

    /// Counts each failed attempt in `metrics` from now on.
    pub fn count_errors_in(&mut self, metrics: OutputMetrics) {
        self.metrics = Some(metrics);
    }

    /// Logs a new connection: "connected" the first time, "reconnected"
    /// with the attempts and time it took after an outage.
    pub fn connected(&mut self, settings: &OutputSettings) {
        let (name, address) = (&settings.name, &settings.address);
        match self.outage_start.filter(|_| self.ever_connected) {
            Some(start) => {
                let elapsed_ms = millis(start.elapsed());
                let attempts = self.failures;
                info!(output = %name, address, attempts, elapsed_ms, "reconnected");
            }
            None => info!(output = %name, address, "connected"),
        }
        self.ever_connected = true;
    }

    /// Records that the transport accepted everything: ends the outage.
    pub fn succeeded(&mut self) {
        self.backoff.reset();
        self.failures = 0;
        self.outage_start = None;
    }

    /// Logs the loss of an established connection when it ends a run of
    /// successes, and then allows one reconnect without delay. A loss
    /// during an outage, such as a receiver that accepts and closes at
    /// once, counts as a failed attempt with its backoff delay.
    pub async fn lost(
        &mut self,
        settings: &OutputSettings,
        error: &TransportError,
        cancel: &CancellationToken,
    ) -> Result<(), Cancelled> {
        if self.failures > 0 {
            // `failed` counts it.
            return self.failed(settings, error, cancel).await;
        }
        let (name, address) = (&settings.name, &settings.address);
        warn!(output = %name, address, %error, "connection lost");
        if let Some(metrics) = &self.metrics {
            metrics.transport_error(error);
        }
        self.outage_start = Some(Instant::now());
        self.failures = 1;
        Ok(())
    }

    /// Records a failed attempt, logs it (rate-limited), and waits out the
    /// backoff delay unless `cancel` fires.
    pub async fn failed(
        &mut self,
        settings: &OutputSettings,
        error: &TransportError,
        cancel: &CancellationToken,
    ) -> Result<(), Cancelled> {
        self.outage_start.get_or_insert_with(Instant::now);
        self.failures += 1;
        if let Some(metrics) = &self.metrics {
            metrics.transport_error(error);
        }
        let attempt = self.failures;
        let delay = self.backoff.next_delay();
        if attempt == 1 || attempt.is_multiple_of(LOG_EVERY_ATTEMPTS) {
            let delay_ms = millis(delay);
            let (name, address) = (&settings.name, &settings.address);
            warn!(output = %name, address, attempt, delay_ms, %error, "send failed, retrying");
        }
        sleep_or_cancel(delay, cancel).await
    }
}

/// Runs one connection attempt under the output's connect timeout,
/// unless `cancel` fires first. The outer error is cancellation; the
/// inner one is the attempt's.
pub async fn connect_within<T>(
    settings: &OutputSettings,
    cancel: &CancellationToken,
    attempt: impl Future<Output = Result<T, TransportError>>,
) -> Result<Result<T, TransportError>, Cancelled> {
    let limit = settings.connect_timeout;
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(Cancelled),
        result = tokio::time::timeout(limit, attempt) => {
            Ok(result.unwrap_or(Err(TransportError::ConnectTimeout(limit))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_between_initial_and_max() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_secs(5);
        let mut backoff = Backoff::new(initial, max);
        for _ in 0..1000 {
            let delay = backoff.next_delay();
            assert!(delay >= initial, "{delay:?} below initial");
            assert!(delay <= max, "{delay:?} above max");
        }
    }

    #[test]
    fn backoff_grows_toward_max() {
        let initial = Duration::from_millis(10);
        let max = Duration::from_secs(60);
        let mut backoff = Backoff::new(initial, max);
        let largest = (0..100).map(|_| backoff.next_delay()).max();
        assert!(largest > Some(Duration::from_secs(1)), "{largest:?}");
    }

    #[test]
    fn backoff_reset_starts_over() {
        let initial = Duration::from_millis(10);
        let mut backoff = Backoff::new(initial, Duration::from_secs(60));
        for _ in 0..50 {
            backoff.next_delay();
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(30));
    }

    #[test]
    fn backoff_accepts_max_below_initial() {
        let initial = Duration::from_millis(50);
        let mut backoff = Backoff::new(initial, Duration::from_millis(10));
        assert_eq!(backoff.next_delay(), initial);
    }
}
