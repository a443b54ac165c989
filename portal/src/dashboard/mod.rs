//! The developer's start page after sign-in: their applications.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use tollgate_core::applications::{ApplicationView, list_for_account};
use tollgate_core::db::PgPool;
use tollgate_web::{Chrome, PageResult, Session, SignedInUser, render};

#[derive(Template)]
#[template(path = "portal/dashboard.html")]
struct DashboardPage {
    chrome: Chrome,
    apps: Vec<ApplicationView>,
}

pub async fn show(
    SignedInUser(user): SignedInUser,
    session: Session,
    pool: web::Data<PgPool>,
) -> PageResult<HttpResponse> {
    let apps = match user.account_id {
        Some(account) => list_for_account(&pool, account).await?,
        None => Vec::new(),
    };
    let chrome = Chrome::for_session(&session).await?;
    Ok(render(StatusCode::OK, &DashboardPage { chrome, apps }))
}
