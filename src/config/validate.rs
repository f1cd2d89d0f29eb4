//! Turns [`RawConfig`] into [`Settings`], checking every value.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;

use crate::api::License;
use crate::budget::Shares;

use super::raw::{FacilityValue, RawConfig, RawFormat, RawMetrics, RawOutput, RawTimeline};
use super::{
    AlertSettings, ApiSettings, ConfigError, DeviceSettings, EnrichmentSettings, MetricsSettings,
    QuotaSettings, ServiceSettings, Settings, StateSettings, TimelinePolicy, TimelineSettings,
};
use crate::api::{DeviceFilter, TimeFilter};
use crate::format::{FormatSettings, SyslogHeader};
use crate::sink::{Framing, OutputSettings, Oversize, Protocol};

/// Validation context: the file and its text, for error positions.
struct Check<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Check<'_> {
    fn fail(&self, key: &str, message: String) -> ConfigError {
        ConfigError::at_key(self.path, self.text, key, message)
    }

    /// Resolves a relative path against the config file's folder.
    fn resolve(&self, path: &Path) -> PathBuf {
        match self.path.parent() {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_owned(),
        }
    }
}

pub fn settings(path: &Path, text: &str, raw: RawConfig) -> Result<Settings, ConfigError> {
    let check = Check { path, text };
    let api = api(&check, raw.api)?;
    let quota = quota(&check, raw.quota)?;
    let alerts = alerts(&check, raw.alerts)?;
    let timeline = timeline(&check, raw.timeline)?;
    let devices = devices(&check, raw.devices)?;
    let enrichment = enrichment(&check, raw.enrichment)?;
    let format = format(&check, raw.format)?;
    let outputs = outputs(&check, raw.output)?;
    positive(
        &check,
        "service.shutdown_timeout",
        raw.service.shutdown_timeout,
    )?;
    let service = ServiceSettings {
        shutdown_timeout: raw.service.shutdown_timeout,
    };
    let metrics = metrics(&check, raw.metrics)?;
    let state = StateSettings {
        path: check.resolve(&raw.state.path),
        dedup_retention: raw.state.dedup_retention,
        outbox_max_events: raw.state.outbox_max_events.max(1),
    };
    Ok(Settings {
        path: path.to_owned(),
        api,
        quota,
        state,
        alerts,
        timeline,
        devices,
        enrichment,
        format,
        service,
        outputs,
        metrics,
    })
}

fn api(check: &Check, raw: super::raw::RawApi) -> Result<ApiSettings, ConfigError> {
    let url = Url::parse(&raw.url).map_err(|error| {
        check.fail(
            "api.url",
            format!(
                "invalid URL {:?}: {error}; expected such as https://api1.iotsecure.io/",
                raw.url
            ),
        )
    })?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(check.fail(
            "api.url",
            format!("invalid scheme in {:?}: use https", raw.url),
        ));
    }
    if raw.max_response_bytes < 1024 {
        return Err(check.fail(
            "api.max_response_bytes",
            format!("{} is too small: use at least 1024", raw.max_response_bytes),
        ));
    }
    positive(check, "api.timeout", raw.timeout)?;
    positive(check, "api.connect_timeout", raw.connect_timeout)?;
    Ok(ApiSettings {
        url,
        api_key_file: raw.api_key_file.map(|file| check.resolve(&file)),
        api_key_env: raw.api_key_env,
        timeout: raw.timeout,
        connect_timeout: raw.connect_timeout,
        max_response_bytes: raw.max_response_bytes,
    })
}

fn quota(check: &Check, raw: super::raw::RawQuota) -> Result<QuotaSettings, ConfigError> {
    let daily_limit = raw.daily_limit.unwrap_or(raw.license.daily_limit());
    if daily_limit < 1 {
        return Err(check.fail(
            "quota.daily_limit",
            format!("{daily_limit} is not a usable limit: use at least 1"),
        ));
    }
    if raw.reserve < 0 || raw.reserve >= daily_limit {
        return Err(check.fail(
            "quota.reserve",
            format!(
                "{} must be at least 0 and below the daily limit {daily_limit}",
                raw.reserve
            ),
        ));
    }
    if raw
        .sync_interval
        .is_some_and(|interval| interval < Duration::from_secs(600))
    {
        return Err(check.fail(
            "quota.sync_interval",
            "must be at least 10m: each sync spends a request".to_owned(),
        ));
    }
    let weights = &raw.shares;
    for (key, weight) in [
        ("quota.shares.alerts", weights.alerts),
        ("quota.shares.devices", weights.devices),
        ("quota.shares.timeline", weights.timeline),
    ] {
        if !weight.is_finite() || weight < 0.0 {
            return Err(check.fail(key, format!("{weight} must be a number, 0 or more")));
        }
    }
    let Some(shares) = Shares::from_weights(weights.alerts, weights.devices, weights.timeline)
    else {
        return Err(check.fail(
            "quota.shares.alerts",
            "the shares are all 0: give at least one source a share".to_owned(),
        ));
    };
    Ok(QuotaSettings {
        license: raw.license,
        daily_limit,
        reserve: raw.reserve,
        sync: raw.sync.unwrap_or(raw.license != License::Demo),
        sync_interval: raw.sync_interval,
        burst_window: raw.burst,
        shares,
    })
}

fn alerts(check: &Check, raw: super::raw::RawAlerts) -> Result<AlertSettings, ConfigError> {
    if raw.min_poll_interval < Duration::from_secs(1) {
        return Err(check.fail("alerts.min_poll_interval", "must be at least 1s".to_owned()));
    }
    if raw.overlap > Duration::from_secs(3600) {
        return Err(check.fail("alerts.overlap", "must be at most 1h".to_owned()));
    }
    if raw.max_details_per_cycle == 0 {
        return Err(check.fail(
            "alerts.max_details_per_cycle",
            "must be at least 1".to_owned(),
        ));
    }
    Ok(AlertSettings {
        enabled: raw.enabled,
        min_poll_interval: raw.min_poll_interval,
        start_from: raw.start_from,
        overlap: raw.overlap,
        clock_skew: raw.clock_skew,
        max_details_per_cycle: raw.max_details_per_cycle,
    })
}

fn timeline(check: &Check, raw: RawTimeline) -> Result<TimelineSettings, ConfigError> {
    let policy = match raw.policy.as_str() {
        "alerted" => TimelinePolicy::Alerted,
        "threat" => TimelinePolicy::Threat,
        "all" => TimelinePolicy::All,
        "list" => TimelinePolicy::List(timeline_devices(check, &raw.devices)?),
        other => {
            return Err(check.fail(
                "timeline.policy",
                format!(
                    "invalid policy {other:?}: use \"alerted\", \"threat\", \"all\" or \"list\""
                ),
            ));
        }
    };
    if !raw.devices.is_empty() && !matches!(policy, TimelinePolicy::List(_)) {
        return Err(check.fail(
            "timeline.devices",
            format!(
                "devices are polled only under policy \"list\", but policy is {:?}: \
                 set policy = \"list\" or remove devices",
                raw.policy
            ),
        ));
    }
    if raw.alerted_days == 0 {
        return Err(check.fail("timeline.alerted_days", "must be at least 1".to_owned()));
    }
    // Each poll of a device costs a request of the daily quota.
    if raw.min_interval < Duration::from_secs(60) {
        return Err(check.fail(
            "timeline.min_interval",
            "must be at least 1m: each poll spends a request".to_owned(),
        ));
    }
    if raw.max_hours == 0 {
        return Err(check.fail("timeline.max_hours", "must be at least 1".to_owned()));
    }
    Ok(TimelineSettings {
        enabled: raw.enabled,
        policy,
        alerted_days: raw.alerted_days,
        min_interval: raw.min_interval,
        max_hours: raw.max_hours,
    })
}

/// Checks the `list` policy's MAC addresses and normalizes them as the
/// API writes device ids: upper case, colon-separated.
fn timeline_devices(check: &Check, devices: &[String]) -> Result<Vec<String>, ConfigError> {
    if devices.is_empty() {
        return Err(check.fail(
            "timeline.devices",
            "policy \"list\" needs at least one MAC address in devices".to_owned(),
        ));
    }
    let mut normalized: Vec<String> = Vec::with_capacity(devices.len());
    for device in devices {
        let Some(mac) = normalize_mac(device) else {
            return Err(check.fail(
                "timeline.devices",
                format!(
                    "invalid MAC address {device:?}: use six hexadecimal pairs \
                     separated by ':' or '-', such as \"00:40:17:6C:00:00\""
                ),
            ));
        };
        if !normalized.contains(&mac) {
            normalized.push(mac);
        }
    }
    Ok(normalized)
}

/// Returns `text` as `AA:BB:CC:DD:EE:FF`, or `None` unless it is six
/// pairs of hexadecimal digits separated by `:` or `-`.
fn normalize_mac(text: &str) -> Option<String> {
    let text = text.trim();
    let separator = if text.contains('-') { '-' } else { ':' };
    let pairs: Vec<&str> = text.split(separator).collect();
    let valid = pairs.len() == 6
        && pairs
            .iter()
            .all(|pair| pair.len() == 2 && pair.bytes().all(|b| b.is_ascii_hexdigit()));
    valid.then(|| pairs.join(":").to_ascii_uppercase())
}

fn devices(check: &Check, raw: super::raw::RawDevices) -> Result<DeviceSettings, ConfigError> {
    if raw.min_poll_interval < Duration::from_secs(1) {
        return Err(check.fail(
            "devices.min_poll_interval",
            "must be at least 1s".to_owned(),
        ));
    }
    if raw.overlap > Duration::from_secs(3600) {
        return Err(check.fail("devices.overlap", "must be at most 1h".to_owned()));
    }
    let category = filter_text(check, "devices.category", raw.category)?;
    let device_type = filter_text(check, "devices.type", raw.device_type)?;
    Ok(DeviceSettings {
        enabled: raw.enabled,
        min_poll_interval: raw.min_poll_interval,
        start_from: raw.start_from,
        overlap: raw.overlap,
        clock_skew: raw.clock_skew,
        filter: DeviceFilter {
            time: TimeFilter::default(),
            category,
            device_type,
            threat: raw.threat,
        },
    })
}

/// Checks a `listDevices` text filter: trimmed, not empty, no control
/// characters. Spaces are fine; the query encodes them as `%20`.
fn filter_text(
    check: &Check,
    key: &str,
    value: Option<String>,
) -> Result<Option<String>, ConfigError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed.chars().any(char::is_control) {
        return Err(check.fail(
            key,
            format!(
                "invalid filter {value:?}: use the text the console shows, such as \"Medical Device\", or remove the key to list every device"
            ),
        ));
    }
    Ok(Some(trimmed.to_owned()))
}

fn enrichment(
    check: &Check,
    raw: super::raw::RawEnrichment,
) -> Result<EnrichmentSettings, ConfigError> {
    if raw.enabled && raw.ttl < Duration::from_secs(60) {
        return Err(check.fail(
            "enrichment.ttl",
            format!(
                "{} is too short: use at least 1m, because each refresh spends a request",
                humantime::format_duration(raw.ttl)
            ),
        ));
    }
    if raw.wait > Duration::from_secs(86_400) {
        return Err(check.fail(
            "enrichment.wait",
            "must be at most 24h: alerts would reach the SIEM too late".to_owned(),
        ));
    }
    Ok(EnrichmentSettings {
        enabled: raw.enabled,
        ttl: raw.ttl,
        wait: raw.wait,
    })
}

fn format(check: &Check, raw: RawFormat) -> Result<FormatSettings, ConfigError> {
    let header = match raw.syslog.as_str() {
        "rfc5424" => SyslogHeader::Rfc5424,
        "rfc3164" => SyslogHeader::Rfc3164,
        other => {
            return Err(check.fail(
                "format.syslog",
                format!("invalid value {other:?}: use \"rfc5424\" or \"rfc3164\""),
            ));
        }
    };
    let facility = facility(check, &raw.facility)?;
    header_text(check, "format.app_name", &raw.app_name, 48)?;
    let hostname = if raw.hostname.is_empty() {
        system_hostname()
    } else {
        header_text(check, "format.hostname", &raw.hostname, 255)?;
        raw.hostname
    };
    severity(check, "format.default_severity", raw.default_severity)?;
    for (priority, level) in &raw.severity {
        severity(check, &format!("format.severity.{priority}"), *level)?;
    }
    Ok(FormatSettings {
        header,
        facility,
        app_name: raw.app_name,
        hostname,
        severity: raw
            .severity
            .into_iter()
            .map(|(priority, level)| (priority.to_lowercase(), level))
            .collect(),
        default_severity: raw.default_severity,
    })
}

/// Checks the metrics endpoint's address. It has no authentication, so
/// an address other than loopback needs `allow_remote = true`.
fn metrics(check: &Check, raw: RawMetrics) -> Result<Option<MetricsSettings>, ConfigError> {
    let Some(listen) = raw.listen else {
        if raw.allow_remote {
            return Err(check.fail(
                "metrics.allow_remote",
                "has no effect without metrics.listen: set listen or remove allow_remote"
                    .to_owned(),
            ));
        }
        return Ok(None);
    };
    let address: std::net::SocketAddr = listen.parse().map_err(|_| {
        check.fail(
            "metrics.listen",
            format!(
                "invalid address {listen:?}: use ip:port with an IP address, \
                 such as 127.0.0.1:9469 or [::1]:9469"
            ),
        )
    })?;
    if !address.ip().to_canonical().is_loopback() && !raw.allow_remote {
        return Err(check.fail(
            "metrics.listen",
            format!(
                "{address} is not a loopback address, and the endpoint has no \
                 authentication: use 127.0.0.1 or [::1], or set \
                 metrics.allow_remote = true to serve it on the network"
            ),
        ));
    }
    Ok(Some(MetricsSettings { listen: address }))
}

const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

fn facility(check: &Check, value: &FacilityValue) -> Result<u8, ConfigError> {
    let code = match value {
        FacilityValue::Code(code) => Some(*code).filter(|code| *code < 24),
        FacilityValue::Name(name) => FACILITIES
            .iter()
            .position(|known| known.eq_ignore_ascii_case(name))
            .and_then(|index| u8::try_from(index).ok()),
    };
    code.ok_or_else(|| {
        let text = match value {
            FacilityValue::Code(code) => code.to_string(),
            FacilityValue::Name(name) => format!("{name:?}"),
        };
        check.fail(
            "format.facility",
            format!(
                "invalid facility {text}: use a name such as \"local4\" ({}) or a code 0-23",
                FACILITIES.join(", ")
            ),
        )
    })
}

fn header_text(check: &Check, key: &str, value: &str, max: usize) -> Result<(), ConfigError> {
    let printable = value.bytes().all(|b| (33..=126).contains(&b));
    if value.is_empty() || value.len() > max || !printable {
        return Err(check.fail(
            key,
            format!(
                "invalid value {value:?}: use 1 to {max} printable ASCII characters without spaces"
            ),
        ));
    }
    Ok(())
}

fn severity(check: &Check, key: &str, level: u8) -> Result<(), ConfigError> {
    if level > 10 {
        return Err(check.fail(
            key,
            format!("{level} is out of range: CEF severity is 0 to 10"),
        ));
    }
    Ok(())
}

fn positive(check: &Check, key: &str, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() {
        return Err(check.fail(key, "must be more than 0s".to_owned()));
    }
    Ok(())
}

/// Returns the machine's host name, reduced to what an RFC 5424
/// HOSTNAME allows.
fn system_hostname() -> String {
    let name = gethostname::gethostname().to_string_lossy().into_owned();
    let name: String = name
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    if name.is_empty() {
        "iotsecure-forwarder".to_owned()
    } else {
        name
    }
}

fn outputs(check: &Check, raw: Vec<RawOutput>) -> Result<Vec<OutputSettings>, ConfigError> {
    if raw.is_empty() {
        return Err(ConfigError::at_key(
            check.path,
            check.text,
            "output",
            "no [[output]] table: add one per SIEM receiver".to_owned(),
        ));
    }
    let mut names = HashSet::new();
    let mut outputs = Vec::new();
    for (index, output) in raw.into_iter().enumerate() {
        let settings = output_settings(check, index, output)?;
        if !names.insert(settings.name.clone()) {
            return Err(check.fail(
                &format!("output[{index}].name"),
                format!(
                    "duplicate output name {:?}: names must be unique",
                    settings.name
                ),
            ));
        }
        outputs.push(settings);
    }
    Ok(outputs)
}

/// Checks that `host` is an IP address (IPv6 in brackets) or a DNS
/// name made of RFC 1123 labels.
fn valid_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return host.parse::<std::net::Ipv4Addr>().is_ok();
    }
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    host.len() <= 253 && host.split('.').all(label_ok)
}

fn output_settings(
    check: &Check,
    index: usize,
    raw: RawOutput,
) -> Result<OutputSettings, ConfigError> {
    let key = |name: &str| format!("output[{index}].{name}");
    let name_ok = !raw.name.is_empty()
        && raw
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !name_ok {
        return Err(check.fail(
            &key("name"),
            format!(
                "invalid name {:?}: use letters, digits, '-', '_' or '.'",
                raw.name
            ),
        ));
    }
    let port_ok = raw
        .address
        .rsplit_once(':')
        .is_some_and(|(host, port)| valid_host(host) && port.parse::<u16>().is_ok_and(|p| p > 0));
    if !port_ok {
        return Err(check.fail(
            &key("address"),
            format!(
                "invalid address {:?}: use host:port with an IP address or a DNS name, \
                 such as 127.0.0.1:514, [::1]:514 or siem.example.org:6514",
                raw.address
            ),
        ));
    }
    let protocol = match raw.protocol.as_str() {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        other => {
            return Err(check.fail(
                &key("protocol"),
                format!("invalid protocol {other:?}: use \"tcp\" or \"udp\""),
            ));
        }
    };
    let framing = match raw.framing.as_str() {
        "lf" => Framing::Lf,
        "octet-counting" => Framing::OctetCounting,
        other => {
            return Err(check.fail(
                &key("framing"),
                format!("invalid framing {other:?}: use \"lf\" or \"octet-counting\""),
            ));
        }
    };
    let oversize = match raw.oversize.as_str() {
        "truncate" => Oversize::Truncate,
        "drop" => Oversize::Drop,
        other => {
            return Err(check.fail(
                &key("oversize"),
                format!("invalid value {other:?}: use \"truncate\" or \"drop\""),
            ));
        }
    };
    let (default_max, ceiling) = match protocol {
        Protocol::Udp => (2048, 65_507),
        Protocol::Tcp => (65_536, 16 * 1024 * 1024),
    };
    let max_message_bytes = raw.max_message_bytes.unwrap_or(default_max);
    if !(480..=ceiling).contains(&max_message_bytes) {
        return Err(check.fail(
            &key("max_message_bytes"),
            format!("{max_message_bytes} is out of range: use 480 to {ceiling}"),
        ));
    }
    positive(check, &key("connect_timeout"), raw.connect_timeout)?;
    positive(check, &key("write_timeout"), raw.write_timeout)?;
    positive(check, &key("backoff_initial"), raw.backoff_initial)?;
    if raw.backoff_max < raw.backoff_initial {
        return Err(check.fail(
            &key("backoff_max"),
            "must not be below backoff_initial".to_owned(),
        ));
    }
    Ok(OutputSettings {
        name: raw.name,
        address: raw.address,
        protocol,
        framing,
        max_message_bytes,
        oversize,
        connect_timeout: raw.connect_timeout,
        write_timeout: raw.write_timeout,
        backoff_initial: raw.backoff_initial,
        backoff_max: raw.backoff_max,
    })
}
