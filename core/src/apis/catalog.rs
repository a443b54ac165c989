//! The public API catalog: what developers may browse and subscribe to. Published and
//! deprecated APIs, and drafts previewed to the viewer's account (`preview`), decided by the
//! SQL function `api_open_to`.

use sqlx::PgPool;

use super::products::{ApiSummary, Listing, summaries};
use super::types::ApiId;
use crate::Result;
use crate::accounts::AccountId;

/// APIs open to `viewer` (a visitor when `None`) whose name, description or slug contains `q`.
pub async fn search(pool: &PgPool, viewer: Option<AccountId>, q: Option<&str>) -> Result<Vec<ApiSummary>> {
    let matching = q.map(str::trim).filter(|q| !q.is_empty()).map(crate::db::contains_pattern);
    summaries(pool, &Listing { listed_only: true, viewer, matching, ..Listing::default() }).await
}

/// An API open to `viewer` by slug: published or deprecated, or a draft previewed to them;
/// other drafts and retired APIs are not found.
pub async fn open_to(pool: &PgPool, viewer: Option<AccountId>, slug: &str) -> Result<Option<ApiId>> {
    let id = sqlx::query_scalar!(
        "SELECT id FROM api_products WHERE slug = $1 AND api_open_to(id, state, $2)",
        slug,
        viewer.map(|a| a.0)
    )
    .fetch_optional(pool)
    .await?;
    Ok(id.map(ApiId))
}
