//! The mapping of an alert, and the device it names, onto CEF fields.
//! `docs/mapping.md` lists the same table for SIEM administrators; keep
//! both in step.

use std::net::IpAddr;

use super::cef::{CefHeader, Extension, ExtensionKey, Severity};
use crate::api::{Alert, Device};
use crate::event::AlertEvent;

pub const VENDOR: &str = "IoT Secure";
pub const PRODUCT: &str = "IoT Secure API";
/// The API version the records come from.
pub const PRODUCT_VERSION: &str = "1.0";
/// The CEF name of an alert with neither subject nor category.
pub const FALLBACK_NAME: &str = "IoT Secure alert";

const fn key(name: &'static str, max_chars: usize) -> ExtensionKey {
    ExtensionKey { name, max_chars }
}

// Limits from the CEF dictionary, in characters. Numeric and address
// fields carry only digits or addresses this module produced itself.
const RT: ExtensionKey = key("rt", 32);
const START: ExtensionKey = key("start", 32);
const EXTERNAL_ID: ExtensionKey = key("externalId", 40);
const CAT: ExtensionKey = key("cat", 1023);
const MSG: ExtensionKey = key("msg", 1023);
const OUTCOME: ExtensionKey = key("outcome", 63);
const DMAC: ExtensionKey = key("dmac", 1023);
const DPT: ExtensionKey = key("dpt", 8);
const DHOST: ExtensionKey = key("dhost", 1023);
const DST: ExtensionKey = key("dst", 64);
const C6A3: ExtensionKey = key("c6a3", 64);
const C6A3_LABEL: ExtensionKey = key("c6a3Label", 1023);

/// `csN` fields (4000 characters) with their labels.
const CS: [(ExtensionKey, ExtensionKey); 6] = [
    (key("cs1", 4000), key("cs1Label", 1023)),
    (key("cs2", 4000), key("cs2Label", 1023)),
    (key("cs3", 4000), key("cs3Label", 1023)),
    (key("cs4", 4000), key("cs4Label", 1023)),
    (key("cs5", 4000), key("cs5Label", 1023)),
    (key("cs6", 4000), key("cs6Label", 1023)),
];

/// `cnN` fields (Long) with their labels.
const CN: [(ExtensionKey, ExtensionKey); 3] = [
    (key("cn1", 32), key("cn1Label", 1023)),
    (key("cn2", 32), key("cn2Label", 1023)),
    (key("cn3", 32), key("cn3Label", 1023)),
];

/// `flexStringN` fields (1023 characters, labels 128).
const FLEX: [(ExtensionKey, ExtensionKey); 2] = [
    (key("flexString1", 1023), key("flexString1Label", 128)),
    (key("flexString2", 1023), key("flexString2Label", 128)),
];

/// Appends the CEF record of an alert event to `out`.
pub fn encode_alert(event: &AlertEvent, severity: Severity, out: &mut String) {
    let alert = &event.alert;
    let event_class_id = event_class_id(alert);
    CefHeader {
        vendor: VENDOR,
        product: PRODUCT,
        version: PRODUCT_VERSION,
        event_class_id: &event_class_id,
        name: alert_name(alert),
        severity,
    }
    .encode(out);

    let mut extension = Extension::new();
    push_alert_fields(alert, &mut extension);
    if let Some(device) = &event.device {
        push_device_fields(device, &mut extension);
    }
    extension.encode(out);
}

/// `alert:<category>`, or `alert` without a category. It names the kind
/// of event, so SIEM rules can key on it, and it never changes for a
/// given category text.
pub fn event_class_id(alert: &Alert) -> String {
    match alert.category.as_deref().filter(|c| has_text(c)) {
        Some(category) => format!("alert:{}", category.trim()),
        None => "alert".to_owned(),
    }
}

/// Returns the subject, else the category, else [`FALLBACK_NAME`].
pub fn alert_name(alert: &Alert) -> &str {
    [&alert.subject, &alert.category]
        .into_iter()
        .filter_map(|field| field.as_deref())
        .find(|value| has_text(value))
        .unwrap_or(FALLBACK_NAME)
}

/// Returns whether a value keeps any character after control characters become
/// spaces and spaces are trimmed.
fn has_text(value: &str) -> bool {
    value.chars().any(|c| c != ' ' && !c.is_control())
}

fn push_alert_fields(alert: &Alert, extension: &mut Extension) {
    extension.push_int(RT, alert.modified.map(epoch_ms));
    extension.push_int(START, alert.created.map(epoch_ms));
    extension.push(EXTERNAL_ID, Some(&alert.alert_id));
    extension.push(CAT, alert.category.as_deref());
    extension.push(MSG, alert.category_detail.as_deref());
    extension.push(OUTCOME, alert.resolution.as_deref());
    // NOTE: device_id is written as given; a value that is not a MAC
    // address may be rejected by receivers that type-check dmac.
    extension.push(DMAC, alert.device_id.as_deref());
    let port = alert.port.as_deref().map(str::trim);
    let numeric_port = port.and_then(|p| p.parse::<u16>().ok());
    extension.push_int(DPT, numeric_port.map(i64::from));

    let [status, priority, port_text, ..] = &CS;
    push_custom(extension, status, "status", alert.status.as_deref());
    push_custom(extension, priority, "priority", alert.priority.as_deref());
    let port_text_value = port.filter(|_| numeric_port.is_none());
    push_custom(extension, port_text, "port", port_text_value);
}

fn push_device_fields(device: &Device, extension: &mut Extension) {
    extension.push(DHOST, device.hostname.as_deref());
    push_ip_address(device.ip_address.as_deref(), extension);

    let [_, _, _, name, category, device_type] = &CS;
    push_custom(extension, name, "deviceName", device.name.as_deref());
    let category_value = device.category.as_deref();
    push_custom(extension, category, "deviceCategory", category_value);
    let type_value = device.device_type.as_deref();
    push_custom(extension, device_type, "deviceType", type_value);

    let [threat, spoofed, blocked] = &CN;
    push_flag(extension, threat, "deviceThreat", device.threat);
    push_flag(extension, spoofed, "deviceSpoofed", device.spoofed);
    push_flag(extension, blocked, "deviceBlocked", device.blocked);

    let [manufacturer, model] = &FLEX;
    let manufacturer_value = device.manufacturer.as_deref();
    push_custom(
        extension,
        manufacturer,
        "deviceManufacturer",
        manufacturer_value,
    );
    push_custom(extension, model, "deviceModel", device.model.as_deref());
}

/// `dst` for IPv4, `c6a3` for IPv6 (CEF's `dst` takes IPv4 only), and
/// nothing for text that is not an address.
fn push_ip_address(ip_address: Option<&str>, extension: &mut Extension) {
    let parsed = ip_address.and_then(|ip| ip.trim().parse::<IpAddr>().ok());
    match parsed {
        Some(IpAddr::V4(v4)) => extension.push(DST, Some(&v4.to_string())),
        Some(IpAddr::V6(v6)) => {
            extension.push(C6A3_LABEL, Some("deviceAddress"));
            extension.push(C6A3, Some(&v6.to_string()));
        }
        None => {}
    }
}

fn push_custom(
    extension: &mut Extension,
    (field, label_key): &(ExtensionKey, ExtensionKey),
    label: &str,
    value: Option<&str>,
) {
    extension.push_labelled(*field, *label_key, label, value);
}

/// Adds a boolean as a labelled `cnN`: 1 for true, 0 for false.
fn push_flag(
    extension: &mut Extension,
    slot: &(ExtensionKey, ExtensionKey),
    label: &str,
    value: Option<bool>,
) {
    let text = value.map(|flag| if flag { "1" } else { "0" });
    push_custom(extension, slot, label, text);
}

/// Epoch seconds to milliseconds, which `rt` and `start` require.
fn epoch_ms(secs: i64) -> i64 {
    secs.saturating_mul(1000)
}
