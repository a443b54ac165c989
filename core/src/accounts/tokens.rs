//! Single-use, expiring tokens sent by email (verification, password reset).
//! Only their SHA-256 is stored.

use time::{Duration, OffsetDateTime};

use super::UserId;
use crate::Result;
use crate::secrets::{random_token, token_hash};
use crate::stored::stored_enum;

stored_enum! {
    /// What a token emailed to a user lets them do.
    pub enum Purpose as "token_purpose" {
        VerifyEmail = "verify_email",
        ResetPassword = "reset_password",
    }
}

impl Purpose {
    pub fn lifetime(self) -> Duration {
        match self {
            Purpose::VerifyEmail => Duration::hours(24),
            Purpose::ResetPassword => Duration::hours(1),
        }
    }
}

/// Issues a token; earlier unused tokens of the same purpose stop working,
/// so only the newest link in the inbox is live.
pub async fn issue(conn: &mut sqlx::PgConnection, user: UserId, purpose: Purpose) -> Result<String> {
    sqlx::query!(
        "UPDATE user_tokens SET used_at = now() WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL",
        user.0,
        purpose as Purpose
    )
    .execute(&mut *conn)
    .await?;
    let raw = random_token();
    sqlx::query!(
        "INSERT INTO user_tokens (token_hash, user_id, purpose, expires_at) VALUES ($1, $2, $3, $4)",
        token_hash(&raw),
        user.0,
        purpose as Purpose,
        OffsetDateTime::now_utc() + purpose.lifetime()
    )
    .execute(&mut *conn)
    .await?;
    Ok(raw)
}

/// The user a live token belongs to, without using it up (for showing a form).
pub async fn peek(pool: &sqlx::PgPool, raw: &str, purpose: Purpose) -> Result<Option<UserId>> {
    let user = sqlx::query_scalar!(
        "SELECT user_id FROM user_tokens WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now()",
        token_hash(raw),
        purpose as Purpose
    )
    .fetch_optional(pool)
    .await?;
    Ok(user.map(UserId))
}

/// Uses a token up; `None` when it is unknown, used or expired.
pub async fn consume(conn: &mut sqlx::PgConnection, raw: &str, purpose: Purpose) -> Result<Option<UserId>> {
    let user = sqlx::query_scalar!(
        "UPDATE user_tokens SET used_at = now()
         WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now()
         RETURNING user_id",
        token_hash(raw),
        purpose as Purpose
    )
    .fetch_optional(conn)
    .await?;
    Ok(user.map(UserId))
}
