//! Reads the agent-facing view of routing: an API's groups, split and overrides, for the
//! APIs whose routing says more than "all to `default`" (the others need none).

use std::collections::HashMap;

use tollgate_protocol::routing::DEFAULT_GROUP;
use tollgate_protocol::{RouteOverride, Routing, Upstream, UpstreamGroup};
use uuid::Uuid;

use crate::Result;

/// Routing of every API (`only: None`) or one; plain routing is left out.
pub(crate) async fn routing(conn: &mut sqlx::PgConnection, only: Option<Uuid>) -> Result<Vec<Routing>> {
    let groups = sqlx::query!(
        "SELECT g.api_id, g.name, g.weight, g.urls,
                coalesce((SELECT array_agg(u.url ORDER BY u.url) FROM api_upstreams u WHERE u.api_id = g.api_id), '{}') AS \"defaults!\"
         FROM upstream_groups g WHERE $1::uuid IS NULL OR g.api_id = $1 ORDER BY g.api_id, g.name <> 'default', g.name",
        only
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut by_api: Vec<Routing> = Vec::new();
    let mut index: HashMap<Uuid, usize> = HashMap::new();
    for g in groups {
        let mut urls = if g.name == DEFAULT_GROUP { g.defaults } else { g.urls };
        urls.retain(|url| super::load::usable_upstream(url, g.api_id));
        // A group without targets (the default group of an API without upstreams) can take
        // no traffic: agents are not told of it.
        if urls.is_empty() {
            continue;
        }
        let slot = *index.entry(g.api_id).or_insert_with(|| {
            by_api.push(Routing { api_id: g.api_id, groups: vec![], plans: vec![], applications: vec![] });
            by_api.len() - 1
        });
        by_api[slot].groups.push(UpstreamGroup {
            name: g.name,
            weight: u32::try_from(g.weight).unwrap_or(0),
            upstreams: urls.into_iter().map(|url| Upstream { url }).collect(),
        });
    }
    for r in sqlx::query!(
        "SELECT api_id, plan_id, group_name FROM plan_upstream_routes WHERE $1::uuid IS NULL OR api_id = $1 ORDER BY plan_id",
        only
    )
    .fetch_all(&mut *conn)
    .await?
    {
        if let Some(&slot) = index.get(&r.api_id) {
            by_api[slot].plans.push(RouteOverride { id: r.plan_id, group: r.group_name });
        }
    }
    for r in sqlx::query!(
        "SELECT api_id, application_id, group_name FROM application_upstream_routes
         WHERE $1::uuid IS NULL OR api_id = $1 ORDER BY application_id",
        only
    )
    .fetch_all(&mut *conn)
    .await?
    {
        if let Some(&slot) = index.get(&r.api_id) {
            by_api[slot].applications.push(RouteOverride { id: r.application_id, group: r.group_name });
        }
    }
    // Overrides naming a group that was left out (no targets) would not validate.
    for routing in &mut by_api {
        let names: Vec<String> = routing.groups.iter().map(|g| g.name.clone()).collect();
        routing.plans.retain(|r| names.contains(&r.group));
        routing.applications.retain(|r| names.contains(&r.group));
    }
    by_api.retain(|r| !r.is_plain() && r.groups.iter().any(|g| g.weight > 0));
    Ok(by_api)
}

/// Whether the API has an upstream group besides `default`.
pub(crate) async fn has_groups(conn: &mut sqlx::PgConnection, api: Uuid) -> Result<bool> {
    Ok(sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM upstream_groups WHERE api_id = $1 AND name <> 'default') AS "some!""#,
        api
    )
    .fetch_one(&mut *conn)
    .await?)
}
