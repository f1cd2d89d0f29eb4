//! Transports that send encoded syslog messages to one output.
//!
//! [`Sink::deliver`] applies the size policy, then hands the messages to
//! the TCP transport (framed by [`framing`]) or the UDP transport, which
//! retry with the backoff in [`retry`] until the messages are accepted.

pub mod framing;
pub mod retry;
mod tcp;
mod udp;

#[cfg(test)]
mod tests;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::metrics::OutputMetrics;
use tcp::TcpTransport;
use udp::UdpTransport;

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

#[derive(Clone, Debug, PartialEq, Eq)]
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

/// A failed attempt to reach the receiver. All of these are transient,
/// so the transports retry them with backoff.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("resolving {address} failed: {source}")]
    Resolve { address: String, source: io::Error },
    #[error("{address} resolved to no address")]
    NoAddress { address: String },
    #[error("connecting to {peer} failed: {source}")]
    Connect { peer: SocketAddr, source: io::Error },
    #[error("connecting timed out after {0:?}")]
    ConnectTimeout(Duration),
    #[error("sending timed out after {0:?}")]
    SendTimeout(Duration),
    #[error("sending failed: {0}")]
    Send(io::Error),
    #[error("connection closed by the receiver")]
    Closed,
}

/// Resolves `host:port`, on every connection attempt so that a changed
/// DNS record takes effect.
async fn resolve(address: &str) -> Result<Vec<SocketAddr>, TransportError> {
    let resolved = tokio::net::lookup_host(address).await;
    let resolved = resolved.map_err(|source| TransportError::Resolve {
        address: address.to_owned(),
        source,
    })?;
    Ok(resolved.collect())
}

#[derive(Debug)]
enum Transport {
    Tcp(TcpTransport),
    Udp(UdpTransport),
}

/// One output's connection, kept open across calls.
pub struct Sink {
    settings: OutputSettings,
    transport: Transport,
}

impl Sink {
    pub fn new(settings: OutputSettings) -> Self {
        let transport = match settings.protocol {
            Protocol::Tcp => Transport::Tcp(TcpTransport::new(&settings)),
            Protocol::Udp => Transport::Udp(UdpTransport::new(&settings)),
        };
        Sink {
            settings,
            transport,
        }
    }

    pub fn settings(&self) -> &OutputSettings {
        &self.settings
    }

    /// Counts each failed connection or send attempt in `metrics`.
    pub fn with_metrics(mut self, metrics: OutputMetrics) -> Self {
        match &mut self.transport {
            Transport::Tcp(tcp) => tcp.reconnect.count_errors_in(metrics),
            Transport::Udp(udp) => udp.reconnect.count_errors_in(metrics),
        }
        self
    }

    /// Sends every message, reconnecting with jittered exponential backoff
    /// until the transport accepted all of them or `cancel` fires.
    ///
    /// "Accepted" means written and flushed to the kernel (TCP) or sent
    /// as a datagram (UDP). Messages over `max_message_bytes` are cut or
    /// dropped first, per `oversize`.
    pub async fn deliver(
        &mut self,
        messages: &[Vec<u8>],
        cancel: &CancellationToken,
    ) -> Result<Delivered, Cancelled> {
        let (fitted, mut delivered) = prepare(messages, &self.settings);
        let settings = &self.settings;
        match &mut self.transport {
            Transport::Tcp(tcp) => {
                tcp.deliver(settings, &fitted, cancel).await?;
                delivered.sent = fitted.len();
            }
            Transport::Udp(udp) => {
                let counts = udp.deliver(settings, &fitted, cancel).await?;
                delivered.sent = counts.sent;
                delivered.dropped += counts.too_long;
            }
        }
        Ok(delivered)
    }
}

/// Applies the size policy, and for LF framing drops any message that
/// contains a line feed, which would forge a second message.
fn prepare<'a>(messages: &'a [Vec<u8>], settings: &OutputSettings) -> (Vec<&'a [u8]>, Delivered) {
    let lf_framed = settings.protocol == Protocol::Tcp && settings.framing == Framing::Lf;
    let mut counts = Delivered::default();
    let mut line_feeds = 0;
    let mut fitted = Vec::with_capacity(messages.len());
    for message in messages {
        if lf_framed && framing::check_lf(message).is_err() {
            line_feeds += 1;
            continue;
        }
        match fit(message, settings.max_message_bytes, settings.oversize) {
            Some(cut) if cut.len() < message.len() => {
                counts.truncated += 1;
                fitted.push(cut);
            }
            Some(whole) => fitted.push(whole),
            None => counts.dropped += 1,
        }
    }
    log_prepared(settings, &counts, line_feeds);
    counts.dropped += line_feeds;
    (fitted, counts)
}

/// Returns the message within `max_bytes`, cut at a UTF-8 character
/// boundary, or `None` when the policy drops oversize messages.
///
/// NOTE: the delivery task has the formatter fit each message first, so
/// this cut only meets messages reported as `Fitted::TooLong`. It cuts
/// the escaped bytes and can leave an invalid CEF record.
pub fn fit(message: &[u8], max_bytes: usize, oversize: Oversize) -> Option<&[u8]> {
    if message.len() <= max_bytes {
        return Some(message);
    }
    match oversize {
        Oversize::Truncate => Some(truncate_utf8(message, max_bytes)),
        Oversize::Drop => None,
    }
}

/// Cuts `message` to at most `max_bytes`, moving back over UTF-8
/// continuation bytes (`10xxxxxx`) so no character is split.
pub fn truncate_utf8(message: &[u8], max_bytes: usize) -> &[u8] {
    if message.len() <= max_bytes {
        return message;
    }
    let mut end = max_bytes;
    while end > 0 && message[end] & 0xC0 == 0x80 {
        end -= 1;
    }
    &message[..end]
}

/// Logs one line per call, not per message, so an output whose every
/// message is oversize does not flood the journal.
fn log_prepared(settings: &OutputSettings, counts: &Delivered, line_feeds: usize) {
    let output = &settings.name;
    let max_message_bytes = settings.max_message_bytes;
    let (truncated, dropped) = (counts.truncated, counts.dropped);
    if truncated + dropped > 0 {
        warn!(output = %output, truncated, dropped, max_message_bytes, "oversize messages");
    }
    if line_feeds > 0 {
        warn!(output = %output, dropped = line_feeds, "messages with a line feed dropped");
    }
}
