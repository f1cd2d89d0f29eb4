//! Configuration errors that point at the file, line and key.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub path: PathBuf,
    /// 1-based line and column, when the error has a place in the file.
    pub position: Option<(usize, usize)>,
    /// Dotted key, such as `alerts.min_poll_interval` or `output[1].address`.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl ConfigError {
    pub fn whole_file(path: &Path, message: String) -> Self {
        ConfigError {
            path: path.to_owned(),
            position: None,
            key: None,
            message,
        }
    }

    /// Creates an error about `key`, without a known place in the file.
    pub fn key(path: &Path, key: &str, message: String) -> Self {
        ConfigError {
            path: path.to_owned(),
            position: None,
            key: Some(key.to_owned()),
            message,
        }
    }

    /// Creates an error about `key`, placed at the line that sets it in
    /// `text`.
    pub fn at_key(path: &Path, text: &str, key: &str, message: String) -> Self {
        ConfigError {
            path: path.to_owned(),
            position: find_key(text, key),
            key: Some(key.to_owned()),
            message,
        }
    }

    pub fn from_toml(path: &Path, text: &str, error: &toml::de::Error) -> Self {
        let offset = error.span().map(|span| span.start);
        let position = offset.map(|offset| line_column(text, offset));
        let mut key = offset.and_then(|offset| key_at(text, offset));
        let mut message = error.message().trim().to_owned();
        if let Some(field) = missing_field(&message) {
            // The error points at the table; name the key it lacks.
            key = Some(match key {
                Some(table) => format!("{table}.{field}"),
                None => field.to_owned(),
            });
            message.push_str(": add it, it has no default");
        } else if message.starts_with("duplicate key") {
            message.push_str(": a key or table may appear once; remove the repeat");
        }
        ConfigError {
            path: path.to_owned(),
            position,
            key,
            message,
        }
    }
}

/// Returns the field that serde's "missing field `x`" message names.
fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..floor_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn floor_boundary(text: &str, offset: usize) -> usize {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// Returns the dotted key set on the line at `offset`, prefixed with the table
/// that line belongs to.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = floor_boundary(text, offset);
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = &text[line_start..line_end];
    let table = table_before(text, line_start);
    let trimmed = line.trim();
    if trimmed.starts_with('[') {
        // A table header: name the table with its index, as the text up
        // to the end of this line has it.
        return table_before(text, line_end);
    }
    let name = line.split('=').next()?.trim().trim_matches('"');
    if name.is_empty() {
        return table;
    }
    Some(match table {
        Some(table) => format!("{table}.{name}"),
        None => name.to_owned(),
    })
}

/// Returns the table header (`[x]` or `[[x]]`) in force at byte `offset`, with
/// an index for arrays of tables.
fn table_before(text: &str, offset: usize) -> Option<String> {
    let mut current = None;
    let mut counts = std::collections::HashMap::new();
    for line in text[..offset].lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("[[").and_then(|l| l.split("]]").next()) {
            let index = counts.entry(name.trim().to_owned()).or_insert(0usize);
            current = Some(format!("{}[{index}]", name.trim()));
            *index += 1;
        } else if let Some(name) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            current = Some(name.trim().to_owned());
        }
    }
    current
}

/// Finds the line and column where `key` (dotted, `output[1].address`)
/// is set.
fn find_key(text: &str, key: &str) -> Option<(usize, usize)> {
    let (table, name) = match key.rsplit_once('.') {
        Some((table, name)) => (Some(table), name),
        None => (None, key),
    };
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let here = table_before(text, offset);
        let set_name = line.split('=').next().map(|n| n.trim().trim_matches('"'));
        if line.contains('=') && set_name == Some(name) && here.as_deref() == table {
            let column = line.len() - line.trim_start().len();
            return Some(line_column(text, offset + column));
        }
        offset += line.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str =
        "[api]\nurl = \"x\"\n\n[[output]]\nname = \"a\"\n[[output]]\nname = \"b\"\naddress = 5\n";

    #[test]
    fn key_at_names_the_table_and_index() {
        let offset = TEXT.find("address").expect("present");
        assert_eq!(key_at(TEXT, offset).as_deref(), Some("output[1].address"));
    }

    #[test]
    fn find_key_in_array_of_tables() {
        assert_eq!(find_key(TEXT, "output[1].name"), Some((7, 1)));
        assert_eq!(find_key(TEXT, "api.url"), Some((2, 1)));
    }
}
