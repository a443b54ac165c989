//! The decision endpoint (`TOLLGATE_AGENT_AUTHZ_LISTEN`) behind the proxies that ask it: a
//! real nginx configured from docs/integrations/nginx.md, a real Traefik from
//! docs/integrations/traefik.md, and Envoy's HTTP `ext_authz` contract driven by hand.

use std::path::Path;

use hyper::{Method, StatusCode};
use jiff::Timestamp;
use tollgate_agent::{AuthzPathPrefix, Clock, RunningAgent, ServerUrl, Settings};
use tollgate_protocol::{AuthMode, KeyLocation, Lifecycle, Period, Snapshot};

use crate::harness::*;

/// 10 s into a UTC day, so no test straddles a window.
fn ten_past() -> Timestamp {
    "2030-01-01T00:00:10Z".parse().expect("time")
}

/// The seconds left in the day at [`ten_past`].
const DAY_LEFT: &str = "86390";

/// The config block of an integration page between its `# tollgate:begin<name>` and
/// `# tollgate:end<name>` marker comments, exactly as written there.
pub fn doc_block(page: &str, name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/integrations").join(page);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let (begin, end) = (format!("# tollgate:begin{name}\n"), format!("# tollgate:end{name}\n"));
    let at = text.find(&begin).unwrap_or_else(|| panic!("{page} has no `{begin}`"));
    let end = text.find(&end).unwrap_or_else(|| panic!("{page} has no `{end}`"));
    let block = &text[at..end];
    block.split_once('\n').map_or(block, |(_, rest)| rest).to_owned()
}

/// Replaces `from` in `text`, which must contain it (so a changed page fails loudly).
pub fn substitute(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the documented config no longer contains `{from}`");
    text.replace(from, to)
}

/// The standard fixture with its key in the `X-Api-Key` header and at most 2 items a day.
pub fn header_key_fixture(upstream: &Upstream) -> Fixture {
    let mut fixture = Fixture::new(upstream, &[('g', Period::Day, 2)]);
    fixture.snapshot.apis[0].auth = AuthMode::UserKey { location: KeyLocation::Header { name: "X-Api-Key".into() } };
    fixture.snapshot.validate().expect("valid snapshot");
    fixture
}

/// Settings with the decision endpoint on a free loopback port.
pub fn decision_settings(server: ServerUrl, state_dir: &Path, clock: Option<Clock>) -> Settings {
    let mut settings = settings(server, state_dir, clock);
    settings.authz_listen = Some("127.0.0.1:0".parse().expect("address"));
    settings
}

pub fn authz(agent: &RunningAgent) -> std::net::SocketAddr {
    agent.authz_addr().expect("the decision endpoint is on")
}

/// The cases every proxy must get right, through `url(path)` of that proxy: allowed with the
/// caller's headers and no key upstream, 401, 403, 404, 405 with `Allow`, 429 with `Retry-After`, and usage
/// counted once per admitted call.
pub async fn the_usual_cases(
    cp: &ControlPlane,
    agent: RunningAgent,
    upstream: &Upstream,
    fixture: &Fixture,
    url: impl Fn(&str) -> String,
) {
    let key = fixture.key.as_str();
    // Headers by which an upstream would route another path than the one decided: the
    // agent cannot strip them here, so the documented config must.
    let rerouting = [("X-Original-URL", "/admin"), ("X-Rewrite-URL", "/admin"), ("X-Script-Name", "/pets")];
    let mut headers = vec![("X-Api-Key", key), ("X-Tollgate-Application", "forged"), ("X_Api_Key", key)];
    headers.extend(rerouting);
    headers.push(("SCRIPT_NAME", "/pets"));
    let allowed = get(&url("/pets/items/1?a=b"), &headers).await;
    assert_eq!(allowed.status, StatusCode::OK, "{}", allowed.body);
    assert_eq!(upstream.count(), 1);
    let seen = upstream.last();
    assert_eq!(seen.uri, "/pets/items/1?a=b");
    assert_eq!(
        seen.headers.get("x-tollgate-application").and_then(|v| v.to_str().ok()),
        Some(&*fixture.app.to_string())
    );
    assert_eq!(seen.headers.get("x-tollgate-plan").and_then(|v| v.to_str().ok()), Some(&*fixture.plan.to_string()));
    assert!(seen.headers.get("x-api-key").is_none(), "the key reached the upstream: {:?}", seen.headers);
    for name in ["x_api_key", "x-original-url", "x-rewrite-url", "x-script-name", "script_name"] {
        assert!(seen.headers.get(name).is_none(), "{name} reached the upstream: {:?}", seen.headers);
    }

    let missing = get(&url("/pets/items/1"), &[]).await;
    assert_eq!((missing.status, missing.error().as_str()), (StatusCode::UNAUTHORIZED, "missing_credentials"));
    let wrong =
        get(&url("/pets/items/1"), &[("X-Api-Key", new_key(tollgate_protocol::KeyKind::UserKey).as_str())]).await;
    assert_eq!((wrong.status, wrong.error().as_str()), (StatusCode::FORBIDDEN, "invalid_credentials"));
    let unmapped = get(&url("/pets/nothing"), &[("X-Api-Key", key)]).await;
    assert_eq!((unmapped.status, unmapped.error().as_str()), (StatusCode::NOT_FOUND, "no_matching_rule"));
    // A client's own claim about the request being decided changes nothing.
    let forged = get(
        &url("/pets/nothing"),
        &[("X-Api-Key", key), ("X-Forwarded-Uri", "/pets/list"), ("X-Original-URI", "/pets/list")],
    )
    .await;
    assert_eq!((forged.status, forged.error().as_str()), (StatusCode::NOT_FOUND, "no_matching_rule"));
    // A path the rules have, with a method they do not: 405 and the methods it has.
    let wrong_method = send(Method::DELETE, &url("/pets/items/1"), &[("X-Api-Key", key)], "").await;
    assert_eq!(
        (wrong_method.status, wrong_method.error().as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        "{}",
        wrong_method.body
    );
    assert_eq!(wrong_method.header("allow"), Some("GET, HEAD, POST"));

    assert_eq!(get(&url("/pets/items/2"), &[("X-Api-Key", key)]).await.status, StatusCode::OK);
    let over = get(&url("/pets/items/3"), &[("X-Api-Key", key)]).await;
    assert_eq!(
        (over.status, over.error().as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "limit_exceeded"),
        "{:?}",
        over.headers
    );
    assert_eq!(over.header("retry-after"), Some(DAY_LEFT));
    assert_eq!((over.header("ratelimit-limit"), over.header("ratelimit-remaining")), (Some("2"), Some("0")));
    // The refusal's id reaches the client through the proxy, as the failed call records it.
    let id = over.header("x-tollgate-request-id").expect("the refusal's request id").to_owned();
    assert_eq!(upstream.count(), 2, "only admitted calls reach the upstream");

    // Exactly once per admitted call: all usage is delivered by the shutdown.
    agent.shutdown().await.expect("clean shutdown");
    let m = fixture.metrics;
    assert_eq!((cp.accepted_count(m.get_item), cp.accepted_count(m.hits)), (2, 2));
    let recorded: Vec<String> = cp
        .accepted_batches()
        .iter()
        .flat_map(|b| &b.failed_calls)
        .filter(|c| c.status == 429)
        .filter_map(|c| c.request_id.map(|id| id.to_string()))
        .collect();
    assert_eq!(recorded, [id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_auth_request_configured_from_the_docs() {
    let (clock, _hands) = Clock::manual(ten_past());
    let upstream = Upstream::start().await;
    let fixture = header_key_fixture(&upstream);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(decision_settings(cp.url(), dir.path(), Some(clock))).await;

    let block = doc_block("nginx.md", "");
    let authz = authz(&agent).to_string();
    let upstream_addr = upstream.addr.to_string();
    let nginx = Nginx::start_http(|port| {
        let conf = substitute(&block, "127.0.0.1:8090", &authz);
        let conf = substitute(&conf, "127.0.0.1:8000", &upstream_addr);
        substitute(&conf, "listen 8080;", &format!("listen 127.0.0.1:{port};"))
    })
    .await;
    the_usual_cases(&cp, agent, &upstream, &fixture, |path| nginx.url(path)).await;
    // The agent is gone: the recipe answers 503 rather than nginx's 500, and nothing passes.
    let down = get(&nginx.url("/pets/items/1"), &[("X-Api-Key", fixture.key.as_str())]).await;
    assert_eq!((down.status, down.error().as_str()), (StatusCode::SERVICE_UNAVAILABLE, "decision_unavailable"));
    assert_eq!(upstream.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traefik_forward_auth_configured_from_the_docs() {
    let (clock, _hands) = Clock::manual(ten_past());
    let upstream = Upstream::start().await;
    let fixture = header_key_fixture(&upstream);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(decision_settings(cp.url(), dir.path(), Some(clock))).await;

    let static_block = doc_block("traefik.md", " static");
    let dynamic = substitute(&doc_block("traefik.md", " dynamic"), "127.0.0.1:8090", &authz(&agent).to_string());
    let dynamic = substitute(&dynamic, "127.0.0.1:8000", &upstream.addr.to_string());
    let traefik = Traefik::start(
        |port, dynamic_file| {
            let conf = substitute(&static_block, "\":8080\"", &format!("\"127.0.0.1:{port}\""));
            substitute(&conf, "/etc/traefik/tollgate.yml", &dynamic_file.display().to_string())
        },
        &dynamic,
    )
    .await;
    // The file provider loads its routes shortly after the entry point listens.
    let probe = traefik.url("/pets/items/1");
    eventually("traefik to route to the decision", || {
        let probe = probe.clone();
        async move { (get(&probe, &[]).await.status == StatusCode::UNAUTHORIZED).then_some(()) }
    })
    .await;
    the_usual_cases(&cp, agent, &upstream, &fixture, |path| traefik.url(path)).await;
    // The agent is gone: Traefik's own 500, and nothing passes.
    let down = get(&traefik.url("/pets/items/1"), &[("X-Api-Key", fixture.key.as_str())]).await;
    assert_eq!(down.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(upstream.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_http_ext_authz_contract() {
    let (clock, _hands) = Clock::manual(ten_past());
    let upstream = Upstream::start().await;
    let fixture = header_key_fixture(&upstream);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let mut settings = decision_settings(cp.url(), dir.path(), Some(clock));
    settings.authz_path_prefix = Some(AuthzPathPrefix::parse("/authz").expect("prefix"));
    let agent = start_ready(settings).await;
    let authz = authz(&agent);
    let key = fixture.key.as_str();
    // As Envoy's filter sends it: the original method, `path_prefix` + path and query, the
    // original authority as Host, lower-cased allowed headers, no body.
    let check = |method: Method, path: &str, headers: Vec<(&'static str, String)>| {
        let url = format!("http://{authz}/authz{path}");
        async move {
            let mut all: Vec<(&str, &str)> = vec![("host", "shop.example.com"), ("content-length", "0")];
            all.extend(headers.iter().map(|(n, v)| (*n, v.as_str())));
            send(method, &url, &all, "").await
        }
    };

    let ok = check(Method::GET, "/pets/items/1?user_key=ignored&a=b", vec![("x-api-key", key.to_owned())]).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.header("x-tollgate-application"), Some(&*fixture.app.to_string()));
    assert_eq!(ok.header("x-tollgate-plan"), Some(&*fixture.plan.to_string()));
    assert_eq!(ok.header("x-envoy-auth-headers-to-remove"), Some("x-api-key"));
    assert_eq!((ok.header("ratelimit-limit"), ok.header("ratelimit-remaining")), (Some("2"), Some("1")));
    assert_eq!(ok.body, "");
    // Every spelling of the credential header is named for removal.
    let spelled =
        check(Method::GET, "/pets/items/2", vec![("x-api-key", key.to_owned()), ("x_api_key", key.to_owned())]).await;
    assert_eq!(spelled.status, StatusCode::OK);
    assert_eq!(spelled.header("x-envoy-auth-headers-to-remove"), Some("x-api-key,x_api_key"));

    let over = check(Method::GET, "/pets/items/3", vec![("x-api-key", key.to_owned())]).await;
    assert_eq!((over.status, over.error().as_str()), (StatusCode::TOO_MANY_REQUESTS, "limit_exceeded"));
    assert_eq!(over.header("retry-after"), Some(DAY_LEFT));
    assert_eq!(over.header("content-type"), Some("application/json"));
    assert_eq!(over.header("x-tollgate-refusal"), None, "the body's copy is for nginx only");
    let missing = check(Method::GET, "/pets/items/1", vec![]).await;
    assert_eq!((missing.status, missing.error().as_str()), (StatusCode::UNAUTHORIZED, "missing_credentials"));
    // The original method decides which rules apply: no DELETE rule, but a GET one.
    let delete = check(Method::DELETE, "/pets/items/1", vec![("x-api-key", key.to_owned())]).await;
    assert_eq!((delete.status, delete.error().as_str()), (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"));
    assert_eq!(delete.header("allow"), Some("GET, HEAD, POST"), "a POST rule on /pets/items matches below it too");
    let elsewhere = check(Method::GET, "/nowhere", vec![("x-api-key", key.to_owned())]).await;
    assert_eq!((elsewhere.status, elsewhere.error().as_str()), (StatusCode::NOT_FOUND, "unknown_api"));
    let dots = check(Method::GET, "/pets/items/%2e%2e/admin", vec![("x-api-key", key.to_owned())]).await;
    assert_eq!((dots.status, dots.error().as_str()), (StatusCode::BAD_REQUEST, "invalid_path"));
    let unprefixed = send(Method::GET, &format!("http://{authz}/pets/items/1"), &[("x-api-key", key)], "").await;
    assert_eq!((unprefixed.status, unprefixed.error().as_str()), (StatusCode::BAD_REQUEST, "invalid_decision_request"));
    assert!(unprefixed.json()["message"].as_str().unwrap_or_default().contains("TOLLGATE_AGENT_AUTHZ_PATH_PREFIX"));

    agent.shutdown().await.expect("clean shutdown");
    let m = fixture.metrics;
    assert_eq!(cp.accepted_count(m.get_item), 2, "two admitted decisions, counted once each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_route_by_the_original_host_and_honour_the_lifecycle() {
    let upstream = Upstream::start().await;
    let mut fixture = header_key_fixture(&upstream);
    let header_key = AuthMode::UserKey { location: KeyLocation::Header { name: "x-api-key".into() } };
    let (shop, _) = add_api(&mut fixture, "/shop", Lifecycle::Published, header_key.clone(), upstream.url(""));
    add_api(&mut fixture, "/gone", Lifecycle::Retired, header_key, upstream.url(""));
    for api in fixture.snapshot.apis.iter_mut().filter(|api| api.id == shop) {
        api.hosts = vec!["shop.example.com".into()];
    }
    fixture.snapshot.validate().expect("valid snapshot");
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(decision_settings(cp.url(), dir.path(), None)).await;
    let url = format!("http://{}/", authz(&agent));
    let error = |answer: Answer| (answer.status, answer.error());

    // Routed by the original host: found (and then asked for a key), or not found.
    for (headers, expected) in [
        (vec![("host", "shop.example.com"), ("x-original-uri", "/shop/")], StatusCode::UNAUTHORIZED),
        (vec![("host", "other.example.com"), ("x-original-uri", "/shop/")], StatusCode::NOT_FOUND),
        (
            vec![("host", "agent"), ("x-forwarded-uri", "/shop/"), ("x-forwarded-host", "SHOP.example.com:443")],
            StatusCode::UNAUTHORIZED,
        ),
        (
            vec![
                ("host", "shop.example.com"),
                ("x-forwarded-uri", "/shop/"),
                ("x-forwarded-host", "other.example.com"),
            ],
            StatusCode::NOT_FOUND,
        ),
    ] {
        assert_eq!(get(&url, &headers).await.status, expected, "{headers:?}");
    }
    let bad_host = get(&url, &[("x-forwarded-uri", "/shop/"), ("x-forwarded-host", "a b")]).await;
    assert_eq!(error(bad_host), (StatusCode::BAD_REQUEST, "invalid_host".to_owned()));
    let retired = get(&url, &[("x-original-uri", "/gone/"), ("x-api-key", fixture.key.as_str())]).await;
    assert_eq!(error(retired), (StatusCode::GONE, "api_retired".to_owned()));

    // What the proxy forwards is what is decided: no method the rules would read in another
    // case, no tunnel, and no fragment hiding the rest of what nginx passes on raw.
    let key = fixture.key.as_str();
    let lower =
        get(&url, &[("x-forwarded-uri", "/pets/items/1"), ("x-forwarded-method", "get"), ("x-api-key", key)]).await;
    assert_eq!(error(lower), (StatusCode::BAD_REQUEST, "invalid_method".to_owned()));
    let tunnel =
        get(&url, &[("x-original-uri", "/pets/items/1"), ("x-original-method", "CONNECT"), ("x-api-key", key)]).await;
    assert_eq!(error(tunnel), (StatusCode::NOT_IMPLEMENTED, "tunnel_not_supported".to_owned()));
    let fragment = get(&url, &[("x-original-uri", "/pets/items/1#/../../admin"), ("x-api-key", key)]).await;
    assert_eq!(error(fragment), (StatusCode::BAD_REQUEST, "invalid_decision_request".to_owned()));
    assert_eq!(get(&url, &[("x-original-uri", "/pets/items/1"), ("x-api-key", key)]).await.status, StatusCode::OK);
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_config_the_decision_is_503() {
    let down = ServerUrl::parse(&format!("http://{}", dead_addr().await)).expect("url");
    let dir = TempDir::new();
    let agent = tollgate_agent::Agent::start(decision_settings(down, dir.path(), None)).await.expect("starts");
    let answer = get(&format!("http://{}/pets/items/1", authz(&agent)), &[]).await;
    assert_eq!((answer.status, answer.error().as_str()), (StatusCode::SERVICE_UNAVAILABLE, "not_ready"));
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_hold_from_disk_while_the_server_is_down() {
    let (clock, _hands) = Clock::manual(ten_past());
    let upstream = Upstream::start().await;
    let fixture = header_key_fixture(&upstream);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(decision_settings(cp.url(), dir.path(), Some(clock.clone()))).await;
    let decide = |agent: &RunningAgent, path: &str| {
        let url = format!("http://{}{path}", authz(agent));
        let key = fixture.key.as_str().to_owned();
        async move { get(&url, &[("x-original-uri", "/pets/items/1"), ("x-api-key", key.as_str())]).await }
    };
    assert_eq!(decide(&agent, "/").await.status, StatusCode::OK);
    let saved = dir.path().join("config.bin");
    eventually("the config on disk", || {
        let saved = saved.clone();
        async move {
            let bytes = std::fs::read(&saved).ok()?;
            let snapshot: Snapshot = tollgate_protocol::binary::decode_snapshot(&bytes).ok()?;
            (snapshot.revision == fixture.snapshot.revision).then_some(())
        }
    })
    .await;
    agent.shutdown().await.expect("clean shutdown");
    drop(cp);

    let down = ServerUrl::parse(&format!("http://{}", dead_addr().await)).expect("url");
    let agent = start_ready(decision_settings(down, dir.path(), Some(clock))).await;
    let ready = get(&format!("http://{}/ready", agent.admin_addr()), &[]).await.json();
    assert_eq!(ready["source"], "disk");
    // One of the day's two items was used before the restart.
    assert_eq!(decide(&agent, "/").await.status, StatusCode::OK);
    let over = decide(&agent, "/").await;
    assert_eq!((over.status, over.error().as_str()), (StatusCode::TOO_MANY_REQUESTS, "limit_exceeded"));
    let body = over.header("x-tollgate-refusal").map(str::to_owned);
    assert_eq!(body.as_deref(), Some(over.body.as_str()), "nginx gets the body as a header too");
    agent.shutdown().await.expect("clean shutdown");
}
