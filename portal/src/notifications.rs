//! The signed-in developer's notifications (usage alerts and the like):
//! newest first, unread marked, with mark-read buttons.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use tollgate_core::db::PgPool;
use tollgate_core::notifications::{self, Notification};
use tollgate_web::{Chrome, CsrfForm, EmptyForm, PageResult, Session, SignedInUser, parse_id, render, see_other};

/// The most notifications the page lists.
const PAGE: i64 = 100;

#[derive(Template)]
#[template(path = "portal/notifications.html")]
struct ListPage {
    chrome: Chrome,
    notices: Vec<Notification>,
}

pub async fn list(
    SignedInUser(user): SignedInUser,
    session: Session,
    pool: web::Data<PgPool>,
) -> PageResult<HttpResponse> {
    let notices = notifications::list_for_user(&pool, user.id.0, PAGE).await?;
    let chrome = Chrome::for_session(&session).await?;
    Ok(render(StatusCode::OK, &ListPage { chrome, notices }))
}

pub async fn mark_read(
    SignedInUser(user): SignedInUser,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    _form: CsrfForm<EmptyForm>,
) -> PageResult<HttpResponse> {
    notifications::mark_read(&pool, user.id.0, parse_id(&path)?).await?;
    Ok(see_other("/notifications"))
}

pub async fn mark_all_read(
    SignedInUser(user): SignedInUser,
    pool: web::Data<PgPool>,
    _form: CsrfForm<EmptyForm>,
) -> PageResult<HttpResponse> {
    notifications::mark_all_read(&pool, user.id.0).await?;
    Ok(see_other("/notifications"))
}
