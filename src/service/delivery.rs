//! One delivery task per output: reads the outbox from the output's own
//! position, encodes each event, sends the batch, and moves the
//! position only after the transport accepted every message. An output
//! that is down holds back only itself.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::clock::Clock;
use crate::format::Formatter;
use crate::sink::Sink;
use crate::state::{StateError, Store};

/// Outbox rows read and sent per batch.
const BATCH: usize = 500;

/// How often an idle task looks at the outbox without being woken.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// Shared by the delivery tasks of one service.
#[derive(Clone)]
pub struct Delivery {
    pub store: Arc<Store>,
    pub formatter: Arc<Formatter>,
    pub clock: Clock,
    /// Names of all configured outputs; a row leaves the outbox once
    /// each of them delivered it.
    pub outputs: Arc<Vec<String>>,
    /// Woken when a source stored new events.
    pub wake: Arc<Notify>,
}

/// How a delivery task ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// `drain` fired and the output had delivered everything.
    CaughtUp,
    /// `abort` fired first.
    Aborted,
}

impl Delivery {
    /// Delivers until `abort` fires, or until `drain` has fired and the
    /// output has caught up with the outbox.
    pub async fn run(
        self,
        mut sink: Sink,
        drain: CancellationToken,
        abort: CancellationToken,
    ) -> Result<Ended, StateError> {
        let name = sink.settings().name.clone();
        let span = tracing::info_span!("sink", output = %name);
        async move {
            let mut position = self.store.position(&name)?;
            loop {
                let rows = self.store.outbox_after(position, BATCH)?;
                if rows.is_empty() {
                    if drain.is_cancelled() {
                        return Ok(Ended::CaughtUp);
                    }
                    self.idle(&drain, &abort).await;
                    if abort.is_cancelled() {
                        return Ok(Ended::Aborted);
                    }
                    continue;
                }
                let last = rows.last().map_or(position, |row| row.seq);
                let messages = self.encode(&rows);
                match sink.deliver(&messages, &abort).await {
                    Ok(done) => {
                        self.store.advance(&name, last, &self.outputs)?;
                        tracing::debug!(
                            sent = done.sent,
                            dropped = done.dropped,
                            truncated = done.truncated,
                            position = last,
                            "batch delivered"
                        );
                        position = last;
                    }
                    Err(_) => return Ok(Ended::Aborted),
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn idle(&self, drain: &CancellationToken, abort: &CancellationToken) {
        tokio::select! {
            () = self.wake.notified() => {}
            () = tokio::time::sleep(IDLE_POLL) => {}
            () = drain.cancelled() => {}
            () = abort.cancelled() => {}
        }
    }

    fn encode(&self, rows: &[crate::state::OutboxRow]) -> Vec<Vec<u8>> {
        let now = self.clock.now_ms();
        let mut messages = Vec::with_capacity(rows.len());
        for row in rows {
            match &row.event {
                Ok(event) => {
                    let mut message = Vec::with_capacity(512);
                    self.formatter.encode_at(event, now, &mut message);
                    messages.push(message);
                }
                // Stored by a build whose event layout this one cannot
                // read: skipping it is the only way forward, so say so.
                Err(error) => tracing::error!(seq = row.seq, %error,
                    "outbox row cannot be read; skipped"),
            }
        }
        messages
    }
}
