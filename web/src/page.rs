//! Answering with a page: rendering one, sending the browser on to another
//! after a form (Post/Redirect/Get), and the readable page every error becomes.

use actix_web::HttpMessage;
use actix_web::HttpResponse;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::Next;
use askama::Template;

use crate::session::Session;

/// Renders a template with a status; a template that fails to render is a
/// bug, logged here once, and the person sees a plain error page.
pub fn render(status: StatusCode, template: &impl Template) -> HttpResponse {
    match template.render() {
        Ok(html) => HttpResponse::build(status).content_type("text/html; charset=utf-8").body(html),
        Err(err) => {
            tracing::error!(error = %err, "template failed to render");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("Something went wrong on our side. Please try again.")
        }
    }
}

/// Sends the browser on to `location` with a GET, after a form was handled.
/// A location that cannot be a header value (a bug: callers pass their own
/// paths or a `LocalPath`) goes to the start page rather than failing.
pub fn see_other(location: impl Into<String>) -> HttpResponse {
    let location =
        header::HeaderValue::try_from(location.into()).unwrap_or_else(|_| header::HeaderValue::from_static("/"));
    HttpResponse::SeeOther().insert_header((header::LOCATION, location)).finish()
}

/// A readable error page; never a stack trace.
#[derive(Template, Clone)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub status: u16,
    pub title: String,
    pub detail: String,
    /// Where the page leads back to: the portal's start, or the admin UI's dashboard
    /// ([`error_pages_lead_back`]).
    pub home: Home,
    /// The admin UI's sections above the page, for a signed-in admin under `/admin`.
    pub admin_nav: bool,
}

/// The part of the site an error page leads back to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Home {
    Portal,
    Admin,
}

impl Home {
    pub fn path(self) -> &'static str {
        match self {
            Home::Portal => "/",
            Home::Admin => "/admin",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Home::Portal => "the start page",
            Home::Admin => "the admin dashboard",
        }
    }
}

impl ErrorPage {
    pub fn new(status: StatusCode, title: &str, detail: &str) -> ErrorPage {
        ErrorPage {
            status: status.as_u16(),
            title: title.to_owned(),
            detail: detail.to_owned(),
            home: Home::Portal,
            admin_nav: false,
        }
    }

    /// The page, which keeps itself in the answer's extensions so that
    /// [`error_pages_lead_back`] can render it again for the part of the site it is in.
    pub fn into_response(self) -> HttpResponse {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = render(status, &self);
        response.extensions_mut().insert(self);
        response
    }
}

/// Middleware: an error page under `/admin` (the admin UI; its REST API answers JSON) leads
/// back to the admin dashboard rather than the portal's start, under the admin UI's sections
/// when an admin is signed in. Errors are made without their request (actix's
/// `ResponseError`), so the page is rendered again here, keeping its status and headers.
pub async fn error_pages_lead_back(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let admin = req.path() == "/admin" || req.path().starts_with("/admin/");
    let res = next.call(req).await?.map_into_boxed_body();
    let page = if admin { res.response().extensions().get::<ErrorPage>().cloned() } else { None };
    let Some(page) = page else { return Ok(res) };
    let admin_nav = res.request().extensions().get::<Session>().and_then(Session::user).is_some_and(|u| u.is_admin);
    let again = ErrorPage { home: Home::Admin, admin_nav, ..page };
    match again.render() {
        Ok(html) => Ok(res.map_body(|_, _| BoxBody::new(html))),
        Err(_) => Ok(res),
    }
}
