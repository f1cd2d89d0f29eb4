//! Operator commands that call the API outside the poll loop:
//! `check-config --online` and `api ACTION [key=value ...]`.
//!
//! Both go through the same budget as the daemon, so each request is
//! counted in the state database's ledger, and neither sends once
//! today's budget is spent.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::api::{ApiError, ApiKeyInfo, Call, Client, Module, Transport};
use crate::budget::{Budget, Budgeted};
use crate::clock::Clock;
use crate::config::Settings;
use crate::state::{StateError, Store};

/// Every action of the API with its module and the filters it takes,
/// from the API document.
const ACTIONS: &[(&str, Module, &[&str])] = &[
    ("countAPIKeys", Module::Account, &[]),
    ("listAPIKeys", Module::Account, &[]),
    ("getAPIKey", Module::Account, &[]),
    ("countAlerts", Module::IoTSecurity, &[]),
    ("listAlerts", Module::IoTSecurity, &["created", "modified"]),
    ("getAlert", Module::IoTSecurity, &["alert_id"]),
    (
        "listDevices",
        Module::IoTSecurity,
        &["created", "modified", "category", "type", "threat"],
    ),
    ("getDevice", Module::IoTSecurity, &["device_id"]),
    (
        "getDeviceTimeline",
        Module::IoTSecurity,
        &["device_id", "hours"],
    ),
    (
        "updateDevice",
        Module::IoTSecurity,
        &["device_id", "name", "snmp_profile"],
    ),
    (
        "listSNMPProfiles",
        Module::IoTSecurity,
        &["created", "modified"],
    ),
    ("getSNMPProfile", Module::IoTSecurity, &["snmp_profile"]),
    ("getLogStats", Module::LogManagement, &[]),
];

/// An invalid `api` command line.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("unknown action {action:?}: use one of {}", action_names())]
    UnknownAction { action: String },
    #[error("action {action} belongs to module {module}, not {requested}")]
    WrongModule {
        action: &'static str,
        module: &'static str,
        requested: String,
    },
    #[error("invalid argument {argument:?}: write filters as name=value")]
    NotNameValue { argument: String },
    #[error("unknown filter {name:?} for {action}: use {}", list_or_none(.allowed))]
    UnknownFilter {
        name: String,
        action: &'static str,
        allowed: &'static [&'static str],
    },
}

fn action_names() -> String {
    let names: Vec<&str> = ACTIONS.iter().map(|(name, _, _)| *name).collect();
    names.join(", ")
}

fn list_or_none(allowed: &[&str]) -> String {
    if allowed.is_empty() {
        "none, since it takes no filters".to_owned()
    } else {
        allowed.join(", ")
    }
}

/// Builds the [`Call`] for `action` with `name=value` filters. The
/// module comes from the action; `module`, when given, must match it.
pub fn build_call(
    action: &str,
    module: Option<&str>,
    arguments: &[String],
) -> Result<Call, RequestError> {
    let Some(&(name, known_module, filters)) = ACTIONS
        .iter()
        .find(|(known, _, _)| known.eq_ignore_ascii_case(action))
    else {
        return Err(RequestError::UnknownAction {
            action: action.to_owned(),
        });
    };
    if let Some(requested) = module
        && !requested.eq_ignore_ascii_case(known_module.as_str())
    {
        return Err(RequestError::WrongModule {
            action: name,
            module: known_module.as_str(),
            requested: requested.to_owned(),
        });
    }
    let mut call = Call::new(known_module, name);
    for argument in arguments {
        let Some((filter, value)) = argument.split_once('=') else {
            return Err(RequestError::NotNameValue {
                argument: argument.clone(),
            });
        };
        let Some(&known) = filters.iter().find(|known| **known == filter) else {
            return Err(RequestError::UnknownFilter {
                name: filter.to_owned(),
                action: name,
                allowed: filters,
            });
        };
        call = call.param(known, Some(value));
    }
    Ok(call)
}

/// The API client behind the daemon's budget, without the daemon.
pub struct Operator<T> {
    pub budget: Arc<Budget>,
    pub client: Client<Budgeted<T>>,
}

/// The key details that `check-config --online` prints.
#[derive(Debug, Serialize)]
pub struct KeyReport {
    pub account_name: Option<String>,
    pub status: Option<String>,
    /// The organization's daily limit as the API reports it.
    pub request_limit: Option<i64>,
    /// The organization's requests today, every tool's, this one included.
    pub requests_today: Option<i64>,
    /// Requests this forwarder counted today, this one included.
    pub ours_today: i64,
    /// Requests this forwarder may still spend today.
    pub remaining_today: i64,
}

impl<T: Transport> Operator<T> {
    /// Opens the state database of `settings` (creating it if needed)
    /// for its request ledger.
    pub fn open(settings: &Settings, transport: T, clock: Clock) -> Result<Self, StateError> {
        let store = Arc::new(Store::open(&settings.state.path)?);
        let budget = Arc::new(Budget::new(store, clock, settings.quota.clone()));
        let client = Client::new(Budgeted::new(transport, budget.clone()));
        Ok(Operator { budget, client })
    }

    /// Calls `getAPIKey` once and records the organization's count in
    /// the ledger, as the daemon's sync does.
    pub async fn check_key(&self) -> Result<KeyReport, ApiError> {
        let info: ApiKeyInfo = self.client.get_api_key().await?;
        if let Err(error) = self.budget.record_sync(&info) {
            tracing::warn!(%error, "cannot record the organization's request count");
        }
        let day = self.budget.ledger().map_err(|error| ApiError::Connection {
            action: "getAPIKey",
            message: format!("the request ledger is unavailable: {error}"),
        })?;
        // The limit the server just reported may leave nothing after the
        // reserve. Report it here rather than on the daemon's first call.
        let (limit, reserve) = (self.budget.limit(&day), self.budget.reserve());
        if limit <= reserve {
            return Err(ApiError::ReserveTakesAll {
                action: "getAPIKey",
                limit,
                reserve,
            });
        }
        let remaining = (self.budget.allowed(&day) - day.effective_used()).max(0);
        Ok(KeyReport {
            account_name: info.account_name,
            status: info.status,
            request_limit: info.request_limit,
            requests_today: info.requests,
            ours_today: day.used,
            remaining_today: remaining,
        })
    }

    /// Sends `call` and returns its JSON reply, with the keys that
    /// `listAPIKeys` returns under `apikeys` masked.
    pub async fn call(&self, call: &Call) -> Result<Value, ApiError> {
        let (mut body, _) = self.client.call_json(call).await?;
        if let Some(Value::Array(keys)) = body.get_mut("apikeys") {
            for key in keys.iter_mut() {
                if let Value::String(text) = key {
                    *text = mask_key(text);
                }
            }
        }
        Ok(body)
    }
}

/// Masks a key. A key longer than eight characters keeps its last four,
/// so an operator can tell keys apart without the output revealing them.
pub fn mask_key(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 8 {
        return "***".to_owned();
    }
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("***{tail}")
}

impl KeyReport {
    /// Renders the report as aligned lines for a terminal.
    pub fn to_text(&self) -> String {
        let text = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
        let number = |value: Option<i64>| value.map_or("-".to_owned(), |n| n.to_string());
        [
            format!("account              {}", text(&self.account_name)),
            format!("key status           {}", text(&self.status)),
            format!("daily limit          {}", number(self.request_limit)),
            format!("requests today, all  {}", number(self.requests_today)),
            format!("requests today, ours {}", self.ours_today),
            format!("left for us today    {}", self.remaining_today),
        ]
        .join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arguments(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| (*item).to_owned()).collect()
    }

    #[test]
    fn module_is_inferred_from_action() {
        let call = build_call("getAPIKey", None, &[]).expect("valid");
        assert_eq!(call.module, Module::Account);
        let call = build_call("getLogStats", None, &[]).expect("valid");
        assert_eq!(call.module, Module::LogManagement);
    }

    #[test]
    fn filter_with_space_is_percent_20() {
        let call =
            build_call("listDevices", None, &arguments(&["type=Logic Controller"])).expect("valid");
        assert_eq!(
            call.encode_query(),
            "module=IoTSecurity&action=listDevices&type=Logic%20Controller"
        );
    }

    #[test]
    fn wrong_module_is_rejected() {
        let error = build_call("listAlerts", Some("Account"), &[]).expect_err("invalid");
        assert!(error.to_string().contains("IoTSecurity"), "{error}");
    }

    #[test]
    fn unknown_action_lists_known_ones() {
        let error = build_call("listAlert", None, &[]).expect_err("invalid");
        assert!(error.to_string().contains("listAlerts"), "{error}");
    }

    #[test]
    fn unknown_filter_lists_allowed_ones() {
        let error = build_call("getAlert", None, &arguments(&["id=900451"])).expect_err("invalid");
        assert!(error.to_string().contains("alert_id"), "{error}");
    }

    #[test]
    fn argument_without_equals_is_rejected() {
        let error = build_call("getAlert", None, &arguments(&["900451"])).expect_err("invalid");
        assert!(error.to_string().contains("name=value"), "{error}");
    }

    #[test]
    fn key_mask_keeps_last_four() {
        assert_eq!(mask_key("test-key-5f2c9a"), "***2c9a");
        assert_eq!(mask_key("short"), "***");
    }
}
