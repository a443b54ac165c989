//! Routing by consumer and by weight, server side: the admin REST API (422s naming the
//! field), the snapshot and deltas agents get, and end to end through a real agent to two
//! loopback upstreams, with usage rolled up per group and read back.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;
use tollgate::cli::dev::{DEMO_ADMIN_EMAIL, DEMO_DEVELOPER_EMAIL, DEMO_DEVELOPER_PASSWORD, seed};
use tollgate_agent::{Agent, RunningAgent, ServerUrl, Settings, Token};
use tollgate_core::accounts::{ClientAddress, PasswordHasher, SignInOutcome, authenticate};
use tollgate_core::apis::detail::{self, ApiChanges};
use tollgate_core::apis::{ApiId, find_by_slug};
use tollgate_core::applications::{self, NewApplication};
use tollgate_core::audit::Actor;
use tollgate_core::plans::{PlanId, create_plan};
use tollgate_core::{credentials, gateways, sync};
use tollgate_protocol::{Change, PROTOCOL_VERSION};

use crate::helpers::{TestApp, free_plan, spawn_app};

/// An upstream that answers with its own name, so a test sees who served a call.
fn start_upstream(name: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = HttpServer::new(move || {
        App::new().default_service(web::to(move || async move { HttpResponse::Ok().json(json!({"upstream": name})) }))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    url
}

struct World {
    app: TestApp,
    token: String,
    api: ApiId,
    actor: Actor,
}

impl World {
    async fn new(pool: PgPool) -> World {
        seed(&pool).await.unwrap();
        let actor = Actor::system("test");
        let token = crate::helpers::demo_admin_token(&pool).await;
        let api = find_by_slug(&pool, "weather").await.unwrap().unwrap().id;
        World { app: spawn_app(pool).await, token: token.as_str().to_owned(), api, actor }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.app.client.request(method, self.app.url(path)).bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) })
    }

    fn routing(&self, rest: &str) -> String {
        format!("/admin/api/v1/apis/{}/routing{rest}", self.api.0)
    }

    async fn plan(&self, name: &str) -> PlanId {
        let plan = free_plan(name.to_lowercase(), name);
        create_plan(&self.app.pool, self.api, &plan, &self.actor).await.unwrap()
    }

    /// A live application of the demo developer on `plan`, and its key.
    async fn app_with_key(&self, name: &str, plan: PlanId) -> (uuid::Uuid, String) {
        let localhost = ClientAddress::new(std::net::Ipv4Addr::LOCALHOST.into());
        let SignInOutcome::SignedIn(dev) = authenticate(
            &self.app.pool,
            &PasswordHasher::new(1),
            DEMO_DEVELOPER_EMAIL,
            DEMO_DEVELOPER_PASSWORD,
            &localhost,
            None,
        )
        .await
        .unwrap() else {
            panic!("the demo developer signs in")
        };
        let account = dev.account_id.unwrap();
        let app = applications::create(
            &self.app.pool,
            account,
            &NewApplication { plan_id: plan, name: name.into(), description: String::new() },
            &self.actor,
        )
        .await
        .unwrap();
        let key = credentials::issue(&self.app.pool, account, app.id, &self.actor).await.unwrap();
        (app.id.0, key.secret.as_str().to_owned())
    }
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn existing_apis_have_one_default_group_at_100(pool: PgPool) {
    let w = World::new(pool).await;
    let (status, body) = w.call(Method::GET, &w.routing(""), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["groups"].as_array().unwrap().len(), 1);
    assert_eq!(body["groups"][0]["name"], "default");
    assert_eq!(body["groups"][0]["weight"], 100);
    assert!(!body["groups"][0]["urls"].as_array().unwrap().is_empty(), "the API's upstreams");
    // Plain routing is not sent to agents, so older agents keep working.
    let snapshot = sync::build_snapshot(&w.app.pool).await.unwrap();
    assert!(snapshot.routing.is_empty());
    assert_eq!(snapshot.protocol_version, 1);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn bad_routing_input_is_422_naming_the_field(pool: PgPool) {
    let w = World::new(pool).await;
    let plan = w.plan("Partner").await;
    let canary = w.routing("/groups/canary");
    for (path, body, field) in [
        (canary.clone(), json!({"weight": -1, "urls": ["http://a.test"]}), "weight"),
        (canary.clone(), json!({"weight": "ten", "urls": ["http://a.test"]}), "weight"),
        (canary.clone(), json!({"weight": 2.5, "urls": ["http://a.test"]}), "weight"),
        (canary.clone(), json!({"weight": 1_000_001, "urls": ["http://a.test"]}), "weight"),
        (canary.clone(), json!({"weight": 5}), "urls"),
        (canary.clone(), json!({"weight": 5, "urls": []}), "urls"),
        (canary.clone(), json!({"weight": 5, "urls": ["ftp://a.test"]}), "urls[0]"),
        (canary.clone(), json!({"weight": 5, "urls": ["http://a.test", "not a url"]}), "urls[1]"),
        (w.routing("/groups/Canary!"), json!({"weight": 5, "urls": ["http://a.test"]}), "name"),
        (w.routing("/groups/default"), json!({"weight": 5, "urls": ["http://a.test"]}), "urls"),
        (w.routing("/groups/default"), json!({"weight": 0}), "weight"),
        (w.routing("/weights"), json!({"weights": {"default": 0}}), "weight"),
        (w.routing("/weights"), json!({"weights": {"nope": 5}}), "weights.nope"),
        (w.routing("/weights"), json!({"weights": {"default": -5}}), "weights.default"),
        (w.routing("/weights"), json!({"weights": [1]}), "weights"),
        (format!("/admin/api/v1/plans/{}/upstream-group", plan.0), json!({"group": "v9"}), "group"),
        (format!("/admin/api/v1/plans/{}/upstream-group", plan.0), json!({"group": "V 9"}), "group"),
    ] {
        let (status, answer) = w.call(Method::PUT, &path, Some(body.clone())).await;
        assert_eq!(status, 422, "{path} {body}: {answer}");
        assert_eq!(answer["field"], field, "{path} {body}: {answer}");
    }
    // Several mistakes in one request are named together.
    for (path, body, fields) in [
        (
            w.routing("/groups/Canary!"),
            json!({"weight": -1, "urls": ["http://a.test", 7]}),
            vec!["name", "weight", "urls[1]"],
        ),
        (
            canary.clone(),
            json!({"weight": 5, "urls": ["ftp://a.test", "http://ok.test", "no"]}),
            vec!["urls[0]", "urls[2]"],
        ),
        (
            w.routing("/weights"),
            json!({"weights": {"nope": 5, "Bad!": 1, "default": -1}}),
            vec!["weights.Bad!", "weights.default"],
        ),
        (w.routing("/weights"), json!({"weights": {"nope": 5, "gone": 1}}), vec!["weights.gone", "weights.nope"]),
    ] {
        let (status, answer) = w.call(Method::PUT, &path, Some(body.clone())).await;
        assert_eq!(status, 422, "{path} {body}: {answer}");
        let named: Vec<&str> =
            answer["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        assert_eq!(named, fields, "{path} {body}: {answer}");
    }
    // Nothing of that was stored.
    let (_, routing) = w.call(Method::GET, &w.routing(""), None).await;
    assert_eq!(routing["groups"].as_array().unwrap().len(), 1);
    assert_eq!(routing["groups"][0]["weight"], 100);
    // Unknown things are 404; the default group and a group in use cannot go.
    let missing = format!("/admin/api/v1/apis/{}/routing", uuid::Uuid::new_v4());
    assert_eq!(w.call(Method::GET, &missing, None).await.0, 404);
    assert_eq!(w.call(Method::DELETE, &w.routing("/groups/default"), None).await.0, 409);
    let v2 = json!({"weight": 0, "urls": ["http://v2.test"]});
    assert_eq!(w.call(Method::PUT, &w.routing("/groups/v2"), Some(v2)).await.0, 200);
    let route = format!("/admin/api/v1/plans/{}/upstream-group", plan.0);
    assert_eq!(w.call(Method::PUT, &route, Some(json!({"group": "v2"}))).await.0, 200);
    assert_eq!(w.call(Method::DELETE, &w.routing("/groups/v2"), None).await.0, 409);
    assert_eq!(w.call(Method::PUT, &route, Some(json!({"group": null}))).await.0, 200);
    assert_eq!(w.call(Method::DELETE, &w.routing("/groups/v2"), None).await.0, 204);
    assert_eq!(w.call(Method::DELETE, &w.routing("/groups/v2"), None).await.0, 404);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_snapshot_and_deltas_carry_groups_weights_and_routes(pool: PgPool) {
    let w = World::new(pool).await;
    let partner = w.plan("Partner").await;
    let (exception, _) = w.app_with_key("Exception", partner).await;
    let before = sync::build_snapshot(&w.app.pool).await.unwrap().revision;
    let canary = json!({"weight": 10, "urls": ["http://canary.test:8080", "https://canary-2.test"]});
    let (status, group) = w.call(Method::PUT, &w.routing("/groups/canary"), Some(canary)).await;
    assert_eq!(status, 200, "{group}");
    assert_eq!(group["urls"], json!(["http://canary.test:8080", "https://canary-2.test"]));
    let (status, routing) =
        w.call(Method::PUT, &w.routing("/weights"), Some(json!({"weights": {"default": 90}}))).await;
    assert_eq!(status, 200, "{routing}");
    let v2 = json!({"weight": 0, "urls": ["http://v2.test"]});
    assert_eq!(w.call(Method::PUT, &w.routing("/groups/v2"), Some(v2)).await.0, 200);
    let route = format!("/admin/api/v1/plans/{}/upstream-group", partner.0);
    assert_eq!(w.call(Method::PUT, &route, Some(json!({"group": "v2"}))).await.1, json!({"group": "v2"}));
    let route = format!("/admin/api/v1/applications/{exception}/upstream-group");
    assert_eq!(w.call(Method::PUT, &route, Some(json!({"group": "canary"}))).await.0, 200);

    let (_, view) = w.call(Method::GET, &w.routing(""), None).await;
    assert_eq!(view["plans"][0]["group"], "v2");
    assert_eq!(view["applications"][0]["id"], exception.to_string());

    let snapshot = sync::build_snapshot(&w.app.pool).await.unwrap();
    snapshot.validate().expect("valid");
    assert_eq!(snapshot.protocol_version, PROTOCOL_VERSION, "routing needs a version 2 agent");
    assert_eq!(snapshot.requires, ["upstream_routing"]);
    let routing = &snapshot.routing[0];
    assert_eq!(routing.api_id, w.api.0);
    let groups: Vec<(&str, u32, usize)> =
        routing.groups.iter().map(|g| (g.name.as_str(), g.weight, g.upstreams.len())).collect();
    assert_eq!(groups, [("default", 90, 1), ("canary", 10, 2), ("v2", 0, 1)]);
    assert_eq!(routing.plans[0].id, partner.0);
    assert_eq!(routing.plans[0].group, "v2");
    assert_eq!(routing.applications[0].id, exception);

    // Every step reached the feed as a routing change.
    let delta = sync::build_delta(&w.app.pool, before).await.unwrap().expect("a delta");
    let upserts: Vec<_> = delta.changes.iter().filter(|c| matches!(c, Change::UpsertRouting(_))).collect();
    assert_eq!(upserts.len(), 1, "one change per API, its latest state");
    // Back to one group: agents are told to drop the routing.
    let head = delta.revision;
    let route_none = json!({"group": null});
    w.call(Method::PUT, &format!("/admin/api/v1/plans/{}/upstream-group", partner.0), Some(route_none.clone())).await;
    w.call(Method::PUT, &format!("/admin/api/v1/applications/{exception}/upstream-group"), Some(route_none)).await;
    assert_eq!(w.call(Method::DELETE, &w.routing("/groups/v2"), None).await.0, 204);
    assert_eq!(w.call(Method::DELETE, &w.routing("/groups/canary"), None).await.0, 204);
    let delta = sync::build_delta(&w.app.pool, head).await.unwrap().expect("a delta");
    assert!(delta.changes.contains(&Change::RemoveRouting { api_id: w.api.0 }), "{:?}", delta.changes);
    let snapshot = sync::build_snapshot(&w.app.pool).await.unwrap();
    assert!(snapshot.routing.is_empty());
    assert_eq!(snapshot.protocol_version, 1);
}

async fn wait_until<F, Fut>(limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "condition not met within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn served_by(agent: &RunningAgent, key: &str) -> String {
    let url = format!("http://{}/weather/cities?user_key={key}", agent.proxy_addr());
    let res = crate::helpers::plain_client().get(url).send().await.unwrap();
    if res.status() != 200 {
        return format!("status {}", res.status());
    }
    let body: Value = res.json().await.unwrap();
    body["upstream"].as_str().unwrap_or_default().to_owned()
}

/// Starter-plan calls reach upstream A while Partner-plan calls reach upstream B, through
/// the real server and a real agent; the per-group usage table then shows both groups.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn starter_reaches_a_and_partner_reaches_b_through_a_real_agent(pool: PgPool) {
    let w = World::new(pool).await;
    let (a, b) = (start_upstream("A"), start_upstream("B"));
    detail::update(&w.app.pool, w.api, &ApiChanges { upstream_urls: Some(vec![a]), ..ApiChanges::default() }, &w.actor)
        .await
        .unwrap();
    let (starter, partner) = (w.plan("Starter").await, w.plan("Partner").await);
    let (_, starter_key) = w.app_with_key("Starter app", starter).await;
    let (_, partner_key) = w.app_with_key("Partner app", partner).await;
    let v2 = json!({"weight": 0, "urls": [b]});
    assert_eq!(w.call(Method::PUT, &w.routing("/groups/v2"), Some(v2)).await.0, 200);
    let route = format!("/admin/api/v1/plans/{}/upstream-group", partner.0);
    assert_eq!(w.call(Method::PUT, &route, Some(json!({"group": "v2"}))).await.0, 200);

    let (_, token) = gateways::create(&w.app.pool, "edge-routing", &w.actor).await.unwrap();
    let dir = std::env::temp_dir().join(format!("tollgate-route-{}", uuid::Uuid::new_v4().simple()));
    let mut settings =
        Settings::new(ServerUrl::parse(&w.app.base).unwrap(), Token::new(token.as_str().to_owned()), dir.clone());
    settings.listen = "127.0.0.1:0".parse().unwrap();
    settings.admin_listen = "127.0.0.1:0".parse().unwrap();
    settings.flush_interval = Duration::from_millis(200);
    let agent = Agent::start(settings).await.expect("agent starts");
    wait_until(Duration::from_secs(10), || async { served_by(&agent, &partner_key).await == "B" }).await;
    for _ in 0..10 {
        assert_eq!(served_by(&agent, &starter_key).await, "A");
        assert_eq!(served_by(&agent, &partner_key).await, "B");
    }

    // Usage per group is stored and readable.
    let usage = format!("/admin/api/v1/apis/{}/routing/usage?period=1h", w.api.0);
    wait_until(Duration::from_secs(10), || async {
        let (_, rows) = w.call(Method::GET, &usage, None).await;
        let calls = |group: &str| {
            rows.as_array()
                .and_then(|rows| rows.iter().find(|r| r["group"] == group))
                .and_then(|r| r["calls"].as_i64())
                .unwrap_or(0)
        };
        calls("default") >= 10 && calls("v2") >= 10
    })
    .await;
    let (_, rows) = w.call(Method::GET, &usage, None).await;
    for row in rows.as_array().unwrap() {
        assert_eq!(row["calls_5xx"], 0, "{row}");
        assert_eq!(row["error_rate"], 0.0, "{row}");
        assert!(row["p50_ms"].as_u64().is_some(), "{row}");
    }
    let (status, body) = w.call(Method::GET, &format!("{usage}x"), None).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("period")));
    agent.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// The admin UI page: a group added, a bad weight shown beside its field (422), the
/// split saved, a plan sent to a group, a group in use kept.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_routing_page_edits_groups_weights_and_plan_routes(pool: PgPool) {
    use crate::helpers::csrf_from;
    let w = World::new(pool).await;
    let partner = w.plan("Partner").await;
    let res = w.app.sign_in(DEMO_ADMIN_EMAIL, tollgate::cli::dev::DEMO_ADMIN_PASSWORD).await;
    assert_eq!(res.status(), 303);
    let page_url = format!("/admin/apis/{}/routing", w.api.0);
    let html = w.app.get(&page_url).await.text().await.unwrap();
    assert!(html.contains("Routing of") && html.contains(r#"name="weight-default""#), "{html}");
    let csrf = csrf_from(&html);

    // A bad target and a bad weight come back beside their fields, with what was typed.
    let form = [
        ("csrf_token", csrf.as_str()),
        ("name", "canary"),
        ("weight", "10"),
        ("urls", "http://canary.test\nftp://nope"),
    ];
    let res = w.app.post_form(&format!("{page_url}/groups"), &form).await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(html.contains(r#"id="urls-error""#) && html.contains("line 2"), "{html}");
    assert!(html.contains("ftp://nope"), "what was typed comes back");
    let form = [("csrf_token", csrf.as_str()), ("name", "canary"), ("weight", "-3"), ("urls", "http://canary.test")];
    let res = w.app.post_form(&format!("{page_url}/groups"), &form).await;
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains(r#"id="weight-error""#));
    // Two bad lines are both named; a bad name and a bad weight come back together.
    let form = [
        ("csrf_token", csrf.as_str()),
        ("name", "canary"),
        ("weight", "10"),
        ("urls", "ftp://a\nhttp://ok.test\n\nnope"),
    ];
    let html = w.app.post_form(&format!("{page_url}/groups"), &form).await.text().await.unwrap();
    let error = html.split(r#"id="urls-error">"#).nth(1).unwrap().split('<').next().unwrap();
    // Lines are counted as the reader sees them, blank ones included.
    assert!(error.starts_with("line 1: ") && error.contains("; line 4: "), "{error}");
    let form = [("csrf_token", csrf.as_str()), ("name", "Canary!"), ("weight", "-3"), ("urls", "http://canary.test")];
    let html = w.app.post_form(&format!("{page_url}/groups"), &form).await.text().await.unwrap();
    assert!(html.contains(r#"id="name-error""#) && html.contains(r#"id="weight-error""#), "{html}");
    // Both are listed at the top, each linking to its field, and the title says so.
    let summary =
        html.split(r#"data-testid="error-summary""#).nth(1).expect("a summary").split("</div>").next().unwrap();
    assert!(
        summary.contains(r##"<a href="#name">Group name: "##)
            && summary.contains(r##"<a href="#weight">Group weight: "##)
    );
    assert!(html.contains("<title>Error: Routing"), "{html}");

    let form = [("csrf_token", csrf.as_str()), ("name", "canary"), ("weight", "10"), ("urls", "http://canary.test")];
    assert_eq!(w.app.post_form(&format!("{page_url}/groups"), &form).await.status(), 303);
    // All weights 0 is refused as the split's problem.
    let form = [("csrf_token", csrf.as_str()), ("weight-default", "0"), ("weight-canary", "0")];
    let res = w.app.post_form(&format!("{page_url}/weights"), &form).await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(
        html.contains(r#"id="weights-error""#) && html.contains(r##"<a href="#weights-error">Weights: "##),
        "{html}"
    );
    let form = [("csrf_token", csrf.as_str()), ("weight-default", "95"), ("weight-canary", "5")];
    assert_eq!(w.app.post_form(&format!("{page_url}/weights"), &form).await.status(), 303);
    let partner_id = partner.0.to_string();
    let form = [("csrf_token", csrf.as_str()), ("id", partner_id.as_str()), ("group", "canary")];
    assert_eq!(w.app.post_form(&format!("{page_url}/plans"), &form).await.status(), 303);
    // In use: not removed, and said beside its box.
    let form = [("csrf_token", csrf.as_str()), ("confirm", "yes")];
    let res = w.app.post_form(&format!("{page_url}/groups/canary/delete"), &form).await;
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains(r#"id="remove-canary-error""#));

    let html = w.app.get(&page_url).await.text().await.unwrap();
    assert!(html.contains("95.0 %") && html.contains("5.0 %"), "{html}");
    assert!(html.contains(r#"<option value="canary" selected>canary</option>"#), "the plan's group is shown");
    let (_, routing) = w.call(Method::GET, &w.routing(""), None).await;
    assert_eq!(routing["plans"][0]["group"], "canary");
    let weights: Vec<i64> =
        routing["groups"].as_array().unwrap().iter().map(|g| g["weight"].as_i64().unwrap()).collect();
    assert_eq!(weights, [95, 5]);
}

/// Upstream URLs no gateway can use (an upper-case scheme, a user and password, a name in
/// another script, a space) are refused where they are typed; those stored before the check,
/// and a public host stored with a port, are left out of what agents get. Any of them in a
/// config made every agent refuse it, and with it every later revocation.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn upstreams_no_gateway_can_use_never_reach_agents(pool: PgPool) {
    let w = World::new(pool).await;
    let api = format!("/admin/api/v1/apis/{}", w.api.0);
    for url in ["HTTP://canary.test", "http://svc:secret@canary.test", "http://bücher.test", "http://canary.test/a b"]
    {
        let group = json!({"weight": 5, "urls": ["http://ok.test", url]});
        let (status, answer) = w.call(Method::PUT, &w.routing("/groups/canary"), Some(group)).await;
        assert_eq!((status, answer["field"].as_str()), (422, Some("urls[1]")), "{url}: {answer}");
        let (status, answer) = w.call(Method::PATCH, &api, Some(json!({"upstream_urls": [url]}))).await;
        assert_eq!((status, answer["field"].as_str()), (422, Some("upstream_urls[0]")), "{url}: {answer}");
    }
    let (status, answer) = w.call(Method::PATCH, &api, Some(json!({"upstream_urls": ["http://user@x.test"]}))).await;
    assert!(answer["message"].as_str().unwrap().contains("user and password"), "{status} {answer}");

    sqlx::query(
        "INSERT INTO api_upstreams (id, api_id, url) VALUES (gen_random_uuid(), $1, 'http://svc:secret@old.test')",
    )
    .bind(w.api.0)
    .execute(&w.app.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO upstream_groups (api_id, name, weight, urls)
         VALUES ($1, 'canary', 10, ARRAY['HTTP://canary.test', 'http://canary-2.test'])",
    )
    .bind(w.api.0)
    .execute(&w.app.pool)
    .await
    .unwrap();
    sqlx::query("UPDATE api_products SET public_host = 'api.test:8443' WHERE id = $1")
        .bind(w.api.0)
        .execute(&w.app.pool)
        .await
        .unwrap();
    let snapshot = sync::build_snapshot(&w.app.pool).await.unwrap();
    snapshot.validate().expect("agents can use every upstream and host sent");
    let weather = snapshot.apis.iter().find(|a| a.id == w.api.0).unwrap();
    assert_eq!(weather.hosts, ["api.test"]);
    assert!(!weather.upstreams.is_empty() && weather.upstreams.iter().all(|u| !u.url.contains('@')));
    let canary = snapshot.routing[0].groups.iter().find(|g| g.name == "canary").unwrap();
    let targets: Vec<&str> = canary.upstreams.iter().map(|u| u.url.as_str()).collect();
    assert_eq!(targets, ["http://canary-2.test"]);
}

/// The routing page sends only its own API's plans and applications to a group: an id of
/// another API's plan is refused beside the field, and nothing is routed.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_routing_page_refuses_a_plan_of_another_api(pool: PgPool) {
    use crate::helpers::csrf_from;
    let w = World::new(pool).await;
    let partner = w.plan("Partner").await;
    let (app, _) = w.app_with_key("Elsewhere", partner).await;
    let source = "openapi: 3.0.3\ninfo: {title: Files, version: '1'}\npaths:\n  /files:\n    get: {responses: {'200': {description: ok}}}\n";
    let spec = tollgate_openapi::parse(source).unwrap();
    let new = tollgate_core::apis::NewApi { slug: Some("files".into()), ..Default::default() };
    let other = tollgate_core::apis::create_from_spec(&w.app.pool, source, &spec, new, &w.actor).await.unwrap().id;
    let canary = json!({"weight": 0, "urls": ["http://canary.test"]});
    let other_routing = format!("/admin/api/v1/apis/{}/routing/groups/canary", other.0);
    assert_eq!(w.call(Method::PUT, &other_routing, Some(canary)).await.0, 200);
    let res = w.app.sign_in(DEMO_ADMIN_EMAIL, tollgate::cli::dev::DEMO_ADMIN_PASSWORD).await;
    assert_eq!(res.status(), 303);
    let page_url = format!("/admin/apis/{}/routing", other.0);
    let csrf = csrf_from(&w.app.get(&page_url).await.text().await.unwrap());
    let partner_id = partner.0.to_string();
    let form = [("csrf_token", csrf.as_str()), ("id", partner_id.as_str()), ("group", "canary")];
    let res = w.app.post_form(&format!("{page_url}/plans"), &form).await;
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains("belongs to another API"));
    let app_id = app.to_string();
    let form = [("csrf_token", csrf.as_str()), ("id", app_id.as_str()), ("group", "canary")];
    let res = w.app.post_form(&format!("{page_url}/applications"), &form).await;
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains("subscribes to another API"));
    let (_, routing) = w.call(Method::GET, &format!("/admin/api/v1/apis/{}/routing", other.0), None).await;
    assert_eq!((routing["plans"].as_array().unwrap().len(), routing["applications"].as_array().unwrap().len()), (0, 0));
}

/// An API change that leaves its routing with nothing to send (the default group's targets
/// gone, the only other group at weight 0) tells agents to drop the routing they hold, as a
/// fresh agent's snapshot has none.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn an_api_change_that_empties_its_routing_removes_it_from_agents(pool: PgPool) {
    let w = World::new(pool).await;
    let api = format!("/admin/api/v1/apis/{}", w.api.0);
    let canary = json!({"weight": 0, "urls": ["http://canary.test"]});
    assert_eq!(w.call(Method::PUT, &w.routing("/groups/canary"), Some(canary)).await.0, 200);
    let partner = w.plan("Partner").await;
    let route = format!("/admin/api/v1/plans/{}/upstream-group", partner.0);
    assert_eq!(w.call(Method::PUT, &route, Some(json!({"group": "canary"}))).await.0, 200);
    assert_eq!(sync::build_snapshot(&w.app.pool).await.unwrap().routing.len(), 1);
    // Mock mode lets the published API lose its upstreams.
    assert_eq!(w.call(Method::PATCH, &format!("{api}/mocks"), Some(json!({"whole_api": true}))).await.0, 200);
    let head = sync::build_snapshot(&w.app.pool).await.unwrap().revision;
    let (status, body) = w.call(Method::PATCH, &api, Some(json!({"upstream_urls": []}))).await;
    assert_eq!(status, 200, "{body}");
    let snapshot = sync::build_snapshot(&w.app.pool).await.unwrap();
    assert!(snapshot.routing.is_empty());
    let delta = sync::build_delta(&w.app.pool, head).await.unwrap().expect("a delta");
    assert!(delta.changes.contains(&Change::RemoveRouting { api_id: w.api.0 }), "{:?}", delta.changes);
}
