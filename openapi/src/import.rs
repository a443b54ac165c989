//! Reading an OpenAPI document into the operations Tollgate meters and the
//! model the breaking-change detector compares.
//!
//! The original text is kept byte for byte elsewhere (the portal renders
//! it); this module only reads it. Swagger 2.0 is converted to OpenAPI 3.0
//! on `serde_json::Value` (`convert`), then one builder (`model`) reads 3.0
//! and 3.1 alike. 3.0 documents are additionally checked against the typed
//! `openapiv3` model. Only local `$ref`s are followed (`refs`).
//!
//! Hostile input: the size is capped before parsing, nesting is capped
//! while reading (JSON and YAML), YAML alias expansion is capped by a
//! budget of values, and schema expansion by a budget of nodes. Every
//! error names a JSON pointer and, where it can be found, a line.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::document::{ImportError, pointer_of, unescape_segment};
use crate::locate::{self, KeySeed};
use crate::model::{self, ApiModel};
use crate::{convert, refs};

/// Larger documents are refused before parsing so a hostile upload cannot
/// exhaust memory. Real-world specs run to a few MB.
pub const MAX_SPEC_BYTES: usize = 16 * 1024 * 1024;

/// Nesting depth of the document text (objects and arrays), below the
/// parsers' own limit of 128 so the message is ours.
pub const MAX_NESTING: usize = 120;

/// Flow collections (`[`/`{`) the YAML pre-scan lets through to the parser,
/// whose time grows with the square of their nesting. Anything past
/// `MAX_NESTING` is refused anyway; this only keeps refusing it cheap.
const MAX_FLOW_NESTING: usize = 1000;

/// Values a document may read into beyond one per byte: YAML aliases can
/// otherwise turn a small text into an enormous tree.
const EXTRA_VALUES: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecFormat {
    Json,
    Yaml,
}

impl SpecFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            SpecFormat::Json => "json",
            SpecFormat::Yaml => "yaml",
        }
    }
}

/// One HTTP operation of the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// Upper-case HTTP method.
    pub method: String,
    /// The path template as written, e.g. `/pets/{petId}`.
    pub path: String,
    pub operation_id: Option<String>,
    pub summary: Option<String>,
}

/// What import needs from a document.
#[derive(Debug, Clone)]
pub struct ParsedSpec {
    pub format: SpecFormat,
    /// `2.0`, `3.0.x` or `3.1.x`, as the document declares.
    pub spec_version: String,
    pub title: String,
    pub version_label: String,
    pub description: String,
    /// In document order (paths sorted, then methods in a fixed order).
    pub operations: Vec<Operation>,
    /// The version-independent model, for `diff::compare`.
    pub model: ApiModel,
}

/// Parses JSON or YAML text and extracts its operations and model.
pub fn parse(source: &str) -> Result<ParsedSpec, ImportError> {
    if source.len() > MAX_SPEC_BYTES {
        return Err(ImportError::at(
            "",
            format!("the document is {} bytes; the limit is {MAX_SPEC_BYTES} bytes", source.len()),
        ));
    }
    let text = source.strip_prefix('\u{feff}').unwrap_or(source);
    if let Some(at) = text.find('\0') {
        let line = text[..at].matches('\n').count() + 1;
        return Err(ImportError { pointer: String::new(), line: Some(line), message: NUL.into() });
    }
    let format = parse_format(text);
    let doc = read(text, format)?;
    // Decoded, a NUL comes only from an escape (JSON `\u0000`, YAML `\0`, `\x00`,
    // `\U00000000`): a document with none is not walked a second time.
    let escaped = ["\\u0000", "\\0", "\\x00", "\\U00000000"].iter().any(|escape| text.contains(escape));
    if let Some(pointer) = escaped.then(|| nul_in(&doc, &mut String::new())).flatten() {
        let line = line_of(text, format, &doc, &pointer);
        return Err(ImportError { pointer, line, message: NUL.into() });
    }
    interpret(&doc, format).map_err(|mut e| {
        // The root has no useful line; anything inside does.
        if e.line.is_none() && !e.pointer.is_empty() {
            e.line = line_of(text, format, &doc, &e.pointer);
        }
        e
    })
}

/// Postgres stores no NUL in text: a name, title or description holding one (a JSON `\u0000`
/// or YAML `\0` escape) is refused here, not failed on when stored.
const NUL: &str = "holds a NUL character, which cannot be stored; remove it";

/// The pointer of the first key or string of `value` holding a NUL.
fn nul_in(value: &Value, at: &mut String) -> Option<String> {
    match value {
        Value::String(text) if text.contains('\0') => Some(at.clone()),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            let len = at.len();
            at.push_str(&format!("/{i}"));
            let found = nul_in(item, at);
            at.truncate(len);
            found
        }),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            let len = at.len();
            at.push('/');
            at.push_str(&crate::document::pointer_segment(key));
            let found = if key.contains('\0') { Some(at.clone()) } else { nul_in(item, at) };
            at.truncate(len);
            found
        }),
        _ => None,
    }
}

/// The format `parse` reads a text in: JSON if it opens with a bracket.
pub(crate) fn parse_format(text: &str) -> SpecFormat {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') { SpecFormat::Json } else { SpecFormat::Yaml }
}

/// Reads a document `parse` accepted before (a stored version), without
/// `parse`'s typed OpenAPI 3.0 check, which it passed then; the model is
/// the same. Staging compares two such documents, and the check is a third
/// of the time of reading a large one.
pub fn reparse(source: &str) -> Result<ParsedSpec, ImportError> {
    let text = source.strip_prefix('\u{feff}').unwrap_or(source);
    let format = if text.trim_start().starts_with('{') { SpecFormat::Json } else { SpecFormat::Yaml };
    interpret_checked(&read(text, format)?, format, false)
}

/// The document as OpenAPI 3.x (2.0 converted), for readers of what the model leaves out
/// (examples, bounds, `xml`: the mocks); its references were checked when it was stored.
pub(crate) fn document3(source: &str) -> Result<Value, ImportError> {
    let text = source.strip_prefix('\u{feff}').unwrap_or(source);
    let format = if text.trim_start().starts_with('{') { SpecFormat::Json } else { SpecFormat::Yaml };
    let doc = read(text, format)?;
    refs::check_all(&doc)?;
    if doc.get("swagger").and_then(Value::as_str) == Some("2.0") {
        convert::swagger2_to_openapi30(&doc)
    } else {
        Ok(doc)
    }
}

fn interpret(doc: &Value, format: SpecFormat) -> Result<ParsedSpec, ImportError> {
    interpret_checked(doc, format, true)
}

fn interpret_checked(doc: &Value, format: SpecFormat, typed_check: bool) -> Result<ParsedSpec, ImportError> {
    let Value::Object(root) = doc else {
        return Err(ImportError::at("", "the document must be an object with `openapi` or `swagger` at the top"));
    };
    let spec_version = match (root.get("openapi"), root.get("swagger")) {
        (Some(Value::String(v)), _) if v.starts_with("3.0") || v.starts_with("3.1") => v.clone(),
        (Some(Value::String(v)), _) => {
            return Err(ImportError::at(
                "/openapi",
                format!("OpenAPI version {v} is not supported; use 3.0.x or 3.1.x (or Swagger `swagger: \"2.0\"`)"),
            ));
        }
        (_, Some(Value::String(v))) if v == "2.0" => v.clone(),
        (_, Some(v)) => {
            return Err(ImportError::at("/swagger", format!("Swagger version {v} is not supported; use 2.0")));
        }
        (Some(_), _) => return Err(ImportError::at("/openapi", "must be a string such as \"3.0.3\"")),
        (None, None) => {
            return Err(ImportError::at("", "not an OpenAPI document: neither `openapi` nor `swagger` is present"));
        }
    };
    let info = root
        .get("info")
        .and_then(Value::as_object)
        .ok_or_else(|| ImportError::at("/info", "is required and must be an object"))?;
    let title = match info.get("title") {
        Some(Value::String(t)) if !t.trim().is_empty() => t.trim().to_owned(),
        _ => return Err(ImportError::at("/info/title", "is required and must be a non-empty string")),
    };
    let version_label = info.get("version").map(scalar_text).unwrap_or_default();
    let description = info.get("description").and_then(Value::as_str).unwrap_or_default().to_owned();

    // References are checked on the document as written, so errors point
    // into it even for 2.0 documents, which are converted next.
    refs::check_all(doc)?;
    let converted;
    let doc3 = if spec_version == "2.0" {
        converted = convert::swagger2_to_openapi30(doc)?;
        &converted
    } else {
        doc
    };
    let (model, order) = model::build(doc3, &spec_version)?;
    if typed_check && spec_version.starts_with("3.0") {
        check_openapi_30(doc)?;
    }
    let operations = order
        .iter()
        .filter_map(|key| model.operations.get(key))
        .map(|op| Operation {
            method: op.method.clone(),
            path: op.path.clone(),
            operation_id: op.operation_id.clone(),
            summary: op.summary.clone(),
        })
        .collect();
    Ok(ParsedSpec { format, spec_version, title, version_label, description, operations, model })
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn check_openapi_30(doc: &Value) -> Result<(), ImportError> {
    use serde::Deserialize;
    // `version: 1.0` in YAML is a number; openapiv3 insists on a string,
    // and so many documents do this that refusing them helps nobody. Only
    // then is the document copied (a large one takes a while to copy).
    let fixed;
    let doc = match doc.pointer("/info/version") {
        Some(version @ (Value::Number(_) | Value::Bool(_))) => {
            let mut copy = doc.clone();
            if let Some(slot) = copy.pointer_mut("/info/version") {
                *slot = Value::String(version.to_string());
            }
            fixed = copy;
            &fixed
        }
        _ => doc,
    };
    openapiv3::OpenAPI::deserialize(doc)
        .map(|_| ())
        .map_err(|e| ImportError::at("", format!("not a valid OpenAPI 3.0 document: {e}")))
}

// ---- Reading text into a `Value`, with limits and locations ----

/// State shared by the seeds while reading: where we are (for error
/// pointers), how deep, and how many values so far.
struct Reader {
    path: Vec<String>,
    depth: usize,
    values: usize,
    max_values: usize,
    yaml: bool,
    /// The message of a limit we enforced, without the parser's decoration.
    failure: Option<String>,
}

fn read(text: &str, format: SpecFormat) -> Result<Value, ImportError> {
    if let Some(line) = (format == SpecFormat::Yaml).then(|| deep_flow_line(text)).flatten() {
        return Err(ImportError {
            pointer: String::new(),
            line: Some(line),
            message: format!("invalid YAML: flow collections are nested more than {MAX_FLOW_NESTING} levels deep"),
        });
    }
    let mut reader = Reader {
        path: Vec::new(),
        depth: 0,
        values: 0,
        // Every value and every 8 bytes of text it holds: without aliases, at most about
        // 1.2 times the text's length.
        max_values: text.len().saturating_mul(2) + EXTRA_VALUES,
        yaml: format == SpecFormat::Yaml,
        failure: None,
    };
    let result = match format {
        SpecFormat::Json => {
            let mut de = serde_json::Deserializer::from_str(text);
            ValueSeed(&mut reader)
                .deserialize(&mut de)
                .and_then(|v| de.end().map(|()| v))
                .map_err(|e| (Some(e.line()).filter(|l| *l > 0), e.to_string()))
        }
        SpecFormat::Yaml => ValueSeed(&mut reader).deserialize(yaml_serde::Deserializer::from_str(text)).map_err(|e| {
            let hint = if e.to_string().contains("repetition limit exceeded") {
                " (YAML aliases expand to too much)"
            } else {
                ""
            };
            (e.location().map(|l| l.line()), format!("{e}{hint}"))
        }),
    };
    result.map_err(|(line, message)| ImportError {
        pointer: pointer_of(&reader.path),
        line,
        // Our own limits say it plainly; the parsers' messages repeat the path.
        message: format!("invalid {}: {}", format.as_str().to_ascii_uppercase(), reader.failure.unwrap_or(message)),
    })
}

/// The line where `[`/`{` flow collections first nest deeper than
/// `MAX_FLOW_NESTING`, by a linear scan that follows YAML just enough: a
/// bracket opens a collection at the start of a value (after `: `, `- `,
/// `? `, `,`, a bracket, an anchor or tag, or at the start of a line) or
/// anywhere inside a collection; quoted scalars, comments and block
/// scalars are skipped. It may count a stray bracket in a plain scalar,
/// which only matters a thousand times over.
fn deep_flow_line(text: &str) -> Option<usize> {
    #[derive(PartialEq)]
    enum Quote {
        None,
        Single,
        Double,
    }
    let mut depth = 0usize;
    let mut quote = Quote::None;
    let mut block_scalar: Option<usize> = None;
    for (index, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        if let Some(base) = block_scalar {
            if line.trim().is_empty() || indent > base {
                continue;
            }
            block_scalar = None;
        }
        let mut value_start = true;
        let mut chars = line.chars().peekable();
        let mut previous = ' ';
        while let Some(c) = chars.next() {
            match quote {
                Quote::Double => {
                    if c == '\\' {
                        chars.next();
                    } else if c == '"' {
                        quote = Quote::None;
                    }
                }
                Quote::Single => {
                    if c == '\'' {
                        if chars.peek() == Some(&'\'') {
                            chars.next();
                        } else {
                            quote = Quote::None;
                        }
                    }
                }
                Quote::None => match c {
                    '#' if previous == ' ' || previous == '\t' => break,
                    '[' | '{' if value_start || depth > 0 => {
                        depth += 1;
                        if depth > MAX_FLOW_NESTING {
                            return Some(index + 1);
                        }
                        value_start = true;
                    }
                    ']' | '}' => {
                        depth = depth.saturating_sub(1);
                        value_start = false;
                    }
                    ',' if depth > 0 => value_start = true,
                    '"' if value_start => quote = Quote::Double,
                    '\'' if value_start => quote = Quote::Single,
                    '|' | '>' if value_start && depth == 0 => {
                        block_scalar = Some(indent);
                        break;
                    }
                    ':' | '-' | '?' if chars.peek().is_none_or(|n| *n == ' ' || *n == '\t') => value_start = true,
                    // An anchor or tag before a value keeps its place.
                    '&' | '!' if value_start => {
                        while chars.peek().is_some_and(|n| !n.is_whitespace() && !matches!(n, '[' | '{' | ',')) {
                            chars.next();
                        }
                    }
                    ' ' | '\t' => {}
                    _ => value_start = false,
                },
            }
            previous = c;
        }
    }
    None
}

struct ValueSeed<'r>(&'r mut Reader);

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor(self.0))
    }
}

struct ValueVisitor<'r>(&'r mut Reader);

impl ValueVisitor<'_> {
    fn fail<E: de::Error>(&mut self, message: String) -> E {
        let error = E::custom(&message);
        self.0.failure = Some(message);
        error
    }

    fn count<E: de::Error>(&mut self) -> Result<(), E> {
        self.count_text(0)
    }

    /// Counts a value holding `bytes` of text: a YAML alias of a long string copies all of it,
    /// so text weighs by its length (one value per 8 bytes), not as one value.
    fn count_text<E: de::Error>(&mut self, bytes: usize) -> Result<(), E> {
        self.0.values = self.0.values.saturating_add(1 + bytes / 8);
        if self.0.values > self.0.max_values {
            let message = format!(
                "the document expands to more than {} values (YAML aliases repeating large parts?)",
                self.0.max_values
            );
            return Err(self.fail(message));
        }
        Ok(())
    }

    fn enter<E: de::Error>(&mut self) -> Result<(), E> {
        self.count()?;
        self.0.depth += 1;
        if self.0.depth > MAX_NESTING {
            return Err(self.fail(format!("the document is nested more than {MAX_NESTING} levels deep")));
        }
        Ok(())
    }
}

impl<'de> Visitor<'de> for ValueVisitor<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON or YAML value")
    }

    fn visit_bool<E: de::Error>(mut self, v: bool) -> Result<Value, E> {
        self.count()?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(mut self, v: i64) -> Result<Value, E> {
        self.count()?;
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(mut self, v: u64) -> Result<Value, E> {
        self.count()?;
        Ok(Value::from(v))
    }

    #[allow(clippy::cast_precision_loss)] // beyond 64 bits, a float is the honest JSON reading
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        self.visit_f64(v as f64)
    }

    #[allow(clippy::cast_precision_loss)]
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        self.visit_f64(v as f64)
    }

    fn visit_f64<E: de::Error>(mut self, v: f64) -> Result<Value, E> {
        self.count()?;
        // JSON has no NaN or infinity (YAML `.nan`, `.inf`).
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(mut self, v: &str) -> Result<Value, E> {
        self.count_text(v.len())?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(mut self, v: String) -> Result<Value, E> {
        self.count_text(v.len())?;
        Ok(Value::String(v))
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Value, E> {
        Err(E::custom("binary values are not supported"))
    }

    fn visit_unit<E: de::Error>(mut self) -> Result<Value, E> {
        self.count()?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        ValueSeed(self.0).deserialize(d)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        ValueSeed(self.0).deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Value, A::Error> {
        self.enter()?;
        let mut out = Vec::new();
        loop {
            // Left on the path if reading fails, so the error is located.
            self.0.path.push(out.len().to_string());
            let Some(v) = seq.next_element_seed(ValueSeed(&mut *self.0))? else {
                self.0.path.pop();
                break;
            };
            self.0.path.pop();
            out.push(v);
        }
        self.0.depth -= 1;
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Value, A::Error> {
        self.enter()?;
        let mut out = Map::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            self.count_text(key.len())?;
            self.0.path.push(key.clone());
            if out.contains_key(&key) {
                return Err(self.fail(format!("duplicate key `{key}`")));
            }
            let v = map.next_value_seed(ValueSeed(&mut *self.0))?;
            self.0.path.pop();
            out.insert(key, v);
        }
        if self.0.yaml {
            merge_keys(&mut out);
        }
        self.0.depth -= 1;
        Ok(Value::Object(out))
    }

    /// A YAML tag (`!foo value`): the tag is dropped, the value kept.
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        let (_tag, variant): (String, _) = data.variant()?;
        de::VariantAccess::newtype_variant_seed(variant, ValueSeed(self.0))
    }
}

/// YAML merge keys (`<<: *base`): keys of the merged mappings that the
/// mapping does not set itself.
fn merge_keys(map: &mut Map<String, Value>) {
    let sources = match map.remove("<<") {
        Some(Value::Object(one)) => vec![one],
        Some(Value::Array(list)) if list.iter().all(Value::is_object) => {
            list.into_iter().filter_map(|v| if let Value::Object(m) = v { Some(m) } else { None }).collect()
        }
        Some(other) => {
            map.insert("<<".into(), other);
            return;
        }
        None => return,
    };
    for source in sources {
        for (k, v) in source {
            map.entry(k).or_insert(v);
        }
    }
}

/// The line of the node at `pointer` in a document `parse` accepted (or of its deepest
/// existing ancestor), for a problem its reader finds later (a path that cannot be a rule).
pub fn line_of_pointer(source: &str, pointer: &str) -> Option<usize> {
    let text = source.strip_prefix('\u{feff}').unwrap_or(source);
    let format = parse_format(text);
    let doc = read(text, format).ok()?;
    line_of(text, format, &doc, pointer)
}

/// The line of the node at `pointer` (or of its deepest existing
/// ancestor), found by `locate`.
fn line_of(text: &str, format: SpecFormat, doc: &Value, pointer: &str) -> Option<usize> {
    let mut segments: Vec<String> = match pointer.strip_prefix('/') {
        Some(rest) => rest.split('/').map(unescape_segment).collect(),
        None => Vec::new(),
    };
    while refs::lookup(doc, &segments).is_none() {
        segments.pop();
    }
    let position = match format {
        SpecFormat::Json => locate::json(text, &segments),
        SpecFormat::Yaml => locate::yaml(text, &segments),
    };
    position.map(|(line, _)| line)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PETSTORE_30: &str = r#"
openapi: 3.0.3
info: { title: Pets, version: "1.0" }
paths:
  /pets:
    get: { operationId: listPets, responses: { "200": { description: ok } } }
    post: { responses: { "201": { description: created } } }
  /pets/{id}:
    get: { operationId: showPet, responses: { "200": { description: ok } } }
"#;

    #[test]
    fn reads_operations_from_yaml_30() {
        let spec = parse(PETSTORE_30).expect("a value");
        assert_eq!(spec.format, SpecFormat::Yaml);
        assert_eq!(spec.title, "Pets");
        assert_eq!(spec.operations.len(), 3);
        assert!(spec.operations.iter().any(|o| o.method == "POST" && o.path == "/pets" && o.operation_id.is_none()));
    }

    #[test]
    fn reads_swagger_20_json() {
        let spec = parse(r#"{"swagger":"2.0","info":{"title":"T","version":"1"},"paths":{"/a":{"get":{"responses":{"200":{"description":"x"}}}}}}"#).expect("a value");
        assert_eq!(spec.spec_version, "2.0");
        assert_eq!(spec.operations.len(), 1);
    }

    #[test]
    fn flow_prescan_follows_yaml_far_enough() {
        let deep = |prefix: &str, open: &str| format!("{prefix}{}\n", open.repeat(MAX_FLOW_NESTING + 1));
        assert_eq!(deep_flow_line(&deep("a: ", "[")), Some(1));
        assert_eq!(deep_flow_line(&deep("a:\n  - ", "{b: ")), Some(2));
        assert_eq!(deep_flow_line(&deep("a: &x !!seq ", "[")), Some(1));
        // Brackets in scalars, comments and block scalars are text.
        assert_eq!(deep_flow_line(&deep("a: \"", "[")), None);
        assert_eq!(deep_flow_line(&deep("a: '", "{")), None);
        assert_eq!(deep_flow_line(&deep("a: b", "[")), None);
        assert_eq!(deep_flow_line(&deep("a: 1 # ", "[")), None);
        assert_eq!(deep_flow_line(&format!("a: |\n  {}\nb: 1\n", "[".repeat(MAX_FLOW_NESTING + 1))), None);
        assert_eq!(deep_flow_line(&format!("a: |\n  x\nb: {}\n", "[".repeat(MAX_FLOW_NESTING + 1))), Some(3));
    }

    #[test]
    fn nul_characters_are_refused_where_they_are() {
        let json = r#"{"openapi":"3.0.3","info":{"title":"A\u0000B","version":"1"},"paths":{}}"#;
        let err = parse(json).expect_err("NUL in the title");
        assert_eq!(err.pointer, "/info/title");
        assert!(err.message.contains("NUL"), "{err}");
        let yaml =
            "openapi: 3.0.3\ninfo: {title: T, version: '1'}\npaths:\n  /a:\n    get:\n      summary: \"x\\0y\"\n";
        let err = parse(yaml).expect_err("NUL in a summary");
        assert_eq!(err.pointer, "/paths/~1a/get/summary");
        assert!(parse("openapi: 3.0.3\0").is_err());
    }

    #[test]
    fn locates_errors() {
        let err = parse(
            "{\"openapi\": \"3.0.0\",\n \"info\": {\"title\": \"T\", \"version\": \"1\"},\n \"paths\": {\"a\": {}}}",
        )
        .expect_err("an error");
        assert_eq!(err.pointer, "/paths/a");
        let err = parse("{\"openapi\": \n").expect_err("an error");
        assert_eq!(err.line, Some(2));
        let err = parse("openapi: 3.0.0\ninfo: {version: '1'}\npaths: {}\n").expect_err("an error");
        assert_eq!(err.pointer, "/info/title");
        let err = parse("openapi: 4.0.0\n").expect_err("an error");
        assert_eq!(err.pointer, "/openapi");
    }
}
