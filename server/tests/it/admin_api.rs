//! The admin REST API, over HTTP with a bearer token.

use serde_json::{Value, json};
use sqlx::PgPool;
use tollgate::cli::dev::{DEMO_ADMIN_EMAIL, seed};
use tollgate_core::admin_tokens;
use tollgate_core::applications::ApplicationState;
use tollgate_core::audit::Actor;
use tollgate_core::plans::Period;

use crate::helpers::{TestApp, answer_to_head, spawn_app};

struct Admin {
    app: TestApp,
    token: String,
}

async fn admin_app(pool: PgPool) -> Admin {
    seed(&pool).await.unwrap();
    let token = crate::helpers::demo_admin_token(&pool).await;
    Admin { app: spawn_app(pool).await, token: token.as_str().to_owned() }
}

impl Admin {
    /// The seeded developer account's id and the weather API's `basic` plan id, as the API lists them.
    async fn demo_account_and_basic_plan(&self) -> (String, Value) {
        use reqwest::Method;
        let (_, accounts) = self.call(Method::GET, "/admin/api/v1/accounts?q=Demo", None).await;
        let account = accounts["items"][0]["id"].as_str().unwrap().to_owned();
        let (_, apis) = self.call(Method::GET, "/admin/api/v1/apis", None).await;
        let api = apis["items"][0]["id"].as_str().unwrap().to_owned();
        let (_, plans) = self.call(Method::GET, &format!("/admin/api/v1/apis/{api}/plans"), None).await;
        let plan = plans.as_array().unwrap().iter().find(|p| p["system_name"] == "basic").unwrap()["id"].clone();
        (account, plan)
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(&self.token, method, path, body).await
    }

    async fn call_as(&self, token: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.app.client.request(method, self.app.url(path)).bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) })
    }
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_admin_api_needs_a_live_admin_token(pool: PgPool) {
    let admin = admin_app(pool).await;
    let res = admin.app.client.get(admin.app.url("/admin/api/v1/apis")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let challenge = |res: &reqwest::Response| {
        res.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    };
    assert_eq!(challenge(&res), r#"Bearer realm="tollgate-admin""#, "RFC 6750's challenge");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "unauthenticated");
    assert!(body["message"].as_str().unwrap().contains("Authorization: Bearer"), "{body}");
    let res =
        admin.app.client.get(admin.app.url("/admin/api/v1/apis")).bearer_auth("tg_adm_forged").send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert!(challenge(&res).ends_with(r#"error="invalid_token""#), "{}", challenge(&res));
    let body: Value = res.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("not valid"), "{body}");
    let (status, body) = admin.call(reqwest::Method::GET, "/admin/api/v1/apis", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["total"], 1);
    assert_eq!(body["items"][0]["slug"], "weather");
    // Revoked tokens stop working.
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM admin_tokens").fetch_one(&admin.app.pool).await.unwrap();
    admin_tokens::revoke(&admin.app.pool, id, &Actor::system("test")).await.unwrap();
    let (status, body) = admin.call(reqwest::Method::GET, "/admin/api/v1/apis", None).await;
    assert_eq!(status, 401);
    // Not the missing header's message: the caller sent one, and it is no longer good.
    assert_eq!(body["error"], "unauthenticated");
    assert!(body["message"].as_str().unwrap().contains("revoked"), "{body}");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_body_is_not_read_before_the_token_is_checked_or_when_it_is_too_large(pool: PgPool) {
    let admin = admin_app(pool).await;
    let anonymous = "POST /admin/api/v1/apis HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 16777216\r\n\r\n";
    let answer = answer_to_head(&admin.app, anonymous).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains(r#""error":"unauthenticated""#), "{answer}");
    let huge = format!(
        "POST /admin/api/v1/apis HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 20000000\r\n\r\n",
        admin.token
    );
    let answer = answer_to_head(&admin.app, &huge).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(r#""error":"payload_too_large""#) && answer.contains("application/json"), "{answer}");
    // A chunked body that outgrows the limit gets the same JSON answer.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(admin.app.base.trim_start_matches("http://")).await.unwrap();
    let head = format!(
        "POST /admin/api/v1/apis HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        admin.token
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let chunk = [format!("{:x}\r\n", 1024 * 1024).into_bytes(), vec![b' '; 1024 * 1024], b"\r\n".to_vec()].concat();
    for _ in 0..18 {
        // The server may stop reading once the limit is passed.
        if conn.write_all(&chunk).await.is_err() {
            break;
        }
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), conn.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(r#""error":"payload_too_large""#), "{answer}");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_authorization_scheme_is_case_insensitive(pool: PgPool) {
    let admin = admin_app(pool).await;
    let status = |value: String| {
        let req = admin.app.client.get(admin.app.url("/admin/api/v1/apis")).header("authorization", value);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        assert_eq!(status(format!("{scheme} {}", admin.token)).await, 200, "{scheme}");
    }
    assert_eq!(status(format!("Bearer   {}  ", admin.token)).await, 200, "extra spaces");
    for refused in [format!("Basic {}", admin.token), format!("Bearer{}", admin.token), admin.token.clone()] {
        assert_eq!(status(refused.clone()).await, 401, "{refused}");
    }
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn import_plan_and_publish_through_the_api_with_located_errors(pool: PgPool) {
    let admin = admin_app(pool).await;
    let spec = "openapi: 3.0.3\ninfo: {title: Pets, version: '1'}\npaths:\n  /pets:\n    get: {operationId: listPets, responses: {'200': {description: ok}}}\n  /pets/{id}:\n    get: {responses: {'200': {description: ok}}}\n";
    let (status, api) = admin
        .call(
            reqwest::Method::POST,
            "/admin/api/v1/apis",
            Some(json!({"spec": spec, "upstream_url": "http://127.0.0.1:9"})),
        )
        .await;
    assert_eq!(status, 201, "{api}");
    assert_eq!(api["slug"], "pets");
    assert_eq!(api["operation_count"], 2);
    assert_eq!(api["state"], "draft");
    let id = api["id"].as_str().unwrap().to_owned();

    let (status, err) = admin
        .call(
            reqwest::Method::POST,
            "/admin/api/v1/apis",
            Some(json!({"spec": "openapi: 3.0.3\ninfo: {title: T, version: '1'}\npaths: {pets: {}}\n"})),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(err["error"], "invalid_spec");
    assert_eq!(err["field"], "/paths/pets");
    // A path no rule can match (an empty segment), with its place in the document.
    let doubled = "openapi: 3.0.3\ninfo: {title: T, version: '1'}\npaths:\n  /a//b:\n    get: {responses: {'200': {description: ok}}}\n";
    let (status, err) = admin.call(reqwest::Method::POST, "/admin/api/v1/apis", Some(json!({"spec": doubled}))).await;
    assert_eq!((status, err["field"].as_str()), (422, Some("/paths/~1a~1~1b")), "{err}");
    assert!(err["message"].as_str().unwrap().contains("cannot be a mapping rule"), "{err}");
    assert!(err["line"].as_u64().is_some_and(|line| (4..=5).contains(&line)), "{err}");
    // A NUL in the document's text (a JSON escape inside the spec): 422, not a database error.
    let nul = r#"{"openapi":"3.0.3","info":{"title":"A\u0000B","version":"1"},"paths":{}}"#;
    let (status, err) = admin.call(reqwest::Method::POST, "/admin/api/v1/apis", Some(json!({"spec": nul}))).await;
    assert_eq!((status, err["field"].as_str()), (422, Some("/info/title")), "{err}");
    let (status, err) =
        admin.call(reqwest::Method::POST, "/admin/api/v1/apis", Some(json!({"spec": spec, "surprise": 1}))).await;
    assert_eq!(status, 400, "unknown fields are refused: {err}");

    let plan = json!({"system_name": "gold", "name": "Gold", "currency": "EUR", "monthly_fee": "10.00",
        "limits": [{"metric": "hits", "period": "day", "max": 1000}, {"metric": "listPets", "period": "minute", "max": 5}],
        "pricing": [{"metric": "hits", "from": 1, "to": 100, "price_per_unit": "0"}, {"metric": "hits", "from": 101, "price_per_unit": "0.01"}]});
    let (status, created) =
        admin.call(reqwest::Method::POST, &format!("/admin/api/v1/apis/{id}/plans"), Some(plan.clone())).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["limits"].as_array().unwrap().len(), 2);
    // Amounts read as the currency writes them, not as the column stores them ("10.0000").
    assert_eq!((&created["monthly_fee"], &created["setup_fee"]), (&json!("10.00"), &json!("0.00")), "{created}");
    assert_eq!(created["pricing"][1]["price_per_unit"], "0.01", "{created}");
    let mut overlapping = plan.clone();
    overlapping["system_name"] = json!("silver");
    overlapping["name"] = json!("Silver");
    overlapping["pricing"][1]["from"] = json!(50);
    let (status, err) =
        admin.call(reqwest::Method::POST, &format!("/admin/api/v1/apis/{id}/plans"), Some(overlapping)).await;
    assert_eq!(status, 422);
    assert!(err["message"].as_str().unwrap().contains("overlaps"), "{err}");
    // A limit without its metric asks for one, rather than naming an empty one.
    let mut unnamed = plan.clone();
    unnamed["system_name"] = json!("unnamed");
    unnamed["name"] = json!("Unnamed");
    unnamed["limits"][0]["metric"] = json!("");
    let (status, err) =
        admin.call(reqwest::Method::POST, &format!("/admin/api/v1/apis/{id}/plans"), Some(unnamed)).await;
    assert_eq!((status, err["field"].as_str()), (422, Some("limits[0].metric")), "{err}");
    assert!(err["message"].as_str().unwrap().ends_with("choose a metric"), "{err}");
    let mut duplicate = plan.clone();
    duplicate["system_name"] = json!("bronze");
    duplicate["name"] = json!("Bronze");
    duplicate["limits"][1] = json!({"metric": "hits", "period": "day", "max": 5});
    assert_eq!(
        admin.call(reqwest::Method::POST, &format!("/admin/api/v1/apis/{id}/plans"), Some(duplicate)).await.0,
        422
    );
    let mut negative = plan.clone();
    negative["system_name"] = json!("neg");
    negative["name"] = json!("Neg");
    negative["monthly_fee"] = json!("-1");
    assert_eq!(
        admin.call(reqwest::Method::POST, &format!("/admin/api/v1/apis/{id}/plans"), Some(negative)).await.0,
        422
    );
    // A currency ISO 4217 does not list (a typo, a test code) would be invoiced as it is.
    for (currency, fee, field, says) in [
        ("UDS", "10", "currency", "`UDS` is not an ISO 4217 currency"),
        ("XXX", "10", "currency", "`XXX` is not an ISO 4217 currency"),
        // A fee is charged as it is: it must be payable in the currency's minor unit.
        ("USD", "9.999", "monthly_fee", "use at most 2 decimal places: a fee is charged in whole minor units of USD"),
        ("JPY", "1000.5", "monthly_fee", "use a whole amount"),
    ] {
        let mut odd = plan.clone();
        odd["system_name"] = json!("odd");
        odd["name"] = json!("Odd");
        odd["currency"] = json!(currency);
        odd["monthly_fee"] = json!(fee);
        let (status, err) =
            admin.call(reqwest::Method::POST, &format!("/admin/api/v1/apis/{id}/plans"), Some(odd)).await;
        assert_eq!((status, err["field"].as_str()), (422, Some(field)), "{currency} {fee}: {err}");
        assert!(err["message"].as_str().unwrap().contains(says), "{err}");
    }
    let mut fine = plan.clone();
    fine["system_name"] = json!("kwd");
    fine["name"] = json!("Kwd");
    fine["currency"] = json!("KWD");
    fine["monthly_fee"] = json!("9.995");
    let (status, created_kwd) =
        admin.call(reqwest::Method::POST, &format!("/admin/api/v1/apis/{id}/plans"), Some(fine)).await;
    assert_eq!(status, 201, "three decimals are a whole amount of fils: {created_kwd}");
    // A plan saved before these checks keeps its code and fee through an edit of its name.
    let legacy_id = created_kwd["id"].as_str().unwrap();
    sqlx::query("UPDATE plans SET currency = 'ABC', monthly_fee = 9.999 WHERE id = $1::uuid")
        .bind(legacy_id)
        .execute(&admin.app.pool)
        .await
        .unwrap();
    let mut renamed = plan.clone();
    renamed["system_name"] = json!("kwd");
    renamed["name"] = json!("Legacy");
    renamed["currency"] = json!("ABC");
    renamed["monthly_fee"] = json!("9.999");
    let path = format!("/admin/api/v1/plans/{legacy_id}");
    let (status, saved) = admin.call(reqwest::Method::PUT, &path, Some(renamed.clone())).await;
    assert_eq!((status, saved["name"].as_str()), (200, Some("Legacy")), "{saved}");
    // A new fee in it is a new price: it must be payable.
    renamed["monthly_fee"] = json!("8.999");
    let (status, err) = admin.call(reqwest::Method::PUT, &path, Some(renamed)).await;
    assert_eq!((status, err["field"].as_str()), (422, Some("monthly_fee")), "{err}");

    let plan_id = created["id"].as_str().unwrap().to_owned();
    let (status, copy) = admin
        .call(
            reqwest::Method::POST,
            &format!("/admin/api/v1/plans/{plan_id}/copy"),
            Some(json!({"system_name": "gold-2", "name": "Gold 2"})),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(copy["published"], false);
    assert_eq!(copy["pricing"].as_array().unwrap().len(), 2);

    let (status, published) = admin
        .call(reqwest::Method::POST, &format!("/admin/api/v1/apis/{id}/lifecycle"), Some(json!({"state": "published"})))
        .await;
    assert_eq!(status, 200, "{published}");
    assert_eq!(published["state"], "published");
    let (status, err) = admin
        .call(
            reqwest::Method::POST,
            &format!("/admin/api/v1/apis/{id}/lifecycle"),
            Some(json!({"state": "deprecated"})),
        )
        .await;
    assert_eq!(status, 422, "deprecation needs a sunset date: {err}");
    // A time past the year 9999 once in UTC: refused, where storing it panicked (no answer).
    let beyond = json!({"state": "deprecated", "sunset_at": "9999-12-31T23:59:59-01:00"});
    let (status, err) =
        admin.call(reqwest::Method::POST, &format!("/admin/api/v1/apis/{id}/lifecycle"), Some(beyond)).await;
    assert_eq!((status, err["field"].as_str()), (422, Some("sunset_at")), "{err}");
    let (status, err) =
        admin.call(reqwest::Method::GET, "/admin/api/v1/usage?to=9999-12-31T23:59:59-01:00", None).await;
    assert_eq!((status, err["field"].as_str()), (422, Some("to")), "{err}");
    let token = json!({"name": "far", "expires_at": "9999-12-31T23:59:59-01:00"});
    let (status, err) = admin.call(reqwest::Method::POST, "/admin/api/v1/admin-tokens", Some(token)).await;
    assert_eq!((status, err["field"].as_str()), (422, Some("expires_at")), "{err}");
    let (status, deprecated) = admin
        .call(
            reqwest::Method::POST,
            &format!("/admin/api/v1/apis/{id}/lifecycle"),
            Some(json!({"state": "deprecated", "sunset_at": "2099-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(status, 200, "{deprecated}");
    assert!(deprecated["sunset_at"].as_str().unwrap().starts_with("2099-01-01"));
    assert!(published["deprecated_at"].is_null(), "{published}");
    let since = time::OffsetDateTime::parse(
        deprecated["deprecated_at"].as_str().expect("deprecated_at"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339");
    assert!((time::OffsetDateTime::now_utc() - since).whole_seconds().abs() < 60, "{deprecated}");
    let (status, again) = admin
        .call(reqwest::Method::POST, &format!("/admin/api/v1/apis/{id}/lifecycle"), Some(json!({"state": "published"})))
        .await;
    assert_eq!((status, &again["deprecated_at"]), (200, &serde_json::Value::Null), "published again: {again}");

    let (status, log) = admin.call(reqwest::Method::GET, "/admin/api/v1/audit?action=api.", None).await;
    assert_eq!(status, 200);
    let actions: Vec<&str> = log["items"].as_array().unwrap().iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"api.import") && actions.contains(&"api.lifecycle"), "{actions:?}");
    assert!(log["items"][0]["actor"].as_str().unwrap().contains(DEMO_ADMIN_EMAIL));
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn bad_ids_and_pages_are_4xx_never_5xx(pool: PgPool) {
    let admin = admin_app(pool).await;
    for (path, expected) in [
        ("/admin/api/v1/apis/not-a-uuid", 404),
        ("/admin/api/v1/apis/00000000-0000-0000-0000-000000000000", 404),
        ("/admin/api/v1/apis?page=0", 422),
        ("/admin/api/v1/apis?per_page=1000", 422),
        ("/admin/api/v1/apis?page=abc", 400),
        ("/admin/api/v1/applications?state=sideways", 400),
        ("/admin/api/v1/nothing-here", 404),
    ] {
        let (status, body) = admin.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, expected, "{path}: {body}");
        assert!(body["error"].is_string(), "{path}: {body}");
    }
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_plan_with_several_mistakes_is_refused_once_naming_every_one(pool: PgPool) {
    let admin = admin_app(pool).await;
    let (_, apis) = admin.call(reqwest::Method::GET, "/admin/api/v1/apis", None).await;
    let api = apis["items"][0]["id"].as_str().unwrap().to_owned();
    let plans_before = admin.call(reqwest::Method::GET, &format!("/admin/api/v1/apis/{api}/plans"), None).await.1;
    let body = json!({
        "system_name": "Bad Name", "name": "", "currency": "EUR", "monthly_fee": "0.123",
        "trial_days": 5000, "time_zone": "Mars/Olympus",
        "limits": [{"metric": "hits", "period": "day", "max": 10}, {"metric": "hits", "period": "day", "max": -1}],
        "pricing": [{"metric": "hits", "from": 1, "to": 100, "price_per_unit": "1"},
                    {"metric": "hits", "from": 50, "price_per_unit": "0.5"}]
    });
    let (status, err) = admin.call(reqwest::Method::POST, &format!("/admin/api/v1/apis/{api}/plans"), Some(body)).await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["error"], "invalid_input");
    let fields: Vec<&str> = err["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(
        fields,
        ["system_name", "name", "monthly_fee", "trial_days", "time_zone", "limits[1].max", "limits[1]", "pricing[1]"],
        "{err}"
    );
    assert_eq!(err["field"], "system_name", "the first is also where it always was");
    assert!(err["message"].as_str().unwrap().starts_with("8 problems: system_name: "), "{err}");
    assert!(err["errors"][7]["message"].as_str().unwrap().contains("overlaps tier 1"), "{err}");
    let plans_after = admin.call(reqwest::Method::GET, &format!("/admin/api/v1/apis/{api}/plans"), None).await.1;
    assert_eq!(plans_before, plans_after, "nothing was created");

    // One mistake: the same shape, with one entry.
    let body = json!({"system_name": "ok", "name": "Ok", "currency": "EUR", "trial_days": -1});
    let (status, err) = admin.call(reqwest::Method::POST, &format!("/admin/api/v1/apis/{api}/plans"), Some(body)).await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["errors"], json!([{"field": "trial_days", "message": "use 0 to 3650 days"}]));
    assert_eq!(
        (err["field"].as_str(), err["message"].as_str()),
        (Some("trial_days"), Some("trial_days: use 0 to 3650 days"))
    );

    // A mapping rule and the billing settings are checked whole too.
    let rule = json!({"http_method": "FETCH", "pattern": "no-slash", "metric": "hits", "delta": 0});
    let (status, err) =
        admin.call(reqwest::Method::POST, &format!("/admin/api/v1/apis/{api}/mapping-rules"), Some(rule)).await;
    assert_eq!(status, 422, "{err}");
    let fields: Vec<&str> = err["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["http_method", "pattern", "delta"], "{err}");
    let settings = json!({"provider_name": "Weather Corp", "provider_address": "", "provider_tax_id": "",
                          "tax_rate": "1.5", "mode": "postpaid", "payment_terms_days": 400,
                          "payment_instructions": "pay\u{7}now"});
    let (status, err) = admin.call(reqwest::Method::PUT, "/admin/api/v1/billing/settings", Some(settings)).await;
    assert_eq!(status, 422, "{err}");
    let fields: Vec<&str> = err["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["tax_rate", "payment_terms_days", "payment_instructions"], "{err}");
    // A rate sent as a JSON number is read as the plans' fees are: 0.2 is 20 %.
    let settings = json!({"provider_name": "Weather Corp", "provider_address": "", "provider_tax_id": "",
                          "tax_rate": 0.2, "mode": "postpaid", "payment_terms_days": 30});
    let (status, saved) = admin.call(reqwest::Method::PUT, "/admin/api/v1/billing/settings", Some(settings)).await;
    assert_eq!((status, saved["tax_rate"].as_str()), (200, Some("0.2")), "{saved}");
    // A metric too: a bad name, a name too long and a parent the API does not have.
    let metric = json!({"system_name": "no spaces", "friendly_name": "é".repeat(201), "parent": "nope"});
    let (status, err) =
        admin.call(reqwest::Method::POST, &format!("/admin/api/v1/apis/{api}/metrics"), Some(metric)).await;
    assert_eq!(status, 422, "{err}");
    let fields: Vec<&str> = err["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["system_name", "friendly_name", "parent"], "{err}");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn values_out_of_range_are_422_naming_the_field_and_nul_is_refused_as_documented(pool: PgPool) {
    let admin = admin_app(pool).await;
    let (_, apis) = admin.call(reqwest::Method::GET, "/admin/api/v1/apis", None).await;
    let api = apis["items"][0]["id"].as_str().unwrap().to_owned();
    let plan = |setup_fee: &str, price: &str| {
        json!({"system_name": "big", "name": "Big", "currency": "EUR", "setup_fee": setup_fee,
               "pricing": [{"metric": "hits", "from": 1, "price_per_unit": price}]})
    };
    for (body, field) in [
        (plan("0", "123456789.5"), "pricing[0].price_per_unit"),
        (plan("0", "0.1234567"), "pricing[0].price_per_unit"),
        (plan("12345678901", "1"), "setup_fee"),
        (plan("0.12345", "1"), "setup_fee"),
        // The database adds one to a tier's end: i64::MAX was a 500 (bigint out of range).
        (
            json!({"system_name": "big", "name": "Big", "currency": "EUR",
                   "pricing": [{"metric": "hits", "from": 1, "to": i64::MAX, "price_per_unit": "1"}]}),
            "pricing[0].to",
        ),
        (
            json!({"system_name": "big", "name": "Big", "currency": "EUR",
                   "pricing": [{"metric": "hits", "from": i64::MAX, "price_per_unit": "1"}]}),
            "pricing[0].from",
        ),
    ] {
        let (status, err) =
            admin.call(reqwest::Method::POST, &format!("/admin/api/v1/apis/{api}/plans"), Some(body)).await;
        assert_eq!(status, 422, "{err}");
        assert_eq!(err["error"], "invalid_input", "{err}");
        assert_eq!(err["field"], field, "{err}");
    }
    // The largest values the document allows are accepted: a fee has at most its currency's
    // decimals (2 for EUR, 4 for CLF).
    let (status, created) = admin
        .call(
            reqwest::Method::POST,
            &format!("/admin/api/v1/apis/{api}/plans"),
            Some(plan("9999999999.99", "99999999.999999")),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["pricing"][0]["price_per_unit"], "99999999.999999");
    let mut clf = plan("9999999999.9999", "1");
    clf["system_name"] = json!("clf");
    clf["name"] = json!("Clf");
    clf["currency"] = json!("CLF");
    let (status, created) =
        admin.call(reqwest::Method::POST, &format!("/admin/api/v1/apis/{api}/plans"), Some(clf)).await;
    assert_eq!(status, 201, "{created}");

    for (path, field) in [
        ("/admin/api/v1/accounts?per_page=500", "per_page"),
        ("/admin/api/v1/audit?actor=a%00b", "actor"),
        ("/admin/api/v1/applications?q=%00", "q"),
        (&format!("/admin/api/v1/audit?entity={}", "e".repeat(65)), "entity"),
    ] {
        let (status, err) = admin.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 422, "{path}: {err}");
        assert_eq!(err["field"], field, "{path}: {err}");
    }
    // A metric's display name is bounded as documented (schemathesis found it unchecked).
    let metric = json!({"system_name": "k", "friendly_name": "é".repeat(201)});
    let (status, err) =
        admin.call(reqwest::Method::POST, &format!("/admin/api/v1/apis/{api}/metrics"), Some(metric)).await;
    assert_eq!((status, err["field"].as_str()), (422, Some("friendly_name")), "{err}");
    let metric = json!({"system_name": "k", "friendly_name": "é".repeat(200)});
    let (status, err) =
        admin.call(reqwest::Method::POST, &format!("/admin/api/v1/apis/{api}/metrics"), Some(metric)).await;
    assert_eq!(status, 201, "{err}");
    // Rule positions are bounded, and appending after the last one never overflows.
    let rules = format!("/admin/api/v1/apis/{api}/mapping-rules");
    let rule =
        |position: Option<i64>| json!({"http_method": "GET", "pattern": "/x", "metric": "hits", "position": position});
    let (status, err) = admin.call(reqwest::Method::POST, &rules, Some(rule(Some(2_147_483_647)))).await;
    assert_eq!((status, err["field"].as_str()), (422, Some("position")), "{err}");
    sqlx::query("UPDATE mapping_rules SET position = 2147483647 WHERE id = (SELECT id FROM mapping_rules LIMIT 1)")
        .execute(&admin.app.pool)
        .await
        .unwrap();
    let (status, err) = admin.call(reqwest::Method::POST, &rules, Some(rule(None))).await;
    assert_eq!((status, err["field"].as_str()), (422, Some("position")), "{err}");
    // A pattern longer than the column holds is named, not a database error (was a 500).
    let long = json!({"http_method": "GET", "pattern": "/a".repeat(5_000), "metric": "hits", "position": 1});
    let (status, err) = admin.call(reqwest::Method::POST, &rules, Some(long)).await;
    assert_eq!((status, err["field"].as_str()), (422, Some("pattern")), "{err}");
    assert!(err["message"].as_str().unwrap().contains("2048"), "{err}");

    // A fee sent as a JSON number is read as its decimal text: one too large is 422 naming it
    // (serde's own refusal was a 400 the document did not promise).
    let plans = format!("/admin/api/v1/apis/{api}/plans");
    let numeric = |system_name: &str, fee: f64| {
        json!({"system_name": system_name, "name": "Numeric", "currency": "EUR", "monthly_fee": fee,
               "pricing": [{"metric": "hits", "from": 1, "price_per_unit": 0.001}]})
    };
    let (status, err) = admin.call(reqwest::Method::POST, &plans, Some(numeric("huge", 1.27e308))).await;
    assert_eq!((status, err["field"].as_str()), (422, Some("monthly_fee")), "{err}");
    let (status, plan) = admin.call(reqwest::Method::POST, &plans, Some(numeric("numeric", 49.5))).await;
    assert_eq!(status, 201, "{plan}");
    assert_eq!(
        (plan["monthly_fee"].as_str(), plan["pricing"][0]["price_per_unit"].as_str()),
        (Some("49.50"), Some("0.001"))
    );

    // The document says so.
    let doc: Value =
        admin.app.client.get(admin.app.url("/admin/api/openapi.json")).send().await.unwrap().json().await.unwrap();
    let actor = doc["paths"]["/admin/api/v1/audit"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "actor")
        .unwrap()
        .clone();
    assert_eq!(actor["schema"]["pattern"], "^[^\\u0000]*$", "{actor}");
    let price = &doc["components"]["schemas"]["PriceIn"]["properties"]["price_per_unit"];
    // A string as prices are written, or a JSON number read as its decimal text.
    assert_eq!(price["oneOf"][0]["pattern"], "^[0-9]{1,8}(\\.[0-9]{1,6})?$", "{price}");
    assert_eq!(price["oneOf"][1]["type"], "number", "{price}");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn responses_link_to_the_operations_their_ids_feed(pool: PgPool) {
    let admin = admin_app(pool).await;
    let doc: Value =
        admin.app.client.get(admin.app.url("/admin/api/openapi.json")).send().await.unwrap().json().await.unwrap();
    let import = &doc["paths"]["/admin/api/v1/apis"]["post"]["responses"]["201"]["links"];
    assert_eq!(import["GetApi"]["operationId"], "get_api", "{import}");
    assert_eq!(import["GetApi"]["parameters"]["id"], "$response.body#/id");
    let plan = &doc["paths"]["/admin/api/v1/apis/{id}/plans"]["post"]["responses"]["201"]["links"];
    assert_eq!(plan["DeletePlan"]["operationId"], "delete_plan", "{plan}");
    let mut ids = Vec::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            ids.push(op["operationId"].as_str().unwrap().to_owned());
        }
    }
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "operation ids are unique");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_openapi_document_describes_every_route_and_its_security(pool: PgPool) {
    let admin = admin_app(pool).await;
    let doc: Value =
        admin.app.client.get(admin.app.url("/admin/api/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/admin/api/v1/apis",
        "/admin/api/v1/apis/{id}/lifecycle",
        "/admin/api/v1/plans/{id}",
        "/admin/api/v1/applications/{id}/actions",
        "/admin/api/v1/audit",
    ] {
        assert!(paths.contains_key(path), "{path} is documented");
    }
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            assert!(op["responses"]["401"].is_object(), "{method} {path} documents 401");
            // OpenAPI requires a description of every response; generators refuse the document without.
            for (status, response) in op["responses"].as_object().unwrap() {
                let description = response["description"].as_str().unwrap_or_default();
                assert!(!description.trim().is_empty(), "{method} {path} {status} has no description");
            }
        }
    }
    // Enums are documented from the domain's own lists of names.
    let schemas = &doc["components"]["schemas"];
    let periods: Vec<&str> = Period::ALL.iter().map(|p| p.as_str()).collect();
    assert_eq!(schemas["LimitIn"]["properties"]["period"]["enum"], json!(periods));
    let states: Vec<&str> = ApplicationState::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(schemas["ApplicationOut"]["properties"]["state"]["enum"], json!(states));
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn methods_and_mapping_rules_are_editable_and_patterns_checked(pool: PgPool) {
    let admin = admin_app(pool).await;
    let (_, apis) = admin.call(reqwest::Method::GET, "/admin/api/v1/apis", None).await;
    let id = apis["items"][0]["id"].as_str().unwrap().to_owned();
    let (status, metrics) = admin
        .call(
            reqwest::Method::POST,
            &format!("/admin/api/v1/apis/{id}/metrics"),
            Some(json!({"system_name": "bulk_export", "parent": "hits"})),
        )
        .await;
    assert_eq!(status, 201, "{metrics}");
    let (status, err) = admin
        .call(
            reqwest::Method::POST,
            &format!("/admin/api/v1/apis/{id}/mapping-rules"),
            Some(json!({"http_method": "GET", "pattern": "/export/{", "metric": "bulk_export"})),
        )
        .await;
    assert_eq!(status, 422, "a pattern agents cannot parse is refused: {err}");
    assert_eq!(err["field"], "pattern");
    let (status, rules) = admin
        .call(reqwest::Method::POST, &format!("/admin/api/v1/apis/{id}/mapping-rules"), Some(json!({"http_method": "GET", "pattern": "/export/{format}$", "metric": "bulk_export", "delta": 10, "last": true})))
        .await;
    assert_eq!(status, 201, "{rules}");
    let added = rules.as_array().unwrap().iter().find(|r| r["pattern"] == "/export/{format}$").unwrap();
    assert_eq!(added["delta"], 10);
    let rule_id = added["id"].as_str().unwrap();
    let (status, _) =
        admin.call(reqwest::Method::DELETE, &format!("/admin/api/v1/apis/{id}/mapping-rules/{rule_id}"), None).await;
    assert_eq!(status, 204);
    let (_, rules) = admin.call(reqwest::Method::GET, &format!("/admin/api/v1/apis/{id}/mapping-rules"), None).await;
    assert_eq!(rules.as_array().unwrap().len(), 4);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_breaking_new_version_is_reported_then_published_and_subscribers_are_emailed(pool: PgPool) {
    let admin = admin_app(pool).await;
    let v1 = "openapi: 3.0.3\ninfo: {title: Shop, version: '1'}\npaths:\n  /orders:\n    get: {operationId: listOrders, responses: {'200': {description: ok}}}\n  /orders/{id}:\n    get: {operationId: getOrder, parameters: [{name: id, in: path, required: true, schema: {type: string}}], responses: {'200': {description: ok}}}\n";
    let (_, api) = admin
        .call(
            reqwest::Method::POST,
            "/admin/api/v1/apis",
            Some(json!({"spec": v1, "upstream_url": "http://127.0.0.1:9"})),
        )
        .await;
    let id = api["id"].as_str().unwrap().to_owned();
    admin
        .call(
            reqwest::Method::POST,
            &format!("/admin/api/v1/apis/{id}/plans"),
            Some(json!({"system_name": "free", "name": "Free", "currency": "USD", "published": true})),
        )
        .await;
    admin
        .call(reqwest::Method::POST, &format!("/admin/api/v1/apis/{id}/lifecycle"), Some(json!({"state": "published"})))
        .await;
    // The demo developer subscribes.
    let plan_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM plans WHERE api_id = $1::uuid")
        .bind(&id)
        .fetch_one(&admin.app.pool)
        .await
        .unwrap();
    let account: uuid::Uuid = sqlx::query_scalar(
        "SELECT m.account_id FROM memberships m JOIN users u ON u.id = m.user_id WHERE u.email = 'dev@example.com'",
    )
    .fetch_one(&admin.app.pool)
    .await
    .unwrap();
    tollgate_core::applications::create(
        &admin.app.pool,
        tollgate_core::accounts::AccountId(account),
        &tollgate_core::applications::NewApplication {
            plan_id: tollgate_core::plans::PlanId(plan_id),
            name: "Shopper".into(),
            description: String::new(),
        },
        &Actor::system("test"),
    )
    .await
    .unwrap();

    // v2 removes an operation, adds one, and makes a new query parameter required.
    let v2 = "openapi: 3.0.3\ninfo: {title: Shop, version: '2'}\npaths:\n  /orders:\n    get: {operationId: listOrders, parameters: [{name: since, in: query, required: true, schema: {type: string}}], responses: {'200': {description: ok}}}\n  /carts:\n    post: {operationId: createCart, responses: {'201': {description: created}}}\n";
    let (status, staged) = admin
        .call(reqwest::Method::POST, &format!("/admin/api/v1/apis/{id}/versions"), Some(json!({"spec": v2})))
        .await;
    assert_eq!(status, 201, "{staged}");
    assert_eq!(staged["breaking"], true);
    assert_eq!(staged["published"], false);
    let kinds: Vec<&str> =
        staged["top_changes"].as_array().unwrap().iter().map(|c| c["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"operation_removed") && kinds.contains(&"parameter_added_required"), "{kinds:?}");
    // Nothing changed yet for clients: not the rules, not the documents partners read, not the
    // operation count the lists show.
    let (_, rules) = admin.call(reqwest::Method::GET, &format!("/admin/api/v1/apis/{id}/mapping-rules"), None).await;
    assert_eq!(rules.as_array().unwrap().len(), 2);
    let slug = api["slug"].as_str().unwrap();
    for document in ["spec", "openapi"] {
        let text = admin.app.get(&format!("/apis/{slug}/{document}")).await.text().await.unwrap();
        assert!(text.contains("getOrder") && !text.contains("createCart"), "{document}: {text}");
    }
    let page = admin.app.get(&format!("/apis/{slug}")).await.text().await.unwrap();
    assert!(page.contains("/orders/") && !page.contains("/carts"), "the quick start shows the published operations");
    let (_, listed) = admin.call(reqwest::Method::GET, "/admin/api/v1/apis", None).await;
    let listed = listed["items"].as_array().unwrap().iter().find(|a| a["id"] == id.as_str()).unwrap().clone();
    assert_eq!(listed["operation_count"], 2, "{listed}");

    let number = staged["number"].as_i64().unwrap();
    let (status, published) =
        admin.call(reqwest::Method::POST, &format!("/admin/api/v1/apis/{id}/versions/{number}/publish"), None).await;
    assert_eq!(status, 200, "{published}");
    assert_eq!(published["published"], true);
    let text = admin.app.get(&format!("/apis/{slug}/spec")).await.text().await.unwrap();
    assert!(text.contains("createCart"), "published, partners read it: {text}");
    let (_, rules) = admin.call(reqwest::Method::GET, &format!("/admin/api/v1/apis/{id}/mapping-rules"), None).await;
    let patterns: Vec<&str> = rules.as_array().unwrap().iter().map(|r| r["pattern"].as_str().unwrap()).collect();
    assert!(patterns.contains(&"/carts$") && !patterns.contains(&"/orders/{id}$"), "{patterns:?}");
    let (subject, body): (String, String) = sqlx::query_as("SELECT subject, body_text FROM outbox_emails WHERE to_address = 'dev@example.com' ORDER BY created_at DESC LIMIT 1")
        .fetch_one(&admin.app.pool)
        .await
        .unwrap();
    assert!(subject.contains("Breaking changes in Shop"), "{subject}");
    // The distinct count and the top changes, breaking first.
    assert!(body.contains("2 breaking changes affecting 2 operations; 1 other change."), "{body}");
    let top = body.split("The changes that matter most, breaking first:\n\n").nth(1).expect("a list of top changes");
    let lines: Vec<&str> = top.lines().take_while(|l| l.starts_with("- ")).collect();
    assert_eq!(lines.len(), 3, "{body}");
    assert!(lines[..2].iter().all(|l| l.starts_with("- BREAKING")) && lines[2].starts_with("- change"), "{body}");
    assert_eq!(
        admin.call(reqwest::Method::POST, &format!("/admin/api/v1/apis/{id}/versions/{number}/publish"), None).await.0,
        409
    );

    // A version without breaking changes is reported as such.
    let v3 = v2.replace("  /carts:", "  /health:\n    get: {responses: {'200': {description: ok}}}\n  /carts:");
    let (_, staged) = admin
        .call(reqwest::Method::POST, &format!("/admin/api/v1/apis/{id}/versions"), Some(json!({"spec": v3})))
        .await;
    assert_eq!(staged["breaking"], false, "{staged}");

    // Two versions staged against the same one: once either is published, the other's report
    // no longer says what publishing it would change, so it is refused until staged again.
    let v4 = v3.replace("  /health:", "  /status:\n    get: {responses: {'200': {description: ok}}}\n  /health:");
    let (_, v4_staged) = admin
        .call(reqwest::Method::POST, &format!("/admin/api/v1/apis/{id}/versions"), Some(json!({"spec": v4})))
        .await;
    let (v3_number, v4_number) = (staged["number"].as_i64().unwrap(), v4_staged["number"].as_i64().unwrap());
    let publish = |n: i64| format!("/admin/api/v1/apis/{id}/versions/{n}/publish");
    let (status, published) = admin.call(reqwest::Method::POST, &publish(v4_number), None).await;
    assert_eq!(status, 200, "{published}");
    let (status, refused) = admin.call(reqwest::Method::POST, &publish(v3_number), None).await;
    assert_eq!(status, 409, "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("older than the published version"), "{refused}");
    let (_, rules) = admin.call(reqwest::Method::GET, &format!("/admin/api/v1/apis/{id}/mapping-rules"), None).await;
    assert!(rules.as_array().unwrap().iter().any(|r| r["pattern"] == "/status$"), "v4's rules stay: {rules}");
    let v5 = v4.replace("version: '2'", "version: '5'");
    let (_, v5_staged) = admin
        .call(reqwest::Method::POST, &format!("/admin/api/v1/apis/{id}/versions"), Some(json!({"spec": v5.clone()})))
        .await;
    let (_, v6_staged) = admin
        .call(reqwest::Method::POST, &format!("/admin/api/v1/apis/{id}/versions"), Some(json!({"spec": v5})))
        .await;
    assert_eq!(admin.call(reqwest::Method::POST, &publish(v5_staged["number"].as_i64().unwrap()), None).await.0, 200);
    let (status, refused) =
        admin.call(reqwest::Method::POST, &publish(v6_staged["number"].as_i64().unwrap()), None).await;
    assert_eq!(status, 409, "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("stage the document again"), "{refused}");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_new_version_removes_the_rules_it_imported_but_not_an_admins_own(pool: PgPool) {
    let admin = admin_app(pool).await;
    let v1 = "openapi: 3.0.3\ninfo: {title: Shop, version: '1'}\npaths:\n  /orders:\n    get: {operationId: listOrders, responses: {'200': {description: ok}}}\n  /orders/{id}:\n    get: {operationId: getOrder, parameters: [{name: id, in: path, required: true, schema: {type: string}}], responses: {'200': {description: ok}}}\n";
    let (_, api) = admin.call(reqwest::Method::POST, "/admin/api/v1/apis", Some(json!({"spec": v1}))).await;
    let id = api["id"].as_str().expect("id").to_owned();
    let rules_path = format!("/admin/api/v1/apis/{id}/mapping-rules");
    let (_, rules) = admin.call(reqwest::Method::GET, &rules_path, None).await;
    let imported = rules.as_array().expect("rules").iter().find(|r| r["pattern"] == "/orders/{id}$").expect("rule");
    let imported_id = imported["id"].as_str().expect("id");
    // The admin replaces the imported rule with one of their own on the same method and path.
    let (status, _) = admin.call(reqwest::Method::DELETE, &format!("{rules_path}/{imported_id}"), None).await;
    assert_eq!(status, 204);
    let own = json!({"http_method": "GET", "pattern": "/orders/{id}$", "metric": "hits", "delta": 3});
    assert_eq!(admin.call(reqwest::Method::POST, &rules_path, Some(own)).await.0, 201);

    let v2 = "openapi: 3.0.3\ninfo: {title: Shop, version: '2'}\npaths:\n  /orders:\n    get: {operationId: listOrders, responses: {'200': {description: ok}}}\n";
    let (status, staged) = admin
        .call(reqwest::Method::POST, &format!("/admin/api/v1/apis/{id}/versions"), Some(json!({"spec": v2})))
        .await;
    assert_eq!(status, 201, "{staged}");
    let number = staged["number"].as_i64().expect("number");
    let (status, _) =
        admin.call(reqwest::Method::POST, &format!("/admin/api/v1/apis/{id}/versions/{number}/publish"), None).await;
    assert_eq!(status, 200);
    let (_, rules) = admin.call(reqwest::Method::GET, &rules_path, None).await;
    let kept: Vec<(&str, i64)> = rules
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| (r["pattern"].as_str().expect("pattern"), r["delta"].as_i64().expect("delta")))
        .collect();
    assert_eq!(kept, [("/orders$", 1), ("/orders/{id}$", 3)], "the admin's own rule stays");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn long_lists_count_up_to_ten_thousand_and_say_there_are_more(pool: PgPool) {
    let admin = admin_app(pool).await;
    let pool = &admin.app.pool;
    // 10,050 applications on the demo developer's account and a demo plan, one a second apart
    // going back, with 10,001 audit records and developer accounts.
    sqlx::query(
        "INSERT INTO applications (id, account_id, api_id, plan_id, name, state, created_at)
         SELECT gen_random_uuid(), ac.id, p.api_id, p.id, 'Bulk ' || i, 'live', now() - make_interval(secs => i)
         FROM generate_series(1, 10050) AS i,
              (SELECT id FROM accounts WHERE kind = 'developer' LIMIT 1) AS ac, (SELECT id, api_id FROM plans LIMIT 1) AS p",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO audit_log (actor_label, action, entity) SELECT 'bulk@example.test', 'application.state', 'application'
         FROM generate_series(1, 10001)",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO accounts (id, kind, name) SELECT gen_random_uuid(), 'developer', 'Bulk ' || i FROM generate_series(1, 10001) AS i",
    )
    .execute(pool)
    .await
    .unwrap();

    for list in ["/admin/api/v1/applications", "/admin/api/v1/audit", "/admin/api/v1/accounts"] {
        let (status, page) = admin.call(reqwest::Method::GET, &format!("{list}?per_page=50"), None).await;
        assert_eq!(status, 200, "{list}: {page}");
        assert_eq!((page["total"].as_i64(), page["total_exact"].as_bool()), (Some(10_000), Some(false)), "{list}");
        assert_eq!(page["items"].as_array().unwrap().len(), 50, "{list}");
    }
    // Offset pages reach row 10,000 and no further: page 100 of 100 is the last one, page 101
    // is refused with a message naming `page` and the way on, on every list alike.
    let (_, first) = admin.call(reqwest::Method::GET, "/admin/api/v1/applications?per_page=100&page=100", None).await;
    assert_eq!(first["items"].as_array().unwrap().len(), 100, "{first}");
    for deep in [
        "/admin/api/v1/applications?per_page=100&page=101",
        "/admin/api/v1/applications?per_page=50&page=10000",
        "/admin/api/v1/applications?state=live&page=501",
        "/admin/api/v1/audit?per_page=50&page=201",
        "/admin/api/v1/accounts?per_page=1&page=10001",
        "/admin/api/v1/apis?per_page=100&page=101",
        "/admin/api/v1/invoices?per_page=100&page=101",
    ] {
        let (status, refused) = admin.call(reqwest::Method::GET, deep, None).await;
        assert_eq!(status, 400, "{deep}: {refused}");
        assert_eq!((refused["error"].as_str(), refused["field"].as_str()), (Some("page_too_deep"), Some("page")));
        let message = refused["message"].as_str().unwrap();
        assert!(message.contains("`page`") && message.contains("`after_id`"), "{message}");
    }
    let (status, _) = admin.call(reqwest::Method::GET, "/admin/api/v1/audit?per_page=50&page=200", None).await;
    assert_eq!(status, 200, "page 200 of 50 ends at row 10,000");
    let (status, _) = admin.call(reqwest::Method::GET, "/admin/api/v1/audit?page=0", None).await;
    assert_eq!(status, 422);
    // The last offset page links on by key, past the cap: the rest, newest first.
    let next_link = first["next"].as_str().unwrap().to_owned();
    let last = first["items"][99]["id"].as_str().unwrap();
    assert_eq!(next_link, format!("/admin/api/v1/applications?per_page=100&after_id={last}"));
    let (status, next) = admin.call(reqwest::Method::GET, &next_link, None).await;
    assert_eq!(status, 200, "{next}");
    let last_of_first = first["items"][99]["created_at"].as_str().unwrap().to_owned();
    let first_of_next = next["items"][0]["created_at"].as_str().unwrap().to_owned();
    assert!(last_of_first > first_of_next, "{last_of_first} then {first_of_next}");
    let all: i64 = sqlx::query_scalar("SELECT count(*) FROM applications").fetch_one(pool).await.unwrap();
    assert_eq!(next["items"].as_array().unwrap().len() as i64, all - 10_000, "the next page holds the rest");
    assert_eq!(next["next"], Value::Null, "{next}");
    // Ties on created_at are ordered by id, so keyset paging skips and repeats nothing.
    sqlx::query("UPDATE applications SET created_at = '2020-01-01T00:00:00Z' WHERE name LIKE 'Bulk 999_'")
        .execute(pool)
        .await
        .unwrap();
    let (_, first) = admin.call(reqwest::Method::GET, "/admin/api/v1/applications?per_page=100&page=100", None).await;
    let (_, tied) = admin.call(reqwest::Method::GET, first["next"].as_str().unwrap(), None).await;
    assert!(tied["items"].as_array().unwrap().len() > 10, "{tied}");
    let tied_ids: Vec<&str> = tied["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    let mut walked = Vec::new();
    let mut cursor = tied["items"][0]["id"].as_str().unwrap().to_owned();
    walked.push(cursor.clone());
    loop {
        let (_, step) = admin
            .call(reqwest::Method::GET, &format!("/admin/api/v1/applications?per_page=3&after_id={cursor}"), None)
            .await;
        let items = step["items"].as_array().unwrap();
        if items.is_empty() {
            break;
        }
        walked.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_owned()));
        cursor = walked.last().unwrap().clone();
    }
    assert_eq!(walked, tied_ids, "walking 3 at a time from the first of the next page gives that page");
    let (_, audit_first) = admin.call(reqwest::Method::GET, "/admin/api/v1/audit?per_page=100&page=50", None).await;
    let (_, audit_next) = admin.call(reqwest::Method::GET, "/admin/api/v1/audit?per_page=100&page=51", None).await;
    let last = audit_first["items"][99]["id"].as_i64().unwrap();
    let (_, audit_after) =
        admin.call(reqwest::Method::GET, &format!("/admin/api/v1/audit?per_page=100&after_id={last}"), None).await;
    assert_eq!(audit_after["items"], audit_next["items"]);
    // Developer accounts page by key too (the demo seed's and the 10,001 bulk ones).
    let (_, accounts_first) =
        admin.call(reqwest::Method::GET, "/admin/api/v1/accounts?per_page=100&page=50", None).await;
    let (_, accounts_next) =
        admin.call(reqwest::Method::GET, "/admin/api/v1/accounts?per_page=100&page=51", None).await;
    assert_eq!(accounts_next["items"].as_array().unwrap().len(), 100, "{accounts_next}");
    let last = accounts_first["items"][99]["id"].as_str().unwrap();
    let (status, accounts_after) =
        admin.call(reqwest::Method::GET, &format!("/admin/api/v1/accounts?per_page=100&after_id={last}"), None).await;
    assert_eq!(status, 200, "{accounts_after}");
    assert_eq!(accounts_after["items"], accounts_next["items"]);
    let (_, after_unknown) =
        admin.call(reqwest::Method::GET, &format!("/admin/api/v1/accounts?after_id={UNKNOWN}"), None).await;
    assert_eq!(after_unknown["items"], json!([]), "an id that is no account leaves the page empty");
    let (status, _) = admin.call(reqwest::Method::GET, "/admin/api/v1/accounts?after_id=nope", None).await;
    assert_eq!(status, 400);
    let (status, _) = admin.call(reqwest::Method::GET, "/admin/api/v1/audit?after_id=0", None).await;
    assert_eq!(status, 422);
    // A filter narrow enough is counted exactly: Bulk 100, 1000–1009 and 10000–10050.
    let (_, some) = admin.call(reqwest::Method::GET, "/admin/api/v1/applications?q=Bulk%20100", None).await;
    assert_eq!((some["total"].as_i64(), some["total_exact"].as_bool()), (Some(62), Some(true)), "{some}");
    // A search pages like the full list: the second page of 50 holds the other 12, newest first.
    let (_, second) =
        admin.call(reqwest::Method::GET, "/admin/api/v1/applications?q=bulk%20100&per_page=50&page=2", None).await;
    let names: Vec<&str> = second["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "Bulk 10039",
            "Bulk 10040",
            "Bulk 10041",
            "Bulk 10042",
            "Bulk 10043",
            "Bulk 10044",
            "Bulk 10045",
            "Bulk 10046",
            "Bulk 10047",
            "Bulk 10048",
            "Bulk 10049",
            "Bulk 10050"
        ],
        "{second}"
    );
    // The account's name matches all of its applications.
    let account: String = sqlx::query_scalar(
        "SELECT ac.name FROM accounts ac JOIN applications ap ON ap.account_id = ac.id WHERE ap.name = 'Bulk 1'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let (_, by_account) = admin
        .call(
            reqwest::Method::GET,
            &format!("/admin/api/v1/applications?per_page=50&q={}", account.replace(' ', "%20")),
            None,
        )
        .await;
    assert_eq!((by_account["total"].as_i64(), by_account["total_exact"].as_bool()), (Some(10_000), Some(false)));
    assert_eq!(by_account["items"].as_array().unwrap().len(), 50, "{by_account}");
    // An API's subscribers and a plan's applications are counted up to the same limit.
    let (api, plan): (uuid::Uuid, uuid::Uuid) =
        sqlx::query_as("SELECT api_id, plan_id FROM applications WHERE name = 'Bulk 1'").fetch_one(pool).await.unwrap();
    let (_, detail) = admin.call(reqwest::Method::GET, &format!("/admin/api/v1/apis/{api}"), None).await;
    assert_eq!((detail["subscribers"].as_i64(), detail["subscribers_exact"].as_bool()), (Some(10_000), Some(false)));
    let (_, plan) = admin.call(reqwest::Method::GET, &format!("/admin/api/v1/plans/{plan}"), None).await;
    assert_eq!((plan["applications"].as_i64(), plan["applications_exact"].as_bool()), (Some(10_000), Some(false)));
    // Nor can a plan with that many be deleted.
    let (status, refused) = admin
        .call(reqwest::Method::DELETE, &format!("/admin/api/v1/plans/{}", plan["id"].as_str().unwrap()), None)
        .await;
    assert_eq!(status, 409, "{refused}");
    assert!(refused.to_string().contains("10000+ application(s)"), "{refused}");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_search_with_a_word_most_names_share_finds_exactly_the_names_that_contain_it(pool: PgPool) {
    let admin = admin_app(pool).await;
    let pool = &admin.app.pool;
    // 2,000 applications and 2,000 developer accounts named `Fleet n`: `fleet` is in most names,
    // so the trigram index is asked for the rest of the query and the whole query is checked
    // on what it finds (once ANALYZE has sampled the names).
    sqlx::query(
        "INSERT INTO applications (id, account_id, api_id, plan_id, name, state)
         SELECT gen_random_uuid(), ac.id, p.api_id, p.id, 'Fleet ' || i, 'live'
         FROM generate_series(1, 2000) AS i,
              (SELECT id FROM accounts WHERE kind = 'developer' LIMIT 1) AS ac, (SELECT id, api_id FROM plans LIMIT 1) AS p",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO accounts (id, kind, name) SELECT gen_random_uuid(), 'developer', 'Fleet ' || i FROM generate_series(1, 2000) AS i")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("ANALYZE applications, accounts").execute(pool).await.unwrap();
    let matching: Vec<String> =
        std::iter::once("Fleet 123".to_owned()).chain((1230..1240).map(|n| format!("Fleet {n}"))).collect();
    for list in ["/admin/api/v1/applications", "/admin/api/v1/accounts"] {
        for (q, expected) in [
            ("Fleet%20123", matching.clone()),
            ("fLEET%20123", matching.clone()),
            // Every candidate holds `123`, and none holds the query.
            ("123%20Fleet", vec![]),
            ("Fleet%20%20123", vec![]),
            ("Fleet%20123_", vec![]),
        ] {
            let (status, page) = admin.call(reqwest::Method::GET, &format!("{list}?per_page=50&q={q}"), None).await;
            assert_eq!(status, 200, "{list} {q}: {page}");
            let mut names: Vec<String> =
                page["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap().to_owned()).collect();
            names.sort();
            assert_eq!(names, expected, "{list} {q}");
            assert_eq!(page["total"].as_u64(), Some(expected.len() as u64), "{list} {q}");
        }
        // `fleet` alone is in most names: the list is walked in its order and each row checked.
        let mut seen = std::collections::HashSet::new();
        for page_number in [1, 40] {
            let (status, page) =
                admin.call(reqwest::Method::GET, &format!("{list}?per_page=50&page={page_number}&q=fleet"), None).await;
            assert_eq!(status, 200, "{list}: {page}");
            assert_eq!((page["total"].as_u64(), page["total_exact"].as_bool()), (Some(2000), Some(true)), "{list}");
            let items = page["items"].as_array().unwrap();
            assert_eq!(items.len(), 50, "{list} page {page_number}");
            for item in items {
                assert!(item["name"].as_str().unwrap().starts_with("Fleet "), "{list}: {item}");
                assert!(seen.insert(item["id"].as_str().unwrap().to_owned()), "{list}: {item} twice");
            }
        }
    }
}

/// Every item's id in a list, following `next` from `first` to the end.
async fn walk(admin: &Admin, first: &str) -> Vec<Value> {
    let mut ids = Vec::new();
    let mut link = Some(first.to_owned());
    while let Some(path) = link {
        let (status, page) = admin.call(reqwest::Method::GET, &path, None).await;
        assert_eq!(status, 200, "{path}: {page}");
        let items = page["items"].as_array().unwrap();
        // `next` is null on the last page: it never leads to an empty one.
        assert!(!items.is_empty() || path == first, "{path}: an empty page after {} items", ids.len());
        ids.extend(items.iter().map(|i| i["id"].clone()));
        link = page["next"].as_str().map(str::to_owned);
        assert!(ids.len() <= 1000, "{path} never ends");
    }
    ids
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn following_next_walks_every_list_to_its_end_in_order(pool: PgPool) {
    let admin = admin_app(pool).await;
    let pool = &admin.app.pool;
    // A few rows of each list, made in one statement each so that their sort keys tie.
    for insert in [
        "INSERT INTO api_products (id, slug, name, base_path)
         SELECT gen_random_uuid(), 'walk-' || i, 'Walk ' || i, '/walk-' || i FROM generate_series(1, 5) AS i",
        "INSERT INTO accounts (id, kind, name) SELECT gen_random_uuid(), 'developer', 'Walk ' || i FROM generate_series(1, 3) AS i",
        "INSERT INTO applications (id, account_id, api_id, plan_id, name, state)
         SELECT gen_random_uuid(), ac.id, p.api_id, p.id, 'Walk app ' || i, 'live'
         FROM generate_series(1, 5) AS i,
              (SELECT id FROM accounts WHERE name = 'Walk 1') AS ac, (SELECT id, api_id FROM plans LIMIT 1) AS p",
        "INSERT INTO audit_log (actor_label, action, entity) SELECT 'walk@example.test', 'application.walk', 'application' FROM generate_series(1, 5)",
        "INSERT INTO invoices (id, account_id, number, period_start, period_end, currency)
         SELECT gen_random_uuid(), a.id, 'W-' || to_char(m, 'YYYY-MM') || '-' || a.name, m, (m + interval '1 month')::date, 'EUR'
         FROM accounts a, generate_series(date '2026-01-01', date '2026-03-01', interval '1 month') AS m
         WHERE a.name LIKE 'Walk %'",
    ] {
        sqlx::query(insert).execute(pool).await.unwrap();
    }
    let hook = json!({"url": "https://hooks.tollgate.invalid/in", "description": "walk", "events": ["api.deprecated"]});
    let (status, hook) = admin.call(reqwest::Method::POST, "/admin/api/v1/webhooks", Some(hook)).await;
    assert_eq!(status, 201, "{hook}");
    let hook = hook["id"].as_str().unwrap().to_owned();
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, subscription_id, event_id, event, body, created_at, next_attempt_at)
         SELECT gen_random_uuid(), $1::uuid, gen_random_uuid(), 'api.deprecated', '{}', now() - make_interval(secs => i / 2), NULL
         FROM generate_series(1, 7) AS i",
    )
    .bind(&hook)
    .execute(pool)
    .await
    .unwrap();

    let deliveries = format!("/admin/api/v1/webhooks/{hook}/deliveries?");
    for list in [
        "/admin/api/v1/apis?",
        "/admin/api/v1/accounts?",
        "/admin/api/v1/accounts?q=walk&",
        "/admin/api/v1/applications?",
        "/admin/api/v1/applications?state=live&q=walk%20app&",
        "/admin/api/v1/audit?",
        "/admin/api/v1/audit?actor=walk&",
        "/admin/api/v1/invoices?",
        "/admin/api/v1/invoices?currency=EUR&",
        deliveries.as_str(),
    ] {
        let (status, whole) = admin.call(reqwest::Method::GET, &format!("{list}per_page=100"), None).await;
        assert_eq!(status, 200, "{list}: {whole}");
        let all: Vec<Value> = whole["items"].as_array().unwrap().iter().map(|i| i["id"].clone()).collect();
        assert!(all.len() >= 3, "{list}: {whole}");
        assert_eq!(whole["next"], Value::Null, "{list}: one page holds them all");
        assert_eq!(walk(&admin, &format!("{list}per_page=2")).await, all, "{list}, two at a time");
        // Offset pages in turn hold the same rows in the same order.
        let mut by_offset = Vec::new();
        for page in 1..=all.len().div_ceil(2) {
            let (_, items) = admin.call(reqwest::Method::GET, &format!("{list}per_page=2&page={page}"), None).await;
            by_offset.extend(items["items"].as_array().unwrap().iter().map(|i| i["id"].clone()));
        }
        assert_eq!(by_offset, all, "{list}, by offset two at a time");
        // An offset page links on by key from where it is.
        let (_, second) = admin.call(reqwest::Method::GET, &format!("{list}per_page=1&page=2"), None).await;
        assert_eq!(walk(&admin, second["next"].as_str().unwrap()).await, all[2..], "{list} from page 2");
    }
}

/// A suspension stops an application's keys: its owners are told, and told again when it is
/// resumed (a partner found out only from 403s).
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn owners_are_mailed_when_their_application_is_suspended_and_resumed(pool: PgPool) {
    use reqwest::Method;
    let admin = admin_app(pool).await;
    let (account, plan) = admin.demo_account_and_basic_plan().await;
    let new = json!({"plan_id": plan, "name": "Mailed app"});
    let (status, app) =
        admin.call(Method::POST, &format!("/admin/api/v1/accounts/{account}/applications"), Some(new)).await;
    assert_eq!((status, app["state"].as_str()), (201, Some("live")), "{app}");
    let (id, name) = (app["id"].as_str().unwrap(), app["name"].as_str().unwrap());
    let act = format!("/admin/api/v1/applications/{id}/actions");
    let mails = || async {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT subject, body_text FROM outbox_emails WHERE subject LIKE 'Your application%' ORDER BY created_at",
        )
        .fetch_all(&admin.app.pool)
        .await
        .unwrap();
        rows
    };
    let before = mails().await.len();
    assert_eq!(admin.call(Method::POST, &act, Some(json!({"action": "suspend"}))).await.0, 200);
    let sent = mails().await;
    assert_eq!(sent.len(), before + 1, "{sent:?}");
    let (subject, body) = sent.last().unwrap();
    assert_eq!(subject, &format!("Your application {name} was suspended"));
    assert!(body.contains("keys are refused") && body.contains(&format!("/apps/{id}")), "{body}");
    assert_eq!(admin.call(Method::POST, &act, Some(json!({"action": "resume"}))).await.0, 200);
    let sent = mails().await;
    assert_eq!(sent.last().unwrap().0, format!("Your application {name} was resumed"), "{sent:?}");
}

/// A plan with a 14-day trial that needs approval: the trial runs from the approval, not from
/// the request, which may have waited longer than the trial.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_trial_starts_when_the_application_is_approved(pool: PgPool) {
    use reqwest::Method;
    let admin = admin_app(pool).await;
    let pool = &admin.app.pool;
    let (account, plan) = admin.demo_account_and_basic_plan().await;
    let plan: uuid::Uuid = plan.as_str().unwrap().parse().unwrap();
    sqlx::query("UPDATE plans SET approval_required = true, trial_days = 14 WHERE id = $1")
        .bind(plan)
        .execute(pool)
        .await
        .unwrap();
    let new = json!({"plan_id": plan, "name": "Waiting app"});
    let (status, app) =
        admin.call(Method::POST, &format!("/admin/api/v1/accounts/{account}/applications"), Some(new)).await;
    assert_eq!((status, app["state"].as_str()), (201, Some("pending")), "{app}");
    let id: uuid::Uuid = app["id"].as_str().unwrap().parse().unwrap();
    // Moves the trial's end back by `days`, as if that much time had passed; the days left.
    let age = |days: i32| async move {
        sqlx::query("UPDATE applications SET trial_ends_at = trial_ends_at - make_interval(days => $2) WHERE id = $1")
            .bind(id)
            .bind(days)
            .execute(pool)
            .await
            .unwrap();
    };
    let days_left = || async move {
        sqlx::query_scalar::<_, f64>(
            "SELECT extract(epoch FROM trial_ends_at - now())::float8 / 86400 FROM applications WHERE id = $1",
        )
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
    };
    // Three weeks waiting for a decision.
    age(21).await;
    let act = format!("/admin/api/v1/applications/{id}/actions");
    assert_eq!(admin.call(Method::POST, &act, Some(json!({"action": "approve"}))).await.0, 200);
    let left = days_left().await;
    assert!((13.9..=14.0).contains(&left), "{left} days of trial left after the approval");
    // A suspension and resumption later do not start it again.
    assert_eq!(admin.call(Method::POST, &act, Some(json!({"action": "suspend"}))).await.0, 200);
    age(10).await;
    assert_eq!(admin.call(Method::POST, &act, Some(json!({"action": "resume"}))).await.0, 200);
    let left = days_left().await;
    assert!(left < 4.1, "{left}");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_count_at_the_limit_is_reused_for_seconds_and_a_smaller_one_is_always_fresh(pool: PgPool) {
    use reqwest::Method;
    let admin = admin_app(pool).await;
    let pool = &admin.app.pool;
    let (account, plan) = admin.demo_account_and_basic_plan().await;
    let plan: uuid::Uuid = plan.as_str().unwrap().parse().unwrap();
    let total = |page: &Value| (page["total"].as_i64().unwrap(), page["total_exact"].as_bool().unwrap());
    let mine = format!("/admin/api/v1/applications?per_page=1&account_id={account}");
    let suspended = format!("{mine}&state=suspended");
    let (_, before) = admin.call(Method::GET, &mine, None).await;
    let (_, before_suspended) = admin.call(Method::GET, &suspended, None).await;
    let (n, s) = (total(&before).0, total(&before_suspended).0);
    // A small count follows every change at once: a new application, then its suspension.
    let new = json!({"plan_id": plan, "name": "Counted app"});
    let (status, app) =
        admin.call(Method::POST, &format!("/admin/api/v1/accounts/{account}/applications"), Some(new)).await;
    assert_eq!(status, 201, "{app}");
    assert_eq!(total(&admin.call(Method::GET, &mine, None).await.1), (n + 1, true));
    let act = format!("/admin/api/v1/applications/{}/actions", app["id"].as_str().unwrap());
    assert_eq!(admin.call(Method::POST, &act, Some(json!({"action": "suspend"}))).await.0, 200);
    assert_eq!(total(&admin.call(Method::GET, &suspended, None).await.1), (s + 1, true));
    assert_eq!(admin.call(Method::POST, &act, Some(json!({"action": "resume"}))).await.0, 200);
    assert_eq!(total(&admin.call(Method::GET, &suspended, None).await.1), (s, true));
    // A move the state does not allow says which, in words.
    for (action, word) in [("approve", "approved"), ("reject", "rejected"), ("resume", "resumed")] {
        let (status, body) = admin.call(Method::POST, &act, Some(json!({"action": action}))).await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["message"], format!("a live application cannot be {word}"), "{body}");
    }

    // Past the limit the account's count reads "10000+", and for a few seconds it is not taken
    // again: deleting half of the rows behind the list's back does not show in that time.
    sqlx::query(
        "INSERT INTO applications (id, account_id, api_id, plan_id, name, state)
         SELECT gen_random_uuid(), $1::uuid, p.api_id, p.id, 'Bulk ' || i, 'live'
         FROM generate_series(1, 10001) AS i, (SELECT id, api_id FROM plans WHERE id = $2) AS p",
    )
    .bind(&account)
    .bind(plan)
    .execute(pool)
    .await
    .unwrap();
    let counted_at = std::time::Instant::now();
    assert_eq!(total(&admin.call(Method::GET, &mine, None).await.1), (10_000, false));
    sqlx::query("DELETE FROM applications WHERE name LIKE 'Bulk %' AND name > 'Bulk 5'").execute(pool).await.unwrap();
    let (_, kept) = admin.call(Method::GET, &mine, None).await;
    if counted_at.elapsed() < tollgate_core::db::CAPPED_COUNT_TTL {
        assert_eq!(total(&kept), (10_000, false), "reused within the TTL");
    }
    // Another filter, or a count under the limit, is counted afresh.
    let live = format!("{mine}&state=live");
    let (_, fresh) = admin.call(Method::GET, &live, None).await;
    let live_now: i64 =
        sqlx::query_scalar("SELECT count(*) FROM applications WHERE account_id = $1::uuid AND state = 'live'")
            .bind(&account)
            .fetch_one(pool)
            .await
            .unwrap();
    assert!(live_now < 10_000, "{live_now}");
    assert_eq!(total(&fresh), (live_now, true));
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_tokens_last_use_is_recorded_at_most_once_a_minute(pool: PgPool) {
    use reqwest::Method;
    let admin = admin_app(pool).await;
    let (status, tokens) = admin.call(Method::GET, "/admin/api/v1/admin-tokens", None).await;
    assert_eq!(status, 200, "{tokens}");
    let first = tokens[0]["last_used_at"].as_str().expect("the call just made is recorded").to_owned();
    let (_, again) = admin.call(Method::GET, "/admin/api/v1/admin-tokens", None).await;
    assert_eq!(again[0]["last_used_at"].as_str(), Some(first.as_str()), "not written again within the minute");
    // A minute later (moved back by hand) the next call writes it again.
    sqlx::query("UPDATE admin_tokens SET last_used_at = now() - interval '61 seconds'")
        .execute(&admin.app.pool)
        .await
        .unwrap();
    let (_, later) = admin.call(Method::GET, "/admin/api/v1/admin-tokens", None).await;
    let at =
        |text: &str| time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).expect("a time");
    assert!(at(later[0]["last_used_at"].as_str().unwrap()) >= at(&first), "{later}");
}

/// A call without any token.
async fn anonymous(admin: &Admin, method: reqwest::Method, path: &str, body: Value) -> u16 {
    admin.app.client.request(method, admin.app.url(path)).json(&body).send().await.unwrap().status().as_u16()
}

const UNKNOWN: &str = "0190f0a0-0000-7000-8000-000000000000";

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn gateways_are_registered_renamed_and_revoked_and_their_token_follows(pool: PgPool) {
    use reqwest::Method;
    let admin = admin_app(pool).await;
    let new = json!({"name": "edge-1"});
    assert_eq!(anonymous(&admin, Method::POST, "/admin/api/v1/gateways", new.clone()).await, 401);
    let (status, created) = admin.call(Method::POST, "/admin/api/v1/gateways", Some(new.clone())).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], "edge-1");
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("tg_agt_"), "{created}");
    assert!(token.starts_with(created["token_prefix"].as_str().unwrap()));
    let id = created["id"].as_str().unwrap().to_owned();
    // The token works on the agent API.
    let report = tollgate_protocol::AgentStatus {
        protocol_version: tollgate_protocol::PROTOCOL_VERSION,
        agent_version: "0.1.0".into(),
        applied_revision: Some(1),
        rejected: None,
    };
    let agent_status = || async {
        let res = admin.app.client.post(admin.app.url("/agent/v1/status")).bearer_auth(&token).json(&report);
        res.send().await.unwrap().status().as_u16()
    };
    assert_eq!(agent_status().await, 204);
    // The list never shows the token again.
    let (status, list) = admin.call(Method::GET, "/admin/api/v1/gateways", None).await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["name"], "edge-1");
    assert_eq!(list[0]["applied_revision"], 1);
    assert!(list[0].get("token").is_none(), "{list}");
    // Bad input: a taken name, a bad name, no name.
    assert_eq!(admin.call(Method::POST, "/admin/api/v1/gateways", Some(new)).await.0, 409);
    let (status, body) = admin.call(Method::POST, "/admin/api/v1/gateways", Some(json!({"name": "no spaces"}))).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("name")), "{body}");
    assert_eq!(admin.call(Method::POST, "/admin/api/v1/gateways", Some(json!({}))).await.0, 400);
    // Rename: the token keeps working under the new name.
    let path = format!("/admin/api/v1/gateways/{id}");
    assert_eq!(anonymous(&admin, Method::PATCH, &path, json!({"name": "edge-2"})).await, 401);
    let (status, renamed) = admin.call(Method::PATCH, &path, Some(json!({"name": "edge-2"}))).await;
    assert_eq!((status, renamed["name"].as_str()), (200, Some("edge-2")), "{renamed}");
    assert_eq!(admin.call(Method::GET, &path, None).await.1["name"], "edge-2");
    assert_eq!(agent_status().await, 204);
    let (status, body) = admin.call(Method::PATCH, &path, Some(json!({"name": "-dash"}))).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("name")), "{body}");
    let unknown = format!("/admin/api/v1/gateways/{UNKNOWN}");
    assert_eq!(admin.call(Method::PATCH, &unknown, Some(json!({"name": "x"}))).await.0, 404);
    assert_eq!(admin.call(Method::GET, &unknown, None).await.0, 404);
    assert_eq!(admin.call(Method::DELETE, &unknown, None).await.0, 404);
    // Revoke: the agent API refuses the token, the agent leaves the list.
    assert_eq!(anonymous(&admin, Method::DELETE, &path, json!({})).await, 401);
    assert_eq!(admin.call(Method::DELETE, &path, None).await.0, 204);
    assert_eq!(agent_status().await, 401);
    assert_eq!(admin.call(Method::GET, &path, None).await.0, 404);
    assert_eq!(admin.call(Method::DELETE, &path, None).await.0, 404);
    assert_eq!(admin.call(Method::GET, "/admin/api/v1/gateways", None).await.1, json!([]));
    let actions: Vec<String> = sqlx::query_scalar("SELECT action FROM audit_log WHERE entity = 'gateway' ORDER BY id")
        .fetch_all(&admin.app.pool)
        .await
        .unwrap();
    assert_eq!(actions, ["gateway.create", "gateway.rename", "gateway.revoke"]);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn applications_and_keys_are_made_rotated_and_revoked_for_an_account(pool: PgPool) {
    use reqwest::Method;
    let admin = admin_app(pool).await;
    let (account, basic) = admin.demo_account_and_basic_plan().await;
    let path = format!("/admin/api/v1/accounts/{account}/applications");
    let new = json!({"plan_id": basic, "name": "CI app", "description": "made by the pipeline"});
    assert_eq!(anonymous(&admin, Method::POST, &path, new.clone()).await, 401);
    let unknown = format!("/admin/api/v1/accounts/{UNKNOWN}/applications");
    assert_eq!(admin.call(Method::POST, &unknown, Some(new.clone())).await.0, 404);
    let (status, body) = admin.call(Method::POST, &path, Some(json!({"plan_id": basic, "name": " "}))).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("name")), "{body}");
    // A name is one line: it is mailed to admins, where a line break would start a paragraph.
    for name in ["Tiny app\r\n\r\nURGENT: reset your password at http://evil.example", "a\tb", "a\u{2028}b"] {
        let (status, body) = admin.call(Method::POST, &path, Some(json!({"plan_id": basic, "name": name}))).await;
        assert_eq!((status, body["field"].as_str()), (422, Some("name")), "{name:?}: {body}");
    }
    let (status, body) =
        admin.call(Method::POST, &path, Some(json!({"plan_id": basic, "name": "x", "description": "a\u{7}b"}))).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("description")), "{body}");
    let (status, body) = admin.call(Method::POST, &path, Some(json!({"plan_id": UNKNOWN, "name": "x"}))).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("plan_id")), "{body}");
    let (status, app) = admin.call(Method::POST, &path, Some(new.clone())).await;
    assert_eq!(status, 201, "{app}");
    assert_eq!((app["name"].as_str(), app["state"].as_str()), (Some("CI app"), Some("live")));
    assert_eq!(app["account_id"].as_str(), Some(account.as_str()));
    assert_eq!(admin.call(Method::POST, &path, Some(new)).await.0, 409, "one name per API and account");
    // A suspended account registers nothing: agents would refuse the application it says is live.
    let state = format!("/admin/api/v1/accounts/{account}/state");
    assert_eq!(admin.call(Method::PUT, &state, Some(json!({"state": "suspended"}))).await.0, 200);
    let another = json!({"plan_id": basic, "name": "While suspended"});
    let (status, body) = admin.call(Method::POST, &path, Some(another.clone())).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["message"].as_str().unwrap().contains("suspended"), "{body}");
    assert_eq!(admin.call(Method::PUT, &state, Some(json!({"state": "active"}))).await.0, 200);
    let app = app["id"].as_str().unwrap().to_owned();

    // Keys: issue, list, rotate (the old one stays for its overlap), revoke.
    let keys = format!("/admin/api/v1/applications/{app}/keys");
    assert_eq!(anonymous(&admin, Method::POST, &keys, json!({})).await, 401);
    assert_eq!(admin.call(Method::POST, &format!("/admin/api/v1/applications/{UNKNOWN}/keys"), None).await.0, 404);
    assert_eq!(admin.call(Method::GET, &format!("/admin/api/v1/applications/{UNKNOWN}/keys"), None).await.0, 404);
    let (status, issued) = admin.call(Method::POST, &keys, None).await;
    assert_eq!(status, 201, "{issued}");
    let secret = issued["secret"].as_str().unwrap().to_owned();
    assert!(
        secret.starts_with(issued["prefix"].as_str().unwrap()) && secret.ends_with(issued["last4"].as_str().unwrap())
    );
    assert_eq!(issued["status"], "active");
    let first = issued["id"].as_str().unwrap().to_owned();
    // The stored hash is the secret's: agents will accept it.
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM credentials WHERE id = $1::uuid AND key_hash = $2")
        .bind(&first)
        .bind(tollgate_protocol::KeyHash::of(&secret).as_bytes().as_slice())
        .fetch_one(&admin.app.pool)
        .await
        .unwrap();
    assert_eq!(stored, 1);
    let rotation = format!("{keys}/{first}/rotation");
    assert_eq!(anonymous(&admin, Method::POST, &rotation, json!({})).await, 401);
    let (status, body) = admin.call(Method::POST, &rotation, Some(json!({"overlap_hours": 721}))).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("overlap_hours")), "{body}");
    assert_eq!(admin.call(Method::POST, &format!("{keys}/{UNKNOWN}/rotation"), Some(json!({}))).await.0, 404);
    let (status, replacement) = admin.call(Method::POST, &rotation, Some(json!({"overlap_hours": 2}))).await;
    assert_eq!(status, 201, "{replacement}");
    assert_ne!(replacement["secret"].as_str(), Some(secret.as_str()));
    assert_eq!(admin.call(Method::POST, &rotation, Some(json!({}))).await.0, 409, "rotated already");
    let second = replacement["id"].as_str().unwrap().to_owned();
    let (_, listed) = admin.call(Method::GET, &keys, None).await;
    let status_of = |listed: &Value, id: &str| {
        listed.as_array().unwrap().iter().find(|k| k["id"] == id).unwrap()["status"].as_str().unwrap().to_owned()
    };
    assert_eq!(status_of(&listed, &first), "expiring");
    assert_eq!(status_of(&listed, &second), "active");
    assert!(listed.as_array().unwrap().iter().all(|k| k.get("secret").is_none()), "{listed}");
    let revoke = format!("{keys}/{second}");
    assert_eq!(anonymous(&admin, Method::DELETE, &revoke, json!({})).await, 401);
    assert_eq!(admin.call(Method::DELETE, &revoke, None).await.0, 204);
    assert_eq!(admin.call(Method::DELETE, &revoke, None).await.0, 404);
    assert_eq!(admin.call(Method::DELETE, &format!("{keys}/{UNKNOWN}"), None).await.0, 404);
    let (_, listed) = admin.call(Method::GET, &keys, None).await;
    assert_eq!(status_of(&listed, &second), "revoked");
    // The audit entries (and so the key.rotated and key.revoked webhooks) name the application,
    // as key.created does: a key's id alone resolves to nothing once it is revoked.
    for action in ["credential.rotate", "credential.revoke"] {
        let (_, log) = admin.call(Method::GET, &format!("/admin/api/v1/audit?action={action}"), None).await;
        assert_eq!(log["items"][0]["after"]["application_id"].as_str(), Some(app.as_str()), "{action}: {log}");
    }
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn accounts_are_created_with_an_invited_owner_and_users_invited(pool: PgPool) {
    use reqwest::Method;
    use tollgate_core::accounts::{Password, PasswordHasher, teams};
    let admin = admin_app(pool).await;
    let new = json!({"name": "Acme Corp", "owner_email": "owner@acme.test"});
    assert_eq!(anonymous(&admin, Method::POST, "/admin/api/v1/accounts", new.clone()).await, 401);
    for (body, field) in [
        (json!({"name": "Acme", "owner_email": "not an email"}), "owner_email"),
        (json!({"name": "", "owner_email": "owner@acme.test"}), "name"),
        (json!({"name": "two\nlines", "owner_email": "owner@acme.test"}), "name"),
    ] {
        let (status, err) = admin.call(Method::POST, "/admin/api/v1/accounts", Some(body)).await;
        assert_eq!((status, err["field"].as_str()), (422, Some(field)), "{err}");
    }
    // Both wrong: both named at once.
    let both = json!({"name": "x".repeat(201), "owner_email": "not an email"});
    let (status, err) = admin.call(Method::POST, "/admin/api/v1/accounts", Some(both)).await;
    assert_eq!(status, 422, "{err}");
    let fields: Vec<&str> = err["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["name", "owner_email"], "{err}");
    let (status, account) = admin.call(Method::POST, "/admin/api/v1/accounts", Some(new)).await;
    assert_eq!(status, 201, "{account}");
    assert_eq!((account["name"].as_str(), account["members"].as_i64()), (Some("Acme Corp"), Some(0)));
    let id = account["id"].as_str().unwrap().to_owned();
    // The owner gets the team invitation mail; accepting it makes them the owner.
    let mail = |to: &'static str| {
        sqlx::query_scalar::<_, String>("SELECT body_text FROM outbox_emails WHERE to_address = $1")
            .bind(to)
            .fetch_one(&admin.app.pool)
    };
    let body = mail("owner@acme.test").await.unwrap();
    let token = body.split("token=").nth(1).unwrap().split_whitespace().next().unwrap().to_owned();
    let hasher = PasswordHasher::new(1);
    let password = Password::parse("a long enough password 42").unwrap();
    teams::accept(&admin.app.pool, &hasher, &token, None, Some(&password)).await.unwrap();
    let (_, account) = admin.call(Method::GET, &format!("/admin/api/v1/accounts/{id}"), None).await;
    assert_eq!(account["members"], 1);
    let role: String = sqlx::query_scalar(
        "SELECT m.role::text FROM memberships m JOIN users u ON u.id = m.user_id WHERE u.email = 'owner@acme.test'",
    )
    .fetch_one(&admin.app.pool)
    .await
    .unwrap();
    assert_eq!(role, "owner");

    // More users are invited the same way.
    let invitations = format!("/admin/api/v1/accounts/{id}/invitations");
    let invite = json!({"email": "dev@acme.test", "role": "member"});
    assert_eq!(anonymous(&admin, Method::POST, &invitations, invite.clone()).await, 401);
    let unknown = format!("/admin/api/v1/accounts/{UNKNOWN}/invitations");
    assert_eq!(admin.call(Method::POST, &unknown, Some(invite.clone())).await.0, 404);
    let (status, err) = admin.call(Method::POST, &invitations, Some(json!({"email": "nope", "role": "member"}))).await;
    assert_eq!((status, err["field"].as_str()), (422, Some("email")), "{err}");
    let (status, err) =
        admin.call(Method::POST, &invitations, Some(json!({"email": "owner@acme.test", "role": "member"}))).await;
    assert_eq!((status, err["field"].as_str()), (422, Some("email")), "a member already: {err}");
    let (status, sent) = admin.call(Method::POST, &invitations, Some(invite)).await;
    assert_eq!(status, 201, "{sent}");
    assert_eq!((sent["email"].as_str(), sent["role"].as_str()), (Some("dev@acme.test"), Some("member")));
    assert!(mail("dev@acme.test").await.unwrap().contains("/invitations/accept?token="));
    // Inviting the same address again at once: the mail throttle's 429, with when to retry.
    let res = admin
        .app
        .client
        .post(admin.app.url(&invitations))
        .bearer_auth(&admin.token)
        .json(&json!({"email": "dev@acme.test", "role": "member"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=120).contains(&retry), "{retry}");
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"], "rate_limited", "{err}");
}

/// An agent frozen with its stream open (SIGSTOP, a stuck host) stops reporting but stays
/// "connected": the fleet view says it has gone silent.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_connected_agent_that_stops_reporting_is_shown_silent(pool: PgPool) {
    use reqwest::Method;
    let admin = admin_app(pool).await;
    let (status, created) = admin.call(Method::POST, "/admin/api/v1/gateways", Some(json!({"name": "edge-9"}))).await;
    assert_eq!(status, 201, "{created}");
    let path = format!("/admin/api/v1/gateways/{}", created["id"].as_str().unwrap());
    let set = |seconds_ago: i32| {
        sqlx::query(
            "INSERT INTO gateway_instances (gateway_id, agent_id, connected, last_seen_at)
             SELECT id, '00000000-0000-0000-0000-000000000009', true, now() - make_interval(secs => $1) FROM gateways WHERE name = 'edge-9'
             ON CONFLICT (gateway_id, agent_id) DO UPDATE SET connected = true, last_seen_at = EXCLUDED.last_seen_at",
        )
        .bind(f64::from(seconds_ago))
            .execute(&admin.app.pool)
    };
    set(5).await.unwrap();
    let (_, shown) = admin.call(Method::GET, &path, None).await;
    assert_eq!((shown["connected"].as_bool(), shown["silent"].as_bool()), (Some(true), Some(false)), "{shown}");
    set(45).await.unwrap();
    let (_, shown) = admin.call(Method::GET, &path, None).await;
    assert_eq!((shown["connected"].as_bool(), shown["silent"].as_bool()), (Some(true), Some(true)), "{shown}");
    let instance = &shown["instances"][0];
    assert_eq!(instance["agent_id"], "00000000-0000-0000-0000-000000000009", "{shown}");
    assert_eq!((instance["connected"].as_bool(), instance["silent"].as_bool()), (Some(true), Some(true)), "{shown}");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn admin_tokens_are_listed_created_and_revoked_but_not_by_themselves(pool: PgPool) {
    use reqwest::Method;
    let admin = admin_app(pool).await;
    assert_eq!(anonymous(&admin, Method::GET, "/admin/api/v1/admin-tokens", json!({})).await, 401);
    assert_eq!(anonymous(&admin, Method::POST, "/admin/api/v1/admin-tokens", json!({"name": "ci"})).await, 401);
    let (status, err) = admin.call(Method::POST, "/admin/api/v1/admin-tokens", Some(json!({"name": "  "}))).await;
    assert_eq!((status, err["field"].as_str()), (422, Some("name")), "{err}");
    let (status, created) = admin.call(Method::POST, "/admin/api/v1/admin-tokens", Some(json!({"name": "ci"}))).await;
    assert_eq!(status, 201, "{created}");
    let secret = created["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("tg_adm_") && secret.ends_with(created["last4"].as_str().unwrap()), "{created}");
    assert_eq!(created["owner_email"], DEMO_ADMIN_EMAIL);
    let new_id = created["id"].as_str().unwrap().to_owned();
    // The new token works.
    let (status, listed) = admin.call_as(&secret, Method::GET, "/admin/api/v1/admin-tokens", None).await;
    assert_eq!(status, 200);
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(listed.as_array().unwrap().iter().all(|t| t.get("token").is_none()), "{listed}");
    // A token cannot revoke itself; another one can.
    let path = format!("/admin/api/v1/admin-tokens/{new_id}");
    assert_eq!(anonymous(&admin, Method::DELETE, &path, json!({})).await, 401);
    let (status, err) = admin.call_as(&secret, Method::DELETE, &path, None).await;
    assert_eq!((status, err["error"].as_str()), (409, Some("conflict")), "{err}");
    assert_eq!(admin.call(Method::DELETE, &format!("/admin/api/v1/admin-tokens/{UNKNOWN}"), None).await.0, 404);
    assert_eq!(admin.call(Method::DELETE, &path, None).await.0, 204);
    assert_eq!(admin.call_as(&secret, Method::GET, "/admin/api/v1/apis", None).await.0, 401);
    assert_eq!(admin.call(Method::DELETE, &path, None).await.0, 404, "revoked already");
    let (_, listed) = admin.call(Method::GET, "/admin/api/v1/admin-tokens", None).await;
    let revoked = listed.as_array().unwrap().iter().find(|t| t["id"] == new_id.as_str()).unwrap();
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_read_token_only_reads_and_a_token_ends_when_it_expires(pool: PgPool) {
    use reqwest::Method;
    let admin = admin_app(pool).await;
    let tokens = "/admin/api/v1/admin-tokens";
    let (status, err) = admin.call(Method::POST, tokens, Some(json!({"name": "x", "scope": "admin"}))).await;
    assert_eq!(status, 400, "an unknown scope: {err}");
    let (status, err) =
        admin.call(Method::POST, tokens, Some(json!({"name": "x", "expires_at": "2020-01-01T00:00:00Z"}))).await;
    assert_eq!((status, err["field"].as_str()), (422, Some("expires_at")), "{err}");
    let (status, err) = admin.call(Method::POST, tokens, Some(json!({"name": "x", "expires_at": "tomorrow"}))).await;
    assert_eq!((status, err["field"].as_str()), (422, Some("expires_at")), "{err}");
    let body = json!({"name": " ", "expires_at": "2020-01-01T00:00:00Z"});
    let (status, err) = admin.call(Method::POST, tokens, Some(body)).await;
    let fields: Vec<&str> = err["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!((status, fields), (422, vec!["name", "expires_at"]), "both at once: {err}");

    // A read token reads, and is refused anything else before its body is read.
    let (status, read) = admin.call(Method::POST, tokens, Some(json!({"name": "dashboards", "scope": "read"}))).await;
    assert_eq!(status, 201, "{read}");
    assert_eq!(
        (read["scope"].as_str(), read["state"].as_str(), &read["expires_at"]),
        (Some("read"), Some("active"), &Value::Null)
    );
    let read_secret = read["token"].as_str().unwrap().to_owned();
    assert_eq!(admin.call_as(&read_secret, Method::GET, "/admin/api/v1/apis", None).await.0, 200);
    let (status, err) = admin.call_as(&read_secret, Method::POST, tokens, Some(json!({"name": "wider"}))).await;
    assert_eq!((status, err["error"].as_str()), (403, Some("insufficient_scope")), "{err}");
    let head = format!(
        "POST /admin/api/v1/apis HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {read_secret}\r\nContent-Type: application/json\r\nContent-Length: 16777216\r\n\r\n"
    );
    let answer = answer_to_head(&admin.app, &head).await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains(r#"error="insufficient_scope", scope="write""#), "{answer}");
    let id = read["id"].as_str().unwrap();
    let (status, _) = admin.call_as(&read_secret, Method::DELETE, &format!("{tokens}/{UNKNOWN}"), None).await;
    assert_eq!(status, 403);
    let (status, shown) = admin.call(Method::GET, &format!("{tokens}/{id}"), None).await;
    assert_eq!((status, shown["name"].as_str()), (200, Some("dashboards")), "{shown}");

    // A token made with an ending token ends with it at the latest.
    let end = (time::OffsetDateTime::now_utc() + time::Duration::days(2)).replace_nanosecond(0).unwrap();
    let end_text = end.format(&time::format_description::well_known::Rfc3339).unwrap();
    let (status, job) = admin.call(Method::POST, tokens, Some(json!({"name": "job", "expires_at": end_text}))).await;
    assert_eq!(status, 201, "{job}");
    let job_secret = job["token"].as_str().unwrap().to_owned();
    let (status, child) = admin.call_as(&job_secret, Method::POST, tokens, Some(json!({"name": "child"}))).await;
    assert_eq!((status, child["expires_at"].as_str()), (201, Some(end_text.as_str())), "{child}");
    let later = (end + time::Duration::days(1)).format(&time::format_description::well_known::Rfc3339).unwrap();
    let (status, err) =
        admin.call_as(&job_secret, Method::POST, tokens, Some(json!({"name": "longer", "expires_at": later}))).await;
    assert_eq!((status, err["field"].as_str()), (422, Some("expires_at")), "{err}");
    assert!(err["message"].as_str().unwrap().contains("cannot outlive"), "{err}");

    // What a token does is audited as that token, not only as its admin.
    let (_, audit) = admin.call(Method::GET, "/admin/api/v1/audit?action=admin_token.create", None).await;
    let by_job = audit["items"].as_array().unwrap().iter().find(|e| e["after"]["name"] == "child").unwrap();
    assert_eq!(by_job["actor"], DEMO_ADMIN_EMAIL, "{by_job}");
    assert!(by_job["via"].as_str().unwrap().starts_with(r#"API token "job" (tg_adm_"#), "{by_job}");

    // Once its end passes, the token is refused with a message that says so.
    sqlx::query("UPDATE admin_tokens SET created_at = now() - interval '2 days', expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(uuid::Uuid::parse_str(job["id"].as_str().unwrap()).unwrap())
        .execute(&admin.app.pool)
        .await
        .unwrap();
    let res = admin.app.client.get(admin.app.url("/admin/api/v1/apis")).bearer_auth(&job_secret).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let challenge = res.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.contains(r#"error="invalid_token""#), "{challenge}");
    let body: Value = res.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("expired at"), "{body}");
    let (_, listed) = admin.call(Method::GET, tokens, None).await;
    let states: Vec<(&str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["state"].as_str().unwrap()))
        .collect();
    assert!(states.contains(&("job", "expired")) && states.contains(&("dashboards", "active")), "{states:?}");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_metric_is_deleted_with_its_rules_but_hits_stays_and_a_plans_limit_keeps_it(pool: PgPool) {
    use reqwest::Method;
    let admin = admin_app(pool).await;
    let (_, apis) = admin.call(Method::GET, "/admin/api/v1/apis", None).await;
    let api = apis["items"][0]["id"].as_str().unwrap().to_owned();
    let metrics = format!("/admin/api/v1/apis/{api}/metrics");
    let (status, listed) =
        admin.call(Method::POST, &metrics, Some(json!({"system_name": "exports", "parent": "hits"}))).await;
    assert_eq!(status, 201, "{listed}");
    let id_of = |listed: &Value, name: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["system_name"] == name)
            .map(|m| m["id"].as_str().unwrap().to_owned())
    };
    let exports = id_of(&listed, "exports").unwrap();
    let hits = id_of(&listed, "hits").unwrap();
    let rule = json!({"http_method": "GET", "pattern": "/exports", "metric": "exports"});
    assert_eq!(admin.call(Method::POST, &format!("/admin/api/v1/apis/{api}/mapping-rules"), Some(rule)).await.0, 201);
    let path = format!("{metrics}/{exports}");
    // A plan limiting one of its methods keeps it: deleting it would change the plan unseen
    // (and agents, told of the API only, refused every config after it).
    let (status, listed) =
        admin.call(Method::POST, &metrics, Some(json!({"system_name": "exports.csv", "parent": "exports"}))).await;
    assert_eq!(status, 201, "{listed}");
    let plan = json!({"system_name": "capped", "name": "Capped", "currency": "EUR", "limits": [{"metric": "exports.csv", "period": "day", "max": 5}]});
    let (status, capped) = admin.call(Method::POST, &format!("/admin/api/v1/apis/{api}/plans"), Some(plan)).await;
    assert_eq!(status, 201, "{capped}");
    let (status, refused) = admin.call(Method::DELETE, &path, None).await;
    assert_eq!(status, 409, "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("capped"), "names the plan: {refused}");
    let (_, plan) =
        admin.call(Method::GET, &format!("/admin/api/v1/plans/{}", capped["id"].as_str().unwrap()), None).await;
    assert_eq!(plan["limits"].as_array().unwrap().len(), 1, "the limit is still there: {plan}");
    let plan_path = format!("/admin/api/v1/plans/{}", capped["id"].as_str().unwrap());
    assert_eq!(admin.call(Method::DELETE, &plan_path, None).await.0, 204);
    assert_eq!(anonymous(&admin, Method::DELETE, &path, json!({})).await, 401);
    assert_eq!(admin.call(Method::DELETE, &format!("{metrics}/{UNKNOWN}"), None).await.0, 404);
    let (status, err) = admin.call(Method::DELETE, &format!("{metrics}/{hits}"), None).await;
    assert_eq!(status, 409, "hits stays: {err}");
    assert!(err["message"].as_str().unwrap().starts_with("hits counts every call"), "{err}");
    assert_eq!(admin.call(Method::DELETE, &path, None).await.0, 204);
    assert_eq!(admin.call(Method::DELETE, &path, None).await.0, 404);
    let (_, listed) = admin.call(Method::GET, &metrics, None).await;
    assert!(id_of(&listed, "exports").is_none() && id_of(&listed, "hits").is_some(), "{listed}");
    assert!(id_of(&listed, "exports.csv").is_none(), "its methods go with it: {listed}");
    let (_, rules) = admin.call(Method::GET, &format!("/admin/api/v1/apis/{api}/mapping-rules"), None).await;
    assert!(rules.as_array().unwrap().iter().all(|r| r["metric"] != "exports"), "{rules}");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_body_or_query_string_that_does_not_parse_names_its_field(pool: PgPool) {
    use reqwest::Method;
    let admin = admin_app(pool).await;
    let unparsed = |(status, body): (u16, Value), field: &str| {
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"], "bad_request", "{body}");
        assert_eq!(body["field"], field, "{body}");
        assert!(body["message"].as_str().unwrap().contains(&format!("`{field}`")), "{body}");
    };
    unparsed(admin.call(Method::GET, "/admin/api/v1/apis?per_page=abc", None).await, "per_page");
    unparsed(admin.call(Method::GET, "/admin/api/v1/applications?after_id=garbage", None).await, "after_id");
    unparsed(admin.call(Method::GET, "/admin/api/v1/invoices?state=bogus", None).await, "state");
    // A misspelt filter is refused, not ignored: ignored, it would widen the list to everything.
    unparsed(admin.call(Method::GET, "/admin/api/v1/applications?stat=live", None).await, "stat");
    unparsed(admin.call(Method::GET, "/admin/api/v1/accounts?state=suspended", None).await, "state");
    unparsed(admin.call(Method::POST, "/admin/api/v1/gateways", Some(json!({"name": 5}))).await, "name");

    let (_, apis) = admin.call(Method::GET, "/admin/api/v1/apis", None).await;
    let plans = format!("/admin/api/v1/apis/{}/plans", apis["items"][0]["id"].as_str().unwrap());
    let plan = json!({"name": "Huge", "limits": [{"metric": "hits", "period": "minute", "max": 1e20}]});
    unparsed(admin.call(Method::POST, &plans, Some(plan)).await, "limits[0].max");
    // A missing field is named too, at the top and inside a list.
    unparsed(admin.call(Method::POST, "/admin/api/v1/accounts", Some(json!({"name": "x"}))).await, "owner_email");
    let plan = json!({"system_name": "m", "name": "M", "currency": "EUR", "limits": [{"period": "minute", "max": 1}]});
    unparsed(admin.call(Method::POST, &plans, Some(plan)).await, "limits[0].metric");

    // A field with a NUL is named the same way (422: it parses, but cannot be stored).
    let (status, body) = admin.call(Method::POST, "/admin/api/v1/gateways", Some(json!({"name": "a\u{0}b"}))).await;
    assert_eq!((status, &body["field"]), (422, &json!("name")), "{body}");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_201_says_where_the_new_resource_is_read(pool: PgPool) {
    let admin = admin_app(pool).await;
    let (_, apis) = admin.call(reqwest::Method::GET, "/admin/api/v1/apis", None).await;
    let api = apis["items"][0]["id"].as_str().unwrap().to_owned();
    let post = |path: String, body: Value| {
        admin.app.client.post(admin.app.url(&path)).bearer_auth(&admin.token).json(&body).send()
    };
    let creates = [
        (
            format!("/admin/api/v1/apis/{api}/plans"),
            json!({"system_name": "located", "name": "Located", "currency": "JPY", "monthly_fee": "5000"}),
        ),
        ("/admin/api/v1/gateways".to_owned(), json!({"name": "located-edge"})),
    ];
    for (path, body) in creates {
        let res = post(path.clone(), body).await.unwrap();
        assert_eq!(res.status(), 201, "{path}");
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        let created: Value = res.json().await.unwrap();
        let id = created["id"].as_str().or(created["gateway"]["id"].as_str()).unwrap().to_owned();
        assert!(location.ends_with(&id), "{location} names {id}");
        let (status, read) = admin.call(reqwest::Method::GET, &location, None).await;
        assert_eq!((status, read["id"].as_str()), (200, Some(id.as_str())), "{location}");
        if read["currency"] == "JPY" {
            assert_eq!(read["monthly_fee"], "5000", "a yen has no minor unit: {read}");
        }
    }
}

/// An API that serves traffic with no upstream and no mock made every gateway refuse the
/// whole configuration, so every later change (a revoked key) stopped reaching them. Neither
/// publishing such an API nor emptying a serving API's upstreams is allowed.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn no_api_serves_traffic_without_an_upstream(pool: PgPool) {
    use reqwest::Method;
    let admin = admin_app(pool).await;
    let spec = "openapi: 3.0.3\ninfo: {title: Bare, version: '1'}\npaths:\n  /x:\n    get: {responses: {'200': {description: ok}}}\n";
    let (status, api) = admin.call(Method::POST, "/admin/api/v1/apis", Some(json!({"spec": spec}))).await;
    assert_eq!(status, 201, "{api}");
    let id = api["id"].as_str().unwrap().to_owned();
    let lifecycle = format!("/admin/api/v1/apis/{id}/lifecycle");
    let (status, err) = admin.call(Method::POST, &lifecycle, Some(json!({"state": "published"}))).await;
    assert_eq!(status, 409, "{err}");
    assert!(err["message"].as_str().unwrap().contains("no upstream"), "{err}");
    let (_, after) = admin.call(Method::GET, &format!("/admin/api/v1/apis/{id}"), None).await;
    assert_eq!(after["state"], "draft", "nothing changed");

    let path = format!("/admin/api/v1/apis/{id}");
    let patch = |urls: Value| admin.call(Method::PATCH, &path, Some(json!({"upstream_urls": urls})));
    assert_eq!(patch(json!(["http://127.0.0.1:9"])).await.0, 200);
    assert_eq!(admin.call(Method::POST, &lifecycle, Some(json!({"state": "published"}))).await.0, 200);
    let (status, err) = patch(json!([])).await;
    assert_eq!((status, err["field"].as_str()), (422, Some("upstream_urls")), "{err}");
    let (_, after) = admin.call(Method::GET, &format!("/admin/api/v1/apis/{id}"), None).await;
    assert_eq!(after["upstream_urls"], json!(["http://127.0.0.1:9"]), "{after}");
    // Every problem of one change at once.
    let body = json!({"name": " ", "upstream_urls": ["ftp://x", "http://ok.example", "nope"], "key_name": "a b"});
    let (status, err) = admin.call(Method::PATCH, &path, Some(body)).await;
    assert_eq!(status, 422, "{err}");
    let fields: Vec<&str> = err["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["name", "upstream_urls[0]", "upstream_urls[2]", "key_name"], "{err}");
}

/// A retired API serves nothing, yet its applications went on paying their plans' fees to the
/// end of every month. Retiring ends their billing (suspending or resuming one afterwards does
/// not start it again) and mails their owners.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn retiring_an_api_ends_its_applications_billing_and_tells_their_owners(pool: PgPool) {
    use reqwest::Method;
    let admin = admin_app(pool).await;
    // The demo developer's application on the Weather API's basic plan, live at once.
    let (account, plan) = admin.demo_account_and_basic_plan().await;
    let app = tollgate_core::applications::create(
        &admin.app.pool,
        tollgate_core::accounts::AccountId(account.parse().unwrap()),
        &tollgate_core::applications::NewApplication {
            plan_id: tollgate_core::plans::PlanId(plan.as_str().unwrap().parse().unwrap()),
            name: "Forecaster".into(),
            description: String::new(),
        },
        &Actor::system("test"),
    )
    .await
    .unwrap();
    let api: String = sqlx::query_scalar("SELECT api_id::text FROM applications WHERE id = $1")
        .bind(app.id.0)
        .fetch_one(&admin.app.pool)
        .await
        .unwrap();
    let open_segments = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM subscription_segments s JOIN applications a ON a.id = s.application_id
             WHERE a.api_id = $1::uuid AND s.ended_at IS NULL",
        )
        .bind(&api)
        .fetch_one(&admin.app.pool)
        .await
        .unwrap()
    };
    assert_eq!(open_segments().await, 1, "the application is billed");
    let lifecycle = format!("/admin/api/v1/apis/{api}/lifecycle");
    let sunset = (time::OffsetDateTime::now_utc() + time::Duration::days(30))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    assert_eq!(
        admin.call(Method::POST, &lifecycle, Some(json!({"state": "deprecated", "sunset_at": sunset}))).await.0,
        200
    );
    assert_eq!(admin.call(Method::POST, &lifecycle, Some(json!({"state": "retired"}))).await.0, 200);
    assert_eq!(open_segments().await, 0, "billing ended with the retirement");
    sqlx::query("UPDATE applications SET state = 'suspended' WHERE api_id = $1::uuid AND state = 'live'")
        .bind(&api)
        .execute(&admin.app.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE applications SET state = 'live' WHERE api_id = $1::uuid AND state = 'suspended'")
        .bind(&api)
        .execute(&admin.app.pool)
        .await
        .unwrap();
    assert_eq!(open_segments().await, 0, "a resumed application of a retired API is not billed again");
    let (subject, body): (String, String) = sqlx::query_as(
        "SELECT subject, body_text FROM outbox_emails WHERE to_address = 'dev@example.com' AND subject LIKE '%retired'",
    )
    .fetch_one(&admin.app.pool)
    .await
    .unwrap();
    assert!(subject.contains("is retired") && body.contains("fees stop today"), "{subject}: {body}");
}

/// An API imported by mistake can be deleted, with its plans; not while an application uses it,
/// and not while past subscribers of one of its plans owe fees no invoice has charged yet (the
/// plans' subscription history goes with the API).
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn an_api_nobody_uses_or_owes_on_is_deleted_with_its_plans(pool: PgPool) {
    use reqwest::Method;
    let admin = admin_app(pool).await;
    let (account, _) = admin.demo_account_and_basic_plan().await;
    let spec = "openapi: 3.0.3\ninfo: {title: Scratch, version: '1'}\npaths:\n  /x:\n    get: {responses: {'200': {description: ok}}}\n";
    let (status, api) = admin.call(Method::POST, "/admin/api/v1/apis", Some(json!({"spec": spec}))).await;
    assert_eq!(status, 201, "{api}");
    let id: uuid::Uuid = api["id"].as_str().unwrap().parse().unwrap();
    let plan = tollgate_core::plans::NewPlan {
        monthly_fee: "30".parse().unwrap(),
        currency: "EUR".into(),
        ..crate::helpers::free_plan("paid", "Paid")
    };
    let plan = tollgate_core::plans::create_plan(
        &admin.app.pool,
        tollgate_core::apis::ApiId(id),
        &plan,
        &Actor::system("test"),
    )
    .await
    .unwrap();
    let app = uuid::Uuid::now_v7();
    sqlx::query("INSERT INTO applications (id, account_id, api_id, plan_id, name, state) VALUES ($1, $2::uuid, $3, $4, 'Trial', 'live')")
        .bind(app)
        .bind(&account)
        .bind(id)
        .bind(plan.0)
        .execute(&admin.app.pool)
        .await
        .unwrap();
    let path = format!("/admin/api/v1/apis/{id}");
    let (status, err) = admin.call(Method::DELETE, &path, None).await;
    assert_eq!(status, 409, "{err}");
    assert!(err["message"].as_str().unwrap().starts_with("1 application(s) use the API"), "{err}");

    // Ten days on the plan, then the application was deleted: about 10 EUR is owed.
    sqlx::query("DELETE FROM applications WHERE id = $1").bind(app).execute(&admin.app.pool).await.unwrap();
    sqlx::query(
        "UPDATE subscription_segments SET started_at = ended_at - interval '10 days' WHERE application_id = $1",
    )
    .bind(app)
    .execute(&admin.app.pool)
    .await
    .unwrap();
    let (status, err) = admin.call(Method::DELETE, &path, None).await;
    assert_eq!(status, 409, "{err}");
    let message = err["message"].as_str().unwrap();
    assert!(message.starts_with("1 account(s) owe ") && message.contains(" EUR on its plan Paid"), "{err}");
    assert_eq!(admin.call(Method::GET, &path, None).await.0, 200, "nothing was deleted");

    // History too old for any run to bill again does not hold the API.
    sqlx::query(
        "UPDATE subscription_segments SET started_at = '2020-01-01T00:00:00Z', ended_at = '2020-01-11T00:00:00Z' WHERE application_id = $1",
    )
    .bind(app)
    .execute(&admin.app.pool)
    .await
    .unwrap();
    // A rejected request for a key does not hold the API either, and goes with it.
    sqlx::query("INSERT INTO applications (id, account_id, api_id, plan_id, name, state) VALUES ($1, $2::uuid, $3, $4, 'Refused', 'rejected')")
        .bind(uuid::Uuid::now_v7())
        .bind(&account)
        .bind(id)
        .bind(plan.0)
        .execute(&admin.app.pool)
        .await
        .unwrap();
    let (_, shown) = admin.call(Method::GET, &path, None).await;
    assert_eq!(shown["subscribers"], 0, "{shown}");
    let (_, plan_shown) = admin.call(Method::GET, &format!("/admin/api/v1/plans/{}", plan.0), None).await;
    assert_eq!(plan_shown["applications"], 0, "{plan_shown}");
    let (status, body) = admin.call(Method::DELETE, &path, None).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(admin.call(Method::GET, &path, None).await.0, 404);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM applications WHERE api_id = $1")
        .bind(id)
        .fetch_one(&admin.app.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
    let plans: i64 = sqlx::query_scalar("SELECT count(*) FROM plans WHERE api_id = $1")
        .bind(id)
        .fetch_one(&admin.app.pool)
        .await
        .unwrap();
    assert_eq!(plans, 0);
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'api.delete' AND entity_id = $1")
            .bind(id)
            .fetch_one(&admin.app.pool)
            .await
            .unwrap();
    assert_eq!(audited, 1);
    assert_eq!(admin.call(Method::DELETE, &path, None).await.0, 404, "a second delete finds nothing");
}

/// Menus list APIs and plans by name, so a name (ignoring case and spaces) is taken once: by
/// one API, and by one plan of an API. A repeat is 422 naming `name`.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_name_that_is_taken_is_refused_naming_the_field(pool: PgPool) {
    use reqwest::Method;
    let admin = admin_app(pool).await;
    let spec = "openapi: 3.0.3\ninfo: {title: Scratch, version: '1'}\npaths:\n  /x:\n    get: {responses: {'200': {description: ok}}}\n";
    let (status, first) = admin.call(Method::POST, "/admin/api/v1/apis", Some(json!({"spec": spec}))).await;
    assert_eq!(status, 201, "{first}");
    let again = json!({"spec": spec, "slug": "scratch-2", "base_path": "/scratch-2"});
    let (status, err) = admin.call(Method::POST, "/admin/api/v1/apis", Some(again.clone())).await;
    assert_eq!((status, err["field"].as_str()), (422, Some("name")), "{err}");
    assert!(err["message"].as_str().unwrap().contains("already called Scratch"), "{err}");
    let mut renamed = again;
    renamed["name"] = json!("Scratch two");
    let (status, second) = admin.call(Method::POST, "/admin/api/v1/apis", Some(renamed)).await;
    assert_eq!(status, 201, "{second}");
    let second = second["id"].as_str().unwrap().to_owned();
    let path = format!("/admin/api/v1/apis/{second}");
    let (status, err) = admin.call(Method::PATCH, &path, Some(json!({"name": " SCRATCH "}))).await;
    assert_eq!((status, err["field"].as_str()), (422, Some("name")), "{err}");
    assert_eq!(admin.call(Method::GET, &path, None).await.1["name"], "Scratch two");

    let plans = format!("/admin/api/v1/apis/{second}/plans");
    let plan = |system_name: &str, name: &str| json!({"system_name": system_name, "name": name, "currency": "EUR"});
    assert_eq!(admin.call(Method::POST, &plans, Some(plan("gold", "Gold"))).await.0, 201);
    let (status, err) = admin.call(Method::POST, &plans, Some(plan("gold-eur", "gold"))).await;
    assert_eq!((status, err["field"].as_str()), (422, Some("name")), "{err}");
    let (status, silver) = admin.call(Method::POST, &plans, Some(plan("silver", "Silver"))).await;
    assert_eq!(status, 201);
    let (status, err) = admin
        .call(
            Method::PUT,
            &format!("/admin/api/v1/plans/{}", silver["id"].as_str().unwrap()),
            Some(plan("silver", "Gold")),
        )
        .await;
    assert_eq!((status, err["field"].as_str()), (422, Some("name")), "{err}");
    // Another API may have its own Gold.
    let first_plans = format!("/admin/api/v1/apis/{}/plans", first["id"].as_str().unwrap());
    assert_eq!(admin.call(Method::POST, &first_plans, Some(plan("gold", "Gold"))).await.0, 201);
}

/// `PATCH` changes the fields sent and keeps the rest; `PUT` replaces the whole plan.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_plan_is_changed_in_part_with_patch_and_the_rest_is_kept(pool: PgPool) {
    use reqwest::Method;
    let admin = admin_app(pool).await;
    let (_, plan) = admin.demo_account_and_basic_plan().await;
    let path = format!("/admin/api/v1/plans/{}", plan.as_str().unwrap());
    let (_, before) = admin.call(Method::GET, &path, None).await;
    assert!(!before["limits"].as_array().unwrap().is_empty(), "the seeded plan has limits: {before}");

    // Hide it and change its fee (sent as a number): nothing else moves.
    let (status, after) = admin.call(Method::PATCH, &path, Some(json!({"published": false, "monthly_fee": 59}))).await;
    assert_eq!(status, 200, "{after}");
    assert_eq!((after["published"].as_bool(), after["monthly_fee"].as_str()), (Some(false), Some("59.00")));
    for kept in ["system_name", "name", "description", "currency", "time_zone", "limits", "pricing", "setup_fee"] {
        assert_eq!(after[kept], before[kept], "{kept}");
    }
    // `null` and an empty object change nothing; a list sent replaces the whole list.
    let (status, same) = admin.call(Method::PATCH, &path, Some(json!({"name": null}))).await;
    assert_eq!((status, &same["name"]), (200, &before["name"]));
    assert_eq!(admin.call(Method::PATCH, &path, Some(json!({}))).await.1, same);
    let limits = json!([{"metric": "hits", "period": "hour", "max": 7}]);
    let (_, replaced) = admin.call(Method::PATCH, &path, Some(json!({"limits": limits}))).await;
    assert_eq!(replaced["limits"], limits);
    assert_eq!(replaced["pricing"], before["pricing"]);

    // The result is checked as a whole plan, every problem named; nothing is saved.
    let (status, err) = admin.call(Method::PATCH, &path, Some(json!({"name": "", "trial_days": -1}))).await;
    assert_eq!(status, 422, "{err}");
    let fields: Vec<&str> = err["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["name", "trial_days"], "{err}");
    let (status, err) = admin
        .call(Method::PATCH, &path, Some(json!({"limits": [{"metric": "nope", "period": "day", "max": 1}]})))
        .await;
    assert_eq!((status, err["field"].as_str()), (422, Some("limits[0].metric")), "{err}");
    assert_eq!(admin.call(Method::GET, &path, None).await.1, replaced, "refused changes saved nothing");
    // What is not a field of a plan, or not an object, is refused; so is a fee of null.
    for (body, field) in
        [(json!({"applications": 3}), None), (json!({"monthly_fee": null}), Some("monthly_fee")), (json!([]), None)]
    {
        let (status, err) = admin.call(Method::PATCH, &path, Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {err}");
        if let Some(field) = field {
            assert_eq!(err["field"].as_str(), Some(field), "{err}");
        }
    }
    let missing = "/admin/api/v1/plans/0193a000-0000-7000-8000-000000000000";
    assert_eq!(admin.call(Method::PATCH, missing, Some(json!({"published": true}))).await.0, 404);
    // The change is audited as a plan change.
    let (_, audit) = admin.call(Method::GET, "/admin/api/v1/audit?per_page=5", None).await;
    assert!(
        audit["items"].as_array().unwrap().iter().any(|e| e["action"].as_str().is_some_and(|a| a.starts_with("plan."))),
        "{audit}"
    );
}

/// A rejected application has no keys to issue (gateways never load them) and no plan to
/// move; moving an application to the plan it is on is a mistake, not a change. Each was
/// done before: a key that could never work, a rejected application billed on a new plan,
/// and a no-op audited as a plan change.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_rejected_application_gets_no_key_and_no_plan_move(pool: PgPool) {
    use reqwest::Method;
    let admin = admin_app(pool).await;
    let pool = &admin.app.pool;
    let (account, basic) = admin.demo_account_and_basic_plan().await;
    let basic: uuid::Uuid = basic.as_str().unwrap().parse().unwrap();
    let other: uuid::Uuid = sqlx::query_scalar(
        "SELECT id FROM plans WHERE api_id = (SELECT api_id FROM plans WHERE id = $1) AND id <> $1 LIMIT 1",
    )
    .bind(basic)
    .fetch_one(pool)
    .await
    .unwrap();
    let rejected = uuid::Uuid::now_v7();
    sqlx::query("INSERT INTO applications (id, account_id, api_id, plan_id, name, state) SELECT $1, $2::uuid, api_id, id, 'Refused', 'rejected' FROM plans WHERE id = $3")
        .bind(rejected)
        .bind(&account)
        .bind(basic)
        .execute(pool)
        .await
        .unwrap();
    let audited =
        || async { sqlx::query_scalar::<_, i64>("SELECT count(*) FROM audit_log").fetch_one(pool).await.unwrap() };
    let before = audited().await;
    let (status, body) = admin.call(Method::POST, &format!("/admin/api/v1/applications/{rejected}/keys"), None).await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = admin
        .call(Method::PUT, &format!("/admin/api/v1/applications/{rejected}/plan"), Some(json!({"plan_id": other})))
        .await;
    assert_eq!((status, body["message"].as_str()), (409, Some("a rejected application cannot change plan")), "{body}");
    assert_eq!(audited().await, before, "nothing was done, so nothing is audited");

    let new = json!({"plan_id": basic, "name": "Live one"});
    let (status, app) =
        admin.call(Method::POST, &format!("/admin/api/v1/accounts/{account}/applications"), Some(new)).await;
    assert_eq!(status, 201, "{app}");
    let plan = format!("/admin/api/v1/applications/{}/plan", app["id"].as_str().unwrap());
    let (status, body) = admin.call(Method::PUT, &plan, Some(json!({"plan_id": basic}))).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("plan_id")), "{body}");
    assert_eq!(admin.call(Method::PUT, &plan, Some(json!({"plan_id": other}))).await.0, 200);
}

/// A fee saved finer than its currency's minor unit (before fees were checked in it) is
/// answered as stored, and a `PATCH` of another field keeps it: the answer rounded it to
/// 10.00, and the rounded value was saved back as if the client had sent it.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_patch_keeps_a_fee_finer_than_the_minor_unit_as_it_was(pool: PgPool) {
    use reqwest::Method;
    let admin = admin_app(pool).await;
    let (_, plan) = admin.demo_account_and_basic_plan().await;
    let id: uuid::Uuid = plan.as_str().unwrap().parse().unwrap();
    sqlx::query("UPDATE plans SET monthly_fee = 9.999, currency = 'USD' WHERE id = $1")
        .bind(id)
        .execute(&admin.app.pool)
        .await
        .unwrap();
    let path = format!("/admin/api/v1/plans/{id}");
    let (_, before) = admin.call(Method::GET, &path, None).await;
    assert_eq!(before["monthly_fee"], "9.999");
    let (status, after) = admin.call(Method::PATCH, &path, Some(json!({"published": false}))).await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["monthly_fee"], "9.999");
    let stored: rust_decimal::Decimal = sqlx::query_scalar("SELECT monthly_fee FROM plans WHERE id = $1")
        .bind(id)
        .fetch_one(&admin.app.pool)
        .await
        .unwrap();
    assert_eq!(stored.normalize().to_string(), "9.999");
}
