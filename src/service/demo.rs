//! `demo`: the simulator, a syslog receiver and the forwarder, all on
//! loopback with state in a temporary folder, printing each message the
//! receiver gets on its own line.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::api::License;
use crate::clock::Clock;
use crate::config;
use crate::listen;
use crate::service::{Forwarder, http_transport};
use crate::sim::{self, Model, SimSettings};
use crate::sink::Protocol;

const DEMO_KEY: &str = "demo-key";

/// New alerts per hour in the demo, so that lines keep coming.
const DEMO_ALERT_RATE: f64 = 720.0;

/// Runs the demo until `shutdown` fires.
pub async fn run(shutdown: CancellationToken) -> anyhow::Result<()> {
    let folder = tempfile::tempdir().context("cannot create a temporary folder")?;
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    // The simulator and the receiver outlive the forwarder, so that it
    // can deliver what it holds when asked to stop.
    let helpers = CancellationToken::new();
    let _stop_helpers = helpers.clone().drop_guard();
    let api = start_simulator(loopback, &helpers).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let receiver = listen::spawn(Protocol::Tcp, loopback, tx, helpers.clone())
        .await
        .context("cannot start the syslog receiver")?;
    eprintln!(
        "demo: simulator at http://{api}/ (enterprise licence, 5,000 requests a day), \
         receiver at tcp://{receiver}, state in {}; Ctrl-C stops",
        folder.path().display()
    );
    let forwarder = forwarder(folder.path(), api, receiver)?;
    let forwarding = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move { forwarder.run(shutdown).await })
    };
    let mut stdout = std::io::stdout();
    loop {
        tokio::select! {
            received = rx.recv() => match received {
                Some(message) => {
                    // A closed pipe (demo | head) ends the demo quietly.
                    if writeln!(stdout, "{}", listen::render(&message.raw)).is_err() {
                        shutdown.cancel();
                        break;
                    }
                }
                None => break,
            },
            () = shutdown.cancelled() => break,
        }
    }
    forwarding.await.context("the forwarder task failed")??;
    while let Ok(message) = rx.try_recv() {
        let _ = writeln!(stdout, "{}", listen::render(&message.raw));
    }
    Ok(())
}

async fn start_simulator(
    addr: SocketAddr,
    shutdown: &CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let mut settings = SimSettings::new(Clock::system());
    settings.license = License::Enterprise;
    settings.api_keys = vec![DEMO_KEY.to_owned()];
    settings.alert_rate_per_hour = DEMO_ALERT_RATE;
    let model = Model::new(settings);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .context("cannot start the simulator")?;
    let bound = listener.local_addr()?;
    let cancel = shutdown.clone();
    tokio::spawn(async move {
        if let Err(error) = sim::serve(model, listener, cancel).await {
            tracing::error!(%error, "simulator stopped");
        }
    });
    Ok(bound)
}

fn forwarder(
    folder: &std::path::Path,
    api: SocketAddr,
    receiver: SocketAddr,
) -> anyhow::Result<Forwarder<crate::api::HttpTransport>> {
    let key_file = folder.join("api-key");
    write_private(&key_file, DEMO_KEY)?;
    let path = folder.join("demo.toml");
    let text = format!(
        r#"[api]
url = "http://{api}/"
api_key_file = "api-key"

[state]
path = "state.db"

[alerts]
min_poll_interval = "2s"

[format]
hostname = "iotsecure-demo"

[[output]]
name = "demo"
address = "{receiver}"
protocol = "tcp"
framing = "octet-counting"
"#
    );
    std::fs::write(&path, &text).context("cannot write the demo config")?;
    let settings = config::parse(&path, &text)?;
    let key = config::load_api_key(&settings)?;
    let transport = http_transport(&settings, key)?;
    Ok(Forwarder::open(settings, transport, Clock::system())?)
}

fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}
