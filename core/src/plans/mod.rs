//! Application plans with their usage limits and prices.

use std::collections::HashSet;

use rust_decimal::Decimal;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::apis::ApiId;
use crate::audit::{self, Actor, Entry};
use crate::error::conflict_on_unique;
use crate::sync::feed::{Entity, record_change};
use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct PlanId(pub Uuid);

/// The calendar periods a limit can count over, as stored.
pub const LIMIT_PERIODS: [&str; 7] = ["minute", "hour", "day", "week", "month", "year", "eternity"];

#[derive(Debug, Clone)]
pub struct NewLimit {
    /// The metric's system name, e.g. `hits` or a method.
    pub metric: String,
    pub period: String,
    pub max: i64,
}

#[derive(Debug, Clone)]
pub struct NewPlan {
    pub system_name: String,
    pub name: String,
    pub description: String,
    pub published: bool,
    pub approval_required: bool,
    pub setup_fee: Decimal,
    pub monthly_fee: Decimal,
    pub trial_days: i32,
    pub currency: String,
    pub time_zone: String,
    pub limits: Vec<NewLimit>,
}

fn validate(plan: &NewPlan) -> Result<()> {
    if plan.setup_fee.is_sign_negative() {
        return Err(Error::invalid("setup_fee", "cannot be negative"));
    }
    if plan.monthly_fee.is_sign_negative() {
        return Err(Error::invalid("monthly_fee", "cannot be negative"));
    }
    if !(0..=3650).contains(&plan.trial_days) {
        return Err(Error::invalid("trial_days", "use 0 to 3650 days"));
    }
    if plan.currency.len() != 3 || !plan.currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(Error::invalid("currency", "use a three-letter ISO 4217 code such as EUR"));
    }
    if tollgate_protocol::TimeZoneName::new(&plan.time_zone).is_err() {
        return Err(Error::invalid("time_zone", format!("`{}` is not a time zone; use an IANA name such as Europe/Paris or UTC", plan.time_zone)));
    }
    let mut seen = HashSet::new();
    for (i, limit) in plan.limits.iter().enumerate() {
        if !LIMIT_PERIODS.contains(&limit.period.as_str()) {
            return Err(Error::invalid(format!("limits[{i}].period"), format!("use one of {}", LIMIT_PERIODS.join(", "))));
        }
        if limit.max < 0 {
            return Err(Error::invalid(format!("limits[{i}].max"), "cannot be negative"));
        }
        if !seen.insert((limit.metric.as_str(), limit.period.as_str())) {
            return Err(Error::invalid(
                format!("limits[{i}]"),
                format!("a {} limit on {} is already set", limit.period, limit.metric),
            ));
        }
    }
    Ok(())
}

/// Creates a plan with its limits in one transaction.
pub async fn create_plan(pool: &PgPool, api: ApiId, plan: &NewPlan, actor: &Actor) -> Result<PlanId> {
    validate(plan)?;
    let mut tx = pool.begin().await?;
    let id = Uuid::now_v7();
    sqlx::query!(
        "INSERT INTO plans (id, api_id, system_name, name, description, published, approval_required,
                            setup_fee, monthly_fee, trial_days, currency, time_zone)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        id,
        api.0,
        plan.system_name,
        plan.name,
        plan.description,
        plan.published,
        plan.approval_required,
        plan.setup_fee,
        plan.monthly_fee,
        plan.trial_days,
        plan.currency,
        plan.time_zone
    )
    .execute(&mut *tx)
    .await
    .map_err(|e| conflict_on_unique(e, "this API already has a plan with that system name"))?;
    for (i, limit) in plan.limits.iter().enumerate() {
        let metric = sqlx::query_scalar!("SELECT id FROM metrics WHERE api_id = $1 AND system_name = $2", api.0, limit.metric)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| Error::invalid(format!("limits[{i}].metric"), format!("this API has no metric named {}", limit.metric)))?;
        sqlx::query!(
            "INSERT INTO usage_limits (id, plan_id, metric_id, period, max_value) VALUES ($1, $2, $3, $4::text::limit_period, $5)",
            Uuid::now_v7(),
            id,
            metric,
            limit.period,
            limit.max
        )
        .execute(&mut *tx)
        .await?;
    }
    record_change(&mut tx, Entity::Plan, id, false, None).await?;
    audit::record(
        &mut tx,
        actor,
        Entry {
            action: "plan.create",
            entity: "plan",
            entity_id: Some(id),
            before: None,
            after: Some(json!({"api_id": api.0, "system_name": plan.system_name, "name": plan.name, "limits": plan.limits.len()})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(PlanId(id))
}

/// A published plan as the catalog shows it.
#[derive(Debug, Clone)]
pub struct PlanSummary {
    pub id: PlanId,
    pub system_name: String,
    pub name: String,
    pub monthly_fee: Decimal,
    pub currency: String,
    pub published: bool,
}

pub async fn list_plans(pool: &PgPool, api: ApiId) -> Result<Vec<PlanSummary>> {
    let rows = sqlx::query!(
        "SELECT id, system_name, name, monthly_fee, currency, published FROM plans WHERE api_id = $1 ORDER BY position, monthly_fee, name",
        api.0
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| PlanSummary { id: PlanId(r.id), system_name: r.system_name, name: r.name, monthly_fee: r.monthly_fee, currency: r.currency, published: r.published })
        .collect())
}

/// A plan a developer can subscribe to, with its API, for the sign-up form.
#[derive(Debug, Clone)]
pub struct PlanOption {
    pub plan_id: PlanId,
    pub api_name: String,
    pub plan_name: String,
    pub monthly_fee: Decimal,
    pub currency: String,
    pub approval_required: bool,
}

impl PlanOption {
    pub fn label(&self) -> String {
        let price = if self.monthly_fee.is_zero() { "free".to_owned() } else { format!("{} {}/month", self.monthly_fee.normalize(), self.currency) };
        let approval = if self.approval_required { ", needs approval" } else { "" };
        format!("{} — {} ({price}{approval})", self.api_name, self.plan_name)
    }
}

/// Published plans of published or deprecated APIs.
pub async fn subscribable(pool: &PgPool) -> Result<Vec<PlanOption>> {
    let rows = sqlx::query!(
        "SELECT p.id, a.name AS api_name, p.name AS plan_name, p.monthly_fee, p.currency, p.approval_required
         FROM plans p JOIN api_products a ON a.id = p.api_id
         WHERE p.published AND a.state IN ('published', 'deprecated')
         ORDER BY a.name, p.position, p.monthly_fee, p.name"
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| PlanOption {
            plan_id: PlanId(r.id),
            api_name: r.api_name,
            plan_name: r.plan_name,
            monthly_fee: r.monthly_fee,
            currency: r.currency,
            approval_required: r.approval_required,
        })
        .collect())
}
