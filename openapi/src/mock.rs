//! Mock responses: what an operation would answer, read from its description.
//!
//! For each response (status) and media type: the media type's named `examples`, else its
//! `example`, else the schema's `example` (or 3.1 `examples`), else a minimal value made
//! from the schema (types, formats, `enum`, `const`, `default`, `required`, bounds, simple
//! `pattern`s, `allOf`/`oneOf`/`anyOf`, `nullable`), with recursive schemas cut at a bounded
//! depth. Bodies are rendered as text once, here, so the gateway only picks one.
//!
//! JSON media types (`application/json`, `*+json`) get the value as JSON; `text/*` and
//! others get a string value as it is; XML media types get a string example as it is and
//! are otherwise rendered from the value with the schema's `xml` hints (element names,
//! attributes, wrapped arrays). A media type that cannot be rendered (a binary body without
//! a string example) is left out, so the gateway answers 406 for it rather than a lie.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Map, Number, Value};

use crate::document::ImportError;
use crate::refs;

/// `$ref`s followed on one path of generation before a schema is cut to its minimum.
const MAX_REF_DEPTH: usize = 6;
/// Nesting of a generated value, refs or not.
const MAX_DEPTH: usize = 24;
/// Values one generated body may hold; past it, arrays and optional properties stay empty.
const MAX_NODES: usize = 2_000;
/// Past this many, even required properties and `minItems` are cut: a hard bound on what a
/// document can make one body cost (50 required properties, each the next schema, six deep).
const HARD_MAX_NODES: usize = 4 * MAX_NODES;
/// The longest generated string, whatever `minLength` or a pattern's quantifiers ask.
const MAX_SAMPLE_TEXT: usize = 1_024;

/// Where an operation's default answer comes from, as the admin UI shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MockSource {
    /// An example written in the document.
    Example,
    /// Made from the response's schema: the document has no example.
    Generated,
    /// The response has no body (or no schema and no example): an empty body.
    Empty,
}

/// One operation's mocked responses.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationMock {
    /// Upper-case.
    pub method: String,
    /// The path template, as the document writes it.
    pub path: String,
    /// In status order (`200` < `2XX` < … < `default`).
    pub responses: Vec<ResponseMock>,
}

impl OperationMock {
    /// Where the answer to a request without `Prefer` comes from: the lowest 2xx response,
    /// else `default`, else the lowest status the document gives (the gateway's rule).
    pub fn default_source(&self) -> MockSource {
        let pick = self
            .responses
            .iter()
            .find(|r| r.status.starts_with('2'))
            .or_else(|| self.responses.iter().find(|r| r.status == "default"))
            .or_else(|| self.responses.first());
        match pick {
            None => MockSource::Empty,
            Some(response) => response.source(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResponseMock {
    /// `200`, `4XX` or `default`.
    pub status: String,
    pub content: Vec<ContentMock>,
}

impl ResponseMock {
    /// The best source among its media types.
    pub fn source(&self) -> MockSource {
        if self.content.iter().any(|c| c.source == MockSource::Example) {
            MockSource::Example
        } else if self.content.iter().any(|c| c.source == MockSource::Generated) {
            MockSource::Generated
        } else {
            MockSource::Empty
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContentMock {
    pub media_type: String,
    pub source: MockSource,
    /// Rendered bodies, the default first; a name for each named example.
    pub examples: Vec<(Option<String>, String)>,
}

/// The mocked responses of every operation of a document `parse` accepted (2.0 included).
pub fn mock_operations(source: &str) -> Result<Vec<OperationMock>, ImportError> {
    let doc = crate::import::document3(source)?;
    let mut out = Vec::new();
    for (path, method, operation) in refs::operations(&doc) {
        let Value::Object(operation) = operation else { continue };
        let mut responses = Vec::new();
        if let Some(Value::Object(declared)) = operation.get("responses") {
            for (status, response) in declared {
                if status_is_valid(status) {
                    let Ok((response, _)) = refs::follow(&doc, response, "") else { continue };
                    responses.push(response_mock(&doc, status, response));
                }
            }
        }
        responses.sort_by_key(|r| status_rank(&r.status));
        out.push(OperationMock { method: method.to_ascii_uppercase(), path: path.clone(), responses });
    }
    Ok(out)
}

/// `200`, `4XX` or `default` (anything else in `responses` is an extension or a mistake).
fn status_is_valid(status: &str) -> bool {
    let b = status.as_bytes();
    status == "default"
        || (b.len() == 3
            && (b'1'..=b'5').contains(&b[0])
            && (b[1..].iter().all(u8::is_ascii_digit) || b[1..].eq_ignore_ascii_case(b"XX")))
}

/// `200` before `201` before `2XX` before `300` …, `default` last.
fn status_rank(status: &str) -> (u8, u8, u16) {
    let first = status.as_bytes().first().copied().unwrap_or(b'9');
    match status.parse::<u16>() {
        Ok(code) => (first, 0, code),
        Err(_) if status == "default" => (b'9', 9, 0),
        Err(_) => (first, 1, 0),
    }
}

fn response_mock(doc: &Value, status: &str, response: &Value) -> ResponseMock {
    let mut content = Vec::new();
    if let Some(Value::Object(media)) = response.get("content") {
        for (media_type, entry) in media {
            if let Some(mock) = content_mock(doc, media_type, entry) {
                content.push(mock);
            }
        }
    }
    // JSON first: the default when a client accepts anything.
    content.sort_by_key(|c| !is_json(&c.media_type));
    ResponseMock { status: status.to_owned(), content }
}

fn content_mock(doc: &Value, media_type: &str, entry: &Value) -> Option<ContentMock> {
    let schema = entry.get("schema");
    let mut values: Vec<(Option<String>, Value)> = Vec::new();
    if let Some(Value::Object(examples)) = entry.get("examples") {
        for (name, example) in examples {
            let Ok((example, _)) = refs::follow(doc, example, "") else { continue };
            if let Some(value) = example.get("value") {
                values.push((Some(name.clone()), value.clone()));
            }
        }
    }
    if values.is_empty()
        && let Some(example) = entry.get("example")
    {
        values.push((None, example.clone()));
    }
    let mut source = MockSource::Example;
    if values.is_empty() {
        match schema {
            Some(schema) => {
                let mut generator = Generator { doc, nodes: 0 };
                let (value, from_example) = generator.value(schema, 0, 0);
                source = if from_example { MockSource::Example } else { MockSource::Generated };
                values.push((None, value));
            }
            None => {
                return Some(ContentMock {
                    media_type: media_type.to_owned(),
                    source: MockSource::Empty,
                    examples: vec![(None, String::new())],
                });
            }
        }
    }
    let examples: Vec<(Option<String>, String)> =
        values.into_iter().filter_map(|(name, value)| Some((name, render(doc, media_type, schema, &value)?))).collect();
    (!examples.is_empty()).then(|| ContentMock { media_type: media_type.to_owned(), source, examples })
}

fn essence(media_type: &str) -> String {
    media_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

fn is_json(media_type: &str) -> bool {
    let essence = essence(media_type);
    essence == "application/json" || essence.ends_with("+json") || essence == "*/*"
}

fn is_xml(media_type: &str) -> bool {
    let essence = essence(media_type);
    essence == "application/xml" || essence == "text/xml" || essence.ends_with("+xml")
}

/// The body a media type gets for `value`; `None` when it cannot be rendered honestly.
fn render(doc: &Value, media_type: &str, schema: Option<&Value>, value: &Value) -> Option<String> {
    if is_json(media_type) {
        return serde_json::to_string_pretty(value).ok();
    }
    if let Value::String(text) = value {
        return Some(text.clone());
    }
    if is_xml(media_type) {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        xml::element(doc, schema, None, value, &mut out, 0);
        return Some(out);
    }
    let essence = essence(media_type);
    if essence.starts_with("text/") {
        return Some(match value {
            Value::Null => String::new(),
            other => other.to_string(),
        });
    }
    None
}

struct Generator<'d> {
    doc: &'d Value,
    nodes: usize,
}

impl<'d> Generator<'d> {
    /// A value for `schema`, and whether it came from an example written in the document.
    fn value(&mut self, schema: &'d Value, refs_followed: usize, depth: usize) -> (Value, bool) {
        self.nodes += 1;
        if self.nodes > HARD_MAX_NODES {
            return (Value::Null, false);
        }
        let (schema, refs_followed) = match self.follow(schema, refs_followed) {
            Some(found) => found,
            None => return (Value::Null, false),
        };
        let Value::Object(s) = schema else { return (Value::Null, false) };
        if let Some(example) = s.get("example") {
            return (example.clone(), true);
        }
        if let Some(Value::Array(examples)) = s.get("examples")
            && let Some(first) = examples.first()
        {
            return (first.clone(), true);
        }
        if let Some(value) = s.get("const") {
            return (value.clone(), false);
        }
        if let Some(value) = s.get("default") {
            return (value.clone(), false);
        }
        if let Some(Value::Array(values)) = s.get("enum")
            && let Some(first) = values.iter().find(|v| !v.is_null()).or(values.first())
        {
            return (first.clone(), false);
        }
        if depth >= MAX_DEPTH {
            return (Value::Null, false);
        }
        if let Some(Value::Array(parts)) = s.get("allOf") {
            let mut merged = Map::new();
            let mut any = false;
            let mut other = None;
            for part in parts {
                let (value, example) = self.value(part, refs_followed, depth + 1);
                any |= example;
                match value {
                    Value::Object(fields) => merged.extend(fields),
                    value => other = Some(value),
                }
            }
            let own = self.typed(s, refs_followed, depth);
            if let Value::Object(fields) = own {
                merged.extend(fields);
            }
            return match other {
                Some(value) if merged.is_empty() => (value, any),
                _ => (Value::Object(merged), any),
            };
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(Value::Array(variants)) = s.get(key)
                && let Some(first) = variants.iter().find(|v| !is_null_schema(v)).or(variants.first())
            {
                return self.value(first, refs_followed, depth + 1);
            }
        }
        (self.typed(s, refs_followed, depth), false)
    }

    /// Follows `$ref`s; `None` once too many were followed on this path (recursion).
    fn follow(&self, mut schema: &'d Value, mut refs_followed: usize) -> Option<(&'d Value, usize)> {
        for _ in 0..32 {
            let Some(Value::String(reference)) = schema.get("$ref") else { return Some((schema, refs_followed)) };
            if refs_followed >= MAX_REF_DEPTH {
                return None;
            }
            schema = refs::resolve(self.doc, reference, "").ok()?.0;
            refs_followed += 1;
        }
        None
    }

    fn typed(&mut self, s: &'d Map<String, Value>, refs_followed: usize, depth: usize) -> Value {
        let types: Vec<&str> = match s.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let kind = types.iter().copied().find(|t| *t != "null").or(types.first().copied());
        let kind = kind.unwrap_or(if s.contains_key("properties") {
            "object"
        } else if s.contains_key("items") {
            "array"
        } else if s.get("nullable") == Some(&Value::Bool(true)) {
            "null"
        } else {
            ""
        });
        match kind {
            "null" => Value::Null,
            "boolean" => Value::Bool(true),
            "integer" => Value::Number(Number::from(integer(s))),
            "number" => Number::from_f64(number(s)).map_or(Value::Null, Value::Number),
            "string" => Value::String(string(s)),
            "array" => {
                let min = s.get("minItems").and_then(Value::as_u64).unwrap_or(0) as usize;
                let max = s.get("maxItems").and_then(Value::as_u64).map_or(usize::MAX, |m| m as usize);
                let wanted = if self.nodes > MAX_NODES || refs_followed >= MAX_REF_DEPTH { min } else { min.max(1) };
                let count = wanted.min(max).min(16);
                let mut items = Vec::with_capacity(count);
                if let Some(item) = s.get("items") {
                    for _ in 0..count {
                        items.push(self.value(item, refs_followed, depth + 1).0);
                    }
                } else {
                    items.resize(count, Value::String("string".into()));
                }
                Value::Array(items)
            }
            "object" | "" => {
                let mut object = Map::new();
                let required: Vec<&str> = match s.get("required") {
                    Some(Value::Array(names)) => names.iter().filter_map(Value::as_str).collect(),
                    _ => Vec::new(),
                };
                let lean = self.nodes > MAX_NODES || refs_followed >= MAX_REF_DEPTH - 1;
                if let Some(Value::Object(properties)) = s.get("properties") {
                    for (name, property) in properties {
                        let needed = required.contains(&name.as_str());
                        if !needed && (lean || write_only(self.doc, property)) {
                            continue;
                        }
                        object.insert(name.clone(), self.value(property, refs_followed, depth + 1).0);
                    }
                }
                if object.is_empty()
                    && !lean
                    && let Some(extra @ Value::Object(_)) = s.get("additionalProperties")
                {
                    object.insert("additionalProp1".into(), self.value(extra, refs_followed, depth + 1).0);
                }
                Value::Object(object)
            }
            _ => Value::Null,
        }
    }
}

fn is_null_schema(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("null")
}

fn write_only(doc: &Value, schema: &Value) -> bool {
    let schema = match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => refs::resolve(doc, reference, "").map(|(s, _)| s).unwrap_or(schema),
        None => schema,
    };
    schema.get("writeOnly") == Some(&Value::Bool(true))
}

/// Inclusive bounds `(lower, upper)` from 3.0's and 3.1's keywords alike (exclusive ones
/// moved in by one, which suits integers and is inside the range for numbers).
fn bounds(s: &Map<String, Value>) -> (Option<f64>, Option<f64>) {
    let mut low = s.get("minimum").and_then(Value::as_f64);
    let mut high = s.get("maximum").and_then(Value::as_f64);
    let step = 1.0;
    match s.get("exclusiveMinimum") {
        Some(Value::Bool(true)) => low = low.map(|l| l + step),
        Some(Value::Number(n)) => low = n.as_f64().map(|l| l + step),
        _ => {}
    }
    match s.get("exclusiveMaximum") {
        Some(Value::Bool(true)) => high = high.map(|h| h - step),
        Some(Value::Number(n)) => high = n.as_f64().map(|h| h - step),
        _ => {}
    }
    (low, high)
}

pub(crate) fn integer(s: &Map<String, Value>) -> i64 {
    let (low, high) = bounds(s);
    let mut value = 0f64;
    if let Some(low) = low {
        value = value.max(low.ceil());
    }
    if let Some(high) = high {
        value = value.min(high.floor());
    }
    if let Some(step) = s.get("multipleOf").and_then(Value::as_f64).filter(|m| *m >= 1.0) {
        value = (value / step).ceil() * step;
    }
    value as i64
}

pub(crate) fn number(s: &Map<String, Value>) -> f64 {
    let (low, high) = bounds(s);
    let mut value = 0f64;
    if let Some(low) = low {
        value = value.max(low);
    }
    if let Some(high) = high {
        value = value.min(high);
    }
    value
}

pub(crate) fn string(s: &Map<String, Value>) -> String {
    let format = s.get("format").and_then(Value::as_str).unwrap_or("");
    let base = match format {
        "date-time" => "2026-01-01T00:00:00Z".to_owned(),
        "date" => "2026-01-01".to_owned(),
        "time" => "00:00:00Z".to_owned(),
        "email" => "user@example.com".to_owned(),
        "uuid" => "00000000-0000-4000-8000-000000000000".to_owned(),
        "uri" | "url" | "iri" => "https://example.com/".to_owned(),
        "hostname" => "example.com".to_owned(),
        "ipv4" => "192.0.2.1".to_owned(),
        "ipv6" => "2001:db8::1".to_owned(),
        "byte" => "c3RyaW5n".to_owned(),
        "binary" => String::new(),
        _ => match s.get("pattern").and_then(Value::as_str).and_then(pattern::sample) {
            Some(sample) => return sample,
            None => "string".to_owned(),
        },
    };
    let min = s.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
    let max = s.get("maxLength").and_then(Value::as_u64).map_or(usize::MAX, |m| m as usize);
    let mut text = base;
    let length = text.chars().count();
    if length < min {
        text.extend(std::iter::repeat_n('x', min.min(MAX_SAMPLE_TEXT).saturating_sub(length)));
    }
    if text.chars().count() > max {
        text = text.chars().take(max).collect();
    }
    text
}

/// A sample for simple regular expressions: literals, escapes (`\d`, `\w`, `\s`), classes
/// (`[a-z0-9]`), groups of one alternative, and quantifiers; `None` for anything else.
mod pattern {
    pub(super) fn sample(pattern: &str) -> Option<String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut out = String::new();
        let mut i = 0;
        let mut last_start = 0;
        while i < chars.len() {
            let c = chars[i];
            match c {
                '^' | '$' => {
                    i += 1;
                    continue;
                }
                '\\' => {
                    let next = *chars.get(i + 1)?;
                    last_start = out.len();
                    out.push(match next {
                        'd' => '0',
                        'w' => 'a',
                        's' => ' ',
                        'D' | 'W' | 'S' => return None,
                        other if other.is_ascii_alphanumeric() => return None,
                        other => other,
                    });
                    i += 2;
                }
                '[' => {
                    let end = chars[i..].iter().position(|&c| c == ']')? + i;
                    let class = &chars[i + 1..end];
                    if class.first() == Some(&'^') || class.is_empty() {
                        return None;
                    }
                    last_start = out.len();
                    out.push(if class[0] == '\\' {
                        if class.get(1) == Some(&'d') { '0' } else { 'a' }
                    } else {
                        class[0]
                    });
                    i = end + 1;
                }
                '(' | ')' | '|' | '.' => return None,
                '{' => {
                    let end = chars[i..].iter().position(|&c| c == '}')? + i;
                    let spec: String = chars[i + 1..end].iter().collect();
                    let min: usize = spec.split(',').next()?.trim().parse().ok()?;
                    let unit: String = out[last_start..].to_owned();
                    out.truncate(last_start);
                    for _ in 0..min.min(64) {
                        out.push_str(&unit);
                    }
                    // A quantifier after this one repeats nothing more (`a{64}{64}` is not
                    // 64² letters), and the sample stays short.
                    last_start = out.len();
                    if out.len() > super::MAX_SAMPLE_TEXT {
                        return None;
                    }
                    i = end + 1;
                }
                '*' | '?' => {
                    out.truncate(last_start);
                    i += 1;
                }
                '+' => i += 1,
                other => {
                    last_start = out.len();
                    out.push(other);
                    i += 1;
                }
            }
        }
        Some(out)
    }
}

/// XML from a value and the schema's `xml` hints (name, attribute, wrapped).
mod xml {
    use super::*;

    fn resolved<'d>(doc: &'d Value, schema: Option<&'d Value>) -> (Option<&'d Value>, Option<String>) {
        let Some(mut schema) = schema else { return (None, None) };
        let mut name = None;
        for _ in 0..8 {
            match schema.get("$ref").and_then(Value::as_str) {
                Some(reference) => {
                    name = reference.rsplit('/').next().map(str::to_owned);
                    match refs::resolve(doc, reference, "") {
                        Ok((target, _)) => schema = target,
                        Err(_) => return (None, name),
                    }
                }
                None => break,
            }
        }
        (Some(schema), name)
    }

    fn hint<'a>(schema: Option<&'a Value>, key: &str) -> Option<&'a Value> {
        schema?.get("xml")?.get(key)
    }

    fn escape(text: &str, out: &mut String) {
        for c in text.chars() {
            match c {
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '&' => out.push_str("&amp;"),
                '"' => out.push_str("&quot;"),
                c => out.push(c),
            }
        }
    }

    fn scalar(value: &Value) -> String {
        match value {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        }
    }

    /// Writes `value` as one element (or, for an unwrapped array, one element per item).
    pub(super) fn element(
        doc: &Value,
        schema: Option<&Value>,
        name: Option<&str>,
        value: &Value,
        out: &mut String,
        depth: usize,
    ) {
        let (schema, ref_name) = resolved(doc, schema);
        let name = hint(schema, "name")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| name.map(str::to_owned))
            .or(ref_name)
            .unwrap_or_else(|| "root".to_owned());
        if depth > MAX_DEPTH {
            return;
        }
        match value {
            Value::Array(items) => {
                let item_schema = schema.and_then(|s| s.get("items"));
                let wrapped = depth == 0 || hint(schema, "wrapped") == Some(&Value::Bool(true));
                if wrapped {
                    let _ = write!(out, "<{name}>");
                }
                for item in items {
                    let item_name = if wrapped { None } else { Some(name.as_str()) };
                    element(doc, item_schema, item_name, item, out, depth + 1);
                }
                if wrapped {
                    let _ = write!(out, "</{name}>");
                }
            }
            Value::Object(fields) => {
                let properties = schema.and_then(|s| s.get("properties"));
                let property = |key: &str| properties.and_then(|p| p.get(key));
                let _ = write!(out, "<{name}");
                let mut children = BTreeMap::new();
                for (key, field) in fields {
                    let (field_schema, _) = resolved(doc, property(key));
                    if hint(field_schema, "attribute") == Some(&Value::Bool(true)) {
                        let attribute = hint(field_schema, "name").and_then(Value::as_str).unwrap_or(key);
                        let _ = write!(out, " {attribute}=\"");
                        escape(&scalar(field), out);
                        out.push('"');
                    } else {
                        children.insert(key.clone(), field);
                    }
                }
                out.push('>');
                for (key, field) in children {
                    element(doc, property(&key), Some(&key), field, out, depth + 1);
                }
                let _ = write!(out, "</{name}>");
            }
            other => {
                let _ = write!(out, "<{name}>");
                escape(&scalar(other), out);
                let _ = write!(out, "</{name}>");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_patterns_get_a_matching_sample() {
        assert_eq!(pattern::sample("^[a-z]{3}-\\d{2}$").as_deref(), Some("aaa-00"));
        assert_eq!(pattern::sample("^ab+c?$").as_deref(), Some("ab"));
        assert_eq!(pattern::sample("^(a|b)$"), None);
        // Quantifiers on quantifiers repeat once, and a sample stays short.
        assert_eq!(pattern::sample("a{3}{3}").as_deref(), Some("aaa"));
        assert_eq!(pattern::sample("a{64}{64}{64}{64}{64}{64}").map(|s| s.len()), Some(64));
        assert_eq!(pattern::sample(&"x{64}".repeat(17)), None, "over 1,024 characters");
    }

    #[test]
    fn what_a_schema_asks_for_is_bounded() {
        let schema = |s: Value| s.as_object().expect("object").clone();
        let long = string(&schema(serde_json::json!({"type": "string", "minLength": 2_000_000_000u64})));
        assert_eq!(long.len(), MAX_SAMPLE_TEXT);
        // 16 items of 16 items … 8 levels deep, all required: 16⁸ values unbounded.
        let mut nested = serde_json::json!({"type": "integer"});
        for _ in 0..8 {
            nested = serde_json::json!({"type": "array", "minItems": 16, "items": nested});
        }
        let doc = serde_json::json!({});
        let mut generator = Generator { doc: &doc, nodes: 0 };
        let value = generator.value(&nested, 0, 0).0;
        fn count(v: &Value) -> usize {
            match v {
                Value::Array(items) => 1 + items.iter().map(count).sum::<usize>(),
                _ => 1,
            }
        }
        assert!(count(&value) <= HARD_MAX_NODES + 16 * 8, "{}", count(&value));
    }

    #[test]
    fn statuses_sort_exact_then_class_then_default() {
        let mut statuses = vec!["default", "404", "2XX", "200", "201"];
        statuses.sort_by_key(|s| status_rank(s));
        assert_eq!(statuses, ["200", "201", "2XX", "404", "default"]);
    }
}
