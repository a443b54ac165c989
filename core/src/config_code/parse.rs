//! Reading a configuration file: YAML into a [`Document`] (the parser
//! locates syntax and type errors), then the checks that need the whole
//! document (names unique, references known, states consistent), each
//! located by the path of the node it is about.

use std::collections::HashSet;
use std::fmt;

use crate::Error;
use crate::apis::ApiState;
use crate::routing::{DEFAULT_GROUP, GroupName};
use crate::usage::levels::parse_levels;

use yaml_serde::Value;

use super::document::{Api, Document, FORMAT_VERSION, Limit, Metric, Mode, Plan, Rule, Tier};
use super::locate::{NodePath, locate};

/// The largest file read (a provider's specs inline, with room to spare).
pub const MAX_BYTES: usize = 32 * 1024 * 1024;

/// What is wrong with a configuration file, and where.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Located {
    /// From 1, when known.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The node, e.g. `apis[0].plans[1].limits[0].metric`.
    pub path: Option<String>,
    pub message: String,
}

impl Located {
    /// An error about the node at `path` of `text`.
    pub fn at(text: &str, path: &NodePath, message: impl Into<String>) -> Located {
        let position = locate(text, path);
        Located {
            line: position.map(|p| p.0),
            column: position.map(|p| p.1),
            path: Some(path.to_string()),
            message: message.into(),
        }
    }
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, "line {line}, column {column}: ")?,
            (Some(line), None) => write!(f, "line {line}: ")?,
            _ => {}
        }
        if let Some(path) = &self.path {
            write!(f, "{path}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// The most problems one check reports: enough to fix a file in one pass, bounded for a huge one.
pub const MAX_PROBLEMS: usize = 50;

/// Reads and checks a configuration file's text. A file that does not read as YAML of the
/// format is refused at its first error; one that does is checked whole, and every problem
/// found (up to [`MAX_PROBLEMS`]) is returned, in the file's order.
pub fn parse(text: &str) -> Result<Document, Vec<Located>> {
    if text.len() > MAX_BYTES {
        return Err(vec![Located {
            line: None,
            column: None,
            path: None,
            message: format!("the file is larger than {} MiB", MAX_BYTES / 1024 / 1024),
        }]);
    }
    // Only an escape (`"\0"`) can put a NUL in a YAML string; Postgres cannot store one.
    if text.contains('\\')
        && let Ok(root) = yaml_serde::from_str::<Value>(text)
        && let Some(at) = nul_at(&root, &NodePath::default())
    {
        return Err(vec![Located::at(text, &at, "this text holds a NUL character (\\0), which cannot be stored")]);
    }
    let doc: Document = yaml_serde::from_str(text).map_err(|e| {
        let location = e.location();
        let mut message = e.to_string();
        // The parser's message ends with where; the fields say it already.
        if let Some(at) = message.rfind(" at line ") {
            message.truncate(at);
        }
        let first = Located {
            line: location.as_ref().map(|l| l.line()),
            column: location.map(|l| l.column()),
            path: None,
            message,
        };
        type_errors(text, first)
    })?;
    let mut found = Found { text, problems: Vec::new() };
    check(&mut found, &doc);
    if found.problems.is_empty() { Ok(doc) } else { Err(found.problems) }
}

/// Where the first string holding a NUL is, key or value.
fn nul_at(value: &Value, at: &NodePath) -> Option<NodePath> {
    match value {
        Value::String(text) => text.contains('\0').then(|| at.clone()),
        Value::Sequence(items) => items.iter().enumerate().find_map(|(i, item)| nul_at(item, &at.index(i))),
        Value::Mapping(map) => map.iter().find_map(|(key, item)| {
            let name = key.as_str().unwrap_or_default();
            if name.contains('\0') { Some(at.clone()) } else { nul_at(item, &at.key(name)) }
        }),
        Value::Tagged(tagged) => nul_at(&tagged.value, at),
        _ => None,
    }
}

/// The type errors of a file that reads as YAML but not as the format (a word where a number
/// belongs, a field misspelt, one left out): the first of each object (the document's own
/// fields, each API, each of its metrics, rules and plans, each limit, tier and mode), so that
/// mistakes in several places are told at once. A file that is not YAML at all has only the
/// parser's `first` error, as has one whose mistakes the objects one by one do not show.
fn type_errors(text: &str, first: Located) -> Vec<Located> {
    let Ok(root) = yaml_serde::from_str::<Value>(text) else { return vec![first] };
    let mut found = Found { text, problems: Vec::new() };
    let at = NodePath::default();
    probe::<Document>(&mut found, &without_lists(&root, &["apis"]), &at);
    for (i, api) in items(&root, "apis") {
        let at = at.key("apis").index(i);
        probe::<Api>(&mut found, &without_lists(api, &["metrics", "mapping_rules", "plans"]), &at);
        for (j, metric) in items(api, "metrics") {
            probe::<Metric>(&mut found, metric, &at.key("metrics").index(j));
        }
        for (j, rule) in items(api, "mapping_rules") {
            probe::<Rule>(&mut found, rule, &at.key("mapping_rules").index(j));
        }
        for (j, plan) in items(api, "plans") {
            let at = at.key("plans").index(j);
            probe::<Plan>(&mut found, &without_lists(plan, &["limits", "pricing", "pricing_modes"]), &at);
            for (k, limit) in items(plan, "limits") {
                probe::<Limit>(&mut found, limit, &at.key("limits").index(k));
            }
            for (k, tier) in items(plan, "pricing") {
                probe::<Tier>(&mut found, tier, &at.key("pricing").index(k));
            }
            for (k, mode) in items(plan, "pricing_modes") {
                probe::<Mode>(&mut found, mode, &at.key("pricing_modes").index(k));
            }
        }
    }
    if found.problems.is_empty() {
        return vec![first];
    }
    found.problems.sort_by_key(|p| (p.line, p.column));
    found.problems
}

/// Notes the first problem of reading `value` as a `T`, at `at` and serde's path below it.
fn probe<T: serde::de::DeserializeOwned>(found: &mut Found<'_>, value: &Value, at: &NodePath) {
    if let Err(e) = serde_path_to_error::deserialize::<_, T>(value.clone()) {
        let inner = e.path().to_string();
        let below = if inner == "." || inner == "?" { at.clone() } else { at.field(&inner) };
        found.add(below, e.into_inner().to_string());
    }
}

/// The items of a mapping's list field, when it is a list.
fn items<'v>(value: &'v Value, key: &str) -> impl Iterator<Item = (usize, &'v Value)> {
    value.get(key).and_then(Value::as_sequence).into_iter().flatten().enumerate()
}

/// The mapping with these list fields emptied, so that reading it shows its own fields'
/// problems; the lists' items are read one by one.
fn without_lists(value: &Value, keys: &[&str]) -> Value {
    let mut value = value.clone();
    if let Some(mapping) = value.as_mapping_mut() {
        for key in keys {
            if let Some(list) = mapping.get_mut(*key)
                && list.is_sequence()
            {
                *list = Value::Sequence(Vec::new());
            }
        }
    }
    value
}

/// The problems found so far, each located in the file's text.
struct Found<'a> {
    text: &'a str,
    problems: Vec<Located>,
}

impl Found<'_> {
    fn add(&mut self, path: NodePath, message: impl Into<String>) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(Located::at(self.text, &path, message));
        }
    }
}

fn check(found: &mut Found<'_>, doc: &Document) {
    let root = NodePath::default();
    if doc.version != FORMAT_VERSION {
        // Another version's fields mean other things: nothing more is checked.
        return found.add(root.key("version"), format!("this Tollgate reads version {FORMAT_VERSION} files"));
    }
    let mut slugs = HashSet::new();
    let mut routes = HashSet::new();
    for (i, api) in doc.apis.iter().enumerate() {
        let at = root.key("apis").index(i);
        if !slugs.insert(api.slug.as_str()) {
            found.add(at.key("slug"), format!("another API is also called {}", api.slug));
        }
        let base_path = api.base_path.clone().unwrap_or_else(|| format!("/{}", api.slug));
        if !routes.insert((api.public_host.clone(), base_path.clone())) {
            found.add(at.key("base_path"), format!("another API also serves {base_path} on this host"));
        }
        check_api(found, &at, api);
    }
}

fn check_api(found: &mut Found<'_>, at: &NodePath, api: &Api) {
    let problem = tollgate_openapi::parse(&api.spec)
        .map_err(crate::Error::Import)
        .and_then(|spec| crate::apis::rules::check_imported_paths(&api.spec, &spec));
    if let Err(crate::Error::Import(e)) = problem {
        let inner = e.line.map(|l| format!(" (line {l} of the spec)")).unwrap_or_default();
        found.add(at.key("spec"), format!("the OpenAPI document does not read{inner}: {e}"));
    }
    match (api.lifecycle.state, api.lifecycle.sunset_at) {
        // Stored in UTC: a time whose UTC form leaves the years 0000–9999 cannot be.
        (_, Some(sunset)) if sunset.checked_to_offset(time::UtcOffset::UTC).is_none() => {
            found.add(at.key("lifecycle").key("sunset_at"), "use a date-time before the year 10000 in UTC")
        }
        (ApiState::Deprecated, None) => found.add(at.key("lifecycle"), "a deprecated API needs a sunset_at date"),
        (state, Some(_)) if state != ApiState::Deprecated => {
            found.add(at.key("lifecycle").key("sunset_at"), "only a deprecated API has a sunset date")
        }
        _ => {}
    }
    let metrics: HashSet<&str> = api.metrics.iter().map(|m| m.system_name.as_str()).collect();
    // With metrics listed, every reference must be to one of them; without,
    // the database checks references against the metrics the import made.
    let known = |name: &str| api.metrics.is_empty() || metrics.contains(name);
    let mut seen = HashSet::new();
    for (j, m) in api.metrics.iter().enumerate() {
        let here = at.key("metrics").index(j);
        if !seen.insert(m.system_name.as_str()) {
            found.add(here.key("system_name"), format!("{} is listed twice", m.system_name));
        }
        if let Some(parent) = &m.parent {
            if m.system_name == "hits" {
                found.add(here.key("parent"), "hits is the top-level metric and has no parent");
            } else if !known(parent) {
                found.add(here.key("parent"), format!("{parent} is not a metric of this API"));
            }
        }
    }
    if !api.metrics.is_empty() && !metrics.contains("hits") {
        found.add(at.key("metrics"), "every API has the metric hits; list it");
    }
    let mut rules = HashSet::new();
    for (j, r) in api.mapping_rules.iter().enumerate() {
        let here = at.key("mapping_rules").index(j);
        if !rules.insert((r.method.to_ascii_uppercase(), r.pattern.as_str())) {
            found.add(here.clone(), format!("another rule also maps {} {}", r.method, r.pattern));
        }
        if !known(&r.metric) {
            found.add(here.key("metric"), format!("{} is not a metric of this API", r.metric));
        }
    }
    let groups = check_routing(found, at, api);
    // With groups listed, a route must name one of them; without, the database checks.
    let group_known = |name: &str| name == DEFAULT_GROUP || groups.is_empty() || groups.contains(name);
    let mut mocked = HashSet::new();
    for (j, name) in api.mocks.operations.iter().enumerate() {
        let here = at.key("mocks").key("operations").index(j);
        if !mocked.insert(name.as_str()) {
            found.add(here, format!("{name} is listed twice"));
        } else if !known(name) {
            found.add(here, format!("{name} is not a metric of this API"));
        }
    }
    let mut plans = HashSet::new();
    for (j, p) in api.plans.iter().enumerate() {
        let here = at.key("plans").index(j);
        if !plans.insert(p.system_name.as_str()) {
            found.add(here.key("system_name"), format!("another plan of this API is also called {}", p.system_name));
        }
        if let Err(e) = parse_levels(&p.alert_levels) {
            found.add(here.key("alert_levels"), e.to_string());
        }
        if let Some(group) = p.upstream_group.as_deref().filter(|g| !group_known(g)) {
            found.add(here.key("upstream_group"), format!("{group} is not an upstream group of this API"));
        }
        for (k, limit) in p.limits.iter().enumerate().filter(|(_, l)| !known(&l.metric)) {
            found.add(
                here.key("limits").index(k).key("metric"),
                format!("{} is not a metric of this API", limit.metric),
            );
        }
        for (k, tier) in p.pricing.iter().enumerate().filter(|(_, t)| !known(&t.metric)) {
            found.add(
                here.key("pricing").index(k).key("metric"),
                format!("{} is not a metric of this API", tier.metric),
            );
        }
    }
    for (j, route) in api.routing.applications.iter().enumerate() {
        let here = at.key("routing").key("applications").index(j);
        if api.routing.applications[..j].iter().any(|r| r.application == route.application) {
            found.add(here.key("application"), format!("application {} is routed twice", route.application));
        }
        if !group_known(&route.group) {
            found.add(here.key("group"), format!("{} is not an upstream group of this API", route.group));
        }
    }
}

/// The groups' names, weights and targets; returns the names listed.
fn check_routing<'a>(found: &mut Found<'_>, at: &NodePath, api: &'a Api) -> HashSet<&'a str> {
    let max = tollgate_protocol::routing::MAX_WEIGHT;
    let mut names = HashSet::new();
    for (j, g) in api.routing.groups.iter().enumerate() {
        let here = at.key("routing").key("groups").index(j);
        if let Err(Error::Invalid { message, .. }) = GroupName::parse("name", &g.name) {
            found.add(here.key("name"), message);
        } else if !names.insert(g.name.as_str()) {
            found.add(here.key("name"), format!("another group is also called {}", g.name));
        }
        if g.weight > max {
            found.add(here.key("weight"), format!("a weight is an integer from 0 to {max}"));
        }
        if g.name == DEFAULT_GROUP && !g.urls.is_empty() {
            found.add(
                here.key("urls"),
                "the default group's targets are the API's upstreams: list them under upstreams",
            );
        }
        if g.name != DEFAULT_GROUP && g.urls.is_empty() {
            found.add(here, "a group other than default needs urls (1 to 20 target URLs)");
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::{MAX_PROBLEMS, parse};

    #[test]
    fn every_problem_is_found_in_the_files_order_up_to_the_cap() {
        let api = |slug: &str, metric: &str| {
            format!(
                "  - slug: {slug}\n    name: A\n    spec: 'openapi: 3.0.3'\n    metrics: [{{system_name: hits, friendly_name: Hits}}]\n    mapping_rules: [{{method: GET, pattern: /x, metric: {metric}}}]\n"
            )
        };
        // Two APIs, each with two problems: a spec that does not read and an unknown metric.
        let text = format!("version: 1\napis:\n{}{}", api("a", "nope"), api("b", "gone"));
        let problems = parse(&text).expect_err("refused");
        let paths: Vec<&str> = problems.iter().filter_map(|p| p.path.as_deref()).collect();
        assert_eq!(
            paths,
            ["apis[0].spec", "apis[0].mapping_rules[0].metric", "apis[1].spec", "apis[1].mapping_rules[0].metric"]
        );
        let lines: Vec<usize> = problems.iter().filter_map(|p| p.line).collect();
        assert!(lines.windows(2).all(|w| w[0] < w[1]), "{lines:?}");
        // Many more are cut at the cap.
        let many: String = (0..40).map(|i| api(&format!("s{i}"), "nope")).collect();
        assert_eq!(parse(&format!("version: 1\napis:\n{many}")).expect_err("refused").len(), MAX_PROBLEMS);
    }

    #[test]
    fn type_errors_in_several_objects_are_told_at_once_each_located() {
        let text = "version: 1
apis:
  - slug: a
    name: A
    spec: 'openapi: 3.0.3'
    metrics: [{system_name: hits, friendly_name: Hits}]
    mapping_rules:
      - {method: GET, pattern: /x, metric: hits, delta: many}
    plans:
      - system_name: basic
        name: Basic
        currency: USD
        trial_days: soon
        limits:
          - {metric: hits, period: day, max: 10}
          - {metric: hits, period: fortnight, max: 10}
  - slug: b
    nmae: B
    spec: 'openapi: 3.0.3'
";
        let problems = parse(text).expect_err("refused");
        let found: Vec<(Option<&str>, Option<usize>)> = problems.iter().map(|p| (p.path.as_deref(), p.line)).collect();
        assert_eq!(
            found,
            [
                (Some("apis[0].mapping_rules[0].delta"), Some(8)),
                (Some("apis[0].plans[0].trial_days"), Some(13)),
                (Some("apis[0].plans[0].limits[1].period"), Some(16)),
                (Some("apis[1].nmae"), Some(18)),
            ],
            "{problems:#?}"
        );
        assert!(problems[3].message.contains("nmae"), "{:?}", problems[3]);
        // Not YAML at all: the parser's one error.
        let problems = parse("version: 1\napis: [\n").expect_err("refused");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].line.is_some());
    }
}
