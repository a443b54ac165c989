//! Plan limits through the proxy port, with a manual clock so no test straddles a window.

use hyper::StatusCode;
use jiff::{SignedDuration, Timestamp};
use tollgate_agent::Clock;
use tollgate_protocol::{CurrentUsage, Period, WindowId};

use crate::harness::*;

/// 10 s into a UTC minute.
fn ten_past() -> Timestamp {
    "2030-01-01T00:00:10Z".parse().expect("time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_of_n_per_minute_admits_exactly_n() {
    let (clock, hands) = Clock::manual(ten_past());
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[('h', Period::Minute, 5)]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), Some(clock))).await;
    let url = format!("http://{}/pets/list?user_key={}", agent.proxy_addr(), fixture.key.as_str());

    for n in 1..=5 {
        assert_eq!(get(&url, &[]).await.status, StatusCode::OK, "request {n}");
    }
    let refused = get(&url, &[]).await;
    assert_eq!((refused.status, refused.error().as_str()), (StatusCode::TOO_MANY_REQUESTS, "limit_exceeded"));
    // It names the limit, so the developer knows what to wait for.
    assert_eq!(
        refused.json()["message"],
        "The application's plan allows 5 `hits` per minute; that limit is reached until the minute ends (see Retry-After)."
    );
    assert_eq!(refused.header("retry-after"), Some("50"));
    assert_eq!(refused.header("ratelimit-limit"), Some("5"));
    assert_eq!(refused.header("ratelimit-remaining"), Some("0"));
    assert_eq!(refused.header("ratelimit-reset"), Some("50"));
    assert_eq!(upstream.count(), 5);

    // The next minute has room again; the last instant of this one does not.
    hands.set("2030-01-01T00:00:59.999Z".parse().expect("time"));
    assert_eq!(get(&url, &[]).await.status, StatusCode::TOO_MANY_REQUESTS);
    hands.advance(SignedDuration::from_millis(1));
    assert_eq!(get(&url, &[]).await.status, StatusCode::OK);
    // A clock stepping back lands in the earlier window, which is still full.
    hands.set(ten_past());
    assert_eq!(get(&url, &[]).await.status, StatusCode::TOO_MANY_REQUESTS);
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_of_a_method_counts_on_its_parent_and_refusals_count_nothing() {
    let (clock, _hands) = Clock::manual(ten_past());
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[('h', Period::Minute, 4), ('g', Period::Minute, 2)]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), Some(clock))).await;
    let proxy = agent.proxy_addr();
    let key = fixture.key.as_str();
    let status = |path: &'static str| {
        let url = format!("http://{proxy}/pets{path}?user_key={key}");
        async move { get(&url, &[]).await.status }
    };

    assert_eq!(status("/items/1").await, StatusCode::OK); // get_item 1, hits 1
    assert_eq!(status("/items/2").await, StatusCode::OK); // get_item 2, hits 2
    let refused = get(&format!("http://{proxy}/pets/items/3?user_key={key}"), &[]).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "get_item is full");
    assert_eq!(refused.header("ratelimit-limit"), Some("2"));
    // The refused request was not counted on hits: two more fit.
    assert_eq!(status("/list").await, StatusCode::OK); // hits 3
    assert_eq!(status("/list").await, StatusCode::OK); // hits 4
    assert_eq!(status("/list").await, StatusCode::TOO_MANY_REQUESTS, "hits is full");
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_rule_stops_evaluation() {
    let (clock, _hands) = Clock::manual(ten_past());
    let upstream = Upstream::start().await;
    // `/items/7` matches `/items/{id}$` (last, 1 on get_item) and `/items` (10 on hits):
    // honouring `last` counts 1 hit per request, ignoring it 11.
    let fixture = Fixture::new(&upstream, &[('h', Period::Day, 3)]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), Some(clock))).await;
    let url = |path: &str| format!("http://{}/pets{path}?user_key={}", agent.proxy_addr(), fixture.key.as_str());
    for _ in 0..3 {
        assert_eq!(get(&url("/items/7"), &[]).await.status, StatusCode::OK);
    }
    assert_eq!(get(&url("/items/7"), &[]).await.status, StatusCode::TOO_MANY_REQUESTS);
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_never_over_admit() {
    let (clock, _hands) = Clock::manual(ten_past());
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[('h', Period::Minute, 20), ('l', Period::Hour, 25)]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), Some(clock))).await;
    let url = format!("http://{}/pets/list?user_key={}", agent.proxy_addr(), fixture.key.as_str());
    let requests: Vec<_> = (0..60)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { get(&url, &[]).await.status })
        })
        .collect();
    let mut admitted = 0;
    for request in requests {
        match request.await.expect("request task") {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(admitted, 20);
    assert_eq!(upstream.count(), 20);
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_usage_from_the_snapshot_counts() {
    let now = ten_past();
    let (clock, _hands) = Clock::manual(now);
    let upstream = Upstream::start().await;
    let mut fixture = Fixture::new(&upstream, &[('h', Period::Day, 5), ('h', Period::Minute, 100)]);
    let day = Period::Day.window(now, &jiff::tz::TimeZone::UTC);
    fixture.snapshot.usage.push(CurrentUsage {
        application_id: fixture.app,
        metric: fixture.metrics.hits,
        period: Period::Day,
        window_start: day.id(),
        value: 3,
    });
    // Usage of a window that is over does not count now.
    fixture.snapshot.usage.push(CurrentUsage {
        application_id: fixture.app,
        metric: fixture.metrics.hits,
        period: Period::Hour,
        window_start: WindowId(day.id().0 - 3600),
        value: 1000,
    });
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), Some(clock))).await;
    let url = format!("http://{}/pets/list?user_key={}", agent.proxy_addr(), fixture.key.as_str());
    assert_eq!(get(&url, &[]).await.status, StatusCode::OK);
    assert_eq!(get(&url, &[]).await.status, StatusCode::OK);
    let refused = get(&url, &[]).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "3 seeded + 2 = 5 per day");
    assert_eq!(refused.header("retry-after"), Some(((24 * 3600) - 10).to_string().as_str()));
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_of_zero_says_the_plan_does_not_include_the_metric() {
    let (clock, _hands) = Clock::manual(ten_past());
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[('g', Period::Month, 0)]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), Some(clock))).await;
    let url = format!("http://{}/pets/items/7?user_key={}", agent.proxy_addr(), fixture.key.as_str());
    let refused = get(&url, &[]).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        refused.json()["message"],
        "The application's plan does not include `get_item` (its limit is 0); a plan that does is needed."
    );
    assert_eq!(upstream.count(), 0);
    agent.shutdown().await.expect("clean shutdown");
}

/// With a minute's and a month's limit both reached, the 429 names the month's and says to
/// wait for it: "Retry-After: 50" sent clients back into a refusal until the month ended. A
/// limit of 0 says no wait at all, since none lets the call through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_names_the_limit_that_lasts_longest_and_no_wait_for_a_limit_of_zero() {
    let (clock, _hands) = Clock::manual(ten_past());
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[('h', Period::Minute, 1), ('h', Period::Month, 1)]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), Some(clock))).await;
    let url = |path: &str| format!("http://{}/pets{path}?user_key={}", agent.proxy_addr(), fixture.key.as_str());
    assert_eq!(get(&url("/list"), &[]).await.status, StatusCode::OK);
    let refused = get(&url("/list"), &[]).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.json()["message"].as_str().unwrap().contains("per month"), "{}", refused.body);
    // 2030-01-01T00:00:10Z to 2030-02-01: 31 days less 10 s.
    assert_eq!(refused.header("retry-after"), Some("2678390"));

    agent.shutdown().await.expect("clean shutdown");

    let (clock, _hands) = Clock::manual(ten_past());
    let fixture = Fixture::new(&upstream, &[('g', Period::Day, 0)]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), Some(clock))).await;
    let never =
        get(&format!("http://{}/pets/items/1?user_key={}", agent.proxy_addr(), fixture.key.as_str()), &[]).await;
    assert_eq!(never.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(never.json()["message"].as_str().unwrap().contains("does not include"), "{}", never.body);
    assert_eq!(never.header("retry-after"), None, "no wait lets it through");
    assert_eq!(never.header("ratelimit-remaining"), Some("0"), "the limit's state is still told");
    agent.shutdown().await.expect("clean shutdown");
}
