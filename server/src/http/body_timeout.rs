//! A deadline on reading a request's body: a client that sends the head and
//! then stalls (or trickles) gets 408 instead of holding a connection and a
//! worker's attention for ever. The time starts when the head has arrived
//! (actix bounds the head itself with its client request timeout).

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::HttpMessage;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{ConnectionType, StatusCode};
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes};
use futures_util::Stream;
use tollgate_web::{ErrorPage, Problem};

/// How long a request's whole body may take to arrive.
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub Duration);

/// The body stream, cut off with an error at the deadline; `expired`
/// tells the middleware afterwards that this was the reason.
struct Deadline {
    inner: Payload,
    sleep: Pin<Box<tokio::time::Sleep>>,
    expired: Rc<Cell<bool>>,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.expired.get() {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.expired.set(true);
                let timeout = std::io::Error::new(std::io::ErrorKind::TimedOut, "the request body took too long");
                Poll::Ready(Some(Err(PayloadError::Io(timeout))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Puts the deadline on the body, and answers 408 (and closes the
/// connection) when it passed: a page for a browser's form, JSON for
/// everything else (the admin and agent APIs).
pub async fn body_timeout(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let limit = req.app_data::<web::Data<BodyTimeout>>().map(|t| t.0);
    let form = matches!(req.content_type(), "application/x-www-form-urlencoded" | "multipart/form-data");
    let expired = Rc::new(Cell::new(false));
    if let Some(limit) = limit {
        let inner = req.take_payload();
        if !matches!(inner, Payload::None) {
            let sleep = Box::pin(tokio::time::sleep(limit));
            let stream: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> =
                Box::pin(Deadline { inner, sleep, expired: expired.clone() });
            req.set_payload(Payload::from(stream));
        }
    }
    let res = next.call(req).await?;
    if !expired.get() {
        return Ok(res.map_into_boxed_body());
    }
    let seconds = limit.map(|l| l.as_secs()).unwrap_or_default();
    let answer = if !form {
        Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_body_timeout",
            format!("the request body did not arrive within {seconds} s"),
        )
        .into_response()
    } else {
        ErrorPage::new(
            StatusCode::REQUEST_TIMEOUT,
            "The form took too long to arrive",
            "Your browser did not finish sending the form in time. Check your connection and try again.",
        )
        .into_response()
    };
    let mut res = res.into_response(answer);
    res.response_mut().head_mut().set_connection_type(ConnectionType::Close);
    res.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    Ok(res.map_into_boxed_body())
}
