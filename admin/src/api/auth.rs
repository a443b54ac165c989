//! Who is calling the admin API: the admin behind the bearer token.

use actix_web::HttpRequest;
use tollgate_core::accounts::UserSummary;
use tollgate_core::admin_tokens;
use tollgate_core::audit::Actor;
use tollgate_core::db::PgPool;
use tollgate_web::bearer_token;

use super::error::{ApiError, ApiResult};

/// The admin behind a request's bearer token.
pub async fn admin(req: &HttpRequest, pool: &PgPool) -> ApiResult<(UserSummary, Actor)> {
    let token = bearer_token(req).ok_or(ApiError::Unauthenticated)?;
    let user = admin_tokens::authenticate(pool, token).await?.ok_or(ApiError::UnknownToken)?;
    let actor = Actor::from(&user);
    Ok((user, actor))
}
