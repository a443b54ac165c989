//! Verifying an email address from the link in the sign-up mail, and asking for a new link.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use tollgate_core::accounts::flows;
use tollgate_core::db::PgPool;
use tollgate_web::{Chrome, CsrfForm, PageResult, PublicUrl, Session, render, see_other};

use super::MessagePage;

#[derive(Template)]
#[template(path = "portal/verify.html")]
struct ConfirmPage {
    chrome: Chrome,
    token: String,
}

#[derive(Template)]
#[template(path = "portal/resend.html")]
struct ResendPage {
    chrome: Chrome,
}

#[derive(serde::Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

fn dead_link(chrome: Chrome) -> HttpResponse {
    let page = MessagePage {
        chrome,
        title: "This link no longer works".into(),
        text: "Verification links work once and expire after 24 hours. Ask for a new one.".into(),
        link: Some(("/verify/resend".into(), "Send a new verification link".into())),
    };
    render(StatusCode::GONE, &page)
}

/// Opening the link only shows a button: nothing changes on GET, so mail
/// scanners that prefetch links cannot use the token up.
pub async fn confirm(
    session: Session,
    pool: web::Data<PgPool>,
    query: web::Query<TokenQuery>,
) -> PageResult<HttpResponse> {
    let chrome = Chrome::for_session(&session).await?;
    let token = query.into_inner().token.unwrap_or_default();
    if token.is_empty() || token.len() > 128 || !flows::verification_is_live(&pool, &token).await? {
        return Ok(dead_link(chrome));
    }
    Ok(render(StatusCode::OK, &ConfirmPage { chrome, token }))
}

#[derive(serde::Deserialize)]
pub struct VerifyForm {
    token: String,
}

pub async fn submit(
    session: Session,
    pool: web::Data<PgPool>,
    CsrfForm(form): CsrfForm<VerifyForm>,
) -> PageResult<HttpResponse> {
    if form.token.len() <= 128 && flows::verify_email(&pool, &form.token).await? {
        return Ok(see_other("/login?verified=1"));
    }
    Ok(dead_link(Chrome::for_session(&session).await?))
}

pub async fn resend_form(session: Session) -> PageResult<HttpResponse> {
    Ok(render(StatusCode::OK, &ResendPage { chrome: Chrome::for_session(&session).await? }))
}

#[derive(serde::Deserialize)]
pub struct ResendForm {
    email: String,
}

pub async fn resend(
    session: Session,
    pool: web::Data<PgPool>,
    public_url: web::Data<PublicUrl>,
    CsrfForm(form): CsrfForm<ResendForm>,
) -> PageResult<HttpResponse> {
    flows::resend_verification(&pool, &form.email, &public_url.0).await?;
    let page = MessagePage {
        chrome: Chrome::for_session(&session).await?,
        title: "Check your email".into(),
        text: "If that address has an account waiting for verification, a new link is on its way. Earlier links no longer work.".into(),
        link: None,
    };
    Ok(render(StatusCode::OK, &page))
}
