//! The open streams of one HTTP/2 connection, so that a connection with none is closed after
//! the idle timeout as an idle HTTP/1.1 connection is. Without it, a client that sends the
//! preface (or half a header block) and nothing more holds a place under
//! `TOLLGATE_AGENT_MAX_CONNECTIONS` for ever.
//!
//! A stream counts as open from its request until its response body has been sent or
//! dropped, so a long download or a slow upstream keeps its connection. A connection whose
//! open streams wait on the client (an answer hyper cannot send, because the client's flow
//! control window stays shut) with no body taking a step for the idle timeout is closed too:
//! a client could otherwise hold its place by never opening its window.

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

/// How many streams are open, and since when none is; how many answers wait on the client,
/// and when a body last took a step.
pub(super) struct Streams {
    open: AtomicUsize,
    /// When the last stream ended (or the connection opened), in ms after `born`.
    idle_since_ms: AtomicU64,
    /// Answers hyper has not asked for their next frame (it waits for the client's window).
    waiting: AtomicUsize,
    /// When an answer was last made or asked for a frame, in ms after `born`.
    active_ms: AtomicU64,
    born: Instant,
}

impl Streams {
    pub fn new() -> Arc<Streams> {
        Arc::new(Streams {
            open: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
            active_ms: AtomicU64::new(0),
            born: Instant::now(),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn touch(&self) {
        self.active_ms.store(self.now_ms(), Ordering::Release);
    }

    /// Since when answers wait on the client with no body taking a step; `None` if none waits.
    fn stalled_since(&self) -> Option<Instant> {
        if self.waiting.load(Ordering::Acquire) == 0 {
            return None;
        }
        Some(self.born + Duration::from_millis(self.active_ms.load(Ordering::Acquire)))
    }

    /// `None` while a stream is open.
    fn idle_since(&self) -> Option<Instant> {
        if self.open.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(self.born + Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire)))
    }

    /// Resolves once no stream has been open for `idle`, or answers have waited on the client
    /// that long with no body taking a step.
    pub async fn unused_for(&self, idle: Duration) {
        loop {
            let now = Instant::now();
            let since = self.idle_since().or_else(|| self.stalled_since());
            let deadline = since.map_or(now + idle, |since| since + idle);
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
        streams.idle_since_ms.store(streams.now_ms(), Ordering::Release);
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
            // Made: it waits for hyper to ask for its first frame.
            open.0.touch();
            open.0.waiting.fetch_add(1, Ordering::AcqRel);
            Ok(response.map(|body| CountedBody { body: body.boxed_unsync(), waiting: true, open }))
        })
    }
}

/// A response body that keeps its stream open until it is done with, and counts as waiting
/// on the client from when it is made or hands over a frame until hyper asks for the next.
pub(super) struct CountedBody<D, E> {
    body: UnsyncBoxBody<D, E>,
    waiting: bool,
    open: OpenStream,
}

impl<D, E> CountedBody<D, E> {
    fn set_waiting(&mut self, waiting: bool) {
        if self.waiting != waiting {
            self.waiting = waiting;
            let streams = &self.open.0;
            if waiting {
                streams.waiting.fetch_add(1, Ordering::AcqRel)
            } else {
                streams.waiting.fetch_sub(1, Ordering::AcqRel)
            };
        }
    }
}

impl<D, E> Drop for CountedBody<D, E> {
    fn drop(&mut self) {
        self.set_waiting(false);
    }
}

impl<D: hyper::body::Buf, E> Body for CountedBody<D, E> {
    type Data = D;
    type Error = E;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<D>, E>>> {
        let this = &mut *self;
        this.open.0.touch();
        this.set_waiting(false);
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        if matches!(frame, Poll::Ready(Some(Ok(_)))) {
            this.set_waiting(true);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
