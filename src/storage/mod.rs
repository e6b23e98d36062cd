//! The ledger's storage: one database (embedded SQLite by default, PostgreSQL for production)
//! holding the event log, its hash chain, aggregate snapshots, personal keys, API tokens and
//! idempotency records. Everything here speaks both backends; the SQL differs only where the
//! two databases do.

pub mod backup;
pub mod chain;
pub mod digest;
pub mod idempotency;
pub mod keys;
pub mod log;
pub mod repository;
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
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL {0:?}: use sqlite://FILE or postgres://…")]
    UnsupportedUrl(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("cryptography failed: {0}")]
    Crypto(String),
}

impl Backend {
    /// Connects to `url` (`sqlite://…`, `postgres://…`) and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Backend, StorageError> {
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await?;
            Backend::Postgres(pool)
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(30))
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
