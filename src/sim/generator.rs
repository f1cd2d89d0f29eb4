//! The seeded generator that keeps the simulated organization alive:
//! new alerts, changes to open alerts, device up/down events, hostname
//! and threat flag changes, and new devices.
//!
//! Each kind of change arrives as a Poisson process (random exponential
//! gaps) with its own rate. Changes are applied in time order and stamped with
//! their own time, not with the time of the call that triggered them.
//! So the result depends on the seed and on how far the clock has moved,
//! but not on how often [`Generator::advance`] runs.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use super::devices::{self, DeviceRates};
use super::fleet;
use super::store::{Origin, Store, timeline_time};

/// Alerts kept in memory; beyond it the oldest closed ones are dropped.
pub(crate) const MAX_ALERTS: usize = 100_000;

/// Recent alerts the update process picks from. Older open alerts stay
/// open, as forgotten alerts do in a real console.
const UPDATE_WINDOW: usize = 256;

/// Mixed into the seed of the generator's second random stream, so the
/// two streams differ for every seed.
const DEVICE_STREAM: u64 = 0x9E37_79B9_7F4A_7C15;

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    NewAlert,
    UpdateAlert,
    DeviceStatus,
    Hostname,
    NewDevice,
    Threat,
}

impl Change {
    const ALL: [Change; 6] = [
        Change::NewAlert,
        Change::UpdateAlert,
        Change::DeviceStatus,
        Change::Hostname,
        Change::NewDevice,
        Change::Threat,
    ];

    /// Returns whether the change draws from the generator's second stream.
    fn uses_device_stream(self) -> bool {
        matches!(self, Change::Hostname | Change::NewDevice | Change::Threat)
    }
}

pub(crate) struct Generator {
    /// The stream of alerts and up/down events.
    rng: StdRng,
    /// The stream of hostname, new-device and threat changes. A stream
    /// of its own means these changes take no draws from the first one.
    device_rng: StdRng,
    /// Mean gap between new alerts in milliseconds; `None` when off.
    mean_gap_ms: Option<f64>,
    rates: DeviceRates,
    /// When each change of [`Change::ALL`] is next due, in epoch ms, or
    /// `i64::MAX` when it is off.
    next_ms: [i64; Change::ALL.len()],
    /// Generated devices so far, which numbers the next one.
    generated_devices: usize,
}

impl Generator {
    pub(crate) fn new(seed: u64, alerts_per_hour: f64, rates: DeviceRates, now_ms: i64) -> Self {
        let mean_gap_ms = (alerts_per_hour > 0.0 && alerts_per_hour.is_finite())
            .then(|| 3_600_000.0 / alerts_per_hour);
        let mut generator = Generator {
            rng: StdRng::seed_from_u64(seed),
            device_rng: StdRng::seed_from_u64(seed ^ DEVICE_STREAM),
            mean_gap_ms,
            rates,
            next_ms: [i64::MAX; Change::ALL.len()],
            generated_devices: 0,
        };
        for change in Change::ALL {
            generator.schedule(change, now_ms);
        }
        generator
    }

    /// Adds `count` generated devices to `store`, created before 2022.
    pub(crate) fn add_fleet(&mut self, store: &mut Store, count: usize, now: i64) {
        for _ in 0..count {
            let index = self.generated_devices;
            let record = fleet::initial_device(&mut self.rng, store, index, now);
            store.insert_device(record);
            self.generated_devices += 1;
        }
    }

    pub(crate) fn device_rates(&self) -> DeviceRates {
        self.rates
    }

    /// Replaces the device change rates and draws the next time of each
    /// device change afresh from `now_ms`.
    pub(crate) fn set_device_rates(&mut self, rates: DeviceRates, now_ms: i64) {
        self.rates = rates;
        for change in [
            Change::DeviceStatus,
            Change::Hostname,
            Change::NewDevice,
            Change::Threat,
        ] {
            self.schedule(change, now_ms);
        }
    }

    /// Applies every change due at or before `now_ms`, in time order.
    pub(crate) fn advance(&mut self, store: &mut Store, now_ms: i64) {
        while let Some((change, at_ms)) = self.next_due(now_ms) {
            match change {
                Change::NewAlert => self.new_alert(store, at_ms),
                Change::UpdateAlert => self.update_alert(store, at_ms),
                Change::DeviceStatus => devices::change_status(&mut self.rng, store, at_ms),
                Change::Hostname => devices::change_hostname(&mut self.device_rng, store, at_ms),
                Change::NewDevice => self.add_device(store, at_ms),
                Change::Threat => devices::change_threat(&mut self.device_rng, store, at_ms),
            }
            self.schedule(change, at_ms);
        }
        store.trim_alerts(MAX_ALERTS);
    }

    /// Returns the earliest change due at or before `now_ms`. On a tie,
    /// it returns the first in [`Change::ALL`].
    fn next_due(&self, now_ms: i64) -> Option<(Change, i64)> {
        Change::ALL
            .into_iter()
            .zip(self.next_ms)
            .filter(|&(_, at_ms)| at_ms <= now_ms)
            .min_by_key(|&(_, at_ms)| at_ms)
    }

    /// Returns the mean gap of `change` in milliseconds, or `None` when
    /// it is off. Updates come at half the rate of new alerts.
    fn mean_gap(&self, change: Change) -> Option<f64> {
        let per_hour = match change {
            Change::NewAlert => return self.mean_gap_ms,
            Change::UpdateAlert => return self.mean_gap_ms.map(|gap| gap * 2.0),
            Change::DeviceStatus => self.rates.status_changes_per_hour,
            Change::Hostname => self.rates.hostname_changes_per_hour,
            Change::NewDevice => self.rates.new_devices_per_hour,
            Change::Threat => self.rates.threat_changes_per_hour,
        };
        (per_hour > 0.0 && per_hour.is_finite()).then(|| 3_600_000.0 / per_hour)
    }

    /// Draws the next time of `change` after `from_ms`.
    fn schedule(&mut self, change: Change, from_ms: i64) {
        let slot = change as usize;
        let Some(mean) = self.mean_gap(change) else {
            self.next_ms[slot] = i64::MAX;
            return;
        };
        let rng = if change.uses_device_stream() {
            &mut self.device_rng
        } else {
            &mut self.rng
        };
        // Inverse transform of a uniform draw in (0, 1] gives an
        // exponential gap; at least 1 ms so time always moves on.
        let uniform = 1.0 - rng.random::<f64>();
        let gap_ms = (-uniform.ln() * mean).max(1.0) as i64;
        self.next_ms[slot] = from_ms.saturating_add(gap_ms);
    }

    /// Adds a device that joins the network at `at_ms`, with an "up"
    /// event in its timeline.
    fn add_device(&mut self, store: &mut Store, at_ms: i64) {
        let index = self.generated_devices;
        let at = at_ms.div_euclid(1_000);
        let record = fleet::appearing_device(&mut self.device_rng, store, index, at);
        let ip_address = record["ip_address"].clone();
        let Some(device_id) = store.insert_device(record) else {
            return;
        };
        self.generated_devices += 1;
        let event = json!({
            "created": timeline_time(at_ms),
            "device_id": device_id,
            "ip_address": ip_address,
            "status": "up",
        });
        store.push_event(&device_id, at_ms, Origin::Generator, event);
    }

    fn new_alert(&mut self, store: &mut Store, at_ms: i64) {
        let Some(device_id) = devices::random_device(&mut self.rng, store) else {
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
