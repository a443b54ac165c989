//! Reading the outbox: every message the server queued, sent or not, for
//! `tollgate dev`'s mail viewer. Reads the table rather than the delivered
//! copies, so it shows the same mail whether delivery is SMTP or files.

use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Result;

/// Where a queued message is on its way out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryState {
    Sent {
        at: OffsetDateTime,
    },
    /// Not tried yet, or waiting for its next try.
    Queued,
    /// The last try failed; it will be retried.
    Failing {
        attempts: i32,
        error: String,
    },
}

impl DeliveryState {
    fn of(sent_at: Option<OffsetDateTime>, attempts: i32, last_error: Option<String>) -> DeliveryState {
        match (sent_at, last_error) {
            (Some(at), _) => DeliveryState::Sent { at },
            (None, Some(error)) => DeliveryState::Failing { attempts, error },
            (None, None) => DeliveryState::Queued,
        }
    }

    /// One word for badges and tests.
    pub fn label(&self) -> &'static str {
        match self {
            DeliveryState::Sent { .. } => "sent",
            DeliveryState::Queued => "queued",
            DeliveryState::Failing { .. } => "failing",
        }
    }
}

/// A line of the mail list.
#[derive(Debug, Clone)]
pub struct MailSummary {
    pub id: Uuid,
    pub to: String,
    pub subject: String,
    pub created_at: OffsetDateTime,
    pub state: DeliveryState,
}

impl MailSummary {
    /// `delivery` is the row's (sent_at, attempts, last_error).
    fn of(
        id: Uuid,
        to: String,
        subject: String,
        created_at: OffsetDateTime,
        delivery: (Option<OffsetDateTime>, i32, Option<String>),
    ) -> MailSummary {
        let (sent_at, attempts, last_error) = delivery;
        MailSummary { id, to, subject, created_at, state: DeliveryState::of(sent_at, attempts, last_error) }
    }
}

/// One message whole.
#[derive(Debug, Clone)]
pub struct Mail {
    pub summary: MailSummary,
    pub text: String,
}

/// The newest `limit` messages, newest first, and how many there are in all.
pub async fn recent(pool: &PgPool, limit: i64) -> Result<(Vec<MailSummary>, i64)> {
    let rows = sqlx::query!(
        r#"SELECT id, to_address::text AS "to_address!", subject, created_at, sent_at, attempts, last_error
           FROM outbox_emails ORDER BY created_at DESC, id DESC LIMIT $1"#,
        limit
    )
    .fetch_all(pool)
    .await?;
    let total = sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM outbox_emails"#).fetch_one(pool).await?;
    let list = rows
        .into_iter()
        .map(|r| MailSummary::of(r.id, r.to_address, r.subject, r.created_at, (r.sent_at, r.attempts, r.last_error)))
        .collect();
    Ok((list, total))
}

/// One message, if it exists.
pub async fn find(pool: &PgPool, id: Uuid) -> Result<Option<Mail>> {
    let row = sqlx::query!(
        r#"SELECT id, to_address::text AS "to_address!", subject, body_text, created_at, sent_at, attempts, last_error
           FROM outbox_emails WHERE id = $1"#,
        id
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| Mail {
        summary: MailSummary::of(r.id, r.to_address, r.subject, r.created_at, (r.sent_at, r.attempts, r.last_error)),
        text: r.body_text,
    }))
}
