//! A small syslog receiver for `listen`, `demo` and the tests.
//!
//! TCP accepts both RFC 6587 framings on one port and detects the framing
//! of each frame as rsyslog's `imtcp` does: a frame that starts with a
//! digit is octet counted (`LEN SP MSG`), any other ends at a line feed.
//! UDP takes one message per datagram.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use chrono::{Datelike, SecondsFormat, Utc};
use futures::StreamExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio_util::codec::{Decoder, FramedRead};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::clock::Clock;
use crate::sink::Protocol;

/// Largest message accepted, in bytes. It covers the largest UDP payload
/// (65,507 bytes) and bounds the memory one TCP connection can hold.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Digits of the largest octet count accepted: `65536` has five.
const MAX_LENGTH_DIGITS: usize = 5;

/// Pause after a failed `accept`, such as running out of file
/// descriptors, so the loop does not spin.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);

/// One message as received, and a one-line rendering of it.
#[derive(Clone, Debug)]
pub struct Received {
    /// The message without framing.
    pub raw: String,
    pub peer: SocketAddr,
}

/// Binds `addr`, returns the bound address, and forwards every received
/// message to `tx` until `cancel` fires.
pub async fn spawn(
    protocol: Protocol,
    addr: SocketAddr,
    tx: mpsc::UnboundedSender<Received>,
    cancel: CancellationToken,
) -> std::io::Result<SocketAddr> {
    match protocol {
        Protocol::Tcp => {
            let listener = TcpListener::bind(addr).await?;
            let local = listener.local_addr()?;
            tokio::spawn(serve_tcp(listener, tx, cancel));
            Ok(local)
        }
        Protocol::Udp => {
            let socket = UdpSocket::bind(addr).await?;
            let local = socket.local_addr()?;
            tokio::spawn(serve_udp(socket, tx, cancel));
            Ok(local)
        }
    }
}

async fn serve_tcp(
    listener: TcpListener,
    tx: mpsc::UnboundedSender<Received>,
    cancel: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let connection = read_connection(stream, peer, tx.clone(), cancel.clone());
                tokio::spawn(connection);
            }
            Err(error) => {
                warn!(%error, "accept failed");
                tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
            }
        }
    }
}

/// Forwards the frames of one connection. A bad frame closes the
/// connection, because the position of the next frame is unknown.
async fn read_connection(
    stream: TcpStream,
    peer: SocketAddr,
    tx: mpsc::UnboundedSender<Received>,
    cancel: CancellationToken,
) {
    let decoder = SyslogFrameDecoder::new(MAX_MESSAGE_BYTES);
    let mut frames = FramedRead::new(stream, decoder);
    loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => return,
            next = frames.next() => next,
        };
        let frame = match next {
            None => return,
            Some(Ok(frame)) => frame,
            Some(Err(FrameError::Io(error))) => {
                debug!(%peer, %error, "connection failed");
                return;
            }
            Some(Err(error)) => {
                warn!(%peer, %error, "invalid frame, closing connection");
                return;
            }
        };
        if forward(&tx, &frame, peer).is_err() {
            return;
        }
    }
}

async fn serve_udp(
    socket: UdpSocket,
    tx: mpsc::UnboundedSender<Received>,
    cancel: CancellationToken,
) {
    let mut buffer = vec![0u8; MAX_MESSAGE_BYTES];
    loop {
        let received = tokio::select! {
            _ = cancel.cancelled() => return,
            received = socket.recv_from(&mut buffer) => received,
        };
        match received {
            Ok((length, peer)) => {
                if forward(&tx, &buffer[..length], peer).is_err() {
                    return;
                }
            }
            Err(error) => warn!(%error, "receive failed"),
        }
    }
}

/// Sends one message to the consumer, and fails when it has gone away.
fn forward(
    tx: &mpsc::UnboundedSender<Received>,
    raw: &[u8],
    peer: SocketAddr,
) -> Result<(), mpsc::error::SendError<Received>> {
    let raw = String::from_utf8_lossy(raw).into_owned();
    tx.send(Received { raw, peer })
}

/// An error that ends a TCP connection.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("invalid octet count {prefix:?}: expected up to 5 digits and a space")]
    InvalidLength { prefix: String },
    #[error("frame of {length} bytes exceeds the {max} byte limit")]
    TooLong { length: usize, max: usize },
    #[error("line exceeds the {max} byte limit without a line feed")]
    LineTooLong { max: usize },
    #[error("connection closed inside an octet-counted frame")]
    Truncated,
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
}

/// Decodes RFC 6587 frames of either framing: a frame starting with a
/// digit is octet counted, any other ends at LF (a CR before the LF is
/// removed). Empty lines are skipped.
#[derive(Clone, Copy, Debug)]
pub struct SyslogFrameDecoder {
    max_bytes: usize,
}

impl SyslogFrameDecoder {
    /// Returns a decoder that rejects messages over `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        SyslogFrameDecoder { max_bytes }
    }

    fn decode_octet_counted(&self, src: &mut BytesMut) -> Result<Option<Vec<u8>>, FrameError> {
        let digits = src.iter().take_while(|b| b.is_ascii_digit()).count();
        let invalid = || FrameError::InvalidLength {
            prefix: String::from_utf8_lossy(&src[..src.len().min(12)]).into(),
        };
        if digits > MAX_LENGTH_DIGITS {
            return Err(invalid());
        }
        match src.get(digits) {
            None => return Ok(None),
            Some(b' ') => {}
            Some(_) => return Err(invalid()),
        }

        let text = std::str::from_utf8(&src[..digits]).map_err(|_| invalid())?;
        let length: usize = text.parse().map_err(|_| invalid())?;
        if length > self.max_bytes {
            let max = self.max_bytes;
            return Err(FrameError::TooLong { length, max });
        }
        if src.len() < digits + 1 + length {
            src.reserve(digits + 1 + length - src.len());
            return Ok(None);
        }
        src.advance(digits + 1);
        Ok(Some(src.split_to(length).to_vec()))
    }

    fn decode_line(&self, src: &mut BytesMut) -> Result<Option<Vec<u8>>, FrameError> {
        let max = self.max_bytes;
        let Some(end) = src.iter().position(|&b| b == b'\n') else {
            if src.len() > max {
                return Err(FrameError::LineTooLong { max });
            }
            return Ok(None);
        };
        if end > max {
            return Err(FrameError::LineTooLong { max });
        }
        let mut line = src.split_to(end + 1);
        line.truncate(end);
        Ok(Some(strip_cr(line.to_vec())))
    }
}

fn strip_cr(mut line: Vec<u8>) -> Vec<u8> {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    line
}

impl Decoder for SyslogFrameDecoder {
    type Item = Vec<u8>;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Vec<u8>>, FrameError> {
        loop {
            let frame = match src.first() {
                None => return Ok(None),
                Some(b) if b.is_ascii_digit() => return self.decode_octet_counted(src),
                Some(_) => self.decode_line(src)?,
            };
            match frame {
                Some(line) if line.is_empty() => continue,
                other => return Ok(other),
            }
        }
    }

    /// Also returns a last line without LF, which a sender leaves when it
    /// closes right after its last message.
    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Vec<u8>>, FrameError> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        match src.first() {
            None => Ok(None),
            Some(b) if b.is_ascii_digit() => Err(FrameError::Truncated),
            Some(_) => {
                let line = strip_cr(src.split().to_vec());
                Ok(Some(line).filter(|line| !line.is_empty()))
            }
        }
    }
}

/// Renders a message parsed with syslog_loose on one line.
pub fn render(raw: &str) -> String {
    render_with_year(raw, Clock::system().now().year())
}

/// Renders `TIMESTAMP HOSTNAME APPNAME: MSG`, with `-` for a missing part
/// and the timestamp in UTC. CR and LF show as `\r` and `\n`, so every
/// message takes exactly one line. An RFC 3164 timestamp has no year or
/// zone: it is read as UTC in `year`, which is how this crate writes it.
pub fn render_with_year(raw: &str, year: i32) -> String {
    let variant = syslog_loose::Variant::Either;
    let message = syslog_loose::parse_message_with_year_tz(raw, |_| year, Some(Utc), variant);
    let timestamp = message.timestamp.map_or_else(
        || "-".to_owned(),
        |time| {
            let utc = time.with_timezone(&Utc);
            utc.to_rfc3339_opts(SecondsFormat::Millis, true)
        },
    );
    let hostname = message.hostname.unwrap_or("-");
    let appname = message.appname.unwrap_or("-");
    let line = format!("{timestamp} {hostname} {appname}: {}", message.msg);
    line.replace('\r', "\\r").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::time::timeout;

    use super::*;

    const PATIENCE: Duration = Duration::from_secs(10);

    fn decode_all(input: &[u8]) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut decoder = SyslogFrameDecoder::new(64);
        let mut src = BytesMut::from(input);
        let mut frames = Vec::new();
        while let Some(frame) = decoder.decode_eof(&mut src)? {
            frames.push(frame);
        }
        Ok(frames)
    }

    #[test]
    fn decoder_detects_framing_per_frame() {
        let input = b"5 hello<13>1 a\r\n\n3 b\nc\n<14>last";
        let frames = decode_all(input).expect("frames decode");
        let expected: [&[u8]; 4] = [b"hello", b"<13>1 a", b"b\nc", b"<14>last"];
        assert_eq!(frames, expected);
    }

    #[test]
    fn decoder_waits_for_partial_frames() {
        let mut decoder = SyslogFrameDecoder::new(64);
        for partial in [&b"12"[..], b"5 abc", b"<13>1 no line feed yet"] {
            let mut src = BytesMut::from(partial);
            let frame = decoder.decode(&mut src).expect("no error");
            assert_eq!(frame, None, "{partial:?}");
            assert_eq!(src.as_ref(), partial, "input kept");
        }
    }

    #[test]
    fn decoder_rejects_bad_frames() {
        let cases: [(&str, &[u8]); 5] = [
            ("length over the limit", b"65 x"),
            ("too many digits", b"000001 x"),
            ("no space after length", b"12x"),
            ("line over the limit", &[b'a'; 65]),
            ("truncated octet frame", b"10 abc"),
        ];
        for (case, input) in cases {
            assert!(decode_all(input).is_err(), "{case}");
        }
    }

    #[test]
    fn decoder_accepts_frame_at_the_limit() {
        let mut input = b"64 ".to_vec();
        input.extend_from_slice(&[b'x'; 64]);
        let frames = decode_all(&input).expect("frame decodes");
        assert_eq!(frames, vec![vec![b'x'; 64]]);
    }

    async fn listen(
        protocol: Protocol,
    ) -> (
        SocketAddr,
        mpsc::UnboundedReceiver<Received>,
        CancellationToken,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let addr = spawn(protocol, any, tx, cancel.clone())
            .await
            .expect("bound");
        (addr, rx, cancel)
    }

    async fn next_raw(rx: &mut mpsc::UnboundedReceiver<Received>) -> Received {
        let received = timeout(PATIENCE, rx.recv()).await.expect("in time");
        received.expect("channel open")
    }

    #[tokio::test]
    async fn tcp_stream_mixes_both_framings() {
        let (addr, mut rx, cancel) = listen(Protocol::Tcp).await;
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let input = b"11 <13>1 a\nb c<13>1 lf\r\n4 \xc3\xbc!!<14>end\n";
        stream.write_all(input).await.expect("write");

        let expected = ["<13>1 a\nb c", "<13>1 lf", "\u{fc}!!", "<14>end"];
        for message in expected {
            let received = next_raw(&mut rx).await;
            assert_eq!(received.raw, message);
            assert_eq!(received.peer, stream.local_addr().expect("local"));
        }
        cancel.cancel();
    }

    #[tokio::test]
    async fn tcp_accepts_many_connections() {
        let (addr, mut rx, cancel) = listen(Protocol::Tcp).await;
        let mut first = TcpStream::connect(addr).await.expect("connect");
        let mut second = TcpStream::connect(addr).await.expect("connect");
        second.write_all(b"<13>from second\n").await.expect("write");
        assert_eq!(next_raw(&mut rx).await.raw, "<13>from second");
        first.write_all(b"<13>from first\n").await.expect("write");
        assert_eq!(next_raw(&mut rx).await.raw, "<13>from first");
        cancel.cancel();
    }

    #[tokio::test]
    async fn tcp_bad_frame_closes_only_that_connection() {
        let (addr, mut rx, cancel) = listen(Protocol::Tcp).await;
        let mut bad = TcpStream::connect(addr).await.expect("connect");
        let mut good = TcpStream::connect(addr).await.expect("connect");
        bad.write_all(b"99999999 x").await.expect("write");

        let mut buffer = [0u8; 16];
        let read = timeout(PATIENCE, bad.read(&mut buffer))
            .await
            .expect("in time");
        assert!(matches!(read, Ok(0) | Err(_)), "still open: {read:?}");

        good.write_all(b"<13>still here\n").await.expect("write");
        assert_eq!(next_raw(&mut rx).await.raw, "<13>still here");
        cancel.cancel();
    }

    #[tokio::test]
    async fn udp_takes_one_message_per_datagram() {
        let (addr, mut rx, cancel) = listen(Protocol::Udp).await;
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        socket.send_to(b"<13>1 a\nb", addr).await.expect("send");
        socket.send_to(b"5 <13>c", addr).await.expect("send");

        let first = next_raw(&mut rx).await;
        assert_eq!(first.raw, "<13>1 a\nb");
        assert_eq!(first.peer, socket.local_addr().expect("local"));
        assert_eq!(next_raw(&mut rx).await.raw, "5 <13>c");
        cancel.cancel();
    }

    #[tokio::test]
    async fn cancel_stops_listener() {
        let (addr, mut rx, cancel) = listen(Protocol::Tcp).await;
        cancel.cancel();
        let closed = timeout(PATIENCE, rx.recv()).await.expect("in time");
        assert!(closed.is_none(), "channel closed after cancel");
        assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
    }

    /// Sends a formatted alert with hostile text through a sink to the
    /// listener, over both framings, and parses the CEF record back.
    #[tokio::test]
    async fn sink_output_parses_back() {
        use crate::api::Alert;
        use crate::event::{AlertEvent, Event};
        use crate::format::{FormatSettings, Formatter, SyslogHeader, parse_cef};
        use crate::sink::{Framing, OutputSettings, Oversize, Sink};

        let hostile = "a|b\\c=d\r\n<13>1 x cs1=forged \u{2603}";
        let alert = Alert {
            alert_id: "7".into(),
            category_detail: Some(hostile.into()),
            modified: Some(1_550_637_634),
            ..Alert::default()
        };
        let event = Event::Alert(AlertEvent {
            alert,
            device: None,
        });
        let formatter = Formatter::new(FormatSettings {
            header: SyslogHeader::Rfc5424,
            facility: 16,
            app_name: "app".into(),
            hostname: "host".into(),
            severity: Default::default(),
            default_severity: 5,
        });
        let mut message = Vec::new();
        formatter.encode(&event, &mut message);

        for framing in [Framing::Lf, Framing::OctetCounting] {
            let (addr, mut rx, cancel) = listen(Protocol::Tcp).await;
            let mut sink = Sink::new(OutputSettings {
                name: "test".into(),
                address: addr.to_string(),
                protocol: Protocol::Tcp,
                framing,
                max_message_bytes: 8192,
                oversize: Oversize::Drop,
                connect_timeout: Duration::from_secs(1),
                write_timeout: Duration::from_secs(1),
                backoff_initial: Duration::from_millis(10),
                backoff_max: Duration::from_millis(100),
            });
            let batch = vec![message.clone(), message.clone()];
            sink.deliver(&batch, &cancel).await.expect("delivered");

            for _ in 0..2 {
                let received = next_raw(&mut rx).await;
                assert_eq!(received.raw.as_bytes(), message, "{framing:?}");
                let cef = received.raw.split_once(" - CEF:").expect("CEF").1;
                let record = parse_cef(&format!("CEF:{cef}")).expect("parses");
                assert_eq!(record.get("msg"), Some(hostile), "{framing:?}");
            }
            let line = render_with_year(&message_text(&message), 2020);
            assert!(line.starts_with("2019-02-20T04:40:34.000Z host app: CEF:0|"));
            cancel.cancel();
        }
    }

    fn message_text(message: &[u8]) -> String {
        String::from_utf8_lossy(message).into_owned()
    }

    #[test]
    fn render_rfc5424_message() {
        let raw = "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - \
                   ID47 - 'su root' failed for lonvick on /dev/pts/8";
        let expected = "2003-10-11T22:14:15.003Z mymachine.example.com su: \
                        'su root' failed for lonvick on /dev/pts/8";
        assert_eq!(render_with_year(raw, 2020), expected);
    }

    #[test]
    fn render_converts_offset_to_utc() {
        let raw = "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc \
                   8710 - - %% It's time to make the do-nuts.";
        let expected = "2003-08-24T12:14:15.000Z 192.0.2.1 myproc: \
                        %% It's time to make the do-nuts.";
        assert_eq!(render_with_year(raw, 2020), expected);
    }

    #[test]
    fn render_rfc3164_message() {
        let raw = "<34>Oct  1 22:14:15 mymachine su: 'su root' failed";
        let expected = "2003-10-01T22:14:15.000Z mymachine su: 'su root' failed";
        assert_eq!(render_with_year(raw, 2003), expected);
    }

    #[test]
    fn render_marks_missing_parts() {
        assert_eq!(render_with_year("hello", 2020), "- - -: hello");
    }

    #[test]
    fn render_keeps_one_line() {
        let raw = "<13>1 2020-01-01T00:00:00Z host app - - - a\nb\rc";
        let line = render_with_year(raw, 2020);
        assert_eq!(line, "2020-01-01T00:00:00.000Z host app: a\\nb\\rc");
        assert!(!line.contains(['\r', '\n']));
    }

    #[test]
    fn render_shows_cef_record() {
        let raw = "<131>1 2019-02-20T04:40:34.000Z fw1 iotsecure - alert - \
                   CEF:0|IoT Secure|IoT Secure API|1.0|alert|n|8|msg=a\\=b";
        let expected = "2019-02-20T04:40:34.000Z fw1 iotsecure: \
                        CEF:0|IoT Secure|IoT Secure API|1.0|alert|n|8|msg=a\\=b";
        assert_eq!(render_with_year(raw, 2020), expected);
    }
}
