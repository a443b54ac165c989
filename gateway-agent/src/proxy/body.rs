//! The client's request body on its way upstream, watched so that the client's faults are
//! not blamed on the upstream: a body that breaks (malformed chunked encoding, a connection
//! closed mid-body) or stalls makes the upstream exchange fail or time out, and must neither
//! count towards ejecting a healthy target nor be answered as if the upstream had failed.
//! A `POST` body that frameworks read as a form is also scanned for a `_method` field
//! ([`method_field`](super::method_field)): the piece that carries one is withheld and the
//! body ends in an error, which breaks off the upstream exchange before the body is whole.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::Method;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::HeaderMap;

use super::method_field::{self, BodyScan, Verdict};

/// The last thing the body did. Only the body's poller writes it.
const READING: u8 = 0;
const WAITING_FOR_CLIENT: u8 = 1;
const DONE: u8 = 2;
const FAILED: u8 = 3;
const OVERRIDE: u8 = 4;

/// A request body that records how reading it went.
pub(crate) struct ClientBody {
    inner: Incoming,
    /// `None` for a request without a body (nothing can go wrong, nothing to allocate).
    state: Option<Arc<AtomicU8>>,
    /// The `_method` scan, for a `POST` body that frameworks read as a form.
    scan: Option<Box<BodyScan>>,
}

/// Why the body given to the upstream ended early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error(transparent)]
    Client(hyper::Error),
    #[error("the body carries a _method field")]
    MethodOverride,
    #[error("a multipart header line is too long to read")]
    Unreadable,
}

/// What the proxy may ask about the body after the upstream exchange.
pub(crate) struct BodyWatch(Option<Arc<AtomicU8>>);

impl ClientBody {
    pub fn watch(inner: Incoming) -> (ClientBody, BodyWatch) {
        let state = (!inner.is_end_stream()).then(|| Arc::new(AtomicU8::new(READING)));
        (ClientBody { inner, state: state.clone(), scan: None }, BodyWatch(state))
    }

    /// Scans the body for a `_method` field if the request the upstream receives (its
    /// method and headers, after hop-by-hop removal) is one frameworks read a form from.
    pub fn scan_as(&mut self, method: &Method, headers: &HeaderMap) {
        if self.state.is_some() {
            self.scan = method_field::scan_for(method, headers);
        }
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

    /// The body carried a `_method` field, and was broken off.
    pub fn overridden(&self) -> bool {
        self.load() == OVERRIDE
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let verdict = match (&polled, this.scan.as_deref_mut()) {
            (Poll::Ready(Some(Ok(frame))), Some(scan)) => {
                frame.data_ref().map_or(Verdict::Clean, |data| scan.feed(data))
            }
            _ => Verdict::Clean,
        };
        if let Some(state) = &this.state {
            let now = match (&polled, verdict) {
                (_, Verdict::Override) => OVERRIDE,
                (_, Verdict::Unreadable) => FAILED,
                (Poll::Pending, _) => WAITING_FOR_CLIENT,
                (Poll::Ready(None), _) => DONE,
                (Poll::Ready(Some(Err(_))), _) => FAILED,
                (Poll::Ready(Some(Ok(_))), _) => READING,
            };
            state.store(now, Ordering::Release);
        }
        match verdict {
            Verdict::Clean => polled.map(|frame| frame.map(|frame| frame.map_err(BodyError::Client))),
            Verdict::Override => Poll::Ready(Some(Err(BodyError::MethodOverride))),
            Verdict::Unreadable => Poll::Ready(Some(Err(BodyError::Unreadable))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
