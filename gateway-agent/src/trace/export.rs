//! The span exporter: a task on the agent's background runtime that batches the spans the
//! proxy workers queue and posts each batch to the OTLP/HTTP endpoint as JSON.
//!
//! A batch goes out when it holds [`MAX_BATCH`] spans or its oldest span has waited the
//! schedule delay, so spans arrive within a bounded time. One export is in flight at a time;
//! meanwhile spans wait in the queue, and a failed export is dropped (and counted), not
//! retried: traces are best-effort, and retrying would only grow the backlog.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::CONTENT_TYPE;
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use metrics::Counter;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tollgate_protocol::trace::{Resource, Span, encode_json};

use super::TraceExport;

/// Spans per export at most.
const MAX_BATCH: usize = 512;

/// After the agent is asked to stop, how long the exporter waits for the last spans of
/// in-flight requests.
const FINAL_WAIT: Duration = Duration::from_secs(11);

/// Runs until every [`super::Tracer`] is gone (or [`FINAL_WAIT`] after `stop`), sending
/// what is left before returning.
pub(crate) async fn run(
    settings: TraceExport,
    mut spans: mpsc::Receiver<Span>,
    dropped: Counter,
    mut stop: watch::Receiver<bool>,
) {
    let mut exporter = Exporter::new(settings, dropped);
    let mut batch: Vec<Span> = Vec::with_capacity(MAX_BATCH);
    // When the batch's oldest span must be sent.
    let mut due: Option<Instant> = None;
    let mut last_call: Option<Instant> = None;
    loop {
        let deadline = match (due, last_call) {
            (Some(due), Some(last)) => Some(due.min(last)),
            (due, last) => due.or(last),
        };
        tokio::select! {
            span = spans.recv() => match span {
                Some(span) => {
                    due.get_or_insert_with(|| Instant::now() + exporter.settings.schedule_delay);
                    batch.push(span);
                    if batch.len() >= MAX_BATCH {
                        exporter.send(&mut batch).await;
                        due = None;
                    }
                }
                None => break,
            },
            () = sleep_until(deadline) => {
                if last_call.is_some_and(|last| Instant::now() >= last) {
                    break;
                }
                exporter.send(&mut batch).await;
                due = None;
            }
            changed = stop.changed(), if last_call.is_none() => {
                // Stopping (or the agent is gone): the workers drain their requests first.
                let _ = changed;
                last_call = Some(Instant::now() + FINAL_WAIT);
            }
        }
    }
    exporter.send(&mut batch).await;
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

struct Exporter {
    settings: TraceExport,
    resource: Resource,
    client: Client<HttpConnector, Full<Bytes>>,
    dropped: Counter,
    /// Whether the last export failed, so a down collector is said once, not per batch.
    failing: bool,
}

impl Exporter {
    fn new(settings: TraceExport, dropped: Counter) -> Exporter {
        let resource = Resource {
            service_name: settings.service_name.clone(),
            scope: "tollgate-agent",
            version: crate::AGENT_VERSION,
        };
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(settings.timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Exporter { settings, resource, client, dropped, failing: false }
    }

    /// Posts `batch` (emptying it); failures are counted as dropped spans.
    async fn send(&mut self, batch: &mut Vec<Span>) {
        if batch.is_empty() {
            return;
        }
        let count = batch.len() as u64;
        let body = encode_json(&self.resource, batch);
        batch.clear();
        let request = Request::builder()
            .method(Method::POST)
            .uri(self.settings.endpoint.uri().clone())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)));
        let Ok(request) = request else { return };
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| e.to_string())?;
            let status = response.status();
            // Read the answer to the end so the connection can be reused.
            let _ = response.into_body().collect().await;
            if status.is_success() { Ok(()) } else { Err(format!("the collector answered {status}")) }
        };
        let outcome = match tokio::time::timeout(self.settings.timeout, exchange).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no answer within {:?}", self.settings.timeout)),
        };
        match outcome {
            Ok(()) => {
                if std::mem::replace(&mut self.failing, false) {
                    tracing::info!(endpoint = %self.settings.endpoint, "trace export works again");
                }
            }
            Err(error) => {
                self.dropped.increment(count);
                if !std::mem::replace(&mut self.failing, true) {
                    tracing::warn!(endpoint = %self.settings.endpoint, %error, "cannot export traces: spans are being dropped");
                }
            }
        }
    }
}
