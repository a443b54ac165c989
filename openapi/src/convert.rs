//! Swagger 2.0 → OpenAPI 3.0.3, on `serde_json::Value`.
//!
//! The converted document only feeds the internal model; the original text
//! is what Tollgate stores and renders. Errors found here are located in
//! the original 2.0 document. References were checked beforehand
//! (`refs::check_all`), so lookups here only fail on cycles.

use serde_json::{Map, Value, json};

use crate::document::{ImportError, METHODS, pointer_segment};
use crate::refs;

const FORM_TYPES: [&str; 2] = ["application/x-www-form-urlencoded", "multipart/form-data"];

/// Keywords a 2.0 non-body parameter, header or `items` object shares with
/// a JSON schema.
const SCHEMA_KEYWORDS: [&str; 17] = [
    "type",
    "format",
    "default",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "enum",
    "multipleOf",
    "x-nullable",
    "description",
];

pub(crate) fn swagger2_to_openapi30(doc: &Value) -> Result<Value, ImportError> {
    let Value::Object(root) = doc else {
        return Err(ImportError::at("", "the document must be an object"));
    };
    let global_consumes = media_list(root.get("consumes"));
    let global_produces = media_list(root.get("produces"));
    let cx = Cx { doc, consumes: &global_consumes, produces: &global_produces };

    let mut out = Map::new();
    out.insert("openapi".into(), json!("3.0.3"));
    for (key, value) in root {
        if matches!(key.as_str(), "info" | "tags" | "externalDocs" | "security") || key.starts_with("x-") {
            out.insert(key.clone(), value.clone());
        }
    }
    let servers = servers(root);
    if !servers.is_empty() {
        out.insert("servers".into(), Value::Array(servers));
    }

    let mut components = Map::new();
    if let Some(Value::Object(definitions)) = root.get("definitions") {
        let schemas = definitions.iter().map(|(k, v)| (k.clone(), schema(v))).collect();
        components.insert("schemas".into(), Value::Object(schemas));
    }
    if let Some(Value::Object(params)) = root.get("parameters") {
        let mut parameters = Map::new();
        let mut bodies = Map::new();
        for (name, p) in params {
            match p.get("in").and_then(Value::as_str) {
                Some("body") => {
                    bodies.insert(name.clone(), body_request(p, &global_consumes));
                }
                // formData parameters only exist merged into a body; they are
                // inlined where operations use them.
                Some("formData") => {}
                _ => {
                    parameters.insert(name.clone(), parameter(p));
                }
            }
        }
        if !parameters.is_empty() {
            components.insert("parameters".into(), Value::Object(parameters));
        }
        if !bodies.is_empty() {
            components.insert("requestBodies".into(), Value::Object(bodies));
        }
    }
    if let Some(Value::Object(responses)) = root.get("responses") {
        let converted = responses.iter().map(|(k, v)| (k.clone(), response(v, &global_produces))).collect();
        components.insert("responses".into(), Value::Object(converted));
    }
    if let Some(Value::Object(defs)) = root.get("securityDefinitions") {
        let converted = defs.iter().map(|(k, v)| (k.clone(), security_scheme(v))).collect();
        components.insert("securitySchemes".into(), Value::Object(converted));
    }
    if !components.is_empty() {
        out.insert("components".into(), Value::Object(components));
    }

    match root.get("paths") {
        Some(Value::Object(paths)) => {
            let mut converted = Map::new();
            for (path, item) in paths {
                let at = format!("/paths/{}", pointer_segment(path));
                converted.insert(path.clone(), cx.path_item(item, &at)?);
            }
            out.insert("paths".into(), Value::Object(converted));
        }
        // Left for the model builder, which reports it.
        Some(other) => {
            out.insert("paths".into(), other.clone());
        }
        None => {}
    }
    let mut out = Value::Object(out);
    rewrite_refs(&mut out, false);
    Ok(out)
}

struct Cx<'a> {
    doc: &'a Value,
    consumes: &'a [String],
    produces: &'a [String],
}

impl Cx<'_> {
    fn path_item(&self, item: &Value, at: &str) -> Result<Value, ImportError> {
        let Value::Object(item) = item else { return Ok(item.clone()) };
        let shared = self.parameters(item.get("parameters"), &format!("{at}/parameters"))?;
        let mut out = Map::new();
        for (key, value) in item {
            if key == "parameters" {
                if !shared.plain.is_empty() {
                    out.insert(key.clone(), Value::Array(shared.plain.iter().map(|(_, p)| p.clone()).collect()));
                }
            } else if METHODS.contains(&key.as_str()) {
                out.insert(key.clone(), self.operation(value, &format!("{at}/{key}"), &shared)?);
            } else {
                out.insert(key.clone(), value.clone());
            }
        }
        Ok(Value::Object(out))
    }

    fn operation(&self, op: &Value, at: &str, shared: &Params) -> Result<Value, ImportError> {
        let Value::Object(op) = op else { return Ok(op.clone()) };
        let consumes = op.get("consumes").map(|c| media_list(Some(c))).unwrap_or_else(|| self.consumes.to_vec());
        let produces = op.get("produces").map(|c| media_list(Some(c))).unwrap_or_else(|| self.produces.to_vec());
        let own = self.parameters(op.get("parameters"), &format!("{at}/parameters"))?;

        let mut out = Map::new();
        for (key, value) in op {
            match key.as_str() {
                "parameters" | "consumes" | "produces" | "responses" | "schemes" => {}
                _ => {
                    out.insert(key.clone(), value.clone());
                }
            }
        }
        // Operation parameters override path-level ones with the same name and location.
        let mut plain = shared.plain.clone();
        for (key, p) in own.plain {
            plain.retain(|(k, _)| *k != key);
            plain.push((key, p));
        }
        if !plain.is_empty() {
            out.insert("parameters".into(), Value::Array(plain.into_iter().map(|(_, p)| p).collect()));
        }
        let body = own.body.as_ref().or(shared.body.as_ref());
        let mut form = shared.form.clone();
        for (name, p) in own.form {
            form.retain(|(n, _)| *n != name);
            form.push((name, p));
        }
        if let Some(body) = body {
            out.insert("requestBody".into(), body_request(body, &consumes));
        } else if !form.is_empty() {
            out.insert("requestBody".into(), form_request(&form, &consumes));
        }
        match op.get("responses") {
            Some(Value::Object(responses)) => {
                let converted = responses
                    .iter()
                    .map(|(code, r)| {
                        let r = if code.starts_with("x-") || r.get("$ref").is_some() {
                            r.clone()
                        } else {
                            response(r, &produces)
                        };
                        (code.clone(), r)
                    })
                    .collect();
                out.insert("responses".into(), Value::Object(converted));
            }
            Some(other) => {
                out.insert("responses".into(), other.clone());
            }
            None => {}
        }
        Ok(Value::Object(out))
    }

    /// Splits a 2.0 parameter list into plain parameters (keyed by name and
    /// location), the body parameter and form fields; `$ref`s are inlined.
    fn parameters(&self, list: Option<&Value>, at: &str) -> Result<Params, ImportError> {
        let mut params = Params::default();
        let Some(list) = list else { return Ok(params) };
        let Value::Array(list) = list else {
            return Err(ImportError::at(at, "must be an array of parameters"));
        };
        for (i, p) in list.iter().enumerate() {
            let here = format!("{at}/{i}");
            let (p, _) = refs::follow(self.doc, p, &here)?;
            let Value::Object(fields) = p else {
                return Err(ImportError::at(here, "a parameter must be an object"));
            };
            let name = fields.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
            match fields.get("in").and_then(Value::as_str) {
                Some("body") => {
                    if params.body.is_some() {
                        return Err(ImportError::at(here, "an operation can have only one body parameter"));
                    }
                    params.body = Some(p.clone());
                }
                Some("formData") => params.form.push((name, p.clone())),
                Some(location @ ("query" | "header" | "path")) => {
                    let key = (name, location.to_owned());
                    params.plain.retain(|(k, _)| *k != key);
                    params.plain.push((key, parameter(p)));
                }
                _ => {
                    return Err(ImportError::at(
                        format!("{here}/in"),
                        "must be one of query, header, path, formData or body",
                    ));
                }
            }
        }
        Ok(params)
    }
}

#[derive(Default, Clone)]
struct Params {
    plain: Vec<((String, String), Value)>,
    body: Option<Value>,
    form: Vec<(String, Value)>,
}

/// Media types an operation's body or answers are converted for. Each gets its own copy of the
/// schema in OpenAPI 3 (`content`), so a list of 100,000 would copy a schema 100,000 times
/// before any budget applies: the first 16 distinct ones are kept, more than any real API lists.
const MAX_MEDIA_TYPES: usize = 16;

fn media_list(value: Option<&Value>) -> Vec<String> {
    let mut list: Vec<String> = Vec::new();
    if let Some(Value::Array(items)) = value {
        for item in items.iter().filter_map(Value::as_str) {
            if list.len() == MAX_MEDIA_TYPES {
                break;
            }
            if !list.iter().any(|known| known == item) {
                list.push(item.to_owned());
            }
        }
    }
    if list.is_empty() { vec!["application/json".to_owned()] } else { list }
}

fn servers(root: &Map<String, Value>) -> Vec<Value> {
    let base = root.get("basePath").and_then(Value::as_str).unwrap_or_default();
    let base = if base == "/" { "" } else { base };
    match root.get("host").and_then(Value::as_str) {
        Some(host) => {
            let schemes: Vec<&str> = match root.get("schemes") {
                Some(Value::Array(s)) => s.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            let schemes = if schemes.is_empty() { vec!["https"] } else { schemes };
            schemes.into_iter().map(|s| json!({ "url": format!("{s}://{host}{base}") })).collect()
        }
        None if !base.is_empty() => vec![json!({ "url": base })],
        None => Vec::new(),
    }
}

/// A 2.0 query, header or path parameter as a 3.0 parameter with a schema.
fn parameter(p: &Value) -> Value {
    let Value::Object(fields) = p else { return p.clone() };
    let mut out = Map::new();
    for (key, value) in fields {
        if matches!(key.as_str(), "name" | "in" | "description" | "required" | "deprecated" | "allowEmptyValue")
            || key.starts_with("x-")
        {
            out.insert(key.clone(), value.clone());
        }
    }
    let location = fields.get("in").and_then(Value::as_str).unwrap_or_default();
    let (style, explode) = match (fields.get("collectionFormat").and_then(Value::as_str), location) {
        (Some("multi"), _) => (Some("form"), Some(true)),
        (Some("ssv"), _) => (Some("spaceDelimited"), Some(false)),
        (Some("pipes"), _) => (Some("pipeDelimited"), Some(false)),
        (Some("csv") | None, "query") if fields.get("type").and_then(Value::as_str) == Some("array") => {
            (Some("form"), Some(false))
        }
        _ => (None, None),
    };
    if let Some(style) = style {
        out.insert("style".into(), json!(style));
    }
    if let Some(explode) = explode {
        out.insert("explode".into(), json!(explode));
    }
    out.insert("schema".into(), simple_schema(p));
    Value::Object(out)
}

/// The schema of a 2.0 non-body parameter, header or `items` object.
fn simple_schema(p: &Value) -> Value {
    let Value::Object(fields) = p else { return json!({}) };
    let mut out = Map::new();
    for (key, value) in fields {
        if SCHEMA_KEYWORDS.contains(&key.as_str()) && key != "description" {
            out.insert(key.clone(), value.clone());
        }
    }
    if let Some(items) = fields.get("items") {
        out.insert("items".into(), simple_schema(items));
    }
    schema(&Value::Object(out))
}

fn body_request(p: &Value, consumes: &[String]) -> Value {
    let schema = p.get("schema").map(schema).unwrap_or_else(|| json!({}));
    let mut out = Map::new();
    if let Some(d) = p.get("description") {
        out.insert("description".into(), d.clone());
    }
    out.insert("required".into(), json!(p.get("required").and_then(Value::as_bool).unwrap_or(false)));
    let content: Map<String, Value> =
        consumes.iter().map(|ct| (ct.clone(), json!({ "schema": schema.clone() }))).collect();
    out.insert("content".into(), Value::Object(content));
    Value::Object(out)
}

fn form_request(form: &[(String, Value)], consumes: &[String]) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    let mut has_file = false;
    for (name, p) in form {
        has_file |= p.get("type").and_then(Value::as_str) == Some("file");
        let mut s = simple_schema(p);
        if let (Some(d), Value::Object(m)) = (p.get("description"), &mut s) {
            m.insert("description".into(), d.clone());
        }
        properties.insert(name.clone(), s);
        if p.get("required").and_then(Value::as_bool) == Some(true) {
            required.push(json!(name));
        }
    }
    let mut types: Vec<&str> = consumes.iter().map(String::as_str).filter(|c| FORM_TYPES.contains(c)).collect();
    if types.is_empty() {
        types.push(if has_file { "multipart/form-data" } else { "application/x-www-form-urlencoded" });
    }
    let mut schema = Map::new();
    schema.insert("type".into(), json!("object"));
    schema.insert("properties".into(), Value::Object(properties));
    let any_required = !required.is_empty();
    if any_required {
        schema.insert("required".into(), Value::Array(required));
    }
    let schema = Value::Object(schema);
    let content: Map<String, Value> =
        types.into_iter().map(|ct| (ct.to_owned(), json!({ "schema": schema.clone() }))).collect();
    json!({ "required": any_required, "content": content })
}

fn response(r: &Value, produces: &[String]) -> Value {
    let Value::Object(fields) = r else { return r.clone() };
    let mut out = Map::new();
    out.insert("description".into(), fields.get("description").cloned().unwrap_or_else(|| json!("")));
    for (key, value) in fields {
        if key.starts_with("x-") {
            out.insert(key.clone(), value.clone());
        }
    }
    if let Some(Value::Object(headers)) = fields.get("headers") {
        let converted: Map<String, Value> = headers
            .iter()
            .map(|(name, h)| {
                let mut header = Map::new();
                if let Some(d) = h.get("description") {
                    header.insert("description".into(), d.clone());
                }
                header.insert("schema".into(), simple_schema(h));
                (name.clone(), Value::Object(header))
            })
            .collect();
        out.insert("headers".into(), Value::Object(converted));
    }
    if let Some(s) = fields.get("schema") {
        let s = schema(s);
        let examples = fields.get("examples").and_then(Value::as_object);
        let content: Map<String, Value> = produces
            .iter()
            .map(|ct| {
                let mut media = Map::new();
                media.insert("schema".into(), s.clone());
                if let Some(example) = examples.and_then(|e| e.get(ct)) {
                    media.insert("example".into(), example.clone());
                }
                (ct.clone(), Value::Object(media))
            })
            .collect();
        out.insert("content".into(), Value::Object(content));
    }
    Value::Object(out)
}

fn security_scheme(s: &Value) -> Value {
    let Value::Object(fields) = s else { return s.clone() };
    let mut out = Map::new();
    if let Some(d) = fields.get("description") {
        out.insert("description".into(), d.clone());
    }
    let get = |k: &str| fields.get(k).cloned().unwrap_or(Value::Null);
    match fields.get("type").and_then(Value::as_str) {
        Some("basic") => {
            out.insert("type".into(), json!("http"));
            out.insert("scheme".into(), json!("basic"));
        }
        Some("apiKey") => {
            out.insert("type".into(), json!("apiKey"));
            out.insert("name".into(), get("name"));
            out.insert("in".into(), get("in"));
        }
        Some("oauth2") => {
            let scopes = fields.get("scopes").cloned().unwrap_or_else(|| json!({}));
            let (flow, urls): (&str, &[&str]) = match fields.get("flow").and_then(Value::as_str) {
                Some("implicit") => ("implicit", &["authorizationUrl"]),
                Some("password") => ("password", &["tokenUrl"]),
                Some("application") => ("clientCredentials", &["tokenUrl"]),
                _ => ("authorizationCode", &["authorizationUrl", "tokenUrl"]),
            };
            let mut f = Map::new();
            for url in urls {
                f.insert((*url).to_owned(), get(url));
            }
            f.insert("scopes".into(), scopes);
            out.insert("type".into(), json!("oauth2"));
            out.insert("flows".into(), json!({ flow: f }));
        }
        _ => return s.clone(),
    }
    Value::Object(out)
}

/// A 2.0 schema as a 3.0 one: `file` becomes binary string, `x-nullable`
/// becomes `nullable` and a string `discriminator` an object.
fn schema(s: &Value) -> Value {
    let Value::Object(fields) = s else { return s.clone() };
    let mut out = Map::new();
    for (key, value) in fields {
        let converted = match key.as_str() {
            "properties" | "patternProperties" => match value {
                Value::Object(props) => Value::Object(props.iter().map(|(k, v)| (k.clone(), schema(v))).collect()),
                other => other.clone(),
            },
            "items" | "additionalProperties" | "not" => schema(value),
            "allOf" | "anyOf" | "oneOf" => match value {
                Value::Array(list) => Value::Array(list.iter().map(schema).collect()),
                other => other.clone(),
            },
            "type" if value == "file" => {
                out.insert("format".into(), json!("binary"));
                json!("string")
            }
            "format" if out.contains_key("format") => continue,
            "discriminator" => match value {
                Value::String(name) => json!({ "propertyName": name }),
                other => other.clone(),
            },
            "x-nullable" => {
                out.insert("nullable".into(), value.clone());
                continue;
            }
            _ => value.clone(),
        };
        out.insert(key.clone(), converted);
    }
    Value::Object(out)
}

/// Points 2.0 references at their 3.0 homes.
fn rewrite_refs(value: &mut Value, name_map: bool) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if !name_map && key == "$ref" {
                    if let Value::String(r) = child {
                        for (from, to) in [
                            ("#/definitions/", "#/components/schemas/"),
                            ("#/parameters/", "#/components/parameters/"),
                            ("#/responses/", "#/components/responses/"),
                        ] {
                            if let Some(rest) = r.strip_prefix(from) {
                                *r = format!("{to}{rest}");
                                break;
                            }
                        }
                    }
                } else if name_map
                    || !(key.starts_with("x-") || matches!(key.as_str(), "example" | "examples" | "default" | "enum"))
                {
                    let child_is_map = !name_map
                        && matches!(
                            key.as_str(),
                            "properties"
                                | "schemas"
                                | "parameters"
                                | "responses"
                                | "paths"
                                | "headers"
                                | "content"
                                | "requestBodies"
                                | "securitySchemes"
                        );
                    rewrite_refs(child, child_is_map);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_refs(v, false)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_are_distinct_and_few() {
        let many: Vec<String> = (0..100_000).map(|i| format!("a/{i}")).collect();
        assert_eq!(media_list(Some(&json!(many))).len(), MAX_MEDIA_TYPES);
        assert_eq!(media_list(Some(&json!(["a/json", "a/json", "b/xml"]))), ["a/json", "b/xml"]);
        assert_eq!(media_list(Some(&json!([]))), ["application/json"]);
    }

    #[test]
    fn converts_the_shape_of_a_swagger_document() {
        let doc = json!({
            "swagger": "2.0",
            "info": {"title": "T", "version": "1"},
            "host": "api.example.com", "basePath": "/v1", "schemes": ["https", "http"],
            "consumes": ["application/json"], "produces": ["application/json", "application/xml"],
            "securityDefinitions": {"key": {"type": "apiKey", "name": "api_key", "in": "header"},
                                    "oauth": {"type": "oauth2", "flow": "accessCode", "authorizationUrl": "https://a", "tokenUrl": "https://t", "scopes": {"r": "read"}}},
            "parameters": {"limit": {"name": "limit", "in": "query", "type": "integer"}},
            "definitions": {"Pet": {"type": "object", "discriminator": "kind", "properties": {"owner": {"$ref": "#/definitions/Owner"}, "photo": {"type": "file"}}},
                            "Owner": {"type": "object", "x-nullable": true}},
            "paths": {"/pets": {
                "parameters": [{"name": "trace", "in": "header", "type": "string"}],
                "get": {"parameters": [{"$ref": "#/parameters/limit"}, {"name": "tags", "in": "query", "type": "array", "items": {"type": "string"}, "collectionFormat": "multi"}],
                        "responses": {"200": {"description": "ok", "schema": {"type": "array", "items": {"$ref": "#/definitions/Pet"}}}}},
                "post": {"parameters": [{"name": "pet", "in": "body", "required": true, "schema": {"$ref": "#/definitions/Pet"}}],
                         "responses": {"201": {"description": "created"}}},
                "put": {"consumes": ["multipart/form-data"], "parameters": [{"name": "file", "in": "formData", "type": "file", "required": true}, {"name": "note", "in": "formData", "type": "string"}],
                        "responses": {"200": {"description": "ok"}}}
            }}
        });
        let out = swagger2_to_openapi30(&doc).expect("a value");
        assert_eq!(
            out["servers"],
            json!([{"url": "https://api.example.com/v1"}, {"url": "http://api.example.com/v1"}])
        );
        assert_eq!(out["components"]["schemas"]["Pet"]["properties"]["owner"]["$ref"], "#/components/schemas/Owner");
        assert_eq!(
            out["components"]["schemas"]["Pet"]["properties"]["photo"],
            json!({"type": "string", "format": "binary"})
        );
        assert_eq!(out["components"]["schemas"]["Pet"]["discriminator"], json!({"propertyName": "kind"}));
        assert_eq!(out["components"]["schemas"]["Owner"]["nullable"], json!(true));
        assert_eq!(
            out["components"]["securitySchemes"]["oauth"]["flows"]["authorizationCode"]["tokenUrl"],
            "https://t"
        );
        let get = &out["paths"]["/pets"]["get"];
        assert_eq!(get["parameters"].as_array().expect("a value").len(), 3);
        assert_eq!(get["parameters"][2]["explode"], json!(true));
        assert_eq!(
            get["responses"]["200"]["content"]["application/xml"]["schema"]["items"]["$ref"],
            "#/components/schemas/Pet"
        );
        let post = &out["paths"]["/pets"]["post"];
        assert_eq!(post["requestBody"]["required"], json!(true));
        assert_eq!(post["requestBody"]["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/Pet");
        let put = &out["paths"]["/pets"]["put"];
        assert_eq!(put["requestBody"]["content"]["multipart/form-data"]["schema"]["required"], json!(["file"]));
    }
}
