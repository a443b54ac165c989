//! Developer accounts in the admin UI: search, suspend and reactivate.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use tollgate_core::accounts::AccountId;
use tollgate_core::accounts::directory::{self, AccountState, AccountView};
use tollgate_core::audit::Actor;
use tollgate_core::db::PgPool;
use tollgate_web::{AdminUser, Chrome, CsrfForm, EmptyForm, PageResult, Session, parse_id, render, see_other};

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
) -> PageResult<HttpResponse> {
    let q: String = query.into_inner().q.unwrap_or_default().chars().take(200).collect();
    let accounts = directory::list_page(&pool, Some(q.as_str()).filter(|q| !q.is_empty()), 200).await?;
    let chrome = Chrome::for_session(&session).await?;
    Ok(render(StatusCode::OK, &ListPage { chrome, accounts, q }))
}

pub async fn set_state(
    AdminUser(user): AdminUser,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String)>,
    _form: CsrfForm<EmptyForm>,
) -> PageResult<HttpResponse> {
    let (id, action) = path.into_inner();
    let state = match action.as_str() {
        "suspend" => AccountState::Suspended,
        "resume" => AccountState::Active,
        _ => return Err(tollgate_core::Error::NotFound.into()),
    };
    directory::set_state(&pool, AccountId(parse_id(&id)?), state, &Actor::from(&user)).await?;
    Ok(see_other("/admin/accounts"))
}
