//! Billing runs against a real database: golden invoices (arithmetic in the comments),
//! idempotence, concurrent runs, resumption after a crash, late usage, and the CLI.
//!
//! Fixtures are written as rows (the admin pages for prices come later); subscription
//! history comes from the applications trigger and is then moved into October 2025,
//! a 31-day month: 2,678,400 seconds.

use std::process::{Command, Output, Stdio};

use rust_decimal::Decimal;
use sqlx::PgPool;
use tollgate_core::billing::run::{RunOptions, RunSummary, run};
use uuid::Uuid;

use crate::helpers::database_url;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn month(s: &str) -> Option<tollgate_core::billing::Month> {
    Some(s.parse().unwrap())
}

struct Api {
    id: Uuid,
    hits: Uuid,
}

async fn api(pool: &PgPool, slug: &str) -> Api {
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO api_products (id, slug, name, base_path, state) VALUES ($1, $2, $2, $3, 'published')")
        .bind(id)
        .bind(slug)
        .bind(format!("/{slug}"))
        .execute(pool)
        .await
        .unwrap();
    let hits = Uuid::now_v7();
    sqlx::query("INSERT INTO metrics (id, api_id, system_name, friendly_name) VALUES ($1, $2, 'hits', 'Hits')")
        .bind(hits)
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
    Api { id, hits }
}

struct PlanSpec<'a> {
    name: &'a str,
    setup_fee: &'a str,
    monthly_fee: &'a str,
    currency: &'a str,
    time_zone: &'a str,
    /// (from, to, price)
    tiers: &'a [(i64, Option<i64>, &'a str)],
    volume: bool,
}

impl Default for PlanSpec<'_> {
    fn default() -> Self {
        PlanSpec {
            name: "basic",
            setup_fee: "0",
            monthly_fee: "0",
            currency: "USD",
            time_zone: "UTC",
            tiers: &[],
            volume: false,
        }
    }
}

async fn plan(pool: &PgPool, api: &Api, spec: PlanSpec<'_>) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO plans (id, api_id, system_name, name, published, setup_fee, monthly_fee, currency, time_zone)
         VALUES ($1, $2, $3, $3, true, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(api.id)
    .bind(spec.name)
    .bind(d(spec.setup_fee))
    .bind(d(spec.monthly_fee))
    .bind(spec.currency)
    .bind(spec.time_zone)
    .execute(pool)
    .await
    .unwrap();
    for (from, to, price) in spec.tiers {
        sqlx::query(
            "INSERT INTO pricing_rules (id, plan_id, metric_id, min_units, max_units, price_per_unit) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(Uuid::now_v7())
        .bind(id)
        .bind(api.hits)
        .bind(from)
        .bind(to)
        .bind(d(price))
        .execute(pool)
        .await
        .unwrap();
    }
    if spec.volume {
        sqlx::query("INSERT INTO pricing_modes (plan_id, metric_id, mode) VALUES ($1, $2, 'volume')")
            .bind(id)
            .bind(api.hits)
            .execute(pool)
            .await
            .unwrap();
    }
    id
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

/// A live application subscribed since `since` (its segment is moved there).
async fn application(pool: &PgPool, account: Uuid, api: &Api, plan: Uuid, name: &str, since: &str) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO applications (id, account_id, api_id, plan_id, name, state) VALUES ($1, $2, $3, $4, $5, 'live')",
    )
    .bind(id)
    .bind(account)
    .bind(api.id)
    .bind(plan)
    .bind(name)
    .execute(pool)
    .await
    .unwrap();
    move_segments(pool, id, &[(since, None)]).await;
    id
}

/// Sets the application's segments, oldest first, to these instants.
async fn move_segments(pool: &PgPool, app: Uuid, times: &[(&str, Option<&str>)]) {
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM subscription_segments WHERE application_id = $1 ORDER BY started_at, id")
            .bind(app)
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(ids.len(), times.len(), "segments of {app}");
    for (id, (start, end)) in ids.iter().zip(times) {
        sqlx::query(
            "UPDATE subscription_segments SET started_at = $2::timestamptz, ended_at = $3::timestamptz WHERE id = $1",
        )
        .bind(id)
        .bind(start)
        .bind(end)
        .execute(pool)
        .await
        .unwrap();
    }
}

/// Month usage as the rollups hold it: the bucket starts at the month's first instant
/// in the plan's zone.
async fn usage(pool: &PgPool, app: Uuid, metric: Uuid, bucket_start: &str, hits: i64) {
    sqlx::query(
        "INSERT INTO usage_rollups (application_id, metric_id, granularity, bucket_start, hits) VALUES ($1, $2, 'month', $3::timestamptz, $4)
         ON CONFLICT (application_id, metric_id, granularity, bucket_start) DO UPDATE SET hits = EXCLUDED.hits",
    )
    .bind(app)
    .bind(metric)
    .bind(bucket_start)
    .bind(hits)
    .execute(pool)
    .await
    .unwrap();
}

async fn bill(pool: &PgPool, period: &str) -> RunSummary {
    run(pool, &RunOptions { month: month(period), ..RunOptions::default() }, |_, _| {}).await.unwrap()
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Clone)]
struct Row {
    kind: String,
    amount: Decimal,
    service_month: String,
}

/// The account's invoice for the period: (number, state, total) and its lines, sorted.
async fn invoice(pool: &PgPool, account: Uuid, period: &str) -> (String, String, Decimal, Vec<Row>) {
    invoice_in_mode(pool, account, period, None).await
}

/// The same, for a period that has an invoice in each billing mode.
async fn invoice_in_mode(
    pool: &PgPool,
    account: Uuid,
    period: &str,
    mode: Option<&str>,
) -> (String, String, Decimal, Vec<Row>) {
    let (id, number, state, total): (Uuid, String, String, Decimal) = sqlx::query_as(
        "SELECT id, number, state::text, total FROM invoices
         WHERE account_id = $1 AND period_start = ($2 || '-01')::date AND ($3::text IS NULL OR mode::text = $3)",
    )
    .bind(account)
    .bind(period)
    .bind(mode)
    .fetch_one(pool)
    .await
    .unwrap();
    let mut lines: Vec<Row> = sqlx::query_as::<_, (String, Decimal, String)>(
        "SELECT kind::text, amount, to_char(service_month, 'YYYY-MM') FROM invoice_lines WHERE invoice_id = $1",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .map(|(kind, amount, service_month)| Row { kind, amount: amount.normalize(), service_month })
    .collect();
    lines.sort();
    (number, state, total.normalize(), lines)
}

fn line(kind: &str, amount: &str, service_month: &str) -> Row {
    Row { kind: kind.to_owned(), amount: d(amount).normalize(), service_month: service_month.to_owned() }
}

fn tiers() -> &'static [(i64, Option<i64>, &'static str)] {
    &[(1, Some(1000), "0.01"), (1001, None, "0.005")]
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn graduated_and_volume_at_a_tier_boundary_and_one_above(pool: PgPool) {
    let api = api(&pool, "weather").await;
    let graduated = plan(&pool, &api, PlanSpec { name: "graduated", tiers: tiers(), ..PlanSpec::default() }).await;
    let volume =
        plan(&pool, &api, PlanSpec { name: "volume", tiers: tiers(), volume: true, ..PlanSpec::default() }).await;
    let oct = "2025-10-01T00:00:00Z";
    let mut accounts = Vec::new();
    for (plan, units) in [(graduated, 1000), (graduated, 1001), (volume, 1000), (volume, 1001)] {
        let acc = account(&pool, "acme").await;
        let app = application(&pool, acc, &api, plan, "app", "2025-09-01T00:00:00Z").await;
        usage(&pool, app, api.hits, oct, units).await;
        accounts.push(acc);
    }
    bill(&pool, "2025-10").await;
    let usage_amount = |i: usize| {
        let pool = pool.clone();
        let acc = accounts[i];
        async move {
            let (_, _, total, lines) = invoice(&pool, acc, "2025-10").await;
            let usage: Vec<_> = lines.into_iter().filter(|l| l.kind == "usage").collect();
            assert_eq!(usage.len(), 1);
            assert_eq!(usage[0].amount, total, "the fee is 0, so the total is the usage");
            total
        }
    };
    // Graduated, 1000 units: 1000 × 0.01 = 10.00.
    assert_eq!(usage_amount(0).await, d("10"));
    // Graduated, 1001 units: 1000 × 0.01 + 1 × 0.005 = 10.005, rounded half-up once: 10.01.
    assert_eq!(usage_amount(1).await, d("10.01"));
    // Volume, 1000 units: tier 1 for all: 1000 × 0.01 = 10.00.
    assert_eq!(usage_amount(2).await, d("10"));
    // Volume, 1001 units: tier 2 for all: 1001 × 0.005 = 5.005 → 5.01.
    assert_eq!(usage_amount(3).await, d("5.01"));
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn mid_month_start_bills_the_setup_fee_once_and_the_rest_of_the_month(pool: PgPool) {
    let api = api(&pool, "weather").await;
    let basic = plan(&pool, &api, PlanSpec { setup_fee: "5", monthly_fee: "31", ..PlanSpec::default() }).await;
    let acc = account(&pool, "acme").await;
    application(&pool, acc, &api, basic, "app", "2025-10-16T00:00:00Z").await;
    bill(&pool, "2025-10").await;
    let (number, state, total, lines) = invoice(&pool, acc, "2025-10").await;
    // 16 of 31 days: 31.00 × 1,382,400 / 2,678,400 = 16.00; setup fee 5.00; total 21.00.
    assert_eq!(lines, [line("monthly_fee", "16", "2025-10"), line("setup_fee", "5", "2025-10")]);
    assert_eq!(total, d("21"));
    assert_eq!(state, "pending");
    assert_eq!(number, "2025-10-00000001");
    // November: the whole fee, no second setup fee.
    bill(&pool, "2025-11").await;
    let (number, _, total, lines) = invoice(&pool, acc, "2025-11").await;
    assert_eq!(lines, [line("monthly_fee", "31", "2025-11")]);
    assert_eq!(total, d("31"));
    assert_eq!(number, "2025-11-00000001", "numbers restart every month");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn mid_month_upgrade_and_downgrade_prorate_both_plans(pool: PgPool) {
    let api = api(&pool, "weather").await;
    let basic = plan(&pool, &api, PlanSpec { name: "basic", monthly_fee: "10", ..PlanSpec::default() }).await;
    let pro = plan(&pool, &api, PlanSpec { name: "pro", monthly_fee: "31", ..PlanSpec::default() }).await;
    let actor = tollgate_core::audit::Actor::system("test");
    let up = account(&pool, "up").await;
    let down = account(&pool, "down").await;
    let app_up = application(&pool, up, &api, basic, "up", "2025-09-01T00:00:00Z").await;
    let app_down = application(&pool, down, &api, pro, "down", "2025-09-01T00:00:00Z").await;
    let apps = tollgate_core::applications::ApplicationId;
    tollgate_core::applications::plan_change::change_by_admin(
        &pool,
        apps(app_up),
        tollgate_core::plans::PlanId(pro),
        &actor,
    )
    .await
    .unwrap();
    tollgate_core::applications::plan_change::change_by_admin(
        &pool,
        apps(app_down),
        tollgate_core::plans::PlanId(basic),
        &actor,
    )
    .await
    .unwrap();
    let change = "2025-10-11T00:00:00Z";
    move_segments(&pool, app_up, &[("2025-09-01T00:00:00Z", Some(change)), (change, None)]).await;
    move_segments(&pool, app_down, &[("2025-09-01T00:00:00Z", Some(change)), (change, None)]).await;
    bill(&pool, "2025-10").await;
    // Upgrade on the 11th: basic for 10 days, 10.00 × 10/31 = 3.2258… → 3.23;
    // pro for 21 days, 31.00 × 21/31 = 21.00. Total 24.23.
    let (_, _, total, lines) = invoice(&pool, up, "2025-10").await;
    assert_eq!(lines, [line("monthly_fee", "3.23", "2025-10"), line("monthly_fee", "21", "2025-10")]);
    assert_eq!(total, d("24.23"));
    // Downgrade on the 11th: pro for 10 days, 31.00 × 10/31 = 10.00;
    // basic for 21 days, 10.00 × 21/31 = 6.7741… → 6.77. Total 16.77.
    let (_, _, total, lines) = invoice(&pool, down, "2025-10").await;
    assert_eq!(lines, [line("monthly_fee", "6.77", "2025-10"), line("monthly_fee", "10", "2025-10")]);
    assert_eq!(total, d("16.77"));
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_trial_ending_mid_month_bills_from_its_end(pool: PgPool) {
    let api = api(&pool, "weather").await;
    let basic =
        plan(&pool, &api, PlanSpec { monthly_fee: "31", setup_fee: "2.5", tiers: tiers(), ..PlanSpec::default() })
            .await;
    let acc = account(&pool, "acme").await;
    let app = application(&pool, acc, &api, basic, "app", "2025-09-25T00:00:00Z").await;
    sqlx::query("UPDATE applications SET trial_ends_at = '2025-10-21T00:00:00Z' WHERE id = $1")
        .bind(app)
        .execute(&pool)
        .await
        .unwrap();
    // September was all trial: nothing to bill, no invoice.
    let sep = bill(&pool, "2025-09").await;
    assert_eq!((sep.invoices.len(), sep.empty), (0, 1));
    usage(&pool, app, api.hits, "2025-10-01T00:00:00Z", 100).await;
    bill(&pool, "2025-10").await;
    // From the 21st: 11 of 31 days, 31.00 × 11/31 = 11.00; setup fee 2.50 once billing
    // starts; usage 100 × 0.01 = 1.00 (the month's usage counts once the trial has ended in it).
    let (_, _, total, lines) = invoice(&pool, acc, "2025-10").await;
    assert_eq!(
        lines,
        [line("monthly_fee", "11", "2025-10"), line("setup_fee", "2.5", "2025-10"), line("usage", "1", "2025-10")]
    );
    assert_eq!(total, d("14.5"));
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn zero_usage_fees_only_and_free_plans(pool: PgPool) {
    let api = api(&pool, "weather").await;
    let priced =
        plan(&pool, &api, PlanSpec { name: "priced", monthly_fee: "20", tiers: tiers(), ..PlanSpec::default() }).await;
    let fees_only = plan(&pool, &api, PlanSpec { name: "fees", monthly_fee: "15", ..PlanSpec::default() }).await;
    let free_tier = &[(1, Some(100), "0"), (101, None, "1")];
    let free = plan(&pool, &api, PlanSpec { name: "free", tiers: free_tier, ..PlanSpec::default() }).await;
    let (idle, flat, gratis) =
        (account(&pool, "idle").await, account(&pool, "flat").await, account(&pool, "gratis").await);
    application(&pool, idle, &api, priced, "app", "2025-09-01T00:00:00Z").await;
    let busy = application(&pool, flat, &api, fees_only, "app", "2025-09-01T00:00:00Z").await;
    let within = application(&pool, gratis, &api, free, "app", "2025-09-01T00:00:00Z").await;
    usage(&pool, within, api.hits, "2025-10-01T00:00:00Z", 50).await;
    // Usage on a plan without prices costs nothing.
    usage(&pool, busy, api.hits, "2025-10-01T00:00:00Z", 50_000).await;
    bill(&pool, "2025-10").await;
    // A month of zero usage: the fee alone, no usage line.
    assert_eq!(invoice(&pool, idle, "2025-10").await.3, [line("monthly_fee", "20", "2025-10")]);
    // Fees only: 15.00 whatever the usage.
    assert_eq!(invoice(&pool, flat, "2025-10").await.3, [line("monthly_fee", "15", "2025-10")]);
    // Free, 50 calls within the free tier: 50 × 0 = 0.00, a zero invoice, paid on issue.
    let (_, state, total, lines) = invoice(&pool, gratis, "2025-10").await;
    assert_eq!((state.as_str(), total), ("paid", Decimal::ZERO));
    assert_eq!(lines, [line("usage", "0", "2025-10")]);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn new_york_usage_at_23_30_on_the_31st_is_billed_in_october(pool: PgPool) {
    let api = api(&pool, "weather").await;
    let ny = plan(&pool, &api, PlanSpec { time_zone: "America/New_York", tiers: tiers(), ..PlanSpec::default() }).await;
    let acc = account(&pool, "acme").await;
    let app = application(&pool, acc, &api, ny, "app", "2025-09-01T00:00:00Z").await;
    // New York's October runs from 2025-10-01T04:00Z (EDT) to 2025-11-01T04:00Z; 23:30 local
    // on the 31st is 03:30Z on 1 November, inside it. The month rollup for it starts at 04:00Z.
    usage(&pool, app, api.hits, "2025-10-01T04:00:00Z", 1200).await;
    // A UTC-month bucket is not New York's October and is not read for it.
    usage(&pool, app, api.hits, "2025-10-01T00:00:00Z", 999_999).await;
    bill(&pool, "2025-10").await;
    // 1000 × 0.01 + 200 × 0.005 = 11.00.
    assert_eq!(invoice(&pool, acc, "2025-10").await.3, [line("usage", "11", "2025-10")]);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn kolkata_usage_at_23_50_on_the_31st_is_billed_in_october_and_the_fee_follows_local_months(pool: PgPool) {
    let api = api(&pool, "weather").await;
    let ist = plan(
        &pool,
        &api,
        PlanSpec { time_zone: "Asia/Kolkata", monthly_fee: "31", tiers: tiers(), ..PlanSpec::default() },
    )
    .await;
    let acc = account(&pool, "acme").await;
    // Subscribed at 00:00 IST on 16 October = 2025-10-15T18:30Z: 16 local days of 31.
    let app = application(&pool, acc, &api, ist, "app", "2025-10-15T18:30:00Z").await;
    // Kolkata's October runs from 2025-09-30T18:30Z to 2025-10-31T18:30Z; 23:50 local on the
    // 31st is 18:20Z, inside it. Its month rollup starts at 18:30Z on 30 September.
    usage(&pool, app, api.hits, "2025-09-30T18:30:00Z", 10).await;
    bill(&pool, "2025-10").await;
    // 31.00 × 16/31 = 16.00; 10 × 0.01 = 0.10.
    let (_, _, total, lines) = invoice(&pool, acc, "2025-10").await;
    assert_eq!(lines, [line("monthly_fee", "16", "2025-10"), line("usage", "0.1", "2025-10")]);
    assert_eq!(total, d("16.1"));
}

/// Its usage up to the deletion too: the rollups used to go with the application, and a
/// developer who deleted an application before the month's run paid none of its calls.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_deleted_application_pays_its_final_prorated_fee_and_its_usage(pool: PgPool) {
    let api = api(&pool, "weather").await;
    let basic =
        plan(&pool, &api, PlanSpec { monthly_fee: "31", tiers: &[(1, None, "0.01")], ..PlanSpec::default() }).await;
    let acc = account(&pool, "acme").await;
    let app = application(&pool, acc, &api, basic, "app", "2025-09-01T00:00:00Z").await;
    usage(&pool, app, api.hits, "2025-10-01T00:00:00Z", 250).await;
    sqlx::query("DELETE FROM applications WHERE id = $1").bind(app).execute(&pool).await.unwrap();
    move_segments(&pool, app, &[("2025-09-01T00:00:00Z", Some("2025-10-21T00:00:00Z"))]).await;
    bill(&pool, "2025-10").await;
    // Cancelled on the 21st: 20 of 31 days, 31.00 × 20/31 = 20.00; 250 × 0.01 = 2.50.
    assert_eq!(
        invoice(&pool, acc, "2025-10").await.3,
        [line("monthly_fee", "20", "2025-10"), line("usage", "2.5", "2025-10")]
    );
    // Nothing after.
    let nov = bill(&pool, "2025-11").await;
    assert!(nov.invoices.is_empty());
}

/// Prepaid: December's fee went out in advance, and the application was deleted on the 11th.
/// January's invoice owes the account the rest of December: a credit, issued with nothing to
/// collect (left pending, it could never be paid and showed as revenue outstanding).
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_credit_is_issued_with_nothing_to_collect(pool: PgPool) {
    let api = api(&pool, "weather").await;
    let basic = plan(&pool, &api, PlanSpec { monthly_fee: "31", ..PlanSpec::default() }).await;
    let acc = account(&pool, "acme").await;
    let app = application(&pool, acc, &api, basic, "app", "2025-09-01T00:00:00Z").await;
    sqlx::query("UPDATE billing_settings SET mode = 'prepaid'").execute(&pool).await.unwrap();
    bill(&pool, "2025-12").await;
    assert_eq!(invoice(&pool, acc, "2025-12").await.2, d("62"), "November and December");
    sqlx::query("DELETE FROM applications WHERE id = $1").bind(app).execute(&pool).await.unwrap();
    move_segments(&pool, app, &[("2025-09-01T00:00:00Z", Some("2025-12-11T00:00:00Z"))]).await;
    bill(&pool, "2026-01").await;
    // 10 of December's 31 days: 10.00, of the 31.00 billed.
    let (_, state, total, lines) = invoice(&pool, acc, "2026-01").await;
    assert_eq!(lines, [line("adjustment", "-21", "2025-12")]);
    assert_eq!((state.as_str(), total), ("paid", d("-21")));
    let note: String = sqlx::query_scalar(
        "SELECT t.note FROM invoice_transitions t JOIN invoices i ON i.id = t.invoice_id
         WHERE i.period_start = '2026-01-01' AND t.to_state = 'paid'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(note.contains("a credit"), "{note}");
}

async fn rollups_of(pool: &PgPool, app: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM usage_rollups WHERE application_id = $1")
        .bind(app)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Kept for billing only: usage of an application that never went live goes with it, and a
/// deleted application's goes with its account.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn usage_is_kept_as_long_as_it_can_be_billed(pool: PgPool) {
    let api = api(&pool, "weather").await;
    let basic = plan(&pool, &api, PlanSpec::default()).await;
    let acc = account(&pool, "acme").await;
    let billed = application(&pool, acc, &api, basic, "billed", "2025-09-01T00:00:00Z").await;
    let pending = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO applications (id, account_id, api_id, plan_id, name, state) VALUES ($1, $2, $3, $4, 'pending', 'pending')",
    )
    .bind(pending)
    .bind(acc)
    .bind(api.id)
    .bind(basic)
    .execute(&pool)
    .await
    .unwrap();
    for app in [billed, pending] {
        usage(&pool, app, api.hits, "2025-10-01T00:00:00Z", 3).await;
        sqlx::query("DELETE FROM applications WHERE id = $1").bind(app).execute(&pool).await.unwrap();
    }
    assert_eq!(rollups_of(&pool, billed).await, 1, "a deleted application's usage is still owed");
    assert_eq!(rollups_of(&pool, pending).await, 0, "an application that never went live owes nothing");
    sqlx::query("DELETE FROM accounts WHERE id = $1").bind(acc).execute(&pool).await.unwrap();
    assert_eq!(rollups_of(&pool, billed).await, 0, "the account, and the debt, are gone");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn yen_lines_round_to_whole_yen(pool: PgPool) {
    let api = api(&pool, "weather").await;
    let yen = plan(
        &pool,
        &api,
        PlanSpec { currency: "JPY", monthly_fee: "1000", tiers: &[(1, None, "0.5")], ..PlanSpec::default() },
    )
    .await;
    let acc = account(&pool, "acme").await;
    let app = application(&pool, acc, &api, yen, "app", "2025-10-16T00:00:00Z").await;
    usage(&pool, app, api.hits, "2025-10-01T00:00:00Z", 3).await;
    bill(&pool, "2025-10").await;
    // 1000 × 16/31 = 516.129… → 516 yen; 3 × 0.5 = 1.5 → 2 yen (half-up). Total 518.
    let (_, _, total, lines) = invoice(&pool, acc, "2025-10").await;
    assert_eq!(lines, [line("monthly_fee", "516", "2025-10"), line("usage", "2", "2025-10")]);
    assert_eq!(total, d("518"));
    let currency: String = sqlx::query_scalar("SELECT currency FROM invoices WHERE account_id = $1")
        .bind(acc)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(currency, "JPY");
}

/// The same account billed postpaid for October and, on another database state, prepaid
/// for November: prepaid bills November's fee in advance with October's usage.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn prepaid_and_postpaid_side_by_side(pool: PgPool) {
    let api = api(&pool, "weather").await;
    let basic = plan(&pool, &api, PlanSpec { monthly_fee: "30", tiers: tiers(), ..PlanSpec::default() }).await;
    let post = account(&pool, "post").await;
    let pre = account(&pool, "pre").await;
    for acc in [post, pre] {
        let app = application(&pool, acc, &api, basic, "app", "2025-09-01T00:00:00Z").await;
        usage(&pool, app, api.hits, "2025-10-01T00:00:00Z", 500).await;
    }
    // Postpaid, October: October's fee 30.00 and October's usage 500 × 0.01 = 5.00.
    run(&pool, &RunOptions { month: month("2025-10"), account: Some(post), ..RunOptions::default() }, |_, _| {})
        .await
        .unwrap();
    assert_eq!(
        invoice(&pool, post, "2025-10").await.3,
        [line("monthly_fee", "30", "2025-10"), line("usage", "5", "2025-10")]
    );
    // Prepaid, November: November's fee 30.00 in advance, October's usage 5.00 in arrears;
    // October's fee was never invoiced in advance (no October invoice), so it is owed too.
    sqlx::query("UPDATE billing_settings SET mode = 'prepaid'").execute(&pool).await.unwrap();
    run(&pool, &RunOptions { month: month("2025-11"), account: Some(pre), ..RunOptions::default() }, |_, _| {})
        .await
        .unwrap();
    assert_eq!(
        invoice(&pool, pre, "2025-11").await.3,
        [line("monthly_fee", "30", "2025-10"), line("monthly_fee", "30", "2025-11"), line("usage", "5", "2025-10")]
    );
    let mode: String = sqlx::query_scalar("SELECT mode::text FROM invoices WHERE account_id = $1")
        .bind(pre)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(mode, "prepaid");
}

/// A provider moves from prepaid to postpaid during October. October's fee went out in advance
/// on its prepaid invoice; October's usage is billed once October ends, on a postpaid invoice
/// for October, not a month late as a correction on November's.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_switch_from_prepaid_to_postpaid_bills_the_months_usage_when_it_ends(pool: PgPool) {
    let api = api(&pool, "weather").await;
    let basic = plan(&pool, &api, PlanSpec { monthly_fee: "30", tiers: tiers(), ..PlanSpec::default() }).await;
    let acc = account(&pool, "acme").await;
    let app = application(&pool, acc, &api, basic, "app", "2025-09-01T00:00:00Z").await;
    usage(&pool, app, api.hits, "2025-09-01T00:00:00Z", 200).await;
    sqlx::query("UPDATE billing_settings SET mode = 'prepaid'").execute(&pool).await.unwrap();
    bill(&pool, "2025-10").await;
    // Prepaid, October: September's fee (never invoiced) and usage 200 × 0.01, October's fee.
    assert_eq!(
        invoice(&pool, acc, "2025-10").await.3,
        [line("monthly_fee", "30", "2025-09"), line("monthly_fee", "30", "2025-10"), line("usage", "2", "2025-09")]
    );

    sqlx::query("UPDATE billing_settings SET mode = 'postpaid'").execute(&pool).await.unwrap();
    usage(&pool, app, api.hits, "2025-10-01T00:00:00Z", 500).await;
    let summary = bill(&pool, "2025-10").await;
    assert_eq!((summary.invoices.len(), summary.skipped), (1, 0), "{summary:?}");
    // Postpaid, October: only October's usage, 500 × 0.01; its fee was billed in advance.
    let october = invoice_in_mode(&pool, acc, "2025-10", Some("postpaid")).await;
    assert_eq!(october.3, [line("usage", "5", "2025-10")]);
    // A second run for October skips the account.
    let again = bill(&pool, "2025-10").await;
    assert_eq!((again.invoices.len(), again.skipped), (0, 1), "{again:?}");
    // November bills November alone: nothing of October is billed twice or late.
    usage(&pool, app, api.hits, "2025-11-01T00:00:00Z", 100).await;
    bill(&pool, "2025-11").await;
    assert_eq!(
        invoice(&pool, acc, "2025-11").await.3,
        [line("monthly_fee", "30", "2025-11"), line("usage", "1", "2025-11")]
    );
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn late_usage_goes_on_the_next_invoice_as_an_adjustment(pool: PgPool) {
    let api = api(&pool, "weather").await;
    let basic = plan(&pool, &api, PlanSpec { monthly_fee: "10", tiers: tiers(), ..PlanSpec::default() }).await;
    let acc = account(&pool, "acme").await;
    let app = application(&pool, acc, &api, basic, "app", "2025-09-01T00:00:00Z").await;
    usage(&pool, app, api.hits, "2025-10-01T00:00:00Z", 100).await;
    bill(&pool, "2025-10").await;
    let october = invoice(&pool, acc, "2025-10").await;
    // An offline agent delivers 50 more October calls after the invoice was issued.
    usage(&pool, app, api.hits, "2025-10-01T00:00:00Z", 150).await;
    bill(&pool, "2025-11").await;
    // October's invoice is untouched: 10.00 + 100 × 0.01.
    assert_eq!(invoice(&pool, acc, "2025-10").await, october);
    assert_eq!(october.2, d("11"));
    // November: its fee, and October's 50 late calls, 0.50, as an adjustment.
    assert_eq!(
        invoice(&pool, acc, "2025-11").await.3,
        [line("adjustment", "0.5", "2025-10"), line("monthly_fee", "10", "2025-11")]
    );
    // Billing December changes nothing more about October.
    bill(&pool, "2025-12").await.invoices.len();
    let dec = invoice(&pool, acc, "2025-12").await.3;
    assert!(dec.iter().all(|l| l.service_month == "2025-12"), "{dec:?}");
}

/// An admin raises a plan's fee and its usage price after October and November were
/// invoiced: December's invoice charges the new prices for December, and corrects the months
/// before only for what changed in them (late calls), at no new price for what was billed.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_price_change_applies_to_months_not_yet_billed(pool: PgPool) {
    let api = api(&pool, "weather").await;
    let basic = plan(&pool, &api, PlanSpec { monthly_fee: "10", tiers: tiers(), ..PlanSpec::default() }).await;
    let acc = account(&pool, "acme").await;
    let app = application(&pool, acc, &api, basic, "app", "2025-09-01T00:00:00Z").await;
    usage(&pool, app, api.hits, "2025-10-01T00:00:00Z", 100).await;
    bill(&pool, "2025-10").await;
    usage(&pool, app, api.hits, "2025-11-01T00:00:00Z", 200).await;
    bill(&pool, "2025-11").await;
    assert_eq!(invoice(&pool, acc, "2025-11").await.2, d("12"));

    sqlx::query("UPDATE plans SET monthly_fee = 20 WHERE id = $1").bind(basic).execute(&pool).await.unwrap();
    sqlx::query("UPDATE pricing_rules SET price_per_unit = price_per_unit * 3 WHERE plan_id = $1")
        .bind(basic)
        .execute(&pool)
        .await
        .unwrap();
    // Ten late November calls, and December's own.
    usage(&pool, app, api.hits, "2025-11-01T00:00:00Z", 210).await;
    usage(&pool, app, api.hits, "2025-12-01T00:00:00Z", 100).await;
    bill(&pool, "2025-12").await;
    // December: 20.00, 100 × 0.03; November: the 10 late calls at today's 0.03. Before, the
    // two months already billed got their fees again at the new price (+10.00 each) and
    // their usage repriced (+2.00 and +4.20).
    let (_, _, total, lines) = invoice(&pool, acc, "2025-12").await;
    assert_eq!(
        lines,
        [line("adjustment", "0.3", "2025-11"), line("monthly_fee", "20", "2025-12"), line("usage", "3", "2025-12")]
    );
    assert_eq!(total, d("23.3"));
}

/// Prepaid bills a month's usage just before the month ends (with the next month's fee in
/// advance). The developer then moves to another plan in the month's last hours: the next
/// invoice bills only the calls made since, not the whole month again under the new plan.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_move_after_a_months_usage_was_billed_bills_only_the_calls_since(pool: PgPool) {
    let api = api(&pool, "weather").await;
    let a = plan(&pool, &api, PlanSpec { name: "a", tiers: tiers(), ..PlanSpec::default() }).await;
    let b = plan(&pool, &api, PlanSpec { name: "b", tiers: tiers(), ..PlanSpec::default() }).await;
    let acc = account(&pool, "acme").await;
    let app = application(&pool, acc, &api, a, "app", "2025-09-01T00:00:00Z").await;
    sqlx::query("UPDATE billing_settings SET mode = 'prepaid'").execute(&pool).await.unwrap();
    usage(&pool, app, api.hits, "2025-11-01T00:00:00Z", 1000).await;
    bill(&pool, "2025-12").await;
    assert_eq!(invoice(&pool, acc, "2025-12").await.3, [line("usage", "10", "2025-11")]);

    let actor = tollgate_core::audit::Actor::system("test");
    let moved = tollgate_core::plans::PlanId(b);
    tollgate_core::applications::plan_change::change_by_admin(
        &pool,
        tollgate_core::applications::ApplicationId(app),
        moved,
        &actor,
    )
    .await
    .unwrap();
    let change = "2025-11-30T15:00:00Z";
    move_segments(&pool, app, &[("2025-09-01T00:00:00Z", Some(change)), (change, None)]).await;
    usage(&pool, app, api.hits, "2025-11-01T00:00:00Z", 1100).await;
    bill(&pool, "2026-01").await;
    // The 100 calls since, past the first tier: 100 × 0.005. Before: all 1,100 again, 10.50.
    assert_eq!(invoice(&pool, acc, "2026-01").await.3, [line("adjustment", "0.5", "2025-11")]);
}

/// Four accounts, each with one 10.00 application.
async fn four_accounts(pool: &PgPool) -> Vec<Uuid> {
    let api = api(pool, "weather").await;
    let basic = plan(pool, &api, PlanSpec { monthly_fee: "10", tiers: tiers(), ..PlanSpec::default() }).await;
    let mut out = Vec::new();
    for i in 0..4 {
        let acc = account(pool, &format!("acme {i}")).await;
        let app = application(pool, acc, &api, basic, "app", "2025-09-01T00:00:00Z").await;
        usage(pool, app, api.hits, "2025-10-01T00:00:00Z", 100 * (i + 1)).await;
        out.push(acc);
    }
    out.sort();
    out
}

/// Every invoice with its lines, as comparable rows (ids and times left out).
async fn snapshot(pool: &PgPool) -> Vec<(Uuid, String, String, Decimal, Vec<(String, String, Decimal)>)> {
    let invoices: Vec<(Uuid, Uuid, String, String, Decimal)> =
        sqlx::query_as("SELECT id, account_id, number, state::text, total FROM invoices ORDER BY number")
            .fetch_all(pool)
            .await
            .unwrap();
    let mut out = Vec::new();
    for (id, account, number, state, total) in invoices {
        let lines: Vec<(String, String, Decimal)> = sqlx::query_as(
            "SELECT kind::text, description, amount FROM invoice_lines WHERE invoice_id = $1 ORDER BY kind, description",
        )
        .bind(id)
        .fetch_all(pool)
        .await
        .unwrap();
        out.push((account, number, state, total, lines));
    }
    out
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_second_run_changes_nothing(pool: PgPool) {
    let accounts = four_accounts(&pool).await;
    let first = bill(&pool, "2025-10").await;
    assert_eq!(first.invoices.len(), 4);
    let before = snapshot(&pool).await;
    let second = bill(&pool, "2025-10").await;
    assert_eq!((second.invoices.len(), second.skipped), (0, 4));
    assert_eq!(snapshot(&pool).await, before);
    // Numbers follow the accounts' order, from 1.
    let numbers: Vec<_> = before.iter().map(|i| (i.0, i.1.clone())).collect();
    let expected: Vec<_> =
        accounts.iter().enumerate().map(|(i, acc)| (*acc, format!("2025-10-{:08}", i + 1))).collect();
    assert_eq!(numbers, expected);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn two_concurrent_runs_make_one_invoice_per_account(pool: PgPool) {
    four_accounts(&pool).await;
    // Two replicas: two pools, two runs at once.
    let url = database_url(&pool).await;
    let other = PgPool::connect(&url).await.unwrap();
    let (a, b) = tokio::join!(bill(&pool, "2025-10"), bill(&other, "2025-10"));
    assert_eq!(a.invoices.len() + b.invoices.len(), 4);
    assert_eq!(a.skipped + b.skipped, 4);
    let per_account: Vec<i64> =
        sqlx::query_scalar("SELECT count(*) FROM invoices GROUP BY account_id").fetch_all(&pool).await.unwrap();
    assert_eq!(per_account, [1, 1, 1, 1]);
    let numbers: Vec<String> =
        sqlx::query_scalar("SELECT number FROM invoices ORDER BY number").fetch_all(&pool).await.unwrap();
    assert_eq!(numbers, (1..=4).map(|i| format!("2025-10-{i:08}")).collect::<Vec<_>>());
}

/// Every account's invoice and lines by account (numbers apart), and the numbers taken.
async fn rows_by_account(pool: &PgPool) -> (Vec<(Uuid, String, Decimal, Vec<(String, String, Decimal)>)>, Vec<String>) {
    let invoices: Vec<(Uuid, Uuid, String, Decimal)> =
        sqlx::query_as("SELECT id, account_id, state::text, total FROM invoices ORDER BY account_id")
            .fetch_all(pool)
            .await
            .unwrap();
    let mut out = Vec::new();
    for (id, account, state, total) in invoices {
        let lines: Vec<(String, String, Decimal)> = sqlx::query_as(
            "SELECT kind::text, description, amount FROM invoice_lines WHERE invoice_id = $1 ORDER BY kind, description",
        )
        .bind(id)
        .fetch_all(pool)
        .await
        .unwrap();
        out.push((account, state, total, lines));
    }
    let numbers = sqlx::query_scalar("SELECT number FROM invoices ORDER BY number").fetch_all(pool).await.unwrap();
    (out, numbers)
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn four_workers_make_the_same_rows_as_one(pool: PgPool) {
    let api = api(&pool, "weather").await;
    let basic =
        plan(&pool, &api, PlanSpec { setup_fee: "5", monthly_fee: "10", tiers: tiers(), ..PlanSpec::default() }).await;
    let free = plan(&pool, &api, PlanSpec { name: "free", ..PlanSpec::default() }).await;
    // Twelve accounts: two applications each, usage on one; every third on the free plan
    // without usage (nothing to bill).
    for i in 0..12_i64 {
        let acc = account(&pool, &format!("acme {i}")).await;
        let on = if i % 3 == 2 { free } else { basic };
        let app = application(&pool, acc, &api, on, "app", "2025-09-01T00:00:00Z").await;
        application(&pool, acc, &api, on, "other", "2025-10-11T00:00:00Z").await;
        if on == basic {
            usage(&pool, app, api.hits, "2025-10-01T00:00:00Z", 700 * (i + 1)).await;
        }
    }
    let options = |workers| RunOptions { month: month("2025-10"), workers, ..RunOptions::default() };
    let mut calls = Vec::new();
    let many = run(&pool, &options(4), |done, total| calls.push((done, total))).await.unwrap();
    assert_eq!((many.invoices.len(), many.empty, many.failed.len()), (8, 4, 0));
    // Progress counts every account once, in order, whatever order the workers finish in.
    assert_eq!(calls, (1..=12).map(|i| (i, 12)).collect::<Vec<_>>());
    let (concurrent, numbers) = rows_by_account(&pool).await;
    assert_eq!(numbers, (1..=8).map(|i| format!("2025-10-{i:08}")).collect::<Vec<_>>());
    sqlx::query("TRUNCATE invoices, invoice_sequences CASCADE").execute(&pool).await.unwrap();
    let one = run(&pool, &options(1), |_, _| {}).await.unwrap();
    assert_eq!((one.invoices.len(), one.empty), (8, 4));
    let (single, _) = rows_by_account(&pool).await;
    assert_eq!(concurrent, single);
    // The summary lists invoices in the accounts' order either way.
    let accounts = |s: &RunSummary| s.invoices.iter().map(|i| (i.account_id, i.total)).collect::<Vec<_>>();
    assert_eq!(accounts(&many), accounts(&one));
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_run_killed_half_way_resumes_to_the_same_rows(pool: PgPool) {
    let accounts = four_accounts(&pool).await;
    // What an uninterrupted run makes, computed without writing.
    let dry = run(&pool, &RunOptions { month: month("2025-10"), dry_run: true, ..RunOptions::default() }, |_, _| {})
        .await
        .unwrap();
    assert_eq!(snapshot(&pool).await, [], "a dry run writes nothing");
    // A run killed after two accounts committed theirs (each account is one transaction).
    for acc in &accounts[..2] {
        run(&pool, &RunOptions { month: month("2025-10"), account: Some(*acc), ..RunOptions::default() }, |_, _| {})
            .await
            .unwrap();
    }
    let resumed = bill(&pool, "2025-10").await;
    assert_eq!((resumed.invoices.len(), resumed.skipped), (2, 2));
    let rows = snapshot(&pool).await;
    let got: Vec<_> = rows.iter().map(|r| (r.0, r.1.clone(), r.3)).collect();
    let expected: Vec<_> = dry
        .invoices
        .iter()
        .enumerate()
        .map(|(i, inv)| (inv.account_id, format!("2025-10-{:08}", i + 1), inv.total))
        .collect();
    assert_eq!(got, expected);
}

fn tollgate(args: &[&str], url: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TOLLGATE_LOG", "warn")
        .env("TOLLGATE_DATABASE_URL", url)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn the_cli_bills_then_finds_nothing_left_and_refuses_bad_periods(pool: PgPool) {
    four_accounts(&pool).await;
    let url = database_url(&pool).await;
    let out = tollgate(&["billing", "run", "--period", "2025-10", "--dry-run"], &url);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("4 invoices would issue"), "{text}");
    // The same for scripts, as JSON.
    let out = tollgate(&["billing", "run", "--period", "2025-10", "--dry-run", "--json"], &url);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!((summary["month"].as_str(), summary["dry_run"].as_bool()), (Some("2025-10"), Some(true)));
    let totals: Vec<&str> =
        summary["invoices"].as_array().unwrap().iter().map(|i| i["total"].as_str().unwrap()).collect();
    assert_eq!(totals.len(), 4, "{summary}");
    assert!(summary["invoices"][0]["number"].is_null(), "a dry run numbers nothing");
    let out = tollgate(&["billing", "run", "--period", "2025-10"], &url);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("billing 2025-10 (postpaid): 4 accounts, 4 invoices issued"), "{text}");
    // 10.00 fee each plus 1.00, 2.00, 3.00 and 4.00 of usage.
    assert!(text.contains("USD: 4 invoices, total 50.00"), "{text}");
    let out = tollgate(&["billing", "run", "--period", "2025-10"], &url);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("0 invoices issued, 4 already billed"), "{text}");
    let bad = tollgate(&["billing", "run", "--period", "2025-13"], &url);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--period"), "{}", String::from_utf8_lossy(&bad.stderr));
    let future = tollgate(&["billing", "run", "--period", "2999-01"], &url);
    assert_eq!(future.status.code(), Some(1));
    let err = String::from_utf8_lossy(&future.stderr);
    assert!(err.contains("period: 2999-01 has not ended everywhere yet"), "{err}");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM invoices").fetch_one(&pool).await.unwrap();
    assert_eq!(count, 4);
}

/// Through the agent API: a call at 23:50 local on the last day of a Kolkata month, reported
/// as an agent reports it, is billed in that month. The month is the latest one that has
/// ended everywhere at least two days ago, so the minute is within the intake's 35 days.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn kolkata_usage_reported_by_an_agent_at_23_50_on_the_last_day_is_billed_in_that_month(pool: PgPool) {
    use jiff::{Timestamp, ToSpan};
    use tollgate_protocol::usage::LATENCY_BUCKETS;
    use tollgate_protocol::{StatusClass, UsageBatch, UsageEntry};

    let api = api(&pool, "weather").await;
    let ist = plan(&pool, &api, PlanSpec { time_zone: "Asia/Kolkata", tiers: tiers(), ..PlanSpec::default() }).await;
    let acc = account(&pool, "acme").await;
    let app = application(&pool, acc, &api, ist, "app", "2020-01-01T00:00:00Z").await;
    let now = Timestamp::now();
    let utc_month = (now - 48.hours()).to_zoned(jiff::tz::TimeZone::UTC).date().first_of_month();
    let month = utc_month.checked_sub(1.month()).unwrap();
    let last_day = utc_month.checked_sub(1.day()).unwrap();
    let kolkata = jiff::tz::TimeZone::get("Asia/Kolkata").unwrap();
    let at = last_day.at(23, 50, 0, 0).to_zoned(kolkata).unwrap().timestamp();
    let (_, token) =
        tollgate_core::gateways::create(&pool, "edge-1", &tollgate_core::audit::Actor::system("test")).await.unwrap();
    let server = crate::helpers::spawn_app(pool.clone()).await;
    let mut latency = [0u64; LATENCY_BUCKETS];
    latency[0] = 1001;
    let batch = UsageBatch {
        id: Uuid::now_v7(),
        agent_id: Uuid::now_v7(),
        entries: vec![UsageEntry {
            application_id: app,
            metric: api.hits,
            minute: at.as_second() - at.as_second().rem_euclid(60),
            status_class: StatusClass::Success,
            count: 1001,
            latency_buckets: latency,
            group: None,
        }],
        credentials_used: Vec::new(),
        refused: Vec::new(),
        failed_calls: Vec::new(),
        failed_calls_dropped: 0,
    };
    let res = server
        .client
        .post(server.url("/agent/v1/usage"))
        .bearer_auth(token.as_str())
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let period = format!("{:04}-{:02}", month.year(), month.month());
    run(
        &pool,
        &RunOptions { month: Some(period.parse().unwrap()), account: Some(acc), ..RunOptions::default() },
        |_, _| {},
    )
    .await
    .unwrap();
    // 1000 × 0.01 + 1 × 0.005 = 10.005 → 10.01, all in the Kolkata month the call was in.
    assert_eq!(invoice(&pool, acc, &period).await.3, [line("usage", "10.01", &period)]);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn invoices_move_only_along_the_life_cycle_and_every_move_is_audited(pool: PgPool) {
    use tollgate_core::billing::invoices::{list_for_account, transition};
    use tollgate_core::billing::{InvoiceAction, InvoiceState};
    let accounts = four_accounts(&pool).await;
    bill(&pool, "2025-10").await;
    let listed = list_for_account(&pool, accounts[0]).await.unwrap();
    assert_eq!(listed.len(), 1);
    let inv = &listed[0];
    assert_eq!((inv.period.as_str(), inv.state), ("2025-10", InvoiceState::Pending));
    let admin = tollgate_core::audit::Actor::system("admin@example.com");
    // Issued (pending) → unpaid after a failed try → paid.
    assert_eq!(
        transition(&pool, inv.id, InvoiceAction::MarkUnpaid, &admin, "card declined", false).await.unwrap(),
        InvoiceState::Unpaid
    );
    assert_eq!(
        transition(&pool, inv.id, InvoiceAction::Pay, &admin, "bank transfer 42", false).await.unwrap(),
        InvoiceState::Paid
    );
    // A paid invoice cannot be cancelled: invalid input naming the action.
    let err = transition(&pool, inv.id, InvoiceAction::Cancel, &admin, "", false).await.unwrap_err();
    match err {
        tollgate_core::Error::Invalid { field, message } => {
            assert_eq!(field, "action");
            assert_eq!(message, "an invoice in state paid cannot cancel");
        }
        other => panic!("expected invalid input, got {other:?}"),
    }
    let states: Vec<(Option<String>, String, String)> = sqlx::query_as(
        "SELECT from_state, to_state, actor_label FROM invoice_transitions WHERE invoice_id = $1 ORDER BY id",
    )
    .bind(inv.id)
    .fetch_all(&pool)
    .await
    .unwrap();
    let steps: Vec<_> = states.iter().map(|(f, t, _)| (f.as_deref(), t.as_str())).collect();
    assert_eq!(
        steps,
        [
            (None, "open"),
            (Some("open"), "finalized"),
            (Some("finalized"), "pending"),
            (Some("pending"), "unpaid"),
            (Some("unpaid"), "paid")
        ]
    );
    let audited: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_log WHERE entity = 'invoice' AND entity_id = $1 ORDER BY id")
            .bind(inv.id)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(audited, ["invoice.mark_unpaid", "invoice.pay"]);
    let paid_at: Option<time::OffsetDateTime> =
        sqlx::query_scalar("SELECT paid_at FROM invoices WHERE id = $1").bind(inv.id).fetch_one(&pool).await.unwrap();
    assert!(paid_at.is_some());
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn an_application_moved_away_and_back_has_one_fee_line_per_plan_and_later_accounts_are_billed(pool: PgPool) {
    let api = api(&pool, "weather").await;
    let basic = plan(&pool, &api, PlanSpec { name: "basic", monthly_fee: "10", ..PlanSpec::default() }).await;
    let pro = plan(&pool, &api, PlanSpec { name: "pro", monthly_fee: "31", ..PlanSpec::default() }).await;
    let actor = tollgate_core::audit::Actor::system("test");
    // Accounts are billed in id order: the mover first, then an ordinary account.
    let mover = account(&pool, "mover").await;
    let later = account(&pool, "later").await;
    let app = application(&pool, mover, &api, basic, "app", "2025-09-01T00:00:00Z").await;
    application(&pool, later, &api, basic, "app", "2025-09-01T00:00:00Z").await;
    let apps = tollgate_core::applications::ApplicationId;
    for to in [pro, basic] {
        tollgate_core::applications::plan_change::change_by_admin(
            &pool,
            apps(app),
            tollgate_core::plans::PlanId(to),
            &actor,
        )
        .await
        .unwrap();
    }
    let (b, c) = ("2025-10-11T00:00:00Z", "2025-10-21T00:00:00Z");
    move_segments(&pool, app, &[("2025-09-01T00:00:00Z", Some(b)), (b, Some(c)), (c, None)]).await;
    let summary = bill(&pool, "2025-10").await;
    assert!(summary.failed.is_empty(), "{:?}", summary.failed);
    // basic 1st–11th and 21st–end, 21 days summed before rounding: 10.00 × 21/31 = 6.774… → 6.77
    // (rounded apart it would be 3.23 + 3.55 = 6.78); pro 10 days: 31.00 × 10/31 = 10.00.
    let (_, _, total, lines) = invoice(&pool, mover, "2025-10").await;
    assert_eq!(lines, [line("monthly_fee", "6.77", "2025-10"), line("monthly_fee", "10", "2025-10")]);
    assert_eq!(total, d("16.77"));
    assert_eq!(invoice(&pool, later, "2025-10").await.2, d("10"));
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn an_account_that_fails_to_bill_is_reported_and_the_others_are_billed(pool: PgPool) {
    let ids = four_accounts(&pool).await;
    // One account's invoice cannot be written (a stand-in for any database error).
    let refused: Uuid =
        sqlx::query_scalar("SELECT id FROM accounts WHERE name = 'acme 1'").fetch_one(&pool).await.unwrap();
    sqlx::query(
        "CREATE FUNCTION refuse_invoice() RETURNS trigger AS $$ BEGIN
             IF EXISTS (SELECT 1 FROM accounts WHERE id = NEW.account_id AND name = 'acme 1') THEN
                 RAISE EXCEPTION 'refused for the test';
             END IF;
             RETURN NEW;
         END; $$ LANGUAGE plpgsql",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse_invoice BEFORE INSERT ON invoices FOR EACH ROW EXECUTE FUNCTION refuse_invoice()",
    )
    .execute(&pool)
    .await
    .unwrap();
    let url = database_url(&pool).await;
    let out = tollgate(&["billing", "run", "--period", "2025-10"], &url);
    let (text, err) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{text}\n{err}");
    assert!(
        text.contains("4 accounts, 3 invoices issued, 0 already billed, 0 with nothing to bill, 1 failed"),
        "{text}"
    );
    assert!(err.contains(&format!("FAILED account {refused}")), "{err}");
    assert!(err.contains("billing failed for 1 accounts"), "{err}");
    let billed: Vec<Uuid> =
        sqlx::query_scalar("SELECT account_id FROM invoices ORDER BY account_id").fetch_all(&pool).await.unwrap();
    let others: Vec<Uuid> = ids.iter().copied().filter(|id| *id != refused).collect();
    assert_eq!(billed, others);
    // Once the cause is gone, the next run bills just that account.
    sqlx::query("DROP TRIGGER refuse_invoice ON invoices").execute(&pool).await.unwrap();
    let summary = bill(&pool, "2025-10").await;
    assert_eq!((summary.invoices.len(), summary.skipped, summary.failed.len()), (1, 3, 0));
    assert_eq!(summary.invoices[0].account_id, refused);
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_100_million_dong_fee_and_ten_billion_dollars_of_usage_fit_the_invoice(pool: PgPool) {
    let api = api(&pool, "weather").await;
    let dong =
        plan(&pool, &api, PlanSpec { name: "dong", monthly_fee: "100000000", currency: "VND", ..PlanSpec::default() })
            .await;
    let dear = plan(&pool, &api, PlanSpec { name: "dear", tiers: &[(1, None, "1")], ..PlanSpec::default() }).await;
    let (vn, us) = (account(&pool, "vn").await, account(&pool, "us").await);
    application(&pool, vn, &api, dong, "app", "2025-09-01T00:00:00Z").await;
    let busy = application(&pool, us, &api, dear, "app", "2025-09-01T00:00:00Z").await;
    usage(&pool, busy, api.hits, "2025-10-01T00:00:00Z", 20_000_000_000).await;
    let summary = bill(&pool, "2025-10").await;
    assert!(summary.failed.is_empty(), "{:?}", summary.failed);
    let (_, _, total, lines) = invoice(&pool, vn, "2025-10").await;
    assert_eq!(lines, [line("monthly_fee", "100000000", "2025-10")]);
    assert_eq!(total, d("100000000"));
    let (_, _, total, lines) = invoice(&pool, us, "2025-10").await;
    // 20,000,000,000 calls × 1.00.
    assert_eq!(lines, [line("usage", "20000000000", "2025-10")]);
    assert_eq!(total, d("20000000000"));
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn late_usage_for_a_month_without_an_invoice_goes_on_the_next_invoice(pool: PgPool) {
    let api = api(&pool, "weather").await;
    let free = plan(&pool, &api, PlanSpec { name: "free", tiers: tiers(), ..PlanSpec::default() }).await;
    let acc = account(&pool, "acme").await;
    let app = application(&pool, acc, &api, free, "app", "2025-09-01T00:00:00Z").await;
    // October: no fee, no usage reported yet, so no invoice.
    let october = bill(&pool, "2025-10").await;
    assert_eq!((october.invoices.len(), october.empty), (0, 1));
    // The agent was offline: 100 October calls arrive in November.
    usage(&pool, app, api.hits, "2025-10-01T00:00:00Z", 100).await;
    bill(&pool, "2025-11").await;
    // 100 × 0.01 = 1.00, as an adjustment for October on November's invoice.
    let (_, _, total, lines) = invoice(&pool, acc, "2025-11").await;
    assert_eq!(lines, [line("adjustment", "1", "2025-10")]);
    assert_eq!(total, d("1"));
    // Billed once: December has nothing left for October.
    let december = bill(&pool, "2025-12").await;
    assert_eq!((december.invoices.len(), december.empty), (0, 1));
}

/// A plan's zone and currency decide which month rollups and which invoice its history is
/// billed from, so the admin API refuses to change them once the plan has subscribers.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_plans_zone_and_currency_are_fixed_once_it_has_applications(pool: PgPool) {
    use tollgate::cli::dev::seed;

    seed(&pool).await.unwrap();
    let token = crate::helpers::demo_admin_token(&pool).await;
    let app = crate::helpers::spawn_app(pool.clone()).await;
    let api = api(&pool, "zoned").await;
    let used = plan(&pool, &api, PlanSpec { name: "used", monthly_fee: "10", ..PlanSpec::default() }).await;
    let unused = plan(&pool, &api, PlanSpec { name: "unused", monthly_fee: "10", ..PlanSpec::default() }).await;
    let acc = account(&pool, "acme").await;
    application(&pool, acc, &api, used, "app", "2025-09-01T00:00:00Z").await;
    let put = |id: Uuid, name: &'static str, currency: &'static str, zone: &'static str| {
        let req = app.client.put(app.url(&format!("/admin/api/v1/plans/{id}"))).bearer_auth(token.as_str()).json(
            &serde_json::json!({"system_name": name, "name": name, "monthly_fee": "10", "currency": currency, "time_zone": zone}),
        );
        async move {
            let res = req.send().await.unwrap();
            (res.status().as_u16(), res.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, body) = put(used, "used", "EUR", "UTC").await;
    assert_eq!((status, &body["error"], &body["field"]), (422, &"invalid_input".into(), &"currency".into()), "{body}");
    let (status, body) = put(used, "used", "USD", "Asia/Kolkata").await;
    assert_eq!((status, &body["field"]), (422, &"time_zone".into()), "{body}");
    // Other fields still change; a plan nobody was ever on may change both.
    assert_eq!(put(used, "used", "USD", "UTC").await.0, 200);
    assert_eq!(put(unused, "unused", "EUR", "Asia/Kolkata").await.0, 200);
    let stored: (String, String) = sqlx::query_as("SELECT currency, time_zone FROM plans WHERE id = $1")
        .bind(used)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, ("USD".to_owned(), "UTC".to_owned()));
}

/// A cancelled invoice's charges stay owed: the next run bills them again. An admin who
/// cancels to waive them says so, and then no run bills them again (the next one carried a
/// waived charge back onto the account's next invoice).
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_cancelled_invoice_waives_its_charges_only_when_told(pool: PgPool) {
    use tollgate_core::audit::Actor;
    use tollgate_core::billing::{InvoiceAction, invoices};
    let api = api(&pool, "weather").await;
    let basic =
        plan(&pool, &api, PlanSpec { monthly_fee: "31", tiers: &[(1, None, "0.01")], ..PlanSpec::default() }).await;
    let (waived, corrected) = (account(&pool, "waived").await, account(&pool, "corrected").await);
    for acc in [waived, corrected] {
        let app = application(&pool, acc, &api, basic, "app", "2025-10-01T00:00:00Z").await;
        usage(&pool, app, api.hits, "2025-10-01T00:00:00Z", 250).await;
    }
    bill(&pool, "2025-10").await;
    for (acc, waive) in [(waived, true), (corrected, false)] {
        let id: Uuid = sqlx::query_scalar("SELECT id FROM invoices WHERE account_id = $1")
            .bind(acc)
            .fetch_one(&pool)
            .await
            .unwrap();
        invoices::transition(&pool, id, InvoiceAction::Cancel, &Actor::system("test"), "", waive).await.unwrap();
    }
    bill(&pool, "2025-11").await;
    let october = |lines: &[Row]| lines.iter().filter(|l| l.service_month == "2025-10").count();
    assert_eq!(october(&invoice(&pool, waived, "2025-11").await.3), 0, "waived: nothing of October again");
    // Cancelled to be corrected: all of October is owed again, its fee as well as its usage
    // (the month cannot be invoiced again, so its fee was lost before).
    let november = invoice(&pool, corrected, "2025-11").await.3;
    assert_eq!(october(&november), 2, "{november:?}");
    assert!(november.contains(&line("adjustment", "31", "2025-10")), "{november:?}");
    assert!(november.contains(&line("adjustment", "2.5", "2025-10")), "{november:?}");
    // Only a cancellation waives.
    let id: Uuid = sqlx::query_scalar("SELECT id FROM invoices WHERE account_id = $1 AND state <> 'cancelled'")
        .bind(waived)
        .fetch_one(&pool)
        .await
        .unwrap();
    let err = invoices::transition(&pool, id, InvoiceAction::MarkUnpaid, &Actor::system("test"), "", true).await;
    assert!(matches!(err, Err(tollgate_core::Error::Invalid { ref field, .. }) if field == "waive"), "{err:?}");
}

/// Deleting a plan deletes its subscription history, so the admin cannot delete a plan whose
/// past subscribers still owe fees the run has not invoiced: the answer names the amount. Once
/// the run has billed it, the plan can go.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_plan_with_charges_not_yet_invoiced_cannot_be_deleted(pool: PgPool) {
    use tollgate::cli::dev::seed;

    seed(&pool).await.unwrap();
    let token = crate::helpers::demo_admin_token(&pool).await;
    let app = crate::helpers::spawn_app(pool.clone()).await;
    let api = api(&pool, "leaving").await;
    let old =
        plan(&pool, &api, PlanSpec { name: "old", monthly_fee: "30", currency: "EUR", ..PlanSpec::default() }).await;
    let new = plan(&pool, &api, PlanSpec { name: "new", currency: "EUR", ..PlanSpec::default() }).await;
    let acc = account(&pool, "acme").await;
    // On the old plan for the whole of the month before last, on the new one since; no run
    // has billed either month.
    let (two_back, one_back): (String, String) = sqlx::query_as(
        "SELECT to_char(date_trunc('month', now() AT TIME ZONE 'UTC') - interval '2 months', 'YYYY-MM-DD\"T\"00:00:00Z'),
                to_char(date_trunc('month', now() AT TIME ZONE 'UTC') - interval '1 month', 'YYYY-MM-DD\"T\"00:00:00Z')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let moved = application(&pool, acc, &api, old, "app", &two_back).await;
    sqlx::query("UPDATE applications SET plan_id = $2 WHERE id = $1")
        .bind(moved)
        .bind(new)
        .execute(&pool)
        .await
        .unwrap();
    move_segments(&pool, moved, &[(&two_back, Some(&one_back)), (&one_back, None)]).await;

    let delete = || async {
        let res = app
            .client
            .delete(app.url(&format!("/admin/api/v1/plans/{old}")))
            .bearer_auth(token.as_str())
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.text().await.unwrap())
    };
    let (status, body) = delete().await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("1 account(s) owe 30.00 EUR"), "{body}");
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM subscription_segments WHERE plan_id = $1")
        .bind(old)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(kept, 1);

    let summary = bill(&pool, &two_back[..7]).await;
    assert_eq!(summary.invoices.len(), 1, "{summary:?}");
    assert_eq!(invoice(&pool, acc, &two_back[..7]).await.2, d("30.00"));
    let (status, body) = delete().await;
    assert_eq!(status, 204, "{body}");
}
