//! Syslog headers: the priority, the RFC 5424 header and the RFC 3164
//! (BSD) header that precede the CEF record in every message.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::cef::Severity;
use crate::clock::datetime_from_ms;

/// RFC 5424 header field limits, in characters (section 6).
pub const HOSTNAME_MAX_CHARS: usize = 255;
pub const APP_NAME_MAX_CHARS: usize = 48;
pub const PROCID_MAX_CHARS: usize = 128;
pub const MSGID_MAX_CHARS: usize = 32;

/// RFC 3164 section 4.1.3 limits the TAG to 32 alphanumeric characters.
pub const TAG_MAX_CHARS: usize = 32;

/// The largest facility code, `local7`.
pub const FACILITY_MAX: u8 = 23;

/// Latest time a four-digit year can show: 9999-12-31T23:59:59.999Z.
pub const LATEST_MS: i64 = 253_402_300_799_999;

/// Syslog severity codes (RFC 5424 section 6.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyslogSeverity {
    Emergency = 0,
    Alert = 1,
    Critical = 2,
    Error = 3,
    Warning = 4,
    Notice = 5,
    Informational = 6,
    Debug = 7,
}

impl SyslogSeverity {
    /// Maps a CEF severity onto syslog: 0 informational, 1-3 (low)
    /// notice, 4-6 (medium) warning, 7-8 (high) error, 9-10 (very high)
    /// critical. Emergency and alert are left to the host's own failures.
    pub fn from_cef(severity: Severity) -> Self {
        match severity.value() {
            0 => SyslogSeverity::Informational,
            1..=3 => SyslogSeverity::Notice,
            4..=6 => SyslogSeverity::Warning,
            7..=8 => SyslogSeverity::Error,
            _ => SyslogSeverity::Critical,
        }
    }
}

/// The `<PRI>` value: facility × 8 + severity, 0 to 191.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Priority {
    facility: u8,
    severity: SyslogSeverity,
}

impl Priority {
    /// Clamps `facility` to 23 so the value stays within 0-191.
    pub fn new(facility: u8, severity: SyslogSeverity) -> Self {
        Priority {
            facility: facility.min(FACILITY_MAX),
            severity,
        }
    }

    pub fn value(self) -> u8 {
        self.facility * 8 + self.severity as u8
    }

    /// Appends `<PRI>`.
    pub fn encode(self, out: &mut String) {
        let _ = write!(out, "<{}>", self.value());
    }
}

/// The RFC 5424 header, up to and including the space before MSG. The
/// structured data is always the nil value `-`, and no BOM is written
/// because it hides the `CEF:` prefix from collectors.
#[derive(Clone, Debug)]
pub struct Rfc5424Header<'a> {
    pub priority: Priority,
    /// Epoch milliseconds.
    pub timestamp_ms: i64,
    pub hostname: &'a str,
    pub app_name: &'a str,
    pub procid: &'a str,
    pub msgid: &'a str,
}

impl Rfc5424Header<'_> {
    /// Appends `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - `.
    pub fn encode(&self, out: &mut String) {
        self.priority.encode(out);
        out.push_str("1 ");
        push_rfc5424_timestamp(self.timestamp_ms, out);
        out.push(' ');
        push_header_field(self.hostname, HOSTNAME_MAX_CHARS, out);
        out.push(' ');
        push_header_field(self.app_name, APP_NAME_MAX_CHARS, out);
        out.push(' ');
        push_header_field(self.procid, PROCID_MAX_CHARS, out);
        out.push(' ');
        push_header_field(self.msgid, MSGID_MAX_CHARS, out);
        out.push_str(" - ");
    }
}

/// The RFC 3164 header, up to and including the space before MSG. The
/// timestamp is UTC because the format has no zone field.
#[derive(Clone, Debug)]
pub struct Rfc3164Header<'a> {
    pub priority: Priority,
    /// Epoch milliseconds.
    pub timestamp_ms: i64,
    pub hostname: &'a str,
    pub tag: &'a str,
}

impl Rfc3164Header<'_> {
    /// Appends `<PRI>Mmm dd hh:mm:ss HOSTNAME TAG: `, the day padded with
    /// a space (`Dec  4`).
    pub fn encode(&self, out: &mut String) {
        self.priority.encode(out);
        let time = clamped_datetime(self.timestamp_ms);
        let _ = write!(out, "{} ", time.format("%b %e %H:%M:%S"));
        push_header_field(self.hostname, HOSTNAME_MAX_CHARS, out);
        out.push(' ');
        push_tag(self.tag, out);
        out.push_str(": ");
    }
}

/// Appends a UTC timestamp with exactly three fraction digits, the form
/// QRadar requires (`2019-02-20T04:40:34.000Z`).
pub fn push_rfc5424_timestamp(ms: i64, out: &mut String) {
    let time = clamped_datetime(ms);
    let _ = write!(out, "{}", time.format("%Y-%m-%dT%H:%M:%S%.3fZ"));
}

/// Clamps to 1970-9999 so the year always has four digits.
fn clamped_datetime(ms: i64) -> DateTime<Utc> {
    datetime_from_ms(ms.clamp(0, LATEST_MS))
}

/// Appends a header field: each character outside printable ASCII (33 to
/// 126) becomes `_`, the result is cut to `max_chars`, and an empty value
/// becomes the nil value `-`. No space can appear, so no field can shift
/// the ones after it.
pub fn push_header_field(value: &str, max_chars: usize, out: &mut String) {
    push_replaced(value, max_chars, |c| matches!(c, '!'..='~'), out);
}

/// Appends an RFC 3164 TAG: letters, digits, `_`, `-` and `.`, others as
/// `_`, so no `:` or `[` ends it early.
fn push_tag(value: &str, out: &mut String) {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_-.".contains(c);
    push_replaced(value, TAG_MAX_CHARS, allowed, out);
}

fn push_replaced(value: &str, max_chars: usize, allowed: impl Fn(char) -> bool, out: &mut String) {
    let start = out.len();
    for c in value.chars().take(max_chars) {
        out.push(if allowed(c) { c } else { '_' });
    }
    if out.len() == start {
        out.push('-');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn priority(severity: SyslogSeverity) -> Priority {
        Priority::new(4, severity)
    }

    #[test]
    fn priority_is_facility_times_eight_plus_severity() {
        assert_eq!(Priority::new(0, SyslogSeverity::Emergency).value(), 0);
        assert_eq!(Priority::new(1, SyslogSeverity::Notice).value(), 13);
        assert_eq!(Priority::new(23, SyslogSeverity::Debug).value(), 191);
    }

    #[test]
    fn priority_clamps_facility() {
        assert_eq!(Priority::new(200, SyslogSeverity::Debug).value(), 191);
    }

    #[test]
    fn severity_maps_cef_ranges() {
        let cases = [
            (0, SyslogSeverity::Informational),
            (1, SyslogSeverity::Notice),
            (3, SyslogSeverity::Notice),
            (4, SyslogSeverity::Warning),
            (6, SyslogSeverity::Warning),
            (7, SyslogSeverity::Error),
            (8, SyslogSeverity::Error),
            (9, SyslogSeverity::Critical),
            (10, SyslogSeverity::Critical),
        ];
        for (cef, expected) in cases {
            let mapped = SyslogSeverity::from_cef(Severity::new(cef));
            assert_eq!(mapped, expected, "cef {cef}");
        }
    }

    #[test]
    fn rfc5424_header_layout() {
        let mut out = String::new();
        Rfc5424Header {
            priority: priority(SyslogSeverity::Warning),
            timestamp_ms: 1_550_637_634_005,
            hostname: "fw1",
            app_name: "iotsecure",
            procid: "",
            msgid: "alert",
        }
        .encode(&mut out);
        let expected = "<36>1 2019-02-20T04:40:34.005Z fw1 iotsecure - alert - ";
        assert_eq!(out, expected);
    }

    #[test]
    fn rfc5424_timestamp_has_three_fraction_digits() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (1_000, "1970-01-01T00:00:01.000Z"),
            (-5, "1970-01-01T00:00:00.000Z"),
            (i64::MAX, "9999-12-31T23:59:59.999Z"),
        ];
        for (ms, expected) in cases {
            let mut out = String::new();
            push_rfc5424_timestamp(ms, &mut out);
            assert_eq!(out, expected, "{ms}");
        }
    }

    #[test]
    fn header_fields_keep_printable_ascii_only() {
        let cases = [
            ("space replaced", "a b", 10, "a_b"),
            ("lf replaced", "a\nb", 10, "a_b"),
            ("non-ascii replaced", "hé", 10, "h_"),
            ("empty is nil", "", 10, "-"),
            ("cut to limit", "abcdef", 3, "abc"),
            ("forged header", "h\n<13>1 x", 20, "h_<13>1_x"),
        ];
        for (rule, value, max_chars, expected) in cases {
            let mut out = String::new();
            push_header_field(value, max_chars, &mut out);
            assert_eq!(out, expected, "{rule}");
        }
    }

    #[test]
    fn rfc3164_header_pads_day_with_space() {
        let mut out = String::new();
        Rfc3164Header {
            priority: priority(SyslogSeverity::Notice),
            // 2018-12-04T05:06:07Z
            timestamp_ms: 1_543_899_967_000,
            hostname: "fw1",
            tag: "iot:secure[1]",
        }
        .encode(&mut out);
        assert_eq!(out, "<37>Dec  4 05:06:07 fw1 iot_secure_1_: ");
    }

    #[test]
    fn rfc3164_tag_is_cut_to_32_characters() {
        let mut out = String::new();
        push_tag(&"a".repeat(40), &mut out);
        assert_eq!(out.len(), TAG_MAX_CHARS);
    }
}
