//! Single-use, expiring tokens sent by email (verification, password reset,
//! a change of address). Only their SHA-256 is stored.

use time::{Duration, OffsetDateTime};

use super::{Email, UserId};
use crate::Result;
use crate::secrets::{random_token, token_hash};
use crate::stored::stored_enum;

stored_enum! {
    /// What a token emailed to a user lets them do.
    pub enum Purpose as "token_purpose" {
        VerifyEmail = "verify_email",
        ResetPassword = "reset_password",
        ChangeEmail = "change_email",
    }
}

impl Purpose {
    pub fn lifetime(self) -> Duration {
        match self {
            Purpose::VerifyEmail | Purpose::ChangeEmail => Duration::hours(24),
            Purpose::ResetPassword => Duration::hours(1),
        }
    }
}

/// Issues a token; earlier unused tokens of the same purpose stop working,
/// so only the newest link in the inbox is live.
pub async fn issue(conn: &mut sqlx::PgConnection, user: UserId, purpose: Purpose) -> Result<String> {
    issue_carrying(conn, user, purpose, None).await
}

/// `issue` for a token that carries the address it proves (a change of email).
pub(crate) async fn issue_carrying(
    conn: &mut sqlx::PgConnection,
    user: UserId,
    purpose: Purpose,
    new_email: Option<&Email>,
) -> Result<String> {
    sqlx::query!(
        "UPDATE user_tokens SET used_at = now() WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL",
        user.0,
        purpose as Purpose
    )
    .execute(&mut *conn)
    .await?;
    let raw = random_token();
    sqlx::query!(
        "INSERT INTO user_tokens (token_hash, user_id, purpose, expires_at, new_email) VALUES ($1, $2, $3, $4, $5::text)",
        token_hash(&raw),
        user.0,
        purpose as Purpose,
        OffsetDateTime::now_utc() + purpose.lifetime(),
        new_email.map(Email::as_str)
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

/// The user and the address a live change-of-email token carries, without
/// using it up (for the confirm page).
pub(crate) async fn peek_email_change(pool: &sqlx::PgPool, raw: &str) -> Result<Option<(UserId, String)>> {
    let row = sqlx::query!(
        r#"SELECT user_id, new_email::text AS "new_email!" FROM user_tokens
           WHERE token_hash = $1 AND purpose = 'change_email' AND new_email IS NOT NULL
             AND used_at IS NULL AND expires_at > now()"#,
        token_hash(raw)
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| (UserId(r.user_id), r.new_email)))
}

/// Uses a change-of-email token up: the user and the address it carries.
pub(crate) async fn consume_email_change(conn: &mut sqlx::PgConnection, raw: &str) -> Result<Option<(UserId, String)>> {
    let row = sqlx::query!(
        r#"UPDATE user_tokens SET used_at = now()
           WHERE token_hash = $1 AND purpose = 'change_email' AND new_email IS NOT NULL
             AND used_at IS NULL AND expires_at > now()
           RETURNING user_id, new_email::text AS "new_email!""#,
        token_hash(raw)
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (UserId(r.user_id), r.new_email)))
}

/// Ends every unused token of a user, whatever it is for: after a change of
/// address, links mailed to the old one must not work.
pub(crate) async fn end_all(conn: &mut sqlx::PgConnection, user: UserId) -> Result<()> {
    sqlx::query!("UPDATE user_tokens SET used_at = now() WHERE user_id = $1 AND used_at IS NULL", user.0)
        .execute(conn)
        .await?;
    Ok(())
}
