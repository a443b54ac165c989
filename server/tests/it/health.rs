//! The operator endpoints and the server's plumbing: health, metrics, request
//! ids, 404 pages and static files.

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
