//! Log output: human-readable text or JSON on standard error, and a
//! limiter for errors that repeat.
//!
//! systemd sets `JOURNAL_STREAM` when standard error goes to the
//! journal, which stamps every line itself; text lines then carry no
//! timestamp of their own. JSON lines keep theirs, since a JSON
//! consumer reads the time from the record.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

/// Format of the log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global tracing subscriber. `default_filter` applies
/// unless `RUST_LOG` is set.
pub fn init(format: LogFormat, default_filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    // Colour codes only on a terminal, never in a file or the journal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text if under_journald() => builder.without_time().init(),
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Checks whether standard error is connected to the systemd journal.
pub fn under_journald() -> bool {
    std::env::var_os("JOURNAL_STREAM").is_some_and(|value| !value.is_empty())
}

/// The decision for one occurrence of a repeated message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Log it: the first occurrence in its window.
    Log,
    /// Log it, after a line with the count of repeats that were not
    /// logged in the window that just ended.
    LogAfterRepeats(u64),
    /// Do not log it: it was logged within the window.
    Suppress,
}

/// Logs a message once per window: the same key (the call site and the
/// error text) within `window` of its first occurrence is counted, not
/// logged. The count comes out with the next occurrence after the
/// window, or from [`Repeats::clear`] when the failure ends.
#[derive(Debug)]
pub struct Repeats {
    window: Duration,
    seen: HashMap<String, Seen>,
}

#[derive(Debug)]
struct Seen {
    since: Instant,
    suppressed: u64,
}

impl Repeats {
    pub fn new(window: Duration) -> Self {
        Repeats {
            window,
            seen: HashMap::new(),
        }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// Records one occurrence of `key` and decides whether to log it.
    pub fn check(&mut self, key: &str) -> Verdict {
        let now = Instant::now();
        let Some(seen) = self.seen.get_mut(key) else {
            self.seen.insert(
                key.to_owned(),
                Seen {
                    since: now,
                    suppressed: 0,
                },
            );
            return Verdict::Log;
        };
        if now.duration_since(seen.since) < self.window {
            seen.suppressed += 1;
            return Verdict::Suppress;
        }
        let repeats = std::mem::take(&mut seen.suppressed);
        seen.since = now;
        if repeats > 0 {
            Verdict::LogAfterRepeats(repeats)
        } else {
            Verdict::Log
        }
    }

    /// Forgets every key, after the condition behind them ended, and
    /// returns each key with the repeats that were not logged yet.
    pub fn clear(&mut self) -> Vec<(String, u64)> {
        self.seen
            .drain()
            .filter(|(_, seen)| seen.suppressed > 0)
            .map(|(key, seen)| (key, seen.suppressed))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(60);

    #[tokio::test(start_paused = true)]
    async fn repeat_within_window_is_suppressed() {
        let mut repeats = Repeats::new(WINDOW);
        assert_eq!(repeats.check("poll: timeout"), Verdict::Log);
        for _ in 0..5 {
            tokio::time::advance(Duration::from_secs(5)).await;
            assert_eq!(repeats.check("poll: timeout"), Verdict::Suppress);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn repeat_after_window_reports_count() {
        let mut repeats = Repeats::new(WINDOW);
        repeats.check("poll: timeout");
        for _ in 0..3 {
            tokio::time::advance(Duration::from_secs(10)).await;
            repeats.check("poll: timeout");
        }
        tokio::time::advance(WINDOW).await;
        assert_eq!(repeats.check("poll: timeout"), Verdict::LogAfterRepeats(3));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(repeats.check("poll: timeout"), Verdict::Suppress);
    }

    #[tokio::test(start_paused = true)]
    async fn lone_repeat_after_window_logs_plainly() {
        let mut repeats = Repeats::new(WINDOW);
        repeats.check("poll: timeout");
        tokio::time::advance(WINDOW * 2).await;
        assert_eq!(repeats.check("poll: timeout"), Verdict::Log);
    }

    #[tokio::test(start_paused = true)]
    async fn different_error_text_logs_at_once() {
        let mut repeats = Repeats::new(WINDOW);
        assert_eq!(repeats.check("poll: timeout"), Verdict::Log);
        assert_eq!(repeats.check("poll: connection refused"), Verdict::Log);
        assert_eq!(repeats.check("sync: timeout"), Verdict::Log);
    }

    #[tokio::test(start_paused = true)]
    async fn clear_returns_unlogged_repeats() {
        let mut repeats = Repeats::new(WINDOW);
        repeats.check("poll: timeout");
        repeats.check("poll: timeout");
        repeats.check("poll: timeout");
        repeats.check("poll: refused");
        assert_eq!(repeats.clear(), [("poll: timeout".to_owned(), 2)]);
        assert_eq!(repeats.check("poll: timeout"), Verdict::Log);
    }
}
