//! Self-service account flows: sign-up with email verification, password
//! reset and change. Every public answer is the same for known and unknown
//! emails, so none of them can be used to find out who has an account; the
//! flows that mail an address pass the mail throttles first (`throttle`).

use sqlx::PgPool;

use super::throttle::{self, ClientAddress, MailAdmission, MailLimits, MailRequestKind};
use super::tokens::{self, Purpose};
use super::users::{confirm_password, find_user_by_email, organisation_problem};
use super::{AccountId, Email, Password, PasswordHasher, UserId, create_developer_in};
use crate::mail::{enqueue, messages};
use crate::{Error, Result};

/// Validated sign-up input.
pub struct SignUp {
    pub organisation: String,
    pub email: Email,
    pub password: Password,
}

impl SignUp {
    /// Checks every field and reports all problems at once, by field.
    pub fn parse(
        organisation: &str,
        email: &str,
        password: &str,
    ) -> std::result::Result<SignUp, Vec<(&'static str, String)>> {
        let mut problems = Vec::new();
        let organisation = organisation.trim();
        if let Some(problem) = organisation_problem(organisation) {
            problems.push(("organisation", problem.to_owned()));
        }
        let email = Email::parse(email).map_err(|e| problems.push(("email", field_message(e)))).ok();
        let password = Password::parse(password).map_err(|e| problems.push(("password", field_message(e)))).ok();
        match (email, password) {
            (Some(email), Some(password)) if problems.is_empty() => {
                Ok(SignUp { organisation: organisation.to_owned(), email, password })
            }
            _ => Err(problems),
        }
    }
}

fn field_message(err: Error) -> String {
    match err {
        Error::Invalid { message, .. } => message,
        other => other.to_string(),
    }
}

/// Who asked for a mail, and the throttles that apply to them.
pub struct MailRequest<'a> {
    pub client: &'a ClientAddress,
    pub limits: &'a MailLimits,
}

impl MailRequest<'_> {
    async fn admit(&self, pool: &PgPool, kind: MailRequestKind, address: &Email) -> Result<MailAdmission> {
        throttle::admit_mail(pool, self.limits, kind, self.client, address).await
    }
}

/// Creates an unverified developer account and mails a verification link;
/// for an email that already has an account it mails a notice instead
/// (unless the address is in its cooldown). The caller shows the same page
/// either way. A client over its budget gets `RateLimited`, before any work.
pub async fn sign_up(
    pool: &PgPool,
    hasher: &PasswordHasher,
    request: &MailRequest<'_>,
    input: &SignUp,
    base_url: &str,
) -> Result<()> {
    let admission = request.admit(pool, MailRequestKind::SignUp, &input.email).await?;
    // Hash first, so both branches cost the same.
    let hash = hasher.hash(&input.password).await?;
    let mut tx = pool.begin().await?;
    if find_user_by_email(&mut tx, &input.email).await?.is_some() {
        if admission == MailAdmission::Send {
            enqueue(&mut tx, &messages::already_registered(input.email.as_str(), base_url)).await?;
        }
        tx.commit().await?;
        return Ok(());
    }
    // A new account gets its verification link even inside a cooldown: an
    // address can be new only once, so this cannot repeat.
    let (_, user): (AccountId, UserId) =
        create_developer_in(&mut tx, &input.organisation, &input.email, Some(&hash), false).await?;
    let token = tokens::issue(&mut tx, user, Purpose::VerifyEmail).await?;
    let link = format!("{base_url}/verify?token={token}");
    enqueue(&mut tx, &messages::verify_email(input.email.as_str(), &link)).await?;
    tx.commit().await?;
    Ok(())
}

/// Mails a fresh verification link if the email belongs to an unverified
/// user (and is not in its cooldown); otherwise does nothing. Same answer
/// either way.
pub async fn resend_verification(pool: &PgPool, request: &MailRequest<'_>, email: &str, base_url: &str) -> Result<()> {
    let Ok(email) = Email::parse(email) else { return Ok(()) };
    if request.admit(pool, MailRequestKind::Verification, &email).await? == MailAdmission::Quiet {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    if let Some((user, verified, _)) = find_user_by_email(&mut tx, &email).await?
        && !verified
    {
        let token = tokens::issue(&mut tx, user, Purpose::VerifyEmail).await?;
        let link = format!("{base_url}/verify?token={token}");
        enqueue(&mut tx, &messages::verify_email(email.as_str(), &link)).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Whether a verification link is still good (for the confirm page).
pub async fn verification_is_live(pool: &PgPool, token: &str) -> Result<bool> {
    Ok(tokens::peek(pool, token, Purpose::VerifyEmail).await?.is_some())
}

/// Marks the email verified; `false` for a used, expired or unknown link.
pub async fn verify_email(pool: &PgPool, token: &str) -> Result<bool> {
    let mut tx = pool.begin().await?;
    let Some(user) = tokens::consume(&mut tx, token, Purpose::VerifyEmail).await? else {
        return Ok(false);
    };
    sqlx::query!(
        "UPDATE users SET email_verified_at = coalesce(email_verified_at, now()), updated_at = now() WHERE id = $1",
        user.0
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Mails a reset link if the email has an account (and is not in its
/// cooldown). Same answer either way.
pub async fn request_password_reset(
    pool: &PgPool,
    request: &MailRequest<'_>,
    email: &str,
    base_url: &str,
) -> Result<()> {
    let Ok(email) = Email::parse(email) else { return Ok(()) };
    if request.admit(pool, MailRequestKind::PasswordReset, &email).await? == MailAdmission::Quiet {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    if let Some((user, _, _)) = find_user_by_email(&mut tx, &email).await? {
        let token = tokens::issue(&mut tx, user, Purpose::ResetPassword).await?;
        let link = format!("{base_url}/password/reset?token={token}");
        enqueue(&mut tx, &messages::reset_password(email.as_str(), &link)).await?;
    }
    tx.commit().await?;
    Ok(())
}

pub async fn reset_is_live(pool: &PgPool, token: &str) -> Result<bool> {
    Ok(tokens::peek(pool, token, Purpose::ResetPassword).await?.is_some())
}

/// Sets a new password from a reset link. Also lifts any sign-in pause,
/// so throttling can never lock a real owner out. Returns the user, or
/// `None` for a used, expired or unknown link.
pub async fn reset_password(
    pool: &PgPool,
    hasher: &PasswordHasher,
    token: &str,
    password: &Password,
) -> Result<Option<UserId>> {
    let hash = hasher.hash(password).await?;
    let mut tx = pool.begin().await?;
    let Some(user) = tokens::consume(&mut tx, token, Purpose::ResetPassword).await? else {
        return Ok(None);
    };
    // Following the link proves the mailbox, so it verifies the email too.
    sqlx::query!(
        "UPDATE users SET password_hash = $2, email_verified_at = coalesce(email_verified_at, now()), updated_at = now()
         WHERE id = $1",
        user.0,
        hash
    )
    .execute(&mut *tx)
    .await?;
    throttle::lift_sign_in_pauses(&mut tx, user).await?;
    // Whoever asked for a change of address with the old password loses the link with it.
    tokens::end_all(&mut tx, user).await?;
    tx.commit().await?;
    Ok(Some(user))
}

/// Changes a signed-in user's password after checking the current one, and ends every
/// link mailed before (reset, change of address).
pub async fn change_password(
    pool: &PgPool,
    hasher: &PasswordHasher,
    user: UserId,
    current: &str,
    new: &Password,
    client: &ClientAddress,
) -> Result<()> {
    confirm_password(pool, hasher, user, current, client).await?;
    let hash = hasher.hash(new).await?;
    let mut tx = pool.begin().await?;
    sqlx::query!("UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1", user.0, hash)
        .execute(&mut *tx)
        .await?;
    // A pending change of address or reset link was asked for under the old password: a
    // user who changes it because someone else knew it must not leave those working.
    tokens::end_all(&mut tx, user).await?;
    tx.commit().await?;
    Ok(())
}
