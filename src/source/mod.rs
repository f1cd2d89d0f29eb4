//! Sources decide what to ask the API next and turn the records into
//! events stored in the outbox.

pub mod alerts;
pub mod changes;
pub mod devices;
pub mod timeline;

use std::time::Duration;

use crate::api::{ApiError, Listed};
use crate::clock::Clock;
use crate::state::{StateError, Store};

pub use alerts::AlertSource;
pub use devices::DeviceSource;
pub use timeline::TimelineSource;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    State(#[from] StateError),
}

/// What one poll cycle of a source did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CycleReport {
    /// Requests sent, failed ones included.
    pub requests: u32,
    /// Ids the list call returned; for the timeline, events the
    /// replies held.
    pub listed: usize,
    /// New events stored in the outbox.
    pub stored: usize,
    /// Records fetched again that had already been delivered.
    pub duplicates: usize,
    /// Pending ids dropped after permanent failures (alerts after
    /// several, devices after one); for the timeline, devices whose poll
    /// the API rejected.
    pub dropped: usize,
    /// Alerts held until their device's record is fetched.
    pub held: usize,
    /// Held alerts released to the outbox.
    pub released: usize,
}

/// The rule by which a list source starts and moves its cursor, on the
/// server's clock.
#[derive(Clone, Copy, Debug)]
struct CursorRule {
    /// How far back the first list reaches.
    start_from: Duration,
    /// Taken off the reply's `Date`, so records modified in that second
    /// are listed again.
    overlap: Duration,
    /// Taken off the server's time as the local clock estimates it, when
    /// a reply has no `Date`.
    clock_skew: Duration,
}

impl CursorRule {
    /// Returns the `modified` filter of the next list call of `source`:
    /// its stored cursor, or `start_from` before the server's time when
    /// none is stored.
    fn since(&self, store: &Store, source: &str, clock: &Clock) -> Result<i64, StateError> {
        Ok(match store.cursor(source)? {
            Some(cursor) => cursor,
            None => server_now_secs(store, clock)? - secs(self.start_from),
        })
    }

    /// Stores the ids of a list call of `source` as pending, with the
    /// next cursor, in one transaction.
    ///
    /// The next cursor is the reply's `Date` less `overlap`. Without a
    /// `Date` it is the server's time as the local clock estimates it,
    /// less `clock_skew`. It never moves back before `since`, because
    /// that would only list the same records again.
    ///
    /// A `since` after the reply's `Date` came from a clock ahead of the
    /// server's, so the list missed what the server changed in that lead.
    /// The cursor then goes back by the lead, at most `start_from`, before
    /// the `Date`. Records already stored are fetched again but not sent
    /// twice.
    fn commit(
        &self,
        store: &Store,
        source: &str,
        clock: &Clock,
        since: i64,
        listed: &Listed,
    ) -> Result<(), StateError> {
        let next = match listed.server_time.map(|time| time.timestamp()) {
            Some(server) if since > server => {
                let ahead = since - server;
                tracing::warn!(
                    source,
                    ahead_s = ahead,
                    "cursor was ahead of the server's clock; listing again from as far before the server's time"
                );
                server - ahead.min(secs(self.start_from)) - secs(self.overlap)
            }
            Some(server) => (server - secs(self.overlap)).max(since),
            None => (server_now_secs(store, clock)? - secs(self.clock_skew)).max(since),
        };
        let added = store.commit_listing(source, &listed.ids, next, clock.now_ms())?;
        tracing::debug!(
            source,
            since,
            next,
            listed = listed.ids.len(),
            added,
            "listed"
        );
        Ok(())
    }
}

/// Estimates the server's time in epoch seconds from the local clock
/// and the offset the last reply's `Date` showed.
pub(crate) fn server_now_secs(store: &Store, clock: &Clock) -> Result<i64, StateError> {
    let offset_ms = store.counter(crate::budget::OFFSET_KEY)?;
    Ok((clock.now_ms() + offset_ms).div_euclid(1_000))
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX / 2)
}
