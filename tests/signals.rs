//! The `run` command under signals, as systemd sends them: SIGTERM
//! drains and exits within `service.shutdown_timeout`, and SIGHUP
//! reloads the config file or keeps the old one when the new one is
//! broken. Each test spawns the built binary against the simulator over
//! HTTP and syslog receivers on loopback.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use common::{Receiver, cef_fields, output};
use iotsecure_forwarder::clock::Clock;
use iotsecure_forwarder::sim::{Model, SimSettings, Since};
use iotsecure_forwarder::sink::Protocol;

/// Alerts the simulator's built-in data has modified within 24 hours.
const RECENT_ALERTS: usize = 7;

const WAIT: Duration = Duration::from_secs(20);

/// Creates a quiet simulator whose daily limit is high enough that the list
/// interval stays at `min_poll_interval` at any time of day.
fn model() -> Model {
    let mut settings = SimSettings::new(Clock::system());
    settings.api_keys = vec![common::KEY.to_owned()];
    settings.since = Since::After;
    settings.alert_rate_per_hour = 0.0;
    settings.devices = 5;
    settings.daily_limit = Some(1_000_000);
    Model::new(settings)
}

/// Config text after the `[api]`, `[state]` and `[format]` tables.
fn extra(outputs: &[String]) -> String {
    format!(
        "{}[quota]\ndaily_limit = 1000000\n\n[alerts]\nmin_poll_interval = \"1s\"\n\n\
         [service]\nshutdown_timeout = \"2s\"\n\n{}",
        common::ALERTS_ONLY,
        outputs.join("\n")
    )
}

fn free_port() -> std::net::SocketAddr {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("address")
}

/// A forwarder process with its standard error collected line by line.
struct Forwarder {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Forwarder {
    fn run(config: &Path) -> Forwarder {
        Forwarder::run_with(config, &[], &[])
    }

    /// Starts `run` with extra arguments and environment variables.
    fn run_with(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Forwarder {
        let mut child = Command::new(env!("CARGO_BIN_EXE_iotsecure-forwarder"))
            .args(args)
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .env_remove("JOURNAL_STREAM")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("forwarder starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().expect("log lock").push(line);
            }
        });
        Forwarder { child, log }
    }

    fn log_text(&self) -> String {
        self.log.lock().expect("log lock").join("\n")
    }

    /// Waits until a log line contains `text`.
    async fn wait_for_log(&self, text: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let found = self
                .log
                .lock()
                .expect("log lock")
                .iter()
                .find(|line| line.contains(text))
                .cloned();
            if let Some(line) = found {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {text:?}:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} succeeds");
    }

    /// Sends SIGTERM and returns the exit status and how long the exit
    /// took.
    async fn terminate(mut self) -> (std::process::ExitStatus, Duration, String) {
        let sent = Instant::now();
        self.signal("TERM");
        let deadline = sent + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                // Let the reader thread take the last lines.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return (status, sent.elapsed(), self.log_text());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("no exit within {WAIT:?} of SIGTERM:\n{}", self.log_text());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn external_ids(messages: &[String]) -> Vec<String> {
    let mut ids: Vec<String> = messages
        .iter()
        .map(|message| cef_fields(message)["externalId"].clone())
        .collect();
    ids.sort();
    ids
}

/// Adds an alert modified now to the simulator and returns its id.
fn insert_alert(model: &Model, id: &str) -> String {
    let now = Clock::system().now_secs();
    model.insert_alert(json!({
        "alert_id": id, "category": "Policy Violation",
        "category_detail": "Telnet session opened",
        "created": now - 5, "modified": now,
        "device_id": "00:40:17:6C:00:00", "port": "23", "priority": "High",
        "resolution": "", "status": "New", "subject": "Telnet to a controller"
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_output_down_resumes() {
    let model = model();
    let (api, _sim) = common::serve(&model).await;
    let mut up = common::receiver(Protocol::Tcp).await;
    // Nothing listens here during the first run.
    let down = free_port();
    let dir = tempfile::tempdir().expect("temp dir");
    let outputs = [
        output("up", up.addr, "tcp", "lf"),
        output("down", down, "tcp", "lf"),
    ];
    common::settings(dir.path(), &format!("http://{api}/"), &extra(&outputs));
    let config = dir.path().join("forwarder.toml");

    let first = Forwarder::run(&config);
    let delivered = up.take(RECENT_ALERTS, WAIT).await;
    assert_eq!(external_ids(&delivered).len(), RECENT_ALERTS);
    let (status, took, log) = first.terminate().await;
    assert!(
        status.success(),
        "exit 0 with an output down: {status}\n{log}"
    );
    assert!(
        took < Duration::from_secs(3),
        "exit within the 2 s shutdown timeout plus 1 s: took {took:?}\n{log}"
    );
    assert!(
        log.contains("output did not catch up before the shutdown timeout"),
        "{log}"
    );

    let mut late = common::receiver_at(Protocol::Tcp, down).await;
    let second = Forwarder::run(&config);
    let messages = late.take(RECENT_ALERTS, WAIT).await;
    let ids = external_ids(&messages);
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(unique.len(), RECENT_ALERTS, "each alert once: {ids:?}");
    assert_eq!(ids, external_ids(&delivered), "the same alerts");
    let (status, _, log) = second.terminate().await;
    assert!(status.success(), "{log}");
    let again_late = late.drain(Duration::from_millis(300)).await;
    assert!(again_late.is_empty(), "nothing twice: {again_late:?}");
    let again_up = up.drain(Duration::from_millis(300)).await;
    assert!(again_up.is_empty(), "nothing twice: {again_up:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_output_without_restart() {
    let model = model();
    let (api, _sim) = common::serve(&model).await;
    let mut first = common::receiver(Protocol::Tcp).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let api_url = format!("http://{api}/");
    let one = [output("first", first.addr, "tcp", "lf")];
    common::settings(dir.path(), &api_url, &extra(&one));
    let config = dir.path().join("forwarder.toml");

    let forwarder = Forwarder::run(&config);
    first.take(RECENT_ALERTS, WAIT).await;

    let mut second = common::receiver(Protocol::Tcp).await;
    let two = [
        output("first", first.addr, "tcp", "lf"),
        output("second", second.addr, "tcp", "octet-counting"),
    ];
    common::settings(dir.path(), &api_url, &extra(&two));
    forwarder.signal("HUP");
    forwarder.wait_for_log("config reloaded").await;
    forwarder.wait_for_log("output added").await;

    let id = insert_alert(&model, "880001");
    let to_second = second.take(1, WAIT).await;
    assert_eq!(external_ids(&to_second), std::slice::from_ref(&id));
    let to_first = first.take(1, WAIT).await;
    assert_eq!(external_ids(&to_first), [id]);

    let (status, _, log) = forwarder.terminate().await;
    assert!(status.success(), "{log}");
    assert!(!log.contains("ERROR"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_broken_file_keeps_old_config() {
    let model = model();
    let (api, _sim) = common::serve(&model).await;
    let mut receiver: Receiver = common::receiver(Protocol::Tcp).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let outputs = [output("siem", receiver.addr, "tcp", "lf")];
    common::settings(dir.path(), &format!("http://{api}/"), &extra(&outputs));
    let config = dir.path().join("forwarder.toml");

    let mut forwarder = Forwarder::run(&config);
    receiver.take(RECENT_ALERTS, WAIT).await;

    let good = std::fs::read_to_string(&config).expect("read config");
    let broken = good.replace(
        "min_poll_interval = \"1s\"",
        "min_poll_interval = \"often\"",
    );
    assert_ne!(good, broken, "the test edits the file");
    std::fs::write(&config, broken).expect("write broken config");
    forwarder.signal("HUP");
    let line = forwarder.wait_for_log("config reload failed").await;
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("forwarder.toml:"), "names the file: {line}");
    assert!(line.contains("min_poll_interval"), "names the key: {line}");
    assert!(
        forwarder.child.try_wait().expect("wait").is_none(),
        "still running"
    );

    let id = insert_alert(&model, "880002");
    let messages = receiver.take(1, WAIT).await;
    assert_eq!(external_ids(&messages), [id]);
    let (status, _, log) = forwarder.terminate().await;
    assert!(status.success(), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journald_text_logs_omit_timestamp() {
    let model = model();
    let (api, _sim) = common::serve(&model).await;
    let receiver = common::receiver(Protocol::Tcp).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let outputs = [output("siem", receiver.addr, "tcp", "lf")];
    common::settings(dir.path(), &format!("http://{api}/"), &extra(&outputs));
    let config = dir.path().join("forwarder.toml");
    let journal = [("JOURNAL_STREAM", "8:12345")];

    let plain = Forwarder::run(&config);
    let line = plain.wait_for_log("ready").await;
    assert!(line.starts_with("20"), "timestamp first: {line}");
    drop(plain);

    let text = Forwarder::run_with(&config, &[], &journal);
    let line = text.wait_for_log("ready").await;
    assert!(
        line.trim_start().starts_with("INFO"),
        "no timestamp: {line}"
    );
    drop(text);

    let json = Forwarder::run_with(&config, &["--log-format", "json"], &journal);
    let line = json.wait_for_log("ready").await;
    let record: serde_json::Value = serde_json::from_str(&line).expect("JSON line");
    assert!(
        record["timestamp"].is_string(),
        "JSON keeps its time: {line}"
    );
}
