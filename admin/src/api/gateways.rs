//! Gateway agents in the admin API: each agent's applied revision, lag and last contact.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use tollgate_core::db::PgPool;
use tollgate_core::gateways::{self, GatewayView};
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::admin;
use super::error::{ApiResult, ErrorBody};
use super::wire::rfc3339;

/// A gateway agent and what it last reported.
#[derive(Debug, Serialize, ToSchema)]
pub struct GatewayOut {
    pub id: Uuid,
    pub name: String,
    pub connected: bool,
    pub applied_revision: Option<i64>,
    /// Config revisions the agent is behind.
    pub lag: Option<i64>,
    pub agent_version: Option<String>,
    #[schema(format = DateTime)]
    pub last_seen_at: Option<String>,
    pub last_error: Option<String>,
}

impl From<GatewayView> for GatewayOut {
    fn from(g: GatewayView) -> Self {
        GatewayOut {
            id: g.id.0,
            name: g.name,
            connected: g.connected,
            applied_revision: g.applied_revision,
            lag: g.lag,
            agent_version: g.agent_version,
            last_seen_at: g.last_seen_at.map(rfc3339),
            last_error: g.last_error,
        }
    }
}

/// Every gateway agent: revision, lag, last seen, version, connected.
#[utoipa::path(get, operation_id = "list_gateways", path = "/admin/api/v1/gateways", tag = "gateways",
    responses((status = 200, body = Vec<GatewayOut>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(req: HttpRequest, pool: web::Data<PgPool>) -> ApiResult<HttpResponse> {
    admin(&req, &pool).await?;
    let agents = gateways::list(&pool).await?;
    Ok(HttpResponse::Ok().json(agents.into_iter().map(GatewayOut::from).collect::<Vec<_>>()))
}
