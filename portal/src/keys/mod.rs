//! Issuing, rotating and revoking an application's keys.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use time::Duration;
use tollgate_core::applications::ApplicationId;
use tollgate_core::credentials::{self, CredentialId, DEFAULT_ROTATION_OVERLAP};
use tollgate_core::db::PgPool;
use tollgate_core::web::{CookiePolicy, CsrfForm, SignedInUser};

use crate::apps::{account_of, actor, parse_id};
use crate::error::PortalResult;

pub const NEW_KEY_COOKIE: &str = "tg_new_key";

/// A one-time cookie that carries a fresh key to the next page view only.
pub fn new_key_cookie(path: &str, key: &str) -> Cookie<'static> {
    Cookie::build(NEW_KEY_COOKIE, key.to_owned())
        .path(path.to_owned())
        .http_only(true)
        .same_site(SameSite::Strict)
        .max_age(CookieDuration::minutes(5))
        .finish()
}

fn to_app(app: &str, key: &str, secure: bool) -> HttpResponse {
    let location = format!("/apps/{app}");
    let mut cookie = new_key_cookie(&location, key);
    cookie.set_secure(secure);
    HttpResponse::SeeOther().insert_header((header::LOCATION, location)).cookie(cookie).finish()
}

#[derive(serde::Deserialize)]
pub struct EmptyForm {}

pub async fn create(
    SignedInUser(user): SignedInUser,
    pool: web::Data<PgPool>,
    policy: web::Data<CookiePolicy>,
    path: web::Path<String>,
    _form: CsrfForm<EmptyForm>,
) -> PortalResult<HttpResponse> {
    let app = ApplicationId(parse_id(&path)?);
    let key = credentials::issue(&pool, account_of(&user)?, app, &actor(&user)).await?;
    Ok(to_app(&path, key.secret.as_str(), policy.secure))
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
) -> PortalResult<HttpResponse> {
    let (app, key) = path.into_inner();
    let overlap = form.overlap_hours.map(Duration::hours).unwrap_or(DEFAULT_ROTATION_OVERLAP);
    let issued = credentials::rotate(
        &pool,
        account_of(&user)?,
        ApplicationId(parse_id(&app)?),
        CredentialId(parse_id(&key)?),
        overlap,
        &actor(&user),
    )
    .await?;
    Ok(to_app(&app, issued.secret.as_str(), policy.secure))
}

pub async fn revoke(
    SignedInUser(user): SignedInUser,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String)>,
    _form: CsrfForm<EmptyForm>,
) -> PortalResult<HttpResponse> {
    let (app, key) = path.into_inner();
    credentials::revoke(
        &pool,
        account_of(&user)?,
        ApplicationId(parse_id(&app)?),
        CredentialId(parse_id(&key)?),
        &actor(&user),
    )
    .await?;
    Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, format!("/apps/{app}"))).finish())
}
