//! The device cookie: a browser that proved a user's password (sign-in) or mailbox (a reset
//! link) is remembered for that user, so a network whose hour of failed sign-ins is spent
//! does not hold that user there (see `core::accounts::throttle`).

use actix_web::cookie::{Cookie, SameSite, time::Duration};
use actix_web::{HttpRequest, HttpResponse};
use tollgate_core::accounts::UserId;
use tollgate_core::accounts::throttle::{DEVICE_LIFETIME, remember_device};
use tollgate_core::db::PgPool;

const DEVICE_COOKIE: &str = "tg_device";

/// The browser's device cookie, if it sent one.
pub(crate) fn of(req: &HttpRequest) -> Option<String> {
    req.cookie(DEVICE_COOKIE).map(|c| c.value().to_owned())
}

/// Remembers the browser for `user`, setting a new cookie on `response` when it had none of
/// theirs.
pub(crate) async fn remember(
    pool: &PgPool,
    user: UserId,
    req: &HttpRequest,
    secure: bool,
    response: &mut HttpResponse,
) -> tollgate_core::Result<()> {
    if let Some(raw) = remember_device(pool, user, of(req).as_deref()).await? {
        let cookie = Cookie::build(DEVICE_COOKIE, raw)
            .path("/")
            .http_only(true)
            .secure(secure)
            .same_site(SameSite::Lax)
            .max_age(Duration::seconds(DEVICE_LIFETIME.whole_seconds()))
            .finish();
        // A cookie that cannot be added costs only the exemption, never the sign-in.
        let _ = response.add_cookie(&cookie);
    }
    Ok(())
}
