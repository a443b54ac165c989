//! Reading an OpenAPI document into the operations Tollgate meters.
//!
//! The original text is kept byte for byte (the portal renders it); this
//! module only extracts what import needs. Operations are read from the
//! version-independent `paths` object, so Swagger 2.0, OpenAPI 3.0 and 3.1
//! share one path; 3.0 documents are additionally checked against the typed
//! `openapiv3` model so structural mistakes are reported before anything is
//! stored. Nothing here fetches a remote `$ref`.

use serde_json::Value;

/// Larger documents are refused before parsing so a hostile upload cannot
/// exhaust memory. Real-world specs run to a few MB.
pub const MAX_SPEC_BYTES: usize = 16 * 1024 * 1024;

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// A spec that could not be imported, located by JSON pointer and, where
/// the parser knows it, by line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {message}", if pointer.is_empty() { "/" } else { pointer }, line.map(|l| format!(" (line {l})")).unwrap_or_default())]
pub struct ImportError {
    pub pointer: String,
    pub line: Option<usize>,
    pub message: String,
}

impl ImportError {
    fn at(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        ImportError { pointer: pointer.into(), line: None, message: message.into() }
    }
}

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
    pub operations: Vec<Operation>,
}

/// Parses JSON or YAML text and extracts its operations.
pub fn parse(source: &str) -> Result<ParsedSpec, ImportError> {
    if source.len() > MAX_SPEC_BYTES {
        return Err(ImportError::at(
            "",
            format!("the document is {} bytes; the limit is {MAX_SPEC_BYTES} bytes", source.len()),
        ));
    }
    let trimmed = source.trim_start();
    let (format, doc) = if trimmed.starts_with('{') {
        let doc = serde_json::from_str::<Value>(source).map_err(|e| ImportError {
            pointer: String::new(),
            line: Some(e.line()),
            message: format!("invalid JSON: {e}"),
        })?;
        (SpecFormat::Json, doc)
    } else {
        let doc = yaml_serde::from_str::<Value>(source).map_err(|e| ImportError {
            pointer: String::new(),
            line: e.location().map(|l| l.line()),
            message: format!("invalid YAML: {e}"),
        })?;
        (SpecFormat::Yaml, doc)
    };
    let Value::Object(root) = &doc else {
        return Err(ImportError::at("", "the document must be an object with `openapi` or `swagger` at the top"));
    };
    let spec_version = match (root.get("openapi"), root.get("swagger")) {
        (Some(Value::String(v)), _) if v.starts_with("3.0") || v.starts_with("3.1") => v.clone(),
        (Some(Value::String(v)), _) => {
            return Err(ImportError::at("/openapi", format!("OpenAPI version {v} is not supported; use 3.0.x or 3.1.x")));
        }
        (_, Some(Value::String(v))) if v == "2.0" => v.clone(),
        (_, Some(v)) => return Err(ImportError::at("/swagger", format!("Swagger version {v} is not supported; use 2.0"))),
        (Some(_), _) => return Err(ImportError::at("/openapi", "must be a string such as \"3.0.3\"")),
        (None, None) => {
            return Err(ImportError::at("", "not an OpenAPI document: neither `openapi` nor `swagger` is present"));
        }
    };
    let info = root.get("info").and_then(Value::as_object).ok_or_else(|| ImportError::at("/info", "is required and must be an object"))?;
    let title = match info.get("title") {
        Some(Value::String(t)) if !t.trim().is_empty() => t.trim().to_owned(),
        _ => return Err(ImportError::at("/info/title", "is required and must be a non-empty string")),
    };
    let version_label = info.get("version").map(scalar_text).unwrap_or_default();
    let description = info.get("description").and_then(Value::as_str).unwrap_or_default().to_owned();

    if spec_version.starts_with("3.0") {
        check_openapi_30(&doc)?;
    }
    let operations = operations(&doc, &spec_version)?;
    Ok(ParsedSpec { format, spec_version, title, version_label, description, operations })
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Escapes a key for use in a JSON pointer (RFC 6901).
pub fn pointer_segment(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn check_openapi_30(doc: &Value) -> Result<(), ImportError> {
    serde_json::from_value::<openapiv3::OpenAPI>(doc.clone())
        .map(|_| ())
        .map_err(|e| ImportError::at("", format!("not a valid OpenAPI 3.0 document: {e}")))
}

fn operations(doc: &Value, spec_version: &str) -> Result<Vec<Operation>, ImportError> {
    let paths = match doc.get("paths") {
        Some(Value::Object(paths)) => paths,
        Some(_) => return Err(ImportError::at("/paths", "must be an object")),
        // 3.1 allows a webhooks-only document with no paths.
        None if spec_version.starts_with("3.1") => return Ok(Vec::new()),
        None => return Err(ImportError::at("/paths", "is required")),
    };
    let mut found = Vec::new();
    for (path, item) in paths {
        let here = format!("/paths/{}", pointer_segment(path));
        if path.starts_with("x-") {
            continue;
        }
        if !path.starts_with('/') {
            return Err(ImportError::at(here, "a path must start with `/`"));
        }
        let Value::Object(item) = item else {
            return Err(ImportError::at(here, "a path item must be an object"));
        };
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let at = format!("{here}/{method}");
            let Value::Object(op) = op else {
                return Err(ImportError::at(at, "an operation must be an object"));
            };
            let operation_id = match op.get("operationId") {
                None => None,
                Some(Value::String(id)) if !id.trim().is_empty() => Some(id.trim().to_owned()),
                Some(_) => return Err(ImportError::at(format!("{at}/operationId"), "must be a non-empty string")),
            };
            found.push(Operation {
                method: method.to_ascii_uppercase(),
                path: path.clone(),
                operation_id,
                summary: op.get("summary").and_then(Value::as_str).map(str::to_owned),
            });
        }
    }
    Ok(found)
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
        let spec = parse(PETSTORE_30).unwrap();
        assert_eq!(spec.format, SpecFormat::Yaml);
        assert_eq!(spec.title, "Pets");
        assert_eq!(spec.operations.len(), 3);
        assert!(spec.operations.iter().any(|o| o.method == "POST" && o.path == "/pets" && o.operation_id.is_none()));
    }

    #[test]
    fn reads_swagger_20_json() {
        let spec = parse(r#"{"swagger":"2.0","info":{"title":"T","version":"1"},"paths":{"/a":{"get":{"responses":{"200":{"description":"x"}}}}}}"#).unwrap();
        assert_eq!(spec.spec_version, "2.0");
        assert_eq!(spec.operations.len(), 1);
    }

    #[test]
    fn locates_errors() {
        let err = parse("{\"openapi\": \"3.0.0\",\n \"info\": {\"title\": \"T\", \"version\": \"1\"},\n \"paths\": {\"a\": {}}}").unwrap_err();
        assert_eq!(err.pointer, "/paths/a");
        let err = parse("{\"openapi\": \n").unwrap_err();
        assert_eq!(err.line, Some(2));
        let err = parse("openapi: 3.0.0\ninfo: {version: '1'}\npaths: {}\n").unwrap_err();
        assert_eq!(err.pointer, "/info/title");
        let err = parse("openapi: 4.0.0\n").unwrap_err();
        assert_eq!(err.pointer, "/openapi");
    }
}
