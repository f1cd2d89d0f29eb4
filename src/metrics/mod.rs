//! Prometheus metrics: the [`Metrics`] handle that sources, the API
//! client and the delivery tasks count into, and the `/metrics`
//! endpoint in [`endpoint`].
//!
//! Counters and the last-success times are kept in memory, so they
//! start from zero when the process starts. The request ledger, outbox
//! depth and delivery lag are read from the state database at each
//! scrape, so they agree with `status`.
//!
//! Every name starts with `iotsecure_forwarder_`. The text is the
//! OpenMetrics format written by the `prometheus-client` crate, which
//! Prometheus scrapes as is.

pub mod endpoint;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::api::ApiError;
use crate::sink::TransportError;

pub use endpoint::{MetricsServer, Scrape, ScrapeError};

/// The prefix of every metric name.
const PREFIX: &str = "iotsecure_forwarder";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutputLabels {
    output: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiErrorLabels {
    action: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutputErrorLabels {
    output: String,
    kind: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// A cheap, cloneable handle to the process's metrics. Every clone
/// counts into the same registry.
#[derive(Clone, Debug)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    events_stored: Family<SourceLabels, Counter>,
    last_poll: Family<SourceLabels, Gauge>,
    pending_ids: Family<SourceLabels, Gauge>,
    api_errors: Family<ApiErrorLabels, Counter>,
    events_delivered: Family<OutputLabels, Counter>,
    messages_truncated: Family<OutputLabels, Counter>,
    messages_dropped: Family<OutputLabels, Counter>,
    last_delivery: Family<OutputLabels, Gauge>,
    output_errors: Family<OutputErrorLabels, Counter>,
    outbox_depth: Family<OutputLabels, Gauge>,
    delivery_lag: Family<OutputLabels, FloatGauge>,
    requests_today: Gauge,
    organization_requests_today: Gauge,
    request_limit: Gauge,
    requests_allowed: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Creates the registry with every metric, all at zero.
    pub fn new() -> Self {
        let mut inner = Inner {
            registry: Registry::with_prefix(PREFIX),
            events_stored: Family::default(),
            last_poll: Family::default(),
            pending_ids: Family::default(),
            api_errors: Family::default(),
            events_delivered: Family::default(),
            messages_truncated: Family::default(),
            messages_dropped: Family::default(),
            last_delivery: Family::default(),
            output_errors: Family::default(),
            outbox_depth: Family::default(),
            delivery_lag: Family::default(),
            requests_today: Gauge::default(),
            organization_requests_today: Gauge::default(),
            request_limit: Gauge::default(),
            requests_allowed: Gauge::default(),
        };
        register_all(&mut inner);
        Metrics {
            inner: Arc::new(inner),
        }
    }

    /// Counts events a source stored in the outbox. Duplicates that
    /// dedup dropped are not stored, so they are not counted.
    pub fn events_stored(&self, source: &str, count: usize) {
        let labels = source_labels(source);
        self.inner
            .events_stored
            .get_or_create(&labels)
            .inc_by(as_u64(count));
    }

    /// Records that a list call of `source` succeeded at `now_ms` (epoch
    /// milliseconds).
    pub fn polled(&self, source: &str, now_ms: i64) {
        let labels = source_labels(source);
        self.inner
            .last_poll
            .get_or_create(&labels)
            .set(now_ms.div_euclid(1000));
    }

    /// Counts a failed API call by action and [`api_error_kind`].
    pub fn api_error(&self, error: &ApiError) {
        let labels = ApiErrorLabels {
            action: error.action().to_owned(),
            kind: api_error_kind(error).to_owned(),
        };
        self.inner.api_errors.get_or_create(&labels).inc();
    }

    /// Returns the handle that one output's delivery task and sink count
    /// into.
    pub fn output(&self, name: &str) -> OutputMetrics {
        OutputMetrics {
            metrics: self.clone(),
            labels: OutputLabels {
                output: name.to_owned(),
            },
        }
    }

    /// Encodes every metric in the OpenMetrics text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.inner.registry)?;
        Ok(text)
    }
}

/// One output's share of [`Metrics`].
#[derive(Clone, Debug)]
pub struct OutputMetrics {
    metrics: Metrics,
    labels: OutputLabels,
}

impl OutputMetrics {
    /// Records a batch the transport accepted at `now_ms`: `sent`
    /// messages, of which `truncated` were cut, plus `dropped` that the
    /// oversize policy or LF framing removed.
    pub fn delivered(&self, sent: usize, truncated: usize, dropped: usize, now_ms: i64) {
        let inner = &self.metrics.inner;
        let labels = &self.labels;
        inner
            .events_delivered
            .get_or_create(labels)
            .inc_by(as_u64(sent));
        inner
            .messages_truncated
            .get_or_create(labels)
            .inc_by(as_u64(truncated));
        inner
            .messages_dropped
            .get_or_create(labels)
            .inc_by(as_u64(dropped));
        inner
            .last_delivery
            .get_or_create(labels)
            .set(now_ms.div_euclid(1000));
    }

    /// Counts a failed connection or send attempt by
    /// [`output_error_kind`].
    pub fn transport_error(&self, error: &TransportError) {
        let labels = OutputErrorLabels {
            output: self.labels.output.clone(),
            kind: output_error_kind(error).to_owned(),
        };
        self.metrics
            .inner
            .output_errors
            .get_or_create(&labels)
            .inc();
    }
}

/// Returns the `kind` label of an API error: one value per variant, so
/// a dashboard can tell a timeout from a failure body.
pub fn api_error_kind(error: &ApiError) -> &'static str {
    match error {
        ApiError::LimitReached { .. } => "limit_reached",
        ApiError::InvalidKey { .. } => "invalid_key",
        ApiError::Failed { .. } => "failed",
        ApiError::Timeout { .. } => "timeout",
        ApiError::Connection { .. } => "connection",
        ApiError::Status { .. } => "http_status",
        ApiError::TooLarge { .. } => "too_large",
        ApiError::Decode { .. } => "decode",
        ApiError::NotJson { .. } => "not_json",
        ApiError::BudgetSpent { .. } => "budget_spent",
        ApiError::ReserveTakesAll { .. } => "reserve_takes_all",
    }
}

/// Returns the `kind` label of a failed attempt to reach a receiver.
pub fn output_error_kind(error: &TransportError) -> &'static str {
    match error {
        TransportError::Resolve { .. } => "resolve",
        TransportError::NoAddress { .. } => "no_address",
        TransportError::Connect { .. } => "connect",
        TransportError::ConnectTimeout(_) => "connect_timeout",
        TransportError::SendTimeout(_) => "send_timeout",
        TransportError::Send(_) => "send",
        TransportError::Closed => "closed",
    }
}

/// Registers a clone of each metric of `inner`. The clones share their
/// values with the originals.
fn register_all(inner: &mut Inner) {
    let registry = &mut inner.registry;
    registry.register(
        "events_stored",
        "Events stored in the outbox since start, by source",
        inner.events_stored.clone(),
    );

    registry.register(
        "last_poll_timestamp_seconds",
        "Unix time of the last successful list call, by source",
        inner.last_poll.clone(),
    );

    registry.register(
        "pending_ids",
        "Listed ids whose records are not fetched yet, by source",
        inner.pending_ids.clone(),
    );

    registry.register(
        "api_errors",
        "Failed API calls since start, by action and kind",
        inner.api_errors.clone(),
    );

    registry.register(
        "events_delivered",
        "Events the output's transport accepted since start",
        inner.events_delivered.clone(),
    );

    registry.register(
        "messages_truncated",
        "Delivered messages cut to the output's max_message_bytes",
        inner.messages_truncated.clone(),
    );

    registry.register(
        "messages_dropped",
        "Messages not sent because of their size or a line feed in LF framing",
        inner.messages_dropped.clone(),
    );

    registry.register(
        "last_delivery_timestamp_seconds",
        "Unix time the output's transport last accepted a batch",
        inner.last_delivery.clone(),
    );

    registry.register(
        "output_errors",
        "Failed connection or send attempts since start, by output and kind",
        inner.output_errors.clone(),
    );

    registry.register(
        "outbox_depth",
        "Events stored but not yet delivered to the output",
        inner.outbox_depth.clone(),
    );

    registry.register(
        "delivery_lag_seconds",
        "Age of the oldest event not yet delivered to the output; 0 when it has caught up",
        inner.delivery_lag.clone(),
    );

    registry.register(
        "requests_today",
        "API requests this forwarder sent today (UTC day of the server)",
        inner.requests_today.clone(),
    );

    registry.register(
        "organization_requests_today",
        "API requests of the whole organization today, as of the last quota sync plus ours since",
        inner.organization_requests_today.clone(),
    );

    registry.register(
        "request_limit",
        "The organization's daily request limit",
        inner.request_limit.clone(),
    );

    registry.register(
        "requests_allowed",
        "Requests per day this forwarder may spend: the limit less the reserve",
        inner.requests_allowed.clone(),
    );
}

fn source_labels(source: &str) -> SourceLabels {
    SourceLabels {
        source: source.to_owned(),
    }
}

fn as_u64(count: usize) -> u64 {
    u64::try_from(count).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_appear_with_labels() {
        let metrics = Metrics::new();
        metrics.events_stored("alerts", 3);
        metrics.output("siem").delivered(2, 1, 0, 1_700_000_000_500);
        let text = metrics.encode().expect("encodes");
        assert!(
            text.contains("iotsecure_forwarder_events_stored_total{source=\"alerts\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("iotsecure_forwarder_events_delivered_total{output=\"siem\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "iotsecure_forwarder_last_delivery_timestamp_seconds{output=\"siem\"} 1700000000\n"
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn api_error_counted_by_action_and_kind() {
        let metrics = Metrics::new();
        let error = ApiError::Status {
            action: "getAlert",
            status: 502,
        };
        metrics.api_error(&error);
        metrics.api_error(&error);
        let text = metrics.encode().expect("encodes");
        let line =
            "iotsecure_forwarder_api_errors_total{action=\"getAlert\",kind=\"http_status\"} 2\n";
        assert!(text.contains(line), "{text}");
    }
}
