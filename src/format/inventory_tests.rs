//! Tests of inventory messages: the mapping, the example line of
//! `docs/mapping.md`, and changes that carry hostile text through
//! escaping and fitting.

use super::*;
use crate::api::{Device, PortResult};
use crate::event::FieldChange;

/// The inventory line `docs/mapping.md` shows; the test below keeps it
/// true.
const INVENTORY_EXAMPLE: &str = "<132>1 2019-02-20T04:40:34.000Z \
fw1.example.com iotsecure-forwarder - inventory - CEF:0|IoT Secure|\
IoT Secure API|1.0|inventory:changed|Device changed: ip_address, name|5|\
rt=1550637634000 act=changed dmac=00:40:17:6C:00:00 \
cs1Label=changedFields cs1=ip_address,name cs2Label=previousValues \
cs2={\"ip_address\":\"192.168.121.14\",\"name\":\"GE Healthcare Resting ECG\"} \
cs3Label=newValues cs3={\"ip_address\":\"192.168.121.15\",\"name\":\"ECG ward 3\"} \
dhost=ECG001 dst=192.168.121.15 cs4Label=deviceName cs4=ECG ward 3 \
cs5Label=deviceCategory cs5=Medical Device cn1Label=deviceThreat cn1=0 \
cn2Label=deviceSpoofed cn2=0 cn3Label=deviceBlocked cn3=0 \
flexString1Label=deviceManufacturer flexString1=GE Healthcare \
flexString2Label=deviceModel flexString2=Resting ECG \
IoTSecureAPIDeviceOsType=Linux IoTSecureAPIDeviceLocation=ER Wifi";

const NOW_MS: i64 = 1_700_000_000_123;

type DeviceEdit = fn(&mut Device);

/// Text that must survive the round trip through JSON and CEF, with a
/// forged syslog header and CEF pair after a line break.
const HOSTILE: &str = "a|b\\c=d\r\ne\"}\u{0}\u{7}\t\u{2603}\n<13>1 x cs1=forged";

fn formatter() -> Formatter {
    Formatter::new(FormatSettings {
        header: SyslogHeader::Rfc5424,
        facility: 16,
        app_name: "iotsecure-forwarder".into(),
        hostname: "fw1.example.com".into(),
        severity: BTreeMap::new(),
        default_severity: 5,
    })
}

fn ecg() -> Device {
    let port = |status: &str, exploitable: bool| PortResult {
        status: Some(status.into()),
        exploitable: Some(exploitable),
        ..PortResult::default()
    };
    Device {
        device_id: "00:40:17:6C:00:00".into(),
        hostname: Some("ECG001".into()),
        ip_address: Some("192.168.121.15".into()),
        name: Some("ECG ward 3".into()),
        category: Some("Medical Device".into()),
        manufacturer: Some("GE Healthcare".into()),
        model: Some("Resting ECG".into()),
        os_type: Some("Linux".into()),
        location: Some("ER Wifi".into()),
        threat: Some(false),
        spoofed: Some(false),
        blocked: Some(false),
        modified: Some(1_550_637_634),
        portsafe_results: [("22".to_owned(), port("open", false))].into(),
        ..Device::default()
    }
}

fn change(field: &str, from: Option<&str>, to: Option<&str>) -> FieldChange {
    FieldChange {
        field: field.into(),
        from: from.map(str::to_owned),
        to: to.map(str::to_owned),
    }
}

fn changed(device: Device, changes: Vec<FieldChange>) -> Event {
    Event::Inventory(InventoryEvent {
        device,
        added: false,
        changes,
    })
}

fn renamed() -> Event {
    changed(
        ecg(),
        vec![
            change("ip_address", Some("192.168.121.14"), Some("192.168.121.15")),
            change(
                "name",
                Some("GE Healthcare Resting ECG"),
                Some("ECG ward 3"),
            ),
        ],
    )
}

fn encode_within(event: &Event, max_bytes: usize) -> (String, Fitted) {
    let mut out = Vec::new();
    let fitted = formatter().encode_within(event, NOW_MS, max_bytes, &mut out);
    let line = String::from_utf8(out).expect("message is UTF-8");
    (line, fitted)
}

fn encode(event: &Event) -> String {
    encode_within(event, usize::MAX).0
}

fn record_of(line: &str) -> CefRecord {
    let at = line.find("CEF:0|").expect("message carries CEF");
    parse_cef(&line[at..]).expect("CEF parses")
}

/// Reads a JSON object of field values from a labelled CEF field.
fn values(record: &CefRecord, label: &str) -> serde_json::Value {
    let text = record.get_labelled(label).expect("labelled field present");
    serde_json::from_str(text).expect("value is JSON")
}

#[test]
fn inventory_example_matches_mapping_doc() {
    let line = encode(&renamed());
    println!("{line}");
    assert_eq!(line, INVENTORY_EXAMPLE);
    let doc = include_str!("../../docs/mapping.md");
    assert!(
        doc.contains(INVENTORY_EXAMPLE),
        "docs/mapping.md shows another line"
    );
}

#[test]
fn changed_event_names_fields_and_values() {
    let record = record_of(&encode(&renamed()));
    assert_eq!(record.event_class_id, "inventory:changed");
    assert_eq!(record.name, "Device changed: ip_address, name");
    assert_eq!(record.get("act"), Some("changed"));
    assert_eq!(record.get("dmac"), Some("00:40:17:6C:00:00"));
    assert_eq!(
        record.get_labelled("changedFields"),
        Some("ip_address,name")
    );
    let previous = values(&record, "previousValues");
    assert_eq!(previous["name"], "GE Healthcare Resting ECG");
    assert_eq!(previous["ip_address"], "192.168.121.14");
    let new = values(&record, "newValues");
    assert_eq!(new["name"], "ECG ward 3");
    assert_eq!(record.get("dhost"), Some("ECG001"));
}

#[test]
fn inventory_msgid_in_header() {
    let line = encode(&renamed());
    assert!(
        line.contains(" iotsecure-forwarder - inventory - CEF:0|"),
        "{line}"
    );
}

#[test]
fn added_event_lists_values_without_previous() {
    let event = Event::Inventory(InventoryEvent {
        device: ecg(),
        added: true,
        changes: vec![
            change("hostname", None, Some("ECG001")),
            change("open_ports", None, Some("22")),
        ],
    });
    let record = record_of(&encode(&event));
    assert_eq!(record.event_class_id, "inventory:added");
    assert_eq!(record.name, "Device added");
    assert_eq!(record.severity, "3");
    assert_eq!(record.get("act"), Some("added"));
    assert_eq!(record.get_labelled("changedFields"), None);
    assert_eq!(record.get_labelled("previousValues"), None);
    let new = values(&record, "newValues");
    assert_eq!(new["hostname"], "ECG001");
    assert_eq!(new["open_ports"], "22");
}

#[test]
fn missing_value_is_json_null() {
    let event = changed(ecg(), vec![change("hostname", Some("ECG001"), None)]);
    let record = record_of(&encode(&event));
    assert_eq!(
        values(&record, "newValues")["hostname"],
        serde_json::Value::Null
    );
}

#[test]
fn exposed_device_raises_severity() {
    let cases: [(&str, DeviceEdit); 3] = [
        ("threat", |d| d.threat = Some(true)),
        ("spoofed", |d| d.spoofed = Some(true)),
        ("exploitable", |d| {
            if let Some(result) = d.portsafe_results.get_mut("22") {
                result.exploitable = Some(true);
            }
        }),
    ];
    for (case, edit) in cases {
        let mut device = ecg();
        edit(&mut device);
        let event = changed(device, vec![change("threat", Some("false"), Some("true"))]);
        assert_eq!(record_of(&encode(&event)).severity, "7", "{case}");
    }
    let plain = changed(ecg(), vec![change("name", Some("a"), Some("b"))]);
    assert_eq!(record_of(&encode(&plain)).severity, "5");
}

#[test]
fn hostile_change_values_parse_back() {
    let mut device = ecg();
    device.hostname = Some(HOSTILE.into());
    let event = changed(
        device,
        vec![change("hostname", Some(HOSTILE), Some("ECG001"))],
    );
    let line = encode(&event);
    assert!(!line.contains(['\r', '\n', '\0']), "{line:?}");
    let record = record_of(&line);
    assert_eq!(values(&record, "previousValues")["hostname"], HOSTILE);
    assert_eq!(record.get_labelled("changedFields"), Some("hostname"));
    assert_eq!(record.get("cs1"), Some("hostname"), "no forged cs1");
}

#[test]
fn long_change_values_fit_the_limit() {
    let long = "h".repeat(10 * 1024);
    let event = changed(
        ecg(),
        vec![
            change("hostname", Some(&long), Some("ECG001")),
            change("name", Some(&long), Some("ECG ward 3")),
        ],
    );
    for max_bytes in [480, 1024, 2048] {
        let (line, fitted) = encode_within(&event, max_bytes);
        assert!(line.len() <= max_bytes, "{} > {max_bytes}", line.len());
        assert_eq!(fitted, Fitted::Shortened, "{max_bytes}");
        let record = record_of(&line);
        assert_eq!(record.get_labelled("changedFields"), Some("hostname,name"));
        assert_eq!(record.get("dmac"), Some("00:40:17:6C:00:00"));
        assert_eq!(record.get("act"), Some("changed"));
    }
}
