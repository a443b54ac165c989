//! The admin listener: `/healthz` (the process is up), `/ready` (503 until a config is in
//! service, from the server or from disk), `/metrics` (Prometheus text).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::config::LiveConfig;
use crate::enforce::Limiter;
use crate::sync::stream::Source;
use crate::telemetry::Metrics;

pub(crate) struct Admin {
    pub live: Arc<LiveConfig>,
    pub source: Arc<AtomicU8>,
    /// Set while the management server refuses the agent token.
    pub token_refused: Arc<AtomicBool>,
    pub limiter: Arc<Limiter>,
    pub metrics: Arc<Metrics>,
}

impl Admin {
    pub fn handle<B>(&self, request: &Request<B>) -> Response<Full<Bytes>> {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return json(
                StatusCode::METHOD_NOT_ALLOWED,
                r#"{"error":"method_not_allowed","message":"use GET"}"#.into(),
            );
        }
        match request.uri().path() {
            "/healthz" => json(StatusCode::OK, r#"{"status":"ok"}"#.into()),
            "/ready" => self.ready(),
            "/metrics" => {
                let mut response = Response::new(Full::new(Bytes::from(self.metrics.render())));
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
                response
            }
            _ => json(
                StatusCode::NOT_FOUND,
                r#"{"error":"not_found","message":"try /healthz, /ready or /metrics"}"#.into(),
            ),
        }
    }

    fn ready(&self) -> Response<Full<Bytes>> {
        let redis = match &self.limiter.shared {
            None => "off",
            Some(shared) if shared.is_up() => "up",
            Some(_) => "down",
        };
        // A refused token means a config that can no longer change (revocations and suspensions
        // no longer arrive): not ready, so a load balancer stops sending traffic here.
        if self.token_refused.load(Ordering::Acquire) {
            let live = self.live.load();
            return json(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({
                    "status": "token_refused",
                    "message": "the management server refused the agent token (revoked, or mistyped): register the agent again and set TOLLGATE_AGENT_TOKEN",
                    "revision": live.as_ref().map(|c| c.revision),
                    "source": Source::load(&self.source).as_str(),
                    "redis": redis,
                })
                .to_string(),
            );
        }
        match &*self.live.load() {
            None => json(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"status": "waiting_for_config", "redis": redis}).to_string(),
            ),
            Some(config) => json(
                StatusCode::OK,
                serde_json::json!({
                    "status": "ready",
                    "revision": config.revision,
                    "source": Source::load(&self.source).as_str(),
                    "redis": redis,
                })
                .to_string(),
            ),
        }
    }
}

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
