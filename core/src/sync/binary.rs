//! The snapshot in the binary encoding, written row by row as Postgres streams
//! the rows: no vector of a million credentials, no 300 MB JSON buffer.
//!
//! Applications and credentials are read with `fetch` (a stream), not
//! `fetch_all`, in one read-only repeatable-read transaction. Credentials name
//! their application by its position in the application order; Postgres
//! numbers the applications itself (`row_number()` over the same ordered set),
//! so the server keeps no id → index map either.

use std::collections::HashMap;
use std::pin::pin;

use futures_util::TryStreamExt;
use jiff::Timestamp;
use sqlx::{PgConnection, PgPool};
use tollgate_protocol::KeyKind;
use tollgate_protocol::Snapshot;
use tollgate_protocol::binary::{ApplicationRecord, CredentialRecord, SnapshotHead, SnapshotWriter};
use uuid::Uuid;

use super::load;
use super::snapshot::{consistent_read, current_usage, head};
use crate::applications::ApplicationState;
use crate::credentials::CredentialKind;
use crate::{Error, Result};

/// Output is handed to the sink in chunks of about this size.
const CHUNK_BYTES: usize = 256 * 1024;

/// How a streamed build ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Streamed {
    /// The whole snapshot was handed to the sink; its revision.
    Complete { revision: u64 },
    /// Nobody waited for it any more: it stopped, and its Postgres backend was ended.
    Cancelled,
}

/// How long ending an abandoned build's backend may take before we stop waiting.
const END_BACKEND_WAIT_MS: i64 = 10_000;

/// Builds the snapshot at the feed's head in the binary encoding (frames only, no
/// preamble) and hands it to `sink` in chunks of whole frames. `revision` is called once
/// the revision is known.
///
/// When `abandoned` resolves first, the build stops wherever it is, even inside a
/// statement Postgres is still running or waiting on a lock: its backend is ended
/// while this function still holds its connection, so no other work can be on it.
/// A `pg_cancel_backend` could miss a statement still on its way to the backend.
pub async fn stream_binary_snapshot(
    pool: &PgPool,
    revision: impl FnMut(u64),
    sink: impl FnMut(Vec<u8>),
    abandoned: impl Future<Output = ()>,
) -> Result<Streamed> {
    let mut abandoned = pin!(abandoned);
    let mut conn = tokio::select! {
        biased;
        () = &mut abandoned => return Ok(Streamed::Cancelled),
        conn = pool.acquire() => conn?,
    };
    let pid = sqlx::query_scalar!(r#"SELECT pg_backend_pid() AS "pid!""#).fetch_one(&mut *conn).await?;
    {
        let mut build = pin!(write_snapshot(&mut conn, revision, sink));
        tokio::select! {
            biased;
            () = &mut abandoned => {}
            built = &mut build => return built.map(|revision| Streamed::Complete { revision }),
        }
        end_backend(pool, pid).await?;
    }
    // The backend is gone: the connection must not go back to the pool.
    drop(conn.detach());
    Ok(Streamed::Cancelled)
}

/// Ends an abandoned build's backend and waits until it has exited, so its
/// transaction, its locks and whatever statement it ran are gone.
async fn end_backend(pool: &PgPool, pid: i32) -> Result<()> {
    let ended = sqlx::query_scalar!(r#"SELECT pg_terminate_backend($1, $2) AS "ended!""#, pid, END_BACKEND_WAIT_MS)
        .fetch_one(pool)
        .await?;
    if !ended {
        tracing::warn!(pid, "an abandoned snapshot build's backend did not exit in time");
    }
    Ok(())
}

/// Writes the snapshot on `conn`; its revision.
async fn write_snapshot(
    conn: &mut PgConnection,
    mut revision: impl FnMut(u64),
    mut sink: impl FnMut(Vec<u8>),
) -> Result<u64> {
    let mut tx = consistent_read(&mut *conn).await?;
    let now = Timestamp::now();
    let head = head(&mut tx).await?;
    revision(head);
    let encode = |e: tollgate_protocol::binary::BinaryError| Error::Internal(format!("encoding the snapshot: {e}"));
    let mut writer = SnapshotWriter::new(Vec::with_capacity(CHUNK_BYTES * 2));
    let apis = load::apis(&mut tx, None).await?;
    let plans = load::plans(&mut tx, None).await?;
    let routing = super::routing::routing(&mut tx, None).await?;
    let mocks = crate::apis::mocks::load(&mut tx, None).await?;
    // The lowest version that applies it: agents of version 1 take it unless it uses a feature.
    let requires = Snapshot::features_of(&routing, &mocks);
    let protocol_version = tollgate_protocol::features::version_for(&requires);
    writer.head(&SnapshotHead { protocol_version, revision: head, generated_at: now, requires }).map_err(encode)?;
    writer.catalog(&apis, &plans, &routing, &mocks).map_err(encode)?;
    let plan_index: HashMap<Uuid, u32> = plans.iter().enumerate().map(|(i, plan)| (plan.id, i as u32)).collect();

    // Hands complete frames over once there are at least `at_least` bytes.
    let mut flush = |writer: &mut SnapshotWriter<Vec<u8>>, at_least: usize| {
        let out = writer.get_mut();
        if out.len() >= at_least && !out.is_empty() {
            sink(std::mem::replace(out, Vec::with_capacity(CHUNK_BYTES * 2)));
        }
    };
    flush(&mut writer, 0);

    {
        let mut rows = sqlx::query!(
            r#"SELECT ap.id, ap.plan_id, CASE WHEN ac.state = 'suspended' THEN 'suspended' ELSE ap.state END AS "state!: ApplicationState", ap.app_id
               FROM applications ap JOIN accounts ac ON ac.id = ap.account_id
               WHERE ap.state <> 'rejected' ORDER BY ap.id"#
        )
        .fetch(&mut *tx);
        while let Some(row) = rows.try_next().await? {
            let state = match row.state {
                ApplicationState::Pending => tollgate_protocol::ApplicationState::Pending,
                ApplicationState::Live => tollgate_protocol::ApplicationState::Live,
                ApplicationState::Suspended => tollgate_protocol::ApplicationState::Suspended,
                ApplicationState::Rejected => continue,
            };
            let plan = *plan_index
                .get(&row.plan_id)
                .ok_or_else(|| Error::Internal(format!("application {} has an unknown plan", row.id)))?;
            writer
                .application(&ApplicationRecord { id: row.id, plan, state, app_id: row.app_id.as_deref() })
                .map_err(encode)?;
            flush(&mut writer, CHUNK_BYTES);
        }
    }

    {
        // The same ordered set as above, numbered from 0: a credential names its
        // application by that number.
        let mut rows = sqlx::query!(
            r#"WITH numbered AS (
                   SELECT ap.id, row_number() OVER (ORDER BY ap.id) - 1 AS "index"
                   FROM applications ap JOIN accounts ac ON ac.id = ap.account_id
                   WHERE ap.state <> 'rejected')
               SELECT c.key_hash, c.kind AS "kind: CredentialKind", n.index AS "index!", c.expires_at
               FROM credentials c JOIN numbered n ON n.id = c.application_id
               WHERE c.revoked_at IS NULL AND (c.expires_at IS NULL OR c.expires_at > now())"#
        )
        .fetch(&mut *tx);
        while let Some(row) = rows.try_next().await? {
            let hash = load::key_hash(&row.key_hash)?.0;
            let kind: KeyKind = row.kind.key_kind();
            let application =
                u32::try_from(row.index).map_err(|_| Error::Internal("more than 2^32 applications".into()))?;
            writer
                .credential(&CredentialRecord {
                    hash,
                    kind,
                    application,
                    expires_at: row.expires_at.map(load::timestamp),
                })
                .map_err(encode)?;
            flush(&mut writer, CHUNK_BYTES);
        }
    }

    let usage = current_usage(&mut tx, &plans, now).await?;
    writer.usage(&usage).map_err(encode)?;
    tx.commit().await?;
    let out = writer.finish().map_err(encode)?;
    if !out.is_empty() {
        sink(out);
    }
    Ok(head)
}
