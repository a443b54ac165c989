//! Server-side sessions in Postgres, so any replica can serve any browser.
//!
//! The cookie holds a random id; the table holds only its SHA-256. A session
//! ends at its absolute expiry, after an idle gap, or at sign-out.

use sqlx::PgPool;
use time::{Duration, OffsetDateTime};

use crate::Result;
use crate::accounts::UserId;
use crate::secrets::{random_token, token_hash};

/// A live session as loaded for one request.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub id_hash: Vec<u8>,
    pub user_id: Option<UserId>,
    pub csrf_token: String,
    pub expires_at: OffsetDateTime,
    /// A message waits for the next page (see [`SessionStore::put`] under `flash`).
    pub has_flash: bool,
}

#[derive(Debug, Clone)]
pub struct SessionStore {
    pool: PgPool,
    idle_timeout: Duration,
    absolute_timeout: Duration,
}

/// Sessions without a user exist only to carry a CSRF token for the sign-in
/// and sign-up forms, so they are short-lived.
const ANONYMOUS_LIFETIME: Duration = Duration::hours(2);
/// Refreshing `last_seen_at` on every request would write on every page view.
const TOUCH_INTERVAL: Duration = Duration::seconds(60);

impl SessionStore {
    pub fn new(pool: PgPool, idle_timeout: Duration, absolute_timeout: Duration) -> Self {
        SessionStore { pool, idle_timeout, absolute_timeout }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Starts a session and returns the raw id for the cookie with its record.
    pub async fn create(&self, user: Option<UserId>, user_agent: Option<&str>) -> Result<(String, SessionRecord)> {
        let raw = random_token();
        let id_hash = token_hash(&raw);
        let csrf_token = random_token();
        let lifetime = if user.is_some() { self.absolute_timeout } else { ANONYMOUS_LIFETIME };
        let expires_at = OffsetDateTime::now_utc() + lifetime;
        let user_agent = user_agent.map(|ua| ua.chars().take(300).collect::<String>());
        sqlx::query!(
            "INSERT INTO sessions (id_hash, user_id, csrf_token, expires_at, user_agent) VALUES ($1, $2, $3, $4, $5)",
            id_hash,
            user.map(|u| u.0),
            csrf_token,
            expires_at,
            user_agent
        )
        .execute(&self.pool)
        .await?;
        Ok((raw, SessionRecord { id_hash, user_id: user, csrf_token, expires_at, has_flash: false }))
    }

    /// Finds the live session for a cookie value, refreshing its idle timer.
    pub async fn load(&self, raw: &str) -> Result<Option<SessionRecord>> {
        let id_hash = token_hash(raw);
        let now = OffsetDateTime::now_utc();
        let row = sqlx::query!(
            r#"SELECT user_id, csrf_token, expires_at, last_seen_at, data ? 'flash' AS "has_flash!" FROM sessions
             WHERE id_hash = $1 AND expires_at > $2 AND (user_id IS NULL OR last_seen_at > $3)"#,
            id_hash,
            now,
            now - self.idle_timeout
        )
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        if now - row.last_seen_at > TOUCH_INTERVAL {
            sqlx::query!("UPDATE sessions SET last_seen_at = $2 WHERE id_hash = $1", id_hash, now)
                .execute(&self.pool)
                .await?;
        }
        Ok(Some(SessionRecord {
            id_hash,
            user_id: row.user_id.map(UserId),
            csrf_token: row.csrf_token,
            expires_at: row.expires_at,
            has_flash: row.has_flash,
        }))
    }

    pub async fn destroy(&self, id_hash: &[u8]) -> Result<()> {
        sqlx::query!("DELETE FROM sessions WHERE id_hash = $1", id_hash).execute(&self.pool).await?;
        Ok(())
    }

    /// Ends every session of a user but, optionally, the current one.
    pub async fn destroy_all_for_user(&self, user: UserId, except: Option<&[u8]>) -> Result<u64> {
        let done = sqlx::query!(
            "DELETE FROM sessions WHERE user_id = $1 AND ($2::bytea IS NULL OR id_hash <> $2)",
            user.0,
            except
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Stores a short-lived value (e.g. an OAuth state) with the session.
    pub async fn put(&self, id_hash: &[u8], key: &str, value: serde_json::Value) -> Result<()> {
        sqlx::query!(
            "UPDATE sessions SET data = jsonb_set(data, ARRAY[$2::text], $3) WHERE id_hash = $1",
            id_hash,
            key,
            value
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Reads and removes a value stored with `put`, so it works once.
    pub async fn take(&self, id_hash: &[u8], key: &str) -> Result<Option<serde_json::Value>> {
        let value = sqlx::query_scalar!(
            "UPDATE sessions s SET data = s.data - $2::text FROM sessions old
             WHERE s.id_hash = $1 AND old.id_hash = s.id_hash RETURNING old.data -> $2::text AS value",
            id_hash,
            key
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(value.flatten())
    }

    /// Removes expired rows; run periodically by the server.
    pub async fn purge_expired(&self) -> Result<u64> {
        let done = sqlx::query!("DELETE FROM sessions WHERE expires_at < now()").execute(&self.pool).await?;
        Ok(done.rows_affected())
    }
}
