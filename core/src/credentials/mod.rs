//! API credentials of applications: user keys, or app keys beside an app_id.
//! A key is returned once, at creation; only its SHA-256, a display prefix
//! and its last four characters are stored.

use serde_json::json;
use sqlx::PgPool;
use time::{Duration, OffsetDateTime};
use tollgate_protocol::{KeyKind, SecretKey};
use uuid::Uuid;

use crate::accounts::AccountId;
use crate::applications::ApplicationId;
use crate::audit::{self, Actor, Entry};
use crate::sync::feed::{Entity, record_change};
use crate::{Error, Result};

/// At most this many app_keys are active on one application.
pub const MAX_APP_KEYS: i64 = 5;
/// How long a rotated key keeps working unless the owner says otherwise.
pub const DEFAULT_ROTATION_OVERLAP: Duration = Duration::hours(24);
/// The longest overlap a rotation may grant.
pub const MAX_ROTATION_OVERLAP: Duration = Duration::days(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct CredentialId(pub Uuid);

/// A freshly issued key: the only time the secret exists outside the client.
#[derive(Debug)]
pub struct IssuedKey {
    pub id: CredentialId,
    pub secret: SecretKey,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct CredentialView {
    pub id: CredentialId,
    pub kind: String,
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

fn new_secret(kind: KeyKind) -> SecretKey {
    SecretKey::from_entropy(kind, rand::random::<[u8; 24]>())
}

struct OwnedApp {
    auth_mode: String,
}

/// Locks the application row, so concurrent issues respect the key limits.
async fn lock_app(tx: &mut sqlx::PgConnection, account: AccountId, app: ApplicationId) -> Result<OwnedApp> {
    let row = sqlx::query!(
        r#"SELECT a.auth_mode::text AS "auth_mode!" FROM applications ap JOIN api_products a ON a.id = ap.api_id
           WHERE ap.id = $1 AND ap.account_id = $2 FOR UPDATE OF ap"#,
        app.0,
        account.0
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound)?;
    Ok(OwnedApp { auth_mode: row.auth_mode })
}

async fn insert_key(tx: &mut sqlx::PgConnection, app: ApplicationId, secret: &SecretKey) -> Result<CredentialId> {
    let id = Uuid::now_v7();
    let kind = match secret.kind() {
        KeyKind::AppKey => "app_key",
        _ => "user_key",
    };
    let hash = secret.hash();
    sqlx::query!(
        "INSERT INTO credentials (id, application_id, kind, key_hash, prefix, last4) VALUES ($1, $2, $3::text::credential_kind, $4, $5, $6)",
        id,
        app.0,
        kind,
        hash.as_bytes().as_slice(),
        secret.display_prefix(),
        secret.last4()
    )
    .execute(&mut *tx)
    .await?;
    record_change(tx, Entity::Credential, id, false, Some(hash.as_bytes())).await?;
    Ok(CredentialId(id))
}

/// Issues a key of the kind the API's auth mode calls for. A user_key
/// application has one active key (rotate it instead); app_key applications
/// have up to five.
pub async fn issue(pool: &PgPool, account: AccountId, app: ApplicationId, actor: &Actor) -> Result<IssuedKey> {
    let mut tx = pool.begin().await?;
    let owned = lock_app(&mut tx, account, app).await?;
    let active = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM credentials WHERE application_id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"#,
        app.0
    )
    .fetch_one(&mut *tx)
    .await?;
    let kind = if owned.auth_mode == "app_id_app_key" { KeyKind::AppKey } else { KeyKind::UserKey };
    match kind {
        KeyKind::UserKey if active > 0 => {
            return Err(Error::Conflict("this application already has a key; rotate it to get a new one".into()));
        }
        KeyKind::AppKey if active >= MAX_APP_KEYS => {
            return Err(Error::Conflict(format!(
                "an application can have at most {MAX_APP_KEYS} app keys; revoke one first"
            )));
        }
        _ => {}
    }
    let secret = new_secret(kind);
    let id = insert_key(&mut tx, app, &secret).await?;
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
    let owned = lock_app(&mut tx, account, app).await?;
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
    let kind = if owned.auth_mode == "app_id_app_key" { KeyKind::AppKey } else { KeyKind::UserKey };
    let secret = new_secret(kind);
    let id = insert_key(&mut tx, app, &secret).await?;
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
            after: Some(json!({"expires_at": expires_at.unix_timestamp(), "replaced_by": id.0})),
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
            after: Some(json!({"revoked": true})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn list(pool: &PgPool, account: AccountId, app: ApplicationId) -> Result<Vec<CredentialView>> {
    let rows = sqlx::query!(
        r#"SELECT c.id, c.kind::text AS "kind!", c.prefix, c.last4, c.created_at, c.expires_at, c.revoked_at, c.last_used_at
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
