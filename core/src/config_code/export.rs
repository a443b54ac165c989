//! Reading the provider's configuration into a [`Document`], in a stable
//! order: APIs by slug, metrics and plans by system name, rules by position,
//! limits by metric and period, tiers by metric and first unit, upstream
//! groups `default` first then by name, application routes by application,
//! mocked operations by metric. Nothing secret and nothing that changes by
//! itself (timestamps) is read.

use crate::Result;
use crate::apis::detail::get_in;
use crate::apis::{ApiId, ApiState, AuthMode, CompatibilityPolicy, KeyLocation};
use crate::plans::{PlanId, get_plan_in};

use super::document::{
    Amount, Api, ApplicationRoute, Auth, Billing, Document, FORMAT_VERSION, Group, Lifecycle, Limit, Metric, Mocks,
    Mode, Origin, Plan, Routing, Rule, Tier, Unmatched, is_default_split,
};

/// The configuration as it is now, read on the caller's connection (apply
/// reads it inside its transaction, before and after).
pub async fn export_in(conn: &mut sqlx::PgConnection) -> Result<Document> {
    let billing = crate::billing::settings::get_in(&mut *conn).await?;
    let billing = Billing {
        provider_name: billing.provider_name,
        provider_address: billing.provider_address,
        provider_tax_id: billing.provider_tax_id,
        tax_rate: Amount(billing.tax_rate),
        mode: billing.mode,
        payment_terms_days: billing.payment_terms_days,
        payment_instructions: billing.payment_instructions,
    };
    Ok(Document { version: FORMAT_VERSION, billing: Some(billing), apis: apis(conn, None).await? })
}

/// One API as export writes it, if it exists.
pub async fn api_in(conn: &mut sqlx::PgConnection, slug: &str) -> Result<Option<Api>> {
    Ok(apis(conn, Some(slug)).await?.pop())
}

async fn apis(conn: &mut sqlx::PgConnection, slug: Option<&str>) -> Result<Vec<Api>> {
    let rows = sqlx::query!(
        r#"SELECT id, slug, name, description, base_path, public_host, auth_mode AS "auth_mode: AuthMode",
                  key_location AS "key_location: KeyLocation", key_name, unmatched_is_404,
                  compatibility_policy AS "compatibility_policy: CompatibilityPolicy",
                  state AS "state: ApiState", sunset_at
           FROM api_products WHERE ($1::text IS NULL OR slug = $1) ORDER BY slug COLLATE "C""#,
        slug
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut apis = Vec::with_capacity(rows.len());
    for p in rows {
        let upstreams = get_in(conn, ApiId(p.id)).await?.upstreams;
        // The version the platform serves: the newest published, the newest before any is.
        let spec = sqlx::query_scalar!(
            "SELECT spec_source FROM api_versions WHERE api_id = $1
             ORDER BY (published_at IS NOT NULL) DESC, number DESC LIMIT 1",
            p.id
        )
        .fetch_optional(&mut *conn)
        .await?
        .unwrap_or_default();
        apis.push(Api {
            slug: p.slug,
            name: p.name,
            description: p.description,
            base_path: Some(p.base_path),
            public_host: p.public_host,
            upstreams,
            routing: routing(conn, p.id).await?,
            mocks: mocks(conn, p.id).await?,
            auth: Auth { mode: p.auth_mode, key_location: p.key_location, key_name: p.key_name },
            unmatched: if p.unmatched_is_404 { Unmatched::NotFound } else { Unmatched::Pass },
            compatibility_policy: p.compatibility_policy,
            lifecycle: Lifecycle { state: p.state, sunset_at: p.sunset_at },
            metrics: metrics(conn, p.id).await?,
            mapping_rules: rules(conn, p.id).await?,
            plans: plans(conn, p.id).await?,
            spec,
        });
    }
    Ok(apis)
}

async fn routing(conn: &mut sqlx::PgConnection, api: uuid::Uuid) -> Result<Routing> {
    let mut groups: Vec<Group> = sqlx::query!(
        r#"SELECT name, weight, urls FROM upstream_groups WHERE api_id = $1 ORDER BY name <> 'default', name COLLATE "C""#,
        api
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|g| Group { name: g.name, weight: u32::try_from(g.weight).unwrap_or(0), urls: g.urls })
    .collect();
    if is_default_split(&groups) {
        groups.clear();
    }
    let applications = sqlx::query!(
        "SELECT application_id, group_name FROM application_upstream_routes WHERE api_id = $1 ORDER BY application_id",
        api
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|r| ApplicationRoute { application: r.application_id, group: r.group_name })
    .collect();
    Ok(Routing { groups, applications })
}

/// Mock mode, with the operations named by method metric; a mocked metric
/// that no imported rule counts any more (its operation left the spec) is
/// not an operation the file could name, so it is left out.
async fn mocks(conn: &mut sqlx::PgConnection, api: uuid::Uuid) -> Result<Mocks> {
    let whole_api = sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM api_mocks WHERE api_id = $1) AS "e!""#, api)
        .fetch_one(&mut *conn)
        .await?;
    let operations = sqlx::query_scalar!(
        r#"SELECT m.system_name FROM operation_mocks o JOIN metrics m ON m.id = o.metric_id
         WHERE o.api_id = $1
           AND EXISTS (SELECT 1 FROM mapping_rules r WHERE r.metric_id = o.metric_id AND r.imported)
         ORDER BY m.system_name COLLATE "C""#,
        api
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(Mocks { whole_api, operations })
}

async fn metrics(conn: &mut sqlx::PgConnection, api: uuid::Uuid) -> Result<Vec<Metric>> {
    let rows = sqlx::query!(
        r#"SELECT m.system_name, p.system_name AS "parent?", m.friendly_name, m.unit, m.description
           FROM metrics m LEFT JOIN metrics p ON p.id = m.parent_id
           WHERE m.api_id = $1 ORDER BY m.system_name COLLATE "C""#,
        api
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Metric {
            system_name: r.system_name,
            parent: r.parent,
            friendly_name: r.friendly_name,
            unit: r.unit,
            description: r.description,
        })
        .collect())
}

async fn rules(conn: &mut sqlx::PgConnection, api: uuid::Uuid) -> Result<Vec<Rule>> {
    let rows = sqlx::query!(
        r#"SELECT r.http_method, r.pattern, m.system_name, r.delta, r.position, r.last, r.imported
         FROM mapping_rules r JOIN metrics m ON m.id = r.metric_id
         WHERE r.api_id = $1 ORDER BY r.position, r.http_method COLLATE "C", r.pattern COLLATE "C""#,
        api
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Rule {
            method: r.http_method,
            pattern: r.pattern,
            metric: r.system_name,
            delta: r.delta,
            position: Some(r.position),
            last: r.last,
            origin: if r.imported { Origin::Import } else { Origin::Manual },
        })
        .collect())
}

async fn plans(conn: &mut sqlx::PgConnection, api: uuid::Uuid) -> Result<Vec<Plan>> {
    let rows = sqlx::query!(
        r#"SELECT p.id, p.alert_levels, r.group_name AS "group_name?" FROM plans p
           LEFT JOIN plan_upstream_routes r ON r.plan_id = p.id
           WHERE p.api_id = $1 ORDER BY p.system_name COLLATE "C""#,
        api
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut plans = Vec::with_capacity(rows.len());
    for row in rows {
        let p = get_plan_in(conn, PlanId(row.id)).await?;
        let mut alert_levels: Vec<i64> = row.alert_levels.iter().map(|&l| i64::from(l)).collect();
        alert_levels.sort_unstable();
        alert_levels.dedup();
        plans.push(Plan {
            system_name: p.system_name,
            name: p.name,
            description: p.description,
            published: p.published,
            approval_required: p.approval_required,
            setup_fee: Amount(p.setup_fee),
            monthly_fee: Amount(p.monthly_fee),
            trial_days: p.trial_days,
            currency: p.currency,
            time_zone: p.time_zone,
            alert_levels,
            limits: p.limits.into_iter().map(|l| Limit { metric: l.metric, period: l.period, max: l.max }).collect(),
            pricing: p
                .pricing
                .into_iter()
                .map(|t| Tier { metric: t.metric, from: t.from, to: t.to, price_per_unit: Amount(t.price_per_unit) })
                .collect(),
            pricing_modes: p.pricing_modes.into_iter().map(|m| Mode { metric: m.metric, mode: m.mode }).collect(),
            upstream_group: row.group_name,
        });
    }
    Ok(plans)
}

/// The document as YAML text, with a header saying what it is.
pub fn to_yaml(doc: &Document) -> Result<String> {
    let body = yaml_serde::to_string(doc).map_err(|e| crate::Error::Internal(format!("writing YAML: {e}")))?;
    Ok(format!("{HEADER}{body}"))
}

const HEADER: &str = "# Tollgate configuration, written by `tollgate export`.\n\
                      # Apply it with `tollgate apply -f FILE` (see docs/CONFIG-AS-CODE.md).\n";
