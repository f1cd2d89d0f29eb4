//! A simulator of the IoT Secure API, built from the API document: the
//! in-memory model, its HTTP face (axum), and an in-memory transport for
//! tests that run in virtual time.
//!
//! The model holds one organization: the records the document shows,
//! a generated fleet, and a seeded generator that adds and changes
//! alerts and device states as the model's clock moves. Requests go
//! through [`Model::handle`], which checks the key, counts the request
//! against the licence's daily limit, and runs the action.

mod actions;
mod cli;
mod controls;
mod data;
mod failure;
mod generator;
mod http;
mod model;
mod query;
mod quota;
mod store;

use crate::api::{ApiError, Call, License, Reply, Transport, percent_encode};
use crate::clock::{Clock, datetime_from_ms};

pub use cli::{DEFAULT_API_KEY, SimArgs, run_cli};
pub use http::serve;
pub use model::Model;

/// Whether `modified=T` (and `created=T`) selects records after T or at
/// or after T; the API document does not say.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Since {
    After,
    AtOrAfter,
}

/// The layout of `getDeviceTimeline` replies. The API document shows
/// one sample (an event under the key `prtsafe_inspection`) and lists
/// the fields as `event.*`, so clients must accept several layouts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum TimelineShape {
    /// An object with one member per event (`event_1`, ...).
    #[default]
    Object,
    /// An array of events.
    Array,
    /// `{"event": {...object of events...}}`.
    WrappedEvent,
    /// `{"events": [...]}`.
    WrappedEvents,
    /// `{"timeline": [...]}`.
    WrappedTimeline,
    /// The document's sample: the single event under
    /// `prtsafe_inspection`, or an object of events there when there are
    /// several.
    Sample,
    /// A bare string, which a client cannot read: for testing how it
    /// copes.
    Unknown,
}

#[derive(Clone, Debug)]
pub struct SimSettings {
    pub license: License,
    /// Keys the simulator accepts, all of one organization.
    pub api_keys: Vec<String>,
    pub since: Since,
    /// The simulator's clock; give it an offset to run ahead or behind.
    pub clock: Clock,
    /// Generated devices on top of the document's five.
    pub devices: usize,
    /// New alerts per hour from the generator; 0 turns it off.
    pub alert_rate_per_hour: f64,
    pub seed: u64,
    /// Requests per UTC day, overriding the licence's limit.
    pub daily_limit: Option<i64>,
    pub timeline_shape: TimelineShape,
}

impl SimSettings {
    /// Settings with the defaults of the `sim` subcommand: enterprise
    /// licence, the key [`DEFAULT_API_KEY`], `Since::After`, 50 generated
    /// devices, 60 alerts per hour, seed 1, timelines as objects.
    pub fn new(clock: Clock) -> Self {
        SimSettings {
            license: License::Enterprise,
            api_keys: vec![DEFAULT_API_KEY.to_owned()],
            since: Since::After,
            clock,
            devices: 50,
            alert_rate_per_hour: 60.0,
            seed: 1,
            daily_limit: None,
            timeline_shape: TimelineShape::Object,
        }
    }
}

/// One HTTP reply of the simulator.
#[derive(Clone, Debug)]
pub struct SimResponse {
    pub status: u16,
    pub body: String,
    /// The simulator's clock when it answered, for the `Date` header.
    pub date_ms: i64,
}

/// A transport that calls the model directly, with one key.
#[derive(Clone)]
pub struct InMemory {
    pub model: Model,
    pub api_key: String,
}

impl Transport for InMemory {
    /// Sends the query a real client would, so the model's request log
    /// and decoding see the same bytes. `server_time` is cut to whole
    /// seconds, like the HTTP `Date` header it stands for.
    async fn send(&self, call: &Call) -> Result<Reply, ApiError> {
        let key = percent_encode(&self.api_key);
        let raw = format!("apikey={key}&{}", call.encode_query());
        let response = self.model.handle(&raw);
        let date_ms = response.date_ms.div_euclid(1_000) * 1_000;
        Ok(Reply {
            http_status: response.status,
            body: response.body.into(),
            server_time: Some(datetime_from_ms(date_ms)),
        })
    }
}
