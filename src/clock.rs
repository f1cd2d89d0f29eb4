//! The one place that reads wall-clock time.
//!
//! Every component takes a [`Clock`] instead of calling `SystemTime::now`,
//! so tests can run whole days in virtual time (`tokio::time::pause`) and
//! the simulator can run ahead of or behind the forwarder.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, TimeZone, Utc};

/// A source of UTC wall-clock time, in milliseconds since the Unix epoch.
#[derive(Clone, Debug)]
pub struct Clock {
    source: Source,
    /// Added to every reading; lets the simulator's clock run ahead of
    /// (positive) or behind (negative) the forwarder's.
    offset_ms: i64,
}

#[derive(Clone, Debug)]
enum Source {
    /// The operating system's clock.
    System,
    /// A start time that advances with tokio's clock, which
    /// `tokio::time::pause` and `advance` control.
    Tokio {
        start_ms: i64,
        start: tokio::time::Instant,
    },
    /// A time that moves only when a test sets it.
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// Returns the operating system's clock.
    pub fn system() -> Self {
        Clock {
            source: Source::System,
            offset_ms: 0,
        }
    }

    /// Returns a clock that reads `start_ms` now and then advances with
    /// tokio's clock. Under `tokio::time::pause` it is virtual time.
    pub fn tokio(start_ms: i64) -> Self {
        Clock {
            source: Source::Tokio {
                start_ms,
                start: tokio::time::Instant::now(),
            },
            offset_ms: 0,
        }
    }

    /// Returns a clock frozen at `start_ms` until [`Clock::set_ms`] moves it.
    pub fn manual(start_ms: i64) -> Self {
        Clock {
            source: Source::Manual(Arc::new(AtomicI64::new(start_ms))),
            offset_ms: 0,
        }
    }

    /// Returns a clock that reads this one plus `offset_ms`, sharing the
    /// same underlying time.
    pub fn with_offset_ms(&self, offset_ms: i64) -> Self {
        Clock {
            source: self.source.clone(),
            offset_ms: self.offset_ms + offset_ms,
        }
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        let base = match &self.source {
            Source::System => system_now_ms(),
            Source::Tokio { start_ms, start } => {
                let elapsed = tokio::time::Instant::now().duration_since(*start);
                start_ms + i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
            }
            Source::Manual(value) => value.load(Ordering::SeqCst),
        };
        base.saturating_add(self.offset_ms)
    }

    /// Whole seconds since the Unix epoch, rounded down.
    pub fn now_secs(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }

    /// The current time as a UTC date and time.
    pub fn now(&self) -> DateTime<Utc> {
        datetime_from_ms(self.now_ms())
    }

    /// Sets a manual clock to `ms` (minus its offset). Does nothing on
    /// the other kinds, whose time is not settable.
    pub fn set_ms(&self, ms: i64) {
        if let Source::Manual(value) = &self.source {
            value.store(ms - self.offset_ms, Ordering::SeqCst);
        }
    }

    /// Moves a manual clock forward by `ms`. Does nothing on the other kinds.
    pub fn advance_ms(&self, ms: i64) {
        if let Source::Manual(value) = &self.source {
            value.fetch_add(ms, Ordering::SeqCst);
        }
    }
}

/// Converts epoch milliseconds to a UTC date and time, clamping values
/// outside chrono's range to the epoch.
pub fn datetime_from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::UNIX_EPOCH)
}

#[allow(clippy::disallowed_methods)]
fn system_now_ms() -> i64 {
    let now = std::time::SystemTime::now();
    match now.duration_since(std::time::UNIX_EPOCH) {
        Ok(elapsed) => i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_set() {
        let clock = Clock::manual(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        clock.advance_ms(500);
        assert_eq!(clock.now_ms(), 1_500);
    }

    #[test]
    fn offset_shares_the_underlying_time() {
        let clock = Clock::manual(10_000);
        let ahead = clock.with_offset_ms(300_000);
        clock.advance_ms(1_000);
        assert_eq!(ahead.now_ms(), 311_000);
        ahead.set_ms(400_000);
        assert_eq!(clock.now_ms(), 100_000);
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let clock = Clock::tokio(0);
        tokio::time::advance(std::time::Duration::from_secs(86_400)).await;
        assert_eq!(clock.now_secs(), 86_400);
    }
}
