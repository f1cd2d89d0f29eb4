//! Wiring: opens the state, builds the API client behind the budget,
//! starts one delivery task per output and the poll loop, applies a
//! reloaded config, and stops them in order on shutdown.

mod background;
mod delivery;
pub mod demo;
pub mod notify;
pub mod operator;
mod outputs;
mod plan;
mod reload;
mod scheduler;
pub mod status;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::api::{ApiError, ApiKey, Client, ErrorKind, HttpSettings, HttpTransport, Transport};
use crate::budget::{Budget, Budgeted, SourceKind};
use crate::clock::Clock;
use crate::config::Settings;
use crate::metrics::{Metrics, MetricsServer, Scrape};
use crate::source::{AlertSource, CycleReport, DeviceSource, SourceError, TimelineSource};
use crate::state::{StateError, Store};

pub use delivery::{Delivery, Ended, Shared};
pub use notify::Heartbeat;
use outputs::{Outcome, Outputs};

/// Time one scheduler step may take on top of its API request's
/// timeout (database work, the budget) before the watchdog counts the
/// poll loop as stuck.
const STEP_SLACK: Duration = Duration::from_secs(60);

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
    #[error("cannot serve metrics on {address}: {source}; set metrics.listen to a free address")]
    Metrics {
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// Everything a running forwarder is made of.
pub struct Forwarder<T> {
    /// The config in force; a reload replaces it.
    settings: RwLock<Arc<Settings>>,
    pub store: Arc<Store>,
    pub budget: Arc<Budget>,
    pub client: Arc<Client<Budgeted<T>>>,
    pub clock: Clock,
    pub wake: Arc<Notify>,
    /// Counters for the `/metrics` endpoint, which count even when the
    /// endpoint is off.
    pub metrics: Metrics,
    /// Liveness of the poll loop, which drives the systemd watchdog.
    pub heartbeat: Arc<Heartbeat>,
    /// An exclusive lock beside the state database, held while this
    /// forwarder is open: two forwarders on one outbox would deliver
    /// the same events twice. The kernel releases it when the process
    /// ends, however it ends.
    _lock: std::fs::File,
}

/// Takes the exclusive lock on `<state>.lock`, or fails when another
/// process holds it. `status` and `api` do not take it: they only read,
/// or count one request in the ledger's own transaction.
fn lock_state(state: &std::path::Path) -> Result<std::fs::File, StateError> {
    let mut name = state.as_os_str().to_owned();
    name.push(".lock");
    let path = state.display().to_string();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(std::path::PathBuf::from(name))
        .map_err(|source| StateError::Lock {
            path: path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StateError::InUse { path }),
        Err(std::fs::TryLockError::Error(source)) => Err(StateError::Lock { path, source }),
    }
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
        let lock = lock_state(&settings.state.path)?;
        // The first start reaches back `start_from` from now, however
        // long the first list call waits for the budget. "Now" is the
        // server's, as far as an earlier run's replies showed its clock.
        let now = crate::source::server_now_secs(&store, &clock)?;
        let reach = i64::try_from(settings.alerts.start_from.as_secs()).unwrap_or(i64::MAX / 2);
        store.init_cursor(crate::source::alerts::SOURCE, now - reach)?;
        let reach = i64::try_from(settings.devices.start_from.as_secs()).unwrap_or(i64::MAX / 2);
        store.init_cursor(crate::source::devices::SOURCE, now - reach)?;
        let names: Vec<String> = settings.outputs.iter().map(|o| o.name.clone()).collect();
        store.retain_outputs(&names)?;
        let budget = Arc::new(Budget::new(
            store.clone(),
            clock.clone(),
            settings.quota.clone(),
        ));
        let metrics = Metrics::new();
        let budgeted = Budgeted::new(transport, budget.clone());
        let client = Arc::new(Client::new(budgeted).with_metrics(metrics.clone()));
        let heartbeat = Arc::new(Heartbeat::new(settings.api.timeout + STEP_SLACK));
        Ok(Forwarder {
            settings: RwLock::new(Arc::new(settings)),
            store,
            budget,
            client,
            clock,
            wake: Arc::new(Notify::new()),
            metrics,
            heartbeat,
            _lock: lock,
        })
    }

    /// Returns the config in force, which a reload may replace between
    /// two calls.
    pub fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn replace_settings(&self, settings: Settings) {
        let mut current = self
            .settings
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *current = Arc::new(settings);
    }

    pub fn alert_source(&self) -> AlertSource<Budgeted<T>> {
        let settings = self.settings();
        AlertSource::new(
            self.client.clone(),
            self.store.clone(),
            self.clock.clone(),
            settings.alerts.clone(),
            settings.state.dedup_retention,
        )
        .with_enrichment(settings.enrichment.clone())
        .with_current_inventory(settings.devices.keeps_every_device_current())
    }

    pub fn device_source(&self) -> DeviceSource<Budgeted<T>> {
        let settings = self.settings();
        DeviceSource::new(
            self.client.clone(),
            self.store.clone(),
            self.clock.clone(),
            settings.devices.clone(),
            settings.state.dedup_retention,
        )
        .with_enrichment(settings.enrichment.clone())
    }

    pub fn timeline_source(&self) -> TimelineSource<Budgeted<T>> {
        let settings = self.settings();
        TimelineSource::new(
            self.client.clone(),
            self.store.clone(),
            self.clock.clone(),
            settings.timeline.clone(),
            settings.state.dedup_retention,
        )
    }

    fn start_outputs(&self) -> Outputs {
        Outputs::start(
            self.store.clone(),
            self.clock.clone(),
            self.wake.clone(),
            self.metrics.clone(),
            &self.settings(),
        )
    }

    /// Polls the API and delivers to every output until `shutdown`
    /// fires, without reloading.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), ServiceError> {
        let (_requests, reload) = mpsc::channel(1);
        self.run_with_reload(shutdown, reload).await
    }

    /// Polls the API and delivers to every output until `shutdown`
    /// fires, and reloads the config file on each message from `reload`.
    ///
    /// From `shutdown` on, the poll step in flight, then the delivery of
    /// what is stored, must fit in `service.shutdown_timeout`. What an
    /// output did not take by then stays in the outbox for the next
    /// start, and the run still returns `Ok`.
    pub async fn run_with_reload(
        &self,
        shutdown: CancellationToken,
        mut reload: mpsc::Receiver<()>,
    ) -> Result<(), ServiceError> {
        let metrics_server = self.start_metrics().await?;
        let mut outputs = self.start_outputs();
        self.log_state()?;
        let _systemd = notify::start(self, &shutdown);
        tracing::info!("ready");
        let maintenance = self.spawn_maintenance(&shutdown);
        let mut scheduler = scheduler::Scheduler::new(self);
        let polling = scheduler.run(&shutdown);
        tokio::pin!(polling);
        let mut reloads_open = true;
        let mut polling_ended = false;
        loop {
            tokio::select! {
                () = &mut polling => {
                    polling_ended = true;
                    break;
                }
                () = shutdown.cancelled() => break,
                request = reload.recv(), if reloads_open => match request {
                    Some(()) => self.reload(&mut outputs).await,
                    None => reloads_open = false,
                },
            }
        }
        let timeout = self.settings().service.shutdown_timeout;
        let deadline = Instant::now() + timeout;
        let step_in_flight = !polling_ended;
        if step_in_flight
            && tokio::time::timeout_at(deadline, &mut polling)
                .await
                .is_err()
        {
            tracing::warn!(
                shutdown_timeout_ms = timeout.as_millis() as u64,
                "poll step still in flight at the shutdown timeout; cancelled, \
                 and its work repeats at the next start"
            );
        }
        maintenance.abort();
        tracing::info!("stopping: polling ended, delivering what is stored");
        let ended = outputs.finish(deadline).await;
        let result = self.report_shutdown(ended, timeout);
        if let Some(server) = metrics_server {
            server.stop().await;
        }
        tracing::info!("stopped");
        result
    }

    /// Logs each output that did not catch up before the shutdown
    /// deadline with what it left in the outbox, and returns the first
    /// task failure.
    fn report_shutdown(
        &self,
        ended: Vec<(String, Result<Outcome, String>)>,
        timeout: Duration,
    ) -> Result<(), ServiceError> {
        let mut outcome = Ok(());
        for (output, ended) in ended {
            let failure = match ended {
                Ok(Ok(Ended::CaughtUp)) => continue,
                Ok(Ok(Ended::Aborted)) => {
                    let undelivered = self.store.outbox_depth(&output).unwrap_or(-1);
                    tracing::warn!(
                        %output,
                        undelivered,
                        shutdown_timeout_ms = timeout.as_millis() as u64,
                        "output did not catch up before the shutdown timeout; \
                         the rest stays in the outbox for the next start"
                    );
                    continue;
                }
                Ok(Err(error)) => ServiceError::State(error),
                Err(error) => ServiceError::Task(error),
            };
            tracing::error!(%output, error = %failure, "delivery ended early");
            if outcome.is_ok() {
                outcome = Err(failure);
            }
        }
        outcome
    }

    /// Starts the `/metrics` endpoint when `[metrics] listen` is set.
    async fn start_metrics(&self) -> Result<Option<MetricsServer>, ServiceError> {
        let settings = self.settings();
        let Some(metrics) = &settings.metrics else {
            return Ok(None);
        };
        let scrape = Scrape {
            metrics: self.metrics.clone(),
            store: self.store.clone(),
            budget: self.budget.clone(),
            clock: self.clock.clone(),
            outputs: Arc::new(settings.outputs.iter().map(|o| o.name.clone()).collect()),
        };
        let address = metrics.listen;
        let server = MetricsServer::start(address, scrape)
            .await
            .map_err(|source| ServiceError::Metrics { address, source })?;
        Ok(Some(server))
    }

    /// Polls the API until `shutdown` fires, without delivering: the
    /// events stay in the outbox. For tests and benchmarks in virtual
    /// time, where sockets cannot run.
    pub async fn poll(&self, shutdown: CancellationToken) {
        scheduler::Scheduler::new(self).run(&shutdown).await;
    }

    /// Runs one poll cycle of each enabled source (alerts first, so the
    /// timeline's `alerted` policy selects the devices they name), then
    /// delivers everything stored. Fails when a cycle failed or an
    /// output did not take every event in time.
    pub async fn once(&self) -> Result<(), ServiceError> {
        let settings = self.settings();
        let mut cycle = Ok(());
        if settings.alerts.enabled {
            let report = self
                .counted(SourceKind::Alerts, self.alert_source().cycle())
                .await?;
            cycle = log_cycle(crate::source::alerts::SOURCE, report);
        }
        // Before the timeline, whose `threat` and `all` policies read the
        // device table.
        let devices = self
            .counted(SourceKind::Devices, self.devices_once())
            .await?;
        if let Err(error) = &devices {
            tracing::error!(source = crate::source::devices::SOURCE, %error, "poll cycle failed");
        }
        cycle = cycle.and(devices);
        if settings.timeline.enabled {
            let report = self
                .counted(SourceKind::Timeline, self.timeline_source().cycle())
                .await?;
            // The first failure is the one returned.
            cycle = cycle.and(log_cycle(crate::source::timeline::SOURCE, report));
        }
        let outputs = self.start_outputs();
        let deadline = Instant::now() + ONCE_DELIVERY_LIMIT;
        let delivered = once_outcome(outputs.finish(deadline).await);
        cycle?;
        delivered
    }

    /// Runs one source's part of `once` and counts the requests it sent
    /// against the source's share, as the scheduler counts its own. A
    /// daemon started later the same day then limits the source to what
    /// is left of its share.
    async fn counted<R>(
        &self,
        source: SourceKind,
        part: impl Future<Output = R>,
    ) -> Result<R, StateError> {
        let before = self.budget.ledger()?;
        let result = part.await;
        let after = self.budget.ledger()?;
        // When the day turned during the part, every request on the new
        // day's ledger line is the part's.
        let spent = if after.day == before.day {
            after.used - before.used
        } else {
            after.used
        };
        if spent > 0 {
            background::record_spent(self, source, spent)?;
        }
        Ok(result)
    }

    /// Runs one device inventory cycle, then fetches the devices that
    /// held alerts wait for and releases those whose wait is over. Stops
    /// at the first failure; what was stored before it stays.
    async fn devices_once(&self) -> Result<(), SourceError> {
        let settings = self.settings();
        let devices = self.device_source();
        let inventory = if settings.devices.enabled {
            devices.cycle().await?
        } else {
            CycleReport::default()
        };
        // Each call releases every alert held for one device, so this
        // ends after at most one request per held device.
        let mut held = CycleReport::default();
        let fetched = loop {
            match devices.fetch_held(&mut held).await {
                Ok(true) => {}
                Ok(false) => break Ok(()),
                Err(error) => break Err(error),
            }
        };
        // When the day cannot pay for a device record, its held alerts go
        // out now without device fields, because `once` must deliver
        // everything it stored.
        let unaffordable = match &fetched {
            Err(SourceError::Api(error)) if error.kind() == ErrorKind::DayClosed => {
                devices.release_unaffordable()?
            }
            _ => 0,
        };
        let expired = devices.release_expired()? + unaffordable;
        tracing::info!(
            source = crate::source::devices::SOURCE,
            requests = inventory.requests + held.requests,
            listed = inventory.listed,
            stored = inventory.stored + held.stored,
            released = held.released + expired,
            "poll cycle"
        );
        fetched
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
        tracing::info!(path = %self.settings().state.path.display(), ?cursors, pending, outbox,
            "state opened");
        Ok(())
    }
}

/// Logs the outcome of one source's cycle for `once`.
fn log_cycle(
    source: &'static str,
    report: Result<CycleReport, SourceError>,
) -> Result<(), SourceError> {
    let report = report.inspect_err(|error| {
        tracing::error!(source, %error, "poll cycle failed");
    })?;
    tracing::info!(
        source,
        requests = report.requests,
        listed = report.listed,
        stored = report.stored,
        duplicates = report.duplicates,
        dropped = report.dropped,
        "poll cycle"
    );
    Ok(())
}

/// Returns the result of `once` from the end of each output's task:
/// every output must have delivered everything.
fn once_outcome(ended: Vec<(String, Result<Outcome, String>)>) -> Result<(), ServiceError> {
    let mut outcome = Ok(());
    for (output, ended) in ended {
        let failure = match ended {
            Ok(Ok(Ended::CaughtUp)) => continue,
            Ok(Ok(Ended::Aborted)) => ServiceError::Undelivered {
                output,
                limit: ONCE_DELIVERY_LIMIT,
            },
            Ok(Err(error)) => ServiceError::State(error),
            Err(error) => ServiceError::Task(error),
        };
        tracing::error!(error = %failure, "delivery ended early");
        if outcome.is_ok() {
            outcome = Err(failure);
        }
    }
    outcome
}
