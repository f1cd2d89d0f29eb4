//! Typed client for every action of the IoT Secure API.
//!
//! A [`Transport`] sends one [`Call`] and returns the raw [`Reply`]; the
//! [`Client`] builds calls from typed requests, turns failure bodies into
//! [`ApiError`] and decodes the records. The HTTP transport talks to the
//! real API or the simulator; the simulator's in-memory transport lets
//! tests run days in virtual time.

mod client;
mod error;
mod http;
pub mod lenient;
mod types;

use std::future::Future;

use bytes::Bytes;
use chrono::{DateTime, Utc};

pub(crate) use client::failure_of;
pub use client::{Client, DeviceFilter, Listed, TimeFilter, TimelineReply, timeline_events};
pub use error::{ApiError, ErrorKind};
pub use http::{ApiKey, HttpSettings, HttpTransport, parse_http_date};
pub use types::*;

/// The three modules of the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Module {
    Account,
    IoTSecurity,
    LogManagement,
}

impl Module {
    pub fn as_str(self) -> &'static str {
        match self {
            Module::Account => "Account",
            Module::IoTSecurity => "IoTSecurity",
            Module::LogManagement => "LogManagement",
        }
    }
}

/// One request: module, action and filters, without the API key, which
/// only the transport holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub module: Module,
    pub action: &'static str,
    pub params: Vec<(&'static str, String)>,
}

impl Call {
    pub fn new(module: Module, action: &'static str) -> Self {
        Call {
            module,
            action,
            params: Vec::new(),
        }
    }

    /// Adds a filter; `None` adds nothing.
    pub fn param(mut self, name: &'static str, value: Option<impl ToString>) -> Self {
        if let Some(value) = value {
            self.params.push((name, value.to_string()));
        }
        self
    }

    /// The query string after `apikey=`: `module`, `action`, then the
    /// filters, each value percent-encoded so that a space is `%20`, never
    /// `+` (the API document requires `%20`).
    pub fn encode_query(&self) -> String {
        let mut query = format!("module={}&action={}", self.module.as_str(), self.action);
        for (name, value) in &self.params {
            query.push('&');
            query.push_str(name);
            query.push('=');
            query.push_str(&percent_encode(value));
        }
        query
    }
}

/// Percent-encodes everything except the characters RFC 3986 leaves
/// unreserved, plus `:` so MAC addresses stay readable in logs.
pub fn percent_encode(value: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~')
        .remove(b':');
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

/// What came back for one call, before it is decoded.
#[derive(Clone, Debug)]
pub struct Reply {
    pub http_status: u16,
    pub body: Bytes,
    /// The server's time from the HTTP `Date` header, when it sent one.
    pub server_time: Option<DateTime<Utc>>,
}

/// Sends calls to the API with the key it holds.
pub trait Transport: Send + Sync + 'static {
    fn send(&self, call: &Call) -> impl Future<Output = Result<Reply, ApiError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_is_encoded_as_percent_20() {
        let call =
            Call::new(Module::IoTSecurity, "listDevices").param("type", Some("Logic Controller"));
        assert_eq!(
            call.encode_query(),
            "module=IoTSecurity&action=listDevices&type=Logic%20Controller"
        );
    }

    #[test]
    fn reserved_characters_are_encoded() {
        assert_eq!(percent_encode("a+b&c=d#"), "a%2Bb%26c%3Dd%23");
        assert_eq!(percent_encode("00:40:17:6C:00:00"), "00:40:17:6C:00:00");
    }
}

/// The API licences and their daily request limits per organization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum License {
    Demo,
    Developer,
    Enterprise,
}

impl License {
    /// Requests per UTC day per organization, from the API document.
    pub fn daily_limit(self) -> i64 {
        match self {
            License::Demo => 5,
            License::Developer => 50,
            License::Enterprise => 5_000,
        }
    }
}

impl std::str::FromStr for License {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "demo" => Ok(License::Demo),
            "developer" => Ok(License::Developer),
            "enterprise" => Ok(License::Enterprise),
            other => Err(format!(
                "invalid licence {other:?}: expected demo, developer or enterprise"
            )),
        }
    }
}
