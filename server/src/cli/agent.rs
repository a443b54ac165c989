//! `tollgate agent create`: registers a gateway agent and prints its token once.

use tollgate_core::audit::Actor;
use tollgate_core::gateways;

use super::database::connect;
use super::error::CliError;
use crate::settings::Settings;

/// Registers a gateway agent and prints its token, shown this once.
pub async fn create(settings: &Settings, name: &str) -> Result<(), CliError> {
    let url = settings.require_database()?;
    let pool = connect(url, 2).await?;
    let (_, token) = gateways::create(&pool, name, &Actor::system("cli")).await?;
    println!("{}", token.as_str());
    eprintln!("agent {name} created; give it this token as TOLLGATE_AGENT_TOKEN (it is not shown again)");
    Ok(())
}
