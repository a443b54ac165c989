use actix_web::HttpRequest;
use actix_web::http::header;
use tollgate_core::db::PgPool;
use tollgate_core::gateways::{AuthenticatedGateway, authenticate};

use super::AgentApiError;

/// The agent behind the request's bearer token.
pub async fn gateway(req: &HttpRequest, pool: &PgPool) -> Result<AuthenticatedGateway, AgentApiError> {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 256)
        .ok_or(AgentApiError::MissingToken)?;
    authenticate(pool, token).await?.ok_or(AgentApiError::InvalidToken)
}
