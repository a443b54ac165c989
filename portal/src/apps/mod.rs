//! Applications of the signed-in user's account.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use time::OffsetDateTime;
use tollgate_core::accounts::UserSummary;
use tollgate_core::apis::ApiId;
use tollgate_core::apis::detail;
use tollgate_core::applications::plan_change::{self, PlanChangeOutcome, PlanChoice};
use tollgate_core::applications::{self, ApplicationId, ApplicationState, ApplicationView, NewApplication};
use tollgate_core::audit::Actor;
use tollgate_core::credentials::{self, CredentialView, key_limit};
use tollgate_core::db::PgPool;
use tollgate_core::plans::{self, PlanId, PlanOption, subscribable};
use tollgate_web::{
    Chrome, CookiePolicy, CsrfForm, EmptyForm, FieldErrors, GatewayUrl, PageResult, PublicUrl, Session, SignedInUser,
    parse_id, render, see_other,
};
use uuid::Uuid;

use crate::account::account_of;
use crate::calling::CallGuide;
use crate::new_key;

#[derive(Template)]
#[template(path = "portal/apps.html")]
struct ListPage {
    chrome: Chrome,
    apps: Vec<ApplicationView>,
}

pub async fn list(
    SignedInUser(user): SignedInUser,
    session: Session,
    pool: web::Data<PgPool>,
) -> PageResult<HttpResponse> {
    let apps = applications::list_for_account(&pool, account_of(&user)?).await?;
    let chrome = Chrome::for_session(&session).await?;
    Ok(render(StatusCode::OK, &ListPage { chrome, apps }))
}

#[derive(Template)]
#[template(path = "portal/app_new.html")]
struct NewPage {
    chrome: Chrome,
    plans: Vec<PlanOption>,
    name: String,
    description: String,
    plan_id: String,
    errors: FieldErrors,
}

#[derive(serde::Deserialize)]
pub struct NewQuery {
    plan: Option<String>,
}

pub async fn new_form(
    SignedInUser(user): SignedInUser,
    session: Session,
    pool: web::Data<PgPool>,
    query: web::Query<NewQuery>,
) -> PageResult<HttpResponse> {
    let chrome = Chrome::for_session(&session).await?;
    let plans = subscribable(&pool, account_of(&user)?).await?;
    let plan_id = query.into_inner().plan.unwrap_or_default();
    Ok(render(
        StatusCode::OK,
        &NewPage {
            chrome,
            plans,
            name: String::new(),
            description: String::new(),
            plan_id,
            errors: FieldErrors::new(),
        },
    ))
}

#[derive(serde::Deserialize)]
pub struct AppForm {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    plan_id: String,
}

/// Registers the app and, when it is live at once, issues its first key.
pub async fn create(
    SignedInUser(user): SignedInUser,
    session: Session,
    pool: web::Data<PgPool>,
    policy: web::Data<CookiePolicy>,
    public_url: web::Data<PublicUrl>,
    CsrfForm(form): CsrfForm<AppForm>,
) -> PageResult<HttpResponse> {
    let account = account_of(&user)?;
    let mut errors = FieldErrors::new();
    let plan_id = Uuid::parse_str(&form.plan_id).ok().map(PlanId);
    let outcome = match plan_id {
        None => {
            // Said together with what is wrong with the rest of the form.
            if let Err(err) = applications::check_details(&form.name, &form.description) {
                errors.absorb(err)?;
            }
            Err(tollgate_core::Error::invalid("plan_id", "choose a plan"))
        }
        Some(plan_id) => {
            let new = NewApplication { plan_id, name: form.name.clone(), description: form.description.clone() };
            applications::create_telling_admins(&pool, account, &new, &Actor::from(&user), Some(&public_url.0)).await
        }
    };
    let app = match errors.note(outcome, "name")? {
        Some(app) => app,
        None => {
            let chrome = Chrome::for_session(&session).await?;
            let plans = subscribable(&pool, account).await?;
            let page = NewPage {
                chrome,
                plans,
                name: form.name,
                description: form.description,
                plan_id: form.plan_id,
                errors,
            };
            return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page));
        }
    };
    let key = match app.state {
        ApplicationState::Live => Some(credentials::issue(&pool, account, app.id, &Actor::from(&user)).await?.secret),
        _ => None,
    };
    Ok(new_key::redirect_to_app(app.id, key.as_ref(), policy.secure))
}

#[derive(Template)]
#[template(path = "portal/app.html")]
struct ShowPage {
    chrome: Chrome,
    app: ApplicationView,
    keys: Vec<(CredentialView, &'static str)>,
    new_key: Option<NewKey>,
    can_add_key: bool,
    /// A key just revoked, for the message at the top: `prefix…last4`.
    revoked: Option<String>,
    /// The plans the application may move to; empty when it cannot change plan.
    plan_choices: Vec<PlanOffer>,
    /// What the last plan change did, for the message at the top.
    plan_notice: Option<(&'static str, String)>,
    /// The details form: what was typed, and what was wrong with it.
    details: Details,
}

/// The details form's values and problems: the application's own until a submission fails.
struct Details {
    name: String,
    description: String,
    errors: FieldErrors,
}

/// A plan the application may move to, in words.
struct PlanOffer {
    id: uuid::Uuid,
    label: String,
}

/// "Pro: 49.00 USD/month + 10.00 USD setup, 14-day trial, usage priced (upgrade; needs the
/// provider's approval)".
fn offer(choice: &PlanChoice, current: Option<&plans::PlanDetail>) -> PlanOffer {
    let mut label = format!("{}: {}", choice.name, choice.charges.summary());
    let mut notes = Vec::new();
    // Fees in different currencies are not compared.
    if let Some(current) = current.filter(|c| c.currency.trim() == choice.charges.currency.trim()) {
        match choice.charges.monthly_fee.cmp(&current.monthly_fee) {
            std::cmp::Ordering::Greater => notes.push("upgrade"),
            std::cmp::Ordering::Less => notes.push("downgrade"),
            std::cmp::Ordering::Equal => {}
        }
    }
    if choice.approval_required {
        notes.push("needs the provider's approval");
    }
    if !notes.is_empty() {
        label.push_str(&format!(" ({})", notes.join("; ")));
    }
    PlanOffer { id: choice.plan_id.0, label }
}

/// The plans a live or suspended application may move to.
async fn offers(
    pool: &PgPool,
    account: tollgate_core::accounts::AccountId,
    app: &ApplicationView,
) -> PageResult<Vec<PlanOffer>> {
    if !matches!(app.state, ApplicationState::Live | ApplicationState::Suspended) {
        return Ok(Vec::new());
    }
    let choices = plan_change::choices(pool, account, app.id).await?;
    if choices.is_empty() {
        return Ok(Vec::new());
    }
    let current = plans::get_plan(pool, app.plan_id).await.ok();
    Ok(choices.iter().map(|c| offer(c, current.as_ref())).collect())
}

/// A key just issued, with how to call the API with it.
struct NewKey {
    secret: String,
    /// Where the credentials go, in words.
    placement: String,
    /// A curl command with this key, at the gateway and the API's base path.
    example: String,
}

#[derive(serde::Deserialize)]
pub struct ShowQuery {
    /// A key the developer just revoked.
    revoked: Option<String>,
    /// `changed` or `requested`: what a plan change just did.
    plan: Option<String>,
}

/// The app, its keys by prefix and last four, and, once, a key just issued.
pub async fn show(
    req: HttpRequest,
    SignedInUser(user): SignedInUser,
    session: Session,
    pool: web::Data<PgPool>,
    gateway: web::Data<GatewayUrl>,
    path: web::Path<String>,
    query: web::Query<ShowQuery>,
) -> PageResult<HttpResponse> {
    let id = ApplicationId(parse_id(&path)?);
    page(&req, &user, &session, &pool, &gateway, id, query.into_inner(), None).await
}

/// The application's page; with `details`, its details form as submitted, refused (422).
#[allow(clippy::too_many_arguments)]
async fn page(
    req: &HttpRequest,
    user: &UserSummary,
    session: &Session,
    pool: &PgPool,
    gateway: &GatewayUrl,
    id: ApplicationId,
    query: ShowQuery,
    details: Option<Details>,
) -> PageResult<HttpResponse> {
    let account = account_of(user)?;
    let app = applications::get(pool, account, id).await?;
    let keys = credentials::list(pool, account, app.id).await?;
    let new_key = match new_key::carried(req, &keys) {
        Some(secret) => {
            let guide = CallGuide::new(&gateway.0, &detail::get(pool, ApiId(app.api_id)).await?);
            Some(NewKey {
                example: guide.curl("GET", "/…", &secret, app.app_id.as_deref()),
                placement: guide.where_credentials_go(),
                secret,
            })
        }
        None => None,
    };
    let plan_notice = match query.plan.as_deref() {
        Some("changed") => {
            Some(("success", format!("The application is on the {} plan now, with its limits.", app.plan_name)))
        }
        Some("requested") => app.requested_plan_name.as_ref().map(|name| {
            ("warning", format!("Your request to move to the {name} plan is waiting for the provider's approval."))
        }),
        _ => None,
    };
    let revoked = query
        .revoked
        .and_then(|id| keys.iter().find(|k| k.id.0.to_string() == id && k.revoked_at.is_some()))
        .map(|k| format!("{}…{}", k.prefix, k.last4));
    let now = OffsetDateTime::now_utc();
    let active = keys.iter().filter(|k| matches!(k.status(now), "active" | "expiring")).count() as i64;
    let can_add_key = app.state != ApplicationState::Rejected && active < key_limit(app.auth_mode);
    let keys = keys
        .into_iter()
        .map(|k| {
            let status = k.status(now);
            (k, status)
        })
        .collect();
    let plan_choices = offers(pool, account, &app).await?;
    let chrome = Chrome::for_session(session).await?;
    let status = if details.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    let details = details.unwrap_or_else(|| Details {
        name: app.name.clone(),
        description: app.description.clone(),
        errors: FieldErrors::new(),
    });
    let page = ShowPage { chrome, app, keys, new_key, can_add_key, revoked, plan_choices, plan_notice, details };
    let mut response = render(status, &page);
    new_key::forget(req, id, &mut response);
    Ok(response)
}

/// Saves the details form; a refused one comes back on the application's page with what was
/// typed, each problem beside its field.
pub async fn update(
    req: HttpRequest,
    SignedInUser(user): SignedInUser,
    session: Session,
    pool: web::Data<PgPool>,
    gateway: web::Data<GatewayUrl>,
    path: web::Path<String>,
    CsrfForm(form): CsrfForm<AppForm>,
) -> PageResult<HttpResponse> {
    let account = account_of(&user)?;
    let id = ApplicationId(parse_id(&path)?);
    let mut errors = FieldErrors::new();
    let saved = applications::update(&pool, account, id, &form.name, &form.description, &Actor::from(&user)).await;
    if errors.note(saved, "name")?.is_some() {
        return Ok(see_other(new_key::app_page(id)));
    }
    let details = Details { name: form.name, description: form.description, errors };
    let query = ShowQuery { revoked: None, plan: None };
    page(&req, &user, &session, &pool, &gateway, id, query, Some(details)).await
}

#[derive(Template)]
#[template(path = "portal/app_delete.html")]
struct ConfirmDeletePage {
    chrome: Chrome,
    app: ApplicationView,
}

/// Asks before deleting: which application, and what goes with it.
pub async fn confirm_delete(
    SignedInUser(user): SignedInUser,
    session: Session,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
) -> PageResult<HttpResponse> {
    let app = applications::get(&pool, account_of(&user)?, ApplicationId(parse_id(&path)?)).await?;
    let chrome = Chrome::for_session(&session).await?;
    Ok(render(StatusCode::OK, &ConfirmDeletePage { chrome, app }))
}

/// Deletes the application and says so on the list of applications.
pub async fn delete(
    SignedInUser(user): SignedInUser,
    session: Session,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    _form: CsrfForm<EmptyForm>,
) -> PageResult<HttpResponse> {
    let account = account_of(&user)?;
    let app = applications::get(&pool, account, ApplicationId(parse_id(&path)?)).await?;
    applications::delete(&pool, account, app.id, &Actor::from(&user)).await?;
    session.flash("success", &format!("The application {} is deleted; its keys no longer work.", app.name)).await?;
    Ok(see_other("/apps"))
}

#[derive(serde::Deserialize)]
pub struct PlanForm {
    #[serde(default)]
    plan_id: String,
}

/// Moves the application to another plan at once, or asks for the move when
/// the plan needs approval; the application's page says which.
pub async fn change_plan(
    SignedInUser(user): SignedInUser,
    pool: web::Data<PgPool>,
    public_url: web::Data<PublicUrl>,
    path: web::Path<String>,
    CsrfForm(form): CsrfForm<PlanForm>,
) -> PageResult<HttpResponse> {
    let account = account_of(&user)?;
    let id = ApplicationId(parse_id(&path)?);
    let plan = Uuid::parse_str(form.plan_id.trim())
        .map(PlanId)
        .map_err(|_| tollgate_core::Error::invalid("plan_id", "choose a plan"))?;
    let outcome = plan_change::request(&pool, account, id, plan, &Actor::from(&user), &public_url.0).await?;
    let what = match outcome {
        PlanChangeOutcome::Changed => "changed",
        PlanChangeOutcome::Requested => "requested",
    };
    Ok(see_other(format!("{}?plan={what}", new_key::app_page(id))))
}

/// Withdraws a plan change that is waiting for approval.
pub async fn withdraw_plan_request(
    SignedInUser(user): SignedInUser,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    _form: CsrfForm<EmptyForm>,
) -> PageResult<HttpResponse> {
    let account = account_of(&user)?;
    let id = ApplicationId(parse_id(&path)?);
    plan_change::withdraw(&pool, account, id, &Actor::from(&user)).await?;
    Ok(see_other(new_key::app_page(id)))
}
