use actix_web::HttpResponse;
use actix_web::http::header;
use tollgate_core::web::{CsrfForm, Session};

use crate::error::PortalResult;

#[derive(serde::Deserialize)]
pub struct LogoutForm {}

/// Ends the session on the server, not just in the browser.
pub async fn submit(session: Session, _form: CsrfForm<LogoutForm>) -> PortalResult<HttpResponse> {
    session.sign_out().await?;
    Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, "/")).finish())
}
