//! Forgotten passwords: asking for a reset link and choosing a new password with it.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use tollgate_core::accounts::flows::{self, MailRequest};
use tollgate_core::accounts::{MailLimits, Password, PasswordHasher};
use tollgate_core::db::PgPool;
use tollgate_core::sessions::SessionStore;
use tollgate_web::{
    Chrome, ClientIp, CookiePolicy, CsrfForm, FieldErrors, PageResult, PublicUrl, Session, render, see_other,
};

use crate::dev_mail::DevMailViewer;
use crate::message::{TokenQuery, check_your_email, dead_link, plausible};

#[derive(Template)]
#[template(path = "portal/forgot.html")]
struct ForgotPage {
    chrome: Chrome,
    email: String,
    errors: FieldErrors,
}

#[derive(Template)]
#[template(path = "portal/reset.html")]
struct ResetPage {
    chrome: Chrome,
    token: String,
    errors: FieldErrors,
}

pub async fn forgot_form(session: Session) -> PageResult<HttpResponse> {
    let chrome = Chrome::for_session(&session).await?;
    Ok(render(StatusCode::OK, &ForgotPage { chrome, email: String::new(), errors: FieldErrors::new() }))
}

#[derive(serde::Deserialize)]
pub struct ForgotForm {
    email: String,
}

pub async fn forgot(
    session: Session,
    pool: web::Data<PgPool>,
    public_url: web::Data<PublicUrl>,
    limits: web::Data<MailLimits>,
    ClientIp(client): ClientIp,
    CsrfForm(form): CsrfForm<ForgotForm>,
    dev_mail: Option<web::Data<DevMailViewer>>,
) -> PageResult<HttpResponse> {
    // An address that cannot be one is said at once; any real address gets the same answer.
    if let Err(err) = tollgate_core::accounts::Email::parse(&form.email) {
        let mut errors = FieldErrors::new();
        errors.absorb(err)?;
        let page = ForgotPage { chrome: Chrome::for_session(&session).await?, email: form.email, errors };
        return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page));
    }
    let request = MailRequest { client: &client, limits: &limits };
    flows::request_password_reset(&pool, &request, &form.email, &public_url.0).await?;
    let text = format!(
        "If that address has an account, a link to choose a new password is on its way. It expires in 1 hour. {}",
        crate::message::one_mail_per(&limits)
    );
    Ok(check_your_email(Chrome::for_session(&session).await?, &text, None, dev_mail))
}

fn dead_reset_link(chrome: Chrome) -> HttpResponse {
    dead_link(
        chrome,
        "This link no longer works",
        "Password reset links work once and expire after 1 hour.",
        Some(("/password/forgot", "Ask for a new link")),
    )
}

pub async fn reset_form(
    session: Session,
    pool: web::Data<PgPool>,
    query: web::Query<TokenQuery>,
) -> PageResult<HttpResponse> {
    let chrome = Chrome::for_session(&session).await?;
    let token = query.into_inner().token();
    if !plausible(&token) || !flows::reset_is_live(&pool, &token).await? {
        return Ok(dead_reset_link(chrome));
    }
    Ok(render(StatusCode::OK, &ResetPage { chrome, token, errors: FieldErrors::new() }))
}

#[derive(serde::Deserialize)]
pub struct ResetForm {
    token: String,
    password: String,
    end_other_sessions: Option<String>,
}

#[allow(clippy::too_many_arguments)]
pub async fn reset(
    req: HttpRequest,
    policy: web::Data<CookiePolicy>,
    session: Session,
    pool: web::Data<PgPool>,
    hasher: web::Data<PasswordHasher>,
    sessions: web::Data<SessionStore>,
    CsrfForm(form): CsrfForm<ResetForm>,
) -> PageResult<HttpResponse> {
    let chrome = Chrome::for_session(&session).await?;
    let password = match Password::parse(&form.password) {
        Ok(p) => p,
        Err(err) => {
            let mut errors = FieldErrors::new();
            errors.absorb(err)?;
            return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &ResetPage { chrome, token: form.token, errors }));
        }
    };
    if !plausible(&form.token) {
        return Ok(dead_reset_link(chrome));
    }
    match flows::reset_password(&pool, &hasher, &form.token, &password).await? {
        Some(user) => {
            if form.end_other_sessions.is_some() {
                sessions.destroy_all_for_user(user, session.id_hash().as_deref()).await?;
            }
            // The link proved the mailbox: this browser signs in even from a network whose
            // failures are spent.
            let mut response = see_other("/login?reset=1");
            super::device::remember(&pool, user, &req, policy.secure, &mut response).await?;
            Ok(response)
        }
        None => Ok(dead_reset_link(chrome)),
    }
}
