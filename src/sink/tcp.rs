//! The TCP transport: one connection kept across deliveries, framed by
//! [`FrameEncoder`], re-established with backoff whenever a write, flush
//! or timeout fails.

use std::io;
use std::time::Duration;

use futures::SinkExt;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_util::codec::FramedWrite;
use tokio_util::sync::CancellationToken;

use super::framing::{FrameEncoder, FramingError};
use super::retry::{Reconnect, connect_within};
use super::{Cancelled, OutputSettings, TransportError, resolve};

type Writer = FramedWrite<TcpStream, FrameEncoder>;

/// Messages written between flushes. After a failure at most this many
/// messages, the ones since the last successful flush, are sent again.
const FLUSH_EVERY: usize = 64;

/// Reads at most this many times when probing a connection, so a peer
/// that keeps sending cannot hold the probe.
const PROBE_READS: usize = 16;

#[derive(Debug)]
pub struct TcpTransport {
    writer: Option<Writer>,
    pub(super) reconnect: Reconnect,
}

impl TcpTransport {
    pub fn new(settings: &OutputSettings) -> Self {
        TcpTransport {
            writer: None,
            reconnect: Reconnect::new(settings),
        }
    }

    /// Writes and flushes every message, reconnecting as often as needed.
    /// A message whose flush was not confirmed is sent again on the next
    /// connection, so delivery is at least once.
    pub async fn deliver(
        &mut self,
        settings: &OutputSettings,
        messages: &[&[u8]],
        cancel: &CancellationToken,
    ) -> Result<(), Cancelled> {
        let mut confirmed = 0;
        while confirmed < messages.len() {
            if cancel.is_cancelled() {
                return Err(Cancelled);
            }
            self.drop_if_closed(settings, cancel).await?;
            let Some(writer) = self.writer.as_mut() else {
                self.connect(settings, cancel).await?;
                continue;
            };

            let pending = &messages[confirmed..];
            let write_timeout = settings.write_timeout;
            let result = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(Cancelled),
                result = write_all(writer, pending, write_timeout, &mut confirmed) => result,
            };
            if let Err(error) = result {
                self.writer = None;
                self.reconnect.lost(settings, &error, cancel).await?;
            }
        }
        if !messages.is_empty() {
            self.reconnect.succeeded();
        }
        Ok(())
    }

    /// Drops the connection when the receiver has closed it. Without this
    /// check the first batch after a receiver restart would be written
    /// into a dead socket, and the kernel would report success.
    async fn drop_if_closed(
        &mut self,
        settings: &OutputSettings,
        cancel: &CancellationToken,
    ) -> Result<(), Cancelled> {
        let closed = self
            .writer
            .as_ref()
            .is_some_and(|w| peer_closed(w.get_ref()));
        if closed {
            self.writer = None;
            let error = TransportError::Closed;
            self.reconnect.lost(settings, &error, cancel).await?;
        }
        Ok(())
    }

    /// Makes one connection attempt, and waits out the backoff delay when
    /// it fails.
    async fn connect(
        &mut self,
        settings: &OutputSettings,
        cancel: &CancellationToken,
    ) -> Result<(), Cancelled> {
        let attempt = open(&settings.address);
        match connect_within(settings, cancel, attempt).await? {
            Ok(stream) => {
                let encoder = FrameEncoder::new(settings.framing);
                self.writer = Some(FramedWrite::new(stream, encoder));
                self.reconnect.connected(settings);
                Ok(())
            }
            Err(error) => self.reconnect.failed(settings, &error, cancel).await,
        }
    }
}

/// Connects to the first address of `address` that accepts. The name is
/// resolved on every call, so a receiver that moves is found again.
async fn open(address: &str) -> Result<TcpStream, TransportError> {
    let mut last_error = TransportError::NoAddress {
        address: address.to_owned(),
    };
    for peer in resolve(address).await? {
        match TcpStream::connect(peer).await {
            Ok(stream) => return Ok(stream),
            Err(source) => last_error = TransportError::Connect { peer, source },
        }
    }
    Err(last_error)
}

/// Returns whether the receiver closed the connection or reset it. A syslog
/// receiver sends nothing, so readable end-of-stream means it is gone.
/// Data it does send is discarded.
fn peer_closed(stream: &TcpStream) -> bool {
    let mut buffer = [0u8; 512];
    for _ in 0..PROBE_READS {
        match stream.try_read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
    false
}

/// Writes `messages` in chunks of [`FLUSH_EVERY`], adding each flushed
/// chunk to `confirmed`.
async fn write_all(
    writer: &mut Writer,
    messages: &[&[u8]],
    write_timeout: Duration,
    confirmed: &mut usize,
) -> Result<(), TransportError> {
    for chunk in messages.chunks(FLUSH_EVERY) {
        match timeout(write_timeout, write_chunk(writer, chunk)).await {
            Ok(Ok(())) => *confirmed += chunk.len(),
            Ok(Err(error)) => return Err(error),
            Err(_) => return Err(TransportError::SendTimeout(write_timeout)),
        }
    }
    Ok(())
}

async fn write_chunk(writer: &mut Writer, chunk: &[&[u8]]) -> Result<(), TransportError> {
    for message in chunk {
        match writer.feed(*message).await {
            Ok(()) => {}
            // The sink drops such messages before they get here, and a
            // rejected message leaves nothing in the buffer.
            Err(FramingError::LineFeed) => {}
            Err(FramingError::Io(error)) => return Err(TransportError::Send(error)),
        }
    }
    let flushed = SinkExt::<&[u8]>::flush(writer).await;
    flushed.map_err(|error| match error {
        FramingError::Io(error) => TransportError::Send(error),
        // Flushing encodes nothing, so only I/O errors reach here.
        other => TransportError::Send(io::Error::other(other)),
    })
}
