//! The API key appears nowhere the forwarder writes. The binary runs
//! against the simulator over HTTP on loopback, at `trace` level in
//! both log formats. The runs go through an invalid-key reply, server
//! faults that echo the key, and a receiver that is down at first.
//! Every log line, `check-config`, `status` and `status --json` output,
//! metrics scrape, received syslog message and byte of the state
//! database is searched for the key and its percent-encoded form.

mod common;

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use iotsecure_forwarder::api::percent_encode;
use iotsecure_forwarder::clock::Clock;
use iotsecure_forwarder::sim::{Model, SimSettings, Since};
use iotsecure_forwarder::sink::Protocol;
use iotsecure_forwarder::state::Store;

/// A key with `/`, `+` and `=`, so its percent-encoded form differs
/// from the key itself.
const KEY: &str = "LeakProbe-Qz7/Kx9+Wm3=Vt";

/// A part of the key that a partly masked or re-encoded copy still
/// contains.
const KEY_FRAGMENT: &str = "LeakProbe";

/// How long to wait for events or log lines. The faulty run starts with
/// an invalid-key reply, after which the forwarder waits 45 to 60 s
/// before it tries again, so a minute left no room on a loaded machine.
const WAIT: Duration = Duration::from_secs(120);

/// Alerts the simulator's built-in data has modified within 24 hours.
const RECENT_ALERTS: usize = 7;

/// One thing the forwarder wrote, by where it came from.
struct Written {
    origin: String,
    bytes: Vec<u8>,
}

/// Creates a simulator that accepts `keys`, with no generated alerts.
fn model(keys: &[&str]) -> Model {
    let mut settings = SimSettings::new(Clock::system());
    settings.api_keys = keys.iter().map(|key| (*key).to_owned()).collect();
    settings.since = Since::After;
    settings.alert_rate_per_hour = 0.0;
    settings.devices = 5;
    Model::new(settings)
}

fn free_port() -> SocketAddr {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("address")
}

/// Writes the key file and a config for the simulator at `api`, and
/// returns the config's path.
fn write_config(dir: &Path, api: SocketAddr, siem: SocketAddr, listen: SocketAddr) -> PathBuf {
    std::fs::write(dir.join("api-key"), KEY).expect("write key");
    let text = format!(
        "[api]\nurl = \"http://{api}/\"\napi_key_file = \"api-key\"\n\n\
         [state]\npath = \"state.db\"\n\n[alerts]\nmin_poll_interval = \"1s\"\n\n\
         [format]\nhostname = \"fwd-test\"\n\n[metrics]\nlisten = \"{listen}\"\n\n{}",
        common::output("siem", siem, "tcp", "lf")
    );
    let path = dir.join("forwarder.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

fn command(log_format: &str, args: &[&str], config: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_iotsecure-forwarder"));
    command
        .args(["--log-format", log_format])
        .args(args)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "trace")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("IOTSECURE_API_KEY");
    command
}

/// Runs a short command and keeps its standard output and error.
fn run_to_end(log_format: &str, args: &[&str], config: &Path, written: &mut Vec<Written>) {
    let output: Output = command(log_format, args, config)
        .output()
        .expect("command runs");
    let name = args.join(" ");
    written.push(Written {
        origin: format!("{name} stdout"),
        bytes: output.stdout,
    });
    written.push(Written {
        origin: format!("{name} stderr"),
        bytes: output.stderr,
    });
}

/// A `run` process whose standard error goes to a file, so a chatty
/// `trace` log cannot fill a pipe and block it.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(log_format: &str, config: &Path, log: PathBuf) -> Daemon {
        let file = File::create(&log).expect("create log file");
        let child = command(log_format, &["run"], config)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("forwarder starts");
        Daemon { child, log }
    }

    fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Waits until the log contains `text`.
    async fn wait_for_log(&self, text: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !self.log_text().contains(text) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{text:?} not logged within {WAIT:?}:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends SIGTERM, waits for the exit, and returns the whole log.
    async fn stop(mut self) -> Written {
        let pid = self.child.id().to_string();
        let signalled = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(signalled.success(), "SIGTERM sent to {pid}");
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "run exits 0: {}", self.log_text());
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "run did not stop");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Written {
            origin: self.log.display().to_string(),
            bytes: std::fs::read(&self.log).expect("read log"),
        }
    }
}

async fn scrape(listen: SocketAddr) -> Written {
    let response = reqwest::get(format!("http://{listen}/metrics"))
        .await
        .expect("scrape answers");
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.expect("scrape body");
    Written {
        origin: "metrics scrape".to_owned(),
        bytes: text.into_bytes(),
    }
}

/// Waits until the outbox contains `count` events, reading the database
/// as `status` does.
async fn wait_for_outbox(path: &Path, count: i64) {
    let deadline = tokio::time::Instant::now() + WAIT;
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

/// Runs the forwarder against a simulator that rejects the key.
async fn invalid_key_run(log_format: &str, dir: &Path, written: &mut Vec<Written>) {
    let rejecting = model(&["another-organization-key"]);
    let (api, _sim) = common::serve(&rejecting).await;
    let listen = free_port();
    let config = write_config(dir, api, free_port(), listen);
    run_to_end(log_format, &["check-config"], &config, written);

    let daemon = Daemon::start(log_format, &config, dir.join("invalid-key.log"));
    daemon.wait_for_log("API key rejected").await;
    let metrics = scrape(listen).await;
    let text = String::from_utf8_lossy(&metrics.bytes).into_owned();
    assert!(
        text.contains("kind=\"invalid_key\""),
        "invalid key counted: {text}"
    );
    written.push(metrics);
    written.push(daemon.stop().await);
    run_to_end(log_format, &["status"], &config, written);
    run_to_end(log_format, &["status", "--json"], &config, written);
}

/// Runs the forwarder against a simulator whose first replies are
/// faults that echo the key, with its receiver down until the alerts
/// are stored.
async fn faulty_run(log_format: &str, dir: &Path, written: &mut Vec<Written>) {
    let accepting = model(&[KEY]);
    let encoded = percent_encode(KEY);
    let proxy_page = format!(
        "<html><body>502 Bad Gateway: GET /?apikey={encoded}&amp;module=Account \
         (key {KEY})</body></html>"
    );
    accepting.push_fault(502, proxy_page);
    let failure = serde_json::json!({
        "request_status": "failed",
        "request_status_code": 422,
        "request_status_detail": format!("Invalid value for apikey {KEY} ({encoded})"),
        "apikey": KEY,
    });
    accepting.push_fault(200, failure.to_string());
    let (api, _sim) = common::serve(&accepting).await;
    let siem = free_port();
    let listen = free_port();
    let config = write_config(dir, api, siem, listen);

    let daemon = Daemon::start(log_format, &config, dir.join("faulty.log"));
    wait_for_outbox(&dir.join("state.db"), RECENT_ALERTS as i64).await;
    daemon.wait_for_log("send failed, retrying").await;
    let mut receiver = common::receiver_at(Protocol::Tcp, siem).await;
    let messages = receiver.take(RECENT_ALERTS, WAIT).await;
    for (index, message) in messages.into_iter().enumerate() {
        written.push(Written {
            origin: format!("syslog message {index}"),
            bytes: message.into_bytes(),
        });
    }
    written.push(scrape(listen).await);
    run_to_end(log_format, &["status"], &config, written);
    run_to_end(log_format, &["status", "--json"], &config, written);
    let log = daemon.stop().await;
    let text = String::from_utf8_lossy(&log.bytes).into_owned();
    assert!(text.contains("request failed; retrying"), "{text}");
    assert!(text.contains("502"), "the proxy page's status: {text}");
    assert!(text.contains("code 422"), "the failure body: {text}");
    written.push(log);
}

/// Reads the state database and its WAL and shared-memory files.
fn database_files(dir: &Path, written: &mut Vec<Written>) {
    for name in ["state.db", "state.db-wal", "state.db-shm"] {
        if let Ok(bytes) = std::fs::read(dir.join(name)) {
            written.push(Written {
                origin: name.to_owned(),
                bytes,
            });
        }
    }
}

async fn everything_written(log_format: &str) -> Vec<Written> {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut written = Vec::new();
    invalid_key_run(log_format, dir.path(), &mut written).await;
    faulty_run(log_format, dir.path(), &mut written).await;
    database_files(dir.path(), &mut written);
    written
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    let needle = needle.as_bytes();
    haystack
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle))
}

/// Checks that the logs are at `trace` level, so the search covers the
/// most verbose output.
fn assert_trace_level(log_format: &str, written: &[Written]) {
    let marker = match log_format {
        "json" => "\"level\":\"TRACE\"",
        _ => "TRACE",
    };
    let traced = written
        .iter()
        .filter(|item| item.origin.ends_with(".log"))
        .all(|item| contains(&item.bytes, marker));
    assert!(traced, "every run log has {marker} lines");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_appears_nowhere() {
    let (text, json) = tokio::join!(everything_written("text"), everything_written("json"));
    assert_trace_level("text", &text);
    assert_trace_level("json", &json);
    let encoded = percent_encode(KEY);
    assert_ne!(encoded, KEY, "the key has characters to encode");
    let needles = [KEY, encoded.as_str(), KEY_FRAGMENT];
    let mut leaks = Vec::new();
    for item in text.iter().chain(&json) {
        for needle in needles {
            if contains(&item.bytes, needle) {
                leaks.push(format!("{needle:?} in {}", item.origin));
            }
        }
    }
    assert!(leaks.is_empty(), "the API key leaked: {leaks:#?}");
    assert!(text.len() > 20, "{} outputs searched", text.len());
}
