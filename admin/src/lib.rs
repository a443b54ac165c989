//! The provider admin UI (`/admin`) and, later, the admin REST API
//! (`/admin/api/v1`). Routes call `tollgate_core`; they write no SQL.

pub mod api;
mod ui;

use actix_web::web;

/// The import and new-version forms carry a whole OpenAPI document, URL-encoded by the
/// browser (up to three bytes a character): room for the largest document import takes.
const SPEC_FORM: tollgate_web::DocumentForm =
    tollgate_web::DocumentForm(3 * tollgate_openapi::MAX_SPEC_BYTES + 64 * 1024);

/// Mounts the admin UI under `/admin`. The caller's scope carries the
/// session middleware and `tollgate_web::page_extractors`, which keep the
/// error page for bad path segments and query parameters off the JSON API.
pub fn configure(cfg: &mut web::ServiceConfig) {
    use ui::*;
    cfg.service(web::resource("/admin").route(web::get().to(usage::dashboard)))
        .service(web::resource("/admin/usage").route(web::get().to(usage::drill_down)))
        .service(web::resource("/admin/usage.csv").route(web::get().to(usage::csv)))
        .service(web::resource("/admin/violations").route(web::get().to(usage::violations)))
        .service(web::resource("/admin/plans/{id}/alert-levels").route(web::post().to(usage::set_alert_levels)))
        .service(
            web::resource("/admin/apis/new")
                .app_data(SPEC_FORM)
                .route(web::get().to(apis::new_form))
                .route(web::post().to(apis::import)),
        )
        .service(web::resource("/admin/apis/{id}").route(web::get().to(apis::show)).route(web::post().to(apis::update)))
        .service(web::resource("/admin/apis/{id}/lifecycle").route(web::post().to(apis::lifecycle)))
        .service(web::resource("/admin/apis/{id}/delete").route(web::post().to(apis::delete)))
        .service(
            web::resource("/admin/apis/{id}/mocks")
                .route(web::get().to(mocks::show))
                .route(web::post().to(mocks::update)),
        )
        .service(web::resource("/admin/apis/{id}/preview").route(web::post().to(mocks::update_preview)))
        .service(
            web::resource("/admin/apis/{id}/versions").app_data(SPEC_FORM).route(web::post().to(apis::stage_version)),
        )
        .service(web::resource("/admin/apis/{id}/versions/{number}").route(web::get().to(versions::show_version)))
        .service(
            web::resource("/admin/apis/{id}/versions/{number}/publish")
                .route(web::post().to(versions::publish_version)),
        )
        .service(web::resource("/admin/apis/{id}/metrics").route(web::post().to(apis::add_metric)))
        .service(web::resource("/admin/apis/{id}/metrics/{metric}/delete").route(web::post().to(apis::delete_metric)))
        .service(web::resource("/admin/apis/{id}/rules").route(web::post().to(apis::add_rule)))
        // Routing by consumer and by weight (ui/routing.rs).
        .service(web::resource("/admin/apis/{id}/routing").route(web::get().to(routing::show)))
        .service(web::resource("/admin/apis/{id}/routing/weights").route(web::post().to(routing::set_weights)))
        .service(web::resource("/admin/apis/{id}/routing/groups").route(web::post().to(routing::put_group)))
        .service(
            web::resource("/admin/apis/{id}/routing/groups/{name}/delete").route(web::post().to(routing::delete_group)),
        )
        .service(web::resource("/admin/apis/{id}/routing/plans").route(web::post().to(routing::set_plan)))
        .service(web::resource("/admin/apis/{id}/routing/applications").route(web::post().to(routing::set_application)))
        .service(web::resource("/admin/apis/{id}/rules/{rule}/delete").route(web::post().to(apis::delete_rule)))
        .service(
            web::resource("/admin/apis/{id}/plans/new")
                .route(web::get().to(plans::new_form))
                .route(web::post().to(plans::create)),
        )
        .service(
            web::resource("/admin/plans/{id}")
                .route(web::get().to(plans::edit_form))
                .route(web::post().to(plans::update)),
        )
        .service(web::resource("/admin/plans/{id}/copy").route(web::post().to(plans::copy)))
        .service(web::resource("/admin/plans/{id}/delete").route(web::post().to(plans::delete)))
        .service(web::resource("/admin/applications").route(web::get().to(applications::list)))
        .service(web::resource("/admin/applications/{id}/plan").route(web::post().to(applications::change_plan)))
        .service(
            web::resource("/admin/applications/{id}/plan-request/{decision}")
                .route(web::post().to(applications::decide_plan_request)),
        )
        .service(web::resource("/admin/applications/{id}/{action}").route(web::post().to(applications::act)))
        .service(web::resource("/admin/accounts").route(web::get().to(accounts::list)))
        .service(web::resource("/admin/accounts/{id}/{action}").route(web::post().to(accounts::set_state)))
        .service(web::resource("/admin/invoices/{id}/payments").route(web::post().to(payments::record)))
        .service(web::resource("/admin/audit").route(web::get().to(audit::list)))
        .service(web::resource("/admin/invoices").route(web::get().to(invoices::list)))
        // Before `/admin/invoices/{id}`, whose segment would also match `<id>.pdf`.
        .service(web::resource("/admin/invoices/{id}.pdf").route(web::get().to(invoices::pdf)))
        .service(web::resource("/admin/invoices/{id}").route(web::get().to(invoices::show)))
        .service(web::resource("/admin/invoices/{id}/transition").route(web::post().to(invoices::transition)))
        .service(web::resource("/admin/revenue").route(web::get().to(revenue::show)))
        .service(web::resource("/admin/revenue.csv").route(web::get().to(revenue::csv)))
        .service(
            web::resource("/admin/billing/settings")
                .route(web::get().to(billing_settings::show))
                .route(web::post().to(billing_settings::update)),
        )
        .service(
            web::resource("/admin/gateways")
                .route(web::get().to(gateways::list))
                .route(web::post().to(gateways::create)),
        )
        .service(web::resource("/admin/gateways/{id}/rename").route(web::post().to(gateways::rename)))
        .service(web::resource("/admin/gateways/{id}/revoke").route(web::post().to(gateways::revoke)))
        .service(
            web::resource("/admin/tokens").route(web::get().to(tokens::list)).route(web::post().to(tokens::create)),
        )
        .service(web::resource("/admin/tokens/{id}/revoke").route(web::post().to(tokens::revoke)))
        .service(
            web::resource("/admin/webhooks")
                .route(web::get().to(webhooks::list))
                .route(web::post().to(webhooks::create)),
        )
        .service(web::resource("/admin/webhooks/{id}").route(web::get().to(webhooks::show)))
        .service(web::resource("/admin/webhooks/{id}/edit").route(web::post().to(webhooks::edit)))
        .service(web::resource("/admin/webhooks/{id}/delete").route(web::post().to(webhooks::delete)))
        .service(
            web::resource("/admin/webhooks/{id}/deliveries/{delivery}/redeliver")
                .route(web::post().to(webhooks::redeliver)),
        );
}

/// Mounts the admin REST API and its OpenAPI document. It has no session
/// or CSRF layer: it authenticates every request by bearer token.
pub fn configure_api(cfg: &mut web::ServiceConfig) {
    api::configure(cfg);
}
