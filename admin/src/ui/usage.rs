//! Usage in the admin UI: the dashboard's traffic (the admin home), the
//! drill-down by API, application, account and metric with CSV, and the
//! violations (alerts at 100 % and more). Buckets are UTC here.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use tollgate_core::apis::{ApiSummary, list_apis};
use tollgate_core::audit::Actor;
use tollgate_core::db::PgPool;
use tollgate_core::gateways::{self, GatewayView};
use tollgate_core::usage::levels::{self, AlertLevel};
use tollgate_core::usage::recent::RecentReports;
use tollgate_core::usage::report::{
    self, FailedCallView, Percentile, ReportPeriod, Scope, TimeZoneName, Timestamp, TopEntry, UsageReport, Violation,
};
use tollgate_web::chart::{Series, Style, TimeChart};
use tollgate_web::usage_view::{self, UsageTable};
use tollgate_web::{AdminUser, Chrome, CsrfForm, PageResult, Session, parse_id, render, see_other};
use uuid::Uuid;

/// Query of the dashboard and the drill-down; ids as text so a bad one is a 422 naming it.
#[derive(Debug, Default, serde::Deserialize)]
pub struct UsageQuery {
    period: Option<String>,
    api: Option<String>,
    application: Option<String>,
    account: Option<String>,
    metric: Option<String>,
    table: Option<String>,
}

fn id_param(name: &'static str, value: Option<&str>) -> tollgate_core::Result<Option<Uuid>> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => Uuid::parse_str(v).map(Some).map_err(|_| tollgate_core::Error::invalid(name, "must be a UUID")),
    }
}

impl UsageQuery {
    fn scope(&self) -> tollgate_core::Result<Scope> {
        Ok(Scope {
            api: id_param("api", self.api.as_deref())?,
            application: id_param("application", self.application.as_deref())?,
            account: id_param("account", self.account.as_deref())?,
            metric: id_param("metric", self.metric.as_deref())?,
        })
    }

    /// The filters as a query string (without period and table), for links.
    fn filters(&self, scope: &Scope) -> String {
        let mut parts = Vec::new();
        for (name, value) in [
            ("api", scope.api),
            ("application", scope.application),
            ("account", scope.account),
            ("metric", scope.metric),
        ] {
            if let Some(v) = value {
                parts.push(format!("{name}={v}"));
            }
        }
        parts.join("&")
    }
}

struct PeriodChoice {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

fn period_choices(period: ReportPeriod) -> Vec<PeriodChoice> {
    ReportPeriod::ALL
        .into_iter()
        .map(|p| PeriodChoice { value: p.as_str(), label: p.label(), selected: p == period })
        .collect()
}

fn percentile_texts(report: &UsageReport) -> Vec<(Percentile, String)> {
    report.percentiles.iter().map(|p| (*p, usage_view::percentile_text(p.at_most_ms))).collect()
}

/// The gateway fleet at a glance.
struct Fleet {
    total: usize,
    connected: usize,
    /// The largest lag among agents that reported one.
    max_lag: Option<i64>,
    with_errors: usize,
}

impl Fleet {
    fn of(agents: &[GatewayView]) -> Fleet {
        Fleet {
            total: agents.len(),
            connected: agents.iter().filter(|a| a.connected).count(),
            max_lag: agents.iter().filter_map(|a| a.lag).max(),
            with_errors: agents.iter().filter(|a| a.last_error.is_some()).count(),
        }
    }
}

#[derive(Template)]
#[template(path = "admin/dashboard.html")]
struct DashboardPage {
    chrome: Chrome,
    apis: Vec<ApiSummary>,
    period: &'static str,
    periods: Vec<PeriodChoice>,
    traffic_chart: String,
    status_chart: String,
    status_totals: [i64; 4],
    error_rate: String,
    percentiles: Vec<(Percentile, String)>,
    top_apps: Vec<TopEntry>,
    top_accounts: Vec<TopEntry>,
    fleet: Fleet,
}

/// The admin home: traffic per API, error rate, latency, top applications and accounts, the fleet, the APIs.
pub async fn dashboard(
    _admin: AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    reports: web::Data<RecentReports>,
    query: web::Query<UsageQuery>,
) -> PageResult<HttpResponse> {
    let period = ReportPeriod::parse(query.period.as_deref())?;
    let now = Timestamp::now();
    // The report and the top lists each read the period's rollups once; run them side by side.
    let utc = TimeZoneName::utc();
    let (report, top) = tokio::try_join!(
        reports.report(&pool, Scope::default(), period, &utc, now),
        reports.top(&pool, period, now, 10),
    )?;
    let traffic = report::traffic_per_api(&pool, &report).await?;
    let traffic_chart = TimeChart {
        title: "Calls per API".into(),
        unit: "calls".into(),
        buckets: report.bucket_labels(),
        series: traffic
            .into_iter()
            .map(|a| Series::new(a.name, a.values.into_iter().map(|v| u64::try_from(v).unwrap_or(0)).collect()))
            .collect(),
        style: Style::Lines,
    }
    .render();
    let page = DashboardPage {
        chrome: Chrome::for_session(&session).await?,
        apis: list_apis(&pool).await?,
        period: period.as_str(),
        periods: period_choices(period),
        traffic_chart,
        status_chart: usage_view::status_chart(&report),
        status_totals: report.status.totals(),
        error_rate: format!("{:.1}", report.status.error_rate()),
        percentiles: percentile_texts(&report),
        top_apps: top.applications,
        top_accounts: top.accounts,
        fleet: Fleet::of(&gateways::list(&pool).await?),
    };
    Ok(render(StatusCode::OK, &page))
}

#[derive(Template)]
#[template(path = "admin/usage.html")]
struct DrillPage {
    chrome: Chrome,
    period: &'static str,
    periods: Vec<PeriodChoice>,
    q_api: String,
    q_application: String,
    q_account: String,
    q_metric: String,
    filters: String,
    report: UsageReport,
    usage_chart: String,
    status_chart: String,
    status_totals: [i64; 4],
    error_rate: String,
    percentiles: Vec<(Percentile, String)>,
    limit_bars: Vec<String>,
    failed: Option<Vec<FailedCallView>>,
}

fn text(id: Option<Uuid>) -> String {
    id.map(|i| i.to_string()).unwrap_or_default()
}

/// Usage for any combination of API, application, account and metric.
pub async fn drill_down(
    _admin: AdminUser,
    session: Session,
    pool: web::Data<PgPool>,
    reports: web::Data<RecentReports>,
    query: web::Query<UsageQuery>,
) -> PageResult<HttpResponse> {
    let period = ReportPeriod::parse(query.period.as_deref())?;
    let scope = query.scope()?;
    let now = Timestamp::now();
    // One application's page follows its plan's zone; anything wider is UTC.
    let tz = match scope.application {
        Some(app) => report::plan_time_zone(&pool, app).await?,
        None => TimeZoneName::utc(),
    };
    let report = reports.report(&pool, scope, period, &tz, now).await?;
    let (limit_bars, failed) = match scope.application {
        Some(app) => (
            usage_view::limit_bars(&report::limits(&pool, app, now).await?),
            Some(report::failed_calls(&pool, app).await?),
        ),
        None => (Vec::new(), None),
    };
    let page = DrillPage {
        chrome: Chrome::for_session(&session).await?,
        period: period.as_str(),
        periods: period_choices(period),
        q_api: text(scope.api),
        q_application: text(scope.application),
        q_account: text(scope.account),
        q_metric: text(scope.metric),
        filters: query.filters(&scope),
        usage_chart: usage_view::usage_chart(&report, "Calls per metric and method"),
        status_chart: usage_view::status_chart(&report),
        status_totals: report.status.totals(),
        error_rate: format!("{:.1}", report.status.error_rate()),
        percentiles: percentile_texts(&report),
        limit_bars,
        failed,
        report,
    };
    Ok(render(StatusCode::OK, &page))
}

/// The drill-down's tables as CSV (`limits` and `failed` need an application).
pub async fn csv(
    _admin: AdminUser,
    pool: web::Data<PgPool>,
    reports: web::Data<RecentReports>,
    query: web::Query<UsageQuery>,
) -> PageResult<HttpResponse> {
    let period = ReportPeriod::parse(query.period.as_deref())?;
    let table = UsageTable::parse(query.table.as_deref())?;
    let scope = query.scope()?;
    let now = Timestamp::now();
    let tz = match scope.application {
        Some(app) => report::plan_time_zone(&pool, app).await?,
        None => TimeZoneName::utc(),
    };
    let need_app = || {
        scope
            .application
            .ok_or_else(|| tollgate_core::Error::invalid("application", "choose an application for this table"))
    };
    let csv = match table {
        UsageTable::Usage => usage_view::usage_csv(&reports.report(&pool, scope, period, &tz, now).await?),
        UsageTable::Status => usage_view::status_csv(&reports.report(&pool, scope, period, &tz, now).await?),
        UsageTable::Limits => usage_view::limits_csv(&report::limits(&pool, need_app()?, now).await?),
        UsageTable::Failed => usage_view::failed_csv(&report::failed_calls(&pool, need_app()?).await?),
    };
    Ok(csv.response(&format!("usage-{}-{}.csv", table.as_str(), period.as_str())))
}

#[derive(Template)]
#[template(path = "admin/violations.html")]
struct ViolationsPage {
    chrome: Chrome,
    violations: Vec<Violation>,
}

/// Applications that reached or exceeded a limit, newest first.
pub async fn violations(_admin: AdminUser, session: Session, pool: web::Data<PgPool>) -> PageResult<HttpResponse> {
    let violations = report::violations(&pool, 200).await?;
    Ok(render(StatusCode::OK, &ViolationsPage { chrome: Chrome::for_session(&session).await?, violations }))
}

/// Every alert level and whether the plan alerts at it, for the plan form.
pub async fn alert_choices(pool: &PgPool, plan: Uuid) -> tollgate_core::Result<Vec<(i16, bool)>> {
    let on = levels::plan_levels(pool, plan).await?;
    Ok(AlertLevel::ALL.into_iter().map(|l| (l.pct(), on.contains(&l))).collect())
}

/// Sets the plan's alert levels from its checkboxes (`level_50`, …, `level_300`; unchecked are absent).
pub async fn set_alert_levels(
    AdminUser(user): AdminUser,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    CsrfForm(form): CsrfForm<std::collections::HashMap<String, String>>,
) -> PageResult<HttpResponse> {
    let plan = parse_id(&path)?;
    let chosen: Vec<AlertLevel> =
        AlertLevel::ALL.into_iter().filter(|l| form.contains_key(&format!("level_{}", l.pct()))).collect();
    levels::set_plan_levels(&pool, plan, &chosen, &Actor::from(&user)).await?;
    Ok(see_other(format!("/admin/plans/{plan}#alert-levels")))
}
