//! An upstream target as the contract names it, and the check of its URL.

use serde::{Deserialize, Serialize};

use crate::validation::ValidationError;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upstream {
    /// `http://` or `https://` origin plus optional path prefix.
    pub url: String,
}

pub(crate) fn check_upstream_url(url: &str, at: &str) -> Result<(), ValidationError> {
    check_url(url).map_err(|problem| ValidationError::new(at, format!("{url:?}: {problem}")))
}

/// The longest upstream URL.
pub const MAX_URL_LEN: usize = 2048;

/// Checks an upstream URL as every gateway can use it, with the problem in words:
/// `http://` or `https://` (lower case), a host (a name, an IPv4 address or a bracketed IPv6
/// one) with an optional port, and an optional path of URI characters. No user and
/// password (they would be sent as the `Host` header), query or fragment (the request's
/// own are appended), and ASCII only (a name in another script is given in its `xn--` form).
pub fn check_url(url: &str) -> Result<(), &'static str> {
    if url.len() > MAX_URL_LEN {
        return Err("use at most 2048 characters");
    }
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or("use an http:// or https:// URL (scheme in lower case)")?;
    let (authority, path) = rest.find('/').map_or((rest, ""), |at| rest.split_at(at));
    if authority.contains('@') {
        return Err("leave the user and password out of the URL");
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (address, after) = v6.split_once(']').ok_or("close the IPv6 address with ]")?;
            let valid = !address.is_empty() && address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
            if !valid {
                return Err("the IPv6 address has a character it cannot have");
            }
            match after {
                "" => (address, None),
                _ => (address, Some(after.strip_prefix(':').ok_or("put the port after the IPv6 address as :port")?)),
            }
        }
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return Err("name a host");
    }
    if !authority.starts_with('[') && !host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)) {
        return Err("the host name has a character it cannot have (use letters, digits, '.', '-' and '_')");
    }
    if let Some(port) = port {
        let digits = (1..=5).contains(&port.len()) && port.bytes().all(|b| b.is_ascii_digit());
        if !digits || !port.parse::<u32>().is_ok_and(|p| (1..=65_535).contains(&p)) {
            return Err("the port is a number from 1 to 65535");
        }
    }
    if path.contains(['?', '#']) {
        return Err("leave the query and fragment out: each request's own are sent");
    }
    let bytes = path.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b);
        let escape = b == b'%' && bytes.get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
        // The two digits after a `%` pass as plain characters.
        if !plain && !escape {
            return Err("the path has a character a URL cannot carry as is: percent-encode it");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_url;

    #[test]
    fn urls_every_gateway_can_use_pass() {
        for url in [
            "http://backend",
            "https://backend:8443/v1/",
            "http://10.0.0.7:80",
            "http://[::1]:8080/api",
            "http://[fe80::1]",
            "http://my_service.internal/a%20b/c;v=1",
            "http://xn--bcher-kva.example",
        ] {
            assert_eq!(check_url(url), Ok(()), "{url}");
        }
    }

    #[test]
    fn urls_a_gateway_would_refuse_or_misuse_are_refused() {
        for url in [
            "HTTP://backend",
            "ftp://backend",
            "http://",
            "http:///path",
            "http://user:secret@backend",
            "http://bücher.example",
            "http://backend/ä",
            "http://backend/a b",
            "http://backend/a<b",
            "http://backend/%zz",
            "http://backend/x?debug=1",
            "http://backend#top",
            "http://backend:0",
            "http://backend:65536",
            "http://backend:80a",
            "http://backend:",
            "http://[::1",
            "http://[::1]8080",
            "http://[zz::1]",
        ] {
            assert!(check_url(url).is_err(), "{url}");
        }
    }
}
