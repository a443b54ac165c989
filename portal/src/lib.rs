//! The developer portal: HTML pages for external developers.
//!
//! Routes are grouped by feature; each handler calls `tollgate_core` for data
//! and renders an askama template. Routes write no SQL. Every route that
//! changes state is a POST taking a `CsrfForm`; every id in a path is looked
//! up within the signed-in user's account, so other accounts' ids are 404.

mod account;
mod apps;
mod auth;
mod calling;
mod catalog;
mod dashboard;
pub mod dev_mail;
mod invoices;
mod keys;
mod markdown;
mod message;
mod new_key;
mod notifications;
mod profile;
mod team;
mod usage;

use actix_web::web;

/// Mounts the portal at `/`. The caller installs the session middleware,
/// `tollgate_web::page_extractors` and the shared app data (pool, session
/// store, password hasher, public URL).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").route(web::get().to(catalog::home)))
        .service(web::resource("/apis/{slug}").route(web::get().to(catalog::api)))
        .service(web::resource("/apis/{slug}/spec").route(web::get().to(catalog::spec)))
        .service(web::resource("/apis/{slug}/openapi").route(web::get().to(catalog::gateway_spec)))
        .service(
            web::resource("/login").route(web::get().to(auth::login::form)).route(web::post().to(auth::login::submit)),
        )
        .service(web::resource("/auth/{provider}").route(web::post().to(auth::external::start)))
        .service(web::resource("/auth/{provider}/callback").route(web::get().to(auth::external::callback)))
        .service(web::resource("/logout").route(web::post().to(auth::logout::submit)))
        .service(
            web::resource("/signup")
                .route(web::get().to(auth::signup::form))
                .route(web::post().to(auth::signup::submit)),
        )
        .service(
            web::resource("/verify")
                .route(web::get().to(auth::verify::confirm))
                .route(web::post().to(auth::verify::submit)),
        )
        .service(
            web::resource("/verify/resend")
                .route(web::get().to(auth::verify::resend_form))
                .route(web::post().to(auth::verify::resend)),
        )
        .service(
            web::resource("/password/forgot")
                .route(web::get().to(auth::password::forgot_form))
                .route(web::post().to(auth::password::forgot)),
        )
        .service(
            web::resource("/password/reset")
                .route(web::get().to(auth::password::reset_form))
                .route(web::post().to(auth::password::reset)),
        )
        .service(web::resource("/dashboard").route(web::get().to(dashboard::show)))
        .service(web::resource("/profile").route(web::get().to(profile::show)))
        .service(web::resource("/profile/password").route(web::post().to(profile::change_password)))
        .service(web::resource("/profile/email").route(web::post().to(profile::request_email_change)))
        .service(
            web::resource("/profile/email/confirm")
                .route(web::get().to(profile::confirm_email_change_form))
                .route(web::post().to(profile::confirm_email_change)),
        )
        .service(
            web::resource("/profile/delete")
                .route(web::get().to(profile::show_delete))
                .route(web::post().to(profile::delete_account)),
        )
        .service(web::resource("/profile/sessions/end-others").route(web::post().to(profile::end_other_sessions)))
        .service(web::resource("/apps").route(web::get().to(apps::list)))
        .service(web::resource("/apps/new").route(web::get().to(apps::new_form)).route(web::post().to(apps::create)))
        .service(web::resource("/apps/{app}").route(web::get().to(apps::show)).route(web::post().to(apps::update)))
        .service(web::resource("/apps/{app}/usage").route(web::get().to(usage::show)))
        .service(web::resource("/apps/{app}/usage.csv").route(web::get().to(usage::csv)))
        .service(web::resource("/apps/{app}/alerts").route(web::post().to(usage::mute)))
        .service(web::resource("/apps/{app}/plan").route(web::post().to(apps::change_plan)))
        .service(web::resource("/apps/{app}/plan/withdraw").route(web::post().to(apps::withdraw_plan_request)))
        .service(web::resource("/invoices").route(web::get().to(invoices::list)))
        // Before `/invoices/{id}`, whose segment would also match `<id>.pdf`.
        .service(web::resource("/invoices/{id}.pdf").route(web::get().to(invoices::pdf)))
        .service(web::resource("/invoices/{id}").route(web::get().to(invoices::show)))
        .service(web::resource("/notifications").route(web::get().to(notifications::list)))
        .service(web::resource("/notifications/read-all").route(web::post().to(notifications::mark_all_read)))
        .service(web::resource("/notifications/{id}/read").route(web::post().to(notifications::mark_read)))
        .service(
            web::resource("/apps/{app}/delete")
                .route(web::get().to(apps::confirm_delete))
                .route(web::post().to(apps::delete)),
        )
        .service(web::resource("/apps/{app}/keys").route(web::post().to(keys::create)))
        .service(web::resource("/apps/{app}/keys/{key}/rotate").route(web::post().to(keys::rotate)))
        .service(
            web::resource("/apps/{app}/keys/{key}/revoke")
                .route(web::get().to(keys::confirm_revoke))
                .route(web::post().to(keys::revoke)),
        )
        .service(web::resource("/team").route(web::get().to(team::show)))
        .service(web::resource("/organisation").route(web::post().to(team::switch_organisation)))
        .service(web::resource("/organisations/new").route(web::get().to(team::new_organisation_form)))
        .service(web::resource("/organisations").route(web::post().to(team::create_organisation)))
        .service(web::resource("/team/invite").route(web::post().to(team::invite)))
        .service(web::resource("/team/members/{user}/remove").route(web::post().to(team::remove)))
        .service(web::resource("/team/invitations/{invitation}/withdraw").route(web::post().to(team::withdraw)))
        .service(web::resource("/team/members/{user}/make-owner").route(web::post().to(team::make_owner)))
        .service(
            web::resource("/invitations/accept")
                .route(web::get().to(team::invitation))
                .route(web::post().to(team::accept)),
        );
}
