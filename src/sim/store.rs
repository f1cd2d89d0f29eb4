//! The organization's records: alerts, devices, device timelines and
//! SNMP profiles, kept as JSON values so tests can store any shape,
//! hostile or malformed, and the API returns it unchanged.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde_json::Value;

use super::query::normalize_device_id;
use crate::clock::datetime_from_ms;

/// Timeline events kept per device; older ones are dropped, except the
/// document's sample.
const MAX_TIMELINE_EVENTS: usize = 1_000;

/// Age, relative to a device's newest event, beyond which generated
/// events are dropped: 31 days in milliseconds. With the entry cap it
/// bounds memory for a large fleet over a long run.
const MAX_GENERATED_EVENT_AGE_MS: i64 = 31 * 86_400_000;

/// Alerts, oldest first, searched for a closed one to drop.
const TRIM_SCAN: usize = 1_000;

/// Sort key of an alert id: shorter ids first, then by text, which for
/// decimal ids without leading zeros is numeric order.
type AlertKey = (usize, String);

fn alert_key(id: &str) -> AlertKey {
    let id = id.trim();
    (id.len(), id.to_owned())
}

/// Where a timeline event comes from, which decides when it is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The document's sample: never dropped.
    Document,
    /// Added by a test or demo: dropped only by the entry cap.
    Control,
    /// Made by the generator: dropped by the entry cap and by age.
    Generator,
}

/// One timeline event with the time the `hours` window is checked on.
struct TimelineEntry {
    created_ms: i64,
    /// The member name the event appears under in the object shape.
    key: String,
    origin: Origin,
    event: Value,
}

#[derive(Default)]
pub(crate) struct Store {
    alerts: BTreeMap<AlertKey, Value>,
    next_alert_id: u64,
    /// Devices in insertion order, which is the order `listDevices`
    /// returns them in, as the document's samples do.
    devices: Vec<Value>,
    device_index: HashMap<String, usize>,
    timelines: HashMap<String, VecDeque<TimelineEntry>>,
    next_event: u64,
    pub(crate) snmp_profiles: Vec<Value>,
}

impl Store {
    pub(crate) fn new(first_free_alert_id: u64) -> Self {
        Store {
            next_alert_id: first_free_alert_id,
            ..Store::default()
        }
    }

    /// Stores `record` under its `alert_id` (a string or a number),
    /// replacing any alert with that id, or under the next free id when
    /// it has none. Returns the id.
    pub(crate) fn insert_alert(&mut self, mut record: Value) -> String {
        let id = match record.get("alert_id") {
            Some(Value::String(text)) => text.trim().to_owned(),
            Some(Value::Number(number)) => number.to_string(),
            _ => {
                let id = self.allocate_alert_id();
                if let Some(fields) = record.as_object_mut() {
                    fields.insert("alert_id".into(), Value::String(id.clone()));
                }
                id
            }
        };
        if let Ok(number) = id.parse::<u64>() {
            self.next_alert_id = self.next_alert_id.max(number + 1);
        }
        self.alerts.insert(alert_key(&id), record);
        id
    }

    /// Reserves the next alert id, above every id stored so far.
    pub(crate) fn allocate_alert_id(&mut self) -> String {
        let id = self.next_alert_id;
        self.next_alert_id += 1;
        id.to_string()
    }

    pub(crate) fn alert(&self, id: &str) -> Option<&Value> {
        self.alerts.get(&alert_key(id))
    }

    pub(crate) fn alert_mut(&mut self, id: &str) -> Option<&mut Value> {
        self.alerts.get_mut(&alert_key(id))
    }

    pub(crate) fn remove_alert(&mut self, id: &str) -> bool {
        self.alerts.remove(&alert_key(id)).is_some()
    }

    /// Alerts in ascending id order, with their ids.
    pub(crate) fn alerts(&self) -> impl DoubleEndedIterator<Item = (&str, &Value)> {
        self.alerts
            .iter()
            .map(|((_, id), record)| (id.as_str(), record))
    }

    pub(crate) fn alert_count(&self) -> usize {
        self.alerts.len()
    }

    /// Drops alerts until at most `max` remain: a closed one among the
    /// oldest [`TRIM_SCAN`] first, else the oldest of any status. The scan
    /// is bounded so trimming stays cheap when old alerts stay open.
    pub(crate) fn trim_alerts(&mut self, max: usize) {
        while self.alerts.len() > max {
            let closed = self
                .alerts
                .iter()
                .take(TRIM_SCAN)
                .find(|(_, record)| record["status"] == "closed")
                .map(|(key, _)| key.clone());
            let victim = closed.or_else(|| self.alerts.keys().next().cloned());
            match victim {
                Some(key) => self.alerts.remove(&key),
                None => break,
            };
        }
    }

    /// Stores `record` under its normalized `device_id`, replacing the
    /// device with that id in place. Returns the id, or `None` when the
    /// record has no string `device_id`.
    pub(crate) fn insert_device(&mut self, record: Value) -> Option<String> {
        let id = normalize_device_id(record.get("device_id")?.as_str()?);
        match self.device_index.get(&id) {
            Some(&position) => self.devices[position] = record,
            None => {
                self.device_index.insert(id.clone(), self.devices.len());
                self.devices.push(record);
            }
        }
        Some(id)
    }

    pub(crate) fn device(&self, id: &str) -> Option<&Value> {
        let position = *self.device_index.get(&normalize_device_id(id))?;
        self.devices.get(position)
    }

    pub(crate) fn device_mut(&mut self, id: &str) -> Option<&mut Value> {
        let position = *self.device_index.get(&normalize_device_id(id))?;
        self.devices.get_mut(position)
    }

    /// Devices in insertion order, with their normalized ids.
    pub(crate) fn devices(&self) -> impl Iterator<Item = (&str, &Value)> {
        let mut ids: Vec<(&str, usize)> = self
            .device_index
            .iter()
            .map(|(id, &position)| (id.as_str(), position))
            .collect();
        ids.sort_by_key(|&(_, position)| position);
        ids.into_iter()
            .map(|(id, position)| (id, &self.devices[position]))
    }

    pub(crate) fn device_count(&self) -> usize {
        self.devices.len()
    }

    /// Returns the id of the device at `position` in insertion order.
    pub(crate) fn device_id_at(&self, position: usize) -> Option<String> {
        let record = self.devices.get(position)?;
        let id = record.get("device_id")?.as_str()?;
        Some(normalize_device_id(id))
    }

    /// Inserts an event into a device's timeline in `created_ms` order,
    /// under the next `event_N` member name, then drops what the caps
    /// require.
    pub(crate) fn push_event(
        &mut self,
        device_id: &str,
        created_ms: i64,
        origin: Origin,
        event: Value,
    ) {
        self.next_event += 1;
        let key = format!("event_{}", self.next_event);
        self.push_named_event(device_id, created_ms, key, origin, event);
    }

    /// Inserts an event like [`Store::push_event`] under the member name
    /// `key`.
    pub(crate) fn push_named_event(
        &mut self,
        device_id: &str,
        created_ms: i64,
        key: String,
        origin: Origin,
        event: Value,
    ) {
        let timeline = self
            .timelines
            .entry(normalize_device_id(device_id))
            .or_default();
        let entry = TimelineEntry {
            created_ms,
            key,
            origin,
            event,
        };
        let position = timeline.partition_point(|e| e.created_ms <= created_ms);
        timeline.insert(position, entry);
        trim_timeline(timeline);
    }

    /// Events of `device_id` created at or after `since_ms`, oldest
    /// first, each with its member name for the object shape.
    pub(crate) fn timeline(&self, device_id: &str, since_ms: i64) -> Vec<(String, Value)> {
        let id = normalize_device_id(device_id);
        self.timelines
            .get(&id)
            .into_iter()
            .flatten()
            .filter(|entry| entry.created_ms >= since_ms)
            .map(|entry| (entry.key.clone(), entry.event.clone()))
            .collect()
    }

    pub(crate) fn snmp_profile(&self, name: &str) -> Option<&Value> {
        self.snmp_profiles
            .iter()
            .find(|profile| profile["snmp_profile"] == name.trim())
    }
}

/// Drops generated events older than [`MAX_GENERATED_EVENT_AGE_MS`]
/// before the newest event, then the oldest events other than the
/// document's until at most [`MAX_TIMELINE_EVENTS`] remain. Entries are
/// in `created_ms` order, so the old ones are at the front.
fn trim_timeline(timeline: &mut VecDeque<TimelineEntry>) {
    let newest_ms = timeline.back().map_or(i64::MIN, |entry| entry.created_ms);
    let cutoff_ms = newest_ms.saturating_sub(MAX_GENERATED_EVENT_AGE_MS);
    let mut position = 0;
    while position < timeline.len() && timeline[position].created_ms < cutoff_ms {
        if timeline[position].origin == Origin::Generator {
            timeline.remove(position);
        } else {
            position += 1;
        }
    }
    while timeline.len() > MAX_TIMELINE_EVENTS {
        let oldest = timeline
            .iter()
            .position(|entry| entry.origin != Origin::Document);
        match oldest {
            Some(position) => timeline.remove(position),
            None => break,
        };
    }
}

/// Formats epoch milliseconds the way the document's timeline sample
/// writes `created`: `2019-01-15T20:10:00.000Z`.
pub(crate) fn timeline_time(ms: i64) -> String {
    datetime_from_ms(ms)
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Copies every member of `changes` into `record`, then sets `modified`
/// to `now_secs` unless `changes` set it. Does nothing to a record that
/// is not an object.
pub(crate) fn merge(record: &mut Value, changes: Value, now_secs: i64) {
    let Some(fields) = record.as_object_mut() else {
        return;
    };
    let Value::Object(changes) = changes else {
        return;
    };
    let sets_modified = changes.contains_key("modified");
    fields.extend(changes);
    if !sets_modified {
        fields.insert("modified".into(), now_secs.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn alerts_sort_numerically() {
        let mut store = Store::new(1);
        for id in ["900", "10", "9"] {
            store.insert_alert(json!({ "alert_id": id }));
        }
        let ids: Vec<&str> = store.alerts().map(|(id, _)| id).collect();
        assert_eq!(ids, ["9", "10", "900"]);
    }

    #[test]
    fn alert_without_id_gets_next_free_id() {
        let mut store = Store::new(5);
        store.insert_alert(json!({ "alert_id": 41 }));
        let id = store.insert_alert(json!({ "subject": "x" }));
        assert_eq!(id, "42");
        assert_eq!(
            store.alert("42").map(|a| a["alert_id"].clone()),
            Some(json!("42"))
        );
    }

    #[test]
    fn trim_drops_closed_alerts_first() {
        let mut store = Store::new(1);
        store.insert_alert(json!({ "alert_id": 1, "status": "open" }));
        store.insert_alert(json!({ "alert_id": 2, "status": "closed" }));
        store.insert_alert(json!({ "alert_id": 3, "status": "open" }));
        store.trim_alerts(2);
        assert!(store.alert("1").is_some());
        assert!(store.alert("2").is_none());
    }

    #[test]
    fn timeline_keeps_window_and_order() {
        let mut store = Store::new(1);
        store.push_event("aa", 2_000, Origin::Control, json!({ "n": 2 }));
        let first = "first".to_owned();
        store.push_named_event("AA", 1_000, first, Origin::Control, json!({ "n": 1 }));
        let events = store.timeline(" aa ", 1_500);
        assert_eq!(events, [("event_1".to_owned(), json!({ "n": 2 }))]);
        let all = store.timeline("aa", 0);
        assert_eq!(all[0], ("first".to_owned(), json!({ "n": 1 })));
        assert_eq!(all.len(), 2);
    }

    #[test]
    fn timeline_drops_old_generated_events_only() {
        let mut store = Store::new(1);
        let day_ms = 86_400_000;
        store.push_event("aa", 0, Origin::Generator, json!({ "n": 0 }));
        store.push_event("aa", 1, Origin::Control, json!({ "n": 1 }));
        store.push_event("aa", 40 * day_ms, Origin::Generator, json!({ "n": 2 }));
        let kept: Vec<Value> = store
            .timeline("aa", 0)
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        assert_eq!(kept, [json!({ "n": 1 }), json!({ "n": 2 })]);
    }

    #[test]
    fn timeline_cap_keeps_document_event() {
        let mut store = Store::new(1);
        let key = "prtsafe_inspection".to_owned();
        store.push_named_event("aa", 0, key, Origin::Document, json!({ "doc": true }));
        for n in 1..=(MAX_TIMELINE_EVENTS as i64 + 10) {
            store.push_event("aa", n, Origin::Generator, json!({ "n": n }));
        }
        let events = store.timeline("aa", 0);
        assert_eq!(events.len(), MAX_TIMELINE_EVENTS);
        assert_eq!(events[0].0, "prtsafe_inspection");
        // The eleven oldest generated events made room for the newest.
        assert_eq!(events[1].1, json!({ "n": 12 }));
    }

    #[test]
    fn merge_bumps_modified_unless_given() {
        let mut record = json!({ "status": "open", "modified": 1 });
        merge(&mut record, json!({ "status": "closed" }), 50);
        assert_eq!(record, json!({ "status": "closed", "modified": 50 }));
        merge(&mut record, json!({ "modified": 7 }), 60);
        assert_eq!(record["modified"], 7);
    }

    #[test]
    fn timeline_time_matches_document_format() {
        assert_eq!(timeline_time(1_547_583_000_000), "2019-01-15T20:10:00.000Z");
    }
}
