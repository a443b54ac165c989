//! A client byte stream whose writes wait for the client to read for at most the idle
//! timeout. Without it, a client that stops reading (a large answer it never takes, or
//! pipelined requests whose answers it leaves unread) holds its place under
//! `TOLLGATE_AGENT_MAX_CONNECTIONS`, and the upstream connection behind it, for ever: the
//! idle timeout only covers a client that stops sending.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

pub(super) struct WriteDeadline<I> {
    io: I,
    limit: Duration,
    /// Armed while a write waits on the client; kept between stalls, so a connection that
    /// stalls again reuses its timer.
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl<I> WriteDeadline<I> {
    pub fn new(io: I, limit: Duration) -> WriteDeadline<I> {
        WriteDeadline { io, limit, timer: None, armed: false }
    }

    /// Passes a write's result on; a write that has waited past the limit fails instead.
    fn guard<T>(&mut self, cx: &mut Context<'_>, result: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if result.is_ready() {
            self.armed = false;
            return result;
        }
        let deadline = Instant::now() + self.limit;
        let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.armed {
            timer.as_mut().reset(deadline);
            self.armed = true;
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing for the idle timeout while an answer waited",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for WriteDeadline<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.io).poll_write(cx, buf);
        self.guard(cx, result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.guard(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.io).poll_flush(cx);
        self.guard(cx, result)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.io).poll_shutdown(cx);
        self.guard(cx, result)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    // Real time, kept short: tokio's paused clock (`test-util`) would leak into every build
    // of the agent's examples, and so into the benchmarks.
    const LIMIT: Duration = Duration::from_millis(300);

    #[tokio::test]
    async fn a_write_the_client_never_takes_fails_after_the_limit() {
        let (server, _client) = tokio::io::duplex(8);
        let mut io = WriteDeadline::new(server, LIMIT);
        io.write_all(b"12345678").await.expect("fits the pipe");
        let started = Instant::now();
        let err = io.write_all(b"more").await.expect_err("nobody reads");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= LIMIT, "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_client_that_reads_slowly_is_not_cut_off() {
        let (server, mut client) = tokio::io::duplex(8);
        let mut io = WriteDeadline::new(server, LIMIT);
        // Each read comes a third of the limit after the last: every wait is under it, the
        // whole write is well over it.
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 8];
            let mut total = 0;
            while total < 64 {
                tokio::time::sleep(LIMIT / 3).await;
                total += tokio::io::AsyncReadExt::read(&mut client, &mut buf).await.expect("read");
            }
            total
        });
        io.write_all(&[7u8; 64]).await.expect("each wait is under the limit");
        drop(io);
        assert_eq!(reader.await.expect("reader"), 64);
    }
}
