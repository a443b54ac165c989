//! End to end: the real management server, real agents (in-process, over
//! loopback HTTP) and a real upstream.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use sqlx::PgPool;
use tollgate::cli::dev::{DEMO_DEVELOPER_EMAIL, DEMO_DEVELOPER_PASSWORD, seed};
use tollgate_agent::{Agent, RunningAgent, ServerUrl, Settings, Token};
use tollgate_core::accounts::{AccountId, ClientAddress, PasswordHasher, SignInOutcome, authenticate};
use tollgate_core::apis::detail::{self, ApiChanges};
use tollgate_core::apis::lifecycle;
use tollgate_core::apis::{ApiId, ApiState, AuthMode, KeyLocation, find_by_slug};
use tollgate_core::applications::{self, ApplicationId, NewApplication, Transition};
use tollgate_core::audit::Actor;
use tollgate_core::credentials::{self, CredentialId};
use tollgate_core::gateways;
use tollgate_core::plans::{create_plan, list_plans};

use crate::helpers::{TestApp, free_plan, spawn_app_on};

/// An upstream that echoes what it received, so tests see what the agent forwarded.
fn start_upstream() -> String {
    async fn echo(req: HttpRequest, body: web::Bytes) -> HttpResponse {
        let headers: serde_json::Map<String, serde_json::Value> = req
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(v.to_str().unwrap_or(""))))
            .collect();
        HttpResponse::Ok().json(serde_json::json!({"method": req.method().as_str(), "uri": req.uri().to_string(), "headers": headers, "body_len": body.len()}))
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = HttpServer::new(|| App::new().default_service(web::to(echo)))
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
    tokio::spawn(server);
    url
}

pub(crate) struct World {
    pub(crate) app: TestApp,
    handle: actix_web::dev::ServerHandle,
    listen: std::net::SocketAddr,
    api: ApiId,
    pub(crate) account: AccountId,
    agent_token: String,
    dir: PathBuf,
}

impl World {
    pub(crate) async fn new(pool: PgPool) -> World {
        seed(&pool).await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let listen = listener.local_addr().unwrap();
        let (app, handle) = spawn_app_on(pool.clone(), listener, &[]).await;
        let api = find_by_slug(&pool, "weather").await.unwrap().unwrap().id;
        let upstream = start_upstream();
        let actor = Actor::system("test");
        detail::update(
            &pool,
            api,
            &ApiChanges { upstream_urls: Some(vec![upstream]), ..ApiChanges::default() },
            &actor,
        )
        .await
        .unwrap();
        let SignInOutcome::SignedIn(dev) = authenticate(
            &pool,
            &PasswordHasher::new(1),
            DEMO_DEVELOPER_EMAIL,
            DEMO_DEVELOPER_PASSWORD,
            &localhost(),
            None,
        )
        .await
        .unwrap() else {
            panic!("demo developer signs in")
        };
        let (_, token) =
            gateways::create(&pool, &format!("edge-{}", uuid::Uuid::new_v4().simple()), &actor).await.unwrap();
        let dir = std::env::temp_dir().join(format!("tollgate-gw-{}", uuid::Uuid::new_v4().simple()));
        World {
            app,
            handle,
            listen,
            api,
            account: dev.account_id.unwrap(),
            agent_token: token.as_str().to_owned(),
            dir,
        }
    }

    fn agent_settings(&self, name: &str) -> Settings {
        let server = ServerUrl::parse(&self.app.base).unwrap();
        let mut settings = Settings::new(server, Token::new(self.agent_token.clone()), self.dir.join(name));
        settings.listen = "127.0.0.1:0".parse().unwrap();
        settings.admin_listen = "127.0.0.1:0".parse().unwrap();
        settings.flush_interval = Duration::from_millis(200);
        settings
    }

    pub(crate) async fn agent(&self, name: &str) -> RunningAgent {
        let agent = Agent::start(self.agent_settings(name)).await.expect("agent starts");
        wait_until(Duration::from_secs(10), || is_ready(&agent)).await;
        agent
    }

    /// An application with a key on the named demo plan (or a fresh unlimited plan).
    async fn app_with_key(&self, name: &str, plan: Option<&str>) -> (ApplicationId, CredentialId, String) {
        let actor = Actor::system("test");
        let plan_id = match plan {
            Some(system_name) => {
                list_plans(&self.app.pool, self.api)
                    .await
                    .unwrap()
                    .into_iter()
                    .find(|p| p.system_name == system_name)
                    .unwrap()
                    .id
            }
            None => {
                let plan = free_plan(format!("open-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]), "Open");
                create_plan(&self.app.pool, self.api, &plan, &actor).await.unwrap()
            }
        };
        let app = applications::create(
            &self.app.pool,
            self.account,
            &NewApplication { plan_id, name: name.into(), description: String::new() },
            &actor,
        )
        .await
        .unwrap();
        let key = credentials::issue(&self.app.pool, self.account, app.id, &actor).await.unwrap();
        (app.id, key.id, key.secret.as_str().to_owned())
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(crate) async fn wait_until<F, Fut>(limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "condition not met within {limit:?}");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn is_ready(agent: &RunningAgent) -> bool {
    crate::helpers::plain_client()
        .get(format!("http://{}/ready", agent.admin_addr()))
        .send()
        .await
        .map(|r| r.status() == 200)
        .unwrap_or(false)
}

async fn call(agent: &RunningAgent, path_and_query: &str) -> reqwest::Response {
    crate::helpers::plain_client().get(format!("http://{}{path_and_query}", agent.proxy_addr())).send().await.unwrap()
}

async fn status(agent: &RunningAgent, path_and_query: &str) -> u16 {
    call(agent, path_and_query).await.status().as_u16()
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn keys_limits_and_lifecycle_are_enforced_at_the_edge(pool: PgPool) {
    let w = World::new(pool).await;
    let agent = w.agent("a").await;
    // Exactly N per minute window. If the minute turns mid-test, calls after the turn
    // already spent the new window's quota, so the retry uses a fresh application.
    let mut admitted = 0;
    let mut chosen = None;
    for attempt in 0..2 {
        let (app, _, key) = w.app_with_key(&format!("Edge app {attempt}"), Some("basic")).await;
        let minute = jiff::Timestamp::now().as_second() / 60;
        wait_until(Duration::from_secs(5), || async {
            status(&agent, &format!("/weather/cities?user_key={key}")).await != 403
        })
        .await;
        let mut statuses = Vec::new();
        for _ in 0..11 {
            statuses.push(status(&agent, &format!("/weather/cities/lisbon/current?user_key={key}")).await);
        }
        if jiff::Timestamp::now().as_second() / 60 == minute {
            admitted = statuses.iter().filter(|s| **s == 200).count();
            assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
            chosen = Some((app, key));
            break;
        }
        assert_eq!(attempt, 0, "the minute turned twice");
    }
    let (app, key) = chosen.expect("an attempt within one minute");
    // One call was spent on the readiness probe above.
    assert_eq!(admitted, 9, "a limit of 10 per minute admits exactly 10");
    let limited = call(&agent, &format!("/weather/cities?user_key={key}")).await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(limited.headers()["ratelimit-limit"], "10");
    let body: serde_json::Value = limited.json().await.unwrap();
    assert_eq!(body["error"], "limit_exceeded");

    // A fresh key on an unlimited plan is proxied, and the upstream never sees it.
    let (open_app, _, open_key) = w.app_with_key("Open app", None).await;
    wait_until(Duration::from_secs(5), || async {
        status(&agent, &format!("/weather/cities?user_key={open_key}")).await == 200
    })
    .await;
    let echoed: serde_json::Value =
        call(&agent, &format!("/weather/cities?country=PT&user_key={open_key}")).await.json().await.unwrap();
    assert_eq!(echoed["uri"], "/cities?country=PT");
    assert!(echoed["headers"]["x-forwarded-for"].as_str().unwrap().contains("127.0.0.1"));
    for (path, expected, code) in [
        ("/weather/cities".to_owned(), 401, "missing_credentials"),
        ("/weather/cities?user_key=tg_uk_unknown".to_owned(), 403, "invalid_credentials"),
        (format!("/weather/nope?user_key={open_key}"), 404, "no_matching_rule"),
        (format!("/elsewhere?user_key={open_key}"), 404, "unknown_api"),
    ] {
        let res = call(&agent, &path).await;
        assert_eq!(res.status().as_u16(), expected, "{path}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"], code, "{path}");
    }

    // Suspension, deprecation and retirement reach the agent.
    let actor = Actor::system("test");
    applications::transition(&w.app.pool, open_app, Transition::Suspend, &actor, &w.app.base).await.unwrap();
    wait_until(Duration::from_secs(5), || async {
        status(&agent, &format!("/weather/cities?user_key={open_key}")).await == 403
    })
    .await;
    let body: serde_json::Value =
        call(&agent, &format!("/weather/cities?user_key={open_key}")).await.json().await.unwrap();
    assert_eq!(body["error"], "application_not_live");
    applications::transition(&w.app.pool, open_app, Transition::Resume, &actor, &w.app.base).await.unwrap();
    let sunset = time::OffsetDateTime::now_utc() + time::Duration::days(30);
    lifecycle::set_state(&w.app.pool, w.api, ApiState::Deprecated, Some(sunset), &actor, &w.app.base).await.unwrap();
    wait_until(Duration::from_secs(5), || async {
        call(&agent, &format!("/weather/cities?user_key={open_key}")).await.headers().contains_key("sunset")
    })
    .await;
    let res = call(&agent, &format!("/weather/cities?user_key={open_key}")).await;
    assert_eq!(res.status(), 200);
    let since: i64 =
        sqlx::query_scalar("SELECT floor(extract(epoch FROM deprecated_at))::bigint FROM api_products WHERE id = $1")
            .bind(w.api.0)
            .fetch_one(&w.app.pool)
            .await
            .unwrap();
    assert!((time::OffsetDateTime::now_utc().unix_timestamp() - since).abs() < 60, "deprecated just now: {since}");
    let header = |name: &str| res.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(header("deprecation"), Some(format!("@{since}")), "RFC 9745's form: when it was deprecated");
    let sunset_day = sunset.date();
    let sunset_header = header("sunset").unwrap();
    assert!(
        sunset_header.contains(&format!("{:02} ", sunset_day.day()))
            && sunset_header.contains(&format!(" {} 00:00:00 GMT", sunset_day.year())),
        "{sunset_header}"
    );
    lifecycle::set_state(&w.app.pool, w.api, ApiState::Retired, None, &actor, &w.app.base).await.unwrap();
    wait_until(Duration::from_secs(5), || async {
        status(&agent, &format!("/weather/cities?user_key={open_key}")).await == 410
    })
    .await;
    let _ = app;
    agent.shutdown().await.unwrap();
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_revoked_key_is_refused_by_every_agent_within_a_second(pool: PgPool) {
    let w = World::new(pool).await;
    let (a, b) = (w.agent("a").await, w.agent("b").await);
    let (app, key_id, key) = w.app_with_key("Revoke me", None).await;
    for agent in [&a, &b] {
        wait_until(Duration::from_secs(5), || async {
            status(agent, &format!("/weather/cities?user_key={key}")).await == 200
        })
        .await;
    }
    let started = Instant::now();
    credentials::revoke(&w.app.pool, w.account, app, key_id, &Actor::system("test")).await.unwrap();
    let mut elapsed = Vec::new();
    for agent in [&a, &b] {
        wait_until(Duration::from_secs(2), || async {
            status(agent, &format!("/weather/cities?user_key={key}")).await == 403
        })
        .await;
        elapsed.push(started.elapsed());
    }
    println!("revocation refused by agent a after {:?} and by agent b after {:?}", elapsed[0], elapsed[1]);
    assert!(elapsed.iter().all(|e| *e < Duration::from_secs(1)), "{elapsed:?}");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// Replicas share one token: the fleet view lists each process with its own revision, and the
/// gateway stays connected while one of them is.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn agents_that_share_a_token_are_listed_each_with_its_own_state(pool: PgPool) {
    let w = World::new(pool).await;
    let (a, b) = (w.agent("a").await, w.agent("b").await);
    let ids = [a.agent_id(), b.agent_id()];
    assert_ne!(ids[0], ids[1]);
    let pool = w.app.pool.clone();
    let fleet = || async { gateways::list(&pool).await.unwrap().remove(0) };
    wait_until(Duration::from_secs(10), || async {
        let g = fleet().await;
        g.instances.len() == 2 && g.instances.iter().all(|i| i.connected && i.applied_revision.is_some())
    })
    .await;
    let g = fleet().await;
    assert!(g.connected && !g.silent, "{g:?}");
    let mut seen: Vec<_> = g.instances.iter().map(|i| i.agent_id).collect();
    seen.sort();
    let mut want = ids.to_vec();
    want.sort();
    assert_eq!(seen, want);
    assert!(g.instances.iter().all(|i| !i.host.is_empty()), "each sends its host name: {g:?}");
    assert_eq!(g.applied_revision, g.instances.iter().filter_map(|i| i.applied_revision).min());

    b.shutdown().await.unwrap();
    wait_until(Duration::from_secs(10), || async {
        fleet().await.instances.iter().any(|i| i.agent_id == ids[1] && !i.connected)
    })
    .await;
    let g = fleet().await;
    assert!(g.connected, "a is still connected: {g:?}");
    assert_eq!(g.connected_instances(), 1);
    assert_eq!(g.instances[0].agent_id, ids[0], "connected ones first");
    a.shutdown().await.unwrap();
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn agents_survive_the_management_server_and_no_usage_is_lost_or_doubled(pool: PgPool) {
    let w = World::new(pool.clone()).await;
    let a = w.agent("a").await;
    let b = w.agent("b").await;
    let (app, _, key) = w.app_with_key("Steady", None).await;
    for agent in [&a, &b] {
        wait_until(Duration::from_secs(5), || async {
            status(agent, &format!("/weather/cities?user_key={key}")).await == 200
        })
        .await;
    }
    let ok = Arc::new(AtomicU64::new(2));
    let failed = Arc::new(AtomicU64::new(0));
    let load = |agent_addr: std::net::SocketAddr, n: u32| {
        let (ok, failed, key) = (ok.clone(), failed.clone(), key.clone());
        async move {
            let client = crate::helpers::plain_client();
            for _ in 0..n {
                match client.get(format!("http://{agent_addr}/weather/cities?user_key={key}")).send().await {
                    Ok(res) if res.status() == 200 => ok.fetch_add(1, Ordering::SeqCst),
                    _ => failed.fetch_add(1, Ordering::SeqCst),
                };
            }
        }
    };
    // Load runs while the management server goes away.
    let during = tokio::spawn(load(a.proxy_addr(), 300));
    w.handle.stop(false).await;
    during.await.unwrap();
    // An agent restarted while the server is down serves from its saved config.
    b.shutdown().await.unwrap();
    let b = w.agent("b").await;
    load(b.proxy_addr(), 100).await;
    assert_eq!(failed.load(Ordering::SeqCst), 0, "every call during the outage succeeded");

    // The server comes back on the same address; spooled usage arrives once.
    // Connections the stopped server's workers opened died with their runtimes,
    // so the rest of the test uses a pool of its own.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(5)
        .connect_with(pool.connect_options().as_ref().clone())
        .await
        .unwrap();
    let listener = TcpListener::bind(w.listen).expect("the port is free again");
    let (_app, handle) = spawn_app_on(pool.clone(), listener, &[]).await;
    let api = find_by_slug(&pool, "weather").await.unwrap().unwrap();
    let hits: uuid::Uuid = sqlx::query_scalar("SELECT id FROM metrics WHERE api_id = $1 AND system_name = 'hits'")
        .bind(api.id.0)
        .fetch_one(&pool)
        .await
        .unwrap();
    let expected = i64::try_from(ok.load(Ordering::SeqCst)).unwrap();
    let pool_for_wait = pool.clone();
    wait_until(Duration::from_secs(30), || {
        let pool = pool_for_wait.clone();
        async move { tollgate_core::usage::total_hits(&pool, app.0, hits).await.unwrap() >= expected }
    })
    .await;
    // Give any duplicate a chance to arrive, then compare exactly.
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    let counted = tollgate_core::usage::total_hits(&pool, app.0, hits).await.unwrap();
    println!("requests that succeeded: {expected}; usage counted: {counted}");
    assert_eq!(counted, expected, "usage counted equals the calls that succeeded");
    handle.stop(true).await;
    pool.close().await;
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_bad_config_update_is_refused_and_the_previous_one_keeps_serving(pool: PgPool) {
    let w = World::new(pool.clone()).await;
    let agent = w.agent("a").await;
    let (_, _, key) = w.app_with_key("Keeps working", None).await;
    wait_until(Duration::from_secs(5), || async {
        status(&agent, &format!("/weather/cities?user_key={key}")).await == 200
    })
    .await;
    // Corrupt the API behind core's back: a published API with no upstream and nothing
    // mocked, which every change through the platform refuses. (A mapping rule or an upstream
    // URL agents cannot use no longer serves here: the server leaves those out of the config.)
    sqlx::query("DELETE FROM api_upstreams WHERE api_id = $1").bind(w.api.0).execute(&pool).await.unwrap();
    sqlx::query("INSERT INTO config_changes (entity, entity_id, operation) VALUES ('api', $1, 'upsert')")
        .bind(w.api.0)
        .execute(&pool)
        .await
        .unwrap();
    let pool_for_wait = pool.clone();
    wait_until(Duration::from_secs(10), || {
        let pool = pool_for_wait.clone();
        async move {
            let error: Option<String> =
                sqlx::query_scalar("SELECT last_error FROM gateway_instances WHERE last_error IS NOT NULL LIMIT 1")
                    .fetch_optional(&pool)
                    .await
                    .unwrap()
                    .flatten();
            error.is_some_and(|e| e.contains("refused"))
        }
    })
    .await;
    assert_eq!(
        status(&agent, &format!("/weather/cities?user_key={key}")).await,
        200,
        "the last good config still serves"
    );
    agent.shutdown().await.unwrap();
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_key_location_and_auth_mode_are_configurable_per_api(pool: PgPool) {
    let w = World::new(pool.clone()).await;
    let agent = w.agent("a").await;
    let (app, _, key) = w.app_with_key("Header app", None).await;
    wait_until(Duration::from_secs(5), || async {
        status(&agent, &format!("/weather/cities?user_key={key}")).await == 200
    })
    .await;
    let actor = Actor::system("test");
    let header = ApiChanges {
        key_location: Some(KeyLocation::Header),
        key_name: Some("X-Api-Key".into()),
        ..ApiChanges::default()
    };
    detail::update(&pool, w.api, &header, &actor).await.unwrap();
    let with_header = |key: String| {
        let url = format!("http://{}/weather/cities", agent.proxy_addr());
        async move {
            crate::helpers::plain_client().get(url).header("x-api-key", key).send().await.unwrap().status().as_u16()
        }
    };
    wait_until(Duration::from_secs(5), || with_header(key.clone()).then(|s| async move { s == 200 })).await;
    assert_eq!(
        status(&agent, &format!("/weather/cities?user_key={key}")).await,
        401,
        "the query parameter no longer counts"
    );

    // app_id + app_key: applications get a public app_id, keys are app keys.
    let pair = ApiChanges {
        auth_mode: Some(AuthMode::AppIdAppKey),
        key_location: Some(KeyLocation::Query),
        ..ApiChanges::default()
    };
    detail::update(&pool, w.api, &pair, &actor).await.unwrap();
    let view = applications::get(&pool, w.account, app).await.unwrap();
    let app_id = view.app_id.expect("an app_id was assigned");
    let app_key = credentials::issue(&pool, w.account, app, &actor).await.unwrap().secret.as_str().to_owned();
    assert!(app_key.starts_with("tg_ak_"));
    let ok = format!("/weather/cities?app_id={app_id}&app_key={app_key}");
    wait_until(Duration::from_secs(5), || async { status(&agent, &ok).await == 200 }).await;
    assert_eq!(
        status(&agent, &format!("/weather/cities?app_id={app_id}&app_key={key}")).await,
        403,
        "a user key is not an app key"
    );
    assert_eq!(status(&agent, &format!("/weather/cities?app_id={app_id}")).await, 401);
    agent.shutdown().await.unwrap();
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn an_agent_restarted_on_a_quiet_system_is_ready_within_a_second(pool: PgPool) {
    let w = World::new(pool).await;
    let (_, _, key) = w.app_with_key("Quiet", None).await;
    let agent = w.agent("a").await;
    wait_until(Duration::from_secs(5), || async {
        status(&agent, &format!("/weather/cities?user_key={key}")).await == 200
    })
    .await;
    agent.shutdown().await.unwrap();

    // Nothing changes on the server: its answer to the restarted agent is a heartbeat.
    let started = Instant::now();
    let agent = Agent::start(w.agent_settings("a")).await.expect("agent starts");
    wait_until(Duration::from_secs(20), || is_ready(&agent)).await;
    let elapsed = started.elapsed();
    println!("an agent restarted on a quiet system was ready after {elapsed:?}");
    assert!(elapsed < Duration::from_secs(1), "ready only after {elapsed:?}");
    let ready: serde_json::Value = crate::helpers::plain_client()
        .get(format!("http://{}/ready", agent.admin_addr()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["source"], "server", "{ready}");
    assert_eq!(status(&agent, &format!("/weather/cities?user_key={key}")).await, 200);
    agent.shutdown().await.unwrap();
}

/// The Swagger Petstore 3.0 document (petstore3.swagger.io): 19 operations, among them
/// `GET /pet/findByStatus` next to `GET /pet/{petId}` and `GET /user/login` next to
/// `GET /user/{username}`.
const PETSTORE: &str = include_str!("../fixtures/petstore-openapi-3.0.json");

/// One call per Petstore operation: (method, path below the base path, the rule it must count on).
const PETSTORE_CALLS: [(&str, &str, &str); 19] = [
    ("PUT", "/pet", "/pet$"),
    ("POST", "/pet", "/pet$"),
    ("GET", "/pet/findByStatus?status=available", "/pet/findByStatus$"),
    ("GET", "/pet/findByTags?tags=tag1", "/pet/findByTags$"),
    ("GET", "/pet/7", "/pet/{petId}$"),
    ("POST", "/pet/7?name=rex", "/pet/{petId}$"),
    ("DELETE", "/pet/7", "/pet/{petId}$"),
    ("POST", "/pet/7/uploadImage", "/pet/{petId}/uploadImage$"),
    ("GET", "/store/inventory", "/store/inventory$"),
    ("POST", "/store/order", "/store/order$"),
    ("GET", "/store/order/3", "/store/order/{orderId}$"),
    ("DELETE", "/store/order/3", "/store/order/{orderId}$"),
    ("POST", "/user", "/user$"),
    ("POST", "/user/createWithList", "/user/createWithList$"),
    ("GET", "/user/login?username=ann&password=x", "/user/login$"),
    ("GET", "/user/logout", "/user/logout$"),
    ("GET", "/user/ann", "/user/{username}$"),
    ("PUT", "/user/ann", "/user/{username}$"),
    ("DELETE", "/user/ann", "/user/{username}$"),
];

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn every_petstore_operation_called_once_counts_once_on_its_method_and_once_on_hits(pool: PgPool) {
    let w = World::new(pool.clone()).await;
    let token = crate::helpers::demo_admin_token(&pool).await;
    let admin = |path: &str, body: serde_json::Value| {
        let request = w.app.client.post(w.app.url(path)).bearer_auth(token.as_str()).json(&body);
        async move {
            let res = request.send().await.unwrap();
            let status = res.status().as_u16();
            let body: serde_json::Value = res.json().await.unwrap();
            assert!((200..300).contains(&status), "{status}: {body}");
            body
        }
    };
    let api = admin(
        "/admin/api/v1/apis",
        serde_json::json!({"spec": PETSTORE, "slug": "petstore", "upstream_url": start_upstream()}),
    )
    .await;
    assert_eq!(api["operation_count"], 19);
    let api_id = api["id"].as_str().unwrap().to_owned();
    let plan = |system_name: &str, limits: serde_json::Value| {
        serde_json::json!({"system_name": system_name, "name": system_name, "currency": "EUR", "published": true,
            "limits": limits})
    };
    let open = admin(&format!("/admin/api/v1/apis/{api_id}/plans"), plan("open", serde_json::json!([]))).await;
    let five = admin(
        &format!("/admin/api/v1/apis/{api_id}/plans"),
        plan("five", serde_json::json!([{"metric": "hits", "period": "minute", "max": 5}])),
    )
    .await;
    admin(&format!("/admin/api/v1/apis/{api_id}/lifecycle"), serde_json::json!({"state": "published"})).await;
    let actor = Actor::system("test");
    let mut keys = Vec::new();
    for plan in [&open, &five] {
        let plan_id = tollgate_core::plans::PlanId(plan["id"].as_str().unwrap().parse().unwrap());
        let new = NewApplication { plan_id, name: format!("Pets {}", plan["system_name"]), description: String::new() };
        let app = applications::create(&pool, w.account, &new, &actor).await.unwrap();
        let key = credentials::issue(&pool, w.account, app.id, &actor).await.unwrap();
        keys.push((app.id, key.secret.as_str().to_owned()));
    }
    let ((app, key), (_, limited_key)) = (keys[0].clone(), keys[1].clone());
    let agent = w.agent("a").await;

    let send = |proxy: std::net::SocketAddr, method: &str, path: &str, key: &str| {
        let separator = if path.contains('?') { '&' } else { '?' };
        let url = format!("http://{proxy}/petstore{path}{separator}user_key={key}");
        let request = crate::helpers::plain_client().request(method.parse().unwrap(), url);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    for (method, path, _) in PETSTORE_CALLS {
        assert_eq!(send(agent.proxy_addr(), method, path, &key).await, 200, "{method} {path}");
    }

    // Each operation's method counts once, `hits` once per call.
    let rule_metrics: Vec<(String, String, uuid::Uuid)> = sqlx::query_as(
        "SELECT r.http_method, r.pattern, r.metric_id FROM mapping_rules r JOIN api_products p ON p.id = r.api_id
         WHERE p.slug = 'petstore'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let hits: uuid::Uuid =
        sqlx::query_scalar("SELECT m.id FROM metrics m JOIN api_products p ON p.id = m.api_id WHERE p.slug = 'petstore' AND m.system_name = 'hits'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let pool_for_wait = pool.clone();
    wait_until(Duration::from_secs(20), || {
        let pool = pool_for_wait.clone();
        async move { tollgate_core::usage::total_hits(&pool, app.0, hits).await.unwrap() >= 19 }
    })
    .await;
    agent.shutdown().await.unwrap();
    assert_eq!(tollgate_core::usage::total_hits(&pool, app.0, hits).await.unwrap(), 19, "one hit per call");
    for (method, path, pattern) in PETSTORE_CALLS {
        let (_, _, metric) = rule_metrics
            .iter()
            .find(|(m, p, _)| m == method && p == pattern)
            .unwrap_or_else(|| panic!("a rule {method} {pattern}"));
        let expected = PETSTORE_CALLS.iter().filter(|(m, _, p)| *m == method && *p == pattern).count();
        assert_eq!(
            tollgate_core::usage::total_hits(&pool, app.0, *metric).await.unwrap(),
            i64::try_from(expected).unwrap(),
            "{method} {path} counts on {pattern} only"
        );
    }

    // A plan of 5 hits a minute admits 5 such calls (retried once if the minute turned mid-test).
    let agent = w.agent("b").await;
    // Late in a minute, start in the next: a retry after a turn finds the calls made after the
    // turn already counted, so the turn must be unlikely, not only retried.
    let second = jiff::Timestamp::now().as_second() % 60;
    if second > 45 {
        tokio::time::sleep(Duration::from_secs(u64::try_from(61 - second).unwrap_or(1))).await;
    }
    for attempt in 0..2 {
        let minute = jiff::Timestamp::now().as_second() / 60;
        let mut statuses = Vec::new();
        for _ in 0..6 {
            statuses.push(send(agent.proxy_addr(), "GET", "/pet/findByStatus?status=sold", &limited_key).await);
        }
        if jiff::Timestamp::now().as_second() / 60 == minute {
            assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
            break;
        }
        assert_eq!(attempt, 0, "the minute turned twice");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    agent.shutdown().await.unwrap();
}

fn localhost() -> ClientAddress {
    ClientAddress::new(std::net::Ipv4Addr::LOCALHOST.into())
}
