//! The mapping of an inventory event (a device that appeared, or whose
//! security fields changed) onto CEF fields. `docs/mapping.md` lists the
//! same table for SIEM administrators; keep both in step.

use super::alert::{self, DMAC, RT, epoch_ms, id, label, push_custom, text};
use super::cef::{CefHeader, Extension, ExtensionKey, Severity};
use crate::event::{FieldChange, InventoryEvent};

/// The RFC 5424 MSGID of inventory messages.
pub const INVENTORY_MSGID: &str = "inventory";

/// `act`: `added` or `changed`.
const ACT: ExtensionKey = id("act", 63);

/// The changed field names, which name the event, so never cut. Ten
/// field names at most, about 120 characters.
const CHANGED_FIELDS: (ExtensionKey, ExtensionKey) = (id("cs1", 4000), label("cs1Label", 1023));
const PREVIOUS_VALUES: (ExtensionKey, ExtensionKey) = (text("cs2", 4000), label("cs2Label", 1023));
const NEW_VALUES: (ExtensionKey, ExtensionKey) = (text("cs3", 4000), label("cs3Label", 1023));

/// CEF severity of a new device, of a changed one, and of either when
/// its record now shows a threat, spoofing or an exploitable port.
pub const ADDED_SEVERITY: u8 = 3;
pub const CHANGED_SEVERITY: u8 = 5;
pub const EXPOSED_SEVERITY: u8 = 7;

/// `inventory:added` or `inventory:changed`.
pub fn event_class_id(event: &InventoryEvent) -> &'static str {
    if event.added {
        "inventory:added"
    } else {
        "inventory:changed"
    }
}

/// `Device added`, or `Device changed: ` and the changed field names.
pub fn name(event: &InventoryEvent) -> String {
    if event.added {
        return "Device added".to_owned();
    }
    format!("Device changed: {}", field_names(&event.changes, ", "))
}

/// Returns the severity: [`EXPOSED_SEVERITY`] when the device's record
/// has `threat` or `spoofed` set or an exploitable PortSafe port, else
/// [`ADDED_SEVERITY`] or [`CHANGED_SEVERITY`].
pub fn severity(event: &InventoryEvent) -> Severity {
    let device = &event.device;
    let exploitable = device
        .portsafe_results
        .values()
        .any(|result| result.exploitable == Some(true));
    let exposed = device.threat == Some(true) || device.spoofed == Some(true) || exploitable;
    let level = match (exposed, event.added) {
        (true, _) => EXPOSED_SEVERITY,
        (false, true) => ADDED_SEVERITY,
        (false, false) => CHANGED_SEVERITY,
    };
    Severity::new(level)
}

/// Returns the CEF header; `event_class_id` and `name` come from the
/// functions of the same names, owned by the caller.
pub fn cef_header<'a>(name: &'a str, event: &InventoryEvent) -> CefHeader<'a> {
    CefHeader {
        vendor: alert::VENDOR,
        product: alert::PRODUCT,
        version: alert::PRODUCT_VERSION,
        event_class_id: event_class_id(event),
        name,
        severity: severity(event),
    }
}

/// Returns the device's own time in epoch milliseconds: `modified`, else
/// `created`, skipping a time outside 1970 to 9999.
pub fn inventory_time_ms(event: &InventoryEvent) -> Option<i64> {
    let device = &event.device;
    device
        .modified
        .and_then(epoch_ms)
        .or_else(|| device.created.and_then(epoch_ms))
}

/// Returns the extension pairs: the change, then the device fields as an
/// enriched alert carries them.
pub fn extension(event: &InventoryEvent) -> Extension {
    let mut extension = Extension::new();
    let device = &event.device;
    extension.push_int(RT, device.modified.and_then(epoch_ms));
    extension.push(ACT, Some(if event.added { "added" } else { "changed" }));
    extension.push(DMAC, Some(&device.device_id));
    if !event.added {
        let names = field_names(&event.changes, ",");
        push_custom(
            &mut extension,
            &CHANGED_FIELDS,
            "changedFields",
            Some(&names),
        );
        let previous = values_json(&event.changes, |change| change.from.as_deref());
        push_custom(
            &mut extension,
            &PREVIOUS_VALUES,
            "previousValues",
            Some(&previous),
        );
    }
    let new = values_json(&event.changes, |change| change.to.as_deref());
    push_custom(&mut extension, &NEW_VALUES, "newValues", Some(&new));
    alert::push_device_fields(device, &mut extension);
    extension
}

fn field_names(changes: &[FieldChange], separator: &str) -> String {
    let names: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
    names.join(separator)
}

/// Writes `{"field":"value",...}` in the order of `changes`, a missing
/// value as `null`. JSON escaping keeps quotes and control characters
/// apart from the structure; CEF escaping then applies on top.
fn values_json(changes: &[FieldChange], value_of: impl Fn(&FieldChange) -> Option<&str>) -> String {
    let mut json = String::from("{");
    for (index, change) in changes.iter().enumerate() {
        if index > 0 {
            json.push(',');
        }
        json.push_str(&quoted(&change.field));
        json.push(':');
        match value_of(change) {
            Some(value) => json.push_str(&quoted(value)),
            None => json.push_str("null"),
        }
    }
    json.push('}');
    json
}

fn quoted(text: &str) -> String {
    // Serializing a string into JSON cannot fail.
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}
