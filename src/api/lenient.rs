//! Deserializers that accept the loose shapes the API document shows:
//! ids as strings or numbers, numbers and booleans sometimes quoted,
//! MAC addresses with stray whitespace.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Normalizes a MAC address as the API uses it for device ids: stray
/// whitespace removed (the document's own sample starts with a newline)
/// and letters upper-cased.
pub fn normalize_mac(raw: &str) -> String {
    raw.chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase()
}

/// Renders a scalar JSON value as text; `None` for null, arrays, objects
/// and empty strings.
pub fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if text.trim().is_empty() => None,
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// A string or a number, as text.
pub fn text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let value = Option::<Value>::deserialize(deserializer)?;
    Ok(value.as_ref().and_then(scalar_text))
}

/// A required id given as a string or a number, trimmed.
pub fn id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let value = Value::deserialize(deserializer)?;
    match scalar_text(&value) {
        Some(text) => Ok(text.trim().to_owned()),
        None => Err(serde::de::Error::custom(format!(
            "invalid id {value}: expected a string or a number"
        ))),
    }
}

/// A MAC address, normalized by [`normalize_mac`].
pub fn mac<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let value = text(deserializer)?;
    Ok(value
        .map(|raw| normalize_mac(&raw))
        .filter(|mac| !mac.is_empty()))
}

/// An integer given as a number or a numeric string; `None` when absent,
/// null or not a number.
pub fn integer<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    let value = Option::<Value>::deserialize(deserializer)?;
    Ok(value.as_ref().and_then(integer_of))
}

/// Reads an integer from a number (fractions cut) or a numeric string.
pub fn integer_of(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number
            .as_i64()
            .or_else(|| number.as_f64().map(|float| float as i64)),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// A boolean given as `true`/`false`, `"true"`/`"false"`, or 0/1.
pub fn flag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    let value = Option::<Value>::deserialize(deserializer)?;
    Ok(match value {
        Some(Value::Bool(flag)) => Some(flag),
        Some(Value::Number(number)) => number.as_i64().map(|n| n != 0),
        Some(Value::String(text)) => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Some(true),
            "false" | "0" | "no" => Some(false),
            _ => None,
        },
        _ => None,
    })
}

/// A list of strings; scalars in it are rendered as text and other
/// entries skipped.
pub fn strings<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let value = Option::<Value>::deserialize(deserializer)?;
    Ok(match value {
        Some(Value::Array(items)) => items.iter().filter_map(scalar_text).collect(),
        Some(other) => scalar_text(&other).into_iter().collect(),
        None => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_is_trimmed_and_upper_cased() {
        assert_eq!(normalize_mac("\n00:40:17:6c:00:00 "), "00:40:17:6C:00:00");
    }

    #[test]
    fn integer_accepts_numbers_and_strings() {
        assert_eq!(integer_of(&serde_json::json!(15)), Some(15));
        assert_eq!(integer_of(&serde_json::json!(" 15 ")), Some(15));
        assert_eq!(integer_of(&serde_json::json!(15.7)), Some(15));
        assert_eq!(integer_of(&serde_json::json!("x")), None);
    }
}
