//! Signing up a developer organisation; known and unknown emails get the same page.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use tollgate_core::accounts::flows::{MailRequest, SignUp, sign_up};
use tollgate_core::accounts::{MailLimits, PasswordHasher};
use tollgate_core::db::PgPool;
use tollgate_web::{Chrome, ClientIp, CsrfForm, FieldErrors, PageResult, PublicUrl, Session, render};

use crate::dev_mail::DevMailViewer;
use crate::message::check_your_email;

#[derive(Template)]
#[template(path = "portal/signup.html")]
struct SignUpPage {
    chrome: Chrome,
    organisation: String,
    email: String,
    errors: FieldErrors,
}

pub async fn form(session: Session) -> PageResult<HttpResponse> {
    let chrome = Chrome::for_session(&session).await?;
    Ok(render(
        StatusCode::OK,
        &SignUpPage { chrome, organisation: String::new(), email: String::new(), errors: FieldErrors::new() },
    ))
}

#[derive(serde::Deserialize)]
pub struct SignUpForm {
    organisation: String,
    email: String,
    password: String,
}

/// Known and unknown emails get the same page; the mailbox learns which.
// An actix handler takes each input as an extractor.
#[allow(clippy::too_many_arguments)]
pub async fn submit(
    session: Session,
    pool: web::Data<PgPool>,
    hasher: web::Data<PasswordHasher>,
    public_url: web::Data<PublicUrl>,
    limits: web::Data<MailLimits>,
    ClientIp(client): ClientIp,
    CsrfForm(form): CsrfForm<SignUpForm>,
    dev_mail: Option<web::Data<DevMailViewer>>,
) -> PageResult<HttpResponse> {
    let chrome = Chrome::for_session(&session).await?;
    match SignUp::parse(&form.organisation, &form.email, &form.password) {
        Err(problems) => {
            let page =
                SignUpPage { chrome, organisation: form.organisation, email: form.email, errors: problems.into() };
            Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Ok(input) => {
            sign_up(&pool, &hasher, &MailRequest { client: &client, limits: &limits }, &input, &public_url.0).await?;
            let text = format!(
                "We sent a message to {}. Follow the link in it to verify your address, then sign in. The link expires in 24 hours. {}",
                input.email,
                crate::message::one_mail_per(&limits)
            );
            Ok(check_your_email(chrome, &text, Some(("/verify/resend", "Didn't get it? Send it again")), dev_mail))
        }
    }
}
