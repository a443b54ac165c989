//! `tollgate dev`: the zero-config way in. A private Postgres (unless
//! `TOLLGATE_DATABASE_URL` is set), migrations, demo data, then the server.

mod agent;
pub mod postgres;
mod seed;
mod upstream;

use tollgate_core::db;

use crate::cli::database::connect;
use crate::cli::error::CliError;
use crate::settings::{DatabaseUrl, Settings};
use crate::startup;

/// Where the demo API's upstream listens (the seeded upstream URL points here).
pub const DEMO_UPSTREAM: &str = "127.0.0.1:8090";

pub use seed::{
    DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD, DEMO_DEVELOPER_EMAIL, DEMO_DEVELOPER_PASSWORD, demo_application,
    demo_invoice, fresh_demo_key, seed,
};

pub async fn run(mut settings: Settings, db_only: bool, seed_only: bool, database: &str) -> Result<(), CliError> {
    if settings.database_url.is_none() {
        let url = postgres::ensure(database).await?;
        settings.database_url = Some(DatabaseUrl::parse(&url)?);
    }
    let url = settings.require_database()?.clone();
    if db_only {
        println!("{}", url.expose());
        return Ok(());
    }
    if settings.smtp_url.is_none() && settings.mail_outbox_dir.is_none() {
        settings.mail_outbox_dir = Some(postgres::dev_dir().join("outbox"));
    }
    if seed_only {
        let pool = connect(&url, 2).await?;
        db::migrate(&pool).await?;
        seed(&pool).await?;
        println!("seeded {}", url.redacted());
        return Ok(());
    }
    let listener = startup::bind(settings.listen)?;
    let pool = connect(&url, settings.database_max_connections).await?;
    db::migrate(&pool).await?;
    seed(&pool).await?;
    let app = startup::build(&settings, pool.clone(), listener, startup::Mode::Dev)?;
    let base = format!("http://{}", app.addr);
    // The demo upstream and a gateway agent complete the loop. Either may be
    // missing (port taken, agent not built); the server still runs.
    let upstream = match std::net::TcpListener::bind(DEMO_UPSTREAM) {
        Ok(listener) => upstream::spawn(listener).map(|()| true).unwrap_or(false),
        Err(err) => {
            eprintln!(
                "tollgate: the demo upstream cannot listen on {DEMO_UPSTREAM} ({err}); calls through the gateway will fail"
            );
            false
        }
    };
    let proxy: std::net::SocketAddr = std::env::var("TOLLGATE_AGENT_LISTEN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| ([127, 0, 0, 1], 8081).into());
    let agent_admin: std::net::SocketAddr = std::env::var("TOLLGATE_AGENT_ADMIN_LISTEN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| ([127, 0, 0, 1], 9081).into());
    let agent =
        agent::start(&pool, &base, &settings.public_url, proxy, agent_admin, postgres::dev_dir().join("agent")).await?;
    let demo_key = seed::fresh_demo_key(&pool).await?;
    // A failed demo invoice should not stop the demo itself.
    let demo_invoice = match seed::demo_invoice(&pool, &settings.public_url).await {
        Ok(number) => number,
        Err(err) => {
            eprintln!("tollgate: the demo invoice was not made: {err}");
            None
        }
    };
    println!();
    println!("  Tollgate is running (database {})", url.redacted());
    println!();
    println!("  Developer portal  {base}/");
    println!("  Admin             {base}/admin");
    println!("  Sign in           {base}/login");
    println!("  Mail viewer       {base}/dev/mail  (every mail sent, links clickable; dev only)");
    println!("  Health            {base}/healthz");
    println!("  Metrics           {base}/metrics");
    println!();
    println!("  Demo admin        {DEMO_ADMIN_EMAIL} / {DEMO_ADMIN_PASSWORD}");
    println!("  Demo developer    {DEMO_DEVELOPER_EMAIL} / {DEMO_DEVELOPER_PASSWORD}");
    if let Some(number) = &demo_invoice {
        println!("  Demo invoice      {number}  ({base}/admin/invoices)");
    }
    if let Some(agent) = &agent {
        println!();
        println!("  Gateway agent     http://{}  (health, readiness, metrics on http://{})", agent.proxy, agent.admin);
        if upstream {
            println!("  Demo upstream     http://{DEMO_UPSTREAM}");
        }
        println!("  Try it            curl 'http://{}/weather/cities?user_key={demo_key}'", agent.proxy);
    }
    println!();
    match (&settings.smtp_url, &settings.mail_outbox_dir) {
        (Some(_), _) => println!("  Mail              sent over SMTP (TOLLGATE_SMTP_URL)"),
        (None, Some(dir)) => println!("  Mail              written as .eml files to {}", dir.display()),
        (None, None) => {}
    }
    println!();
    println!("  Press Ctrl-C to stop.");
    println!();
    app.server.await?;
    drop(agent);
    Ok(())
}
