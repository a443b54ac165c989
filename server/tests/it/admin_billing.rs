//! Billing in the admin UI: the invoices list and page with their life-cycle actions,
//! revenue (page and CSV against hand-computed sums), billing settings, pricing modes
//! in the plan editor, and the demo invoice of `tollgate dev`.
//!
//! Invoices are written as rows (their amounts chosen by hand); periods count back
//! from the current month so that they fall in the revenue page's twelve months.

use rust_decimal::Decimal;
use sqlx::PgPool;
use tollgate::cli::dev::{DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD, demo_application, demo_invoice, seed};
use uuid::Uuid;

use crate::helpers::{TestApp, csrf_from, spawn_app};
use crate::portal::location;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

async fn admin(pool: PgPool) -> TestApp {
    seed(&pool).await.unwrap();
    let app = spawn_app(pool).await;
    assert_eq!(location(&app.sign_in(DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD).await), "/admin");
    app
}

async fn account(pool: &PgPool, name: &str) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO accounts (id, kind, name) VALUES ($1, 'developer', $2)")
        .bind(id)
        .bind(name)
        .execute(pool)
        .await
        .unwrap();
    id
}

async fn plan_id(pool: &PgPool, system_name: &str) -> Uuid {
    sqlx::query_scalar("SELECT id FROM plans WHERE system_name = $1").bind(system_name).fetch_one(pool).await.unwrap()
}

/// `YYYY-MM` of the month `back` months before the current one (UTC).
async fn period(pool: &PgPool, back: i32) -> String {
    sqlx::query_scalar(
        "SELECT to_char(date_trunc('month', now() AT TIME ZONE 'UTC') - make_interval(months => $1), 'YYYY-MM')",
    )
    .bind(back)
    .fetch_one(pool)
    .await
    .unwrap()
}

struct Inv<'a> {
    account: Uuid,
    number: &'a str,
    /// Months before the current one.
    back: i32,
    currency: &'a str,
    state: &'a str,
    subtotal: &'a str,
    tax: &'a str,
    /// One line for this plan, of the subtotal.
    plan: Uuid,
}

async fn invoice(pool: &PgPool, i: Inv<'_>) -> Uuid {
    let id = Uuid::now_v7();
    let total = d(i.subtotal) + d(i.tax);
    sqlx::query(
        "INSERT INTO invoices (id, account_id, number, period_start, period_end, currency, state, subtotal, tax_rate, tax, total,
                               issued_at, due_at, paid_at, issuer)
         SELECT $1, $2, $3, p, (p + interval '1 month')::date, $5, $6::invoice_state, $7, 0.2, $8, $9,
                CASE WHEN $6 NOT IN ('open', 'finalized') THEN now() END,
                CASE WHEN $6 NOT IN ('open', 'finalized') THEN now() + interval '14 days' END,
                CASE WHEN $6 = 'paid' THEN now() END,
                CASE WHEN $6 NOT IN ('open', 'finalized') THEN '{\"name\": \"Weather Corp\", \"address\": \"1 Cloud Street\", \"tax_id\": \"FR123\"}'::jsonb END
         FROM (SELECT (date_trunc('month', now() AT TIME ZONE 'UTC') - make_interval(months => $4))::date AS p) t",
    )
    .bind(id)
    .bind(i.account)
    .bind(i.number)
    .bind(i.back)
    .bind(i.currency)
    .bind(i.state)
    .bind(d(i.subtotal))
    .bind(d(i.tax))
    .bind(total)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO invoice_lines (id, invoice_id, kind, description, quantity, unit_price, amount, plan_id)
         VALUES ($1, $2, 'monthly_fee', 'App: monthly fee', 1, $3, $3, $4)",
    )
    .bind(Uuid::now_v7())
    .bind(id)
    .bind(d(i.subtotal))
    .bind(i.plan)
    .execute(pool)
    .await
    .unwrap();
    id
}

/// The fixture of the list and revenue tests: two accounts, USD and EUR, every state.
struct World {
    acme: Uuid,
    acme_usd: Uuid,
    acme_eur: Uuid,
    bolt_usd_paid: Uuid,
    bolt_open: Uuid,
}

async fn world(pool: &PgPool) -> World {
    let basic = plan_id(pool, "basic").await;
    let pro = plan_id(pool, "pro").await;
    let euro = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO plans (id, api_id, system_name, name, currency) SELECT $1, api_id, 'euro', 'Euro', 'EUR' FROM plans WHERE id = $2",
    )
    .bind(euro)
    .bind(basic)
    .execute(pool)
    .await
    .unwrap();
    let acme = account(pool, "Acme Ltd").await;
    let bolt = account(pool, "Bolt Inc").await;
    let inv = |account, number, back, currency, state, subtotal, tax, plan| Inv {
        account,
        number,
        back,
        currency,
        state,
        subtotal,
        tax,
        plan,
    };
    let acme_usd = invoice(pool, inv(acme, "A-1", 1, "USD", "pending", "100.00", "20.00", basic)).await;
    invoice(pool, inv(acme, "A-2", 2, "USD", "paid", "50.00", "0", pro)).await;
    let acme_eur = invoice(pool, inv(acme, "A-3", 1, "EUR", "unpaid", "30.00", "0", euro)).await;
    let bolt_usd_paid = invoice(pool, inv(bolt, "B-1", 1, "USD", "paid", "10.50", "0", pro)).await;
    // Not revenue: cancelled, not issued yet, and older than twelve months.
    invoice(pool, inv(bolt, "B-2", 1, "EUR", "cancelled", "999.00", "0", euro)).await;
    let bolt_open = invoice(pool, inv(bolt, "B-3", 3, "USD", "open", "777.00", "0", basic)).await;
    invoice(pool, inv(bolt, "B-4", 12, "USD", "paid", "5000.00", "0", basic)).await;
    World { acme, acme_usd, acme_eur, bolt_usd_paid, bolt_open }
}

/// The invoice numbers a list page shows, in order.
fn numbers(page: &str) -> Vec<String> {
    page.split("<a href=\"/admin/invoices/")
        .skip(1)
        .filter_map(|s| s.split_once("\">").and_then(|(_, rest)| rest.split_once("</a>")).map(|(n, _)| n.to_owned()))
        .collect()
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_invoices_list_filters_by_state_account_period_and_currency(pool: PgPool) {
    let app = admin(pool.clone()).await;
    let w = world(&pool).await;
    let page = app.get("/admin/invoices").await.text().await.unwrap();
    assert!(page.contains("href=\"/admin/invoices\">Invoices</a>"), "nav link");
    assert_eq!(numbers(&page).len(), 7);
    assert!(page.contains("120.00 USD"), "totals with their currency");

    let get = |q: &'static str| {
        let app = &app;
        async move { numbers(&app.get(&format!("/admin/invoices?{q}")).await.text().await.unwrap()) }
    };
    let mut paid = get("state=paid").await;
    paid.sort();
    assert_eq!(paid, ["A-2", "B-1", "B-4"]);
    let mut bolt = get("account=bolt").await;
    bolt.sort();
    assert_eq!(bolt, ["B-1", "B-2", "B-3", "B-4"]);
    let by_id = numbers(&app.get(&format!("/admin/invoices?account={}", w.acme)).await.text().await.unwrap());
    assert_eq!(by_id.len(), 3);
    let last = period(&pool, 1).await;
    let mut last_month = numbers(&app.get(&format!("/admin/invoices?period={last}")).await.text().await.unwrap());
    last_month.sort();
    assert_eq!(last_month, ["A-1", "A-3", "B-1", "B-2"]);
    let mut eur = get("currency=eur").await;
    eur.sort();
    assert_eq!(eur, ["A-3", "B-2"]);
    assert_eq!(
        numbers(
            &app.get(&format!("/admin/invoices?state=paid&currency=USD&period={last}")).await.text().await.unwrap()
        ),
        ["B-1"]
    );

    // Bad filters are explained beside their field, not a server error.
    for (q, message) in [
        ("period=2026-13", "is not a month"),
        ("currency=euro", "is not a currency code"),
        ("state=lost", "is not a state"),
    ] {
        let res = app.get(&format!("/admin/invoices?{q}")).await;
        assert_eq!(res.status(), 422, "{q}");
        let page = res.text().await.unwrap();
        assert!(page.contains(message) && page.contains("aria-invalid=\"true\""), "{q}: {page}");
        assert!(numbers(&page).is_empty());
    }
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_invoice_page_offers_the_actions_its_state_allows(pool: PgPool) {
    let app = admin(pool.clone()).await;
    let w = world(&pool).await;
    let buttons = |page: &str| -> Vec<String> {
        page.split("name=\"action\" value=\"")
            .skip(1)
            .filter_map(|s| s.split_once('"').map(|(v, _)| v.to_owned()))
            .collect()
    };
    let pending = app.get(&format!("/admin/invoices/{}", w.acme_usd)).await.text().await.unwrap();
    assert_eq!(buttons(&pending), ["mark_unpaid", "cancel"]);
    for text in [
        "Weather Corp",
        "1 Cloud Street",
        "FR123",
        "Acme Ltd",
        "100.00 USD",
        "20.00 USD",
        "120.00 USD",
        "App: monthly fee",
    ] {
        assert!(pending.contains(text), "{text}");
    }
    // A payment can be recorded, for the total by default.
    assert!(pending.contains(&format!("action=\"/admin/invoices/{}/payments\"", w.acme_usd)));
    assert!(pending.contains("name=\"amount\" inputmode=\"decimal\" value=\"120.00\""));
    assert!(pending.contains("name=\"reference\""));

    let unpaid = app.get(&format!("/admin/invoices/{}", w.acme_eur)).await.text().await.unwrap();
    assert_eq!(buttons(&unpaid), ["cancel"]);
    assert!(unpaid.contains("/payments\""));
    let open = app.get(&format!("/admin/invoices/{}", w.bolt_open)).await.text().await.unwrap();
    assert_eq!(buttons(&open), ["finalize", "cancel"]);
    assert!(!open.contains("/payments\""), "not payable before it is issued");
    let paid = app.get(&format!("/admin/invoices/{}", w.bolt_usd_paid)).await.text().await.unwrap();
    assert!(buttons(&paid).is_empty());
    assert!(!paid.contains("/payments\"") && paid.contains("no further steps"));
    assert_eq!(app.get(&format!("/admin/invoices/{}", Uuid::now_v7())).await.status(), 404);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn cancelling_from_the_page_records_the_step_and_an_illegal_step_is_a_422(pool: PgPool) {
    let app = admin(pool.clone()).await;
    let w = world(&pool).await;
    let url = format!("/admin/invoices/{}", w.acme_usd);
    let token = csrf_from(&app.get(&url).await.text().await.unwrap());
    let post = format!("{url}/transition");
    // Without the CSRF token nothing happens.
    let res = app.post_form(&post, &[("action", "cancel")]).await;
    assert!(res.status().is_client_error());
    let res = app.post_form(&post, &[("csrf_token", &token), ("action", "cancel"), ("note", "sent twice")]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), url);
    let state: String = sqlx::query_scalar("SELECT state::text FROM invoices WHERE id = $1")
        .bind(w.acme_usd)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(state, "cancelled");
    let (from, to, actor, note): (Option<String>, String, String, String) = sqlx::query_as(
        "SELECT from_state, to_state, actor_label, note FROM invoice_transitions WHERE invoice_id = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(w.acme_usd)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (from.as_deref(), to.as_str(), actor.as_str(), note.as_str()),
        (Some("pending"), "cancelled", DEMO_ADMIN_EMAIL, "sent twice")
    );
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'invoice.cancel' AND entity_id = $1 AND actor_label = $2",
    )
    .bind(w.acme_usd)
    .bind(DEMO_ADMIN_EMAIL)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(audited, 1);
    let page = app.get(&url).await.text().await.unwrap();
    assert!(page.contains("sent twice") && page.contains(">cancelled<"), "the history shows the step");

    // A step the state does not allow (a stale page, a crafted form) is refused with why.
    let res = app.post_form(&post, &[("csrf_token", &token), ("action", "issue")]).await;
    assert_eq!(res.status(), 422);
    let page = res.text().await.unwrap();
    assert!(page.contains("an invoice in state cancelled cannot issue"), "{page}");
    assert!(page.contains("Invoice A-1"), "the invoice page comes back");
    let res = app.post_form(&post, &[("csrf_token", &token), ("action", "pay")]).await;
    assert_eq!(res.status(), 422, "payments are not a button of this page");
    let steps: i64 = sqlx::query_scalar("SELECT count(*) FROM invoice_transitions WHERE invoice_id = $1")
        .bind(w.acme_usd)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(steps, 1);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn revenue_matches_a_hand_computed_sum_per_currency_and_the_csv_matches_the_page(pool: PgPool) {
    let app = admin(pool.clone()).await;
    world(&pool).await;
    let page = app.get("/admin/revenue").await.text().await.unwrap();
    // USD: A-1 120.00 (pending) + A-2 50.00 (paid) + B-1 10.50 (paid) = 180.50; paid 60.50; outstanding 120.00.
    // EUR: A-3 30.00 (unpaid). Cancelled, open and year-old invoices are not revenue.
    for (id, value) in [
        ("invoiced-USD", "180.50 USD"),
        ("paid-USD", "60.50 USD"),
        ("outstanding-USD", "120.00 USD"),
        ("invoiced-EUR", "30.00 EUR"),
        ("paid-EUR", "0.00 EUR"),
        ("outstanding-EUR", "30.00 EUR"),
    ] {
        assert!(page.contains(&format!("data-testid=\"{id}\">{value}<")), "{id} {value}");
    }
    assert!(page.contains("<svg"), "a chart");
    assert!(!page.contains("999.00") && !page.contains("777.00") && !page.contains("5000.00"));
    // By plan, before tax: USD basic 100.00, pro 50.00 + 10.50; EUR euro 30.00.
    assert!(page.contains("<th scope=\"row\">Basic</th><td class=\"num\">100.00</td>"));
    assert!(page.contains("<th scope=\"row\">Pro</th><td class=\"num\">60.50</td>"));
    assert!(page.contains("<th scope=\"row\">Euro</th><td class=\"num\">30.00</td>"));
    assert!(page.contains("<th scope=\"row\">Weather API</th><td class=\"num\">160.50</td>"));

    let res = app.get("/admin/revenue.csv?table=months").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let csv = res.text().await.unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 24, "twelve months for each currency");
    let sum = |currency: &str, column: usize| -> Decimal {
        rows.iter().filter(|r| r[0] == currency).map(|r| d(r[column])).sum()
    };
    assert_eq!((sum("USD", 3), sum("USD", 4), sum("USD", 5)), (d("180.50"), d("60.50"), d("120.00")));
    assert_eq!((sum("EUR", 3), sum("EUR", 4), sum("EUR", 5)), (d("30.00"), d("0"), d("30.00")));
    for r in &rows {
        let cells = format!(
            "<th scope=\"row\">{}</th><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>",
            r[1], r[2], r[3], r[4], r[5]
        );
        assert!(page.contains(&cells), "the page shows the CSV row {r:?}");
    }
    let plans = app.get("/admin/revenue.csv?table=plans").await.text().await.unwrap();
    assert!(plans.contains("USD,Weather API,Basic,100.00") && plans.contains("USD,Weather API,Pro,60.50"), "{plans}");
    assert!(plans.contains("EUR,Weather API,Euro,30.00"));
    let apis = app.get("/admin/revenue.csv?table=apis").await.text().await.unwrap();
    assert!(apis.contains("USD,Weather API,160.50") && apis.contains("EUR,Weather API,30.00"), "{apis}");
    assert_eq!(app.get("/admin/revenue.csv?table=nope").await.status(), 422);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn billing_settings_are_validated_by_field_saved_exactly_and_audited(pool: PgPool) {
    let app = admin(pool.clone()).await;
    let url = "/admin/billing/settings";
    let page = app.get(url).await.text().await.unwrap();
    assert!(page.contains("name=\"tax_rate\" inputmode=\"decimal\" value=\"0\""));
    let token = csrf_from(&page);
    let form = |tax: &'static str, days: &'static str| {
        vec![
            ("csrf_token", token.clone()),
            ("provider_name", "Weather Corp".to_owned()),
            ("provider_address", "1 Cloud Street\nParis".to_owned()),
            ("provider_tax_id", "FR123".to_owned()),
            ("tax_rate", tax.to_owned()),
            ("mode", "prepaid".to_owned()),
            ("payment_terms_days", days.to_owned()),
        ]
    };
    let post = |fields: Vec<(&'static str, String)>| {
        let app = &app;
        async move {
            let borrowed: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            app.post_form(url, &borrowed).await
        }
    };
    let res = post(form("150", "30")).await;
    assert_eq!(res.status(), 422);
    let page = res.text().await.unwrap();
    assert!(page.contains("id=\"tax_rate-error\">Tax rate: use a percent from 0 up to (not including) 100"), "{page}");
    assert!(page.contains("value=\"Weather Corp\""), "the form comes back as typed");
    let res = post(form("abc", "400")).await;
    assert_eq!(res.status(), 422);
    let page = res.text().await.unwrap();
    assert!(page.contains("tax_rate-error") && page.contains("payment_terms_days-error"), "every bad field");
    let summary =
        page.split("data-testid=\"error-summary\"").nth(1).expect("a summary").split("</div>").next().unwrap();
    assert!(
        summary.contains("href=\"#tax_rate\">Tax rate: ")
            && summary.contains("href=\"#payment_terms_days\">Payment terms: ")
    );
    let rate: Decimal = sqlx::query_scalar("SELECT tax_rate FROM billing_settings").fetch_one(&pool).await.unwrap();
    assert_eq!(rate, Decimal::ZERO, "nothing saved");

    let res = post(form("7.125", "30")).await;
    assert_eq!(res.status(), 303);
    let (rate, mode, days, name): (Decimal, String, i32, String) =
        sqlx::query_as("SELECT tax_rate, mode::text, payment_terms_days, provider_name FROM billing_settings")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((rate, mode.as_str(), days, name.as_str()), (d("0.07125"), "prepaid", 30, "Weather Corp"));
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'billing_settings.update' AND actor_label = $1 AND after->>'tax_rate' = '0.07125'",
    )
    .bind(DEMO_ADMIN_EMAIL)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(audited, 1);
    let page = app.get(&location(&res)).await.text().await.unwrap();
    assert!(page.contains("Billing settings saved") && page.contains("value=\"7.125\""), "{page}");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_pricing_mode_is_saved_from_the_plan_editor_with_a_worked_example(pool: PgPool) {
    let app = admin(pool.clone()).await;
    let pro = plan_id(&pool, "pro").await;
    let url = format!("/admin/plans/{pro}");
    let page = app.get(&url).await.text().await.unwrap();
    // Pro: hits 1–100,000 free, then 0.0001 USD. At 100,001 units graduated charges one unit
    // (0.0001 → 0.00 USD), volume every unit at 0.0001: 10.0001 → 10.00 USD.
    assert!(page.contains("name=\"mode_metric_0\" value=\"hits\""), "{page}");
    assert!(page.contains("<option value=\"graduated\" selected>"));
    let example =
        "<th scope=\"row\" class=\"num\">100001</th><td class=\"num\">0.00 USD</td><td class=\"num\">10.00 USD</td>";
    assert!(page.contains(example), "{page}");
    assert!(page.contains(
        "<th scope=\"row\" class=\"num\">100000</th><td class=\"num\">0.00 USD</td><td class=\"num\">0.00 USD</td>"
    ));

    let token = csrf_from(&page);
    let fields = [
        ("csrf_token", token.as_str()),
        ("name", "Pro"),
        ("system_name", "pro"),
        ("description", "600 calls a minute"),
        ("published", "on"),
        ("approval_required", "on"),
        ("monthly_fee", "49.00"),
        ("setup_fee", "10.00"),
        ("currency", "USD"),
        ("trial_days", "14"),
        ("time_zone", "UTC"),
        ("limit_metric_0", "hits"),
        ("limit_period_0", "minute"),
        ("limit_max_0", "600"),
        ("price_metric_0", "hits"),
        ("price_from_0", "1"),
        ("price_to_0", "100000"),
        ("price_unit_0", "0"),
        ("price_metric_1", "hits"),
        ("price_from_1", "100001"),
        ("price_to_1", ""),
        ("price_unit_1", "0.0001"),
        ("mode_metric_0", "hits"),
        ("mode_0", "sliding"),
    ];
    let res = app.post_form(&url, &fields).await;
    assert_eq!(res.status(), 422, "an unknown mode is refused");
    assert!(res.text().await.unwrap().contains("hits: use graduated or volume"));
    let mut fields = fields.to_vec();
    fields.last_mut().unwrap().1 = "volume";
    let res = app.post_form(&url, &fields).await;
    assert_eq!(res.status(), 303);
    let mode: String = sqlx::query_scalar(
        "SELECT pm.mode::text FROM pricing_modes pm JOIN metrics m ON m.id = pm.metric_id WHERE pm.plan_id = $1 AND m.system_name = 'hits'",
    )
    .bind(pro)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(mode, "volume");
    let page = app.get(&url).await.text().await.unwrap();
    assert!(page.contains("<option value=\"volume\" selected>") && page.contains(example));
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_demo_seed_issues_an_invoice_once(pool: PgPool) {
    seed(&pool).await.unwrap();
    let first = demo_invoice(&pool, "http://127.0.0.1:8080").await.unwrap().expect("an invoice");
    let again = demo_invoice(&pool, "http://127.0.0.1:8080").await.unwrap().expect("the same invoice");
    assert_eq!(first, again);
    let (account, _) = demo_application(&pool).await.unwrap();
    let rows: Vec<(String, String, Decimal)> =
        sqlx::query_as("SELECT number, state::text, total FROM invoices WHERE account_id = $1")
            .bind(account.0)
            .fetch_all(&pool)
            .await
            .unwrap();
    // 25,000 calls on Basic: 10,000 free, 15,000 × 0.001 = 15.00 USD.
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].0.as_str(), rows[0].1.as_str(), rows[0].2.normalize()), (first.as_str(), "pending", d("15")));
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_admin_api_reads_and_replaces_pricing_modes(pool: PgPool) {
    seed(&pool).await.unwrap();
    let _actor = tollgate_core::audit::Actor::system("test");
    let token = crate::helpers::demo_admin_token(&pool).await;
    let app = spawn_app(pool.clone()).await;
    let pro = plan_id(&pool, "pro").await;
    let url = app.url(&format!("/admin/api/v1/plans/{pro}"));
    let get = || async {
        let res = app.client.get(&url).bearer_auth(token.as_str()).send().await.unwrap();
        res.json::<serde_json::Value>().await.unwrap()
    };
    let mut plan = get().await;
    assert_eq!(plan["pricing_modes"], serde_json::json!([]), "graduated is what no row means");
    for key in ["id", "api_id", "applications", "applications_exact"] {
        plan.as_object_mut().unwrap().remove(key);
    }
    let put = |body: serde_json::Value| {
        let app = &app;
        let url = &url;
        let token = token.as_str().to_owned();
        async move { app.client.put(url).bearer_auth(token).json(&body).send().await.unwrap() }
    };
    let mut body = plan.clone();
    body["pricing_modes"] = serde_json::json!([{"metric": "hits", "mode": "volume"}]);
    let res = put(body).await;
    assert_eq!(res.status(), 200);
    assert_eq!(get().await["pricing_modes"], serde_json::json!([{"metric": "hits", "mode": "volume"}]));
    // A mode outside the enum, or for a metric without tiers, is refused.
    let mut body = plan.clone();
    body["pricing_modes"] = serde_json::json!([{"metric": "hits", "mode": "sliding"}]);
    assert!(put(body).await.status().is_client_error());
    let mut body = plan.clone();
    body["pricing"] = serde_json::json!([]);
    body["pricing_modes"] = serde_json::json!([{"metric": "hits", "mode": "volume"}]);
    let res = put(body).await;
    assert_eq!(res.status(), 422);
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["field"], "pricing_modes[0].metric");
    assert_eq!(get().await["pricing_modes"], serde_json::json!([{"metric": "hits", "mode": "volume"}]), "unchanged");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn an_admin_downloads_any_invoices_pdf_and_a_drafts_says_draft(pool: PgPool) {
    let app = admin(pool.clone()).await;
    let w = world(&pool).await;
    let contains = |haystack: &[u8], needle: &str| haystack.windows(needle.len()).any(|w| w == needle.as_bytes());
    let page = app.get(&format!("/admin/invoices/{}", w.acme_usd)).await.text().await.unwrap();
    assert!(page.contains(&format!("href=\"/admin/invoices/{}.pdf\"", w.acme_usd)), "{page}");

    let res = app.get(&format!("/admin/invoices/{}.pdf", w.acme_usd)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/pdf");
    assert_eq!(res.headers()["content-disposition"], "attachment; filename=\"invoice-A-1.pdf\"");
    let bytes = res.bytes().await.unwrap();
    assert!(bytes.starts_with(b"%PDF-"));
    for text in ["(Number A-1)", "(120.00 USD)", "(Acme Ltd)", "(Weather Corp)"] {
        assert!(contains(&bytes, text), "{text}");
    }
    assert!(!contains(&bytes, "DRAFT"));

    // A draft, which developers cannot see, is marked as one.
    let page = app.get(&format!("/admin/invoices/{}", w.bolt_open)).await.text().await.unwrap();
    assert!(page.contains("Download PDF (draft)"), "{page}");
    let res = app.get(&format!("/admin/invoices/{}.pdf", w.bolt_open)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-disposition"], "attachment; filename=\"invoice-B-3-draft.pdf\"");
    let bytes = res.bytes().await.unwrap();
    assert!(contains(&bytes, "(DRAFT invoice - not issued)") && contains(&bytes, "(777.00 USD)"));

    assert_eq!(app.get(&format!("/admin/invoices/{}.pdf", Uuid::now_v7())).await.status(), 404);
    let stranger = spawn_app(pool.clone()).await;
    assert_ne!(stranger.get(&format!("/admin/invoices/{}.pdf", w.acme_usd)).await.status(), 200);
}
