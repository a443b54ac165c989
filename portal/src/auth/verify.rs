//! Verifying an email address from the link in the sign-up mail, and asking for a new link.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use tollgate_core::accounts::MailLimits;
use tollgate_core::accounts::flows::{self, MailRequest};
use tollgate_core::db::PgPool;
use tollgate_web::{Chrome, ClientIp, CsrfForm, PageResult, PublicUrl, Session, render, see_other};

use crate::dev_mail::DevMailViewer;
use crate::message::{TokenQuery, check_your_email, dead_link, plausible};

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

fn dead_verification_link(chrome: Chrome) -> HttpResponse {
    dead_link(
        chrome,
        "This link no longer works",
        "Verification links work once and expire after 24 hours. Ask for a new one.",
        Some(("/verify/resend", "Send a new verification link")),
    )
}

/// Opening the link only shows a button: nothing changes on GET, so mail
/// scanners that prefetch links cannot use the token up.
pub async fn confirm(
    session: Session,
    pool: web::Data<PgPool>,
    query: web::Query<TokenQuery>,
) -> PageResult<HttpResponse> {
    let chrome = Chrome::for_session(&session).await?;
    let token = query.into_inner().token();
    if !plausible(&token) || !flows::verification_is_live(&pool, &token).await? {
        return Ok(dead_verification_link(chrome));
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
    if plausible(&form.token) && flows::verify_email(&pool, &form.token).await? {
        return Ok(see_other("/login?verified=1"));
    }
    Ok(dead_verification_link(Chrome::for_session(&session).await?))
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
    limits: web::Data<MailLimits>,
    ClientIp(client): ClientIp,
    CsrfForm(form): CsrfForm<ResendForm>,
    dev_mail: Option<web::Data<DevMailViewer>>,
) -> PageResult<HttpResponse> {
    let request = MailRequest { client: &client, limits: &limits };
    flows::resend_verification(&pool, &request, &form.email, &public_url.0).await?;
    let text = format!(
        "If that address has an account waiting for verification, a new link is on its way. Earlier links no longer work. {}",
        crate::message::one_mail_per(&limits)
    );
    Ok(check_your_email(Chrome::for_session(&session).await?, &text, None, dev_mail))
}
