//! Subscriptions and their deliveries as admins manage them: create (the secret
//! shown once), list, update, delete; recent deliveries and redelivery.

use serde_json::{Value, json};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::events::EventType;
use super::target::{TargetPolicy, parse_url};
use crate::audit::{self, Actor, Entry};
use crate::{Error, FieldProblems, Result};

#[derive(Debug, Clone)]
pub struct Subscription {
    pub id: Uuid,
    pub url: String,
    pub description: String,
    /// Empty: every event.
    pub events: Vec<EventType>,
    pub created_at: OffsetDateTime,
}

impl Subscription {
    pub fn wants(&self, event: EventType) -> bool {
        self.events.is_empty() || self.events.contains(&event)
    }
}

/// What an admin asks for; checked by `create` and `update`.
#[derive(Debug, Clone, Default)]
pub struct SubscriptionInput {
    pub url: String,
    pub description: String,
    /// Names as sent; empty means every event.
    pub events: Vec<String>,
}

/// The longest description.
pub const MAX_DESCRIPTION: usize = 200;

struct Checked {
    url: String,
    description: String,
    events: Vec<EventType>,
}

/// Checks every field, so one answer names every problem.
fn check(input: &SubscriptionInput, policy: TargetPolicy) -> Result<Checked> {
    let mut problems = FieldProblems::default();
    let url = problems.note(parse_url(&input.url, policy))?;
    let description = input.description.trim().to_owned();
    if description.chars().count() > MAX_DESCRIPTION {
        problems.add("description", format!("use at most {MAX_DESCRIPTION} characters"));
    } else if description.contains('\0') {
        problems.add("description", "remove the NUL character");
    }
    let mut events = Vec::new();
    for name in &input.events {
        let Some(event) = problems.note(name.trim().parse::<EventType>().map_err(|e| e.at("events")))? else {
            continue;
        };
        if events.contains(&event) {
            problems.add("events", format!("`{event}` is listed twice; name each event once"));
        } else {
            events.push(event);
        }
    }
    problems.into_result()?;
    events.sort();
    let url = url.ok_or_else(|| Error::Internal("a refused URL passed the checks".into()))?;
    Ok(Checked { url: url.to_string(), description, events })
}

fn names(events: &[EventType]) -> Vec<String> {
    events.iter().map(|e| e.as_str().to_owned()).collect()
}

fn parse_stored(
    id: Uuid,
    url: String,
    description: String,
    events: Vec<String>,
    created_at: OffsetDateTime,
) -> Subscription {
    // A name dropped from the list since it was stored no longer matches anything.
    let events = events.iter().filter_map(|e| e.parse().ok()).collect();
    Subscription { id, url, description, events, created_at }
}

/// A new subscription and its signing secret, which is never shown again.
pub async fn create(
    pool: &PgPool,
    input: &SubscriptionInput,
    policy: TargetPolicy,
    actor: &Actor,
) -> Result<(Subscription, String)> {
    let checked = check(input, policy)?;
    let id = Uuid::now_v7();
    let secret = format!("whsec_{}", crate::secrets::random_token());
    let mut tx = pool.begin().await?;
    let created_at = sqlx::query_scalar!(
        "INSERT INTO webhook_subscriptions (id, url, description, events, secret) VALUES ($1, $2, $3, $4, $5)
         RETURNING created_at",
        id,
        checked.url,
        checked.description,
        &names(&checked.events),
        secret
    )
    .fetch_one(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "webhook.create",
            entity: "webhook_subscription",
            entity_id: Some(id),
            before: None,
            after: Some(json!({"url": checked.url, "events": names(&checked.events)})),
        },
    )
    .await?;
    tx.commit().await?;
    let sub =
        Subscription { id, url: checked.url, description: checked.description, events: checked.events, created_at };
    Ok((sub, secret))
}

/// Replaces a subscription's URL, description and events; the secret stays.
pub async fn update(
    pool: &PgPool,
    id: Uuid,
    input: &SubscriptionInput,
    policy: TargetPolicy,
    actor: &Actor,
) -> Result<Subscription> {
    let checked = check(input, policy)?;
    let mut tx = pool.begin().await?;
    let row = sqlx::query!(
        "UPDATE webhook_subscriptions SET url = $2, description = $3, events = $4 WHERE id = $1 RETURNING created_at",
        id,
        checked.url,
        checked.description,
        &names(&checked.events)
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound)?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "webhook.update",
            entity: "webhook_subscription",
            entity_id: Some(id),
            before: None,
            after: Some(json!({"url": checked.url, "events": names(&checked.events)})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Subscription {
        id,
        url: checked.url,
        description: checked.description,
        events: checked.events,
        created_at: row.created_at,
    })
}

/// Every subscription, newest first.
pub async fn list(pool: &PgPool) -> Result<Vec<Subscription>> {
    let rows = sqlx::query!(
        "SELECT id, url, description, events, created_at FROM webhook_subscriptions ORDER BY created_at DESC, id DESC"
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| parse_stored(r.id, r.url, r.description, r.events, r.created_at)).collect())
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Subscription> {
    let r =
        sqlx::query!("SELECT id, url, description, events, created_at FROM webhook_subscriptions WHERE id = $1", id)
            .fetch_optional(pool)
            .await?
            .ok_or(Error::NotFound)?;
    Ok(parse_stored(r.id, r.url, r.description, r.events, r.created_at))
}

/// Deletes a subscription and its deliveries (queued ones are not sent).
pub async fn delete(pool: &PgPool, id: Uuid, actor: &Actor) -> Result<()> {
    let mut tx = pool.begin().await?;
    let url = sqlx::query_scalar!("DELETE FROM webhook_subscriptions WHERE id = $1 RETURNING url", id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound)?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "webhook.delete",
            entity: "webhook_subscription",
            entity_id: Some(id),
            before: Some(json!({"url": url})),
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Not tried yet.
    Queued,
    /// The last attempt failed; another is scheduled.
    Retrying,
    Delivered,
    /// Every attempt failed; only a redelivery sends it again.
    Failed,
}

impl DeliveryState {
    fn of(attempts: i32, delivered: bool, next: Option<OffsetDateTime>) -> DeliveryState {
        match (delivered, next, attempts) {
            (true, _, _) => DeliveryState::Delivered,
            (false, Some(_), 0) => DeliveryState::Queued,
            (false, Some(_), _) => DeliveryState::Retrying,
            (false, None, _) => DeliveryState::Failed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Queued => "queued",
            DeliveryState::Retrying => "retrying",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }
}

/// One delivery with its last attempt: request, response, duration.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: Uuid,
    pub subscription_id: Uuid,
    pub event_id: Uuid,
    pub event: String,
    pub state: DeliveryState,
    pub created_at: OffsetDateTime,
    pub attempts: i32,
    pub next_attempt_at: Option<OffsetDateTime>,
    pub last_attempt_at: Option<OffsetDateTime>,
    pub delivered_at: Option<OffsetDateTime>,
    /// The request body: the exact bytes signed.
    pub body: String,
    /// Header name to value, as last sent.
    pub request_headers: Vec<(String, String)>,
    pub response_status: Option<i32>,
    /// At most the first 2,000 characters.
    pub response_body: Option<String>,
    /// Why the last attempt got no response (timeout, refused connection, refused target).
    pub error: Option<String>,
    pub duration_ms: Option<i32>,
    pub redelivery_of: Option<Uuid>,
}

fn headers_of(value: Option<Value>) -> Vec<(String, String)> {
    match value {
        Some(Value::Object(map)) => {
            map.into_iter().map(|(k, v)| (k, v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string()))).collect()
        }
        _ => Vec::new(),
    }
}

/// A subscription's deliveries, newest first, and how many there are (counted up to
/// `COUNT_LIMIT + 1`). With `after_id` (the last id of a page; keyset paging) only the
/// deliveries after that one, read from the index at any depth.
pub async fn deliveries(
    pool: &PgPool,
    subscription: Uuid,
    after_id: Option<Uuid>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Delivery>, i64)> {
    get(pool, subscription).await?;
    let rows = sqlx::query!(
        "SELECT id, subscription_id, event_id, event, body, created_at, attempts, next_attempt_at, delivered_at,
                last_attempt_at, request_headers, response_status, response_body, error, duration_ms, redelivery_of
         FROM webhook_deliveries
         WHERE subscription_id = $1
           AND ($4::uuid IS NULL OR (created_at, id) < (SELECT created_at, id FROM webhook_deliveries WHERE id = $4))
         ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3",
        subscription,
        limit,
        offset,
        after_id
    )
    .fetch_all(pool)
    .await?;
    let total = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM (SELECT 1 FROM webhook_deliveries WHERE subscription_id = $1 LIMIT $2) AS d"#,
        subscription,
        crate::db::COUNT_LIMIT + 1
    )
    .fetch_one(pool)
    .await?;
    let list = rows
        .into_iter()
        .map(|r| Delivery {
            id: r.id,
            subscription_id: r.subscription_id,
            event_id: r.event_id,
            event: r.event,
            state: DeliveryState::of(r.attempts, r.delivered_at.is_some(), r.next_attempt_at),
            created_at: r.created_at,
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
            last_attempt_at: r.last_attempt_at,
            delivered_at: r.delivered_at,
            body: r.body,
            request_headers: headers_of(r.request_headers),
            response_status: r.response_status,
            response_body: r.response_body,
            error: r.error,
            duration_ms: r.duration_ms,
            redelivery_of: r.redelivery_of,
        })
        .collect();
    Ok((list, total))
}

/// Queues the same event again for the same subscription, due at once, as a new
/// delivery (GitHub's "redeliver"); returns its id.
pub async fn redeliver(pool: &PgPool, subscription: Uuid, delivery: Uuid, actor: &Actor) -> Result<Uuid> {
    let id = Uuid::now_v7();
    let mut tx = pool.begin().await?;
    let copied = sqlx::query!(
        "INSERT INTO webhook_deliveries (id, subscription_id, event_id, event, body, redelivery_of)
         SELECT $1, subscription_id, event_id, event, body, id FROM webhook_deliveries
         WHERE id = $2 AND subscription_id = $3",
        id,
        delivery,
        subscription
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if copied == 0 {
        return Err(Error::NotFound);
    }
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "webhook.redeliver",
            entity: "webhook_delivery",
            entity_id: Some(id),
            before: None,
            after: Some(json!({"redelivery_of": delivery})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}
