use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use askama::Template;

use super::session::Session;
use crate::accounts::UserSummary;

/// A one-line message shown at the top of the next page.
#[derive(Debug, Clone)]
pub struct Flash {
    pub kind: &'static str,
    pub text: String,
}

/// What every page's layout needs: who is signed in and the token for the
/// sign-out form.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub user: Option<UserSummary>,
    pub csrf_token: String,
    pub flash: Option<Flash>,
}

impl Chrome {
    pub async fn for_session(session: &Session) -> crate::Result<Chrome> {
        Ok(Chrome { user: session.user(), csrf_token: session.csrf_token().await?, flash: None })
    }

    /// For pages without forms (the public catalog): an anonymous visitor
    /// gets no session, so crawlers do not fill the sessions table.
    pub fn without_forms(session: &Session) -> Chrome {
        Chrome { user: session.user(), csrf_token: session.existing_csrf_token().unwrap_or_default(), flash: None }
    }

    pub fn with_flash(mut self, kind: &'static str, text: impl Into<String>) -> Chrome {
        self.flash = Some(Flash { kind, text: text.into() });
        self
    }

    pub fn is_admin(&self) -> bool {
        self.user.as_ref().is_some_and(|u| u.is_admin)
    }
}

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

/// The URL people reach the server at, for links in emails.
#[derive(Debug, Clone)]
pub struct PublicUrl(pub String);

/// Where API consumers reach the gateway, for docs, samples and try-it.
#[derive(Debug, Clone)]
pub struct GatewayUrl(pub String);
