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
    #[error("TOLLGATE_DATABASE_URL: cannot connect to {target}: {}", reason(source))]
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

/// What went wrong with the database, in the server's own words: sqlx adds the line of
/// Postgres's source file that raised an error (`… does not exist at line 948`), which an
/// operator would take for a line of their own.
fn reason(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(db) => db.message().to_owned(),
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::PoolTimedOut => "no answer within 5 s".to_owned(),
        other => other.to_string(),
    }
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
