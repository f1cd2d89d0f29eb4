//! The device inventory and alert enrichment against the simulator: over
//! HTTP with syslog receivers on loopback, and in memory with a manual
//! clock where the enrichment wait matters.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use common::{RECENT_ALERTS, ThreeOutputs, cef_fields, output, receiver};
use iotsecure_forwarder::clock::Clock;
use iotsecure_forwarder::service::status;
use iotsecure_forwarder::sim::Since;
use iotsecure_forwarder::sink::Protocol;
use iotsecure_forwarder::source::CycleReport;
use iotsecure_forwarder::source::alerts::SOURCE as ALERTS;
use iotsecure_forwarder::source::devices::SOURCE as DEVICES;

const WAIT: Duration = Duration::from_secs(20);
const QUIET: Duration = Duration::from_millis(300);

/// The device of the API document's sample, and of alerts 900451 and
/// 900464.
const ECG: &str = "00:40:17:6C:00:00";

/// An output that the in-memory tests never start: they read the
/// outbox instead.
const UNUSED_OUTPUT: &str =
    "[[output]]\nname = \"null\"\naddress = \"127.0.0.1:9\"\nprotocol = \"udp\"\n";

/// Reaches back to 1971, so the first poll takes every device.
const ALL_DEVICES: &str = "[timeline]\nenabled = false\n\n[devices]\nstart_from = \"20000d\"\n";

fn is_inventory(message: &str) -> bool {
    message.contains(" inventory - CEF:0|")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_yields_one_inventory_event() {
    let model = common::quiet_model(Clock::system(), Since::After);
    let (api, _sim) = common::serve(&model).await;
    let mut siem = receiver(Protocol::Tcp).await;
    let extra = format!(
        "[alerts]\nenabled = false\n\n{ALL_DEVICES}\n{}",
        output("siem", siem.addr, "tcp", "lf")
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let forwarder = common::over_http(dir.path(), api, &extra);

    forwarder.once().await.expect("first once succeeds");
    let fleet = model.device_ids().len();
    let added = siem.take(fleet, WAIT).await;
    assert!(
        added
            .iter()
            .all(|m| m.contains("|inventory:added|Device added|"))
    );

    let old_name = model.device(ECG).expect("ECG exists")["name"].clone();
    forwarder
        .client
        .update_device(ECG, Some("ECG ward 3"), None)
        .await
        .expect("updateDevice succeeds");
    forwarder.once().await.expect("second once succeeds");

    let changed = siem.take(1, WAIT).await;
    let fields = cef_fields(&changed[0]);
    assert!(
        changed[0].contains("|inventory:changed|Device changed: name|"),
        "{}",
        changed[0]
    );
    assert_eq!(fields["dmac"], ECG);
    assert_eq!(fields["cs1"], "name", "changedFields");
    let previous: serde_json::Value = serde_json::from_str(&fields["cs2"]).expect("JSON");
    let new: serde_json::Value = serde_json::from_str(&fields["cs3"]).expect("JSON");
    assert_eq!(previous, json!({ "name": old_name }));
    assert_eq!(new, json!({ "name": "ECG ward 3" }));
    let extra = siem.drain(QUIET).await;
    assert!(extra.is_empty(), "one event only: {extra:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_alert_is_enriched_with_its_device() {
    let model = common::quiet_model(Clock::system(), Since::After);
    let (api, _sim) = common::serve(&model).await;
    let mut siem = receiver(Protocol::Tcp).await;
    // Without the inventory the device table starts empty, so the
    // alerts of the ECG wait for one getDevice.
    let extra = format!(
        "[timeline]\nenabled = false\n\n[devices]\nenabled = false\n\n{}",
        output("siem", siem.addr, "tcp", "lf")
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let forwarder = common::over_http(dir.path(), api, &extra);

    forwarder.once().await.expect("once succeeds");

    let messages = siem.take(RECENT_ALERTS, WAIT).await;
    let of_ecg: Vec<BTreeMap<String, String>> = messages
        .iter()
        .map(|m| cef_fields(m))
        .filter(|fields| fields.get("dmac").map(String::as_str) == Some(ECG))
        .collect();
    assert!(!of_ecg.is_empty(), "an alert of the ECG: {messages:#?}");
    for fields in &of_ecg {
        let id = &fields["externalId"];
        assert_eq!(
            fields.get("dhost").map(String::as_str),
            Some("ECG001"),
            "{id}"
        );
        let dst = fields.get("dst").map(String::as_str);
        assert_eq!(dst, Some("192.168.121.15"), "{id}");
        let location = fields.get("IoTSecureAPIDeviceLocation").map(String::as_str);
        assert_eq!(location, Some("ER Wifi"), "{id}");
    }
    assert!(
        messages.iter().all(|m| !is_inventory(m)),
        "inventory is off"
    );
    assert_eq!(forwarder.store.held_count().expect("count"), 0);
    let extra = siem.drain(QUIET).await;
    assert!(extra.is_empty(), "nothing twice: {extra:#?}");
}

/// `once` on a day that cannot pay for the device record its alerts
/// wait for still delivers them, without device fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_delivers_when_devices_unaffordable() {
    let model = common::quiet_model(Clock::system(), Since::After);
    let (api, _sim) = common::serve(&model).await;
    let mut siem = receiver(Protocol::Tcp).await;
    // One list and the recent alerts' details, and nothing for getDevice.
    let extra = format!(
        "[timeline]\nenabled = false\n\n[devices]\nenabled = false\n\n\
         [quota]\ndaily_limit = {}\nsync = false\n\n{}",
        RECENT_ALERTS + 1,
        output("siem", siem.addr, "tcp", "lf")
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let forwarder = common::over_http(dir.path(), api, &extra);

    let result = forwarder.once().await;
    assert!(result.is_err(), "the day is spent: {result:?}");

    let messages = siem.take(RECENT_ALERTS, WAIT).await;
    assert_eq!(messages.len(), RECENT_ALERTS, "{messages:#?}");
    assert_eq!(forwarder.store.held_count().expect("count"), 0);
    assert!(
        messages
            .iter()
            .all(|m| !cef_fields(m).contains_key("dhost")),
        "no device record was fetched: {messages:#?}"
    );
}

/// `once` counts what each source spent, as the daemon does, so a daemon
/// started later the same day limits each source to the rest of its share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_counts_spend_per_source() {
    let model = common::quiet_model(Clock::system(), Since::After);
    let (api, _sim) = common::serve(&model).await;
    let mut siem = receiver(Protocol::Tcp).await;
    let extra = format!(
        "[devices]\nstart_from = \"20000d\"\n\n{}",
        output("siem", siem.addr, "tcp", "lf")
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let forwarder = common::over_http(dir.path(), api, &extra);

    forwarder.once().await.expect("once succeeds");
    siem.take(RECENT_ALERTS, WAIT).await;

    let status = status::read(&forwarder.settings(), &Clock::system()).expect("status reads");
    let spent: BTreeMap<&str, i64> = status
        .sources
        .iter()
        .map(|source| (source.source.as_str(), source.requests_today))
        .collect();
    for source in ["alerts", "devices", "timeline"] {
        assert!(spent[source] > 0, "{source} spent nothing: {spent:?}");
    }
    assert_eq!(
        spent.values().sum::<i64>(),
        status.used,
        "every request of once is some source's: {spent:?}"
    );
}

/// Returns the hostname of a hostile device: every character with a
/// meaning in CEF or syslog, control characters, a forged syslog header
/// and CEF pair, then 10 KB of text.
fn hostile_hostname() -> String {
    let mut name = String::from("a|b=c\\d\re\nf\u{0}g\u{1}h\u{7f}i\t");
    name.push_str("\n<13>1 2026-01-01T00:00:00Z evil app - - - CEF:0|x|y|1|2|3|4|dhost=forged");
    name.push_str(&"x".repeat(10 * 1024));
    name
}

/// Returns the hostname as CEF carries it: control characters other than CR and
/// LF become spaces, spaces are trimmed, and `dhost` keeps 1023
/// characters.
fn carried(hostname: &str) -> String {
    let replaced: String = hostname
        .chars()
        .map(|c| {
            if c.is_control() && c != '\r' && c != '\n' {
                ' '
            } else {
                c
            }
        })
        .collect();
    replaced.trim_matches(' ').chars().take(1023).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_hostname_stays_one_message() {
    let model = common::quiet_model(Clock::system(), Since::After);
    let hostname = hostile_hostname();
    assert!(model.modify_device(ECG, json!({ "hostname": hostname })));
    let (api, _sim) = common::serve(&model).await;
    let mut outputs = ThreeOutputs::start().await;
    // UDP takes datagrams up to the IPv4 maximum, so a long hostname fits
    // on every output.
    let udp_max = "max_message_bytes = 65507\n";
    let extra = format!("{ALL_DEVICES}\n{}", outputs.config(udp_max));
    let dir = tempfile::tempdir().expect("temp dir");
    let forwarder = common::over_http(dir.path(), api, &extra);

    forwarder.once().await.expect("once succeeds");

    let expected = model.device_ids().len() + RECENT_ALERTS;
    let want = carried(&hostname);
    for (name, receiver) in outputs.all() {
        let mut messages = receiver.take(expected, WAIT).await;
        messages.extend(receiver.drain(QUIET).await);
        assert_eq!(messages.len(), expected, "{name}: one message per event");
        let mut with_hostname = 0;
        for message in &messages {
            assert!(!message.contains(['\r', '\n', '\0']), "{name}: {message:?}");
            // The hostname contains `CEF:0|` too, so the record must
            // start right after the syslog header.
            let header = message.split("CEF:0|").next().unwrap_or_default();
            let header_ok = header.ends_with(" inventory - ") || header.ends_with(" alert - ");
            assert!(header_ok, "{name}: {message}");
            let fields = cef_fields(message);
            if fields.get("dmac").map(String::as_str) == Some(ECG) {
                assert_eq!(fields.get("dhost"), Some(&want), "{name}: {message}");
                with_hostname += 1;
            }
        }
        // The device's inventory event and at least the alerts 900451
        // and 900464.
        assert!(with_hostname >= 3, "{name}: {with_hostname}");
    }
}

#[tokio::test]
async fn restart_while_held_loses_nothing() {
    let clock = Clock::manual(1_767_225_600_000);
    let model = common::quiet_model(clock.clone(), Since::After);
    let dir = tempfile::tempdir().expect("temp dir");
    let config =
        &format!("[timeline]\nenabled = false\n\n[devices]\nenabled = false\n\n{UNUSED_OUTPUT}");

    let held = {
        let forwarder = common::in_memory(dir.path(), &model, clock.clone(), config);
        let report = forwarder.alert_source().cycle().await.expect("cycle");
        assert_eq!(report.stored, RECENT_ALERTS - report.held, "{report:?}");
        assert!(report.held >= 2, "the ECG's alerts are held: {report:?}");
        assert_eq!(
            forwarder.store.held_count().expect("count"),
            report.held as i64
        );
        report.held
    };

    let forwarder = common::in_memory(dir.path(), &model, clock.clone(), config);
    let devices = forwarder.device_source();
    assert_eq!(devices.held_count().expect("count"), held);
    // Listed again after the restart, as an overlap would: dropped as
    // already held.
    let alerts = forwarder.alert_source();
    let cursor = forwarder
        .store
        .cursor(ALERTS)
        .expect("read")
        .expect("cursor");
    let ids = ["900451".to_owned(), "900464".to_owned()];
    let now = clock.now_ms();
    forwarder
        .store
        .commit_listing(ALERTS, &ids, cursor, now)
        .expect("listing");
    let mut again = CycleReport::default();
    alerts.fetch_pending(10, &mut again).await.expect("fetch");
    assert_eq!(again.duplicates, 2, "{again:?}");
    assert_eq!(again.held, 0, "{again:?}");
    assert_eq!(devices.held_count().expect("count"), held);

    let mut report = CycleReport::default();
    while devices.fetch_held(&mut report).await.expect("fetch") {}
    assert_eq!(report.released, held, "{report:?}");
    assert_eq!(devices.held_count().expect("count"), 0);

    let rows = forwarder.store.outbox_after(0, 100).expect("outbox");
    assert_eq!(rows.len(), RECENT_ALERTS);
    let mut keys: Vec<String> = rows
        .iter()
        .map(|row| row.event.as_ref().expect("event reads").dedup_key())
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), RECENT_ALERTS, "no duplicate");
    let enriched = rows
        .iter()
        .filter_map(|row| match row.event.as_ref() {
            Ok(iotsecure_forwarder::event::Event::Alert(alert)) => alert.device.as_ref(),
            _ => None,
        })
        .filter(|device| device.device_id == ECG)
        .count();
    assert!(enriched >= 2, "the ECG's alerts carry the device");
}

#[tokio::test]
async fn spent_budget_releases_unenriched_after_wait() {
    let clock = Clock::manual(1_767_225_600_000);
    let model = common::quiet_model(clock.clone(), Since::After);
    let dir = tempfile::tempdir().expect("temp dir");
    // One listAlerts and seven getAlert spend the day.
    let config = format!(
        "[quota]\ndaily_limit = {}\nsync = false\n\n[timeline]\nenabled = false\n\n[devices]\nenabled = false\n\n\
         [enrichment]\nwait = \"2m\"\n\n{UNUSED_OUTPUT}",
        1 + RECENT_ALERTS
    );
    let forwarder = common::in_memory(dir.path(), &model, clock.clone(), &config);
    let report = forwarder.alert_source().cycle().await.expect("cycle");
    assert!(report.held >= 2, "{report:?}");
    let devices = forwarder.device_source();

    let mut held_report = CycleReport::default();
    let fetched = devices.fetch_held(&mut held_report).await;
    assert!(fetched.is_err(), "no room for getDevice: {fetched:?}");
    assert_eq!(devices.held_count().expect("count"), report.held);
    let first = devices.next_release_ms().expect("read").expect("held");
    assert_eq!(first, 1_767_225_600_000 + 120_000);

    clock.advance_ms(119_000);
    assert_eq!(devices.release_expired().expect("release"), 0);
    clock.advance_ms(1_000);
    assert_eq!(devices.release_expired().expect("release"), report.held);
    assert_eq!(devices.held_count().expect("count"), 0);

    let rows = forwarder.store.outbox_after(0, 100).expect("outbox");
    assert_eq!(rows.len(), RECENT_ALERTS);
    for row in rows {
        match row.event {
            Ok(iotsecure_forwarder::event::Event::Alert(alert)) => {
                assert!(alert.device.is_none(), "{}", alert.alert.alert_id)
            }
            other => panic!("unexpected row {other:?}"),
        }
    }
    assert_eq!(forwarder.store.pending_count(DEVICES).expect("count"), 0);
}

#[tokio::test]
async fn wait_zero_never_holds() {
    let clock = Clock::manual(1_767_225_600_000);
    let model = common::quiet_model(clock.clone(), Since::After);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = &format!(
        "[timeline]\nenabled = false\n\n[devices]\nenabled = false\n\n[enrichment]\nwait = \"0s\"\n\n{UNUSED_OUTPUT}"
    );
    let forwarder = common::in_memory(dir.path(), &model, clock, config);
    let report = forwarder.alert_source().cycle().await.expect("cycle");
    assert_eq!(report.held, 0, "{report:?}");
    assert_eq!(report.stored, RECENT_ALERTS);
}

#[tokio::test]
async fn missing_device_costs_one_request() {
    let clock = Clock::manual(1_767_225_600_000);
    let model = common::quiet_model(clock.clone(), Since::After);
    let dir = tempfile::tempdir().expect("temp dir");
    let config =
        &format!("[timeline]\nenabled = false\n\n[devices]\nenabled = false\n\n{UNUSED_OUTPUT}");
    let forwarder = common::in_memory(dir.path(), &model, clock.clone(), config);
    let lost = "AA:BB:CC:00:00:01";
    for id in ["900451", "900464"] {
        assert!(model.set_alert_field(id, "device_id", json!(lost)));
    }
    forwarder.alert_source().cycle().await.expect("cycle");
    let devices = forwarder.device_source();

    let mut report = CycleReport::default();
    while devices.fetch_held(&mut report).await.expect("fetch") {}
    let asked = model
        .raw_queries()
        .iter()
        .filter(|query| query.contains("action=getDevice") && query.contains(lost))
        .count();
    assert_eq!(asked, 1, "one getDevice for both alerts");
    let rows = forwarder.store.outbox_after(0, 100).expect("outbox");
    assert_eq!(rows.len(), RECENT_ALERTS);

    // A new alert of the same device within the TTL goes out at once.
    clock.advance_ms(5_000);
    assert!(model.modify_alert("900451", json!({ "status": "closed" })));
    let again = forwarder.alert_source().cycle().await.expect("cycle");
    assert_eq!(again.held, 0, "{again:?}");
    assert_eq!(again.stored, 1, "{again:?}");
}

#[tokio::test]
async fn configured_filters_reach_list_devices() {
    let clock = Clock::manual(1_767_225_600_000);
    let model = common::quiet_model(clock.clone(), Since::After);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = format!(
        "[timeline]\nenabled = false\n\n[devices]\ncategory = \"Medical Device\"\nthreat = false\n\n{UNUSED_OUTPUT}"
    );
    let forwarder = common::in_memory(dir.path(), &model, clock, &config);
    let mut report = CycleReport::default();
    forwarder
        .device_source()
        .list(&mut report)
        .await
        .expect("list");
    let queries = model.raw_queries();
    let list = queries
        .iter()
        .find(|query| query.contains("action=listDevices"))
        .expect("listDevices sent");
    assert!(list.contains("&category=Medical%20Device"), "{list}");
    assert!(list.contains("&threat=false"), "{list}");
    assert!(list.contains("&modified="), "{list}");
    assert_eq!(report.requests, 1);
}

/// Runs the poll loop for `minutes` of virtual time with `shares`, and
/// returns the alert rows of the outbox with their store time, plus the
/// devices pending afterwards.
async fn poll_with_shares(shares: &str, minutes: u64) -> (Vec<(i64, bool)>, Vec<String>) {
    let start_ms = 1_767_225_600_000;
    let clock = Clock::tokio(start_ms);
    let model = common::quiet_model(clock.clone(), Since::After);
    let dir = tempfile::tempdir().expect("temp dir");
    let config =
        format!("[quota.shares]\n{shares}\n\n[timeline]\nenabled = false\n\n{UNUSED_OUTPUT}");
    let forwarder = common::in_memory(dir.path(), &model, clock.clone(), &config);
    let stop = tokio_util::sync::CancellationToken::new();
    let timer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(minutes * 60)).await;
            stop.cancel();
        })
    };
    forwarder.poll(stop).await;
    timer.await.expect("timer");
    let rows = forwarder.store.outbox_after(0, 100).expect("outbox");
    let alerts = rows
        .into_iter()
        .filter_map(|row| match row.event {
            Ok(iotsecure_forwarder::event::Event::Alert(alert)) => {
                Some((row.stored_ms - start_ms, alert.device.is_some()))
            }
            _ => None,
        })
        .collect();
    let pending = forwarder.store.pending(DEVICES, 100).expect("pending");
    (alerts, pending)
}

#[tokio::test(start_paused = true)]
async fn device_share_pays_for_held_alerts() {
    let (alerts, _) = poll_with_shares("alerts = 94\ndevices = 4\ntimeline = 2", 10).await;
    assert_eq!(alerts.len(), RECENT_ALERTS);
    assert!(alerts.iter().all(|(_, enriched)| *enriched), "{alerts:?}");
}

#[tokio::test(start_paused = true)]
async fn full_device_share_releases_at_once() {
    let (alerts, pending) = poll_with_shares("alerts = 100\ndevices = 0\ntimeline = 0", 10).await;
    assert_eq!(alerts.len(), RECENT_ALERTS);
    // None waited out the two-minute enrichment wait.
    for (stored_after_ms, enriched) in &alerts {
        assert!(!enriched, "no device was fetched");
        assert!(
            *stored_after_ms < 60_000,
            "stored after {stored_after_ms} ms"
        );
    }
    // Their devices go first when the inventory has room.
    assert!(pending.iter().any(|id| id == ECG), "{pending:?}");
}
