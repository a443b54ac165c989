//! Breaking-change detection between two versions of an API.
//!
//! `compare(old, new)` walks both models operation by operation. Whether a
//! change breaks depends on which way data flows:
//!
//! * **Requests** (parameters and request bodies) are written by clients, so
//!   the new version must accept everything the old one accepted. Breaking:
//!   a new required parameter or field, an optional one becoming required,
//!   a narrower type or format, enum values removed (or an enum added), a
//!   `oneOf`/`anyOf` variant removed, a media type removed, a body becoming
//!   required. Removing an input (parameter, field) is reported but not
//!   breaking: servers ignore what they no longer read.
//! * **Responses** are read by clients, so the new version must only send
//!   what the old one could. Breaking: a field removed or no longer
//!   required, a wider type or format, enum values added (or an enum
//!   dropped), a variant added, a media type removed, a success or default
//!   status removed. Adding enum values to a response is breaking because
//!   strict clients (generated code with closed enums) fail on unknown
//!   values; removing a 4xx/5xx status is not.
//! * **Operations**: removing one is breaking; adding one, deprecating
//!   one, renaming a path parameter, or changing operationId, summary or
//!   description is not (operationId changes are still reported, as
//!   Tollgate derives method names from them).
//!
//! `readOnly` properties are ignored in requests and `writeOnly` ones in
//! responses; `allOf` members are merged before comparing. A schema shared
//! by many places of one operation is compared once per operation and
//! direction, at its first place; that also ends walks around recursive
//! schemas. `MAX_DIFF_WORK` bounds the whole comparison (`truncated`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use crate::document::pointer_segment;
use crate::model::{ApiModel, JsonType, OperationModel, Parameter, ParameterLocation, Schema, SchemaRef};

/// Schema comparisons one report may make before it stops (and says so).
pub const MAX_DIFF_WORK: usize = 5_000_000;

const MAX_DIFF_DEPTH: usize = 64;

const NO_TAINT: usize = usize::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    OperationAdded,
    OperationRemoved,
    OperationDeprecated,
    OperationIdChanged,
    SummaryChanged,
    DescriptionChanged,
    PathParameterRenamed,
    ParameterAdded,
    ParameterAddedRequired,
    ParameterRemoved,
    ParameterBecameRequired,
    ParameterBecameOptional,
    RequestBodyAdded,
    RequestBodyBecameRequired,
    RequestBodyBecameOptional,
    RequestBodyRemoved,
    RequestContentTypeAdded,
    RequestContentTypeRemoved,
    RequestFieldAdded,
    RequestFieldRemoved,
    RequestFieldBecameRequired,
    RequestFieldBecameOptional,
    ResponseStatusAdded,
    ResponseStatusRemoved,
    ResponseContentTypeAdded,
    ResponseContentTypeRemoved,
    ResponseFieldAdded,
    ResponseFieldRemoved,
    ResponseFieldBecameRequired,
    ResponseFieldBecameOptional,
    TypeChanged,
    FormatChanged,
    EnumNarrowed,
    EnumWidened,
    VariantAdded,
    VariantRemoved,
    DiscriminatorChanged,
}

impl ChangeKind {
    /// The snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        use ChangeKind::*;
        match self {
            OperationAdded => "operation_added",
            OperationRemoved => "operation_removed",
            OperationDeprecated => "operation_deprecated",
            OperationIdChanged => "operation_id_changed",
            SummaryChanged => "summary_changed",
            DescriptionChanged => "description_changed",
            PathParameterRenamed => "path_parameter_renamed",
            ParameterAdded => "parameter_added",
            ParameterAddedRequired => "parameter_added_required",
            ParameterRemoved => "parameter_removed",
            ParameterBecameRequired => "parameter_became_required",
            ParameterBecameOptional => "parameter_became_optional",
            RequestBodyAdded => "request_body_added",
            RequestBodyBecameRequired => "request_body_became_required",
            RequestBodyBecameOptional => "request_body_became_optional",
            RequestBodyRemoved => "request_body_removed",
            RequestContentTypeAdded => "request_content_type_added",
            RequestContentTypeRemoved => "request_content_type_removed",
            RequestFieldAdded => "request_field_added",
            RequestFieldRemoved => "request_field_removed",
            RequestFieldBecameRequired => "request_field_became_required",
            RequestFieldBecameOptional => "request_field_became_optional",
            ResponseStatusAdded => "response_status_added",
            ResponseStatusRemoved => "response_status_removed",
            ResponseContentTypeAdded => "response_content_type_added",
            ResponseContentTypeRemoved => "response_content_type_removed",
            ResponseFieldAdded => "response_field_added",
            ResponseFieldRemoved => "response_field_removed",
            ResponseFieldBecameRequired => "response_field_became_required",
            ResponseFieldBecameOptional => "response_field_became_optional",
            TypeChanged => "type_changed",
            FormatChanged => "format_changed",
            EnumNarrowed => "enum_narrowed",
            EnumWidened => "enum_widened",
            VariantAdded => "variant_added",
            VariantRemoved => "variant_removed",
            DiscriminatorChanged => "discriminator_changed",
        }
    }
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One difference between the two versions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Change {
    pub kind: ChangeKind,
    pub breaking: bool,
    /// `"GET /pets/{id}"`.
    pub operation: String,
    /// Where, as a JSON pointer into the new document (the old one for
    /// removals), with `$ref`s read as if inlined; for Swagger 2.0 it
    /// follows the OpenAPI 3 layout the document converts to.
    pub pointer: String,
    /// Where, for people: `response 200 (application/json) field `pet.name``.
    pub location: String,
    /// A sentence describing the change.
    pub message: String,
}

/// The result of `compare`, stored as JSON with each imported version.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChangeReport {
    pub operations_added: Vec<String>,
    pub operations_removed: Vec<String>,
    /// Operations present in both versions with at least one change.
    pub operations_changed: Vec<String>,
    pub changes: Vec<Change>,
    pub breaking_count: usize,
    pub non_breaking_count: usize,
    /// The comparison stopped early (`MAX_DIFF_WORK`); changes may be missing.
    #[serde(default)]
    pub truncated: bool,
}

impl ChangeReport {
    pub fn breaking(&self) -> bool {
        self.breaking_count > 0
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Lines for people: a headline, then breaking changes, then the rest.
    pub fn summary_lines(&self) -> Vec<String> {
        let plural = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut lines = Vec::with_capacity(self.changes.len() + 2);
        if self.changes.is_empty() {
            lines.push("No changes to operations, parameters, bodies or responses.".to_owned());
        } else {
            lines.push(format!(
                "{}, {}; operations: {} added, {} removed, {} changed.",
                plural(self.breaking_count, "breaking change", "breaking changes"),
                plural(self.non_breaking_count, "other change", "other changes"),
                self.operations_added.len(),
                self.operations_removed.len(),
                self.operations_changed.len()
            ));
        }
        if self.truncated {
            lines.push("The comparison stopped early: the documents are too large to compare completely.".to_owned());
        }
        for breaking in [true, false] {
            for c in self.changes.iter().filter(|c| c.breaking == breaking) {
                lines.push(format!("{} {}: {}", if breaking { "BREAKING" } else { "change" }, c.operation, c.message));
            }
        }
        lines
    }
}

impl fmt::Display for ChangeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in self.summary_lines() {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

/// Compares two versions of an API.
pub fn compare(old: &ApiModel, new: &ApiModel) -> ChangeReport {
    let mut report = ChangeReport::default();
    let mut differ = Differ {
        old,
        new,
        changes: Vec::new(),
        operation: String::new(),
        visited: HashSet::new(),
        clean: HashSet::new(),
        stack: HashMap::new(),
        low: NO_TAINT,
        work: 0,
        truncated: false,
    };

    // Operations whose paths differ only in parameter names are the same
    // operation (`/pets/{id}` → `/pets/{petId}`).
    let mut unmatched_new: BTreeMap<String, &OperationModel> =
        new.operations.iter().filter(|(k, _)| !old.operations.contains_key(*k)).map(|(k, v)| (k.clone(), v)).collect();
    let mut pairs: Vec<(&OperationModel, &OperationModel)> = Vec::new();
    for (key, old_op) in &old.operations {
        if let Some(new_op) = new.operations.get(key) {
            pairs.push((old_op, new_op));
            continue;
        }
        let shape = template_shape(&old_op.path);
        let renamed = unmatched_new
            .iter()
            .find(|(_, n)| n.method == old_op.method && template_shape(&n.path) == shape)
            .map(|(k, _)| k.clone());
        match renamed.and_then(|k| unmatched_new.remove(&k)) {
            Some(new_op) => pairs.push((old_op, new_op)),
            None => {
                report.operations_removed.push(key.clone());
                differ.operation = key.clone();
                differ.push(
                    ChangeKind::OperationRemoved,
                    true,
                    &old_op.pointer,
                    "operation",
                    format!("{key} was removed."),
                );
            }
        }
    }
    for (key, new_op) in &unmatched_new {
        report.operations_added.push(key.clone());
        differ.operation = key.clone();
        differ.push(ChangeKind::OperationAdded, false, &new_op.pointer, "operation", format!("{key} was added."));
    }
    for (old_op, new_op) in pairs {
        let before = differ.changes.len();
        differ.operation = format!("{} {}", new_op.method, new_op.path);
        differ.visited.clear();
        differ.low = NO_TAINT;
        differ.operation_pair(old_op, new_op);
        if differ.changes.len() > before {
            report.operations_changed.push(differ.operation.clone());
        }
    }
    report.breaking_count = differ.changes.iter().filter(|c| c.breaking).count();
    report.non_breaking_count = differ.changes.len() - report.breaking_count;
    report.changes = differ.changes;
    report.truncated = differ.truncated;
    report.operations_changed.sort();
    report
}

/// `/pets/{id}/toys` → `/pets/{}/toys`.
fn template_shape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            _ if !in_param => out.push(c),
            _ => {}
        }
    }
    out
}

fn path_param_names(path: &str) -> Vec<&str> {
    path.split('{').skip(1).filter_map(|rest| rest.split_once('}').map(|(name, _)| name)).collect()
}

/// Media type → schema, as a request body or a response has them.
type Content = BTreeMap<String, Option<SchemaRef>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Direction {
    Request,
    Response,
}

/// Where a schema sits: its pointer, what it belongs to, and the dotted
/// field path inside it.
#[derive(Clone)]
struct Place {
    pointer: String,
    what: String,
    field: String,
}

impl Place {
    fn describe(&self) -> String {
        if self.field.is_empty() { self.what.clone() } else { format!("{} field `{}`", self.what, self.field) }
    }

    fn child(&self, pointer_suffix: &str, field_suffix: &str, dot: bool) -> Place {
        let field = if self.field.is_empty() || !dot {
            format!("{}{field_suffix}", self.field)
        } else {
            format!("{}.{field_suffix}", self.field)
        };
        Place { pointer: format!("{}{pointer_suffix}", self.pointer), what: self.what.clone(), field }
    }
}

struct Differ<'m> {
    old: &'m ApiModel,
    new: &'m ApiModel,
    changes: Vec<Change>,
    operation: String,
    /// Schema pairs already compared in this operation, by direction.
    visited: HashSet<(usize, usize, Direction)>,
    /// Pairs whose whole subtree was compared and found equal: skipped in
    /// every later operation (shared schemas are compared once).
    clean: HashSet<(usize, usize, Direction)>,
    /// Pairs being compared, by depth of the walk: meeting one again is a
    /// cycle, assumed equal until the pair where it started completes.
    stack: HashMap<(usize, usize, Direction), usize>,
    /// The shallowest pair on `stack` the current walk relied on (`NO_TAINT`
    /// for none; 0 when it skipped something it cannot vouch for).
    low: usize,
    work: usize,
    truncated: bool,
}

impl<'m> Differ<'m> {
    fn push(&mut self, kind: ChangeKind, breaking: bool, pointer: &str, location: &str, message: String) {
        self.changes.push(Change {
            kind,
            breaking,
            operation: self.operation.clone(),
            pointer: pointer.to_owned(),
            location: location.to_owned(),
            message,
        });
    }

    fn at(&mut self, kind: ChangeKind, breaking: bool, place: &Place, message: String) {
        let location = place.describe();
        self.push(kind, breaking, &place.pointer, &location, message);
    }

    fn operation_pair(&mut self, old: &'m OperationModel, new: &'m OperationModel) {
        let at = &new.pointer;
        if old.path != new.path {
            self.push(
                ChangeKind::PathParameterRenamed,
                false,
                at,
                "path",
                format!("The path template changed from {} to {} (only parameter names differ).", old.path, new.path),
            );
        }
        if !old.deprecated && new.deprecated {
            self.push(
                ChangeKind::OperationDeprecated,
                false,
                at,
                "operation",
                "The operation is now deprecated.".into(),
            );
        }
        if old.operation_id != new.operation_id {
            let show = |id: &Option<String>| id.as_deref().map_or("none".to_owned(), |s| format!("`{s}`"));
            self.push(
                ChangeKind::OperationIdChanged,
                false,
                &format!("{at}/operationId"),
                "operationId",
                format!(
                    "operationId changed from {} to {} (Tollgate method names derive from it).",
                    show(&old.operation_id),
                    show(&new.operation_id)
                ),
            );
        }
        if old.summary != new.summary {
            self.push(
                ChangeKind::SummaryChanged,
                false,
                &format!("{at}/summary"),
                "summary",
                "The summary changed.".into(),
            );
        }
        if old.description != new.description {
            self.push(
                ChangeKind::DescriptionChanged,
                false,
                &format!("{at}/description"),
                "description",
                "The description changed.".into(),
            );
        }
        self.parameters(old, new);
        self.request_body(old, new);
        self.responses(old, new);
    }

    fn parameters(&mut self, old: &'m OperationModel, new: &'m OperationModel) {
        // Path parameters match by position in the template, so renaming one is not a removal plus an addition.
        let key = |op: &OperationModel, p: &Parameter| -> (ParameterLocation, String) {
            match p.location {
                ParameterLocation::Path => match path_param_names(&op.path).iter().position(|n| *n == p.name) {
                    Some(i) => (p.location, format!("{{#{i}}}")),
                    None => (p.location, p.name.clone()),
                },
                ParameterLocation::Header => (p.location, p.name.to_ascii_lowercase()),
                _ => (p.location, p.name.clone()),
            }
        };
        let old_params: BTreeMap<_, &Parameter> = old.parameters.iter().map(|p| (key(old, p), p)).collect();
        let new_params: BTreeMap<_, &Parameter> = new.parameters.iter().map(|p| (key(new, p), p)).collect();
        for (k, o) in &old_params {
            let label = format!("{} parameter `{}`", o.location.as_str(), o.name);
            match new_params.get(k) {
                None => self.push(
                    ChangeKind::ParameterRemoved,
                    false,
                    &o.pointer,
                    &label,
                    format!("The {label} was removed."),
                ),
                Some(n) => {
                    let label = format!("{} parameter `{}`", n.location.as_str(), n.name);
                    if !o.required && n.required {
                        self.push(
                            ChangeKind::ParameterBecameRequired,
                            true,
                            &n.pointer,
                            &label,
                            format!("The {label} is now required."),
                        );
                    } else if o.required && !n.required {
                        self.push(
                            ChangeKind::ParameterBecameOptional,
                            false,
                            &n.pointer,
                            &label,
                            format!("The {label} is now optional."),
                        );
                    }
                    if let (Some(os), Some(ns)) = (&o.schema, &n.schema) {
                        let place =
                            Place { pointer: format!("{}/schema", n.pointer), what: label, field: String::new() };
                        self.schema(os, ns, Direction::Request, &place, 0);
                    }
                }
            }
        }
        for (k, n) in &new_params {
            if old_params.contains_key(k) {
                continue;
            }
            let label = format!("{} parameter `{}`", n.location.as_str(), n.name);
            if n.required {
                self.push(
                    ChangeKind::ParameterAddedRequired,
                    true,
                    &n.pointer,
                    &label,
                    format!("A new required {label} was added."),
                );
            } else {
                self.push(
                    ChangeKind::ParameterAdded,
                    false,
                    &n.pointer,
                    &label,
                    format!("A new optional {label} was added."),
                );
            }
        }
    }

    fn request_body(&mut self, old: &'m OperationModel, new: &'m OperationModel) {
        match (&old.request_body, &new.request_body) {
            (None, None) => {}
            (Some(o), None) => {
                self.push(
                    ChangeKind::RequestBodyRemoved,
                    false,
                    &o.pointer,
                    "request body",
                    "The request body was removed.".into(),
                );
            }
            (None, Some(n)) => {
                if n.required {
                    self.push(
                        ChangeKind::RequestBodyBecameRequired,
                        true,
                        &n.pointer,
                        "request body",
                        "A required request body was added.".into(),
                    );
                } else {
                    self.push(
                        ChangeKind::RequestBodyAdded,
                        false,
                        &n.pointer,
                        "request body",
                        "An optional request body was added.".into(),
                    );
                }
            }
            (Some(o), Some(n)) => {
                if !o.required && n.required {
                    self.push(
                        ChangeKind::RequestBodyBecameRequired,
                        true,
                        &n.pointer,
                        "request body",
                        "The request body is now required.".into(),
                    );
                } else if o.required && !n.required {
                    self.push(
                        ChangeKind::RequestBodyBecameOptional,
                        false,
                        &n.pointer,
                        "request body",
                        "The request body is now optional.".into(),
                    );
                }
                let (old, new) = ((&o.content, o.pointer.as_str()), (&n.content, n.pointer.as_str()));
                self.content(old, new, Direction::Request, "request body", "The request body");
            }
        }
    }

    fn responses(&mut self, old: &'m OperationModel, new: &'m OperationModel) {
        for (status, o) in &old.responses {
            let Some(n) = new.responses.get(status) else {
                // Clients depend on success (and default) responses; a documented error going away breaks nobody.
                let breaking = !(status.starts_with('4') || status.starts_with('5'));
                self.push(
                    ChangeKind::ResponseStatusRemoved,
                    breaking,
                    &o.pointer,
                    &format!("response {status}"),
                    format!("Response {status} was removed."),
                );
                continue;
            };
            let (subject, sentence) = (format!("response {status}"), format!("Response {status}"));
            let (old, new) = ((&o.content, o.pointer.as_str()), (&n.content, n.pointer.as_str()));
            self.content(old, new, Direction::Response, &subject, &sentence);
        }
        for (status, n) in new.responses.iter().filter(|(s, _)| !old.responses.contains_key(*s)) {
            self.push(
                ChangeKind::ResponseStatusAdded,
                false,
                &n.pointer,
                &format!("response {status}"),
                format!("Response {status} was added."),
            );
        }
    }

    /// The media types of a request body or a response: a removed one breaks
    /// clients, an added one does not, and the schemas of those in both
    /// versions are compared. `subject` names it in labels (`response 200`),
    /// `sentence` in messages (`Response 200`).
    fn content(
        &mut self,
        old: (&'m Content, &str),
        new: (&'m Content, &str),
        dir: Direction,
        subject: &str,
        sentence: &str,
    ) {
        let ((old, old_at), (new, new_at)) = (old, new);
        let (removed, added, no_longer, now_also) = match dir {
            Direction::Request => (
                ChangeKind::RequestContentTypeRemoved,
                ChangeKind::RequestContentTypeAdded,
                "no longer accepts",
                "now also accepts",
            ),
            Direction::Response => (
                ChangeKind::ResponseContentTypeRemoved,
                ChangeKind::ResponseContentTypeAdded,
                "no longer returns",
                "can now also return",
            ),
        };
        for (media, os) in old {
            let what = format!("{subject} ({media})");
            match new.get(media) {
                None => self.push(
                    removed,
                    true,
                    &format!("{old_at}/content/{}", pointer_segment(media)),
                    &what,
                    format!("{sentence} {no_longer} {media}."),
                ),
                Some(ns) => {
                    if let (Some(os), Some(ns)) = (os, ns) {
                        let pointer = format!("{new_at}/content/{}/schema", pointer_segment(media));
                        self.schema(os, ns, dir, &Place { pointer, what, field: String::new() }, 0);
                    }
                }
            }
        }
        for media in new.keys().filter(|m| !old.contains_key(*m)) {
            self.push(
                added,
                false,
                &format!("{new_at}/content/{}", pointer_segment(media)),
                &format!("{subject} ({media})"),
                format!("{sentence} {now_also} {media}."),
            );
        }
    }

    fn schema(&mut self, old: &'m SchemaRef, new: &'m SchemaRef, dir: Direction, place: &Place, depth: usize) {
        // Cut nodes stand for the schema of their reference.
        let (old, new) = (self.old.resolve(old), self.new.resolve(new));
        let key = (Arc::as_ptr(old) as usize, Arc::as_ptr(new) as usize, dir);
        if self.clean.contains(&key) {
            return;
        }
        self.work += 1;
        if self.work > MAX_DIFF_WORK {
            self.truncated = true;
        }
        if let Some(&index) = self.stack.get(&key) {
            self.low = self.low.min(index);
            return;
        }
        // Skipped here: too deep, cut off, past the inline nesting limit, or
        // already compared (and not clean) at another place of this operation.
        if depth > MAX_DIFF_DEPTH || self.truncated || old.recursive || new.recursive || !self.visited.insert(key) {
            self.low = 0;
            return;
        }
        let index = self.stack.len();
        self.stack.insert(key, index);
        let outer_low = std::mem::replace(&mut self.low, NO_TAINT);
        let changes_before = self.changes.len();
        self.compare_schemas(old, new, dir, place, depth);
        self.stack.remove(&key);
        let low = self.low;
        if low >= index {
            if self.changes.len() == changes_before {
                self.clean.insert(key);
            }
            self.low = outer_low;
        } else {
            self.low = outer_low.min(low);
        }
    }

    fn compare_schemas(&mut self, old: &'m SchemaRef, new: &'m SchemaRef, dir: Direction, place: &Place, depth: usize) {
        let o = Flat::of(old, self.old);
        let n = Flat::of(new, self.new);
        let request = dir == Direction::Request;

        if o.types != n.types {
            let breaking = if request { !accepts(&n.types, &o.types) } else { !accepts(&o.types, &n.types) };
            self.at(
                ChangeKind::TypeChanged,
                breaking,
                place,
                format!(
                    "The type of {} changed from {} to {}.",
                    place.describe(),
                    show_types(&o.types),
                    show_types(&n.types)
                ),
            );
        }
        if o.format != n.format {
            let breaking =
                if request { !format_accepts(n.format, o.format) } else { !format_accepts(o.format, n.format) };
            let show = |f: Option<&str>| f.map_or("none".to_owned(), |f| format!("`{f}`"));
            self.at(
                ChangeKind::FormatChanged,
                breaking,
                place,
                format!("The format of {} changed from {} to {}.", place.describe(), show(o.format), show(n.format)),
            );
        }
        self.enums(&o, &n, request, place);
        if o.discriminator != n.discriminator {
            self.at(
                ChangeKind::DiscriminatorChanged,
                true,
                place,
                format!(
                    "The discriminator of {} changed from {:?} to {:?}.",
                    place.describe(),
                    o.discriminator,
                    n.discriminator
                ),
            );
        }
        self.properties(&o, &n, dir, place, depth);
        if let (Some(oi), Some(ni)) = (o.items, n.items) {
            self.schema(oi, ni, dir, &place.child("/items", "[]", false), depth + 1);
        }
        if let (Some(oa), Some(na)) = (o.additional, n.additional) {
            self.schema(oa, na, dir, &place.child("/additionalProperties", "*", true), depth + 1);
        }
        self.variants("oneOf", o.one_of, n.one_of, dir, place, depth);
        self.variants("anyOf", o.any_of, n.any_of, dir, place, depth);
    }

    fn enums(&mut self, o: &Flat<'m>, n: &Flat<'m>, request: bool, place: &Place) {
        let show = |values: &BTreeSet<&String>| values.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ");
        match (o.enum_values, n.enum_values) {
            (Some(ov), Some(nv)) => {
                let removed: BTreeSet<&String> = ov.difference(nv).collect();
                let added: BTreeSet<&String> = nv.difference(ov).collect();
                if !removed.is_empty() {
                    self.at(
                        ChangeKind::EnumNarrowed,
                        request,
                        place,
                        format!("{} no longer allows {}.", cap(&place.describe()), show(&removed)),
                    );
                }
                if !added.is_empty() {
                    let why = if request { "" } else { " (strict clients may reject unknown values)" };
                    self.at(
                        ChangeKind::EnumWidened,
                        !request,
                        place,
                        format!("{} now also allows {}{why}.", cap(&place.describe()), show(&added)),
                    );
                }
            }
            (None, Some(nv)) => {
                let values: BTreeSet<&String> = nv.iter().collect();
                self.at(
                    ChangeKind::EnumNarrowed,
                    request,
                    place,
                    format!("{} is now limited to {}.", cap(&place.describe()), show(&values)),
                );
            }
            (Some(_), None) => {
                self.at(
                    ChangeKind::EnumWidened,
                    !request,
                    place,
                    format!("{} is no longer limited to a list of values.", cap(&place.describe())),
                );
            }
            (None, None) => {}
        }
    }

    fn properties(&mut self, o: &Flat<'m>, n: &Flat<'m>, dir: Direction, place: &Place, depth: usize) {
        let request = dir == Direction::Request;
        // Fields the other side never sees: readOnly ones are not sent in requests, writeOnly ones not returned.
        let hidden = |s: Option<&SchemaRef>| s.is_some_and(|s| if request { s.read_only } else { s.write_only });
        let names: BTreeSet<&String> = o
            .properties
            .keys()
            .chain(n.properties.keys())
            .chain(o.required.iter())
            .chain(n.required.iter())
            .copied()
            .collect();
        for name in names {
            let (op, np) = (o.properties.get(name).copied(), n.properties.get(name).copied());
            let (in_old, in_new) =
                (op.is_some() || o.required.contains(name), np.is_some() || n.required.contains(name));
            let (old_req, new_req) = (o.required.contains(name), n.required.contains(name));
            let child = place.child(&format!("/properties/{}", pointer_segment(name)), name, true);
            let field = child.describe();
            if hidden(np) || (np.is_none() && hidden(op)) {
                continue;
            }
            match (in_old, in_new, request) {
                (true, false, true) => {
                    self.at(ChangeKind::RequestFieldRemoved, false, &child, format!("The {field} was removed."))
                }
                (true, false, false) => {
                    self.at(ChangeKind::ResponseFieldRemoved, true, &child, format!("The {field} was removed."))
                }
                (false, true, true) if new_req => self.at(
                    ChangeKind::RequestFieldBecameRequired,
                    true,
                    &child,
                    format!("A new required {field} was added."),
                ),
                (false, true, true) => {
                    self.at(ChangeKind::RequestFieldAdded, false, &child, format!("A new optional {field} was added."))
                }
                (false, true, false) => {
                    self.at(ChangeKind::ResponseFieldAdded, false, &child, format!("A new {field} was added."))
                }
                (true, true, true) if !old_req && new_req => {
                    self.at(
                        ChangeKind::RequestFieldBecameRequired,
                        true,
                        &child,
                        format!("The {field} is now required."),
                    );
                }
                (true, true, true) if old_req && !new_req => {
                    self.at(
                        ChangeKind::RequestFieldBecameOptional,
                        false,
                        &child,
                        format!("The {field} is now optional."),
                    );
                }
                (true, true, false) if old_req && !new_req => {
                    self.at(
                        ChangeKind::ResponseFieldBecameOptional,
                        true,
                        &child,
                        format!("The {field} is no longer always present."),
                    );
                }
                (true, true, false) if !old_req && new_req => {
                    self.at(
                        ChangeKind::ResponseFieldBecameRequired,
                        false,
                        &child,
                        format!("The {field} is now always present."),
                    );
                }
                _ => {}
            }
            if let (Some(os), Some(ns)) = (op, np) {
                self.schema(os, ns, dir, &child, depth + 1);
            }
        }
    }

    fn variants(
        &mut self,
        keyword: &str,
        old: &'m [SchemaRef],
        new: &'m [SchemaRef],
        dir: Direction,
        place: &Place,
        depth: usize,
    ) {
        if old.is_empty() && new.is_empty() {
            return;
        }
        // Named variants match by name, others by position.
        let label = |s: &SchemaRef, i: usize| s.ref_name.clone().unwrap_or_else(|| format!("#{i}"));
        let old_labels: Vec<String> = old.iter().enumerate().map(|(i, s)| label(s, i)).collect();
        let new_labels: Vec<String> = new.iter().enumerate().map(|(i, s)| label(s, i)).collect();
        let request = dir == Direction::Request;
        for (i, ol) in old_labels.iter().enumerate() {
            match new_labels.iter().position(|nl| nl == ol) {
                Some(j) => {
                    let child = place.child(&format!("/{keyword}/{j}"), &format!("<{keyword} {ol}>"), false);
                    self.schema(&old[i], &new[j], dir, &child, depth + 1);
                }
                None => self.at(
                    ChangeKind::VariantRemoved,
                    request,
                    place,
                    format!("{} no longer accepts the {keyword} variant {ol}.", cap(&place.describe())),
                ),
            }
        }
        for nl in new_labels.iter().filter(|nl| !old_labels.contains(nl)) {
            self.at(
                ChangeKind::VariantAdded,
                !request,
                place,
                format!("{} has a new {keyword} variant {nl}.", cap(&place.describe())),
            );
        }
    }
}

fn cap(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// A schema with its `allOf` members merged in, and types implied by
/// `properties`/`items` made explicit.
struct Flat<'s> {
    types: BTreeSet<JsonType>,
    format: Option<&'s str>,
    properties: BTreeMap<&'s String, &'s SchemaRef>,
    required: BTreeSet<&'s String>,
    enum_values: Option<&'s BTreeSet<String>>,
    items: Option<&'s SchemaRef>,
    additional: Option<&'s SchemaRef>,
    one_of: &'s [SchemaRef],
    any_of: &'s [SchemaRef],
    discriminator: Option<&'s String>,
}

impl<'s> Flat<'s> {
    fn of(schema: &'s Schema, model: &'s ApiModel) -> Flat<'s> {
        let mut flat = Flat {
            types: BTreeSet::new(),
            format: None,
            properties: BTreeMap::new(),
            required: BTreeSet::new(),
            enum_values: None,
            items: None,
            additional: None,
            one_of: &[],
            any_of: &[],
            discriminator: None,
        };
        flat.merge(schema, model, 0);
        if flat.types.is_empty() {
            if !flat.properties.is_empty() || flat.additional.is_some() {
                flat.types.insert(JsonType::Object);
            } else if flat.items.is_some() {
                flat.types.insert(JsonType::Array);
            }
        }
        flat
    }

    fn merge(&mut self, s: &'s Schema, model: &'s ApiModel, depth: usize) {
        if s.recursive || depth > 16 {
            return;
        }
        if !s.types.is_empty() {
            if self.types.is_empty() {
                self.types.clone_from(&s.types);
            } else {
                let both: BTreeSet<JsonType> = self.types.intersection(&s.types).copied().collect();
                if !both.is_empty() {
                    self.types = both;
                }
            }
        }
        self.format = self.format.or(s.format.as_deref());
        for (name, p) in &s.properties {
            self.properties.entry(name).or_insert(p);
        }
        self.required.extend(s.required.iter());
        self.enum_values = self.enum_values.or(s.enum_values.as_ref());
        self.items = self.items.or(s.items.as_ref());
        self.additional = self.additional.or(s.additional_properties.as_ref());
        if self.one_of.is_empty() {
            self.one_of = &s.one_of;
        }
        if self.any_of.is_empty() {
            self.any_of = &s.any_of;
        }
        self.discriminator = self.discriminator.or(s.discriminator.as_ref());
        for member in &s.all_of {
            self.merge(model.resolve(member), model, depth + 1);
        }
    }
}

/// Whether a schema of types `wider` accepts every value of types
/// `narrower` (empty = any; an integer is a number).
fn accepts(wider: &BTreeSet<JsonType>, narrower: &BTreeSet<JsonType>) -> bool {
    if wider.is_empty() {
        return true;
    }
    !narrower.is_empty()
        && narrower.iter().all(|t| wider.contains(t) || (*t == JsonType::Integer && wider.contains(&JsonType::Number)))
}

/// Whether format `wider` accepts every value of format `narrower`.
fn format_accepts(wider: Option<&str>, narrower: Option<&str>) -> bool {
    match (wider, narrower) {
        (None, _) => true,
        (Some(w), Some(n)) => w == n || matches!((n, w), ("int32", "int64") | ("float", "double")),
        (Some(_), None) => false,
    }
}

fn show_types(types: &BTreeSet<JsonType>) -> String {
    if types.is_empty() {
        return "any".to_owned();
    }
    types.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(" or ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::parse;

    fn diff(old: &str, new: &str) -> ChangeReport {
        compare(&parse(old).expect("a value").model, &parse(new).expect("a value").model)
    }

    const BASE: &str = r##"{"openapi": "3.0.3", "info": {"title": "T", "version": "1"}, "paths": {
      "/pets/{id}": {"get": {"operationId": "getPet",
        "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}],
        "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}}}}}},
      "components": {"schemas": {"Pet": {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string"}, "kind": {"type": "string", "enum": ["cat", "dog"]}}}}}}"##;

    #[test]
    fn identical_documents_have_no_changes() {
        let report = diff(BASE, BASE);
        assert!(report.is_empty(), "{report}");
        assert!(!report.breaking());
    }

    #[test]
    fn detects_response_changes_through_refs() {
        let new = BASE
            .replace(r#""name": {"type": "string"}, "#, "")
            .replace(r#""required": ["name"], "#, "")
            .replace(r#""dog"]"#, r#""dog", "bird"]"#);
        let report = diff(BASE, &new);
        let kinds: Vec<ChangeKind> = report.changes.iter().map(|c| c.kind).collect();
        assert_eq!(kinds, vec![ChangeKind::EnumWidened, ChangeKind::ResponseFieldRemoved], "{report}");
        assert!(report.changes.iter().all(|c| c.breaking));
        let removed = &report.changes[1];
        assert_eq!(
            removed.pointer,
            "/paths/~1pets~1{id}/get/responses/200/content/application~1json/schema/properties/name"
        );
        assert_eq!(removed.operation, "GET /pets/{id}");
        assert!(
            report
                .to_string()
                .contains("BREAKING GET /pets/{id}: The response 200 (application/json) field `name` was removed."),
            "{report}"
        );
        let json = serde_json::to_string(&report).expect("a value");
        assert!(json.contains(r#""kind":"response_field_removed""#));
        let back: ChangeReport = serde_json::from_str(&json).expect("a value");
        assert_eq!(back, report);
    }

    #[test]
    fn renamed_path_parameters_are_the_same_operation() {
        let new = BASE.replace("/pets/{id}", "/pets/{petId}").replace(r#""name": "id""#, r#""name": "petId""#);
        let report = diff(BASE, &new);
        assert_eq!(report.changes.len(), 1, "{report}");
        assert_eq!(report.changes[0].kind, ChangeKind::PathParameterRenamed);
        assert!(!report.breaking());
    }
}
