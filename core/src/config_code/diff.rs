//! What an apply changes: two documents compared object by object (APIs,
//! metrics, mapping rules, plans, upstream groups and application routes,
//! each named as the file names it) and,
//! for an object in both, field by field.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use super::document::{Api, ApplicationRoute, Billing, Document, Group, Metric, Plan, Rule};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Created,
    Changed,
    Removed,
}

/// One field of a changed object; `None` where the field had or has no value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldChange {
    pub field: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// One object created, changed or removed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    pub action: Action,
    /// `billing_settings`, `api`, `metric`, `mapping_rule`, `plan`, `upstream_group` or
    /// `application_route`.
    pub kind: &'static str,
    /// The API's slug, then the object's name (`weather/basic`, `weather/GET /forecast$`).
    pub name: String,
    /// Only for `changed`.
    pub fields: Vec<FieldChange>,
}

/// The objects `after` creates, changes and removes compared with `before`,
/// API by API in slug order.
pub fn compare(before: &Document, after: &Document) -> Vec<Change> {
    let olds: BTreeMap<&str, &Api> = before.apis.iter().map(|a| (a.slug.as_str(), a)).collect();
    let news: BTreeMap<&str, &Api> = after.apis.iter().map(|a| (a.slug.as_str(), a)).collect();
    let mut slugs: Vec<&str> = olds.keys().chain(news.keys()).copied().collect();
    slugs.sort_unstable();
    slugs.dedup();
    let mut changes = Vec::new();
    let (ob, nb) = (before.billing.as_ref().map(billing_fields), after.billing.as_ref().map(billing_fields));
    compare_objects(&mut changes, "billing_settings", "billing".into(), ob, nb);
    for slug in slugs {
        let (old, new) = (olds.get(slug).copied(), news.get(slug).copied());
        compare_objects(&mut changes, "api", slug.to_owned(), old.map(api_fields), new.map(api_fields));
        let (om, or, op) = parts(old);
        let (nm, nr, np) = parts(new);
        compare_lists(&mut changes, "metric", slug, om, nm, |m| m.system_name.clone(), metric_fields);
        compare_lists(&mut changes, "mapping_rule", slug, or, nr, rule_name, rule_fields);
        compare_lists(&mut changes, "plan", slug, op, np, |p| p.system_name.clone(), plan_fields);
        // An API always has its default group: a split is compared group by group as it is,
        // and a new or removed API lists its groups only when it has more than that.
        let split = |a: &Api| if old.is_some() && new.is_some() { a.routing.split() } else { a.routing.groups.clone() };
        let (og, ng) = (old.map(split).unwrap_or_default(), new.map(split).unwrap_or_default());
        compare_lists(&mut changes, "upstream_group", slug, &og, &ng, |g| g.name.clone(), group_fields);
        let (oa, na) = (routes(old), routes(new));
        compare_lists(&mut changes, "application_route", slug, oa, na, |r| r.application.to_string(), route_fields);
    }
    changes
}

fn parts(api: Option<&Api>) -> (&[Metric], &[Rule], &[Plan]) {
    api.map_or((&[], &[], &[]), |a| (&a.metrics[..], &a.mapping_rules[..], &a.plans[..]))
}

fn routes(api: Option<&Api>) -> &[ApplicationRoute] {
    api.map_or(&[], |a| &a.routing.applications[..])
}

fn rule_name(rule: &Rule) -> String {
    format!("{} {}", rule.method, rule.pattern)
}

fn compare_lists<T>(
    out: &mut Vec<Change>,
    kind: &'static str,
    slug: &str,
    old: &[T],
    new: &[T],
    name: impl Fn(&T) -> String,
    fields: impl Fn(&T) -> Vec<(String, String)>,
) {
    let olds: BTreeMap<String, &T> = old.iter().map(|o| (name(o), o)).collect();
    let news: BTreeMap<String, &T> = new.iter().map(|o| (name(o), o)).collect();
    let mut names: Vec<&String> = olds.keys().chain(news.keys()).collect();
    names.sort_unstable();
    names.dedup();
    for n in names {
        let (o, w) = (olds.get(n).map(|o| fields(o)), news.get(n).map(|o| fields(o)));
        compare_objects(out, kind, format!("{slug}/{n}"), o, w);
    }
}

fn compare_objects(
    out: &mut Vec<Change>,
    kind: &'static str,
    name: String,
    old: Option<Vec<(String, String)>>,
    new: Option<Vec<(String, String)>>,
) {
    match (old, new) {
        (None, Some(_)) => out.push(Change { action: Action::Created, kind, name, fields: Vec::new() }),
        (Some(_), None) => out.push(Change { action: Action::Removed, kind, name, fields: Vec::new() }),
        (Some(old), Some(new)) => {
            let olds: BTreeMap<_, _> = old.iter().cloned().collect();
            let news: BTreeMap<_, _> = new.iter().cloned().collect();
            // In the order the fields are listed, then fields only the old object had.
            let mut order: Vec<&String> = new.iter().map(|(f, _)| f).collect();
            order.extend(old.iter().map(|(f, _)| f).filter(|f| !news.contains_key(*f)));
            let fields: Vec<FieldChange> = order
                .into_iter()
                .filter(|f| olds.get(*f) != news.get(*f))
                .map(|f| FieldChange { field: f.clone(), before: olds.get(f).cloned(), after: news.get(f).cloned() })
                .collect();
            if !fields.is_empty() {
                out.push(Change { action: Action::Changed, kind, name, fields });
            }
        }
        (None, None) => {}
    }
}

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

fn named<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

fn api_fields(api: &Api) -> Vec<(String, String)> {
    let digest = Sha256::digest(api.spec.as_bytes());
    let hash: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    let mut fields = vec![
        ("name".into(), quoted(&api.name)),
        ("description".into(), quoted(&api.description)),
        ("base_path".into(), api.base_path.clone().unwrap_or_else(|| format!("/{}", api.slug))),
        ("upstreams".into(), format!("[{}]", api.upstreams.join(", "))),
        ("auth.mode".into(), named(&api.auth.mode)),
        ("auth.key_location".into(), named(&api.auth.key_location)),
        ("auth.key_name".into(), api.auth.key_name.clone()),
        ("unmatched".into(), named(&api.unmatched)),
        ("compatibility_policy".into(), named(&api.compatibility_policy)),
        ("lifecycle.state".into(), named(&api.lifecycle.state)),
        ("spec".into(), format!("{} bytes, sha256 {hash}…", api.spec.len())),
        ("mocks.whole_api".into(), api.mocks.whole_api.to_string()),
        ("mocks.operations".into(), format!("[{}]", api.mocks.operations.join(", "))),
    ];
    if let Some(host) = &api.public_host {
        fields.push(("public_host".into(), host.clone()));
    }
    if let Some(at) = api.lifecycle.sunset_at {
        let text = at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        fields.push(("lifecycle.sunset_at".into(), text));
    }
    fields
}

fn billing_fields(b: &Billing) -> Vec<(String, String)> {
    vec![
        ("provider_name".into(), quoted(&b.provider_name)),
        ("provider_address".into(), quoted(&b.provider_address)),
        ("provider_tax_id".into(), quoted(&b.provider_tax_id)),
        ("tax_rate".into(), b.tax_rate.to_string()),
        ("mode".into(), named(&b.mode)),
        ("payment_terms_days".into(), b.payment_terms_days.to_string()),
        ("payment_instructions".into(), quoted(&b.payment_instructions)),
    ]
}

fn group_fields(g: &Group) -> Vec<(String, String)> {
    vec![("weight".into(), g.weight.to_string()), ("urls".into(), format!("[{}]", g.urls.join(", ")))]
}

fn route_fields(r: &ApplicationRoute) -> Vec<(String, String)> {
    vec![("group".into(), r.group.clone())]
}

fn metric_fields(m: &Metric) -> Vec<(String, String)> {
    vec![
        ("parent".into(), m.parent.clone().unwrap_or_else(|| "(none)".into())),
        ("friendly_name".into(), quoted(&m.friendly_name)),
        ("unit".into(), m.unit.clone()),
        ("description".into(), quoted(&m.description)),
    ]
}

fn rule_fields(r: &Rule) -> Vec<(String, String)> {
    vec![
        ("metric".into(), r.metric.clone()),
        ("delta".into(), r.delta.to_string()),
        ("position".into(), r.position.map(|p| p.to_string()).unwrap_or_default()),
        ("last".into(), r.last.to_string()),
        ("origin".into(), named(&r.origin)),
    ]
}

fn plan_fields(p: &Plan) -> Vec<(String, String)> {
    let levels: Vec<String> = p.alert_levels.iter().map(i64::to_string).collect();
    let mut fields = vec![
        ("name".into(), quoted(&p.name)),
        ("description".into(), quoted(&p.description)),
        ("published".into(), p.published.to_string()),
        ("approval_required".into(), p.approval_required.to_string()),
        ("setup_fee".into(), p.setup_fee.to_string()),
        ("monthly_fee".into(), p.monthly_fee.to_string()),
        ("trial_days".into(), p.trial_days.to_string()),
        ("currency".into(), p.currency.clone()),
        ("time_zone".into(), p.time_zone.clone()),
        ("alert_levels".into(), format!("[{}]", levels.join(", "))),
        ("upstream_group".into(), p.upstream_group.clone().unwrap_or_else(|| "(split)".into())),
    ];
    for l in &p.limits {
        fields.push((format!("limits.{}.{}", l.metric, l.period), l.max.to_string()));
    }
    for t in &p.pricing {
        let to = t.to.map(|t| t.to_string()).unwrap_or_default();
        fields.push((format!("pricing.{}.{}..{to}", t.metric, t.from), t.price_per_unit.to_string()));
    }
    for m in &p.pricing_modes {
        fields.push((format!("pricing_modes.{}", m.metric), named(&m.mode)));
    }
    fields
}

/// How many objects each action touches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub created: usize,
    pub changed: usize,
    pub removed: usize,
}

pub fn summary(changes: &[Change]) -> Summary {
    let count = |a: Action| changes.iter().filter(|c| c.action == a).count();
    Summary { created: count(Action::Created), changed: count(Action::Changed), removed: count(Action::Removed) }
}

/// The changes for a terminal: `+ created`, `~ changed` with a line per
/// field, `- removed`, then a summary line (`no changes` when there are none).
pub fn render(changes: &[Change]) -> String {
    let mut out = String::new();
    for c in changes {
        let sign = match c.action {
            Action::Created => '+',
            Action::Changed => '~',
            Action::Removed => '-',
        };
        let _ = writeln!(out, "{sign} {} {}", c.kind, c.name);
        for f in &c.fields {
            let none = "(none)".to_owned();
            let _ = writeln!(
                out,
                "    {}: {} -> {}",
                f.field,
                f.before.as_ref().unwrap_or(&none),
                f.after.as_ref().unwrap_or(&none)
            );
        }
    }
    let s = summary(changes);
    if changes.is_empty() {
        out.push_str("no changes\n");
    } else {
        let _ = writeln!(out, "{} created, {} changed, {} removed", s.created, s.changed, s.removed);
    }
    out
}
