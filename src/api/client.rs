//! Typed requests and replies for every action of the three modules.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::metrics::Metrics;

use super::{
    Alert, ApiError, ApiKeyInfo, Call, Device, Module, SnmpProfile, TimelineEvent, Transport,
    UpdateResult, lenient,
};

/// The `created` and `modified` filters of the list actions, in epoch
/// seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeFilter {
    pub created: Option<i64>,
    pub modified: Option<i64>,
}

/// The filters of `listDevices`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceFilter {
    pub time: TimeFilter,
    pub category: Option<String>,
    pub device_type: Option<String>,
    pub threat: Option<bool>,
}

/// The ids a list action returned, with the server's time of the reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub ids: Vec<String>,
    pub server_time: Option<DateTime<Utc>>,
}

/// Calls the API's actions through a [`Transport`].
pub struct Client<T> {
    transport: T,
    /// Counts every failed call, when set.
    metrics: Option<Metrics>,
}

impl<T: Transport> Client<T> {
    pub fn new(transport: T) -> Self {
        Client {
            transport,
            metrics: None,
        }
    }

    /// Counts each failed call in `metrics`, by action and kind.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// Passes `result` through, counting it when it is an error.
    fn observe<R>(&self, result: Result<R, ApiError>) -> Result<R, ApiError> {
        if let (Err(error), Some(metrics)) = (&result, &self.metrics) {
            metrics.api_error(error);
        }
        result
    }

    /// Sends `call` and returns its JSON body, or the typed error of a
    /// failure body (which may come with HTTP 200).
    pub async fn call_json(&self, call: &Call) -> Result<(Value, Option<DateTime<Utc>>), ApiError> {
        let result = self.send_and_check(call).await;
        self.observe(result)
    }

    async fn send_and_check(
        &self,
        call: &Call,
    ) -> Result<(Value, Option<DateTime<Utc>>), ApiError> {
        let reply = self.transport.send(call).await?;
        let action = call.action;
        let parsed: Result<Value, _> = serde_json::from_slice(&reply.body);
        match parsed {
            Ok(body) => {
                if let Some(error) = failure_of(action, &body) {
                    return Err(error);
                }
                if reply.http_status >= 400 {
                    return Err(ApiError::Status {
                        action,
                        status: reply.http_status,
                    });
                }
                Ok((body, reply.server_time))
            }
            Err(_) if reply.http_status >= 400 => Err(ApiError::Status {
                action,
                status: reply.http_status,
            }),
            Err(error) => Err(ApiError::NotJson {
                action,
                detail: error.to_string(),
            }),
        }
    }

    // `call_json` counts the failures of the call itself; these count
    // the records that did not decode.
    async fn fetch<R: DeserializeOwned>(&self, call: Call) -> Result<R, ApiError> {
        let (body, _) = self.call_json(&call).await?;
        self.observe(decode(call.action, body))
    }

    async fn count(&self, call: Call, field: &str) -> Result<i64, ApiError> {
        let (body, _) = self.call_json(&call).await?;
        let count = body
            .get(field)
            .and_then(lenient::integer_of)
            .ok_or_else(|| ApiError::Decode {
                action: call.action,
                detail: format!("missing integer field {field:?}"),
            });
        self.observe(count)
    }

    async fn list(&self, call: Call, field: &str) -> Result<Listed, ApiError> {
        let (body, server_time) = self.call_json(&call).await?;
        let ids = self.observe(ids_of(call.action, &body, field))?;
        Ok(Listed { ids, server_time })
    }

    pub async fn count_api_keys(&self) -> Result<i64, ApiError> {
        let call = Call::new(Module::Account, "countAPIKeys");
        self.count(call, "apikey_count").await
    }

    /// Lists the organization's keys; the API may return them masked.
    pub async fn list_api_keys(&self) -> Result<Vec<String>, ApiError> {
        let call = Call::new(Module::Account, "listAPIKeys");
        Ok(self.list(call, "apikeys").await?.ids)
    }

    pub async fn get_api_key(&self) -> Result<ApiKeyInfo, ApiError> {
        self.fetch(Call::new(Module::Account, "getAPIKey")).await
    }

    pub async fn count_alerts(&self) -> Result<i64, ApiError> {
        let call = Call::new(Module::IoTSecurity, "countAlerts");
        self.count(call, "alert_count").await
    }

    pub async fn list_alerts(&self, filter: TimeFilter) -> Result<Listed, ApiError> {
        let call = with_time(Call::new(Module::IoTSecurity, "listAlerts"), filter);
        self.list(call, "alerts").await
    }

    /// Lists device ids, normalized as MAC addresses.
    pub async fn list_devices(&self, filter: &DeviceFilter) -> Result<Listed, ApiError> {
        let call = with_time(Call::new(Module::IoTSecurity, "listDevices"), filter.time)
            .param("category", filter.category.as_ref())
            .param("type", filter.device_type.as_ref())
            .param("threat", filter.threat);
        let mut listed = self.list(call, "devices").await?;
        for id in &mut listed.ids {
            *id = lenient::normalize_mac(id);
        }
        Ok(listed)
    }

    pub async fn list_snmp_profiles(&self, filter: TimeFilter) -> Result<Listed, ApiError> {
        let call = with_time(Call::new(Module::IoTSecurity, "listSNMPProfiles"), filter);
        self.list(call, "snmp_profiles").await
    }

    pub async fn get_alert(&self, alert_id: &str) -> Result<Alert, ApiError> {
        let call = Call::new(Module::IoTSecurity, "getAlert").param("alert_id", Some(alert_id));
        self.fetch(call).await
    }

    pub async fn get_device(&self, device_id: &str) -> Result<Device, ApiError> {
        let call = Call::new(Module::IoTSecurity, "getDevice").param("device_id", Some(device_id));
        self.fetch(call).await
    }

    pub async fn get_snmp_profile(&self, name: &str) -> Result<SnmpProfile, ApiError> {
        let call =
            Call::new(Module::IoTSecurity, "getSNMPProfile").param("snmp_profile", Some(name));
        self.fetch(call).await
    }

    /// Returns the timeline events of the last `hours` hours, and the
    /// shapes of the reply that held no readable event.
    pub async fn get_device_timeline(
        &self,
        device_id: &str,
        hours: u32,
    ) -> Result<TimelineReply, ApiError> {
        let call = Call::new(Module::IoTSecurity, "getDeviceTimeline")
            .param("device_id", Some(device_id))
            .param("hours", Some(hours));
        let (body, _) = self.call_json(&call).await?;
        Ok(timeline_events(&body))
    }

    pub async fn update_device(
        &self,
        device_id: &str,
        name: Option<&str>,
        snmp_profile: Option<&str>,
    ) -> Result<UpdateResult, ApiError> {
        let call = Call::new(Module::IoTSecurity, "updateDevice")
            .param("device_id", Some(device_id))
            .param("name", name)
            .param("snmp_profile", snmp_profile);
        self.fetch(call).await
    }

    /// Returns the log statistics, whose fields the document leaves open.
    pub async fn get_log_stats(&self) -> Result<Value, ApiError> {
        let call = Call::new(Module::LogManagement, "getLogStats");
        Ok(self.call_json(&call).await?.0)
    }
}

fn with_time(call: Call, filter: TimeFilter) -> Call {
    call.param("created", filter.created)
        .param("modified", filter.modified)
}

/// Maps a `request_status: "failed"` body to its error. Codes 400 and 500
/// mean "limit reached" and "invalid key" in the API document. The detail
/// text is checked too, so another failure with the same code is not
/// taken for one of them.
pub(crate) fn failure_of(action: &'static str, body: &Value) -> Option<ApiError> {
    let status = body.get("request_status")?.as_str()?;
    if !status.eq_ignore_ascii_case("failed") {
        return None;
    }
    let code = body
        .get("request_status_code")
        .and_then(lenient::integer_of)
        .unwrap_or(0);
    let detail = body
        .get("request_status_detail")
        .and_then(lenient::scalar_text)
        .unwrap_or_default();
    let lower = detail.to_ascii_lowercase();
    Some(match code {
        400 if lower.contains("limit") || detail.is_empty() => {
            ApiError::LimitReached { action, detail }
        }
        500 if lower.contains("key") || detail.is_empty() => {
            ApiError::InvalidKey { action, detail }
        }
        _ => ApiError::Failed {
            action,
            code,
            detail,
        },
    })
}

fn decode<R: DeserializeOwned>(action: &'static str, body: Value) -> Result<R, ApiError> {
    serde_json::from_value(body).map_err(|error| ApiError::Decode {
        action,
        detail: error.to_string(),
    })
}

/// Reads the id list under `field`, accepting strings and numbers.
fn ids_of(action: &'static str, body: &Value, field: &str) -> Result<Vec<String>, ApiError> {
    let items = match body.get(field) {
        Some(Value::Array(items)) => items,
        Some(Value::Null) | None if body.as_object().is_some_and(|o| o.is_empty()) => {
            return Ok(Vec::new());
        }
        Some(Value::Null) => return Ok(Vec::new()),
        _ => {
            return Err(ApiError::Decode {
                action,
                detail: format!("missing list field {field:?}"),
            });
        }
    };
    Ok(items
        .iter()
        .filter_map(lenient::scalar_text)
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
        .collect())
}

/// The events and the unreadable parts of a `getDeviceTimeline` reply,
/// as [`timeline_events`] found them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TimelineReply {
    pub events: Vec<TimelineEvent>,
    /// Parts of the reply that held no readable event, one entry per
    /// distinct shape, such as `string` or `object > event without
    /// created`. The shape names JSON types, never keys or values, so
    /// the same layout gives the same text on every reply.
    pub not_understood: Vec<String>,
}

impl TimelineReply {
    fn note(&mut self, path: &[&str], what: &str) {
        let mut shape = path.join(" > ");
        if !shape.is_empty() {
            shape.push_str(" > ");
        }
        shape.push_str(what);
        if !self.not_understood.contains(&shape) {
            self.not_understood.push(shape);
        }
    }
}

/// Containers descended into before a value counts as too deep.
const MAX_TIMELINE_DEPTH: usize = 4;

/// Finds timeline events in the loose shapes the document allows: an
/// array of events, one event, an object of events, or an object that
/// wraps either under any key (`event`, `events`, `timeline`, or the
/// document's own sample key `prtsafe_inspection`). Everything else is
/// listed in [`TimelineReply::not_understood`].
///
/// An event is an object with a `status` or `created` member whose
/// members are all scalars. It is understood when it has both; the
/// dedup key needs them. A scalar member of a wrapper object is
/// reported only when the wrapper yielded no event, so a wrapper such
/// as `{"device_id": ..., "events": [...]}` is read without complaint.
pub fn timeline_events(body: &Value) -> TimelineReply {
    let mut reply = TimelineReply::default();
    match body {
        // `null` at the top is no reply at all; inside a wrapper it is
        // an empty member.
        Value::Null => reply.note(&[], "null"),
        _ => collect_timeline(body, &mut Vec::new(), &mut reply),
    }
    reply
}

fn collect_timeline(value: &Value, path: &mut Vec<&'static str>, reply: &mut TimelineReply) {
    if path.len() > MAX_TIMELINE_DEPTH {
        reply.note(path, "nested too deep");
        return;
    }
    match value {
        Value::Array(items) => {
            path.push("array");
            for item in items {
                collect_timeline(item, path, reply);
            }
            path.pop();
        }
        Value::Object(map) if is_event(map) => push_event(value, path, reply),
        Value::Object(map) => {
            path.push("object");
            let found_before = reply.events.len();
            for item in map.values().filter(|item| is_container(item)) {
                collect_timeline(item, path, reply);
            }
            if reply.events.len() == found_before {
                for item in map.values().filter(|item| !is_container(item)) {
                    if !item.is_null() {
                        reply.note(path, json_type(item));
                    }
                }
            }
            path.pop();
        }
        Value::Null => {}
        scalar => reply.note(path, json_type(scalar)),
    }
}

fn is_event(map: &serde_json::Map<String, Value>) -> bool {
    let named = map.contains_key("status") || map.contains_key("created");
    named && !map.values().any(is_container)
}

fn push_event(value: &Value, path: &[&str], reply: &mut TimelineReply) {
    // Every field is optional and lenient, so only a non-object fails,
    // which `is_event` already ruled out.
    let Ok(event) = serde_json::from_value::<TimelineEvent>(value.clone()) else {
        reply.note(path, "event that does not decode");
        return;
    };
    match (&event.created, &event.status) {
        (None, _) => reply.note(path, "event without created"),
        (_, None) => reply.note(path, "event without status"),
        _ => reply.events.push(event),
    }
}

fn is_container(value: &Value) -> bool {
    value.is_array() || value.is_object()
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn limit_body_maps_to_limit_reached() {
        let body = json!({"request_status": "failed", "request_status_code": 400,
            "request_status_detail": "API request limit reached. Try again tomorrow."});
        let error = failure_of("listAlerts", &body).expect("failure");
        assert!(matches!(error, ApiError::LimitReached { .. }));
    }

    #[test]
    fn invalid_key_body_maps_to_invalid_key() {
        let body = json!({"request_status": "failed", "request_status_code": "500",
            "request_status_detail": "Invalid API key. See KnowledgeBase"});
        let error = failure_of("getAlert", &body).expect("failure");
        assert!(matches!(error, ApiError::InvalidKey { .. }));
    }

    #[test]
    fn other_failure_keeps_its_detail() {
        let body = json!({"request_status": "failed", "request_status_code": 404,
            "request_status_detail": "alert not found"});
        let error = failure_of("getAlert", &body).expect("failure");
        assert!(error.to_string().contains("alert not found"));
    }

    #[test]
    fn success_body_is_not_a_failure() {
        let body = json!({"action": "updateDevice", "request_status": "success"});
        assert!(failure_of("updateDevice", &body).is_none());
    }

    #[test]
    fn ids_accept_numbers_and_strings() {
        let body = json!({"alerts": ["900451", 900464, " 7 "]});
        let ids = ids_of("listAlerts", &body, "alerts").expect("ids");
        assert_eq!(ids, ["900451", "900464", "7"]);
    }

    fn doc_event() -> Value {
        json!({"created": "2019-01-15T20:10:00.000Z",
            "device_id": "00:40:17:6C:00:00", "ip_address": "192.168.121.15",
            "status": "up"})
    }

    #[test]
    fn timeline_shapes_are_all_understood() {
        let event = doc_event();
        let shapes = [
            json!([event.clone()]),
            json!({"prtsafe_inspection": event.clone()}),
            json!({"event": event.clone()}),
            json!({"events": [event.clone()]}),
            json!({"timeline": {"a": event.clone()}}),
            json!({"device_id": "00:40:17:6C:00:00", "events": [event.clone()]}),
            event.clone(),
        ];
        for shape in shapes {
            let reply = timeline_events(&shape);
            assert_eq!(reply.events.len(), 1, "{shape}");
            assert_eq!(reply.events[0].status.as_deref(), Some("up"));
            assert!(reply.not_understood.is_empty(), "{shape}: {reply:?}");
        }
    }

    #[test]
    fn empty_timelines_are_understood() {
        for shape in [
            json!({}),
            json!([]),
            json!({"events": []}),
            json!({"events": null}),
        ] {
            let reply = timeline_events(&shape);
            assert!(reply.events.is_empty(), "{shape}");
            assert!(reply.not_understood.is_empty(), "{shape}: {reply:?}");
        }
    }

    #[test]
    fn scalar_replies_are_not_understood() {
        let cases = [
            (json!("no timeline"), "string"),
            (json!(42), "number"),
            (json!(null), "null"),
            (json!({"timeline": "n/a"}), "object > string"),
            (
                json!([[[[[[doc_event()]]]]]]),
                "array > array > array > array > array > nested too deep",
            ),
        ];
        for (shape, expected) in cases {
            let reply = timeline_events(&shape);
            assert!(reply.events.is_empty(), "{shape}");
            assert_eq!(reply.not_understood, [expected], "{shape}");
        }
    }

    #[test]
    fn event_without_created_is_not_understood() {
        let body = json!({"events": [{"status": "down"}, doc_event()]});
        let reply = timeline_events(&body);
        assert_eq!(reply.events.len(), 1);
        assert_eq!(
            reply.not_understood,
            ["object > array > event without created"]
        );
    }

    #[test]
    fn repeated_shape_is_listed_once() {
        let reply = timeline_events(&json!([1, 2, "x", 3]));
        assert_eq!(reply.not_understood, ["array > number", "array > string"]);
    }
}
