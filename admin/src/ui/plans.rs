//! Plans in the admin UI: one form for a plan with its limits and price tiers,
//! which comes back as typed when something is wrong, with the error beside its field.

use std::collections::HashMap;
use std::str::FromStr;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use rust_decimal::Decimal;
use tollgate_core::apis::ApiId;
use tollgate_core::apis::detail::{self, ApiDetail};
use tollgate_core::audit::Actor;
use tollgate_core::billing::money;
use tollgate_core::billing::pricing::{self, PricingMode, Tier};
use tollgate_core::db::{CappedCount, PgPool};
use tollgate_core::plans::{self, NewLimit, NewPlan, NewPrice, NewPricingMode, Period, PlanId};
use tollgate_web::{
    AdminUser, Chrome, CsrfForm, EmptyForm, FieldErrors, PageResult, Session, parse_id, render, see_other,
    written_amount,
};

/// Blank rows offered for limits and price tiers; blank rows are ignored.
const LIMIT_ROWS: usize = 8;
const PRICE_ROWS: usize = 6;

/// The form's values as strings, so a rejected form comes back as typed.
#[derive(Debug, Clone, Default)]
struct PlanFields {
    system_name: String,
    name: String,
    description: String,
    published: bool,
    approval_required: bool,
    setup_fee: String,
    monthly_fee: String,
    trial_days: String,
    currency: String,
    time_zone: String,
    limits: Vec<[String; 3]>,
    pricing: Vec<[String; 4]>,
    /// (metric, mode) of each priced metric.
    modes: Vec<[String; 2]>,
}

/// An amount as the plan's currency writes it (`10.00`, `1235` yen), with any further
/// digits it has kept rather than the column's four decimals (`10.0000`).
fn as_written(amount: Decimal, currency: &str) -> String {
    let mut shown = amount.normalize();
    if let Ok(currency) = money::Currency::new(currency.trim())
        && shown.scale() < currency.decimals()
    {
        shown.rescale(currency.decimals());
    }
    shown.to_string()
}

impl PlanFields {
    fn blank() -> PlanFields {
        PlanFields {
            setup_fee: "0".into(),
            monthly_fee: "0".into(),
            trial_days: "0".into(),
            currency: "USD".into(),
            time_zone: "UTC".into(),
            limits: vec![Default::default(); LIMIT_ROWS],
            pricing: vec![Default::default(); PRICE_ROWS],
            ..PlanFields::default()
        }
    }

    fn from_plan(p: &plans::PlanDetail) -> PlanFields {
        let mut limits: Vec<[String; 3]> =
            p.limits.iter().map(|l| [l.metric.clone(), l.period.to_string(), l.max.to_string()]).collect();
        limits.resize(limits.len().max(LIMIT_ROWS), Default::default());
        let mut pricing: Vec<[String; 4]> = p
            .pricing
            .iter()
            .map(|t| {
                [
                    t.metric.clone(),
                    t.from.to_string(),
                    t.to.map(|v| v.to_string()).unwrap_or_default(),
                    as_written(t.price_per_unit, &p.currency),
                ]
            })
            .collect();
        pricing.resize(pricing.len().max(PRICE_ROWS), Default::default());
        let mut modes: Vec<[String; 2]> = Vec::new();
        for tier in &p.pricing {
            if !modes.iter().any(|[m, _]| *m == tier.metric) {
                let mode = p.pricing_modes.iter().find(|m| m.metric == tier.metric).map(|m| m.mode).unwrap_or_default();
                modes.push([tier.metric.clone(), mode.to_string()]);
            }
        }
        PlanFields {
            system_name: p.system_name.clone(),
            name: p.name.clone(),
            description: p.description.clone(),
            published: p.published,
            approval_required: p.approval_required,
            setup_fee: as_written(p.setup_fee, &p.currency),
            monthly_fee: as_written(p.monthly_fee, &p.currency),
            trial_days: p.trial_days.to_string(),
            currency: p.currency.clone(),
            time_zone: p.time_zone.clone(),
            limits,
            pricing,
            modes,
        }
    }

    fn from_form(form: &HashMap<String, String>) -> PlanFields {
        let get = |k: &str| form.get(k).cloned().unwrap_or_default();
        let rows = |prefix: &str| (0..).take_while(|i| form.contains_key(&format!("{prefix}_{i}"))).count();
        PlanFields {
            system_name: get("system_name"),
            name: get("name"),
            description: get("description"),
            published: form.contains_key("published"),
            approval_required: form.contains_key("approval_required"),
            setup_fee: get("setup_fee"),
            monthly_fee: get("monthly_fee"),
            trial_days: get("trial_days"),
            currency: get("currency"),
            time_zone: get("time_zone"),
            limits: (0..rows("limit_metric"))
                .map(|i| {
                    [
                        get(&format!("limit_metric_{i}")),
                        get(&format!("limit_period_{i}")),
                        get(&format!("limit_max_{i}")),
                    ]
                })
                .collect(),
            pricing: (0..rows("price_metric"))
                .map(|i| {
                    [
                        get(&format!("price_metric_{i}")),
                        get(&format!("price_from_{i}")),
                        get(&format!("price_to_{i}")),
                        get(&format!("price_unit_{i}")),
                    ]
                })
                .collect(),
            modes: (0..rows("mode_metric"))
                .map(|i| [get(&format!("mode_metric_{i}")), get(&format!("mode_{i}"))])
                .collect(),
        }
    }

    /// Turns the strings into a plan, or names every field that does not read.
    fn to_plan(&self) -> Result<NewPlan, Vec<(String, String)>> {
        let mut read = Reading::default();
        let mut limits = Vec::new();
        for (i, [metric, period, max]) in self.limits.iter().enumerate() {
            if metric.trim().is_empty() && max.trim().is_empty() {
                continue;
            }
            let period = read.parsed::<Period>(format!("limit_period_{i}"), period);
            let max = read.integer(format!("limit_max_{i}"), max);
            if let (Some(period), Some(max)) = (period, max) {
                limits.push(NewLimit { metric: metric.trim().to_owned(), period, max });
            }
        }
        let mut pricing = Vec::new();
        for (i, [metric, from, to, unit]) in self.pricing.iter().enumerate() {
            if metric.trim().is_empty() && unit.trim().is_empty() {
                continue;
            }
            let from = read.integer(format!("price_from_{i}"), from);
            let to =
                if to.trim().is_empty() { Some(None) } else { read.integer(format!("price_to_{i}"), to).map(Some) };
            let price_per_unit = read.amount(format!("price_unit_{i}"), unit);
            if let (Some(from), Some(to), Some(price_per_unit)) = (from, to, price_per_unit) {
                pricing.push(NewPrice { metric: metric.trim().to_owned(), from, to, price_per_unit });
            }
        }
        let mut pricing_modes = Vec::new();
        for (i, [metric, mode]) in self.modes.iter().enumerate() {
            // A metric whose tiers were all removed in this edit has no mode to keep.
            if !self.pricing.iter().any(|[priced, ..]| priced.trim() == metric.trim()) {
                continue;
            }
            if let Some(mode) = read.parsed::<PricingMode>(format!("mode_{i}"), mode) {
                pricing_modes.push(NewPricingMode { metric: metric.trim().to_owned(), mode });
            }
        }
        let setup_fee = read.amount("setup_fee".to_owned(), &self.setup_fee);
        let monthly_fee = read.amount("monthly_fee".to_owned(), &self.monthly_fee);
        let trial_days = read.integer("trial_days".to_owned(), &self.trial_days).and_then(|days| {
            i32::try_from(days).map_err(|_| read.problems.push(("trial_days".to_owned(), "too large".to_owned()))).ok()
        });
        match (setup_fee, monthly_fee, trial_days) {
            (Some(setup_fee), Some(monthly_fee), Some(trial_days)) if read.problems.is_empty() => Ok(NewPlan {
                system_name: self.system_name.trim().to_owned(),
                name: self.name.trim().to_owned(),
                description: self.description.clone(),
                published: self.published,
                approval_required: self.approval_required,
                setup_fee,
                monthly_fee,
                trial_days,
                currency: self.currency.trim().to_uppercase(),
                time_zone: self.time_zone.trim().to_owned(),
                limits,
                pricing,
                pricing_modes,
            }),
            _ => Err(read.problems),
        }
    }
}

/// The form's values read one by one, with every one that does not read kept for the page.
#[derive(Default)]
struct Reading {
    problems: Vec<(String, String)>,
}

impl Reading {
    fn amount(&mut self, field: String, raw: &str) -> Option<Decimal> {
        let amount = written_amount(raw);
        if amount.is_none() {
            self.problems.push((field, "enter an amount such as 49.00".to_owned()));
        }
        amount
    }

    fn integer(&mut self, field: String, raw: &str) -> Option<i64> {
        raw.trim().parse::<i64>().map_err(|_| self.problems.push((field, "enter a whole number".to_owned()))).ok()
    }

    fn parsed<T: FromStr<Err: std::fmt::Display>>(&mut self, field: String, raw: &str) -> Option<T> {
        raw.parse::<T>().map_err(|e| self.problems.push((field, e.to_string()))).ok()
    }
}

/// Core names list items `limits[2].max`; the form names them `limit_max_2`.
fn form_field(core_field: &str) -> String {
    let translate = |prefix: &str, form_prefix: &str| -> Option<String> {
        let rest = core_field.strip_prefix(prefix)?;
        let (index, tail) = rest.split_once(']')?;
        let tail = tail.trim_start_matches('.');
        let name = match (form_prefix, tail) {
            ("limit", "" | "metric") => "metric",
            ("limit", "period") => "period",
            ("limit", _) => "max",
            ("price", "" | "metric") => "metric",
            ("price", "from") => "from",
            ("price", "to") => "to",
            ("price", _) => "unit",
            _ => return None,
        };
        Some(format!("{form_prefix}_{name}_{index}"))
    };
    if let Some(index) = core_field.strip_prefix("pricing_modes[").and_then(|r| r.split_once(']')).map(|(i, _)| i) {
        return format!("mode_{index}");
    }
    translate("limits[", "limit").or_else(|| translate("pricing[", "price")).unwrap_or_else(|| core_field.to_owned())
}

/// How the summary names a row's field: `limit_max_1` is "Limit 2 max", `price_unit_0` "Tier 1
/// price", `mode_2` "Pricing mode 3".
fn row_label(field: &str) -> Option<String> {
    let (name, index) = field.rsplit_once('_')?;
    let row = index.parse::<usize>().ok()? + 1;
    Some(match name {
        "mode" => format!("Pricing mode {row}"),
        _ => {
            let (kind, column) = name.split_once('_')?;
            let kind = match kind {
                "limit" => "Limit",
                "price" => "Tier",
                _ => return None,
            };
            let column = if column == "unit" { "price" } else { column };
            format!("{kind} {row} {column}")
        }
    })
}

#[derive(Template)]
#[template(path = "admin/plan_form.html")]
struct FormPage {
    chrome: Chrome,
    api: ApiDetail,
    /// `None` for a new plan.
    plan_id: Option<PlanId>,
    fields: PlanFields,
    errors: FieldErrors,
    periods: &'static [Period],
    pricing_modes: &'static [PricingMode],
    applications: CappedCount,
    /// Every alert level and whether the plan alerts at it (empty for a new plan).
    alert_levels: Vec<(i16, bool)>,
}

/// One row of the limits or prices table, ready for the template.
struct Row {
    index: usize,
    values: Vec<String>,
    /// The problems with this row, if any, in column order.
    error: Option<String>,
    /// Which columns hold a problem.
    invalid: Vec<bool>,
}

impl Row {
    fn has(&self, column: usize, value: &str) -> bool {
        self.values.get(column).is_some_and(|v| v == value)
    }

    fn invalid(&self, column: usize) -> bool {
        self.invalid.get(column).copied().unwrap_or(false)
    }
}

/// One priced metric's mode choice, with the two modes side by side on its own tiers.
struct ModeRow {
    index: usize,
    metric: String,
    mode: String,
    error: Option<String>,
    /// (units, graduated, volume), at the first tier boundary and one unit above.
    example: Vec<(i64, String, String)>,
}

/// The metric's tiers as typed, skipping rows that do not parse (their error shows
/// on their own row).
fn tiers_of(fields: &PlanFields, metric: &str) -> Vec<Tier> {
    let mut tiers: Vec<Tier> = fields
        .pricing
        .iter()
        .filter(|[m, ..]| m.trim() == metric)
        .filter_map(|[_, from, to, unit]| {
            Some(Tier {
                from: from.trim().parse().ok()?,
                to: if to.trim().is_empty() { None } else { Some(to.trim().parse().ok()?) },
                price: Decimal::from_str(unit.trim()).ok()?,
            })
        })
        .collect();
    tiers.sort_by_key(|t| t.from);
    tiers
}

/// Graduated and volume totals at the first tier's last unit and one unit above,
/// rounded as an invoice line is.
fn worked_example(tiers: &[Tier], currency: &str) -> Vec<(i64, String, String)> {
    let Some(boundary) = tiers.iter().take(tiers.len().saturating_sub(1)).find_map(|t| t.to) else {
        return Vec::new();
    };
    let format = |amount: Decimal| money::display(amount, currency);
    [boundary, boundary.saturating_add(1)]
        .into_iter()
        .map(|units| {
            (
                units,
                format(pricing::charge(PricingMode::Graduated, tiers, units)),
                format(pricing::charge(PricingMode::Volume, tiers, units)),
            )
        })
        .collect()
}

impl FormPage {
    fn mode_rows(&self) -> Vec<ModeRow> {
        self.fields
            .modes
            .iter()
            .enumerate()
            .map(|(index, [metric, mode])| ModeRow {
                index,
                metric: metric.clone(),
                mode: mode.clone(),
                error: self.errors.get(&format!("mode_{index}")).map(str::to_owned),
                example: worked_example(&tiers_of(&self.fields, metric.trim()), &self.fields.currency),
            })
            .collect()
    }

    fn error_for(&self, field: &str) -> Option<&str> {
        self.errors.get(field)
    }

    fn rows(&self, prefix: &str, names: &[&str], values: Vec<Vec<String>>) -> Vec<Row> {
        values
            .into_iter()
            .enumerate()
            .map(|(index, values)| {
                let problems: Vec<Option<&str>> =
                    names.iter().map(|n| self.errors.get(&format!("{prefix}_{n}_{index}"))).collect();
                let messages: Vec<&str> = problems.iter().flatten().copied().collect();
                Row {
                    index,
                    error: (!messages.is_empty()).then(|| messages.join("; ")),
                    invalid: problems.iter().map(Option::is_some).collect(),
                    values,
                }
            })
            .collect()
    }

    fn limit_rows(&self) -> Vec<Row> {
        self.rows("limit", &["metric", "period", "max"], self.fields.limits.iter().map(|r| r.to_vec()).collect())
    }

    fn price_rows(&self) -> Vec<Row> {
        self.rows("price", &["metric", "from", "to", "unit"], self.fields.pricing.iter().map(|r| r.to_vec()).collect())
    }

    /// Every problem for the summary at the form's top: the field it links to, and its label
    /// with the message ("Limit 2 max: …").
    fn summary(&self) -> Vec<(String, String)> {
        let scalars = self.scalar_fields();
        self.errors
            .iter()
            .map(|(field, message)| {
                let label = scalars
                    .iter()
                    .find(|(id, ..)| *id == field)
                    .map(|(_, label, ..)| (*label).to_owned())
                    .or_else(|| row_label(field))
                    .unwrap_or_else(|| field.replace('_', " "));
                (field.to_owned(), format!("{label}: {message}"))
            })
            .collect()
    }

    fn scalar_fields(&self) -> Vec<(&'static str, &'static str, String, &'static str)> {
        let f = &self.fields;
        vec![
            ("name", "Name", f.name.clone(), ""),
            ("system_name", "System name", f.system_name.clone(), "Lower-case letters, digits and dashes"),
            ("monthly_fee", "Monthly fee", f.monthly_fee.clone(), ""),
            ("setup_fee", "Setup fee", f.setup_fee.clone(), ""),
            ("currency", "Currency", f.currency.clone(), "ISO 4217, e.g. EUR"),
            ("trial_days", "Trial days", f.trial_days.clone(), ""),
            ("time_zone", "Time zone", f.time_zone.clone(), "Limit windows follow it, e.g. Europe/Paris"),
        ]
    }
}

pub async fn new_form(
    _admin: AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
) -> PageResult<HttpResponse> {
    let api = detail::get(&pool, ApiId(parse_id(&path)?)).await?;
    let chrome = Chrome::for_session(&session).await?;
    let page = FormPage {
        chrome,
        api,
        plan_id: None,
        fields: PlanFields::blank(),
        errors: FieldErrors::new(),
        periods: &Period::ALL,
        pricing_modes: PricingMode::ALL,
        applications: CappedCount::from_counted(0),
        alert_levels: Vec::new(),
    };
    Ok(render(StatusCode::OK, &page))
}

/// Saves a submitted plan form (a new plan when `existing` is `None`) and
/// goes back to the API, or shows the form again as typed, with each
/// problem beside its field.
async fn save(
    session: &Session,
    pool: &PgPool,
    api: ApiDetail,
    existing: Option<&plans::PlanDetail>,
    form: &HashMap<String, String>,
    actor: &Actor,
) -> PageResult<HttpResponse> {
    let fields = PlanFields::from_form(form);
    let problems = match fields.to_plan() {
        Err(problems) => problems,
        Ok(plan) => {
            let saved = match existing {
                Some(existing) => plans::update_plan(pool, existing.id, &plan, actor).await,
                None => plans::create_plan(pool, api.id, &plan, actor).await.map(drop),
            };
            match saved {
                Ok(()) => return Ok(see_other(format!("/admin/apis/{}", api.id.0))),
                Err(tollgate_core::Error::Conflict(message)) => vec![("system_name".to_owned(), message)],
                Err(err) => {
                    let problems: Vec<(String, String)> = err
                        .field_problems()
                        .into_iter()
                        .map(|(field, message)| (field.to_owned(), message.to_owned()))
                        .collect();
                    if problems.is_empty() {
                        return Err(err.into());
                    }
                    problems
                }
            }
        }
    };
    let mut errors = FieldErrors::new();
    for (field, message) in &problems {
        errors.add(form_field(field), message.as_str());
    }
    let banner = match problems.len() {
        1 => "The plan was not saved: see the highlighted field.".to_owned(),
        n => format!("The plan was not saved: see the {n} highlighted fields."),
    };
    let chrome = Chrome::for_session(session).await?.with_flash("error", banner);
    let page = FormPage {
        chrome,
        api,
        plan_id: existing.map(|p| p.id),
        fields,
        errors,
        periods: &Period::ALL,
        pricing_modes: PricingMode::ALL,
        applications: existing.map_or(CappedCount::from_counted(0), |p| p.applications),
        alert_levels: match existing {
            Some(p) => crate::ui::usage::alert_choices(pool, p.id.0).await?,
            None => Vec::new(),
        },
    };
    Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

pub async fn create(
    AdminUser(user): AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    CsrfForm(form): CsrfForm<HashMap<String, String>>,
) -> PageResult<HttpResponse> {
    let api = detail::get(&pool, ApiId(parse_id(&path)?)).await?;
    save(&session, &pool, api, None, &form, &Actor::from(&user)).await
}

pub async fn edit_form(
    _admin: AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
) -> PageResult<HttpResponse> {
    let plan = plans::get_plan(&pool, PlanId(parse_id(&path)?)).await?;
    edit_page(&session, &pool, &plan, None).await
}

/// The plan's form as stored, with a refusal (its status and message) at the top when
/// there is one.
async fn edit_page(
    session: &Session,
    pool: &PgPool,
    plan: &plans::PlanDetail,
    refusal: Option<(StatusCode, String)>,
) -> PageResult<HttpResponse> {
    let api = detail::get(pool, ApiId(plan.api_id)).await?;
    let mut chrome = Chrome::for_session(session).await?;
    let status = match refusal {
        Some((status, message)) => {
            chrome = chrome.with_flash("error", message);
            status
        }
        None => StatusCode::OK,
    };
    let page = FormPage {
        chrome,
        api,
        plan_id: Some(plan.id),
        fields: PlanFields::from_plan(plan),
        errors: FieldErrors::new(),
        periods: &Period::ALL,
        pricing_modes: PricingMode::ALL,
        applications: plan.applications,
        alert_levels: crate::ui::usage::alert_choices(pool, plan.id.0).await?,
    };
    Ok(render(status, &page))
}

pub async fn update(
    AdminUser(user): AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    CsrfForm(form): CsrfForm<HashMap<String, String>>,
) -> PageResult<HttpResponse> {
    let existing = plans::get_plan(&pool, PlanId(parse_id(&path)?)).await?;
    let api = detail::get(&pool, ApiId(existing.api_id)).await?;
    save(&session, &pool, api, Some(&existing), &form, &Actor::from(&user)).await
}

#[derive(serde::Deserialize)]
pub struct CopyForm {
    system_name: String,
    name: String,
}

pub async fn copy(
    AdminUser(user): AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    CsrfForm(form): CsrfForm<CopyForm>,
) -> PageResult<HttpResponse> {
    let id = PlanId(parse_id(&path)?);
    let refusal =
        match plans::copy_plan(&pool, id, form.system_name.trim(), form.name.trim(), &Actor::from(&user)).await {
            Ok(copy) => return Ok(see_other(format!("/admin/plans/{}", copy.0))),
            Err(tollgate_core::Error::Conflict(message)) => (StatusCode::CONFLICT, message),
            Err(err @ (tollgate_core::Error::Invalid { .. } | tollgate_core::Error::InvalidFields(_))) => {
                let refused: Vec<String> = err
                    .field_problems()
                    .into_iter()
                    .map(|(field, message)| format!("its {field} is refused ({message})"))
                    .collect();
                (StatusCode::UNPROCESSABLE_ENTITY, format!("The copy was not made: {}.", refused.join("; ")))
            }
            Err(err) => return Err(err.into()),
        };
    let plan = plans::get_plan(&pool, id).await?;
    edit_page(&session, &pool, &plan, Some(refusal)).await
}

pub async fn delete(
    AdminUser(user): AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    _form: CsrfForm<EmptyForm>,
) -> PageResult<HttpResponse> {
    let plan = plans::get_plan(&pool, PlanId(parse_id(&path)?)).await?;
    match plans::delete_plan(&pool, plan.id, &Actor::from(&user)).await {
        Ok(()) => Ok(see_other(format!("/admin/apis/{}", plan.api_id))),
        Err(tollgate_core::Error::Conflict(message)) => {
            edit_page(&session, &pool, &plan, Some((StatusCode::CONFLICT, message))).await
        }
        Err(err) => Err(err.into()),
    }
}
