//! A simulator of the IoT Secure API, built from the API document: the
//! in-memory model, its HTTP face (axum), and an in-memory transport for
//! tests that run in virtual time.

use tokio_util::sync::CancellationToken;

use crate::api::{ApiError, Call, License, Reply, Transport};
use crate::clock::Clock;

/// Whether `modified=T` (and `created=T`) selects records after T or at
/// or after T; the API document does not say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Since {
    After,
    AtOrAfter,
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
}

/// One HTTP reply of the simulator.
#[derive(Clone, Debug)]
pub struct SimResponse {
    pub status: u16,
    pub body: String,
    /// The simulator's clock when it answered, for the `Date` header.
    pub date_ms: i64,
}

/// The simulated organization. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct Model {}

impl Model {
    pub fn new(settings: SimSettings) -> Self {
        let _ = settings;
        todo!("sim helper")
    }

    /// Answers one request given its raw query string.
    pub fn handle(&self, raw_query: &str) -> SimResponse {
        let _ = raw_query;
        todo!("sim helper")
    }
}

/// Serves the model over HTTP on `listener` until `cancel` fires.
pub async fn serve(
    model: Model,
    listener: tokio::net::TcpListener,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let _ = (model, listener, cancel);
    todo!("sim helper")
}

/// A transport that calls the model directly, with one key.
#[derive(Clone)]
pub struct InMemory {
    pub model: Model,
    pub api_key: String,
}

impl Transport for InMemory {
    async fn send(&self, call: &Call) -> Result<Reply, ApiError> {
        let _ = call;
        todo!("sim helper")
    }
}

/// Arguments of `iotsecure-forwarder sim`.
#[derive(clap::Args, Debug)]
pub struct SimArgs {}

pub async fn run_cli(args: SimArgs) -> anyhow::Result<()> {
    let _ = args;
    todo!("sim helper")
}
