//! Mock mode end to end: the real Swagger Petstore 3.0 document imported through the admin
//! API, put in mock mode with no upstream at all, answers every operation through a real
//! agent with a body that validates against the operation's response schema; `Prefer` and
//! `Accept` pick the status and media type; mocked calls are counted as usage.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;
use tollgate_core::applications::{self, NewApplication};
use tollgate_core::audit::Actor;
use tollgate_core::credentials;

use crate::gateway::{World, wait_until};

const PETSTORE: &str = include_str!("../fixtures/petstore-openapi-3.0.json");

/// OpenAPI 3.0 schema → JSON Schema: `nullable: true` adds `null` to the type (the one
/// difference that matters for these documents; `example` and `xml` are annotations).
fn json_schema(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out: serde_json::Map<String, Value> =
                map.iter().map(|(k, v)| (k.clone(), json_schema(v))).collect();
            if out.remove("nullable") == Some(Value::Bool(true))
                && let Some(Value::String(kind)) = out.get("type").cloned()
            {
                out.insert("type".into(), json!([kind, "null"]));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(json_schema).collect()),
        other => other.clone(),
    }
}

/// The status a request without `Prefer` gets: the lowest 2xx, else `default` (200), else
/// the lowest status given.
fn default_status(responses: &serde_json::Map<String, Value>) -> (u16, &Value) {
    let mut codes: Vec<(&String, &Value)> = responses.iter().filter(|(k, _)| k.parse::<u16>().is_ok()).collect();
    codes.sort_by_key(|(k, _)| k.parse::<u16>().unwrap());
    if let Some((code, response)) = codes.iter().find(|(k, _)| k.starts_with('2')) {
        return (code.parse().unwrap(), response);
    }
    if let Some(response) = responses.get("default") {
        return (200, response);
    }
    let (code, response) = codes[0];
    (code.parse().unwrap(), response)
}

fn concrete(path: &str) -> String {
    path.replace("{petId}", "10").replace("{orderId}", "10").replace("{username}", "theUser")
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_petstore_in_mock_mode_answers_every_operation_by_its_schema(pool: PgPool) {
    let w = World::new(pool.clone()).await;
    let token = crate::helpers::demo_admin_token(&pool).await;
    let admin = |method: &str, path: &str, body: Value| {
        let request =
            w.app.client.request(method.parse().unwrap(), w.app.url(path)).bearer_auth(token.as_str()).json(&body);
        async move {
            let res = request.send().await.unwrap();
            let status = res.status().as_u16();
            let body: Value = res.json().await.unwrap();
            (status, body)
        }
    };
    // No upstream: the backend does not exist yet.
    let (status, api) = admin("POST", "/admin/api/v1/apis", json!({"spec": PETSTORE, "slug": "petstore"})).await;
    assert_eq!(status, 201, "{api}");
    let api_id = api["id"].as_str().unwrap().to_owned();
    let mocks_url = format!("/admin/api/v1/apis/{api_id}/mocks");
    let (status, mode) = admin("PATCH", &mocks_url, json!({"whole_api": true})).await;
    assert_eq!(status, 200, "{mode}");
    assert_eq!(mode["whole_api"], true);
    let operations = mode["operations"].as_array().unwrap();
    assert_eq!(operations.len(), 19);
    assert!(operations.iter().all(|o| o["mocked"] == true));
    // Where answers come from: the Petstore writes property examples but no whole example.
    let source = |id: &str| operations.iter().find(|o| o["system_name"] == id).unwrap()["source"].clone();
    assert_eq!(source("getPetById"), "generated");
    assert_eq!(source("deletePet"), "empty");
    // Unknown operations are refused by name.
    let (status, body) =
        admin("PATCH", &mocks_url, json!({"operations": [{"metric_id": uuid::Uuid::nil(), "mocked": true}]})).await;
    assert_eq!((status, body["error"].as_str()), (422, Some("invalid_input")), "{body}");

    let plan = json!({"system_name": "open", "name": "Open", "currency": "EUR", "published": true, "limits": []});
    let (status, plan) = admin("POST", &format!("/admin/api/v1/apis/{api_id}/plans"), plan).await;
    assert_eq!(status, 201, "{plan}");
    let (status, _) =
        admin("POST", &format!("/admin/api/v1/apis/{api_id}/lifecycle"), json!({"state": "published"})).await;
    assert_eq!(status, 200);
    let actor = Actor::system("test");
    let plan_id = tollgate_core::plans::PlanId(plan["id"].as_str().unwrap().parse().unwrap());
    let new = NewApplication { plan_id, name: "Pets".into(), description: String::new() };
    let app = applications::create(&pool, w.account, &new, &actor).await.unwrap();
    let key = credentials::issue(&pool, w.account, app.id, &actor).await.unwrap().secret.as_str().to_owned();
    let agent = w.agent("mocks").await;
    let proxy = agent.proxy_addr();
    let client = crate::helpers::plain_client();
    let send = |method: &str, path: &str, headers: &[(&str, &str)]| {
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut request =
            client.request(method.parse().unwrap(), format!("http://{proxy}/petstore{path}{separator}user_key={key}"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        async move { request.send().await.unwrap() }
    };

    let doc: Value = serde_json::from_str(PETSTORE).unwrap();
    let components = json_schema(&doc["components"]);
    let mut calls = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let (expected, response) = default_status(operation["responses"].as_object().unwrap());
            let answer = send(&method.to_uppercase(), &concrete(path), &[]).await;
            calls += 1;
            let what = format!("{method} {path}");
            assert_eq!(answer.status().as_u16(), expected, "{what}");
            assert_eq!(answer.headers()["tollgate-mock"], "true", "{what}");
            let content_type = answer.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
            let body = answer.text().await.unwrap();
            let Some(content) = response.get("content").and_then(Value::as_object) else {
                assert_eq!(body, "", "{what}: a response without content has no body");
                continue;
            };
            // JSON first whenever the response offers it.
            let media = content_type.expect("a content type");
            assert!(content.contains_key(&media), "{what}: {media}");
            assert_eq!(media == "application/json", content.contains_key("application/json"), "{what}");
            let mut schema = json_schema(&content[&media]["schema"]);
            schema.as_object_mut().unwrap().insert("components".into(), components.clone());
            let validator = jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{what}: schema: {e}"));
            let value: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {body}"));
            let errors: Vec<String> = validator.iter_errors(&value).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{what}: {body} does not validate: {errors:?}");
        }
    }
    assert_eq!(calls, 19);

    // `Prefer: code=404`: the document's 404 (the Petstore gives it no body).
    let answer = send("GET", "/pet/10", &[("prefer", "code=404")]).await;
    assert_eq!(answer.status(), 404);
    assert_eq!(answer.headers()["tollgate-mock"], "true");
    assert_eq!(answer.text().await.unwrap(), "");
    // A status without its own response: the `default` response (here the Error schema).
    let answer = send("GET", "/pet/10", &[("prefer", "code=418")]).await;
    assert_eq!(answer.status(), 418);
    let body: Value = answer.json().await.unwrap();
    let schema = json!({"$ref": "#/components/schemas/Error", "components": components});
    assert!(jsonschema::validator_for(&schema).unwrap().is_valid(&body), "{body}");
    // `Accept` picks the media type: XML rendered from the schema's `xml` names.
    let answer = send("GET", "/pet/10", &[("accept", "application/xml")]).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "application/xml");
    let xml = answer.text().await.unwrap();
    assert!(xml.starts_with("<?xml") && xml.contains("<pet>") && xml.contains("<name>doggie</name>"), "{xml}");
    let answer = send("GET", "/pet/10", &[("accept", "image/png")]).await;
    assert_eq!(answer.status(), 406);
    calls += 4;

    // Counted as usage, one hit per call, 404 and 406 answers included.
    let hits: uuid::Uuid = sqlx::query_scalar(
        "SELECT m.id FROM metrics m JOIN api_products p ON p.id = m.api_id WHERE p.slug = 'petstore' AND m.system_name = 'hits'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let pool_for_wait = pool.clone();
    wait_until(Duration::from_secs(20), || {
        let pool = pool_for_wait.clone();
        async move { tollgate_core::usage::total_hits(&pool, app.id.0, hits).await.unwrap() >= calls }
    })
    .await;
    agent.shutdown().await.unwrap();
    assert_eq!(tollgate_core::usage::total_hits(&pool, app.id.0, hits).await.unwrap(), calls);

    // Out of mock mode, a published API without an upstream would make gateways refuse the
    // whole config: refused until it has one.
    let (status, body) = admin("PATCH", &mocks_url, json!({"whole_api": false})).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("conflict")), "{body}");
    let (status, _) =
        admin("PATCH", &format!("/admin/api/v1/apis/{api_id}"), json!({"upstream_urls": ["http://127.0.0.1:9"]})).await;
    assert_eq!(status, 200);
    let (status, mode) = admin("PATCH", &mocks_url, json!({"whole_api": false})).await;
    assert_eq!((status, mode["whole_api"].as_bool()), (200, Some(false)), "{mode}");
    assert!(mode["operations"].as_array().unwrap().iter().all(|o| o["mocked"] == false));
}

/// The admin UI's mock page: which operations have no example, switches for the whole API
/// and one operation.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_admin_ui_shows_missing_examples_and_switches_mock_mode(pool: PgPool) {
    use crate::helpers::csrf_from;
    use crate::portal::location;
    tollgate::cli::dev::seed(&pool).await.unwrap();
    let app = crate::helpers::spawn_app(pool.clone()).await;
    app.sign_in(tollgate::cli::dev::DEMO_ADMIN_EMAIL, tollgate::cli::dev::DEMO_ADMIN_PASSWORD).await;
    let html = app.get("/admin/apis/new").await.text().await.unwrap();
    let res = app.post_form("/admin/apis/new", &[("csrf_token", &csrf_from(&html)), ("spec", PETSTORE)]).await;
    assert_eq!(res.status(), 303);
    let mocks_page = format!("{}/mocks", location(&res));
    let html = app.get(&mocks_page).await.text().await.unwrap();
    assert!(
        html.contains(
            "19 operation(s): 14 without an example (answered with a value generated from the schema), 5 with neither"
        ),
        "{html}"
    );
    assert!(html.contains("No example and no schema: empty body"));
    assert!(html.contains("Only the operations switched on below"));

    let res = app.post_form(&mocks_page, &[("csrf_token", &csrf_from(&html)), ("mocked", "on")]).await;
    assert_eq!(res.status(), 303);
    let html = app.get(&mocks_page).await.text().await.unwrap();
    assert!(html.contains("Every operation is in mock mode."));
    let res = app.post_form(&mocks_page, &[("csrf_token", &csrf_from(&html)), ("mocked", "off")]).await;
    assert_eq!(res.status(), 303);
    // One operation by itself.
    let html = app.get(&mocks_page).await.text().await.unwrap();
    let metric = html.split("name=\"metric\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let res =
        app.post_form(&mocks_page, &[("csrf_token", &csrf_from(&html)), ("metric", &metric), ("mocked", "on")]).await;
    assert_eq!(res.status(), 303);
    let html = app.get(&mocks_page).await.text().await.unwrap();
    assert_eq!(html.matches("On · turn off").count(), 1, "{html}");
}

/// A published API whose only backend is one mocked operation: a new version without that
/// operation, or deleting its imported rule, would leave agents a config they refuse (no
/// upstream, nothing mocked), and with it every later change of every API. Both are 409,
/// and agents are sent a config they accept throughout.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_change_that_takes_the_last_mocked_operation_from_an_api_without_upstream_is_refused(pool: PgPool) {
    let w = crate::helpers::spawn_app(pool.clone()).await;
    tollgate::cli::dev::seed(&pool).await.unwrap();
    let token = crate::helpers::demo_admin_token(&pool).await;
    let admin = |method: &str, path: &str, body: Option<Value>| {
        let mut request = w.client.request(method.parse().unwrap(), w.url(path)).bearer_auth(token.as_str());
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let res = request.send().await.unwrap();
            let status = res.status().as_u16();
            let text = res.text().await.unwrap();
            (status, serde_json::from_str::<Value>(&text).unwrap_or(Value::Null))
        }
    };
    let spec = |paths: &str| format!("openapi: 3.0.3\ninfo: {{title: Pets, version: '1'}}\npaths:\n{paths}");
    let pets = "  /pets:\n    get:\n      operationId: listPets\n      responses: {'200': {description: ok, content: {application/json: {example: [1]}}}}\n";
    let owners = "  /owners:\n    get:\n      operationId: listOwners\n      responses: {'200': {description: ok}}\n";
    let (status, api) =
        admin("POST", "/admin/api/v1/apis", Some(json!({"spec": spec(&(pets.to_owned() + owners)), "slug": "pets"})))
            .await;
    assert_eq!(status, 201, "{api}");
    let id = api["id"].as_str().unwrap().to_owned();
    let (status, mode) = admin("GET", &format!("/admin/api/v1/apis/{id}/mocks"), None).await;
    assert_eq!(status, 200, "{mode}");
    let list_pets =
        mode["operations"].as_array().unwrap().iter().find(|o| o["system_name"] == "listPets").unwrap()["metric_id"]
            .clone();
    let mocked = json!({"operations": [{"metric_id": list_pets, "mocked": true}]});
    assert_eq!(admin("PATCH", &format!("/admin/api/v1/apis/{id}/mocks"), Some(mocked)).await.0, 200);
    let (status, body) =
        admin("POST", &format!("/admin/api/v1/apis/{id}/lifecycle"), Some(json!({"state": "published"}))).await;
    assert_eq!(status, 200, "{body}");

    let (status, staged) =
        admin("POST", &format!("/admin/api/v1/apis/{id}/versions"), Some(json!({"spec": spec(owners)}))).await;
    assert_eq!(status, 201, "{staged}");
    let number = staged["number"].as_i64().unwrap();
    let (status, body) = admin("POST", &format!("/admin/api/v1/apis/{id}/versions/{number}/publish"), None).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["message"].as_str().unwrap().contains("no upstream and no mocked operation"), "{body}");

    let (_, rules) = admin("GET", &format!("/admin/api/v1/apis/{id}/mapping-rules"), None).await;
    let rule = rules.as_array().unwrap().iter().find(|r| r["metric"] == "listPets").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = admin("DELETE", &format!("/admin/api/v1/apis/{id}/mapping-rules/{rule}"), None).await;
    assert_eq!(status, 409, "{body}");
    let snapshot = tollgate_core::sync::build_snapshot(&pool).await.unwrap();
    snapshot.validate().expect("agents accept the config");
    assert_eq!(snapshot.mocks.len(), 1, "the mocked operation is still sent");

    // With an upstream, both go through.
    let patch = json!({"upstream_urls": ["http://pets.test"]});
    assert_eq!(admin("PATCH", &format!("/admin/api/v1/apis/{id}"), Some(patch)).await.0, 200);
    assert_eq!(admin("DELETE", &format!("/admin/api/v1/apis/{id}/mapping-rules/{rule}"), None).await.0, 204);
    tollgate_core::sync::build_snapshot(&pool).await.unwrap().validate().expect("agents accept the config");
}
