//! Errors of API calls, split by what the caller can do about them.

use std::time::Duration;

/// The failure of an API call.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The organization spent its daily quota; no call succeeds before
    /// the next 00:00 UTC.
    #[error("{action}: daily API request limit reached: {detail}")]
    LimitReached {
        action: &'static str,
        detail: String,
    },

    /// The key is wrong, revoked or missing.
    #[error(
        "{action}: the API rejected the key as invalid ({detail}); check api.api_key_file or the key's status with IoT Secure support"
    )]
    InvalidKey {
        action: &'static str,
        detail: String,
    },

    /// A failure body with another code.
    #[error("{action}: request failed with code {code}: {detail}")]
    Failed {
        action: &'static str,
        code: i64,
        detail: String,
    },

    #[error("{action}: no reply within {timeout:?}")]
    Timeout {
        action: &'static str,
        timeout: Duration,
    },

    /// Connection refused or reset, DNS or TLS failure. The message never
    /// contains the URL, whose query string contains the key.
    #[error("{action}: request failed: {message}")]
    Connection {
        action: &'static str,
        message: String,
    },

    /// An HTTP error status whose body is not the API's failure JSON, such
    /// as an HTML page from a proxy.
    #[error("{action}: HTTP status {status} without an API failure body")]
    Status { action: &'static str, status: u16 },

    #[error("{action}: response larger than the {limit} byte limit; raise api.max_response_bytes")]
    TooLarge { action: &'static str, limit: usize },

    /// The body is JSON, but not the record this action returns.
    #[error("{action}: invalid response: {detail}")]
    Decode {
        action: &'static str,
        detail: String,
    },

    /// The body is not JSON at all, such as an HTML page from a proxy
    /// sent with HTTP 200, or a body cut short.
    #[error("{action}: response is not JSON: {detail}")]
    NotJson {
        action: &'static str,
        detail: String,
    },

    /// `quota.reserve` is at least the organization's daily limit, so
    /// the forwarder may spend nothing on any day.
    #[error(
        "{action}: quota.reserve ({reserve}) leaves nothing of the daily limit ({limit}), so no \
         request may go; set quota.reserve below {limit}, then reload or restart"
    )]
    ReserveTakesAll {
        action: &'static str,
        limit: i64,
        reserve: i64,
    },

    /// The forwarder's own daily ledger has no room left.
    #[error("{action}: not sent, today's request budget is spent ({used} of {allowed})")]
    BudgetSpent {
        action: &'static str,
        used: i64,
        allowed: i64,
    },
}

/// The caller's reaction to an [`ApiError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Stop calling until the next UTC day.
    DayClosed,
    /// Stop calling until an operator fixes the key; retry slowly.
    InvalidKey,
    /// Worth retrying later: timeouts, connection errors, 5xx pages.
    Transient,
    /// Retrying the same call will fail the same way.
    Permanent,
}

impl ApiError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ApiError::LimitReached { .. }
            | ApiError::BudgetSpent { .. }
            | ApiError::ReserveTakesAll { .. } => ErrorKind::DayClosed,
            ApiError::InvalidKey { .. } => ErrorKind::InvalidKey,
            ApiError::Timeout { .. } | ApiError::Connection { .. } | ApiError::NotJson { .. } => {
                ErrorKind::Transient
            }
            ApiError::Status { status, .. } if *status >= 500 || *status == 429 => {
                ErrorKind::Transient
            }
            // The same record comes back as large next time.
            ApiError::TooLarge { .. }
            | ApiError::Failed { .. }
            | ApiError::Status { .. }
            | ApiError::Decode { .. } => ErrorKind::Permanent,
        }
    }

    pub fn action(&self) -> &'static str {
        match self {
            ApiError::LimitReached { action, .. }
            | ApiError::InvalidKey { action, .. }
            | ApiError::Failed { action, .. }
            | ApiError::Timeout { action, .. }
            | ApiError::Connection { action, .. }
            | ApiError::Status { action, .. }
            | ApiError::TooLarge { action, .. }
            | ApiError::Decode { action, .. }
            | ApiError::NotJson { action, .. }
            | ApiError::BudgetSpent { action, .. }
            | ApiError::ReserveTakesAll { action, .. } => action,
        }
    }
}
