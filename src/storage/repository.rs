//! The event repository behind every cqrs-es aggregate: postgres-es or sqlite-es, chosen at
//! start-up, wrapped so that
//! - a duplicate (aggregate, sequence) on our SQLite table (a UNIQUE constraint, because the
//!   rowid is the commit-ordered position) is reported as the optimistic-lock conflict it is;
//! - every commit carries its own hash-chain entries: the events and the links that seal them
//!   are written in one transaction, so an event without its link is tampering, never a crash.
//!
//! Reading (events, snapshots, streams) is the frameworks' own; writing is Kiroku's.

use super::chain::{self, link};
use super::log::{decode, range_sql};
use super::{Backend, StorageError};
use crate::with_pool;
use cqrs_es::persist::{
    PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot,
};
use cqrs_es::Aggregate;
use postgres_es::PostgresEventRepository;
use serde_json::Value;
use sqlite_es::SqliteEventRepository;
use sqlx::Row;

pub enum Inner {
    Sqlite(SqliteEventRepository),
    Postgres(PostgresEventRepository),
}

pub struct LedgerRepository {
    inner: Inner,
    backend: Backend,
}

impl LedgerRepository {
    pub fn new(backend: &Backend) -> Self {
        let inner = match backend {
            Backend::Sqlite(pool) => Inner::Sqlite(SqliteEventRepository::new(pool.clone())),
            Backend::Postgres(pool) => Inner::Postgres(PostgresEventRepository::new(pool.clone())),
        };
        LedgerRepository {
            inner,
            backend: backend.clone(),
        }
    }

    /// Appends `events` of one aggregate, updates its snapshot and writes their chain links,
    /// all in one transaction.
    ///
    /// The links are computed from the events as the database returns them (PostgreSQL
    /// rewrites JSON), the way `verify` reads them. The chain head read inside the
    /// transaction is the latest: on PostgreSQL the insert trigger holds the appenders' lock
    /// until commit, and SQLite has one writer.
    async fn append<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), AppendError> {
        if events.is_empty() {
            return Ok(());
        }
        let range = range_sql(&self.backend);
        with_pool!(&self.backend, pool => {
            let mut tx = pool.begin().await?;
            let mut positions = Vec::with_capacity(events.len());
            for event in events {
                let row = sqlx::query(
                    "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                     event_version, payload, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     RETURNING position",
                )
                .bind(A::TYPE)
                .bind(event.aggregate_id.as_str())
                .bind(event.sequence as i64)
                .bind(event.event_type.as_str())
                .bind(event.event_version.as_str())
                .bind(&event.payload)
                .bind(&event.metadata)
                .fetch_one(&mut *tx)
                .await?;
                positions.push(row.try_get::<i64, _>(0)?);
            }
            if let Some((aggregate_id, payload, current_snapshot)) = snapshot_update {
                let last_sequence = events.last().map_or(0, |e| e.sequence) as i64;
                let written = if current_snapshot == 1 {
                    sqlx::query(
                        "INSERT INTO snapshots (aggregate_type, aggregate_id, last_sequence, \
                         current_snapshot, payload) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(A::TYPE)
                    .bind(aggregate_id.as_str())
                    .bind(last_sequence)
                    .bind(current_snapshot as i64)
                    .bind(&payload)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                } else {
                    sqlx::query(
                        "UPDATE snapshots SET last_sequence = $3, payload = $6, current_snapshot = $4 \
                         WHERE aggregate_type = $1 AND aggregate_id = $2 AND current_snapshot = $5",
                    )
                    .bind(A::TYPE)
                    .bind(aggregate_id.as_str())
                    .bind(last_sequence)
                    .bind(current_snapshot as i64)
                    .bind(current_snapshot as i64 - 1)
                    .bind(&payload)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                };
                if written != 1 {
                    // Rolled back: nothing of this command is written.
                    return Err(AppendError::Conflict);
                }
            }
            let head = sqlx::query("SELECT hash FROM event_chain ORDER BY position DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
            let mut previous = match head {
                Some(row) => row.try_get::<String, _>(0)?,
                None => chain::GENESIS.to_string(),
            };
            let first = positions.iter().copied().min().unwrap_or(0);
            let last = positions.iter().copied().max().unwrap_or(0);
            let rows = sqlx::query(range)
                .bind(first)
                .bind(last)
                .fetch_all(&mut *tx)
                .await?;
            if rows.len() != positions.len() {
                return Err(AppendError::Storage(StorageError::Corrupt(format!(
                    "positions {first}..={last} hold {} events, {} were appended",
                    rows.len(),
                    positions.len()
                ))));
            }
            for row in &rows {
                let event = decode(row)?;
                previous = link(&previous, &event);
                sqlx::query("INSERT INTO event_chain (position, hash) VALUES ($1, $2)")
                    .bind(event.position)
                    .bind(&previous)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            crate::metrics::appended(positions.len(), last);
            Ok(())
        })
    }
}

/// Why an append wrote nothing.
#[derive(Debug, thiserror::Error)]
enum AppendError {
    #[error("another command changed the aggregate first")]
    Conflict,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<sqlx::Error> for AppendError {
    fn from(error: sqlx::Error) -> Self {
        let unique = error
            .as_database_error()
            .and_then(|e| e.code())
            .is_some_and(|code| code == "2067" || code == "1555" || code == "23505");
        if unique {
            AppendError::Conflict
        } else {
            AppendError::Storage(error.into())
        }
    }
}

macro_rules! delegate {
    ($self:ident, $repo:ident => $body:expr) => {
        match &$self.inner {
            Inner::Sqlite($repo) => $body,
            Inner::Postgres($repo) => $body,
        }
    };
}

impl PersistedEventRepository for LedgerRepository {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        delegate!(self, repo => repo.get_events::<A>(aggregate_id).await)
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        delegate!(self, repo => repo.get_last_events::<A>(aggregate_id, last_sequence).await)
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        delegate!(self, repo => repo.get_snapshot::<A>(aggregate_id).await)
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        match self.append::<A>(events, snapshot_update).await {
            Ok(()) => Ok(()),
            Err(AppendError::Conflict) => Err(PersistenceError::OptimisticLockError),
            Err(AppendError::Storage(error @ StorageError::Unavailable(_))) => {
                Err(PersistenceError::ConnectionError(Box::new(error)))
            }
            Err(AppendError::Storage(error)) => {
                Err(PersistenceError::UnknownError(Box::new(error)))
            }
        }
    }

    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        delegate!(self, repo => repo.stream_events::<A>(aggregate_id).await)
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        delegate!(self, repo => repo.stream_all_events::<A>().await)
    }
}
