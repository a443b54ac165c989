//! Usage reports for the portal, the admin UI and the admin API: usage per
//! metric over a period's buckets, status classes, latency percentiles, the
//! state of each limit and the recent failed calls.
//!
//! Sums are capped at `i64::MAX`: no stored counter turns a page into a 500.
//!
//! A report is read from the rollups of the period's granularity. Buckets are
//! dense: a bucket without rows is zero, never skipped. For one application
//! they are the plan's buckets (hour, day and month in its time zone, as
//! intake rolls them up); reports over many applications use UTC buckets and
//! put each row in the bucket its start falls in.

use std::collections::HashMap;
use std::str::FromStr;

pub use jiff::Timestamp;
use jiff::tz::TimeZone;
use sqlx::PgPool;
use time::OffsetDateTime;
use tollgate_protocol::usage::{LATENCY_BUCKET_BOUNDS_MS, LATENCY_BUCKETS};
pub use tollgate_protocol::{Period, TimeZoneName};
use uuid::Uuid;

use super::Granularity;
use crate::{Error, Result};

/// The periods a report covers, each with its bucket size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ReportPeriod {
    /// The last hour, by minute.
    #[serde(rename = "1h")]
    LastHour,
    /// The last 24 hours, by hour.
    #[serde(rename = "24h")]
    LastDay,
    /// The last 30 days, by day.
    #[serde(rename = "30d")]
    LastMonth,
    /// The last 12 months, by month.
    #[serde(rename = "12m")]
    LastYear,
}

impl ReportPeriod {
    pub const ALL: [ReportPeriod; 4] =
        [ReportPeriod::LastHour, ReportPeriod::LastDay, ReportPeriod::LastMonth, ReportPeriod::LastYear];

    pub const fn as_str(self) -> &'static str {
        match self {
            ReportPeriod::LastHour => "1h",
            ReportPeriod::LastDay => "24h",
            ReportPeriod::LastMonth => "30d",
            ReportPeriod::LastYear => "12m",
        }
    }

    /// In words, for the period selector.
    pub const fn label(self) -> &'static str {
        match self {
            ReportPeriod::LastHour => "Last hour (by minute)",
            ReportPeriod::LastDay => "Last 24 hours (by hour)",
            ReportPeriod::LastMonth => "Last 30 days (by day)",
            ReportPeriod::LastYear => "Last 12 months (by month)",
        }
    }

    pub const fn granularity(self) -> Granularity {
        match self {
            ReportPeriod::LastHour => Granularity::Minute,
            ReportPeriod::LastDay => Granularity::Hour,
            ReportPeriod::LastMonth => Granularity::Day,
            ReportPeriod::LastYear => Granularity::Month,
        }
    }

    const fn bucket_count(self) -> usize {
        match self {
            ReportPeriod::LastHour => 60,
            ReportPeriod::LastDay => 24,
            ReportPeriod::LastMonth => 30,
            ReportPeriod::LastYear => 12,
        }
    }

    /// Reads `period=` of a query string: absent is the last 24 hours, anything
    /// else not ours is an error naming the field.
    pub fn parse(value: Option<&str>) -> Result<ReportPeriod> {
        match value {
            None | Some("") => Ok(ReportPeriod::LastDay),
            Some(v) => v.parse(),
        }
    }

    /// Bucket starts, oldest first, ending with the bucket holding `now`, and the end of that last bucket.
    pub fn buckets(self, now: Timestamp, tz: &TimeZone) -> (Vec<Timestamp>, Timestamp) {
        let period = granularity_period(self.granularity());
        let current = period.window(now, tz);
        let end = current.end.unwrap_or(now);
        let mut starts = vec![current.start];
        while starts.len() < self.bucket_count() {
            let Some(before) = starts.last().and_then(|s| s.checked_sub(jiff::SignedDuration::from_secs(1)).ok())
            else {
                break;
            };
            starts.push(period.window(before, tz).start);
        }
        starts.reverse();
        (starts, end)
    }
}

impl FromStr for ReportPeriod {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        ReportPeriod::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| Error::invalid("period", format!("`{s}` is not a period; use 1h, 24h, 30d or 12m")))
    }
}

fn granularity_period(granularity: Granularity) -> Period {
    match granularity {
        Granularity::Minute => Period::Minute,
        Granularity::Hour => Period::Hour,
        Granularity::Day => Period::Day,
        Granularity::Month => Period::Month,
    }
}

/// Whose usage a report covers: every filter given must hold (they are ANDed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Scope {
    pub application: Option<Uuid>,
    pub api: Option<Uuid>,
    pub account: Option<Uuid>,
    pub metric: Option<Uuid>,
}

/// One metric's usage over the buckets.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MetricUsage {
    pub metric_id: Uuid,
    pub api_id: Uuid,
    pub system_name: String,
    pub friendly_name: String,
    /// `None` for a top-level metric such as `hits`; a method names its parent.
    pub parent_id: Option<Uuid>,
    pub values: Vec<i64>,
    pub total: i64,
}

/// Calls by status class (2xx..5xx) per bucket. Forwarded calls are counted
/// on top-level metrics (a call counts on its method and its parent: one is
/// enough); calls the gateway refused itself (403, 429, ...) come from refusals.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct StatusClasses {
    pub s2xx: Vec<i64>,
    pub s3xx: Vec<i64>,
    pub s4xx: Vec<i64>,
    pub s5xx: Vec<i64>,
}

impl StatusClasses {
    pub fn totals(&self) -> [i64; 4] {
        [&self.s2xx, &self.s3xx, &self.s4xx, &self.s5xx].map(|v| v.iter().sum())
    }

    /// Share of 4xx and 5xx among all calls, in percent (0 without calls).
    pub fn error_rate(&self) -> f64 {
        let [a, b, c, d] = self.totals();
        let all = a + b + c + d;
        if all == 0 { 0.0 } else { (c + d) as f64 * 100.0 / all as f64 }
    }
}

/// A latency percentile: the upper bound of the bucket that holds the
/// ⌈p·n⌉-th fastest call, or `None` when that call was slower than the last bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Percentile {
    pub percent: u8,
    /// "At most this many milliseconds"; `None` means "over 5,000 ms".
    pub at_most_ms: Option<u64>,
}

/// p50, p95 and p99 of `buckets` (counts per latency bucket); empty without calls.
pub fn percentiles(buckets: &[i64; LATENCY_BUCKETS]) -> Vec<Percentile> {
    let n: u128 = buckets.iter().map(|&c| c.max(0) as u128).sum();
    if n == 0 {
        return Vec::new();
    }
    [50u8, 95, 99]
        .into_iter()
        .map(|percent| {
            // ⌈p·n⌉, at least the first call.
            let rank = (n * u128::from(percent)).div_ceil(100).max(1);
            let mut seen = 0u128;
            let index = buckets
                .iter()
                .position(|&c| {
                    seen += c.max(0) as u128;
                    seen >= rank
                })
                .unwrap_or(LATENCY_BUCKETS - 1);
            Percentile { percent, at_most_ms: LATENCY_BUCKET_BOUNDS_MS.get(index).copied() }
        })
        .collect()
}

/// The state of one limit of an application's plan in its current window.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LimitState {
    pub metric_id: Uuid,
    pub metric: String,
    pub period: Period,
    pub used: i64,
    pub max: i64,
    /// Used as a whole percentage of max, rounded down.
    pub percent: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub window_start: OffsetDateTime,
    /// When the window resets; `None` for eternity.
    #[serde(with = "time::serde::rfc3339::option")]
    pub resets_at: Option<OffsetDateTime>,
}

/// What a report shows.
#[derive(Clone, Debug, serde::Serialize)]
pub struct UsageReport {
    pub period: ReportPeriod,
    pub granularity: Granularity,
    /// The time zone buckets follow.
    pub time_zone: String,
    /// Bucket starts, oldest first.
    #[serde(with = "bucket_times")]
    pub buckets: Vec<OffsetDateTime>,
    pub metrics: Vec<MetricUsage>,
    pub status: StatusClasses,
    /// Forwarded and refused calls per latency bucket, over the whole period.
    pub latency_buckets: [i64; LATENCY_BUCKETS],
    pub percentiles: Vec<Percentile>,
}

mod bucket_times {
    use serde::Serializer;
    use serde::ser::SerializeSeq;
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(times: &[OffsetDateTime], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(times.len()))?;
        for t in times {
            let text = t.format(&time::format_description::well_known::Rfc3339).map_err(serde::ser::Error::custom)?;
            seq.serialize_element(&text)?;
        }
        seq.end()
    }
}

impl UsageReport {
    /// A bucket's start in the report's zone, as short as its granularity allows.
    pub fn bucket_label(&self, index: usize) -> String {
        let Some(start) = self.buckets.get(index) else { return String::new() };
        let tz = TimeZoneName::new(&self.time_zone).unwrap_or_else(|_| TimeZoneName::utc());
        let at = Timestamp::from_second(start.unix_timestamp()).unwrap_or(Timestamp::UNIX_EPOCH);
        let local = at.to_zoned(tz.time_zone().clone());
        let format = match self.granularity {
            Granularity::Minute | Granularity::Hour => "%H:%M",
            Granularity::Day => "%Y-%m-%d",
            Granularity::Month => "%Y-%m",
        };
        local.strftime(format).to_string()
    }

    pub fn bucket_labels(&self) -> Vec<String> {
        (0..self.buckets.len()).map(|i| self.bucket_label(i)).collect()
    }
}

pub(crate) fn to_offset(t: Timestamp) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(t.as_second()).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The index of the bucket holding `at`: the last start at or before it.
fn bucket_index(starts: &[OffsetDateTime], at: OffsetDateTime) -> Option<usize> {
    starts.partition_point(|&s| s <= at).checked_sub(1)
}

/// Half a rollup of `granularity`. Rollups start where their plan's time zone starts an hour,
/// a day or a month, and a report over many applications has buckets in one zone: a rollup
/// goes to the bucket its middle falls in (a Tokyo plan's 10 June starts on 9 June in UTC,
/// and by its start would be shown a day early).
fn half_of(granularity: Granularity) -> time::Duration {
    match granularity {
        Granularity::Minute => time::Duration::seconds(30),
        Granularity::Hour => time::Duration::minutes(30),
        Granularity::Day => time::Duration::hours(12),
        Granularity::Month => time::Duration::days(14),
    }
}

/// The report of `scope` over `period`, with buckets in `tz`, at `now`.
pub async fn report(
    pool: &PgPool,
    scope: Scope,
    period: ReportPeriod,
    tz: &TimeZoneName,
    now: Timestamp,
) -> Result<UsageReport> {
    let granularity = period.granularity();
    let (starts, end) = period.buckets(now, tz.time_zone());
    let buckets: Vec<OffsetDateTime> = starts.iter().copied().map(to_offset).collect();
    let (first, end) = (buckets.first().copied().unwrap_or(OffsetDateTime::UNIX_EPOCH), to_offset(end));
    let n = buckets.len();
    // The rollups whose middle falls in the report's span; each placed by its middle.
    let half = half_of(granularity);
    let (from, to) = (first - half, end - half);

    // One transaction: the report's queries read one snapshot, with plans made for these parameters.
    let mut tx = custom_plans(pool).await?;
    // The filters are `$n IS NULL OR …`; applications are only looked at when
    // an API or account filter is set (a hashed subplan, no join per row).
    let rows = sqlx::query!(
        r#"SELECT r.metric_id, r.bucket_start, LEAST(sum(r.hits), 9223372036854775807)::bigint AS "hits!",
                  LEAST(sum(r.status_2xx), 9223372036854775807)::bigint AS "s2!", LEAST(sum(r.status_3xx), 9223372036854775807)::bigint AS "s3!",
                  LEAST(sum(r.status_4xx), 9223372036854775807)::bigint AS "s4!", LEAST(sum(r.status_5xx), 9223372036854775807)::bigint AS "s5!"
           FROM usage_rollups r
           WHERE r.granularity = $1 AND r.bucket_start >= $2 AND r.bucket_start < $3
             AND ($4::uuid IS NULL OR r.application_id = $4)
             AND (($5::uuid IS NULL AND $6::uuid IS NULL) OR r.application_id IN (
                 SELECT a.id FROM applications a
                 WHERE ($5::uuid IS NULL OR a.api_id = $5) AND ($6::uuid IS NULL OR a.account_id = $6)))
             AND ($7::uuid IS NULL OR r.metric_id = $7)
           GROUP BY r.metric_id, r.bucket_start"#,
        granularity as Granularity,
        from,
        to,
        scope.application,
        scope.api,
        scope.account,
        scope.metric
    )
    .fetch_all(&mut *tx)
    .await?;

    let metric_ids: Vec<Uuid> = rows.iter().map(|r| r.metric_id).collect();
    let metric_rows = sqlx::query!(
        "SELECT id, api_id, parent_id, system_name, friendly_name FROM metrics
         WHERE (id = ANY($1) OR ($2::uuid IS NOT NULL AND api_id = $2)) AND ($3::uuid IS NULL OR id = $3)
         ORDER BY api_id, parent_id NULLS FIRST, system_name",
        &metric_ids,
        scope.api,
        scope.metric
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut metrics: Vec<MetricUsage> = metric_rows
        .into_iter()
        .map(|m| MetricUsage {
            metric_id: m.id,
            api_id: m.api_id,
            system_name: m.system_name,
            friendly_name: m.friendly_name,
            parent_id: m.parent_id,
            values: vec![0; n],
            total: 0,
        })
        .collect();
    let position: HashMap<Uuid, usize> = metrics.iter().enumerate().map(|(i, m)| (m.metric_id, i)).collect();

    let mut status = StatusClasses { s2xx: vec![0; n], s3xx: vec![0; n], s4xx: vec![0; n], s5xx: vec![0; n] };
    for row in &rows {
        let (Some(&m), Some(b)) = (position.get(&row.metric_id), bucket_index(&buckets, row.bucket_start + half))
        else {
            continue;
        };
        let metric = &mut metrics[m];
        metric.values[b] = metric.values[b].saturating_add(row.hits);
        metric.total = metric.total.saturating_add(row.hits);
        // Each call once: its top-level metrics, or the one metric the report is about.
        if metric.parent_id.is_none() || scope.metric.is_some() {
            status.s2xx[b] = status.s2xx[b].saturating_add(row.s2);
            status.s3xx[b] = status.s3xx[b].saturating_add(row.s3);
            status.s4xx[b] = status.s4xx[b].saturating_add(row.s4);
            status.s5xx[b] = status.s5xx[b].saturating_add(row.s5);
        }
    }

    // Calls the gateway answered itself: by status, with their latency.
    let refusals = sqlx::query!(
        r#"SELECT f.bucket_start, f.status, LEAST(sum(f.requests), 9223372036854775807)::bigint AS "requests!"
           FROM usage_refusals f
           WHERE f.granularity = $1 AND f.bucket_start >= $2 AND f.bucket_start < $3
             AND ($4::uuid IS NULL OR f.application_id = $4)
             AND (($5::uuid IS NULL AND $6::uuid IS NULL) OR f.application_id IN (
                 SELECT a.id FROM applications a
                 WHERE ($5::uuid IS NULL OR a.api_id = $5) AND ($6::uuid IS NULL OR a.account_id = $6)))
             AND $7::uuid IS NULL
           GROUP BY f.bucket_start, f.status"#,
        granularity as Granularity,
        from,
        to,
        scope.application,
        scope.api,
        scope.account,
        scope.metric
    )
    .fetch_all(&mut *tx)
    .await?;
    for row in &refusals {
        let Some(b) = bucket_index(&buckets, row.bucket_start + half) else { continue };
        if row.status >= 500 {
            status.s5xx[b] = status.s5xx[b].saturating_add(row.requests);
        } else {
            status.s4xx[b] = status.s4xx[b].saturating_add(row.requests);
        }
    }
    // Latency of forwarded calls (top-level metrics, so each call once) and
    // refused ones, summed per position in one aggregate: no unnest per row.
    let latency_row = sqlx::query!(
        r#"SELECT ARRAY[coalesce(sum(l[1]), 0), coalesce(sum(l[2]), 0), coalesce(sum(l[3]), 0),
                        coalesce(sum(l[4]), 0), coalesce(sum(l[5]), 0), coalesce(sum(l[6]), 0),
                        coalesce(sum(l[7]), 0), coalesce(sum(l[8]), 0), coalesce(sum(l[9]), 0),
                        coalesce(sum(l[10]), 0), coalesce(sum(l[11]), 0)]::bigint[] AS "latency!"
           FROM (
               SELECT r.latency_buckets AS l FROM usage_rollups r JOIN metrics m ON m.id = r.metric_id
               WHERE r.granularity = $1 AND r.bucket_start >= $2 AND r.bucket_start < $3
                 AND ($4::uuid IS NULL OR r.application_id = $4)
                 AND (($5::uuid IS NULL AND $6::uuid IS NULL) OR r.application_id IN (
                     SELECT a.id FROM applications a
                     WHERE ($5::uuid IS NULL OR a.api_id = $5) AND ($6::uuid IS NULL OR a.account_id = $6)))
                 AND (($7::uuid IS NULL AND m.parent_id IS NULL) OR r.metric_id = $7)
               UNION ALL
               SELECT f.latency_buckets FROM usage_refusals f
               WHERE f.granularity = $1 AND f.bucket_start >= $2 AND f.bucket_start < $3
                 AND ($4::uuid IS NULL OR f.application_id = $4)
                 AND (($5::uuid IS NULL AND $6::uuid IS NULL) OR f.application_id IN (
                     SELECT a.id FROM applications a
                     WHERE ($5::uuid IS NULL OR a.api_id = $5) AND ($6::uuid IS NULL OR a.account_id = $6)))
                 AND $7::uuid IS NULL
           ) t"#,
        granularity as Granularity,
        from,
        to,
        scope.application,
        scope.api,
        scope.account,
        scope.metric
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut latency = [0i64; LATENCY_BUCKETS];
    for (slot, n) in latency.iter_mut().zip(latency_row.latency) {
        *slot = n;
    }
    Ok(UsageReport {
        period,
        granularity,
        time_zone: tz.as_str().to_owned(),
        buckets,
        metrics,
        status,
        percentiles: percentiles(&latency),
        latency_buckets: latency,
    })
}

/// The time zone of an application's plan, where its buckets and windows begin.
pub async fn plan_time_zone(pool: &PgPool, application: Uuid) -> Result<TimeZoneName> {
    let name = sqlx::query_scalar!(
        "SELECT p.time_zone FROM applications a JOIN plans p ON p.id = a.plan_id WHERE a.id = $1",
        application
    )
    .fetch_optional(pool)
    .await?
    .ok_or(Error::NotFound)?;
    Ok(TimeZoneName::new(&name).unwrap_or_else(|_| TimeZoneName::utc()))
}

/// Each limit of an application's plan: used in its current window, max, percent and reset.
pub async fn limits(pool: &PgPool, application: Uuid, now: Timestamp) -> Result<Vec<LimitState>> {
    let limits = sqlx::query!(
        r#"SELECT l.metric_id, l.period AS "period: crate::stored::StoredPeriod", l.max_value, m.friendly_name, p.time_zone
           FROM applications a JOIN plans p ON p.id = a.plan_id
           JOIN usage_limits l ON l.plan_id = p.id JOIN metrics m ON m.id = l.metric_id
           WHERE a.id = $1 ORDER BY m.system_name, l.period"#,
        application
    )
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(limits.len());
    for limit in limits {
        let period = limit.period.0;
        let tz = TimeZoneName::new(&limit.time_zone).unwrap_or_else(|_| TimeZoneName::utc());
        let window = tz.window(period, now);
        let start = to_offset(window.start);
        let end = window.end.map(to_offset);
        // The same sum the alert job and the agents' restart seed use.
        let mut conn = pool.acquire().await?;
        let used = super::buckets::used_in_window(&mut conn, &[application], limit.metric_id, &window)
            .await?
            .first()
            .map_or(0, |(_, used)| *used);
        let percent = match (used, limit.max_value) {
            (0, _) => 0,
            (_, 0) => 100,
            (u, m) => i64::try_from(i128::from(u) * 100 / i128::from(m)).unwrap_or(i64::MAX),
        };
        out.push(LimitState {
            metric_id: limit.metric_id,
            metric: limit.friendly_name,
            period,
            used,
            max: limit.max_value,
            percent,
            window_start: start,
            resets_at: end,
        });
    }
    Ok(out)
}

/// One recent failed call of an application.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FailedCallView {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub method: String,
    /// The matched operation's metric, when a rule matched.
    pub operation: Option<String>,
    /// The raw path, without the query.
    pub path: String,
    pub status: i16,
    /// The gateway's error code; `None` when the status is the upstream's.
    pub error: Option<String>,
    pub key_prefix: Option<String>,
    pub latency_us: i64,
    /// The id the answer carried in `X-Tollgate-Request-Id`; `None` from older agents.
    pub request_id: Option<Uuid>,
}

/// The newest failed calls of an application, newest first (at most 200 are kept).
pub async fn failed_calls(pool: &PgPool, application: Uuid) -> Result<Vec<FailedCallView>> {
    let rows = sqlx::query!(
        r#"SELECT f.at, f.method, m.system_name AS "operation?", f.path, f.status, f.error, f.key_prefix, f.latency_us,
                  f.request_id
           FROM failed_calls f LEFT JOIN metrics m ON m.id = f.metric_id
           WHERE f.application_id = $1 ORDER BY f.at DESC, f.id DESC LIMIT 200"#,
        application
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| FailedCallView {
            at: r.at,
            method: r.method,
            operation: r.operation,
            path: r.path,
            status: r.status,
            error: r.error,
            key_prefix: r.key_prefix,
            latency_us: r.latency_us,
            request_id: r.request_id,
        })
        .collect())
}

/// An application or account and its calls (top-level metrics) in a period.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TopEntry {
    pub id: Uuid,
    pub name: String,
    pub calls: i64,
}

/// The applications and the accounts with the most calls, most first.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Top {
    pub applications: Vec<TopEntry>,
    pub accounts: Vec<TopEntry>,
}

/// The `limit` applications and accounts with the most calls over `period`'s
/// UTC buckets, from one pass over the rollups (accounts sum their
/// applications' totals).
pub async fn top(pool: &PgPool, period: ReportPeriod, now: Timestamp, limit: i64) -> Result<Top> {
    let (starts, end) = period.buckets(now, &TimeZone::UTC);
    // As in [`report`]: the rollups whose middle falls in the span.
    let half = half_of(period.granularity());
    let from = starts.first().copied().map(to_offset).unwrap_or(OffsetDateTime::UNIX_EPOCH) - half;
    let rows = sqlx::query!(
        r#"WITH per_app AS (
               SELECT r.application_id, LEAST(sum(r.hits), 9223372036854775807)::bigint AS calls
               FROM usage_rollups r JOIN metrics m ON m.id = r.metric_id AND m.parent_id IS NULL
               WHERE r.granularity = $1 AND r.bucket_start >= $2 AND r.bucket_start < $3
               GROUP BY r.application_id)
           (SELECT false AS "account!", a.id AS "id!", a.name AS "name!", p.calls AS "calls!"
            FROM per_app p JOIN applications a ON a.id = p.application_id
            ORDER BY p.calls DESC, a.name LIMIT $4)
           UNION ALL
           (SELECT true, c.id, c.name, LEAST(sum(p.calls), 9223372036854775807)::bigint
            FROM per_app p JOIN applications a ON a.id = p.application_id JOIN accounts c ON c.id = a.account_id
            GROUP BY c.id, c.name ORDER BY 4 DESC, c.name LIMIT $4)"#,
        period.granularity() as Granularity,
        from,
        to_offset(end) - half,
        limit
    )
    .fetch_all(pool)
    .await?;
    let mut top = Top::default();
    for r in rows {
        let entry = TopEntry { id: r.id, name: r.name, calls: r.calls };
        if r.account { top.accounts.push(entry) } else { top.applications.push(entry) }
    }
    Ok(top)
}

/// A transaction whose statements are planned for their parameters on every
/// run. The reports' optional filters (`$n IS NULL OR …`) make a generic plan
/// look cheap, and Postgres switches a connection's prepared statement to it
/// after five runs: one application's page then scanned every application's
/// rows of the period (1 ms → 30 ms per query over 1,000 applications).
async fn custom_plans(pool: &PgPool) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    // One round trip: the setting travels with BEGIN (a simple query of two statements).
    Ok(pool.begin_with("BEGIN; SET LOCAL plan_cache_mode = force_custom_plan").await?)
}

/// The most buckets one admin API query may span (per metric).
pub const MAX_ROW_BUCKETS: i64 = 10_000;

/// One rollup bucket of one metric, summed over the applications in scope.
#[derive(Clone, Debug, serde::Serialize)]
pub struct UsageRow {
    #[serde(with = "time::serde::rfc3339")]
    pub bucket_start: OffsetDateTime,
    pub metric_id: Uuid,
    pub metric: String,
    pub hits: i64,
    pub status_2xx: i64,
    pub status_3xx: i64,
    pub status_4xx: i64,
    pub status_5xx: i64,
}

/// Rollup rows of `granularity` with a start in `[from, to)`, per bucket and
/// metric, for the filters of `scope` (ANDed). The range may span at most
/// [`MAX_ROW_BUCKETS`] buckets; a longer or reversed one names `to`.
pub async fn usage_rows(
    pool: &PgPool,
    scope: Scope,
    granularity: Granularity,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<Vec<UsageRow>> {
    if to <= from {
        return Err(Error::invalid("to", "must be after `from`"));
    }
    let seconds = match granularity {
        Granularity::Minute => 60,
        Granularity::Hour => 3600,
        Granularity::Day => 86_400,
        Granularity::Month => 28 * 86_400,
    };
    if (to - from).whole_seconds() / seconds > MAX_ROW_BUCKETS {
        return Err(Error::invalid(
            "to",
            format!(
                "the range spans more than {MAX_ROW_BUCKETS} buckets of a {granularity}; narrow it or use a coarser granularity"
            ),
        ));
    }
    let mut tx = custom_plans(pool).await?;
    let rows = sqlx::query!(
        r#"SELECT r.bucket_start, r.metric_id, m.system_name, LEAST(sum(r.hits), 9223372036854775807)::bigint AS "hits!",
                  LEAST(sum(r.status_2xx), 9223372036854775807)::bigint AS "s2!", LEAST(sum(r.status_3xx), 9223372036854775807)::bigint AS "s3!",
                  LEAST(sum(r.status_4xx), 9223372036854775807)::bigint AS "s4!", LEAST(sum(r.status_5xx), 9223372036854775807)::bigint AS "s5!"
           FROM usage_rollups r JOIN applications a ON a.id = r.application_id JOIN metrics m ON m.id = r.metric_id
           WHERE r.granularity = $1 AND r.bucket_start >= $2 AND r.bucket_start < $3
             AND ($4::uuid IS NULL OR r.application_id = $4)
             AND ($5::uuid IS NULL OR a.api_id = $5)
             AND ($6::uuid IS NULL OR a.account_id = $6)
             AND ($7::uuid IS NULL OR r.metric_id = $7)
           GROUP BY r.bucket_start, r.metric_id, m.system_name
           ORDER BY r.bucket_start, m.system_name"#,
        granularity as Granularity,
        from,
        to,
        scope.application,
        scope.api,
        scope.account,
        scope.metric
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|r| UsageRow {
            bucket_start: r.bucket_start,
            metric_id: r.metric_id,
            metric: r.system_name,
            hits: r.hits,
            status_2xx: r.s2,
            status_3xx: r.s3,
            status_4xx: r.s4,
            status_5xx: r.s5,
        })
        .collect())
}

/// Calls per API (top-level metrics) over a period's UTC buckets.
#[derive(Clone, Debug)]
pub struct ApiTraffic {
    pub api_id: Uuid,
    pub name: String,
    pub values: Vec<i64>,
}

/// Calls per API in `report`'s scope and buckets, by name: the sum of the
/// report's top-level metrics of each API (no second pass over the rollups).
pub async fn traffic_per_api(pool: &PgPool, report: &UsageReport) -> Result<Vec<ApiTraffic>> {
    let n = report.buckets.len();
    let mut out: Vec<ApiTraffic> = Vec::new();
    for metric in report.metrics.iter().filter(|m| m.parent_id.is_none()) {
        let i = match out.iter().position(|a| a.api_id == metric.api_id) {
            Some(i) => i,
            None => {
                out.push(ApiTraffic { api_id: metric.api_id, name: String::new(), values: vec![0; n] });
                out.len() - 1
            }
        };
        for (sum, v) in out[i].values.iter_mut().zip(&metric.values) {
            *sum = sum.saturating_add(*v);
        }
    }
    let ids: Vec<Uuid> = out.iter().map(|a| a.api_id).collect();
    let names = sqlx::query!("SELECT id, name FROM api_products WHERE id = ANY($1)", &ids).fetch_all(pool).await?;
    for row in names {
        if let Some(api) = out.iter_mut().find(|a| a.api_id == row.id) {
            api.name = row.name;
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// A limit reached or exceeded (an alert at 100 % or more).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Violation {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub application_id: Uuid,
    pub application: String,
    pub account_id: Uuid,
    pub account: String,
    pub metric: String,
    pub period: Period,
    pub level: i16,
    pub used: i64,
    pub max: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub window_start: OffsetDateTime,
}

/// The newest violations, newest first.
pub async fn violations(pool: &PgPool, limit: i64) -> Result<Vec<Violation>> {
    let rows = sqlx::query!(
        r#"SELECT v.created_at, v.application_id, a.name AS application, c.id AS account_id, c.name AS account,
                  m.system_name AS metric, l.period AS "period: crate::stored::StoredPeriod", v.threshold_pct,
                  v.used, v.max_value, v.window_start
           FROM usage_alerts v JOIN applications a ON a.id = v.application_id JOIN accounts c ON c.id = a.account_id
           JOIN usage_limits l ON l.id = v.usage_limit_id JOIN metrics m ON m.id = l.metric_id
           WHERE v.threshold_pct >= 100 ORDER BY v.created_at DESC LIMIT $1"#,
        limit
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Violation {
            at: r.created_at,
            application_id: r.application_id,
            application: r.application,
            account_id: r.account_id,
            account: r.account,
            metric: r.metric,
            period: r.period.0,
            level: r.threshold_pct,
            used: r.used,
            max: r.max_value,
            window_start: r.window_start,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse_and_bad_ones_name_the_field() {
        assert_eq!(ReportPeriod::parse(None).ok(), Some(ReportPeriod::LastDay));
        assert_eq!(ReportPeriod::parse(Some("30d")).ok(), Some(ReportPeriod::LastMonth));
        match ReportPeriod::parse(Some("7d")) {
            Err(Error::Invalid { field, .. }) => assert_eq!(field, "period"),
            other => panic!("expected invalid period, got {other:?}"),
        }
    }

    #[test]
    fn buckets_are_dense_and_end_at_now() {
        let now: Timestamp = "2026-03-31T18:20:30Z".parse().unwrap_or(Timestamp::UNIX_EPOCH);
        let (hour, end) = ReportPeriod::LastHour.buckets(now, &TimeZone::UTC);
        assert_eq!(hour.len(), 60);
        assert_eq!(end.to_string(), "2026-03-31T18:21:00Z");
        assert_eq!(hour[0].to_string(), "2026-03-31T17:21:00Z");
        let kolkata = TimeZoneName::new("Asia/Kolkata").unwrap_or_else(|_| TimeZoneName::utc());
        // 23:50 local on the 31st: the month bucket starts on the 1st at local midnight.
        let (months, _) = ReportPeriod::LastYear.buckets(now, kolkata.time_zone());
        assert_eq!(months.len(), 12);
        assert_eq!(months[11].to_string(), "2026-02-28T18:30:00Z");
        let (days, _) = ReportPeriod::LastMonth.buckets(now, kolkata.time_zone());
        assert_eq!(days.len(), 30);
        assert_eq!(days[29].to_string(), "2026-03-30T18:30:00Z");
    }

    #[test]
    fn percentiles_are_the_upper_bound_of_the_bucket_of_the_ceil_rank() {
        // 100 calls: 50 at ≤5 ms, 45 at ≤100 ms, 4 at ≤1 s, 1 over 5 s.
        let mut b = [0i64; LATENCY_BUCKETS];
        b[0] = 50;
        b[4] = 45;
        b[7] = 4;
        b[10] = 1;
        let p = percentiles(&b);
        assert_eq!(p[0], Percentile { percent: 50, at_most_ms: Some(5) });
        assert_eq!(p[1], Percentile { percent: 95, at_most_ms: Some(100) });
        assert_eq!(p[2], Percentile { percent: 99, at_most_ms: Some(1000) });
        b[10] = 2; // 101 calls: the 100th (⌈0.99·101⌉) is the first of the slowest.
        assert_eq!(percentiles(&b)[2].at_most_ms, None);
        assert!(percentiles(&[0; LATENCY_BUCKETS]).is_empty());
        let mut one = [0i64; LATENCY_BUCKETS];
        one[3] = 1;
        assert!(percentiles(&one).iter().all(|p| p.at_most_ms == Some(50)));
    }

    #[test]
    fn rows_land_in_the_bucket_holding_their_start() {
        let at = |s: i64| OffsetDateTime::from_unix_timestamp(s).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let starts = [at(0), at(60), at(120)];
        assert_eq!(bucket_index(&starts, at(-1)), None);
        assert_eq!(bucket_index(&starts, at(0)), Some(0));
        assert_eq!(bucket_index(&starts, at(90)), Some(1));
        assert_eq!(bucket_index(&starts, at(500)), Some(2));
    }
}
