//! The `/metrics` endpoint: an axum server on the configured address
//! that reads the ledger, outbox depth and delivery lag from the state
//! database at each scrape and returns every metric as OpenMetrics text.
//!
//! The endpoint has no authentication, which is why validation accepts
//! only a loopback address unless `metrics.allow_remote` is set.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Metrics, OutputLabels, SourceLabels};
use crate::budget::Budget;
use crate::clock::Clock;
use crate::state::{StateError, Store};

/// The media type of OpenMetrics text 1.0.0, which Prometheus accepts.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The state a scrape reads besides the in-memory counters.
#[derive(Clone)]
pub struct Scrape {
    pub metrics: Metrics,
    pub store: Arc<Store>,
    pub budget: Arc<Budget>,
    pub clock: Clock,
    /// Names of the configured outputs.
    pub outputs: Arc<Vec<String>>,
}

impl Scrape {
    /// Reads the state database into the gauges and encodes every
    /// metric.
    pub fn render(&self) -> Result<String, ScrapeError> {
        self.read_ledger()?;
        self.read_outbox()?;
        self.read_pending()?;
        self.metrics.encode().map_err(|_| ScrapeError::Encode)
    }

    fn read_ledger(&self) -> Result<(), StateError> {
        let inner = &self.metrics.inner;
        let day = self.budget.ledger()?;
        inner.requests_today.set(day.used);
        inner.organization_requests_today.set(day.effective_used());
        inner.request_limit.set(self.budget.limit(&day));
        inner.requests_allowed.set(self.budget.allowed(&day));
        Ok(())
    }

    fn read_outbox(&self) -> Result<(), StateError> {
        let inner = &self.metrics.inner;
        let now_ms = self.clock.now_ms();
        for output in self.outputs.iter() {
            let labels = OutputLabels {
                output: output.clone(),
            };
            let depth = self.store.outbox_depth(output)?;
            inner.outbox_depth.get_or_create(&labels).set(depth);
            let lag_ms = match self.store.oldest_undelivered_ms(output)? {
                Some(stored_ms) => (now_ms - stored_ms).max(0),
                None => 0,
            };
            let lag = lag_ms as f64 / 1000.0;
            inner.delivery_lag.get_or_create(&labels).set(lag);
        }
        Ok(())
    }

    /// Sets the pending ids of every source that has a cursor.
    fn read_pending(&self) -> Result<(), StateError> {
        let inner = &self.metrics.inner;
        for (source, _) in self.store.cursors()? {
            let pending = self.store.pending_count(&source)?;
            let labels = SourceLabels { source };
            inner.pending_ids.get_or_create(&labels).set(pending);
        }
        Ok(())
    }
}

/// A failed scrape.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("cannot read the state database: {0}")]
    State(#[from] StateError),
    #[error("cannot encode the metrics as text")]
    Encode,
}

/// A running `/metrics` endpoint.
pub struct MetricsServer {
    address: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// Binds `listen` and serves `/metrics` until [`MetricsServer::stop`].
    pub async fn start(listen: SocketAddr, scrape: Scrape) -> std::io::Result<MetricsServer> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let address = listener.local_addr()?;
        let router = Router::new()
            .route("/metrics", get(scrape_handler))
            .with_state(scrape);
        let stop = CancellationToken::new();
        let stopped = stop.clone().cancelled_owned();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(stopped)
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "metrics endpoint failed");
            }
        });
        tracing::info!(%address, "metrics endpoint listening");
        Ok(MetricsServer {
            address,
            stop,
            task,
        })
    }

    /// Returns the bound address, with the port chosen when `listen` had
    /// port 0.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops accepting scrapes and waits for those in flight.
    pub async fn stop(self) {
        self.stop.cancel();
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "metrics endpoint task failed");
        }
    }
}

async fn scrape_handler(State(scrape): State<Scrape>) -> Response {
    // SQLite calls block, so they run off the runtime's worker threads.
    let rendered = tokio::task::spawn_blocking(move || scrape.render()).await;
    match rendered {
        Ok(Ok(text)) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Ok(Err(error)) => {
            tracing::warn!(%error, "metrics scrape failed");
            let message = format!("{error}\n");
            (StatusCode::INTERNAL_SERVER_ERROR, message).into_response()
        }
        Err(error) => {
            tracing::warn!(%error, "metrics scrape task failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
