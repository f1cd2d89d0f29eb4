//! The simulator's HTTP face: one route, `/`, for GET and POST, that
//! hands the raw query string (joined with a form body, if any) to the
//! model, plus a task that moves the generator along every second.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use super::model::Model;
use crate::clock::datetime_from_ms;

/// Serves `model` on `listener` until `cancel` fires, then lets requests
/// in flight finish.
pub async fn serve(
    model: Model,
    listener: tokio::net::TcpListener,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let router = Router::new()
        .route("/", get(answer).post(answer))
        .with_state(model.clone());
    let stop_ticking = cancel.child_token();
    let ticker = tokio::spawn(tick(model, stop_ticking.clone()));
    let result = axum::serve(listener, router)
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await;
    stop_ticking.cancel();
    if let Err(error) = ticker.await {
        tracing::warn!(%error, "simulator generator task failed");
    }
    result
}

/// Advances the generator once a second so that each request finds
/// little work left to do.
async fn tick(model: Model, cancel: CancellationToken) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = interval.tick() => model.advance(),
        }
    }
}

/// Passes the query string to the model undecoded, so the request log
/// shows exactly what arrived (for example `%20` against `+`). The doc's
/// curl examples send the parameters as a form body with GET, so a body
/// is appended to the query.
async fn answer(State(model): State<Model>, RawQuery(query): RawQuery, body: Bytes) -> Response {
    let raw = join_query_and_body(query.as_deref(), &body);
    let reply = model.handle(&raw);
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = [
        (header::CONTENT_TYPE, "application/json".to_owned()),
        (header::DATE, http_date(reply.date_ms)),
    ];
    (status, headers, reply.body).into_response()
}

fn join_query_and_body(query: Option<&str>, body: &[u8]) -> String {
    let body = String::from_utf8_lossy(body);
    let body = body.trim();
    match (query.unwrap_or(""), body) {
        (query, "") => query.to_owned(),
        ("", body) => body.to_owned(),
        (query, body) => format!("{query}&{body}"),
    }
}

/// Formats epoch milliseconds as an HTTP date (RFC 9110, section 5.6.7),
/// such as `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(crate) fn http_date(ms: i64) -> String {
    datetime_from_ms(ms)
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_date_matches_rfc_example() {
        assert_eq!(http_date(784_111_777_000), "Sun, 06 Nov 1994 08:49:37 GMT");
    }

    #[test]
    fn body_is_appended_to_query() {
        let joined = join_query_and_body(Some("apikey=k"), b"module=Account\n");
        assert_eq!(joined, "apikey=k&module=Account");
        assert_eq!(join_query_and_body(None, b"a=1"), "a=1");
        assert_eq!(join_query_and_body(Some("a=1"), b""), "a=1");
    }
}
