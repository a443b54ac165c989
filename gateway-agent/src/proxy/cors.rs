//! CORS for browsers calling the proxy from another origin, such as the developer portal's
//! "Try it out".
//!
//! Only the origins of `TOLLGATE_AGENT_CORS_ORIGINS` get CORS headers; for every other request
//! nothing here runs beyond one header lookup (none at all while the list is empty). A
//! preflight is answered by the agent itself, before routing and authentication (a preflight
//! carries no key); every other answer to a listed origin, proxied or the agent's own,
//! carries `Access-Control-Allow-Origin` so the browser lets the page read it.

use std::collections::HashSet;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, HeaderMap, HeaderValue, VARY,
};
use hyper::{Method, Response, StatusCode};

use super::reply::Body;
use crate::config::{Config, Lifecycle};
use crate::enforce::key_location::KeySource;
use crate::telemetry::ANSWERED_DECISIONS;

/// The `decision` of an answered preflight in metrics and the access log.
pub(crate) const PREFLIGHT: &str = "cors_preflight";
/// Its slot among the answered decisions (after every [`super::reply::Refusal`]).
pub(crate) const PREFLIGHT_INDEX: usize = ANSWERED_DECISIONS - 1;

/// Allowed when the preflight names no usable method.
const METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";
/// Response headers a page may read: limits, an API's deprecation, and a failed call's id.
const EXPOSED: &str =
    "RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, Retry-After, Deprecation, Sunset, X-Tollgate-Request-Id";
/// How long a browser may cache a preflight answer, in seconds.
const MAX_AGE: &str = "600";
/// Requested header names echoed at most (a browser asks for a handful).
const MAX_REQUESTED_HEADERS: usize = 64;

/// `OPTIONS` with `Access-Control-Request-Method`: a browser asking before the real request.
pub(crate) fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
}

/// The answer to a preflight from the listed `origin`: `204` allowing the requested method
/// and headers, plus the header names the APIs read keys from.
pub(crate) fn preflight(origin: &HeaderValue, request: &HeaderMap, config: Option<&Config>) -> Response<Body> {
    let methods = request
        .get(ACCESS_CONTROL_REQUEST_METHOD)
        .filter(|method| is_token(method.as_bytes()))
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static(METHODS));

    let mut names = String::new();
    // Lowercased names already listed.
    let mut seen: HashSet<String> = HashSet::new();
    let mut add = |name: &str| {
        if seen.insert(name.to_ascii_lowercase()) {
            if !names.is_empty() {
                names.push_str(", ");
            }
            names.push_str(name);
        }
    };
    let requested = request
        .get_all(ACCESS_CONTROL_REQUEST_HEADERS)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|name| is_token(name.as_bytes()))
        .take(MAX_REQUESTED_HEADERS);
    for name in requested {
        add(name);
    }
    if let Some(config) = config {
        let key_headers = config
            .catalog
            .apis
            .iter()
            .filter(|api| !matches!(api.lifecycle, Lifecycle::Draft))
            .flat_map(|api| api.auth.sources())
            .filter_map(|source| match source {
                KeySource::Header(name) => Some(name.as_str()),
                KeySource::Query(_) => None,
            });
        for name in key_headers {
            add(name);
        }
    }

    let mut response = Response::new(Either::Right(Full::new(Bytes::new())));
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    headers.insert(ACCESS_CONTROL_ALLOW_METHODS, methods);
    if let Ok(names) = HeaderValue::try_from(names)
        && !names.is_empty()
    {
        headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, names);
    }
    headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(MAX_AGE));
    headers.insert(VARY, HeaderValue::from_static("Origin"));
    response
}

/// Lets the page of the listed `origin` read this answer and its limit headers. Replaces an
/// upstream's own `Access-Control-Allow-Origin`; adds to its `Vary` and
/// `Access-Control-Expose-Headers`.
pub(crate) fn allow(origin: &HeaderValue, headers: &mut HeaderMap) {
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    let varies = headers.get_all(VARY).iter().any(|value| {
        value
            .as_bytes()
            .split(|&b| b == b',')
            .map(<[u8]>::trim_ascii)
            .any(|name| name == b"*" || name.eq_ignore_ascii_case(b"origin"))
    });
    if !varies {
        headers.append(VARY, HeaderValue::from_static("Origin"));
    }
    headers.append(ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSED));
}

/// An RFC 9110 token (method or header name): `tchar`s only, not empty.
fn is_token(value: &[u8]) -> bool {
    !value.is_empty()
        && value.iter().all(|&b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preflight_echoes_tokens_only() {
        let origin = HeaderValue::from_static("http://127.0.0.1:8080");
        let mut request = HeaderMap::new();
        request.insert(ACCESS_CONTROL_REQUEST_METHOD, HeaderValue::from_static("PUT"));
        request.insert(
            ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_static("content-type, x-api-key,bad header, X-API-Key,,x-(no)"),
        );
        let response = preflight(&origin, &request, None);
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        let headers = response.headers();
        assert_eq!(headers[ACCESS_CONTROL_ALLOW_ORIGIN], origin);
        assert_eq!(headers[ACCESS_CONTROL_ALLOW_METHODS], "PUT");
        assert_eq!(headers[ACCESS_CONTROL_ALLOW_HEADERS], "content-type, x-api-key");
        assert_eq!(headers[ACCESS_CONTROL_MAX_AGE], "600");
        assert_eq!(headers[VARY], "Origin");

        request.insert(ACCESS_CONTROL_REQUEST_METHOD, HeaderValue::from_static("GET, PUT"));
        request.remove(ACCESS_CONTROL_REQUEST_HEADERS);
        let response = preflight(&origin, &request, None);
        assert_eq!(response.headers()[ACCESS_CONTROL_ALLOW_METHODS], METHODS);
        assert!(response.headers().get(ACCESS_CONTROL_ALLOW_HEADERS).is_none());
    }

    #[test]
    fn allow_keeps_the_upstream_vary_and_replaces_its_origin() {
        let origin = HeaderValue::from_static("http://127.0.0.1:8080");
        let mut headers = HeaderMap::new();
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        headers.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
        allow(&origin, &mut headers);
        assert_eq!(headers[ACCESS_CONTROL_ALLOW_ORIGIN], origin);
        let vary: Vec<_> = headers.get_all(VARY).iter().collect();
        assert_eq!(vary, ["Accept-Encoding", "Origin"]);
        assert_eq!(headers[ACCESS_CONTROL_EXPOSE_HEADERS], EXPOSED);

        let mut headers = HeaderMap::new();
        headers.insert(VARY, HeaderValue::from_static("accept, origin"));
        allow(&origin, &mut headers);
        assert_eq!(headers.get_all(VARY).iter().count(), 1);
    }
}
