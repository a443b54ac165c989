//! Metrics, methods and mapping rules of an API in the admin API.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use tollgate_core::apis::rules::{self, MetricView, NewRule, RuleView};
use tollgate_core::apis::{ApiId, detail};
use tollgate_core::db::PgPool;
use tollgate_web::parse_id;
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::admin;
use super::error::{ApiResult, ErrorBody};
use super::wire::parse_json;

#[derive(Debug, Serialize, ToSchema)]
pub struct MetricOut {
    pub id: Uuid,
    pub system_name: String,
    pub friendly_name: String,
    /// The parent metric's system name; methods have one.
    pub parent: Option<String>,
}

impl From<MetricView> for MetricOut {
    fn from(m: MetricView) -> Self {
        MetricOut { id: m.id, system_name: m.system_name, friendly_name: m.friendly_name, parent: m.parent }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RuleOut {
    pub id: Uuid,
    pub http_method: String,
    /// Relative to the API's base path; `{name}` matches one segment, a trailing `$` anchors.
    pub pattern: String,
    pub metric: String,
    pub delta: i32,
    pub position: i32,
    pub last: bool,
}

impl From<RuleView> for RuleOut {
    fn from(r: RuleView) -> Self {
        RuleOut {
            id: r.id,
            http_method: r.http_method,
            pattern: r.pattern,
            metric: r.metric,
            delta: r.delta,
            position: r.position,
            last: r.last,
        }
    }
}

/// The metrics and methods of an API.
#[utoipa::path(get, operation_id = "list_metrics", path = "/admin/api/v1/apis/{id}/metrics", tag = "apis", params(("id" = Uuid, Path)),
    responses((status = 200, body = Vec<MetricOut>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_metrics(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    admin(&req, &pool).await?;
    let api = ApiId(parse_id(&path)?);
    detail::get(&pool, api).await?;
    Ok(HttpResponse::Ok().json(rules::metrics(&pool, api).await?.into_iter().map(MetricOut::from).collect::<Vec<_>>()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricIn {
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,128}$")]
    pub system_name: String,
    #[serde(default)]
    #[schema(max_length = 200)]
    pub friendly_name: String,
    /// A top-level metric's system name (e.g. `hits`) to make this a method of it.
    pub parent: Option<String>,
}

/// Add a metric, or a method under a parent metric.
#[utoipa::path(post, operation_id = "add_metric", path = "/admin/api/v1/apis/{id}/metrics", tag = "apis", params(("id" = Uuid, Path)), request_body = MetricIn,
    responses((status = 201, body = Vec<MetricOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn add_metric(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let api = ApiId(parse_id(&path)?);
    let input: MetricIn = parse_json(&body)?;
    detail::get(&pool, api).await?;
    rules::add_metric(&pool, api, &input.system_name, &input.friendly_name, input.parent.as_deref(), &actor).await?;
    Ok(HttpResponse::Created()
        .json(rules::metrics(&pool, api).await?.into_iter().map(MetricOut::from).collect::<Vec<_>>()))
}

/// The mapping rules of an API, in matching order.
#[utoipa::path(get, operation_id = "list_mapping_rules", path = "/admin/api/v1/apis/{id}/mapping-rules", tag = "apis", params(("id" = Uuid, Path)),
    responses((status = 200, body = Vec<RuleOut>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_rules(req: HttpRequest, pool: web::Data<PgPool>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    admin(&req, &pool).await?;
    let api = ApiId(parse_id(&path)?);
    detail::get(&pool, api).await?;
    Ok(HttpResponse::Ok().json(rules::rules(&pool, api).await?.into_iter().map(RuleOut::from).collect::<Vec<_>>()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleIn {
    #[schema(pattern = "^(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS|TRACE|ANY)$")]
    pub http_method: String,
    #[schema(pattern = "^/", max_length = 2048)]
    pub pattern: String,
    pub metric: String,
    #[serde(default = "one")]
    #[schema(minimum = 1, maximum = 1000000)]
    pub delta: i32,
    #[serde(default)]
    pub last: bool,
    /// Appended after the existing rules when absent.
    #[schema(minimum = 0, maximum = 1000000)]
    pub position: Option<i32>,
}

fn one() -> i32 {
    1
}

/// Add a mapping rule.
#[utoipa::path(post, operation_id = "add_mapping_rule", path = "/admin/api/v1/apis/{id}/mapping-rules", tag = "apis", params(("id" = Uuid, Path)), request_body = RuleIn,
    responses((status = 201, body = Vec<RuleOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody, description = "A pattern the gateway cannot parse, an unknown metric…")),
    security(("bearer" = [])))]
pub async fn add_rule(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let api = ApiId(parse_id(&path)?);
    let input: RuleIn = parse_json(&body)?;
    detail::get(&pool, api).await?;
    let rule = NewRule {
        http_method: input.http_method,
        pattern: input.pattern,
        metric: input.metric,
        delta: input.delta,
        last: input.last,
        position: input.position,
    };
    rules::add_rule(&pool, api, &rule, &actor).await?;
    Ok(HttpResponse::Created().json(rules::rules(&pool, api).await?.into_iter().map(RuleOut::from).collect::<Vec<_>>()))
}

/// Delete a mapping rule.
#[utoipa::path(delete, operation_id = "delete_mapping_rule", path = "/admin/api/v1/apis/{id}/mapping-rules/{rule}", tag = "apis", params(("id" = Uuid, Path), ("rule" = Uuid, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_rule(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let (api, rule) = path.into_inner();
    rules::delete_rule(&pool, ApiId(parse_id(&api)?), parse_id(&rule)?, &actor).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Delete a metric or method, with its methods, the mapping rules that count it and its usage history. `hits` stays.
/// Refused while a plan limits or prices it or one of its methods.
#[utoipa::path(delete, operation_id = "delete_metric", path = "/admin/api/v1/apis/{id}/metrics/{metric}", tag = "apis", params(("id" = Uuid, Path), ("metric" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody, description = "No such metric of this API"),
              (status = 409, body = ErrorBody, description = "The metric is `hits`, which every API keeps, or plans limit or price the metric or its methods; the message names them")),
    security(("bearer" = [])))]
pub async fn delete_metric(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let (api, metric) = path.into_inner();
    rules::delete_metric(&pool, ApiId(parse_id(&api)?), parse_id(&metric)?, &actor).await?;
    Ok(HttpResponse::NoContent().finish())
}
