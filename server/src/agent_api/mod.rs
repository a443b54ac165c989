//! The agent sync API under `/agent/v1`: the config stream, status reports
//! and usage intake. Agents authenticate with `Authorization: Bearer <token>`.

mod auth;
mod builds;
mod config_stream;
mod deltas;
mod error;
mod notifier;
mod status;
mod usage;

use actix_web::web;

pub use error::AgentApiError;
pub use notifier::ConfigNotifier;

/// Bodies are bounded so a confused agent cannot exhaust memory.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/agent/v1")
            .wrap(actix_web::middleware::from_fn(auth::authenticate_first))
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .route("/config", web::get().to(config_stream::open))
            .route("/status", web::post().to(status::report))
            .route("/usage", web::post().to(usage::ingest)),
    );
}
