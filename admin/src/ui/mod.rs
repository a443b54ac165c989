//! The admin UI under `/admin`: HTML pages for provider admins, one module
//! per feature. Every page requires a signed-in admin (`AdminUser`); every
//! change is a CSRF-checked POST.

pub mod accounts;
pub mod apis;
pub mod applications;
pub mod audit;
pub mod gateways;
pub mod plans;
pub mod tokens;

use actix_web::HttpResponse;
use actix_web::http::header;
use tollgate_core::accounts::UserSummary;
use tollgate_core::audit::Actor;

use crate::error::AdminError;

pub(crate) fn actor(user: &UserSummary) -> Actor {
    Actor::user(user.id, &user.email)
}

pub(crate) fn see_other(location: impl Into<String>) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, location.into())).finish()
}

pub(crate) fn parse_id(raw: &str) -> Result<uuid::Uuid, AdminError> {
    uuid::Uuid::parse_str(raw).map_err(|_| AdminError(tollgate_core::Error::NotFound))
}

#[derive(serde::Deserialize)]
pub struct EmptyForm {}
