//! The mapping of an alert, and the device it names, onto CEF fields.
//! `docs/mapping.md` lists the same table for SIEM administrators; keep
//! both in step.

use std::net::IpAddr;

use super::cef::{CefHeader, Extension, ExtensionKey, Severity, Shortening};
use super::syslog::LATEST_MS;
use crate::api::{Alert, Device};
use crate::event::AlertEvent;

pub const VENDOR: &str = "IoT Secure";
pub const PRODUCT: &str = "IoT Secure API";
/// The API version the records come from.
pub const PRODUCT_VERSION: &str = "1.0";
/// The CEF name of an alert with neither subject nor category.
pub const FALLBACK_NAME: &str = "IoT Secure alert";

/// Returns a key whose value identifies the event, so it is never
/// shortened.
pub(crate) const fn id(name: &'static str, max_chars: usize) -> ExtensionKey {
    key(name, max_chars, Shortening::Keep)
}

/// Returns a free-text key, which the fitter may cut.
pub(crate) const fn text(name: &'static str, max_chars: usize) -> ExtensionKey {
    key(name, max_chars, Shortening::Cut)
}

/// Returns a key for a number, address or host name, which the fitter
/// may only omit.
const fn whole(name: &'static str, max_chars: usize) -> ExtensionKey {
    key(name, max_chars, Shortening::Omit)
}

/// Returns a label key. Labels are written exactly when their value is.
pub(crate) const fn label(name: &'static str, max_chars: usize) -> ExtensionKey {
    key(name, max_chars, Shortening::Keep)
}

const fn key(name: &'static str, max_chars: usize, shortening: Shortening) -> ExtensionKey {
    ExtensionKey {
        name,
        max_chars,
        shortening,
    }
}

// Limits from the CEF dictionary, in characters. Numeric and address
// fields carry only digits or addresses this module produced itself.
pub(crate) const RT: ExtensionKey = id("rt", 32);
const START: ExtensionKey = id("start", 32);
const EXTERNAL_ID: ExtensionKey = id("externalId", 40);
const CAT: ExtensionKey = text("cat", 1023);
const MSG: ExtensionKey = text("msg", 1023);
const OUTCOME: ExtensionKey = text("outcome", 63);
pub(crate) const DMAC: ExtensionKey = id("dmac", 1023);
const DPT: ExtensionKey = whole("dpt", 8);
pub(super) const DHOST: ExtensionKey = whole("dhost", 1023);
const DST: ExtensionKey = whole("dst", 64);
const C6A3: ExtensionKey = whole("c6a3", 64);
const C6A3_LABEL: ExtensionKey = label("c6a3Label", 1023);

/// `csN` fields (4000 characters) with their labels. `cs3` carries a
/// port list such as `80,443`, which a cut would falsify.
pub(crate) const CS: [(ExtensionKey, ExtensionKey); 6] = [
    (text("cs1", 4000), label("cs1Label", 1023)),
    (text("cs2", 4000), label("cs2Label", 1023)),
    (whole("cs3", 4000), label("cs3Label", 1023)),
    (text("cs4", 4000), label("cs4Label", 1023)),
    (text("cs5", 4000), label("cs5Label", 1023)),
    (text("cs6", 4000), label("cs6Label", 1023)),
];

/// `cnN` fields (Long) with their labels.
const CN: [(ExtensionKey, ExtensionKey); 3] = [
    (whole("cn1", 32), label("cn1Label", 1023)),
    (whole("cn2", 32), label("cn2Label", 1023)),
    (whole("cn3", 32), label("cn3Label", 1023)),
];

/// `flexStringN` fields (1023 characters, labels 128).
const FLEX: [(ExtensionKey, ExtensionKey); 2] = [
    (text("flexString1", 1023), label("flexString1Label", 128)),
    (text("flexString2", 1023), label("flexString2Label", 128)),
];

/// Vendor-defined keys for device fields that no dictionary key or free
/// custom slot takes. ArcSight's CEF guide ("Custom Extension Naming
/// Guidelines") requires the form `VendornameProductnameExplanatoryKeyName`
/// and warns that ArcSight ESM and Logger handle such keys with limits.
const OS_TYPE: ExtensionKey = text("IoTSecureAPIDeviceOsType", 1023);
const LOCATION: ExtensionKey = text("IoTSecureAPIDeviceLocation", 1023);

/// Latest epoch second with a four-digit year, 9999-12-31T23:59:59Z.
const LATEST_SECS: i64 = LATEST_MS / 1000;

/// Returns the CEF header of an alert; `event_class_id` is
/// [`event_class_id`] of the same alert, owned by the caller.
pub fn cef_header<'a>(
    alert: &'a Alert,
    event_class_id: &'a str,
    severity: Severity,
) -> CefHeader<'a> {
    CefHeader {
        vendor: VENDOR,
        product: PRODUCT,
        version: PRODUCT_VERSION,
        event_class_id,
        name: alert_name(alert),
        severity,
    }
}

/// Returns the extension pairs of an alert and its device, in the
/// order `docs/mapping.md` lists them.
pub fn extension(event: &AlertEvent) -> Extension {
    let mut extension = Extension::new();
    push_alert_fields(&event.alert, &mut extension);
    if let Some(device) = &event.device {
        push_device_fields(device, &mut extension);
    }
    extension
}

/// Returns the alert's own time in epoch milliseconds: `modified`, else
/// `created`, skipping a time outside 1970 to 9999 (see [`epoch_ms`]).
pub fn alert_time_ms(alert: &Alert) -> Option<i64> {
    alert
        .modified
        .and_then(epoch_ms)
        .or_else(|| alert.created.and_then(epoch_ms))
}

/// Characters of the category kept in the event class id.
const MAX_CATEGORY_IN_ID: usize = 64;

/// `alert:<category>`, or `alert` without a category. It names the kind
/// of event, so SIEM rules can key on it, and it never changes for a
/// given category text.
pub fn event_class_id(alert: &Alert) -> String {
    match alert.category.as_deref().filter(|c| has_text(c)) {
        // Categories come from a short list in the API, but the value is
        // API data: cap it so the id stays an id, and the fitting, which
        // never cuts the id, can always fit the message.
        Some(category) => {
            let category: String = category.trim().chars().take(MAX_CATEGORY_IN_ID).collect();
            format!("alert:{category}")
        }
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
    extension.push_int(RT, alert.modified.and_then(epoch_ms));
    extension.push_int(START, alert.created.and_then(epoch_ms));
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

/// Adds the device fields shared by enriched alerts and inventory
/// events, in the order `docs/mapping.md` lists them.
pub(crate) fn push_device_fields(device: &Device, extension: &mut Extension) {
    extension.push(DHOST, device.hostname.as_deref());
    push_ip_address(device.ip_address.as_deref(), extension);
    push_device_details(device, extension);
}

/// Adds the device's fields after `dhost` and its address: name,
/// category, type, flags, manufacturer and model.
pub(super) fn push_device_details(device: &Device, extension: &mut Extension) {
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
    extension.push(OS_TYPE, device.os_type.as_deref());
    extension.push(LOCATION, device.location.as_deref());
}

/// `dst` for IPv4, `c6a3` for IPv6 (CEF's `dst` takes IPv4 only), and
/// nothing for text that is not an address.
pub(super) fn push_ip_address(ip_address: Option<&str>, extension: &mut Extension) {
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

pub(crate) fn push_custom(
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

/// Converts epoch seconds to the milliseconds `rt` and `start` require,
/// or `None` outside 1970-01-01 to 9999-12-31. A time outside that range
/// is a corrupt record (a negative number, or `1e300` read as
/// `i64::MAX`), and receivers would show it as an absurd date.
pub fn epoch_ms(secs: i64) -> Option<i64> {
    (0..=LATEST_SECS).contains(&secs).then(|| secs * 1000)
}
