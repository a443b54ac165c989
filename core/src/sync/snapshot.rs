//! Builds what an agent is sent: a full snapshot at the feed's head, or the
//! delta after a revision it has, read in one consistent transaction.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use sqlx::PgPool;
use tollgate_protocol::{Change, CurrentUsage, Delta, Plan, Snapshot, Window};
use uuid::Uuid;

use super::load;
use crate::Result;

/// Deltas longer than this are sent as a fresh snapshot instead.
const MAX_DELTA_CHANGES: i64 = 10_000;

/// An entity as the feed names it: its kind, its id and, for a credential,
/// its key hash (the only name a revoked key keeps).
type Changed = (String, Option<Uuid>, Option<Vec<u8>>);

/// Begins a read-only transaction that sees one consistent state, on a pooled
/// connection or on one the caller holds.
pub(super) async fn consistent_read<'c>(
    conn: impl sqlx::Acquire<'c, Database = sqlx::Postgres>,
) -> Result<sqlx::Transaction<'c, sqlx::Postgres>> {
    let mut tx = conn.begin().await?;
    sqlx::query!("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    Ok(tx)
}

pub(super) async fn head(conn: &mut sqlx::PgConnection) -> Result<u64> {
    let head = sqlx::query_scalar!(r#"SELECT coalesce(max(revision), 0) AS "head!" FROM config_changes"#)
        .fetch_one(conn)
        .await?;
    Ok(u64::try_from(head).unwrap_or(0))
}

/// Everything an agent needs, at the feed's current head revision.
pub async fn build_snapshot(pool: &PgPool) -> Result<Snapshot> {
    let mut tx = consistent_read(pool).await?;
    let now = Timestamp::now();
    let mut snapshot = Snapshot::new(head(&mut tx).await?, now);
    snapshot.apis = load::apis(&mut tx, None).await?;
    snapshot.plans = load::plans(&mut tx, None).await?;
    snapshot.routing = super::routing::routing(&mut tx, None).await?;
    snapshot.mocks = crate::apis::mocks::load(&mut tx, None).await?;
    snapshot.applications = load::applications(&mut tx, None).await?;
    snapshot.credentials = load::credentials(&mut tx, None).await?;
    snapshot.usage = current_usage(&mut tx, &snapshot.plans, now).await?;
    snapshot.declare_features();
    tx.commit().await?;
    Ok(snapshot)
}

/// The changes after `since`, as one delta; `None` when the agent should
/// get a snapshot instead (too far behind, or a revision this feed never had).
pub async fn build_delta(pool: &PgPool, since: u64) -> Result<Option<Delta>> {
    let mut tx = consistent_read(pool).await?;
    let head = head(&mut tx).await?;
    if since > head {
        return Ok(None);
    }
    let since_i64 = i64::try_from(since).unwrap_or(i64::MAX);
    let rows = sqlx::query!(
        "SELECT revision, entity, entity_id, operation, key_hash FROM config_changes WHERE revision > $1 ORDER BY revision LIMIT $2",
        since_i64,
        MAX_DELTA_CHANGES + 1
    )
    .fetch_all(&mut *tx)
    .await?;
    if rows.len() as i64 > MAX_DELTA_CHANGES {
        return Ok(None);
    }
    // Only the latest state of each entity matters; keep the order of last mention.
    let mut latest: BTreeMap<i64, Changed> = BTreeMap::new();
    let mut seen: HashMap<Changed, i64> = HashMap::new();
    for row in rows {
        let key =
            (row.entity.clone(), row.entity_id, if row.entity == "credential" { row.key_hash.clone() } else { None });
        if let Some(previous) = seen.insert(key.clone(), row.revision) {
            latest.remove(&previous);
        }
        latest.insert(row.revision, key);
    }
    let mut changes = Vec::with_capacity(latest.len());
    for (entity, id, hash) in latest.into_values() {
        let Some(id) = id else { continue };
        match entity.as_str() {
            "api" => match load::apis(&mut tx, Some(id)).await?.pop() {
                Some(api) => {
                    changes.push(Change::UpsertApi(api));
                    // The default group's targets are the API's own upstreams.
                    match super::routing::routing(&mut tx, Some(id)).await?.pop() {
                        Some(routing) => changes.push(Change::UpsertRouting(routing)),
                        // Routing agents may hold can be left with nothing to send (the
                        // default group's targets removed): it is removed. Only for APIs with
                        // groups, since version-1 agents cannot read the change.
                        None if super::routing::has_groups(&mut tx, id).await? => {
                            changes.push(Change::RemoveRouting { api_id: id });
                        }
                        None => {}
                    }
                }
                None => changes.push(Change::RemoveApi { id }),
            },
            "routing" => match super::routing::routing(&mut tx, Some(id)).await?.pop() {
                Some(routing) => changes.push(Change::UpsertRouting(routing)),
                None => changes.push(Change::RemoveRouting { api_id: id }),
            },
            "plan" => match load::plans(&mut tx, Some(id)).await?.pop() {
                Some(plan) => changes.push(Change::UpsertPlan(plan)),
                None => changes.push(Change::RemovePlan { id }),
            },
            "application" => match load::applications(&mut tx, Some(id)).await?.pop() {
                Some(app) => changes.push(Change::UpsertApplication(app)),
                None => changes.push(Change::RemoveApplication { id }),
            },
            "mocks" => match crate::apis::mocks::load(&mut tx, Some(id)).await?.pop() {
                Some(mocks) => changes.push(Change::UpsertMocks(mocks)),
                None => changes.push(Change::RemoveMocks { api_id: id }),
            },
            "credential" => match load::credentials(&mut tx, Some(id)).await?.pop() {
                Some(credential) => changes.push(Change::UpsertCredential(credential)),
                None => {
                    if let Some(hash) = hash {
                        changes.push(Change::RevokeCredential { hash: load::key_hash(&hash)? });
                    }
                }
            },
            _ => {}
        }
    }
    tx.commit().await?;
    Ok(Some(Delta { base_revision: since, revision: head, changes }))
}

/// Usage so far in the current hour-or-longer windows of every limit, so an
/// agent that restarts does not hand out a fresh quota. The plan's applications
/// are joined in SQL (a million ids as one `= ANY($n)` parameter took seconds).
pub(super) async fn current_usage(
    conn: &mut sqlx::PgConnection,
    plans: &[Plan],
    now: Timestamp,
) -> Result<Vec<CurrentUsage>> {
    let mut usage = Vec::new();
    for plan in plans {
        for limit in plan.limits.iter().filter(|l| l.period.is_seeded()) {
            // Summed from the buckets that tile the window in the plan's zone
            // (the zone intake bucketed this plan's usage in).
            let window = Window::containing(limit.period, now, plan.time_zone.time_zone());
            let rows =
                crate::usage::buckets::used_in_window_by_plan(&mut *conn, plan.id, limit.metric, &window).await?;
            for (application_id, used) in rows {
                usage.push(CurrentUsage {
                    application_id,
                    metric: limit.metric,
                    period: limit.period,
                    window_start: window.id(),
                    value: u64::try_from(used).unwrap_or(0),
                });
            }
        }
    }
    Ok(usage)
}
