//! Application plans in the admin API: their limits (over `protocol::Period`) and
//! tiered prices; create, read, replace, copy and delete.

use actix_web::{HttpRequest, HttpResponse, web};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tollgate_core::FieldProblems;
use tollgate_core::apis::{ApiId, detail};
use tollgate_core::billing::{PricingMode, money};
use tollgate_core::db::PgPool;
use tollgate_core::plans::{self, NewLimit, NewPlan, NewPrice, NewPricingMode, Period, PlanDetail, PlanId};
use tollgate_core::usage::levels;
use tollgate_web::parse_id;
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::admin;
use super::error::{ApiResult, ErrorBody};
use super::schemas;
use super::wire::{created, decimal_in, parse_json, parse_json_object};

/// At most `max` units of `metric` per calendar `period` in the plan's time zone.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitIn {
    /// A metric or method system name of the API, e.g. `hits`.
    pub metric: String,
    #[schema(schema_with = schemas::period)]
    pub period: Period,
    #[schema(minimum = 0)]
    pub max: i64,
}

/// Units `from..=to` of `metric` in a month cost `price_per_unit` each.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceIn {
    pub metric: String,
    #[schema(minimum = 1)]
    pub from: i64,
    /// Open-ended when absent.
    #[schema(minimum = 1)]
    pub to: Option<i64>,
    /// At most 8 digits before the point and 6 after.
    #[schema(schema_with = schemas::unit_price)]
    #[serde(deserialize_with = "super::wire::string_or_number")]
    pub price_per_unit: String,
}

/// How the tiers of one priced metric apply: `graduated` (each tier's units at its
/// price, the default) or `volume` (the month's total picks one tier for every unit).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PricingModeIn {
    /// A metric that has price tiers on this plan.
    #[schema(min_length = 1, max_length = 255)]
    pub metric: String,
    #[schema(schema_with = schemas::pricing_mode)]
    pub mode: PricingMode,
}

/// A plan's full definition.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanIn {
    #[schema(pattern = "^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$")]
    pub system_name: String,
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 5000)]
    pub description: String,
    #[serde(default)]
    pub published: bool,
    #[serde(default)]
    pub approval_required: bool,
    /// At most 10 digits before the point, and no more decimals than the currency's minor
    /// unit: 2 for USD, 0 for JPY, 3 for KWD, 4 at most.
    #[serde(default = "zero", deserialize_with = "super::wire::string_or_number")]
    #[schema(schema_with = schemas::plan_fee)]
    pub setup_fee: String,
    /// At most 10 digits before the point, and no more decimals than the currency's minor
    /// unit: 2 for USD, 0 for JPY, 3 for KWD, 4 at most.
    #[serde(default = "zero", deserialize_with = "super::wire::string_or_number")]
    #[schema(schema_with = schemas::plan_fee)]
    pub monthly_fee: String,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 3650)]
    pub trial_days: i32,
    /// A currency ISO 4217 lists with a minor unit (`USD`, `EUR`, `JPY`, …); a code it does
    /// not list (`UDS`, `XXX`, `XAU`) is refused. A plan saved with another code keeps it.
    #[schema(pattern = "^[A-Z]{3}$", example = "USD")]
    pub currency: String,
    /// IANA time zone the limit windows follow, e.g. `Europe/Paris`.
    #[serde(default = "utc")]
    pub time_zone: String,
    #[serde(default)]
    pub limits: Vec<LimitIn>,
    #[serde(default)]
    pub pricing: Vec<PriceIn>,
    /// Priced metrics not listed are graduated.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub pricing_modes: Vec<PricingModeIn>,
}

fn utc() -> String {
    "UTC".into()
}

fn zero() -> String {
    "0".into()
}

impl PlanIn {
    /// The plan as core takes it; amounts that are no decimal number are 422, each named.
    fn into_new(self) -> ApiResult<NewPlan> {
        let mut problems = FieldProblems::default();
        let setup_fee = problems.note(decimal_in("setup_fee", &self.setup_fee))?;
        let monthly_fee = problems.note(decimal_in("monthly_fee", &self.monthly_fee))?;
        let mut pricing = Vec::with_capacity(self.pricing.len());
        for (i, p) in self.pricing.into_iter().enumerate() {
            let field = format!("pricing[{i}].price_per_unit");
            if let Some(price_per_unit) = problems.note(decimal_in(field, &p.price_per_unit))? {
                pricing.push(NewPrice { metric: p.metric, from: p.from, to: p.to, price_per_unit });
            }
        }
        problems.into_result()?;
        Ok(NewPlan {
            system_name: self.system_name,
            name: self.name,
            description: self.description,
            published: self.published,
            approval_required: self.approval_required,
            setup_fee: setup_fee.unwrap_or_default(),
            monthly_fee: monthly_fee.unwrap_or_default(),
            trial_days: self.trial_days,
            currency: self.currency,
            time_zone: self.time_zone,
            limits: self
                .limits
                .into_iter()
                .map(|l| NewLimit { metric: l.metric, period: l.period, max: l.max })
                .collect(),
            pricing,
            pricing_modes: self
                .pricing_modes
                .into_iter()
                .map(|m| NewPricingMode { metric: m.metric, mode: m.mode })
                .collect(),
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PlanOut {
    pub id: Uuid,
    pub api_id: Uuid,
    pub system_name: String,
    pub name: String,
    pub description: String,
    pub published: bool,
    pub approval_required: bool,
    #[schema(value_type = String)]
    pub setup_fee: Decimal,
    #[schema(value_type = String)]
    pub monthly_fee: Decimal,
    pub trial_days: i32,
    pub currency: String,
    pub time_zone: String,
    pub limits: Vec<LimitIn>,
    pub pricing: Vec<PriceIn>,
    /// The metrics whose mode was set; other priced metrics are graduated.
    pub pricing_modes: Vec<PricingModeIn>,
    /// Applications on this plan (pending, live or suspended; not rejected), counted up to 10,000.
    pub applications: i64,
    /// False when more than `applications` are on the plan: the count stops at 10,000.
    pub applications_exact: bool,
}

impl From<PlanDetail> for PlanOut {
    fn from(p: PlanDetail) -> Self {
        PlanOut {
            id: p.id.0,
            api_id: p.api_id,
            system_name: p.system_name,
            name: p.name,
            description: p.description,
            published: p.published,
            approval_required: p.approval_required,
            setup_fee: money::as_stored_in(p.setup_fee, &p.currency),
            monthly_fee: money::as_stored_in(p.monthly_fee, &p.currency),
            trial_days: p.trial_days,
            currency: p.currency,
            time_zone: p.time_zone,
            limits: p.limits.into_iter().map(|l| LimitIn { metric: l.metric, period: l.period, max: l.max }).collect(),
            pricing: p
                .pricing
                .into_iter()
                // A unit price may be finer than the minor unit (0.001 a call): only its
                // trailing zeros go.
                .map(|r| PriceIn {
                    metric: r.metric,
                    from: r.from,
                    to: r.to,
                    price_per_unit: r.price_per_unit.normalize().to_string(),
                })
                .collect(),
            pricing_modes: p
                .pricing_modes
                .into_iter()
                .map(|m| PricingModeIn { metric: m.metric, mode: m.mode })
                .collect(),
            applications: p.applications.value,
            applications_exact: p.applications.exact,
        }
    }
}

/// The plans of an API.
#[utoipa::path(get, operation_id = "list_plans", path = "/admin/api/v1/apis/{id}/plans", tag = "plans", params(("id" = Uuid, Path)),
    responses((status = 200, body = Vec<PlanOut>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(req: HttpRequest, pool: web::Data<PgPool>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    admin(&req, &pool).await?;
    let api = ApiId(parse_id(&path)?);
    let listed = plans::list_plans(&pool, api).await?;
    if listed.is_empty() {
        // No plans, or no such API (404). Only then: reading the API counts its subscribers.
        detail::get(&pool, api).await?;
    }
    let mut out = Vec::new();
    for plan in listed {
        out.push(PlanOut::from(plans::get_plan(&pool, plan.id).await?));
    }
    Ok(HttpResponse::Ok().json(out))
}

/// Create a plan with its limits and prices.
#[utoipa::path(post, operation_id = "create_plan", path = "/admin/api/v1/apis/{id}/plans", tag = "plans", params(("id" = Uuid, Path)), request_body = PlanIn,
    responses((status = 201, body = PlanOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "The system name is taken"),
              (status = 422, body = ErrorBody, description = "Overlapping tiers, negative prices, duplicate limits, unknown metrics…")),
    security(("bearer" = [])))]
pub async fn create(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let api = ApiId(parse_id(&path)?);
    let input: PlanIn = parse_json(&body)?;
    detail::get(&pool, api).await?;
    let id = plans::create_plan(&pool, api, &input.into_new()?, &actor).await?;
    Ok(created(format!("/admin/api/v1/plans/{}", id.0)).json(PlanOut::from(plans::get_plan(&pool, id).await?)))
}

/// One plan.
#[utoipa::path(get, operation_id = "get_plan", path = "/admin/api/v1/plans/{id}", tag = "plans", params(("id" = Uuid, Path)),
    responses((status = 200, body = PlanOut), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn show(req: HttpRequest, pool: web::Data<PgPool>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    admin(&req, &pool).await?;
    let id = PlanId(parse_id(&path)?);
    Ok(HttpResponse::Ok().json(PlanOut::from(plans::get_plan(&pool, id).await?)))
}

/// Replace a plan's definition, limits and prices.
#[utoipa::path(put, operation_id = "replace_plan", path = "/admin/api/v1/plans/{id}", tag = "plans", params(("id" = Uuid, Path)), request_body = PlanIn,
    responses((status = 200, body = PlanOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn replace(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let id = PlanId(parse_id(&path)?);
    let input: PlanIn = parse_json(&body)?;
    plans::get_plan(&pool, id).await?;
    plans::update_plan(&pool, id, &input.into_new()?, &actor).await?;
    Ok(HttpResponse::Ok().json(PlanOut::from(plans::get_plan(&pool, id).await?)))
}

/// Fields of a plan to change; absent fields (and `null`, but for the amounts, which take a
/// number) stay as they are. A list given (`limits`, `pricing`, `pricing_modes`) replaces the
/// plan's whole list. The result is checked as a whole plan, as `PUT` checks one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanPatchIn {
    #[schema(pattern = "^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$")]
    pub system_name: Option<String>,
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[schema(max_length = 5000)]
    pub description: Option<String>,
    pub published: Option<bool>,
    pub approval_required: Option<bool>,
    #[serde(default, deserialize_with = "super::wire::some_string_or_number")]
    #[schema(schema_with = schemas::plan_fee)]
    pub setup_fee: Option<String>,
    #[serde(default, deserialize_with = "super::wire::some_string_or_number")]
    #[schema(schema_with = schemas::plan_fee)]
    pub monthly_fee: Option<String>,
    #[schema(minimum = 0, maximum = 3650)]
    pub trial_days: Option<i32>,
    #[schema(pattern = "^[A-Z]{3}$", example = "USD")]
    pub currency: Option<String>,
    pub time_zone: Option<String>,
    pub limits: Option<Vec<LimitIn>>,
    pub pricing: Option<Vec<PriceIn>>,
    #[schema(max_items = 100)]
    pub pricing_modes: Option<Vec<PricingModeIn>>,
}

impl PlanPatchIn {
    /// The whole plan: these fields over the plan as it is.
    fn over(self, current: PlanOut) -> PlanIn {
        PlanIn {
            system_name: self.system_name.unwrap_or(current.system_name),
            name: self.name.unwrap_or(current.name),
            description: self.description.unwrap_or(current.description),
            published: self.published.unwrap_or(current.published),
            approval_required: self.approval_required.unwrap_or(current.approval_required),
            setup_fee: self.setup_fee.unwrap_or_else(|| current.setup_fee.to_string()),
            monthly_fee: self.monthly_fee.unwrap_or_else(|| current.monthly_fee.to_string()),
            trial_days: self.trial_days.unwrap_or(current.trial_days),
            currency: self.currency.unwrap_or(current.currency),
            time_zone: self.time_zone.unwrap_or(current.time_zone),
            limits: self.limits.unwrap_or(current.limits),
            pricing: self.pricing.unwrap_or(current.pricing),
            pricing_modes: self.pricing_modes.unwrap_or(current.pricing_modes),
        }
    }
}

/// Change some of a plan's fields, keeping the rest (`PUT` replaces the whole plan).
#[utoipa::path(patch, operation_id = "update_plan", path = "/admin/api/v1/plans/{id}", tag = "plans", params(("id" = Uuid, Path)), request_body = PlanPatchIn,
    responses((status = 200, body = PlanOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let id = PlanId(parse_id(&path)?);
    let patch: PlanPatchIn = parse_json_object(&body)?;
    // Read and written without a lock, as a client's GET then PUT would be: of two changes at
    // once, the later one's fields win.
    let input = patch.over(PlanOut::from(plans::get_plan(&pool, id).await?));
    plans::update_plan(&pool, id, &input.into_new()?, &actor).await?;
    Ok(HttpResponse::Ok().json(PlanOut::from(plans::get_plan(&pool, id).await?)))
}

/// Delete a plan no application uses and nobody owes anything on.
#[utoipa::path(delete, operation_id = "delete_plan", path = "/admin/api/v1/plans/{id}", tag = "plans", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "Applications still use the plan, or its past subscribers owe charges no invoice has made yet (the message names the amount)")),
    security(("bearer" = [])))]
pub async fn delete(req: HttpRequest, pool: web::Data<PgPool>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    plans::delete_plan(&pool, PlanId(parse_id(&path)?), &actor).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CopyIn {
    #[schema(pattern = "^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$")]
    pub system_name: String,
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
}

/// Copy a plan (the copy starts hidden).
#[utoipa::path(post, operation_id = "copy_plan", path = "/admin/api/v1/plans/{id}/copy", tag = "plans", params(("id" = Uuid, Path)), request_body = CopyIn,
    responses((status = 201, body = PlanOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn copy(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let id = PlanId(parse_id(&path)?);
    let input: CopyIn = parse_json(&body)?;
    let copy = plans::copy_plan(&pool, id, &input.system_name, &input.name, &actor).await?;
    Ok(created(format!("/admin/api/v1/plans/{}", copy.0)).json(PlanOut::from(plans::get_plan(&pool, copy).await?)))
}

/// The percentages of a limit at which a plan's applications alert their owners.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertLevelsIo {
    /// Any of 50, 80, 90, 100, 120, 150, 200 and 300 (a repeat counts once); sorted on output.
    /// An empty list switches alerts off (violations are still listed for admins).
    #[schema(schema_with = schemas::alert_levels, example = json!([80, 100]))]
    pub levels: Vec<i64>,
}

/// The alert levels a plan has switched on.
#[utoipa::path(get, operation_id = "show_plan_alert_levels", path = "/admin/api/v1/plans/{id}/alert-levels", tag = "plans",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = AlertLevelsIo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn show_alert_levels(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    admin(&req, &pool).await?;
    let id = parse_id(&path)?;
    let levels = levels::plan_levels(&pool, id).await?;
    Ok(HttpResponse::Ok().json(AlertLevelsIo { levels: levels.iter().map(|l| i64::from(l.pct())).collect() }))
}

/// Switch a plan's alert levels: the list replaces the current one.
#[utoipa::path(put, operation_id = "set_plan_alert_levels", path = "/admin/api/v1/plans/{id}/alert-levels", tag = "plans",
    params(("id" = Uuid, Path)), request_body = AlertLevelsIo,
    responses((status = 200, body = AlertLevelsIo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "A level that is not one of 50, 80, 90, 100, 120, 150, 200, 300")),
    security(("bearer" = [])))]
pub async fn set_alert_levels(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (_, actor) = admin(&req, &pool).await?;
    let id = parse_id(&path)?;
    let input: AlertLevelsIo = parse_json(&body)?;
    if input.levels.len() > schemas::MAX_ALERT_LEVELS_SENT {
        return Err(tollgate_core::Error::invalid("levels", "at most 8 distinct levels").into());
    }
    let parsed = levels::parse_levels(&input.levels).map_err(|e| e.at("levels"))?;
    let levels = levels::set_plan_levels(&pool, id, &parsed, &actor).await?;
    Ok(HttpResponse::Ok().json(AlertLevelsIo { levels: levels.iter().map(|l| i64::from(l.pct())).collect() }))
}
