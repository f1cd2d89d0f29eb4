//! The seeded generator that keeps the simulated organization alive:
//! new alerts, changes to open alerts, and device up/down events.
//!
//! Each of the three kinds of change arrives as a Poisson process (random
//! exponential gaps). Changes are applied in time order and stamped with
//! their own time, not with the time of the call that triggered them.
//! So the result depends on the seed and on how far the clock has moved,
//! but not on how often [`Generator::advance`] runs.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use super::data::{DeviceSpec, SNMP_PROFILE};
use super::store::{Store, timeline_time};

/// Alerts kept in memory; beyond it the oldest closed ones are dropped.
pub(crate) const MAX_ALERTS: usize = 100_000;

/// Recent alerts the update process picks from. Older open alerts stay
/// open, as forgotten alerts do in a real console.
const UPDATE_WINDOW: usize = 256;

/// A kind of alert, with the values its fields take.
pub(crate) struct AlertKind {
    pub category: &'static str,
    pub detail: &'static str,
    pub priorities: &'static [&'static str],
    /// Ports the alert can be about; empty when it is not about a port.
    pub ports: &'static [u16],
}

impl AlertKind {
    /// Builds the subject line for this kind of alert on the named device.
    pub(crate) fn subject(&self, port: Option<u16>, device_name: &str) -> String {
        match port {
            Some(port) => format!("{} on {device_name} (port {port})", self.detail),
            None => format!("{} on {device_name}", self.detail),
        }
    }
}

pub(crate) const ALERT_KINDS: [AlertKind; 6] = [
    AlertKind {
        category: "PortSafe",
        detail: "Exploitable port open",
        priorities: &["high", "medium"],
        ports: &[23, 443, 502, 3389],
    },
    AlertKind {
        category: "Spoofing",
        detail: "Device spoofing detected",
        priorities: &["critical", "high"],
        ports: &[],
    },
    AlertKind {
        category: "Network",
        detail: "New device on network",
        priorities: &["low", "medium"],
        ports: &[],
    },
    AlertKind {
        category: "Threat",
        detail: "Connection to malicious domain",
        priorities: &["critical", "high"],
        ports: &[53],
    },
    AlertKind {
        category: "PortSafe",
        detail: "Default credentials accepted",
        priorities: &["high", "medium"],
        ports: &[22, 23, 80],
    },
    AlertKind {
        category: "Policy",
        detail: "Unencrypted protocol in use",
        priorities: &["low", "medium"],
        ports: &[21, 23, 80, 161],
    },
];

const RESOLUTIONS: [&str; 4] = [
    "Resolved",
    "False positive",
    "Risk accepted",
    "Device blocked",
];

const PRIORITIES: [&str; 4] = ["low", "medium", "high", "critical"];

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    NewAlert,
    UpdateAlert,
    DeviceEvent,
}

pub(crate) struct Generator {
    rng: StdRng,
    /// Mean gap between new alerts in milliseconds; `None` when off.
    mean_gap_ms: Option<f64>,
    next_new_ms: i64,
    next_update_ms: i64,
    next_device_ms: i64,
}

impl Generator {
    pub(crate) fn new(seed: u64, alerts_per_hour: f64, now_ms: i64) -> Self {
        let mean_gap_ms = (alerts_per_hour > 0.0 && alerts_per_hour.is_finite())
            .then(|| 3_600_000.0 / alerts_per_hour);
        let mut generator = Generator {
            rng: StdRng::seed_from_u64(seed),
            mean_gap_ms,
            next_new_ms: i64::MAX,
            next_update_ms: i64::MAX,
            next_device_ms: i64::MAX,
        };
        for change in [Change::NewAlert, Change::UpdateAlert, Change::DeviceEvent] {
            generator.schedule(change, now_ms);
        }
        generator
    }

    /// Adds `count` generated devices to `store`, created before 2022.
    pub(crate) fn add_fleet(&mut self, store: &mut Store, count: usize, now: i64) {
        for index in 0..count {
            let kind = &FLEET[index % FLEET.len()];
            let device_id = self.unused_mac(store);
            let record = self.fleet_device(kind, index, device_id, now);
            store.insert_device(record);
        }
    }

    fn unused_mac(&mut self, store: &Store) -> String {
        loop {
            let mut bytes: [u8; 6] = self.rng.random();
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

    fn fleet_device(&mut self, kind: &Kind, index: usize, id: String, now: i64) -> Value {
        let created = self
            .rng
            .random_range(FLEET_CREATED_FROM..FLEET_CREATED_UNTIL);
        let modified = self.rng.random_range(created..now.max(created + 1));
        let last_active = now - self.rng.random_range(0..3_600);
        let number = index / FLEET.len() + 1;
        let spec = DeviceSpec {
            device_id: id,
            name: format!("{} {} {number}", kind.manufacturer, kind.model),
            hostname: format!("{}-{number:03}", kind.prefix),
            ip_address: format!("10.20.{}.{}", index / 250, index % 250 + 2),
            category: kind.category,
            device_type: kind.device_type,
            manufacturer: kind.manufacturer,
            model: kind.model,
            os_type: kind.os_type,
            oui: kind.manufacturer,
            location: ["ICU", "ER Wifi", "Plant Floor", "Lobby"][index % 4],
            domains: kind.domains,
            ports: kind.ports,
            created,
            modified,
            last_active,
            threat: self.rng.random_bool(0.1),
        };
        let mut record = spec.record();
        record["snmp_profile"] = SNMP_PROFILE.into();
        record
    }

    /// Applies every change due at or before `now_ms`, in time order.
    pub(crate) fn advance(&mut self, store: &mut Store, now_ms: i64) {
        while let Some((change, at_ms)) = self.next_due(now_ms) {
            match change {
                Change::NewAlert => self.new_alert(store, at_ms),
                Change::UpdateAlert => self.update_alert(store, at_ms),
                Change::DeviceEvent => self.device_event(store, at_ms),
            }
            self.schedule(change, at_ms);
        }
        store.trim_alerts(MAX_ALERTS);
    }

    fn next_due(&self, now_ms: i64) -> Option<(Change, i64)> {
        [
            (Change::NewAlert, self.next_new_ms),
            (Change::UpdateAlert, self.next_update_ms),
            (Change::DeviceEvent, self.next_device_ms),
        ]
        .into_iter()
        .filter(|&(_, at_ms)| at_ms <= now_ms)
        .min_by_key(|&(_, at_ms)| at_ms)
    }

    /// Draws the next time of `change` after `from_ms`. Updates come at
    /// half the rate of new alerts, device events at the same rate.
    fn schedule(&mut self, change: Change, from_ms: i64) {
        let Some(mean_gap_ms) = self.mean_gap_ms else {
            return;
        };
        let mean = match change {
            Change::UpdateAlert => mean_gap_ms * 2.0,
            Change::NewAlert | Change::DeviceEvent => mean_gap_ms,
        };
        // Inverse transform of a uniform draw in (0, 1] gives an
        // exponential gap; at least 1 ms so time always moves on.
        let uniform = 1.0 - self.rng.random::<f64>();
        let gap_ms = (-uniform.ln() * mean).max(1.0) as i64;
        let next = from_ms.saturating_add(gap_ms);
        match change {
            Change::NewAlert => self.next_new_ms = next,
            Change::UpdateAlert => self.next_update_ms = next,
            Change::DeviceEvent => self.next_device_ms = next,
        }
    }

    fn random_device(&mut self, store: &Store) -> Option<String> {
        let count = store.device_count();
        if count == 0 {
            return None;
        }
        store.device_id_at(self.rng.random_range(0..count))
    }

    fn new_alert(&mut self, store: &mut Store, at_ms: i64) {
        let Some(device_id) = self.random_device(store) else {
            return;
        };
        let name = store
            .device(&device_id)
            .and_then(|device| device["name"].as_str())
            .unwrap_or(&device_id)
            .to_owned();
        let kind = &ALERT_KINDS[self.rng.random_range(0..ALERT_KINDS.len())];
        let port = kind.ports.choose(&mut self.rng).copied();
        let priority = kind.priorities.choose(&mut self.rng).copied();
        let at = at_ms.div_euclid(1_000);
        let id = store.allocate_alert_id();
        store.insert_alert(json!({
            "alert_id": id,
            "category": kind.category,
            "category_detail": kind.detail,
            "created": at,
            "device_id": device_id,
            "modified": at,
            "port": port,
            "priority": priority,
            "resolution": null,
            "status": "open",
            "subject": kind.subject(port, &name),
        }));
    }

    fn update_alert(&mut self, store: &mut Store, at_ms: i64) {
        let candidates: Vec<String> = store
            .alerts()
            .rev()
            .take(UPDATE_WINDOW)
            // Only objects: a test may store any JSON as an alert, and
            // indexing to assign into a non-object would panic.
            .filter(|(_, record)| record.is_object() && record["status"] != "closed")
            .map(|(id, _)| id.to_owned())
            .collect();
        let Some(id) = candidates.choose(&mut self.rng).cloned() else {
            return;
        };
        let roll = self.rng.random_range(0..10);
        let resolution = *RESOLUTIONS.choose(&mut self.rng).unwrap_or(&"Resolved");
        let Some(record) = store.alert_mut(&id) else {
            return;
        };
        let open = record["status"] == "open";
        match roll {
            0..=4 if open => record["status"] = "acknowledged".into(),
            0..=7 => {
                record["status"] = "closed".into();
                record["resolution"] = resolution.into();
            }
            _ => escalate(record),
        }
        record["modified"] = at_ms.div_euclid(1_000).into();
    }

    /// Flips a random device up or down and records the event in its
    /// timeline. One in five returns comes with a new IP address, which
    /// changes the record and so its `modified`.
    fn device_event(&mut self, store: &mut Store, at_ms: i64) {
        let Some(device_id) = self.random_device(store) else {
            return;
        };
        let going_down = self.rng.random_bool(0.5);
        let new_ip = !going_down && self.rng.random_bool(0.2);
        let third_octet = self.rng.random_range(0..=255);
        let fourth_octet = self.rng.random_range(2..=254);
        let at = at_ms.div_euclid(1_000);
        let Some(record) = store.device_mut(&device_id).filter(|r| r.is_object()) else {
            return;
        };
        if new_ip {
            let ip = format!("10.30.{third_octet}.{fourth_octet}");
            record["ip_address"] = ip.into();
            record["modified"] = at.into();
        }
        if !going_down {
            record["last_active"] = at.into();
        }
        let ip_address = record["ip_address"].clone();
        let status = if going_down { "down" } else { "up" };
        let event = json!({
            "created": timeline_time(at_ms),
            "device_id": device_id,
            "ip_address": ip_address,
            "status": status,
        });
        store.push_event(&device_id, at_ms, None, event);
    }
}

/// Raises an alert's priority one step, up to critical.
fn escalate(record: &mut Value) {
    let current = PRIORITIES
        .iter()
        .position(|&priority| record["priority"] == priority)
        .unwrap_or(0);
    let next = PRIORITIES[(current + 1).min(PRIORITIES.len() - 1)];
    record["priority"] = next.into();
}
