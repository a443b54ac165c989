//! One client connection in HTTP/1.1 or HTTP/2, over any byte stream (plain TCP, or TLS once
//! its handshake is done).
//!
//! Which protocol a plain connection speaks is read from its first bytes: HTTP/2 with prior
//! knowledge (h2c) opens with a fixed preface, and no HTTP/1.1 request line starts like it, so
//! the first byte that differs decides. Those bytes are handed back to hyper before anything
//! else is read ([`Rewind`]). A TLS connection knows from ALPN and skips the detection.
//!
//! Both protocols get the same bounds: the size of a request head (431), the idle timeout
//! (HTTP/1.1: the time to send a request head, on a new connection or between requests;
//! HTTP/2: a connection with no open stream, see [`streams`]), and the graceful stop.
//! HTTP/1.1 connections may be upgraded (WebSocket): see [`crate::tunnel`].

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::{Body, Incoming};
use hyper::server::conn::{http1, http2};
use hyper::service::{HttpService, Service};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::sync::watch;

use streams::{Counted, Streams};
use write_deadline::WriteDeadline;

mod streams;
mod write_deadline;

/// What a client opens an HTTP/2 connection with (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Streams a client may have open at once on one HTTP/2 connection (hyper's default, said
/// here because it bounds what one connection can ask of the agent).
const MAX_CONCURRENT_STREAMS: u32 = 200;

/// hyper's default bound on an HTTP/1.1 connection's buffer.
const HYPER_MAX_BUF: usize = 8192 + 4096 * 100;
/// Room in that buffer beyond the head's limit, for the start of a body read with it.
const HEAD_SLACK: usize = 16 * 1024;

/// The protocol of a connection, when something before HTTP already said it (ALPN).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// Read it from the first bytes (plain TCP).
    Detect,
    Http1,
    Http2,
}

/// How connections are served: built once per listener.
pub(crate) struct Protocols {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
    /// A client gets this long to send a request head (or the HTTP/2 preface); an HTTP/2
    /// connection with no open stream is closed after this long.
    idle_timeout: Duration,
}

impl Protocols {
    pub fn new(max_header_bytes: usize, idle_timeout: Duration) -> Protocols {
        let mut http1 = http1::Builder::new();
        http1
            .timer(ReusedTimers::default())
            .header_read_timeout(idle_timeout)
            .max_header_size(max_header_bytes)
            // The read buffer holds a whole head: hyper's own bound (408 KiB) would refuse a
            // bigger one whatever the setting says.
            .max_buf_size(max_header_bytes.saturating_add(HEAD_SLACK).max(HYPER_MAX_BUF))
            .keep_alive(true);
        // The stream tasks go to the runtime of the connection's own task (a proxy worker's
        // single-threaded runtime): a request never crosses threads.
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(max_header_bytes).unwrap_or(u32::MAX))
            .max_concurrent_streams(MAX_CONCURRENT_STREAMS);
        Protocols { http1, http2, idle_timeout }
    }

    /// Serves `service` on `io` until the client is done or `stop` changes; then asks the
    /// connection to close after its in-flight requests (HTTP/2: a GOAWAY) and waits for it.
    pub async fn serve<I, S, B>(&self, mut io: I, protocol: Protocol, service: S, stop: &mut watch::Receiver<bool>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible> + Send + 'static,
        S::Future: Send + 'static,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        // A connection accepted as the stop arrived must not wait for a change it has
        // already seen.
        if *stop.borrow_and_update() {
            return;
        }
        let (protocol, prefix) = match protocol {
            Protocol::Detect => {
                let detected = tokio::select! {
                    detected = tokio::time::timeout(self.idle_timeout, detect(&mut io)) => detected,
                    _ = stop.changed() => return,
                };
                match detected {
                    Ok(Ok(Some(detected))) => detected,
                    // Closed, failed or silent before a byte: nothing to answer.
                    Ok(Ok(None) | Err(_)) | Err(_) => return,
                }
            }
            known => (known, Prefix::EMPTY),
        };
        let io = TokioIo::new(WriteDeadline::new(Rewind { prefix, io }, self.idle_timeout));
        match protocol {
            Protocol::Http2 => {
                let streams = Streams::new();
                let service = Counted { inner: service, streams: streams.clone() };
                let connection = self.http2.serve_connection(io, service);
                drive_http2(connection, &streams, self.idle_timeout, stop).await;
            }
            Protocol::Http1 | Protocol::Detect => {
                drive(self.http1.serve_connection(io, service).with_upgrades(), stop).await;
            }
        }
    }
}

/// Timers kept for HTTP/1.1's header read timeout between requests, at most this many per
/// listener (each holds the waker of the connection that last used it, until it is reused or
/// fires at its last deadline).
const SPARE_TIMERS: usize = 256;

/// hyper's timer for HTTP/1.1 connections, whose one use is the header read timeout: hyper
/// asks for a new timer for every request head and drops it once the head is read, which
/// filed a timer in tokio's wheel and took it out again per request. The timers hyper drops
/// come back here, and the next head takes one and moves its deadline: later than the last,
/// that only updates the timer's state (tokio moves it in the wheel when the earlier deadline
/// comes). The deadlines, and what happens when one passes, are hyper's as before.
///
/// One per listener, so its timers all belong to the runtime that serves the listener.
#[derive(Clone, Default)]
struct ReusedTimers {
    spare: Arc<Mutex<Vec<Pin<Box<tokio::time::Sleep>>>>>,
}

impl hyper::rt::Timer for ReusedTimers {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(self.now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        let spare = self.spare.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let sleep = match spare {
            Some(mut sleep) => {
                sleep.as_mut().reset(deadline.into());
                sleep
            }
            None => Box::pin(tokio::time::sleep_until(deadline.into())),
        };
        Box::pin(ReusedSleep { sleep: Some(sleep), spare: self.spare.clone() })
    }

    fn now(&self) -> Instant {
        tokio::time::Instant::now().into()
    }
}

/// A timer lent to hyper; given back when hyper drops it.
struct ReusedSleep {
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    spare: Arc<Mutex<Vec<Pin<Box<tokio::time::Sleep>>>>>,
}

impl Future for ReusedSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.sleep.as_mut() {
            Some(sleep) => sleep.as_mut().poll(cx),
            None => Poll::Ready(()),
        }
    }
}

impl hyper::rt::Sleep for ReusedSleep {}

impl Drop for ReusedSleep {
    fn drop(&mut self) {
        if let Some(sleep) = self.sleep.take() {
            let mut spare = self.spare.lock().unwrap_or_else(PoisonError::into_inner);
            if spare.len() < SPARE_TIMERS {
                spare.push(sleep);
            }
        }
    }
}

/// A connection future that can be asked to finish gracefully.
trait Graceful: Future {
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, S, B> Graceful for http1::UpgradeableConnection<I, S>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        http1::UpgradeableConnection::graceful_shutdown(self);
    }
}

impl<I, S, B> Graceful for http2::Connection<I, S, TokioExecutor>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: HttpService<Incoming, ResBody = B>,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        http2::Connection::graceful_shutdown(self);
    }
}

/// Runs `connection` to its end, asking it to finish gracefully once `stop` changes.
async fn drive<C: Graceful>(connection: C, stop: &mut watch::Receiver<bool>) {
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = stop.changed() => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}

/// Runs an HTTP/2 `connection` to its end, asking it to finish gracefully once `stop` changes
/// or once it has had no open stream for `idle` (or its answers have waited that long on a
/// client that keeps its window shut). A client that then stays silent (it does not answer
/// the `GOAWAY`'s ping, or leaves a header block unfinished) is dropped after another `idle`
/// so.
async fn drive_http2<C: Graceful>(connection: C, streams: &Streams, idle: Duration, stop: &mut watch::Receiver<bool>) {
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = stop.changed() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
            return;
        }
        () = streams.unused_for(idle) => {}
    }
    connection.as_mut().graceful_shutdown();
    tokio::select! {
        _ = connection => {}
        () = streams.unused_for(idle) => {}
    }
}

/// Bytes already read from a connection, given back before anything else. Inline: a
/// connection's detection allocates nothing.
#[derive(Clone, Copy)]
struct Prefix {
    bytes: [u8; PREFACE.len()],
    start: u8,
    end: u8,
}

impl Prefix {
    const EMPTY: Prefix = Prefix { bytes: [0; PREFACE.len()], start: 0, end: 0 };

    fn remaining(&self) -> &[u8] {
        &self.bytes[usize::from(self.start)..usize::from(self.end)]
    }
}

/// Reads until the first bytes either differ from the HTTP/2 preface (HTTP/1.1) or are all
/// of it (HTTP/2). `None`: the client closed first.
async fn detect<I: AsyncRead + Unpin>(io: &mut I) -> io::Result<Option<(Protocol, Prefix)>> {
    let mut prefix = Prefix::EMPTY;
    loop {
        let end = usize::from(prefix.end);
        let read = io.read(&mut prefix.bytes[end..]).await?;
        if read == 0 {
            return Ok(None);
        }
        let end = end + read;
        // At most 24: fits.
        prefix.end = end as u8;
        if prefix.bytes[..end] != PREFACE[..end] {
            return Ok(Some((Protocol::Http1, prefix)));
        }
        if end == PREFACE.len() {
            return Ok(Some((Protocol::Http2, prefix)));
        }
    }
}

/// A byte stream that first yields `prefix`. Writes (vectored ones included, which hyper's
/// HTTP/1.1 uses to send head and body in one call) go straight through.
struct Rewind<I> {
    prefix: Prefix,
    io: I,
}

impl<I: AsyncRead + Unpin> AsyncRead for Rewind<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.prefix.start < this.prefix.end {
            let remaining = this.prefix.remaining();
            let n = remaining.len().min(buf.remaining());
            buf.put_slice(&remaining[..n]);
            // n ≤ 24.
            this.prefix.start += n as u8;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Rewind<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn detected(chunks: &[&[u8]]) -> Option<(Protocol, Vec<u8>)> {
        let (mut client, mut server) = tokio::io::duplex(64);
        for chunk in chunks {
            client.write_all(chunk).await.expect("write");
        }
        drop(client);
        let (protocol, prefix) = detect(&mut server).await.expect("read")?;
        let mut rewound = Rewind { prefix, io: server };
        let mut all = Vec::new();
        rewound.read_to_end(&mut all).await.expect("read");
        Some((protocol, all))
    }

    #[tokio::test]
    async fn the_first_differing_byte_decides_and_nothing_is_lost() {
        let request: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(detected(&[request]).await, Some((Protocol::Http1, request.to_vec())));
        // `PR…` could still be the preface; `PRO` cannot (and would be refused by hyper).
        assert_eq!(detected(&[b"PR", b"OPFIND / HTTP/1.1\r\n"]).await.map(|d| d.0), Some(Protocol::Http1));
        let mut h2 = PREFACE.to_vec();
        h2.extend_from_slice(b"\0\0\0\x04\0\0\0\0\0");
        assert_eq!(detected(&[&h2[..5], &h2[5..]]).await, Some((Protocol::Http2, h2.clone())));
        assert_eq!(detected(&[b"PRI * HTTP/2"]).await, None, "closed inside the preface");
        assert_eq!(detected(&[]).await, None);
    }
}
