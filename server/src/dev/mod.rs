//! `tollgate dev`: the zero-config way in. A private Postgres (unless
//! `TOLLGATE_DATABASE_URL` is set), migrations, demo data, then the server.

pub mod postgres;
mod seed;

use tollgate_core::db;

use crate::cli::{CliError, connect};
use crate::settings::{DatabaseUrl, Settings};
use crate::startup;

pub use seed::{DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD, DEMO_DEVELOPER_EMAIL, DEMO_DEVELOPER_PASSWORD, seed};

pub async fn run(mut settings: Settings, db_only: bool, database: &str) -> Result<(), CliError> {
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
    let listener = startup::bind(settings.listen)?;
    let pool = connect(&url, settings.database_max_connections).await?;
    db::migrate(&pool).await?;
    seed(&pool).await?;
    let app = startup::build(&settings, pool, listener)?;
    let base = format!("http://{}", app.addr);
    println!();
    println!("  Tollgate is running (database {})", url.redacted());
    println!();
    println!("  Developer portal  {base}/");
    println!("  Admin             {base}/admin");
    println!("  Sign in           {base}/login");
    println!("  Health            {base}/healthz");
    println!("  Metrics           {base}/metrics");
    println!();
    println!("  Demo admin        {DEMO_ADMIN_EMAIL} / {DEMO_ADMIN_PASSWORD}");
    println!("  Demo developer    {DEMO_DEVELOPER_EMAIL} / {DEMO_DEVELOPER_PASSWORD}");
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
    Ok(())
}
