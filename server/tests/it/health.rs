//! The operator endpoints and the server's plumbing: health, metrics, request
//! ids, 404 pages and static files.

use std::time::Duration;

use sqlx::PgPool;

use crate::helpers::spawn_app;

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn healthz_answers_ok_with_a_request_id(pool: PgPool) {
    let app = spawn_app(pool).await;
    let res = app.get("/healthz").await;
    assert_eq!(res.status(), 200);
    let id = res.headers().get("x-request-id").expect("request id").to_str().unwrap().to_owned();
    assert!(id.len() >= 32, "{id}");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], "ok");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_callers_request_id_is_echoed_and_a_hostile_one_replaced(pool: PgPool) {
    let app = spawn_app(pool).await;
    let res = app.client.get(app.url("/healthz")).header("x-request-id", "trace-abc_123").send().await.unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-abc_123");
    let res = app.client.get(app.url("/healthz")).header("x-request-id", "bad id\twith spaces").send().await.unwrap();
    assert_ne!(res.headers()["x-request-id"], "bad id\twith spaces");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn metrics_count_requests_by_route_and_status(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.get("/healthz").await;
    app.get("/no/such/page").await;
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(text.contains("tollgate_http_requests_total"), "{text}");
    assert!(text.contains("route=\"/healthz\""), "{text}");
    assert!(text.contains("status=\"404\""), "{text}");
    assert!(text.contains("tollgate_http_request_duration_seconds_bucket"), "{text}");
    // Each metric says what it counts.
    assert!(text.contains("# HELP tollgate_http_requests_total HTTP requests answered"), "{text}");
    // Counters of rare events are there before the first one (alerts on them get data).
    for name in [
        "tollgate_config_delta_reads_total",
        "tollgate_snapshot_builds_cancelled_total",
        "tollgate_spans_dropped_total",
    ] {
        assert!(text.lines().any(|line| line.starts_with(&format!("{name} "))), "{name} missing: {text}");
    }
    // Probes and scrapers that ask with HEAD get the answer's head.
    for path in ["/healthz", "/metrics"] {
        let res = app.client.head(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "HEAD {path}");
    }
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn unknown_pages_get_a_readable_404(pool: PgPool) {
    let app = spawn_app(pool).await;
    let res = app.get("/no/such/page").await;
    assert_eq!(res.status(), 404);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let body = res.text().await.unwrap();
    assert!(body.contains("Not found"), "{body}");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_stylesheet_is_served_locally(pool: PgPool) {
    let app = spawn_app(pool).await;
    let res = app.get("/static/css/tollgate.css").await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains(":root"));
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn browsing_the_public_catalog_starts_no_session(pool: PgPool) {
    tollgate::cli::dev::seed(&pool).await.unwrap();
    let app = spawn_app(pool).await;
    for path in ["/", "/?q=weather", "/apis/weather"] {
        let res = app.get(path).await;
        assert_eq!(res.status(), 200, "{path}");
        assert!(crate::helpers::session_cookie(&res).is_none(), "{path} set a session cookie");
    }
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions").fetch_one(&app.pool).await.unwrap();
    assert_eq!(sessions, 0);
}

/// The series of `tollgate_http_requests_total` on the metrics page.
fn request_series(text: &str) -> Vec<String> {
    text.lines().filter(|l| l.starts_with("tollgate_http_requests_total{")).map(str::to_owned).collect()
}

fn label<'a>(series: &'a str, name: &str) -> &'a str {
    let start = series.find(&format!("{name}=\"")).map(|i| i + name.len() + 2).unwrap_or(0);
    &series[start..start + series[start..].find('"').unwrap_or(0)]
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn random_methods_and_paths_add_no_metric_series(pool: PgPool) {
    let app = spawn_app(pool).await;
    let marker = uuid::Uuid::new_v4().simple().to_string()[..8].to_uppercase();
    for i in 0..1000 {
        let method = reqwest::Method::from_bytes(format!("X{marker}{i}").as_bytes()).unwrap();
        let res = app.client.request(method, app.url("/healthz")).send().await.unwrap();
        assert!(res.status().is_client_error(), "{}", res.status());
    }
    for i in 0..200 {
        let res = app.get(&format!("/no-such-{marker}-{i}/{i}")).await;
        assert_eq!(res.status(), 404);
        let res = app.get(&format!("/apis/{marker}{i}")).await;
        assert_eq!(res.status(), 404);
    }
    let text = app.get("/metrics").await.text().await.unwrap();
    let series = request_series(&text);
    let standard = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "other"];
    for s in &series {
        assert!(standard.contains(&label(s, "method")), "a method outside the closed set: {s}");
        assert!(!s.to_uppercase().contains(&marker), "a label made from a request: {s}");
    }
    // Other tests share this process's metrics, but none sends a method of its own to /healthz.
    let odd = series.iter().filter(|s| label(s, "method") == "other" && label(s, "route") == "/healthz").count();
    assert_eq!(odd, 1, "1,000 random methods make one series: {series:#?}");
    assert!(series.iter().any(|s| label(s, "route") == "/apis/{slug}"), "routes are labelled by template");
}

/// Sends a request head promising a body, then only part of it, and returns
/// the answer the server gives (or panics after `wait`).
async fn stall_body(
    app: &crate::helpers::TestApp,
    path: &str,
    content_type: &str,
    token: Option<&str>,
    wait: Duration,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let authorization = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{authorization}Content-Type: {content_type}\r\nContent-Length: 1000\r\n\r\nemail=a%40b.co&pa"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            let n = conn.read(&mut buf).await.unwrap();
            answer.extend_from_slice(&buf[..n]);
            if n == 0 || answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    };
    tokio::time::timeout(wait, read).await.unwrap_or_else(|_| panic!("{path}: no answer within {wait:?}"));
    String::from_utf8_lossy(&answer).into_owned()
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_stalled_request_body_is_answered_408(pool: PgPool) {
    let app = crate::helpers::spawn_app_with(pool, &[("TOLLGATE_BODY_TIMEOUT_SECONDS", "1")]).await;
    let wait = Duration::from_secs(15);
    let started = std::time::Instant::now();
    let page = stall_body(&app, "/login", "application/x-www-form-urlencoded", None, wait).await;
    assert!(page.starts_with("HTTP/1.1 408"), "{page}");
    assert!(page.to_ascii_lowercase().contains("content-type: text/html"), "{page}");
    assert!(page.to_ascii_lowercase().contains("connection: close"), "{page}");
    assert!(started.elapsed() >= Duration::from_millis(900), "the client had its second");
    // The JSON APIs read a body only once its token is good: a caller without one is answered
    // from the head; one with a token that stalls gets the JSON 408.
    tollgate::cli::dev::seed(&app.pool).await.unwrap();
    let actor = tollgate_core::audit::Actor::system("test");
    let admin_token = crate::helpers::demo_admin_token(&app.pool).await;
    let (_, agent_token) = tollgate_core::gateways::create(&app.pool, "stalling", &actor).await.unwrap();
    for (path, token) in [("/admin/api/v1/apis", admin_token.as_str()), ("/agent/v1/usage", agent_token.as_str())] {
        let anonymous = stall_body(&app, path, "application/json", None, wait).await;
        assert!(anonymous.starts_with("HTTP/1.1 401"), "{path}: {anonymous}");
        let answer = stall_body(&app, path, "application/json", Some(token), wait).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
        assert!(answer.to_ascii_lowercase().contains("content-type: application/json"), "{path}: {answer}");
    }
}
