//! Creating an API product from a document `tollgate_openapi` has read,
//! and the summaries that list products.

use std::collections::HashSet;

use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use tollgate_openapi::ParsedSpec;
use uuid::Uuid;

use super::types::{ApiId, ApiState};
use crate::audit::{self, Actor, Entry};
use crate::error::{conflict_on_unique, taken_or_conflict};
use crate::sync::feed::{Entity, record_change};
use crate::{Error, Result};

/// What an admin chooses when importing; the rest comes from the document.
#[derive(Debug, Clone, Default)]
pub struct NewApi {
    /// Defaults to the document's title.
    pub name: Option<String>,
    /// Defaults to a slug of the name, made unique.
    pub slug: Option<String>,
    /// Defaults to `/<slug>`.
    pub base_path: Option<String>,
    pub upstream_url: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ApiSummary {
    pub id: ApiId,
    pub slug: String,
    pub name: String,
    pub description: String,
    pub state: ApiState,
    pub base_path: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub sunset_at: Option<OffsetDateTime>,
    pub operation_count: i32,
}

/// Lower-case letters, digits and single dashes, at most 64 characters.
fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug: String = slug.trim_matches('-').chars().take(56).collect();
    let slug = slug.trim_end_matches('-').to_owned();
    if slug.is_empty() { "api".to_owned() } else { slug }
}

fn validate_slug(slug: &str) -> Result<()> {
    let ok = (1..=64).contains(&slug.len())
        && slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "slug",
            "use 1 to 64 lower-case letters, digits and dashes, not starting or ending with a dash",
        ))
    }
}

pub(crate) fn validate_base_path(path: &str) -> Result<()> {
    let ok = path.starts_with('/')
        && path.len() <= 256
        && !path.contains("//")
        && path.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-_.~".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid("base_path", "use a path such as /weather: letters, digits, - _ . ~ and single slashes"))
    }
}

/// The same check as every other upstream URL: what gateways can use.
fn validate_upstream(url: &str) -> Result<()> {
    tollgate_protocol::upstream::check_url(url).map_err(|problem| Error::invalid("upstream_url", problem))
}

/// A metric name for an operation: its operationId, else method and path.
pub(super) fn method_system_name(method: &str, path: &str, operation_id: Option<&str>) -> String {
    let raw = match operation_id {
        Some(id) => id.to_owned(),
        None => format!("{}{}", method.to_ascii_lowercase(), path.replace(['{', '}'], "")),
    };
    let mut name: String =
        raw.chars().map(|c| if c.is_ascii_alphanumeric() || "_.-".contains(c) { c } else { '_' }).collect();
    name = name.trim_matches('_').chars().take(120).collect();
    if name.is_empty() { "operation".to_owned() } else { name }
}

async fn unique_slug(pool: &PgPool, base: &str) -> Result<String> {
    let taken: HashSet<String> = sqlx::query_scalar!("SELECT slug FROM api_products WHERE slug LIKE $1 || '%'", base)
        .fetch_all(pool)
        .await?
        .into_iter()
        .collect();
    if !taken.contains(base) {
        return Ok(base.to_owned());
    }
    (2..)
        .map(|n| format!("{base}-{n}"))
        .find(|candidate| !taken.contains(candidate))
        .ok_or_else(|| Error::Internal("no free slug".into()))
}

/// Creates a draft API product from an imported document: its first
/// version (holding the original text), the `hits` metric with one method
/// per operation, and one mapping rule per operation.
pub async fn create_from_spec(
    pool: &PgPool,
    source: &str,
    spec: &ParsedSpec,
    mut new: NewApi,
    actor: &Actor,
) -> Result<ApiSummary> {
    if new.slug.is_none() {
        let name = display_name(&new, spec);
        new.slug = Some(unique_slug(pool, &slugify(&name)).await?);
    }
    let mut tx = pool.begin().await?;
    let summary = create_in(&mut tx, source, spec, new, actor).await?;
    tx.commit().await?;
    Ok(summary)
}

/// The name an import gives the API: the admin's, else the document's title.
fn display_name(new: &NewApi, spec: &ParsedSpec) -> String {
    new.name.as_deref().map(str::trim).filter(|n| !n.is_empty()).map_or_else(|| spec.title.clone(), str::to_owned)
}

/// [`create_from_spec`] inside the caller's transaction (configuration as
/// code applies many changes in one). The slug must be given.
pub async fn create_in(
    tx: &mut sqlx::PgConnection,
    source: &str,
    spec: &ParsedSpec,
    new: NewApi,
    actor: &Actor,
) -> Result<ApiSummary> {
    super::rules::check_imported_paths(source, spec)?;
    let name = display_name(&new, spec);
    if name.chars().count() > 200 {
        return Err(Error::invalid("name", "use at most 200 characters"));
    }
    let slug = new.slug.ok_or_else(|| Error::invalid("slug", "an API needs a slug"))?;
    validate_slug(&slug)?;
    let base_path = new.base_path.unwrap_or_else(|| format!("/{slug}"));
    validate_base_path(&base_path)?;
    if let Some(url) = &new.upstream_url {
        validate_upstream(url)?;
    }

    let api = Uuid::now_v7();
    sqlx::query!(
        "INSERT INTO api_products (id, slug, name, description, base_path) VALUES ($1, $2, $3, $4, $5)",
        api,
        slug,
        name,
        spec.description,
        base_path
    )
    .execute(&mut *tx)
    .await
    .map_err(|e| {
        taken_or_conflict(
            e,
            "api_products_name_key",
            "name",
            || format!("another API is already called {}; choose another name", name.trim()),
            "an API with this slug or base path already exists",
        )
    })?;
    if let Some(url) = &new.upstream_url {
        sqlx::query!("INSERT INTO api_upstreams (id, api_id, url) VALUES ($1, $2, $3)", Uuid::now_v7(), api, url)
            .execute(&mut *tx)
            .await?;
    }
    let operation_count =
        i32::try_from(spec.operations.len()).map_err(|_| Error::invalid("spec", "too many operations"))?;
    let version = Uuid::now_v7();
    sqlx::query!(
        "INSERT INTO api_versions (id, api_id, number, spec_source, spec_format, spec_version, title, version_label, operation_count, imported_by)
         VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $8, $9)",
        version,
        api,
        source,
        spec.format.as_str(),
        spec.spec_version,
        spec.title,
        spec.version_label,
        operation_count,
        actor.user_id.map(|u| u.0)
    )
    .execute(&mut *tx)
    .await?;

    let hits = Uuid::now_v7();
    sqlx::query!(
        "INSERT INTO metrics (id, api_id, system_name, friendly_name, description) VALUES ($1, $2, 'hits', 'Hits', 'Every call to the API')",
        hits,
        api
    )
    .execute(&mut *tx)
    .await?;
    let mut used = HashSet::from(["hits".to_owned()]);
    for (position, op) in spec.operations.iter().enumerate() {
        let base = method_system_name(&op.method, &op.path, op.operation_id.as_deref());
        let system_name = if used.contains(&base) {
            (2..).map(|n| format!("{base}_{n}")).find(|c| !used.contains(c)).unwrap_or(base)
        } else {
            base
        };
        used.insert(system_name.clone());
        let metric = Uuid::now_v7();
        let friendly = op.summary.clone().unwrap_or_else(|| format!("{} {}", op.method, op.path));
        sqlx::query!(
            "INSERT INTO metrics (id, api_id, parent_id, system_name, friendly_name) VALUES ($1, $2, $3, $4, $5)",
            metric,
            api,
            hits,
            system_name,
            friendly.chars().take(200).collect::<String>()
        )
        .execute(&mut *tx)
        .await?;
        // Relative to the API's base path, anchored; checked before anything was written.
        let pattern = super::rules::imported_pattern(&op.path);
        sqlx::query!(
            "INSERT INTO mapping_rules (id, api_id, metric_id, http_method, pattern, position, imported) VALUES ($1, $2, $3, $4, $5, $6, true)",
            Uuid::now_v7(),
            api,
            metric,
            op.method,
            pattern,
            i32::try_from(position).unwrap_or(i32::MAX)
        )
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict_on_unique(e, &format!("the document repeats the operation {} {}", op.method, op.path)))?;
    }
    record_change(tx, Entity::Api, api, false, None).await?;
    let summary = ApiSummary {
        id: ApiId(api),
        slug,
        name,
        description: spec.description.clone(),
        state: ApiState::Draft,
        base_path,
        sunset_at: None,
        operation_count,
    };
    audit::record(
        tx,
        actor,
        Entry { action: "api.import", entity: "api", entity_id: Some(api), before: None, after: Some(json!(summary)) },
    )
    .await?;
    Ok(summary)
}

/// Which products `summaries` lists, and in what order.
#[derive(Debug, Default)]
pub(super) struct Listing<'a> {
    pub slug: Option<&'a str>,
    /// Only what developers may browse: published and deprecated APIs, and drafts
    /// previewed to `viewer`.
    pub listed_only: bool,
    /// The developer account browsing (`None`: a visitor).
    pub viewer: Option<crate::accounts::AccountId>,
    /// A LIKE pattern the name, description or slug must match.
    pub matching: Option<String>,
    /// Newest first; otherwise by name.
    pub newest_first: bool,
    /// All when `None`.
    pub limit: Option<i64>,
    pub offset: i64,
    /// Only the products after this one in the listing's order (keyset paging: the last id of
    /// the previous page). An unknown id leaves the listing empty.
    pub after: Option<ApiId>,
}

/// The one query behind every list of API products.
pub(super) async fn summaries(pool: &PgPool, listing: &Listing<'_>) -> Result<Vec<ApiSummary>> {
    let rows = sqlx::query!(
        r#"SELECT p.id, p.slug, p.name, p.description, p.state AS "state: ApiState", p.base_path, p.sunset_at,
                  coalesce((SELECT v.operation_count FROM api_versions v WHERE v.api_id = p.id
                            ORDER BY v.published_at IS NOT NULL DESC, v.number DESC LIMIT 1), 0) AS "operation_count!"
           FROM api_products p
           WHERE ($1::text IS NULL OR p.slug = $1)
             AND (NOT $2 OR api_open_to(p.id, p.state, $7))
             AND ($3::text IS NULL OR p.name ILIKE $3 OR p.description ILIKE $3 OR p.slug ILIKE $3)
             AND ($8::uuid IS NULL OR EXISTS (
                   SELECT 1 FROM api_products c
                   WHERE c.id = $8
                     AND (($4 AND (p.created_at < c.created_at
                                   OR (p.created_at = c.created_at AND (p.name, p.id) > (c.name, c.id))))
                          OR (NOT $4 AND (p.name, p.id) > (c.name, c.id)))))
           ORDER BY CASE WHEN $4 THEN p.created_at END DESC, p.name, p.id
           LIMIT $5 OFFSET $6"#,
        listing.slug,
        listing.listed_only,
        listing.matching,
        listing.newest_first,
        listing.limit,
        listing.offset,
        listing.viewer.map(|a| a.0),
        listing.after.map(|a| a.0)
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| ApiSummary {
            id: ApiId(r.id),
            slug: r.slug,
            name: r.name,
            description: r.description,
            state: r.state,
            base_path: r.base_path,
            sunset_at: r.sunset_at,
            operation_count: r.operation_count,
        })
        .collect())
}

pub async fn find_by_slug(pool: &PgPool, slug: &str) -> Result<Option<ApiSummary>> {
    Ok(summaries(pool, &Listing { slug: Some(slug), ..Listing::default() }).await?.pop())
}

/// Every API product, by name.
pub async fn list_apis(pool: &PgPool) -> Result<Vec<ApiSummary>> {
    summaries(pool, &Listing::default()).await
}
