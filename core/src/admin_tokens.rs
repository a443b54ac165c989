//! Admin API tokens: bearer secrets for the admin REST API, owned by an
//! admin user, stored as SHA-256, revocable, shown once. A token has a scope
//! (`read` answers only reads) and may have an end; a token made with another
//! token gets no more than that token has.

use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use tollgate_protocol::{KeyHash, KeyKind, SecretKey};
use uuid::Uuid;

use crate::accounts::{UserId, UserSummary, find_user};
use crate::audit::{self, Actor, Entry};
use crate::stored::stored_enum;
use crate::{Error, FieldProblems, Result};

stored_enum! {
    /// What a token may do with its admin's rights.
    pub enum TokenScope as "admin_token_scope" {
        /// Reads only: `GET` and `HEAD`.
        Read = "read",
        /// Everything its admin can do.
        Write = "write",
    }
}

impl TokenScope {
    /// Whether a token of this scope may make a token of `other`.
    pub fn covers(self, other: TokenScope) -> bool {
        self == TokenScope::Write || other == TokenScope::Read
    }
}

/// Where a token stands, from its revocation and its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenState {
    Active,
    Expired,
    Revoked,
}

impl TokenState {
    pub const ALL: [TokenState; 3] = [TokenState::Active, TokenState::Expired, TokenState::Revoked];

    pub const fn as_str(self) -> &'static str {
        match self {
            TokenState::Active => "active",
            TokenState::Expired => "expired",
            TokenState::Revoked => "revoked",
        }
    }
}

/// A new token's terms.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    pub name: &'a str,
    pub scope: TokenScope,
    /// `None`: the token works until it is revoked (or, made with a token that ends, until that one ends).
    pub expires_at: Option<OffsetDateTime>,
}

impl<'a> NewToken<'a> {
    /// A token that does everything its admin can, until revoked.
    pub fn write(name: &'a str) -> NewToken<'a> {
        NewToken { name, scope: TokenScope::Write, expires_at: None }
    }
}

/// The live token a call came with.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: UserSummary,
    pub name: String,
    pub scope: TokenScope,
    pub expires_at: Option<OffsetDateTime>,
    prefix: String,
    last4: String,
}

impl Caller {
    /// The audit's actor: the admin, and which of their tokens acted.
    pub fn actor(&self) -> Actor {
        Actor::user(self.user.id, &self.user.email)
            .via(format!("API token {:?} ({}…{})", self.name, self.prefix, self.last4))
    }
}

/// What a bearer token turned out to be.
#[derive(Debug, Clone)]
pub enum Authentication {
    Valid(Box<Caller>),
    /// A real token whose end has passed.
    Expired(OffsetDateTime),
    /// Not a live admin token: mistyped, revoked, or its admin gone.
    Unknown,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct AdminTokenView {
    pub id: Uuid,
    pub name: String,
    pub owner_email: String,
    pub prefix: String,
    pub last4: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// To the minute: a call within a minute of the last recorded one does not move it.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    pub scope: TokenScope,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    pub state: TokenState,
}

/// Creates a token for an admin; returns its id and the secret, shown once. A token made with
/// another token (`minted_by`) has at most its scope, and ends no later than it: when it does
/// not say when it ends, it ends with that token.
pub async fn create(
    pool: &PgPool,
    owner: UserId,
    terms: NewToken<'_>,
    minted_by: Option<&Caller>,
    actor: &Actor,
) -> Result<(Uuid, SecretKey)> {
    // Every term is checked, so one answer names every problem.
    let mut problems = FieldProblems::default();
    let name = terms.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        problems.add("name", "use 1 to 100 characters");
    }
    let now = OffsetDateTime::now_utc();
    let mut expires_at = terms.expires_at;
    if expires_at.is_some_and(|at| at <= now) {
        problems.add("expires_at", "must be in the future");
    }
    if let Some(caller) = minted_by {
        if !caller.scope.covers(terms.scope) {
            problems.add(
                "scope",
                format!(
                    "the token making the call has scope {}, so the new one cannot have {}",
                    caller.scope, terms.scope
                ),
            );
        }
        if let Some(end) = caller.expires_at {
            match expires_at {
                None => expires_at = Some(end),
                Some(at) if at > end => problems.add(
                    "expires_at",
                    format!(
                        "a token made with a token cannot outlive it: the token making the call expires at {}",
                        rfc3339(end)
                    ),
                ),
                Some(_) => {}
            }
        }
    }
    problems.into_result()?;
    let is_admin = sqlx::query_scalar!("SELECT is_admin FROM users WHERE id = $1", owner.0)
        .fetch_optional(pool)
        .await?
        .ok_or(Error::NotFound)?;
    if !is_admin {
        return Err(Error::invalid("email", "admin tokens belong to provider admins only"));
    }
    let secret = SecretKey::from_entropy(KeyKind::AdminToken, rand::random::<[u8; 24]>());
    let hash = secret.hash();
    let id = Uuid::now_v7();
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "INSERT INTO admin_tokens (id, user_id, name, token_hash, prefix, last4, scope, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        id,
        owner.0,
        name,
        hash.as_bytes().as_slice(),
        secret.display_prefix(),
        secret.last4(),
        terms.scope as TokenScope,
        expires_at
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "admin_token.create",
            entity: "admin_token",
            entity_id: Some(id),
            before: None,
            after: Some(json!({
                "name": name,
                "owner": owner.0,
                "scope": terms.scope,
                "expires_at": expires_at.map(rfc3339),
            })),
        },
    )
    .await?;
    tx.commit().await?;
    Ok((id, secret))
}

/// The admin and token behind a bearer token, if the token is live, its end has not passed and
/// its owner is still an admin. Marks the token used.
pub async fn authenticate(pool: &PgPool, token: &str) -> Result<Authentication> {
    let hash = KeyHash::of(token);
    // The last use is written at most once a minute: written on every call, 50 clients on one
    // token queued on its row lock and each call committed (a WAL flush) to read a page.
    let found = sqlx::query!(
        r#"WITH found AS (
             SELECT t.id, t.user_id, t.name, t.scope, t.expires_at, t.prefix, t.last4, t.last_used_at,
                    t.expires_at <= now() AS expired
             FROM admin_tokens t JOIN users u ON u.id = t.user_id
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND u.is_admin
           ), touched AS (
             UPDATE admin_tokens t SET last_used_at = now() FROM found f
             WHERE t.id = f.id AND f.expired IS NOT TRUE
               AND (f.last_used_at IS NULL OR f.last_used_at < now() - interval '60 seconds')
           )
           SELECT user_id AS "user_id!", name AS "name!", scope AS "scope!: TokenScope",
                  expires_at, prefix AS "prefix!", last4 AS "last4!", expired FROM found"#,
        hash.as_bytes().as_slice()
    )
    .fetch_optional(pool)
    .await?;
    let Some(found) = found else { return Ok(Authentication::Unknown) };
    if let (Some(true), Some(at)) = (found.expired, found.expires_at) {
        return Ok(Authentication::Expired(at));
    }
    let Some(user) = find_user(pool, UserId(found.user_id)).await? else { return Ok(Authentication::Unknown) };
    Ok(Authentication::Valid(Box::new(Caller {
        user,
        name: found.name,
        scope: found.scope,
        expires_at: found.expires_at,
        prefix: found.prefix,
        last4: found.last4,
    })))
}

/// Every token, newest first.
pub async fn list(pool: &PgPool) -> Result<Vec<AdminTokenView>> {
    select(pool, None).await
}

/// One token, whatever its state.
pub async fn get(pool: &PgPool, id: Uuid) -> Result<AdminTokenView> {
    select(pool, Some(id)).await?.pop().ok_or(Error::NotFound)
}

async fn select(pool: &PgPool, id: Option<Uuid>) -> Result<Vec<AdminTokenView>> {
    let rows = sqlx::query!(
        r#"SELECT t.id, t.name, u.email::text AS "email!", t.prefix, t.last4, t.created_at, t.last_used_at, t.revoked_at,
                  t.scope AS "scope: TokenScope", t.expires_at, coalesce(t.expires_at <= now(), false) AS "expired!"
           FROM admin_tokens t JOIN users u ON u.id = t.user_id
           WHERE $1::uuid IS NULL OR t.id = $1
           ORDER BY t.created_at DESC"#,
        id
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| AdminTokenView {
            id: r.id,
            name: r.name,
            owner_email: r.email,
            prefix: r.prefix,
            last4: r.last4,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            state: match (r.revoked_at, r.expired) {
                (Some(_), _) => TokenState::Revoked,
                (None, true) => TokenState::Expired,
                (None, false) => TokenState::Active,
            },
            revoked_at: r.revoked_at,
            scope: r.scope,
            expires_at: r.expires_at,
        })
        .collect())
}

pub async fn revoke(pool: &PgPool, id: Uuid, actor: &Actor) -> Result<()> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query!("UPDATE admin_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound);
    }
    audit::record(
        &mut tx,
        actor,
        Entry { action: "admin_token.revoke", entity: "admin_token", entity_id: Some(id), before: None, after: None },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Revokes a token on behalf of the caller who presented `caller`. A token
/// cannot revoke itself (`Conflict`): an automation that lists and revokes
/// tokens would otherwise lock itself out; revoke it with another token or
/// in the admin UI.
pub async fn revoke_other(pool: &PgPool, id: Uuid, caller: &str, actor: &Actor) -> Result<()> {
    let caller = KeyHash::of(caller);
    let is_caller = sqlx::query_scalar!(
        r#"SELECT token_hash = $2 AS "is_caller!" FROM admin_tokens WHERE id = $1 AND revoked_at IS NULL"#,
        id,
        caller.as_bytes().as_slice()
    )
    .fetch_optional(pool)
    .await?
    .ok_or(Error::NotFound)?;
    if is_caller {
        return Err(Error::Conflict(
            "a token cannot revoke itself; revoke it with another token or in the admin UI".into(),
        ));
    }
    revoke(pool, id, actor).await
}

/// The admin with this email, for `tollgate admin token --email`.
pub async fn admin_by_email(pool: &PgPool, email: &str) -> Result<UserId> {
    let row = sqlx::query!("SELECT id, is_admin FROM users WHERE email = $1::citext", email.trim() as _)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| Error::invalid("email", format!("no user has the email {}", email.trim())))?;
    if !row.is_admin {
        return Err(Error::invalid("email", format!("{} is not a provider admin", email.trim())));
    }
    Ok(UserId(row.id))
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}
