//! The audit log: who changed what, when, with before and after.
//! Records are written in the same transaction as the change they describe,
//! and so are the webhook deliveries of the events they stand for.

use serde_json::Value;
use uuid::Uuid;

use crate::accounts::{UserId, UserSummary};
use crate::webhooks::{events, queue};

/// Who made a change: a user, or the system itself (CLI, seeding).
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: Option<UserId>,
    pub label: String,
    /// How the user acted when it was not in their own session, e.g. `API token "ci" (tg_adm_ab…wxyz)`.
    pub via: Option<String>,
}

impl Actor {
    pub fn system(label: &str) -> Actor {
        Actor { user_id: None, label: label.to_owned(), via: None }
    }

    pub fn user(id: UserId, email: &str) -> Actor {
        Actor { user_id: Some(id), label: email.to_owned(), via: None }
    }

    /// The same actor, acting through `via`.
    pub fn via(self, via: String) -> Actor {
        Actor { via: Some(via), ..self }
    }
}

/// A signed-in user acting in their own name.
impl From<&UserSummary> for Actor {
    fn from(user: &UserSummary) -> Actor {
        Actor::user(user.id, &user.email)
    }
}

pub struct Entry<'a> {
    /// `entity.verb`, e.g. `api.import`.
    pub action: &'a str,
    pub entity: &'a str,
    pub entity_id: Option<Uuid>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

pub async fn record(conn: &mut sqlx::PgConnection, actor: &Actor, entry: Entry<'_>) -> crate::Result<()> {
    sqlx::query!(
        "INSERT INTO audit_log (actor_id, actor_label, actor_via, action, entity, entity_id, before, after)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        actor.user_id.map(|u| u.0),
        actor.label,
        actor.via,
        entry.action,
        entry.entity,
        entry.entity_id,
        entry.before,
        entry.after
    )
    .execute(&mut *conn)
    .await?;
    // Most webhook events are audited changes: raise them here, in the same transaction.
    if let Some(event) = events::from_audit(entry.action, entry.before.as_ref(), entry.after.as_ref()) {
        let data =
            queue::data(entry.entity, entry.entity_id, &actor.label, entry.before.as_ref(), entry.after.as_ref());
        queue::enqueue(conn, event, data).await?;
    }
    Ok(())
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditRecord {
    pub id: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: time::OffsetDateTime,
    pub actor: String,
    /// The admin API token that acted for the actor, when one did.
    pub via: Option<String>,
    pub action: String,
    pub entity: String,
    pub entity_id: Option<Uuid>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct AuditFilter {
    pub entity: Option<String>,
    pub entity_id: Option<Uuid>,
    /// A prefix of the action, e.g. `plan.` or `api.lifecycle`.
    pub action: Option<String>,
    /// A part of the actor's label (usually an email).
    pub actor: Option<String>,
    /// Only the records after this one in the list, i.e. older (keyset paging: the last id of
    /// the previous page), which reads from the index at any depth where an offset walks past
    /// every skipped row.
    pub after_id: Option<i64>,
}

pub async fn list(
    pool: &sqlx::PgPool,
    filter: &AuditFilter,
    limit: i64,
    offset: i64,
) -> crate::Result<(Vec<AuditRecord>, i64)> {
    let action = filter.action.as_deref().map(|a| format!("{}%", crate::db::like_escape(a)));
    let actor = filter.actor.as_deref().map(crate::db::contains_pattern);
    let rows = sqlx::query!(
        r#"SELECT r.id, r.at, r.actor_label, r.actor_via, r.action, r.entity, r.entity_id, r.before, r.after
           FROM (
             -- The page's ids first: unfiltered, an index-only walk past the offset's records.
             SELECT id FROM audit_log
             WHERE ($1::text IS NULL OR entity = $1) AND ($2::uuid IS NULL OR entity_id = $2)
               AND ($3::text IS NULL OR action LIKE $3) AND ($4::text IS NULL OR actor_label ILIKE $4)
               AND ($7::int8 IS NULL OR id < $7)
             ORDER BY id DESC LIMIT $5 OFFSET $6
           ) page
           JOIN audit_log r ON r.id = page.id
           ORDER BY r.id DESC"#,
        filter.entity,
        filter.entity_id,
        action,
        actor,
        limit,
        offset,
        filter.after_id
    )
    .fetch_all(pool)
    .await?;
    // Counted apart from the page and only up to the limit, so a page never touches every row;
    // a count at the limit is reused for a few seconds (`count_up_to_limit`).
    let what = format!("audit {:?} {:?} {action:?} {actor:?}", filter.entity, filter.entity_id);
    let count = sqlx::query_scalar!(
        r#"SELECT count(*) AS "total!" FROM (
             SELECT 1 FROM audit_log
             WHERE ($1::text IS NULL OR entity = $1) AND ($2::uuid IS NULL OR entity_id = $2)
               AND ($3::text IS NULL OR action LIKE $3) AND ($4::text IS NULL OR actor_label ILIKE $4)
             LIMIT $5) AS matching"#,
        filter.entity,
        filter.entity_id,
        action,
        actor,
        crate::db::COUNT_LIMIT + 1
    )
    .fetch_one(pool);
    let total = crate::db::count_up_to_limit(pool, what, count).await?;
    Ok((
        rows.into_iter()
            .map(|r| AuditRecord {
                id: r.id,
                at: r.at,
                actor: r.actor_label,
                via: r.actor_via,
                action: r.action,
                entity: r.entity,
                entity_id: r.entity_id,
                before: r.before,
                after: r.after,
            })
            .collect(),
        total,
    ))
}
