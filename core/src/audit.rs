//! The audit log: who changed what, when, with before and after.
//! Records are written in the same transaction as the change they describe.

use serde_json::Value;
use uuid::Uuid;

use crate::accounts::UserId;

/// Who made a change: a user, or the system itself (CLI, seeding).
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: Option<UserId>,
    pub label: String,
}

impl Actor {
    pub fn system(label: &str) -> Actor {
        Actor { user_id: None, label: label.to_owned() }
    }

    pub fn user(id: UserId, email: &str) -> Actor {
        Actor { user_id: Some(id), label: email.to_owned() }
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
        "INSERT INTO audit_log (actor_id, actor_label, action, entity, entity_id, before, after)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        actor.user_id.map(|u| u.0),
        actor.label,
        entry.action,
        entry.entity,
        entry.entity_id,
        entry.before,
        entry.after
    )
    .execute(conn)
    .await?;
    Ok(())
}
