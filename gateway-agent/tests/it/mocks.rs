//! Mock mode through a real agent: an operation in mock mode is answered from the bodies the
//! server prepared, after the same key and limit checks, counted as usage, and no upstream is
//! contacted; a draft with mocks is routed for its mocked operations only.

use hyper::StatusCode;
use tollgate_protocol::{
    ApiMocks, Change, Lifecycle, MockContent, MockExample, MockOperation, MockResponse, Period, Snapshot,
};

use crate::harness::*;

fn mocks_of(fixture: &Fixture) -> ApiMocks {
    let json = |bodies: &[(Option<&str>, &str)]| MockContent {
        media_type: "application/json".into(),
        examples: bodies.iter().map(|(n, b)| MockExample { name: n.map(str::to_owned), body: (*b).into() }).collect(),
    };
    ApiMocks {
        api_id: fixture.snapshot.apis[0].id,
        operations: vec![MockOperation {
            metric: fixture.metrics.get_item,
            responses: vec![
                MockResponse {
                    status: "200".into(),
                    content: vec![json(&[(Some("tom"), r#"{"name":"Tom"}"#), (Some("kit"), r#"{"name":"Kit"}"#)])],
                },
                MockResponse { status: "404".into(), content: vec![json(&[(None, r#"{"code":404}"#)])] },
            ],
        }],
    }
}

fn with_mocks(fixture: &Fixture, lifecycle: Lifecycle) -> Snapshot {
    let mut snapshot = fixture.snapshot.clone();
    snapshot.apis[0].lifecycle = lifecycle;
    snapshot.mocks = vec![mocks_of(fixture)];
    snapshot.declare_features();
    snapshot.validate().expect("valid");
    snapshot
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mocked_operations_answer_after_admission_and_count_as_usage() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[('h', Period::Minute, 3)]);
    let cp = ControlPlane::start(with_mocks(&fixture, Lifecycle::Published)).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let url = |path: &str| format!("http://{}/pets{path}?user_key={}", agent.proxy_addr(), fixture.key.as_str());

    let answer = get(&url("/items/7"), &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, r#"{"name":"Tom"}"#);
    assert_eq!(answer.header("tollgate-mock"), Some("true"));
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(answer.header("ratelimit-remaining"), Some("2"));
    let answer = get(&url("/items/7"), &[("prefer", "code=404")]).await;
    assert_eq!((answer.status, answer.body.as_str()), (StatusCode::NOT_FOUND, r#"{"code":404}"#));
    let answer = get(&url("/items/7"), &[("prefer", "example=kit")]).await;
    assert_eq!(answer.body, r#"{"name":"Kit"}"#);
    // Limits hold as for real calls.
    let refused = get(&url("/items/7"), &[]).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.header("tollgate-mock"), None);
    // Keys too.
    let anonymous = get(&format!("http://{}/pets/items/7", agent.proxy_addr()), &[]).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(upstream.count(), 0, "no upstream is contacted for a mocked operation");
    // Counted: three calls on get_item (and its parent hits).
    eventually("mocked calls to be reported", || async {
        (cp.accepted_count(fixture.metrics.get_item) == 3).then_some(())
    })
    .await;
    assert_eq!(cp.accepted_count(fixture.metrics.hits), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draft_is_routed_for_its_mocks_only_until_they_are_removed() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let mut snapshot = with_mocks(&fixture, Lifecycle::Draft);
    // Before its backend exists.
    snapshot.apis[0].upstreams.clear();
    let cp = ControlPlane::start(snapshot).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let url = |path: &str| format!("http://{}/pets{path}?user_key={}", agent.proxy_addr(), fixture.key.as_str());

    assert_eq!(get(&url("/items/7"), &[]).await.body, r#"{"name":"Tom"}"#);
    // A 1xx cannot carry an answer (hyper made it a 500 or a bare 101): it is not a preference.
    let informational = get(&url("/items/7"), &[("prefer", "code=101")]).await;
    assert_eq!((informational.status, informational.body.as_str()), (StatusCode::OK, r#"{"name":"Tom"}"#));
    // Its other operations stay unknown, as a draft's.
    let other = get(&url("/list"), &[]).await;
    assert_eq!((other.status, other.error().as_str()), (StatusCode::NOT_FOUND, "unknown_api"));

    // Mock mode off: the draft is not served at all.
    cp.push(delta(&cp, vec![Change::RemoveMocks { api_id: fixture.snapshot.apis[0].id }]));
    eventually("the draft to be unrouted", || async {
        (get(&url("/items/7"), &[]).await.status == StatusCode::NOT_FOUND).then_some(())
    })
    .await;
    // And back on through a delta.
    cp.push(delta(&cp, vec![Change::UpsertMocks(mocks_of(&fixture))]));
    eventually("the draft to answer its mocks again", || async {
        (get(&url("/items/7"), &[]).await.status == StatusCode::OK).then_some(())
    })
    .await;
    assert_eq!(upstream.count(), 0);
}

/// The decision endpoint does not mock, so an allowed call would be forwarded by the asking
/// proxy: a draft is refused there, mocked operations included, while a published API in
/// mock mode is decided as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_decision_endpoint_never_allows_a_draft_even_a_mocked_one() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(with_mocks(&fixture, Lifecycle::Draft)).await;
    let dir = TempDir::new();
    let mut settings = settings(cp.url(), dir.path(), None);
    settings.authz_listen = Some("127.0.0.1:0".parse().expect("address"));
    let agent = start_ready(settings).await;
    let authz = agent.authz_addr().expect("the decision endpoint is on");
    let decide = || {
        let uri = format!("/pets/items/7?user_key={}", fixture.key.as_str());
        async move { get(&format!("http://{authz}/"), &[("x-original-uri", uri.as_str())]).await }
    };
    let draft = decide().await;
    assert_eq!((draft.status, draft.error().as_str()), (StatusCode::NOT_FOUND, "unknown_api"));
    // The proxy port still answers it from its mocks.
    let mocked =
        get(&format!("http://{}/pets/items/7?user_key={}", agent.proxy_addr(), fixture.key.as_str()), &[]).await;
    assert_eq!(mocked.header("tollgate-mock"), Some("true"));

    let mut published = fixture.snapshot.apis[0].clone();
    published.lifecycle = Lifecycle::Published;
    cp.push(delta(&cp, vec![Change::UpsertApi(published)]));
    eventually("the published API to be decided", || async { (decide().await.status == StatusCode::OK).then_some(()) })
        .await;
    agent.shutdown().await.expect("clean shutdown");
}
