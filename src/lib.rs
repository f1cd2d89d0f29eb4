//! iotsecure-forwarder: carries security alerts and device activity from
//! the IoT Secure REST API to SIEMs as CEF inside syslog.
//!
//! The modules follow the pipeline: [`api`] calls the API, [`source`]
//! decides what to ask and turns records into [`event`]s, [`state`] keeps
//! them in a SQLite outbox with the cursors, [`format`] encodes them, and
//! [`sink`] sends them to each output. [`sim`] is a simulator of the API
//! for the demo and the tests.

pub mod api;
pub mod budget;
pub mod clock;
pub mod config;
pub mod event;
pub mod format;
pub mod listen;
pub mod logging;
pub mod metrics;
pub mod service;
pub mod sim;
pub mod sink;
pub mod source;
pub mod state;
