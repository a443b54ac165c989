//! Local `$ref` handling: decoding `#/...` fragments, looking them up and
//! checking every reference of a document before anything relies on it.
//!
//! Only same-document references are followed. Anything else (a file, a
//! URL, an `#anchor`) is refused with the pointer of the `$ref`, so import
//! never reaches the network or the file system.

use serde_json::Value;

use crate::document::{ImportError, METHODS, pointer_of, pointer_segment, unescape_segment};

/// Why a `$ref` string cannot be followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RefError {
    Remote,
    Malformed(String),
}

impl RefError {
    pub(crate) fn into_import(self, reference: &str, at: &str) -> ImportError {
        let message = match self {
            RefError::Remote => format!(
                "`{reference}` is a remote reference; remote references are not fetched, so bundle the document into one file"
            ),
            RefError::Malformed(why) => format!("`{reference}` is not a usable reference: {why}"),
        };
        ImportError::at(at, message)
    }
}

/// The unescaped pointer segments of a local reference (`#/a/b~1c` →
/// `["a", "b/c"]`), after percent-decoding the URI fragment.
pub(crate) fn decode(reference: &str) -> Result<Vec<String>, RefError> {
    let Some(fragment) = reference.strip_prefix('#') else {
        return Err(RefError::Remote);
    };
    let fragment = percent_decode(fragment)?;
    if fragment.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = fragment.strip_prefix('/') else {
        return Err(RefError::Malformed(
            "only JSON pointer fragments such as `#/components/schemas/Pet` are supported".into(),
        ));
    };
    Ok(rest.split('/').map(unescape_segment).collect())
}

fn percent_decode(s: &str) -> Result<String, RefError> {
    if !s.contains('%') {
        return Ok(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(byte) = hex else {
                return Err(RefError::Malformed("bad percent-encoding".into()));
            };
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| RefError::Malformed("percent-encoding does not decode to UTF-8".into()))
}

/// Follows decoded segments from the root.
pub(crate) fn lookup<'a>(doc: &'a Value, segments: &[String]) -> Option<&'a Value> {
    segments.iter().try_fold(doc, |here, seg| match here {
        Value::Object(map) => map.get(seg.as_str()),
        Value::Array(items) => seg.parse::<usize>().ok().filter(|_| !seg.starts_with('+')).and_then(|i| items.get(i)),
        _ => None,
    })
}

/// Resolves one reference found at `at` (the pointer of the `$ref` key):
/// the target and its canonical pointer.
pub(crate) fn resolve<'a>(doc: &'a Value, reference: &str, at: &str) -> Result<(&'a Value, String), ImportError> {
    let segments = decode(reference).map_err(|e| e.into_import(reference, at))?;
    match lookup(doc, &segments) {
        Some(target) => Ok((target, pointer_of(&segments))),
        None => Err(ImportError::at(at, format!("`{reference}` points to nothing in this document"))),
    }
}

/// Most references form chains of at most two or three hops; anything
/// longer is a mistake or an attack.
const MAX_HOPS: usize = 32;

/// Each operation of a document that import accepted, as `(path, method, operation)` in the
/// document's order; a path item that is no object, even through its `$ref`, is passed over
/// (import itself reports it). For what reads every operation after import: mocks, samples.
pub(crate) fn operations(doc: &Value) -> impl Iterator<Item = (&String, &'static str, &Value)> {
    let paths = match doc.get("paths") {
        Some(Value::Object(paths)) => Some(paths),
        _ => None,
    };
    paths
        .into_iter()
        .flatten()
        .filter(|(path, _)| path.starts_with('/'))
        .filter_map(move |(path, item)| match follow(doc, item, "") {
            Ok((Value::Object(item), _)) => Some((path, item)),
            _ => None,
        })
        .flat_map(|(path, item)| METHODS.into_iter().filter_map(move |method| Some((path, method, item.get(method)?))))
}

/// Follows `$ref` chains (for parameters, responses, bodies, path items)
/// until an object without `$ref`; `at` is where `value` sits. Returns the
/// object and the pointer it was found at.
pub(crate) fn follow<'a>(doc: &'a Value, value: &'a Value, at: &str) -> Result<(&'a Value, String), ImportError> {
    let mut here = value;
    let mut pointer = at.to_owned();
    let mut seen: Vec<String> = Vec::new();
    while let Some(Value::String(reference)) = here.get("$ref") {
        let ref_at = format!("{pointer}/$ref");
        let (target, target_pointer) = resolve(doc, reference, &ref_at)?;
        if seen.contains(&target_pointer) || seen.len() >= MAX_HOPS {
            return Err(ImportError::at(
                ref_at,
                format!("`{reference}` is part of a reference cycle that never reaches a definition"),
            ));
        }
        seen.push(target_pointer.clone());
        here = target;
        pointer = target_pointer;
    }
    Ok((here, pointer))
}

/// Maps whose keys are names chosen by the author, not keywords: their
/// keys are never skipped as extensions or examples.
const NAME_MAPS: [&str; 19] = [
    "properties",
    "patternProperties",
    "$defs",
    "definitions",
    "schemas",
    "parameters",
    "responses",
    "requestBodies",
    "headers",
    "content",
    "encoding",
    "callbacks",
    "links",
    "webhooks",
    "pathItems",
    "paths",
    "securitySchemes",
    "securityDefinitions",
    "dependentSchemas",
];

/// Keys whose values are literal data (or documentation) in which a `$ref`
/// key is not a reference.
fn is_data_key(key: &str) -> bool {
    key.starts_with("x-") || matches!(key, "example" | "examples" | "default" | "enum" | "const" | "value")
}

/// Checks every `$ref` of the document: no remote references, no
/// malformed ones, no dangling ones. The error names the `$ref` itself.
pub(crate) fn check_all(doc: &Value) -> Result<(), ImportError> {
    let mut pointer = String::new();
    walk(doc, doc, &mut pointer, false)
}

fn walk(doc: &Value, value: &Value, pointer: &mut String, name_map: bool) -> Result<(), ImportError> {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&pointer_segment(key));
                if !name_map && key == "$ref" {
                    if let Value::String(reference) = child {
                        resolve(doc, reference, pointer)?;
                    }
                } else if name_map || !is_data_key(key) {
                    walk(doc, child, pointer, !name_map && NAME_MAPS.contains(&key.as_str()))?;
                }
                pointer.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&i.to_string());
                walk(doc, child, pointer, false)?;
                pointer.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn decodes_pointer_escapes_and_percent_encoding() {
        assert_eq!(decode("#/paths/~1pets~1{id}/get").expect("a value"), vec!["paths", "/pets/{id}", "get"]);
        assert_eq!(decode("#/a~0b/c%20d").expect("a value"), vec!["a~b", "c d"]);
        assert_eq!(decode("#").expect("a value"), Vec::<String>::new());
        assert_eq!(decode("other.yaml#/x"), Err(RefError::Remote));
        assert!(matches!(decode("#anchor"), Err(RefError::Malformed(_))));
        assert!(matches!(decode("#/a%zz"), Err(RefError::Malformed(_))));
    }

    #[test]
    fn checks_every_reference_but_not_examples() {
        let doc = json!({
            "components": {"schemas": {"A": {"type": "object"}, "x-B": {"$ref": "#/components/schemas/A"}}},
            "x-ext": {"$ref": "http://example.com/ignored"},
            "paths": {"/p": {"get": {"responses": {"200": {"content": {"application/json": {
                "example": {"$ref": "not followed"},
                "schema": {"$ref": "#/components/schemas/A"}}}}}}}}
        });
        check_all(&doc).expect("a value");
        let doc = json!({"a": [{"$ref": "#/nope"}]});
        assert_eq!(check_all(&doc).expect_err("an error").pointer, "/a/0/$ref");
        let doc = json!({"a": {"$ref": "https://example.com/x.json"}});
        let err = check_all(&doc).expect_err("an error");
        assert!(err.message.contains("remote references are not fetched"), "{err}");
    }

    #[test]
    fn follows_chains_and_stops_cycles() {
        let doc = json!({"p": {"a": {"$ref": "#/p/b"}, "b": {"$ref": "#/p/c"}, "c": {"in": "query"}, "x": {"$ref": "#/p/y"}, "y": {"$ref": "#/p/x"}}});
        let (v, at) = follow(&doc, &doc["p"]["a"], "/p/a").expect("a value");
        assert_eq!(v, &json!({"in": "query"}));
        assert_eq!(at, "/p/c");
        let err = follow(&doc, &doc["p"]["x"], "/p/x").expect_err("an error");
        assert!(err.message.contains("cycle"), "{err}");
    }
}
