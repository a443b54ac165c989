//! The snapshot in the binary encoding, written row by row as Postgres streams
//! the rows: no vector of a million credentials, no 300 MB JSON buffer.
//!
//! Applications and credentials are read with `fetch` (a stream), not
//! `fetch_all`, in one read-only repeatable-read transaction. Credentials name
//! their application by its position in the application order; Postgres
//! numbers the applications itself (`row_number()` over the same ordered set),
//! so the server keeps no id → index map either.

use std::collections::HashMap;

use futures_util::TryStreamExt;
use jiff::Timestamp;
use sqlx::PgPool;
use tollgate_protocol::binary::{ApplicationRecord, CredentialRecord, SnapshotHead, SnapshotWriter};
use tollgate_protocol::{KeyKind, PROTOCOL_VERSION};
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
    /// The sink asked to stop (nobody is listening any more); the query was cancelled.
    Cancelled,
}

/// Builds the snapshot at the feed's head in the binary encoding (frames only, no
/// preamble) and hands it to `sink` in chunks of whole frames. `revision` is called once
/// the revision is known. When `sink` returns false the build stops and its query is
/// cancelled in Postgres.
pub async fn stream_binary_snapshot(
    pool: &PgPool,
    mut revision: impl FnMut(u64),
    mut sink: impl FnMut(Vec<u8>) -> bool,
) -> Result<Streamed> {
    let mut tx = consistent_read(pool).await?;
    let pid = sqlx::query_scalar!(r#"SELECT pg_backend_pid() AS "pid!""#).fetch_one(&mut *tx).await?;
    let now = Timestamp::now();
    let head = head(&mut tx).await?;
    revision(head);
    let encode = |e: tollgate_protocol::binary::BinaryError| Error::Internal(format!("encoding the snapshot: {e}"));
    let mut writer = SnapshotWriter::new(Vec::with_capacity(CHUNK_BYTES * 2));
    writer
        .head(&SnapshotHead { protocol_version: PROTOCOL_VERSION, revision: head, generated_at: now })
        .map_err(encode)?;
    let apis = load::apis(&mut tx, None).await?;
    let plans = load::plans(&mut tx, None).await?;
    writer.catalog(&apis, &plans).map_err(encode)?;
    let plan_index: HashMap<Uuid, u32> = plans.iter().enumerate().map(|(i, plan)| (plan.id, i as u32)).collect();

    // Hands complete frames over; false once nobody listens.
    let mut flush = |writer: &mut SnapshotWriter<Vec<u8>>, at_least: usize| {
        let out = writer.get_mut();
        if out.len() < at_least || out.is_empty() {
            return true;
        }
        sink(std::mem::replace(out, Vec::with_capacity(CHUNK_BYTES * 2)))
    };
    if !flush(&mut writer, 0) {
        return cancel(pool, pid).await;
    }

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
            if !flush(&mut writer, CHUNK_BYTES) {
                drop(rows);
                return cancel(pool, pid).await;
            }
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
            if !flush(&mut writer, CHUNK_BYTES) {
                drop(rows);
                return cancel(pool, pid).await;
            }
        }
    }

    let usage = current_usage(&mut tx, &plans, now).await?;
    writer.usage(&usage).map_err(encode)?;
    tx.commit().await?;
    let mut out = writer.finish().map_err(encode)?;
    if !out.is_empty() && !sink(std::mem::take(&mut out)) {
        return Ok(Streamed::Cancelled);
    }
    Ok(Streamed::Complete { revision: head })
}

/// Stops the build's query in Postgres, so the rows it would still send are not read
/// and thrown away when the connection goes back to the pool.
async fn cancel(pool: &PgPool, pid: i32) -> Result<Streamed> {
    sqlx::query_scalar!(r#"SELECT pg_cancel_backend($1) AS "cancelled!""#, pid).fetch_one(pool).await?;
    Ok(Streamed::Cancelled)
}
