//! One proxy worker's upstream connections: hyper's connection-level HTTP/1 client and a small
//! pool of senders per upstream.
//!
//! Each worker runs on its own single-threaded runtime, so its connections are driven by the
//! same thread that accepted the client's: a request never crosses threads. The pool is a
//! list per upstream authority; a sender goes back into it as soon as the response head
//! arrives and is taken again only once hyper says the connection is ready (its previous
//! response body was read to the end), so a list holds both busy and idle connections, up to
//! [`MAX_PER_UPSTREAM`]. Connections the upstream closed are dropped when met.

use std::sync::Mutex;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::http::uri::Authority;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::body::ClientBody;

/// Connections kept per upstream and worker; beyond, a connection is closed once its answer
/// is read.
const MAX_PER_UPSTREAM: usize = 256;

/// Why an upstream exchange failed.
pub(crate) enum UpstreamError {
    /// No connection could be opened (refused, unreachable, connect timeout).
    Connect,
    /// The connection failed during the exchange.
    Exchange(hyper::Error),
}

pub(crate) struct Connections {
    connect_timeout: Duration,
    /// Senders per upstream authority. An agent has few upstreams: a list beats hashing.
    /// The mutex is never contended (one worker thread) and is required only because the
    /// accept loop's tasks are `Send`.
    pools: Mutex<Vec<(Authority, Vec<SendRequest<ClientBody>>)>>,
}

impl Connections {
    pub fn new(connect_timeout: Duration) -> Connections {
        Connections { connect_timeout, pools: Mutex::new(Vec::new()) }
    }

    /// Sends `request` (origin-form, with its `Host`) on a ready pooled connection, or a new
    /// one. A request that a pooled connection could not take before writing it (the
    /// upstream closed it meanwhile) is retried once on a new connection.
    pub async fn send(
        &self,
        authority: &Authority,
        mut request: Request<ClientBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        if let Some(mut sender) = self.checkout(authority) {
            match sender.try_send_request(request).await {
                Ok(response) => {
                    self.checkin(authority, sender);
                    return Ok(response);
                }
                Err(mut failed) => match failed.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Err(UpstreamError::Exchange(failed.into_error())),
                },
            }
        }
        let mut sender = self.connect(authority).await?;
        let response = sender.send_request(request).await.map_err(UpstreamError::Exchange)?;
        self.checkin(authority, sender);
        Ok(response)
    }

    fn checkout(&self, authority: &Authority) -> Option<SendRequest<ClientBody>> {
        let mut pools = self.pools.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (_, senders) = pools.iter_mut().find(|(known, _)| known == authority)?;
        let mut index = senders.len();
        while index > 0 {
            index -= 1;
            if senders[index].is_closed() {
                senders.swap_remove(index);
            } else if senders[index].is_ready() {
                return Some(senders.swap_remove(index));
            }
        }
        None
    }

    fn checkin(&self, authority: &Authority, sender: SendRequest<ClientBody>) {
        let mut pools = self.pools.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match pools.iter_mut().find(|(known, _)| known == authority) {
            Some((_, senders)) if senders.len() < MAX_PER_UPSTREAM => senders.push(sender),
            Some(_) => {}
            None => pools.push((authority.clone(), vec![sender])),
        }
    }

    /// Sends an upgrade request (WebSocket) on a connection of its own, never pooled: after a
    /// `101` the connection belongs to the tunnel (`hyper::upgrade::on` on the response).
    pub async fn send_upgrade(
        &self,
        authority: &Authority,
        request: Request<ClientBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let stream = self.open(authority).await?;
        let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await.map_err(UpstreamError::Exchange)?;
        tokio::spawn(async move {
            if let Err(err) = connection.with_upgrades().await {
                tracing::debug!(error = %err, "upstream upgrade connection ended with an error");
            }
        });
        sender.send_request(request).await.map_err(UpstreamError::Exchange)
    }

    async fn open(&self, authority: &Authority) -> Result<TcpStream, UpstreamError> {
        // `[::1]` is the authority's spelling; the resolver wants the bare address.
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(80);
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| UpstreamError::Connect)?
            .map_err(|_| UpstreamError::Connect)?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    async fn connect(&self, authority: &Authority) -> Result<SendRequest<ClientBody>, UpstreamError> {
        let stream = self.open(authority).await?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.map_err(UpstreamError::Exchange)?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }
}
