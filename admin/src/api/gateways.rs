//! Gateway agents in the admin API: each agent's applied revision, lag and
//! last contact; registering one (its token is in the 201 answer only),
//! renaming and revoking it.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use tollgate_core::db::PgPool;
use tollgate_core::gateways::{self, GatewayId, GatewayView, InstanceView};
use tollgate_web::parse_id;
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::admin;
use super::error::{ApiResult, ErrorBody};
use super::wire::{created, parse_json_object, rfc3339};

/// A gateway agent and what it last reported.
#[derive(Debug, Serialize, ToSchema)]
pub struct GatewayOut {
    pub id: Uuid,
    pub name: String,
    /// The start of the agent's token, to tell tokens apart.
    pub token_prefix: String,
    pub connected: bool,
    /// Connected, but no status report for 30 s or more (agents report at least every 10 s):
    /// frozen, overloaded or cut off while its stream looks open.
    pub silent: bool,
    pub applied_revision: Option<i64>,
    /// Config revisions the agent is behind.
    pub lag: Option<i64>,
    pub agent_version: Option<String>,
    #[schema(format = DateTime)]
    pub last_seen_at: Option<String>,
    pub last_error: Option<String>,
    /// The processes that used the token in the last day (replicas share one), connected
    /// ones first; the figures above are the worst of the connected ones.
    pub instances: Vec<InstanceOut>,
}

/// One agent process behind a token.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceOut {
    /// The id the agent keeps in its state directory; the nil UUID for an agent that sent none.
    pub agent_id: Uuid,
    /// Its host name as it sent it, or empty.
    pub host: String,
    pub connected: bool,
    pub silent: bool,
    pub applied_revision: Option<i64>,
    pub lag: Option<i64>,
    pub agent_version: Option<String>,
    pub last_error: Option<String>,
    #[schema(format = DateTime)]
    pub first_seen_at: String,
    #[schema(format = DateTime)]
    pub last_seen_at: String,
}

impl From<InstanceView> for InstanceOut {
    fn from(i: InstanceView) -> Self {
        InstanceOut {
            agent_id: i.agent_id,
            host: i.host,
            connected: i.connected,
            silent: i.silent,
            applied_revision: i.applied_revision,
            lag: i.lag,
            agent_version: i.agent_version,
            last_error: i.last_error,
            first_seen_at: rfc3339(i.first_seen_at),
            last_seen_at: rfc3339(i.last_seen_at),
        }
    }
}

impl From<GatewayView> for GatewayOut {
    fn from(g: GatewayView) -> Self {
        GatewayOut {
            id: g.id.0,
            name: g.name,
            token_prefix: g.token_prefix,
            connected: g.connected,
            silent: g.silent,
            applied_revision: g.applied_revision,
            lag: g.lag,
            agent_version: g.agent_version,
            last_seen_at: g.last_seen_at.map(rfc3339),
            last_error: g.last_error,
            instances: g.instances.into_iter().map(InstanceOut::from).collect(),
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

/// A gateway agent's name: 1 to 63 letters, digits, `.`, `_` or `-`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewayIn {
    #[schema(min_length = 1, max_length = 63, pattern = "^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    pub name: String,
}

/// A registered agent with its token, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegisteredGatewayOut {
    #[serde(flatten)]
    pub gateway: GatewayOut,
    /// The agent's bearer token (`tg_agt_…`); only its hash is stored.
    pub token: String,
}

/// Register a gateway agent; the answer holds its token, which is never shown again.
#[utoipa::path(post, operation_id = "register_gateway", path = "/admin/api/v1/gateways", tag = "gateways", request_body = GatewayIn,
    responses((status = 201, body = RegisteredGatewayOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "An agent with this name exists (revoked ones included)"),
              (status = 422, body = ErrorBody, description = "A bad name; `field` is `name`")),
    security(("bearer" = [])))]
pub async fn register(req: HttpRequest, pool: web::Data<PgPool>, body: web::Bytes) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let input: GatewayIn = parse_json_object(&body)?;
    let (id, token) = gateways::create(&pool, input.name.trim(), &actor).await?;
    let gateway = GatewayOut::from(gateways::get(&pool, id).await?);
    Ok(created(format!("/admin/api/v1/gateways/{}", id.0))
        .json(RegisteredGatewayOut { gateway, token: token.as_str().to_owned() }))
}

/// One gateway agent that is not revoked.
#[utoipa::path(get, operation_id = "get_gateway", path = "/admin/api/v1/gateways/{id}", tag = "gateways", params(("id" = Uuid, Path)),
    responses((status = 200, body = GatewayOut), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn show(req: HttpRequest, pool: web::Data<PgPool>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    admin(&req, &pool).await?;
    let id = GatewayId(parse_id(&path)?);
    Ok(HttpResponse::Ok().json(GatewayOut::from(gateways::get(&pool, id).await?)))
}

/// Rename a gateway agent; its token keeps working.
#[utoipa::path(patch, operation_id = "rename_gateway", path = "/admin/api/v1/gateways/{id}", tag = "gateways", params(("id" = Uuid, Path)), request_body = GatewayIn,
    responses((status = 200, body = GatewayOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "Another agent has this name"),
              (status = 422, body = ErrorBody, description = "A bad name; `field` is `name`")),
    security(("bearer" = [])))]
pub async fn rename(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let id = GatewayId(parse_id(&path)?);
    let input: GatewayIn = parse_json_object(&body)?;
    gateways::rename(&pool, id, input.name.trim(), &actor).await?;
    Ok(HttpResponse::Ok().json(GatewayOut::from(gateways::get(&pool, id).await?)))
}

/// Revoke a gateway agent: its token is refused from its next request on.
#[utoipa::path(delete, operation_id = "revoke_gateway", path = "/admin/api/v1/gateways/{id}", tag = "gateways", params(("id" = Uuid, Path)),
    responses((status = 204, description = "Revoked"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke(req: HttpRequest, pool: web::Data<PgPool>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let id = GatewayId(parse_id(&path)?);
    gateways::revoke(&pool, id, &actor).await?;
    Ok(HttpResponse::NoContent().finish())
}
