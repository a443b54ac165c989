//! Demo history for `tollgate dev`: an application that was live and used for a whole
//! month, so the billing run has something to invoice on a fresh install.

use time::OffsetDateTime;
use tollgate_protocol::period::TimeZoneName;
use uuid::Uuid;

use super::period::Month;
use crate::db::PgPool;
use crate::{Error, Result};

/// Makes `application` live since the start of `month` (when its only subscription
/// began later) and gives it at least `hits` units of `metric` in that month. Safe to
/// repeat: it never moves a start later, never lowers usage.
pub async fn seed_month_usage(pool: &PgPool, application: Uuid, metric: &str, month: Month, hits: i64) -> Result<()> {
    let app = sqlx::query!(
        "SELECT p.time_zone, m.id AS metric_id FROM applications a JOIN plans p ON p.id = a.plan_id
         JOIN metrics m ON m.api_id = a.api_id AND m.system_name = $2
         WHERE a.id = $1",
        application,
        metric
    )
    .fetch_optional(pool)
    .await?
    .ok_or(Error::NotFound)?;
    let tz = TimeZoneName::new(&app.time_zone).map_err(|e| Error::Internal(format!("plan time zone: {e}")))?;
    let start = month.in_zone(&tz).start;
    let start = OffsetDateTime::from_unix_timestamp(start.as_second())
        .map_err(|e| Error::Internal(format!("month start: {e}")))?;
    let mut tx = pool.begin().await?;
    // Only an application with one stretch of history is moved: a real history stays as it was.
    sqlx::query!(
        "UPDATE subscription_segments SET started_at = $2
         WHERE application_id = $1 AND ended_at IS NULL AND started_at > $2
           AND NOT EXISTS (SELECT 1 FROM subscription_segments s WHERE s.application_id = $1 AND s.ended_at IS NOT NULL)",
        application,
        start
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO usage_rollups (application_id, metric_id, granularity, bucket_start, hits, status_2xx)
         VALUES ($1, $2, 'month', $3, $4, $4)
         ON CONFLICT (application_id, metric_id, granularity, bucket_start)
         DO UPDATE SET hits = GREATEST(usage_rollups.hits, EXCLUDED.hits),
                       status_2xx = GREATEST(usage_rollups.status_2xx, EXCLUDED.status_2xx)",
        application,
        app.metric_id,
        start,
        hits
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}
