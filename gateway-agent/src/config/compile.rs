//! Snapshot → compiled [`Config`]: validate once, then index everything the request path
//! needs so it never parses, searches linearly or allocates.

use std::collections::HashMap;
use std::sync::Arc;

use hyper::Method;
use hyper::header::HeaderValue;
use jiff::Timestamp;
use tollgate_protocol::{
    Api, Application, AuthMode, Credential, CurrentUsage, Lifecycle as WireLifecycle, Pattern,
    Plan, Snapshot,
};
use uuid::Uuid;

use super::{
    ApiEntry, AppEntry, Apps, Catalog, Config, ConfigError, CowIndex, CowVec, CredentialEntry,
    Lifecycle, MetricEntry, PlanEntry, Rule,
};
use crate::enforce::credentials::{Auth, KeySource};
use crate::enforce::limits::{LimitRule, PlanLimits};
use crate::proxy::route::Routes;
use crate::proxy::upstream::Pool;
use crate::telemetry::RequestCounters;

/// Validates and compiles a full snapshot. Returns its seeded usage separately: it belongs
/// to the counters, not to the config.
pub(crate) fn compile_snapshot(snapshot: Snapshot) -> Result<(Config, Vec<CurrentUsage>), ConfigError> {
    snapshot.validate()?;
    let Snapshot {
        revision,
        generated_at,
        apis,
        plans,
        applications,
        credentials,
        usage,
        ..
    } = snapshot;
    let catalog = build_catalog(apis, plans.into_iter().map(Some).collect(), Validated::Yes)?;
    let apps = build_apps(applications, &catalog)?;
    let credentials = build_credentials(credentials, &apps)?;
    Ok((
        Config {
            revision,
            generated_at,
            catalog: Arc::new(catalog),
            apps,
            credentials,
        },
        usage,
    ))
}

/// Whether the caller has already run [`Snapshot::validate`] over these APIs and plans.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Validated {
    Yes,
    No,
}

pub(super) fn build_catalog(
    apis: Vec<Api>,
    plans: Vec<Option<Plan>>,
    validated: Validated,
) -> Result<Catalog, ConfigError> {
    if validated == Validated::No {
        // The protocol's own rules for APIs and plans (ids, routes, metrics, rules, limits).
        let mut check = Snapshot::new(0, Timestamp::UNIX_EPOCH);
        check.apis = apis.clone();
        check.plans = plans.iter().flatten().cloned().collect();
        check.validate()?;
    }
    let mut routes = Routes::default();
    let mut entries = Vec::with_capacity(apis.len());
    let mut api_index = HashMap::with_capacity(apis.len());
    // metric id → (api index, metric index within the API)
    let mut metric_index: HashMap<Uuid, (u32, u32)> = HashMap::new();
    for (index, api) in apis.iter().enumerate() {
        let index = u32::try_from(index).map_err(|_| ConfigError::Compile("too many APIs".into()))?;
        let entry = compile_api(api).map_err(|m| ConfigError::Compile(format!("API {}: {m}", api.slug)))?;
        for (local, metric) in entry.metrics.iter().enumerate() {
            metric_index.insert(metric.id, (index, local as u32));
        }
        if !matches!(entry.lifecycle, Lifecycle::Draft) {
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
            rules.push(LimitRule {
                metric,
                metric_id: limit.metric,
                period: limit.period,
                max: limit.max,
            });
        }
        plan_slots.insert(plan.id, slot as u32);
        plan_entries.push(Some(PlanEntry {
            id: plan.id,
            api,
            limits: PlanLimits::new(plan.time_zone.time_zone().clone(), rules),
        }));
    }
    Ok(Catalog {
        apis: entries,
        plans: plan_entries,
        routes,
        source_apis: apis,
        source_plans: plans,
        plan_slots,
    })
}

fn compile_api(api: &Api) -> Result<ApiEntry, String> {
    let local: HashMap<Uuid, u32> = api
        .metrics
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id, i as u32))
        .collect();
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
            lineage: lineage.into_boxed_slice(),
        });
    }
    let rules = api
        .mapping_rules
        .iter()
        .map(|rule| {
            Ok(Rule {
                method: Method::from_bytes(rule.http_method.as_bytes())
                    .map_err(|_| format!("bad method {:?}", rule.http_method))?,
                pattern: Pattern::parse(&rule.pattern).map_err(|e| format!("pattern {:?}: {e}", rule.pattern))?,
                metric: *local
                    .get(&rule.metric)
                    .ok_or_else(|| format!("unknown metric {}", rule.metric))?,
                delta: rule.delta,
                last: rule.last,
            })
        })
        .collect::<Result<Box<[Rule]>, String>>()?;
    let auth = match &api.auth {
        AuthMode::UserKey { location } => Auth::UserKey(KeySource::compile(location)?),
        AuthMode::AppIdKey { app_id, app_key } => Auth::AppIdKey {
            app_id: KeySource::compile(app_id)?,
            app_key: KeySource::compile(app_key)?,
        },
    };
    let lifecycle = match &api.lifecycle {
        WireLifecycle::Draft => Lifecycle::Draft,
        WireLifecycle::Published => Lifecycle::Published,
        WireLifecycle::Deprecated { sunset } => Lifecycle::Deprecated {
            sunset: match sunset {
                Some(date) => Some(http_date(*date)?),
                None => None,
            },
        },
        WireLifecycle::Retired => Lifecycle::Retired,
    };
    let slug: Arc<str> = api.slug.as_str().into();
    Ok(ApiEntry {
        lifecycle,
        auth,
        metrics: metrics.into_boxed_slice(),
        rules,
        on_no_match: api.on_no_match,
        upstreams: Pool::new(api.upstreams.iter().map(|u| u.url.as_str()))?,
        requests: RequestCounters::new(metrics::SharedString::from(slug.clone())),
        slug,
    })
}

/// `Sat, 31 Jan 2026 00:00:00 GMT`: the start of the sunset day, in UTC.
fn http_date(date: jiff::civil::Date) -> Result<HeaderValue, String> {
    let text = date
        .to_datetime(jiff::civil::Time::midnight())
        .strftime("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    HeaderValue::from_str(&text).map_err(|_| format!("bad sunset date {date}"))
}

pub(super) fn app_entry(app: Application, catalog: &Catalog) -> Result<AppEntry, ConfigError> {
    let &plan = catalog
        .plan_slots
        .get(&app.plan_id)
        .ok_or_else(|| ConfigError::Compile(format!("application {}: unknown plan {}", app.id, app.plan_id)))?;
    Ok(AppEntry {
        id: app.id,
        plan,
        state: app.state,
        app_id: app.app_id.map(String::into_boxed_str),
    })
}

fn build_apps(applications: Vec<Application>, catalog: &Catalog) -> Result<Apps, ConfigError> {
    let mut slots = Vec::with_capacity(applications.len());
    let mut by_id = Vec::with_capacity(applications.len());
    let mut by_app_id = Vec::new();
    for (slot, app) in applications.into_iter().enumerate() {
        let slot = u32::try_from(slot).map_err(|_| ConfigError::Compile("too many applications".into()))?;
        let entry = app_entry(app, catalog)?;
        by_id.push((entry.id, slot));
        if let Some(app_id) = &entry.app_id {
            by_app_id.push((app_id.clone(), slot));
        }
        slots.push(Some(entry));
    }
    Ok(Apps {
        slots: CowVec::from_vec(slots),
        by_id: CowIndex::build(by_id),
        by_app_id: CowIndex::build(by_app_id),
    })
}

pub(super) fn credential_entry(credential: &Credential, apps: &Apps) -> Result<CredentialEntry, ConfigError> {
    let &app = apps.by_id.get(&credential.application_id).ok_or_else(|| {
        ConfigError::Compile(format!(
            "credential {}: unknown application {}",
            credential.hash, credential.application_id
        ))
    })?;
    Ok(CredentialEntry {
        expires_at: CredentialEntry::expires_at(credential.expires_at),
        app,
        kind: credential.kind,
    })
}

fn build_credentials(
    credentials: Vec<Credential>,
    apps: &Apps,
) -> Result<CowIndex<[u8; 32], CredentialEntry>, ConfigError> {
    let entries = credentials
        .iter()
        .map(|c| Ok((c.hash.0, credential_entry(c, apps)?)))
        .collect::<Result<Vec<_>, ConfigError>>()?;
    drop(credentials);
    Ok(CowIndex::build(entries))
}
