//! Application plans with their usage limits and prices.

use std::collections::{HashMap, HashSet};

use rust_decimal::Decimal;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::accounts::AccountId;
use crate::apis::ApiId;
use crate::audit::{self, Actor, Entry};
use crate::billing::money::Currency;
use crate::billing::pricing::PricingMode;
use crate::db::{COUNT_LIMIT, CappedCount, CountKey};
use crate::error::taken_or_conflict;
use crate::stored::StoredPeriod;
use crate::sync::feed::{Entity, record_change};
use crate::{Error, FieldProblems, Result};

/// Limits count over the protocol's periods: the one definition that the
/// server, the agents and billing share.
mod charges;

/// The highest unit a pricing tier may name (10^15): the database adds one to a tier's end,
/// and no metric is counted anywhere near it.
pub const MAX_TIER_UNIT: i64 = 1_000_000_000_000_000;

pub use charges::Charges;
pub use tollgate_protocol::Period;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct PlanId(pub Uuid);

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NewLimit {
    /// The metric's system name, e.g. `hits` or a method.
    pub metric: String,
    pub period: Period,
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
    pub pricing: Vec<NewPrice>,
    /// How each priced metric's tiers apply; a priced metric not listed is graduated.
    pub pricing_modes: Vec<NewPricingMode>,
}

/// The pricing mode of one priced metric of a plan (`pricing_modes`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NewPricingMode {
    pub metric: String,
    pub mode: PricingMode,
}

/// One pricing tier: units `from..=to` of a metric in a month cost `price_per_unit` each.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NewPrice {
    pub metric: String,
    pub from: i64,
    pub to: Option<i64>,
    pub price_per_unit: Decimal,
}

/// Fees are stored as numeric(14, 4): up to 10 digits before the point and 4 after.
const FEE_DIGITS: (u32, u32) = (10, 4);
/// Unit prices are stored as numeric(14, 6): up to 8 digits before the point and 6 after.
const PRICE_DIGITS: (u32, u32) = (8, 6);

/// Why an amount does not fit its column, so it is refused with a reason instead of failing
/// in Postgres.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AmountProblem {
    Negative,
    /// More decimal places than `places`.
    TooFine {
        places: u32,
    },
    /// More digits before the point than `digits`.
    TooLarge {
        digits: u32,
    },
}

impl std::fmt::Display for AmountProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AmountProblem::Negative => f.write_str("cannot be negative"),
            AmountProblem::TooFine { places: 0 } => f.write_str("use a whole amount"),
            AmountProblem::TooFine { places } => write!(f, "use at most {places} decimal places"),
            AmountProblem::TooLarge { digits } => write!(f, "use at most {digits} digits before the decimal point"),
        }
    }
}

/// Checks `amount` against `digits` before and after the point.
fn amount_problem(amount: Decimal, (whole, fraction): (u32, u32)) -> Option<AmountProblem> {
    if amount.is_sign_negative() && !amount.is_zero() {
        return Some(AmountProblem::Negative);
    }
    if amount.normalize().scale() > fraction {
        return Some(AmountProblem::TooFine { places: fraction });
    }
    if amount.trunc() >= Decimal::from(10_i64.pow(whole)) {
        return Some(AmountProblem::TooLarge { digits: whole });
    }
    None
}

/// Why a fee in `currency` is refused. A fee is charged as it is, so it must be payable: no
/// part of the currency's minor unit (`9.999 USD`, `0.5 JPY`). Unit prices may be finer;
/// the lines they make are rounded.
fn fee_problem(fee: Decimal, currency: Currency) -> Option<String> {
    let places = currency.decimals().min(FEE_DIGITS.1);
    amount_problem(fee, (FEE_DIGITS.0, places)).map(|problem| match problem {
        AmountProblem::TooFine { .. } => format!("{problem}: a fee is charged in whole minor units of {currency}"),
        other => other.to_string(),
    })
}

/// What a plan's money was before an edit: a currency or fee saved before these checks is
/// kept as it is, so an edit of something else does not force a change that moves billing.
struct Saved<'a> {
    currency: &'a str,
    setup_fee: Decimal,
    monthly_fee: Decimal,
}

/// Checks every field and names every problem found, not only the first.
fn validate(plan: &NewPlan, saved: Option<&Saved<'_>>) -> Result<()> {
    let mut problems = FieldProblems::default();
    let system_ok = (1..=64).contains(&plan.system_name.len())
        && plan.system_name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !plan.system_name.starts_with('-')
        && !plan.system_name.ends_with('-');
    if !system_ok {
        problems.add(
            "system_name",
            "use 1 to 64 lower-case letters, digits and dashes, not starting or ending with a dash",
        );
    }
    if plan.name.trim().is_empty() || plan.name.chars().count() > 200 {
        problems.add("name", "use 1 to 200 characters");
    }
    if plan.description.chars().count() > 5000 {
        problems.add("description", "use at most 5,000 characters");
    }
    let kept = saved.filter(|saved| saved.currency == plan.currency);
    let currency = match kept {
        Some(_) => Currency::new(&plan.currency).map_err(|e| e.to_string()),
        None => Currency::parse(&plan.currency).map_err(|e| e.to_string()),
    };
    match currency {
        // The fees are checked in the currency's minor unit, so only once it is known.
        Err(problem) => problems.add("currency", problem),
        Ok(currency) => {
            for (field, fee, before) in [
                ("setup_fee", plan.setup_fee, kept.map(|saved| saved.setup_fee)),
                ("monthly_fee", plan.monthly_fee, kept.map(|saved| saved.monthly_fee)),
            ] {
                let problem = match before {
                    Some(before) if before == fee => amount_problem(fee, FEE_DIGITS).map(|problem| problem.to_string()),
                    _ => fee_problem(fee, currency),
                };
                if let Some(problem) = problem {
                    problems.add(field, problem);
                }
            }
        }
    }
    if !(0..=3650).contains(&plan.trial_days) {
        problems.add("trial_days", "use 0 to 3650 days");
    }
    if tollgate_protocol::TimeZoneName::new(&plan.time_zone).is_err() {
        problems.add(
            "time_zone",
            format!("`{}` is not a time zone; use an IANA name such as Europe/Paris or UTC", plan.time_zone),
        );
    }
    let mut seen = HashSet::new();
    for (i, limit) in plan.limits.iter().enumerate() {
        if limit.max < 0 {
            problems.add(format!("limits[{i}].max"), "cannot be negative");
        }
        if !seen.insert((limit.metric.as_str(), limit.period)) {
            problems
                .add(format!("limits[{i}]"), format!("a {} limit on {} is already set", limit.period, limit.metric));
        }
    }
    for (i, tier) in plan.pricing.iter().enumerate() {
        if tier.from < 1 {
            problems.add(format!("pricing[{i}].from"), "tiers start at unit 1 or later");
        } else if tier.from > MAX_TIER_UNIT {
            problems.add(format!("pricing[{i}].from"), format!("use at most {MAX_TIER_UNIT}"));
        }
        if tier.to.is_some_and(|to| to > MAX_TIER_UNIT) {
            problems.add(
                format!("pricing[{i}].to"),
                format!("use at most {MAX_TIER_UNIT}, or leave `to` out for a tier without an end"),
            );
        } else if tier.to.is_some_and(|to| to < tier.from) {
            problems.add(format!("pricing[{i}].to"), "must not be below `from`");
        }
        if let Some(problem) = amount_problem(tier.price_per_unit, PRICE_DIGITS) {
            problems.add(format!("pricing[{i}].price_per_unit"), problem.to_string());
        }
        // The first tier it overlaps is enough to say where.
        let overlapped = plan.pricing.iter().enumerate().take(i).find(|(_, other)| {
            other.metric == tier.metric
                && tier.from <= other.to.unwrap_or(i64::MAX)
                && other.from <= tier.to.unwrap_or(i64::MAX)
        });
        if let Some((j, _)) = overlapped {
            problems.add(
                format!("pricing[{i}]"),
                format!(
                    "overlaps tier {} (pricing[{j}]) on {}: tiers of one metric must not share units",
                    j + 1,
                    tier.metric
                ),
            );
        }
    }
    let mut moded = HashSet::new();
    for (i, m) in plan.pricing_modes.iter().enumerate() {
        if !plan.pricing.iter().any(|t| t.metric == m.metric) {
            problems.add(
                format!("pricing_modes[{i}].metric"),
                format!("{} has no price tiers on this plan, so it has no pricing mode", m.metric),
            );
        } else if !moded.insert(m.metric.as_str()) {
            problems
                .add(format!("pricing_modes[{i}].metric"), format!("the pricing mode of {} is already set", m.metric));
        }
    }
    problems.into_result()
}

async fn metric_id(tx: &mut sqlx::PgConnection, api: Uuid, name: &str, field: String) -> Result<Uuid> {
    sqlx::query_scalar!("SELECT id FROM metrics WHERE api_id = $1 AND system_name = $2", api, name)
        .fetch_optional(tx)
        .await?
        .ok_or_else(|| Error::invalid(field, unknown_metric(name)))
}

/// What is wrong with a metric name that names no metric of the API.
pub(crate) fn unknown_metric(name: &str) -> String {
    if name.trim().is_empty() { "choose a metric".to_owned() } else { format!("this API has no metric named {name}") }
}

/// The longest a window of `period` lasts (a DST day is 25 hours), in seconds; eternity's
/// as about 300 years, which an interval holds.
fn longest_window_seconds(period: Period) -> f64 {
    const HOUR: f64 = 3600.0;
    const DAY: f64 = 24.0 * HOUR;
    match period {
        Period::Minute => 60.0,
        Period::Hour => HOUR,
        Period::Day => DAY + HOUR,
        Period::Week => 7.0 * DAY + HOUR,
        Period::Month => 31.0 * DAY + HOUR,
        Period::Year => 366.0 * DAY + HOUR,
        Period::Eternity => 1e10,
    }
}

/// Replaces a plan's limits and prices with the given ones.
async fn write_rules(tx: &mut sqlx::PgConnection, api: Uuid, plan_id: Uuid, plan: &NewPlan) -> Result<()> {
    sqlx::query!("DELETE FROM pricing_rules WHERE plan_id = $1", plan_id).execute(&mut *tx).await?;
    sqlx::query!("DELETE FROM pricing_modes WHERE plan_id = $1", plan_id).execute(&mut *tx).await?;
    // A limit that stays (same metric and period) keeps its row: the usage alerts already sent
    // for its current window hang off it, and a new row would send them all again.
    let mut kept = Vec::with_capacity(plan.limits.len());
    for (i, limit) in plan.limits.iter().enumerate() {
        let metric = metric_id(tx, api, &limit.metric, format!("limits[{i}].metric")).await?;
        let id = sqlx::query_scalar!(
            "INSERT INTO usage_limits (id, plan_id, metric_id, period, max_value) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (plan_id, metric_id, period) DO UPDATE SET max_value = EXCLUDED.max_value
             RETURNING id",
            Uuid::now_v7(),
            plan_id,
            metric,
            StoredPeriod(limit.period) as StoredPeriod,
            limit.max
        )
        .fetch_one(&mut *tx)
        .await?;
        // A limit raised in the middle of its window: the levels recorded under the old
        // maximum that the usage then does not reach under the new one are forgotten, so that
        // they are recorded and told when it does (a raised limit went silent until the
        // window's end). Only windows that can still be current are touched.
        sqlx::query!(
            "DELETE FROM usage_alerts
             WHERE usage_limit_id = $1 AND max_value <> $2 AND used::numeric * 100 < threshold_pct::numeric * $2
               AND window_start > now() - make_interval(secs => $3)",
            id,
            limit.max,
            longest_window_seconds(limit.period)
        )
        .execute(&mut *tx)
        .await?;
        kept.push(id);
    }
    sqlx::query!("DELETE FROM usage_limits WHERE plan_id = $1 AND id <> ALL($2)", plan_id, &kept)
        .execute(&mut *tx)
        .await?;
    for (i, tier) in plan.pricing.iter().enumerate() {
        let metric = metric_id(tx, api, &tier.metric, format!("pricing[{i}].metric")).await?;
        sqlx::query!(
            "INSERT INTO pricing_rules (id, plan_id, metric_id, min_units, max_units, price_per_unit) VALUES ($1, $2, $3, $4, $5, $6)",
            Uuid::now_v7(),
            plan_id,
            metric,
            tier.from,
            tier.to,
            tier.price_per_unit
        )
        .execute(&mut *tx)
        .await?;
    }
    // Graduated is what no row means; only volume needs a row, but either is kept as chosen.
    for (i, m) in plan.pricing_modes.iter().enumerate() {
        let metric = metric_id(tx, api, &m.metric, format!("pricing_modes[{i}].metric")).await?;
        sqlx::query!(
            "INSERT INTO pricing_modes (plan_id, metric_id, mode) VALUES ($1, $2, $3)",
            plan_id,
            metric,
            m.mode as PricingMode
        )
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Creates a plan with its limits in one transaction.
pub async fn create_plan(pool: &PgPool, api: ApiId, plan: &NewPlan, actor: &Actor) -> Result<PlanId> {
    let mut tx = pool.begin().await?;
    let id = create_plan_in(&mut tx, api, plan, actor).await?;
    tx.commit().await?;
    Ok(id)
}

/// [`create_plan`] inside the caller's transaction.
pub async fn create_plan_in(tx: &mut sqlx::PgConnection, api: ApiId, plan: &NewPlan, actor: &Actor) -> Result<PlanId> {
    validate(plan, None)?;
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
    .map_err(|e| name_taken(e, &plan.name))?;
    write_rules(tx, api.0, id, plan).await?;
    record_change(tx, Entity::Plan, id, false, None).await?;
    audit::record(
        tx,
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
    Ok(list_plans_of(pool, &[api]).await?.remove(&api).unwrap_or_default())
}

/// The plans of each of `apis`, each API's by position, fee and name: one query for a page of
/// applications on many APIs.
pub async fn list_plans_of(pool: &PgPool, apis: &[ApiId]) -> Result<HashMap<ApiId, Vec<PlanSummary>>> {
    let ids: Vec<Uuid> = apis.iter().map(|api| api.0).collect();
    let rows = sqlx::query!(
        "SELECT id, api_id, system_name, name, monthly_fee, currency, published FROM plans
         WHERE api_id = ANY($1) ORDER BY api_id, position, monthly_fee, name",
        &ids
    )
    .fetch_all(pool)
    .await?;
    let mut plans: HashMap<ApiId, Vec<PlanSummary>> = HashMap::with_capacity(apis.len());
    for r in rows {
        plans.entry(ApiId(r.api_id)).or_default().push(PlanSummary {
            id: PlanId(r.id),
            system_name: r.system_name,
            name: r.name,
            monthly_fee: r.monthly_fee,
            currency: r.currency,
            published: r.published,
        });
    }
    Ok(plans)
}

/// A plan a developer can subscribe to, with its API, for the sign-up form.
#[derive(Debug, Clone)]
pub struct PlanOption {
    pub plan_id: PlanId,
    pub api_name: String,
    pub plan_name: String,
    pub charges: Charges,
    pub approval_required: bool,
    /// Of a previewed draft: answered by mocks, no backend yet.
    pub preview: bool,
}

impl PlanOption {
    /// "Weather — Pro (49.00 USD/month + 10.00 USD setup, 14-day trial, usage priced; needs approval)".
    pub fn label(&self) -> String {
        let approval = if self.approval_required { "; needs approval" } else { "" };
        let preview = if self.preview { " [preview: mock responses]" } else { "" };
        format!("{}{preview} — {} ({}{approval})", self.api_name, self.plan_name, self.charges.summary())
    }
}

/// Published plans of the APIs open to `account`: published or deprecated ones, and
/// drafts previewed to it.
pub async fn subscribable(pool: &PgPool, account: AccountId) -> Result<Vec<PlanOption>> {
    let rows = sqlx::query!(
        r#"SELECT p.id, a.name AS api_name, p.name AS plan_name, p.setup_fee, p.monthly_fee, p.trial_days,
                  p.currency, p.approval_required, a.state = 'draft' AS "preview!",
                  EXISTS (SELECT 1 FROM pricing_rules r WHERE r.plan_id = p.id AND r.price_per_unit > 0)
                      AS "usage_priced!"
         FROM plans p JOIN api_products a ON a.id = p.api_id
         WHERE p.published AND api_open_to(a.id, a.state, $1)
         ORDER BY a.name, p.position, p.monthly_fee, p.name"#,
        account.0
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| PlanOption {
            plan_id: PlanId(r.id),
            api_name: r.api_name,
            plan_name: r.plan_name,
            charges: Charges {
                setup_fee: r.setup_fee,
                monthly_fee: r.monthly_fee,
                trial_days: r.trial_days,
                currency: r.currency,
                usage_priced: r.usage_priced,
            },
            approval_required: r.approval_required,
            preview: r.preview,
        })
        .collect())
}

/// A plan with its limits and prices, as admins edit it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlanDetail {
    pub id: PlanId,
    pub api_id: Uuid,
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
    pub pricing: Vec<NewPrice>,
    /// Only the metrics that have a row; the others are graduated.
    pub pricing_modes: Vec<NewPricingMode>,
    /// Applications on the plan, counted up to the limit.
    pub applications: CappedCount,
}

impl PlanDetail {
    pub fn charges(&self) -> Charges {
        Charges {
            setup_fee: self.setup_fee,
            monthly_fee: self.monthly_fee,
            trial_days: self.trial_days,
            currency: self.currency.clone(),
            usage_priced: self.pricing.iter().any(|p| p.price_per_unit > Decimal::ZERO),
        }
    }
}

/// A plan; its application count, when it reached the limit a moment ago, is not taken again.
pub async fn get_plan(pool: &PgPool, id: PlanId) -> Result<PlanDetail> {
    let count = CountKey::new(pool, &format!("plan applications {}", id.0)).in_statement();
    let mut plan = read_plan(&mut *pool.acquire().await?, id, count.rows()).await?;
    plan.applications = count.settle(plan.applications);
    Ok(plan)
}

/// A plan without counting its applications (`applications` reads 0): for pages that do not
/// show the count, such as the portal's API page.
pub async fn get_plan_uncounted(pool: &PgPool, id: PlanId) -> Result<PlanDetail> {
    read_plan(&mut *pool.acquire().await?, id, 0).await
}

/// [`get_plan`] on the caller's connection or transaction, counted afresh.
pub async fn get_plan_in(conn: &mut sqlx::PgConnection, id: PlanId) -> Result<PlanDetail> {
    read_plan(conn, id, COUNT_LIMIT + 1).await
}

/// A plan, its applications counted up to `count_up_to` rows.
async fn read_plan(conn: &mut sqlx::PgConnection, id: PlanId, count_up_to: i64) -> Result<PlanDetail> {
    let p = sqlx::query!(
        r#"SELECT id, api_id, system_name, name, description, published, approval_required, setup_fee, monthly_fee, trial_days, currency, time_zone,
                  (SELECT count(*) FROM (SELECT 1 FROM applications a WHERE a.plan_id = plans.id AND a.state <> 'rejected' LIMIT $2) AS s) AS "applications!"
           FROM plans WHERE id = $1"#,
        id.0,
        count_up_to
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(Error::NotFound)?;
    let limits = sqlx::query!(
        r#"SELECT m.system_name, l.period AS "period: StoredPeriod", l.max_value FROM usage_limits l JOIN metrics m ON m.id = l.metric_id
           WHERE l.plan_id = $1 ORDER BY m.system_name COLLATE "C", l.period"#,
        id.0
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|r| NewLimit { metric: r.system_name, period: r.period.0, max: r.max_value })
    .collect();
    let pricing = sqlx::query!(
        r#"SELECT m.system_name, r.min_units, r.max_units, r.price_per_unit FROM pricing_rules r JOIN metrics m ON m.id = r.metric_id
         WHERE r.plan_id = $1 ORDER BY m.system_name COLLATE "C", r.min_units"#,
        id.0
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|r| NewPrice { metric: r.system_name, from: r.min_units, to: r.max_units, price_per_unit: r.price_per_unit })
    .collect();
    let pricing_modes = sqlx::query!(
        r#"SELECT m.system_name, pm.mode AS "mode: PricingMode" FROM pricing_modes pm JOIN metrics m ON m.id = pm.metric_id
           WHERE pm.plan_id = $1 ORDER BY m.system_name COLLATE "C""#,
        id.0
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|r| NewPricingMode { metric: r.system_name, mode: r.mode })
    .collect();
    Ok(PlanDetail {
        id: PlanId(p.id),
        api_id: p.api_id,
        system_name: p.system_name,
        name: p.name,
        description: p.description,
        published: p.published,
        approval_required: p.approval_required,
        setup_fee: p.setup_fee,
        monthly_fee: p.monthly_fee,
        trial_days: p.trial_days,
        currency: p.currency,
        time_zone: p.time_zone,
        limits,
        pricing,
        pricing_modes,
        applications: CappedCount::from_counted(p.applications),
    })
}

/// Replaces everything about a plan but its API.
pub async fn update_plan(pool: &PgPool, id: PlanId, plan: &NewPlan, actor: &Actor) -> Result<()> {
    let mut tx = pool.begin().await?;
    update_plan_in(&mut tx, id, plan, actor).await?;
    tx.commit().await?;
    Ok(())
}

/// [`update_plan`] inside the caller's transaction.
pub async fn update_plan_in(tx: &mut sqlx::PgConnection, id: PlanId, plan: &NewPlan, actor: &Actor) -> Result<()> {
    let before = get_plan_in(tx, id).await?;
    let saved = Saved { currency: &before.currency, setup_fee: before.setup_fee, monthly_fee: before.monthly_fee };
    validate(plan, Some(&saved))?;
    // Billing reads a plan's months in its zone and bills in its currency, for history too:
    // changing either under subscribers would leave their usage unbilled.
    let changed = [("currency", before.currency != plan.currency), ("time_zone", before.time_zone != plan.time_zone)];
    if let Some((field, _)) = changed.iter().find(|(_, c)| *c) {
        let used = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM applications WHERE plan_id = $1)
                      OR EXISTS (SELECT 1 FROM subscription_segments WHERE plan_id = $1) AS "used!""#,
            id.0
        )
        .fetch_one(&mut *tx)
        .await?;
        if used {
            return Err(Error::invalid(
                *field,
                format!(
                    "this plan has applications or billing history, so its {field} cannot change; create a new plan and move them"
                ),
            ));
        }
    }
    sqlx::query!(
        "UPDATE plans SET system_name = $2, name = $3, description = $4, published = $5, approval_required = $6, setup_fee = $7,
                          monthly_fee = $8, trial_days = $9, currency = $10, time_zone = $11, updated_at = now()
         WHERE id = $1",
        id.0,
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
    .map_err(|e| name_taken(e, &plan.name))?;
    write_rules(tx, before.api_id, id.0, plan).await?;
    record_change(tx, Entity::Plan, id.0, false, None).await?;
    audit::record(
        tx,
        actor,
        Entry {
            action: "plan.update",
            entity: "plan",
            entity_id: Some(id.0),
            before: Some(json!(before)),
            after: Some(
                json!({"name": plan.name, "limits": plan.limits.len(), "pricing": plan.pricing.len(), "pricing_modes": plan.pricing_modes}),
            ),
        },
    )
    .await?;
    Ok(())
}

/// Deletes a plan nobody subscribes to and nobody owes anything on.
pub async fn delete_plan(pool: &PgPool, id: PlanId, actor: &Actor) -> Result<()> {
    let mut tx = pool.begin().await?;
    delete_plan_in(&mut tx, id, actor).await?;
    tx.commit().await?;
    Ok(())
}

/// [`delete_plan`] inside the caller's transaction.
pub async fn delete_plan_in(tx: &mut sqlx::PgConnection, id: PlanId, actor: &Actor) -> Result<()> {
    // Taken before the count, as a new application takes it (shared) before it subscribes:
    // the two wait for each other, and neither meets the database's foreign key as a 500.
    sqlx::query!("SELECT id FROM plans WHERE id = $1 FOR UPDATE", id.0).fetch_optional(&mut *tx).await?;
    let before = get_plan_in(tx, id).await?;
    if before.applications.value > 0 {
        return Err(Error::Conflict(format!(
            "{} application(s) use this plan; move them to another plan first",
            before.applications
        )));
    }
    refuse_if_owed(tx, id.0, "this plan").await?;
    // Rejected applications never went live and agents do not know them; they go with it.
    sqlx::query!("DELETE FROM applications WHERE plan_id = $1 AND state = 'rejected'", id.0).execute(&mut *tx).await?;
    sqlx::query!("DELETE FROM plans WHERE id = $1", id.0).execute(&mut *tx).await?;
    record_change(tx, Entity::Plan, id.0, true, None).await?;
    audit::record(
        tx,
        actor,
        Entry {
            action: "plan.delete",
            entity: "plan",
            entity_id: Some(id.0),
            before: Some(json!(before)),
            after: None,
        },
    )
    .await?;
    Ok(())
}

/// A plan's name or system name that another plan of its API has: the name is a field
/// error (422), the system name a conflict (409).
fn name_taken(err: sqlx::Error, name: &str) -> Error {
    taken_or_conflict(
        err,
        "plans_api_name_key",
        "name",
        || format!("another plan of this API is already called {}; choose another name", name.trim()),
        "this API already has a plan with that system name",
    )
}

/// Refuses (409) to delete `plan`, named `what` in the message, while its past subscribers
/// owe anything no invoice has charged: its subscription history goes with it, and so would
/// those charges.
pub(crate) async fn refuse_if_owed(tx: &mut sqlx::PgConnection, plan: Uuid, what: &str) -> Result<()> {
    let (owed, accounts) = crate::billing::run::unbilled_on_plan(tx, plan).await?;
    if owed.is_empty() {
        return Ok(());
    }
    let amounts: Vec<String> = owed.iter().map(|(currency, amount)| currency.format(*amount)).collect();
    Err(Error::Conflict(format!(
        "{accounts} account(s) owe {} on {what} that no invoice has charged yet; hide it now and delete it after the billing run that charges it",
        amounts.join(" and ")
    )))
}

/// Copies a plan (hidden) under a new system name.
pub async fn copy_plan(pool: &PgPool, id: PlanId, system_name: &str, name: &str, actor: &Actor) -> Result<PlanId> {
    let source = get_plan(pool, id).await?;
    let copy = NewPlan {
        system_name: system_name.to_owned(),
        name: name.to_owned(),
        description: source.description,
        published: false,
        approval_required: source.approval_required,
        setup_fee: source.setup_fee,
        monthly_fee: source.monthly_fee,
        trial_days: source.trial_days,
        currency: source.currency,
        time_zone: source.time_zone,
        limits: source.limits,
        pricing: source.pricing,
        pricing_modes: source.pricing_modes,
    };
    let new = create_plan(pool, crate::apis::ApiId(source.api_id), &copy, actor).await?;
    // The copy alerts at the same levels (they are not part of `NewPlan`).
    sqlx::query!(
        "UPDATE plans SET alert_levels = (SELECT alert_levels FROM plans WHERE id = $1) WHERE id = $2",
        id.0,
        new.0
    )
    .execute(pool)
    .await?;
    Ok(new)
}
