//! Envoy's gRPC `ext_authz` (`envoy.service.auth.v3.Authorization/Check`) on the gRPC decision
//! listener (`TOLLGATE_AGENT_AUTHZ_GRPC_LISTEN`).
//!
//! A `CheckRequest` names the original request (`attributes.request.http`: method, path with
//! query, host, lower-cased headers); the agent decides it with the HTTP decision endpoint's own
//! code ([`Proxy::decide_original`]) and translates that answer:
//!
//! * allowed: `OkHttpResponse` with the caller's headers set on the upstream request (a client's
//!   own values overwritten), the credential headers and query parameters removed, and the
//!   `RateLimit-*` headers added to the client's response;
//! * refused: `DeniedHttpResponse` with the agent's status, JSON body and headers;
//! * no config yet: the RPC fails with `UNAVAILABLE`, so that Envoy's failure policy
//!   (`failure_mode_allow`, `status_on_error`) applies, as it does to the HTTP service's 503.

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{HeaderValue as EnvoyHeader, HeaderValueOption};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest;
use envoy_types::pb::envoy::service::auth::v3::authorization_server::Authorization;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::rpc;
use hyper::Method;
use hyper::header::{CONTENT_LENGTH, HOST, HeaderMap, HeaderName, HeaderValue};
use tonic::{Code, Status};

use super::Proxy;
use super::decision::{
    Decided, X_ENVOY_AUTH_HEADERS_TO_REMOVE, X_TOLLGATE_API, X_TOLLGATE_APPLICATION, X_TOLLGATE_PLAN,
    X_TOLLGATE_UPSTREAM_GROUP,
};
use super::original::Original;
use super::reply::{OwnBody, Refusal};
use crate::report::X_TOLLGATE_DECISION;

/// The RPC's own path, recorded for a check that names no API.
const CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";

/// The `Authorization` service over a decider of its own.
pub(crate) struct CheckService {
    pub proxy: Arc<Proxy>,
}

#[tonic::async_trait]
impl Authorization for CheckService {
    async fn check(&self, request: tonic::Request<CheckRequest>) -> Result<tonic::Response<CheckResponse>, Status> {
        let check = request.into_inner();
        self.proxy.check(&check).await.map(tonic::Response::new)
    }
}

impl Proxy {
    /// Decides the request a `CheckRequest` names.
    pub(crate) async fn check(&self, check: &CheckRequest) -> Result<CheckResponse, Status> {
        let empty = HttpRequest::default();
        let http = check
            .attributes
            .as_ref()
            .and_then(|attributes| attributes.request.as_ref())
            .and_then(|request| request.http.as_ref())
            .unwrap_or(&empty);
        let headers = original_headers(http);
        let post = Method::POST;
        let host_usable = http.host.is_empty() || HeaderValue::from_str(&http.host).is_ok();
        let original = || Original::of_check(&http.method, &http.path, &headers, host_usable);
        let decided = self.decide_original((&post, CHECK_PATH), &headers, original, true).await;
        check_response(decided)
    }
}

/// The original request's headers: the raw list when Envoy sends one (`encode_raw_headers`),
/// else the map; pseudo-headers left out, and `Host` from the request's authority. A header
/// that is not valid HTTP is left out.
fn original_headers(http: &HttpRequest) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let mut add = |name: &str, value: &[u8]| {
        if name.starts_with(':') || name.eq_ignore_ascii_case("host") {
            return;
        }
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(value)) {
            headers.append(name, value);
        }
    };
    match http.header_map.as_ref().filter(|raw| !raw.headers.is_empty()) {
        Some(raw) => {
            for header in &raw.headers {
                let value = if header.raw_value.is_empty() { header.value.as_bytes() } else { &header.raw_value };
                add(&header.key, value);
            }
        }
        None => {
            for (name, value) in &http.headers {
                add(name, value.as_bytes());
            }
        }
    }
    if let Ok(host) = HeaderValue::from_str(&http.host)
        && !http.host.is_empty()
    {
        headers.insert(HOST, host);
    }
    headers
}

/// The HTTP decision as Envoy's `CheckResponse`.
fn check_response(decided: Decided) -> Result<CheckResponse, Status> {
    let Decided { response, refusal, query_credentials } = decided;
    let refusal = match refusal {
        None => return Ok(allowed(response.headers(), query_credentials)),
        Some(Refusal::NotReady) => {
            return Err(Status::unavailable("not_ready: the agent has no config yet"));
        }
        Some(refusal) => refusal,
    };
    let status = refusal.status();
    let headers = response
        .headers()
        .iter()
        .filter(|(name, _)| **name != CONTENT_LENGTH)
        .map(|(name, value)| option(name, value, HeaderAppendAction::OverwriteIfExistsOrAdd))
        .collect();
    Ok(CheckResponse {
        status: Some(rpc::Status {
            code: grpc_code(refusal) as i32,
            message: refusal.code().to_owned(),
            details: vec![],
        }),
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus { code: i32::from(status.as_u16()) }),
            headers,
            // The message written for this request (the credential it lacks, the limit it
            // hit), as the proxy and the HTTP decision answer it.
            body: match response.extensions().get::<OwnBody>() {
                Some(OwnBody(own)) => String::from_utf8_lossy(own).into_owned(),
                None => refusal.body().into_owned(),
            },
        })),
        dynamic_metadata: None,
    })
}

/// An allowed decision: the caller's headers for the upstream, the credentials to remove, and
/// the rest (`RateLimit-*`, `Deprecation`, `Sunset`) for the client's response.
fn allowed(decision: &HeaderMap, query_credentials: Vec<String>) -> CheckResponse {
    let mut ok = OkHttpResponse { query_parameters_to_remove: query_credentials, ..OkHttpResponse::default() };
    for (name, value) in decision {
        let upstream = [
            &X_TOLLGATE_APPLICATION,
            &X_TOLLGATE_PLAN,
            &X_TOLLGATE_API,
            &X_TOLLGATE_UPSTREAM_GROUP,
            &X_TOLLGATE_DECISION,
        ];
        if upstream.contains(&name) {
            // A client's own value never reaches the upstream.
            ok.headers.push(option(name, value, HeaderAppendAction::OverwriteIfExistsOrAdd));
        } else if *name == X_ENVOY_AUTH_HEADERS_TO_REMOVE {
            let names = value.to_str().unwrap_or_default().split(',');
            ok.headers_to_remove.extend(names.filter(|n| !n.is_empty()).map(str::to_owned));
        } else if *name != CONTENT_LENGTH {
            ok.response_headers_to_add.push(option(name, value, HeaderAppendAction::OverwriteIfExistsOrAdd));
        }
    }
    CheckResponse {
        status: Some(rpc::Status { code: Code::Ok as i32, message: String::new(), details: vec![] }),
        http_response: Some(HttpResponse::OkResponse(ok)),
        dynamic_metadata: None,
    }
}

fn option(name: &HeaderName, value: &HeaderValue, action: HeaderAppendAction) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(EnvoyHeader {
            key: name.as_str().to_owned(),
            value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
            raw_value: Vec::new(),
        }),
        append_action: action as i32,
        ..HeaderValueOption::default()
    }
}

/// The gRPC status of a refusal (Envoy denies on any but `OK`; the HTTP status is what the
/// client gets).
fn grpc_code(refusal: Refusal) -> Code {
    match refusal.status().as_u16() {
        400 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        404 => Code::NotFound,
        410 => Code::FailedPrecondition,
        429 => Code::ResourceExhausted,
        503 => Code::Unavailable,
        _ => Code::PermissionDenied,
    }
}
