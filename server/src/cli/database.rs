//! The database connection every command that needs one opens.

use tollgate_core::db::{self, PgPool};

use super::error::CliError;
use crate::settings::DatabaseUrl;

/// A pool for a command; an unreachable database is a configuration error.
pub async fn connect(url: &DatabaseUrl, max_connections: u32) -> Result<PgPool, CliError> {
    db::connect(url.options(), max_connections)
        .await
        .map_err(|source| CliError::Connect { target: url.redacted(), source })
}
