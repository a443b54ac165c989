//! Which agent is calling: the gateway behind the bearer token.

use actix_web::HttpRequest;
use tollgate_core::db::PgPool;
use tollgate_core::gateways::{AuthenticatedGateway, authenticate};
use tollgate_web::bearer_token;

use super::error::AgentApiError;

/// The agent behind the request's bearer token.
pub async fn gateway(req: &HttpRequest, pool: &PgPool) -> Result<AuthenticatedGateway, AgentApiError> {
    let token = bearer_token(req).ok_or(AgentApiError::MissingToken)?;
    authenticate(pool, token).await?.ok_or(AgentApiError::InvalidToken)
}
