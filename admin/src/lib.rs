//! The provider admin UI (`/admin`) and, later, the admin REST API
//! (`/admin/api/v1`). Routes call `tollgate_core`; they write no SQL.

pub mod api;
mod dashboard;
mod error;

use actix_web::web;

pub use error::AdminError;

/// Mounts the admin UI under `/admin`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/admin").route(web::get().to(dashboard::show)));
}

/// Mounts the admin REST API and its OpenAPI document. It has no session
/// or CSRF layer: it authenticates every request by bearer token.
pub fn configure_api(cfg: &mut web::ServiceConfig) {
    api::configure(cfg);
}
