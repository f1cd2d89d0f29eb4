//! The device timeline source against the simulator: every reply
//! layout, a layout it cannot read, a restart between fetch and
//! delivery, overlapping `hours` windows, hostile data, and the device
//! selection policies.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use common::{cef_fields, output, receiver};
use iotsecure_forwarder::clock::Clock;
use iotsecure_forwarder::config::{TimelinePolicy, TimelineSettings};
use iotsecure_forwarder::event::{AlertEvent, Event, TimelineRecord};
use iotsecure_forwarder::sim::{Model, Since, TimelineShape};
use iotsecure_forwarder::sink::Protocol;
use iotsecure_forwarder::source::{CycleReport, TimelineSource};
use iotsecure_forwarder::state::Store;

const WAIT: Duration = Duration::from_secs(20);
const HOUR_MS: i64 = 3_600_000;

/// Text with every character that must survive the round trip, a line
/// break, a forged syslog header and a forged CEF pair.
const HOSTILE: &str = "a|b\\c=d\r\ne\u{fc}\u{2603}\n<13>1 x cs1=forged";

/// Config with alerts off and the timeline polling `devices`.
fn list_config(devices: &[String], outputs: &str) -> String {
    let quoted: Vec<String> = devices.iter().map(|d| format!("\"{d}\"")).collect();
    format!(
        "[alerts]\nenabled = false\n\n[devices]\nenabled = false\n\n[timeline]\npolicy = \"list\"\ndevices = [{}]\n\n{outputs}",
        quoted.join(", ")
    )
}

/// Returns an output with no listener, so events wait in the outbox.
fn idle_output() -> (std::net::SocketAddr, String) {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = socket.local_addr().expect("address");
    (addr, output("siem", addr, "tcp", "lf"))
}

fn first_devices(model: &Model, count: usize) -> Vec<String> {
    model.device_ids().into_iter().take(count).collect()
}

/// Returns the timeline events in the outbox.
fn outbox_timeline(store: &Store) -> Vec<TimelineRecord> {
    let rows = store.outbox_after(0, 1_000).expect("outbox reads");
    rows.into_iter()
        .map(|row| match row.event {
            Ok(Event::Timeline(record)) => record,
            other => panic!("expected a timeline event, got {other:?}"),
        })
        .collect()
}

fn event_json(device_id: &str, created_ms: i64, ip: &str, status: &str) -> serde_json::Value {
    let created = chrono::DateTime::from_timestamp_millis(created_ms)
        .expect("valid time")
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    json!({"created": created, "device_id": device_id, "ip_address": ip, "status": status})
}

#[tokio::test]
async fn each_shape_is_parsed() {
    let model = common::quiet_model(Clock::system(), Since::After);
    let (api, _sim) = common::serve(&model).await;
    let devices = first_devices(&model, 3);
    // A second event for one device, so the `sample` layout wraps an
    // object of events instead of the document's single event.
    let now_ms = Clock::system().now_ms();
    let extra = event_json(&devices[0], now_ms - 600_000, "10.0.0.7", "down");
    model.add_timeline_event(&devices[0], now_ms - 600_000, extra);

    let shapes = [
        TimelineShape::Object,
        TimelineShape::Array,
        TimelineShape::WrappedEvent,
        TimelineShape::WrappedEvents,
        TimelineShape::WrappedTimeline,
        TimelineShape::Sample,
    ];
    for shape in shapes {
        model.set_timeline_shape(shape);
        let dir = tempfile::tempdir().expect("temp dir");
        let (_, out) = idle_output();
        let forwarder = common::over_http(dir.path(), api, &list_config(&devices, &out));
        let report = forwarder.timeline_source().cycle().await.expect("cycle");
        assert_eq!(report.requests, 3, "{shape:?}");
        assert_eq!(
            report.stored, 4,
            "{shape:?}: one seeded event each, one extra"
        );

        let records = outbox_timeline(&forwarder.store);
        let ids: BTreeSet<&str> = records.iter().map(|r| r.device_id.as_str()).collect();
        let expected: BTreeSet<&str> = devices.iter().map(String::as_str).collect();
        assert_eq!(ids, expected, "{shape:?}");
        let down: Vec<&TimelineRecord> = records.iter().filter(|r| r.status == "down").collect();
        assert_eq!(down.len(), 1, "{shape:?}");
        assert_eq!(down[0].ip_address.as_deref(), Some("10.0.0.7"), "{shape:?}");
        assert!(
            records.iter().all(|r| r.created_ms().is_some()),
            "{shape:?}: created reads as a time"
        );
        let unread = forwarder
            .store
            .counter("timeline_shapes_not_understood")
            .expect("counter");
        assert_eq!(unread, 0, "{shape:?}");
    }
}

/// Collects what the `fmt` subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut buffer = self.0.lock().unwrap_or_else(|p| p.into_inner());
        buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines_with(&self, needles: &[&str]) -> usize {
        let buffer = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let text = String::from_utf8_lossy(&buffer);
        text.lines()
            .filter(|line| needles.iter().all(|needle| line.contains(needle)))
            .count()
    }
}

#[tokio::test]
async fn unknown_shape_is_logged_once() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let model = common::quiet_model(Clock::system(), Since::After);
    let (api, _sim) = common::serve(&model).await;
    let devices = first_devices(&model, 3);
    let broken = devices[1].clone();
    model.set_device_timeline_shape(&broken, TimelineShape::Unknown);
    let mut siem = receiver(Protocol::Tcp).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let out = output("siem", siem.addr, "tcp", "lf");
    let forwarder = common::over_http(dir.path(), api, &list_config(&devices, &out));

    let source = forwarder.timeline_source();
    let report = source.cycle().await.expect("cycle");
    assert_eq!(report.requests, 3);
    assert_eq!(report.stored, 2, "the other devices' events are stored");
    let mut again = CycleReport::default();
    source
        .poll_device(&broken, &mut again)
        .await
        .expect("poll again");
    assert_eq!(again.requests, 1);

    let logged = captured.lines_with(&["not understood", &broken, "shape=\"string\""]);
    assert_eq!(logged, 1, "one line for the device and shape");
    let counted = forwarder
        .store
        .counter("timeline_shapes_not_understood")
        .expect("counter");
    assert_eq!(counted, 1);

    forwarder.once().await.expect("once delivers");
    let messages = siem.take(2, WAIT).await;
    let macs: BTreeSet<String> = messages
        .iter()
        .map(|m| cef_fields(m)["dmac"].clone())
        .collect();
    let expected: BTreeSet<String> = [devices[0].clone(), devices[2].clone()].into();
    assert_eq!(macs, expected);
    let extra = siem.drain(Duration::from_millis(500)).await;
    assert!(extra.is_empty(), "nothing more: {extra:?}");
}

#[tokio::test]
async fn restart_between_fetch_and_delivery() {
    let model = common::quiet_model(Clock::system(), Since::After);
    let (api, _sim) = common::serve(&model).await;
    let devices = first_devices(&model, 3);
    let dir = tempfile::tempdir().expect("temp dir");
    let (siem_addr, out) = idle_output();
    let config = list_config(&devices, &out);
    // Recent events, so a second poll's one-hour window finds them again.
    let recent_ms = Clock::system().now_ms() - 600_000;
    for device in &devices {
        let event = event_json(device, recent_ms, "10.0.0.2", "down");
        model.add_timeline_event(device, recent_ms, event);
    }

    let first = common::over_http(dir.path(), api, &config);
    let report = first.timeline_source().cycle().await.expect("cycle");
    assert_eq!(report.stored, 6, "a seeded and a recent event per device");
    drop(first);

    let mut siem = common::receiver_at(Protocol::Tcp, siem_addr).await;
    let second = common::over_http(dir.path(), api, &config);
    let requests_before = model.raw_queries().len();
    second.once().await.expect("once delivers");
    assert_eq!(
        model.raw_queries().len(),
        requests_before,
        "no device is due again within min_interval"
    );
    let messages = siem.take(6, WAIT).await;
    let mut keys: Vec<(String, String)> = messages
        .iter()
        .map(|m| {
            let fields = cef_fields(m);
            (fields["dmac"].clone(), fields["cs1"].clone())
        })
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 6, "each event once: {keys:?}");

    // Polling the same windows again finds only delivered events.
    let source = second.timeline_source();
    let mut report = CycleReport::default();
    for device in &devices {
        source
            .poll_device(device, &mut report)
            .await
            .expect("poll again");
    }
    assert_eq!(report.stored, 0);
    assert_eq!(report.duplicates, 3);
    second.once().await.expect("once again");
    let extra = siem.drain(Duration::from_millis(500)).await;
    assert!(extra.is_empty(), "nothing twice: {extra:?}");
}

/// Returns the `hours` values the simulator received, in order.
fn hours_asked(model: &Model) -> Vec<String> {
    model
        .raw_queries()
        .iter()
        .filter(|query| query.contains("getDeviceTimeline"))
        .filter_map(|query| query.split('&').find_map(|p| p.strip_prefix("hours=")))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn overlapping_windows_are_deduplicated() {
    let clock = Clock::manual(1_700_000_000_000);
    let model = common::quiet_model(clock.clone(), Since::After);
    let device = first_devices(&model, 1).remove(0);
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, out) = idle_output();
    let forwarder = common::in_memory(
        dir.path(),
        &model,
        clock.clone(),
        &list_config(std::slice::from_ref(&device), &out),
    );
    let source = forwarder.timeline_source();

    let start_ms = clock.now_ms();
    let recent = event_json(&device, start_ms - 600_000, "10.0.0.1", "down");
    model.add_timeline_event(&device, start_ms - 600_000, recent);
    let mut first = CycleReport::default();
    source.poll_device(&device, &mut first).await.expect("poll");
    assert_eq!(first.stored, 2, "seeded event and the recent one");
    assert_eq!(source.next_device().expect("due"), None);
    assert_eq!(
        source.next_due_ms().expect("due time"),
        Some(start_ms + HOUR_MS)
    );

    // 90 minutes on, the window is 2 hours: it reaches back before the
    // last poll, so the recent event comes again and is dropped.
    clock.advance_ms(90 * 60_000);
    let newer_ms = clock.now_ms() - 300_000;
    model.add_timeline_event(
        &device,
        newer_ms,
        event_json(&device, newer_ms, "10.0.0.1", "up"),
    );
    assert_eq!(source.next_device().expect("due"), Some(device.clone()));
    let mut second = CycleReport::default();
    source
        .poll_device(&device, &mut second)
        .await
        .expect("poll");
    assert_eq!(second.stored, 1);
    assert_eq!(second.duplicates, 1);

    clock.advance_ms(30 * HOUR_MS);
    let mut third = CycleReport::default();
    source.poll_device(&device, &mut third).await.expect("poll");
    assert_eq!(
        hours_asked(&model),
        ["24", "2", "24"],
        "first, rounded up, capped"
    );
    assert_eq!(outbox_timeline(&forwarder.store).len(), 3);
}

#[tokio::test]
async fn hostile_timeline_data_parses_back() {
    let model = common::quiet_model(Clock::system(), Since::After);
    let (api, _sim) = common::serve(&model).await;
    let device = first_devices(&model, 1).remove(0);
    assert!(model.modify_device(&device, json!({ "hostname": HOSTILE })));
    let now_ms = Clock::system().now_ms();
    let hostile_ip = event_json(&device, now_ms - 120_000, HOSTILE, "down");
    model.add_timeline_event(&device, now_ms - 120_000, hostile_ip);
    let hostile_status = event_json(&device, now_ms - 60_000, "10.1.2.3", HOSTILE);
    model.add_timeline_event(&device, now_ms - 60_000, hostile_status);

    let mut lf = receiver(Protocol::Tcp).await;
    let mut octet = receiver(Protocol::Tcp).await;
    let mut udp = receiver(Protocol::Udp).await;
    let outputs = [
        output("lf", lf.addr, "tcp", "lf"),
        output("octet", octet.addr, "tcp", "octet-counting"),
        output("udp", udp.addr, "udp", "lf"),
    ]
    .join("\n");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = list_config(std::slice::from_ref(&device), &outputs);
    let forwarder = common::over_http(dir.path(), api, &config);
    // The inventory source fills the device table in service; here the
    // test stores the record itself.
    let record = forwarder
        .client
        .get_device(&device)
        .await
        .expect("getDevice");
    forwarder
        .store
        .put_device(&record, now_ms)
        .expect("device stored");

    forwarder.once().await.expect("once delivers");
    for (name, siem) in [("lf", &mut lf), ("octet", &mut octet), ("udp", &mut udp)] {
        let messages = siem.take(3, WAIT).await;
        let extra = siem.drain(Duration::from_millis(500)).await;
        assert!(extra.is_empty(), "{name}: one message per event: {extra:?}");
        let mut statuses = Vec::new();
        for message in &messages {
            assert!(!message.contains(['\r', '\n']), "{name}: line break");
            let fields = cef_fields(message);
            assert_eq!(fields["dmac"], device, "{name}");
            assert_eq!(fields["dhost"], HOSTILE, "{name}: hostname parses back");
            assert!(
                !fields.values().any(|value| value == "forged"),
                "{name}: forged pair"
            );
            statuses.push(fields["cs1"].clone());
            match fields["cs1"].as_str() {
                "down" => assert!(!fields.contains_key("dst"), "{name}: hostile ip omitted"),
                status if status == HOSTILE => {
                    assert_eq!(fields["dst"], "10.1.2.3", "{name}");
                }
                _ => {}
            }
        }
        statuses.sort();
        let mut expected = vec![HOSTILE.to_owned(), "down".to_owned(), "up".to_owned()];
        expected.sort();
        assert_eq!(statuses, expected, "{name}");
    }
}

fn source_with(
    forwarder: &iotsecure_forwarder::service::Forwarder<iotsecure_forwarder::sim::InMemory>,
    policy: TimelinePolicy,
) -> TimelineSource<iotsecure_forwarder::budget::Budgeted<iotsecure_forwarder::sim::InMemory>> {
    let settings = TimelineSettings {
        policy,
        ..forwarder.settings().timeline.clone()
    };
    TimelineSource::new(
        forwarder.client.clone(),
        forwarder.store.clone(),
        forwarder.clock.clone(),
        settings,
        Duration::from_secs(86_400),
    )
}

fn alert_naming(id: &str, device_id: &str, modified_secs: i64) -> Event {
    Event::Alert(AlertEvent {
        alert: iotsecure_forwarder::api::Alert {
            alert_id: id.into(),
            device_id: Some(device_id.into()),
            modified: Some(modified_secs),
            ..Default::default()
        },
        device: None,
    })
}

#[tokio::test]
async fn policies_select_devices() {
    let clock = Clock::manual(1_700_000_000_000);
    let model = common::quiet_model(clock.clone(), Since::After);
    let devices = first_devices(&model, 4);
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, out) = idle_output();
    let forwarder = common::in_memory(dir.path(), &model, clock.clone(), &out);
    let store = &forwarder.store;
    let now_ms = clock.now_ms();
    for (index, id) in devices.iter().take(3).enumerate() {
        let device = iotsecure_forwarder::api::Device {
            device_id: id.clone(),
            threat: Some(index == 1),
            ..Default::default()
        };
        store.put_device(&device, now_ms).expect("device stored");
    }
    let now_secs = now_ms / 1000;
    let recent = alert_naming("1", &devices[2], now_secs - 86_400);
    let old = alert_naming("2", &devices[3], now_secs - 8 * 86_400);
    for (id, alert) in [("1", &recent), ("2", &old)] {
        store
            .commit_event("alerts", id, alert, now_ms, i64::MAX)
            .expect("alert stored");
    }

    let alerted = source_with(&forwarder, TimelinePolicy::Alerted);
    assert_eq!(
        alerted.selected_devices().expect("alerted"),
        [devices[2].clone()]
    );
    let threat = source_with(&forwarder, TimelinePolicy::Threat);
    assert_eq!(
        threat.selected_devices().expect("threat"),
        [devices[1].clone()]
    );
    let mut inventory = devices[..3].to_vec();
    inventory.sort();
    let all = source_with(&forwarder, TimelinePolicy::All);
    assert_eq!(all.selected_devices().expect("all"), inventory);
    let listed = vec![devices[3].clone()];
    let list = source_with(&forwarder, TimelinePolicy::List(listed.clone()));
    assert_eq!(list.selected_devices().expect("list"), listed);
    assert_eq!(list.selected_count().expect("count"), 1);
}

#[tokio::test]
async fn all_policy_is_round_robin() {
    let clock = Clock::manual(1_700_000_000_000);
    let model = common::quiet_model(clock.clone(), Since::After);
    let devices = first_devices(&model, 3);
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, out) = idle_output();
    let forwarder = common::in_memory(dir.path(), &model, clock.clone(), &out);
    for id in &devices {
        let device = iotsecure_forwarder::api::Device {
            device_id: id.clone(),
            ..Default::default()
        };
        forwarder
            .store
            .put_device(&device, clock.now_ms())
            .expect("device stored");
    }
    let source = source_with(&forwarder, TimelinePolicy::All);
    let mut sorted = devices.clone();
    sorted.sort();

    let mut order = Vec::new();
    let mut report = CycleReport::default();
    for round in 0..2 {
        while let Some(device) = source.next_device().expect("next") {
            source
                .poll_device(&device, &mut report)
                .await
                .expect("poll");
            order.push(device);
            clock.advance_ms(60_000);
        }
        assert_eq!(order.len(), 3 * (round + 1), "every device once per round");
        assert_eq!(source.polled_today().expect("polled today"), 3);
        clock.advance_ms(HOUR_MS);
    }
    let expected: Vec<String> = sorted.iter().chain(sorted.iter()).cloned().collect();
    assert_eq!(order, expected);
    // The clock started at 22:13 UTC and is now past midnight.
    assert_eq!(source.polled_today().expect("polled today"), 0);
}
