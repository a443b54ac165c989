//! The admin REST API under `/admin/api/v1`, documented with utoipa at
//! `/admin/api/openapi.json`. Every route takes an admin token
//! (`Authorization: Bearer tg_adm_…`), answers JSON, and reports errors as
//! `{"error": "<snake_case>", "message": "…"}`.

mod accounts;
mod applications;
mod apis;
mod audit;
mod auth;
mod error;
mod gateways;
mod openapi;
mod page;
mod plans;

use actix_web::{HttpResponse, web};

pub use error::ApiError;
pub use openapi::ApiDoc;

/// Bodies hold at most one spec (16 MiB) plus a little JSON.
const MAX_BODY_BYTES: usize = 17 * 1024 * 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/api/openapi.json", web::get().to(openapi::document)).service(
        web::scope("/admin/api/v1")
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .route("/apis", web::get().to(apis::list))
            .route("/apis", web::post().to(apis::import))
            .route("/apis/{id}", web::get().to(apis::show))
            .route("/apis/{id}", web::patch().to(apis::update))
            .route("/apis/{id}/lifecycle", web::post().to(apis::lifecycle))
            .route("/apis/{id}/plans", web::get().to(plans::list))
            .route("/apis/{id}/plans", web::post().to(plans::create))
            .route("/plans/{id}", web::get().to(plans::show))
            .route("/plans/{id}", web::put().to(plans::replace))
            .route("/plans/{id}", web::delete().to(plans::delete))
            .route("/plans/{id}/copy", web::post().to(plans::copy))
            .route("/applications", web::get().to(applications::list))
            .route("/applications/{id}", web::get().to(applications::show))
            .route("/applications/{id}/actions", web::post().to(applications::act))
            .route("/applications/{id}/plan", web::put().to(applications::change_plan))
            .route("/accounts", web::get().to(accounts::list))
            .route("/accounts/{id}", web::get().to(accounts::show))
            .route("/accounts/{id}/state", web::put().to(accounts::set_state))
            .route("/audit", web::get().to(audit::list))
            .route("/gateways", web::get().to(gateways::list))
            .default_service(web::to(not_found)),
    );
}

async fn not_found() -> HttpResponse {
    ApiError::NotFound.into_response()
}
