//! Everything a command can fail with, and the exit code each one means.

use crate::settings::SettingError;
use crate::startup::StartupError;

/// A command's failure: `main` prints it on one line and exits with `exit_code`.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Setting(#[from] SettingError),
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error("TOLLGATE_DATABASE_URL: cannot connect to {target}: {source}")]
    Connect { target: String, source: sqlx::Error },
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Core(#[from] tollgate_core::Error),
    #[error("{0}")]
    Other(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl CliError {
    /// 2 for configuration mistakes the operator must fix; 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Setting(_) | CliError::Startup(_) | CliError::Connect { .. } => 2,
            _ => 1,
        }
    }
}
