//! Shared parts of the integration tests: the simulator over HTTP on a
//! loopback port, syslog receivers on loopback ports, and configs.

#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

use iotsecure_forwarder::api::{ApiError, Call, Reply, Transport};
use iotsecure_forwarder::clock::Clock;
use iotsecure_forwarder::config::{self, Settings};
use iotsecure_forwarder::listen::{self, Received};
use iotsecure_forwarder::service::Forwarder;
use iotsecure_forwarder::sim::{InMemory, Model, SimSettings, Since};
use iotsecure_forwarder::sink::Protocol;

pub const KEY: &str = "test-key-5f2c9a";

/// Alerts the simulator's built-in data has modified within 24 hours.
pub const RECENT_ALERTS: usize = 7;

/// Turns the timeline and device inventory sources off, for tests that
/// count alert messages:
/// under the default `alerted` policy, `once` also polls the timelines
/// of the devices the alerts name. `tests/timeline.rs` covers it.
pub const ALERTS_ONLY: &str = "[timeline]\nenabled = false\n\n[devices]\nenabled = false\n\n";

pub fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

/// Creates a quiet simulator: no generated alerts, so tests control every change.
pub fn quiet_model(clock: Clock, since: Since) -> Model {
    let mut settings = SimSettings::new(clock);
    settings.api_keys = vec![KEY.to_owned()];
    settings.since = since;
    settings.alert_rate_per_hour = 0.0;
    settings.devices = 5;
    Model::new(settings)
}

/// Serves `model` on a loopback port until the returned token fires.
pub async fn serve(model: &Model) -> (SocketAddr, CancellationToken) {
    let listener = tokio::net::TcpListener::bind(loopback())
        .await
        .expect("bind simulator");
    let addr = listener.local_addr().expect("simulator address");
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    let model = model.clone();
    tokio::spawn(async move { iotsecure_forwarder::sim::serve(model, listener, token).await });
    (addr, cancel)
}

/// Three outputs on loopback, one per framing: TCP with LF, TCP with
/// octet counting, and UDP.
pub struct ThreeOutputs {
    pub lf: Receiver,
    pub octet: Receiver,
    pub udp: Receiver,
}

impl ThreeOutputs {
    pub async fn start() -> ThreeOutputs {
        ThreeOutputs {
            lf: receiver(Protocol::Tcp).await,
            octet: receiver(Protocol::Tcp).await,
            udp: receiver(Protocol::Udp).await,
        }
    }

    /// Their `[[output]]` tables, with `udp_extra` added to the UDP one.
    pub fn config(&self, udp_extra: &str) -> String {
        [
            output("lf", self.lf.addr, "tcp", "lf"),
            output("octet", self.octet.addr, "tcp", "octet-counting"),
            output("udp", self.udp.addr, "udp", "lf") + udp_extra,
        ]
        .join("\n")
    }

    pub fn all(&mut self) -> [(&'static str, &mut Receiver); 3] {
        [
            ("lf", &mut self.lf),
            ("octet", &mut self.octet),
            ("udp", &mut self.udp),
        ]
    }

    /// Waits for `count` messages on each output, in the order of
    /// [`ThreeOutputs::all`].
    pub async fn take_all(&mut self, count: usize, wait: Duration) -> [Vec<String>; 3] {
        [
            self.lf.take(count, wait).await,
            self.octet.take(count, wait).await,
            self.udp.take(count, wait).await,
        ]
    }
}

/// A receiver on a loopback port.
pub struct Receiver {
    pub addr: SocketAddr,
    pub messages: UnboundedReceiver<Received>,
    pub cancel: CancellationToken,
}

pub async fn receiver(protocol: Protocol) -> Receiver {
    receiver_at(protocol, loopback()).await
}

pub async fn receiver_at(protocol: Protocol, addr: SocketAddr) -> Receiver {
    let (tx, messages) = tokio::sync::mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let addr = listen::spawn(protocol, addr, tx, cancel.clone())
        .await
        .expect("bind receiver");
    Receiver {
        addr,
        messages,
        cancel,
    }
}

impl Receiver {
    /// Waits until `count` messages arrived, or fails after `limit`.
    pub async fn take(&mut self, count: usize, limit: Duration) -> Vec<String> {
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + limit;
        while got.len() < count {
            match tokio::time::timeout_at(deadline, self.messages.recv()).await {
                Ok(Some(message)) => got.push(message.raw),
                Ok(None) => break,
                Err(_) => panic!(
                    "{} of {count} messages within {limit:?}: {got:#?}",
                    got.len()
                ),
            }
        }
        got
    }

    /// Everything that arrives until nothing has come for `quiet`.
    pub async fn drain(&mut self, quiet: Duration) -> Vec<String> {
        let mut got = Vec::new();
        while let Ok(Some(message)) = tokio::time::timeout(quiet, self.messages.recv()).await {
            got.push(message.raw);
        }
        got
    }
}

/// Writes one `[[output]]` table.
pub fn output(name: &str, addr: SocketAddr, protocol: &str, framing: &str) -> String {
    format!(
        "[[output]]\nname = \"{name}\"\naddress = \"{addr}\"\nprotocol = \"{protocol}\"\n\
         framing = \"{framing}\"\nbackoff_initial = \"50ms\"\nbackoff_max = \"500ms\"\n"
    )
}

/// Writes the key file and a config for `api` with `extra` appended,
/// and returns the validated settings.
pub fn settings(dir: &Path, api: &str, extra: &str) -> Settings {
    std::fs::write(dir.join("api-key"), KEY).expect("write key");
    let text = format!(
        "[api]\nurl = \"{api}\"\napi_key_file = \"api-key\"\n\n\
         [state]\npath = \"state.db\"\n\n[format]\nhostname = \"fwd-test\"\n\n{extra}"
    );
    let path = dir.join("forwarder.toml");
    std::fs::write(&path, &text).expect("write config");
    config::parse(&path, &text).expect("test config validates")
}

/// Opens a forwarder that calls `model` in memory, for tests in virtual or
/// manual time.
pub fn in_memory(dir: &Path, model: &Model, clock: Clock, extra: &str) -> Forwarder<InMemory> {
    let settings = settings(dir, "http://127.0.0.1:9/", extra);
    let transport = InMemory {
        model: model.clone(),
        api_key: KEY.to_owned(),
    };
    Forwarder::open(settings, transport, clock).expect("forwarder opens")
}

/// Opens a forwarder that calls the simulator at `api` over HTTP.
pub fn over_http(
    dir: &Path,
    api: SocketAddr,
    extra: &str,
) -> Forwarder<iotsecure_forwarder::api::HttpTransport> {
    let settings = settings(dir, &format!("http://{api}/"), extra);
    let key = config::load_api_key(&settings).expect("key loads");
    let transport =
        iotsecure_forwarder::service::http_transport(&settings, key).expect("transport builds");
    Forwarder::open(settings, transport, Clock::system()).expect("forwarder opens")
}
/// Extension values of a CEF message, keyed by name.
pub fn cef_fields(message: &str) -> std::collections::BTreeMap<String, String> {
    let at = message.find("CEF:0|").expect("message carries CEF");
    let record = iotsecure_forwarder::format::parse_cef(&message[at..]).expect("CEF parses");
    record.extension.into_iter().collect()
}

/// A transport that notes the time and action of every request that
/// reaches the simulator.
#[derive(Clone)]
pub struct Recording {
    pub inner: InMemory,
    pub clock: Clock,
    pub log: Arc<Mutex<Vec<(i64, &'static str)>>>,
}

impl Transport for Recording {
    async fn send(&self, call: &Call) -> Result<Reply, ApiError> {
        if let Ok(mut log) = self.log.lock() {
            log.push((self.clock.now_ms(), call.action));
        }
        self.inner.send(call).await
    }
}
