//! `tollgate migrate`: applies pending migrations.

use tollgate_core::db;

use super::database::connect;
use super::error::CliError;
use crate::settings::Settings;

pub async fn run(settings: &Settings) -> Result<(), CliError> {
    let url = settings.require_database()?;
    let pool = connect(url, 2).await?;
    db::migrate(&pool).await?;
    println!("database {} is up to date", url.redacted());
    Ok(())
}
