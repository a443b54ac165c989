//! New versions of an API: a re-import is staged with a change report
//! against the current version, reviewed, then published. Publishing adds
//! methods and rules for new operations, drops the rules of removed ones,
//! and emails subscribers when the version breaks clients.
//!
//! A small comparison is made while staging; a large one (see
//! `compare_inline`) is left to a background job (`staging`), and the
//! version shows its progress until the report is ready.

use std::collections::HashSet;

use serde_json::json;
use sqlx::PgPool;
use tollgate_openapi::{ChangeReport, ParsedSpec, compare_with};
use uuid::Uuid;

use super::types::{ApiId, CompatibilityPolicy, ReportState};
use crate::audit::{self, Actor, Entry};
use crate::mail::{enqueue, messages};
use crate::sync::feed::{Entity, record_change};
use crate::{Error, Result};

/// Operations (both versions together) up to which a comparison is made
/// while staging; past it, or past `INLINE_MAX_BYTES`, a job makes it.
pub const INLINE_MAX_OPERATIONS: i64 = 400;

/// Document text (both versions together) up to which a comparison is made
/// while staging.
pub const INLINE_MAX_BYTES: i64 = 1024 * 1024;

/// How far a background comparison has got.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Progress {
    /// `queued`, `reading`, `comparing` or `saving`.
    pub phase: String,
    /// Operations compared so far, of `total`.
    pub done: i32,
    pub total: i32,
}

/// A staged or published version with its change report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VersionReport {
    pub number: i32,
    pub operation_count: i32,
    pub published: bool,
    /// The version the report compares against.
    pub base_number: Option<i32>,
    pub state: ReportState,
    /// While the report is being made in the background.
    pub progress: Option<Progress>,
    /// Why the report could not be made.
    pub error: Option<String>,
    /// Empty until `state` is ready.
    pub report: ChangeReport,
    /// The API's policy now (the report says which one judged it).
    pub policy: CompatibilityPolicy,
}

impl VersionReport {
    pub fn ready(&self) -> bool {
        self.state == ReportState::Ready
    }
}

/// Whether comparing two documents is small enough to do while staging.
pub fn compare_inline(operations: i64, bytes: i64) -> bool {
    operations <= INLINE_MAX_OPERATIONS && bytes <= INLINE_MAX_BYTES
}

/// Stores a new, unpublished version and its change report, or queues the
/// report when the comparison is large.
pub async fn stage(pool: &PgPool, api: ApiId, source: &str, spec: &ParsedSpec, actor: &Actor) -> Result<VersionReport> {
    let mut tx = pool.begin().await?;
    let number = stage_in(&mut tx, api, source, spec, false, actor).await?;
    tx.commit().await?;
    get(pool, api, number).await
}

/// [`stage`] inside the caller's transaction; its number. With `inline`,
/// the report is made now whatever its size (for a caller that publishes
/// in the same transaction).
pub async fn stage_in(
    tx: &mut sqlx::PgConnection,
    api: ApiId,
    source: &str,
    spec: &ParsedSpec,
    inline: bool,
    actor: &Actor,
) -> Result<i32> {
    super::rules::check_imported_paths(source, spec)?;
    let policy = sqlx::query_scalar!(
        r#"SELECT compatibility_policy AS "policy: CompatibilityPolicy" FROM api_products WHERE id = $1 FOR UPDATE"#,
        api.0
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound)?;
    // The newest published version, or the newest at all before the first publication.
    let base = sqlx::query!(
        r#"SELECT number, operation_count, octet_length(spec_source) AS "bytes!" FROM api_versions WHERE api_id = $1
           ORDER BY (published_at IS NOT NULL) DESC, number DESC LIMIT 1"#,
        api.0
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound)?;
    let number = sqlx::query_scalar!(
        r#"SELECT coalesce(max(number), 0) + 1 AS "next!" FROM api_versions WHERE api_id = $1"#,
        api.0
    )
    .fetch_one(&mut *tx)
    .await?;
    let operation_count =
        i32::try_from(spec.operations.len()).map_err(|_| Error::invalid("spec", "too many operations"))?;
    let inline = inline
        || compare_inline(
            i64::from(base.operation_count) + i64::from(operation_count),
            i64::from(base.bytes) + source.len() as i64,
        );
    let report = if inline {
        let old = sqlx::query_scalar!(
            "SELECT spec_source FROM api_versions WHERE api_id = $1 AND number = $2",
            api.0,
            base.number
        )
        .fetch_one(&mut *tx)
        .await?;
        let old = tollgate_openapi::reparse(&old)
            .map_err(|e| Error::Internal(format!("the stored spec no longer parses: {e}")))?;
        let report = compare_with(&old.model, &spec.model, policy.engine(), &mut |_, _| {});
        Some(serde_json::to_value(&report).map_err(|e| Error::Internal(e.to_string()))?)
    } else {
        None
    };
    let breaking = report.as_ref().and_then(|r| r.get("breaking_count").cloned());
    sqlx::query!(
        "INSERT INTO api_versions (id, api_id, number, spec_source, spec_format, spec_version, title, version_label, operation_count, change_report, base_number, imported_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        Uuid::now_v7(),
        api.0,
        number,
        source,
        spec.format.as_str(),
        spec.spec_version,
        spec.title,
        spec.version_label,
        operation_count,
        report,
        base.number,
        actor.user_id.map(|u| u.0)
    )
    .execute(&mut *tx)
    .await?;
    if !inline {
        sqlx::query!(
            "INSERT INTO staging_jobs (id, api_id, version_number, base_number) VALUES ($1, $2, $3, $4)",
            Uuid::now_v7(),
            api.0,
            number,
            base.number
        )
        .execute(&mut *tx)
        .await?;
    }
    audit::record(
        &mut *tx,
        actor,
        Entry {
            action: "api.stage_version",
            entity: "api",
            entity_id: Some(api.0),
            before: None,
            after: Some(json!({"number": number, "base": base.number, "breaking": breaking, "background": !inline})),
        },
    )
    .await?;
    Ok(number)
}

/// A staged or published version with its stored report (or how far the
/// background comparison has got).
pub async fn get(pool: &PgPool, api: ApiId, number: i32) -> Result<VersionReport> {
    let row = sqlx::query!(
        r#"SELECT v.number, v.operation_count, v.change_report, v.base_number, v.published_at IS NOT NULL AS "published!",
                  p.compatibility_policy AS "policy: CompatibilityPolicy",
                  j.state AS "job_state?: ReportState", j.phase AS "phase?", j.done AS "done?", j.total AS "total?", j.error
           FROM api_versions v JOIN api_products p ON p.id = v.api_id
           LEFT JOIN staging_jobs j ON j.api_id = v.api_id AND j.version_number = v.number
           WHERE v.api_id = $1 AND v.number = $2"#,
        api.0,
        number
    )
    .fetch_optional(pool)
    .await?
    .ok_or(Error::NotFound)?;
    let report = match row.change_report {
        Some(stored) => Some(
            ChangeReport::from_stored(stored)
                .map_err(|e| Error::Internal(format!("the stored change report does not read: {e}")))?,
        ),
        None => None,
    };
    let state = match (&report, row.job_state) {
        (Some(_), _) | (None, None) => ReportState::Ready,
        (None, Some(state)) => state,
    };
    let progress = match state {
        ReportState::Queued | ReportState::Running => Some(Progress {
            phase: row.phase.unwrap_or_else(|| "queued".into()),
            done: row.done.unwrap_or(0),
            total: row.total.unwrap_or(0),
        }),
        _ => None,
    };
    Ok(VersionReport {
        number: row.number,
        operation_count: row.operation_count,
        published: row.published,
        base_number: row.base_number,
        state,
        progress,
        error: row.error.filter(|_| state == ReportState::Failed),
        report: report.unwrap_or_default(),
        policy: row.policy,
    })
}

/// Judges the reports of unpublished versions again under the API's new
/// policy (published ones keep the report their subscribers were sent).
pub(crate) async fn rejudge_staged(tx: &mut sqlx::PgConnection, api: ApiId, policy: CompatibilityPolicy) -> Result<()> {
    let staged = sqlx::query!(
        "SELECT number, change_report AS \"report!\" FROM api_versions
         WHERE api_id = $1 AND published_at IS NULL AND change_report IS NOT NULL FOR UPDATE",
        api.0
    )
    .fetch_all(&mut *tx)
    .await?;
    for version in staged {
        let mut report = ChangeReport::from_stored(version.report)
            .map_err(|e| Error::Internal(format!("the stored change report does not read: {e}")))?;
        report.apply_policy(policy.engine());
        let value = serde_json::to_value(&report).map_err(|e| Error::Internal(e.to_string()))?;
        sqlx::query!(
            "UPDATE api_versions SET change_report = $3 WHERE api_id = $1 AND number = $2",
            api.0,
            version.number,
            value
        )
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// The newest published version's document (the newest at all before the
/// first publication), to publish against.
async fn current(tx: &mut sqlx::PgConnection, api: ApiId) -> Result<ParsedSpec> {
    let source = sqlx::query_scalar!(
        "SELECT spec_source FROM api_versions WHERE api_id = $1
         ORDER BY (published_at IS NOT NULL) DESC, number DESC LIMIT 1",
        api.0
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound)?;
    tollgate_openapi::reparse(&source).map_err(|e| Error::Internal(format!("the stored spec no longer parses: {e}")))
}

/// Changes an email to subscribers lists (breaking first); the rest are a link away.
pub const TOP_CHANGES_MAILED: usize = 10;

fn rule_pattern(path: &str) -> String {
    super::rules::imported_pattern(path)
}

/// Publishes a staged version.
pub async fn publish(pool: &PgPool, api: ApiId, number: i32, actor: &Actor, base_url: &str) -> Result<ChangeReport> {
    let mut tx = pool.begin().await?;
    let report = publish_in(&mut tx, api, number, actor, base_url).await?;
    super::mocks::refuse_stranded(&mut tx, api, "publishing this version").await?;
    tx.commit().await?;
    Ok(report)
}

/// [`publish`] inside the caller's transaction.
pub async fn publish_in(
    tx: &mut sqlx::PgConnection,
    api: ApiId,
    number: i32,
    actor: &Actor,
    base_url: &str,
) -> Result<ChangeReport> {
    let product = sqlx::query!("SELECT name, slug FROM api_products WHERE id = $1 FOR UPDATE", api.0)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound)?;
    let version = sqlx::query!("SELECT spec_source, change_report, published_at, base_number FROM api_versions WHERE api_id = $1 AND number = $2 FOR UPDATE", api.0, number)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound)?;
    if version.published_at.is_some() {
        return Err(Error::Conflict(format!("version {number} is already published")));
    }
    // The report (and the mail it decides) holds only against the version it compared with:
    // publishing over another would change what clients get without telling them.
    let published = sqlx::query_scalar!(
        "SELECT max(number) FROM api_versions WHERE api_id = $1 AND published_at IS NOT NULL",
        api.0
    )
    .fetch_one(&mut *tx)
    .await?;
    if let Some(published) = published
        && version.base_number != Some(published)
    {
        return Err(Error::Conflict(if number < published {
            format!(
                "version {number} is older than the published version {published}; stage its document again to publish it as a new version"
            )
        } else {
            format!(
                "version {number}'s change report compares it with version {}, but version {published} is published now; stage the document again for a report against it",
                version.base_number.map_or_else(|| "none".to_owned(), |n| n.to_string())
            )
        }));
    }
    if version.change_report.is_none() {
        let job = sqlx::query!(
            r#"SELECT state AS "state: ReportState", error FROM staging_jobs WHERE api_id = $1 AND version_number = $2"#,
            api.0,
            number
        )
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(job) = job {
            return Err(Error::Conflict(match (job.state, job.error) {
                (ReportState::Failed, Some(error)) => {
                    format!(
                        "the change report of version {number} could not be made ({error}); stage the document again"
                    )
                }
                _ => format!("the change report of version {number} is still being made; publish it once it is ready"),
            }));
        }
    }
    let spec = tollgate_openapi::reparse(&version.spec_source)
        .map_err(|e| Error::Internal(format!("the staged spec no longer parses: {e}")))?;
    let old = current(tx, api).await?;
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
        // A metric of that name is taken over only from an operation that is gone (its limits
        // and prices carry over to its successor); one an operation still counts on, or
        // `hits`, is not shared: the name gets a suffix, as on the first import.
        let mut name = base.clone();
        let mut suffix = 1;
        let reused = loop {
            let found = sqlx::query!(
                r#"SELECT m.id, EXISTS (SELECT 1 FROM mapping_rules r WHERE r.metric_id = m.id) AS "counted!"
                   FROM metrics m WHERE m.api_id = $1 AND m.system_name = $2"#,
                api.0,
                name
            )
            .fetch_optional(&mut *tx)
            .await?;
            match found {
                Some(found) if name != "hits" && !found.counted => break Some(found.id),
                Some(_) => {
                    suffix += 1;
                    name = format!("{base}_{suffix}");
                }
                None => break None,
            }
        };
        let metric = match reused {
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
                sqlx::query!("INSERT INTO metrics (id, api_id, parent_id, system_name, friendly_name) VALUES ($1, $2, $3, $4, $5)", id, api.0, hits, name, friendly)
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
    let report: ChangeReport =
        version.change_report.and_then(|v| ChangeReport::from_stored(v).ok()).unwrap_or_default();
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
                &report.summary_lines(TOP_CHANGES_MAILED),
                base_url,
                &product.slug,
            );
            enqueue(tx, &mail).await?;
        }
    }
    record_change(tx, Entity::Api, api.0, false, None).await?;
    // Mocked answers come from the current version.
    super::mocks::touch(tx, api.0).await?;
    audit::record(
        tx,
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
    Ok(report)
}
