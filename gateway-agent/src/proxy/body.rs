//! The client's request body on its way upstream, watched so that the client's faults are
//! not blamed on the upstream: a body that breaks (malformed chunked encoding, a connection
//! closed mid-body) or stalls makes the upstream exchange fail or time out, and must neither
//! count towards ejecting a healthy target nor be answered as if the upstream had failed.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

/// The last thing the body did. Only the body's poller writes it.
const READING: u8 = 0;
const WAITING_FOR_CLIENT: u8 = 1;
const DONE: u8 = 2;
const FAILED: u8 = 3;

/// A request body that records how reading it went.
pub(crate) struct ClientBody {
    inner: Incoming,
    /// `None` for a request without a body (nothing can go wrong, nothing to allocate).
    state: Option<Arc<AtomicU8>>,
}

/// What the proxy may ask about the body after the upstream exchange.
pub(crate) struct BodyWatch(Option<Arc<AtomicU8>>);

impl ClientBody {
    pub fn watch(inner: Incoming) -> (ClientBody, BodyWatch) {
        let state = (!inner.is_end_stream()).then(|| Arc::new(AtomicU8::new(READING)));
        (ClientBody { inner, state: state.clone() }, BodyWatch(state))
    }
}

impl BodyWatch {
    fn load(&self) -> u8 {
        self.0.as_ref().map_or(DONE, |state| state.load(Ordering::Acquire))
    }

    /// The client's body ended in an error (bad framing, connection closed early).
    pub fn failed(&self) -> bool {
        self.load() == FAILED
    }

    /// The upstream was still waiting for more of the client's body.
    pub fn waiting_for_client(&self) -> bool {
        self.load() == WAITING_FOR_CLIENT
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Some(state) = &this.state {
            let now = match &polled {
                Poll::Pending => WAITING_FOR_CLIENT,
                Poll::Ready(None) => DONE,
                Poll::Ready(Some(Err(_))) => FAILED,
                Poll::Ready(Some(Ok(_))) => READING,
            };
            state.store(now, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
