//! The `/metrics` endpoint, scraped over loopback while the forwarder
//! runs against the simulator over HTTP, and its config validation.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use common::{output, receiver};
use iotsecure_forwarder::clock::Clock;
use iotsecure_forwarder::config;
use iotsecure_forwarder::sim::Since;
use iotsecure_forwarder::sink::Protocol;

const WAIT: Duration = Duration::from_secs(20);

/// Alerts the simulator's built-in data has modified within 24 hours.
const RECENT_ALERTS: usize = 7;

fn free_port() -> SocketAddr {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("address")
}

/// Fetches `/metrics` and returns the status, the content type and the
/// body.
async fn scrape(address: SocketAddr) -> (u16, Option<String>, String) {
    let response = reqwest::get(format!("http://{address}/metrics"))
        .await
        .expect("scrape answers");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let body = response.text().await.expect("scrape body");
    (status, content_type, body)
}

/// Returns the value of the sample `series` (name and labels as
/// written), or `None` when the text has no such sample.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter_map(|line| line.strip_prefix(series))
        .filter_map(|rest| rest.strip_prefix(' '))
        .find_map(|value| value.trim().parse().ok())
}

/// Scrapes until `done` accepts the text, or fails after [`WAIT`].
async fn scrape_until(address: SocketAddr, done: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut last = String::new();
    loop {
        // The endpoint starts with the run, which the test spawned just
        // before, so the first attempts may find nothing listening.
        let url = format!("http://{address}/metrics");
        if let Ok(response) = reqwest::get(url).await {
            assert_eq!(response.status().as_u16(), 200);
            let text = response.text().await.expect("scrape body");
            if done(&text) {
                return text;
            }
            last = text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {WAIT:?}; last scrape:\n{last}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_matches_simulator_and_receiver() {
    let model = common::quiet_model(Clock::system(), Since::After);
    let (api, _sim) = common::serve(&model).await;
    let mut siem = receiver(Protocol::Tcp).await;
    // Nothing listens here, so this output counts connection errors.
    let down = free_port();
    let listen = free_port();
    let extra = format!(
        "{}[metrics]\nlisten = \"{listen}\"\n\n{}\n{}",
        common::ALERTS_ONLY,
        output("siem", siem.addr, "tcp", "lf"),
        output("down", down, "tcp", "lf")
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let forwarder = Arc::new(common::over_http(dir.path(), api, &extra));
    let shutdown = CancellationToken::new();
    let running = {
        let (forwarder, shutdown) = (forwarder.clone(), shutdown.clone());
        tokio::spawn(async move { forwarder.run(shutdown).await })
    };

    let received = siem.take(RECENT_ALERTS, WAIT).await;
    let siem_delivered = "iotsecure_forwarder_events_delivered_total{output=\"siem\"}";
    let text = scrape_until(listen, |text| {
        sample(text, siem_delivered) == Some(RECENT_ALERTS as f64)
    })
    .await;

    assert_eq!(received.len(), RECENT_ALERTS);
    let value = |series: &str| sample(&text, &format!("iotsecure_forwarder_{series}"));
    assert_eq!(
        value("requests_today"),
        Some(model.requests_today() as f64),
        "{text}"
    );
    assert_eq!(value("request_limit"), Some(5000.0), "{text}");
    assert_eq!(
        value("events_stored_total{source=\"alerts\"}"),
        Some(RECENT_ALERTS as f64),
        "{text}"
    );
    assert_eq!(value("outbox_depth{output=\"siem\"}"), Some(0.0), "{text}");
    assert_eq!(
        value("delivery_lag_seconds{output=\"siem\"}"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        value("outbox_depth{output=\"down\"}"),
        Some(RECENT_ALERTS as f64),
        "{text}"
    );
    let lag = value("delivery_lag_seconds{output=\"down\"}").expect("lag of down");
    assert!(lag > 0.0, "down output lags: {text}");
    assert_eq!(value("pending_ids{source=\"alerts\"}"), Some(0.0), "{text}");
    let now = Clock::system().now_secs() as f64;
    let delivered_at =
        value("last_delivery_timestamp_seconds{output=\"siem\"}").expect("last delivery of siem");
    assert!((now - delivered_at).abs() < 60.0, "{delivered_at} vs {now}");
    let polled_at =
        value("last_poll_timestamp_seconds{source=\"alerts\"}").expect("last poll of alerts");
    assert!((now - polled_at).abs() < 60.0, "{polled_at} vs {now}");
    let connect_errors = value("output_errors_total{output=\"down\",kind=\"connect\"}");
    assert!(connect_errors >= Some(1.0), "{text}");

    let mut late = common::receiver_at(Protocol::Tcp, down).await;
    let caught_up = late.take(RECENT_ALERTS, WAIT).await;
    let down_depth = "iotsecure_forwarder_outbox_depth{output=\"down\"}";
    let down_delivered = "iotsecure_forwarder_events_delivered_total{output=\"down\"}";
    // The outbox advances before the batch is counted, so a scrape in
    // between reads a depth of zero and only part of the count.
    let text = scrape_until(listen, |text| {
        sample(text, down_depth) == Some(0.0)
            && sample(text, down_delivered) == Some(RECENT_ALERTS as f64)
    })
    .await;
    assert_eq!(caught_up.len(), RECENT_ALERTS);
    let value = |series: &str| sample(&text, &format!("iotsecure_forwarder_{series}"));
    assert_eq!(
        value("events_delivered_total{output=\"down\"}"),
        Some(RECENT_ALERTS as f64),
        "{text}"
    );
    assert_eq!(
        value("delivery_lag_seconds{output=\"down\"}"),
        Some(0.0),
        "{text}"
    );
    shutdown.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(30), running).await;
    let ended = stopped.expect("run stops within the grace period");
    ended.expect("joins").expect("run ends cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_fault_counted_by_kind() {
    let model = common::quiet_model(Clock::system(), Since::After);
    // The first request, the quota sync, gets a proxy's error page.
    model.push_fault(502, "<html><body>Bad Gateway</body></html>");
    let (api, _sim) = common::serve(&model).await;
    let listen = free_port();
    let siem = receiver(Protocol::Udp).await;
    let extra = format!(
        "[metrics]\nlisten = \"{listen}\"\n\n{}",
        output("siem", siem.addr, "udp", "lf")
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let forwarder = Arc::new(common::over_http(dir.path(), api, &extra));
    let shutdown = CancellationToken::new();
    let running = {
        let (forwarder, shutdown) = (forwarder.clone(), shutdown.clone());
        tokio::spawn(async move { forwarder.run(shutdown).await })
    };

    let series = "iotsecure_forwarder_api_errors_total{action=\"getAPIKey\",kind=\"http_status\"}";
    let text = scrape_until(listen, |text| sample(text, series).is_some()).await;

    assert_eq!(sample(&text, series), Some(1.0), "{text}");
    let (_, content_type, _) = scrape(listen).await;
    let content_type = content_type.expect("content type");
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
    shutdown.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(30), running).await;
    let ended = stopped.expect("run stops within the grace period");
    ended.expect("joins").expect("run ends cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_address_fails_the_run() {
    let model = common::quiet_model(Clock::system(), Since::After);
    let (api, _sim) = common::serve(&model).await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let listen = taken.local_addr().expect("address");
    let extra = format!(
        "[metrics]\nlisten = \"{listen}\"\n\n{}",
        output("siem", free_port(), "udp", "lf")
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let forwarder = common::over_http(dir.path(), api, &extra);

    let error = forwarder
        .run(CancellationToken::new())
        .await
        .expect_err("the address is in use");

    let message = error.to_string();
    assert!(message.contains(&listen.to_string()), "{message}");
    assert!(message.contains("metrics.listen"), "{message}");
}

fn parse(text: &str) -> Result<config::Settings, config::ConfigError> {
    let output = "[[output]]\nname = \"a\"\naddress = \"127.0.0.1:514\"\n";
    config::parse(Path::new("/etc/x.toml"), &format!("{text}\n{output}"))
}

#[test]
fn config_without_metrics_is_off() {
    let settings = parse("").expect("validates");
    assert!(settings.metrics.is_none());
}

#[test]
fn config_accepts_loopback() {
    for listen in ["127.0.0.1:9469", "[::1]:9469", "127.0.0.2:0"] {
        let text = format!("[metrics]\nlisten = \"{listen}\"");
        let settings = parse(&text).expect("loopback validates");
        let metrics = settings.metrics.expect("metrics on");
        assert_eq!(metrics.listen.to_string(), listen);
    }
}

#[test]
fn config_rejects_remote_without_opt_in() {
    for listen in ["0.0.0.0:9469", "192.0.2.7:9469", "[::]:9469"] {
        let text = format!("[metrics]\nlisten = \"{listen}\"");
        let error = parse(&text).expect_err("remote rejected").to_string();
        assert!(error.contains("/etc/x.toml:2:1"), "{error}");
        assert!(error.contains("key metrics.listen"), "{error}");
        assert!(error.contains("allow_remote"), "{error}");
    }
}

#[test]
fn config_accepts_remote_with_opt_in() {
    let text = "[metrics]\nlisten = \"0.0.0.0:9469\"\nallow_remote = true";
    let settings = parse(text).expect("validates");
    let metrics = settings.metrics.expect("metrics on");
    assert_eq!(metrics.listen.to_string(), "0.0.0.0:9469");
}

#[test]
fn config_rejects_host_name() {
    let text = "[metrics]\nlisten = \"localhost:9469\"";
    let error = parse(text).expect_err("host name rejected").to_string();
    assert!(error.contains("key metrics.listen"), "{error}");
    assert!(
        error.contains("invalid address \"localhost:9469\""),
        "{error}"
    );
}

#[test]
fn config_rejects_allow_remote_alone() {
    let text = "[metrics]\nallow_remote = true";
    let error = parse(text).expect_err("rejected").to_string();
    assert!(error.contains("key metrics.allow_remote"), "{error}");
}
