//! Applications of the signed-in user's account.

use actix_web::cookie::Cookie;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use time::OffsetDateTime;
use tollgate_core::accounts::{AccountId, UserSummary};
use tollgate_core::applications::{self, ApplicationId, ApplicationView, NewApplication};
use tollgate_core::audit::Actor;
use tollgate_core::credentials::{self, CredentialView};
use tollgate_core::db::PgPool;
use tollgate_core::plans::{PlanId, PlanOption, subscribable};
use tollgate_core::web::{Chrome, CookiePolicy, CsrfForm, FieldErrors, Session, SignedInUser, render};
use tollgate_protocol::SecretKey;
use uuid::Uuid;

use crate::error::{PortalError, PortalResult};
use crate::keys::NEW_KEY_COOKIE;

pub(crate) fn account_of(user: &UserSummary) -> PortalResult<AccountId> {
    user.account_id.ok_or(PortalError(tollgate_core::Error::NotFound))
}

pub(crate) fn actor(user: &UserSummary) -> Actor {
    Actor::user(user.id, &user.email)
}

/// Path ids that are not UUIDs are simply not found.
pub(crate) fn parse_id(raw: &str) -> PortalResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| PortalError(tollgate_core::Error::NotFound))
}

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
) -> PortalResult<HttpResponse> {
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
    _user: SignedInUser,
    session: Session,
    pool: web::Data<PgPool>,
    query: web::Query<NewQuery>,
) -> PortalResult<HttpResponse> {
    let chrome = Chrome::for_session(&session).await?;
    let plans = subscribable(&pool).await?;
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
    CsrfForm(form): CsrfForm<AppForm>,
) -> PortalResult<HttpResponse> {
    let account = account_of(&user)?;
    let mut errors = FieldErrors::new();
    let plan_id = Uuid::parse_str(&form.plan_id).ok().map(PlanId);
    let outcome = match plan_id {
        None => Err(tollgate_core::Error::invalid("plan_id", "choose a plan")),
        Some(plan_id) => {
            let new = NewApplication { plan_id, name: form.name.clone(), description: form.description.clone() };
            applications::create(&pool, account, &new, &actor(&user)).await
        }
    };
    let app = match outcome {
        Ok(app) => app,
        Err(err) => {
            if let tollgate_core::Error::Conflict(message) = err {
                errors.add("name", message);
            } else {
                errors.absorb(err)?;
            }
            let chrome = Chrome::for_session(&session).await?;
            let plans = subscribable(&pool).await?;
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
    let location = format!("/apps/{}", app.id.0);
    let mut response = HttpResponse::SeeOther();
    response.insert_header((header::LOCATION, location.clone()));
    if app.state == "live" {
        let key = credentials::issue(&pool, account, app.id, &actor(&user)).await?;
        let mut cookie = crate::keys::new_key_cookie(&location, key.secret.as_str());
        cookie.set_secure(policy.secure);
        response.cookie(cookie);
    }
    Ok(response.finish())
}

#[derive(Template)]
#[template(path = "portal/app.html")]
struct ShowPage {
    chrome: Chrome,
    app: ApplicationView,
    keys: Vec<(CredentialView, &'static str)>,
    new_key: Option<String>,
    can_add_key: bool,
}

/// The app, its keys by prefix and last four, and, once, a key just issued.
pub async fn show(
    req: HttpRequest,
    SignedInUser(user): SignedInUser,
    session: Session,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
) -> PortalResult<HttpResponse> {
    let account = account_of(&user)?;
    let app = applications::get(&pool, account, ApplicationId(parse_id(&path)?)).await?;
    let keys = credentials::list(&pool, account, app.id).await?;
    let location = format!("/apps/{}", app.id.0);
    // The key travels in a one-time cookie scoped to this page, never in the
    // database, and is shown only if it really is a key of this app.
    let new_key = req.cookie(NEW_KEY_COOKIE).map(|c| c.value().to_owned()).filter(|raw| {
        SecretKey::parse(raw).is_ok()
            && keys.iter().any(|k| k.revoked_at.is_none() && raw.starts_with(&k.prefix) && raw.ends_with(&k.last4))
    });
    let now = OffsetDateTime::now_utc();
    let active = keys.iter().filter(|k| matches!(k.status(now), "active" | "expiring")).count();
    let can_add_key =
        app.state != "rejected" && (if app.auth_mode == "app_id_app_key" { active < 5 } else { active == 0 });
    let keys = keys
        .into_iter()
        .map(|k| {
            let status = k.status(now);
            (k, status)
        })
        .collect();
    let chrome = Chrome::for_session(&session).await?;
    let mut response = render(StatusCode::OK, &ShowPage { chrome, app, keys, new_key, can_add_key });
    if req.cookie(NEW_KEY_COOKIE).is_some() {
        let mut gone = Cookie::build(NEW_KEY_COOKIE, "").path(location).http_only(true).finish();
        gone.make_removal();
        let _ = response.add_cookie(&gone);
    }
    Ok(response)
}

pub async fn update(
    SignedInUser(user): SignedInUser,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    CsrfForm(form): CsrfForm<AppForm>,
) -> PortalResult<HttpResponse> {
    let account = account_of(&user)?;
    let id = ApplicationId(parse_id(&path)?);
    applications::update(&pool, account, id, &form.name, &form.description, &actor(&user)).await?;
    Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, format!("/apps/{}", id.0))).finish())
}

#[derive(serde::Deserialize)]
pub struct EmptyForm {}

pub async fn delete(
    SignedInUser(user): SignedInUser,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    _form: CsrfForm<EmptyForm>,
) -> PortalResult<HttpResponse> {
    let account = account_of(&user)?;
    applications::delete(&pool, account, ApplicationId(parse_id(&path)?), &actor(&user)).await?;
    Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, "/apps")).finish())
}
