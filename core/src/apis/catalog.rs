//! The public API catalog: what developers may browse and subscribe to.

use sqlx::PgPool;

use super::products::{ApiSummary, Listing, summaries};
use super::types::ApiId;
use crate::Result;

/// Published and deprecated APIs whose name, description or slug contains `q`.
pub async fn search(pool: &PgPool, q: Option<&str>) -> Result<Vec<ApiSummary>> {
    let matching = q.map(str::trim).filter(|q| !q.is_empty()).map(crate::db::contains_pattern);
    summaries(pool, &Listing { listed_only: true, matching, ..Listing::default() }).await
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
