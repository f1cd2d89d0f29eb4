//! The daily quota over simulated weeks, in virtual time: the forwarder
//! polls the simulator in memory under `tokio::time::pause`, so a week
//! takes seconds. Checked: the simulator's own per-day count, its
//! "limit reached" replies, that every alert arrives in its latest
//! state when the quota can carry the load, that every day with work
//! left gets a request in its last hour, restarts, and a mid-day "limit
//! reached" caused by another tool.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use iotsecure_forwarder::api::License;
use iotsecure_forwarder::budget::day_start_ms;
use iotsecure_forwarder::clock::Clock;
use iotsecure_forwarder::event::Event;
use iotsecure_forwarder::service::Forwarder;
use iotsecure_forwarder::sim::{InMemory, Model, SimSettings, Since};

use common::Recording;

/// 2026-12-07T00:00:00Z, a Monday.
const WEEK_START_MS: i64 = 1_796_601_600_000;
const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

struct Week {
    dir: tempfile::TempDir,
    clock: Clock,
    model: Model,
    log: Arc<Mutex<Vec<(i64, &'static str)>>>,
    config: String,
}

/// Creates a state folder on tmpfs where there is one: the tests commit tens of
/// thousands of transactions, and fsync on a disk would dominate.
fn state_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::tempdir_in(shm)
    {
        return dir;
    }
    tempfile::tempdir().expect("temp dir")
}

impl Week {
    fn new(license: License, alerts_per_hour: f64, extra: &str) -> Week {
        Week::skewed(license, alerts_per_hour, extra, 0)
    }

    /// Creates a week whose simulator clock runs `skew_ms` ahead of the
    /// forwarder's (behind when negative).
    fn skewed(license: License, alerts_per_hour: f64, extra: &str, skew_ms: i64) -> Week {
        let clock = Clock::tokio(WEEK_START_MS);
        let mut settings = SimSettings::new(clock.with_offset_ms(skew_ms));
        settings.api_keys = vec![common::KEY.to_owned()];
        settings.license = license;
        settings.since = Since::After;
        settings.devices = 5;
        settings.alert_rate_per_hour = alerts_per_hour;
        settings.seed = 42;
        let model = Model::new(settings);
        let name = format!("{license:?}").to_lowercase();
        // The alert source alone: tests/fleet_week.rs adds the device
        // sources.
        let config = format!(
            "[quota]\nlicense = \"{name}\"\n{extra}\n\n{}\
             [[output]]\nname = \"none\"\naddress = \"127.0.0.1:9\"\nprotocol = \"udp\"\n",
            common::ALERTS_ONLY
        );
        Week {
            dir: state_dir(),
            clock,
            model,
            log: Arc::default(),
            config,
        }
    }

    fn forwarder(&self) -> Forwarder<Recording> {
        self.forwarder_with_key(common::KEY)
    }

    fn forwarder_with_key(&self, key: &str) -> Forwarder<Recording> {
        let settings = common::settings(self.dir.path(), "http://127.0.0.1:9/", &self.config);
        let transport = Recording {
            inner: InMemory {
                model: self.model.clone(),
                api_key: key.to_owned(),
            },
            clock: self.clock.clone(),
            log: self.log.clone(),
        };
        Forwarder::open(settings, transport, self.clock.clone()).expect("forwarder opens")
    }

    /// Polls for `duration` of virtual time.
    async fn poll_for(&self, forwarder: &Forwarder<Recording>, duration: Duration) {
        let stop = CancellationToken::new();
        let timer = {
            let stop = stop.clone();
            tokio::spawn(async move {
                tokio::time::sleep(duration).await;
                stop.cancel();
            })
        };
        forwarder.poll(stop).await;
        timer.await.expect("timer");
    }

    /// Adds `count` open alerts modified now, with ids from `first_id`.
    fn insert_burst(&self, first_id: u64, count: u64) {
        let now = self.clock.now_secs();
        for n in 0..count {
            self.model.insert_alert(json!({
                "alert_id": format!("{}", first_id + n), "category": "Burst",
                "created": now, "modified": now, "status": "open", "priority": "high"
            }));
        }
    }

    fn requests(&self) -> Vec<(i64, &'static str)> {
        self.log.lock().map(|log| log.clone()).unwrap_or_default()
    }

    /// Requests per UTC day index from the week's start.
    fn requests_per_day(&self) -> BTreeMap<i64, usize> {
        let mut days = BTreeMap::new();
        for (at, _) in self.requests() {
            *days
                .entry((at - WEEK_START_MS).div_euclid(DAY_MS))
                .or_default() += 1;
        }
        days
    }

    /// `(alert_id, modified, status)` of every event in the outbox.
    fn delivered(&self, forwarder: &Forwarder<Recording>) -> Vec<(String, i64, String)> {
        let rows = forwarder
            .store
            .outbox_after(0, usize::MAX >> 1)
            .expect("outbox");
        rows.into_iter()
            .filter_map(|row| match row.event {
                Ok(Event::Alert(event)) => Some((
                    event.alert.alert_id,
                    event.alert.modified.unwrap_or(-1),
                    event.alert.status.unwrap_or_default(),
                )),
                _ => None,
            })
            .collect()
    }

    /// Alerts whose current state any poll of the run could have seen:
    /// modified after the first start's reach back of 24 hours.
    fn latest_states(&self) -> Vec<(String, i64, String)> {
        let from = (WEEK_START_MS - DAY_MS) / 1000;
        self.model
            .alert_ids()
            .into_iter()
            .filter_map(|id| self.model.alert(&id))
            .filter_map(|record| {
                let modified = record["modified"].as_i64()?;
                let id = record["alert_id"].as_str()?.to_owned();
                let status = record["status"].as_str().unwrap_or_default().to_owned();
                (modified > from).then_some((id, modified, status))
            })
            .collect()
    }
}

fn assert_never_over(week: &Week, allowed: i64, case: &str) {
    let peak = week.model.max_requests_in_a_day();
    assert!(
        peak <= allowed,
        "{case}: {peak} requests in a day, allowed {allowed}"
    );
    assert_eq!(week.model.limit_replies(), 0, "{case}: limit replies");
}

fn assert_latest_states_delivered(week: &Week, forwarder: &Forwarder<Recording>, case: &str) {
    let delivered = week.delivered(forwarder);
    let mut seen = std::collections::BTreeSet::new();
    for event in &delivered {
        assert!(seen.insert(event.clone()), "{case}: {event:?} twice");
    }
    for state in week.latest_states() {
        assert!(
            seen.contains(&state),
            "{case}: latest state {state:?} missing"
        );
    }
}

fn assert_last_hours_polled(week: &Week, days: i64, case: &str) {
    let requests = week.requests();
    for day in 0..days {
        let last_hour = WEEK_START_MS + day * DAY_MS + 23 * HOUR_MS;
        let polled = requests
            .iter()
            .any(|(at, _)| (last_hour..last_hour + HOUR_MS).contains(at));
        assert!(polled, "{case}: no request in the last hour of day {day}");
    }
}

/// Runs a week with alerts at `per_hour` and, when the week's quota can
/// carry them, a final quiet day to drain, then checks every rule.
async fn week_case(license: License, per_hour: f64, reserve: i64) {
    let case = format!("{license:?} at {per_hour} alerts/h, reserve {reserve}");
    let week = Week::new(license, per_hour, &format!("reserve = {reserve}"));
    let forwarder = week.forwarder();
    week.poll_for(&forwarder, Duration::from_millis(7 * DAY_MS as u64))
        .await;

    let allowed = license.daily_limit() - reserve;
    assert_never_over(&week, allowed, &case);
    assert_last_hours_polled(&week, 7, &case);
    assert_latest_states_delivered(&week, &forwarder, &case);
}

#[tokio::test(start_paused = true)]
async fn enterprise_week_at_every_load_stays_in_quota() {
    // About 36, 1,800 and 3,600 alert changes a day: the generator adds
    // half as many updates as new alerts.
    for per_hour in [1.0, 50.0, 100.0] {
        week_case(License::Enterprise, per_hour, 500).await;
    }
}

#[tokio::test(start_paused = true)]
async fn developer_week_stays_in_quota() {
    // About 18 changes a day against 50 requests.
    week_case(License::Developer, 0.5, 0).await;
}

#[tokio::test(start_paused = true)]
async fn demo_week_delivers_every_alert_eventually() {
    // One new alert every two days: the Demo licence's 5 requests a day
    // carry it, days late if need be.
    let case = "demo, quiet";
    let week = Week::new(License::Demo, 1.0 / 48.0, "");
    let forwarder = week.forwarder();
    week.poll_for(&forwarder, Duration::from_millis(7 * DAY_MS as u64))
        .await;
    if std::env::var("DEBUG_WEEK").is_ok() {
        for (at, action) in week.requests() {
            eprintln!("{:.2}h {action}", (at - WEEK_START_MS) as f64 / 3.6e6);
        }
        eprintln!("pending {:?}", forwarder.store.pending("alerts", 100));
        eprintln!("delivered {:?}", week.delivered(&forwarder));
        eprintln!("latest {:?}", week.latest_states());
    }
    assert_never_over(&week, 5, case);
    assert_last_hours_polled(&week, 7, case);
    assert_latest_states_delivered(&week, &forwarder, case);
}

#[tokio::test(start_paused = true)]
async fn overload_never_exceeds_and_reports_backlog() {
    // About 36,000 changes a day against 5,000 requests.
    let week = Week::new(License::Enterprise, 1_000.0, "");
    let forwarder = week.forwarder();
    week.poll_for(&forwarder, Duration::from_millis(2 * DAY_MS as u64))
        .await;
    assert_never_over(&week, 5_000, "overload");
    assert_last_hours_polled(&week, 2, "overload");
    let pending = forwarder.store.pending_count("alerts").expect("pending");
    assert!(pending > 0, "a backlog is left: {pending}");
    let per_day = week.requests_per_day();
    for (day, count) in per_day.iter().take(2) {
        assert!(*count >= 4_900, "day {day} used {count} of 5,000");
    }
}

#[tokio::test(start_paused = true)]
async fn burst_of_alerts_leaves_the_evening_polled() {
    let week = Week::new(License::Enterprise, 5.0, "");
    let forwarder = week.forwarder();
    week.poll_for(&forwarder, Duration::from_millis(8 * HOUR_MS as u64))
        .await;
    week.insert_burst(2_000_000, 4_000);
    week.poll_for(&forwarder, Duration::from_millis(2 * DAY_MS as u64))
        .await;
    assert_never_over(&week, 5_000, "burst");
    assert_last_hours_polled(&week, 2, "burst");
    assert_latest_states_delivered(&week, &forwarder, "burst");
}

/// A burst the day's budget cannot carry: its details take what the
/// day can spare, the lists go on at their floor until 00:00 UTC, and
/// the last hour's share is not held back while details wait.
#[tokio::test(start_paused = true)]
async fn backlog_outrunning_the_day_keeps_listing() {
    let week = Week::new(License::Enterprise, 5.0, "");
    let forwarder = week.forwarder();
    week.poll_for(&forwarder, Duration::from_millis(14 * HOUR_MS as u64))
        .await;
    week.insert_burst(3_000_000, 6_000);
    week.poll_for(&forwarder, Duration::from_millis(10 * HOUR_MS as u64))
        .await;
    assert_never_over(&week, 5_000, "backlog");
    let pending = forwarder.store.pending_count("alerts").expect("pending");
    assert!(
        pending > 0,
        "the day cannot carry the burst: {pending} pending"
    );

    let requests = week.requests();
    let evening = WEEK_START_MS + 15 * HOUR_MS..WEEK_START_MS + DAY_MS;
    let mut lists: Vec<i64> = requests
        .iter()
        .filter(|(at, action)| *action == "listAlerts" && evening.contains(at))
        .map(|(at, _)| *at)
        .collect();
    lists.sort_unstable();
    let gaps = lists.windows(2).map(|pair| pair[1] - pair[0]);
    let longest = gaps.chain([lists.first().map_or(DAY_MS, |first| first - evening.start)]);
    let longest = longest.max().unwrap_or(DAY_MS);
    // The floor is a list every 15 minutes, and a list may wait a few
    // minutes for the pacer's next token.
    assert!(
        longest <= 20 * 60_000,
        "longest gap between lists from 15:00: {} s",
        longest / 1_000
    );
    let last_hour = WEEK_START_MS + 23 * HOUR_MS..WEEK_START_MS + DAY_MS;
    let in_last_hour = requests
        .iter()
        .filter(|(at, _)| last_hour.contains(at))
        .count();
    assert!(in_last_hour > 0, "no request in the last hour");
    assert!(
        in_last_hour < 5_000 / 24 / 2,
        "{in_last_hour} requests in the last hour: its share was held back while details waited"
    );
}

#[tokio::test(start_paused = true)]
async fn restarts_add_no_requests() {
    let steady = Week::new(License::Enterprise, 20.0, "");
    let forwarder = steady.forwarder();
    steady
        .poll_for(&forwarder, Duration::from_millis(DAY_MS as u64))
        .await;
    let without = steady.requests().len();

    let restarted = Week::new(License::Enterprise, 20.0, "");
    for _ in 0..100 {
        let forwarder = restarted.forwarder();
        restarted
            .poll_for(&forwarder, Duration::from_millis((DAY_MS / 100) as u64))
            .await;
    }
    let with = restarted.requests().len();
    assert!(
        with <= without + 5,
        "{with} requests with 100 restarts, {without} without"
    );
    assert_never_over(&restarted, 5_000, "restarts");
}

#[tokio::test(start_paused = true)]
async fn limit_reached_closes_the_day_until_midnight() {
    let week = Week::new(License::Enterprise, 20.0, "");
    let forwarder = week.forwarder();
    week.poll_for(&forwarder, Duration::from_millis(12 * HOUR_MS as u64))
        .await;
    // Another tool spends the rest of the organization's quota.
    week.model.spend(5_000);
    let spent_at = week.clock.now_ms();
    week.poll_for(&forwarder, Duration::from_millis(24 * HOUR_MS as u64))
        .await;

    let next_day = day_start_ms(spent_at) + DAY_MS;
    let requests = week.requests();
    let closed = requests
        .iter()
        .filter(|(at, _)| (spent_at..next_day).contains(at))
        .count();
    assert_eq!(
        closed, 1,
        "one request meets the limit, then the day is closed"
    );
    let resumed = requests.iter().any(|(at, _)| *at >= next_day);
    assert!(resumed, "polling resumes after 00:00 UTC");
    assert_eq!(week.model.limit_replies(), 1);
}

/// Far more alerts than small licences carry: they stay within the
/// quota, poll every day's last hour, and keep the backlog.
#[tokio::test(start_paused = true)]
async fn small_licences_overloaded_stay_in_quota() {
    for (license, per_hour) in [(License::Demo, 10.0), (License::Developer, 20.0)] {
        let case = format!("{license:?} at {per_hour} alerts/h");
        let week = Week::new(license, per_hour, "");
        let forwarder = week.forwarder();
        week.poll_for(&forwarder, Duration::from_millis(7 * DAY_MS as u64))
            .await;
        assert_never_over(&week, license.daily_limit(), &case);
        assert_last_hours_polled(&week, 7, &case);
        let pending = forwarder.store.pending_count("alerts").expect("pending");
        assert!(pending > 0, "{case}: a backlog is left");
        let delivered = week.delivered(&forwarder).len();
        assert!(delivered > 0, "{case}: some alerts delivered");
    }
}

/// Restarts while the server's clock is hours ahead: requests count on
/// the server's day from the first one of each process.
#[tokio::test(start_paused = true)]
async fn restarts_with_skewed_clock_stay_in_quota() {
    let week = Week::skewed(License::Demo, 1.0, "", 6 * HOUR_MS);
    for _ in 0..(3 * 48) {
        let forwarder = week.forwarder();
        week.poll_for(&forwarder, Duration::from_millis((HOUR_MS / 2) as u64))
            .await;
    }
    assert_never_over(&week, 5, "demo, server 6 h ahead, restarts");
}

/// Another tool spends part of the quota while a backlog is pending: the
/// periodic sync still runs every six hours and counts it, so the
/// forwarder never meets the server's limit.
#[tokio::test(start_paused = true)]
async fn sync_runs_despite_a_backlog() {
    let week = Week::new(License::Enterprise, 1_000.0, "");
    let forwarder = week.forwarder();
    week.poll_for(&forwarder, Duration::from_millis((3 * HOUR_MS) as u64))
        .await;
    week.model.spend(200);
    week.poll_for(&forwarder, Duration::from_millis((21 * HOUR_MS) as u64))
        .await;
    let syncs = week
        .requests()
        .iter()
        .filter(|(_, action)| *action == "getAPIKey")
        .count();
    assert!(syncs >= 4, "{syncs} syncs in a day");
    assert_eq!(week.model.limit_replies(), 0, "the sync saw the other tool");
    assert_last_hours_polled(&week, 1, "backlog with another tool");
}

/// A reserve that leaves one request a day still delivers alerts.
#[tokio::test(start_paused = true)]
async fn one_request_a_day_alternates_lists_and_details() {
    let week = Week::new(License::Demo, 0.0, "reserve = 4");
    let forwarder = week.forwarder();
    week.poll_for(&forwarder, Duration::from_millis(6 * DAY_MS as u64))
        .await;
    assert_never_over(&week, 1, "reserve 4 of 5");
    let delivered = week.delivered(&forwarder).len();
    assert!(delivered >= 2, "{delivered} alerts delivered in 6 days");
}

/// A rejected key backs off from a minute to an hour.
#[tokio::test(start_paused = true)]
async fn invalid_key_backs_off_to_an_hour() {
    let week = Week::new(License::Developer, 1.0, "");
    let forwarder = week.forwarder_with_key("wrong-key");
    week.poll_for(&forwarder, Duration::from_millis((12 * HOUR_MS) as u64))
        .await;
    let requests = week.requests().len();
    assert!(
        requests <= 20,
        "{requests} requests in 12 hours with a bad key"
    );
    assert!(requests >= 8, "{requests} requests: it keeps trying");
}
