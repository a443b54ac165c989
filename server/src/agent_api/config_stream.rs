//! `GET /agent/v1/config?revision=N`: one long-lived NDJSON response per
//! agent. It opens with a snapshot (or the delta from the agent's revision),
//! then pushes a delta the moment Postgres notifies a change, and a
//! heartbeat every few seconds so both ends notice a dead link.

use std::io;
use std::time::Duration;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use tokio::sync::{mpsc, watch};
use tollgate_core::db::PgPool;
use tollgate_core::gateways::{AuthenticatedGateway, set_connected};
use tollgate_core::sync::{build_delta, build_snapshot};
use tollgate_protocol::{ConfigMessage, Heartbeat, NDJSON_CONTENT_TYPE};

use super::auth;
use super::error::AgentApiError;
use super::notifier::ConfigNotifier;

/// Agents treat three missed heartbeats as a dead link.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

#[derive(serde::Deserialize)]
pub struct StreamQuery {
    revision: Option<u64>,
}

type Line = Result<Bytes, io::Error>;

pub async fn open(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    notifier: web::Data<ConfigNotifier>,
    query: web::Query<StreamQuery>,
) -> Result<HttpResponse, AgentApiError> {
    let gateway = auth::gateway(&req, &pool).await?;
    let (tx, rx) = mpsc::channel::<Line>(8);
    let head = notifier.subscribe();
    let stopping = notifier.stopping();
    actix_web::rt::spawn(stream(pool.get_ref().clone(), gateway, query.revision, head, stopping, tx));
    let body = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|line| (line, rx)) });
    Ok(HttpResponse::Ok()
        .content_type(NDJSON_CONTENT_TYPE)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(body))
}

fn encode(message: &ConfigMessage) -> Result<Bytes, AgentApiError> {
    let mut line = serde_json::to_vec(message).map_err(|e| AgentApiError::BadRequest(e.to_string()))?;
    line.push(b'\n');
    Ok(Bytes::from(line))
}

/// What the agent needs to move from `from` to the head: a delta, or a
/// snapshot when no delta can be made. Returns the message and its revision.
async fn catch_up(pool: &PgPool, from: Option<u64>) -> Result<(ConfigMessage, u64), AgentApiError> {
    if let Some(from) = from
        && let Some(delta) = build_delta(pool, from).await?
    {
        let revision = delta.revision;
        if delta.changes.is_empty() && revision == from {
            return Ok((ConfigMessage::Heartbeat(Heartbeat { revision, at: jiff::Timestamp::now() }), revision));
        }
        return Ok((ConfigMessage::Delta(delta), revision));
    }
    let snapshot = build_snapshot(pool).await?;
    let revision = snapshot.revision;
    Ok((ConfigMessage::Snapshot(snapshot), revision))
}

async fn stream(
    pool: PgPool,
    gateway: AuthenticatedGateway,
    from: Option<u64>,
    mut head: watch::Receiver<u64>,
    mut stopping: watch::Receiver<bool>,
    tx: mpsc::Sender<Line>,
) {
    let _ = set_connected(&pool, gateway.id, true).await;
    metrics::gauge!("tollgate_agent_streams").increment(1.0);
    tracing::info!(agent = %gateway.name, from = ?from, "agent connected to the config stream");
    if let Err(err) = pump(&pool, from, &mut head, &mut stopping, &tx).await {
        tracing::warn!(agent = %gateway.name, error = %err, "config stream ended with an error");
    }
    metrics::gauge!("tollgate_agent_streams").decrement(1.0);
    let _ = set_connected(&pool, gateway.id, false).await;
    tracing::info!(agent = %gateway.name, "agent left the config stream");
}

async fn pump(
    pool: &PgPool,
    from: Option<u64>,
    head: &mut watch::Receiver<u64>,
    stopping: &mut watch::Receiver<bool>,
    tx: &mpsc::Sender<Line>,
) -> Result<(), AgentApiError> {
    let (message, mut sent) = catch_up(pool, from).await?;
    if tx.send(Ok(encode(&message)?)).await.is_err() {
        return Ok(());
    }
    let mut heartbeat = tokio::time::interval(HEARTBEAT_INTERVAL);
    heartbeat.tick().await;
    loop {
        tokio::select! {
            changed = head.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                if *head.borrow_and_update() <= sent {
                    continue;
                }
                let (message, revision) = catch_up(pool, Some(sent)).await?;
                if tx.send(Ok(encode(&message)?)).await.is_err() {
                    return Ok(());
                }
                sent = revision;
                heartbeat.reset();
            }
            _ = heartbeat.tick() => {
                let beat = ConfigMessage::Heartbeat(Heartbeat { revision: sent, at: jiff::Timestamp::now() });
                if tx.send(Ok(encode(&beat)?)).await.is_err() {
                    return Ok(());
                }
            }
            () = tx.closed() => return Ok(()),
            _ = stopping.changed() => return Ok(()),
        }
    }
}
