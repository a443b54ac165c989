//! OpenTelemetry traces of the management server: one span per HTTP request, named by its
//! route pattern (never the raw path, which carries ids and tokens), exported over OTLP/HTTP
//! in the JSON encoding when an endpoint is configured (docs/OBSERVABILITY.md).
//!
//! A request with a valid W3C `traceparent` continues the caller's trace. Static files and the
//! operator endpoints (`/healthz`, `/metrics`) are not traced: probes and page assets would
//! bury the requests worth reading. Spans go to a bounded queue without waiting; a task
//! batches and posts them, and a full queue or a failed export drops spans
//! (`tollgate_spans_dropped_total`).

use std::borrow::Cow;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;
use tokio::sync::mpsc;
use tollgate_protocol::trace::{
    Attribute, OTLP_TRACES_PATH, Resource, SAMPLED, Span, SpanKind, TRACEPARENT, TraceParent, Value, encode_json,
};

use crate::setting_error::SettingError;

/// Spans waiting for the exporter at most; beyond, spans are dropped.
const QUEUE: usize = 4096;
/// Spans per export at most.
const MAX_BATCH: usize = 512;
const DROPPED: &str = "tollgate_spans_dropped_total";

/// Trace export, on when an endpoint is configured.
#[derive(Debug, Clone)]
pub struct TraceExport {
    /// The full OTLP/HTTP traces URL.
    pub endpoint: String,
    pub service_name: String,
    pub schedule_delay: Duration,
    pub timeout: Duration,
}

impl TraceExport {
    /// Reads `OTEL_*` through `env`; `own` is the server's own setting (`TOLLGATE_OTLP_ENDPOINT`
    /// or `otlp_endpoint` in the file, with the name to blame), which wins. `None`: off.
    pub(crate) fn load(
        env: &dyn Fn(&str) -> Option<String>,
        own: Option<(String, String)>,
    ) -> Result<Option<TraceExport>, SettingError> {
        let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let invalid = |setting: &str, message: String| SettingError { setting: setting.to_owned(), message };
        // OpenTelemetry reads anything but `true` as false; a `yes` or `1` meant to turn
        // tracing off is refused rather than read as "on".
        match get("OTEL_SDK_DISABLED").map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("false") => {}
            Some("true") => return Ok(None),
            Some(other) => {
                return Err(invalid("OTEL_SDK_DISABLED", format!("`{other}` is not true or false")));
            }
        }
        match get("OTEL_TRACES_EXPORTER").as_deref().map(str::trim) {
            None | Some("otlp") => {}
            Some("none") => return Ok(None),
            Some(other) => {
                return Err(invalid("OTEL_TRACES_EXPORTER", format!("`{other}` is not supported; use otlp or none")));
            }
        }
        for setting in ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"] {
            if let Some(protocol) = get(setting) {
                if protocol.trim() == "grpc" {
                    return Err(invalid(
                        setting,
                        "grpc is not supported; traces are exported over OTLP/HTTP (the collector's port 4318)"
                            .to_owned(),
                    ));
                }
                if !matches!(protocol.trim(), "http/json" | "http/protobuf") {
                    return Err(invalid(
                        setting,
                        format!("`{}` is not supported; use http/json (or http/protobuf)", protocol.trim()),
                    ));
                }
                break;
            }
        }
        let url = |name: &str, raw: &str| -> Result<String, SettingError> {
            let raw = raw.trim();
            if !(raw.starts_with("http://") || raw.starts_with("https://")) || reqwest::Url::parse(raw).is_err() {
                return Err(invalid(name, format!("`{raw}` is not an http:// or https:// URL")));
            }
            Ok(raw.to_owned())
        };
        let endpoint = if let Some((name, raw)) = own {
            url(&name, &raw)?
        } else if let Some(raw) = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            url("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &raw)?
        } else if let Some(raw) = get("OTEL_EXPORTER_OTLP_ENDPOINT") {
            let base = url("OTEL_EXPORTER_OTLP_ENDPOINT", &raw)?;
            format!("{}{OTLP_TRACES_PATH}", base.trim_end_matches('/'))
        } else {
            return Ok(None);
        };
        let millis = |setting: &str, default: u64| -> Result<Duration, SettingError> {
            let Some(raw) = get(setting) else { return Ok(Duration::from_millis(default)) };
            match raw.trim().parse::<u64>() {
                Ok(ms) if (1..=600_000).contains(&ms) => Ok(Duration::from_millis(ms)),
                _ => Err(invalid(setting, format!("`{raw}` is not a number of milliseconds from 1 to 600000"))),
            }
        };
        Ok(Some(TraceExport {
            endpoint,
            service_name: get("OTEL_SERVICE_NAME").map_or_else(|| "tollgate".to_owned(), |n| n.trim().to_owned()),
            schedule_delay: millis("OTEL_BSP_SCHEDULE_DELAY", 5000)?,
            timeout: millis("OTEL_EXPORTER_OTLP_TIMEOUT", 10_000)?,
        }))
    }
}

/// Hands finished spans to the exporter task (app data of the server); `None` inside: off.
#[derive(Clone)]
pub struct Tracer {
    spans: Option<mpsc::Sender<Span>>,
}

impl Tracer {
    /// With an export, starts the exporter task on the current Tokio runtime.
    pub fn start(export: Option<TraceExport>) -> Tracer {
        let Some(export) = export else { return Tracer { spans: None } };
        let (spans, rx) = mpsc::channel(QUEUE);
        metrics::counter!(DROPPED).absolute(0);
        tokio::spawn(run(export, rx));
        Tracer { spans: Some(spans) }
    }

    fn record(&self, span: Span) {
        if let Some(spans) = &self.spans
            && spans.try_send(span).is_err()
        {
            metrics::counter!(DROPPED).increment(1);
        }
    }
}

/// Paths not traced: static files and the operator endpoints.
fn untraced(path: &str) -> bool {
    path.starts_with("/static/") || path == "/healthz" || path == "/metrics"
}

fn unix_nanos(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A random id that is not all zeros.
fn random_id<const N: usize>() -> [u8; N] {
    loop {
        let mut id = [0u8; N];
        let random = uuid::Uuid::new_v4().into_bytes();
        id.copy_from_slice(&random[16 - N..]);
        if id != [0; N] {
            return id;
        }
    }
}

/// Records a span per request when a [`Tracer`] is registered; passes through otherwise.
pub async fn trace_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let tracer = req.app_data::<web::Data<Tracer>>().filter(|t| t.spans.is_some()).cloned();
    let Some(tracer) = tracer.filter(|_| !untraced(req.path())) else {
        return next.call(req).await;
    };
    let parent = req.headers().get(TRACEPARENT).and_then(|value| TraceParent::parse(value.as_bytes()));
    let method = req.method().as_str().to_owned();
    let start = unix_nanos(SystemTime::now());
    let started = Instant::now();
    let result = next.call(req).await;
    let elapsed = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let (status, route) = match &result {
        Ok(res) => (res.status().as_u16(), res.request().match_pattern()),
        Err(err) => (err.as_response_error().status_code().as_u16(), None),
    };
    if parent.is_some_and(|p| p.flags & SAMPLED == 0) {
        return result;
    }
    let route = route.unwrap_or_else(|| "unmatched".to_owned());
    tracer.record(Span {
        trace_id: parent.map_or_else(random_id, |p| p.trace_id),
        span_id: random_id(),
        parent_span_id: parent.map(|p| p.parent_id),
        name: Cow::Owned(format!("{method} {route}")),
        kind: SpanKind::Server,
        start_unix_nanos: start,
        end_unix_nanos: start.saturating_add(elapsed),
        attributes: vec![
            Attribute::new("http.request.method", Value::Str(Cow::Owned(method))),
            Attribute::new("http.route", Value::Str(Cow::Owned(route))),
            Attribute::new("http.response.status_code", Value::Int(i64::from(status))),
        ],
        error: status >= 500,
    });
    result
}

/// Batches spans and posts each batch; ends when every [`Tracer`] is gone.
async fn run(export: TraceExport, mut rx: mpsc::Receiver<Span>) {
    tollgate_core::identity::install_crypto_provider();
    let client = match reqwest::Client::builder().timeout(export.timeout).build() {
        Ok(client) => client,
        Err(err) => {
            tracing::warn!(error = %err, "cannot build the trace exporter's HTTP client: traces are off");
            return;
        }
    };
    let resource =
        Resource { service_name: export.service_name.clone(), scope: "tollgate", version: env!("CARGO_PKG_VERSION") };
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut failing = false;
    loop {
        let Some(first) = rx.recv().await else { break };
        batch.push(first);
        let due = tokio::time::Instant::now() + export.schedule_delay;
        while batch.len() < MAX_BATCH {
            match tokio::time::timeout_at(due, rx.recv()).await {
                Ok(Some(span)) => batch.push(span),
                Ok(None) | Err(_) => break,
            }
        }
        let count = batch.len() as u64;
        let body = encode_json(&resource, &batch);
        batch.clear();
        let sent = client
            .post(&export.endpoint)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status);
        match sent {
            Ok(_) if failing => {
                failing = false;
                tracing::info!(endpoint = %export.endpoint, "trace export works again");
            }
            Ok(_) => {}
            Err(err) => {
                metrics::counter!(DROPPED).increment(count);
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(endpoint = %export.endpoint, error = %err, "cannot export traces: spans are being dropped");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)], own: Option<&str>) -> Result<Option<TraceExport>, SettingError> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let env = move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        TraceExport::load(&env, own.map(|raw| ("TOLLGATE_OTLP_ENDPOINT".to_owned(), raw.to_owned())))
    }

    #[test]
    fn endpoints_and_switches() {
        assert!(load(&[], None).expect("valid").is_none());
        let base = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/");
        let on = load(&[base], None).expect("valid").expect("on");
        assert_eq!((on.endpoint.as_str(), on.service_name.as_str()), ("http://c:4318/v1/traces", "tollgate"));
        let traces = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://t/x");
        assert_eq!(load(&[base, traces], None).expect("valid").expect("on").endpoint, "https://t/x");
        assert_eq!(
            load(&[base, traces], Some("http://own/v1/traces")).expect("ok").expect("on").endpoint,
            "http://own/v1/traces"
        );
        assert!(load(&[base, ("OTEL_SDK_DISABLED", "true")], None).expect("valid").is_none());
        assert!(load(&[base, ("OTEL_TRACES_EXPORTER", "none")], None).expect("valid").is_none());
        let err = |vars: &[(&str, &str)], own: Option<&str>| load(vars, own).expect_err("invalid").setting;
        assert_eq!(err(&[base, ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")], None), "OTEL_EXPORTER_OTLP_PROTOCOL");
        assert_eq!(err(&[base, ("OTEL_SDK_DISABLED", "yes")], None), "OTEL_SDK_DISABLED");
        assert_eq!(err(&[base, ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/xml")], None), "OTEL_EXPORTER_OTLP_PROTOCOL");
        assert_eq!(err(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "c:4318")], None), "OTEL_EXPORTER_OTLP_ENDPOINT");
        assert_eq!(err(&[], Some("nope")), "TOLLGATE_OTLP_ENDPOINT");
        assert_eq!(err(&[base, ("OTEL_BSP_SCHEDULE_DELAY", "x")], None), "OTEL_BSP_SCHEDULE_DELAY");
    }
}
