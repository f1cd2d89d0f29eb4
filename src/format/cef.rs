//! CEF (ArcSight Common Event Format, revisions 25 to 27): the header and
//! extension types, their escaping, and a parser for tests and tools.
//!
//! Escaping is the only thing that keeps API data from forging CEF fields
//! or syslog messages, so every value goes through one of two escape
//! tables: [`header_escape`] or [`extension_escape`]. The fitter in
//! `super::fit` shortens values through the character limits here, so
//! every cut happens before escaping.

use std::fmt::Write as _;

/// CEF header field limits, in characters.
pub const VENDOR_MAX_CHARS: usize = 63;
pub const PRODUCT_MAX_CHARS: usize = 63;
pub const VERSION_MAX_CHARS: usize = 31;
pub const EVENT_CLASS_ID_MAX_CHARS: usize = 1023;
pub const NAME_MAX_CHARS: usize = 512;

/// A CEF severity, 0 (lowest) to 10 (highest).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Severity(u8);

impl Severity {
    pub const MAX: u8 = 10;

    /// Clamps `value` to 0-10, because receivers reject anything else.
    pub fn new(value: u8) -> Self {
        Severity(value.min(Self::MAX))
    }

    pub fn value(self) -> u8 {
        self.0
    }
}

/// The seven header fields before the extension.
#[derive(Clone, Debug)]
pub struct CefHeader<'a> {
    pub vendor: &'a str,
    pub product: &'a str,
    pub version: &'a str,
    pub event_class_id: &'a str,
    pub name: &'a str,
    pub severity: Severity,
}

impl CefHeader<'_> {
    /// Appends `CEF:0|Vendor|Product|Version|Id|Name|Severity|` to `out`.
    /// The `|` after Severity is written even when no extension follows.
    pub fn encode(&self, out: &mut String) {
        self.encode_with_name_limit(NAME_MAX_CHARS, out);
    }

    /// Appends the header like [`CefHeader::encode`], with the Name cut
    /// to `name_max_chars` characters (at most [`NAME_MAX_CHARS`]).
    pub fn encode_with_name_limit(&self, name_max_chars: usize, out: &mut String) {
        out.push_str("CEF:0|");
        escape_header_value(self.vendor, VENDOR_MAX_CHARS, out);
        out.push('|');
        escape_header_value(self.product, PRODUCT_MAX_CHARS, out);
        out.push('|');
        escape_header_value(self.version, VERSION_MAX_CHARS, out);
        out.push('|');
        escape_header_value(self.event_class_id, EVENT_CLASS_ID_MAX_CHARS, out);
        out.push('|');
        let name_max_chars = name_max_chars.min(NAME_MAX_CHARS);
        escape_header_value(self.name, name_max_chars, out);
        // Writing to a String cannot fail.
        let _ = write!(out, "|{}|", self.severity.value());
    }
}

/// An extension key: `[A-Za-z0-9]+` as spelled in the CEF dictionary.
/// Keys have no escape syntax, so only constants are accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtensionKey {
    pub name: &'static str,
    /// Maximum value length in characters.
    pub max_chars: usize,
    /// The shortening the fitter may apply to the value.
    pub shortening: Shortening,
}

/// The class of a value for the fitter, which shortens values when the
/// whole message exceeds the output's `max_message_bytes`. A label pair
/// (`cs1Label`) is written exactly when its value is, so the label key's
/// own class is unused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shortening {
    /// Written in full, because it identifies the event (`externalId`,
    /// `rt`, `start`, `dmac`).
    Keep,
    /// Free text: cut to a prefix on a character boundary, or omitted
    /// with its label when no character is left.
    Cut,
    /// A number, address or host name, which a prefix would turn into
    /// another valid-looking value: written whole or omitted.
    Omit,
}

/// The extension pairs in the order they were pushed, which the caller
/// keeps fixed so the output is deterministic.
#[derive(Clone, Debug, Default)]
pub struct Extension {
    pairs: Vec<Pair>,
}

/// One `key=value` pair with the label pair written before it, if any.
#[derive(Clone, Debug)]
struct Pair {
    key: ExtensionKey,
    value: String,
    label: Option<(ExtensionKey, String)>,
    /// Characters of the value written: `key.max_chars` until the fitter
    /// lowers it, and 0 to omit the pair.
    max_chars: usize,
}

impl Pair {
    fn new(key: ExtensionKey, value: String) -> Self {
        let max_chars = key.max_chars;
        Pair {
            key,
            value,
            label: None,
            max_chars,
        }
    }

    fn size(&self) -> PairSize {
        let mut label_pair = String::new();
        if let Some((label_key, label)) = &self.label {
            push_extension_pair(label_key, label, label_key.max_chars, &mut label_pair);
            label_pair.push(' ');
        }
        // The space before the pair, `key` and `=`.
        let key_bytes = 1 + self.key.name.len() + 1;
        PairSize {
            shortening: self.key.shortening,
            overhead_bytes: label_pair.len() + key_bytes,
            prefix_bytes: extension_prefix_bytes(&self.value, self.max_chars),
        }
    }
}

/// The sizes the fitter needs of one extension pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairSize {
    pub shortening: Shortening,
    /// Bytes the pair adds besides its escaped value: the space before
    /// it, `key=`, and the label pair with its space.
    pub overhead_bytes: usize,
    /// See [`extension_prefix_bytes`]; `[0]` alone when the pair is
    /// omitted.
    pub prefix_bytes: Vec<usize>,
}

impl Extension {
    pub fn new() -> Self {
        Extension::default()
    }

    /// Adds a text pair unless `value` is `None`.
    pub fn push(&mut self, key: ExtensionKey, value: Option<&str>) {
        if let Some(value) = value {
            self.pairs.push(Pair::new(key, value.to_owned()));
        }
    }

    /// Adds an integer pair unless `value` is `None`.
    pub fn push_int(&mut self, key: ExtensionKey, value: Option<i64>) {
        if let Some(value) = value {
            self.pairs.push(Pair::new(key, value.to_string()));
        }
    }

    /// Adds a labelled custom field (`csN`, `cnN`, `c6aN`, `flexStringN`)
    /// and its label, or nothing when the value is empty after trimming.
    pub fn push_labelled(
        &mut self,
        key: ExtensionKey,
        label_key: ExtensionKey,
        label: &str,
        value: Option<&str>,
    ) {
        let Some(value) = value else { return };
        let mut pair = Pair::new(key, value.to_owned());
        pair.label = Some((label_key, label.to_owned()));
        self.pairs.push(pair);
    }

    /// Appends `key=value` pairs separated by one space. A pair whose value
    /// is empty after normalization, or whose limit is 0, is omitted with
    /// its label.
    pub fn encode(&self, out: &mut String) {
        let mut first = true;
        for pair in &self.pairs {
            let value = normalize(&pair.value, is_extension_control);
            if value.is_empty() || pair.max_chars == 0 {
                continue;
            }
            if let Some((label_key, label)) = &pair.label {
                push_separator(&mut first, out);
                push_extension_pair(label_key, label, label_key.max_chars, out);
            }
            push_separator(&mut first, out);
            out.push_str(pair.key.name);
            out.push('=');
            push_escaped(&value, pair.max_chars, extension_escape, out);
        }
    }

    /// Returns the sizes of every pair, in order, for the fitter.
    pub fn pair_sizes(&self) -> Vec<PairSize> {
        self.pairs.iter().map(Pair::size).collect()
    }

    /// Lowers the number of characters written of pair `index` (in
    /// [`Extension::pair_sizes`] order); 0 omits the pair and its label.
    pub fn limit_chars(&mut self, index: usize, max_chars: usize) {
        if let Some(pair) = self.pairs.get_mut(index) {
            pair.max_chars = pair.max_chars.min(max_chars);
        }
    }
}

fn push_separator(first: &mut bool, out: &mut String) {
    if !*first {
        out.push(' ');
    }
    *first = false;
}

/// Appends `key=value` with the value normalized, cut and escaped.
fn push_extension_pair(key: &ExtensionKey, value: &str, max_chars: usize, out: &mut String) {
    out.push_str(key.name);
    out.push('=');
    escape_extension_value(value, max_chars, out);
}

/// Appends a header value: control characters (CR and LF included) become
/// a space, the result is trimmed and cut to `max_chars` characters, then
/// `\` becomes `\\` and `|` becomes `\|`.
pub fn escape_header_value(value: &str, max_chars: usize, out: &mut String) {
    let normalized = normalize(value, |c| c.is_control());
    push_escaped(&normalized, max_chars, header_escape, out);
}

/// Returns the escape of a character in a header value, or `None` when
/// the character stands for itself.
pub fn header_escape(c: char) -> Option<&'static str> {
    match c {
        '\\' => Some("\\\\"),
        '|' => Some("\\|"),
        _ => None,
    }
}

/// Appends an extension value: control characters other than CR and LF
/// (TAB and NUL included) become a space, the result is trimmed and cut
/// to `max_chars` characters. Then `\` becomes `\\`, `=` becomes `\=`, LF
/// becomes `\n` and CR becomes `\r`. Cutting before escaping means the
/// cut can never split an escape and leave a dangling `\`.
pub fn escape_extension_value(value: &str, max_chars: usize, out: &mut String) {
    let normalized = normalize(value, is_extension_control);
    push_escaped(&normalized, max_chars, extension_escape, out);
}

/// Returns the escape of a character in an extension value, or `None`
/// when the character stands for itself.
pub fn extension_escape(c: char) -> Option<&'static str> {
    match c {
        '\\' => Some("\\\\"),
        '=' => Some("\\="),
        '\n' => Some("\\n"),
        '\r' => Some("\\r"),
        _ => None,
    }
}

/// Returns the byte sizes of a header value's escaped prefixes:
/// element `k` is the size of its first `k` characters after
/// normalization and escaping, for `k` from 0 to `max_chars` or the
/// value's length, whichever is smaller.
pub fn header_prefix_bytes(value: &str, max_chars: usize) -> Vec<usize> {
    let normalized = normalize(value, |c| c.is_control());
    prefix_bytes(&normalized, max_chars, header_escape)
}

/// Returns the byte sizes of an extension value's escaped prefixes, as
/// [`header_prefix_bytes`] does for header values.
pub fn extension_prefix_bytes(value: &str, max_chars: usize) -> Vec<usize> {
    let normalized = normalize(value, is_extension_control);
    prefix_bytes(&normalized, max_chars, extension_escape)
}

fn prefix_bytes(
    normalized: &str,
    max_chars: usize,
    escape_of: fn(char) -> Option<&'static str>,
) -> Vec<usize> {
    let mut sizes = vec![0];
    let mut total = 0;
    for c in normalized.chars().take(max_chars) {
        total += escape_of(c).map_or(c.len_utf8(), str::len);
        sizes.push(total);
    }
    sizes
}

/// Appends a normalized value cut to `max_chars` characters, then
/// escaped: cutting first means no cut can split an escape.
fn push_escaped(
    normalized: &str,
    max_chars: usize,
    escape_of: fn(char) -> Option<&'static str>,
    out: &mut String,
) {
    for c in normalized.chars().take(max_chars) {
        match escape_of(c) {
            Some(escaped) => out.push_str(escaped),
            None => out.push(c),
        }
    }
}

fn is_extension_control(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\r'
}

/// Replaces the characters `is_replaced` selects with a space and trims
/// spaces from both ends. Only spaces are trimmed, so a leading or
/// trailing CR or LF in an extension value survives as `\r` or `\n`.
fn normalize(value: &str, is_replaced: impl Fn(char) -> bool) -> String {
    let replaced: String = value
        .chars()
        .map(|c| if is_replaced(c) { ' ' } else { c })
        .collect();
    replaced.trim_matches(' ').to_owned()
}

/// A CEF record split into its fields, with escapes removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CefRecord {
    /// The format version after `CEF:`, `0` for everything this crate
    /// writes.
    pub cef_version: String,
    pub vendor: String,
    pub product: String,
    pub version: String,
    pub event_class_id: String,
    pub name: String,
    pub severity: String,
    /// Extension pairs in message order.
    pub extension: Vec<(String, String)>,
}

impl CefRecord {
    /// Returns the value of the first pair named `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.extension
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }

    /// Returns the value of the custom field whose label pair
    /// (`<key>Label`) is `label`, such as `cs1` labelled `status`.
    pub fn get_labelled(&self, label: &str) -> Option<&str> {
        let (label_key, _) = self
            .extension
            .iter()
            .find(|(name, value)| name.ends_with("Label") && value == label)?;
        self.get(label_key.strip_suffix("Label")?)
    }
}

/// An error from parsing a CEF record.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CefParseError {
    #[error("invalid CEF record: does not start with `CEF:`")]
    MissingPrefix,
    #[error("invalid CEF record: {found} of 8 header fields")]
    MissingHeaderFields { found: usize },
    #[error("invalid CEF escape `\\{escaped}` in {context}")]
    InvalidEscape {
        escaped: String,
        context: &'static str,
    },
    #[error("invalid CEF extension: no key before `=` at byte {offset}")]
    MissingKey { offset: usize },
    #[error("invalid CEF extension: text before the first key")]
    TextBeforeFirstKey,
}

/// Parses a CEF record that starts with `CEF:`: splits the header on `|`
/// not escaped as `\|` and the extension on unescaped `=`, and removes the
/// escapes. Any escape other than those CEF defines is an error.
pub fn parse_cef(message: &str) -> Result<CefRecord, CefParseError> {
    let body = message
        .strip_prefix("CEF:")
        .ok_or(CefParseError::MissingPrefix)?;
    let (fields, extension) = split_header(body)?;
    let extension = parse_extension(extension)?;
    // split_header returns exactly seven fields.
    let mut fields = fields.into_iter();
    let mut next = || fields.next().unwrap_or_default();
    Ok(CefRecord {
        cef_version: next(),
        vendor: next(),
        product: next(),
        version: next(),
        event_class_id: next(),
        name: next(),
        severity: next(),
        extension,
    })
}

/// Splits the seven header fields (the version after `CEF:` counted) from
/// the extension, removing header escapes.
fn split_header(body: &str) -> Result<(Vec<String>, &str), CefParseError> {
    let mut fields = Vec::with_capacity(7);
    let mut field = String::new();
    let mut chars = body.char_indices();
    while let Some((offset, c)) = chars.next() {
        match c {
            '\\' => field.push(unescape_header(chars.next())?),
            '|' => {
                fields.push(std::mem::take(&mut field));
                if fields.len() == 7 {
                    return Ok((fields, &body[offset + 1..]));
                }
            }
            _ => field.push(c),
        }
    }
    Err(CefParseError::MissingHeaderFields {
        found: fields.len(),
    })
}

fn unescape_header(next: Option<(usize, char)>) -> Result<char, CefParseError> {
    match next {
        Some((_, c @ ('\\' | '|'))) => Ok(c),
        other => Err(invalid_escape(other.map(|(_, c)| c), "header")),
    }
}

fn invalid_escape(escaped: Option<char>, context: &'static str) -> CefParseError {
    CefParseError::InvalidEscape {
        escaped: escaped.map(String::from).unwrap_or_default(),
        context,
    }
}

/// Splits `key=value key=value` on the unescaped `=` signs: each one ends
/// a key that starts after a space, and the value before that space
/// belongs to the previous key.
fn parse_extension(text: &str) -> Result<Vec<(String, String)>, CefParseError> {
    let keys = find_keys(text)?;
    if let Some(&(key_start, _)) = keys.first()
        && !text[..key_start].trim_matches(' ').is_empty()
    {
        return Err(CefParseError::TextBeforeFirstKey);
    }
    let mut pairs = Vec::with_capacity(keys.len());
    for (index, &(key_start, equals)) in keys.iter().enumerate() {
        let value_end = keys.get(index + 1).map_or(text.len(), |next| next.0);
        let value = text[equals + 1..value_end].trim_end_matches(' ');
        let key = text[key_start..equals].to_owned();
        pairs.push((key, unescape_extension(value)?));
    }
    Ok(pairs)
}

/// Returns `(key start, offset of '=')` for every unescaped `=`. Every
/// delimiter is ASCII, so byte offsets are always character boundaries.
fn find_keys(text: &str) -> Result<Vec<(usize, usize)>, CefParseError> {
    let bytes = text.as_bytes();
    let mut keys = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        match bytes[offset] {
            b'\\' => offset += 1,
            b'=' => keys.push((key_start(bytes, offset)?, offset)),
            _ => {}
        }
        offset += 1;
    }
    Ok(keys)
}

/// Finds the start of the `[A-Za-z0-9]+` key that ends before the `=` at
/// `equals`. The key must follow a space or begin the extension.
fn key_start(bytes: &[u8], equals: usize) -> Result<usize, CefParseError> {
    let mut start = equals;
    while start > 0 && bytes[start - 1].is_ascii_alphanumeric() {
        start -= 1;
    }
    let after_space = start == 0 || bytes[start - 1] == b' ';
    if start == equals || !after_space {
        return Err(CefParseError::MissingKey { offset: equals });
    }
    Ok(start)
}

fn unescape_extension(value: &str) -> Result<String, CefParseError> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(c @ ('\\' | '=')) => out.push(c),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            other => return Err(invalid_escape(other, "extension")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(value: &str, max_chars: usize) -> String {
        let mut out = String::new();
        escape_header_value(value, max_chars, &mut out);
        out
    }

    fn extension(value: &str, max_chars: usize) -> String {
        let mut out = String::new();
        escape_extension_value(value, max_chars, &mut out);
        out
    }

    #[test]
    fn header_escaping_rules() {
        let cases = [
            ("backslash doubled", "a\\b", "a\\\\b"),
            ("pipe escaped", "a|b", "a\\|b"),
            ("equals kept", "a=b", "a=b"),
            ("lf becomes space", "a\nb", "a b"),
            ("cr becomes space", "a\rb", "a b"),
            ("tab becomes space", "a\tb", "a b"),
            ("nul becomes space", "a\0b", "a b"),
            ("c1 control becomes space", "a\u{85}b", "a b"),
            ("trimmed", " \n a \r", "a"),
            ("non-ascii kept", "Größe ☃", "Größe ☃"),
        ];
        for (rule, input, expected) in cases {
            assert_eq!(header(input, 100), expected, "{rule}");
        }
    }

    #[test]
    fn extension_escaping_rules() {
        let cases = [
            ("backslash doubled", "a\\b", "a\\\\b"),
            ("equals escaped", "a=b", "a\\=b"),
            ("pipe kept", "a|b", "a|b"),
            ("lf escaped", "a\nb", "a\\nb"),
            ("cr escaped", "a\rb", "a\\rb"),
            ("tab becomes space", "a\tb", "a b"),
            ("nul becomes space", "a\0b", "a b"),
            ("escape becomes space", "a\u{1b}b", "a b"),
            ("backslash before n", "\\n", "\\\\n"),
            ("spaces trimmed", "  a b  ", "a b"),
            ("tab trimmed", "\ta\t", "a"),
            ("lf at the edges kept", "\na\n", "\\na\\n"),
            ("non-ascii kept", "Größe ☃", "Größe ☃"),
        ];
        for (rule, input, expected) in cases {
            assert_eq!(extension(input, 100), expected, "{rule}");
        }
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(extension("ééééé", 3), "ééé");
        assert_eq!(header("☃☃☃☃", 2), "☃☃");
    }

    #[test]
    fn truncation_never_cuts_an_escape() {
        assert_eq!(extension("ab\\cd", 3), "ab\\\\");
        assert_eq!(extension("ab=cd", 3), "ab\\=");
        assert_eq!(extension("ab\ncd", 3), "ab\\n");
        assert_eq!(header("ab|cd", 3), "ab\\|");
        let cut = extension(&"\\".repeat(50), 7);
        assert_eq!(cut, "\\".repeat(14));
    }

    #[test]
    fn truncation_applies_after_trimming() {
        assert_eq!(extension("   abcdef", 3), "abc");
    }

    #[test]
    fn severity_clamps_to_ten() {
        assert_eq!(Severity::new(11).value(), 10);
        assert_eq!(Severity::new(255).value(), 10);
        assert_eq!(Severity::new(0).value(), 0);
        assert_eq!(Severity::new(7).value(), 7);
    }

    const KEY: ExtensionKey = ExtensionKey {
        name: "msg",
        max_chars: 1023,
        shortening: Shortening::Cut,
    };
    const LABEL: ExtensionKey = ExtensionKey {
        name: "cs1Label",
        max_chars: 1023,
        shortening: Shortening::Cut,
    };
    const CS1: ExtensionKey = ExtensionKey {
        name: "cs1",
        max_chars: 4000,
        shortening: Shortening::Cut,
    };

    #[test]
    fn extension_omits_empty_values() {
        let mut ext = Extension::new();
        ext.push(KEY, Some(" \t "));
        ext.push(KEY, None);
        ext.push_labelled(CS1, LABEL, "status", Some("\0"));
        ext.push(KEY, Some("x"));
        let mut out = String::new();
        ext.encode(&mut out);
        assert_eq!(out, "msg=x");
    }

    #[test]
    fn extension_writes_label_before_value() {
        let mut ext = Extension::new();
        ext.push_labelled(CS1, LABEL, "status", Some("open"));
        let mut out = String::new();
        ext.encode(&mut out);
        assert_eq!(out, "cs1Label=status cs1=open");
    }

    #[test]
    fn prefix_bytes_match_escaped_length() {
        let value = " a\\b=c|d\n\u{1f512}\t ";
        let extension_sizes = extension_prefix_bytes(value, 100);
        let header_sizes = header_prefix_bytes(value, 100);
        for (chars, &size) in extension_sizes.iter().enumerate() {
            assert_eq!(size, extension(value, chars).len(), "{chars}");
        }
        for (chars, &size) in header_sizes.iter().enumerate() {
            assert_eq!(size, header(value, chars).len(), "{chars}");
        }
        assert_eq!(extension_prefix_bytes(value, 3), [0, 1, 3, 4]);
    }

    #[test]
    fn pair_sizes_add_up_to_encoded_length() {
        let mut ext = Extension::new();
        ext.push(KEY, Some("a=b"));
        ext.push_labelled(CS1, LABEL, "status", Some(" open\n"));
        ext.push(KEY, Some(" "));
        let mut out = String::new();
        ext.encode(&mut out);
        let sizes = ext.pair_sizes();
        let written = sizes.iter().filter(|size| size.prefix_bytes.len() > 1);
        let total: usize = written
            .map(|size| size.overhead_bytes + size.prefix_bytes.last().unwrap_or(&0))
            .sum();
        // Each size counts a space before its pair; the first has none.
        assert_eq!(total - 1, out.len(), "{out}");
    }

    #[test]
    fn limit_zero_omits_pair_and_label() {
        let mut ext = Extension::new();
        ext.push(KEY, Some("x"));
        ext.push_labelled(CS1, LABEL, "status", Some("open"));
        ext.limit_chars(1, 0);
        let mut out = String::new();
        ext.encode(&mut out);
        assert_eq!(out, "msg=x");
    }

    #[test]
    fn limit_cuts_before_escaping() {
        let mut ext = Extension::new();
        ext.push(KEY, Some("\\\\\\"));
        ext.limit_chars(0, 2);
        let mut out = String::new();
        ext.encode(&mut out);
        assert_eq!(out, "msg=\\\\\\\\");
        let record = parse_cef(&format!("CEF:0|V|P|1|id|n|5|{out}"));
        let record = record.expect("record parses");
        assert_eq!(record.get("msg"), Some("\\\\"));
    }

    #[test]
    fn header_writes_pipe_after_severity() {
        let mut out = String::new();
        CefHeader {
            vendor: "V",
            product: "P",
            version: "1.0",
            event_class_id: "id",
            name: "n",
            severity: Severity::new(3),
        }
        .encode(&mut out);
        assert_eq!(out, "CEF:0|V|P|1.0|id|n|3|");
        let record = parse_cef(&out).expect("header parses");
        assert!(record.extension.is_empty());
    }

    #[test]
    fn parser_honours_header_escapes() {
        let record = parse_cef("CEF:0|a\\|b|c\\\\|1|id|n=x|5|k=v").expect("record parses");
        assert_eq!(record.vendor, "a|b");
        assert_eq!(record.product, "c\\");
        assert_eq!(record.name, "n=x");
        assert_eq!(record.severity, "5");
        assert_eq!(record.get("k"), Some("v"));
    }

    #[test]
    fn parser_honours_extension_escapes() {
        let line = "CEF:0|V|P|1|id|n|5|a=x\\=y b c=\\\\\\n\\r| d=";
        let record = parse_cef(line).expect("record parses");
        let expected = [("a", "x=y b"), ("c", "\\\n\r|"), ("d", "")];
        let pairs: Vec<(&str, &str)> = record
            .extension
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(pairs, expected);
    }

    #[test]
    fn parser_rejects_malformed_records() {
        let cases = [
            ("no prefix", "LEEF:1.0|a|b|c|d|"),
            ("short header", "CEF:0|V|P|1|id|n"),
            ("unknown header escape", "CEF:0|V\\x|P|1|id|n|5|"),
            ("unknown value escape", "CEF:0|V|P|1|id|n|5|a=\\t"),
            ("dangling backslash", "CEF:0|V|P|1|id|n|5|a=b\\"),
            ("missing key", "CEF:0|V|P|1|id|n|5|a=b =c"),
            ("text before key", "CEF:0|V|P|1|id|n|5|junk a=b"),
        ];
        for (case, line) in cases {
            assert!(parse_cef(line).is_err(), "{case}");
        }
    }

    #[test]
    fn escaped_values_parse_back() {
        let values = ["a|b", "a\\b", "a=b", "a\nb\r", "\\=\\n", "ü|☃=\r\n"];
        for value in values {
            let mut line = String::from("CEF:0|V|P|1|id|n|5|");
            let mut ext = Extension::new();
            ext.push(KEY, Some(value));
            ext.push(CS1, Some(value));
            ext.encode(&mut line);
            let record = parse_cef(&line).expect("record parses");
            assert_eq!(record.get("msg"), Some(value), "{value:?}");
            assert_eq!(record.get("cs1"), Some(value), "{value:?}");
        }
    }
}
