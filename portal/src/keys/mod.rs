//! Issuing, rotating and revoking an application's keys. A new key goes to
//! the application's page once, in the one-time cookie of `new_key`.
//! Revoking cannot be undone, so it asks first, on a page of its own.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use tollgate_core::applications::{self, ApplicationId, ApplicationView};
use tollgate_core::audit::Actor;
use tollgate_core::credentials::{self, CredentialId, CredentialView, DEFAULT_ROTATION_OVERLAP};
use tollgate_core::db::PgPool;
use tollgate_web::{
    Chrome, CookiePolicy, CsrfForm, EmptyForm, PageError, PageResult, Session, SignedInUser, parse_id, render,
    see_other,
};

use crate::account::account_of;
use crate::new_key;

pub async fn create(
    SignedInUser(user): SignedInUser,
    pool: web::Data<PgPool>,
    policy: web::Data<CookiePolicy>,
    path: web::Path<String>,
    _form: CsrfForm<EmptyForm>,
) -> PageResult<HttpResponse> {
    let app = ApplicationId(parse_id(&path)?);
    let key = credentials::issue(&pool, account_of(&user)?, app, &Actor::from(&user)).await?;
    Ok(new_key::redirect_to_app(app, Some(&key.secret), policy.secure))
}

#[derive(serde::Deserialize)]
pub struct RotateForm {
    overlap_hours: Option<i64>,
}

pub async fn rotate(
    SignedInUser(user): SignedInUser,
    pool: web::Data<PgPool>,
    policy: web::Data<CookiePolicy>,
    path: web::Path<(String, String)>,
    CsrfForm(form): CsrfForm<RotateForm>,
) -> PageResult<HttpResponse> {
    let (app, key) = path.into_inner();
    let app = ApplicationId(parse_id(&app)?);
    let overlap = match form.overlap_hours {
        Some(hours) => credentials::overlap_from_hours(hours)?,
        None => DEFAULT_ROTATION_OVERLAP,
    };
    let issued = credentials::rotate(
        &pool,
        account_of(&user)?,
        app,
        CredentialId(parse_id(&key)?),
        overlap,
        &Actor::from(&user),
    )
    .await?;
    Ok(new_key::redirect_to_app(app, Some(&issued.secret), policy.secure))
}

#[derive(Template)]
#[template(path = "portal/revoke.html")]
struct ConfirmRevokePage {
    chrome: Chrome,
    app: ApplicationView,
    key: CredentialView,
}

/// Asks before revoking: which key, of which application, and what follows.
pub async fn confirm_revoke(
    SignedInUser(user): SignedInUser,
    session: Session,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String)>,
) -> PageResult<HttpResponse> {
    let (app, key) = path.into_inner();
    let account = account_of(&user)?;
    let app = applications::get(&pool, account, ApplicationId(parse_id(&app)?)).await?;
    let key_id = CredentialId(parse_id(&key)?);
    let key = credentials::list(&pool, account, app.id)
        .await?
        .into_iter()
        .find(|k| k.id == key_id)
        .ok_or(PageError(tollgate_core::Error::NotFound))?;
    if key.revoked_at.is_some() {
        return Ok(see_other(format!("{}?revoked={}", new_key::app_page(app.id), key.id.0)));
    }
    let chrome = Chrome::for_session(&session).await?;
    Ok(render(StatusCode::OK, &ConfirmRevokePage { chrome, app, key }))
}

/// Revokes the key and shows the application's page with a message.
pub async fn revoke(
    SignedInUser(user): SignedInUser,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String)>,
    _form: CsrfForm<EmptyForm>,
) -> PageResult<HttpResponse> {
    let (app, key) = path.into_inner();
    let app = ApplicationId(parse_id(&app)?);
    let key = CredentialId(parse_id(&key)?);
    credentials::revoke(&pool, account_of(&user)?, app, key, &Actor::from(&user)).await?;
    Ok(see_other(format!("{}?revoked={}", new_key::app_page(app), key.0)))
}
