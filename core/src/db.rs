//! Connection pool and migrations.

use std::time::Duration;

pub use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Opens a pool; fails fast when the database is unreachable.
pub async fn connect(options: PgConnectOptions, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
}

/// Applies pending migrations; a no-op when the schema is current.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// Answers whether the database takes queries right now.
pub async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query!("SELECT 1 AS one").fetch_one(pool).await.map(|_| ())
}

/// Creates a database unless it exists (used by the private dev cluster).
pub async fn create_database_if_missing(conn: &mut sqlx::PgConnection, name: &str) -> Result<(), sqlx::Error> {
    let exists =
        sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS "exists!""#, name)
            .fetch_one(&mut *conn)
            .await?;
    if !exists {
        // Identifiers cannot be bound as parameters; the name is ours, quoted.
        let statement = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement)).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Admin lists count their matches up to this many and no further: an exact count of a
/// million rows costs seconds for a page of 50. A total above it reads "more than".
pub const COUNT_LIMIT: i64 = 10_000;

/// A count taken up to [`COUNT_LIMIT`] + 1 rows (`SELECT count(*) FROM (… LIMIT n)`):
/// exact below the limit, "at least the limit" above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CappedCount {
    /// At most [`COUNT_LIMIT`].
    pub value: i64,
    /// False when more rows than `value` match.
    pub exact: bool,
}

impl CappedCount {
    /// From a count of up to `COUNT_LIMIT + 1` rows.
    pub fn from_counted(counted: i64) -> CappedCount {
        CappedCount { value: counted.min(COUNT_LIMIT), exact: counted <= COUNT_LIMIT }
    }
}

/// `1234`, or `10000+` when there are more.
impl std::fmt::Display for CappedCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.exact { write!(f, "{}", self.value) } else { write!(f, "{}+", self.value) }
    }
}

/// Escapes `\`, `%` and `_`, so user text matches literally inside a LIKE pattern.
pub(crate) fn like_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// A LIKE pattern matching text that contains `text`.
pub(crate) fn contains_pattern(text: &str) -> String {
    format!("%{}%", like_escape(text))
}
