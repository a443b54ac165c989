//! The admin REST API under `/admin/api/v1`, documented with utoipa at
//! `/admin/api/openapi.json`. Every route takes an admin token
//! (`Authorization: Bearer tg_adm_…`), answers JSON, and reports errors as
//! `{"error": "<snake_case>", "message": "…"}`.

mod accounts;
mod admin_tokens;
mod apis;
mod applications;
mod audit;
mod auth;
mod billing;
mod config;
mod error;
mod gateways;
mod invoices;
mod keys;
mod links;
mod mocks;
mod openapi;
mod page;
mod plans;
mod preview;
mod routing;
mod rules;
mod schemas;
mod usage;
mod versions;
mod webhooks;
mod wire;

use actix_web::{HttpResponse, web};

pub use error::ApiError;
pub use openapi::ApiDoc;

/// Bodies hold at most one spec (16 MiB) plus a little JSON.
const MAX_BODY_BYTES: usize = 17 * 1024 * 1024;
/// Where a configuration file is applied: it may be twice a spec's size, as `tollgate apply`
/// takes it.
const CONFIG_APPLY_PATH: &str = "/admin/api/v1/config/apply";

/// The largest body a request to `path` may send.
fn body_limit(path: &str) -> usize {
    if path == CONFIG_APPLY_PATH { tollgate_core::config_code::MAX_BYTES } else { MAX_BODY_BYTES }
}

/// A resource whose other methods answer 405 with an `Allow` header.
fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move || async move {
        let mut res = ApiError::MethodNotAllowed(allow).into_response();
        res.headers_mut()
            .insert(actix_web::http::header::ALLOW, actix_web::http::header::HeaderValue::from_static(allow));
        res
    }))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/admin/api/openapi.json", "GET").route(web::get().to(openapi::document))).service(
        web::scope("/admin/api/v1")
            .wrap(actix_web::middleware::from_fn(auth::authenticate_first))
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .service(
                resource("/apis", "GET, POST").route(web::get().to(apis::list)).route(web::post().to(apis::import)),
            )
            .service(
                resource("/apis/{id}", "GET, PATCH, DELETE")
                    .route(web::get().to(apis::show))
                    .route(web::patch().to(apis::update))
                    .route(web::delete().to(apis::delete)),
            )
            .service(resource("/apis/{id}/lifecycle", "POST").route(web::post().to(apis::lifecycle)))
            .service(
                resource("/apis/{id}/mocks", "GET, PATCH")
                    .route(web::get().to(mocks::show))
                    .route(web::patch().to(mocks::update)),
            )
            .service(
                resource("/apis/{id}/preview", "GET, PUT, DELETE")
                    .route(web::get().to(preview::show))
                    .route(web::put().to(preview::open))
                    .route(web::delete().to(preview::close)),
            )
            .service(resource("/apis/{id}/versions", "POST").route(web::post().to(versions::stage_version)))
            .service(resource("/apis/{id}/versions/{number}", "GET").route(web::get().to(versions::show_version)))
            .service(
                resource("/apis/{id}/versions/{number}/changes", "GET").route(web::get().to(versions::list_changes)),
            )
            .service(
                resource("/apis/{id}/versions/{number}/changes/{change}", "GET")
                    .route(web::get().to(versions::show_change)),
            )
            .service(
                resource("/apis/{id}/versions/{number}/publish", "POST")
                    .route(web::post().to(versions::publish_version)),
            )
            .service(
                resource("/apis/{id}/metrics", "GET, POST")
                    .route(web::get().to(rules::list_metrics))
                    .route(web::post().to(rules::add_metric)),
            )
            .service(
                resource("/apis/{id}/mapping-rules", "GET, POST")
                    .route(web::get().to(rules::list_rules))
                    .route(web::post().to(rules::add_rule)),
            )
            .service(resource("/apis/{id}/metrics/{metric}", "DELETE").route(web::delete().to(rules::delete_metric)))
            .service(resource("/apis/{id}/mapping-rules/{rule}", "DELETE").route(web::delete().to(rules::delete_rule)))
            .service(
                resource("/apis/{id}/plans", "GET, POST")
                    .route(web::get().to(plans::list))
                    .route(web::post().to(plans::create)),
            )
            .service(
                resource("/plans/{id}", "GET, PUT, PATCH, DELETE")
                    .route(web::get().to(plans::show))
                    .route(web::put().to(plans::replace))
                    .route(web::patch().to(plans::update))
                    .route(web::delete().to(plans::delete)),
            )
            .service(resource("/plans/{id}/copy", "POST").route(web::post().to(plans::copy)))
            .service(
                resource("/plans/{id}/alert-levels", "GET, PUT")
                    .route(web::get().to(plans::show_alert_levels))
                    .route(web::put().to(plans::set_alert_levels)),
            )
            .service(resource("/applications", "GET").route(web::get().to(applications::list)))
            .service(resource("/applications/{id}", "GET").route(web::get().to(applications::show)))
            .service(resource("/applications/{id}/actions", "POST").route(web::post().to(applications::act)))
            .service(resource("/applications/{id}/plan", "PUT").route(web::put().to(applications::change_plan)))
            .service(
                resource("/applications/{id}/plan-request", "POST")
                    .route(web::post().to(applications::decide_plan_request)),
            )
            .service(
                resource("/accounts", "GET, POST")
                    .route(web::get().to(accounts::list))
                    .route(web::post().to(accounts::create)),
            )
            .service(resource("/accounts/{id}/invitations", "POST").route(web::post().to(accounts::invite)))
            .service(resource("/accounts/{id}/applications", "POST").route(web::post().to(applications::create)))
            .service(
                resource("/applications/{id}/keys", "GET, POST")
                    .route(web::get().to(keys::list))
                    .route(web::post().to(keys::issue)),
            )
            .service(resource("/applications/{id}/keys/{key}", "DELETE").route(web::delete().to(keys::revoke)))
            .service(resource("/applications/{id}/keys/{key}/rotation", "POST").route(web::post().to(keys::rotate)))
            .service(resource("/accounts/{id}", "GET").route(web::get().to(accounts::show)))
            .service(resource("/accounts/{id}/state", "PUT").route(web::put().to(accounts::set_state)))
            .service(resource("/audit", "GET").route(web::get().to(audit::list)))
            .service(
                resource("/gateways", "GET, POST")
                    .route(web::get().to(gateways::list))
                    .route(web::post().to(gateways::register)),
            )
            .service(
                resource("/gateways/{id}", "GET, PATCH, DELETE")
                    .route(web::get().to(gateways::show))
                    .route(web::patch().to(gateways::rename))
                    .route(web::delete().to(gateways::revoke)),
            )
            .service(
                resource("/admin-tokens", "GET, POST")
                    .route(web::get().to(admin_tokens::list))
                    .route(web::post().to(admin_tokens::create)),
            )
            .service(
                resource("/admin-tokens/{id}", "GET, DELETE")
                    .route(web::get().to(admin_tokens::show))
                    .route(web::delete().to(admin_tokens::revoke)),
            )
            .service(
                resource("/webhooks", "GET, POST")
                    .route(web::get().to(webhooks::list))
                    .route(web::post().to(webhooks::create)),
            )
            .service(
                resource("/webhooks/{id}", "GET, PUT, DELETE")
                    .route(web::get().to(webhooks::show))
                    .route(web::put().to(webhooks::replace))
                    .route(web::delete().to(webhooks::delete)),
            )
            .service(resource("/webhooks/{id}/deliveries", "GET").route(web::get().to(webhooks::deliveries)))
            .service(
                resource("/webhooks/{id}/deliveries/{delivery}/redeliver", "POST")
                    .route(web::post().to(webhooks::redeliver)),
            )
            .service(resource("/usage", "GET").route(web::get().to(usage::list)))
            .service(resource("/invoices", "GET").route(web::get().to(invoices::list)))
            .service(resource("/invoices/{id}", "GET").route(web::get().to(invoices::show)))
            .service(resource("/invoices/{id}/transitions", "POST").route(web::post().to(invoices::transition)))
            .service(resource("/invoices/{id}/payments", "POST").route(web::post().to(invoices::record_payment)))
            .service(resource("/billing/runs", "POST").route(web::post().to(billing::run_billing)))
            .service(
                resource("/billing/settings", "GET, PUT")
                    .route(web::get().to(billing::show_settings))
                    .route(web::put().to(billing::replace_settings)),
            )
            .service(resource("/applications/{id}/failed-calls", "GET").route(web::get().to(usage::failed_calls)))
            .service(resource("/config", "GET").route(web::get().to(config::export)))
            .service(
                resource("/config/apply", "POST")
                    .app_data(web::PayloadConfig::new(body_limit(CONFIG_APPLY_PATH)))
                    .route(web::post().to(config::apply)),
            )
            // Routing by consumer and by weight (routing.rs).
            .service(resource("/apis/{id}/routing", "GET").route(web::get().to(routing::show)))
            .service(
                resource("/apis/{id}/routing/groups/{name}", "PUT, DELETE")
                    .route(web::put().to(routing::put_group))
                    .route(web::delete().to(routing::delete_group)),
            )
            .service(resource("/apis/{id}/routing/weights", "PUT").route(web::put().to(routing::set_weights)))
            .service(resource("/apis/{id}/routing/usage", "GET").route(web::get().to(routing::usage)))
            .service(resource("/plans/{id}/upstream-group", "PUT").route(web::put().to(routing::set_plan_group)))
            .service(
                resource("/applications/{id}/upstream-group", "PUT")
                    .route(web::put().to(routing::set_application_group)),
            )
            .default_service(web::to(not_found)),
    );
}

async fn not_found() -> HttpResponse {
    ApiError::NotFound.into_response()
}
