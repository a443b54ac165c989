//! What a comparison reports: each distinct change once, where it happens
//! in the document (a component or an operation's own part), with the
//! operations it affects; breaking changes first. Also the compatibility
//! policy that decides whether new response enum values break clients,
//! and the reading of reports stored by older versions of Tollgate.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a new response enum value is breaking under the strict policy, as
/// the message of such a change says.
pub(crate) const STRICT_ENUM_WHY: &str = " (strict clients may reject unknown values)";

/// The version of the stored report format; older reports have none.
pub const REPORT_FORMAT: u32 = 2;

/// How strictly changes are judged, chosen per API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompatibilityPolicy {
    /// A new value in a response enum is breaking: clients generated with
    /// closed enums fail on values they do not know.
    #[default]
    Strict,
    /// A new value in a response enum is not breaking: the API has told its
    /// clients to expect new values (as Stripe and GitHub do).
    AdditiveEnums,
}

impl CompatibilityPolicy {
    pub const ALL: [CompatibilityPolicy; 2] = [CompatibilityPolicy::Strict, CompatibilityPolicy::AdditiveEnums];

    pub fn as_str(self) -> &'static str {
        match self {
            CompatibilityPolicy::Strict => "strict",
            CompatibilityPolicy::AdditiveEnums => "additive_enums",
        }
    }

    /// The name people read.
    pub fn label(self) -> &'static str {
        match self {
            CompatibilityPolicy::Strict => "strict",
            CompatibilityPolicy::AdditiveEnums => "additive enums allowed",
        }
    }

    /// Whether a response enum that now allows more values breaks clients.
    pub fn response_enum_additions_break(self) -> bool {
        self == CompatibilityPolicy::Strict
    }
}

/// Which way the data of a change flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The operation itself (added, removed, renamed, described).
    Operation,
    /// What clients send: parameters and request bodies.
    Request,
    /// What clients receive.
    Response,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Operation => "operation",
            Side::Request => "request",
            Side::Response => "response",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    OperationRemoved,
    OperationAdded,
    OperationDeprecated,
    OperationIdChanged,
    SummaryChanged,
    DescriptionChanged,
    PathParameterRenamed,
    ParameterAddedRequired,
    ParameterAdded,
    ParameterRemoved,
    ParameterBecameRequired,
    ParameterBecameOptional,
    RequestBodyBecameRequired,
    RequestBodyAdded,
    RequestBodyBecameOptional,
    RequestBodyRemoved,
    RequestContentTypeRemoved,
    RequestContentTypeAdded,
    RequestFieldBecameRequired,
    RequestFieldAdded,
    RequestFieldRemoved,
    RequestFieldBecameOptional,
    ResponseStatusRemoved,
    ResponseStatusAdded,
    ResponseContentTypeRemoved,
    ResponseContentTypeAdded,
    ResponseFieldRemoved,
    ResponseFieldBecameOptional,
    ResponseFieldAdded,
    ResponseFieldBecameRequired,
    TypeChanged,
    FormatChanged,
    BecameNullable,
    NoLongerNullable,
    EnumNarrowed,
    EnumWidened,
    VariantAdded,
    VariantRemoved,
    DiscriminatorChanged,
}

impl ChangeKind {
    /// Every kind, in report order.
    pub const ALL: [ChangeKind; 39] = {
        use ChangeKind::*;
        [
            OperationRemoved,
            OperationAdded,
            OperationDeprecated,
            OperationIdChanged,
            SummaryChanged,
            DescriptionChanged,
            PathParameterRenamed,
            ParameterAddedRequired,
            ParameterAdded,
            ParameterRemoved,
            ParameterBecameRequired,
            ParameterBecameOptional,
            RequestBodyBecameRequired,
            RequestBodyAdded,
            RequestBodyBecameOptional,
            RequestBodyRemoved,
            RequestContentTypeRemoved,
            RequestContentTypeAdded,
            RequestFieldBecameRequired,
            RequestFieldAdded,
            RequestFieldRemoved,
            RequestFieldBecameOptional,
            ResponseStatusRemoved,
            ResponseStatusAdded,
            ResponseContentTypeRemoved,
            ResponseContentTypeAdded,
            ResponseFieldRemoved,
            ResponseFieldBecameOptional,
            ResponseFieldAdded,
            ResponseFieldBecameRequired,
            TypeChanged,
            FormatChanged,
            BecameNullable,
            NoLongerNullable,
            EnumNarrowed,
            EnumWidened,
            VariantAdded,
            VariantRemoved,
            DiscriminatorChanged,
        ]
    };

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
            BecameNullable => "became_nullable",
            NoLongerNullable => "no_longer_nullable",
            EnumNarrowed => "enum_narrowed",
            EnumWidened => "enum_widened",
            VariantAdded => "variant_added",
            VariantRemoved => "variant_removed",
            DiscriminatorChanged => "discriminator_changed",
        }
    }

    /// A short heading for a group of changes of this kind.
    pub fn title(self) -> &'static str {
        use ChangeKind::*;
        match self {
            OperationAdded => "Operations added",
            OperationRemoved => "Operations removed",
            OperationDeprecated => "Operations deprecated",
            OperationIdChanged => "operationId changed",
            SummaryChanged => "Summaries changed",
            DescriptionChanged => "Descriptions changed",
            PathParameterRenamed => "Path parameters renamed",
            ParameterAdded => "Optional parameters added",
            ParameterAddedRequired => "Required parameters added",
            ParameterRemoved => "Parameters removed",
            ParameterBecameRequired => "Parameters now required",
            ParameterBecameOptional => "Parameters now optional",
            RequestBodyAdded => "Optional request bodies added",
            RequestBodyBecameRequired => "Request bodies now required",
            RequestBodyBecameOptional => "Request bodies now optional",
            RequestBodyRemoved => "Request bodies removed",
            RequestContentTypeAdded => "Request media types added",
            RequestContentTypeRemoved => "Request media types removed",
            RequestFieldAdded => "Request fields added",
            RequestFieldRemoved => "Request fields removed",
            RequestFieldBecameRequired => "Request fields now required",
            RequestFieldBecameOptional => "Request fields now optional",
            ResponseStatusAdded => "Response statuses added",
            ResponseStatusRemoved => "Response statuses removed",
            ResponseContentTypeAdded => "Response media types added",
            ResponseContentTypeRemoved => "Response media types removed",
            ResponseFieldAdded => "Response fields added",
            ResponseFieldRemoved => "Response fields removed",
            ResponseFieldBecameRequired => "Response fields now always present",
            ResponseFieldBecameOptional => "Response fields no longer always present",
            TypeChanged => "Types changed",
            FormatChanged => "Formats changed",
            BecameNullable => "May now be null",
            NoLongerNullable => "Can no longer be null",
            EnumNarrowed => "Fewer allowed values",
            EnumWidened => "More allowed values",
            VariantAdded => "Variants added",
            VariantRemoved => "Variants removed",
            DiscriminatorChanged => "Discriminators changed",
        }
    }
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a change belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    /// An operation's own part: its parameters, body and responses as
    /// written in the operation.
    Operation,
    /// `/components/schemas/…` (`/definitions/…` in Swagger 2.0).
    Schema,
    Parameter,
    Response,
    RequestBody,
    /// Anything else a `$ref` reached.
    Component,
}

/// Where in the document a change happens: a component, shared by every
/// operation that uses it, or one operation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Subject {
    pub kind: SubjectKind,
    /// `Pet` for a component, `GET /pets/{id}` for an operation.
    pub name: String,
    /// The component's JSON pointer; empty for an operation.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pointer: String,
}

impl Subject {
    pub fn operation(key: &str) -> Subject {
        Subject { kind: SubjectKind::Operation, name: key.to_owned(), pointer: String::new() }
    }

    /// The subject of a component, from its pointer
    /// (`/components/schemas/Pet`).
    pub fn component(pointer: &str) -> Subject {
        let mut segments = pointer.trim_start_matches('/').split('/');
        let kind = match (segments.next(), segments.next()) {
            (Some("components"), Some("schemas")) | (Some("definitions"), _) => SubjectKind::Schema,
            (Some("components"), Some("parameters")) | (Some("parameters"), _) => SubjectKind::Parameter,
            (Some("components"), Some("responses")) | (Some("responses"), _) => SubjectKind::Response,
            (Some("components"), Some("requestBodies")) => SubjectKind::RequestBody,
            _ => SubjectKind::Component,
        };
        let name = pointer.rsplit('/').next().unwrap_or_default().replace("~1", "/").replace("~0", "~");
        Subject { kind, name, pointer: pointer.to_owned() }
    }

    /// `schema \`Pet\``, `GET /pets`.
    pub fn describe(&self) -> String {
        match self.kind {
            SubjectKind::Operation => self.name.clone(),
            SubjectKind::Schema => format!("schema `{}`", self.name),
            SubjectKind::Parameter => format!("parameter `{}`", self.name),
            SubjectKind::Response => format!("response `{}`", self.name),
            SubjectKind::RequestBody => format!("request body `{}`", self.name),
            SubjectKind::Component => format!("component `{}`", self.pointer),
        }
    }

    pub fn is_operation(&self) -> bool {
        self.kind == SubjectKind::Operation
    }
}

/// One distinct difference between the two versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub kind: ChangeKind,
    pub breaking: bool,
    pub side: Side,
    /// Where the change happens.
    pub subject: Subject,
    /// Where exactly, as a JSON pointer into the new document (the old one
    /// for a removed operation), with `$ref`s read as if inlined from the
    /// subject; for Swagger 2.0 it follows the OpenAPI 3 layout the
    /// document converts to.
    pub pointer: String,
    /// Where, for people: `schema \`Pet\` field \`owner.name\``,
    /// `response 200 (application/json) field \`id\``.
    pub location: String,
    /// A sentence describing the change.
    pub message: String,
    /// The operations it affects, as indices into `ChangeReport::operations`.
    pub operations: Vec<u32>,
}

/// The result of `compare`, stored as JSON with each staged version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeReport {
    /// `REPORT_FORMAT`.
    pub format: u32,
    pub policy: CompatibilityPolicy,
    /// Every operation a change affects, sorted; changes name them by index.
    pub operations: Vec<String>,
    pub operations_added: Vec<String>,
    pub operations_removed: Vec<String>,
    /// Operations in both versions that at least one change affects.
    pub operations_changed: usize,
    /// Breaking first, then by kind, subject and place.
    pub changes: Vec<Change>,
    pub breaking_count: usize,
    pub non_breaking_count: usize,
    /// Operations at least one breaking change affects.
    pub breaking_operations: usize,
    /// The comparison stopped early (`MAX_DIFF_WORK`); changes may be missing.
    #[serde(default)]
    pub truncated: bool,
    /// Read from a report of an older Tollgate, which listed each change
    /// once per operation.
    #[serde(default)]
    pub legacy: bool,
}

impl Default for ChangeReport {
    fn default() -> Self {
        ChangeReport {
            format: REPORT_FORMAT,
            policy: CompatibilityPolicy::default(),
            operations: Vec::new(),
            operations_added: Vec::new(),
            operations_removed: Vec::new(),
            operations_changed: 0,
            changes: Vec::new(),
            breaking_count: 0,
            non_breaking_count: 0,
            breaking_operations: 0,
            truncated: false,
            legacy: false,
        }
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl ChangeReport {
    pub fn breaking(&self) -> bool {
        self.breaking_count > 0
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The operations a change affects.
    pub fn operations_of<'r>(&'r self, change: &'r Change) -> impl Iterator<Item = &'r str> + 'r {
        change.operations.iter().filter_map(|&i| self.operations.get(i as usize)).map(String::as_str)
    }

    /// Puts changes in report order and counts them: breaking first, then
    /// by kind, subject and place.
    pub(crate) fn settle(&mut self) {
        self.changes.sort_by(|a, b| {
            (!a.breaking, a.kind, &a.subject, &a.pointer, &a.message).cmp(&(
                !b.breaking,
                b.kind,
                &b.subject,
                &b.pointer,
                &b.message,
            ))
        });
        self.breaking_count = self.changes.iter().filter(|c| c.breaking).count();
        self.non_breaking_count = self.changes.len() - self.breaking_count;
        let breaking: BTreeSet<u32> =
            self.changes.iter().filter(|c| c.breaking).flat_map(|c| c.operations.iter().copied()).collect();
        self.breaking_operations = breaking.len();
    }

    /// Judges the report again under another policy (an admin changed the
    /// API's policy after staging): only response enum additions depend on it.
    pub fn apply_policy(&mut self, policy: CompatibilityPolicy) {
        self.policy = policy;
        for change in &mut self.changes {
            if change.kind == ChangeKind::EnumWidened && change.side == Side::Response {
                change.breaking = policy.response_enum_additions_break();
                let plain = change.message.replace(STRICT_ENUM_WHY, "");
                change.message = match (change.breaking, plain.strip_suffix('.')) {
                    (true, Some(sentence)) => format!("{sentence}{STRICT_ENUM_WHY}."),
                    _ => plain,
                };
            }
        }
        self.settle();
    }

    /// The changes that matter most: breaking ones first, each group by the
    /// number of operations affected.
    pub fn top(&self, limit: usize) -> Vec<&Change> {
        let mut order: Vec<&Change> = self.changes.iter().collect();
        order.sort_by_key(|c| (!c.breaking, std::cmp::Reverse(c.operations.len())));
        order.truncate(limit);
        order
    }

    /// The headline: distinct changes and how many operations they affect.
    pub fn headline(&self) -> String {
        if self.changes.is_empty() {
            return "No changes to operations, parameters, bodies or responses.".to_owned();
        }
        let breaking = if self.breaking_count == 0 {
            "No breaking changes".to_owned()
        } else {
            format!(
                "{} affecting {}",
                plural(self.breaking_count, "breaking change", "breaking changes"),
                plural(self.breaking_operations, "operation", "operations")
            )
        };
        format!(
            "{breaking}; {}. Operations: {} added, {} removed, {} changed.",
            plural(self.non_breaking_count, "other change", "other changes"),
            self.operations_added.len(),
            self.operations_removed.len(),
            self.operations_changed
        )
    }

    /// One line for a change: `BREAKING schema \`Pet\` field \`name\`: … (12 operations)`.
    pub fn line(&self, change: &Change) -> String {
        let scope = match change.operations.len() {
            0 => String::new(),
            1 if change.subject.is_operation() => String::new(),
            1 => format!(" (affects {})", self.operations_of(change).next().unwrap_or_default()),
            n => format!(" (affects {n} operations)"),
        };
        let whose = if change.subject.is_operation() { format!("{}: ", change.subject.name) } else { String::new() };
        format!("{} {whose}{}{scope}", if change.breaking { "BREAKING" } else { "change" }, change.message)
    }

    /// For people: the headline, then the `limit` top changes, breaking
    /// first, and how many more there are.
    pub fn summary_lines(&self, limit: usize) -> Vec<String> {
        let mut lines = vec![self.headline()];
        if self.legacy {
            lines.push("This report was made by an earlier Tollgate, which listed a change once per operation.".into());
        }
        if self.truncated {
            lines.push("The comparison stopped early: the documents are too large to compare completely.".to_owned());
        }
        let top = self.top(limit);
        lines.extend(top.iter().map(|c| self.line(c)));
        if self.changes.len() > top.len() {
            lines.push(format!("… and {} more.", self.changes.len() - top.len()));
        }
        lines
    }

    /// Reads a stored report of any format (an older one is regrouped as
    /// well as it can be: one change per operation).
    pub fn from_stored(value: serde_json::Value) -> Result<ChangeReport, serde_json::Error> {
        if value.get("format").is_some() {
            return serde_json::from_value(value);
        }
        let legacy: LegacyReport = serde_json::from_value(value)?;
        let mut operations: Vec<String> = legacy.changes.iter().map(|c| c.operation.clone()).collect();
        operations.sort();
        operations.dedup();
        let index = |op: &str| operations.binary_search_by(|o| o.as_str().cmp(op)).map_or(0, |i| i as u32);
        let changes = legacy
            .changes
            .iter()
            .map(|c| Change {
                kind: c.kind,
                breaking: c.breaking,
                side: legacy_side(c.kind, &c.location),
                subject: Subject::operation(&c.operation),
                pointer: c.pointer.clone(),
                location: c.location.clone(),
                message: c.message.clone(),
                operations: vec![index(&c.operation)],
            })
            .collect();
        let mut report = ChangeReport {
            operations_added: legacy.operations_added,
            operations_removed: legacy.operations_removed,
            operations_changed: legacy.operations_changed.len(),
            changes,
            truncated: legacy.truncated,
            legacy: true,
            ..ChangeReport::default()
        };
        report.operations = operations;
        report.settle();
        Ok(report)
    }
}

fn legacy_side(kind: ChangeKind, location: &str) -> Side {
    use ChangeKind::*;
    match kind {
        OperationAdded | OperationRemoved | OperationDeprecated | OperationIdChanged | SummaryChanged
        | DescriptionChanged | PathParameterRenamed => Side::Operation,
        _ if location.starts_with("response") => Side::Response,
        _ => Side::Request,
    }
}

/// The report format before `REPORT_FORMAT` 2: each change once per operation.
#[derive(Deserialize)]
struct LegacyReport {
    #[serde(default)]
    operations_added: Vec<String>,
    #[serde(default)]
    operations_removed: Vec<String>,
    #[serde(default)]
    operations_changed: Vec<String>,
    #[serde(default)]
    changes: Vec<LegacyChange>,
    #[serde(default)]
    truncated: bool,
}

#[derive(Deserialize)]
struct LegacyChange {
    kind: ChangeKind,
    breaking: bool,
    operation: String,
    pointer: String,
    location: String,
    message: String,
}

impl fmt::Display for ChangeReport {
    /// Every change, breaking first (what the CLI prints).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.headline())?;
        if self.truncated {
            writeln!(f, "The comparison stopped early: the documents are too large to compare completely.")?;
        }
        for change in &self.changes {
            writeln!(f, "{}", self.line(change))?;
        }
        Ok(())
    }
}
