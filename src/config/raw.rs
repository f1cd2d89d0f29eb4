//! The TOML schema as written by the operator. Every table rejects
//! unknown keys, so a typo fails `check-config` instead of being ignored.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::api::License;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub api: RawApi,
    #[serde(default)]
    pub quota: RawQuota,
    #[serde(default)]
    pub state: RawState,
    #[serde(default)]
    pub alerts: RawAlerts,
    #[serde(default)]
    pub timeline: RawTimeline,
    #[serde(default)]
    pub devices: RawDevices,
    #[serde(default)]
    pub enrichment: RawEnrichment,
    #[serde(default)]
    pub format: RawFormat,
    #[serde(default)]
    pub service: RawService,
    #[serde(default)]
    pub metrics: RawMetrics,
    /// One table per SIEM receiver.
    #[serde(default)]
    pub output: Vec<RawOutput>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawApi {
    /// Base URL of the API.
    pub url: String,
    /// File holding the API key; read once at start.
    pub api_key_file: Option<PathBuf>,
    /// Environment variable holding the API key, used when no file is set
    /// and systemd passed no credential.
    pub api_key_env: String,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Larger responses are rejected.
    pub max_response_bytes: usize,
}

impl Default for RawApi {
    fn default() -> Self {
        RawApi {
            url: "https://api1.iotsecure.io/".into(),
            api_key_file: None,
            api_key_env: "IOTSECURE_API_KEY".into(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_response_bytes: 16 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawQuota {
    pub license: License,
    /// Overrides the licence's limit when set.
    pub daily_limit: Option<i64>,
    /// Requests per day left for other tools; never spent.
    pub reserve: i64,
    /// Reads the organization's count and limit with `getAPIKey`; on by
    /// default except on the demo licence, whose 5 requests are too few.
    pub sync: Option<bool>,
    /// Time between syncs; unset, 6 h or longer on a small licence.
    #[serde(with = "humantime_serde::option")]
    pub sync_interval: Option<Duration>,
    /// The requests of this much time may go at once after a quiet spell.
    #[serde(with = "humantime_serde")]
    pub burst: Duration,
    pub shares: RawShares,
}

/// Weights of the day's requests per source, in percent by convention.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawShares {
    pub alerts: f64,
    pub devices: f64,
    pub timeline: f64,
}

impl Default for RawShares {
    fn default() -> Self {
        RawShares {
            alerts: 94.0,
            devices: 4.0,
            timeline: 2.0,
        }
    }
}

impl Default for RawQuota {
    fn default() -> Self {
        RawQuota {
            license: License::Enterprise,
            daily_limit: None,
            reserve: 0,
            sync: None,
            sync_interval: None,
            burst: Duration::from_secs(3600),
            shares: RawShares::default(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawState {
    pub path: PathBuf,
    /// How long a delivered alert modification is remembered.
    #[serde(with = "humantime_serde")]
    pub dedup_retention: Duration,
    /// Sources pause while the outbox contains this many events.
    pub outbox_max_events: u64,
}

impl Default for RawState {
    fn default() -> Self {
        RawState {
            path: PathBuf::from("/var/lib/iotsecure-forwarder/state.db"),
            dedup_retention: Duration::from_secs(30 * 86_400),
            outbox_max_events: 100_000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAlerts {
    pub enabled: bool,
    /// Shortest time between two list calls, however much budget is left.
    #[serde(with = "humantime_serde")]
    pub min_poll_interval: Duration,
    /// How far back the first start reaches.
    #[serde(with = "humantime_serde")]
    pub start_from: Duration,
    /// Subtracted from the server's time to form the next cursor.
    #[serde(with = "humantime_serde")]
    pub overlap: Duration,
    /// Subtracted from the local clock when the server sent no `Date`.
    #[serde(with = "humantime_serde")]
    pub clock_skew: Duration,
    /// `getAlert` calls at most per poll cycle.
    pub max_details_per_cycle: u32,
}

impl Default for RawAlerts {
    fn default() -> Self {
        RawAlerts {
            enabled: true,
            min_poll_interval: Duration::from_secs(10),
            start_from: Duration::from_secs(86_400),
            overlap: Duration::from_secs(2),
            clock_skew: Duration::from_secs(600),
            max_details_per_cycle: 500,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTimeline {
    pub enabled: bool,
    /// `alerted`, `threat`, `all` or `list`.
    pub policy: String,
    /// MAC addresses polled under the `list` policy.
    pub devices: Vec<String>,
    /// Under `alerted`, an alert selects its device for this many days.
    pub alerted_days: u32,
    /// Shortest time between two polls of one device.
    #[serde(with = "humantime_serde")]
    pub min_interval: Duration,
    /// `hours` of a device's first poll, and the cap on every poll's.
    pub max_hours: u32,
}

impl Default for RawTimeline {
    fn default() -> Self {
        RawTimeline {
            enabled: true,
            policy: "alerted".into(),
            devices: Vec::new(),
            alerted_days: 7,
            min_interval: Duration::from_secs(3600),
            max_hours: 24,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDevices {
    pub enabled: bool,
    /// Shortest time between two `listDevices` calls.
    #[serde(with = "humantime_serde")]
    pub min_poll_interval: Duration,
    /// How far back the first start reaches.
    #[serde(with = "humantime_serde")]
    pub start_from: Duration,
    /// Subtracted from the server's time to form the next cursor.
    #[serde(with = "humantime_serde")]
    pub overlap: Duration,
    /// Subtracted from the local clock when the server sent no `Date`.
    #[serde(with = "humantime_serde")]
    pub clock_skew: Duration,
    /// `listDevices` filters; unset means every device.
    pub category: Option<String>,
    #[serde(rename = "type")]
    pub device_type: Option<String>,
    pub threat: Option<bool>,
}

impl Default for RawDevices {
    fn default() -> Self {
        RawDevices {
            enabled: true,
            min_poll_interval: Duration::from_secs(300),
            start_from: Duration::from_secs(86_400),
            overlap: Duration::from_secs(2),
            clock_skew: Duration::from_secs(600),
            category: None,
            device_type: None,
            threat: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawEnrichment {
    pub enabled: bool,
    /// A stored device record older than this is fetched again before it
    /// enriches an alert.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// Maximum time an alert waits for its device; 0 sends them at once.
    #[serde(with = "humantime_serde")]
    pub wait: Duration,
}

impl Default for RawEnrichment {
    fn default() -> Self {
        RawEnrichment {
            enabled: true,
            ttl: Duration::from_secs(86_400),
            wait: Duration::from_secs(120),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawFormat {
    /// `rfc5424` or `rfc3164`.
    pub syslog: String,
    /// Facility name (`local0` ...) or code.
    pub facility: FacilityValue,
    pub app_name: String,
    /// Empty means the machine's host name.
    pub hostname: String,
    pub default_severity: u8,
    /// CEF severity per alert priority.
    pub severity: BTreeMap<String, u8>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum FacilityValue {
    Name(String),
    Code(u8),
}

impl Default for RawFormat {
    fn default() -> Self {
        let severity = [
            ("critical", 10),
            ("high", 8),
            ("medium", 5),
            ("low", 3),
            ("info", 1),
        ];
        RawFormat {
            syslog: "rfc5424".into(),
            facility: FacilityValue::Name("local4".into()),
            app_name: "iotsecure".into(),
            hostname: String::new(),
            default_severity: 5,
            severity: severity
                .into_iter()
                .map(|(name, level)| (name.to_owned(), level))
                .collect(),
        }
    }
}

/// The Prometheus endpoint, off unless `listen` is set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawMetrics {
    /// `ip:port` to serve `/metrics` on.
    pub listen: Option<String>,
    /// Whether a `listen` address other than loopback is accepted.
    pub allow_remote: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawService {
    /// How long a stopping service may go on delivering what is stored,
    /// from the signal to the exit.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
}

impl Default for RawService {
    fn default() -> Self {
        RawService {
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutput {
    pub name: String,
    /// `host:port`.
    pub address: String,
    /// `tcp` or `udp`.
    #[serde(default = "default_protocol")]
    pub protocol: String,
    /// `lf` or `octet-counting`; TCP only.
    #[serde(default = "default_framing")]
    pub framing: String,
    /// Defaults to 2048 on UDP and 65536 on TCP.
    pub max_message_bytes: Option<usize>,
    /// `truncate` or `drop`.
    #[serde(default = "default_oversize")]
    pub oversize: String,
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    #[serde(default = "default_write_timeout", with = "humantime_serde")]
    pub write_timeout: Duration,
    #[serde(default = "default_backoff_initial", with = "humantime_serde")]
    pub backoff_initial: Duration,
    #[serde(default = "default_backoff_max", with = "humantime_serde")]
    pub backoff_max: Duration,
}

fn default_protocol() -> String {
    "tcp".into()
}

fn default_framing() -> String {
    "lf".into()
}

fn default_oversize() -> String {
    "truncate".into()
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_write_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_backoff_initial() -> Duration {
    Duration::from_millis(500)
}

fn default_backoff_max() -> Duration {
    Duration::from_secs(300)
}
