//! Where deliveries may go: `http(s)` URLs only, and by default never to a
//! private, loopback or link-local address (the server must not become a way
//! into the network it runs in). Every address the host resolves to is checked,
//! and the request is pinned to those addresses, so DNS cannot change its answer
//! between the check and the connection.

use std::net::{IpAddr, SocketAddr};

use reqwest::Url;

use crate::{Error, Result};

/// Whether private and loopback targets are allowed (`TOLLGATE_WEBHOOKS_ALLOW_PRIVATE`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    pub allow_private: bool,
}

/// The longest URL a subscription may have.
pub const MAX_URL_LEN: usize = 2000;

/// A subscription's URL, checked as far as can be without DNS: an `http` or
/// `https` URL with a host, no credentials, and no private address literal.
pub fn parse_url(raw: &str, policy: TargetPolicy) -> Result<Url> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(Error::invalid("url", "enter the URL to deliver to, e.g. https://example.com/hooks"));
    }
    let too_long = || Error::invalid("url", format!("use at most {MAX_URL_LEN} characters"));
    if raw.chars().count() > MAX_URL_LEN {
        return Err(too_long());
    }
    let url = Url::parse(raw).map_err(|e| Error::invalid("url", format!("not a URL ({e})")))?;
    // Percent-encoding and punycode can lengthen it; the stored form must fit too.
    if url.as_str().len() > MAX_URL_LEN {
        return Err(too_long());
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::invalid("url", "only http:// and https:// URLs can receive webhooks"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::invalid("url", "put no credentials in the URL; verify the signature instead"));
    }
    let Some(host) = url.host_str() else {
        return Err(Error::invalid("url", "the URL has no host"));
    };
    if !policy.allow_private {
        // The URL parser has normalised address literals (`0x7f.1` is `127.0.0.1`).
        // A trailing dot is the same name, fully qualified (`localhost.`).
        let bare = host.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase();
        let localhost = bare == "localhost" || bare.ends_with(".localhost");
        if localhost || bare.parse::<IpAddr>().is_ok_and(|ip| !is_public(ip)) {
            return Err(private_error());
        }
    }
    Ok(url)
}

fn private_error() -> Error {
    Error::invalid(
        "url",
        "private, loopback and link-local addresses cannot receive webhooks (TOLLGATE_WEBHOOKS_ALLOW_PRIVATE allows them)",
    )
}

/// The addresses to connect to for `url`, every one of them allowed by `policy`.
pub async fn resolve(url: &Url, policy: TargetPolicy) -> std::result::Result<Vec<SocketAddr>, String> {
    let host = url.host_str().ok_or("the URL has no host")?;
    let port = url.port_or_known_default().ok_or("the URL has no port")?;
    // `host_str` keeps IPv6 literals in brackets; lookup_host wants them bare.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> =
        tokio::net::lookup_host((host, port)).await.map_err(|e| format!("cannot resolve {host}: {e}"))?.collect();
    if addrs.is_empty() {
        return Err(format!("{host} resolves to no address"));
    }
    if !policy.allow_private
        && let Some(bad) = addrs.iter().find(|a| !is_public(a.ip()))
    {
        return Err(format!("{host} resolves to {}, a private address; refused", bad.ip()));
    }
    Ok(addrs)
}

/// An address on the public internet: not private, loopback, link-local,
/// shared (CGNAT), documentation, multicast, unspecified or reserved.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
                || (a == 198 && (b == 18 || b == 19)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let [first, second, ..] = v6.segments();
            let o = v6.octets();
            // IPv4-compatible (`::a.b.c.d`) and 6to4 (`2002:aabb:ccdd::`) addresses carry an
            // IPv4 address that a host may route to.
            if v6.segments()[..6] == [0; 6] {
                return is_public(IpAddr::V4(std::net::Ipv4Addr::new(o[12], o[13], o[14], o[15])));
            }
            if first == 0x2002 {
                return is_public(IpAddr::V4(std::net::Ipv4Addr::new(o[2], o[3], o[4], o[5])));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || v6.is_unique_local()
                || v6.is_unicast_link_local()
                || first == 0x2001 && second == 0x0db8
                || first == 0x0064 && second == 0xff9b)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: TargetPolicy = TargetPolicy { allow_private: false };
    const LOOSE: TargetPolicy = TargetPolicy { allow_private: true };

    #[test]
    fn only_http_urls_without_private_literals_pass() {
        assert!(parse_url("https://hooks.example.com/in", STRICT).is_ok());
        for bad in [
            "ftp://example.com/",
            "file:///etc/passwd",
            "https://user:pw@example.com/",
            "http://127.0.0.1:9000/",
            "http://10.1.2.3/",
            "http://[::1]/",
            "http://169.254.169.254/latest/meta-data",
            "http://localhost:8080/",
            "http://localhost./x",
            "http://api.localhost./x",
            "http://[::ffff:192.168.0.1]/",
            // IPv4 addresses inside IPv6 ones, and IETF protocol assignments.
            "http://[::127.0.0.1]/",
            "http://[::a9fe:a9fe]/",
            "http://[2002:7f00:1::]/",
            "http://[2002:a9fe:a9fe::1]/",
            "http://[64:ff9b:1::a00:1]/",
            "http://192.0.0.8/",
            "not a url",
            "",
        ] {
            let err = parse_url(bad, STRICT).expect_err(bad);
            assert!(err.to_string().starts_with("url: "), "{bad}: {err}");
        }
        assert!(parse_url("http://127.0.0.1:9000/", LOOSE).is_ok());
        // 1,990 characters that percent-encode to three times as many.
        let spaces = format!("https://example.com/{}x", " ".repeat(1970));
        assert_eq!(parse_url(&spaces, STRICT).unwrap_err().to_string(), "url: use at most 2000 characters");
        assert!(parse_url("ftp://127.0.0.1/", LOOSE).is_err());
    }

    #[tokio::test]
    async fn resolved_addresses_are_checked() {
        let url = Url::parse("http://127.0.0.1:9/").unwrap();
        assert!(resolve(&url, STRICT).await.unwrap_err().contains("private"));
        assert_eq!(resolve(&url, LOOSE).await.unwrap(), vec!["127.0.0.1:9".parse().unwrap()]);
    }
}
