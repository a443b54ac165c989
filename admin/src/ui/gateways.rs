//! Gateway agents in the admin UI: their state, and registering a new one
//! (its token is shown once).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use tollgate_core::audit::Actor;
use tollgate_core::db::PgPool;
use tollgate_core::gateways::{self, GatewayView};
use tollgate_web::{AdminUser, Chrome, CsrfForm, FieldErrors, PageResult, Session, render};

#[derive(Template)]
#[template(path = "admin/gateways.html")]
struct ListPage {
    chrome: Chrome,
    agents: Vec<GatewayView>,
    new_token: Option<(String, String)>,
    errors: FieldErrors,
}

pub async fn list(_admin: AdminUser, session: Session, pool: web::Data<PgPool>) -> PageResult<HttpResponse> {
    let agents = gateways::list(&pool).await?;
    let chrome = Chrome::for_session(&session).await?;
    Ok(render(StatusCode::OK, &ListPage { chrome, agents, new_token: None, errors: FieldErrors::new() }))
}

#[derive(serde::Deserialize)]
pub struct CreateForm {
    name: String,
}

/// Registers an agent and shows its token on this one response.
pub async fn create(
    AdminUser(user): AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    CsrfForm(form): CsrfForm<CreateForm>,
) -> PageResult<HttpResponse> {
    let mut errors = FieldErrors::new();
    let created = errors.note(gateways::create(&pool, form.name.trim(), &Actor::from(&user)).await, "name")?;
    let new_token = created.map(|(_, token)| (form.name.trim().to_owned(), token.as_str().to_owned()));
    let status = if new_token.is_some() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    let agents = gateways::list(&pool).await?;
    let chrome = Chrome::for_session(&session).await?;
    Ok(render(status, &ListPage { chrome, agents, new_token, errors }))
}
