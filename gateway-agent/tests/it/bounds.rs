//! The bounds a client meets before any handler runs: the size of a request head and the
//! number of open connections.

use tokio::net::TcpStream;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_heads_over_32_kib_by_default_are_refused_with_431() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let target = format!("/pets/list?user_key={}", fixture.key.as_str());

    let fits = format!("X-Big: {}", "a".repeat(30 * 1024));
    assert_eq!(raw_get(agent.proxy_addr(), &target, &[fits.as_str()]).await.status, 200);
    let before = upstream.count();
    let too_big = format!("X-Big: {}", "a".repeat(32 * 1024));
    assert_eq!(raw_get(agent.proxy_addr(), &target, &[too_big.as_str()]).await.status, 431);
    // Many small headers count together.
    let many: Vec<String> = (0..90).map(|i| format!("X-Part-{i}: {}", "b".repeat(400))).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(raw_get(agent.proxy_addr(), &target, &many).await.status, 431);
    assert_eq!(upstream.count(), before, "refused heads never reach the upstream");
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_answered_503_until_one_closes() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let mut settings = settings(cp.url(), dir.path(), None);
    settings.max_connections = Some(3);
    settings.max_header_bytes = 8 * 1024;
    let agent = start_ready(settings).await;
    let proxy = agent.proxy_addr();
    let metrics = format!("http://{}/metrics", agent.admin_addr());
    let target = format!("/pets/list?user_key={}", fixture.key.as_str());

    // Three clients that connect and say nothing hold every place.
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(proxy).await.expect("connect"));
    }
    eventually("three open connections", || async {
        get(&metrics, &[]).await.body.contains("tollgate_agent_open_connections 3").then_some(())
    })
    .await;
    let answer = raw_get(proxy, &target, &[]).await;
    assert_eq!((answer.status, answer.error().as_str()), (503, "too_many_connections"), "{}", answer.body);
    assert!(answer.head.to_ascii_lowercase().contains("retry-after: 1"), "{}", answer.head);
    assert!(get(&metrics, &[]).await.body.contains("tollgate_agent_connections_refused_total 1"));

    // One leaves: the next client gets in.
    drop(idle.pop());
    let url = target.clone();
    eventually("a place to free up", || {
        let url = url.clone();
        async move { (raw_get(proxy, &url, &[]).await.status == 200).then_some(()) }
    })
    .await;
    // The head size setting applies too. Wait for every place to be free first: the agent
    // learns that a client closed only after the close reaches it.
    drop(idle);
    eventually("every connection closed", || async {
        get(&metrics, &[]).await.body.contains("tollgate_agent_open_connections 0\n").then_some(())
    })
    .await;
    let too_big = format!("X-Big: {}", "a".repeat(8 * 1024));
    assert_eq!(raw_get(proxy, &target, &[too_big.as_str()]).await.status, 431);
    agent.shutdown().await.expect("clean shutdown");
}

/// The open-connection count the agent reports.
async fn open_connections(agent: &tollgate_agent::RunningAgent) -> String {
    let metrics = get(&format!("http://{}/metrics", agent.admin_addr()), &[]).await.body;
    metrics.lines().find(|l| l.starts_with("tollgate_agent_open_connections ")).unwrap_or_default().to_owned()
}

/// A client that stops reading its answer loses its connection after the idle timeout, as one
/// that stops sending does: before, an 8 MiB answer nobody read held the client's place under
/// the connection limit (and the upstream connection behind it) for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_off_after_the_idle_timeout() {
    use tokio::io::AsyncWriteExt;
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let mut settings = settings(cp.url(), dir.path(), None);
    settings.client_idle_timeout = std::time::Duration::from_millis(300);
    let agent = start_ready(settings).await;

    // The upstream echoes the body: 8 MiB back to a client that reads none of it.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("a small receive buffer");
    let mut client = socket.connect(agent.proxy_addr()).await.expect("connect");
    let body = vec![b'x'; 8 << 20];
    let head = format!(
        "POST /pets/items?user_key={} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
        fixture.key.as_str(),
        body.len()
    );
    client.write_all(head.as_bytes()).await.expect("head");
    client.write_all(&body).await.expect("body");
    eventually("the answer to be on its way", || async { (upstream.count() == 1).then_some(()) }).await;
    eventually("the stalled connection to be closed", || async {
        (open_connections(&agent).await == "tollgate_agent_open_connections 0").then_some(())
    })
    .await;
    drop(client);
    agent.shutdown().await.expect("clean shutdown");
}

/// The same over HTTP/2, where a client can stall an answer without stalling the connection:
/// it never opens its flow-control window. The stream stayed open, so the connection never
/// went idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_client_that_never_opens_its_window_is_cut_off_after_the_idle_timeout() {
    use bytes::Bytes;
    use http_body_util::Empty;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let mut settings = settings(cp.url(), dir.path(), None);
    settings.client_idle_timeout = std::time::Duration::from_millis(300);
    let agent = start_ready(settings).await;

    let stream = TcpStream::connect(agent.proxy_addr()).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(0)
        .handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
        .await
        .expect("an HTTP/2 connection");
    let connection = tokio::spawn(connection);
    // No key needed: the refusal's JSON body is what cannot be sent.
    let request = hyper::Request::get(format!("http://{}/pets/list", agent.proxy_addr()))
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = tokio::time::timeout(DEADLINE, sender.send_request(request)).await.expect("a head").expect("answer");
    assert_eq!(response.status(), 401);
    let _body_never_read = response;
    eventually("the stalled connection to be closed", || async {
        (open_connections(&agent).await == "tollgate_agent_open_connections 0").then_some(())
    })
    .await;
    let _ = tokio::time::timeout(DEADLINE, connection).await.expect("the agent closed the connection");
    agent.shutdown().await.expect("clean shutdown");
}

/// `TOLLGATE_AGENT_MAX_HEADER_BYTES` above hyper's own buffer bound (408 KiB) holds for
/// HTTP/1.1 too: a 600 KiB head under a 1 MiB setting was refused with 431.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_limit_above_408_kib_is_the_limit() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let mut settings = settings(cp.url(), dir.path(), None);
    settings.max_header_bytes = 1 << 20;
    let agent = start_ready(settings).await;
    let target = format!("/pets/list?user_key={}", fixture.key.as_str());
    // Named in `Connection`, so the big header is not sent on to the upstream.
    let big = format!("X-Big: {}", "a".repeat(600 * 1024));
    let answer = raw_get(agent.proxy_addr(), &target, &["Connection: x-big", big.as_str()]).await;
    assert_eq!(answer.status, 200, "{}", answer.head);
    let too_big = format!("X-Big: {}", "a".repeat(1100 * 1024));
    assert_eq!(raw_get(agent.proxy_addr(), &target, &["Connection: x-big", too_big.as_str()]).await.status, 431);
    agent.shutdown().await.expect("clean shutdown");
}
