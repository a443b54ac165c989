//! The admin UI and the portal catalog, over HTTP as a browser would use them.

use sqlx::PgPool;
use tollgate::cli::dev::{DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD, DEMO_DEVELOPER_EMAIL, DEMO_DEVELOPER_PASSWORD, seed};

use crate::helpers::{TestApp, client, csrf_from, free_plan, spawn_app};
use crate::portal::{last_mail, location};

const PETS: &str = "openapi: 3.0.3\ninfo: {title: Pet Store, version: '1.0', description: Pets for everyone}\npaths:\n  /pets:\n    get: {operationId: listPets, summary: List pets, responses: {'200': {description: ok}}}\n    post: {operationId: createPet, responses: {'201': {description: created}}}\n  /pets/{id}:\n    get: {operationId: showPet, responses: {'200': {description: ok}}}\n";

async fn admin(pool: PgPool) -> TestApp {
    seed(&pool).await.unwrap();
    let app = spawn_app(pool).await;
    assert_eq!(location(&app.sign_in(DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD).await), "/admin");
    app
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn an_admin_imports_a_spec_plans_and_publishes_and_a_developer_subscribes(pool: PgPool) {
    let app = admin(pool).await;
    // A broken document is explained, with where.
    let html = app.get("/admin/apis/new").await.text().await.unwrap();
    let res = app
        .post_form(
            "/admin/apis/new",
            &[
                ("csrf_token", &csrf_from(&html)),
                ("spec", "openapi: 3.0.3\ninfo: {title: T, version: '1'}\npaths: {pets: {}}\n"),
            ],
        )
        .await;
    assert_eq!(res.status(), 422);
    let page = res.text().await.unwrap();
    assert!(page.contains("could not be imported") && page.contains("/paths/pets"), "{page}");
    assert!(page.contains("paths: {pets: {}}"), "the document comes back for fixing");

    let res = app
        .post_form(
            "/admin/apis/new",
            &[("csrf_token", &csrf_from(&html)), ("spec", PETS), ("upstream_url", "http://127.0.0.1:9")],
        )
        .await;
    assert_eq!(res.status(), 303);
    let api_page = location(&res);
    let page = app.get(&api_page).await.text().await.unwrap();
    assert!(page.contains("Pet Store") && page.contains(">draft<"));

    // A plan with overlapping price tiers is refused next to the tier.
    let api_id = api_page.trim_start_matches("/admin/apis/");
    let form_url = format!("/admin/apis/{api_id}/plans/new");
    let html = app.get(&form_url).await.text().await.unwrap();
    let token = csrf_from(&html);
    let mut fields = vec![
        ("csrf_token", token.as_str()),
        ("name", "Starter"),
        ("system_name", "starter"),
        ("monthly_fee", "9.50"),
        ("setup_fee", "0"),
        ("currency", "EUR"),
        ("trial_days", "0"),
        ("time_zone", "Europe/Paris"),
        ("published", "on"),
        ("limit_metric_0", "hits"),
        ("limit_period_0", "day"),
        ("limit_max_0", "500"),
        ("limit_metric_1", "listPets"),
        ("limit_period_1", "minute"),
        ("limit_max_1", "5"),
        ("price_metric_0", "hits"),
        ("price_from_0", "1"),
        ("price_to_0", "100"),
        ("price_unit_0", "0"),
        ("price_metric_1", "hits"),
        ("price_from_1", "50"),
        ("price_to_1", ""),
        ("price_unit_1", "0.01"),
    ];
    let res = app.post_form(&form_url, &fields).await;
    assert_eq!(res.status(), 422);
    let page = res.text().await.unwrap();
    assert!(page.contains("Tier 2: overlaps tier 1 (pricing[0])"), "{page}");
    fields.retain(|(k, _)| *k != "price_from_1");
    fields.push(("price_from_1", "101"));
    // An amount is written as people write one, in a currency ISO 4217 lists.
    for (field, value, says) in [
        ("monthly_fee", "1e3", "enter an amount such as 49.00"),
        ("price_unit_1", "1e-2", "enter an amount such as 49.00"),
        ("currency", "eru", "`ERU` is not an ISO 4217 currency"),
    ] {
        let mut odd = fields.clone();
        odd.retain(|(k, _)| *k != field);
        odd.push((field, value));
        let res = app.post_form(&form_url, &odd).await;
        assert_eq!(res.status(), 422, "{field}={value}");
        let page = res.text().await.unwrap();
        assert!(page.contains(says), "{field}={value}: {page}");
    }
    // Every field that does not read is named at once, not one per try.
    let mut odd = fields.clone();
    odd.retain(|(k, _)| !["setup_fee", "limit_max_1", "price_to_1"].contains(k));
    odd.extend([("setup_fee", "five"), ("limit_max_1", "lots"), ("price_to_1", "1.5")]);
    let res = app.post_form(&form_url, &odd).await;
    assert_eq!(res.status(), 422);
    let page = res.text().await.unwrap();
    assert!(page.contains("see the 3 highlighted fields"), "{page}");
    for field in ["setup_fee", "limit_max_1", "price_to_1"] {
        assert!(page.contains(&format!("id=\"{field}\"")), "{field}");
        let input = page.split(&format!("id=\"{field}\"")).nth(1).unwrap().split('>').next().unwrap();
        assert!(input.contains("aria-invalid=\"true\""), "{field}: {input}");
    }
    // The summary at the form's top names each with its label and links to it.
    let summary =
        page.split("data-testid=\"error-summary\"").nth(1).expect("a summary").split("</div>").next().unwrap();
    for (field, label) in [("setup_fee", "Setup fee"), ("limit_max_1", "Limit 2 max"), ("price_to_1", "Tier 2 to")] {
        assert!(summary.contains(&format!("<a href=\"#{field}\">{label}: ")), "{field}: {summary}");
    }
    assert!(page.contains("<title>Error: "), "the title says so");
    // So is every field that reads but breaks a rule of plans.
    let mut odd = fields.clone();
    odd.retain(|(k, _)| !["system_name", "time_zone", "price_from_1"].contains(k));
    odd.extend([("system_name", "Starter Plan"), ("time_zone", "Mars/Olympus"), ("price_from_1", "50")]);
    let res = app.post_form(&form_url, &odd).await;
    assert_eq!(res.status(), 422);
    let page = res.text().await.unwrap();
    assert!(page.contains("see the 3 highlighted fields"), "{page}");
    assert!(page.contains("is not a time zone") && page.contains("Tier 2: overlaps tier 1"), "{page}");
    let res = app.post_form(&form_url, &fields).await;
    assert_eq!(location(&res), api_page);

    // Publish, then the catalog shows it to a developer.
    let page = app.get(&api_page).await.text().await.unwrap();
    let res = app
        .post_form(&format!("{api_page}/lifecycle"), &[("csrf_token", &csrf_from(&page)), ("state", "published")])
        .await;
    assert_eq!(res.status(), 303);

    let developer = TestApp { base: app.base.clone(), pool: app.pool.clone(), client: client() };
    developer.sign_in(DEMO_DEVELOPER_EMAIL, DEMO_DEVELOPER_PASSWORD).await;
    let catalog = developer.get("/?q=pet").await.text().await.unwrap();
    assert!(catalog.contains("/apis/pet-store") && !catalog.contains("/apis/weather"), "search filters the catalog");
    let page = developer.get("/apis/pet-store").await.text().await.unwrap();
    assert!(
        page.contains("Starter") && page.contains("9.5 EUR") && page.contains("listPets per minute"),
        "plan comparison"
    );
    assert!(
        page.contains("http://127.0.0.1:8081/pet-store/pets?user_key=YOUR_KEY") && page.contains("import requests"),
        "samples"
    );
    assert!(
        page.contains("/static/vendor/swagger-ui/swagger-ui-bundle.js")
            && page.contains("data-spec=\"/apis/pet-store/spec\"")
    );
    let spec = developer.get("/apis/pet-store/spec").await.text().await.unwrap();
    assert_eq!(spec, PETS, "the portal renders the stored document byte for byte");
    // The download for client generators names the gateway and its key, in the document's YAML.
    assert!(page.contains("href=\"/apis/pet-store/openapi\""), "a visible download link");
    let res = developer.get("/apis/pet-store/openapi").await;
    assert!(res.headers()["content-disposition"].to_str().unwrap().starts_with("attachment"));
    let text = res.text().await.unwrap();
    let doc: serde_json::Value = yaml_serde::from_str(&text).unwrap();
    assert_eq!(doc["servers"][0]["url"], "http://127.0.0.1:8081/pet-store");
    assert_eq!(doc["security"], serde_json::json!([{"tollgate_user_key": []}]));
    assert_eq!(doc["components"]["securitySchemes"]["tollgate_user_key"]["in"], "query");
    assert_eq!(doc["components"]["securitySchemes"]["tollgate_user_key"]["name"], "user_key");
    let answers = &doc["paths"]["/pets/{id}"]["get"]["responses"];
    assert!(["200", "401", "403", "429"].iter().all(|s| answers.get(s).is_some()), "{answers}");
    assert_eq!(tollgate_openapi::parse(&text).unwrap().operations, tollgate_openapi::parse(PETS).unwrap().operations);
    let plan_link = page.split("href=\"/apps/new?plan=").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let html = developer.get(&format!("/apps/new?plan={plan_link}")).await.text().await.unwrap();
    assert!(html.contains(&format!("value=\"{plan_link}\" selected")), "the chosen plan is preselected");
    let res = developer
        .post_form("/apps/new", &[("csrf_token", &csrf_from(&html)), ("name", "Pet client"), ("plan_id", &plan_link)])
        .await;
    assert_eq!(res.status(), 303);
    assert!(developer.get(&location(&res)).await.text().await.unwrap().contains("data-testid=\"new-key\""));
    // Drafts and retired APIs are not in the catalog.
    assert_eq!(developer.get("/apis/no-such-api").await.status(), 404);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn approving_an_application_emails_the_developer_and_the_audit_log_shows_it(pool: PgPool) {
    let app = admin(pool).await;
    let developer = TestApp { base: app.base.clone(), pool: app.pool.clone(), client: client() };
    developer.sign_in(DEMO_DEVELOPER_EMAIL, DEMO_DEVELOPER_PASSWORD).await;
    let html = developer.get("/apps/new").await.text().await.unwrap();
    let pro = html
        .split("<option value=\"")
        .skip(1)
        .find(|o| o.contains("— Pro"))
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let res = developer
        .post_form("/apps/new", &[("csrf_token", &csrf_from(&html)), ("name", "Needs approval"), ("plan_id", &pro)])
        .await;
    let app_page = location(&res);
    let page = developer.get(&app_page).await.text().await.unwrap();
    assert!(page.contains(">pending<") && !page.contains("data-testid=\"new-key\""), "no key before approval");

    let list = app.get("/admin/applications?state=pending").await.text().await.unwrap();
    assert!(list.contains("Needs approval"));
    let app_id = app_page.trim_start_matches("/apps/");
    let res =
        app.post_form(&format!("/admin/applications/{app_id}/approve"), &[("csrf_token", &csrf_from(&list))]).await;
    assert_eq!(res.status(), 303);
    let (subject, body) = last_mail(&app.pool, DEMO_DEVELOPER_EMAIL).await;
    assert!(subject.contains("approved"), "{subject}");
    assert!(body.contains(&format!("/apps/{app_id}")));
    let page = developer.get(&app_page).await.text().await.unwrap();
    assert!(page.contains(">live<") && page.contains("Create key"));

    // The admin moves it to the Basic plan.
    let list = app.get("/admin/applications").await.text().await.unwrap();
    let basic = list
        .split(&format!("id=\"plan-{app_id}\""))
        .nth(1)
        .unwrap()
        .split("<option value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    // A plan field that is not an id is the form's mistake, not a missing page.
    let res = app
        .post_form(
            &format!("/admin/applications/{app_id}/plan"),
            &[("csrf_token", &csrf_from(&list)), ("plan_id", "abc")],
        )
        .await;
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains("choose a plan"));
    let res = app
        .post_form(
            &format!("/admin/applications/{app_id}/plan"),
            &[("csrf_token", &csrf_from(&list)), ("plan_id", &basic)],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert!(developer.get(&app_page).await.text().await.unwrap().contains("Basic plan"));

    let log = app.get("/admin/audit?action=application.").await.text().await.unwrap();
    assert!(log.contains("application.transition") && log.contains("application.create"), "{log}");
    assert!(!log.contains("plan.create"), "the filter narrows the log");
    // Developers cannot reach the admin pages.
    assert_eq!(developer.get("/admin/applications").await.status(), 403);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_applications_page_shows_fifty_and_links_to_older_ones_by_key(pool: PgPool) {
    let app = admin(pool).await;
    // 120 suspended applications a second apart going back, on the demo developer's account.
    sqlx::query(
        "INSERT INTO applications (id, account_id, api_id, plan_id, name, state, created_at)
         SELECT gen_random_uuid(), ac.id, p.api_id, p.id, 'Paged ' || lpad(i::text, 3, '0'), 'suspended',
                now() - make_interval(secs => i)
         FROM generate_series(1, 120) AS i,
              (SELECT id FROM accounts WHERE kind = 'developer' LIMIT 1) AS ac, (SELECT id, api_id FROM plans LIMIT 1) AS p",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let names = |html: &str| -> Vec<String> {
        html.split("<td>Paged ").skip(1).map(|rest| format!("Paged {}", &rest[..3])).collect()
    };
    let older = |html: &str| -> Option<String> {
        let (_, rest) = html.split_once("href=\"/admin/applications?")?;
        let query = rest.split('"').next()?.replace("&#38;", "&").replace("&amp;", "&");
        rest.contains("data-testid=\"older\"").then(|| format!("/admin/applications?{query}"))
    };
    let mut walked = Vec::new();
    let mut page = Some("/admin/applications?state=suspended".to_owned());
    let mut pages = 0;
    while let Some(path) = page {
        let html = app.get(&path).await.text().await.unwrap();
        let rows = html.matches("<td class=\"actions\">").count();
        assert!(rows <= 50, "{path}: {rows} rows");
        walked.extend(names(&html));
        page = older(&html);
        if let Some(next) = &page {
            assert!(next.contains("state=suspended&after="), "the filter is kept: {next}");
        }
        pages += 1;
        assert!(pages <= 4, "{path} never ends");
    }
    let expected: Vec<String> = (1..=120).map(|i| format!("Paged {i:03}")).collect();
    assert_eq!(walked, expected, "three pages, newest first, each row once");
    let first = app.get("/admin/applications?state=suspended").await.text().await.unwrap();
    assert!(first.contains("50 a page, newest first") && !first.contains("back to the newest"), "{first}");
    let second = app.get(&older(&first).unwrap()).await.text().await.unwrap();
    assert!(second.contains("back to the newest"));
    assert_eq!(app.get("/admin/applications?after=nonsense").await.status(), 422, "an id that is not one is named");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn admins_register_agents_and_tokens_shown_once(pool: PgPool) {
    let app = admin(pool).await;
    let html = app.get("/admin/gateways").await.text().await.unwrap();
    let res = app.post_form("/admin/gateways", &[("csrf_token", &csrf_from(&html)), ("name", "edge-1")]).await;
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    let token = page.split("data-testid=\"new-token\">").nth(1).unwrap().split('<').next().unwrap().to_owned();
    assert!(token.starts_with("tg_agt_"));
    let again = app.get("/admin/gateways").await.text().await.unwrap();
    assert!(again.contains("edge-1") && !again.contains(&token));
    let res = app.client.get(app.url("/agent/v1/config")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 200, "the shown token works for the agent API");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn admin_tokens_made_in_the_ui_have_a_scope_and_an_end(pool: PgPool) {
    let app = admin(pool.clone()).await;
    let html = app.get("/admin/tokens").await.text().await.unwrap();
    assert!(html.contains(r#"<option value="90" selected>in 90 days</option>"#), "the form starts at 90 days: {html}");
    let csrf = csrf_from(&html);
    // A made-up end is refused beside its field, keeping the other choices.
    let form = [("csrf_token", csrf.as_str()), ("name", "exports"), ("scope", "read"), ("expires_in_days", "10")];
    let res = app.post_form("/admin/tokens", &form).await;
    assert_eq!(res.status(), 422);
    let page = res.text().await.unwrap();
    assert!(page.contains(r#"id="expires_in_days-error">choose one of the ends offered"#), "{page}");
    assert!(page.contains(r#"value="read" checked"#) && page.contains(r#"value="exports""#), "{page}");
    assert!(page.contains(r##"<a href="#expires_in_days">Expires: choose one"##), "listed at the top: {page}");
    let form = [("csrf_token", csrf.as_str()), ("name", "exports"), ("scope", "read"), ("expires_in_days", "30")];
    let res = app.post_form("/admin/tokens", &form).await;
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    let token = page.split("data-testid=\"new-token\">").nth(1).unwrap().split('<').next().unwrap().to_owned();
    let (scope, days): (String, f64) = sqlx::query_as(
        "SELECT scope::text, extract(epoch FROM expires_at - created_at)::float8 / 86400 FROM admin_tokens WHERE name = 'exports'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(scope, "read");
    assert!((days - 30.0).abs() < 0.01, "{days}");
    assert!(page.contains("<td>read only</td>"), "{page}");
    let res = app
        .client
        .post(app.url("/admin/api/v1/admin-tokens"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "x"}));
    assert_eq!(res.send().await.unwrap().status(), 403, "a read token made in the UI cannot write");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn admins_rename_and_revoke_agents_from_the_gateways_page(pool: PgPool) {
    let app = admin(pool.clone()).await;
    let html = app.get("/admin/gateways").await.text().await.unwrap();
    let res = app.post_form("/admin/gateways", &[("csrf_token", &csrf_from(&html)), ("name", "edge-1")]).await;
    let page = res.text().await.unwrap();
    let token = page.split("data-testid=\"new-token\">").nth(1).unwrap().split('<').next().unwrap().to_owned();
    let id: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM gateways WHERE name = 'edge-1'").fetch_one(&pool).await.unwrap();
    let csrf = csrf_from(&page);
    let rename = format!("/admin/gateways/{id}/rename");
    let revoke = format!("/admin/gateways/{id}/revoke");
    // Without the CSRF token nothing happens.
    assert!(app.post_form(&rename, &[("name", "edge-2")]).await.status().is_client_error());
    assert!(app.post_form(&revoke, &[("confirm", "yes")]).await.status().is_client_error());
    // A bad name is refused beside that agent's field, keeping what was typed.
    let res = app.post_form(&rename, &[("csrf_token", &csrf), ("name", "no spaces")]).await;
    assert_eq!(res.status(), 422);
    let page = res.text().await.unwrap();
    assert!(page.contains(&format!("id=\"name-{id}-error\">use 1 to 63 letters")), "{page}");
    assert!(page.contains("value=\"no spaces\""), "{page}");
    assert!(page.contains(&format!("<a href=\"#name-{id}\">New name for edge-1: use 1 to 63")), "listed at the top");
    // A new agent's refused name comes back as typed.
    let res = app.post_form("/admin/gateways", &[("csrf_token", &csrf), ("name", "bad name")]).await;
    assert_eq!(res.status(), 422);
    let page = res.text().await.unwrap();
    assert!(
        page.contains("value=\"bad name\"") && page.contains("<a href=\"#name\">Name of the new agent: "),
        "{page}"
    );
    // A taken name is refused the same way.
    app.post_form("/admin/gateways", &[("csrf_token", &csrf), ("name", "edge-9")]).await;
    let res = app.post_form(&rename, &[("csrf_token", &csrf), ("name", "edge-9")]).await;
    assert_eq!(res.status(), 422);
    let page = res.text().await.unwrap();
    assert!(page.contains(&format!("id=\"name-{id}-error\">an agent with this name already exists")), "{page}");
    // A good name shows on the list and is audited; the token keeps working.
    let res = app.post_form(&rename, &[("csrf_token", &csrf), ("name", "edge-2")]).await;
    assert_eq!((res.status().as_u16(), location(&res)), (303, "/admin/gateways".to_owned()));
    let list = app.get("/admin/gateways").await.text().await.unwrap();
    assert!(list.contains("edge-2") && !list.contains("edge-1"), "{list}");
    let status = || async {
        let res = app.client.get(app.url("/agent/v1/config")).bearer_auth(&token).send().await.unwrap();
        res.status().as_u16()
    };
    assert_eq!(status().await, 200);
    // Two replicas report with the one token: the row lists each, the figures are the worst.
    for (agent_id, host, revision) in
        [("0190a0c4-0000-7000-8000-000000000001", "pod-a", 7), ("0190a0c4-0000-7000-8000-000000000002", "pod-b", 5)]
    {
        let res = app
            .client
            .post(app.url("/agent/v1/status"))
            .bearer_auth(&token)
            .header("tollgate-protocol-version", "2")
            .header("tollgate-agent-id", agent_id)
            .header("tollgate-agent-host", host)
            .json(&serde_json::json!({"protocol_version": 2, "agent_version": "0.1.0", "applied_revision": revision, "rejected": null}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
    }
    let list = app.get("/admin/gateways").await.text().await.unwrap();
    let instances =
        list.split(&format!("data-testid=\"instances-{id}\"")).nth(1).unwrap().split("</details>").next().unwrap();
    // The third is the stream opened above without an id, connected until the server sees it end.
    assert!(instances.contains(" of 3 instances connected"), "{instances}");
    assert!(instances.contains("pod-a (0190a0c4): offline, revision 7"), "{instances}");
    assert!(instances.contains("pod-b (0190a0c4): offline, revision 5"), "{instances}");
    // Revoking without ticking the box is refused with the reason beside it.
    let res = app.post_form(&revoke, &[("csrf_token", &csrf)]).await;
    assert_eq!(res.status(), 422);
    let page = res.text().await.unwrap();
    assert!(page.contains(&format!("id=\"confirm-{id}-error\">Tick the box to confirm")), "{page}");
    assert_eq!(status().await, 200, "an unconfirmed revoke changes nothing");
    // Confirmed, the agent leaves the list and its token is refused.
    let res = app.post_form(&revoke, &[("csrf_token", &csrf), ("confirm", "yes")]).await;
    assert_eq!((res.status().as_u16(), location(&res)), (303, "/admin/gateways".to_owned()));
    assert!(!app.get("/admin/gateways").await.text().await.unwrap().contains("edge-2"));
    let report = tollgate_protocol::AgentStatus {
        protocol_version: tollgate_protocol::PROTOCOL_VERSION,
        agent_version: "0.1.0".into(),
        applied_revision: Some(1),
        rejected: None,
    };
    let res = app.client.post(app.url("/agent/v1/status")).bearer_auth(&token).json(&report).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_log WHERE entity = 'gateway' AND actor_label = $1 ORDER BY id")
            .bind(DEMO_ADMIN_EMAIL)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(actions, ["gateway.create", "gateway.create", "gateway.rename", "gateway.revoke"]);
    // The revoked agent's name is not given out again, and the refusal says why.
    let html = app.get("/admin/gateways").await.text().await.unwrap();
    let res = app.post_form("/admin/gateways", &[("csrf_token", &csrf_from(&html)), ("name", "edge-2")]).await;
    assert_eq!(res.status(), 422);
    let page = res.text().await.unwrap();
    assert!(page.contains("an agent named edge-2 was revoked on ") && page.contains("choose another"), "{page}");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn each_application_on_the_list_is_offered_the_plans_of_its_own_api(pool: PgPool) {
    use tollgate_core::apis::{NewApi, create_from_spec};
    use tollgate_core::audit::Actor;
    use tollgate_core::plans::create_plan;

    let app = admin(pool).await;
    let actor = Actor::system("test");
    let spec = tollgate_openapi::parse(PETS).unwrap();
    let new = NewApi {
        name: Some("Pets".into()),
        slug: Some("pets".into()),
        base_path: Some("/pets".into()),
        upstream_url: Some("http://127.0.0.1:9".into()),
    };
    let pets = create_from_spec(&app.pool, PETS, &spec, new, &actor).await.unwrap();
    for (system_name, name) in [("small", "Small pets"), ("large", "Large pets")] {
        create_plan(&app.pool, pets.id, &free_plan(system_name, name), &actor).await.unwrap();
    }
    // One application on each API, on the API's first plan (Large pets; Basic).
    sqlx::query(
        "INSERT INTO applications (id, account_id, api_id, plan_id, name, state)
         SELECT gen_random_uuid(), (SELECT id FROM accounts WHERE kind = 'developer' LIMIT 1), p.api_id, p.id,
                'On ' || a.slug, 'live'
         FROM (SELECT DISTINCT ON (api_id) id, api_id FROM plans ORDER BY api_id, position, monthly_fee, name) AS p
         JOIN api_products a ON a.id = p.api_id",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let html = app.get("/admin/applications").await.text().await.unwrap();
    // The plans a row offers to move to: the names in the select after the row's name.
    let offered = |row: &str| -> Vec<String> {
        let rest = html.split(&format!("<td>{row}</td>")).nth(1).expect("the row");
        let select = rest.split("<select").nth(1).expect("a plan select").split("</select>").next().unwrap();
        select
            .split("<option")
            .skip(1)
            .map(|option| option.split_once('>').unwrap().1.split('<').next().unwrap().to_owned())
            .collect()
    };
    assert_eq!(offered("On pets"), ["Small pets"], "{html}");
    assert_eq!(offered("On weather"), ["Pro"], "{html}");
}

/// The answer's status, content type and body.
async fn answer(app: &TestApp, path: &str) -> (u16, String, String) {
    let res = app.get(path).await;
    let kind = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (res.status().as_u16(), kind, res.text().await.unwrap())
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn bad_path_segments_and_query_parameters_get_the_error_page_naming_them(pool: PgPool) {
    let app = admin(pool).await;
    let api: String =
        sqlx::query_scalar("SELECT api_id::text FROM api_versions LIMIT 1").fetch_one(&app.pool).await.unwrap();
    let version = format!("/admin/apis/{api}/versions/1");
    assert_eq!(app.get(&version).await.status(), 200);

    // A segment that cannot name a version is not found, on the styled page.
    for number in ["abc", "99999999999999999999", "%3Cscript%3E"] {
        let (status, kind, body) = answer(&app, &format!("/admin/apis/{api}/versions/{number}")).await;
        assert_eq!((status, kind.as_str()), (404, "text/html; charset=utf-8"), "{number}: {body}");
        assert!(body.contains("<h1>Not found</h1>") && !body.contains("can not parse"), "{number}: {body}");
        assert!(
            body.contains(r#"<a href="/admin">Back to the admin dashboard</a>"#),
            "leads back to the admin UI: {body}"
        );
    }
    // So does an admin page that does not exist, under the admin UI's sections for an admin;
    // the portal's error pages lead to its start.
    let (status, _, body) = answer(&app, "/admin/no-such-page").await;
    assert!(status == 404 && body.contains(r#"<a href="/admin">Back to the admin dashboard</a>"#), "{body}");
    assert!(body.contains(r#"<nav class="subnav" aria-label="Admin">"#), "{body}");
    let anonymous = TestApp { base: app.base.clone(), pool: app.pool.clone(), client: client() };
    let (_, _, body) = answer(&anonymous, "/admin/no-such-page").await;
    assert!(!body.contains(r#"aria-label="Admin""#), "no admin sections for a visitor: {body}");
    let (status, _, body) = answer(&app, "/apis/no-such-api").await;
    assert!(status == 404 && body.contains(r#"<a href="/">Back to the start page</a>"#), "{body}");

    // A parameter that does not parse is a 422 naming it and what is allowed.
    for (query, named) in [
        ("page=abc", "page: `abc` is not a page number; use a whole number from 1"),
        ("page=-1", "page: `-1` is not a page number; use a whole number from 1"),
        ("page=0", "page: `0` is not a page number"),
        ("view=bogus", "view: `bogus` is not a view; use kind or where"),
        ("breaking=maybe", "breaking: `maybe` is not a choice; use only"),
        ("page=1&page=2", "page: given more than once; give each parameter once"),
    ] {
        let (status, kind, body) = answer(&app, &format!("{version}?{query}")).await;
        assert_eq!((status, kind.as_str()), (422, "text/html; charset=utf-8"), "{query}: {body}");
        assert!(body.contains("That did not work") && body.contains(named), "{query}: {body}");
        assert!(!body.contains("deserialize"), "{query}: {body}");
    }
    for query in ["view=where&page=1", "breaking=only", "page=", "page=7"] {
        assert_eq!(app.get(&format!("{version}?{query}")).await.status(), 200, "{query}");
    }

    // What was typed is shown escaped.
    let (status, _, body) = answer(&app, &format!("{version}?page=%3Cscript%3Ealert(1)%3C/script%3E")).await;
    assert_eq!(status, 422);
    assert!(!body.contains("<script>alert") && body.contains("&#60;script&#62;alert(1)"), "{body}");

    // Other pages' extractors answer the same way: a parameter given twice is named.
    for path in
        ["/admin/invoices?state=paid&state=void", "/admin/audit?entity=a&entity=b", "/admin?period=24h&period=1h"]
    {
        let (status, kind, body) = answer(&app, path).await;
        assert_eq!((status, kind.as_str()), (422, "text/html; charset=utf-8"), "{path}: {body}");
        assert!(body.contains("given more than once"), "{path}: {body}");
    }

    // The JSON admin API keeps its own answers.
    let token = crate::helpers::demo_admin_token(&app.pool).await;
    let res = client()
        .get(app.url(&format!("/admin/api/v1/apis/{api}/versions/abc")))
        .bearer_auth(token.as_str())
        .send()
        .await
        .unwrap();
    let kind = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    assert!(kind.starts_with("application/json") || kind.starts_with("application/problem+json"), "{kind}");
    assert!(!res.text().await.unwrap().contains("<html"));
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_applications_page_refuses_a_state_or_id_it_does_not_know(pool: PgPool) {
    let app = admin(pool).await;
    assert_eq!(app.get("/admin/applications?state=live").await.status(), 200);
    assert_eq!(app.get("/admin/applications?state=").await.status(), 200, "an empty filter is any state");
    for (query, named) in [
        ("state=bogus", "State: `bogus` is not a state: use pending, live, suspended or rejected"),
        ("after=nonsense", "After: `nonsense` is not an application id"),
        ("id=nonsense", "Id: `nonsense` is not an application id"),
    ] {
        let (status, kind, body) = answer(&app, &format!("/admin/applications?{query}")).await;
        assert_eq!((status, kind.as_str()), (422, "text/html; charset=utf-8"), "{query}: {body}");
        assert!(body.contains(named), "{query}: {body}");
        assert!(!body.contains("data-testid=\"applications\""), "no list under a bad filter: {body}");
    }
    let body = app.get("/admin/applications?state=bogus").await.text().await.unwrap();
    assert!(body.contains("aria-invalid=\"true\" aria-describedby=\"state-error\""), "{body}");
}

/// A real document is far larger than an ordinary form: the import form takes one of
/// hundreds of kilobytes from an admin (it refused anything over 64 KiB), while every other
/// form, and any form from someone who is not a signed-in admin, keeps the small limit and
/// says so.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_import_form_takes_a_large_document_and_other_forms_stay_small(pool: PgPool) {
    let app = admin(pool).await;
    let paths: Vec<String> = (0..3_000)
        .map(|i| format!(r#""/things/t{i}": {{"get": {{"responses": {{"200": {{"description": "ok"}}}}}}}}"#))
        .collect();
    let spec = format!(
        r#"{{"openapi": "3.0.3", "info": {{"title": "Many Things", "version": "1"}}, "paths": {{{}}}}}"#,
        paths.join(", ")
    );
    assert!(spec.len() > 150_000, "{}", spec.len());
    let html = app.get("/admin/apis/new").await.text().await.unwrap();
    let token = csrf_from(&html);
    let fields = [("csrf_token", token.as_str()), ("spec", spec.as_str()), ("upstream_url", "http://127.0.0.1:9")];
    let res = app.post_form("/admin/apis/new", &fields).await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    let api_page = location(&res);
    assert!(app.get(&api_page).await.text().await.unwrap().contains("Many Things"));

    // Another form of the same admin keeps the small limit, and the page says it.
    let html = app.get(&api_page).await.text().await.unwrap();
    let (token, name) = (csrf_from(&html), "x".repeat(100_000));
    let res = app.post_form(&api_page, &[("csrf_token", token.as_str()), ("name", name.as_str())]).await;
    assert_eq!(res.status(), 413);
    let page = res.text().await.unwrap();
    assert!(page.contains("Form too large") && page.contains("64 KiB"), "{page}");

    // Someone signed out is sent to sign in, the document unread; a developer signed in
    // gets the small limit.
    let stranger = TestApp { base: app.base.clone(), pool: app.pool.clone(), client: client() };
    let res = stranger.post_form("/admin/apis/new", &[("csrf_token", "x"), ("spec", spec.as_str())]).await;
    assert_eq!((res.status().as_u16(), location(&res).starts_with("/login")), (303, true));
    assert_eq!(location(&stranger.sign_in(DEMO_DEVELOPER_EMAIL, DEMO_DEVELOPER_PASSWORD).await), "/dashboard");
    let token = stranger.csrf_token("/dashboard").await;
    let res = stranger.post_form("/admin/apis/new", &[("csrf_token", token.as_str()), ("spec", spec.as_str())]).await;
    assert_eq!(res.status(), 403, "a developer is refused before the form is read");
}

/// Every field a form's check can name has a place on the page: the message shows beside it
/// (a 422 with a blank form told nothing).
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn each_refused_field_is_named_on_the_page(pool: PgPool) {
    let app = admin(pool).await;
    let id: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM api_products WHERE slug = 'weather'").fetch_one(&app.pool).await.unwrap();
    let page = format!("/admin/apis/{id}");
    let token = app.csrf_token(&page).await;
    let long_name = "n".repeat(10_000);
    // (form, fields, the message's label on the page)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: [Case<'_>; 3] = [
        ("rules", vec![("http_method", "GET"), ("pattern", "/x"), ("metric", "bogus"), ("delta", "1")], "Metric: "),
        ("metrics", vec![("system_name", "k2"), ("friendly_name", &long_name), ("parent", "")], "Name: "),
        ("metrics", vec![("system_name", "k3"), ("friendly_name", "K"), ("parent", "nosuch")], "Parent: "),
    ];
    for (form, mut fields, shown) in cases {
        fields.push(("csrf_token", token.as_str()));
        let res = app.post_form(&format!("{page}/{form}"), &fields).await;
        assert_eq!(res.status(), 422, "{form}");
        let html = res.text().await.unwrap();
        assert!(html.contains("class=\"field-error\"") && html.contains(shown), "{form}: {shown} in {html}");
    }

    // A refused rule comes back as it was typed.
    let fields = [
        ("csrf_token", token.as_str()),
        ("http_method", "POST"),
        ("pattern", "/typed/{"),
        ("metric", "hits"),
        ("delta", "3"),
        ("last", "on"),
    ];
    let res = app.post_form(&format!("{page}/rules"), &fields).await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    for kept in ["value=\"/typed/{\"", "<option selected>POST</option>", "value=\"3\"", "value=\"on\" checked"] {
        assert!(html.contains(kept), "{kept} in {html}");
    }

    // The portal's new application form names a description that is too long.
    let developer = TestApp { base: app.base.clone(), pool: app.pool.clone(), client: client() };
    assert_eq!(location(&developer.sign_in(DEMO_DEVELOPER_EMAIL, DEMO_DEVELOPER_PASSWORD).await), "/dashboard");
    let html = developer.get("/apps/new").await.text().await.unwrap();
    let long = "d".repeat(2_001);
    let plan: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM plans WHERE name = 'Basic'").fetch_one(&app.pool).await.unwrap();
    let fields = [
        ("csrf_token", csrf_from(&html)),
        ("name", "Long".into()),
        ("description", long),
        ("plan_id", plan.to_string()),
    ];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let res = developer.post_form("/apps/new", &fields).await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(html.contains("id=\"description-error\""), "{html}");
    // An empty form is told everything at once: the name and the plan.
    let token = csrf_from(&html);
    let res = developer.post_form("/apps/new", &[("csrf_token", token.as_str()), ("name", ""), ("plan_id", "")]).await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(html.contains("id=\"name-error\"") && html.contains("id=\"plan_id-error\""), "{html}");
    // So are a bad name and a bad description.
    let token = csrf_from(&html);
    let form = [("csrf_token", token.as_str()), ("name", ""), ("description", "a\u{7}b"), ("plan_id", "")];
    let res = developer.post_form("/apps/new", &form).await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    for id in ["name-error", "description-error", "plan_id-error"] {
        assert!(html.contains(&format!("id=\"{id}\"")), "{id}: {html}");
    }
}

/// The API page has five forms: a refused one comes back as it was typed, its problems beside
/// their fields and listed at the page's top, each linking to its field.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_api_page_lists_a_refused_forms_problems_at_the_top_and_keeps_what_was_typed(pool: PgPool) {
    let app = admin(pool).await;
    let id: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM api_products WHERE slug = 'weather'").fetch_one(&app.pool).await.unwrap();
    let page = format!("/admin/apis/{id}");
    let token = app.csrf_token(&page).await;
    assert!(!app.get(&page).await.text().await.unwrap().contains("error-summary"), "no summary before a refusal");

    // Settings: an empty name, a bad upstream on the reader's third line, a bad key name.
    let form = [
        ("csrf_token", token.as_str()),
        ("name", ""),
        ("description", "Typed description"),
        ("upstream_urls", "http://ok.test\n\nftp://bad.test\n"),
        ("auth_mode", "user_key"),
        ("key_location", "header"),
        ("key_name", "bad name"),
        ("compatibility_policy", "additive_enums"),
    ];
    let res = app.post_form(&page, &form).await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(html.contains("<title>Error: "), "the title says so");
    let summary =
        html.split(r#"data-testid="error-summary""#).nth(1).expect("a summary").split("</div>").next().unwrap();
    for link in [
        r##"<a href="#name">API name: "##,
        r##"<a href="#upstream_urls">Upstream URLs: line 3: use an http:// or https://"##,
        r##"<a href="#key_name">User key parameter or header name: "##,
    ] {
        assert!(summary.contains(link), "{link} in {summary}");
    }
    // The refused upstream is named beside its field too (core calls it upstream_urls[1]).
    assert!(html.contains(r#"id="upstream_urls-error">line 3: "#), "{html}");
    for kept in [
        "ftp://bad.test",
        "Typed description",
        r#"value="bad name""#,
        r#"<option value="header" selected>"#,
        r#"<option value="additive_enums" selected>"#,
    ] {
        assert!(html.contains(kept), "{kept} comes back as typed");
    }
    let stored: Vec<String> = sqlx::query_scalar("SELECT url FROM api_upstreams WHERE api_id = $1")
        .bind(id)
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert!(!stored.iter().any(|url| url.contains("ok.test")), "nothing was saved: {stored:?}");

    // A refused metric keeps its fields; the summary names the form it came from.
    let form = [("csrf_token", token.as_str()), ("system_name", "k3"), ("friendly_name", "Kay"), ("parent", "nosuch")];
    let res = app.post_form(&format!("{page}/metrics"), &form).await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(html.contains(r#"value="k3""#) && html.contains(r#"value="Kay""#), "{html}");
    assert!(html.contains(r##"<a href="#metric-parent">Metric parent: "##), "{html}");
    // And a refused rule links to the rule form's field.
    let form = [("csrf_token", token.as_str()), ("http_method", "GET"), ("pattern", "/x{"), ("metric", "hits")];
    let html = app.post_form(&format!("{page}/rules"), &form).await.text().await.unwrap();
    assert!(html.contains(r##"<a href="#rule-pattern">Mapping rule pattern: "##), "{html}");
}

/// A suspended account is told on its dashboard: its applications still read `live`, but the
/// gateway refuses every key of the account.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_suspended_account_is_told_on_its_dashboard(pool: PgPool) {
    let app = admin(pool).await;
    let developer = TestApp { base: app.base.clone(), pool: app.pool.clone(), client: client() };
    assert_eq!(location(&developer.sign_in(DEMO_DEVELOPER_EMAIL, DEMO_DEVELOPER_PASSWORD).await), "/dashboard");
    let notice = "data-testid=\"account-suspended\"";
    assert!(!developer.get("/dashboard").await.text().await.unwrap().contains(notice));
    let account: uuid::Uuid = sqlx::query_scalar(
        "SELECT m.account_id FROM memberships m JOIN users u ON u.id = m.user_id WHERE u.email = $1::citext",
    )
    .bind(DEMO_DEVELOPER_EMAIL)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    // Any of the session's forms carries its token.
    let token = app.csrf_token("/admin/apis/new").await;
    let res = app.post_form(&format!("/admin/accounts/{account}/suspend"), &[("csrf_token", token.as_str())]).await;
    assert_eq!(res.status(), 303);
    let html = developer.get("/dashboard").await.text().await.unwrap();
    assert!(html.contains(notice) && html.contains("Your account is suspended"), "{html}");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn destructive_buttons_in_table_rows_ask_first(pool: PgPool) {
    let app = admin(pool).await;
    let api = tollgate_core::apis::find_by_slug(&app.pool, "weather").await.unwrap().unwrap();
    let page = app.get(&format!("/admin/apis/{}", api.id.0)).await.text().await.unwrap();
    // Every delete form of a rule or metric sits inside a closed disclosure: one click only opens it.
    for kind in ["rules", "metrics"] {
        let marker = format!("/admin/apis/{}/{kind}/", api.id.0);
        let forms: Vec<usize> = page.match_indices(&marker).map(|(at, _)| at).collect();
        assert!(!forms.is_empty(), "{kind}: {page}");
        for at in forms {
            let before = &page[..at];
            let opened = before.rfind("<details class=\"confirm\">").expect("inside a confirm disclosure");
            assert!(before.rfind("</details>").is_none_or(|closed| closed < opened), "{kind} form at {at} is outside");
        }
    }
}

/// A draft API is deleted from its page, behind a disclosure; an API or plan that cannot go
/// says why on its own page (409), with the page around it.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn an_api_is_deleted_from_its_page_and_a_refused_delete_says_why_in_place(pool: PgPool) {
    let app = admin(pool).await;
    let html = app.get("/admin/apis/new").await.text().await.unwrap();
    let res = app
        .post_form(
            "/admin/apis/new",
            &[("csrf_token", &csrf_from(&html)), ("spec", PETS), ("upstream_url", "http://127.0.0.1:9")],
        )
        .await;
    let api_page = location(&res);
    let page = app.get(&api_page).await.text().await.unwrap();
    let form = page.find(&format!("action=\"{api_page}/delete\"")).expect("a delete form");
    assert!(page[..form].rfind("<details class=\"confirm\">") > page[..form].rfind("</details>"), "{page}");
    let res = app.post_form(&format!("{api_page}/delete"), &[("csrf_token", &csrf_from(&page))]).await;
    assert_eq!((res.status().as_u16(), location(&res)), (303, "/admin".to_owned()));
    assert_eq!(app.get(&api_page).await.status(), 404);

    // The demo's weather API, with an application on its basic plan.
    let weather = tollgate_core::apis::find_by_slug(&app.pool, "weather").await.unwrap().unwrap();
    let basic: uuid::Uuid = sqlx::query_scalar("SELECT id FROM plans WHERE api_id = $1 AND system_name = 'basic'")
        .bind(weather.id.0)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO applications (id, account_id, api_id, plan_id, name, state)
         SELECT $1, id, $2, $3, 'Held', 'live' FROM accounts WHERE kind = 'developer' LIMIT 1",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(weather.id.0)
    .bind(basic)
    .execute(&app.pool)
    .await
    .unwrap();
    let weather_page = format!("/admin/apis/{}", weather.id.0);
    let page = app.get(&weather_page).await.text().await.unwrap();
    // A sunset that is not a date is named as such, not as a date in the past.
    let res = app
        .post_form(
            &format!("{weather_page}/lifecycle"),
            &[("csrf_token", &csrf_from(&page)), ("state", "deprecated"), ("sunset", "31/12/2099")],
        )
        .await;
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains("“31/12/2099” is not a date: use YYYY-MM-DD"));
    assert!(!page.contains(&format!("action=\"{weather_page}/delete\"")), "no delete button while in use");
    // Retiring asks first, and recalls the sunset subscribers were promised.
    let sunset = time::OffsetDateTime::now_utc() + time::Duration::days(30);
    tollgate_core::apis::lifecycle::set_state(
        &app.pool,
        weather.id,
        tollgate_core::apis::ApiState::Deprecated,
        Some(sunset),
        &tollgate_core::audit::Actor::system("test"),
        &app.base,
    )
    .await
    .unwrap();
    let page = app.get(&weather_page).await.text().await.unwrap();
    let retire = page.find("name=\"state\" value=\"retired\"").expect("a retire form");
    assert!(page[..retire].rfind("<details class=\"confirm\">") > page[..retire].rfind("</details>"), "{page}");
    assert!(page.contains(&format!("Subscribers were told it serves until {}", sunset.date())), "{page}");
    let res = app.post_form(&format!("{weather_page}/delete"), &[("csrf_token", &csrf_from(&page))]).await;
    assert_eq!(res.status(), 409);
    let page = res.text().await.unwrap();
    assert!(page.contains("use the API weather") && page.contains("Mapping rules"), "{page}");

    // Amounts read as the currency writes them, not as the column stores them (12.5000).
    sqlx::query("UPDATE plans SET monthly_fee = 12.5, currency = 'USD' WHERE id = $1")
        .bind(basic)
        .execute(&app.pool)
        .await
        .unwrap();
    let plan_page = format!("/admin/plans/{basic}");
    let page = app.get(&plan_page).await.text().await.unwrap();
    assert!(page.contains("value=\"12.50\""), "{page}");
    // A copy under a name the API already has comes back to the plan, saying why.
    let res = app
        .post_form(
            &format!("{plan_page}/copy"),
            &[("csrf_token", &csrf_from(&page)), ("system_name", "basic-copy"), ("name", "basic")],
        )
        .await;
    assert_eq!(res.status(), 422);
    let copied = res.text().await.unwrap();
    assert!(
        copied.contains("The copy was not made: its name is refused (another plan of this API is already called basic"),
        "{copied}"
    );
    let res = app.post_form(&format!("{plan_page}/delete"), &[("csrf_token", &csrf_from(&page))]).await;
    assert_eq!(res.status(), 409);
    let page = res.text().await.unwrap();
    assert!(
        page.contains("use this plan; move them to another plan first") && page.contains("name=\"monthly_fee\""),
        "{page}"
    );
}
