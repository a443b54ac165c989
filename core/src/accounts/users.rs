//! Users and the accounts they belong to: creating admins and developers,
//! finding a user, and sign-in throttled per (user, client address).

use sqlx::PgPool;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::throttle::{self, ClientAddress};
use super::{Email, PasswordHasher};
use crate::error::conflict_on_unique;
use crate::{Error, Result, webhooks};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct UserId(pub Uuid);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct AccountId(pub Uuid);

/// What the web layer needs to know about the signed-in user.
#[derive(Debug, Clone)]
pub struct UserSummary {
    pub id: UserId,
    pub email: String,
    pub is_admin: bool,
    pub email_verified: bool,
    /// The developer account the user acts for; the provider account for admins.
    pub account_id: Option<AccountId>,
    pub account_name: Option<String>,
    /// Every organisation the user belongs to, oldest membership first, for the switcher.
    pub organisations: Vec<Organisation>,
}

impl UserSummary {
    /// Whether `account` is the organisation the user acts for now.
    pub fn works_in(&self, account: &AccountId) -> bool {
        self.account_id.as_ref() == Some(account)
    }
}

/// An organisation a user belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organisation {
    pub id: AccountId,
    pub name: String,
}

pub enum SignInOutcome {
    SignedIn(UserSummary),
    /// Wrong email or password; deliberately does not say which.
    Rejected,
    /// Too many recent failures for this account from this client address.
    Throttled {
        retry_after: Duration,
    },
    /// Too many failures from this client address this hour, over all accounts: answered
    /// before any account is looked at, so saying so reveals nothing about one.
    ClientPaused {
        retry_after: Duration,
    },
}

/// The provider account every admin belongs to, created on first use.
async fn provider_account(tx: &mut sqlx::PgConnection) -> Result<Uuid> {
    if let Some(id) = sqlx::query_scalar!("SELECT id FROM accounts WHERE kind = 'provider' ORDER BY created_at LIMIT 1")
        .fetch_optional(&mut *tx)
        .await?
    {
        return Ok(id);
    }
    let id = Uuid::now_v7();
    sqlx::query!("INSERT INTO accounts (id, kind, name) VALUES ($1, 'provider', 'Provider')", id)
        .execute(&mut *tx)
        .await?;
    Ok(id)
}

/// Creates a provider admin with a verified email.
pub async fn create_admin(pool: &PgPool, email: &Email, password_hash: &str) -> Result<UserId> {
    let mut tx = pool.begin().await?;
    let account = provider_account(&mut tx).await?;
    let verified_at = Some(OffsetDateTime::now_utc());
    let user = insert_owner(&mut tx, account, email, Some(password_hash), verified_at, true).await?;
    tx.commit().await?;
    Ok(user)
}

/// Adds a user as an owner of `account`; an email can belong to one user only.
async fn insert_owner(
    tx: &mut sqlx::PgConnection,
    account: Uuid,
    email: &Email,
    password_hash: Option<&str>,
    verified_at: Option<OffsetDateTime>,
    is_admin: bool,
) -> Result<UserId> {
    let user = Uuid::now_v7();
    sqlx::query!(
        "INSERT INTO users (id, email, password_hash, email_verified_at, is_admin) VALUES ($1, $2, $3, $4, $5)",
        user,
        email.as_str() as _,
        password_hash,
        verified_at,
        is_admin
    )
    .execute(&mut *tx)
    .await
    .map_err(|e| conflict_on_unique(e, "a user with this email already exists"))?;
    sqlx::query!("INSERT INTO memberships (account_id, user_id, role) VALUES ($1, $2, 'owner')", account, user)
        .execute(&mut *tx)
        .await?;
    Ok(UserId(user))
}

/// What is wrong with an (already trimmed) organisation name: it is one
/// line of 1 to 200 characters, without control characters or line
/// separators, because it is shown in pages and lists as one line.
pub(crate) fn organisation_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.chars().count() > 200 {
        return Some("enter your organisation's name (up to 200 characters)");
    }
    if name.chars().any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')) {
        return Some("keep the name on one line, without tabs or line breaks");
    }
    None
}

/// Creates a developer organisation with its first user as owner.
pub async fn create_developer(
    pool: &PgPool,
    organisation: &str,
    email: &Email,
    password_hash: &str,
    verified: bool,
) -> Result<(AccountId, UserId)> {
    let mut tx = pool.begin().await?;
    let ids = create_developer_in(&mut tx, organisation, email, Some(password_hash), verified).await?;
    tx.commit().await?;
    Ok(ids)
}

/// `create_developer` inside the caller's transaction; without a password
/// hash the user can sign in only through an identity provider.
pub async fn create_developer_in(
    tx: &mut sqlx::PgConnection,
    organisation: &str,
    email: &Email,
    password_hash: Option<&str>,
    verified: bool,
) -> Result<(AccountId, UserId)> {
    let organisation = organisation.trim();
    if let Some(problem) = organisation_problem(organisation) {
        return Err(Error::invalid("organisation", problem));
    }
    let account = Uuid::now_v7();
    sqlx::query!("INSERT INTO accounts (id, kind, name) VALUES ($1, 'developer', $2)", account, organisation)
        .execute(&mut *tx)
        .await?;
    let user = insert_owner(tx, account, email, password_hash, verified.then(OffsetDateTime::now_utc), false).await?;
    let after = serde_json::json!({"name": organisation, "owner": email.as_str()});
    let data = webhooks::queue::data("account", Some(account), email.as_str(), None, Some(&after));
    webhooks::queue::enqueue(tx, webhooks::EventType::AccountCreated, data).await?;
    Ok((AccountId(account), user))
}

/// A user by email: id, whether verified, and their first account's name.
pub(crate) async fn find_user_by_email(
    conn: &mut sqlx::PgConnection,
    email: &Email,
) -> Result<Option<(UserId, bool, String)>> {
    let row = sqlx::query!(
        r#"SELECT u.id, u.email_verified_at IS NOT NULL AS "verified!",
                  coalesce((SELECT a.name FROM memberships m JOIN accounts a ON a.id = m.account_id
                            WHERE m.user_id = u.id ORDER BY m.created_at LIMIT 1), '') AS "organisation!"
           FROM users u WHERE u.email = $1::citext"#,
        email.as_str() as _
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (UserId(r.id), r.verified, r.organisation)))
}

/// The user and the organisation they act for: the one they chose last
/// (`users.current_account_id`) if they still belong to it, else their oldest
/// membership. Membership is read on every call, so a stale choice never grants access.
pub async fn find_user(pool: &PgPool, id: UserId) -> Result<Option<UserSummary>> {
    let row = sqlx::query!(
        r#"SELECT u.id, u.email::text AS "email!", u.is_admin, u.email_verified_at,
                  a.id AS "account_id?", a.name AS "account_name?",
                  coalesce(o.ids, '{}') AS "organisation_ids!", coalesce(o.names, '{}') AS "organisation_names!"
           FROM users u
           LEFT JOIN LATERAL (
               SELECT a.id, a.name FROM memberships m JOIN accounts a ON a.id = m.account_id
               WHERE m.user_id = u.id
               ORDER BY m.account_id = u.current_account_id IS TRUE DESC, m.created_at LIMIT 1
           ) a ON true
           LEFT JOIN LATERAL (
               SELECT array_agg(a.id ORDER BY m.created_at, a.id) AS ids,
                      array_agg(a.name ORDER BY m.created_at, a.id) AS names
               FROM memberships m JOIN accounts a ON a.id = m.account_id WHERE m.user_id = u.id
           ) o ON true
           WHERE u.id = $1"#,
        id.0
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| UserSummary {
        id: UserId(r.id),
        email: r.email,
        is_admin: r.is_admin,
        email_verified: r.email_verified_at.is_some(),
        account_id: r.account_id.map(AccountId),
        account_name: r.account_name,
        organisations: r
            .organisation_ids
            .into_iter()
            .zip(r.organisation_names)
            .map(|(id, name)| Organisation { id: AccountId(id), name })
            .collect(),
    }))
}

/// Makes `account` the organisation the user works in and returns its name.
/// Only an organisation the user belongs to can be chosen; any other is not found.
pub async fn switch_organisation(pool: &PgPool, user: UserId, account: AccountId) -> Result<String> {
    let name = sqlx::query_scalar!(
        "UPDATE users u SET current_account_id = m.account_id, updated_at = now()
         FROM memberships m JOIN accounts a ON a.id = m.account_id
         WHERE u.id = $1 AND m.user_id = u.id AND m.account_id = $2
         RETURNING a.name",
        user.0,
        account.0
    )
    .fetch_optional(pool)
    .await?;
    name.ok_or(Error::NotFound)
}

pub async fn mark_email_verified(pool: &PgPool, id: UserId) -> Result<()> {
    sqlx::query!(
        "UPDATE users SET email_verified_at = coalesce(email_verified_at, now()), updated_at = now() WHERE id = $1",
        id.0
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Checks an email and password, throttling repeated failures per (user,
/// client address): from the sixth failure on, sign-in from that address
/// pauses for a growing time (see `throttle`). Every path does the same
/// argon2 work, one verification, so neither an unknown email nor a paused
/// account answers faster than a wrong password. `device` is the browser's device cookie.
pub async fn authenticate(
    pool: &PgPool,
    hasher: &PasswordHasher,
    email: &str,
    password: &str,
    client: &ClientAddress,
    device: Option<&str>,
) -> Result<SignInOutcome> {
    // An address whose hour of failures is spent waits, whichever account it names; no
    // password is checked, so spraying costs the server nothing either. A browser the user
    // signed in from before is not held by what others on its network did.
    if let Some(retry_after) = throttle::client_paused_for(pool, client).await?
        && !throttle::is_known_device(pool, device, email).await?
    {
        return Ok(SignInOutcome::ClientPaused { retry_after });
    }
    let row = sqlx::query!("SELECT id, password_hash FROM users WHERE email = $1::citext", email.trim() as _)
        .fetch_optional(pool)
        .await?;
    let Some(row) = row else {
        hasher.verify(password, None).await;
        throttle::record_client_failure(pool, client).await?;
        return Ok(SignInOutcome::Rejected);
    };
    let user = UserId(row.id);
    let paused_until = throttle::sign_in_paused_until(pool, user, client).await?;
    // Checked even while paused, so a pause costs the same time as a check.
    let matches = hasher.verify(password, row.password_hash.as_deref()).await;
    if let Some(until) = paused_until {
        return Ok(SignInOutcome::Throttled { retry_after: until - OffsetDateTime::now_utc() });
    }
    if matches {
        throttle::clear_sign_in_failures(pool, user, client).await?;
        let user = find_user(pool, user).await?.ok_or(Error::NotFound)?;
        return Ok(SignInOutcome::SignedIn(user));
    }
    throttle::record_sign_in_failure(pool, user, client).await?;
    throttle::record_client_failure(pool, client).await?;
    Ok(SignInOutcome::Rejected)
}

/// The user's address, once `current_password` is theirs: what a signed-in
/// user proves before a change a left-open session must not make alone.
/// Wrong guesses count with failed sign-ins from `client`, and pause alike.
pub(crate) async fn confirm_password(
    pool: &PgPool,
    hasher: &PasswordHasher,
    user: UserId,
    current_password: &str,
    client: &ClientAddress,
) -> Result<String> {
    let row = sqlx::query!(r#"SELECT email::text AS "email!", password_hash FROM users WHERE id = $1"#, user.0)
        .fetch_optional(pool)
        .await?
        .ok_or(Error::NotFound)?;
    if row.password_hash.is_none() {
        return Err(Error::invalid(
            "current_password",
            "your account signs in through another provider and has no password; set one first by signing out \
             and choosing “Forgot your password?”",
        ));
    }
    let paused_until = throttle::sign_in_paused_until(pool, user, client).await?;
    let matches = hasher.verify(current_password, row.password_hash.as_deref()).await;
    if let Some(until) = paused_until {
        let wait = crate::minutes(u64::try_from((until - OffsetDateTime::now_utc()).whole_seconds()).unwrap_or(0));
        return Err(Error::invalid(
            "current_password",
            format!("too many wrong passwords from your network; try again in {wait}"),
        ));
    }
    if !matches {
        throttle::record_sign_in_failure(pool, user, client).await?;
        return Err(Error::invalid("current_password", "this is not your current password"));
    }
    Ok(row.email)
}
