//! Moving a signed-in user's account to another email address.
//!
//! The current password is asked for, so a session left open cannot hand
//! the account (and with it the password-reset mail) to someone else. The
//! new address must prove itself by a link; until then nothing changes.
//! The old address is told both when the change is asked for and when it
//! happens. Whether the new address already has an account is said only to
//! that mailbox, never on the page, as at sign-up.

use serde_json::json;
use sqlx::PgPool;

use super::flows::MailRequest;
use super::throttle::{self, MailAdmission, MailRequestKind};
use super::tokens::{self, Purpose};
use super::users::{confirm_password, find_user_by_email};
use super::{Email, PasswordHasher, UserId};
use crate::audit::{self, Actor, Entry};
use crate::mail::{enqueue, messages};
use crate::{Error, Result};

/// Checks the password and mails a confirmation link to `new`, plus a
/// notice to the current address. A new address that already belongs to
/// another account gets a notice instead of a link; the caller answers the
/// same either way.
pub async fn request(
    pool: &PgPool,
    hasher: &PasswordHasher,
    mail: &MailRequest<'_>,
    user: UserId,
    current_password: &str,
    new: &Email,
    base_url: &str,
) -> Result<()> {
    let email = confirm_password(pool, hasher, user, current_password, mail.client).await?;
    if new.as_str().eq_ignore_ascii_case(&email) {
        return Err(Error::invalid("email", "this is already your email address"));
    }
    if throttle::admit_mail(pool, mail.limits, MailRequestKind::EmailChange, mail.client, new).await?
        == MailAdmission::Quiet
    {
        // The person asking is signed in and proved the password: say why no mail comes.
        return Err(Error::RateLimited { retry_after: mail.limits.address_cooldown });
    }
    let mut tx = pool.begin().await?;
    match find_user_by_email(&mut tx, new).await? {
        Some(_) => enqueue(&mut tx, &messages::email_change_taken(new.as_str(), base_url)).await?,
        None => {
            let token = tokens::issue_carrying(&mut tx, user, Purpose::ChangeEmail, Some(new)).await?;
            let link = format!("{base_url}/profile/email/confirm?token={token}");
            enqueue(&mut tx, &messages::confirm_email_change(new.as_str(), &link)).await?;
        }
    }
    enqueue(&mut tx, &messages::email_change_requested(&email, new.as_str(), base_url)).await?;
    tx.commit().await?;
    Ok(())
}

/// The new address a live link would move its account to (for the confirm page).
pub async fn pending_address(pool: &PgPool, token: &str) -> Result<Option<String>> {
    Ok(tokens::peek_email_change(pool, token).await?.map(|(_, address)| address))
}

/// What following a change-of-email link did.
#[derive(Debug, PartialEq, Eq)]
pub enum Confirmed {
    /// The account uses the new address now.
    Changed { user: UserId, address: String },
    /// The link was used, expired or never existed.
    DeadLink,
    /// Since the link was sent, another account took the address.
    Taken { address: String },
}

/// Moves the account to the address the link carries. Every other link
/// the user was mailed stops working, since it went to the old address.
pub async fn confirm(pool: &PgPool, token: &str, base_url: &str) -> Result<Confirmed> {
    let mut tx = pool.begin().await?;
    let Some((user, address)) = tokens::consume_email_change(&mut tx, token).await? else {
        return Ok(Confirmed::DeadLink);
    };
    let taken = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM users WHERE email = $1::citext AND id <> $2) AS "taken!""#,
        address.as_str() as _,
        user.0
    )
    .fetch_one(&mut *tx)
    .await?;
    if taken {
        tx.commit().await?;
        return Ok(Confirmed::Taken { address });
    }
    let old = sqlx::query_scalar!(r#"SELECT email::text AS "email!" FROM users WHERE id = $1 FOR UPDATE"#, user.0)
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query!(
        "UPDATE users SET email = $2::citext, email_verified_at = now(), updated_at = now() WHERE id = $1",
        user.0,
        address.as_str() as _
    )
    .execute(&mut *tx)
    .await
    .map_err(|e| crate::error::conflict_on_unique(e, "this address now has an account of its own"))?;
    tokens::end_all(&mut tx, user).await?;
    // A provider's sign-in was linked by the old address: whoever holds that identity at the
    // provider must not keep the account the address left.
    sqlx::query!("DELETE FROM identity_links WHERE user_id = $1", user.0).execute(&mut *tx).await?;
    audit::record(
        &mut tx,
        &Actor::user(user, &address),
        Entry {
            action: "user.email_changed",
            entity: "user",
            entity_id: Some(user.0),
            before: Some(json!({"email": old})),
            after: Some(json!({"email": address})),
        },
    )
    .await?;
    enqueue(&mut tx, &messages::email_changed(&old, &address, base_url)).await?;
    tx.commit().await?;
    Ok(Confirmed::Changed { user, address })
}
