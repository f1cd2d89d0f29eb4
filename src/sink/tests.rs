//! Tests of the transports against real receivers on 127.0.0.1.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};

use super::*;

/// How long a test waits for a condition before it fails.
const PATIENCE: Duration = Duration::from_secs(10);

fn settings(address: SocketAddr, protocol: Protocol, framing: Framing) -> OutputSettings {
    OutputSettings {
        name: "test".into(),
        address: address.to_string(),
        protocol,
        framing,
        max_message_bytes: 65_000,
        oversize: Oversize::Truncate,
        connect_timeout: Duration::from_secs(1),
        write_timeout: Duration::from_secs(1),
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(100),
    }
}

fn messages(prefix: &str, count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| format!("<13>1 - - - - - - {prefix} {i}").into_bytes())
        .collect()
}

/// The bytes received on each connection, shared with the reader tasks.
type Connections = Arc<Mutex<Vec<Arc<Mutex<Vec<u8>>>>>>;

/// A TCP receiver that stores the bytes of each connection.
struct TcpReceiver {
    addr: SocketAddr,
    connections: Connections,
    task: JoinHandle<()>,
}

impl TcpReceiver {
    async fn start(addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let connections = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(accept(listener, Arc::clone(&connections)));
        TcpReceiver {
            addr,
            connections,
            task,
        }
    }

    /// Returns the bytes of every connection so far, one entry per connection.
    fn streams(&self) -> Vec<Vec<u8>> {
        let connections = self.connections.lock().expect("lock");
        connections
            .iter()
            .map(|bytes| bytes.lock().expect("lock").clone())
            .collect()
    }

    /// Stops accepting and closes every connection, as a killed receiver
    /// would.
    async fn kill(mut self) -> Vec<Vec<u8>> {
        self.task.abort();
        let _ = (&mut self.task).await;
        self.streams()
    }
}

async fn accept(listener: TcpListener, connections: Connections) {
    let mut readers = tokio::task::JoinSet::new();
    while let Ok((mut stream, _)) = listener.accept().await {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        connections.lock().expect("lock").push(Arc::clone(&bytes));
        readers.spawn(async move {
            let mut buffer = [0u8; 4096];
            while let Ok(n @ 1..) = stream.read(&mut buffer).await {
                bytes.lock().expect("lock").extend_from_slice(&buffer[..n]);
            }
        });
    }
}

fn lf_frames(stream: &[u8]) -> Vec<Vec<u8>> {
    let Some(body) = stream.strip_suffix(b"\n") else {
        return Vec::new();
    };
    body.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect()
}

fn octet_frames(mut stream: &[u8]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    while let Some(space) = stream.iter().position(|&b| b == b' ') {
        let length: usize = std::str::from_utf8(&stream[..space])
            .expect("ASCII length")
            .parse()
            .expect("decimal length");
        let body = &stream[space + 1..];
        if body.len() < length {
            break;
        }
        frames.push(body[..length].to_vec());
        stream = &body[length..];
    }
    frames
}

/// Waits until the receiver has `count` LF-framed messages in total.
async fn wait_for_lf_frames(receiver: &TcpReceiver, count: usize) -> Vec<Vec<u8>> {
    let start = Instant::now();
    loop {
        let frames: Vec<Vec<u8>> = receiver
            .streams()
            .iter()
            .flat_map(|s| lf_frames(s))
            .collect();
        if frames.len() >= count || start.elapsed() > PATIENCE {
            return frames;
        }
        sleep(Duration::from_millis(10)).await;
    }
}

/// Returns an address on which nothing listens, at least right now.
async fn free_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("local address")
}

#[tokio::test]
async fn tcp_lf_frames_arrive_byte_exact() {
    let receiver = TcpReceiver::start("127.0.0.1:0".parse().expect("address")).await;
    let mut sink = Sink::new(settings(receiver.addr, Protocol::Tcp, Framing::Lf));
    let batch = vec![b"<13>1 a".to_vec(), "\u{fc}|\\=\r x".into(), b"".to_vec()];
    let cancel = CancellationToken::new();

    let delivered = sink.deliver(&batch, &cancel).await.expect("delivered");
    assert_eq!(delivered.sent, 3);

    let frames = wait_for_lf_frames(&receiver, 3).await;
    assert_eq!(frames, batch);
    assert_eq!(receiver.streams().len(), 1, "one connection");
}

#[tokio::test]
async fn tcp_lf_drops_message_with_line_feed() {
    let receiver = TcpReceiver::start("127.0.0.1:0".parse().expect("address")).await;
    let mut sink = Sink::new(settings(receiver.addr, Protocol::Tcp, Framing::Lf));
    let batch = vec![b"a".to_vec(), b"b\n<13>1 forged".to_vec(), b"c".to_vec()];
    let cancel = CancellationToken::new();

    let delivered = sink.deliver(&batch, &cancel).await.expect("delivered");
    assert_eq!(delivered.sent, 2);
    assert_eq!(delivered.dropped, 1);

    let frames = wait_for_lf_frames(&receiver, 2).await;
    assert_eq!(frames, vec![b"a".to_vec(), b"c".to_vec()]);
}

#[tokio::test]
async fn tcp_octet_counting_frames_arrive_byte_exact() {
    let receiver = TcpReceiver::start("127.0.0.1:0".parse().expect("address")).await;
    let framing = Framing::OctetCounting;
    let mut sink = Sink::new(settings(receiver.addr, Protocol::Tcp, framing));
    let batch = vec![b"<13>1 a\nb".to_vec(), "\u{2603}".into(), vec![b'x'; 5000]];
    let cancel = CancellationToken::new();

    let delivered = sink.deliver(&batch, &cancel).await.expect("delivered");
    assert_eq!(delivered.sent, 3);

    let expected_bytes: usize = [9, 3, 5000].iter().map(|n| n + 2).sum::<usize>() + 2;
    let start = Instant::now();
    while receiver.streams().concat().len() < expected_bytes && start.elapsed() < PATIENCE {
        sleep(Duration::from_millis(10)).await;
    }
    let stream = receiver.streams().concat();
    assert!(stream.starts_with(b"9 <13>1 a\nb3 \xe2\x98\x835000 xx"));
    assert_eq!(octet_frames(&stream), batch);
}

#[tokio::test]
async fn tcp_connection_is_kept_across_calls() {
    let receiver = TcpReceiver::start("127.0.0.1:0".parse().expect("address")).await;
    let mut sink = Sink::new(settings(receiver.addr, Protocol::Tcp, Framing::Lf));
    let cancel = CancellationToken::new();
    for round in 0..3 {
        let batch = messages(&format!("round{round}"), 5);
        sink.deliver(&batch, &cancel).await.expect("delivered");
    }
    assert_eq!(wait_for_lf_frames(&receiver, 15).await.len(), 15);
    assert_eq!(receiver.streams().len(), 1);
}

#[tokio::test]
async fn tcp_waits_for_receiver_to_start() {
    let addr = free_address().await;
    let mut sink = Sink::new(settings(addr, Protocol::Tcp, Framing::Lf));
    let batch = messages("late", 10);
    let expected = batch.clone();
    let delivery = tokio::spawn(async move {
        let cancel = CancellationToken::new();
        sink.deliver(&batch, &cancel).await
    });

    sleep(Duration::from_millis(300)).await;
    assert!(!delivery.is_finished(), "delivered with no receiver");
    let receiver = TcpReceiver::start(addr).await;

    let delivered = timeout(PATIENCE, delivery).await.expect("in time");
    let delivered = delivered.expect("task").expect("delivered");
    assert_eq!(delivered.sent, 10);
    assert_eq!(wait_for_lf_frames(&receiver, 10).await, expected);
}

#[tokio::test]
async fn tcp_reconnects_after_receiver_restart() {
    let receiver = TcpReceiver::start("127.0.0.1:0".parse().expect("address")).await;
    let addr = receiver.addr;
    let mut sink = Sink::new(settings(addr, Protocol::Tcp, Framing::Lf));
    let cancel = CancellationToken::new();
    let first = messages("first", 100);
    sink.deliver(&first, &cancel).await.expect("first batch");
    wait_for_lf_frames(&receiver, 100).await;
    let before = receiver.kill().await;

    // The second batch starts while no receiver listens.
    let second = messages("second", 100);
    let batch = second.clone();
    let delivery = tokio::spawn(async move {
        let cancel = CancellationToken::new();
        let delivered = sink.deliver(&batch, &cancel).await;
        (sink, delivered)
    });
    sleep(Duration::from_millis(200)).await;
    let receiver = TcpReceiver::start(addr).await;
    let (mut sink, delivered) = timeout(PATIENCE, delivery)
        .await
        .expect("in time")
        .expect("task");
    assert_eq!(delivered.expect("second batch").sent, 100);

    let third = messages("third", 100);
    sink.deliver(&third, &cancel).await.expect("third batch");

    let after = wait_for_lf_frames(&receiver, 200).await;
    let received: Vec<Vec<u8>> = before
        .iter()
        .flat_map(|s| lf_frames(s))
        .chain(after)
        .collect();
    for message in first.iter().chain(&second).chain(&third) {
        assert!(received.contains(message), "lost {message:?}");
    }
}

#[tokio::test]
async fn tcp_cancel_returns_promptly() {
    let addr = free_address().await;
    let mut output = settings(addr, Protocol::Tcp, Framing::Lf);
    output.backoff_initial = Duration::from_secs(30);
    output.backoff_max = Duration::from_secs(60);
    let mut sink = Sink::new(output);
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        sleep(Duration::from_millis(100)).await;
        trigger.cancel();
    });

    let started = Instant::now();
    let batch = messages("never", 3);
    let result = timeout(PATIENCE, sink.deliver(&batch, &cancel)).await;
    assert!(matches!(result, Ok(Err(Cancelled))), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn tcp_oversize_applies_before_framing() {
    let receiver = TcpReceiver::start("127.0.0.1:0".parse().expect("address")).await;
    let framing = Framing::OctetCounting;
    let mut output = settings(receiver.addr, Protocol::Tcp, framing);
    output.max_message_bytes = 4;
    let mut sink = Sink::new(output);
    let cancel = CancellationToken::new();
    let batch = vec![b"abcdef".to_vec(), b"ab".to_vec()];

    let delivered = sink.deliver(&batch, &cancel).await.expect("delivered");
    assert_eq!(delivered.truncated, 1);
    assert_eq!(delivered.sent, 2);

    let start = Instant::now();
    while receiver.streams().concat().len() < 10 && start.elapsed() < PATIENCE {
        sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(receiver.streams().concat(), b"4 abcd2 ab");
}

async fn udp_receiver() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.expect("bind")
}

async fn receive_datagram(socket: &UdpSocket) -> Vec<u8> {
    let mut buffer = vec![0u8; 65_536];
    let received = timeout(PATIENCE, socket.recv(&mut buffer)).await;
    let length = received.expect("in time").expect("received");
    buffer.truncate(length);
    buffer
}

fn udp_settings(receiver: &UdpSocket) -> OutputSettings {
    let addr = receiver.local_addr().expect("local address");
    settings(addr, Protocol::Udp, Framing::Lf)
}

#[tokio::test]
async fn udp_sends_one_message_per_datagram() {
    let receiver = udp_receiver().await;
    let mut sink = Sink::new(udp_settings(&receiver));
    let batch = vec![b"<13>1 a\nb".to_vec(), b"<13>1 c".to_vec()];
    let cancel = CancellationToken::new();

    let delivered = sink.deliver(&batch, &cancel).await.expect("delivered");
    assert_eq!(delivered.sent, 2);
    assert_eq!(receive_datagram(&receiver).await, batch[0]);
    assert_eq!(receive_datagram(&receiver).await, batch[1]);
}

#[tokio::test]
async fn udp_oversize_truncates_at_char_boundary() {
    let receiver = udp_receiver().await;
    let mut output = udp_settings(&receiver);
    output.max_message_bytes = 6;
    let mut sink = Sink::new(output);
    let cancel = CancellationToken::new();
    // "abcde" then a two-byte character across the limit.
    let batch = vec!["abcde\u{fc}x".into()];

    let delivered = sink.deliver(&batch, &cancel).await.expect("delivered");
    assert_eq!(delivered.truncated, 1);
    assert_eq!(receive_datagram(&receiver).await, b"abcde");
}

#[tokio::test]
async fn udp_oversize_drop_skips_message() {
    let receiver = udp_receiver().await;
    let mut output = udp_settings(&receiver);
    output.max_message_bytes = 4;
    output.oversize = Oversize::Drop;
    let mut sink = Sink::new(output);
    let cancel = CancellationToken::new();
    let batch = vec![b"toolong".to_vec(), b"ok".to_vec()];

    let delivered = sink.deliver(&batch, &cancel).await.expect("delivered");
    assert_eq!(
        delivered,
        Delivered {
            sent: 1,
            truncated: 0,
            dropped: 1
        }
    );
    assert_eq!(receive_datagram(&receiver).await, b"ok");
}

#[tokio::test]
async fn udp_message_too_long_is_dropped_not_retried() {
    let receiver = udp_receiver().await;
    let mut output = udp_settings(&receiver);
    output.max_message_bytes = 100_000;
    let mut sink = Sink::new(output);
    let cancel = CancellationToken::new();
    let batch = vec![vec![b'x'; 70_000], b"next".to_vec()];

    let delivered = timeout(PATIENCE, sink.deliver(&batch, &cancel)).await;
    let delivered = delivered.expect("in time").expect("delivered");
    assert_eq!(
        delivered,
        Delivered {
            sent: 1,
            truncated: 0,
            dropped: 1
        }
    );
    assert_eq!(receive_datagram(&receiver).await, b"next");
}

#[test]
fn truncate_utf8_keeps_whole_characters() {
    let text = "a\u{2603}b".as_bytes(); // 1 + 3 + 1 bytes
    let cases: [(usize, &[u8]); 5] = [
        (0, b""),
        (1, b"a"),
        (3, b"a"),
        (4, "a\u{2603}".as_bytes()),
        (9, text),
    ];
    for (max_bytes, expected) in cases {
        assert_eq!(truncate_utf8(text, max_bytes), expected, "{max_bytes}");
    }
}

#[test]
fn fit_applies_oversize_policy() {
    assert_eq!(fit(b"abc", 3, Oversize::Drop), Some(b"abc".as_slice()));
    assert_eq!(fit(b"abcd", 3, Oversize::Drop), None);
    assert_eq!(fit(b"abcd", 3, Oversize::Truncate), Some(b"abc".as_slice()));
}
