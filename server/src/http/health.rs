//! `/healthz` (the database answers) and `/metrics` (Prometheus text).

use actix_web::{HttpResponse, web};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tollgate_core::db::PgPool;

/// Liveness plus a database check, for load balancers and `curl`.
pub async fn healthz(pool: web::Data<PgPool>) -> HttpResponse {
    match tollgate_core::db::ping(&pool).await {
        Ok(_) => HttpResponse::Ok().json(json!({"status": "ok", "database": "ok"})),
        Err(err) => {
            tracing::warn!(error = %err, "health check: database unreachable");
            HttpResponse::ServiceUnavailable().json(json!({"status": "degraded", "database": "unreachable"}))
        }
    }
}

/// Prometheus text exposition.
pub async fn metrics(handle: web::Data<PrometheusHandle>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(handle.render())
}
