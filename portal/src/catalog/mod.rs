use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use tollgate_core::apis::{ApiSummary, list_apis};
use tollgate_core::db::PgPool;
use tollgate_core::web::{Chrome, Session, render};

use crate::error::PortalResult;

#[derive(Template)]
#[template(path = "portal/home.html")]
struct HomePage {
    chrome: Chrome,
    apis: Vec<ApiSummary>,
}

/// The start page lists the APIs developers can subscribe to.
pub async fn home(session: Session, pool: web::Data<PgPool>) -> PortalResult<HttpResponse> {
    let chrome = Chrome::for_session(&session).await?;
    let apis = list_apis(&pool)
        .await?
        .into_iter()
        .filter(|api| api.state == "published" || api.state == "deprecated")
        .collect();
    Ok(render(StatusCode::OK, &HomePage { chrome, apis }))
}
