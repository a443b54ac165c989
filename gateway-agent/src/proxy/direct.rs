//! One HTTP/1.1 exchange with an upstream, driven by the request's own task: the request head
//! written from the request's parts (over plain TCP by the worker's [`Flusher`], in a batch
//! with the other heads of the same turn), the answer's head parsed with `httparse`, and its
//! body read from the socket only when the client's connection asks for the next piece.
//!
//! hyper's client runs each upstream connection on a task of its own and hands the request
//! and the answer (head and body) across channels: a quarter of a proxied request's
//! instructions by callgrind, and two task wake-ups a request. A request without a body needs
//! none of that, so it takes this path; requests with a body and upgrades keep hyper's client
//! ([`super::connections`]).
//!
//! Framing follows RFC 9112 §6.3 and errs towards closing: an answer whose length is in doubt
//! is read until the upstream closes, and a connection is pooled again only when its answer
//! ended exactly where the bytes read so far end and had a body by the rules (not after
//! `HEAD`, `204` or `304`, whose body a sloppy upstream sends anyway), was no refusal of the
//! request itself (`400`, `408`, `413`, `414`, `431`: perhaps sent before the upstream read it
//! all) and came after the request head went out whole; and it is taken from the pool only
//! when the kernel holds nothing from it. So no byte an upstream sends past one answer is read
//! as the next request's, and no byte of one request as part of the next.

use std::future::Future as _;
use std::io;
use std::mem::MaybeUninit;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker, ready};

use bytes::{Buf, Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{CONNECTION, CONTENT_LENGTH, HeaderMap, HeaderName, HeaderValue, TRANSFER_ENCODING};
use hyper::http::request::Parts;
use hyper::http::uri::Authority;
use hyper::{Method, Response, StatusCode, Version};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Notify;
use tokio::time::Sleep;
use tokio_rustls::client::TlsStream;

/// Largest answer head read; beyond, the answer is refused as invalid. hyper's client, which
/// the other requests go through, allows about as much (its read buffer's default limit).
const MAX_HEAD: usize = 400 * 1024;
/// Most header fields in an answer head (hyper's client allows 100).
const MAX_HEADERS: usize = 100;
/// Read at least this much room at a time.
const READ_CHUNK: usize = 8 * 1024;
/// Longest chunk-size line (size and extensions).
const MAX_CHUNK_LINE: usize = 4 * 1024;
/// Idle connections kept per upstream and worker.
const MAX_IDLE: usize = 256;
/// Room left in an answer's header map for the fields the agent adds to it (`RateLimit-*`,
/// `Retry-After`, `Deprecation`, `Sunset`, CORS), so that adding them does not grow it.
const ROOM_FOR_AGENT_FIELDS: usize = 8;

/// An upstream connection's byte stream.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(stream) => stream.is_write_vectored(),
            Stream::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Why an exchange failed.
#[derive(Debug)]
pub(crate) enum Failed {
    /// The connection ended or broke before any byte of an answer: the upstream may not have
    /// read the request (a pooled connection it had just closed).
    BeforeAnswer(io::Error),
    /// The connection broke in the middle of the answer's head.
    Broken(io::Error),
    /// The answer's head is not valid HTTP/1.x or its length cannot be known.
    Invalid(&'static str),
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failed::BeforeAnswer(err) => write!(f, "connection ended before an answer: {err}"),
            Failed::Broken(err) => write!(f, "connection broke during the answer's head: {err}"),
            Failed::Invalid(why) => write!(f, "invalid answer: {why}"),
        }
    }
}

impl std::error::Error for Failed {}

/// A connection's bytes: its link, what was read and not yet used, and the request head
/// being written (its buffer reused).
pub(crate) struct Io {
    link: Link,
    read: BytesMut,
    head: Vec<u8>,
}

/// How a direct connection reaches its upstream.
enum Link {
    /// Plain TCP: request heads are written by the worker's [`Flusher`]; answers are read
    /// through tokio's `AsyncRead`, which skips the read that would only say "empty" after a
    /// short one.
    Plain { read: OwnedReadHalf, write: Arc<Plain> },
    /// TLS: written on the request's task.
    Tls(Box<TlsStream<TcpStream>>),
}

/// A plain connection's writing half, shared with the worker's [`Flusher`] while a request
/// head waits to be written.
pub(crate) struct Plain {
    socket: OwnedWriteHalf,
    /// The head waiting to be written, and how much of it was.
    write: Mutex<Write>,
}

#[derive(Default)]
struct Write {
    head: Vec<u8>,
    written: usize,
}

/// Writes the request heads of one worker's plain connections in a batch, after the tasks
/// that were ready with them have run. Writing each head at once woke an idle upstream for
/// every request: the kernel's wake-ups cost more than the instructions this path saves
/// (see BENCHMARKS, "The upstream exchange on the request's own task"). Queued here, the
/// heads of every request read in one turn of the worker go out back to back, as hyper's
/// client, whose connections run on tasks of their own, happens to do; and the request's own
/// task is not polled again until the answer arrives.
#[derive(Default)]
pub(crate) struct Flusher {
    queue: Mutex<Vec<Arc<Plain>>>,
    wake: Notify,
    started: AtomicBool,
}

impl Flusher {
    fn push(self: &Arc<Self>, plain: Arc<Plain>) {
        if !self.started.swap(true, Ordering::Relaxed) {
            tokio::spawn(Arc::clone(self).run());
        }
        let first = {
            let mut queue = lock(&self.queue);
            queue.push(plain);
            queue.len() == 1
        };
        if first {
            self.wake.notify_one();
        }
    }

    async fn run(self: Arc<Self>) {
        let mut batch = Vec::new();
        loop {
            self.wake.notified().await;
            std::mem::swap(&mut *lock(&self.queue), &mut batch);
            for plain in batch.drain(..) {
                plain.flush();
            }
        }
    }
}

impl Plain {
    /// Writes what is left of the head. A socket that takes only part of it (its buffer
    /// full) is finished on a task of its own. A failed write needs no report: the socket
    /// then reads as closed or failed, and the exchange fails before any answer.
    fn flush(self: Arc<Self>) {
        let mut write = lock(&self.write);
        while write.written < write.head.len() {
            match self.socket.try_write(&write.head[write.written..]) {
                Ok(n) => write.written += n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    drop(write);
                    tokio::spawn(self.finish());
                    return;
                }
                Err(_) => return,
            }
        }
    }

    async fn finish(self: Arc<Self>) {
        loop {
            if self.socket.writable().await.is_err() {
                return;
            }
            let mut write = lock(&self.write);
            match self.socket.try_write(&write.head[write.written..]) {
                Ok(n) => {
                    write.written += n;
                    if write.written == write.head.len() {
                        return;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An upstream connection and the timer of its exchanges (moved to each exchange's
/// deadline rather than made anew: see `connections::Pooled`).
pub(crate) struct Conn {
    pub io: Io,
    pub timer: Pin<Box<Sleep>>,
}

impl Conn {
    pub fn new(stream: Stream, timer: Pin<Box<Sleep>>) -> Conn {
        let link = match stream {
            Stream::Plain(socket) => {
                let (read, socket) = socket.into_split();
                Link::Plain { read, write: Arc::new(Plain { socket, write: Mutex::default() }) }
            }
            Stream::Tls(stream) => Link::Tls(stream),
        };
        Conn { io: Io { link, read: BytesMut::with_capacity(READ_CHUNK), head: Vec::with_capacity(1024) }, timer }
    }

    /// Still open with nothing sent by the upstream since its last answer: fit for the next
    /// request. Looks without waiting.
    fn is_reusable(&mut self) -> bool {
        if !self.io.read.is_empty() {
            return false;
        }
        match &mut self.io.link {
            Link::Plain { read, .. } => nothing_unread(read.as_ref()),
            Link::Tls(stream) => {
                // Bytes at the socket may be only a TLS record without data (a session
                // ticket), but are taken as a reason to close: reading them here could not
                // tell an empty socket from one tokio has not yet heard about. rustls may
                // still hold data or a close it has read: a read that does not wait finds it.
                let mut probe = [0u8; 1];
                let mut cx = Context::from_waker(Waker::noop());
                let mut buf = ReadBuf::new(&mut probe);
                nothing_unread(stream.get_ref().0)
                    && Pin::new(stream.as_mut()).poll_read(&mut cx, &mut buf).is_pending()
            }
        }
    }
}

/// Whether the kernel holds nothing unread on `socket`, and no close: a real `recv` with
/// `MSG_PEEK`. tokio's own readiness cannot tell: a read shorter than its buffer marks the
/// socket empty until the reactor next hears from the kernel, so bytes or a FIN that came
/// after the answer, in the same turn of the worker, would go unseen and the connection
/// would carry them into the next request's answer.
fn nothing_unread(socket: &TcpStream) -> bool {
    let mut probe = [MaybeUninit::<u8>::uninit(); 1];
    matches!(socket2::SockRef::from(socket).peek(&mut probe), Err(err) if err.kind() == io::ErrorKind::WouldBlock)
}

/// The head of an answer and how its body is framed.
pub(crate) struct Head {
    pub response: Response<()>,
    body: State,
    /// Whether the connection may carry another request once the body is read.
    reusable: bool,
}

impl Io {
    /// Writes `parts` (origin-form, with `Host`, no body) and reads the answer's head. The
    /// answer's fields go into the request's header map, emptied: over HTTP/1, hyper's server
    /// hands each request the map of the answer before it, so one map goes round a client
    /// connection's requests and answers and is not allocated again. `parts.headers` is taken
    /// only once the answer's head is complete, so a request that failed before any answer
    /// can be sent again.
    pub async fn exchange(&mut self, parts: &mut Parts, flusher: &Arc<Flusher>) -> Result<Head, Failed> {
        encode_head(&mut self.head, parts);
        match &mut self.link {
            Link::Plain { write: plain, .. } => {
                {
                    let mut write = lock(&plain.write);
                    std::mem::swap(&mut write.head, &mut self.head);
                    write.written = 0;
                }
                flusher.push(Arc::clone(plain));
            }
            Link::Tls(stream) => {
                stream.write_all(&self.head).await.map_err(Failed::BeforeAnswer)?;
                stream.flush().await.map_err(Failed::BeforeAnswer)?;
            }
        }
        let mut informational = false;
        loop {
            if !self.read.is_empty() {
                match parse_head(&mut self.read, parts.method == Method::HEAD, &mut parts.headers)? {
                    Some(Parsed::Final(mut head)) => {
                        // Answered before all of the head went out: the upstream would read
                        // the rest, after this answer, as a request of its own.
                        head.reusable &= self.head_sent();
                        return Ok(head);
                    }
                    Some(Parsed::Informational) => {
                        informational = true;
                        continue;
                    }
                    None if self.read.len() >= MAX_HEAD => return Err(Failed::Invalid("answer head too large")),
                    None => {}
                }
            }
            self.read.reserve(READ_CHUNK);
            let answered = informational || !self.read.is_empty();
            match std::future::poll_fn(|cx| self.poll_read_more(cx)).await {
                Ok(0) if answered => return Err(Failed::Broken(io::ErrorKind::UnexpectedEof.into())),
                Ok(0) => return Err(Failed::BeforeAnswer(io::ErrorKind::UnexpectedEof.into())),
                Ok(_) => {}
                Err(err) if answered => return Err(Failed::Broken(err)),
                Err(err) => return Err(Failed::BeforeAnswer(err)),
            }
        }
    }
}

impl Drop for Io {
    /// A head still being written by its own task (see [`Plain::flush`]) would hold the
    /// socket open for as long as the upstream does not read it, perhaps for ever: shutting
    /// the writing side ends that task, and the socket is closed.
    fn drop(&mut self) {
        if let Link::Plain { read, .. } = &self.link
            && !self.head_sent()
        {
            let _ = socket2::SockRef::from(read.as_ref()).shutdown(std::net::Shutdown::Write);
        }
    }
}

impl Io {
    /// Whether the last request head went out whole. An upstream may answer before it has
    /// read all of a head (a refusal of a long one): the rest, still being written, would
    /// reach it ahead of the next request's head, and is lost if the next head replaces it.
    fn head_sent(&self) -> bool {
        match &self.link {
            Link::Plain { write, .. } => {
                let write = lock(&write.write);
                write.written == write.head.len()
            }
            // Written whole before the answer was read.
            Link::Tls(_) => true,
        }
    }

    /// Reads what the upstream sent next into `read`; 0: it closed.
    fn poll_read_more(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        match &mut self.link {
            Link::Plain { read, .. } => pin!(read.read_buf(&mut self.read)).poll(cx),
            Link::Tls(stream) => pin!(stream.read_buf(&mut self.read)).poll(cx),
        }
    }
}

/// The request line and header fields of `parts`, as HTTP/1.1. The `http` types cannot hold
/// CR, LF or NUL in a method, target, name or value, so nothing here can split the message.
fn encode_head(out: &mut Vec<u8>, parts: &Parts) {
    out.clear();
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(parts.uri.path_and_query().map_or("/", |target| target.as_str()).as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &parts.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // A method that means to send content says how much there is, as hyper's client does.
    if matches!(parts.method, Method::POST | Method::PUT | Method::PATCH) && !parts.headers.contains_key(CONTENT_LENGTH)
    {
        out.extend_from_slice(b"content-length: 0\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

enum Parsed {
    /// A 1xx answer (not 101), consumed: the final one follows.
    Informational,
    Final(Head),
}

/// The answer head at the start of `read`, consumed from it; `None` if incomplete.
fn parse_head(read: &mut BytesMut, head_request: bool, spare: &mut HeaderMap) -> Result<Option<Parsed>, Failed> {
    // Where each field's name and value are in `read`, found before `read` is split.
    let mut fields = [(0u32, 0u32, 0u32, 0u32); MAX_HEADERS];
    let (length, code, version, count) = {
        let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut []);
        let length = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut response,
            read,
            &mut headers,
        ) {
            Ok(httparse::Status::Complete(length)) => length,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(Failed::Invalid("too many header fields")),
            Err(_) => return Err(Failed::Invalid("malformed answer head")),
        };
        let base = read.as_ptr() as usize;
        for (field, header) in fields.iter_mut().zip(response.headers.iter()) {
            let name = header.name.as_ptr() as usize - base;
            let value = header.value.as_ptr() as usize - base;
            *field = (name as u32, header.name.len() as u32, value as u32, header.value.len() as u32);
        }
        (length, response.code.unwrap_or(0), response.version.unwrap_or(0), response.headers.len())
    };
    let status = StatusCode::from_u16(code).map_err(|_| Failed::Invalid("invalid status code"))?;
    if status.is_informational() {
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(Failed::Invalid("101 to a request that asked for no upgrade"));
        }
        read.advance(length);
        return Ok(Some(Parsed::Informational));
    }
    let bytes = read.split_to(length).freeze();
    let mut headers = std::mem::take(spare);
    headers.clear();
    headers.reserve(count + ROOM_FOR_AGENT_FIELDS);
    for &(name, name_len, value, value_len) in &fields[..count] {
        let name = HeaderName::from_bytes(&bytes[name as usize..(name + name_len) as usize])
            .map_err(|_| Failed::Invalid("invalid header name"))?;
        let value = HeaderValue::from_maybe_shared(bytes.slice(value as usize..(value + value_len) as usize))
            .map_err(|_| Failed::Invalid("invalid header value"))?;
        headers.append(name, value);
    }
    let version = if version == 1 { Version::HTTP_11 } else { Version::HTTP_10 };
    let (body, reusable) = framing(&mut headers, status, version, head_request)?;
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = version;
    *response.headers_mut() = headers;
    Ok(Some(Parsed::Final(Head { response, body, reusable })))
}

/// A refusal an upstream may send before it has read the whole request (a head too long, a
/// malformed one, a timeout): what it left unread would be parsed as the next request.
fn refuses_the_request_itself(status: StatusCode) -> bool {
    matches!(status.as_u16(), 400 | 408 | 413 | 414 | 431)
}

/// How the body of an answer is delimited (RFC 9112 §6.3), and whether the connection may be
/// reused after it.
fn framing(
    headers: &mut HeaderMap,
    status: StatusCode,
    version: Version,
    head_request: bool,
) -> Result<(State, bool), Failed> {
    let keep_alive = version == Version::HTTP_11
        && !refuses_the_request_itself(status)
        && !headers
            .get_all(CONNECTION)
            .iter()
            .flat_map(|value| value.as_bytes().split(|&b| b == b','))
            .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"));
    if head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        // No body by the rules, but a sloppy upstream (Python's `http.server` with
        // `do_HEAD = do_GET`) sends one anyway, perhaps later: such a connection is never
        // given to another request, which would read that body as its answer.
        return Ok((State::Length(0), false));
    }
    if headers.contains_key(TRANSFER_ENCODING) {
        // Only `chunked` alone, on HTTP/1.1 (RFC 9112 §6.1): another coding (`gzip, chunked`)
        // would reach the client as plain content, since `Transfer-Encoding` ends at this
        // hop; nginx refuses such answers too.
        if version != Version::HTTP_11 || !super::forward::chunked_alone(headers) {
            return Err(Failed::Invalid("a transfer coding other than chunked alone"));
        }
        // Both: the transfer coding wins, and the connection is not trusted after it.
        let both = headers.remove(CONTENT_LENGTH).is_some();
        return Ok((State::ChunkSize, keep_alive && !both));
    }
    let mut length = None;
    let mut items = 0;
    for value in headers.get_all(CONTENT_LENGTH) {
        for item in value.as_bytes().split(|&b| b == b',') {
            items += 1;
            let item = item.trim_ascii();
            if item.is_empty() || item.len() > 18 || !item.iter().all(u8::is_ascii_digit) {
                return Err(Failed::Invalid("invalid Content-Length"));
            }
            let parsed = item.iter().fold(0u64, |n, digit| n * 10 + u64::from(digit - b'0'));
            if length.is_some_and(|known| known != parsed) {
                return Err(Failed::Invalid("conflicting Content-Length values"));
            }
            length = Some(parsed);
        }
    }
    if let Some(length) = length
        && items > 1
    {
        // RFC 9110 8.6: a list of one repeated length goes on as that one length; strict
        // clients and caches refuse the list.
        headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    }
    Ok(match length {
        Some(length) => (State::Length(length), keep_alive),
        None => (State::UntilClose, false),
    })
}

/// Where a body's framing stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// This many bytes of content are left.
    Length(u64),
    /// Content until the upstream closes.
    UntilClose,
    /// Next: a chunk-size line.
    ChunkSize,
    /// This many bytes of the current chunk are left.
    ChunkData(u64),
    /// Next: the CRLF that ends a chunk's data.
    ChunkEnd,
    /// Next: the trailer section after the last chunk.
    Trailers,
    /// The body has ended.
    Done,
}

enum Step {
    Frame(Frame<Bytes>),
    Done,
    NeedMore,
}

impl State {
    fn is_done(self) -> bool {
        matches!(self, State::Done | State::Length(0))
    }

    /// The next frame from `read`, consumed from it.
    fn next(&mut self, read: &mut BytesMut) -> Result<Step, &'static str> {
        loop {
            match *self {
                State::Done | State::Length(0) => {
                    *self = State::Done;
                    return Ok(Step::Done);
                }
                State::Length(left) | State::ChunkData(left) => {
                    if read.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    let take = left.min(read.len() as u64);
                    *self = match *self {
                        State::ChunkData(_) if take == left => State::ChunkEnd,
                        State::ChunkData(_) => State::ChunkData(left - take),
                        _ => State::Length(left - take),
                    };
                    return Ok(Step::Frame(Frame::data(read.split_to(take as usize).freeze())));
                }
                State::UntilClose => {
                    if read.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    return Ok(Step::Frame(Frame::data(read.split().freeze())));
                }
                State::ChunkSize => {
                    let Some(end) = read.iter().position(|&b| b == b'\n') else {
                        return if read.len() > MAX_CHUNK_LINE {
                            Err("chunk-size line too long")
                        } else {
                            Ok(Step::NeedMore)
                        };
                    };
                    let size = chunk_size(&read[..end])?;
                    read.advance(end + 1);
                    *self = if size == 0 { State::Trailers } else { State::ChunkData(size) };
                }
                State::ChunkEnd => {
                    if read.len() < 2 {
                        return Ok(Step::NeedMore);
                    }
                    if &read[..2] != b"\r\n" {
                        return Err("chunk data longer than its size");
                    }
                    read.advance(2);
                    *self = State::ChunkSize;
                }
                State::Trailers => {
                    if read.starts_with(b"\r\n") {
                        read.advance(2);
                        *self = State::Done;
                        return Ok(Step::Done);
                    }
                    // Where the section ends is the parser's to say: a search for CRLF CRLF
                    // would skip what follows a section ended otherwise.
                    let Some((length, trailers)) = parse_trailers(read)? else {
                        return if read.len() > MAX_HEAD {
                            Err("trailer section too large")
                        } else {
                            Ok(Step::NeedMore)
                        };
                    };
                    read.advance(length);
                    *self = State::Done;
                    return Ok(Step::Frame(Frame::trailers(trailers)));
                }
            }
        }
    }
}

/// The size in a chunk-size line (`line` without its LF): hex digits, then optional
/// extensions after `;`, ended by CR.
fn chunk_size(line: &[u8]) -> Result<u64, &'static str> {
    let line = line.strip_suffix(b"\r").ok_or("chunk-size line not ended by CRLF")?;
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 15 {
        return Err("invalid chunk size");
    }
    let rest = line[digits..].trim_ascii_start();
    if !rest.is_empty() && rest[0] != b';' {
        return Err("invalid chunk size");
    }
    Ok(line[..digits].iter().fold(0u64, |n, &b| n * 16 + u64::from(char::from(b).to_digit(16).unwrap_or(0))))
}

/// The trailer section at the start of `read` and its length, or `None` until it is whole.
fn parse_trailers(read: &[u8]) -> Result<Option<(usize, HeaderMap)>, &'static str> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let (length, fields) = match httparse::parse_headers(read, &mut headers) {
        Ok(httparse::Status::Complete(complete)) => complete,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err("malformed trailer section"),
    };
    let mut trailers = HeaderMap::with_capacity(fields.len());
    for field in fields {
        let name = HeaderName::from_bytes(field.name.as_bytes()).map_err(|_| "invalid trailer name")?;
        let value = HeaderValue::from_bytes(field.value).map_err(|_| "invalid trailer value")?;
        trailers.append(name, value);
    }
    Ok(Some((length, trailers)))
}

/// An upstream's pool key: its authority, and whether it speaks TLS.
pub(crate) type Peer = (Authority, bool);

/// One worker's idle connections of this kind, per upstream.
#[derive(Default)]
pub(crate) struct Idle {
    /// An agent has few upstreams: a list beats hashing. Never contended (one worker
    /// thread); a mutex only because tasks are `Send`.
    peers: Mutex<Vec<(Peer, Vec<Conn>)>>,
}

impl Idle {
    /// An idle connection to the peer that is still fit for a request.
    pub fn take(&self, authority: &Authority, tls: bool) -> Option<Conn> {
        let mut peers = self.peers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (_, idle) = peers.iter_mut().find(|(known, _)| same_peer(known, authority, tls))?;
        while let Some(mut conn) = idle.pop() {
            if conn.is_reusable() {
                return Some(conn);
            }
        }
        None
    }

    fn put(&self, (authority, tls): &Peer, conn: Conn) {
        let mut peers = self.peers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match peers.iter_mut().find(|(known, _)| same_peer(known, authority, *tls)) {
            Some((_, idle)) if idle.len() < MAX_IDLE => idle.push(conn),
            Some(_) => {}
            None => peers.push(((authority.clone(), *tls), vec![conn])),
        }
    }
}

/// Whether `known` is the pool of `authority` and `tls`. A pool's authority is a clone of its
/// target's, sharing its text, so the same text is found by address first; `Authority`'s own
/// comparison (case-insensitive, byte by byte) decides otherwise (targets rebuilt by a reload).
pub(crate) fn same_peer((known, known_tls): &Peer, authority: &Authority, tls: bool) -> bool {
    *known_tls == tls && (std::ptr::eq(known.as_str(), authority.as_str()) || known == authority)
}

/// The answer's body, read from the connection as it is asked for. The connection goes back
/// to its pool when the body has been read to its end and nothing follows it.
pub(crate) struct Reply {
    conn: Option<Conn>,
    state: State,
    reusable: bool,
    home: Arc<Idle>,
    peer: Peer,
}

impl Reply {
    /// The answer of `head`, whose body is read from `conn`, pooled in `home` after it.
    pub fn new(conn: Conn, head: Head, home: Arc<Idle>, peer: Peer) -> Response<Reply> {
        let Head { response, body, reusable } = head;
        response.map(|()| Reply { conn: Some(conn), state: body, reusable, home, peer })
    }
}

impl Body for Reply {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else { return Poll::Ready(None) };
            match this.state.next(&mut conn.io.read) {
                Ok(Step::Frame(frame)) => return Poll::Ready(Some(Ok(frame))),
                Ok(Step::Done) => return Poll::Ready(None),
                Ok(Step::NeedMore) => {}
                Err(why) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(io::Error::new(io::ErrorKind::InvalidData, why))));
                }
            }
            if conn.io.read.capacity() - conn.io.read.len() < READ_CHUNK / 4 {
                conn.io.read.reserve(READ_CHUNK);
            }
            let read = ready!(conn.io.poll_read_more(cx));
            match read {
                Ok(0) if this.state == State::UntilClose => {
                    this.state = State::Done;
                    this.conn = None;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(io::ErrorKind::UnexpectedEof.into())));
                }
                Ok(_) => {}
                Err(err) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(err)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.state.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(left) => SizeHint::with_exact(left),
            State::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if self.reusable
            && self.state.is_done()
            && let Some(mut conn) = self.conn.take()
            && conn.io.read.is_empty()
        {
            // A large answer head grew the buffer (up to `MAX_HEAD`): an idle connection
            // does not keep that much.
            if conn.io.read.capacity() > 4 * READ_CHUNK {
                conn.io.read = BytesMut::with_capacity(READ_CHUNK);
            }
            self.home.put(&self.peer, conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str, head_request: bool) -> Result<(Response<()>, State, bool), Failed> {
        let mut read = BytesMut::from(text.as_bytes());
        match parse_head(&mut read, head_request, &mut HeaderMap::new())? {
            Some(Parsed::Final(head)) => Ok((head.response, head.body, head.reusable)),
            Some(Parsed::Informational) => panic!("informational"),
            None => panic!("incomplete"),
        }
    }

    fn body(state: State, mut read: BytesMut) -> Result<(Vec<u8>, Option<HeaderMap>, State), &'static str> {
        let mut state = state;
        let (mut data, mut trailers) = (Vec::new(), None);
        loop {
            match state.next(&mut read)? {
                Step::Frame(frame) => match frame.into_data() {
                    Ok(bytes) => data.extend_from_slice(&bytes),
                    Err(frame) => trailers = frame.into_trailers().ok(),
                },
                Step::Done | Step::NeedMore => return Ok((data, trailers, state)),
            }
        }
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let (response, state, reusable) = head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false).expect("valid");
        assert_eq!((response.status(), state, reusable), (StatusCode::OK, State::Length(5), true));
        let (_, state, reusable) = head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true).expect("valid");
        assert_eq!((state, reusable), (State::Length(0), false), "HEAD has no body, and its connection is not reused");
        let (_, state, _) = head("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", false).expect("valid");
        assert_eq!(state, State::Length(0));
        let (_, state, reusable) = head("HTTP/1.1 200 OK\r\n\r\n", false).expect("valid");
        assert_eq!((state, reusable), (State::UntilClose, false));
        let (_, state, reusable) =
            head("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", false).expect("valid");
        assert_eq!((state, reusable), (State::Length(1), false));
        for status in ["400 Bad Request", "408 Request Timeout", "414 URI Too Long", "431 Too Large"] {
            let (_, _, reusable) =
                head(&format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n"), false).expect("valid");
            assert!(!reusable, "{status}: perhaps sent before the request was read whole");
        }
        let (_, _, reusable) = head("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", false).expect("valid");
        assert!(reusable, "404");
        let (_, state, reusable) = head("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false).expect("valid");
        assert_eq!((state, reusable), (State::Length(1), false), "HTTP/1.0: not reused");
        let (_, state, reusable) = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false).expect("valid");
        assert_eq!((state, reusable), (State::ChunkSize, true));
        let (response, state, reusable) =
            head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", false).expect("valid");
        assert_eq!((state, reusable), (State::ChunkSize, false), "both: chunked, then closed");
        assert!(!response.headers().contains_key(CONTENT_LENGTH));
        let (_, state, _) = head("HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\n\r\n", false).expect("valid");
        assert_eq!(state, State::Length(7));
        for invalid in [
            "HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Length: 8\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
            // Codings other than chunked alone would reach the client as plain content.
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert!(matches!(head(invalid, false), Err(Failed::Invalid(_))), "{invalid:?}");
        }
    }

    #[test]
    fn informational_answers_are_skipped_and_the_head_is_consumed() {
        let mut read = BytesMut::from(
            &b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"[..],
        );
        assert!(matches!(parse_head(&mut read, false, &mut HeaderMap::new()), Ok(Some(Parsed::Informational))));
        let Ok(Some(Parsed::Final(head))) = parse_head(&mut read, false, &mut HeaderMap::new()) else {
            panic!("final head")
        };
        assert_eq!(head.response.headers()["content-length"], "2");
        assert_eq!(&read[..], b"hi");
        let mut partial = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Le"[..]);
        assert!(matches!(parse_head(&mut partial, false, &mut HeaderMap::new()), Ok(None)));
    }

    #[test]
    fn chunked_bodies_are_decoded_with_their_trailers() {
        let (data, trailers, state) =
            body(State::ChunkSize, BytesMut::from(&b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nDigest: x\r\n\r\n"[..]))
                .expect("valid");
        assert_eq!(data, b"hello world");
        assert_eq!(trailers.expect("trailers")["digest"], "x");
        assert_eq!(state, State::Done);
        let (data, trailers, state) =
            body(State::ChunkSize, BytesMut::from(&b"2\r\nhi\r\n0\r\n\r\n"[..])).expect("valid");
        assert_eq!((data.as_slice(), trailers.is_none(), state), (&b"hi"[..], true, State::Done));
        // Split anywhere: waits for more.
        let (data, _, state) = body(State::ChunkSize, BytesMut::from(&b"5\r\nhel"[..])).expect("valid");
        assert_eq!((data.as_slice(), state), (&b"hel"[..], State::ChunkData(2)));
        for invalid in ["5\r\nhello world\r\n", "zz\r\n", "5\nhello\r\n", "1234567890abcdef0\r\n", "5 x\r\n"] {
            assert!(body(State::ChunkSize, BytesMut::from(invalid.as_bytes())).is_err(), "{invalid:?}");
        }
    }

    #[test]
    fn a_trailer_section_ends_where_the_parser_says() {
        // Ended by bare LFs, as httparse allows: what follows is left in the buffer (so the
        // connection is not pooled), not skipped up to a later CRLF CRLF.
        let mut read = BytesMut::from(&b"X: 1\n\nJUNK\r\n\r\n"[..]);
        let mut state = State::Trailers;
        let Ok(Step::Frame(frame)) = state.next(&mut read) else { panic!("trailers") };
        assert_eq!(frame.into_trailers().expect("trailers")["x"], "1");
        assert_eq!((&read[..], state), (&b"JUNK\r\n\r\n"[..], State::Done));
        // Not yet whole: waits.
        let mut read = BytesMut::from(&b"X: 1\r\nY"[..]);
        let mut state = State::Trailers;
        assert!(matches!(state.next(&mut read), Ok(Step::NeedMore)));
    }

    #[test]
    fn a_length_body_stops_at_its_length() {
        let mut read = BytesMut::from(&b"helloHTTP/1.1 200 OK\r\n"[..]);
        let mut state = State::Length(5);
        let Ok(Step::Frame(frame)) = state.next(&mut read) else { panic!("frame") };
        assert_eq!(frame.into_data().expect("data"), "hello");
        assert!(matches!(state.next(&mut read), Ok(Step::Done)));
        assert_eq!(&read[..], b"HTTP/1.1 200 OK\r\n", "what follows is left, and the connection not pooled");
    }

    #[test]
    fn the_request_head_is_http_1_1() {
        let (mut parts, ()) = hyper::Request::builder()
            .method(Method::POST)
            .uri("/a/b?c=d")
            .header("host", "upstream:8080")
            .header("x-one", "1")
            .body(())
            .expect("request")
            .into_parts();
        let mut out = Vec::new();
        encode_head(&mut out, &parts);
        assert_eq!(out, b"POST /a/b?c=d HTTP/1.1\r\nhost: upstream:8080\r\nx-one: 1\r\ncontent-length: 0\r\n\r\n");
        parts.method = Method::GET;
        parts.uri = "/".parse().expect("uri");
        encode_head(&mut out, &parts);
        assert_eq!(out, b"GET / HTTP/1.1\r\nhost: upstream:8080\r\nx-one: 1\r\n\r\n");
    }

    /// What a test's upstream does next.
    type Act = Box<dyn FnOnce(&mut std::net::TcpStream) + Send>;

    /// An upstream on a thread of its own, with blocking sockets, so that it can act while the
    /// worker's thread is held and tokio's reactor cannot hear of what it does.
    struct Upstream {
        address: std::net::SocketAddr,
        go: std::sync::mpsc::Sender<()>,
        done: std::sync::mpsc::Receiver<()>,
        thread: std::thread::JoinHandle<()>,
    }

    impl Upstream {
        /// Accepts one connection, reads `read` bytes (all of the head when `None`), sends
        /// `answer`; then, at each `go`, the next of `then`, and says it is done.
        fn start(read: Option<usize>, answer: &'static [u8], then: Vec<Act>) -> Upstream {
            use std::io::{Read as _, Write as _};
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            // A small receive buffer (taken by the accepted socket): a large head then
            // cannot all be written before the upstream reads it.
            socket2::SockRef::from(&listener).set_recv_buffer_size(4096).expect("receive buffer");
            let address = listener.local_addr().expect("address");
            let (go, go_seen) = std::sync::mpsc::channel::<()>();
            let (did, done) = std::sync::mpsc::channel::<()>();
            let thread = std::thread::spawn(move || {
                let (mut socket, _) = listener.accept().expect("accept");
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while read.map_or(!head.ends_with(b"\r\n\r\n"), |read| head.len() < read) {
                    socket.read_exact(&mut byte).expect("request head");
                    head.push(byte[0]);
                }
                socket.write_all(answer).expect("answer");
                for step in then {
                    if go_seen.recv().is_err() {
                        return;
                    }
                    step(&mut socket);
                    did.send(()).expect("done");
                }
                // Open until the test ends.
                let _ = go_seen.recv();
            });
            Upstream { address, go, done, thread }
        }

        /// The next step, waited for on the worker's thread itself: the reactor cannot run.
        fn step(&self) {
            self.go.send(()).expect("upstream");
            self.done.recv().expect("upstream step");
        }

        fn end(self) {
            drop(self.go);
            self.thread.join().expect("upstream thread");
        }
    }

    /// A GET of `/` with `extra` as the value of one more field, through a new connection to
    /// `upstream`, its answer read to the end: the pool it went back to, if any.
    async fn exchange_once(upstream: &Upstream, extra: &str) -> (Arc<Idle>, Authority) {
        let stream = TcpStream::connect(upstream.address).await.expect("connect");
        socket2::SockRef::from(&stream).set_send_buffer_size(4096).expect("send buffer");
        let mut conn =
            Conn::new(Stream::Plain(stream), Box::pin(tokio::time::sleep(std::time::Duration::from_secs(30))));
        let (mut parts, ()) = hyper::Request::get("/")
            .header("host", "upstream")
            .header("x-extra", extra)
            .body(())
            .expect("request")
            .into_parts();
        let head = conn.io.exchange(&mut parts, &Arc::new(Flusher::default())).await.expect("answer");
        let authority: Authority = "upstream".parse().expect("authority");
        let home = Arc::new(Idle::default());
        let mut reply = Reply::new(conn, head, Arc::clone(&home), (authority.clone(), false)).into_body();
        while let Some(frame) = http_body_util::BodyExt::frame(&mut reply).await {
            frame.expect("body");
        }
        drop(reply);
        (home, authority)
    }

    /// Whether the pool hands out a connection within a second. The kernel may take a moment
    /// to deliver the upstream's bytes, so a connection handed out is put back and asked for
    /// again; the worker's thread is never given up, so tokio learns nothing meanwhile.
    fn handed_out_for_a_second(home: &Idle, authority: &Authority) -> bool {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(1);
        loop {
            match home.take(authority, false) {
                None => return false,
                Some(conn) if std::time::Instant::now() >= until => {
                    home.put(&(authority.clone(), false), conn);
                    return true;
                }
                Some(conn) => home.put(&(authority.clone(), false), conn),
            }
        }
    }

    #[tokio::test]
    async fn a_pooled_connection_with_bytes_or_a_close_after_its_answer_is_not_handed_out() {
        let stray: Act = Box::new(|socket| {
            std::io::Write::write_all(socket, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray")
                .expect("stray answer");
        });
        let close: Act = Box::new(|socket| socket.shutdown(std::net::Shutdown::Write).expect("close"));
        for (what, then) in [("stray bytes", stray), ("a close", close)] {
            // Head and body in one piece: one read, shorter than its buffer, takes both, and
            // tokio marks the socket empty.
            let upstream = Upstream::start(None, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", vec![then]);
            let (home, authority) = exchange_once(&upstream, "x").await;
            let conn = home.take(&authority, false).expect("a complete answer with nothing after it: pooled and fit");
            home.put(&(authority.clone(), false), conn);
            upstream.step();
            assert!(
                !handed_out_for_a_second(&home, &authority),
                "{what} after the answer: the connection is not reused"
            );
            upstream.end();
        }
    }

    #[tokio::test]
    async fn a_connection_answered_before_its_head_went_out_is_not_pooled() {
        // The upstream answers after the request line, before the rest of a 1 MB head (an
        // answer that is not a refusal, which is never pooled anyway): the rest is still being
        // written when the answer is complete.
        let (tell, told) = tokio::sync::oneshot::channel();
        let read_to_the_end: Act = Box::new(move |socket| {
            let read = std::io::copy(socket, &mut std::io::sink()).expect("read to the end");
            tell.send(read).expect("told");
        });
        let upstream =
            Upstream::start(Some(16), b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", vec![read_to_the_end]);
        let (home, authority) = exchange_once(&upstream, &"a".repeat(1 << 20)).await;
        assert!(home.take(&authority, false).is_none(), "its unwritten head would go before the next request's");
        // Dropped, the connection no longer writes what is left of its head: the upstream,
        // reading now, finds the end of the stream long before the end of the head.
        upstream.go.send(()).expect("upstream");
        let read = told.await.expect("upstream read");
        assert!(read < 1 << 19, "the upstream read {read} bytes: the head went on being written");
        upstream.end();
    }
}
