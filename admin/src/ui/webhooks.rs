//! Webhooks in the admin UI: subscriptions (create with URL and events, the
//! secret shown once, edit URL, description and events, delete) and a
//! subscription's recent deliveries with request, response, duration,
//! attempts, next retry and a Redeliver button.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use time::format_description::well_known::Rfc3339;
use tollgate_core::audit::Actor;
use tollgate_core::db::PgPool;
use tollgate_core::webhooks::subscriptions::{self, Delivery, Subscription, SubscriptionInput};
use tollgate_core::webhooks::{EventType, TargetPolicy};
use tollgate_web::{
    AdminUser, Chrome, CsrfForm, EmptyForm, FieldErrors, PageResult, Session, parse_id, render, see_other,
};

/// How many deliveries the page shows.
const RECENT: i64 = 50;

/// The form's events: a checkbox per event, named `event_<name>`.
struct EventChoice {
    name: &'static str,
    checked: bool,
}

fn choices(chosen: &[String]) -> Vec<EventChoice> {
    EventType::ALL
        .iter()
        .map(|e| EventChoice { name: e.as_str(), checked: chosen.iter().any(|c| c == e.as_str()) })
        .collect()
}

#[derive(Template)]
#[template(path = "admin/webhooks.html")]
struct ListPage {
    chrome: Chrome,
    subscriptions: Vec<Subscription>,
    /// The URL and secret of the subscription just created.
    created: Option<(String, String)>,
    url: String,
    description: String,
    events: Vec<EventChoice>,
    errors: FieldErrors,
}

impl ListPage {
    fn event_names(sub: &Subscription) -> String {
        if sub.events.is_empty() {
            "every event".to_owned()
        } else {
            sub.events.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(", ")
        }
    }
}

pub async fn list(_admin: AdminUser, session: Session, pool: web::Data<PgPool>) -> PageResult<HttpResponse> {
    let subscriptions = subscriptions::list(&pool).await?;
    let chrome = Chrome::for_session(&session).await?;
    let page = ListPage {
        chrome,
        subscriptions,
        created: None,
        url: String::new(),
        description: String::new(),
        events: choices(&[]),
        errors: FieldErrors::new(),
    };
    Ok(render(StatusCode::OK, &page))
}

/// The subscription a form describes: its URL, description and ticked events.
fn input_from(form: &HashMap<String, String>) -> SubscriptionInput {
    SubscriptionInput {
        url: form.get("url").cloned().unwrap_or_default(),
        description: form.get("description").cloned().unwrap_or_default(),
        events: form.keys().filter_map(|k| k.strip_prefix("event_")).map(str::to_owned).collect(),
    }
}

/// Creates a subscription and shows its secret on this one response.
pub async fn create(
    AdminUser(user): AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    policy: web::Data<TargetPolicy>,
    CsrfForm(form): CsrfForm<HashMap<String, String>>,
) -> PageResult<HttpResponse> {
    let input = input_from(&form);
    let mut errors = FieldErrors::new();
    let created = errors.note(subscriptions::create(&pool, &input, **policy, &Actor::from(&user)).await, "url")?;
    let status = if created.is_some() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    let subscriptions = subscriptions::list(&pool).await?;
    let chrome = Chrome::for_session(&session).await?;
    // After a success the form starts empty; after an error it keeps what was typed.
    let (url, description, events) = match &created {
        Some(_) => (String::new(), String::new(), choices(&[])),
        None => (input.url.clone(), input.description.clone(), choices(&input.events)),
    };
    let created = created.map(|(sub, secret)| (sub.url, secret));
    Ok(render(status, &ListPage { chrome, subscriptions, created, url, description, events, errors }))
}

pub async fn delete(
    AdminUser(user): AdminUser,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    _form: CsrfForm<EmptyForm>,
) -> PageResult<HttpResponse> {
    subscriptions::delete(&pool, parse_id(&path)?, &Actor::from(&user)).await?;
    Ok(see_other("/admin/webhooks"))
}

/// A delivery as the page shows it.
struct DeliveryRow {
    d: Delivery,
    created_at: String,
    last_attempt_at: String,
    next_attempt_at: String,
    /// The body, pretty-printed when it is JSON.
    body: String,
}

fn when(t: Option<time::OffsetDateTime>) -> String {
    t.and_then(|t| t.format(&Rfc3339).ok()).unwrap_or_default()
}

impl From<Delivery> for DeliveryRow {
    fn from(d: Delivery) -> Self {
        let body = serde_json::from_str::<serde_json::Value>(&d.body)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| d.body.clone());
        DeliveryRow {
            created_at: when(Some(d.created_at)),
            last_attempt_at: when(d.last_attempt_at),
            next_attempt_at: when(d.next_attempt_at),
            body,
            d,
        }
    }
}

#[derive(Template)]
#[template(path = "admin/webhook.html")]
struct DetailPage {
    chrome: Chrome,
    sub: Subscription,
    events: String,
    deliveries: Vec<DeliveryRow>,
    total: i64,
    /// The edit form: what it holds and its problems.
    url: String,
    description: String,
    choices: Vec<EventChoice>,
    errors: FieldErrors,
}

/// The detail page; `edit` is what a refused edit form held, with its problems.
async fn detail(
    session: &Session,
    pool: &PgPool,
    id: uuid::Uuid,
    edit: Option<(SubscriptionInput, FieldErrors)>,
) -> PageResult<HttpResponse> {
    let sub = subscriptions::get(pool, id).await?;
    let (deliveries, total) = subscriptions::deliveries(pool, id, None, RECENT, 0).await?;
    let chrome = Chrome::for_session(session).await?;
    let events = ListPage::event_names(&sub);
    let deliveries = deliveries.into_iter().map(DeliveryRow::from).collect();
    let (status, url, description, choices, errors) = match edit {
        Some((input, errors)) => {
            let choices = choices(&input.events);
            (StatusCode::UNPROCESSABLE_ENTITY, input.url, input.description, choices, errors)
        }
        None => {
            let chosen: Vec<String> = sub.events.iter().map(|e| e.as_str().to_owned()).collect();
            (StatusCode::OK, sub.url.clone(), sub.description.clone(), choices(&chosen), FieldErrors::new())
        }
    };
    let page = DetailPage { chrome, sub, events, deliveries, total, url, description, choices, errors };
    Ok(render(status, &page))
}

pub async fn show(
    _admin: AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
) -> PageResult<HttpResponse> {
    detail(&session, &pool, parse_id(&path)?, None).await
}

/// Replaces a subscription's URL, description and events; its secret stays.
pub async fn edit(
    AdminUser(user): AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    policy: web::Data<TargetPolicy>,
    path: web::Path<String>,
    CsrfForm(form): CsrfForm<HashMap<String, String>>,
) -> PageResult<HttpResponse> {
    let id = parse_id(&path)?;
    let input = input_from(&form);
    let mut errors = FieldErrors::new();
    let updated = errors.note(subscriptions::update(&pool, id, &input, **policy, &Actor::from(&user)).await, "url")?;
    if updated.is_some() {
        return Ok(see_other(format!("/admin/webhooks/{id}")));
    }
    detail(&session, &pool, id, Some((input, errors))).await
}

pub async fn redeliver(
    AdminUser(user): AdminUser,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String)>,
    _form: CsrfForm<EmptyForm>,
) -> PageResult<HttpResponse> {
    let (id, delivery) = path.into_inner();
    let id = parse_id(&id)?;
    subscriptions::redeliver(&pool, id, parse_id(&delivery)?, &Actor::from(&user)).await?;
    Ok(see_other(format!("/admin/webhooks/{id}")))
}
