//! Changing the email address: the form on the profile page, and the link
//! mailed to the new address that makes the change.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use tollgate_core::accounts::email_change::{self, Confirmed};
use tollgate_core::accounts::flows::MailRequest;
use tollgate_core::accounts::{Email, MailLimits, PasswordHasher};
use tollgate_core::db::PgPool;
use tollgate_web::{Chrome, ClientIp, CsrfForm, FieldErrors, PageResult, PublicUrl, Session, SignedInUser, render};

use super::ProfilePage;
use crate::dev_mail::DevMailViewer;
use crate::message::{TokenQuery, check_your_email, dead_link, outcome, plausible};

#[derive(serde::Deserialize)]
pub struct EmailForm {
    new_email: String,
    email_password: String,
}

/// The form's own field names: the profile page has two password fields.
fn form_field(core_field: &str) -> &str {
    match core_field {
        "email" => "new_email",
        "current_password" => "email_password",
        other => other,
    }
}

/// Mails a link to the new address. The answer is the same whether or not
/// that address has an account; its mailbox is told which.
#[allow(clippy::too_many_arguments)]
pub async fn request_email_change(
    SignedInUser(user): SignedInUser,
    session: Session,
    pool: web::Data<PgPool>,
    hasher: web::Data<PasswordHasher>,
    public_url: web::Data<PublicUrl>,
    limits: web::Data<MailLimits>,
    ClientIp(client): ClientIp,
    CsrfForm(form): CsrfForm<EmailForm>,
    dev_mail: Option<web::Data<DevMailViewer>>,
) -> PageResult<HttpResponse> {
    let mail = MailRequest { client: &client, limits: &limits };
    let result = match Email::parse(&form.new_email) {
        Ok(new) => email_change::request(&pool, &hasher, &mail, user.id, &form.email_password, &new, &public_url.0)
            .await
            .map(|()| new),
        Err(err) => Err(err),
    };
    let mut errors = FieldErrors::new();
    let status = match result {
        Ok(new) => {
            let text = format!(
                "We sent a link to {new}. Your email stays {} until you follow it; the link works once, within 24 \
                 hours. We also told your current address.",
                user.email
            );
            let chrome = Chrome::for_session(&session).await?;
            return Ok(check_your_email(chrome, &text, Some(("/profile", "Back to your profile")), dev_mail));
        }
        Err(tollgate_core::Error::RateLimited { retry_after }) => {
            let minutes = tollgate_core::minutes(retry_after.as_secs());
            errors.add("new_email", format!("we emailed this address a moment ago; try again in {minutes}"));
            StatusCode::TOO_MANY_REQUESTS
        }
        Err(tollgate_core::Error::Invalid { field, message }) => {
            errors.add(form_field(&field), message);
            StatusCode::UNPROCESSABLE_ENTITY
        }
        Err(other) => return Err(other.into()),
    };
    let chrome = Chrome::for_session(&session).await?;
    let page = ProfilePage { chrome, errors, new_email: form.new_email };
    Ok(render(status, &page))
}

#[derive(Template)]
#[template(path = "portal/email_confirm.html")]
struct ConfirmPage {
    chrome: Chrome,
    token: String,
    address: String,
}

fn dead_change_link(chrome: Chrome) -> HttpResponse {
    dead_link(
        chrome,
        "This link no longer works",
        "Links that confirm a new email work once and expire after 24 hours, and a newer request replaces them. \
         Ask again from your profile.",
        Some(("/profile", "Your profile")),
    )
}

/// Opening the link only shows a button, so mail scanners that prefetch
/// links cannot make the change. It needs no session: the link proves the
/// mailbox, and the password was checked when it was sent.
pub async fn confirm_email_change_form(
    session: Session,
    pool: web::Data<PgPool>,
    query: web::Query<TokenQuery>,
) -> PageResult<HttpResponse> {
    let chrome = Chrome::for_session(&session).await?;
    let token = query.into_inner().token();
    let address = if plausible(&token) { email_change::pending_address(&pool, &token).await? } else { None };
    match address {
        Some(address) => Ok(render(StatusCode::OK, &ConfirmPage { chrome, token, address })),
        None => Ok(dead_change_link(chrome)),
    }
}

#[derive(serde::Deserialize)]
pub struct ConfirmForm {
    token: String,
}

pub async fn confirm_email_change(
    session: Session,
    pool: web::Data<PgPool>,
    public_url: web::Data<PublicUrl>,
    CsrfForm(form): CsrfForm<ConfirmForm>,
) -> PageResult<HttpResponse> {
    let confirmed = if plausible(&form.token) {
        email_change::confirm(&pool, &form.token, &public_url.0).await?
    } else {
        Confirmed::DeadLink
    };
    let chrome = Chrome::for_session(&session).await?;
    let signed_in = session.user_id().is_some();
    let next = if signed_in { ("/profile", "Your profile") } else { ("/login", "Sign in") };
    Ok(match confirmed {
        Confirmed::Changed { address, .. } => outcome(
            StatusCode::OK,
            chrome,
            "Your email is changed",
            &format!("Your account uses {address} now. Sign in with it from now on."),
            Some(next),
        ),
        Confirmed::Taken { address } => outcome(
            StatusCode::CONFLICT,
            chrome,
            "That address is taken",
            &format!(
                "{address} has an account of its own since this link was sent, so your email stays as it was. \
                 Choose another address from your profile."
            ),
            Some(next),
        ),
        Confirmed::DeadLink => dead_change_link(chrome),
    })
}
