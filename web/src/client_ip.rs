//! Which address a request came from, for the throttles. The peer address
//! of the connection, unless that peer is a proxy the operator trusts
//! (`TOLLGATE_TRUSTED_PROXIES`): then the client that proxy names in
//! `X-Forwarded-For`. Without trusted proxies the header is ignored, since
//! anyone can send it.

use std::future::{Ready, ready};
use std::net::{IpAddr, Ipv4Addr};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use tollgate_core::accounts::ClientAddress;

/// One trusted proxy address or network, `203.0.113.7` or `10.0.0.0/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    fn parse(raw: &str) -> Result<Network, String> {
        let (addr, prefix) = match raw.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (raw, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| format!("`{raw}` is not an IP address or network"))?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{raw}`: the prefix length must be 0 to {max}"))?,
            None => max,
        };
        Ok(Network { addr, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The proxies whose `X-Forwarded-For` is believed (app data).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Network>);

impl TrustedProxies {
    /// A comma-separated list of addresses and networks; empty for none.
    pub fn parse(list: &str) -> Result<TrustedProxies, String> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Network::parse)
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }

    /// The client of a request from `peer` with these `X-Forwarded-For`
    /// values: walking from the peer back along the chain, the first
    /// address that is not a trusted proxy. Entries a client wrote itself
    /// sit further left and are never reached past an untrusted hop.
    fn client(&self, peer: IpAddr, forwarded_for: &[&str]) -> IpAddr {
        let mut client = peer;
        if !self.trusts(peer) {
            return client;
        }
        let chain = forwarded_for.iter().flat_map(|v| v.split(',')).map(str::trim);
        for hop in chain.collect::<Vec<_>>().into_iter().rev() {
            let Some(ip) = parse_hop(hop) else { return client };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// An `X-Forwarded-For` entry: an address, maybe with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    hop.rsplit_once(':').and_then(|(host, _)| host.parse::<Ipv4Addr>().ok()).map(IpAddr::V4)
}

/// The request's client address (an extractor).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub ClientAddress);

impl FromRequest for ClientIp {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // A request always has a peer over TCP; a test request may not.
        let peer = req.peer_addr().map(|a| a.ip()).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let ip = match req.app_data::<web::Data<TrustedProxies>>() {
            Some(proxies) => {
                let values: Vec<&str> =
                    req.headers().get_all("x-forwarded-for").filter_map(|v| v.to_str().ok()).collect();
                proxies.client(peer, &values)
            }
            None => peer,
        };
        ready(Ok(ClientIp(ClientAddress::new(ip))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        let none = TrustedProxies::parse("").unwrap();
        assert_eq!(none.client(ip("198.51.100.1"), &["203.0.113.9"]), ip("198.51.100.1"));
    }

    #[test]
    fn a_trusted_proxy_names_the_client_but_a_client_cannot_name_itself() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, ::1").unwrap();
        assert_eq!(proxies.client(ip("10.1.2.3"), &["203.0.113.9"]), ip("203.0.113.9"));
        // The client sent its own header; the proxy appended the real address.
        assert_eq!(proxies.client(ip("10.1.2.3"), &["1.1.1.1, 203.0.113.9"]), ip("203.0.113.9"));
        // Two trusted hops.
        assert_eq!(proxies.client(ip("::1"), &["203.0.113.9", "10.0.0.5"]), ip("203.0.113.9"));
        // From an untrusted peer the header means nothing.
        assert_eq!(proxies.client(ip("198.51.100.1"), &["203.0.113.9"]), ip("198.51.100.1"));
        // Garbage stops the walk at the last good hop.
        assert_eq!(proxies.client(ip("10.1.2.3"), &["nonsense"]), ip("10.1.2.3"));
        assert_eq!(proxies.client(ip("10.1.2.3"), &["203.0.113.9:4711"]), ip("203.0.113.9"));
    }

    #[test]
    fn bad_entries_are_explained() {
        for bad in ["10.0.0.0/33", "nonsense", "::/129"] {
            assert!(TrustedProxies::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(TrustedProxies::parse(" 127.0.0.1 ,").unwrap().0.len(), 1);
    }
}
