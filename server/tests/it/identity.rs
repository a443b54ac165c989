//! Sign-in with an identity provider, against a stand-in provider served
//! over real HTTP on loopback (the one part that cannot exist here).

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::Mutex;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::helpers::{TestApp, csrf_from, spawn_app_with};
use crate::portal::location;

struct Idp {
    /// code → (PKCE challenge, redirect_uri)
    codes: Mutex<HashMap<String, (String, String)>>,
    email: String,
    email_verified: bool,
}

#[derive(serde::Deserialize)]
struct AuthorizeQuery {
    response_type: String,
    client_id: String,
    redirect_uri: String,
    state: String,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

async fn authorize(idp: web::Data<Idp>, q: web::Query<AuthorizeQuery>) -> HttpResponse {
    if q.response_type != "code" || q.client_id != "tollgate-test" || q.code_challenge_method.as_deref() != Some("S256")
    {
        return HttpResponse::BadRequest().body("bad authorize request");
    }
    let Some(challenge) = q.code_challenge.clone() else { return HttpResponse::BadRequest().body("PKCE required") };
    let code = format!("code-{}", uuid::Uuid::new_v4().simple());
    idp.codes.lock().unwrap().insert(code.clone(), (challenge, q.redirect_uri.clone()));
    let target = format!("{}?code={code}&state={}", q.redirect_uri, q.state);
    HttpResponse::Found().insert_header(("location", target)).finish()
}

#[derive(serde::Deserialize)]
struct TokenForm {
    grant_type: String,
    code: String,
    redirect_uri: String,
    code_verifier: String,
}

async fn token(idp: web::Data<Idp>, req: HttpRequest, form: web::Form<TokenForm>) -> HttpResponse {
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("tollgate-test:s3cret"));
    if req.headers().get("authorization").and_then(|v| v.to_str().ok()) != Some(basic.as_str()) {
        return HttpResponse::Unauthorized().json(serde_json::json!({"error": "invalid_client"}));
    }
    let Some((challenge, redirect)) = idp.codes.lock().unwrap().remove(&form.code) else {
        return HttpResponse::BadRequest().json(serde_json::json!({"error": "invalid_grant"}));
    };
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(form.code_verifier.as_bytes()));
    if form.grant_type != "authorization_code" || computed != challenge || redirect != form.redirect_uri {
        return HttpResponse::BadRequest().json(serde_json::json!({"error": "invalid_grant"}));
    }
    HttpResponse::Ok()
        .json(serde_json::json!({"access_token": "at-stand-in", "token_type": "bearer", "expires_in": 3600}))
}

async fn userinfo(idp: web::Data<Idp>, req: HttpRequest) -> HttpResponse {
    if req.headers().get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer at-stand-in") {
        return HttpResponse::Unauthorized().finish();
    }
    HttpResponse::Ok()
        .json(serde_json::json!({"sub": "stand-in-42", "email": idp.email, "email_verified": idp.email_verified}))
}

/// Starts the stand-in provider; returns its base URL.
fn start_idp(email: &str, email_verified: bool) -> String {
    let idp = web::Data::new(Idp { codes: Mutex::new(HashMap::new()), email: email.to_owned(), email_verified });
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(idp.clone())
            .route("/authorize", web::get().to(authorize))
            .route("/token", web::post().to(token))
            .route("/userinfo", web::get().to(userinfo))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    base
}

async fn app_with_idp(pool: PgPool, email: &str, verified: bool) -> TestApp {
    let idp = start_idp(email, verified);
    let providers = serde_json::json!([{
        "id": "stand-in", "name": "Stand-in SSO", "client_id": "tollgate-test", "client_secret": "s3cret",
        "auth_url": format!("{idp}/authorize"), "token_url": format!("{idp}/token"), "userinfo_url": format!("{idp}/userinfo")
    }])
    .to_string();
    spawn_app_with(pool, &[("TOLLGATE_OAUTH_PROVIDERS", &providers)]).await
}

/// Runs the browser's side of the flow; returns the final response.
async fn sign_in_with_provider(app: &TestApp) -> reqwest::Response {
    let html = app.get("/login").await.text().await.unwrap();
    assert!(html.contains("Sign in with Stand-in SSO"), "the login page offers the provider");
    let res = app.post_form("/auth/stand-in", &[("csrf_token", &csrf_from(&html))]).await;
    assert_eq!(res.status(), 303);
    let authorize_url = location(&res);
    assert!(
        authorize_url.contains("code_challenge_method=S256") && authorize_url.contains("state="),
        "{authorize_url}"
    );
    let res = app.client.get(&authorize_url).send().await.unwrap();
    assert_eq!(res.status(), 302, "{}", res.text().await.unwrap());
    let callback = location(&res);
    assert!(callback.starts_with(&app.base), "the provider returns to the public URL: {callback}");
    app.client.get(callback).send().await.unwrap()
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_first_provider_sign_in_creates_the_account_and_later_ones_find_it(pool: PgPool) {
    let app = app_with_idp(pool, "sso-user@example.com", true).await;
    let res = sign_in_with_provider(&app).await;
    assert_eq!(location(&res), "/dashboard");
    let html = app.get("/dashboard").await.text().await.unwrap();
    assert!(html.contains("sso-user@example.com"));
    let html = app.get("/dashboard").await.text().await.unwrap();
    app.post_form("/logout", &[("csrf_token", &csrf_from(&html))]).await;
    let res = sign_in_with_provider(&app).await;
    assert_eq!(location(&res), "/dashboard");
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&app.pool).await.unwrap();
    let links: i64 = sqlx::query_scalar("SELECT count(*) FROM identity_links").fetch_one(&app.pool).await.unwrap();
    assert_eq!((users, links), (1, 1));
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_provider_sign_in_links_an_existing_account_by_verified_email(pool: PgPool) {
    tollgate::cli::dev::seed(&pool).await.unwrap();
    let app = app_with_idp(pool, tollgate::cli::dev::DEMO_DEVELOPER_EMAIL, true).await;
    assert_eq!(location(&sign_in_with_provider(&app).await), "/dashboard");
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE email = $1")
        .bind(tollgate::cli::dev::DEMO_DEVELOPER_EMAIL)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(users, 1);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn an_unverified_provider_email_cannot_create_or_take_over_an_account(pool: PgPool) {
    tollgate::cli::dev::seed(&pool).await.unwrap();
    let app = app_with_idp(pool, tollgate::cli::dev::DEMO_DEVELOPER_EMAIL, false).await;
    let res = sign_in_with_provider(&app).await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("verified email"));
    let links: i64 = sqlx::query_scalar("SELECT count(*) FROM identity_links").fetch_one(&app.pool).await.unwrap();
    assert_eq!(links, 0);
}

/// Whoever signs up with someone else's address never verifies it; when the mailbox's owner
/// later signs in with a provider, the account becomes theirs, and the password the other
/// person chose must not sign in to it.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_provider_sign_in_takes_an_unverified_sign_up_away_from_whoever_made_it(pool: PgPool) {
    let app = app_with_idp(pool, "owner@example.com", true).await;
    let squatter = TestApp { base: app.base.clone(), pool: app.pool.clone(), client: crate::helpers::client() };
    assert_eq!(crate::portal::sign_up(&squatter, "owner@example.com", "squatter's own password").await.status(), 200);
    assert_eq!(squatter.sign_in("owner@example.com", "squatter's own password").await.status(), 401, "unverified");

    assert_eq!(location(&sign_in_with_provider(&app).await), "/dashboard");
    let res = squatter.sign_in("owner@example.com", "squatter's own password").await;
    assert_ne!(res.status(), 303, "the squatter's password no longer signs in");
    assert_eq!(squatter.get("/dashboard").await.status(), 303, "not signed in");
    let users: i64 =
        sqlx::query_scalar("SELECT count(*) FROM users WHERE password_hash IS NULL AND email_verified_at IS NOT NULL")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(users, 1);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_callback_with_a_forged_state_or_replayed_code_is_refused(pool: PgPool) {
    let app = app_with_idp(pool, "sso-user@example.com", true).await;
    let html = app.get("/login").await.text().await.unwrap();
    let res = app.post_form("/auth/stand-in", &[("csrf_token", &csrf_from(&html))]).await;
    let res = app.client.get(location(&res)).send().await.unwrap();
    let callback = location(&res);
    let state_start = callback.find("state=").unwrap();
    let forged = format!("{}state=forged", &callback[..state_start]);
    let res = app.client.get(&forged).send().await.unwrap();
    assert_eq!(res.status(), 400);
    // The flow was used up by the failed attempt: the genuine callback now fails too.
    let res = app.client.get(&callback).send().await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(app.get("/dashboard").await.status(), 303, "not signed in");
}

/// A provider vouching for a provider admin's address does not open the admin pages: admins
/// sign in with their password. Before, the callback linked the identity and answered
/// `/admin`.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_provider_cannot_sign_in_a_provider_admin(pool: PgPool) {
    tollgate::cli::dev::seed(&pool).await.unwrap();
    let app = app_with_idp(pool, tollgate::cli::dev::DEMO_ADMIN_EMAIL, true).await;
    let res = sign_in_with_provider(&app).await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("provider administrator"));
    let links: i64 = sqlx::query_scalar("SELECT count(*) FROM identity_links").fetch_one(&app.pool).await.unwrap();
    assert_eq!(links, 0);
    assert_eq!(app.get("/admin").await.status(), 303, "not signed in");
}

/// A provider's `error` is told in the site's own words: anyone can send a link to the
/// callback with an `error` of their choosing, and the page is this site's.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_providers_error_is_told_in_our_words_not_the_links(pool: PgPool) {
    let app = app_with_idp(pool, "sso-user@example.com", true).await;
    let res = app.get("/auth/stand-in/callback?error=Your%20account%20is%20locked.%20Call%20555-0100").await;
    assert_eq!(res.status(), 400);
    let html = res.text().await.unwrap();
    assert!(!html.contains("555-0100") && html.contains("could not complete the sign-in"), "{html}");
    let res = app.get("/auth/stand-in/callback?error=access_denied").await;
    assert!(res.text().await.unwrap().contains("the sign-in was declined"));
}
