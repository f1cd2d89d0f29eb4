//! One delivery task per output: reads the outbox from the output's own
//! position, encodes each event within the output's `max_message_bytes`,
//! sends the batch, and moves the position only after the transport
//! accepted every message. An output that is down holds back only
//! itself.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::clock::Clock;
use crate::event::Event;
use crate::format::{Fitted, Formatter};
use crate::metrics::Metrics;
use crate::sink::Sink;
use crate::state::{OutboxRow, StateError, Store};

/// Outbox rows read and sent per batch. The position is committed after
/// each batch, so this also bounds what a crash between send and commit
/// can deliver twice.
const BATCH: usize = 64;

/// How often an idle task looks at the outbox without being woken.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// Shared by the delivery tasks of one service.
#[derive(Clone)]
pub struct Delivery {
    pub store: Arc<Store>,
    /// Read again for each batch, so a reloaded config applies from the
    /// next batch on.
    pub shared: watch::Receiver<Arc<Shared>>,
    pub clock: Clock,
    /// Woken when a source stored new events.
    pub wake: Arc<Notify>,
    pub metrics: Metrics,
}

/// The settings every delivery task uses, replaced as a whole when the
/// config is reloaded.
pub struct Shared {
    pub formatter: Formatter,
    /// Names of all configured outputs; a row leaves the outbox once
    /// each of them delivered it.
    pub outputs: Vec<String>,
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
        let counted = self.metrics.output(&name);
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
                let max_bytes = sink.settings().max_message_bytes;
                let shared = self.shared.borrow().clone();
                let messages = self.encode(&shared.formatter, &rows, max_bytes);
                match sink.deliver(&messages, &abort).await {
                    Ok(done) => {
                        self.store.advance(&name, last, &shared.outputs)?;
                        let now = self.clock.now_ms();
                        counted.delivered(done.sent, done.truncated, done.dropped, now);
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

    /// Encodes each readable row within `max_bytes`. The formatter
    /// shortens values so the message stays valid CEF, and only a
    /// message it cannot fit reaches the sink's oversize policy.
    fn encode(&self, formatter: &Formatter, rows: &[OutboxRow], max_bytes: usize) -> Vec<Vec<u8>> {
        let now = self.clock.now_ms();
        let mut messages = Vec::with_capacity(rows.len());
        let mut shortened = 0;
        for row in rows {
            match &row.event {
                Ok(event) => {
                    let mut message = Vec::with_capacity(512);
                    let fitted = formatter.encode_within(event, now, max_bytes, &mut message);
                    if fitted == Fitted::Shortened {
                        shortened += 1;
                    }
                    log_fitted(row.seq, event, fitted, message.len());
                    messages.push(message);
                }
                // Stored by a build whose event layout this one cannot
                // read: skipping it is the only way forward, so say so.
                Err(error) => tracing::error!(seq = row.seq, %error,
                    "outbox row cannot be read; skipped"),
            }
        }
        // One line per batch, not per message, so a stream of long
        // alerts does not flood the journal. Messages still too long are
        // counted by the sink, which applies the oversize policy.
        if shortened > 0 {
            tracing::warn!(
                shortened,
                max_message_bytes = max_bytes,
                "messages shortened to fit the output"
            );
        }
        messages
    }
}

/// Logs, at debug level, which alert or device a shortened message
/// carries.
fn log_fitted(seq: i64, event: &Event, fitted: Fitted, bytes: usize) {
    let (alert_id, device_id) = match event {
        Event::Alert(alert_event) => (Some(alert_event.alert.alert_id.as_str()), None),
        Event::Timeline(record) => (None, Some(record.device_id.as_str())),
        Event::Inventory(inventory) => (None, Some(inventory.device.device_id.as_str())),
    };
    let kind = event.kind_name();
    match fitted {
        Fitted::Whole => {}
        Fitted::Shortened => {
            tracing::debug!(
                seq,
                kind,
                alert_id,
                device_id,
                bytes,
                "message shortened to fit"
            )
        }
        Fitted::TooLong => tracing::debug!(
            seq,
            kind,
            alert_id,
            device_id,
            bytes,
            "message too long even when shortened; oversize policy applies"
        ),
    }
}
