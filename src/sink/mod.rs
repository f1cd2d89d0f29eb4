//! Transports that send encoded syslog messages to one output.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Udp,
    Tcp,
}

/// TCP framing from RFC 6587.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Each message followed by a line feed ("non-transparent framing").
    Lf,
    /// `LEN SP MSG`, LEN in ASCII decimal bytes.
    OctetCounting,
}

/// What to do with a message longer than `max_message_bytes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Oversize {
    Truncate,
    Drop,
}

#[derive(Clone, Debug)]
pub struct OutputSettings {
    pub name: String,
    /// `host:port`.
    pub address: String,
    pub protocol: Protocol,
    pub framing: Framing,
    pub max_message_bytes: usize,
    pub oversize: Oversize,
    pub connect_timeout: Duration,
    pub write_timeout: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

/// Counts of one [`Sink::deliver`] call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    pub sent: usize,
    pub truncated: usize,
    pub dropped: usize,
}

/// Returned when delivery stopped because shutdown was requested.
#[derive(Debug, thiserror::Error)]
#[error("delivery cancelled")]
pub struct Cancelled;

/// One output's connection, kept open across calls.
pub struct Sink {
    settings: OutputSettings,
}

impl Sink {
    pub fn new(settings: OutputSettings) -> Self {
        Sink { settings }
    }

    pub fn settings(&self) -> &OutputSettings {
        &self.settings
    }

    /// Sends every message, reconnecting with jittered exponential backoff
    /// until the transport accepted all of them or `cancel` fires.
    pub async fn deliver(
        &mut self,
        messages: &[Vec<u8>],
        cancel: &CancellationToken,
    ) -> Result<Delivered, Cancelled> {
        let _ = (messages, cancel);
        todo!("sink helper")
    }
}
