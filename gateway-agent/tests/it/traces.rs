//! OpenTelemetry traces: an OTLP/HTTP receiver in the test process takes the agent's span
//! batches (`POST /v1/traces`, JSON), and the upstream shows what the agent propagated.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tollgate_agent::{AccessLogMode, OtlpEndpoint, TraceExport};
use tollgate_protocol::Period;

use crate::decisions::{authz, decision_settings};
use crate::harness::*;

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// A stand-in OpenTelemetry Collector: keeps every request body posted to `/v1/traces`.
struct Receiver {
    addr: SocketAddr,
    bodies: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let kept = bodies.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let kept = kept.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let kept = kept.clone();
                        async move {
                            let ok = request.method() == hyper::Method::POST
                                && request.uri().path() == "/v1/traces"
                                && request.headers().get("content-type").is_some_and(|v| v == "application/json");
                            let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            let status = if ok {
                                kept.lock().expect("lock").push(String::from_utf8_lossy(&body).into_owned());
                                StatusCode::OK
                            } else {
                                StatusCode::BAD_REQUEST
                            };
                            let mut response = Response::new(Full::new(Bytes::from_static(b"{}")));
                            *response.status_mut() = status;
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Receiver { addr, bodies, task }
    }

    fn export(&self) -> TraceExport {
        let endpoint = OtlpEndpoint::parse(&format!("http://{}/v1/traces", self.addr)).expect("endpoint");
        let mut export = TraceExport::new(endpoint);
        export.service_name = "agent-under-test".to_owned();
        export.schedule_delay = Duration::from_millis(20);
        export
    }

    /// Every span received so far, with its resource's `service.name`.
    fn spans(&self) -> Vec<(String, Value)> {
        let mut spans = Vec::new();
        for body in self.bodies.lock().expect("lock").iter() {
            let request: Value = serde_json::from_str(body).expect("OTLP JSON");
            for resource in request["resourceSpans"].as_array().expect("resourceSpans") {
                let service = resource["resource"]["attributes"]
                    .as_array()
                    .and_then(|a| a.iter().find(|kv| kv["key"] == "service.name"))
                    .and_then(|kv| kv["value"]["stringValue"].as_str())
                    .unwrap_or("")
                    .to_owned();
                for scope in resource["scopeSpans"].as_array().expect("scopeSpans") {
                    for span in scope["spans"].as_array().expect("spans") {
                        spans.push((service.clone(), span.clone()));
                    }
                }
            }
        }
        spans
    }

    /// The spans once there are at least `count`.
    async fn wait_for(&self, count: usize) -> Vec<Value> {
        eventually(&format!("{count} spans"), || async move {
            let spans = self.spans();
            (spans.len() >= count).then(|| spans.into_iter().map(|(_, span)| span).collect())
        })
        .await
    }

    fn raw(&self) -> String {
        self.bodies.lock().expect("lock").concat()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A span's attribute value (`stringValue` as a string, `intValue` as a number).
fn attr(span: &Value, key: &str) -> Value {
    let Some(kv) = span["attributes"].as_array().and_then(|a| a.iter().find(|kv| kv["key"] == key)) else {
        return Value::Null;
    };
    let value = &kv["value"];
    if let Some(s) = value["stringValue"].as_str() {
        return Value::from(s);
    }
    value["intValue"].as_str().and_then(|n| n.parse::<i64>().ok()).map_or(Value::Null, Value::from)
}

/// The span whose `url.path` is `path` in mode `mode`.
fn span_of<'a>(spans: &'a [Value], mode: &str, path: &str) -> &'a Value {
    spans
        .iter()
        .find(|span| attr(span, "url.path") == path && attr(span, "tollgate.mode") == mode)
        .unwrap_or_else(|| panic!("no {mode} span for {path} in {spans:#?}"))
}

/// (trace id, parent id) of a `traceparent` value.
fn ids(traceparent: &str) -> (String, String) {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!((parts.len(), parts[0], parts[3]), (4, "00", "01"), "{traceparent}");
    (parts[1].to_owned(), parts[2].to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_carry_the_decision_and_the_trace_reaches_the_upstream() {
    let receiver = Receiver::start().await;
    let upstream = Upstream::start().await;
    // `GET /pets/list` is over its limit from the first call (429).
    let fixture = Fixture::new(&upstream, &[('l', Period::Eternity, 0)]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let log = dir.path().join("access.jsonl");
    let mut settings = decision_settings(cp.url(), dir.path(), None);
    settings.traces = Some(receiver.export());
    settings.access_log = AccessLogMode::Json;
    settings.access_log_path = Some(log.clone());
    let agent = start_ready(settings).await;
    let (proxy, authz) = (agent.proxy_addr(), authz(&agent));
    let key = fixture.key.as_str();
    let api = &fixture.snapshot.apis[0];
    let app = fixture.app.to_string();
    let client = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let traced = [("traceparent", client.as_str()), ("tracestate", "vendor=opaque")];

    // Continued: the upstream's parent is the agent's span, in the client's trace.
    let ok = get(&format!("http://{proxy}/pets/items/7?user_key={key}"), &traced).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let seen = upstream.last();
    let sent = seen.headers.get("traceparent").and_then(|v| v.to_str().ok()).expect("a traceparent upstream");
    let (trace, parent) = ids(sent);
    assert_eq!(trace, CLIENT_TRACE);
    assert_ne!(parent, CLIENT_SPAN, "the agent's own span is the upstream's parent");
    assert_eq!(seen.headers.get("tracestate").map(|v| v.as_bytes()), Some(&b"vendor=opaque"[..]));

    // Started: no traceparent from the client, a new trace upstream.
    let fresh = get(&format!("http://{proxy}/pets/items/8?user_key={key}"), &[]).await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.body);
    let started = upstream.last();
    let (new_trace, new_parent) =
        ids(started.headers.get("traceparent").and_then(|v| v.to_str().ok()).expect("a traceparent upstream"));
    assert_ne!(new_trace, CLIENT_TRACE);

    let missing = get(&format!("http://{proxy}/pets/items/9"), &traced).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    let limited = get(&format!("http://{proxy}/pets/list?user_key={key}"), &traced).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    let allowed = get(&format!("http://{authz}/pets/items/1?user_key={key}"), &traced).await;
    assert_eq!(allowed.status, StatusCode::OK, "{}", allowed.body);
    let denied = get(&format!("http://{authz}/pets/items/2?user_key=tg_not_a_key"), &[]).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "{}", denied.body);

    let spans = receiver.wait_for(6).await;
    assert_eq!(spans.len(), 6, "one span per request: {spans:#?}");
    assert!(receiver.spans().iter().all(|(service, _)| service == "agent-under-test"));
    for span in &spans {
        assert_eq!(span["kind"], 2, "server spans: {span}");
        let (start, end) = (&span["startTimeUnixNano"], &span["endTimeUnixNano"]);
        let nanos = |v: &Value| v.as_str().and_then(|n| n.parse::<u64>().ok()).expect("nanos as a string");
        assert!(nanos(start) > 0 && nanos(start) <= nanos(end), "{span}");
        assert_eq!(attr(span, "http.request.method"), "GET");
    }

    let ok = span_of(&spans, "proxy", "/pets/items/7");
    assert_eq!((&ok["traceId"], &ok["parentSpanId"]), (&Value::from(CLIENT_TRACE), &Value::from(CLIENT_SPAN)));
    assert_eq!(ok["spanId"], parent, "the span the upstream was told of");
    assert_eq!(ok["name"], format!("GET {}", api.slug));
    assert_eq!(attr(ok, "tollgate.api"), api.slug.as_str());
    assert_eq!(attr(ok, "tollgate.api.id"), api.id.to_string());
    assert_eq!(attr(ok, "tollgate.application.id"), app);
    assert_eq!((attr(ok, "tollgate.decision"), attr(ok, "tollgate.refusal.reason")), ("allowed".into(), Value::Null));
    assert_eq!(
        (attr(ok, "http.response.status_code"), attr(ok, "tollgate.upstream.status_code")),
        (200.into(), 200.into())
    );
    assert_eq!(attr(ok, "tollgate.upstream"), upstream.url("/backend"));

    let fresh = span_of(&spans, "proxy", "/pets/items/8");
    assert_eq!((&fresh["traceId"], &fresh["spanId"]), (&Value::from(&*new_trace), &Value::from(&*new_parent)));
    assert_eq!(fresh["parentSpanId"], Value::Null, "a root span");

    let missing = span_of(&spans, "proxy", "/pets/items/9");
    assert_eq!(missing["traceId"], CLIENT_TRACE);
    assert_eq!(attr(missing, "http.response.status_code"), 401);
    assert_eq!(
        (attr(missing, "tollgate.decision"), attr(missing, "tollgate.refusal.reason")),
        ("refused".into(), "missing_credentials".into())
    );
    assert_eq!(
        (attr(missing, "tollgate.application.id"), attr(missing, "tollgate.upstream")),
        (Value::Null, Value::Null)
    );

    let limited = span_of(&spans, "proxy", "/pets/list");
    assert_eq!(attr(limited, "http.response.status_code"), 429);
    assert_eq!(
        (attr(limited, "tollgate.decision"), attr(limited, "tollgate.refusal.reason")),
        ("refused".into(), "limit_exceeded".into())
    );
    assert_eq!(attr(limited, "tollgate.application.id"), app, "a refusal is attributed to its application");

    let allowed = span_of(&spans, "decision", "/pets/items/1");
    assert_eq!(
        (&allowed["traceId"], &allowed["parentSpanId"]),
        (&Value::from(CLIENT_TRACE), &Value::from(CLIENT_SPAN))
    );
    assert_eq!(
        (attr(allowed, "tollgate.decision"), attr(allowed, "tollgate.application.id")),
        ("allowed".into(), app.into())
    );
    let denied = span_of(&spans, "decision", "/pets/items/2");
    assert_eq!(attr(denied, "http.response.status_code"), 403);
    assert_eq!(attr(denied, "tollgate.refusal.reason"), "invalid_credentials");

    // The access log names the trace the agent started.
    let text = eventually("6 access log lines", || {
        let log = log.clone();
        async move { std::fs::read_to_string(&log).ok().filter(|text| text.lines().count() >= 6) }
    })
    .await;
    let logged: Vec<Value> = text.lines().map(|line| serde_json::from_str(line).expect("JSON line")).collect();
    assert_eq!(logged[1]["trace_id"], Value::from(&*new_trace), "{text}");

    agent.shutdown().await.expect("clean shutdown");
    let raw = receiver.raw();
    assert!(!raw.contains(key) && !raw.contains("user_key") && !raw.contains("tg_not_a_key"), "a key in a span: {raw}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tracing_off_the_client_traceparent_passes_untouched() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let proxy = agent.proxy_addr();
    let client = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let ok =
        get(&format!("http://{proxy}/pets/items/7?user_key={}", fixture.key.as_str()), &[("traceparent", &client)])
            .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(upstream.last().headers.get("traceparent").and_then(|v| v.to_str().ok()), Some(client.as_str()));
    let bare = get(&format!("http://{proxy}/pets/items/7?user_key={}", fixture.key.as_str()), &[]).await;
    assert_eq!(bare.status, StatusCode::OK);
    assert!(upstream.last().headers.get("traceparent").is_none(), "no trace is started with tracing off");
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_left_at_shutdown_are_sent_before_it_returns() {
    let receiver = Receiver::start().await;
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let mut settings = settings(cp.url(), dir.path(), None);
    let mut export = receiver.export();
    // Far beyond the test's deadline: only the shutdown can send this span in time.
    export.schedule_delay = Duration::from_secs(600);
    settings.traces = Some(export);
    let agent = start_ready(settings).await;
    let proxy = agent.proxy_addr();
    let ok = get(&format!("http://{proxy}/pets/items/7?user_key={}", fixture.key.as_str()), &[]).await;
    assert_eq!(ok.status, StatusCode::OK);
    agent.shutdown().await.expect("clean shutdown");
    assert_eq!(receiver.spans().len(), 1, "the span was flushed by the shutdown");
}
