//! A key just issued travels to the application's page in a one-time
//! cookie scoped to that page, never through the database: set by the POST
//! that made the key, shown once, then cleared.

use actix_web::cookie::{Cookie, SameSite, time::Duration};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use tollgate_core::applications::ApplicationId;
use tollgate_core::credentials::CredentialView;
use tollgate_protocol::SecretKey;

const NEW_KEY_COOKIE: &str = "tg_new_key";

/// The application's page, where its new key is shown.
pub(crate) fn app_page(app: ApplicationId) -> String {
    format!("/apps/{}", app.0)
}

/// A redirect to the application's page carrying `key` to it, if any.
pub(crate) fn redirect_to_app(app: ApplicationId, key: Option<&SecretKey>, secure: bool) -> HttpResponse {
    let page = app_page(app);
    let mut response = HttpResponse::SeeOther();
    if let Some(key) = key {
        let cookie = Cookie::build(NEW_KEY_COOKIE, key.as_str().to_owned())
            .path(page.clone())
            .http_only(true)
            .secure(secure)
            .same_site(SameSite::Strict)
            .max_age(Duration::minutes(5))
            .finish();
        response.cookie(cookie);
    }
    response.insert_header((header::LOCATION, page)).finish()
}

/// The key the cookie carries, shown only if it really is a live key of
/// this application.
pub(crate) fn carried(req: &HttpRequest, keys: &[CredentialView]) -> Option<String> {
    req.cookie(NEW_KEY_COOKIE).map(|c| c.value().to_owned()).filter(|raw| {
        SecretKey::parse(raw).is_ok()
            && keys.iter().any(|k| k.revoked_at.is_none() && raw.starts_with(&k.prefix) && raw.ends_with(&k.last4))
    })
}

/// Clears the cookie once its page has been shown.
pub(crate) fn forget(req: &HttpRequest, app: ApplicationId, response: &mut HttpResponse) {
    if req.cookie(NEW_KEY_COOKIE).is_some() {
        let mut gone = Cookie::build(NEW_KEY_COOKIE, "").path(app_page(app)).http_only(true).finish();
        gone.make_removal();
        let _ = response.add_cookie(&gone);
    }
}
