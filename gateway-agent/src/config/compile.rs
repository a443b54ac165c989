//! Snapshot → compiled [`Config`]: validate once, then index everything the request path
//! needs so it never parses, searches linearly or allocates.

use std::collections::HashMap;
use std::sync::Arc;

use hyper::Method;
use hyper::header::HeaderValue;
use jiff::Timestamp;
use tollgate_protocol::{
    Api, ApiMocks, Application, AuthMode, Credential, CurrentUsage, KeyHash, KeyKind, Lifecycle as WireLifecycle,
    Pattern, Plan, Routing, Snapshot, ValidationError,
};
use uuid::Uuid;

use super::cow::{CowIndex, CowVec};
use super::model::{
    ApiEntry, AppEntry, Apps, Catalog, Config, ConfigError, CredentialEntry, Lifecycle, MetricEntry, PlanEntry,
};
use crate::enforce::key_location::{Auth, KeySource};
use crate::enforce::limits::{LimitRule, PlanLimits};
use crate::enforce::mapping::{MappingRules, Rule};
use crate::hashing::FxBuildHasher;
use crate::proxy::mock::MockTable;
use crate::proxy::route::Routes;
use crate::proxy::split::Router;
use crate::proxy::upstream::Pool;
use crate::telemetry::RequestCounters;

/// Validates and compiles a snapshot already in its wire form (the stream's rare slow
/// path and tests; snapshots are normally compiled while they are parsed, see parse.rs).
/// Returns its seeded usage separately: it belongs to the counters, not to the config.
pub(crate) fn compile_snapshot(snapshot: Snapshot) -> Result<(Config, Vec<CurrentUsage>), ConfigError> {
    check_version(snapshot.protocol_version, &snapshot.requires)?;
    let catalog =
        build_catalog(snapshot.apis, snapshot.plans.into_iter().map(Some).collect(), snapshot.routing, snapshot.mocks)?;
    let mut apps = AppsBuilder::new(&catalog);
    for app in snapshot.applications {
        apps.push(app)?;
    }
    let apps = apps.finish()?;
    let mut credentials = CredentialsBuilder::new(&apps);
    for credential in snapshot.credentials {
        credentials.push(credential)?;
    }
    let credentials = credentials.finish()?;
    let config = Config {
        revision: snapshot.revision,
        generated_at: snapshot.generated_at,
        catalog: Arc::new(catalog),
        apps,
        credentials,
    };
    check_usage(&snapshot.usage, &config)?;
    Ok((config, snapshot.usage))
}

/// The protocol version and required features of a snapshot: refused unless this build
/// speaks the one and knows the others.
pub(super) fn check_version(version: u32, requires: &[String]) -> Result<(), ValidationError> {
    tollgate_protocol::features::check_support(version, requires)
}

pub(super) fn build_catalog(
    apis: Vec<Api>,
    plans: Vec<Option<Plan>>,
    routing: Vec<Routing>,
    mocks: Vec<ApiMocks>,
) -> Result<Catalog, ConfigError> {
    // The protocol's own rules for APIs, plans, routing and mocks (ids, routes, metrics,
    // rules, limits, groups and weights).
    let mut check = Snapshot::new(0, Timestamp::UNIX_EPOCH);
    check.apis = apis.clone();
    check.plans = plans.iter().flatten().cloned().collect();
    check.routing = routing.clone();
    check.mocks = mocks.clone();
    check.declare_features();
    check.validate()?;
    let mut tables: HashMap<Uuid, Box<MockTable>> = HashMap::with_capacity(mocks.len());
    for api_mocks in &mocks {
        let table = MockTable::compile(api_mocks).map_err(|m| ConfigError::Compile(format!("mocks: {m}")))?;
        tables.insert(api_mocks.api_id, Box::new(table));
    }
    let mut routes = Routes::default();
    let mut entries = Vec::with_capacity(apis.len());
    let mut api_index = HashMap::with_capacity(apis.len());
    // metric id → (api index, metric index within the API)
    let mut metric_index: HashMap<Uuid, (u32, u32)> = HashMap::new();
    for (index, api) in apis.iter().enumerate() {
        let index = u32::try_from(index).map_err(|_| ConfigError::Compile("too many APIs".into()))?;
        let mut entry = compile_api(api).map_err(|m| ConfigError::Compile(format!("API {}: {m}", api.slug)))?;
        entry.mocks = tables.remove(&api.id);
        for (local, metric) in entry.metrics.iter().enumerate() {
            metric_index.insert(metric.id, (index, local as u32));
        }
        // A draft is routed only to answer its mocks.
        if !matches!(entry.lifecycle, Lifecycle::Draft) || entry.mocks.is_some() {
            routes
                .add(index, &api.hosts, &api.base_path)
                .map_err(|m| ConfigError::Compile(format!("API {}: {m}", api.slug)))?;
        }
        api_index.insert(api.id, index);
        entries.push(entry);
    }

    let mut plan_entries = Vec::with_capacity(plans.len());
    let mut plan_slots = HashMap::with_capacity(plans.len());
    for (slot, plan) in plans.iter().enumerate() {
        let Some(plan) = plan else {
            plan_entries.push(None);
            continue;
        };
        let missing = || ConfigError::Compile(format!("plan {}: unknown API or metric", plan.id));
        let &api = api_index.get(&plan.api_id).ok_or_else(missing)?;
        let mut rules = Vec::with_capacity(plan.limits.len());
        for limit in &plan.limits {
            let &(owner, metric) = metric_index.get(&limit.metric).ok_or_else(missing)?;
            if owner != api {
                return Err(missing());
            }
            rules.push(LimitRule { metric, metric_id: limit.metric, period: limit.period, max: limit.max });
        }
        plan_slots.insert(plan.id, slot as u32);
        plan_entries.push(Some(PlanEntry {
            api,
            limits: PlanLimits::new(plan.time_zone.time_zone().clone(), rules),
            time_zone: plan.time_zone.as_str().into(),
        }));
    }
    for entry in &routing {
        let Some(&index) = api_index.get(&entry.api_id) else { continue };
        let router = Router::compile(entry, |plan| plan_slots.get(plan).copied())
            .map_err(|m| ConfigError::Compile(format!("routing of API {}: {m}", entry.api_id)))?;
        entries[index as usize].routing = Some(Box::new(router));
    }
    Ok(Catalog {
        apis: entries,
        plans: plan_entries,
        routes,
        source_apis: apis,
        source_plans: plans,
        source_routing: routing,
        source_mocks: mocks,
        plan_slots,
        metric_api: metric_index.into_iter().map(|(metric, (api, _))| (metric, api)).collect(),
    })
}

fn compile_api(api: &Api) -> Result<ApiEntry, String> {
    let local: HashMap<Uuid, u32> = api.metrics.iter().enumerate().map(|(i, m)| (m.id, i as u32)).collect();
    let parents: HashMap<Uuid, Option<Uuid>> = api.metrics.iter().map(|m| (m.id, m.parent)).collect();
    let mut metrics = Vec::with_capacity(api.metrics.len());
    for metric in &api.metrics {
        let mut lineage = Vec::new();
        let mut current = Some(metric.id);
        while let Some(id) = current {
            // Validation rules out cycles; the bound only guards against a bug there.
            if lineage.len() > api.metrics.len() {
                return Err(format!("metric {} has cyclic parents", metric.system_name));
            }
            lineage.push(*local.get(&id).ok_or_else(|| format!("unknown metric {id}"))?);
            current = parents.get(&id).copied().flatten();
        }
        metrics.push(MetricEntry {
            id: metric.id,
            system_name: metric.system_name.as_str().into(),
            lineage: lineage.into_boxed_slice(),
        });
    }
    let rules = api
        .mapping_rules
        .iter()
        .map(|rule| {
            Ok(Rule {
                method: match rule.http_method.as_str() {
                    "ANY" => None,
                    method => {
                        Some(Method::from_bytes(method.as_bytes()).map_err(|_| format!("bad method {method:?}"))?)
                    }
                },
                pattern: Pattern::parse(&rule.pattern).map_err(|e| format!("pattern {:?}: {e}", rule.pattern))?,
                metric: *local.get(&rule.metric).ok_or_else(|| format!("unknown metric {}", rule.metric))?,
                delta: rule.delta,
                last: rule.last,
                origin: rule.origin,
            })
        })
        .collect::<Result<Vec<Rule>, String>>()?;
    let rules = MappingRules::new(rules);
    let auth = match &api.auth {
        AuthMode::UserKey { location } => Auth::user_key(KeySource::compile(location)?),
        AuthMode::AppIdKey { app_id, app_key } => {
            Auth::app_id_key(KeySource::compile(app_id)?, KeySource::compile(app_key)?)?
        }
    };
    let lifecycle = match &api.lifecycle {
        WireLifecycle::Draft => Lifecycle::Draft,
        WireLifecycle::Published => Lifecycle::Published,
        WireLifecycle::Deprecated { sunset, since } => Lifecycle::Deprecated {
            sunset: match sunset {
                Some(date) => Some(http_date(*date)?),
                None => None,
            },
            since: deprecation(*since)?,
        },
        WireLifecycle::Retired => Lifecycle::Retired,
    };
    let slug: Arc<str> = api.slug.as_str().into();
    Ok(ApiEntry {
        id: api.id,
        lifecycle,
        auth,
        metrics: metrics.into_boxed_slice(),
        rules,
        on_no_match: api.on_no_match,
        upstreams: Pool::new(api.upstreams.iter().map(|u| u.url.as_str()))?,
        routing: None,
        requests: RequestCounters::new(metrics::SharedString::from(slug.clone())),
        slug,
        mocks: None,
    })
}

/// `Sat, 31 Jan 2026 00:00:00 GMT`: the start of the sunset day, in UTC.
/// RFC 9745's `Deprecation: @<seconds>`; a server that does not send the time gets the
/// draft's `true`, which older clients read.
fn deprecation(since: Option<jiff::Timestamp>) -> Result<HeaderValue, String> {
    match since {
        Some(at) => {
            HeaderValue::from_str(&format!("@{}", at.as_second())).map_err(|_| format!("bad deprecation time {at}"))
        }
        None => Ok(HeaderValue::from_static("true")),
    }
}

fn http_date(date: jiff::civil::Date) -> Result<HeaderValue, String> {
    let text = date.to_datetime(jiff::civil::Time::midnight()).strftime("%a, %d %b %Y %H:%M:%S GMT").to_string();
    HeaderValue::from_str(&text).map_err(|_| format!("bad sunset date {date}"))
}

/// An application as the agent keeps it. Errors name the offending field.
pub(super) fn app_entry(app: Application, catalog: &Catalog) -> Result<AppEntry, (&'static str, String)> {
    if app.app_id.as_deref() == Some("") {
        return Err(("app_id", "empty app_id".to_owned()));
    }
    let &plan =
        catalog.plan_slots.get(&app.plan_id).ok_or_else(|| ("plan_id", format!("unknown plan {}", app.plan_id)))?;
    Ok(AppEntry { id: app.id, plan, state: app.state, app_id: app.app_id.map(String::into_boxed_str) })
}

/// A credential as the agent keeps it, given the slot of its application (if that exists).
/// Errors name the offending field.
pub(super) fn credential_entry(
    credential: &Credential,
    app: Option<u32>,
) -> Result<CredentialEntry, (&'static str, String)> {
    if !matches!(credential.kind, KeyKind::UserKey | KeyKind::AppKey) {
        return Err(("kind", "only user keys (uk) and app keys (ak) are sent to agents".to_owned()));
    }
    let app = app.ok_or_else(|| ("application_id", format!("unknown application {}", credential.application_id)))?;
    Ok(CredentialEntry::new(CredentialEntry::expires_at(credential.expires_at), app, credential.kind))
}

/// Collects a snapshot's applications one at a time (as they are parsed), checking each as
/// [`Snapshot::validate`] would.
pub(super) struct AppsBuilder<'a> {
    catalog: &'a Catalog,
    slots: Vec<Option<AppEntry>>,
    by_id: Vec<(Uuid, u32)>,
    by_app_id: Vec<(Box<str>, u32)>,
}

impl<'a> AppsBuilder<'a> {
    pub fn new(catalog: &'a Catalog) -> Self {
        AppsBuilder { catalog, slots: Vec::new(), by_id: Vec::new(), by_app_id: Vec::new() }
    }

    pub fn push(&mut self, app: Application) -> Result<(), ValidationError> {
        let index = self.slots.len();
        let slot = u32::try_from(index).map_err(|_| ValidationError::new("applications", "too many applications"))?;
        let entry = app_entry(app, self.catalog)
            .map_err(|(field, message)| ValidationError::new(format!("applications[{index}].{field}"), message))?;
        self.by_id.push((entry.id, slot));
        if let Some(app_id) = &entry.app_id {
            self.by_app_id.push((app_id.clone(), slot));
        }
        self.slots.push(Some(entry));
        Ok(())
    }

    pub fn finish(self) -> Result<Apps, ValidationError> {
        let slots = &self.slots;
        let by_id = CowIndex::build_unique(self.by_id).map_err(|id| {
            // The second occurrence, as the protocol's validation names it.
            let at = slots
                .iter()
                .enumerate()
                .filter(|(_, app)| app.as_ref().is_some_and(|app| app.id == id))
                .nth(1)
                .map_or(String::new(), |(i, _)| format!("[{i}]"));
            ValidationError::new(format!("applications{at}.id"), format!("duplicate application {id}"))
        })?;
        let by_app_id = CowIndex::build_unique(self.by_app_id)
            .map_err(|app_id| ValidationError::new("applications", format!("duplicate app_id {app_id}")))?;
        Ok(Apps { slots: CowVec::from_vec(self.slots), by_id, by_app_id })
    }
}

/// Collects a snapshot's credentials one at a time, checking each.
pub(super) struct CredentialsBuilder {
    /// Application id → slot, as a plain hash map for the build: a million lookups in the
    /// bucketed index cost several cache misses each.
    slots: HashMap<Uuid, u32, FxBuildHasher>,
    entries: Vec<([u8; 32], CredentialEntry)>,
}

impl CredentialsBuilder {
    pub fn new(apps: &Apps) -> Self {
        let mut slots = HashMap::with_capacity_and_hasher(apps.by_id.len(), FxBuildHasher::default());
        slots.extend(apps.by_id.iter().map(|&(id, slot)| (id, slot)));
        CredentialsBuilder { slots, entries: Vec::new() }
    }

    pub fn push(&mut self, credential: Credential) -> Result<(), ValidationError> {
        let index = self.entries.len();
        let app = self.slots.get(&credential.application_id).copied();
        let entry = credential_entry(&credential, app)
            .map_err(|(field, message)| ValidationError::new(format!("credentials[{index}].{field}"), message))?;
        self.entries.push((credential.hash.0, entry));
        Ok(())
    }

    pub fn finish(self) -> Result<CowIndex<[u8; 32], CredentialEntry>, ValidationError> {
        drop(self.slots);
        CowIndex::build_unique(self.entries)
            .map_err(|hash| ValidationError::new("credentials", format!("duplicate credential {}", KeyHash(hash))))
    }
}

/// Seeded usage must name known applications, metrics of their API, and each (application,
/// metric, period) once.
pub(super) fn check_usage(usage: &[CurrentUsage], config: &Config) -> Result<(), ValidationError> {
    let mut seen = std::collections::HashSet::with_capacity_and_hasher(usage.len(), FxBuildHasher::default());
    for (i, entry) in usage.iter().enumerate() {
        let at = |field: &str| format!("usage[{i}].{field}");
        let api = config
            .apps
            .by_id
            .get(&entry.application_id)
            .and_then(|&slot| config.apps.get(slot))
            .and_then(|app| config.catalog.plan(app.plan))
            .map(|plan| plan.api)
            .ok_or_else(|| {
                ValidationError::new(at("application_id"), format!("unknown application {}", entry.application_id))
            })?;
        match config.catalog.metric_api.get(&entry.metric) {
            Some(&owner) if owner == api => {}
            Some(_) => {
                return Err(ValidationError::new(
                    at("metric"),
                    format!("metric {} belongs to another API", entry.metric),
                ));
            }
            None => {
                return Err(ValidationError::new(at("metric"), format!("unknown metric {}", entry.metric)));
            }
        }
        if !seen.insert((entry.application_id, entry.metric, entry.period)) {
            return Err(ValidationError::new(
                at("period"),
                "second usage entry for this application, metric and period",
            ));
        }
    }
    Ok(())
}
