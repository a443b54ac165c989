//! Signing out.

use actix_web::HttpResponse;
use tollgate_web::{CsrfForm, EmptyForm, PageResult, Session, see_other};

/// Ends the session on the server, not just in the browser.
pub async fn submit(session: Session, _form: CsrfForm<EmptyForm>) -> PageResult<HttpResponse> {
    session.sign_out().await?;
    Ok(see_other("/"))
}
