//! Guards: extractors that let a handler run only for a signed-in user, or
//! only for a provider admin, and turn everyone else away readably.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use tollgate_core::accounts::UserSummary;

use crate::page::{ErrorPage, see_other};
use crate::redirect::LocalPath;
use crate::session::Session;

/// Sends an anonymous browser to the sign-in page, then back.
#[derive(Debug, thiserror::Error)]
#[error("sign-in required")]
struct SignInRequired {
    next: Option<LocalPath>,
}

impl ResponseError for SignInRequired {
    fn status_code(&self) -> StatusCode {
        StatusCode::SEE_OTHER
    }
    fn error_response(&self) -> HttpResponse {
        match &self.next {
            Some(next) => see_other(format!("/login?next={}", encode_query_value(next.as_str()))),
            None => see_other("/login"),
        }
    }
}

fn encode_query_value(value: &str) -> String {
    serde_urlencoded::to_string([("v", value)]).map(|s| s.trim_start_matches("v=").to_owned()).unwrap_or_default()
}

#[derive(Debug, thiserror::Error)]
#[error("this page is for provider admins")]
struct AdminOnly;

impl ResponseError for AdminOnly {
    fn status_code(&self) -> StatusCode {
        StatusCode::FORBIDDEN
    }
    fn error_response(&self) -> HttpResponse {
        ErrorPage::new(
            StatusCode::FORBIDDEN,
            "Admins only",
            "This page is for provider admins. Sign in with an admin account.",
        )
        .into_response()
    }
}

/// Where sign-in sends the browser back to: this page, with its query.
fn back_to(req: &HttpRequest) -> Option<LocalPath> {
    LocalPath::parse(req.uri().path_and_query().map(|pq| pq.as_str()).unwrap_or("/"))
}

/// A signed-in user, or a redirect to the sign-in page.
pub struct SignedInUser(pub UserSummary);

impl FromRequest for SignedInUser {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let user = req.extensions().get::<Session>().and_then(Session::user);
        ready(match user {
            Some(user) => Ok(SignedInUser(user)),
            None => Err(SignInRequired { next: back_to(req) }.into()),
        })
    }
}

/// A signed-in provider admin; others get a redirect or a 403 page.
pub struct AdminUser(pub UserSummary);

impl FromRequest for AdminUser {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let user = req.extensions().get::<Session>().and_then(Session::user);
        ready(match user {
            Some(user) if user.is_admin => Ok(AdminUser(user)),
            Some(_) => Err(AdminOnly.into()),
            None => Err(SignInRequired { next: back_to(req) }.into()),
        })
    }
}
