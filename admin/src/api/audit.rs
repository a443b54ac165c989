//! The audit log in the admin API, filtered and paged.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use tollgate_core::audit::{self, AuditFilter, AuditRecord};
use tollgate_core::db::PgPool;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::admin;
use super::error::{ApiResult, ErrorBody};
use super::page::{Keyed, Page, PageQuery};
use super::wire::{check_len, parse_query, rfc3339};

/// One recorded change: who, what, when, before and after.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditOut {
    pub id: i64,
    #[schema(format = DateTime)]
    pub at: String,
    /// Who acted: an admin's email, or a system label such as `cli` or `billing`.
    pub actor: String,
    /// The admin API token the actor acted through, e.g. `API token "ci" (tg_adm_ab…wxyz)`; `null` for the admin UI, the portal and the system.
    pub via: Option<String>,
    pub action: String,
    pub entity: String,
    pub entity_id: Option<Uuid>,
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
}

impl Keyed for AuditOut {
    fn key(&self) -> String {
        self.id.to_string()
    }
}

impl From<AuditRecord> for AuditOut {
    fn from(r: AuditRecord) -> Self {
        AuditOut {
            id: r.id,
            at: rfc3339(r.at),
            actor: r.actor,
            via: r.via,
            action: r.action,
            entity: r.entity,
            entity_id: r.entity_id,
            before: r.before,
            after: r.after,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// e.g. `api`, `plan`, `application`, `credential`.
    #[param(max_length = 64, pattern = "^[^\\u0000]*$")]
    pub entity: Option<String>,
    pub entity_id: Option<Uuid>,
    /// A prefix of the action, e.g. `plan.` or `api.lifecycle`.
    #[param(max_length = 64, pattern = "^[^\\u0000]*$")]
    pub action: Option<String>,
    /// Part of the actor's email.
    #[param(max_length = 254, pattern = "^[^\\u0000]*$")]
    pub actor: Option<String>,
    /// Only the records after this one in the list (older): pass the last `id` of a page to get
    /// the next one (keyset paging, as fast at any depth; `page` then counts from there).
    #[param(minimum = 1)]
    pub after_id: Option<i64>,
    /// 1-based page number. Offset pages reach the first 10,000 rows: a page that starts
    /// past them (`(page - 1) × per_page ≥ 10000`) is refused with 400 `page_too_deep`;
    /// follow `next` (`after_id`) to go further.
    #[param(minimum = 1, maximum = 10000)]
    pub page: Option<i64>,
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<i64>,
}

/// The audit log, newest first, with filters.
#[utoipa::path(get, operation_id = "list_audit", path = "/admin/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = Page<AuditOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "A parameter out of range; `field` names it")),
    security(("bearer" = [])))]
pub async fn list(req: HttpRequest, pool: web::Data<PgPool>) -> ApiResult<HttpResponse> {
    admin(&req, &pool).await?;
    let q: AuditQuery = parse_query(&req)?;
    check_len("entity", q.entity.as_deref(), 64)?;
    check_len("action", q.action.as_deref(), 64)?;
    check_len("actor", q.actor.as_deref(), 254)?;
    let page = PageQuery { page: q.page, per_page: q.per_page };
    let (limit, offset) = page.window()?;
    if q.after_id.is_some_and(|id| id < 1) {
        return Err(tollgate_core::Error::invalid("after_id", "use an id from a page of the audit log").into());
    }
    let filter = AuditFilter {
        entity: q.entity,
        entity_id: q.entity_id,
        action: q.action,
        actor: q.actor,
        after_id: q.after_id,
    };
    let (records, total) = audit::list(&pool, &filter, limit, offset).await?;
    Ok(HttpResponse::Ok().json(Page::new(records.into_iter().map(AuditOut::from).collect(), &req, &page, total)))
}
