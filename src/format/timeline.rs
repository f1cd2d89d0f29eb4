//! The mapping of a device timeline event (a device going up or down,
//! with its IP address at the time) and the device's inventory record
//! onto CEF fields. `docs/mapping.md` lists the same table for SIEM
//! administrators; keep both in step.

use super::Parts;
use super::alert::{CS, DHOST, DMAC, RT, push_custom, push_device_details, push_ip_address};
use super::cef::{Extension, Severity};
use crate::event::TimelineRecord;

/// The RFC 5424 MSGID of timeline messages.
pub const TIMELINE_MSGID: &str = "timeline";

/// CEF severity of a device coming up: routine.
pub const UP_SEVERITY: u8 = 1;

/// CEF severity of a device going down, or of a status other than `up`
/// and `down`: low, since a timeline event is activity, not an alert.
pub const DOWN_SEVERITY: u8 = 3;

/// The status of a timeline event, as the CEF header names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Up,
    Down,
    Other,
}

fn status_of(record: &TimelineRecord) -> Status {
    match record.status.trim().to_ascii_lowercase().as_str() {
        "up" => Status::Up,
        "down" => Status::Down,
        _ => Status::Other,
    }
}

/// Builds the parts of a timeline message. The CEF header carries no API
/// text, only the status class, so SIEM rules can key on the fixed
/// EventClassId and Name. The status as sent goes to `cs1`.
pub(super) fn parts(record: &TimelineRecord) -> Parts<'static> {
    let (event_class_id, name, severity) = match status_of(record) {
        Status::Up => ("timeline:up", "Device up", UP_SEVERITY),
        Status::Down => ("timeline:down", "Device down", DOWN_SEVERITY),
        Status::Other => ("timeline:other", "Device status changed", DOWN_SEVERITY),
    };
    Parts {
        severity: Severity::new(severity),
        time_ms: record.created_ms(),
        msgid: TIMELINE_MSGID,
        event_class_id: event_class_id.to_owned(),
        name,
        extension: extension(record),
    }
}

/// Returns the extension pairs of a timeline event and its device, in
/// the order `docs/mapping.md` lists them.
pub fn extension(record: &TimelineRecord) -> Extension {
    let mut extension = Extension::new();
    extension.push_int(RT, record.created_ms());
    extension.push(DMAC, Some(&record.device_id));
    // The event's own address: the device may have had another one then
    // than its inventory record shows now.
    push_ip_address(record.ip_address.as_deref(), &mut extension);
    let [status, ..] = &CS;
    push_custom(&mut extension, status, "status", Some(&record.status));
    if let Some(device) = &record.device {
        extension.push(DHOST, device.hostname.as_deref());
        push_device_details(device, &mut extension);
    }
    extension
}
