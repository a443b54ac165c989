//! Gives every request an id (the caller's, if it is sane) in its log lines and
//! answer, and counts requests by route and status for `/metrics`.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tollgate_protocol::STATUS_PATH;
use tracing::Instrument;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A caller's id is kept if it is short and plain; otherwise a new one is made.
fn incoming_id(req: &ServiceRequest) -> Option<String> {
    let value = req.headers().get(&REQUEST_ID)?.to_str().ok()?;
    let plain = !value.is_empty()
        && value.len() <= 64
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    plain.then(|| value.to_owned())
}

/// The `method` label: a standard method by name, anything else `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// Gives every request an id (echoed in `X-Request-Id` and in every log
/// line of the request), counts it in Prometheus and logs its outcome.
pub async fn request_id_and_metrics(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = incoming_id(&req).unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let method = req.method().to_string();
    let path = req.path().to_owned();
    let is_heartbeat = req.method() == Method::POST && path == STATUS_PATH;
    // Labels come from closed sets, so no request can add series at will:
    // the route's template (not the raw path, which carries ids), and the
    // method if it is a standard one.
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    let method_label = method_label(req.method());
    let span = tracing::info_span!("request", request_id = %id, %method, %path);
    let started = Instant::now();
    let result = next.call(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let mut res = result?;
    let status = res.status().as_u16();
    let _guard = span.enter();
    if status >= 500 {
        tracing::warn!(status, elapsed_ms = elapsed.as_millis() as u64, "request failed");
    } else if is_heartbeat && status < 400 {
        // Every agent posts its status every 10 s; the status handler logs what changed.
        tracing::debug!(status, elapsed_ms = elapsed.as_millis() as u64, "request");
    } else {
        tracing::info!(status, elapsed_ms = elapsed.as_millis() as u64, "request");
    }
    let labels = [("method", method_label.to_owned()), ("route", route), ("status", status.to_string())];
    metrics::counter!("tollgate_http_requests_total", &labels).increment(1);
    metrics::histogram!("tollgate_http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    Ok(res)
}
