//! Gateway agents: their tokens and what they last reported.

use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use tollgate_protocol::{AgentStatus, KeyHash, KeyKind, SecretKey};
use uuid::Uuid;

use crate::audit::{self, Actor, Entry};
use crate::error::conflict_on_unique;
use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct GatewayId(pub Uuid);

/// An agent that presented a valid token.
#[derive(Debug, Clone)]
pub struct AuthenticatedGateway {
    pub id: GatewayId,
    pub name: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct GatewayView {
    pub id: GatewayId,
    pub name: String,
    pub token_prefix: String,
    pub connected: bool,
    /// Connected, but no status report for [`SILENT_AFTER`]: agents report at least every 10 s,
    /// so the agent is frozen, overloaded or cut off while its stream looks open.
    pub silent: bool,
    pub applied_revision: Option<i64>,
    /// Revisions behind the feed's head; `None` before the first report.
    pub lag: Option<i64>,
    pub agent_version: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_seen_at: Option<OffsetDateTime>,
    pub last_error: Option<String>,
}

/// How long a connected agent may go without a status report before the fleet view says so.
pub const SILENT_AFTER: time::Duration = time::Duration::seconds(30);

fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid("name", "use 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit"))
    }
}

/// Registers an agent and returns its token, shown this once.
pub async fn create(pool: &PgPool, name: &str, actor: &Actor) -> Result<(GatewayId, SecretKey)> {
    issue_token(pool, name, false, actor).await
}

/// Issues a fresh token for the named agent, creating it if needed (used by
/// `tollgate dev`, which starts its own agent on every run).
pub async fn reset_token(pool: &PgPool, name: &str, actor: &Actor) -> Result<(GatewayId, SecretKey)> {
    issue_token(pool, name, true, actor).await
}

/// Registers the agent `name` with a new token; an existing agent of that
/// name gets the new token (and is revoked no longer) only if `replace`.
async fn issue_token(pool: &PgPool, name: &str, replace: bool, actor: &Actor) -> Result<(GatewayId, SecretKey)> {
    validate_name(name)?;
    let secret = SecretKey::from_entropy(KeyKind::AgentToken, rand::random::<[u8; 24]>());
    let hash = secret.hash();
    let mut tx = pool.begin().await?;
    let id = sqlx::query_scalar!(
        "INSERT INTO gateways (id, name, token_hash, token_prefix) VALUES ($1, $2, $3, $4)
         ON CONFLICT (name) DO UPDATE SET token_hash = EXCLUDED.token_hash, token_prefix = EXCLUDED.token_prefix, revoked_at = NULL
         WHERE $5
         RETURNING id",
        Uuid::now_v7(),
        name,
        hash.as_bytes().as_slice(),
        secret.display_prefix(),
        replace
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(id) = id else {
        // A revoked agent keeps its name, so its history is never mistaken for a new one's.
        let revoked = sqlx::query_scalar!("SELECT revoked_at FROM gateways WHERE name = $1", name)
            .fetch_optional(&mut *tx)
            .await?
            .flatten();
        return Err(Error::Conflict(match revoked {
            Some(at) => {
                format!("an agent named {name} was revoked on {}; names are not reused, so choose another", at.date())
            }
            None => "an agent with this name already exists".into(),
        }));
    };
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: if replace { "gateway.token" } else { "gateway.create" },
            entity: "gateway",
            entity_id: Some(id),
            before: None,
            after: Some(json!({"name": name})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok((GatewayId(id), secret))
}

/// The agent a bearer token belongs to, unless revoked.
pub async fn authenticate(pool: &PgPool, token: &str) -> Result<Option<AuthenticatedGateway>> {
    let hash = KeyHash::of(token);
    let row = sqlx::query!(
        "SELECT id, name FROM gateways WHERE token_hash = $1 AND revoked_at IS NULL",
        hash.as_bytes().as_slice()
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| AuthenticatedGateway { id: GatewayId(r.id), name: r.name }))
}

/// Whether the agent's token still works (it was not revoked).
pub async fn is_live(pool: &PgPool, id: GatewayId) -> Result<bool> {
    let live = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM gateways WHERE id = $1 AND revoked_at IS NULL) AS "live!""#,
        id.0
    )
    .fetch_one(pool)
    .await?;
    Ok(live)
}

/// One config stream of an agent, from its opening to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamId(Uuid);

/// Marks the agent connected by a new config stream, which becomes its newest.
pub async fn stream_opened(pool: &PgPool, id: GatewayId) -> Result<StreamId> {
    let stream = StreamId(Uuid::now_v7());
    sqlx::query!(
        "UPDATE gateways SET connected = true, stream_id = $2, last_seen_at = now() WHERE id = $1",
        id.0,
        stream.0
    )
    .execute(pool)
    .await?;
    Ok(stream)
}

/// Marks the agent disconnected when `stream` was its newest: the end of a stream that a
/// restarted agent has already replaced leaves it connected.
pub async fn stream_ended(pool: &PgPool, id: GatewayId, stream: StreamId) -> Result<()> {
    sqlx::query!(
        "UPDATE gateways SET connected = connected AND stream_id IS DISTINCT FROM $2, last_seen_at = now() WHERE id = $1",
        id.0,
        stream.0
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Stores what an agent said about itself: its applied revision, version
/// and any update it refused.
/// What a status report changed; a heartbeat that repeats the last report
/// changes nothing, so the server can log state changes and not heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatusChange {
    /// The applied revision moved (or was reported for the first time).
    pub revision: bool,
    /// The agent reports another version than before.
    pub version: bool,
    /// A refusal appeared, changed or cleared.
    pub error: bool,
}

impl StatusChange {
    pub fn any(&self) -> bool {
        self.revision || self.version || self.error
    }
}

/// Records an agent's report and says what it changed.
pub async fn record_status(pool: &PgPool, id: GatewayId, status: &AgentStatus) -> Result<StatusChange> {
    let applied = status.applied_revision.and_then(|r| i64::try_from(r).ok());
    let error = status.rejected.as_ref().map(|r| format!("refused revision {}: {}", r.revision, r.reason));
    let version: String = status.agent_version.chars().take(64).collect();
    // The subquery reads the row as it was before this statement's update.
    let row = sqlx::query!(
        r#"UPDATE gateways g SET applied_revision = coalesce($2, g.applied_revision), agent_version = $3, last_error = $4, last_seen_at = now()
           FROM (SELECT applied_revision, agent_version, last_error FROM gateways WHERE id = $1 FOR UPDATE) AS before
           WHERE g.id = $1
           RETURNING g.applied_revision IS DISTINCT FROM before.applied_revision AS "revision!",
                     g.agent_version IS DISTINCT FROM before.agent_version AS "version!",
                     g.last_error IS DISTINCT FROM before.last_error AS "error!""#,
        id.0,
        applied,
        version,
        error.map(|e| e.chars().take(1000).collect::<String>())
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| StatusChange { revision: r.revision, version: r.version, error: r.error }).unwrap_or_default())
}

pub async fn list(pool: &PgPool) -> Result<Vec<GatewayView>> {
    load(pool, None).await
}

/// One agent that is not revoked, or `NotFound`.
pub async fn get(pool: &PgPool, id: GatewayId) -> Result<GatewayView> {
    load(pool, Some(id)).await?.into_iter().next().ok_or(Error::NotFound)
}

/// Renames an agent; its token and state stay. Names stay unique, revoked
/// agents' names included, so the audit trail reads unambiguously.
pub async fn rename(pool: &PgPool, id: GatewayId, name: &str, actor: &Actor) -> Result<()> {
    validate_name(name)?;
    let mut tx = pool.begin().await?;
    let before = sqlx::query_scalar!("SELECT name FROM gateways WHERE id = $1 AND revoked_at IS NULL FOR UPDATE", id.0)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound)?;
    sqlx::query!("UPDATE gateways SET name = $2 WHERE id = $1", id.0, name)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict_on_unique(e, "an agent with this name already exists"))?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "gateway.rename",
            entity: "gateway",
            entity_id: Some(id.0),
            before: Some(json!({"name": before})),
            after: Some(json!({"name": name})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Revokes an agent's token: it can no longer connect, and it leaves the list.
pub async fn revoke(pool: &PgPool, id: GatewayId, actor: &Actor) -> Result<()> {
    let mut tx = pool.begin().await?;
    let name = sqlx::query_scalar!(
        "UPDATE gateways SET revoked_at = now(), connected = false WHERE id = $1 AND revoked_at IS NULL RETURNING name",
        id.0
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound)?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "gateway.revoke",
            entity: "gateway",
            entity_id: Some(id.0),
            before: Some(json!({"name": name})),
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Live agents by name, or just one of them.
async fn load(pool: &PgPool, only: Option<GatewayId>) -> Result<Vec<GatewayView>> {
    let rows = sqlx::query!(
        r#"SELECT g.id, g.name, g.token_prefix, g.connected, g.applied_revision, g.agent_version, g.last_seen_at, g.last_error,
                  (SELECT coalesce(max(revision), 0) FROM config_changes) AS "head!", now() AS "now!"
           FROM gateways g WHERE g.revoked_at IS NULL AND ($1::uuid IS NULL OR g.id = $1) ORDER BY g.name"#,
        only.map(|id| id.0)
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| GatewayView {
            id: GatewayId(r.id),
            name: r.name,
            token_prefix: r.token_prefix,
            silent: r.connected && r.last_seen_at.is_none_or(|at| at < r.now - SILENT_AFTER),
            connected: r.connected,
            applied_revision: r.applied_revision,
            lag: r.applied_revision.map(|applied| (r.head - applied).max(0)),
            agent_version: r.agent_version,
            last_seen_at: r.last_seen_at,
            last_error: r.last_error,
        })
        .collect())
}
