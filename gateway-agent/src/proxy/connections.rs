//! One proxy worker's upstream connections.
//!
//! Each worker runs on its own single-threaded runtime, so its connections are driven by the
//! same thread that accepted the client's: a request never crosses threads. A request without
//! a body is exchanged on the request's own task ([`super::direct`]), over a list of idle
//! connections per upstream. A request with a body goes through hyper's connection-level
//! HTTP/1 client, whose connections run on tasks of their own, with a small pool of senders
//! per upstream: a sender goes back into it as soon as the response head arrives and is taken
//! again only once hyper says the connection is ready (its previous response body was read to
//! the end), so a list holds both busy and idle connections, up to [`MAX_PER_UPSTREAM`].
//! Connections the upstream closed are dropped when met. `https://` upstreams have pools of
//! their own, of connections made through [`crate::tls::upstream`].

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt as _;
use futures_util::future::Either;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::http::uri::Authority;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use super::body::ClientBody;
use super::direct::{self, Conn, Failed, Flusher, Idle, Peer, Reply, Stream, same_peer};
use crate::tls::upstream::UpstreamTls;

/// Connections kept per upstream and worker; beyond, a connection is closed once its answer
/// is read.
const MAX_PER_UPSTREAM: usize = 256;

/// Why an upstream exchange failed.
pub(crate) enum UpstreamError {
    /// No connection could be opened (refused, unreachable, connect timeout).
    Connect,
    /// The agent itself could not open a socket (out of file descriptors or local ports):
    /// nothing is known of the upstream, which must not be taken out of rotation for it.
    Local(std::io::Error),
    /// The connection failed during the exchange, or the answer was not valid HTTP.
    Exchange(Box<dyn std::error::Error + Send + Sync>),
    /// The TLS handshake failed: the upstream's certificate was not verified, or it refused
    /// the agent's.
    Tls(std::io::Error),
}

/// The upstream did not answer by the deadline.
pub(crate) struct TimedOut;

/// An upstream's answer body: read on the request's task, or through hyper's client.
pub(crate) enum UpstreamBody {
    Direct(Reply),
    Pooled(Incoming),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            UpstreamBody::Direct(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            UpstreamBody::Pooled(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Direct(body) => body.is_end_stream(),
            UpstreamBody::Pooled(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Direct(body) => body.size_hint(),
            UpstreamBody::Pooled(body) => body.size_hint(),
        }
    }
}

/// Whether a request may be sent again after its connection closed without an answer
/// (RFC 9110 §9.2.2).
fn idempotent(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE)
}

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
    /// Idle connections for requests without a body; shared with the answers being read, which
    /// put their connection back.
    idle: Arc<Idle>,
    /// Writes the request heads of this worker's plain direct connections, in batches.
    flusher: Arc<Flusher>,
    tls: Arc<UpstreamTls>,
}

impl Connections {
    pub fn new(connect_timeout: Duration, tls: Arc<UpstreamTls>) -> Connections {
        Connections {
            connect_timeout,
            pools: Mutex::new(Vec::new()),
            idle: Arc::default(),
            flusher: Arc::default(),
            tls,
        }
    }

    pub fn tls(&self) -> &UpstreamTls {
        &self.tls
    }

    /// Sends `request` (origin-form, with its `Host`) on an idle or ready pooled connection,
    /// or a new one, until its response head or `timeout` after now. A request that a pooled
    /// connection could not take (the upstream closed it meanwhile) is retried once on a new
    /// connection, within the same deadline: always if it was not written, and if it was,
    /// when nothing came back and the request is idempotent.
    ///
    /// Not an `async fn`: one would hold the request twice, as its argument and inside the
    /// exchange's future, and this future is part of every request's (moved whole by hyper).
    pub fn send<'a>(
        &'a self,
        authority: &'a Authority,
        tls: bool,
        request: Request<ClientBody>,
        timeout: Duration,
    ) -> impl Future<Output = Result<Result<Response<UpstreamBody>, UpstreamError>, TimedOut>> + 'a {
        let deadline = Instant::now() + timeout;
        if request.body().is_end_stream() {
            let (parts, _) = request.into_parts();
            return Either::Left(self.send_direct(authority, tls, parts, deadline));
        }
        Either::Right(
            self.send_pooled(authority, tls, request, deadline)
                .map(|answer| answer.map(|answer| answer.map(|response| response.map(UpstreamBody::Pooled)))),
        )
    }

    /// A request without a body, exchanged on this task.
    async fn send_direct(
        &self,
        authority: &Authority,
        tls: bool,
        mut parts: hyper::http::request::Parts,
        deadline: Instant,
    ) -> Result<Result<Response<UpstreamBody>, UpstreamError>, TimedOut> {
        if let Some(mut conn) = self.idle.take(authority, tls) {
            conn.timer.as_mut().reset(deadline);
            match exchange_on(&mut conn, &mut parts, &self.flusher).await? {
                Ok(head) => return Ok(Ok(self.reply(authority, tls, conn, head))),
                Err(Failed::BeforeAnswer(_)) if idempotent(&parts.method) => {}
                Err(failed) => return Ok(Err(UpstreamError::Exchange(failed.into()))),
            }
        }
        // Boxed, as in `send_pooled`.
        Box::pin(self.send_direct_on_new(authority, tls, parts, deadline)).await
    }

    async fn send_direct_on_new(
        &self,
        authority: &Authority,
        tls: bool,
        mut parts: hyper::http::request::Parts,
        deadline: Instant,
    ) -> Result<Result<Response<UpstreamBody>, UpstreamError>, TimedOut> {
        let mut timer = Box::pin(tokio::time::sleep_until(deadline));
        let opened = tokio::select! {
            biased;
            opened = self.connect(authority, tls) => opened,
            () = timer.as_mut() => return Err(TimedOut),
        };
        let mut conn = match opened {
            Ok(stream) => Conn::new(stream, timer),
            Err(err) => return Ok(Err(err)),
        };
        match exchange_on(&mut conn, &mut parts, &self.flusher).await? {
            Ok(head) => Ok(Ok(self.reply(authority, tls, conn, head))),
            Err(failed) => Ok(Err(UpstreamError::Exchange(failed.into()))),
        }
    }

    fn reply(&self, authority: &Authority, tls: bool, conn: Conn, head: direct::Head) -> Response<UpstreamBody> {
        Reply::new(conn, head, self.idle.clone(), (authority.clone(), tls)).map(UpstreamBody::Direct)
    }

    /// A request with a body, through hyper's client.
    async fn send_pooled(
        &self,
        authority: &Authority,
        tls: bool,
        mut request: Request<ClientBody>,
        deadline: Instant,
    ) -> Result<Result<Response<Incoming>, UpstreamError>, TimedOut> {
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
                    None => return Ok(Err(UpstreamError::Exchange(failed.into_error().into()))),
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
            Err(err) => Ok(Err(UpstreamError::Exchange(err.into()))),
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
        sender.send_request(request).await.map_err(|err| UpstreamError::Exchange(err.into()))
    }

    /// A new connection for hyper's client; `upgrades` keeps it able to switch protocols
    /// after a `101`.
    async fn open(
        &self,
        authority: &Authority,
        tls: bool,
        upgrades: bool,
    ) -> Result<SendRequest<ClientBody>, UpstreamError> {
        let stream = self.connect(authority, tls).await?;
        handshake(stream, upgrades).await
    }

    /// A new connection's byte stream: TCP, and TLS over it for `https://` upstreams.
    async fn connect(&self, authority: &Authority, tls: bool) -> Result<Stream, UpstreamError> {
        // `[::1]` is the authority's spelling; the resolver wants the bare address.
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let started = Instant::now();
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| UpstreamError::Connect)?
            .map_err(|err| if is_local(&err) { UpstreamError::Local(err) } else { UpstreamError::Connect })?;
        let _ = stream.set_nodelay(true);
        if !tls {
            return Ok(Stream::Plain(stream));
        }
        // The connect timeout covers the TLS handshake too.
        let left = self.connect_timeout.saturating_sub(started.elapsed());
        let stream = tokio::time::timeout(left, self.tls.connect(authority, stream))
            .await
            .map_err(|_| UpstreamError::Connect)?
            .map_err(UpstreamError::Tls)?;
        Ok(Stream::Tls(Box::new(stream)))
    }
}

/// Whether a failed connect is the agent's own shortage (file descriptors, local ports,
/// kernel memory) rather than anything the upstream did.
fn is_local(err: &std::io::Error) -> bool {
    const ENOMEM: i32 = 12;
    const ENFILE: i32 = 23;
    const EMFILE: i32 = 24;
    const EADDRNOTAVAIL: i32 = 99;
    const ENOBUFS: i32 = 105;
    matches!(err.raw_os_error(), Some(ENOMEM | ENFILE | EMFILE | EADDRNOTAVAIL | ENOBUFS))
}

/// The exchange of a request without a body on `conn`, unless its timer fires first.
async fn exchange_on(
    conn: &mut Conn,
    parts: &mut hyper::http::request::Parts,
    flusher: &Arc<Flusher>,
) -> Result<Result<direct::Head, Failed>, TimedOut> {
    tokio::select! {
        biased;
        exchanged = conn.io.exchange(parts, flusher) => Ok(exchanged),
        () = conn.timer.as_mut() => Err(TimedOut),
    }
}

/// The HTTP/1 handshake on a new upstream connection, whose driver runs on its own task.
async fn handshake<I>(io: I, upgrades: bool) -> Result<SendRequest<ClientBody>, UpstreamError>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) =
        http1::handshake(TokioIo::new(io)).await.map_err(|err| UpstreamError::Exchange(err.into()))?;
    tokio::spawn(async move {
        let ended = if upgrades { connection.with_upgrades().await } else { connection.await };
        if let Err(err) = ended {
            tracing::debug!(error = %err, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}

#[cfg(test)]
mod local_error_tests {
    use super::is_local;

    #[test]
    fn the_agents_own_shortages_are_told_from_the_upstreams_failures() {
        for local in [24, 23, 99, 105, 12] {
            assert!(is_local(&std::io::Error::from_raw_os_error(local)), "{local}");
        }
        // Refused, unreachable, reset: the upstream's.
        for upstream in [111, 113, 101, 104] {
            assert!(!is_local(&std::io::Error::from_raw_os_error(upstream)), "{upstream}");
        }
    }
}
