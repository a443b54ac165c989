//! The accept loop shared by the proxy and admin listeners: HTTP/1.1 with keep-alive or
//! HTTP/2 ([`crate::protocols`]), a graceful stop that lets in-flight requests and upgraded
//! connections finish (up to a bound), and the bounds a client meets before any handler runs:
//! the size of a request head (431) and the number of open connections (503).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use hyper::body::Incoming;
use hyper::service::{Service, service_fn};
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response};
use metrics::{Counter, Gauge};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio_rustls::TlsAcceptor;

use crate::protocols::{Protocol, Protocols};
use crate::tls::termination;
use crate::tunnel::Lease;

/// The protocols the connection code below serves, most preferred first: what TLS offers in
/// ALPN.
pub(crate) const ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

/// At most this many refused connections are being answered at once; beyond, they are closed
/// without an answer (a flood must not cost more than the connections it is refused).
const MAX_REFUSING: usize = 256;
/// How long answering a refused connection may take.
const REFUSAL_TIME: Duration = Duration::from_secs(1);

/// The answer to a connection over the limit. Written raw: no request was parsed.
const TOO_MANY_CONNECTIONS: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 103\r\n\r\n\
{\"error\":\"too_many_connections\",\"message\":\"The gateway is at its connection limit; try again shortly.\"}";

/// What one listener accepts.
pub(crate) struct Limits {
    /// Largest request line plus headers, in bytes; beyond, hyper answers 431 and closes.
    pub max_header_bytes: usize,
    /// How long a client may take to send a request head, and an HTTP/2 connection may stay
    /// without an open stream.
    pub idle_timeout: Duration,
    /// Open connections at most; `None`: unbounded.
    pub connections: Option<ConnectionLimit>,
    /// TLS on every connection (see [`crate::tls::termination`]); `None`: plain TCP.
    pub tls: Option<TlsAcceptor>,
}

/// Open connections at most as many as `slots` has permits; one more is answered 503 and
/// closed. The proxy's workers share one `slots`, so the limit is the whole agent's.
pub(crate) struct ConnectionLimit {
    pub slots: Arc<Semaphore>,
    /// Connections refused for being over the limit.
    pub refused: Counter,
    /// Connections open now.
    pub open: Gauge,
}

/// A connection's place under the limit, given back when the connection ends.
struct Slot {
    _permit: OwnedSemaphorePermit,
    open: Gauge,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.decrement(1.0);
    }
}

/// Serves `handler` on `listener` until `stop` changes, then stops accepting, asks open
/// connections to close after their current request (upgraded ones close, see
/// [`crate::tunnel`]), and waits up to `drain` for them.
pub(crate) async fn serve<H, F, B>(
    listener: TcpListener,
    name: &'static str,
    handler: H,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
    drain: Duration,
) where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // Every connection task holds a sender; when all are gone, the drain is complete.
    let (open_tx, mut open_rx) = mpsc::channel::<()>(1);
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let protocols = Arc::new(Protocols::new(limits.max_header_bytes, limits.idle_timeout));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!(listener = name, error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let slot = match &limits.connections {
            Some(limit) => match limit.slots.clone().try_acquire_owned() {
                Ok(permit) => {
                    limit.open.increment(1.0);
                    Some(Slot { _permit: permit, open: limit.open.clone() })
                }
                Err(_) => {
                    limit.refused.increment(1);
                    if let Ok(permit) = refusing.clone().try_acquire_owned() {
                        tokio::spawn(async move {
                            let _ = tokio::time::timeout(REFUSAL_TIME, refuse(stream)).await;
                            drop(permit);
                        });
                    }
                    continue;
                }
            },
            None => None,
        };
        let _ = stream.set_nodelay(true);
        // What keeps the connection counted (its slot and its place in the drain), shared
        // with the tunnel of an upgrade, which outlives the HTTP connection.
        let hold: Arc<dyn Send + Sync> = Arc::new((slot, open_tx.clone()));
        match &limits.tls {
            None => {
                let connection =
                    connection(stream, Protocol::Detect, peer, handler.clone(), protocols.clone(), hold, stop.clone());
                tokio::spawn(connection);
            }
            Some(acceptor) => {
                let (acceptor, handler, protocols, stop) =
                    (acceptor.clone(), handler.clone(), protocols.clone(), stop.clone());
                tokio::spawn(async move {
                    // The handshake runs on the connection's task, never in the accept loop.
                    let Some(tls) = termination::accept(&acceptor, stream).await else {
                        return;
                    };
                    // ALPN decides; a client that offered none may still speak HTTP/2 by
                    // prior knowledge, so its first bytes do.
                    let protocol = match tls.get_ref().1.alpn_protocol() {
                        Some(b"h2") => Protocol::Http2,
                        Some(_) => Protocol::Http1,
                        None => Protocol::Detect,
                    };
                    connection(tls, protocol, peer, handler, protocols, hold, stop).await;
                });
            }
        }
    }
    drop(listener);
    drop(open_tx);
    if tokio::time::timeout(drain, open_rx.recv()).await.is_err() {
        tracing::warn!(listener = name, "stopped waiting for in-flight requests after {drain:?}");
    }
}

/// Serves one accepted connection: `io` is the client's byte stream (TCP, or TLS after its
/// handshake, with ALPN's `protocol`), `hold` what keeps it counted until it and any tunnel
/// made of it have ended.
pub(crate) async fn connection<I, H, F, B>(
    io: I,
    protocol: Protocol,
    peer: SocketAddr,
    handler: H,
    protocols: Arc<Protocols>,
    hold: Arc<dyn Send + Sync>,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>, SocketAddr) -> F + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let service = service(handler, peer, hold, stop.clone());
    protocols.serve(io, protocol, service, &mut stop).await;
}

/// The hyper service of one connection from `peer`: `handler`'s answer to each request, an
/// upgrade request given the connection's `Lease`.
fn service<H, F, B>(
    handler: H,
    peer: SocketAddr,
    hold: Arc<dyn Send + Sync>,
    stop: watch::Receiver<bool>,
) -> impl Service<Request<Incoming>, Response = Response<B>, Error = Infallible, Future: Send + 'static> + Send + 'static
where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
{
    service_fn(move |mut request: Request<Incoming>| {
        // Only upgrade requests carry `OnUpgrade` (no cost for the others).
        if request.extensions().get::<OnUpgrade>().is_some() {
            request.extensions_mut().insert(Lease::new(hold.clone(), stop.clone()));
        }
        // The handler's future itself, not an `async` block around it: a block would hold
        // it twice (captured, then awaited), and hyper moves the whole future per request.
        handler(request, peer).map(Ok::<_, Infallible>)
    })
}

/// Answers a connection over the limit with a 503, then reads (and drops) what the client
/// sent, so that closing does not reset the connection before the client has read the answer.
async fn refuse(mut stream: TcpStream) -> io::Result<()> {
    stream.write_all(TOO_MANY_CONNECTIONS).await?;
    stream.shutdown().await?;
    let mut sink = [0u8; 4096];
    let mut read = 0;
    while read < 64 * 1024 {
        match stream.read(&mut sink).await? {
            0 => break,
            n => read += n,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The future hyper moves into its dispatcher for every request is the handler's own,
    /// not a wrapper holding it twice.
    #[test]
    fn the_service_future_is_the_handlers() {
        fn future_of<S: Service<Request<Incoming>>>(_: &S) -> usize {
            std::mem::size_of::<S::Future>()
        }
        let handler = |_request: Request<Incoming>, _peer: SocketAddr| {
            let padding = [0u8; 4096];
            async move {
                tokio::task::yield_now().await;
                Response::new(http_body_util::Full::new(bytes::Bytes::copy_from_slice(&padding[..1])))
            }
        };
        fn output_of<F>(_: &impl Fn(Request<Incoming>, SocketAddr) -> F) -> usize {
            std::mem::size_of::<F>()
        }
        let handler_future = output_of(&handler);
        let (_tx, stop) = watch::channel(false);
        let service = service(handler, ([127, 0, 0, 1], 1).into(), Arc::new(()), stop);
        assert!(handler_future >= 4096);
        assert!(future_of(&service) <= handler_future + 16, "{} vs {handler_future}", future_of(&service));
    }

    #[test]
    fn the_refusal_is_well_formed() {
        let text = std::str::from_utf8(TOO_MANY_CONNECTIONS).expect("ascii");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length: "))
            .and_then(|n| n.parse().ok())
            .expect("content-length");
        assert_eq!(length, body.len());
        let json: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(json["error"], "too_many_connections");
    }
}
