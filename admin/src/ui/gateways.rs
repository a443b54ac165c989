//! Gateway agents in the admin UI: their state, registering a new one (its
//! token is shown once), renaming one and revoking one (a required checkbox
//! confirms it, so it works without JavaScript).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use tollgate_core::audit::Actor;
use tollgate_core::db::PgPool;
use tollgate_core::gateways::{self, GatewayId, GatewayView};
use tollgate_web::{AdminUser, Chrome, CsrfForm, FieldErrors, PageResult, Session, parse_id, render, see_other};

/// An agent's row: its state, and its rename and revoke forms with any
/// problem beside them.
struct Row {
    a: GatewayView,
    /// What the rename field holds: the name, or what was typed when it was refused.
    rename_value: String,
    rename_error: Option<String>,
    confirm_error: Option<String>,
}

/// A refused rename or revoke, to show beside that agent's form.
enum Refused {
    Rename { id: GatewayId, typed: String, message: String },
    Revoke { id: GatewayId, message: String },
}

#[derive(Template)]
#[template(path = "admin/gateways.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<Row>,
    new_token: Option<(String, String)>,
    errors: FieldErrors,
    /// The new agent's name as typed when it was refused.
    new_name: String,
}

impl ListPage {
    /// The error summary's items: the new agent's name, or the one agent's refused rename or
    /// revoke, each linking to its control.
    fn summary(&self) -> Vec<(String, String)> {
        let mut items = self.errors.summary([("name", "Name of the new agent")]);
        for row in &self.rows {
            if let Some(message) = &row.rename_error {
                items.push((format!("name-{}", row.a.id.0), format!("New name for {}: {message}", row.a.name)));
            }
            if let Some(message) = &row.confirm_error {
                items.push((format!("confirm-{}", row.a.id.0), format!("Revoke {}: {message}", row.a.name)));
            }
        }
        items
    }
}

fn rows(agents: Vec<GatewayView>, refused: Option<&Refused>) -> Vec<Row> {
    agents
        .into_iter()
        .map(|a| {
            let mut row = Row { rename_value: a.name.clone(), a, rename_error: None, confirm_error: None };
            match refused {
                Some(Refused::Rename { id, typed, message }) if *id == row.a.id => {
                    row.rename_value = typed.clone();
                    row.rename_error = Some(message.clone());
                }
                Some(Refused::Revoke { id, message }) if *id == row.a.id => row.confirm_error = Some(message.clone()),
                _ => {}
            }
            row
        })
        .collect()
}

async fn page(
    session: &Session,
    pool: &PgPool,
    status: StatusCode,
    new_token: Option<(String, String)>,
    (errors, new_name): (FieldErrors, String),
    refused: Option<Refused>,
) -> PageResult<HttpResponse> {
    let rows = rows(gateways::list(pool).await?, refused.as_ref());
    let chrome = Chrome::for_session(session).await?;
    Ok(render(status, &ListPage { chrome, rows, new_token, errors, new_name }))
}

pub async fn list(_admin: AdminUser, session: Session, pool: web::Data<PgPool>) -> PageResult<HttpResponse> {
    page(&session, &pool, StatusCode::OK, None, Default::default(), None).await
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
    let (status, typed) = match new_token {
        Some(_) => (StatusCode::OK, String::new()),
        None => (StatusCode::UNPROCESSABLE_ENTITY, form.name),
    };
    page(&session, &pool, status, new_token, (errors, typed), None).await
}

/// Renames an agent; a bad or taken name is shown beside that agent's field.
pub async fn rename(
    AdminUser(user): AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    CsrfForm(form): CsrfForm<CreateForm>,
) -> PageResult<HttpResponse> {
    let id = GatewayId(parse_id(&path)?);
    let mut errors = FieldErrors::new();
    let renamed = errors.note(gateways::rename(&pool, id, form.name.trim(), &Actor::from(&user)).await, "name")?;
    if renamed.is_some() {
        return Ok(see_other("/admin/gateways"));
    }
    let message = errors.get("name").unwrap_or("this name cannot be used").to_owned();
    let refused = Refused::Rename { id, typed: form.name, message };
    page(&session, &pool, StatusCode::UNPROCESSABLE_ENTITY, None, Default::default(), Some(refused)).await
}

#[derive(serde::Deserialize)]
pub struct RevokeForm {
    /// The confirmation checkbox; absent when it was not ticked.
    confirm: Option<String>,
}

/// Revokes an agent once its confirmation box is ticked; its token is
/// refused from then on.
pub async fn revoke(
    AdminUser(user): AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    CsrfForm(form): CsrfForm<RevokeForm>,
) -> PageResult<HttpResponse> {
    let id = GatewayId(parse_id(&path)?);
    if form.confirm.as_deref() != Some("yes") {
        let message = "Tick the box to confirm: the agent's token stops working at once.".to_owned();
        let refused = Refused::Revoke { id, message };
        return page(&session, &pool, StatusCode::UNPROCESSABLE_ENTITY, None, Default::default(), Some(refused)).await;
    }
    gateways::revoke(&pool, id, &Actor::from(&user)).await?;
    Ok(see_other("/admin/gateways"))
}
