//! Previews: a draft API in mock mode, opened to chosen developer accounts (then to all),
//! shows in their portal catalog marked as a preview, takes a subscription through the
//! portal, and its key gets mock answers from a real agent, counted as usage; other accounts
//! neither see it nor subscribe. Publishing ends the preview and the same key keeps working.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;
use tollgate::cli::dev::{DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD, DEMO_DEVELOPER_EMAIL, DEMO_DEVELOPER_PASSWORD};

use crate::gateway::{World, wait_until};
use crate::helpers::{TestApp, client, csrf_from};
use crate::portal::{location, verified_developer};

const PETSTORE: &str = include_str!("../fixtures/petstore-openapi-3.0.json");
const BADGE: &str = "Preview — mock responses, no backend yet";

/// The option of the new-application form whose label contains `text`: its plan id.
fn plan_option(html: &str, text: &str) -> Option<String> {
    let marker = "<option value=\"";
    html.match_indices(marker)
        .map(|(i, _)| &html[i + marker.len()..])
        .find(|rest| rest.split("</option>").next().unwrap().contains(text))
        .map(|rest| rest.split('"').next().unwrap().to_owned())
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_previewed_draft_is_subscribed_and_tried_against_mocks_until_published(pool: PgPool) {
    let w = World::new(pool.clone()).await;
    let token = crate::helpers::demo_admin_token(&pool).await;
    let admin = |method: &str, path: &str, body: Option<Value>| {
        let mut request = w.app.client.request(method.parse().unwrap(), w.app.url(path)).bearer_auth(token.as_str());
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let res = request.send().await.unwrap();
            let status = res.status().as_u16();
            let text = res.text().await.unwrap();
            (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
        }
    };
    // A draft with no upstream: its backend does not exist yet.
    let (status, api) = admin("POST", "/admin/api/v1/apis", Some(json!({"spec": PETSTORE, "slug": "petstore"}))).await;
    assert_eq!(status, 201, "{api}");
    let api_id = api["id"].as_str().unwrap().to_owned();
    let plan =
        json!({"system_name": "preview", "name": "Preview plan", "currency": "EUR", "published": true, "limits": []});
    let (status, plan) = admin("POST", &format!("/admin/api/v1/apis/{api_id}/plans"), Some(plan)).await;
    assert_eq!(status, 201, "{plan}");
    let plan_id = plan["id"].as_str().unwrap().to_owned();
    let preview_url = format!("/admin/api/v1/apis/{api_id}/preview");
    let mocks_url = format!("/admin/api/v1/apis/{api_id}/mocks");
    let (status, closed) = admin("GET", &preview_url, None).await;
    assert_eq!((status, closed["open"].as_bool()), (200, Some(false)), "{closed}");

    // A preview answers from mocks only: refused until something is mocked.
    let only_demo = json!({"audience": "accounts", "account_ids": [w.account.0]});
    let (status, body) = admin("PUT", &preview_url, Some(only_demo.clone())).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("conflict")), "{body}");
    let (status, _) = admin("PATCH", &mocks_url, Some(json!({"whole_api": true}))).await;
    assert_eq!(status, 200);
    let (status, body) =
        admin("PUT", &preview_url, Some(json!({"audience": "accounts", "account_ids": [uuid::Uuid::nil()]}))).await;
    assert_eq!((status, body["error"].as_str()), (422, Some("invalid_input")), "{body}");
    let (status, body) =
        admin("PUT", &preview_url, Some(json!({"audience": "everyone", "account_ids": [w.account.0]}))).await;
    assert_eq!((status, body["error"].as_str()), (422, Some("invalid_input")), "{body}");
    let (status, opened) = admin("PUT", &preview_url, Some(only_demo)).await;
    assert_eq!(status, 200, "{opened}");
    assert_eq!((opened["open"].as_bool(), opened["audience"].as_str()), (Some(true), Some("accounts")));
    assert_eq!(opened["accounts"][0]["id"].as_str(), Some(w.account.0.to_string().as_str()));
    // Its developers would lose every answer: mock mode stays while the preview is open.
    let (status, body) = admin("PATCH", &mocks_url, Some(json!({"whole_api": false}))).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("conflict")), "{body}");

    // The demo developer's account sees the preview and subscribes through the portal.
    let dev = &w.app;
    assert_eq!(location(&dev.sign_in(DEMO_DEVELOPER_EMAIL, DEMO_DEVELOPER_PASSWORD).await), "/dashboard");
    let home = dev.get("/").await.text().await.unwrap();
    assert!(home.contains("/apis/petstore") && home.contains(BADGE), "{home}");
    let page = dev.get("/apis/petstore").await.text().await.unwrap();
    assert!(page.contains("data-testid=\"preview-notice\""), "{page}");
    assert_eq!(dev.get("/apis/petstore/spec").await.status(), 200);
    assert_eq!(dev.get("/apis/petstore/openapi").await.status(), 200);
    let form = dev.get("/apps/new").await.text().await.unwrap();
    assert_eq!(plan_option(&form, "[preview: mock responses]").as_deref(), Some(plan_id.as_str()), "{form}");
    let res = dev
        .post_form("/apps/new", &[("csrf_token", &csrf_from(&form)), ("name", "Tries pets"), ("plan_id", &plan_id)])
        .await;
    assert_eq!(res.status(), 303);
    let app_page = dev.get(&location(&res)).await.text().await.unwrap();
    let start = app_page.find("data-testid=\"new-key\">").expect("the key is shown once") + 22;
    let key = app_page[start..].split('<').next().unwrap().to_owned();

    // Another account neither sees it nor subscribes to it.
    let other = TestApp { base: w.app.base.clone(), pool: pool.clone(), client: client() };
    verified_developer(&other, "outsider@example.com").await;
    assert!(!other.get("/").await.text().await.unwrap().contains("/apis/petstore"));
    assert_eq!(other.get("/apis/petstore").await.status(), 404);
    assert_eq!(other.get("/apis/petstore/spec").await.status(), 404);
    assert_eq!(other.get("/apis/petstore/openapi").await.status(), 404);
    let form = other.get("/apps/new").await.text().await.unwrap();
    assert!(plan_option(&form, "[preview").is_none(), "{form}");
    let res = other
        .post_form("/apps/new", &[("csrf_token", &csrf_from(&form)), ("name", "Sneaks in"), ("plan_id", &plan_id)])
        .await;
    assert_eq!(res.status(), 422);
    // Nor does a visitor.
    let visitor = TestApp { base: w.app.base.clone(), pool: pool.clone(), client: client() };
    assert!(!visitor.get("/").await.text().await.unwrap().contains("/apis/petstore"));

    // "Try it out" with the key: the agent answers from the mocks, the call is usage.
    let agent = w.agent("preview").await;
    let proxy = agent.proxy_addr();
    let plain = crate::helpers::plain_client();
    let call = |path: &str| {
        let request = plain.get(format!("http://{proxy}/petstore{path}?user_key={key}"));
        async move { request.send().await.unwrap() }
    };
    let answer = call("/pet/10").await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["tollgate-mock"], "true");
    assert!(answer.json::<Value>().await.unwrap()["name"].is_string());

    // Closed, the draft leaves the catalog; opened to everyone, every developer sees it.
    let (status, _) = admin("DELETE", &preview_url, None).await;
    assert_eq!(status, 204);
    assert!(!dev.get("/").await.text().await.unwrap().contains("/apis/petstore"));
    let (status, opened) = admin("PUT", &preview_url, Some(json!({"audience": "everyone"}))).await;
    assert_eq!((status, opened["audience"].as_str()), (200, Some("everyone")), "{opened}");
    assert!(other.get("/").await.text().await.unwrap().contains(BADGE));
    assert!(visitor.get("/").await.text().await.unwrap().contains(BADGE));

    // Published: the preview is over, the API is listed as any other, the key still works.
    let (status, _) =
        admin("POST", &format!("/admin/api/v1/apis/{api_id}/lifecycle"), Some(json!({"state": "published"}))).await;
    assert_eq!(status, 200);
    let (status, closed) = admin("GET", &preview_url, None).await;
    assert_eq!((status, closed["open"].as_bool()), (200, Some(false)), "{closed}");
    let home = other.get("/").await.text().await.unwrap();
    assert!(home.contains("/apis/petstore") && !home.contains(BADGE), "{home}");
    let (status, body) = admin("PUT", &preview_url, Some(json!({"audience": "everyone"}))).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("conflict")), "{body}");
    assert_eq!(call("/pet/10").await.status(), 200);

    let hits: uuid::Uuid = sqlx::query_scalar(
        "SELECT m.id FROM metrics m JOIN api_products p ON p.id = m.api_id WHERE p.slug = 'petstore' AND m.system_name = 'hits'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let app_id: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM applications WHERE name = 'Tries pets'").fetch_one(&pool).await.unwrap();
    let pool_for_wait = pool.clone();
    wait_until(Duration::from_secs(20), || {
        let pool = pool_for_wait.clone();
        async move { tollgate_core::usage::total_hits(&pool, app_id, hits).await.unwrap() >= 2 }
    })
    .await;
    agent.shutdown().await.unwrap();
    assert_eq!(tollgate_core::usage::total_hits(&pool, app_id, hits).await.unwrap(), 2);
}

/// The admin UI opens a draft's preview to every developer, restricts it to one account
/// and closes it, on the mock-mode page.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_admin_ui_opens_restricts_and_closes_a_preview(pool: PgPool) {
    tollgate::cli::dev::seed(&pool).await.unwrap();
    let app = crate::helpers::spawn_app(pool.clone()).await;
    app.sign_in(DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD).await;
    let html = app.get("/admin/apis/new").await.text().await.unwrap();
    let res = app.post_form("/admin/apis/new", &[("csrf_token", &csrf_from(&html)), ("spec", PETSTORE)]).await;
    assert_eq!(res.status(), 303);
    let api_page = location(&res);
    let mocks_page = format!("{api_page}/mocks");
    let preview = format!("{api_page}/preview");
    let html = app.get(&mocks_page).await.text().await.unwrap();
    assert!(html.contains("Not previewed: developers do not see this draft."), "{html}");
    // Nothing mocked yet: refused with the reason on the page.
    let res = app.post_form(&preview, &[("csrf_token", &csrf_from(&html)), ("action", "everyone")]).await;
    assert_eq!(res.status(), 409);
    assert!(res.text().await.unwrap().contains("put the API or some of its operations in mock mode first"));
    let res = app.post_form(&mocks_page, &[("csrf_token", &csrf_from(&html)), ("mocked", "on")]).await;
    assert_eq!(res.status(), 303);
    let res = app.post_form(&preview, &[("csrf_token", &csrf_from(&html)), ("action", "everyone")]).await;
    assert_eq!(res.status(), 303);
    let html = app.get(&mocks_page).await.text().await.unwrap();
    assert!(html.contains("Open to every developer since"), "{html}");

    let select = html.split("id=\"preview-account\"").nth(1).expect("an account to choose");
    let account = select.split("<option value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let res =
        app.post_form(&preview, &[("csrf_token", &csrf_from(&html)), ("action", "add"), ("account", &account)]).await;
    assert_eq!(res.status(), 303);
    let html = app.get(&mocks_page).await.text().await.unwrap();
    assert!(html.contains("Open to 1 account(s) since"), "{html}");
    // Removing the last account closes the preview.
    let res = app
        .post_form(&preview, &[("csrf_token", &csrf_from(&html)), ("action", "remove"), ("account", &account)])
        .await;
    assert_eq!(res.status(), 303);
    let html = app.get(&mocks_page).await.text().await.unwrap();
    assert!(html.contains("Not previewed"), "{html}");
    let audit: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action IN ('api.preview_open', 'api.preview_close')")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(audit, 3);
}
