//! `GET /agent/v1/config?revision=N`: one long-lived NDJSON response per
//! agent. It opens with a snapshot (or the delta from the agent's revision),
//! then pushes a delta the moment Postgres notifies a change, and a
//! heartbeat every few seconds so both ends notice a dead link.
//!
//! An agent sending `Accept: application/vnd.tollgate.config+bin; version=2`
//! gets the same messages in the binary framing of `tollgate_protocol::binary`
//! (format version 2, the only one this server writes): the
//! preamble at once, a snapshot streamed from Postgres as it is read (shared
//! with the other agents asking at once, see builds.rs; deltas are shared
//! too, see deltas.rs), keep-alive frames
//! every second while it waits, then deltas and heartbeats as JSON frames. An
//! agent asking for the bare binary type reads only format version 1, so it gets
//! NDJSON, which it also accepts, rather than a stream it would refuse.
//! Every stream runs on the main runtime, never on the actix worker.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use tokio::sync::{mpsc, watch};
use tollgate_core::db::PgPool;
use tollgate_core::gateways::{AgentInstance, AuthenticatedGateway, GatewayId, is_live, stream_ended, stream_opened};
use tollgate_core::sync::build_snapshot;
use tollgate_protocol::binary::{self, BINARY_MEDIA_TYPE, FrameKind};
use tollgate_protocol::{ConfigMessage, Heartbeat, NDJSON_CONTENT_TYPE};

use super::auth;
use super::builds::SnapshotBuilds;
use super::deltas::SharedDeltas;
use super::error::AgentApiError;
use super::notifier::ConfigNotifier;

/// Agents treat three missed heartbeats as a dead link.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

/// While a snapshot is being built, a keep-alive frame this often.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(1);

/// The encoding the agent asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Json,
    Binary,
}

impl Encoding {
    fn of(req: &HttpRequest) -> Encoding {
        let binary =
            req.headers().get_all(header::ACCEPT).filter_map(|value| value.to_str().ok()).any(binary::accepts_binary);
        if binary { Encoding::Binary } else { Encoding::Json }
    }
}

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
    let instance = auth::instance(&req);
    let encoding = Encoding::of(&req);
    let (tx, rx) = mpsc::channel::<Line>(8);
    let head = notifier.subscribe();
    let stopping = notifier.stopping();
    let builds = notifier.builds();
    let deltas = notifier.deltas();
    let session = Session { pool: pool.get_ref().clone(), builds: builds.clone(), deltas, head, stopping, tx };
    builds.runtime().spawn(stream(session, gateway, instance, query.revision, encoding));
    let body = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|line| (line, rx)) });
    let content_type = match encoding {
        Encoding::Json => NDJSON_CONTENT_TYPE,
        Encoding::Binary => BINARY_MEDIA_TYPE,
    };
    Ok(HttpResponse::Ok().content_type(content_type).insert_header((header::CACHE_CONTROL, "no-store")).streaming(body))
}

fn encode(message: &ConfigMessage) -> Result<Bytes, AgentApiError> {
    let mut line = serde_json::to_vec(message).map_err(|e| AgentApiError::BadRequest(e.to_string()))?;
    line.push(b'\n');
    Ok(Bytes::from(line))
}

/// What the agent needs to move from `from` to the head: a delta, or a
/// snapshot when no delta can be made. Returns the message and its revision.
async fn catch_up(
    pool: &PgPool,
    deltas: &SharedDeltas,
    from: Option<u64>,
    head: Option<u64>,
) -> Result<(Arc<ConfigMessage>, u64), AgentApiError> {
    if let Some(from) = from
        && let Some(caught_up) = deltas.from(pool, from, head).await?
    {
        return Ok(caught_up);
    }
    let snapshot = build_snapshot(pool).await?;
    let revision = snapshot.revision;
    Ok((Arc::new(ConfigMessage::Snapshot(snapshot)), revision))
}

/// What one agent's stream needs.
struct Session {
    pool: PgPool,
    builds: Arc<SnapshotBuilds>,
    deltas: Arc<SharedDeltas>,
    head: watch::Receiver<u64>,
    stopping: watch::Receiver<bool>,
    tx: mpsc::Sender<Line>,
}

async fn stream(
    mut session: Session,
    gateway: AuthenticatedGateway,
    instance: AgentInstance,
    from: Option<u64>,
    encoding: Encoding,
) {
    let pool = session.pool.clone();
    let opened = stream_opened(&pool, gateway.id, &instance).await;
    metrics::gauge!("tollgate_agent_streams").increment(1.0);
    tracing::info!(agent = %gateway.name, %instance, from, ?encoding, "agent connected to the config stream");
    let pumping = async {
        match encoding {
            Encoding::Json => {
                pump(&pool, &session.deltas, from, &mut session.head, &mut session.stopping, &session.tx).await
            }
            Encoding::Binary => pump_binary(&mut session, from).await,
        }
    };
    // A revoked agent gets nothing more: its stream ends within one heartbeat interval.
    let ended = tokio::select! {
        ended = pumping => ended,
        () = revoked(&pool, gateway.id) => {
            tracing::info!(agent = %gateway.name, "agent token revoked: closing its config stream");
            Ok(())
        }
    };
    if let Err(err) = ended {
        tracing::warn!(agent = %gateway.name, error = %err, "config stream ended with an error");
    }
    metrics::gauge!("tollgate_agent_streams").decrement(1.0);
    if let Ok(opened) = opened {
        let _ = stream_ended(&pool, gateway.id, opened).await;
    }
    tracing::info!(agent = %gateway.name, %instance, "agent left the config stream");
}

/// Resolves once the agent's token is revoked, checked every heartbeat interval.
async fn revoked(pool: &PgPool, id: GatewayId) {
    let mut every = tokio::time::interval(HEARTBEAT_INTERVAL);
    loop {
        every.tick().await;
        if let Ok(false) = is_live(pool, id).await {
            return;
        }
    }
}

async fn pump(
    pool: &PgPool,
    deltas: &SharedDeltas,
    from: Option<u64>,
    head: &mut watch::Receiver<u64>,
    stopping: &mut watch::Receiver<bool>,
    tx: &mpsc::Sender<Line>,
) -> Result<(), AgentApiError> {
    let (message, mut sent) = catch_up(pool, deltas, from, None).await?;
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
                let at = *head.borrow_and_update();
                if at <= sent {
                    continue;
                }
                let (message, revision) = catch_up(pool, deltas, Some(sent), Some(at)).await?;
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

fn encode_frame(message: &ConfigMessage) -> Result<Bytes, AgentApiError> {
    binary::message_frame(message).map(Bytes::from).map_err(|e| AgentApiError::BadRequest(e.to_string()))
}

/// The binary stream: preamble, a snapshot or delta, then deltas and heartbeats.
async fn pump_binary(session: &mut Session, from: Option<u64>) -> Result<(), AgentApiError> {
    if session.tx.send(Ok(Bytes::from_static(&PREAMBLE))).await.is_err() {
        return Ok(());
    }
    let Some(mut sent) = catch_up_binary(session, from, None).await? else { return Ok(()) };
    let mut heartbeat = tokio::time::interval(HEARTBEAT_INTERVAL);
    heartbeat.tick().await;
    loop {
        tokio::select! {
            changed = session.head.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let at = *session.head.borrow_and_update();
                if at <= sent {
                    continue;
                }
                let Some(revision) = catch_up_binary(session, Some(sent), Some(at)).await? else { return Ok(()) };
                sent = revision;
                heartbeat.reset();
            }
            _ = heartbeat.tick() => {
                let beat = ConfigMessage::Heartbeat(Heartbeat { revision: sent, at: jiff::Timestamp::now() });
                if session.tx.send(Ok(encode_frame(&beat)?)).await.is_err() {
                    return Ok(());
                }
            }
            () = session.tx.closed() => return Ok(()),
            _ = session.stopping.changed() => return Ok(()),
        }
    }
}

const PREAMBLE: [u8; binary::PREAMBLE_LEN] = {
    let mut out = [0u8; binary::PREAMBLE_LEN];
    let version = binary::FORMAT_VERSION.to_le_bytes();
    let mut i = 0;
    while i < 4 {
        out[i] = binary::MAGIC[i];
        out[i + 4] = version[i];
        i += 1;
    }
    out
};

const KEEP_ALIVE: [u8; binary::FRAME_HEADER_LEN] = [FrameKind::KeepAlive as u8, 0, 0, 0, 0];

/// Sends what moves the agent from `from` to the head (`woken_for`: the head that woke
/// the stream; `None` when it has just opened); the revision it is at afterwards, `None` if
/// the agent left.
async fn catch_up_binary(
    session: &mut Session,
    from: Option<u64>,
    woken_for: Option<u64>,
) -> Result<Option<u64>, AgentApiError> {
    if let Some(from) = from
        && let Some((message, revision)) = session.deltas.from(&session.pool, from, woken_for).await?
    {
        return Ok(session.tx.send(Ok(encode_frame(&message)?)).await.ok().map(|()| revision));
    }
    let key = *session.head.borrow();
    let subscription = session.builds.subscribe(key);
    let build = &subscription.build;
    let mut progress = build.progress();
    let mut next = 0;
    let mut keep_alive = tokio::time::interval(KEEP_ALIVE_INTERVAL);
    keep_alive.tick().await;
    loop {
        let now = progress.borrow_and_update().clone();
        if let Some(Err(reason)) = &now.done {
            return Err(AgentApiError::Core(tollgate_core::Error::Internal(format!("snapshot build: {reason}"))));
        }
        if now.chunks > next {
            for chunk in build.chunks_from(next) {
                next += 1;
                if session.tx.send(Ok(chunk)).await.is_err() {
                    return Ok(None);
                }
            }
            keep_alive.reset();
            continue;
        }
        if let Some(Ok(())) = now.done {
            return Ok(now.revision);
        }
        tokio::select! {
            changed = progress.changed() => if changed.is_err() {
                return Err(AgentApiError::Core(tollgate_core::Error::Internal("snapshot build vanished".into())));
            },
            _ = keep_alive.tick() => {
                if session.tx.send(Ok(Bytes::from_static(&KEEP_ALIVE))).await.is_err() {
                    return Ok(None);
                }
            }
            () = session.tx.closed() => return Ok(None),
            _ = session.stopping.changed() => return Ok(None),
        }
    }
}
