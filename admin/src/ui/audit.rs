//! The audit log in the admin UI, with filters.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use tollgate_core::audit::{self, AuditFilter, AuditRecord};
use tollgate_core::db::{self, PgPool};
use tollgate_web::{AdminUser, Chrome, PageResult, Session, render};

/// The page lists this many of the newest rows; filters find the others.
const SHOWN: i64 = 200;

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct LogPage {
    chrome: Chrome,
    records: Vec<AuditRecord>,
    entity: String,
    action: String,
    actor: String,
    total: i64,
    /// The list counted up to its limit and there are more.
    more: bool,
    /// How many of the newest rows the page shows.
    shown: i64,
}

#[derive(serde::Deserialize)]
pub struct LogQuery {
    entity: Option<String>,
    action: Option<String>,
    actor: Option<String>,
}

fn clean(value: Option<String>, max: usize) -> Option<String> {
    value.map(|v| v.trim().chars().filter(|c| *c != '\0').take(max).collect::<String>()).filter(|v| !v.is_empty())
}

pub async fn list(
    _admin: AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    query: web::Query<LogQuery>,
) -> PageResult<HttpResponse> {
    let query = query.into_inner();
    let filter = AuditFilter {
        entity: clean(query.entity, 64),
        entity_id: None,
        action: clean(query.action, 64),
        actor: clean(query.actor, 254),
        after_id: None,
    };
    let (records, total) = audit::list(&pool, &filter, SHOWN, 0).await?;
    let chrome = Chrome::for_session(&session).await?;
    let page = LogPage {
        chrome,
        records,
        entity: filter.entity.unwrap_or_default(),
        action: filter.action.unwrap_or_default(),
        actor: filter.actor.unwrap_or_default(),
        total: total.min(db::COUNT_LIMIT),
        more: total > db::COUNT_LIMIT,
        shown: SHOWN,
    };
    Ok(render(StatusCode::OK, &page))
}
