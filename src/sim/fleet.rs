//! The generated fleet: a catalogue of device kinds, and the records
//! built from it, both for the fleet made at start and for devices that
//! appear later.

use rand::Rng;
use rand::rngs::StdRng;
use serde_json::Value;

use super::data::{DeviceSpec, SNMP_PROFILE};
use super::store::Store;

/// One entry of the generated fleet's device catalogue.
struct Kind {
    category: &'static str,
    device_type: &'static str,
    manufacturer: &'static str,
    model: &'static str,
    os_type: Option<&'static str>,
    prefix: &'static str,
    domains: &'static [&'static str],
    ports: &'static [(u16, &'static str, &'static str, bool)],
}

/// Device kinds of the generated fleet, assigned in turn so any fleet of
/// at least one device contains a "Logic Controller". No kind is an
/// Electrocardiogram, so the document's filtered example stays true.
const FLEET: [Kind; 6] = [
    Kind {
        category: "Industrial Control",
        device_type: "Logic Controller",
        manufacturer: "Siemens",
        model: "SIMATIC S7-1200",
        os_type: None,
        prefix: "PLC",
        domains: &["siemens.com"],
        ports: &[
            (102, "tcp", "iso-tsap", false),
            (502, "tcp", "modbus", true),
        ],
    },
    Kind {
        category: "Medical Device",
        device_type: "Patient Monitor",
        manufacturer: "Philips Healthcare",
        model: "IntelliVue MX450",
        os_type: Some("Linux"),
        prefix: "MON",
        domains: &["philips.com"],
        ports: &[(80, "tcp", "http", false), (443, "tcp", "https", false)],
    },
    Kind {
        category: "Medical Device",
        device_type: "Infusion Pump",
        manufacturer: "Baxter",
        model: "Sigma Spectrum",
        os_type: None,
        prefix: "PUMP",
        domains: &["baxter.com"],
        ports: &[(23, "tcp", "telnet", true)],
    },
    Kind {
        category: "Security",
        device_type: "IP Camera",
        manufacturer: "Hikvision",
        model: "DS-2CD2143G0",
        os_type: Some("Linux"),
        prefix: "CAM",
        domains: &["hik-connect.com"],
        ports: &[(80, "tcp", "http", false), (554, "tcp", "rtsp", false)],
    },
    Kind {
        category: "Building Automation",
        device_type: "HVAC Controller",
        manufacturer: "Johnson Controls",
        model: "Metasys NAE55",
        os_type: Some("Linux"),
        prefix: "HVAC",
        domains: &["johnsoncontrols.com"],
        ports: &[(47808, "udp", "bacnet", false)],
    },
    Kind {
        category: "Office Equipment",
        device_type: "Printer",
        manufacturer: "HP",
        model: "LaserJet M607",
        os_type: None,
        prefix: "PRN",
        domains: &["hp.com"],
        ports: &[
            (631, "tcp", "ipp", false),
            (9100, "tcp", "jetdirect", false),
        ],
    },
];

/// 2019-01-01T00:00:00Z and 2022-01-01T00:00:00Z: generated devices are
/// created between them, before the document's `created=1641013200`.
const FLEET_CREATED_FROM: i64 = 1_546_300_800;
const FLEET_CREATED_UNTIL: i64 = 1_640_995_200;

/// Fields of a generated record that depend on when and how it was made.
pub(crate) struct VaryingFields {
    pub created: i64,
    pub modified: i64,
    pub last_active: i64,
    pub threat: bool,
}

/// Builds a device of the fleet made at start: created between 2019
/// and 2022, modified since, active within the last hour, one in ten a
/// threat. `index` counts generated devices from 0 and picks the kind.
pub(crate) fn initial_device(rng: &mut StdRng, store: &Store, index: usize, now: i64) -> Value {
    let device_id = unused_mac(rng, store);
    let created = rng.random_range(FLEET_CREATED_FROM..FLEET_CREATED_UNTIL);
    let modified = rng.random_range(created..now.max(created + 1));
    let last_active = now - rng.random_range(0..3_600);
    let fields = VaryingFields {
        created,
        modified,
        last_active,
        threat: rng.random_bool(0.1),
    };
    device_record(index, device_id, &fields)
}

/// Builds a device that joins the network at `at` (epoch seconds):
/// created, modified and last active then, not a threat.
pub(crate) fn appearing_device(rng: &mut StdRng, store: &Store, index: usize, at: i64) -> Value {
    let device_id = unused_mac(rng, store);
    let fields = VaryingFields {
        created: at,
        modified: at,
        last_active: at,
        threat: false,
    };
    device_record(index, device_id, &fields)
}

/// Returns a random MAC address that no device in `store` has.
fn unused_mac(rng: &mut StdRng, store: &Store) -> String {
    loop {
        let mut bytes: [u8; 6] = rng.random();
        // A globally administered unicast address, as vendors assign.
        bytes[0] &= 0xFC;
        let mac = bytes
            .iter()
            .map(|byte| format!("{byte:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        if store.device(&mac).is_none() {
            return mac;
        }
    }
}

/// Builds the record of the `index`-th generated device, of kind
/// `FLEET[index % FLEET.len()]`, with a name, hostname and address
/// numbered after `index`.
fn device_record(index: usize, device_id: String, fields: &VaryingFields) -> Value {
    let kind = &FLEET[index % FLEET.len()];
    let number = index / FLEET.len() + 1;
    // 250 hosts per /24, so the third octet wraps after 64,000 devices.
    let third_octet = (index / 250) % 256;
    let spec = DeviceSpec {
        device_id,
        name: format!("{} {} {number}", kind.manufacturer, kind.model),
        hostname: format!("{}-{number:03}", kind.prefix),
        ip_address: format!("10.20.{third_octet}.{}", index % 250 + 2),
        category: kind.category,
        device_type: kind.device_type,
        manufacturer: kind.manufacturer,
        model: kind.model,
        os_type: kind.os_type,
        oui: kind.manufacturer,
        location: ["ICU", "ER Wifi", "Plant Floor", "Lobby"][index % 4],
        domains: kind.domains,
        ports: kind.ports,
        created: fields.created,
        modified: fields.modified,
        last_active: fields.last_active,
        threat: fields.threat,
    };
    let mut record = spec.record();
    record["snmp_profile"] = SNMP_PROFILE.into();
    record
}
