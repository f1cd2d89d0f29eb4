//! The HTTP transport: one GET per call, with a timeout, a cap on the
//! response size, and the key kept out of every error.

use std::fmt;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use reqwest::Url;

use super::{ApiError, Call, Reply, Transport, percent_encode};

/// The API key. Its `Debug` and `Display` print a mask, so it cannot leak
/// through a log line or an error by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }

    /// The key itself, for the request and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// Base URL, such as `https://api1.iotsecure.io/`.
    pub url: Url,
    pub api_key: ApiKey,
    /// Limit for the whole request, connection to last body byte.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub max_response_bytes: usize,
}

pub struct HttpTransport {
    client: reqwest::Client,
    settings: HttpSettings,
}

impl HttpTransport {
    pub fn new(settings: HttpSettings) -> Result<Self, ApiError> {
        let client = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.timeout)
            .user_agent(concat!("iotsecure-forwarder/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| ApiError::Connection {
                action: "setup",
                message: describe(&error.without_url()),
            })?;
        Ok(HttpTransport { client, settings })
    }

    fn url_for(&self, call: &Call) -> Url {
        let mut url = self.settings.url.clone();
        let key = percent_encode(self.settings.api_key.expose());
        url.set_query(Some(&format!("apikey={key}&{}", call.encode_query())));
        url
    }

    async fn read_capped(
        &self,
        action: &'static str,
        mut response: reqwest::Response,
    ) -> Result<Bytes, ApiError> {
        let limit = self.settings.max_response_bytes;
        let mut body = BytesMut::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| self.request_error(action, error))?
        {
            if body.len() + chunk.len() > limit {
                return Err(ApiError::TooLarge { action, limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }

    /// Maps a reqwest error without its URL, whose query holds the key.
    fn request_error(&self, action: &'static str, error: reqwest::Error) -> ApiError {
        if error.is_timeout() {
            return ApiError::Timeout {
                action,
                timeout: self.settings.timeout,
            };
        }
        let message = describe(&error.without_url());
        // The URL is gone, but a proxy or TLS layer could still echo the
        // query; mask the key wherever it appears.
        let key = self.settings.api_key.expose();
        let message = if key.is_empty() {
            message
        } else {
            message.replace(key, "***")
        };
        ApiError::Connection { action, message }
    }
}

impl Transport for HttpTransport {
    async fn send(&self, call: &Call) -> Result<Reply, ApiError> {
        let request = self.client.get(self.url_for(call));
        let response = request
            .send()
            .await
            .map_err(|error| self.request_error(call.action, error))?;
        let http_status = response.status().as_u16();
        let server_time = response
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|value| value.to_str().ok())
            .and_then(parse_http_date);
        let body = self.read_capped(call.action, response).await?;
        let body = mask_key(body, self.settings.api_key.expose());
        Ok(Reply {
            http_status,
            body,
            server_time,
        })
    }
}

/// Replaces each copy of `key` in a reply body with `***`: as is,
/// percent-encoded, and with `/` escaped as JSON allows (`\/`). A proxy
/// page or failure detail that echoes the request would otherwise carry
/// the key into errors, logs, the outbox and the SIEM.
///
/// NOTE: a copy written with other JSON escapes, such as `\u0041` for
/// `A`, is not found.
fn mask_key(body: Bytes, key: &str) -> Bytes {
    if key.is_empty() {
        return body;
    }
    let forms = [key.to_owned(), percent_encode(key), key.replace('/', "\\/")];
    let mut masked = body;
    for form in &forms {
        if let Some(replaced) = replace_all(&masked, form.as_bytes(), b"***") {
            masked = Bytes::from(replaced);
        }
    }
    masked
}

/// Returns `haystack` with every `needle` replaced by `with`, or `None`
/// when it contains no `needle`.
fn replace_all(haystack: &[u8], needle: &[u8], with: &[u8]) -> Option<Vec<u8>> {
    let find = |bytes: &[u8]| bytes.windows(needle.len()).position(|w| w == needle);
    let mut at = find(haystack)?;
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    loop {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(with);
        rest = &rest[at + needle.len()..];
        match find(rest) {
            Some(next) => at = next,
            None => break,
        }
    }
    out.extend_from_slice(rest);
    Some(out)
}

/// Parses an HTTP `Date` header (RFC 9110 IMF-fixdate, which is also
/// valid RFC 2822).
pub fn parse_http_date(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(text.trim())
        .ok()
        .map(|date| date.with_timezone(&Utc))
}

/// Joins an error and its causes, since reqwest's top-level message
/// ("error sending request") hides the useful part.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_masked_in_debug_and_display() {
        let key = ApiKey::new("secret-123");
        assert_eq!(format!("{key:?}"), "ApiKey(***)");
        assert_eq!(key.to_string(), "***");
    }

    #[test]
    fn echoed_key_is_masked_in_every_form() {
        let key = "ab/c+d=";
        let body =
            Bytes::from_static(br#"{"detail":"key ab/c+d= or ab%2Fc%2Bd%3D or ab\/c+d=","n":1}"#);
        let masked = mask_key(body, key);
        assert_eq!(
            masked.as_ref(),
            br#"{"detail":"key *** or *** or ***","n":1}"#
        );
    }

    #[test]
    fn body_without_key_is_unchanged() {
        let body = Bytes::from_static(b"{\"alerts\":[\"1\"]}");
        assert_eq!(mask_key(body.clone(), "secret"), body);
        assert_eq!(replace_all(b"aaa", b"a", b"b"), Some(b"bbb".to_vec()));
    }

    #[test]
    fn http_date_parses() {
        let date = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").expect("parses");
        assert_eq!(date.timestamp(), 784_111_777);
    }

    #[tokio::test]
    async fn connection_error_hides_the_key() {
        // Port 9 on loopback: nothing listens there, so the connection
        // is refused at once.
        let transport = HttpTransport::new(HttpSettings {
            url: Url::parse("http://127.0.0.1:9/").expect("url"),
            api_key: ApiKey::new("SECRET-KEY-42"),
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            max_response_bytes: 1024,
        })
        .expect("client builds");
        let call = Call::new(super::super::Module::IoTSecurity, "countAlerts");
        let error = transport.send(&call).await.expect_err("refused");
        let text = format!("{error} {error:?}");
        assert!(!text.contains("SECRET-KEY-42"), "{text}");
        assert!(text.contains("countAlerts"), "{text}");
    }
}
