//! Builds the actix application and binds it. Used by `serve`, `dev` and
//! the integration tests' `spawn_app()`.

use std::net::{SocketAddr, TcpListener};

use actix_web::dev::Server;
use actix_web::http::StatusCode;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, web};
use time::Duration;
use tollgate_core::accounts::PasswordHasher;
use tollgate_core::billing::Payments;
use tollgate_core::db::PgPool;
use tollgate_core::identity::Providers;
use tollgate_core::sessions::SessionStore;
use tollgate_core::webhooks::TargetPolicy;
use tollgate_core::webhooks::deliver::Sender;
use tollgate_web::{
    CookiePolicy, ErrorPage, GatewayUrl, PublicUrl, SecurityHeaders, refuse_nul_in_address, security_headers,
    session_middleware,
};

use crate::agent_api::{self, ConfigNotifier};
use crate::http::body_timeout::{BodyTimeout, body_timeout};
use crate::http::{health, request_id::request_id_and_metrics};
use crate::jobs;
use crate::settings::Settings;
use crate::telemetry;
use crate::trace::{Tracer, trace_requests};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("TOLLGATE_LISTEN: {addr} is already in use; stop the other process or choose another address")]
    AddressInUse { addr: SocketAddr },
    #[error("TOLLGATE_LISTEN: cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Mail(#[from] tollgate_core::Error),
}

/// Which command runs the server: `tollgate dev` adds development-only pages
/// (the mail viewer at `/dev/mail`) that `tollgate serve` never mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Serve,
    Dev,
}

/// A bound, not yet running server.
pub struct Application {
    pub addr: SocketAddr,
    pub server: Server,
    /// The server's password hasher; tests count its argon2 work.
    pub hasher: PasswordHasher,
}

pub fn bind(addr: SocketAddr) -> Result<TcpListener, StartupError> {
    TcpListener::bind(addr).map_err(|source| match source.kind() {
        std::io::ErrorKind::AddrInUse => StartupError::AddressInUse { addr },
        _ => StartupError::Bind { addr, source },
    })
}

async fn not_found() -> HttpResponse {
    ErrorPage::new(StatusCode::NOT_FOUND, "Not found", "There is no page at this address.").into_response()
}

/// Builds the server on an already bound listener (port 0 in tests).
pub fn build(
    settings: &Settings,
    pool: PgPool,
    listener: TcpListener,
    mode: Mode,
) -> Result<Application, StartupError> {
    let addr = listener.local_addr().map_err(|source| StartupError::Bind { addr: settings.listen, source })?;
    let sessions = SessionStore::new(
        pool.clone(),
        Duration::minutes(i64::from(settings.session_idle_minutes)),
        Duration::hours(i64::from(settings.session_absolute_hours)),
    );
    let hasher = PasswordHasher::new(settings.password_hash_concurrency as usize);
    jobs::spawn_mail_worker(pool.clone(), jobs::mail_delivery(settings)?);
    jobs::spawn_session_purge(sessions.clone());
    jobs::spawn_staging_worker(pool.clone());
    jobs::spawn_usage_alerts(pool.clone(), settings.public_url.clone());
    jobs::spawn_usage_retention(pool.clone(), settings.usage_retention);
    let payments = Payments::new(settings.payment_provider);
    jobs::spawn_billing_job(pool.clone(), payments.clone(), settings.public_url.clone());
    jobs::spawn_payment_job(pool.clone(), payments.clone(), settings.public_url.clone());
    let webhook_policy = TargetPolicy { allow_private: settings.webhooks_allow_private };
    jobs::spawn_webhook_job(pool.clone(), Sender::new(webhook_policy));
    let payments = web::Data::new(payments);
    let webhook_policy = web::Data::new(webhook_policy);
    let public_url = web::Data::new(PublicUrl(settings.public_url.clone()));
    let providers = web::Data::new(Providers::new(settings.oauth_providers.clone()));
    let gateway_url = web::Data::new(GatewayUrl(settings.gateway_url.clone()));
    let security = web::Data::new(SecurityHeaders::new(&settings.gateway_url));
    let trusted_proxies = web::Data::new(settings.trusted_proxies.clone());
    let mail_limits = web::Data::new(settings.mail_limits());
    let body_deadline =
        web::Data::new(BodyTimeout(std::time::Duration::from_secs(u64::from(settings.body_timeout_seconds))));
    let cookie_policy = CookiePolicy { secure: settings.public_url.starts_with("https://") };
    let prometheus = telemetry::prometheus();
    let tracer = web::Data::new(Tracer::start(settings.traces.clone()));
    let static_dir = settings.static_dir.clone();

    let pool = web::Data::new(pool);
    let reports = web::Data::new(tollgate_core::usage::recent::RecentReports::default());
    let sessions = web::Data::new(sessions);
    let hasher_handle = hasher.clone();
    let hasher = web::Data::new(hasher);
    let cookie_policy = web::Data::new(cookie_policy);
    let prometheus = web::Data::new(prometheus);
    let notifier = web::Data::new(ConfigNotifier::start(pool.get_ref().clone()));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(pool.clone())
            .app_data(reports.clone())
            .app_data(sessions.clone())
            .app_data(hasher.clone())
            .app_data(cookie_policy.clone())
            .app_data(prometheus.clone())
            .app_data(notifier.clone())
            .app_data(public_url.clone())
            .app_data(payments.clone())
            .app_data(webhook_policy.clone())
            .app_data(providers.clone())
            .app_data(gateway_url.clone())
            .app_data(security.clone())
            .app_data(trusted_proxies.clone())
            .app_data(mail_limits.clone())
            .app_data(body_deadline.clone())
            .app_data(tracer.clone())
            .wrap(from_fn(body_timeout))
            .wrap(from_fn(security_headers))
            .wrap(from_fn(request_id_and_metrics))
            .wrap(from_fn(trace_requests))
            // Probes and scrapers may ask with HEAD: the same answer, without its body.
            .route("/healthz", web::get().to(health::healthz))
            .route("/healthz", web::head().to(health::healthz))
            .route("/metrics", web::get().to(health::metrics))
            .route("/metrics", web::head().to(health::metrics))
            .configure(agent_api::configure)
            .configure(tollgate_admin::configure_api)
            .service(actix_files::Files::new("/static", &static_dir).prefer_utf8(true))
            .service(
                web::scope("")
                    .wrap(from_fn(session_middleware))
                    .wrap(from_fn(refuse_nul_in_address))
                    // Outermost of the pages': every error page below is rendered for its part.
                    .wrap(from_fn(tollgate_web::error_pages_lead_back))
                    .configure(tollgate_web::page_extractors)
                    .configure(tollgate_portal::configure)
                    .configure(tollgate_admin::configure)
                    .configure(|cfg| {
                        if mode == Mode::Dev {
                            tollgate_portal::dev_mail::configure(cfg);
                        }
                    })
                    .default_service(web::to(not_found)),
            )
    })
    .shutdown_timeout(10)
    .listen(listener)
    .map_err(|source| StartupError::Bind { addr, source })?
    .run();
    Ok(Application { addr, server, hasher: hasher_handle })
}
