//! API credentials of applications: user keys, or app keys beside an app_id.
//! A key is returned once, at creation; only its SHA-256, a display prefix
//! and its last four characters are stored.

use serde_json::json;
use sqlx::PgPool;
use time::{Duration, OffsetDateTime};
use tollgate_protocol::{KeyKind, SecretKey};
use uuid::Uuid;

use crate::accounts::AccountId;
use crate::apis::AuthMode;
use crate::applications::ApplicationId;
use crate::audit::{self, Actor, Entry};
use crate::stored::stored_enum;
use crate::sync::feed::{Entity, record_change};
use crate::{Error, Result};

/// At most this many app_keys are active on one application.
pub const MAX_APP_KEYS: i64 = 5;

/// How many working keys an application of an API with `mode` may hold:
/// one user key (rotate it for a new one), or up to `MAX_APP_KEYS` app keys.
pub fn key_limit(mode: AuthMode) -> i64 {
    match mode {
        AuthMode::UserKey => 1,
        AuthMode::AppIdAppKey => MAX_APP_KEYS,
    }
}

/// How long a rotated key keeps working unless the owner says otherwise.
pub const DEFAULT_ROTATION_OVERLAP: Duration = Duration::hours(24);
/// The longest overlap a rotation may grant.
pub const MAX_ROTATION_OVERLAP: Duration = Duration::days(30);

/// A rotation's overlap as submitted, in whole hours: 0 to 720 (30 days). Checked before it
/// becomes a `Duration`, whose constructor panics on overflow.
pub fn overlap_from_hours(hours: i64) -> Result<Duration> {
    if !(0..=MAX_ROTATION_OVERLAP.whole_hours()).contains(&hours) {
        return Err(Error::invalid("overlap_hours", "choose an overlap between 0 and 720 hours (30 days)"));
    }
    Ok(Duration::hours(hours))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct CredentialId(pub Uuid);

stored_enum! {
    /// Which secret a credential is: an application's one user key, or one
    /// of its app keys.
    pub enum CredentialKind as "credential_kind" {
        UserKey = "user_key",
        AppKey = "app_key",
    }
}

impl CredentialKind {
    /// The kind of key the API's consumers present.
    pub fn for_mode(mode: AuthMode) -> CredentialKind {
        match mode {
            AuthMode::UserKey => CredentialKind::UserKey,
            AuthMode::AppIdAppKey => CredentialKind::AppKey,
        }
    }

    /// The kind in the key format, which keys carry in their prefix.
    pub fn key_kind(self) -> KeyKind {
        match self {
            CredentialKind::UserKey => KeyKind::UserKey,
            CredentialKind::AppKey => KeyKind::AppKey,
        }
    }
}

/// A freshly issued key: the only time the secret exists outside the client.
#[derive(Debug)]
pub struct IssuedKey {
    pub id: CredentialId,
    pub secret: SecretKey,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct CredentialView {
    pub id: CredentialId,
    pub kind: CredentialKind,
    pub prefix: String,
    pub last4: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

impl CredentialView {
    /// `active`, `expiring` (rotated, still in its overlap), `expired` or `revoked`.
    pub fn status(&self, now: OffsetDateTime) -> &'static str {
        match (self.revoked_at, self.expires_at) {
            (Some(_), _) => "revoked",
            (None, Some(at)) if at <= now => "expired",
            (None, Some(_)) => "expiring",
            (None, None) => "active",
        }
    }
}

/// Locks the application row, so concurrent issues respect the key limits,
/// and answers how its API's consumers present keys.
async fn lock_app(tx: &mut sqlx::PgConnection, account: AccountId, app: ApplicationId) -> Result<AuthMode> {
    let row = sqlx::query!(
        r#"SELECT a.auth_mode AS "auth_mode: AuthMode", ap.state = 'rejected' AS "rejected!"
           FROM applications ap JOIN api_products a ON a.id = ap.api_id
           WHERE ap.id = $1 AND ap.account_id = $2 FOR UPDATE OF ap"#,
        app.0,
        account.0
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound)?;
    // Gateways never load a rejected application's keys: one issued would never work.
    if row.rejected {
        return Err(Error::Conflict("a rejected application cannot have keys".into()));
    }
    Ok(row.auth_mode)
}

/// Makes a key of `kind` for the application and stores its hash; the
/// secret itself exists only in the answer.
async fn insert_key(
    tx: &mut sqlx::PgConnection,
    app: ApplicationId,
    kind: CredentialKind,
) -> Result<(CredentialId, SecretKey)> {
    let secret = SecretKey::from_entropy(kind.key_kind(), rand::random::<[u8; 24]>());
    let id = Uuid::now_v7();
    let hash = secret.hash();
    sqlx::query!(
        "INSERT INTO credentials (id, application_id, kind, key_hash, prefix, last4) VALUES ($1, $2, $3, $4, $5, $6)",
        id,
        app.0,
        kind as CredentialKind,
        hash.as_bytes().as_slice(),
        secret.display_prefix(),
        secret.last4()
    )
    .execute(&mut *tx)
    .await?;
    record_change(tx, Entity::Credential, id, false, Some(hash.as_bytes())).await?;
    Ok((CredentialId(id), secret))
}

/// Issues a key of the kind the API's auth mode calls for. A user_key
/// application has one active key (rotate it instead); app_key applications
/// have up to five.
pub async fn issue(pool: &PgPool, account: AccountId, app: ApplicationId, actor: &Actor) -> Result<IssuedKey> {
    let mut tx = pool.begin().await?;
    let mode = lock_app(&mut tx, account, app).await?;
    let active = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM credentials WHERE application_id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"#,
        app.0
    )
    .fetch_one(&mut *tx)
    .await?;
    if active >= key_limit(mode) {
        return Err(Error::Conflict(match mode {
            AuthMode::UserKey => "this application already has a key; rotate it to get a new one".to_owned(),
            AuthMode::AppIdAppKey => {
                format!("an application can have at most {MAX_APP_KEYS} app keys; revoke one first")
            }
        }));
    }
    let (id, secret) = insert_key(&mut tx, app, CredentialKind::for_mode(mode)).await?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "credential.issue",
            entity: "credential",
            entity_id: Some(id.0),
            before: None,
            after: Some(json!({"application_id": app.0, "prefix": secret.display_prefix()})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(IssuedKey { id, secret })
}

/// Issues a replacement and lets the old key work for `overlap` more.
pub async fn rotate(
    pool: &PgPool,
    account: AccountId,
    app: ApplicationId,
    old: CredentialId,
    overlap: Duration,
    actor: &Actor,
) -> Result<IssuedKey> {
    if overlap.is_negative() || overlap > MAX_ROTATION_OVERLAP {
        return Err(Error::invalid("overlap", "choose an overlap between 0 hours and 30 days"));
    }
    let mut tx = pool.begin().await?;
    let mode = lock_app(&mut tx, account, app).await?;
    let current = sqlx::query!(
        "SELECT key_hash, expires_at FROM credentials WHERE id = $1 AND application_id = $2 AND revoked_at IS NULL FOR UPDATE",
        old.0,
        app.0
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound)?;
    let now = OffsetDateTime::now_utc();
    if current.expires_at.is_some() {
        return Err(Error::Conflict("this key was already rotated; rotate its replacement instead".into()));
    }
    // One key in its overlap per working key: rotating a replacement again while the key it
    // replaced still works would keep adding working keys past the application's limit.
    let predecessor_until = sqlx::query_scalar!(
        "SELECT expires_at FROM credentials
         WHERE application_id = $1 AND replaced_by = $2 AND revoked_at IS NULL AND expires_at > now()",
        app.0,
        old.0
    )
    .fetch_optional(&mut *tx)
    .await?
    .flatten();
    if let Some(until) = predecessor_until {
        let until = until.to_offset(time::UtcOffset::UTC);
        return Err(Error::Conflict(format!(
            "the key this one replaced still works until {} {:02}:{:02} UTC; revoke that key first, or rotate this one once it has expired",
            until.date(),
            until.hour(),
            until.minute()
        )));
    }
    let (id, secret) = insert_key(&mut tx, app, CredentialKind::for_mode(mode)).await?;
    let expires_at = now + overlap;
    sqlx::query!("UPDATE credentials SET expires_at = $2, replaced_by = $3 WHERE id = $1", old.0, expires_at, id.0)
        .execute(&mut *tx)
        .await?;
    record_change(&mut tx, Entity::Credential, old.0, false, Some(&current.key_hash)).await?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "credential.rotate",
            entity: "credential",
            entity_id: Some(old.0),
            before: Some(json!({"expires_at": null})),
            after: Some(
                json!({"application_id": app.0, "expires_at": expires_at.unix_timestamp(), "replaced_by": id.0}),
            ),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(IssuedKey { id, secret })
}

/// Revokes a key at once: agents are told in the same transaction.
pub async fn revoke(
    pool: &PgPool,
    account: AccountId,
    app: ApplicationId,
    credential: CredentialId,
    actor: &Actor,
) -> Result<()> {
    let mut tx = pool.begin().await?;
    lock_app(&mut tx, account, app).await?;
    let hash = sqlx::query_scalar!(
        "UPDATE credentials SET revoked_at = now() WHERE id = $1 AND application_id = $2 AND revoked_at IS NULL RETURNING key_hash",
        credential.0,
        app.0
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound)?;
    record_change(&mut tx, Entity::Credential, credential.0, true, Some(&hash)).await?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "credential.revoke",
            entity: "credential",
            entity_id: Some(credential.0),
            before: None,
            after: Some(json!({"application_id": app.0, "revoked": true})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn list(pool: &PgPool, account: AccountId, app: ApplicationId) -> Result<Vec<CredentialView>> {
    let rows = sqlx::query!(
        r#"SELECT c.id, c.kind AS "kind: CredentialKind", c.prefix, c.last4, c.created_at, c.expires_at, c.revoked_at, c.last_used_at
           FROM credentials c JOIN applications ap ON ap.id = c.application_id
           WHERE ap.id = $1 AND ap.account_id = $2
           ORDER BY c.created_at DESC"#,
        app.0,
        account.0
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| CredentialView {
            id: CredentialId(r.id),
            kind: r.kind,
            prefix: r.prefix,
            last4: r.last4,
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            last_used_at: r.last_used_at,
        })
        .collect())
}
