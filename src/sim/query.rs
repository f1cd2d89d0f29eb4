//! Parsing of the raw query string the simulator receives, and the copy
//! of it that goes into the request log with the API key masked.

use std::collections::HashMap;

/// The decoded parameters of one request. A name given twice keeps its
/// last value.
#[derive(Debug, Default)]
pub(crate) struct Params {
    values: HashMap<String, String>,
}

impl Params {
    /// Decodes `raw` as `application/x-www-form-urlencoded`, so both
    /// `%20` and `+` become a space.
    pub(crate) fn parse(raw: &str) -> Self {
        let values = form_urlencoded::parse(raw.as_bytes())
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
        Params { values }
    }

    /// Returns the value of `name`, or `None` when it is absent.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

/// Returns `raw` with the value of every `apikey` parameter replaced by
/// `***`, leaving the rest byte for byte as it arrived.
pub(crate) fn mask_api_key(raw: &str) -> String {
    raw.split('&')
        .map(|pair| match pair.split_once('=') {
            Some(("apikey", _)) => "apikey=***",
            _ => pair,
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Normalizes a device id the way the simulator stores it: surrounding
/// whitespace removed, letters upper case.
pub(crate) fn normalize_device_id(raw: &str) -> String {
    raw.trim().to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_20_and_plus_decode_to_space() {
        let params = Params::parse("type=Logic%20Controller&name=ICU+Pump");
        assert_eq!(params.get("type"), Some("Logic Controller"));
        assert_eq!(params.get("name"), Some("ICU Pump"));
    }

    #[test]
    fn repeated_name_keeps_last_value() {
        let params = Params::parse("hours=1&hours=24");
        assert_eq!(params.get("hours"), Some("24"));
    }

    #[test]
    fn mask_hides_only_the_key() {
        let raw = "apikey=s3cret&module=Account&action=getAPIKey";
        assert_eq!(
            mask_api_key(raw),
            "apikey=***&module=Account&action=getAPIKey"
        );
    }

    #[test]
    fn device_id_ignores_case_and_whitespace() {
        assert_eq!(
            normalize_device_id("\n00:40:17:6c:00:00 "),
            "00:40:17:6C:00:00"
        );
    }
}
