//! Queuing an event: one delivery per subscription that wants it, written in the
//! caller's transaction, so an event is delivered if and only if its change commits.

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::events::EventType;
use crate::Result;

/// An event's `data`, one shape for every event: what changed, who changed it,
/// and the entity before and after (as the audit log records it).
pub fn data(entity: &str, id: Option<Uuid>, actor: &str, before: Option<&Value>, after: Option<&Value>) -> Value {
    json!({"entity": entity, "id": id, "actor": actor, "before": before, "after": after})
}

/// The body every delivery of an event carries:
/// `{"id", "type", "created_at", "data"}`; returns how many deliveries were queued.
pub async fn enqueue(conn: &mut sqlx::PgConnection, event: EventType, data: Value) -> Result<u64> {
    let event_id = Uuid::now_v7();
    let body = json!({
        "id": event_id,
        "type": event.as_str(),
        "created_at": OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default(),
        "data": data,
    })
    .to_string();
    let queued = sqlx::query!(
        "INSERT INTO webhook_deliveries (id, subscription_id, event_id, event, body)
         SELECT gen_random_uuid(), s.id, $1, $2, $3 FROM webhook_subscriptions s
         WHERE cardinality(s.events) = 0 OR $2 = ANY (s.events)",
        event_id,
        event.as_str(),
        body
    )
    .execute(conn)
    .await?;
    Ok(queued.rows_affected())
}
