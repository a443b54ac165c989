//! `RateLimit-*` headers on every answer to an admitted request, and the key holder's limits
//! report at `<base path>/_tollgate/limits`, with a manual clock so no test straddles a window.

use hyper::{Method, StatusCode};
use jiff::Timestamp;
use tollgate_agent::Clock;
use tollgate_protocol::{ApplicationState, LimitsReport, Period};

use crate::harness::*;

/// 10 s into a UTC minute (and hour, and day).
fn ten_past() -> Timestamp {
    "2030-01-01T00:00:10Z".parse().expect("time")
}

/// The three fields of an answer, `None` where absent.
fn rate(answer: &Answer) -> (Option<&str>, Option<&str>, Option<&str>) {
    (answer.header("ratelimit-limit"), answer.header("ratelimit-remaining"), answer.header("ratelimit-reset"))
}

const DAY_LEFT: &str = "86390";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admitted_answer_carries_its_most_constrained_limit() {
    let (clock, _hands) = Clock::manual(ten_past());
    let upstream = Upstream::start().await;
    // hits: 6 a minute and 100 an hour; get_item: 3 a day.
    let fixture = Fixture::new(&upstream, &[('h', Period::Minute, 6), ('h', Period::Hour, 100), ('g', Period::Day, 3)]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), Some(clock))).await;
    let url = |path: &str| format!("http://{}/pets{path}?user_key={}", agent.proxy_addr(), fixture.key.as_str());

    // `/list` touches hits only: of its minute (5 left) and hour (99 left) limits, the minute.
    let answer = get(&url("/list"), &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(rate(&answer), (Some("6"), Some("5"), Some("50")));
    // `/items/…` touches get_item and hits: get_item's day limit has least left.
    for (n, left) in [(1, "2"), (2, "1"), (3, "0")] {
        let answer = get(&url(&format!("/items/{n}")), &[]).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(rate(&answer), (Some("3"), Some(left), Some(DAY_LEFT)), "item {n}");
    }
    // Refused by that limit: the 429 tells the same story, with Retry-After.
    let refused = get(&url("/items/4"), &[]).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(rate(&refused), (Some("3"), Some("0"), Some(DAY_LEFT)));
    assert_eq!(refused.header("retry-after"), Some(DAY_LEFT));
    // An upstream's error is an admitted request too (hits: 5 of 6 used).
    let failed = get(&url("/status/500"), &[]).await;
    assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(rate(&failed), (Some("6"), Some("1"), Some("50")));
    assert_eq!(failed.header("retry-after"), None);
    // So is one the agent answers itself after admitting it (the upstream is too slow).
    let timed_out = get(&url("/slow"), &[]).await;
    assert_eq!((timed_out.status, timed_out.error().as_str()), (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"));
    assert_eq!(rate(&timed_out), (Some("6"), Some("0"), Some("50")));
    // hits is now full for this minute.
    let refused = get(&url("/list"), &[]).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(rate(&refused), (Some("6"), Some("0"), Some("50")));
    assert_eq!(refused.header("retry-after"), Some("50"));
    // Refusals before the limits were checked carry nothing.
    let unknown = get(&format!("http://{}/pets/list?user_key=nope", agent.proxy_addr()), &[]).await;
    assert_eq!(unknown.status, StatusCode::FORBIDDEN);
    assert_eq!(rate(&unknown), (None, None, None));
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ties_go_to_the_limit_that_resets_last_eternity_never_resets_and_no_limit_no_headers() {
    let (clock, _hands) = Clock::manual(ten_past());
    let upstream = Upstream::start().await;
    // hits: 3 a minute and 3 a day (always tied); list: 10 for ever; get_item: no limit.
    let mut fixture =
        Fixture::new(&upstream, &[('h', Period::Minute, 3), ('h', Period::Day, 3), ('l', Period::Eternity, 10)]);
    // A plan without limits for a second application.
    let free_plan = id();
    let mut plan = fixture.snapshot.plans[0].clone();
    plan.id = free_plan;
    plan.limits.clear();
    fixture.snapshot.plans.push(plan);
    let (free_app, free_key) = fixture.add_app(ApplicationState::Live, None);
    fixture.snapshot.applications.iter_mut().find(|a| a.id == free_app).expect("app").plan_id = free_plan;
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), Some(clock))).await;
    let url = |path: &str, key: &tollgate_protocol::SecretKey| {
        format!("http://{}/pets{path}?user_key={}", agent.proxy_addr(), key.as_str())
    };

    let tied = get(&url("/items/1", &fixture.key), &[]).await;
    assert_eq!(rate(&tied), (Some("3"), Some("2"), Some(DAY_LEFT)), "equal remaining: the day, which resets last");
    // `/list` touches list (eternity, 9 left) and hits (1 left): hits, tied again.
    let list = get(&url("/list", &fixture.key), &[]).await;
    assert_eq!(rate(&list), (Some("3"), Some("1"), Some(DAY_LEFT)));

    let free = get(&url("/list", &free_key), &[]).await;
    assert_eq!(free.status, StatusCode::OK);
    assert_eq!(rate(&free), (None, None, None), "no limit, no headers");
    agent.shutdown().await.expect("clean shutdown");

    // An eternity limit alone: no reset to announce.
    let (clock, _hands) = Clock::manual(ten_past());
    let fixture = Fixture::new(&upstream, &[('l', Period::Eternity, 10)]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), Some(clock))).await;
    let eternal = get(&format!("http://{}/pets/list?user_key={}", agent.proxy_addr(), fixture.key.as_str()), &[]).await;
    assert_eq!(eternal.status, StatusCode::OK);
    assert_eq!(rate(&eternal), (Some("10"), Some("9"), None));
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limits_report_counts_nothing_and_refuses_what_a_call_would() {
    let (clock, _hands) = Clock::manual(ten_past());
    let upstream = Upstream::start().await;
    let mut fixture =
        Fixture::new(&upstream, &[('h', Period::Minute, 5), ('g', Period::Day, 3), ('l', Period::Eternity, 0)]);
    let (_, suspended) = fixture.add_app(ApplicationState::Suspended, None);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), Some(clock))).await;
    let proxy = agent.proxy_addr();
    let key = fixture.key.as_str();
    let limits = format!("http://{proxy}/pets/_tollgate/limits?user_key={key}");

    for n in 1..=2 {
        assert_eq!(get(&format!("http://{proxy}/pets/items/{n}?user_key={key}"), &[]).await.status, StatusCode::OK);
    }
    let calls = upstream.count();
    let mut last = None;
    for _ in 0..100 {
        let answer = get(&limits, &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(answer.header("content-type"), Some("application/json"));
        assert_eq!(answer.header("cache-control"), Some("no-store"));
        last = Some(answer);
    }
    let answer = last.expect("answers");
    let report: LimitsReport = serde_json::from_str(&answer.body).expect("a limits report");
    let expected = serde_json::json!({
        "time_zone": "UTC",
        "limits": [
            {"metric": "hits", "period": "minute", "max": 5, "used": 2, "remaining": 3,
             "window_start": "2030-01-01T00:00:00Z", "reset": "2030-01-01T00:01:00Z", "reset_seconds": 50},
            {"metric": "get_item", "period": "day", "max": 3, "used": 2, "remaining": 1,
             "window_start": "2030-01-01T00:00:00Z", "reset": "2030-01-02T00:00:00Z", "reset_seconds": 86390},
            {"metric": "list", "period": "eternity", "max": 0, "used": 0, "remaining": 0,
             "window_start": null, "reset": null, "reset_seconds": null},
        ]
    });
    assert_eq!(serde_json::to_value(&report).expect("json"), expected);
    // Its headers name the most constrained limit of the plan: `list`, disabled (0 left, never resets).
    assert_eq!(rate(&answer), (Some("0"), Some("0"), None));
    assert_eq!(upstream.count(), calls, "never forwarded");

    // Nothing was consumed: get_item still has exactly one call left.
    assert_eq!(get(&format!("http://{proxy}/pets/items/3?user_key={key}"), &[]).await.status, StatusCode::OK);
    assert_eq!(
        get(&format!("http://{proxy}/pets/items/4?user_key={key}"), &[]).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let head = send(Method::HEAD, &limits, &[], "").await;
    assert_eq!((head.status, head.body.as_str()), (StatusCode::OK, ""));

    // The usual credential rules; other methods and paths under _tollgate are refused.
    let cases = [
        (format!("http://{proxy}/pets/_tollgate/limits"), Method::GET, StatusCode::UNAUTHORIZED, "missing_credentials"),
        (
            format!("http://{proxy}/pets/_tollgate/limits?user_key=nope"),
            Method::GET,
            StatusCode::FORBIDDEN,
            "invalid_credentials",
        ),
        (
            format!("http://{proxy}/pets/_tollgate/limits?user_key={}", suspended.as_str()),
            Method::GET,
            StatusCode::FORBIDDEN,
            "application_not_live",
        ),
        (
            format!("http://{proxy}/pets/_tollgate/limits?user_key={key}&user_key=other"),
            Method::GET,
            StatusCode::BAD_REQUEST,
            "ambiguous_credentials",
        ),
        (limits.clone(), Method::POST, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        (
            format!("http://{proxy}/pets/_tollgate/limits/?user_key={key}"),
            Method::GET,
            StatusCode::NOT_FOUND,
            "unknown_endpoint",
        ),
        (
            format!("http://{proxy}/pets/_tollgate/usage?user_key={key}"),
            Method::GET,
            StatusCode::NOT_FOUND,
            "unknown_endpoint",
        ),
    ];
    for (url, method, status, error) in cases {
        let answer = send(method.clone(), &url, &[], "").await;
        assert_eq!((answer.status, answer.error().as_str()), (status, error), "{method} {url}");
        if status == StatusCode::METHOD_NOT_ALLOWED {
            assert_eq!(answer.header("allow"), Some("GET, HEAD"));
        }
    }
    assert_eq!(upstream.count(), calls + 1);

    // None of it is usage, a refusal, a failed call or a use of the key: the only records are
    // the four real calls (one refused).
    let get_item = fixture.metrics.get_item;
    eventually("the usage acknowledged", || async {
        let refused = cp.accepted_batches().iter().map(|b| b.refused.len()).sum::<usize>();
        (cp.accepted_count(get_item) == 3 && refused == 1).then_some(())
    })
    .await;
    agent.shutdown().await.expect("clean shutdown");
    let batches = cp.accepted_batches();
    let forwarded: u64 =
        batches.iter().flat_map(|b| &b.entries).filter(|e| e.metric == fixture.metrics.get_item).map(|e| e.count).sum();
    assert_eq!(forwarded, 3);
    let refused: Vec<u16> = batches.iter().flat_map(|b| &b.refused).map(|r| r.status).collect();
    assert_eq!(refused, [429]);
    let failed: Vec<(u16, String)> =
        batches.iter().flat_map(|b| &b.failed_calls).map(|c| (c.status, c.path.clone())).collect();
    assert_eq!(failed, [(429, "/pets/items/4".to_owned())]);
    assert!(batches.iter().all(|b| b.failed_calls_dropped == 0));
    let used: Vec<_> = batches.iter().flat_map(|b| &b.credentials_used).map(|u| u.hash).collect();
    assert_eq!(used, [fixture.key.hash()], "the key's use comes from the real calls only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_rule_reaches_the_reserved_path_and_no_encoding_escapes_it() {
    let (clock, _hands) = Clock::manual(ten_past());
    let upstream = Upstream::start().await;
    let mut fixture = Fixture::new(&upstream, &[('h', Period::Minute, 100)]);
    // A catch-all rule that would match `_tollgate/limits` were it not reserved.
    let hits = fixture.metrics.hits;
    let rules = &mut fixture.snapshot.apis[0].mapping_rules;
    let position = rules.len() as u32 + 1;
    rules.push(rule("ANY", "/{first}", hits, 1, position, false));
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), Some(clock))).await;
    let proxy = agent.proxy_addr();
    let key = fixture.key.as_str();

    for path in ["/_tollgate/limits", "/%5Ftollgate/limits", "/_tollgate/%6cimits", "/%5ftollgate/%6C%69mits"] {
        let answer = get(&format!("http://{proxy}/pets{path}?user_key={key}"), &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
        assert!(answer.json()["limits"].is_array(), "{path}");
    }
    for path in ["/_tollgate", "/_tollgate/", "/_tollgate/x/y", "/%5Ftollgate/other"] {
        let answer = get(&format!("http://{proxy}/pets{path}?user_key={key}"), &[]).await;
        assert_eq!((answer.status, answer.error().as_str()), (StatusCode::NOT_FOUND, "unknown_endpoint"), "{path}");
    }
    assert_eq!(upstream.count(), 0, "nothing under _tollgate reaches the upstream");
    // The path policy still comes first, and other spellings are ordinary paths for the rules.
    let dots = raw_get(proxy, &format!("/pets/_tollgate/%2e%2e/limits?user_key={key}"), &[]).await;
    assert_eq!((dots.status, dots.error().as_str()), (400, "invalid_path"));
    for path in ["/_Tollgate", "/tollgate", "/_tollgate;x"] {
        let answer = get(&format!("http://{proxy}/pets{path}?user_key={key}"), &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{path} is the rules' business");
    }
    assert_eq!(upstream.count(), 3);
    // The report saw those three calls.
    let report = get(&format!("http://{proxy}/pets/_tollgate/limits?user_key={key}"), &[]).await.json();
    assert_eq!(report["limits"][0]["used"], 3);
    agent.shutdown().await.expect("clean shutdown");
}
