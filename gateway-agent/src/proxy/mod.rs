//! The request path: route, authenticate, limit, forward, count.
//!
//! Everything is answered from the config in memory; the only awaits are the optional Redis
//! call and the upstream itself. Routing and rule matching borrow the request and do not
//! allocate; the per-request work that does allocate is the upstream URI and the
//! `X-Forwarded-For` value. CORS (for listed browser origins only) wraps all of it: see
//! [`cors`]. Admitted requests carry the `RateLimit-*` headers of their most constrained
//! limit ([`ratelimit`]); `<base path>/_tollgate/…` is the agent's own ([`limits`]). The
//! decision endpoint ([`decision`]) runs the same routing, request filter and refusals for
//! another proxy, and answers instead of forwarding. An admitted `Connection: Upgrade` request
//! (WebSocket) is forwarded by [`upgrade`] and, on `101`, becomes a tunnel. An operation in
//! mock mode is answered after the request filter from its description's examples
//! ([`mock`]), counted as a forwarded call would be.
//!
//! A request whose key the agent knows is *attributed* to that key's application, even when
//! it is refused: the refusal is counted in the usage batch's `refused` list and sampled
//! among the application's failed calls, as are upstream answers of 400 or more.

pub(crate) mod access_log;
pub(crate) mod body;
pub(crate) mod check;
pub(crate) mod connections;
pub(crate) mod cors;
pub(crate) mod decision;
pub(crate) mod direct;
pub(crate) mod forward;
pub(crate) mod host;
pub(crate) mod limits;
pub(crate) mod method_field;
pub(crate) mod mock;
pub(crate) mod original;
pub(crate) mod path;
pub(crate) mod ratelimit;
pub(crate) mod reply;
pub(crate) mod route;
pub(crate) mod split;
pub(crate) mod upgrade;
pub(crate) mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::Either;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode, Uri};
use jiff::Timestamp;
use tollgate_protocol::NoMatch;
use tollgate_protocol::gateway::{ReservedPath, reserved_path};
use uuid::Uuid;

use crate::clock::Clock;
use crate::config::{ApiEntry, AppEntry, Config, CredentialEntry, Lifecycle, LiveConfig};
use crate::enforce::counters::Outcome;
use crate::enforce::credentials::{AuthError, Identified, KeyPrefix, authenticate, identify};
use crate::enforce::limits::{Checks, LimitRule};
use crate::enforce::{Limiter, Touched};
use crate::settings::{AccessLogMode, AuthzPathPrefix, CorsOrigins, Settings};
use crate::telemetry::Metrics;
use crate::trace::{Finished, Trace, Tracer};
use crate::usage::aggregate::Aggregator;
use crate::usage::failed_calls::Failure;
use crate::usage::groups::GroupTag;
use access_log::{AccessLog, Entry, Verdict};
use body::{BodyWatch, ClientBody};
use connections::{Connections, UpstreamBody, UpstreamError};
use host::{InvalidHost, RequestHost};
use ratelimit::RateLimit;
use reply::{Body, Refusal};
use route::Route;
use upstream::Target;

use crate::tls::upstream::UpstreamTls;

static DEPRECATION: hyper::header::HeaderName = hyper::header::HeaderName::from_static("deprecation");
/// The id of an answer a failed-call record holds, for a developer to quote.
pub(crate) static X_TOLLGATE_REQUEST_ID: hyper::header::HeaderName =
    hyper::header::HeaderName::from_static("x-tollgate-request-id");
static SUNSET: hyper::header::HeaderName = hyper::header::HeaderName::from_static("sunset");

pub(crate) struct Proxy {
    live: Arc<LiveConfig>,
    limiter: Arc<Limiter>,
    usage: Arc<Aggregator>,
    /// This worker's upstream connections.
    connections: Connections,
    clock: Clock,
    upstream_timeout: Duration,
    /// An upgraded connection (WebSocket) with no traffic either way is closed after this.
    upgrade_idle_timeout: Duration,
    /// The tracing access line (`TOLLGATE_AGENT_ACCESS_LOG=on`).
    access_line: bool,
    /// The JSON access log (`TOLLGATE_AGENT_ACCESS_LOG=json`).
    access_json: Option<AccessLog>,
    /// Browser origins that get CORS headers; empty: CORS off.
    cors: CorsOrigins,
    metrics: Arc<Metrics>,
    /// `X-Forwarded-Proto`: `https` when the proxy listener terminates TLS.
    forwarded_proto: HeaderValue,
    /// Envoy's `path_prefix`, for the decision endpoint.
    authz_prefix: Option<AuthzPathPrefix>,
    /// Where request spans go, when tracing is on.
    tracer: Option<Tracer>,
    /// Allowed decisions waiting for their response code (`TOLLGATE_AGENT_AUTHZ_REPORTS=on`).
    reports: Option<Arc<crate::report::Pending>>,
}

/// What is known about a routed request, for its answer, its metrics and its records.
struct Call<'a> {
    started: Instant,
    /// When it arrived, by the agent's clock.
    received: Timestamp,
    method: &'a Method,
    /// The client's request target (taken out of the request's parts).
    uri: &'a Uri,
    api: &'a ApiEntry,
    /// The metric of its operation, once mapping rules ran and one matched.
    operation: Option<Uuid>,
    /// The application its key belongs to, if the agent knows the key.
    blame: Option<Blame>,
    /// Its most constrained limit, once limits were checked.
    rate: Option<RateLimit<'a>>,
    /// The limit that refused it, for the 429's message.
    exceeded: Option<LimitRule>,
    /// Its trace: with tracing on, always; off, the client's, read only for the JSON
    /// access log.
    trace: Option<Trace>,
    /// The upstream group the call was sent to, once chosen.
    group: GroupTag,
}

/// The application a request is attributed to, and the visible prefix of its key.
#[derive(Clone, Copy)]
struct Blame {
    app: Uuid,
    prefix: Option<KeyPrefix>,
}

impl From<Identified<'_>> for Blame {
    fn from(identified: Identified<'_>) -> Blame {
        Blame { app: identified.app.id, prefix: identified.prefix }
    }
}

impl Call<'_> {
    /// The failed-call record of this request, answered `status` after `latency`.
    fn failure(
        &self,
        blame: Blame,
        status: u16,
        error: Option<&'static str>,
        latency: Duration,
        request_id: Uuid,
    ) -> Failure<'_> {
        Failure {
            request_id,
            app: blame.app,
            api: self.api.id,
            at: self.received,
            method: self.method,
            operation: self.operation,
            path: self.uri.path(),
            status,
            error,
            prefix: blame.prefix,
            latency,
        }
    }
}

/// The id of an answer of 400 or more that a failed-call record will hold (the request is
/// attributed to an application), written into the answer's `X-Tollgate-Request-Id`: the
/// developer quotes it, the provider finds the call by it. Other answers get none.
fn request_id(call: &Call<'_>, status: StatusCode, headers: &mut HeaderMap) -> Option<Uuid> {
    if status.as_u16() < 400 || call.blame.is_none() {
        return None;
    }
    // A UUID v7 from the request's own clock and the thread's generator: `Uuid::now_v7`
    // takes a process-wide lock and a system call for its randomness, per id.
    let millis = u64::try_from(call.received.as_millisecond()).unwrap_or(0);
    let id = uuid::Builder::from_unix_timestamp_millis(millis, &rand::random::<[u8; 10]>()).into_uuid();
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    if let Ok(value) = HeaderValue::from_str(id.hyphenated().encode_lower(&mut text)) {
        headers.insert(&X_TOLLGATE_REQUEST_ID, value);
    }
    Some(id)
}

/// What logging needs of an answer sent on: its status, its body's length when known, when
/// its head came, and its request id (see [`request_id`]).
struct Answer {
    status: StatusCode,
    bytes: Option<u64>,
    request_id: Option<Uuid>,
}

/// The request filter's verdict to go on: the credential that admitted the request and its
/// SHA-256 (for its latest use), and the usage the request adds.
struct Admitted<'a> {
    hash: [u8; 32],
    credential: &'a CredentialEntry,
    app: &'a AppEntry,
    touched: Touched,
}

/// nginx's status for a request whose client closed the connection before the answer: the
/// upstream may have done the work (an order, a message sent), so it is usage, in the 4xx class.
const CLIENT_CLOSED_REQUEST: StatusCode = match StatusCode::from_u16(499) {
    Ok(status) => status,
    Err(_) => panic!("499 is a status code"),
};

/// Armed while a request is with the upstream: if the client goes away, hyper drops the
/// request's future before the answer, and this records its usage on the way out.
struct Unanswered<'a, 'c> {
    proxy: &'a Proxy,
    call: &'a Call<'c>,
    admitted: &'a Admitted<'a>,
}

impl Unanswered<'_, '_> {
    /// The exchange ended with an answer or a failure: usage is recorded by what follows.
    fn answered(self) {
        std::mem::forget(self);
    }
}

impl Drop for Unanswered<'_, '_> {
    fn drop(&mut self) {
        self.proxy.abandoned(self.call, self.admitted);
    }
}

/// The request filter's verdict to stop: answered by the agent, through [`Proxy::refuse`]
/// like every other refusal (429 included).
struct Refused(Refusal);

impl From<Refusal> for Refused {
    fn from(refusal: Refusal) -> Refused {
        Refused(refusal)
    }
}

/// What the access log and metrics record about a request.
struct Summary<'a> {
    api: Option<&'a ApiEntry>,
    app: Option<uuid::Uuid>,
    decision: &'static str,
    status: StatusCode,
    /// The request's method and path, once read.
    request: Option<(&'a Method, &'a str)>,
    trace: Option<Trace>,
    refused: bool,
    upstream: Option<u16>,
    /// The upstream's URL, once one answered.
    target: Option<&'a str>,
    /// The response body's size, when its head says.
    bytes: Option<u64>,
}

impl<'a> Summary<'a> {
    /// A request the agent answered itself.
    fn answered(
        api: Option<&'a ApiEntry>,
        app: Option<Uuid>,
        decision: &'static str,
        response: &Response<Body>,
    ) -> Summary<'a> {
        Summary {
            api,
            app,
            decision,
            status: response.status(),
            request: None,
            trace: None,
            refused: false,
            upstream: None,
            target: None,
            bytes: body_bytes(response),
        }
    }

    fn of(mut self, call: &Call<'a>) -> Summary<'a> {
        self.request = Some((call.method, call.uri.path()));
        self.trace = call.trace;
        self
    }
}

/// The body's size, when known from the response's head.
fn body_bytes<B: hyper::body::Body>(response: &Response<B>) -> Option<u64> {
    response.body().size_hint().exact()
}

impl Proxy {
    pub fn new(
        settings: &Settings,
        access_json: Option<AccessLog>,
        live: Arc<LiveConfig>,
        limiter: Arc<Limiter>,
        usage: Arc<Aggregator>,
        metrics: Arc<Metrics>,
        upstream_tls: Arc<UpstreamTls>,
    ) -> Proxy {
        crate::header_number::warm_up();
        Proxy {
            live,
            limiter,
            usage,
            connections: Connections::new(settings.upstream_connect_timeout, upstream_tls),
            clock: settings.clock.clone(),
            upstream_timeout: settings.upstream_timeout,
            upgrade_idle_timeout: settings.upgrade_idle_timeout,
            access_line: settings.access_log == AccessLogMode::On,
            access_json,
            cors: settings.cors_origins.clone(),
            metrics,
            forwarded_proto: HeaderValue::from_static(if settings.tls.certificates.is_empty() {
                "http"
            } else {
                "https"
            }),
            authz_prefix: settings.authz_path_prefix.clone(),
            tracer: None,
            reports: None,
        }
    }

    /// Holds the usage of allowed decisions until their response code is reported
    /// (`TOLLGATE_AGENT_AUTHZ_REPORTS=on`; `None`: counted at the decision).
    pub fn reporting(mut self, reports: Option<Arc<crate::report::Pending>>) -> Proxy {
        self.reports = reports;
        self
    }

    /// Records a span per request through `tracer` (`None`: tracing off).
    pub fn traced(mut self, tracer: Option<Tracer>) -> Proxy {
        self.tracer = tracer;
        self
    }

    /// Answers one client request. Owns its `Proxy` so that the connection's service can
    /// hand this future to hyper as it is (see `server::connection`).
    pub async fn handle(self: Arc<Self>, request: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        // A listed browser origin, if CORS is on and the request has one (no allocation).
        let origin = if self.cors.is_empty() {
            None
        } else {
            request.headers().get(hyper::header::ORIGIN).and_then(|origin| self.cors.find(origin))
        };
        let Some(origin) = origin else {
            return self.pipeline(request, peer).await;
        };
        if cors::is_preflight(request.method(), request.headers()) {
            return self.preflight(origin, &request);
        }
        let mut response = self.pipeline(request, peer).await;
        cors::allow(origin, response.headers_mut());
        response
    }

    /// A CORS preflight from a listed origin, answered before routing, authentication and
    /// limits: it carries no key, and it is not usage.
    fn preflight(&self, origin: &HeaderValue, request: &Request<Incoming>) -> Response<Body> {
        let started = Instant::now();
        let config = self.live.load();
        let response = cors::preflight(origin, request.headers(), config.as_deref());
        let mut summary = Summary::answered(None, None, cors::PREFLIGHT, &response);
        summary.request = Some((request.method(), request.uri().path()));
        summary.trace = self.trace(request.headers());
        self.finish(summary, Some(cors::PREFLIGHT_INDEX), started);
        response
    }

    /// The phases of a request, named as in pingora's `ProxyHttp`: routing, then the
    /// [request filter](Self::admit) (rules, credentials, limits), the
    /// [upstream peer](Self::upstream_peer), the
    /// [upstream request filter](forward::upstream_request), the exchange, the
    /// [response filter](Self::response_filter) or the [failure answer](Self::failure_answer),
    /// and [logging](Self::logging).
    async fn pipeline(&self, request: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let started = Instant::now();
        let trace = self.trace(request.headers());
        let Some(config) = self.live.load_full() else {
            return self.refuse_unrouted(Refusal::NotReady, (request.method(), request.uri().path()), trace, started);
        };
        if request.method() == Method::CONNECT {
            return self.refuse_unrouted(Refusal::Tunnel, (request.method(), request.uri().path()), trace, started);
        }
        if is_case_variant(request.method()) {
            return self.refuse_unrouted(Refusal::MethodCase, (request.method(), request.uri().path()), trace, started);
        }
        let (mut parts, body) = request.into_parts();
        let now = self.clock.now();

        let (route, api) = match find_api(&config, parts.uri.path(), || RequestHost::of(&parts)) {
            Ok(found) => found,
            Err(refusal) => return self.refuse_unrouted(refusal, (&parts.method, parts.uri.path()), trace, started),
        };

        // Routed: from here on a refusal may be attributed to the application of the key, so
        // the request's method and target are kept for its record.
        let uri = std::mem::take(&mut parts.uri);
        let method = parts.method.clone();
        let mut call = Call {
            started,
            received: now,
            method: &method,
            uri: &uri,
            api,
            operation: None,
            blame: None,
            rate: None,
            exceeded: None,
            trace,
            group: GroupTag::NONE,
        };
        let rest = uri.path().get(route.rest_offset..).unwrap_or("");
        let reserved = reserved_path(rest);
        if let Some(reserved) = reserved
            && !matches!(api.lifecycle, Lifecycle::Retired)
        {
            // Boxed, as rare: its limits report would make every request's future bigger.
            return Box::pin(self.gateway_endpoint(&config, &call, route.api, reserved, &parts.headers)).await;
        }
        // A handshake with a body: refused before the limits count the call.
        if !hyper::body::Body::is_end_stream(&body) && upgrade::requested(&parts) {
            return self.refuse(&call, Refusal::UpgradeWithBody);
        }
        match self.admit(&config, &mut call, route.api, rest, reserved.is_some(), &parts.headers).await {
            Ok(admitted) => match self.mock_answer(&call, &admitted, &parts.headers) {
                Some(response) => response,
                // Boxed: its upstream handshake would otherwise make every request's future
                // (moved whole into hyper's dispatcher) kilobytes bigger.
                None if upgrade::requested(&parts) => {
                    Box::pin(self.proxy_upgrade(&mut call, admitted, parts, body, route.rest_offset, peer)).await
                }
                None => self.proxy_upstream(&mut call, admitted, parts, body, route.rest_offset, peer).await,
            },
            Err(Refused(refusal)) => self.refuse(&call, refusal),
        }
    }

    /// Request filter: the API's lifecycle, its mapping rules, the credentials and the
    /// limits. Records on `call` what is learnt on the way (operation, application, most
    /// constrained limit) so that a refusal is attributed and carries its headers.
    async fn admit<'c>(
        &self,
        config: &'c Config,
        call: &mut Call<'c>,
        api_index: u32,
        rest: &str,
        reserved: bool,
        headers: &HeaderMap,
    ) -> Result<Admitted<'c>, Refused> {
        let api = call.api;
        let now = call.received;
        if matches!(api.lifecycle, Lifecycle::Retired) {
            // The gateway's own endpoints leave no trace in the application's records.
            if !reserved {
                call.blame = self.identify(config, api, call.uri, headers);
            }
            return Err(Refusal::ApiRetired.into());
        }

        // The rules match the request's own method; an override would let the upstream run another.
        if forward::carries_method_override(call.method, call.uri.query(), headers) {
            call.blame = self.identify(config, api, call.uri, headers);
            return Err(Refusal::MethodOverride.into());
        }
        let mut touched = Touched::empty();
        let operation = api.map_request(call.method, rest, &mut touched);
        if rest.contains(';')
            && let Some(segment) = path::ambiguous_parameters(rest, (operation, touched.as_slice()), |dropped| {
                let mut other = Touched::empty();
                let operation = api.map_request(call.method, dropped, &mut other);
                (operation, other.as_slice().to_vec())
            })
        {
            call.blame = self.identify(config, api, call.uri, headers);
            // Numbered in the whole request path, as the path policy numbers segments.
            let base = call.uri.path().len().saturating_sub(rest.len());
            let segment = segment + call.uri.path()[..base].matches('/').count();
            let invalid = path::InvalidPath { problem: path::PathProblem::AmbiguousParameters, segment };
            return Err(Refusal::InvalidPath(invalid).into());
        }
        call.operation = operation.and_then(|index| api.metrics.get(index as usize)).map(|metric| metric.id);
        if operation.is_none() && api.on_no_match == NoMatch::NotFound {
            call.blame = self.identify(config, api, call.uri, headers);
            let methods = api.rules.methods_on(rest);
            return Err(
                if methods.is_empty() { Refusal::NoMatchingRule } else { Refusal::MethodNotMapped(methods) }.into()
            );
        }
        // A draft is routed only for its mocks: its other operations stay unknown.
        if matches!(api.lifecycle, Lifecycle::Draft) && !api.mocks.as_ref().is_some_and(|m| m.has(call.operation)) {
            return Err(Refusal::UnknownApi.into());
        }

        let caller = match authenticate(config, api_index, &api.auth, call.uri.query(), headers, now) {
            Ok(caller) => caller,
            Err(denied) => {
                call.blame = denied.identified.map(Blame::from);
                return Err(auth_refusal(denied.error).into());
            }
        };
        call.blame = Some(Blame { app: caller.app.id, prefix: caller.prefix });

        let limits = &caller.plan.limits;
        let mut checks = Checks::empty();
        limits.checks(caller.app.id, &touched, now, &mut checks);
        let checks = checks.as_slice();
        match self.limiter.check_and_add(checks, now).await {
            Outcome::Rejected { index, used } => {
                call.rate = checks.get(index).and_then(|check| RateLimit::of(limits, check, used));
                call.exceeded = checks.get(index).and_then(|check| limits.rules().get(check.limit as usize)).copied();
                return Err(Refusal::LimitExceeded.into());
            }
            Outcome::Admitted { tightest } => {
                call.rate = tightest.and_then(|t| RateLimit::of(limits, checks.get(t.index)?, t.used));
            }
        }
        Ok(Admitted { hash: caller.hash, credential: caller.credential, app: caller.app, touched })
    }

    /// The application of the request's key, for a request refused before authentication.
    fn identify(&self, config: &Config, api: &ApiEntry, uri: &Uri, headers: &HeaderMap) -> Option<Blame> {
        identify(config, &api.auth, uri.query(), headers).map(Blame::from)
    }

    /// `<base path>/_tollgate/…`: answered by the agent with the usual credential rules, never
    /// forwarded, counted or recorded.
    async fn gateway_endpoint(
        &self,
        config: &Config,
        call: &Call<'_>,
        api_index: u32,
        reserved: ReservedPath,
        headers: &HeaderMap,
    ) -> Response<Body> {
        if reserved == ReservedPath::Unknown {
            return self.refuse(call, Refusal::UnknownEndpoint);
        }
        let api = call.api;
        let caller = match authenticate(config, api_index, &api.auth, call.uri.query(), headers, call.received) {
            Ok(caller) => caller,
            Err(denied) => return self.refuse(call, auth_refusal(denied.error)),
        };
        if *call.method != Method::GET && *call.method != Method::HEAD {
            return self.refuse(call, Refusal::MethodNotAllowed);
        }
        let mut response = limits::report(&self.limiter, api, caller.plan, caller.app.id, call.received).await;
        self.decorate(api, &mut response);
        self.finish(
            Summary::answered(Some(api), Some(caller.app.id), limits::DECISION, &response).of(call),
            Some(limits::DECISION_INDEX),
            call.started,
        );
        response
    }

    /// Mock answer: an operation in mock mode answers from its examples instead of an
    /// upstream, with the headers, usage and records of a forwarded call.
    fn mock_answer(&self, call: &Call<'_>, admitted: &Admitted<'_>, headers: &HeaderMap) -> Option<Response<Body>> {
        let mut response = call.api.mocks.as_ref()?.answer(call.operation?, headers)?;
        let answered = self.clock.now();
        if let Some(rate) = &call.rate {
            rate.write(response.headers_mut(), answered, false);
        }
        self.decorate(call.api, &mut response);
        self.usage.last_used.record(&admitted.hash, admitted.credential, call.received);
        let bytes = body_bytes(&response);
        let id = request_id(call, response.status(), response.headers_mut());
        let answer = Answer { status: response.status(), bytes, request_id: id };
        self.logging(call, admitted, None, answer);
        Some(response)
    }

    /// Upstream peer: the caller's upstream group (see split.rs), then its next healthy
    /// target this build can reach.
    fn upstream_peer<'c>(&self, call: &mut Call<'c>, app: &AppEntry) -> Result<&'c Target, Refused> {
        let api = call.api;
        let pool = match &api.routing {
            None => &api.upstreams,
            Some(router) => {
                let group = router.pick(&app.id, app.plan);
                call.group = group.tag;
                &group.pool
            }
        };
        Ok(pool.pick().ok_or(Refusal::UpstreamUnavailable)?)
    }

    /// Upstream peer, upstream request filter, the exchange, then the response filter or
    /// the failure answer, and logging.
    async fn proxy_upstream(
        &self,
        call: &mut Call<'_>,
        admitted: Admitted<'_>,
        parts: Parts,
        body: Incoming,
        rest_offset: usize,
        peer: SocketAddr,
    ) -> Response<Body> {
        let api = call.api;
        let target = match self.upstream_peer(call, admitted.app) {
            Ok(target) => target,
            Err(Refused(refusal)) => return self.refuse(call, refusal),
        };
        let (body, watch) = ClientBody::watch(body);
        let forwarded = forward::Client { ip: peer.ip(), proto: &self.forwarded_proto };
        let mut request =
            match forward::upstream_request(parts, call.uri, body, target, rest_offset, &api.auth, forwarded) {
                Ok(request) => request,
                Err(err) => {
                    tracing::warn!(api = %api.slug, error = %err, "cannot build the upstream request");
                    return self.refuse(call, Refusal::UpstreamUnavailable);
                }
            };
        if let Some(trace) = &call.trace {
            trace.propagate(request.headers_mut());
        }
        // Sent upstream: the credential was used, whatever the upstream makes of it.
        self.usage.last_used.record(&admitted.hash, admitted.credential, call.received);
        let exchange = self.connections.send(&target.authority, target.is_tls(), request, self.upstream_timeout);
        let unanswered = Unanswered { proxy: self, call, admitted: &admitted };
        let response = match exchange.await {
            Ok(Ok(response)) => response,
            Err(_) => {
                unanswered.answered();
                return self.refuse(call, self.failure_answer(call, target, &watch, None));
            }
            Ok(Err(err)) => {
                unanswered.answered();
                return self.refuse(call, self.failure_answer(call, target, &watch, Some(err)));
            }
        };
        unanswered.answered();
        let status = response.status();
        // The client asked for no upgrade (those go to `proxy_upgrade`): a 101 would switch its
        // connection to a protocol nobody agreed on.
        if status == StatusCode::SWITCHING_PROTOCOLS {
            tracing::warn!(api = %api.slug, "the upstream answered 101 to a request that asked for no upgrade");
            return self.refuse(call, Refusal::UpstreamUnavailable);
        }
        if !is_valid_status(status) {
            return self.invalid_status(call, target, status);
        }
        // The direct exchange refuses these as it reads the head; hyper's client passes them.
        if matches!(response.body(), UpstreamBody::Pooled(_))
            && response.headers().contains_key(hyper::header::TRANSFER_ENCODING)
            && !forward::chunked_alone(response.headers())
        {
            tracing::warn!(api = %api.slug, "the upstream answered with a transfer coding other than chunked alone");
            return self.refuse(call, Refusal::UpstreamUnavailable);
        }
        if matches!(status.as_u16(), 502..=504) {
            target.failed();
        } else {
            target.succeeded();
        }
        let answered = self.clock.now();
        let bytes = body_bytes(&response);
        let mut response = response;
        let public_prefix = call.uri.path().get(..rest_offset).unwrap_or_default();
        forward::rewrite_location(response.headers_mut(), target, public_prefix);
        let mut response = self.response_filter(call, response, answered);
        let id = request_id(call, status, response.headers_mut());
        self.logging(call, &admitted, Some(target), Answer { status, bytes, request_id: id });
        response
    }

    /// Usage of a request the client gave up on while the upstream had it (nginx's 499).
    fn abandoned(&self, call: &Call<'_>, admitted: &Admitted<'_>) {
        let latency = call.started.elapsed();
        self.record_usage(call.api, call.group, admitted, call.received, CLIENT_CLOSED_REQUEST, latency);
        tracing::debug!(api = %call.api.slug, "the client closed the connection before the upstream answered");
    }

    /// An upstream status outside 100–599 (RFC 9110 §15 has no such class): not passed on,
    /// and not recorded as one, since no usage class or failed-call record can hold it.
    fn invalid_status(&self, call: &Call<'_>, target: &Target, status: StatusCode) -> Response<Body> {
        tracing::warn!(api = %call.api.slug, upstream = %target.url, status = status.as_u16(), "the upstream answered a status outside 100-599");
        target.failed();
        self.refuse(call, Refusal::UpstreamUnavailable)
    }

    /// Failure answer: why the exchange failed (`error`; `None`: it timed out), and whose
    /// fault it is. A client that stalls its body, or breaks it, is not the upstream's
    /// failure and does not count towards ejecting the target.
    fn failure_answer(
        &self,
        call: &Call<'_>,
        target: &Target,
        watch: &BodyWatch,
        error: Option<UpstreamError>,
    ) -> Refusal {
        match error {
            None if watch.waiting_for_client() => Refusal::BodyTimeout,
            None => {
                target.failed();
                Refusal::UpstreamTimeout
            }
            Some(UpstreamError::Exchange(_)) if watch.failed() => Refusal::InvalidBody,
            Some(UpstreamError::Exchange(_)) if watch.overridden() => Refusal::MethodOverride,
            // The upstream stopped waiting for a body the client stalled (its own read timeout
            // is shorter than ours): the client's failure, as when our timeout fires first.
            Some(UpstreamError::Exchange(_)) if watch.waiting_for_client() => Refusal::BodyTimeout,
            Some(UpstreamError::Connect) => {
                target.unreachable();
                tracing::debug!(api = %call.api.slug, upstream = %target.url, "cannot connect to the upstream");
                Refusal::UpstreamUnavailable
            }
            Some(UpstreamError::Local(err)) => {
                // The agent's shortage, not the upstream's: every target stays in rotation.
                if shortage_warning_due() {
                    tracing::warn!(api = %call.api.slug, upstream = %target.url, error = %err, "the agent cannot open a connection (raise ulimit -n, or lower TOLLGATE_AGENT_MAX_CONNECTIONS)");
                }
                Refusal::UpstreamUnavailable
            }
            Some(UpstreamError::Tls(err)) => {
                // Never retried without TLS or verification: the operator must see why.
                target.unreachable();
                if self.connections.tls().warn_now() {
                    tracing::warn!(api = %call.api.slug, upstream = %target.url, error = %err, "TLS handshake with the upstream failed");
                } else {
                    tracing::debug!(api = %call.api.slug, upstream = %target.url, error = %err, "TLS handshake with the upstream failed");
                }
                Refusal::UpstreamUnavailable
            }
            Some(UpstreamError::Exchange(err)) => {
                target.failed();
                tracing::debug!(api = %call.api.slug, upstream = %target.url, error = %err, "upstream request failed");
                Refusal::UpstreamUnavailable
            }
        }
    }

    /// Response filter: the upstream's answer without hop-by-hop headers, with the
    /// `RateLimit-*` headers and the API's own.
    fn response_filter(
        &self,
        call: &Call<'_>,
        response: Response<UpstreamBody>,
        answered: Timestamp,
    ) -> Response<Body> {
        let (mut parts, body) = response.into_parts();
        forward::strip_hop_by_hop(&mut parts.headers);
        if let Some(rate) = &call.rate {
            rate.write(&mut parts.headers, answered, false);
        }
        let mut response = Response::from_parts(parts, Either::Left(body));
        self.decorate(call.api, &mut response);
        response
    }

    /// Logging of a proxied (or mocked) request: usage, a failed-call record for an answer
    /// of 400 or more, metrics and the access log.
    fn logging(&self, call: &Call<'_>, admitted: &Admitted<'_>, target: Option<&Target>, answer: Answer) {
        let Answer { status, bytes, request_id } = answer;
        // No target: answered from the API's mocks.
        let mocked = target.is_none();
        let api = call.api;
        let latency = call.started.elapsed();
        // Filed under the minute the call arrived, as its limits were counted: a call that
        // arrives in a month's last seconds is that month's, however long its answer takes.
        self.record_usage(api, call.group, admitted, call.received, status, latency);
        if let (Some(blame), Some(id)) = (call.blame, request_id) {
            self.usage.failed_calls.record(&call.failure(blame, status.as_u16(), None, latency, id));
        }
        let summary = Summary {
            api: Some(api),
            app: Some(admitted.app.id),
            decision: if mocked { "mocked" } else { "proxied" },
            status,
            request: None,
            trace: None,
            refused: false,
            upstream: target.is_some().then_some(status.as_u16()),
            target: target.map(|t| &*t.url),
            bytes,
        };
        self.finish(summary.of(call), None, call.started);
    }

    /// The usage an admitted request adds, in the class of `status`, served by `call_group`,
    /// in the minute it was `received`.
    fn record_usage(
        &self,
        api: &ApiEntry,
        call_group: GroupTag,
        admitted: &Admitted<'_>,
        received: Timestamp,
        status: StatusCode,
        latency: Duration,
    ) {
        self.usage.record(
            admitted.app.id,
            call_group,
            admitted
                .touched
                .as_slice()
                .iter()
                .filter_map(|&(metric, amount)| Some((api.metrics.get(metric as usize)?.id, amount))),
            received,
            status.as_u16(),
            latency,
        );
    }

    /// Headers every response of the API carries.
    fn decorate(&self, api: &ApiEntry, response: &mut Response<Body>) {
        if let Lifecycle::Deprecated { sunset, since } = &api.lifecycle {
            let headers = response.headers_mut();
            headers.insert(&DEPRECATION, since.clone());
            if let Some(sunset) = sunset {
                headers.insert(&SUNSET, sunset.clone());
            }
        }
    }

    /// The agent's own answer to a routed request: with the API's headers, the `RateLimit-*`
    /// headers once limits were checked (and `Retry-After` on a 429), and, when the request
    /// is attributed to an application, its refused count and failed-call record.
    fn refuse(&self, call: &Call<'_>, refusal: Refusal) -> Response<Body> {
        let mut response = match (refusal, call.exceeded) {
            (Refusal::MissingCredentials(absent), _) => reply::missing_credentials(call.api, absent),
            (Refusal::MethodNotMapped(methods), _) => reply::method_not_mapped(call.api, call.method, methods),
            (Refusal::LimitExceeded, Some(limit)) => reply::limit_exceeded(call.api, limit),
            _ => refusal.response(),
        };
        self.decorate(call.api, &mut response);
        if let Some(rate) = &call.rate {
            rate.write(response.headers_mut(), self.clock.now(), refusal == Refusal::LimitExceeded);
        }
        let status = refusal.status();
        if let Some(blame) = call.blame {
            let latency = call.started.elapsed();
            self.usage.record_refused(blame.app, call.group, call.received, status.as_u16(), latency);
            if let Some(id) = request_id(call, status, response.headers_mut()) {
                self.usage.failed_calls.record(&call.failure(
                    blame,
                    status.as_u16(),
                    Some(refusal.code()),
                    latency,
                    id,
                ));
            }
        }
        let mut summary =
            Summary::answered(Some(call.api), call.blame.map(|blame| blame.app), refusal.code(), &response);
        summary.refused = true;
        self.finish(summary.of(call), Some(refusal.index()), call.started);
        response
    }

    /// The agent's own answer to a request no API was found for.
    fn refuse_unrouted(
        &self,
        refusal: Refusal,
        request: (&Method, &str),
        trace: Option<Trace>,
        started: Instant,
    ) -> Response<Body> {
        let response = refusal.response();
        let mut summary = Summary::answered(None, None, refusal.code(), &response);
        summary.request = Some(request);
        summary.trace = trace;
        summary.refused = true;
        self.finish(summary, Some(refusal.index()), started);
        response
    }

    /// The request's trace when tracing is on; off, the client's trace id, read only when the
    /// JSON access log is on. Neither: no work at all.
    fn trace(&self, headers: &HeaderMap) -> Option<Trace> {
        match &self.tracer {
            Some(tracer) => Some(tracer.start(headers)),
            None => self.access_json.as_ref().and_then(|_| Trace::of_client(headers)),
        }
    }

    /// Metrics and the access log line of a request; `answered` is the decision's index if
    /// the agent answered itself (a [`Refusal`], the limits report or a CORS preflight),
    /// `None` if proxied.
    fn finish(&self, outcome: Summary<'_>, answered: Option<usize>, started: Instant) {
        let elapsed = started.elapsed();
        self.metrics.request_duration.record(elapsed.as_secs_f64());
        let counters = outcome.api.map_or(self.metrics.unrouted(), |api| &api.requests);
        match answered {
            Some(index) => counters.answered(&self.metrics, index, outcome.decision, outcome.status.as_u16()),
            None => counters.proxied(&self.metrics, outcome.status.as_u16()),
        }
        if let Some(log) = &self.access_json {
            log.write(&Entry {
                timestamp: self.clock.now(),
                method: outcome.request.map(|(method, _)| method.as_str()),
                path: outcome.request.map(|(_, path)| path),
                status: outcome.status.as_u16(),
                duration_us: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
                api_id: outcome.api.map(|api| api.id),
                application_id: outcome.app,
                decision: if outcome.refused { Verdict::Refused } else { Verdict::Admitted },
                code: answered.map(|_| outcome.decision),
                upstream_status: outcome.upstream,
                bytes: outcome.bytes,
                trace_id: outcome.trace.map(|trace| trace.hex_id()),
            });
        }
        if let Some(tracer) = &self.tracer
            && let Some(trace) = &outcome.trace
        {
            tracer.record(
                trace,
                &Finished {
                    api: outcome.api,
                    app: outcome.app,
                    request: outcome.request,
                    status: outcome.status,
                    refusal: outcome.refused.then_some(outcome.decision),
                    upstream: outcome.target.zip(outcome.upstream),
                    elapsed,
                },
            );
        }
        if self.access_line {
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

/// Routing, shared by the proxy and the decision endpoint: the path policy, then the API at
/// the request's host (read only once the path passed) and path; drafts are not served.
fn find_api<'c, 'h>(
    config: &'c Config,
    path: &str,
    host: impl FnOnce() -> Result<Option<RequestHost<'h>>, InvalidHost>,
) -> Result<(Route, &'c ApiEntry), Refusal> {
    path::check(path).map_err(Refusal::InvalidPath)?;
    let host = host().map_err(|InvalidHost| Refusal::InvalidHost)?;
    let host_name = host.map(RequestHost::name);
    let route = config.catalog.routes.find(host_name.as_deref(), path).ok_or(Refusal::UnknownApi)?;
    let api = config.catalog.apis.get(route.api as usize).ok_or(Refusal::UnknownApi)?;
    if matches!(api.lifecycle, Lifecycle::Draft) && api.mocks.is_none() {
        return Err(Refusal::UnknownApi);
    }
    Ok((route, api))
}

/// `get` or `Post`: a standard method in another case. Rules match methods case-sensitively
/// (RFC 9110 §9.1), so only an `ANY` rule would take it, while ASP.NET and others run it as the
/// standard method, past that method's own rules and limits. nginx refuses such methods too.
fn is_case_variant(method: &Method) -> bool {
    const STANDARD: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];
    let name = method.as_str();
    // The standard methods are capitals: most requests stop at the first test.
    name.bytes().any(|b| b.is_ascii_lowercase()) && STANDARD.iter().any(|standard| standard.eq_ignore_ascii_case(name))
}

/// Whether `status` is one of HTTP's classes (RFC 9110 §15: 1xx to 5xx); the `http` type
/// takes up to 999.
fn is_valid_status(status: StatusCode) -> bool {
    status.as_u16() < 600
}

fn auth_refusal(error: AuthError) -> Refusal {
    match error {
        AuthError::Ambiguous => Refusal::AmbiguousCredentials,
        AuthError::Missing(absent) => Refusal::MissingCredentials(absent),
        AuthError::Invalid => Refusal::InvalidCredentials,
        AuthError::NotLive { suspended } => Refusal::ApplicationNotLive { suspended },
    }
}

/// Whether the agent's failure to open connections deserves a `warn` line now: one a
/// minute, however many requests meet it.
fn shortage_warning_due() -> bool {
    use std::sync::atomic::{AtomicU64, Ordering};
    static WARNED_AT: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let last = WARNED_AT.load(Ordering::Relaxed);
    now.saturating_sub(last) >= 60
        && WARNED_AT.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output_of<A, F>(_: impl FnOnce(A) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// hyper moves each request's future whole into its dispatcher, so its size is paid per
    /// request: rare paths (a new upstream connection, Redis, the gateway's own endpoints,
    /// upgrades) are boxed rather than carried inline. It was 7,776 bytes before they were.
    #[test]
    fn the_request_future_stays_small() {
        let handle = output_of(|(proxy, request, peer): (Arc<Proxy>, Request<Incoming>, SocketAddr)| {
            proxy.handle(request, peer)
        });
        let send = output_of(
            |(proxy, authority, request): (
                &'static Proxy,
                &'static hyper::http::uri::Authority,
                Request<ClientBody>,
            )| { proxy.connections.send(authority, false, request, Duration::from_secs(1)) },
        );
        // About 4,220 with hyper's client for every request; the direct exchange of requests
        // without a body (`direct.rs`) added about 450, for 3.6 % less CPU a request (BENCHMARKS).
        assert!(handle <= 4736, "{handle} bytes");
        assert!(send <= 1024, "{send} bytes");
    }
}
