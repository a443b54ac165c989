//! The decision endpoint (`TOLLGATE_AGENT_AUTHZ_LISTEN`): another proxy carries the traffic
//! (nginx `auth_request`, Traefik `forwardAuth`, APISIX `forward-auth`, Envoy's HTTP
//! `ext_authz`) and asks the agent whether a request may pass.
//!
//! The answer runs the proxy's own routing ([`find_api`]), request filter ([`Proxy::admit`])
//! and refusals ([`Proxy::refuse`]): the same keys, rules, limits, lifecycle, status codes,
//! JSON bodies and headers. Only forwarding is left to the asking proxy. An admitted
//! request's usage is counted here, at the decision, in the 2xx class: the upstream's answer
//! never reaches the agent.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tollgate_protocol::gateway::reserved_path;
use uuid::Uuid;

use super::original::{BadOriginal, Original, Shape};
use super::reply::{Body, OwnBody, Refusal};
use super::{Admitted, Call, Proxy, Refused, Summary, find_api, is_case_variant};
use crate::config::{Config, Lifecycle};
use crate::enforce::key_location::KeySource;
use crate::report::X_TOLLGATE_DECISION;
use crate::trace::Trace;
use crate::usage::groups::GroupTag;

/// The admitted request's application (UUID).
pub(crate) static X_TOLLGATE_APPLICATION: HeaderName = HeaderName::from_static("x-tollgate-application");
/// Its plan (UUID).
pub(crate) static X_TOLLGATE_PLAN: HeaderName = HeaderName::from_static("x-tollgate-plan");
/// The API it was routed to (slug).
pub(crate) static X_TOLLGATE_API: HeaderName = HeaderName::from_static("x-tollgate-api");
/// The upstream group chosen for the call, for an API with routing (per-plan or
/// per-application groups, weighted splits), so the asking proxy can route by it.
pub(crate) static X_TOLLGATE_UPSTREAM_GROUP: HeaderName = HeaderName::from_static("x-tollgate-upstream-group");
/// The refusal's JSON body, repeated as a header for nginx, which drops an `auth_request`
/// subrequest's body but can copy its headers (`auth_request_set`).
pub(crate) static X_TOLLGATE_REFUSAL: HeaderName = HeaderName::from_static("x-tollgate-refusal");
/// The credential headers Envoy removes before forwarding an allowed request.
pub(crate) static X_ENVOY_AUTH_HEADERS_TO_REMOVE: HeaderName =
    HeaderName::from_static("x-envoy-auth-headers-to-remove");

/// The `decision` label and metric index of an allowed decision.
pub(crate) const ALLOWED: &str = "allowed";
pub(crate) const ALLOWED_INDEX: usize = 19;
const _: () = assert!(
    ALLOWED_INDEX < crate::telemetry::ANSWERED_DECISIONS
        && ALLOWED_INDEX != super::limits::DECISION_INDEX
        && ALLOWED_INDEX != super::cors::PREFLIGHT_INDEX
);

impl Proxy {
    /// Decides the request a decision request names: 200 with the caller's headers, or the
    /// refusal the proxy would have answered. Owns its `Proxy`, as [`Proxy::handle`] does.
    pub async fn decide(self: Arc<Self>, request: Request<Incoming>) -> Response<Body> {
        let (parts, _body) = request.into_parts();
        let shape = Shape::of(&parts.headers);
        let (mut response, refusal) = self.decision(&parts).await;
        if shape == Shape::AuthRequest
            && let Some(refusal) = refusal
        {
            // The answer's own body when it was written for the request (which limit, where
            // the key goes), else the refusal's.
            let body = match response.extensions().get::<OwnBody>() {
                Some(OwnBody(own)) => HeaderValue::from_maybe_shared(own.clone()),
                None => HeaderValue::from_str(&refusal.body()),
            };
            if let Ok(body) = body {
                response.headers_mut().insert(&X_TOLLGATE_REFUSAL, body);
            }
        }
        response
    }

    /// The answer, and the refusal it carries (if any).
    async fn decision(&self, parts: &hyper::http::request::Parts) -> (Response<Body>, Option<Refusal>) {
        let own = (&parts.method, parts.uri.path());
        let original = || Original::of(parts, self.authz_prefix.as_ref().map(|p| p.as_str()));
        let decided = self.decide_original(own, &parts.headers, original, false).await;
        (decided.response, decided.refusal)
    }

    /// Decides the request `original` reads (after the config is known to be there), for
    /// every listener alike: `own` is the asking request's method and path, for the records of
    /// a request that names no API; `credentials` are the original request's headers. With
    /// `query_credentials`, an allowed decision also names the query parameters that carried
    /// the key (for Envoy's gRPC `query_parameters_to_remove`).
    pub(super) async fn decide_original<'p>(
        &self,
        own: (&Method, &str),
        credentials: &HeaderMap,
        original: impl FnOnce() -> Result<Original<'p>, BadOriginal>,
        query_credentials: bool,
    ) -> Decided {
        let started = std::time::Instant::now();
        let trace = self.trace(credentials).map(Trace::in_decision);
        let refused = |response, refusal| Decided { response, refusal: Some(refusal), query_credentials: Vec::new() };
        let Some(config) = self.live.load_full() else {
            return refused(self.refuse_unrouted(Refusal::NotReady, own, trace, started), Refusal::NotReady);
        };
        let now = self.clock.now();
        let original = match original() {
            Ok(original) => original,
            Err(bad) => {
                let refusal = Refusal::InvalidDecision(bad);
                return refused(self.refuse_unrouted(refusal, own, trace, started), refusal);
            }
        };
        // The method checks of the proxy's own pipeline: Go's `net/http` (Traefik) forwards
        // `get` as it came, and an upstream may run it as `GET` past the `GET` rules.
        let bad_method = if original.method == Method::CONNECT {
            Some(Refusal::Tunnel)
        } else {
            is_case_variant(&original.method).then_some(Refusal::MethodCase)
        };
        if let Some(refusal) = bad_method {
            let request = (&original.method, original.uri.path());
            return refused(self.refuse_unrouted(refusal, request, trace, started), refusal);
        }
        // A draft is answered from its mocks only, and this listener does not mock: the asking
        // proxy would forward an allowed call to an upstream the draft may not have.
        let found = find_api(&config, original.uri.path(), || original.host()).and_then(|(route, api)| {
            if matches!(api.lifecycle, Lifecycle::Draft) { Err(Refusal::UnknownApi) } else { Ok((route, api)) }
        });
        let (route, api) = match found {
            Ok(found) => found,
            Err(refusal) => {
                let request = (&original.method, original.uri.path());
                return refused(self.refuse_unrouted(refusal, request, trace, started), refusal);
            }
        };
        let mut call = Call {
            started,
            received: now,
            method: &original.method,
            uri: &original.uri,
            api,
            operation: None,
            blame: None,
            rate: None,
            exceeded: None,
            trace,
            group: GroupTag::NONE,
        };
        // `_tollgate/…` is answered by the agent in proxy mode only; here it is a path like
        // any other, left to the API's mapping rules.
        let rest = original.uri.path().get(route.rest_offset..).unwrap_or("");
        let reserved = reserved_path(rest).is_some();
        match self.admit(&config, &mut call, route.api, rest, reserved, credentials).await {
            Ok(admitted) => {
                let query = if query_credentials { credential_params(api, original.uri.query()) } else { Vec::new() };
                Decided {
                    response: self.allow(&config, &call, &admitted, credentials),
                    refusal: None,
                    query_credentials: query,
                }
            }
            Err(Refused(refusal)) => refused(self.refuse(&call, refusal), refusal),
        }
    }

    /// The allowed decision: the key's latest use is recorded now, and the request's usage too
    /// unless it waits for the proxy's report ([`crate::report`]); the answer names the caller
    /// and the credential headers to drop.
    fn allow(&self, config: &Config, call: &Call<'_>, admitted: &Admitted<'_>, headers: &HeaderMap) -> Response<Body> {
        let api = call.api;
        self.usage.last_used.record(&admitted.hash, admitted.credential, call.received);
        let latency = call.started.elapsed();
        // The group the proxy would have forwarded to: override, plan, else the weighted draw.
        let group = api.routing.as_ref().map(|router| router.pick(&admitted.app.id, admitted.app.plan));
        let tag = group.map_or(GroupTag::NONE, |group| group.tag);
        let held = self.reports.as_ref().and_then(|pending| {
            let metrics = admitted.touched.as_slice().iter();
            let metrics = metrics.filter_map(|&(metric, amount)| Some((api.metrics.get(metric as usize)?.id, amount)));
            pending.hold(admitted.app.id, tag, metrics, call.received, latency)
        });
        if self.reports.is_none() {
            self.record_usage(api, tag, admitted, call.received, StatusCode::OK, latency);
        }

        let mut response = Response::new(Either::Right(Full::new(Bytes::new())));
        let out = response.headers_mut();
        if let Some(id) = held {
            // The usage waits for the proxy's report of this call's response code.
            out.insert(&X_TOLLGATE_DECISION, id.header_value());
        }
        out.insert(&X_TOLLGATE_APPLICATION, uuid_value(admitted.app.id));
        let plan = config.catalog.source_plans.get(admitted.app.plan as usize).and_then(Option::as_ref);
        if let Some(plan) = plan {
            out.insert(&X_TOLLGATE_PLAN, uuid_value(plan.id));
        }
        if let Ok(slug) = HeaderValue::from_str(&api.slug) {
            out.insert(&X_TOLLGATE_API, slug);
        }
        if let Some(group) = group {
            out.insert(&X_TOLLGATE_UPSTREAM_GROUP, group.name.clone());
        }
        if let Some(names) = credential_headers(api, headers) {
            out.insert(&X_ENVOY_AUTH_HEADERS_TO_REMOVE, names);
        }
        if let Some(rate) = &call.rate {
            rate.write(out, self.clock.now(), false);
        }
        self.decorate(api, &mut response);
        self.finish(
            Summary::answered(Some(api), Some(admitted.app.id), ALLOWED, &response).of(call),
            Some(ALLOWED_INDEX),
            call.started,
        );
        response
    }
}

/// A decision: the HTTP answer (allowed: 200 with the caller's headers; else the refusal's),
/// the refusal, and the query parameters that carried the key when asked for.
pub(super) struct Decided {
    pub response: Response<Body>,
    pub refusal: Option<Refusal>,
    pub query_credentials: Vec<String>,
}

fn uuid_value(id: Uuid) -> HeaderValue {
    let mut buffer = Uuid::encode_buffer();
    HeaderValue::from_str(id.hyphenated().encode_lower(&mut buffer)).unwrap_or(HeaderValue::from_static(""))
}

/// The names of the query parameters that carry the API's credentials, in any spelling, each
/// once, as Envoy splits a query (at `&` only). A key after a `;` (`a=1;user_key=k`, read as
/// its own parameter by some upstreams) names the whole `&` pair it is in, `a`: Envoy cannot
/// remove part of one.
fn credential_params(api: &crate::config::ApiEntry, query: Option<&str>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        let name = pair.split_once('=').map_or(pair, |(name, _)| name);
        let carries = pair.split(';').any(|piece| {
            let piece = piece.split_once('=').map_or(piece, |(name, _)| name);
            !piece.is_empty() && api.auth.is_credential_param(piece.as_bytes())
        });
        if carries && !name.is_empty() && !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    }
    names
}

/// The API's credential headers, and every other spelling of them the request carries,
/// comma-separated; `None` for an API that reads its keys from the query only.
fn credential_headers(api: &crate::config::ApiEntry, headers: &HeaderMap) -> Option<HeaderValue> {
    let mut names: Vec<&str> = api
        .auth
        .sources()
        .filter_map(|source| match source {
            KeySource::Header(name) => Some(name.as_str()),
            KeySource::Query(_) => None,
        })
        .collect();
    for name in headers.keys() {
        if api.auth.is_credential_header(name) && !names.contains(&name.as_str()) {
            names.push(name.as_str());
        }
    }
    if names.is_empty() {
        return None;
    }
    HeaderValue::from_str(&names.join(",")).ok()
}
