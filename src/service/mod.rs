//! Wiring: opens the state, builds the API client behind the budget,
//! starts one delivery task per output and the poll loop, and stops them
//! in order on shutdown.

mod delivery;
pub mod demo;
mod plan;
mod scheduler;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::api::{ApiError, ApiKey, Client, HttpSettings, HttpTransport, Transport};
use crate::budget::{Budget, Budgeted};
use crate::clock::Clock;
use crate::config::Settings;
use crate::format::Formatter;
use crate::sink::Sink;
use crate::source::{AlertSource, SourceError};
use crate::state::{StateError, Store};

pub use delivery::{Delivery, Ended};

/// How long delivery may go on after a stop was requested.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How long `once` waits for the outputs to take everything.
const ONCE_DELIVERY_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("output {output} did not accept every event within {limit:?}")]
    Undelivered { output: String, limit: Duration },
    #[error("delivery task failed: {0}")]
    Task(String),
}

/// Everything a running forwarder is made of.
pub struct Forwarder<T> {
    pub settings: Settings,
    pub store: Arc<Store>,
    pub budget: Arc<Budget>,
    pub client: Arc<Client<Budgeted<T>>>,
    pub clock: Clock,
    pub wake: Arc<Notify>,
}

/// Builds the HTTP transport for the configured API.
pub fn http_transport(settings: &Settings, key: ApiKey) -> Result<HttpTransport, ApiError> {
    HttpTransport::new(HttpSettings {
        url: settings.api.url.clone(),
        api_key: key,
        timeout: settings.api.timeout,
        connect_timeout: settings.api.connect_timeout,
        max_response_bytes: settings.api.max_response_bytes,
    })
}

impl<T: Transport> Forwarder<T> {
    /// Opens the state database and wraps `transport` in the budget.
    pub fn open(settings: Settings, transport: T, clock: Clock) -> Result<Self, StateError> {
        let store = Arc::new(Store::open(&settings.state.path)?);
        // The first start reaches back `start_from` from now, however
        // long the first list call waits for the budget.
        let reach = i64::try_from(settings.alerts.start_from.as_secs()).unwrap_or(i64::MAX / 2);
        store.init_cursor(crate::source::alerts::SOURCE, clock.now_secs() - reach)?;
        let names: Vec<String> = settings.outputs.iter().map(|o| o.name.clone()).collect();
        store.retain_outputs(&names)?;
        let budget = Arc::new(Budget::new(
            store.clone(),
            clock.clone(),
            settings.quota.clone(),
        ));
        let client = Arc::new(Client::new(Budgeted::new(transport, budget.clone())));
        Ok(Forwarder {
            settings,
            store,
            budget,
            client,
            clock,
            wake: Arc::new(Notify::new()),
        })
    }

    pub fn alert_source(&self) -> AlertSource<Budgeted<T>> {
        AlertSource::new(
            self.client.clone(),
            self.store.clone(),
            self.clock.clone(),
            self.settings.alerts.clone(),
            self.settings.state.dedup_retention,
        )
    }

    fn delivery(&self) -> Delivery {
        Delivery {
            store: self.store.clone(),
            formatter: Arc::new(Formatter::new(self.settings.format.clone())),
            clock: self.clock.clone(),
            outputs: Arc::new(
                self.settings
                    .outputs
                    .iter()
                    .map(|o| o.name.clone())
                    .collect(),
            ),
            wake: self.wake.clone(),
        }
    }

    fn spawn_deliveries(
        &self,
        drain: &CancellationToken,
        abort: &CancellationToken,
    ) -> JoinSet<(String, Result<Ended, StateError>)> {
        let mut tasks = JoinSet::new();
        for output in &self.settings.outputs {
            tracing::info!(output = %output.name, address = %output.address,
                protocol = ?output.protocol, framing = ?output.framing, "output configured");
            let delivery = self.delivery();
            let sink = Sink::new(output.clone());
            let (drain, abort) = (drain.clone(), abort.clone());
            let name = output.name.clone();
            tasks.spawn(async move { (name, delivery.run(sink, drain, abort).await) });
        }
        tasks
    }

    /// Polls the API and delivers to every output until `shutdown`
    /// fires. Then it stops polling and lets the outputs catch up for a
    /// grace period before it returns.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), ServiceError> {
        let drain = CancellationToken::new();
        let abort = CancellationToken::new();
        let tasks = self.spawn_deliveries(&drain, &abort);
        self.log_state()?;
        tracing::info!("ready");
        let maintenance = self.spawn_maintenance(&shutdown);
        scheduler::Scheduler::new(self).run(&shutdown).await;
        maintenance.abort();
        tracing::info!("stopping: polling ended, delivering what is stored");
        drain.cancel();
        let guard = abort.clone();
        let timer = tokio::spawn(async move {
            tokio::time::sleep(SHUTDOWN_GRACE).await;
            guard.cancel();
        });
        let result = join_deliveries(tasks, SHUTDOWN_GRACE).await;
        timer.abort();
        tracing::info!("stopped");
        result
    }

    /// Polls the API until `shutdown` fires, without delivering: the
    /// events stay in the outbox. For tests and benchmarks in virtual
    /// time, where sockets cannot run.
    pub async fn poll(&self, shutdown: CancellationToken) {
        scheduler::Scheduler::new(self).run(&shutdown).await;
    }

    /// Runs one poll cycle, then delivers everything stored. Fails when
    /// the cycle failed or an output did not take every event in time.
    pub async fn once(&self) -> Result<(), ServiceError> {
        let cycle = if self.settings.alerts.enabled {
            self.alert_source().cycle().await
        } else {
            Ok(crate::source::CycleReport::default())
        };
        if let Ok(report) = &cycle {
            tracing::info!(
                requests = report.requests,
                listed = report.listed,
                stored = report.stored,
                duplicates = report.duplicates,
                "poll cycle"
            );
        }
        let drain = CancellationToken::new();
        drain.cancel();
        let abort = CancellationToken::new();
        let tasks = self.spawn_deliveries(&drain, &abort);
        let guard = abort.clone();
        let timer = tokio::spawn(async move {
            tokio::time::sleep(ONCE_DELIVERY_LIMIT).await;
            guard.cancel();
        });
        let delivered = join_deliveries(tasks, ONCE_DELIVERY_LIMIT).await;
        timer.abort();
        cycle?;
        delivered
    }

    /// Deletes expired dedup keys hourly, so the table holds only the
    /// configured retention.
    fn spawn_maintenance(&self, shutdown: &CancellationToken) -> tokio::task::JoinHandle<()> {
        let (store, clock, shutdown) = (self.store.clone(), self.clock.clone(), shutdown.clone());
        tokio::spawn(async move {
            loop {
                match store.expire_dedup(clock.now_ms()) {
                    Ok(0) => {}
                    Ok(expired) => tracing::debug!(expired, "expired dedup keys deleted"),
                    Err(error) => tracing::error!(%error, "cannot delete expired dedup keys"),
                }
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(3600)) => {}
                    () = shutdown.cancelled() => return,
                }
            }
        })
    }

    fn log_state(&self) -> Result<(), StateError> {
        let cursors = self.store.cursors()?;
        let pending = self.store.pending_count(crate::source::alerts::SOURCE)?;
        let outbox = self.store.outbox_len()?;
        tracing::info!(path = %self.settings.state.path.display(), ?cursors, pending, outbox,
            "state opened");
        Ok(())
    }
}

async fn join_deliveries(
    mut tasks: JoinSet<(String, Result<Ended, StateError>)>,
    limit: Duration,
) -> Result<(), ServiceError> {
    let mut outcome = Ok(());
    while let Some(joined) = tasks.join_next().await {
        let failure = match joined {
            Ok((_, Ok(Ended::CaughtUp))) => continue,
            Ok((output, Ok(Ended::Aborted))) => ServiceError::Undelivered { output, limit },
            Ok((_, Err(error))) => ServiceError::State(error),
            Err(error) => ServiceError::Task(error.to_string()),
        };
        tracing::error!(error = %failure, "delivery ended early");
        if outcome.is_ok() {
            outcome = Err(failure);
        }
    }
    outcome
}
