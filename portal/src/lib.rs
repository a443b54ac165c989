//! The developer portal: HTML pages for external developers.
//!
//! Routes are grouped by feature; each handler calls `tollgate_core` for data
//! and renders an askama template. Routes write no SQL.

mod auth;
mod catalog;
mod dashboard;
mod error;

use actix_web::web;

pub use error::PortalError;

/// Mounts the portal at `/`. The caller installs the session middleware and
/// the shared app data (pool, session store, password hasher).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").route(web::get().to(catalog::home)))
        .service(web::resource("/login").route(web::get().to(auth::login::form)).route(web::post().to(auth::login::submit)))
        .service(web::resource("/logout").route(web::post().to(auth::logout::submit)))
        .service(web::resource("/dashboard").route(web::get().to(dashboard::show)));
}
