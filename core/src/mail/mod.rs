//! Outgoing mail. Messages are written to `outbox_emails` in the same
//! transaction as the change that causes them, then delivered by a worker:
//! a failed SMTP server delays mail, it never loses it.

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{Error, Result};

pub mod messages;
pub mod outbox;

/// A message ready to queue; `messages` writes them.
pub struct Outgoing {
    pub to: String,
    pub subject: String,
    pub text: String,
}

/// Queues a message inside the caller's transaction.
pub async fn enqueue(conn: &mut sqlx::PgConnection, mail: &Outgoing) -> Result<()> {
    sqlx::query!(
        "INSERT INTO outbox_emails (id, to_address, subject, body_text) VALUES ($1, $2, $3, $4)",
        Uuid::now_v7(),
        mail.to.as_str() as _,
        mail.subject,
        mail.text
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Where queued mail goes.
#[derive(Clone)]
pub enum Delivery {
    /// A real SMTP exchange.
    Smtp { transport: AsyncSmtpTransport<Tokio1Executor>, from: Mailbox },
    /// Development: each message becomes a `.eml` file in a directory.
    Directory { dir: PathBuf, from: Mailbox },
    /// Nowhere yet: messages wait in the outbox table until SMTP is configured.
    Hold,
}

impl Delivery {
    /// `smtp://host:port` (plain), `smtp://host:port?tls=required` (STARTTLS)
    /// or `smtps://host:port` (TLS), with optional `user:pass@`.
    pub fn smtp(url: &str, from: &str) -> Result<Delivery> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| Error::invalid("TOLLGATE_SMTP_URL", format!("not a usable SMTP URL: {e}")))?
            .timeout(Some(Duration::from_secs(20)))
            .build();
        Ok(Delivery::Smtp { transport, from: parse_from(from)? })
    }

    pub fn directory(dir: PathBuf, from: &str) -> Result<Delivery> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::invalid("TOLLGATE_MAIL_OUTBOX_DIR", format!("cannot create {}: {e}", dir.display())))?;
        Ok(Delivery::Directory { dir, from: parse_from(from)? })
    }
}

fn parse_from(from: &str) -> Result<Mailbox> {
    from.parse::<Mailbox>().map_err(|e| {
        Error::invalid("TOLLGATE_MAIL_FROM", format!("not a mailbox such as \"Tollgate <portal@example.com>\": {e}"))
    })
}

fn build(from: &Mailbox, to: &str, subject: &str, text: &str) -> std::result::Result<Message, String> {
    let to: Mailbox = to.parse().map_err(|e| format!("bad recipient: {e}"))?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body(text.to_owned())
        .map_err(|e| e.to_string())
}

/// Retries back off from 30 s to an hour; after 20 attempts a message is
/// left for an operator (it stays in the table with its last error).
const MAX_ATTEMPTS: i32 = 20;

/// Sends what is due; returns how many were sent. Safe to run on several
/// replicas at once (rows are claimed with SKIP LOCKED).
pub async fn deliver_due(pool: &PgPool, delivery: &Delivery) -> Result<usize> {
    if matches!(delivery, Delivery::Hold) {
        return Ok(0);
    }
    let mut tx = pool.begin().await?;
    let due = sqlx::query!(
        r#"SELECT id, to_address::text AS "to_address!", subject, body_text, attempts FROM outbox_emails
           WHERE sent_at IS NULL AND next_attempt_at <= now() AND attempts < $1
           ORDER BY next_attempt_at LIMIT 20 FOR UPDATE SKIP LOCKED"#,
        MAX_ATTEMPTS
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut sent = 0;
    for mail in due {
        let outcome = match delivery {
            Delivery::Smtp { transport, from } => match build(from, &mail.to_address, &mail.subject, &mail.body_text) {
                Ok(message) => transport.send(message).await.map(|_| ()).map_err(|e| e.to_string()),
                Err(e) => Err(e),
            },
            Delivery::Directory { dir, from } => match build(from, &mail.to_address, &mail.subject, &mail.body_text) {
                Ok(message) => {
                    let path = dir.join(format!("{}.eml", mail.id));
                    let tmp = dir.join(format!(".{}.tmp", mail.id));
                    std::fs::write(&tmp, message.formatted())
                        .and_then(|()| std::fs::rename(&tmp, &path))
                        .map_err(|e| e.to_string())
                }
                Err(e) => Err(e),
            },
            Delivery::Hold => Ok(()),
        };
        match outcome {
            Ok(()) => {
                sqlx::query!("UPDATE outbox_emails SET sent_at = now(), attempts = attempts + 1, last_error = NULL WHERE id = $1", mail.id)
                    .execute(&mut *tx)
                    .await?;
                sent += 1;
            }
            Err(error) => {
                tracing::warn!(to = %mail.to_address, attempts = mail.attempts + 1, %error, "mail delivery failed; will retry");
                let delay = 30_i64.saturating_mul(1 << mail.attempts.clamp(0, 7)).min(3600);
                sqlx::query!(
                    "UPDATE outbox_emails SET attempts = attempts + 1, last_error = $2, next_attempt_at = now() + make_interval(secs => $3) WHERE id = $1",
                    mail.id,
                    error,
                    delay as f64
                )
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    tx.commit().await?;
    Ok(sent)
}
