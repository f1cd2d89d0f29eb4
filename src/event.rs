//! The normalized event that sources store in the outbox and formats
//! encode. It carries API records, not wire-format knowledge.

use serde::{Deserialize, Serialize};

use crate::api::{Alert, Device};

/// One thing to deliver to every output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[allow(
    clippy::large_enum_variant,
    reason = "both variants carry a device record; boxing one saves little"
)]
pub enum Event {
    Alert(AlertEvent),
    Timeline(TimelineRecord),
    Inventory(InventoryEvent),
}

/// An alert in the state `getAlert` returned, with the device it names
/// when the device is known.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertEvent {
    pub alert: Alert,
    #[serde(default)]
    pub device: Option<Device>,
}

/// A device that appeared in the inventory, or whose security fields
/// changed, in the state `getDevice` returned it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryEvent {
    pub device: Device,
    /// Whether the device was not in the device table before.
    pub added: bool,
    /// The security fields that changed. For an added device, every
    /// security field that has a value, each `from` being `None`.
    #[serde(default)]
    pub changes: Vec<FieldChange>,
}

/// One security field of a device that changed: its name as the API
/// spells it (or `open_ports`, `exploitable_ports`), and its text before
/// and after. `None` means the field was missing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: String,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// One up/down event of a device's timeline, as `getDeviceTimeline`
/// returned it, with the device's record when the device is known.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineRecord {
    /// MAC address, normalized.
    pub device_id: String,
    /// UTC time as the API writes it, such as `2019-01-15T20:10:00.000Z`.
    pub created: String,
    /// `up` or `down` in the API document; kept as sent.
    pub status: String,
    #[serde(default)]
    pub ip_address: Option<String>,
    #[serde(default)]
    pub device: Option<Device>,
}

impl TimelineRecord {
    /// Returns `created` in epoch milliseconds, or `None` when it is
    /// neither an RFC 3339 time nor epoch seconds, or lies outside 1970
    /// to 9999.
    pub fn created_ms(&self) -> Option<i64> {
        let text = self.created.trim();
        let ms = match chrono::DateTime::parse_from_rfc3339(text) {
            Ok(time) => time.timestamp_millis(),
            Err(_) => text.parse::<i64>().ok()?.checked_mul(1000)?,
        };
        (0..=LATEST_MS).contains(&ms).then_some(ms)
    }
}

/// 9999-12-31T23:59:59.999Z, the latest time with a four-digit year.
const LATEST_MS: i64 = 253_402_300_799_999;

impl Event {
    /// Returns the key that identifies this event among everything delivered:
    /// an alert modification is `(alert_id, modified)`, a timeline event
    /// `(device_id, created, status)`, an inventory event
    /// `(device_id, modified)`; alert and inventory keys add a hash of
    /// the record.
    pub fn dedup_key(&self) -> String {
        match self {
            Event::Alert(event) => alert_dedup_key(&event.alert),
            Event::Timeline(record) => timeline_dedup_key(record),
            Event::Inventory(event) => inventory_dedup_key(event),
        }
    }

    /// Returns the event's own time in epoch milliseconds: for an alert, when it
    /// was last modified (or created), for a timeline event its `created`.
    /// `None` when the record has no time.
    pub fn time_ms(&self) -> Option<i64> {
        match self {
            Event::Alert(event) => event
                .alert
                .modified
                .or(event.alert.created)
                .map(|secs| secs.saturating_mul(1000)),
            Event::Timeline(record) => record.created_ms(),
            Event::Inventory(event) => event
                .device
                .modified
                .or(event.device.created)
                .map(|secs| secs.saturating_mul(1000)),
        }
    }

    /// Returns a short name for logs and metrics.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Event::Alert(_) => "alert",
            Event::Timeline(_) => "timeline",
            Event::Inventory(_) => "inventory",
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

/// Builds the dedup key of a timeline event from `(device_id, created,
/// status)`. `created` is compared as a time when it reads as one, so
/// `20:10:00Z` and `20:10:00.000Z` match, and status ignores case and
/// surrounding spaces. The parts are JSON-quoted, so no value can pass
/// for another part.
pub fn timeline_dedup_key(record: &TimelineRecord) -> String {
    let created = record
        .created_ms()
        .map_or_else(|| record.created.trim().to_owned(), |ms| ms.to_string());
    let status = record.status.trim().to_lowercase();
    let parts = [record.device_id.as_str(), &created, &status];
    let quoted = serde_json::to_string(&parts).unwrap_or_default();
    format!("timeline:{quoted}")
}

/// Builds the dedup key of an inventory event: `(device_id, modified)`
/// plus a hash of the device record and the changes. A device fetched
/// again unchanged gives the same key, so an overlap refetch that the
/// change detection did not already drop is dropped here.
pub fn inventory_dedup_key(event: &InventoryEvent) -> String {
    let modified = event
        .device
        .modified
        .map_or_else(|| "-".to_owned(), |m| m.to_string());
    let text = serde_json::to_string(event).unwrap_or_default();
    format!(
        "device:{}:{}:{:016x}",
        event.device.device_id,
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

    fn timeline(created: &str, status: &str) -> TimelineRecord {
        TimelineRecord {
            device_id: "00:40:17:6C:00:00".into(),
            created: created.into(),
            status: status.into(),
            ip_address: Some("192.168.121.15".into()),
            device: None,
        }
    }

    #[test]
    fn timeline_key_ignores_time_spelling() {
        assert_eq!(
            timeline_dedup_key(&timeline("2019-01-15T20:10:00.000Z", "up")),
            timeline_dedup_key(&timeline("2019-01-15T20:10:00Z", " Up "))
        );
    }

    #[test]
    fn timeline_key_separates_status() {
        assert_ne!(
            timeline_dedup_key(&timeline("2019-01-15T20:10:00.000Z", "up")),
            timeline_dedup_key(&timeline("2019-01-15T20:10:00.000Z", "down"))
        );
    }

    #[test]
    fn timeline_key_ignores_ip_address() {
        let mut moved = timeline("2019-01-15T20:10:00.000Z", "up");
        moved.ip_address = Some("10.0.0.9".into());
        assert_eq!(
            timeline_dedup_key(&moved),
            timeline_dedup_key(&timeline("2019-01-15T20:10:00.000Z", "up"))
        );
    }

    #[test]
    fn timeline_time_reads_api_format() {
        let record = timeline("2019-01-15T20:10:00.000Z", "up");
        assert_eq!(record.created_ms(), Some(1_547_583_000_000));
        assert_eq!(Event::Timeline(record).time_ms(), Some(1_547_583_000_000));
    }

    #[test]
    fn timeline_time_rejects_garbage() {
        assert_eq!(timeline("yesterday", "up").created_ms(), None);
        assert_eq!(timeline("-5", "up").created_ms(), None);
        assert_eq!(
            timeline("1547583000", "up").created_ms(),
            Some(1_547_583_000_000)
        );
    }

    #[test]
    fn inventory_key_starts_with_device_and_modified() {
        let event = InventoryEvent {
            device: Device {
                device_id: "00:40:17:6C:00:00".into(),
                modified: Some(1_550_637_634),
                ..Device::default()
            },
            added: true,
            changes: Vec::new(),
        };
        let key = inventory_dedup_key(&event);
        assert!(
            key.starts_with("device:00:40:17:6C:00:00:1550637634:"),
            "{key}"
        );
    }

    #[test]
    fn hash_is_stable() {
        // FNV-1a test vector for "a".
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
