//! The admin UI's start page: every API product.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use tollgate_core::apis::{ApiSummary, list_apis};
use tollgate_core::db::PgPool;
use tollgate_web::{AdminUser, Chrome, PageResult, Session, render};

#[derive(Template)]
#[template(path = "admin/dashboard.html")]
struct DashboardPage {
    chrome: Chrome,
    apis: Vec<ApiSummary>,
}

pub async fn show(_admin: AdminUser, session: Session, pool: web::Data<PgPool>) -> PageResult<HttpResponse> {
    let chrome = Chrome::for_session(&session).await?;
    let apis = list_apis(&pool).await?;
    Ok(render(StatusCode::OK, &DashboardPage { chrome, apis }))
}
