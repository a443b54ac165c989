//! New versions of an API in the admin API: stage one (its change report is
//! made at once, or in the background for a large comparison), read the
//! report's headline and top changes, page through its distinct changes
//! (breaking first), and publish.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use tollgate_core::apis::detail;
use tollgate_core::apis::versions::{self, VersionReport};
use tollgate_core::apis::{ApiId, ReportState};
use tollgate_core::db::PgPool;
use tollgate_openapi::{Change, ChangeReport};
use tollgate_web::{PublicUrl, parse_id};
use utoipa::{IntoParams, ToSchema};

use super::auth::admin;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::page::{Keyed, Page, PageQuery};
use super::schemas;
use super::wire::{parse_json, parse_query};

/// Changes a version's answer shows; the rest are paged at `/changes`.
const TOP_CHANGES: usize = 10;

/// Operations a change lists in a page of changes; all are at `/changes/{change}`.
const OPERATIONS_LISTED: usize = 20;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionIn {
    /// The new document's text.
    #[schema(max_length = 16777216)]
    pub spec: String,
}

/// How far a background comparison has got.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProgressOut {
    /// `queued`, `reading`, `comparing` or `saving`.
    pub phase: String,
    /// Operations compared so far.
    pub done: i32,
    /// Operations to compare (0 until known).
    pub total: i32,
}

/// Where a change happens: a component (shared by the operations that use
/// it) or an operation's own part.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubjectOut {
    /// `operation`, `schema`, `parameter`, `response`, `request_body` or `component`.
    pub kind: String,
    /// `Pet` for a component, `GET /pets/{id}` for an operation.
    pub name: String,
    /// The component's JSON pointer; absent for an operation.
    pub pointer: Option<String>,
}

/// One distinct change, once, with the operations it affects.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeOut {
    /// Its place in the report (breaking first), for `/changes/{change}`.
    pub id: usize,
    /// e.g. `response_field_removed`, `enum_widened`, `operation_removed`.
    pub kind: String,
    pub breaking: bool,
    /// `operation`, `request` or `response`.
    pub side: String,
    pub subject: SubjectOut,
    /// JSON pointer into the new document (the old one for a removed operation).
    pub pointer: String,
    pub location: String,
    pub message: String,
    pub operation_count: usize,
    /// The operations it affects (in a page of changes, the first 20).
    pub operations: Vec<String>,
}

impl Keyed for ChangeOut {
    fn key(&self) -> String {
        self.id.to_string()
    }
}

fn change_out(report: &ChangeReport, id: usize, change: &Change, limit: usize) -> ChangeOut {
    ChangeOut {
        id,
        kind: change.kind.as_str().to_owned(),
        breaking: change.breaking,
        side: change.side.as_str().to_owned(),
        subject: SubjectOut {
            kind: serde_json::to_value(change.subject.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            name: change.subject.name.clone(),
            pointer: (!change.subject.pointer.is_empty()).then(|| change.subject.pointer.clone()),
        },
        pointer: change.pointer.clone(),
        location: change.location.clone(),
        message: change.message.clone(),
        operation_count: change.operations.len(),
        operations: report.operations_of(change).take(limit).map(str::to_owned).collect(),
    }
}

/// A staged or published version: its report's headline, counts and top
/// changes (breaking first), or how far the background comparison has got.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionReportOut {
    pub number: i32,
    pub operation_count: i32,
    pub published: bool,
    /// The version the report compares against.
    pub base_number: Option<i32>,
    /// `ready`, or `queued`/`running` while a large comparison is made in the background, or `failed`.
    #[schema(schema_with = schemas::report_state)]
    pub report_state: ReportState,
    pub progress: Option<ProgressOut>,
    /// Why the report could not be made.
    pub error: Option<String>,
    /// The policy the report was judged by.
    #[schema(schema_with = schemas::compatibility_policy)]
    pub policy: tollgate_core::apis::CompatibilityPolicy,
    pub breaking: bool,
    /// Distinct breaking changes.
    pub breaking_count: usize,
    /// Distinct other changes.
    pub non_breaking_count: usize,
    /// Operations at least one breaking change affects.
    pub breaking_operations: usize,
    pub operations_added: usize,
    pub operations_removed: usize,
    pub operations_changed: usize,
    /// The comparison stopped early; changes may be missing.
    pub truncated: bool,
    /// For people: the headline, then the top changes, breaking first.
    pub summary: Vec<String>,
    /// The top changes, breaking first, each group by the operations it affects.
    pub top_changes: Vec<ChangeOut>,
}

fn version_out(v: VersionReport) -> VersionReportOut {
    let r = &v.report;
    let index = |c: &Change| r.changes.iter().position(|x| std::ptr::eq(x, c)).unwrap_or_default();
    let ready = v.ready();
    VersionReportOut {
        number: v.number,
        operation_count: v.operation_count,
        published: v.published,
        base_number: v.base_number,
        report_state: v.state,
        progress: v.progress.clone().map(|p| ProgressOut { phase: p.phase, done: p.done, total: p.total }),
        error: v.error.clone(),
        policy: if ready { policy_of(r) } else { v.policy },
        breaking: r.breaking(),
        breaking_count: r.breaking_count,
        non_breaking_count: r.non_breaking_count,
        breaking_operations: r.breaking_operations,
        operations_added: r.operations_added.len(),
        operations_removed: r.operations_removed.len(),
        operations_changed: r.operations_changed,
        truncated: r.truncated,
        summary: if ready { r.summary_lines(TOP_CHANGES) } else { Vec::new() },
        top_changes: r.top(TOP_CHANGES).into_iter().map(|c| change_out(r, index(c), c, OPERATIONS_LISTED)).collect(),
    }
}

fn policy_of(report: &ChangeReport) -> tollgate_core::apis::CompatibilityPolicy {
    match report.policy {
        tollgate_openapi::CompatibilityPolicy::Strict => tollgate_core::apis::CompatibilityPolicy::Strict,
        tollgate_openapi::CompatibilityPolicy::AdditiveEnums => tollgate_core::apis::CompatibilityPolicy::AdditiveEnums,
    }
}

fn version_number(raw: &str) -> ApiResult<i32> {
    raw.parse().map_err(|_| ApiError::NotFound)
}

/// Stage a new version from a document. Nothing changes for clients until it is published. The change report is in the
/// answer (201), or, for a large comparison, made in the background (202, `report_state` `queued`): poll the version.
#[utoipa::path(post, operation_id = "stage_version", path = "/admin/api/v1/apis/{id}/versions", tag = "apis", params(("id" = Uuid, Path)), request_body = VersionIn,
    responses((status = 201, body = VersionReportOut, description = "Staged with its change report"),
              (status = 202, body = VersionReportOut, description = "Staged; the change report is being made"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "The document is invalid; `field` is the JSON pointer")),
    security(("bearer" = [])))]
pub async fn stage_version(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let id = ApiId(parse_id(&path)?);
    let input: VersionIn = parse_json(&body)?;
    detail::get(&pool, id).await?;
    let spec = tollgate_openapi::parse(&input.spec).map_err(tollgate_core::Error::from)?;
    let staged = versions::stage(&pool, id, &input.spec, &spec, &actor).await?;
    let location = format!("/admin/api/v1/apis/{}/versions/{}", id.0, staged.number);
    let mut answer = if staged.ready() { HttpResponse::Created() } else { HttpResponse::Accepted() };
    Ok(answer.insert_header(("Location", location)).json(version_out(staged)))
}

/// One version: its change report's headline and top changes, or its progress.
#[utoipa::path(get, operation_id = "get_version", path = "/admin/api/v1/apis/{id}/versions/{number}", tag = "apis", params(("id" = Uuid, Path), ("number" = i32, Path)),
    responses((status = 200, body = VersionReportOut), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn show_version(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    admin(&req, &pool).await?;
    let (id, number) = path.into_inner();
    let number = version_number(&number)?;
    let version = versions::get(&pool, ApiId(parse_id(&id)?), number).await?;
    Ok(HttpResponse::Ok().json(version_out(version)))
}

/// Which changes to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ChangesQuery {
    /// 1-based page number. Offset pages reach the first 10,000 rows: a page that starts
    /// past them (`(page - 1) × per_page ≥ 10000`) is refused with 400 `page_too_deep`;
    /// follow `next` (`after_id`) to go further.
    #[param(minimum = 1, maximum = 10000)]
    pub page: Option<i64>,
    /// Changes per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<i64>,
    /// Only breaking (`true`) or only other (`false`) changes.
    pub breaking: Option<bool>,
    /// Only changes of this kind, e.g. `response_field_removed`.
    #[param(schema_with = schemas::change_kind)]
    pub kind: Option<tollgate_openapi::ChangeKind>,
    /// Only the changes after this one in the list: pass the last `id` of a page to get the
    /// next one (`page` then counts from there).
    pub after_id: Option<usize>,
}

/// A version's distinct changes, breaking first, paged; each lists its first 20 operations.
#[utoipa::path(get, operation_id = "list_version_changes", path = "/admin/api/v1/apis/{id}/versions/{number}/changes", tag = "apis",
    params(("id" = Uuid, Path), ("number" = i32, Path), ChangesQuery),
    responses((status = 200, body = Page<ChangeOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody, description = "A page or filter out of range")),
    security(("bearer" = [])))]
pub async fn list_changes(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    admin(&req, &pool).await?;
    let query: ChangesQuery = parse_query(&req)?;
    let paging = PageQuery { page: query.page, per_page: query.per_page };
    let (limit, offset) = paging.window()?;
    let (id, number) = path.into_inner();
    let number = version_number(&number)?;
    let version = versions::get(&pool, ApiId(parse_id(&id)?), number).await?;
    let report = &version.report;
    let chosen: Vec<(usize, &Change)> = report
        .changes
        .iter()
        .enumerate()
        .filter(|(_, c)| query.breaking.is_none_or(|b| c.breaking == b))
        .filter(|(_, c)| query.kind.is_none_or(|k| c.kind == k))
        .collect();
    let total = chosen.len() as i64;
    let items = chosen
        .into_iter()
        .filter(|(i, _)| query.after_id.is_none_or(|after| *i > after))
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(0))
        .map(|(i, c)| change_out(report, i, c, OPERATIONS_LISTED))
        .collect();
    Ok(HttpResponse::Ok().json(Page::new(items, &req, &paging, total)))
}

/// One change with every operation it affects.
#[utoipa::path(get, operation_id = "get_version_change", path = "/admin/api/v1/apis/{id}/versions/{number}/changes/{change}", tag = "apis",
    params(("id" = Uuid, Path), ("number" = i32, Path), ("change" = usize, Path)),
    responses((status = 200, body = ChangeOut), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn show_change(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String, String)>,
) -> ApiResult<HttpResponse> {
    admin(&req, &pool).await?;
    let (id, number, change) = path.into_inner();
    let number = version_number(&number)?;
    let change: usize = change.parse().map_err(|_| ApiError::NotFound)?;
    let version = versions::get(&pool, ApiId(parse_id(&id)?), number).await?;
    let report = &version.report;
    let found = report.changes.get(change).ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(change_out(report, change, found, usize::MAX)))
}

/// Publish a staged version whose report is ready: new operations get methods and rules, removed ones stop being
/// routed; a breaking version emails subscribers the distinct count and the top changes.
#[utoipa::path(post, operation_id = "publish_version", path = "/admin/api/v1/apis/{id}/versions/{number}/publish", tag = "apis", params(("id" = Uuid, Path), ("number" = i32, Path)),
    responses((status = 200, body = VersionReportOut), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "Already published, or its change report is not ready")),
    security(("bearer" = [])))]
pub async fn publish_version(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    public_url: web::Data<PublicUrl>,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let (id, number) = path.into_inner();
    let number = version_number(&number)?;
    let id = ApiId(parse_id(&id)?);
    versions::publish(&pool, id, number, &actor, &public_url.0).await?;
    Ok(HttpResponse::Ok().json(version_out(versions::get(&pool, id, number).await?)))
}
