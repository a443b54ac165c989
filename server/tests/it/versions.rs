//! New versions and their change reports through the real server: a large
//! comparison staged in the background with its progress on the page, the
//! paged JSON, the compatibility policy, exclusive job claims, and a real
//! Stripe release rendered in well under 1 MB.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::PgPool;
use tollgate::cli::dev::{DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD, seed};
use tollgate_core::apis::staging;

use crate::helpers::{TestApp, spawn_app};

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
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.app.client.request(method, self.app.url(path)).bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) })
    }

    async fn import(&self, spec: &str) -> String {
        let (status, api) = self
            .call(reqwest::Method::POST, "/admin/api/v1/apis", Some(json!({"spec": spec, "base_path": "/v"})))
            .await;
        assert_eq!(status, 201, "{api}");
        api["id"].as_str().unwrap().to_owned()
    }

    /// Polls the version until its report is no longer being made.
    async fn settled(&self, id: &str, number: i64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let (status, version) =
                self.call(reqwest::Method::GET, &format!("/admin/api/v1/apis/{id}/versions/{number}"), None).await;
            assert_eq!(status, 200, "{version}");
            if !matches!(version["report_state"].as_str(), Some("queued" | "running")) {
                return version;
            }
            assert!(Instant::now() < deadline, "the report was not ready in time: {version}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Signs the admin in on the app's browser client.
    async fn browser(&self) {
        let res = self.app.sign_in(DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD).await;
        assert_eq!(res.status(), 303);
    }
}

/// An API of `paths` × GET and PUT on shared components; `v2` removes a
/// response field of `Item`, adds a value to its status enum, and wraps the
/// owner `$ref` in a nullable one-element `anyOf`.
fn big_spec(paths: usize, v2: bool) -> String {
    let mut doc = json!({
        "openapi": "3.0.3",
        "info": {"title": "Things", "version": if v2 { "2" } else { "1" }},
        "paths": {},
        "components": {"schemas": {
            "Item": {"type": "object", "required": ["id"], "properties": {
                "id": {"type": "integer"},
                "name": {"type": "string", "readOnly": true},
                "status": {"type": "string", "enum": ["new", "done"]},
                "owner": {"$ref": "#/components/schemas/Owner"}}},
            "Owner": {"type": "object", "properties": {"login": {"type": "string"}}}
        }}
    });
    if v2 {
        let item = &mut doc["components"]["schemas"]["Item"]["properties"];
        item.as_object_mut().unwrap().remove("name");
        item["status"]["enum"] = json!(["new", "done", "archived"]);
        item["owner"] = json!({"anyOf": [{"$ref": "#/components/schemas/Owner"}], "nullable": false});
    }
    let item = json!({"$ref": "#/components/schemas/Item"});
    for i in 0..paths {
        doc["paths"][format!("/things{i}/{{id}}")] = json!({
            "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}],
            "get": {"operationId": format!("get{i}"), "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": item}}}}},
            "put": {"operationId": format!("put{i}"), "requestBody": {"content": {"application/json": {"schema": item}}},
                    "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": item}}}}}
        });
    }
    doc.to_string()
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_large_version_is_compared_in_the_background_and_each_change_is_reported_once(pool: PgPool) {
    let admin = admin_app(pool).await;
    let id = admin.import(&big_spec(500, false)).await;
    let (status, staged) = admin
        .call(
            reqwest::Method::POST,
            &format!("/admin/api/v1/apis/{id}/versions"),
            Some(json!({"spec": big_spec(500, true)})),
        )
        .await;
    // 1,000 operations on each side: the request only stores the version.
    assert_eq!(status, 202, "{staged}");
    assert!(matches!(staged["report_state"].as_str(), Some("queued" | "running")), "{staged}");
    let number = staged["number"].as_i64().unwrap();

    let version = admin.settled(&id, number).await;
    assert_eq!(version["report_state"], "ready", "{version}");
    // Two distinct breaking changes (a removed response field, a new
    // response enum value), each on the shared schema, affecting all 1,000
    // operations; the new value in requests (PUT) is the one other change,
    // and the anyOf wrap is no change at all.
    assert_eq!(version["breaking_count"], 2, "{version}");
    assert_eq!(version["breaking_operations"], 1000, "{version}");
    assert_eq!(
        version["summary"][0],
        "2 breaking changes affecting 1000 operations; 1 other change. Operations: 0 added, 0 removed, 1000 changed."
    );
    let top = version["top_changes"].as_array().unwrap();
    assert_eq!(top.len(), 3);
    assert!(
        top[..2]
            .iter()
            .all(|c| c["breaking"] == true && c["operation_count"] == 1000 && c["subject"]["name"] == "Item")
    );
    assert_eq!((top[2]["breaking"].as_bool(), top[2]["side"].as_str()), (Some(false), Some("request")));
    assert_eq!(top[0]["operations"].as_array().unwrap().len(), 20, "a version lists 20 operations per change");

    // The JSON is paged; one change has every operation.
    let (status, page) = admin
        .call(
            reqwest::Method::GET,
            &format!("/admin/api/v1/apis/{id}/versions/{number}/changes?per_page=1&page=2"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!((page["total"].as_i64(), page["items"].as_array().unwrap().len()), (Some(3), 1));
    assert_eq!(page["items"][0]["breaking"], true, "breaking first");
    // Following `next` one at a time walks the changes in order.
    let (_, all) = admin
        .call(reqwest::Method::GET, &format!("/admin/api/v1/apis/{id}/versions/{number}/changes?per_page=100"), None)
        .await;
    let all: Vec<Value> = all["items"].as_array().unwrap().iter().map(|c| c["id"].clone()).collect();
    let mut walked = Vec::new();
    let mut link = Some(format!("/admin/api/v1/apis/{id}/versions/{number}/changes?per_page=1"));
    while let Some(path) = link.take().filter(|_| walked.len() <= all.len()) {
        let (status, step) = admin.call(reqwest::Method::GET, &path, None).await;
        assert_eq!(status, 200, "{path}: {step}");
        walked.extend(step["items"].as_array().unwrap().iter().map(|c| c["id"].clone()));
        link = step["next"].as_str().map(str::to_owned);
    }
    assert_eq!(walked, all);
    let change = page["items"][0]["id"].as_u64().unwrap();
    let (_, full) = admin
        .call(reqwest::Method::GET, &format!("/admin/api/v1/apis/{id}/versions/{number}/changes/{change}"), None)
        .await;
    assert_eq!(full["operations"].as_array().unwrap().len(), 1000, "{full}");
    let (status, _) =
        admin.call(reqwest::Method::GET, &format!("/admin/api/v1/apis/{id}/versions/{number}/changes/99"), None).await;
    assert_eq!(status, 404);
    let (status, bad) = admin
        .call(reqwest::Method::GET, &format!("/admin/api/v1/apis/{id}/versions/{number}/changes?per_page=500"), None)
        .await;
    assert_eq!(
        (status, bad["error"].as_str(), bad["field"].as_str()),
        (422, Some("invalid_input"), Some("per_page")),
        "{bad}"
    );
    let (_, removed) = admin
        .call(
            reqwest::Method::GET,
            &format!("/admin/api/v1/apis/{id}/versions/{number}/changes?kind=response_field_removed&breaking=true"),
            None,
        )
        .await;
    assert_eq!(removed["total"], 1, "{removed}");
    assert_eq!(removed["items"][0]["location"], "schema `Item` field `name`");
    let (status, _) = admin
        .call(reqwest::Method::GET, &format!("/admin/api/v1/apis/{id}/versions/{number}/changes?kind=nonsense"), None)
        .await;
    assert_eq!(status, 400);

    // The page groups and folds without script.
    admin.browser().await;
    let res = admin.app.get(&format!("/admin/apis/{id}/versions/{number}")).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("refresh").is_none());
    let html = res.text().await.unwrap();
    assert!(html.len() < 200_000, "{} bytes", html.len());
    assert!(html.contains("2 breaking changes affecting 1000 operations"), "{html}");
    assert!(html.contains("<details class=\"change-group breaking\" open>"), "{html}");
    assert!(html.contains("affects 1000 operations") && html.contains("… and 975 more"), "{html}");
    assert_eq!(html.matches("<script").count(), html.matches("<script src=\"/static/js/").count(), "no inline script");
    // The report's `names` read as code, not as Markdown's backticks.
    assert!(html.contains("<code>name</code>") && !html.contains("`name`"), "{html}");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_report_being_made_shows_its_progress_and_its_version_waits_to_be_published(pool: PgPool) {
    let admin = admin_app(pool).await;
    let id = admin.import(&big_spec(2, false)).await;
    // A version whose report another replica is making: its lease is far off.
    sqlx::query(
        "INSERT INTO api_versions (id, api_id, number, spec_source, spec_format, spec_version, title, operation_count)
         SELECT gen_random_uuid(), api_id, 2, spec_source, spec_format, spec_version, title, operation_count
         FROM api_versions WHERE api_id = $1::uuid AND number = 1",
    )
    .bind(&id)
    .execute(&admin.app.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO staging_jobs (id, api_id, version_number, base_number, state, phase, done, total, attempts, lease_until)
         VALUES (gen_random_uuid(), $1::uuid, 2, 1, 'running', 'comparing', 5, 10, 1, now() + interval '1 hour')",
    )
    .bind(&id)
    .execute(&admin.app.pool)
    .await
    .unwrap();

    let (_, version) = admin.call(reqwest::Method::GET, &format!("/admin/api/v1/apis/{id}/versions/2"), None).await;
    assert_eq!(version["report_state"], "running", "{version}");
    assert_eq!(version["progress"], json!({"phase": "comparing", "done": 5, "total": 10}));
    let (status, refused) =
        admin.call(reqwest::Method::POST, &format!("/admin/api/v1/apis/{id}/versions/2/publish"), None).await;
    assert_eq!((status, refused["error"].as_str()), (409, Some("conflict")), "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("still being made"), "{refused}");

    admin.browser().await;
    let res = admin.app.get(&format!("/admin/apis/{id}/versions/2")).await;
    assert_eq!(res.headers().get("refresh").map(|v| v.to_str().unwrap().to_owned()), Some("2".to_owned()));
    let html = res.text().await.unwrap();
    assert!(html.contains("compared 5 of 10 operations"), "{html}");
    assert!(html.contains("<progress max=\"100\" value=\"50\""), "{html}");
    assert!(!html.contains("Publish version 2"), "{html}");

    // A job that failed for good says why.
    sqlx::query("UPDATE staging_jobs SET state = 'failed', error = 'the staged version no longer parses'")
        .execute(&admin.app.pool)
        .await
        .unwrap();
    let html = admin.app.get(&format!("/admin/apis/{id}/versions/2")).await.text().await.unwrap();
    assert!(html.contains("could not be made: the staged version no longer parses"), "{html}");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn two_workers_never_claim_the_same_job(pool: PgPool) {
    seed(&pool).await.unwrap();
    let api: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO api_products (id, slug, name) VALUES (gen_random_uuid(), 'jobs', 'Jobs') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    for number in [1, 2] {
        sqlx::query(
            "INSERT INTO api_versions (id, api_id, number, spec_source, spec_format, spec_version, title, operation_count)
             VALUES (gen_random_uuid(), $1, $2, '{}', 'json', '3.0.3', 'Jobs', 0)",
        )
        .bind(api)
        .bind(number)
        .execute(&pool)
        .await
        .unwrap();
    }
    sqlx::query(
        "INSERT INTO staging_jobs (id, api_id, version_number, base_number) VALUES (gen_random_uuid(), $1, 2, 1)",
    )
    .bind(api)
    .execute(&pool)
    .await
    .unwrap();
    let (a, b) = tokio::join!(staging::claim(&pool), staging::claim(&pool));
    let claimed = [a.unwrap(), b.unwrap()].into_iter().flatten().count();
    assert_eq!(claimed, 1, "exactly one worker runs the job");
    // While its lease holds, nobody else takes it; once it has run out, someone does.
    assert!(staging::claim(&pool).await.unwrap().is_none());
    sqlx::query("UPDATE staging_jobs SET lease_until = now() - interval '1 second'").execute(&pool).await.unwrap();
    let again = staging::claim(&pool).await.unwrap().expect("a job whose worker died is taken up again");
    assert_eq!(again.attempts, 2);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_compatibility_policy_decides_whether_new_response_enum_values_break(pool: PgPool) {
    let admin = admin_app(pool).await;
    let v1 = big_spec(1, false);
    let id = admin.import(&v1).await;
    let (_, api) = admin.call(reqwest::Method::GET, &format!("/admin/api/v1/apis/{id}"), None).await;
    assert_eq!(api["compatibility_policy"], "strict", "strict is the default");

    // Only the enum gains a value.
    let v2 = v1.replace(r#""enum":["new","done"]"#, r#""enum":["new","done","archived"]"#);
    assert_ne!(v1, v2);
    let (status, staged) = admin
        .call(reqwest::Method::POST, &format!("/admin/api/v1/apis/{id}/versions"), Some(json!({"spec": v2})))
        .await;
    assert_eq!(status, 201, "{staged}");
    assert_eq!((staged["breaking"].as_bool(), staged["policy"].as_str()), (Some(true), Some("strict")), "{staged}");

    // The provider promises additive enums: the staged report is judged again.
    let (status, api) = admin
        .call(
            reqwest::Method::PATCH,
            &format!("/admin/api/v1/apis/{id}"),
            Some(json!({"compatibility_policy": "additive_enums"})),
        )
        .await;
    assert_eq!((status, api["compatibility_policy"].as_str()), (200, Some("additive_enums")), "{api}");
    let (_, version) = admin.call(reqwest::Method::GET, &format!("/admin/api/v1/apis/{id}/versions/2"), None).await;
    assert_eq!((version["breaking"].as_bool(), version["policy"].as_str()), (Some(false), Some("additive_enums")));
    // The response's new value and the request's, neither breaking now.
    assert_eq!(version["non_breaking_count"], 2, "{version}");
    assert!(!version.to_string().contains("strict clients"), "{version}");
    let (status, refused) = admin
        .call(
            reqwest::Method::PATCH,
            &format!("/admin/api/v1/apis/{id}"),
            Some(json!({"compatibility_policy": "lenient"})),
        )
        .await;
    assert_eq!(status, 400, "{refused}");

    // The admin UI sets it back, with the default explained beside it.
    admin.browser().await;
    let html = admin.app.get(&format!("/admin/apis/{id}")).await.text().await.unwrap();
    assert!(
        html.contains("is breaking (strict, the default)") && html.contains("Strict is the default because"),
        "{html}"
    );
    let token = admin.app.csrf_token(&format!("/admin/apis/{id}")).await;
    let res = admin
        .app
        .post_form(
            &format!("/admin/apis/{id}"),
            &[("csrf_token", &token), ("name", "Things"), ("compatibility_policy", "strict")],
        )
        .await;
    assert_eq!(res.status(), 303);
    let (_, version) = admin.call(reqwest::Method::GET, &format!("/admin/api/v1/apis/{id}/versions/2"), None).await;
    assert_eq!(version["breaking"], true, "{version}");
}

fn release(name: &str) -> String {
    let dir = std::env::var_os("TOLLGATE_RELEASES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/releases"));
    let path = dir.join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}. Run scripts/fetch-releases first.", path.display()))
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_real_stripe_release_is_staged_in_the_background_and_its_page_stays_small(pool: PgPool) {
    let admin = admin_app(pool).await;
    let id = admin.import(&release("stripe-2023-03.json")).await;
    let (status, staged) = admin
        .call(
            reqwest::Method::POST,
            &format!("/admin/api/v1/apis/{id}/versions"),
            Some(json!({"spec": release("stripe-2025-05.json")})),
        )
        .await;
    assert_eq!(status, 202, "{staged}");
    let number = staged["number"].as_i64().unwrap();
    let version = admin.settled(&id, number).await;
    assert_eq!((version["breaking_count"].as_i64(), version["non_breaking_count"].as_i64()), (Some(20), Some(86)));
    assert!(version.to_string().len() < 50_000, "{} bytes", version.to_string().len());
    let (_, page) = admin
        .call(reqwest::Method::GET, &format!("/admin/api/v1/apis/{id}/versions/{number}/changes?per_page=100"), None)
        .await;
    assert!(page.to_string().len() < 500_000, "{} bytes", page.to_string().len());

    admin.browser().await;
    let html = admin.app.get(&format!("/admin/apis/{id}/versions/{number}")).await.text().await.unwrap();
    assert!(html.len() < 1_000_000, "{} bytes", html.len());
    assert!(html.contains("20 breaking changes affecting 446 operations"), "{html}");
    // Breaking first: the first group is a breaking one.
    let first_group = html.find("<details class=\"change-group").unwrap();
    assert!(html[first_group..].starts_with("<details class=\"change-group breaking\""));
    let html_all =
        admin.app.get(&format!("/admin/apis/{id}/versions/{number}?view=where&page=2")).await.text().await.unwrap();
    assert!(html_all.contains("Page 2 of 2"), "106 changes on two pages");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_cli_stages_a_version_and_prints_its_report_breaking_first(pool: PgPool) {
    let url = crate::helpers::database_url(&pool).await;
    let dir = std::env::temp_dir().join(format!("tollgate-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let (v1, v2) = (dir.join("v1.json"), dir.join("v2.json"));
    // 500 operations on each side: a background job, which the command runs itself.
    std::fs::write(&v1, big_spec(250, false)).unwrap();
    std::fs::write(&v2, big_spec(250, true)).unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TOLLGATE_LOG", "warn")
            .env("TOLLGATE_DATABASE_URL", &url)
            .output()
            .unwrap()
    };
    let out = run(&["import", v1.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "imported things with 500 operations\n");
    let out = run(&["import", v2.to_str().unwrap(), "--api", "things"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}{text}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "2 breaking changes affecting 500 operations; 1 other change. Operations: 0 added, 0 removed, 500 changed."
    );
    assert!(lines.last().unwrap().starts_with("staged version 2 of things; publish it"), "{text}");
    let headings: Vec<&str> =
        lines[1..lines.len() - 1].iter().copied().filter(|l| !l.is_empty() && !l.starts_with("  ")).collect();
    assert_eq!(
        headings,
        [
            "BREAKING: Response fields removed (1)",
            "BREAKING: More allowed values (1)",
            "other: More allowed values (1)",
        ],
        "{text}"
    );
    assert!(text.contains("  BREAKING The schema `Item` field `name` was removed. (affects 500 operations)"), "{text}");
    let out = run(&["import", v2.to_str().unwrap(), "--api", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no API is called nope"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Operations a new version adds get metrics of their own: a name an operation still counts
/// on (here also the draft's `/old`, whose rule stays until a version without it is
/// published over a published one), or `hits`, gets a suffix as on the first import.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_published_version_shares_no_metric_between_operations(pool: PgPool) {
    let admin = admin_app(pool).await;
    let op = |id: &str| json!({"operationId": id, "responses": {"200": {"description": "ok"}}});
    let v1 = json!({"openapi": "3.0.3", "info": {"title": "Metrics", "version": "1"},
        "paths": {"/a": {"get": op("listA")}, "/old": {"get": op("legacy")}}});
    let id = admin.import(&v1.to_string()).await;
    let v2 = json!({"openapi": "3.0.3", "info": {"title": "Metrics", "version": "2"},
        "paths": {"/a": {"get": op("listA")}, "/b": {"get": op("listA")}, "/c": {"get": op("hits")},
                  "/new": {"get": op("legacy")}}});
    let (status, staged) = admin
        .call(
            reqwest::Method::POST,
            &format!("/admin/api/v1/apis/{id}/versions"),
            Some(json!({"spec": v2.to_string()})),
        )
        .await;
    assert_eq!(status, 201, "{staged}");
    admin.settled(&id, 2).await;
    let (status, published) =
        admin.call(reqwest::Method::POST, &format!("/admin/api/v1/apis/{id}/versions/2/publish"), None).await;
    assert_eq!(status, 200, "{published}");
    let rules: Vec<(String, String)> = sqlx::query_as(
        "SELECT r.pattern, m.system_name FROM mapping_rules r JOIN metrics m ON m.id = r.metric_id
         WHERE r.api_id = $1::uuid ORDER BY r.pattern",
    )
    .bind(&id)
    .fetch_all(&admin.app.pool)
    .await
    .unwrap();
    let rules: Vec<(&str, &str)> = rules.iter().map(|(p, m)| (p.as_str(), m.as_str())).collect();
    assert_eq!(
        rules,
        [("/a$", "listA"), ("/b$", "listA_2"), ("/c$", "hits_2"), ("/new$", "legacy_2"), ("/old$", "legacy")]
    );
}
