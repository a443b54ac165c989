//! Calls per upstream group: written at usage intake, read as a per-group table (calls,
//! 5xx rate, latency) so a canary can be compared with the stable group.
//!
//! A call counts once: from forwarded entries of top-level metrics (every call touches its
//! top-level metric once), plus the agent's own 502/504 answers after it chose a group.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::PgPool;
use time::OffsetDateTime;
use tollgate_protocol::usage::{LATENCY_BUCKET_BOUNDS_MS, LATENCY_BUCKETS};
use tollgate_protocol::{StatusClass, UsageBatch};
use uuid::Uuid;

use crate::Result;
use crate::apis::ApiId;

#[derive(Default)]
struct Sums {
    calls: i64,
    calls_5xx: i64,
    latency: [i64; LATENCY_BUCKETS],
}

impl Sums {
    fn add(&mut self, calls: u64, is_5xx: bool, latency: &[u64; LATENCY_BUCKETS]) {
        let calls = i64::try_from(calls).unwrap_or(i64::MAX);
        self.calls = self.calls.saturating_add(calls);
        if is_5xx {
            self.calls_5xx = self.calls_5xx.saturating_add(calls);
        }
        for (sum, &n) in self.latency.iter_mut().zip(latency) {
            *sum = sum.saturating_add(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
}

/// Adds the batch's calls per (API, group, minute), inside the intake transaction.
pub(crate) async fn ingest(conn: &mut sqlx::PgConnection, batch: &UsageBatch) -> Result<()> {
    let metrics: Vec<Uuid> = batch.entries.iter().filter(|e| e.group.is_some()).map(|e| e.metric).collect();
    let apps: Vec<Uuid> = batch.refused.iter().filter(|r| r.group.is_some()).map(|r| r.application_id).collect();
    if metrics.is_empty() && apps.is_empty() {
        return Ok(());
    }
    let top_level: BTreeMap<Uuid, Uuid> =
        sqlx::query!("SELECT id, api_id FROM metrics WHERE id = ANY($1) AND parent_id IS NULL", &metrics)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .map(|m| (m.id, m.api_id))
            .collect();
    let app_api: BTreeMap<Uuid, Uuid> = sqlx::query!("SELECT id, api_id FROM applications WHERE id = ANY($1)", &apps)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|a| (a.id, a.api_id))
        .collect();
    let mut rows: BTreeMap<(Uuid, i64, &str), Sums> = BTreeMap::new();
    for entry in &batch.entries {
        let (Some(group), Some(&api)) = (entry.group.as_deref(), top_level.get(&entry.metric)) else { continue };
        let calls = entry.latency_buckets.iter().fold(0u64, |sum, &n| sum.saturating_add(n));
        let is_5xx = entry.status_class == StatusClass::ServerError;
        rows.entry((api, entry.minute, group)).or_default().add(calls, is_5xx, &entry.latency_buckets);
    }
    for refused in &batch.refused {
        let (Some(group), Some(&api)) = (refused.group.as_deref(), app_api.get(&refused.application_id)) else {
            continue;
        };
        rows.entry((api, refused.minute, group)).or_default().add(
            refused.count,
            refused.status >= 500,
            &refused.latency_buckets,
        );
    }
    if rows.is_empty() {
        return Ok(());
    }
    let n = rows.len();
    let (mut api_ids, mut minutes, mut groups, mut calls, mut errors) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut latency = Vec::with_capacity(n * LATENCY_BUCKETS);
    for ((api, minute, group), sums) in &rows {
        api_ids.push(*api);
        minutes.push(OffsetDateTime::from_unix_timestamp(*minute).unwrap_or(OffsetDateTime::UNIX_EPOCH));
        groups.push((*group).to_owned());
        calls.push(sums.calls);
        errors.push(sums.calls_5xx);
        latency.extend_from_slice(&sums.latency);
    }
    sqlx::query!(
        "INSERT INTO usage_group_minutes AS u (api_id, minute, group_name, calls, calls_5xx, latency_buckets)
         SELECT api, minute, name, calls, errors, ($6::int8[])[(ord - 1) * 11 + 1 : ord * 11]
         FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[], $4::int8[], $5::int8[])
              WITH ORDINALITY AS t(api, minute, name, calls, errors, ord)
         ON CONFLICT (api_id, minute, group_name) DO UPDATE SET
             calls = least(u.calls::numeric + EXCLUDED.calls, 9223372036854775807)::bigint,
             calls_5xx = least(u.calls_5xx::numeric + EXCLUDED.calls_5xx, 9223372036854775807)::bigint,
             latency_buckets = usage_add_buckets(u.latency_buckets, EXCLUDED.latency_buckets)",
        &api_ids,
        &minutes,
        &groups,
        &calls,
        &errors,
        &latency
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// One group's traffic over a period.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupUsage {
    pub group: String,
    pub calls: i64,
    pub calls_5xx: i64,
    /// `calls_5xx / calls`, 0 without calls.
    pub error_rate: f64,
    /// Upper bound of the latency bucket holding the median call, in ms; `None` without
    /// calls or beyond the last bound.
    pub p50_ms: Option<u64>,
    pub p95_ms: Option<u64>,
}

/// Each group's calls, 5xx share and latency since `since`, busiest first.
pub async fn per_group(pool: &PgPool, api: ApiId, since: OffsetDateTime) -> Result<Vec<GroupUsage>> {
    // Summed per latency bucket by position, so no two-dimensional array comes back.
    let rows = sqlx::query!(
        r#"SELECT m.group_name, LEAST(sum(m.calls), 9223372036854775807)::bigint AS "calls!",
                  LEAST(sum(m.calls_5xx), 9223372036854775807)::bigint AS "calls_5xx!",
                  (SELECT array_agg(s ORDER BY i) FROM (
                       SELECT i, LEAST(sum(g.latency_buckets[i]), 9223372036854775807)::bigint AS s
                       FROM usage_group_minutes g, generate_series(1, 11) AS i
                       WHERE g.api_id = $1 AND g.minute >= $2 AND g.group_name = m.group_name GROUP BY i) x
                  ) AS "latency!: Vec<i64>"
           FROM usage_group_minutes m WHERE m.api_id = $1 AND m.minute >= $2
           GROUP BY m.group_name ORDER BY 2 DESC, 1"#,
        api.0,
        since
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let mut latency = [0i64; LATENCY_BUCKETS];
            for (sum, n) in latency.iter_mut().zip(&r.latency) {
                *sum = *n;
            }
            GroupUsage {
                error_rate: if r.calls > 0 { r.calls_5xx as f64 / r.calls as f64 } else { 0.0 },
                p50_ms: percentile(&latency, 0.5),
                p95_ms: percentile(&latency, 0.95),
                group: r.group_name,
                calls: r.calls,
                calls_5xx: r.calls_5xx,
            }
        })
        .collect())
}

/// The upper bound of the bucket holding the ⌈p·n⌉-th call.
fn percentile(latency: &[i64; LATENCY_BUCKETS], p: f64) -> Option<u64> {
    let total: i64 = latency.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((p * total as f64).ceil() as i64).max(1);
    let mut seen = 0;
    for (i, &n) in latency.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return LATENCY_BUCKET_BOUNDS_MS.get(i).copied();
        }
    }
    None
}
