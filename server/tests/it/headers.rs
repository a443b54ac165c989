//! Security headers on every answer, pages free of inline script and style,
//! and the stored spec never served as a page.

use serde_json::json;
use sqlx::PgPool;
use tollgate::cli::dev::{DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD, DEMO_DEVELOPER_EMAIL, DEMO_DEVELOPER_PASSWORD, seed};

use crate::helpers::{TestApp, client, spawn_app};

fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

/// Checks the headers every answer carries, and the page policy on HTML.
fn assert_security_headers(res: &reqwest::Response, what: &str) {
    assert_eq!(header(res, "x-content-type-options"), "nosniff", "{what}");
    assert_eq!(header(res, "referrer-policy"), "same-origin", "{what}");
    let csp = header(res, "content-security-policy");
    let html = header(res, "content-type").starts_with("text/html");
    if html {
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{what}: {directive} missing from {csp:?}");
        }
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{what}: {csp}");
    } else {
        assert!(csp.contains("default-src 'none'") && csp.contains("sandbox"), "{what}: {csp:?}");
    }
}

/// Inline script, inline style and event-handler attributes, which the
/// policy would block: none may appear in a page.
fn assert_no_inline_code(html: &str, what: &str) {
    let lower = html.to_ascii_lowercase();
    for (i, _) in lower.match_indices("<script") {
        let tag = &lower[i..i + lower[i..].find('>').unwrap()];
        assert!(tag.contains(" src="), "{what}: inline <script> at {i}: {tag}");
    }
    assert!(!lower.contains("<style"), "{what}: a <style> element");
    assert!(!lower.contains(" style="), "{what}: a style attribute");
    assert!(!lower.contains("javascript:"), "{what}: a javascript: URL");
    let handler = lower.match_indices(" on").find(|(i, _)| {
        let rest = &lower[i + 3..];
        let name_len = rest.chars().take_while(|c| c.is_ascii_lowercase()).count();
        name_len > 0 && rest[name_len..].starts_with('=')
    });
    assert!(handler.is_none(), "{what}: an event-handler attribute near {:?}", handler.map(|(i, _)| &lower[i..i + 30]));
}

async fn check(app: &TestApp, path: &str) {
    let res = app.get(path).await;
    assert!(res.status().as_u16() < 500, "{path}: {}", res.status());
    assert_security_headers(&res, path);
    if header(&res, "content-type").starts_with("text/html") {
        assert_no_inline_code(&res.text().await.unwrap(), path);
    }
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn every_answer_carries_the_security_headers_and_no_page_has_inline_code(pool: PgPool) {
    seed(&pool).await.unwrap();
    let app = spawn_app(pool).await;
    let anonymous = [
        "/",
        "/?q=weather",
        "/apis/weather",
        "/apis/weather/spec",
        "/apis/weather/openapi",
        "/login",
        "/login?next=%2Fapps",
        "/signup",
        "/password/forgot",
        "/verify/resend",
        "/verify?token=nothing",
        "/no/such/page",
        "/dashboard",
        "/healthz",
        "/metrics",
        "/static/css/tollgate.css",
        "/static/js/docs.js",
        "/static/img/favicon.svg",
        "/static/no-such-file.js",
        "/admin/api/openapi.json",
        "/admin/api/v1/apis",
        "/agent/v1/config",
    ];
    for path in anonymous {
        check(&app, path).await;
    }
    // Every page names its icon, so browsers do not ask for a missing /favicon.ico.
    let icon = app.get("/static/img/favicon.svg").await;
    assert_eq!((icon.status().as_u16(), header(&icon, "content-type")), (200, "image/svg+xml".to_owned()));
    assert!(
        app.get("/login").await.text().await.unwrap().contains("<link rel=\"icon\" href=\"/static/img/favicon.svg\"")
    );
    // A form answered with errors, and a refused form.
    let token = app.csrf_token("/login").await;
    let res = app.post_form("/login", &[("csrf_token", &token), ("email", "a@b.co"), ("password", "x")]).await;
    assert_security_headers(&res, "POST /login (401)");
    let res = app.post_form("/login", &[("email", "a@b.co")]).await;
    assert_eq!(res.status(), 403);
    assert_security_headers(&res, "POST /login without a token (403)");

    assert_eq!(app.sign_in(DEMO_DEVELOPER_EMAIL, DEMO_DEVELOPER_PASSWORD).await.status(), 303);
    for path in ["/dashboard", "/apps", "/apps/new", "/team", "/profile", "/invoices", "/organisations/new", "/admin"] {
        check(&app, path).await;
    }
    let admin = TestApp { base: app.base.clone(), pool: app.pool.clone(), client: client() };
    assert_eq!(admin.sign_in(DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD).await.status(), 303);
    let api: String = sqlx::query_scalar("SELECT id::text FROM api_products WHERE slug = 'weather'")
        .fetch_one(&admin.pool)
        .await
        .unwrap();
    let plan: String = sqlx::query_scalar("SELECT id::text FROM plans LIMIT 1").fetch_one(&admin.pool).await.unwrap();
    for path in [
        "/admin".to_owned(),
        "/admin/apis/new".to_owned(),
        format!("/admin/apis/{api}"),
        format!("/admin/apis/{api}/plans/new"),
        format!("/admin/plans/{plan}"),
        "/admin/applications".to_owned(),
        "/admin/accounts".to_owned(),
        "/admin/gateways".to_owned(),
        "/admin/audit".to_owned(),
        "/admin/tokens".to_owned(),
    ] {
        check(&admin, &path).await;
    }
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_stored_spec_is_never_served_as_a_page(pool: PgPool) {
    seed(&pool).await.unwrap();
    let token = crate::helpers::demo_admin_token(&pool).await;
    let app = spawn_app(pool).await;
    // A document whose text is a page with a script in it.
    let spec = r#"{"openapi": "3.0.3", "info": {"title": "<html><body><script>alert(document.cookie)</script>", "version": "1"},
        "paths": {"/x": {"get": {"responses": {"200": {"description": "<img src=x onerror=alert(1)>"}}}}}}"#;
    let res = app
        .client
        .post(app.url("/admin/api/v1/apis"))
        .bearer_auth(token.as_str())
        .json(&json!({"spec": spec, "slug": "hostile", "upstream_url": "http://127.0.0.1:9"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let id = res.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let res = app
        .client
        .post(app.url(&format!("/admin/api/v1/apis/{id}/lifecycle")))
        .bearer_auth(token.as_str())
        .json(&json!({"state": "published"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let res = app.get("/apis/hostile/spec").await;
    assert_eq!(res.status(), 200);
    assert_security_headers(&res, "/apis/hostile/spec");
    let content_type = header(&res, "content-type");
    assert!(content_type.starts_with("application/json"), "{content_type}");
    assert!(header(&res, "content-disposition").starts_with("attachment"), "opened directly, it is a download");
    assert_eq!(res.text().await.unwrap(), spec, "the document is served byte for byte");
}

/// With the database unreachable, a signed-in visitor's session cannot be read: the answer is
/// the readable error page (503), with the security headers, not actix's bare text.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_session_that_cannot_be_read_gets_the_error_page_with_its_headers(pool: PgPool) {
    seed(&pool).await.unwrap();
    let app = spawn_app(pool.clone()).await;
    assert_eq!(app.sign_in(DEMO_DEVELOPER_EMAIL, DEMO_DEVELOPER_PASSWORD).await.status(), 303);
    pool.close().await;
    let res = app.get("/dashboard").await;
    assert_eq!(res.status(), 503);
    assert_security_headers(&res, "the session store down");
    let body = res.text().await.unwrap();
    assert!(body.contains("<h1>Something went wrong</h1>"), "{body}");
}
