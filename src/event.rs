//! The normalized event that sources store in the outbox and formats
//! encode. It carries API records, not wire-format knowledge.

use serde::{Deserialize, Serialize};

use crate::api::{Alert, Device};

/// One thing to deliver to every output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    Alert(AlertEvent),
}

/// An alert in the state `getAlert` returned, with the device it names
/// when the device is known.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertEvent {
    pub alert: Alert,
    #[serde(default)]
    pub device: Option<Device>,
}

impl Event {
    /// The key that identifies this event among everything delivered:
    /// an alert modification is `(alert_id, modified)`.
    pub fn dedup_key(&self) -> String {
        match self {
            Event::Alert(event) => alert_dedup_key(&event.alert),
        }
    }

    /// The event's own time in epoch milliseconds: for an alert, when it
    /// was last modified (or created). `None` when the record has no time.
    pub fn time_ms(&self) -> Option<i64> {
        match self {
            Event::Alert(event) => event
                .alert
                .modified
                .or(event.alert.created)
                .map(|secs| secs.saturating_mul(1000)),
        }
    }

    /// A short name for logs and metrics.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Event::Alert(_) => "alert",
        }
    }
}

/// The dedup key of an alert modification.
pub fn alert_dedup_key(alert: &Alert) -> String {
    let modified = alert
        .modified
        .map_or_else(|| "-".to_owned(), |m| m.to_string());
    format!("alert:{}:{}", alert.alert_id, modified)
}
