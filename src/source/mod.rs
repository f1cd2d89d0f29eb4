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

/// Returns the time a list call of `source` asks from: its stored
/// cursor, or `start_from` before now on the first list.
fn list_since(
    store: &Store,
    source: &str,
    clock: &Clock,
    start_from: Duration,
) -> Result<i64, StateError> {
    Ok(match store.cursor(source)? {
        Some(cursor) => cursor,
        None => clock.now_secs() - secs(start_from),
    })
}

/// Stores the ids of a list call of `source` as pending, with the next
/// cursor, in one transaction. The next cursor is the reply's `Date`
/// less `overlap`, so records modified in that second are listed again,
/// or without a `Date` the local clock less `clock_skew`. It never moves
/// back before `since`, which would only list the same records again.
fn commit_listed(
    store: &Store,
    source: &str,
    clock: &Clock,
    since: i64,
    listed: &Listed,
    (overlap, clock_skew): (Duration, Duration),
) -> Result<(), StateError> {
    let next = match listed.server_time {
        Some(time) => time.timestamp() - secs(overlap),
        None => clock.now_secs() - secs(clock_skew),
    };
    let next = next.max(since);
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

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX / 2)
}
