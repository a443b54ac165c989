//! Shared counters in Redis (expects Redis on 127.0.0.1:6379) and the local fallback.

use hyper::StatusCode;
use jiff::Timestamp;
use tollgate_agent::{Clock, RedisUrl};
use tollgate_protocol::Period;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_share_one_limit_through_redis() {
    // Fresh ids in every run, so counters of earlier runs (kept until their window ends) do
    // not interfere; one manual clock, so both agents are in the same window.
    let (clock, _hands) = Clock::manual("2030-06-01T12:00:00Z".parse::<Timestamp>().expect("time"));
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[('h', Period::Day, 5)]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let redis = RedisUrl::parse("redis://127.0.0.1:6379").expect("url");
    let (dir_a, dir_b) = (TempDir::new(), TempDir::new());
    let mut settings_a = settings(cp.url(), dir_a.path(), Some(clock.clone()));
    settings_a.redis_url = Some(redis.clone());
    let mut settings_b = settings(cp.url(), dir_b.path(), Some(clock));
    settings_b.redis_url = Some(redis);
    let a = start_ready(settings_a).await;
    let b = start_ready(settings_b).await;
    for agent in [&a, &b] {
        let ready = get(&format!("http://{}/ready", agent.admin_addr()), &[]).await.json();
        assert_eq!(ready["redis"], "up", "Redis must run on 127.0.0.1:6379 for this test");
    }

    let mut admitted = 0;
    for n in 0..12 {
        let agent = if n % 2 == 0 { &a } else { &b };
        let url = format!("http://{}/pets/list?user_key={}", agent.proxy_addr(), fixture.key.as_str());
        match get(&url, &[]).await.status {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(admitted, 5, "a limit of 5 across both agents");
    let metrics = get(&format!("http://{}/metrics", a.admin_addr()), &[]).await.body;
    assert!(metrics.contains("tollgate_agent_redis_up 1"), "{metrics}");
    a.shutdown().await.expect("clean shutdown");
    b.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_the_agent_counts_locally() {
    let (clock, _hands) = Clock::manual("2030-06-01T12:00:10Z".parse::<Timestamp>().expect("time"));
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[('h', Period::Minute, 3)]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let mut settings = settings(cp.url(), dir.path(), Some(clock));
    settings.redis_url = Some(RedisUrl::parse(&format!("redis://{}", dead_addr().await)).expect("url"));
    let agent = start_ready(settings).await;
    let ready = get(&format!("http://{}/ready", agent.admin_addr()), &[]).await.json();
    assert_eq!(ready["redis"], "down");

    let url = format!("http://{}/pets/list?user_key={}", agent.proxy_addr(), fixture.key.as_str());
    for _ in 0..3 {
        assert_eq!(get(&url, &[]).await.status, StatusCode::OK);
    }
    assert_eq!(get(&url, &[]).await.status, StatusCode::TOO_MANY_REQUESTS);
    let metrics = get(&format!("http://{}/metrics", agent.admin_addr()), &[]).await.body;
    assert!(metrics.contains("tollgate_agent_redis_up 0"), "{metrics}");
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_and_the_limits_report_tell_the_shared_counts() {
    let (clock, _hands) = Clock::manual("2030-06-01T12:00:00Z".parse::<Timestamp>().expect("time"));
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[('h', Period::Day, 5), ('h', Period::Year, 1000)]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let redis = RedisUrl::parse("redis://127.0.0.1:6379").expect("url");
    let (dir_a, dir_b) = (TempDir::new(), TempDir::new());
    let mut settings_a = settings(cp.url(), dir_a.path(), Some(clock.clone()));
    settings_a.redis_url = Some(redis.clone());
    let mut settings_b = settings(cp.url(), dir_b.path(), Some(clock));
    settings_b.redis_url = Some(redis);
    let a = start_ready(settings_a).await;
    let b = start_ready(settings_b).await;
    let key = fixture.key.as_str();

    for (n, agent) in [&a, &b, &a].into_iter().enumerate() {
        let answer = get(&format!("http://{}/pets/list?user_key={key}", agent.proxy_addr()), &[]).await;
        assert_eq!(answer.status, StatusCode::OK);
        let remaining = (4 - n).to_string();
        assert_eq!(
            (answer.header("ratelimit-limit"), answer.header("ratelimit-remaining"), answer.header("ratelimit-reset")),
            (Some("5"), Some(remaining.as_str()), Some("43200")),
            "call {n}: the day's count across both agents"
        );
    }
    for agent in [&a, &b] {
        let report = get(&format!("http://{}/pets/_tollgate/limits?user_key={key}", agent.proxy_addr()), &[]).await;
        let report = report.json();
        assert_eq!(
            (report["limits"][0]["used"].as_u64(), report["limits"][0]["remaining"].as_u64()),
            (Some(3), Some(2))
        );
        assert_eq!(report["limits"][1]["used"].as_u64(), Some(3));
    }
    a.shutdown().await.expect("clean shutdown");
    b.shutdown().await.expect("clean shutdown");
}

/// A TCP relay to the local Redis that can be cut (every connection dropped, new ones closed
/// at once) and restored: an outage as the agent sees one.
struct CuttableRelay {
    addr: std::net::SocketAddr,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl CuttableRelay {
    async fn start() -> CuttableRelay {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (cut, cuts) = tokio::sync::watch::channel(0u64);
        let is_open = open.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !is_open.load(Ordering::SeqCst) {
                    continue;
                }
                let mut cuts = cuts.clone();
                // Only a cut after this connection opened ends it.
                cuts.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(mut redis) = tokio::net::TcpStream::connect("127.0.0.1:6379").await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut redis) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        CuttableRelay { addr, open, cut, task }
    }

    fn set_open(&self, open: bool) {
        self.open.store(open, std::sync::atomic::Ordering::SeqCst);
        if !open {
            self.cut.send_modify(|n| *n += 1);
        }
    }
}

impl Drop for CuttableRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The calls an agent admits while Redis is down are added to the shared counters before
/// they are used again. Before, the day's limit was granted again after the outage: 5
/// through Redis, 5 counted locally, then 5 more through Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_admitted_during_a_redis_outage_count_once_it_is_back() {
    let (clock, _hands) = Clock::manual("2030-06-02T12:00:00Z".parse::<Timestamp>().expect("time"));
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[('h', Period::Day, 10)]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let relay = CuttableRelay::start().await;
    let dir = TempDir::new();
    let mut settings = settings(cp.url(), dir.path(), Some(clock));
    settings.redis_url = Some(RedisUrl::parse(&format!("redis://{}", relay.addr)).expect("url"));
    let agent = start_ready(settings).await;
    let ready = format!("http://{}/ready", agent.admin_addr());
    assert_eq!(get(&ready, &[]).await.json()["redis"], "up", "Redis must run on 127.0.0.1:6379 for this test");
    let url = format!("http://{}/pets/list?user_key={}", agent.proxy_addr(), fixture.key.as_str());
    for _ in 0..5 {
        assert_eq!(get(&url, &[]).await.status, StatusCode::OK);
    }

    relay.set_open(false);
    // The first call after the cut finds Redis gone and is counted locally, as the rest.
    for _ in 0..5 {
        assert_eq!(get(&url, &[]).await.status, StatusCode::OK);
    }
    assert_eq!(get(&ready, &[]).await.json()["redis"], "down");
    assert_eq!(get(&url, &[]).await.status, StatusCode::TOO_MANY_REQUESTS, "10 of 10 counted locally");

    relay.set_open(true);
    eventually("redis to be used again", || async { (get(&ready, &[]).await.json()["redis"] == "up").then_some(()) })
        .await;
    let answer = get(&url, &[]).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS, "the outage's 5 calls are in the shared count");
    agent.shutdown().await.expect("clean shutdown");
}
