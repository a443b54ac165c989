//! Usage intake from agents: idempotent batches rolled up by minute, hour,
//! day and month (hour, day and month buckets in the plan's time zone), with
//! refusals, recent failed calls, alerts and retention in submodules.
//!
//! A batch is checked before anything is counted: minutes must fall in the
//! window an agent can honestly report ([`MAX_AGE`] back, [`MAX_AHEAD`]
//! ahead of the server's clock) and counts must be below [`MAX_ENTRY_COUNT`];
//! otherwise the whole batch is refused as invalid (the agent drops it and
//! says so) rather than moving rollups and "last used" to another century.

use std::collections::{BTreeMap, HashMap, HashSet};

use jiff::tz::TimeZone;
use sqlx::PgPool;
use time::OffsetDateTime;
use tollgate_protocol::usage::LATENCY_BUCKETS;
use tollgate_protocol::{StatusClass, TimeZoneName, UsageAck, UsageBatch};
use uuid::Uuid;

use crate::gateways::GatewayId;
use crate::stored::stored_enum;
use crate::{Error, Result};

pub mod alerts;
pub mod buckets;
pub mod levels;
pub mod recent;
pub mod report;
pub mod retention;

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
        // Ahead of the server's clock is not wrong, only early (an agent's clock runs fast, or
        // the server's slow): a conflict the agent retries, not an invalid batch it drops.
        if minute > latest && minute <= latest + MAX_AHEAD.whole_seconds() * 12 {
            return Err(Error::Conflict(format!(
                "{at}: a minute more than {} minutes ahead of the server's clock; send the batch again later",
                MAX_AHEAD.whole_minutes()
            )));
        }
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
    for (i, refused) in batch.refused.iter().enumerate() {
        check_minute(format!("refused[{i}].minute"), refused.minute)?;
        check_count(format!("refused[{i}].count"), refused.count)?;
    }
    for (i, call) in batch.failed_calls.iter().enumerate() {
        check_minute(format!("failed_calls[{i}].at"), call.at.as_second() - call.at.as_second().rem_euclid(60))?;
        check_count(format!("failed_calls[{i}].latency_us"), call.latency_us)?;
    }
    Ok(())
}

/// Sums of one rollup row before it is written.
#[derive(Default)]
struct Sums {
    hits: i64,
    status: [i64; 4],
    latency: [i64; LATENCY_BUCKETS],
}

fn saturating(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn add_latency(into: &mut [i64; LATENCY_BUCKETS], from: &[u64; LATENCY_BUCKETS]) {
    for (sum, &n) in into.iter_mut().zip(from) {
        *sum = sum.saturating_add(saturating(n));
    }
}

/// Counts a batch exactly once: the batch id is recorded in the same
/// transaction as the rollups, so a replay after a lost ack changes nothing.
/// Entries for metrics deleted since are dropped, and so are those for
/// applications deleted since, but for their usage up to the deletion, which
/// is still billed.
///
/// Entries go into minute, hour, day and month rollups (buckets in the plan's
/// zone, see [`buckets`]) with their latency buckets; refusals into
/// `usage_refusals` the same way; failed calls into `failed_calls`, trimmed
/// to the newest [`FAILED_CALLS_KEPT`] per application; applications whose
/// usage moved are queued for the alert job.
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
    let apps: Vec<Uuid> = batch
        .entries
        .iter()
        .map(|e| e.application_id)
        .chain(batch.refused.iter().map(|r| r.application_id))
        .chain(batch.failed_calls.iter().map(|f| f.application_id))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let metrics: Vec<Uuid> = batch.entries.iter().map(|e| e.metric).collect::<HashSet<_>>().into_iter().collect();
    // Each known application with its plan's zone (the zone of its buckets).
    let mut zones: HashMap<String, TimeZone> = HashMap::new();
    let mut zone_of = |name: String| {
        zones
            .entry(name)
            .or_insert_with_key(|name| TimeZoneName::new(name).map(|n| n.time_zone().clone()).unwrap_or(TimeZone::UTC))
            .clone()
    };
    // With its API: a metric of another API is never counted on it.
    let known_apps: HashMap<Uuid, (TimeZone, Uuid)> = sqlx::query!(
        "SELECT a.id, p.time_zone, p.api_id FROM applications a JOIN plans p ON p.id = a.plan_id WHERE a.id = ANY($1)",
        &apps
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|row| (row.id, (zone_of(row.time_zone), row.api_id)))
    .collect();
    // Deleted applications with billing history: their usage up to the deletion is still
    // owed, so it is rolled up (in the zone of the last plan) for the billing run, and
    // nothing else of theirs is kept. Usage after the deletion cannot be theirs.
    let gone: Vec<Uuid> = apps.iter().filter(|id| !known_apps.contains_key(id)).copied().collect();
    let mut deleted_apps: HashMap<Uuid, (TimeZone, Uuid, i64)> = HashMap::new();
    if !gone.is_empty() {
        let rows = sqlx::query!(
            r#"SELECT DISTINCT ON (s.application_id) s.application_id, p.time_zone, p.api_id, s.ended_at AS "ended_at!"
               FROM subscription_segments s JOIN plans p ON p.id = s.plan_id
               WHERE s.application_id = ANY($1) AND s.ended_at IS NOT NULL
                 AND NOT EXISTS (SELECT 1 FROM subscription_segments o
                                 WHERE o.application_id = s.application_id AND o.ended_at IS NULL)
               ORDER BY s.application_id, s.ended_at DESC"#,
            &gone
        )
        .fetch_all(&mut *tx)
        .await?;
        for row in rows {
            deleted_apps
                .insert(row.application_id, (zone_of(row.time_zone), row.api_id, row.ended_at.unix_timestamp()));
        }
    }
    let metric_apis: HashMap<Uuid, Uuid> = sqlx::query!("SELECT id, api_id FROM metrics WHERE id = ANY($1)", &metrics)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|row| (row.id, row.api_id))
        .collect();

    // Merged per row, in key order: no row is written twice by one statement,
    // and concurrent batches lock rows in the same order.
    let mut rollups: BTreeMap<(Uuid, Uuid, usize, i64), Sums> = BTreeMap::new();
    // The earliest minute counted per live application, for the alert job.
    let mut earliest: BTreeMap<Uuid, i64> = BTreeMap::new();
    for entry in &batch.entries {
        let (tz, api) = match (known_apps.get(&entry.application_id), deleted_apps.get(&entry.application_id)) {
            (Some((tz, api)), _) => (tz, api),
            (None, Some((tz, api, deleted_at))) if entry.minute <= *deleted_at => (tz, api),
            _ => continue,
        };
        // An unknown metric, or one of another API (an agent's bug, or a stolen agent token),
        // would show in that application's usage: skipped, as an unknown application is.
        if metric_apis.get(&entry.metric) != Some(api) {
            continue;
        }
        if known_apps.contains_key(&entry.application_id) {
            let minute = earliest.entry(entry.application_id).or_insert(entry.minute);
            *minute = (*minute).min(entry.minute);
        }
        // Bounded by check_bounds, so neither the sum nor the conversion saturates in practice.
        let requests = saturating(entry.latency_buckets.iter().fold(0u64, |sum, &n| sum.saturating_add(n)));
        let class = match entry.status_class {
            StatusClass::Success => Some(0),
            StatusClass::Redirection => Some(1),
            StatusClass::ClientError => Some(2),
            StatusClass::ServerError => Some(3),
            StatusClass::Informational => None,
        };
        for (g, &granularity) in Granularity::ALL.iter().enumerate() {
            let bucket = buckets::bucket_start(granularity, entry.minute, tz);
            let sums = rollups.entry((entry.application_id, entry.metric, g, bucket)).or_default();
            sums.hits = sums.hits.saturating_add(saturating(entry.count));
            if let Some(class) = class {
                sums.status[class] = sums.status[class].saturating_add(requests);
            }
            add_latency(&mut sums.latency, &entry.latency_buckets);
        }
    }
    if !rollups.is_empty() {
        let n = rollups.len();
        let (mut app_ids, mut metric_ids, mut grans, mut starts) =
            (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut hits, mut s2, mut s3, mut s4, mut s5) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let mut latency = Vec::with_capacity(n * LATENCY_BUCKETS);
        for ((app, metric, g, bucket), sums) in &rollups {
            app_ids.push(*app);
            metric_ids.push(*metric);
            grans.push(Granularity::ALL[*g].as_str().to_owned());
            starts.push(OffsetDateTime::from_unix_timestamp(*bucket).unwrap_or(OffsetDateTime::UNIX_EPOCH));
            hits.push(sums.hits);
            s2.push(sums.status[0]);
            s3.push(sums.status[1]);
            s4.push(sums.status[2]);
            s5.push(sums.status[3]);
            latency.extend_from_slice(&sums.latency);
        }
        sqlx::query!(
            "INSERT INTO usage_rollups AS r (application_id, metric_id, granularity, bucket_start, hits,
                                             status_2xx, status_3xx, status_4xx, status_5xx, latency_buckets)
             SELECT app, metric, g::rollup_granularity, bucket, hits, s2, s3, s4, s5,
                    ($10::int8[])[(ord - 1) * 11 + 1 : ord * 11]
             FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[], $5::int8[], $6::int8[], $7::int8[],
                         $8::int8[], $9::int8[]) WITH ORDINALITY AS t(app, metric, g, bucket, hits, s2, s3, s4, s5, ord)
             ON CONFLICT (application_id, metric_id, granularity, bucket_start) DO UPDATE SET
                 hits = least(r.hits::numeric + EXCLUDED.hits, 9223372036854775807)::bigint,
                 status_2xx = least(r.status_2xx::numeric + EXCLUDED.status_2xx, 9223372036854775807)::bigint,
                 status_3xx = least(r.status_3xx::numeric + EXCLUDED.status_3xx, 9223372036854775807)::bigint,
                 status_4xx = least(r.status_4xx::numeric + EXCLUDED.status_4xx, 9223372036854775807)::bigint,
                 status_5xx = least(r.status_5xx::numeric + EXCLUDED.status_5xx, 9223372036854775807)::bigint,
                 latency_buckets = usage_add_buckets(r.latency_buckets, EXCLUDED.latency_buckets)",
            &app_ids,
            &metric_ids,
            &grans,
            &starts,
            &hits,
            &s2,
            &s3,
            &s4,
            &s5,
            &latency
        )
        .execute(&mut *tx)
        .await?;
        // The alert job looks at these applications next (sorted: lock order), from the
        // earliest minute of their usage in this batch on.
        let touched: Vec<Uuid> = earliest.keys().copied().collect();
        let since: Vec<OffsetDateTime> = earliest
            .values()
            .map(|&minute| OffsetDateTime::from_unix_timestamp(minute).unwrap_or(OffsetDateTime::UNIX_EPOCH))
            .collect();
        sqlx::query!(
            "INSERT INTO usage_alert_queue (application_id, earliest) SELECT * FROM unnest($1::uuid[], $2::timestamptz[])
             ON CONFLICT (application_id) DO UPDATE
             SET earliest = LEAST(usage_alert_queue.earliest, EXCLUDED.earliest)",
            &touched,
            &since
        )
        .execute(&mut *tx)
        .await?;
    }
    ingest_refusals(&mut tx, batch, &known_apps).await?;
    crate::routing::usage::ingest(&mut tx, batch).await?;
    ingest_failed_calls(&mut tx, batch, &known_apps).await?;
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

/// Refusals rolled up like usage, per status instead of per metric.
async fn ingest_refusals(
    tx: &mut sqlx::PgConnection,
    batch: &UsageBatch,
    known_apps: &HashMap<Uuid, (TimeZone, Uuid)>,
) -> Result<()> {
    // (application, granularity index, bucket start, status) → requests and latency.
    type Key = (Uuid, usize, i64, u16);
    let mut rows: BTreeMap<Key, (i64, [i64; LATENCY_BUCKETS])> = BTreeMap::new();
    for refused in &batch.refused {
        let Some((tz, _)) = known_apps.get(&refused.application_id) else { continue };
        for (g, &granularity) in Granularity::ALL.iter().enumerate() {
            let bucket = buckets::bucket_start(granularity, refused.minute, tz);
            let (requests, latency) = rows.entry((refused.application_id, g, bucket, refused.status)).or_default();
            *requests = requests.saturating_add(saturating(refused.count));
            add_latency(latency, &refused.latency_buckets);
        }
    }
    if rows.is_empty() {
        return Ok(());
    }
    let (mut apps, mut grans, mut starts, mut statuses, mut requests, mut latency) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((app, g, bucket, status), (count, buckets)) in &rows {
        apps.push(*app);
        grans.push(Granularity::ALL[*g].as_str().to_owned());
        starts.push(OffsetDateTime::from_unix_timestamp(*bucket).unwrap_or(OffsetDateTime::UNIX_EPOCH));
        statuses.push(i16::try_from(*status).unwrap_or(599));
        requests.push(*count);
        latency.extend_from_slice(buckets);
    }
    sqlx::query!(
        "INSERT INTO usage_refusals AS r (application_id, granularity, bucket_start, status, requests, latency_buckets)
         SELECT app, g::rollup_granularity, bucket, status, requests, ($6::int8[])[(ord - 1) * 11 + 1 : ord * 11]
         FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[], $4::int2[], $5::int8[])
              WITH ORDINALITY AS t(app, g, bucket, status, requests, ord)
         ON CONFLICT (application_id, granularity, bucket_start, status) DO UPDATE SET
             requests = least(r.requests::numeric + EXCLUDED.requests, 9223372036854775807)::bigint,
             latency_buckets = usage_add_buckets(r.latency_buckets, EXCLUDED.latency_buckets)",
        &apps,
        &grans,
        &starts,
        &statuses,
        &requests,
        &latency
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// How many failed calls are kept per application (the newest).
pub const FAILED_CALLS_KEPT: i64 = 200;

/// Stores the batch's failed calls and trims each application to the newest
/// [`FAILED_CALLS_KEPT`]. Applications are locked (advisory, in id order) so
/// two batches for one application cannot both trim before either inserts.
async fn ingest_failed_calls(
    tx: &mut sqlx::PgConnection,
    batch: &UsageBatch,
    known_apps: &HashMap<Uuid, (TimeZone, Uuid)>,
) -> Result<()> {
    let calls: Vec<_> = batch.failed_calls.iter().filter(|c| known_apps.contains_key(&c.application_id)).collect();
    if calls.is_empty() {
        return Ok(());
    }
    let mut apps: Vec<Uuid> = calls.iter().map(|c| c.application_id).collect();
    apps.sort_unstable();
    apps.dedup();
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended('failed_calls:' || app::text, 0))
         FROM (SELECT unnest($1::uuid[]) AS app ORDER BY 1) AS a",
        &apps
    )
    .fetch_all(&mut *tx)
    .await?;
    let at: Vec<OffsetDateTime> = calls
        .iter()
        .map(|c| OffsetDateTime::from_unix_timestamp_nanos(c.at.as_nanosecond()).unwrap_or(OffsetDateTime::UNIX_EPOCH))
        .collect();
    sqlx::query!(
        "INSERT INTO failed_calls (application_id, api_id, at, method, metric_id, path, status, error, key_prefix, latency_us,
                                   request_id)
         SELECT app, (SELECT p.id FROM api_products p WHERE p.id = t.api), at, method,
                (SELECT m.id FROM metrics m WHERE m.id = t.metric), path, status, error, key_prefix, latency_us, request_id
         FROM UNNEST($1::uuid[], $2::uuid[], $3::timestamptz[], $4::text[], $5::uuid[], $6::text[], $7::int2[],
                     $8::text[], $9::text[], $10::int8[], $11::uuid[])
              AS t(app, api, at, method, metric, path, status, error, key_prefix, latency_us, request_id)",
        &calls.iter().map(|c| c.application_id).collect::<Vec<_>>(),
        &calls.iter().map(|c| c.api_id).collect::<Vec<_>>(),
        &at,
        &calls.iter().map(|c| c.method.clone()).collect::<Vec<_>>(),
        &calls.iter().map(|c| c.metric).collect::<Vec<Option<Uuid>>>() as &[Option<Uuid>],
        &calls.iter().map(|c| c.path.clone()).collect::<Vec<_>>(),
        &calls.iter().map(|c| i16::try_from(c.status).unwrap_or(599)).collect::<Vec<_>>(),
        &calls.iter().map(|c| c.error.clone()).collect::<Vec<Option<String>>>() as &[Option<String>],
        &calls.iter().map(|c| c.key_prefix.clone()).collect::<Vec<Option<String>>>() as &[Option<String>],
        &calls.iter().map(|c| saturating(c.latency_us)).collect::<Vec<_>>(),
        &calls.iter().map(|c| c.request_id).collect::<Vec<Option<Uuid>>>() as &[Option<Uuid>]
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "DELETE FROM failed_calls WHERE id IN (
             SELECT id FROM (
                 SELECT id, row_number() OVER (PARTITION BY application_id ORDER BY at DESC, id DESC) AS rank
                 FROM failed_calls WHERE application_id = ANY($1)
             ) AS ranked WHERE rank > $2)",
        &apps,
        FAILED_CALLS_KEPT
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Total usage of one metric of an application in a time range, from
/// minute rollups (for tests and the usage pages).
pub async fn total_hits(pool: &PgPool, application: Uuid, metric: Uuid) -> Result<i64> {
    let total = sqlx::query_scalar!(
        r#"SELECT LEAST(coalesce(sum(hits), 0), 9223372036854775807)::bigint AS "total!" FROM usage_rollups WHERE application_id = $1 AND metric_id = $2 AND granularity = 'minute'"#,
        application,
        metric
    )
    .fetch_one(pool)
    .await?;
    Ok(total)
}
