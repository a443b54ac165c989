//! Connection pool and migrations.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

pub use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Opens a pool; fails fast when the database is unreachable, with the reason (a refused
/// connection, an unknown database or role), not the pool's "timed out" that hides it.
pub async fn connect(options: PgConnectOptions, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    use sqlx::Connection as _;
    let timeout = Duration::from_secs(5);
    match tokio::time::timeout(timeout, sqlx::PgConnection::connect_with(&options)).await {
        Ok(Ok(probe)) => {
            let _ = probe.close().await;
        }
        Ok(Err(err)) => return Err(err),
        Err(_) => return Err(sqlx::Error::PoolTimedOut),
    }
    PgPoolOptions::new().max_connections(max_connections).acquire_timeout(timeout).connect_with(options).await
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

    /// Back to a count of up to `COUNT_LIMIT + 1` rows.
    pub fn counted(self) -> i64 {
        if self.exact { self.value } else { COUNT_LIMIT + 1 }
    }
}

/// `1234`, or `10000+` when there are more.
impl std::fmt::Display for CappedCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.exact { write!(f, "{}", self.value) } else { write!(f, "{}+", self.value) }
    }
}

/// How long a count that reached [`COUNT_LIMIT`] is reused instead of counted again.
pub const CAPPED_COUNT_TTL: Duration = Duration::from_secs(5);

/// At most this many remembered counts; a full table takes no new ones until some expire.
const CAPPED_COUNT_KEYS: usize = 4096;

/// When each (database, count) was last seen at the limit. In process memory: each server
/// replica keeps its own, and none is invalidated; the TTL bounds how stale it can be.
static AT_THE_LIMIT: LazyLock<Mutex<HashMap<String, Instant>>> = LazyLock::new(Default::default);

/// Runs `count` (a count of up to `COUNT_LIMIT + 1` rows) unless the count named `what` reached
/// the limit on this database in the last [`CAPPED_COUNT_TTL`]; then answers `COUNT_LIMIT + 1`
/// without asking the database. Only counts at the limit are kept: a smaller one is cheap and
/// always taken afresh, so creating or deleting a row shows in the next small count. A count
/// kept at the limit may read "10000+" for up to the TTL after deletions brought it under.
pub(crate) async fn count_up_to_limit<F>(pool: &PgPool, what: String, count: F) -> Result<i64, sqlx::Error>
where
    F: Future<Output = Result<i64, sqlx::Error>>,
{
    let key = CountKey::new(pool, &what);
    if key.at_limit() {
        return Ok(COUNT_LIMIT + 1);
    }
    let counted = count.await?;
    key.counted(counted);
    Ok(counted)
}

/// One count of [`count_up_to_limit`], for a count taken inside a larger statement.
pub(crate) struct CountKey(String);

impl CountKey {
    pub(crate) fn new(pool: &PgPool, what: &str) -> CountKey {
        CountKey(format!("{}\n{what}", database_key(pool)))
    }

    /// Whether this count was at the limit less than [`CAPPED_COUNT_TTL`] ago.
    pub(crate) fn at_limit(&self) -> bool {
        let kept = AT_THE_LIMIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        kept.get(&self.0).is_some_and(|at| at.elapsed() < CAPPED_COUNT_TTL)
    }

    /// For a count taken inside a larger statement: decides once whether the kept count
    /// stands, so the statement's row limit and the count shown agree.
    pub(crate) fn in_statement(self) -> StatementCount {
        StatementCount { at_limit: self.at_limit(), key: self }
    }

    /// Keeps a fresh count (of up to `COUNT_LIMIT + 1` rows) when it reached the limit.
    pub(crate) fn counted(self, counted: i64) {
        if counted <= COUNT_LIMIT {
            return;
        }
        let now = Instant::now();
        let mut kept = AT_THE_LIMIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if kept.len() >= CAPPED_COUNT_KEYS {
            kept.retain(|_, at| now.duration_since(*at) < CAPPED_COUNT_TTL);
        }
        if kept.len() < CAPPED_COUNT_KEYS {
            kept.insert(self.0, now);
        }
    }
}

/// A [`CountKey`] count inside a larger statement (an API's subscribers, a plan's applications).
pub(crate) struct StatementCount {
    key: CountKey,
    at_limit: bool,
}

impl StatementCount {
    /// How many rows the statement counts: none when the kept count stands (`LIMIT 0` reads
    /// no row), else up to `COUNT_LIMIT + 1`.
    pub(crate) fn rows(&self) -> i64 {
        if self.at_limit { 0 } else { COUNT_LIMIT + 1 }
    }

    /// The count to show for what the statement counted with [`Self::rows`].
    pub(crate) fn settle(self, counted: CappedCount) -> CappedCount {
        if self.at_limit {
            return CappedCount::from_counted(COUNT_LIMIT + 1);
        }
        self.key.counted(counted.counted());
        counted
    }
}

/// `host:port/database`: what a value kept in process memory for one database is keyed by
/// (one process may serve several, as the tests do).
pub(crate) fn database_key(pool: &PgPool) -> String {
    let options = pool.connect_options();
    format!("{}:{}/{}", options.get_host(), options.get_port(), options.get_database().unwrap_or_default())
}

/// Escapes `\`, `%` and `_`, so user text matches literally inside a LIKE pattern.
pub(crate) fn like_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// A LIKE pattern matching text that contains `text`.
pub(crate) fn contains_pattern(text: &str) -> String {
    format!("%{}%", like_escape(text))
}
