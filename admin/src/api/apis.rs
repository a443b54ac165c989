//! API products in the admin API: import a spec, read and change settings
//! (the compatibility policy among them), move along the lifecycle. New
//! versions are in `versions`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use tollgate_core::apis::detail::{self, ApiChanges, ApiDetail};
use tollgate_core::apis::lifecycle;
use tollgate_core::apis::{
    ApiId, ApiState, ApiSummary, AuthMode, CompatibilityPolicy, KeyLocation, NewApi, create_from_spec,
};
use tollgate_core::db::PgPool;
use tollgate_web::{PublicUrl, parse_id};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::admin;
use super::error::{ApiResult, ErrorBody};
use super::page::{Keyed, Page, PageQuery};
use super::schemas;
use super::wire::{created, parse_json, parse_query, rfc3339};

/// An API product in lists.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiOut {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    #[schema(schema_with = schemas::api_state)]
    pub state: ApiState,
    pub base_path: String,
    pub operation_count: i32,
}

impl From<ApiSummary> for ApiOut {
    fn from(a: ApiSummary) -> Self {
        ApiOut {
            id: a.id.0,
            slug: a.slug,
            name: a.name,
            state: a.state,
            base_path: a.base_path,
            operation_count: a.operation_count,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionOut {
    pub number: i32,
    pub title: String,
    pub version_label: String,
    /// The OpenAPI or Swagger version the document declares.
    pub spec_version: String,
    pub operation_count: i32,
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// An API product with its settings and versions.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiDetailOut {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub description: String,
    #[schema(schema_with = schemas::api_state)]
    pub state: ApiState,
    pub base_path: String,
    pub public_host: Option<String>,
    pub upstream_urls: Vec<String>,
    #[schema(format = DateTime)]
    pub sunset_at: Option<String>,
    /// When the API was deprecated (gateways send it as `Deprecation: @<seconds>`); only a deprecated API has it.
    #[schema(format = DateTime)]
    pub deprecated_at: Option<String>,
    #[schema(schema_with = schemas::auth_mode)]
    pub auth_mode: AuthMode,
    #[schema(schema_with = schemas::key_location)]
    pub key_location: KeyLocation,
    pub key_name: String,
    /// Whether a new value in a response enum is a breaking change (`strict`, the default) or not (`additive_enums`).
    #[schema(schema_with = schemas::compatibility_policy)]
    pub compatibility_policy: CompatibilityPolicy,
    pub versions: Vec<VersionOut>,
    /// Applications subscribed to this API (pending, live or suspended; not rejected), counted
    /// up to 10,000.
    pub subscribers: i64,
    /// False when more than `subscribers` applications subscribe: the count stops at
    /// 10,000, because counting a popular API's millions for one page would cost seconds.
    pub subscribers_exact: bool,
}

impl From<ApiDetail> for ApiDetailOut {
    fn from(d: ApiDetail) -> Self {
        ApiDetailOut {
            id: d.id.0,
            slug: d.slug,
            name: d.name,
            description: d.description,
            state: d.state,
            base_path: d.base_path,
            public_host: d.public_host,
            upstream_urls: d.upstreams,
            sunset_at: d.sunset_at.map(rfc3339),
            deprecated_at: d.deprecated_at.map(rfc3339),
            auth_mode: d.auth_mode,
            key_location: d.key_location,
            key_name: d.key_name,
            compatibility_policy: d.compatibility_policy,
            versions: d
                .versions
                .into_iter()
                .map(|v| VersionOut {
                    number: v.number,
                    title: v.title,
                    version_label: v.version_label,
                    spec_version: v.spec_version,
                    operation_count: v.operation_count,
                    created_at: rfc3339(v.created_at),
                })
                .collect(),
            subscribers: d.subscribers.value,
            subscribers_exact: d.subscribers.exact,
        }
    }
}

/// Which page of API products to return.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ApiListQuery {
    /// Only the APIs after this one in the list: pass the last `id` of a page to get
    /// the next one (keyset paging; `page` then counts from there).
    pub after_id: Option<Uuid>,
    /// 1-based page number. Offset pages reach the first 10,000 rows: a page that starts
    /// past them (`(page - 1) × per_page ≥ 10000`) is refused with 400 `page_too_deep`;
    /// follow `next` (`after_id`) to go further.
    #[param(minimum = 1, maximum = 10000)]
    pub page: Option<i64>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<i64>,
}

impl Keyed for ApiOut {
    fn key(&self) -> String {
        self.id.to_string()
    }
}

/// List API products, newest first.
#[utoipa::path(get, operation_id = "list_apis", path = "/admin/api/v1/apis", tag = "apis", params(ApiListQuery),
    responses((status = 200, body = Page<ApiOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "A parameter out of range; `field` names it")),
    security(("bearer" = [])))]
pub async fn list(req: HttpRequest, pool: web::Data<PgPool>) -> ApiResult<HttpResponse> {
    admin(&req, &pool).await?;
    let q: ApiListQuery = parse_query(&req)?;
    let query = PageQuery { page: q.page, per_page: q.per_page };
    let (limit, offset) = query.window()?;
    let (apis, total) = detail::list_page(&pool, q.after_id.map(ApiId), limit, offset).await?;
    Ok(HttpResponse::Ok().json(Page::new(apis.into_iter().map(ApiOut::from).collect(), &req, &query, total)))
}

/// An OpenAPI 2.0, 3.0 or 3.1 document (JSON or YAML) to import as a new draft API.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportIn {
    /// The document's text, kept byte for byte.
    #[schema(max_length = 16777216)]
    pub spec: String,
    /// Defaults to the document's title.
    #[schema(max_length = 200)]
    pub name: Option<String>,
    /// Defaults to a slug of the name.
    #[schema(pattern = "^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$")]
    pub slug: Option<String>,
    /// Defaults to `/<slug>`.
    pub base_path: Option<String>,
    /// Where the gateway forwards calls.
    pub upstream_url: Option<String>,
}

/// Import a spec as a new draft API: one method and one mapping rule per operation.
#[utoipa::path(post, operation_id = "import_api", path = "/admin/api/v1/apis", tag = "apis", request_body = ImportIn,
    responses((status = 201, body = ApiOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "The slug or base path is taken"),
              (status = 422, body = ErrorBody, description = "The document is invalid; `field` is the JSON pointer, `line` the line")),
    security(("bearer" = [])))]
pub async fn import(req: HttpRequest, pool: web::Data<PgPool>, body: web::Bytes) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let input: ImportIn = parse_json(&body)?;
    let spec = tollgate_openapi::parse(&input.spec).map_err(tollgate_core::Error::from)?;
    let new =
        NewApi { name: input.name, slug: input.slug, base_path: input.base_path, upstream_url: input.upstream_url };
    let api = create_from_spec(&pool, &input.spec, &spec, new, &actor).await?;
    let out = ApiOut::from(api);
    Ok(created(format!("/admin/api/v1/apis/{}", out.id)).json(out))
}

/// One API product.
#[utoipa::path(get, operation_id = "get_api", path = "/admin/api/v1/apis/{id}", tag = "apis", params(("id" = Uuid, Path)),
    responses((status = 200, body = ApiDetailOut), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn show(req: HttpRequest, pool: web::Data<PgPool>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    admin(&req, &pool).await?;
    let id = ApiId(parse_id(&path)?);
    Ok(HttpResponse::Ok().json(ApiDetailOut::from(detail::get(&pool, id).await?)))
}

/// Delete an API no application uses and nobody owes anything on, with its versions, metrics,
/// mapping rules and plans. Gateways stop serving it.
#[utoipa::path(delete, operation_id = "delete_api", path = "/admin/api/v1/apis/{id}", tag = "apis", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "Applications still use the API, or past subscribers of one of its plans owe charges no invoice has made yet")),
    security(("bearer" = [])))]
pub async fn delete(req: HttpRequest, pool: web::Data<PgPool>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    detail::delete(&pool, ApiId(parse_id(&path)?), &actor).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Fields to change; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiPatchIn {
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[schema(max_length = 20000)]
    pub description: Option<String>,
    /// Replaces all upstream targets.
    #[schema(max_items = 20)]
    pub upstream_urls: Option<Vec<String>>,
    /// How consumers present credentials.
    #[schema(schema_with = schemas::auth_mode)]
    pub auth_mode: Option<AuthMode>,
    /// Where the user key (or app_id and app_key) is read from.
    #[schema(schema_with = schemas::key_location)]
    pub key_location: Option<KeyLocation>,
    /// The query parameter or header carrying the user key, e.g. `user_key` or `X-Api-Key`.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub key_name: Option<String>,
    /// `strict` (default): a new value in a response enum breaks clients with closed enums.
    /// `additive_enums`: the API tells clients to expect new values (as Stripe and GitHub do), so they are not breaking.
    /// Reports of unpublished versions are judged again.
    #[schema(schema_with = schemas::compatibility_policy)]
    pub compatibility_policy: Option<CompatibilityPolicy>,
}

/// Change an API's name, description, upstream targets, credentials or compatibility policy.
#[utoipa::path(patch, operation_id = "update_api", path = "/admin/api/v1/apis/{id}", tag = "apis", params(("id" = Uuid, Path)), request_body = ApiPatchIn,
    responses((status = 200, body = ApiDetailOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let id = ApiId(parse_id(&path)?);
    let input: ApiPatchIn = parse_json(&body)?;
    if input.description.as_ref().is_some_and(|d| d.chars().count() > 20000) {
        return Err(tollgate_core::Error::invalid("description", "use at most 20,000 characters").into());
    }
    let changes = ApiChanges {
        name: input.name,
        description: input.description,
        upstream_urls: input.upstream_urls,
        auth_mode: input.auth_mode,
        key_location: input.key_location,
        key_name: input.key_name,
        compatibility_policy: input.compatibility_policy,
    };
    detail::update(&pool, id, &changes, &actor).await?;
    Ok(HttpResponse::Ok().json(ApiDetailOut::from(detail::get(&pool, id).await?)))
}

/// Where to move the API in its lifecycle.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LifecycleIn {
    pub state: LifecycleState,
    /// Required when deprecating: when the API stops answering (RFC 3339, in the future).
    #[schema(format = DateTime)]
    pub sunset_at: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleState {
    Published,
    Deprecated,
    Retired,
}

/// Publish, deprecate (with a sunset date; subscribers are emailed) or retire an API.
#[utoipa::path(post, operation_id = "move_api", path = "/admin/api/v1/apis/{id}/lifecycle", tag = "apis", params(("id" = Uuid, Path)), request_body = LifecycleIn,
    responses((status = 200, body = ApiDetailOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "Not allowed from the current state"),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn lifecycle(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    public_url: web::Data<PublicUrl>,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let id = ApiId(parse_id(&path)?);
    let input: LifecycleIn = parse_json(&body)?;
    let sunset = match &input.sunset_at {
        Some(raw) => Some(super::wire::parse_rfc3339("sunset_at", raw)?),
        None => None,
    };
    let state = match input.state {
        LifecycleState::Published => ApiState::Published,
        LifecycleState::Deprecated => ApiState::Deprecated,
        LifecycleState::Retired => ApiState::Retired,
    };
    lifecycle::set_state(&pool, id, state, sunset, &actor, &public_url.0).await?;
    Ok(HttpResponse::Ok().json(ApiDetailOut::from(detail::get(&pool, id).await?)))
}
