//! An application's usage: charts per metric and method, limit bars, status
//! classes, latency percentiles, recent failed calls, CSV of each table, and
//! the alert levels the developer mutes. Another account's app is not found.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use tollgate_core::applications::{self, ApplicationId, ApplicationView};
use tollgate_core::db::PgPool;
use tollgate_core::usage::levels::{self, AlertLevel};
use tollgate_core::usage::recent::RecentReports;
use tollgate_core::usage::report::{self, FailedCallView, Percentile, ReportPeriod, Scope, Timestamp, UsageReport};
use tollgate_web::usage_view::{self, UsageTable};
use tollgate_web::{Chrome, CsrfForm, PageResult, Session, SignedInUser, parse_id, render, see_other};

use crate::account::account_of;

#[derive(serde::Deserialize)]
pub struct UsageQuery {
    period: Option<String>,
    table: Option<String>,
}

struct PeriodChoice {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

struct MuteChoice {
    level: i16,
    muted: bool,
}

#[derive(Template)]
#[template(path = "portal/app_usage.html")]
struct UsagePage {
    chrome: Chrome,
    app: ApplicationView,
    period: &'static str,
    periods: Vec<PeriodChoice>,
    report: UsageReport,
    usage_chart: String,
    status_chart: String,
    limit_bars: Vec<String>,
    status_totals: [i64; 4],
    error_rate: String,
    percentiles: Vec<(Percentile, String)>,
    failed: Vec<FailedCallView>,
    mutes: Vec<MuteChoice>,
    muted_saved: bool,
}

async fn load(
    pool: &PgPool,
    reports: &RecentReports,
    user: &tollgate_core::accounts::UserSummary,
    raw_id: &str,
    period: ReportPeriod,
) -> tollgate_core::Result<(ApplicationView, UsageReport)> {
    let account = account_of(user)?;
    let app = applications::get(pool, account, ApplicationId(parse_id(raw_id)?)).await?;
    let tz = report::plan_time_zone(pool, app.id.0).await?;
    let scope = Scope { application: Some(app.id.0), api: Some(app.api_id), ..Scope::default() };
    let report = reports.report(pool, scope, period, &tz, Timestamp::now()).await?;
    Ok((app, report))
}

#[derive(serde::Deserialize)]
pub struct SavedQuery {
    period: Option<String>,
    saved: Option<String>,
}

pub async fn show(
    SignedInUser(user): SignedInUser,
    session: Session,
    pool: web::Data<PgPool>,
    reports: web::Data<RecentReports>,
    path: web::Path<String>,
    query: web::Query<SavedQuery>,
) -> PageResult<HttpResponse> {
    let period = ReportPeriod::parse(query.period.as_deref())?;
    let (app, report) = load(&pool, &reports, &user, &path, period).await?;
    let limits = report::limits(&pool, app.id.0, Timestamp::now()).await?;
    let failed = report::failed_calls(&pool, app.id.0).await?;
    let muted = levels::muted_levels(&pool, app.account_id.0, app.id.0).await?;
    let page = UsagePage {
        chrome: Chrome::for_session(&session).await?,
        period: period.as_str(),
        periods: ReportPeriod::ALL
            .into_iter()
            .map(|p| PeriodChoice { value: p.as_str(), label: p.label(), selected: p == period })
            .collect(),
        usage_chart: usage_view::usage_chart(&report, "Calls per metric and method"),
        status_chart: usage_view::status_chart(&report),
        limit_bars: usage_view::limit_bars(&limits),
        status_totals: report.status.totals(),
        error_rate: format!("{:.1}", report.status.error_rate()),
        percentiles: report.percentiles.iter().map(|p| (*p, usage_view::percentile_text(p.at_most_ms))).collect(),
        failed,
        mutes: AlertLevel::ALL
            .into_iter()
            .filter(|l| !l.is_violation())
            .map(|l| MuteChoice { level: l.pct(), muted: muted.contains(&l) })
            .collect(),
        muted_saved: query.saved.is_some(),
        app,
        report,
    };
    Ok(render(StatusCode::OK, &page))
}

/// `table=usage|status|limits|failed`, for the period shown.
pub async fn csv(
    SignedInUser(user): SignedInUser,
    pool: web::Data<PgPool>,
    reports: web::Data<RecentReports>,
    path: web::Path<String>,
    query: web::Query<UsageQuery>,
) -> PageResult<HttpResponse> {
    let period = ReportPeriod::parse(query.period.as_deref())?;
    let table = UsageTable::parse(query.table.as_deref())?;
    let (app, report) = load(&pool, &reports, &user, &path, period).await?;
    let csv = match table {
        UsageTable::Usage => usage_view::usage_csv(&report),
        UsageTable::Status => usage_view::status_csv(&report),
        UsageTable::Limits => usage_view::limits_csv(&report::limits(&pool, app.id.0, Timestamp::now()).await?),
        UsageTable::Failed => usage_view::failed_csv(&report::failed_calls(&pool, app.id.0).await?),
    };
    Ok(csv.response(&format!("{}-{}-{}.csv", app.id.0, table.as_str(), period.as_str())))
}

/// Checkboxes of the warning levels to mute (unchecked boxes are absent).
#[derive(serde::Deserialize)]
pub struct MuteForm {
    mute_50: Option<String>,
    mute_80: Option<String>,
    mute_90: Option<String>,
}

pub async fn mute(
    SignedInUser(user): SignedInUser,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    CsrfForm(form): CsrfForm<MuteForm>,
) -> PageResult<HttpResponse> {
    let account = account_of(&user)?;
    let id = ApplicationId(parse_id(&path)?);
    let chosen = [(50, &form.mute_50), (80, &form.mute_80), (90, &form.mute_90)]
        .into_iter()
        .filter(|(_, on)| on.is_some())
        .map(|(level, _)| AlertLevel::new(level).map_err(|e| e.at("levels")))
        .collect::<tollgate_core::Result<Vec<_>>>()?;
    levels::set_muted_levels(&pool, account.0, id.0, &chosen).await?;
    Ok(see_other(format!("/apps/{}/usage?saved=1#alerts", id.0)))
}
