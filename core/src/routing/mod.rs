//! Routing by consumer and by weight (issue 15): an API's named upstream groups, the
//! weighted split between them, and the plans and applications sent to one group.
//!
//! The `default` group always exists; its targets are the API's upstreams (edited with the
//! API), its weight lives here. Every change is audited and recorded in the change feed as
//! entity `routing` (the API's id) in the same transaction, so agents get it as a delta.

pub mod usage;

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;
use tollgate_protocol::routing::{MAX_GROUP_NAME_LEN, MAX_WEIGHT, is_group_name};
use uuid::Uuid;

use crate::apis::ApiId;
use crate::applications::ApplicationId;
use crate::audit::{self, Actor, Entry};
use crate::plans::PlanId;
use crate::sync::feed::{Entity, record_change};
use crate::{Error, FieldProblems, Result};

pub use tollgate_protocol::routing::DEFAULT_GROUP;

/// The most targets one group may have.
pub const MAX_TARGETS: usize = 20;

/// A checked group name (see [`is_group_name`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupName(String);

impl GroupName {
    pub fn parse(field: &'static str, name: &str) -> Result<GroupName> {
        if is_group_name(name) {
            Ok(GroupName(name.to_owned()))
        } else {
            Err(Error::invalid(
                field,
                format!(
                    "a group name is 1 to {MAX_GROUP_NAME_LEN} of a-z, 0-9, - and _, starting with a letter or digit"
                ),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks a weight given as a JSON number: a non-negative integer up to [`MAX_WEIGHT`].
pub fn parse_weight(field: impl Into<std::borrow::Cow<'static, str>>, value: &serde_json::Value) -> Result<i32> {
    match value.as_u64() {
        Some(weight) if weight <= u64::from(MAX_WEIGHT) => Ok(weight as i32),
        _ => Err(Error::invalid(field, format!("a weight is an integer from 0 to {MAX_WEIGHT}"))),
    }
}

/// Checks a group's targets: 1 to [`MAX_TARGETS`] distinct URLs every gateway can use
/// (`tollgate_protocol::upstream::check_url`).
pub fn parse_targets(urls: &[String]) -> Result<Vec<String>> {
    if urls.is_empty() || urls.len() > MAX_TARGETS {
        return Err(Error::invalid("urls", format!("a group has 1 to {MAX_TARGETS} target URLs")));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(urls.len());
    // Every bad target at once.
    let mut problems = FieldProblems::default();
    for (i, url) in urls.iter().enumerate() {
        if let Err(problem) = tollgate_protocol::upstream::check_url(url) {
            problems.add(format!("urls[{i}]"), problem);
        } else if seen.insert(url.as_str()) {
            out.push(url.clone());
        }
    }
    problems.into_result()?;
    Ok(out)
}

/// One group as admins see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupView {
    pub name: String,
    pub weight: i32,
    /// Targets; for `default`, the API's upstreams.
    pub urls: Vec<String>,
}

/// A plan or application sent to a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RouteView {
    pub id: Uuid,
    pub name: String,
    pub group: String,
}

/// An API's routing as admins see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RoutingView {
    pub groups: Vec<GroupView>,
    pub plans: Vec<RouteView>,
    pub applications: Vec<RouteView>,
}

/// Takes the API's row for a change of its groups: the split is checked against the
/// groups as they are, so two changes at once (each setting one group's weight to 0) must
/// not both pass against the other's old weight.
async fn lock_api(tx: &mut sqlx::PgConnection, api: ApiId) -> Result<()> {
    let found = sqlx::query_scalar!("SELECT 1 AS one FROM api_products WHERE id = $1 FOR NO KEY UPDATE", api.0)
        .fetch_optional(tx)
        .await?;
    found.map(|_| ()).ok_or(Error::NotFound)
}

async fn api_exists(conn: &mut sqlx::PgConnection, api: ApiId) -> Result<()> {
    let found =
        sqlx::query_scalar!("SELECT 1 AS one FROM api_products WHERE id = $1", api.0).fetch_optional(conn).await?;
    found.map(|_| ()).ok_or(Error::NotFound)
}

/// The API's groups (default first, then by name), plan routes and application exceptions.
pub async fn get(pool: &PgPool, api: ApiId) -> Result<RoutingView> {
    let mut conn = pool.acquire().await?;
    api_exists(&mut conn, api).await?;
    let defaults = sqlx::query_scalar!("SELECT url FROM api_upstreams WHERE api_id = $1 ORDER BY url", api.0)
        .fetch_all(&mut *conn)
        .await?;
    let groups = sqlx::query!(
        "SELECT name, weight, urls FROM upstream_groups WHERE api_id = $1 ORDER BY name <> 'default', name",
        api.0
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|g| GroupView {
        urls: if g.name == DEFAULT_GROUP { defaults.clone() } else { g.urls },
        name: g.name,
        weight: g.weight,
    })
    .collect();
    let plans = sqlx::query!(
        "SELECT p.id, p.name, r.group_name FROM plan_upstream_routes r JOIN plans p ON p.id = r.plan_id
         WHERE r.api_id = $1 ORDER BY p.name, p.id",
        api.0
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|r| RouteView { id: r.id, name: r.name, group: r.group_name })
    .collect();
    let applications = sqlx::query!(
        "SELECT a.id, a.name, r.group_name FROM application_upstream_routes r JOIN applications a ON a.id = r.application_id
         WHERE r.api_id = $1 ORDER BY a.name, a.id",
        api.0
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|r| RouteView { id: r.id, name: r.name, group: r.group_name })
    .collect();
    Ok(RoutingView { groups, plans, applications })
}

/// Creates or replaces a group other than `default` (whose targets are the API's upstreams:
/// only its weight is set here).
pub async fn put_group(
    pool: &PgPool,
    actor: &Actor,
    api: ApiId,
    name: &GroupName,
    weight: i32,
    urls: Option<Vec<String>>,
) -> Result<GroupView> {
    let mut tx = pool.begin().await?;
    put_group_in(&mut tx, actor, api, name, weight, urls).await?;
    tx.commit().await?;
    let view = get(pool, api).await?;
    view.groups.into_iter().find(|g| g.name == name.as_str()).ok_or(Error::NotFound)
}

/// [`put_group`] on the caller's transaction (configuration apply).
pub async fn put_group_in(
    tx: &mut sqlx::PgConnection,
    actor: &Actor,
    api: ApiId,
    name: &GroupName,
    weight: i32,
    urls: Option<Vec<String>>,
) -> Result<()> {
    let is_default = name.as_str() == DEFAULT_GROUP;
    let urls = match (is_default, urls) {
        (true, Some(_)) => {
            return Err(Error::invalid("urls", "the default group's targets are the API's upstream URLs"));
        }
        (true, None) => Vec::new(),
        (false, None) => return Err(Error::invalid("urls", "a group needs 1 or more target URLs")),
        (false, Some(urls)) => parse_targets(&urls)?,
    };
    lock_api(&mut *tx, api).await?;
    sqlx::query!(
        "INSERT INTO upstream_groups (api_id, name, weight, urls) VALUES ($1, $2, $3, $4)
         ON CONFLICT (api_id, name) DO UPDATE SET weight = EXCLUDED.weight, urls = EXCLUDED.urls",
        api.0,
        name.as_str(),
        weight,
        &urls
    )
    .execute(&mut *tx)
    .await?;
    check_split(&mut *tx, api).await?;
    changed(tx, actor, api, "routing.group_put", json!({"group": name.as_str(), "weight": weight, "urls": urls})).await
}

/// Removes a group; `default` stays, and a group that plans or applications use is a conflict.
pub async fn delete_group(pool: &PgPool, actor: &Actor, api: ApiId, name: &str) -> Result<()> {
    let mut tx = pool.begin().await?;
    delete_group_in(&mut tx, actor, api, name).await?;
    tx.commit().await?;
    Ok(())
}

/// [`delete_group`] on the caller's transaction (configuration apply).
pub async fn delete_group_in(tx: &mut sqlx::PgConnection, actor: &Actor, api: ApiId, name: &str) -> Result<()> {
    if name == DEFAULT_GROUP {
        return Err(Error::Conflict("the default group cannot be removed (set its weight to 0 instead)".into()));
    }
    lock_api(&mut *tx, api).await?;
    let used = sqlx::query_scalar!(
        r#"SELECT (SELECT count(*) FROM plan_upstream_routes WHERE api_id = $1 AND group_name = $2)
                + (SELECT count(*) FROM application_upstream_routes WHERE api_id = $1 AND group_name = $2) AS "n!""#,
        api.0,
        name
    )
    .fetch_one(&mut *tx)
    .await?;
    if used > 0 {
        return Err(Error::Conflict(format!("group {name} is used by {used} plan or application route(s)")));
    }
    let deleted = sqlx::query!("DELETE FROM upstream_groups WHERE api_id = $1 AND name = $2", api.0, name)
        .execute(&mut *tx)
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(Error::NotFound);
    }
    check_split(&mut *tx, api).await?;
    changed(tx, actor, api, "routing.group_delete", json!({"group": name})).await
}

/// Sets every group's weight at once (a canary step is one change). Groups not named keep
/// their weight.
pub async fn set_weights(pool: &PgPool, actor: &Actor, api: ApiId, weights: &BTreeMap<String, i32>) -> Result<()> {
    let mut tx = pool.begin().await?;
    lock_api(&mut tx, api).await?;
    // Every unknown group at once; nothing is kept unless all are known.
    let mut problems = FieldProblems::default();
    for (name, weight) in weights {
        let updated =
            sqlx::query!("UPDATE upstream_groups SET weight = $3 WHERE api_id = $1 AND name = $2", api.0, name, weight)
                .execute(&mut *tx)
                .await?;
        if updated.rows_affected() == 0 {
            problems.add(format!("weights.{name}"), format!("the API has no group {name:?}"));
        }
    }
    problems.into_result()?;
    check_split(&mut tx, api).await?;
    changed(&mut tx, actor, api, "routing.weights", json!({"weights": weights})).await?;
    tx.commit().await?;
    Ok(())
}

/// Sends a plan to a group of its API, or back to the split (`None`).
/// `within`: the API whose page the change came from; a plan of another API is refused.
pub async fn set_plan_route(
    pool: &PgPool,
    actor: &Actor,
    plan: PlanId,
    group: Option<&GroupName>,
    within: Option<ApiId>,
) -> Result<()> {
    let mut tx = pool.begin().await?;
    set_plan_route_in(&mut tx, actor, plan, group, within).await?;
    tx.commit().await?;
    Ok(())
}

/// [`set_plan_route`] on the caller's transaction (configuration apply).
pub async fn set_plan_route_in(
    tx: &mut sqlx::PgConnection,
    actor: &Actor,
    plan: PlanId,
    group: Option<&GroupName>,
    within: Option<ApiId>,
) -> Result<()> {
    let api = sqlx::query_scalar!("SELECT api_id FROM plans WHERE id = $1", plan.0)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound)?;
    if within.is_some_and(|within| within.0 != api) {
        return Err(Error::invalid("plan", "this plan belongs to another API"));
    }
    sqlx::query!("DELETE FROM plan_upstream_routes WHERE plan_id = $1", plan.0).execute(&mut *tx).await?;
    if let Some(group) = group {
        group_exists(&mut *tx, api, group).await?;
        sqlx::query!(
            "INSERT INTO plan_upstream_routes (plan_id, api_id, group_name) VALUES ($1, $2, $3)",
            plan.0,
            api,
            group.as_str()
        )
        .execute(&mut *tx)
        .await?;
    }
    let detail = json!({"plan_id": plan.0, "group": group.map(GroupName::as_str)});
    changed(tx, actor, ApiId(api), "routing.plan", detail).await
}

/// Sends one application to a group of its API whatever its plan says, or back (`None`);
/// `within` as for [`set_plan_route`].
pub async fn set_application_route(
    pool: &PgPool,
    actor: &Actor,
    app: ApplicationId,
    group: Option<&GroupName>,
    within: Option<ApiId>,
) -> Result<()> {
    let mut tx = pool.begin().await?;
    set_application_route_in(&mut tx, actor, app, group, within).await?;
    tx.commit().await?;
    Ok(())
}

/// [`set_application_route`] on the caller's transaction (configuration apply).
pub async fn set_application_route_in(
    tx: &mut sqlx::PgConnection,
    actor: &Actor,
    app: ApplicationId,
    group: Option<&GroupName>,
    within: Option<ApiId>,
) -> Result<()> {
    let api = sqlx::query_scalar!("SELECT api_id FROM applications WHERE id = $1", app.0)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound)?;
    if within.is_some_and(|within| within.0 != api) {
        return Err(Error::invalid("application", "this application subscribes to another API"));
    }
    sqlx::query!("DELETE FROM application_upstream_routes WHERE application_id = $1", app.0).execute(&mut *tx).await?;
    if let Some(group) = group {
        group_exists(&mut *tx, api, group).await?;
        sqlx::query!(
            "INSERT INTO application_upstream_routes (application_id, api_id, group_name) VALUES ($1, $2, $3)",
            app.0,
            api,
            group.as_str()
        )
        .execute(&mut *tx)
        .await?;
    }
    let detail = json!({"application_id": app.0, "group": group.map(GroupName::as_str)});
    changed(tx, actor, ApiId(api), "routing.application", detail).await
}

async fn group_exists(conn: &mut sqlx::PgConnection, api: Uuid, group: &GroupName) -> Result<()> {
    let found = sqlx::query_scalar!(
        "SELECT 1 AS one FROM upstream_groups WHERE api_id = $1 AND name = $2",
        api,
        group.as_str()
    )
    .fetch_optional(conn)
    .await?;
    found.map(|_| ()).ok_or_else(|| Error::invalid("group", format!("the API has no group {:?}", group.as_str())))
}

/// The weights of the API's groups must sum to more than 0.
async fn check_split(conn: &mut sqlx::PgConnection, api: ApiId) -> Result<()> {
    let total = sqlx::query_scalar!(
        r#"SELECT coalesce(sum(weight), 0)::bigint AS "total!" FROM upstream_groups WHERE api_id = $1"#,
        api.0
    )
    .fetch_one(conn)
    .await?;
    if total > 0 {
        Ok(())
    } else {
        Err(Error::invalid("weight", "the weights of the API's groups must sum to more than 0"))
    }
}

async fn changed(
    conn: &mut sqlx::PgConnection,
    actor: &Actor,
    api: ApiId,
    action: &str,
    after: serde_json::Value,
) -> Result<()> {
    record_change(&mut *conn, Entity::Routing, api.0, false, None).await?;
    audit::record(
        conn,
        actor,
        Entry { action, entity: "api", entity_id: Some(api.0), before: None, after: Some(after) },
    )
    .await
}
