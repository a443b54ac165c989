//! Making the platform match a configuration file, in one transaction: each
//! change goes through the same core function the admin UI and API call, so
//! it is validated, audited and announced to agents (`config_changes`, whose
//! trigger NOTIFYs at commit) exactly as a click would be. The diff reported
//! is the configuration read before and after inside that transaction, so it
//! is what happened; a dry run rolls it back.

use std::collections::{HashMap, HashSet};

use serde_json::json;

use crate::apis::detail::{self, ApiChanges, Routing};
use crate::apis::lifecycle::{self, SunsetRule};
use crate::apis::mocks::{self, MockChanges};
use crate::apis::rules::{self, MetricChanges, NewRule};
use crate::apis::{ApiId, ApiState, NewApi, create_in, versions};
use crate::applications::ApplicationId;
use crate::audit::{self, Actor, Entry};
use crate::billing::settings::{self as billing_settings, BillingSettings};
use crate::plans::{self, NewLimit, NewPlan, NewPrice, NewPricingMode, PlanId};
use crate::routing::{self as upstream_routing, DEFAULT_GROUP, GroupName};
use crate::usage::levels::{AlertLevel, parse_levels, set_plan_levels_in};
use crate::{Error, FieldProblem, Result};

use super::diff::{Change, compare};
use super::document::{Api, Billing, Document, Group, Origin, Plan, Rule, Unmatched, is_default_split};
use super::export::{api_in, export_in};
use super::locate::NodePath;
use super::parse::{Located, parse};

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Work out and report the changes, then roll them back.
    pub dry_run: bool,
    /// Also remove APIs, plans, metrics, rules, upstream groups and
    /// application routes the file does not name.
    pub prune: bool,
}

/// What an apply did (or, dry, would do).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub changes: Vec<Change>,
    /// Whether the changes were committed (not a dry run, and there were some).
    pub applied: bool,
}

/// Why nothing was applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The file is wrong: what and where, every problem found (never none).
    #[error("{}", problems_text(.0))]
    Invalid(Vec<Located>),
    /// The file asks for something the platform's state forbids (a plan in use).
    #[error("{0}")]
    Conflict(Located),
    #[error(transparent)]
    Core(#[from] Error),
}

impl ApplyError {
    fn invalid(at: Located) -> ApplyError {
        ApplyError::Invalid(vec![at])
    }
}

/// Problems one to a line.
fn problems_text(problems: &[Located]) -> String {
    problems.iter().map(Located::to_string).collect::<Vec<_>>().join("\n")
}

impl From<sqlx::Error> for ApplyError {
    fn from(err: sqlx::Error) -> ApplyError {
        ApplyError::Core(err.into())
    }
}

/// Applies are serialised: two at once would each diff against a state the other is changing.
const APPLY_LOCK: i64 = 7_406_524_314;

/// Parses, checks and applies `text`. `base_url` is where mails (a
/// deprecation, a breaking version) link to.
pub async fn apply(
    pool: &sqlx::PgPool,
    text: &str,
    options: Options,
    actor: &Actor,
    base_url: &str,
) -> Result<Outcome, ApplyError> {
    let doc = parse(text).map_err(ApplyError::Invalid)?;
    let mut tx = pool.begin().await?;
    sqlx::query!("SELECT pg_advisory_xact_lock($1) AS locked", APPLY_LOCK).fetch_one(&mut *tx).await?;
    let before = export_in(&mut tx).await?;
    let run = Run { text, options, actor, base_url };
    if let Some(billing) = &doc.billing {
        run.billing(&mut tx, billing, before.billing.as_ref()).await?;
    }
    for (i, api) in doc.apis.iter().enumerate() {
        let at = NodePath::default().key("apis").index(i);
        run.api(&mut tx, &at, api).await?;
    }
    if options.prune {
        let named: HashSet<&str> = doc.apis.iter().map(|a| a.slug.as_str()).collect();
        for old in before.apis.iter().filter(|a| !named.contains(a.slug.as_str())) {
            let id = api_id(&mut tx, &old.slug).await?;
            detail::delete_in(&mut tx, id, actor).await.map_err(|e| run.fail(&NodePath::default().key("apis"), e))?;
        }
    }
    let after = export_in(&mut tx).await?;
    converged(text, &doc, &after, options.prune).map_err(ApplyError::invalid)?;
    let changes = compare(&before, &after);
    let applied = !options.dry_run && !changes.is_empty();
    if applied {
        let summary = super::diff::summary(&changes);
        audit::record(
            &mut tx,
            actor,
            Entry {
                action: "config.apply",
                entity: "config",
                entity_id: None,
                before: None,
                after: Some(json!({"summary": summary, "prune": options.prune})),
            },
        )
        .await?;
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok(Outcome { changes, applied })
}

/// Checks that the platform now holds what the file says (the objects it
/// names; without prune, others may remain), so a field the platform
/// stores differently is an error rather than a diff that never settles.
fn converged(text: &str, doc: &Document, after: &Document, prune: bool) -> Result<(), Located> {
    if let Some(wanted) = &doc.billing {
        let wanted = billing_settings::validate(&billing_input(wanted)).ok();
        let got = after.billing.as_ref().map(billing_input);
        if wanted != got {
            let at = NodePath::default().key("billing");
            return Err(Located::at(text, &at, "the platform stores the billing settings differently from the file"));
        }
    }
    for (i, wanted) in doc.apis.iter().enumerate() {
        let at = NodePath::default().key("apis").index(i);
        let wanted = normalised(wanted);
        let Some(mut got) = after.apis.iter().find(|a| a.slug == wanted.slug).cloned() else {
            return Err(Located::at(text, &at, "the API was not stored"));
        };
        let groups_named: HashSet<&str> = doc.apis[i].routing.groups.iter().map(|g| g.name.as_str()).collect();
        let (mut want_split, mut got_split) = (wanted.routing.split(), got.routing.split());
        if prune {
            if !want_split.iter().any(|g| g.name == DEFAULT_GROUP) {
                want_split.insert(0, default_group());
            }
        } else {
            want_split.retain(|g| groups_named.contains(g.name.as_str()));
            got_split.retain(|g| groups_named.contains(g.name.as_str()));
            let routed: HashSet<uuid::Uuid> = wanted.routing.applications.iter().map(|r| r.application).collect();
            got.routing.applications.retain(|r| routed.contains(&r.application));
        }
        if want_split != got_split {
            let here = at.key("routing").key("groups");
            return Err(Located::at(text, &here, "the platform stores the upstream groups differently from the file"));
        }
        got.routing.groups.clone_from(&wanted.routing.groups);
        if !prune {
            let keep = |name: &str, names: &HashSet<String>| names.contains(name);
            let metrics: HashSet<String> = wanted.metrics.iter().map(|m| m.system_name.clone()).collect();
            let rules: HashSet<String> = wanted.mapping_rules.iter().map(rule_key).collect();
            let plans: HashSet<String> = wanted.plans.iter().map(|p| p.system_name.clone()).collect();
            if !wanted.metrics.is_empty() {
                got.metrics.retain(|m| keep(&m.system_name, &metrics));
            }
            got.mapping_rules.retain(|r| keep(&rule_key(r), &rules));
            got.plans.retain(|p| keep(&p.system_name, &plans));
        }
        if wanted.metrics.is_empty() {
            got.metrics.clear();
        }
        if got != wanted {
            let field = first_difference(&wanted, &got);
            return Err(Located::at(
                text,
                &at,
                format!(
                    "the platform stores {field} differently from the file (is it written as the platform writes it?)"
                ),
            ));
        }
    }
    Ok(())
}

fn first_difference(a: &Api, b: &Api) -> &'static str {
    match () {
        _ if a.name != b.name => "name",
        _ if a.description != b.description => "description",
        _ if a.upstreams != b.upstreams => "upstreams",
        _ if a.routing != b.routing => "routing",
        _ if a.mocks != b.mocks => "mocks",
        _ if a.metrics != b.metrics => "metrics",
        _ if a.mapping_rules != b.mapping_rules => "mapping_rules",
        _ if a.plans != b.plans => "plans",
        _ if a.spec != b.spec => "spec",
        _ => "a field",
    }
}

fn rule_key(rule: &Rule) -> String {
    format!("{} {}", rule.method.to_ascii_uppercase(), rule.pattern)
}

/// The API as export would write it after applying: defaults filled in,
/// lists in export's order.
fn normalised(api: &Api) -> Api {
    let mut api = api.clone();
    api.base_path.get_or_insert_with(|| format!("/{}", api.slug));
    api.upstreams.sort();
    api.upstreams.dedup();
    api.metrics.sort_by(|a, b| a.system_name.cmp(&b.system_name));
    for (i, rule) in api.mapping_rules.iter_mut().enumerate() {
        rule.method = rule.method.to_ascii_uppercase();
        rule.position.get_or_insert(i32::try_from(i).unwrap_or(i32::MAX));
    }
    api.mapping_rules.sort_by(|a, b| (a.position, &a.method, &a.pattern).cmp(&(b.position, &b.method, &b.pattern)));
    api.plans.sort_by(|a, b| a.system_name.cmp(&b.system_name));
    for group in &mut api.routing.groups {
        let mut seen = HashSet::new();
        group.urls.retain(|u| seen.insert(u.clone()));
    }
    api.routing.groups.sort_by(|a, b| (a.name != DEFAULT_GROUP, &a.name).cmp(&(b.name != DEFAULT_GROUP, &b.name)));
    if is_default_split(&api.routing.groups) {
        api.routing.groups.clear();
    }
    api.routing.applications.sort_by_key(|r| r.application);
    api.mocks.operations.sort();
    api.mocks.operations.dedup();
    for plan in &mut api.plans {
        plan.alert_levels.sort_unstable();
        plan.alert_levels.dedup();
        plan.limits.sort_by(|a, b| (&a.metric, a.period).cmp(&(&b.metric, b.period)));
        plan.pricing.sort_by(|a, b| (&a.metric, a.from).cmp(&(&b.metric, b.from)));
        plan.pricing_modes.sort_by(|a, b| a.metric.cmp(&b.metric));
    }
    api
}

fn billing_input(b: &Billing) -> BillingSettings {
    BillingSettings {
        provider_name: b.provider_name.clone(),
        provider_address: b.provider_address.clone(),
        provider_tax_id: b.provider_tax_id.clone(),
        tax_rate: b.tax_rate.0.normalize(),
        mode: b.mode,
        payment_terms_days: b.payment_terms_days,
        payment_instructions: b.payment_instructions.clone(),
    }
}

fn default_group() -> Group {
    Group { name: DEFAULT_GROUP.into(), weight: 100, urls: Vec::new() }
}

async fn api_id(tx: &mut sqlx::PgConnection, slug: &str) -> Result<ApiId> {
    sqlx::query_scalar!("SELECT id FROM api_products WHERE slug = $1", slug)
        .fetch_optional(tx)
        .await?
        .map(ApiId)
        .ok_or(Error::NotFound)
}

struct Run<'a> {
    text: &'a str,
    options: Options,
    actor: &'a Actor,
    base_url: &'a str,
}

impl Run<'_> {
    /// A core error while applying the object at `at`, located in the file.
    fn fail(&self, at: &NodePath, err: Error) -> ApplyError {
        match err {
            Error::Invalid { field, message } => {
                ApplyError::invalid(Located::at(self.text, &at.field(&field), message))
            }
            // Each refused field of the object, located.
            Error::InvalidFields(problems) if !problems.is_empty() => ApplyError::Invalid(
                problems.into_iter().map(|p| Located::at(self.text, &at.field(&p.field), p.message)).collect(),
            ),
            Error::InvalidFields(_) => ApplyError::invalid(Located::at(self.text, at, "is not valid")),
            Error::Conflict(message) => ApplyError::Conflict(Located::at(self.text, at, message)),
            Error::Import(e) => ApplyError::invalid(Located::at(self.text, &at.key("spec"), e.to_string())),
            Error::NotFound => {
                ApplyError::invalid(Located::at(self.text, at, "refers to something that does not exist"))
            }
            other => ApplyError::Core(other),
        }
    }

    /// The billing settings, when the file's differ from the platform's.
    async fn billing(
        &self,
        tx: &mut sqlx::PgConnection,
        wanted: &Billing,
        now: Option<&Billing>,
    ) -> Result<(), ApplyError> {
        if now == Some(wanted) {
            return Ok(());
        }
        let at = NodePath::default().key("billing");
        billing_settings::update_in(tx, &billing_input(wanted), self.actor).await.map_err(|e| self.fail(&at, e))?;
        Ok(())
    }

    async fn api(&self, tx: &mut sqlx::PgConnection, at: &NodePath, api: &Api) -> Result<(), ApplyError> {
        let fail = |e: Error| self.fail(at, e);
        let spec = tollgate_openapi::parse(&api.spec).map_err(|e| fail(e.into()))?;
        let current = api_in(tx, &api.slug).await?;
        let id = match &current {
            None => {
                let new = NewApi {
                    name: Some(api.name.clone()),
                    slug: Some(api.slug.clone()),
                    base_path: api.base_path.clone(),
                    upstream_url: None,
                };
                create_in(tx, &api.spec, &spec, new, self.actor).await.map_err(fail)?.id
            }
            Some(current) => {
                let id = api_id(tx, &api.slug).await?;
                if current.spec != api.spec {
                    let number = versions::stage_in(tx, id, &api.spec, &spec, true, self.actor).await.map_err(fail)?;
                    versions::publish_in(tx, id, number, self.actor, self.base_url).await.map_err(fail)?;
                }
                id
            }
        };
        // What is there now that the import or the new version has made its metrics and rules.
        let now = api_in(tx, &api.slug).await?.ok_or(Error::NotFound)?;
        self.settings(tx, at, id, api, &now).await?;
        self.metrics(tx, at, id, api, &now).await?;
        self.rules(tx, at, id, api, &now).await?;
        self.plans(tx, at, id, api, &now).await?;
        // Routes name the plans just made, and mocks the operations of the spec just published.
        let now = api_in(tx, &api.slug).await?.ok_or(Error::NotFound)?;
        self.groups(tx, at, id, api, &now).await?;
        self.routes(tx, at, id, api, &now).await?;
        self.lifecycle(tx, at, id, api, &now, current.is_none()).await?;
        // After the lifecycle: a published API needs an upstream or a mock, a retired one neither.
        self.mocks(tx, at, id, api, &now).await?;
        if self.options.prune {
            self.prune(tx, at, id, api, &now).await?;
        }
        // Last, once upstreams, rules, versions and mocks are all as the file says.
        if mocks::is_stranded(tx, id).await? {
            let message = "the API serves traffic with no upstream and no mocked operation: \
                           list an upstream, or mock an operation of its spec";
            return Err(ApplyError::invalid(Located::at(self.text, &at.key("upstreams"), message)));
        }
        Ok(())
    }

    async fn settings(
        &self,
        tx: &mut sqlx::PgConnection,
        at: &NodePath,
        id: ApiId,
        api: &Api,
        now: &Api,
    ) -> Result<(), ApplyError> {
        let wanted = normalised(api);
        let differs = |a: bool| a.then_some(());
        let changes = ApiChanges {
            name: differs(wanted.name != now.name).map(|()| wanted.name.clone()),
            description: differs(wanted.description != now.description).map(|()| wanted.description.clone()),
            upstream_urls: differs(wanted.upstreams != now.upstreams).map(|()| wanted.upstreams.clone()),
            auth_mode: differs(wanted.auth.mode != now.auth.mode).map(|()| wanted.auth.mode),
            key_location: differs(wanted.auth.key_location != now.auth.key_location).map(|()| wanted.auth.key_location),
            key_name: differs(wanted.auth.key_name != now.auth.key_name).map(|()| wanted.auth.key_name.clone()),
            compatibility_policy: differs(wanted.compatibility_policy != now.compatibility_policy)
                .map(|()| wanted.compatibility_policy),
        };
        let any = changes.name.is_some()
            || changes.description.is_some()
            || changes.upstream_urls.is_some()
            || changes.auth_mode.is_some()
            || changes.key_location.is_some()
            || changes.key_name.is_some()
            || changes.compatibility_policy.is_some();
        if any {
            detail::update_in(tx, id, &changes, self.actor)
                .await
                .map_err(|e| self.fail(at, as_in_the_file(e, "upstream_urls", "upstreams")))?;
        }
        let routing = |a: &Api| Routing {
            base_path: a.base_path.clone().unwrap_or_default(),
            public_host: a.public_host.clone(),
            unmatched_is_404: a.unmatched == Unmatched::NotFound,
        };
        if routing(&wanted) != routing(now) {
            detail::set_routing_in(tx, id, &routing(&wanted), self.actor).await.map_err(|e| self.fail(at, e))?;
        }
        Ok(())
    }

    async fn metrics(
        &self,
        tx: &mut sqlx::PgConnection,
        at: &NodePath,
        id: ApiId,
        api: &Api,
        now: &Api,
    ) -> Result<(), ApplyError> {
        let existing: HashMap<&str, &super::document::Metric> =
            now.metrics.iter().map(|m| (m.system_name.as_str(), m)).collect();
        let mut present: HashSet<String> = existing.keys().map(|k| (*k).to_owned()).collect();
        // Parents before their methods: each pass adds the metrics whose parent exists.
        let mut pending: Vec<(usize, &super::document::Metric)> = api.metrics.iter().enumerate().collect();
        while !pending.is_empty() {
            let (ready, waiting): (Vec<_>, Vec<_>) =
                pending.into_iter().partition(|(_, m)| m.parent.as_ref().is_none_or(|p| present.contains(p)));
            if ready.is_empty() {
                let (j, m) = waiting[0];
                let parent = m.parent.clone().unwrap_or_default();
                let here = at.key("metrics").index(j).key("parent");
                return Err(ApplyError::invalid(Located::at(
                    self.text,
                    &here,
                    format!("{parent} is not a metric of this API (or the parents form a loop)"),
                )));
            }
            for (j, m) in ready {
                let here = at.key("metrics").index(j);
                let wanted = MetricChanges {
                    friendly_name: m.friendly_name.clone(),
                    unit: m.unit.clone(),
                    description: m.description.clone(),
                    parent: m.parent.clone(),
                };
                match existing.get(m.system_name.as_str()) {
                    Some(old) => {
                        let had = MetricChanges {
                            friendly_name: old.friendly_name.clone(),
                            unit: old.unit.clone(),
                            description: old.description.clone(),
                            parent: old.parent.clone(),
                        };
                        if had != wanted {
                            rules::update_metric_in(tx, id, &m.system_name, &wanted, self.actor)
                                .await
                                .map_err(|e| self.fail(&here, e))?;
                        }
                    }
                    None => {
                        rules::add_metric_in(tx, id, &m.system_name, &m.friendly_name, m.parent.as_deref(), self.actor)
                            .await
                            .map_err(|e| self.fail(&here, e))?;
                        if m.unit != "hit" || !m.description.is_empty() {
                            rules::update_metric_in(tx, id, &m.system_name, &wanted, self.actor)
                                .await
                                .map_err(|e| self.fail(&here, e))?;
                        }
                        present.insert(m.system_name.clone());
                    }
                }
            }
            pending = waiting;
        }
        Ok(())
    }

    async fn rules(
        &self,
        tx: &mut sqlx::PgConnection,
        at: &NodePath,
        id: ApiId,
        api: &Api,
        now: &Api,
    ) -> Result<(), ApplyError> {
        let existing: HashMap<String, &Rule> = now.mapping_rules.iter().map(|r| (rule_key(r), r)).collect();
        let wanted = normalised(api);
        for (j, rule) in api.mapping_rules.iter().enumerate() {
            let here = at.key("mapping_rules").index(j);
            let want = wanted.mapping_rules.iter().find(|r| rule_key(r) == rule_key(rule)).unwrap_or(rule);
            let new = NewRule {
                http_method: want.method.clone(),
                pattern: want.pattern.clone(),
                metric: want.metric.clone(),
                delta: want.delta,
                last: want.last,
                position: want.position,
            };
            let imported = want.origin == Origin::Import;
            let fail = |e| self.fail(&here, as_in_the_file(e, "http_method", "method"));
            match existing.get(&rule_key(want)) {
                Some(old) if *old == want => {}
                Some(_) => rules::update_rule_in(tx, id, &new, imported, self.actor).await.map_err(fail)?,
                None => {
                    rules::add_rule_in(tx, id, &new, self.actor).await.map_err(fail)?;
                    if imported {
                        rules::update_rule_in(tx, id, &new, true, self.actor).await.map_err(fail)?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn plans(
        &self,
        tx: &mut sqlx::PgConnection,
        at: &NodePath,
        id: ApiId,
        api: &Api,
        now: &Api,
    ) -> Result<(), ApplyError> {
        let wanted = normalised(api);
        for (j, plan) in api.plans.iter().enumerate() {
            let here = at.key("plans").index(j);
            let fail = |e: Error| self.fail(&here, e);
            let want = wanted.plans.iter().find(|p| p.system_name == plan.system_name).unwrap_or(plan);
            let levels: Vec<AlertLevel> = parse_levels(&plan.alert_levels).map_err(|e| fail(e.at("alert_levels")))?;
            let old = now.plans.iter().find(|p| p.system_name == plan.system_name);
            let plan_id = match old {
                Some(old) => {
                    let plan_id = plan_id(tx, id, &plan.system_name).await?;
                    let mut same = old.clone();
                    same.alert_levels.clone_from(&want.alert_levels);
                    same.upstream_group.clone_from(&want.upstream_group);
                    if same != *want {
                        plans::update_plan_in(tx, plan_id, &new_plan(plan), self.actor).await.map_err(fail)?;
                    }
                    plan_id
                }
                None => plans::create_plan_in(tx, id, &new_plan(plan), self.actor).await.map_err(fail)?,
            };
            let had = old.map_or_else(
                || AlertLevel::DEFAULT.iter().map(|l| i64::from(l.pct())).collect(),
                |o| o.alert_levels.clone(),
            );
            if had != want.alert_levels {
                set_plan_levels_in(tx, plan_id.0, &levels, self.actor).await.map_err(fail)?;
            }
        }
        Ok(())
    }

    /// Creates and changes the file's upstream groups: weights that rise
    /// first, then those that fall, so the split never sums to 0 on the way.
    /// With prune and no `default` listed, `default` goes back to 100.
    async fn groups(
        &self,
        tx: &mut sqlx::PgConnection,
        at: &NodePath,
        id: ApiId,
        api: &Api,
        now: &Api,
    ) -> Result<(), ApplyError> {
        let current: HashMap<String, Group> = now.routing.split().into_iter().map(|g| (g.name.clone(), g)).collect();
        let wanted = normalised(api);
        let listed = at.key("routing").key("groups");
        let mut steps: Vec<(NodePath, Group, bool)> = Vec::new();
        for (j, group) in api.routing.groups.iter().enumerate() {
            let want = wanted.routing.groups.iter().find(|g| g.name == group.name).cloned();
            let want = want.unwrap_or_else(default_group);
            let old = current.get(&group.name);
            if old == Some(&want) {
                continue;
            }
            let rises = old.is_none_or(|o| want.weight >= o.weight);
            steps.push((listed.index(j), want, rises));
        }
        let default_listed = api.routing.groups.iter().any(|g| g.name == DEFAULT_GROUP);
        if self.options.prune && !default_listed && current.get(DEFAULT_GROUP) != Some(&default_group()) {
            let rises = current.get(DEFAULT_GROUP).is_none_or(|o| o.weight <= 100);
            steps.push((at.key("routing"), default_group(), rises));
        }
        steps.sort_by_key(|(_, _, rises)| !rises);
        for (here, group, _) in steps {
            let fail = |e: Error| self.fail(&here, e);
            let name = GroupName::parse("name", &group.name).map_err(fail)?;
            let weight = i32::try_from(group.weight).map_err(|_| fail(Error::invalid("weight", "too large")))?;
            let urls = (group.name != DEFAULT_GROUP).then(|| group.urls.clone());
            upstream_routing::put_group_in(tx, self.actor, id, &name, weight, urls).await.map_err(fail)?;
        }
        Ok(())
    }

    /// Sends the file's plans and applications to their groups (or back to the split).
    async fn routes(
        &self,
        tx: &mut sqlx::PgConnection,
        at: &NodePath,
        id: ApiId,
        api: &Api,
        now: &Api,
    ) -> Result<(), ApplyError> {
        // The core calls the route's group `group`; the file names the field it is in.
        let fail = |here: &NodePath, field: &'static str, e: Error| {
            let e = match e {
                Error::Invalid { field: f, message } if f == "group" => Error::Invalid { field: field.into(), message },
                e => e,
            };
            self.fail(here, e)
        };
        for (j, plan) in api.plans.iter().enumerate() {
            let here = at.key("plans").index(j);
            let had =
                now.plans.iter().find(|p| p.system_name == plan.system_name).and_then(|p| p.upstream_group.clone());
            if had == plan.upstream_group {
                continue;
            }
            let plan_id = plan_id(tx, id, &plan.system_name).await?;
            let group = plan.upstream_group.as_deref().map(|g| GroupName::parse("upstream_group", g)).transpose();
            let group = group.map_err(|e| fail(&here, "upstream_group", e))?;
            upstream_routing::set_plan_route_in(tx, self.actor, plan_id, group.as_ref(), Some(id))
                .await
                .map_err(|e| fail(&here, "upstream_group", e))?;
        }
        for (j, route) in api.routing.applications.iter().enumerate() {
            let here = at.key("routing").key("applications").index(j);
            let had = now.routing.applications.iter().find(|r| r.application == route.application);
            if had.is_some_and(|r| r.group == route.group) {
                continue;
            }
            let subscribed = sqlx::query_scalar!("SELECT api_id FROM applications WHERE id = $1", route.application)
                .fetch_optional(&mut *tx)
                .await?;
            if subscribed != Some(id.0) {
                let message = match subscribed {
                    None => format!("there is no application {} on this platform", route.application),
                    Some(_) => format!("application {} subscribes to another API", route.application),
                };
                return Err(ApplyError::invalid(Located::at(self.text, &here.key("application"), message)));
            }
            let group = GroupName::parse("group", &route.group).map_err(|e| fail(&here, "group", e))?;
            upstream_routing::set_application_route_in(
                tx,
                self.actor,
                ApplicationId(route.application),
                Some(&group),
                Some(id),
            )
            .await
            .map_err(|e| fail(&here, "group", e))?;
        }
        Ok(())
    }

    /// Puts the API, and the operations the file names, in or out of mock mode.
    async fn mocks(
        &self,
        tx: &mut sqlx::PgConnection,
        at: &NodePath,
        id: ApiId,
        api: &Api,
        now: &Api,
    ) -> Result<(), ApplyError> {
        let wanted = normalised(api).mocks;
        if wanted == now.mocks {
            return Ok(());
        }
        let operations: HashMap<String, uuid::Uuid> = sqlx::query!(
            "SELECT m.system_name, m.id FROM metrics m
             WHERE m.api_id = $1 AND EXISTS (SELECT 1 FROM mapping_rules r WHERE r.metric_id = m.id AND r.imported)",
            id.0
        )
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|m| (m.system_name, m.id))
        .collect();
        let mut changes = MockChanges {
            whole_api: (wanted.whole_api != now.mocks.whole_api).then_some(wanted.whole_api),
            operations: HashMap::new(),
        };
        for (k, name) in api.mocks.operations.iter().enumerate() {
            let Some(&metric) = operations.get(name) else {
                let here = at.key("mocks").key("operations").index(k);
                let message = format!("{name} is not the method metric of an imported operation of this API");
                return Err(ApplyError::invalid(Located::at(self.text, &here, message)));
            };
            if !now.mocks.operations.contains(name) {
                changes.operations.insert(metric, true);
            }
        }
        for name in now.mocks.operations.iter().filter(|n| !wanted.operations.contains(n)) {
            if let Some(&metric) = operations.get(name) {
                changes.operations.insert(metric, false);
            }
        }
        mocks::set_in(tx, id, &changes, self.actor).await.map_err(|e| self.fail(&at.key("mocks"), e))
    }

    async fn lifecycle(
        &self,
        tx: &mut sqlx::PgConnection,
        at: &NodePath,
        id: ApiId,
        api: &Api,
        now: &Api,
        created: bool,
    ) -> Result<(), ApplyError> {
        use ApiState::*;
        // An API the file creates is recorded as it was where it was exported, a sunset date
        // already past included (nothing retires an API at its sunset by itself).
        let sunset_rule = if created { SunsetRule::AsRecorded } else { SunsetRule::Ahead };
        let (from, to) = (now.lifecycle.state, api.lifecycle.state);
        let sunset = api.lifecycle.sunset_at;
        let steps: &[ApiState] = match (from, to) {
            _ if from == to && (to != Deprecated || now.lifecycle.sunset_at == sunset) => &[],
            (Deprecated, Deprecated) => &[Published, Deprecated],
            (_, Draft) => {
                let here = at.key("lifecycle").key("state");
                return Err(ApplyError::invalid(Located::at(
                    self.text,
                    &here,
                    format!("an API cannot go back to draft from {from}"),
                )));
            }
            (Draft | Retired, Deprecated) => &[Published, Deprecated],
            (Draft, Retired) => &[Published, Retired],
            _ => &[to],
        };
        for &step in steps {
            let sunset = if step == Deprecated { sunset } else { None };
            lifecycle::set_state_in(tx, id, step, sunset, sunset_rule, self.actor, self.base_url)
                .await
                .map_err(|e| self.fail(&at.key("lifecycle"), e))?;
        }
        Ok(())
    }

    /// Removes what the API's part of the file no longer names: rules, plans
    /// (refused for a plan in use), then metrics (hits stays).
    async fn prune(
        &self,
        tx: &mut sqlx::PgConnection,
        at: &NodePath,
        id: ApiId,
        api: &Api,
        now: &Api,
    ) -> Result<(), ApplyError> {
        let rules: HashSet<String> = api.mapping_rules.iter().map(rule_key).collect();
        for old in now.mapping_rules.iter().filter(|r| !rules.contains(&rule_key(r))) {
            let rule = sqlx::query_scalar!(
                "SELECT id FROM mapping_rules WHERE api_id = $1 AND http_method = $2 AND pattern = $3",
                id.0,
                old.method,
                old.pattern
            )
            .fetch_one(&mut *tx)
            .await?;
            rules::delete_rule_in(tx, id, rule, self.actor).await.map_err(|e| self.fail(at, e))?;
        }
        let plans: HashSet<&str> = api.plans.iter().map(|p| p.system_name.as_str()).collect();
        for old in now.plans.iter().filter(|p| !plans.contains(p.system_name.as_str())) {
            let plan = plan_id(tx, id, &old.system_name).await?;
            plans::delete_plan_in(tx, plan, self.actor)
                .await
                .map_err(|e| self.fail(&at.key("plans"), still_in_use(e, "plan", &api.slug, &old.system_name)))?;
        }
        // Application routes, then the groups nothing routes to any more.
        let routed: HashSet<uuid::Uuid> = api.routing.applications.iter().map(|r| r.application).collect();
        for old in now.routing.applications.iter().filter(|r| !routed.contains(&r.application)) {
            upstream_routing::set_application_route_in(tx, self.actor, ApplicationId(old.application), None, Some(id))
                .await
                .map_err(|e| self.fail(&at.key("routing"), e))?;
        }
        let groups: HashSet<&str> = api.routing.groups.iter().map(|g| g.name.as_str()).collect();
        for old in now.routing.split().iter().filter(|g| g.name != DEFAULT_GROUP && !groups.contains(g.name.as_str())) {
            upstream_routing::delete_group_in(tx, self.actor, id, &old.name)
                .await
                .map_err(|e| self.fail(&at.key("routing"), still_in_use(e, "upstream group", &api.slug, &old.name)))?;
        }
        if api.metrics.is_empty() {
            return Ok(());
        }
        let metrics: HashSet<&str> = api.metrics.iter().map(|m| m.system_name.as_str()).collect();
        let gone: HashSet<&str> =
            now.metrics.iter().map(|m| m.system_name.as_str()).filter(|m| !metrics.contains(m)).collect();
        // Deleting a metric deletes its methods, so only the topmost ones are deleted by name.
        for old in now.metrics.iter().filter(|m| gone.contains(m.system_name.as_str())) {
            if old.parent.as_deref().is_some_and(|p| gone.contains(p)) {
                continue;
            }
            let metric = sqlx::query_scalar!(
                "SELECT id FROM metrics WHERE api_id = $1 AND system_name = $2",
                id.0,
                old.system_name
            )
            .fetch_one(&mut *tx)
            .await?;
            rules::delete_metric_in(tx, id, metric, self.actor).await.map_err(|e| self.fail(&at.key("metrics"), e))?;
        }
        Ok(())
    }
}

async fn plan_id(tx: &mut sqlx::PgConnection, api: ApiId, system_name: &str) -> Result<PlanId> {
    sqlx::query_scalar!("SELECT id FROM plans WHERE api_id = $1 AND system_name = $2", api.0, system_name)
        .fetch_optional(tx)
        .await?
        .map(PlanId)
        .ok_or(Error::NotFound)
}

fn new_plan(plan: &Plan) -> NewPlan {
    NewPlan {
        system_name: plan.system_name.clone(),
        name: plan.name.clone(),
        description: plan.description.clone(),
        published: plan.published,
        approval_required: plan.approval_required,
        setup_fee: plan.setup_fee.0,
        monthly_fee: plan.monthly_fee.0,
        trial_days: plan.trial_days,
        currency: plan.currency.clone(),
        time_zone: plan.time_zone.clone(),
        limits: plan
            .limits
            .iter()
            .map(|l| NewLimit { metric: l.metric.clone(), period: l.period, max: l.max })
            .collect(),
        pricing: plan
            .pricing
            .iter()
            .map(|t| NewPrice { metric: t.metric.clone(), from: t.from, to: t.to, price_per_unit: t.price_per_unit.0 })
            .collect(),
        pricing_modes: plan
            .pricing_modes
            .iter()
            .map(|m| NewPricingMode { metric: m.metric.clone(), mode: m.mode })
            .collect(),
    }
}

/// A prune the platform refuses (the thing is still in use) says what the file dropped.
fn still_in_use(e: Error, what: &str, api: &str, name: &str) -> Error {
    match e {
        Error::Conflict(message) => {
            Error::Conflict(format!("cannot remove the {what} {api}/{name}, which the file no longer names: {message}"))
        }
        e => e,
    }
}

/// A core error about a field the file names otherwise (`upstream_urls` is `upstreams`).
fn as_in_the_file(err: Error, core: &str, file: &str) -> Error {
    match err {
        Error::Invalid { field, message } => Error::Invalid { field: field.replace(core, file).into(), message },
        Error::InvalidFields(problems) => Error::InvalidFields(
            problems.into_iter().map(|p| FieldProblem { field: p.field.replace(core, file).into(), ..p }).collect(),
        ),
        err => err,
    }
}
