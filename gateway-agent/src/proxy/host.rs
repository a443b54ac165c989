//! The host a request is for: the request target's authority when it is in absolute form
//! (`GET http://host/path`, RFC 9112 §3.2.2), else the `Host` header. A request with more
//! than one `Host`, an invalid one, or (HTTP/1.1) none is refused with 400 `invalid_host`, as
//! RFC 9112 §3.2 requires: routing and the upstream's `X-Forwarded-Host` must rest on one
//! well-formed value.

use std::borrow::Cow;
use std::cell::RefCell;

use hyper::Version;
use hyper::header::HOST;
use hyper::http::request::Parts;

/// The request's `host[:port]`, as sent (validated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RequestHost<'a>(&'a str);

/// The request's host is missing, repeated or malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct InvalidHost;

impl<'a> RequestHost<'a> {
    pub fn of(parts: &'a Parts) -> Result<Option<RequestHost<'a>>, InvalidHost> {
        let mut values = parts.headers.get_all(HOST).iter();
        let header = values.next();
        if values.next().is_some() {
            return Err(InvalidHost);
        }
        let header = match header {
            Some(value) => Some(value.to_str().ok().filter(|v| is_authority(v)).ok_or(InvalidHost)?),
            None => None,
        };
        if let Some(authority) = parts.uri.authority() {
            let authority = authority.as_str();
            return if is_authority(authority) { Ok(Some(RequestHost(authority))) } else { Err(InvalidHost) };
        }
        if header.is_none() && parts.version >= Version::HTTP_11 {
            return Err(InvalidHost);
        }
        Ok(header.map(RequestHost))
    }

    /// One header value naming the host (a decision request's `Host` or `X-Forwarded-Host`).
    pub fn parse(value: &'a hyper::header::HeaderValue) -> Result<RequestHost<'a>, InvalidHost> {
        value.to_str().ok().filter(|v| is_authority(v)).map(RequestHost).ok_or(InvalidHost)
    }

    /// The host without port and trailing dot, lowercased (allocating only if it was not
    /// already), for routing.
    pub fn name(self) -> Cow<'a, str> {
        let raw = self.0;
        let host = if raw.starts_with('[') {
            raw.split_inclusive(']').next().unwrap_or(raw)
        } else {
            raw.rsplit_once(':').map_or(raw, |(host, _port)| host)
        };
        let host = host.trim_end_matches('.');
        if host.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(host.to_ascii_lowercase())
        } else {
            Cow::Borrowed(host)
        }
    }
}

/// Longest authority remembered as valid by [`is_authority`].
const REMEMBERED_MAX: usize = 64;

thread_local! {
    /// The last authority found valid on this thread, and its length (0: none yet). A client's
    /// connection sends the same `Host` with every request, and checking it (labels, then an
    /// IPv4 address) cost about 2.5 % of a proxied request's instructions.
    static LAST_VALID: RefCell<([u8; REMEMBERED_MAX], usize)> = const { RefCell::new(([0; REMEMBERED_MAX], 0)) };
}

/// `host [":" port]` where host is a DNS-style name (letters, digits, `-`, `_`, `.`), an IPv4
/// address or a bracketed IPv6 literal, and port is 0–65535.
fn is_authority(value: &str) -> bool {
    let bytes = value.as_bytes();
    let remembered = LAST_VALID.with_borrow(|(last, len)| *len != 0 && last.get(..*len) == Some(bytes));
    if remembered {
        return true;
    }
    let valid = check_authority(value);
    if valid && (1..=REMEMBERED_MAX).contains(&bytes.len()) {
        LAST_VALID.with_borrow_mut(|(last, len)| {
            last[..bytes.len()].copy_from_slice(bytes);
            *len = bytes.len();
        });
    }
    valid
}

fn check_authority(value: &str) -> bool {
    let (host_ok, port) = match value.strip_prefix('[') {
        Some(rest) => {
            let Some((literal, after)) = rest.split_once(']') else {
                return false;
            };
            let port = match after {
                "" => None,
                _ => match after.strip_prefix(':') {
                    Some(port) => Some(port),
                    None => return false,
                },
            };
            (is_ipv6_literal(literal), port)
        }
        None => match value.split_once(':') {
            Some((host, port)) => (is_host_name(host), Some(port)),
            None => (is_host_name(value), None),
        },
    };
    host_ok && port.is_none_or(is_port)
}

/// Labels of letters, digits, `-` (not first or last) and `_`, 1–63 bytes, with at most a
/// trailing dot; a name whose last label is numeric (`1.2.3.999`, `0x7f.1`), which URL
/// parsers read as an IPv4 address, must be a dotted-quad one.
fn is_host_name(host: &str) -> bool {
    let name = host.strip_suffix('.').unwrap_or(host);
    let labels_ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        });
    if !labels_ok {
        return false;
    }
    let last = name.rsplit('.').next().unwrap_or(name);
    let numeric = last.bytes().all(|b| b.is_ascii_digit())
        || last
            .strip_prefix("0x")
            .or_else(|| last.strip_prefix("0X"))
            .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()));
    !numeric || name.parse::<std::net::Ipv4Addr>().is_ok()
}

fn is_ipv6_literal(literal: &str) -> bool {
    literal.contains(':') && literal.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
}

fn is_port(port: &str) -> bool {
    (1..=5).contains(&port.len())
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u32>().is_ok_and(|n| n <= 65_535)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities() {
        for ok in [
            "api.example.com",
            "API.Example.com:8080",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:8081",
            "my_host",
            "h.",
            "x-1.example",
            "10.0.0.1.",
            "a.b2",
        ] {
            assert!(is_authority(ok), "{ok}");
        }
        for bad in [
            "",
            ":80",
            "a:",
            "a:99999",
            "a:8x",
            "a b",
            "a@b",
            "a/b",
            "[::1",
            "[]",
            "[x]",
            "[::1]x",
            "a:1:2",
            "é.com",
            "a%2eb",
            ".",
            "..",
            "a..b",
            ".a",
            "-evil_",
            "a-.b",
            "1.2.3.999",
            "0x7f.1",
            "127.1",
            "1.2.3.04",
            &"a".repeat(64),
        ] {
            assert!(!is_authority(bad), "{bad}");
        }
    }

    #[test]
    fn only_the_exact_authority_last_found_valid_is_remembered() {
        assert!(is_authority("api.example.com:8080"));
        for bad in ["api.example.com:80800", "api.example.com:808", "api.example.com:8080 ", "api.example.com:8080\0"] {
            assert_eq!(is_authority(bad), check_authority(bad), "{bad}");
        }
        assert!(!is_authority("api.example.com:80800"));
        assert!(!is_authority(""), "the empty value is not the empty memory");
        let long = format!("{}.example", "a".repeat(60));
        assert!(is_authority(&long) && is_authority(&long), "longer than remembered: checked each time");
        assert!(!is_authority(&format!("{long}:")), "{long}:");
    }

    #[test]
    fn names_for_routing() {
        assert_eq!(RequestHost("API.example.com.:8080").name(), "api.example.com");
        assert_eq!(RequestHost("[::1]:80").name(), "[::1]");
        assert!(matches!(RequestHost("plain").name(), Cow::Borrowed("plain")));
    }
}
