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
    #[error("{}", migration_failure(.0))]
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

/// What a failed migration means for an operator, and what to do: a database migrated by a
/// newer release cannot be served by an older one (a rollback needs the backup taken before
/// the upgrade), and a changed migration means a build that is not a release.
fn migration_failure(err: &sqlx::migrate::MigrateError) -> String {
    use sqlx::migrate::MigrateError;
    let newest = tollgate_core::db::MIGRATOR.iter().map(|m| m.version).max().unwrap_or_default();
    match err {
        MigrateError::VersionMissing(version) => format!(
            "the database was migrated by a newer Tollgate: migration {version} is not in this build, whose newest is \
             {newest}. Run the newer release, or to roll back restore the database backup taken before the upgrade \
             (docs/OPERATIONS.md)"
        ),
        MigrateError::VersionMismatch(version) => format!(
            "migration {version} in the database differs from this build's: the build is not a release, or the \
             database was migrated by a modified one; run the release that migrated it (docs/OPERATIONS.md)"
        ),
        MigrateError::Dirty(version) => format!(
            "migration {version} was left half applied (a crash or a failed statement): restore the backup taken \
             before it, then run `tollgate migrate` again (docs/OPERATIONS.md)"
        ),
        other => format!("migration failed: {other}"),
    }
}

impl CliError {
    /// 2 for configuration mistakes the operator must fix; 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Setting(_) | CliError::Startup(_) | CliError::Connect { .. } => 2,
            CliError::Migrate(
                sqlx::migrate::MigrateError::VersionMissing(_) | sqlx::migrate::MigrateError::VersionMismatch(_),
            ) => 2,
            _ => 1,
        }
    }
}
