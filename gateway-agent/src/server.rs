//! The accept loop shared by the proxy and admin listeners: HTTP/1.1 with keep-alive, a
//! graceful stop that lets in-flight requests finish (up to a bound), and the bounds a client
//! meets before any handler runs: the size of a request head (431) and the number of open
//! connections (503).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics::{Counter, Gauge};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio_rustls::TlsAcceptor;

use crate::tls::stream::ClientStream;
use crate::tls::termination;

/// The protocols the connection code below serves, most preferred first: what TLS offers in
/// ALPN. `h2` joins when the connections are served by hyper-util's auto (HTTP/1 + HTTP/2)
/// builder.
pub(crate) const ALPN: &[&[u8]] = &[b"http/1.1"];

/// A slow client gets this long to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

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
/// connections to close after their current request, and waits up to `drain` for them.
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
        let handler = handler.clone();
        let mut stop = stop.clone();
        let open = open_tx.clone();
        let max_header_bytes = limits.max_header_bytes;
        let tls = limits.tls.clone();
        tokio::spawn(async move {
            // The handshake runs on the connection's task, never in the accept loop.
            let stream = match &tls {
                None => ClientStream::Plain(stream),
                Some(acceptor) => match termination::accept(acceptor, stream).await {
                    Some(stream) => stream,
                    None => return,
                },
            };
            let service = service_fn(move |request| {
                let response = handler(request, peer);
                async move { Ok::<_, Infallible>(response.await) }
            });
            let _slot = slot;
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_header_size(max_header_bytes)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            // A connection accepted as the stop arrived must not wait for a change it
            // has already seen.
            if !*stop.borrow_and_update() {
                tokio::select! {
                    _ = connection.as_mut() => {
                        drop(open);
                        return;
                    }
                    _ = stop.changed() => {}
                }
            }
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
            drop(open);
        });
    }
    drop(listener);
    drop(open_tx);
    if tokio::time::timeout(drain, open_rx.recv()).await.is_err() {
        tracing::warn!(listener = name, "stopped waiting for in-flight requests after {drain:?}");
    }
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
