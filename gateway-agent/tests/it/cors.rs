//! CORS for listed browser origins (`TOLLGATE_AGENT_CORS_ORIGINS`): preflights answered by the
//! agent, every answer to a listed origin readable by the page, nothing for other origins.

use hyper::{Method, StatusCode};
use tollgate_agent::{CorsOrigins, RunningAgent};
use tollgate_protocol::{AuthMode, KeyLocation, Metric, Period};

use crate::harness::*;

const PORTAL: &str = "http://127.0.0.1:8080";
const EXPOSED: &str =
    "RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, Retry-After, Deprecation, Sunset, X-Tollgate-Request-Id";

/// The standard fixture with an eternity limit of 2 on `hits` and a mapping rule for
/// `OPTIONS` on `/pets/items` (so a preflight that went through the usual pipeline with its
/// key in the URL would be proxied and counted), plus an API at `/hdr` whose key is in the
/// `x-api-key` header. The agent allows two origins, the portal's among them.
async fn start(upstream: &Upstream) -> (Fixture, ControlPlane, TempDir, RunningAgent) {
    let mut fixture = Fixture::new(upstream, &[('h', Period::Eternity, 2)]);
    let pets = &mut fixture.snapshot.apis[0];
    let hits = fixture.metrics.hits;
    pets.mapping_rules.push(rule("OPTIONS", "/items", hits, 1, 7, false));
    let mut hdr = pets.clone();
    hdr.id = id();
    hdr.slug = format!("hdr-{}", hdr.id.simple());
    hdr.base_path = "/hdr".into();
    hdr.auth = AuthMode::UserKey { location: KeyLocation::Header { name: "x-api-key".into() } };
    let metric = id();
    hdr.metrics = vec![Metric { id: metric, system_name: "hits".into(), parent: None }];
    hdr.mapping_rules = vec![rule("GET", "/", metric, 1, 1, false)];
    fixture.snapshot.apis.push(hdr);
    fixture.snapshot.validate().expect("valid");
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let mut settings = settings(cp.url(), dir.path(), None);
    settings.cors_origins = CorsOrigins::parse(&format!("https://other.example.test, {PORTAL}")).expect("origins");
    let agent = start_ready(settings).await;
    (fixture, cp, dir, agent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preflight_from_a_listed_origin_is_answered_by_the_agent() {
    let upstream = Upstream::start().await;
    let (fixture, cp, _dir, agent) = start(&upstream).await;
    let proxy = agent.proxy_addr();
    // Swagger UI puts a query key in the URL of the preflight too.
    let url = format!("http://{proxy}/pets/items/7?user_key={}", fixture.key.as_str());

    let answer = send(
        Method::OPTIONS,
        &url,
        &[
            ("origin", PORTAL),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "content-type,x-trace-id,bad header"),
        ],
        "",
    )
    .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.body);
    assert_eq!(answer.body, "");
    assert_eq!(answer.header("access-control-allow-origin"), Some(PORTAL));
    assert_eq!(answer.header("access-control-allow-methods"), Some("PUT"));
    assert_eq!(
        answer.header("access-control-allow-headers"),
        Some("content-type, x-trace-id, x-api-key"),
        "requested tokens echoed, plus the header the APIs read keys from"
    );
    assert_eq!(answer.header("access-control-max-age"), Some("600"));
    assert_eq!(answer.header("vary"), Some("Origin"));
    assert!(answer.header("access-control-allow-credentials").is_none());

    // Without a usable requested method: the fixed list. Before routing: any path.
    let answer = send(
        Method::OPTIONS,
        &format!("http://{proxy}/no/such/api"),
        &[("origin", PORTAL), ("access-control-request-method", "GET, PUT")],
        "",
    )
    .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert_eq!(answer.header("access-control-allow-methods"), Some("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"));
    assert_eq!(answer.header("access-control-allow-headers"), Some("x-api-key"));
    assert_eq!(upstream.count(), 0, "preflights never reach the upstream");

    // The same OPTIONS with the key and without CORS is an ordinary, counted request.
    let answer = send(Method::OPTIONS, &url, &[], "").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(answer.header("access-control-allow-origin").is_none());
    assert_eq!(upstream.count(), 1);
    let hits = fixture.metrics.hits;
    eventually("the OPTIONS request's usage", || async { (cp.accepted_count(hits) == 1).then_some(()) }).await;
    // The preflights were answered before it: had they been usage, it would show by now.
    assert_eq!(cp.accepted_count(hits), 1, "preflights are not usage");

    let admin = agent.admin_addr();
    let metrics = get(&format!("http://{admin}/metrics"), &[]).await.body;
    assert!(
        metrics.lines().any(|line| line.starts_with("tollgate_agent_requests_total{")
            && line.contains("decision=\"cors_preflight\"")
            && line.contains("status=\"204\"")
            && line.ends_with(" 2")),
        "preflights show in the metrics: {metrics}"
    );
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_origins_get_no_cors_headers() {
    let upstream = Upstream::start().await;
    let (fixture, _cp, _dir, agent) = start(&upstream).await;
    let proxy = agent.proxy_addr();
    let url = format!("http://{proxy}/pets/items/7?user_key={}", fixture.key.as_str());
    let preflight = |origin: &'static str| {
        let url = format!("http://{proxy}/pets/items/7");
        async move { send(Method::OPTIONS, &url, &[("origin", origin), ("access-control-request-method", "GET")], "").await }
    };
    for origin in ["http://127.0.0.1:8081", "http://evil.example.test", "null", "HTTP://127.0.0.1:8080"] {
        let answer = preflight(origin).await;
        assert_eq!(
            (answer.status, answer.error().as_str()),
            (StatusCode::UNAUTHORIZED, "missing_credentials"),
            "an unlisted origin's preflight goes through the usual pipeline"
        );
        assert!(answer.header("access-control-allow-origin").is_none());
        assert!(answer.header("access-control-allow-methods").is_none());
        assert!(answer.header("vary").is_none());
    }
    let answer = get(&url, &[("origin", "http://evil.example.test")]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.header("access-control-allow-origin").is_none());
    assert!(answer.header("access-control-expose-headers").is_none());
    let answer = get(&url, &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.header("access-control-allow-origin").is_none());
    assert!(answer.header("vary").is_none());
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_to_a_listed_origin_is_readable_by_the_page() {
    let upstream = Upstream::start().await;
    let (fixture, _cp, _dir, agent) = start(&upstream).await;
    let proxy = agent.proxy_addr();
    let key = fixture.key.as_str();
    let from_portal = [("origin", PORTAL)];
    let assert_cors = |answer: &Answer, what: &str| {
        assert_eq!(answer.header("access-control-allow-origin"), Some(PORTAL), "{what}");
        assert_eq!(answer.header("vary"), Some("Origin"), "{what}");
        assert_eq!(answer.header("access-control-expose-headers"), Some(EXPOSED), "{what}");
    };

    let answer = get(&format!("http://{proxy}/pets/items/7?user_key={key}"), &from_portal).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("x-upstream"), Some("1"));
    assert_cors(&answer, "proxied");
    assert_eq!(upstream.last().headers["origin"], PORTAL, "the request itself is forwarded as it was");

    let answer = get(&format!("http://{proxy}/pets/items/7"), &from_portal).await;
    assert_eq!((answer.status, answer.error().as_str()), (StatusCode::UNAUTHORIZED, "missing_credentials"));
    assert_cors(&answer, "401");

    let answer = get(&format!("http://{proxy}/nothing"), &from_portal).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_cors(&answer, "404");

    // The second hit of an eternity limit of 2 is admitted, the third refused.
    let url = format!("http://{proxy}/pets/items/8?user_key={key}");
    assert_eq!(get(&url, &from_portal).await.status, StatusCode::OK);
    let answer = get(&url, &from_portal).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_cors(&answer, "429");
    assert_eq!(answer.header("ratelimit-limit"), Some("2"));

    // An OPTIONS without Access-Control-Request-Method is not a preflight.
    let answer = send(Method::OPTIONS, &url, &from_portal, "").await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_cors(&answer, "OPTIONS, not a preflight");
    agent.shutdown().await.expect("clean shutdown");
}

#[test]
fn bad_origins_exit_2_naming_the_setting() {
    for bad in ["*", "http://127.0.0.1:8080/", "127.0.0.1:8080"] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate-agent"))
            .env_clear()
            .env("TOLLGATE_AGENT_SERVER", "http://127.0.0.1:1")
            .env("TOLLGATE_AGENT_TOKEN", "tg_agt_secret_value")
            .env("TOLLGATE_AGENT_CORS_ORIGINS", format!("http://127.0.0.1:8080,{bad}"))
            .output()
            .expect("run the binary");
        assert_eq!(output.status.code(), Some(2), "{bad}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("error: TOLLGATE_AGENT_CORS_ORIGINS: "), "{stderr}");
    }
}
