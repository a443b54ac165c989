//! The open streams of one HTTP/2 connection, so that a connection with none is closed after
//! the idle timeout as an idle HTTP/1.1 connection is. Without it, a client that sends the
//! preface (or half a header block) and nothing more holds a place under
//! `TOLLGATE_AGENT_MAX_CONNECTIONS` for ever.
//!
//! A stream counts as open from its request until its response body has been sent or
//! dropped, so a long download or a slow upstream keeps its connection.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use http_body_util::BodyExt as _;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::Service;
use hyper::{Request, Response};
use tokio::time::{Duration, Instant};

/// How many streams are open, and since when none is.
pub(super) struct Streams {
    open: AtomicUsize,
    /// When the last stream ended (or the connection opened), in ms after `born`.
    idle_since_ms: AtomicU64,
    born: Instant,
}

impl Streams {
    pub fn new() -> Arc<Streams> {
        Arc::new(Streams { open: AtomicUsize::new(0), idle_since_ms: AtomicU64::new(0), born: Instant::now() })
    }

    /// `None` while a stream is open.
    fn idle_since(&self) -> Option<Instant> {
        if self.open.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(self.born + Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire)))
    }

    /// Resolves once no stream has been open for `idle`.
    pub async fn idle_for(&self, idle: Duration) {
        loop {
            let now = Instant::now();
            let deadline = self.idle_since().map_or(now + idle, |since| since + idle);
            if deadline <= now {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }

    fn opened(self: &Arc<Self>) -> OpenStream {
        self.open.fetch_add(1, Ordering::AcqRel);
        OpenStream(self.clone())
    }
}

/// One open stream; it ends when this is dropped.
struct OpenStream(Arc<Streams>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        let streams = &self.0;
        // Written before the count drops, so that a reader seeing no stream open sees when.
        let ms = u64::try_from(streams.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        streams.idle_since_ms.store(ms, Ordering::Release);
        streams.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The connection's service, counting each stream from its request to the end of its
/// response body.
pub(super) struct Counted<S> {
    pub inner: S,
    pub streams: Arc<Streams>,
}

type Answer<B> = Response<CountedBody<<B as Body>::Data, <B as Body>::Error>>;

impl<S, B> Service<Request<Incoming>> for Counted<S>
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>,
    S::Future: Send + 'static,
    B: Body + Send + 'static,
{
    type Response = Answer<B>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Answer<B>, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let open = self.streams.opened();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let Ok(response) = answer.await;
            Ok(response.map(|body| CountedBody { body: body.boxed_unsync(), _open: open }))
        })
    }
}

/// A response body that keeps its stream open until it is done with.
pub(super) struct CountedBody<D, E> {
    body: UnsyncBoxBody<D, E>,
    _open: OpenStream,
}

impl<D: hyper::body::Buf, E> Body for CountedBody<D, E> {
    type Data = D;
    type Error = E;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<D>, E>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
