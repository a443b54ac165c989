//! Admin API tokens in the admin UI: create (shown once), list and revoke.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use tollgate_core::admin_tokens::{self, AdminTokenView};
use tollgate_core::audit::Actor;
use tollgate_core::db::PgPool;
use tollgate_web::{
    AdminUser, Chrome, CsrfForm, EmptyForm, FieldErrors, PageResult, Session, parse_id, render, see_other,
};

#[derive(Template)]
#[template(path = "admin/tokens.html")]
struct ListPage {
    chrome: Chrome,
    tokens: Vec<AdminTokenView>,
    new_token: Option<String>,
    errors: FieldErrors,
}

pub async fn list(_admin: AdminUser, session: Session, pool: web::Data<PgPool>) -> PageResult<HttpResponse> {
    let tokens = admin_tokens::list(&pool).await?;
    let chrome = Chrome::for_session(&session).await?;
    Ok(render(StatusCode::OK, &ListPage { chrome, tokens, new_token: None, errors: FieldErrors::new() }))
}

#[derive(serde::Deserialize)]
pub struct CreateForm {
    name: String,
}

/// Creates a token for the signed-in admin and shows it on this one response.
pub async fn create(
    AdminUser(user): AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    CsrfForm(form): CsrfForm<CreateForm>,
) -> PageResult<HttpResponse> {
    let mut errors = FieldErrors::new();
    let created = errors.note(admin_tokens::create(&pool, user.id, &form.name, &Actor::from(&user)).await, "name")?;
    let new_token = created.map(|(_, secret)| secret.as_str().to_owned());
    let status = if new_token.is_some() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    let tokens = admin_tokens::list(&pool).await?;
    let chrome = Chrome::for_session(&session).await?;
    Ok(render(status, &ListPage { chrome, tokens, new_token, errors }))
}

pub async fn revoke(
    AdminUser(user): AdminUser,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    _form: CsrfForm<EmptyForm>,
) -> PageResult<HttpResponse> {
    admin_tokens::revoke(&pool, parse_id(&path)?, &Actor::from(&user)).await?;
    Ok(see_other("/admin/tokens"))
}
