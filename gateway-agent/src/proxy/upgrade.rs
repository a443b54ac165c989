//! `Connection: Upgrade` requests (WebSocket and other HTTP/1.1 upgrades).
//!
//! An upgrade request is admitted like any other (routing, mapping rules, credentials,
//! limits) and counted once, in the class of the upstream's answer: the handshake is the call.
//! It goes upstream on a connection of its own with its `Connection: upgrade` and `Upgrade`
//! headers (the only hop-by-hop headers the agent passes on). On `101 Switching Protocols` the
//! agent answers the client with it and hands both connections to a [`tunnel`]; any other
//! answer is passed through as usual and the client's connection stays HTTP.
//!
//! `Upgrade: h2c` is not forwarded: it asks this hop for HTTP/2, which the agent speaks with
//! prior knowledge or ALPN instead. HTTP/2's extended CONNECT (RFC 8441) is not supported.

use std::net::SocketAddr;

use hyper::body::Incoming;
use hyper::header::{CONNECTION, HeaderValue, UPGRADE};
use hyper::http::request::Parts;
use hyper::upgrade::OnUpgrade;
use hyper::{Method, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;

use super::body::ClientBody;
use super::connections::UpstreamBody;
use super::reply::{Body, Refusal};
use super::{Admitted, Call, Proxy, Refused, body_bytes, forward};
use crate::tunnel::{self, Lease};

/// The request asks to switch this connection to another protocol, and the accept loop
/// leased the connection for it (so it can be tracked once upgraded).
pub(super) fn requested(parts: &Parts) -> bool {
    // The extension first: absent from every other request, and cheapest to ask.
    parts.extensions.get::<Lease>().is_some()
        && parts.version == Version::HTTP_11
        && parts.method != Method::CONNECT
        && connection_upgrade(parts)
        && parts.headers.get(UPGRADE).is_some_and(|protocols| !names_h2c(protocols))
}

/// `Connection` names `upgrade` (RFC 9110 §7.8: the upgrade is for this connection only).
fn connection_upgrade(parts: &Parts) -> bool {
    parts
        .headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

fn names_h2c(protocols: &HeaderValue) -> bool {
    // As bytes: a value with a byte beyond ASCII elsewhere still names h2c.
    protocols.as_bytes().split(|&b| b == b',').any(|p| p.trim_ascii().eq_ignore_ascii_case(b"h2c"))
}

impl Proxy {
    /// Upstream peer, the upgrade request, the exchange on a connection of its own, then the
    /// response filter (keeping the upgrade's headers) or the failure answer, and logging; on
    /// `101`, the tunnel.
    pub(super) async fn proxy_upgrade(
        &self,
        call: &mut Call<'_>,
        admitted: Admitted<'_>,
        mut parts: Parts,
        body: Incoming,
        rest_offset: usize,
        peer: SocketAddr,
    ) -> Response<Body> {
        let api = call.api;
        let target = match self.upstream_peer(call, admitted.app) {
            Ok(target) => target,
            Err(Refused(refusal)) => return self.refuse(call, refusal),
        };
        let (Some(client_side), Some(lease), Some(protocols)) = (
            parts.extensions.remove::<OnUpgrade>(),
            parts.extensions.remove::<Lease>(),
            parts.headers.get(UPGRADE).cloned(),
        ) else {
            return self.refuse(call, Refusal::UpstreamUnavailable);
        };
        let (body, watch) = ClientBody::watch(body);
        let forwarded = forward::Client { ip: peer.ip(), proto: &self.forwarded_proto };
        let mut request =
            match forward::upstream_request(parts, call.uri, body, target, rest_offset, &api.auth, forwarded) {
                Ok(request) => request,
                Err(err) => {
                    tracing::warn!(api = %api.slug, error = %err, "cannot build the upstream upgrade request");
                    return self.refuse(call, Refusal::UpstreamUnavailable);
                }
            };
        if let Some(trace) = &call.trace {
            trace.propagate(request.headers_mut());
        }
        upgrade_headers(request.headers_mut(), protocols);
        self.usage.last_used.record(&admitted.hash, admitted.credential, call.received);
        let exchange = tokio::time::timeout(
            self.upstream_timeout,
            self.connections.send_upgrade(&target.authority, target.is_tls(), request),
        );
        let mut response = match exchange.await {
            Ok(Ok(response)) => response,
            Err(_) => return self.refuse(call, self.failure_answer(call, target, &watch, None)),
            Ok(Err(err)) => return self.refuse(call, self.failure_answer(call, target, &watch, Some(err))),
        };
        let status = response.status();
        if !super::is_valid_status(status) {
            return self.invalid_status(call, target, status);
        }
        if matches!(status.as_u16(), 502..=504) {
            target.failed();
        } else {
            target.succeeded();
        }
        let switched = (status == StatusCode::SWITCHING_PROTOCOLS)
            .then(|| response.headers().get(UPGRADE).cloned())
            .flatten()
            .map(|protocol| (protocol, hyper::upgrade::on(&mut response)));
        let answered = self.clock.now();
        let bytes = body_bytes(&response);
        let mut response = self.response_filter(call, response.map(UpstreamBody::Pooled), answered);
        match switched {
            Some((protocol, upstream_side)) => {
                upgrade_headers(response.headers_mut(), protocol);
                let idle = self.upgrade_idle_timeout;
                tokio::spawn(async move {
                    // The client's side is handed over once hyper has written the 101.
                    let (Ok(client), Ok(upstream)) = tokio::join!(client_side, upstream_side) else {
                        return;
                    };
                    let ended = tunnel::splice(TokioIo::new(client), TokioIo::new(upstream), idle, lease).await;
                    tracing::debug!(?ended, "upgraded connection ended");
                });
            }
            // A 101 without `Upgrade` is malformed: not switched to anything.
            None if status == StatusCode::SWITCHING_PROTOCOLS => {
                tracing::debug!(api = %api.slug, "the upstream switched protocols without naming one");
                return self.refuse(call, Refusal::UpstreamUnavailable);
            }
            None => {}
        }
        let id = super::request_id(call, status, response.headers_mut());
        self.logging(call, &admitted, Some(target), super::Answer { status, bytes, request_id: id });
        response
    }
}

/// The two headers that carry an upgrade across one hop.
fn upgrade_headers(headers: &mut hyper::HeaderMap, protocol: HeaderValue) {
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, protocol);
}
