use super::*;
use crate::api::Alert;
use crate::event::AlertEvent;

fn alert_event(id: &str, modified: i64) -> Event {
    Event::Alert(AlertEvent {
        alert: Alert {
            alert_id: id.into(),
            modified: Some(modified),
            ..Alert::default()
        },
        device: None,
    })
}

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("state.db")).expect("opens");
    (dir, store)
}

#[test]
fn listing_survives_reopen() {
    let (dir, store) = temp_store();
    let ids = vec!["1".to_owned(), "2".to_owned()];
    store
        .commit_listing("alerts", &ids, 100, 0)
        .expect("commit");
    drop(store);
    let store = Store::open(&dir.path().join("state.db")).expect("reopens");
    assert_eq!(store.cursor("alerts").expect("cursor"), Some(100));
    assert_eq!(store.pending("alerts", 10).expect("pending"), ids);
}

#[test]
fn second_commit_of_same_modification_is_duplicate() {
    let (_dir, store) = temp_store();
    let event = alert_event("1", 50);
    let first = store
        .commit_event("alerts", "1", &event, 0, 1_000)
        .expect("first");
    let second = store
        .commit_event("alerts", "1", &event, 0, 1_000)
        .expect("second");
    assert_eq!(first, Stored::New);
    assert_eq!(second, Stored::Duplicate);
    assert_eq!(store.outbox_len().expect("len"), 1);
    assert_eq!(store.counter("duplicates_dropped").expect("counter"), 1);
}

#[test]
fn new_modification_of_same_alert_is_stored() {
    let (_dir, store) = temp_store();
    store
        .commit_event("alerts", "1", &alert_event("1", 50), 0, 1_000)
        .expect("first");
    let stored = store
        .commit_event("alerts", "1", &alert_event("1", 51), 0, 1_000)
        .expect("second");
    assert_eq!(stored, Stored::New);
}

#[test]
fn commit_event_clears_the_pending_id() {
    let (_dir, store) = temp_store();
    store
        .commit_listing("alerts", &["9".to_owned()], 1, 0)
        .expect("listing");
    store
        .commit_event("alerts", "9", &alert_event("9", 1), 0, 1_000)
        .expect("event");
    assert_eq!(store.pending_count("alerts").expect("count"), 0);
}

#[test]
fn rows_leave_only_after_every_output_delivered() {
    let (_dir, store) = temp_store();
    for id in 1..=3 {
        let event = alert_event(&id.to_string(), id);
        store
            .commit_event("alerts", "x", &event, 0, 1_000)
            .expect("event");
    }
    let outputs = vec!["a".to_owned(), "b".to_owned()];
    store.advance("a", 3, &outputs).expect("advance a");
    assert_eq!(store.outbox_len().expect("len"), 3);
    assert_eq!(store.outbox_depth("b").expect("depth"), 3);
    store.advance("b", 2, &outputs).expect("advance b");
    assert_eq!(store.outbox_len().expect("len"), 1);
    assert_eq!(store.outbox_after(0, 10).expect("rows")[0].seq, 3);
}

#[test]
fn removed_output_stops_holding_rows() {
    let (_dir, store) = temp_store();
    store
        .commit_event("alerts", "x", &alert_event("1", 1), 0, 1_000)
        .expect("event");
    let both = vec!["a".to_owned(), "b".to_owned()];
    store.advance("a", 1, &both).expect("advance");
    store.retain_outputs(&["a".to_owned()]).expect("retain");
    assert_eq!(store.outbox_len().expect("len"), 0);
}

#[test]
fn ledger_stops_at_the_allowed_count() {
    let (_dir, store) = temp_store();
    let used = |taken: Option<LedgerDay>| taken.map(|day| day.used);
    for expected in 1..=3 {
        let taken = store.ledger_take("2026-12-04", 3, 0).expect("take");
        assert_eq!(used(taken), Some(expected));
    }
    assert_eq!(store.ledger_take("2026-12-04", 3, 0).expect("take"), None);
    let next_day = store.ledger_take("2026-12-05", 3, 0).expect("take");
    assert_eq!(used(next_day), Some(1));
}

#[test]
fn ledger_counts_the_organization_usage() {
    let (_dir, store) = temp_store();
    store.ledger_take("d", 10, 0).expect("take");
    store.ledger_sync("d", 5, Some(10), 0).expect("sync");
    // Five by every tool at the sync, then four more of ours: nine.
    for _ in 0..4 {
        assert!(store.ledger_take("d", 10, 0).expect("take").is_some());
    }
    let day = store.ledger_day("d").expect("day");
    assert_eq!(day.effective_used(), 9);
    assert!(store.ledger_take("d", 10, 0).expect("take").is_some());
    assert_eq!(store.ledger_take("d", 10, 0).expect("take"), None);
}

#[test]
fn newer_schema_is_rejected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("state.db");
    drop(Store::open(&path).expect("opens"));
    let conn = Connection::open(&path).expect("raw open");
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .expect("bump");
    drop(conn);
    let error = Store::open(&path).err().expect("rejected");
    assert!(matches!(error, StateError::TooNew { .. }), "{error}");
}

#[test]
fn expired_dedup_key_is_forgotten() {
    let (_dir, store) = temp_store();
    let event = alert_event("1", 50);
    store
        .commit_event("alerts", "1", &event, 0, 1_000)
        .expect("first");
    assert_eq!(store.expire_dedup(999).expect("expire"), 0);
    assert_eq!(store.expire_dedup(1_001).expect("expire"), 1);
    let again = store
        .commit_event("alerts", "1", &event, 0, 5_000)
        .expect("again");
    assert_eq!(again, Stored::New);
}

#[test]
fn device_record_is_replaced_and_selected_by_threat() {
    let (_dir, store) = temp_store();
    let mut device = crate::api::Device {
        device_id: "00:40:17:6C:00:00".into(),
        hostname: Some("ECG001".into()),
        threat: Some(false),
        ..crate::api::Device::default()
    };
    store.put_device(&device, 10).expect("put");
    assert!(store.device_ids(true).expect("ids").is_empty());
    device.threat = Some(true);
    store.put_device(&device, 20).expect("put again");
    let known = store
        .device("00:40:17:6C:00:00")
        .expect("read")
        .expect("known");
    assert_eq!((known.device, known.fetched_ms), (device, 20));
    assert_eq!(store.device_ids(true).expect("ids"), ["00:40:17:6C:00:00"]);
    assert_eq!(store.device_count().expect("count"), 1);
    assert!(store.device("AA:BB:CC:DD:EE:FF").expect("read").is_none());
}

fn alert_naming(id: &str, device_id: &str, modified: i64) -> Event {
    Event::Alert(AlertEvent {
        alert: Alert {
            alert_id: id.into(),
            modified: Some(modified),
            device_id: Some(device_id.into()),
            ..Alert::default()
        },
        device: None,
    })
}

#[test]
fn alert_marks_its_device_as_alerted() {
    let (_dir, store) = temp_store();
    let now_ms = 10_000_000;
    store
        .commit_event(
            "alerts",
            "1",
            &alert_naming("1", "AA", 9_000),
            now_ms,
            i64::MAX,
        )
        .expect("commit");
    store
        .commit_event(
            "alerts",
            "2",
            &alert_naming("2", "BB", 1_000),
            now_ms,
            i64::MAX,
        )
        .expect("commit");
    assert_eq!(
        store.alerted_device_ids(5_000_000).expect("ids"),
        ["AA"],
        "alert time 9,000 s is within the window, 1,000 s is not"
    );
    assert_eq!(store.alerted_device_ids(0).expect("ids"), ["AA", "BB"]);
}

#[test]
fn future_alert_time_counts_as_now() {
    let (_dir, store) = temp_store();
    let far_future = 4_000_000_000;
    store
        .commit_event(
            "alerts",
            "1",
            &alert_naming("1", "AA", far_future),
            5_000,
            i64::MAX,
        )
        .expect("commit");
    assert_eq!(store.alerted_device_ids(5_000).expect("ids"), ["AA"]);
    assert!(store.alerted_device_ids(5_001).expect("ids").is_empty());
}

#[test]
fn timeline_attempt_keeps_polled_time() {
    let (_dir, store) = temp_store();
    store
        .commit_timeline("AA", &[], 1_000, 1_000, i64::MAX)
        .expect("commit");
    store.timeline_attempted("AA", 2_000).expect("attempt");
    let times = store.timeline_poll("AA").expect("read");
    assert_eq!(
        times,
        Some(PollTimes {
            polled_ms: Some(1_000),
            attempted_ms: 2_000
        })
    );
    store.timeline_attempted("BB", 3_000).expect("attempt");
    assert_eq!(store.timeline_polls().expect("read")["BB"].polled_ms, None);
    assert_eq!(store.timeline_polled_since(1_000).expect("count"), 1);
}

#[test]
fn stored_total_survives_delivery() {
    let (_dir, store) = temp_store();
    assert_eq!(store.stored_total().expect("empty total"), 0);
    for id in 1..=3 {
        let event = alert_event(&id.to_string(), id);
        store
            .commit_event("alerts", "x", &event, 0, 1_000)
            .expect("event");
    }
    let duplicate = alert_event("3", 3);
    store
        .commit_event("alerts", "x", &duplicate, 0, 1_000)
        .expect("duplicate");
    store.advance("a", 3, &["a".to_owned()]).expect("advance");
    assert_eq!(store.outbox_len().expect("len"), 0);
    assert_eq!(store.stored_total().expect("total"), 3);
}
