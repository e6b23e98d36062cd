//! The ledger's storage: one database (embedded SQLite by default, PostgreSQL for production)
//! holding the event log, its hash chain, aggregate snapshots, personal keys, API tokens and
//! idempotency records. Everything here speaks both backends; the SQL differs only where the
//! two databases do.

pub mod aggregates;
pub mod append;
pub mod backup;
pub mod chain;
pub mod copy;
pub mod digest;
pub mod direct;
pub mod idempotency;
pub mod keys;
pub mod log;
pub mod repository;
pub mod secret;
pub mod tokens;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

/// The database behind the ledger.
#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same sqlx code against whichever pool the ledger has. The body is compiled once
/// per backend, so it may only use what both drivers support.
#[macro_export]
macro_rules! with_pool {
    ($backend:expr, $pool:ident => $body:expr) => {
        match $backend {
            $crate::storage::Backend::Sqlite($pool) => $body,
            $crate::storage::Backend::Postgres($pool) => $body,
        }
    };
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// An error of the direct SQLite connections ([`direct`]) other than a busy database.
    #[error("database error: {0}")]
    Sqlite(String),
    /// The database cannot be reached or is locked by someone else: worth retrying later.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL {0:?}: use sqlite://FILE or postgres://…")]
    UnsupportedUrl(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("cryptography failed: {0}")]
    Crypto(String),
    /// A write the database refused, passed on from the appender task.
    #[error("appending failed: {0}")]
    Append(String),
    /// An unconfirmed command's commit did not confirm it ([`append::Confirm`]): nothing was
    /// written, and the command is decided again the long way.
    #[error("the command was not confirmed at its commit")]
    Unconfirmed,
}

impl From<sqlx::Error> for StorageError {
    fn from(error: sqlx::Error) -> Self {
        if is_unavailable(&error) {
            StorageError::Unavailable(error.to_string())
        } else {
            StorageError::Database(error)
        }
    }
}

/// Whether `error` says the database is out of reach for now (down, restarting, out of
/// connections, or a SQLite file locked by another process) rather than that the request or
/// the data is wrong.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // SQLite: BUSY and LOCKED with their extended codes. PostgreSQL: connection
            // exceptions (class 08), shutdowns, start-up, too many connections.
            matches!(
                code.as_ref(),
                "5" | "6"
                    | "261"
                    | "262"
                    | "517"
                    | "518"
                    | "773"
                    | "57P01"
                    | "57P02"
                    | "57P03"
                    | "53300"
            ) || code.starts_with("08")
        }),
        _ => false,
    }
}

/// Whether a boxed error from the event-sourcing framework is one of [`is_unavailable`].
pub fn is_unavailable_boxed(error: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(error) = error.downcast_ref::<sqlx::Error>() {
        return is_unavailable(error);
    }
    matches!(
        error.downcast_ref::<StorageError>(),
        Some(StorageError::Unavailable(_))
    )
}

/// How long a request waits for the database before it is answered 503: a SQLite file locked
/// by another process, or a PostgreSQL pool with no free connection.
pub const DATABASE_WAIT: Duration = Duration::from_secs(3);

/// How long start-up keeps trying a database that is out of reach.
pub const START_PATIENCE: Duration = Duration::from_secs(20);

/// How long this process waits for the database: [`DATABASE_WAIT`] for a server unless
/// `KIROKU_DATABASE_WAIT_MS` says otherwise, longer for a command-line tool that has no one to
/// answer 503 to (see [`wait_patiently`]). 0 = not yet decided.
static WAIT_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Makes this process wait up to 30 s for the database (the CLI's commands other than
/// `serve`).
pub fn wait_patiently() {
    set_database_wait(Duration::from_secs(30));
}

/// Sets how long this process waits for the database before answering 503.
pub fn set_database_wait(wait: Duration) {
    WAIT_MS.store(
        wait.as_millis().max(1) as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
}

/// See [`WAIT_MS`].
pub fn database_wait() -> Duration {
    let ms = WAIT_MS.load(std::sync::atomic::Ordering::Relaxed);
    if ms > 0 {
        return Duration::from_millis(ms);
    }
    let configured = std::env::var("KIROKU_DATABASE_WAIT_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(DATABASE_WAIT, Duration::from_millis);
    set_database_wait(configured);
    configured
}

impl Backend {
    /// The SQLite file behind this backend, read and written directly ([`direct`]); `None`
    /// on PostgreSQL and for a SQLite database held only in memory.
    pub fn sqlite_file(&self) -> Option<std::path::PathBuf> {
        match self {
            Backend::Sqlite(pool) => direct::file_of(pool),
            Backend::Postgres(_) => None,
        }
    }

    /// Connects to `url` (`sqlite://…`, `postgres://…`) and brings the schema up to date.
    /// A database that is out of reach at start-up (still starting, or too busy to answer
    /// within [`database_wait`]) is tried again for up to [`START_PATIENCE`]: a server waits
    /// for its database before giving up, where a request would be answered 503.
    pub async fn connect(url: &str) -> Result<Backend, StorageError> {
        let deadline = std::time::Instant::now() + START_PATIENCE;
        loop {
            match Backend::connect_once(url).await {
                Err(StorageError::Unavailable(detail)) if std::time::Instant::now() < deadline => {
                    tracing::warn!(%detail, "the database is out of reach; trying again");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                result => return result,
            }
        }
    }

    async fn connect_once(url: &str) -> Result<Backend, StorageError> {
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)?;
            // sqlx pings a connection when it goes back to the pool, and closes it if the ping
            // fails; its second ping, before each acquire, cost every query a round trip more.
            // A connection that dies while idle (the server restarted) fails its next query,
            // which is answered 503 like any other, and is closed on its way back.
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .test_before_acquire(false)
                .acquire_timeout(database_wait())
                .connect_with(options)
                .await?;
            Backend::Postgres(pool)
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(database_wait())
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .connect_with(options)
                .await?;
            Backend::Sqlite(pool)
        } else {
            return Err(StorageError::UnsupportedUrl(url.to_string()));
        };
        backend.migrate().await?;
        Ok(backend)
    }

    /// A throwaway SQLite ledger at `path` for a generator whose log is restored elsewhere
    /// (the demo city): nothing is synced to disk, since a crash only loses the scratch.
    pub async fn scratch(path: &std::path::Path) -> Result<Backend, StorageError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Off)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        let backend = Backend::Sqlite(pool);
        backend.migrate().await?;
        Ok(backend)
    }

    async fn migrate(&self) -> Result<(), StorageError> {
        match self {
            Backend::Sqlite(pool) => sqlx::migrate!("migrations/sqlite").run(pool).await?,
            Backend::Postgres(pool) => sqlx::migrate!("migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await)
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
