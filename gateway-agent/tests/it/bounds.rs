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
