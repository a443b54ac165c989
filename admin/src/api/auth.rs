use actix_web::HttpRequest;
use actix_web::http::header;
use tollgate_core::accounts::UserSummary;
use tollgate_core::admin_tokens;
use tollgate_core::audit::Actor;
use tollgate_core::db::PgPool;

use super::error::{ApiError, ApiResult};

/// The admin behind a request's bearer token.
pub async fn admin(req: &HttpRequest, pool: &PgPool) -> ApiResult<(UserSummary, Actor)> {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 256)
        .ok_or(ApiError::Unauthenticated)?;
    let user = admin_tokens::authenticate(pool, token).await?.ok_or(ApiError::Unauthenticated)?;
    let actor = Actor::user(user.id, &user.email);
    Ok((user, actor))
}
