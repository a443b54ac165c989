//! Billing in the developer portal, over HTTP: the account's invoices (list, page,
//! PDF) and nobody else's, and plan changes from the application page — at once
//! with the agents told and the month prorated, or waiting for an admin — and how plans
//! are labelled: "free" only when nothing is ever billed.

use rust_decimal::Decimal;
use sqlx::PgPool;
use tollgate::cli::dev::{DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD, DEMO_DEVELOPER_EMAIL, DEMO_DEVELOPER_PASSWORD, seed};
use tollgate_core::billing::run::{RunOptions, run};
use uuid::Uuid;

use crate::helpers::{TestApp, client, csrf_from, spawn_app};
use crate::portal::{location, verified_developer};

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// The demo data, the demo developer signed in, and two more plans of the Weather API
/// without approval: Small (10.00 USD a month) and Large (31.00 USD). The demo's Pro
/// plan (49.00 USD) needs approval.
async fn portal(pool: PgPool) -> TestApp {
    seed(&pool).await.unwrap();
    for (name, fee) in [("small", "10"), ("large", "31")] {
        sqlx::query(
            "INSERT INTO plans (id, api_id, system_name, name, published, monthly_fee)
             SELECT $1, id, $2, initcap($2), true, $3 FROM api_products WHERE slug = 'weather'",
        )
        .bind(Uuid::now_v7())
        .bind(name)
        .bind(d(fee))
        .execute(&pool)
        .await
        .unwrap();
    }
    let app = spawn_app(pool).await;
    assert_eq!(location(&app.sign_in(DEMO_DEVELOPER_EMAIL, DEMO_DEVELOPER_PASSWORD).await), "/dashboard");
    app
}

async fn plan_id(pool: &PgPool, system_name: &str) -> Uuid {
    sqlx::query_scalar("SELECT id FROM plans WHERE system_name = $1").bind(system_name).fetch_one(pool).await.unwrap()
}

async fn account_of(pool: &PgPool, email: &str) -> Uuid {
    sqlx::query_scalar("SELECT m.account_id FROM memberships m JOIN users u ON u.id = m.user_id WHERE u.email = $1")
        .bind(email)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Registers an application on a plan through the portal; returns its id.
async fn register(app: &TestApp, name: &str, plan: &str) -> Uuid {
    let html = app.get("/apps/new").await.text().await.unwrap();
    let plan = plan_id(&app.pool, plan).await.to_string();
    let res =
        app.post_form("/apps/new", &[("csrf_token", &csrf_from(&html)), ("name", name), ("plan_id", &plan)]).await;
    assert_eq!(res.status(), 303);
    Uuid::parse_str(location(&res).trim_start_matches("/apps/")).unwrap()
}

/// Asks for a plan change on the application's page, with that page's form token.
async fn change_plan(app: &TestApp, id: Uuid, plan: &str) -> reqwest::Response {
    let html = app.get(&format!("/apps/{id}")).await.text().await.unwrap();
    let plan = plan_id(&app.pool, plan).await.to_string();
    app.post_form(&format!("/apps/{id}/plan"), &[("csrf_token", &csrf_from(&html)), ("plan_id", &plan)]).await
}

async fn current_plan(pool: &PgPool, id: Uuid) -> (String, Option<String>) {
    sqlx::query_as(
        "SELECT p.system_name, rp.system_name FROM applications a JOIN plans p ON p.id = a.plan_id
         LEFT JOIN plans rp ON rp.id = a.requested_plan_id WHERE a.id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn config_changes(pool: &PgPool, id: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM config_changes WHERE entity = 'application' AND entity_id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn audited(pool: &PgPool, id: Uuid) -> Vec<String> {
    sqlx::query_scalar("SELECT action FROM audit_log WHERE entity = 'application' AND entity_id = $1 ORDER BY id")
        .bind(id)
        .fetch_all(pool)
        .await
        .unwrap()
}

/// An invoice written as the billing run writes it: number, state, currency, issued or
/// not, lines of (kind, description, quantity, unit price, amount), and (subtotal, tax
/// rate, tax, total).
struct Fixture<'a> {
    account: Uuid,
    number: &'a str,
    state: &'a str,
    currency: &'a str,
    issued: bool,
    lines: &'a [(&'a str, &'a str, &'a str, &'a str, &'a str)],
    totals: (&'a str, &'a str, &'a str, &'a str),
}

async fn invoice(pool: &PgPool, f: Fixture<'_>) -> Uuid {
    let id = Uuid::now_v7();
    let month = &f.number[..7];
    sqlx::query(
        "INSERT INTO invoices (id, account_id, number, period_start, period_end, currency, state, subtotal, tax_rate,
                               tax, total, issued_at, due_at, paid_at, issuer)
         VALUES ($1, $2, $3, ($4 || '-01')::date, ($4 || '-01')::date + interval '1 month', $5, $6::invoice_state,
                 $7, $8, $9, $10,
                 CASE WHEN $11 THEN ($4 || '-01')::date + interval '1 month 2 hours' END,
                 CASE WHEN $11 THEN ($4 || '-01')::date + interval '1 month 14 days' END,
                 CASE WHEN $6 = 'paid' THEN ($4 || '-01')::date + interval '1 month 3 days' END,
                 CASE WHEN $11 THEN '{\"name\": \"Weather Corp\", \"address\": \"1 Main Street\\nSpringfield\", \"tax_id\": \"EU-123\"}'::jsonb END)",
    )
    .bind(id)
    .bind(f.account)
    .bind(f.number)
    .bind(month)
    .bind(f.currency)
    .bind(f.state)
    .bind(d(f.totals.0))
    .bind(d(f.totals.1))
    .bind(d(f.totals.2))
    .bind(d(f.totals.3))
    .bind(f.issued)
    .execute(pool)
    .await
    .unwrap();
    for (kind, description, quantity, unit_price, amount) in f.lines {
        sqlx::query(
            "INSERT INTO invoice_lines (id, invoice_id, kind, description, quantity, unit_price, amount, service_month)
             VALUES ($1, $2, $8::invoice_line_kind, $3, $4, $5, $6, ($7 || '-01')::date)",
        )
        .bind(Uuid::now_v7())
        .bind(id)
        .bind(description)
        .bind(d(quantity))
        .bind(d(unit_price))
        .bind(d(amount))
        .bind(month)
        .bind(kind)
        .execute(pool)
        .await
        .unwrap();
    }
    id
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn developers_see_their_accounts_issued_invoices_and_no_one_elses(pool: PgPool) {
    let app = portal(pool).await;
    let home = app.get("/invoices").await;
    assert_eq!(home.status(), 200);
    let html = home.text().await.unwrap();
    assert!(html.contains("href=\"/invoices\""), "the nav links to the invoices");
    assert!(html.contains("data-testid=\"no-invoices\"") && html.contains("No invoices yet"), "{html}");

    let mine = account_of(&app.pool, DEMO_DEVELOPER_EMAIL).await;
    verified_developer(
        &TestApp { base: app.base.clone(), pool: app.pool.clone(), client: client() },
        "mallory@example.com",
    )
    .await;
    let theirs = account_of(&app.pool, "mallory@example.com").await;
    let october = invoice(
        &app.pool,
        Fixture {
            account: mine,
            number: "2025-10-00000001",
            state: "pending",
            currency: "USD",
            issued: true,
            lines: &[
                ("monthly_fee", "Metered: Large monthly fee for 2025-10, prorated", "0.677419", "31", "21"),
                ("usage", "Metered: hits for 2025-10, 1001 units (graduated)", "1001", "0.009995", "10.01"),
            ],
            // 21.00 + 10.01 = 31.01; tax 20 %: 6.202 → 6.20; total 37.21.
            totals: ("31.01", "0.2", "6.2", "37.21"),
        },
    )
    .await;
    let november = invoice(
        &app.pool,
        Fixture {
            account: mine,
            number: "2025-11-00000001",
            state: "paid",
            currency: "JPY",
            issued: true,
            lines: &[("monthly_fee", "Metered: Yen monthly fee for 2025-11", "1", "1235", "1235")],
            totals: ("1235", "0", "0", "1235"),
        },
    )
    .await;
    let draft = invoice(
        &app.pool,
        Fixture {
            account: mine,
            number: "2025-12-00000001",
            state: "open",
            currency: "USD",
            issued: false,
            lines: &[("monthly_fee", "Metered: Large monthly fee for 2025-12", "1", "31", "31")],
            totals: ("31", "0", "0", "31"),
        },
    )
    .await;
    let other = invoice(
        &app.pool,
        Fixture {
            account: theirs,
            number: "2025-10-00000002",
            state: "unpaid",
            currency: "USD",
            issued: true,
            lines: &[("monthly_fee", "Mallory secret app: Large monthly fee for 2025-10", "1", "31", "31")],
            totals: ("31", "0", "0", "31"),
        },
    )
    .await;

    // The list: issued invoices of the account, newest period first, no draft, no one else's.
    let html = app.get("/invoices").await.text().await.unwrap();
    let rows: Vec<&str> = html.split("data-invoice=\"").skip(1).map(|r| &r[..16]).collect();
    assert_eq!(rows, ["2025-11-00000001", "2025-10-00000001"], "{html}");
    assert!(html.contains("37.21 USD") && html.contains("1235 JPY"), "{html}");
    assert!(html.contains("2025-11-01") && html.contains("2025-11-15"), "issued and due dates: {html}");
    assert!(!html.contains("Mallory") && !html.contains("2025-10-00000002"));

    // One invoice: issuer, account, period, lines, subtotal, tax and total to the minor unit.
    let res = app.get(&format!("/invoices/{october}")).await;
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    for expected in [
        "Invoice 2025-10-00000001",
        "<strong>Weather Corp</strong>",
        "1 Main Street<br>",
        "Tax ID EU-123",
        "Demo Developer Co",
        "2025-10-01 to 2025-10-31",
        "Metered: Large monthly fee for 2025-10, prorated",
        "0.677419",
        "31.00 USD",
        "21.00 USD",
        "0.009995 USD",
        "10.01 USD",
        "Tax (20 %)",
        "6.20 USD",
        &format!("href=\"/invoices/{october}.pdf\""),
    ] {
        assert!(page.contains(expected), "{expected} missing from {page}");
    }
    let total = |page: &str, id: &str| {
        let marker = format!("data-testid=\"{id}\">");
        page.split(&marker).nth(1).and_then(|rest| rest.split('<').next()).map(str::to_owned).unwrap_or_default()
    };
    assert_eq!(total(&page, "subtotal"), "31.01 USD");
    assert_eq!(total(&page, "total"), "37.21 USD");
    let yen = app.get(&format!("/invoices/{november}")).await.text().await.unwrap();
    assert_eq!(total(&yen, "total"), "1235 JPY", "no minor unit in yen");

    // The PDF of the same invoice.
    let res = app.get(&format!("/invoices/{october}.pdf")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/pdf");
    assert_eq!(res.headers()["content-disposition"], "attachment; filename=\"invoice-2025-10-00000001.pdf\"");
    let bytes = res.bytes().await.unwrap();
    assert!(bytes.starts_with(b"%PDF-"));
    assert!(contains(&bytes, "2025-10-00000001") && contains(&bytes, "(37.21 USD)"));

    // A draft and another account's invoice are not found, as page and as PDF.
    for id in [draft, other] {
        for path in [format!("/invoices/{id}"), format!("/invoices/{id}.pdf")] {
            let res = app.get(&path).await;
            assert_eq!(res.status(), 404, "{path}");
            let body = res.text().await.unwrap();
            assert!(!body.contains("Mallory") && !body.contains("2025-12-00000001"), "{body}");
        }
    }
    assert_eq!(app.get("/invoices/not-an-id").await.status(), 404);

    // The other account sees its own invoice only; a signed-out visitor sees none.
    let mallory = TestApp { base: app.base.clone(), pool: app.pool.clone(), client: client() };
    mallory.sign_in("mallory@example.com", "correct horse battery").await;
    let html = mallory.get("/invoices").await.text().await.unwrap();
    assert!(html.contains("2025-10-00000002") && !html.contains("2025-10-00000001"), "{html}");
    assert_eq!(mallory.get(&format!("/invoices/{october}")).await.status(), 404);
    let anonymous = TestApp { base: app.base.clone(), pool: app.pool.clone(), client: client() };
    assert_ne!(anonymous.get("/invoices").await.status(), 200);
    assert_ne!(anonymous.get(&format!("/invoices/{october}.pdf")).await.status(), 200);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_plan_change_without_approval_applies_at_once_tells_the_agents_and_is_prorated(pool: PgPool) {
    let app = portal(pool).await;
    let id = register(&app, "Metered", "small").await;
    let page = app.get(&format!("/apps/{id}")).await.text().await.unwrap();
    // The other subscribable plans with their prices, and which way each goes.
    assert!(page.contains("Large: 31.00 USD/month (upgrade)"), "{page}");
    assert!(page.contains("Basic: no monthly fee, usage priced (downgrade)"), "{page}");
    assert!(
        page.contains(
            "Pro: 49.00 USD/month + 10.00 USD setup, 14-day trial, usage priced (upgrade; needs the provider&#39;s approval)"
        ),
        "{page}"
    );
    assert!(!page.contains("Small: "), "not the plan it is on");

    let before = config_changes(&app.pool, id).await;
    let res = change_plan(&app, id, "large").await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), format!("/apps/{id}?plan=changed"));
    assert_eq!(current_plan(&app.pool, id).await, ("large".to_owned(), None));
    assert_eq!(config_changes(&app.pool, id).await, before + 1, "agents learn the new limits");
    assert_eq!(audited(&app.pool, id).await.last().map(String::as_str), Some("application.change_plan"));
    let page = app.get(&location(&res)).await.text().await.unwrap();
    assert!(page.contains("is on the Large plan now"), "{page}");

    // The trigger closed Small's stretch and opened Large's. Put the change on 11 October
    // 2025 and bill that month: Small 10.00 × 10/31 = 3.2258… → 3.23, Large 31.00 × 21/31 =
    // 21.00, two prorated monthly fee lines, 24.23 in all.
    let segments: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM subscription_segments WHERE application_id = $1 ORDER BY started_at, id")
            .bind(id)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(segments.len(), 2);
    for (segment, (start, end)) in
        segments.iter().zip([("2025-09-01T00:00:00Z", Some("2025-10-11T00:00:00Z")), ("2025-10-11T00:00:00Z", None)])
    {
        sqlx::query(
            "UPDATE subscription_segments SET started_at = $2::timestamptz, ended_at = $3::timestamptz WHERE id = $1",
        )
        .bind(segment)
        .bind(start)
        .bind(end)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    let options = RunOptions { month: Some("2025-10".parse().unwrap()), ..RunOptions::default() };
    let summary = run(&app.pool, &options, |_, _| {}).await.unwrap();
    assert!(summary.failed.is_empty(), "{:?}", summary.failed);
    let html = app.get("/invoices").await.text().await.unwrap();
    let invoice_id = html.split("href=\"/invoices/").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let page = app.get(&format!("/invoices/{invoice_id}")).await.text().await.unwrap();
    let kinds = page.matches("data-kind=\"monthly_fee\"").count();
    assert_eq!(kinds, 2, "{page}");
    assert!(page.contains("Metered: Small monthly fee for 2025-10, prorated"), "{page}");
    assert!(page.contains("Metered: Large monthly fee for 2025-10, prorated"), "{page}");
    assert!(page.contains("3.23 USD") && page.contains("21.00 USD"), "{page}");
    assert!(page.contains("data-testid=\"total\">24.23 USD<"), "{page}");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_plan_that_needs_approval_waits_for_an_admin_and_the_app_keeps_its_plan_until_then(pool: PgPool) {
    let app = portal(pool.clone()).await;
    let id = register(&app, "Growing", "small").await;
    let before = config_changes(&pool, id).await;
    let res = change_plan(&app, id, "pro").await;
    assert_eq!(location(&res), format!("/apps/{id}?plan=requested"));
    // Still on Small, limits and fees alike: no config change, no new subscription stretch.
    assert_eq!(current_plan(&pool, id).await, ("small".to_owned(), Some("pro".to_owned())));
    assert_eq!(config_changes(&pool, id).await, before);
    let segments: i64 = sqlx::query_scalar("SELECT count(*) FROM subscription_segments WHERE application_id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(segments, 1);
    assert_eq!(audited(&pool, id).await.last().map(String::as_str), Some("application.request_plan"));
    let page = app.get(&location(&res)).await.text().await.unwrap();
    assert!(page.contains("data-testid=\"plan-request\""), "{page}");
    assert!(page.contains("waiting for the provider&#39;s approval"), "{page}");

    // An admin approves through the REST API: the app moves, the agents are told, and a
    // subscriber to application.plan_changed hears of it (only an admin's own move raised it).
    sqlx::query(
        "INSERT INTO webhook_subscriptions (id, url, events, secret)
         VALUES (gen_random_uuid(), 'https://hooks.example.com/t', '{application.plan_changed}', 'whsec_test')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let token = crate::helpers::demo_admin_token(&pool).await;
    let decide = |action: &'static str| {
        app.client
            .post(app.url(&format!("/admin/api/v1/applications/{id}/plan-request")))
            .bearer_auth(token.as_str())
            .json(&serde_json::json!({ "action": action }))
            .send()
    };
    let res = decide("approve").await.unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["plan_name"], "Pro");
    assert_eq!(body["requested_plan_id"], serde_json::Value::Null);
    assert_eq!(current_plan(&pool, id).await, ("pro".to_owned(), None));
    assert_eq!(config_changes(&pool, id).await, before + 1);
    assert_eq!(audited(&pool, id).await.last().map(String::as_str), Some("application.approve_plan"));
    let events: Vec<String> =
        sqlx::query_scalar("SELECT event FROM webhook_deliveries").fetch_all(&pool).await.unwrap();
    assert_eq!(events, ["application.plan_changed"]);
    let notice = app.get("/notifications").await.text().await.unwrap();
    assert!(notice.contains("Growing moved to the Pro plan"), "{notice}");
    // Nothing is waiting any more.
    let res = decide("approve").await.unwrap();
    assert_eq!(res.status(), 409);

    // A second request, rejected in the admin UI: the app stays where it is.
    let res = change_plan(&app, id, "pro").await;
    assert_eq!(res.status(), 422, "already on Pro");
    let other = register(&app, "Second", "small").await;
    change_plan(&app, other, "pro").await;
    let admin = TestApp { base: app.base.clone(), pool: pool.clone(), client: client() };
    assert_eq!(location(&admin.sign_in(DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD).await), "/admin");
    let list = admin.get("/admin/applications").await.text().await.unwrap();
    assert!(list.contains("asks for Pro"), "{list}");
    let reject = format!("/admin/applications/{other}/plan-request/reject");
    assert_eq!(admin.post_form(&reject, &[]).await.status(), 403, "no form token, no decision");
    assert_eq!(current_plan(&pool, other).await, ("small".to_owned(), Some("pro".to_owned())));
    let res = admin.post_form(&reject, &[("csrf_token", &csrf_from(&list))]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(current_plan(&pool, other).await, ("small".to_owned(), None));
    assert_eq!(audited(&pool, other).await.last().map(String::as_str), Some("application.reject_plan"));
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn plan_changes_need_the_form_token_and_the_applications_own_account(pool: PgPool) {
    let app = portal(pool.clone()).await;
    let id = register(&app, "Guarded", "small").await;
    let large = plan_id(&pool, "large").await.to_string();
    // Without the token (a cross-site form would have none): refused, nothing changes.
    let res = app.post_form(&format!("/apps/{id}/plan"), &[("plan_id", &large)]).await;
    assert_eq!(res.status(), 403);
    let res = app.post_form(&format!("/apps/{id}/plan"), &[("csrf_token", "forged"), ("plan_id", &large)]).await;
    assert_eq!(res.status(), 403);
    assert_eq!(current_plan(&pool, id).await, ("small".to_owned(), None));
    // A plan of another API, or no plan: 422.
    let html = app.get(&format!("/apps/{id}")).await.text().await.unwrap();
    let token = csrf_from(&html);
    let stranger = Uuid::now_v7().to_string();
    let res = app.post_form(&format!("/apps/{id}/plan"), &[("csrf_token", &token), ("plan_id", &stranger)]).await;
    assert_eq!(res.status(), 422);
    let res = app.post_form(&format!("/apps/{id}/plan"), &[("csrf_token", &token), ("plan_id", "")]).await;
    assert_eq!(res.status(), 422);
    // Another account's developer cannot move it: 404.
    let mallory = TestApp { base: app.base.clone(), pool: pool.clone(), client: client() };
    verified_developer(&mallory, "mallory@example.com").await;
    let token = csrf_from(&mallory.get("/dashboard").await.text().await.unwrap());
    let res = mallory.post_form(&format!("/apps/{id}/plan"), &[("csrf_token", &token), ("plan_id", &large)]).await;
    assert_eq!(res.status(), 404);
    let res = mallory.post_form(&format!("/apps/{id}/plan/withdraw"), &[("csrf_token", &token)]).await;
    assert_eq!(res.status(), 404);
    assert_eq!(current_plan(&pool, id).await, ("small".to_owned(), None));
}

/// Usage is filed in month buckets of the plan's time zone as it arrives, and a month is
/// billed from one zone's buckets: a move across zones would leave part of a month unbilled.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn an_application_moves_only_between_plans_of_one_time_zone(pool: PgPool) {
    let app = portal(pool.clone()).await;
    sqlx::query(
        "INSERT INTO plans (id, api_id, system_name, name, published, monthly_fee, time_zone)
         SELECT $1, id, 'tokyo', 'Tokyo', true, 10, 'Asia/Tokyo' FROM api_products WHERE slug = 'weather'",
    )
    .bind(Uuid::now_v7())
    .execute(&pool)
    .await
    .unwrap();
    let id = register(&app, "Zoned", "small").await;
    let page = app.get(&format!("/apps/{id}")).await.text().await.unwrap();
    let tokyo = plan_id(&pool, "tokyo").await.to_string();
    assert!(page.contains(&plan_id(&pool, "large").await.to_string()), "a plan of the same zone is offered");
    assert!(!page.contains(&tokyo), "a plan of another zone is not offered");
    let res = change_plan(&app, id, "tokyo").await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(html.contains("counts its months in Asia/Tokyo"), "{html}");
    assert_eq!(current_plan(&pool, id).await, ("small".to_owned(), None));
    assert_eq!(change_plan(&app, id, "large").await.status(), 303);
    assert_eq!(current_plan(&pool, id).await, ("large".to_owned(), None));
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn every_admin_is_mailed_and_notified_of_a_plan_change_request_with_a_link_to_the_application(pool: PgPool) {
    let app = portal(pool.clone()).await;
    // A second admin: every admin hears of it.
    sqlx::query(
        "INSERT INTO users (id, email, is_admin, email_verified_at) VALUES ($1, 'second@admin.example', true, now())",
    )
    .bind(Uuid::now_v7())
    .execute(&pool)
    .await
    .unwrap();
    let admins: Vec<String> = sqlx::query_scalar("SELECT email::text FROM users WHERE is_admin ORDER BY email")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(admins.len(), 2);
    let mails = |to: String| {
        let pool = pool.clone();
        async move {
            sqlx::query_as::<_, (String, String)>(
                "SELECT subject, body_text FROM outbox_emails WHERE to_address = $1 AND subject LIKE 'Plan change%'",
            )
            .bind(to)
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    let notices = |to: String| {
        let pool = pool.clone();
        async move {
            sqlx::query_as::<_, (String, String, Option<String>)>(
                "SELECT n.kind, n.body, n.link FROM notifications n JOIN users u ON u.id = n.user_id
                 WHERE u.email = $1 AND n.kind = 'plan_change_requested'",
            )
            .bind(to)
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    let id = register(&app, "Growing", "small").await;
    let other = register(&app, "Bystander", "small").await;
    // A change without approval tells no admin.
    assert_eq!(location(&change_plan(&app, other, "large").await), format!("/apps/{other}?plan=changed"));
    for admin in &admins {
        assert!(mails(admin.clone()).await.is_empty() && notices(admin.clone()).await.is_empty());
    }

    assert_eq!(location(&change_plan(&app, id, "pro").await), format!("/apps/{id}?plan=requested"));
    let link = format!("/admin/applications?id={id}");
    for admin in &admins {
        let mails = mails(admin.clone()).await;
        assert_eq!(mails.len(), 1, "{admin}: {mails:?}");
        let (subject, body) = &mails[0];
        assert_eq!(subject, "Plan change requested for Growing");
        assert!(
            body.contains("its application \"Growing\" for Weather API from the Small plan to the Pro plan"),
            "{body}"
        );
        assert!(body.contains(&format!("{}{link}", app.base)), "{body}");
        let notices = notices(admin.clone()).await;
        assert_eq!(notices.len(), 1, "{admin}");
        assert!(
            notices[0].1.contains("to move Growing from the Small plan to the Pro plan of Weather API"),
            "{notices:?}"
        );
        assert_eq!(notices[0].2.as_deref(), Some(link.as_str()));
    }
    // A refused request (the same plan again is fine; a plan of another API is not) tells no one.
    let stranger = Uuid::now_v7().to_string();
    let html = app.get(&format!("/apps/{id}")).await.text().await.unwrap();
    let res =
        app.post_form(&format!("/apps/{id}/plan"), &[("csrf_token", &csrf_from(&html)), ("plan_id", &stranger)]).await;
    assert_eq!(res.status(), 422);
    assert_eq!(mails(admins[0].clone()).await.len(), 1);

    // The link opens the admin list on that one application, with its decision buttons.
    let admin = TestApp { base: app.base.clone(), pool: pool.clone(), client: client() };
    assert_eq!(location(&admin.sign_in(DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD).await), "/admin");
    let page = admin.get(&link).await.text().await.unwrap();
    assert!(page.contains("Growing") && page.contains("asks for Pro"), "{page}");
    assert!(page.contains(&format!("/admin/applications/{id}/plan-request/approve")), "{page}");
    assert!(!page.contains("Bystander"), "{page}");
    assert_eq!(admin.get(&format!("/admin/applications?id={}", Uuid::now_v7())).await.status(), 404);
}

/// Adds a published Weather plan without fees; with `zero_tier`, a usage tier priced at 0.
async fn fee_less_plan(pool: &PgPool, system_name: &str, zero_tier: bool) {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO plans (id, api_id, system_name, name, published)
         SELECT $1, id, $2, initcap($2), true FROM api_products WHERE slug = 'weather'",
    )
    .bind(id)
    .bind(system_name)
    .execute(pool)
    .await
    .unwrap();
    if zero_tier {
        sqlx::query(
            "INSERT INTO pricing_rules (id, plan_id, metric_id, min_units, max_units, price_per_unit)
             SELECT $1, $2, metric_id, 1, NULL, 0 FROM pricing_rules LIMIT 1",
        )
        .bind(Uuid::now_v7())
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
    }
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn plan_labels_say_what_is_charged_and_free_only_when_nothing_is_billed(pool: PgPool) {
    let app = portal(pool).await;
    fee_less_plan(&app.pool, "gratis", false).await;
    fee_less_plan(&app.pool, "sampler", true).await;

    // The new application form's plan list.
    let form = app.get("/apps/new").await.text().await.unwrap();
    assert!(form.contains("Weather API — Basic (no monthly fee, usage priced)</option>"), "{form}");
    assert!(
        form.contains(
            "Weather API — Pro (49.00 USD/month + 10.00 USD setup, 14-day trial, usage priced; needs approval)</option>"
        ),
        "{form}"
    );
    assert!(form.contains("Weather API — Small (10.00 USD/month)</option>"), "{form}");
    assert!(form.contains("Weather API — Gratis (free)</option>"), "{form}");
    assert!(form.contains("Weather API — Sampler (free)</option>"), "tiers priced at 0 bill nothing: {form}");
    assert!(!form.contains("Basic (free)"), "{form}");

    // The plan change offers of an application on Basic.
    let id = register(&app, "Labelled", "basic").await;
    let page = app.get(&format!("/apps/{id}")).await.text().await.unwrap();
    assert!(page.contains("Gratis: free"), "{page}");
    assert!(page.contains("Small: 10.00 USD/month (upgrade)"), "{page}");
    assert!(!page.contains("Basic: "), "not the plan it is on");

    // The API page's comparison: Basic's monthly fee is none, not "Free".
    let api = app.get("/apis/weather").await.text().await.unwrap();
    let row = api.split("Monthly fee</th>").nth(1).unwrap().split("</tr>").next().unwrap();
    assert_eq!(
        row, "<td>None</td><td>Free</td><td>Free</td><td>10 USD</td><td>31 USD</td><td>49 USD</td>",
        "Basic, Gratis, Sampler, Small, Large, Pro"
    );
}

/// The invoices page shows what the next invoice holds so far: the month's fee and the
/// calls the agents reported, priced as the billing run will price them, and only the
/// account's own.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_invoices_page_shows_the_next_invoice_so_far(pool: PgPool) {
    let app = portal(pool).await;
    let empty = app.get("/invoices").await.text().await.unwrap();
    assert!(empty.contains("Nothing to bill for"), "{empty}");
    // Small: 10.00 USD a month, and 0.01 USD a call from here on.
    sqlx::query(
        "INSERT INTO pricing_rules (id, plan_id, metric_id, min_units, max_units, price_per_unit)
         SELECT $1, p.id, m.id, 1, NULL, 0.01 FROM plans p JOIN metrics m ON m.api_id = p.api_id AND m.system_name = 'hits'
         WHERE p.system_name = 'small'",
    )
    .bind(Uuid::now_v7())
    .execute(&app.pool)
    .await
    .unwrap();
    let id = register(&app, "Metered", "small").await;
    // Subscribed since the month began, so the fee is the whole month's.
    sqlx::query(
        "UPDATE subscription_segments SET started_at = date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
         WHERE application_id = $1",
    )
    .bind(id)
    .execute(&app.pool)
    .await
    .unwrap();
    let (_, agent_token) =
        tollgate_core::gateways::create(&app.pool, "edge-1", &tollgate_core::audit::Actor::system("test"))
            .await
            .unwrap();
    let hits: Uuid = sqlx::query_scalar("SELECT m.id FROM metrics m JOIN api_products a ON a.id = m.api_id WHERE a.slug = 'weather' AND m.system_name = 'hits'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let mut latency_buckets = [0u64; tollgate_protocol::usage::LATENCY_BUCKETS];
    latency_buckets[0] = 250;
    let batch = tollgate_protocol::UsageBatch {
        id: Uuid::now_v7(),
        agent_id: Uuid::now_v7(),
        entries: vec![tollgate_protocol::UsageEntry {
            application_id: id,
            metric: hits,
            minute: jiff::Timestamp::now().as_second() / 60 * 60,
            status_class: tollgate_protocol::StatusClass::Success,
            count: 250,
            latency_buckets,
            group: None,
        }],
        credentials_used: Vec::new(),
        refused: Vec::new(),
        failed_calls: Vec::new(),
        failed_calls_dropped: 0,
    };
    let res = app
        .client
        .post(app.url("/agent/v1/usage"))
        .bearer_auth(agent_token.as_str())
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let page = app.get("/invoices").await.text().await.unwrap();
    let table =
        page.split("data-testid=\"upcoming-USD\"").nth(1).expect("a USD table").split("</table>").next().unwrap();
    let fee = table.split("data-kind=\"monthly_fee\"").nth(1).expect("the fee's line").split("</tr>").next().unwrap();
    assert!(fee.contains("10.00 USD"), "{fee}");
    let usage = table.split("data-kind=\"usage\"").nth(1).expect("the calls' line").split("</tr>").next().unwrap();
    assert!(usage.contains(">250<") && usage.contains("0.01 USD") && usage.contains("2.50 USD"), "{usage}");
    assert!(table.contains("data-testid=\"upcoming-total\">12.50 USD<"), "{table}");

    // Another developer's account has nothing upcoming.
    let other = TestApp { base: app.base.clone(), pool: app.pool.clone(), client: client() };
    verified_developer(&other, "someone@example.com").await;
    let theirs = other.get("/invoices").await.text().await.unwrap();
    assert!(theirs.contains("Nothing to bill for") && !theirs.contains("Metered"), "{theirs}");

    // The provider bills this month prepaid (its fee in advance), then moves to postpaid: the
    // month's calls are still to be billed when it ends, and the page says so.
    sqlx::query("UPDATE billing_settings SET mode = 'prepaid'").execute(&app.pool).await.unwrap();
    let this_month = jiff::Timestamp::now().strftime("%Y-%m").to_string().parse().unwrap();
    run(&app.pool, &RunOptions { month: Some(this_month), ..RunOptions::default() }, |_, _| {}).await.unwrap();
    sqlx::query("UPDATE billing_settings SET mode = 'postpaid'").execute(&app.pool).await.unwrap();
    let page = app.get("/invoices").await.text().await.unwrap();
    let table =
        page.split("data-testid=\"upcoming-USD\"").nth(1).expect("a USD table").split("</table>").next().unwrap();
    assert!(!table.contains("data-kind=\"monthly_fee\""), "the fee went out in advance: {table}");
    assert!(table.contains("data-kind=\"usage\""), "{table}");
    assert!(table.contains("data-testid=\"upcoming-total\">2.50 USD<"), "{table}");
}

/// An application on a plan that needs approval waited unseen until an admin happened to open
/// the applications list. Every admin is mailed and notified, with a link to where they decide;
/// a plan without approval tells no one.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn every_admin_hears_of_an_application_that_waits_for_approval(pool: PgPool) {
    let app = portal(pool.clone()).await;
    register(&app, "Straight in", "small").await;
    let id = register(&app, "Wants Pro", "pro").await;
    let admin: String =
        sqlx::query_scalar("SELECT email::text FROM users WHERE is_admin").fetch_one(&pool).await.unwrap();
    let mails: Vec<(String, String)> = sqlx::query_as(
        "SELECT subject, body_text FROM outbox_emails WHERE to_address = $1 AND subject LIKE '%approval'",
    )
    .bind(&admin)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].0, "Wants Pro waits for approval");
    assert!(mails[0].1.contains(&format!("/admin/applications?id={id}")), "{}", mails[0].1);
    let notices: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT n.body, n.link FROM notifications n JOIN users u ON u.id = n.user_id
         WHERE u.email = $1 AND n.kind = 'application_pending'",
    )
    .bind(&admin)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(notices[0].0.contains("Wants Pro on the Pro plan"), "{notices:?}");
    assert_eq!(notices[0].1.as_deref(), Some(format!("/admin/applications?id={id}").as_str()));

    // A name as long as names go made a title past the notifications' 200 characters: the
    // registration failed with a 500. The title is cut; the mail keeps the whole name.
    let long = "L".repeat(200);
    register(&app, &long, "pro").await;
    let title: String = sqlx::query_scalar(
        "SELECT n.title FROM notifications n JOIN users u ON u.id = n.user_id
         WHERE u.email = $1 AND n.kind = 'application_pending' ORDER BY n.created_at DESC LIMIT 1",
    )
    .bind(&admin)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(title.chars().count(), 200);
    assert!(title.starts_with("LLLL") && title.ends_with('…'), "{title}");
    let (subject, _) = crate::portal::last_mail(&pool, &admin).await;
    assert_eq!(subject, format!("{long} waits for approval"));
}

/// The provider's payment instructions, set through the admin API, are frozen into the
/// invoices a run issues and shown on the invoice page and in its PDF while it awaits
/// payment: changing the settings later does not rewrite an issued invoice.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn issued_invoices_say_how_to_pay_as_the_settings_said_at_issue(pool: PgPool) {
    let app = portal(pool).await;
    let token = crate::helpers::demo_admin_token(&app.pool).await;
    let settings = |instructions: &str| {
        let body = serde_json::json!({
            "provider_name": "Weather Corp", "provider_address": "1 Cloud Street", "provider_tax_id": "",
            "tax_rate": "0", "mode": "postpaid", "payment_terms_days": 14, "payment_instructions": instructions
        });
        let req = app.client.put(app.url("/admin/api/v1/billing/settings")).bearer_auth(token.as_str()).json(&body);
        async move {
            let res = req.send().await.unwrap();
            (res.status().as_u16(), res.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, body) = settings("Bank transfer to IBAN DE89 3704 0044 0532 0130 00\nBIC COBADEFFXXX").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = settings(&"x".repeat(2001)).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("payment_instructions")), "{body}");

    let mine = account_of(&app.pool, DEMO_DEVELOPER_EMAIL).await;
    let large = plan_id(&app.pool, "large").await;
    let subscribed = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO applications (id, account_id, api_id, plan_id, name, state)
         SELECT $1, $2, api_id, id, 'Billed', 'live' FROM plans WHERE id = $3",
    )
    .bind(subscribed)
    .bind(mine)
    .bind(large)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query("UPDATE subscription_segments SET started_at = '2025-09-01T00:00:00Z' WHERE application_id = $1")
        .bind(subscribed)
        .execute(&app.pool)
        .await
        .unwrap();
    let options = RunOptions { month: Some("2025-10".parse().unwrap()), account: Some(mine), ..RunOptions::default() };
    let summary = run(&app.pool, &options, |_, _| {}).await.unwrap();
    assert_eq!(summary.invoices.len(), 1, "{summary:?}");
    let invoice: Uuid = sqlx::query_scalar("SELECT id FROM invoices WHERE account_id = $1")
        .bind(mine)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(settings("Pay by card at https://pay.example/").await.0, 200);

    let page = app.get(&format!("/invoices/{invoice}")).await.text().await.unwrap();
    let section = &page[page.find("data-testid=\"payment-instructions\"").expect("how to pay")..];
    assert!(section.contains("Bank transfer to IBAN DE89 3704 0044 0532 0130 00\nBIC COBADEFFXXX"), "{section}");
    assert!(!page.contains("pay.example"), "the invoice keeps what it was issued with");
    let pdf = app.get(&format!("/invoices/{invoice}.pdf")).await.bytes().await.unwrap();
    assert!(contains(&pdf, "(BIC COBADEFFXXX)"));

    sqlx::query("UPDATE invoices SET state = 'paid', paid_at = now() WHERE id = $1")
        .bind(invoice)
        .execute(&app.pool)
        .await
        .unwrap();
    let page = app.get(&format!("/invoices/{invoice}")).await.text().await.unwrap();
    assert!(!page.contains("How to pay"), "a paid invoice asks for nothing");
}
