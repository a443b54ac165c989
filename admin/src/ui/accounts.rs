use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use tollgate_core::accounts::AccountId;
use tollgate_core::accounts::directory::{self, AccountView};
use tollgate_core::db::PgPool;
use tollgate_core::web::{AdminUser, Chrome, CsrfForm, Session, render};

use super::{EmptyForm, actor, parse_id, see_other};
use crate::error::AdminResult;

#[derive(Template)]
#[template(path = "admin/accounts.html")]
struct ListPage {
    chrome: Chrome,
    accounts: Vec<AccountView>,
    q: String,
}

#[derive(serde::Deserialize)]
pub struct ListQuery {
    q: Option<String>,
}

pub async fn list(
    _admin: AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    query: web::Query<ListQuery>,
) -> AdminResult<HttpResponse> {
    let q: String = query.into_inner().q.unwrap_or_default().chars().take(200).collect();
    let (accounts, _) = directory::list(&pool, Some(q.as_str()).filter(|q| !q.is_empty()), 200, 0).await?;
    let chrome = Chrome::for_session(&session).await?;
    Ok(render(StatusCode::OK, &ListPage { chrome, accounts, q }))
}

pub async fn set_state(
    AdminUser(user): AdminUser,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String)>,
    _form: CsrfForm<EmptyForm>,
) -> AdminResult<HttpResponse> {
    let (id, action) = path.into_inner();
    let suspended = match action.as_str() {
        "suspend" => true,
        "resume" => false,
        _ => return Err(super::apis::not_found()),
    };
    directory::set_suspended(&pool, AccountId(parse_id(&id)?), suspended, &actor(&user)).await?;
    Ok(see_other("/admin/accounts"))
}
