//! The full configuration an agent enforces, as sent on (re)connect and kept on disk.
//!
//! Ids are UUIDs on the wire; the agent maps them to dense `u32` indices itself. Nothing here
//! uses `deny_unknown_fields`: a newer server may add fields and older agents must ignore
//! them (see the crate docs on compatibility).

use std::collections::{HashMap, HashSet};
use std::fmt;

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::key::{KeyHash, KeyKind};
use crate::mock::{self, ApiMocks};
use crate::pattern::Pattern;
use crate::period::{Period, TimeZoneName, WindowId};
use crate::routing::Routing;
pub use crate::upstream::Upstream;
use crate::upstream::check_upstream_url;
pub use crate::validation::ValidationError;
use crate::{BASE_PROTOCOL_VERSION, PROTOCOL_VERSION};

/// Everything an agent needs to route, authenticate and limit, at one revision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The lowest protocol version that can apply it: [`BASE_PROTOCOL_VERSION`] unless it
    /// [requires](Self::requires) a feature ([`crate::features`]).
    pub protocol_version: u32,
    /// Features an agent must understand to apply this snapshot ([`crate::features`]).
    /// Omitted when empty; sent before the APIs, so
    /// an agent can refuse early.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<String>,
    /// Monotonic config revision; deltas name the revision they apply on top of.
    pub revision: u64,
    pub generated_at: Timestamp,
    pub apis: Vec<Api>,
    pub plans: Vec<Plan>,
    /// Upstream groups, splits and overrides of the APIs that have more than their one
    /// default group ([`crate::routing`]). Omitted when empty;
    /// sent before the applications, so an agent compiles it with the APIs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routing: Vec<Routing>,
    /// The APIs with operations in mock mode (feature `mocks`); absent when none. Before
    /// the applications, so an agent compiles the catalog once while the snapshot streams in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mocks: Vec<ApiMocks>,
    pub applications: Vec<Application>,
    pub credentials: Vec<Credential>,
    /// Current-window usage for periods of an hour or longer ([`Period::is_seeded`]), so a
    /// restarted agent does not hand out a fresh monthly quota.
    pub usage: Vec<CurrentUsage>,
}

/// An API product as the gateway sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Api {
    pub id: Uuid,
    pub slug: String,
    /// Lowercase host names (no port) this API answers on; empty means any host.
    pub hosts: Vec<String>,
    /// Public path prefix, `/` or `/segment…` without a trailing slash. Mapping-rule patterns
    /// are matched against the rest of the path.
    pub base_path: String,
    /// Where calls go when the snapshot has no [`Routing`] for this API; with one, its
    /// groups decide and these are the targets of its heaviest group.
    pub upstreams: Vec<Upstream>,
    pub lifecycle: Lifecycle,
    pub auth: AuthMode,
    pub metrics: Vec<Metric>,
    /// Sorted by strictly increasing `position`: the agent evaluates them in this order.
    pub mapping_rules: Vec<MappingRule>,
    pub on_no_match: NoMatch,
}

/// Where an API is in its life. Agents serve `published` and `deprecated` APIs (the latter
/// with `Deprecation`/`Sunset` headers), answer 410 for `retired` and 404 for `draft`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Lifecycle {
    Draft,
    Published,
    Deprecated {
        sunset: Option<Date>,
        /// When the API was deprecated: RFC 9745's `Deprecation: @<seconds>`. Servers before
        /// it was sent leave it out.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<Timestamp>,
    },
    Retired,
}

impl Lifecycle {
    /// Whether requests are proxied.
    pub fn serves_traffic(&self) -> bool {
        matches!(self, Lifecycle::Published | Lifecycle::Deprecated { .. })
    }
}

/// How a consumer presents credentials.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum AuthMode {
    /// One secret (`user_key`) identifies the application.
    UserKey { location: KeyLocation },
    /// Public `app_id` plus one of the application's secret `app_key`s.
    AppIdKey { app_id: KeyLocation, app_key: KeyLocation },
}

/// Where in the request a credential is read from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "in", rename_all = "snake_case")]
pub enum KeyLocation {
    /// A query-string parameter (the agent strips it before proxying).
    Query { name: String },
    /// A request header; compared case-insensitively.
    Header { name: String },
}

impl KeyLocation {
    pub fn name(&self) -> &str {
        match self {
            KeyLocation::Query { name } | KeyLocation::Header { name } => name,
        }
    }
}

/// A metric or method (a method is a metric with a parent; usage on it also counts on the
/// parent, transitively).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metric {
    /// Unique across all APIs, so usage can name a metric without its API.
    pub id: Uuid,
    /// Unique within the API, e.g. `hits` or `get_pet`.
    pub system_name: String,
    pub parent: Option<Uuid>,
}

/// A request matching `http_method` and `pattern` adds `delta` to `metric`.
///
/// How the matching rules of a request count depends on their [`RuleOrigin`]: of the
/// *imported* rules that match, only the most specific counts ([`Pattern::specificity`],
/// then the lowest position), so a call counts on exactly one operation, as OpenAPI matches
/// concrete paths before templated ones. *Manual* rules keep 3scale's semantics: every match
/// adds its delta. Evaluation then walks the rules (manual ones and the chosen imported one) in
/// position order and stops after a matching rule with `last`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingRule {
    /// Uppercase method token, e.g. `GET`; `ANY` matches every method.
    pub http_method: String,
    /// A [`Pattern`] such as `/pets/{id}$`, relative to the API's base path.
    pub pattern: String,
    pub metric: Uuid,
    pub delta: u32,
    pub position: u32,
    /// Stop evaluating further rules after this one matches.
    pub last: bool,
    /// Absent (as older servers send it) means [`RuleOrigin::Manual`].
    #[serde(default, skip_serializing_if = "RuleOrigin::is_manual")]
    pub origin: RuleOrigin,
}

/// Where a mapping rule came from, which decides how it counts (see [`MappingRule`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleOrigin {
    /// Made by an admin: 3scale semantics.
    #[default]
    Manual,
    /// Made from an operation of an imported OpenAPI document: one operation per call.
    Import,
}

impl RuleOrigin {
    pub fn is_manual(&self) -> bool {
        *self == RuleOrigin::Manual
    }
}

/// What the agent does when no mapping rule matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoMatch {
    /// Answer 404 without calling the upstream (3scale's behaviour).
    NotFound,
    /// Authenticate, then proxy without counting any metric.
    Pass,
}

/// An application plan: the limits an application on it is held to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub id: Uuid,
    pub api_id: Uuid,
    /// Calendar of the limit windows (where "today" and "this month" begin).
    pub time_zone: TimeZoneName,
    pub limits: Vec<Limit>,
}

/// At most `max` units of `metric` per `period` window. `max: 0` disables the metric.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limit {
    pub metric: Uuid,
    pub period: Period,
    pub max: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Application {
    pub id: Uuid,
    pub plan_id: Uuid,
    pub state: ApplicationState,
    /// Public id for [`AuthMode::AppIdKey`] APIs; unique.
    pub app_id: Option<String>,
}

/// Only `live` applications get through; the others are answered 403.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplicationState {
    Pending,
    Live,
    Suspended,
}

/// A key the agent accepts, known only by its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub hash: KeyHash,
    /// `uk` or `ak`: a user key is only accepted in the user-key position and vice versa.
    pub kind: KeyKind,
    pub application_id: Uuid,
    /// Set on a rotated-out key for the overlap period; revocation removes the key instead.
    pub expires_at: Option<Timestamp>,
}

impl Credential {
    pub fn is_valid_at(&self, now: Timestamp) -> bool {
        self.expires_at.is_none_or(|expiry| now < expiry)
    }
}

/// Usage already counted in the current window, by all agents, as the server knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentUsage {
    pub application_id: Uuid,
    pub metric: Uuid,
    pub period: Period,
    /// Start of the window in Unix seconds, in the plan's time zone ([`crate::Window::id`]).
    pub window_start: WindowId,
    pub value: u64,
}

type Check = Result<(), ValidationError>;

impl Snapshot {
    /// An empty snapshot at `revision`.
    pub fn new(revision: u64, generated_at: Timestamp) -> Snapshot {
        Snapshot {
            protocol_version: BASE_PROTOCOL_VERSION,
            revision,
            generated_at,
            apis: Vec::new(),
            plans: Vec::new(),
            applications: Vec::new(),
            credentials: Vec::new(),
            usage: Vec::new(),
            requires: Vec::new(),
            routing: Vec::new(),
            mocks: Vec::new(),
        }
    }

    /// The lowest protocol version whose agents can apply this snapshot: 2 when it uses a
    /// feature ([`crate::features`]), else 1, so agents of version 1 keep taking snapshots
    /// that use nothing newer.
    pub fn required_version(&self) -> u32 {
        crate::features::version_for(&self.features_used())
    }

    /// Checks everything the agent relies on without re-checking on the request path:
    /// unique ids, references that resolve, metric trees without cycles, patterns that parse,
    /// rules in order and no two APIs on the same route. Returns the first problem found.
    pub fn validate(&self) -> Result<(), ValidationError> {
        crate::features::check_support(self.protocol_version, &self.requires)?;
        check_declared(self)?;
        let mocked: HashSet<Uuid> = self.mocks.iter().map(|m| m.api_id).collect();
        // metric id -> owning API id
        let mut metric_api: HashMap<Uuid, Uuid> = HashMap::new();
        let mut api_ids = HashSet::new();
        let mut slugs = HashSet::new();
        let mut routes = HashSet::new();
        for (i, api) in self.apis.iter().enumerate() {
            let at = format!("apis[{i}]");
            unique(&mut api_ids, api.id, || format!("{at}.id"), "API")?;
            if api.slug.is_empty() {
                return Err(ValidationError::new(format!("{at}.slug"), "empty slug"));
            }
            if !slugs.insert(api.slug.as_str()) {
                return Err(ValidationError::new(format!("{at}.slug"), format!("duplicate slug {}", api.slug)));
            }
            let has_mocks = mocked.contains(&api.id);
            check_api(api, &at, &mut metric_api, has_mocks)?;
            // A draft is served only when it has mocks: developers try it before its backend exists.
            if api.lifecycle != Lifecycle::Draft || has_mocks {
                let hosts: Vec<&str> =
                    if api.hosts.is_empty() { vec!["*"] } else { api.hosts.iter().map(String::as_str).collect() };
                for host in hosts {
                    if !routes.insert((host, api.base_path.as_str())) {
                        return Err(ValidationError::new(
                            format!("{at}.base_path"),
                            format!("another API already serves {host}{}", api.base_path),
                        ));
                    }
                }
            }
        }

        crate::routing::validate(&self.routing, &api_ids)?;

        let mut plan_api = HashMap::new();
        for (i, plan) in self.plans.iter().enumerate() {
            let at = format!("plans[{i}]");
            if plan_api.insert(plan.id, plan.api_id).is_some() {
                return Err(ValidationError::new(format!("{at}.id"), format!("duplicate plan {}", plan.id)));
            }
            if !api_ids.contains(&plan.api_id) {
                return Err(ValidationError::new(format!("{at}.api_id"), format!("unknown API {}", plan.api_id)));
            }
            let mut seen = HashSet::new();
            for (j, limit) in plan.limits.iter().enumerate() {
                let at = format!("{at}.limits[{j}]");
                metric_of_api(&metric_api, limit.metric, plan.api_id, &at)?;
                if !seen.insert((limit.metric, limit.period)) {
                    return Err(ValidationError::new(
                        format!("{at}.period"),
                        format!("second {} limit on metric {}", limit.period, limit.metric),
                    ));
                }
            }
        }

        // application id -> API id
        let mut app_api = HashMap::new();
        let mut app_ids = HashSet::new();
        for (i, app) in self.applications.iter().enumerate() {
            let at = format!("applications[{i}]");
            let Some(&api_id) = plan_api.get(&app.plan_id) else {
                return Err(ValidationError::new(format!("{at}.plan_id"), format!("unknown plan {}", app.plan_id)));
            };
            if app_api.insert(app.id, api_id).is_some() {
                return Err(ValidationError::new(format!("{at}.id"), format!("duplicate application {}", app.id)));
            }
            if let Some(app_id) = &app.app_id {
                if app_id.is_empty() {
                    return Err(ValidationError::new(format!("{at}.app_id"), "empty app_id"));
                }
                if !app_ids.insert(app_id.as_str()) {
                    return Err(ValidationError::new(format!("{at}.app_id"), format!("duplicate app_id {app_id}")));
                }
            }
        }

        let mut hashes = HashSet::with_capacity(self.credentials.len());
        for (i, credential) in self.credentials.iter().enumerate() {
            if !hashes.insert(credential.hash) {
                return Err(ValidationError::new(
                    format!("credentials[{i}].hash"),
                    format!("duplicate credential {}", credential.hash),
                ));
            }
            if !matches!(credential.kind, KeyKind::UserKey | KeyKind::AppKey) {
                return Err(ValidationError::new(
                    format!("credentials[{i}].kind"),
                    "only user keys (uk) and app keys (ak) are sent to agents",
                ));
            }
            if !app_api.contains_key(&credential.application_id) {
                return Err(ValidationError::new(
                    format!("credentials[{i}].application_id"),
                    format!("unknown application {}", credential.application_id),
                ));
            }
        }

        mock::validate(&self.mocks, &api_ids, &metric_api)?;

        let mut counters = HashSet::new();
        for (i, usage) in self.usage.iter().enumerate() {
            let at = format!("usage[{i}]");
            let Some(&api_id) = app_api.get(&usage.application_id) else {
                return Err(ValidationError::new(
                    format!("{at}.application_id"),
                    format!("unknown application {}", usage.application_id),
                ));
            };
            metric_of_api(&metric_api, usage.metric, api_id, &at)?;
            if !counters.insert((usage.application_id, usage.metric, usage.period)) {
                return Err(ValidationError::new(
                    format!("{at}.period"),
                    "second usage entry for this application, metric and period",
                ));
            }
        }
        Ok(())
    }
}

fn unique<T: std::hash::Hash + Eq + fmt::Display + Copy>(
    seen: &mut HashSet<T>,
    id: T,
    at: impl FnOnce() -> String,
    what: &str,
) -> Check {
    if seen.insert(id) { Ok(()) } else { Err(ValidationError::new(at(), format!("duplicate {what} {id}"))) }
}

fn metric_of_api(metric_api: &HashMap<Uuid, Uuid>, metric: Uuid, api: Uuid, at: &str) -> Check {
    match metric_api.get(&metric) {
        Some(&owner) if owner == api => Ok(()),
        Some(_) => Err(ValidationError::new(format!("{at}.metric"), format!("metric {metric} belongs to another API"))),
        None => Err(ValidationError::new(format!("{at}.metric"), format!("unknown metric {metric}"))),
    }
}

fn check_api(api: &Api, at: &str, metric_api: &mut HashMap<Uuid, Uuid>, has_mocks: bool) -> Check {
    if !is_base_path(&api.base_path) {
        return Err(ValidationError::new(
            format!("{at}.base_path"),
            format!("{:?} is not `/` or `/segment…` without a trailing slash", api.base_path),
        ));
    }
    for (i, host) in api.hosts.iter().enumerate() {
        let valid = !host.is_empty()
            && host.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !valid {
            return Err(ValidationError::new(
                format!("{at}.hosts[{i}]"),
                format!("{host:?} is not a lowercase host name without port"),
            ));
        }
    }
    // An API with mocks may have no backend yet: its other operations answer 503.
    if api.lifecycle.serves_traffic() && api.upstreams.is_empty() && !has_mocks {
        return Err(ValidationError::new(format!("{at}.upstreams"), "an API that serves traffic needs an upstream"));
    }
    for (i, upstream) in api.upstreams.iter().enumerate() {
        check_upstream_url(&upstream.url, &format!("{at}.upstreams[{i}].url"))?;
    }
    let locations: Vec<(&str, &KeyLocation)> = match &api.auth {
        AuthMode::UserKey { location } => vec![("auth.location", location)],
        AuthMode::AppIdKey { app_id, app_key } => {
            vec![("auth.app_id", app_id), ("auth.app_key", app_key)]
        }
    };
    for (field, location) in locations {
        let name = location.name();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ValidationError::new(
                format!("{at}.{field}.name"),
                format!("{name:?} is not a parameter or header name"),
            ));
        }
    }

    let mut names = HashSet::new();
    let mut parents = HashMap::new();
    for (i, metric) in api.metrics.iter().enumerate() {
        if metric_api.insert(metric.id, api.id).is_some() {
            return Err(ValidationError::new(
                format!("{at}.metrics[{i}].id"),
                format!("duplicate metric {}", metric.id),
            ));
        }
        if metric.system_name.is_empty() || !names.insert(metric.system_name.as_str()) {
            return Err(ValidationError::new(
                format!("{at}.metrics[{i}].system_name"),
                format!("empty or duplicate system name {:?}", metric.system_name),
            ));
        }
        parents.insert(metric.id, metric.parent);
    }
    for (i, metric) in api.metrics.iter().enumerate() {
        let mut current = metric.parent;
        let mut depth = 0;
        while let Some(parent) = current {
            let Some(&grandparent) = parents.get(&parent) else {
                return Err(ValidationError::new(
                    format!("{at}.metrics[{i}].parent"),
                    format!("unknown metric {parent} (parents belong to the same API)"),
                ));
            };
            depth += 1;
            if depth > parents.len() {
                return Err(ValidationError::new(format!("{at}.metrics[{i}].parent"), "metric parents form a cycle"));
            }
            current = grandparent;
        }
    }

    let mut previous_position = None;
    for (i, rule) in api.mapping_rules.iter().enumerate() {
        let at = format!("{at}.mapping_rules[{i}]");
        if rule.http_method.is_empty() || !rule.http_method.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ValidationError::new(
                format!("{at}.http_method"),
                format!("{:?} is not an uppercase method", rule.http_method),
            ));
        }
        if let Err(err) = Pattern::parse(&rule.pattern) {
            return Err(ValidationError::new(format!("{at}.pattern"), err));
        }
        metric_of_api(metric_api, rule.metric, api.id, &at)?;
        if previous_position.is_some_and(|p| rule.position <= p) {
            return Err(ValidationError::new(
                format!("{at}.position"),
                "rules must be sorted by strictly increasing position",
            ));
        }
        previous_position = Some(rule.position);
    }
    Ok(())
}

impl Snapshot {
    /// The features this snapshot uses, in [`KNOWN_FEATURES`] order.
    pub fn features_used(&self) -> Vec<String> {
        Self::features_of(&self.routing, &self.mocks)
    }

    /// The features a snapshot with this `routing` and these `mocks` uses, for writers that
    /// stream a snapshot without holding it whole.
    pub fn features_of(routing: &[Routing], mocks: &[ApiMocks]) -> Vec<String> {
        crate::features::features_of(routing, mocks)
    }

    /// Sets [`Snapshot::requires`] and the protocol version from what the snapshot uses:
    /// what a server does before sending it.
    pub fn declare_features(&mut self) {
        self.requires = self.features_used();
        self.protocol_version = crate::features::version_for(&self.requires);
    }
}

/// Whether `snapshot` declares (by version and `requires`) every feature it uses.
fn check_declared(snapshot: &Snapshot) -> Result<(), ValidationError> {
    for feature in snapshot.features_used() {
        if !snapshot.requires.contains(&feature) || snapshot.protocol_version < PROTOCOL_VERSION {
            return Err(ValidationError::new(
                "requires",
                format!("the snapshot uses {feature} without requiring it at protocol version {PROTOCOL_VERSION}"),
            ));
        }
    }
    Ok(())
}

fn is_base_path(path: &str) -> bool {
    path == "/"
        || (path.starts_with('/')
            && !path.ends_with('/')
            && !path.contains("//")
            && !path.contains(['?', '#'])
            && path.bytes().all(|b| b.is_ascii_graphic()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn sample() -> Snapshot {
        let mut s = Snapshot::new(7, Timestamp::UNIX_EPOCH);
        s.apis.push(Api {
            id: id(1),
            slug: "pets".into(),
            hosts: vec!["api.example.com".into()],
            base_path: "/pets".into(),
            upstreams: vec![Upstream { url: "http://127.0.0.1:9000".into() }],
            lifecycle: Lifecycle::Published,
            auth: AuthMode::UserKey { location: KeyLocation::Query { name: "user_key".into() } },
            metrics: vec![
                Metric { id: id(10), system_name: "hits".into(), parent: None },
                Metric { id: id(11), system_name: "get_pet".into(), parent: Some(id(10)) },
            ],
            mapping_rules: vec![MappingRule {
                http_method: "GET".into(),
                pattern: "/{id}$".into(),
                metric: id(11),
                delta: 1,
                position: 1,
                last: false,
                origin: RuleOrigin::Import,
            }],
            on_no_match: NoMatch::NotFound,
        });
        s.plans.push(Plan {
            id: id(20),
            api_id: id(1),
            time_zone: TimeZoneName::utc(),
            limits: vec![Limit { metric: id(10), period: Period::Day, max: 1000 }],
        });
        s.applications.push(Application { id: id(30), plan_id: id(20), state: ApplicationState::Live, app_id: None });
        s.credentials.push(Credential {
            hash: KeyHash::of("k"),
            kind: KeyKind::UserKey,
            application_id: id(30),
            expires_at: None,
        });
        s.usage.push(CurrentUsage {
            application_id: id(30),
            metric: id(10),
            period: Period::Day,
            window_start: WindowId(0),
            value: 5,
        });
        s
    }

    fn error(edit: impl FnOnce(&mut Snapshot)) -> String {
        let mut s = sample();
        edit(&mut s);
        s.validate().expect_err("should be invalid").to_string()
    }

    #[test]
    fn sample_is_valid() {
        assert_eq!(sample().validate(), Ok(()));
    }

    #[test]
    fn errors_name_the_offending_value() {
        assert_eq!(
            error(|s| s.applications[0].plan_id = id(99)),
            "applications[0].plan_id: unknown plan 00000000-0000-0000-0000-000000000063"
        );
        assert_eq!(
            error(|s| s.credentials[0].application_id = id(99)),
            "credentials[0].application_id: unknown application 00000000-0000-0000-0000-000000000063"
        );
        assert!(
            error(|s| {
                let credential = s.credentials[0].clone();
                s.credentials.push(credential);
            })
            .starts_with("credentials[1].hash: duplicate")
        );
        assert!(error(|s| s.credentials[0].kind = KeyKind::AdminToken).starts_with("credentials[0].kind"));
        assert!(
            error(|s| s.apis[0].mapping_rules[0].metric = id(99))
                .starts_with("apis[0].mapping_rules[0].metric: unknown metric")
        );
        assert_eq!(
            error(|s| s.apis[0].mapping_rules[0].pattern = "/{id".into()),
            "apis[0].mapping_rules[0].pattern: at byte 1: a parameter `{` is not closed by `}`"
        );
        assert!(error(|s| s.apis[0].mapping_rules[0].http_method = "get".into()).contains("http_method"));
        assert!(
            error(|s| s.apis[0].metrics[1].parent = Some(id(99)))
                .starts_with("apis[0].metrics[1].parent: unknown metric")
        );
        assert_eq!(
            error(|s| s.apis[0].metrics[0].parent = Some(id(11))),
            "apis[0].metrics[0].parent: metric parents form a cycle"
        );
        assert!(error(|s| s.apis[0].metrics[1].id = id(10)).starts_with("apis[0].metrics[1].id: duplicate metric"));
        assert!(error(|s| s.plans[0].api_id = id(99)).starts_with("plans[0].api_id: unknown API"));
        assert!(
            error(|s| {
                let limit = s.plans[0].limits[0].clone();
                s.plans[0].limits.push(limit);
            })
            .starts_with("plans[0].limits[1].period")
        );
        assert!(error(|s| s.usage[0].metric = id(99)).starts_with("usage[0].metric"));
        assert!(error(|s| s.apis[0].base_path = "/pets/".into()).starts_with("apis[0].base_path"));
        assert!(error(|s| s.apis[0].hosts[0] = "API.example.com".into()).starts_with("apis[0].hosts[0]"));
        assert!(error(|s| s.apis[0].upstreams[0].url = "ftp://x".into()).starts_with("apis[0].upstreams[0].url"));
        assert!(error(|s| s.protocol_version = 99).starts_with("protocol_version"));
    }

    #[test]
    fn apis_may_not_share_a_route_or_metrics() {
        let message = error(|s| {
            let mut other = s.apis[0].clone();
            other.id = id(2);
            other.slug = "pets2".into();
            other.metrics.clear();
            other.mapping_rules.clear();
            s.apis.push(other);
        });
        assert_eq!(message, "apis[1].base_path: another API already serves api.example.com/pets");

        // A limit on another API's metric is caught too.
        let message = error(|s| {
            let mut other = s.apis[0].clone();
            other.id = id(2);
            other.slug = "pets2".into();
            other.lifecycle = Lifecycle::Draft;
            other.metrics = vec![Metric { id: id(12), system_name: "hits".into(), parent: None }];
            other.mapping_rules.clear();
            s.apis.push(other);
            s.plans[0].limits[0].metric = id(12);
        });
        assert!(message.ends_with("belongs to another API"), "{message}");
    }

    #[test]
    fn rules_must_be_in_position_order() {
        let message = error(|s| {
            let mut rule = s.apis[0].mapping_rules[0].clone();
            rule.position = 1;
            s.apis[0].mapping_rules.push(rule);
        });
        assert!(message.starts_with("apis[0].mapping_rules[1].position"), "{message}");
    }
}
