//! Encodes events as CEF inside an RFC 5424 or RFC 3164 syslog message.

use std::collections::BTreeMap;

use crate::event::Event;

/// Which syslog header precedes the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyslogHeader {
    Rfc5424,
    Rfc3164,
}

/// How events are encoded; built from the `[format]` table of the config.
#[derive(Clone, Debug)]
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

    /// Appends one syslog message for `event` to `out`.
    pub fn encode(&self, event: &Event, out: &mut Vec<u8>) {
        let _ = (&self.settings, event, out);
        todo!("format helper")
    }
}

impl Formatter {
    /// Like [`Formatter::encode`], with `now_ms` as the header time of an
    /// event that has no time of its own.
    pub fn encode_at(&self, event: &Event, now_ms: i64, out: &mut Vec<u8>) {
        let _ = now_ms;
        self.encode(event, out)
    }
}
