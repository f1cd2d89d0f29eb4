//! What one poller did in a run, and the figures the table shows:
//! requests per day, delays from modification to delivery, and the
//! longest time without a request.

use std::collections::{BTreeMap, HashMap};

use crate::load::{Change, DAY_MS, HOUR_MS, START_MS, Scenario};

/// The record of one poller's run.
#[derive(Default)]
pub struct Run {
    /// Time of every request that reached the simulator.
    pub requests: Vec<i64>,
    /// First delivery time of each `(alert_id, modified)` state.
    pub delivered: HashMap<(String, i64), i64>,
    /// "Limit reached" replies of the simulator.
    pub limit_hits: u64,
    /// Wall-clock seconds the run took.
    pub wall_s: f64,
    /// `getDeviceTimeline` requests per day of the run.
    pub timeline_per_day: Vec<usize>,
}

/// The figures of one row of the table.
pub struct Figures {
    pub per_day: Vec<usize>,
    pub limit_hits: u64,
    pub counted: usize,
    /// Counted states never delivered as such because a newer state of
    /// the same alert was delivered first.
    pub superseded: usize,
    /// Counted states for which neither they nor a newer state arrived.
    pub undelivered: usize,
    pub p50_s: f64,
    pub p95_s: f64,
    pub max_s: f64,
    pub mean_s: f64,
    pub blind_s: f64,
    /// When the longest gap began, in milliseconds since the run's start.
    pub blind_from_ms: i64,
    pub wall_s: f64,
    /// Counted states and their summed delay in seconds, per hour of
    /// the run in which they were modified.
    pub by_hour: BTreeMap<i64, (usize, f64)>,
}

/// A state of an alert and how long it stayed the current one.
struct State {
    alert_id: String,
    modified: i64,
    lifetime_ms: i64,
}

/// Pairs each change with the next change of the same alert. The
/// simulator stamps `modified` in whole seconds, so two changes in one
/// second are one state; the later one wins.
fn states(changes: &[Change], end_ms: i64) -> Vec<State> {
    let mut next_change: HashMap<&str, i64> = HashMap::new();
    let mut states = Vec::with_capacity(changes.len());
    for change in changes.iter().rev() {
        let until = next_change.insert(&change.alert_id, change.at_ms);
        states.push(State {
            alert_id: change.alert_id.clone(),
            modified: change.at_ms.div_euclid(1_000),
            lifetime_ms: until.unwrap_or(end_ms) - change.at_ms,
        });
    }
    states.reverse();
    states
}

pub fn figures(scenario: &Scenario, changes: &[Change], run: &Run) -> Figures {
    let end_ms = START_MS + scenario.run_ms();
    // Deliveries per alert, to find the first newer state delivered
    // when a state itself never was.
    let mut by_alert: HashMap<&str, Vec<(i64, i64)>> = HashMap::new();
    for ((id, modified), at) in &run.delivered {
        by_alert.entry(id).or_default().push((*modified, *at));
    }
    let min_lifetime = scenario.fixed_interval_ms();
    let mut delays = Vec::new();
    let mut by_hour = BTreeMap::new();
    let (mut counted, mut superseded, mut undelivered) = (0, 0, 0);
    let counted_from = scenario.counted_from_ms();
    for state in states(changes, end_ms) {
        if state.lifetime_ms < min_lifetime || state.modified * 1_000 < counted_from {
            continue;
        }
        counted += 1;
        let key = (state.alert_id.clone(), state.modified);
        let delivered = match run.delivered.get(&key) {
            Some(at) => Some(*at),
            None => {
                let newer = by_alert.get(state.alert_id.as_str()).and_then(|list| {
                    list.iter()
                        .filter(|(modified, _)| *modified > state.modified)
                        .map(|(_, at)| *at)
                        .min()
                });
                superseded += usize::from(newer.is_some());
                newer
            }
        };
        if let Some(at) = delivered {
            let hour = (state.modified * 1_000 - START_MS).div_euclid(HOUR_MS);
            let entry = by_hour.entry(hour).or_insert((0, 0.0));
            entry.0 += 1;
            entry.1 += (at - state.modified * 1_000) as f64 / 1e3;
        }
        match delivered {
            Some(at) => delays.push((at - state.modified * 1_000) as f64 / 1e3),
            None => undelivered += 1,
        }
    }
    delays.sort_by(f64::total_cmp);
    let mean_s = delays.iter().sum::<f64>() / delays.len().max(1) as f64;
    let blind = blind_ms(&run.requests, counted_from, end_ms);
    Figures {
        per_day: per_day(scenario, &run.requests),
        limit_hits: run.limit_hits,
        counted,
        superseded,
        undelivered,
        p50_s: quantile(&delays, 0.50),
        p95_s: quantile(&delays, 0.95),
        max_s: delays.last().copied().unwrap_or(0.0),
        mean_s,
        blind_s: blind.0 as f64 / 1e3,
        blind_from_ms: blind.1 - START_MS,
        wall_s: run.wall_s,
        by_hour,
    }
}

/// Nearest-rank quantile of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn per_day(scenario: &Scenario, requests: &[i64]) -> Vec<usize> {
    let mut days = vec![0; (scenario.days + 1) as usize];
    for at in requests {
        let day = (at - START_MS).div_euclid(DAY_MS);
        if let Some(count) = usize::try_from(day).ok().and_then(|d| days.get_mut(d)) {
            *count += 1;
        }
    }
    days
}

/// The maximum gap between two requests from `from_ms` on, counting
/// `from_ms` and the run's end as edges, and when it began.
fn blind_ms(requests: &[i64], from_ms: i64, end_ms: i64) -> (i64, i64) {
    let mut times: Vec<i64> = requests
        .iter()
        .copied()
        .filter(|at| *at >= from_ms)
        .collect();
    times.sort_unstable();
    let mut previous = from_ms;
    let mut longest = (0, from_ms);
    for at in times.into_iter().chain([end_ms]) {
        if at - previous > longest.0 {
            longest = (at - previous, previous);
        }
        previous = at;
    }
    longest
}
