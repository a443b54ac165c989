//! `tollgate serve`: runs the management server.

use tollgate_core::db;

use super::database::connect;
use super::error::CliError;
use crate::settings::Settings;
use crate::startup;

/// Settings are checked, then the address is bound before the database is
/// touched, so a busy address fails fast and clearly.
pub async fn run(settings: Settings) -> Result<(), CliError> {
    let url = settings.require_database()?;
    let listener = startup::bind(settings.listen)?;
    let pool = connect(url, settings.database_max_connections).await?;
    db::migrate(&pool).await?;
    let app = startup::build(&settings, pool, listener, startup::Mode::Serve)?;
    tracing::info!(addr = %app.addr, database = %url.redacted(), "tollgate is serving");
    app.server.await?;
    tracing::info!("tollgate stopped");
    Ok(())
}
