//! New versions of an API: a re-import is staged with a change report
//! against the current version, reviewed, then published. Publishing adds
//! methods and rules for new operations, drops the rules of removed ones,
//! and emails subscribers when the version breaks clients.

use std::collections::HashSet;

use serde_json::json;
use sqlx::PgPool;
use tollgate_openapi::{ChangeReport, ParsedSpec, compare};
use uuid::Uuid;

use super::types::ApiId;
use crate::audit::{self, Actor, Entry};
use crate::mail::{enqueue, messages};
use crate::sync::feed::{Entity, record_change};
use crate::{Error, Result};

/// A staged version with its report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StagedVersion {
    pub number: i32,
    pub operation_count: i32,
    pub report: ChangeReport,
}

/// The newest version's document, parsed, to compare against.
async fn current(tx: &mut sqlx::PgConnection, api: ApiId) -> Result<(i32, ParsedSpec)> {
    // The newest published version, or the newest at all before the first publication.
    let row = sqlx::query!(
        "SELECT number, spec_source FROM api_versions WHERE api_id = $1
         ORDER BY (published_at IS NOT NULL) DESC, number DESC LIMIT 1",
        api.0
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound)?;
    let parsed = tollgate_openapi::parse(&row.spec_source)
        .map_err(|e| Error::Internal(format!("the stored spec no longer parses: {e}")))?;
    Ok((row.number, parsed))
}

/// Stores a new, unpublished version and its change report.
pub async fn stage(pool: &PgPool, api: ApiId, source: &str, spec: &ParsedSpec, actor: &Actor) -> Result<StagedVersion> {
    let mut tx = pool.begin().await?;
    sqlx::query!("SELECT id FROM api_products WHERE id = $1 FOR UPDATE", api.0)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound)?;
    let (_, old) = current(&mut tx, api).await?;
    let report = compare(&old.model, &spec.model);
    let number = sqlx::query_scalar!(
        r#"SELECT coalesce(max(number), 0) + 1 AS "next!" FROM api_versions WHERE api_id = $1"#,
        api.0
    )
    .fetch_one(&mut *tx)
    .await?;
    let operation_count =
        i32::try_from(spec.operations.len()).map_err(|_| Error::invalid("spec", "too many operations"))?;
    sqlx::query!(
        "INSERT INTO api_versions (id, api_id, number, spec_source, spec_format, spec_version, title, version_label, operation_count, change_report, imported_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        Uuid::now_v7(),
        api.0,
        number,
        source,
        spec.format.as_str(),
        spec.spec_version,
        spec.title,
        spec.version_label,
        operation_count,
        serde_json::to_value(&report).map_err(|e| Error::Internal(e.to_string()))?,
        actor.user_id.map(|u| u.0)
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "api.stage_version",
            entity: "api",
            entity_id: Some(api.0),
            before: None,
            after: Some(json!({"number": number, "breaking": report.breaking_count})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(StagedVersion { number, operation_count, report })
}

/// A staged or published version with its stored report.
pub async fn get(pool: &PgPool, api: ApiId, number: i32) -> Result<(StagedVersion, bool)> {
    let row = sqlx::query!(
        "SELECT number, operation_count, change_report, published_at IS NOT NULL AS \"published!\" FROM api_versions WHERE api_id = $1 AND number = $2",
        api.0,
        number
    )
    .fetch_optional(pool)
    .await?
    .ok_or(Error::NotFound)?;
    let report = row.change_report.and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
    Ok((StagedVersion { number: row.number, operation_count: row.operation_count, report }, row.published))
}

fn rule_pattern(path: &str) -> String {
    format!("{path}$")
}

/// Publishes a staged version.
pub async fn publish(pool: &PgPool, api: ApiId, number: i32, actor: &Actor, base_url: &str) -> Result<ChangeReport> {
    let mut tx = pool.begin().await?;
    let product = sqlx::query!("SELECT name, slug FROM api_products WHERE id = $1 FOR UPDATE", api.0)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound)?;
    let version = sqlx::query!("SELECT spec_source, change_report, published_at FROM api_versions WHERE api_id = $1 AND number = $2 FOR UPDATE", api.0, number)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound)?;
    if version.published_at.is_some() {
        return Err(Error::Conflict(format!("version {number} is already published")));
    }
    let spec = tollgate_openapi::parse(&version.spec_source)
        .map_err(|e| Error::Internal(format!("the staged spec no longer parses: {e}")))?;
    let (_, old) = current(&mut tx, api).await?;
    let new_ops: HashSet<(String, String)> =
        spec.operations.iter().map(|o| (o.method.clone(), o.path.clone())).collect();
    let hits = sqlx::query_scalar!("SELECT id FROM metrics WHERE api_id = $1 AND system_name = 'hits'", api.0)
        .fetch_one(&mut *tx)
        .await?;
    // Rules of operations that are gone stop counting; their metrics stay for history and limits.
    // An admin's own rule with the same method and pattern stays.
    for op in old.operations.iter().filter(|o| !new_ops.contains(&(o.method.clone(), o.path.clone()))) {
        sqlx::query!(
            "DELETE FROM mapping_rules WHERE api_id = $1 AND http_method = $2 AND pattern = $3 AND imported",
            api.0,
            op.method,
            rule_pattern(&op.path)
        )
        .execute(&mut *tx)
        .await?;
    }
    let mut position = sqlx::query_scalar!(
        r#"SELECT coalesce(max(position) + 1, 0) AS "next!" FROM mapping_rules WHERE api_id = $1"#,
        api.0
    )
    .fetch_one(&mut *tx)
    .await?;
    for op in &spec.operations {
        let exists = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM mapping_rules WHERE api_id = $1 AND http_method = $2 AND pattern = $3) AS "exists!""#,
            api.0,
            op.method,
            rule_pattern(&op.path)
        )
        .fetch_one(&mut *tx)
        .await?;
        if exists {
            continue;
        }
        let base = super::products::method_system_name(&op.method, &op.path, op.operation_id.as_deref());
        let metric = match sqlx::query_scalar!(
            "SELECT id FROM metrics WHERE api_id = $1 AND system_name = $2",
            api.0,
            base
        )
        .fetch_optional(&mut *tx)
        .await?
        {
            Some(id) => id,
            None => {
                let id = Uuid::now_v7();
                let friendly: String = op
                    .summary
                    .clone()
                    .unwrap_or_else(|| format!("{} {}", op.method, op.path))
                    .chars()
                    .take(200)
                    .collect();
                sqlx::query!("INSERT INTO metrics (id, api_id, parent_id, system_name, friendly_name) VALUES ($1, $2, $3, $4, $5)", id, api.0, hits, base, friendly)
                    .execute(&mut *tx)
                    .await?;
                id
            }
        };
        sqlx::query!(
            "INSERT INTO mapping_rules (id, api_id, metric_id, http_method, pattern, position, imported) VALUES ($1, $2, $3, $4, $5, $6, true)",
            Uuid::now_v7(),
            api.0,
            metric,
            op.method,
            rule_pattern(&op.path),
            position
        )
        .execute(&mut *tx)
        .await?;
        position += 1;
    }
    sqlx::query!("UPDATE api_versions SET published_at = now() WHERE api_id = $1 AND number = $2", api.0, number)
        .execute(&mut *tx)
        .await?;
    let report: ChangeReport = version.change_report.and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
    if report.breaking() {
        let owners = sqlx::query_scalar!(
            r#"SELECT DISTINCT u.email::text AS "email!" FROM applications ap
               JOIN memberships m ON m.account_id = ap.account_id AND m.role = 'owner'
               JOIN users u ON u.id = m.user_id WHERE ap.api_id = $1 AND ap.state <> 'rejected'"#,
            api.0
        )
        .fetch_all(&mut *tx)
        .await?;
        for email in owners {
            let mail = messages::breaking_version(
                &email,
                &product.name,
                number,
                &report.summary_lines(),
                base_url,
                &product.slug,
            );
            enqueue(&mut tx, &mail).await?;
        }
    }
    record_change(&mut tx, Entity::Api, api.0, false, None).await?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "api.publish_version",
            entity: "api",
            entity_id: Some(api.0),
            before: None,
            after: Some(json!({"number": number, "breaking": report.breaking_count})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(report)
}
