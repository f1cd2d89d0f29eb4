//! Sources decide what to ask the API next and turn the records into
//! events stored in the outbox.

pub mod alerts;
pub mod changes;
pub mod devices;
pub mod timeline;

use crate::api::ApiError;
use crate::state::StateError;

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
