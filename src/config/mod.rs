//! The configuration file: parsed from TOML into [`raw`] types, then
//! validated into [`Settings`], the typed values the rest of the crate
//! uses. Every error names the file, the line and the key.

mod error;
pub mod raw;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;

use crate::api::{ApiKey, DeviceFilter, License};
use crate::budget::Shares;
use crate::format::FormatSettings;
use crate::sink::OutputSettings;

pub use error::ConfigError;

/// Validated configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The file the settings came from.
    pub path: PathBuf,
    pub api: ApiSettings,
    pub quota: QuotaSettings,
    pub state: StateSettings,
    pub alerts: AlertSettings,
    pub timeline: TimelineSettings,
    pub devices: DeviceSettings,
    pub enrichment: EnrichmentSettings,
    pub format: FormatSettings,
    pub service: ServiceSettings,
    pub outputs: Vec<OutputSettings>,
    /// The Prometheus endpoint, when `[metrics] listen` is set.
    pub metrics: Option<MetricsSettings>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSettings {
    /// Time from SIGTERM or SIGINT to the exit: the poll step in flight
    /// and the delivery of what is stored must fit in it.
    pub shutdown_timeout: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiSettings {
    pub url: Url,
    pub api_key_file: Option<PathBuf>,
    pub api_key_env: String,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub max_response_bytes: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct QuotaSettings {
    pub license: License,
    /// Requests per UTC day for the whole organization.
    pub daily_limit: i64,
    /// Part of `daily_limit` left for other tools.
    pub reserve: i64,
    pub sync: bool,
    /// Time between syncs as configured; `None` lets
    /// [`QuotaSettings::sync_every`] choose.
    pub sync_interval: Option<Duration>,
    pub burst_window: Duration,
    /// Fractions of the day's requests per source.
    pub shares: Shares,
}

/// Time between syncs when the config sets none.
const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(6 * 3600);

/// Part of the day's requests that syncs at the default interval may
/// take at most: a sync every 6 h is 4 requests, 80 % of a Demo day.
const MAX_SYNC_SHARE: f64 = 0.05;

impl QuotaSettings {
    /// Returns the time between two syncs on a day with `allowed`
    /// requests: `sync_interval` when the config sets it, else 6 h, made
    /// longer on a small licence so that syncs take at most 5 % of the
    /// day (every 9.6 h on Developer's 50, every 4 days on Demo's 5).
    pub fn sync_every(&self, allowed: i64) -> Duration {
        if let Some(interval) = self.sync_interval {
            return interval;
        }
        let syncs_per_day = allowed.max(1) as f64 * MAX_SYNC_SHARE;
        let stretched = Duration::from_secs_f64(86_400.0 / syncs_per_day);
        stretched.max(DEFAULT_SYNC_INTERVAL)
    }

    /// Requests per day this forwarder may spend.
    pub fn allowed(&self) -> i64 {
        self.daily_limit - self.reserve
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateSettings {
    pub path: PathBuf,
    pub dedup_retention: Duration,
    pub outbox_max_events: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertSettings {
    pub enabled: bool,
    pub min_poll_interval: Duration,
    pub start_from: Duration,
    pub overlap: Duration,
    pub clock_skew: Duration,
    pub max_details_per_cycle: u32,
}

/// The `[timeline]` table: which devices' timelines are polled, and how
/// often.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineSettings {
    pub enabled: bool,
    pub policy: TimelinePolicy,
    /// For [`TimelinePolicy::Alerted`]: how far back an alert selects
    /// its device.
    pub alerted_days: u32,
    /// Shortest time between two polls of one device.
    pub min_interval: Duration,
    /// The `hours` of the first poll of a device, and the maximum any
    /// poll requests.
    pub max_hours: u32,
}

/// The rule that selects the devices whose timelines are polled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimelinePolicy {
    /// Devices named in alerts of the last `alerted_days` days.
    Alerted,
    /// Devices whose last inventory record has `threat = true`.
    Threat,
    /// Every device in the inventory.
    All,
    /// These MAC addresses, normalized to upper case with colons.
    List(Vec<String>),
}

#[derive(Clone, Debug)]
pub struct MetricsSettings {
    /// The address that serves `/metrics`, loopback unless
    /// `allow_remote` was set.
    pub listen: SocketAddr,
}

#[derive(Clone, Debug)]
pub struct DeviceSettings {
    pub enabled: bool,
    pub min_poll_interval: Duration,
    pub start_from: Duration,
    pub overlap: Duration,
    pub clock_skew: Duration,
    /// The `listDevices` filters (`category`, `type`, `threat`); the
    /// time filter comes from the cursor.
    pub filter: DeviceFilter,
}

impl DeviceSettings {
    /// Checks whether the inventory lists every device change: it is enabled and
    /// lists without a category, type or threat filter.
    pub fn keeps_every_device_current(&self) -> bool {
        let filter = &self.filter;
        self.enabled
            && filter.category.is_none()
            && filter.device_type.is_none()
            && filter.threat.is_none()
    }
}

/// Settings of alert enrichment with device records.
#[derive(Clone, Debug)]
pub struct EnrichmentSettings {
    pub enabled: bool,
    /// Age after which a stored device record is fetched again.
    pub ttl: Duration,
    /// Maximum time an alert is held for its device; zero never holds.
    pub wait: Duration,
}

impl EnrichmentSettings {
    /// Settings that never enrich, for sources built without them.
    pub fn disabled() -> Self {
        EnrichmentSettings {
            enabled: false,
            ttl: Duration::ZERO,
            wait: Duration::ZERO,
        }
    }

    /// Returns whether an alert without a fresh device record waits for
    /// one.
    pub fn holds_alerts(&self) -> bool {
        self.enabled && !self.wait.is_zero()
    }
}

/// Reads and validates the file at `path`.
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| ConfigError::whole_file(path, format!("cannot read the file: {error}")))?;
    parse(path, &text)
}

/// Validates `text` as if it were read from `path`.
pub fn parse(path: &Path, text: &str) -> Result<Settings, ConfigError> {
    let raw: raw::RawConfig =
        toml::from_str(text).map_err(|error| ConfigError::from_toml(path, text, &error))?;
    validate::settings(path, text, raw)
}

/// Reads the API key: from `api.api_key_file`, else from the credential
/// systemd passes (`$CREDENTIALS_DIRECTORY/api-key`), else from the
/// environment variable named by `api.api_key_env`.
pub fn load_api_key(settings: &Settings) -> Result<ApiKey, ConfigError> {
    let api = &settings.api;
    let credential = std::env::var_os("CREDENTIALS_DIRECTORY")
        .map(|dir| PathBuf::from(dir).join("api-key"))
        .filter(|path| path.exists());
    let file = api.api_key_file.clone().or(credential);
    if let Some(file) = file {
        return read_key_file(&settings.path, &file).map_err(|mut error| {
            // Point at the line that names the file, when the config does.
            let text = std::fs::read_to_string(&settings.path).unwrap_or_default();
            let located =
                ConfigError::at_key(&settings.path, &text, "api.api_key_file", String::new());
            error.position = located.position;
            error
        });
    }
    let missing = |message: String| ConfigError::key(&settings.path, "api.api_key_file", message);
    let name = &api.api_key_env;
    let value = match std::env::var(name) {
        Ok(value) => value,
        Err(std::env::VarError::NotPresent) => {
            return Err(missing(format!(
                "no API key: set api.api_key_file, pass the file as the systemd \
                 credential api-key (LoadCredential=api-key:PATH), or set the \
                 environment variable {name}"
            )));
        }
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(missing(format!(
                "the environment variable {name} is not valid UTF-8"
            )));
        }
    };
    let key = value.trim();
    if key.is_empty() {
        return Err(missing(format!(
            "the environment variable {name} is empty: put the API key in it, \
             or set api.api_key_file"
        )));
    }
    if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(missing(format!(
            "the environment variable {name} must contain the key alone"
        )));
    }
    Ok(ApiKey::new(key))
}

fn read_key_file(config: &Path, file: &Path) -> Result<ApiKey, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|error| {
        ConfigError::key(
            config,
            "api.api_key_file",
            format!("cannot read the key file {}: {error}", file.display()),
        )
    })?;
    let key = text.trim();
    if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ConfigError::key(
            config,
            "api.api_key_file",
            format!(
                "the key file {} must contain the key alone on one line",
                file.display()
            ),
        ));
    }
    if key.is_empty() {
        return Err(ConfigError::key(
            config,
            "api.api_key_file",
            format!("the key file {} is empty", file.display()),
        ));
    }
    warn_if_readable_by_others(file);
    Ok(ApiKey::new(key))
}

fn warn_if_readable_by_others(file: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(file) {
        let mode = meta.permissions().mode();
        if mode & 0o044 != 0 {
            tracing::warn!(
                file = %file.display(),
                mode = format_args!("{:o}", mode & 0o777),
                "the API key file can be read by group or others; chmod 600 it"
            );
        }
    }
}
