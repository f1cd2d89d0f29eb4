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
    /// Returns the key that identifies this event among everything delivered:
    /// an alert modification is `(alert_id, modified)`.
    pub fn dedup_key(&self) -> String {
        match self {
            Event::Alert(event) => alert_dedup_key(&event.alert),
        }
    }

    /// Returns the event's own time in epoch milliseconds: for an alert, when it
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

    /// Returns a short name for logs and metrics.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Event::Alert(_) => "alert",
        }
    }
}

/// Builds the dedup key of an alert modification: `(alert_id, modified)` plus
/// a hash of the record's documented fields. The hash keeps two changes
/// made within the same second apart (`modified` has one-second
/// resolution), while a record fetched again unchanged still matches.
pub fn alert_dedup_key(alert: &Alert) -> String {
    let modified = alert
        .modified
        .map_or_else(|| "-".to_owned(), |m| m.to_string());
    let text = serde_json::to_string(alert).unwrap_or_default();
    format!(
        "alert:{}:{}:{:016x}",
        alert.alert_id,
        modified,
        fnv1a(text.as_bytes())
    )
}

/// 64-bit FNV-1a: stable across Rust releases, unlike `DefaultHasher`,
/// because the keys are stored and compared across upgrades.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(status: &str) -> Alert {
        Alert {
            alert_id: "900451".into(),
            modified: Some(1_700_000_000),
            status: Some(status.into()),
            ..Alert::default()
        }
    }

    #[test]
    fn same_record_gives_same_key() {
        assert_eq!(
            alert_dedup_key(&alert("open")),
            alert_dedup_key(&alert("open"))
        );
    }

    #[test]
    fn change_within_the_same_second_gives_new_key() {
        assert_ne!(
            alert_dedup_key(&alert("open")),
            alert_dedup_key(&alert("closed"))
        );
    }

    #[test]
    fn key_starts_with_id_and_modified() {
        let key = alert_dedup_key(&alert("open"));
        assert!(key.starts_with("alert:900451:1700000000:"), "{key}");
    }

    #[test]
    fn hash_is_stable() {
        // FNV-1a test vector for "a".
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
