//! Issuing, rotating and revoking an application's keys. A new key goes to
//! the application's page once, in the one-time cookie of `new_key`.

use actix_web::{HttpResponse, web};
use time::Duration;
use tollgate_core::applications::ApplicationId;
use tollgate_core::audit::Actor;
use tollgate_core::credentials::{self, CredentialId, DEFAULT_ROTATION_OVERLAP};
use tollgate_core::db::PgPool;
use tollgate_web::{CookiePolicy, CsrfForm, EmptyForm, PageResult, SignedInUser, parse_id, see_other};

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
    let overlap = form.overlap_hours.map(Duration::hours).unwrap_or(DEFAULT_ROTATION_OVERLAP);
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

pub async fn revoke(
    SignedInUser(user): SignedInUser,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String)>,
    _form: CsrfForm<EmptyForm>,
) -> PageResult<HttpResponse> {
    let (app, key) = path.into_inner();
    let app = ApplicationId(parse_id(&app)?);
    credentials::revoke(&pool, account_of(&user)?, app, CredentialId(parse_id(&key)?), &Actor::from(&user)).await?;
    Ok(see_other(new_key::app_page(app)))
}
