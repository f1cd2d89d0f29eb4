//! The baseline: a poller that lists every `I` seconds and fetches
//! every listed id at once, with no pacing, until the day's requests
//! are gone. It runs on a manual clock as a discrete-event loop, so it
//! needs no runtime timers.

use std::collections::VecDeque;
use std::time::Instant;

use iotsecure_forwarder::api::{Client, TimeFilter};
use iotsecure_forwarder::clock::Clock;
use iotsecure_forwarder::sim::InMemory;

use crate::load::{Change, DAY_MS, START_MS, Scenario, apply};
use crate::stats::Run;
use crate::{API_KEY, model};

/// Seconds subtracted from the list reply's time to form the next
/// cursor: the forwarder's default, because the API does not say
/// whether `modified=T` is `> T` or `>= T`.
const OVERLAP_S: i64 = 2;

/// How far back the first list reaches, as the forwarder's default.
const START_FROM_S: i64 = 86_400;

struct Poller {
    client: Client<InMemory>,
    clock: Clock,
    allowed: i64,
    day: i64,
    used_today: i64,
    cursor: i64,
    /// Listed ids not fetched because the day's requests ran out.
    pending: VecDeque<String>,
    run: Run,
}

#[expect(
    clippy::disallowed_methods,
    reason = "the wall time of the run itself, not the simulated time"
)]
pub fn run(scenario: &Scenario, changes: &[Change]) -> Run {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime builds");
    let wall = Instant::now();
    let mut run = runtime.block_on(poll(scenario, changes));
    run.wall_s = wall.elapsed().as_secs_f64();
    run
}

async fn poll(scenario: &Scenario, changes: &[Change]) -> Run {
    let clock = Clock::manual(START_MS);
    let model = model(clock.clone(), scenario.license, scenario.fleet);
    let mut poller = Poller {
        client: Client::new(InMemory {
            model: model.clone(),
            api_key: API_KEY.to_owned(),
        }),
        clock: clock.clone(),
        allowed: scenario.allowed(),
        day: 0,
        used_today: 0,
        cursor: START_MS / 1_000 - START_FROM_S,
        pending: VecDeque::new(),
        run: Run::default(),
    };
    let interval = scenario.fixed_interval_ms();
    let end = START_MS + scenario.run_ms();
    let mut next_change = changes.iter().peekable();
    let mut tick = START_MS;
    while tick < end {
        while let Some(change) = next_change.next_if(|change| change.at_ms <= tick) {
            clock.set_ms(change.at_ms);
            apply(&model, change);
        }
        clock.set_ms(tick);
        poller.poll_once().await;
        tick += interval;
    }
    let mut run = poller.run;
    run.limit_hits = model.limit_replies();
    run
}

impl Poller {
    /// Runs one tick: fetches what an earlier tick could not, lists,
    /// then fetches every listed id, while the day has requests left.
    async fn poll_once(&mut self) {
        let day = (self.clock.now_ms() - START_MS).div_euclid(DAY_MS);
        if day != self.day {
            self.day = day;
            self.used_today = 0;
        }
        self.fetch_pending().await;
        if !self.take() {
            return;
        }
        let filter = TimeFilter {
            created: None,
            modified: Some(self.cursor),
        };
        let listed = self
            .client
            .list_alerts(filter)
            .await
            .expect("list succeeds");
        let server_s = listed
            .server_time
            .map_or(self.clock.now_secs(), |time| time.timestamp());
        self.cursor = self.cursor.max(server_s - OVERLAP_S);
        self.pending.extend(listed.ids);
        self.fetch_pending().await;
    }

    async fn fetch_pending(&mut self) {
        while !self.pending.is_empty() && self.take() {
            let Some(id) = self.pending.pop_front() else {
                break;
            };
            let alert = self.client.get_alert(&id).await.expect("fetch succeeds");
            let key = (alert.alert_id, alert.modified.unwrap_or(-1));
            let now = self.clock.now_ms();
            self.run.delivered.entry(key).or_insert(now);
        }
    }

    /// Counts one request when the day has room for it.
    fn take(&mut self) -> bool {
        if self.used_today >= self.allowed {
            return false;
        }
        self.used_today += 1;
        self.run.requests.push(self.clock.now_ms());
        true
    }
}
