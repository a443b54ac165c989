use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use askama::Template;
use tollgate_core::web::{Chrome, Session, SignedInUser, render};

use crate::error::PortalResult;

#[derive(Template)]
#[template(path = "portal/dashboard.html")]
struct DashboardPage {
    chrome: Chrome,
}

pub async fn show(_user: SignedInUser, session: Session) -> PortalResult<HttpResponse> {
    let chrome = Chrome::for_session(&session).await?;
    Ok(render(StatusCode::OK, &DashboardPage { chrome }))
}
