//! `POST /agent/v1/status`: an agent reports the revision it applied, or why it refused one.

use actix_web::{HttpRequest, HttpResponse, web};
use tollgate_core::db::PgPool;
use tollgate_core::gateways::record_status;
use tollgate_protocol::AgentStatus;

use super::auth;
use super::error::{AgentApiError, parse_body};

pub async fn report(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    body: web::Bytes,
) -> Result<HttpResponse, AgentApiError> {
    let gateway = auth::gateway(&req, &pool).await?;
    let status: AgentStatus = parse_body(&body)?;
    if let Some(rejected) = &status.rejected {
        tracing::warn!(agent = %gateway.name, revision = rejected.revision, reason = %rejected.reason, "agent refused a config update");
    }
    record_status(&pool, gateway.id, &status).await?;
    Ok(HttpResponse::NoContent().finish())
}
