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

use super::document::{Api, Document, FORMAT_VERSION};
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

/// Reads and checks a configuration file's text.
pub fn parse(text: &str) -> Result<Document, Located> {
    if text.len() > MAX_BYTES {
        return Err(Located {
            line: None,
            column: None,
            path: None,
            message: format!("the file is larger than {} MiB", MAX_BYTES / 1024 / 1024),
        });
    }
    let doc: Document = yaml_serde::from_str(text).map_err(|e| {
        let location = e.location();
        let mut message = e.to_string();
        // The parser's message ends with where; the fields say it already.
        if let Some(at) = message.rfind(" at line ") {
            message.truncate(at);
        }
        Located { line: location.as_ref().map(|l| l.line()), column: location.map(|l| l.column()), path: None, message }
    })?;
    check(text, &doc)?;
    Ok(doc)
}

fn check(text: &str, doc: &Document) -> Result<(), Located> {
    let root = NodePath::default();
    let fail = |path: NodePath, message: String| Err(Located::at(text, &path, message));
    if doc.version != FORMAT_VERSION {
        return fail(root.key("version"), format!("this Tollgate reads version {FORMAT_VERSION} files"));
    }
    let mut slugs = HashSet::new();
    let mut routes = HashSet::new();
    for (i, api) in doc.apis.iter().enumerate() {
        let at = root.key("apis").index(i);
        if !slugs.insert(api.slug.as_str()) {
            return fail(at.key("slug"), format!("another API is also called {}", api.slug));
        }
        let base_path = api.base_path.clone().unwrap_or_else(|| format!("/{}", api.slug));
        if !routes.insert((api.public_host.clone(), base_path.clone())) {
            return fail(at.key("base_path"), format!("another API also serves {base_path} on this host"));
        }
        check_api(text, &at, api)?;
    }
    Ok(())
}

fn check_api(text: &str, at: &NodePath, api: &Api) -> Result<(), Located> {
    let fail = |path: NodePath, message: String| Err(Located::at(text, &path, message));
    if let Err(e) = tollgate_openapi::parse(&api.spec) {
        let inner = e.line.map(|l| format!(" (line {l} of the spec)")).unwrap_or_default();
        return fail(at.key("spec"), format!("the OpenAPI document does not read{inner}: {e}"));
    }
    match (api.lifecycle.state, api.lifecycle.sunset_at) {
        (ApiState::Deprecated, None) => {
            return fail(at.key("lifecycle"), "a deprecated API needs a sunset_at date".into());
        }
        (state, Some(_)) if state != ApiState::Deprecated => {
            return fail(at.key("lifecycle").key("sunset_at"), "only a deprecated API has a sunset date".into());
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
            return fail(here.key("system_name"), format!("{} is listed twice", m.system_name));
        }
        if let Some(parent) = &m.parent {
            if m.system_name == "hits" {
                return fail(here.key("parent"), "hits is the top-level metric and has no parent".into());
            }
            if !known(parent) {
                return fail(here.key("parent"), format!("{parent} is not a metric of this API"));
            }
        }
    }
    if !api.metrics.is_empty() && !metrics.contains("hits") {
        return fail(at.key("metrics"), "every API has the metric hits; list it".into());
    }
    let mut rules = HashSet::new();
    for (j, r) in api.mapping_rules.iter().enumerate() {
        let here = at.key("mapping_rules").index(j);
        if !rules.insert((r.method.to_ascii_uppercase(), r.pattern.as_str())) {
            return fail(here, format!("another rule also maps {} {}", r.method, r.pattern));
        }
        if !known(&r.metric) {
            return fail(here.key("metric"), format!("{} is not a metric of this API", r.metric));
        }
    }
    let groups = check_routing(text, at, api)?;
    // With groups listed, a route must name one of them; without, the database checks.
    let group_known = |name: &str| name == DEFAULT_GROUP || groups.is_empty() || groups.contains(name);
    let mut mocked = HashSet::new();
    for (j, name) in api.mocks.operations.iter().enumerate() {
        let here = at.key("mocks").key("operations").index(j);
        if !mocked.insert(name.as_str()) {
            return fail(here, format!("{name} is listed twice"));
        }
        if !known(name) {
            return fail(here, format!("{name} is not a metric of this API"));
        }
    }
    let mut plans = HashSet::new();
    for (j, p) in api.plans.iter().enumerate() {
        let here = at.key("plans").index(j);
        if !plans.insert(p.system_name.as_str()) {
            return fail(here.key("system_name"), format!("another plan of this API is also called {}", p.system_name));
        }
        if let Err(e) = parse_levels(&p.alert_levels) {
            return fail(here.key("alert_levels"), e.to_string());
        }
        if let Some(group) = p.upstream_group.as_deref().filter(|g| !group_known(g)) {
            return fail(here.key("upstream_group"), format!("{group} is not an upstream group of this API"));
        }
        let references =
            p.limits.iter().map(|l| ("limits", &l.metric)).chain(p.pricing.iter().map(|t| ("pricing", &t.metric)));
        let mut index = (0, 0);
        for (list, metric) in references {
            let k = if list == "limits" { &mut index.0 } else { &mut index.1 };
            if !known(metric) {
                return fail(here.key(list).index(*k).key("metric"), format!("{metric} is not a metric of this API"));
            }
            *k += 1;
        }
    }
    for (j, route) in api.routing.applications.iter().enumerate() {
        let here = at.key("routing").key("applications").index(j);
        if api.routing.applications[..j].iter().any(|r| r.application == route.application) {
            return fail(here.key("application"), format!("application {} is routed twice", route.application));
        }
        if !group_known(&route.group) {
            return fail(here.key("group"), format!("{} is not an upstream group of this API", route.group));
        }
    }
    Ok(())
}

/// The groups' names, weights and targets; returns the names listed.
fn check_routing<'a>(text: &str, at: &NodePath, api: &'a Api) -> Result<HashSet<&'a str>, Located> {
    let max = tollgate_protocol::routing::MAX_WEIGHT;
    let mut names = HashSet::new();
    for (j, g) in api.routing.groups.iter().enumerate() {
        let here = at.key("routing").key("groups").index(j);
        if let Err(Error::Invalid { message, .. }) = GroupName::parse("name", &g.name) {
            return Err(Located::at(text, &here.key("name"), message));
        }
        if !names.insert(g.name.as_str()) {
            return Err(Located::at(text, &here.key("name"), format!("another group is also called {}", g.name)));
        }
        if g.weight > max {
            return Err(Located::at(text, &here.key("weight"), format!("a weight is an integer from 0 to {max}")));
        }
        if g.name == DEFAULT_GROUP && !g.urls.is_empty() {
            return Err(Located::at(
                text,
                &here.key("urls"),
                "the default group's targets are the API's upstreams: list them under upstreams",
            ));
        }
        if g.name != DEFAULT_GROUP && g.urls.is_empty() {
            return Err(Located::at(text, &here, "a group other than default needs urls (1 to 20 target URLs)"));
        }
    }
    Ok(names)
}
