//! The config change feed: one row per change agents must learn about,
//! inserted in the same transaction as the change. A trigger NOTIFYs
//! `tollgate_config` with the new revision.

use uuid::Uuid;

/// What changed, as the feed records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Api,
    Plan,
    Application,
    Credential,
    /// An API's upstream groups, weights and overrides (entity id: the API).
    Routing,
    /// An API's mock mode or mocked answers (see `apis::mocks`).
    Mocks,
}

impl Entity {
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Api => "api",
            Entity::Plan => "plan",
            Entity::Application => "application",
            Entity::Credential => "credential",
            Entity::Routing => "routing",
            Entity::Mocks => "mocks",
        }
    }
}

/// Records that an entity was created or changed (`deleted = false`) or removed.
/// Credentials must pass their key hash, so a revocation can be named even
/// after the row is gone.
pub async fn record_change(
    conn: &mut sqlx::PgConnection,
    entity: Entity,
    id: Uuid,
    deleted: bool,
    key_hash: Option<&[u8]>,
) -> crate::Result<i64> {
    let operation = if deleted { "delete" } else { "upsert" };
    // Writers take turns, so revisions commit in the order they are numbered
    // and an agent at revision N never misses a lower one committed late.
    sqlx::query!("SELECT pg_advisory_xact_lock(7406524313) AS locked").fetch_one(&mut *conn).await?;
    let revision = sqlx::query_scalar!(
        "INSERT INTO config_changes (entity, entity_id, operation, key_hash) VALUES ($1, $2, $3, $4) RETURNING revision",
        entity.as_str(),
        id,
        operation,
        key_hash
    )
    .fetch_one(conn)
    .await?;
    Ok(revision)
}

/// The newest revision, or 0 on an empty feed.
pub async fn head_revision(pool: &sqlx::PgPool) -> crate::Result<i64> {
    let head = sqlx::query_scalar!(r#"SELECT coalesce(max(revision), 0) AS "head!" FROM config_changes"#)
        .fetch_one(pool)
        .await?;
    Ok(head)
}
