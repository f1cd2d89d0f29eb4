//! Change detection between two records of one device: which of the
//! fields that matter to security changed, from what, to what.
//!
//! Other fields (`last_active`, `modified`, the PortSafe inspection
//! times, the OS details) change often without saying anything about
//! the device's exposure, so they yield no inventory event.

use std::collections::BTreeSet;

use crate::api::Device;
use crate::event::FieldChange;

/// Names of the fields compared, in the order changes are listed.
pub const SECURITY_FIELDS: [&str; 10] = [
    "ip_address",
    "hostname",
    "name",
    "threat",
    "blocked",
    "smart_blocked",
    "spoofed",
    "excluded",
    "open_ports",
    "exploitable_ports",
];

/// Returns the security fields whose text differs between `old` and
/// `new`, in [`SECURITY_FIELDS`] order. Text fields are compared after
/// trimming, so whitespace the API adds or drops is no change.
pub fn security_changes(old: &Device, new: &Device) -> Vec<FieldChange> {
    let before = security_values(old);
    let after = security_values(new);
    SECURITY_FIELDS
        .iter()
        .zip(before.into_iter().zip(after))
        .filter(|(_, (from, to))| from != to)
        .map(|(field, (from, to))| FieldChange {
            field: (*field).to_owned(),
            from,
            to,
        })
        .collect()
}

/// Returns the security fields of a device new to the forwarder: every
/// field with a value, from `None` to that value. An empty port list
/// counts as no value.
pub fn initial_values(device: &Device) -> Vec<FieldChange> {
    SECURITY_FIELDS
        .iter()
        .zip(security_values(device))
        .filter_map(|(field, value)| {
            let value = value.filter(|text| !text.is_empty())?;
            Some(FieldChange {
                field: (*field).to_owned(),
                from: None,
                to: Some(value),
            })
        })
        .collect()
}

/// Returns the value of each of [`SECURITY_FIELDS`] as text: flags as
/// `true` or `false`, ports as a comma-separated list in numeric order
/// (empty when none), `None` for a missing field.
fn security_values(device: &Device) -> [Option<String>; 10] {
    let text = |value: &Option<String>| value.as_deref().map(|v| v.trim().to_owned());
    let flag = |value: Option<bool>| value.map(|v| v.to_string());
    [
        text(&device.ip_address),
        text(&device.hostname),
        text(&device.name),
        flag(device.threat),
        flag(device.blocked),
        flag(device.smart_blocked),
        flag(device.spoofed),
        flag(device.excluded),
        Some(open_ports(device)),
        Some(exploitable_ports(device)),
    ]
}

/// Ports whose PortSafe status is `open`, ignoring case.
pub fn open_ports(device: &Device) -> String {
    port_list(device, |result| {
        result
            .status
            .as_deref()
            .is_some_and(|status| status.trim().eq_ignore_ascii_case("open"))
    })
}

/// Ports that PortSafe marks exploitable.
pub fn exploitable_ports(device: &Device) -> String {
    port_list(device, |result| result.exploitable == Some(true))
}

fn port_list(device: &Device, selected: impl Fn(&crate::api::PortResult) -> bool) -> String {
    // Numbers sort numerically; any key that is not a number sorts
    // after them as text, so the list stays deterministic.
    let ports: BTreeSet<(u32, String)> = device
        .portsafe_results
        .iter()
        .filter(|(_, result)| selected(result))
        .map(|(port, _)| {
            let port = port.trim();
            (port.parse().unwrap_or(u32::MAX), port.to_owned())
        })
        .collect();
    let names: Vec<String> = ports.into_iter().map(|(_, port)| port).collect();
    names.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::PortResult;

    type DeviceEdit = fn(&mut Device);

    fn device() -> Device {
        let port = |status: &str, exploitable: bool| PortResult {
            status: Some(status.into()),
            exploitable: Some(exploitable),
            ..PortResult::default()
        };
        Device {
            device_id: "00:40:17:6C:00:00".into(),
            hostname: Some("ECG001".into()),
            ip_address: Some("192.168.121.15".into()),
            name: Some("GE Healthcare Resting ECG".into()),
            threat: Some(false),
            blocked: Some(false),
            smart_blocked: Some(false),
            spoofed: Some(false),
            excluded: Some(false),
            last_active: Some(1_550_716_545),
            modified: Some(1_550_637_634),
            portsafe_results: [
                ("22".to_owned(), port("open", false)),
                ("443".to_owned(), port("open", true)),
                ("80".to_owned(), port("closed", false)),
            ]
            .into(),
            ..Device::default()
        }
    }

    /// Applies `edit` to a copy of [`device`] and returns the changes.
    fn changes_after(edit: impl FnOnce(&mut Device)) -> Vec<FieldChange> {
        let old = device();
        let mut new = old.clone();
        edit(&mut new);
        security_changes(&old, &new)
    }

    fn change(field: &str, from: Option<&str>, to: Option<&str>) -> FieldChange {
        FieldChange {
            field: field.into(),
            from: from.map(str::to_owned),
            to: to.map(str::to_owned),
        }
    }

    #[test]
    fn same_record_has_no_changes() {
        assert!(changes_after(|_| {}).is_empty());
    }

    #[test]
    fn other_fields_are_no_changes() {
        let changes = changes_after(|d| {
            d.last_active = Some(1_550_800_000);
            d.modified = Some(1_550_800_000);
            d.os_type = Some("Linux".into());
            d.location = Some("ER".into());
        });
        assert!(changes.is_empty(), "{changes:?}");
    }

    #[test]
    fn whitespace_is_no_change() {
        let changes = changes_after(|d| d.hostname = Some(" ECG001\n".into()));
        assert!(changes.is_empty(), "{changes:?}");
    }

    #[test]
    fn each_text_field_is_detected() {
        let ip = changes_after(|d| d.ip_address = Some("10.0.0.7".into()));
        let expected = change("ip_address", Some("192.168.121.15"), Some("10.0.0.7"));
        assert_eq!(ip, [expected]);

        let host = changes_after(|d| d.hostname = None);
        assert_eq!(host, [change("hostname", Some("ECG001"), None)]);

        let name = changes_after(|d| d.name = Some("ECG ward 3".into()));
        let expected = change(
            "name",
            Some("GE Healthcare Resting ECG"),
            Some("ECG ward 3"),
        );
        assert_eq!(name, [expected]);
    }

    #[test]
    fn each_flag_is_detected() {
        let cases: [(&str, DeviceEdit); 5] = [
            ("threat", |d| d.threat = Some(true)),
            ("blocked", |d| d.blocked = Some(true)),
            ("smart_blocked", |d| d.smart_blocked = Some(true)),
            ("spoofed", |d| d.spoofed = Some(true)),
            ("excluded", |d| d.excluded = Some(true)),
        ];
        for (field, edit) in cases {
            let changes = changes_after(edit);
            assert_eq!(
                changes,
                [change(field, Some("false"), Some("true"))],
                "{field}"
            );
        }
    }

    #[test]
    fn missing_flag_is_a_change() {
        let changes = changes_after(|d| d.spoofed = None);
        assert_eq!(changes, [change("spoofed", Some("false"), None)]);
    }

    #[test]
    fn newly_open_port_is_detected() {
        let changes = changes_after(|d| {
            if let Some(result) = d.portsafe_results.get_mut("80") {
                result.status = Some("OPEN".into());
            }
        });
        let expected = change("open_ports", Some("22,443"), Some("22,80,443"));
        assert_eq!(changes, [expected]);
    }

    #[test]
    fn closed_port_is_detected() {
        let changes = changes_after(|d| {
            d.portsafe_results.remove("22");
        });
        assert_eq!(changes, [change("open_ports", Some("22,443"), Some("443"))]);
    }

    #[test]
    fn exploitable_port_is_detected() {
        let changes = changes_after(|d| {
            if let Some(result) = d.portsafe_results.get_mut("22") {
                result.exploitable = Some(true);
            }
        });
        let expected = change("exploitable_ports", Some("443"), Some("22,443"));
        assert_eq!(changes, [expected]);
    }

    #[test]
    fn fixed_exploit_leaves_empty_list() {
        let changes = changes_after(|d| {
            if let Some(result) = d.portsafe_results.get_mut("443") {
                result.exploitable = Some(false);
            }
        });
        assert_eq!(
            changes,
            [change("exploitable_ports", Some("443"), Some(""))]
        );
    }

    #[test]
    fn initial_values_skip_missing_fields() {
        let mut new = device();
        new.name = None;
        let values = initial_values(&new);
        let fields: Vec<&str> = values.iter().map(|c| c.field.as_str()).collect();
        let expected = [
            "ip_address",
            "hostname",
            "threat",
            "blocked",
            "smart_blocked",
            "spoofed",
            "excluded",
            "open_ports",
            "exploitable_ports",
        ];
        assert_eq!(fields, expected);
        assert!(values.iter().all(|c| c.from.is_none()));
        assert_eq!(values[0].to.as_deref(), Some("192.168.121.15"));
    }

    #[test]
    fn several_changes_keep_field_order() {
        let changes = changes_after(|d| {
            d.threat = Some(true);
            d.hostname = Some("ecg-2".into());
            d.ip_address = Some("10.0.0.7".into());
        });
        let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["ip_address", "hostname", "threat"]);
    }
}
