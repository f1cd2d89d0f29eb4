//! Faults on single alerts: a failing record neither blocks the others
//! nor is lost quietly.

mod common;

use serde_json::json;

use iotsecure_forwarder::clock::Clock;
use iotsecure_forwarder::event::Event;
use iotsecure_forwarder::service::Forwarder;
use iotsecure_forwarder::sim::{InMemory, Model, Since};
use iotsecure_forwarder::source::CycleReport;

/// Enrichment is off, so each fetched alert goes straight to the outbox;
/// `tests/devices.rs` covers alerts held for their device.
const CONFIG: &str = "[enrichment]\nenabled = false\n\n\
    [[output]]\nname = \"null\"\naddress = \"127.0.0.1:9\"\nprotocol = \"udp\"\n";

fn stored_ids(forwarder: &Forwarder<InMemory>) -> Vec<String> {
    let rows = forwarder.store.outbox_after(0, 10_000).expect("outbox");
    rows.into_iter()
        .filter_map(|row| match row.event {
            Ok(Event::Alert(event)) => Some(event.alert.alert_id),
            Ok(Event::Timeline(_)) | Err(_) => None,
            Ok(Event::Inventory(_)) => None,
        })
        .collect()
}

fn setup() -> (tempfile::TempDir, Model, Forwarder<InMemory>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Clock::system();
    let model = common::quiet_model(clock.clone(), Since::After);
    let forwarder = common::in_memory(dir.path(), &model, clock, CONFIG);
    (dir, model, forwarder)
}

#[tokio::test]
async fn transient_failure_of_one_alert_does_not_block_the_rest() {
    let (_dir, model, forwarder) = setup();
    let source = forwarder.alert_source();
    let mut report = CycleReport::default();
    source.list(&mut report).await.expect("lists");
    let first = forwarder.store.pending("alerts", 1).expect("pending")[0].clone();

    model.push_fault(503, "<html>Service Unavailable</html>");
    let failed = source.fetch_pending(100, &mut report).await;
    assert!(failed.is_err(), "the 503 stops the cycle");
    source
        .fetch_pending(100, &mut report)
        .await
        .expect("fetches");

    let stored = stored_ids(&forwarder);
    assert_eq!(stored.len(), 7, "{stored:?}");
    assert_eq!(stored.last(), Some(&first), "the failed id went last");
}

#[tokio::test]
async fn reply_for_another_alert_is_rejected() {
    let (_dir, model, forwarder) = setup();
    let source = forwarder.alert_source();
    let mut report = CycleReport::default();
    source.list(&mut report).await.expect("lists");

    model.push_fault(200, json!({"alert_id": "9999", "modified": 1}).to_string());
    source
        .fetch_pending(100, &mut report)
        .await
        .expect("fetches");
    source
        .fetch_pending(100, &mut report)
        .await
        .expect("fetches again");

    let stored = stored_ids(&forwarder);
    assert!(!stored.contains(&"9999".to_owned()), "{stored:?}");
    assert_eq!(stored.len(), 7, "every listed alert stored: {stored:?}");
}

#[tokio::test]
async fn html_page_with_status_200_keeps_the_alert_pending() {
    let (_dir, model, forwarder) = setup();
    let source = forwarder.alert_source();
    let mut report = CycleReport::default();
    source.list(&mut report).await.expect("lists");

    for _ in 0..6 {
        model.push_fault(200, "<html>proxy login</html>");
        let _ = source.fetch_pending(1, &mut report).await;
    }
    source
        .fetch_pending(100, &mut report)
        .await
        .expect("fetches");

    assert_eq!(report.dropped, 0);
    assert_eq!(stored_ids(&forwarder).len(), 7);
}

#[tokio::test]
async fn disabled_sources_make_no_requests() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Clock::system();
    let model = common::quiet_model(clock.clone(), Since::After);
    let config = format!("[alerts]\nenabled = false\n\n[devices]\nenabled = false\n\n{CONFIG}");
    let forwarder = common::in_memory(dir.path(), &model, clock, &config);

    forwarder.once().await.expect("once succeeds");

    assert_eq!(model.requests_today(), 0);
}
