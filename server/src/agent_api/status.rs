//! `POST /agent/v1/status`: an agent reports the revision it applied, or why it refused one.
//! Agents repeat their report every 10 s as a heartbeat; only changes are logged at `info`.

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
    // Agents report every 10 s; only a report that changes something is logged.
    let instance = auth::instance(&req);
    let change = record_status(&pool, gateway.id, &instance, &status).await?;
    match &status.rejected {
        Some(rejected) if change.error => {
            tracing::warn!(agent = %gateway.name, %instance, revision = rejected.revision, reason = ?rejected.reason, "agent refused a config update")
        }
        _ if change.any() => tracing::info!(
            agent = %gateway.name,
            %instance,
            applied_revision = status.applied_revision,
            agent_version = %status.agent_version,
            "agent status changed"
        ),
        _ => tracing::debug!(agent = %gateway.name, "agent heartbeat"),
    }
    Ok(HttpResponse::NoContent().finish())
}
