//! The poll loop in virtual time with enrichment under pressure: a
//! `getDevice` that keeps failing, many alerts on one device, and the
//! Demo licence. Checked: every alert change is stored once, none stays
//! held, the quota holds, and no request goes without pacing.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use iotsecure_forwarder::api::{ApiError, Call, License, Reply, Transport};
use iotsecure_forwarder::clock::Clock;
use iotsecure_forwarder::event::Event;
use iotsecure_forwarder::service::Forwarder;
use iotsecure_forwarder::sim::{InMemory, Model, SimSettings, Since};

/// 2026-01-01T00:00:00Z.
const START_MS: i64 = 1_767_225_600_000;

/// The device of alerts 900451 and 900464 in the simulator's data.
const ECG: &str = "00:40:17:6C:00:00";

/// The inventory on, the timeline off.
const TIMELINE_OFF: &str = "[timeline]\nenabled = false\n";

/// Only the alert source and enrichment.
const NO_BACKGROUND: &str = "[timeline]\nenabled = false\n\n[devices]\nenabled = false\n";

const NULL_OUTPUT: &str =
    "[[output]]\nname = \"null\"\naddress = \"127.0.0.1:9\"\nprotocol = \"udp\"\n";

/// One request that reached the transport: when, the action, and the
/// `device_id` parameter if any.
type Sent = (i64, &'static str, Option<String>);

/// A transport that passes calls to the simulator in memory, logs each,
/// and fails `getDevice` for the devices in `failing` with HTTP 503.
#[derive(Clone)]
struct Faulty {
    inner: InMemory,
    clock: Clock,
    failing: Arc<BTreeSet<String>>,
    log: Arc<Mutex<Vec<Sent>>>,
}

impl Transport for Faulty {
    async fn send(&self, call: &Call) -> Result<Reply, ApiError> {
        let device = call
            .params
            .iter()
            .find(|(name, _)| *name == "device_id")
            .map(|(_, value)| value.clone());
        self.log
            .lock()
            .expect("log")
            .push((self.clock.now_ms(), call.action, device.clone()));
        if call.action == "getDevice" && device.is_some_and(|id| self.failing.contains(&id)) {
            return Err(ApiError::Status {
                action: "getDevice",
                status: 503,
            });
        }
        self.inner.send(call).await
    }
}

struct Run {
    model: Model,
    forwarder: Forwarder<Faulty>,
    log: Arc<Mutex<Vec<Sent>>>,
    clock: Clock,
}

fn open(model: Model, clock: Clock, extra: &str, failing: &[&str]) -> (Run, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let log: Arc<Mutex<Vec<Sent>>> = Arc::default();
    let transport = Faulty {
        inner: InMemory {
            model: model.clone(),
            api_key: common::KEY.to_owned(),
        },
        clock: clock.clone(),
        failing: Arc::new(failing.iter().map(|id| (*id).to_owned()).collect()),
        log: log.clone(),
    };
    let config = format!("{extra}\n{NULL_OUTPUT}");
    let settings = common::settings(dir.path(), "http://127.0.0.1:9/", &config);
    let forwarder = Forwarder::open(settings, transport, clock.clone()).expect("opens");
    (
        Run {
            model,
            forwarder,
            log,
            clock,
        },
        dir,
    )
}

/// Opens a forwarder on a quiet simulator whose clock starts at
/// `start_ms`, with `extra` config and `getDevice` failing for `failing`.
fn open_quiet(start_ms: i64, extra: &str, failing: &[&str]) -> (Run, tempfile::TempDir) {
    let clock = Clock::tokio(start_ms);
    let model = common::quiet_model(clock.clone(), Since::After);
    open(model, clock, extra, failing)
}

impl Run {
    /// Runs the poll loop for `ms` of virtual time.
    async fn poll_for(&self, ms: u64) {
        let stop = CancellationToken::new();
        let timer = {
            let stop = stop.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                stop.cancel();
            })
        };
        self.forwarder.poll(stop).await;
        timer.await.expect("timer");
    }

    /// Returns the alert events of the outbox as (alert id, modified,
    /// ms from the start to storing, enriched).
    fn alert_rows(&self) -> Vec<(String, i64, i64, bool)> {
        self.forwarder
            .store
            .outbox_after(0, usize::MAX >> 1)
            .expect("outbox")
            .into_iter()
            .filter_map(|row| match row.event {
                Ok(Event::Alert(event)) => Some((
                    event.alert.alert_id.clone(),
                    event.alert.modified.unwrap_or(0),
                    row.stored_ms - START_MS,
                    event.device.is_some(),
                )),
                _ => None,
            })
            .collect()
    }

    fn sent(&self) -> Vec<Sent> {
        self.log.lock().expect("log").clone()
    }

    fn get_device_calls(&self, id: &str) -> usize {
        self.sent()
            .iter()
            .filter(|(_, action, device)| *action == "getDevice" && device.as_deref() == Some(id))
            .count()
    }

    /// Fails when one alert change is stored twice, or when the same
    /// request other than `getAlert` goes twice in one virtual
    /// millisecond, which means the loop sent it without a wait.
    fn check_once_and_paced(&self) {
        let rows = self.alert_rows();
        let mut seen = BTreeSet::new();
        for (id, modified, _, _) in &rows {
            assert!(
                seen.insert((id.clone(), *modified)),
                "{id}@{modified} stored twice"
            );
        }
        // Alert details may go in a burst, and so may `getDevice` for
        // distinct devices. A repeat of anything else is a loop.
        let mut per_ms: BTreeMap<(i64, &str, Option<String>), usize> = BTreeMap::new();
        for (at, action, device) in self.sent() {
            *per_ms.entry((at, action, device)).or_default() += 1;
        }
        for ((at, action, device), count) in &per_ms {
            assert!(
                *count <= 1 || *action == "getAlert",
                "at +{} ms: {count} x {action} {device:?}",
                at - START_MS
            );
        }
    }

    /// Adds an alert like 900451 on `device`, modified now.
    fn new_alert(&self, id: &str, device: &str) {
        let mut record: Value = self.model.alert("900451").expect("sample alert");
        record["alert_id"] = json!(id);
        record["device_id"] = json!(device);
        record["modified"] = json!(self.clock.now_secs());
        record["created"] = json!(self.clock.now_secs());
        self.model.insert_alert(record);
    }
}

/// Checks that the alerts of a device whose `getDevice` keeps failing
/// with a 5xx go out without device fields within the wait, and that
/// the retries cost a bounded number of requests.
#[tokio::test(start_paused = true)]
async fn failing_device_sends_alerts_unenriched() {
    let (run, _dir) = open_quiet(START_MS, TIMELINE_OFF, &[ECG]);
    run.poll_for(20 * 60_000).await;

    run.check_once_and_paced();
    assert_eq!(run.forwarder.store.held_count().expect("count"), 0);
    let rows = run.alert_rows();
    let ecg: Vec<_> = rows
        .iter()
        .filter(|(id, ..)| id == "900451" || id == "900464")
        .collect();
    assert_eq!(ecg.len(), 2, "{rows:?}");
    for (id, _, stored_after, enriched) in &ecg {
        assert!(!enriched, "{id}");
        // The two-minute wait, plus one backoff of up to five minutes.
        assert!(
            *stored_after <= 2 * 60_000 + 5 * 60_000,
            "{id} stored after {stored_after} ms"
        );
    }
    let calls = run.get_device_calls(ECG);
    eprintln!(
        "getDevice {ECG}: {calls} requests in 20 minutes; ECG alerts stored after {:?} ms",
        ecg.iter().map(|row| row.2).collect::<Vec<_>>()
    );
    assert!(
        calls <= 12,
        "{calls} getDevice requests for one failing device in 20 minutes"
    );
}

/// Checks that an alert held after one whose `getDevice` keeps failing
/// still gets its record. At midday the device share has room.
#[tokio::test(start_paused = true)]
async fn failing_device_does_not_starve_another() {
    let noon = START_MS + 12 * 3_600_000;
    let (run, _dir) = open_quiet(noon, NO_BACKGROUND, &[ECG]);
    let clock = run.clock.clone();
    // The sample alerts are held, ECG's keep failing.
    run.poll_for(50_000).await;
    assert!(run.get_device_calls(ECG) >= 1);
    let other = run.model.device_ids().last().cloned().expect("devices");
    assert!(run.forwarder.store.device(&other).expect("read").is_none());
    run.new_alert("990100", &other);
    let added_ms = clock.now_ms() - START_MS;
    run.poll_for(10 * 60_000).await;

    run.check_once_and_paced();
    assert_eq!(run.forwarder.store.held_count().expect("count"), 0);
    let rows = run.alert_rows();
    let (_, _, stored_after, enriched) = rows
        .iter()
        .find(|row| row.0 == "990100")
        .expect("the new alert is stored");
    let fetches: Vec<i64> = run
        .sent()
        .iter()
        .filter(|(_, action, device)| *action == "getDevice" && device.as_deref() == Some(ECG))
        .map(|(at, ..)| (at - noon) / 1000)
        .collect();
    eprintln!(
        "alert on {other}: stored {} s after it was added, enriched {enriched}; \
         getDevice {ECG} at {fetches:?} s",
        (stored_after - added_ms) / 1000
    );
    assert!(
        *enriched,
        "the alert on {other} went out without its device, {} s after it was added, \
         while {ECG} failed at {fetches:?} s",
        (stored_after - added_ms) / 1000
    );
}

/// Checks that alerts on healthy devices are enriched while a device
/// whose `getDevice` fails raises a new alert every minute, and that the
/// failing device is tried again only after its retry delay. Its alert
/// is always the oldest held one.
#[tokio::test(start_paused = true)]
async fn failing_device_leaves_share_to_others() {
    let noon = START_MS + 12 * 3_600_000;
    let (run, _dir) = open_quiet(noon, NO_BACKGROUND, &[ECG]);
    let others: Vec<String> = run.model.device_ids().into_iter().rev().take(5).collect();
    for minute in 0..30u64 {
        run.new_alert(&format!("{}", 991_000 + minute), ECG);
        if minute % 6 == 3 {
            let device = &others[(minute / 6) as usize];
            run.new_alert(&format!("{}", 992_000 + minute), device);
        }
        run.poll_for(60_000).await;
    }
    run.poll_for(10 * 60_000).await;

    run.check_once_and_paced();
    let rows = run.alert_rows();
    let others_rows: Vec<_> = rows.iter().filter(|row| row.0.starts_with("992")).collect();
    assert_eq!(others_rows.len(), 5, "{rows:?}");
    let enriched = others_rows.iter().filter(|row| row.3).count();
    let failing = run.get_device_calls(ECG);
    let per_device: Vec<usize> = others.iter().map(|id| run.get_device_calls(id)).collect();
    eprintln!(
        "40 minutes: {failing} getDevice for {ECG}, {per_device:?} for the others; \
         {enriched} of 5 other alerts enriched"
    );
    assert_eq!(
        enriched, 5,
        "{enriched} of 5 alerts on healthy devices enriched; {failing} getDevice went to {ECG}, \
         {per_device:?} to theirs"
    );
    // Forty minutes hold three 15-minute retry delays.
    assert!(failing <= 4, "{failing} getDevice for {ECG} in 40 minutes");
}

/// Fifty alerts on one device the table does not know: one `getDevice`
/// releases them all, enriched.
#[tokio::test(start_paused = true)]
async fn many_alerts_one_device_cost_one_request() {
    let (run, _dir) = open_quiet(START_MS, NO_BACKGROUND, &[]);
    run.poll_for(60_000).await;
    // A device of the simulator that no alert named so far, so the
    // table has no record of it.
    let device = run.model.device_ids().last().cloned().expect("devices");
    assert!(run.forwarder.store.device(&device).expect("read").is_none());
    for n in 0..50 {
        run.new_alert(&format!("{}", 990_000 + n), &device);
    }
    run.poll_for(20 * 60_000).await;

    run.check_once_and_paced();
    assert_eq!(run.forwarder.store.held_count().expect("count"), 0);
    let rows = run.alert_rows();
    let burst: Vec<_> = rows
        .iter()
        .filter(|(id, ..)| id.starts_with("990"))
        .collect();
    assert_eq!(burst.len(), 50);
    let enriched = burst.iter().filter(|row| row.3).count();
    let calls = run.get_device_calls(&device);
    eprintln!("burst of 50 on one device: {enriched} enriched, {calls} getDevice");
    assert!(calls <= 1, "{calls} getDevice for one device");
}

/// Three days on the Demo licence, five requests a day, with the
/// inventory and enrichment on and a few alerts a day: nothing stays
/// held past its wait, the quota holds, and nothing is stored twice.
#[tokio::test(start_paused = true)]
async fn demo_licence_holds_nothing_for_long() {
    let clock = Clock::tokio(START_MS);
    let mut settings = SimSettings::new(clock.clone());
    settings.api_keys = vec![common::KEY.to_owned()];
    settings.license = License::Demo;
    settings.alert_rate_per_hour = 0.2;
    settings.seed = 3;
    let model = Model::new(settings);
    let (run, _dir) = open(model, clock, TIMELINE_OFF, &[]);

    for _ in 0..3 {
        run.poll_for(86_400_000).await;
        let now = run.clock.now_ms();
        let oldest = run.forwarder.store.oldest_held().expect("read");
        let held = oldest.map(|alert| now - alert.held_ms);
        assert!(
            held.is_none_or(|age| age <= 3 * 60_000),
            "an alert held for {held:?} ms"
        );
    }

    run.check_once_and_paced();
    assert!(
        run.model.max_requests_in_a_day() <= 5,
        "{} requests in a day",
        run.model.max_requests_in_a_day()
    );
    assert_eq!(run.model.limit_replies(), 0);

    let mut actions: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, action, _) in run.sent() {
        *actions.entry(action).or_default() += 1;
    }
    eprintln!(
        "demo: {} alerts stored, requests {actions:?}, pending devices {:?}",
        run.alert_rows().len(),
        run.forwarder.store.pending_count("devices").expect("count")
    );
}
