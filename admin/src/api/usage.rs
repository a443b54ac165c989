//! Usage in the admin API: rollup rows filtered by API, application, account
//! and metric (ANDed) over a time range, and an application's recent failed calls.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tollgate_core::applications::{self, ApplicationId};
use tollgate_core::db::PgPool;
use tollgate_core::usage::Granularity;
use tollgate_core::usage::report::{self, FailedCallView, Scope, UsageRow};
use tollgate_web::parse_id;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::admin;
use super::error::{ApiResult, ErrorBody};
use super::wire::{parse_query, rfc3339};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Only this API product's applications.
    #[param(format = Uuid, max_length = 36)]
    pub api: Option<String>,
    /// Only this application.
    #[param(format = Uuid, max_length = 36)]
    pub application: Option<String>,
    /// Only this account's applications.
    #[param(format = Uuid, max_length = 36)]
    pub account: Option<String>,
    /// Only this metric or method.
    #[param(format = Uuid, max_length = 36)]
    pub metric: Option<String>,
    /// Bucket size: `minute`, `hour` (default), `day` or `month`. Hour, day and month buckets
    /// start where the plan's time zone says.
    #[param(pattern = "^(minute|hour|day|month)$")]
    pub granularity: Option<String>,
    /// Start of the range (RFC 3339, inclusive); default: one day (minute: one hour, day: 30 days,
    /// month: a year) before `to`.
    #[param(format = DateTime, max_length = 40)]
    pub from: Option<String>,
    /// End of the range (RFC 3339, exclusive); default: now. At most 10,000 buckets after `from`.
    #[param(format = DateTime, max_length = 40)]
    pub to: Option<String>,
}

/// One bucket of one metric, summed over the applications the filters select.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageRowOut {
    #[schema(format = DateTime)]
    pub bucket_start: String,
    pub metric_id: Uuid,
    /// The metric's system name.
    pub metric: String,
    pub hits: i64,
    pub status_2xx: i64,
    pub status_3xx: i64,
    pub status_4xx: i64,
    pub status_5xx: i64,
}

impl From<UsageRow> for UsageRowOut {
    fn from(r: UsageRow) -> Self {
        UsageRowOut {
            bucket_start: rfc3339(r.bucket_start),
            metric_id: r.metric_id,
            metric: r.metric,
            hits: r.hits,
            status_2xx: r.status_2xx,
            status_3xx: r.status_3xx,
            status_4xx: r.status_4xx,
            status_5xx: r.status_5xx,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageOut {
    /// `minute`, `hour`, `day` or `month`.
    pub granularity: String,
    #[schema(format = DateTime)]
    pub from: String,
    #[schema(format = DateTime)]
    pub to: String,
    /// Buckets with usage, oldest first; a bucket without usage has no row.
    pub rows: Vec<UsageRowOut>,
}

fn uuid_param(name: &'static str, value: Option<&str>) -> tollgate_core::Result<Option<Uuid>> {
    value.map(|v| Uuid::parse_str(v).map_err(|_| tollgate_core::Error::invalid(name, "must be a UUID"))).transpose()
}

fn time_param(name: &'static str, value: Option<&str>) -> tollgate_core::Result<Option<OffsetDateTime>> {
    value.map(|v| super::wire::parse_rfc3339(name, v)).transpose()
}

/// Usage per bucket and metric; filters combine (AND).
#[utoipa::path(get, operation_id = "list_usage", path = "/admin/api/v1/usage", tag = "usage", params(UsageQuery),
    responses((status = 200, body = UsageOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "A filter, granularity or time out of range; `field` names it")),
    security(("bearer" = [])))]
pub async fn list(req: HttpRequest, pool: web::Data<PgPool>) -> ApiResult<HttpResponse> {
    admin(&req, &pool).await?;
    let q: UsageQuery = parse_query(&req)?;
    let scope = Scope {
        api: uuid_param("api", q.api.as_deref())?,
        application: uuid_param("application", q.application.as_deref())?,
        account: uuid_param("account", q.account.as_deref())?,
        metric: uuid_param("metric", q.metric.as_deref())?,
    };
    let granularity = match q.granularity.as_deref() {
        None => Granularity::Hour,
        Some(g) => g.parse::<Granularity>().map_err(|_| {
            tollgate_core::Error::invalid("granularity", format!("`{g}` is not one of minute, hour, day, month"))
        })?,
    };
    let to = time_param("to", q.to.as_deref())?.unwrap_or_else(OffsetDateTime::now_utc);
    let default_span = match granularity {
        Granularity::Minute => time::Duration::hours(1),
        Granularity::Hour => time::Duration::days(1),
        Granularity::Day => time::Duration::days(30),
        Granularity::Month => time::Duration::days(365),
    };
    let from = match time_param("from", q.from.as_deref())? {
        Some(from) => from,
        None => to.checked_sub(default_span).ok_or_else(|| tollgate_core::Error::invalid("to", "is too early"))?,
    };
    // With `to` left to default (now), a `from` after it is the mistake of `from`.
    if q.to.is_none() && from >= to {
        return Err(
            tollgate_core::Error::invalid("from", "is in the future; give `to` too, or an earlier `from`").into()
        );
    }
    let rows = report::usage_rows(&pool, scope, granularity, from, to).await?;
    Ok(HttpResponse::Ok().json(UsageOut {
        granularity: granularity.to_string(),
        from: rfc3339(from),
        to: rfc3339(to),
        rows: rows.into_iter().map(UsageRowOut::from).collect(),
    }))
}

/// A failed call: refused by the gateway (`error` set) or 4xx/5xx from the upstream.
#[derive(Debug, Serialize, ToSchema)]
pub struct FailedCallOut {
    #[schema(format = DateTime)]
    pub at: String,
    pub method: String,
    /// The matched operation's metric, when a mapping rule matched.
    pub operation: Option<String>,
    /// The path as received, without the query string.
    pub path: String,
    pub status: i16,
    /// The gateway's error code; absent when the status is the upstream's.
    pub error: Option<String>,
    pub key_prefix: Option<String>,
    pub latency_us: i64,
    /// The id the answer carried in `X-Tollgate-Request-Id`, as the developer quotes it;
    /// absent for calls from agents older than it.
    pub request_id: Option<Uuid>,
}

impl From<FailedCallView> for FailedCallOut {
    fn from(c: FailedCallView) -> Self {
        FailedCallOut {
            at: rfc3339(c.at),
            method: c.method,
            operation: c.operation,
            path: c.path,
            status: c.status,
            error: c.error,
            key_prefix: c.key_prefix,
            latency_us: c.latency_us,
            request_id: c.request_id,
        }
    }
}

/// The application's newest failed calls (at most 200), newest first.
#[utoipa::path(get, operation_id = "list_failed_calls", path = "/admin/api/v1/applications/{id}/failed-calls", tag = "usage",
    params(("id" = Uuid, Path, description = "The application")),
    responses((status = 200, body = Vec<FailedCallOut>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn failed_calls(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    admin(&req, &pool).await?;
    let id = ApplicationId(parse_id(&path)?);
    applications::get_any(&pool, id).await?;
    let calls = report::failed_calls(&pool, id.0).await?;
    Ok(HttpResponse::Ok().json(calls.into_iter().map(FailedCallOut::from).collect::<Vec<_>>()))
}
