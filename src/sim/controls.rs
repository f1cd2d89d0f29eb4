//! Controls for tests and demos: read and change the organization's
//! records, inspect the request log and the quota, spend quota as
//! another tool would, and inject faulty replies.
//!
//! Records are plain JSON, so a test can store any value, including
//! hostile text (CR, LF, CEF and syslog metacharacters) or fields of the
//! wrong type, and the API returns it unchanged.

use serde_json::Value;

use super::devices::DeviceRates;
use super::model::Model;
use super::store::{Origin, merge};
use super::timeline::TimelineShape;

impl Model {
    /// Every raw query received, oldest first, with the `apikey` value
    /// replaced by `***`. Holds at most the last 10,000.
    pub fn raw_queries(&self) -> Vec<String> {
        self.lock().raw_queries.iter().cloned().collect()
    }

    /// Requests counted today (UTC day of the simulator's clock).
    pub fn requests_today(&self) -> i64 {
        let now = self.clock().now_secs();
        self.lock().quota.used(now)
    }

    /// The highest count of requests any single day reached.
    pub fn max_requests_in_a_day(&self) -> i64 {
        self.lock().quota.peak()
    }

    /// Requests rejected because the day's limit was reached.
    pub fn limit_replies(&self) -> u64 {
        self.lock().quota.limit_replies()
    }

    /// The daily request limit in force.
    pub fn daily_limit(&self) -> i64 {
        self.lock().quota.limit()
    }

    /// Counts `requests` against today's quota, as another tool using the
    /// same organization would.
    pub fn spend(&self, requests: i64) {
        let now = self.clock().now_secs();
        self.lock().quota.spend(requests, now);
    }

    /// Sends `body` with HTTP `status` instead of the next reply that
    /// passes the key and limit checks. Queued faults go out in order.
    pub fn push_fault(&self, status: u16, body: impl Into<String>) {
        self.lock().faults.push_back((status, body.into()));
    }

    /// The current record of an alert.
    pub fn alert(&self, id: &str) -> Option<Value> {
        self.lock().store.alert(id).cloned()
    }

    /// All alert ids in ascending order.
    pub fn alert_ids(&self) -> Vec<String> {
        let state = self.lock();
        state.store.alerts().map(|(id, _)| id.to_owned()).collect()
    }

    /// Stores `record` as is, replacing any alert with the same
    /// `alert_id`; a record without one gets the next free id. Returns
    /// the id.
    pub fn insert_alert(&self, record: Value) -> String {
        self.lock().store.insert_alert(record)
    }

    /// Merges the members of `changes` into an alert and sets `modified`
    /// to the clock's current second unless `changes` sets it. Returns
    /// `false` when no alert has that id.
    pub fn modify_alert(&self, id: &str, changes: Value) -> bool {
        let now = self.clock().now_secs();
        let mut state = self.lock();
        match state.store.alert_mut(id) {
            Some(record) => {
                merge(record, changes, now);
                true
            }
            None => false,
        }
    }

    /// Sets one field of an alert without touching `modified`. Returns
    /// `false` when no alert has that id or the record is not an object.
    pub fn set_alert_field(&self, id: &str, field: &str, value: Value) -> bool {
        let mut state = self.lock();
        let fields = state.store.alert_mut(id).and_then(Value::as_object_mut);
        match fields {
            Some(fields) => {
                fields.insert(field.to_owned(), value);
                true
            }
            None => false,
        }
    }

    /// Deletes an alert, as if the console purged it.
    pub fn remove_alert(&self, id: &str) -> bool {
        self.lock().store.remove_alert(id)
    }

    /// The current record of a device; the id may differ in case and
    /// surrounding whitespace.
    pub fn device(&self, id: &str) -> Option<Value> {
        self.lock().store.device(id).cloned()
    }

    /// All device ids in the order `listDevices` returns them.
    pub fn device_ids(&self) -> Vec<String> {
        let state = self.lock();
        state.store.devices().map(|(id, _)| id.to_owned()).collect()
    }

    /// Stores `record` under its `device_id`, replacing any device with
    /// that id. Returns the normalized id, or `None` when the record has
    /// no string `device_id`.
    pub fn insert_device(&self, record: Value) -> Option<String> {
        self.lock().store.insert_device(record)
    }

    /// Merges `changes` into a device like [`Model::modify_alert`] does.
    pub fn modify_device(&self, id: &str, changes: Value) -> bool {
        let now = self.clock().now_secs();
        let mut state = self.lock();
        match state.store.device_mut(id) {
            Some(record) => {
                merge(record, changes, now);
                true
            }
            None => false,
        }
    }

    /// Appends `event` as is to a device's timeline. `created_ms` is the
    /// time the `hours` window is checked against; the event's own
    /// `created` text is not read, so it may hold anything.
    pub fn add_timeline_event(&self, device_id: &str, created_ms: i64, event: Value) {
        self.lock()
            .store
            .push_event(device_id, created_ms, Origin::Control, event);
    }

    /// Returns the shape of `getDeviceTimeline` replies.
    pub fn timeline_shape(&self) -> TimelineShape {
        self.lock().timeline_shape
    }

    /// Sends later `getDeviceTimeline` replies in `shape`. Setting
    /// [`TimelineShape::Rotate`] starts the rotation over at the object
    /// shape.
    pub fn set_timeline_shape(&self, shape: TimelineShape) {
        let mut state = self.lock();
        state.timeline_shape = shape;
        state.rotated_replies = 0;
    }

    /// Sets the shape of one device's `getDeviceTimeline` replies, which
    /// then ignore the model's shape.
    pub fn set_device_timeline_shape(&self, device_id: &str, shape: TimelineShape) {
        let id = super::query::normalize_device_id(device_id);
        self.lock().device_timeline_shapes.insert(id, shape);
    }

    /// Returns the generator's device change rates in force.
    pub fn device_rates(&self) -> DeviceRates {
        self.lock().generator.device_rates()
    }

    /// Replaces the generator's device change rates from the clock's
    /// current time on; [`DeviceRates::OFF`] stops device changes.
    /// Changes due before now are applied first at the old rates.
    pub fn set_device_rates(&self, rates: DeviceRates) {
        let now_ms = self.clock().now_ms();
        let mut state = self.lock();
        state.generator_advance(now_ms);
        state.generator.set_device_rates(rates, now_ms);
    }
}
