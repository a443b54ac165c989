//! The request a decision is about, read from the three shapes proxies ask in:
//!
//! * Traefik `forwardAuth` and APISIX `forward-auth`: `X-Forwarded-Method`, `X-Forwarded-Uri`
//!   (path and query) and `X-Forwarded-Host`;
//! * nginx `auth_request`: `X-Original-URI` and `X-Original-Method` (the subrequest itself is a
//!   GET), with the original `Host`;
//! * Envoy's HTTP `ext_authz`: the decision request's own method, path and query (after an
//!   optional path prefix) and `Host`.
//!
//! `X-Forwarded-Uri` wins because Traefik and APISIX always set it themselves, so a client
//! cannot choose it there; nginx's documented config clears it, and Envoy forwards only the
//! headers it is told to (see docs/integrations/).

use hyper::header::{HOST, HeaderMap, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Uri};

use super::host::{InvalidHost, RequestHost};

static HOST_HEADER: HeaderName = HOST;
static X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
static X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
static X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");

/// Which proxy's convention a decision request follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Envoy HTTP `ext_authz`: the request's own target.
    ExtAuthz,
    /// nginx `auth_request`: `X-Original-*`.
    AuthRequest,
    /// Traefik `forwardAuth`, APISIX `forward-auth`: `X-Forwarded-*`.
    ForwardAuth,
}

impl Shape {
    pub fn of(headers: &HeaderMap) -> Shape {
        if headers.contains_key(&X_FORWARDED_URI) {
            Shape::ForwardAuth
        } else if headers.contains_key(&X_ORIGINAL_URI) {
            Shape::AuthRequest
        } else {
            Shape::ExtAuthz
        }
    }
}

/// The decision request does not say clearly which request to decide; `what` says why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BadOriginal {
    what: &'static str,
}

impl BadOriginal {
    /// The `message` of the 400 answer. Never echoes the values (they may carry anything).
    pub fn message(self) -> String {
        format!("The decision request does not say which request to decide: {}.", self.what)
    }
}

/// The method, target and host of the request being decided.
pub(crate) struct Original<'a> {
    pub method: Method,
    /// Origin-form: path and query.
    pub uri: Uri,
    /// Where the original host is named.
    host: HostSource<'a>,
    headers: &'a HeaderMap,
}

/// Where a decision request names the original host.
#[derive(Clone, Copy)]
enum HostSource<'a> {
    /// The decision request's own host, as a proxied request's is read: over HTTP/2 (an
    /// Envoy cluster with `http2_protocol_options`) it is `:authority`, not a `Host` field.
    Request(&'a Parts),
    /// One header field (`Host` for nginx and gRPC, `X-Forwarded-Host` for Traefik).
    Header(&'static HeaderName),
    /// A host was given that is not one (gRPC's `http.host`): refused, never read as none.
    Unusable,
}

impl<'a> Original<'a> {
    /// Reads the request being decided from `parts`; `prefix` is the path prefix an Envoy
    /// `ext_authz` filter puts before the original path (`path_prefix`).
    pub fn of(parts: &'a Parts, prefix: Option<&str>) -> Result<Original<'a>, BadOriginal> {
        let headers = &parts.headers;
        let shape = Shape::of(headers);
        let (method, uri, host) = match shape {
            Shape::ExtAuthz => {
                let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
                let target = match prefix {
                    Some(prefix) => {
                        target.strip_prefix(prefix).filter(|rest| rest.starts_with('/')).ok_or(BadOriginal {
                            what: "the path does not start with TOLLGATE_AGENT_AUTHZ_PATH_PREFIX and `/`",
                        })?
                    }
                    None => target,
                };
                let uri = origin_form(target, "the request's path")?;
                (parts.method.clone(), uri, HostSource::Request(parts))
            }
            Shape::AuthRequest => {
                let target = one(headers, &X_ORIGINAL_URI, "X-Original-URI must be given once")?;
                let uri = origin_form(target, "X-Original-URI must be a path and query such as /pets/1?a=b")?;
                (method(parts, &X_ORIGINAL_METHOD)?, uri, HostSource::Header(&HOST_HEADER))
            }
            Shape::ForwardAuth => {
                let target = one(headers, &X_FORWARDED_URI, "X-Forwarded-Uri must be given once")?;
                let uri = origin_form(target, "X-Forwarded-Uri must be a path and query such as /pets/1?a=b")?;
                let host = if headers.contains_key(&X_FORWARDED_HOST) { &X_FORWARDED_HOST } else { &HOST_HEADER };
                (method(parts, &X_FORWARDED_METHOD)?, uri, HostSource::Header(host))
            }
        };
        Ok(Original { method, uri, host, headers })
    }

    /// The request an Envoy gRPC `CheckRequest` names: its `method`, its `path` (the request
    /// target as received, query included) and `headers`, in which `Host` is the original
    /// authority; `host_usable` is false when a host was given that no header can carry.
    pub fn of_check(
        method: &str,
        path: &str,
        headers: &'a HeaderMap,
        host_usable: bool,
    ) -> Result<Original<'a>, BadOriginal> {
        let what = "attributes.request.http must name the method and a path such as /pets/1?a=b";
        let method = Method::from_bytes(method.as_bytes()).map_err(|_| BadOriginal { what })?;
        let host = if host_usable { HostSource::Header(&HOST_HEADER) } else { HostSource::Unusable };
        Ok(Original { method, uri: origin_form(path, what)?, host, headers })
    }

    /// The host the original request was for: exactly one valid value, or none.
    pub fn host(&self) -> Result<Option<RequestHost<'a>>, InvalidHost> {
        let name = match self.host {
            HostSource::Request(parts) => return RequestHost::of(parts),
            HostSource::Header(name) => name,
            HostSource::Unusable => return Err(InvalidHost),
        };
        let mut values = self.headers.get_all(name).iter();
        let value = values.next();
        if values.next().is_some() {
            return Err(InvalidHost);
        }
        value.map(RequestHost::parse).transpose()
    }
}

/// The one value of `name`, as text. nginx passes `$request_uri` as the client sent it, so
/// UTF-8 is read as such (a proxied request's path may carry it too).
fn one<'h>(headers: &'h HeaderMap, name: &HeaderName, what: &'static str) -> Result<&'h str, BadOriginal> {
    let mut values = headers.get_all(name).iter();
    let value = values.next().and_then(|value| std::str::from_utf8(value.as_bytes()).ok());
    match (value, values.next()) {
        (Some(value), None) => Ok(value),
        _ => Err(BadOriginal { what }),
    }
}

/// The original method from `name`, else the decision request's own.
fn method(parts: &Parts, name: &HeaderName) -> Result<Method, BadOriginal> {
    let what = if *name == X_ORIGINAL_METHOD {
        "X-Original-Method must be one HTTP method"
    } else {
        "X-Forwarded-Method must be one HTTP method"
    };
    if !parts.headers.contains_key(name) {
        return Ok(parts.method.clone());
    }
    let value: &HeaderValue = parts.headers.get(name).ok_or(BadOriginal { what })?;
    if parts.headers.get_all(name).iter().count() > 1 {
        return Err(BadOriginal { what });
    }
    Method::from_bytes(value.as_bytes()).map_err(|_| BadOriginal { what })
}

/// `target` as an origin-form URI: `/path[?query]`. A request target never carries a
/// fragment, and `Uri` would drop one silently: with nginx forwarding `$request_uri` raw, a
/// `#/../admin` after the path would reach the upstream unchecked.
fn origin_form(target: &str, what: &'static str) -> Result<Uri, BadOriginal> {
    if !target.starts_with('/') || target.contains('#') {
        return Err(BadOriginal { what });
    }
    let uri = Uri::try_from(target).map_err(|_| BadOriginal { what })?;
    if uri.scheme().is_some() || uri.authority().is_some() {
        return Err(BadOriginal { what });
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, target: &str, headers: &[(&str, &str)]) -> Parts {
        let mut request = hyper::Request::builder().method(method).uri(target);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).expect("request").into_parts().0
    }

    #[test]
    fn the_three_shapes() {
        let envoy = parts("POST", "/authz/pets/1?user_key=k", &[("host", "api.example.com")]);
        let original = Original::of(&envoy, Some("/authz")).expect("envoy");
        assert_eq!((Shape::of(&envoy.headers), original.method.as_str()), (Shape::ExtAuthz, "POST"));
        assert_eq!(original.uri, "/pets/1?user_key=k");
        assert_eq!(original.host().expect("host").map(RequestHost::name).as_deref(), Some("api.example.com"));

        let nginx = parts("GET", "/decide", &[("x-original-uri", "/pets/1?a=b"), ("x-original-method", "DELETE")]);
        let original = Original::of(&nginx, Some("/authz")).expect("nginx");
        assert_eq!((Shape::of(&nginx.headers), original.method.as_str()), (Shape::AuthRequest, "DELETE"));
        assert_eq!(original.uri, "/pets/1?a=b");

        let traefik = parts(
            "GET",
            "/",
            &[
                ("host", "agent:8090"),
                ("x-forwarded-uri", "/pets/2"),
                ("x-forwarded-method", "PUT"),
                ("x-forwarded-host", "Shop.Example.com:443"),
                ("x-original-uri", "/ignored"),
            ],
        );
        let original = Original::of(&traefik, None).expect("traefik");
        assert_eq!((Shape::of(&traefik.headers), original.method.as_str()), (Shape::ForwardAuth, "PUT"));
        assert_eq!(original.uri, "/pets/2");
        assert_eq!(original.host().expect("host").map(RequestHost::name).as_deref(), Some("shop.example.com"));
    }

    #[test]
    fn unclear_requests_are_refused() {
        let bad = |p: Parts, prefix: Option<&str>| Original::of(&p, prefix).err().expect("refused").message();
        assert!(bad(parts("GET", "/other/pets", &[]), Some("/authz")).contains("TOLLGATE_AGENT_AUTHZ_PATH_PREFIX"));
        assert!(bad(parts("GET", "/authzpets", &[]), Some("/authz")).contains("PREFIX"));
        assert!(bad(parts("GET", "/", &[("x-original-uri", "pets")]), None).contains("X-Original-URI"));
        assert!(bad(parts("GET", "/", &[("x-original-uri", "http://h/pets")]), None).contains("X-Original-URI"));
        assert!(
            bad(parts("GET", "/", &[("x-forwarded-uri", "/a"), ("x-forwarded-uri", "/b")]), None)
                .contains("given once")
        );
        assert!(
            bad(parts("GET", "/", &[("x-forwarded-uri", "/a"), ("x-forwarded-method", "G T")]), None)
                .contains("X-Forwarded-Method")
        );
        let two_hosts = parts("GET", "/", &[("x-forwarded-uri", "/a"), ("host", "a"), ("host", "b")]);
        assert_eq!(Original::of(&two_hosts, None).expect("shape").host(), Err(InvalidHost));
        // What comes after `#` is not part of any path the proxy routes, but it is forwarded.
        for target in ["/public/x#/../../reports/1", "/a?b=1#&user_key=k"] {
            assert!(bad(parts("GET", "/", &[("x-original-uri", target)]), None).contains("X-Original-URI"), "{target}");
        }
        let no_headers = HeaderMap::new();
        let unusable = Original::of_check("GET", "/a", &no_headers, false).expect("check");
        assert_eq!(unusable.host(), Err(InvalidHost));
    }

    #[test]
    fn utf8_paths_from_nginx_are_read() {
        let mut headers = HeaderMap::new();
        headers.insert("x-original-uri", HeaderValue::from_bytes("/x/café".as_bytes()).expect("bytes"));
        let mut nginx = parts("GET", "/decide", &[]);
        nginx.headers = headers;
        let original = Original::of(&nginx, None).expect("utf-8 path");
        assert_eq!(original.uri.path(), "/x/café");
    }

    #[test]
    fn envoy_over_http2_names_its_host_as_the_authority() {
        let mut envoy = parts("GET", "http://partner.example.com/authz/v1/secret", &[]);
        envoy.version = hyper::Version::HTTP_2;
        let original = Original::of(&envoy, Some("/authz")).expect("h2");
        assert_eq!(original.uri, "/v1/secret");
        assert_eq!(original.host().expect("host").map(RequestHost::name).as_deref(), Some("partner.example.com"));
    }
}
