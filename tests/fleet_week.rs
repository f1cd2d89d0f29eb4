//! A week of a 5,000-device Enterprise organization in virtual time,
//! once with only the alert source and once with the device inventory,
//! enrichment and the timeline of every device, at 5 and at 20 new
//! alerts an hour. Checked: the simulator's per-day count stays within
//! the quota, the alert delay with the device sources is within a tenth
//! of the delay without them, alerts are enriched, and the timeline
//! reaches its share of devices every day.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use iotsecure_forwarder::api::License;
use iotsecure_forwarder::clock::Clock;
use iotsecure_forwarder::event::Event;
use iotsecure_forwarder::service::Forwarder;
use iotsecure_forwarder::sim::{InMemory, Model, SimSettings, Since};

use common::Recording;

/// 2026-12-07T00:00:00Z, a Monday.
const WEEK_START_MS: i64 = 1_796_601_600_000;
const DAY_MS: i64 = 86_400_000;
const FLEET: usize = 5_000;

/// Timeline polls a day the default 2 % share of 5,000 requests buys.
const TIMELINE_SHARE: usize = 100;

const ALERTS_ONLY: &str = "[devices]\nenabled = false\n\n[timeline]\nenabled = false\n\n\
                           [enrichment]\nenabled = false\n";

const WITH_DEVICES: &str = "[timeline]\npolicy = \"all\"\n";

struct Outcome {
    /// The simulator's highest request count in one UTC day.
    peak: i64,
    limit_replies: u64,
    /// Mean seconds from an alert's modification to its storing.
    mean_delay_s: f64,
    alerts: usize,
    /// Of `alerts`, those that carried their device's record.
    enriched: usize,
    /// `getDeviceTimeline` requests per day of the week.
    timeline_per_day: BTreeMap<i64, usize>,
    inventory_events: usize,
}

/// Polls a week in virtual time at `alerts_per_hour` new alerts, plus
/// half as many updates, each on a random device of the 5,000, with
/// `extra` config, and returns what happened.
async fn run_week(extra: &str, alerts_per_hour: f64) -> Outcome {
    let clock = Clock::tokio(WEEK_START_MS);
    let mut settings = SimSettings::new(clock.clone());
    settings.api_keys = vec![common::KEY.to_owned()];
    settings.license = License::Enterprise;
    settings.since = Since::After;
    settings.fleet_size = Some(FLEET);
    settings.alert_rate_per_hour = alerts_per_hour;
    settings.seed = 7;
    let model = Model::new(settings);
    let dir = tempfile::tempdir_in(shm_or_tmp()).expect("temp dir");
    let config = format!(
        "{extra}\n[[output]]\nname = \"none\"\naddress = \"127.0.0.1:9\"\nprotocol = \"udp\"\n"
    );
    let log: Arc<Mutex<Vec<(i64, &'static str)>>> = Arc::default();
    let transport = Recording {
        inner: InMemory {
            model: model.clone(),
            api_key: common::KEY.to_owned(),
        },
        clock: clock.clone(),
        log: log.clone(),
    };
    let settings = common::settings(dir.path(), "http://127.0.0.1:9/", &config);
    let forwarder = Forwarder::open(settings, transport, clock.clone()).expect("opens");

    let stop = CancellationToken::new();
    let timer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(7 * DAY_MS as u64)).await;
            stop.cancel();
        })
    };
    forwarder.poll(stop).await;
    timer.await.expect("timer");

    let rows = forwarder
        .store
        .outbox_after(0, usize::MAX >> 1)
        .expect("outbox");
    let mut seen = BTreeSet::new();
    let (mut delay_ms, mut alerts, mut inventory_events, mut enriched) = (0i64, 0usize, 0, 0);
    for row in rows {
        let (stored_ms, event) = match row.event {
            Ok(event) => (row.stored_ms, event),
            Err(error) => panic!("unreadable outbox row: {error}"),
        };
        match event {
            Event::Alert(event) => {
                let Some(modified) = event.alert.modified else {
                    continue;
                };
                // The first start reaches back a day: count only alerts
                // modified during the week.
                let key = (event.alert.alert_id.clone(), modified);
                if modified * 1000 >= WEEK_START_MS && seen.insert(key) {
                    delay_ms += stored_ms - modified * 1000;
                    alerts += 1;
                    enriched += usize::from(event.device.is_some());
                }
            }
            Event::Inventory(_) => inventory_events += 1,
            Event::Timeline(_) => {}
        }
    }
    let mut timeline_per_day = BTreeMap::new();
    for (at, action) in log.lock().map(|log| log.clone()).unwrap_or_default() {
        if action == "getDeviceTimeline" {
            *timeline_per_day
                .entry((at - WEEK_START_MS).div_euclid(DAY_MS))
                .or_default() += 1;
        }
    }
    Outcome {
        peak: model.max_requests_in_a_day(),
        limit_replies: model.limit_replies(),
        mean_delay_s: delay_ms as f64 / 1000.0 / alerts.max(1) as f64,
        alerts,
        timeline_per_day,
        inventory_events,
        enriched,
    }
}

fn shm_or_tmp() -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Runs the week with and without the device sources and checks both.
/// Returns the fraction of the week's alerts that were enriched.
async fn compare(alerts_per_hour: f64) -> f64 {
    let alone = run_week(ALERTS_ONLY, alerts_per_hour).await;
    let with = run_week(WITH_DEVICES, alerts_per_hour).await;
    let enriched = with.enriched as f64 / with.alerts.max(1) as f64;
    eprintln!(
        "{alerts_per_hour} alerts an hour, alerts only: {} alerts, mean delay {:.1} s, \
         peak {} requests a day",
        alone.alerts, alone.mean_delay_s, alone.peak
    );
    eprintln!(
        "with devices: {} alerts ({:.0} % enriched), mean delay {:.1} s ({:.3} x), \
         peak {} a day, {} inventory events, timeline polls per day {:?}",
        with.alerts,
        enriched * 100.0,
        with.mean_delay_s,
        with.mean_delay_s / alone.mean_delay_s,
        with.peak,
        with.inventory_events,
        with.timeline_per_day
    );

    for (case, outcome) in [("alerts only", &alone), ("with devices", &with)] {
        assert!(outcome.peak <= 5_000, "{case}: {} in a day", outcome.peak);
        assert_eq!(outcome.limit_replies, 0, "{case}: limit replies");
    }
    assert_eq!(
        alone.enriched, 0,
        "enrichment is off in the alerts-only run"
    );

    // The same alert changes arrive, give or take the last one or two,
    // which one run may fetch just before the week ends.
    assert!(
        with.alerts.abs_diff(alone.alerts) <= 2,
        "{} alerts with device sources, {} without",
        with.alerts,
        alone.alerts
    );
    assert!(
        with.mean_delay_s <= alone.mean_delay_s * 1.10,
        "alert delay {:.1} s with device sources, {:.1} s without",
        with.mean_delay_s,
        alone.mean_delay_s
    );
    assert!(with.inventory_events > 0, "no inventory event");
    for day in 0..7 {
        let polled = with.timeline_per_day.get(&day).copied().unwrap_or(0);
        assert!(
            polled >= TIMELINE_SHARE * 95 / 100,
            "day {day}: {polled} timeline polls"
        );
    }
    enriched
}

/// About 120 new alerts and 60 updates a day: the device share pays for
/// the device of every alert.
#[tokio::test(start_paused = true)]
async fn device_sources_week_at_5_alerts_an_hour() {
    let enriched = compare(5.0).await;
    assert!(enriched >= 0.99, "{:.1} % enriched", enriched * 100.0);
}

/// About 480 new alerts and 240 updates a day, most on a device not yet
/// in the table. In this first week the device share pays for about
/// half of them. The rest go out at once without device fields.
#[tokio::test(start_paused = true)]
async fn device_sources_week_at_20_alerts_an_hour() {
    let enriched = compare(20.0).await;
    assert!(enriched >= 0.4, "{:.1} % enriched", enriched * 100.0);
}
