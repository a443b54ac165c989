//! Usage intake from agents: idempotent batches rolled up by minute, hour,
//! day and month (UTC buckets).
//!
//! A batch is checked before anything is counted: minutes must fall in the
//! window an agent can honestly report ([`MAX_AGE`] back, [`MAX_AHEAD`]
//! ahead of the server's clock) and counts must be below [`MAX_ENTRY_COUNT`];
//! otherwise the whole batch is refused as invalid (the agent drops it and
//! says so) rather than moving rollups and "last used" to another century.

pub mod muting;
pub mod report;

use std::collections::HashSet;

use sqlx::PgPool;
use time::OffsetDateTime;
use tollgate_protocol::{StatusClass, UsageAck, UsageBatch};
use uuid::Uuid;

use crate::gateways::GatewayId;
use crate::stored::stored_enum;
use crate::{Error, Result};

stored_enum! {
    /// The size of a rollup's bucket.
    pub enum Granularity as "rollup_granularity" {
        Minute = "minute",
        Hour = "hour",
        Day = "day",
        Month = "month",
    }
}

/// How old a reported minute may be: an agent cut off from the server spools its
/// usage on disk and delivers it when the server is back, up to this long after.
pub const MAX_AGE: time::Duration = time::Duration::days(35);
/// How far ahead of the server's clock a reported minute may be (agents' clock skew).
pub const MAX_AHEAD: time::Duration = time::Duration::minutes(5);
/// The most one entry may count, and the most requests in one of its latency
/// buckets: far above what one agent serves in a minute, far below what
/// overflows the rollups.
pub const MAX_ENTRY_COUNT: u64 = 1_000_000_000_000;

/// The bounds above, checked at `now`. Errors name the offending value.
fn check_bounds(batch: &UsageBatch, now: OffsetDateTime) -> Result<()> {
    let (earliest, latest) = ((now - MAX_AGE).unix_timestamp(), (now + MAX_AHEAD).unix_timestamp());
    let check_minute = |at: String, minute: i64| {
        if minute < earliest || minute > latest {
            let when = OffsetDateTime::from_unix_timestamp(minute)
                .ok()
                .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
                .unwrap_or_else(|| format!("{minute} s after 1970"));
            return Err(Error::invalid(
                at,
                format!(
                    "{when} is outside the accepted window ({} days back to {} minutes ahead of the server's clock)",
                    MAX_AGE.whole_days(),
                    MAX_AHEAD.whole_minutes()
                ),
            ));
        }
        Ok(())
    };
    let check_count = |at: String, count: u64| {
        if count > MAX_ENTRY_COUNT {
            return Err(Error::invalid(at, format!("{count} is more than the maximum of {MAX_ENTRY_COUNT}")));
        }
        Ok(())
    };
    for (i, entry) in batch.entries.iter().enumerate() {
        check_minute(format!("entries[{i}].minute"), entry.minute)?;
        check_count(format!("entries[{i}].count"), entry.count)?;
        for (j, &requests) in entry.latency_buckets.iter().enumerate() {
            check_count(format!("entries[{i}].latency_buckets[{j}]"), requests)?;
        }
    }
    for (i, used) in batch.credentials_used.iter().enumerate() {
        check_minute(format!("credentials_used[{i}].minute"), used.minute)?;
    }
    Ok(())
}

impl Granularity {
    /// The start of the bucket holding `minute`.
    fn bucket(self, minute: OffsetDateTime) -> OffsetDateTime {
        let at_minute = minute.replace_second(0).unwrap_or(minute).replace_nanosecond(0).unwrap_or(minute);
        match self {
            Granularity::Minute => at_minute,
            Granularity::Hour => at_minute.replace_minute(0).unwrap_or(at_minute),
            Granularity::Day => at_minute.replace_time(time::Time::MIDNIGHT),
            Granularity::Month => at_minute.replace_time(time::Time::MIDNIGHT).replace_day(1).unwrap_or(at_minute),
        }
    }
}

/// Counts a batch exactly once: the batch id is recorded in the same
/// transaction as the rollups, so a replay after a lost ack changes nothing.
/// Entries for applications or metrics deleted since are dropped.
pub async fn ingest(pool: &PgPool, gateway: GatewayId, batch: &UsageBatch) -> Result<UsageAck> {
    batch.validate().map_err(|e| Error::invalid("batch", e.to_string()))?;
    check_bounds(batch, OffsetDateTime::now_utc())?;
    let mut tx = pool.begin().await?;
    let entry_count = i32::try_from(batch.entries.len()).unwrap_or(i32::MAX);
    let inserted = sqlx::query!(
        "INSERT INTO usage_batches (id, gateway_id, entry_count) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
        batch.id,
        gateway.0,
        entry_count
    )
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        tx.commit().await?;
        return Ok(UsageAck { batch_id: batch.id, duplicate: true });
    }
    let apps: Vec<Uuid> = batch.entries.iter().map(|e| e.application_id).collect::<HashSet<_>>().into_iter().collect();
    let metrics: Vec<Uuid> = batch.entries.iter().map(|e| e.metric).collect::<HashSet<_>>().into_iter().collect();
    let known_apps: HashSet<Uuid> = sqlx::query_scalar!("SELECT id FROM applications WHERE id = ANY($1)", &apps)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
    let known_metrics: HashSet<Uuid> = sqlx::query_scalar!("SELECT id FROM metrics WHERE id = ANY($1)", &metrics)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();

    for &granularity in Granularity::ALL {
        let (mut app_ids, mut metric_ids, mut buckets) = (Vec::new(), Vec::new(), Vec::new());
        let (mut hits, mut s2, mut s3, mut s4, mut s5) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for entry in &batch.entries {
            if !known_apps.contains(&entry.application_id) || !known_metrics.contains(&entry.metric) {
                continue;
            }
            let Ok(minute) = OffsetDateTime::from_unix_timestamp(entry.minute) else { continue };
            // Bounded by check_bounds, so neither the sum nor the conversion saturates in practice.
            let requests = entry.latency_buckets.iter().fold(0u64, |sum, &n| sum.saturating_add(n));
            let requests = i64::try_from(requests).unwrap_or(i64::MAX);
            let class = |c: StatusClass| if entry.status_class == c { requests } else { 0 };
            app_ids.push(entry.application_id);
            metric_ids.push(entry.metric);
            buckets.push(granularity.bucket(minute));
            hits.push(i64::try_from(entry.count).unwrap_or(i64::MAX));
            s2.push(class(StatusClass::Success));
            s3.push(class(StatusClass::Redirection));
            s4.push(class(StatusClass::ClientError));
            s5.push(class(StatusClass::ServerError));
        }
        if app_ids.is_empty() {
            continue;
        }
        sqlx::query!(
            "INSERT INTO usage_rollups AS r (application_id, metric_id, granularity, bucket_start, hits, status_2xx, status_3xx, status_4xx, status_5xx)
             SELECT app, metric, $3::rollup_granularity, bucket, sum(hits), sum(s2), sum(s3), sum(s4), sum(s5)
             FROM UNNEST($1::uuid[], $2::uuid[], $4::timestamptz[], $5::int8[], $6::int8[], $7::int8[], $8::int8[], $9::int8[])
                  AS t(app, metric, bucket, hits, s2, s3, s4, s5)
             GROUP BY app, metric, bucket
             ON CONFLICT (application_id, metric_id, granularity, bucket_start) DO UPDATE SET
                 hits = least(r.hits::numeric + EXCLUDED.hits, 9223372036854775807)::bigint,
                 status_2xx = least(r.status_2xx::numeric + EXCLUDED.status_2xx, 9223372036854775807)::bigint,
                 status_3xx = least(r.status_3xx::numeric + EXCLUDED.status_3xx, 9223372036854775807)::bigint,
                 status_4xx = least(r.status_4xx::numeric + EXCLUDED.status_4xx, 9223372036854775807)::bigint,
                 status_5xx = least(r.status_5xx::numeric + EXCLUDED.status_5xx, 9223372036854775807)::bigint",
            &app_ids,
            &metric_ids,
            granularity as Granularity,
            &buckets,
            &hits,
            &s2,
            &s3,
            &s4,
            &s5
        )
        .execute(&mut *tx)
        .await?;
    }
    // When each key was last used, for the developer's key list. Only ever moves forward.
    if !batch.credentials_used.is_empty() {
        let hashes: Vec<Vec<u8>> = batch.credentials_used.iter().map(|c| c.hash.as_bytes().to_vec()).collect();
        let times: Vec<OffsetDateTime> = batch
            .credentials_used
            .iter()
            .map(|c| OffsetDateTime::from_unix_timestamp(c.minute).unwrap_or(OffsetDateTime::UNIX_EPOCH))
            .collect();
        sqlx::query!(
            "UPDATE credentials c SET last_used_at = greatest(c.last_used_at, u.used)
             FROM UNNEST($1::bytea[], $2::timestamptz[]) AS u(hash, used) WHERE c.key_hash = u.hash",
            &hashes,
            &times
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(UsageAck { batch_id: batch.id, duplicate: false })
}

/// Total usage of one metric of an application in a time range, from
/// minute rollups (for tests and the usage pages).
pub async fn total_hits(pool: &PgPool, application: Uuid, metric: Uuid) -> Result<i64> {
    let total = sqlx::query_scalar!(
        r#"SELECT coalesce(sum(hits), 0)::bigint AS "total!" FROM usage_rollups WHERE application_id = $1 AND metric_id = $2 AND granularity = 'minute'"#,
        application,
        metric
    )
    .fetch_one(pool)
    .await?;
    Ok(total)
}
