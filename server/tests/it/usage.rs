//! Usage analytics over HTTP: batches posted to the agent API as an agent
//! does, read back from the database; buckets in the plan's zone, refusals,
//! failed calls, alerts across two replicas, muting and retention.

use std::time::{Duration, Instant};

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde_json::{Value, json};
use sqlx::PgPool;
use tollgate::cli::dev::{DEMO_DEVELOPER_EMAIL, seed};
use tollgate_core::accounts::AccountId;
use tollgate_core::applications::{self, NewApplication};
use tollgate_core::audit::Actor;
use tollgate_core::gateways;
use tollgate_core::notifications;
use tollgate_core::plans::list_plans;
use tollgate_core::usage::levels::{self, AlertLevel};
use tollgate_core::webhooks::TargetPolicy;
use tollgate_core::webhooks::subscriptions::{self, SubscriptionInput};
use tollgate_protocol::usage::LATENCY_BUCKETS;
use tollgate_protocol::{FailedCall, RefusedEntry, StatusClass, UsageAck, UsageBatch, UsageEntry};
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app};

struct Setup {
    app: TestApp,
    token: String,
    account: AccountId,
    developer: Uuid,
    api: Uuid,
    hits: Uuid,
}

/// The demo data, a registered gateway, and the ids the tests use.
struct Seeded {
    gateway: gateways::GatewayId,
    token: String,
    account: AccountId,
    developer: Uuid,
    api: Uuid,
    hits: Uuid,
}

async fn seeded(pool: &PgPool) -> Seeded {
    seed(pool).await.unwrap();
    let (gateway, token) = gateways::create(pool, "edge-1", &Actor::system("test")).await.unwrap();
    let (developer, account): (Uuid, Uuid) = sqlx::query_as(
        "SELECT u.id, m.account_id FROM users u JOIN memberships m ON m.user_id = u.id WHERE u.email = $1",
    )
    .bind(DEMO_DEVELOPER_EMAIL)
    .fetch_one(pool)
    .await
    .unwrap();
    let api = tollgate_core::apis::find_by_slug(pool, "weather").await.unwrap().unwrap();
    let hits: Uuid = sqlx::query_scalar("SELECT id FROM metrics WHERE api_id = $1 AND system_name = 'hits'")
        .bind(api.id.0)
        .fetch_one(pool)
        .await
        .unwrap();
    Seeded { gateway, token: token.as_str().to_owned(), account: AccountId(account), developer, api: api.id.0, hits }
}

async fn setup(pool: PgPool) -> Setup {
    let Seeded { token, account, developer, api, hits, .. } = seeded(&pool).await;
    Setup { app: spawn_app(pool).await, token, account, developer, api, hits }
}

impl Setup {
    /// A new application on the seeded plan `plan` (`basic` or `pro`), whose
    /// plan is moved to time zone `tz`.
    async fn application(&self, plan: &str, name: &str, tz: &str) -> Uuid {
        let plans = list_plans(&self.app.pool, tollgate_core::apis::ApiId(self.api)).await.unwrap();
        let plan = plans.into_iter().find(|p| p.system_name == plan).unwrap();
        sqlx::query("UPDATE plans SET time_zone = $2 WHERE id = $1")
            .bind(plan.id.0)
            .bind(tz)
            .execute(&self.app.pool)
            .await
            .unwrap();
        let app = applications::create(
            &self.app.pool,
            self.account,
            &NewApplication { plan_id: plan.id, name: name.into(), description: String::new() },
            &Actor::system("test"),
        )
        .await
        .unwrap();
        app.id.0
    }

    async fn post(&self, batch: &UsageBatch) -> UsageAck {
        post_to(&self.app, &self.token, batch).await
    }
}

async fn post_to(app: &TestApp, token: &str, batch: &UsageBatch) -> UsageAck {
    let res = app.client.post(app.url("/agent/v1/usage")).bearer_auth(token).json(batch).send().await.unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    res.json().await.unwrap()
}

fn batch(entries: Vec<UsageEntry>) -> UsageBatch {
    UsageBatch {
        id: Uuid::now_v7(),
        agent_id: Uuid::now_v7(),
        entries,
        credentials_used: Vec::new(),
        refused: Vec::new(),
        failed_calls: Vec::new(),
        failed_calls_dropped: 0,
    }
}

fn latency(fast: u64, slow: u64) -> [u64; LATENCY_BUCKETS] {
    let mut buckets = [0; LATENCY_BUCKETS];
    buckets[0] = fast;
    buckets[LATENCY_BUCKETS - 1] = slow;
    buckets
}

fn entry(app: Uuid, metric: Uuid, minute: i64, count: u64) -> UsageEntry {
    UsageEntry {
        application_id: app,
        metric,
        minute,
        status_class: StatusClass::Success,
        count,
        latency_buckets: latency(count - 1, 1),
        group: None,
    }
}

fn now_minute() -> i64 {
    Timestamp::now().as_second() / 60 * 60
}

/// 23:50 local on the last day of the latest month whose last day has passed
/// that time, in `tz` (within intake's 35 days by construction).
fn month_end_evening(tz: &TimeZone) -> (Timestamp, Date) {
    let today = Timestamp::now().to_zoned(tz.clone()).date();
    let mut last = today.first_of_month().yesterday().unwrap();
    let this_month = today.last_of_month();
    let at = |d: Date| d.to_datetime(Time::new(23, 50, 0, 0).unwrap()).to_zoned(tz.clone()).unwrap().timestamp();
    if at(this_month) <= Timestamp::now() {
        last = this_month;
    }
    (at(last), last)
}

async fn bucket(pool: &PgPool, app: Uuid, granularity: &str) -> Vec<(Timestamp, i64, Vec<i64>)> {
    let rows: Vec<(time::OffsetDateTime, i64, Vec<i64>)> = sqlx::query_as(
        "SELECT bucket_start, hits, latency_buckets FROM usage_rollups
         WHERE application_id = $1 AND granularity = $2::rollup_granularity ORDER BY bucket_start",
    )
    .bind(app)
    .bind(granularity)
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter().map(|(t, h, l)| (Timestamp::from_second(t.unix_timestamp()).unwrap(), h, l)).collect()
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn month_end_evening_calls_land_in_that_months_day_and_month_buckets_of_the_plans_zone(pool: PgPool) {
    let s = setup(pool).await;
    for (plan, zone) in [("basic", "Asia/Kolkata"), ("pro", "Asia/Kathmandu")] {
        let app = s.application(plan, &format!("Zone {plan}"), zone).await;
        let tz = TimeZone::get(zone).unwrap();
        let (at, day) = month_end_evening(&tz);
        // 23:50 local is still the previous UTC day's evening: 18:20 or 18:05 UTC.
        assert_eq!(at.to_zoned(TimeZone::UTC).date(), day);
        let minute = at.as_second();
        // And a call ten minutes later, at 00:00 local: the next month.
        let ack = s.post(&batch(vec![entry(app, s.hits, minute, 3), entry(app, s.hits, minute + 600, 4)])).await;
        assert!(!ack.duplicate);

        let local_midnight = |d: Date| d.to_zoned(tz.clone()).unwrap().timestamp();
        let fast_slow = |count: i64| {
            let mut l = vec![0i64; LATENCY_BUCKETS];
            l[0] = count - 1;
            l[LATENCY_BUCKETS - 1] = 1;
            l
        };
        let days = bucket(&s.app.pool, app, "day").await;
        assert_eq!(
            days,
            vec![(local_midnight(day), 3, fast_slow(3)), (local_midnight(day.tomorrow().unwrap()), 4, fast_slow(4))],
            "{zone}: day buckets start at local midnight"
        );
        let months = bucket(&s.app.pool, app, "month").await;
        assert_eq!(
            months.iter().map(|(t, h, _)| (*t, *h)).collect::<Vec<_>>(),
            vec![(local_midnight(day.first_of_month()), 3), (local_midnight(day.tomorrow().unwrap()), 4)],
            "{zone}: the 23:50 call is in the month that ends that day"
        );
        // Hours follow the local clock too (hh:00 local, i.e. :30 or :15 past a UTC hour).
        let hours = bucket(&s.app.pool, app, "hour").await;
        assert_eq!(hours[0].0, at - 50.minutes());
        assert_eq!(hours[0].1, 3);
        // Minutes stay the agents' UTC minutes.
        let minutes = bucket(&s.app.pool, app, "minute").await;
        assert_eq!(
            minutes.iter().map(|(t, h, _)| (t.as_second(), *h)).collect::<Vec<_>>(),
            vec![(minute, 3), (minute + 600, 4)]
        );
    }
}

fn refused(app: Uuid, minute: i64, status: u16, count: u64) -> RefusedEntry {
    RefusedEntry { application_id: app, minute, status, count, latency_buckets: latency(count, 0), group: None }
}

fn failed_call(app: Uuid, api: Uuid, at: Timestamp, n: usize) -> FailedCall {
    FailedCall {
        application_id: app,
        api_id: api,
        at,
        method: "GET".into(),
        metric: None,
        path: format!("/weather/forecast/{n}"),
        status: 429,
        error: Some("limit_exceeded".into()),
        key_prefix: Some("tg_uk_1AbC".into()),
        latency_us: 1200,
        request_id: None,
    }
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_replayed_batch_counts_its_usage_refusals_and_failed_calls_once(pool: PgPool) {
    let s = setup(pool).await;
    let app = s.application("basic", "Replay", "UTC").await;
    let minute = now_minute();
    let mut b = batch(vec![entry(app, s.hits, minute, 5)]);
    b.refused = vec![refused(app, minute, 429, 2), refused(app, minute, 403, 1)];
    b.failed_calls = (0..3).map(|n| failed_call(app, s.api, Timestamp::now(), n)).collect();
    b.failed_calls_dropped = 4;
    for duplicate in [false, true, true] {
        assert_eq!(s.post(&b).await, UsageAck { batch_id: b.id, duplicate });
    }
    for g in ["minute", "hour", "day", "month"] {
        let rows = bucket(&s.app.pool, app, g).await;
        assert_eq!(rows.iter().map(|r| r.1).collect::<Vec<_>>(), vec![5], "{g}");
        assert_eq!(rows[0].2.iter().sum::<i64>(), 5, "{g}: latency buckets");
    }
    let refusals: Vec<(i16, i64)> = sqlx::query_as(
        "SELECT status, requests FROM usage_refusals WHERE application_id = $1 AND granularity = 'minute' ORDER BY status",
    )
    .bind(app)
    .fetch_all(&s.app.pool)
    .await
    .unwrap();
    assert_eq!(refusals, vec![(403, 1), (429, 2)]);
    let failed: Vec<(String, i16, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT path, status, error, key_prefix FROM failed_calls WHERE application_id = $1 ORDER BY path",
    )
    .bind(app)
    .fetch_all(&s.app.pool)
    .await
    .unwrap();
    assert_eq!(failed.len(), 3);
    assert_eq!(
        failed[0],
        ("/weather/forecast/0".into(), 429, Some("limit_exceeded".into()), Some("tg_uk_1AbC".into()))
    );
    let metrics = s.app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("tollgate_usage_failed_calls_dropped_total") && l.ends_with(" 4")),
        "dropped failed calls are counted once: {metrics}"
    );
}

/// Usage of a metric of another API (an agent's bug, or a stolen agent token) would show in
/// the application's charts: it is left out, and the rest of the batch counts.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn usage_on_a_metric_of_another_api_is_not_counted_on_the_application(pool: PgPool) {
    let s = setup(pool).await;
    let app = s.application("basic", "Own metrics only", "UTC").await;
    let spec = "openapi: 3.0.3\ninfo: {title: Other, version: '1'}\npaths:\n  /x:\n    get: {responses: {'200': {description: ok}}}\n";
    let new = tollgate_core::apis::NewApi {
        name: Some("Other".into()),
        slug: Some("other".into()),
        base_path: Some("/other".into()),
        upstream_url: Some("http://127.0.0.1:9".into()),
    };
    let parsed = tollgate_openapi::parse(spec).unwrap();
    let other =
        tollgate_core::apis::create_from_spec(&s.app.pool, spec, &parsed, new, &Actor::system("test")).await.unwrap();
    let foreign: Uuid = sqlx::query_scalar("SELECT id FROM metrics WHERE api_id = $1 AND system_name = 'hits'")
        .bind(other.id.0)
        .fetch_one(&s.app.pool)
        .await
        .unwrap();
    let minute = now_minute();
    s.post(&batch(vec![entry(app, foreign, minute, 7), entry(app, s.hits, minute, 2)])).await;
    let counted: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT metric_id, hits FROM usage_rollups WHERE application_id = $1 AND granularity = 'minute'",
    )
    .bind(app)
    .fetch_all(&s.app.pool)
    .await
    .unwrap();
    assert_eq!(counted, vec![(s.hits, 2)]);
}

/// One failed-call record no status class holds (an upstream that answered 600) used to
/// make the whole batch 422, and every application's usage in it was lost.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_failed_call_that_is_not_valid_is_left_out_and_the_usage_counts(pool: PgPool) {
    let s = setup(pool).await;
    let app = s.application("basic", "Odd upstream", "UTC").await;
    let minute = now_minute();
    let mut b = batch(vec![entry(app, s.hits, minute, 7)]);
    let mut odd = failed_call(app, s.api, Timestamp::now(), 0);
    odd.status = 600;
    b.failed_calls = vec![odd, failed_call(app, s.api, Timestamp::now(), 1)];
    assert_eq!(s.post(&b).await, UsageAck { batch_id: b.id, duplicate: false });
    let rows = bucket(&s.app.pool, app, "minute").await;
    assert_eq!(rows.iter().map(|r| r.1).collect::<Vec<_>>(), vec![7]);
    let failed: Vec<i16> = sqlx::query_scalar("SELECT status FROM failed_calls WHERE application_id = $1")
        .bind(app)
        .fetch_all(&s.app.pool)
        .await
        .unwrap();
    assert_eq!(failed, vec![429], "the valid record is kept");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn only_the_newest_200_failed_calls_of_an_application_are_kept(pool: PgPool) {
    let s = setup(pool).await;
    let app = s.application("basic", "Failing", "UTC").await;
    let other = s.application("basic", "Other", "UTC").await;
    let start = Timestamp::now() - 1.hour();
    let at = |n: usize| start + (n as i64).seconds();
    let mut first = batch(Vec::new());
    first.failed_calls = (0..150).map(|n| failed_call(app, s.api, at(n), n)).collect();
    first.failed_calls.push(failed_call(other, s.api, at(0), 0));
    s.post(&first).await;
    let mut second = batch(Vec::new());
    second.failed_calls = (150..250).map(|n| failed_call(app, s.api, at(n), n)).collect();
    s.post(&second).await;

    let kept: Vec<String> =
        sqlx::query_scalar("SELECT path FROM failed_calls WHERE application_id = $1 ORDER BY at, id")
            .bind(app)
            .fetch_all(&s.app.pool)
            .await
            .unwrap();
    assert_eq!(kept.len(), 200);
    assert_eq!(kept[0], "/weather/forecast/50", "the 50 oldest went");
    assert_eq!(kept[199], "/weather/forecast/249");
    let others: i64 = sqlx::query_scalar("SELECT count(*) FROM failed_calls WHERE application_id = $1")
        .bind(other)
        .fetch_one(&s.app.pool)
        .await
        .unwrap();
    assert_eq!(others, 1, "another application's calls are not trimmed");
}

/// Polls `query` (a count) until it is `want`, or fails after 20 s.
/// An agent reports a deleted application's last calls after the deletion (its flush tick,
/// or a spool delivered late). They are still owed, so they are rolled up for billing;
/// calls "after" the deletion are not, and nothing else of the application is kept.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn usage_reported_after_an_application_is_deleted_is_kept_up_to_the_deletion(pool: PgPool) {
    let s = setup(pool).await;
    let app = s.application("basic", "Short lived", "UTC").await;
    let minute = now_minute();
    s.post(&batch(vec![entry(app, s.hits, minute, 5)])).await;
    applications::delete(&s.app.pool, s.account, applications::ApplicationId(app), &Actor::system("test"))
        .await
        .unwrap();
    let mut late = batch(vec![entry(app, s.hits, minute, 2), entry(app, s.hits, minute + 240, 9)]);
    late.refused = vec![refused(app, minute, 429, 1)];
    late.failed_calls = vec![failed_call(app, s.api, Timestamp::now(), 0)];
    assert_eq!(s.post(&late).await, UsageAck { batch_id: late.id, duplicate: false });
    for g in ["minute", "hour", "day", "month"] {
        let hits: Vec<i64> = bucket(&s.app.pool, app, g).await.iter().map(|r| r.1).collect();
        assert_eq!(hits, vec![7], "{g}: the calls up to the deletion, none after");
    }
    let kept: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM usage_refusals WHERE application_id = $1)
              + (SELECT count(*) FROM failed_calls WHERE application_id = $1)
              + (SELECT count(*) FROM usage_alert_queue WHERE application_id = $1)",
    )
    .bind(app)
    .fetch_one(&s.app.pool)
    .await
    .unwrap();
    assert_eq!(kept, 0);
}

async fn wait_for_count(pool: &PgPool, query: &'static str, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n: i64 = sqlx::query_scalar(query).fetch_one(pool).await.unwrap();
        if n == want {
            return;
        }
        assert!(Instant::now() < deadline, "`{query}` is {n}, not {want}, after 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const ALERT_MAILS: &str = "SELECT count(*) FROM outbox_emails WHERE subject LIKE '%of its%limit'";
const QUEUED: &str = "SELECT count(*) FROM usage_alert_queue";

/// A pro-plan application whose only limit is 1,000,000 hits a month.
async fn monthly_app(s: &Setup, name: &str) -> Uuid {
    let app = s.application("pro", name, "Europe/Paris").await;
    sqlx::query("DELETE FROM usage_limits l USING applications a WHERE a.id = $1 AND l.plan_id = a.plan_id AND l.period <> 'month'")
        .bind(app)
        .execute(&s.app.pool)
        .await
        .unwrap();
    app
}

/// Rollups add up capped at the largest count, but two near it in one limit window summed past
/// it: every snapshot failed ("bigint out of range"), so no agent became ready, and the alert
/// round failed on that application for everyone.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn usage_near_the_largest_count_in_one_window_breaks_no_snapshot_and_no_alert(pool: PgPool) {
    let s = setup(pool.clone()).await;
    let app = monthly_app(&s, "Flooded").await;
    sqlx::query(
        "INSERT INTO usage_rollups (application_id, metric_id, granularity, bucket_start, hits)
         SELECT $1, $2, 'day', start + d * interval '1 day', 9000000000000000000
         FROM (SELECT date_trunc('month', now() AT TIME ZONE 'Europe/Paris') AT TIME ZONE 'Europe/Paris' AS start) m,
              generate_series(0, 1) AS d",
    )
    .bind(app)
    .bind(s.hits)
    .execute(&pool)
    .await
    .unwrap();
    let res = s.app.client.get(s.app.url("/agent/v1/config")).bearer_auth(&s.token).send().await.unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    // The alert round gets past it: the violation is mailed, and the queue empties.
    s.post(&batch(vec![entry(app, s.hits, now_minute(), 1)])).await;
    wait_for_count(&pool, QUEUED, 0).await;
    wait_for_count(&pool, ALERT_MAILS, 1).await;
}

/// Calls in the last minute of a month, delivered once the next month has begun (an agent's
/// flush, or its spool after an outage), reach that month's limit: the alert is for that
/// month's window. Only the current window used to be checked, and this violation was never
/// recorded or told.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn usage_delivered_after_its_window_ended_is_alerted_for_that_window(pool: PgPool) {
    let s = setup(pool.clone()).await;
    let app = monthly_app(&s, "Late").await;
    let month_start: time::OffsetDateTime =
        sqlx::query_scalar("SELECT date_trunc('month', now() AT TIME ZONE 'Europe/Paris') AT TIME ZONE 'Europe/Paris'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let last_minute = month_start.unix_timestamp() - 60;
    s.post(&batch(vec![entry(app, s.hits, last_minute, 1_000_000)])).await;
    wait_for_count(&pool, QUEUED, 0).await;
    wait_for_count(&pool, ALERT_MAILS, 1).await;
    let windows: Vec<(time::OffsetDateTime, i16)> =
        sqlx::query_as("SELECT window_start, threshold_pct FROM usage_alerts WHERE application_id = $1 ORDER BY 2")
            .bind(app)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(windows.iter().all(|(start, _)| *start < month_start), "the month before's window: {windows:?}");
    assert!(windows.iter().any(|(_, level)| *level == 100), "{windows:?}");
}

/// An admin raises a limit the application has reached: when the usage reaches the new
/// maximum, it is told again (the levels recorded under the old maximum kept it silent until
/// the window's end).
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_raised_limit_alerts_again_when_the_new_maximum_is_reached(pool: PgPool) {
    let s = setup(pool.clone()).await;
    let app = monthly_app(&s, "Growing").await;
    let minute = now_minute();
    s.post(&batch(vec![entry(app, s.hits, minute, 1_000_000)])).await;
    wait_for_count(&pool, ALERT_MAILS, 1).await;

    save_plan_of(&pool, app, |limits| {
        assert_eq!(limits.len(), 1);
        limits[0].max = 5_000_000;
    })
    .await;
    s.post(&batch(vec![entry(app, s.hits, minute - 60, 4_000_000)])).await;
    wait_for_count(&pool, QUEUED, 0).await;
    wait_for_count(&pool, ALERT_MAILS, 2).await;
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn crossing_80_then_100_percent_mails_once_each_with_two_replicas(pool: PgPool) {
    let s = setup(pool.clone()).await;
    let replica = spawn_app(pool.clone()).await;
    let app = monthly_app(&s, "Busy").await;
    // A webhook for usage alerts (`.invalid` never resolves: deliveries only wait in the table).
    let hook = SubscriptionInput {
        url: "https://hooks.tollgate.invalid/alerts".into(),
        events: vec!["usage.alert".into()],
        ..SubscriptionInput::default()
    };
    let (hook, _) = subscriptions::create(&pool, &hook, TargetPolicy::default(), &Actor::system("test")).await.unwrap();
    let minute = now_minute();

    // 79 %: nothing.
    s.post(&batch(vec![entry(app, s.hits, minute, 790_000)])).await;
    wait_for_count(&pool, QUEUED, 0).await;
    wait_for_count(&pool, ALERT_MAILS, 0).await;
    // 80 %, through the other replica.
    post_to(&replica, &s.token, &batch(vec![entry(app, s.hits, minute - 60, 10_000)])).await;
    wait_for_count(&pool, ALERT_MAILS, 1).await;
    // 100 %, then more usage past it: one more mail, not two.
    s.post(&batch(vec![entry(app, s.hits, minute - 120, 200_000)])).await;
    wait_for_count(&pool, ALERT_MAILS, 2).await;
    // An admin saves the plan as it is: the 100 % alert of this window is not sent again (the
    // limits' rows were made anew, and every alert of the window went out a second time).
    save_plan_of(&pool, app, |_| {}).await;
    post_to(&replica, &s.token, &batch(vec![entry(app, s.hits, minute - 180, 1)])).await;
    s.post(&batch(vec![entry(app, s.hits, minute - 240, 1)])).await;
    wait_for_count(&pool, QUEUED, 0).await;

    let mails: Vec<(String, String)> = sqlx::query_as(
        "SELECT to_address::text, subject FROM outbox_emails WHERE subject LIKE '%of its%limit' ORDER BY created_at",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert_eq!(mails[0], (DEMO_DEVELOPER_EMAIL.to_owned(), "Busy used 80% of its Hits limit".to_owned()));
    assert_eq!(mails[1].1, "Busy reached 100% of its Hits limit");
    // One `usage.alert` event per mail, each naming the application and its level.
    let (deliveries, _) = subscriptions::deliveries(&pool, hook.id, None, 10, 0).await.unwrap();
    let mut levels: Vec<(String, i64)> = deliveries
        .iter()
        .map(|d| {
            let body: Value = serde_json::from_str(&d.body).unwrap();
            (body["data"]["id"].as_str().unwrap().to_owned(), body["data"]["after"]["level_pct"].as_i64().unwrap())
        })
        .collect();
    levels.sort();
    assert_eq!(levels, vec![(app.to_string(), 80), (app.to_string(), 100)]);
    // The portal's notifications: one per mail, unread.
    let list = notifications::list_for_user(&pool, s.developer, 50).await.unwrap();
    assert_eq!(
        list.iter().map(|n| n.title.as_str()).collect::<Vec<_>>(),
        vec!["Busy reached 100% of its Hits limit", "Busy used 80% of its Hits limit"]
    );
    assert_eq!(list[0].link.as_deref(), Some(format!("/apps/{app}/usage").as_str()));
    assert_eq!(notifications::unread_count(&pool, s.developer).await.unwrap(), 2);
    notifications::mark_read(&pool, s.developer, list[0].id).await.unwrap();
    assert_eq!(notifications::unread_count(&pool, s.developer).await.unwrap(), 1);
    assert_eq!(notifications::mark_all_read(&pool, s.developer).await.unwrap(), 1);
    assert_eq!(notifications::unread_count(&pool, s.developer).await.unwrap(), 0);
    // Another user cannot mark them.
    let stranger = Uuid::now_v7();
    assert!(matches!(notifications::mark_read(&pool, stranger, list[1].id).await, Err(tollgate_core::Error::NotFound)));
}

/// A per-minute limit has a new window every minute: a client keeping to it reaches 100 % in
/// each. Its owners are told once a day, not once a minute; every window is still recorded
/// and raises its webhook. The alert job is run at chosen instants, without a server's own.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_per_minute_limit_reached_minute_after_minute_mails_once_a_day(pool: PgPool) {
    use tollgate_core::usage::{alerts, ingest};
    let Seeded { gateway, account, api, hits, .. } = seeded(&pool).await;
    let basic = list_plans(&pool, tollgate_core::apis::ApiId(api))
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.system_name == "basic")
        .unwrap();
    let app = applications::create(
        &pool,
        account,
        &NewApplication { plan_id: basic.id, name: "Steady".into(), description: String::new() },
        &Actor::system("test"),
    )
    .await
    .unwrap()
    .id
    .0;
    sqlx::query("DELETE FROM usage_limits WHERE plan_id = $1 AND period <> 'minute'")
        .bind(basic.id.0)
        .execute(&pool)
        .await
        .unwrap();
    let hook = SubscriptionInput {
        url: "https://hooks.tollgate.invalid/alerts".into(),
        events: vec!["usage.alert".into()],
        ..SubscriptionInput::default()
    };
    let (hook, _) = subscriptions::create(&pool, &hook, TargetPolicy::default(), &Actor::system("test")).await.unwrap();
    // Three minutes in a row at the limit (10 a minute), then one more than a day later.
    let later = now_minute() - 3600;
    let first = later - 86_400 - 3600;
    for minute in [first, first + 60, first + 120, later] {
        ingest(&pool, gateway, &batch(vec![entry(app, hits, minute, 10)])).await.unwrap();
        let at = Timestamp::from_second(minute + 30).unwrap();
        alerts::run_round(&pool, "http://127.0.0.1", at).await.unwrap();
    }
    let mails: Vec<(String, String)> =
        sqlx::query_as("SELECT subject, body_text FROM outbox_emails WHERE subject LIKE 'Steady%of its%limit'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(mails.len(), 2, "one mail for three minutes at the limit, one a day later: {mails:?}");
    assert!(mails[0].1.contains("again for 24 hours"), "{}", mails[0].1);
    let recorded: Vec<bool> = sqlx::query_scalar(
        "SELECT notified FROM usage_alerts WHERE application_id = $1 AND threshold_pct = 100 ORDER BY window_start",
    )
    .bind(app)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(recorded, vec![true, false, false, true], "every window recorded, the first of each day told");
    let (deliveries, _) = subscriptions::deliveries(&pool, hook.id, None, 10, 0).await.unwrap();
    assert_eq!(deliveries.len(), 4, "one webhook event per window");
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn a_burst_past_several_levels_mails_the_highest_and_muted_levels_stay_quiet(pool: PgPool) {
    let s = setup(pool.clone()).await;
    let burst = monthly_app(&s, "Burst").await;
    let quiet = s.application("pro", "Quiet", "Europe/Paris").await;
    levels::set_plan_levels(
        &pool,
        plan_of(&pool, burst).await,
        &levels::parse_levels(&[50, 80, 100, 150]).unwrap(),
        &Actor::system("test"),
    )
    .await
    .unwrap();
    // Muting is per application, and only below 100 %.
    let muted =
        levels::set_muted_levels(&pool, s.account.0, quiet, &levels::parse_levels(&[80, 50]).unwrap()).await.unwrap();
    assert_eq!(muted, levels::parse_levels(&[50, 80]).unwrap());
    let refused = levels::set_muted_levels(&pool, s.account.0, quiet, &levels::parse_levels(&[100]).unwrap()).await;
    assert!(matches!(refused, Err(tollgate_core::Error::Invalid { ref field, .. }) if field == "muted_alert_levels"));
    let other_account = levels::set_muted_levels(&pool, Uuid::now_v7(), quiet, &[]).await;
    assert!(matches!(other_account, Err(tollgate_core::Error::NotFound)));

    let minute = now_minute();
    s.post(&batch(vec![entry(burst, s.hits, minute, 1_200_000), entry(quiet, s.hits, minute, 850_000)])).await;
    wait_for_count(&pool, QUEUED, 0).await;
    let subjects: Vec<String> =
        sqlx::query_scalar("SELECT subject FROM outbox_emails WHERE subject LIKE '%of its%limit'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        subjects,
        vec!["Burst reached 100% of its Hits limit".to_owned()],
        "one mail for the burst, none for muted 80 %"
    );
    // Every crossed enabled level and every violation is recorded for the admin's list.
    let recorded: Vec<(i16, bool)> = sqlx::query_as(
        "SELECT threshold_pct, notified FROM usage_alerts WHERE application_id = $1 ORDER BY threshold_pct",
    )
    .bind(burst)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(recorded, vec![(50, false), (80, false), (100, true), (120, false)]);
    let quiet_alerts: i64 = sqlx::query_scalar("SELECT count(*) FROM usage_alerts WHERE application_id = $1")
        .bind(quiet)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(quiet_alerts, 0);
    assert_eq!(
        levels::muted_levels(&pool, s.account.0, quiet).await.unwrap(),
        vec![AlertLevel::new(50).unwrap(), AlertLevel::new(80).unwrap()]
    );
}

/// Saves the plan of `app` as an admin would, its limits changed by `change` first.
async fn save_plan_of(pool: &PgPool, app: Uuid, change: impl FnOnce(&mut Vec<tollgate_core::plans::NewLimit>)) {
    let plan = tollgate_core::plans::PlanId(plan_of(pool, app).await);
    let same = tollgate_core::plans::get_plan(pool, plan).await.unwrap();
    let mut limits = same.limits;
    change(&mut limits);
    let input = tollgate_core::plans::NewPlan {
        system_name: same.system_name,
        name: same.name,
        description: same.description,
        published: same.published,
        approval_required: same.approval_required,
        setup_fee: same.setup_fee,
        monthly_fee: same.monthly_fee,
        trial_days: same.trial_days,
        currency: same.currency,
        time_zone: same.time_zone,
        limits,
        pricing: same.pricing,
        pricing_modes: same.pricing_modes,
    };
    tollgate_core::plans::update_plan(pool, plan, &input, &Actor::system("test")).await.unwrap();
}

async fn plan_of(pool: &PgPool, app: Uuid) -> Uuid {
    sqlx::query_scalar("SELECT plan_id FROM applications WHERE id = $1").bind(app).fetch_one(pool).await.unwrap()
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn retention_deletes_old_minute_rows_in_batches_and_keeps_newer_ones(pool: PgPool) {
    let s = setup(pool.clone()).await;
    let app = s.application("basic", "Old", "UTC").await;
    let now = now_minute();
    // 6,000 minutes of usage 8 to 12 days ago, and 60 minutes of today's.
    let old_start = now - 12 * 86_400;
    for chunk in (0..6_000i64).collect::<Vec<_>>().chunks(3_000) {
        s.post(&batch(chunk.iter().map(|i| entry(app, s.hits, old_start + i * 60, 2)).collect())).await;
    }
    s.post(&batch((1..=60).map(|i| entry(app, s.hits, now - i * 60, 2)).collect())).await;
    let count = |g: &'static str| {
        let pool = pool.clone();
        async move {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM usage_rollups WHERE application_id = $1 AND granularity = $2::rollup_granularity",
            )
            .bind(app)
            .bind(g)
            .fetch_one(&pool)
            .await
            .unwrap();
            n
        }
    };
    assert_eq!(count("minute").await, 6_060);
    let hours_before = count("hour").await;
    let deleted = tollgate_core::usage::retention::run(
        &pool,
        &tollgate_core::usage::retention::Retention::default(),
        time::OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    assert_eq!(deleted.rollups, 6_000, "two batches of at most 5,000");
    assert_eq!(count("minute").await, 60, "today's minutes stay");
    assert_eq!(count("hour").await, hours_before, "hours are kept 90 days");
    let total: i64 = sqlx::query_scalar(
        "SELECT sum(hits)::bigint FROM usage_rollups WHERE application_id = $1 AND granularity = 'month'",
    )
    .bind(app)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(total, 2 * 6_060, "month buckets keep every call");
}

/// Calls per upstream group are minute data: retention deletes them with the minute rollups
/// and keeps the newer ones.
#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn retention_deletes_old_upstream_group_minutes_with_the_minute_rollups(pool: PgPool) {
    let s = setup(pool.clone()).await;
    let app = s.application("basic", "Grouped", "UTC").await;
    let now = now_minute();
    let grouped = |minute: i64, group: &str| UsageEntry { group: Some(group.into()), ..entry(app, s.hits, minute, 2) };
    // 30 minutes 8 days ago and 20 of today's, in two groups.
    let old_start = now - 8 * 86_400;
    let mut entries: Vec<UsageEntry> = (0..30).map(|i| grouped(old_start + i * 60, "default")).collect();
    entries.extend((1..=10).flat_map(|i| [grouped(now - i * 60, "default"), grouped(now - i * 60, "canary")]));
    s.post(&batch(entries)).await;
    let count = || async {
        let n: (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE minute < now() - interval '7 days'), count(*)
             FROM usage_group_minutes WHERE api_id = $1",
        )
        .bind(s.api)
        .fetch_one(&pool)
        .await
        .unwrap();
        n
    };
    assert_eq!(count().await, (30, 50));
    let deleted = tollgate_core::usage::retention::run(
        &pool,
        &tollgate_core::usage::retention::Retention::default(),
        time::OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    assert_eq!(deleted.group_minutes, 30);
    assert_eq!(count().await, (0, 20), "today's minutes stay");
    // Kept for ever when minute data is.
    s.post(&batch((0..5).map(|i| grouped(old_start + i * 60, "default")).collect())).await;
    let keep = tollgate_core::usage::retention::Retention {
        minute_days: None,
        ..tollgate_core::usage::retention::Retention::default()
    };
    let deleted = tollgate_core::usage::retention::run(&pool, &keep, time::OffsetDateTime::now_utc()).await.unwrap();
    assert_eq!((deleted.group_minutes, count().await), (0, (5, 25)));
}

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn admins_switch_a_plans_alert_levels_and_bad_levels_are_422_naming_the_field(pool: PgPool) {
    seed(&pool).await.unwrap();
    let token = crate::helpers::demo_admin_token(&pool).await;
    let plan: Uuid =
        sqlx::query_scalar("SELECT id FROM plans WHERE system_name = 'basic'").fetch_one(&pool).await.unwrap();
    let app = spawn_app(pool).await;
    let call = |method: reqwest::Method, path: String, body: Option<Value>| {
        let mut req = app.client.request(method, app.url(&path)).bearer_auth(token.as_str());
        if let Some(body) = body {
            req = req.json(&body);
        }
        async move {
            let res = req.send().await.unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        }
    };
    let path = format!("/admin/api/v1/plans/{plan}/alert-levels");
    assert_eq!(call(reqwest::Method::GET, path.clone(), None).await, (200, json!({"levels": [80, 100]})));
    assert_eq!(
        call(reqwest::Method::PUT, path.clone(), Some(json!({"levels": [300, 50, 100, 50]}))).await,
        (200, json!({"levels": [50, 100, 300]}))
    );
    assert_eq!(call(reqwest::Method::GET, path.clone(), None).await, (200, json!({"levels": [50, 100, 300]})));
    let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'plan.alert_levels'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(audited, 1);
    // A copy of the plan alerts at the same levels.
    let (status, copy) = call(
        reqwest::Method::POST,
        format!("/admin/api/v1/plans/{plan}/copy"),
        Some(json!({"system_name": "basic-copy", "name": "Basic copy"})),
    )
    .await;
    assert_eq!(status, 201, "{copy}");
    let copied = format!("/admin/api/v1/plans/{}/alert-levels", copy["id"].as_str().unwrap());
    assert_eq!(call(reqwest::Method::GET, copied, None).await, (200, json!({"levels": [50, 100, 300]})));
    let (status, body) = call(reqwest::Method::PUT, path.clone(), Some(json!({"levels": [75]}))).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("levels")), "{body}");
    let (status, _) = call(reqwest::Method::PUT, path.clone(), Some(json!({"levels": "80"}))).await;
    assert!(status == 400 || status == 422, "{status}");
    let unknown = format!("/admin/api/v1/plans/{}/alert-levels", Uuid::now_v7());
    assert_eq!(call(reqwest::Method::GET, unknown, None).await.0, 404);
    let doc: Value = app.client.get(app.url("/admin/api/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(doc["paths"]["/admin/api/v1/plans/{id}/alert-levels"]["put"].is_object());
}
