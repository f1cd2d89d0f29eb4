//! Scenarios and their alert changes: a fixed number of changes per
//! UTC day at seeded random times, optionally with a share of them
//! packed into one hour or a surge added in one hour, applied
//! identically to every poller's simulator.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;

use iotsecure_forwarder::api::License;
use iotsecure_forwarder::sim::Model;

pub const DAY_MS: i64 = 86_400_000;
pub const HOUR_MS: i64 = 3_600_000;

/// 2026-12-07T00:00:00Z: runs start at a UTC day turn, so day `d` of a
/// run is UTC day `d` of the quota.
pub const START_MS: i64 = 1_796_601_600_000;

/// First id of the injected alerts, far above the simulator's built-in
/// ones.
const FIRST_ID: u64 = 5_000_000;

/// Recent alerts an update picks from, as the simulator's generator does.
const UPDATE_WINDOW: usize = 256;

/// Share of the changes that create an alert: the simulator's generator
/// adds half as many updates as new alerts.
const NEW_SHARE: f64 = 2.0 / 3.0;

/// Changes packed into one hour of each day: a share of the day's
/// changes moved there, and changes added there on top of the day's
/// usual count (a surge).
#[derive(Clone, Copy, Debug)]
pub struct Burst {
    pub share: f64,
    pub extra: usize,
    /// Start of the burst hour, in hours after 00:00 UTC.
    pub hour: i64,
    /// First day of the run with the burst; earlier days bring the
    /// usual changes only.
    pub from_day: i64,
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: &'static str,
    pub license: License,
    pub changes_per_day: usize,
    pub burst: Option<Burst>,
    /// Days with changes; one quiet day follows so the last changes
    /// can be delivered.
    pub days: i64,
    /// Leading days whose changes are not counted in the delays, so the
    /// figures show a forwarder that has seen earlier days.
    pub warmup_days: i64,
    /// Devices in the simulated organization. Above the document's five,
    /// the forwarder polls every device's timeline (`policy = "all"`).
    pub fleet: usize,
}

impl Scenario {
    /// Requests per day, all of the licence's quota (no reserve).
    pub fn allowed(&self) -> i64 {
        self.license.daily_limit()
    }

    /// Changes each day brings, a surge included.
    pub fn changes_on_day(&self) -> usize {
        self.changes_per_day + self.burst.map_or(0, |burst| burst.extra)
    }

    /// Requests per day left for listing after one `getAlert` per
    /// change of the day, a surge included.
    pub fn list_budget(&self) -> i64 {
        self.allowed() - self.changes_on_day() as i64
    }

    /// The fixed-interval poller's list interval: the requests left
    /// after the usual day's changes, spread evenly over the day. A
    /// surge is not foreseen, as its operator could not foresee it.
    pub fn fixed_interval_ms(&self) -> i64 {
        DAY_MS / (self.allowed() - self.changes_per_day as i64).max(1)
    }

    /// The smallest mean delay any poller reaches with this list
    /// budget: changes land uniformly between two lists `I` apart.
    pub fn bound_ms(&self) -> f64 {
        DAY_MS as f64 / self.list_budget().max(1) as f64 / 2.0
    }

    /// Start of the part of the run whose changes are counted.
    pub fn counted_from_ms(&self) -> i64 {
        START_MS + self.warmup_days * DAY_MS
    }

    pub fn run_ms(&self) -> i64 {
        (self.days + 1) * DAY_MS
    }
}

/// One change to an alert, at `at_ms` on the simulator's clock.
#[derive(Clone, Debug)]
pub struct Change {
    pub at_ms: i64,
    pub alert_id: String,
    pub new: bool,
}

/// Draws the scenario's changes, sorted by time. The same seed gives
/// the same changes, so every poller sees identical load.
pub fn schedule(scenario: &Scenario, seed: u64) -> Vec<Change> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut times = Vec::new();
    for day in 0..scenario.days {
        let day_start = START_MS + day * DAY_MS;
        let burst = scenario.burst.filter(|burst| day >= burst.from_day);
        let packed = burst.map_or(0, |burst| {
            (scenario.changes_per_day as f64 * burst.share).round() as usize + burst.extra
        });
        let count = scenario.changes_per_day + burst.map_or(0, |burst| burst.extra);
        for n in 0..count {
            let offset = match burst {
                Some(burst) if n < packed => burst.hour * HOUR_MS + rng.random_range(0..HOUR_MS),
                _ => rng.random_range(0..DAY_MS),
            };
            times.push(day_start + offset);
        }
    }
    times.sort_unstable();
    assign_alerts(&mut rng, times)
}

/// Turns change times into new alerts and updates of recent alerts.
fn assign_alerts(rng: &mut StdRng, times: Vec<i64>) -> Vec<Change> {
    let mut recent: Vec<String> = Vec::new();
    let mut next_id = FIRST_ID;
    let mut changes = Vec::with_capacity(times.len());
    for at_ms in times {
        let update = !rng.random_bool(NEW_SHARE);
        let window = &recent[recent.len().saturating_sub(UPDATE_WINDOW)..];
        let change = match window.choose(rng) {
            Some(id) if update => Change {
                at_ms,
                alert_id: id.clone(),
                new: false,
            },
            _ => {
                let id = next_id.to_string();
                next_id += 1;
                recent.push(id.clone());
                Change {
                    at_ms,
                    alert_id: id,
                    new: true,
                }
            }
        };
        changes.push(change);
    }
    changes
}

/// Applies `change` to `model` at the model's current time, which the
/// caller has moved to `change.at_ms`.
pub fn apply(model: &Model, change: &Change) {
    let now = model.clock().now_secs();
    if change.new {
        model.insert_alert(json!({
            "alert_id": change.alert_id, "category": "Threat",
            "category_detail": "Connection to malicious domain",
            "created": now, "modified": now, "status": "open",
            "priority": "high", "device_id": "00:40:17:6C:00:00",
        }));
    } else {
        // Any field change moves `modified` to the current second.
        model.modify_alert(&change.alert_id, json!({ "status": "acknowledged" }));
    }
}
