//! Deleting one's own account: a page that says what goes, what stays and
//! what must be done first, and the password to confirm it.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use tollgate_core::accounts::{PasswordHasher, UserSummary, deletion};
use tollgate_core::db::PgPool;
use tollgate_web::{Chrome, ClientIp, CsrfForm, FieldErrors, PageResult, PublicUrl, Session, SignedInUser, render};

use crate::message::outcome;

#[derive(Template)]
#[template(path = "portal/profile_delete.html")]
struct DeletePage {
    chrome: Chrome,
    email: String,
    /// What must be done first, as sentences; the form shows only when empty.
    blockers: Vec<String>,
    errors: FieldErrors,
}

/// The page, listing what blocks the deletion now; `refusal` is why a deletion was just
/// refused, shown when the list no longer says it.
async fn page(
    status: StatusCode,
    session: &Session,
    pool: &PgPool,
    user: &UserSummary,
    errors: FieldErrors,
    refusal: Option<String>,
) -> PageResult<HttpResponse> {
    let blockers: Vec<String> = deletion::blockers(pool, user.id).await?.iter().map(ToString::to_string).collect();
    let mut chrome = Chrome::for_session(session).await?;
    if let Some(refusal) = refusal.filter(|_| blockers.is_empty()) {
        chrome = chrome.with_flash("error", format!("Not deleted: {refusal}. Try again."));
    }
    Ok(render(status, &DeletePage { chrome, email: user.email.clone(), blockers, errors }))
}

pub async fn show_delete(
    SignedInUser(user): SignedInUser,
    session: Session,
    pool: web::Data<PgPool>,
) -> PageResult<HttpResponse> {
    page(StatusCode::OK, &session, &pool, &user, FieldErrors::new(), None).await
}

#[derive(serde::Deserialize)]
pub struct DeleteForm {
    current_password: String,
}

/// Deletes the signed-in user, then signs the browser out.
pub async fn delete_account(
    SignedInUser(user): SignedInUser,
    session: Session,
    pool: web::Data<PgPool>,
    hasher: web::Data<PasswordHasher>,
    public_url: web::Data<PublicUrl>,
    ClientIp(client): ClientIp,
    CsrfForm(form): CsrfForm<DeleteForm>,
) -> PageResult<HttpResponse> {
    let mut errors = FieldErrors::new();
    let mut refusal = None;
    let status = match deletion::delete(&pool, &hasher, user.id, &form.current_password, &client, &public_url.0).await {
        Ok(deleted) => {
            session.sign_out().await?;
            let chrome = Chrome::for_session(&session).await?;
            let text = format!(
                "You can no longer sign in as {}, and every session and emailed link of yours has ended. We sent a \
                 last message to the address.",
                deleted.email
            );
            return Ok(outcome(StatusCode::OK, chrome, "Your account is deleted", &text, Some(("/", "Home"))));
        }
        // Something came to block it since the page was shown: the page lists it now.
        Err(tollgate_core::Error::Conflict(message)) => {
            refusal = Some(message);
            StatusCode::CONFLICT
        }
        Err(err) => {
            errors.absorb(err)?;
            StatusCode::UNPROCESSABLE_ENTITY
        }
    };
    page(status, &session, &pool, &user, errors, refusal).await
}
