//! The failure bodies the simulator returns, each with the HTTP status
//! it is sent with.
//!
//! The document defines two codes: 500 for an invalid key and 400 for
//! the daily limit. For other failures it only says a "properly
//! formatted JSON response" comes back, so the simulator picks codes
//! that cannot be mistaken for those two: 404 for an unknown module,
//! action or record, and 422 for a missing or invalid parameter. The
//! HTTP status always equals `request_status_code`.

use serde_json::{Value, json};

/// Detail text of the document's invalid-key sample.
const INVALID_KEY_DETAIL: &str = "Invalid API key. See KnowledgeBase for help: \
    https://tickets.iotsecure.io/portal/en/kb/iotsecure/api";

/// Detail text of the document's daily-limit sample.
const LIMIT_DETAIL: &str = "API request limit reached. Try again tomorrow. \
    See KnowledgeBase: https://tickets.iotsecure.io/portal/en/kb/articles/api-1-0";

/// A failed request: the code for both the HTTP status and
/// `request_status_code`, and the human-readable detail.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Failure {
    pub code: u16,
    pub detail: String,
}

impl Failure {
    pub(crate) fn not_found(detail: String) -> Self {
        Failure { code: 404, detail }
    }

    pub(crate) fn missing(name: &str) -> Self {
        Failure {
            code: 422,
            detail: format!("Missing required parameter: {name}."),
        }
    }

    pub(crate) fn invalid(name: &str, value: &str, expected: &str) -> Self {
        Failure {
            code: 422,
            detail: format!("Invalid value {value:?} for {name}: expected {expected}."),
        }
    }

    /// The document's invalid-key reply.
    pub(crate) fn invalid_key() -> Self {
        Failure {
            code: 500,
            detail: INVALID_KEY_DETAIL.into(),
        }
    }

    pub(crate) fn body(&self) -> Value {
        json!({
            "request_status": "failed",
            "request_status_code": self.code,
            "request_status_detail": self.detail,
        })
    }
}

/// The document's daily-limit reply, sent with HTTP 400. The key is
/// masked as `XXXXX`, as in the document's sample.
pub(crate) fn limit_reached(account_name: &str, limit: i64) -> Value {
    json!({
        "apikey": "XXXXX",
        "account_name": account_name,
        "request_limit": limit,
        "request_status": "failed",
        "request_status_code": 400,
        "request_status_detail": LIMIT_DETAIL,
    })
}
