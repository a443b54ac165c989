//! `tollgate dev`'s demo data: seeded once, however often dev runs.

use sqlx::PgPool;
use tollgate::cli::dev::seed;
use tollgate_core::apis::{ApiState, find_by_slug, list_apis};
use tollgate_core::plans::list_plans;

#[sqlx::test(migrator = "tollgate_core::db::MIGRATOR")]
async fn demo_data_is_seeded_once_however_often_dev_runs(pool: PgPool) {
    seed(&pool).await.unwrap();
    seed(&pool).await.unwrap();
    let apis = list_apis(&pool).await.unwrap();
    assert_eq!(apis.len(), 1);
    let weather = find_by_slug(&pool, "weather").await.unwrap().expect("demo API");
    assert_eq!(weather.state, ApiState::Published);
    assert_eq!(weather.operation_count, 4);
    let plans = list_plans(&pool, weather.id).await.unwrap();
    let names: Vec<_> = plans.iter().map(|p| p.system_name.as_str()).collect();
    assert_eq!(names, ["basic", "pro"]);
}
