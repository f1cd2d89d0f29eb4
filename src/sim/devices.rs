//! Changes the generator makes to devices: up/down events (sometimes
//! with a new IP address), hostname changes, and threat flag changes.
//! Every change to a device record sets its `modified`, so
//! `listDevices modified=T` finds the device, as the real API would.

use rand::Rng;
use rand::rngs::StdRng;
use serde_json::json;

use super::store::{Origin, Store, timeline_time};

/// Rates of the generator's device changes, each a Poisson process
/// across the whole fleet, in changes per hour. A rate of 0, a negative
/// rate or one that is not finite turns that change off.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DeviceRates {
    /// Up/down events. One in five returns brings a new IP address.
    pub status_changes_per_hour: f64,
    pub hostname_changes_per_hour: f64,
    /// Devices that join the network, with a new MAC address.
    pub new_devices_per_hour: f64,
    /// Flips of `threat`. Some flips also flip `spoofed` or `blocked`.
    pub threat_changes_per_hour: f64,
}

impl DeviceRates {
    /// No device changes at all.
    pub const OFF: DeviceRates = DeviceRates {
        status_changes_per_hour: 0.0,
        hostname_changes_per_hour: 0.0,
        new_devices_per_hour: 0.0,
        threat_changes_per_hour: 0.0,
    };

    /// Returns the default rates for a generator that makes
    /// `alerts_per_hour` new alerts: up/down events at the alert rate,
    /// threat changes at 1/60 of it, hostname changes at 1/120 and new
    /// devices at 1/240. At 60 alerts per hour that is one threat change
    /// an hour and six new devices a day. An alert rate of 0 turns all
    /// of them off.
    pub fn scaled_to(alerts_per_hour: f64) -> Self {
        DeviceRates {
            status_changes_per_hour: alerts_per_hour,
            hostname_changes_per_hour: alerts_per_hour / 120.0,
            new_devices_per_hour: alerts_per_hour / 240.0,
            threat_changes_per_hour: alerts_per_hour / 60.0,
        }
    }
}

/// Returns the id of a device picked uniformly, or `None` when the
/// fleet is empty.
pub(crate) fn random_device(rng: &mut StdRng, store: &Store) -> Option<String> {
    let count = store.device_count();
    if count == 0 {
        return None;
    }
    store.device_id_at(rng.random_range(0..count))
}

/// Flips a random device up or down and records the event in its
/// timeline. One in five returns comes with a new IP address, which
/// changes the record and so its `modified`.
pub(crate) fn change_status(rng: &mut StdRng, store: &mut Store, at_ms: i64) {
    let Some(device_id) = random_device(rng, store) else {
        return;
    };
    let going_down = rng.random_bool(0.5);
    let new_ip = !going_down && rng.random_bool(0.2);
    let third_octet = rng.random_range(0..=255);
    let fourth_octet = rng.random_range(2..=254);
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
    store.push_event(&device_id, at_ms, Origin::Generator, event);
}

/// Gives a random device a new hostname: the old one up to its first
/// `-`, then `-` and four random hex digits, as DHCP clients and
/// renamed hosts often show (`PLC-001` becomes `PLC-3F2A`).
pub(crate) fn change_hostname(rng: &mut StdRng, store: &mut Store, at_ms: i64) {
    let Some(device_id) = random_device(rng, store) else {
        return;
    };
    let suffix: u16 = rng.random();
    let Some(record) = store.device_mut(&device_id).filter(|r| r.is_object()) else {
        return;
    };
    let old = record["hostname"].as_str().unwrap_or("HOST");
    let stem = old.split('-').next().filter(|s| !s.is_empty());
    let mut hostname = format!("{}-{suffix:04X}", stem.unwrap_or("HOST"));
    if hostname == old {
        // A change must change something, so flip the last bit instead.
        hostname = format!("{}-{:04X}", stem.unwrap_or("HOST"), suffix ^ 1);
    }
    record["hostname"] = hostname.into();
    record["modified"] = at_ms.div_euclid(1_000).into();
}

/// Flips the `threat` flag of a random device. One flip in five also
/// flips `spoofed` and one in ten flips `blocked`.
pub(crate) fn change_threat(rng: &mut StdRng, store: &mut Store, at_ms: i64) {
    let Some(device_id) = random_device(rng, store) else {
        return;
    };
    let flip_spoofed = rng.random_bool(0.2);
    let flip_blocked = rng.random_bool(0.1);
    let Some(record) = store.device_mut(&device_id).filter(|r| r.is_object()) else {
        return;
    };
    let mut flip = |field: &str| {
        let set = record[field].as_bool().unwrap_or(false);
        record[field] = (!set).into();
    };
    flip("threat");
    if flip_spoofed {
        flip("spoofed");
    }
    if flip_blocked {
        flip("blocked");
    }
    record["modified"] = at_ms.div_euclid(1_000).into();
}
