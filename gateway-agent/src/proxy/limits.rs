//! The gateway's own endpoints under the reserved `_tollgate` segment of every API (see
//! [`tollgate_protocol::gateway`]): `GET <base path>/_tollgate/limits` answers the caller's
//! standing against every limit of its plan, from the same counters that enforce them.
//!
//! Reading it is not a call: nothing is counted against limits, reported as usage, refused
//! counts or failed calls, or noted as the key's latest use, and mapping rules do not apply.

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use jiff::Timestamp;
use tollgate_protocol::{LimitStatus, LimitsReport, Period};
use uuid::Uuid;

use super::ratelimit::{RateLimit, seconds_until};
use super::reply::Body;
use crate::config::{ApiEntry, PlanEntry};
use crate::enforce::Limiter;
use crate::enforce::counters::tightest;
use crate::enforce::limits::Checks;

/// The `decision` label of a limits report in `tollgate_agent_requests_total`.
pub(crate) const DECISION: &str = "limits";

/// The decision's index among the answered ones (after the refusals').
pub(crate) const DECISION_INDEX: usize = 17;

/// The limits report of `app` (on `plan`, of `api`) at `now`, with the `RateLimit-*` headers
/// of its most constrained limit.
pub(crate) async fn report(
    limiter: &Limiter,
    api: &ApiEntry,
    plan: &PlanEntry,
    app: Uuid,
    now: Timestamp,
) -> Response<Body> {
    let mut checks = Checks::empty();
    plan.limits.standing(app, now, &mut checks);
    let checks = checks.as_slice();
    let used = limiter.standing(checks).await;
    let used_of = |i: usize| used.get(i).copied().unwrap_or(0);
    let limits = plan
        .limits
        .rules()
        .iter()
        .enumerate()
        .map(|(i, rule)| {
            let window = plan.limits.window(rule.period, now);
            let used = used_of(i);
            LimitStatus {
                metric: api.metrics.get(rule.metric as usize).map_or_else(String::new, |m| m.system_name.to_string()),
                period: rule.period,
                max: rule.max,
                used,
                remaining: rule.max.saturating_sub(used),
                window_start: (rule.period != Period::Eternity).then_some(window.start),
                reset: window.end,
                reset_seconds: window.end.map(|end| seconds_until(end, now)),
            }
        })
        .collect();
    let report = LimitsReport { time_zone: plan.time_zone.to_string(), limits };
    let body = serde_json::to_vec(&report).unwrap_or_default();
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(standing) = tightest(checks, used_of)
        && let Some(rate) = RateLimit::of(&plan.limits, &checks[standing.index], standing.used)
    {
        rate.write(headers, now, false);
    }
    response
}
