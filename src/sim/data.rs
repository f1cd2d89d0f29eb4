//! The simulator's built-in records: every record the API document shows,
//! and plausible records for the ids it names without showing them.
//!
//! The document lists five device ids, shows the full record of
//! `00:40:17:6C:00:00`, names alerts `900451` and `900464`, counts 87
//! alerts, and shows one timeline event. The records it does not show are
//! made up here so that its examples stay true, except for one case the
//! document contradicts itself on (see [`devices`]).

use serde_json::{Value, json};

/// The account name in the document's `getAPIKey` sample.
pub(crate) const ACCOUNT_NAME: &str = "Demo Company";

/// The SNMP profile the document's device record uses.
pub(crate) const SNMP_PROFILE: &str = "IoT Secure AutoDetect";

/// Id of the first built-in alert. The 85 old alerts run from here up to
/// 900450, so with 900451 and 900464 there are 87, as `countAlerts` shows.
pub(crate) const FIRST_ALERT_ID: u64 = 900_366;

/// The newest alert id in the document; new alerts count up from here.
pub(crate) const LAST_DOC_ALERT_ID: u64 = 900_464;

/// The number of old built-in alerts modified within the last day (of
/// the simulator's clock at model creation) but more than an hour ago.
pub(crate) const RECENT_OLD_ALERTS: usize = 5;

const OLD_ALERTS: usize = 85;
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

/// Returns the full record of `00:40:17:6C:00:00`, exactly as the document's
/// `getDevice` sample shows it.
pub(crate) fn doc_device() -> Value {
    json!({
        "blocked": false,
        "category": "Medical Device",
        "created": 1_498_767_515,
        "device_id": "00:40:17:6C:00:00",
        "domains": ["ge.com", "gehealth.com"],
        "excluded": false,
        "hostname": "ECG001",
        "ip_address": "192.168.121.15",
        "last_active": 1_550_716_545,
        "location": "ER Wifi",
        "manufacturer": "GE Healthcare",
        "model": "Resting ECG",
        "model_family": "MAC",
        "model_number": null,
        "modified": 1_550_637_634,
        "name": "GE Healthcare Resting ECG",
        "os_build": null,
        "os_manufacturer": null,
        "os_servicepack": null,
        "os_type": "Linux",
        "os_version_major": null,
        "os_version_minor": null,
        "oui": "Silex Technology America",
        "portsafe_inspection": {
            "last_auto_inspection": 1_550_370_986,
            "last_user_inspection": 1_550_434_500
        },
        "portsafe_results": {
            "22": port("open", "tcp", "ssh", false),
            "23": port("open", "tcp", "telnet", false),
            "80": port("open", "tcp", "http", false),
            "443": {
                "status": "open",
                "protocol": "tcp",
                "service": "http",
                "certificate": "Subject:commonName=GE-ECG/countryName=GB;;\
                    Issuer:commonName=GE-ECG/countryName=GB;;\
                    Signature Algorithm:sha256WithRSAEncryption",
                "exploitable": true
            },
            "161": port("open", "udp", "snmp", false)
        },
        "smart_blocked": false,
        "snmp_profile": SNMP_PROFILE,
        "spoofed": true,
        "threat": false,
        "type": "Electrocardiogram"
    })
}

/// Builds one PortSafe result without a certificate.
pub(crate) fn port(status: &str, protocol: &str, service: &str, exploitable: bool) -> Value {
    json!({
        "status": status,
        "protocol": protocol,
        "service": service,
        "exploitable": exploitable
    })
}

/// The fields of a device record that vary between devices; the rest
/// are filled in by [`DeviceSpec::record`].
pub(crate) struct DeviceSpec<'a> {
    pub device_id: String,
    pub name: String,
    pub hostname: String,
    pub ip_address: String,
    pub category: &'a str,
    pub device_type: &'a str,
    pub manufacturer: &'a str,
    pub model: &'a str,
    pub os_type: Option<&'a str>,
    pub oui: &'a str,
    pub location: &'a str,
    pub domains: &'a [&'a str],
    /// Open ports as (port, protocol, service, exploitable).
    pub ports: &'a [(u16, &'a str, &'a str, bool)],
    pub created: i64,
    pub modified: i64,
    pub last_active: i64,
    pub threat: bool,
}

impl DeviceSpec<'_> {
    /// Builds a record with every field of the document's sample.
    pub(crate) fn record(&self) -> Value {
        let mut results = serde_json::Map::new();
        for (number, protocol, service, exploitable) in self.ports {
            let result = port("open", protocol, service, *exploitable);
            results.insert(number.to_string(), result);
        }
        json!({
            "blocked": false,
            "category": self.category,
            "created": self.created,
            "device_id": self.device_id,
            "domains": self.domains,
            "excluded": false,
            "hostname": self.hostname,
            "ip_address": self.ip_address,
            "last_active": self.last_active,
            "location": self.location,
            "manufacturer": self.manufacturer,
            "model": self.model,
            "model_family": null,
            "model_number": null,
            "modified": self.modified,
            "name": self.name,
            "os_build": null,
            "os_manufacturer": null,
            "os_servicepack": null,
            "os_type": self.os_type,
            "os_version_major": null,
            "os_version_minor": null,
            "oui": self.oui,
            "portsafe_inspection": {
                "last_auto_inspection": self.modified,
                "last_user_inspection": null
            },
            "portsafe_results": results,
            "smart_blocked": false,
            "snmp_profile": SNMP_PROFILE,
            "spoofed": false,
            "threat": self.threat,
            "type": self.device_type
        })
    }
}

/// The five devices of the document, in the order its `listDevices`
/// samples list them.
///
/// NOTE: the document lists `00:40:17:6C:00:00` among the devices
/// "created after January 1, 2022" (`created=1641013200`), yet its own
/// record gives `created: 1498767515` (2017-06-29). The record is kept
/// verbatim and the filter stays honest, so that example returns the
/// other four only. The `type=Electrocardiogram` example holds as shown.
pub(crate) fn devices() -> Vec<Value> {
    let mut records: Vec<Value> = other_doc_devices().iter().map(DeviceSpec::record).collect();
    records.push(doc_device());
    records
}

/// Builds the four devices the document names without showing a record, all
/// created after 2022-01-01. The first two are electrocardiographs, as
/// the `type=Electrocardiogram` sample implies.
///
/// NOTE: the `oui` vendor names are plausible, not checked against the
/// IEEE registry.
fn other_doc_devices() -> [DeviceSpec<'static>; 4] {
    const ECG_PORTS: &[(u16, &str, &str, bool)] =
        &[(80, "tcp", "http", false), (443, "tcp", "https", false)];
    [
        DeviceSpec {
            device_id: "00:01:3E:02:00:00".into(),
            name: "Philips PageWriter TC50".into(),
            hostname: "ECG002".into(),
            ip_address: "192.168.121.22".into(),
            category: "Medical Device",
            device_type: "Electrocardiogram",
            manufacturer: "Philips Healthcare",
            model: "PageWriter TC50",
            os_type: Some("Windows"),
            oui: "Ascom Tateco AB",
            location: "Cardiology",
            domains: &["philips.com"],
            ports: ECG_PORTS,
            created: 1_643_702_400,
            modified: 1_672_531_200,
            last_active: 1_672_617_600,
            threat: false,
        },
        DeviceSpec {
            device_id: "04:79:70:20:00:00".into(),
            name: "Mortara ELI 380".into(),
            hostname: "ECG003".into(),
            ip_address: "192.168.121.23".into(),
            category: "Medical Device",
            device_type: "Electrocardiogram",
            manufacturer: "Mortara Instrument",
            model: "ELI 380",
            os_type: Some("Linux"),
            oui: "Huawei Technologies",
            location: "ER Wifi",
            domains: &["mortara.com", "hillrom.com"],
            ports: ECG_PORTS,
            created: 1_654_041_600,
            modified: 1_680_307_200,
            last_active: 1_680_393_600,
            threat: true,
        },
        DeviceSpec {
            device_id: "08:F4:AB:57:00:00".into(),
            name: "Axis P3245 Camera".into(),
            hostname: "CAM-LOBBY-01".into(),
            ip_address: "192.168.130.41".into(),
            category: "Security",
            device_type: "IP Camera",
            manufacturer: "Axis Communications",
            model: "P3245",
            os_type: Some("Linux"),
            oui: "Apple",
            location: "Lobby",
            domains: &["axis.com"],
            ports: &[(80, "tcp", "http", false), (554, "tcp", "rtsp", false)],
            created: 1_664_582_400,
            modified: 1_688_169_600,
            last_active: 1_688_256_000,
            threat: false,
        },
        DeviceSpec {
            device_id: "10:D0:7A:C2:00:00".into(),
            name: "Alaris Infusion Pump 8015".into(),
            hostname: "PUMP-ICU-07".into(),
            ip_address: "192.168.122.57".into(),
            category: "Medical Device",
            device_type: "Infusion Pump",
            manufacturer: "BD",
            model: "Alaris 8015",
            os_type: None,
            oui: "AMPAK Technology",
            location: "ICU",
            domains: &["bd.com"],
            ports: &[(23, "tcp", "telnet", true)],
            created: 1_675_209_600,
            modified: 1_696_118_400,
            last_active: 1_696_204_800,
            threat: true,
        },
    ]
}

/// Returns the document's only timeline sample, with the key it appears under.
pub(crate) fn doc_timeline_event() -> (&'static str, Value) {
    let event = json!({
        "created": "2019-01-15T20:10:00.000Z",
        "device_id": "00:40:17:6C:00:00",
        "ip_address": "192.168.121.15",
        "status": "up"
    });
    ("prtsafe_inspection", event)
}

/// Returns the SNMP profile the document's device record names. The document
/// lists its fields but shows no values, so these are typical SNMP v2c
/// defaults.
pub(crate) fn snmp_profile() -> Value {
    json!({
        "community": "public",
        "connection_attempts": 3,
        "connection_timeout": 5,
        "created": 1_498_767_515,
        "created_by": "IoT Secure",
        "default": true,
        "modified": 1_498_767_515,
        "modified_by": "IoT Secure",
        "port": 161,
        "snmp_profile": SNMP_PROFILE,
        "version": "2c"
    })
}

/// Builds the 87 built-in alerts, oldest first, with times relative to `now`
/// (epoch seconds), so a forwarder started at any time receives the same
/// mix:
///
/// - 80 alerts modified between about 400 and 10 days ago, mostly closed;
/// - [`RECENT_OLD_ALERTS`] alerts (900446 to 900450) modified between 20
///   and 4 hours ago, open;
/// - 900451 and 900464, the document's ids, modified 40 and 10 minutes
///   ago, so a freshly started forwarder receives them at once.
pub(crate) fn alerts(now: i64) -> Vec<Value> {
    let mut alerts: Vec<Value> = (0..OLD_ALERTS).map(|i| old_alert(i, now)).collect();
    alerts.push(json!({
        "alert_id": "900451",
        "category": "PortSafe",
        "category_detail": "Exploitable port open",
        "created": now - 50 * 60,
        "device_id": "00:40:17:6C:00:00",
        "modified": now - 40 * 60,
        "port": 443,
        "priority": "high",
        "resolution": null,
        "status": "open",
        "subject": "Exploitable port 443/tcp open on GE Healthcare Resting ECG"
    }));
    alerts.push(json!({
        "alert_id": LAST_DOC_ALERT_ID.to_string(),
        "category": "Spoofing",
        "category_detail": "Device spoofing detected",
        "created": now - 20 * 60,
        "device_id": "00:40:17:6C:00:00",
        "modified": now - 10 * 60,
        "port": null,
        "priority": "critical",
        "resolution": null,
        "status": "acknowledged",
        "subject": "Device spoofing detected on GE Healthcare Resting ECG"
    }));
    alerts
}

/// The `index`-th old alert. Its fields cycle through fixed tables, so
/// the built-in data does not depend on the generator's seed.
fn old_alert(index: usize, now: i64) -> Value {
    const DEVICES: [(&str, &str); 5] = [
        ("00:01:3E:02:00:00", "Philips PageWriter TC50"),
        ("04:79:70:20:00:00", "Mortara ELI 380"),
        ("08:F4:AB:57:00:00", "Axis P3245 Camera"),
        ("10:D0:7A:C2:00:00", "Alaris Infusion Pump 8015"),
        ("00:40:17:6C:00:00", "GE Healthcare Resting ECG"),
    ];
    const RESOLUTIONS: [&str; 3] = ["Resolved", "False positive", "Risk accepted"];
    let recent = index >= OLD_ALERTS - RECENT_OLD_ALERTS;
    let (created, modified) = if recent {
        let hours_ago = 4 * (OLD_ALERTS - index) as i64;
        (now - hours_ago * HOUR - HOUR, now - hours_ago * HOUR)
    } else {
        let created = now - 400 * DAY + index as i64 * 118 * HOUR;
        (created, created + (1 + index as i64 % 48) * HOUR)
    };
    let kind = &super::generator::ALERT_KINDS[index % 4];
    let port = kind.ports.get(index % 3).copied();
    let status = match (recent, index % 10) {
        (true, _) => "open",
        (false, 0) => "acknowledged",
        _ => "closed",
    };
    let resolution = (status == "closed").then(|| RESOLUTIONS[index % 3]);
    let (device_id, device_name) = DEVICES[index % DEVICES.len()];
    json!({
        "alert_id": (FIRST_ALERT_ID + index as u64).to_string(),
        "category": kind.category,
        "category_detail": kind.detail,
        "created": created,
        "device_id": device_id,
        "modified": modified,
        "port": port,
        "priority": kind.priorities[index % kind.priorities.len()],
        "resolution": resolution,
        "status": status,
        "subject": kind.subject(port, device_name),
    })
}
