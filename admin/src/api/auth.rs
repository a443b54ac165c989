//! Who is calling the admin API: the admin behind the bearer token.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, web};
use tollgate_core::accounts::UserSummary;
use tollgate_core::admin_tokens;
use tollgate_core::audit::Actor;
use tollgate_core::db::PgPool;
use tollgate_web::bearer_token;

use super::MAX_BODY_BYTES;
use super::error::{ApiError, ApiResult};

/// The admin behind a request's bearer token: found by [`authenticate_first`] for every
/// request of the API, looked up here only for a request that did not pass through it.
pub async fn admin(req: &HttpRequest, pool: &PgPool) -> ApiResult<(UserSummary, Actor)> {
    if let Some(Authenticated(user)) = req.extensions().get::<Authenticated>() {
        return Ok((user.clone(), Actor::from(user)));
    }
    let user = lookup(req, pool).await?;
    let actor = Actor::from(&user);
    Ok((user, actor))
}

async fn lookup(req: &HttpRequest, pool: &PgPool) -> ApiResult<UserSummary> {
    let token = bearer_token(req).ok_or(ApiError::Unauthenticated)?;
    admin_tokens::authenticate(pool, token).await?.ok_or(ApiError::UnknownToken)
}

/// The admin a request's token named, kept for its handler.
#[derive(Clone)]
struct Authenticated(UserSummary);

/// Checks the bearer token from the request's head, before any extractor reads the body: an
/// anonymous client cannot make the server take in a 16 MiB body to learn it gets a 401.
pub async fn authenticate_first(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(pool) = req.app_data::<web::Data<PgPool>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let user = match lookup(req.request(), &pool).await {
        Ok(user) => user,
        Err(error) => return Ok(req.into_response(error.into_response()).map_into_boxed_body()),
    };
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Ok(req.into_response(ApiError::TooLarge(MAX_BODY_BYTES).into_response()).map_into_boxed_body());
    }
    req.extensions_mut().insert(Authenticated(user));
    let res = next.call(req).await?;
    // A chunked body that outgrows the limit is cut off by actix, which answers in plain text.
    if res.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json(res.headers()) {
        let (req, _) = res.into_parts();
        return Ok(ServiceResponse::new(req, ApiError::TooLarge(MAX_BODY_BYTES).into_response()));
    }
    Ok(res.map_into_boxed_body())
}

fn is_json(headers: &actix_web::http::header::HeaderMap) -> bool {
    headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"))
}
