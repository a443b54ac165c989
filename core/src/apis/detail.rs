//! API products as admins see and change them: listing, detail and
//! settings. The lifecycle has its own file, `lifecycle`.

use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::products::{ApiSummary, Listing, summaries};
use super::types::{ApiId, ApiState, AuthMode, CompatibilityPolicy, KeyLocation};
use crate::audit::{self, Actor, Entry};
use crate::db::{COUNT_LIMIT, CappedCount, CountKey};
use crate::sync::feed::{Entity, record_change};
use crate::{Error, FieldProblems, Result};

#[derive(Debug, Clone, serde::Serialize)]
pub struct VersionInfo {
    pub number: i32,
    pub title: String,
    pub version_label: String,
    pub spec_version: String,
    pub operation_count: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub published_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ApiDetail {
    pub id: ApiId,
    pub slug: String,
    pub name: String,
    pub description: String,
    pub state: ApiState,
    pub base_path: String,
    pub public_host: Option<String>,
    pub upstreams: Vec<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub sunset_at: Option<OffsetDateTime>,
    /// When it was deprecated; only a deprecated API has it.
    #[serde(with = "time::serde::rfc3339::option")]
    pub deprecated_at: Option<OffsetDateTime>,
    pub auth_mode: AuthMode,
    pub key_location: KeyLocation,
    pub key_name: String,
    /// Whether new response enum values break clients.
    pub compatibility_policy: CompatibilityPolicy,
    pub versions: Vec<VersionInfo>,
    /// Applications subscribed, counted up to the limit: a popular API has millions.
    pub subscribers: CappedCount,
}

/// An API; its subscriber count, when it reached the limit a moment ago, is not taken again.
pub async fn get(pool: &PgPool, id: ApiId) -> Result<ApiDetail> {
    let count = CountKey::new(pool, &format!("api subscribers {}", id.0)).in_statement();
    let mut api = read(&mut *pool.acquire().await?, id, count.rows()).await?;
    api.subscribers = count.settle(api.subscribers);
    Ok(api)
}

/// An API without counting its subscribers (`subscribers` reads 0): for pages that do not
/// show the count, such as the portal's API page, where an API under the count limit would
/// otherwise be counted, up to 10,000 index entries, on every view.
pub async fn get_uncounted(pool: &PgPool, id: ApiId) -> Result<ApiDetail> {
    read(&mut *pool.acquire().await?, id, 0).await
}

/// [`get`] on the caller's connection or transaction, counted afresh.
pub async fn get_in(conn: &mut sqlx::PgConnection, id: ApiId) -> Result<ApiDetail> {
    read(conn, id, COUNT_LIMIT + 1).await
}

/// An API, its subscribers counted up to `count_up_to` rows.
async fn read(conn: &mut sqlx::PgConnection, id: ApiId, count_up_to: i64) -> Result<ApiDetail> {
    let p = sqlx::query!(
        r#"SELECT id, slug, name, description, state AS "state: ApiState", base_path, public_host, sunset_at, deprecated_at,
                  auth_mode AS "auth_mode: AuthMode", key_location AS "key_location: KeyLocation", key_name,
                  compatibility_policy AS "compatibility_policy: CompatibilityPolicy",
                  (SELECT count(*) FROM (SELECT 1 FROM applications a WHERE a.api_id = p.id AND a.state <> 'rejected' ORDER BY a.created_at DESC, a.id LIMIT $2) AS s) AS "subscribers!"
           FROM api_products p WHERE id = $1"#,
        id.0,
        count_up_to
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(Error::NotFound)?;
    let upstreams = sqlx::query_scalar!("SELECT url FROM api_upstreams WHERE api_id = $1 ORDER BY url", id.0)
        .fetch_all(&mut *conn)
        .await?;
    let versions = sqlx::query!(
        "SELECT number, title, version_label, spec_version, operation_count, created_at, published_at FROM api_versions WHERE api_id = $1 ORDER BY number DESC",
        id.0
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|v| VersionInfo {
        number: v.number,
        title: v.title,
        version_label: v.version_label,
        spec_version: v.spec_version,
        operation_count: v.operation_count,
        created_at: v.created_at,
        published_at: v.published_at,
    })
    .collect();
    Ok(ApiDetail {
        id: ApiId(p.id),
        slug: p.slug,
        name: p.name,
        description: p.description,
        state: p.state,
        base_path: p.base_path,
        public_host: p.public_host,
        upstreams,
        sunset_at: p.sunset_at,
        deprecated_at: p.deprecated_at,
        auth_mode: p.auth_mode,
        key_location: p.key_location,
        key_name: p.key_name,
        compatibility_policy: p.compatibility_policy,
        versions,
        subscribers: CappedCount::from_counted(p.subscribers),
    })
}

/// The document partners see, as imported: the newest published version, or the newest while
/// none is (a previewed draft). A staged version stays unseen until it is published.
pub async fn current_spec(pool: &PgPool, id: ApiId) -> Result<(String, String)> {
    let row = sqlx::query!(
        "SELECT spec_source, spec_format FROM api_versions WHERE api_id = $1
         ORDER BY published_at IS NOT NULL DESC, number DESC LIMIT 1",
        id.0
    )
    .fetch_optional(pool)
    .await?
    .ok_or(Error::NotFound)?;
    Ok((row.spec_source, row.spec_format))
}

/// The stored document of one version of an API, as imported; a version's document never changes.
pub async fn spec_of(pool: &PgPool, id: ApiId, number: i32) -> Result<String> {
    sqlx::query_scalar!("SELECT spec_source FROM api_versions WHERE api_id = $1 AND number = $2", id.0, number)
        .fetch_optional(pool)
        .await?
        .ok_or(Error::NotFound)
}

/// What an admin may change about an API after import.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct ApiChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub upstream_urls: Option<Vec<String>>,
    pub auth_mode: Option<AuthMode>,
    pub key_location: Option<KeyLocation>,
    /// The query parameter or header that carries the user key.
    pub key_name: Option<String>,
    /// Whether new response enum values break clients; staged reports are judged again.
    pub compatibility_policy: Option<CompatibilityPolicy>,
}

pub async fn update(pool: &PgPool, id: ApiId, changes: &ApiChanges, actor: &Actor) -> Result<()> {
    let mut tx = pool.begin().await?;
    update_in(&mut tx, id, changes, actor).await?;
    // Checked here, not in `update_in`: a configuration file sets upstreams and mocks in
    // separate steps of one transaction, and checks the result itself.
    if super::mocks::is_stranded(&mut tx, id).await? {
        return Err(Error::invalid(
            "upstream_urls",
            "the API serves traffic: keep at least one upstream (or mock its operations first)",
        ));
    }
    tx.commit().await?;
    Ok(())
}

/// [`update`] inside the caller's transaction.
pub async fn update_in(tx: &mut sqlx::PgConnection, id: ApiId, changes: &ApiChanges, actor: &Actor) -> Result<()> {
    let before = get_in(tx, id).await?;
    // Every field is checked, so one answer names every problem.
    let mut problems = FieldProblems::default();
    if let Some(name) = &changes.name
        && (name.trim().is_empty() || name.chars().count() > 200)
    {
        problems.add("name", "use 1 to 200 characters");
    }
    if let Some(urls) = &changes.upstream_urls {
        if urls.len() > 20 {
            problems.add("upstream_urls", "use at most 20 upstream targets");
        }
        for (i, url) in urls.iter().enumerate() {
            if let Err(problem) = tollgate_protocol::upstream::check_url(url) {
                problems.add(format!("upstream_urls[{i}]"), problem);
            }
        }
    }
    if let Some(name) = &changes.key_name
        && (name.is_empty()
            || name.len() > 64
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
    {
        problems.add("key_name", "use 1 to 64 letters, digits, '_' or '-'");
    }
    problems.into_result()?;
    sqlx::query!(
        "UPDATE api_products SET name = coalesce($2, name), description = coalesce($3, description),
                auth_mode = coalesce($4, auth_mode), key_location = coalesce($5, key_location),
                key_name = coalesce($6, key_name), compatibility_policy = coalesce($7, compatibility_policy),
                updated_at = now()
         WHERE id = $1",
        id.0,
        changes.name.as_deref().map(str::trim),
        changes.description.as_deref(),
        changes.auth_mode as Option<AuthMode>,
        changes.key_location as Option<KeyLocation>,
        changes.key_name.as_deref(),
        changes.compatibility_policy as Option<CompatibilityPolicy>
    )
    .execute(&mut *tx)
    .await
    .map_err(|e| {
        crate::error::taken_or_conflict(
            e,
            "api_products_name_key",
            "name",
            || {
                format!(
                    "another API is already called {}; choose another name",
                    changes.name.as_deref().unwrap_or("").trim()
                )
            },
            "the change conflicts with another API",
        )
    })?;
    if let Some(policy) = changes.compatibility_policy
        && policy != before.compatibility_policy
    {
        super::versions::rejudge_staged(tx, id, policy).await?;
    }
    if let Some(urls) = &changes.upstream_urls {
        sqlx::query!("DELETE FROM api_upstreams WHERE api_id = $1", id.0).execute(&mut *tx).await?;
        let mut seen = std::collections::HashSet::new();
        for url in urls.iter().filter(|u| seen.insert(u.as_str())) {
            sqlx::query!("INSERT INTO api_upstreams (id, api_id, url) VALUES ($1, $2, $3)", Uuid::now_v7(), id.0, url)
                .execute(&mut *tx)
                .await?;
        }
    }
    // Applications of an API that moves to app_id + app_key need their public app_id.
    if changes.auth_mode == Some(AuthMode::AppIdAppKey) {
        let apps = sqlx::query_scalar!("SELECT id FROM applications WHERE api_id = $1 AND app_id IS NULL", id.0)
            .fetch_all(&mut *tx)
            .await?;
        for app in apps {
            let app_id = Uuid::new_v4().simple().to_string()[..16].to_owned();
            sqlx::query!("UPDATE applications SET app_id = $2 WHERE id = $1", app, app_id).execute(&mut *tx).await?;
            record_change(tx, Entity::Application, app, false, None).await?;
        }
    }
    record_change(tx, Entity::Api, id.0, false, None).await?;
    audit::record(
        tx,
        actor,
        Entry {
            action: "api.update",
            entity: "api",
            entity_id: Some(id.0),
            before: Some(json!({"name": before.name, "description": before.description, "upstreams": before.upstreams, "auth_mode": before.auth_mode, "key_location": before.key_location, "key_name": before.key_name, "compatibility_policy": before.compatibility_policy})),
            after: Some(json!({"name": changes.name, "description": changes.description, "upstreams": changes.upstream_urls, "auth_mode": changes.auth_mode, "key_location": changes.key_location, "key_name": changes.key_name, "compatibility_policy": changes.compatibility_policy})),
        },
    )
    .await?;
    Ok(())
}

/// A page of API products, newest first, with the total count.
pub async fn list_page(pool: &PgPool, after: Option<ApiId>, limit: i64, offset: i64) -> Result<(Vec<ApiSummary>, i64)> {
    let total = sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM api_products"#).fetch_one(pool).await?;
    let page = Listing { newest_first: true, limit: Some(limit), offset, after, ..Listing::default() };
    Ok((summaries(pool, &page).await?, total))
}

/// Where the gateway serves an API: base path, host and what it does with
/// requests no rule matches. The admin UI sets them at import; configuration
/// as code changes them, in the caller's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    pub base_path: String,
    pub public_host: Option<String>,
    /// 404 for a request no mapping rule matches (else it is forwarded uncounted).
    pub unmatched_is_404: bool,
}

pub async fn set_routing_in(tx: &mut sqlx::PgConnection, id: ApiId, routing: &Routing, actor: &Actor) -> Result<()> {
    super::products::validate_base_path(&routing.base_path)?;
    if let Some(host) = &routing.public_host {
        // Gateways route by the host name of each listener they serve: a port here would
        // make them refuse the config.
        if host.contains(':') {
            return Err(Error::invalid("public_host", "use the host name without a port"));
        }
        let ok = (1..=253).contains(&host.len())
            && host.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !ok {
            return Err(Error::invalid("public_host", "use a lower-case host name (letters, digits, '.' and '-')"));
        }
    }
    let before = sqlx::query!("SELECT base_path, public_host, unmatched_is_404 FROM api_products WHERE id = $1", id.0)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound)?;
    sqlx::query!(
        "UPDATE api_products SET base_path = $2, public_host = $3, unmatched_is_404 = $4, updated_at = now() WHERE id = $1",
        id.0,
        routing.base_path,
        routing.public_host,
        routing.unmatched_is_404
    )
    .execute(&mut *tx)
    .await
    .map_err(|e| crate::error::conflict_on_unique(e, "another API is served on this host and base path"))?;
    record_change(tx, Entity::Api, id.0, false, None).await?;
    audit::record(
        tx,
        actor,
        Entry {
            action: "api.routing",
            entity: "api",
            entity_id: Some(id.0),
            before: Some(
                json!({"base_path": before.base_path, "public_host": before.public_host, "unmatched_is_404": before.unmatched_is_404}),
            ),
            after: Some(
                json!({"base_path": routing.base_path, "public_host": routing.public_host, "unmatched_is_404": routing.unmatched_is_404}),
            ),
        },
    )
    .await
}

/// Deletes an API nobody subscribes to and nobody owes anything on, with its versions,
/// metrics, rules and plans; agents drop it and its plans.
pub async fn delete(pool: &PgPool, id: ApiId, actor: &Actor) -> Result<()> {
    let mut tx = pool.begin().await?;
    delete_in(&mut tx, id, actor).await?;
    tx.commit().await?;
    Ok(())
}

/// [`delete`] in the caller's transaction.
pub async fn delete_in(tx: &mut sqlx::PgConnection, id: ApiId, actor: &Actor) -> Result<()> {
    let api = sqlx::query!(
        r#"SELECT slug, (SELECT count(*) FROM (SELECT 1 FROM applications a WHERE a.api_id = p.id AND a.state <> 'rejected' ORDER BY a.created_at DESC, a.id LIMIT $2) AS s) AS "applications!"
           FROM api_products p WHERE id = $1 FOR UPDATE"#,
        id.0,
        COUNT_LIMIT + 1
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound)?;
    if api.applications > 0 {
        return Err(Error::Conflict(format!(
            "{} application(s) use the API {}; move or delete them first",
            CappedCount::from_counted(api.applications),
            api.slug
        )));
    }
    let plans =
        sqlx::query!("SELECT id, name FROM plans WHERE api_id = $1 ORDER BY name", id.0).fetch_all(&mut *tx).await?;
    for plan in &plans {
        crate::plans::refuse_if_owed(tx, plan.id, &format!("its plan {}", plan.name)).await?;
    }
    sqlx::query!("DELETE FROM applications WHERE api_id = $1 AND state = 'rejected'", id.0).execute(&mut *tx).await?;
    let plans =
        sqlx::query_scalar!("DELETE FROM plans WHERE api_id = $1 RETURNING id", id.0).fetch_all(&mut *tx).await?;
    sqlx::query!("DELETE FROM api_products WHERE id = $1", id.0).execute(&mut *tx).await?;
    for plan in plans {
        record_change(tx, Entity::Plan, plan, true, None).await?;
    }
    record_change(tx, Entity::Api, id.0, true, None).await?;
    audit::record(
        tx,
        actor,
        Entry {
            action: "api.delete",
            entity: "api",
            entity_id: Some(id.0),
            before: Some(json!({"slug": api.slug})),
            after: None,
        },
    )
    .await
}
