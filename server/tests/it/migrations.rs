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
