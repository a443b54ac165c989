//! Admin API tokens in the admin API: list, create (the secret is in the
//! 201 answer only) and revoke. A token cannot revoke itself (409), so an
//! automation cannot lock itself out; another token or the admin UI can. A
//! token made here has at most the scope and the end of the token making it.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use tollgate_core::admin_tokens::{self, AdminTokenView, NewToken, TokenScope, TokenState};
use tollgate_core::db::PgPool;
use tollgate_web::{bearer_token, parse_id};
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::{admin, caller};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::schemas;
use super::wire::{check_len, created, parse_json_object, rfc3339};

/// An admin token as listed: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminTokenOut {
    pub id: Uuid,
    pub name: String,
    /// The admin the token acts as.
    pub owner_email: String,
    /// The start and the last 4 characters of the secret, to tell tokens apart.
    pub prefix: String,
    pub last4: String,
    /// `read` answers GET and HEAD only; `write` does everything its admin can.
    #[schema(schema_with = schemas::admin_token_scope)]
    pub scope: TokenScope,
    /// `active`, `expired` (its `expires_at` has passed) or `revoked`.
    #[schema(schema_with = schemas::admin_token_state)]
    pub state: TokenState,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub last_used_at: Option<String>,
    /// When the token stops working; `null`: when it is revoked.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    #[schema(format = DateTime)]
    pub revoked_at: Option<String>,
}

impl From<AdminTokenView> for AdminTokenOut {
    fn from(t: AdminTokenView) -> Self {
        AdminTokenOut {
            id: t.id,
            name: t.name,
            owner_email: t.owner_email,
            prefix: t.prefix,
            last4: t.last4,
            scope: t.scope,
            state: t.state,
            created_at: rfc3339(t.created_at),
            last_used_at: t.last_used_at.map(rfc3339),
            expires_at: t.expires_at.map(rfc3339),
            revoked_at: t.revoked_at.map(rfc3339),
        }
    }
}

/// Every admin token, newest first, revoked ones included.
#[utoipa::path(get, operation_id = "list_admin_tokens", path = "/admin/api/v1/admin-tokens", tag = "admin tokens",
    responses((status = 200, body = Vec<AdminTokenOut>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(req: HttpRequest, pool: web::Data<PgPool>) -> ApiResult<HttpResponse> {
    admin(&req, &pool).await?;
    let tokens = admin_tokens::list(&pool).await?;
    Ok(HttpResponse::Ok().json(tokens.into_iter().map(AdminTokenOut::from).collect::<Vec<_>>()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminTokenIn {
    /// What the token is for, e.g. `ci`.
    #[schema(min_length = 1, max_length = 100, pattern = "^[^\\u0000]*\\S[^\\u0000]*$")]
    pub name: String,
    /// `write` when left out. A token made with a `read` token cannot be `write`.
    #[schema(schema_with = schemas::admin_token_scope)]
    pub scope: Option<TokenScope>,
    /// When it stops working, in the future. Left out: never, unless the token making the call
    /// ends, in which case the new one ends with it; it may not end later.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
}

/// A new token with its secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedAdminTokenOut {
    #[serde(flatten)]
    pub admin_token: AdminTokenOut,
    /// The bearer secret (`tg_adm_…`); only its hash is stored.
    pub token: String,
}

/// Create a token that acts as the calling admin; the answer holds the secret, never shown again.
#[utoipa::path(post, operation_id = "create_admin_token", path = "/admin/api/v1/admin-tokens", tag = "admin tokens", request_body = AdminTokenIn,
    responses((status = 201, body = CreatedAdminTokenOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody, description = "The token making the call has scope `read`"),
              (status = 422, body = ErrorBody, description = "A blank or too long name (`field` is `name`), an end in the past or past the calling token's (`expires_at`), or a scope wider than the calling token's (`scope`)")),
    security(("bearer" = [])))]
pub async fn create(req: HttpRequest, pool: web::Data<PgPool>, body: web::Bytes) -> ApiResult<HttpResponse> {
    let caller = caller(&req, &pool).await?;
    let input: AdminTokenIn = parse_json_object(&body)?;
    // The document bounds the name as sent; the core bounds it once trimmed.
    check_len("name", Some(&input.name), 100)?;
    let expires_at = match &input.expires_at {
        Some(raw) => Some(super::wire::parse_rfc3339("expires_at", raw)?),
        None => None,
    };
    let terms = NewToken { name: &input.name, scope: input.scope.unwrap_or(TokenScope::Write), expires_at };
    let (id, secret) = admin_tokens::create(&pool, caller.user.id, terms, Some(&caller), &caller.actor()).await?;
    let view = admin_tokens::get(&pool, id).await?;
    Ok(created(format!("/admin/api/v1/admin-tokens/{id}"))
        .json(CreatedAdminTokenOut { admin_token: AdminTokenOut::from(view), token: secret.as_str().to_owned() }))
}

/// One token, revoked or expired ones included.
#[utoipa::path(get, operation_id = "get_admin_token", path = "/admin/api/v1/admin-tokens/{id}", tag = "admin tokens", params(("id" = Uuid, Path)),
    responses((status = 200, body = AdminTokenOut), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn show(req: HttpRequest, pool: web::Data<PgPool>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    admin(&req, &pool).await?;
    let id: Uuid = parse_id(&path)?;
    let token = admin_tokens::get(&pool, id).await?;
    Ok(HttpResponse::Ok().json(AdminTokenOut::from(token)))
}

/// Revoke a token at once. The token making the call cannot revoke itself.
#[utoipa::path(delete, operation_id = "revoke_admin_token", path = "/admin/api/v1/admin-tokens/{id}", tag = "admin tokens", params(("id" = Uuid, Path)),
    responses((status = 204, description = "Revoked"), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody, description = "No such live token"),
              (status = 409, body = ErrorBody, description = "This is the token making the call")),
    security(("bearer" = [])))]
pub async fn revoke(req: HttpRequest, pool: web::Data<PgPool>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let id = parse_id(&path)?;
    let caller = bearer_token(&req).ok_or(ApiError::Unauthenticated)?;
    admin_tokens::revoke_other(&pool, id, caller, &actor).await?;
    Ok(HttpResponse::NoContent().finish())
}
