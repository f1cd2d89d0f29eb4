//! The alert cursor against the simulator, in manual time: clocks that
//! disagree by five minutes either way, both readings of `modified=T`,
//! and modifications in the same second as a list call. Checked on the
//! outbox, which is what the outputs deliver.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use rand::{Rng, SeedableRng};
use serde_json::json;

use iotsecure_forwarder::clock::Clock;
use iotsecure_forwarder::event::Event;
use iotsecure_forwarder::service::Forwarder;
use iotsecure_forwarder::sim::{InMemory, Model, Since};

/// 2026-12-04T12:00:00Z.
const START_MS: i64 = 1_796_385_600_000;
const SKEWS_S: [i64; 3] = [0, 300, -300];
const MODES: [Since; 2] = [Since::After, Since::AtOrAfter];

/// Enrichment is off, so each fetched alert goes straight to the outbox
/// and the test sees the cursor alone.
const CONFIG: &str = "[alerts]\nmin_poll_interval = \"60s\"\n\n\
    [enrichment]\nenabled = false\n\n\
    [[output]]\nname = \"null\"\naddress = \"127.0.0.1:9\"\nprotocol = \"udp\"\n";

struct Setup {
    _dir: tempfile::TempDir,
    clock: Clock,
    model: Model,
    forwarder: Forwarder<InMemory>,
}

fn setup(skew_s: i64, since: Since) -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Clock::manual(START_MS);
    let model = common::quiet_model(clock.with_offset_ms(skew_s * 1000), since);
    let forwarder = common::in_memory(dir.path(), &model, clock.clone(), CONFIG);
    Setup {
        _dir: dir,
        clock,
        model,
        forwarder,
    }
}

impl Setup {
    async fn cycle(&self) {
        self.forwarder
            .alert_source()
            .cycle()
            .await
            .expect("cycle succeeds");
    }

    /// Every `(alert_id, modified, status)` in the outbox, in order.
    fn delivered(&self) -> Vec<(String, i64, String)> {
        let rows = self
            .forwarder
            .store
            .outbox_after(0, 1_000_000)
            .expect("outbox");
        rows.into_iter()
            .filter_map(|row| match row.event.expect("event reads back") {
                Event::Alert(event) => Some((
                    event.alert.alert_id,
                    event.alert.modified.unwrap_or(-1),
                    event.alert.status.unwrap_or_default(),
                )),
                Event::Timeline(_) => None,
                Event::Inventory(_) => None,
            })
            .collect()
    }

    fn insert(&self, id: &str) {
        self.model.insert_alert(json!({
            "alert_id": id, "category": "Test", "created": 1_000,
            "modified": 1_000, "status": "open", "priority": "low",
            "subject": format!("test alert {id}")
        }));
    }
}

#[tokio::test]
async fn same_second_modifications_are_each_delivered_once() {
    for skew in SKEWS_S {
        for since in MODES {
            same_second_case(skew, since).await;
        }
    }
}

async fn same_second_case(skew: i64, since: Since) {
    let setup = setup(skew, since);
    for id in ["1001", "1002", "1003"] {
        setup.insert(id);
    }
    setup.cycle().await;
    let before = setup.delivered().len();
    setup.clock.advance_ms(30_000);

    // One alert is modified and listed in the same second; the other
    // two are modified in that second after the list call.
    setup
        .model
        .modify_alert("1001", json!({"status": "acknowledged"}));
    setup.cycle().await;
    setup
        .model
        .modify_alert("1002", json!({"status": "acknowledged"}));
    setup
        .model
        .modify_alert("1003", json!({"status": "acknowledged"}));
    setup.clock.advance_ms(60_000);
    setup.cycle().await;
    setup.clock.advance_ms(60_000);
    setup.cycle().await;

    let delivered = setup.delivered();
    let new: Vec<_> = delivered[before..]
        .iter()
        .map(|(id, _, _)| id.as_str())
        .collect();
    let case = format!("skew {skew}s, {since:?}: {new:?}");
    assert_eq!(new.len(), 3, "{case}");
    for id in ["1001", "1002", "1003"] {
        assert_eq!(
            new.iter().filter(|got| **got == id).count(),
            1,
            "{id}, {case}"
        );
    }
    let refetched = setup
        .forwarder
        .store
        .counter("overlap_refetches")
        .expect("counter");
    assert!(refetched <= 2, "refetches {refetched}, {case}");
}

/// A random run: alerts change at random moments, polls come at random
/// moments, and every change that was the current state at some poll
/// must be delivered exactly once, whatever the clocks and the reading
/// of `modified=T`.
#[tokio::test]
async fn skewed_clocks_miss_and_repeat_nothing() {
    for skew in SKEWS_S {
        for since in MODES {
            random_case(skew, since, 0x5eed ^ skew as u64).await;
        }
    }
}

/// One state of an alert, `(modified, status)`, and whether a poll came
/// while it was the current state.
type Observed = ((i64, String), bool);

async fn random_case(skew: i64, since: Since, seed: u64) {
    let setup = setup(skew, since);
    let ids: Vec<String> = (2001..2021).map(|n| n.to_string()).collect();
    for id in &ids {
        setup.insert(id);
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // Per alert: the states it has had, and whether a poll saw each.
    let mut history: BTreeMap<String, Vec<Observed>> = BTreeMap::new();
    setup.cycle().await;
    for step in 0..600 {
        setup.clock.advance_ms(rng.random_range(0..8_000));
        if rng.random_bool(0.4) {
            let id = &ids[rng.random_range(0..ids.len())];
            let status = format!("s{step}");
            setup.model.modify_alert(id, json!({"status": status}));
            let modified = setup.model.alert(id).expect("alert")["modified"]
                .as_i64()
                .expect("modified");
            history
                .entry(id.clone())
                .or_default()
                .push(((modified, status), false));
        }
        if rng.random_bool(0.3) {
            setup.cycle().await;
            for states in history.values_mut() {
                if let Some(last) = states.last_mut() {
                    last.1 = true;
                }
            }
        }
    }
    setup.clock.advance_ms(120_000);
    setup.cycle().await;
    for states in history.values_mut() {
        if let Some(last) = states.last_mut() {
            last.1 = true;
        }
    }

    let delivered = setup.delivered();
    let case = format!("skew {skew}s, {since:?}");
    let mut seen = BTreeSet::new();
    for (id, modified, status) in &delivered {
        let fresh = seen.insert((id.clone(), *modified, status.clone()));
        assert!(
            fresh,
            "{id} at {modified} ({status}) delivered twice, {case}"
        );
    }
    for (id, states) in &history {
        for ((modified, status), polled) in states {
            let key = (id.clone(), *modified, status.clone());
            if *polled {
                assert!(seen.contains(&key), "{key:?} missed, {case}");
            }
        }
    }
}

/// A local clock days ahead of the server's, on a first start with no
/// known offset: the first list filters on the server's future and finds
/// nothing. The next lists reach back `start_from` on the server's clock,
/// so nothing the server changed is lost.
#[tokio::test]
async fn local_clock_ahead_loses_nothing() {
    const DAYS_S: i64 = 3 * 86_400;
    let setup = setup(-DAYS_S, Since::After);
    setup.cycle().await;
    setup.cycle().await;
    let recent: BTreeSet<String> = setup.delivered().into_iter().map(|row| row.0).collect();
    assert_eq!(recent.len(), common::RECENT_ALERTS, "{recent:?}");

    setup.clock.advance_ms(60_000);
    setup.insert("990001");
    // Modified now on the server's clock.
    assert!(setup.model.modify_alert("990001", json!({})));
    setup.clock.advance_ms(60_000);
    setup.cycle().await;
    let delivered = setup.delivered();
    assert!(
        delivered.iter().any(|row| row.0 == "990001"),
        "a new alert is listed on the server's clock: {delivered:?}"
    );
}
