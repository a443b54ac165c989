//! The public API catalog: what developers may browse and subscribe to.

use sqlx::PgPool;

use super::products::ApiSummary;
use super::types::{ApiId, ApiState};
use crate::Result;

/// A catalog entry with its description, for the list and search.
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    pub api: ApiSummary,
    pub description: String,
    pub sunset: Option<String>,
}

/// Published and deprecated APIs whose name or description contains `q`.
pub async fn search(pool: &PgPool, q: Option<&str>) -> Result<Vec<CatalogEntry>> {
    let pattern = q.map(str::trim).filter(|q| !q.is_empty()).map(crate::db::contains_pattern);
    let rows = sqlx::query!(
        r#"SELECT p.id, p.slug, p.name, p.description, p.state AS "state: ApiState", p.base_path, p.sunset_at,
                  coalesce((SELECT v.operation_count FROM api_versions v WHERE v.api_id = p.id ORDER BY v.number DESC LIMIT 1), 0) AS "operation_count!"
           FROM api_products p
           WHERE p.state IN ('published', 'deprecated') AND ($1::text IS NULL OR p.name ILIKE $1 OR p.description ILIKE $1 OR p.slug ILIKE $1)
           ORDER BY p.name"#,
        pattern
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| CatalogEntry {
            api: ApiSummary {
                id: ApiId(r.id),
                slug: r.slug,
                name: r.name,
                state: r.state,
                base_path: r.base_path,
                operation_count: r.operation_count,
            },
            description: r.description,
            sunset: r.sunset_at.map(|s| s.date().to_string()),
        })
        .collect())
}

/// A published or deprecated API by slug; drafts and retired APIs are not found.
pub async fn published(pool: &PgPool, slug: &str) -> Result<Option<ApiId>> {
    let id = sqlx::query_scalar!(
        "SELECT id FROM api_products WHERE slug = $1 AND state IN ('published', 'deprecated')",
        slug
    )
    .fetch_optional(pool)
    .await?;
    Ok(id.map(ApiId))
}
