//! Change reports made off the request path: a staged version whose
//! comparison is large gets a row in `staging_jobs`, which a worker of any
//! replica claims (`FOR UPDATE SKIP LOCKED`, so two replicas never run one
//! job at once), runs on a blocking thread while it writes its progress and
//! extends its lease, and finishes by storing the report. A job whose
//! worker died is claimed again when its lease runs out; one that fails
//! `MAX_ATTEMPTS` times is marked failed with its reason.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::PgPool;
use tollgate_openapi::compare_with;
use uuid::Uuid;

use super::types::{ApiId, CompatibilityPolicy};
use crate::{Error, Result};

/// How long a claimed job is its worker's; the worker extends it with
/// every progress report.
const LEASE_SECONDS: f64 = 30.0;

/// How often a running job writes its progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Runs before a job is given up as failed.
const MAX_ATTEMPTS: i32 = 3;

/// A claimed job.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: Uuid,
    pub api: ApiId,
    pub number: i32,
    pub base_number: i32,
    pub attempts: i32,
}

/// Claims the oldest job that is queued or whose worker's lease ran out.
pub async fn claim(pool: &PgPool) -> Result<Option<Job>> {
    let row = sqlx::query!(
        "UPDATE staging_jobs SET state = 'running', phase = 'reading', attempts = attempts + 1,
                lease_until = now() + make_interval(secs => $1), started_at = coalesce(started_at, now())
         WHERE id = (SELECT id FROM staging_jobs
                     WHERE state = 'queued' OR (state = 'running' AND lease_until < now())
                     ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING id, api_id, version_number, base_number, attempts",
        LEASE_SECONDS
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| Job {
        id: r.id,
        api: ApiId(r.api_id),
        number: r.version_number,
        base_number: r.base_number,
        attempts: r.attempts,
    }))
}

/// Where a running comparison is, shared with the thread doing it.
#[derive(Default)]
struct Shared {
    /// 0 reading, 1 comparing, 2 saving.
    phase: AtomicU8,
    done: AtomicUsize,
    total: AtomicUsize,
}

impl Shared {
    fn phase(&self) -> &'static str {
        match self.phase.load(Ordering::Relaxed) {
            0 => "reading",
            1 => "comparing",
            _ => "saving",
        }
    }
}

/// Makes a claimed job's report and stores it. On an error the caller
/// hands the job back with `fail`.
pub async fn run(pool: &PgPool, job: &Job) -> Result<()> {
    let sources = sqlx::query!(
        "SELECT number, spec_source FROM api_versions WHERE api_id = $1 AND number IN ($2, $3)",
        job.api.0,
        job.base_number,
        job.number
    )
    .fetch_all(pool)
    .await?;
    let source = |n: i32| sources.iter().find(|r| r.number == n).map(|r| r.spec_source.clone());
    let (Some(old), Some(new)) = (source(job.base_number), source(job.number)) else {
        return Err(Error::Internal("the versions to compare are gone".into()));
    };
    let policy = sqlx::query_scalar!(
        r#"SELECT compatibility_policy AS "policy: CompatibilityPolicy" FROM api_products WHERE id = $1"#,
        job.api.0
    )
    .fetch_one(pool)
    .await?;

    let shared = Arc::new(Shared::default());
    let worker = Arc::clone(&shared);
    let mut compare = tokio::task::spawn_blocking(move || {
        // The two documents are read side by side.
        let (old, new) = std::thread::scope(|s| {
            let old = s.spawn(|| tollgate_openapi::reparse(&old));
            let new = tollgate_openapi::reparse(&new);
            (old.join(), new)
        });
        let old = old
            .map_err(|_| "reading the current version failed".to_owned())?
            .map_err(|e| format!("the current version no longer parses: {e}"))?;
        let new = new.map_err(|e| format!("the staged version no longer parses: {e}"))?;
        worker.phase.store(1, Ordering::Relaxed);
        let report = compare_with(&old.model, &new.model, policy.engine(), &mut |done, total| {
            worker.done.store(done, Ordering::Relaxed);
            worker.total.store(total, Ordering::Relaxed);
        });
        worker.phase.store(2, Ordering::Relaxed);
        Ok::<_, String>(report)
    });
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    let outcome = loop {
        tokio::select! {
            outcome = &mut compare => break outcome,
            _ = tick.tick() => report_progress(pool, job, &shared).await?,
        }
    };
    let mut report =
        outcome.map_err(|e| Error::Internal(format!("the comparison stopped: {e}")))?.map_err(Error::Internal)?;

    let mut tx = pool.begin().await?;
    // The policy may have changed while the job ran; the report follows the current one.
    let policy = sqlx::query_scalar!(
        r#"SELECT compatibility_policy AS "policy: CompatibilityPolicy" FROM api_products WHERE id = $1 FOR SHARE"#,
        job.api.0
    )
    .fetch_one(&mut *tx)
    .await?;
    report.apply_policy(policy.engine());
    let value = serde_json::to_value(&report).map_err(|e| Error::Internal(e.to_string()))?;
    sqlx::query!(
        "UPDATE api_versions SET change_report = $3 WHERE api_id = $1 AND number = $2 AND change_report IS NULL",
        job.api.0,
        job.number,
        value
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE staging_jobs SET state = 'ready', phase = 'done', done = total, lease_until = NULL, error = NULL,
                finished_at = now()
         WHERE id = $1",
        job.id
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn report_progress(pool: &PgPool, job: &Job, shared: &Shared) -> Result<()> {
    let count = |n: &AtomicUsize| i32::try_from(n.load(Ordering::Relaxed)).unwrap_or(i32::MAX);
    sqlx::query!(
        "UPDATE staging_jobs SET phase = $2, done = $3, total = $4, lease_until = now() + make_interval(secs => $5)
         WHERE id = $1 AND state = 'running'",
        job.id,
        shared.phase(),
        count(&shared.done),
        count(&shared.total),
        LEASE_SECONDS
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Hands a job back after an error: queued again, or failed for good after
/// `MAX_ATTEMPTS` runs.
pub async fn fail(pool: &PgPool, job: &Job, error: &str) -> Result<()> {
    let error: String = error.chars().take(500).collect();
    sqlx::query!(
        "UPDATE staging_jobs SET state = CASE WHEN attempts >= $2 THEN 'failed'::report_state ELSE 'queued'::report_state END,
                phase = 'queued', lease_until = NULL, error = $3,
                finished_at = CASE WHEN attempts >= $2 THEN now() END
         WHERE id = $1",
        job.id,
        MAX_ATTEMPTS,
        error
    )
    .execute(pool)
    .await?;
    Ok(())
}
