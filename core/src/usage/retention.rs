//! Retention: old rollups, refusals, failed calls and per-upstream-group
//! minutes (routing's canary comparison) are deleted in small
//! batches, each its own short transaction that locks only the rows it
//! deletes (picked by `ctid` from the age index), so intake never waits
//! behind a retention run and no table lock is ever taken.

use sqlx::PgPool;
use time::{Duration, OffsetDateTime};

use super::{Granularity, MAX_AGE};
use crate::Result;

/// Rows one delete statement removes at most.
pub const BATCH: i64 = 5_000;

/// How long each resolution is kept, in days; `None` keeps it for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub minute_days: Option<u32>,
    pub hour_days: Option<u32>,
    pub day_days: Option<u32>,
    pub month_days: Option<u32>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { minute_days: Some(7), hour_days: Some(90), day_days: None, month_days: None }
    }
}

impl Retention {
    /// The fewest days each resolution must be kept: limit windows are summed
    /// from the buckets that tile them (hours for a day, days for a month,
    /// months for a year; see `buckets::tiling`), and the agent's restart
    /// seed and the alert job read the current window.
    pub const MINIMUM_DAYS: [(Granularity, u32); 4] =
        [(Granularity::Minute, 1), (Granularity::Hour, 2), (Granularity::Day, 32), (Granularity::Month, 366)];

    pub fn days(&self, granularity: Granularity) -> Option<u32> {
        match granularity {
            Granularity::Minute => self.minute_days,
            Granularity::Hour => self.hour_days,
            Granularity::Day => self.day_days,
            Granularity::Month => self.month_days,
        }
    }

    pub fn minimum_days(granularity: Granularity) -> u32 {
        Self::MINIMUM_DAYS.iter().find(|(g, _)| *g == granularity).map_or(1, |(_, d)| *d)
    }
}

/// Rows one run deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deleted {
    pub rollups: u64,
    pub refusals: u64,
    pub failed_calls: u64,
    pub batches: u64,
    /// Minutes of calls per upstream group (`usage_group_minutes`).
    pub group_minutes: u64,
}

impl Deleted {
    pub fn total(&self) -> u64 {
        self.rollups + self.refusals + self.failed_calls + self.batches + self.group_minutes
    }
}

/// Deletes everything older than `retention` says, as of `now`.
pub async fn run(pool: &PgPool, retention: &Retention, now: OffsetDateTime) -> Result<Deleted> {
    let mut deleted = Deleted::default();
    for &granularity in Granularity::ALL {
        let Some(days) = retention.days(granularity) else { continue };
        let cutoff = now - Duration::days(i64::from(days));
        deleted.rollups += in_batches(|| async move {
            Ok(sqlx::query!(
                "DELETE FROM usage_rollups WHERE ctid = ANY(ARRAY(
                     SELECT ctid FROM usage_rollups WHERE granularity = $1 AND bucket_start < $2 LIMIT $3))",
                granularity as Granularity,
                cutoff,
                BATCH
            )
            .execute(pool)
            .await?
            .rows_affected())
        })
        .await?;
        deleted.refusals += in_batches(|| async move {
            Ok(sqlx::query!(
                "DELETE FROM usage_refusals WHERE ctid = ANY(ARRAY(
                     SELECT ctid FROM usage_refusals WHERE granularity = $1 AND bucket_start < $2 LIMIT $3))",
                granularity as Granularity,
                cutoff,
                BATCH
            )
            .execute(pool)
            .await?
            .rows_affected())
        })
        .await?;
    }
    // Calls per upstream group are minute buckets: they go with the minute resolution.
    if let Some(days) = retention.minute_days {
        let cutoff = now - Duration::days(i64::from(days));
        deleted.group_minutes += in_batches(|| async move {
            Ok(sqlx::query!(
                "DELETE FROM usage_group_minutes WHERE ctid = ANY(ARRAY(
                     SELECT ctid FROM usage_group_minutes WHERE minute < $1 LIMIT $2))",
                cutoff,
                BATCH
            )
            .execute(pool)
            .await?
            .rows_affected())
        })
        .await?;
    }
    // Failed calls are single calls: they go with the hour resolution.
    if let Some(days) = retention.hour_days {
        let cutoff = now - Duration::days(i64::from(days));
        deleted.failed_calls += in_batches(|| async move {
            Ok(sqlx::query!(
                "DELETE FROM failed_calls WHERE id = ANY(ARRAY(SELECT id FROM failed_calls WHERE at < $1 LIMIT $2))",
                cutoff,
                BATCH
            )
            .execute(pool)
            .await?
            .rows_affected())
        })
        .await?;
    }
    // Batch ids older than intake accepts can never be replayed into counts
    // (check_bounds refuses their minutes), so they need not be remembered.
    let cutoff = now - MAX_AGE - Duration::days(1);
    deleted.batches += in_batches(|| async move {
        Ok(sqlx::query!(
            "DELETE FROM usage_batches WHERE ctid = ANY(ARRAY(
                 SELECT ctid FROM usage_batches WHERE received_at < $1 LIMIT $2))",
            cutoff,
            BATCH
        )
        .execute(pool)
        .await?
        .rows_affected())
    })
    .await?;
    Ok(deleted)
}

/// Repeats one batch delete until a batch comes back short, yielding between
/// batches so a long run shares the runtime; returns the rows deleted.
async fn in_batches<F, Fut>(mut delete_batch: F) -> Result<u64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<u64>>,
{
    let mut total = 0;
    loop {
        let n = delete_batch().await?;
        total += n;
        if n < BATCH as u64 {
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}
