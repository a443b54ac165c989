//! Routing by consumer and by weight in the admin API: an API's upstream groups and their
//! weights, a plan's group, an application's exception, and calls per group.
//!
//! Bodies are read as JSON objects and checked field by field, so a bad weight, name or
//! URL is a 422 naming the field (serde would answer a bare 400).

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use tollgate_core::FieldProblems;
use tollgate_core::apis::ApiId;
use tollgate_core::applications::ApplicationId;
use tollgate_core::db::PgPool;
use tollgate_core::plans::PlanId;
use tollgate_core::routing::usage::{GroupUsage, per_group};
use tollgate_core::routing::{self, GroupName, GroupView, RouteView, RoutingView, parse_weight};
use tollgate_web::parse_id;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::admin;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::wire::{parse_json_object, parse_query};

/// An upstream group: its share of the API's default split and its targets.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupOut {
    /// `default`, `stable`, `canary`, `v2`…
    pub name: String,
    /// Share of the calls without a plan or application route.
    pub weight: i32,
    /// Target URLs, round-robin; for `default`, the API's upstreams.
    pub urls: Vec<String>,
}

impl From<GroupView> for GroupOut {
    fn from(g: GroupView) -> Self {
        GroupOut { name: g.name, weight: g.weight, urls: g.urls }
    }
}

/// A plan or application sent to one group.
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteOut {
    pub id: Uuid,
    pub name: String,
    pub group: String,
}

impl From<RouteView> for RouteOut {
    fn from(r: RouteView) -> Self {
        RouteOut { id: r.id, name: r.name, group: r.group }
    }
}

/// Where an API's calls go: an application's exception, else its plan's group, else the
/// weighted split between the groups.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoutingOut {
    pub groups: Vec<GroupOut>,
    pub plans: Vec<RouteOut>,
    pub applications: Vec<RouteOut>,
}

impl From<RoutingView> for RoutingOut {
    fn from(v: RoutingView) -> Self {
        RoutingOut {
            groups: v.groups.into_iter().map(GroupOut::from).collect(),
            plans: v.plans.into_iter().map(RouteOut::from).collect(),
            applications: v.applications.into_iter().map(RouteOut::from).collect(),
        }
    }
}

/// A group's weight and, for every group but `default`, its targets.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // The schema of the body, which is read field by field.
pub struct GroupIn {
    #[schema(minimum = 0, maximum = 1000000)]
    pub weight: i64,
    /// 1 to 20 `http(s)://` URLs; omit for `default` (its targets are the API's upstreams).
    #[schema(min_items = 1, max_items = 20)]
    pub urls: Option<Vec<TargetUrl>>,
}

/// A target: an `http://` or `https://` URL with a host, optionally a path prefix.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(value_type = String, pattern = "^[Hh][Tt][Tt][Pp][Ss]?://[^\\s/?#]+[^\\s]*$")]
#[allow(dead_code)]
pub struct TargetUrl(String);

/// Every group's weight at once, by name; groups not named keep theirs.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // The schema of the body, which is read field by field.
pub struct WeightsIn {
    /// Group name to weight, an integer from 0 to 1,000,000.
    pub weights: BTreeMap<String, i64>,
}

/// The group a plan or application is sent to; `null` for the API's split (or, for an
/// application, its plan's group).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GroupChoice {
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,31}$")]
    pub group: Option<String>,
}

fn object(body: &[u8]) -> ApiResult<Map<String, Value>> {
    parse_json_object(body)
}

fn group_choice(body: &[u8]) -> ApiResult<Option<GroupName>> {
    let body = object(body)?;
    match body.get("group") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(name)) => Ok(Some(GroupName::parse("group", name)?)),
        Some(_) => Err(tollgate_core::Error::invalid("group", "a group name or null").into()),
    }
}

/// An API's upstream groups, weights, plan routes and application exceptions.
#[utoipa::path(get, operation_id = "get_routing", path = "/admin/api/v1/apis/{id}/routing", tag = "routing", params(("id" = Uuid, Path)),
    responses((status = 200, body = RoutingOut), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn show(req: HttpRequest, pool: web::Data<PgPool>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    admin(&req, &pool).await?;
    let api = ApiId(parse_id(&path)?);
    Ok(HttpResponse::Ok().json(RoutingOut::from(routing::get(&pool, api).await?)))
}

/// Create or replace an upstream group (for `default`, set its weight).
#[utoipa::path(put, operation_id = "put_upstream_group", path = "/admin/api/v1/apis/{id}/routing/groups/{name}", tag = "routing",
    params(("id" = Uuid, Path), ("name" = String, Path, pattern = "^[a-z0-9][a-z0-9_-]{0,31}$")), request_body = GroupIn,
    responses((status = 200, body = GroupOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "A bad name, weight or URL, or weights that would sum to 0; `field` says which")),
    security(("bearer" = [])))]
pub async fn put_group(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let (id, name) = path.into_inner();
    let api = ApiId(parse_id(&id)?);
    let body = object(&body)?;
    // Every refused field at once: the name, the weight and each target.
    let mut problems = FieldProblems::default();
    let name = problems.note(GroupName::parse("name", &name))?;
    let weight = problems.note(parse_weight("weight", body.get("weight").unwrap_or(&Value::Null)))?;
    let urls = match body.get("urls") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => {
            let mut urls = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(url) => urls.push(url.to_owned()),
                    None => problems.add(format!("urls[{i}]"), "a URL string"),
                }
            }
            // The targets' own checks, where they can be told apart (the default group takes none).
            if urls.len() == items.len() && name.as_ref().is_some_and(|n| n.as_str() != routing::DEFAULT_GROUP) {
                problems.note(routing::parse_targets(&urls))?;
            }
            Some(urls)
        }
        Some(_) => {
            problems.add("urls", "a list of URLs");
            None
        }
    };
    problems.into_result()?;
    let (Some(name), Some(weight)) = (name, weight) else {
        return Err(tollgate_core::Error::invalid("name", "a group name and a weight").into());
    };
    let group = routing::put_group(&pool, &actor, api, &name, weight, urls).await?;
    Ok(HttpResponse::Ok().json(GroupOut::from(group)))
}

/// Remove an upstream group that no plan or application uses (`default` stays).
#[utoipa::path(delete, operation_id = "delete_upstream_group", path = "/admin/api/v1/apis/{id}/routing/groups/{name}", tag = "routing",
    params(("id" = Uuid, Path), ("name" = String, Path, pattern = "^[a-z0-9][a-z0-9_-]{0,31}$")),
    responses((status = 204, description = "Removed"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "The default group, or a group plans or applications use"),
              (status = 422, body = ErrorBody, description = "The remaining weights would sum to 0")),
    security(("bearer" = [])))]
pub async fn delete_group(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let (id, name) = path.into_inner();
    let api = ApiId(parse_id(&id)?);
    let name = GroupName::parse("name", &name).map_err(|_| ApiError::NotFound)?;
    routing::delete_group(&pool, &actor, api, name.as_str()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Set the weights of the split in one change (a canary step): non-negative integers that
/// sum to more than 0 over all the API's groups.
#[utoipa::path(put, operation_id = "set_upstream_weights", path = "/admin/api/v1/apis/{id}/routing/weights", tag = "routing",
    params(("id" = Uuid, Path)), request_body = WeightsIn,
    responses((status = 200, body = RoutingOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "A bad weight or unknown group (`field` is `weights.<name>`), or weights summing to 0")),
    security(("bearer" = [])))]
pub async fn set_weights(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let api = ApiId(parse_id(&path)?);
    let body = object(&body)?;
    let Some(Value::Object(given)) = body.get("weights") else {
        return Err(tollgate_core::Error::invalid("weights", "an object of group name to weight").into());
    };
    let mut weights = BTreeMap::new();
    let mut problems = FieldProblems::default();
    for (name, weight) in given {
        let field = format!("weights.{name}");
        // Named by the group, as every other problem of a weight is.
        if let Err(tollgate_core::Error::Invalid { message, .. }) = GroupName::parse("weights", name) {
            problems.add(field.clone(), message);
        }
        if let Some(weight) = problems.note(parse_weight(field, weight))? {
            weights.insert(name.clone(), weight);
        }
    }
    problems.into_result()?;
    routing::set_weights(&pool, &actor, api, &weights).await?;
    Ok(HttpResponse::Ok().json(RoutingOut::from(routing::get(&pool, api).await?)))
}

/// Send a plan's calls to one group of its API (`null`: back to the split).
#[utoipa::path(put, operation_id = "set_plan_upstream_group", path = "/admin/api/v1/plans/{id}/upstream-group", tag = "routing",
    params(("id" = Uuid, Path)), request_body = GroupChoice,
    responses((status = 200, body = GroupChoice), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "Not a group of the plan's API; `field` is `group`")),
    security(("bearer" = [])))]
pub async fn set_plan_group(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let plan = PlanId(parse_id(&path)?);
    let group = group_choice(&body)?;
    routing::set_plan_route(&pool, &actor, plan, group.as_ref(), None).await?;
    Ok(HttpResponse::Ok().json(GroupChoice { group: group.map(|g| g.as_str().to_owned()) }))
}

/// Send one application's calls to one group whatever its plan says (`null`: no exception).
#[utoipa::path(put, operation_id = "set_application_upstream_group", path = "/admin/api/v1/applications/{id}/upstream-group", tag = "routing",
    params(("id" = Uuid, Path)), request_body = GroupChoice,
    responses((status = 200, body = GroupChoice), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "Not a group of the application's API; `field` is `group`")),
    security(("bearer" = [])))]
pub async fn set_application_group(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let app = ApplicationId(parse_id(&path)?);
    let group = group_choice(&body)?;
    routing::set_application_route(&pool, &actor, app, group.as_ref(), None).await?;
    Ok(HttpResponse::Ok().json(GroupChoice { group: group.map(|g| g.as_str().to_owned()) }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GroupUsageQuery {
    /// `1h`, `24h` (default), `30d` or `12m`.
    #[param(pattern = "^(1h|24h|30d|12m)$")]
    pub period: Option<String>,
}

/// One upstream group's traffic over the period.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupUsageOut {
    pub group: String,
    pub calls: i64,
    pub calls_5xx: i64,
    /// `calls_5xx / calls`; 0 without calls.
    pub error_rate: f64,
    /// Upper bound of the latency bucket of the median call, in ms; null without calls or
    /// above 5 s.
    pub p50_ms: Option<u64>,
    pub p95_ms: Option<u64>,
}

impl From<GroupUsage> for GroupUsageOut {
    fn from(u: GroupUsage) -> Self {
        GroupUsageOut {
            group: u.group,
            calls: u.calls,
            calls_5xx: u.calls_5xx,
            error_rate: u.error_rate,
            p50_ms: u.p50_ms,
            p95_ms: u.p95_ms,
        }
    }
}

/// The period a group usage table covers, from its query value.
pub fn period_start(period: Option<&str>, now: OffsetDateTime) -> Result<OffsetDateTime, tollgate_core::Error> {
    let back = match period.unwrap_or("24h") {
        "1h" => time::Duration::hours(1),
        "24h" => time::Duration::hours(24),
        "30d" => time::Duration::days(30),
        "12m" => time::Duration::days(365),
        _ => return Err(tollgate_core::Error::invalid("period", "one of 1h, 24h, 30d, 12m")),
    };
    Ok(now - back)
}

/// Calls, 5xx rate and latency per upstream group, to compare a canary with the stable group.
#[utoipa::path(get, operation_id = "upstream_group_usage", path = "/admin/api/v1/apis/{id}/routing/usage", tag = "routing",
    params(("id" = Uuid, Path), GroupUsageQuery),
    responses((status = 200, body = Vec<GroupUsageOut>), (status = 400, body = ErrorBody, description = "A query string that cannot be read (a parameter twice)"),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "A bad period; `field` is `period`")),
    security(("bearer" = [])))]
pub async fn usage(req: HttpRequest, pool: web::Data<PgPool>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    admin(&req, &pool).await?;
    let api = ApiId(parse_id(&path)?);
    let query: GroupUsageQuery = parse_query(&req)?;
    let since = period_start(query.period.as_deref(), OffsetDateTime::now_utc())?;
    routing::get(&pool, api).await?;
    let rows = per_group(&pool, api, since).await?;
    Ok(HttpResponse::Ok().json(rows.into_iter().map(GroupUsageOut::from).collect::<Vec<_>>()))
}
