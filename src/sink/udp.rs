//! The UDP transport (RFC 5426): one message per datagram, no trailing
//! newline, on a socket connected to the receiver so ICMP errors surface.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::net::UdpSocket;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::retry::{Reconnect, connect_within};
use super::{Cancelled, OutputSettings, TransportError, resolve};

/// `EMSGSIZE`: the datagram is larger than the network can carry.
#[cfg(target_os = "linux")]
const EMSGSIZE: Option<i32> = Some(90);
#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "netbsd",
    target_os = "dragonfly"
))]
const EMSGSIZE: Option<i32> = Some(40);
/// `WSAEMSGSIZE`.
#[cfg(windows)]
const EMSGSIZE: Option<i32> = Some(10040);
#[cfg(not(any(
    target_os = "linux",
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "netbsd",
    target_os = "dragonfly",
    windows
)))]
const EMSGSIZE: Option<i32> = None;

/// Counts of one UDP delivery.
#[derive(Clone, Copy, Debug, Default)]
pub struct UdpCounts {
    pub sent: usize,
    /// Datagrams the kernel rejected as too long (`EMSGSIZE`).
    pub too_long: usize,
}

#[derive(Debug)]
pub struct UdpTransport {
    socket: Option<UdpSocket>,
    pub(super) reconnect: Reconnect,
}

impl UdpTransport {
    pub fn new(settings: &OutputSettings) -> Self {
        UdpTransport {
            socket: None,
            reconnect: Reconnect::new(settings),
        }
    }

    /// Sends each message as one datagram. `EMSGSIZE` is permanent, so
    /// that message is dropped. Any other error, such as `ECONNREFUSED`
    /// after an ICMP port unreachable, is retried on a new socket after
    /// the backoff delay.
    pub async fn deliver(
        &mut self,
        settings: &OutputSettings,
        messages: &[&[u8]],
        cancel: &CancellationToken,
    ) -> Result<UdpCounts, Cancelled> {
        let mut counts = UdpCounts::default();
        let mut index = 0;
        while let Some(message) = messages.get(index) {
            if cancel.is_cancelled() {
                return Err(Cancelled);
            }
            let Some(socket) = self.socket.as_ref() else {
                self.connect(settings, cancel).await?;
                continue;
            };

            match send(socket, message, settings, cancel).await? {
                Ok(()) => counts.sent += 1,
                Err(error) if is_message_too_long(&error) => counts.too_long += 1,
                Err(error) => {
                    self.socket = None;
                    let error = TransportError::Send(error);
                    self.reconnect.lost(settings, &error, cancel).await?;
                    continue;
                }
            }
            index += 1;
        }

        if !messages.is_empty() {
            self.reconnect.succeeded();
        }
        log_too_long(settings, counts.too_long);
        Ok(counts)
    }

    async fn connect(
        &mut self,
        settings: &OutputSettings,
        cancel: &CancellationToken,
    ) -> Result<(), Cancelled> {
        let attempt = open(&settings.address);
        match connect_within(settings, cancel, attempt).await? {
            Ok(socket) => {
                self.socket = Some(socket);
                self.reconnect.connected(settings);
                Ok(())
            }
            Err(error) => self.reconnect.failed(settings, &error, cancel).await,
        }
    }
}

/// Sends one datagram within the write timeout. The outer error is
/// cancellation; the inner one is the send's.
async fn send(
    socket: &UdpSocket,
    message: &[u8],
    settings: &OutputSettings,
    cancel: &CancellationToken,
) -> Result<io::Result<()>, Cancelled> {
    let write_timeout = settings.write_timeout;
    let sent = tokio::select! {
        biased;
        _ = cancel.cancelled() => return Err(Cancelled),
        sent = timeout(write_timeout, socket.send(message)) => sent,
    };
    let result = match sent {
        Ok(result) => result.map(|_| ()),
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "send timed out")),
    };
    Ok(result)
}

/// Binds a socket of the receiver's address family and connects it to
/// the first address `address` resolves to.
async fn open(address: &str) -> Result<UdpSocket, TransportError> {
    let peer = resolve(address).await?.into_iter().next();
    let peer = peer.ok_or_else(|| TransportError::NoAddress {
        address: address.to_owned(),
    })?;
    let local: SocketAddr = match peer {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let connect_error = |source| TransportError::Connect { peer, source };
    let socket = UdpSocket::bind(local).await.map_err(connect_error)?;
    socket.connect(peer).await.map_err(connect_error)?;
    Ok(socket)
}

fn is_message_too_long(error: &io::Error) -> bool {
    EMSGSIZE.is_some() && error.raw_os_error() == EMSGSIZE
}

fn log_too_long(settings: &OutputSettings, dropped: usize) {
    if dropped > 0 {
        let output = &settings.name;
        warn!(output = %output, dropped, "datagrams too long for the network, dropped");
    }
}
