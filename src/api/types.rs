//! Records and replies of the API, parsed tolerantly: unknown fields are
//! ignored, a missing optional field is `None`, ids may be strings or
//! numbers, and MAC addresses are normalized.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::lenient;

/// One alert, as `getAlert` returns it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    #[serde(deserialize_with = "lenient::id")]
    pub alert_id: String,
    #[serde(default, deserialize_with = "lenient::text")]
    pub category: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub category_detail: Option<String>,
    /// Epoch seconds.
    #[serde(default, deserialize_with = "lenient::integer")]
    pub created: Option<i64>,
    /// MAC address of the device the alert is about.
    #[serde(default, deserialize_with = "lenient::mac")]
    pub device_id: Option<String>,
    /// Epoch seconds.
    #[serde(default, deserialize_with = "lenient::integer")]
    pub modified: Option<i64>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub port: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub priority: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub resolution: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub subject: Option<String>,
}

/// One PortSafe result for a port.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortResult {
    #[serde(default, deserialize_with = "lenient::text")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub protocol: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub service: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub certificate: Option<String>,
    #[serde(default, deserialize_with = "lenient::flag")]
    pub exploitable: Option<bool>,
}

/// Times of the last PortSafe inspections, in epoch seconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortsafeInspection {
    #[serde(default, deserialize_with = "lenient::integer")]
    pub last_auto_inspection: Option<i64>,
    #[serde(default, deserialize_with = "lenient::integer")]
    pub last_user_inspection: Option<i64>,
}

/// One device, as `getDevice` returns it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// MAC address, normalized.
    #[serde(deserialize_with = "mac_id")]
    pub device_id: String,
    #[serde(default, deserialize_with = "lenient::flag")]
    pub blocked: Option<bool>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub category: Option<String>,
    #[serde(default, deserialize_with = "lenient::integer")]
    pub created: Option<i64>,
    #[serde(default, deserialize_with = "lenient::strings")]
    pub domains: Vec<String>,
    #[serde(default, deserialize_with = "lenient::flag")]
    pub excluded: Option<bool>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub hostname: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub ip_address: Option<String>,
    #[serde(default, deserialize_with = "lenient::integer")]
    pub last_active: Option<i64>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub location: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub manufacturer: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub model: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub model_family: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub model_number: Option<String>,
    #[serde(default, deserialize_with = "lenient::integer")]
    pub modified: Option<i64>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub os_build: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub os_manufacturer: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub os_servicepack: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub os_type: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub os_version_major: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub os_version_minor: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub oui: Option<String>,
    #[serde(default)]
    pub portsafe_inspection: Option<PortsafeInspection>,
    /// PortSafe results keyed by port number.
    #[serde(default)]
    pub portsafe_results: BTreeMap<String, PortResult>,
    #[serde(default, deserialize_with = "lenient::flag")]
    pub smart_blocked: Option<bool>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub snmp_profile: Option<String>,
    #[serde(default, deserialize_with = "lenient::flag")]
    pub spoofed: Option<bool>,
    #[serde(default, deserialize_with = "lenient::flag")]
    pub threat: Option<bool>,
    #[serde(default, rename = "type", deserialize_with = "lenient::text")]
    pub device_type: Option<String>,
}

fn mac_id<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let raw = lenient::id(deserializer)?;
    Ok(lenient::normalize_mac(&raw))
}

/// One SNMP profile, as `getSNMPProfile` returns it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnmpProfile {
    #[serde(default, deserialize_with = "lenient::text")]
    pub snmp_profile: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub community: Option<String>,
    #[serde(default, deserialize_with = "lenient::integer")]
    pub connection_attempts: Option<i64>,
    #[serde(default, deserialize_with = "lenient::integer")]
    pub connection_timeout: Option<i64>,
    #[serde(default, deserialize_with = "lenient::integer")]
    pub created: Option<i64>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub created_by: Option<String>,
    #[serde(default, deserialize_with = "lenient::flag")]
    pub default: Option<bool>,
    #[serde(default, deserialize_with = "lenient::integer")]
    pub modified: Option<i64>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub modified_by: Option<String>,
    #[serde(default, deserialize_with = "lenient::integer")]
    pub port: Option<i64>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub version: Option<String>,
}

/// One up/down event of a device's timeline.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEvent {
    /// UTC time as the API writes it, such as `2019-01-15T20:10:00.000Z`.
    #[serde(default, deserialize_with = "lenient::text")]
    pub created: Option<String>,
    #[serde(default, deserialize_with = "lenient::mac")]
    pub device_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub ip_address: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub status: Option<String>,
}

/// The reply of `getAPIKey`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyInfo {
    #[serde(default, deserialize_with = "lenient::text")]
    pub account_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::integer")]
    pub request_limit: Option<i64>,
    /// Requests the organization made during the current UTC day.
    #[serde(default, deserialize_with = "lenient::integer")]
    pub requests: Option<i64>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub status: Option<String>,
}

/// The reply of `updateDevice`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateResult {
    #[serde(default, deserialize_with = "lenient::text")]
    pub action: Option<String>,
    #[serde(default, deserialize_with = "lenient::mac")]
    pub device_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub request_status: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_accepts_numeric_id_and_ignores_unknown_fields() {
        let alert: Alert = serde_json::from_value(serde_json::json!({
            "alert_id": 900451, "modified": "1550637634", "new_field": [1],
            "device_id": "\n00:40:17:6c:00:00", "port": 443, "priority": null
        }))
        .expect("alert parses");
        assert_eq!(alert.alert_id, "900451");
        assert_eq!(alert.modified, Some(1_550_637_634));
        assert_eq!(alert.device_id.as_deref(), Some("00:40:17:6C:00:00"));
        assert_eq!(alert.port.as_deref(), Some("443"));
        assert_eq!(alert.priority, None);
        assert_eq!(alert.subject, None);
    }

    #[test]
    fn alert_round_trips_through_json() {
        let alert = Alert {
            alert_id: "7".into(),
            subject: Some("a|b=c\\d\r\n".into()),
            modified: Some(1),
            ..Alert::default()
        };
        let text = serde_json::to_string(&alert).expect("serializes");
        let back: Alert = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, alert);
    }
}
