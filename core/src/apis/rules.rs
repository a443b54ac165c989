//! Metrics, methods and mapping rules of an API, as admins edit them after
//! import. Patterns are checked with the agents' own parser, so a rule that
//! agents would refuse is refused here first. Rules made here are hand-made
//! (`imported = false`): they keep 3scale's semantics on the agents.

use serde_json::json;
use sqlx::PgPool;
use tollgate_protocol::Pattern;
use uuid::Uuid;

use super::types::ApiId;
use crate::audit::{self, Actor, Entry};
use crate::error::conflict_on_unique;
use crate::sync::feed::{Entity, record_change};
use crate::{Error, FieldProblems, Result};

/// Ends an edit of an API's metrics or rules: agents learn of it, and the
/// audit log records who did what, in the edit's transaction.
pub(crate) async fn finish_edit(
    tx: &mut sqlx::PgConnection,
    api: ApiId,
    actor: &Actor,
    action: &str,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) -> Result<()> {
    record_change(tx, Entity::Api, api.0, false, None).await?;
    let entry = Entry { action, entity: "api", entity_id: Some(api.0), before, after };
    audit::record(tx, actor, entry).await?;
    Ok(())
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct MetricView {
    pub id: Uuid,
    pub system_name: String,
    pub friendly_name: String,
    pub parent: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RuleView {
    pub id: Uuid,
    pub http_method: String,
    pub pattern: String,
    pub metric: String,
    pub delta: i32,
    pub position: i32,
    pub last: bool,
    /// Made from an imported operation (counts once per call, by specificity) rather than by
    /// an admin (3scale semantics: every match counts).
    pub imported: bool,
}

pub async fn metrics(pool: &PgPool, api: ApiId) -> Result<Vec<MetricView>> {
    let rows = sqlx::query!(
        r#"SELECT m.id, m.system_name, m.friendly_name, p.system_name AS "parent?"
           FROM metrics m LEFT JOIN metrics p ON p.id = m.parent_id
           WHERE m.api_id = $1 ORDER BY m.parent_id NULLS FIRST, m.system_name"#,
        api.0
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| MetricView { id: r.id, system_name: r.system_name, friendly_name: r.friendly_name, parent: r.parent })
        .collect())
}

pub async fn rules(pool: &PgPool, api: ApiId) -> Result<Vec<RuleView>> {
    let rows = sqlx::query!(
        "SELECT r.id, r.http_method, r.pattern, m.system_name, r.delta, r.position, r.last, r.imported
         FROM mapping_rules r JOIN metrics m ON m.id = r.metric_id WHERE r.api_id = $1 ORDER BY r.position, r.created_at",
        api.0
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| RuleView {
            id: r.id,
            http_method: r.http_method,
            pattern: r.pattern,
            metric: r.system_name,
            delta: r.delta,
            position: r.position,
            last: r.last,
            imported: r.imported,
        })
        .collect())
}

async fn metric_id(tx: &mut sqlx::PgConnection, api: ApiId, name: &str, field: &'static str) -> Result<Uuid> {
    sqlx::query_scalar!("SELECT id FROM metrics WHERE api_id = $1 AND system_name = $2", api.0, name)
        .fetch_optional(tx)
        .await?
        .ok_or_else(|| Error::invalid(field, crate::plans::unknown_metric(name)))
}

/// The longest display name of a metric or method, in characters (the admin API documents it).
pub const MAX_FRIENDLY_NAME_CHARS: usize = 200;

/// Adds a method (a metric under a parent, usually `hits`) or a top-level metric.
pub async fn add_metric(
    pool: &PgPool,
    api: ApiId,
    system_name: &str,
    friendly_name: &str,
    parent: Option<&str>,
    actor: &Actor,
) -> Result<Uuid> {
    let mut tx = pool.begin().await?;
    let id = add_metric_in(&mut tx, api, system_name, friendly_name, parent, actor).await?;
    tx.commit().await?;
    Ok(id)
}

/// [`add_metric`] inside the caller's transaction.
pub async fn add_metric_in(
    tx: &mut sqlx::PgConnection,
    api: ApiId,
    system_name: &str,
    friendly_name: &str,
    parent: Option<&str>,
    actor: &Actor,
) -> Result<Uuid> {
    // Every refused field at once.
    let mut problems = FieldProblems::default();
    let ok = !system_name.is_empty()
        && system_name.len() <= 128
        && system_name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !ok {
        problems.add("system_name", "use 1 to 128 letters, digits, '_', '.' or '-'");
    }
    if friendly_name.chars().count() > MAX_FRIENDLY_NAME_CHARS {
        problems.add("friendly_name", format!("use at most {MAX_FRIENDLY_NAME_CHARS} characters"));
    }
    let parent_id = match parent.filter(|p| !p.is_empty()) {
        Some(name) => problems.note(metric_id(tx, api, name, "parent").await)?,
        None => None,
    };
    problems.into_result()?;
    let id = Uuid::now_v7();
    let friendly = if friendly_name.trim().is_empty() { system_name } else { friendly_name.trim() };
    sqlx::query!(
        "INSERT INTO metrics (id, api_id, parent_id, system_name, friendly_name) VALUES ($1, $2, $3, $4, $5)",
        id,
        api.0,
        parent_id,
        system_name,
        friendly
    )
    .execute(&mut *tx)
    .await
    .map_err(|e| conflict_on_unique(e, "this API already has a metric with that system name"))?;
    finish_edit(tx, api, actor, "metric.create", None, Some(json!({"system_name": system_name, "parent": parent})))
        .await?;
    Ok(id)
}

/// Deletes a metric with its methods, limits, prices and rules.
pub async fn delete_metric(pool: &PgPool, api: ApiId, id: Uuid, actor: &Actor) -> Result<()> {
    let mut tx = pool.begin().await?;
    delete_metric_in(&mut tx, api, id, actor).await?;
    super::mocks::refuse_stranded(&mut tx, api, "deleting this metric").await?;
    tx.commit().await?;
    Ok(())
}

/// [`delete_metric`] inside the caller's transaction. Refused while a plan limits or prices
/// the metric or one of its methods: the database would drop those limits and prices with it,
/// silently changing what the plans allow and charge.
pub async fn delete_metric_in(tx: &mut sqlx::PgConnection, api: ApiId, id: Uuid, actor: &Actor) -> Result<()> {
    let is_hits = sqlx::query_scalar!(
        "SELECT EXISTS (SELECT 1 FROM metrics WHERE id = $1 AND api_id = $2 AND system_name = 'hits')",
        id,
        api.0
    )
    .fetch_one(&mut *tx)
    .await?;
    if is_hits == Some(true) {
        return Err(Error::Conflict(
            "hits counts every call and cannot be deleted; delete its methods or the rules that count on it instead"
                .to_owned(),
        ));
    }
    let plans = sqlx::query_scalar!(
        r#"WITH RECURSIVE tree AS (
               SELECT id FROM metrics WHERE id = $1 AND api_id = $2 AND system_name <> 'hits'
               UNION ALL
               SELECT m.id FROM metrics m JOIN tree t ON m.parent_id = t.id
           )
           SELECT p.system_name FROM plans p
           WHERE p.id IN (SELECT plan_id FROM usage_limits WHERE metric_id IN (SELECT id FROM tree)
                          UNION SELECT plan_id FROM pricing_rules WHERE metric_id IN (SELECT id FROM tree))
           ORDER BY p.system_name"#,
        id,
        api.0
    )
    .fetch_all(&mut *tx)
    .await?;
    if !plans.is_empty() {
        return Err(Error::Conflict(format!(
            "plan(s) {} limit or price this metric or its methods; remove those limits and prices first",
            plans.join(", ")
        )));
    }
    let name = sqlx::query_scalar!(
        "DELETE FROM metrics WHERE id = $1 AND api_id = $2 AND system_name <> 'hits' RETURNING system_name",
        id,
        api.0
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound)?;
    finish_edit(tx, api, actor, "metric.delete", Some(json!({"system_name": name})), None).await?;
    Ok(())
}

pub const RULE_METHODS: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "ANY"];

/// The highest position a rule may be given.
pub const MAX_RULE_POSITION: i32 = 1_000_000;

#[derive(Debug, Clone, serde::Deserialize)]
pub struct NewRule {
    pub http_method: String,
    pub pattern: String,
    pub metric: String,
    pub delta: i32,
    pub last: bool,
    /// Appended after the existing rules when absent.
    pub position: Option<i32>,
}

pub async fn add_rule(pool: &PgPool, api: ApiId, rule: &NewRule, actor: &Actor) -> Result<Uuid> {
    let mut tx = pool.begin().await?;
    let id = add_rule_in(&mut tx, api, rule, actor).await?;
    tx.commit().await?;
    Ok(id)
}

/// The longest pattern `mapping_rules.pattern` holds (its `CHECK`).
const MAX_PATTERN_CHARS: usize = 2048;

/// The mapping rule pattern of an imported operation's path: anchored, so `/pets` does not
/// also count `/pets/{id}`. What real documents put in a path key that is no path is left
/// out: a query (`/alerts?lat={lat}`) or fragment (AWS's `/#Action=AddTags`), which a rule
/// cannot tell apart; whitespace is percent-encoded, as a client sends it.
pub(crate) fn imported_pattern(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let mut pattern = String::with_capacity(path.len() + 1);
    for c in path.chars() {
        if c.is_whitespace() || c.is_control() {
            let mut bytes = [0; 4];
            for byte in c.encode_utf8(&mut bytes).bytes() {
                pattern.push_str(&format!("%{byte:02X}"));
            }
        } else {
            pattern.push(c);
        }
    }
    pattern.push('$');
    pattern
}

/// Every operation's path of an imported document is a pattern agents accept: one they
/// refused would hold back the whole config of every agent. A path that is not is refused
/// with its place in the document.
pub(crate) fn check_imported_paths(source: &str, spec: &tollgate_openapi::ParsedSpec) -> Result<()> {
    for op in &spec.operations {
        let pattern = imported_pattern(&op.path);
        let problem = if pattern.chars().count() > MAX_PATTERN_CHARS {
            Some(format!("a path of at most {} characters", MAX_PATTERN_CHARS - 1))
        } else {
            Pattern::parse(&pattern)
                .err()
                .map(|e| format!("this path cannot be a mapping rule (at byte {}: {})", e.position, e.message))
        };
        if let Some(message) = problem {
            let pointer = format!("/paths/{}", tollgate_openapi::pointer_segment(&op.path));
            let line = tollgate_openapi::line_of_pointer(source, &pointer);
            return Err(Error::Import(tollgate_openapi::ImportError { pointer, line, message }));
        }
    }
    Ok(())
}

/// Checks a rule's method, pattern, delta and position, naming every problem; the method
/// upper-cased.
pub(crate) fn check_rule(rule: &NewRule) -> Result<String> {
    let mut problems = FieldProblems::default();
    let method = rule.http_method.trim().to_ascii_uppercase();
    if !RULE_METHODS.contains(&method.as_str()) {
        problems.add("http_method", format!("use one of {}", RULE_METHODS.join(", ")));
    }
    // The column's own check: refused here with the field named, not as a database error.
    if rule.pattern.chars().count() > MAX_PATTERN_CHARS {
        problems.add("pattern", format!("use at most {MAX_PATTERN_CHARS} characters"));
    } else if let Err(e) = Pattern::parse(&rule.pattern) {
        problems.add("pattern", e.to_string());
    }
    if !(1..=1_000_000).contains(&rule.delta) {
        problems.add("delta", "use 1 to 1,000,000");
    }
    // Bounded, so appending after the last rule (max + 1) cannot overflow.
    if rule.position.is_some_and(|p| !(0..=MAX_RULE_POSITION).contains(&p)) {
        problems.add("position", "use 0 to 1,000,000");
    }
    problems.into_result()?;
    Ok(method)
}

/// [`add_rule`] inside the caller's transaction.
pub async fn add_rule_in(tx: &mut sqlx::PgConnection, api: ApiId, rule: &NewRule, actor: &Actor) -> Result<Uuid> {
    let method = check_rule(rule)?;
    let metric = metric_id(tx, api, &rule.metric, "metric").await?;
    let position = match rule.position {
        Some(p) => p,
        None => {
            // Counted in bigint, so a rule stored at the very end of int cannot overflow it.
            let next = sqlx::query_scalar!(
                r#"SELECT coalesce(max(position)::bigint + 1, 0) AS "next!" FROM mapping_rules WHERE api_id = $1"#,
                api.0
            )
            .fetch_one(&mut *tx)
            .await?;
            i32::try_from(next)
                .map_err(|_| Error::invalid("position", "there is no room after the last rule; give a position"))?
        }
    };
    let id = Uuid::now_v7();
    sqlx::query!(
        "INSERT INTO mapping_rules (id, api_id, metric_id, http_method, pattern, delta, position, last) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        id,
        api.0,
        metric,
        method,
        rule.pattern,
        rule.delta,
        position,
        rule.last
    )
    .execute(&mut *tx)
    .await
    .map_err(|e| conflict_on_unique(e, "this API already has a rule for that method and pattern"))?;
    finish_edit(
        tx,
        api,
        actor,
        "mapping_rule.create",
        None,
        Some(json!({"method": method, "pattern": rule.pattern, "metric": rule.metric})),
    )
    .await?;
    Ok(id)
}

pub async fn delete_rule(pool: &PgPool, api: ApiId, id: Uuid, actor: &Actor) -> Result<()> {
    let mut tx = pool.begin().await?;
    delete_rule_in(&mut tx, api, id, actor).await?;
    super::mocks::refuse_stranded(&mut tx, api, "deleting this rule").await?;
    tx.commit().await?;
    Ok(())
}

/// [`delete_rule`] inside the caller's transaction.
pub async fn delete_rule_in(tx: &mut sqlx::PgConnection, api: ApiId, id: Uuid, actor: &Actor) -> Result<()> {
    let pattern =
        sqlx::query_scalar!("DELETE FROM mapping_rules WHERE id = $1 AND api_id = $2 RETURNING pattern", id, api.0)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Error::NotFound)?;
    finish_edit(tx, api, actor, "mapping_rule.delete", Some(json!({"pattern": pattern})), None).await?;
    Ok(())
}

/// What configuration as code may change about a metric after it exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricChanges {
    pub friendly_name: String,
    pub unit: String,
    pub description: String,
    /// The parent metric's system name; `None` for a top-level metric.
    pub parent: Option<String>,
}

/// Replaces a metric's names, unit, description and parent, in the caller's
/// transaction. `hits` stays top-level, and a metric cannot be its own ancestor.
pub async fn update_metric_in(
    tx: &mut sqlx::PgConnection,
    api: ApiId,
    system_name: &str,
    changes: &MetricChanges,
    actor: &Actor,
) -> Result<()> {
    if changes.friendly_name.trim().is_empty() || changes.friendly_name.chars().count() > MAX_FRIENDLY_NAME_CHARS {
        return Err(Error::invalid("friendly_name", format!("use 1 to {MAX_FRIENDLY_NAME_CHARS} characters")));
    }
    if changes.unit.trim().is_empty() || changes.unit.chars().count() > 64 {
        return Err(Error::invalid("unit", "use 1 to 64 characters"));
    }
    if system_name == "hits" && changes.parent.is_some() {
        return Err(Error::invalid("parent", "hits is the top-level metric and has no parent"));
    }
    let id = metric_id(tx, api, system_name, "system_name").await?;
    let parent_id = match changes.parent.as_deref() {
        Some(name) => {
            let parent = metric_id(tx, api, name, "parent").await?;
            // Walking up from the new parent must not reach this metric.
            let cycle = sqlx::query_scalar!(
                r#"WITH RECURSIVE up(id, parent_id) AS (
                     SELECT id, parent_id FROM metrics WHERE id = $1
                     UNION SELECT m.id, m.parent_id FROM metrics m JOIN up ON m.id = up.parent_id)
                   SELECT EXISTS (SELECT 1 FROM up WHERE id = $2) AS "cycle!""#,
                parent,
                id
            )
            .fetch_one(&mut *tx)
            .await?;
            if cycle {
                return Err(Error::invalid("parent", format!("{name} is {system_name} itself or one of its methods")));
            }
            Some(parent)
        }
        None => None,
    };
    sqlx::query!(
        "UPDATE metrics SET friendly_name = $2, unit = $3, description = $4, parent_id = $5 WHERE id = $1",
        id,
        changes.friendly_name.trim(),
        changes.unit.trim(),
        changes.description,
        parent_id
    )
    .execute(&mut *tx)
    .await?;
    let after = json!({"system_name": system_name, "friendly_name": changes.friendly_name, "unit": changes.unit, "parent": changes.parent});
    finish_edit(tx, api, actor, "metric.update", None, Some(after)).await
}

/// Replaces what a rule (named by method and pattern) counts, where it
/// stands and whether it came from an imported operation, in the caller's
/// transaction.
pub async fn update_rule_in(
    tx: &mut sqlx::PgConnection,
    api: ApiId,
    rule: &NewRule,
    imported: bool,
    actor: &Actor,
) -> Result<()> {
    let method = check_rule(rule)?;
    let position = rule.position.ok_or_else(|| Error::invalid("position", "give the rule's position"))?;
    let metric = metric_id(tx, api, &rule.metric, "metric").await?;
    let updated = sqlx::query!(
        "UPDATE mapping_rules SET metric_id = $4, delta = $5, position = $6, last = $7, imported = $8
         WHERE api_id = $1 AND http_method = $2 AND pattern = $3",
        api.0,
        method,
        rule.pattern,
        metric,
        rule.delta,
        position,
        rule.last,
        imported
    )
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(Error::NotFound);
    }
    let after = json!({"method": method, "pattern": rule.pattern, "metric": rule.metric, "delta": rule.delta, "position": position, "last": rule.last});
    finish_edit(tx, api, actor, "mapping_rule.update", None, Some(after)).await
}
