//! The simulator's model against the API document: sample replies,
//! key and limit failures, the UTC day, filters, updates, the
//! generator, and the in-memory transport.

use iotsecure_forwarder::api::{Call, License, Module, Transport};
use iotsecure_forwarder::clock::Clock;
use iotsecure_forwarder::sim::{InMemory, Model, SimSettings, Since};
use serde_json::{Value, json};

/// 2024-03-10T12:00:00Z.
const NOON: i64 = 1_710_072_000;

fn settings() -> SimSettings {
    SimSettings::new(Clock::manual(NOON * 1_000))
}

/// Sends `query` with the default key; returns the status and the body.
fn call(model: &Model, query: &str) -> (u16, Value) {
    let response = model.handle(&format!("apikey=sim-key&{query}"));
    let body = serde_json::from_str(&response.body).expect("body is JSON");
    (response.status, body)
}

fn ids(body: &Value, key: &str) -> Vec<String> {
    body[key]
        .as_array()
        .expect("list reply")
        .iter()
        .map(|id| id.as_str().expect("id is a string").to_owned())
        .collect()
}

/// The document's `getDevice` sample, copied as it is printed.
const DOC_DEVICE: &str = r#"{
"blocked": false,
"category": "Medical Device",
"created": 1498767515,
"device_id": "00:40:17:6C:00:00",
"domains": [
"ge.com",
"gehealth.com"
],
"excluded": false,
"hostname": "ECG001",
"ip_address": "192.168.121.15",
"last_active": 1550716545,
"location": "ER Wifi",
"manufacturer": "GE Healthcare",
"model": "Resting ECG",
"model_family": "MAC",
"model_number": null,
"modified": 1550637634,
"name": "GE Healthcare Resting ECG",
"os_build": null,
"os_manufacturer": null,
"os_servicepack": null,
"os_type": "Linux",
"os_version_major": null,
"os_version_minor": null,
"oui": "Silex Technology America",
"portsafe_inspection": {
"last_auto_inspection": 1550370986,
"last_user_inspection": 1550434500
},
"portsafe_results" : {
"22" : {
"status" : "open",
"protocol" : "tcp",
"service" : "ssh",
"exploitable" : false
},
"23" : {
"status" : "open",
"protocol" : "tcp",
"service" : "telnet",
"exploitable" : false
},
"80" : {
"status" : "open",
"protocol" : "tcp",
"service" : "http",
"exploitable" : false
},
"443" : {
"status" : "open",
"protocol" : "tcp",
"service" : "http",
"certificate" : "Subject:commonName=GE-ECG/countryName=GB;;Issuer:commonName=GE-ECG/countryName=GB;;Signature Algorithm:sha256WithRSAEncryption",
"exploitable" : true
},
"161" : {
"status" : "open",
"protocol" : "udp",
"service" : "snmp",
"exploitable" : false
}
},
"smart_blocked": false,
"snmp_profile": "IoT Secure AutoDetect",
"spoofed": true,
"threat": false,
"type": "Electrocardiogram"
}"#;

const INVALID_KEY: &str = r#"{"request_status":"failed","request_status_code":500,"request_status_detail":"Invalid API key. See KnowledgeBase for help: https://tickets.iotsecure.io/portal/en/kb/iotsecure/api"}"#;

#[test]
fn get_device_returns_document_record() {
    let model = Model::new(settings());
    let query = "module=IoTSecurity&action=getDevice&device_id=00:40:17:6C:00:00";
    let (status, body) = call(&model, query);
    let expected: Value = serde_json::from_str(DOC_DEVICE).expect("doc JSON");
    assert_eq!(status, 200);
    assert_eq!(body, expected);
}

#[test]
fn get_device_ignores_case_and_whitespace() {
    let model = Model::new(settings());
    let query = "module=IoTSecurity&action=getDevice&device_id=%0A00:40:17:6c:00:00+";
    let (status, body) = call(&model, query);
    assert_eq!(status, 200);
    assert_eq!(body["hostname"], "ECG001");
}

#[test]
fn electrocardiogram_filter_matches_document() {
    let model = Model::new(settings());
    let query = "module=IoTSecurity&action=listDevices\
        &modified=1548997200&type=Electrocardiogram";
    let (status, body) = call(&model, query);
    assert_eq!(status, 200);
    assert_eq!(
        ids(&body, "devices"),
        [
            "00:01:3E:02:00:00",
            "04:79:70:20:00:00",
            "00:40:17:6C:00:00"
        ]
    );
}

/// The document lists all five devices for `created=1641013200`, but its
/// record of `00:40:17:6C:00:00` dates its creation to 2017. The record
/// wins and the filter stays honest.
#[test]
fn created_filter_follows_records() {
    let model = Model::new(settings());
    let query = "module=IoTSecurity&action=listDevices&created=1641013200";
    let (status, body) = call(&model, query);
    assert_eq!(status, 200);
    assert_eq!(
        ids(&body, "devices"),
        [
            "00:01:3E:02:00:00",
            "04:79:70:20:00:00",
            "08:F4:AB:57:00:00",
            "10:D0:7A:C2:00:00",
        ]
    );
    let all = call(&model, "module=IoTSecurity&action=listDevices").1;
    assert_eq!(ids(&all, "devices").len(), 55);
}

#[test]
fn count_and_list_alerts() {
    let model = Model::new(settings());
    let (status, count) = call(&model, "module=IoTSecurity&action=countAlerts");
    assert_eq!(status, 200);
    assert_eq!(count, json!({ "alert_count": 87 }));
    let list = call(&model, "module=IoTSecurity&action=listAlerts").1;
    let all = ids(&list, "alerts");
    assert_eq!(all.len(), 87);
    assert_eq!(all[85..], ["900451", "900464"]);
}

#[test]
fn document_alerts_are_modified_within_the_hour() {
    let model = Model::new(settings());
    let query = format!(
        "module=IoTSecurity&action=listAlerts&modified={}",
        NOON - 3_600
    );
    let (_, body) = call(&model, &query);
    assert_eq!(ids(&body, "alerts"), ["900451", "900464"]);
    let day = format!(
        "module=IoTSecurity&action=listAlerts&modified={}",
        NOON - 86_400
    );
    assert_eq!(ids(&call(&model, &day).1, "alerts").len(), 7);
    let alert = call(&model, "module=IoTSecurity&action=getAlert&alert_id=900451").1;
    assert_eq!(alert["device_id"], "00:40:17:6C:00:00");
    for field in [
        "category",
        "category_detail",
        "priority",
        "status",
        "subject",
    ] {
        assert!(alert[field].is_string(), "{field} is text");
    }
}

#[test]
fn invalid_or_missing_key_is_rejected() {
    let model = Model::new(settings());
    for query in [
        "apikey=wrong&module=Account&action=getAPIKey",
        "module=Account&action=getAPIKey",
    ] {
        let response = model.handle(query);
        assert_eq!(response.status, 500);
        assert_eq!(response.body, INVALID_KEY);
    }
    assert_eq!(model.requests_today(), 0);
}

#[test]
fn demo_limit_rejects_sixth_request() {
    let settings = SimSettings {
        license: License::Demo,
        ..settings()
    };
    let model = Model::new(settings);
    for _ in 0..5 {
        assert_eq!(call(&model, "module=IoTSecurity&action=countAlerts").0, 200);
    }
    let (status, body) = call(&model, "module=IoTSecurity&action=countAlerts");
    let expected = json!({
        "apikey": "XXXXX",
        "account_name": "Demo Company",
        "request_limit": 5,
        "request_status": "failed",
        "request_status_code": 400,
        "request_status_detail": "API request limit reached. Try again tomorrow. \
            See KnowledgeBase: https://tickets.iotsecure.io/portal/en/kb/articles/api-1-0"
    });
    assert_eq!(status, 400);
    assert_eq!(body, expected);
    assert_eq!(model.requests_today(), 5);
    assert_eq!(model.limit_replies(), 1);
    assert_eq!(model.max_requests_in_a_day(), 5);
}

#[test]
fn failed_requests_count_toward_limit() {
    let settings = SimSettings {
        daily_limit: Some(2),
        ..settings()
    };
    let model = Model::new(settings);
    assert_eq!(call(&model, "module=IoTSecurity&action=getAlert").0, 422);
    assert_eq!(call(&model, "module=Nope&action=x").0, 404);
    assert_eq!(call(&model, "module=Account&action=getAPIKey").0, 400);
}

#[test]
fn limit_resets_at_midnight_utc() {
    let clock = Clock::manual((NOON + 12 * 3_600 - 1) * 1_000);
    let settings = SimSettings {
        license: License::Demo,
        ..SimSettings::new(clock.clone())
    };
    let model = Model::new(settings);
    model.spend(5);
    assert_eq!(call(&model, "module=Account&action=getAPIKey").0, 400);
    clock.advance_ms(1_000);
    let (status, body) = call(&model, "module=Account&action=getAPIKey");
    assert_eq!(status, 200);
    assert_eq!(body["requests"], 1);
    assert_eq!(model.requests_today(), 1);
    assert_eq!(model.max_requests_in_a_day(), 5);
}

#[test]
fn get_api_key_counts_this_request() {
    let model = Model::new(settings());
    call(&model, "module=Account&action=countAPIKeys");
    let (status, body) = call(&model, "module=Account&action=getAPIKey");
    let expected = json!({
        "account_name": "Demo Company",
        "request_limit": 5000,
        "requests": 2,
        "status": "active"
    });
    assert_eq!(status, 200);
    assert_eq!(body, expected);
}

#[test]
fn api_keys_are_listed_masked() {
    let settings = SimSettings {
        api_keys: vec!["sim-key".into(), "second".into()],
        ..settings()
    };
    let model = Model::new(settings);
    let count = call(&model, "module=Account&action=countAPIKeys").1;
    assert_eq!(count, json!({ "apikey_count": 2 }));
    let list = call(&model, "module=Account&action=listAPIKeys").1;
    assert_eq!(list, json!({ "apikeys": ["XXXXX", "XXXXX"] }));
}

fn alerts_modified_since(since: Since, at: i64) -> Vec<String> {
    let settings = SimSettings {
        since,
        ..settings()
    };
    let model = Model::new(settings);
    model.insert_alert(json!({ "alert_id": "990001", "created": at, "modified": at }));
    let query = format!("module=IoTSecurity&action=listAlerts&modified={at}");
    ids(&call(&model, &query).1, "alerts")
}

#[test]
fn since_after_excludes_equal_time() {
    assert!(alerts_modified_since(Since::After, NOON + 60).is_empty());
}

#[test]
fn since_at_or_after_includes_equal_time() {
    assert_eq!(
        alerts_modified_since(Since::AtOrAfter, NOON + 60),
        ["990001"]
    );
}

#[test]
fn update_device_changes_name_and_modified() {
    let clock = Clock::manual(NOON * 1_000);
    let model = Model::new(SimSettings::new(clock.clone()));
    clock.advance_ms(5_000);
    let query = "module=IoTSecurity&action=updateDevice\
        &device_id=00:40:17:6C:00:00&name=ICU%20Infusion%20Pump%205";
    let (status, body) = call(&model, query);
    let expected = json!({
        "action": "updateDevice",
        "device_id": "00:40:17:6C:00:00",
        "request_status": "success"
    });
    assert_eq!(status, 200);
    assert_eq!(body, expected);
    let device = model.device("00:40:17:6C:00:00").expect("device");
    assert_eq!(device["name"], "ICU Infusion Pump 5");
    assert_eq!(device["modified"], NOON + 5);
    assert_eq!(device["snmp_profile"], "IoT Secure AutoDetect");
}

#[test]
fn update_device_sets_snmp_profile() {
    let model = Model::new(settings());
    let query = "module=IoTSecurity&action=updateDevice\
        &device_id=00:40:17:6C:00:00&snmp_profile=NewProfile";
    assert_eq!(call(&model, query).0, 200);
    let device = model.device("00:40:17:6C:00:00").expect("device");
    assert_eq!(device["snmp_profile"], "NewProfile");
}

#[test]
fn type_with_space_matches_logic_controllers() {
    let model = Model::new(settings());
    let query = "module=IoTSecurity&action=listDevices&type=Logic%20Controller";
    let (status, body) = call(&model, query);
    let found = ids(&body, "devices");
    assert_eq!(status, 200);
    assert!(!found.is_empty());
    for id in &found {
        let device = model.device(id).expect("listed device exists");
        assert_eq!(device["type"], "Logic Controller");
    }
    let logged = model.raw_queries();
    assert_eq!(logged, [format!("apikey=***&{query}")]);
}

#[test]
fn threat_and_category_filters_combine() {
    let model = Model::new(settings());
    let query = "module=IoTSecurity&action=listDevices\
        &category=Medical%20Device&threat=true&created=1641013200";
    let (_, body) = call(&model, query);
    assert_eq!(
        ids(&body, "devices"),
        ["04:79:70:20:00:00", "10:D0:7A:C2:00:00"]
    );
    let bad = "module=IoTSecurity&action=listDevices&threat=maybe";
    assert_eq!(call(&model, bad).0, 422);
}

#[test]
fn errors_use_404_and_422() {
    let model = Model::new(settings());
    let cases = [
        ("module=IoTSecurity&action=getAlert&alert_id=1", 404),
        ("module=IoTSecurity&action=getDevice&device_id=AA", 404),
        ("module=IoTSecurity&action=nope", 404),
        ("module=Nope&action=getAlert", 404),
        (
            "module=IoTSecurity&action=getDeviceTimeline&device_id=AA",
            422,
        ),
        (
            "module=IoTSecurity&action=listAlerts&modified=yesterday",
            422,
        ),
        ("action=countAlerts", 422),
    ];
    for (query, code) in cases {
        let (status, body) = call(&model, query);
        assert_eq!(status, code, "{query}");
        assert_eq!(body["request_status"], "failed", "{query}");
        assert_eq!(body["request_status_code"], code, "{query}");
    }
}

#[test]
fn snmp_profile_and_log_stats() {
    let model = Model::new(settings());
    let list = call(&model, "module=IoTSecurity&action=listSNMPProfiles").1;
    assert_eq!(list, json!({ "snmp_profiles": ["IoT Secure AutoDetect"] }));
    let query = "module=IoTSecurity&action=getSNMPProfile\
        &snmp_profile=IoT%20Secure%20AutoDetect";
    let (status, profile) = call(&model, query);
    assert_eq!(status, 200);
    assert_eq!(profile["port"], 161);
    assert_eq!(profile["default"], true);
    let (status, stats) = call(&model, "module=LogManagement&action=getLogStats");
    assert_eq!(status, 200);
    assert!(stats.is_object());
}

#[test]
fn timeline_returns_events_in_window() {
    let model = Model::new(settings());
    let base = "module=IoTSecurity&action=getDeviceTimeline&device_id=00:40:17:6C:00:00";
    let (status, recent) = call(&model, &format!("{base}&hours=24"));
    assert_eq!(status, 200);
    let events = recent.as_object().expect("object of events");
    assert_eq!(events.len(), 1);
    let event = events.values().next().expect("one event");
    assert_eq!(event["status"], "up");
    assert_eq!(event["ip_address"], "192.168.121.15");
    let all = call(&model, &format!("{base}&hours=100000")).1;
    let sample = json!({
        "created": "2019-01-15T20:10:00.000Z",
        "device_id": "00:40:17:6C:00:00",
        "ip_address": "192.168.121.15",
        "status": "up"
    });
    assert_eq!(all["prtsafe_inspection"], sample);
}

#[test]
fn modify_alert_sets_modified_to_now() {
    let clock = Clock::manual(NOON * 1_000);
    let model = Model::new(SimSettings::new(clock.clone()));
    clock.advance_ms(90_500);
    for id in ["900449", "900450", "900451"] {
        assert!(model.modify_alert(id, json!({ "status": "closed" })));
    }
    for id in ["900449", "900450", "900451"] {
        let alert = model.alert(id).expect("alert");
        assert_eq!(alert["modified"], NOON + 90);
        assert_eq!(alert["status"], "closed");
    }
    assert!(model.modify_alert("900464", json!({ "modified": 5 })));
    assert_eq!(model.alert("900464").expect("alert")["modified"], 5);
    assert!(!model.modify_alert("1", json!({})));
}

#[test]
fn hostile_values_come_back_unchanged() {
    let model = Model::new(settings());
    let hostile = "x\r\nCEF:0|evil|=\\|<14>";
    let id = model.insert_alert(json!({
        "alert_id": "990002", "subject": hostile, "category": hostile,
        "created": NOON, "modified": NOON, "port": hostile
    }));
    let query = format!("module=IoTSecurity&action=getAlert&alert_id={id}");
    let (_, alert) = call(&model, &query);
    assert_eq!(alert["subject"], hostile);
    assert_eq!(alert["port"], hostile);
}

#[test]
fn pushed_fault_replaces_next_reply() {
    let model = Model::new(settings());
    model.push_fault(503, "<html>busy</html>");
    let response = model.handle("apikey=sim-key&module=Account&action=getAPIKey");
    assert_eq!(response.status, 503);
    assert_eq!(response.body, "<html>busy</html>");
    assert_eq!(call(&model, "module=Account&action=getAPIKey").0, 200);
}

/// Runs a model for six hours, advancing in steps of `step_secs`, and
/// returns every alert record.
fn run_generator(seed: u64, step_secs: i64) -> Vec<Value> {
    let clock = Clock::manual(NOON * 1_000);
    let model = Model::new(SimSettings {
        seed,
        ..SimSettings::new(clock.clone())
    });
    for _ in 0..(6 * 3_600 / step_secs) {
        clock.advance_ms(step_secs * 1_000);
        model.advance();
    }
    let ids = model.alert_ids();
    ids.iter()
        .map(|id| model.alert(id).expect("alert"))
        .collect()
}

#[test]
fn generator_is_deterministic_for_a_seed() {
    let every_second = run_generator(7, 1);
    let every_hour = run_generator(7, 3_600);
    assert_eq!(every_second, every_hour);
    assert_ne!(run_generator(8, 3_600), every_hour);
}

#[test]
fn generator_adds_alerts_at_the_rate() {
    let alerts = run_generator(3, 60);
    let new: Vec<&Value> = alerts
        .iter()
        .filter(|alert| alert["created"].as_i64().is_some_and(|t| t > NOON))
        .collect();
    // 360 expected in six hours; a Poisson count stays within +-25 %.
    assert!((270..=450).contains(&new.len()), "{} new alerts", new.len());
    assert_eq!(new[0]["alert_id"], "900465");
    for alert in &new {
        assert!(
            ["open", "acknowledged", "closed"].contains(&alert["status"].as_str().expect("status"))
        );
    }
    let changed = alerts
        .iter()
        .filter(|alert| alert["modified"] != alert["created"])
        .count();
    assert!(changed > 0);
}

#[test]
fn generator_is_off_at_rate_zero() {
    let clock = Clock::manual(NOON * 1_000);
    let model = Model::new(SimSettings {
        alert_rate_per_hour: 0.0,
        ..SimSettings::new(clock.clone())
    });
    clock.advance_ms(86_400_000);
    model.advance();
    assert_eq!(model.alert_ids().len(), 87);
}

#[tokio::test(start_paused = true)]
async fn in_memory_sends_encoded_query() {
    let clock = Clock::tokio(NOON * 1_000 + 250);
    let model = Model::new(SimSettings::new(clock));
    let transport = InMemory {
        model: model.clone(),
        api_key: "sim-key".into(),
    };
    tokio::time::advance(std::time::Duration::from_secs(7 * 86_400)).await;
    let call =
        Call::new(Module::IoTSecurity, "listDevices").param("type", Some("Logic Controller"));
    let reply = transport.send(&call).await.expect("reply");
    assert_eq!(reply.http_status, 200);
    let server_time = reply.server_time.expect("date").timestamp_millis();
    assert_eq!(server_time, (NOON + 7 * 86_400) * 1_000);
    let logged = model.raw_queries();
    assert_eq!(
        logged,
        ["apikey=***&module=IoTSecurity&action=listDevices&type=Logic%20Controller"]
    );
    assert!(model.alert_ids().len() > 87 + 7 * 24 * 30);
}
