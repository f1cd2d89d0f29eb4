//! The simulator's device dynamics and timeline shapes: hostname,
//! threat and status changes that bump `modified`, devices that join
//! the network, fleet size, determinism by seed, and each shape of the
//! `getDeviceTimeline` reply.

use std::collections::BTreeMap;

use iotsecure_forwarder::clock::Clock;
use iotsecure_forwarder::sim::{DeviceRates, Model, SimSettings, TimelineShape};
use serde_json::{Value, json};

/// 2024-03-10T12:00:00Z.
const NOON: i64 = 1_710_072_000;
const HOUR_MS: i64 = 3_600_000;
const DOC_DEVICE: &str = "00:40:17:6C:00:00";

fn call(model: &Model, query: &str) -> (u16, Value) {
    let response = model.handle(&format!("apikey=sim-key&{query}"));
    let body = serde_json::from_str(&response.body).expect("body is JSON");
    (response.status, body)
}

fn list_devices(model: &Model, query: &str) -> Vec<String> {
    let (status, body) = call(
        model,
        &format!("module=IoTSecurity&action=listDevices{query}"),
    );
    assert_eq!(status, 200, "{body}");
    body["devices"]
        .as_array()
        .expect("device list")
        .iter()
        .map(|id| id.as_str().expect("id is a string").to_owned())
        .collect()
}

fn timeline(model: &Model, device_id: &str, hours: i64) -> Value {
    let query =
        format!("module=IoTSecurity&action=getDeviceTimeline&device_id={device_id}&hours={hours}");
    let (status, body) = call(model, &query);
    assert_eq!(status, 200, "{body}");
    body
}

/// Builds a model at noon whose only device changes are `rates`.
fn model_with(rates: DeviceRates) -> (Model, Clock) {
    let clock = Clock::manual(NOON * 1_000);
    let model = Model::new(SimSettings {
        device_rates: Some(rates),
        ..SimSettings::new(clock.clone())
    });
    (model, clock)
}

fn only_hostnames(per_hour: f64) -> DeviceRates {
    DeviceRates {
        hostname_changes_per_hour: per_hour,
        ..DeviceRates::OFF
    }
}

fn records(model: &Model) -> BTreeMap<String, Value> {
    model
        .device_ids()
        .into_iter()
        .map(|id| {
            let record = model.device(&id).expect("listed device exists");
            (id, record)
        })
        .collect()
}

#[test]
fn hostname_changes_bump_modified() {
    let (model, clock) = model_with(only_hostnames(30.0));
    let before = records(&model);
    clock.advance_ms(HOUR_MS);
    let changed = list_devices(&model, &format!("&modified={NOON}"));
    // 30 expected in the hour; a Poisson count is at least 10 here.
    assert!(changed.len() >= 10, "{} devices changed", changed.len());
    for id in &changed {
        let device = model.device(id).expect("device");
        let modified = device["modified"].as_i64().expect("modified");
        assert!(
            modified > NOON && modified <= NOON + 3_600,
            "{id}: {modified}"
        );
        assert_ne!(device["hostname"], before[id]["hostname"], "{id}");
    }
    for (id, old) in &before {
        if !changed.contains(id) {
            assert_eq!(&model.device(id).expect("device"), old, "{id}");
        }
    }
}

#[test]
fn threat_changes_show_in_threat_filter() {
    let rates = DeviceRates {
        threat_changes_per_hour: 30.0,
        ..DeviceRates::OFF
    };
    let (model, clock) = model_with(rates);
    let before = records(&model);
    clock.advance_ms(HOUR_MS);
    let changed = list_devices(&model, &format!("&modified={NOON}"));
    assert!(!changed.is_empty());
    let flipped = changed
        .iter()
        .filter(|id| model.device(id).expect("device")["threat"] != before[*id]["threat"])
        .count();
    assert!(flipped > 0);
    let threats = list_devices(&model, "&threat=true");
    for id in &threats {
        assert_eq!(model.device(id).expect("device")["threat"], true, "{id}");
    }
}

#[test]
fn status_changes_fill_timelines() {
    let rates = DeviceRates {
        status_changes_per_hour: 600.0,
        ..DeviceRates::OFF
    };
    let (model, clock) = model_with(rates);
    clock.advance_ms(HOUR_MS);
    model.advance();
    let events: usize = model
        .device_ids()
        .iter()
        .map(|id| {
            let body = timeline(&model, id, 1);
            body.as_object().expect("object of events").len()
        })
        .sum();
    // 600 expected in the hour, plus any seeded event under an hour old.
    assert!((450..=800).contains(&events), "{events} events");
}

#[test]
fn new_device_appears_in_list_devices() {
    let rates = DeviceRates {
        new_devices_per_hour: 6.0,
        ..DeviceRates::OFF
    };
    let (model, clock) = model_with(rates);
    let before = list_devices(&model, "");
    assert_eq!(before.len(), 55);

    clock.advance_ms(4 * HOUR_MS);
    let after = list_devices(&model, "");
    assert!(after.len() > before.len());
    assert_eq!(after[..before.len()], before[..]);
    let created_since = list_devices(&model, &format!("&created={NOON}"));
    assert_eq!(created_since, after[before.len()..]);

    let doc_fields: Vec<String> = model
        .device(DOC_DEVICE)
        .expect("document device")
        .as_object()
        .expect("record")
        .keys()
        .cloned()
        .collect();
    for id in &after[before.len()..] {
        let query = format!("module=IoTSecurity&action=getDevice&device_id={id}");
        let (status, device) = call(&model, &query);
        assert_eq!(status, 200);

        let created = device["created"].as_i64().expect("created");
        assert!(created > NOON, "{id} created at {created}");
        assert!(created <= NOON + 4 * 3_600, "{id} created at {created}");
        assert_eq!(device["modified"], created);
        assert_eq!(device["last_active"], created);
        for field in &doc_fields {
            assert!(device.get(field).is_some(), "{id} lacks {field}");
        }

        let events = timeline(&model, id, 4);
        let events = events.as_object().expect("object of events");
        assert_eq!(events.len(), 1, "{id}");
        assert!(events.values().all(|event| event["status"] == "up"));
    }
}

#[test]
fn fleet_size_sets_total_devices() {
    let clock = Clock::manual(NOON * 1_000);
    let model = Model::new(SimSettings {
        fleet_size: Some(5_000),
        ..SimSettings::new(clock)
    });
    let ids = list_devices(&model, "");
    assert_eq!(ids.len(), 5_000);
    assert_eq!(ids[4], DOC_DEVICE);
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), 5_000);
    let small = Model::new(SimSettings {
        fleet_size: Some(2),
        ..SimSettings::new(Clock::manual(NOON * 1_000))
    });
    assert_eq!(small.device_ids().len(), 5);
}

/// A week of a 5,000-device fleet at the default rates, in hourly steps
/// of virtual time, as an Enterprise week test would run it.
#[test]
#[expect(
    clippy::disallowed_methods,
    reason = "the wall time of the run itself, not the simulated time"
)]
fn large_fleet_runs_a_week() {
    let clock = Clock::manual(NOON * 1_000);
    let model = Model::new(SimSettings {
        fleet_size: Some(5_000),
        ..SimSettings::new(clock.clone())
    });
    let started = std::time::Instant::now();
    for _ in 0..7 * 24 {
        clock.advance_ms(HOUR_MS);
        model.advance();
    }
    let elapsed = started.elapsed();
    let ids = list_devices(&model, "");
    // About six new devices a day at the default rates.
    assert!(
        (5_020..=5_070).contains(&ids.len()),
        "{} devices",
        ids.len()
    );
    let week_ago = NOON;
    let changed = list_devices(&model, &format!("&modified={week_ago}"));
    assert!(changed.len() > 100, "{} changed", changed.len());
    // A guard against work that grows with the square of the fleet or
    // of the events, not a benchmark: the bound is loose on purpose.
    assert!(elapsed.as_secs() < 120, "a simulated week took {elapsed:?}");
    println!("a simulated week of 5,000 devices took {elapsed:?}");
}

fn run_devices(seed: u64, step_ms: i64) -> BTreeMap<String, Value> {
    let clock = Clock::manual(NOON * 1_000);
    let rates = DeviceRates {
        status_changes_per_hour: 60.0,
        hostname_changes_per_hour: 10.0,
        new_devices_per_hour: 2.0,
        threat_changes_per_hour: 10.0,
    };
    let model = Model::new(SimSettings {
        seed,
        device_rates: Some(rates),
        ..SimSettings::new(clock.clone())
    });
    for _ in 0..(6 * HOUR_MS / step_ms) {
        clock.advance_ms(step_ms);
        model.advance();
    }
    records(&model)
}

#[test]
fn device_changes_are_deterministic_for_a_seed() {
    let every_minute = run_devices(7, 60_000);
    let every_hour = run_devices(7, HOUR_MS);
    assert_eq!(every_minute, every_hour);
    assert_ne!(run_devices(8, HOUR_MS), every_hour);
}

fn alerts_after_a_day(rates: DeviceRates) -> Vec<Value> {
    let (model, clock) = model_with(rates);
    clock.advance_ms(24 * HOUR_MS);
    model.advance();
    let ids = model.alert_ids();
    ids.iter()
        .map(|id| model.alert(id).expect("alert"))
        .collect()
}

/// Hostname and threat changes draw from their own random stream, so
/// turning them on leaves the alerts the generator makes unchanged.
#[test]
fn device_changes_leave_alerts_unchanged() {
    let status_only = DeviceRates {
        status_changes_per_hour: 60.0,
        ..DeviceRates::OFF
    };
    let busy = DeviceRates {
        hostname_changes_per_hour: 20.0,
        threat_changes_per_hour: 20.0,
        ..status_only
    };
    assert_eq!(alerts_after_a_day(status_only), alerts_after_a_day(busy));
    let defaults = DeviceRates::scaled_to(60.0);
    assert_eq!(defaults.status_changes_per_hour, 60.0);
}

#[test]
fn set_device_rates_off_stops_changes() {
    let (model, clock) = model_with(only_hostnames(60.0));
    assert_eq!(model.device_rates(), only_hostnames(60.0));
    clock.advance_ms(HOUR_MS);
    model.set_device_rates(DeviceRates::OFF);
    let switched = clock.now_secs();
    assert!(!list_devices(&model, &format!("&modified={NOON}")).is_empty());
    clock.advance_ms(24 * HOUR_MS);
    assert!(list_devices(&model, &format!("&modified={switched}")).is_empty());
    assert_eq!(model.device_rates(), DeviceRates::OFF);
}

#[test]
fn zero_alert_rate_turns_device_changes_off() {
    let clock = Clock::manual(NOON * 1_000);
    let model = Model::new(SimSettings {
        alert_rate_per_hour: 0.0,
        ..SimSettings::new(clock.clone())
    });
    assert_eq!(model.device_rates(), DeviceRates::OFF);
    clock.advance_ms(24 * HOUR_MS);
    assert!(list_devices(&model, &format!("&modified={NOON}")).is_empty());
    assert_eq!(model.device_ids().len(), 55);
}

/// Returns each shape with the body it has when the document device's
/// seeded "up" event is the only event in the window.
fn shapes_of_one_event(model: &Model) -> Vec<(TimelineShape, Value)> {
    model.set_timeline_shape(TimelineShape::Object);
    let object = timeline(model, DOC_DEVICE, 24);
    let (key, event) = object
        .as_object()
        .and_then(|members| members.iter().next())
        .map(|(key, event)| (key.clone(), event.clone()))
        .expect("one event in the last day");
    vec![
        (TimelineShape::Object, json!({ key.clone(): event.clone() })),
        (TimelineShape::Array, json!([event.clone()])),
        (
            TimelineShape::WrappedEvent,
            json!({ "event": { key.clone(): event.clone() } }),
        ),
        (
            TimelineShape::WrappedEvents,
            json!({ "events": [event.clone()] }),
        ),
        (
            TimelineShape::WrappedTimeline,
            json!({ "timeline": { key: event.clone() } }),
        ),
        (
            TimelineShape::Sample,
            json!({ "prtsafe_inspection": event }),
        ),
    ]
}

#[test]
fn each_timeline_shape_is_sent() {
    let (model, _) = model_with(DeviceRates::OFF);
    for (shape, expected) in shapes_of_one_event(&model) {
        model.set_timeline_shape(shape);
        assert_eq!(model.timeline_shape(), shape);
        assert_eq!(timeline(&model, DOC_DEVICE, 24), expected, "{shape:?}");
    }
}

#[test]
fn rotate_cycles_through_every_shape() {
    let (model, _) = model_with(DeviceRates::OFF);
    let expected = shapes_of_one_event(&model);
    model.set_timeline_shape(TimelineShape::Rotate);
    for round in 0..2 {
        for (shape, body) in &expected {
            let got = timeline(&model, DOC_DEVICE, 24);
            assert_eq!(&got, body, "round {round}, {shape:?}");
        }
    }
}

#[test]
fn timeline_shape_setting_applies_from_start() {
    let model = Model::new(SimSettings {
        timeline_shape: TimelineShape::WrappedEvents,
        ..SimSettings::new(Clock::manual(NOON * 1_000))
    });
    let body = timeline(&model, DOC_DEVICE, 24);
    assert_eq!(body["events"].as_array().map(Vec::len), Some(1));
}

/// The document's sample event stays reachable after a week of events
/// past the entry cap, under its own key in the object and sample shapes
/// and first in the array shape.
#[test]
fn document_sample_survives_a_busy_week() {
    let rates = DeviceRates {
        status_changes_per_hour: 600.0,
        ..DeviceRates::OFF
    };
    let clock = Clock::manual(NOON * 1_000);
    let model = Model::new(SimSettings {
        devices: 0,
        device_rates: Some(rates),
        ..SimSettings::new(clock.clone())
    });
    clock.advance_ms(7 * 24 * HOUR_MS);
    model.advance();
    let sample = json!({
        "created": "2019-01-15T20:10:00.000Z",
        "device_id": DOC_DEVICE,
        "ip_address": "192.168.121.15",
        "status": "up"
    });
    let all_hours = 100_000;
    let object = timeline(&model, DOC_DEVICE, all_hours);
    assert_eq!(object["prtsafe_inspection"], sample);
    model.set_timeline_shape(TimelineShape::Sample);
    let wrapped = timeline(&model, DOC_DEVICE, all_hours);
    assert_eq!(wrapped["prtsafe_inspection"]["prtsafe_inspection"], sample);
    model.set_timeline_shape(TimelineShape::Array);
    let array = timeline(&model, DOC_DEVICE, all_hours);
    let events = array.as_array().expect("array of events");
    assert_eq!(events.len(), 1_000);
    assert_eq!(events[0], sample);
}
