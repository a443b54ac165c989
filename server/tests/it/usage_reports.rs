//! The usage pages through HTTP: what the portal shows and exports equals
//! what the database counted; limits, failed calls, muting, notifications,
//! tenant isolation, empty periods and bad parameters.

use sqlx::PgPool;
use tollgate::cli::dev::{DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD, DEMO_DEVELOPER_EMAIL, DEMO_DEVELOPER_PASSWORD, seed};
use tollgate_core::audit::Actor;
use tollgate_core::gateways;
use tollgate_protocol::usage::LATENCY_BUCKETS;
use tollgate_protocol::usage::{FailedCall, RefusedEntry};
use tollgate_protocol::{StatusClass, UsageBatch, UsageEntry};
use uuid::Uuid;

use crate::helpers::{TestApp, client, csrf_from, spawn_app};
use crate::portal::{register_app, verified_developer};

struct Setup {
    app: TestApp,
    agent_token: String,
    /// The demo developer's app on the Basic plan (10 hits a minute).
    app_id: Uuid,
}

async fn setup(pool: PgPool) -> Setup {
    seed(&pool).await.unwrap();
    let (_, token) = gateways::create(&pool, "edge-1", &Actor::system("test")).await.unwrap();
    let app = spawn_app(pool).await;
    app.sign_in(DEMO_DEVELOPER_EMAIL, DEMO_DEVELOPER_PASSWORD).await;
    let (path, _key) = register_app(&app, "Metered").await;
    let app_id = Uuid::parse_str(path.trim_start_matches("/apps/")).unwrap();
    Setup { app, agent_token: token.as_str().to_owned(), app_id }
}

async fn metric(pool: &PgPool, app: Uuid, system_name: &str) -> Uuid {
    sqlx::query_scalar(
        "SELECT m.id FROM metrics m JOIN applications a ON a.api_id = m.api_id WHERE a.id = $1 AND m.system_name = $2",
    )
    .bind(app)
    .bind(system_name)
    .fetch_one(pool)
    .await
    .unwrap()
}

fn entry(app: Uuid, metric: Uuid, minute: i64, class: StatusClass, count: u64, bucket: usize) -> UsageEntry {
    let mut latency_buckets = [0u64; LATENCY_BUCKETS];
    latency_buckets[bucket] = count;
    UsageEntry { application_id: app, metric, minute, status_class: class, count, latency_buckets, group: None }
}

async fn post_batch(s: &Setup, entries: Vec<UsageEntry>) {
    post_full_batch(s, entries, Vec::new(), Vec::new()).await;
}

async fn post_full_batch(
    s: &Setup,
    entries: Vec<UsageEntry>,
    refused: Vec<RefusedEntry>,
    failed_calls: Vec<FailedCall>,
) {
    let batch = UsageBatch {
        id: Uuid::now_v7(),
        agent_id: Uuid::now_v7(),
        entries,
        credentials_used: Vec::new(),
        refused,
        failed_calls,
        failed_calls_dropped: 0,
    };
    let res =
        s.app.client.post(s.app.url("/agent/v1/usage")).bearer_auth(&s.agent_token).json(&batch).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

/// The number in the `calls` cell of a metric's row in the totals table.
fn calls_on_page(html: &str, system_name: &str) -> i64 {
    let row = html.split(&format!("data-metric=\"{system_name}\"")).nth(1).expect("the metric's row");
    let cell = row.split("class=\"calls\">").nth(1).unwrap();
    cell.split('<').next().unwrap().parse().unwrap()
}

/// The CSV's rows as maps of header → value.
fn csv_rows(text: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut lines = text.lines();
    let headers: Vec<String> = lines.next().unwrap().split(',').map(str::to_owned).collect();
    lines.map(|l| headers.iter().cloned().zip(l.split(',').map(str::to_owned)).collect()).collect()
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_usage_page_and_its_csv_show_what_the_database_counted(pool: PgPool) {
    let s = setup(pool).await;
    let hits = metric(&s.app.pool, s.app_id, "hits").await;
    let methods: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT m.id, m.system_name FROM metrics m JOIN applications a ON a.api_id = m.api_id
         WHERE a.id = $1 AND m.parent_id IS NOT NULL ORDER BY m.system_name",
    )
    .bind(s.app_id)
    .fetch_all(&s.app.pool)
    .await
    .unwrap();
    let (method, method_name) = methods.first().cloned().expect("the demo API has methods");
    let now = jiff::Timestamp::now().as_second() / 60 * 60;
    // Two minutes with calls and one without between them (a gap); 7 + 1 hits.
    post_batch(
        &s,
        vec![
            entry(s.app_id, hits, now - 120, StatusClass::Success, 5, 1),
            entry(s.app_id, method, now - 120, StatusClass::Success, 3, 1),
            entry(s.app_id, hits, now, StatusClass::Success, 2, 4),
            entry(s.app_id, hits, now, StatusClass::ServerError, 1, 9),
        ],
    )
    .await;
    let in_db = |metric: Uuid| {
        let pool = s.app.pool.clone();
        let app = s.app_id;
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT coalesce(sum(hits), 0)::bigint FROM usage_rollups WHERE application_id = $1 AND metric_id = $2 AND granularity = 'minute'",
            )
            .bind(app)
            .bind(metric)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let (db_hits, db_method) = (in_db(hits).await, in_db(method).await);
    assert_eq!((db_hits, db_method), (8, 3));

    let res = s.app.get(&format!("/apps/{}/usage?period=1h", s.app_id)).await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert_eq!(calls_on_page(&html, "hits"), db_hits);
    assert_eq!(calls_on_page(&html, &method_name), db_method);
    assert!(html.contains("role=\"img\"") && html.contains("<table"), "a chart and its table");
    assert!(html.contains("<td>7</td><td>0</td><td>0</td><td>1</td><td>12.5%</td>"), "status classes: {html}");
    // Latency of the 8 calls: 5 at ≤ 10 ms, 2 at ≤ 100 ms, 1 at ≤ 5000 ms (ranks 4, 8 and 8).
    assert!(html.contains("<td>≤ 10 ms</td><td>≤ 5000 ms</td><td>≤ 5000 ms</td>"), "percentiles");
    // The limit bar: 3 hits in this minute of 10 allowed.
    assert!(html.contains("3 / 10 (30%)"), "minute limit bar");
    assert!(html.contains("8 / 1000 (0%)"), "day limit bar");
    assert!(html.contains("No failed calls"));

    let csv = s.app.get(&format!("/apps/{}/usage.csv?table=usage&period=1h", s.app_id)).await;
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let rows = csv_rows(&csv.text().await.unwrap());
    let sum = |name: &str| -> i64 {
        rows.iter().filter(|r| r["metric"] == name).map(|r| r["calls"].parse::<i64>().unwrap()).sum()
    };
    assert_eq!(sum("hits"), db_hits);
    assert_eq!(sum(&method_name), db_method);
    assert_eq!(rows.iter().filter(|r| r["metric"] == "hits").count(), 60, "one row per minute, gaps as zeros");
    assert!(rows.iter().any(|r| r["metric"] == "hits" && r["calls"] == "0"));

    let limits = s.app.get(&format!("/apps/{}/usage.csv?table=limits", s.app_id)).await.text().await.unwrap();
    let limits = csv_rows(&limits);
    let minute = limits.iter().find(|r| r["period"] == "minute").unwrap();
    assert_eq!((minute["used"].as_str(), minute["max"].as_str(), minute["percent"].as_str()), ("3", "10", "30"));

    let status =
        s.app.get(&format!("/apps/{}/usage.csv?table=status&period=24h", s.app_id)).await.text().await.unwrap();
    let status = csv_rows(&status);
    assert_eq!(status.len(), 24);
    let total = |k: &str| status.iter().map(|r| r[k].parse::<i64>().unwrap()).sum::<i64>();
    assert_eq!((total("2xx"), total("5xx")), (7, 1));
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn failed_calls_are_listed_newest_first_and_exported(pool: PgPool) {
    let s = setup(pool).await;
    let api: Uuid = sqlx::query_scalar("SELECT api_id FROM applications WHERE id = $1")
        .bind(s.app_id)
        .fetch_one(&s.app.pool)
        .await
        .unwrap();
    let now = jiff::Timestamp::now();
    let minute = now.as_second() / 60 * 60;
    // As an agent reports them: the refusals (not usage) and a sample of the failed calls, oldest first.
    let failed = [(30, 429, Some("limit_exceeded")), (20, 502, None), (10, 403, Some("key_expired"))]
        .into_iter()
        .map(|(ago, status, error): (i64, u16, Option<&str>)| FailedCall {
            application_id: s.app_id,
            api_id: api,
            at: now - jiff::SignedDuration::from_secs(ago),
            method: "GET".into(),
            metric: None,
            path: "/weather/forecast".into(),
            status,
            error: error.map(str::to_owned),
            key_prefix: Some("tg_uk_ab12".into()),
            latency_us: 1500,
            request_id: Some(Uuid::from_u128(u128::from(status))),
        })
        .collect();
    let refused = [429u16, 403]
        .into_iter()
        .map(|status| RefusedEntry {
            application_id: s.app_id,
            minute,
            status,
            count: 1,
            latency_buckets: {
                let mut b = [0u64; LATENCY_BUCKETS];
                b[0] = 1;
                b
            },
            group: None,
        })
        .collect();
    post_full_batch(&s, Vec::new(), refused, failed).await;
    let html = s.app.get(&format!("/apps/{}/usage", s.app_id)).await.text().await.unwrap();
    let table = html.split("data-testid=\"failed-calls\"").nth(1).expect("the failed calls table");
    let statuses: Vec<&str> = table.split("class=\"status\">").skip(1).map(|c| c.split('<').next().unwrap()).collect();
    assert_eq!(statuses, ["403", "502", "429"], "newest first");
    assert!(table.contains("<code>limit_exceeded</code>") && table.contains("tg_uk_ab12"));
    // Refusals are 4xx calls in the status classes, not usage.
    assert!(html.contains("<td>0</td><td>0</td><td>2</td><td>0</td><td>100.0%</td>"), "{html}");
    assert!(html.contains("0 / 10 (0%)"), "refusals never count against a limit");
    let csv = s.app.get(&format!("/apps/{}/usage.csv?table=failed", s.app_id)).await.text().await.unwrap();
    let rows = csv_rows(&csv);
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["status"], "403");
    assert_eq!(rows[0]["error"], "key_expired");
    assert_eq!(rows[0]["latency_ms"], "1.5");
    // The request id an agent gave each answer is shown, exported and served, to be quoted.
    let id_403 = Uuid::from_u128(403).to_string();
    assert!(table.contains(&format!("<code class=\"small\">{id_403}</code>")), "{table}");
    assert_eq!(rows[0]["request_id"], id_403);
    let admin = s.app.client.get(s.app.url(&format!("/admin/api/v1/applications/{}/failed-calls", s.app_id)));
    let token = crate::helpers::demo_admin_token(&s.app.pool).await;
    let calls: serde_json::Value = admin.bearer_auth(token.as_str()).send().await.unwrap().json().await.unwrap();
    assert_eq!(calls[0]["request_id"], id_403.as_str(), "{calls}");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn an_empty_period_says_so_and_bad_parameters_are_422_naming_the_field(pool: PgPool) {
    let s = setup(pool).await;
    let html = s.app.get(&format!("/apps/{}/usage?period=12m", s.app_id)).await.text().await.unwrap();
    assert!(html.contains("No calls in this period"));
    assert!(html.contains("0 / 10 (0%)"));
    let rows = csv_rows(&s.app.get(&format!("/apps/{}/usage.csv?period=12m", s.app_id)).await.text().await.unwrap());
    assert!(rows.iter().all(|r| r["calls"] == "0") && rows.iter().filter(|r| r["metric"] == "hits").count() == 12);

    let bad = s.app.get(&format!("/apps/{}/usage?period=7d", s.app_id)).await;
    assert_eq!(bad.status(), 422);
    assert!(bad.text().await.unwrap().contains("period"));
    let bad = s.app.get(&format!("/apps/{}/usage.csv?table=secrets", s.app_id)).await;
    assert_eq!(bad.status(), 422);
    assert!(bad.text().await.unwrap().contains("table"));
    assert_eq!(s.app.get("/apps/not-a-uuid/usage").await.status(), 404);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn another_accounts_usage_is_not_found(pool: PgPool) {
    let s = setup(pool).await;
    let mallory = TestApp { base: s.app.base.clone(), pool: s.app.pool.clone(), client: client() };
    verified_developer(&mallory, "mallory@example.com").await;
    for path in [format!("/apps/{}/usage", s.app_id), format!("/apps/{}/usage.csv?table=failed", s.app_id)] {
        let res = mallory.get(&path).await;
        assert_eq!(res.status(), 404, "{path}");
        assert!(!res.text().await.unwrap().contains("Metered"));
    }
    let token = csrf_from(&mallory.get("/dashboard").await.text().await.unwrap());
    let res =
        mallory.post_form(&format!("/apps/{}/alerts", s.app_id), &[("csrf_token", &token), ("mute_80", "on")]).await;
    assert_eq!(res.status(), 404);
    let muted: Vec<i16> = sqlx::query_scalar("SELECT muted_alert_levels FROM applications WHERE id = $1")
        .bind(s.app_id)
        .fetch_one(&s.app.pool)
        .await
        .unwrap();
    assert!(muted.is_empty());
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn developers_mute_warnings_and_read_their_notifications(pool: PgPool) {
    let s = setup(pool).await;
    let page = s.app.get(&format!("/apps/{}/usage", s.app_id)).await.text().await.unwrap();
    let token = csrf_from(&page);
    let res = s
        .app
        .post_form(
            &format!("/apps/{}/alerts", s.app_id),
            &[("csrf_token", &token), ("mute_50", "on"), ("mute_90", "on")],
        )
        .await;
    assert_eq!(res.status(), 303);
    let muted: Vec<i16> = sqlx::query_scalar("SELECT muted_alert_levels FROM applications WHERE id = $1")
        .bind(s.app_id)
        .fetch_one(&s.app.pool)
        .await
        .unwrap();
    assert_eq!(muted, [50, 90]);
    let page = s.app.get(&format!("/apps/{}/usage", s.app_id)).await.text().await.unwrap();
    assert!(
        page.contains("name=\"mute_90\" value=\"on\" checked")
            && !page.contains("name=\"mute_80\" value=\"on\" checked")
    );

    // Two notifications to the account: the header counts them until they are read.
    for title in ["Metered reached 80% of hits per minute", "Metered reached 100% of hits per minute"] {
        sqlx::query(
            "INSERT INTO notifications (id, account_id, kind, title, link)
             SELECT $1, account_id, 'usage_alert', $2, '/apps/' || id || '/usage' FROM applications WHERE id = $3",
        )
        .bind(Uuid::now_v7())
        .bind(title)
        .bind(s.app_id)
        .execute(&s.app.pool)
        .await
        .unwrap();
    }
    let html = s.app.get("/notifications").await.text().await.unwrap();
    assert!(html.contains("data-testid=\"unread-count\">2<"), "{html}");
    assert!(html.contains("reached 100%") && html.contains("reached 80%"));
    let id: Uuid = sqlx::query_scalar("SELECT id FROM notifications WHERE title LIKE '%100%'")
        .fetch_one(&s.app.pool)
        .await
        .unwrap();
    let res = s.app.post_form(&format!("/notifications/{id}/read"), &[("csrf_token", &csrf_from(&html))]).await;
    assert_eq!(res.status(), 303);
    let html = s.app.get("/notifications").await.text().await.unwrap();
    assert!(html.contains("data-testid=\"unread-count\">1<"));
    s.app.post_form("/notifications/read-all", &[("csrf_token", &csrf_from(&html))]).await;
    let html = s.app.get("/dashboard").await.text().await.unwrap();
    assert!(!html.contains("unread-count"));
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn admins_see_the_same_numbers_on_the_dashboard_drill_down_csv_and_rest_api(pool: PgPool) {
    let s = setup(pool).await;
    let hits = metric(&s.app.pool, s.app_id, "hits").await;
    let now = jiff::Timestamp::now().as_second() / 60 * 60;
    post_batch(
        &s,
        vec![
            entry(s.app_id, hits, now - 60, StatusClass::Success, 6, 2),
            entry(s.app_id, hits, now, StatusClass::ClientError, 2, 2),
        ],
    )
    .await;
    let account: Uuid = sqlx::query_scalar("SELECT account_id FROM applications WHERE id = $1")
        .bind(s.app_id)
        .fetch_one(&s.app.pool)
        .await
        .unwrap();
    let api: Uuid = sqlx::query_scalar("SELECT api_id FROM applications WHERE id = $1")
        .bind(s.app_id)
        .fetch_one(&s.app.pool)
        .await
        .unwrap();
    let admin = TestApp { base: s.app.base.clone(), pool: s.app.pool.clone(), client: client() };
    admin.sign_in(DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD).await;

    let home = admin.get("/admin?period=1h").await.text().await.unwrap();
    assert!(home.contains("<td>6</td><td>0</td><td>2</td><td>0</td><td>25.0%</td>"), "status and error rate: {home}");
    assert!(home.contains("Metered</a></td><td>8</td>"), "top applications");
    assert!(home.contains("Demo Developer Co</a></td><td>8</td>"), "top accounts");
    // All 8 calls in the third latency bucket (≤ 25 ms).
    assert!(home.contains("<td>≤ 25 ms</td><td>≤ 25 ms</td><td>≤ 25 ms</td>"), "latency percentiles: {home}");
    // Calls per API: the API's column of the chart's table sums to the 8 calls, in two of the 60 minutes.
    let api_name: String = sqlx::query_scalar("SELECT name FROM api_products WHERE id = $1")
        .bind(api)
        .fetch_one(&s.app.pool)
        .await
        .unwrap();
    let traffic = home.split("Calls per API (calls)").nth(1).expect("the traffic chart's table");
    let traffic = traffic.split("</table>").next().unwrap();
    assert!(traffic.contains(&format!("<th scope=\"col\">{api_name}</th>")), "one series per API: {traffic}");
    let cells: Vec<i64> =
        traffic.split("<td>").skip(1).map(|c| c.split('<').next().unwrap().parse().unwrap()).collect();
    assert_eq!((cells.len(), cells.iter().sum::<i64>()), (60, 8), "calls per API per minute");
    assert_eq!(cells.iter().filter(|&&c| c > 0).count(), 2);
    assert!(home.contains("0 of 1 agents connected"), "fleet: the registered agent never connected");
    assert!(home.contains("data-testid=\"apis\""), "the API list stays");

    // Filters combine; a filter that excludes the app shows nothing.
    let page = admin.get(&format!("/admin/usage?period=1h&account={account}&api={api}")).await.text().await.unwrap();
    assert_eq!(calls_on_page(&page, "hits"), 8);
    let other = Uuid::now_v7();
    let page = admin.get(&format!("/admin/usage?period=1h&account={other}&api={api}")).await.text().await.unwrap();
    assert!(page.contains("No calls in this period"));
    let page = admin.get(&format!("/admin/usage?period=1h&application={}", s.app_id)).await.text().await.unwrap();
    assert!(page.contains("2 / 10 (20%)") && page.contains("8 / 1000 (0%)"), "one application's limits");
    let bad = admin.get("/admin/usage?account=nope").await;
    assert_eq!(bad.status(), 422);
    assert!(bad.text().await.unwrap().contains("account"));
    let csv = admin.get(&format!("/admin/usage.csv?table=usage&period=1h&application={}", s.app_id)).await;
    let rows = csv_rows(&csv.text().await.unwrap());
    assert_eq!(
        rows.iter().filter(|r| r["metric"] == "hits").map(|r| r["calls"].parse::<i64>().unwrap()).sum::<i64>(),
        8
    );
    assert_eq!(admin.get("/admin/usage.csv?table=failed").await.status(), 422, "failed calls need an application");
    assert_eq!(s.app.get("/admin/usage").await.status(), 403, "developers are not admins");

    // Violations: an alert at 100 % or more.
    sqlx::query(
        "INSERT INTO usage_alerts (application_id, usage_limit_id, window_start, threshold_pct, used, max_value)
         SELECT a.id, l.id, now(), 100, 10, 10 FROM applications a JOIN usage_limits l ON l.plan_id = a.plan_id
         WHERE a.id = $1 AND l.period = 'minute'",
    )
    .bind(s.app_id)
    .execute(&s.app.pool)
    .await
    .unwrap();
    let html = admin.get("/admin/violations").await.text().await.unwrap();
    assert!(html.contains("Metered") && html.contains("<td>100%</td><td>10 / 10</td>"), "{html}");

    // The REST API: same numbers, ANDed filters, 422 naming the field.
    let token = crate::helpers::demo_admin_token(&s.app.pool).await;
    let api_get = |path: String| {
        let req = s.app.client.get(s.app.url(&path)).bearer_auth(token.as_str());
        async move {
            let res = req.send().await.unwrap();
            (res.status().as_u16(), res.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, body) = api_get(format!(
        "/admin/api/v1/usage?granularity=minute&application={}&metric={hits}&account={account}",
        s.app_id
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    let rows = body["rows"].as_array().unwrap();
    assert_eq!(rows.iter().map(|r| r["hits"].as_i64().unwrap()).sum::<i64>(), 8);
    assert_eq!(rows.iter().map(|r| r["status_4xx"].as_i64().unwrap()).sum::<i64>(), 2);
    let (_, body) =
        api_get(format!("/admin/api/v1/usage?granularity=minute&application={}&account={other}", s.app_id)).await;
    assert!(body["rows"].as_array().unwrap().is_empty(), "filters are ANDed");
    for (query, field) in [
        ("granularity=week", "granularity"),
        ("application=nope", "application"),
        ("from=yesterday", "from"),
        ("from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "to"),
        ("granularity=minute&from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", "to"),
        // No `to` (now): a `from` in the future is the one to change.
        ("from=2999-01-01T00:00:00Z", "from"),
    ] {
        let (status, body) = api_get(format!("/admin/api/v1/usage?{query}")).await;
        assert_eq!((status, body["field"].as_str()), (422, Some(field)), "{query}: {body}");
    }
    let (status, body) = api_get(format!("/admin/api/v1/applications/{}/failed-calls", s.app_id)).await;
    assert_eq!(status, 200);
    assert!(body.as_array().unwrap().is_empty());
    let (status, _) = api_get(format!("/admin/api/v1/applications/{other}/failed-calls")).await;
    assert_eq!(status, 404);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn admins_choose_a_plans_alert_levels_on_its_page(pool: PgPool) {
    seed(&pool).await.unwrap();
    let app = spawn_app(pool).await;
    app.sign_in(DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD).await;
    let plan: Uuid =
        sqlx::query_scalar("SELECT id FROM plans WHERE system_name = 'basic'").fetch_one(&app.pool).await.unwrap();
    let page = app.get(&format!("/admin/plans/{plan}")).await.text().await.unwrap();
    assert!(
        page.contains("name=\"level_80\" value=\"on\" checked")
            && !page.contains("name=\"level_50\" value=\"on\" checked")
    );
    let res = app
        .post_form(
            &format!("/admin/plans/{plan}/alert-levels"),
            &[("csrf_token", &csrf_from(&page)), ("level_50", "on"), ("level_100", "on"), ("level_200", "on")],
        )
        .await;
    assert_eq!(res.status(), 303);
    let levels: Vec<i16> = sqlx::query_scalar("SELECT alert_levels FROM plans WHERE id = $1")
        .bind(plan)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(levels, [50, 100, 200]);
}

/// Screen readers name each region of the usage page by its heading: every
/// `aria-labelledby` names the id of a heading, not the region itself.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn every_region_of_the_usage_page_is_named_by_its_heading(pool: PgPool) {
    let s = setup(pool).await;
    let html = s.app.get(&format!("/apps/{}/usage", s.app_id)).await.text().await.unwrap();
    let names: Vec<&str> =
        html.split("aria-labelledby=\"").skip(1).map(|rest| rest.split('"').next().unwrap()).collect();
    assert!(names.len() >= 5, "the page's regions: {names:?}");
    for name in names {
        let at = html.find(&format!(" id=\"{name}\"")).unwrap_or_else(|| panic!("no element with id {name}"));
        let tag = html[html[..at].rfind('<').unwrap()..at].split_whitespace().next().unwrap();
        assert!(
            matches!(tag, "<h1" | "<h2" | "<h3" | "<h4"),
            "aria-labelledby=\"{name}\" names a {tag}> element, not a heading"
        );
    }
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn counters_near_the_largest_number_do_not_break_the_pages(pool: PgPool) {
    let s = setup(pool).await;
    let (second_path, _) = register_app(&s.app, "Second").await;
    let second = Uuid::parse_str(second_path.trim_start_matches("/apps/")).unwrap();
    let hits = metric(&s.app.pool, s.app_id, "hits").await;
    let now = jiff::Timestamp::now().as_second() / 60 * 60;
    post_batch(
        &s,
        vec![
            entry(s.app_id, hits, now, StatusClass::Success, 1, 2),
            entry(second, hits, now, StatusClass::Success, 1, 2),
        ],
    )
    .await;
    // Two applications' counters that overflow a bigint when summed (a misbehaving agent).
    sqlx::query("UPDATE usage_rollups SET hits = 9223372036854775000, status_2xx = 9223372036854775000")
        .execute(&s.app.pool)
        .await
        .unwrap();
    let admin = TestApp { base: s.app.base.clone(), pool: s.app.pool.clone(), client: client() };
    admin.sign_in(DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD).await;
    for page in ["/admin?period=1h", "/admin/usage?period=1h", "/admin/usage.csv?table=usage&period=1h"] {
        let res = admin.get(page).await;
        assert_eq!(res.status(), 200, "{page}");
    }
    let mine = s.app.get(&format!("/apps/{}/usage?period=1h", s.app_id)).await;
    assert_eq!(mine.status(), 200);
}

/// The usage pages reuse a report for a few seconds, but never past a batch this server
/// counted: a page read just before new usage arrives shows it on the next read.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_page_read_before_a_batch_shows_the_batch_on_the_next_read(pool: PgPool) {
    let s = setup(pool).await;
    let hits = metric(&s.app.pool, s.app_id, "hits").await;
    let now = jiff::Timestamp::now().as_second() / 60 * 60;
    let page = format!("/apps/{}/usage?period=1h", s.app_id);
    let admin = TestApp { base: s.app.base.clone(), pool: s.app.pool.clone(), client: client() };
    admin.sign_in(DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD).await;
    let dashboard = || async { admin.get("/admin?period=1h").await.text().await.unwrap() };
    assert!(s.app.get(&page).await.text().await.unwrap().contains("No calls in this period"));
    assert!(!dashboard().await.contains("Metered</a></td>"), "no calls yet");

    for (batch, total) in [(4, 4), (3, 7)] {
        post_batch(&s, vec![entry(s.app_id, hits, now, StatusClass::Success, batch, 1)]).await;
        let html = s.app.get(&page).await.text().await.unwrap();
        assert_eq!(calls_on_page(&html, "hits"), total);
        let home = dashboard().await;
        assert!(home.contains(&format!("Metered</a></td><td>{total}</td>")), "top applications: {home}");
    }
}

/// A report over many applications has its buckets in UTC, while each plan's rollups start
/// at its own midnight: a Tokyo plan's day starts at 15:00 UTC the day before, and was shown
/// on that day. Each rollup now goes where its middle falls.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_plan_ahead_of_utc_is_shown_on_its_own_day_in_reports_over_many_applications(pool: PgPool) {
    let s = setup(pool).await;
    sqlx::query(
        "UPDATE plans SET time_zone = 'Asia/Tokyo' WHERE id = (SELECT plan_id FROM applications WHERE id = $1)",
    )
    .bind(s.app_id)
    .execute(&s.app.pool)
    .await
    .unwrap();
    let hits = metric(&s.app.pool, s.app_id, "hits").await;
    // 03:00 UTC of the latest day that has passed it: noon in Tokyo, the same date.
    let now = jiff::Timestamp::now();
    let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    let at = |date: jiff::civil::Date| date.at(3, 0, 0, 0).to_zoned(jiff::tz::TimeZone::UTC).unwrap().timestamp();
    let call = if at(today) <= now { at(today) } else { at(today.yesterday().unwrap()) };
    post_batch(&s, vec![entry(s.app_id, hits, call.as_second(), StatusClass::Success, 7, 2)]).await;

    let admin = TestApp { base: s.app.base.clone(), pool: s.app.pool.clone(), client: client() };
    admin.sign_in(DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD).await;
    let csv = admin.get("/admin/usage.csv?table=usage&period=30d").await.text().await.unwrap();
    let day = format!("{}T00:00:00Z", call.to_zoned(jiff::tz::TimeZone::UTC).date());
    let on = |rows: &[std::collections::HashMap<String, String>], start: &str| {
        rows.iter()
            .filter(|r| r["metric"] == "hits" && r["bucket_start"] == start)
            .map(|r| r["calls"].clone())
            .collect::<Vec<_>>()
    };
    let rows = csv_rows(&csv);
    assert_eq!(on(&rows, &day), ["7"], "{csv}");
    let status = admin.get("/admin/usage.csv?table=status&period=30d").await.text().await.unwrap();
    let status = csv_rows(&status);
    let row = status.iter().find(|r| r["bucket_start"] == day).expect("the day's row");
    assert_eq!(row["2xx"], "7");
}

/// The drill-down to one method shows its calls by status too: only top-level metrics were
/// counted there, so a method's page said "no calls" beside its own latency.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_methods_drill_down_shows_its_calls_by_status(pool: PgPool) {
    let s = setup(pool).await;
    let hits = metric(&s.app.pool, s.app_id, "hits").await;
    let method: Uuid = sqlx::query_scalar(
        "SELECT m.id FROM metrics m JOIN applications a ON a.api_id = m.api_id WHERE a.id = $1 AND m.parent_id IS NOT NULL LIMIT 1",
    )
    .bind(s.app_id)
    .fetch_one(&s.app.pool)
    .await
    .unwrap();
    let now = jiff::Timestamp::now().as_second() / 60 * 60;
    post_batch(
        &s,
        vec![
            entry(s.app_id, hits, now, StatusClass::ServerError, 5, 2),
            entry(s.app_id, method, now, StatusClass::ServerError, 5, 2),
        ],
    )
    .await;
    let admin = TestApp { base: s.app.base.clone(), pool: s.app.pool.clone(), client: client() };
    admin.sign_in(DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD).await;
    let total_5xx = |query: String| {
        let admin = &admin;
        async move {
            let csv = admin.get(&format!("/admin/usage.csv?table=status&period=1h{query}")).await.text().await.unwrap();
            csv_rows(&csv).iter().map(|r| r["5xx"].parse::<i64>().unwrap()).sum::<i64>()
        }
    };
    assert_eq!(total_5xx(String::new()).await, 5, "each call once over all metrics");
    assert_eq!(total_5xx(format!("&metric={method}")).await, 5, "and on its method's page");
}
