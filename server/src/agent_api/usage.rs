//! `POST /agent/v1/usage`: an agent's usage batch, counted once however often it arrives.

use actix_web::{HttpRequest, HttpResponse, web};
use tollgate_core::db::PgPool;
use tollgate_core::usage::recent::RecentReports;
use tollgate_protocol::UsageBatch;

use super::auth;
use super::error::{AgentApiError, parse_body};

/// Counts a batch once; a replay answers `duplicate: true`.
pub async fn ingest(
    req: HttpRequest,
    pool: web::Data<PgPool>,
    reports: web::Data<RecentReports>,
    body: web::Bytes,
) -> Result<HttpResponse, AgentApiError> {
    let gateway = auth::gateway(&req, &pool).await?;
    let mut batch: UsageBatch = parse_body(&body)?;
    // Failed calls are samples for people to read: a bad one is left out, never the usage.
    let invalid = batch.drop_invalid_failed_calls();
    if invalid > 0 {
        tracing::warn!(batch = %batch.id, invalid, "left out failed-call records that are not valid; the batch's usage counts");
        metrics::counter!("tollgate_usage_failed_calls_invalid_total").increment(invalid);
    }
    let ack = tollgate_core::usage::ingest(&pool, gateway.id, &batch).await?;
    if !ack.duplicate {
        reports.usage_changed();
    }
    metrics::counter!("tollgate_usage_batches_total", "duplicate" => ack.duplicate.to_string()).increment(1);
    if !ack.duplicate && batch.failed_calls_dropped > 0 {
        // Failed calls the agent sampled away under load: the table shows a sample.
        metrics::counter!("tollgate_usage_failed_calls_dropped_total").increment(batch.failed_calls_dropped);
    }
    Ok(HttpResponse::Ok().json(ack))
}
