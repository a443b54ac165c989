//! The comparison: operations pair up by method and path template, their
//! own parts (parameters, bodies, responses) are compared in place, and
//! every component schema they reach is compared once per pair of schemas
//! and direction, as a *unit* whose changes belong to the component.
//!
//! Each operation then collects the units it reaches (through units that
//! lead to a change), so a change to a shared schema is reported once,
//! with the list of the operations it affects.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use super::report::{ChangeKind, ChangeReport, CompatibilityPolicy, REPORT_FORMAT, STRICT_ENUM_WHY, Side, Subject};
use super::shape::{Flat, Shapes, accepts, format_accepts, show_types, unwrap};
use crate::document::pointer_segment;
use crate::model::{ApiModel, OperationModel, Parameter, ParameterLocation, SchemaRef};

/// Schema comparisons one report may make before it stops (and says so).
pub const MAX_DIFF_WORK: usize = 5_000_000;

/// Inline nesting the walk follows inside one unit.
const MAX_DIFF_DEPTH: usize = 64;

/// How alike two unmatched variants must be (shared property names over
/// all) to be compared as one variant that changed.
const LIKENESS: f64 = 0.5;

/// Compares two versions of an API under the strict policy.
pub fn compare(old: &ApiModel, new: &ApiModel) -> ChangeReport {
    compare_with(old, new, CompatibilityPolicy::Strict, &mut |_, _| {})
}

/// Compares two versions of an API; `progress(done, total)` is called as
/// operations are compared.
pub fn compare_with(
    old: &ApiModel,
    new: &ApiModel,
    policy: CompatibilityPolicy,
    progress: &mut dyn FnMut(usize, usize),
) -> ChangeReport {
    let mut walk = Walker::new(old, new, policy);
    let mut report = ChangeReport { format: REPORT_FORMAT, policy, ..ChangeReport::default() };

    // Operations whose paths differ only in parameter names are the same
    // operation (`/pets/{id}` → `/pets/{petId}`).
    let mut unmatched_new: BTreeMap<&String, &OperationModel> =
        new.operations.iter().filter(|(k, _)| !old.operations.contains_key(*k)).collect();
    // Indexed by method and shape, each list in key order: a scan of every new operation for
    // every removed one was quadratic (100,000 of each, 10¹⁰ shapes built).
    let mut by_shape: HashMap<(&str, String), VecDeque<&String>> = HashMap::new();
    for (key, op) in &unmatched_new {
        by_shape.entry((op.method.as_str(), template_shape(&op.path))).or_default().push_back(*key);
    }
    let mut pairs: Vec<(&OperationModel, &OperationModel)> = Vec::new();
    let mut slots: Vec<Slot> = Vec::new();
    for (key, old_op) in &old.operations {
        if let Some(new_op) = new.operations.get(key) {
            pairs.push((old_op, new_op));
            continue;
        }
        let renamed =
            by_shape.get_mut(&(old_op.method.as_str(), template_shape(&old_op.path))).and_then(VecDeque::pop_front);
        match renamed.and_then(|k| unmatched_new.remove(k)) {
            Some(new_op) => pairs.push((old_op, new_op)),
            None => {
                report.operations_removed.push(key.clone());
                let mut sink = walk.sink(Subject::operation(key));
                let message = format!("{key} was removed.");
                walk.push(
                    &mut sink,
                    ChangeKind::OperationRemoved,
                    true,
                    Side::Operation,
                    &old_op.pointer,
                    "operation",
                    message,
                );
                slots.push(Slot { key: key.clone(), sink, paired: false });
            }
        }
    }
    for (key, new_op) in &unmatched_new {
        report.operations_added.push((*key).clone());
        let mut sink = walk.sink(Subject::operation(key));
        let message = format!("{key} was added.");
        walk.push(&mut sink, ChangeKind::OperationAdded, false, Side::Operation, &new_op.pointer, "operation", message);
        slots.push(Slot { key: (*key).clone(), sink, paired: false });
    }
    let total = pairs.len();
    for (done, (old_op, new_op)) in pairs.into_iter().enumerate() {
        let key = format!("{} {}", new_op.method, new_op.path);
        let mut sink = walk.sink(Subject::operation(&key));
        walk.operation_pair(old_op, new_op, &mut sink);
        walk.drain();
        slots.push(Slot { key, sink, paired: true });
        progress(done + 1, total);
    }
    walk.assemble(slots, &mut report);
    report
}

/// One operation of the report and what it holds directly.
struct Slot {
    key: String,
    sink: Sink,
    paired: bool,
}

/// A change before the operations it affects are known.
struct Local {
    kind: ChangeKind,
    breaking: bool,
    side: Side,
    subject: usize,
    pointer: String,
    location: String,
    message: String,
}

/// Where changes found during part of the walk go: its own changes and the
/// units it reaches.
struct Sink {
    subject: usize,
    changes: Vec<Local>,
    edges: Vec<usize>,
}

/// A pair of schemas compared once, whose changes belong to a component.
#[derive(Default)]
struct Unit {
    changes: Vec<Local>,
    edges: Vec<usize>,
}

/// Where a schema sits: its pointer, what it belongs to (for people), and
/// the dotted field path inside it.
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

type UnitKey = (usize, usize, Side);

struct Walker<'m> {
    old: &'m ApiModel,
    new: &'m ApiModel,
    policy: CompatibilityPolicy,
    shapes: Shapes<'m>,
    subjects: Vec<Subject>,
    subject_ids: HashMap<Subject, usize>,
    units: Vec<Unit>,
    unit_ids: HashMap<UnitKey, usize>,
    /// Units made but not compared yet (compared by `drain`, so chains of
    /// components never deepen the stack).
    queue: Vec<(usize, &'m SchemaRef, &'m SchemaRef, Side)>,
    work: usize,
    truncated: bool,
}

impl<'m> Walker<'m> {
    fn new(old: &'m ApiModel, new: &'m ApiModel, policy: CompatibilityPolicy) -> Self {
        Walker {
            old,
            new,
            policy,
            shapes: Shapes::new(old, new),
            subjects: Vec::new(),
            subject_ids: HashMap::new(),
            units: Vec::new(),
            unit_ids: HashMap::new(),
            queue: Vec::new(),
            work: 0,
            truncated: false,
        }
    }

    fn subject(&mut self, subject: Subject) -> usize {
        if let Some(&id) = self.subject_ids.get(&subject) {
            return id;
        }
        let id = self.subjects.len();
        self.subjects.push(subject.clone());
        self.subject_ids.insert(subject, id);
        id
    }

    fn sink(&mut self, subject: Subject) -> Sink {
        Sink { subject: self.subject(subject), changes: Vec::new(), edges: Vec::new() }
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &self,
        sink: &mut Sink,
        kind: ChangeKind,
        breaking: bool,
        side: Side,
        pointer: &str,
        location: &str,
        message: String,
    ) {
        sink.changes.push(Local {
            kind,
            breaking,
            side,
            subject: sink.subject,
            pointer: pointer.to_owned(),
            location: location.to_owned(),
            message,
        });
    }

    fn at(&self, sink: &mut Sink, kind: ChangeKind, breaking: bool, side: Side, place: &Place, message: String) {
        let location = place.describe();
        self.push(sink, kind, breaking, side, &place.pointer, &location, message);
    }

    /// The unit comparing `old` with the component `new`, made on first use.
    fn unit(&mut self, old: &'m SchemaRef, new: &'m SchemaRef, side: Side) -> usize {
        let key = (Arc::as_ptr(old) as usize, Arc::as_ptr(new) as usize, side);
        if let Some(&id) = self.unit_ids.get(&key) {
            return id;
        }
        let id = self.units.len();
        self.units.push(Unit::default());
        self.unit_ids.insert(key, id);
        self.queue.push((id, old, new, side));
        id
    }

    fn drain(&mut self) {
        while let Some((id, old, new, side)) = self.queue.pop() {
            let pointer = new.reference.clone().unwrap_or_default();
            let subject = Subject::component(&pointer);
            let what = subject.describe();
            let mut sink = self.sink(subject);
            let place = Place { pointer, what, field: String::new() };
            // A component keeps its own nullability; a renamed one is judged
            // where it is used.
            let same_component = old.reference == new.reference;
            self.schema(old, new, side, &place, &mut sink, 0, same_component);
            self.units[id] = Unit { changes: sink.changes, edges: sink.edges };
        }
    }

    fn operation_pair(&mut self, old: &'m OperationModel, new: &'m OperationModel, sink: &mut Sink) {
        let at = &new.pointer;
        let op = Side::Operation;
        if old.path != new.path {
            let message =
                format!("The path template changed from {} to {} (only parameter names differ).", old.path, new.path);
            self.push(sink, ChangeKind::PathParameterRenamed, false, op, at, "path", message);
        }
        if !old.deprecated && new.deprecated {
            let message = "The operation is now deprecated.".to_owned();
            self.push(sink, ChangeKind::OperationDeprecated, false, op, at, "operation", message);
        }
        if old.operation_id != new.operation_id {
            let show = |id: &Option<String>| id.as_deref().map_or("none".to_owned(), |s| format!("`{s}`"));
            let message = format!(
                "operationId changed from {} to {} (Tollgate method names derive from it).",
                show(&old.operation_id),
                show(&new.operation_id)
            );
            let pointer = format!("{at}/operationId");
            self.push(sink, ChangeKind::OperationIdChanged, false, op, &pointer, "operationId", message);
        }
        if old.summary != new.summary {
            let pointer = format!("{at}/summary");
            self.push(sink, ChangeKind::SummaryChanged, false, op, &pointer, "summary", "The summary changed.".into());
        }
        if old.description != new.description {
            let pointer = format!("{at}/description");
            let message = "The description changed.".to_owned();
            self.push(sink, ChangeKind::DescriptionChanged, false, op, &pointer, "description", message);
        }
        self.parameters(old, new, sink);
        self.request_body(old, new, sink);
        self.responses(old, new, sink);
    }

    /// Changes to a shared component (parameter, body, response) belong to
    /// it; `f` records them with the sink's subject switched over.
    fn under(&mut self, sink: &mut Sink, component: Option<&String>, f: impl FnOnce(&mut Self, &mut Sink)) {
        let own = sink.subject;
        if let Some(pointer) = component {
            sink.subject = self.subject(Subject::component(pointer));
        }
        f(self, sink);
        sink.subject = own;
    }

    fn parameters(&mut self, old: &'m OperationModel, new: &'m OperationModel, sink: &mut Sink) {
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
        let request = Side::Request;
        for (k, o) in &old_params {
            let Some(n) = new_params.get(k) else {
                let label = format!("{} parameter `{}`", o.location.as_str(), o.name);
                let at = o.component.as_ref().unwrap_or(&o.pointer);
                self.under(sink, o.component.as_ref(), |w, sink| {
                    let message = format!("The {label} was removed.");
                    w.push(sink, ChangeKind::ParameterRemoved, false, request, at, &label, message);
                });
                continue;
            };
            let label = format!("{} parameter `{}`", n.location.as_str(), n.name);
            // A parameter that is the same component on both sides changes there; otherwise here.
            let shared = n.component.is_some() && n.component == o.component;
            let at = if shared { n.component.clone().unwrap_or_default() } else { n.pointer.clone() };
            self.under(sink, shared.then_some(()).and(n.component.as_ref()), |w, sink| {
                if !o.required && n.required {
                    let message = format!("The {label} is now required.");
                    w.push(sink, ChangeKind::ParameterBecameRequired, true, request, &at, &label, message);
                } else if o.required && !n.required {
                    let message = format!("The {label} is now optional.");
                    w.push(sink, ChangeKind::ParameterBecameOptional, false, request, &at, &label, message);
                }
                if let (Some(os), Some(ns)) = (&o.schema, &n.schema) {
                    let place = Place { pointer: format!("{at}/schema"), what: label.clone(), field: String::new() };
                    w.child(os, ns, request, &place, sink, 0);
                }
            });
        }
        for (k, n) in &new_params {
            if old_params.contains_key(k) {
                continue;
            }
            let label = format!("{} parameter `{}`", n.location.as_str(), n.name);
            let at = n.component.as_ref().unwrap_or(&n.pointer);
            self.under(sink, n.component.as_ref(), |w, sink| {
                if n.required {
                    let message = format!("A new required {label} was added.");
                    w.push(sink, ChangeKind::ParameterAddedRequired, true, request, at, &label, message);
                } else {
                    let message = format!("A new optional {label} was added.");
                    w.push(sink, ChangeKind::ParameterAdded, false, request, at, &label, message);
                }
            });
        }
    }

    fn request_body(&mut self, old: &'m OperationModel, new: &'m OperationModel, sink: &mut Sink) {
        let request = Side::Request;
        match (&old.request_body, &new.request_body) {
            (None, None) => {}
            (Some(o), None) => {
                let message = "The request body was removed.".to_owned();
                self.push(sink, ChangeKind::RequestBodyRemoved, false, request, &o.pointer, "request body", message);
            }
            (None, Some(n)) => {
                let (kind, breaking, message) = if n.required {
                    (ChangeKind::RequestBodyBecameRequired, true, "A required request body was added.")
                } else {
                    (ChangeKind::RequestBodyAdded, false, "An optional request body was added.")
                };
                self.push(sink, kind, breaking, request, &n.pointer, "request body", message.into());
            }
            (Some(o), Some(n)) => {
                let shared = n.component.is_some() && n.component == o.component;
                let at = if shared { n.component.clone().unwrap_or_default() } else { n.pointer.clone() };
                self.under(sink, shared.then_some(()).and(n.component.as_ref()), |w, sink| {
                    let what = if shared { w.subjects[sink.subject].describe() } else { "request body".to_owned() };
                    if !o.required && n.required {
                        let message = format!("The {what} is now required.");
                        w.push(sink, ChangeKind::RequestBodyBecameRequired, true, request, &at, &what, message);
                    } else if o.required && !n.required {
                        let message = format!("The {what} is now optional.");
                        w.push(sink, ChangeKind::RequestBodyBecameOptional, false, request, &at, &what, message);
                    }
                    w.content((&o.content, &at), (&n.content, &at), request, &what, sink);
                });
            }
        }
    }

    fn responses(&mut self, old: &'m OperationModel, new: &'m OperationModel, sink: &mut Sink) {
        let response = Side::Response;
        for (status, o) in &old.responses {
            let Some(n) = new.responses.get(status) else {
                // A client is written for the successes it expects; an error
                // that no longer happens breaks nobody (see docs/CHANGE-REPORT.md).
                let breaking = !is_error_status(status);
                let (what, message) = (format!("response {status}"), format!("Response {status} was removed."));
                self.push(sink, ChangeKind::ResponseStatusRemoved, breaking, response, &o.pointer, &what, message);
                continue;
            };
            let shared = n.component.is_some() && n.component == o.component;
            let at = if shared { n.component.clone().unwrap_or_default() } else { n.pointer.clone() };
            self.under(sink, shared.then_some(()).and(n.component.as_ref()), |w, sink| {
                let what = if shared { w.subjects[sink.subject].describe() } else { format!("response {status}") };
                w.content((&o.content, &at), (&n.content, &at), response, &what, sink);
            });
        }
        for (status, n) in new.responses.iter().filter(|(s, _)| !old.responses.contains_key(*s)) {
            let (what, message) = (format!("response {status}"), format!("Response {status} was added."));
            self.push(sink, ChangeKind::ResponseStatusAdded, false, response, &n.pointer, &what, message);
        }
    }

    /// The media types of a request body or a response: a removed one breaks
    /// clients, whatever the status, an added one does not, and the schemas
    /// of those in both versions are compared. `what` names the body.
    fn content(
        &mut self,
        old: (&'m BTreeMap<String, Option<SchemaRef>>, &str),
        new: (&'m BTreeMap<String, Option<SchemaRef>>, &str),
        side: Side,
        what: &str,
        sink: &mut Sink,
    ) {
        let ((old, old_at), (new, new_at)) = (old, new);
        let (removed, added, no_longer, now_also) = match side {
            Side::Request => (
                ChangeKind::RequestContentTypeRemoved,
                ChangeKind::RequestContentTypeAdded,
                "no longer accepts",
                "now also accepts",
            ),
            _ => (
                ChangeKind::ResponseContentTypeRemoved,
                ChangeKind::ResponseContentTypeAdded,
                "no longer returns",
                "can now also return",
            ),
        };
        let sentence = cap(what);
        for (media, os) in old {
            let here = format!("{what} ({media})");
            match new.get(media) {
                None => {
                    let pointer = format!("{old_at}/content/{}", pointer_segment(media));
                    let message = format!("{sentence} {no_longer} {media}.");
                    self.push(sink, removed, true, side, &pointer, &here, message);
                }
                Some(ns) => {
                    if let (Some(os), Some(ns)) = (os, ns) {
                        let pointer = format!("{new_at}/content/{}/schema", pointer_segment(media));
                        self.child(os, ns, side, &Place { pointer, what: here, field: String::new() }, sink, 0);
                    }
                }
            }
        }
        for media in new.keys().filter(|m| !old.contains_key(*m)) {
            let pointer = format!("{new_at}/content/{}", pointer_segment(media));
            let message = format!("{sentence} {now_also} {media}.");
            self.push(sink, added, false, side, &pointer, &format!("{what} ({media})"), message);
        }
    }

    /// Compares a schema in a position (a field, items, a body): through
    /// wrappers, nullability judged here, and into the component's unit if
    /// the new schema is a component.
    fn child(
        &mut self,
        old: &'m SchemaRef,
        new: &'m SchemaRef,
        side: Side,
        place: &Place,
        sink: &mut Sink,
        depth: usize,
    ) {
        self.child_judging_null(old, new, side, place, sink, depth, true);
    }

    /// `child`, where `judge_null` is false for a variant (its union judges `null`).
    #[allow(clippy::too_many_arguments)]
    fn child_judging_null(
        &mut self,
        old: &'m SchemaRef,
        new: &'m SchemaRef,
        side: Side,
        place: &Place,
        sink: &mut Sink,
        depth: usize,
        judge_null: bool,
    ) {
        let (old_core, old_wrapped_null) = unwrap(self.old, old);
        let (new_core, new_wrapped_null) = unwrap(self.new, new);
        let same_component = old_core.reference.is_some() && old_core.reference == new_core.reference;
        if judge_null {
            let old_null = old_wrapped_null || (!same_component && Flat::of(old_core, self.old).nullable);
            let new_null = new_wrapped_null || (!same_component && Flat::of(new_core, self.new).nullable);
            self.nullability(old_null, new_null, side, place, sink);
        }
        if new_core.reference.is_some() {
            let id = self.unit(old_core, new_core, side);
            sink.edges.push(id);
        } else {
            self.schema(old_core, new_core, side, place, sink, depth + 1, false);
        }
    }

    fn nullability(&mut self, old: bool, new: bool, side: Side, place: &Place, sink: &mut Sink) {
        let request = side == Side::Request;
        let subject = cap(&place.describe());
        match (old, new) {
            (false, true) => {
                let message = if request {
                    format!("{subject} now also accepts null.")
                } else {
                    format!("{subject} may now be null.")
                };
                self.at(sink, ChangeKind::BecameNullable, !request, side, place, message);
            }
            (true, false) => {
                let message = if request {
                    format!("{subject} no longer accepts null.")
                } else {
                    format!("{subject} is never null any more.")
                };
                self.at(sink, ChangeKind::NoLongerNullable, request, side, place, message);
            }
            _ => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn schema(
        &mut self,
        old: &'m SchemaRef,
        new: &'m SchemaRef,
        side: Side,
        place: &Place,
        sink: &mut Sink,
        depth: usize,
        own_nullability: bool,
    ) {
        self.work += 1;
        if self.work > MAX_DIFF_WORK {
            self.truncated = true;
        }
        if self.truncated || depth > MAX_DIFF_DEPTH {
            return;
        }
        let (o, n) = (Flat::of(old, self.old), Flat::of(new, self.new));
        let request = side == Side::Request;
        if own_nullability {
            self.nullability(o.nullable, n.nullable, side, place, sink);
        }
        // A union on one side only: the plain schema is one variant of it.
        if o.variants.is_empty() != n.variants.is_empty() {
            let old_variants = if o.variants.is_empty() { vec![old] } else { o.variants.clone() };
            let new_variants = if n.variants.is_empty() { vec![new] } else { n.variants.clone() };
            self.variants(&old_variants, &new_variants, n.exclusive, side, place, sink, depth);
            return;
        }
        if o.types != n.types {
            let breaking = if request { !accepts(&n.types, &o.types) } else { !accepts(&o.types, &n.types) };
            let message = format!(
                "The type of {} changed from {} to {}.",
                place.describe(),
                show_types(&o.types),
                show_types(&n.types)
            );
            self.at(sink, ChangeKind::TypeChanged, breaking, side, place, message);
        }
        if o.format != n.format {
            let breaking =
                if request { !format_accepts(n.format, o.format) } else { !format_accepts(o.format, n.format) };
            let show = |f: Option<&str>| f.map_or("none".to_owned(), |f| format!("`{f}`"));
            let message =
                format!("The format of {} changed from {} to {}.", place.describe(), show(o.format), show(n.format));
            self.at(sink, ChangeKind::FormatChanged, breaking, side, place, message);
        }
        self.enums(&o, &n, side, place, sink);
        if o.discriminator != n.discriminator {
            let message = format!(
                "The discriminator of {} changed from {:?} to {:?}.",
                place.describe(),
                o.discriminator,
                n.discriminator
            );
            self.at(sink, ChangeKind::DiscriminatorChanged, true, side, place, message);
        }
        self.properties(&o, &n, side, place, sink, depth);
        if let (Some(oi), Some(ni)) = (o.items, n.items) {
            self.child(oi, ni, side, &place.child("/items", "[]", false), sink, depth);
        }
        if let (Some(oa), Some(na)) = (o.additional, n.additional) {
            self.child(oa, na, side, &place.child("/additionalProperties", "*", true), sink, depth);
        }
        if !o.variants.is_empty() {
            self.variants(&o.variants, &n.variants, n.exclusive, side, place, sink, depth);
        }
    }

    fn enums(&mut self, o: &Flat<'m>, n: &Flat<'m>, side: Side, place: &Place, sink: &mut Sink) {
        let request = side == Side::Request;
        let show = |values: &std::collections::BTreeSet<&String>| {
            values.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
        };
        // A response enum that allows more is breaking only under the strict policy.
        let widening_breaks = !request && self.policy.response_enum_additions_break();
        let subject = cap(&place.describe());
        match (&o.enum_values, &n.enum_values) {
            (Some(ov), Some(nv)) => {
                let removed = ov.difference(nv).copied().collect();
                let added = nv.difference(ov).copied().collect();
                if !ov.is_subset(nv) {
                    let message = format!("{subject} no longer allows {}.", show(&removed));
                    self.at(sink, ChangeKind::EnumNarrowed, request, side, place, message);
                }
                if !nv.is_subset(ov) {
                    let why = if widening_breaks { STRICT_ENUM_WHY } else { "" };
                    let message = format!("{subject} now also allows {}{why}.", show(&added));
                    self.at(sink, ChangeKind::EnumWidened, widening_breaks, side, place, message);
                }
            }
            (None, Some(nv)) => {
                let message = format!("{subject} is now limited to {}.", show(nv));
                self.at(sink, ChangeKind::EnumNarrowed, request, side, place, message);
            }
            (Some(_), None) => {
                let message = format!("{subject} is no longer limited to a list of values.");
                self.at(sink, ChangeKind::EnumWidened, widening_breaks, side, place, message);
            }
            (None, None) => {}
        }
    }

    fn properties(&mut self, o: &Flat<'m>, n: &Flat<'m>, side: Side, place: &Place, sink: &mut Sink, depth: usize) {
        let request = side == Side::Request;
        let (old_model, new_model) = (self.old, self.new);
        // Fields the other side never sees: readOnly ones are not sent in requests, writeOnly ones not returned.
        let hidden = |model: &'m ApiModel, s: Option<&&'m SchemaRef>| {
            s.is_some_and(|s| {
                let core = unwrap(model, s).0;
                if request { s.read_only || core.read_only } else { s.write_only || core.write_only }
            })
        };
        let names: std::collections::BTreeSet<&String> = o
            .properties
            .keys()
            .chain(n.properties.keys())
            .chain(o.required.iter())
            .chain(n.required.iter())
            .copied()
            .collect();
        for name in names {
            let (op, np) = (o.properties.get(name), n.properties.get(name));
            if hidden(new_model, np) || (np.is_none() && hidden(old_model, op)) {
                continue;
            }
            let (old_req, new_req) = (o.required.contains(name), n.required.contains(name));
            let (in_old, in_new) = (op.is_some() || old_req, np.is_some() || new_req);
            let child = place.child(&format!("/properties/{}", pointer_segment(name)), name, true);
            let field = child.describe();
            use ChangeKind::*;
            let found = match (in_old, in_new, request) {
                (true, false, true) => Some((RequestFieldRemoved, false, format!("The {field} was removed."))),
                (true, false, false) => Some((ResponseFieldRemoved, true, format!("The {field} was removed."))),
                (false, true, true) if new_req => {
                    Some((RequestFieldBecameRequired, true, format!("A new required {field} was added.")))
                }
                (false, true, true) => Some((RequestFieldAdded, false, format!("A new optional {field} was added."))),
                (false, true, false) => Some((ResponseFieldAdded, false, format!("A new {field} was added."))),
                (true, true, true) if !old_req && new_req => {
                    Some((RequestFieldBecameRequired, true, format!("The {field} is now required.")))
                }
                (true, true, true) if old_req && !new_req => {
                    Some((RequestFieldBecameOptional, false, format!("The {field} is now optional.")))
                }
                (true, true, false) if old_req && !new_req => {
                    Some((ResponseFieldBecameOptional, true, format!("The {field} is no longer always present.")))
                }
                (true, true, false) if !old_req && new_req => {
                    Some((ResponseFieldBecameRequired, false, format!("The {field} is now always present.")))
                }
                _ => None,
            };
            if let Some((kind, breaking, message)) = found {
                self.at(sink, kind, breaking, side, &child, message);
            }
            if let (Some(os), Some(ns)) = (op, np) {
                self.child(os, ns, side, &child, sink, depth);
            }
        }
    }

    /// Pairs `oneOf`/`anyOf` variants: equal shapes first (whatever their
    /// names), then the same component name, then the most alike; what is
    /// left was removed or added. In a request, a `oneOf` that gains a
    /// variant may make a request that matched one variant match two.
    #[allow(clippy::too_many_arguments)]
    fn variants(
        &mut self,
        old: &[&'m SchemaRef],
        new: &[&'m SchemaRef],
        exclusive: bool,
        side: Side,
        place: &Place,
        sink: &mut Sink,
        depth: usize,
    ) {
        let mut old_match: Vec<Option<usize>> = vec![None; old.len()];
        let mut new_taken = vec![false; new.len()];
        let mut equal = vec![false; old.len()];
        for (i, o) in old.iter().enumerate() {
            if let Some(j) = (0..new.len()).find(|&j| !new_taken[j] && self.shapes.equal(o, new[j])) {
                old_match[i] = Some(j);
                new_taken[j] = true;
                equal[i] = true;
            }
        }
        let name = |model: &'m ApiModel, s: &'m SchemaRef| variant_name(model, s, 0);
        for (i, o) in old.iter().enumerate() {
            if old_match[i].is_some() {
                continue;
            }
            let Some(old_name) = name(self.old, o) else { continue };
            if let Some(j) =
                (0..new.len()).find(|&j| !new_taken[j] && name(self.new, new[j]).as_ref() == Some(&old_name))
            {
                old_match[i] = Some(j);
                new_taken[j] = true;
            }
        }
        for (i, o) in old.iter().enumerate() {
            if old_match[i].is_some() {
                continue;
            }
            // The most alike; between equals, the one nearest in position.
            let best = (0..new.len())
                .filter(|&j| !new_taken[j])
                .map(|j| (j, likeness(self.old, o, self.new, new[j], 0)))
                .filter(|(_, l)| *l >= LIKENESS)
                .max_by(|a, b| a.1.total_cmp(&b.1).then_with(|| i.abs_diff(b.0).cmp(&i.abs_diff(a.0))));
            if let Some((j, _)) = best {
                old_match[i] = Some(j);
                new_taken[j] = true;
            }
        }
        let request = side == Side::Request;
        for (i, o) in old.iter().enumerate() {
            match old_match[i] {
                Some(_) if equal[i] => {}
                Some(j) => {
                    let label = variant_label(self.new, new[j], j);
                    let child = place.child(&format!("/variants/{j}"), &format!("<{label}>"), false);
                    self.child_judging_null(o, new[j], side, &child, sink, depth, false);
                }
                None => {
                    let label = variant_label(self.old, o, i);
                    // In a request, a variant another one still accepts breaks nobody.
                    let still_accepted = request && new.iter().any(|n| self.shapes.covers(n, o, false));
                    let message = if still_accepted {
                        format!(
                            "{} no longer lists the variant {label}, which another variant accepts.",
                            cap(&place.describe())
                        )
                    } else {
                        format!("{} no longer accepts the variant {label}.", cap(&place.describe()))
                    };
                    self.at(sink, ChangeKind::VariantRemoved, request && !still_accepted, side, place, message);
                }
            }
        }
        let types_of = |model: &'m ApiModel, s: &'m SchemaRef| Flat::of(unwrap(model, s).0, model).types;
        let old_types: Vec<_> = old.iter().map(|o| types_of(self.old, o)).collect();
        for (j, n) in new.iter().enumerate().filter(|(j, _)| !new_taken[*j]) {
            let label = variant_label(self.new, n, j);
            // Only a variant that can match what an old variant matched makes a request ambiguous.
            let types = types_of(self.new, n);
            let overlaps = old_types.iter().any(|t| t.is_empty() || types.is_empty() || !t.is_disjoint(&types));
            // In a response, a variant an old one already accepts sends nothing new.
            let known = !request && old.iter().any(|o| self.shapes.covers(o, n, true));
            let (breaking, why) = match (request, exclusive && overlaps) {
                (false, _) if known => (false, " (an old variant accepts all it allows)"),
                (false, _) => (true, ""),
                (true, true) => (true, " (a request that matched one variant may now match two, which oneOf refuses)"),
                (true, false) => (false, ""),
            };
            let message = format!("{} has a new variant {label}{why}.", cap(&place.describe()));
            self.at(sink, ChangeKind::VariantAdded, breaking, side, place, message);
        }
    }

    /// Attaches operations to changes: each operation collects its own
    /// changes and those of every unit it reaches, once.
    fn assemble(self, slots: Vec<Slot>, report: &mut ChangeReport) {
        let units = self.units;
        let count = units.len();
        // Units that lead to a change (have one, or reach one that does).
        let mut callers: Vec<Vec<usize>> = vec![Vec::new(); count];
        for (u, unit) in units.iter().enumerate() {
            for &e in &unit.edges {
                callers[e].push(u);
            }
        }
        let mut dirty = vec![false; count];
        let mut stack: Vec<usize> = (0..count).filter(|&u| !units[u].changes.is_empty()).collect();
        for &u in &stack {
            dirty[u] = true;
        }
        while let Some(u) = stack.pop() {
            for &c in &callers[u] {
                if !dirty[c] {
                    dirty[c] = true;
                    stack.push(c);
                }
            }
        }

        // Distinct changes, by where they are and what they say.
        let mut table: HashMap<(usize, Side, ChangeKind, String, String), usize> = HashMap::new();
        let mut entries: Vec<(Local, Vec<u32>)> = Vec::new();
        let mut intern = |local: Local| -> usize {
            let key = (local.subject, local.side, local.kind, local.pointer.clone(), local.message.clone());
            *table.entry(key).or_insert_with(|| {
                entries.push((local, Vec::new()));
                entries.len() - 1
            })
        };
        let mut unit_entries: Vec<Vec<usize>> = Vec::with_capacity(count);
        for unit in units.iter() {
            let ids = unit.changes.iter().map(|c| intern(clone_local(c))).collect();
            unit_entries.push(ids);
        }
        let mut slot_entries: Vec<Vec<usize>> = Vec::with_capacity(slots.len());
        let mut slot_edges: Vec<Vec<usize>> = Vec::with_capacity(slots.len());
        let mut keys: Vec<(String, bool)> = Vec::with_capacity(slots.len());
        for slot in slots {
            slot_entries.push(slot.sink.changes.into_iter().map(&mut intern).collect());
            slot_edges.push(slot.sink.edges);
            keys.push((slot.key, slot.paired));
        }
        let mut seen = vec![usize::MAX; count];
        let mut changed_ops = 0;
        let add = |entries: &mut Vec<(Local, Vec<u32>)>, id: usize, slot: usize| {
            let ops = &mut entries[id].1;
            if ops.last() != Some(&(slot as u32)) {
                ops.push(slot as u32);
            }
        };
        for slot in 0..keys.len() {
            let mut touched = !slot_entries[slot].is_empty();
            for &id in &slot_entries[slot] {
                add(&mut entries, id, slot);
            }
            let mut stack: Vec<usize> = slot_edges[slot].iter().copied().filter(|&u| dirty[u]).collect();
            while let Some(u) = stack.pop() {
                if seen[u] == slot {
                    continue;
                }
                seen[u] = slot;
                for &id in &unit_entries[u] {
                    add(&mut entries, id, slot);
                    touched = true;
                }
                stack.extend(units[u].edges.iter().copied().filter(|&e| dirty[e] && seen[e] != slot));
            }
            if touched && keys[slot].1 {
                changed_ops += 1;
            }
        }

        // Operations by name, sorted; changes point at them by index.
        let mut names: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let position: Vec<u32> =
            keys.iter().map(|(k, _)| names.binary_search(&k.as_str()).map_or(0, |i| i as u32)).collect();
        report.operations = names.iter().map(|s| (*s).to_owned()).collect();
        report.operations_changed = changed_ops;
        report.changes = entries
            .into_iter()
            .map(|(local, slots)| {
                let mut operations: Vec<u32> = slots.iter().map(|&s| position[s as usize]).collect();
                operations.sort_unstable();
                operations.dedup();
                super::report::Change {
                    kind: local.kind,
                    breaking: local.breaking,
                    side: local.side,
                    subject: self.subjects[local.subject].clone(),
                    pointer: local.pointer,
                    location: local.location,
                    message: local.message,
                    operations,
                }
            })
            .collect();
        report.truncated = self.truncated;
        report.settle();
    }
}

fn clone_local(c: &Local) -> Local {
    Local {
        kind: c.kind,
        breaking: c.breaking,
        side: c.side,
        subject: c.subject,
        pointer: c.pointer.clone(),
        location: c.location.clone(),
        message: c.message.clone(),
    }
}

/// `4xx`, `5xx`, `4XX`, `5XX`.
fn is_error_status(status: &str) -> bool {
    status.starts_with('4') || status.starts_with('5')
}

/// A variant's component name (`Pet`), or its items' (`Pet[]`).
fn variant_name(model: &ApiModel, schema: &SchemaRef, depth: usize) -> Option<String> {
    let core = unwrap(model, schema).0;
    match (&core.ref_name, &core.items) {
        (Some(name), _) => Some(name.clone()),
        (None, Some(items)) if depth < 4 => variant_name(model, items, depth + 1).map(|n| format!("{n}[]")),
        _ => None,
    }
}

/// How alike two variants are: 0 (different types) to 1.
fn likeness(old_model: &ApiModel, old: &SchemaRef, new_model: &ApiModel, new: &SchemaRef, depth: usize) -> f64 {
    let (a, b) = (Flat::of(unwrap(old_model, old).0, old_model), Flat::of(unwrap(new_model, new).0, new_model));
    if !a.types.is_empty() && !b.types.is_empty() && a.types.is_disjoint(&b.types) {
        return 0.0;
    }
    if let (Some(ai), Some(bi)) = (a.items, b.items)
        && depth < 4
    {
        return likeness(old_model, ai, new_model, bi, depth + 1);
    }
    if a.properties.is_empty() && b.properties.is_empty() {
        return if a.types == b.types && a.enum_values == b.enum_values { 1.0 } else { 0.5 };
    }
    let shared = a.properties.keys().filter(|k| b.properties.contains_key(*k)).count();
    let all = a.properties.len() + b.properties.len() - shared;
    shared as f64 / all as f64
}

/// `` `Cat` `` for a component, else its types and place (`string #1`).
fn variant_label(model: &ApiModel, schema: &SchemaRef, index: usize) -> String {
    match variant_name(model, schema, 0) {
        Some(name) => format!("`{name}`"),
        None => format!("{} #{}", show_types(&Flat::of(unwrap(model, schema).0, model).types), index + 1),
    }
}

fn cap(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
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
