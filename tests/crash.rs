//! A forwarder killed with SIGKILL after fetching alerts and before
//! delivering them, then started again, delivers each alert once.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use iotsecure_forwarder::clock::Clock;
use iotsecure_forwarder::sim::Since;
use iotsecure_forwarder::sink::Protocol;
use iotsecure_forwarder::state::Store;

const RECENT_ALERTS: usize = 7;

fn free_port() -> std::net::SocketAddr {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("address")
}

fn forwarder(command: &str, config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_iotsecure-forwarder"))
        .arg(command)
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("forwarder starts")
}

/// Waits until the outbox contains `count` events, reading the database as
/// `status` would while the forwarder writes it.
async fn wait_for_outbox(path: &std::path::Path, count: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let len = Store::open_read_only(path)
            .and_then(|store| store.outbox_len())
            .unwrap_or(0);
        if len >= count {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "outbox has {len} of {count}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_before_delivery_sends_once() {
    let model = common::quiet_model(Clock::system(), Since::After);
    let (api, _sim) = common::serve(&model).await;
    // Nothing listens on the output's port yet, so fetched alerts wait
    // in the outbox.
    let siem = free_port();
    let dir = tempfile::tempdir().expect("temp dir");
    // With a zero wait, alerts go to the outbox without waiting for a
    // device fetch, so the outbox contains only alert events.
    let extra = format!(
        "{}[alerts]
min_poll_interval = \"1s\"

[enrichment]
wait = \"0s\"

{}",
        common::ALERTS_ONLY,
        common::output("siem", siem, "tcp", "lf")
    );
    common::settings(dir.path(), &format!("http://{api}/"), &extra);
    let config = dir.path().join("forwarder.toml");

    let mut running = forwarder("run", &config);
    wait_for_outbox(&dir.path().join("state.db"), RECENT_ALERTS as i64).await;
    assert_status_reads_while_running(&config);
    // A second forwarder on the same outbox would deliver its events
    // twice: it is refused before it sends anything.
    let second = Command::new(env!("CARGO_BIN_EXE_iotsecure-forwarder"))
        .args(["once", "--config"])
        .arg(&config)
        .output()
        .expect("once runs");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{stderr}");
    assert!(stderr.contains("in use by another"), "{stderr}");
    // The lock dies with the process, so the `once` below may run.
    running.kill().expect("SIGKILL");
    running.wait().expect("reaped");

    let mut receiver = common::receiver_at(Protocol::Tcp, siem).await;
    let status = forwarder("once", &config).wait().expect("once ends");
    assert!(status.success(), "once exits 0");

    let messages = receiver.take(RECENT_ALERTS, Duration::from_secs(20)).await;
    let mut ids: Vec<String> = messages
        .iter()
        .map(|m| common::cef_fields(m)["externalId"].clone())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), RECENT_ALERTS, "each alert once: {ids:?}");
    let extra = receiver.drain(Duration::from_millis(500)).await;
    assert!(extra.is_empty(), "nothing twice: {extra:?}");
}

/// Checks that `status --json` reads the database while the daemon
/// has it open.
fn assert_status_reads_while_running(config: &std::path::Path) {
    let output = Command::new(env!("CARGO_BIN_EXE_iotsecure-forwarder"))
        .args(["status", "--json", "--config"])
        .arg(config)
        .output()
        .expect("status runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(status["outputs"][0]["name"], "siem");
    assert_eq!(status["outputs"][0]["depth"], RECENT_ALERTS as i64);
    let used = status["used"].as_i64().expect("used");
    assert!(
        used > RECENT_ALERTS as i64,
        "list, details and sync counted: {used}"
    );
    assert_eq!(status["pending"][0]["ids"], 0);
    assert!(status["cursors"][0]["value"].as_i64().is_some());
}
