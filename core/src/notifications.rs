//! In-portal notifications: to one user, or to every member of an account.
//! Usage alerts write them in the transaction that decides the alert.

use serde::Serialize;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Error, Result};

/// A notification as its reader sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    pub id: Uuid,
    /// `usage_alert`, ...: what made it, for icons and filters.
    pub kind: String,
    pub title: String,
    pub body: String,
    /// A path on this server to follow, if any.
    pub link: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub read_at: Option<OffsetDateTime>,
}

/// Who a new notification is for.
#[derive(Debug, Clone, Copy)]
pub enum Recipient {
    User(Uuid),
    Account(Uuid),
}

/// A notification to write.
pub struct NewNotification<'a> {
    pub to: Recipient,
    pub kind: &'a str,
    pub title: &'a str,
    pub body: &'a str,
    /// A path on this server (`/apps/...`), never an absolute URL.
    pub link: Option<&'a str>,
}

/// The longest title and body the table holds, in characters.
const MAX_TITLE_CHARS: usize = 200;
const MAX_BODY_CHARS: usize = 4000;

/// `text` if it has at most `max` characters, else its first `max - 1` and an ellipsis.
fn cut(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => text.into(),
        Some(_) => {
            let end = text.char_indices().nth(max - 1).map_or(text.len(), |(i, _)| i);
            format!("{}…", &text[..end]).into()
        }
    }
}

/// Writes a notification inside the caller's transaction.
pub async fn insert(conn: &mut sqlx::PgConnection, n: &NewNotification<'_>) -> Result<Uuid> {
    let (user, account) = match n.to {
        Recipient::User(id) => (Some(id), None),
        Recipient::Account(id) => (None, Some(id)),
    };
    let id = Uuid::now_v7();
    // Titles and bodies quote names of up to 200 characters: cut to what the table holds.
    let title = cut(n.title, MAX_TITLE_CHARS);
    let body = cut(n.body, MAX_BODY_CHARS);
    sqlx::query!(
        "INSERT INTO notifications (id, user_id, account_id, kind, title, body, link) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        id,
        user,
        account,
        n.kind,
        &*title,
        &*body,
        n.link
    )
    .execute(conn)
    .await?;
    Ok(id)
}

/// The account's owners with a verified address: mail goes only where someone proved
/// they read it.
pub(crate) async fn verified_owners(conn: &mut sqlx::PgConnection, account: Uuid) -> Result<Vec<(Uuid, String)>> {
    let rows = sqlx::query!(
        r#"SELECT u.id, u.email::text AS "email!" FROM memberships ms JOIN users u ON u.id = ms.user_id
           WHERE ms.account_id = $1 AND ms.role = 'owner' AND u.email_verified_at IS NOT NULL
           ORDER BY u.id"#,
        account
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.email)).collect())
}

/// Every provider admin with their address (set by an operator, so mail may go there).
pub(crate) async fn admins(conn: &mut sqlx::PgConnection) -> Result<Vec<(Uuid, String)>> {
    let rows = sqlx::query!(r#"SELECT id, email::text AS "email!" FROM users WHERE is_admin ORDER BY id"#)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.email)).collect())
}

/// Mails `user` and leaves them a notification titled as the mail, both in the
/// caller's transaction, so neither is written without the other.
pub(crate) async fn tell(
    conn: &mut sqlx::PgConnection,
    user: Uuid,
    mail: &crate::mail::Outgoing,
    kind: &str,
    body: &str,
    link: &str,
) -> Result<()> {
    crate::mail::enqueue(&mut *conn, mail).await?;
    insert(
        &mut *conn,
        &NewNotification { to: Recipient::User(user), kind, title: &mail.subject, body, link: Some(link) },
    )
    .await?;
    Ok(())
}

/// The newest `limit` notifications `user` can read (their own and those of
/// accounts they belong to), newest first.
pub async fn list_for_user(pool: &PgPool, user: Uuid, limit: i64) -> Result<Vec<Notification>> {
    let rows = sqlx::query_as!(
        Notification,
        "SELECT n.id, n.kind, n.title, n.body, n.link, n.created_at, n.read_at FROM notifications n
         WHERE n.user_id = $1
            OR n.account_id IN (SELECT account_id FROM memberships WHERE user_id = $1)
         ORDER BY n.created_at DESC, n.id DESC LIMIT $2",
        user,
        limit.clamp(1, 500)
    )
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// How many of the notifications `user` can read are unread (for the header).
pub async fn unread_count(pool: &PgPool, user: Uuid) -> Result<i64> {
    let count = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM notifications n
           WHERE n.read_at IS NULL
             AND (n.user_id = $1 OR n.account_id IN (SELECT account_id FROM memberships WHERE user_id = $1))"#,
        user
    )
    .fetch_one(pool)
    .await?;
    Ok(count)
}

/// Marks one notification read. `NotFound` if `user` cannot read it (no
/// telling apart someone else's and a missing one).
pub async fn mark_read(pool: &PgPool, user: Uuid, id: Uuid) -> Result<()> {
    let updated = sqlx::query!(
        "UPDATE notifications n SET read_at = coalesce(n.read_at, now())
         WHERE n.id = $2
           AND (n.user_id = $1 OR n.account_id IN (SELECT account_id FROM memberships WHERE user_id = $1))",
        user,
        id
    )
    .execute(pool)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// Marks every notification `user` can read as read; returns how many changed.
pub async fn mark_all_read(pool: &PgPool, user: Uuid) -> Result<u64> {
    let updated = sqlx::query!(
        "UPDATE notifications n SET read_at = now()
         WHERE n.read_at IS NULL
           AND (n.user_id = $1 OR n.account_id IN (SELECT account_id FROM memberships WHERE user_id = $1))",
        user
    )
    .execute(pool)
    .await?;
    Ok(updated.rows_affected())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_long_title_is_cut_to_what_the_table_holds() {
        assert_eq!(super::cut("short", 200), "short");
        let exact = "é".repeat(200);
        assert_eq!(super::cut(&exact, 200), exact);
        let long = format!("{} waits for approval", "é".repeat(200));
        let cut = super::cut(&long, 200);
        assert_eq!(cut.chars().count(), 200);
        assert!(cut.ends_with("é…"), "{cut}");
    }
}
