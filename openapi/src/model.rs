//! One version-independent model of an API description: what the
//! breaking-change detector compares.
//!
//! Built from an OpenAPI 3.x `Value` (Swagger 2.0 is converted first).
//! Schemas are summarised (types, properties, required, enum, items,
//! composition, format) with local `$ref`s resolved. Each reference target
//! is expanded once and shared (`Arc`), so a schema used in a thousand
//! places costs one expansion. A reference back into a schema that is
//! still being expanded (recursion), or one past `REF_CUT_DEPTH`, becomes
//! a cut node (`recursive: true`) naming its target; the target's
//! expansion is in `ApiModel::schemas`, so nothing is lost and the model
//! stays finite and linear in the size of the document.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::document::{ImportError, METHODS, pointer_segment};
use crate::refs;

/// Schema nodes one document may expand to (about 300 bytes each). Each
/// reference target is expanded once, so this is roughly the number of
/// schema objects in the text: real documents stay far below it; YAML
/// aliases that repeat large inline schemas are what reaches it.
pub const MAX_SCHEMA_NODES: usize = 1_000_000;

/// Schema nesting (inline and through `$ref`s) from which references are
/// cut instead of expanded in place; inline nesting is bounded by the
/// document's own nesting limit, so recursion stays inside a thread's stack.
pub const REF_CUT_DEPTH: usize = 64;

/// Hard stop for inline nesting (not reachable with `MAX_NESTING` text).
const MAX_SCHEMA_DEPTH: usize = 160;

pub type SchemaRef = Arc<Schema>;

/// The model of one document.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ApiModel {
    /// `2.0`, `3.0.x` or `3.1.x`, as the document declares.
    pub spec_version: String,
    /// Server URLs (`host`/`basePath`/`schemes` for 2.0).
    pub servers: Vec<String>,
    /// Operations keyed by `"METHOD /path/{template}"`.
    pub operations: BTreeMap<String, OperationModel>,
    /// Names of the security schemes the document defines.
    pub security_schemes: BTreeSet<String>,
    /// Every schema reached through a `$ref`, by canonical pointer
    /// (`/components/schemas/Pet`); cut nodes resolve through this.
    pub schemas: BTreeMap<String, SchemaRef>,
}

impl ApiModel {
    pub fn operation(&self, method: &str, path: &str) -> Option<&OperationModel> {
        self.operations.get(&operation_key(method, path))
    }

    /// The schema a cut node stands for; any other schema as it is.
    pub fn resolve<'s>(&'s self, mut schema: &'s SchemaRef) -> &'s SchemaRef {
        // A cut target may itself be a cut (a chain past the depth limit).
        for _ in 0..MAX_SCHEMA_DEPTH {
            match (&schema.reference, schema.recursive) {
                (Some(pointer), true) => match self.schemas.get(pointer) {
                    Some(target) if !Arc::ptr_eq(target, schema) => schema = target,
                    _ => break,
                },
                _ => break,
            }
        }
        schema
    }
}

/// `"GET /pets/{id}"`.
pub fn operation_key(method: &str, path: &str) -> String {
    format!("{} {path}", method.to_ascii_uppercase())
}

#[derive(Debug, Clone, PartialEq)]
pub struct OperationModel {
    /// Upper-case.
    pub method: String,
    pub path: String,
    /// Where the operation sits in the (for 2.0: converted) document.
    pub pointer: String,
    pub operation_id: Option<String>,
    pub summary: Option<String>,
    pub description: Option<String>,
    pub deprecated: bool,
    /// Path-level and operation parameters merged, in document order.
    pub parameters: Vec<Parameter>,
    pub request_body: Option<RequestBody>,
    /// Status code (`200`, `4XX`, `default`) → response.
    pub responses: BTreeMap<String, Response>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParameterLocation {
    Path,
    Query,
    Header,
    Cookie,
}

impl ParameterLocation {
    pub fn as_str(self) -> &'static str {
        match self {
            ParameterLocation::Path => "path",
            ParameterLocation::Query => "query",
            ParameterLocation::Header => "header",
            ParameterLocation::Cookie => "cookie",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Parameter {
    pub name: String,
    pub location: ParameterLocation,
    pub required: bool,
    pub deprecated: bool,
    pub schema: Option<SchemaRef>,
    pub pointer: String,
    /// The component it was reached through (`/components/parameters/per-page`).
    pub component: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RequestBody {
    pub required: bool,
    /// Media type → schema (if the document gives one).
    pub content: BTreeMap<String, Option<SchemaRef>>,
    pub pointer: String,
    /// The component it was reached through (`/components/requestBodies/Pet`).
    pub component: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub content: BTreeMap<String, Option<SchemaRef>>,
    pub pointer: String,
    /// The component it was reached through (`/components/responses/not_found`).
    pub component: Option<String>,
}

/// The pointer a `$ref` led to, if `value` was reached through one.
fn component_of(here: &str, reached: &str) -> Option<String> {
    (here != reached).then(|| reached.to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JsonType {
    Null,
    Boolean,
    Integer,
    Number,
    String,
    Array,
    Object,
}

impl JsonType {
    pub fn parse(name: &str) -> Option<JsonType> {
        Some(match name {
            "null" => JsonType::Null,
            "boolean" => JsonType::Boolean,
            "integer" => JsonType::Integer,
            "number" => JsonType::Number,
            "string" => JsonType::String,
            "array" => JsonType::Array,
            "object" => JsonType::Object,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JsonType::Null => "null",
            JsonType::Boolean => "boolean",
            JsonType::Integer => "integer",
            JsonType::Number => "number",
            JsonType::String => "string",
            JsonType::Array => "array",
            JsonType::Object => "object",
        }
    }
}

/// A normalised JSON Schema summary. Keywords the detector does not use
/// (bounds, patterns, descriptions) are left out.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Schema {
    /// Allowed types; empty means any. 3.0 `nullable` and 3.1 `"null"` in a
    /// type array both add `Null`.
    pub types: BTreeSet<JsonType>,
    /// `null` is allowed: 3.0 `nullable: true` (also beside a bare `allOf`,
    /// `oneOf` or `anyOf`, where it has no type to add `Null` to) or 3.1
    /// `"null"` in the type array.
    pub nullable: bool,
    pub format: Option<String>,
    pub properties: BTreeMap<String, SchemaRef>,
    pub required: BTreeSet<String>,
    /// Canonical JSON text of each allowed value (`const` is a one-value enum).
    pub enum_values: Option<BTreeSet<String>>,
    pub items: Option<SchemaRef>,
    pub additional_properties: Option<SchemaRef>,
    pub all_of: Vec<SchemaRef>,
    pub one_of: Vec<SchemaRef>,
    pub any_of: Vec<SchemaRef>,
    /// The discriminator's property name.
    pub discriminator: Option<String>,
    pub read_only: bool,
    pub write_only: bool,
    /// The short name (`Pet`) of the `$ref` this schema was reached through.
    pub ref_name: Option<String>,
    /// The canonical pointer of that `$ref`'s target.
    pub reference: Option<String>,
    /// A cut node: only `ref_name` and `reference` are set; the target is
    /// in `ApiModel::schemas`.
    pub recursive: bool,
}

/// Builds the model from an OpenAPI 3.x document (already checked for
/// `openapi`/`swagger` and `info`). Also returns the operation keys in
/// document order.
pub(crate) fn build(doc: &Value, spec_version: &str) -> Result<(ApiModel, Vec<String>), ImportError> {
    let mut order = Vec::new();
    let mut model = ApiModel { spec_version: spec_version.to_owned(), ..ApiModel::default() };
    if let Some(Value::Array(servers)) = doc.get("servers") {
        model.servers =
            servers.iter().filter_map(|s| s.get("url").and_then(Value::as_str)).map(str::to_owned).collect();
    }
    if let Some(Value::Object(schemes)) = doc.pointer("/components/securitySchemes") {
        model.security_schemes = schemes.keys().cloned().collect();
    }
    let paths = match doc.get("paths") {
        Some(Value::Object(paths)) => paths,
        Some(_) => return Err(ImportError::at("/paths", "must be an object")),
        // 3.1 allows a webhooks-only document with no paths.
        None if spec_version.starts_with("3.1") => return Ok((model, order)),
        None => return Err(ImportError::at("/paths", "is required")),
    };
    let mut builder = Builder { doc, schemas: Expander::new(doc, spec_version.starts_with("3.1")) };
    for (path, item) in paths {
        if path.starts_with("x-") {
            continue;
        }
        let here = format!("/paths/{}", pointer_segment(path));
        if !path.starts_with('/') {
            return Err(ImportError::at(here, "a path must start with `/`"));
        }
        if !item.is_object() {
            return Err(ImportError::at(here, "a path item must be an object"));
        }
        let (item, item_at) = refs::follow(doc, item, &here)?;
        let Value::Object(item) = item else {
            return Err(ImportError::at(item_at, "a path item must be an object"));
        };
        let shared = builder.parameters(item.get("parameters"), &format!("{item_at}/parameters"))?;
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let at = format!("{item_at}/{method}");
            let Value::Object(op) = op else {
                return Err(ImportError::at(at, "an operation must be an object"));
            };
            let operation = builder.operation(method, path, op, &at, &shared)?;
            let key = operation_key(method, path);
            order.push(key.clone());
            model.operations.insert(key, operation);
        }
    }
    model.schemas = builder.schemas.finish()?;
    Ok((model, order))
}

struct Builder<'d> {
    doc: &'d Value,
    schemas: Expander<'d>,
}

impl<'d> Builder<'d> {
    fn operation(
        &mut self,
        method: &str,
        path: &str,
        op: &'d Map<String, Value>,
        at: &str,
        shared: &[Parameter],
    ) -> Result<OperationModel, ImportError> {
        let operation_id = match op.get("operationId") {
            None => None,
            Some(Value::String(id)) if !id.trim().is_empty() => Some(id.trim().to_owned()),
            Some(_) => return Err(ImportError::at(format!("{at}/operationId"), "must be a non-empty string")),
        };
        let mut parameters = shared.to_vec();
        for p in self.parameters(op.get("parameters"), &format!("{at}/parameters"))? {
            parameters.retain(|q| !(q.location == p.location && same_name(q, &p)));
            parameters.push(p);
        }
        let request_body = match op.get("requestBody") {
            None => None,
            Some(body) => {
                let here = format!("{at}/requestBody");
                let (body, body_at) = refs::follow(self.doc, body, &here)?;
                let Value::Object(fields) = body else {
                    return Err(ImportError::at(body_at, "a request body must be an object"));
                };
                Some(RequestBody {
                    required: fields.get("required").and_then(Value::as_bool).unwrap_or(false),
                    content: self.content(fields.get("content"), &format!("{body_at}/content"))?,
                    component: component_of(&here, &body_at),
                    pointer: here,
                })
            }
        };
        let mut responses = BTreeMap::new();
        match op.get("responses") {
            None => {}
            Some(Value::Object(map)) => {
                for (status, r) in map {
                    if status.starts_with("x-") {
                        continue;
                    }
                    let here = format!("{at}/responses/{}", pointer_segment(status));
                    let (r, r_at) = refs::follow(self.doc, r, &here)?;
                    let Value::Object(fields) = r else {
                        return Err(ImportError::at(r_at, "a response must be an object"));
                    };
                    let content = self.content(fields.get("content"), &format!("{r_at}/content"))?;
                    let component = component_of(&here, &r_at);
                    responses.insert(status.clone(), Response { content, pointer: here, component });
                }
            }
            Some(_) => return Err(ImportError::at(format!("{at}/responses"), "must be an object")),
        }
        Ok(OperationModel {
            method: method.to_ascii_uppercase(),
            path: path.to_owned(),
            pointer: at.to_owned(),
            operation_id,
            summary: op.get("summary").and_then(Value::as_str).map(str::to_owned),
            description: op.get("description").and_then(Value::as_str).map(str::to_owned),
            deprecated: op.get("deprecated").and_then(Value::as_bool).unwrap_or(false),
            parameters,
            request_body,
            responses,
        })
    }

    fn parameters(&mut self, list: Option<&'d Value>, at: &str) -> Result<Vec<Parameter>, ImportError> {
        let Some(list) = list else { return Ok(Vec::new()) };
        let Value::Array(list) = list else {
            return Err(ImportError::at(at, "must be an array of parameters"));
        };
        let mut out: Vec<Parameter> = Vec::with_capacity(list.len());
        for (i, p) in list.iter().enumerate() {
            let here = format!("{at}/{i}");
            let (p, p_at) = refs::follow(self.doc, p, &here)?;
            let Value::Object(fields) = p else {
                return Err(ImportError::at(p_at, "a parameter must be an object"));
            };
            let name = match fields.get("name") {
                Some(Value::String(name)) if !name.is_empty() => name.clone(),
                _ => return Err(ImportError::at(format!("{p_at}/name"), "is required and must be a non-empty string")),
            };
            let location = match fields.get("in").and_then(Value::as_str) {
                Some("path") => ParameterLocation::Path,
                Some("query") => ParameterLocation::Query,
                Some("header") => ParameterLocation::Header,
                Some("cookie") => ParameterLocation::Cookie,
                _ => return Err(ImportError::at(format!("{p_at}/in"), "must be one of path, query, header or cookie")),
            };
            let schema = match (fields.get("schema"), fields.get("content")) {
                (Some(s), _) => Some(self.schemas.root(s, &format!("{p_at}/schema"))?),
                // A parameter described by `content` has one media type.
                (None, Some(_)) => {
                    self.content(fields.get("content"), &format!("{p_at}/content"))?.into_values().next().flatten()
                }
                (None, None) => None,
            };
            let parameter = Parameter {
                // Path parameters are always required, whatever the document says.
                required: location == ParameterLocation::Path
                    || fields.get("required").and_then(Value::as_bool).unwrap_or(false),
                deprecated: fields.get("deprecated").and_then(Value::as_bool).unwrap_or(false),
                name,
                location,
                schema,
                component: component_of(&here, &p_at),
                pointer: here,
            };
            out.retain(|q| !(q.location == parameter.location && same_name(q, &parameter)));
            out.push(parameter);
        }
        Ok(out)
    }

    fn content(
        &mut self,
        content: Option<&'d Value>,
        at: &str,
    ) -> Result<BTreeMap<String, Option<SchemaRef>>, ImportError> {
        let mut out = BTreeMap::new();
        match content {
            None => {}
            Some(Value::Object(map)) => {
                for (media_type, media) in map {
                    let here = format!("{at}/{}", pointer_segment(media_type));
                    let schema = match media.get("schema") {
                        Some(s) => Some(self.schemas.root(s, &format!("{here}/schema"))?),
                        None => None,
                    };
                    out.insert(media_type.clone(), schema);
                }
            }
            Some(_) => return Err(ImportError::at(at, "must be an object keyed by media type")),
        }
        Ok(out)
    }
}

/// Header names are case-insensitive.
pub(crate) fn same_name(a: &Parameter, b: &Parameter) -> bool {
    if a.location == ParameterLocation::Header { a.name.eq_ignore_ascii_case(&b.name) } else { a.name == b.name }
}

/// Expands schemas with `$ref`s resolved: `memo` holds each expanded
/// target, `stack` the targets being expanded (to cut recursion), and
/// `pending` cut targets not expanded yet.
struct Expander<'d> {
    doc: &'d Value,
    v31: bool,
    memo: HashMap<String, SchemaRef>,
    /// Schemas of shared components that are not `$ref` targets themselves.
    roots: HashMap<String, SchemaRef>,
    stack: Vec<String>,
    pending: Vec<String>,
    nodes: usize,
    max_nodes: usize,
    depth: usize,
}

impl<'d> Expander<'d> {
    fn new(doc: &'d Value, v31: bool) -> Self {
        Expander {
            doc,
            v31,
            memo: HashMap::new(),
            roots: HashMap::new(),
            stack: Vec::new(),
            pending: Vec::new(),
            nodes: 0,
            max_nodes: MAX_SCHEMA_NODES,
            depth: 0,
        }
    }

    /// A schema a parameter, body or response holds, expanded once per place in the
    /// document and shared, like a `$ref` target: one inside a component (a shared response
    /// or parameter), or inside a path item that other paths `$ref` (each would expand it
    /// again: 150,000 paths referring to one with a 3,000,000-value enum).
    fn root(&mut self, value: &'d Value, at: &str) -> Result<SchemaRef, ImportError> {
        if let Some(done) = self.roots.get(at) {
            return Ok(Arc::clone(done));
        }
        let schema = self.schema(value, at)?;
        self.roots.insert(at.to_owned(), Arc::clone(&schema));
        Ok(schema)
    }

    /// Expands targets that were cut before they were ever expanded, and
    /// hands over the table of all expanded targets.
    fn finish(mut self) -> Result<BTreeMap<String, SchemaRef>, ImportError> {
        while let Some(pointer) = self.pending.pop() {
            if !self.memo.contains_key(&pointer) {
                self.reference(&format!("#{pointer}"), &pointer)?;
            }
        }
        Ok(self.memo.into_iter().collect())
    }

    fn schema(&mut self, value: &'d Value, at: &str) -> Result<SchemaRef, ImportError> {
        if self.depth >= MAX_SCHEMA_DEPTH {
            return Ok(Arc::new(Schema { recursive: true, ..Schema::default() }));
        }
        self.depth += 1;
        let result = self.schema_at_depth(value, at);
        self.depth -= 1;
        result
    }

    fn schema_at_depth(&mut self, value: &'d Value, at: &str) -> Result<SchemaRef, ImportError> {
        // An enum's values and the required names are copied into the model: they count.
        let listed = |key: &str| value.get(key).and_then(Value::as_array).map_or(0, Vec::len);
        self.nodes = self.nodes.saturating_add(1 + listed("enum") + listed("required"));
        if self.nodes > self.max_nodes {
            return Err(ImportError::at(
                at,
                format!(
                    "the document's schemas expand to more than {} nodes; this is too large to analyse",
                    self.max_nodes
                ),
            ));
        }
        let fields = match value {
            Value::Object(fields) => fields,
            // 3.1 boolean schemas: `true` accepts anything; `false` is rare
            // enough not to model.
            Value::Bool(_) => return Ok(Arc::new(Schema::default())),
            _ => return Err(ImportError::at(at, "a schema must be an object")),
        };
        if let Some(reference) = fields.get("$ref") {
            let Value::String(reference) = reference else {
                return Err(ImportError::at(format!("{at}/$ref"), "must be a string"));
            };
            let target = self.reference(reference, &format!("{at}/$ref"))?;
            // In 3.1 a `$ref` may have sibling keywords, which also apply.
            if self.v31 && fields.keys().any(|k| SCHEMA_SHAPING.contains(&k.as_str())) {
                let rest = self.fields(fields, at)?;
                return Ok(Arc::new(Schema { all_of: vec![target, rest], ..Schema::default() }));
            }
            return Ok(target);
        }
        self.fields(fields, at)
    }

    fn reference(&mut self, reference: &str, at: &str) -> Result<SchemaRef, ImportError> {
        let (target, pointer) = refs::resolve(self.doc, reference, at)?;
        if let Some(done) = self.memo.get(&pointer) {
            return Ok(Arc::clone(done));
        }
        let name = pointer.rsplit('/').next().map(|s| s.replace("~1", "/").replace("~0", "~")).unwrap_or_default();
        let recursion = self.stack.contains(&pointer);
        if recursion || self.depth >= REF_CUT_DEPTH {
            if !recursion {
                self.pending.push(pointer.clone());
            }
            return Ok(Arc::new(Schema {
                ref_name: Some(name),
                reference: Some(pointer),
                recursive: true,
                ..Schema::default()
            }));
        }
        self.stack.push(pointer.clone());
        let result = self.schema(target, &pointer);
        self.stack.pop();
        let mut schema = result?;
        if schema.recursive
            && schema.reference.as_deref() == Some(pointer.as_str())
            && !self.memo.contains_key(&pointer)
        {
            return Err(ImportError::at(
                at,
                format!("`{reference}` is part of a reference cycle that never reaches a schema"),
            ));
        }
        // A chain (`A` is just `$ref: B`) keeps the innermost name.
        if schema.reference.is_none() {
            let s = Arc::make_mut(&mut schema);
            s.ref_name = Some(name);
            s.reference = Some(pointer.clone());
        }
        self.memo.insert(pointer, Arc::clone(&schema));
        Ok(schema)
    }

    fn fields(&mut self, fields: &'d Map<String, Value>, at: &str) -> Result<SchemaRef, ImportError> {
        let mut s = Schema::default();
        match fields.get("type") {
            Some(Value::String(t)) => s.types.extend(JsonType::parse(t)),
            Some(Value::Array(list)) => {
                s.types.extend(list.iter().filter_map(Value::as_str).filter_map(JsonType::parse))
            }
            _ => {}
        }
        if fields.get("nullable").and_then(Value::as_bool) == Some(true) {
            s.nullable = true;
            if !s.types.is_empty() {
                s.types.insert(JsonType::Null);
            }
        }
        s.nullable |= s.types.contains(&JsonType::Null);
        s.format = fields.get("format").and_then(Value::as_str).map(str::to_owned);
        if let Some(Value::Array(values)) = fields.get("enum") {
            s.enum_values = Some(values.iter().map(Value::to_string).collect());
        }
        if let Some(value) = fields.get("const") {
            s.enum_values = Some(BTreeSet::from([value.to_string()]));
        }
        if let Some(Value::Array(required)) = fields.get("required") {
            s.required = required.iter().filter_map(Value::as_str).map(str::to_owned).collect();
        }
        s.read_only = fields.get("readOnly").and_then(Value::as_bool).unwrap_or(false);
        s.write_only = fields.get("writeOnly").and_then(Value::as_bool).unwrap_or(false);
        s.discriminator = match fields.get("discriminator") {
            Some(Value::Object(d)) => d.get("propertyName").and_then(Value::as_str).map(str::to_owned),
            Some(Value::String(name)) => Some(name.clone()),
            _ => None,
        };
        if let Some(Value::Object(props)) = fields.get("properties") {
            for (name, p) in props {
                let child = self.schema(p, &format!("{at}/properties/{}", pointer_segment(name)))?;
                s.properties.insert(name.clone(), child);
            }
        }
        for (key, slot) in [("items", &mut s.items), ("additionalProperties", &mut s.additional_properties)] {
            if let Some(child @ Value::Object(_)) = fields.get(key) {
                *slot = Some(self.schema(child, &format!("{at}/{key}"))?);
            }
        }
        for (key, list) in [("allOf", &mut s.all_of), ("oneOf", &mut s.one_of), ("anyOf", &mut s.any_of)] {
            if let Some(Value::Array(members)) = fields.get(key) {
                for (i, m) in members.iter().enumerate() {
                    list.push(self.schema(m, &format!("{at}/{key}/{i}"))?);
                }
            }
        }
        Ok(Arc::new(s))
    }
}

/// Keywords beside a 3.1 `$ref` that change what the schema accepts.
const SCHEMA_SHAPING: [&str; 12] = [
    "type",
    "properties",
    "required",
    "enum",
    "const",
    "items",
    "allOf",
    "oneOf",
    "anyOf",
    "format",
    "nullable",
    "additionalProperties",
];

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn model(doc: Value) -> ApiModel {
        build(&doc, doc["openapi"].as_str().unwrap_or("3.0.3")).expect("a value").0
    }

    #[test]
    fn resolves_refs_and_normalises_nullability() {
        let m = model(json!({
            "openapi": "3.1.0",
            "paths": {"/pets/{id}": {
                "parameters": [{"name": "id", "in": "path", "schema": {"type": "integer"}}],
                "get": {"responses": {"200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}}}}
            }},
            "components": {"schemas": {
                "Pet": {"type": "object", "required": ["name"], "properties": {
                    "name": {"type": ["string", "null"]},
                    "tag": {"type": "string", "nullable": true, "enum": ["a", "b"]},
                    "parent": {"$ref": "#/components/schemas/Pet"}}}
            }}
        }));
        let op = model_op(&m, "GET /pets/{id}");
        assert!(op.parameters[0].required);
        let pet = op.responses["200"].content["application/json"].clone().expect("a value");
        assert_eq!(pet.ref_name.as_deref(), Some("Pet"));
        assert_eq!(pet.properties["name"].types, BTreeSet::from([JsonType::String, JsonType::Null]));
        assert_eq!(pet.properties["tag"].types, BTreeSet::from([JsonType::String, JsonType::Null]));
        assert_eq!(pet.properties["tag"].enum_values.as_ref().expect("a value").len(), 2);
        let parent = &pet.properties["parent"];
        assert!(parent.recursive);
        assert!(Arc::ptr_eq(m.resolve(parent), &pet));
    }

    fn model_op<'m>(m: &'m ApiModel, key: &str) -> &'m OperationModel {
        m.operations.get(key).expect("a value")
    }

    #[test]
    fn shares_expansions_and_cuts_mutual_recursion() {
        let m = model(json!({
            "openapi": "3.0.3",
            "paths": {"/a": {"get": {"responses": {
                "200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/A"}}}},
                "201": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/A"}}}}}}}},
            "components": {"schemas": {
                "A": {"type": "object", "properties": {"b": {"$ref": "#/components/schemas/B"}}},
                "B": {"type": "object", "properties": {"a": {"$ref": "#/components/schemas/A"}}}
            }}
        }));
        let op = model_op(&m, "GET /a");
        let one = op.responses["200"].content["application/json"].clone().expect("a value");
        let two = op.responses["201"].content["application/json"].clone().expect("a value");
        assert!(Arc::ptr_eq(&one, &two));
        assert!(one.properties["b"].properties["a"].recursive);
    }

    #[test]
    fn caps_expansion_and_refuses_pure_reference_cycles() {
        let doc = json!({"openapi": "3.0.3", "paths": {"/a": {"get": {"responses": {"200": {"content": {"application/json": {"schema":
            {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}, "c": {"type": "string"}}}}}}}}}}});
        let mut expander = Expander::new(&doc, false);
        expander.max_nodes = 3;
        let at = "/paths/~1a/get/responses/200/content/application~1json/schema";
        let err = expander
            .root(&doc["paths"]["/a"]["get"]["responses"]["200"]["content"]["application/json"]["schema"], at)
            .expect_err("an error");
        assert_eq!(err.pointer, format!("{at}/properties/c"));
        assert!(err.message.contains("more than 3 nodes"), "{err}");

        let doc = json!({"openapi": "3.0.3", "paths": {"/a": {"get": {"responses": {"200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/A"}}}}}}}},
            "components": {"schemas": {"A": {"$ref": "#/components/schemas/B"}, "B": {"$ref": "#/components/schemas/A"}}}});
        let err = build(&doc, "3.0.3").expect_err("an error");
        assert!(err.message.contains("never reaches a schema"), "{err}");
    }

    #[test]
    fn locates_bad_parameters_and_dangling_refs() {
        let doc = json!({"openapi": "3.0.3", "paths": {"/a": {"get": {"parameters": [{"name": "x", "in": "body"}]}}}});
        assert_eq!(build(&doc, "3.0.3").expect_err("an error").pointer, "/paths/~1a/get/parameters/0/in");
        let doc = json!({"openapi": "3.0.3", "paths": {"/a": {"get": {"parameters": [{"$ref": "#/components/parameters/nope"}]}}}});
        assert_eq!(build(&doc, "3.0.3").expect_err("an error").pointer, "/paths/~1a/get/parameters/0/$ref");
    }
}
