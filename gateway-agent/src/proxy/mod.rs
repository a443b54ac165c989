//! The request path: route, authenticate, limit, forward, count.
//!
//! Everything is answered from the config in memory; the only awaits are the optional Redis
//! call and the upstream itself. Routing and rule matching borrow the request and do not
//! allocate; the per-request work that does allocate is the upstream URI and the
//! `X-Forwarded-For` value. CORS (for listed browser origins only) wraps all of it: see
//! [`cors`].

pub(crate) mod body;
pub(crate) mod cors;
pub(crate) mod forward;
pub(crate) mod host;
pub(crate) mod path;
pub(crate) mod reply;
pub(crate) mod route;
pub(crate) mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use http_body_util::Either;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::http::request::Parts;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use jiff::Timestamp;
use tollgate_protocol::NoMatch;

use crate::clock::Clock;
use crate::config::{ApiEntry, CredentialEntry, Lifecycle, LiveConfig};
use crate::enforce::counters::Outcome;
use crate::enforce::credentials::{AuthError, authenticate};
use crate::enforce::limits::Checks;
use crate::enforce::{Limiter, Touched};
use crate::settings::{CorsOrigins, Settings};
use crate::telemetry::Metrics;
use crate::usage::aggregate::Aggregator;
use body::ClientBody;
use host::RequestHost;
use reply::{Body, Refusal};

static DEPRECATION: hyper::header::HeaderName = hyper::header::HeaderName::from_static("deprecation");
static SUNSET: hyper::header::HeaderName = hyper::header::HeaderName::from_static("sunset");

pub(crate) struct Proxy {
    live: Arc<LiveConfig>,
    limiter: Arc<Limiter>,
    usage: Arc<Aggregator>,
    client: Client<HttpConnector, ClientBody>,
    clock: Clock,
    upstream_timeout: Duration,
    access_log: bool,
    /// Browser origins that get CORS headers; empty: CORS off.
    cors: CorsOrigins,
    metrics: Arc<Metrics>,
    /// https upstreams need TLS, which this build lacks; said once.
    warned_tls: AtomicBool,
}

/// A request that passed every check, on its way upstream.
struct Admitted<'a> {
    api: &'a ApiEntry,
    /// The credential that admitted it and its SHA-256, for its latest use.
    credential: (&'a [u8; 32], &'a CredentialEntry),
    app: uuid::Uuid,
    touched: &'a Touched,
    rest_offset: usize,
    received: Timestamp,
    started: Instant,
}

/// What the access log and metrics record about a request.
struct Summary<'a> {
    api: Option<&'a ApiEntry>,
    app: Option<uuid::Uuid>,
    decision: &'static str,
    status: StatusCode,
}

impl Proxy {
    pub fn new(
        settings: &Settings,
        live: Arc<LiveConfig>,
        limiter: Arc<Limiter>,
        usage: Arc<Aggregator>,
        metrics: Arc<Metrics>,
    ) -> Proxy {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(settings.upstream_connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Proxy {
            live,
            limiter,
            usage,
            client,
            clock: settings.clock.clone(),
            upstream_timeout: settings.upstream_timeout,
            access_log: settings.access_log,
            cors: settings.cors_origins.clone(),
            metrics,
            warned_tls: AtomicBool::new(false),
        }
    }

    pub async fn handle(&self, request: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        // A listed browser origin, if CORS is on and the request has one (no allocation).
        let origin = if self.cors.is_empty() {
            None
        } else {
            request.headers().get(hyper::header::ORIGIN).and_then(|origin| self.cors.find(origin))
        };
        let Some(origin) = origin else {
            return self.admit(request, peer).await;
        };
        if cors::is_preflight(request.method(), request.headers()) {
            return self.preflight(origin, &request);
        }
        let mut response = self.admit(request, peer).await;
        cors::allow(origin, response.headers_mut());
        response
    }

    /// A CORS preflight from a listed origin, answered before routing, authentication and
    /// limits: it carries no key, and it is not usage.
    fn preflight(&self, origin: &HeaderValue, request: &Request<Incoming>) -> Response<Body> {
        let started = Instant::now();
        let config = self.live.load();
        let response = cors::preflight(origin, request.headers(), config.as_deref());
        self.finish(
            Summary { api: None, app: None, decision: cors::PREFLIGHT, status: response.status() },
            Some(cors::PREFLIGHT_INDEX),
            started,
        );
        response
    }

    /// Route, authenticate, limit, forward.
    async fn admit(&self, request: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let started = Instant::now();
        let Some(config) = self.live.load_full() else {
            return self.refuse(None, None, Refusal::NotReady, started);
        };
        let (parts, body) = request.into_parts();
        let now = self.clock.now();

        let path = parts.uri.path();
        if let Err(invalid) = path::check(path) {
            return self.refuse(None, None, Refusal::InvalidPath(invalid), started);
        }
        let Ok(host) = RequestHost::of(&parts) else {
            return self.refuse(None, None, Refusal::InvalidHost, started);
        };
        let host_name = host.map(RequestHost::name);
        let Some(route) = config.catalog.routes.find(host_name.as_deref(), path) else {
            return self.refuse(None, None, Refusal::UnknownApi, started);
        };
        let Some(api) = config.catalog.apis.get(route.api as usize) else {
            return self.refuse(None, None, Refusal::UnknownApi, started);
        };
        match api.lifecycle {
            Lifecycle::Retired => {
                return self.refuse(Some(api), None, Refusal::ApiRetired, started);
            }
            Lifecycle::Draft => return self.refuse(None, None, Refusal::UnknownApi, started),
            Lifecycle::Published | Lifecycle::Deprecated { .. } => {}
        }

        let rest = path.get(route.rest_offset..).unwrap_or("");
        let mut touched = Touched::empty();
        if !api.map_request(&parts.method, rest, &mut touched) && api.on_no_match == NoMatch::NotFound {
            return self.refuse(Some(api), None, Refusal::NoMatchingRule, started);
        }

        let caller = match authenticate(&config, route.api, &api.auth, parts.uri.query(), &parts.headers, now) {
            Ok(caller) => caller,
            Err(AuthError::Ambiguous) => {
                return self.refuse(Some(api), None, Refusal::AmbiguousCredentials, started);
            }
            Err(AuthError::Missing) => {
                return self.refuse(Some(api), None, Refusal::MissingCredentials, started);
            }
            Err(AuthError::Invalid) => {
                return self.refuse(Some(api), None, Refusal::InvalidCredentials, started);
            }
            Err(AuthError::NotLive) => {
                return self.refuse(Some(api), None, Refusal::ApplicationNotLive, started);
            }
        };
        let app = caller.app;

        let mut checks = Checks::empty();
        caller.plan.limits.checks(app.id, &touched, now, &mut checks);
        if let Outcome::Rejected { index, used } = self.limiter.check_and_add(checks.as_slice(), now).await {
            let check = checks.as_slice().get(index).copied();
            let max = check.map_or(0, |c| c.max);
            let reset = check.and_then(|c| c.window_end).map(|end| reply::seconds_until(end, now));
            let mut response = reply::limit_exceeded(max, used, reset);
            self.decorate(api, &mut response);
            self.finish(
                Summary {
                    api: Some(api),
                    app: Some(app.id),
                    decision: Refusal::LimitExceeded.code(),
                    status: response.status(),
                },
                Some(Refusal::LimitExceeded.index()),
                started,
            );
            return response;
        }

        let admitted = Admitted {
            api,
            credential: (&caller.hash, caller.credential),
            app: app.id,
            touched: &touched,
            rest_offset: route.rest_offset,
            received: now,
            started,
        };
        self.forward(admitted, parts, body, peer).await
    }

    async fn forward(&self, admitted: Admitted<'_>, parts: Parts, body: Incoming, peer: SocketAddr) -> Response<Body> {
        let Admitted { api, credential: (hash, credential), app, touched, rest_offset, received, started } = admitted;
        let Some(target) = api.upstreams.pick() else {
            return self.refuse(Some(api), Some(app), Refusal::UpstreamUnavailable, started);
        };
        if target.is_tls() {
            if !self.warned_tls.swap(true, Ordering::Relaxed) {
                tracing::error!(api = %api.slug, upstream = %target.url, "https upstreams are not supported by this build of the agent");
            }
            return self.refuse(Some(api), Some(app), Refusal::UpstreamUnavailable, started);
        }
        let (body, watch) = ClientBody::watch(body);
        let request = match forward::upstream_request(parts, body, target, rest_offset, &api.auth, peer.ip()) {
            Ok(request) => request,
            Err(err) => {
                tracing::warn!(api = %api.slug, error = %err, "cannot build the upstream request");
                return self.refuse(Some(api), Some(app), Refusal::UpstreamUnavailable, started);
            }
        };
        // Sent upstream: the credential was used, whatever the upstream makes of it.
        self.usage.last_used.record(hash, credential, received);
        let response = match tokio::time::timeout(self.upstream_timeout, self.client.request(request)).await {
            // A client that stalls its body, or breaks it, is not the upstream's failure.
            Err(_) if watch.waiting_for_client() => {
                return self.refuse(Some(api), Some(app), Refusal::BodyTimeout, started);
            }
            Err(_) => {
                target.failed();
                return self.refuse(Some(api), Some(app), Refusal::UpstreamTimeout, started);
            }
            Ok(Err(_)) if watch.failed() => {
                return self.refuse(Some(api), Some(app), Refusal::InvalidBody, started);
            }
            Ok(Err(err)) => {
                if err.is_connect() {
                    target.unreachable();
                } else {
                    target.failed();
                }
                tracing::debug!(api = %api.slug, upstream = %target.url, error = %err, "upstream request failed");
                return self.refuse(Some(api), Some(app), Refusal::UpstreamUnavailable, started);
            }
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        if matches!(status.as_u16(), 502..=504) {
            target.failed();
        } else {
            target.succeeded();
        }
        let latency = started.elapsed();
        self.usage.record(
            app,
            touched
                .as_slice()
                .iter()
                .filter_map(|&(metric, amount)| Some((api.metrics.get(metric as usize)?.id, amount))),
            self.clock.now(),
            status.as_u16(),
            latency,
        );
        let (mut parts, body) = response.into_parts();
        forward::strip_hop_by_hop(&mut parts.headers);
        let mut response = Response::from_parts(parts, Either::Left(body));
        self.decorate(api, &mut response);
        self.finish(Summary { api: Some(api), app: Some(app), decision: "proxied", status }, None, started);
        response
    }

    /// Headers every response of the API carries.
    fn decorate(&self, api: &ApiEntry, response: &mut Response<Body>) {
        if let Lifecycle::Deprecated { sunset } = &api.lifecycle {
            let headers = response.headers_mut();
            headers.insert(&DEPRECATION, HeaderValue::from_static("true"));
            if let Some(sunset) = sunset {
                headers.insert(&SUNSET, sunset.clone());
            }
        }
    }

    fn refuse(
        &self,
        api: Option<&ApiEntry>,
        app: Option<uuid::Uuid>,
        refusal: Refusal,
        started: Instant,
    ) -> Response<Body> {
        let mut response = refusal.response();
        if let Some(api) = api {
            self.decorate(api, &mut response);
        }
        self.finish(
            Summary { api, app, decision: refusal.code(), status: refusal.status() },
            Some(refusal.index()),
            started,
        );
        response
    }

    /// Metrics and the access log line of a request; `answered` is the decision's index if
    /// the agent answered itself (a [`Refusal`] or a CORS preflight), `None` if proxied.
    fn finish(&self, outcome: Summary<'_>, answered: Option<usize>, started: Instant) {
        let elapsed = started.elapsed();
        self.metrics.request_duration.record(elapsed.as_secs_f64());
        let counters = outcome.api.map_or(self.metrics.unrouted(), |api| &api.requests);
        match answered {
            Some(index) => counters.answered(&self.metrics, index, outcome.decision, outcome.status.as_u16()),
            None => counters.proxied(&self.metrics, outcome.status.as_u16()),
        }
        if self.access_log {
            tracing::info!(
                target: "tollgate_agent::access",
                api = outcome.api.map_or("", |api| &*api.slug),
                app = %outcome.app.map(|a| a.to_string()).unwrap_or_default(),
                status = outcome.status.as_u16(),
                decision = outcome.decision,
                latency_ms = elapsed.as_secs_f64() * 1000.0,
            );
        }
    }
}
