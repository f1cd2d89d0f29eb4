//! Tests of whole messages: the alert mapping, the syslog layout, and the
//! invariant that hostile API data yields exactly one message whose CEF
//! fields parse back to the original values.

use super::*;
use crate::api::Device;
use crate::event::{AlertEvent, TimelineRecord};

/// The line `docs/mapping.md` shows; the test below keeps it true.
const EXAMPLE: &str = "<131>1 2019-02-20T04:40:34.000Z fw1.example.com \
iotsecure-forwarder - alert - CEF:0|IoT Secure|IoT Secure API|1.0|\
alert:Threat|Botnet traffic detected|8|rt=1550637634000 \
start=1550637000000 externalId=900451 cat=Threat msg=Outbound \
connection to a known botnet controller outcome=Device blocked \
dmac=00:40:17:6C:00:00 dpt=443 cs1Label=status cs1=open \
cs2Label=priority cs2=High dhost=cam-lobby dst=192.168.1.20 \
cs4Label=deviceName cs4=Lobby camera cs5Label=deviceCategory \
cs5=Camera cs6Label=deviceType cs6=IP Camera cn1Label=deviceThreat \
cn1=1 cn2Label=deviceSpoofed cn2=0 cn3Label=deviceBlocked cn3=1 \
flexString1Label=deviceManufacturer flexString1=Axis \
flexString2Label=deviceModel flexString2=M3045 \
IoTSecureAPIDeviceOsType=Linux IoTSecureAPIDeviceLocation=Lobby";

const NOW_MS: i64 = 1_700_000_000_123;

/// Every character that must survive the round trip exactly, plus a
/// forged syslog header and CEF pair after a line break.
const HOSTILE: &str = "a|b\\c=d\r\ne\u{fc}\u{2603}\n<13>1 x cs1=forged";

fn settings(header: SyslogHeader) -> FormatSettings {
    let severity = [("low", 3), ("medium", 5), ("high", 8), ("critical", 12)];
    FormatSettings {
        header,
        facility: 16,
        app_name: "iotsecure-forwarder".into(),
        hostname: "fw1.example.com".into(),
        severity: severity.map(|(k, v)| (k.to_owned(), v)).into(),
        default_severity: 5,
    }
}

fn sample_alert() -> Alert {
    Alert {
        alert_id: "900451".into(),
        category: Some("Threat".into()),
        category_detail: Some("Outbound connection to a known botnet controller".into()),
        created: Some(1_550_637_000),
        device_id: Some("00:40:17:6C:00:00".into()),
        modified: Some(1_550_637_634),
        port: Some("443".into()),
        priority: Some("High".into()),
        resolution: Some("Device blocked".into()),
        status: Some("open".into()),
        subject: Some("Botnet traffic detected".into()),
    }
}

fn sample_device() -> Device {
    Device {
        device_id: "00:40:17:6C:00:00".into(),
        hostname: Some("cam-lobby".into()),
        ip_address: Some("192.168.1.20".into()),
        name: Some("Lobby camera".into()),
        category: Some("Camera".into()),
        device_type: Some("IP Camera".into()),
        manufacturer: Some("Axis".into()),
        model: Some("M3045".into()),
        os_type: Some("Linux".into()),
        location: Some("Lobby".into()),
        threat: Some(true),
        spoofed: Some(false),
        blocked: Some(true),
        ..Device::default()
    }
}

fn event(alert: Alert, device: Option<Device>) -> Event {
    Event::Alert(AlertEvent { alert, device })
}

fn encode_with(settings: FormatSettings, event: &Event) -> String {
    let mut out = Vec::new();
    Formatter::new(settings).encode_at(event, NOW_MS, &mut out);
    String::from_utf8(out).expect("message is UTF-8")
}

fn encode(event: &Event) -> String {
    encode_with(settings(SyslogHeader::Rfc5424), event)
}

/// Splits an RFC 5424 message into its seven header fields and the CEF
/// record, checking the framing invariant on the way.
fn split(message: &str) -> (Vec<String>, CefRecord) {
    assert!(!message.contains(['\r', '\n']), "line break in {message:?}");
    let parts: Vec<&str> = message.splitn(8, ' ').collect();
    assert_eq!(parts.len(), 8, "header fields of {message:?}");
    let record = parse_cef(parts[7]).expect("CEF record parses");
    let header = parts[..7].iter().map(|part| part.to_string()).collect();
    (header, record)
}

fn record_of(event: &Event) -> CefRecord {
    split(&encode(event)).1
}

#[test]
fn example_line_matches_mapping_doc() {
    let line = encode(&event(sample_alert(), Some(sample_device())));
    println!("{line}");
    assert_eq!(line, EXAMPLE);
    let doc = include_str!("../../docs/mapping.md");
    assert!(doc.contains(EXAMPLE), "docs/mapping.md shows another line");
}

#[test]
fn alert_fields_map_to_cef_keys() {
    let record = record_of(&event(sample_alert(), None));
    assert_eq!(record.vendor, "IoT Secure");
    assert_eq!(record.product, "IoT Secure API");
    assert_eq!(record.version, "1.0");
    assert_eq!(record.event_class_id, "alert:Threat");
    assert_eq!(record.name, "Botnet traffic detected");
    assert_eq!(record.severity, "8");
    let expected = [
        ("rt", "1550637634000"),
        ("start", "1550637000000"),
        ("externalId", "900451"),
        ("cat", "Threat"),
        ("msg", "Outbound connection to a known botnet controller"),
        ("outcome", "Device blocked"),
        ("dmac", "00:40:17:6C:00:00"),
        ("dpt", "443"),
    ];
    for (key, value) in expected {
        assert_eq!(record.get(key), Some(value), "{key}");
    }
    assert_eq!(record.get_labelled("status"), Some("open"));
    assert_eq!(record.get_labelled("priority"), Some("High"));
    assert_eq!(record.get("dhost"), None);
}

#[test]
fn device_fields_map_to_cef_keys() {
    let record = record_of(&event(sample_alert(), Some(sample_device())));
    assert_eq!(record.get("dhost"), Some("cam-lobby"));
    assert_eq!(record.get("dst"), Some("192.168.1.20"));
    let labelled = [
        ("deviceName", "Lobby camera"),
        ("deviceCategory", "Camera"),
        ("deviceType", "IP Camera"),
        ("deviceManufacturer", "Axis"),
        ("deviceModel", "M3045"),
        ("deviceThreat", "1"),
        ("deviceSpoofed", "0"),
        ("deviceBlocked", "1"),
    ];
    for (label, value) in labelled {
        assert_eq!(record.get_labelled(label), Some(value), "{label}");
    }
}

#[test]
fn extension_keys_keep_a_fixed_order() {
    let record = record_of(&event(sample_alert(), Some(sample_device())));
    let keys: Vec<&str> = record.extension.iter().map(|(k, _)| k.as_str()).collect();
    let first = ["rt", "start", "externalId", "cat", "msg", "outcome"];
    assert_eq!(keys[..6], first);
    assert_eq!(keys.last(), Some(&"IoTSecureAPIDeviceLocation"));
}

#[test]
fn ipv6_address_goes_to_c6a3() {
    let device = Device {
        ip_address: Some(" fe80::1 ".into()),
        ..sample_device()
    };
    let record = record_of(&event(sample_alert(), Some(device)));
    assert_eq!(record.get("c6a3"), Some("fe80::1"));
    assert_eq!(record.get("c6a3Label"), Some("deviceAddress"));
    assert_eq!(record.get("dst"), None);
}

#[test]
fn invalid_ip_address_is_omitted() {
    let device = Device {
        ip_address: Some("10.0.0.1 dst=1.2.3.4".into()),
        ..sample_device()
    };
    let record = record_of(&event(sample_alert(), Some(device)));
    assert_eq!(record.get("dst"), None);
    assert_eq!(record.get("c6a3"), None);
}

#[test]
fn non_numeric_port_goes_to_labelled_field() {
    for port in ["80,443", "65536", "-1", "http"] {
        let alert = Alert {
            port: Some(port.into()),
            ..sample_alert()
        };
        let record = record_of(&event(alert, None));
        assert_eq!(record.get("dpt"), None, "{port}");
        assert_eq!(record.get_labelled("port"), Some(port), "{port}");
    }
}

#[test]
fn name_falls_back_to_category_then_default() {
    let cases = [
        (Some("s"), Some("c"), "s"),
        (Some(" \t"), Some("c"), "c"),
        (None, Some("c"), "c"),
        (None, None, "IoT Secure alert"),
        (Some("\n"), Some(""), "IoT Secure alert"),
    ];
    for (subject, category, expected) in cases {
        let alert = Alert {
            subject: subject.map(String::from),
            category: category.map(String::from),
            ..sample_alert()
        };
        let record = record_of(&event(alert, None));
        assert_eq!(record.name, expected, "{subject:?} {category:?}");
    }
}

#[test]
fn event_class_id_names_category() {
    let cases = [
        (Some("Threat"), "alert:Threat"),
        (Some(" New Device "), "alert:New Device"),
        (Some("a|b\nc"), "alert:a|b c"),
        (Some(" "), "alert"),
        (None, "alert"),
    ];
    for (category, expected) in cases {
        let alert = Alert {
            category: category.map(String::from),
            ..sample_alert()
        };
        let record = record_of(&event(alert, None));
        assert_eq!(record.event_class_id, expected, "{category:?}");
    }
}

#[test]
fn severity_follows_priority_map() {
    let cases = [
        (Some("High"), "8"),
        (Some(" LOW "), "3"),
        (Some("critical"), "10"),
        (Some("unknown"), "5"),
        (None, "5"),
    ];
    for (priority, expected) in cases {
        let alert = Alert {
            priority: priority.map(String::from),
            ..sample_alert()
        };
        let record = record_of(&event(alert, None));
        assert_eq!(record.severity, expected, "{priority:?}");
    }
}

#[test]
fn default_severity_is_clamped() {
    let mut settings = settings(SyslogHeader::Rfc5424);
    settings.default_severity = 99;
    let alert = Alert {
        priority: None,
        ..sample_alert()
    };
    let line = encode_with(settings, &event(alert, None));
    assert_eq!(split(&line).1.severity, "10");
    assert!(line.starts_with("<130>1 "), "{line}");
}

#[test]
fn timestamp_is_event_time() {
    let (header, _) = split(&encode(&event(sample_alert(), None)));
    assert_eq!(header[1], "2019-02-20T04:40:34.000Z");

    let created_only = Alert {
        modified: None,
        ..sample_alert()
    };
    let (header, record) = split(&encode(&event(created_only, None)));
    assert_eq!(header[1], "2019-02-20T04:30:00.000Z");
    assert_eq!(record.get("rt"), None);
}

#[test]
fn timestamp_falls_back_to_now() {
    let timeless = Alert {
        modified: None,
        created: None,
        ..sample_alert()
    };
    let (header, _) = split(&encode(&event(timeless, None)));
    assert_eq!(header[1], "2023-11-14T22:13:20.123Z");
}

#[test]
fn rfc5424_header_fields() {
    let (header, _) = split(&encode(&event(sample_alert(), None)));
    let expected = [
        "<131>1",
        "2019-02-20T04:40:34.000Z",
        "fw1.example.com",
        "iotsecure-forwarder",
        "-",
        "alert",
        "-",
    ];
    assert_eq!(header, expected);
}

#[test]
fn rfc3164_layout() {
    let line = encode_with(
        settings(SyslogHeader::Rfc3164),
        &event(sample_alert(), None),
    );
    let prefix = "<131>Feb 20 04:40:34 fw1.example.com iotsecure-forwarder: ";
    assert!(line.starts_with(prefix), "{line}");
    let cef = line.strip_prefix(prefix).expect("prefix checked");
    assert!(cef.starts_with("CEF:0|"), "{cef}");
    assert!(!line.contains(['\r', '\n']));
}

#[test]
fn message_has_no_trailing_newline() {
    let line = encode(&event(sample_alert(), Some(sample_device())));
    assert!(!line.ends_with(['\n', '\r', ' ']), "{line:?}");
}

#[test]
fn empty_alert_still_encodes() {
    let alert = Alert {
        alert_id: String::new(),
        ..Alert::default()
    };
    let line = encode(&event(alert, Some(Device::default())));
    let (_, record) = split(&line);
    assert_eq!(record.name, "IoT Secure alert");
    assert!(record.extension.is_empty(), "{line}");
    assert!(line.ends_with("|5|"), "{line}");
}

type AlertSetter = fn(&mut Alert, String);
type DeviceSetter = fn(&mut Device, String);

/// Where an API text field lands: a plain key or a labelled field.
enum Target {
    Key(&'static str),
    Labelled(&'static str),
}

fn value_at<'a>(record: &'a CefRecord, target: &Target) -> Option<&'a str> {
    match target {
        Target::Key(key) => record.get(key),
        Target::Labelled(label) => record.get_labelled(label),
    }
}

/// Checks that the `cs1=forged` inside [`HOSTILE`] stayed inside a value.
fn assert_no_forged_pair(record: &CefRecord, field: &str) {
    let forged = record.extension.iter().filter(|(_, v)| v == "forged");
    assert_eq!(forged.count(), 0, "{field} forged a pair");
}

#[test]
fn hostile_alert_fields_parse_back() {
    let fields: [(&str, AlertSetter, Target); 8] = [
        ("alert_id", |a, v| a.alert_id = v, Target::Key("externalId")),
        ("category", |a, v| a.category = Some(v), Target::Key("cat")),
        (
            "detail",
            |a, v| a.category_detail = Some(v),
            Target::Key("msg"),
        ),
        (
            "device_id",
            |a, v| a.device_id = Some(v),
            Target::Key("dmac"),
        ),
        ("port", |a, v| a.port = Some(v), Target::Labelled("port")),
        (
            "priority",
            |a, v| a.priority = Some(v),
            Target::Labelled("priority"),
        ),
        (
            "resolution",
            |a, v| a.resolution = Some(v),
            Target::Key("outcome"),
        ),
        (
            "status",
            |a, v| a.status = Some(v),
            Target::Labelled("status"),
        ),
    ];
    for (name, set, target) in fields {
        let mut alert = sample_alert();
        set(&mut alert, HOSTILE.to_owned());
        let record = record_of(&event(alert, None));
        assert_eq!(value_at(&record, &target), Some(HOSTILE), "{name}");
        assert_no_forged_pair(&record, name);
    }
}

#[test]
fn hostile_device_fields_parse_back() {
    let fields: [(&str, DeviceSetter, Target); 8] = [
        (
            "hostname",
            |d, v| d.hostname = Some(v),
            Target::Key("dhost"),
        ),
        (
            "name",
            |d, v| d.name = Some(v),
            Target::Labelled("deviceName"),
        ),
        (
            "category",
            |d, v| d.category = Some(v),
            Target::Labelled("deviceCategory"),
        ),
        (
            "type",
            |d, v| d.device_type = Some(v),
            Target::Labelled("deviceType"),
        ),
        (
            "manufacturer",
            |d, v| d.manufacturer = Some(v),
            Target::Labelled("deviceManufacturer"),
        ),
        (
            "model",
            |d, v| d.model = Some(v),
            Target::Labelled("deviceModel"),
        ),
        (
            "os_type",
            |d, v| d.os_type = Some(v),
            Target::Key("IoTSecureAPIDeviceOsType"),
        ),
        (
            "location",
            |d, v| d.location = Some(v),
            Target::Key("IoTSecureAPIDeviceLocation"),
        ),
    ];
    for (name, set, target) in fields {
        let mut device = sample_device();
        set(&mut device, HOSTILE.to_owned());
        let record = record_of(&event(sample_alert(), Some(device)));
        assert_eq!(value_at(&record, &target), Some(HOSTILE), "{name}");
        assert_no_forged_pair(&record, name);
    }
}

#[test]
fn hostile_unmapped_device_fields_leave_no_trace() {
    let mut device = sample_device();
    let setters: [DeviceSetter; 4] = [
        |d, v| d.oui = Some(v),
        |d, v| d.snmp_profile = Some(v),
        |d, v| d.domains = vec![v],
        |d, v| d.device_id = v,
    ];
    for set in setters {
        set(&mut device, HOSTILE.to_owned());
    }
    let line = encode(&event(sample_alert(), Some(device)));
    assert_eq!(line, encode(&event(sample_alert(), Some(sample_device()))));
}

#[test]
fn hostile_header_values_are_normalized() {
    let alert = Alert {
        subject: Some(HOSTILE.into()),
        category: Some(HOSTILE.into()),
        ..sample_alert()
    };
    let record = record_of(&event(alert, None));
    // Header values replace CR and LF with a space; `|`, `\` and `=`
    // survive through escaping.
    let expected = HOSTILE.replace(['\r', '\n'], " ");
    assert_eq!(record.name, expected);
    assert_eq!(record.event_class_id, format!("alert:{expected}"));
    assert_eq!(record.get("cat"), Some(HOSTILE));
}

#[test]
fn forged_syslog_header_in_hostname_stays_inside() {
    let forged = "h\n<13>1 2020-01-01T00:00:00Z evil app - - - CEF:0|x";
    let mut settings = settings(SyslogHeader::Rfc5424);
    settings.hostname = forged.into();
    settings.app_name = forged.into();
    let device = Device {
        hostname: Some(forged.into()),
        ..sample_device()
    };
    let line = encode_with(settings, &event(sample_alert(), Some(device)));
    let (header, record) = split(&line);
    assert_eq!(
        header[2],
        "h_<13>1_2020-01-01T00:00:00Z_evil_app_-_-_-_CEF:0|x"
    );
    assert_eq!(header[3].len(), 48);
    assert_eq!(record.get("dhost"), Some(forged));
    assert_eq!(line.matches("CEF:0|IoT").count(), 1);
}

#[test]
fn forged_syslog_header_in_rfc3164_stays_inside() {
    let forged = "h\n<13>Jan  1 00:00:00 evil app: CEF:0|x";
    let mut settings = settings(SyslogHeader::Rfc3164);
    settings.hostname = forged.into();
    settings.app_name = forged.into();
    let line = encode_with(settings, &event(sample_alert(), None));
    assert!(!line.contains(['\r', '\n']), "{line}");
    let fields: Vec<&str> = line.splitn(6, ' ').collect();
    assert_eq!(fields[3], "h_<13>Jan__1_00:00:00_evil_app:_CEF:0|x");
    assert_eq!(fields[4], "h__13_Jan__1_00_00_00_evil_app__:");
    assert!(fields[5].starts_with("CEF:0|IoT Secure|"), "{line}");
}

#[test]
fn ten_kilobyte_hostname_is_cut() {
    let long = "h".repeat(10 * 1024);
    let mut settings = settings(SyslogHeader::Rfc5424);
    settings.hostname = long.clone();
    let device = Device {
        hostname: Some(long.clone()),
        ..sample_device()
    };
    let line = encode_with(settings, &event(sample_alert(), Some(device)));
    let (header, record) = split(&line);
    assert_eq!(header[2].len(), 255);
    assert_eq!(record.get("dhost"), Some(&long[..1023]));
}

#[test]
fn long_values_are_cut_to_key_limits() {
    let long = "=".repeat(5000);
    let alert = Alert {
        alert_id: long.clone(),
        category_detail: Some(long.clone()),
        resolution: Some(long.clone()),
        status: Some(long.clone()),
        subject: Some(long.clone()),
        ..sample_alert()
    };
    let record = record_of(&event(alert, None));
    let limits = [("externalId", 40), ("msg", 1023), ("outcome", 63)];
    for (key, limit) in limits {
        let value = record.get(key).expect("value present");
        assert_eq!(value.len(), limit, "{key}");
    }
    let status = record.get_labelled("status").expect("status present");
    assert_eq!(status.len(), 4000);
    assert_eq!(record.name.len(), 512);
}

#[test]
fn nul_bytes_become_spaces() {
    let alert = Alert {
        subject: Some("a\0b".into()),
        category_detail: Some("c\0d\0".into()),
        status: Some("\0".into()),
        ..sample_alert()
    };
    let line = encode(&event(alert, None));
    assert!(!line.contains('\0'), "{line:?}");
    let (_, record) = split(&line);
    assert_eq!(record.name, "a b");
    assert_eq!(record.get("msg"), Some("c d"));
    assert_eq!(record.get_labelled("status"), None);
}

#[test]
fn tab_becomes_space() {
    let alert = Alert {
        category_detail: Some("a\tb".into()),
        ..sample_alert()
    };
    let line = encode(&event(alert, None));
    assert!(!line.contains('\t'));
    assert_eq!(split(&line).1.get("msg"), Some("a b"));
}

// Fitting into `max_message_bytes`.

const BUDGETS: [usize; 4] = [480, 600, 1024, 2048];

fn encode_within(settings: FormatSettings, event: &Event, max_bytes: usize) -> (String, Fitted) {
    let mut out = Vec::new();
    let fitted = Formatter::new(settings).encode_within(event, NOW_MS, max_bytes, &mut out);
    (String::from_utf8(out).expect("message is UTF-8"), fitted)
}

/// Returns the CEF record of a message with either syslog header. The
/// test settings keep `CEF:0|` out of the syslog header.
fn cef_part(message: &str) -> &str {
    let start = message.find("CEF:0|").expect("message has a CEF record");
    &message[start..]
}

/// An alert whose free-text fields all carry `text`.
fn alert_with_text(text: &str) -> Alert {
    Alert {
        category_detail: Some(text.into()),
        resolution: Some(text.into()),
        status: Some(text.into()),
        priority: Some(text.into()),
        subject: Some(text.into()),
        ..sample_alert()
    }
}

/// A device whose free-text fields all carry `text`.
fn device_with_text(text: &str) -> Device {
    Device {
        name: Some(text.into()),
        category: Some(text.into()),
        device_type: Some(text.into()),
        manufacturer: Some(text.into()),
        model: Some(text.into()),
        ..sample_device()
    }
}

/// The oversize alerts each budget must take.
fn oversize_events() -> Vec<(&'static str, Event)> {
    let backslashes = Alert {
        status: Some("\\".repeat(3000)),
        ..sample_alert()
    };
    let locks = Alert {
        subject: Some("\u{1f512}".repeat(3000)),
        ..sample_alert()
    };
    let plain = Alert {
        subject: Some("a".repeat(100 * 1024)),
        ..sample_alert()
    };
    let hostile = HOSTILE.repeat(300);
    let escapes = "\\=|\r\n\u{1f512}\u{fc}".repeat(1000);
    vec![
        ("3000 backslashes in status", event(backslashes, None)),
        (
            "4000 equals signs",
            event(alert_with_text(&"=".repeat(4000)), None),
        ),
        ("3000 locks in subject", event(locks, None)),
        ("100 KB plain subject", event(plain, Some(sample_device()))),
        (
            "hostile mix",
            event(alert_with_text(&hostile), Some(device_with_text(&hostile))),
        ),
        (
            "escapes and multibyte",
            event(alert_with_text(&escapes), Some(device_with_text(&escapes))),
        ),
    ]
}

/// Checks everything a shortened message must keep, whichever header.
fn assert_fitted(message: &str, max_bytes: usize, case: &str) {
    assert!(
        message.len() <= max_bytes,
        "{case}: {} bytes",
        message.len()
    );
    assert!(!message.contains(['\r', '\n']), "{case}: line break");
    let trailing = message.bytes().rev().take_while(|&b| b == b'\\');
    assert_eq!(trailing.count() % 2, 0, "{case}: dangling backslash");

    let record = parse_cef(cef_part(message)).expect("CEF record parses");
    assert_eq!(record.get("externalId"), Some("900451"), "{case}");
    assert_eq!(record.get("rt"), Some("1550637634000"), "{case}");
    assert_eq!(record.get("start"), Some("1550637000000"), "{case}");
    assert_eq!(record.get("dmac"), Some("00:40:17:6C:00:00"), "{case}");
    assert_eq!(record.event_class_id, "alert:Threat", "{case}");
    assert_eq!(record.vendor, "IoT Secure", "{case}");
}

#[test]
fn oversize_alerts_fit_every_budget() {
    let headers = [SyslogHeader::Rfc5424, SyslogHeader::Rfc3164];
    for (case, event) in oversize_events() {
        for header in headers {
            for max_bytes in BUDGETS {
                let (line, fitted) = encode_within(settings(header), &event, max_bytes);
                let case = format!("{case}, {header:?}, {max_bytes} bytes");
                // Key limits alone bring some cases under 2048 bytes.
                assert_ne!(fitted, Fitted::TooLong, "{case}");
                assert_fitted(&line, max_bytes, &case);
            }
        }
    }
}

#[test]
fn fitting_message_is_byte_identical() {
    let event = event(sample_alert(), Some(sample_device()));
    let whole = encode(&event);
    let budgets = [usize::MAX, 65_536, 2048, whole.len()];
    for max_bytes in budgets {
        let (line, fitted) = encode_within(settings(SyslogHeader::Rfc5424), &event, max_bytes);
        assert_eq!(fitted, Fitted::Whole, "{max_bytes}");
        assert_eq!(line, whole, "{max_bytes}");
    }
}

#[test]
fn one_byte_over_is_shortened() {
    let event = event(sample_alert(), Some(sample_device()));
    let whole = encode(&event);
    let max_bytes = whole.len() - 1;
    let (line, fitted) = encode_within(settings(SyslogHeader::Rfc5424), &event, max_bytes);
    assert_eq!(fitted, Fitted::Shortened);
    assert_fitted(&line, max_bytes, "one byte over");
    // The longest value, `msg`, gives way and nothing else changes.
    let (record, whole_record) = (split(&line).1, split(&whole).1);
    let detail = "Outbound connection to a known botnet controlle";
    assert_eq!(record.get("msg"), Some(detail));
    assert_eq!(record.name, whole_record.name);
    let others = |record: &CefRecord| {
        let pairs = record.extension.iter();
        pairs
            .filter(|(key, _)| key != "msg")
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(others(&record), others(&whole_record));
}

#[test]
fn shortening_cuts_longest_value_first() {
    let alert = Alert {
        subject: Some("a".repeat(100 * 1024)),
        ..sample_alert()
    };
    let (line, _) = encode_within(settings(SyslogHeader::Rfc5424), &event(alert, None), 600);
    let record = split(&line).1;
    let detail = "Outbound connection to a known botnet controller";
    assert_eq!(record.get("msg"), Some(detail));
    assert_eq!(record.get_labelled("status"), Some("open"));
    assert!(record.name.len() > 200, "{}", record.name.len());
    // Only the Name was cut, one-byte characters to the exact budget.
    assert_eq!(line.len(), 600);
}

#[test]
fn tight_budget_cuts_before_omitting() {
    let alert = Alert {
        subject: Some("a".repeat(100 * 1024)),
        ..sample_alert()
    };
    let event = event(alert, Some(sample_device()));
    let (line, fitted) = encode_within(settings(SyslogHeader::Rfc5424), &event, 480);
    assert_eq!(fitted, Fitted::Shortened);
    assert_fitted(&line, 480, "tight budget");
    let record = split(&line).1;
    let msg = record.get("msg").expect("msg is cut, not omitted");
    assert!(msg.len() >= fit::MIN_CUT_BYTES, "{msg:?}");
    assert!("Outbound connection to a known botnet controller".starts_with(msg));
    assert_eq!(record.get_labelled("status"), Some("open"));
    // Device free text comes last in the pair order, so it goes first.
    assert_eq!(record.get_labelled("deviceModel"), None);
}

#[test]
fn shortened_name_keeps_minimum_chars() {
    let text = "\u{1f512}".repeat(3000);
    let event = event(alert_with_text(&text), Some(device_with_text(&text)));
    let (line, fitted) = encode_within(settings(SyslogHeader::Rfc5424), &event, 480);
    assert_eq!(fitted, Fitted::Shortened);
    let record = split(&line).1;
    assert_eq!(record.name.chars().count(), fit::NAME_MIN_CHARS);
}

#[test]
fn whole_values_are_omitted_not_cut() {
    let device = Device {
        hostname: Some("h".repeat(1023)),
        ..device_with_text(&"x".repeat(4000))
    };
    let alert = Alert {
        port: Some("80,443,8080".into()),
        ..alert_with_text(&"y".repeat(4000))
    };
    let (line, fitted) = encode_within(
        settings(SyslogHeader::Rfc5424),
        &event(alert, Some(device)),
        480,
    );
    assert_eq!(fitted, Fitted::Shortened);
    assert_fitted(&line, 480, "whole values");
    let record = split(&line).1;
    let whole = [
        ("dhost", "h".repeat(1023)),
        ("dst", "192.168.1.20".to_owned()),
        ("cs3", "80,443,8080".to_owned()),
        ("cn1", "1".to_owned()),
    ];
    for (key, value) in whole {
        let written = record.get(key);
        assert!(written.is_none() || written == Some(&value), "{key}");
    }
    assert_eq!(record.get("dhost"), None, "1023 bytes cannot fit");
}

#[test]
fn omitted_value_takes_its_label() {
    let event = event(alert_with_text(&"z".repeat(4000)), Some(sample_device()));
    let (line, _) = encode_within(settings(SyslogHeader::Rfc5424), &event, 480);
    let record = split(&line).1;
    for (key, value) in &record.extension {
        let Some(field) = key.strip_suffix("Label") else {
            continue;
        };
        assert!(record.get(field).is_some(), "{key}={value} alone");
    }
}

#[test]
fn unfittable_message_is_too_long() {
    let alert = Alert {
        category: Some("c".repeat(1000)),
        ..alert_with_text(&"y".repeat(4000))
    };
    let event = event(alert, Some(sample_device()));
    let (line, fitted) = encode_within(settings(SyslogHeader::Rfc5424), &event, 150);
    assert_eq!(fitted, Fitted::TooLong);
    // The shortest form is still a valid record, for the oversize policy.
    let record = split(&line).1;
    assert_eq!(record.get("externalId"), Some("900451"));
    assert_eq!(record.event_class_id.len(), "alert:".len() + 64);
    assert_eq!(record.name.chars().count(), fit::NAME_MIN_CHARS);
    assert_eq!(record.get("msg"), None);
    assert_eq!(record.get("dst"), None);
}

#[test]
fn out_of_range_times_are_omitted() {
    let latest = 253_402_300_799;
    let invalid = [-1, i64::MIN, latest + 1, i64::MAX];
    for bad in invalid {
        let alert = Alert {
            modified: Some(bad),
            ..sample_alert()
        };
        let (header, record) = split(&encode(&event(alert, None)));
        assert_eq!(record.get("rt"), None, "{bad}");
        assert_eq!(record.get("start"), Some("1550637000000"), "{bad}");
        // The header falls back to `created`.
        assert_eq!(header[1], "2019-02-20T04:30:00.000Z", "{bad}");

        let alert = Alert {
            modified: Some(bad),
            created: Some(bad),
            ..sample_alert()
        };
        let (header, record) = split(&encode(&event(alert, None)));
        assert_eq!(record.get("start"), None, "{bad}");
        assert_eq!(header[1], "2023-11-14T22:13:20.123Z", "{bad}");
    }
}

#[test]
fn time_range_bounds_are_kept() {
    for (secs, rt) in [(0, "0"), (253_402_300_799, "253402300799000")] {
        let alert = Alert {
            modified: Some(secs),
            ..sample_alert()
        };
        let record = record_of(&event(alert, None));
        assert_eq!(record.get("rt"), Some(rt), "{secs}");
    }
}

#[test]
fn long_category_fits_smallest_budget() {
    let alert = Alert {
        category: Some("c".repeat(5000)),
        ..alert_with_text(&"y".repeat(4000))
    };
    let event = event(alert, Some(sample_device()));
    let (line, fitted) = encode_within(settings(SyslogHeader::Rfc5424), &event, 480);
    assert_eq!(fitted, Fitted::Shortened);
    assert!(line.len() <= 480, "{} bytes", line.len());
    assert_eq!(split(&line).1.get("externalId"), Some("900451"));
}

// Timeline events.

fn sample_timeline(status: &str, device: Option<Device>) -> Event {
    Event::Timeline(TimelineRecord {
        device_id: "00:40:17:6C:00:00".into(),
        created: "2019-01-15T20:10:00.000Z".into(),
        status: status.into(),
        ip_address: Some("192.168.121.15".into()),
        device,
    })
}

/// The timeline line `docs/mapping.md` shows; the test below keeps it
/// true.
const TIMELINE_EXAMPLE: &str = "<133>1 2019-01-15T20:10:00.000Z \
fw1.example.com iotsecure-forwarder - timeline - CEF:0|IoT Secure|\
IoT Secure API|1.0|timeline:down|Device down|3|rt=1547583000000 \
dmac=00:40:17:6C:00:00 dst=192.168.121.15 cs1Label=status cs1=down \
dhost=cam-lobby cs4Label=deviceName cs4=Lobby camera \
cs5Label=deviceCategory cs5=Camera cs6Label=deviceType cs6=IP Camera \
cn1Label=deviceThreat cn1=1 cn2Label=deviceSpoofed cn2=0 \
cn3Label=deviceBlocked cn3=1 flexString1Label=deviceManufacturer \
flexString1=Axis flexString2Label=deviceModel flexString2=M3045 \
IoTSecureAPIDeviceOsType=Linux IoTSecureAPIDeviceLocation=Lobby";

#[test]
fn timeline_example_matches_mapping_doc() {
    let message = encode(&sample_timeline("down", Some(sample_device())));
    assert_eq!(message, TIMELINE_EXAMPLE);
    let doc = include_str!("../../docs/mapping.md");
    assert!(
        doc.contains(TIMELINE_EXAMPLE),
        "docs/mapping.md shows another timeline line"
    );
}

#[test]
fn timeline_status_sets_header() {
    let cases = [
        ("up", "timeline:up", "Device up", "1"),
        (" Down ", "timeline:down", "Device down", "3"),
        ("rebooting", "timeline:other", "Device status changed", "3"),
    ];
    for (status, class_id, name, severity) in cases {
        let record = record_of(&sample_timeline(status, None));
        assert_eq!(record.event_class_id, class_id, "{status}");
        assert_eq!(record.name, name, "{status}");
        assert_eq!(record.severity, severity, "{status}");
        assert_eq!(record.get("cs1"), Some(status.trim()), "{status}");
    }
}

#[test]
fn timeline_uses_msgid_and_event_time() {
    let message = encode(&sample_timeline("up", None));
    let (header, _) = split(&message);
    assert_eq!(header[1], "2019-01-15T20:10:00.000Z");
    assert_eq!(header[5], "timeline");
}

#[test]
fn timeline_without_device_has_no_device_fields() {
    let record = record_of(&sample_timeline("up", None));
    let keys: Vec<&str> = record.extension.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["rt", "dmac", "dst", "cs1Label", "cs1"]);
}

#[test]
fn timeline_ip_address_beats_device_record() {
    let mut device = sample_device();
    device.ip_address = Some("10.9.9.9".into());
    let record = record_of(&sample_timeline("up", Some(device)));
    assert_eq!(record.get("dst"), Some("192.168.121.15"));
}

#[test]
fn timeline_ipv6_goes_to_c6a3() {
    let Event::Timeline(mut timeline) = sample_timeline("up", None) else {
        unreachable!("sample_timeline builds a timeline event");
    };
    timeline.ip_address = Some("fe80::1".into());
    let record = record_of(&Event::Timeline(timeline));
    assert_eq!(record.get("c6a3"), Some("fe80::1"));
    assert_eq!(record.get("c6a3Label"), Some("deviceAddress"));
    assert_eq!(record.get("dst"), None);
}

#[test]
fn hostile_timeline_fields_parse_back() {
    let mut device = sample_device();
    device.hostname = Some(HOSTILE.into());
    let event = Event::Timeline(TimelineRecord {
        device_id: "00:40:17:6C:00:00".into(),
        created: HOSTILE.into(),
        status: HOSTILE.into(),
        ip_address: Some(HOSTILE.into()),
        device: Some(device),
    });
    let message = encode(&event);
    let (header, record) = split(&message);
    assert_eq!(header[5], "timeline");
    assert_eq!(record.name, "Device status changed");
    assert_eq!(record.get("dhost"), Some(HOSTILE));
    assert_eq!(record.get("cs1"), Some(HOSTILE));
    assert_eq!(record.get("dst"), None, "not an address");
    assert_eq!(record.get("rt"), None, "not a time");
    assert_no_forged_pair(&record, "cs1");
}

#[test]
fn long_timeline_hostname_fits_smallest_budget() {
    let mut device = sample_device();
    device.hostname = Some("h".repeat(10_000));
    device.name = Some("n=".repeat(3_000));
    let event = sample_timeline("down", Some(device));
    let (message, fitted) = encode_within(settings(SyslogHeader::Rfc5424), &event, 480);
    assert_eq!(fitted, Fitted::Shortened);
    assert!(message.len() <= 480, "{} bytes", message.len());
    assert!(!message.contains(['\r', '\n']), "line break");
    let record = parse_cef(cef_part(&message)).expect("CEF parses");
    assert_eq!(record.event_class_id, "timeline:down");
    assert_eq!(record.get("dmac"), Some("00:40:17:6C:00:00"));
    assert_eq!(record.get("rt"), Some("1547583000000"));
}
