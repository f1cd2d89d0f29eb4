//! The simulator's HTTP face over a real loopback socket: raw query
//! logging, form bodies, status codes, headers and shutdown.

use std::net::SocketAddr;

use iotsecure_forwarder::clock::Clock;
use iotsecure_forwarder::sim::{Model, SimSettings, serve};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// 2024-03-10T12:00:00Z in milliseconds.
const NOON_MS: i64 = 1_710_072_000_000;

struct Server {
    model: Model,
    base: String,
    cancel: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

async fn start(clock: Clock) -> Server {
    let model = Model::new(SimSettings::new(clock));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address: SocketAddr = listener.local_addr().expect("address");
    let cancel = CancellationToken::new();
    let task = tokio::spawn(serve(model.clone(), listener, cancel.clone()));
    Server {
        model,
        base: format!("http://{address}/"),
        cancel,
        task,
    }
}

impl Server {
    async fn stop(self) {
        self.cancel.cancel();
        let result = self.task.await.expect("server task");
        result.expect("server stops cleanly");
    }
}

#[tokio::test]
async fn raw_query_reaches_the_model_undecoded() {
    let server = start(Clock::manual(NOON_MS)).await;
    let query = "apikey=sim-key&module=IoTSecurity&action=listDevices\
        &type=Logic%20Controller";
    let url = format!("{}?{query}", server.base);
    let response = reqwest::get(&url).await.expect("request");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON");
    assert!(!body["devices"].as_array().expect("list").is_empty());
    let logged = server.model.raw_queries();
    let expected = "apikey=***&module=IoTSecurity&action=listDevices\
        &type=Logic%20Controller";
    assert_eq!(logged, [expected]);
    server.stop().await;
}

#[tokio::test]
async fn date_header_follows_offset_clock() {
    let clock = Clock::manual(NOON_MS).with_offset_ms(300_000);
    let server = start(clock).await;
    let url = format!(
        "{}?apikey=sim-key&module=Account&action=getAPIKey",
        server.base
    );
    let response = reqwest::get(&url).await.expect("request");
    let date = response.headers()["date"].to_str().expect("ASCII");
    assert_eq!(date, "Sun, 10 Mar 2024 12:05:00 GMT");
    assert_eq!(response.headers().get_all("date").iter().count(), 1);
    let content_type = response.headers()["content-type"].to_str().expect("ASCII");
    assert_eq!(content_type, "application/json");
    server.stop().await;
}

#[tokio::test]
async fn form_body_with_get_is_read() {
    let server = start(Clock::manual(NOON_MS)).await;
    let body = "apikey=sim-key&module=IoTSecurity&action=updateDevice\
        &device_id=00:40:17:6C:00:00&name=ICU+Infusion+Pump+5";
    let client = reqwest::Client::new();
    let response = client
        .get(&server.base)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let device = server.model.device("00:40:17:6C:00:00").expect("device");
    assert_eq!(device["name"], "ICU Infusion Pump 5");
    server.stop().await;
}

#[tokio::test]
async fn post_with_query_and_body_is_read() {
    let server = start(Clock::manual(NOON_MS)).await;
    let url = format!("{}?apikey=sim-key", server.base);
    let response = reqwest::Client::new()
        .post(&url)
        .body("module=IoTSecurity&action=countAlerts")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.expect("body"),
        r#"{"alert_count":87}"#
    );
    server.stop().await;
}

#[tokio::test]
async fn invalid_key_gets_http_500() {
    let server = start(Clock::manual(NOON_MS)).await;
    let url = format!(
        "{}?apikey=nope&module=Account&action=getAPIKey",
        server.base
    );
    let response = reqwest::get(&url).await.expect("request");
    assert_eq!(response.status(), 500);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["request_status_code"], 500);
    assert_eq!(
        server.model.raw_queries()[0],
        "apikey=***&module=Account&action=getAPIKey"
    );
    server.stop().await;
}

#[tokio::test]
async fn cancel_stops_the_server() {
    let server = start(Clock::manual(NOON_MS)).await;
    let base = server.base.clone();
    server.stop().await;
    assert!(reqwest::get(&base).await.is_err());
}
