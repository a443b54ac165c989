//! Payments of invoices: manual payments, the test provider's charges and their
//! retries (an injected `now` walks the three-day schedule), invoice mails, and the
//! billing admin REST API and payment form.
//!
//! Fixtures are rows, as in billing.rs: one application per account, subscribed
//! since September 2025, billed for October 2025.

use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sqlx::PgPool;
use time::{Duration, OffsetDateTime};
use tollgate::cli::dev::{DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD, seed};
use tollgate_core::billing::payments::{Round, TestProvider, run_due};
use tollgate_core::billing::run::{RunOptions, run};
use uuid::Uuid;

use crate::helpers::{TestApp, csrf_from, spawn_app};
use crate::portal::location;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

const BASE: &str = "https://portal.example";

/// An account whose one application is on a plan of `fee` a month in `currency`, with a
/// verified owner `owner@…` and an unverified one; returns (account, verified owner's email).
async fn customer(pool: &PgPool, name: &str, fee: &str, currency: &str) -> (Uuid, String) {
    let api = Uuid::now_v7();
    sqlx::query("INSERT INTO api_products (id, slug, name, base_path, state) VALUES ($1, $2, $2, $3, 'published')")
        .bind(api)
        .bind(name)
        .bind(format!("/{name}"))
        .execute(pool)
        .await
        .unwrap();
    let plan = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO plans (id, api_id, system_name, name, published, setup_fee, monthly_fee, currency, time_zone)
         VALUES ($1, $2, 'basic', 'Basic', true, 0, $3, $4, 'UTC')",
    )
    .bind(plan)
    .bind(api)
    .bind(d(fee))
    .bind(currency)
    .execute(pool)
    .await
    .unwrap();
    let account = Uuid::now_v7();
    sqlx::query("INSERT INTO accounts (id, kind, name) VALUES ($1, 'developer', $2)")
        .bind(account)
        .bind(name)
        .execute(pool)
        .await
        .unwrap();
    let email = format!("owner@{name}.example");
    for (address, verified) in [(email.clone(), true), (format!("unverified@{name}.example"), false)] {
        let user = Uuid::now_v7();
        sqlx::query("INSERT INTO users (id, email, email_verified_at) VALUES ($1, $2, CASE WHEN $3 THEN now() END)")
            .bind(user)
            .bind(&address)
            .bind(verified)
            .execute(pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO memberships (account_id, user_id, role) VALUES ($1, $2, 'owner')")
            .bind(account)
            .bind(user)
            .execute(pool)
            .await
            .unwrap();
    }
    let app = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO applications (id, account_id, api_id, plan_id, name, state) VALUES ($1, $2, $3, $4, 'app', 'live')",
    )
    .bind(app)
    .bind(account)
    .bind(api)
    .bind(plan)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("UPDATE subscription_segments SET started_at = '2025-09-01T00:00:00Z' WHERE application_id = $1")
        .bind(app)
        .execute(pool)
        .await
        .unwrap();
    (account, email)
}

async fn bill(pool: &PgPool, period: &str, charge: bool) {
    let options =
        RunOptions { month: Some(period.parse().unwrap()), public_url: BASE.into(), charge, ..RunOptions::default() };
    let summary = run(pool, &options, |_, _| {}).await.unwrap();
    assert!(summary.failed.is_empty(), "{summary:?}");
}

async fn invoice_of(pool: &PgPool, account: Uuid) -> (Uuid, String, String) {
    sqlx::query_as("SELECT id, number, state::text FROM invoices WHERE account_id = $1")
        .bind(account)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn mails_to(pool: &PgPool, to: &str) -> Vec<(String, String)> {
    sqlx::query_as("SELECT subject, body_text FROM outbox_emails WHERE to_address = $1 ORDER BY created_at, id")
        .bind(to)
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn notification_kinds(pool: &PgPool, email: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT n.kind FROM notifications n JOIN users u ON u.id = n.user_id WHERE u.email = $1 ORDER BY n.created_at, n.id",
    )
    .bind(email)
    .fetch_all(pool)
    .await
    .unwrap()
}

struct Admin {
    app: TestApp,
    token: String,
}

async fn admin_api(pool: PgPool) -> Admin {
    seed(&pool).await.unwrap();
    let token = crate::helpers::demo_admin_token(&pool).await;
    Admin { app: spawn_app(pool).await, token: token.as_str().to_owned() }
}

impl Admin {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.app.client.request(method, self.app.url(path)).bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_manual_payment_of_the_total_pays_the_invoice_with_a_payment_row_and_an_audit_entry(pool: PgPool) {
    let (account, _) = customer(&pool, "acme", "10", "USD").await;
    bill(&pool, "2025-10", false).await;
    let (id, _, state) = invoice_of(&pool, account).await;
    assert_eq!(state, "pending");
    let admin = admin_api(pool.clone()).await;
    let path = format!("/admin/api/v1/invoices/{id}/payments");
    // Not the total: 422 naming `amount`, and nothing written (a JSON number is read as its text).
    let (status, body) = admin.call(Method::POST, &path, Some(json!({"amount": 9.99, "reference": "BT-42"}))).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "amount");
    assert!(body["message"].as_str().unwrap().contains("10.00 USD"), "{body}");
    let (status, body) = admin.call(Method::POST, &path, Some(json!({"amount": "10.00", "reference": " "}))).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("reference")), "{body}");
    let (status, body) = admin.call(Method::POST, &path, Some(json!({"amount": true, "reference": "BT-42"}))).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("amount")), "{body}");
    let (status, body) = admin.call(Method::POST, &path, Some(json!({"amount": "-10.00", "reference": "BT-42"}))).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("amount")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("more than zero"), "{body}");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM payments").fetch_one(&pool).await.unwrap();
    assert_eq!(count, 0);
    // The total: paid, with the payment and its reference.
    let (status, body) = admin.call(Method::POST, &path, Some(json!({"amount": "10.00", "reference": "BT-42"}))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["state"], "paid");
    assert!(body["paid_at"].is_string());
    let payments = body["payments"].as_array().unwrap();
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["provider"], "manual");
    assert_eq!(payments[0]["reference"], "BT-42");
    assert_eq!(payments[0]["outcome"], "succeeded");
    assert_eq!(payments[0]["actor"], DEMO_ADMIN_EMAIL);
    assert_eq!(d(payments[0]["amount"].as_str().unwrap()), d("10"));
    let last = body["transitions"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((last["from_state"].as_str(), last["to_state"].as_str()), (Some("pending"), Some("paid")));
    let audited: Vec<(String, String)> =
        sqlx::query_as("SELECT action, actor_label FROM audit_log WHERE entity = 'invoice' AND entity_id = $1")
            .bind(id)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(audited, [("invoice.pay".to_owned(), DEMO_ADMIN_EMAIL.to_owned())]);
    // A paid invoice takes no second payment: 422 through the life cycle.
    let (status, body) = admin.call(Method::POST, &path, Some(json!({"amount": "10.00", "reference": "BT-43"}))).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("state")), "{body}");
    assert!(body["message"].as_str().unwrap().starts_with("state: an invoice in state paid cannot pay"), "{body}");
    // An unknown invoice is 404.
    let (status, _) = admin
        .call(
            Method::POST,
            &format!("/admin/api/v1/invoices/{}/payments", Uuid::now_v7()),
            Some(json!({"amount": "1", "reference": "x"})),
        )
        .await;
    assert_eq!(status, 404);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn an_illegal_transition_is_422_with_the_life_cycles_message(pool: PgPool) {
    let (account, _) = customer(&pool, "acme", "10", "USD").await;
    bill(&pool, "2025-10", false).await;
    let (id, _, _) = invoice_of(&pool, account).await;
    let admin = admin_api(pool.clone()).await;
    let path = format!("/admin/api/v1/invoices/{id}/transitions");
    let (status, body) = admin.call(Method::POST, &path, Some(json!({"action": "finalize"}))).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "action");
    assert_eq!(body["message"], "action: an invoice in state pending cannot finalize");
    let (status, body) = admin.call(Method::POST, &path, Some(json!({"action": "cancel", "note": "sent twice"}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "cancelled");
    let last = body["transitions"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((last["to_state"].as_str(), last["note"].as_str()), (Some("cancelled"), Some("sent twice")));
    assert_eq!(last["actor"], DEMO_ADMIN_EMAIL);
    let (status, _) = admin.call(Method::POST, &path, Some(json!({"action": "refund"}))).await;
    assert_eq!(status, 400, "not an action");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn declines_are_retried_three_days_apart_and_the_third_fails_the_invoice_and_tells_owners_and_admins(
    pool: PgPool,
) {
    seed(&pool).await.unwrap();
    // 10.13 ends in 13 minor units: the test provider declines it every time.
    let (account, owner) = customer(&pool, "acme", "10.13", "USD").await;
    bill(&pool, "2025-10", true).await;
    let (id, number, state) = invoice_of(&pool, account).await;
    assert_eq!(state, "pending");
    let due: Option<OffsetDateTime> = sqlx::query_scalar("SELECT next_attempt_at FROM invoices WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(due.is_some(), "an automatic provider tries at issue");
    let now = OffsetDateTime::now_utc() + Duration::seconds(1);
    let provider = TestProvider;
    let first = run_due(&pool, &provider, BASE, now).await.unwrap();
    assert_eq!(first, Round { paid: 0, declined: 1, failed: 0 });
    assert_eq!(invoice_of(&pool, account).await.2, "unpaid");
    let next: OffsetDateTime = sqlx::query_scalar("SELECT next_attempt_at FROM invoices WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(next.unix_timestamp(), (now + Duration::days(3)).unix_timestamp());
    // Nothing is due until three days later.
    let early = run_due(&pool, &provider, BASE, now + Duration::days(3) - Duration::seconds(1)).await.unwrap();
    assert_eq!(early, Round::default());
    let second = run_due(&pool, &provider, BASE, now + Duration::days(3)).await.unwrap();
    assert_eq!(second, Round { paid: 0, declined: 1, failed: 0 });
    assert_eq!(invoice_of(&pool, account).await.2, "unpaid");
    let third = run_due(&pool, &provider, BASE, now + Duration::days(6)).await.unwrap();
    assert_eq!(third, Round { paid: 0, declined: 0, failed: 1 });
    assert_eq!(invoice_of(&pool, account).await.2, "failed");
    // No fourth try.
    assert_eq!(run_due(&pool, &provider, BASE, now + Duration::days(30)).await.unwrap(), Round::default());
    let tries: Vec<(Option<i16>, String, String, Option<String>)> = sqlx::query_as(
        "SELECT attempt, provider, outcome::text, error FROM payments WHERE invoice_id = $1 ORDER BY attempted_at",
    )
    .bind(id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(tries.iter().map(|t| t.0).collect::<Vec<_>>(), [Some(1), Some(2), Some(3)]);
    assert!(tries.iter().all(|t| t.1 == "test" && t.2 == "declined" && t.3.as_deref().unwrap().contains("declined")));
    let steps: Vec<String> =
        sqlx::query_scalar("SELECT to_state FROM invoice_transitions WHERE invoice_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(steps, ["open", "finalized", "pending", "unpaid", "failed"]);
    // The owner: the issued invoice, then one mail per declined try.
    let mails = mails_to(&pool, &owner).await;
    let subjects: Vec<&str> = mails.iter().map(|m| m.0.as_str()).collect();
    let failed = format!("Payment of invoice {number} failed");
    assert_eq!(subjects, [format!("Invoice {number} for 2025-10").as_str(), &failed, &failed, &failed]);
    let retry_day = (now + Duration::days(3)).date();
    assert!(mails[1].1.contains(&format!("We will try again on {retry_day}")), "{}", mails[1].1);
    assert!(mails[3].1.contains("That was the last try"), "{}", mails[3].1);
    assert!(mails[3].1.contains(&format!("{BASE}/invoices/{id}")), "{}", mails[3].1);
    assert_eq!(
        notification_kinds(&pool, &owner).await,
        ["invoice_issued", "payment_failed", "payment_failed", "invoice_failed"]
    );
    // The unverified owner hears nothing; every admin hears of the failure.
    assert!(mails_to(&pool, "unverified@acme.example").await.is_empty());
    let admin_mails = mails_to(&pool, DEMO_ADMIN_EMAIL).await;
    assert_eq!(admin_mails.len(), 1);
    assert_eq!(admin_mails[0].0, format!("Invoice {number} failed"));
    assert!(admin_mails[0].1.contains(&format!("{BASE}/admin/invoices/{id}")), "{}", admin_mails[0].1);
    assert_eq!(notification_kinds(&pool, DEMO_ADMIN_EMAIL).await, ["invoice_failed"]);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_charge_the_provider_takes_pays_the_invoice_on_the_first_try(pool: PgPool) {
    let (account, owner) = customer(&pool, "acme", "10.14", "USD").await;
    bill(&pool, "2025-10", true).await;
    let (id, number, _) = invoice_of(&pool, account).await;
    let round = run_due(&pool, &TestProvider, BASE, OffsetDateTime::now_utc() + Duration::seconds(1)).await.unwrap();
    assert_eq!(round, Round { paid: 1, declined: 0, failed: 0 });
    let (state, next, attempts): (String, Option<OffsetDateTime>, i16) =
        sqlx::query_as("SELECT state::text, next_attempt_at, payment_attempts FROM invoices WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((state.as_str(), next, attempts), ("paid", None, 1));
    let (reference, outcome, amount): (String, String, Decimal) =
        sqlx::query_as("SELECT reference, outcome::text, amount FROM payments WHERE invoice_id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((reference, outcome.as_str(), amount), (format!("test-{number}-1"), "succeeded", d("10.14")));
    // Only the issue mail: a payment taken is no news.
    assert_eq!(mails_to(&pool, &owner).await.len(), 1);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_run_mails_each_issued_invoice_to_the_verified_owners_in_its_transaction(pool: PgPool) {
    let (account, owner) = customer(&pool, "acme", "49", "USD").await;
    // A dry run writes no mail.
    run(
        &pool,
        &RunOptions { month: Some("2025-10".parse().unwrap()), dry_run: true, ..RunOptions::default() },
        |_, _| {},
    )
    .await
    .unwrap();
    assert!(mails_to(&pool, &owner).await.is_empty());
    bill(&pool, "2025-10", false).await;
    let (id, number, _) = invoice_of(&pool, account).await;
    let mails = mails_to(&pool, &owner).await;
    assert_eq!(mails.len(), 1);
    let (subject, body) = &mails[0];
    assert_eq!(subject, &format!("Invoice {number} for 2025-10"));
    assert!(body.contains("Total: 49.00 USD"), "{body}");
    let due: OffsetDateTime =
        sqlx::query_scalar("SELECT due_at FROM invoices WHERE id = $1").bind(id).fetch_one(&pool).await.unwrap();
    assert!(body.contains(&format!("Due date: {}", due.date())), "{body}");
    assert!(body.contains(&format!("{BASE}/invoices/{id}")), "{body}");
    assert!(mails_to(&pool, "unverified@acme.example").await.is_empty());
    // The manual provider schedules no try.
    let next: Option<OffsetDateTime> = sqlx::query_scalar("SELECT next_attempt_at FROM invoices WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(next, None);
    // A second run issues nothing and mails nothing.
    bill(&pool, "2025-10", false).await;
    assert_eq!(mails_to(&pool, &owner).await.len(), 1);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_invoice_list_filters_by_state_account_period_and_currency(pool: PgPool) {
    let (acme, _) = customer(&pool, "acme", "10", "USD").await;
    let (globex, _) = customer(&pool, "globex", "20", "EUR").await;
    bill(&pool, "2025-10", false).await;
    bill(&pool, "2025-11", false).await;
    let admin = admin_api(pool.clone()).await;
    let numbers = |body: &Value| -> Vec<String> {
        body["items"].as_array().unwrap().iter().map(|i| i["number"].as_str().unwrap().to_owned()).collect()
    };
    let (status, all) = admin.call(Method::GET, "/admin/api/v1/invoices", None).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!((all["total"].as_i64(), all["total_exact"].as_bool()), (Some(4), Some(true)));
    // Newest period first.
    assert_eq!(all["items"][0]["period"], "2025-11");
    let (_, oct) = admin.call(Method::GET, "/admin/api/v1/invoices?period=2025-10", None).await;
    assert_eq!(oct["total"], 2);
    assert!(oct["items"].as_array().unwrap().iter().all(|i| i["period"] == "2025-10"));
    let (_, eur) = admin.call(Method::GET, "/admin/api/v1/invoices?currency=EUR", None).await;
    assert_eq!(eur["total"], 2);
    assert!(
        eur["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["account_id"] == globex.to_string() && i["account_name"] == "globex" && i["total"] == "20.00")
    );
    // A fragment of the account's name, ignoring case; `%` and `_` match only themselves.
    let (_, glob) = admin.call(Method::GET, "/admin/api/v1/invoices?account_name=LOBE", None).await;
    assert_eq!(glob["total"], 2);
    assert!(glob["items"].as_array().unwrap().iter().all(|i| i["account_name"] == "globex"));
    let (_, none) = admin.call(Method::GET, "/admin/api/v1/invoices?account_name=%25", None).await;
    assert_eq!(none["total"], 0);
    let long = "a".repeat(201);
    let (status, body) = admin.call(Method::GET, &format!("/admin/api/v1/invoices?account_name={long}"), None).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("account_name")), "{body}");
    let (_, mine) =
        admin.call(Method::GET, &format!("/admin/api/v1/invoices?account_id={acme}&period=2025-11"), None).await;
    assert_eq!(mine["total"], 1);
    let acme_nov = mine["items"][0]["id"].as_str().unwrap().to_owned();
    admin
        .call(
            Method::POST,
            &format!("/admin/api/v1/invoices/{acme_nov}/payments"),
            Some(json!({"amount": "10", "reference": "cash"})),
        )
        .await;
    let (_, paid) = admin.call(Method::GET, "/admin/api/v1/invoices?state=paid", None).await;
    assert_eq!(numbers(&paid), numbers(&mine));
    let (_, pending) = admin.call(Method::GET, "/admin/api/v1/invoices?state=pending&per_page=2&page=2", None).await;
    assert_eq!((pending["total"].as_i64(), pending["items"].as_array().unwrap().len()), (Some(3), 1));
    // The invoice whole: its lines.
    let (status, detail) = admin.call(Method::GET, &format!("/admin/api/v1/invoices/{acme_nov}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(detail["lines"][0]["kind"], "monthly_fee");
    assert_eq!(detail["lines"][0]["service_month"], "2025-11");
    assert_eq!(detail["issuer"]["name"], "");
    // Bad filters name themselves.
    for (query, field) in [("period=2025-13", "period"), ("period=25-10", "period"), ("currency=usd", "currency")] {
        let (status, body) = admin.call(Method::GET, &format!("/admin/api/v1/invoices?{query}"), None).await;
        assert_eq!((status, body["field"].as_str()), (422, Some(field)), "{query}: {body}");
    }
    let (status, _) = admin.call(Method::GET, "/admin/api/v1/invoices?state=lost", None).await;
    assert_eq!(status, 400);
    let (status, _) = admin.call(Method::GET, &format!("/admin/api/v1/invoices/{}", Uuid::now_v7()), None).await;
    assert_eq!(status, 404);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_billing_run_through_the_api_is_idempotent(pool: PgPool) {
    let (account, _) = customer(&pool, "acme", "10", "USD").await;
    let admin = admin_api(pool.clone()).await;
    let runs = "/admin/api/v1/billing/runs";
    let (status, dry) = admin.call(Method::POST, runs, Some(json!({"period": "2025-10", "dry_run": true}))).await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!((dry["dry_run"].as_bool(), dry["invoices"][0]["number"].is_null()), (Some(true), true));
    let count =
        || async { sqlx::query_scalar::<_, i64>("SELECT count(*) FROM invoices").fetch_one(&pool).await.unwrap() };
    assert_eq!(count().await, 0);
    let (status, first) =
        admin.call(Method::POST, runs, Some(json!({"period": "2025-10", "account_id": account}))).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["period"], "2025-10");
    assert_eq!(first["mode"], "postpaid");
    assert_eq!(first["invoices"].as_array().unwrap().len(), 1);
    assert_eq!(first["invoices"][0]["number"], "2025-10-00000001");
    assert_eq!(first["invoices"][0]["state"], "pending");
    let (status, second) = admin.call(Method::POST, runs, Some(json!({"period": "2025-10"}))).await;
    assert_eq!(status, 200);
    assert_eq!((second["invoices"].as_array().unwrap().len(), second["skipped"].as_i64()), (0, Some(1)));
    assert_eq!(count().await, 1);
    // Who started each run that wrote something is in the audit log, with what it issued.
    let runs_audited: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT after->>'invoices', actor_via FROM audit_log WHERE action = 'billing.run' ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(runs_audited.len(), 2, "the dry run changed nothing and is not audited: {runs_audited:?}");
    assert_eq!(runs_audited[0].0, r#"["2025-10-00000001"]"#);
    assert!(runs_audited.iter().all(|(_, via)| via.is_some()), "the token is named: {runs_audited:?}");
    let (status, _) = admin.call(Method::POST, runs, Some(json!([null, null]))).await;
    assert_eq!(status, 400, "a body that is not an object");
    // A month that has not ended, or is not a month, is refused naming `period`.
    for period in ["2999-01", "2025-1", "0000-01"] {
        let (status, body) = admin.call(Method::POST, runs, Some(json!({"period": period}))).await;
        assert_eq!((status, body["field"].as_str()), (422, Some("period")), "{period}: {body}");
    }
    // An account that does not exist is named, not a run that bills nobody.
    let unknown = json!({"period": "2025-10", "account_id": Uuid::now_v7(), "dry_run": true});
    let (status, body) = admin.call(Method::POST, runs, Some(unknown)).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("account_id")), "{body}");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn billing_settings_are_validated_field_by_field_and_audited(pool: PgPool) {
    let admin = admin_api(pool.clone()).await;
    let path = "/admin/api/v1/billing/settings";
    let (status, before) = admin.call(Method::GET, path, None).await;
    assert_eq!(status, 200);
    assert_eq!((before["mode"].as_str(), before["payment_terms_days"].as_i64()), (Some("postpaid"), Some(14)));
    let good = json!({
        "provider_name": "Weather Corp", "provider_address": "1 Cloud Street\nSpringfield", "provider_tax_id": "FR123",
        "tax_rate": "0.2", "mode": "prepaid", "payment_terms_days": 30, "payment_instructions": "IBAN FR76 3000 6000 0112 3456 7890 189"
    });
    let (status, after) = admin.call(Method::PUT, path, Some(good.clone())).await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after, good);
    assert_eq!(admin.call(Method::GET, path, None).await.1, good);
    let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'billing_settings.update'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(audited, 1);
    let with = |key: &str, value: Value| {
        let mut body = good.clone();
        body[key] = value;
        body
    };
    for (body, field) in [
        (with("tax_rate", json!("1.5")), "tax_rate"),
        (with("tax_rate", json!("0.123456")), "tax_rate"),
        (with("payment_terms_days", json!(400)), "payment_terms_days"),
        (with("payment_terms_days", json!(-1)), "payment_terms_days"),
        (with("provider_name", json!("x".repeat(201))), "provider_name"),
        (with("provider_tax_id", json!("x".repeat(101))), "provider_tax_id"),
        (with("payment_instructions", json!("x".repeat(2001))), "payment_instructions"),
        (with("payment_instructions", json!("pay\u{7}")), "payment_instructions"),
    ] {
        let (status, answer) = admin.call(Method::PUT, path, Some(body.clone())).await;
        assert_eq!((status, answer["field"].as_str()), (422, Some(field)), "{body}: {answer}");
    }
    // Not what the document allows: a mode that is none, a rate that is no number, not an object.
    // (A rate as a JSON number is read, as plans' fees are: see admin_api.rs.)
    for body in [with("mode", json!("weekly")), with("tax_rate", json!(true)), json!([null, null])] {
        let (status, answer) = admin.call(Method::PUT, path, Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {answer}");
    }
    // Nothing of the refused bodies was stored.
    assert_eq!(admin.call(Method::GET, path, None).await.1, good);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_admin_payment_form_records_the_payment_and_says_so_on_the_next_page(pool: PgPool) {
    let (account, _) = customer(&pool, "acme", "10", "USD").await;
    bill(&pool, "2025-10", false).await;
    let (id, _, _) = invoice_of(&pool, account).await;
    seed(&pool).await.unwrap();
    let app = spawn_app(pool.clone()).await;
    assert_eq!(location(&app.sign_in(DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD).await), "/admin");
    let html = app.get("/admin/accounts").await.text().await.unwrap();
    let token = csrf_from(&html);
    let path = format!("/admin/invoices/{id}/payments");
    // Without the CSRF token nothing happens.
    let res = app.post_form(&path, &[("amount", "10.00"), ("reference", "BT-1")]).await;
    assert_eq!(res.status(), 403);
    // A wrong amount: the invoice again (422), with what was typed and why beside it.
    let res = app.post_form(&path, &[("csrf_token", &token), ("amount", "9"), ("reference", "BT-1")]).await;
    assert_eq!(res.status(), 422);
    let page = res.text().await.unwrap();
    assert!(
        page.contains(
            "The payment was not recorded: the amount was refused (must equal the invoice&#39;s total, 10.00 USD;"
        ),
        "{page}"
    );
    let form = page.split("data-testid=\"record-payment\"").nth(1).expect("the payment form");
    let form = form.split("</form>").next().unwrap();
    assert!(form.contains("value=\"9\" aria-invalid=\"true\" aria-describedby=\"amount-error\""), "{form}");
    assert!(form.contains("id=\"amount-error\" role=\"alert\">Amount: must equal"), "{form}");
    assert!(form.contains("value=\"BT-1\""), "the reference is kept: {form}");
    assert_eq!(invoice_of(&pool, account).await.2, "pending");
    let res = app.post_form(&path, &[("csrf_token", &token), ("amount", "ten"), ("reference", "BT-1")]).await;
    assert_eq!(res.status(), 422);
    let page = res.text().await.unwrap();
    assert!(page.contains("the amount was refused (write the amount as a number") && page.contains("value=\"ten\""));
    // The total in another notation is not an amount as people write one.
    let res = app.post_form(&path, &[("csrf_token", &token), ("amount", "1e1"), ("reference", "BT-1")]).await;
    assert_eq!(res.status(), 422);
    assert_eq!(invoice_of(&pool, account).await.2, "pending");
    // The message belongs to that answer: the next page does not repeat it.
    assert!(!app.get("/admin/accounts").await.text().await.unwrap().contains("was not recorded"));
    let res = app.post_form(&path, &[("csrf_token", &token), ("amount", "10.00"), ("reference", "BT-1")]).await;
    assert_eq!((res.status().as_u16(), location(&res)), (303, format!("/admin/invoices/{id}")));
    assert_eq!(invoice_of(&pool, account).await.2, "paid");
    let page = app.get("/admin/accounts").await.text().await.unwrap();
    assert!(page.contains("Payment recorded: the invoice is paid."), "{page}");
    // The message is shown once.
    let page = app.get("/admin/accounts").await.text().await.unwrap();
    assert!(!page.contains("Payment recorded"), "{page}");
    // An unknown invoice is the 404 page.
    let res = app
        .post_form(
            &format!("/admin/invoices/{}/payments", Uuid::now_v7()),
            &[("csrf_token", &token), ("amount", "1"), ("reference", "x")],
        )
        .await;
    assert_eq!(res.status(), 404);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_admin_invoice_page_lists_tries_and_payments_and_shows_the_flash_after_the_redirect(pool: PgPool) {
    seed(&pool).await.unwrap();
    // 10.13 ends in 13 minor units: the test provider declines the first try.
    let (account, _) = customer(&pool, "acme", "10.13", "USD").await;
    bill(&pool, "2025-10", true).await;
    let (id, _, _) = invoice_of(&pool, account).await;
    let now = OffsetDateTime::now_utc() + Duration::seconds(1);
    assert_eq!(run_due(&pool, &TestProvider, BASE, now).await.unwrap().declined, 1);
    let app = spawn_app(pool.clone()).await;
    assert_eq!(location(&app.sign_in(DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD).await), "/admin");
    let url = format!("/admin/invoices/{id}");
    let page = app.get(&url).await.text().await.unwrap();
    let payments = page.split("data-testid=\"invoice-payments\"").nth(1).expect("a payments table");
    let payments = payments.split("</table>").next().unwrap();
    for text in ["try 1 of 3 (test)", "declined", "card declined (test provider", "10.13 USD", "payments (test)"] {
        assert!(payments.contains(text), "{text}: {payments}");
    }
    let next = (now + Duration::days(3)).date().to_string();
    assert!(page.contains(&format!("Next automatic try: <time datetime=\"{next}T")), "{page}");
    assert!(page.contains(&format!("data-local=\"minute\">{next} ")), "{page}");
    assert!(!page.contains("role=\"status\""), "no message before anything was done");

    // Record the payment with the page's own form and follow the redirect.
    let token = csrf_from(&page);
    let form = [("csrf_token", token.as_str()), ("amount", "10.13"), ("reference", "BT-2025-42")];
    let res = app.post_form(&format!("{url}/payments"), &form).await;
    assert_eq!((res.status().as_u16(), location(&res)), (303, url.clone()));
    let page = app.get(&location(&res)).await.text().await.unwrap();
    assert!(
        page.contains("<p class=\"flash flash-success\" role=\"status\">Payment recorded: the invoice is paid.</p>"),
        "{page}"
    );
    let payments = page.split("data-testid=\"invoice-payments\"").nth(1).unwrap().split("</table>").next().unwrap();
    let recorded = payments.split("<tr>").find(|row| row.contains("BT-2025-42")).expect("the recorded payment's row");
    for text in ["recorded (manual)", "succeeded", "10.13 USD", DEMO_ADMIN_EMAIL] {
        assert!(recorded.contains(text), "{text}: {recorded}");
    }
    assert_eq!(payments.matches("<tr>").count(), 3, "the header, the try and the payment: {payments}");
    assert!(!page.contains("Next automatic try"), "a paid invoice waits for no try");
    assert!(page.contains("data-testid=\"invoice-state\">paid<"), "{page}");
    // The message is shown once.
    assert!(!app.get(&url).await.text().await.unwrap().contains("Payment recorded"));
}
