//! Which agent is calling: the gateway behind the bearer token.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, ResponseError, web};
use tollgate_core::db::PgPool;
use tollgate_core::gateways::{AgentInstance, AuthenticatedGateway, authenticate};
use tollgate_protocol::{AGENT_HOST_HEADER, AGENT_ID_HEADER};
use tollgate_web::bearer_token;

use super::error::AgentApiError;

/// The agent behind the request's bearer token: found by [`authenticate_first`] for every
/// request of the API, looked up here only for a request that did not pass through it.
pub async fn gateway(req: &HttpRequest, pool: &PgPool) -> Result<AuthenticatedGateway, AgentApiError> {
    if let Some(Authenticated(gateway)) = req.extensions().get::<Authenticated>() {
        return Ok(gateway.clone());
    }
    lookup(req, pool).await
}

/// Which of the processes sharing the token is calling, as its headers say.
pub fn instance(req: &HttpRequest) -> AgentInstance {
    let header = |name: &str| req.headers().get(name).and_then(|value| value.to_str().ok());
    AgentInstance::from_headers(header(AGENT_ID_HEADER), header(AGENT_HOST_HEADER))
}

async fn lookup(req: &HttpRequest, pool: &PgPool) -> Result<AuthenticatedGateway, AgentApiError> {
    let token = bearer_token(req).ok_or(AgentApiError::MissingToken)?;
    authenticate(pool, token).await?.ok_or(AgentApiError::InvalidToken)
}

/// The gateway a request's token named, kept for its handler.
#[derive(Clone)]
struct Authenticated(AuthenticatedGateway);

/// Checks the bearer token from the request's head, before any extractor reads the body: an
/// anonymous client cannot make the server take in a 16 MiB usage batch to learn it gets a 401.
pub async fn authenticate_first(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(pool) = req.app_data::<web::Data<PgPool>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    match lookup(req.request(), &pool).await {
        Ok(gateway) => {
            req.extensions_mut().insert(Authenticated(gateway));
            Ok(next.call(req).await?.map_into_boxed_body())
        }
        Err(error) => Ok(req.into_response(error.error_response()).map_into_boxed_body()),
    }
}
