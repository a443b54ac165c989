//! A user's in-portal notifications, as the portal lists them: those sent to
//! the user and those sent to the account the user acts for. A notification
//! to an account is read once for all its members (one row, one `read_at`).

use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Result;
use crate::accounts::{AccountId, UserId};

/// The most notifications a page lists.
pub const PAGE: i64 = 100;

#[derive(Clone, Debug, serde::Serialize)]
pub struct Notice {
    pub id: Uuid,
    pub kind: String,
    pub title: String,
    pub body: String,
    /// A path on this server, when there is something to look at.
    pub link: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub read: bool,
}

/// The newest notifications of a user, newest first.
pub async fn list(pool: &PgPool, user: UserId, account: Option<AccountId>) -> Result<Vec<Notice>> {
    let rows = sqlx::query!(
        "SELECT id, kind, title, body, link, created_at, read_at FROM notifications
         WHERE user_id = $1 OR ($2::uuid IS NOT NULL AND account_id = $2)
         ORDER BY created_at DESC, id LIMIT $3",
        user.0,
        account.map(|a| a.0),
        PAGE
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Notice {
            id: r.id,
            kind: r.kind,
            title: r.title,
            body: r.body,
            link: r.link,
            created_at: r.created_at,
            read: r.read_at.is_some(),
        })
        .collect())
}

/// How many are unread, for the count in the header.
pub async fn unread_count(pool: &PgPool, user: UserId, account: Option<AccountId>) -> Result<i64> {
    let n = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM notifications
           WHERE (user_id = $1 OR ($2::uuid IS NOT NULL AND account_id = $2)) AND read_at IS NULL"#,
        user.0,
        account.map(|a| a.0)
    )
    .fetch_one(pool)
    .await?;
    Ok(n)
}

/// Marks one read; another user's or account's notification is not found.
pub async fn mark_read(pool: &PgPool, user: UserId, account: Option<AccountId>, id: Uuid) -> Result<()> {
    let done = sqlx::query!(
        "UPDATE notifications SET read_at = coalesce(read_at, now())
         WHERE id = $3 AND (user_id = $1 OR ($2::uuid IS NOT NULL AND account_id = $2))",
        user.0,
        account.map(|a| a.0),
        id
    )
    .execute(pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(crate::Error::NotFound);
    }
    Ok(())
}

pub async fn mark_all_read(pool: &PgPool, user: UserId, account: Option<AccountId>) -> Result<()> {
    sqlx::query!(
        "UPDATE notifications SET read_at = now()
         WHERE (user_id = $1 OR ($2::uuid IS NOT NULL AND account_id = $2)) AND read_at IS NULL",
        user.0,
        account.map(|a| a.0)
    )
    .execute(pool)
    .await?;
    Ok(())
}
