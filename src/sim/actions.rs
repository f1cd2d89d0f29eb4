//! The API's actions, one function each, with the document's reply
//! shapes. Every function reads its parameters, checks them, and returns
//! the reply body or a [`Failure`].

use serde_json::{Value, json};

use super::Since;
use super::data::ACCOUNT_NAME;
use super::failure::Failure;
use super::model::State;
use super::query::Params;
use super::timeline::{self, TimelineShape};

type Outcome = Result<Value, Failure>;

/// Runs the action `params` name against `state` at `now_ms`.
pub(crate) fn dispatch(state: &mut State, params: &Params, now_ms: i64) -> Outcome {
    let module = required(params, "module")?;
    let action = required(params, "action")?;
    match (module, action) {
        ("Account", "countAPIKeys") => Ok(json!({ "apikey_count": state.api_keys.len() })),
        ("Account", "listAPIKeys") => Ok(list_api_keys(state)),
        ("Account", "getAPIKey") => Ok(get_api_key(state, now_ms)),
        ("IoTSecurity", "countAlerts") => Ok(json!({ "alert_count": state.store.alert_count() })),
        ("IoTSecurity", "listAlerts") => list_alerts(state, params),
        ("IoTSecurity", "listDevices") => list_devices(state, params),
        ("IoTSecurity", "listSNMPProfiles") => list_snmp_profiles(state, params),
        ("IoTSecurity", "getAlert") => get_alert(state, params),
        ("IoTSecurity", "getDevice") => get_device(state, params),
        ("IoTSecurity", "getSNMPProfile") => get_snmp_profile(state, params),
        ("IoTSecurity", "getDeviceTimeline") => get_timeline(state, params, now_ms),
        ("IoTSecurity", "updateDevice") => update_device(state, params, now_ms),
        ("LogManagement", "getLogStats") => Ok(log_stats(state, now_ms)),
        ("Account" | "IoTSecurity" | "LogManagement", _) => Err(Failure::not_found(format!(
            "Unknown action {action} in module {module}."
        ))),
        _ => Err(Failure::not_found(format!("Unknown module {module}."))),
    }
}

fn required<'a>(params: &'a Params, name: &str) -> Result<&'a str, Failure> {
    match params.get(name) {
        Some(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(Failure::missing(name)),
    }
}

/// Lists the organization's keys masked as `XXXXX`, as the document's
/// sample shows them, so the reply never carries a usable key.
fn list_api_keys(state: &State) -> Value {
    let masked = vec!["XXXXX"; state.api_keys.len()];
    json!({ "apikeys": masked })
}

/// `requests` includes the request being answered, because it was
/// counted before the action ran.
fn get_api_key(state: &mut State, now_ms: i64) -> Value {
    json!({
        "account_name": ACCOUNT_NAME,
        "request_limit": state.quota.limit(),
        "requests": state.quota.used(now_ms.div_euclid(1_000)),
        "status": "active",
    })
}

/// The `created` and `modified` filters of the list actions.
struct TimeFilter {
    created: Option<i64>,
    modified: Option<i64>,
    since: Since,
}

impl TimeFilter {
    fn parse(params: &Params, since: Since) -> Result<Self, Failure> {
        Ok(TimeFilter {
            created: epoch(params, "created")?,
            modified: epoch(params, "modified")?,
            since,
        })
    }

    /// Whether `record` passes both filters. A record whose field is
    /// missing or not a number fails a filter on that field.
    fn matches(&self, record: &Value) -> bool {
        self.passes(self.created, &record["created"])
            && self.passes(self.modified, &record["modified"])
    }

    fn passes(&self, bound: Option<i64>, field: &Value) -> bool {
        let Some(bound) = bound else {
            return true;
        };
        let value = match field {
            Value::Number(number) => number.as_i64(),
            Value::String(text) => text.trim().parse().ok(),
            _ => None,
        };
        match (value, self.since) {
            (Some(value), Since::After) => value > bound,
            (Some(value), Since::AtOrAfter) => value >= bound,
            (None, _) => false,
        }
    }
}

fn epoch(params: &Params, name: &str) -> Result<Option<i64>, Failure> {
    let Some(text) = params.get(name) else {
        return Ok(None);
    };
    match text.trim().parse() {
        Ok(seconds) => Ok(Some(seconds)),
        Err(_) => Err(Failure::invalid(name, text, "epoch seconds")),
    }
}

fn list_alerts(state: &State, params: &Params) -> Outcome {
    let filter = TimeFilter::parse(params, state.since)?;
    let ids: Vec<&str> = state
        .store
        .alerts()
        .filter(|(_, record)| filter.matches(record))
        .map(|(id, _)| id)
        .collect();
    Ok(json!({ "alerts": ids }))
}

fn list_devices(state: &State, params: &Params) -> Outcome {
    let filter = TimeFilter::parse(params, state.since)?;
    let category = params.get("category");
    let device_type = params.get("type");
    let threat = match params.get("threat") {
        None => None,
        Some(text) => Some(parse_flag(text)?),
    };
    let ids: Vec<&str> = state
        .store
        .devices()
        .filter(|(_, record)| filter.matches(record))
        .filter(|(_, record)| text_matches(&record["category"], category))
        .filter(|(_, record)| text_matches(&record["type"], device_type))
        .filter(|(_, record)| threat.is_none_or(|flag| record["threat"] == flag))
        .map(|(id, _)| id)
        .collect();
    Ok(json!({ "devices": ids }))
}

/// Compares ignoring case and surrounding whitespace; no filter matches
/// everything.
fn text_matches(field: &Value, wanted: Option<&str>) -> bool {
    let Some(wanted) = wanted else {
        return true;
    };
    field
        .as_str()
        .is_some_and(|text| text.trim().eq_ignore_ascii_case(wanted.trim()))
}

fn parse_flag(text: &str) -> Result<bool, Failure> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Failure::invalid("threat", text, "true or false")),
    }
}

/// Lists profile names under `snmp_profiles`. The document names the
/// action but shows no reply, so the key follows `alerts` and `devices`.
fn list_snmp_profiles(state: &State, params: &Params) -> Outcome {
    let filter = TimeFilter::parse(params, state.since)?;
    let names: Vec<&Value> = state
        .store
        .snmp_profiles
        .iter()
        .filter(|profile| filter.matches(profile))
        .map(|profile| &profile["snmp_profile"])
        .collect();
    Ok(json!({ "snmp_profiles": names }))
}

fn get_alert(state: &State, params: &Params) -> Outcome {
    let id = required(params, "alert_id")?;
    match state.store.alert(id) {
        Some(record) => Ok(record.clone()),
        None => Err(Failure::not_found(format!("Alert {id} not found."))),
    }
}

fn get_device(state: &State, params: &Params) -> Outcome {
    let id = required(params, "device_id")?;
    state
        .store
        .device(id)
        .cloned()
        .ok_or_else(|| device_not_found(id))
}

fn device_not_found(id: &str) -> Failure {
    Failure::not_found(format!("Device {} not found.", id.trim()))
}

fn get_snmp_profile(state: &State, params: &Params) -> Outcome {
    let name = required(params, "snmp_profile")?;
    match state.store.snmp_profile(name) {
        Some(profile) => Ok(profile.clone()),
        None => Err(Failure::not_found(format!(
            "SNMP profile {name} not found."
        ))),
    }
}

/// Returns the events created within the last `hours` hours in the
/// model's [`TimelineShape`].
fn get_timeline(state: &mut State, params: &Params, now_ms: i64) -> Outcome {
    let id = required(params, "device_id")?;
    let hours_text = required(params, "hours")?;
    let hours: i64 = match hours_text.trim().parse() {
        Ok(hours) if hours >= 0 => hours,
        _ => {
            let expected = "a whole number of hours, 0 or more";
            return Err(Failure::invalid("hours", hours_text, expected));
        }
    };
    if state.store.device(id).is_none() {
        return Err(device_not_found(id));
    }
    let since_ms = now_ms.saturating_sub(hours.saturating_mul(3_600_000));
    let events = state.store.timeline(id, since_ms);
    let own = state
        .device_timeline_shapes
        .get(&super::query::normalize_device_id(id))
        .copied();
    let shape = match own {
        Some(shape) => shape,
        None => next_timeline_shape(state),
    };
    Ok(timeline::render(shape, events))
}

/// Returns the shape of the next timeline reply, moving the rotation on
/// when the model rotates.
fn next_timeline_shape(state: &mut State) -> TimelineShape {
    if state.timeline_shape != TimelineShape::Rotate {
        return state.timeline_shape;
    }
    let rotation = &TimelineShape::ROTATION;
    let shape = rotation[state.rotated_replies % rotation.len()];
    state.rotated_replies = state.rotated_replies.wrapping_add(1);
    shape
}

/// Sets the device's `name` and `snmp_profile` when given, and then its
/// `modified` to now. The profile is not checked against the stored
/// ones: the document's own example sets a profile named `NewProfile`.
fn update_device(state: &mut State, params: &Params, now_ms: i64) -> Outcome {
    let id = required(params, "device_id")?;
    let record = state
        .store
        .device_mut(id)
        .ok_or_else(|| device_not_found(id))?;
    let mut changed = false;
    for field in ["name", "snmp_profile"] {
        if let (Some(value), Some(fields)) = (params.get(field), record.as_object_mut()) {
            fields.insert(field.into(), value.into());
            changed = true;
        }
    }
    if let Some(fields) = record.as_object_mut().filter(|_| changed) {
        fields.insert("modified".into(), now_ms.div_euclid(1_000).into());
    }
    Ok(json!({
        "action": "updateDevice",
        "device_id": record["device_id"],
        "request_status": "success",
    }))
}

/// Log management statistics.
///
/// NOTE: the document names `getLogStats` but lists no fields, so these
/// field names are invented; a client should treat them as opaque.
fn log_stats(state: &State, now_ms: i64) -> Value {
    let now = now_ms.div_euclid(1_000);
    let devices = state.store.device_count() as i64;
    json!({
        "devices_logging": devices,
        "events_last_24_hours": devices * 1_440,
        "newest_event": now,
        "oldest_event": now - 90 * 86_400,
        "retention_days": 90,
        "storage_used_mb": devices * 37,
    })
}
