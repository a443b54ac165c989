//! One proxy worker's upstream connections: hyper's connection-level HTTP/1 client and a small
//! pool of senders per upstream.
//!
//! Each worker runs on its own single-threaded runtime, so its connections are driven by the
//! same thread that accepted the client's: a request never crosses threads. The pool is a
//! list per upstream authority; a sender goes back into it as soon as the response head
//! arrives and is taken again only once hyper says the connection is ready (its previous
//! response body was read to the end), so a list holds both busy and idle connections, up to
//! [`MAX_PER_UPSTREAM`]. Connections the upstream closed are dropped when met. `https://`
//! upstreams have pools of their own, of connections made through
//! [`crate::tls::upstream`].

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::http::uri::Authority;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use super::body::ClientBody;
use crate::tls::upstream::UpstreamTls;

/// Connections kept per upstream and worker; beyond, a connection is closed once its answer
/// is read.
const MAX_PER_UPSTREAM: usize = 256;

/// Why an upstream exchange failed.
pub(crate) enum UpstreamError {
    /// No connection could be opened (refused, unreachable, connect timeout).
    Connect,
    /// The connection failed during the exchange.
    Exchange(hyper::Error),
    /// The TLS handshake failed: the upstream's certificate was not verified, or it refused
    /// the agent's.
    Tls(std::io::Error),
}

/// The upstream did not answer by the deadline.
pub(crate) struct TimedOut;

/// An upstream's pool key: its authority, and whether it speaks TLS.
type Peer = (Authority, bool);

/// A pooled connection and the timer of its exchanges. The timer is moved to each
/// exchange's deadline: a later deadline only updates the timer's state, and tokio moves it
/// in its wheel when the earlier one comes, where a timer per request was filed in the wheel
/// and taken out again every time. An idle connection's timer fires once, at its last
/// deadline, waking the task of its last exchange for nothing.
struct Pooled {
    sender: SendRequest<ClientBody>,
    timer: Pin<Box<Sleep>>,
}

pub(crate) struct Connections {
    connect_timeout: Duration,
    /// Senders per upstream authority. An agent has few upstreams: a list beats hashing.
    /// The mutex is never contended (one worker thread) and is required only because the
    /// accept loop's tasks are `Send`.
    pools: Mutex<Vec<(Peer, Vec<Pooled>)>>,
    tls: Arc<UpstreamTls>,
}

impl Connections {
    pub fn new(connect_timeout: Duration, tls: Arc<UpstreamTls>) -> Connections {
        Connections { connect_timeout, pools: Mutex::new(Vec::new()), tls }
    }

    pub fn tls(&self) -> &UpstreamTls {
        &self.tls
    }

    /// Sends `request` (origin-form, with its `Host`) on a ready pooled connection, or a new
    /// one, until its response head or `timeout` after now. A request that a pooled
    /// connection could not take before writing it (the upstream closed it meanwhile) is
    /// retried once on a new connection, within the same deadline.
    pub async fn send(
        &self,
        authority: &Authority,
        tls: bool,
        mut request: Request<ClientBody>,
        timeout: Duration,
    ) -> Result<Result<Response<Incoming>, UpstreamError>, TimedOut> {
        let deadline = Instant::now() + timeout;
        if let Some(mut pooled) = self.checkout(authority, tls) {
            pooled.timer.as_mut().reset(deadline);
            let sent = tokio::select! {
                biased;
                sent = pooled.sender.try_send_request(request) => sent,
                () = pooled.timer.as_mut() => return Err(TimedOut),
            };
            match sent {
                Ok(response) => {
                    self.checkin(authority, tls, pooled);
                    return Ok(Ok(response));
                }
                Err(mut failed) => match failed.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Ok(Err(UpstreamError::Exchange(failed.into_error()))),
                },
            }
        }
        // Boxed: connecting (and a TLS handshake) takes kilobytes of future, which would
        // otherwise be part of every request's future, moved whole into hyper's dispatcher.
        Box::pin(self.send_on_new(authority, tls, request, deadline)).await
    }

    /// Sends `request` on a new connection until `deadline`, pooled after its answer with
    /// the timer that measured it.
    async fn send_on_new(
        &self,
        authority: &Authority,
        tls: bool,
        request: Request<ClientBody>,
        deadline: Instant,
    ) -> Result<Result<Response<Incoming>, UpstreamError>, TimedOut> {
        let mut timer = Box::pin(tokio::time::sleep_until(deadline));
        let opened = tokio::select! {
            biased;
            opened = self.open(authority, tls, false) => opened,
            () = timer.as_mut() => return Err(TimedOut),
        };
        let mut sender = match opened {
            Ok(sender) => sender,
            Err(err) => return Ok(Err(err)),
        };
        let sent = tokio::select! {
            biased;
            sent = sender.send_request(request) => sent,
            () = timer.as_mut() => return Err(TimedOut),
        };
        match sent {
            Ok(response) => {
                self.checkin(authority, tls, Pooled { sender, timer });
                Ok(Ok(response))
            }
            Err(err) => Ok(Err(UpstreamError::Exchange(err))),
        }
    }

    fn checkout(&self, authority: &Authority, tls: bool) -> Option<Pooled> {
        let mut pools = self.pools.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (_, connections) = pools.iter_mut().find(|(known, _)| same_peer(known, authority, tls))?;
        let mut index = connections.len();
        while index > 0 {
            index -= 1;
            if connections[index].sender.is_closed() {
                connections.swap_remove(index);
            } else if connections[index].sender.is_ready() {
                return Some(connections.swap_remove(index));
            }
        }
        None
    }

    fn checkin(&self, authority: &Authority, tls: bool, pooled: Pooled) {
        let mut pools = self.pools.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match pools.iter_mut().find(|(known, _)| same_peer(known, authority, tls)) {
            Some((_, connections)) if connections.len() < MAX_PER_UPSTREAM => connections.push(pooled),
            Some(_) => {}
            None => pools.push(((authority.clone(), tls), vec![pooled])),
        }
    }

    /// Sends an upgrade request (WebSocket) on a connection of its own, never pooled: after a
    /// `101` the connection belongs to the tunnel (`hyper::upgrade::on` on the response).
    pub async fn send_upgrade(
        &self,
        authority: &Authority,
        tls: bool,
        request: Request<ClientBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let mut sender = self.open(authority, tls, true).await?;
        sender.send_request(request).await.map_err(UpstreamError::Exchange)
    }

    /// A new connection; `upgrades` keeps it able to switch protocols after a `101`.
    async fn open(
        &self,
        authority: &Authority,
        tls: bool,
        upgrades: bool,
    ) -> Result<SendRequest<ClientBody>, UpstreamError> {
        // `[::1]` is the authority's spelling; the resolver wants the bare address.
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let started = Instant::now();
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| UpstreamError::Connect)?
            .map_err(|_| UpstreamError::Connect)?;
        let _ = stream.set_nodelay(true);
        if !tls {
            return handshake(stream, upgrades).await;
        }
        // The connect timeout covers the TLS handshake too.
        let left = self.connect_timeout.saturating_sub(started.elapsed());
        let stream = tokio::time::timeout(left, self.tls.connect(authority, stream))
            .await
            .map_err(|_| UpstreamError::Connect)?
            .map_err(UpstreamError::Tls)?;
        handshake(stream, upgrades).await
    }
}

/// Whether `known` is the pool of `authority` and `tls`. A pool's authority is a clone of its
/// target's, sharing its text, so the same text is found by address first; `Authority`'s own
/// comparison (case-insensitive, byte by byte) decides otherwise (targets rebuilt by a reload).
fn same_peer((known, known_tls): &Peer, authority: &Authority, tls: bool) -> bool {
    *known_tls == tls && (std::ptr::eq(known.as_str(), authority.as_str()) || known == authority)
}

/// The HTTP/1 handshake on a new upstream connection, whose driver runs on its own task.
async fn handshake<I>(io: I, upgrades: bool) -> Result<SendRequest<ClientBody>, UpstreamError>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) = http1::handshake(TokioIo::new(io)).await.map_err(UpstreamError::Exchange)?;
    tokio::spawn(async move {
        let ended = if upgrades { connection.with_upgrades().await } else { connection.await };
        if let Err(err) = ended {
            tracing::debug!(error = %err, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}
