//! Request bodies for copy-paste samples (the portal's Quick start): a JSON body a
//! developer can send as it is; and example values of path parameters (`path_examples`).
//!
//! From an operation's JSON request body (`application/json`, else a `+json` media type):
//! the media type's `example`, else its first named example (by name), else an object built
//! from the schema: the required properties (with none, the first few), each from its
//! `example`, `default`, `const` or first `enum` value, else a placeholder by type and format.
//! `$ref`s are followed, `allOf` merged, the first `oneOf`/`anyOf` variant taken; `readOnly`
//! properties are left out (a request must not send them). Depth, values and size are
//! bounded, so a cyclic or hostile schema yields a small value, not a long wait.

use std::collections::BTreeMap;

use serde_json::{Map, Number, Value};

use crate::document::ImportError;
use crate::model::operation_key;
use crate::{mock, refs};

/// Object and array nesting of a built body; deeper values are left empty.
const MAX_DEPTH: usize = 4;
/// Optional properties shown when a schema requires none.
const OPTIONAL_SHOWN: usize = 3;
/// Schemas visited for one body; past it, no more properties are added.
const MAX_NODES: usize = 200;
/// `$ref`s followed in a row before a schema counts as unknown (a pure cycle).
const MAX_HOPS: usize = 16;
/// Bytes of written examples one body may take; a larger one is not shown.
const MAX_BODY_BYTES: usize = 4096;

/// The sample body of each operation with a JSON request body, by `"METHOD /path"`, from a
/// document `parse` accepted (2.0 included). Operations with nothing to go on are absent.
pub fn request_bodies(source: &str) -> Result<BTreeMap<String, Value>, ImportError> {
    let doc = crate::import::document3(source)?;
    let mut out = BTreeMap::new();
    for (path, method, operation) in refs::operations(&doc) {
        let Some(body) = operation.get("requestBody") else { continue };
        let Ok((body, _)) = refs::follow(&doc, body, "") else { continue };
        if let Some(value) = body_sample(&doc, body) {
            out.insert(operation_key(method, path), value);
        }
    }
    Ok(out)
}

/// An example value of each path parameter, by `"METHOD /path"` and then the parameter's
/// name, from a document `parse` accepted: the parameter's `example`, else its first named
/// example's `value`, else its schema's `example`, first `examples`, first `enum` value or
/// `default`. Only scalars (a string as written, a number or boolean as JSON writes it);
/// parameters without one are absent, so the caller chooses a placeholder.
pub fn path_examples(source: &str) -> Result<BTreeMap<String, BTreeMap<String, String>>, ImportError> {
    let doc = crate::import::document3(source)?;
    let mut out = BTreeMap::new();
    for (path, method, operation) in refs::operations(&doc) {
        let item =
            doc.get("paths").and_then(|paths| paths.get(path)).and_then(|item| refs::follow(&doc, item, "").ok());
        let shared = item.and_then(|(item, _)| item.get("parameters"));
        let mut examples = BTreeMap::new();
        // Path-level parameters first, so the operation's own of the same name win.
        for list in [shared, operation.get("parameters")] {
            let Some(Value::Array(parameters)) = list else { continue };
            for parameter in parameters {
                let Ok((parameter, _)) = refs::follow(&doc, parameter, "") else { continue };
                if parameter.get("in").and_then(Value::as_str) != Some("path") {
                    continue;
                }
                let Some(name) = parameter.get("name").and_then(Value::as_str) else { continue };
                match parameter_example(&doc, parameter) {
                    Some(example) => examples.insert(name.to_owned(), example),
                    None => examples.remove(name),
                };
            }
        }
        if !examples.is_empty() {
            out.insert(operation_key(method, path), examples);
        }
    }
    Ok(out)
}

fn parameter_example(doc: &Value, parameter: &Value) -> Option<String> {
    let named = || {
        let Some(Value::Object(examples)) = parameter.get("examples") else { return None };
        examples.values().filter_map(|e| refs::follow(doc, e, "").ok()).find_map(|(e, _)| e.get("value"))
    };
    let schema = parameter.get("schema").and_then(|s| refs::follow(doc, s, "").ok()).map(|(s, _)| s);
    let first = |key: &str| match schema?.get(key)? {
        Value::Array(values) => values.first(),
        _ => None,
    };
    [
        parameter.get("example"),
        named(),
        schema.and_then(|s| s.get("example")),
        first("examples"),
        first("enum"),
        schema.and_then(|s| s.get("default")),
    ]
    .into_iter()
    .flatten()
    .find_map(|value| match value {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(_) | Value::Bool(_) => Some(value.to_string()),
        _ => None,
    })
}

fn body_sample(doc: &Value, body: &Value) -> Option<Value> {
    let Some(Value::Object(content)) = body.get("content") else { return None };
    let media = content
        .iter()
        .find(|(media_type, _)| essence(media_type) == "application/json")
        .or_else(|| content.iter().find(|(media_type, _)| essence(media_type).ends_with("+json")))?
        .1;
    let mut budget = MAX_BODY_BYTES;
    let written = media.get("example").filter(|e| !e.is_null()).or_else(|| named_example(doc, media));
    if let Some(example) = written.filter(|e| fits(e, &mut budget)) {
        return Some(example.clone());
    }
    let mut builder = Builder { doc, nodes: 0, budget: MAX_BODY_BYTES };
    builder.value(media.get("schema")?, 0)
}

/// The first of the media type's named `examples` that has a `value`.
fn named_example<'d>(doc: &'d Value, media: &'d Value) -> Option<&'d Value> {
    let Some(Value::Object(examples)) = media.get("examples") else { return None };
    examples.values().filter_map(|e| refs::follow(doc, e, "").ok()).find_map(|(e, _)| e.get("value"))
}

fn essence(media_type: &str) -> String {
    media_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// Whether `value` takes at most `budget` bytes (roughly: its strings and one per value),
/// taking them from it. Stops counting once over, so a huge value costs no more than a small one.
fn fits(value: &Value, budget: &mut usize) -> bool {
    let cost = match value {
        Value::String(text) => text.len() + 2,
        Value::Object(fields) => fields.keys().map(|k| k.len() + 4).sum(),
        _ => 8,
    };
    let Some(left) = budget.checked_sub(cost) else { return false };
    *budget = left;
    match value {
        Value::Array(items) => items.iter().all(|item| fits(item, budget)),
        Value::Object(fields) => fields.values().all(|field| fits(field, budget)),
        _ => true,
    }
}

struct Builder<'d> {
    doc: &'d Value,
    nodes: usize,
    /// Bytes left for written examples and defaults.
    budget: usize,
}

impl<'d> Builder<'d> {
    /// A value for `schema`; `None` when the schema says nothing usable.
    fn value(&mut self, schema: &'d Value, depth: usize) -> Option<Value> {
        self.nodes += 1;
        let s = self.resolve(schema)?;
        for key in ["example", "default", "const"] {
            if let Some(value) = s.get(key).filter(|v| fits(v, &mut self.budget)) {
                return Some(value.clone());
            }
        }
        for key in ["examples", "enum"] {
            if let Some(Value::Array(values)) = s.get(key)
                && let Some(first) = values.first().filter(|v| fits(v, &mut self.budget))
            {
                return Some(first.clone());
            }
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(Value::Array(variants)) = s.get(key)
                && let Some(first) = variants.iter().find(|v| !self.is_null(v)).or(variants.first())
            {
                return if depth < MAX_DEPTH { self.value(first, depth + 1) } else { None };
            }
        }
        let types: Vec<&str> = match s.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let kind = types.iter().copied().find(|t| *t != "null").or(types.first().copied()).or_else(|| {
            if ["properties", "required", "additionalProperties"].iter().any(|k| s.contains_key(*k)) {
                Some("object")
            } else if s.contains_key("items") {
                Some("array")
            } else {
                None
            }
        });
        match kind {
            Some("null") => Some(Value::Null),
            Some("boolean") => Some(Value::Bool(false)),
            Some("integer") => Some(Value::Number(Number::from(mock::integer(s)))),
            Some("number") => {
                let n = mock::number(s);
                // A whole number reads as `0`, not `0.0`.
                let whole = n.fract() == 0.0 && n.abs() < 1e15;
                Some(Value::Number(if whole { Number::from(n as i64) } else { Number::from_f64(n)? }))
            }
            Some("string") => Some(Value::String(mock::string(s))),
            Some("array") => {
                let item = match s.get("items") {
                    Some(items) if depth < MAX_DEPTH => self.value(items, depth + 1),
                    _ => None,
                };
                Some(Value::Array(item.into_iter().collect()))
            }
            Some("object") => Some(self.object(s, depth)),
            // No type: an `allOf` alone (merged as an object), else nothing to go on.
            _ => match s.get("allOf") {
                Some(Value::Array(parts)) if !parts.is_empty() => self.all_of(s, parts, depth),
                _ => None,
            },
        }
    }

    /// An `allOf` without a type of its own: an object if any part has properties, else
    /// the first part's value (a wrapper that only adds a description).
    fn all_of(&mut self, s: &'d Map<String, Value>, parts: &'d [Value], depth: usize) -> Option<Value> {
        let mut shape = Shape::default();
        self.gather(s, &mut shape, 0);
        if shape.properties.is_empty() && shape.required.is_empty() {
            return if depth < MAX_DEPTH { self.value(parts.first()?, depth + 1) } else { None };
        }
        Some(self.object(s, depth))
    }

    fn object(&mut self, s: &'d Map<String, Value>, depth: usize) -> Value {
        let mut object = Map::new();
        if depth >= MAX_DEPTH {
            return Value::Object(object);
        }
        let mut shape = Shape::default();
        self.gather(s, &mut shape, 0);
        let names: Vec<&str> = if shape.required.is_empty() {
            shape.properties.iter().filter(|(_, p)| !self.read_only(p)).map(|(n, _)| *n).take(OPTIONAL_SHOWN).collect()
        } else {
            shape.required.clone()
        };
        for name in names {
            if self.nodes >= MAX_NODES {
                break;
            }
            let schema = shape.properties.get(name).copied().or(shape.additional);
            if schema.is_some_and(|p| self.read_only(p)) {
                continue;
            }
            let value = schema.and_then(|p| self.value(p, depth + 1)).unwrap_or(Value::Null);
            object.insert(name.to_owned(), value);
        }
        Value::Object(object)
    }

    /// The properties and required names of an object schema, its `allOf` parts merged in.
    fn gather(&mut self, s: &'d Map<String, Value>, shape: &mut Shape<'d>, level: usize) {
        self.nodes += 1;
        if let Some(Value::Object(properties)) = s.get("properties") {
            for (name, property) in properties {
                shape.properties.entry(name.as_str()).or_insert(property);
            }
        }
        if let Some(Value::Array(required)) = s.get("required") {
            for name in required.iter().filter_map(Value::as_str) {
                if !shape.required.contains(&name) {
                    shape.required.push(name);
                }
            }
        }
        if let Some(extra @ Value::Object(_)) = s.get("additionalProperties") {
            shape.additional.get_or_insert(extra);
        }
        if let Some(Value::Array(parts)) = s.get("allOf")
            && level < MAX_DEPTH
        {
            for part in parts {
                if self.nodes >= MAX_NODES {
                    break;
                }
                if let Some(part) = self.resolve(part) {
                    self.gather(part, shape, level + 1);
                }
            }
        }
    }

    /// The schema object behind any chain of `$ref`s; `None` for a dangling or endless chain.
    fn resolve(&self, mut schema: &'d Value) -> Option<&'d Map<String, Value>> {
        for _ in 0..MAX_HOPS {
            match schema {
                Value::Object(s) => match s.get("$ref") {
                    Some(Value::String(reference)) => schema = refs::resolve(self.doc, reference, "").ok()?.0,
                    _ => return Some(s),
                },
                _ => return None,
            }
        }
        None
    }

    fn read_only(&self, schema: &'d Value) -> bool {
        self.resolve(schema).is_some_and(|s| s.get("readOnly") == Some(&Value::Bool(true)))
    }

    fn is_null(&self, schema: &'d Value) -> bool {
        self.resolve(schema).is_some_and(|s| s.get("type").and_then(Value::as_str) == Some("null"))
    }
}

/// An object schema with its `allOf` parts merged.
#[derive(Default)]
struct Shape<'d> {
    properties: BTreeMap<&'d str, &'d Value>,
    /// In the document's order.
    required: Vec<&'d str>,
    additional: Option<&'d Value>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The sample body of `POST /a` whose JSON body has `media` as its media type object.
    fn sample(media: Value, schemas: Value) -> Option<Value> {
        let doc = json!({
            "openapi": "3.0.3",
            "info": {"title": "t", "version": "1"},
            "paths": {"/a": {"post": {
                "requestBody": {"content": {"application/json": media}},
                "responses": {"204": {"description": "done"}}
            }}},
            "components": {"schemas": schemas}
        });
        request_bodies(&doc.to_string()).expect("a document").remove("POST /a")
    }

    #[test]
    fn path_parameters_take_the_first_example_the_document_gives_and_the_operation_wins() {
        let doc = json!({
            "openapi": "3.0.3",
            "info": {"title": "t", "version": "1"},
            "paths": {"/a/{id}/{kind}/{n}/{free}/{ref}": {
                "parameters": [
                    {"name": "id", "in": "path", "required": true, "schema": {"type": "string", "example": "shared"}},
                    {"name": "free", "in": "path", "required": true, "schema": {"type": "string"}}
                ],
                "get": {
                    "parameters": [
                        {"name": "id", "in": "path", "required": true, "example": "own", "schema": {"type": "string"}},
                        {"name": "kind", "in": "path", "required": true, "schema": {"type": "string", "enum": ["b", "c"], "default": "c"}},
                        {"name": "n", "in": "path", "required": true, "examples": {"one": {"value": 7}}, "schema": {"type": "integer"}},
                        {"$ref": "#/components/parameters/Ref"},
                        {"name": "id", "in": "query", "schema": {"type": "string", "example": "not a path one"}}
                    ],
                    "responses": {"204": {"description": "done"}}
                }
            }},
            "components": {"parameters": {"Ref": {"name": "ref", "in": "path", "required": true, "schema": {"type": "string", "default": "main"}}}}
        });
        let examples = path_examples(&doc.to_string()).expect("a document");
        let got = &examples["GET /a/{id}/{kind}/{n}/{free}/{ref}"];
        let want: BTreeMap<String, String> = [("id", "own"), ("kind", "b"), ("n", "7"), ("ref", "main")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into();
        assert_eq!(got, &want);
    }

    #[test]
    fn required_properties_get_examples_defaults_or_placeholders_and_optional_ones_are_left_out() {
        let body = sample(
            json!({"schema": {"type": "object", "required": ["when", "count", "email", "id", "on", "size", "name"],
                "properties": {
                    "when": {"type": "string", "format": "date-time"},
                    "count": {"type": "integer"},
                    "email": {"type": "string", "format": "email"},
                    "id": {"type": "string", "format": "uuid"},
                    "on": {"type": "boolean"},
                    "size": {"type": "number", "default": 2.5},
                    "name": {"type": "string", "example": "Ada"},
                    "note": {"type": "string"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "created": {"type": "string", "readOnly": true}}}}),
            json!({}),
        );
        assert_eq!(
            body,
            Some(json!({"when": "2026-01-01T00:00:00Z", "count": 0, "email": "user@example.com",
                "id": "00000000-0000-4000-8000-000000000000", "on": false, "size": 2.5, "name": "Ada"}))
        );
        // None required: the first few, arrays of one item, readOnly ones never.
        let body = sample(
            json!({"schema": {"type": "object", "properties": {
                "a": {"type": "string", "readOnly": true}, "b": {"type": "array", "items": {"type": "integer"}},
                "c": {"type": "string"}, "d": {"type": "string"}, "e": {"type": "string"}}}}),
            json!({}),
        );
        assert_eq!(body, Some(json!({"b": [0], "c": "string", "d": "string"})));
    }

    #[test]
    fn refs_are_followed_all_of_merged_and_the_first_variant_and_enum_value_taken() {
        let body = sample(
            json!({"schema": {"$ref": "#/components/schemas/Alert"}}),
            json!({
                "Base": {"type": "object", "properties": {"cityId": {"type": "string"}}},
                "Alert": {"allOf": [{"$ref": "#/components/schemas/Base"}, {
                    "required": ["cityId", "level", "target"],
                    "properties": {
                        "level": {"$ref": "#/components/schemas/Level"},
                        "target": {"oneOf": [{"type": "string", "format": "uri"}, {"type": "integer"}]}}}]},
                "Level": {"type": "string", "enum": ["severe", "moderate"]}
            }),
        );
        assert_eq!(body, Some(json!({"cityId": "string", "level": "severe", "target": "https://example.com/"})));
    }

    #[test]
    fn a_written_example_wins_then_the_first_named_one() {
        let schema = json!({"type": "object", "required": ["x"], "properties": {"x": {"type": "string"}}});
        let body = sample(json!({"schema": schema, "example": {"x": "written"}}), json!({}));
        assert_eq!(body, Some(json!({"x": "written"})));
        let body = sample(
            json!({"schema": schema, "examples": {"b": {"value": {"x": "b"}}, "a": {"value": {"x": "a"}}}}),
            json!({}),
        );
        assert_eq!(body, Some(json!({"x": "a"})));
        // Nothing to go on: no sample, so the caller keeps its fallback.
        assert_eq!(sample(json!({}), json!({})), None);
        assert_eq!(sample(json!({"schema": {}}), json!({})), None);
    }

    #[test]
    fn cyclic_and_wide_schemas_end_small() {
        let body = sample(
            json!({"schema": {"$ref": "#/components/schemas/Node"}}),
            json!({
                "Node": {"type": "object", "required": ["next", "all"], "properties": {
                    "next": {"$ref": "#/components/schemas/Node"},
                    "all": {"allOf": [{"$ref": "#/components/schemas/Node"}]}}}
            }),
        )
        .expect("a body");
        assert!(body.to_string().len() < MAX_BODY_BYTES, "{body}");
        assert_eq!(body["next"]["next"]["next"]["next"], json!({}), "cut at the depth limit: {body}");

        let wide: Map<String, Value> = (0..2000).map(|i| (format!("p{i}"), json!({"type": "string"}))).collect();
        let names: Vec<&String> = wide.keys().collect();
        let body = sample(json!({"schema": {"type": "object", "required": names, "properties": wide}}), json!({}))
            .expect("a body");
        assert!(body.as_object().expect("an object").len() < MAX_NODES, "bounded");
    }
}
