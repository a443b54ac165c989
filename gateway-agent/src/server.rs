//! The accept loop shared by the proxy and admin listeners: HTTP/1.1 with keep-alive, and a
//! graceful stop that lets in-flight requests finish (up to a bound).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// A slow client gets this long to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `handler` on `listener` until `stop` changes, then stops accepting, asks open
/// connections to close after their current request, and waits up to `drain` for them.
pub(crate) async fn serve<H, F, B>(
    listener: TcpListener,
    name: &'static str,
    handler: H,
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
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let mut stop = stop.clone();
        let open = open_tx.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let response = handler(request, peer);
                async move { Ok::<_, Infallible>(response.await) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
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
