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

/// An agent as the fleet view shows it: every process behind its token, and their worst
/// figures (the revision furthest behind, silent if one is).
#[derive(Debug, Clone, serde::Serialize)]
pub struct GatewayView {
    pub id: GatewayId,
    pub name: String,
    pub token_prefix: String,
    /// At least one instance has its config stream open.
    pub connected: bool,
    /// A connected instance sent no status report for [`SILENT_AFTER`]: agents report at least
    /// every 10 s, so it is frozen, overloaded or cut off while its stream looks open.
    pub silent: bool,
    /// The lowest revision a connected instance enforces (of any instance when none is).
    pub applied_revision: Option<i64>,
    /// Revisions behind the feed's head; `None` before the first report.
    pub lag: Option<i64>,
    /// The connected instances' versions, or the newest report's; several when they differ.
    pub agent_version: Option<String>,
    /// When the server last heard from any instance.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_seen_at: Option<OffsetDateTime>,
    /// An update an instance refused, with the instance when there are several.
    pub last_error: Option<String>,
    /// The processes that used the token in the last day, connected ones first.
    pub instances: Vec<InstanceView>,
}

/// One agent process behind a token, as it last reported.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InstanceView {
    /// The id the agent keeps in its state directory; nil for an agent that sent none.
    pub agent_id: Uuid,
    /// Its host name, or empty.
    pub host: String,
    pub connected: bool,
    pub silent: bool,
    pub applied_revision: Option<i64>,
    pub lag: Option<i64>,
    pub agent_version: Option<String>,
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
}

impl GatewayView {
    pub fn connected_instances(&self) -> usize {
        self.instances.iter().filter(|i| i.connected).count()
    }
}

impl InstanceView {
    /// How the fleet view names it: host and the start of its id.
    pub fn label(&self) -> String {
        let id = self.agent_id.simple().to_string();
        match (self.host.is_empty(), self.agent_id.is_nil()) {
            (_, true) => "an agent that sent no id".to_owned(),
            (true, false) => id[..8].to_owned(),
            (false, false) => format!("{} ({})", self.host, &id[..8]),
        }
    }
}

/// One agent process behind a gateway's token, as it names itself in its request headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentInstance {
    agent_id: Uuid,
    host: String,
}

impl AgentInstance {
    /// From the agent's headers: an id that is not a UUID counts as none (one unnamed instance
    /// per token); a host name is kept when it is 1 to 253 visible ASCII characters.
    pub fn from_headers(agent_id: Option<&str>, host: Option<&str>) -> AgentInstance {
        let agent_id = agent_id.and_then(|id| Uuid::try_parse(id.trim()).ok()).unwrap_or_else(Uuid::nil);
        let host = host
            .map(str::trim)
            .filter(|h| h.len() <= 253 && h.bytes().all(|b| b.is_ascii_graphic()))
            .unwrap_or_default()
            .to_owned();
        AgentInstance { agent_id, host }
    }
}

/// For logs: the agent's id, and its host when it sent one.
impl std::fmt::Display for AgentInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.agent_id.is_nil(), self.host.is_empty()) {
            (true, _) => f.write_str("unnamed"),
            (false, true) => write!(f, "{}", self.agent_id),
            (false, false) => write!(f, "{} on {}", self.agent_id, self.host),
        }
    }
}

/// The most processes one token keeps apart: beyond, a new one is counted as the token's
/// unnamed instance, so a token that sends a new id with every request cannot grow the table.
const MAX_INSTANCES: i64 = 256;

/// `instance`, or the unnamed instance when the token already has [`MAX_INSTANCES`] others.
/// The caller holds the gateway's row lock, so two new processes are not both let in as the
/// 256th.
async fn admitted(tx: &mut sqlx::PgConnection, id: GatewayId, instance: &AgentInstance) -> Result<AgentInstance> {
    let known = sqlx::query!(
        r#"SELECT EXISTS (SELECT 1 FROM gateway_instances WHERE gateway_id = $1 AND agent_id = $2) AS "known!",
                  (SELECT count(*) FROM gateway_instances WHERE gateway_id = $1) AS "count!""#,
        id.0,
        instance.agent_id
    )
    .fetch_one(&mut *tx)
    .await?;
    Ok(if known.known || known.count < MAX_INSTANCES {
        instance.clone()
    } else {
        AgentInstance { agent_id: Uuid::nil(), host: String::new() }
    })
}

/// An instance not heard from for this long leaves the fleet view (a replica scaled away,
/// a pod replaced with a fresh state directory).
const FORGET_INSTANCE_AFTER_HOURS: i32 = 24;

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

/// One config stream of an agent, from its opening to its end, and the instance it counts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamId {
    id: Uuid,
    agent_id: Uuid,
}

/// Marks the instance connected by a new config stream, which becomes its newest, and forgets
/// the token's instances not heard from for a day.
pub async fn stream_opened(pool: &PgPool, id: GatewayId, instance: &AgentInstance) -> Result<StreamId> {
    let mut tx = pool.begin().await?;
    // The gateway's row first, as every report of the token takes it: the instances are then
    // counted (`admitted`) and written one report at a time, in one lock order.
    sqlx::query!("UPDATE gateways SET last_seen_at = now() WHERE id = $1", id.0).execute(&mut *tx).await?;
    sqlx::query!(
        "DELETE FROM gateway_instances WHERE gateway_id = $1 AND last_seen_at < now() - make_interval(hours => $2)",
        id.0,
        FORGET_INSTANCE_AFTER_HOURS
    )
    .execute(&mut *tx)
    .await?;
    let instance = &admitted(&mut tx, id, instance).await?;
    let stream = StreamId { id: Uuid::now_v7(), agent_id: instance.agent_id };
    sqlx::query!(
        "INSERT INTO gateway_instances (gateway_id, agent_id, host, connected, stream_id) VALUES ($1, $2, $3, true, $4)
         ON CONFLICT (gateway_id, agent_id)
         DO UPDATE SET host = EXCLUDED.host, connected = true, stream_id = EXCLUDED.stream_id, last_seen_at = now()",
        id.0,
        instance.agent_id,
        instance.host,
        stream.id
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(stream)
}

/// Marks the instance disconnected when `stream` was its newest: the end of a stream that a
/// restarted agent has already replaced leaves it connected.
pub async fn stream_ended(pool: &PgPool, id: GatewayId, stream: StreamId) -> Result<()> {
    sqlx::query!(
        "UPDATE gateway_instances SET connected = connected AND stream_id IS DISTINCT FROM $3, last_seen_at = now()
         WHERE gateway_id = $1 AND agent_id = $2",
        id.0,
        stream.agent_id,
        stream.id
    )
    .execute(pool)
    .await?;
    sqlx::query!("UPDATE gateways SET last_seen_at = now() WHERE id = $1", id.0).execute(pool).await?;
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

/// Records an instance's report and says what it changed for that instance.
pub async fn record_status(
    pool: &PgPool,
    id: GatewayId,
    instance: &AgentInstance,
    status: &AgentStatus,
) -> Result<StatusChange> {
    let applied = status.applied_revision.and_then(|r| i64::try_from(r).ok());
    let error = status.rejected.as_ref().map(|r| format!("refused revision {}: {}", r.revision, r.reason));
    let version: String = status.agent_version.chars().take(64).collect();
    let mut tx = pool.begin().await?;
    // Before counting the instances: concurrent first reports of new processes would each
    // see room under the cap (see `stream_opened`).
    sqlx::query!("UPDATE gateways SET last_seen_at = now() WHERE id = $1", id.0).execute(&mut *tx).await?;
    let instance = &admitted(&mut tx, id, instance).await?;
    // The lock makes two reports of one instance compare in turn; a new instance has no row
    // to lock, and its first report changes everything it says.
    let before = sqlx::query!(
        "SELECT applied_revision, agent_version, last_error FROM gateway_instances
         WHERE gateway_id = $1 AND agent_id = $2 FOR UPDATE",
        id.0,
        instance.agent_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let error = error.map(|e| e.chars().take(1000).collect::<String>());
    let after = sqlx::query!(
        "INSERT INTO gateway_instances (gateway_id, agent_id, host, applied_revision, agent_version, last_error)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (gateway_id, agent_id)
         DO UPDATE SET host = EXCLUDED.host, applied_revision = coalesce(EXCLUDED.applied_revision, gateway_instances.applied_revision),
                       agent_version = EXCLUDED.agent_version, last_error = EXCLUDED.last_error, last_seen_at = now()
         RETURNING applied_revision",
        id.0,
        instance.agent_id,
        instance.host,
        applied,
        version,
        error
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(match before {
        None => StatusChange { revision: after.applied_revision.is_some(), version: true, error: error.is_some() },
        Some(before) => StatusChange {
            revision: after.applied_revision != before.applied_revision,
            version: before.agent_version.as_deref() != Some(version.as_str()),
            error: before.last_error != error,
        },
    })
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
        "UPDATE gateways SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING name",
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
        r#"SELECT g.id, g.name, g.token_prefix, g.last_seen_at,
                  (SELECT coalesce(max(revision), 0) FROM config_changes) AS "head!", now() AS "now!"
           FROM gateways g WHERE g.revoked_at IS NULL AND ($1::uuid IS NULL OR g.id = $1) ORDER BY g.name"#,
        only.map(|id| id.0)
    )
    .fetch_all(pool)
    .await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let instances = sqlx::query!(
        "SELECT gateway_id, agent_id, host, connected, applied_revision, agent_version, last_error, first_seen_at, last_seen_at
         FROM gateway_instances
         WHERE gateway_id = ANY($1) AND last_seen_at >= now() - make_interval(hours => $2)
         ORDER BY gateway_id, connected DESC, host, agent_id",
        &ids,
        FORGET_INSTANCE_AFTER_HOURS
    )
    .fetch_all(pool)
    .await?;
    let Some((head, now)) = rows.first().map(|r| (r.head, r.now)) else { return Ok(Vec::new()) };
    let mut by_gateway: std::collections::HashMap<Uuid, Vec<InstanceView>> = std::collections::HashMap::new();
    for i in instances {
        by_gateway.entry(i.gateway_id).or_default().push(InstanceView {
            agent_id: i.agent_id,
            host: i.host,
            connected: i.connected,
            silent: i.connected && i.last_seen_at < now - SILENT_AFTER,
            applied_revision: i.applied_revision,
            lag: i.applied_revision.map(|applied| (head - applied).max(0)),
            agent_version: i.agent_version,
            last_error: i.last_error,
            first_seen_at: i.first_seen_at,
            last_seen_at: i.last_seen_at,
        });
    }
    Ok(rows
        .into_iter()
        .map(|r| {
            let instances = by_gateway.remove(&r.id).unwrap_or_default();
            summarise(GatewayId(r.id), r.name, r.token_prefix, r.last_seen_at, r.head, instances)
        })
        .collect())
}

/// A gateway's figures from its instances': the worst of the connected ones, or of all when
/// none is connected.
fn summarise(
    id: GatewayId,
    name: String,
    token_prefix: String,
    last_seen_at: Option<OffsetDateTime>,
    head: i64,
    instances: Vec<InstanceView>,
) -> GatewayView {
    let connected = instances.iter().any(|i| i.connected);
    let counted: Vec<&InstanceView> = instances.iter().filter(|i| i.connected || !connected).collect();
    let applied_revision = counted.iter().filter_map(|i| i.applied_revision).min();
    let mut versions: Vec<&str> = counted.iter().filter_map(|i| i.agent_version.as_deref()).collect();
    versions.sort_unstable();
    versions.dedup();
    let several = instances.len() > 1;
    let last_error = counted.iter().find_map(|i| {
        let error = i.last_error.as_deref()?;
        Some(if several { format!("{}: {error}", i.label()) } else { error.to_owned() })
    });
    GatewayView {
        id,
        name,
        token_prefix,
        connected,
        silent: instances.iter().any(|i| i.silent),
        applied_revision,
        lag: applied_revision.map(|applied| (head - applied).max(0)),
        agent_version: (!versions.is_empty()).then(|| versions.join(", ")),
        last_seen_at,
        last_error,
        instances,
    }
}
