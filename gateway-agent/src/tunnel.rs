//! Upgraded connections (WebSocket and other `Connection: Upgrade` protocols) once the
//! upstream has answered `101 Switching Protocols`: bytes are copied both ways until both
//! sides have closed, an idle connection is closed after the idle timeout, and the agent's
//! stop closes it within a bound.
//!
//! An upgraded connection stays what it was: one of the listener's open connections. The
//! accept loop gives each upgrade request a [`Lease`] holding the connection's place under
//! the connection limit and in the drain; the tunnel keeps it until it closes, so the limit
//! still counts it and a stopping agent waits for it (see `server.rs`).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;
use tokio::time::Instant;

/// How long closing a tunnel (at the idle timeout or the agent's stop) waits for each side
/// to take the end of the stream and close its own, before the sockets are dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What keeps an upgraded connection counted: its place under the connection limit and in
/// the listener's drain, and the listener's stop signal. Put in an upgrade request's
/// extensions by the accept loop.
#[derive(Clone)]
pub(crate) struct Lease {
    _hold: Arc<dyn Send + Sync>,
    stop: watch::Receiver<bool>,
}

impl Lease {
    pub fn new(hold: Arc<dyn Send + Sync>, stop: watch::Receiver<bool>) -> Lease {
        Lease { _hold: hold, stop }
    }
}

/// Why a tunnel ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Both sides closed (or one failed).
    Closed,
    /// Nothing moved either way for the idle timeout.
    Idle,
    /// The agent is stopping.
    Stopped,
}

/// Copies bytes between `client` and `upstream` until both directions have ended, nothing
/// moved for `idle`, or the lease's stop signal changes; in the last two cases both sides
/// are shut down (a FIN each, within [`CLOSE_GRACE`]). The lease is given back at the end.
pub(crate) async fn splice<C, U>(mut client: C, mut upstream: U, idle: Duration, lease: Lease) -> Ended
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let mut stop = lease.stop.clone();
    let opened = Instant::now();
    // Milliseconds from `opened` to the last byte that moved, either way.
    let last = AtomicU64::new(0);
    let ended = {
        let mut client = Watched { io: &mut client, last: &last, opened };
        let mut upstream = Watched { io: &mut upstream, last: &last, opened };
        let idle_for = async {
            loop {
                let deadline = opened + Duration::from_millis(last.load(Ordering::Relaxed)) + idle;
                if Instant::now() >= deadline {
                    return;
                }
                tokio::time::sleep_until(deadline).await;
            }
        };
        let stopping = async {
            if !*stop.borrow_and_update() {
                // An error: the agent is gone, which is a stop too.
                let _ = stop.changed().await;
            }
        };
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => Ended::Closed,
            () = idle_for => Ended::Idle,
            () = stopping => Ended::Stopped,
        }
    };
    if ended != Ended::Closed {
        let _ =
            tokio::time::timeout(CLOSE_GRACE, async { tokio::join!(close(&mut client), close(&mut upstream)) }).await;
    }
    drop(lease);
    ended
}

/// Ends the stream towards `io` (a FIN), then reads what it still sends until it closes
/// too, so that dropping the socket does not reset it before it has read the end.
async fn close<I: AsyncRead + AsyncWrite + Unpin>(io: &mut I) -> io::Result<()> {
    io.shutdown().await?;
    let mut sink = [0u8; 4096];
    while io.read(&mut sink).await? > 0 {}
    Ok(())
}

/// A stream that notes when bytes last moved through it.
struct Watched<'a, I> {
    io: &'a mut I,
    last: &'a AtomicU64,
    opened: Instant,
}

impl<I> Watched<'_, I> {
    fn moved(&self) {
        let since = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(since, Ordering::Relaxed);
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<'_, I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut *self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.moved();
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<'_, I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut *self.io).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease() -> (watch::Sender<bool>, Lease, Arc<()>) {
        let (stop, stop_rx) = watch::channel(false);
        let held = Arc::new(());
        (stop, Lease::new(held.clone(), stop_rx), held)
    }

    // Real time (tokio's paused clock would need its `test-util` feature in the benchmarks'
    // builds too): the margins are wide so that a loaded machine cannot turn 0.6 s into 2 s.
    #[tokio::test]
    async fn an_idle_tunnel_closes_and_traffic_keeps_it_open() {
        let (_stop, lease, held) = lease();
        let (mut client, agent_client) = tokio::io::duplex(1024);
        let (agent_upstream, mut upstream) = tokio::io::duplex(1024);
        let opened = Instant::now();
        let tunnel = tokio::spawn(splice(agent_client, agent_upstream, Duration::from_secs(2), lease));
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(600)).await;
            client.write_all(b"ping").await.expect("write");
            let mut got = [0u8; 4];
            upstream.read_exact(&mut got).await.expect("read");
            assert_eq!(&got, b"ping");
        }
        assert!(!tunnel.is_finished(), "open for {:?}, never idle for 2 s", opened.elapsed());
        let quiet = Instant::now();
        assert_eq!(tunnel.await.expect("tunnel"), Ended::Idle);
        assert!(quiet.elapsed() >= Duration::from_millis(1900), "closed after {:?} of quiet", quiet.elapsed());
        let mut rest = Vec::new();
        assert_eq!(client.read_to_end(&mut rest).await.expect("eof"), 0, "the client saw the end");
        assert_eq!(Arc::strong_count(&held), 1, "the lease was given back");
    }

    #[tokio::test]
    async fn the_stop_closes_both_sides() {
        let (stop, lease, _held) = lease();
        let (mut client, agent_client) = tokio::io::duplex(1024);
        let (agent_upstream, mut upstream) = tokio::io::duplex(1024);
        let tunnel = tokio::spawn(splice(agent_client, agent_upstream, Duration::from_secs(3600), lease));
        stop.send(true).expect("send");
        assert_eq!(tunnel.await.expect("tunnel"), Ended::Stopped);
        let mut rest = Vec::new();
        assert_eq!(client.read_to_end(&mut rest).await.expect("eof"), 0);
        assert_eq!(upstream.read_to_end(&mut rest).await.expect("eof"), 0);
    }
}
