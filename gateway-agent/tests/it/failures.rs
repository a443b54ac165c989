//! Refused and failed calls in the usage batches: counted per application in `refused` (not
//! usage), sampled into `failed_calls` with what a developer needs to find them, attributed
//! only through a key the agent knows, and bounded under a flood.

use std::collections::HashMap;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jiff::{SignedDuration, Timestamp};
use tollgate_agent::Clock;
use tollgate_protocol::usage::{FAILED_CALLS_PER_APPLICATION, MAX_FAILED_CALLS_PER_BATCH};
use tollgate_protocol::{
    ApplicationState, AuthMode, Credential, FailedCall, KeyKind, KeyLocation, Lifecycle, Period, SecretKey,
    StatusClass, UsageBatch,
};
use uuid::Uuid;

use crate::harness::*;

/// 10 s into a UTC minute.
fn ten_past() -> Timestamp {
    "2030-01-01T00:00:10Z".parse().expect("time")
}

fn failed_calls(batches: &[UsageBatch]) -> Vec<FailedCall> {
    batches.iter().flat_map(|b| b.failed_calls.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_failures_reach_the_batch_with_what_the_developer_needs() {
    let now = ten_past();
    let minute = now.as_second() - 10;
    let (clock, _hands) = Clock::manual(now);
    let upstream = Upstream::start().await;
    // get_item: one call a minute.
    let mut fixture = Fixture::new(&upstream, &[('g', Period::Minute, 1)]);
    let (suspended_app, suspended) = fixture.add_app(ApplicationState::Suspended, None);
    let (expired_app, expired) = fixture.add_app(ApplicationState::Live, Some(now - SignedDuration::from_hours(1)));
    // A key of another API's application.
    let (_, weather_app) =
        add_api(&mut fixture, "/weather", Lifecycle::Published, user_key_in_query(), upstream.url("/w"));
    let weather = new_key(KeyKind::UserKey);
    fixture.snapshot.credentials.push(Credential {
        hash: weather.hash(),
        kind: KeyKind::UserKey,
        application_id: weather_app,
        expires_at: None,
    });
    fixture.snapshot.validate().expect("valid");
    let pets_api = fixture.snapshot.apis[0].id;
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), Some(clock))).await;
    let proxy = agent.proxy_addr();
    let key = &fixture.key;
    let m = fixture.metrics;
    // Each answer's `X-Tollgate-Request-Id`, in the order sent.
    let answer_ids = std::sync::Mutex::new(Vec::new());
    let call = |method: Method, path: &str, key: Option<&SecretKey>| {
        let url = match key {
            Some(key) => format!("http://{proxy}/pets{path}?user_key={}", key.as_str()),
            None => format!("http://{proxy}/pets{path}"),
        };
        let answer_ids = &answer_ids;
        async move {
            let answer = send(method, &url, &[], "").await;
            answer_ids.lock().unwrap().push(answer.header("x-tollgate-request-id").map(str::to_owned));
            answer.status
        }
    };

    // (status, what is recorded): each line a request.
    assert_eq!(call(Method::GET, "/items/1", Some(key)).await, StatusCode::OK);
    assert_eq!(call(Method::GET, "/items/2", Some(key)).await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(call(Method::GET, "/status/500", Some(key)).await, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(call(Method::GET, "/status/404", Some(key)).await, StatusCode::NOT_FOUND);
    assert_eq!(call(Method::DELETE, "/items/1", Some(key)).await, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(call(Method::GET, "/items/1", Some(&suspended)).await, StatusCode::FORBIDDEN);
    assert_eq!(call(Method::GET, "/list", Some(&expired)).await, StatusCode::FORBIDDEN);
    assert_eq!(call(Method::GET, "/list", Some(&weather)).await, StatusCode::FORBIDDEN);
    // Not attributable: no key, an unknown key, or two keys.
    assert_eq!(call(Method::GET, "/list", None).await, StatusCode::UNAUTHORIZED);
    assert_eq!(call(Method::GET, "/list", Some(&new_key(KeyKind::UserKey))).await, StatusCode::FORBIDDEN);
    let twice = format!("http://{proxy}/pets/list?user_key={}&user_key={}", key.as_str(), expired.as_str());
    assert_eq!(get(&twice, &[]).await.status, StatusCode::BAD_REQUEST);

    let batches = eventually("seven failed calls", || async {
        let batches = cp.accepted_batches();
        (failed_calls(&batches).len() == 7 && cp.accepted_count(m.hits) == 3).then_some(batches)
    })
    .await;
    let mut calls = failed_calls(&batches);
    calls.sort_by_key(|c| (c.application_id, c.path.clone(), c.status));
    let expected = |app: Uuid,
                    method: &str,
                    metric: Option<Uuid>,
                    path: &str,
                    status: u16,
                    error: Option<&str>,
                    key: &SecretKey| {
        (
            app,
            pets_api,
            now,
            method.to_owned(),
            metric,
            path.to_owned(),
            status,
            error.map(str::to_owned),
            Some(key.display_prefix().to_owned()),
        )
    };
    let mut wanted = vec![
        expected(fixture.app, "GET", Some(m.get_item), "/pets/items/2", 429, Some("limit_exceeded"), key),
        expected(fixture.app, "GET", Some(m.hits), "/pets/status/500", 500, None, key),
        expected(fixture.app, "GET", Some(m.hits), "/pets/status/404", 404, None, key),
        expected(fixture.app, "DELETE", None, "/pets/items/1", 405, Some("method_not_allowed"), key),
        expected(
            suspended_app,
            "GET",
            Some(m.get_item),
            "/pets/items/1",
            403,
            Some("application_not_live"),
            &suspended,
        ),
        expected(expired_app, "GET", Some(m.list), "/pets/list", 403, Some("invalid_credentials"), &expired),
        expected(weather_app, "GET", Some(m.list), "/pets/list", 403, Some("invalid_credentials"), &weather),
    ];
    wanted.sort_by_key(|w| (w.0, w.5.clone(), w.6));
    let got: Vec<_> = calls
        .iter()
        .map(|c| {
            (
                c.application_id,
                c.api_id,
                c.at,
                c.method.clone(),
                c.metric,
                c.path.clone(),
                c.status,
                c.error.clone(),
                c.key_prefix.clone(),
            )
        })
        .collect();
    assert_eq!(got, wanted);
    // Every recorded answer carried the id its record holds, and no other answer carried one.
    let answer_ids = answer_ids.into_inner().unwrap();
    assert_eq!(answer_ids.len(), 10);
    assert!(answer_ids[0].is_none(), "a 200 has no record, so no id");
    assert!(answer_ids[8..].iter().all(Option::is_none), "nor an answer no application can be blamed for");
    let mut sent: Vec<String> = answer_ids[1..8].iter().map(|id| id.clone().expect("a recorded answer")).collect();
    let mut recorded: Vec<String> =
        calls.iter().map(|c| c.request_id.expect("the record's id").hyphenated().to_string()).collect();
    sent.sort();
    recorded.sort();
    assert_eq!(sent, recorded);
    for call in &calls {
        assert!(call.latency_us < 15_000_000, "{call:?}");
    }
    assert!(batches.iter().all(|b| b.failed_calls_dropped == 0));
    // Never more of a key than its prefix.
    let text = serde_json::to_string(&batches).expect("json");
    for key in [key, &suspended, &expired, &weather] {
        assert!(
            !text.contains(&key.as_str()[..key.display_prefix().len() + 1]),
            "more than the prefix of a key was sent"
        );
    }

    // Refused: the agent's own answers, per application and status; never the upstream's.
    let mut refused: Vec<(Uuid, i64, u16, u64)> = batches
        .iter()
        .flat_map(|b| &b.refused)
        .map(|r| {
            assert_eq!(r.latency_buckets.iter().sum::<u64>(), r.count);
            (r.application_id, r.minute, r.status, r.count)
        })
        .collect();
    refused.sort();
    let mut wanted = vec![
        (fixture.app, minute, 429, 1),
        (fixture.app, minute, 405, 1),
        (suspended_app, minute, 403, 1),
        (expired_app, minute, 403, 1),
        (weather_app, minute, 403, 1),
    ];
    wanted.sort();
    assert_eq!(refused, wanted);
    // Usage is what was forwarded, whatever the upstream answered, and nothing refused.
    let mut usage: Vec<(Uuid, StatusClass, u64)> =
        batches.iter().flat_map(|b| &b.entries).map(|e| (e.metric, e.status_class, e.count)).collect();
    usage.sort();
    let mut wanted = vec![
        (m.hits, StatusClass::Success, 1),
        (m.hits, StatusClass::ClientError, 1),
        (m.hits, StatusClass::ServerError, 1),
        (m.get_item, StatusClass::Success, 1),
    ];
    wanted.sort();
    assert_eq!(usage, wanted);
    assert!(batches.iter().flat_map(|b| &b.entries).all(|e| e.application_id == fixture.app));
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_app_id_alone_is_not_blamed_its_app_key_is() {
    let upstream = Upstream::start().await;
    let mut fixture = Fixture::new(&upstream, &[]);
    let auth = AuthMode::AppIdKey {
        app_id: KeyLocation::Query { name: "app_id".into() },
        app_key: KeyLocation::Header { name: "app-key".into() },
    };
    let (_, app) = add_api(&mut fixture, "/weather", Lifecycle::Published, auth, upstream.url("/w"));
    fixture.snapshot.applications.last_mut().expect("app").app_id = Some("weather-app".into());
    let plan = fixture.snapshot.applications.last().expect("app").plan_id;
    let other_app = id();
    fixture.snapshot.applications.push(tollgate_protocol::Application {
        id: other_app,
        plan_id: plan,
        state: ApplicationState::Live,
        app_id: Some("other-app".into()),
    });
    let (app_key, other_key) = (new_key(KeyKind::AppKey), new_key(KeyKind::AppKey));
    for (key, owner) in [(&app_key, app), (&other_key, other_app)] {
        fixture.snapshot.credentials.push(Credential {
            hash: key.hash(),
            kind: KeyKind::AppKey,
            application_id: owner,
            expires_at: None,
        });
    }
    fixture.snapshot.validate().expect("valid");
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let url = format!("http://{}/weather/today?app_id=weather-app", agent.proxy_addr());

    // DELETE matches no rule (only GET does): refused before authentication.
    for key in [Some(&other_key), None] {
        let headers: Vec<(&str, &str)> = key.map(|k| ("app-key", k.as_str())).into_iter().collect();
        assert_eq!(send(Method::DELETE, &url, &headers, "").await.status, StatusCode::METHOD_NOT_ALLOWED);
    }
    let answer = send(Method::DELETE, &url, &[("app-key", app_key.as_str())], "").await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    let batches = eventually("the failed call", || async {
        let batches = cp.accepted_batches();
        (!failed_calls(&batches).is_empty()).then_some(batches)
    })
    .await;
    agent.shutdown().await.expect("clean shutdown");
    let batches = [batches, cp.accepted_batches()].concat();
    let mut seen = std::collections::HashSet::new();
    let calls: Vec<FailedCall> =
        batches.iter().filter(|b| seen.insert(b.id)).flat_map(|b| b.failed_calls.clone()).collect();
    assert_eq!(calls.len(), 1, "only the request with the app's own key: {calls:?}");
    assert_eq!(calls[0].application_id, app);
    assert_eq!(calls[0].key_prefix.as_deref(), Some(app_key.display_prefix()));
    assert!(app_key.display_prefix().starts_with("tg_ak_"));
    assert_eq!(calls[0].error.as_deref(), Some("method_not_allowed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_refusals_is_sampled_and_every_one_counted() {
    const REQUESTS: usize = 10_000;
    const APPS: usize = 60;
    const WORKERS: usize = 16;
    let (clock, _hands) = Clock::manual(ten_past());
    let upstream = Upstream::start().await;
    // A limit of 0 refuses every call (429).
    let mut fixture = Fixture::new(&upstream, &[('h', Period::Minute, 0)]);
    let mut keys = vec![fixture.key.clone()];
    for _ in 1..APPS {
        keys.push(fixture.add_app(ApplicationState::Live, None).1);
    }
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let mut settings = settings(cp.url(), dir.path(), Some(clock));
    // One seal, at shutdown, holds the whole flood.
    settings.flush_interval = std::time::Duration::from_secs(3600);
    let agent = start_ready(settings).await;
    let proxy = agent.proxy_addr();

    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let keys = keys.clone();
            tokio::spawn(async move {
                // One keep-alive connection per worker.
                let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
                let mut refused = 0;
                for n in (worker..REQUESTS).step_by(WORKERS) {
                    let key = &keys[n % APPS];
                    let request = Request::get(format!("http://{proxy}/pets/list?user_key={}", key.as_str()))
                        .body(Full::new(Bytes::new()))
                        .expect("request");
                    let response = client.request(request).await.expect("an answer");
                    if response.status() == StatusCode::TOO_MANY_REQUESTS {
                        refused += 1;
                    }
                    response.into_body().collect().await.expect("body");
                }
                refused
            })
        })
        .collect();
    let mut refused = 0;
    for worker in workers {
        refused += worker.await.expect("worker");
    }
    assert_eq!(refused, REQUESTS);
    agent.shutdown().await.expect("clean shutdown");

    let batches = cp.accepted_batches();
    assert!(batches.iter().all(|b| b.entries.is_empty()), "refusals are not usage");
    let counted: u64 = batches.iter().flat_map(|b| &b.refused).map(|r| r.count).sum();
    assert_eq!(counted, REQUESTS as u64, "every refusal is counted");
    assert!(batches.iter().flat_map(|b| &b.refused).all(|r| r.status == 429));
    let calls = failed_calls(&batches);
    let dropped: u64 = batches.iter().map(|b| b.failed_calls_dropped).sum();
    assert_eq!(calls.len(), MAX_FAILED_CALLS_PER_BATCH, "60 applications × 20 fill the cap");
    assert_eq!(calls.len() as u64 + dropped, REQUESTS as u64, "every failed call is sent or counted as dropped");
    let mut per_app: HashMap<Uuid, usize> = HashMap::new();
    for call in &calls {
        *per_app.entry(call.application_id).or_default() += 1;
    }
    assert_eq!(per_app.len(), APPS, "every application is represented");
    assert!(per_app.values().all(|&n| n <= FAILED_CALLS_PER_APPLICATION), "{per_app:?}");
    assert!(per_app.values().all(|&n| n >= MAX_FAILED_CALLS_PER_BATCH / APPS), "shared fairly: {per_app:?}");
    assert_eq!(upstream.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_half_a_full_spool_failed_calls_are_only_counted() {
    const REFUSALS: usize = 12;
    let (clock, _hands) = Clock::manual(ten_past());
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[('h', Period::Minute, 0)]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    cp.fail_usage(usize::MAX);
    let dir = TempDir::new();
    let mut settings = settings(cp.url(), dir.path(), Some(clock));
    settings.spool_max_bytes = 8192;
    let agent = start_ready(settings).await;
    let spool = dir.path().join("spool");
    let spooled = || std::fs::read_dir(&spool).map_or(0, |files| files.filter_map(Result::ok).count());
    // `/items/…` matches the unanchored `GET /items` rule: a long path, refused (429).
    let url = format!("http://{}/pets/items/{}?user_key={}", agent.proxy_addr(), "a".repeat(200), fixture.key.as_str());
    for n in 1..=REFUSALS {
        assert_eq!(get(&url, &[]).await.status, StatusCode::TOO_MANY_REQUESTS);
        // One batch per refusal, held in the spool while the server fails.
        eventually("the batch spooled", || async { (spooled() == n).then_some(()) }).await;
    }
    cp.fail_usage(0);
    // Delivered by the graceful stop rather than by the sender's retry timer, whose backoff
    // after a dozen failures could outlast a deadline here (the flake this replaced).
    agent.shutdown().await.expect("clean shutdown");
    let batches = cp.accepted_batches();
    assert_eq!(batches.len(), REFUSALS, "every batch delivered by the stop");
    let sent: Vec<(usize, u64)> = batches.iter().map(|b| (b.failed_calls.len(), b.failed_calls_dropped)).collect();
    let first_dropped = sent.iter().position(|&(_, dropped)| dropped > 0).expect("some were only counted");
    assert!(first_dropped >= 3, "the first batches carry their call: {sent:?}");
    assert!(sent[..first_dropped].iter().all(|&s| s == (1, 0)), "{sent:?}");
    assert!(sent[first_dropped..].iter().all(|&s| s == (0, 1)), "past half the spool, only counted: {sent:?}");
    let refused: u64 = batches.iter().flat_map(|b| &b.refused).map(|r| r.count).sum();
    assert_eq!(refused, REFUSALS as u64, "the counts are all there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_to_a_retired_api_are_failed_calls_of_the_keys_application() {
    let (clock, _hands) = Clock::manual(ten_past());
    let upstream = Upstream::start().await;
    let mut fixture = Fixture::new(&upstream, &[]);
    let (gone_api, gone_app) =
        add_api(&mut fixture, "/gone", Lifecycle::Retired, user_key_in_query(), upstream.url(""));
    let key = new_key(KeyKind::UserKey);
    fixture.snapshot.credentials.push(Credential {
        hash: key.hash(),
        kind: KeyKind::UserKey,
        application_id: gone_app,
        expires_at: None,
    });
    fixture.snapshot.validate().expect("valid");
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), Some(clock))).await;
    let proxy = agent.proxy_addr();

    for path in ["/gone/x", "/gone/_tollgate/limits"] {
        let answer = get(&format!("http://{proxy}{path}?user_key={}", key.as_str()), &[]).await;
        assert_eq!((answer.status, answer.error().as_str()), (StatusCode::GONE, "api_retired"), "{path}");
    }
    let batches = eventually("the failed call", || async {
        let batches = cp.accepted_batches();
        (!failed_calls(&batches).is_empty()).then_some(batches)
    })
    .await;
    agent.shutdown().await.expect("clean shutdown");
    let batches = [batches, cp.accepted_batches()].concat();
    let mut seen = std::collections::HashSet::new();
    let batches: Vec<UsageBatch> = batches.into_iter().filter(|b| seen.insert(b.id)).collect();
    let calls = failed_calls(&batches);
    assert_eq!(calls.len(), 1, "the limits report is not recorded, even refused: {calls:?}");
    let call = &calls[0];
    assert_eq!(
        (call.application_id, call.api_id, call.status, call.error.as_deref(), call.metric, call.path.as_str()),
        (gone_app, gone_api, 410, Some("api_retired"), None, "/gone/x")
    );
    let refused: Vec<(Uuid, u16, u64)> =
        batches.iter().flat_map(|b| &b.refused).map(|r| (r.application_id, r.status, r.count)).collect();
    assert_eq!(refused, [(gone_app, 410, 1)]);
}
