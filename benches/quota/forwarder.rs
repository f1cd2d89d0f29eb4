//! Runs this crate's forwarder against the in-memory simulator in
//! virtual time (`tokio::time::pause`), with the scenario's changes
//! injected by a second task, and reads what it stored from the outbox.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use iotsecure_forwarder::api::{ApiError, Call, Reply, Transport};
use iotsecure_forwarder::clock::Clock;
use iotsecure_forwarder::event::Event;
use iotsecure_forwarder::service::Forwarder;
use iotsecure_forwarder::sim::{InMemory, Model};

use crate::load::{Change, START_MS, Scenario, apply};
use crate::stats::Run;
use crate::{API_KEY, model};

/// A transport that notes the time of every request that reaches the
/// simulator.
#[derive(Clone)]
struct Recording {
    inner: InMemory,
    clock: Clock,
    log: Arc<Mutex<Vec<(i64, &'static str)>>>,
}

impl Transport for Recording {
    async fn send(&self, call: &Call) -> Result<Reply, ApiError> {
        if let Ok(mut log) = self.log.lock() {
            log.push((self.clock.now_ms(), call.action));
        }
        self.inner.send(call).await
    }
}

/// Runs the scenario and returns what the forwarder did.
#[expect(
    clippy::disallowed_methods,
    reason = "the wall time of the run itself, not the simulated time"
)]
pub fn run(scenario: &Scenario, changes: &[Change]) -> Run {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("tokio runtime builds");
    let wall = Instant::now();
    let mut run = runtime.block_on(poll_in_virtual_time(scenario, changes));
    run.wall_s = wall.elapsed().as_secs_f64();
    run
}

async fn poll_in_virtual_time(scenario: &Scenario, changes: &[Change]) -> Run {
    let clock = Clock::tokio(START_MS);
    let model = model(clock.clone(), scenario.license, scenario.fleet);
    let dir = crate::state_dir();
    let log = Arc::new(Mutex::new(Vec::new()));
    let transport = Recording {
        inner: InMemory {
            model: model.clone(),
            api_key: API_KEY.to_owned(),
        },
        clock: clock.clone(),
        log: log.clone(),
    };
    let settings = crate::settings(dir.path(), scenario.license, scenario.fleet);
    let forwarder = Forwarder::open(settings, transport, clock).expect("forwarder opens");

    let stop = CancellationToken::new();
    let driver = tokio::spawn(drive(
        model.clone(),
        changes.to_vec(),
        scenario.run_ms(),
        stop.clone(),
    ));
    forwarder.poll(stop).await;
    driver.await.expect("change driver finishes");

    let log = log.lock().map(|log| log.clone()).unwrap_or_default();
    if std::env::var_os("QUOTA_HOURLY").is_some() {
        print_hourly(&log);
    }
    let requests = log.iter().map(|(at, _)| *at).collect();
    let mut timeline_per_day =
        vec![0; usize::try_from(scenario.run_ms() / 86_400_000 + 1).unwrap_or(1)];
    for (at, action) in &log {
        let day = usize::try_from((at - START_MS) / 86_400_000).unwrap_or(0);
        if *action == "getDeviceTimeline"
            && let Some(count) = timeline_per_day.get_mut(day)
        {
            *count += 1;
        }
    }
    Run {
        requests,
        timeline_per_day,
        delivered: outbox(&dir.path().join("state.db")),
        limit_hits: model.limit_replies(),
        wall_s: 0.0,
    }
}

/// Applies each change at its time, then stops the forwarder at the
/// end of the run.
async fn drive(model: Model, changes: Vec<Change>, run_ms: i64, stop: CancellationToken) {
    let start = tokio::time::Instant::now();
    let at = |ms: i64| start + Duration::from_millis(u64::try_from(ms - START_MS).unwrap_or(0));
    for change in &changes {
        tokio::time::sleep_until(at(change.at_ms)).await;
        apply(&model, change);
    }
    tokio::time::sleep_until(at(START_MS + run_ms)).await;
    stop.cancel();
}

/// Every alert state in the outbox with its `stored_ms`, read straight
/// from the database because the store's API does not return that
/// column.
fn outbox(path: &Path) -> std::collections::HashMap<(String, i64), i64> {
    let conn = rusqlite::Connection::open(path).expect("state database opens");
    let mut statement = conn
        .prepare("SELECT body, stored_ms FROM outbox")
        .expect("outbox query prepares");
    let rows = statement
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })
        .expect("outbox query runs");
    let mut delivered = std::collections::HashMap::new();
    for row in rows {
        let (body, stored_ms) = row.expect("outbox row reads");
        if let Ok(Event::Alert(event)) = serde_json::from_str(&body) {
            let key = (event.alert.alert_id, event.alert.modified.unwrap_or(-1));
            delivered.entry(key).or_insert(stored_ms);
        }
    }
    delivered
}

/// Prints the forwarder's requests per hour by action, for reading how
/// it spent a day (set `QUOTA_HOURLY` to see it).
fn print_hourly(log: &[(i64, &'static str)]) {
    let mut hours: std::collections::BTreeMap<i64, std::collections::BTreeMap<&str, usize>> =
        std::collections::BTreeMap::new();
    for (at, action) in log {
        *hours
            .entry((at - START_MS).div_euclid(3_600_000))
            .or_default()
            .entry(action)
            .or_default() += 1;
    }
    for (hour, actions) in hours {
        let counts: Vec<String> = actions
            .iter()
            .map(|(action, count)| format!("{action} {count}"))
            .collect();
        eprintln!(
            "day {} hour {:02}: {}",
            hour / 24,
            hour % 24,
            counts.join(", ")
        );
    }
}
