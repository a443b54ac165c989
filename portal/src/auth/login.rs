//! Signing in with email and password; the answer is the same for a wrong
//! password, an unknown email and a paused account.

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderValue, RETRY_AFTER};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use tollgate_core::accounts::{PasswordHasher, SignInOutcome, authenticate};
use tollgate_core::db::PgPool;
use tollgate_core::identity::Providers;
use tollgate_web::{Chrome, ClientIp, CookiePolicy, CsrfForm, LocalPath, PageResult, Session, render, see_other};

use super::device;

#[derive(Template)]
#[template(path = "portal/login.html")]
struct LoginPage {
    chrome: Chrome,
    providers: Vec<(String, String)>,
    email: String,
    next: String,
    error: Option<String>,
}

#[derive(serde::Deserialize)]
pub struct NextQuery {
    next: Option<String>,
    verified: Option<String>,
    reset: Option<String>,
}

/// Only a path of this site is followed after sign-in (see `LocalPath`);
/// anything else is dropped and sign-in goes to the dashboard.
fn safe_next(next: Option<&str>) -> String {
    next.and_then(LocalPath::parse).map(|p| p.as_str().to_owned()).unwrap_or_default()
}

fn provider_buttons(providers: &Providers) -> Vec<(String, String)> {
    providers.list.iter().map(|p| (p.id.clone(), p.name.clone())).collect()
}

pub async fn form(
    session: Session,
    providers: web::Data<Providers>,
    query: web::Query<NextQuery>,
) -> PageResult<HttpResponse> {
    let mut chrome = Chrome::for_session(&session).await?;
    if query.verified.is_some() {
        chrome = chrome.with_flash("success", "Your email is verified. Sign in to continue.");
    } else if query.reset.is_some() {
        chrome = chrome.with_flash("success", "Your password is changed. Sign in with the new one.");
    }
    let page = LoginPage {
        chrome,
        providers: provider_buttons(&providers),
        email: String::new(),
        next: safe_next(query.next.as_deref()),
        error: None,
    };
    Ok(render(StatusCode::OK, &page))
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    next: Option<String>,
}

/// The same words for a wrong password, an unknown email, a paused account and an address
/// not verified yet, so the form cannot be used to learn who has an account. (Whoever signs
/// up with an address sets the password of a new account, but not of one that exists: an
/// answer of its own for "right password, not verified" told the two apart.)
const REJECTED: &str = "That email and password do not match a verified account, or sign-in is paused after repeated failures. Check them and try again in a minute, or reset your password. Just signed up? Follow the link we emailed you first, or ask for a new one on the \"Resend verification\" page.";

#[allow(clippy::too_many_arguments)]
pub async fn submit(
    req: HttpRequest,
    session: Session,
    pool: web::Data<PgPool>,
    hasher: web::Data<PasswordHasher>,
    providers: web::Data<Providers>,
    policy: web::Data<CookiePolicy>,
    ClientIp(client): ClientIp,
    CsrfForm(form): CsrfForm<LoginForm>,
) -> PageResult<HttpResponse> {
    let next = safe_next(form.next.as_deref());
    let device = device::of(&req);
    let outcome = authenticate(&pool, &hasher, &form.email, &form.password, &client, device.as_deref()).await?;
    let (status, error) = match outcome {
        SignInOutcome::SignedIn(user) if !user.email_verified && !user.is_admin => (StatusCode::UNAUTHORIZED, REJECTED),
        SignInOutcome::SignedIn(user) => {
            let default = if user.is_admin { "/admin" } else { "/dashboard" };
            let id = user.id;
            session.sign_in(user).await?;
            let target = if next.is_empty() { default.to_owned() } else { next };
            let mut response = see_other(target);
            device::remember(&pool, id, &req, policy.secure, &mut response).await?;
            return Ok(response);
        }
        SignInOutcome::Rejected | SignInOutcome::Throttled { .. } => (StatusCode::UNAUTHORIZED, REJECTED),
        SignInOutcome::ClientPaused { retry_after } => {
            let seconds = retry_after.whole_seconds().max(1);
            let minutes = tollgate_core::minutes(u64::try_from(seconds).unwrap_or(0));
            let page = LoginPage {
                chrome: Chrome::for_session(&session).await?,
                providers: provider_buttons(&providers),
                email: form.email,
                next,
                error: Some(format!(
                    "Too many failed sign-ins came from your network this hour. Try again in {minutes}, or reset your password."
                )),
            };
            let mut answer = render(StatusCode::TOO_MANY_REQUESTS, &page);
            answer.headers_mut().insert(RETRY_AFTER, HeaderValue::from(seconds));
            return Ok(answer);
        }
    };
    let page = LoginPage {
        chrome: Chrome::for_session(&session).await?,
        providers: provider_buttons(&providers),
        email: form.email,
        next,
        error: Some(error.to_owned()),
    };
    Ok(render(status, &page))
}
