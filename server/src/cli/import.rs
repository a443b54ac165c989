//! `tollgate import FILE`: imports an OpenAPI document as a draft API.

use std::path::Path;

use tollgate_core::apis::{NewApi, create_from_spec};
use tollgate_core::audit::Actor;

use super::database::connect;
use super::error::CliError;
use crate::settings::Settings;

/// Prints the new API's slug and operation count; exits non-zero with the
/// located error for an invalid spec.
pub async fn run(settings: &Settings, file: &Path, name: Option<String>) -> Result<(), CliError> {
    let source = std::fs::read_to_string(file).map_err(|e| CliError::Other(format!("{}: {e}", file.display())))?;
    let spec = tollgate_openapi::parse(&source).map_err(|e| CliError::Other(format!("{}: {e}", file.display())))?;
    let url = settings.require_database()?;
    let pool = connect(url, 2).await?;
    let api =
        create_from_spec(&pool, &source, &spec, NewApi { name, ..NewApi::default() }, &Actor::system("cli")).await?;
    println!("imported {} with {} operations", api.slug, api.operation_count);
    Ok(())
}
