//! The event repository behind every cqrs-es aggregate: postgres-es or sqlite-es, chosen at
//! start-up, wrapped so that
//! - a duplicate (aggregate, sequence) on our SQLite table (a UNIQUE constraint, because the
//!   rowid is the commit-ordered position) is reported as the optimistic-lock conflict it is;
//! - every commit is sealed into the hash chain before the command is acknowledged.

use super::chain::Sealer;
use super::Backend;
use cqrs_es::persist::{
    PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot,
};
use cqrs_es::Aggregate;
use postgres_es::PostgresEventRepository;
use serde_json::Value;
use sqlite_es::SqliteEventRepository;
use std::sync::Arc;

pub enum Inner {
    Sqlite(SqliteEventRepository),
    Postgres(PostgresEventRepository),
}

pub struct LedgerRepository {
    inner: Inner,
    sealer: Arc<Sealer>,
}

impl LedgerRepository {
    pub fn new(backend: &Backend, sealer: Arc<Sealer>) -> Self {
        let inner = match backend {
            Backend::Sqlite(pool) => Inner::Sqlite(SqliteEventRepository::new(pool.clone())),
            Backend::Postgres(pool) => Inner::Postgres(PostgresEventRepository::new(pool.clone())),
        };
        LedgerRepository { inner, sealer }
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

/// SQLite reports a UNIQUE violation as extended code 2067 (sqlite-es only knows the
/// PRIMARY KEY code 1555).
fn is_unique_violation(error: &PersistenceError) -> bool {
    let PersistenceError::UnknownError(inner) = error else {
        return false;
    };
    inner
        .downcast_ref::<sqlx::Error>()
        .and_then(|e| e.as_database_error())
        .and_then(|e| e.code())
        .is_some_and(|code| code == "2067" || code == "1555" || code == "23505")
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
        let result = delegate!(self, repo => repo.persist::<A>(events, snapshot_update).await);
        match result {
            Err(error) if is_unique_violation(&error) => Err(PersistenceError::OptimisticLockError),
            Err(error) => Err(error),
            Ok(()) => {
                // The events are committed whatever happens here; an unsealed tail is sealed
                // by the next commit or the background sealer, and `verify` reports it.
                if let Err(error) = self.sealer.seal().await {
                    tracing::warn!(%error, "sealing the hash chain failed; will retry");
                }
                Ok(())
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
