//! OpenTelemetry traces of the agent: one span per proxied or decided request, exported over
//! OTLP/HTTP (JSON encoding) when an endpoint is configured (see docs/OBSERVABILITY.md).
//!
//! Off (no endpoint), the request path has no tracer and does no tracing work: no header is
//! read, nothing is allocated, and a client's `traceparent` is forwarded untouched like any
//! other header. On, each request continues the client's trace (a valid `traceparent`) or
//! starts one, gets a span id of its own, and sends its upstream a `traceparent` naming that
//! span as the parent. Finished spans go to a bounded queue without waiting; a background
//! task batches and posts them, and a full queue drops spans (counted in
//! `tollgate_agent_spans_dropped_total`) rather than slow a request.
//!
//! Spans name the application by id only: never a key, and never the query string.

pub(crate) mod export;
mod settings;

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, StatusCode};
use metrics::Counter;
use tokio::sync::mpsc;
use tollgate_protocol::trace::{Attribute, HexTraceId, SAMPLED, Span, SpanKind, TraceParent, Value};
use uuid::Uuid;

pub use settings::{OtlpEndpoint, TraceExport};

use crate::config::ApiEntry;

static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Spans waiting for the exporter at most; beyond, spans are dropped.
const QUEUE: usize = 8 * 1024;

/// Hands finished spans to the exporter; cheap to clone, one per [`crate::proxy::Proxy`].
#[derive(Clone)]
pub(crate) struct Tracer {
    spans: mpsc::Sender<Span>,
    dropped: Counter,
}

/// A request's place in a trace, when tracing is on (or, with tracing off, only the client's
/// trace id for the JSON access log).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Trace {
    pub trace_id: [u8; 16],
    /// This request's span; zero when not tracing.
    span_id: [u8; 8],
    /// The client's span, if the client sent a valid `traceparent`.
    parent: Option<[u8; 8]>,
    flags: u8,
    /// Tracing is on: the span is the agent's, and the upstream hears of it.
    traced: bool,
    /// Answered by the decision endpoint rather than proxied.
    decision: bool,
    start_unix_nanos: u64,
}

impl Trace {
    /// The client's trace, read only (the JSON access log with tracing off).
    pub fn of_client(headers: &HeaderMap) -> Option<Trace> {
        let parent = TraceParent::parse(headers.get(&TRACEPARENT)?.as_bytes())?;
        Some(Trace {
            trace_id: parent.trace_id,
            span_id: [0; 8],
            parent: Some(parent.parent_id),
            flags: parent.flags,
            traced: false,
            decision: false,
            start_unix_nanos: 0,
        })
    }

    /// The same trace, answered by the decision endpoint.
    pub fn in_decision(mut self) -> Trace {
        self.decision = true;
        self
    }

    /// The trace id for the access log.
    pub fn hex_id(&self) -> HexTraceId {
        HexTraceId::new(&self.trace_id)
    }

    /// Tells the upstream this request's span is its parent (same trace, same flags). A
    /// `tracestate` goes along only with the `traceparent` it belongs to: a trace the agent
    /// started drops the client's.
    pub fn propagate(&self, headers: &mut HeaderMap) {
        if !self.traced {
            return;
        }
        let header = TraceParent { trace_id: self.trace_id, parent_id: self.span_id, flags: self.flags };
        if let Ok(value) = HeaderValue::from_bytes(&header.to_bytes()) {
            headers.insert(&TRACEPARENT, value);
        }
        if self.parent.is_none() {
            headers.remove(&TRACESTATE);
        }
    }
}

/// What a finished request's span says; borrowed from the request path's summary.
pub(crate) struct Finished<'a> {
    pub api: Option<&'a ApiEntry>,
    pub app: Option<Uuid>,
    pub request: Option<(&'a Method, &'a str)>,
    pub status: StatusCode,
    /// The refusal's code, if the agent refused the request.
    pub refusal: Option<&'static str>,
    pub upstream: Option<(&'a str, u16)>,
    pub elapsed: Duration,
}

impl Tracer {
    /// The request's trace: the client's continued, or a new one.
    pub fn start(&self, headers: &HeaderMap) -> Trace {
        let start_unix_nanos = unix_nanos(SystemTime::now());
        let span_id = nonzero(|| rand::random::<u64>().to_ne_bytes());
        match headers.get(&TRACEPARENT).and_then(|value| TraceParent::parse(value.as_bytes())) {
            Some(parent) => Trace {
                trace_id: parent.trace_id,
                span_id,
                parent: Some(parent.parent_id),
                flags: parent.flags,
                traced: true,
                decision: false,
                start_unix_nanos,
            },
            None => Trace {
                trace_id: nonzero(|| rand::random::<u128>().to_ne_bytes()),
                span_id,
                parent: None,
                flags: SAMPLED,
                traced: true,
                decision: false,
                start_unix_nanos,
            },
        }
    }

    /// Queues the span of a finished request, if its trace is sampled; never waits.
    pub fn record(&self, trace: &Trace, done: &Finished<'_>) {
        if !trace.traced || trace.flags & SAMPLED == 0 {
            return;
        }
        let span = span(trace, done);
        if self.spans.try_send(span).is_err() {
            self.dropped.increment(1);
        }
    }
}

/// An id that is not all zeros (which W3C calls invalid).
fn nonzero<const N: usize>(random: impl Fn() -> [u8; N]) -> [u8; N] {
    loop {
        let id = random();
        if id != [0; N] {
            return id;
        }
    }
}

fn unix_nanos(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Attribute names (docs/OBSERVABILITY.md lists them).
pub(crate) mod attr {
    pub const METHOD: &str = "http.request.method";
    pub const PATH: &str = "url.path";
    pub const STATUS: &str = "http.response.status_code";
    pub const MODE: &str = "tollgate.mode";
    pub const API: &str = "tollgate.api";
    pub const API_ID: &str = "tollgate.api.id";
    pub const APPLICATION_ID: &str = "tollgate.application.id";
    pub const DECISION: &str = "tollgate.decision";
    pub const REFUSAL: &str = "tollgate.refusal.reason";
    pub const UPSTREAM: &str = "tollgate.upstream";
    pub const UPSTREAM_STATUS: &str = "tollgate.upstream.status_code";
}

fn span(trace: &Trace, done: &Finished<'_>) -> Span {
    let method = done.request.map(|(method, _)| method.as_str());
    let mut attributes = Vec::with_capacity(11);
    let text = |s: &str| Value::Str(Cow::Owned(s.to_owned()));
    let uuid = |id: Uuid| Value::Str(Cow::Owned(id.hyphenated().to_string()));
    if let Some((method, path)) = done.request {
        attributes.push(Attribute::new(attr::METHOD, text(method.as_str())));
        attributes.push(Attribute::new(attr::PATH, text(path)));
    }
    attributes.push(Attribute::new(attr::STATUS, Value::Int(i64::from(done.status.as_u16()))));
    let mode = if trace.decision { "decision" } else { "proxy" };
    attributes.push(Attribute::new(attr::MODE, Value::Str(Cow::Borrowed(mode))));
    if let Some(api) = done.api {
        attributes.push(Attribute::new(attr::API, Value::Shared(api.slug.clone())));
        attributes.push(Attribute::new(attr::API_ID, uuid(api.id)));
    }
    if let Some(app) = done.app {
        attributes.push(Attribute::new(attr::APPLICATION_ID, uuid(app)));
    }
    let decision = if done.refusal.is_some() { "refused" } else { "allowed" };
    attributes.push(Attribute::new(attr::DECISION, Value::Str(Cow::Borrowed(decision))));
    if let Some(reason) = done.refusal {
        attributes.push(Attribute::new(attr::REFUSAL, Value::Str(Cow::Borrowed(reason))));
    }
    if let Some((url, status)) = done.upstream {
        attributes.push(Attribute::new(attr::UPSTREAM, text(url)));
        attributes.push(Attribute::new(attr::UPSTREAM_STATUS, Value::Int(i64::from(status))));
    }
    // `{method} {api}`, as the HTTP conventions name a server span by method and route.
    let name = match (method, done.api) {
        (Some(method), Some(api)) => Cow::Owned(format!("{method} {}", api.slug)),
        (Some(method), None) => Cow::Owned(method.to_owned()),
        (None, _) => Cow::Borrowed("request"),
    };
    let elapsed = u64::try_from(done.elapsed.as_nanos()).unwrap_or(u64::MAX);
    Span {
        trace_id: trace.trace_id,
        span_id: trace.span_id,
        parent_span_id: trace.parent,
        name,
        kind: SpanKind::Server,
        start_unix_nanos: trace.start_unix_nanos,
        end_unix_nanos: trace.start_unix_nanos.saturating_add(elapsed),
        attributes,
        error: done.status.is_server_error(),
    }
}

/// The tracer for the request path and its queue's receiving end, for [`export::run`].
pub(crate) fn channel(dropped: Counter) -> (Tracer, mpsc::Receiver<Span>) {
    let (spans, rx) = mpsc::channel(QUEUE);
    (Tracer { spans, dropped }, rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_trace_is_continued_with_a_span_of_our_own() {
        let (tracer, _rx) = channel(Counter::noop());
        let mut headers = HeaderMap::new();
        let client = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        headers.insert(&TRACEPARENT, HeaderValue::from_static(client));
        headers.insert(&TRACESTATE, HeaderValue::from_static("vendor=1"));
        let trace = tracer.start(&headers);
        assert_eq!(trace.hex_id().as_str(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let mut upstream = headers.clone();
        trace.propagate(&mut upstream);
        let sent = upstream.get(&TRACEPARENT).and_then(|v| v.to_str().ok()).expect("traceparent");
        assert!(sent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && sent.ends_with("-01"), "{sent}");
        assert_ne!(sent, client, "the agent's span is the upstream's parent");
        assert_eq!(upstream.get(&TRACESTATE).map(HeaderValue::as_bytes), Some(&b"vendor=1"[..]));

        // Without a valid traceparent: a new trace, and the orphan tracestate is dropped.
        headers.insert(&TRACEPARENT, HeaderValue::from_static("00-nope-01"));
        let fresh = tracer.start(&headers);
        assert_ne!(fresh.trace_id, trace.trace_id);
        let mut upstream = headers.clone();
        fresh.propagate(&mut upstream);
        assert!(upstream.get(&TRACESTATE).is_none());

        // The client's sampling decision is followed: propagated, not recorded.
        let (tracer, mut rx) = channel(Counter::noop());
        headers
            .insert(&TRACEPARENT, HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"));
        let unsampled = tracer.start(&headers);
        let mut upstream = headers.clone();
        unsampled.propagate(&mut upstream);
        let sent = upstream.get(&TRACEPARENT).and_then(|v| v.to_str().ok()).expect("traceparent");
        assert!(sent.ends_with("-00") && !sent.contains("00f067aa0ba902b7"), "{sent}");
        let done = Finished {
            api: None,
            app: None,
            request: None,
            status: StatusCode::OK,
            refusal: None,
            upstream: None,
            elapsed: Duration::ZERO,
        };
        tracer.record(&unsampled, &done);
        assert!(rx.try_recv().is_err(), "an unsampled request leaves no span");
        tracer.record(&trace, &done);
        assert!(rx.try_recv().is_ok(), "a sampled one does");

        // The access log's reading never touches the headers it is given.
        let read = Trace::of_client(&upstream).expect("valid");
        let mut untouched = upstream.clone();
        read.propagate(&mut untouched);
        assert_eq!(untouched, upstream);
    }
}
