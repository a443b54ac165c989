//! Answers the agent gives itself, as `{"error": "<code>", "message": "..."}`.

use std::borrow::Cow;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::{Method, Response, StatusCode};
use tollgate_protocol::Period;

use super::connections::UpstreamBody;
use super::original::BadOriginal;
use super::path::InvalidPath;
use crate::config::ApiEntry;
use crate::enforce::key_location::Absent;
use crate::enforce::limits::LimitRule;
use crate::enforce::mapping::Methods;

/// Response bodies: streamed from the upstream, or the agent's own.
pub(crate) type Body = Either<UpstreamBody, Full<Bytes>>;

/// Why the agent answered a request itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    NotReady,
    InvalidPath(InvalidPath),
    InvalidHost,
    UnknownApi,
    ApiRetired,
    NoMatchingRule,
    AmbiguousCredentials,
    /// What was left out; the API's own answer says where its credentials go.
    MissingCredentials(Absent),
    InvalidCredentials,
    /// Pending approval, or suspended: one code, a message that says which.
    ApplicationNotLive {
        suspended: bool,
    },
    LimitExceeded,
    InvalidBody,
    BodyTimeout,
    UpstreamUnavailable,
    UpstreamTimeout,
    /// A path under the reserved `_tollgate` segment that names no endpoint.
    UnknownEndpoint,
    /// A method other than GET or HEAD on a gateway endpoint.
    MethodNotAllowed,
    /// No rule of the API matches the request's method, but rules of these methods match its
    /// path: `405` with `Allow` rather than `404 no_matching_rule`.
    MethodNotMapped(Methods),
    /// A decision request that does not say which request to decide.
    InvalidDecision(BadOriginal),
    /// A method-override header: the upstream might run another method than the rules allowed.
    MethodOverride,
    /// `CONNECT`: the agent forwards requests, not tunnels, and an upstream that took one
    /// would read the next client's request inside it.
    Tunnel,
    /// A request to switch protocols that carries a body: a handshake has none, and an
    /// upstream that declined the switch might read the body as a request of its own (with
    /// `Connection: upgrade`, the agent cannot ask it to close after the exchange, as it does
    /// for other bodies on a GET).
    UpgradeWithBody,
    /// A standard method spelt in another case (`get`): methods are case-sensitive, so no
    /// `GET` rule matches it, but some servers run it as `GET`.
    MethodCase,
}

impl Refusal {
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::InvalidPath(_)
            | Refusal::InvalidHost
            | Refusal::AmbiguousCredentials
            | Refusal::MethodOverride
            | Refusal::UpgradeWithBody
            | Refusal::MethodCase
            | Refusal::InvalidBody
            | Refusal::InvalidDecision(_) => StatusCode::BAD_REQUEST,
            Refusal::UnknownApi | Refusal::NoMatchingRule | Refusal::UnknownEndpoint => StatusCode::NOT_FOUND,
            Refusal::MethodNotAllowed | Refusal::MethodNotMapped(_) => StatusCode::METHOD_NOT_ALLOWED,
            Refusal::ApiRetired => StatusCode::GONE,
            Refusal::MissingCredentials(_) => StatusCode::UNAUTHORIZED,
            Refusal::InvalidCredentials | Refusal::ApplicationNotLive { .. } => StatusCode::FORBIDDEN,
            Refusal::LimitExceeded => StatusCode::TOO_MANY_REQUESTS,
            Refusal::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Refusal::UpstreamUnavailable => StatusCode::BAD_GATEWAY,
            Refusal::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Refusal::Tunnel => StatusCode::NOT_IMPLEMENTED,
        }
    }

    /// The `error` code, also the `decision` label of `tollgate_agent_requests_total`.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::NotReady => "not_ready",
            Refusal::InvalidPath(_) => "invalid_path",
            Refusal::InvalidHost => "invalid_host",
            Refusal::UnknownApi => "unknown_api",
            Refusal::ApiRetired => "api_retired",
            Refusal::NoMatchingRule => "no_matching_rule",
            Refusal::AmbiguousCredentials => "ambiguous_credentials",
            Refusal::MissingCredentials(_) => "missing_credentials",
            Refusal::InvalidCredentials => "invalid_credentials",
            Refusal::ApplicationNotLive { .. } => "application_not_live",
            Refusal::LimitExceeded => "limit_exceeded",
            Refusal::InvalidBody => "invalid_body",
            Refusal::BodyTimeout => "request_body_timeout",
            Refusal::UpstreamUnavailable => "upstream_unavailable",
            Refusal::UpstreamTimeout => "upstream_timeout",
            Refusal::UnknownEndpoint => "unknown_endpoint",
            Refusal::MethodNotAllowed | Refusal::MethodNotMapped(_) => "method_not_allowed",
            Refusal::InvalidDecision(_) => "invalid_decision_request",
            Refusal::MethodOverride => "method_override",
            Refusal::Tunnel => "tunnel_not_supported",
            Refusal::UpgradeWithBody => "upgrade_with_body",
            Refusal::MethodCase => "invalid_method",
        }
    }

    /// The whole JSON body, written out so answering costs no formatting (but for a refused
    /// path, whose message names the segment).
    pub(crate) fn body(self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            Refusal::NotReady => {
                r#"{"error":"not_ready","message":"The gateway has not loaded its configuration yet."}"#
            }
            Refusal::InvalidPath(invalid) => {
                return Cow::Owned(serde_json::json!({"error": self.code(), "message": invalid.message()}).to_string());
            }
            Refusal::InvalidDecision(bad) => {
                return Cow::Owned(serde_json::json!({"error": self.code(), "message": bad.message()}).to_string());
            }
            Refusal::InvalidHost => {
                r#"{"error":"invalid_host","message":"The request needs exactly one Host header with a valid host name or address and optional port."}"#
            }
            Refusal::UnknownApi => r#"{"error":"unknown_api","message":"No API is published at this host and path."}"#,
            Refusal::ApiRetired => r#"{"error":"api_retired","message":"This API has been retired."}"#,
            Refusal::NoMatchingRule => {
                r#"{"error":"no_matching_rule","message":"No mapping rule of this API matches the request method and path."}"#
            }
            Refusal::AmbiguousCredentials => {
                r#"{"error":"ambiguous_credentials","message":"The request carries two different values for one credential (in the query, in headers, or under variant spellings of its name); send it once."}"#
            }
            Refusal::MissingCredentials(_) => {
                r#"{"error":"missing_credentials","message":"This API requires credentials; none were found in the request."}"#
            }
            Refusal::InvalidCredentials => {
                r#"{"error":"invalid_credentials","message":"The credentials are unknown, expired or revoked, or not valid for this API."}"#
            }
            Refusal::ApplicationNotLive { suspended: false } => {
                r#"{"error":"application_not_live","message":"The application is waiting for the API provider's approval; its keys work once it is approved."}"#
            }
            Refusal::ApplicationNotLive { suspended: true } => {
                r#"{"error":"application_not_live","message":"The application is suspended by the API provider; its keys are refused until it is resumed."}"#
            }
            Refusal::LimitExceeded => {
                r#"{"error":"limit_exceeded","message":"A usage limit of the application's plan has been reached."}"#
            }
            Refusal::InvalidBody => {
                r#"{"error":"invalid_body","message":"The request body could not be read: malformed chunked encoding, or the connection ended before the body did."}"#
            }
            Refusal::BodyTimeout => {
                r#"{"error":"request_body_timeout","message":"The request body did not arrive in time."}"#
            }
            Refusal::UpstreamUnavailable => {
                r#"{"error":"upstream_unavailable","message":"The API's upstream service could not be reached, or sent an answer the gateway cannot pass on (malformed, or with more than 100 header fields)."}"#
            }
            Refusal::UpstreamTimeout => {
                r#"{"error":"upstream_timeout","message":"The API's upstream service did not answer in time."}"#
            }
            Refusal::UnknownEndpoint => {
                r#"{"error":"unknown_endpoint","message":"Paths under _tollgate/ below an API's base path belong to the gateway; the only one is _tollgate/limits."}"#
            }
            Refusal::MethodNotAllowed => {
                r#"{"error":"method_not_allowed","message":"This gateway endpoint answers GET and HEAD only."}"#
            }
            Refusal::MethodNotMapped(_) => {
                r#"{"error":"method_not_allowed","message":"This API answers this path with other methods only (see Allow)."}"#
            }
            Refusal::MethodOverride => {
                r#"{"error":"method_override","message":"The gateway does not pass on method overrides (the X-HTTP-Method-Override, X-HTTP-Method and X-Method-Override headers, or a _method query parameter or body field on a POST); send the request with the method itself."}"#
            }
            Refusal::Tunnel => {
                r#"{"error":"tunnel_not_supported","message":"The gateway forwards requests to the API, not tunnels: CONNECT is not supported."}"#
            }
            Refusal::UpgradeWithBody => {
                r#"{"error":"upgrade_with_body","message":"A request to switch protocols (Upgrade) carries no body; send the handshake without one."}"#
            }
            Refusal::MethodCase => {
                r#"{"error":"invalid_method","message":"The method is a standard method spelt in another case (such as get for GET); methods are case-sensitive: send it in capitals."}"#
            }
        })
    }

    /// Dense index for metric handle caches (below [`crate::telemetry::ANSWERED_DECISIONS`]).
    pub fn index(self) -> usize {
        match self {
            Refusal::NotReady => 0,
            Refusal::InvalidPath(_) => 1,
            Refusal::InvalidHost => 2,
            Refusal::UnknownApi => 3,
            Refusal::ApiRetired => 4,
            Refusal::NoMatchingRule => 5,
            Refusal::AmbiguousCredentials => 6,
            Refusal::MissingCredentials(_) => 7,
            Refusal::InvalidCredentials => 8,
            Refusal::ApplicationNotLive { .. } => 9,
            Refusal::LimitExceeded => 10,
            Refusal::InvalidBody => 11,
            Refusal::BodyTimeout => 12,
            Refusal::UpstreamUnavailable => 13,
            Refusal::UpstreamTimeout => 14,
            Refusal::UnknownEndpoint => 15,
            Refusal::MethodNotAllowed => 16,
            // 17 is the limits report (`limits::DECISION_INDEX`), 19 an allowed decision.
            Refusal::InvalidDecision(_) => 18,
            Refusal::MethodOverride => 20,
            Refusal::MethodNotMapped(_) => 21,
            Refusal::Tunnel => 22,
            Refusal::UpgradeWithBody => 23,
            Refusal::MethodCase => 24,
        }
    }

    pub fn response(self) -> Response<Body> {
        let body = match self.body() {
            Cow::Borrowed(text) => Bytes::from_static(text.as_bytes()),
            Cow::Owned(text) => Bytes::from(text),
        };
        let mut response = json_answer(self.status(), body);
        match self {
            Refusal::MethodNotAllowed => {
                response.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            }
            Refusal::MethodNotMapped(methods) => allow(&mut response, methods),
            _ => {}
        }
        response
    }
}

/// The body of an answer written for its request (not one of [`Refusal::body`]'s), kept for
/// the decision endpoint's copy in a header.
#[derive(Clone)]
pub(crate) struct OwnBody(pub Bytes);

/// A JSON answer of the agent's own.
fn json_answer(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Either::Right(Full::new(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A JSON refusal answer with `message` for its request.
fn written(refusal: Refusal, message: String) -> Response<Body> {
    let body = Bytes::from(serde_json::json!({"error": refusal.code(), "message": message}).to_string());
    let mut response = json_answer(refusal.status(), body.clone());
    response.extensions_mut().insert(OwnBody(body));
    response
}

/// The 401 of a request to `api` without (all of) its credentials: which are missing and
/// where they go, and the challenge RFC 9110 asks a 401 to carry (`Key`, as API gateways
/// name an API key scheme, in a realm named after the API).
pub(crate) fn missing_credentials(api: &ApiEntry, absent: Absent) -> Response<Body> {
    let mut response = written(Refusal::MissingCredentials(absent), api.auth.missing_message(absent));
    let headers = response.headers_mut();
    // A slug is lower-case letters, digits and dashes: nothing to escape in a quoted string.
    if let Ok(challenge) = HeaderValue::from_str(&format!("Key realm=\"{}\"", api.slug)) {
        headers.insert(WWW_AUTHENTICATE, challenge);
    }
    response
}

/// The 405 of a request whose method no rule of `api` maps on a path that rules of other
/// `methods` do: which methods the path has, so a client sees its mistake rather than a 404
/// that says the path is unknown.
pub(crate) fn method_not_mapped(api: &ApiEntry, method: &Method, methods: Methods) -> Response<Body> {
    let list = methods.list();
    let message = format!("The API `{}` answers {list} on this path, not {method}.", api.slug);
    let mut response = written(Refusal::MethodNotMapped(methods), message);
    allow(&mut response, methods);
    response
}

fn allow(response: &mut Response<Body>, methods: Methods) {
    // Method names are tokens: always a valid header value.
    if let Ok(list) = HeaderValue::from_str(&methods.list()) {
        response.headers_mut().insert(ALLOW, list);
    }
}

/// The 429 of a request `limit` refused: which limit, so a developer knows what to wait for
/// or to upgrade; a limit of 0 is a metric the plan does not include, which no wait lifts.
pub(crate) fn limit_exceeded(api: &ApiEntry, limit: LimitRule) -> Response<Body> {
    let metric = api.metrics.get(limit.metric as usize).map_or("this metric", |metric| &*metric.system_name);
    let message = match (limit.max, limit.period) {
        (0, _) => {
            format!("The application's plan does not include `{metric}` (its limit is 0); a plan that does is needed.")
        }
        (max, Period::Eternity) => {
            format!("The application's plan allows {max} `{metric}` in all, and they are used up.")
        }
        (max, period) => format!(
            "The application's plan allows {max} `{metric}` per {period}; that limit is reached until the {period} ends (see Retry-After)."
        ),
    };
    written(Refusal::LimitExceeded, message)
}
