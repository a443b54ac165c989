//! The signed-in user's profile: changing the password or the email
//! address, ending other sessions, and deleting the account.

mod delete;
mod email;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use tollgate_core::accounts::{Password, PasswordHasher, flows};
use tollgate_core::db::PgPool;
use tollgate_core::sessions::SessionStore;
use tollgate_web::{Chrome, ClientIp, CsrfForm, EmptyForm, FieldErrors, PageResult, Session, SignedInUser, render};

pub use delete::{delete_account, show_delete};
pub use email::{confirm_email_change, confirm_email_change_form, request_email_change};

#[derive(Template)]
#[template(path = "portal/profile.html")]
struct ProfilePage {
    chrome: Chrome,
    errors: FieldErrors,
    /// What was typed as the new address, kept when the form comes back.
    new_email: String,
}

impl ProfilePage {
    fn new(chrome: Chrome, errors: FieldErrors) -> ProfilePage {
        ProfilePage { chrome, errors, new_email: String::new() }
    }
}

pub async fn show(_user: SignedInUser, session: Session) -> PageResult<HttpResponse> {
    let chrome = Chrome::for_session(&session).await?;
    Ok(render(StatusCode::OK, &ProfilePage::new(chrome, FieldErrors::new())))
}

#[derive(serde::Deserialize)]
pub struct PasswordForm {
    current_password: String,
    new_password: String,
    end_other_sessions: Option<String>,
}

/// Changing the password offers to end every other session, so a stolen
/// session dies with the old password.
pub async fn change_password(
    SignedInUser(user): SignedInUser,
    session: Session,
    pool: web::Data<PgPool>,
    hasher: web::Data<PasswordHasher>,
    sessions: web::Data<SessionStore>,
    ClientIp(client): ClientIp,
    CsrfForm(form): CsrfForm<PasswordForm>,
) -> PageResult<HttpResponse> {
    let mut errors = FieldErrors::new();
    let outcome = match Password::parse(&form.new_password) {
        Ok(new) => flows::change_password(&pool, &hasher, user.id, &form.current_password, &new, &client).await,
        Err(err) => Err(match err {
            tollgate_core::Error::Invalid { message, .. } => tollgate_core::Error::invalid("new_password", message),
            other => other,
        }),
    };
    if let Err(err) = outcome {
        errors.absorb(err)?;
        let chrome = Chrome::for_session(&session).await?;
        return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &ProfilePage::new(chrome, errors)));
    }
    let mut message = "Your password is changed.".to_owned();
    if form.end_other_sessions.is_some() {
        let ended = sessions.destroy_all_for_user(user.id, session.id_hash().as_deref()).await?;
        message.push_str(&format!(" {ended} other session(s) ended."));
    }
    // A privilege-relevant change: continue under a fresh session id.
    session.sign_in(user).await?;
    let chrome = Chrome::for_session(&session).await?.with_flash("success", message);
    Ok(render(StatusCode::OK, &ProfilePage::new(chrome, errors)))
}

pub async fn end_other_sessions(
    SignedInUser(user): SignedInUser,
    session: Session,
    sessions: web::Data<SessionStore>,
    _form: CsrfForm<EmptyForm>,
) -> PageResult<HttpResponse> {
    let ended = sessions.destroy_all_for_user(user.id, session.id_hash().as_deref()).await?;
    let chrome = Chrome::for_session(&session).await?.with_flash("success", format!("{ended} other session(s) ended."));
    Ok(render(StatusCode::OK, &ProfilePage::new(chrome, FieldErrors::new())))
}
