//! The simulated organization and the request path: log the raw query,
//! check the key, count the request against the day's limit, run the
//! action.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::Value;

use super::data::{self, ACCOUNT_NAME, LAST_DOC_ALERT_ID};
use super::devices::DeviceRates;
use super::failure::{Failure, limit_reached};
use super::generator::Generator;
use super::query::{Params, mask_api_key};
use super::quota::Quota;
use super::store::{Origin, Store, timeline_time};
use super::timeline::TimelineShape;
use super::{SimResponse, SimSettings, Since};
use crate::clock::Clock;

/// Raw queries kept for [`Model::raw_queries`]; older ones are dropped so
/// a long-running simulator stays within bounded memory.
const MAX_LOGGED_QUERIES: usize = 10_000;

/// Everything behind the model's lock.
pub(crate) struct State {
    pub(crate) api_keys: Vec<String>,
    pub(crate) since: Since,
    pub(crate) quota: Quota,
    pub(crate) store: Store,
    pub(crate) generator: Generator,
    pub(crate) raw_queries: VecDeque<String>,
    /// Replies to send instead of the next requests' real ones.
    pub(crate) faults: VecDeque<(u16, String)>,
    pub(crate) timeline_shape: TimelineShape,
    /// Timeline replies sent in the rotating shape, which picks the next.
    pub(crate) rotated_replies: usize,
    /// Devices whose replies take their own shape, whatever the model's.
    pub(crate) device_timeline_shapes: std::collections::HashMap<String, TimelineShape>,
}

/// The simulated organization. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct Model {
    state: Arc<Mutex<State>>,
    clock: Clock,
}

impl Model {
    /// Builds the organization from the built-in records, a generated
    /// fleet (see [`SimSettings::fleet_size`]), and one recent "up" event
    /// per device.
    pub fn new(settings: SimSettings) -> Self {
        let now_ms = settings.clock.now_ms();
        let now = now_ms.div_euclid(1_000);
        let mut store = Store::new(LAST_DOC_ALERT_ID + 1);
        load_builtins(&mut store, now);
        let rates = settings
            .device_rates
            .unwrap_or_else(|| DeviceRates::scaled_to(settings.alert_rate_per_hour));
        let mut generator =
            Generator::new(settings.seed, settings.alert_rate_per_hour, rates, now_ms);
        let generated = match settings.fleet_size {
            Some(total) => total.saturating_sub(store.device_count()),
            None => settings.devices,
        };
        generator.add_fleet(&mut store, generated, now);
        seed_timelines(&mut store, now_ms);
        let limit = settings
            .daily_limit
            .unwrap_or_else(|| settings.license.daily_limit());
        let state = State {
            api_keys: settings.api_keys,
            since: settings.since,
            quota: Quota::new(limit, now),
            store,
            generator,
            raw_queries: VecDeque::new(),
            faults: VecDeque::new(),
            timeline_shape: settings.timeline_shape,
            rotated_replies: 0,
            device_timeline_shapes: std::collections::HashMap::new(),
        };
        Model {
            state: Arc::new(Mutex::new(state)),
            clock: settings.clock,
        }
    }

    /// Handles one request given its raw query string (for a request
    /// with a form body, the query and the body joined by `&`).
    pub fn handle(&self, raw_query: &str) -> SimResponse {
        let now_ms = self.clock.now_ms();
        let mut state = self.lock();
        state.generator_advance(now_ms);
        state.log_query(raw_query);
        let (status, body) = state.answer(raw_query, now_ms);
        tracing::debug!(status, "simulator sent response");
        SimResponse {
            status,
            body,
            date_ms: now_ms,
        }
    }

    /// Applies the generator's changes up to the clock's current time.
    /// [`Model::handle`] does this too, so calling it only keeps the
    /// work per request small.
    pub fn advance(&self) {
        let now_ms = self.clock.now_ms();
        self.lock().generator_advance(now_ms);
    }

    /// Returns the simulator's clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind, which
        // is still usable, so a poisoned lock is not an error here.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    pub(crate) fn generator_advance(&mut self, now_ms: i64) {
        self.generator.advance(&mut self.store, now_ms);
    }

    fn log_query(&mut self, raw_query: &str) {
        if self.raw_queries.len() >= MAX_LOGGED_QUERIES {
            self.raw_queries.pop_front();
        }
        self.raw_queries.push_back(mask_api_key(raw_query));
    }

    /// Runs the checks in the order the limit semantics need: the key
    /// first (an invalid key counts for no organization), then the
    /// day's limit, then any injected fault, then the action.
    fn answer(&mut self, raw_query: &str, now_ms: i64) -> (u16, String) {
        let params = Params::parse(raw_query);
        let key_valid = params
            .get("apikey")
            .is_some_and(|key| self.api_keys.iter().any(|known| known == key));
        if !key_valid {
            tracing::debug!("simulator rejected invalid api key");
            return failure(Failure::invalid_key());
        }
        if !self.quota.try_count(now_ms.div_euclid(1_000)) {
            let body = limit_reached(ACCOUNT_NAME, self.quota.limit());
            return (400, body.to_string());
        }
        if let Some(fault) = self.faults.pop_front() {
            return fault;
        }
        match super::actions::dispatch(self, &params, now_ms) {
            Ok(body) => (200, body.to_string()),
            Err(error) => failure(error),
        }
    }
}

fn failure(error: Failure) -> (u16, String) {
    (error.code, error.body().to_string())
}

fn load_builtins(store: &mut Store, now: i64) {
    for record in data::devices() {
        store.insert_device(record);
    }
    for record in data::alerts(now) {
        store.insert_alert(record);
    }
    store.snmp_profiles.push(data::snmp_profile());
    let (key, event) = data::doc_timeline_event();
    let created_ms = 1_547_583_000_000;
    let device_id = "00:40:17:6C:00:00";
    store.push_named_event(
        device_id,
        created_ms,
        key.to_owned(),
        Origin::Document,
        event,
    );
}

/// Gives every device an "up" event between 1 and 23 hours ago, so a
/// timeline poll right after start finds something.
fn seed_timelines(store: &mut Store, now_ms: i64) {
    let ids: Vec<(String, Value)> = store
        .devices()
        .map(|(id, record)| (id.to_owned(), record["ip_address"].clone()))
        .collect();
    for (position, (id, ip_address)) in ids.into_iter().enumerate() {
        let hours_ago = (position % 23 + 1) as i64;
        let created_ms = now_ms - hours_ago * 3_600_000;
        let event = serde_json::json!({
            "created": timeline_time(created_ms),
            "device_id": id,
            "ip_address": ip_address,
            "status": "up",
        });
        store.push_event(&id, created_ms, Origin::Generator, event);
    }
}
