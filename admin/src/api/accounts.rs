//! Developer accounts in the admin API: list, show, create (inviting the
//! first owner), invite users, suspend and reactivate.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use tollgate_core::accounts::directory::{self, AccountState, AccountView};
use tollgate_core::accounts::flows::MailRequest;
use tollgate_core::accounts::teams::{self, MemberRole};
use tollgate_core::accounts::{AccountId, Email, MailLimits};
use tollgate_core::db::PgPool;
use tollgate_web::{ClientIp, PublicUrl, parse_id};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::admin;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::page::{Keyed, Page, PageQuery};
use super::schemas;
use super::wire::{check_len, created, parse_json, parse_json_object, parse_query, rfc3339};

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountOut {
    pub id: Uuid,
    pub name: String,
    #[schema(schema_with = schemas::account_state)]
    pub state: AccountState,
    pub members: i64,
    pub applications: i64,
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl Keyed for AccountOut {
    fn key(&self) -> String {
        self.id.to_string()
    }
}

impl From<AccountView> for AccountOut {
    fn from(a: AccountView) -> Self {
        AccountOut {
            id: a.id.0,
            name: a.name,
            state: a.state,
            members: a.members,
            applications: a.applications,
            created_at: rfc3339(a.created_at),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AccountQuery {
    /// Part of the account's name.
    #[param(max_length = 200, pattern = "^[^\\u0000]*$")]
    pub q: Option<String>,
    /// Only the accounts after this one in the list: pass the last `id` of a page to get
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

/// List developer accounts.
#[utoipa::path(get, operation_id = "list_accounts", path = "/admin/api/v1/accounts", tag = "accounts", params(AccountQuery),
    responses((status = 200, body = Page<AccountOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "A parameter out of range; `field` names it")),
    security(("bearer" = [])))]
pub async fn list(req: HttpRequest, pool: web::Data<PgPool>) -> ApiResult<HttpResponse> {
    admin(&req, &pool).await?;
    let q: AccountQuery = parse_query(&req)?;
    check_len("q", q.q.as_deref(), 200)?;
    let page = PageQuery { page: q.page, per_page: q.per_page };
    let (limit, offset) = page.window()?;
    let (accounts, total) = directory::list(&pool, q.q.as_deref(), q.after_id, limit, offset).await?;
    Ok(HttpResponse::Ok().json(Page::new(accounts.into_iter().map(AccountOut::from).collect(), &req, &page, total)))
}

/// One developer account.
#[utoipa::path(get, operation_id = "get_account", path = "/admin/api/v1/accounts/{id}", tag = "accounts", params(("id" = Uuid, Path)),
    responses((status = 200, body = AccountOut), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn show(req: HttpRequest, pool: web::Data<PgPool>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    admin(&req, &pool).await?;
    let id = AccountId(parse_id(&path)?);
    Ok(HttpResponse::Ok().json(AccountOut::from(directory::get(&pool, id).await?)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountStateIn {
    #[schema(schema_with = schemas::account_state)]
    pub state: AccountState,
}

/// Suspend an account (all its applications stop working) or reactivate it.
#[utoipa::path(put, operation_id = "set_account_state", path = "/admin/api/v1/accounts/{id}/state", tag = "accounts", params(("id" = Uuid, Path)), request_body = AccountStateIn,
    responses((status = 200, body = AccountOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_state(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let id = AccountId(parse_id(&path)?);
    let input: AccountStateIn = parse_json(&body)?;
    directory::set_state(&pool, id, input.state, &actor).await?;
    Ok(HttpResponse::Ok().json(AccountOut::from(directory::get(&pool, id).await?)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccountIn {
    /// The organisation's name, one line.
    #[schema(min_length = 1, max_length = 200, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029]*$")]
    pub name: String,
    /// Who is invited as the account's first owner; they join by accepting the mailed invitation.
    #[schema(format = Email, max_length = 254)]
    pub owner_email: String,
}

/// Create a developer account and invite its first owner by email (the team invitation mail).
/// The account has no members until the owner accepts.
#[utoipa::path(post, operation_id = "create_account", path = "/admin/api/v1/accounts", tag = "accounts", request_body = NewAccountIn,
    responses((status = 201, body = AccountOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "A bad name or email, or the address was mailed a moment ago; `field` names it"),
              (status = 429, body = ErrorBody, description = "The mail throttle's budget for this client is spent; see `Retry-After`")),
    security(("bearer" = [])))]
pub async fn create(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    public_url: web::Data<PublicUrl>,
    limits: web::Data<MailLimits>,
    ClientIp(client): ClientIp,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let input: NewAccountIn = parse_json_object(&body)?;
    let owner = directory::check_new_account(&input.name, &input.owner_email)?;
    let request = MailRequest { client: &client, limits: &limits };
    let id = directory::create(&pool, &request, &input.name, &owner, &actor, &public_url.0).await?;
    Ok(created(format!("/admin/api/v1/accounts/{}", id.0)).json(AccountOut::from(directory::get(&pool, id).await?)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitationIn {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    #[schema(schema_with = schemas::member_role)]
    pub role: MemberRole,
}

/// An invitation sent: it expires after 7 days.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationOut {
    pub email: String,
    #[schema(schema_with = schemas::member_role)]
    pub role: MemberRole,
    #[schema(format = DateTime)]
    pub expires_at: String,
}

/// Invite someone to an account as an owner or member, on the account's behalf (the team invitation mail).
#[utoipa::path(post, operation_id = "invite_to_account", path = "/admin/api/v1/accounts/{id}/invitations", tag = "accounts", params(("id" = Uuid, Path)), request_body = InvitationIn,
    responses((status = 201, body = InvitationOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "A bad email, a member already, or the address was mailed a moment ago; `field` is `email`"),
              (status = 429, body = ErrorBody, description = "The mail throttle's budget for this client is spent; see `Retry-After`")),
    security(("bearer" = [])))]
pub async fn invite(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    public_url: web::Data<PublicUrl>,
    limits: web::Data<MailLimits>,
    ClientIp(client): ClientIp,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let account = AccountId(parse_id(&path)?);
    let input: InvitationIn = parse_json_object(&body)?;
    check_len("email", Some(&input.email), 254)?;
    let email = Email::parse(&input.email)?;
    let request = MailRequest { client: &client, limits: &limits };
    teams::invite_as_admin(&pool, &request, account, &actor, &email, input.role, &public_url.0).await?;
    let sent = teams::pending_invitations(&pool, account)
        .await?
        .into_iter()
        .rev()
        .find(|i| i.email.eq_ignore_ascii_case(email.as_str()))
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Created().json(InvitationOut {
        email: sent.email,
        role: sent.role,
        expires_at: rfc3339(sent.expires_at),
    }))
}
