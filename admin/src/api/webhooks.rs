//! Webhook subscriptions in the admin API: create (the signing secret answered
//! once), list, read, replace, delete; a subscription's recent deliveries and
//! redelivery. See docs/WEBHOOKS.md.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use tollgate_core::db::PgPool;
use tollgate_core::webhooks::subscriptions::{self, Delivery, Subscription, SubscriptionInput};
use tollgate_core::webhooks::{EventType, TargetPolicy};
use tollgate_web::parse_id;
use utoipa::openapi::schema::{Array, ArrayBuilder, ObjectBuilder, Type};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::admin;
use super::error::{ApiResult, ErrorBody};
use super::page::{Keyed, Page, PageQuery};
use super::wire::{created, parse_json_object, parse_query, rfc3339};

/// Event names, each at most once; empty or absent means every event.
fn event_list() -> Array {
    let name = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(EventType::ALL.iter().map(|e| e.as_str())))
        .build();
    ArrayBuilder::new().items(name).max_items(Some(EventType::ALL.len())).unique_items(true).build()
}

/// A webhook subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookOut {
    pub id: Uuid,
    pub url: String,
    pub description: String,
    /// The events delivered; empty means every event.
    #[schema(schema_with = event_list)]
    pub events: Vec<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<Subscription> for WebhookOut {
    fn from(s: Subscription) -> Self {
        WebhookOut {
            id: s.id,
            url: s.url,
            description: s.description,
            events: s.events.iter().map(|e| e.as_str().to_owned()).collect(),
            created_at: rfc3339(s.created_at),
        }
    }
}

/// A new subscription with its signing secret, shown only in this answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhookOut {
    #[serde(flatten)]
    pub subscription: WebhookOut,
    /// Verifies the `Tollgate-Signature` header; store it now, it is not shown again.
    pub secret: String,
}

/// What to deliver where.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookIn {
    /// An `http` or `https` URL; private and loopback hosts are refused unless the server allows them.
    #[schema(max_length = 2000, pattern = "^https?://")]
    pub url: String,
    #[schema(max_length = 200, pattern = "^[^\\u0000]*$")]
    #[serde(default)]
    pub description: String,
    #[schema(schema_with = event_list)]
    #[serde(default)]
    pub events: Vec<String>,
}

impl From<WebhookIn> for SubscriptionInput {
    fn from(w: WebhookIn) -> Self {
        SubscriptionInput { url: w.url, description: w.description, events: w.events }
    }
}

/// Every webhook subscription, newest first.
#[utoipa::path(get, operation_id = "list_webhooks", path = "/admin/api/v1/webhooks", tag = "webhooks",
    responses((status = 200, body = Vec<WebhookOut>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(req: HttpRequest, pool: web::Data<PgPool>) -> ApiResult<HttpResponse> {
    admin(&req, &pool).await?;
    let subs = subscriptions::list(&pool).await?;
    Ok(HttpResponse::Ok().json(subs.into_iter().map(WebhookOut::from).collect::<Vec<_>>()))
}

/// Subscribe a URL to events. The answer holds the signing secret, once.
#[utoipa::path(post, operation_id = "create_webhook", path = "/admin/api/v1/webhooks", tag = "webhooks", request_body = WebhookIn,
    responses((status = 201, body = CreatedWebhookOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "Not an http(s) URL, a private target, or an unknown event; `field` names it")),
    security(("bearer" = [])))]
pub async fn create(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    policy: web::Data<TargetPolicy>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let input: WebhookIn = parse_json_object(&body)?;
    let (sub, secret) = subscriptions::create(&pool, &input.into(), **policy, &actor).await?;
    Ok(created(format!("/admin/api/v1/webhooks/{}", sub.id))
        .json(CreatedWebhookOut { subscription: sub.into(), secret }))
}

/// One webhook subscription.
#[utoipa::path(get, operation_id = "get_webhook", path = "/admin/api/v1/webhooks/{id}", tag = "webhooks", params(("id" = Uuid, Path)),
    responses((status = 200, body = WebhookOut), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn show(req: HttpRequest, pool: web::Data<PgPool>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    admin(&req, &pool).await?;
    let id = parse_id(&path)?;
    Ok(HttpResponse::Ok().json(WebhookOut::from(subscriptions::get(&pool, id).await?)))
}

/// Replace a subscription's URL, description and events; its secret stays.
#[utoipa::path(put, operation_id = "replace_webhook", path = "/admin/api/v1/webhooks/{id}", tag = "webhooks", params(("id" = Uuid, Path)), request_body = WebhookIn,
    responses((status = 200, body = WebhookOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "Not an http(s) URL, a private target, or an unknown event; `field` names it")),
    security(("bearer" = [])))]
pub async fn replace(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    policy: web::Data<TargetPolicy>,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let id = parse_id(&path)?;
    let input: WebhookIn = parse_json_object(&body)?;
    let sub = subscriptions::update(&pool, id, &input.into(), **policy, &actor).await?;
    Ok(HttpResponse::Ok().json(WebhookOut::from(sub)))
}

/// Delete a subscription and its deliveries; queued deliveries are not sent.
#[utoipa::path(delete, operation_id = "delete_webhook", path = "/admin/api/v1/webhooks/{id}", tag = "webhooks", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(req: HttpRequest, pool: web::Data<PgPool>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let id = parse_id(&path)?;
    subscriptions::delete(&pool, id, &actor).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A request header as sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct HeaderOut {
    pub name: String,
    pub value: String,
}

/// One delivery and its last attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryOut {
    pub id: Uuid,
    /// Shared by every delivery of one event, redeliveries included.
    pub event_id: Uuid,
    pub event: String,
    #[schema(pattern = "^(queued|retrying|delivered|failed)$")]
    pub state: String,
    pub attempts: i32,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub last_attempt_at: Option<String>,
    /// When the next attempt is due; absent once delivered or failed.
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
    #[schema(format = DateTime)]
    pub delivered_at: Option<String>,
    pub request_headers: Vec<HeaderOut>,
    /// The JSON body sent, exactly as signed.
    pub request_body: String,
    pub response_status: Option<i32>,
    /// The first 2,000 bytes of the response body.
    pub response_body: Option<String>,
    /// Why the last attempt got no response.
    pub error: Option<String>,
    pub duration_ms: Option<i32>,
    /// The delivery this one sends again.
    pub redelivery_of: Option<Uuid>,
}

impl Keyed for DeliveryOut {
    fn key(&self) -> String {
        self.id.to_string()
    }
}

impl From<Delivery> for DeliveryOut {
    fn from(d: Delivery) -> Self {
        DeliveryOut {
            id: d.id,
            event_id: d.event_id,
            event: d.event,
            state: d.state.as_str().to_owned(),
            attempts: d.attempts,
            created_at: rfc3339(d.created_at),
            last_attempt_at: d.last_attempt_at.map(rfc3339),
            next_attempt_at: d.next_attempt_at.map(rfc3339),
            delivered_at: d.delivered_at.map(rfc3339),
            request_headers: d.request_headers.into_iter().map(|(name, value)| HeaderOut { name, value }).collect(),
            request_body: d.body,
            response_status: d.response_status,
            response_body: d.response_body,
            error: d.error,
            duration_ms: d.duration_ms,
            redelivery_of: d.redelivery_of,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// Only the deliveries after this one in the list (older): pass the last `id` of a page to
    /// get the next one (keyset paging, as fast at any depth; `page` then counts from there).
    pub after_id: Option<Uuid>,
    /// 1-based page number. Offset pages reach the first 10,000 rows: a page that starts
    /// past them (`(page - 1) × per_page ≥ 10000`) is refused with 400 `page_too_deep`;
    /// follow `next` (`after_id`) to go further.
    #[param(minimum = 1, maximum = 10000)]
    pub page: Option<i64>,
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<i64>,
}

/// A subscription's deliveries, newest first.
#[utoipa::path(get, operation_id = "list_webhook_deliveries", path = "/admin/api/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = Uuid, Path), DeliveryQuery),
    responses((status = 200, body = Page<DeliveryOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "A parameter out of range; `field` names it")),
    security(("bearer" = [])))]
pub async fn deliveries(req: HttpRequest, pool: web::Data<PgPool>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    admin(&req, &pool).await?;
    let id = parse_id(&path)?;
    let q: DeliveryQuery = parse_query(&req)?;
    let page = PageQuery { page: q.page, per_page: q.per_page };
    let (limit, offset) = page.window()?;
    let (list, total) = subscriptions::deliveries(&pool, id, q.after_id, limit, offset).await?;
    Ok(HttpResponse::Ok().json(Page::new(list.into_iter().map(DeliveryOut::from).collect(), &req, &page, total)))
}

/// The delivery queued by a redelivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct RedeliveryOut {
    pub id: Uuid,
}

/// Send a delivery's event again, as a new delivery due at once.
#[utoipa::path(post, operation_id = "redeliver_webhook_delivery", path = "/admin/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver", tag = "webhooks",
    params(("id" = Uuid, Path), ("delivery" = Uuid, Path)),
    responses((status = 202, body = RedeliveryOut), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn redeliver(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let (id, delivery) = path.into_inner();
    let (id, delivery) = (parse_id(&id)?, parse_id(&delivery)?);
    let new = subscriptions::redeliver(&pool, id, delivery, &actor).await?;
    Ok(HttpResponse::Accepted().json(RedeliveryOut { id: new }))
}
