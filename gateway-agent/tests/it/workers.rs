//! Proxy workers (`TOLLGATE_AGENT_WORKERS`): each has its own listener socket and upstream
//! connections, but limits, usage and the graceful stop are the whole agent's.

use hyper::StatusCode;
use jiff::Timestamp;
use tollgate_agent::Clock;
use tollgate_protocol::Period;

use crate::harness::*;

fn ten_past() -> Timestamp {
    "2030-01-01T00:00:10Z".parse().expect("time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_serve_and_share_a_limit_exactly() {
    let (clock, _hands) = Clock::manual(ten_past());
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[('h', Period::Minute, 20)]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let mut settings = settings(cp.url(), dir.path(), Some(clock));
    settings.workers = 2;
    let agent = start_ready(settings).await;
    let url = format!("http://{}/pets/list?user_key={}", agent.proxy_addr(), fixture.key.as_str());

    // Every request on a connection of its own, all at once: the kernel spreads them over
    // both workers' sockets, and the limit still admits exactly 20.
    let answers: Vec<StatusCode> = futures_join(40, || {
        let url = url.clone();
        async move { get(&url, &[]).await.status }
    })
    .await;
    let admitted = answers.iter().filter(|s| **s == StatusCode::OK).count();
    let refused = answers.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!((admitted, refused), (20, 20), "{answers:?}");
    assert_eq!(upstream.count(), 20);
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_every_worker() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[('h', Period::Minute, 1000)]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let mut settings = settings(cp.url(), dir.path(), None);
    settings.workers = 2;
    settings.upstream_timeout = std::time::Duration::from_secs(20);
    let agent = start_ready(settings).await;
    let proxy = agent.proxy_addr();
    let url = format!("http://{proxy}/pets/slow?user_key={}", fixture.key.as_str());

    // Slow requests in flight on connections of their own (so on both workers), then stop.
    const IN_FLIGHT: usize = 8;
    let requests = tokio::spawn(futures_join(IN_FLIGHT, move || {
        let url = url.clone();
        async move { get(&url, &[]).await.status }
    }));
    eventually("every request to reach the upstream", || async { (upstream.count() == IN_FLIGHT).then_some(()) }).await;
    agent.shutdown().await.expect("clean shutdown");
    // The stop waited for every worker's requests: their usage was in the last delivery.
    assert_eq!(cp.accepted_count(fixture.metrics.hits), IN_FLIGHT as u64);
    let answers = requests.await.expect("requests");
    assert_eq!(answers, vec![StatusCode::OK; IN_FLIGHT]);
    assert!(tokio::net::TcpStream::connect(proxy).await.is_err(), "the listeners are closed");
}

/// Runs `count` futures made by `make` concurrently; their outputs in order.
async fn futures_join<F, Fut, T>(count: usize, make: F) -> Vec<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let tasks: Vec<_> = (0..count).map(|_| tokio::spawn(make())).collect();
    let mut outputs = Vec::with_capacity(count);
    for task in tasks {
        outputs.push(task.await.expect("task"));
    }
    outputs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_upstream_closes_are_not_reused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // An upstream that answers one request per connection and closes it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    let server = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
                let _ = stream.shutdown().await;
            });
        }
    });
    let upstream = Upstream::start().await;
    let mut fixture = Fixture::new(&upstream, &[]);
    fixture.snapshot.apis[0].upstreams[0].url = format!("http://{addr}/backend");
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let mut settings = settings(cp.url(), dir.path(), None);
    settings.workers = 1;
    let agent = start_ready(settings).await;
    let url = format!("http://{}/pets/list?user_key={}", agent.proxy_addr(), fixture.key.as_str());
    for n in 1..=5 {
        let answer = get(&url, &[]).await;
        assert_eq!((answer.status, answer.body.as_str()), (StatusCode::OK, "ok"), "request {n}");
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 5, "one connection per request");
    agent.shutdown().await.expect("clean shutdown");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_agent_on_a_taken_port_fails_to_start() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[('h', Period::Minute, 1000)]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let (first_dir, second_dir) = (TempDir::new(), TempDir::new());
    let mut settings_one = settings(cp.url(), first_dir.path(), None);
    settings_one.workers = 2;
    let first = start_ready(settings_one).await;

    // SO_REUSEPORT would let the second one share the port; it must refuse instead.
    let mut settings_two = settings(cp.url(), second_dir.path(), None);
    settings_two.listen = first.proxy_addr();
    let second = tollgate_agent::Agent::start(settings_two).await;
    let err = second.err().expect("the port is taken");
    assert!(err.to_string().starts_with("TOLLGATE_AGENT_LISTEN: cannot listen on"), "{err}");
    first.shutdown().await.expect("clean shutdown");
}
