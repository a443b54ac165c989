//! Migrations that change existing data, run against data written by the schema before them.

use sqlx::{AssertSqlSafe, PgPool};

/// Runs the migrations (the project's own files, trusted SQL) before the one whose description contains `upto`, then `setup`, then
/// the rest.
async fn migrate_around(pool: &PgPool, upto: &str, setup: &[&str]) {
    let migrations: Vec<_> = tollgate_core::db::MIGRATOR.iter().collect();
    let split = migrations.iter().position(|m| m.description.contains(upto)).expect("the migration exists");
    for migration in &migrations[..split] {
        sqlx::raw_sql(AssertSqlSafe(migration.sql.as_str())).execute(pool).await.expect("earlier migration");
    }
    // Each statement its own transaction, as separate requests would be.
    for statement in setup {
        sqlx::raw_sql(AssertSqlSafe(*statement)).execute(pool).await.expect("old-schema data");
    }
    for migration in &migrations[split..] {
        sqlx::raw_sql(AssertSqlSafe(migration.sql.as_str())).execute(pool).await.expect("migration");
    }
}

#[sqlx::test(migrations = false)]
async fn rules_written_with_an_api_version_become_imported_and_others_stay_hand_made(pool: PgPool) {
    let api = "01900000-0000-7000-8000-000000000001";
    let hits = "01900000-0000-7000-8000-000000000003";
    let import = format!(
        "INSERT INTO api_products (id, slug, name) VALUES ('{api}', 'old', 'Old');
         INSERT INTO api_versions (id, api_id, number, spec_source, spec_format, spec_version, title, operation_count)
             VALUES ('01900000-0000-7000-8000-000000000002', '{api}', 1, '{{}}', 'json', '3.0.3', 'Old', 2);
         INSERT INTO metrics (id, api_id, system_name, friendly_name) VALUES ('{hits}', '{api}', 'hits', 'Hits');
         INSERT INTO mapping_rules (id, api_id, metric_id, http_method, pattern, position)
             VALUES ('01900000-0000-7000-8000-000000000010', '{api}', '{hits}', 'GET', '/a$', 0),
                    ('01900000-0000-7000-8000-000000000011', '{api}', '{hits}', 'GET', '/a/{{id}}$', 1);"
    );
    let by_hand = format!(
        "INSERT INTO mapping_rules (id, api_id, metric_id, http_method, pattern, position, created_at)
             VALUES ('01900000-0000-7000-8000-000000000012', '{api}', '{hits}', 'GET', '/a', 2, now() + interval '1 second');"
    );
    let publish = format!(
        "INSERT INTO api_versions (id, api_id, number, spec_source, spec_format, spec_version, title, operation_count, published_at)
             VALUES ('01900000-0000-7000-8000-000000000004', '{api}', 2, '{{}}', 'json', '3.0.3', 'Old', 3, now() + interval '1 minute');
         INSERT INTO mapping_rules (id, api_id, metric_id, http_method, pattern, position, created_at)
             VALUES ('01900000-0000-7000-8000-000000000013', '{api}', '{hits}', 'GET', '/b$', 3, now() + interval '1 minute');"
    );
    migrate_around(&pool, "mapping rule origin", &[&import, &by_hand, &publish]).await;
    let rules: Vec<(String, bool)> = sqlx::query_as("SELECT pattern, imported FROM mapping_rules ORDER BY position")
        .fetch_all(&pool)
        .await
        .expect("rules");
    assert_eq!(
        rules,
        [("/a$".into(), true), ("/a/{id}$".into(), true), ("/a".into(), false), ("/b$".into(), true)],
        "imported on creation or publication of a version, hand-made otherwise"
    );
}

#[sqlx::test(migrations = false)]
async fn hour_day_and_month_rollups_of_non_utc_plans_are_rebuilt_in_the_plans_zone(pool: PgPool) {
    let (api, hits, account) = (
        "01900000-0000-7000-8000-000000000101",
        "01900000-0000-7000-8000-000000000102",
        "01900000-0000-7000-8000-000000000103",
    );
    let (kolkata, utc) = ("01900000-0000-7000-8000-000000000111", "01900000-0000-7000-8000-000000000112");
    let setup = format!(
        "INSERT INTO api_products (id, slug, name) VALUES ('{api}', 'old', 'Old');
         INSERT INTO metrics (id, api_id, system_name, friendly_name) VALUES ('{hits}', '{api}', 'hits', 'Hits');
         INSERT INTO accounts (id, kind, name) VALUES ('{account}', 'developer', 'Dev');
         INSERT INTO plans (id, api_id, system_name, name, time_zone)
             VALUES ('01900000-0000-7000-8000-000000000104', '{api}', 'in', 'India', 'Asia/Kolkata'),
                    ('01900000-0000-7000-8000-000000000105', '{api}', 'utc', 'UTC', 'UTC');
         INSERT INTO applications (id, account_id, api_id, plan_id, name, state)
             VALUES ('{kolkata}', '{account}', '{api}', '01900000-0000-7000-8000-000000000104', 'K', 'live'),
                    ('{utc}', '{account}', '{api}', '01900000-0000-7000-8000-000000000105', 'U', 'live');
         -- 23:50 on 31 January in Kolkata, as the old intake wrote it (UTC buckets).
         INSERT INTO usage_rollups (application_id, metric_id, granularity, bucket_start, hits, status_2xx)
         SELECT app::uuid, '{hits}', g::rollup_granularity, date_trunc(trunc, '2026-01-31T18:20:00Z'::timestamptz AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', 3, 3
         FROM (VALUES ('{kolkata}'), ('{utc}')) AS a(app),
              (VALUES ('minute', 'minute'), ('hour', 'hour'), ('day', 'day'), ('month', 'month')) AS t(g, trunc);"
    );
    migrate_around(&pool, "usage analytics", &[&setup]).await;
    let rows: Vec<(uuid::Uuid, String, time::OffsetDateTime, i64)> = sqlx::query_as(
        "SELECT application_id, granularity::text, bucket_start, hits FROM usage_rollups ORDER BY application_id, granularity::rollup_granularity",
    )
    .fetch_all(&pool)
    .await
    .expect("rollups");
    let at = |s: &str| time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).expect("time");
    let (k, u) = (kolkata.parse().expect("uuid"), utc.parse().expect("uuid"));
    assert_eq!(
        rows,
        vec![
            (k, "minute".into(), at("2026-01-31T18:20:00Z"), 3),
            (k, "hour".into(), at("2026-01-31T17:30:00Z"), 3),
            (k, "day".into(), at("2026-01-30T18:30:00Z"), 3),
            (k, "month".into(), at("2025-12-31T18:30:00Z"), 3),
            (u, "minute".into(), at("2026-01-31T18:20:00Z"), 3),
            (u, "hour".into(), at("2026-01-31T18:00:00Z"), 3),
            (u, "day".into(), at("2026-01-31T00:00:00Z"), 3),
            (u, "month".into(), at("2026-01-01T00:00:00Z"), 3),
        ]
    );
}

#[sqlx::test(migrations = false)]
async fn existing_apis_get_one_default_group_at_100_and_keep_their_upstreams(pool: PgPool) {
    let api = "01900000-0000-7000-8000-000000000201";
    let setup = format!(
        "INSERT INTO api_products (id, slug, name) VALUES ('{api}', 'old', 'Old');
         INSERT INTO api_upstreams (id, api_id, url) VALUES ('01900000-0000-7000-8000-000000000202', '{api}', 'http://old.test');"
    );
    migrate_around(&pool, "route", &[&setup]).await;
    let groups: Vec<(String, i32)> =
        sqlx::query_as("SELECT name, weight FROM upstream_groups").fetch_all(&pool).await.expect("groups");
    assert_eq!(groups, [("default".to_owned(), 100)]);
    let snapshot = tollgate_core::sync::build_snapshot(&pool).await.expect("snapshot");
    assert!(snapshot.routing.is_empty(), "one plain group: agents see the API as before");
    assert_eq!(snapshot.apis[0].upstreams[0].url, "http://old.test");
    // An API created afterwards gets its default group too.
    sqlx::raw_sql(
        "INSERT INTO api_products (id, slug, name, base_path) VALUES ('01900000-0000-7000-8000-000000000203', 'new', 'New', '/new')",
    )
    .execute(&pool)
    .await
    .expect("new API");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM upstream_groups WHERE name = 'default'")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(count, 2);
}

/// APIs and plans that share a name (ignoring case and spaces) keep it for the oldest; the
/// others get their slug or system name added, so the new unique indexes can be built.
#[sqlx::test(migrations = false)]
async fn repeated_api_and_plan_names_are_told_apart(pool: PgPool) {
    migrate_around(
        &pool,
        "unique display names",
        &[
            "INSERT INTO api_products (id, slug, name, base_path, created_at) VALUES
                 ('01900000-0000-7000-8000-000000000001', 'weather', 'Weather', '/weather', now() - interval '2 days'),
                 ('01900000-0000-7000-8000-000000000002', 'weather-2', ' weather ', '/weather-2', now() - interval '1 day'),
                 ('01900000-0000-7000-8000-000000000003', 'maps', 'Maps', '/maps', now())",
            "INSERT INTO plans (id, api_id, system_name, name, created_at) VALUES
                 ('01900000-0000-7000-8000-000000000011', '01900000-0000-7000-8000-000000000001', 'basic', 'Basic', now() - interval '1 day'),
                 ('01900000-0000-7000-8000-000000000012', '01900000-0000-7000-8000-000000000001', 'basic-eur', 'BASIC', now()),
                 ('01900000-0000-7000-8000-000000000013', '01900000-0000-7000-8000-000000000003', 'basic', 'Basic', now())",
        ],
    )
    .await;
    let apis: Vec<(String, String)> =
        sqlx::query_as("SELECT slug, name FROM api_products ORDER BY slug").fetch_all(&pool).await.unwrap();
    assert_eq!(
        apis,
        [("maps", "Maps"), ("weather", "Weather"), ("weather-2", "weather (weather-2)")]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    let plans: Vec<String> = sqlx::query_scalar("SELECT name FROM plans ORDER BY id").fetch_all(&pool).await.unwrap();
    assert_eq!(plans, ["Basic", "BASIC (basic-eur)", "Basic"], "a plan name repeats only across APIs");
}
