//! The delivery tasks of a running service, one per output: started
//! from the config, changed by a reload, and drained at shutdown.
//!
//! An output added by a reload starts from the rows still in the outbox,
//! as an output added between two runs does: rows every other output
//! delivered before the reload are gone and do not reach it. A removed
//! output's task stops at once and its position is deleted, so rows
//! that only it still needed can leave the outbox. A changed output's task stops and a
//! new one starts from the same position.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::delivery::{Delivery, Ended, Shared};
use crate::clock::Clock;
use crate::config::Settings;
use crate::format::Formatter;
use crate::metrics::Metrics;
use crate::sink::{OutputSettings, Sink};
use crate::state::{StateError, Store};

/// The end of one output's task: caught up, aborted, or failed.
pub(super) type Outcome = Result<Ended, StateError>;

pub(super) struct Outputs {
    delivery: Delivery,
    shared: watch::Sender<Arc<Shared>>,
    /// Fired at shutdown: each task stops once it has caught up.
    drain: CancellationToken,
    /// Fired at the shutdown deadline: each task stops at once. Every
    /// task's own stop token is a child of it.
    abort: CancellationToken,
    running: BTreeMap<String, Running>,
}

struct Running {
    settings: OutputSettings,
    stop: CancellationToken,
    task: JoinHandle<Outcome>,
}

impl Outputs {
    /// Starts one delivery task per configured output.
    pub fn start(
        store: Arc<Store>,
        clock: Clock,
        wake: Arc<Notify>,
        metrics: Metrics,
        settings: &Settings,
    ) -> Self {
        let (shared, _) = watch::channel(shared_of(settings));
        let delivery = Delivery {
            store,
            shared: shared.subscribe(),
            clock,
            wake,
            metrics,
        };
        let mut outputs = Outputs {
            delivery,
            shared,
            drain: CancellationToken::new(),
            abort: CancellationToken::new(),
            running: BTreeMap::new(),
        };
        for output in &settings.outputs {
            outputs.spawn(output.clone());
        }
        outputs
    }

    fn spawn(&mut self, output: OutputSettings) {
        tracing::info!(output = %output.name, address = %output.address,
            protocol = ?output.protocol, framing = ?output.framing, "output configured");
        let delivery = self.delivery.clone();
        let stop = self.abort.child_token();
        let drain = self.drain.clone();
        let sink =
            Sink::new(output.clone()).with_metrics(self.delivery.metrics.output(&output.name));
        let task_stop = stop.clone();
        let task = tokio::spawn(async move { delivery.run(sink, drain, task_stop).await });
        let name = output.name.clone();
        let running = Running {
            settings: output,
            stop,
            task,
        };
        self.running.insert(name, running);
    }

    /// Applies the outputs and format settings of a reloaded config:
    /// starts added outputs, stops removed ones and deletes their
    /// positions, and restarts changed ones from their positions.
    pub async fn apply(&mut self, settings: &Settings) -> Result<(), StateError> {
        self.shared.send_replace(shared_of(settings));
        let configured: BTreeMap<&str, &OutputSettings> = settings
            .outputs
            .iter()
            .map(|output| (output.name.as_str(), output))
            .collect();
        let stale: Vec<String> = self
            .running
            .iter()
            .filter(|(name, running)| configured.get(name.as_str()) != Some(&&running.settings))
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            // The old task must end before a new one starts, or both
            // would send the same rows.
            self.stop(&name).await;
            match configured.get(name.as_str()) {
                Some(output) => {
                    tracing::info!(output = %name, "output changed; restarting its delivery");
                    self.spawn((*output).clone());
                }
                None => tracing::info!(output = %name, "output removed"),
            }
        }
        for (name, output) in configured {
            if !self.running.contains_key(name) {
                tracing::info!(output = %name, "output added");
                self.spawn(output.clone());
            }
        }
        let names: Vec<String> = settings.outputs.iter().map(|o| o.name.clone()).collect();
        self.delivery.store.retain_outputs(&names)
    }

    async fn stop(&mut self, name: &str) {
        let Some(running) = self.running.remove(name) else {
            return;
        };
        running.stop.cancel();
        match running.task.await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::error!(output = %name, %error, "delivery task failed before it was stopped")
            }
            Err(error) => tracing::error!(output = %name, %error, "delivery task panicked"),
        }
    }

    /// Lets every task deliver what is stored until `deadline`, then
    /// stops the rest, and returns how each task ended.
    pub async fn finish(mut self, deadline: Instant) -> Vec<(String, Result<Outcome, String>)> {
        self.drain.cancel();
        let guard = self.abort.clone();
        let timer = tokio::spawn(async move {
            tokio::time::sleep_until(deadline).await;
            guard.cancel();
        });
        let mut ended = Vec::new();
        for (name, running) in std::mem::take(&mut self.running) {
            let outcome = running.task.await.map_err(|error| error.to_string());
            ended.push((name, outcome));
        }
        timer.abort();
        ended
    }
}

fn shared_of(settings: &Settings) -> Arc<Shared> {
    Arc::new(Shared {
        formatter: Formatter::new(settings.format.clone()),
        outputs: settings.outputs.iter().map(|o| o.name.clone()).collect(),
    })
}
