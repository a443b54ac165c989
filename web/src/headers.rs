//! Security headers on every answer of the management server: a strict
//! Content-Security-Policy on pages, a sandboxing one on everything else,
//! `nosniff`, a same-origin referrer policy and no framing.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;

/// The policies, built once from the settings: pages may also call the
/// gateway (the API docs' "Try it out"), nothing else outside this origin.
#[derive(Debug, Clone)]
pub struct SecurityHeaders {
    page_policy: HeaderValue,
}

/// Anything that is not a page (JSON, specs, scripts, redirects) must never
/// run as a document: if a browser opens it, it gets no rights at all.
const NON_PAGE_POLICY: &str =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'; sandbox";

impl SecurityHeaders {
    /// `gateway_url` is where the docs' "Try it out" sends calls.
    pub fn new(gateway_url: &str) -> SecurityHeaders {
        let gateway = origin_of(gateway_url).map(|o| format!(" {o}")).unwrap_or_default();
        // No 'unsafe-inline' anywhere: every script and style is a file under /static.
        // Swagger UI draws its icons from data: URIs, hence img-src data:.
        let policy = format!(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; \
             connect-src 'self'{gateway}; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
        );
        let page_policy = HeaderValue::from_str(&policy).unwrap_or_else(|_| {
            HeaderValue::from_static("default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
        });
        SecurityHeaders { page_policy }
    }

    /// The policy every HTML answer carries.
    pub fn page_policy(&self) -> &str {
        self.page_policy.to_str().unwrap_or_default()
    }
}

/// `scheme://host[:port]` of a URL, for a CSP source; `None` if it has none.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']');
    (matches!(scheme, "http" | "https") && !authority.is_empty() && authority.chars().all(plain))
        .then(|| format!("{scheme}://{authority}"))
}

fn is_html(res: &ServiceResponse<impl MessageBody>) -> bool {
    res.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/html"))
}

/// Adds the security headers to every answer, whoever made it (handlers,
/// error pages, static files); a handler's own CSP is kept.
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let policies = req.app_data::<web::Data<SecurityHeaders>>().cloned();
    // Handlers' and extractors' errors are answers by now; only a failing
    // middleware further in (the session store down) passes an error here.
    let mut res = next.call(req).await?.map_into_boxed_body();
    let page = is_html(&res);
    let headers = res.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        let policy = match (&policies, page) {
            (Some(p), true) => p.page_policy.clone(),
            (None, true) => SecurityHeaders::new("").page_policy,
            (_, false) => HeaderValue::from_static(NON_PAGE_POLICY),
        };
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    headers.insert(CROSS_ORIGIN_OPENER_POLICY, HeaderValue::from_static("same-origin"));
    Ok(res)
}

const CROSS_ORIGIN_OPENER_POLICY: HeaderName = HeaderName::from_static("cross-origin-opener-policy");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_origin_is_the_only_other_place_pages_may_call() {
        let headers = SecurityHeaders::new("https://gw.example.com:8443/base");
        let policy = headers.page_policy();
        assert!(policy.contains("connect-src 'self' https://gw.example.com:8443;"), "{policy}");
        for directive in ["default-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"] {
            assert!(policy.contains(directive), "{directive} missing: {policy}");
        }
        assert!(!policy.contains("unsafe"), "{policy}");
    }

    #[test]
    fn a_strange_gateway_url_adds_nothing_to_the_policy() {
        for url in ["", "ftp://x", "http://a b", "http://x;script-src *"] {
            assert!(SecurityHeaders::new(url).page_policy().contains("connect-src 'self';"), "{url}");
        }
    }
}
