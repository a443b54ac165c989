//! Rewriting a request for its upstream and the upstream's response for the client.
//!
//! Hop-by-hop headers (RFC 9110 §7.6.1) are connection-specific and removed both ways; the
//! credentials are removed from the query and headers so upstreams never see tenant
//! secrets; the client's own proxy headers (`Forwarded`, `X-Real-IP`, …) are dropped, and
//! `X-Forwarded-For`, `-Proto` and `-Host` tell the upstream who called. Bodies are streamed
//! through untouched.

use std::cell::RefCell;
use std::net::IpAddr;

use bytes::Bytes;
use hyper::body::Body as _;
use hyper::header::{
    CONNECTION, CONTENT_LENGTH, COOKIE, EXPECT, HOST, HeaderMap, HeaderName, HeaderValue, LOCATION, TE, TRAILER,
    TRANSFER_ENCODING, UPGRADE,
};
use hyper::http::request::Parts;
use hyper::{Method, Request, Uri, Version};

use super::body::ClientBody;
use super::method_field;
use super::upstream::Target;
use crate::enforce::key_location::{Auth, cookie_fields, cookie_pairs, query_pairs};

static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
static PROXY_AUTHENTICATE: HeaderName = HeaderName::from_static("proxy-authenticate");
static PROXY_AUTHORIZATION: HeaderName = HeaderName::from_static("proxy-authorization");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Headers by which a proxy tells an upstream who called, on which host, scheme, port or
/// path: from a client they are forgeries, so they are dropped (`X-Forwarded-Host` and
/// `-Proto` are then set by the agent; `X-Forwarded-For` is appended to, by convention).
static CLIENT_PROXY_HEADERS: [HeaderName; 36] = [
    HeaderName::from_static("forwarded"),
    HeaderName::from_static("forwarded-for"),
    HeaderName::from_static("x-real-ip"),
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-forwarded-server"),
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
    HeaderName::from_static("x-original-host"),
    // The original request as `auth_request`/`forwardAuth` setups pass it on.
    HeaderName::from_static("x-forwarded-uri"),
    HeaderName::from_static("x-original-uri"),
    HeaderName::from_static("x-forwarded-path"),
    HeaderName::from_static("x-host"),
    HeaderName::from_static("x-original-method"),
    HeaderName::from_static("x-original-path"),
    HeaderName::from_static("x-envoy-original-path"),
    HeaderName::from_static("x-override-url"),
    HeaderName::from_static("x-forwarded"),
    // The client's address as CDNs and load balancers tell it.
    HeaderName::from_static("true-client-ip"),
    HeaderName::from_static("cf-connecting-ip"),
    HeaderName::from_static("fastly-client-ip"),
    HeaderName::from_static("x-client-ip"),
    HeaderName::from_static("client-ip"),
    HeaderName::from_static("x-cluster-client-ip"),
    HeaderName::from_static("x-remote-addr"),
    HeaderName::from_static("x-remote-ip"),
    HeaderName::from_static("x-originating-ip"),
    HeaderName::from_static("x-proxyuser-ip"),
    // The scheme, as Rack and IIS read it besides `X-Forwarded-Proto`.
    HeaderName::from_static("x-forwarded-ssl"),
    HeaderName::from_static("x-forwarded-scheme"),
    HeaderName::from_static("x-url-scheme"),
    HeaderName::from_static("x-forwarded-protocol"),
    HeaderName::from_static("x-http-scheme"),
    HeaderName::from_static("front-end-https"),
    HeaderName::from_static("x-scheme"),
    // The path prefix the upstream is mounted at: Flask and Django "ReverseProxied"
    // middleware cut it off the path, which would then name another route than the rules saw.
    HeaderName::from_static("x-script-name"),
];

/// A name with `_` is dropped, as nginx does by default (`underscores_in_headers off`):
/// CGI-style stacks read it as its `-` twin, or as a server variable (gunicorn takes a
/// `SCRIPT_NAME` header as the prefix to cut off the path, so the app would route another
/// path than the rules matched).
fn has_underscore(name: &HeaderName) -> bool {
    name.as_str().as_bytes().contains(&b'_')
}

/// Whether `name` is one of the client's claims about proxies: [`CLIENT_PROXY_HEADERS`] or an
/// `X-Forwarded-*` header the agent sets, spelt with `_` or `.` for `-` too (CGI-style stacks
/// read `X_Forwarded_For` as `X-Forwarded-For`; the agent's own `X-Forwarded-For` is appended
/// to, not dropped).
fn is_client_proxy_header(name: &HeaderName) -> bool {
    let raw = name.as_str().as_bytes();
    // Every name of the list starts with one of these: most headers are passed over at once.
    if !matches!(raw.first(), Some(b'x' | b'f' | b't' | b'c')) {
        return false;
    }
    // The decision endpoint's answer headers (`X-Tollgate-Application`, …): upstreams behind
    // a decision mode proxy trust them, so a client never sets them.
    if let [b'x', b'-' | b'_' | b'.', rest @ ..] = raw
        && rest.starts_with(b"tollgate")
    {
        return true;
    }
    if CLIENT_PROXY_HEADERS.contains(name) {
        return true;
    }
    if !raw.iter().any(|&b| b == b'_' || b == b'.') {
        return false;
    }
    CLIENT_PROXY_HEADERS
        .iter()
        .chain([&X_FORWARDED_FOR, &X_FORWARDED_HOST, &X_FORWARDED_PROTO])
        .any(|known| same_dashed(known.as_str(), raw))
}

/// Headers by which frameworks (Laravel, Symfony, Express's `method-override`, Rails) let a
/// request run under another method than its own.
static METHOD_OVERRIDES: [&str; 3] = ["x-http-method-override", "x-http-method", "x-method-override"];

/// Whether the request asks the upstream to run another method than the one the mapping
/// rules are matched with: an override header in any spelling of its name, or for a `POST`
/// (the only method Symfony and Laravel let `_method` override) a `_method` query parameter.
/// A `_method` field in the body is found as the body passes ([`method_field`]).
pub(crate) fn carries_method_override(method: &Method, query: Option<&str>, headers: &HeaderMap) -> bool {
    let header = headers.keys().any(|name| {
        let raw = name.as_str().as_bytes();
        METHOD_OVERRIDES.iter().any(|known| same_dashed(known, raw))
    });
    header
        || (*method == Method::POST
            && query.is_some_and(|query| {
                query_pairs(query).any(|(name, _)| method_field::is_override_name(name.as_bytes()))
            }))
}

/// Whether the lowercase header name `raw` is `known`, with `_` or `.` allowed for `-`.
fn same_dashed(known: &str, raw: &[u8]) -> bool {
    let known = known.as_bytes();
    known.len() == raw.len() && known.iter().zip(raw).all(|(&k, &r)| k == if r == b'_' || r == b'.' { b'-' } else { r })
}

/// Whether an answer's `Transfer-Encoding` is `chunked` alone, the one coding the agent
/// passes on (as framing of its own): another (`gzip, chunked`) would reach the client as
/// plain content once this hop's header is dropped.
pub(crate) fn chunked_alone(headers: &HeaderMap) -> bool {
    let mut codings = headers.get_all(TRANSFER_ENCODING).iter();
    codings.next().is_some_and(|coding| coding.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked"))
        && codings.next().is_none()
}

/// Headers that end at this hop, besides those the `Connection` header names.
static HOP_BY_HOP: [&HeaderName; 9] = [
    &CONNECTION,
    &TE,
    &TRAILER,
    &TRANSFER_ENCODING,
    &UPGRADE,
    &KEEP_ALIVE,
    &PROXY_CONNECTION,
    &PROXY_AUTHENTICATE,
    &PROXY_AUTHORIZATION,
];

/// Points an upstream's `Location` that leads back into the upstream (its own URL, or a path
/// under its path prefix) at the same place behind the gateway, as nginx's `proxy_redirect
/// default` does: the upstream builds redirects from the `Host` it was sent, which is its own,
/// so a client would otherwise be sent past the gateway or to a path it does not route.
/// `public_prefix` is the request path's part before what was forwarded (the API's base path).
pub(crate) fn rewrite_location(headers: &mut HeaderMap, target: &Target, public_prefix: &str) {
    let Some(location) = headers.get(LOCATION).and_then(|v| v.to_str().ok()) else {
        return;
    };
    let path = if location.starts_with('/') && !location.starts_with("//") {
        Some(location)
    } else {
        strip_origin(location, target)
    };
    // Below the prefix: the prefix itself, then a separator or nothing.
    let rest = path
        .and_then(|path| path.strip_prefix(&*target.prefix))
        .filter(|rest| rest.is_empty() || rest.starts_with(['/', '?', '#']));
    let Some(rest) = rest else {
        return;
    };
    let prefix = public_prefix.trim_end_matches('/');
    let public = match prefix {
        _ if rest.starts_with('/') => format!("{prefix}{rest}"),
        "" => format!("/{rest}"),
        _ => format!("{prefix}{rest}"),
    };
    if public != location
        && let Ok(value) = HeaderValue::from_str(&public)
    {
        headers.insert(LOCATION, value);
    }
}

/// `url`'s path and what follows, when it is on `target`'s scheme and authority.
fn strip_origin<'a>(url: &'a str, target: &Target) -> Option<&'a str> {
    let (scheme, rest) = url.split_once("://")?;
    if !scheme.eq_ignore_ascii_case(target.scheme.as_str()) {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let default_port = if target.is_tls() { 443 } else { 80 };
    let same = authority.eq_ignore_ascii_case(target.authority.as_str())
        || (target.authority.port_u16().is_none_or(|port| port == default_port)
            && authority.eq_ignore_ascii_case(target.authority.host()));
    match same {
        true if path.is_empty() => Some("/"),
        true => Some(path),
        false => None,
    }
}

/// Removes hop-by-hop headers, including those the `Connection` header names.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    strip(headers, |_| false);
}

/// Removes hop-by-hop headers, those the `Connection` header names, and any header `also`
/// picks. One pass over the names finds what is present; only that is removed, so the usual
/// message costs no allocation and one hash lookup per header actually removed
/// (`Connection: keep-alive` from an upstream names nothing more).
fn strip(headers: &mut HeaderMap, also: impl Fn(&HeaderName) -> bool) {
    let mut present = 0u16;
    let mut others = false;
    for name in headers.keys() {
        match HOP_BY_HOP.iter().position(|hop| *hop == name) {
            Some(index) => present |= 1 << index,
            None => others |= also(name),
        }
    }
    if present == 0 && !others {
        return;
    }
    let mut doomed: Vec<HeaderName> = Vec::new();
    if others {
        doomed.extend(headers.keys().filter(|name| also(name)).cloned());
    }
    if present & 1 != 0 {
        // As bytes: a value with a byte beyond ASCII still names the others in its list.
        let named = headers
            .get_all(CONNECTION)
            .iter()
            .flat_map(|value| value.as_bytes().split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|token| !token.eq_ignore_ascii_case(b"close") && !token.eq_ignore_ascii_case(b"keep-alive"))
            .filter_map(|token| HeaderName::from_bytes(token).ok());
        doomed.extend(named);
    }
    for (index, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << index) != 0 {
            headers.remove(*name);
        }
    }
    for name in doomed {
        headers.remove(name);
    }
}

/// Who called, as the upstream is told.
pub(crate) struct Client<'a> {
    pub ip: IpAddr,
    /// `X-Forwarded-Proto`: how the client reached the agent.
    pub proto: &'a HeaderValue,
}

/// The upstream request for the client's request (`parts`, whose URI the caller took out as
/// `client_uri`): `target` + the path below the API's base path + the query without
/// credentials, with cleaned and forwarding headers.
pub(crate) fn upstream_request(
    mut parts: Parts,
    client_uri: &Uri,
    mut body: ClientBody,
    target: &Target,
    rest_offset: usize,
    auth: &Auth,
    client: Client<'_>,
) -> Result<Request<ClientBody>, hyper::http::Error> {
    let path_and_query = {
        let path = client_uri.path();
        let rest = path.get(rest_offset..).unwrap_or("");
        let query = client_uri.query();
        let mut out = String::with_capacity(target.prefix.len() + rest.len() + query.map_or(0, str::len) + 2);
        out.push_str(&target.prefix);
        out.push_str(rest);
        if out.is_empty() {
            out.push('/');
        }
        if let Some(query) = query {
            push_query_without_credentials(&mut out, query, auth);
        }
        out
    };
    // Origin-form: the connection is already the upstream's.
    let uri = Uri::try_from(path_and_query)?;

    let headers = &mut parts.headers;
    // The host the client asked for: the absolute-form target's authority, else `Host`
    // (both validated before routing). Read first: `Connection: host` must not remove it.
    let client_host = match client_uri.authority() {
        Some(authority) => HeaderValue::from_str(authority.as_str()).ok(),
        None => headers.get(HOST).cloned(),
    };
    // Hop-by-hop headers, every spelling of every credential name (not only the configured
    // ones), and the client's own claims about proxies before this one: only what the agent
    // itself saw (validated `Host`, peer address) reaches the upstream.
    strip(headers, |name| auth.is_credential_header(name) || is_client_proxy_header(name) || has_underscore(name));
    strip_credential_cookies(headers, auth);
    // hyper's server answers the client's `Expect: 100-continue` itself when the body is
    // first read, after the rules, key and limits have passed; the upstream gets the body
    // at once, so an expectation passed on could only earn a 417 from a server without it.
    if !body.is_end_stream() {
        headers.remove(EXPECT);
    }
    // hyper sends a GET or HEAD whose body has no announced length with no body at all (it
    // assumes there is none); a body the client did send is sent chunked.
    if matches!(parts.method, Method::GET | Method::HEAD)
        && !body.is_end_stream()
        && body.size_hint().exact().is_none()
        && !headers.contains_key(CONTENT_LENGTH)
    {
        headers.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
    }
    // A body on a method whose meaning defines none is forwarded (search APIs send one), but
    // many servers never read it, and what they leave unread would be parsed as the next
    // request on the connection, run past the rules (a CL.0 desync). The upstream closes
    // the connection after this exchange instead.
    if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS | Method::DELETE | Method::TRACE)
        && !body.is_end_stream()
    {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    headers.insert(HOST, target.host.clone());
    match client_host {
        Some(host) => headers.insert(&X_FORWARDED_HOST, host),
        None => headers.remove(&X_FORWARDED_HOST),
    };
    headers.insert(&X_FORWARDED_PROTO, client.proto.clone());
    let forwarded_for = match previous_hops(headers) {
        None => client_address_field(client.ip),
        Some(mut value) => {
            value.push_str(", ");
            push_ip(&mut value, client.ip);
            HeaderValue::try_from(value).ok()
        }
    };
    if let Some(value) = forwarded_for {
        headers.insert(&X_FORWARDED_FOR, value);
    }

    if parts.version == Version::HTTP_2 {
        join_cookies(headers);
    }
    // Decided on what the upstream receives: `Connection: content-type` removed the type, and
    // a `POST` without one is a form to Rack.
    body.scan_as(&parts.method, &parts.headers);
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    Ok(Request::from_parts(parts, body))
}

/// Removes the cookies named like a credential (PHP's `$_REQUEST` may read them as one); the
/// `Cookie` fields without any are left as they are.
fn strip_credential_cookies(headers: &mut HeaderMap, auth: &Auth) {
    let named = |value: &HeaderValue| cookie_pairs(value).any(|(name, _)| auth.is_credential_param(name));
    if !headers.get_all(COOKIE).iter().any(named) {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| {
            let pairs: Vec<&[u8]> = cookie_fields(value.as_bytes())
                .filter(|pair| {
                    let name = pair.iter().position(|&b| b == b'=').map_or(*pair, |at| &pair[..at]);
                    !auth.is_credential_param(name)
                })
                .collect();
            HeaderValue::from_bytes(&pairs.join(&b"; "[..])).ok().filter(|v| !v.is_empty())
        })
        .collect();
    headers.remove(COOKIE);
    for value in kept {
        headers.append(COOKIE, value);
    }
}

/// HTTP/2 clients may split `Cookie` into one field per cookie; an HTTP/1.1 upstream gets
/// them as one, joined by `; ` (RFC 9113 §8.2.3).
fn join_cookies(headers: &mut HeaderMap) {
    let mut cookies = headers.get_all(COOKIE).iter();
    if cookies.next().is_none() || cookies.next().is_none() {
        return;
    }
    let joined: Vec<&[u8]> = headers.get_all(COOKIE).iter().map(HeaderValue::as_bytes).collect();
    if let Ok(value) = HeaderValue::from_bytes(&joined.join(&b"; "[..])) {
        headers.insert(COOKIE, value);
    }
}

/// The hops the client's `X-Forwarded-For` fields name, in order: several fields are one
/// list (RFC 9110 §5.3), and a proxy that kept only the first would lose the others. `None`
/// when there are none, or when one is not text (then only the address the agent saw is sent).
fn previous_hops(headers: &HeaderMap) -> Option<String> {
    let mut hops: Option<String> = None;
    for field in headers.get_all(&X_FORWARDED_FOR) {
        let text = field.to_str().ok()?.trim_matches([' ', '\t', ',']);
        if text.is_empty() {
            continue;
        }
        let list = hops.get_or_insert_with(|| String::with_capacity(text.len() + 2 + 39));
        if !list.is_empty() {
            list.push_str(", ");
        }
        list.push_str(text);
    }
    hops
}

thread_local! {
    /// The last client address written on this thread, as a field value: a keep-alive
    /// connection's requests all come from one address, and its value is then shared, not
    /// formatted and allocated again.
    static LAST_CLIENT: RefCell<Option<(IpAddr, HeaderValue)>> = const { RefCell::new(None) };
}

/// `client` as an `X-Forwarded-For` value.
fn client_address_field(client: IpAddr) -> Option<HeaderValue> {
    LAST_CLIENT.with_borrow_mut(|last| {
        if let Some((known, value)) = last.as_ref()
            && *known == client
        {
            return Some(value.clone());
        }
        let mut text = String::with_capacity(39);
        push_ip(&mut text, client);
        let value = HeaderValue::from_maybe_shared(Bytes::from(text)).ok()?;
        *last = Some((client, value.clone()));
        Some(value)
    })
}

/// Appends `client` as text: IPv4 digit by digit (its `Display` goes through the formatting
/// machinery, a tenth of the request path's instructions by callgrind).
fn push_ip(out: &mut String, client: IpAddr) {
    match client {
        IpAddr::V4(v4) => {
            for (index, octet) in v4.octets().into_iter().enumerate() {
                if index > 0 {
                    out.push('.');
                }
                if octet >= 100 {
                    out.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    out.push(char::from(b'0' + octet / 10 % 10));
                }
                out.push(char::from(b'0' + octet % 10));
            }
        }
        IpAddr::V6(_) => {
            use std::fmt::Write as _;
            let _ = write!(out, "{client}");
        }
    }
}

/// Appends `?query` minus the parameters named like a credential, in any spelling (and `?`
/// only if anything is left).
fn push_query_without_credentials(out: &mut String, query: &str, auth: &Auth) {
    let is_credential =
        |pair: &str| auth.is_credential_param(pair.split_once('=').map_or(pair, |(name, _)| name).as_bytes());
    let mut first = true;
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        if !pair.contains(';') {
            if !is_credential(pair) {
                out.push(if first { '?' } else { '&' });
                out.push_str(pair);
                first = false;
            }
            continue;
        }
        // Some upstreams also split on `;` (older CGI and Rack, Go before 1.17): a credential
        // after one is removed too, and the rest of the pair kept as it was.
        let mut kept = pair.split(';').filter(|piece| !is_credential(piece)).peekable();
        if kept.peek().is_none() {
            continue;
        }
        out.push(if first { '?' } else { '&' });
        first = false;
        for (index, piece) in kept.enumerate() {
            if index > 0 {
                out.push(';');
            }
            out.push_str(piece);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enforce::key_location::KeySource;

    #[test]
    fn credentials_leave_the_query() {
        let auth =
            Auth::app_id_key(KeySource::Query("app_id".into()), KeySource::Header(HeaderName::from_static("app-key")))
                .expect("distinct names");
        let stripped = |query: &str| {
            let mut out = String::from("/x");
            push_query_without_credentials(&mut out, query, &auth);
            out
        };
        assert_eq!(stripped("a=1&app_id=abc&b=2&app_id&APP%5FID[]=x&App-Key=k&app_ids=3"), "/x?a=1&b=2&app_ids=3");
        assert_eq!(stripped("app_id=abc"), "/x");
        assert_eq!(stripped("a=1;app_id=abc;c=3&app_id=x;b=2&filter=p;q"), "/x?a=1;c=3&b=2&filter=p;q");
        assert_eq!(stripped("app_id=abc;app_id=abc"), "/x");
    }

    #[test]
    fn every_client_proxy_header_is_found_in_every_spelling() {
        for name in CLIENT_PROXY_HEADERS.iter().chain([&X_FORWARDED_FOR, &X_FORWARDED_HOST, &X_FORWARDED_PROTO]) {
            let underscored = HeaderName::from_bytes(name.as_str().replace('-', "_").as_bytes()).expect("name");
            let dotted = HeaderName::from_bytes(name.as_str().replace('-', ".").as_bytes()).expect("name");
            assert!(is_client_proxy_header(&underscored) && is_client_proxy_header(&dotted), "{name}");
            if CLIENT_PROXY_HEADERS.contains(name) {
                assert!(is_client_proxy_header(name), "{name}");
            }
        }
        for kept in ["x-forwarded-for", "x-kept", "content-type", "cookie", "user-agent", "x_kept"] {
            assert!(!is_client_proxy_header(&HeaderName::from_static(kept)), "{kept}");
        }
    }

    #[test]
    fn addresses_are_written_as_display_does() {
        for ip in ["0.0.0.0", "127.0.0.1", "10.20.100.255", "192.168.1.9", "::1", "2001:db8::7"] {
            let ip: IpAddr = ip.parse().expect("address");
            let mut out = String::new();
            push_ip(&mut out, ip);
            assert_eq!(out, ip.to_string());
        }
    }

    #[test]
    fn http2_cookies_become_one_field() {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_static("a=1"));
        headers.append(COOKIE, HeaderValue::from_static("b=2"));
        join_cookies(&mut headers);
        assert_eq!(headers.get_all(COOKIE).iter().collect::<Vec<_>>(), ["a=1; b=2"]);
        join_cookies(&mut headers);
        assert_eq!(headers.get_all(COOKIE).iter().collect::<Vec<_>>(), ["a=1; b=2"]);
    }

    #[test]
    fn hop_by_hop_headers_go() {
        let mut headers = HeaderMap::new();
        headers.insert(CONNECTION, HeaderValue::from_static("keep-alive, x-secret-hop"));
        headers.insert("x-secret-hop", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-kept"));
    }

    #[test]
    fn the_remembered_client_address_is_given_only_for_that_address() {
        for ip in ["127.0.0.1", "10.0.0.2", "10.0.0.2", "::1", "127.0.0.1", "127.0.0.10"] {
            let ip: IpAddr = ip.parse().expect("address");
            assert_eq!(client_address_field(ip).expect("field"), ip.to_string().as_str(), "{ip}");
        }
    }
}
