//! End to end over real sockets: the simulator over HTTP, the forwarder,
//! and syslog receivers on loopback over TCP (both framings) and UDP.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use common::{RECENT_ALERTS, ThreeOutputs, cef_fields, output, receiver};
use iotsecure_forwarder::api::DeviceFilter;
use iotsecure_forwarder::clock::Clock;
use iotsecure_forwarder::sim::{Model, Since};
use iotsecure_forwarder::sink::Protocol;

const WAIT: Duration = Duration::from_secs(20);

/// Returns the config of the three outputs, with the device sources off
/// so only alerts arrive.
fn alerts_only(outputs: &ThreeOutputs) -> String {
    format!("{}\n{}", common::ALERTS_ONLY, outputs.config(""))
}

/// Checks one received message against the simulator's record.
fn assert_matches_record(message: &str, model: &Model) {
    let fields = cef_fields(message);
    let id = fields.get("externalId").expect("externalId");
    let record = model.alert(id).expect("alert exists in the simulator");
    let text = |name: &str| record[name].as_str().map(str::to_owned);
    let millis = |name: &str| record[name].as_i64().map(|s| (s * 1000).to_string());
    assert_eq!(fields.get("rt").cloned(), millis("modified"), "rt of {id}");
    assert_eq!(
        fields.get("start").cloned(),
        millis("created"),
        "start of {id}"
    );
    assert_eq!(fields.get("cat").cloned(), text("category"), "cat of {id}");
    assert_eq!(
        fields.get("msg").cloned(),
        text("category_detail"),
        "msg of {id}"
    );
    assert_eq!(
        fields.get("outcome").cloned(),
        text("resolution"),
        "outcome of {id}"
    );
    let mac = text("device_id").map(|m| m.trim().to_uppercase());
    assert_eq!(fields.get("dmac").cloned(), mac, "dmac of {id}");
    assert!(
        message.contains(&format!("|{}|", subject_of(&record))),
        "name of {id} in {message}"
    );
}

fn subject_of(record: &Value) -> String {
    let subject = record["subject"].as_str().unwrap_or_default();
    subject.replace('\\', "\\\\").replace('|', "\\|")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_every_output_with_their_values() {
    let model = common::quiet_model(Clock::system(), Since::After);
    let (api, _sim) = common::serve(&model).await;
    let mut outputs = ThreeOutputs::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let forwarder = common::over_http(dir.path(), api, &alerts_only(&outputs));

    forwarder.once().await.expect("once succeeds");

    for messages in outputs.take_all(RECENT_ALERTS, WAIT).await {
        let ids: Vec<String> = messages
            .iter()
            .map(|m| cef_fields(m)["externalId"].clone())
            .collect();
        assert!(ids.contains(&"900451".to_owned()), "{ids:?}");
        assert!(ids.contains(&"900464".to_owned()), "{ids:?}");
        for message in &messages {
            assert!(message.contains("CEF:0|"), "{message}");
            assert!(message.contains(" fwd-test "), "hostname in {message}");
            assert_matches_record(message, &model);
        }
    }
    let extra = outputs.lf.drain(Duration::from_millis(300)).await;
    assert!(extra.is_empty(), "nothing twice: {extra:?}");
}

const HOSTILE: &str = "a|b\\c=d\re\nf \u{e9}\u{4e2d}\u{1F512} | \\| \\= end";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_come_out_escaped_and_parse_back() {
    let model = common::quiet_model(Clock::system(), Since::After);
    let now = Clock::system().now_secs();
    model.insert_alert(json!({
        "alert_id": "777001", "category": HOSTILE, "category_detail": HOSTILE,
        "created": now - 60, "modified": now - 30,
        "device_id": "00:40:17:6C:00\n:00", "port": HOSTILE, "priority": HOSTILE,
        "resolution": HOSTILE, "status": HOSTILE, "subject": HOSTILE
    }));
    let (api, _sim) = common::serve(&model).await;
    let mut outputs = ThreeOutputs::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let forwarder = common::over_http(dir.path(), api, &alerts_only(&outputs));

    forwarder.once().await.expect("once succeeds");

    for messages in outputs.take_all(RECENT_ALERTS + 1, WAIT).await {
        let hostile: Vec<&String> = messages.iter().filter(|m| m.contains("777001")).collect();
        assert_eq!(hostile.len(), 1, "one message for the event: {messages:#?}");
        let message = hostile[0];
        assert!(
            !message.contains('\n') && !message.contains('\r'),
            "{message:?}"
        );
        let fields = cef_fields(message);
        for key in ["cat", "msg", "outcome"] {
            assert_eq!(fields.get(key).map(String::as_str), Some(HOSTILE), "{key}");
        }
        let labelled: BTreeMap<_, _> = labelled_fields(&fields);
        for label in ["status", "priority", "port"] {
            assert_eq!(
                labelled.get(label).map(String::as_str),
                Some(HOSTILE),
                "{label}"
            );
        }
        assert_eq!(
            fields.get("dmac").map(String::as_str),
            Some("00:40:17:6C:00:00")
        );
        let record = iotsecure_forwarder::format::parse_cef(
            &message[message.find("CEF:0|").expect("CEF")..],
        )
        .expect("CEF parses");
        assert_eq!(record.name, HOSTILE.replace(['\r', '\n'], " "));
    }
}

/// `csN` values keyed by their `csNLabel`.
fn labelled_fields(fields: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut labelled = BTreeMap::new();
    for (key, label) in fields {
        if let Some(slot) = key.strip_suffix("Label")
            && let Some(value) = fields.get(slot)
        {
            labelled.insert(label.clone(), value.clone());
        }
    }
    labelled
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn space_in_a_filter_goes_as_percent_20() {
    let model = common::quiet_model(Clock::system(), Since::After);
    let (api, _sim) = common::serve(&model).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let forwarder = common::over_http(dir.path(), api, &output("x", api, "udp", "lf"));
    let filter = DeviceFilter {
        device_type: Some("Logic Controller".into()),
        ..DeviceFilter::default()
    };

    let listed = forwarder.client.list_devices(&filter).await.expect("lists");

    assert!(!listed.ids.is_empty(), "the fleet has Logic Controllers");
    let queries = model.raw_queries();
    let last = queries.last().expect("a query arrived");
    assert!(last.contains("type=Logic%20Controller"), "{last}");
    assert!(!last.contains('+'), "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_midway_resumes_without_listing_again() {
    let model = common::quiet_model(Clock::system(), Since::After);
    let (api, _sim) = common::serve(&model).await;
    let mut outputs = ThreeOutputs::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = format!(
        "[alerts]\nmax_details_per_cycle = 3\n\n{}",
        alerts_only(&outputs)
    );
    let first = common::over_http(dir.path(), api, &config);
    first.alert_source().cycle().await.expect("first cycle");
    assert_eq!(first.store.pending_count("alerts").expect("pending"), 4);
    drop(first);
    let before = model.raw_queries().len();

    let second = common::over_http(dir.path(), api, &alerts_only(&outputs));
    second.once().await.expect("once succeeds");

    let after = model.raw_queries();
    assert!(
        after[before].contains("action=getAlert"),
        "{:?}",
        &after[before..]
    );
    let messages = outputs.take_all(RECENT_ALERTS, WAIT).await;
    for received in messages {
        let mut ids: Vec<String> = received
            .iter()
            .map(|m| cef_fields(m)["externalId"].clone())
            .collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), RECENT_ALERTS, "{ids:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_that_is_down_holds_back_only_itself() {
    let model = common::quiet_model(Clock::system(), Since::After);
    let (api, _sim) = common::serve(&model).await;
    let mut up = receiver(Protocol::Tcp).await;
    let down_addr = {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        socket.local_addr().expect("address")
    };
    let config = [
        common::ALERTS_ONLY.to_owned(),
        output("up", up.addr, "tcp", "lf"),
        output("down", down_addr, "tcp", "octet-counting"),
    ]
    .join("\n");
    let dir = tempfile::tempdir().expect("temp dir");
    let forwarder = std::sync::Arc::new(common::over_http(dir.path(), api, &config));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let running = {
        let (forwarder, shutdown) = (forwarder.clone(), shutdown.clone());
        tokio::spawn(async move { forwarder.run(shutdown).await })
    };

    let first = up.take(RECENT_ALERTS, WAIT).await;
    assert_eq!(first.len(), RECENT_ALERTS);
    assert_eq!(
        forwarder.store.outbox_depth("down").expect("depth"),
        RECENT_ALERTS as i64
    );

    let mut late = common::receiver_at(Protocol::Tcp, down_addr).await;
    let caught_up = late.take(RECENT_ALERTS, WAIT).await;
    assert_eq!(caught_up.len(), RECENT_ALERTS);
    shutdown.cancel();
    running.await.expect("joins").expect("run ends cleanly");
    assert_eq!(
        forwarder.store.outbox_len().expect("len"),
        0,
        "delivered rows leave"
    );
    assert!(up.drain(Duration::from_millis(200)).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_alert_is_shortened_not_broken() {
    let model = common::quiet_model(Clock::system(), Since::After);
    let now = Clock::system().now_secs();
    model.insert_alert(json!({
        "alert_id": "777003", "subject": "\\".repeat(3_000),
        "category_detail": "x".repeat(100_000), "status": "=".repeat(4_000),
        "created": now - 60, "modified": now - 30
    }));
    let (api, _sim) = common::serve(&model).await;
    let mut small = receiver(Protocol::Tcp).await;
    let config = format!(
        "{}max_message_bytes = 600\n",
        output("small", small.addr, "tcp", "octet-counting")
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let forwarder = common::over_http(dir.path(), api, &config);

    forwarder.once().await.expect("once succeeds");

    let messages = small.take(RECENT_ALERTS + 1, WAIT).await;
    let oversize: Vec<&String> = messages.iter().filter(|m| m.contains("777003")).collect();
    assert_eq!(oversize.len(), 1, "{messages:#?}");
    assert!(oversize[0].len() <= 600, "{} bytes", oversize[0].len());
    let fields = cef_fields(oversize[0]);
    assert_eq!(fields.get("externalId").map(String::as_str), Some("777003"));
}
