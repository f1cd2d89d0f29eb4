//! Encodes events as CEF inside an RFC 5424 or RFC 3164 syslog message.
//!
//! [`cef`] owns CEF escaping and parsing, [`syslog`] the headers,
//! [`alert`], [`timeline`] and [`inventory`] the mapping of alert,
//! device timeline and device inventory fields onto CEF keys, and
//! [`fit`] the
//! shortening of values that keeps a message within an output's byte
//! limit. The output is one complete message without framing: the sinks
//! add the framing.
//!
//! Invariant: no byte of API data can end a message, start a new one or
//! forge a CEF field. Header fields keep printable ASCII only, CEF header
//! values replace every control character, and CEF extension values
//! escape CR and LF, so an encoded message never contains CR or LF.

pub mod alert;
pub mod cef;
pub mod fit;
pub mod inventory;
pub mod syslog;
pub mod timeline;

#[cfg(test)]
mod inventory_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

pub use cef::{CefParseError, CefRecord, Severity, parse_cef};
pub use fit::Fitted;
use syslog::{Priority, Rfc3164Header, Rfc5424Header, SyslogSeverity};

use crate::api::Alert;
use crate::clock::Clock;
use crate::event::{Event, InventoryEvent};
pub use inventory::INVENTORY_MSGID;

pub use timeline::TIMELINE_MSGID;

/// The RFC 5424 MSGID of alert messages.
pub const ALERT_MSGID: &str = "alert";

/// The parts of a message that depend on the kind of event.
struct Parts<'a> {
    severity: Severity,
    /// The event's own time in epoch milliseconds, if it has one.
    time_ms: Option<i64>,
    msgid: &'static str,
    event_class_id: String,
    name: &'a str,
    extension: cef::Extension,
}

/// Which syslog header precedes the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyslogHeader {
    Rfc5424,
    Rfc3164,
}

/// How events are encoded; built from the `[format]` table of the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatSettings {
    pub header: SyslogHeader,
    /// Syslog facility code, 0 to 23.
    pub facility: u8,
    pub app_name: String,
    pub hostname: String,
    /// CEF severity (0 to 10) per alert priority, keys lower-cased.
    pub severity: BTreeMap<String, u8>,
    /// CEF severity of a priority missing from `severity`.
    pub default_severity: u8,
}

/// Encodes events into complete syslog messages, without framing.
#[derive(Clone, Debug)]
pub struct Formatter {
    settings: FormatSettings,
}

impl Formatter {
    pub fn new(settings: FormatSettings) -> Self {
        Formatter { settings }
    }

    /// Appends one syslog message for `event` to `out`, stamped with the
    /// event's own time, or the system clock's when the event has none.
    pub fn encode(&self, event: &Event, out: &mut Vec<u8>) {
        self.encode_at(event, Clock::system().now_ms(), out);
    }

    /// Appends one syslog message for `event` to `out`, stamped with the
    /// event's own time, or `now_ms` (epoch milliseconds) when the event
    /// has none between 1970 and 9999. The message has no trailing
    /// newline and no CR or LF.
    pub fn encode_at(&self, event: &Event, now_ms: i64, out: &mut Vec<u8>) {
        self.encode_within(event, now_ms, usize::MAX, out);
    }

    /// Appends one syslog message for `event` to `out` like
    /// [`Formatter::encode_at`], at most `max_bytes` bytes long (header
    /// included) unless the result is [`Fitted::TooLong`]. Values are
    /// shortened before escaping, as `fit` describes, so the message
    /// stays a valid CEF record with every identifying field intact.
    pub fn encode_within(
        &self,
        event: &Event,
        now_ms: i64,
        max_bytes: usize,
        out: &mut Vec<u8>,
    ) -> Fitted {
        let parts = match event {
            Event::Alert(alert_event) => self.alert_parts(alert_event),
            Event::Timeline(record) => timeline::parts(record),
            Event::Inventory(inventory_event) => {
                return self.encode_inventory(inventory_event, now_ms, max_bytes, out);
            }
        };
        let timestamp_ms = parts.time_ms.unwrap_or(now_ms);

        let mut syslog_header = String::with_capacity(128);
        self.encode_header(
            parts.severity,
            timestamp_ms,
            parts.msgid,
            &mut syslog_header,
        );
        let draft = fit::Draft {
            syslog_header: &syslog_header,
            cef_header: cef::CefHeader {
                vendor: alert::VENDOR,
                product: alert::PRODUCT,
                version: alert::PRODUCT_VERSION,
                event_class_id: &parts.event_class_id,
                name: parts.name,
                severity: parts.severity,
            },
            extension: parts.extension,
        };
        write_fitted(draft, max_bytes, out)
    }

    fn encode_inventory(
        &self,
        event: &InventoryEvent,
        now_ms: i64,
        max_bytes: usize,
        out: &mut Vec<u8>,
    ) -> Fitted {
        let severity = inventory::severity(event);
        let timestamp_ms = inventory::inventory_time_ms(event).unwrap_or(now_ms);

        let mut syslog_header = String::with_capacity(128);
        self.encode_header(severity, timestamp_ms, INVENTORY_MSGID, &mut syslog_header);
        let name = inventory::name(event);
        let draft = fit::Draft {
            syslog_header: &syslog_header,
            cef_header: inventory::cef_header(&name, event),
            extension: inventory::extension(event),
        };
        write_fitted(draft, max_bytes, out)
    }

    fn alert_parts<'a>(&self, alert_event: &'a crate::event::AlertEvent) -> Parts<'a> {
        let alert = &alert_event.alert;
        Parts {
            severity: self.severity(alert),
            time_ms: alert::alert_time_ms(alert),
            msgid: ALERT_MSGID,
            event_class_id: alert::event_class_id(alert),
            name: alert::alert_name(alert),
            extension: alert::extension(alert_event),
        }
    }

    /// Returns the CEF severity of an alert: `severity[priority]` with the
    /// priority trimmed and lower-cased, else `default_severity`, clamped
    /// to 10.
    pub fn severity(&self, alert: &Alert) -> Severity {
        let priority = alert.priority.as_deref().map(normalize_priority);
        let configured = priority.and_then(|p| self.settings.severity.get(&p));
        Severity::new(*configured.unwrap_or(&self.settings.default_severity))
    }

    fn encode_header(&self, severity: Severity, ms: i64, msgid: &str, out: &mut String) {
        let settings = &self.settings;
        let severity = SyslogSeverity::from_cef(severity);
        let priority = Priority::new(settings.facility, severity);
        match settings.header {
            SyslogHeader::Rfc5424 => Rfc5424Header {
                priority,
                timestamp_ms: ms,
                hostname: &settings.hostname,
                app_name: &settings.app_name,
                procid: "",
                msgid,
            }
            .encode(out),
            SyslogHeader::Rfc3164 => Rfc3164Header {
                priority,
                timestamp_ms: ms,
                hostname: &settings.hostname,
                tag: &settings.app_name,
            }
            .encode(out),
        }
    }
}

/// Encodes `draft` within `max_bytes` and appends the message to `out`.
fn write_fitted(draft: fit::Draft<'_>, max_bytes: usize, out: &mut Vec<u8>) -> Fitted {
    let mut message = String::with_capacity(512);
    let fitted = fit::encode_within(draft, max_bytes, &mut message);
    debug_assert!(!message.contains(['\r', '\n']), "line break");
    out.extend_from_slice(message.as_bytes());
    fitted
}

fn normalize_priority(priority: &str) -> String {
    priority.trim().to_lowercase()
}
