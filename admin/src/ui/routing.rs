//! An API's routing in the admin UI (`/admin/apis/{id}/routing`): its upstream groups and
//! their targets, the weighted split, which plans go to which group, applications with an
//! exception, and each group's calls, 5xx rate and latency over the last 24 hours.
//!
//! Every change is a CSRF-checked POST; a refused one shows the page again with the
//! problem beside its field (422).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use time::OffsetDateTime;
use tollgate_core::FieldProblems;
use tollgate_core::apis::ApiId;
use tollgate_core::applications::ApplicationId;
use tollgate_core::audit::Actor;
use tollgate_core::db::PgPool;
use tollgate_core::plans::{PlanId, PlanSummary, list_plans};
use tollgate_core::routing::usage::{GroupUsage, per_group};
use tollgate_core::routing::{self, GroupName, RoutingView};
use tollgate_web::{AdminUser, Chrome, CsrfForm, FieldErrors, PageResult, Session, parse_id, render, see_other};

/// A plan and the group it is sent to (empty: the split).
struct PlanRow {
    plan: PlanSummary,
    group: String,
}

/// What a refused group form held, to show it again.
#[derive(Default)]
struct GroupDraft {
    name: String,
    weight: String,
    urls: String,
}

#[derive(Template)]
#[template(path = "admin/routing.html")]
struct RoutingPage {
    chrome: Chrome,
    api: ApiId,
    api_name: String,
    routing: RoutingView,
    plans: Vec<PlanRow>,
    usage: Vec<GroupUsage>,
    draft: GroupDraft,
    errors: FieldErrors,
}

impl RoutingPage {
    fn percent(rate: &f64) -> String {
        format!("{:.1} %", rate * 100.0)
    }

    /// A group's share of the split, as a percentage.
    fn share(&self, weight: &i32) -> String {
        let total: i64 = self.routing.groups.iter().map(|g| i64::from(g.weight)).sum();
        if total > 0 { format!("{:.1} %", f64::from(*weight) * 100.0 / total as f64) } else { "—".to_owned() }
    }

    fn millis(value: &Option<u64>) -> String {
        value.map_or_else(|| "—".to_owned(), |ms| format!("≤ {ms} ms"))
    }

    /// The error summary's items: each problem labelled as its form names it, linking to its
    /// control (the page's fields are per group and per plan, so they are named here).
    fn summary(&self) -> Vec<(String, String)> {
        self.errors
            .iter()
            .map(|(field, message)| {
                let (id, label) = match field {
                    "weights" => ("weights-error".to_owned(), "Weights".to_owned()),
                    "name" => (field.to_owned(), "Group name".to_owned()),
                    "weight" => (field.to_owned(), "Group weight".to_owned()),
                    "urls" => (field.to_owned(), "Target URLs".to_owned()),
                    "application" => (field.to_owned(), "Application id".to_owned()),
                    "app_group" => (field.to_owned(), "Send its calls to".to_owned()),
                    other => {
                        let label = if let Some(group) = other.strip_prefix("weight-") {
                            format!("Weight of {group}")
                        } else if let Some(group) = other.strip_prefix("remove-") {
                            format!("Remove {group}")
                        } else if let Some(plan) = other.strip_prefix("plan-") {
                            let name = self.plans.iter().find(|row| row.plan.id.0.to_string() == plan);
                            format!("Group of {}", name.map_or(plan, |row| row.plan.name.as_str()))
                        } else {
                            other.to_owned()
                        };
                        (other.to_owned(), label)
                    }
                };
                (id, format!("{label}: {message}"))
            })
            .collect()
    }
}

async fn page(
    session: &Session,
    pool: &PgPool,
    api: ApiId,
    status: StatusCode,
    draft: GroupDraft,
    errors: FieldErrors,
) -> PageResult<HttpResponse> {
    let routing = routing::get(pool, api).await?;
    let api_name = tollgate_core::apis::detail::get(pool, api).await?.name;
    let plans = list_plans(pool, api)
        .await?
        .into_iter()
        .map(|plan| {
            let group = routing.plans.iter().find(|r| r.id == plan.id.0).map(|r| r.group.clone()).unwrap_or_default();
            PlanRow { plan, group }
        })
        .collect();
    let usage = per_group(pool, api, OffsetDateTime::now_utc() - time::Duration::hours(24)).await?;
    let chrome = Chrome::for_session(session).await?;
    Ok(render(status, &RoutingPage { chrome, api, api_name, routing, plans, usage, draft, errors }))
}

pub async fn show(
    _admin: AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
) -> PageResult<HttpResponse> {
    let api = ApiId(parse_id(&path)?);
    page(&session, &pool, api, StatusCode::OK, GroupDraft::default(), FieldErrors::new()).await
}

fn back(api: ApiId) -> HttpResponse {
    see_other(format!("/admin/apis/{}/routing", api.0))
}

#[derive(serde::Deserialize)]
pub struct GroupForm {
    name: String,
    weight: String,
    /// One target URL per line.
    #[serde(default)]
    urls: String,
}

/// Adds or replaces a group (for `default`, sets its weight).
pub async fn put_group(
    AdminUser(user): AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    CsrfForm(form): CsrfForm<GroupForm>,
) -> PageResult<HttpResponse> {
    let api = ApiId(parse_id(&path)?);
    let mut errors = FieldErrors::new();
    let outcome = async {
        // The name and the weight together; the targets are checked by the change itself.
        let mut problems = FieldProblems::default();
        let name = problems.note(GroupName::parse("name", form.name.trim()))?;
        let weight = problems.note(routing::parse_weight("weight", &weight_value(&form.weight)))?;
        problems.into_result()?;
        let (Some(name), Some(weight)) = (name, weight) else {
            return Err(tollgate_core::Error::invalid("name", "a group name and a weight"));
        };
        let urls: Vec<String> = form.urls.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
        let urls = (name.as_str() != routing::DEFAULT_GROUP || !urls.is_empty()).then_some(urls);
        routing::put_group(&pool, &Actor::from(&user), api, &name, weight, urls).await
    }
    .await;
    if errors.note(outcome, "name")?.is_some() {
        return Ok(back(api));
    }
    let errors = form_errors(errors, &form.urls);
    let draft = GroupDraft { name: form.name, weight: form.weight, urls: form.urls };
    page(&session, &pool, api, StatusCode::UNPROCESSABLE_ENTITY, draft, errors).await
}

/// A form's weight as the JSON value the checks read (text that is not a number stays text).
fn weight_value(raw: &str) -> serde_json::Value {
    raw.trim().parse::<i64>().map_or_else(|_| serde_json::Value::String(raw.to_owned()), serde_json::Value::from)
}

/// Core names list items (`urls[1]`); the form has one field for them, where every refused
/// line is named in one message.
fn form_errors(mut errors: FieldErrors, urls: &str) -> FieldErrors {
    errors.fold_lines("urls", urls);
    let mut out = FieldErrors::new();
    for field in ["name", "weight", "urls", "group"] {
        if let Some(message) = errors.get(field) {
            out.add(field, message);
        }
    }
    out
}

/// The split: one `weight-<group>` field per group.
pub async fn set_weights(
    AdminUser(user): AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    CsrfForm(form): CsrfForm<Vec<(String, String)>>,
) -> PageResult<HttpResponse> {
    let api = ApiId(parse_id(&path)?);
    let mut errors = FieldErrors::new();
    let mut weights = std::collections::BTreeMap::new();
    for (field, value) in &form {
        let Some(name) = field.strip_prefix("weight-") else { continue };
        match routing::parse_weight(format!("weight-{name}"), &weight_value(value)) {
            Ok(weight) => {
                weights.insert(name.to_owned(), weight);
            }
            Err(err) => errors.absorb(err)?,
        }
    }
    if errors.is_empty() {
        match routing::set_weights(&pool, &Actor::from(&user), api, &weights).await {
            Ok(()) => return Ok(back(api)),
            // The sum is the split's problem, shown above the weights.
            Err(tollgate_core::Error::Invalid { message, .. }) => errors.add("weights", message),
            Err(err) => return Err(err.into()),
        }
    }
    page(&session, &pool, api, StatusCode::UNPROCESSABLE_ENTITY, GroupDraft::default(), errors).await
}

#[derive(serde::Deserialize)]
pub struct ConfirmForm {
    confirm: Option<String>,
}

/// Removes a group once its confirmation box is ticked.
pub async fn delete_group(
    AdminUser(user): AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String)>,
    CsrfForm(form): CsrfForm<ConfirmForm>,
) -> PageResult<HttpResponse> {
    let (id, name) = path.into_inner();
    let api = ApiId(parse_id(&id)?);
    let mut errors = FieldErrors::new();
    if form.confirm.as_deref() != Some("yes") {
        errors.add(format!("remove-{name}"), "Tick the box to confirm: its calls move to the other groups.");
    } else if errors
        .note(routing::delete_group(&pool, &Actor::from(&user), api, &name).await, &format!("remove-{name}"))?
        .is_some()
    {
        return Ok(back(api));
    }
    page(&session, &pool, api, StatusCode::UNPROCESSABLE_ENTITY, GroupDraft::default(), errors).await
}

#[derive(serde::Deserialize)]
pub struct RouteForm {
    /// A plan id or an application id, by the route.
    id: String,
    /// A group name, or empty for none.
    group: String,
}

fn chosen(field: &'static str, group: &str) -> tollgate_core::Result<Option<GroupName>> {
    let group = group.trim();
    if group.is_empty() { Ok(None) } else { GroupName::parse(field, group).map(Some) }
}

/// Sends a plan to a group, or back to the split.
pub async fn set_plan(
    AdminUser(user): AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    CsrfForm(form): CsrfForm<RouteForm>,
) -> PageResult<HttpResponse> {
    let api = ApiId(parse_id(&path)?);
    let plan = PlanId(form.id.trim().parse().map_err(|_| tollgate_core::Error::invalid("plan", "choose a plan"))?);
    let field = format!("plan-{}", plan.0);
    let outcome = async {
        let group = chosen("group", &form.group)?;
        routing::set_plan_route(&pool, &Actor::from(&user), plan, group.as_ref(), Some(api)).await
    }
    .await;
    let mut errors = FieldErrors::new();
    match outcome {
        Ok(()) => return Ok(back(api)),
        Err(tollgate_core::Error::Invalid { message, .. }) => errors.add(field, message),
        Err(err) => return Err(err.into()),
    }
    page(&session, &pool, api, StatusCode::UNPROCESSABLE_ENTITY, GroupDraft::default(), errors).await
}

/// Gives one application an exception (or removes it, with an empty group).
pub async fn set_application(
    AdminUser(user): AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    CsrfForm(form): CsrfForm<RouteForm>,
) -> PageResult<HttpResponse> {
    let api = ApiId(parse_id(&path)?);
    let mut errors = FieldErrors::new();
    let outcome = async {
        let app = form
            .id
            .trim()
            .parse::<uuid::Uuid>()
            .map_err(|_| tollgate_core::Error::invalid("application", "an application id (a UUID)"))?;
        let group = chosen("app_group", &form.group)?;
        routing::set_application_route(&pool, &Actor::from(&user), ApplicationId(app), group.as_ref(), Some(api)).await
    }
    .await;
    match outcome {
        Ok(()) => return Ok(back(api)),
        Err(tollgate_core::Error::Invalid { field, message }) if field == "group" => errors.add("app_group", message),
        Err(tollgate_core::Error::Invalid { field, message }) if field == "application" => {
            errors.add("application", message)
        }
        Err(tollgate_core::Error::NotFound) => errors.add("application", "no application has this id"),
        Err(err) => errors.absorb(err)?,
    }
    page(&session, &pool, api, StatusCode::UNPROCESSABLE_ENTITY, GroupDraft::default(), errors).await
}
