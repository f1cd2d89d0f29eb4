//! The device ids that un-enriched alerts leave among the inventory's
//! pending ids (`Store::release_held_before` with a queue), and what
//! they cost in `getDevice` requests afterwards. In memory with a manual
//! clock, each step called by hand.

mod common;

use serde_json::json;

use iotsecure_forwarder::clock::Clock;
use iotsecure_forwarder::service::Forwarder;
use iotsecure_forwarder::sim::{InMemory, Model, Since};
use iotsecure_forwarder::source::CycleReport;
use iotsecure_forwarder::source::devices::SOURCE as DEVICES;

/// The device of alerts 900451 and 900464 in the simulator's data.
const ECG: &str = "00:40:17:6C:00:00";

/// A device the simulator does not know.
const LOST: &str = "AA:BB:CC:00:00:01";

/// Inventory and enrichment on, the timeline off. The inventory is
/// never cycled here, so its only pending ids are the queued ones.
const CONFIG: &str = "[timeline]\nenabled = false\n\n\
    [[output]]\nname = \"null\"\naddress = \"127.0.0.1:9\"\nprotocol = \"udp\"\n";

/// Opens a forwarder on a quiet simulator at 2026-01-01T00:00:00Z with
/// a manual clock. The state lives in the returned directory until it
/// is dropped.
fn open() -> (Clock, Model, tempfile::TempDir, Forwarder<InMemory>) {
    let clock = Clock::manual(1_767_225_600_000);
    let model = common::quiet_model(clock.clone(), Since::After);
    let dir = tempfile::tempdir().expect("temp dir");
    let forwarder = common::in_memory(dir.path(), &model, clock.clone(), CONFIG);
    (clock, model, dir, forwarder)
}

/// Counts the `getDevice` requests for `id` the simulator received.
fn get_device_calls(model: &Model, id: &str) -> usize {
    model
        .raw_queries()
        .iter()
        .filter(|query| query.contains("action=getDevice") && query.contains(id))
        .count()
}

/// A device fetched for a held alert leaves the inventory's pending ids,
/// so the inventory does not buy the same record again.
#[tokio::test]
async fn enriched_device_leaves_the_inventory_queue() {
    let (clock, model, _dir, forwarder) = open();
    let alerts = forwarder.alert_source();
    let devices = forwarder.device_source();

    let report = alerts.cycle().await.expect("cycle");
    assert!(report.held >= 2, "the ECG's alerts are held: {report:?}");
    // The device share has no room: every held alert goes out now and
    // its device is queued for the inventory.
    assert_eq!(
        devices.release_unaffordable().expect("release"),
        report.held
    );
    let queued = forwarder.store.pending(DEVICES, 100).expect("pending");
    assert!(queued.iter().any(|id| id == ECG), "{queued:?}");

    // A new alert on the ECG before the inventory got to it: held, and
    // its getDevice fetches the record.
    clock.advance_ms(5_000);
    assert!(model.modify_alert("900451", json!({ "status": "closed" })));
    let again = alerts.cycle().await.expect("cycle");
    assert_eq!(again.held, 1, "{again:?}");
    let mut held = CycleReport::default();
    while devices.fetch_held(&mut held).await.expect("fetch") {}
    assert_eq!(held.released, 1, "{held:?}");
    assert_eq!(get_device_calls(&model, ECG), 1);
    assert!(forwarder.store.device(ECG).expect("read").is_some());

    // The record is stored and fresh, so the inventory does not
    // request it again.
    let mut inventory = CycleReport::default();
    devices
        .fetch_pending(100, &mut inventory)
        .await
        .expect("fetch pending");
    assert_eq!(
        get_device_calls(&model, ECG),
        1,
        "getDevice for {ECG} sent again by the inventory right after the enrichment fetched it"
    );
}

/// A queued device the API does not know costs the inventory one
/// `getDevice`, and the miss is remembered for the TTL, as on the
/// enrichment path.
#[tokio::test]
async fn queued_unknown_device_costs_one_request() {
    let (clock, model, _dir, forwarder) = open();
    for id in ["900451", "900464"] {
        assert!(model.set_alert_field(id, "device_id", json!(LOST)));
    }
    let alerts = forwarder.alert_source();
    let devices = forwarder.device_source();

    let report = alerts.cycle().await.expect("cycle");
    assert!(report.held >= 2, "{report:?}");
    devices.release_unaffordable().expect("release");
    let queued = forwarder.store.pending(DEVICES, 100).expect("pending");
    assert!(queued.iter().any(|id| id == LOST), "{queued:?}");

    // The inventory works through its pending ids, one request a step,
    // as the scheduler's `DeviceDetail` job does.
    for _ in 0..10 {
        let mut step = CycleReport::default();
        devices.fetch_pending(1, &mut step).await.expect("fetch");
        clock.advance_ms(60_000);
    }
    let requests = get_device_calls(&model, LOST);
    assert_eq!(
        requests, 1,
        "getDevice for a device the API does not know sent {requests} times from the inventory queue"
    );
    // And the miss is remembered, so the next alert on it is not held.
    assert!(
        forwarder
            .store
            .device_missing(LOST, clock.now_ms())
            .expect("read"),
        "the inventory's failed fetch is not recorded as a miss"
    );
}

/// A device that the enrichment found missing leaves the inventory's
/// pending ids, so it is not requested again.
#[tokio::test]
async fn missed_device_leaves_the_inventory_queue() {
    let (clock, model, _dir, forwarder) = open();
    assert!(model.set_alert_field("900451", "device_id", json!(LOST)));
    let alerts = forwarder.alert_source();
    let devices = forwarder.device_source();

    alerts.cycle().await.expect("cycle");
    devices.release_unaffordable().expect("release");

    // A new alert on the same device when the share has room again.
    clock.advance_ms(5_000);
    assert!(model.modify_alert("900451", json!({ "status": "closed" })));
    let again = alerts.cycle().await.expect("cycle");
    assert_eq!(again.held, 1, "{again:?}");
    let mut held = CycleReport::default();
    while devices.fetch_held(&mut held).await.expect("fetch") {}
    assert_eq!(get_device_calls(&model, LOST), 1);
    assert!(
        forwarder
            .store
            .device_missing(LOST, clock.now_ms())
            .expect("read")
    );

    let mut inventory = CycleReport::default();
    devices
        .fetch_pending(100, &mut inventory)
        .await
        .expect("fetch pending");
    assert_eq!(
        get_device_calls(&model, LOST),
        1,
        "the inventory requested again a device recorded missing a moment ago"
    );
}
