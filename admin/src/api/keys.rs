//! Keys of any account's application in the admin API: list, issue, rotate
//! and revoke on the account's behalf, by the same rules as the portal (one
//! user key, up to five app keys; a rotated key works for its overlap).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tollgate_core::applications::{self, ApplicationId};
use tollgate_core::credentials::{
    self, CredentialId, CredentialKind, CredentialView, DEFAULT_ROTATION_OVERLAP, IssuedKey,
};
use tollgate_core::db::PgPool;
use tollgate_web::parse_id;
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::admin;
use super::error::{ApiResult, ErrorBody};
use super::schemas;
use super::wire::{parse_json_object, rfc3339};

/// A key as listed: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyOut {
    pub id: Uuid,
    #[schema(schema_with = schemas::credential_kind)]
    pub kind: CredentialKind,
    /// The start and the last 4 characters of the secret, to tell keys apart.
    pub prefix: String,
    pub last4: String,
    /// `active`, `expiring` (rotated, still in its overlap), `expired` or `revoked`.
    pub status: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    #[schema(format = DateTime)]
    pub revoked_at: Option<String>,
    #[schema(format = DateTime)]
    pub last_used_at: Option<String>,
}

impl KeyOut {
    fn new(k: CredentialView, now: OffsetDateTime) -> Self {
        KeyOut {
            id: k.id.0,
            kind: k.kind,
            status: k.status(now).to_owned(),
            prefix: k.prefix,
            last4: k.last4,
            created_at: rfc3339(k.created_at),
            expires_at: k.expires_at.map(rfc3339),
            revoked_at: k.revoked_at.map(rfc3339),
            last_used_at: k.last_used_at.map(rfc3339),
        }
    }
}

/// A key just issued, with its secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedKeyOut {
    #[serde(flatten)]
    pub key: KeyOut,
    /// The secret the application presents; only its hash is stored.
    pub secret: String,
    /// The public half of app_id + app_key credentials, for such APIs.
    pub app_id: Option<String>,
}

/// The application's account, which the key rules are checked against.
async fn owner(pool: &PgPool, app: ApplicationId) -> ApiResult<tollgate_core::accounts::AccountId> {
    Ok(applications::get_any(pool, app).await?.account_id)
}

/// The 201 answer for a key just issued: its listing and its secret.
async fn issued(pool: &PgPool, app: ApplicationId, issued: IssuedKey) -> ApiResult<HttpResponse> {
    let account = owner(pool, app).await?;
    let view = credentials::list(pool, account, app)
        .await?
        .into_iter()
        .find(|k| k.id == issued.id)
        .ok_or(tollgate_core::Error::NotFound)?;
    let app_id = applications::get(pool, account, app).await?.app_id;
    let key = KeyOut::new(view, OffsetDateTime::now_utc());
    Ok(HttpResponse::Created().json(IssuedKeyOut { key, secret: issued.secret.as_str().to_owned(), app_id }))
}

/// Every key of an application, revoked and expired ones included.
#[utoipa::path(get, operation_id = "list_application_keys", path = "/admin/api/v1/applications/{id}/keys", tag = "applications", params(("id" = Uuid, Path)),
    responses((status = 200, body = Vec<KeyOut>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(req: HttpRequest, pool: web::Data<PgPool>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    admin(&req, &pool).await?;
    let app = ApplicationId(parse_id(&path)?);
    let account = owner(&pool, app).await?;
    let now = OffsetDateTime::now_utc();
    let keys = credentials::list(&pool, account, app).await?;
    Ok(HttpResponse::Ok().json(keys.into_iter().map(|k| KeyOut::new(k, now)).collect::<Vec<_>>()))
}

/// Issue a key for an application, on its account's behalf; the answer holds the secret, never shown again.
#[utoipa::path(post, operation_id = "issue_application_key", path = "/admin/api/v1/applications/{id}/keys", tag = "applications", params(("id" = Uuid, Path)),
    responses((status = 201, body = IssuedKeyOut), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "The application has as many keys as its API allows; rotate or revoke one")),
    security(("bearer" = [])))]
pub async fn issue(req: HttpRequest, pool: web::Data<PgPool>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let app = ApplicationId(parse_id(&path)?);
    let account = owner(&pool, app).await?;
    let key = credentials::issue(&pool, account, app, &actor).await?;
    issued(&pool, app, key).await
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotationIn {
    /// Hours the old key keeps working (default 24, at most 720).
    #[schema(minimum = 0, maximum = 720)]
    pub overlap_hours: Option<i64>,
}

/// Rotate a key: a replacement is issued and the old key works for the overlap, then expires.
#[utoipa::path(post, operation_id = "rotate_application_key", path = "/admin/api/v1/applications/{id}/keys/{key}/rotation", tag = "applications",
    params(("id" = Uuid, Path), ("key" = Uuid, Path)), request_body = RotationIn,
    responses((status = 201, body = IssuedKeyOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody, description = "No such application, or no such live key of it"),
              (status = 409, body = ErrorBody, description = "The key was rotated already; rotate its replacement"),
              (status = 422, body = ErrorBody, description = "An overlap out of range; `field` is `overlap`")),
    security(("bearer" = [])))]
pub async fn rotate(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let app = ApplicationId(parse_id(&path.0)?);
    let key = CredentialId(parse_id(&path.1)?);
    let input: RotationIn = if body.is_empty() { RotationIn::default() } else { parse_json_object(&body)? };
    let overlap = match input.overlap_hours {
        Some(hours) => credentials::overlap_from_hours(hours)?,
        None => DEFAULT_ROTATION_OVERLAP,
    };
    let account = owner(&pool, app).await?;
    let new = credentials::rotate(&pool, account, app, key, overlap, &actor).await?;
    issued(&pool, app, new).await
}

/// Revoke a key at once; agents refuse it from the next configuration update.
#[utoipa::path(delete, operation_id = "revoke_application_key", path = "/admin/api/v1/applications/{id}/keys/{key}", tag = "applications",
    params(("id" = Uuid, Path), ("key" = Uuid, Path)),
    responses((status = 204, description = "Revoked"), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody, description = "No such application, or no such live key of it")),
    security(("bearer" = [])))]
pub async fn revoke(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let app = ApplicationId(parse_id(&path.0)?);
    let key = CredentialId(parse_id(&path.1)?);
    let account = owner(&pool, app).await?;
    credentials::revoke(&pool, account, app, key, &actor).await?;
    Ok(HttpResponse::NoContent().finish())
}
