//! The request path through the proxy port: forwarding, credentials, lifecycles, refusals.

use hyper::{Method, StatusCode};
use jiff::{SignedDuration, Timestamp};
use tollgate_agent::Clock;
use tollgate_protocol::{
    Application, ApplicationState, AuthMode, Credential, KeyKind, KeyLocation, Lifecycle, NoMatch,
    Upstream as UpstreamUrl,
};

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_key_is_proxied_without_the_key_and_with_forwarding_headers() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let proxy = agent.proxy_addr();

    let answer = get(
        &format!("http://{proxy}/pets/items/7?a=1&user_key={}&b=2", fixture.key.as_str()),
        &[
            ("x-forwarded-for", "10.0.0.1"),
            ("connection", "keep-alive, x-hop, host"),
            ("x-forwarded-for", "10.0.0.2, 10.0.0.3"),
            ("x-forwarded-for", " "),
            ("x-hop", "secret"),
            ("x-kept", "yes"),
            ("x_forwarded_for", "6.6.6.6"),
            ("x_forwarded_host", "evil.example"),
            ("x.real.ip", "6.6.6.6"),
            ("x_original_url", "/admin"),
            ("true-client-ip", "6.6.6.6"),
            ("x-forwarded-ssl", "on"),
            ("x-tollgate-application", "00000000-0000-0000-0000-000000000001"),
            ("x_tollgate_decision", "forged"),
            ("x-original-uri", "/admin"),
            ("client-ip", "6.6.6.6"),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body, "ok");
    assert_eq!(answer.header("x-upstream"), Some("1"));

    let seen = upstream.last();
    assert_eq!(
        seen.uri, "/backend/items/7?a=1&b=2",
        "the base path is swapped for the upstream's and the key stripped"
    );
    assert!(!seen.uri.contains(fixture.key.as_str()));
    assert_eq!(
        seen.headers.get_all("x-forwarded-for").iter().collect::<Vec<_>>(),
        ["10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1"],
        "every field's hops, in order, then the client: one field"
    );
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(seen.headers["x-forwarded-host"], proxy.to_string().as_str());
    assert_eq!(seen.headers["host"], upstream.addr.to_string().as_str());
    assert!(seen.headers.get("x-hop").is_none(), "headers named in Connection are hop-by-hop");
    assert_eq!(seen.headers["x-kept"], "yes");
    for spelling in [
        "x_forwarded_for",
        "x_forwarded_host",
        "x.real.ip",
        "x_original_url",
        "true-client-ip",
        "x-forwarded-ssl",
        "x-tollgate-application",
        "x_tollgate_decision",
        "x-original-uri",
        "client-ip",
    ] {
        assert!(seen.headers.get(spelling).is_none(), "{spelling}: a client's claim about a proxy");
    }

    // A credential after `;` is one to upstreams that split on it: gone, the rest kept.
    let key = fixture.key.as_str();
    let answer = get(&format!("http://{proxy}/pets/items/7?a=1;user_key={key};b=2"), &[]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(upstream.last().uri, "/backend/items/7?a=1;b=2");
    let answer = get(&format!("http://{proxy}/pets/items/7?user_key={key}&a=1;user_key=tg_uk_other"), &[]).await;
    assert_eq!((answer.status.as_u16(), answer.error().as_str()), (400, "ambiguous_credentials"), "{}", answer.body);

    // Nor may a cookie named like the credential (PHP's `$_REQUEST` can read cookies).
    let url = format!("http://{proxy}/pets/items/7?user_key={key}");
    let answer = get(&url, &[("cookie", "theme=dark; user_key=tg_uk_other")]).await;
    assert_eq!((answer.status.as_u16(), answer.error().as_str()), (400, "ambiguous_credentials"), "{}", answer.body);
    // A comma or a space separates cookies for Python's `SimpleCookie` and Tomcat's legacy parser.
    for cookie in ["theme=dark, user_key=tg_uk_other", "theme=dark user_key=tg_uk_other"] {
        let answer = get(&url, &[("cookie", cookie)]).await;
        assert_eq!((answer.status.as_u16(), answer.error().as_str()), (400, "ambiguous_credentials"), "{cookie}");
    }
    let answer = get(&url, &[("cookie", &format!("theme=dark; User-Key={key}; lang=en"))]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(upstream.last().headers["cookie"], "theme=dark; lang=en");
    let answer = get(&url, &[("cookie", &format!("theme=dark, user_key={key} lang=en"))]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(upstream.last().headers["cookie"], "theme=dark; lang=en", "the key's cookie is stripped");
    // A byte beyond ASCII elsewhere in the header hides nothing (PHP reads such a header).
    let mut request = format!("GET /pets/items/7?user_key={key} HTTP/1.1\r\nHost: {proxy}\r\nConnection: close\r\nCookie: user_key=tg_uk_other; z=").into_bytes();
    request.extend_from_slice(b"\xe9\r\n\r\n");
    let answer = raw_exchange(proxy, &request).await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(answer.body.contains("ambiguous_credentials"), "{}", answer.body);
    let mut request = format!(
        "GET /pets/items/7?user_key={key} HTTP/1.1\r\nHost: {proxy}\r\nConnection: close\r\nCookie: user_key={key}; z="
    )
    .into_bytes();
    request.extend_from_slice(b"\xe9\r\n\r\n");
    assert_eq!(raw_exchange(proxy, &request).await.status, 200);
    assert_eq!(upstream.last().headers["cookie"].as_bytes(), b"z=\xe9", "the key's cookie is stripped");
    // Names PHP reads as the credential: cut at NUL, after `[]`, an unclosed `[` as `_`.
    for other in ["user_key%00x=tg_uk_other", "user_key[]x=tg_uk_other", "user[key=tg_uk_other"] {
        let answer = get(&format!("http://{proxy}/pets/items/7?user_key={key}&{other}"), &[]).await;
        assert_eq!((answer.status.as_u16(), answer.error().as_str()), (400, "ambiguous_credentials"), "{other}");
    }

    // A GET's body of no announced length (chunked) reaches the upstream, not only its head.
    let request = format!(
        "GET /pets/items/7?user_key={key} HTTP/1.1\r\nHost: {proxy}\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nquery\r\n0\r\n\r\n"
    );
    let answer = raw_exchange(proxy, request.as_bytes()).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "query"), "the upstream echoes what it got");
    // An upstream that never reads a GET's body would take it for the next request on the
    // connection (CL.0): this one ends with the exchange.
    assert_eq!(upstream.last().headers["connection"], "close");

    // A body is streamed through.
    let answer = send(
        Method::POST,
        &format!("http://{proxy}/pets/items?user_key={}", fixture.key.as_str()),
        &[("content-type", "text/plain")],
        "hello upstream",
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, "hello upstream");
    assert_eq!(upstream.last().method, Method::POST);
    // The agent answers the client's expectation itself; the upstream is sent the body.
    let answer = send(
        Method::POST,
        &format!("http://{proxy}/pets/items?user_key={}", fixture.key.as_str()),
        &[("content-type", "text/plain"), ("expect", "100-continue")],
        "expected",
    )
    .await;
    assert_eq!((answer.status, answer.body.as_str()), (StatusCode::OK, "expected"));
    assert!(upstream.last().headers.get("expect").is_none(), "{:?}", upstream.last().headers);
    agent.shutdown().await.expect("clean shutdown");
}

/// Link checkers, caches and `curl -I` send `HEAD` where an API documents only `GET`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_is_served_where_the_rules_have_a_get_and_counted_on_its_operation() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let url = format!("http://{}/pets/items/7?user_key={}", agent.proxy_addr(), fixture.key.as_str());

    let answer = send(Method::HEAD, &url, &[], "").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body, "", "an answer to HEAD has no body");
    assert_eq!(answer.header("content-length"), Some("2"), "the GET's length");
    assert_eq!(upstream.last().method, Method::HEAD, "the upstream gets the HEAD itself");
    let m = fixture.metrics;
    eventually("usage acknowledged", || async {
        (cp.accepted_count(m.hits) == 1 && cp.accepted_count(m.get_item) == 1).then_some(())
    })
    .await;
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_have_their_status_and_json_body() {
    let upstream = Upstream::start().await;
    let mut fixture = Fixture::new(&upstream, &[]);
    let (_, suspended) = fixture.add_app(ApplicationState::Suspended, None);
    let (_, pending) = fixture.add_app(ApplicationState::Pending, None);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let proxy = agent.proxy_addr();
    let key = fixture.key.as_str();
    let unknown = new_key(KeyKind::UserKey);

    let cases: Vec<(String, Method, StatusCode, &str)> = vec![
        ("/pets/items/7".to_owned(), Method::GET, StatusCode::UNAUTHORIZED, "missing_credentials"),
        ("/pets/items/7?user_key=".to_owned(), Method::GET, StatusCode::UNAUTHORIZED, "missing_credentials"),
        (
            format!("/pets/items/7?user_key={}", unknown.as_str()),
            Method::GET,
            StatusCode::FORBIDDEN,
            "invalid_credentials",
        ),
        ("/pets/items/7?user_key=not-a-key".to_owned(), Method::GET, StatusCode::FORBIDDEN, "invalid_credentials"),
        (
            format!("/pets/items/7?user_key={}", suspended.as_str()),
            Method::GET,
            StatusCode::FORBIDDEN,
            "application_not_live",
        ),
        (
            format!("/pets/items/7?user_key={}", pending.as_str()),
            Method::GET,
            StatusCode::FORBIDDEN,
            "application_not_live",
        ),
        (format!("/pets/nothing?user_key={key}"), Method::GET, StatusCode::NOT_FOUND, "no_matching_rule"),
        (format!("/pets/items/7?user_key={key}"), Method::DELETE, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        (format!("/petshop?user_key={key}"), Method::GET, StatusCode::NOT_FOUND, "unknown_api"),
        ("/".to_owned(), Method::GET, StatusCode::NOT_FOUND, "unknown_api"),
    ];
    for (path, method, status, error) in cases {
        let answer = send(method.clone(), &format!("http://{proxy}{path}"), &[], "").await;
        assert_eq!(answer.status, status, "{method} {path}: {}", answer.body);
        assert_eq!(answer.error(), error, "{method} {path}");
        assert!(answer.json()["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(answer.header("content-type"), Some("application/json"));
    }
    // Not live: the message says which, so the developer knows whether to wait or to ask.
    for (key, says) in [(&suspended, "suspended"), (&pending, "approval")] {
        let answer =
            send(Method::GET, &format!("http://{proxy}/pets/items/7?user_key={}", key.as_str()), &[], "").await;
        assert!(answer.json()["message"].as_str().is_some_and(|m| m.contains(says)), "{}", answer.body);
    }
    // A path the rules know, with a method they do not: 405 names the methods it has.
    let wrong_method = send(Method::DELETE, &format!("http://{proxy}/pets/items/7?user_key={key}"), &[], "").await;
    assert_eq!(wrong_method.header("allow"), Some("GET, HEAD, POST"), "{}", wrong_method.body);
    assert!(wrong_method.json()["message"].as_str().is_some_and(|m| m.contains("GET") && m.contains("not DELETE")));
    // The rules allowed a POST; an override could make the upstream run a DELETE.
    for header in ["x-http-method-override", "X-HTTP-Method", "x_method_override"] {
        let url = format!("http://{proxy}/pets/items?user_key={key}");
        let answer = send(Method::POST, &url, &[(header, "DELETE")], "").await;
        assert_eq!((answer.status.as_u16(), answer.error().as_str()), (400, "method_override"), "{header}");
    }
    for query in ["_method=DELETE", "a=1;_method=PUT", "%5Fmethod=DELETE"] {
        let url = format!("http://{proxy}/pets/items?user_key={key}&{query}");
        let answer = send(Method::POST, &url, &[], "").await;
        assert_eq!((answer.status.as_u16(), answer.error().as_str()), (400, "method_override"), "{query}");
    }
    // A 401 says where the key goes, and carries the challenge a 401 needs.
    let missing = get(&format!("http://{proxy}/pets/items/7?api_key={key}"), &[]).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.json()["message"], "This API requires a key; send it as the `user_key` query parameter.");
    let challenge = missing.header("www-authenticate").expect("a challenge");
    assert!(challenge.starts_with("Key realm=\"pets-"), "{challenge}");
    assert_eq!(upstream.count(), 0, "refused requests never reach the upstream");
    // A redirect the upstream builds from its own Host and path is pointed back through the
    // gateway; one to another site, or outside the upstream's prefix, is left as it is.
    for (kind, expected) in [
        ("absolute", "/pets/landed?x=1"),
        ("relative", "/pets/landed"),
        ("elsewhere", "https://example.com/backend/landed"),
        ("outside", "/other/landed"),
    ] {
        let answer = get(&format!("http://{proxy}/pets/status/302/{kind}?user_key={key}"), &[]).await;
        assert_eq!((answer.status.as_u16(), answer.header("location")), (302, Some(expected)), "{kind}");
    }

    let metrics = get(&format!("http://{}/metrics", agent.admin_addr()), &[]).await.body;
    assert!(metrics.contains(r#"decision="invalid_credentials",status="403""#), "{metrics}");
    assert!(metrics.contains("tollgate_agent_request_duration_seconds_bucket"), "{metrics}");
    assert!(!metrics.contains("tollgate_agent_redis_up"), "only agents with Redis report it");
    agent.shutdown().await.expect("clean shutdown");
}

/// Rails, Symfony and Laravel run a `POST` whose form (or, for Laravel, JSON object) has a
/// `_method` field as that method: the rules matched a `POST`, so such a body must never
/// reach the upstream whole, wherever the field is and however the body is cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_field_in_a_post_body_never_reaches_the_upstream_whole() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let proxy = agent.proxy_addr();
    let key = fixture.key.as_str();
    let url = format!("http://{proxy}/pets/items?user_key={key}");

    let overrides: [(&[(&str, &str)], &'static str); 8] = [
        (&[("content-type", "application/x-www-form-urlencoded")], "name=rex&_method=DELETE"),
        (&[], "%5Fmethod=DELETE"),
        (
            &[("content-type", "multipart/form-data; boundary=XyZ")],
            "--XyZ\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDELETE\r\n--XyZ--\r\n",
        ),
        (&[("content-type", "application/json")], r#"{"name":"rex","_method":"DELETE"}"#),
        (&[("content-type", "application/json; charset=utf-8")], r#"{"\u005fmethod":"DELETE"}"#),
        // PHP cuts the media type at `,` or a space too.
        (&[("content-type", "application/x-www-form-urlencoded, text/plain")], "a=1&_method=DELETE"),
        // The type is hop-by-hop here: the upstream gets a POST without one, a form to Rack.
        (&[("content-type", "text/plain"), ("connection", "content-type")], "_method=DELETE"),
        // PHP ends a name at NUL.
        (&[("content-type", "application/x-www-form-urlencoded")], "_method%00x=DELETE"),
    ];
    for (headers, body) in overrides {
        let answer = send(Method::POST, &url, headers, body).await;
        assert_eq!((answer.status.as_u16(), answer.error().as_str()), (400, "method_override"), "{body}");
        assert!(answer.json()["message"].as_str().is_some_and(|m| m.contains("_method")));
    }
    // The field's name split across two chunks of a chunked body.
    let request = format!(
        "POST /pets/items?user_key={key} HTTP/1.1\r\nHost: {proxy}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n7\r\na=1&_me\r\nb\r\nthod=DELETE\r\n0\r\n\r\n"
    );
    let answer = raw_exchange(proxy, request.as_bytes()).await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(answer.body.contains("method_override"), "{}", answer.body);
    let whole = upstream.bodies.lock().expect("lock").clone();
    assert!(whole.iter().all(|body| !body.windows(4).any(|w| w == b"thod")), "{whole:?}");

    // Bodies that only mention the word pass untouched.
    let passing: [(&[(&str, &str)], &'static str); 4] = [
        (&[("content-type", "application/x-www-form-urlencoded")], "payment_method=card&note=_method%3DDELETE"),
        (&[("content-type", "application/json")], r#"{"order":{"_method":"DELETE"},"note":"_method"}"#),
        (&[("content-type", "text/plain")], "_method=DELETE"),
        (
            &[("content-type", "multipart/form-data; boundary=XyZ")],
            "--XyZ\r\nContent-Disposition: form-data; name=\"page\"; filename=\"_method.html\"\r\n\r\n<input name=\"_method\">\r\n--XyZ--\r\n",
        ),
    ];
    for (headers, body) in passing {
        let answer = send(Method::POST, &url, headers, body).await;
        assert_eq!(answer.status, StatusCode::OK, "{body}: {}", answer.body);
        assert_eq!(answer.body, body, "the upstream echoes what it got");
    }
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_works_until_its_overlap_expires() {
    let now: Timestamp = "2030-01-01T12:00:00Z".parse().expect("time");
    let (clock, hands) = Clock::manual(now);
    let upstream = Upstream::start().await;
    let mut fixture = Fixture::new(&upstream, &[]);
    // The app's previous key, rotated out an hour ago with an overlap that ended a second ago,
    // and the key before the current one, still in its overlap for another hour.
    let app = fixture.app;
    let expired = new_key(KeyKind::UserKey);
    let overlapping = new_key(KeyKind::UserKey);
    for (key, expiry) in
        [(&expired, now - SignedDuration::from_secs(1)), (&overlapping, now + SignedDuration::from_hours(1))]
    {
        fixture.snapshot.credentials.push(Credential {
            hash: key.hash(),
            kind: KeyKind::UserKey,
            application_id: app,
            expires_at: Some(expiry),
        });
    }
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), Some(clock))).await;
    let url = |key: &str| format!("http://{}/pets/list?user_key={key}", agent.proxy_addr());

    assert_eq!(get(&url(fixture.key.as_str()), &[]).await.status, StatusCode::OK);
    assert_eq!(get(&url(overlapping.as_str()), &[]).await.status, StatusCode::OK);
    let answer = get(&url(expired.as_str()), &[]).await;
    assert_eq!((answer.status, answer.error().as_str()), (StatusCode::FORBIDDEN, "invalid_credentials"));

    hands.advance(SignedDuration::from_hours(1));
    assert_eq!(get(&url(overlapping.as_str()), &[]).await.status, StatusCode::FORBIDDEN, "the overlap is over");
    assert_eq!(get(&url(fixture.key.as_str()), &[]).await.status, StatusCode::OK);
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycles_deprecated_retired_and_draft() {
    let upstream = Upstream::start().await;
    let mut fixture = Fixture::new(&upstream, &[]);
    let mut keys = Vec::new();
    for (base, lifecycle) in [
        (
            "/old",
            Lifecycle::Deprecated {
                sunset: Some("2026-01-31".parse().expect("date")),
                since: Some("2025-11-01T09:30:00Z".parse().expect("time")),
            },
        ),
        // As a server before the deprecation time was sent describes it.
        ("/older", Lifecycle::Deprecated { sunset: None, since: None }),
        ("/gone", Lifecycle::Retired),
        ("/soon", Lifecycle::Draft),
    ] {
        let (_, app) = add_api(&mut fixture, base, lifecycle, user_key_in_query(), upstream.url(""));
        let key = new_key(KeyKind::UserKey);
        fixture.snapshot.credentials.push(Credential {
            hash: key.hash(),
            kind: KeyKind::UserKey,
            application_id: app,
            expires_at: None,
        });
        keys.push(key);
    }
    fixture.snapshot.validate().expect("valid");
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let proxy = agent.proxy_addr();

    let old = get(&format!("http://{proxy}/old/x?user_key={}", keys[0].as_str()), &[]).await;
    assert_eq!(old.status, StatusCode::OK);
    assert_eq!(old.header("deprecation"), Some("@1761989400"), "RFC 9745: the time it was deprecated");
    assert_eq!(old.header("sunset"), Some("Sat, 31 Jan 2026 00:00:00 GMT"));
    assert_eq!(upstream.last().uri, "/x", "an upstream without a path prefix gets the path below the base path");
    let older = get(&format!("http://{proxy}/older?user_key={}", keys[1].as_str()), &[]).await;
    assert_eq!(older.status, StatusCode::OK);
    assert_eq!(upstream.last().uri, "/");
    assert_eq!((older.header("deprecation"), older.header("sunset")), (Some("true"), None));

    let gone = get(&format!("http://{proxy}/gone/x?user_key={}", keys[2].as_str()), &[]).await;
    assert_eq!((gone.status, gone.error().as_str()), (StatusCode::GONE, "api_retired"));
    let draft = get(&format!("http://{proxy}/soon/x?user_key={}", keys[3].as_str()), &[]).await;
    assert_eq!((draft.status, draft.error().as_str()), (StatusCode::NOT_FOUND, "unknown_api"));
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_id_and_app_key() {
    let upstream = Upstream::start().await;
    let mut fixture = Fixture::new(&upstream, &[]);
    let auth = AuthMode::AppIdKey {
        app_id: KeyLocation::Query { name: "app_id".into() },
        app_key: KeyLocation::Header { name: "app-key".into() },
    };
    let (_, app) = add_api(&mut fixture, "/weather", Lifecycle::Published, auth, upstream.url("/w"));
    let (app_key, other_key) = (new_key(KeyKind::AppKey), new_key(KeyKind::AppKey));
    let user_key = new_key(KeyKind::UserKey);
    let other_app = id();
    let plan = fixture.snapshot.applications.last().expect("app").plan_id;
    fixture.snapshot.applications.last_mut().expect("app").app_id = Some("weather-app".into());
    fixture.snapshot.applications.push(Application {
        id: other_app,
        plan_id: plan,
        state: ApplicationState::Live,
        app_id: Some("other-app".into()),
    });
    for (key, kind, owner) in
        [(&app_key, KeyKind::AppKey, app), (&other_key, KeyKind::AppKey, other_app), (&user_key, KeyKind::UserKey, app)]
    {
        fixture.snapshot.credentials.push(Credential {
            hash: key.hash(),
            kind,
            application_id: owner,
            expires_at: None,
        });
    }
    fixture.snapshot.validate().expect("valid");
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let url = |app_id: &str| format!("http://{}/weather/today?app_id={app_id}&units=si", agent.proxy_addr());

    let ok = get(&url("weather-app"), &[("app-key", app_key.as_str())]).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let seen = upstream.last();
    assert_eq!(seen.uri, "/w/today?units=si");
    assert!(seen.headers.get("app-key").is_none(), "the app key header is not forwarded");

    let cases = [
        ("weather-app", Some(other_key.as_str()), StatusCode::FORBIDDEN, "invalid_credentials"),
        ("weather-app", Some(user_key.as_str()), StatusCode::FORBIDDEN, "invalid_credentials"),
        ("no-such-app", Some(app_key.as_str()), StatusCode::FORBIDDEN, "invalid_credentials"),
        ("weather-app", None, StatusCode::UNAUTHORIZED, "missing_credentials"),
    ];
    for (app_id, key, status, error) in cases {
        let headers: Vec<(&str, &str)> = key.map(|k| ("app-key", k)).into_iter().collect();
        let answer = get(&url(app_id), &headers).await;
        assert_eq!((answer.status, answer.error().as_str()), (status, error), "{app_id} {key:?}");
    }
    // Half of the pair: the answer names the half that is missing, and where it goes.
    let half = get(&url("weather-app"), &[]).await;
    assert_eq!(
        half.json()["message"],
        "The application key is missing; send it in the `app-key` header, with `app_id`."
    );
    let half = get(&format!("http://{}/weather/today", agent.proxy_addr()), &[("app-key", app_key.as_str())]).await;
    assert_eq!(
        half.json()["message"],
        "The application id is missing; send it as the `app_id` query parameter, with `app-key`."
    );
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_routing_header_keys_and_pass_through() {
    let upstream = Upstream::start().await;
    let mut fixture = Fixture::new(&upstream, &[]);
    let auth = AuthMode::UserKey { location: KeyLocation::Header { name: "x-api-key".into() } };
    let (api, app) = add_api(&mut fixture, "/", Lifecycle::Published, auth, upstream.url("/h"));
    let api_entry = fixture.snapshot.apis.iter_mut().find(|a| a.id == api).expect("api");
    api_entry.hosts = vec!["api.example.test".into()];
    api_entry.on_no_match = NoMatch::Pass;
    api_entry.mapping_rules[0].pattern = "/counted".into();
    let key = new_key(KeyKind::UserKey);
    fixture.snapshot.credentials.push(Credential {
        hash: key.hash(),
        kind: KeyKind::UserKey,
        application_id: app,
        expires_at: None,
    });
    fixture.snapshot.validate().expect("valid");
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let proxy = agent.proxy_addr();

    let answer =
        get(&format!("http://{proxy}/anything"), &[("host", "API.example.test:8081"), ("x-api-key", key.as_str())])
            .await;
    assert_eq!(answer.status, StatusCode::OK, "unmatched paths pass on a `pass` API: {}", answer.body);
    let seen = upstream.last();
    assert_eq!(seen.uri, "/h/anything");
    assert!(seen.headers.get("x-api-key").is_none());
    let answer = get(&format!("http://{proxy}/anything"), &[("host", "api.example.test")]).await;
    assert_eq!(answer.error(), "missing_credentials", "`pass` still authenticates");
    // On another host, only the any-host APIs answer.
    let answer =
        get(&format!("http://{proxy}/anything"), &[("host", "other.example.test"), ("x-api-key", key.as_str())]).await;
    assert_eq!(answer.error(), "unknown_api");
    // The host's own router wins over the any-host one, even for paths the latter has.
    let answer =
        get(&format!("http://{proxy}/pets/list?user_key={}", fixture.key.as_str()), &[("host", "api.example.test")])
            .await;
    assert_eq!(answer.error(), "missing_credentials");
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_are_502_and_504() {
    let upstream = Upstream::start().await;
    let mut fixture = Fixture::new(&upstream, &[]);
    let dead = dead_addr().await;
    let (_, app) = add_api(&mut fixture, "/dead", Lifecycle::Published, user_key_in_query(), format!("http://{dead}"));
    let key = new_key(KeyKind::UserKey);
    fixture.snapshot.credentials.push(Credential {
        hash: key.hash(),
        kind: KeyKind::UserKey,
        application_id: app,
        expires_at: None,
    });
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let proxy = agent.proxy_addr();

    let answer = get(&format!("http://{proxy}/dead/x?user_key={}", key.as_str()), &[]).await;
    assert_eq!((answer.status, answer.error().as_str()), (StatusCode::BAD_GATEWAY, "upstream_unavailable"));
    let started = std::time::Instant::now();
    let answer = get(&format!("http://{proxy}/pets/slow?user_key={}", fixture.key.as_str()), &[]).await;
    assert_eq!((answer.status, answer.error().as_str()), (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"));
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "answered at the 500 ms timeout");
    let answer = get(&format!("http://{proxy}/pets/status/503?user_key={}", fixture.key.as_str()), &[]).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "upstream statuses pass through");
    // But not a switch of protocols the client did not ask for.
    let answer = get(&format!("http://{proxy}/pets/status/101?user_key={}", fixture.key.as_str()), &[]).await;
    assert_eq!((answer.status, answer.error().as_str()), (StatusCode::BAD_GATEWAY, "upstream_unavailable"));
    agent.shutdown().await.expect("clean shutdown");
}

/// The upstream timeout holds on a pooled upstream connection as on a new one: after an
/// answer on it, after its timer fired while it was idle, and for the next connection once
/// a timed-out one is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_timeout_holds_on_pooled_connections() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let mut settings = settings(cp.url(), dir.path(), None);
    // One worker: every request goes through the same pool.
    settings.workers = 1;
    let timeout = settings.upstream_timeout;
    let agent = start_ready(settings).await;
    let proxy = agent.proxy_addr();
    let key = fixture.key.as_str();
    let slow = || async {
        let started = std::time::Instant::now();
        let answer = get(&format!("http://{proxy}/pets/slow?user_key={key}"), &[]).await;
        assert_eq!((answer.status, answer.error().as_str()), (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"));
        let took = started.elapsed();
        assert!(took >= timeout && took < std::time::Duration::from_secs(2), "answered after {took:?}");
    };
    let fast = || async {
        let answer = get(&format!("http://{proxy}/pets/items/1?user_key={key}"), &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    };
    // On the connection the first answer pooled, with a deadline later than that answer's.
    fast().await;
    slow().await;
    // The timed-out connection was dropped: a new one, pooled, then idle past its deadline
    // (its timer fires while nothing waits on it), then timed again.
    fast().await;
    tokio::time::sleep(timeout + std::time::Duration::from_millis(200)).await;
    slow().await;
    fast().await;
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_spelling_of_a_credential_reaches_the_upstream_and_two_keys_are_refused() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let proxy = agent.proxy_addr();
    let key = fixture.key.as_str();
    let other = new_key(KeyKind::UserKey);
    let other = other.as_str();

    // The same key under every spelling: admitted, and none of them is forwarded.
    let target = format!(
        "/pets/items/7?user_key={key}&USER_KEY={key}&user%5Fkey={key}&user_key[]={key}&user_key%20={key}\
         &User.Key={key}&keep=1"
    );
    let headers = [format!("User-Key: {key}"), format!("user_key: {key}"), format!("USER_KEY: {key}")];
    let header_refs: Vec<&str> = headers.iter().map(String::as_str).collect();
    let answer = raw_get(proxy, &target, &header_refs).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let seen = upstream.last();
    assert_eq!(seen.uri, "/backend/items/7?keep=1");
    for (name, value) in &seen.headers {
        assert!(!value.as_bytes().windows(key.len()).any(|w| w == key.as_bytes()), "{name} carries the key");
    }

    // Two different values, whatever the spellings: 400, and nothing forwarded.
    let before = upstream.count();
    for (target, header) in [
        (format!("/pets/items/7?user_key={key}&user_key={other}"), None),
        (format!("/pets/items/7?user_key={key}&USER_KEY={other}"), None),
        (format!("/pets/items/7?user_key={key}&user_key[]={other}"), None),
        (format!("/pets/items/7?user_key={key}"), Some(format!("User-Key: {other}"))),
        (format!("/pets/items/7?user_key={key}"), Some(format!("user_key: {other}"))),
    ] {
        let headers: Vec<&str> = header.iter().map(String::as_str).collect();
        let answer = raw_get(proxy, &target, &headers).await;
        assert_eq!((answer.status, answer.error().as_str()), (400, "ambiguous_credentials"), "{target} {header:?}");
    }
    // A spelling other than the configured one is not a credential by itself.
    let answer = raw_get(proxy, &format!("/pets/items/7?USER_KEY={key}"), &[]).await;
    assert_eq!((answer.status, answer.error().as_str()), (401, "missing_credentials"));
    assert_eq!(upstream.count(), before, "refused requests never reach the upstream");
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_keys_are_stripped_in_every_spelling_and_location() {
    let upstream = Upstream::start().await;
    let mut fixture = Fixture::new(&upstream, &[]);
    fixture.snapshot.apis[0].auth = AuthMode::UserKey { location: KeyLocation::Header { name: "X-Api-Key".into() } };
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let proxy = agent.proxy_addr();
    let key = fixture.key.as_str();

    let configured = format!("X-Api-Key: {key}");
    let underscored = format!("X_Api_Key: {key}");
    let answer = raw_get(
        proxy,
        &format!("/pets/list?x-api-key={key}&X_API_KEY={key}&q=1"),
        &[configured.as_str(), underscored.as_str()],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let seen = upstream.last();
    assert_eq!(seen.uri, "/backend/list?q=1");
    assert!(seen.headers.keys().all(|name| !name.as_str().replace('_', "-").eq_ignore_ascii_case("x-api-key")));

    let answer = raw_get(proxy, "/pets/list", &[underscored.as_str()]).await;
    assert_eq!(answer.status, 401, "X_Api_Key is not where the key is read from");
    let other = format!("x_api_key: {}", new_key(KeyKind::UserKey).as_str());
    let answer = raw_get(proxy, "/pets/list", &[configured.as_str(), other.as_str()]).await;
    assert_eq!((answer.status, answer.error().as_str()), (400, "ambiguous_credentials"));
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_proxy_headers_are_dropped_and_a_bad_host_is_refused() {
    let upstream = Upstream::start().await;
    let fixture = Fixture::new(&upstream, &[]);
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let proxy = agent.proxy_addr();
    let target = format!("/pets/list?user_key={}", fixture.key.as_str());

    let answer = raw_get(
        proxy,
        &target,
        &[
            "Host: API.example.test:8081",
            "Forwarded: for=203.0.113.9;host=evil.example;proto=https",
            "X-Real-IP: 203.0.113.9",
            "X-Forwarded-Host: evil.example",
            "X-Forwarded-Proto: https",
            "X-Forwarded-Port: 443",
            "X-Original-URL: /admin",
            "X-Rewrite-URL: /admin",
            "X-Envoy-Original-Path: /admin",
            "X-Original-Method: DELETE",
            "X-Forwarded-Protocol: https",
            "X-Originating-IP: 203.0.113.9",
            // gunicorn cuts a SCRIPT_NAME header off the path; "ReverseProxied" middleware
            // does so with X-Script-Name: the app would route another path than the rules saw.
            "SCRIPT_NAME: /pets",
            "X-Script-Name: /pets",
            "X-Scheme: https",
            "Any_Underscored: x",
            "X-Kept-Header: yes",
            // A byte beyond ASCII in the list does not hide the names beside it.
            "Connection: x-hop-two, é",
            "X-Hop-Two: secret",
        ],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let seen = upstream.last();
    for dropped in [
        "forwarded",
        "x-real-ip",
        "x-forwarded-port",
        "x-original-url",
        "x-rewrite-url",
        "x-envoy-original-path",
        "x-original-method",
        "x-forwarded-protocol",
        "x-originating-ip",
        "script_name",
        "x-script-name",
        "x-scheme",
        "any_underscored",
        "x-hop-two",
    ] {
        assert!(seen.headers.get(dropped).is_none(), "{dropped} reached the upstream");
    }
    assert_eq!(seen.headers["x-kept-header"], "yes", "other headers go on");
    assert_eq!(seen.headers["x-forwarded-host"], "API.example.test:8081", "the validated Host, not the client's claim");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");

    // Absolute form: the target's authority is the host.
    let absolute = format!("http://api.example.test{target}");
    let answer = raw_get(proxy, &absolute, &["Host: other.example.test"]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(upstream.last().headers["x-forwarded-host"], "api.example.test");

    let before = upstream.count();
    for hosts in [
        &["Host: a.example", "Host: b.example"][..],
        &["Host: a.example", "Host: a.example"],
        &["Host: evil.example/path"],
        &["Host: user@a.example"],
        &["Host: a.example:99999"],
        &["Host: a.example:"],
        &["Host: "],
        &["Host: [::1"],
    ] {
        let answer = raw_get(proxy, &target, hosts).await;
        assert_eq!((answer.status, answer.error().as_str()), (400, "invalid_host"), "{hosts:?}: {}", answer.body);
    }
    // HTTP/1.1 requires a Host; HTTP/1.0 does not.
    let request = format!("GET {target} HTTP/1.1\r\nConnection: close\r\n\r\n");
    let answer = raw_exchange(proxy, request.as_bytes()).await;
    assert_eq!((answer.status, answer.error().as_str()), (400, "invalid_host"));
    assert_eq!(upstream.count(), before, "refused requests never reach the upstream");
    let request = format!("GET {target} HTTP/1.0\r\n\r\n");
    assert_eq!(raw_exchange(proxy, request.as_bytes()).await.status, 200);
    assert!(upstream.last().headers.get("x-forwarded-host").is_none());
    agent.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_a_broken_or_stalled_body_cannot_eject_a_healthy_upstream() {
    let (first, second) = (Upstream::start().await, Upstream::start().await);
    let mut fixture = Fixture::new(&first, &[]);
    fixture.snapshot.apis[0].upstreams.push(UpstreamUrl { url: second.url("/backend") });
    let cp = ControlPlane::start(fixture.snapshot.clone()).await;
    let dir = TempDir::new();
    let agent = start_ready(settings(cp.url(), dir.path(), None)).await;
    let proxy = agent.proxy_addr();
    let key = fixture.key.as_str();
    let head = |framing: &str| {
        format!("POST /pets/items?user_key={key} HTTP/1.1\r\nHost: {proxy}\r\n{framing}\r\nConnection: close\r\n\r\n")
    };

    // Twice as many broken bodies as it takes to eject a target, spread over both targets:
    // bad chunk sizes, and bodies whose connection ends early.
    let broken = [
        format!("{}zz\r\nhello\r\n0\r\n\r\n", head("Transfer-Encoding: chunked")),
        format!("{}5\r\nhello\r\n-1\r\n", head("Transfer-Encoding: chunked")),
    ];
    for i in 0..10 {
        let answer = raw_exchange(proxy, broken[i % 2].as_bytes()).await;
        assert_eq!((answer.status, answer.error().as_str()), (400, "invalid_body"), "{}", answer.body);
    }
    // And bodies that stall: the agent gives up at its upstream timeout and says whose fault.
    let stalled = format!("{}hello", head("Content-Length: 100"));
    let stalls: Vec<_> = (0..10)
        .map(|_| {
            let stalled = stalled.clone();
            tokio::spawn(async move { raw_exchange(proxy, stalled.as_bytes()).await })
        })
        .collect();
    for stall in stalls {
        let answer = stall.await.expect("joined");
        assert_eq!((answer.status, answer.error().as_str()), (408, "request_body_timeout"), "{}", answer.body);
    }

    // Both targets still take their turns.
    let (before_first, before_second) = (first.count(), second.count());
    for _ in 0..4 {
        let answer = get(&format!("http://{proxy}/pets/list?user_key={key}"), &[]).await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    assert_eq!((first.count() - before_first, second.count() - before_second), (2, 2), "no target was ejected");
    agent.shutdown().await.expect("clean shutdown");
}
