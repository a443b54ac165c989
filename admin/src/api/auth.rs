//! Who is calling the admin API: the admin behind the bearer token, and what the token may do.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, web};
use tollgate_core::accounts::UserSummary;
use tollgate_core::admin_tokens::{self, Authentication, Caller, TokenScope};
use tollgate_core::audit::Actor;
use tollgate_core::db::PgPool;
use tollgate_web::bearer_token;

use super::body_limit;
use super::error::{ApiError, ApiResult};

/// The admin behind a request's bearer token: found by [`authenticate_first`] for every
/// request of the API, looked up here only for a request that did not pass through it.
pub async fn admin(req: &HttpRequest, pool: &PgPool) -> ApiResult<(UserSummary, Actor)> {
    let caller = caller(req, pool).await?;
    let actor = caller.actor();
    Ok((caller.user, actor))
}

/// The token a request came with, and its admin.
pub async fn caller(req: &HttpRequest, pool: &PgPool) -> ApiResult<Caller> {
    if let Some(Authenticated(caller)) = req.extensions().get::<Authenticated>() {
        return Ok(caller.clone());
    }
    lookup(req, pool).await
}

async fn lookup(req: &HttpRequest, pool: &PgPool) -> ApiResult<Caller> {
    let token = bearer_token(req).ok_or(ApiError::Unauthenticated)?;
    match admin_tokens::authenticate(pool, token).await? {
        Authentication::Valid(caller) => Ok(*caller),
        Authentication::Expired(at) => Err(ApiError::ExpiredToken(at)),
        Authentication::Unknown => Err(ApiError::UnknownToken),
    }
}

/// Whether a token of `scope` may make a request of `method`: a read token reads only.
fn allows(scope: TokenScope, method: &Method) -> bool {
    scope == TokenScope::Write || matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The token a request named, kept for its handler.
#[derive(Clone)]
struct Authenticated(Caller);

/// Checks the bearer token from the request's head, before any extractor reads the body: an
/// anonymous client cannot make the server take in a 16 MiB body to learn it gets a 401.
pub async fn authenticate_first(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(pool) = req.app_data::<web::Data<PgPool>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let caller = match lookup(req.request(), &pool).await {
        Ok(caller) if !allows(caller.scope, req.method()) => Err(ApiError::InsufficientScope),
        other => other,
    };
    let caller = match caller {
        Ok(caller) => caller,
        Err(error) => return Ok(req.into_response(error.into_response()).map_into_boxed_body()),
    };
    let limit = body_limit(req.path());
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Ok(req.into_response(ApiError::TooLarge(limit).into_response()).map_into_boxed_body());
    }
    req.extensions_mut().insert(Authenticated(caller));
    let res = next.call(req).await?;
    // A chunked body that outgrows the limit is cut off by actix, which answers in plain text.
    if res.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json(res.headers()) {
        let (req, _) = res.into_parts();
        return Ok(ServiceResponse::new(req, ApiError::TooLarge(limit).into_response()));
    }
    Ok(res.map_into_boxed_body())
}

fn is_json(headers: &actix_web::http::header::HeaderMap) -> bool {
    headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"))
}
