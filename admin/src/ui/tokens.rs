//! Admin API tokens in the admin UI: create (shown once, with a scope and an end), list and
//! revoke.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use time::{Duration, OffsetDateTime};
use tollgate_core::admin_tokens::{self, AdminTokenView, NewToken, TokenScope, TokenState};
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
    lifetimes: &'static [(u16, &'static str)],
    /// The form's choices: as sent after an error, the defaults otherwise.
    chosen_name: String,
    chosen_scope: String,
    chosen_days: String,
}

impl ListPage {
    fn new(chrome: Chrome, tokens: Vec<AdminTokenView>) -> ListPage {
        ListPage {
            chrome,
            tokens,
            new_token: None,
            errors: FieldErrors::new(),
            lifetimes: &LIFETIMES,
            chosen_name: String::new(),
            chosen_scope: TokenScope::Write.as_str().to_owned(),
            chosen_days: "90".to_owned(),
        }
    }
}

pub async fn list(_admin: AdminUser, session: Session, pool: web::Data<PgPool>) -> PageResult<HttpResponse> {
    let tokens = admin_tokens::list(&pool).await?;
    let chrome = Chrome::for_session(&session).await?;
    Ok(render(StatusCode::OK, &ListPage::new(chrome, tokens)))
}

/// The ends offered, in days; 0 is never. The form starts at 90: a forgotten token should end.
const LIFETIMES: [(u16, &str); 5] =
    [(7, "in 7 days"), (30, "in 30 days"), (90, "in 90 days"), (365, "in a year"), (0, "never")];

#[derive(serde::Deserialize)]
pub struct CreateForm {
    name: String,
    scope: String,
    expires_in_days: String,
}

impl CreateForm {
    fn terms(&self) -> tollgate_core::Result<NewToken<'_>> {
        let scope: TokenScope = self.scope.parse().map_err(|e: tollgate_core::UnknownName| e.at("scope"))?;
        let days = self
            .expires_in_days
            .parse::<u16>()
            .ok()
            .filter(|d| LIFETIMES.iter().any(|(days, _)| days == d))
            .ok_or_else(|| tollgate_core::Error::invalid("expires_in_days", "choose one of the ends offered"))?;
        let expires_at = (days > 0).then(|| OffsetDateTime::now_utc() + Duration::days(days.into()));
        Ok(NewToken { name: &self.name, scope, expires_at })
    }
}

/// Creates a token for the signed-in admin and shows it on this one response.
pub async fn create(
    AdminUser(user): AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    CsrfForm(form): CsrfForm<CreateForm>,
) -> PageResult<HttpResponse> {
    let mut errors = FieldErrors::new();
    let created = match form.terms() {
        Ok(terms) => admin_tokens::create(&pool, user.id, terms, None, &Actor::from(&user)).await,
        Err(error) => Err(error),
    };
    let created = errors.note(created, "name")?;
    let new_token = created.map(|(_, secret)| secret.as_str().to_owned());
    let status = if new_token.is_some() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    let tokens = admin_tokens::list(&pool).await?;
    let chrome = Chrome::for_session(&session).await?;
    let mut page = ListPage::new(chrome, tokens);
    if new_token.is_none() {
        page.chosen_name = form.name;
        page.chosen_scope = form.scope;
        page.chosen_days = form.expires_in_days;
    }
    Ok(render(status, &ListPage { new_token, errors, ..page }))
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
