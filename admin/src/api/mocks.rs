//! An API's mock mode in the admin API: which operations the gateway answers from the
//! API's description instead of its upstream, and where each answer comes from (a written
//! example, a value generated from the schema, or an empty body). See docs/MOCKS.md.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use tollgate_core::apis::ApiId;
use tollgate_core::apis::mocks::{self, ExampleSource, MockChanges, MockMode};
use tollgate_core::db::PgPool;
use tollgate_web::parse_id;
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::admin;
use super::error::{ApiResult, ErrorBody};
use super::wire::parse_json;

/// Where an operation's default mock answer comes from.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExampleSourceOut {
    /// An example written in the description.
    Example,
    /// The description has no example: a value generated from the response's schema.
    Generated,
    /// No example and no schema: an empty body.
    Empty,
}

impl From<ExampleSource> for ExampleSourceOut {
    fn from(source: ExampleSource) -> Self {
        match source {
            ExampleSource::Example => ExampleSourceOut::Example,
            ExampleSource::Generated => ExampleSourceOut::Generated,
            ExampleSource::Empty => ExampleSourceOut::Empty,
        }
    }
}

/// An imported operation and its mock mode.
#[derive(Debug, Serialize, ToSchema)]
pub struct MockedOperationOut {
    /// The operation's method metric.
    pub metric_id: Uuid,
    pub system_name: String,
    pub method: String,
    pub path: String,
    /// Answered by mocks (by itself or with the whole API).
    pub mocked: bool,
    pub source: ExampleSourceOut,
}

/// An API's mock mode.
#[derive(Debug, Serialize, ToSchema)]
pub struct MockModeOut {
    /// Every operation is answered by mocks.
    pub whole_api: bool,
    pub operations: Vec<MockedOperationOut>,
}

impl From<MockMode> for MockModeOut {
    fn from(mode: MockMode) -> Self {
        MockModeOut {
            whole_api: mode.whole_api,
            operations: mode
                .operations
                .into_iter()
                .map(|o| MockedOperationOut {
                    metric_id: o.metric_id,
                    system_name: o.system_name,
                    method: o.method,
                    path: o.path,
                    mocked: o.mocked,
                    source: o.source.into(),
                })
                .collect(),
        }
    }
}

/// One operation put in or out of mock mode by itself.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperationMockIn {
    pub metric_id: Uuid,
    pub mocked: bool,
}

/// What to change; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MockModeIn {
    /// Put the whole API in (or out of) mock mode.
    pub whole_api: Option<bool>,
    #[serde(default)]
    #[schema(max_items = 10000)]
    pub operations: Vec<OperationMockIn>,
}

/// An API's mock mode, with where each operation's answer comes from.
#[utoipa::path(get, operation_id = "get_api_mocks", path = "/admin/api/v1/apis/{id}/mocks", tag = "apis", params(("id" = Uuid, Path)),
    responses((status = 200, body = MockModeOut), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn show(req: HttpRequest, pool: web::Data<PgPool>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    admin(&req, &pool).await?;
    let id = ApiId(parse_id(&path)?);
    Ok(HttpResponse::Ok().json(MockModeOut::from(mocks::get(&pool, id).await?)))
}

/// Put the whole API or single operations in or out of mock mode; gateways answer them
/// from the API's description at once.
#[utoipa::path(patch, operation_id = "update_api_mocks", path = "/admin/api/v1/apis/{id}/mocks", tag = "apis", params(("id" = Uuid, Path)), request_body = MockModeIn,
    responses((status = 200, body = MockModeOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "A published API without an upstream cannot leave mock mode"),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let id = ApiId(parse_id(&path)?);
    let input: MockModeIn = parse_json(&body)?;
    let changes = MockChanges {
        whole_api: input.whole_api,
        operations: input.operations.into_iter().map(|o| (o.metric_id, o.mocked)).collect(),
    };
    Ok(HttpResponse::Ok().json(MockModeOut::from(mocks::set(&pool, id, &changes, &actor).await?)))
}
