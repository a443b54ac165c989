//! Admin API tokens: bearer secrets for the admin REST API, owned by an
//! admin user, stored as SHA-256, revocable, shown once.

use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use tollgate_protocol::{KeyHash, KeyKind, SecretKey};
use uuid::Uuid;

use crate::accounts::{UserId, UserSummary, find_user};
use crate::audit::{self, Actor, Entry};
use crate::{Error, Result};

#[derive(Debug, Clone, serde::Serialize)]
pub struct AdminTokenView {
    pub id: Uuid,
    pub name: String,
    pub owner_email: String,
    pub prefix: String,
    pub last4: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// To the minute: a call within a minute of the last recorded one does not move it.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// Creates a token for an admin; returns its id and the secret, shown once.
pub async fn create(pool: &PgPool, owner: UserId, name: &str, actor: &Actor) -> Result<(Uuid, SecretKey)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::invalid("name", "use 1 to 100 characters"));
    }
    let is_admin = sqlx::query_scalar!("SELECT is_admin FROM users WHERE id = $1", owner.0)
        .fetch_optional(pool)
        .await?
        .ok_or(Error::NotFound)?;
    if !is_admin {
        return Err(Error::invalid("email", "admin tokens belong to provider admins only"));
    }
    let secret = SecretKey::from_entropy(KeyKind::AdminToken, rand::random::<[u8; 24]>());
    let hash = secret.hash();
    let id = Uuid::now_v7();
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "INSERT INTO admin_tokens (id, user_id, name, token_hash, prefix, last4) VALUES ($1, $2, $3, $4, $5, $6)",
        id,
        owner.0,
        name,
        hash.as_bytes().as_slice(),
        secret.display_prefix(),
        secret.last4()
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "admin_token.create",
            entity: "admin_token",
            entity_id: Some(id),
            before: None,
            after: Some(json!({"name": name, "owner": owner.0})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok((id, secret))
}

/// The admin a bearer token belongs to, if the token is live and its owner
/// is still an admin. Marks the token used.
pub async fn authenticate(pool: &PgPool, token: &str) -> Result<Option<UserSummary>> {
    let hash = KeyHash::of(token);
    // The last use is written at most once a minute: written on every call, 50 clients on one
    // token queued on its row lock and each call committed (a WAL flush) to read a page.
    let owner = sqlx::query_scalar!(
        r#"WITH found AS (
             SELECT t.id, t.user_id, t.last_used_at FROM admin_tokens t JOIN users u ON u.id = t.user_id
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND u.is_admin
           ), touched AS (
             UPDATE admin_tokens t SET last_used_at = now() FROM found f
             WHERE t.id = f.id AND (f.last_used_at IS NULL OR f.last_used_at < now() - interval '60 seconds')
           )
           SELECT user_id AS "user_id!" FROM found"#,
        hash.as_bytes().as_slice()
    )
    .fetch_optional(pool)
    .await?;
    match owner {
        Some(user) => find_user(pool, UserId(user)).await,
        None => Ok(None),
    }
}

pub async fn list(pool: &PgPool) -> Result<Vec<AdminTokenView>> {
    let rows = sqlx::query!(
        r#"SELECT t.id, t.name, u.email::text AS "email!", t.prefix, t.last4, t.created_at, t.last_used_at, t.revoked_at
           FROM admin_tokens t JOIN users u ON u.id = t.user_id ORDER BY t.created_at DESC"#
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| AdminTokenView {
            id: r.id,
            name: r.name,
            owner_email: r.email,
            prefix: r.prefix,
            last4: r.last4,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            revoked_at: r.revoked_at,
        })
        .collect())
}

pub async fn revoke(pool: &PgPool, id: Uuid, actor: &Actor) -> Result<()> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query!("UPDATE admin_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound);
    }
    audit::record(
        &mut tx,
        actor,
        Entry { action: "admin_token.revoke", entity: "admin_token", entity_id: Some(id), before: None, after: None },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Revokes a token on behalf of the caller who presented `caller`. A token
/// cannot revoke itself (`Conflict`): an automation that lists and revokes
/// tokens would otherwise lock itself out; revoke it with another token or
/// in the admin UI.
pub async fn revoke_other(pool: &PgPool, id: Uuid, caller: &str, actor: &Actor) -> Result<()> {
    let caller = KeyHash::of(caller);
    let is_caller = sqlx::query_scalar!(
        r#"SELECT token_hash = $2 AS "is_caller!" FROM admin_tokens WHERE id = $1 AND revoked_at IS NULL"#,
        id,
        caller.as_bytes().as_slice()
    )
    .fetch_optional(pool)
    .await?
    .ok_or(Error::NotFound)?;
    if is_caller {
        return Err(Error::Conflict(
            "a token cannot revoke itself; revoke it with another token or in the admin UI".into(),
        ));
    }
    revoke(pool, id, actor).await
}

/// The admin with this email, for `tollgate admin token --email`.
pub async fn admin_by_email(pool: &PgPool, email: &str) -> Result<UserId> {
    let row = sqlx::query!("SELECT id, is_admin FROM users WHERE email = $1::citext", email.trim() as _)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| Error::invalid("email", format!("no user has the email {}", email.trim())))?;
    if !row.is_admin {
        return Err(Error::invalid("email", format!("{} is not a provider admin", email.trim())));
    }
    Ok(UserId(row.id))
}
