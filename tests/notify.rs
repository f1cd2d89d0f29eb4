//! The `run` command under a stand-in for systemd: the test owns the
//! datagram socket named by `NOTIFY_SOCKET` and reads what the built
//! binary sends there while it polls the simulator and delivers to a
//! receiver, then stops it with SIGTERM.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::net::UnixDatagram;

use iotsecure_forwarder::clock::Clock;
use iotsecure_forwarder::sim::Since;
use iotsecure_forwarder::sink::Protocol;

/// Alerts in the quiet simulator's built-in data that fall within the
/// first start's reach.
const RECENT_ALERTS: usize = 7;

/// systemd's watchdog timeout for the test; the binary pings at half.
const WATCHDOG_USEC: &str = "400000";

fn spawn_under_systemd(dir: &Path, socket: &Path) -> Child {
    let log = std::fs::File::create(dir.join("stderr.log")).expect("log file");
    Command::new(env!("CARGO_BIN_EXE_iotsecure-forwarder"))
        .args(["run", "--config"])
        .arg(dir.join("forwarder.toml"))
        .env("NOTIFY_SOCKET", socket)
        .env("WATCHDOG_USEC", WATCHDOG_USEC)
        .env_remove("WATCHDOG_PID")
        .env_remove("CREDENTIALS_DIRECTORY")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("forwarder starts")
}

/// The notifications received so far, one string per datagram.
struct Notifications {
    socket: UnixDatagram,
    received: Vec<String>,
    log: std::path::PathBuf,
}

impl Notifications {
    /// Receives until `done` holds for the received messages, or fails
    /// after `limit` with everything received and the binary's log.
    async fn until(&mut self, what: &str, limit: Duration, done: impl Fn(&[String]) -> bool) {
        let deadline = tokio::time::Instant::now() + limit;
        let mut buffer = vec![0u8; 4096];
        while !done(&self.received) {
            match tokio::time::timeout_at(deadline, self.socket.recv(&mut buffer)).await {
                Ok(Ok(len)) => self
                    .received
                    .push(String::from_utf8_lossy(&buffer[..len]).into_owned()),
                Ok(Err(error)) => panic!("receiving notifications: {error}"),
                Err(_) => panic!(
                    "no {what} within {limit:?}; received {:#?}\nlog:\n{}",
                    self.received,
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                ),
            }
        }
    }
}

fn count(messages: &[String], line: &str) -> usize {
    messages
        .iter()
        .filter(|message| message.lines().any(|l| l == line))
        .count()
}

fn statuses(messages: &[String]) -> Vec<&str> {
    messages
        .iter()
        .flat_map(|message| message.lines())
        .filter_map(|line| line.strip_prefix("STATUS="))
        .collect()
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -TERM succeeds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_notifies_systemd_through_stop() {
    let model = common::quiet_model(Clock::system(), Since::After);
    let (api, _sim) = common::serve(&model).await;
    let mut receiver = common::receiver(Protocol::Tcp).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let extra = format!(
        "[alerts]\nmin_poll_interval = \"1s\"\n\n{}",
        common::output("siem", receiver.addr, "tcp", "lf")
    );
    common::settings(dir.path(), &format!("http://{api}/"), &extra);
    let socket_path = dir.path().join("notify.sock");
    let mut notifications = Notifications {
        socket: UnixDatagram::bind(&socket_path).expect("bind notify socket"),
        received: Vec::new(),
        log: dir.path().join("stderr.log"),
    };

    let mut child = spawn_under_systemd(dir.path(), &socket_path);
    let limit = Duration::from_secs(30);
    notifications
        .until("READY=1", limit, |got| count(got, "READY=1") > 0)
        .await;
    let first = &notifications.received[0];
    assert!(
        first.lines().any(|l| l == "READY=1"),
        "READY first: {first}"
    );
    assert!(
        first.contains("\nSTATUS=last poll "),
        "status with READY: {first}"
    );

    let delivered = receiver.take(RECENT_ALERTS, limit).await;
    assert_eq!(delivered.len(), RECENT_ALERTS);
    let all_counted = format!("{RECENT_ALERTS} events today");
    notifications
        .until("STATUS with the day's events", limit, |got| {
            statuses(got).iter().any(|s| s.contains(&all_counted))
        })
        .await;
    notifications
        .until("three WATCHDOG=1", limit, |got| {
            count(got, "WATCHDOG=1") >= 3
        })
        .await;
    let status = statuses(&notifications.received)
        .last()
        .map(|s| s.to_string());
    let status = status.expect("a status line");
    assert!(status.contains("requests today "), "{status}");
    assert!(!status.contains("last poll never"), "{status}");
    assert!(!status.contains(common::KEY), "{status}");

    sigterm(&child);
    notifications
        .until("STOPPING=1", limit, |got| count(got, "STOPPING=1") > 0)
        .await;
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert_eq!(exit.code(), Some(0), "exit status after SIGTERM");
    let ready_at = notifications
        .received
        .iter()
        .position(|m| m.contains("READY=1"));
    let stopping_at = notifications
        .received
        .iter()
        .position(|m| m.contains("STOPPING=1"));
    assert!(ready_at < stopping_at, "READY before STOPPING");
}
