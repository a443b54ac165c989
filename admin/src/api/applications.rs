//! Applications of every account in the admin API: list and filter, show,
//! create on an account's behalf, approve, reject, suspend, resume, move to another plan, and decide the
//! plan changes developers asked for.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use tollgate_core::accounts::AccountId;
use tollgate_core::accounts::directory;
use tollgate_core::applications::plan_change::{self, Decision};
use tollgate_core::applications::{
    self, AdminApplicationView, ApplicationFilter, ApplicationId, ApplicationState, NewApplication, Transition,
};
use tollgate_core::db::PgPool;
use tollgate_core::plans::PlanId;
use tollgate_web::{PublicUrl, parse_id};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::admin;
use super::error::{ApiResult, ErrorBody};
use super::page::{Keyed, Page, PageQuery};
use super::schemas;
use super::wire::{check_len, created, parse_json, parse_json_object, parse_query, rfc3339};

#[derive(Debug, Serialize, ToSchema)]
pub struct ApplicationOut {
    pub id: Uuid,
    pub name: String,
    #[schema(schema_with = schemas::application_state)]
    pub state: ApplicationState,
    pub account_id: Uuid,
    pub account_name: String,
    pub api_id: Uuid,
    pub api_name: String,
    pub plan_id: Uuid,
    pub plan_name: String,
    /// A plan change the developer asked for, waiting for approval.
    pub requested_plan_id: Option<Uuid>,
    pub requested_plan_name: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl Keyed for ApplicationOut {
    fn key(&self) -> String {
        self.id.to_string()
    }
}

impl From<AdminApplicationView> for ApplicationOut {
    fn from(a: AdminApplicationView) -> Self {
        ApplicationOut {
            id: a.id.0,
            name: a.name,
            state: a.state,
            account_id: a.account_id.0,
            account_name: a.account_name,
            api_id: a.api_id,
            api_name: a.api_name,
            plan_id: a.plan_id.0,
            plan_name: a.plan_name,
            requested_plan_id: a.requested_plan_id.map(|p| p.0),
            requested_plan_name: a.requested_plan_name,
            created_at: rfc3339(a.created_at),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ApplicationQuery {
    /// Only applications in this state.
    #[param(schema_with = schemas::application_state)]
    pub state: Option<ApplicationState>,
    pub api_id: Option<Uuid>,
    pub account_id: Option<Uuid>,
    /// Part of the application's or account's name.
    #[param(max_length = 200, pattern = "^[^\\u0000]*$")]
    pub q: Option<String>,
    /// Only the applications after this one in the list: pass the last `id` of a page to get
    /// the next one (keyset paging, as fast at any depth; `page` then counts from there).
    pub after_id: Option<Uuid>,
    /// 1-based page number. Offset pages reach the first 10,000 rows: a page that starts
    /// past them (`(page - 1) × per_page ≥ 10000`) is refused with 400 `page_too_deep`;
    /// follow `next` (`after_id`) to go further.
    #[param(minimum = 1, maximum = 10000)]
    pub page: Option<i64>,
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<i64>,
}

/// List and filter applications of every account.
#[utoipa::path(get, operation_id = "list_applications", path = "/admin/api/v1/applications", tag = "applications", params(ApplicationQuery),
    responses((status = 200, body = Page<ApplicationOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(req: HttpRequest, pool: web::Data<PgPool>) -> ApiResult<HttpResponse> {
    admin(&req, &pool).await?;
    let q: ApplicationQuery = parse_query(&req)?;
    check_len("q", q.q.as_deref(), 200)?;
    let page = PageQuery { page: q.page, per_page: q.per_page };
    let (limit, offset) = page.window()?;
    let filter =
        ApplicationFilter { state: q.state, api_id: q.api_id, account_id: q.account_id, q: q.q, after_id: q.after_id };
    let (apps, total) = applications::list_all(&pool, &filter, limit, offset).await?;
    Ok(HttpResponse::Ok().json(Page::new(apps.into_iter().map(ApplicationOut::from).collect(), &req, &page, total)))
}

/// One application.
#[utoipa::path(get, operation_id = "get_application", path = "/admin/api/v1/applications/{id}", tag = "applications", params(("id" = Uuid, Path)),
    responses((status = 200, body = ApplicationOut), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn show(req: HttpRequest, pool: web::Data<PgPool>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    admin(&req, &pool).await?;
    let id = ApplicationId(parse_id(&path)?);
    Ok(HttpResponse::Ok().json(ApplicationOut::from(applications::get_any(&pool, id).await?)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Approve,
    Reject,
    Suspend,
    Resume,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionIn {
    pub action: Action,
}

/// Approve or reject a pending application (the developer is emailed), or suspend or resume a live one.
#[utoipa::path(post, operation_id = "act_on_application", path = "/admin/api/v1/applications/{id}/actions", tag = "applications", params(("id" = Uuid, Path)), request_body = ActionIn,
    responses((status = 200, body = ApplicationOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "Not allowed from the current state")),
    security(("bearer" = [])))]
pub async fn act(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    public_url: web::Data<PublicUrl>,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let id = ApplicationId(parse_id(&path)?);
    let input: ActionIn = parse_json(&body)?;
    let transition = match input.action {
        Action::Approve => Transition::Approve,
        Action::Reject => Transition::Reject,
        Action::Suspend => Transition::Suspend,
        Action::Resume => Transition::Resume,
    };
    applications::transition(&pool, id, transition, &actor, &public_url.0).await?;
    Ok(HttpResponse::Ok().json(ApplicationOut::from(applications::get_any(&pool, id).await?)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanChangeIn {
    pub plan_id: Uuid,
}

/// Move an application to another plan of its API.
#[utoipa::path(put, operation_id = "change_application_plan", path = "/admin/api/v1/applications/{id}/plan", tag = "applications", params(("id" = Uuid, Path)), request_body = PlanChangeIn,
    responses((status = 200, body = ApplicationOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "The plan belongs to another API")),
    security(("bearer" = [])))]
pub async fn change_plan(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let id = ApplicationId(parse_id(&path)?);
    let input: PlanChangeIn = parse_json(&body)?;
    plan_change::change_by_admin(&pool, id, PlanId(input.plan_id), &actor).await?;
    Ok(HttpResponse::Ok().json(ApplicationOut::from(applications::get_any(&pool, id).await?)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlanRequestAction {
    /// Move the application to the requested plan now.
    Approve,
    /// Keep the current plan and drop the request.
    Reject,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanRequestIn {
    pub action: PlanRequestAction,
}

/// Approve or reject the plan change a developer asked for (the account is notified).
#[utoipa::path(post, operation_id = "decide_application_plan_request", path = "/admin/api/v1/applications/{id}/plan-request", tag = "applications", params(("id" = Uuid, Path)), request_body = PlanRequestIn,
    responses((status = 200, body = ApplicationOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "No plan change is waiting for a decision")),
    security(("bearer" = [])))]
pub async fn decide_plan_request(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let id = ApplicationId(parse_id(&path)?);
    let input: PlanRequestIn = parse_json(&body)?;
    let decision = match input.action {
        PlanRequestAction::Approve => Decision::Approve,
        PlanRequestAction::Reject => Decision::Reject,
    };
    plan_change::decide(&pool, id, decision, &actor).await?;
    Ok(HttpResponse::Ok().json(ApplicationOut::from(applications::get_any(&pool, id).await?)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApplicationIn {
    /// A published plan of a published or deprecated API; the API is the plan's.
    pub plan_id: Uuid,
    #[schema(min_length = 1, max_length = 200, pattern = "^[^\\u0000]*\\S[^\\u0000]*$")]
    pub name: String,
    #[schema(max_length = 2000, pattern = "^[^\\u0000]*$")]
    pub description: Option<String>,
}

/// Register an application for an account, on its behalf. It starts `pending` when the plan requires approval; issue its keys with `issue_application_key`.
#[utoipa::path(post, operation_id = "create_application", path = "/admin/api/v1/accounts/{id}/applications", tag = "applications", params(("id" = Uuid, Path)), request_body = NewApplicationIn,
    responses((status = 201, body = ApplicationOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody, description = "No such account"),
              (status = 409, body = ErrorBody, description = "The account is suspended, or has an application of this name for this API"),
              (status = 422, body = ErrorBody, description = "Not a published plan, or a bad name or description; `field` names it")),
    security(("bearer" = [])))]
pub async fn create(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let account = AccountId(parse_id(&path)?);
    let input: NewApplicationIn = parse_json_object(&body)?;
    // The document bounds the text as sent; the core bounds the name once trimmed.
    check_len("name", Some(&input.name), 200)?;
    // An unknown account is 404 before the plan or name are looked at.
    directory::get(&pool, account).await?;
    let new = NewApplication {
        plan_id: PlanId(input.plan_id),
        name: input.name,
        description: input.description.unwrap_or_default(),
    };
    let app = applications::create(&pool, account, &new, &actor).await?;
    Ok(created(format!("/admin/api/v1/applications/{}", app.id.0))
        .json(ApplicationOut::from(applications::get_any(&pool, app.id).await?)))
}
