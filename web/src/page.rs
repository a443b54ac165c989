//! Answering with a page: rendering one, sending the browser on to another
//! after a form (Post/Redirect/Get), and the readable page every error becomes.

use actix_web::HttpResponse;
use actix_web::http::{StatusCode, header};
use askama::Template;

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
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub status: u16,
    pub title: String,
    pub detail: String,
}

impl ErrorPage {
    pub fn new(status: StatusCode, title: &str, detail: &str) -> ErrorPage {
        ErrorPage { status: status.as_u16(), title: title.to_owned(), detail: detail.to_owned() }
    }

    pub fn into_response(self) -> HttpResponse {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        render(status, &self)
    }
}
